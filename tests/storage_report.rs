//! `rxchain storage-report` on a real node's stopped data directory: every
//! tree and chain record kind is counted, the counts agree with the chain,
//! and the directory is not written.

mod common;

use serde_json::Value;

fn report(dir: &std::path::Path, genesis: &std::path::Path, json: bool) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_rxchain"));
    c.arg("storage-report")
        .arg(dir)
        .arg("--genesis")
        .arg(genesis);
    if json {
        c.arg("--json");
    }
    c.env("RXCHAIN_LOG", "warn").output().expect("rxchain runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_report_counts_every_record_of_a_stopped_node() {
    let t = common::start_demo_node().await;
    common::inproc::commit_blocks(&t.demo, &t.client, "storage", 5).await;
    let height = t.node.chain.tip().height;
    t.node.stop().await;
    let data = t.dir.path().join("node1");
    let genesis = t.dir.path().join("genesis.json");
    // The last flush of a stopped node may land a moment after stop.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    let out = report(&data, &genesis, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(r["height"], height);
    assert_eq!(
        r["chain"]["b/"]["records"], height,
        "one block record per height: {r}"
    );
    let txs = r["transactions"].as_u64().unwrap();
    assert!(txs > 5, "the demo staff registrations and the five: {r}");
    for tree in ["chain", "raft_log", "raft_meta"] {
        assert!(
            r["trees"][tree]["records"].as_u64().unwrap() > 0,
            "{tree}: {r}"
        );
    }
    // Each transaction is stored once: every applied block's log entry is
    // a reference to the chain's block, and the whole-entry log keeps only
    // Raft's own small entries.
    assert_eq!(
        r["trees"]["raft_log_applied"]["records"], height,
        "one reference per applied block: {r}"
    );
    assert!(
        r["trees"]["raft_log"]["value_bytes"].as_u64().unwrap() * 4
            < r["chain"]["b/"]["value_bytes"].as_u64().unwrap(),
        "the log does not hold the blocks again: {r}"
    );
    for prefix in ["s/staff", "t/", "h/", "m/tip"] {
        assert!(
            r["chain"][prefix]["records"].as_u64().unwrap() > 0,
            "{prefix}: {r}"
        );
    }
    // The parts add up, and the disk holds at least what is stored.
    let trees: u64 = r["trees"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p["key_bytes"].as_u64().unwrap() + p["value_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(trees, r["logical_bytes"].as_u64().unwrap());
    let chain: u64 = r["chain"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p["records"].as_u64().unwrap())
        .sum();
    assert_eq!(chain, r["trees"]["chain"]["records"].as_u64().unwrap());
    assert!(r["disk_bytes"].as_u64().unwrap() >= r["logical_bytes"].as_u64().unwrap());
    assert_eq!(
        r["logical_bytes_per_tx"].as_u64().unwrap(),
        r["logical_bytes"].as_u64().unwrap() / txs
    );

    // The table says the same, and reading wrote nothing.
    let before = std::fs::read(data.join("db")).unwrap();
    let table = report(&data, &genesis, false);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(&format!("height {height}, {txs} transactions")),
        "{text}"
    );
    assert!(text.contains("raft_log") && text.contains("b/"), "{text}");
    assert_eq!(
        std::fs::read(data.join("db")).unwrap(),
        before,
        "the directory is not written"
    );

    // The references are checked: the log rebuilt from them verifies, and
    // one that names another block is found by `rxchain verify`.
    let verify = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_rxchain"))
            .arg("verify")
            .arg(&data)
            .arg("--genesis")
            .arg(&genesis)
            .env("RXCHAIN_LOG", "warn")
            .output()
            .expect("rxchain runs")
    };
    let good = verify();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    {
        let db = sled::open(&data).unwrap();
        let refs = db.open_tree("raft_log_applied").unwrap();
        let (k, mut v) = refs
            .iter()
            .last()
            .unwrap()
            .map(|(k, v)| (k, v.to_vec()))
            .unwrap();
        let at = v.len() - 1;
        v[at] ^= 1; // the last byte of the block hash
        refs.insert(k, v).unwrap();
        db.flush().unwrap();
    }
    let bad = verify();
    assert!(!bad.status.success());
    let why = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stderr),
        String::from_utf8_lossy(&bad.stdout)
    );
    assert!(why.contains("is not the block it carried"), "{why}");

    // Not a data directory: a sentence, not a panic.
    let empty = tempfile::tempdir().unwrap();
    let bad = report(empty.path(), &genesis, false);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not a node's data directory"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
