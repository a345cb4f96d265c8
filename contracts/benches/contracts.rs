//! Benchmarks of the contracts' hot paths: signing, verifying, and applying
//! a block of 1,000 mixed lifecycle transactions the way every node does
//! (`block::check_and_execute`), once verifying every signature and once
//! with every transaction already verified (the node's mempool `known`
//! callback), which isolates the cost of the rules themselves.
//!
//! The block is 200 prescriptions, each issued, assigned for pickup,
//! claimed, marked ready and dispensed in full, so it holds 1,200 ECDSA
//! verifications: one per transaction plus the claim proofs. A block whose
//! cost per transaction is close to one bare verification spends its time
//! on cryptography that cannot be skipped, not on bookkeeping.
//!
//! Run with `cargo bench -p rxchain-contracts --bench contracts`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use common::*;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rxchain_contracts::block::{self, Block};
use rxchain_contracts::crypto::signing_digest;
use rxchain_contracts::tx::{DeliveryStatus, TxId, VerifiedTx};

/// Prescriptions in the benchmark block; five transactions each.
const PRESCRIPTIONS: usize = 200;

/// A staffed world and the next block: 1,000 transactions, all applied.
fn world_and_block() -> (World, Block) {
    let mut w = World::staffed_with_seed("bench");
    let pharmacies = [("ph-a", PHARM_A), ("ph-b", PHARM_B), ("ph-c", PHARM_C)];
    let doctors = [("dr-north", HOSP_NORTH), ("dr-south", HOSP_SOUTH)];
    let mut txs = Vec::with_capacity(PRESCRIPTIONS * 5);
    for i in 0..PRESCRIPTIONS {
        let (doctor, hospital) = doctors[i % 2];
        let (pharmacist, pharmacy) = pharmacies[i % 3];
        let mut spec = if i % 5 == 0 {
            RxSpec::controlled(10)
        } else {
            RxSpec::simple(20)
        };
        spec.repeats = (i % 3) as u8;
        let (issue, rx) = w.issue(&staff(doctor), hospital, spec);
        txs.push(issue);
        txs.push(w.assign_pickup(&rx, pharmacy));
        txs.push(w.claim(&staff(pharmacist), pharmacy, &rx));
        txs.push(w.delivery(&staff(pharmacist), rx.id, DeliveryStatus::ReadyForPickup));
        let quantity = rx.body.items[0].quantity.get();
        txs.push(w.dispense(&staff(pharmacist), rx.id, &[(0, quantity)], true));
    }
    let base = w.clone();
    let outcomes = w.run(txs);
    assert!(
        outcomes.iter().all(|o| o.is_applied()),
        "every benchmark transaction applies"
    );
    let block = w.blocks.last().unwrap().clone();
    (base, block)
}

fn signatures(c: &mut Criterion) {
    let key = test_key("bench-signer");
    let digest = signing_digest(
        "tx/rxchain-test/claim",
        b"a typical transaction's signing bytes",
    );
    let sig = key.sign_digest(&digest);
    let public = key.public();
    let mut g = c.benchmark_group("ecdsa");
    g.bench_function("sign", |b| {
        b.iter(|| black_box(&key).sign_digest(black_box(&digest)))
    });
    g.bench_function("verify", |b| {
        b.iter(|| black_box(&public).verify_digest(black_box(&digest), black_box(&sig)))
    });
    g.finish();
}

fn block_apply(c: &mut Criterion) {
    let (w, block) = world_and_block();
    let g = &w.genesis;
    let verified: HashMap<TxId, VerifiedTx> = block
        .txs
        .iter()
        .map(|t| {
            let v = t.clone().verify(CHAIN_ID).expect("valid");
            (v.id(), v)
        })
        .collect();
    let none = |_: &TxId| None;
    let known = |id: &TxId| verified.get(id).cloned();
    // The block must check on both paths before it is timed.
    block::check_and_execute(g, &w.store, &w.tip, &block, &none).expect("the block checks");
    block::check_and_execute(g, &w.store, &w.tip, &block, &known).expect("the block checks");

    let mut group = c.benchmark_group("block_of_1000_mixed_txs");
    group.throughput(Throughput::Elements(block.txs.len() as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(12));
    group.bench_function("check_and_execute_verifying_signatures", |b| {
        b.iter(|| block::check_and_execute(g, &w.store, &w.tip, black_box(&block), &none).unwrap())
    });
    group.bench_function("check_and_execute_pre_verified", |b| {
        b.iter(|| block::check_and_execute(g, &w.store, &w.tip, black_box(&block), &known).unwrap())
    });
    group.bench_function("verify_every_tx_only", |b| {
        b.iter_batched(
            || block.txs.clone(),
            |txs| {
                txs.into_iter()
                    .map(|t| t.verify(CHAIN_ID).unwrap())
                    .collect::<Vec<_>>()
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, signatures, block_apply);
criterion_main!(benches);
