//! Attacks on the submission path (`POST /v1/tx`): a flood that fills the
//! mempool, a known transaction resent with a corrupted signature, and a
//! signer who keeps sending transactions the chain refuses.

use std::time::Duration;

use rxchain::client::Client;
use rxchain::demo::{staff_key, Demo};
use rxchain::node::RunningNode;
use rxchain::test_support::{demo_settings, register_demo_staff, wait_for_leader};
use rxchain::txbuild;
use rxchain_contracts::SignedTx;
use serde_json::Value;

use super::common::issue::{atorvastatin_issue, SyntheticPatient};

/// A one-node demo consortium whose settings `tweak` adjusts first.
async fn node_with(
    tweak: impl FnOnce(&mut rxchain::config::Settings),
) -> (RunningNode, Client, Demo, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::load().expect("demo fixture");
    demo.write_files(dir.path(), &[1]).expect("demo files");
    let mut settings = demo_settings(dir.path(), 1, "127.0.0.1:0".parse().unwrap(), None);
    tweak(&mut settings);
    let node = rxchain::node::start(settings).await.expect("node starts");
    wait_for_leader(&node).await.expect("leader");
    let client = Client::new(format!("http://{}", node.addr));
    register_demo_staff(&demo, &client)
        .await
        .expect("staff registered");
    (node, client, demo, dir)
}

/// A fresh prescription signed by the demo doctor.
fn issue_tx(demo: &Demo, n: usize) -> SignedTx {
    let input = atorvastatin_issue(
        "hosp-north",
        30,
        0,
        SyntheticPatient {
            name: format!("Synthetic Flood {n}"),
            birth_date: "1970-01-01",
            identifier: format!("SYN-FLOOD-{n}"),
        },
        "one tablet daily",
    );
    txbuild::issue(&demo.genesis, &staff_key("dr.ada"), input)
        .expect("issue builds")
        .tx
}

/// POSTs a transaction and returns status, `Retry-After` and the JSON body.
async fn post_tx(http: &reqwest::Client, base: &str, body: &Value) -> (u16, Option<String>, Value) {
    let resp = http
        .post(format!("{base}/v1/tx"))
        .json(body)
        .send()
        .await
        .expect("node answers");
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, resp.json().await.expect("JSON answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_fills_the_mempool_and_is_turned_away_in_bytes() {
    // 1. A node that holds transactions for three seconds before cutting a
    //    block, with room for only a few kilobytes of waiting transactions.
    let (node, client, demo, _dir) = node_with(|s| {
        s.block.max_wait_ms = 3_000;
        s.api.commit_wait_ms = 50;
        s.api.mempool_max_bytes = 12 * 1024;
    })
    .await;
    let base = client.base().to_string();
    let http = reqwest::Client::new();
    let height_before = node.chain.tip().height;

    // 2. Flood it with distinct, valid prescriptions until it says full.
    let mut admitted = Vec::new();
    let mut full = None;
    for n in 0..200 {
        let tx = issue_tx(&demo, n);
        let id = tx.tx.id(demo.genesis.chain_id.as_str());
        let body = serde_json::to_value(&tx).unwrap();
        let (status, retry, json) = post_tx(&http, &base, &body).await;
        match status {
            202 | 200 => admitted.push(id),
            503 => {
                full = Some((id, retry, json));
                break;
            }
            other => panic!("unexpected answer {other}: {json}"),
        }
    }
    let (refused_id, retry, json) = full.expect("the mempool filled within 200 transactions");
    assert_eq!(json["code"], "mempool_full", "{json}");
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(
        retry.as_deref(),
        Some("1"),
        "503 mempool_full carries Retry-After"
    );
    assert!(
        admitted.len() >= 2,
        "a few transactions fit before the bound: {}",
        admitted.len()
    );

    // 3. Once the block is cut, every admitted transaction commits and the
    //    refused one was never written anywhere.
    for id in &admitted {
        let mut committed = false;
        for _ in 0..100 {
            let v: Value = client.get(&format!("/v1/tx/{id}")).await.expect("tx view");
            if v.get("receipt").is_some() {
                committed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(committed, "admitted transaction {id} committed");
    }
    let missing = http
        .get(format!("{base}/v1/tx/{refused_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        missing.status().as_u16(),
        404,
        "the refused transaction is not on the chain"
    );
    assert!(node.chain.tip().height > height_before);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_signature_on_a_known_id_is_refused() {
    // 1. A committed prescription.
    let (node, client, demo, _dir) = node_with(|_| {}).await;
    let base = client.base().to_string();
    let http = reqwest::Client::new();
    let tx = issue_tx(&demo, 1);
    let good = serde_json::to_value(&tx).unwrap();
    let (status, _, first) = post_tx(&http, &base, &good).await;
    assert_eq!(status, 200, "{first}");
    let height = node.chain.tip().height;

    // 2. The same transaction with one nibble of its signature changed:
    //    same id, but the signature no longer verifies. It must get 400
    //    bad_signature, not the original receipt.
    let mut bad = good.clone();
    let sig = bad["signature"]
        .as_str()
        .expect("hex signature")
        .to_string();
    let last = sig.chars().last().unwrap();
    let flipped = if last == '0' { '1' } else { '0' };
    bad["signature"] = Value::String(format!("{}{flipped}", &sig[..sig.len() - 1]));
    let (status, _, json) = post_tx(&http, &base, &bad).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (400, Some("bad_signature")),
        "{json}"
    );

    // 3. The genuine copy is still answered with its original receipt, and
    //    nothing new reached the chain.
    let (status, _, again) = post_tx(&http, &base, &good).await;
    assert_eq!(status, 200);
    assert_eq!(again, first, "a replay gets the original receipt");
    assert_eq!(node.chain.tip().height, height);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_who_keeps_being_refused_is_throttled() {
    // 1. A committed prescription, then its cancellation.
    let (node, client, demo, _dir) = node_with(|_| {}).await;
    let base = client.base().to_string();
    let http = reqwest::Client::new();
    let new = txbuild::issue(
        &demo.genesis,
        &staff_key("dr.ada"),
        atorvastatin_issue(
            "hosp-north",
            30,
            0,
            SyntheticPatient {
                name: "Synthetic Throttle".into(),
                birth_date: "1970-01-01",
                identifier: "SYN-THROTTLE".into(),
            },
            "one tablet daily",
        ),
    )
    .unwrap();
    let id = new.payload.id;
    let (status, _, _) = post_tx(&http, &base, &serde_json::to_value(&new.tx).unwrap()).await;
    assert_eq!(status, 200);
    let reason = rxchain_contracts::tx::CancelReason::PrescriberError;
    let cancel = txbuild::cancel(&demo.genesis, &staff_key("dr.ada"), id, reason);
    let (status, _, _) = post_tx(&http, &base, &serde_json::to_value(&cancel).unwrap()).await;
    assert_eq!(status, 200);

    // 2. The doctor keeps cancelling the cancelled prescription. Each
    //    refusal is recorded (it is the doctor's own audit trail) until the
    //    per-signer limit; after that the node answers 429 with Retry-After
    //    and writes nothing more.
    let limit = rxchain::service::submit::MAX_REFUSALS_PER_SIGNER;
    let mut refused_on_chain = 0;
    let mut throttled = None;
    for _ in 0..limit + 5 {
        let again = txbuild::cancel(&demo.genesis, &staff_key("dr.ada"), id, reason);
        let (status, retry, json) =
            post_tx(&http, &base, &serde_json::to_value(&again).unwrap()).await;
        match status {
            409 | 410 | 422 => refused_on_chain += 1,
            429 => {
                throttled = Some((retry, json));
                break;
            }
            other => panic!("unexpected {other}: {json}"),
        }
    }
    let (retry, json) = throttled.expect("the signer was throttled");
    assert_eq!(json["code"], "too_many_refusals", "{json}");
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1)));
    assert_eq!(
        refused_on_chain, limit,
        "exactly the limit of refusals was recorded"
    );
    let height = node.chain.tip().height;

    // 3. Still throttled: nothing reaches the chain.
    let more = txbuild::cancel(&demo.genesis, &staff_key("dr.ada"), id, reason);
    let (status, _, _) = post_tx(&http, &base, &serde_json::to_value(&more).unwrap()).await;
    assert_eq!(status, 429);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node.chain.tip().height, height);
    node.stop().await;
}
