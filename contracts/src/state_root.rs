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
    pub fn updated(&self, base: &dyn StateRead, writes: &WriteSet) -> LtHash {
        let mut acc = *self;
        for (key, new) in writes {
            let old = base.get(key);
            if old.as_deref() == new.as_deref() {
                continue;
            }
            if let Some(old) = old {
                acc.remove(key, &old);
            }
            if let Some(new) = new {
                acc.add(key, new);
            }
        }
        acc
    }

    /// The accumulator of a whole state, computed from scratch.
    pub fn of_state(state: &dyn StateScan) -> LtHash {
        Self::of_pairs(state.scan())
    }

    /// The accumulator of the given pairs, computed from scratch.
    pub fn of_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> LtHash
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut acc = LtHash::EMPTY;
        for (k, v) in pairs {
            acc.add(k.as_ref(), v.as_ref());
        }
        acc
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
}
