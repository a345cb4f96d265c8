//! Test helpers for the web apps' API: a demo node with the demo accounts,
//! and a staff client that signs in and carries the session cookie and
//! CSRF token by hand (so the tests see exactly what a browser would get).
#![allow(dead_code)]

use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{self, TestNode};

/// A one-node demo consortium whose staff can sign in with the demo password.
pub async fn start() -> TestNode {
    let t = common::start_demo_node().await;
    rxchain::test_support::create_demo_accounts(&t.demo, &t.node.accounts)
        .await
        .expect("demo accounts");
    t
}

/// Sends a request and reads the status, headers and JSON body (or
/// `Value::Null` for an empty body). Panics on a non-JSON error body: every
/// failure must be a JSON error.
pub async fn send(r: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, Value) {
    let resp = r.send().await.expect("the node answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, headers, body)
}

/// Asserts an error answer's status and code, and that it has a sentence.
#[track_caller]
pub fn assert_error(got: &(StatusCode, HeaderMap, Value), status: u16, code: &str) {
    assert_eq!(
        (got.0.as_u16(), got.2["code"].as_str().unwrap_or("")),
        (status, code),
        "{}",
        got.2
    );
    assert!(
        got.2["message"].as_str().is_some_and(|m| !m.is_empty()),
        "an error carries a sentence: {}",
        got.2
    );
}

/// The `rxsession` cookie's `name=value` from a sign-in answer.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("rxsession="))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

/// A signed-in staff member.
pub struct Staff {
    pub base: String,
    pub http: reqwest::Client,
    /// `rxsession=…`
    pub cookie: String,
    pub csrf: String,
    pub session: Value,
}

/// A client that gives up on a request after 60 s, so a node that never
/// answers fails the test with a message instead of hanging it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("a reqwest client")
}

/// POSTs a sign-in.
pub async fn sign_in_raw(
    base: &str,
    username: &str,
    password: &str,
) -> (StatusCode, HeaderMap, Value) {
    send(
        client()
            .post(format!("{base}/v1/session"))
            .json(&serde_json::json!({"username": username, "password": password})),
    )
    .await
}

impl Staff {
    /// Signs in with the demo password.
    pub async fn sign_in(base: &str, username: &str) -> Staff {
        let got = sign_in_raw(base, username, rxchain::demo::DEMO_PASSWORD).await;
        assert_eq!(got.0, StatusCode::OK, "{username} signs in: {}", got.2);
        let cookie = session_cookie(&got.1).expect("a session cookie");
        Staff {
            base: base.to_string(),
            http: client(),
            cookie,
            csrf: got.2["csrf"].as_str().expect("a CSRF token").to_string(),
            session: got.2,
        }
    }

    /// GET with the session cookie.
    pub async fn get(&self, path: &str) -> (StatusCode, HeaderMap, Value) {
        send(
            self.http
                .get(format!("{}{path}", self.base))
                .header(COOKIE, &self.cookie),
        )
        .await
    }

    /// GET returning the raw text (CSV).
    pub async fn get_text(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        let (s, h) = (resp.status(), resp.headers().clone());
        (s, h, resp.text().await.unwrap())
    }

    /// POST JSON with the session cookie and the CSRF token.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, HeaderMap, Value) {
        send(
            self.http
                .post(format!("{}{path}", self.base))
                .header(COOKIE, &self.cookie)
                .header("x-csrf-token", &self.csrf)
                .json(body),
        )
        .await
    }

    /// POST JSON with the session cookie but no CSRF token.
    pub async fn post_without_csrf(
        &self,
        path: &str,
        body: &Value,
    ) -> (StatusCode, HeaderMap, Value) {
        send(
            self.http
                .post(format!("{}{path}", self.base))
                .header(COOKIE, &self.cookie)
                .json(body),
        )
        .await
    }

    /// POST, expecting 200; answers the body.
    pub async fn ok(&self, path: &str, body: &Value) -> Value {
        let got = self.post(path, body).await;
        assert_eq!(got.0, StatusCode::OK, "POST {path}: {}", got.2);
        got.2
    }
}

/// An anonymous POST (the patient's calls).
pub async fn post_anon(base: &str, path: &str, body: &Value) -> (StatusCode, HeaderMap, Value) {
    send(client().post(format!("{base}{path}")).json(body)).await
}

/// The prescription form's body for two items, one of them controlled.
pub fn issue_body(patient: &str, valid_days: u32) -> Value {
    serde_json::json!({
        "items": [
            {"atc": "J01CA04", "name": "Amoxicillin", "strength": "500 mg", "form": "capsule", "quantity": 20, "unit": "capsules", "controlled": false},
            {"atc": "N02AX02", "name": "Tramadol", "strength": "50 mg", "form": "capsule", "quantity": 10, "unit": "capsules", "controlled": true}
        ],
        "dosage": ["one capsule three times a day for a week", "one capsule when needed, at most four a day"],
        "repeats": 0,
        "valid_days": valid_days,
        "patient": {"name": patient, "birth_date": "1980-05-17", "identifier": "SYNTH-FLOW-0001", "email": "synthetic@example.invalid"},
        "notes": "synthetic test notes"
    })
}
