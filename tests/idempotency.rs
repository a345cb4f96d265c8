//! `Idempotency-Key` on the endpoints that sign on the server, against a
//! real node that is restarted over its own data directory with settings
//! that force the answers telling a client to retry: first with a mempool
//! that admits nothing (503), then with no commit wait at all (202). A
//! dispense retried with one key through both is recorded once; the same
//! key with another body is refused; two concurrent requests with one key
//! make one transaction; the doctor's issue retried gets the same
//! prescription and code; and without a key every call still signs anew.

mod common;
mod staff_client;

use std::time::Duration;

use common::boot;
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use rxchain::demo::Demo;
use rxchain::test_support::{create_demo_accounts, register_demo_staff};
use serde_json::{json, Value};
use staff_client::{assert_error, issue_body, post_anon, send, Staff};

type Answer = (StatusCode, reqwest::header::HeaderMap, Value);

/// The same signed-in session, reached at a restarted node's address
/// (sessions live in the node's database, so they survive the restart).
fn at(s: &Staff, base: &str) -> Staff {
    Staff {
        base: base.to_string(),
        http: reqwest::Client::new(),
        cookie: s.cookie.clone(),
        csrf: s.csrf.clone(),
        session: s.session.clone(),
    }
}

/// POST as `s` with an `Idempotency-Key`.
async fn post_key(s: &Staff, path: &str, key: &str, body: &Value) -> Answer {
    send(
        s.http
            .post(format!("{}{path}", s.base))
            .header(COOKIE, &s.cookie)
            .header("x-csrf-token", &s.csrf)
            .header("idempotency-key", key)
            .json(body),
    )
    .await
}

/// The public record of prescription `id`.
async fn record(base: &str, id: &str) -> Value {
    let (s, _, v) = post_get(base, &format!("/v1/prescriptions/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["record"].clone()
}

async fn post_get(base: &str, path: &str) -> Answer {
    send(reqwest::Client::new().get(format!("{base}{path}"))).await
}

fn fills(rec: &Value) -> usize {
    rec["fills"].as_array().expect("fills").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_is_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::load().unwrap();
    demo.write_files(dir.path(), &[1]).unwrap();

    // Setup on a node with ordinary settings: a prescription issued,
    // assigned to Central for pickup and claimed there.
    let (node, base) = boot(dir.path(), |_| {}).await;
    register_demo_staff(&demo, &rxchain::client::Client::new(base.clone()))
        .await
        .expect("staff registered");
    create_demo_accounts(&demo, &node.accounts)
        .await
        .expect("demo accounts");
    let ada = Staff::sign_in(&base, "dr.ada").await;
    let cara = Staff::sign_in(&base, "ph.cara").await;
    let issued = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Idem", 14),
        )
        .await;
    let id = issued["id"].as_str().unwrap().to_string();
    let payload = issued["payload"].as_str().unwrap().to_string();
    let (s, _, r) = post_anon(
        &base,
        "/v1/patient/assign",
        &json!({"payload": payload, "mode": "pickup", "pharmacy": "pharm-central"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    cara.ok("/v1/staff/claim", &json!({"payload": payload}))
        .await;
    node.stop().await;

    // 1. A dispense retried with one key, through a 503 and a 202, fills once.
    let dispense = json!({"id": id, "lines": [{"item": 0, "quantity": 5, "batch": "LOT-I1"}], "complete": false});
    let key = "5f0c2a4e-0d0b-4f8e-9a51-idem-step-1";
    // 1a. A mempool that admits nothing answers 503 mempool_full: nothing
    //     committed.
    let (node, base) = boot(dir.path(), |s| s.api.mempool_max_txs = 0).await;
    let cara_b = at(&cara, &base);
    let first = post_key(&cara_b, "/v1/staff/dispense", key, &dispense).await;
    assert_error(&first, 503, "mempool_full");
    assert_eq!(fills(&record(&base, &id).await), 0);
    node.stop().await;
    // 1b. With no commit wait, the retry is admitted and answers 202.
    let (node, base) = boot(dir.path(), |s| s.api.commit_wait_ms = 0).await;
    let cara_c = at(&cara, &base);
    let pending = post_key(&cara_c, "/v1/staff/dispense", key, &dispense).await;
    assert_eq!(pending.0, StatusCode::ACCEPTED, "{}", pending.2);
    let tx_id = pending.2["tx_id"].as_str().expect("a tx id").to_string();
    // 1c. Retried after the 202 until it answers the receipt: the same transaction.
    let mut receipt = None;
    for _ in 0..200 {
        let again = post_key(&cara_c, "/v1/staff/dispense", key, &dispense).await;
        match again.0 {
            StatusCode::ACCEPTED => {
                assert_eq!(again.2["tx_id"], tx_id.as_str(), "{}", again.2);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            StatusCode::OK => {
                receipt = Some(again.2);
                break;
            }
            other => panic!("a retry answers 202 or 200, not {other}: {}", again.2),
        }
    }
    let receipt = receipt.expect("the dispense commits");
    assert_eq!(receipt["tx_id"], tx_id.as_str(), "{receipt}");
    assert_eq!(receipt["outcome"]["result"], "applied", "{receipt}");
    let rec = record(&base, &id).await;
    assert_eq!(fills(&rec), 1, "one fill on the chain: {rec}");
    assert_eq!(rec["dispensed"], json!([5, 0]), "{rec}");
    node.stop().await;

    // The rest on a node with ordinary settings again.
    let (node, base) = boot(dir.path(), |_| {}).await;
    let ada = at(&ada, &base);
    let cara = at(&cara, &base);

    // 2. The same key with another body is refused, and nothing is signed.
    let other = json!({"id": id, "lines": [{"item": 0, "quantity": 6, "batch": "LOT-I1"}], "complete": false});
    assert_error(
        &post_key(&cara, "/v1/staff/dispense", key, &other).await,
        422,
        "idempotency_key_reused",
    );
    // A key is the user's: the same key on another route is another request too.
    assert_error(
        &post_key(&cara, "/v1/staff/release", key, &json!({"id": id})).await,
        422,
        "idempotency_key_reused",
    );
    // The original request with that key still answers its receipt.
    let replay = post_key(&cara, "/v1/staff/dispense", key, &dispense).await;
    assert_eq!(replay.0, StatusCode::OK, "{}", replay.2);
    assert_eq!(replay.2["tx_id"], tx_id.as_str());
    assert_eq!(fills(&record(&base, &id).await), 1);

    // 3. Two concurrent requests with one key make one transaction.
    let both = json!({"id": id, "lines": [{"item": 0, "quantity": 2, "batch": "LOT-I3"}], "complete": false});
    let (a, b) = tokio::join!(
        post_key(&cara, "/v1/staff/dispense", "step-3-key", &both),
        post_key(&cara, "/v1/staff/dispense", "step-3-key", &both),
    );
    assert_eq!(
        (a.0, b.0),
        (StatusCode::OK, StatusCode::OK),
        "{} / {}",
        a.2,
        b.2
    );
    assert_eq!(
        a.2["tx_id"], b.2["tx_id"],
        "one transaction: {} / {}",
        a.2, b.2
    );
    let rec = record(&base, &id).await;
    assert_eq!(fills(&rec), 2, "one more fill: {rec}");
    assert_eq!(rec["dispensed"], json!([7, 0]), "{rec}");

    // 4. The doctor's issue retried with one key: the same prescription and
    // code, and one prescription more in the doctor's list.
    let (_, _, before) = ada.get("/v1/staff/prescriptions").await;
    let form = issue_body("Synthetic Patient Idem Retry", 10);
    let first = post_key(&ada, "/v1/staff/prescriptions", "issue-key-4", &form).await;
    let again = post_key(&ada, "/v1/staff/prescriptions", "issue-key-4", &form).await;
    assert_eq!(
        (first.0, again.0),
        (StatusCode::OK, StatusCode::OK),
        "{}",
        again.2
    );
    for field in ["id", "payload", "patient_link", "short_id", "valid_until"] {
        assert_eq!(first.2[field], again.2[field], "{field}");
    }
    assert_eq!(first.2["receipt"]["tx_id"], again.2["receipt"]["tx_id"]);
    assert_eq!(
        again.2["qr_png_base64"], first.2["qr_png_base64"],
        "the same code is drawn"
    );
    assert_eq!(
        again.1.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let (_, _, after) = ada.get("/v1/staff/prescriptions").await;
    assert_eq!(
        after.as_array().unwrap().len(),
        before.as_array().unwrap().len() + 1,
        "one prescription issued"
    );
    // The patient's calls are keyed too, scoped by the prescription.
    let new_payload = first.2["payload"].as_str().unwrap();
    let assign = json!({"payload": new_payload, "mode": "pickup", "pharmacy": "pharm-central"});
    let patient = |k: &'static str| {
        let base = base.clone();
        let assign = assign.clone();
        async move {
            send(
                reqwest::Client::new()
                    .post(format!("{base}/v1/patient/assign"))
                    .header("idempotency-key", k)
                    .json(&assign),
            )
            .await
        }
    };
    let (p1, p2) = (patient("assign-key").await, patient("assign-key").await);
    assert_eq!((p1.0, p2.0), (StatusCode::OK, StatusCode::OK), "{}", p2.2);
    assert_eq!(p1.2["tx_id"], p2.2["tx_id"]);

    // 5. Without a key nothing changes: each call signs anew, so the same
    // body twice is two fills; a malformed key is a 400.
    let plain = json!({"id": id, "lines": [{"item": 0, "quantity": 1, "batch": "LOT-I5"}], "complete": false});
    let r1 = cara.ok("/v1/staff/dispense", &plain).await;
    let r2 = cara.ok("/v1/staff/dispense", &plain).await;
    assert_ne!(r1["tx_id"], r2["tx_id"]);
    let rec = record(&base, &id).await;
    assert_eq!(fills(&rec), 4, "{rec}");
    assert_eq!(rec["dispensed"], json!([9, 0]), "{rec}");
    for bad in ["has space", &"k".repeat(129), ""] {
        assert_error(
            &post_key(&cara, "/v1/staff/dispense", bad, &plain).await,
            400,
            "bad_idempotency_key",
        );
    }
    assert_eq!(
        fills(&record(&base, &id).await),
        4,
        "a bad key signs nothing"
    );
    node.stop().await;
}
