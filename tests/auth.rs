//! Sign-in, sessions and CSRF against a real node: the cookie's attributes,
//! wrong passwords and the rate limit, missing sessions and CSRF tokens,
//! wrong roles and organisations, and cookies from another node.

mod common;
mod staff_client;

use reqwest::header::{COOKIE, RETRY_AFTER, SET_COOKIE};
use reqwest::StatusCode;
use rxchain::demo::{Demo, DEMO_PASSWORD};
use rxchain::test_support::{create_demo_accounts, demo_settings};
use serde_json::{json, Value};
use staff_client::{assert_error, issue_body, send, session_cookie, sign_in_raw, Staff};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_strict_cookie_and_sign_out_needs_csrf() {
    let t = staff_client::start().await;
    let http = reqwest::Client::new();

    // 1. Signing in answers the session and sets an HttpOnly, Secure, SameSite=Strict cookie.
    let (status, headers, body) = sign_in_raw(&t.base, "dr.ada", DEMO_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["username"], "dr.ada");
    assert_eq!(body["name"], "Dr Ada Example");
    assert_eq!(body["org"], "hosp-north");
    assert_eq!(body["org_name"], "Northgate General Hospital (synthetic)");
    assert_eq!(body["role"], "practitioner");
    let csrf = body["csrf"].as_str().unwrap().to_string();
    assert_eq!(csrf.len(), 64, "{body}");
    let set_cookie = headers
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("Set-Cookie")
        .to_string();
    let attrs: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    assert!(
        attrs[0].starts_with("rxsession=") && attrs[0].len() == "rxsession=".len() + 64,
        "{set_cookie}"
    );
    for want in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(
            attrs.contains(&want),
            "Set-Cookie lacks {want}: {set_cookie}"
        );
    }
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let cookie = session_cookie(&headers).unwrap();

    // 2. The session reads back with the same CSRF token; without the cookie there is none.
    let got = send(
        http.get(format!("{}/v1/session", t.base))
            .header(COOKIE, &cookie),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.2);
    assert_eq!(got.2["csrf"], csrf.as_str());
    assert_error(
        &send(http.get(format!("{}/v1/session", t.base))).await,
        401,
        "no_session",
    );
    let forged = format!("rxsession={}", "ab".repeat(32));
    assert_error(
        &send(
            http.get(format!("{}/v1/session", t.base))
                .header(COOKIE, forged),
        )
        .await,
        401,
        "no_session",
    );
    assert_error(
        &send(
            http.get(format!("{}/v1/session", t.base))
                .header(COOKIE, "rxsession=junk"),
        )
        .await,
        401,
        "no_session",
    );

    // 3. Signing out needs the CSRF token: missing, then wrong, then right.
    let url = format!("{}/v1/session", t.base);
    assert_error(
        &send(http.delete(&url).header(COOKIE, &cookie)).await,
        403,
        "csrf_missing",
    );
    assert_error(
        &send(
            http.delete(&url)
                .header(COOKIE, &cookie)
                .header("x-csrf-token", "00".repeat(32)),
        )
        .await,
        403,
        "csrf_mismatch",
    );
    let got = send(
        http.delete(&url)
            .header(COOKIE, &cookie)
            .header("x-csrf-token", &csrf),
    )
    .await;
    assert_eq!(got.0, StatusCode::NO_CONTENT);
    let cleared = got
        .1
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        cleared.starts_with("rxsession=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    // 4. The ended session is gone.
    assert_error(
        &send(http.get(&url).header(COOKIE, &cookie)).await,
        401,
        "no_session",
    );
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_are_refused_and_five_failures_lock_the_username() {
    let t = staff_client::start().await;

    // 1. A wrong password and an unknown user get the same 401.
    assert_error(
        &sign_in_raw(&t.base, "ph.cara", "not-the-password").await,
        401,
        "bad_credentials",
    );
    assert_error(
        &sign_in_raw(&t.base, "nobody.here", "whatever").await,
        401,
        "bad_credentials",
    );

    // 2. Four more failures make five within five minutes...
    for _ in 0..4 {
        assert_error(
            &sign_in_raw(&t.base, "ph.cara", "still-wrong").await,
            401,
            "bad_credentials",
        );
    }
    // 3. ...after which even the right password is refused for a while, with Retry-After.
    let locked = sign_in_raw(&t.base, "ph.cara", DEMO_PASSWORD).await;
    assert_error(&locked, 429, "too_many_attempts");
    let retry: u64 = locked
        .1
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=300).contains(&retry), "{retry}");
    // The username is what is limited, whatever its case.
    assert_error(
        &sign_in_raw(&t.base, "PH.Cara", DEMO_PASSWORD).await,
        429,
        "too_many_attempts",
    );

    // 4. Other accounts are not affected; usernames are case-insensitive.
    let dan = Staff::sign_in(&t.base, "PH.DAN").await;
    assert_eq!(dan.session["username"], "ph.dan");

    // 5. A malformed sign-in body is a JSON 400, not a failure count.
    let got = send(
        reqwest::Client::new()
            .post(format!("{}/v1/session", t.base))
            .json(&json!({"username": "dr.ada"})),
    )
    .await;
    assert_error(&got, 400, "invalid_json");
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_organisations_and_csrf_are_checked_before_anything_is_signed() {
    let t = staff_client::start().await;
    let ada = Staff::sign_in(&t.base, "dr.ada").await;
    let ben = Staff::sign_in(&t.base, "dr.ben").await;
    let cara = Staff::sign_in(&t.base, "ph.cara").await;
    let dan = Staff::sign_in(&t.base, "ph.dan").await;

    // 1. No session: 401, whatever the endpoint.
    let anon = staff_client::post_anon(
        &t.base,
        "/v1/staff/prescriptions",
        &issue_body("Synthetic Patient Auth", 14),
    )
    .await;
    assert_error(&anon, 401, "no_session");
    assert_error(
        &send(reqwest::Client::new().get(format!("{}/v1/reports/alerts", t.base))).await,
        401,
        "no_session",
    );

    // 2. A doctor without the CSRF token: 403 csrf_missing; nothing is issued.
    assert_error(
        &ada.post_without_csrf(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Auth", 14),
        )
        .await,
        403,
        "csrf_missing",
    );

    // 3. A pharmacist trying to issue, list a doctor's prescriptions or read reports: 403 wrong_role.
    assert_error(
        &cara
            .post(
                "/v1/staff/prescriptions",
                &issue_body("Synthetic Patient Auth", 14),
            )
            .await,
        403,
        "wrong_role",
    );
    assert_error(
        &cara.get("/v1/staff/prescriptions").await,
        403,
        "wrong_role",
    );
    assert_error(&cara.get("/v1/reports/dispensing").await, 403, "wrong_role");
    assert_error(
        &ada.get("/v1/staff/pharmacy/prescriptions").await,
        403,
        "wrong_role",
    );
    assert_error(
        &ada.post(
            "/v1/staff/dispense",
            &json!({"id": "00".repeat(16), "lines": [], "complete": true}),
        )
        .await,
        403,
        "wrong_role",
    );
    assert_error(
        &ada.post("/v1/reports/verify", &json!({})).await,
        403,
        "wrong_role",
    );

    // 4. Dr Ada issues; Dr Ben of another hospital cannot cancel it: 403 wrong_org, nothing signed.
    let issued = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Auth", 14),
        )
        .await;
    let id = issued["id"].as_str().unwrap().to_string();
    let payload = issued["payload"].as_str().unwrap().to_string();
    assert_error(
        &ben.post(&format!("/v1/staff/prescriptions/{id}/cancel"), &json!({}))
            .await,
        403,
        "wrong_org",
    );
    let p: Value = t
        .client
        .get(&format!("/v1/prescriptions/{id}"))
        .await
        .unwrap();
    assert_eq!(
        p["history"].as_array().unwrap().len(),
        1,
        "only the issue is on the chain: {p}"
    );

    // 5. A Harbour pharmacist claiming for Central: 403 wrong_org.
    assert_error(
        &dan.post(
            "/v1/staff/claim",
            &json!({"payload": payload, "pharmacy": "pharm-central"}),
        )
        .await,
        403,
        "wrong_org",
    );

    // 6. Central claims; Harbour's dispense is refused by the chain: claimed_by_other (and recorded).
    cara.ok("/v1/staff/claim", &json!({"payload": payload}))
        .await;
    let got = dan.post("/v1/staff/dispense", &json!({"id": id, "lines": [{"item": 0, "quantity": 1, "batch": "X-1"}], "complete": false})).await;
    assert_error(&got, 409, "claimed_by_other");
    assert!(
        got.2["receipt"]["height"].as_u64().is_some(),
        "the refusal is on the chain: {}",
        got.2
    );
    assert_eq!(got.2["detail"]["pharmacy"], "pharm-central", "{}", got.2);

    // 7. A CSRF token of another session does not fit this one.
    let mut mixed = Staff {
        csrf: ada.csrf.clone(),
        ..Staff::sign_in(&t.base, "ph.eve").await
    };
    assert_error(
        &mixed.post("/v1/staff/release", &json!({"id": id})).await,
        403,
        "csrf_mismatch",
    );
    mixed.csrf = String::new();
    assert_error(
        &mixed.post("/v1/staff/release", &json!({"id": id})).await,
        403,
        "csrf_missing",
    );

    // 8. Bad input to staff endpoints is a precise 400.
    assert_error(
        &cara
            .post("/v1/staff/claim", &json!({"payload": "RX1:NOT-A-CODE"}))
            .await,
        400,
        "bad_qr_payload",
    );
    assert_error(
        &ada.post("/v1/staff/prescriptions/not-an-id/cancel", &json!({}))
            .await,
        400,
        "bad_prescription_id",
    );
    let mut wrong = issue_body("Synthetic Patient Auth", 14);
    wrong["dosage"] = json!(["only one"]);
    assert_error(
        &ada.post("/v1/staff/prescriptions", &wrong).await,
        400,
        "bad_dosage",
    );
    let mut too_long = issue_body("Synthetic Patient Auth", 60);
    too_long["repeats"] = json!(1);
    assert_error(
        &ada.post("/v1/staff/prescriptions", &too_long).await,
        400,
        "bad_validity",
    );
    assert_error(
        &ada.get("/v1/staff/prescriptions?limit=0").await,
        400,
        "bad_limit",
    );
    assert_error(
        &ada.get("/v1/staff/prescriptions?limit=x").await,
        400,
        "bad_query",
    );
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_minted_on_one_node_means_nothing_to_a_node_with_another_key() {
    let t = staff_client::start().await;
    let ada = Staff::sign_in(&t.base, "dr.ada").await;

    // 1. A second node, started with node 2's key.
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::load().unwrap();
    demo.write_files(dir.path(), &[2]).unwrap();
    // It runs a one-node chain of its own with the demo staff registered,
    // since a session needs a key the node's chain lists as active.
    let mut settings = demo_settings(dir.path(), 2, "127.0.0.1:0".parse().unwrap(), None);
    settings.bootstrap = true;
    let other = rxchain::node::start(settings).await.expect("node 2 starts");
    let other_base = format!("http://{}", other.addr);
    rxchain::test_support::wait_for_leader(&other)
        .await
        .unwrap();
    rxchain::test_support::register_demo_staff(
        &demo,
        &rxchain::client::Client::new(other_base.clone()),
    )
    .await
    .unwrap();
    create_demo_accounts(&demo, &other.accounts).await.unwrap();

    // 2. The first node's cookie is no session there, though the same account exists.
    let http = reqwest::Client::new();
    assert_error(
        &send(
            http.get(format!("{other_base}/v1/session"))
                .header(COOKIE, &ada.cookie),
        )
        .await,
        401,
        "no_session",
    );
    // 3. Signing in there gives a cookie of its own, which the first node does not know.
    let there = Staff::sign_in(&other_base, "dr.ada").await;
    assert_ne!(there.cookie, ada.cookie);
    assert_error(
        &send(
            http.get(format!("{}/v1/session", t.base))
                .header(COOKIE, &there.cookie),
        )
        .await,
        401,
        "no_session",
    );
    // 4. Each node still knows its own.
    assert_eq!(ada.get("/v1/session").await.0, StatusCode::OK);
    assert_eq!(there.get("/v1/session").await.0, StatusCode::OK);
    other.stop().await;
    t.node.stop().await;
}
