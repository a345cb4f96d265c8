//! Issue 10, test 8: receipts that prove a majority applied the block.
//! Three real node processes declare exactly three nodes; a receipt
//! fetched from each verifies offline with `rxchain receipt verify`, and
//! receipts with a vote removed (below the quorum), a duplicated vote or
//! an altered header fail with a precise reason.

use std::process::Command;
use std::time::{Duration, Instant};

use common::issue::{atorvastatin_issue, SyntheticPatient};
use procs::{Procs, BIN};
use rxchain::demo::staff_key;
use rxchain::txbuild;
use rxchain_contracts::BlockHeader;
use serde_json::Value;

mod common;
mod procs;

/// Runs `rxchain receipt verify` on `receipt`; returns success, stdout, stderr.
fn verify(p: &Procs, name: &str, receipt: &Value) -> (bool, String, String) {
    let file = p.dir.path().join(name);
    std::fs::write(&file, serde_json::to_vec_pretty(receipt).unwrap()).unwrap();
    let out = Command::new(BIN)
        .args(["receipt", "verify"])
        .arg(&file)
        .arg("--genesis")
        .arg(p.genesis_path())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls node `id` until its receipt of `tx_id` carries a certificate.
async fn certified(p: &Procs, id: u64, tx_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = p.get(id, &format!("/v1/tx/{tx_id}")).await;
        if !v["certificate"].is_null() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "node {id} never certified the block: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_verify_offline_and_tampering_is_caught() {
    // 1. Three nodes, three declared: a majority is two.
    let p = Procs::start(&[1, 2, 3], |_| String::new()).await;
    let client = rxchain::client::Client::new(p.base(1));
    rxchain::test_support::register_demo_staff(&p.demo, &client)
        .await
        .unwrap();

    // 2. Commit a prescription through node 2 (forwarded to the leader).
    let input = atorvastatin_issue(
        "hosp-north",
        30,
        0,
        SyntheticPatient {
            name: "Receipt Synthetic".into(),
            birth_date: "1970-01-01",
            identifier: "SYN-R-1".into(),
        },
        "one tablet daily",
    );
    let tx = txbuild::issue(&p.demo.genesis, &staff_key("dr.ada"), input)
        .unwrap()
        .tx;
    let receipt = p.commit(2, &tx).await;
    let tx_id = receipt["tx_id"].as_str().unwrap().to_string();
    let height = receipt["height"].as_u64().unwrap();

    // 3. The receipt from every node verifies offline, certificate included.
    let mut fetched = Vec::new();
    for id in [1, 2, 3] {
        let r = certified(&p, id, &tx_id).await;
        let (ok, out, err) = verify(&p, &format!("receipt-{id}.json"), &r);
        assert!(ok, "node {id}'s receipt fails: {out}{err}");
        assert!(
            out.contains(&format!(
                "a majority of the consortium's nodes (2 of 3) applied block {height}"
            )),
            "{out}"
        );
        fetched.push(r);
    }
    let good = fetched.remove(0);
    assert_eq!(good["certificate"]["votes"].as_array().unwrap().len(), 2);

    // 4. One certificate signature removed: below the quorum.
    let mut below = good.clone();
    below["certificate"]["votes"].as_array_mut().unwrap().pop();
    let (ok, _, err) = verify(&p, "below.json", &below);
    assert!(!ok, "a receipt below the quorum verified");
    assert!(
        err.contains("1 of 3 declared nodes voted; a majority needs 2"),
        "{err}"
    );

    // 5. A vote duplicated in place of another.
    let mut dup = good.clone();
    let first = dup["certificate"]["votes"][0].clone();
    dup["certificate"]["votes"][1] = first.clone();
    let (ok, _, err) = verify(&p, "dup.json", &dup);
    assert!(!ok, "a receipt with a duplicated vote verified");
    assert!(
        err.contains(&format!("node {} votes twice", first["node"])),
        "{err}"
    );

    // 6. An altered header: its hash no longer matches the receipt's.
    let mut altered = good.clone();
    let ts = altered["header"]["header"]["timestamp"].as_u64().unwrap();
    altered["header"]["header"]["timestamp"] = (ts + 1).into();
    let (ok, _, err) = verify(&p, "altered.json", &altered);
    assert!(!ok, "a receipt with an altered header verified");
    assert!(
        err.contains("the block hash is not the header's hash"),
        "{err}"
    );

    // 7. The same header alteration with every hash recomputed to match:
    // the proposer's signature (and the votes) no longer cover it.
    let header: BlockHeader = serde_json::from_value(altered["header"]["header"].clone()).unwrap();
    let hash = header.hash(p.genesis.chain_id.as_str()).to_hex();
    altered["receipt"]["block_hash"] = hash.clone().into();
    altered["certificate"]["block_hash"] = hash.into();
    let (ok, _, err) = verify(&p, "resigned.json", &altered);
    assert!(!ok, "a re-hashed altered header verified");
    assert!(
        err.contains("the header's proposer signature does not verify"),
        "{err}"
    );
}
