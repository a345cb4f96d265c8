//! Checking many transaction signatures at once, on every core.
//!
//! The contracts check a block's transactions one by one on the thread that
//! applies it; `check_and_execute` takes a `known` lookup for transactions
//! already verified. A follower applying another leader's block, and
//! `rxchain verify` replaying the chain, check the signatures here first,
//! in parallel, and hand the results in through `known`, so every signature
//! is still checked exactly once while the state is replayed in order.

use std::collections::HashMap;

use rxchain_contracts::{SignedTx, TxId, VerifiedTx};

/// Below this many transactions the threads cost more than they save.
const MIN_PARALLEL: usize = 16;

/// Verifies `txs` on up to as many threads as the machine has cores (at
/// most 8) and returns the ones that verify, by id. A transaction that does
/// not verify is left out: the contracts check it again and report exactly
/// why.
pub fn verify_all(chain_id: &str, txs: &[&SignedTx]) -> HashMap<TxId, VerifiedTx> {
    let chunk_of = |chunk: &[&SignedTx]| {
        let mut keys = KeyMemo::default();
        chunk
            .iter()
            .filter_map(|t| keys.verify(chain_id, t))
            .collect::<Vec<_>>()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if txs.len() < MIN_PARALLEL || threads == 1 {
        return chunk_of(txs).into_iter().collect();
    }
    let per = txs.len().div_ceil(threads);
    std::thread::scope(|s| {
        let jobs: Vec<_> = txs
            .chunks(per)
            .map(|chunk| s.spawn(move || chunk_of(chunk)))
            .collect();
        // A panicking check leaves its chunk to the contracts' own check.
        jobs.into_iter()
            .filter_map(|j| j.join().ok())
            .flatten()
            .collect()
    })
}

/// Signers' keys already decompressed, for one run of checks.
///
/// A key decoded from a block or a binary submission is decompressed at its
/// first use, a square root per signature; the staff of a few organisations
/// sign most transactions, so one thread's checks reuse each point. At most
/// [`KeyMemo::MAX`] keys are kept; past that, keys are decompressed as usual.
#[derive(Default)]
pub struct KeyMemo(HashMap<[u8; 33], rxchain_contracts::PublicKey>);

impl KeyMemo {
    const MAX: usize = 4096;

    /// Gives `t` its signer's decompressed key. The key compares equal to
    /// the declared one (same bytes), so the transaction, its id and its
    /// encoding are unchanged. An invalid point is left as it is, for the
    /// signature check to refuse.
    pub fn prepare(&mut self, t: &mut SignedTx) {
        let bytes = *t.tx.signer.as_bytes();
        if let Some(k) = self.0.get(&bytes) {
            t.tx.signer = *k;
        } else if let Ok(k) = t.tx.signer.decompressed() {
            if self.0.len() < Self::MAX {
                self.0.insert(bytes, k);
            }
            t.tx.signer = k;
        }
    }

    /// Verifies a copy of `t` under its signer's decompressed key.
    fn verify(&mut self, chain_id: &str, t: &SignedTx) -> Option<(TxId, VerifiedTx)> {
        let mut t = t.clone();
        self.prepare(&mut t);
        t.verify(chain_id).ok().map(|v| (v.id(), v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rxchain_contracts::model::{Label, OrgId, Timestamp};
    use rxchain_contracts::tx::{RegisterStaff, Role, Transaction, TxBody};
    use rxchain_contracts::SecretKey;

    fn tx(n: u64, chain_id: &str) -> SignedTx {
        let admin = SecretKey::derive("preverify-test", b"admin");
        Transaction {
            signer: admin.public(),
            nonce: n,
            created_at: Timestamp(1_700_000_000_000 + n),
            body: TxBody::RegisterStaff(RegisterStaff {
                org: OrgId::parse("hosp-a").unwrap(),
                key: SecretKey::derive("preverify-test", &n.to_le_bytes()).public(),
                role: Role::Practitioner,
                licence: Label::parse("LIC-1").unwrap(),
                name: Label::parse("Dr Test").unwrap(),
            }),
        }
        .sign(chain_id, &admin)
    }

    #[test]
    fn every_good_signature_is_verified_and_bad_ones_are_left_out() {
        let chain_id = "rx-preverify";
        let mut txs: Vec<SignedTx> = (0..100).map(|n| tx(n, chain_id)).collect();
        // Two forgeries: a field changed after signing.
        txs[7].tx.nonce += 1_000;
        txs[93].tx.nonce += 1_000;
        let refs: Vec<&SignedTx> = txs.iter().collect();
        let got = verify_all(chain_id, &refs);
        assert_eq!(got.len(), 98);
        for (i, t) in txs.iter().enumerate() {
            let id = t.tx.id(chain_id);
            assert_eq!(got.contains_key(&id), i != 7 && i != 93, "tx {i}");
        }
        // The same below the parallel threshold.
        let few: Vec<&SignedTx> = txs.iter().take(8).collect();
        assert_eq!(verify_all(chain_id, &few).len(), 7);
        // And for another chain id nothing verifies.
        assert!(verify_all("rx-other", &refs).is_empty());
    }

    /// Keys decoded from the binary form are decompressed once per thread
    /// and reused; a signer that is not a point on the curve still fails.
    #[test]
    fn decoded_keys_are_memoised_and_an_invalid_point_is_left_out() {
        use rxchain_contracts::encoding;
        let chain_id = "rx-preverify";
        let decoded: Vec<SignedTx> = (0..40)
            .map(|n| encoding::from_bytes(&encoding::to_bytes(&tx(n, chain_id))).unwrap())
            .collect();
        let refs: Vec<&SignedTx> = decoded.iter().collect();
        let got = verify_all(chain_id, &refs);
        assert_eq!(got.len(), 40);
        // The verified transactions encode as they were signed.
        for t in &decoded {
            let v = &got[&t.tx.id(chain_id)];
            assert_eq!(encoding::to_bytes(v.signed()), encoding::to_bytes(t));
        }
        let mut memo = KeyMemo::default();
        assert!(memo.verify(chain_id, &decoded[0]).is_some());
        assert!(memo.verify(chain_id, &decoded[1]).is_some());
        assert_eq!(memo.0.len(), 1, "one signer, decompressed once");

        // x = 5 is not the x of any point on secp256k1 (5^3 + 7 = 132 has no
        // square root mod p), so the key decodes but cannot be used.
        let mut bytes = encoding::to_bytes(&decoded[2]);
        let key_at = bytes
            .windows(33)
            .position(|w| w == decoded[2].tx.signer.as_bytes())
            .unwrap();
        let mut bad = [0u8; 33];
        bad[0] = 2;
        bad[32] = 5;
        bytes[key_at..key_at + 33].copy_from_slice(&bad);
        let forged: SignedTx = encoding::from_bytes(&bytes).unwrap();
        assert!(memo.verify(chain_id, &forged).is_none());
        assert_eq!(memo.0.len(), 1, "an invalid point is not kept");
    }
}
