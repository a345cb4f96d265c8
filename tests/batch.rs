//! `POST /v1/tx/batch` on a real one-node demo consortium, with every
//! answer checked against the OpenAPI document (`testing_validate_openapi`):
//! many signed transactions in one request, JSON or postcard, one outcome
//! per transaction in request order (applied, refused with its code, or
//! failed with its code), a precise error for a bad item, and a 4xx for a
//! body that is not a batch at all.

use rxchain::demo::staff_key;
use rxchain::service::submit::{BatchResponse, ItemStatus};
use rxchain::txbuild::{self, IssueInput};
use rxchain_contracts::privacy::{PatientDetails, PrivateContent};
use rxchain_contracts::tx::{DispenseLine, Item};
use rxchain_contracts::{AtcCode, Genesis, Label, OrgId, Quantity, SignedTx};
use serde_json::{json, Value};

mod common;

fn issue(g: &Genesis, i: usize) -> txbuild::NewPrescription {
    txbuild::issue(
        g,
        &staff_key("dr.ada"),
        IssueInput {
            hospital: OrgId::parse("hosp-north").unwrap(),
            items: vec![Item {
                atc: AtcCode::parse("N02BE01").unwrap(),
                name: Label::parse("Paracetamol").unwrap(),
                strength: Label::parse("500 mg").unwrap(),
                form: Label::parse("tablet").unwrap(),
                quantity: Quantity::new(20).unwrap(),
                unit: Label::parse("tablets").unwrap(),
                controlled: false,
            }],
            repeats: 0,
            valid_from: None,
            valid_until: None,
            content: PrivateContent {
                patient: PatientDetails {
                    name: format!("Synthetic Batch {i}"),
                    birth_date: "1980-01-01".into(),
                    identifier: format!("SYN-B-{i}"),
                    email: None,
                },
                dosage: vec!["1 tablet daily".into()],
                notes: String::new(),
            },
        },
    )
    .unwrap()
}

async fn post(base: &str, ct: &str, body: Vec<u8>) -> (u16, Option<String>, Vec<u8>) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/tx/batch"))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, ct, r.bytes().await.unwrap().to_vec())
}

async fn post_json(base: &str, body: &Value) -> (u16, Value) {
    let (status, _, bytes) =
        post(base, "application/json", serde_json::to_vec(body).unwrap()).await;
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_every_transaction_in_order_json_and_postcard() {
    let t = common::start_demo_node().await;
    let g = t.client.genesis().await.unwrap();
    let chain_id = g.chain_id.as_str();

    // 1. JSON: a good issue, the same issue again, a forged signature, an
    //    item that is no transaction, a dispense of an unclaimed
    //    prescription (refused on chain), a pharmacist issuing (refused at
    //    admission).
    let a = issue(&g, 1);
    let mut forged = issue(&g, 2).tx;
    forged.tx.nonce ^= 1;
    let unclaimed = issue(&g, 3);
    t.client.submit(&unclaimed.tx).await.unwrap();
    let dispense = txbuild::dispense(
        &g,
        &staff_key("ph.cara"),
        unclaimed.payload.id,
        vec![DispenseLine {
            item: 0,
            quantity: Quantity::new(5).unwrap(),
            batch: Label::parse("B-1").unwrap(),
        }],
        false,
    );
    let wrong_role = txbuild::issue(
        &g,
        &staff_key("ph.cara"),
        IssueInput {
            hospital: OrgId::parse("hosp-north").unwrap(),
            ..issue_input_like(&g)
        },
    )
    .unwrap()
    .tx;
    let body = json!({ "txs": [a.tx, a.tx, forged, {"tx": 5}, dispense, wrong_role] });
    let (status, v) = post_json(&t.base, &body).await;
    assert_eq!(status, 200, "{v}");
    let r: BatchResponse = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(r.results.len(), 6, "{v}");
    for (i, item) in r.results.iter().enumerate() {
        assert_eq!(item.index as usize, i, "in request order: {v}");
    }
    let id_a = a.tx.tx.id(chain_id);
    let [first, again, bad_sig, not_tx, refused, inadmissible] = &r.results[..] else {
        unreachable!()
    };
    assert_eq!(first.status, ItemStatus::Applied, "{v}");
    assert_eq!(first.tx_id, Some(id_a));
    assert_eq!(first.http_status, 200);
    let receipt = first
        .receipt
        .clone()
        .expect("an applied item has its receipt");
    assert_eq!(
        again.status,
        ItemStatus::Applied,
        "the same transaction twice: {v}"
    );
    assert_eq!(
        again.receipt.as_ref(),
        Some(&receipt),
        "one effect, one receipt"
    );
    assert_eq!(
        (bad_sig.status, bad_sig.code.as_deref(), bad_sig.http_status),
        (ItemStatus::Failed, Some("bad_signature"), 400)
    );
    assert_eq!(bad_sig.tx_id, Some(forged.tx.id(chain_id)));
    assert_eq!(
        (not_tx.status, not_tx.code.as_deref(), not_tx.tx_id),
        (ItemStatus::Failed, Some("invalid_json"), None),
        "{v}"
    );
    assert!(
        not_tx
            .message
            .as_deref()
            .unwrap()
            .contains("signed transaction"),
        "{v}"
    );
    assert_eq!(refused.status, ItemStatus::Refused, "{v}");
    assert_eq!(refused.code.as_deref(), Some("not_claimed"), "{v}");
    assert!(
        refused.receipt.is_some(),
        "a chain refusal is on the chain: {v}"
    );
    assert_eq!(inadmissible.status, ItemStatus::Refused, "{v}");
    assert_eq!(inadmissible.http_status, 403, "{v}");
    assert!(
        inadmissible.receipt.is_none(),
        "refused before ordering: {v}"
    );
    // What the batch said is what the chain holds.
    let tx_view: Value = t
        .client
        .get(&format!("/v1/tx/{id_a}"))
        .await
        .expect("committed");
    assert_eq!(tx_view["receipt"]["height"], json!(receipt.height));

    // 2. Postcard both ways, through the client the bench and CLI use: 60
    //    issues, every one applied, in order.
    let txs: Vec<SignedTx> = (100..160).map(|i| issue(&g, i).tx).collect();
    let items = t.client.submit_batch(&txs).await.unwrap();
    assert_eq!(items.len(), txs.len());
    for (i, (item, tx)) in items.iter().zip(&txs).enumerate() {
        assert_eq!(item.index as usize, i);
        assert_eq!(item.tx_id, Some(tx.tx.id(chain_id)));
        assert_eq!(item.status, ItemStatus::Applied, "{item:?}");
        assert_eq!(item.receipt.as_ref().unwrap().tx_id, tx.tx.id(chain_id));
    }
    // A postcard item that does not decode fails alone.
    let raw: Vec<Vec<u8>> = vec![issue(&g, 200).tx.to_bytes(), vec![1, 2, 3]];
    let (status, ct, bytes) = post(
        &t.base,
        "application/x-postcard",
        rxchain_contracts::encoding::to_bytes(&raw),
    )
    .await;
    assert_eq!(
        (status, ct.as_deref()),
        (200, Some("application/x-postcard"))
    );
    let r: BatchResponse = rxchain_contracts::encoding::from_bytes(&bytes).unwrap();
    assert_eq!(r.results[0].status, ItemStatus::Applied);
    assert_eq!(
        (r.results[1].status, r.results[1].code.as_deref()),
        (ItemStatus::Failed, Some("malformed_transaction"))
    );

    // 3. Bodies that are no batch at all: precise 4xx, nothing submitted.
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "application/json",
            b"{not json".to_vec(),
            400,
            "malformed_json",
        ),
        ("application/json", b"[1, 2]".to_vec(), 400, "invalid_json"),
        (
            "application/json",
            b"{\"txs\": []}".to_vec(),
            400,
            "empty_batch",
        ),
        (
            "application/x-postcard",
            vec![0xff, 0xff],
            400,
            "malformed_batch",
        ),
        (
            "text/plain",
            b"hello".to_vec(),
            415,
            "unsupported_media_type",
        ),
    ];
    for (ct, body, want, code) in cases {
        let (status, _, bytes) = post(&t.base, ct, body).await;
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            (status, v["code"].as_str()),
            (want, Some(code)),
            "{ct}: {v}"
        );
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let too_many = json!({ "txs": vec![a.tx.clone(); 1001] });
    let (status, v) = post_json(&t.base, &too_many).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("batch_too_large")),
        "{v}"
    );

    // 4. The CLI sends a file of signed transactions as one batch.
    let file = t.dir.path().join("signed.json");
    let fresh = issue(&g, 300).tx;
    let mut forged = issue(&g, 301).tx;
    forged.tx.nonce ^= 1;
    std::fs::write(&file, serde_json::to_vec(&json!([fresh, forged])).unwrap()).unwrap();
    let base = t.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_rxchain"))
            .args(["tx", "--node", &base, "batch"])
            .arg(&file)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "one was not applied: {stdout}");
    assert!(
        stdout.contains(&format!("0: applied: tx {}", fresh.tx.id(chain_id))),
        "{stdout}"
    );
    assert!(
        stdout.contains("1: Failed") && stdout.contains("bad_signature"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 of 2 transactions were not applied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    t.node.stop().await;
}

fn issue_input_like(_g: &Genesis) -> IssueInput {
    IssueInput {
        hospital: OrgId::parse("hosp-north").unwrap(),
        items: vec![Item {
            atc: AtcCode::parse("N02BE01").unwrap(),
            name: Label::parse("Paracetamol").unwrap(),
            strength: Label::parse("500 mg").unwrap(),
            form: Label::parse("tablet").unwrap(),
            quantity: Quantity::new(20).unwrap(),
            unit: Label::parse("tablets").unwrap(),
            controlled: false,
        }],
        repeats: 0,
        valid_from: None,
        valid_until: None,
        content: PrivateContent {
            patient: PatientDetails {
                name: "Synthetic Wrong Role".into(),
                birth_date: "1980-01-01".into(),
                identifier: "SYN-B-WR".into(),
                email: None,
            },
            dosage: vec!["1 tablet daily".into()],
            notes: String::new(),
        },
    }
}
