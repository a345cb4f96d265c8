//! Shared test harness: real nodes on port 0, each in its own temp dir, a
//! synthetic genesis for the storage and Raft tests ([`genesis`]), and
//! synthetic issue inputs for the process tests ([`issue`]), and what the
//! browser tests share ([`browser`]).
//!
//! Each test binary uses only part of it, so unused items are expected.
#![allow(dead_code)]

pub mod browser;
pub mod genesis;
pub mod inproc;
pub mod issue;
pub mod spawned;

use std::path::Path;
use std::time::Duration;

use rxchain::client::Client;
use rxchain::config::Settings;
use rxchain::demo::Demo;
use rxchain::node::RunningNode;
use rxchain::test_support::{demo_settings, register_demo_staff, wait_for_leader};

/// A running one-node demo consortium.
pub struct TestNode {
    pub node: RunningNode,
    pub client: Client,
    pub demo: Demo,
    pub base: String,
    pub dir: tempfile::TempDir,
}

/// Starts a one-node demo consortium on 127.0.0.1:0 with its staff registered.
pub async fn start_demo_node() -> TestNode {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::load().expect("demo fixture");
    demo.write_files(dir.path(), &[1]).expect("demo files");
    let node = rxchain::node::start(demo_settings(
        dir.path(),
        1,
        "127.0.0.1:0".parse().unwrap(),
        None,
    ))
    .await
    .expect("node starts");
    wait_for_leader(&node).await.expect("leader");
    let base = format!("http://{}", node.addr);
    let client = Client::new(base.clone());
    register_demo_staff(&demo, &client)
        .await
        .expect("staff registered");
    TestNode {
        node,
        client,
        demo,
        base,
        dir,
    }
}

/// Starts a node with `settings`, retrying for up to 5 s: the database
/// lock of a stopped node goes with its last handle, which a finishing task
/// may hold a moment longer.
pub async fn start_retrying(settings: Settings) -> RunningNode {
    let mut tries = 0;
    loop {
        match rxchain::node::start(settings.clone()).await {
            Ok(n) => return n,
            Err(e) if tries < 50 => {
                tries += 1;
                tracing::debug!(error = %e, "node not startable yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("node {} starts over its data: {e}", settings.node_id),
        }
    }
}

/// Polls `f` until it answers `Some`, for at most `secs`, or panics with
/// `what`.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts (or restarts) demo node 1 over `dir`, its files already written,
/// with `tweak` applied to its settings; answers the node and its base URL
/// once it leads.
pub async fn boot(dir: &Path, tweak: impl FnOnce(&mut Settings)) -> (RunningNode, String) {
    let mut settings = demo_settings(dir, 1, "127.0.0.1:0".parse().unwrap(), None);
    tweak(&mut settings);
    let node = start_retrying(settings).await;
    wait_for_leader(&node).await.expect("leader");
    let base = format!("http://{}", node.addr);
    (node, base)
}
