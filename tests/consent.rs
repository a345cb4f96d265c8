//! Sharing by consent against real nodes: an insurer asks, the patient
//! shares, the insurer's reviewer reads the content and sees the claim,
//! the patient revokes and the reviewer is refused; every bad input gets
//! its code and changes nothing; a grant runs out on its own; and a
//! prescription past its retention can be neither shared nor requested.

mod common;
mod staff_client;

use reqwest::StatusCode;
use rxchain::node::RunningNode;
use rxchain::qr::QrPayload;
use rxchain::test_support::{create_demo_accounts, demo_settings, register_demo_staff};
use rxchain_contracts::privacy::ContentKey;
use rxchain_contracts::{OrgId, Timestamp};
use serde_json::{json, Value};
use staff_client::{assert_error, issue_body, post_anon, send, Staff};

/// Polls `f` until it answers `Some`, for at most 30 s.
async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    common::eventually(what, 30, f).await
}

/// The grant of `org` in a sharing view.
fn grant_of<'a>(sharing: &'a Value, org: &str) -> &'a Value {
    sharing["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["org"] == org)
        .unwrap_or_else(|| panic!("no grant of {org}: {sharing}"))
}

async fn sharing(base: &str, payload: &str) -> Value {
    let got = post_anon(base, "/v1/patient/sharing", &json!({"payload": payload})).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.2);
    got.2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_shares_with_an_insurer_then_revokes_and_the_insurer_is_refused() {
    let t = staff_client::start().await;
    let ada = Staff::sign_in(&t.base, "dr.ada").await;
    let ivy = Staff::sign_in(&t.base, "ins.ivy").await;
    let cara = Staff::sign_in(&t.base, "ph.cara").await;

    // 1. The doctor issues; the insurer cannot read it yet.
    let issued = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Consent", 14),
        )
        .await;
    let id = issued["id"].as_str().unwrap().to_string();
    let payload = issued["payload"].as_str().unwrap().to_string();
    assert_error(&ivy.get(&format!("/v1/shared/{id}")).await, 404, "no_grant");

    // 2. The insurer's reviewer asks for access; asking twice is refused.
    let asked = ivy
        .ok("/v1/consent/requests", &json!({"id": id, "days": 30}))
        .await;
    assert_eq!(asked["outcome"]["result"], "applied", "{asked}");
    assert_error(
        &ivy.post("/v1/consent/requests", &json!({"id": id, "days": 30}))
            .await,
        409,
        "request_pending",
    );
    // A pharmacist of another organisation may ask too, for their own.
    let asked = cara
        .ok("/v1/consent/requests", &json!({"id": id, "days": 10}))
        .await;
    assert_eq!(asked["outcome"]["result"], "applied", "{asked}");

    // 3. The patient sees both requests, with who asked.
    let v = sharing(&t.base, &payload).await;
    let reqs = v["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 2, "{v}");
    let ivy_req = reqs.iter().find(|r| r["org"] == "ins-civic").unwrap();
    assert_eq!(ivy_req["status"], "pending");
    assert_eq!(ivy_req["by_name"], "Ivy Reviewer");
    assert_eq!(ivy_req["org_name"], "Civic Health Insurance (demo)");
    assert!(v["grants"].as_array().unwrap().is_empty(), "{v}");
    assert!(v["organisations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["id"] == "ins-civic" && o["kind"] == "insurer"));

    // 4. Bad input: an unknown organisation, a period beyond the maximum,
    //    a wrong code. Nothing changes.
    assert_error(
        &post_anon(
            &t.base,
            "/v1/patient/share",
            &json!({"payload": payload, "org": "ins-nobody", "days": 30}),
        )
        .await,
        404,
        "unknown_org",
    );
    let too_long = post_anon(
        &t.base,
        "/v1/patient/share",
        &json!({"payload": payload, "org": "ins-civic", "days": 366}),
    )
    .await;
    assert_error(&too_long, 422, "grant_period_invalid");
    assert_eq!(too_long.2["detail"]["max_days"], 365, "{}", too_long.2);
    assert!(
        too_long.2["receipt"].is_object(),
        "the refusal is recorded on the chain: {}",
        too_long.2
    );
    let mut forged = QrPayload::parse(&payload).unwrap();
    forged.secret = rxchain_contracts::privacy::AccessSecret::from_bytes([7; 32]);
    assert_error(
        &post_anon(
            &t.base,
            "/v1/patient/share",
            &json!({"payload": forged.encode(), "org": "ins-civic", "days": 30}),
        )
        .await,
        403,
        "wrong_secret",
    );
    assert!(sharing(&t.base, &payload).await["grants"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_error(&ivy.get(&format!("/v1/shared/{id}")).await, 404, "no_grant");

    // 5. The patient shares with the insurer: its request is approved.
    let shared = post_anon(
        &t.base,
        "/v1/patient/share",
        &json!({"payload": payload, "org": "ins-civic", "days": 30}),
    )
    .await;
    assert_eq!(shared.0, StatusCode::OK, "{}", shared.2);
    assert_eq!(shared.2["outcome"]["result"], "applied");
    let v = sharing(&t.base, &payload).await;
    let g = grant_of(&v, "ins-civic");
    assert_eq!(g["state"], "active", "{v}");
    let until = g["until"].as_u64().unwrap();
    let in_30_days = rxchain::clock::now().plus_days(30).0;
    assert!(until <= in_30_days && until + 60_000 > in_30_days);
    let statuses: Vec<(&str, &str)> = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["org"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert!(statuses.contains(&("ins-civic", "approved")), "{v}");
    assert!(statuses.contains(&("pharm-central", "pending")), "{v}");
    // Asking again while access lasts is refused.
    assert_error(
        &ivy.post("/v1/consent/requests", &json!({"id": id, "days": 5}))
            .await,
        409,
        "already_granted",
    );

    // 6. The insurer reads the content, and the claim is on its review list.
    let (s, h, read) = ivy.get(&format!("/v1/shared/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{read}");
    assert_eq!(
        h.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    assert_eq!(
        read["content"]["patient"]["name"],
        "Synthetic Patient Consent"
    );
    assert_eq!(read["grant"]["state"], "active");
    assert_eq!(read["prescription"]["record"]["id"], id.as_str());
    // Another organisation with no grant still cannot.
    assert_error(
        &cara.get(&format!("/v1/shared/{id}")).await,
        404,
        "no_grant",
    );
    let (s, _, claims) = ivy.get("/v1/insurer/claims").await;
    assert_eq!(s, StatusCode::OK, "{claims}");
    let row = claims["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id.as_str())
        .unwrap_or_else(|| panic!("the shared prescription is listed: {claims}"));
    assert_eq!(row["lines"][0]["atc"], "J01CA04");
    assert_eq!(row["lines"][0]["quantity"], 20);
    assert_eq!(row["lines"][0]["dispensed"], 0);
    assert_eq!(row["dispensed"], false);
    assert_eq!(row["grant"]["state"], "active");
    // Only a claims reviewer has the review list.
    assert_error(&cara.get("/v1/insurer/claims").await, 403, "wrong_role");

    // 7. A grant signed with another key than the prescription's access key
    //    is not admitted, and the grant stands as it was.
    let ck = ContentKey::from_bytes([1; 32]);
    let mut stranger = QrPayload::parse(&payload).unwrap();
    stranger.secret = rxchain_contracts::privacy::AccessSecret::from_bytes([9; 32]);
    let tx = rxchain::txbuild::grant_access(
        &t.demo.genesis,
        &stranger,
        &ck,
        &OrgId::parse("ins-civic").unwrap(),
        rxchain::clock::now().plus_days(300),
    )
    .unwrap();
    let got = send(
        reqwest::Client::new()
            .post(format!("{}/v1/tx", t.base))
            .json(&tx),
    )
    .await;
    assert_error(&got, 403, "not_patient");
    assert_eq!(
        grant_of(&sharing(&t.base, &payload).await, "ins-civic")["until"],
        until
    );

    // 8. The patient revokes: the insurer is refused from then on, and
    //    revoking again is refused too.
    let revoked = post_anon(
        &t.base,
        "/v1/patient/unshare",
        &json!({"payload": payload, "org": "ins-civic"}),
    )
    .await;
    assert_eq!(revoked.0, StatusCode::OK, "{}", revoked.2);
    assert_eq!(revoked.2["outcome"]["result"], "applied");
    assert_error(
        &ivy.get(&format!("/v1/shared/{id}")).await,
        409,
        "grant_revoked",
    );
    assert_error(
        &post_anon(
            &t.base,
            "/v1/patient/unshare",
            &json!({"payload": payload, "org": "ins-civic"}),
        )
        .await,
        409,
        "grant_revoked",
    );
    assert_error(
        &post_anon(
            &t.base,
            "/v1/patient/unshare",
            &json!({"payload": payload, "org": "pharm-central"}),
        )
        .await,
        404,
        "no_grant",
    );
    let v = sharing(&t.base, &payload).await;
    assert_eq!(grant_of(&v, "ins-civic")["state"], "revoked", "{v}");
    let (_, _, claims) = ivy.get("/v1/insurer/claims").await;
    assert!(claims["claims"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == id.as_str() && c["grant"]["state"] == "revoked"));

    // 9. The patient refuses the pharmacy's request; refusing twice is refused.
    let refused = post_anon(
        &t.base,
        "/v1/patient/refuse-request",
        &json!({"payload": payload, "org": "pharm-central"}),
    )
    .await;
    assert_eq!(refused.0, StatusCode::OK, "{}", refused.2);
    assert_error(
        &post_anon(
            &t.base,
            "/v1/patient/refuse-request",
            &json!({"payload": payload, "org": "pharm-central"}),
        )
        .await,
        404,
        "no_pending_request",
    );
    let v = sharing(&t.base, &payload).await;
    assert!(v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["org"] == "pharm-central" && r["status"] == "refused"));
    assert_error(
        &cara.get(&format!("/v1/shared/{id}")).await,
        404,
        "no_grant",
    );

    // 10. A grant that runs out: the patient's key signs a grant of three
    //     seconds; the insurer reads, then is refused once it ended.
    let p = QrPayload::parse(&payload).unwrap();
    let (_, _, sealed) = ada.get(&format!("/v1/prescriptions/{id}/sealed")).await;
    let wrap: rxchain_contracts::privacy::WrappedKey =
        serde_json::from_value(sealed["key_for_patient"].clone()).unwrap();
    let ck = ContentKey::from_bytes(
        rxchain_contracts::privacy::unwrap_with_secret(
            &p.secret,
            &rxchain_contracts::privacy::content_context(&p.id),
            &wrap,
        )
        .unwrap(),
    );
    let short = rxchain::txbuild::grant_access(
        &t.demo.genesis,
        &p,
        &ck,
        &OrgId::parse("ins-civic").unwrap(),
        Timestamp(rxchain::clock::now().0 + 3_000),
    )
    .unwrap();
    let got = send(
        reqwest::Client::new()
            .post(format!("{}/v1/tx", t.base))
            .json(&short),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.2);
    assert_eq!(got.2["outcome"]["result"], "applied", "{}", got.2);
    let (s, _, read) = ivy.get(&format!("/v1/shared/{id}")).await;
    assert_eq!(s, StatusCode::OK, "a renewed grant reads again: {read}");
    eventually("the short grant to end", || async {
        let got = ivy.get(&format!("/v1/shared/{id}")).await;
        (got.0 == StatusCode::GONE).then_some(got)
    })
    .await;
    assert_error(
        &ivy.get(&format!("/v1/shared/{id}")).await,
        410,
        "grant_expired",
    );
    assert_error(
        &post_anon(
            &t.base,
            "/v1/patient/unshare",
            &json!({"payload": payload, "org": "ins-civic"}),
        )
        .await,
        410,
        "grant_expired",
    );
}

/// A one-node demo consortium whose genesis keeps personal data for
/// `retention_days` after a prescription ends.
async fn start_with_retention(retention_days: u32) -> common::TestNode {
    let dir = tempfile::tempdir().unwrap();
    let demo = rxchain::demo::Demo::load().unwrap();
    let mut g = demo.genesis_for(&[1]);
    g.params.personal_data_retention_days = retention_days;
    std::fs::write(
        dir.path().join("genesis.json"),
        serde_json::to_string_pretty(&g).unwrap(),
    )
    .unwrap();
    demo.write_files(dir.path(), &[1]).unwrap();
    let node = rxchain::node::start(demo_settings(
        dir.path(),
        1,
        "127.0.0.1:0".parse().unwrap(),
        None,
    ))
    .await
    .unwrap();
    rxchain::test_support::wait_for_leader(&node).await.unwrap();
    let base = format!("http://{}", node.addr);
    let client = rxchain::client::Client::new(base.clone());
    register_demo_staff(&demo, &client).await.unwrap();
    create_demo_accounts(&demo, &node.accounts).await.unwrap();
    common::TestNode {
        node,
        client,
        demo,
        base,
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prescription_past_retention_can_be_neither_shared_nor_requested() {
    // Retention of 0 days: a cancelled prescription is erased at once.
    let t = start_with_retention(0).await;
    let ada = Staff::sign_in(&t.base, "dr.ada").await;
    let ivy = Staff::sign_in(&t.base, "ins.ivy").await;
    let issued = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Erased", 14),
        )
        .await;
    let id = issued["id"].as_str().unwrap().to_string();
    let payload = issued["payload"].as_str().unwrap().to_string();
    let cancelled = post_anon(&t.base, "/v1/patient/cancel", &json!({"payload": payload})).await;
    assert_eq!(cancelled.0, StatusCode::OK, "{}", cancelled.2);

    let asked = ivy
        .post("/v1/consent/requests", &json!({"id": id, "days": 30}))
        .await;
    assert_error(&asked, 410, "personal_data_erased");
    assert!(asked.2["receipt"].is_object(), "{}", asked.2);
    assert_error(
        &post_anon(
            &t.base,
            "/v1/patient/share",
            &json!({"payload": payload, "org": "ins-civic", "days": 30}),
        )
        .await,
        410,
        "personal_data_erased",
    );
    // Nothing was half-applied: no grant, no request.
    let v = sharing(&t.base, &payload).await;
    assert!(v["grants"].as_array().unwrap().is_empty(), "{v}");
    assert!(v["requests"].as_array().unwrap().is_empty(), "{v}");
    assert_error(&ivy.get(&format!("/v1/shared/{id}")).await, 404, "no_grant");
}

/// Starts demo node `id` of a three-node consortium under `dir`, joining
/// through `peer` unless it is node 1, with the demo sign-in accounts.
async fn start_member(dir: &std::path::Path, id: u64, peer: Option<&str>) -> RunningNode {
    let mut s = demo_settings(dir, id, "127.0.0.1:0".parse().unwrap(), None);
    if let Some(p) = peer {
        s.bootstrap = false;
        s.peers.insert("1".into(), p.into());
    }
    let node = rxchain::node::start(s).await.expect("node starts");
    let demo = rxchain::demo::Demo::load().unwrap();
    create_demo_accounts(&demo, &node.accounts).await.unwrap();
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_stops_reading_on_every_node_and_each_node_logs_its_own_reads() {
    let dir = tempfile::tempdir().unwrap();
    let demo = rxchain::demo::Demo::load().unwrap();
    demo.write_files(dir.path(), &[1, 2, 3]).unwrap();

    // 1. Three members; node 1 bootstraps, 2 and 3 join through it.
    let n1 = start_member(dir.path(), 1, None).await;
    rxchain::test_support::wait_for_leader(&n1).await.unwrap();
    let addr1 = n1.addr.to_string();
    let n2 = start_member(dir.path(), 2, Some(&addr1)).await;
    let n3 = start_member(dir.path(), 3, Some(&addr1)).await;
    let base1 = format!("http://{}", n1.addr);
    eventually("nodes 2 and 3 to be voters", || async {
        let m = n1.raft.metrics().borrow().clone();
        let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
        (voters.contains(&2) && voters.contains(&3)).then_some(())
    })
    .await;
    register_demo_staff(&demo, &rxchain::client::Client::new(base1.clone()))
        .await
        .unwrap();

    // 2. The doctor issues on node 1 and the patient shares with the insurer.
    let ada = Staff::sign_in(&base1, "dr.ada").await;
    let issued = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Cluster", 14),
        )
        .await;
    let id = issued["id"].as_str().unwrap().to_string();
    let payload = issued["payload"].as_str().unwrap().to_string();
    let shared = post_anon(
        &base1,
        "/v1/patient/share",
        &json!({"payload": payload, "org": "ins-civic", "days": 30}),
    )
    .await;
    assert_eq!(shared.0, StatusCode::OK, "{}", shared.2);

    // 3. The reviewer reads on nodes 2 and 3 once each has applied the grant.
    for n in [&n2, &n3] {
        eventually("the node to catch up", || async {
            (n.chain.tip().height >= n1.chain.tip().height).then_some(())
        })
        .await;
    }
    let bases: Vec<String> = [&n2, &n3]
        .iter()
        .map(|n| format!("http://{}", n.addr))
        .collect();
    for base in &bases {
        let ivy = Staff::sign_in(base, "ins.ivy").await;
        let read = eventually("the grant to reach this node", || async {
            let got = ivy.get(&format!("/v1/shared/{id}")).await;
            (got.0 == StatusCode::OK).then_some(got.2)
        })
        .await;
        assert_eq!(
            read["content"]["patient"]["name"],
            "Synthetic Patient Cluster"
        );
        // The read is in this node's own log, and the patient sees it
        // there, served by this node.
        let log = post_anon(base, "/v1/patient/access", &json!({"payload": payload})).await;
        assert_eq!(log.0, StatusCode::OK, "{}", log.2);
        let reads = log.2["reads"].as_array().unwrap();
        assert!(
            reads.iter().any(|r| r["name"] == "Ivy Reviewer"
                && r["purpose"] == "shared_read"
                && r["node"] == log.2["node"]),
            "{}",
            log.2
        );
    }

    // 4. The patient revokes on node 1: every node refuses from then on.
    let revoked = post_anon(
        &base1,
        "/v1/patient/unshare",
        &json!({"payload": payload, "org": "ins-civic"}),
    )
    .await;
    assert_eq!(revoked.0, StatusCode::OK, "{}", revoked.2);
    for base in bases.iter().chain(std::iter::once(&base1)) {
        let ivy = Staff::sign_in(base, "ins.ivy").await;
        let got = eventually("the revocation to reach this node", || async {
            let got = ivy.get(&format!("/v1/shared/{id}")).await;
            (got.0 != StatusCode::OK).then_some(got)
        })
        .await;
        assert_error(&got, 409, "grant_revoked");
    }
    for n in [n3, n2, n1] {
        n.stop().await;
    }
}
