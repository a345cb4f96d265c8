//! The state root: one hash that commits to every `(key, value)` pair of the
//! world state and that a block can update from its write set alone.
//!
//! The accumulator is LtHash, the lattice-based multiset hash of Bellare and
//! Micciancio as used in Facebook's "Securing update propagation with
//! homomorphic hashing" (Lewi, Kim, Maykov, Weis, 2019): 1024 lanes of `u16`.
//! A pair's element is `SHAKE256("rxchain-lthash-v1\0" || len(key) as u64
//! little-endian || key || value)` read out to 2048 bytes, taken as 1024
//! little-endian `u16` lanes. The accumulator of a set of pairs is the
//! lane-wise sum of their elements mod 2^16. Adding is commutative, so the
//! order pairs were written in does not matter, and a change of one key is
//! one subtraction (of its old element) and one addition (of its new one):
//! a block costs two SHAKE256 expansions per written key, never a pass over
//! the whole state.
//!
//! The length prefix keeps `("ab", "c")` and `("a", "bc")` apart. The
//! accumulator itself is 2 KiB; headers carry its digest,
//! [`LtHash::root`] = `SHA3-256("rxchain-state-root-v1\0" || lanes as
//! little-endian bytes)`.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use sha3::digest::{ExtendableOutput, Update, XofReader};
use sha3::Shake256;

use crate::crypto::Hash;
use crate::state::{StateRead, StateScan, WriteSet};

/// Number of `u16` lanes.
pub const LANES: usize = 1024;
/// Size of the accumulator in bytes.
pub const LTHASH_BYTES: usize = LANES * 2;

const ELEMENT_DOMAIN: &[u8] = b"rxchain-lthash-v1\0";
const ROOT_DOMAIN: &[u8] = b"rxchain-state-root-v1\0";

/// The LtHash accumulator over a multiset of `(key, value)` pairs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LtHash([u16; LANES]);

impl Default for LtHash {
    fn default() -> Self {
        LtHash::EMPTY
    }
}

impl LtHash {
    /// The accumulator of the empty state.
    pub const EMPTY: LtHash = LtHash([0; LANES]);

    /// The element of one pair.
    fn element(key: &[u8], value: &[u8]) -> [u16; LANES] {
        let mut xof = Shake256::default();
        xof.update(ELEMENT_DOMAIN);
        xof.update(&(key.len() as u64).to_le_bytes());
        xof.update(key);
        xof.update(value);
        let mut bytes = [0u8; LTHASH_BYTES];
        xof.finalize_xof().read(&mut bytes);
        let mut lanes = [0u16; LANES];
        for (lane, b) in lanes.iter_mut().zip(bytes.chunks_exact(2)) {
            *lane = u16::from_le_bytes([b[0], b[1]]);
        }
        lanes
    }

    /// Adds the pair `(key, value)` to the multiset.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        let e = Self::element(key, value);
        for (a, b) in self.0.iter_mut().zip(e) {
            *a = a.wrapping_add(b);
        }
    }

    /// Removes the pair `(key, value)` from the multiset. Removing a pair
    /// that was never added leaves an accumulator no real state has.
    pub fn remove(&mut self, key: &[u8], value: &[u8]) {
        let e = Self::element(key, value);
        for (a, b) in self.0.iter_mut().zip(e) {
            *a = a.wrapping_sub(b);
        }
    }

    /// The accumulator after `writes` are applied on top of `base`, whose
    /// accumulator is `self`: for each written key the old value (read from
    /// `base`) is removed and the new one, if any, added.
    ///
    /// The old values are read here, in order; the elements (two SHAKE256
    /// expansions per changed key, the bulk of a block's state-root cost)
    /// are computed on every core when there are many ([`sum_elements`]).
    pub fn updated(&self, base: &dyn StateRead, writes: &WriteSet) -> LtHash {
        let mut removed: Vec<(&[u8], Vec<u8>)> = Vec::new();
        let mut added: Vec<(&[u8], &[u8])> = Vec::new();
        for (key, new) in writes {
            let old = base.get(key);
            if old.as_deref() == new.as_deref() {
                continue;
            }
            if let Some(old) = old {
                removed.push((key.as_slice(), old));
            }
            if let Some(new) = new {
                added.push((key.as_slice(), new.as_slice()));
            }
        }
        let removed: Vec<(&[u8], &[u8])> =
            removed.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        self.plus(&sum_elements(&added))
            .minus(&sum_elements(&removed))
    }

    /// The accumulator of a whole state, computed from scratch.
    pub fn of_state(state: &dyn StateScan) -> LtHash {
        Self::of_pairs(state.scan())
    }

    /// The accumulator of the given pairs, computed from scratch. The pairs
    /// are read in order, in batches, and each batch's elements computed on
    /// every core.
    pub fn of_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> LtHash
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        const BATCH: usize = 4096;
        let mut acc = LtHash::EMPTY;
        let mut batch: Vec<(K, V)> = Vec::with_capacity(BATCH);
        let mut pairs = pairs.into_iter();
        loop {
            batch.extend(pairs.by_ref().take(BATCH));
            if batch.is_empty() {
                return acc;
            }
            let refs: Vec<(&[u8], &[u8])> = batch
                .iter()
                .map(|(k, v)| (k.as_ref(), v.as_ref()))
                .collect();
            acc = acc.plus(&sum_elements(&refs));
            drop(refs);
            batch.clear();
        }
    }

    /// Lane-wise sum, mod 2^16.
    fn plus(mut self, other: &LtHash) -> LtHash {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.wrapping_add(b);
        }
        self
    }

    /// Lane-wise difference, mod 2^16.
    fn minus(mut self, other: &LtHash) -> LtHash {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.wrapping_sub(b);
        }
        self
    }

    /// The lanes as 2048 little-endian bytes: the stored form.
    pub fn to_bytes(&self) -> [u8; LTHASH_BYTES] {
        let mut out = [0u8; LTHASH_BYTES];
        for (o, lane) in out.chunks_exact_mut(2).zip(self.0) {
            o.copy_from_slice(&lane.to_le_bytes());
        }
        out
    }

    /// Reads the stored form; `None` unless exactly 2048 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<LtHash> {
        if bytes.len() != LTHASH_BYTES {
            return None;
        }
        let mut lanes = [0u16; LANES];
        for (lane, b) in lanes.iter_mut().zip(bytes.chunks_exact(2)) {
            *lane = u16::from_le_bytes([b[0], b[1]]);
        }
        Some(LtHash(lanes))
    }

    /// The state root headers carry:
    /// `SHA3-256("rxchain-state-root-v1\0" || lanes as little-endian bytes)`.
    pub fn root(&self) -> Hash {
        Hash::of(&[ROOT_DOMAIN, &self.to_bytes()])
    }
}

/// Below this many elements one thread sums them: a thread costs about
/// as much as a few expansions.
const MIN_PARALLEL_ELEMENTS: usize = 48;

/// The sum of the pairs' elements. Lane-wise addition mod 2^16 is
/// commutative and associative, so splitting the pairs across threads and
/// adding the partial sums gives exactly the sequential result: the
/// contracts stay deterministic.
fn sum_elements(pairs: &[(&[u8], &[u8])]) -> LtHash {
    let serial = |pairs: &[(&[u8], &[u8])]| {
        let mut acc = LtHash::EMPTY;
        for (k, v) in pairs {
            acc.add(k, v);
        }
        acc
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if pairs.len() < MIN_PARALLEL_ELEMENTS || threads == 1 {
        return serial(pairs);
    }
    let per = pairs.len().div_ceil(threads);
    std::thread::scope(|s| {
        let mut chunks = pairs.chunks(per);
        // This thread takes the first chunk itself.
        let mine = chunks.next().unwrap_or(&[]);
        let others: Vec<_> = chunks.map(|c| (c, s.spawn(move || serial(c)))).collect();
        let mut acc = serial(mine);
        for (chunk, t) in others {
            // The expansion cannot panic; if a thread somehow did, its
            // chunk is summed here instead, so the result stays exact.
            let part = t.join().unwrap_or_else(|_| serial(chunk));
            acc = acc.plus(&part);
        }
        acc
    })
}

impl fmt::Debug for LtHash {
    /// Shows the root only: 1024 lanes say nothing to a reader.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LtHash(root {})", self.root())
    }
}

impl Serialize for LtHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(self.to_bytes()))
        } else {
            s.serialize_bytes(&self.to_bytes())
        }
    }
}

impl<'de> Deserialize<'de> for LtHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            hex::decode(s.as_ref()).map_err(de::Error::custom)?
        } else {
            <serde_bytes_compat::ByteBuf>::deserialize(d)?.0
        };
        LtHash::from_bytes(&bytes)
            .ok_or_else(|| de::Error::invalid_length(bytes.len(), &"2048 bytes"))
    }
}

/// A minimal owned byte buffer that deserializes from serde bytes (or a
/// sequence), so the binary form needs no extra crate.
mod serde_bytes_compat {
    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use std::fmt;

    pub struct ByteBuf(pub Vec<u8>);

    impl<'de> serde::Deserialize<'de> for ByteBuf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = ByteBuf;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v.to_vec()))
                }
                fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
                    let mut out = Vec::new();
                    while let Some(b) = seq.next_element::<u8>()? {
                        out.push(b);
                    }
                    Ok(ByteBuf(out))
                }
            }
            d.deserialize_bytes(V)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemStore;

    #[test]
    fn empty_state_has_the_empty_accumulator() {
        assert_eq!(LtHash::of_state(&MemStore::default()), LtHash::EMPTY);
        assert_ne!(LtHash::EMPTY.root(), Hash::ZERO);
    }

    #[test]
    fn length_prefix_separates_key_from_value() {
        let a = LtHash::of_pairs([(b"ab".as_slice(), b"c".as_slice())]);
        let b = LtHash::of_pairs([(b"a".as_slice(), b"bc".as_slice())]);
        assert_ne!(a, b);
    }

    #[test]
    fn stored_form_round_trips() {
        let a = LtHash::of_pairs([(b"k".as_slice(), b"v".as_slice())]);
        assert_eq!(LtHash::from_bytes(&a.to_bytes()), Some(a));
        assert_eq!(LtHash::from_bytes(&[0u8; 7]), None);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<LtHash>(&json).unwrap(), a);
        let bin = postcard::to_allocvec(&a).unwrap();
        assert_eq!(postcard::from_bytes::<LtHash>(&bin).unwrap(), a);
    }

    #[test]
    fn add_then_remove_is_the_identity() {
        let mut a = LtHash::of_pairs([(b"x".as_slice(), b"1".as_slice())]);
        let before = a;
        a.add(b"y", b"2");
        assert_ne!(a, before);
        a.remove(b"y", b"2");
        assert_eq!(a, before);
    }

    /// The accumulator one pair at a time, on one thread: what the parallel
    /// sums must equal exactly.
    fn one_by_one<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> LtHash {
        let mut acc = LtHash::EMPTY;
        for (k, v) in pairs {
            acc.add(k, v);
        }
        acc
    }

    #[test]
    fn parallel_sums_equal_the_sequential_accumulator() {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..1_200u32)
            .map(|i| {
                (
                    format!("k/{i}").into_bytes(),
                    i.to_le_bytes().repeat(i as usize % 7 + 1),
                )
            })
            .collect();
        let refs = || pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice()));
        let whole = LtHash::of_pairs(refs());
        assert_eq!(whole, one_by_one(refs()));
        // Fewer pairs than a batch, and fewer than the parallel threshold.
        assert_eq!(
            LtHash::of_pairs(refs().take(40)),
            one_by_one(refs().take(40))
        );
        assert_eq!(
            LtHash::of_pairs(refs().take(300)),
            one_by_one(refs().take(300))
        );

        // A large write set over that state: 200 changed, 100 deleted,
        // 300 added, 50 rewritten with the value they already have.
        let mut state = MemStore::default();
        for (k, v) in &pairs {
            state.0.insert(k.clone(), v.clone());
        }
        let mut writes = WriteSet::new();
        for i in 0..200u32 {
            writes.insert(format!("k/{i}").into_bytes(), Some(b"changed".to_vec()));
        }
        for i in 200..300u32 {
            writes.insert(format!("k/{i}").into_bytes(), None);
        }
        for i in 0..300u32 {
            writes.insert(
                format!("new/{i}").into_bytes(),
                Some(i.to_be_bytes().to_vec()),
            );
        }
        for (k, v) in pairs.iter().skip(300).take(50) {
            writes.insert(k.clone(), Some(v.clone()));
        }
        let updated = whole.updated(&state, &writes);
        state.commit(&writes);
        assert_eq!(updated, LtHash::of_state(&state));
        assert_eq!(
            updated,
            one_by_one(state.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
        );
        assert_ne!(updated, whole);
    }
}
