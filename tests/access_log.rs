//! The access log against a real node: every read of a prescription's
//! private content (the patient page, the doctor's list with names, the
//! pharmacy's hand-over, a FHIR export with identity, an insurer's shared
//! read) is recorded with the right person, organisation and purpose; the
//! patient sees them; the regulator queries by staff member, sees volumes
//! flagged, and the log is anchored on the chain and verifies. Across three
//! nodes over mutual TLS, the patient's "who looked" gathers every node's
//! reads, checked against each node's anchored head, names a node that is
//! down, and flags a node whose answer does not match its anchored log; the
//! node-only route refuses browsers and strangers.

mod common;
mod staff_client;

use std::time::Duration;

use reqwest::header::COOKIE;
use reqwest::StatusCode;
use rxchain::access_log::Proof;
use rxchain::node::RunningNode;
use rxchain::test_support::{
    create_demo_accounts, demo_settings, demo_tls_settings, register_demo_staff_on,
};
use rxchain::tls::{pinned_client_config, TlsIdentity};
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

/// An HTTPS client that trusts the consortium's declared node keys,
/// presenting `identity` as its client certificate if given (a node's);
/// without one it is what a browser is to the node.
fn https(genesis: &rxchain_contracts::Genesis, identity: Option<&TlsIdentity>) -> reqwest::Client {
    let pins = genesis
        .orgs
        .iter()
        .flat_map(|o| o.nodes.iter().map(|n| n.tls))
        .collect();
    reqwest::Client::builder()
        .no_proxy()
        .use_preconfigured_tls(pinned_client_config(pins, identity).unwrap())
        .build()
        .unwrap()
}

/// Signs `username` in at `base` over `http`.
async fn sign_in_over(http: &reqwest::Client, base: &str, username: &str) -> Staff {
    let got = send(
        http.post(format!("{base}/v1/session"))
            .json(&json!({"username": username, "password": rxchain::demo::DEMO_PASSWORD})),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{username} signs in: {}", got.2);
    Staff {
        base: base.to_string(),
        http: http.clone(),
        cookie: staff_client::session_cookie(&got.1).expect("a session cookie"),
        csrf: got.2["csrf"].as_str().unwrap().to_string(),
        session: got.2,
    }
}

/// Polls `f` until it answers `Some`, for at most 30 s.
async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    common::eventually(what, 30, f).await
}

/// Starts demo node `id` of a three-node consortium under `dir` over
/// mutual TLS, joining through `peer` unless it is node 1.
async fn start_tls_member(dir: &std::path::Path, id: u64, peer: Option<&str>) -> RunningNode {
    let mut s = demo_settings(dir, id, "127.0.0.1:0".parse().unwrap(), None);
    s.tls = Some(demo_tls_settings(dir, id));
    if let Some(p) = peer {
        s.bootstrap = false;
        s.peers.insert("1".into(), p.into());
    }
    let node = rxchain::node::start(s).await.expect("node starts");
    let demo = rxchain::demo::Demo::load().unwrap();
    create_demo_accounts(&demo, &node.accounts).await.unwrap();
    node
}

/// The node entry of `node` in a patient's access answer.
fn node_entry(v: &Value, node: u64) -> &Value {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("node {node} is listed: {v}"))
}

/// `(name, org, purpose, node)` of every read.
fn who_where(v: &Value) -> Vec<(String, String, String, u64)> {
    v["reads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["org"].as_str().unwrap_or("").to_string(),
                r["purpose"].as_str().unwrap().to_string(),
                r["node"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn who_looked_gathers_every_nodes_reads_over_mutual_tls_and_names_a_node_that_is_down_or_lies(
) {
    let dir = tempfile::tempdir().unwrap();
    let demo = rxchain::demo::Demo::load().unwrap();
    demo.write_files(dir.path(), &[1, 2, 3]).unwrap();
    let genesis: rxchain_contracts::Genesis =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("genesis.json")).unwrap())
            .unwrap();

    // 1. Three members over mutual TLS; 2 and 3 join through 1.
    let n1 = start_tls_member(dir.path(), 1, None).await;
    rxchain::test_support::wait_for_leader(&n1).await.unwrap();
    let addr1 = n1.addr.to_string();
    let n2 = start_tls_member(dir.path(), 2, Some(&addr1)).await;
    let n3 = start_tls_member(dir.path(), 3, Some(&addr1)).await;
    eventually("nodes 2 and 3 to be voters", || async {
        let m = n1.raft.metrics().borrow().clone();
        let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
        (voters.contains(&2) && voters.contains(&3)).then_some(())
    })
    .await;
    register_demo_staff_on(&demo, &n1).await.unwrap();
    let browser = https(&genesis, None);
    let [base1, base2, base3] = [&n1, &n2, &n3].map(|n| format!("https://{}", n.addr));
    let anon = |base: &str, path: &str, body: Value| {
        send(browser.post(format!("{base}{path}")).json(&body))
    };

    // 2. The doctor issues on node 1; the patient opens the page there and
    //    shares with the insurer.
    let ada = sign_in_over(&browser, &base1, "dr.ada").await;
    let issued = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Everywhere", 14),
        )
        .await;
    let id = issued["id"].as_str().unwrap().to_string();
    let payload = issued["payload"].as_str().unwrap().to_string();
    let opened = anon(&base1, "/v1/patient/open", json!({"payload": payload})).await;
    assert_eq!(opened.0, StatusCode::OK, "{}", opened.2);
    let shared = anon(
        &base1,
        "/v1/patient/share",
        json!({"payload": payload, "org": "ins-civic", "days": 30}),
    )
    .await;
    assert_eq!(shared.0, StatusCode::OK, "{}", shared.2);

    // 3. The insurer's reviewer reads it on node 2; the doctor's list on
    //    node 3 shows the patient's name.
    let ivy = sign_in_over(&browser, &base2, "ins.ivy").await;
    let read = eventually("the grant to reach node 2", || async {
        let got = ivy.get(&format!("/v1/shared/{id}")).await;
        (got.0 == StatusCode::OK).then_some(got.2)
    })
    .await;
    assert_eq!(
        read["content"]["patient"]["name"],
        "Synthetic Patient Everywhere"
    );
    let ada3 = sign_in_over(&browser, &base3, "dr.ada").await;
    eventually("node 3 to list the prescription", || async {
        let (s, _, list) = ada3.get("/v1/staff/prescriptions").await;
        (s == StatusCode::OK
            && list
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == id.as_str()))
        .then_some(())
    })
    .await;

    // 4. The patient asks node 1: every node's reads, with the right names,
    //    by time, each checked against its node's anchored head.
    let v = eventually("every node's reads to be anchored", || async {
        let got = anon(&base1, "/v1/patient/access", json!({"payload": payload})).await;
        assert_eq!(got.0, StatusCode::OK, "{}", got.2);
        let all = [1, 2, 3]
            .iter()
            .all(|n| node_entry(&got.2, *n)["check"] == "anchored");
        all.then_some(got.2)
    })
    .await;
    let got = who_where(&v);
    for e in [
        ("the patient", "", "patient_open", 1),
        ("Ivy Reviewer", "ins-civic", "shared_read", 2),
        ("Dr Ada Example", "hosp-north", "staff_list", 3),
    ] {
        let e = (e.0.to_string(), e.1.to_string(), e.2.to_string(), e.3);
        assert!(got.contains(&e), "{e:?} is shown: {v}");
    }
    let reads = v["reads"].as_array().unwrap();
    assert!(reads.iter().all(|r| r["anchored"] == true), "{v}");
    assert!(reads.iter().all(|r| r["prescription"] == id.as_str()));
    let times: Vec<u64> = reads.iter().map(|r| r["at"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "by time: {v}");
    let ivy_read = reads.iter().find(|r| r["node"] == 2).unwrap();
    assert_eq!(ivy_read["org_name"], "Civic Health Insurance (demo)");
    assert_eq!(ivy_read["username"], "ins.ivy");
    for n in [1, 2, 3] {
        let e = node_entry(&v, n);
        assert_eq!(e["answered"], true, "{v}");
        assert!(e["reads"].as_u64().unwrap() >= 1, "{v}");
    }
    assert_eq!(node_entry(&v, 2)["org_name"], "Central Pharmacy (demo)");
    // No read is counted twice, and node 2 tells the same story.
    let keys: std::collections::BTreeSet<(u64, u64)> = reads
        .iter()
        .map(|r| (r["node"].as_u64().unwrap(), r["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(keys.len(), reads.len());
    let from2 = anon(&base2, "/v1/patient/access", json!({"payload": payload})).await;
    assert_eq!(from2.0, StatusCode::OK, "{}", from2.2);
    assert_eq!(from2.2["reads"], v["reads"]);
    assert_eq!(from2.2["node"], 2);

    // 5. The node-only route is for nodes, never for a browser.
    let path = rxchain::http::NODE_ACCESS;
    let body = serde_json::to_vec(&json!({"prescription": id})).unwrap();
    let p = rxchain::qr::QrPayload::parse(&payload).unwrap();
    let signed = |from: u64, to: u64, p: &rxchain::qr::QrPayload| {
        rxchain::http::node_access_headers(
            genesis.chain_id.as_str(),
            &rxchain::demo::node_key(from),
            from,
            to,
            p,
            &body,
        )
    };
    let with = |http: &reqwest::Client, headers: Vec<(&'static str, String)>| {
        let mut r = http.post(format!("{base2}{path}")).body(body.clone());
        for (k, v) in headers {
            r = r.header(k, v);
        }
        send(r)
    };
    // Without a node certificate, even with node 3's signatures.
    assert_error(
        &with(&browser, signed(3, 2, &p)).await,
        401,
        "peer_certificate_required",
    );
    assert_error(
        &send(
            browser
                .post(format!("{base2}{path}"))
                .json(&json!({"prescription": id})),
        )
        .await,
        401,
        "peer_certificate_required",
    );
    // Node 3's certificate speaking for node 1.
    let node3 = https(
        &genesis,
        Some(&rxchain::demo::tls_key(3).unwrap().identity().unwrap()),
    );
    assert_error(
        &with(&node3, signed(1, 2, &p)).await,
        403,
        "peer_certificate_mismatch",
    );
    // Node 3 for itself, but without the patient's code.
    let mut stranger = p.clone();
    stranger.secret = rxchain_contracts::privacy::AccessSecret::from_bytes([5; 32]);
    assert_error(
        &with(&node3, signed(3, 2, &stranger)).await,
        403,
        "not_patient",
    );
    // A request replayed is refused; a fresh one is answered.
    let once = signed(3, 2, &p);
    let ok = with(&node3, once.clone()).await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.2);
    assert_eq!(ok.2["node"], 2);
    assert!(ok.2["records"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["prescription"] == id.as_str() && r["node"] == 2));
    assert_error(&with(&node3, once).await, 401, "replayed_request");

    // Node 3's own answer, asked as node 2 (kept for step 7).
    let node2 = https(
        &genesis,
        Some(&rxchain::demo::tls_key(2).unwrap().identity().unwrap()),
    );
    let mut r = node2.post(format!("{base3}{path}")).body(body.clone());
    for (k, v) in rxchain::http::node_access_headers(
        genesis.chain_id.as_str(),
        &rxchain::demo::node_key(2),
        2,
        3,
        &p,
        &body,
    ) {
        r = r.header(k, v);
    }
    let honest3 = send(r).await;
    assert_eq!(honest3.0, StatusCode::OK, "{}", honest3.2);
    let honest3: Proof = serde_json::from_value(honest3.2).unwrap();
    assert!(honest3
        .records
        .iter()
        .any(|r| r.reader.name == "Dr Ada Example"));
    let addr3 = n3.addr;

    // 6. Node 3 stops: the patient's page on node 1 says it did not answer
    //    and still shows the reads of nodes 1 and 2.
    n3.stop().await;
    let down = anon(&base1, "/v1/patient/access", json!({"payload": payload})).await;
    assert_eq!(down.0, StatusCode::OK, "{}", down.2);
    let e3 = node_entry(&down.2, 3);
    assert_eq!(e3["answered"], false, "{}", down.2);
    assert_eq!(e3["check"], "no_answer");
    assert_eq!(e3["org_name"], "Health Products Regulator (demo)");
    assert!(e3["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(node_entry(&down.2, 2)["answered"], true);
    let got = who_where(&down.2);
    assert!(
        got.iter().any(|r| r.0 == "Ivy Reviewer" && r.3 == 2),
        "{}",
        down.2
    );
    assert!(
        got.iter().any(|r| r.0 == "the patient" && r.3 == 1),
        "{}",
        down.2
    );
    assert!(got.iter().all(|r| r.3 != 3), "{}", down.2);

    // 7. A dishonest node 3 (its own keys, at its own address) renames the
    //    doctor in its answer, consistently with its digests: its answer
    //    does not link to the head it anchored, and the page says so.
    let mut forged = honest3.clone();
    let i = forged
        .records
        .iter()
        .position(|r| r.reader.name == "Dr Ada Example")
        .unwrap();
    forged.records[i].reader.name = "Someone Else".into();
    let at = (forged.records[i].seq - forged.from) as usize;
    forged.digests[at] = forged.records[i].body_digest();
    let listener = tokio::net::TcpListener::bind(addr3).await.unwrap();
    let identity3 = rxchain::demo::tls_key(3).unwrap().identity().unwrap();
    let config = rxchain::tls::server_config(
        &identity3,
        rxchain::tls::Directory::fixed(std::sync::Arc::new(genesis.clone())),
    )
    .unwrap();
    let impostor = tokio::spawn(impostor(
        listener,
        tokio_rustls::TlsAcceptor::from(config),
        serde_json::to_vec(&forged).unwrap(),
    ));
    let lied = anon(&base1, "/v1/patient/access", json!({"payload": payload})).await;
    assert_eq!(lied.0, StatusCode::OK, "{}", lied.2);
    let e3 = node_entry(&lied.2, 3);
    assert_eq!(e3["answered"], true, "{}", lied.2);
    assert_eq!(e3["check"], "does_not_verify", "{}", lied.2);
    let from3: Vec<&Value> = lied.2["reads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["node"] == 3)
        .collect();
    assert!(!from3.is_empty(), "{}", lied.2);
    assert!(from3.iter().all(|r| r["anchored"] == false), "{}", lied.2);
    assert_eq!(node_entry(&lied.2, 2)["check"], "anchored");
    impostor.abort();
    for n in [n2, n1] {
        n.stop().await;
    }
}

/// A stand-in for node 3 with node 3's TLS key: answers every
/// `POST /v1/node/access` with `answer`, anything else (Raft) with 503.
async fn impostor(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    answer: Vec<u8>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let (acceptor, answer) = (acceptor.clone(), answer.clone());
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let head_end = loop {
                match tls.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            while buf.len() < head_end + len {
                match tls.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let (status, body) = if head.starts_with("POST /v1/node/access ") {
                ("200 OK", answer)
            } else {
                ("503 Service Unavailable", b"{}".to_vec())
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = tls.write_all(reply.as_bytes()).await;
            let _ = tls.write_all(&body).await;
            let _ = tls.shutdown().await;
        });
    }
}
