//! Test 7 of issue 10: verified, streamed snapshots.
//!
//! Three in-process nodes on 127.0.0.1:0 with tiny snapshot settings, so a
//! follower cut off by the test-only partition falls behind a purged log and
//! can only catch up from a snapshot:
//!
//! - 7a: an honest snapshot is checked (tip signature, hash links, state
//!   root recomputed while streaming) and installed; the follower reaches
//!   the same head and state root as the others.
//! - 7b: with the leaders' snapshot-tampering fault on (one byte of a state
//!   value flipped), the follower refuses every copy: its tip and state stay
//!   as they were, the refusal is counted in
//!   `rxchain_snapshots_refused_total`, and it keeps running. Once the fault
//!   is cleared it catches up from an honest snapshot. The same for a
//!   snapshot without the tip's quorum certificate, and for one whose
//!   certificates each lack a vote.
//! - 7c: a snapshot with forged query indexes (every transaction located
//!   in block 1) installs, and the receiver's indexes are rebuilt from the
//!   blocks: the indexes are never taken from a snapshot.

mod common;

use std::time::Duration;

use common::inproc::{
    applied_index, client_of_leader, commit_blocks, is_voter, partition, purged_past, wait_until,
};
use rxchain::client::Client;
use rxchain::demo::Demo;
use rxchain::node::RunningNode;
use rxchain::raft::Tamper;
use rxchain::test_support::{register_demo_staff, wait_for_leader};

fn refused_total(n: &RunningNode) -> u64 {
    n.service.metrics.snapshots_refused.get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lagging_follower_installs_honest_snapshots_and_refuses_tampered_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::load().expect("demo fixture");
    demo.write_files(dir.path(), &[1, 2, 3])
        .expect("demo files");

    // 1. Three voters: node 1 bootstraps, 2 and 3 join through it.
    let n1 = common::inproc::start(dir.path(), 1, None, |_| {}).await;
    wait_for_leader(&n1).await.expect("leader");
    let addr1 = n1.addr.to_string();
    let n2 = common::inproc::start(dir.path(), 2, Some(&addr1), |_| {}).await;
    let n3 = common::inproc::start(dir.path(), 3, Some(&addr1), |_| {}).await;
    wait_until("nodes 2 and 3 are voters", 60, || {
        is_voter(&n1, 2) && is_voter(&n1, 3)
    })
    .await;
    let client = Client::new(format!("http://{}", n1.addr));
    register_demo_staff(&demo, &client)
        .await
        .expect("staff registered");
    let nodes = [&n1, &n2, &n3];

    // 7a. Node 3 is cut off while the others commit past a snapshot and
    // purge their logs; healed, it can only catch up from a snapshot.
    partition(&nodes, Some(3));
    // A block node 3 accepted just before the cut may still be applying;
    // let it settle before taking the reference point.
    let mut cut_at = n3.chain.tip();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = n3.chain.tip();
        if now == cut_at {
            break;
        }
        cut_at = now;
    }
    let cut_index = applied_index(&n3);
    commit_blocks(&demo, &client, "a", 6).await;
    wait_until(
        "the leader built a snapshot past node 3 and purged",
        30,
        || purged_past(&n1, cut_index),
    )
    .await;
    assert_eq!(n3.chain.tip(), cut_at, "a cut-off node learns nothing");
    let installed_before = n3.raft.metrics().borrow().snapshot;
    partition(&nodes, None);
    wait_until("node 3 reaches node 1's head", 60, || {
        n3.chain.tip() == n1.chain.tip() && n1.chain.tip() == n2.chain.tip()
    })
    .await;
    assert_ne!(
        n3.raft.metrics().borrow().snapshot,
        installed_before,
        "node 3 caught up by installing a snapshot"
    );
    assert_eq!(
        n3.chain.tip().state.root(),
        n1.chain.tip().state.root(),
        "the same state root"
    );
    assert_eq!(
        n3.chain.recompute_state_accumulator().expect("reads"),
        n3.chain.tip().state,
        "the installed state is the state the root commits to"
    );
    assert_eq!(refused_total(&n3), 0, "an honest snapshot is never refused");

    // 7b. Cut off again; the others commit and purge; every node that may
    // lead now tampers with the snapshots it sends.
    partition(&nodes, Some(3));
    let cut_at = n3.chain.tip();
    let digest_at_cut = n3.chain.try_state_digest().expect("reads");
    let cut_index = applied_index(&n3);
    let leader = client_of_leader(&nodes).await;
    commit_blocks(&demo, &leader, "b", 6).await;
    wait_until(
        "the others built a snapshot past node 3 and purged",
        30,
        || purged_past(&n1, cut_index) && purged_past(&n2, cut_index),
    )
    .await;
    // Each forgery in turn: a flipped state byte, the tip's certificate
    // left out, a vote taken out of every certificate. Each is refused.
    partition(&nodes, None);
    for mode in [Tamper::StateByte, Tamper::DropTipCert, Tamper::DropVote] {
        for n in [&n1, &n2] {
            assert!(n.service.faults.set_tamper_snapshot(mode));
        }
        // Let a stream of the previous forgery finish, then count anew.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = refused_total(&n3);
        wait_until(
            &format!("node 3 refused a snapshot forged as {mode:?}"),
            60,
            || refused_total(&n3) > before,
        )
        .await;
        // It keeps refusing while the fault is on, and nothing is applied.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            n3.chain.tip(),
            cut_at,
            "{mode:?}: a refused snapshot moves no tip"
        );
        assert_eq!(
            n3.chain.try_state_digest().expect("reads"),
            digest_at_cut,
            "{mode:?}: a refused snapshot changes no state"
        );
    }
    assert!(
        n3.raft.metrics().borrow().running_state.is_ok(),
        "the refusing node's Raft keeps running"
    );
    let metrics = reqwest::get(format!("http://{}/metrics", n3.addr))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("rxchain_snapshots_refused_total ") && !l.ends_with(" 0")),
        "the refusal is counted in /metrics:\n{metrics}"
    );

    // The fault is cleared: the next snapshot is honest and installs.
    for n in [&n1, &n2] {
        assert!(n.service.faults.set_tamper_snapshot(Tamper::Off));
    }
    let refused = refused_total(&n3);
    wait_until("node 3 catches up from an honest snapshot", 90, || {
        let head = n1.chain.tip();
        n3.chain.tip() == head && n2.chain.tip() == head
    })
    .await;
    assert!(n3.chain.tip().height > cut_at.height);
    assert_eq!(
        n3.chain.recompute_state_accumulator().expect("reads"),
        n3.chain.tip().state
    );
    assert!(refused_total(&n3) >= refused, "counter never goes back");

    // 7c. The query indexes are not covered by the state root, so they are
    // never taken from a snapshot: a snapshot whose transaction locations
    // all point at block 1 installs (blocks and state are sound), and the
    // receiver's locations are the ones it rebuilt from the blocks.
    partition(&nodes, Some(3));
    let cut_at = n3.chain.tip();
    let cut_index = applied_index(&n3);
    let leader = client_of_leader(&nodes).await;
    commit_blocks(&demo, &leader, "c", 6).await;
    wait_until(
        "the others built a snapshot past node 3 and purged",
        30,
        || purged_past(&n1, cut_index) && purged_past(&n2, cut_index),
    )
    .await;
    for n in [&n1, &n2] {
        assert!(n.service.faults.set_tamper_snapshot(Tamper::MoveTxIndex));
    }
    let refused = refused_total(&n3);
    partition(&nodes, None);
    wait_until(
        "node 3 installs the snapshot with forged indexes",
        90,
        || {
            let head = n1.chain.tip();
            n3.chain.tip() == head && n2.chain.tip() == head
        },
    )
    .await;
    assert_eq!(refused_total(&n3), refused, "blocks and state were sound");
    for n in [&n1, &n2] {
        assert!(n.service.faults.set_tamper_snapshot(Tamper::Off));
    }
    let chain_id = demo.genesis.chain_id.to_string();
    let mut checked = 0;
    for b in n1.chain.blocks(cut_at.height + 1) {
        let b = b.expect("block reads");
        for (i, stx) in b.txs.iter().enumerate() {
            let id = stx.tx.id(&chain_id);
            assert_eq!(
                n3.chain.tx_location(&id).expect("reads"),
                Some((b.header.height, i as u32)),
                "node 3 locates {id} where the block holds it"
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "the new blocks' transactions were checked");

    for n in [n3, n2, n1] {
        n.stop().await;
    }
}
