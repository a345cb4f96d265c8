//! The patient's sharing and "who looked" screens in real headless
//! Chromium: an insurer's reviewer asks for access over the API; the
//! patient opens the prescription page, sees the request naming the
//! reviewer, allows it; the reviewer reads the prescription and finds it on
//! the insurer's review page; the patient's "who looked" list names the
//! reviewer and the insurer; the patient stops sharing, and the reviewer is
//! refused; the patient shares with a hospital from the form. The patient
//! page is also checked at phone width for horizontal overflow.
//!
//! A second test opens the regulator's Access view: one staff member opens
//! many patients' records (set up over the API), the view flags them, their
//! reads are listed by name, the node's access log verifies against its
//! anchor, and axe finds no accessibility violation.
//!
//! Like `tests/browser.rs`, it drives `/usr/bin/chromium` through
//! `/usr/bin/chromedriver` (`RXCHAIN_CHROMIUM`, `RXCHAIN_CHROMEDRIVER`
//! name others), fails saying how to install them when they are missing,
//! and passes without starting anything when `RXCHAIN_SKIP_BROWSER=1`.
//! Screenshots go to `target/browser-patient-artifacts/` (the regulator's
//! to `target/browser-regulator-artifacts/`).

mod common;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use common::browser::{artifacts_dir, axe_check, browser_tools, Browser, ChromeDriver};
use rxchain::demo::{Demo, DEMO_PASSWORD};
use rxchain::node::RunningNode;
use rxchain::test_support::{demo_settings, register_demo_staff, wait_for_leader};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_shares_sees_who_looked_and_revokes_in_chromium() -> anyhow::Result<()> {
    let Some((chromium, chromedriver)) = browser_tools("the patient browser test")? else {
        return Ok(());
    };
    let artifacts = artifacts_dir("browser-patient-artifacts")?;
    let dir = tempfile::tempdir()?;
    let node = start_node(dir.path()).await?;
    let base = format!("http://{}", node.addr);
    let driver = ChromeDriver::spawn(&chromedriver, chromium, &artifacts)?;
    driver.wait_ready().await?;
    let patient = Browser::open(&driver, &base).await?;
    let insurer = Browser::open(&driver, &base).await?;
    let result = story(&base, &patient, &insurer, &artifacts).await;
    if result.is_err() {
        for (b, role) in [(&patient, "patient"), (&insurer, "insurer")] {
            let _ = b
                .driver
                .screenshot(&artifacts.join(format!("failure-{role}.png")))
                .await;
            let _ = std::fs::write(
                artifacts.join(format!("failure-{role}.html")),
                b.driver.source().await.unwrap_or_default(),
            );
        }
    }
    let mut js_errors = Vec::new();
    for (b, role) in [(&patient, "patient"), (&insurer, "insurer")] {
        js_errors.extend(b.console_errors(&artifacts, role).await?);
    }
    let _ = patient.driver.clone().quit().await;
    let _ = insurer.driver.clone().quit().await;
    node.stop().await;
    result?;
    if !js_errors.is_empty() {
        bail!("the pages raised JavaScript errors: {js_errors:#?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regulator_sees_who_read_and_an_unusual_volume_in_chromium() -> anyhow::Result<()> {
    let Some((chromium, chromedriver)) = browser_tools("the regulator's access browser test")?
    else {
        return Ok(());
    };
    let artifacts = artifacts_dir("browser-regulator-artifacts")?;
    let dir = tempfile::tempdir()?;
    let node = start_node(dir.path()).await?;
    let base = format!("http://{}", node.addr);
    let driver = ChromeDriver::spawn(&chromedriver, chromium, &artifacts)?;
    driver.wait_ready().await?;
    let regulator = Browser::open(&driver, &base).await?;
    let result = access_story(&base, &regulator, &artifacts).await;
    if result.is_err() {
        let _ = regulator
            .driver
            .screenshot(&artifacts.join("failure-regulator.png"))
            .await;
        let _ = std::fs::write(
            artifacts.join("failure-regulator.html"),
            regulator.driver.source().await.unwrap_or_default(),
        );
    }
    let js_errors = regulator.console_errors(&artifacts, "regulator").await?;
    let _ = regulator.driver.clone().quit().await;
    node.stop().await;
    result?;
    if !js_errors.is_empty() {
        bail!("the page raised JavaScript errors: {js_errors:#?}");
    }
    Ok(())
}

async fn access_story(base: &str, regulator: &Browser, artifacts: &Path) -> anyhow::Result<()> {
    // 1. Over the API: the doctor issues three prescriptions and opens her
    //    list, which shows the three patients' names; the pharmacist's list
    //    opens one hand-over.
    let ada = Api::sign_in(base, "dr.ada").await?;
    let cara = Api::sign_in(base, "ph.cara").await?;
    let mut payload = String::new();
    for n in 0..3 {
        let (s, issued) = ada
            .post(
                "/v1/staff/prescriptions",
                &json!({
                    "items": [{"atc": "J01CA04", "name": "Amoxicillin", "strength": "500 mg", "form": "capsule", "quantity": 20, "unit": "capsules", "controlled": false}],
                    "dosage": ["one capsule three times a day"],
                    "repeats": 0,
                    "valid_days": 14,
                    "patient": {"name": format!("Synthetic Patient Access {n}"), "birth_date": "1975-03-04", "identifier": format!("SYNTH-ACCESS-{n}")},
                }),
            )
            .await?;
        if s != 200 {
            bail!("issue: {s} {issued}");
        }
        payload = issued["payload"].as_str().context("a payload")?.to_string();
    }
    let (s, list) = ada.get("/v1/staff/prescriptions").await?;
    if s != 200 {
        bail!("the doctor's list: {s} {list}");
    }
    let r = ada
        .http
        .post(format!("{base}/v1/patient/assign"))
        .json(&json!({"payload": payload, "mode": "pickup", "pharmacy": "pharm-central"}))
        .send()
        .await?;
    if r.status() != 200 {
        bail!("assign: {} {}", r.status(), r.text().await?);
    }
    let (s, plist) = cara.get("/v1/staff/pharmacy/prescriptions").await?;
    if s != 200 {
        bail!("the pharmacy's list: {s} {plist}");
    }

    // 2. The regulator opens the Access view.
    regulator.goto("/regulator/#access").await?;
    regulator.sign_in("reg.gail", DEMO_PASSWORD).await?;
    regulator.find("#access-view #access-volumes-card").await?;
    regulator
        .wait_text("#access-scope", "reads this node served")
        .await?;
    // With the default threshold of 50, nobody stands out.
    regulator
        .wait_text("#volumes-summary", "Nobody opened 50 or more")
        .await?;

    // 3. At three different prescriptions, the doctor is flagged and the
    //    pharmacist is not.
    regulator.type_into("#volume-threshold", "3").await?;
    regulator.click("#volumes-submit").await?;
    regulator
        .find("#access-volumes-table tr[data-username='dr.ada'][data-flagged='true']")
        .await?;
    regulator
        .find("#access-volumes-table tr[data-username='ph.cara'][data-flagged='false']")
        .await?;
    regulator.wait_text("#volumes-summary", "1 flagged").await?;
    regulator
        .wait_text(
            "#access-volumes-table tr[data-username='dr.ada']",
            "Unusual volume",
        )
        .await?;
    regulator
        .wait_text(
            "#access-volumes-table tr[data-username='dr.ada']",
            "Northgate General Hospital",
        )
        .await?;
    regulator.shot(artifacts, "07-regulator-volumes").await?;

    // 4. Her reads, by name, from the flagged row.
    regulator
        .click("#access-volumes-table tr[data-username='dr.ada'] button")
        .await?;
    regulator
        .wait_text("#access-summary", "3 different prescriptions")
        .await?;
    regulator
        .wait_text(
            "#access-reads-table",
            "Dr Ada Example, Northgate General Hospital (synthetic)",
        )
        .await?;
    regulator
        .wait_text("#access-reads-table", "saw the patient's name in a list")
        .await?;
    let rows = regulator
        .js(
            "return document.querySelectorAll('#access-reads-table tbody tr[data-username=\"dr.ada\"]').length;",
            vec![],
        )
        .await?;
    if rows != json!(3) {
        bail!("three reads by dr.ada are listed, not {rows}");
    }
    // Another name typed by hand: the pharmacist's one hand-over.
    regulator.type_into("#access-staff", "ph.cara").await?;
    regulator.click("#access-staff-submit").await?;
    regulator
        .wait_text(
            "#access-reads-table",
            "Cara Placeholder, Central Pharmacy (demo)",
        )
        .await?;
    regulator
        .wait_text("#access-reads-table", "opened the pharmacy hand-over")
        .await?;

    // 5. The log verifies against its anchor on the chain.
    regulator.click("#access-verify").await?;
    regulator
        .wait_text("#access-verify-status", "access log verifies")
        .await?;
    regulator.shot(artifacts, "08-regulator-access").await?;
    axe_check(&regulator.driver, "the regulator's Access view").await?;

    // 6. The other view is one link away, and back.
    regulator.click("#nav-oversight").await?;
    regulator.find("#oversight-view #report-form").await?;
    regulator.click("#nav-access").await?;
    regulator.find("#access-view #access-log-card").await?;
    // At phone width, nothing overflows.
    regulator
        .phone_check("/regulator/#access", "#access-volumes-table", artifacts)
        .await?;
    Ok(())
}

/// A signed-in API session: the cookie and the CSRF token.
struct Api {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl Api {
    async fn sign_in(base: &str, username: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{base}/v1/session"))
            .json(&json!({"username": username, "password": DEMO_PASSWORD}))
            .send()
            .await?;
        let cookie = r
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("rxsession="))
            .and_then(|v| v.split(';').next())
            .context("a session cookie")?
            .to_string();
        let v: Value = r.json().await?;
        let csrf = v["csrf"].as_str().context("a CSRF token")?.to_string();
        Ok(Api {
            http,
            base: base.to_string(),
            cookie,
            csrf,
        })
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(body)
            .send()
            .await?;
        Ok((r.status().as_u16(), r.json().await?))
    }

    async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, &self.cookie)
            .send()
            .await?;
        Ok((r.status().as_u16(), r.json().await?))
    }
}

async fn story(
    base: &str,
    patient: &Browser,
    insurer: &Browser,
    artifacts: &Path,
) -> anyhow::Result<()> {
    // 1. A doctor issues (API); the insurer's reviewer asks for access.
    let ada = Api::sign_in(base, "dr.ada").await?;
    let ivy = Api::sign_in(base, "ins.ivy").await?;
    let (s, issued) = ada
        .post(
            "/v1/staff/prescriptions",
            &json!({
                "items": [{"atc": "J01CA04", "name": "Amoxicillin", "strength": "500 mg", "form": "capsule", "quantity": 20, "unit": "capsules", "controlled": false}],
                "dosage": ["one capsule three times a day"],
                "repeats": 0,
                "valid_days": 14,
                "patient": {"name": "Synthetic Patient Sharing Browser", "birth_date": "1975-03-04", "identifier": "SYNTH-SHARE-1"},
            }),
        )
        .await?;
    if s != 200 {
        bail!("issue: {s} {issued}");
    }
    let id = issued["id"].as_str().context("an id")?.to_string();
    let link = issued["patient_link"]
        .as_str()
        .context("a link")?
        .to_string();
    let (s, asked) = ivy
        .post("/v1/consent/requests", &json!({"id": id, "days": 30}))
        .await?;
    if s != 200 {
        bail!("request: {s} {asked}");
    }

    // 2. The patient opens the page: the request names the reviewer.
    patient.goto(&link).await?;
    patient
        .wait_text("#patient-name", "Synthetic Patient Sharing Browser")
        .await?;
    patient.find("#sharing-card").await?;
    patient
        .wait_text("#sharing-unread", "cannot be unread")
        .await?;
    patient.wait_text("#requests", "Ivy Reviewer").await?;
    patient
        .wait_text("#requests", "Civic Health Insurance")
        .await?;
    patient.shot(artifacts, "01-patient-sees-request").await?;

    // 3. The patient allows it: the grant is active.
    patient.click("#approve-ins-civic").await?;
    patient.wait_text("#sharing-status", "may now read").await?;
    patient
        .find("#grants li[data-org='ins-civic'][data-state='active']")
        .await?;
    patient
        .find("#requests li[data-org='ins-civic'][data-status='approved']")
        .await?;
    patient.shot(artifacts, "02-patient-allowed").await?;

    // 4. The reviewer finds it on the insurer page and opens it.
    insurer.goto("/insurer/").await?;
    insurer.sign_in("ins.ivy", DEMO_PASSWORD).await?;
    insurer
        .find(&format!("#claims tr[data-id='{id}'][data-state='active']"))
        .await?;
    insurer.wait_text("#claims", "J01CA04").await?;
    insurer
        .click(&format!("#claims tr[data-id='{id}'] button"))
        .await?;
    insurer
        .wait_text("#shared-patient", "Synthetic Patient Sharing Browser")
        .await?;
    insurer.shot(artifacts, "03-insurer-reads").await?;

    // 5. The patient's "who looked" names the reviewer and the insurer
    //    once the page is reloaded.
    patient.driver.refresh().await?;
    patient
        .wait_text("#who-looked", "Ivy Reviewer, Civic Health Insurance (demo)")
        .await?;
    patient
        .wait_text("#who-looked", "read what you shared")
        .await?;
    // Every node was asked (this consortium has one), and says so.
    patient.wait_text("#who-looked", "(node 1)").await?;
    patient
        .wait_text(
            "#who-looked-nodes li[data-node='1'][data-answered='true']",
            "Node 1 of Northgate General Hospital (synthetic) answered",
        )
        .await?;
    patient
        .js(
            "document.querySelector('#looked-card').scrollIntoView(); return true;",
            vec![],
        )
        .await?;
    patient.shot(artifacts, "04-patient-who-looked").await?;

    // 6. The patient stops sharing; the reviewer is refused.
    patient.click("#revoke-ins-civic").await?;
    patient
        .wait_text("#sharing-status", "can no longer read")
        .await?;
    patient
        .find("#grants li[data-org='ins-civic'][data-state='revoked']")
        .await?;
    let (s, refused) = ivy.get(&format!("/v1/shared/{id}")).await?;
    if (s, refused["code"].as_str()) != (409, Some("grant_revoked")) {
        bail!("the reviewer should be refused after the revocation: {s} {refused}");
    }
    patient.shot(artifacts, "05-patient-revoked").await?;

    // 7. The patient shares with another hospital from the form.
    patient
        .js(
            "const s = document.querySelector('#share-org'); s.value = 'hosp-river'; \
             s.dispatchEvent(new Event('change', {bubbles: true})); return true;",
            vec![],
        )
        .await?;
    patient.type_into("#share-days", "10").await?;
    patient.click("#share").await?;
    patient
        .wait_text("#sharing-status", "Riverside Internet Hospital")
        .await?;
    patient
        .find("#grants li[data-org='hosp-river'][data-state='active']")
        .await?;
    // A period beyond the maximum is refused on the page, before the chain.
    patient.type_into("#share-days", "9999").await?;
    patient.click("#share").await?;
    patient
        .wait_text("#sharing-status", "from 1 to 365")
        .await?;
    patient
        .shot(artifacts, "06-patient-shared-with-hospital")
        .await?;
    patient
        .phone_check(&link, "#sharing-card", artifacts)
        .await?;
    Ok(())
}

/// A one-node demo consortium serving `web/` with the demo staff and
/// their accounts.
async fn start_node(dir: &Path) -> anyhow::Result<RunningNode> {
    let demo = Demo::load()?;
    demo.write_files(dir, &[1])?;
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web");
    let node =
        rxchain::node::start(demo_settings(dir, 1, "127.0.0.1:0".parse()?, Some(web))).await?;
    wait_for_leader(&node).await?;
    let base = format!("http://{}", node.addr);
    register_demo_staff(&demo, &rxchain::client::Client::new(base.clone())).await?;
    rxchain::test_support::create_demo_accounts(&demo, &node.accounts).await?;
    Ok(node)
}
