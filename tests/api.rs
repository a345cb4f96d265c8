//! API tests against a real node on port 0 with a temp dir: the whole
//! lifecycle, refusals with their exact codes, replays, and the bad-input
//! matrix.

mod common;

use std::time::Duration;

use reqwest::StatusCode;
use rxchain::client::{ClientError, Submitted};
use rxchain::demo::{admin_key, staff_key};
use rxchain::mempool::Receipt;
use rxchain::qr::QrPayload;
use rxchain::txbuild::{self, IssueInput, NewPrescription};
use rxchain_contracts::privacy::{self, ContentKey, PatientDetails, PrivateContent};
use rxchain_contracts::tx::{DeliveryStatus, DispenseLine, IssueRx, Item, RevokeReason};
use rxchain_contracts::{
    AtcCode, Genesis, Label, OrgId, Quantity, SignedHeader, SignedTx, Timestamp,
};
use serde_json::Value;

fn item(quantity: u32, controlled: bool) -> Item {
    Item {
        atc: AtcCode::parse(if controlled { "N02AA01" } else { "J01CA04" }).unwrap(),
        name: Label::parse(if controlled {
            "Morphine"
        } else {
            "Amoxicillin"
        })
        .unwrap(),
        strength: Label::parse("10 mg").unwrap(),
        form: Label::parse("capsule").unwrap(),
        quantity: Quantity::new(quantity).unwrap(),
        unit: Label::parse("capsules").unwrap(),
        controlled,
    }
}

fn content(name: &str) -> PrivateContent {
    PrivateContent {
        patient: PatientDetails {
            name: name.into(),
            birth_date: "1990-02-03".into(),
            identifier: "SYNTH-API-1".into(),
            email: None,
        },
        dosage: vec!["one capsule three times a day".into()],
        notes: "synthetic note".into(),
    }
}

fn issue(
    g: &Genesis,
    doctor: &str,
    hospital: &str,
    repeats: u8,
    valid_until: Option<Timestamp>,
) -> NewPrescription {
    txbuild::issue(
        g,
        &staff_key(doctor),
        IssueInput {
            hospital: OrgId::parse(hospital).unwrap(),
            items: vec![item(20, false)],
            repeats,
            valid_from: None,
            valid_until,
            content: content("Synthetic Patient Api"),
        },
    )
    .unwrap()
}

fn line(q: u32, batch: &str) -> DispenseLine {
    DispenseLine {
        item: 0,
        quantity: Quantity::new(q).unwrap(),
        batch: Label::parse(batch).unwrap(),
    }
}

fn org(s: &str) -> OrgId {
    OrgId::parse(s).unwrap()
}

async fn applied(c: &rxchain::client::Client, tx: &SignedTx) -> Receipt {
    match c.submit(tx).await {
        Ok(Submitted::Applied(r)) => r,
        other => panic!("expected an applied receipt, got {other:?}"),
    }
}

/// Submits and expects a refusal with `status` and `code`; returns the body.
async fn refused(c: &rxchain::client::Client, tx: &SignedTx, status: u16, code: &str) -> Value {
    match c.submit(tx).await {
        Err(ClientError::Api {
            status: s,
            code: k,
            body,
            message,
        }) => {
            assert_eq!(
                (s, k.as_str()),
                (status, code),
                "unexpected refusal: {message}"
            );
            assert!(
                !message.is_empty(),
                "a refusal carries a sentence for people"
            );
            body
        }
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_with_refusals_and_replay() {
    let t = common::start_demo_node().await;
    let g = t.client.genesis().await.unwrap();
    let http = reqwest::Client::new();

    // 1. A doctor issues a prescription with one repeat (allowance 40).
    let rx = issue(&g, "dr.ada", "hosp-north", 1, None);
    let issued = applied(&t.client, &rx.tx).await;
    assert_eq!(issued.tx_id, rx.tx.tx.id(g.chain_id.as_str()));

    // 2. A replay of the same signed transaction returns the original receipt.
    let again = applied(&t.client, &rx.tx).await;
    assert_eq!(
        again, issued,
        "a replay must get the original receipt, not a second effect"
    );

    // 3. The patient assigns pickup at Central Pharmacy.
    applied(
        &t.client,
        &txbuild::assign_pickup(&g, &rx.payload, &org("pharm-central")).unwrap(),
    )
    .await;

    // 4. The scan verdict is green for Central and red (assigned elsewhere) for Harbour.
    let v: Value = t
        .client
        .post(
            "/v1/scan",
            &serde_json::json!({"payload": rx.payload.encode(), "pharmacy": "pharm-central"}),
        )
        .await
        .unwrap();
    assert_eq!(v["verdict"], "green", "{v}");
    assert_eq!(v["prescription"]["prescriber"]["name"], "Dr Ada Example");
    let v: Value = t
        .client
        .post(
            "/v1/scan",
            &serde_json::json!({"payload": rx.payload.encode(), "pharmacy": "pharm-harbour"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (v["verdict"].as_str(), v["code"].as_str()),
        (Some("red"), Some("assigned_elsewhere")),
        "{v}"
    );

    // 5. Harbour cannot claim it; Central claims it.
    refused(
        &t.client,
        &txbuild::claim(&g, &staff_key("ph.dan"), &org("pharm-harbour"), &rx.payload),
        409,
        "assigned_elsewhere",
    )
    .await;
    applied(
        &t.client,
        &txbuild::claim(
            &g,
            &staff_key("ph.cara"),
            &org("pharm-central"),
            &rx.payload,
        ),
    )
    .await;

    // 6. A second claim by Central is refused as already claimed.
    refused(
        &t.client,
        &txbuild::claim(
            &g,
            &staff_key("ph.cara"),
            &org("pharm-central"),
            &rx.payload,
        ),
        409,
        "already_claimed",
    )
    .await;

    // 7. Partial dispense, an over-dispense refused, then the rest: completed.
    applied(
        &t.client,
        &txbuild::dispense(
            &g,
            &staff_key("ph.cara"),
            rx.payload.id,
            vec![line(15, "B-1")],
            false,
        ),
    )
    .await;
    let body = refused(
        &t.client,
        &txbuild::dispense(
            &g,
            &staff_key("ph.cara"),
            rx.payload.id,
            vec![line(26, "B-2")],
            false,
        ),
        409,
        "exceeds_allowance",
    )
    .await;
    assert_eq!(body["detail"]["remaining"], 25, "{body}");
    applied(
        &t.client,
        &txbuild::dispense(
            &g,
            &staff_key("ph.cara"),
            rx.payload.id,
            vec![line(25, "B-2")],
            false,
        ),
    )
    .await;

    // 8. A second dispense after completion names where and when it was dispensed.
    let body = refused(
        &t.client,
        &txbuild::dispense(
            &g,
            &staff_key("ph.cara"),
            rx.payload.id,
            vec![line(1, "B-3")],
            false,
        ),
        409,
        "already_dispensed",
    )
    .await;
    assert_eq!(body["detail"]["pharmacy"], "pharm-central", "{body}");
    assert!(
        body["receipt"]["height"].as_u64().is_some(),
        "the refusal is recorded on the chain: {body}"
    );
    let v: Value = t
        .client
        .post(
            "/v1/scan",
            &serde_json::json!({"payload": rx.payload.encode(), "pharmacy": "pharm-central"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (v["verdict"].as_str(), v["code"].as_str()),
        (Some("red"), Some("already_dispensed")),
        "{v}"
    );

    // 9. The public state shows completion, both fills and the refused attempts.
    let p: Value = t
        .client
        .get(&format!("/v1/prescriptions/{}", rx.payload.id))
        .await
        .unwrap();
    assert_eq!(p["public_status"], "completed");
    assert_eq!(p["record"]["fills"].as_array().unwrap().len(), 2);
    assert_eq!(p["record"]["dispensed"][0], 40);
    let refused_in_history = p["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["outcome"]["result"] == "refused")
        .count();
    assert_eq!(
        refused_in_history, 4,
        "harbour claim, double claim, over-dispense, second dispense: {p}"
    );
    assert!(
        !p.to_string().contains("Synthetic Patient Api"),
        "the public view must not name the patient"
    );

    // 10. The transaction read carries an inclusion proof that checks against the signed header.
    let view: Value = t
        .client
        .get(&format!("/v1/tx/{}", issued.tx_id))
        .await
        .unwrap();
    let header: SignedHeader = serde_json::from_value(view["header"].clone()).unwrap();
    let proof: rxchain_contracts::InclusionProof =
        serde_json::from_value(view["proof"].clone()).unwrap();
    assert!(proof.check(&header.header));
    let (_, node) = g.node(header.header.proposer).expect("proposer in genesis");
    let _ = node; // The genesis from /v1/consortium carries node keys too:
    let full = t.demo.genesis.clone();
    let (_, decl) = full.node(header.header.proposer).unwrap();
    let digest = rxchain_contracts::crypto::signing_digest(
        &rxchain_contracts::BlockHeader::signing_tag(full.chain_id.as_str()),
        header.header.hash(full.chain_id.as_str()).as_bytes(),
    );
    decl.key
        .verify_digest(&digest, &header.signature)
        .expect("header signed by the proposer's node key");

    // 11. Blocks by height and by hash agree; the head is consistent.
    let b1: Value = t
        .client
        .get(&format!("/v1/blocks/{}", issued.height))
        .await
        .unwrap();
    let b2: Value = t
        .client
        .get(&format!("/v1/blocks/{}", b1["hash"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(b1, b2);
    let head: Value = t.client.get("/v1/chain/head").await.unwrap();
    assert!(head["height"].as_u64().unwrap() >= issued.height);

    // 12. The patient can open the sealed content with the QR secret alone.
    let sealed: IssueRx = t
        .client
        .get(&format!("/v1/prescriptions/{}/sealed", rx.payload.id))
        .await
        .unwrap();
    let ctx = privacy::content_context(&rx.payload.id);
    let ck = ContentKey::from_bytes(
        privacy::unwrap_with_secret(&rx.payload.secret, &ctx, &sealed.key_for_patient).unwrap(),
    );
    assert_eq!(
        privacy::open_content(&rx.payload.id, &sealed.sealed, &ck)
            .unwrap()
            .patient
            .name,
        "Synthetic Patient Api"
    );

    // 13. Operations endpoints answer.
    assert_eq!(
        http.get(format!("{}/healthz", t.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{}/readyz", t.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = http
        .get(format!("{}/metrics", t.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("rxchain_chain_height"), "{metrics}");
    assert!(
        metrics.contains("rxchain_commit_latency_seconds_bucket"),
        "{metrics}"
    );
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_race_release_cancel_and_delivery() {
    let t = common::start_demo_node().await;
    let g = t.client.genesis().await.unwrap();

    // 1. A walk-in prescription: Central claims; Harbour is refused naming Central.
    let rx = issue(&g, "dr.ben", "hosp-river", 0, None);
    applied(&t.client, &rx.tx).await;
    applied(
        &t.client,
        &txbuild::claim(
            &g,
            &staff_key("ph.cara"),
            &org("pharm-central"),
            &rx.payload,
        ),
    )
    .await;
    let body = refused(
        &t.client,
        &txbuild::claim(&g, &staff_key("ph.dan"), &org("pharm-harbour"), &rx.payload),
        409,
        "claimed_by_other",
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().contains("pharm-central"),
        "{body}"
    );
    refused(
        &t.client,
        &txbuild::dispense(
            &g,
            &staff_key("ph.dan"),
            rx.payload.id,
            vec![line(1, "X")],
            false,
        ),
        409,
        "claimed_by_other",
    )
    .await;

    // 2. The prescriber may not cancel a claimed prescription.
    refused(
        &t.client,
        &txbuild::cancel(
            &g,
            &staff_key("dr.ben"),
            rx.payload.id,
            rxchain_contracts::tx::CancelReason::PrescriberError,
        ),
        409,
        "claimed_cannot_change",
    )
    .await;

    // 3. Central releases; Harbour can claim now.
    applied(
        &t.client,
        &txbuild::release(&g, &staff_key("ph.cara"), rx.payload.id),
    )
    .await;
    applied(
        &t.client,
        &txbuild::claim(&g, &staff_key("ph.dan"), &org("pharm-harbour"), &rx.payload),
    )
    .await;

    // 4. A patient cancels an unclaimed prescription; afterwards claims are refused as cancelled.
    let rx2 = issue(&g, "dr.ada", "hosp-north", 0, None);
    applied(&t.client, &rx2.tx).await;
    applied(
        &t.client,
        &txbuild::cancel(
            &g,
            &rx2.payload.secret.signing_key(),
            rx2.payload.id,
            rxchain_contracts::tx::CancelReason::PatientRequest,
        ),
    )
    .await;
    refused(
        &t.client,
        &txbuild::claim(
            &g,
            &staff_key("ph.cara"),
            &org("pharm-central"),
            &rx2.payload,
        ),
        409,
        "cancelled",
    )
    .await;

    // 5. Home delivery: the patient recovers the content key and seals the address.
    let rx3 = issue(&g, "dr.ada", "hosp-north", 0, None);
    applied(&t.client, &rx3.tx).await;
    let sealed: IssueRx = t
        .client
        .get(&format!("/v1/prescriptions/{}/sealed", rx3.payload.id))
        .await
        .unwrap();
    let ck = ContentKey::from_bytes(
        privacy::unwrap_with_secret(
            &rx3.payload.secret,
            &privacy::content_context(&rx3.payload.id),
            &sealed.key_for_patient,
        )
        .unwrap(),
    );
    applied(
        &t.client,
        &txbuild::assign_delivery(
            &g,
            &rx3.payload,
            &ck,
            &org("pharm-hill"),
            "1 Synthetic Street",
        )
        .unwrap(),
    )
    .await;
    // The pharmacy recovers the QR secret from the hand-over with its data key and claims.
    let p: Value = t
        .client
        .get(&format!("/v1/prescriptions/{}", rx3.payload.id))
        .await
        .unwrap();
    assert_eq!(p["record"]["fulfilment"]["mode"], "delivery");
    let assign_tx: Value = t
        .client
        .get(&format!(
            "/v1/tx/{}",
            p["history"][1]["tx_id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    let handover: privacy::WrappedKey =
        serde_json::from_value(assign_tx["tx"]["tx"]["body"]["handover"].clone()).unwrap();
    let secret = privacy::unwrap_with_key(
        &rxchain::demo::data_key("pharm-hill"),
        &privacy::handover_context(&rx3.payload.id),
        &handover,
    )
    .unwrap();
    let payload = QrPayload {
        id: rx3.payload.id,
        secret: privacy::AccessSecret::from_bytes(secret),
    };
    let eve = staff_key("ph.eve");
    applied(
        &t.client,
        &txbuild::claim(&g, &eve, &org("pharm-hill"), &payload),
    )
    .await;
    refused(
        &t.client,
        &txbuild::delivery(&g, &eve, rx3.payload.id, DeliveryStatus::Packed),
        409,
        "delivery_out_of_order",
    )
    .await;
    applied(
        &t.client,
        &txbuild::dispense(&g, &eve, rx3.payload.id, vec![line(20, "LOT-7")], false),
    )
    .await;
    applied(
        &t.client,
        &txbuild::delivery(&g, &eve, rx3.payload.id, DeliveryStatus::Packed),
    )
    .await;
    refused(
        &t.client,
        &txbuild::delivery(&g, &eve, rx3.payload.id, DeliveryStatus::Packed),
        409,
        "delivery_out_of_order",
    )
    .await;
    refused(
        &t.client,
        &delivered(&g, &eve, rx3.payload.id),
        409,
        "delivery_out_of_order",
    )
    .await;
    let finn = staff_key("courier.finn");
    // Swift's couriers record the delivery only once the pharmacy hands it over.
    refused(
        &t.client,
        &txbuild::delivery(&g, &finn, rx3.payload.id, DeliveryStatus::Dispatched),
        403,
        "not_carrier",
    )
    .await;
    applied(
        &t.client,
        &txbuild::hand_to_carrier(&g, &eve, rx3.payload.id, org("logi-swift")),
    )
    .await;
    for s in [DeliveryStatus::Dispatched, DeliveryStatus::OutForDelivery] {
        applied(&t.client, &txbuild::delivery(&g, &finn, rx3.payload.id, s)).await;
    }
    applied(&t.client, &delivered(&g, &finn, rx3.payload.id)).await;
    refused(
        &t.client,
        &txbuild::delivery(&g, &eve, rx3.payload.id, DeliveryStatus::ReadyForPickup),
        409,
        "wrong_fulfilment_mode",
    )
    .await;
    let p: Value = t
        .client
        .get(&format!("/v1/prescriptions/{}", rx3.payload.id))
        .await
        .unwrap();
    assert_eq!(p["record"]["delivery"].as_array().unwrap().len(), 4);
    assert!(
        !p.to_string().contains("Synthetic Street"),
        "the address stays sealed"
    );
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_matrix_gets_precise_4xx() {
    let t = common::start_demo_node().await;
    let g = t.client.genesis().await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/v1/tx", t.base);

    let check = |status: StatusCode, body: &Value, want_status: u16, want_code: &str| {
        assert_eq!(
            (status.as_u16(), body["code"].as_str().unwrap_or("")),
            (want_status, want_code),
            "{body}"
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    };
    async fn send(r: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = r.send().await.unwrap();
        let s = resp.status();
        let text = resp.text().await.unwrap();
        (
            s,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({s}): {text}")),
        )
    }

    // 1. Malformed JSON.
    let (s, b) = send(
        http.post(&url)
            .header("content-type", "application/json")
            .body("{\"tx\": "),
    )
    .await;
    check(s, &b, 400, "malformed_json");
    // 2. Well-formed JSON of the wrong shape.
    let (s, b) = send(http.post(&url).json(&serde_json::json!({"hello": 1}))).await;
    check(s, &b, 400, "invalid_json");
    // 3. No JSON content type.
    let (s, b) = send(http.post(&url).body("{}")).await;
    check(s, &b, 415, "unsupported_media_type");
    // 4. Oversized body.
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(300 * 1024));
    let (s, b) = send(
        http.post(&url)
            .header("content-type", "application/json")
            .body(big),
    )
    .await;
    check(s, &b, 413, "body_too_large");
    // 5. A bad signature: a field changed after signing.
    let rx = issue(&g, "dr.ada", "hosp-north", 0, None);
    let mut forged = rx.tx.clone();
    forged.tx.nonce ^= 1;
    let (s, b) = send(http.post(&url).json(&forged)).await;
    check(s, &b, 400, "bad_signature");
    // 6. A wrong role: a pharmacist tries to issue.
    let bad = txbuild::issue(
        &g,
        &staff_key("ph.cara"),
        IssueInput {
            hospital: org("hosp-north"),
            items: vec![item(5, false)],
            repeats: 0,
            valid_from: None,
            valid_until: None,
            content: content("X Y"),
        },
    )
    .unwrap();
    refused(&t.client, &bad.tx, 403, "wrong_role").await;
    // 7. A revoked key: the regulator's officer revokes Dr Ben, who then cannot issue.
    applied(
        &t.client,
        &txbuild::revoke_staff(
            &g,
            &staff_key("reg.gail"),
            staff_key("dr.ben").public(),
            RevokeReason::LicenceSuspended,
        ),
    )
    .await;
    refused(
        &t.client,
        &issue(&g, "dr.ben", "hosp-river", 0, None).tx,
        403,
        "signer_revoked",
    )
    .await;
    // 8. An unknown prescription, read and claimed.
    let ghost = issue(&g, "dr.ada", "hosp-north", 0, None);
    let (s, b) = send(http.get(format!("{}/v1/prescriptions/{}", t.base, ghost.payload.id))).await;
    check(s, &b, 404, "unknown_prescription");
    refused(
        &t.client,
        &txbuild::claim(
            &g,
            &staff_key("ph.cara"),
            &org("pharm-central"),
            &ghost.payload,
        ),
        404,
        "unknown_prescription",
    )
    .await;
    let (s, b) = send(http.get(format!("{}/v1/prescriptions/not-an-id", t.base))).await;
    check(s, &b, 400, "bad_prescription_id");
    // 9. A wrong QR secret is refused and counted.
    applied(&t.client, &rx.tx).await;
    let wrong = QrPayload {
        id: rx.payload.id,
        secret: privacy::AccessSecret::from_bytes([7; 32]),
    };
    refused(
        &t.client,
        &txbuild::claim(&g, &staff_key("ph.cara"), &org("pharm-central"), &wrong),
        403,
        "wrong_secret",
    )
    .await;
    let v: Value = t
        .client
        .post(
            "/v1/scan",
            &serde_json::json!({"payload": wrong.encode(), "pharmacy": "pharm-central"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (v["verdict"].as_str(), v["code"].as_str()),
        (Some("red"), Some("wrong_secret")),
        "{v}"
    );
    let p: Value = t
        .client
        .get(&format!("/v1/prescriptions/{}", rx.payload.id))
        .await
        .unwrap();
    assert_eq!(p["record"]["wrong_proofs"], 1);
    // 10. A mistyped QR payload is recognised as such.
    let mut typo = rx.payload.encode();
    let last = typo.pop().unwrap();
    typo.push(if last == 'A' { 'B' } else { 'A' });
    let (s, b) = send(
        http.post(format!("{}/v1/scan", t.base))
            .json(&serde_json::json!({"payload": typo, "pharmacy": "pharm-central"})),
    )
    .await;
    check(s, &b, 400, "bad_qr_payload");
    // 11. Expiry: a prescription valid for 1.5 s cannot be claimed after it lapses.
    let short = issue(
        &g,
        "dr.ada",
        "hosp-north",
        0,
        Some(Timestamp(rxchain::clock::now().0 + 1_500)),
    );
    applied(&t.client, &short.tx).await;
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    refused(
        &t.client,
        &txbuild::claim(
            &g,
            &staff_key("ph.cara"),
            &org("pharm-central"),
            &short.payload,
        ),
        410,
        "expired",
    )
    .await;
    // 12. A signature from another consortium does not verify here.
    let mut other = g.clone();
    other.chain_id = Label::parse("another-chain").unwrap();
    let foreign = issue(&other, "dr.ada", "hosp-north", 0, None);
    let (s, b) = send(http.post(&url).json(&foreign.tx)).await;
    check(s, &b, 400, "bad_signature");
    // 13. Unknown routes and bad ids answer JSON errors.
    let (s, b) = send(http.get(format!("{}/v1/nothing-here", t.base))).await;
    check(s, &b, 404, "no_such_route");
    let (s, b) = send(http.get(format!("{}/v1/tx/zz", t.base))).await;
    check(s, &b, 400, "bad_tx_id");
    let (s, b) = send(http.get(format!("{}/v1/blocks/99999", t.base))).await;
    check(s, &b, 404, "unknown_block");
    // 14. Org admins cannot act as prescribers either.
    let admin_issue = txbuild::issue(
        &g,
        &admin_key("hosp-north"),
        IssueInput {
            hospital: org("hosp-north"),
            items: vec![item(5, false)],
            repeats: 0,
            valid_from: None,
            valid_until: None,
            content: content("X Y"),
        },
    )
    .unwrap();
    refused(&t.client, &admin_issue.tx, 403, "wrong_role").await;
    t.node.stop().await;
}

/// A `delivered` event, handed to the patient in person.
fn delivered(
    g: &rxchain_contracts::Genesis,
    key: &rxchain_contracts::SecretKey,
    id: rxchain_contracts::PrescriptionId,
) -> rxchain_contracts::tx::SignedTx {
    txbuild::delivery_event(
        g,
        key,
        rxchain_contracts::tx::DeliveryEvent {
            id,
            status: DeliveryStatus::Delivered,
            problem: None,
            hand_over: Some(rxchain_contracts::tx::HandOver::ToPatient),
        },
    )
}
