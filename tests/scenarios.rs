//! Runs every scenario file in `fixtures/scenarios/` against a real node:
//! each step is signed by its actor, submitted over HTTP, and its outcome
//! (applied, or the exact refusal code) compared with the file.

mod common;

use std::collections::HashMap;

use rxchain::client::{ClientError, Submitted};
use rxchain::demo::{admin_key, staff_key};
use rxchain::qr::QrPayload;
use rxchain::txbuild::{self, IssueInput};
use rxchain_contracts::privacy::{PatientDetails, PrivateContent};
use rxchain_contracts::tx::{CancelReason, DispenseLine, Item, RevokeReason};
use rxchain_contracts::{AtcCode, Genesis, Label, OrgId, Quantity, SecretKey, SignedTx};
use serde_json::Value;

fn key_of(actor: &str, rxs: &HashMap<String, QrPayload>) -> SecretKey {
    if let Some(rx) = actor.strip_prefix("patient:") {
        return rxs[rx].secret.signing_key();
    }
    if let Some(org) = actor.strip_prefix("admin:") {
        return admin_key(org);
    }
    staff_key(actor)
}

fn hospital_of(actor: &str) -> &'static str {
    match actor {
        "dr.ben" => "hosp-river",
        _ => "hosp-north",
    }
}

fn build(g: &Genesis, step: &Value, rxs: &mut HashMap<String, QrPayload>) -> SignedTx {
    let actor = step["actor"].as_str().unwrap();
    let key = key_of(actor, rxs);
    let rx_name = step["rx"].as_str().unwrap_or_default().to_string();
    let org = |f: &str| OrgId::parse(step[f].as_str().unwrap()).unwrap();
    let quantity = || Quantity::new(step["quantity"].as_u64().unwrap() as u32).unwrap();
    match step["action"].as_str().unwrap() {
        "issue" => {
            let new = txbuild::issue(
                g,
                &key,
                IssueInput {
                    hospital: OrgId::parse(hospital_of(actor)).unwrap(),
                    items: vec![Item {
                        atc: AtcCode::parse("A10BA02").unwrap(),
                        name: Label::parse("Metformin").unwrap(),
                        strength: Label::parse("500 mg").unwrap(),
                        form: Label::parse("tablet").unwrap(),
                        quantity: quantity(),
                        unit: Label::parse("tablets").unwrap(),
                        controlled: false,
                    }],
                    repeats: step["repeats"].as_u64().unwrap() as u8,
                    valid_from: None,
                    valid_until: None,
                    content: PrivateContent {
                        patient: PatientDetails {
                            name: "Scenario Synthetic".into(),
                            birth_date: "1975-05-05".into(),
                            identifier: "SYN-SCN".into(),
                            email: None,
                        },
                        dosage: vec!["one tablet with breakfast".into()],
                        notes: String::new(),
                    },
                },
            )
            .unwrap();
            rxs.insert(rx_name, new.payload);
            new.tx
        }
        "assign_pickup" => txbuild::assign_pickup(g, &rxs[&rx_name], &org("pharmacy")).unwrap(),
        "claim" => txbuild::claim(g, &key, &org("pharmacy"), &rxs[&rx_name]),
        "release" => txbuild::release(g, &key, rxs[&rx_name].id),
        "dispense" => txbuild::dispense(
            g,
            &key,
            rxs[&rx_name].id,
            vec![DispenseLine {
                item: 0,
                quantity: quantity(),
                batch: Label::parse("SCN-LOT").unwrap(),
            }],
            false,
        ),
        "cancel" => txbuild::cancel(g, &key, rxs[&rx_name].id, CancelReason::Other),
        "revoke" => txbuild::revoke_staff(
            g,
            &key,
            staff_key(step["staff"].as_str().unwrap()).public(),
            RevokeReason::LicenceSuspended,
        ),
        other => panic!("unknown scenario action {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_file_plays_out_as_written() {
    let t = common::start_demo_node().await;
    let g = t.client.genesis().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "scenario files are missing from {}",
        dir.display()
    );
    for file in files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let mut rxs: HashMap<String, QrPayload> = HashMap::new();
        for (n, step) in doc["steps"].as_array().unwrap().iter().enumerate() {
            let here = format!(
                "{} step {}",
                file.file_name().unwrap().to_string_lossy(),
                n + 1
            );
            if step["check"] == "status" {
                let id = rxs[step["rx"].as_str().unwrap()].id;
                let p: Value = t
                    .client
                    .get(&format!("/v1/prescriptions/{id}"))
                    .await
                    .unwrap();
                assert_eq!(p["public_status"], step["status"], "{here}");
                assert_eq!(p["record"]["refused_attempts"], step["refused"], "{here}");
                continue;
            }
            let tx = build(&g, step, &mut rxs);
            let got = match t.client.submit(&tx).await {
                Ok(Submitted::Applied(_)) => "applied".to_string(),
                Err(ClientError::Api { code, .. }) => code,
                other => panic!("{here}: unexpected {other:?}"),
            };
            assert_eq!(got, step["expect"].as_str().unwrap(), "{here}");
        }
    }
    t.node.stop().await;
}
