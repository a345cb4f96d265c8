//! The access log against a real node: every read of a prescription's
//! private content (the patient page, the doctor's list with names, the
//! pharmacy's hand-over, a FHIR export with identity, an insurer's shared
//! read) is recorded with the right person, organisation and purpose; the
//! patient sees them; the regulator queries by staff member, sees volumes
//! flagged, and the log is anchored on the chain and verifies.

mod common;
mod staff_client;

use std::time::Duration;

use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use staff_client::{assert_error, issue_body, post_anon, send, Staff};

/// The reads of a prescription, as the patient sees them.
async fn reads(base: &str, payload: &str) -> Value {
    let got = post_anon(base, "/v1/patient/access", &json!({"payload": payload})).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.2);
    got.2
}

/// `(name, org, purpose)` of every read.
fn who(v: &Value) -> Vec<(String, String, String)> {
    v["reads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["org"].as_str().unwrap_or("").to_string(),
                r["purpose"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn row(v: &(String, &str, &str)) -> (String, String, String) {
    (v.0.clone(), v.1.to_string(), v.2.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_of_private_content_is_logged_with_who_why_and_when_and_anchored() {
    let t = staff_client::start().await;
    let ada = Staff::sign_in(&t.base, "dr.ada").await;
    let cara = Staff::sign_in(&t.base, "ph.cara").await;
    let gail = Staff::sign_in(&t.base, "reg.gail").await;
    let ivy = Staff::sign_in(&t.base, "ins.ivy").await;
    let started = rxchain::clock::now().0;

    // 1. Issue: nobody has read anything yet.
    let issued = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Log", 14),
        )
        .await;
    let id = issued["id"].as_str().unwrap().to_string();
    let payload = issued["payload"].as_str().unwrap().to_string();
    assert!(reads(&t.base, &payload).await["reads"]
        .as_array()
        .unwrap()
        .is_empty());

    // 2. The patient opens the page; the doctor lists her prescriptions.
    let opened = post_anon(&t.base, "/v1/patient/open", &json!({"payload": payload})).await;
    assert_eq!(opened.0, StatusCode::OK, "{}", opened.2);
    let (s, _, list) = ada.get("/v1/staff/prescriptions").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["patient_name"] == "Synthetic Patient Log"));

    // 3. The patient picks Central Pharmacy; its list opens the hand-over.
    let assigned = post_anon(
        &t.base,
        "/v1/patient/assign",
        &json!({"payload": payload, "mode": "pickup", "pharmacy": "pharm-central"}),
    )
    .await;
    assert_eq!(assigned.0, StatusCode::OK, "{}", assigned.2);
    let (s, _, plist) = cara.get("/v1/staff/pharmacy/prescriptions").await;
    assert_eq!(s, StatusCode::OK, "{plist}");
    assert!(plist
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == id.as_str() && r["payload"].is_string()));

    // 4. The regulator exports it as FHIR with the patient's identity.
    let (s, _, mr) = send(
        reqwest::Client::new()
            .get(format!("{}/fhir/r4/MedicationRequest/{id}-1", t.base))
            .header(COOKIE, &gail.cookie),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{mr}");
    assert!(
        mr.to_string().contains("Synthetic Patient Log"),
        "the export names the patient: {mr}"
    );

    // 5. The patient shares with the insurer, whose reviewer reads it.
    let shared = post_anon(
        &t.base,
        "/v1/patient/share",
        &json!({"payload": payload, "org": "ins-civic", "days": 7}),
    )
    .await;
    assert_eq!(shared.0, StatusCode::OK, "{}", shared.2);
    let (s, _, read) = ivy.get(&format!("/v1/shared/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{read}");

    // 6. The patient sees every read, in order, with the right names.
    let v = reads(&t.base, &payload).await;
    let expected = [
        ("the patient".to_string(), "", "patient_open"),
        ("Dr Ada Example".to_string(), "hosp-north", "staff_list"),
        (
            "Cara Placeholder".to_string(),
            "pharm-central",
            "pharmacy_handover",
        ),
        ("Gail Inspector".to_string(), "reg-health", "fhir_export"),
        ("Ivy Reviewer".to_string(), "ins-civic", "shared_read"),
    ];
    let got = who(&v);
    for e in &expected {
        assert!(got.contains(&row(e)), "{e:?} is logged: {v}");
    }
    // The order of first appearance follows the order of the reads.
    let firsts: Vec<usize> = expected
        .iter()
        .map(|e| got.iter().position(|g| g == &row(e)).unwrap())
        .collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{firsts:?}: {v}");
    for r in v["reads"].as_array().unwrap() {
        let at = r["at"].as_u64().unwrap();
        assert!(at >= started && at <= rxchain::clock::now().0, "{r}");
        assert_eq!(r["prescription"], id.as_str());
        assert_eq!(r["node"], 1);
    }
    let ivy_read = v["reads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["purpose"] == "shared_read")
        .unwrap();
    assert_eq!(ivy_read["username"], "ins.ivy");
    assert_eq!(ivy_read["role"], "claims_reviewer");
    assert_eq!(ivy_read["org_name"], "Civic Health Insurance (demo)");
    // Reading the log itself is not a read of private content.
    let again = reads(&t.base, &payload).await;
    assert_eq!(again["reads"], v["reads"]);

    // 7. One staff member opening many patients' records stands out: the
    //    doctor's list opens four names, the pharmacist one.
    for n in 0..3 {
        ada.ok(
            "/v1/staff/prescriptions",
            &issue_body(&format!("Synthetic Patient Bulk {n}"), 14),
        )
        .await;
    }
    let (s, _, _) = ada.get("/v1/staff/prescriptions").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, by_ada) = gail.get("/v1/regulator/access?staff=dr.ada").await;
    assert_eq!(s, StatusCode::OK, "{by_ada}");
    assert_eq!(by_ada["prescriptions"], 4, "{by_ada}");
    assert!(by_ada["reads"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["username"] == "dr.ada" && r["purpose"] == "staff_list"));
    let (s, _, vol) = gail
        .get("/v1/regulator/access/volumes?hours=1&threshold=4")
        .await;
    assert_eq!(s, StatusCode::OK, "{vol}");
    let rows = vol["rows"].as_array().unwrap();
    let of = |u: &str| rows.iter().find(|r| r["username"] == u).unwrap();
    assert_eq!(of("dr.ada")["flagged"], true, "{vol}");
    assert_eq!(of("dr.ada")["prescriptions"], 4);
    assert_eq!(of("ph.cara")["flagged"], false);
    assert_eq!(of("ph.cara")["prescriptions"], 1);
    assert_eq!(rows[0]["username"], "dr.ada", "most prescriptions first");
    assert_error(
        &gail.get("/v1/regulator/access/volumes?threshold=0").await,
        400,
        "bad_threshold",
    );
    // Only a regulator's officer queries the log.
    assert_error(
        &cara.get("/v1/regulator/access?staff=dr.ada").await,
        403,
        "wrong_role",
    );

    // 8. The node anchors its log's head on the chain, and the log verifies
    //    against it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let check = loop {
        let (s, _, c) = gail.get("/v1/regulator/access/verify").await;
        assert_eq!(s, StatusCode::OK, "{c}");
        if c["anchored_seq"] == c["records"] && c["records"].as_u64().unwrap() > 0 {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the log was not anchored: {c}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(check["records"].as_u64().unwrap() >= 9, "{check}");
    let anchors = t
        .node
        .chain
        .state_record::<rxchain_contracts::state::AnchorRecord>(
            &rxchain_contracts::state::anchor_key(1),
        )
        .unwrap()
        .expect("the anchor is chain state");
    assert_eq!(Some(anchors.seq), check["anchored_seq"].as_u64());
    assert_eq!(
        reads(&t.base, &payload).await["anchored_seq"],
        check["anchored_seq"]
    );
}
