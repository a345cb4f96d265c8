//! The FHIR R4 endpoint against a real demo node: a prescription through
//! issue, partial and final dispense and home delivery exports at every
//! step with statuses that follow the lifecycle; who sees the patient; the
//! regulator's paged search; Provenance with the block signature; errors
//! as OperationOutcome; and the import of a hospital system's
//! MedicationRequest, its round trip, its refusals and its retries.
//!
//! Every resource the node emits here is validated by an independent
//! validator, `scripts/fhir/validate.py` (Python `fhir.resources`, installed
//! by `scripts/install-test-deps.sh`). Without it the tests fail, unless
//! `RXCHAIN_SKIP_FHIR_VALIDATE=1` opts out of that check explicitly.

mod common;
mod staff_client;

use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use staff_client::{issue_body, post_anon, Staff};

const SKIP_VAR: &str = "RXCHAIN_SKIP_FHIR_VALIDATE";

/// Every FHIR answer a test saw, for the validator.
#[derive(Default)]
struct Seen(Vec<Value>);

impl Seen {
    fn keep(&mut self, v: &Value) {
        self.0.push(v.clone());
    }

    /// Runs the independent validator over everything kept.
    fn validate(&self, test: &str) {
        if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED the FHIR validator in {test}: {SKIP_VAR}=1 is set");
            return;
        }
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("fhir-{test}-{}.json", std::process::id()));
        std::fs::write(&path, serde_json::to_vec(&self.0).unwrap()).unwrap();
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fhir/validate.py");
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg(&path)
            .output();
        let _ = std::fs::remove_file(&path);
        let out = match out {
            Ok(o) => o,
            Err(e) => unavailable(&format!("python3 does not start: {e}")),
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(2) {
            unavailable(&stderr);
        }
        assert!(
            out.status.success(),
            "the FHIR validator refused resources:\n{stdout}\n{stderr}"
        );
        let n = self.0.len();
        assert!(
            n > 5 && stdout.contains(&format!("{n} of {n} resources valid")),
            "{stdout}"
        );
    }
}

fn unavailable(why: &str) -> ! {
    panic!(
        "the FHIR validator cannot run: {why}\n\
         install it with scripts/install-test-deps.sh \
         (pip install -r scripts/fhir/requirements.txt), \
         or opt out explicitly with {SKIP_VAR}=1"
    )
}

/// A GET, as a staff member or anyone; the answer must be FHIR JSON.
async fn get(base: &str, who: Option<&Staff>, path: &str) -> (StatusCode, Value) {
    let mut r = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(s) = who {
        r = r.header(COOKIE, &s.cookie);
    }
    fhir_answer(r).await
}

async fn fhir_answer(r: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = r.send().await.expect("the node answers");
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp.text().await.unwrap();
    assert_eq!(ct, "application/fhir+json", "{status}: {text}");
    (status, serde_json::from_str(&text).expect("JSON"))
}

/// A FHIR POST as a doctor, with extra headers.
async fn post(
    s: &Staff,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut r = reqwest::Client::new()
        .post(format!("{}{path}", s.base))
        .header(COOKIE, &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .header("content-type", "application/fhir+json")
        .body(serde_json::to_vec(body).unwrap());
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    fhir_answer(r).await
}

/// Asserts an OperationOutcome with our code and, when given, the element.
#[track_caller]
fn assert_outcome(got: &(StatusCode, Value), status: u16, code: &str, expression: Option<&str>) {
    let o = &got.1;
    assert_eq!(got.0.as_u16(), status, "{o}");
    assert_eq!(o["resourceType"], "OperationOutcome", "{o}");
    let issue = &o["issue"][0];
    assert_eq!(issue["severity"], "error", "{o}");
    assert_eq!(issue["details"]["coding"][0]["system"], "urn:rxchain:error");
    assert_eq!(issue["details"]["coding"][0]["code"], code, "{o}");
    assert!(issue["details"]["text"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    if let Some(e) = expression {
        assert_eq!(issue["expression"][0], e, "{o}");
    }
}

fn contained<'a>(r: &'a Value, kind: &str) -> Option<&'a Value> {
    r["contained"]
        .as_array()?
        .iter()
        .find(|c| c["resourceType"] == kind)
}

/// Asserts a resource names no patient: an opaque subject, no contained
/// Patient, no dosage or notes, and neither the name nor the identifier
/// anywhere in its text.
#[track_caller]
fn assert_anonymous(r: &Value, name: &str, identifier: &str) {
    let text = r.to_string();
    assert!(!text.contains(name) && !text.contains(identifier), "{r}");
    for res in resources(r) {
        assert!(contained(res, "Patient").is_none(), "{res}");
        if let Some(subject) = res.get("subject") {
            assert_eq!(
                subject["identifier"]["system"], "urn:rxchain:patient-ref",
                "{res}"
            );
            assert!(subject.get("reference").is_none(), "{res}");
        }
        assert!(res.get("dosageInstruction").is_none(), "{res}");
    }
}

/// The resources of an answer: itself, or a bundle's entries.
fn resources(v: &Value) -> Vec<&Value> {
    match v["resourceType"].as_str() {
        Some("Bundle") => v["entry"]
            .as_array()
            .map(|e| e.iter().map(|x| &x["resource"]).collect())
            .unwrap_or_default(),
        _ => vec![v],
    }
}

fn statuses(bundle: &Value) -> Vec<String> {
    resources(bundle)
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prescription_exports_as_valid_fhir_at_every_step_and_only_its_hospital_and_the_regulator_see_the_patient(
) {
    let t = staff_client::start().await;
    let base = t.base.clone();
    let ada = Staff::sign_in(&base, "dr.ada").await;
    let cara = Staff::sign_in(&base, "ph.cara").await;
    let dan = Staff::sign_in(&base, "ph.dan").await;
    let finn = Staff::sign_in(&base, "courier.finn").await;
    let gail = Staff::sign_in(&base, "reg.gail").await;
    let mut seen = Seen::default();
    let (name, ident) = ("Synthetic Patient Fhir", "SYNTH-FLOW-0001");

    // 0. The CapabilityStatement lists what is served.
    let (s, cap) = get(&base, None, "/fhir/r4/metadata").await;
    assert_eq!(s, StatusCode::OK, "{cap}");
    assert_eq!(
        (cap["resourceType"].as_str(), cap["fhirVersion"].as_str()),
        (Some("CapabilityStatement"), Some("4.0.1"))
    );
    let types: Vec<&str> = cap["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["MedicationRequest", "MedicationDispense", "Provenance"]
    );
    seen.keep(&cap);

    // 1. Issued: two items, so two MedicationRequests, both active.
    let issued = ada
        .ok("/v1/staff/prescriptions", &issue_body(name, 14))
        .await;
    let id = issued["id"].as_str().unwrap().to_string();
    let payload = issued["payload"].as_str().unwrap().to_string();
    let (s, mr) = get(&base, None, &format!("/fhir/r4/MedicationRequest/{id}-1")).await;
    assert_eq!(s, StatusCode::OK, "{mr}");
    assert_eq!(
        (mr["status"].as_str(), mr["intent"].as_str()),
        (Some("active"), Some("order"))
    );
    let coding = &mr["medicationCodeableConcept"]["coding"][0];
    assert_eq!(
        (
            coding["system"].as_str(),
            coding["code"].as_str(),
            coding["display"].as_str()
        ),
        (
            Some("http://www.whocc.no/atc"),
            Some("J01CA04"),
            Some("Amoxicillin")
        )
    );
    assert_eq!(
        mr["dispenseRequest"]["quantity"],
        json!({"value": 20, "unit": "capsules"})
    );
    assert_eq!(mr["dispenseRequest"]["numberOfRepeatsAllowed"], 0);
    assert!(mr["dispenseRequest"]["validityPeriod"]["end"].is_string());
    assert!(
        mr["dispenseRequest"].get("performer").is_none(),
        "no pharmacy yet: {mr}"
    );
    assert_eq!(mr["groupIdentifier"]["value"], id.as_str());
    let requester = contained(&mr, "PractitionerRole").unwrap();
    assert_eq!(requester["practitioner"]["display"], "Dr Ada Example");
    assert_eq!(
        requester["organization"]["identifier"]["value"],
        "hosp-north"
    );
    assert_anonymous(&mr, name, ident);
    seen.keep(&mr);
    let (_, mr2) = get(&base, None, &format!("/fhir/r4/MedicationRequest/{id}-2")).await;
    assert_eq!(
        mr2["medicationCodeableConcept"]["coding"][0]["code"],
        "N02AX02"
    );
    seen.keep(&mr2);
    // A bare id of a two-item prescription names no single resource.
    assert_outcome(
        &get(&base, None, &format!("/fhir/r4/MedicationRequest/{id}")).await,
        404,
        "several_items",
        None,
    );
    assert_outcome(
        &get(&base, None, &format!("/fhir/r4/MedicationRequest/{id}-3")).await,
        404,
        "unknown_item",
        None,
    );
    assert_outcome(
        &get(&base, None, "/fhir/r4/MedicationRequest/nothex").await,
        400,
        "bad_resource_id",
        None,
    );
    assert_outcome(
        &get(
            &base,
            None,
            &format!("/fhir/r4/MedicationRequest/{}", "ab".repeat(16)),
        )
        .await,
        404,
        "unknown_prescription",
        None,
    );

    // 2. The issuing hospital and the regulator see the patient and the sealed text.
    for who in [&ada, &gail] {
        let (_, mr) = get(
            &base,
            Some(who),
            &format!("/fhir/r4/MedicationRequest/{id}-1"),
        )
        .await;
        let p = contained(&mr, "Patient").unwrap_or_else(|| panic!("{mr}"));
        assert_eq!(p["name"][0]["text"], name);
        assert_eq!(p["identifier"][0]["value"], ident);
        assert_eq!(p["birthDate"], "1980-05-17");
        assert_eq!(mr["subject"]["reference"], "#patient");
        assert_eq!(
            mr["dosageInstruction"][0]["text"],
            "one capsule three times a day for a week"
        );
        assert_eq!(mr["note"][0]["text"], "synthetic test notes");
        seen.keep(&mr);
    }
    // Other pharmacies do not, and the opaque reference is the same for all of them.
    let (_, by_cara) = get(
        &base,
        Some(&cara),
        &format!("/fhir/r4/MedicationRequest/{id}-1"),
    )
    .await;
    assert_anonymous(&by_cara, name, ident);
    assert_eq!(by_cara["subject"], mr["subject"]);

    // 3. Home delivery at Harbour, claimed, partly dispensed: the request is
    // active with its performer, the fill is in preparation.
    let (s, _, r) = post_anon(
        &base,
        "/v1/patient/assign",
        &json!({"payload": payload, "mode": "delivery", "pharmacy": "pharm-harbour", "address": "1 Synthetic Road"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    dan.ok("/v1/staff/claim", &json!({"payload": payload}))
        .await;
    dan.ok("/v1/staff/dispense", &json!({"id": id, "lines": [{"item": 0, "quantity": 5, "batch": "LOT-A1"}, {"item": 1, "quantity": 4, "batch": "LOT-T1"}], "complete": false})).await;
    let (_, mr) = get(
        &base,
        Some(&dan),
        &format!("/fhir/r4/MedicationRequest/{id}-1"),
    )
    .await;
    assert_eq!(mr["status"], "active");
    assert_eq!(
        mr["dispenseRequest"]["performer"]["identifier"]["value"],
        "pharm-harbour"
    );
    assert_anonymous(&mr, name, ident);
    seen.keep(&mr);
    let q = format!("/fhir/r4/MedicationDispense?prescription={id}");
    let (s, md) = get(&base, Some(&dan), &q).await;
    assert_eq!(s, StatusCode::OK, "{md}");
    assert_eq!(
        (md["type"].as_str(), md["total"].as_u64()),
        (Some("searchset"), Some(2))
    );
    assert_eq!(statuses(&md), ["preparation", "preparation"]);
    let first = resources(&md)[0];
    assert_eq!(first["quantity"], json!({"value": 5, "unit": "capsules"}));
    assert_eq!(
        contained(first, "Medication").unwrap()["batch"]["lotNumber"],
        "LOT-A1"
    );
    assert_eq!(
        first["authorizingPrescription"][0]["reference"],
        format!("MedicationRequest/{id}-1")
    );
    assert_eq!(
        first["performer"][0]["actor"]["identifier"]["value"],
        "pharm-harbour"
    );
    assert!(first.get("whenHandedOver").is_none(), "{first}");
    assert_anonymous(&md, name, ident);
    seen.keep(&md);

    // 4. The rest dispensed: completed; then packed, carried and delivered.
    dan.ok("/v1/staff/dispense", &json!({"id": id, "lines": [{"item": 0, "quantity": 15, "batch": "LOT-A2"}, {"item": 1, "quantity": 6, "batch": "LOT-T2"}], "complete": false})).await;
    let (_, mr) = get(&base, None, &format!("/fhir/r4/MedicationRequest/{id}-1")).await;
    assert_eq!(mr["status"], "completed");
    seen.keep(&mr);
    dan.ok("/v1/staff/delivery", &json!({"id": id, "status": "packed"}))
        .await;
    dan.ok(
        "/v1/staff/hand-over",
        &json!({"id": id, "carrier": "logi-swift"}),
    )
    .await;
    finn.ok(
        "/v1/staff/delivery",
        &json!({"id": id, "status": "dispatched"}),
    )
    .await;
    let (_, md) = get(&base, None, &q).await;
    assert_eq!(
        statuses(&md),
        ["preparation", "preparation", "in-progress", "in-progress"],
        "{md}"
    );
    seen.keep(&md);
    for step in [
        json!({"id": id, "status": "out_for_delivery"}),
        json!({"id": id, "status": "delivered", "hand_over": "to_patient"}),
    ] {
        finn.ok("/v1/staff/delivery", &step).await;
    }
    let (_, md) = get(&base, Some(&gail), &q).await;
    assert_eq!(statuses(&md)[2..], ["completed", "completed"], "{md}");
    let last = resources(&md)[3];
    assert!(last["whenHandedOver"].is_string(), "{last}");
    assert_eq!(
        contained(last, "Patient").unwrap()["name"][0]["text"],
        name,
        "the regulator sees the patient"
    );
    seen.keep(&md);
    let (_, md_cara) = get(&base, Some(&cara), &q).await;
    assert_anonymous(&md_cara, name, ident);

    // 5. Provenance: every applied transaction, with its block and signatures.
    let (s, prov) = get(
        &base,
        None,
        &format!("/fhir/r4/Provenance?target=MedicationRequest/{id}-1"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{prov}");
    let all = resources(&prov);
    let kinds: Vec<&str> = all
        .iter()
        .map(|p| p["activity"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        &kinds[..5],
        ["issue", "assign", "claim", "dispense", "dispense"],
        "{kinds:?}"
    );
    for p in &all {
        assert_eq!(p["id"].as_str().unwrap().len(), 64);
        assert!(
            p["entity"][1]["what"]["identifier"]["value"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                >= 1
        );
        assert!(
            p["signature"][0]["data"]
                .as_str()
                .is_some_and(|d| d.len() >= 86),
            "{p}"
        );
        assert!(p["target"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["reference"] == format!("MedicationRequest/{id}-1")));
    }
    assert_eq!(all[0]["agent"][0]["who"]["display"], "Dr Ada Example");
    assert_eq!(
        all[1]["agent"][0]["who"]["type"], "Patient",
        "the patient's access key signed the assignment"
    );
    assert_anonymous(&prov, name, ident);
    assert_eq!(
        prov["entry"][0]["fullUrl"],
        format!(
            "{base}/fhir/r4/Provenance/{}",
            all[0]["id"].as_str().unwrap()
        )
    );
    assert!(all[3]["target"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["reference"] == format!("MedicationDispense/{id}-f1-1")));
    seen.keep(&prov);

    // 6. The regulator's search by pharmacy and period, paged.
    let today = rxchain::query::day::Day::today().to_string();
    let search = format!("/fhir/r4/MedicationDispense?performer=pharm-harbour&whenhandedover=ge{today}&whenhandedover=le{today}&_count=1");
    let (s, page1) = get(&base, Some(&gail), &search).await;
    assert_eq!(s, StatusCode::OK, "{page1}");
    assert_eq!(page1["total"], 2, "the two delivered lines: {page1}");
    assert_eq!(page1["entry"].as_array().unwrap().len(), 1);
    let next = page1["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .expect("a next page")["url"]
        .as_str()
        .unwrap()
        .to_string();
    let next = next
        .strip_prefix(&base)
        .unwrap_or_else(|| panic!("an absolute link on this node: {next}"));
    let (_, page2) = get(&base, Some(&gail), next).await;
    assert_eq!(page2["entry"].as_array().unwrap().len(), 1);
    assert_ne!(page2["entry"][0]["fullUrl"], page1["entry"][0]["fullUrl"]);
    assert!(page2["link"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["relation"] != "next"));
    seen.keep(&page1);
    seen.keep(&page2);
    let (_, other) = get(&base, Some(&gail), &format!("/fhir/r4/MedicationDispense?performer=pharm-central&whenhandedover=ge{today}&whenhandedover=le{today}")).await;
    assert_eq!(other["total"], 0, "{other}");
    seen.keep(&other);
    let refused = get(&base, Some(&cara), &search).await;
    assert_outcome(&refused, 403, "wrong_role", None);
    seen.keep(&refused.1);
    assert_outcome(&get(&base, None, &search).await, 401, "no_session", None);
    assert_outcome(
        &get(
            &base,
            Some(&gail),
            "/fhir/r4/MedicationDispense?performer=pharm-harbour",
        )
        .await,
        400,
        "missing_search_parameter",
        None,
    );
    assert_outcome(
        &get(&base, Some(&gail), "/fhir/r4/MedicationDispense?colour=red").await,
        400,
        "unsupported_search_parameter",
        None,
    );

    // 6b. A delivery that fails, then comes back: on-hold, then stopped,
    // never handed over, so the regulator's period search still finds
    // only the two delivered lines.
    let failed = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Not Home", 14),
        )
        .await;
    let fid = failed["id"].as_str().unwrap().to_string();
    let fpayload = failed["payload"].as_str().unwrap().to_string();
    let (s, _, r) = post_anon(
        &base,
        "/v1/patient/assign",
        &json!({"payload": fpayload, "mode": "delivery", "pharmacy": "pharm-harbour", "address": "2 Synthetic Road"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    dan.ok("/v1/staff/claim", &json!({"payload": fpayload}))
        .await;
    dan.ok("/v1/staff/dispense", &json!({"id": fid, "lines": [{"item": 0, "quantity": 20, "batch": "LOT-F1"}, {"item": 1, "quantity": 10, "batch": "LOT-F2"}], "complete": true})).await;
    dan.ok(
        "/v1/staff/delivery",
        &json!({"id": fid, "status": "packed"}),
    )
    .await;
    dan.ok(
        "/v1/staff/hand-over",
        &json!({"id": fid, "carrier": "logi-swift"}),
    )
    .await;
    let fq = format!("/fhir/r4/MedicationDispense?prescription={fid}");
    for (status, fhir) in [
        ("dispatched", "in-progress"),
        ("failed", "on-hold"),
        ("returned", "stopped"),
    ] {
        let step = match status {
            "dispatched" => json!({"id": fid, "status": status}),
            _ => json!({"id": fid, "status": status, "problem": "no_one_home"}),
        };
        finn.ok("/v1/staff/delivery", &step).await;
        let (s, md) = get(&base, Some(&gail), &fq).await;
        assert_eq!(s, StatusCode::OK, "{md}");
        assert_eq!(statuses(&md), [fhir, fhir], "after {status}: {md}");
        assert!(
            resources(&md)
                .iter()
                .all(|d| d.get("whenHandedOver").is_none()),
            "after {status}, nothing was handed over: {md}"
        );
        seen.keep(&md);
    }
    let (_, again) = get(&base, Some(&gail), &search).await;
    assert_eq!(
        again["total"], 2,
        "a returned delivery is no hand-over: {again}"
    );

    // 7. A cancelled prescription is cancelled in FHIR too.
    let other = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Cancel", 14),
        )
        .await;
    let oid = other["id"].as_str().unwrap();
    ada.ok(&format!("/v1/staff/prescriptions/{oid}/cancel"), &json!({}))
        .await;
    let (_, mr) = get(&base, None, &format!("/fhir/r4/MedicationRequest/{oid}-1")).await;
    assert_eq!(mr["status"], "cancelled");
    seen.keep(&mr);

    seen.validate("lifecycle");
}

/// A MedicationRequest as a hospital system writes it (modelled on the
/// shape of an EHR's FHIR R4 export): identifiers, category, encounter and
/// requester we set ourselves, a contained Patient with given and family
/// names, and two codings of which one is ATC.
fn hospital_request() -> Value {
    json!({
        "resourceType": "MedicationRequest",
        "id": "ehr-order-77812",
        "meta": {"lastUpdated": "2026-11-30T09:12:44Z", "profile": ["http://hl7.org/fhir/StructureDefinition/MedicationRequest"]},
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Amoxicillin 500 mg</div>"},
        "identifier": [{"use": "official", "system": "urn:oid:1.2.36.146.595.217.0.1", "value": "ORD-77812"}],
        "status": "active",
        "intent": "order",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "outpatient"}]}],
        "contained": [{
            "resourceType": "Patient",
            "id": "pat1",
            "identifier": [{"use": "usual", "system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": "SYNTH-IMPORT-0042"}],
            "name": [{"use": "official", "family": "Importwell", "given": ["Synthia", "Q"]}],
            "telecom": [{"system": "phone", "value": "+00 000 0000"}, {"system": "email", "value": "synthia@example.invalid"}],
            "gender": "female",
            "birthDate": "1975-03-09"
        }],
        "medicationCodeableConcept": {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "27658006", "display": "Amoxicillin"},
                {"system": "http://www.whocc.no/atc", "code": "J01CA04", "display": "amoxicillin"}
            ],
            "text": "Amoxicillin 500 mg capsule"
        },
        "subject": {"reference": "#pat1", "display": "Synthia Q Importwell"},
        "encounter": {"reference": "Encounter/enc-5521"},
        "authoredOn": "2026-11-30T09:12:00Z",
        "requester": {"reference": "Practitioner/prac-311", "display": "Dr Ada Example"},
        "note": [{"text": "synthetic imported note"}],
        "dosageInstruction": [{"sequence": 1, "text": "one capsule three times a day for seven days"}],
        "dispenseRequest": {
            "validityPeriod": {"start": "2026-11-30", "end": "2027-01-15T00:00:00Z"},
            "numberOfRepeatsAllowed": 1,
            "quantity": {"value": 21, "unit": "capsules", "system": "http://unitsofmeasure.org", "code": "{capsule}"}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_systems_medication_request_imports_round_trips_and_bad_ones_name_the_element() {
    let t = staff_client::start().await;
    let base = t.base.clone();
    let ada = Staff::sign_in(&base, "dr.ada").await;
    let cara = Staff::sign_in(&base, "ph.cara").await;
    let mut seen = Seen::default();
    let path = "/fhir/r4/MedicationRequest";
    let input = hospital_request();
    // The validity must lie ahead of the node's clock and within the chain's limits.
    let mut input = input;
    let start = rxchain::fhir::time::instant(rxchain::clock::now());
    let end = rxchain::fhir::time::instant(rxchain::clock::now().plus_days(20));
    input["dispenseRequest"]["validityPeriod"] = json!({"start": start, "end": end});
    seen.keep(&input);

    // 1. Created, signed as the doctor, with the QR payload and link once.
    let (s, created) = post(
        &ada,
        path,
        &input,
        &[("idempotency-key", "ehr-order-77812")],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    let ext = |url: &str| {
        created["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"] == url)
            .map(|e| e["valueString"].as_str().unwrap().to_string())
            .unwrap()
    };
    let payload = ext("urn:rxchain:fhir:qr-payload");
    assert!(payload.starts_with("RX1:"));
    assert_eq!(
        ext("urn:rxchain:fhir:patient-link"),
        format!("/patient/#{payload}")
    );
    seen.keep(&created);
    // The chain names the doctor as the signer.
    let (_, prov) = get(
        &base,
        None,
        &format!("/fhir/r4/Provenance?target=MedicationRequest/{id}"),
    )
    .await;
    assert_eq!(
        resources(&prov)[0]["agent"][0]["who"]["display"],
        "Dr Ada Example"
    );
    seen.keep(&prov);

    // 2. The export is equivalent in every mapped element.
    let (s, back) = get(&base, Some(&ada), &format!("{path}/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{back}");
    seen.keep(&back);
    assert_eq!(
        (back["status"].as_str(), back["intent"].as_str()),
        (Some("active"), Some("order"))
    );
    assert_eq!(
        back["medicationCodeableConcept"]["coding"][0]["code"],
        "J01CA04"
    );
    assert_eq!(
        back["medicationCodeableConcept"]["coding"][0]["system"],
        "http://www.whocc.no/atc"
    );
    assert_eq!(back["dispenseRequest"]["quantity"]["value"], 21);
    assert_eq!(back["dispenseRequest"]["quantity"]["unit"], "capsules");
    assert_eq!(back["dispenseRequest"]["numberOfRepeatsAllowed"], 1);
    let instant = |v: &Value| rxchain::fhir::time::parse(v.as_str().unwrap()).unwrap();
    assert_eq!(
        instant(&back["dispenseRequest"]["validityPeriod"]["end"]),
        instant(&input["dispenseRequest"]["validityPeriod"]["end"])
    );
    assert_eq!(
        back["dosageInstruction"][0]["text"],
        input["dosageInstruction"][0]["text"]
    );
    assert_eq!(back["note"][0]["text"], "synthetic imported note");
    let p = contained(&back, "Patient").unwrap();
    assert_eq!(p["name"][0]["text"], "Synthia Q Importwell");
    assert_eq!(p["identifier"][0]["value"], "SYNTH-IMPORT-0042");
    assert_eq!(
        p["identifier"][0]["system"], "urn:oid:2.16.840.1.113883.2.4.6.3",
        "the patient identifier keeps its system"
    );
    // The hospital's own order number comes back beside our item id.
    let idents = back["identifier"].as_array().unwrap();
    assert!(
        idents
            .iter()
            .any(|i| i["system"] == "urn:oid:1.2.36.146.595.217.0.1" && i["value"] == "ORD-77812"),
        "{idents:?}"
    );
    assert_eq!(p["birthDate"], "1975-03-09");
    assert_eq!(p["telecom"][0]["value"], "synthia@example.invalid");
    assert_eq!(
        contained(&back, "PractitionerRole").unwrap()["organization"]["identifier"]["value"],
        "hosp-north"
    );
    // Other pharmacies get no identity.
    let (_, by_cara) = get(&base, Some(&cara), &format!("{path}/{id}")).await;
    assert_anonymous(&by_cara, "Importwell", "SYNTH-IMPORT-0042");

    // 3. Retries create nothing new: the same Idempotency-Key, or the same If-None-Exist.
    let (s, again) = post(
        &ada,
        path,
        &input,
        &[("idempotency-key", "ehr-order-77812")],
    )
    .await;
    assert_eq!(
        (s, again["id"].as_str()),
        (StatusCode::CREATED, Some(id.as_str())),
        "{again}"
    );
    // If-None-Exist is a search for the order: the order posted first
    // (ORD-77812) exists, so it answers that prescription, 200, without its
    // code (this request did not create it).
    let (s, found) = post(
        &ada,
        path,
        &input,
        &[(
            "if-none-exist",
            "identifier=urn:oid:1.2.36.146.595.217.0.1|ORD-77812",
        )],
    )
    .await;
    assert_eq!(
        (s, found["id"].as_str()),
        (StatusCode::OK, Some(id.as_str())),
        "{found}"
    );
    assert!(found.get("extension").is_none(), "{found}");
    // A new order creates (201); the same condition again answers it (200),
    // with its code for the same doctor's same request, and even with
    // another body nothing new is created.
    let mut other = input.clone();
    other["identifier"][0]["value"] = json!("ORD-77813");
    let cond = [(
        "if-none-exist",
        "identifier=urn:oid:1.2.36.146.595.217.0.1%7CORD-77813",
    )];
    let (s, c1) = post(&ada, path, &other, &cond).await;
    assert_eq!(s, StatusCode::CREATED, "{c1}");
    let (s, c2) = post(&ada, path, &other, &cond).await;
    assert_eq!((s, &c1["id"]), (StatusCode::OK, &c2["id"]), "{c2}");
    assert_eq!(
        c2["extension"], c1["extension"],
        "the creator's retry gets its code back"
    );
    let mut changed = other.clone();
    changed["note"] = json!([{"text": "a second note, same order"}]);
    let (s, c3) = post(&ada, path, &changed, &cond).await;
    assert_eq!((s, &c3["id"]), (StatusCode::OK, &c1["id"]), "{c3}");
    assert!(c3.get("extension").is_none(), "{c3}");
    assert_ne!(c1["id"].as_str(), Some(id.as_str()));
    // Conditions we do not evaluate are refused, never ignored.
    for (cond, code) in [
        ("patient=Patient/1", "unsupported_search_parameter"),
        (
            "identifier=ORD-1&status=active",
            "unsupported_search_parameter",
        ),
        ("identifier=ORD-1", "bad_query"),
    ] {
        let got = post(&ada, path, &other, &[("if-none-exist", cond)]).await;
        assert_outcome(&got, 400, code, None);
    }
    let (_, _, mine) = ada.get("/v1/staff/prescriptions").await;
    let imported = mine
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["patient_name"] == "Synthia Q Importwell")
        .count();
    assert_eq!(imported, 2, "two prescriptions, however many posts: {mine}");

    // Paths and methods we do not serve answer an OperationOutcome too.
    let got = get(&base, Some(&ada), "/fhir/r4/Patient/1").await;
    assert_outcome(&got, 404, "not_supported", None);
    let got = get(&base, None, "/fhir/r4/MedicationRequest").await;
    assert_outcome(&got, 405, "method_not_allowed", None);

    // 3b. A hospital system without a browser: a staff admin issues an API
    // token acting as Dr Ada; it creates with `Authorization: Bearer` alone
    // (no cookie, no CSRF) until it is revoked.
    let admin = Staff::sign_in(&base, "alex.admin").await;
    let issued = admin
        .ok(
            "/v1/admin/tokens",
            &json!({"username": "dr.ada", "label": "Synthetic EHR", "days": 30}),
        )
        .await;
    let token = issued["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("rxt_") && token.len() == 68, "{issued}");
    let (s, _, listed) = admin.get("/v1/admin/tokens").await;
    assert_eq!(s, StatusCode::OK, "{listed}");
    assert_eq!(listed[0]["id"], issued["id"]);
    assert_eq!(listed[0]["username"], "dr.ada");
    assert!(
        !listed.to_string().contains(&token),
        "a list never shows the token"
    );
    let with_token = |t: &str, body: &Value| {
        reqwest::Client::new()
            .post(format!("{base}{path}"))
            .header("authorization", format!("Bearer {t}"))
            .header("content-type", "application/fhir+json")
            .body(serde_json::to_vec(body).unwrap())
    };
    let mut by_system = input.clone();
    by_system["identifier"][0]["value"] = json!("ORD-90001");
    let (s, made) = fhir_answer(with_token(&token, &by_system)).await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    let (_, back) = get(
        &base,
        Some(&ada),
        &format!("{path}/{}", made["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        contained(&back, "PractitionerRole").unwrap()["practitioner"]["display"],
        "Dr Ada Example",
        "the token signs as the doctor it acts for: {back}"
    );
    let mut forged = token.clone();
    forged.replace_range(10..12, if &token[10..12] == "00" { "11" } else { "00" });
    assert_outcome(
        &fhir_answer(with_token(&forged, &by_system)).await,
        401,
        "bad_token",
        None,
    );
    // Only staff admins manage tokens, for enabled practitioners of their own
    // organisation.
    let (s, _, r) = ada
        .post(
            "/v1/admin/tokens",
            &json!({"username": "dr.ada", "label": "mine"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), r["code"].as_str()),
        (403, Some("wrong_role")),
        "{r}"
    );
    for (body, status, code) in [
        (
            json!({"username": "alex.admin", "label": "x"}),
            400,
            "invalid_token_request",
        ),
        (
            json!({"username": "dr.ada", "label": ""}),
            400,
            "invalid_token_request",
        ),
        (
            json!({"username": "dr.ada", "label": "x", "days": 400}),
            400,
            "invalid_token_request",
        ),
        (
            json!({"username": "dr.ben", "label": "x"}),
            403,
            "wrong_org",
        ),
        (
            json!({"username": "nobody", "label": "x"}),
            404,
            "unknown_account",
        ),
    ] {
        let (s, _, r) = admin.post("/v1/admin/tokens", &body).await;
        assert_eq!(
            (s.as_u16(), r["code"].as_str()),
            (status, Some(code)),
            "{body}: {r}"
        );
    }
    let revoked = admin
        .ok(
            &format!("/v1/admin/tokens/{}/revoke", issued["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(revoked["revoked"], true);
    by_system["identifier"][0]["value"] = json!("ORD-90002");
    assert_outcome(
        &fhir_answer(with_token(&token, &by_system)).await,
        401,
        "bad_token",
        None,
    );
    let (s, _, r) = admin
        .post(
            &format!("/v1/admin/tokens/{}/revoke", issued["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), r["code"].as_str()),
        (404, Some("unknown_token")),
        "{r}"
    );

    // 4. Refusals name the exact element.
    let bad = |f: &dyn Fn(&mut Value)| {
        let mut v = input.clone();
        f(&mut v);
        v
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            bad(&|v| {
                v["dosageInstruction"][0]["timing"] =
                    json!({"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}})
            }),
            "unrepresentable_dosage",
            "MedicationRequest.dosageInstruction[0].timing",
        ),
        (
            bad(&|v| {
                v["dosageInstruction"][0] = json!({"doseAndRate": [{"doseQuantity": {"value": 1}}]})
            }),
            "unrepresentable_dosage",
            "MedicationRequest.dosageInstruction[0].doseAndRate",
        ),
        (
            bad(&|v| v["medicationCodeableConcept"]["coding"][1]["code"] = json!("Z99ZZ99")),
            "unknown_atc",
            "MedicationRequest.medicationCodeableConcept.coding[1].code",
        ),
        (
            bad(&|v| {
                v["medicationCodeableConcept"]["coding"] =
                    json!([{"system": "http://snomed.info/sct", "code": "27658006"}])
            }),
            "foreign_code_system",
            "MedicationRequest.medicationCodeableConcept.coding[0].system",
        ),
        (
            bad(&|v| {
                v["medicationCodeableConcept"]["coding"][1]["code"] = json!("N02AX02");
                v["dispenseRequest"]
                    .as_object_mut()
                    .unwrap()
                    .remove("validityPeriod");
            }),
            "missing_validity",
            "MedicationRequest.dispenseRequest.validityPeriod.end",
        ),
        (
            bad(&|v| v["dispenseRequest"]["quantity"]["value"] = json!("twenty-one")),
            "invalid_element",
            "MedicationRequest.dispenseRequest.quantity.value",
        ),
        (
            bad(&|v| v["dispenseRequest"]["quantity"]["value"] = json!(2.5)),
            "invalid_element",
            "MedicationRequest.dispenseRequest.quantity.value",
        ),
        (
            bad(&|v| v["substitution"] = json!({"allowedBoolean": false})),
            "unsupported_element",
            "MedicationRequest.substitution",
        ),
        (
            bad(&|v| {
                v["dispenseRequest"]["expectedSupplyDuration"] = json!({"value": 7, "unit": "days"})
            }),
            "unsupported_element",
            "MedicationRequest.dispenseRequest.expectedSupplyDuration",
        ),
        (
            bad(&|v| v["subject"] = json!({"reference": "Patient/123"})),
            "unresolved_reference",
            "MedicationRequest.subject.reference",
        ),
        (
            bad(&|v| v["contained"][0]["address"] = json!([{"city": "Nowhere"}])),
            "unsupported_element",
            "MedicationRequest.contained[0].address",
        ),
        (
            bad(&|v| v["intent"] = json!("proposal")),
            "unsupported_value",
            "MedicationRequest.intent",
        ),
        (
            bad(&|v| {
                v.as_object_mut().unwrap().remove("status");
            }),
            "missing_element",
            "MedicationRequest.status",
        ),
    ];
    for (body, code, expression) in &cases {
        let got = post(&ada, path, body, &[]).await;
        assert_outcome(&got, 422, code, Some(expression));
        seen.keep(&got.1);
    }
    // A pharmacist cannot issue; no session is a 401; both as OperationOutcome.
    let got = post(&cara, path, &input, &[]).await;
    assert_outcome(&got, 403, "wrong_role", None);
    seen.keep(&got.1);
    let anon = fhir_answer(
        reqwest::Client::new()
            .post(format!("{base}{path}"))
            .header("content-type", "application/fhir+json")
            .body(serde_json::to_vec(&input).unwrap()),
    )
    .await;
    assert_outcome(&anon, 401, "no_session", None);

    seen.validate("import");
}
