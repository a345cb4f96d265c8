//! Attack: strangers write to the chain. A thousand transactions of every
//! kind, each signed by a throwaway key and naming a real prescription, sent
//! concurrently from several client addresses; before them, a real key that was
//! revoked, and a real key of the wrong role. Every one must be refused
//! before ordering (the precise admission code, no receipt) or throttled
//! (429 `too_many_refusals`), and the chain, the prescription's history and
//! the regulator's alerts must not move. A second, sequential test pins the
//! per-address limit exactly, which the concurrent flood can only bound.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use reqwest::StatusCode;
use rxchain::demo::{admin_key, staff_key};
use rxchain::qr::QrPayload;
use rxchain::txbuild;
use rxchain_contracts::tx::{
    CancelReason, DeliveryStatus, DispenseLine, RevokeReason, Role, TxBody,
};
use rxchain_contracts::{AtcCode, Label, OrgId, PrescriptionId, Quantity, SecretKey, SignedTx};
use serde_json::Value;

use super::common::issue::{atorvastatin_issue, SyntheticPatient};
use super::post_signed as post;
use super::staff_client::{self, Staff};

/// How many throwaway-key transactions the attack sends.
const ATTEMPTS: usize = 1_000;
/// How many are in flight at once.
const IN_FLIGHT: usize = 32;

/// A client whose connections leave from `ip` (any 127/8 address reaches
/// the node on 127.0.0.1), so the per-address throttle sees distinct clients.
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .build()
        .expect("client builds")
}

/// What the chain shows that a stranger must not be able to change.
#[derive(Debug, PartialEq)]
struct Observed {
    height: u64,
    history: Value,
    alerts: Value,
}

async fn observe(
    node: &rxchain::node::RunningNode,
    regulator: &Staff,
    id: &PrescriptionId,
) -> Observed {
    let (s, _, rx) = regulator.get(&format!("/v1/prescriptions/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{rx}");
    let (s, _, alerts) = regulator.get("/v1/reports/alerts?limit=1000").await;
    assert_eq!(s, StatusCode::OK, "{alerts}");
    Observed {
        height: node.chain.tip().height,
        history: rx["history"].clone(),
        alerts,
    }
}

/// The `n`th stranger transaction: kind `n % 12`, signed by a fresh key,
/// naming the real prescription `payload.id`. Answers the transaction and
/// the status and code its admission refusal must have.
fn stranger_tx(
    g: &rxchain_contracts::Genesis,
    payload: &QrPayload,
    n: usize,
) -> (&'static str, SignedTx, u16, &'static str) {
    let key: SecretKey = rxchain::keys::generate();
    let id = payload.id;
    let org = |s: &str| OrgId::parse(s).unwrap();
    let label = |s: &str| Label::parse(s).unwrap();
    match n % 12 {
        0 => (
            "register_staff",
            txbuild::register_staff(
                g,
                &key,
                org("hosp-north"),
                rxchain::keys::generate().public(),
                Role::Practitioner,
                label("FAKE-MD-1"),
                label("Fake Doctor"),
            ),
            403,
            "not_org_admin",
        ),
        1 => (
            "revoke_staff",
            txbuild::revoke_staff(
                g,
                &key,
                staff_key("dr.ada").public(),
                RevokeReason::KeyCompromised,
            ),
            403,
            "unknown_signer",
        ),
        2 => (
            "issue",
            txbuild::issue(
                g,
                &key,
                atorvastatin_issue(
                    "hosp-north",
                    30,
                    0,
                    SyntheticPatient {
                        name: format!("Synthetic Stranger {n}"),
                        birth_date: "1970-01-01",
                        identifier: format!("SYN-STRANGER-{n}"),
                    },
                    "one tablet daily",
                ),
            )
            .unwrap()
            .tx,
            403,
            "unknown_signer",
        ),
        3 => (
            "assign",
            // The stranger's key posing as the access key.
            txbuild::sign(
                g,
                &key,
                match txbuild::assign_pickup(g, payload, &org("pharm-harbour"))
                    .unwrap()
                    .tx
                    .body
                {
                    b @ TxBody::Assign(_) => b,
                    _ => unreachable!(),
                },
            ),
            403,
            "not_patient",
        ),
        // A claim with a genuine proof of the QR code, by a stranger.
        4 => (
            "claim",
            txbuild::claim(g, &key, &org("pharm-central"), payload),
            403,
            "unknown_signer",
        ),
        5 => (
            "release",
            txbuild::release(g, &key, id),
            403,
            "unknown_signer",
        ),
        6 => (
            "dispense",
            txbuild::dispense(
                g,
                &key,
                id,
                vec![DispenseLine {
                    item: 0,
                    quantity: Quantity::new(30).unwrap(),
                    batch: label("FAKE-BATCH"),
                }],
                true,
            ),
            403,
            "unknown_signer",
        ),
        7 => (
            "cancel",
            txbuild::cancel(g, &key, id, CancelReason::PrescriberError),
            403,
            "not_prescriber_or_patient",
        ),
        8 => (
            "delivery",
            txbuild::delivery(g, &key, id, DeliveryStatus::ReadyForPickup),
            403,
            "unknown_signer",
        ),
        9 => (
            "hand_to_carrier",
            txbuild::hand_to_carrier(g, &key, id, org("logi-swift")),
            403,
            "unknown_signer",
        ),
        10 => (
            "set_controlled",
            txbuild::set_controlled(g, &key, AtcCode::parse("N02AA01").unwrap(), None),
            403,
            "unknown_signer",
        ),
        _ => (
            "revoke_admin",
            // Revoking an organisation's admin key names an organisation.
            txbuild::revoke_staff(
                g,
                &key,
                admin_key("pharm-central").public(),
                RevokeReason::Other,
            ),
            403,
            "unknown_signer",
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_throwaway_key_transactions_of_every_kind_write_nothing() {
    // 1. A demo node with a prescription assigned to Central Pharmacy and
    //    claimed there, a signed-in regulator, and a snapshot of what a
    //    stranger must not change.
    let t = staff_client::start().await;
    let g = t.demo.genesis.clone();
    let gail = Staff::sign_in(&t.base, "reg.gail").await;
    let setup = reqwest::Client::new();
    let new = txbuild::issue(
        &g,
        &staff_key("dr.ada"),
        atorvastatin_issue(
            "hosp-north",
            30,
            0,
            SyntheticPatient {
                name: "Synthetic Target".into(),
                birth_date: "1970-01-01",
                identifier: "SYN-TARGET".into(),
            },
            "one tablet daily",
        ),
    )
    .unwrap();
    let payload = new.payload.clone();
    let id = payload.id;
    let central = OrgId::parse("pharm-central").unwrap();
    for tx in [
        new.tx,
        txbuild::assign_pickup(&g, &payload, &central).unwrap(),
        txbuild::claim(&g, &staff_key("ph.cara"), &central, &payload),
    ] {
        let (s, body) = post(&setup, &t.base, &tx).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["outcome"]["result"], "applied", "{body}");
    }
    let before = observe(&t.node, &gail, &id).await;
    assert_eq!(
        before.history.as_array().map(Vec::len),
        Some(3),
        "issued, assigned, claimed: {}",
        before.history
    );

    // 2. A real key that was revoked: a second doctor is registered, then
    //    revoked by the hospital's admin, then tries to issue. Refused
    //    `signer_revoked` before ordering. (From its own client address, so
    //    the flood below does not throttle it.)
    let solo = client_from([127, 0, 0, 9]);
    let gone = rxchain::keys::generate();
    let north = OrgId::parse("hosp-north").unwrap();
    for tx in [
        txbuild::register_staff(
            &g,
            &admin_key("hosp-north"),
            north.clone(),
            gone.public(),
            Role::Practitioner,
            Label::parse("DEMO-MD-0099").unwrap(),
            Label::parse("Dr Gone Example").unwrap(),
        ),
        txbuild::revoke_staff(
            &g,
            &admin_key("hosp-north"),
            gone.public(),
            RevokeReason::LeftOrganisation,
        ),
    ] {
        let (s, body) = post(&solo, &t.base, &tx).await;
        assert_eq!(
            (s, &body["outcome"]["result"]),
            (200, &Value::from("applied")),
            "{body}"
        );
    }
    let before = observe(&t.node, &gail, &id).await;
    let revoked_issue = txbuild::issue(
        &g,
        &gone,
        atorvastatin_issue(
            "hosp-north",
            30,
            0,
            SyntheticPatient {
                name: "Synthetic Revoked".into(),
                birth_date: "1970-01-01",
                identifier: "SYN-REVOKED".into(),
            },
            "one tablet daily",
        ),
    )
    .unwrap()
    .tx;
    let (s, body) = post(&solo, &t.base, &revoked_issue).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (403, Some("signer_revoked")),
        "{body}"
    );
    assert!(body.get("receipt").is_none(), "{body}");
    // The revoked doctor cancelling the real prescription is refused too.
    let (s, body) = post(
        &solo,
        &t.base,
        &txbuild::cancel(&g, &gone, id, CancelReason::PrescriberError),
    )
    .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (403, Some("signer_revoked")),
        "{body}"
    );
    assert!(body.get("receipt").is_none(), "{body}");

    // 3. A real key of the wrong role: the courier issues, and dispenses.
    let finn = staff_key("courier.finn");
    let courier_issue = txbuild::issue(
        &g,
        &finn,
        atorvastatin_issue(
            "hosp-north",
            30,
            0,
            SyntheticPatient {
                name: "Synthetic Courier".into(),
                birth_date: "1970-01-01",
                identifier: "SYN-COURIER".into(),
            },
            "one tablet daily",
        ),
    )
    .unwrap()
    .tx;
    let (s, body) = post(&solo, &t.base, &courier_issue).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (403, Some("wrong_role")),
        "{body}"
    );
    assert!(body.get("receipt").is_none(), "{body}");
    let line = DispenseLine {
        item: 0,
        quantity: Quantity::new(30).unwrap(),
        batch: Label::parse("B-1").unwrap(),
    };
    let (s, body) = post(
        &solo,
        &t.base,
        &txbuild::dispense(&g, &finn, id, vec![line], true),
    )
    .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (403, Some("wrong_role")),
        "{body}"
    );
    assert!(body.get("receipt").is_none(), "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        observe(&t.node, &gail, &id).await,
        before,
        "nothing recorded"
    );

    // 4. A thousand throwaway-key transactions, twelve kinds in turn, 32 in
    //    flight, from four client addresses.
    let clients: Arc<Vec<reqwest::Client>> = Arc::new(
        (1..=4u8)
            .map(|last| client_from([127, 0, 0, last]))
            .collect(),
    );
    let txs: Vec<_> = (0..ATTEMPTS)
        .map(|n| stranger_tx(&g, &payload, n))
        .collect();
    let base = t.base.clone();
    let answers: Vec<_> = stream::iter(txs.into_iter().enumerate())
        .map(|(n, (kind, tx, status, code))| {
            let clients = clients.clone();
            let base = base.clone();
            async move {
                let (s, body) = post(&clients[n % clients.len()], &base, &tx).await;
                (kind, status, code, s, body, n % clients.len())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;

    // 5. Every answer is the precise admission refusal or the throttle;
    //    none is a success or carries a receipt.
    let mut tally: BTreeMap<(&str, u16, String), usize> = BTreeMap::new();
    let mut refused_from = [0usize; 4];
    for (kind, status, code, s, body, from) in &answers {
        if *s == 403 {
            refused_from[*from] += 1;
        }
        assert!(body.get("receipt").is_none(), "{kind}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{kind}: {body}"
        );
        let got = (*s, body["code"].as_str().unwrap_or(""));
        assert!(
            got == (*status, *code) || got == (429, "too_many_refusals"),
            "{kind}: expected {status} {code} or 429 too_many_refusals, got {got:?}: {body}"
        );
        *tally.entry((kind, *s, got.1.to_string())).or_default() += 1;
    }
    assert_eq!(answers.len(), ATTEMPTS);
    let refused = answers.iter().filter(|a| a.3 == 403).count();
    let throttled = answers.iter().filter(|a| a.3 == 429).count();
    assert_eq!(refused + throttled, ATTEMPTS, "{tally:?}");
    // Each address gets its limit of precise refusals, then 429s. The
    // throttle checks before a submission and counts after its refusal, so
    // requests already in flight when the count reaches the limit are
    // still answered precisely: the overshoot is at most the number in
    // flight (the sequential test below pins the exact limit).
    let per_address = rxchain::service::submit::MAX_REFUSALS_PER_ADDRESS;
    for (from, n) in refused_from.iter().enumerate() {
        assert!(
            (per_address..=per_address + IN_FLIGHT).contains(n),
            "address 127.0.0.{}: {n} precise refusals: {tally:?}",
            from + 1
        );
    }
    // Every kind was answered with its precise refusal at least once.
    for kind in [
        "register_staff",
        "revoke_staff",
        "issue",
        "assign",
        "claim",
        "release",
        "dispense",
        "cancel",
        "delivery",
        "hand_to_carrier",
        "set_controlled",
        "revoke_admin",
    ] {
        assert!(
            tally.iter().any(|((k, s, _), _)| *k == kind && *s == 403),
            "{kind} was never refused precisely: {tally:?}"
        );
    }

    // 6. Afterwards: same height, same history, same alerts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(observe(&t.node, &gail, &id).await, before);
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_is_refused_precisely_up_to_its_limit_then_throttled() {
    // 1. A demo node, a real prescription, and one client address.
    let t = super::common::start_demo_node().await;
    let g = t.demo.genesis.clone();
    let rx = txbuild::issue(
        &g,
        &staff_key("dr.ada"),
        atorvastatin_issue(
            "hosp-north",
            30,
            0,
            SyntheticPatient {
                name: "Synthetic Limit".into(),
                birth_date: "1970-01-01",
                identifier: "SYN-LIMIT".into(),
            },
            "one tablet daily",
        ),
    )
    .unwrap();
    let (s, body) = post(&reqwest::Client::new(), &t.base, &rx.tx).await;
    assert_eq!(s, 200, "{body}");
    let height = t.node.chain.tip().height;
    let http = client_from([127, 0, 0, 5]);

    // 2. One stranger transaction at a time, each from a fresh key: exactly
    //    the per-address limit is refused precisely, then 429 with
    //    Retry-After.
    let limit = rxchain::service::submit::MAX_REFUSALS_PER_ADDRESS;
    for n in 0..limit {
        let (_, tx, status, code) = stranger_tx(&g, &rx.payload, n);
        let (s, body) = post(&http, &t.base, &tx).await;
        assert_eq!(
            (s, body["code"].as_str()),
            (status, Some(code)),
            "attempt {n}: {body}"
        );
        assert!(body.get("receipt").is_none(), "{body}");
    }
    let (_, tx, _, _) = stranger_tx(&g, &rx.payload, limit);
    let resp = http
        .post(format!("{}/v1/tx", t.base))
        .json(&tx)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1)));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "too_many_refusals", "{body}");

    // 3. Nothing reached the chain.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.node.chain.tip().height, height);
    t.node.stop().await;
}
