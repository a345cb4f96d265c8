//! Only the right people change anything, against a real node: a staff key
//! revoked on the chain ends its holder's sessions and sign-in; an
//! organisation's admin disables and enables accounts with a signed request
//! (and only its own); and the sign-in limiter counts guesses before
//! hashing, per username and per client address.

mod common;
mod staff_client;

use reqwest::header::{COOKIE, RETRY_AFTER};
use reqwest::StatusCode;
use rxchain::accounts::{ChangeKind, MAX_FAILURES, MAX_FAILURES_PER_ADDRESS};
use rxchain::cli::{StaffAction, StaffArgs};
use rxchain::client::Submitted;
use rxchain::demo::{admin_key, node_key, staff_key, DEMO_PASSWORD};
use rxchain::http::cluster::{admin_headers, Signer};
use rxchain_contracts::tx::RevokeReason;
use rxchain_contracts::{OrgId, SecretKey};
use serde_json::{json, Value};
use staff_client::{assert_error, issue_body, post_anon, send, sign_in_raw, Staff};

/// The session token inside a `rxsession=…` cookie.
fn token(cookie: &str) -> &str {
    cookie.strip_prefix("rxsession=").expect("a session cookie")
}

/// A signed admin POST to `path` with an empty JSON body.
async fn admin_post(
    t: &common::TestNode,
    key: &SecretKey,
    signer: &Signer,
    path: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let body = "{}";
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", t.base))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in admin_headers(
        t.demo.genesis.chain_id.as_str(),
        key,
        signer,
        1,
        path,
        body.as_bytes(),
    ) {
        req = req.header(k, v);
    }
    send(req).await
}

fn operator(org: &str) -> Signer {
    Signer::Operator(OrgId::parse(org).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_ends_its_sessions_and_its_sign_in() {
    let t = staff_client::start().await;
    let ada = Staff::sign_in(&t.base, "dr.ada").await;
    let dan = Staff::sign_in(&t.base, "ph.dan").await;
    let dan_again = Staff::sign_in(&t.base, "ph.dan").await;

    // 1. The pharmacist sees a home delivery: its QR payload and the patient's address.
    let issued = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Revoked", 7),
        )
        .await;
    let id = issued["id"].as_str().unwrap().to_string();
    let payload = issued["payload"].as_str().unwrap().to_string();
    let address = "42 Synthetic Street, Harbourside";
    let (s, _, r) = post_anon(
        &t.base,
        "/v1/patient/assign",
        &json!({"payload": payload, "mode": "delivery", "pharmacy": "pharm-harbour", "address": address}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (s, _, list) = dan.get("/v1/staff/pharmacy/prescriptions").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(row["payload"], payload.as_str());
    assert_eq!(row["delivery_address"], address);

    // 2. A revocation signed by another organisation's admin is not applied and ends nothing.
    let wrong = rxchain::txbuild::revoke_staff(
        &t.demo.genesis,
        &admin_key("pharm-central"),
        staff_key("ph.dan").public(),
        RevokeReason::Other,
    );
    if let Ok(Submitted::Applied(receipt)) = t.client.submit(&wrong).await {
        assert!(!receipt.outcome.is_applied(), "{:?}", receipt.outcome);
    }
    assert_eq!(dan.get("/v1/session").await.0, StatusCode::OK);

    // 3. Harbour's admin revokes the key on the chain: once the block is
    //    applied, both of the pharmacist's sessions are gone from this node.
    let revoke = rxchain::txbuild::revoke_staff(
        &t.demo.genesis,
        &admin_key("pharm-harbour"),
        staff_key("ph.dan").public(),
        RevokeReason::LeftOrganisation,
    );
    match t
        .client
        .submit(&revoke)
        .await
        .expect("revocation submitted")
    {
        Submitted::Applied(receipt) => {
            assert!(receipt.outcome.is_applied(), "{:?}", receipt.outcome)
        }
        Submitted::Pending(p) => panic!("the revocation is still pending at {p}"),
    }
    for s in [&dan, &dan_again] {
        assert!(
            t.node.accounts.session(token(&s.cookie)).unwrap().is_none(),
            "the applied revocation ended the session"
        );
    }

    // 4. The open session's next page request is refused and carries no payload or address.
    let (s, h, body) = dan.get("/v1/staff/pharmacy/prescriptions").await;
    assert!(
        !body.to_string().contains(&payload) && !body.to_string().contains("Synthetic Street"),
        "{body}"
    );
    assert_error(&(s, h, body), 401, "no_session");

    // 5. A session that outlived the purge (as on a node that caught up
    //    from a snapshot) is refused by the chain check itself, and deleted.
    let account = t.node.accounts.account("ph.dan").unwrap().unwrap();
    let (leftover, _) = t.node.accounts.start_session(account).unwrap();
    let cookie = format!("rxsession={leftover}");
    let http = reqwest::Client::new();
    let got = send(
        http.get(format!("{}/v1/staff/pharmacy/prescriptions", t.base))
            .header(COOKIE, &cookie),
    )
    .await;
    assert!(!got.2.to_string().contains(&payload), "{}", got.2);
    assert_error(&got, 401, "staff_revoked");
    assert!(
        got.2["message"].as_str().unwrap().contains("revoked"),
        "{}",
        got.2
    );
    assert!(t.node.accounts.session(&leftover).unwrap().is_none());
    assert_error(
        &send(
            http.get(format!("{}/v1/session", t.base))
                .header(COOKIE, &cookie),
        )
        .await,
        401,
        "no_session",
    );

    // 6. Signing in again with the right password is refused; a wrong one
    //    gets the usual answer, so a guesser learns nothing about the key.
    assert_error(
        &sign_in_raw(&t.base, "ph.dan", DEMO_PASSWORD).await,
        403,
        "staff_revoked",
    );
    assert_error(
        &sign_in_raw(&t.base, "ph.dan", "not-the-password").await,
        401,
        "bad_credentials",
    );

    // 7. A revoked doctor no longer reads the decrypted patient names either.
    let (s, _, mine) = ada.get("/v1/staff/prescriptions").await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    assert!(
        mine.to_string().contains("Synthetic Patient Revoked"),
        "{mine}"
    );
    let revoke = rxchain::txbuild::revoke_staff(
        &t.demo.genesis,
        &admin_key("hosp-north"),
        staff_key("dr.ada").public(),
        RevokeReason::KeyCompromised,
    );
    assert!(matches!(
        t.client.submit(&revoke).await.unwrap(),
        Submitted::Applied(r) if r.outcome.is_applied()
    ));
    let got = ada.get("/v1/staff/prescriptions").await;
    assert!(
        !got.2.to_string().contains("Synthetic Patient"),
        "{}",
        got.2
    );
    assert_eq!(got.0, StatusCode::UNAUTHORIZED, "{}", got.2);

    // 8. Others are not affected.
    Staff::sign_in(&t.base, "ph.cara").await;
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_admin_disables_and_enables_its_own_accounts_only() {
    let t = staff_client::start().await;
    let cara = Staff::sign_in(&t.base, "ph.cara").await;
    let dan = Staff::sign_in(&t.base, "ph.dan").await;

    // 1. Unsigned, signed by a node key, or for an unknown account: refused, nothing changes.
    let path = "/v1/accounts/ph.cara/disable";
    assert_error(
        &send(
            reqwest::Client::new()
                .post(format!("{}{path}", t.base))
                .json(&json!({})),
        )
        .await,
        401,
        "missing_auth",
    );
    assert_error(
        &admin_post(&t, &node_key(1), &Signer::Node(1), path).await,
        403,
        "not_an_operator",
    );
    assert_error(
        &admin_post(
            &t,
            &admin_key("pharm-central"),
            &operator("pharm-central"),
            "/v1/accounts/nobody.here/disable",
        )
        .await,
        404,
        "unknown_account",
    );

    // 2. Another organisation's admin key cannot disable Central's pharmacist (step 4 of the issue).
    assert_error(
        &admin_post(
            &t,
            &admin_key("pharm-harbour"),
            &operator("pharm-harbour"),
            path,
        )
        .await,
        403,
        "wrong_org",
    );
    // Nor can an admin key sign for an organisation it is not.
    assert_error(
        &admin_post(
            &t,
            &admin_key("pharm-harbour"),
            &operator("pharm-central"),
            path,
        )
        .await,
        401,
        "bad_signature",
    );
    assert_eq!(cara.get("/v1/session").await.0, StatusCode::OK);
    assert!(t.node.accounts.changes("ph.cara").unwrap().is_empty());

    // 3. Central's admin disables the account with the CLI: its open session stops working.
    let key_file = t.dir.path().join("central-admin.key");
    rxchain::keys::write_new(&key_file, &admin_key("pharm-central")).unwrap();
    rxchain::commands::staff::run(StaffArgs {
        node: t.base.clone(),
        key: Some(key_file.clone()),
        trust: Default::default(),
        json: false,
        action: StaffAction::Disable {
            username: "PH.Cara".into(),
        },
    })
    .await
    .expect("rxchain staff disable");
    assert_error(&cara.get("/v1/session").await, 401, "no_session");
    assert_error(
        &cara.get("/v1/staff/pharmacy/prescriptions").await,
        401,
        "no_session",
    );
    let changes = t.node.accounts.changes("ph.cara").unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].action, ChangeKind::Disabled);
    assert_eq!(changes[0].by.as_str(), "pharm-central");
    assert!(changes[0].at.0 > 0);

    // 4. Sign-in is refused, but only to someone with the right password.
    assert_error(
        &sign_in_raw(&t.base, "ph.cara", DEMO_PASSWORD).await,
        403,
        "account_disabled",
    );
    assert_error(
        &sign_in_raw(&t.base, "ph.cara", "not-the-password").await,
        401,
        "bad_credentials",
    );
    // Disabling again changes nothing and says so.
    let (s, _, again) = admin_post(
        &t,
        &admin_key("pharm-central"),
        &operator("pharm-central"),
        path,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["unchanged"], true, "{again}");
    assert_eq!(again["disabled"], true, "{again}");
    assert_eq!(t.node.accounts.changes("ph.cara").unwrap().len(), 1);

    // 5. Enabling lets the person sign in again, and is recorded too.
    let (s, _, enabled) = admin_post(
        &t,
        &admin_key("pharm-central"),
        &operator("pharm-central"),
        "/v1/accounts/ph.cara/enable",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{enabled}");
    assert_eq!(enabled["disabled"], false, "{enabled}");
    assert_eq!(enabled["unchanged"], false, "{enabled}");
    assert_eq!(enabled["change"]["action"], "enabled", "{enabled}");
    assert_eq!(enabled["change"]["by"], "pharm-central", "{enabled}");
    let back = Staff::sign_in(&t.base, "ph.cara").await;
    assert_eq!(back.get("/v1/session").await.0, StatusCode::OK);
    let actions: Vec<ChangeKind> = t
        .node
        .accounts
        .changes("ph.cara")
        .unwrap()
        .iter()
        .map(|c| c.action)
        .collect();
    assert_eq!(actions, [ChangeKind::Disabled, ChangeKind::Enabled]);

    // 6. The CLI refuses another organisation's account with the node's answer.
    let err = rxchain::commands::staff::run(StaffArgs {
        node: t.base.clone(),
        key: Some(key_file),
        trust: Default::default(),
        json: true,
        action: StaffAction::Disable {
            username: "ph.dan".into(),
        },
    })
    .await
    .expect_err("another organisation's account");
    assert!(err.to_string().contains("wrong_org"), "{err}");
    assert_eq!(dan.get("/v1/session").await.0, StatusCode::OK);
    t.node.stop().await;
}

/// Sign-ins sent all at once; answers the statuses and Retry-After values.
async fn parallel_sign_ins(base: &str, attempts: Vec<(String, String)>) -> Vec<(u16, Option<u64>)> {
    let tasks: Vec<_> = attempts
        .into_iter()
        .map(|(user, password)| {
            let base = base.to_string();
            tokio::spawn(async move {
                let got = sign_in_raw(&base, &user, &password).await;
                let retry = got
                    .1
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                (got.0.as_u16(), retry)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_are_counted_before_hashing_per_username_and_per_address() {
    let t = staff_client::start().await;

    // 1. Fifty wrong passwords for one username at once: only five are admitted to hashing.
    let got = parallel_sign_ins(
        &t.base,
        (0..50)
            .map(|i| ("ph.cara".to_string(), format!("wrong-{i}")))
            .collect(),
    )
    .await;
    // An attempt that timed out waiting for a hashing slot (408 on a busy
    // machine) was admitted and stays counted, like a wrong password.
    let admitted = got.iter().filter(|(s, _)| *s != 429).count();
    let limited: Vec<_> = got.iter().filter(|(s, _)| *s == 429).collect();
    assert!(
        got.iter().all(|(s, _)| [401, 408, 429].contains(s)),
        "{got:?}"
    );
    assert_eq!(admitted, MAX_FAILURES, "{got:?}");
    assert_eq!(limited.len(), 50 - MAX_FAILURES, "{got:?}");
    assert!(
        limited
            .iter()
            .all(|(_, r)| r.is_some_and(|r| (1..=300).contains(&r))),
        "{got:?}"
    );

    // 2. The right password is refused too until the window passes.
    let locked = sign_in_raw(&t.base, "ph.cara", DEMO_PASSWORD).await;
    assert_error(&locked, 429, "too_many_attempts");
    let retry: u64 = locked.1[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry), "{retry}");

    // 3. A right password is not counted: another account signs in and out freely.
    for _ in 0..3 {
        Staff::sign_in(&t.base, "ph.dan").await;
    }

    // 4. Guesses spread over many usernames from one address stop at the
    //    address's limit (the five above count towards it).
    let spread = MAX_FAILURES_PER_ADDRESS + 5;
    let got = parallel_sign_ins(
        &t.base,
        (0..spread)
            .map(|i| (format!("guess.{i}"), "whatever".to_string()))
            .collect(),
    )
    .await;
    let admitted = got.iter().filter(|(s, _)| *s != 429).count();
    let limited = got.iter().filter(|(s, _)| *s == 429).count();
    assert!(
        got.iter().all(|(s, _)| [401, 408, 429].contains(s)),
        "{got:?}"
    );
    assert_eq!(admitted, MAX_FAILURES_PER_ADDRESS - MAX_FAILURES, "{got:?}");
    assert_eq!(limited, spread - admitted, "{got:?}");

    // 5. Now this address is locked out even for an untouched username...
    assert_error(
        &sign_in_raw(&t.base, "dr.ada", DEMO_PASSWORD).await,
        429,
        "too_many_attempts",
    );
    // ...while in-process sign-ins (no client address) still work for it.
    let account = t
        .node
        .accounts
        .check_sign_in(
            "dr.ada",
            rxchain::config::Secret::new(DEMO_PASSWORD.to_string()),
            None,
        )
        .await
        .expect("the password checks out");
    assert_eq!(account.username, "dr.ada");
    t.node.stop().await;
}
