//! Several in-process nodes of the demo consortium on 127.0.0.1:0, with
//! tiny snapshot settings and the test-only partition, so that a node cut
//! off falls behind a purged log and can only catch up from a snapshot
//! (tests/snapshot.rs, tests/email.rs).

use std::collections::BTreeSet;
use std::time::Duration;

use rxchain::client::{Client, Submitted};
use rxchain::config::{RaftSettings, Settings};
use rxchain::demo::{admin_key, staff_key, Demo};
use rxchain::node::RunningNode;
use rxchain::test_support::demo_settings;
use rxchain_contracts::{Label, OrgId};

/// Snapshots every few entries, no log kept behind them.
pub fn raft_settings() -> RaftSettings {
    RaftSettings {
        heartbeat_ms: 100,
        election_min_ms: 600,
        election_max_ms: 1200,
        snapshot_after_logs: 4,
        keep_logs: 0,
        ..RaftSettings::default()
    }
}

/// Starts demo node `id` over `dir` (its files written) with the tiny
/// snapshot settings and the test-only faults on, joining through `peer`
/// unless it bootstraps; `tweak` changes its settings last.
pub async fn start(
    dir: &std::path::Path,
    id: u64,
    peer: Option<&str>,
    tweak: impl FnOnce(&mut Settings),
) -> RunningNode {
    let mut s = demo_settings(dir, id, "127.0.0.1:0".parse().unwrap(), None);
    s.raft = raft_settings();
    s.testing_faults = true;
    if let Some(p) = peer {
        s.bootstrap = false;
        s.peers.insert("1".into(), p.into());
    }
    tweak(&mut s);
    rxchain::node::start(s).await.expect("node starts")
}

/// Waits until `f` holds, polling, or panics with `what`.
pub async fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn is_voter(n: &RunningNode, id: u64) -> bool {
    n.raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .any(|v| v == id)
}

/// Cuts node `id` off from the others, or heals every cut.
pub fn partition(nodes: &[&RunningNode], id: Option<u64>) {
    for (i, n) in nodes.iter().enumerate() {
        let me = i as u64 + 1;
        let blocked: BTreeSet<u64> = match id {
            None => BTreeSet::new(),
            Some(cut) if cut == me => (1..=nodes.len() as u64).filter(|p| *p != me).collect(),
            Some(cut) => [cut].into(),
        };
        assert!(n.service.faults.set_blocked(blocked), "faults are enabled");
    }
}

/// Commits `n` transactions (staff registrations by an org admin, each
/// with a fresh key) through `client`, one block at least each.
pub async fn commit_blocks(demo: &Demo, client: &Client, tag: &str, n: usize) {
    let s = &demo.staff[0];
    for i in 0..n {
        let tx = rxchain::txbuild::register_staff(
            &demo.genesis,
            &admin_key(&s.org),
            OrgId::parse(s.org.clone()).unwrap(),
            staff_key(&format!("snapshot-test-{tag}-{i}")).public(),
            s.role,
            Label::parse(s.licence.clone()).unwrap(),
            Label::parse(format!("Snapshot Test {tag} {i}")).unwrap(),
        );
        match client.submit(&tx).await.expect("submitted") {
            Submitted::Applied(_) => {}
            Submitted::Pending(poll) => {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                loop {
                    let v: serde_json::Value = client.get(&poll).await.expect("poll");
                    if v.get("receipt").is_some() {
                        break;
                    }
                    assert!(tokio::time::Instant::now() < deadline, "still pending");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// The log index node `n` has applied up to.
pub fn applied_index(n: &RunningNode) -> u64 {
    n.raft
        .metrics()
        .borrow()
        .last_applied
        .map_or(0, |l| l.index)
}

/// Whether `leader` built a snapshot and purged its log past `index`.
pub fn purged_past(leader: &RunningNode, index: u64) -> bool {
    let m = leader.raft.metrics().borrow().clone();
    m.snapshot.is_some() && m.purged.is_some_and(|p| p.index > index)
}

/// A client of the node that currently leads (commits go through it).
pub async fn client_of_leader(nodes: &[&RunningNode]) -> Client {
    for _ in 0..100 {
        if let Some(l) = nodes[0].raft.metrics().borrow().current_leader {
            if let Some(n) = nodes.get(l as usize - 1) {
                return Client::new(format!("http://{}", n.addr));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader known");
}
