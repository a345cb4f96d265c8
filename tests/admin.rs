//! Organisation admins manage their own staff, on a real one-node demo
//! consortium: the first admin is bootstrapped with the organisation's
//! admin key (`rxchain admin bootstrap`), enrols a doctor (account and
//! chain registration as one action, no half state when the chain refuses),
//! the doctor must change the initial password (password policy enforced),
//! issues, has their key rotated (the old key's next signature is refused,
//! the doctor keeps working and the old key stays in their history), is
//! disabled (the open session ends) and finally revoked (permanent). An
//! admin never reaches another organisation's accounts, and the CLI drives
//! the same API.

mod common;
mod staff_client;

use std::path::Path;

use reqwest::StatusCode;
use rxchain::cli::{AdminAction, AdminArgs, BootstrapArgs, StaffAction, StaffArgs};
use rxchain::client::ClientError;
use rxchain::demo::admin_key;
use rxchain_contracts::tx::CancelReason;
use rxchain_contracts::PrescriptionId;
use serde_json::{json, Value};
use staff_client::{assert_error, issue_body, session_cookie, sign_in_raw, Staff};

/// Signs in with `password`, expecting success.
async fn sign_in(base: &str, username: &str, password: &str) -> Staff {
    let got = sign_in_raw(base, username, password).await;
    assert_eq!(got.0, StatusCode::OK, "{username} signs in: {}", got.2);
    Staff {
        base: base.to_string(),
        http: reqwest::Client::new(),
        cookie: session_cookie(&got.1).expect("a session cookie"),
        csrf: got.2["csrf"].as_str().expect("a CSRF token").to_string(),
        session: got.2,
    }
}

/// `rxchain admin bootstrap` for `org`, its password read from a file.
async fn bootstrap(dir: &Path, base: &str, org: &str, username: &str, password: &str) {
    let key = dir.join(format!("{org}-admin.key"));
    if !key.exists() {
        rxchain::keys::write_new(&key, &admin_key(org)).unwrap();
    }
    let pw = dir.join(format!("{username}.pw"));
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    rxchain::commands::admin::run(AdminArgs {
        action: AdminAction::Bootstrap(BootstrapArgs {
            node: base.to_string(),
            key,
            username: username.into(),
            name: format!("Admin {username}"),
            licence: "ADMIN-REF-1".into(),
            password_file: Some(pw),
            trust: Default::default(),
            json: false,
        }),
    })
    .await
    .expect("rxchain admin bootstrap");
}

fn entry<'a>(list: &'a Value, username: &str) -> Option<&'a Value> {
    list["staff"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["username"] == username)
}

const ADMIN_PW: &str = "north admin violet harbour";
const INITIAL_PW: &str = "initial tram ninety lamps";
const DOCTOR_PW: &str = "doctor chose quiet maple river";

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_enrols_rotates_disables_and_revokes_its_own_staff_only() {
    let t = staff_client::start().await;
    let base = t.base.clone();
    bootstrap(t.dir.path(), &base, "hosp-north", "admin.north", ADMIN_PW).await;
    let admin = sign_in(&base, "admin.north", ADMIN_PW).await;
    assert_eq!(admin.session["role"], "admin");
    assert_eq!(admin.session["must_change_password"], false);

    // 1. The password policy refuses a short and a common initial password.
    let add = |username: &str, role: &str, password: &str| {
        json!({"username": username, "name": "Dr Grace Hopper", "role": role,
               "licence": "MD-TEST-0042", "password": password})
    };
    let got = admin
        .post(
            "/v1/admin/staff",
            &add("dr.grace", "practitioner", "short-pw"),
        )
        .await;
    assert_error(&got, 400, "password_too_short");
    let got = admin
        .post(
            "/v1/admin/staff",
            &add("dr.grace", "practitioner", "Password1234"),
        )
        .await;
    assert_error(&got, 400, "password_too_common");

    // 2. No half state: a role the chain refuses for a hospital leaves no account.
    let got = admin
        .post(
            "/v1/admin/staff",
            &add("dr.grace", "pharmacist", INITIAL_PW),
        )
        .await;
    assert_error(&got, 422, "wrong_org_kind");
    let (_, _, list) = admin.get("/v1/admin/staff").await;
    assert!(entry(&list, "dr.grace").is_none(), "{list}");
    assert!(t.node.accounts.account("dr.grace").unwrap().is_none());
    assert_error(
        &sign_in_raw(&base, "dr.grace", INITIAL_PW).await,
        401,
        "bad_credentials",
    );

    // 3. Enrolled with a fitting role: the key is active on the chain.
    let created = admin
        .ok(
            "/v1/admin/staff",
            &add("Dr.Grace", "practitioner", INITIAL_PW),
        )
        .await;
    assert_eq!(created["username"], "dr.grace");
    assert_eq!(created["chain_status"], "active", "{created}");
    assert_eq!(created["must_change_password"], true);
    assert_eq!(created["chain"]["licence"], "MD-TEST-0042");
    assert_eq!(created["changes"][0]["action"], "created");
    assert_eq!(created["changes"][0]["by_user"], "admin.north");
    let got = admin
        .post(
            "/v1/admin/staff",
            &add("dr.grace", "practitioner", INITIAL_PW),
        )
        .await;
    assert_error(&got, 400, "account_exists");

    // 4. The doctor must change the initial password before anything else.
    let doctor = sign_in(&base, "dr.grace", INITIAL_PW).await;
    assert_eq!(doctor.session["must_change_password"], true);
    assert_error(
        &doctor.get("/v1/staff/prescriptions").await,
        403,
        "password_change_required",
    );
    assert_error(
        &doctor
            .post(
                "/v1/staff/prescriptions",
                &issue_body("Synthetic Patient Admin", 14),
            )
            .await,
        403,
        "password_change_required",
    );
    assert_eq!(doctor.get("/v1/session").await.0, StatusCode::OK);
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    assert_error(
        &doctor
            .post("/v1/session/password", &change(INITIAL_PW, "qwertyuiop12"))
            .await,
        400,
        "password_too_common",
    );
    assert_error(
        &doctor
            .post(
                "/v1/session/password",
                &change("not the password", DOCTOR_PW),
            )
            .await,
        401,
        "bad_credentials",
    );
    let changed = doctor
        .ok("/v1/session/password", &change(INITIAL_PW, DOCTOR_PW))
        .await;
    assert_eq!(changed["must_change_password"], false);

    // 5. The doctor issues with the same session.
    let issued = doctor
        .ok(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Admin", 14),
        )
        .await;
    assert_eq!(
        issued["receipt"]["outcome"]["result"], "applied",
        "{issued}"
    );
    let id: PrescriptionId = serde_json::from_value(issued["id"].clone()).unwrap();

    // 6. Rotation: the old key's next signature is refused, the doctor keeps working.
    let old_key = t.node.accounts.signing_key("dr.grace").unwrap();
    let rotated = admin
        .ok("/v1/admin/staff/dr.grace/rotate-key", &json!({}))
        .await;
    assert_eq!(rotated["old_key"], old_key.public().to_hex());
    assert_ne!(rotated["new_key"], rotated["old_key"]);
    assert_eq!(
        rotated["account"]["past_keys"][0]["key"],
        old_key.public().to_hex()
    );
    assert_eq!(rotated["account"]["chain_status"], "active");
    let stale =
        rxchain::txbuild::cancel(&t.demo.genesis, &old_key, id, CancelReason::PrescriberError);
    match t.client.submit(&stale).await {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (403, "signer_revoked"))
        }
        other => panic!("the old key's signature must be refused: {other:?}"),
    }
    let old_record = t.node.chain.staff(&old_key.public()).unwrap().unwrap();
    assert!(old_record.revoked.is_some());
    assert_eq!(old_record.name.as_str(), "Dr Grace Hopper");
    let again = doctor
        .ok(
            "/v1/staff/prescriptions",
            &issue_body("Synthetic Patient Admin 2", 14),
        )
        .await;
    assert_eq!(again["receipt"]["outcome"]["result"], "applied", "{again}");
    let (s, _, mine) = doctor.get("/v1/staff/prescriptions").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        mine.as_array().unwrap().len(),
        2,
        "both prescriptions stay the doctor's: {mine}"
    );

    // 7. Another organisation's admin reaches none of it; a doctor is no admin.
    bootstrap(t.dir.path(), &base, "hosp-river", "admin.river", ADMIN_PW).await;
    let river = sign_in(&base, "admin.river", ADMIN_PW).await;
    for verb in ["disable", "enable", "rotate-key", "revoke"] {
        let got = river
            .post(&format!("/v1/admin/staff/dr.grace/{verb}"), &json!({}))
            .await;
        assert_error(&got, 403, "wrong_org");
    }
    assert_error(
        &river
            .post(
                "/v1/admin/staff/dr.grace/reset-password",
                &json!({"password": INITIAL_PW}),
            )
            .await,
        403,
        "wrong_org",
    );
    let (_, _, theirs) = river.get("/v1/admin/staff").await;
    assert!(
        entry(&theirs, "dr.grace").is_none() && entry(&theirs, "admin.north").is_none(),
        "{theirs}"
    );
    assert!(entry(&theirs, "dr.ben").is_some(), "{theirs}");
    assert_error(&doctor.get("/v1/admin/staff").await, 403, "wrong_role");

    // 8. Disabling ends the doctor's open session; enabling lets them back in.
    let disabled = admin
        .ok("/v1/admin/staff/dr.grace/disable", &json!({}))
        .await;
    assert_eq!(disabled["sessions_ended"], 1);
    assert_eq!(disabled["change"]["by_user"], "admin.north");
    assert_error(
        &doctor.get("/v1/staff/prescriptions").await,
        401,
        "no_session",
    );
    assert_error(
        &sign_in_raw(&base, "dr.grace", DOCTOR_PW).await,
        403,
        "account_disabled",
    );
    admin
        .ok("/v1/admin/staff/dr.grace/enable", &json!({}))
        .await;

    // 9. A reset forces a change again and ends sessions.
    let doctor = sign_in(&base, "dr.grace", DOCTOR_PW).await;
    let reset = admin
        .ok(
            "/v1/admin/staff/dr.grace/reset-password",
            &json!({"password": INITIAL_PW}),
        )
        .await;
    assert_eq!(reset["must_change_password"], true);
    assert_error(&doctor.get("/v1/session").await, 401, "no_session");
    let doctor = sign_in(&base, "dr.grace", INITIAL_PW).await;
    assert_eq!(doctor.session["must_change_password"], true);

    // 10. Revocation is permanent and ends sessions.
    let revoked = admin
        .ok(
            "/v1/admin/staff/dr.grace/revoke",
            &json!({"reason": "left_organisation"}),
        )
        .await;
    assert_eq!(revoked["chain_status"], "revoked", "{revoked}");
    assert!(revoked["revoked"]["at"].is_u64(), "{revoked}");
    assert_error(&doctor.get("/v1/session").await, 401, "no_session");
    assert_error(
        &admin
            .post("/v1/admin/staff/dr.grace/enable", &json!({}))
            .await,
        409,
        "account_revoked",
    );
    // Revoking again is a no-op that answers the standing revocation.
    let again = admin
        .ok("/v1/admin/staff/dr.grace/revoke", &json!({}))
        .await;
    assert_eq!(again["revoked"], revoked["revoked"]);
    let (_, _, list) = admin.get("/v1/admin/staff").await;
    let grace = entry(&list, "dr.grace").unwrap();
    let actions: Vec<_> = grace["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "created",
            "password_changed",
            "key_rotated",
            "disabled",
            "enabled",
            "password_reset",
            "revoked"
        ]
    );
    assert!(grace["last_sign_in"].is_u64(), "{grace}");
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_adds_lists_and_rotates_as_a_signed_in_admin() {
    let t = staff_client::start().await;
    let base = t.base.clone();
    bootstrap(
        t.dir.path(),
        &base,
        "pharm-central",
        "admin.central",
        ADMIN_PW,
    )
    .await;
    // A second bootstrap of the same username is refused and changes nothing.
    let key = t.dir.path().join("pharm-central-admin.key");
    let pw = t.dir.path().join("again.pw");
    std::fs::write(&pw, ADMIN_PW).unwrap();
    let err = rxchain::commands::admin::run(AdminArgs {
        action: AdminAction::Bootstrap(BootstrapArgs {
            node: base.clone(),
            key: key.clone(),
            username: "admin.central".into(),
            name: "Admin again".into(),
            licence: "ADMIN-REF-2".into(),
            password_file: Some(pw.clone()),
            trust: Default::default(),
            json: false,
        }),
    })
    .await
    .expect_err("an existing username");
    assert!(err.to_string().contains("account_exists"), "{err}");

    // The CLI signs in from the environment (each test runs in its own process).
    std::env::set_var("RXCHAIN_USERNAME", "admin.central");
    std::env::set_var("RXCHAIN_PASSWORD", ADMIN_PW);
    let initial = t.dir.path().join("initial.pw");
    std::fs::write(&initial, INITIAL_PW).unwrap();
    let staff = |action: StaffAction| StaffArgs {
        node: base.clone(),
        key: None,
        trust: Default::default(),
        json: true,
        action,
    };
    rxchain::commands::staff::run(staff(StaffAction::Add {
        account: "ph.new".into(),
        name: "New Pharmacist".into(),
        role: "pharmacist".into(),
        licence: "PH-TEST-7".into(),
        password_file: Some(initial.clone()),
    }))
    .await
    .expect("rxchain staff add");
    let acc = t.node.accounts.account("ph.new").unwrap().expect("created");
    assert!(acc.must_change_password);
    let first_key = acc.public_key;
    assert!(t
        .node
        .chain
        .staff(&first_key)
        .unwrap()
        .is_some_and(|r| r.revoked.is_none()));
    rxchain::commands::staff::run(staff(StaffAction::RotateKey {
        account: "ph.new".into(),
    }))
    .await
    .expect("rxchain staff rotate-key");
    let acc = t.node.accounts.account("ph.new").unwrap().unwrap();
    assert_ne!(acc.public_key, first_key);
    assert!(t
        .node
        .chain
        .staff(&first_key)
        .unwrap()
        .unwrap()
        .revoked
        .is_some());
    rxchain::commands::staff::run(staff(StaffAction::List))
        .await
        .expect("rxchain staff list");
    // An account of another organisation is refused with the node's code.
    let err = rxchain::commands::staff::run(staff(StaffAction::Disable {
        username: "ph.dan".into(),
    }))
    .await
    .expect_err("another organisation's account");
    assert!(err.to_string().contains("wrong_org"), "{err}");
    // A wrong password is the node's refusal too.
    std::env::set_var("RXCHAIN_PASSWORD", "wrong password here");
    let err = rxchain::commands::staff::run(staff(StaffAction::List))
        .await
        .expect_err("a wrong password");
    assert!(err.to_string().contains("bad_credentials"), "{err}");
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prescriber_with_a_second_factor_signs_in_with_a_fresh_code_only() {
    let t = staff_client::start().await;
    let base = t.base.clone();
    bootstrap(t.dir.path(), &base, "hosp-north", "admin.north", ADMIN_PW).await;
    let admin = sign_in(&base, "admin.north", ADMIN_PW).await;
    let enrolled = admin
        .ok("/v1/admin/staff/dr.ada/second-factor", &json!({}))
        .await;
    let uri = enrolled["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains("digits=6&period=30"),
        "{uri}"
    );
    let secret = data_encoding::BASE32_NOPAD
        .decode(enrolled["secret_base32"].as_str().unwrap().as_bytes())
        .unwrap();
    let pw = rxchain::demo::DEMO_PASSWORD;
    let sign_in_otp = |otp: Option<String>| {
        let base = base.clone();
        async move {
            staff_client::send(
                reqwest::Client::new()
                    .post(format!("{base}/v1/session"))
                    .json(&json!({"username": "dr.ada", "password": pw, "otp": otp})),
            )
            .await
        }
    };
    // The password alone, then a wrong code, are refused.
    assert_error(&sign_in_otp(None).await, 403, "second_factor_required");
    let now = rxchain::clock::now_ms();
    let code = rxchain::accounts::totp::code_at(&secret, rxchain::accounts::totp::step_of(now));
    let wrong = format!("{:06}", (code + 1) % 1_000_000);
    assert_error(&sign_in_otp(Some(wrong)).await, 401, "bad_credentials");
    // The current code works once; the same code again is a replay.
    let right = format!("{code:06}");
    assert_eq!(sign_in_otp(Some(right.clone())).await.0, StatusCode::OK);
    assert_error(&sign_in_otp(Some(right)).await, 401, "bad_credentials");
    // Another organisation's admin cannot enrol it.
    assert_error(
        &admin
            .post("/v1/admin/staff/dr.ben/second-factor", &json!({}))
            .await,
        403,
        "wrong_org",
    );
    t.node.stop().await;
}
