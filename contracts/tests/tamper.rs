//! Tamper evidence: a chain of mixed blocks where any single changed byte of
//! a block, a transaction, a ciphertext or a key wrap is noticed, and merkle
//! inclusion proofs that hold for every transaction and fail once altered.
//!
//! A flip is "noticed" when the bytes no longer decode, when the block check
//! (`block::check_and_execute`, the engine of `verify::verify_chain`) names
//! what is wrong, or, for ciphertexts, when opening fails. The reason must
//! fit the region that was changed: a header flip is a header or signature
//! error, a flip in transaction `j` is `BadTx { index: j }`, and so on, so a
//! detection by accident (a later, unrelated check) would fail the test.

mod common;

use std::collections::BTreeSet;

use common::*;
use rxchain_contracts::block::{self, Block, BlockError, InclusionProof, Tip};
use rxchain_contracts::crypto::Hash;
use rxchain_contracts::encoding;
use rxchain_contracts::lifecycle::{Outcome, Rejection};
use rxchain_contracts::privacy::{self, AccessSecret, ContentKey, Sealed, WrappedKey};
use rxchain_contracts::state::MemStore;
use rxchain_contracts::tx::{DeliveryStatus, Fulfilment, SignedTx, TxBody, TxError, TxId};
use rxchain_contracts::verify::{self, Verifier};

/// Prescriptions of the tamper chain, kept to open their ciphertexts.
struct Chain {
    world: World,
    delivered: Rx,
}

/// Five blocks: staff, issues, assignments and claims, fills with refusals
/// and a replay, then delivery progress and a revocation.
fn mixed_chain() -> Chain {
    let mut w = World::staffed_with_seed("tamper");
    // Block 2: three prescriptions, one controlled.
    let (i1, rx1) = w.issue(
        &staff("dr-north"),
        HOSP_NORTH,
        RxSpec::simple(10).repeats(1),
    );
    let (i2, rx2) = w.issue(&staff("dr-south"), HOSP_SOUTH, RxSpec::controlled(5));
    let (i3, rx3) = w.issue(&staff("dr-north-2"), HOSP_NORTH, RxSpec::simple(3));
    assert!(w.run(vec![i1, i2, i3]).iter().all(Outcome::is_applied));
    // Block 3: assignments, a claim, a wrong-secret claim, a cancellation.
    let cancel = w.cancel(&rx3.patient, rx3.id);
    let txs = vec![
        w.assign_delivery(&rx1, PHARM_A, "4 Synthetic Square, Testtown"),
        w.assign_pickup(&rx2, PHARM_B),
        w.claim(&staff("ph-a"), PHARM_A, &rx1),
        w.claim_with_secret(
            &staff("ph-c"),
            PHARM_C,
            rx2.id,
            &AccessSecret::from_bytes([0x66; 32]),
        ),
        cancel.clone(),
    ];
    w.advance_ms(HOUR_MS);
    w.run(txs);
    // Block 4: fills, a replay and a refused claim.
    let txs = vec![
        w.dispense(&staff("ph-a"), rx1.id, &[(0, 10)], false),
        w.claim(&staff("ph-b"), PHARM_B, &rx2),
        w.delivery(&staff("ph-a"), rx1.id, DeliveryStatus::Packed),
        w.hand_to_carrier(&staff("ph-a"), rx1.id, LOGISTICS),
        w.dispense(&staff("ph-b"), rx2.id, &[(0, 5)], false),
        cancel,
        w.claim(&staff("ph-c"), PHARM_C, &rx3),
    ];
    w.advance_ms(HOUR_MS);
    w.run(txs);
    // Block 5: delivery progress, a revocation and a refusal of the revoked key.
    let txs = vec![
        w.delivery(&staff("courier-log"), rx1.id, DeliveryStatus::Dispatched),
        w.revoke(&admin_key(PHARM_A), &staff("ph-a-2").public()),
        w.dispense(&staff("ph-a-2"), rx1.id, &[(0, 1)], false),
        w.delivery(&staff("courier-a"), rx1.id, DeliveryStatus::OutForDelivery),
        w.release(&staff("ph-c"), rx3.id),
        w.set_controlled(&staff("officer"), "N05BA01", Some("IV")),
    ];
    w.advance_days(1);
    w.run(txs);
    let outcomes: Vec<&Outcome> = w.blocks.iter().flat_map(|b| &b.outcomes).collect();
    assert!(
        outcomes.iter().filter(|o| !o.is_applied()).count() >= 4,
        "the chain records refusals"
    );
    verify::verify_chain(&w.genesis, &w.blocks).expect("the untouched chain verifies");
    Chain {
        world: w,
        delivered: rx1,
    }
}

/// The state and tip before each block, rebuilt by replaying the chain.
fn pre_states(w: &World) -> Vec<(MemStore, Tip)> {
    let mut store = MemStore::default();
    let mut tip = Tip::genesis(&w.genesis);
    let mut out = Vec::new();
    for b in &w.blocks {
        out.push((store.clone(), tip));
        let (_, exec) =
            block::check_and_execute(&w.genesis, &store, &tip, b, &w.known()).expect("valid chain");
        store.commit(&exec.writes);
        tip = Tip {
            height: b.header.height,
            hash: b.hash(CHAIN_ID),
            timestamp: b.header.timestamp,
            state: exec.state,
        };
    }
    out
}

/// Which part of an encoded block a byte belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Region {
    Header,
    BlockSignature,
    TxCount,
    /// Transaction `j`: its body (`sig == false`) or its signature.
    Tx {
        j: usize,
        sig: bool,
        ciphertext: bool,
    },
    OutcomeCount,
    Outcome {
        j: usize,
    },
    /// The clock attestations.
    Clock,
}

/// The region of every byte of `block`'s encoding.
fn regions(block: &Block) -> Vec<Region> {
    let mut r = Vec::new();
    r.extend(std::iter::repeat_n(
        Region::Header,
        encoding::to_bytes(&block.header).len(),
    ));
    r.extend(std::iter::repeat_n(Region::BlockSignature, 64));
    let txs_len: usize = block.txs.iter().map(|t| t.to_bytes().len()).sum();
    r.extend(std::iter::repeat_n(
        Region::TxCount,
        encoding::to_bytes(&block.txs).len() - txs_len,
    ));
    for (j, t) in block.txs.iter().enumerate() {
        let body = encoding::to_bytes(&t.tx);
        let mut marks = vec![false; body.len()];
        if let TxBody::Issue(b) = &t.tx.body {
            mark(&mut marks, &body, &b.sealed.ciphertext);
            mark(
                &mut marks,
                &body,
                &b.key_for_hospital.sealed.present().unwrap().ciphertext,
            );
        }
        r.extend(marks.into_iter().map(|c| Region::Tx {
            j,
            sig: false,
            ciphertext: c,
        }));
        r.extend(std::iter::repeat_n(
            Region::Tx {
                j,
                sig: true,
                ciphertext: false,
            },
            64,
        ));
    }
    let outs_len: usize = block
        .outcomes
        .iter()
        .map(|o| encoding::to_bytes(o).len())
        .sum();
    r.extend(std::iter::repeat_n(
        Region::OutcomeCount,
        encoding::to_bytes(&block.outcomes).len() - outs_len,
    ));
    for (j, o) in block.outcomes.iter().enumerate() {
        r.extend(std::iter::repeat_n(
            Region::Outcome { j },
            encoding::to_bytes(o).len(),
        ));
    }
    r.extend(std::iter::repeat_n(
        Region::Clock,
        encoding::to_bytes(&block.clock).len(),
    ));
    assert_eq!(
        r.len(),
        encoding::to_bytes(block).len(),
        "the region map covers the encoding exactly"
    );
    r
}

fn mark(marks: &mut [bool], hay: &[u8], needle: &[u8]) {
    let at = hay
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the ciphertext is in the transaction");
    marks[at..at + needle.len()]
        .iter_mut()
        .for_each(|m| *m = true);
}

/// The byte positions of a block that the scans flip: every byte of the
/// header, the block signature, the count prefixes and the outcomes, and a
/// dense rotating sample (one in `stride`) of transaction bodies, their
/// ciphertexts and signatures. Every byte of one transaction of each kind is
/// flipped by `every_single_byte_change_of_a_transaction_is_detected`; here
/// the point is that a changed transaction is caught *inside a block*, and
/// SHA3 and key decompression are slow enough in debug builds that flipping
/// all ~15,000 bytes would take minutes.
fn positions(map: &[Region], stride: usize, offset: usize) -> Vec<usize> {
    (0..map.len())
        .filter(|&i| match map[i] {
            Region::Tx { ciphertext, .. } => {
                (i + offset) % if ciphertext { stride / 2 } else { stride } == 0
            }
            _ => true,
        })
        .collect()
}

/// A different single-byte change for neighbouring positions, so that low,
/// high and all bits are each flipped somewhere in every region.
fn flip(bytes: &mut [u8], i: usize) {
    bytes[i] ^= [0x01, 0x80, 0xff, 0x10, 0x04, 0x40, 0x02][i % 7];
}

/// Asserts the block error fits the region that was changed.
fn fits(region: Region, err: &BlockError) -> bool {
    use BlockError::*;
    match region {
        Region::Header => matches!(
            err,
            WrongHeight { .. }
                | BrokenLink
                | TimeBackwards
                | UnknownProposer(_)
                | BadBlockSignature
        ),
        Region::BlockSignature => matches!(err, BadBlockSignature),
        Region::TxCount | Region::OutcomeCount => true,
        Region::Tx { j, .. } => matches!(err, BadTx { index, .. } if *index == j),
        Region::Outcome { .. } => matches!(err, OutcomesRootMismatch),
        Region::Clock => matches!(err, Clock(_)),
    }
}

#[test]
fn every_single_byte_change_of_every_block_is_detected() {
    let chain = mixed_chain();
    let w = &chain.world;
    let pre = pre_states(w);
    let known = w.known();
    let mut seen_regions = BTreeSet::new();
    let mut decode_failures = 0usize;
    let mut flips = 0usize;
    for (k, block) in w.blocks.iter().enumerate() {
        let original = encoding::to_bytes(block);
        let map = regions(block);
        let (store, tip) = &pre[k];
        for i in positions(&map, 6, k) {
            let mut bytes = original.clone();
            flip(&mut bytes, i);
            flips += 1;
            seen_regions.insert(match map[i] {
                Region::Tx {
                    sig, ciphertext, ..
                } => format!("tx sig={sig} ciphertext={ciphertext}"),
                Region::Outcome { .. } => "outcome".into(),
                other => format!("{other:?}"),
            });
            let Ok(tampered) = encoding::from_bytes::<Block>(&bytes) else {
                decode_failures += 1;
                continue;
            };
            assert_ne!(
                &tampered,
                block,
                "block {} byte {i} changed but decoded to the same block",
                k + 1
            );
            // The node's own path: transactions it verified before are
            // reused only when byte-identical, exactly as in production.
            match block::check_and_execute(&w.genesis, store, tip, &tampered, &known) {
                Ok(_) => panic!(
                    "block {} byte {i} ({:?}) was changed and not detected",
                    k + 1,
                    map[i]
                ),
                Err(e) => assert!(
                    fits(map[i], &e),
                    "block {} byte {i} ({:?}) gave an unrelated reason: {e}",
                    k + 1,
                    map[i]
                ),
            }
        }
    }
    for want in [
        "Header",
        "BlockSignature",
        "tx sig=false ciphertext=false",
        "tx sig=true ciphertext=false",
        "tx sig=false ciphertext=true",
        "outcome",
        "Clock",
    ] {
        assert!(
            seen_regions.contains(want),
            "region {want} was never flipped: {seen_regions:?}"
        );
    }
    assert!(
        decode_failures < flips,
        "some flips must reach the verifier, not just the decoder"
    );
}

#[test]
fn the_offline_verifier_names_the_first_wrong_block_and_why() {
    let chain = mixed_chain();
    let w = &chain.world;
    // 1. A sample (every 23rd byte and the first byte of every region of
    //    every block, so every transaction and outcome is hit)
    //    through the verifier, fed the good blocks before the tampered one.
    //    A refused push leaves the verifier unchanged, so one verifier per
    //    height serves every flip at that height.
    for (k, block) in w.blocks.iter().enumerate() {
        let mut v = Verifier::new(&w.genesis);
        for b in &w.blocks[..k] {
            v.push(b).expect("the blocks before are good");
        }
        let original = encoding::to_bytes(block);
        let map = regions(block);
        let mut firsts = BTreeSet::new();
        for (i, region) in map.iter().enumerate() {
            let first_of_region = firsts.insert(format!("{region:?}"));
            if (i + k) % 23 != 0 && !first_of_region {
                continue;
            }
            let mut bytes = original.clone();
            flip(&mut bytes, i);
            let Ok(tampered) = encoding::from_bytes::<Block>(&bytes) else {
                continue;
            };
            let failure = v
                .push(&tampered)
                .expect_err("a tampered block must not verify");
            assert_eq!(failure.height, k as u64 + 1, "byte {i} of block {}", k + 1);
            assert!(
                fits(*region, &failure.reason),
                "block {} byte {i} ({region:?}): {failure}",
                k + 1
            );
        }
    }
    // 2. The whole-chain entry point, from genesis, for one flip in the body
    //    of the middle transaction of every block: the report names that
    //    block although later blocks follow it.
    for (k, block) in w.blocks.iter().enumerate() {
        let j = block.txs.len() / 2;
        let mut blocks = w.blocks.clone();
        blocks[k].txs[j].tx.nonce ^= 1;
        let failure = verify::verify_chain(&w.genesis, &blocks).expect_err("tampered chain");
        assert_eq!(failure.height, k as u64 + 1);
        assert!(
            matches!(failure.reason, BlockError::BadTx { index, error: TxError::BadSignature } if index == j),
            "{failure}"
        );
        assert!(
            failure.to_string().contains(&format!("block {}", k + 1)),
            "the message names the block: {failure}"
        );
    }
}

#[test]
fn a_re_signed_block_with_a_rewritten_outcome_is_caught_by_re_execution() {
    // A proposer who signs a false outcome (here: a dispense refused as if
    // the prescription were unknown) produces a header that verifies; only
    // re-executing the transactions shows the lie.
    let chain = mixed_chain();
    let w = &chain.world;
    let k = 3;
    let mut blocks = w.blocks.clone();
    let b = &mut blocks[k];
    assert!(b.outcomes[0].is_applied());
    b.outcomes[0] = Outcome::Refused {
        reason: Rejection::UnknownPrescription,
    };
    let ids: Vec<TxId> = b.txs.iter().map(|t| t.tx.id(CHAIN_ID)).collect();
    let (tx_root, outcomes_root) = block::roots(&ids, &b.outcomes);
    b.header.tx_root = tx_root;
    b.header.outcomes_root = outcomes_root;
    let digest = rxchain_contracts::crypto::signing_digest(
        &block::BlockHeader::signing_tag(CHAIN_ID),
        b.header.hash(CHAIN_ID).as_bytes(),
    );
    b.signature = node_key(HOSP_NORTH).sign_digest(&digest);
    let failure = verify::verify_chain(&w.genesis, &blocks).expect_err("a lying block");
    assert_eq!(failure.height, k as u64 + 1);
    assert_eq!(failure.reason, BlockError::OutcomeMismatch { index: 0 });
}

#[test]
fn blocks_out_of_place_are_refused() {
    let chain = mixed_chain();
    let w = &chain.world;
    // 1. Skipping a block.
    let mut blocks = w.blocks.clone();
    blocks.remove(2);
    let f = verify::verify_chain(&w.genesis, &blocks).unwrap_err();
    assert_eq!(
        (f.height, f.reason),
        (3, BlockError::WrongHeight { got: 4, tip: 2 })
    );
    // 2. Swapping two blocks.
    let mut blocks = w.blocks.clone();
    blocks.swap(1, 2);
    assert_eq!(
        verify::verify_chain(&w.genesis, &blocks)
            .unwrap_err()
            .height,
        2
    );
    // 3. The same chain under another genesis.
    let mut other = w.genesis.clone();
    other.created_at = Timestamp(other.created_at.0 + 1);
    let f = verify::verify_chain(&other, &w.blocks).unwrap_err();
    assert_eq!((f.height, f.reason), (1, BlockError::BrokenLink));
}

use rxchain_contracts::model::Timestamp;

#[test]
fn every_single_byte_change_of_a_transaction_is_detected() {
    let chain = mixed_chain();
    let w = &chain.world;
    // One transaction of every kind.
    let mut by_kind = std::collections::BTreeMap::new();
    for t in w.blocks.iter().flat_map(|b| &b.txs) {
        by_kind.entry(t.tx.body.kind()).or_insert_with(|| t.clone());
    }
    assert_eq!(
        by_kind.len(),
        11,
        "the chain holds every kind: {:?}",
        by_kind.keys()
    );
    for (kind, tx) in by_kind {
        let original = tx.to_bytes();
        for i in 0..original.len() {
            let mut bytes = original.clone();
            flip(&mut bytes, i);
            let Ok(tampered) = encoding::from_bytes::<SignedTx>(&bytes) else {
                continue;
            };
            assert_ne!(tampered, tx);
            match tampered.verify(CHAIN_ID) {
                Err(TxError::BadSignature | TxError::Invalid(_)) => {}
                Ok(_) => panic!("byte {i} of a {kind} transaction was changed and still verifies"),
            }
        }
    }
}

/// Flips every byte of `value`'s encoding and insists each result either
/// fails to decode or fails `opens`.
fn every_flip_fails<T: serde::Serialize + serde::de::DeserializeOwned>(
    what: &str,
    value: &T,
    opens: impl Fn(&T) -> bool,
) {
    assert!(opens(value), "the untouched {what} opens");
    let original = encoding::to_bytes(value);
    for i in 0..original.len() {
        let mut bytes = original.clone();
        flip(&mut bytes, i);
        if let Ok(t) = encoding::from_bytes::<T>(&bytes) {
            assert!(
                !opens(&t),
                "byte {i} of the {what} was changed and it still opens"
            );
        }
    }
}

#[test]
fn every_single_byte_change_of_a_ciphertext_or_key_wrap_fails_to_open() {
    let chain = mixed_chain();
    let w = &chain.world;
    let rx = &chain.delivered;
    let TxBody::Issue(issue) = &w.blocks[1].txs[0].tx.body else {
        panic!("block 2 starts with the issue")
    };
    assert_eq!(issue.id, rx.id);
    let ctx = privacy::content_context(&rx.id);
    // 1. The sealed content, under the right content key.
    every_flip_fails("sealed content", &issue.sealed, |s: &Sealed| {
        privacy::open_content(&rx.id, s, &rx.content_key).is_ok()
    });
    // 2. The three key wraps, each with its rightful opener.
    every_flip_fails("patient wrap", &issue.key_for_patient, |k: &WrappedKey| {
        privacy::unwrap_with_secret(&rx.secret, &ctx, k).is_ok()
    });
    every_flip_fails(
        "hospital wrap",
        &issue.key_for_hospital,
        |k: &WrappedKey| privacy::unwrap_with_key(&data_key(HOSP_NORTH), &ctx, k).is_ok(),
    );
    every_flip_fails(
        "regulator wrap",
        &issue.key_for_regulators[0].1,
        |k: &WrappedKey| privacy::unwrap_with_key(&data_key(REGULATOR), &ctx, k).is_ok(),
    );
    // 3. The delivery address and the secret handed over to the pharmacy.
    let TxBody::Assign(assign) = &w.blocks[2].txs[0].tx.body else {
        panic!("block 3 starts with the assignment")
    };
    let Fulfilment::Delivery { address, .. } = &assign.fulfilment else {
        panic!("delivery")
    };
    let ck = *rx.content_key.expose();
    every_flip_fails("delivery address", address, |s: &Sealed| {
        privacy::open(&ck, &privacy::address_context(&rx.id), s).is_ok()
    });
    every_flip_fails(
        "handover",
        assign.handover.as_ref().unwrap(),
        |k: &WrappedKey| {
            privacy::unwrap_with_key(&data_key(PHARM_A), &privacy::handover_context(&rx.id), k)
                .is_ok()
        },
    );
    // 4. Moving a good ciphertext to another prescription fails as well.
    let elsewhere = rxchain_contracts::PrescriptionId::from_bytes([0x11; 16]);
    assert!(privacy::open_content(&elsewhere, &issue.sealed, &rx.content_key).is_err());
    assert!(
        privacy::open_content(&rx.id, &issue.sealed, &ContentKey::from_bytes([0; 32])).is_err()
    );
}

// ---- merkle inclusion proofs ----------------------------------------------

/// Every way to alter one part of a proof.
fn tampered_proofs(p: &InclusionProof) -> Vec<(String, InclusionProof)> {
    let mut out = Vec::new();
    let mut q = p.clone();
    q.tx_id = TxId(Hash::of(&[b"another transaction"]));
    out.push(("tx id".to_string(), q));
    let mut q = p.clone();
    q.outcome = match &p.outcome {
        Outcome::Applied => Outcome::Refused {
            reason: Rejection::Duplicate,
        },
        Outcome::Refused { .. } => Outcome::Applied,
    };
    out.push(("outcome".to_string(), q));
    for (s, _) in p.tx_path.iter().enumerate() {
        let mut q = p.clone();
        q.tx_path[s].sibling = Hash::of(&[q.tx_path[s].sibling.as_bytes()]);
        out.push((format!("tx path sibling {s}"), q));
        let mut q = p.clone();
        q.tx_path[s].left = !q.tx_path[s].left;
        out.push((format!("tx path side {s}"), q));
        let mut q = p.clone();
        q.tx_path.remove(s);
        out.push((format!("tx path without step {s}"), q));
    }
    for (s, _) in p.outcome_path.iter().enumerate() {
        let mut q = p.clone();
        q.outcome_path[s].sibling = Hash::of(&[q.outcome_path[s].sibling.as_bytes()]);
        out.push((format!("outcome path sibling {s}"), q));
        let mut q = p.clone();
        q.outcome_path[s].left = !q.outcome_path[s].left;
        out.push((format!("outcome path side {s}"), q));
    }
    let mut q = p.clone();
    q.tx_path.push(rxchain_contracts::block::ProofStep {
        sibling: Hash::ZERO,
        left: false,
    });
    out.push(("tx path with an extra step".to_string(), q));
    out
}

#[test]
fn inclusion_proofs_hold_for_every_transaction_of_every_block_size_from_1_to_17() {
    let mut w = World::staffed_with_seed("merkle");
    let rx = w.issued(RxSpec::simple(10));
    for n in 1..=17usize {
        // 1. A block of n transactions with mixed outcomes: a claim that may
        //    apply, then releases and wrong-secret claims that are refused.
        let mut txs = Vec::new();
        for i in 0..n {
            txs.push(match i % 3 {
                0 => w.claim(&staff("ph-a"), PHARM_A, &rx),
                1 => w.release(&staff("ph-a"), rx.id),
                _ => w.claim_with_secret(
                    &staff("ph-b"),
                    PHARM_B,
                    rx.id,
                    &AccessSecret::from_bytes([i as u8; 32]),
                ),
            });
        }
        w.run(txs);
        let block = w.blocks.last().unwrap().clone();
        let header = &block.header;
        assert_eq!(header.tx_count as usize, n);
        // 2. Every proof checks, and no proof exists past the end.
        for i in 0..n {
            let p = block
                .proof(CHAIN_ID, i)
                .expect("a proof for every transaction");
            assert_eq!(p.tx_id, block.txs[i].tx.id(CHAIN_ID));
            assert_eq!(p.outcome, block.outcomes[i]);
            assert!(p.check(header), "proof {i} of {n} does not check");
            // 3. Any altered part of the proof, or an altered header, fails.
            for (what, q) in tampered_proofs(&p) {
                assert!(
                    !q.check(header),
                    "proof {i} of {n} with a changed {what} still checks"
                );
            }
            let mut h = header.clone();
            h.tx_root = Hash::of(&[h.tx_root.as_bytes()]);
            assert!(
                !p.check(&h),
                "proof {i} of {n} checks against a changed tx root"
            );
            let mut h = header.clone();
            h.outcomes_root = Hash::of(&[h.outcomes_root.as_bytes()]);
            assert!(
                !p.check(&h),
                "proof {i} of {n} checks against a changed outcomes root"
            );
            // 4. A proof of one block does not check against another block.
            let prev = &w.blocks[w.blocks.len() - 2].header;
            assert!(
                !p.check(prev),
                "proof {i} of {n} checks against the previous block"
            );
        }
        assert!(block.proof(CHAIN_ID, n).is_none());
    }
}

#[test]
fn an_inclusion_proof_that_misstates_its_position_fails() {
    // The index is what a receipt shows as the transaction's place in the
    // block (and so its order relative to, say, a revocation); a proof that
    // keeps its hashes but claims another place must not check.
    let mut w = World::staffed_with_seed("merkle-index");
    let rx = w.issued(RxSpec::simple(10));
    for n in [1usize, 2, 5, 8, 13] {
        let txs = (0..n).map(|_| w.release(&staff("ph-a"), rx.id)).collect();
        w.run(txs);
        let block = w.blocks.last().unwrap();
        for i in 0..n {
            let p = block.proof(CHAIN_ID, i).unwrap();
            for wrong in [i + 1, i + 2, n, n + 5, usize::from(u16::MAX)]
                .into_iter()
                .chain(i.checked_sub(1))
            {
                if wrong == i {
                    continue;
                }
                let mut q = p.clone();
                q.index = wrong as u32;
                assert!(
                    !q.check(&block.header),
                    "proof {i} of {n} checks while claiming position {wrong}"
                );
            }
        }
    }
}
