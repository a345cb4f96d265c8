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
    let one = |t: &SignedTx| (*t).clone().verify(chain_id).ok().map(|v| (v.id(), v));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if txs.len() < MIN_PARALLEL || threads == 1 {
        return txs.iter().filter_map(|t| one(t)).collect();
    }
    let per = txs.len().div_ceil(threads);
    std::thread::scope(|s| {
        let jobs: Vec<_> = txs
            .chunks(per)
            .map(|chunk| s.spawn(move || chunk.iter().filter_map(|t| one(t)).collect::<Vec<_>>()))
            .collect();
        // A panicking check leaves its chunk to the contracts' own check.
        jobs.into_iter()
            .filter_map(|j| j.join().ok())
            .flatten()
            .collect()
    })
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
}
