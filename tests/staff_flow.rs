//! The web apps' whole flow through the server-side API, against a real
//! node: a doctor issues and gets the QR code, the patient opens it and
//! picks a pharmacy, the pharmacist claims and dispenses in two fills, a
//! second dispense and a forged code are refused, and the regulator sees it
//! all in the reports, the CSV, the alerts and a full verification.

mod common;
mod staff_client;

use std::time::Duration;

use argon2::password_hash::Encoding;
use reqwest::StatusCode;
use rxchain::qr::{decode_image, DecodeLimits, QrPayload};
use rxchain_contracts::privacy::AccessSecret;
use serde_json::{json, Value};
use staff_client::{assert_error, issue_body, post_anon, Staff};

fn base64_decode(s: &str) -> Vec<u8> {
    let s = s.trim_end_matches('=');
    let mut out = vec![0u8; s.len() * 3 / 4 + 3];
    let n = Encoding::B64
        .decode(s, &mut out)
        .expect("valid base64")
        .len();
    out.truncate(n);
    out
}

/// Rows of a report keyed by their `key`.
fn row<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no row {key}: {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_patient_pharmacist_and_regulator_through_the_web_api() {
    let t = staff_client::start().await;
    let ada = Staff::sign_in(&t.base, "dr.ada").await;
    let cara = Staff::sign_in(&t.base, "ph.cara").await;
    let gail = Staff::sign_in(&t.base, "reg.gail").await;

    // 1. The formulary finds amoxicillin by name and by ATC prefix.
    let (s, _, f) = ada.get("/v1/formulary?q=amox").await;
    assert_eq!(s, StatusCode::OK, "{f}");
    let f = f.as_array().unwrap();
    assert!(
        !f.is_empty()
            && f.len() <= 20
            && f.iter().all(|e| e["name"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .starts_with("amox")),
        "{f:?}"
    );
    assert!(
        f.iter().any(|e| e["atc"] == "J01CA04"
            && e["pack"].as_u64().is_some()
            && e["controlled"] == false),
        "{f:?}"
    );
    let (_, _, by_atc) = ada.get("/v1/formulary?q=N02A").await;
    assert!(
        by_atc
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["controlled"] == true),
        "{by_atc}"
    );

    // 2. The doctor issues; the answer carries the payload once, a QR PNG that decodes to it, and an SVG.
    let (s, h, issued) = ada
        .post(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Flow", 14),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{issued}");
    assert_eq!(
        h.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    assert_eq!(
        issued["receipt"]["outcome"]["result"], "applied",
        "{issued}"
    );
    let id = issued["id"].as_str().unwrap().to_string();
    let payload = issued["payload"].as_str().unwrap().to_string();
    assert!(payload.starts_with("RX1:"));
    assert_eq!(issued["patient_link"], format!("/patient/#{payload}"));
    assert_eq!(
        issued["short_id"].as_str().unwrap(),
        QrPayload::parse(&payload).unwrap().id.short()
    );
    let png = base64_decode(issued["qr_png_base64"].as_str().unwrap());
    let decoded = tokio::task::spawn_blocking(move || decode_image(&png, &DecodeLimits::default()))
        .await
        .unwrap()
        .expect("the QR PNG decodes");
    assert_eq!(decoded, payload, "the QR code carries the payload");
    assert!(issued["qr_svg"].as_str().unwrap().contains("<svg"));
    let valid_until = issued["valid_until"].as_u64().unwrap();
    let in_14_days = rxchain::clock::now().plus_days(14).0;
    assert!(
        valid_until <= in_14_days && valid_until + 60_000 > in_14_days,
        "{valid_until} vs {in_14_days}"
    );
    // The QR endpoint draws the same code again.
    let (s, _, qr) = ada.post("/v1/qr", &json!({"payload": payload})).await;
    assert_eq!(s, StatusCode::OK, "{qr}");
    assert!(
        qr["svg"].as_str().unwrap().contains("<svg")
            && !qr["png_base64"].as_str().unwrap().is_empty()
    );
    assert_error(
        &ada.post("/v1/qr", &json!({"payload": "hello"})).await,
        400,
        "bad_qr_payload",
    );

    // 3. The patient opens it with the payload alone: decrypted content and the pharmacies.
    let (s, _, opened) = post_anon(&t.base, "/v1/patient/open", &json!({"payload": payload})).await;
    assert_eq!(s, StatusCode::OK, "{opened}");
    assert_eq!(
        opened["content"]["patient"]["name"],
        "Synthetic Patient Flow"
    );
    assert_eq!(
        opened["content"]["dosage"][1],
        "one capsule when needed, at most four a day"
    );
    assert_eq!(opened["content"]["notes"], "synthetic test notes");
    assert_eq!(opened["prescription"]["public_status"], "issued");
    assert_eq!(opened["prescription"]["record"]["id"], id.as_str());
    let central = opened["pharmacies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "pharm-central")
        .expect("Central is offered")
        .clone();
    assert_eq!(central["name"], "Central Pharmacy (demo)");
    assert!(!central["address"].as_str().unwrap().is_empty());
    // A forged code (right id, wrong secret) opens nothing; garbage is a 400.
    let forged = QrPayload::new(
        QrPayload::parse(&payload).unwrap().id,
        AccessSecret::from_bytes([7; 32]),
    )
    .encode();
    assert_error(
        &post_anon(&t.base, "/v1/patient/open", &json!({"payload": forged})).await,
        403,
        "wrong_secret",
    );
    assert_error(
        &post_anon(&t.base, "/v1/patient/open", &json!({"payload": "RX1:AAAA"})).await,
        400,
        "bad_qr_payload",
    );

    // 4. The patient assigns pickup at Central.
    let (s, _, r) = post_anon(
        &t.base,
        "/v1/patient/assign",
        &json!({"payload": payload, "mode": "pickup", "pharmacy": "pharm-central"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["outcome"]["result"], "applied");

    // 5. The pharmacist scans (green), sees it in the pharmacy's list, and claims.
    let (s, _, v) = post_anon(
        &t.base,
        "/v1/scan",
        &json!({"payload": payload, "pharmacy": "pharm-central"}),
    )
    .await;
    assert_eq!(
        (s, v["verdict"].as_str()),
        (StatusCode::OK, Some("green")),
        "{v}"
    );
    let (_, _, list) = cara.get("/v1/staff/pharmacy/prescriptions").await;
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id.as_str())
        .unwrap_or_else(|| panic!("listed: {list}"));
    assert_eq!(mine["assigned_here"], true);
    assert_eq!(
        mine["payload"],
        payload.as_str(),
        "the hand-over opens with the pharmacy's data key"
    );
    cara.ok("/v1/staff/claim", &json!({"payload": payload}))
        .await;

    // 6. A partial fill with batch numbers, then the rest: completed.
    let r = cara
        .ok("/v1/staff/dispense", &json!({"id": id, "lines": [{"item": 0, "quantity": 5, "batch": "LOT-A1"}, {"item": 1, "quantity": 4, "batch": "LOT-T1"}], "complete": false}))
        .await;
    assert_eq!(r["outcome"]["result"], "applied");
    let p: Value = t
        .client
        .get(&format!("/v1/prescriptions/{id}"))
        .await
        .unwrap();
    assert_eq!(p["public_status"], "partially_dispensed");
    cara.ok("/v1/staff/dispense", &json!({"id": id, "lines": [{"item": 0, "quantity": 15, "batch": "LOT-A2"}, {"item": 1, "quantity": 6, "batch": "LOT-T2"}], "complete": false})).await;
    let p: Value = t
        .client
        .get(&format!("/v1/prescriptions/{id}"))
        .await
        .unwrap();
    assert_eq!(p["public_status"], "completed", "{p}");

    // 7. A second dispense is refused and recorded; so is a claim with a forged code.
    let again = cara.post("/v1/staff/dispense", &json!({"id": id, "lines": [{"item": 0, "quantity": 1, "batch": "LOT-A3"}], "complete": false})).await;
    assert_error(&again, 409, "already_dispensed");
    assert_eq!(again.2["detail"]["pharmacy"], "pharm-central");
    assert!(
        again.2["receipt"]["height"].as_u64().is_some(),
        "{}",
        again.2
    );
    let wrong = cara
        .post("/v1/staff/claim", &json!({"payload": forged}))
        .await;
    assert_error(&wrong, 403, "wrong_secret");

    // 8. The doctor's list shows the status and the patient's name.
    let (_, _, list) = ada.get("/v1/staff/prescriptions").await;
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id.as_str())
        .unwrap_or_else(|| panic!("listed: {list}"));
    assert_eq!(mine["public_status"], "completed");
    assert_eq!(mine["patient_name"], "Synthetic Patient Flow");
    assert_eq!(mine["items"][0]["atc"], "J01CA04");

    // 9. The dispensing report, grouped each way, shows both fills (30 units, 10 controlled).
    let (s, _, by_day) = gail.get("/v1/reports/dispensing").await;
    assert_eq!(s, StatusCode::OK, "{by_day}");
    let (from, to) = (
        by_day["from"].as_str().unwrap().to_string(),
        by_day["to"].as_str().unwrap().to_string(),
    );
    for group in ["day", "pharmacy", "drug", "prescriber", "hospital"] {
        let (s, _, rep) = gail
            .get(&format!(
                "/v1/reports/dispensing?from={from}&to={to}&group_by={group}"
            ))
            .await;
        assert_eq!(s, StatusCode::OK, "{rep}");
        assert_eq!(rep["group_by"], group);
        assert_eq!(
            (
                rep["totals"]["fills"].as_u64(),
                rep["totals"]["quantity"].as_u64(),
                rep["totals"]["controlled_quantity"].as_u64()
            ),
            (Some(2), Some(30), Some(10)),
            "{group}: {rep}"
        );
        match group {
            "pharmacy" => {
                let r = row(&rep, "pharm-central");
                assert_eq!(
                    (
                        r["fills"].as_u64(),
                        r["quantity"].as_u64(),
                        r["label"].as_str()
                    ),
                    (Some(2), Some(30), Some("Central Pharmacy (demo)"))
                );
            }
            "drug" => {
                let r = row(&rep, "J01CA04");
                assert_eq!(
                    (
                        r["fills"].as_u64(),
                        r["quantity"].as_u64(),
                        r["controlled_quantity"].as_u64()
                    ),
                    (Some(2), Some(20), Some(0))
                );
                let r = row(&rep, "N02AX02");
                assert_eq!(
                    (
                        r["quantity"].as_u64(),
                        r["controlled_quantity"].as_u64(),
                        r["label"].as_str()
                    ),
                    (Some(10), Some(10), Some("Tramadol"))
                );
            }
            "prescriber" => {
                let key = rxchain::demo::staff_key("dr.ada").public().to_hex();
                assert_eq!(row(&rep, &key)["label"], "Dr Ada Example");
            }
            "hospital" => assert_eq!(row(&rep, "hosp-north")["quantity"], 30),
            _ => {
                let rows = rep["rows"].as_array().unwrap();
                assert!(
                    !rows.is_empty() && rows.iter().all(|r| r["key"].as_str().unwrap().len() == 10),
                    "{rep}"
                );
            }
        }
    }
    assert_error(
        &gail.get("/v1/reports/dispensing?group_by=colour").await,
        400,
        "bad_query",
    );
    assert_error(
        &gail.get("/v1/reports/dispensing?from=2026-02-30").await,
        400,
        "bad_date",
    );
    assert_error(
        &gail
            .get(&format!("/v1/reports/dispensing?from={to}&to={from}"))
            .await,
        400,
        "bad_range",
    );
    let controlled = gail.get("/v1/reports/controlled").await.2;
    let tramadol = controlled["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["atc"] == "N02AX02" && r["pharmacy"] == "pharm-central")
        .expect("controlled row");
    assert_eq!(
        (tramadol["quantity"].as_u64(), tramadol["fills"].as_u64()),
        (Some(10), Some(2)),
        "{controlled}"
    );

    // 10. The CSV has the header and one line per dispensed line.
    let (s, h, text) = gail
        .get_text(&format!("/v1/reports/dispensing.csv?from={from}&to={to}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert!(h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .starts_with("text/csv"));
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        [
            "date",
            "time",
            "pharmacy",
            "pharmacist",
            "prescription",
            "hospital",
            "prescriber",
            "atc",
            "drug",
            "quantity",
            "unit",
            "batch",
            "controlled"
        ]
    );
    let lines: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    let short = issued["short_id"].as_str().unwrap();
    let ours: Vec<_> = lines.iter().filter(|l| &l[4] == short).collect();
    assert_eq!(ours.len(), 4, "two fills of two lines: {text}");
    let first = ours
        .iter()
        .find(|l| &l[11] == "LOT-A1")
        .expect("batch LOT-A1");
    assert_eq!(
        (&first[2], &first[3], &first[5], &first[6]),
        (
            "Central Pharmacy (demo)",
            "Cara Placeholder",
            "Northgate General Hospital (synthetic)",
            "Dr Ada Example"
        )
    );
    assert_eq!(
        (&first[7], &first[9], &first[10], &first[12]),
        ("J01CA04", "5", "capsules", "false")
    );
    assert!(ours
        .iter()
        .any(|l| &l[11] == "LOT-T2" && &l[9] == "6" && &l[12] == "true"));

    // 11. Alerts list the refused second dispense and the forged claim.
    let (_, _, alerts) = gail.get("/v1/reports/alerts?limit=50").await;
    let alerts = alerts.as_array().unwrap();
    let about = |code: &str, kind: &str| {
        alerts
            .iter()
            .any(|a| a["code"] == code && a["kind"] == kind && a["prescription"] == id.as_str())
    };
    assert!(about("already_dispensed", "dispense"), "{alerts:?}");
    assert!(about("wrong_secret", "claim"), "{alerts:?}");
    let a = alerts
        .iter()
        .find(|a| a["code"] == "already_dispensed")
        .unwrap();
    assert_eq!(
        (a["signer"]["name"].as_str(), a["short_id"].as_str()),
        (Some("Cara Placeholder"), Some(short))
    );

    // 12. A full verification runs in the background and is recorded.
    let (s, _, started) = gail.post("/v1/reports/verify", &json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{started}");
    let mut report = Value::Null;
    for _ in 0..200 {
        report = gail.get("/v1/reports/chain").await.2;
        if report["last_verification"].is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = &report["last_verification"];
    assert_eq!(v["ok"], true, "{report}");
    assert!(
        v["height"].as_u64().unwrap() >= again.2["receipt"]["height"].as_u64().unwrap(),
        "{report}"
    );
    assert!(
        report["state_digest"]
            .as_str()
            .is_some_and(|d| d.len() == 64),
        "{report}"
    );
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_delivery_and_cancellations_through_the_web_api() {
    let t = staff_client::start().await;
    let ada = Staff::sign_in(&t.base, "dr.ada").await;
    let dan = Staff::sign_in(&t.base, "ph.dan").await;
    let finn = Staff::sign_in(&t.base, "courier.finn").await;

    // 1. The patient asks Harbour for home delivery; the address is required and sealed.
    let issued = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Delivery", 7),
        )
        .await;
    let id = issued["id"].as_str().unwrap().to_string();
    let payload = issued["payload"].as_str().unwrap().to_string();
    let assign = json!({"payload": payload, "mode": "delivery", "pharmacy": "pharm-harbour"});
    assert_error(
        &post_anon(&t.base, "/v1/patient/assign", &assign).await,
        400,
        "missing_address",
    );
    let mut with_address = assign.clone();
    with_address["address"] = json!("42 Synthetic Street, Harbourside");
    let (s, _, r) = post_anon(&t.base, "/v1/patient/assign", &with_address).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let p: Value = t
        .client
        .get(&format!("/v1/prescriptions/{id}"))
        .await
        .unwrap();
    assert!(
        !p.to_string().contains("Synthetic Street"),
        "the address is sealed on the chain"
    );
    assert_error(
        &post_anon(
            &t.base,
            "/v1/patient/assign",
            &json!({"payload": payload, "mode": "pickup", "pharmacy": "reg-health"}),
        )
        .await,
        400,
        "not_a_pharmacy",
    );

    // 2. Harbour's list carries the handed-over code and the address; Harbour claims with it.
    let (_, _, list) = dan.get("/v1/staff/pharmacy/prescriptions").await;
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(row["delivery_address"], "42 Synthetic Street, Harbourside");
    assert_eq!(row["record"]["fulfilment"]["mode"], "delivery");
    let handed = row["payload"].as_str().unwrap().to_string();
    assert_eq!(handed, payload);
    dan.ok("/v1/staff/claim", &json!({"payload": handed})).await;
    dan.ok("/v1/staff/dispense", &json!({"id": id, "lines": [{"item": 0, "quantity": 20, "batch": "H-1"}, {"item": 1, "quantity": 10, "batch": "H-2"}], "complete": false})).await;

    // 3. Delivery events: the pharmacy packs, the courier carries; order is the chain's rule.
    dan.ok("/v1/staff/delivery", &json!({"id": id, "status": "packed"}))
        .await;
    dan.ok(
        "/v1/staff/hand-over",
        &json!({"id": id, "carrier": "logi-swift"}),
    )
    .await;
    assert_error(
        &finn
            .post(
                "/v1/staff/delivery",
                &json!({"id": id, "status": "delivered", "hand_over": "to_patient"}),
            )
            .await,
        409,
        "delivery_out_of_order",
    );
    for step in [
        json!({"id": id, "status": "dispatched"}),
        json!({"id": id, "status": "out_for_delivery"}),
        json!({"id": id, "status": "delivered", "hand_over": "to_household"}),
    ] {
        finn.ok("/v1/staff/delivery", &step).await;
    }
    assert_error(
        &ada.post("/v1/staff/delivery", &json!({"id": id, "status": "packed"}))
            .await,
        403,
        "wrong_role",
    );
    let (_, _, list) = dan.get("/v1/staff/pharmacy/prescriptions").await;
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id.as_str())
        .unwrap();
    assert_eq!(row["record"]["delivery"].as_array().unwrap().len(), 4);
    assert!(
        row.get("payload").is_none(),
        "a completed prescription's code is no longer handed out: {row}"
    );

    // 4. A patient cancels an unclaimed prescription; the doctor cannot cancel it again.
    let second = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Cancel", 7),
        )
        .await;
    let (s, _, r) = post_anon(
        &t.base,
        "/v1/patient/cancel",
        &json!({"payload": second["payload"]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let again = ada
        .post(
            &format!(
                "/v1/staff/prescriptions/{}/cancel",
                second["id"].as_str().unwrap()
            ),
            &json!({}),
        )
        .await;
    assert_error(&again, 409, "cancelled");

    // 5. The doctor cancels an untouched one of their own.
    let third = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Third", 7),
        )
        .await;
    let r = ada
        .ok(
            &format!(
                "/v1/staff/prescriptions/{}/cancel",
                third["id"].as_str().unwrap()
            ),
            &json!({"reason": "treatment_changed"}),
        )
        .await;
    assert_eq!(r["outcome"]["result"], "applied");
    let (_, _, list) = ada.get("/v1/staff/prescriptions").await;
    let statuses: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["patient_name"].as_str().unwrap(),
                p["public_status"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&("Synthetic Patient Third", "cancelled")),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("Synthetic Patient Delivery", "completed")),
        "{statuses:?}"
    );
    t.node.stop().await;
}

#[test]
fn every_web_app_route_is_in_the_openapi_document() {
    let doc: Value = serde_json::from_str(rxchain::http::ops::openapi_json()).unwrap();
    let routes = [
        ("/v1/session", "post"),
        ("/v1/session", "get"),
        ("/v1/session", "delete"),
        ("/v1/formulary", "get"),
        ("/v1/qr", "post"),
        ("/v1/staff/prescriptions", "post"),
        ("/v1/staff/prescriptions", "get"),
        ("/v1/staff/prescriptions/{id}/cancel", "post"),
        ("/v1/staff/claim", "post"),
        ("/v1/staff/dispense", "post"),
        ("/v1/staff/release", "post"),
        ("/v1/staff/delivery", "post"),
        ("/v1/staff/pharmacy/prescriptions", "get"),
        ("/v1/patient/open", "post"),
        ("/v1/patient/assign", "post"),
        ("/v1/patient/cancel", "post"),
        ("/v1/reports/dispensing", "get"),
        ("/v1/reports/dispensing.csv", "get"),
        ("/v1/reports/controlled", "get"),
        ("/v1/reports/alerts", "get"),
        ("/v1/reports/chain", "get"),
        ("/v1/reports/verify", "post"),
    ];
    for (path, method) in routes {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing from openapi.json"
        );
    }
}
