//! A new hospital admin in real headless Chromium: the admin (bootstrapped
//! with `rxchain admin bootstrap` from the hospital's admin key) enrols a
//! doctor on `/admin/`; the doctor signs in on `/doctor/`, is made to
//! change the initial password, and issues a prescription; the admin
//! disables the doctor, and the doctor's open page stops working: it falls
//! back to the sign-in form saying the session ended. Before that, the
//! doctor's e-mail button mails the code once (the demo's file transport;
//! its inline QR is decoded), the patient turns status mail off on their
//! page, and the admin sees the message on `/admin/outbox/`. The admin page is
//! also checked at phone width (nothing cut off, see
//! `common::browser::PHONE_LAYOUT_JS`) and with axe-core.
//!
//! Like `tests/browser.rs`, it drives `/usr/bin/chromium` through
//! `/usr/bin/chromedriver` (`RXCHAIN_CHROMIUM`, `RXCHAIN_CHROMEDRIVER`
//! name others), fails saying how to install them when they are missing,
//! and passes without starting anything when `RXCHAIN_SKIP_BROWSER=1`.
//! Screenshots go to `target/browser-admin-artifacts/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rxchain::cli::{AdminAction, AdminArgs, BootstrapArgs};
use rxchain::demo::{admin_key, Demo};
use rxchain::node::RunningNode;
use rxchain::test_support::{demo_settings, register_demo_staff, wait_for_leader};
use serde_json::{json, Value};
use thirtyfour::prelude::*;
use thirtyfour::LoggingPrefsLogLevel;

const CHROMIUM: (&str, &str) = ("RXCHAIN_CHROMIUM", "/usr/bin/chromium");
const CHROMEDRIVER: (&str, &str) = ("RXCHAIN_CHROMEDRIVER", "/usr/bin/chromedriver");
const SKIP_VAR: &str = "RXCHAIN_SKIP_BROWSER";
/// How long any single wait may take; the doctor's page polls every 4 s.
const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

const ADMIN_PW: &str = "north admin violet harbour";
const INITIAL_PW: &str = "initial tram ninety lamps";
const DOCTOR_PW: &str = "doctor chose quiet maple river";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_admin_enrols_a_doctor_who_is_then_disabled_in_chromium() -> anyhow::Result<()> {
    if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED the admin browser test: {SKIP_VAR}=1 is set");
        return Ok(());
    }
    let chromium = tool(CHROMIUM);
    let chromedriver = tool(CHROMEDRIVER);
    if !chromium.exists() || !chromedriver.exists() {
        bail!(
            "the browser test needs {} and {}; install them with \
             scripts/install-test-deps.sh (apt-get install chromium chromium-driver), \
             point {} and {} at other binaries, or opt out explicitly with {SKIP_VAR}=1",
            chromium.display(),
            chromedriver.display(),
            CHROMIUM.0,
            CHROMEDRIVER.0,
        );
    }
    let artifacts = artifacts_dir()?;
    let dir = tempfile::tempdir()?;
    let node = start_node(dir.path()).await?;
    let base = format!("http://{}", node.addr);
    let driver = ChromeDriver::spawn(&chromedriver, chromium, &artifacts)?;
    driver.wait_ready().await?;
    let admin = Browser::open(&driver, &base).await?;
    let doctor = Browser::open(&driver, &base).await?;
    let result = story(&admin, &doctor, &artifacts, &dir.path().join("node1")).await;
    if result.is_err() {
        for (b, role) in [(&admin, "admin"), (&doctor, "doctor")] {
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
    for (b, role) in [(&admin, "admin"), (&doctor, "doctor")] {
        js_errors.extend(b.console_errors(&artifacts, role).await?);
    }
    let _ = admin.driver.clone().quit().await;
    let _ = doctor.driver.clone().quit().await;
    node.stop().await;
    result?;
    if !js_errors.is_empty() {
        bail!("the pages raised JavaScript errors: {js_errors:#?}");
    }
    Ok(())
}

async fn story(
    admin: &Browser,
    doctor: &Browser,
    artifacts: &Path,
    data_dir: &Path,
) -> anyhow::Result<()> {
    // 1. The admin signs in on /admin/ and enrols Dr Grace.
    admin.goto("/admin/").await?;
    admin.sign_in("admin.north", ADMIN_PW).await?;
    admin.find("#add-form").await?;
    admin.type_into("#new-username", "dr.grace").await?;
    admin.type_into("#new-name", "Dr Grace Hopper").await?;
    admin
        .js(
            "const s = document.querySelector('#new-role'); s.value = 'practitioner'; \
             s.dispatchEvent(new Event('change', {bubbles: true})); return true;",
            vec![],
        )
        .await?;
    admin.type_into("#new-licence", "MD-BROWSER-1").await?;
    admin.type_into("#new-password-initial", INITIAL_PW).await?;
    admin.click("#add-staff").await?;
    admin.wait_text("#add-status", "enrolled").await?;
    admin.wait_text("#staff-list", "dr.grace").await?;
    admin.wait_text("#staff-list", "initial password").await?;
    admin.shot(artifacts, "01-admin-enrolled").await?;
    common::browser::axe_check(&admin.driver, "the admin page").await?;
    admin
        .phone_check("/admin/", "#staff-list table", artifacts)
        .await?;

    // 2. The doctor signs in with the initial password and must change it.
    doctor.goto("/doctor/").await?;
    doctor.type_into("#username", "dr.grace").await?;
    doctor.type_into("#password", INITIAL_PW).await?;
    doctor.click("#sign-in").await?;
    doctor.find("#change-password-form").await?;
    doctor.type_into("#current-password", INITIAL_PW).await?;
    doctor.type_into("#new-password", "password1234").await?;
    doctor
        .type_into("#new-password-again", "password1234")
        .await?;
    doctor.click("#change-password").await?;
    doctor
        .wait_text("#change-password-form", "too common")
        .await?;
    doctor.type_into("#new-password", DOCTOR_PW).await?;
    doctor.type_into("#new-password-again", DOCTOR_PW).await?;
    doctor.shot(artifacts, "02-doctor-changes-password").await?;
    doctor.click("#change-password").await?;
    doctor.find("#issue-form").await?;

    // 3. The doctor issues a prescription.
    doctor.type_into("#item-0-drug", "amox").await?;
    doctor.find("#item-0-list li[role=option]").await?;
    let drug = doctor.driver.find(By::Css("#item-0-drug")).await?;
    drug.send_keys(Key::Down).await?;
    drug.send_keys(Key::Enter).await?;
    doctor.wait_text("#item-0-drug-hint", "ATC").await?;
    doctor.type_into("#item-0-quantity", "20").await?;
    doctor
        .type_into("#item-0-dosage", "One capsule three times a day for 7 days")
        .await?;
    doctor
        .type_into("#patient-name", "Synthetic Patient Admin Browser")
        .await?;
    doctor
        .js(
            "const e = document.querySelector('#patient-birth'); e.value = '1980-02-01'; \
             e.dispatchEvent(new Event('input', {bubbles: true})); return true;",
            vec![],
        )
        .await?;
    doctor.type_into("#patient-id", "SYNTH-ADMIN-1").await?;
    doctor
        .type_into("#patient-email", "grace.patient@example.invalid")
        .await?;
    doctor.click("#issue").await?;
    let short_id = doctor.find("#short-id").await?.text().await?;
    doctor.wait_text("#mine-list", &short_id).await?;
    doctor.shot(artifacts, "03-doctor-issued").await?;

    // 3b. The code was not ticked for e-mail at issue: the doctor's e-mail
    // button mails it, once; a second press says so. The demo node's file
    // transport writes the message, whose inline QR is the code.
    doctor.click("#email-code-later").await?;
    doctor
        .wait_text("#email-code-status", "will be e-mailed")
        .await?;
    doctor.click("#email-code-later").await?;
    doctor
        .wait_text("#email-code-status", "already e-mailed")
        .await?;
    let link = doctor
        .find("#patient-link")
        .await?
        .prop("value")
        .await?
        .context("the patient link")?;
    let payload = link
        .split_once('#')
        .map(|(_, p)| p.to_string())
        .context("the link carries the code after #")?;
    let eml = wait_for_eml(&data_dir.join("outbox")).await?;
    use mail_parser::MimeHeaders;
    let msg = mail_parser::MessageParser::default()
        .parse(&eml)
        .context("a MIME message")?;
    let png = msg
        .attachments()
        .find(|a| a.content_id() == Some("qr"))
        .map(|a| a.contents().to_vec())
        .context("the message holds the QR as an inline image")?;
    let decoded = tokio::task::spawn_blocking(move || {
        rxchain::qr::decode_image(&png, &rxchain::qr::DecodeLimits::default())
    })
    .await??;
    if decoded != payload {
        bail!("the mailed QR is {decoded:?}, not the prescription's code");
    }

    // 3c. The patient turns status mail off on their page.
    admin.goto(&link.replacen(&admin.base, "", 1)).await?;
    admin.click("#email-status").await?;
    admin.wait_text("#email-status-note", "off").await?;
    admin.shot(artifacts, "03c-patient-mail-off").await?;

    // 3d. The hospital's staff admin sees the message on the outbox page,
    // its address by domain only.
    admin.goto("/admin/outbox/").await?;
    admin.wait_text("#outbox", &short_id).await?;
    let row = admin.wait_text("#outbox tbody tr", "sent").await?;
    if !row.contains("qr") || !row.contains("example.invalid") || row.contains("grace.patient") {
        bail!("the outbox row should show the sent QR mail by domain only: {row:?}");
    }
    admin.shot(artifacts, "03d-admin-outbox").await?;

    // 4. The admin disables the doctor; the doctor's open page stops working.
    admin.goto("/admin/").await?;
    admin
        .click("button[data-user='dr.grace'][data-action='disable']")
        .await?;
    admin.wait_text("#staff-list", "disabled").await?;
    admin.shot(artifacts, "04-admin-disabled").await?;
    doctor
        .wait_text("#session-ended", "session has ended")
        .await
        .context("the doctor's open page should notice that its session ended")?;
    doctor.find("#signin-form").await?;
    if doctor
        .js("return !!document.querySelector('#issue-form');", vec![])
        .await?
        == true
    {
        bail!("the issue form is still on the disabled doctor's page");
    }
    doctor.shot(artifacts, "05-doctor-session-ended").await?;
    // Signing in again is refused with the reason.
    doctor.type_into("#username", "dr.grace").await?;
    doctor.type_into("#password", DOCTOR_PW).await?;
    doctor.click("#sign-in").await?;
    doctor.wait_text("#signin-form", "disabled").await?;
    Ok(())
}

/// The first `.eml` file the file transport writes under `dir`.
async fn wait_for_eml(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut emls: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect();
            emls.sort();
            if let [one] = emls.as_slice() {
                return Ok(std::fs::read(one)?);
            }
            if emls.len() > 1 {
                bail!("one message expected under {}, found {emls:?}", dir.display());
            }
        }
        if Instant::now() > deadline {
            bail!("no message was written under {}", dir.display());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A one-node demo consortium serving `web/`, its demo staff registered,
/// and Hospital North's first admin bootstrapped.
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
    let key = dir.join("hosp-north-admin.key");
    rxchain::keys::write_new(&key, &admin_key("hosp-north"))?;
    let pw = dir.join("admin.pw");
    std::fs::write(&pw, ADMIN_PW)?;
    rxchain::commands::admin::run(AdminArgs {
        action: AdminAction::Bootstrap(BootstrapArgs {
            node: base,
            key,
            username: "admin.north".into(),
            name: "North Staff Admin".into(),
            licence: "ADMIN-NORTH-1".into(),
            password_file: Some(pw),
            trust: Default::default(),
            json: false,
        }),
    })
    .await?;
    Ok(node)
}

fn tool((var, default): (&str, &str)) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// `chromedriver` on a free local port; killed when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
    chromium: PathBuf,
}

impl ChromeDriver {
    fn spawn(chromedriver: &Path, chromium: PathBuf, artifacts: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                artifacts.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        Ok(ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
        })
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(r) = http.get(format!("{}/status", self.url)).send().await {
                let v: Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not become ready within {WAIT:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One person's browser: a fresh Chromium profile and WebDriver session.
struct Browser {
    driver: WebDriver,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(driver: &ChromeDriver, base: &str) -> anyhow::Result<Browser> {
        let profile = tempfile::tempdir()?;
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(&driver.chromium.to_string_lossy())?;
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ] {
            caps.add_arg(arg)?;
        }
        caps.add_arg(&format!("--user-data-dir={}", profile.path().display()))?;
        caps.set_browser_log_level(LoggingPrefsLogLevel::All)?;
        let driver = WebDriver::new(driver.url.clone(), caps)
            .await
            .context("starting a Chromium session")?;
        Ok(Browser {
            driver,
            base: base.to_string(),
            _profile: profile,
        })
    }

    async fn goto(&self, path: &str) -> anyhow::Result<()> {
        self.driver.goto(format!("{}{path}", self.base)).await?;
        Ok(())
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        Ok(self.driver.execute(script, args).await?.json().clone())
    }

    async fn wait_js(&self, what: &str, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.js(script, args.clone()).await?;
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out after {WAIT:?} waiting for {what}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn find(&self, css: &str) -> anyhow::Result<WebElement> {
        self.wait_js(
            &format!("a visible {css}"),
            "const e = document.querySelector(arguments[0]); return !!(e && e.getClientRects().length);",
            vec![json!(css)],
        )
        .await?;
        Ok(self.driver.find(By::Css(css)).await?)
    }

    async fn wait_text(&self, css: &str, text: &str) -> anyhow::Result<String> {
        let v = self
            .wait_js(
                &format!("{css} to contain {text:?}"),
                "const e = document.querySelector(arguments[0]); \
                 return e && e.textContent.includes(arguments[1]) ? e.textContent : null;",
                vec![json!(css), json!(text)],
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let e = self.find(css).await?;
        e.clear().await?;
        e.send_keys(text).await?;
        Ok(())
    }

    async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.find(css).await?.click().await?;
        Ok(())
    }

    async fn sign_in(&self, username: &str, password: &str) -> anyhow::Result<()> {
        self.type_into("#username", username).await?;
        self.type_into("#password", password).await?;
        self.click("#sign-in").await?;
        self.find("#sign-out").await?;
        Ok(())
    }

    async fn shot(&self, artifacts: &Path, name: &str) -> anyhow::Result<()> {
        let path = artifacts.join(format!("{name}.png"));
        self.driver
            .screenshot(&path)
            .await
            .with_context(|| format!("saving {}", path.display()))
    }

    /// Checks `path` at phone width (390 px) with the shared layout check:
    /// no page overflow, nothing cut off, scroll hints on wide tables.
    async fn phone_check(
        &self,
        path: &str,
        ready_css: &str,
        artifacts: &Path,
    ) -> anyhow::Result<()> {
        let cdp = self.driver.cdp();
        cdp.send_raw(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
        )
        .await?;
        self.goto(path).await?;
        self.find(ready_css).await?;
        // Let layout settle after the last render.
        self.driver
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
                Vec::<Value>::new(),
            )
            .await?;
        let m = self.js(common::browser::PHONE_LAYOUT_JS, vec![]).await?;
        self.shot(artifacts, "admin-phone").await?;
        cdp.send_raw("Emulation.clearDeviceMetricsOverride", json!({}))
            .await?;
        let (scroll, inner) = (
            m["scroll"].as_i64().unwrap_or(-1),
            m["inner"].as_i64().unwrap_or(-1),
        );
        if inner != 390 {
            bail!("{path} is wider than the phone: the emulated viewport grew to {inner} px ({m})");
        }
        if scroll > 390 {
            bail!("{path} overflows horizontally at phone width: scrollWidth {scroll} > 390");
        }
        let problems = m["problems"].as_array().cloned().unwrap_or_default();
        if !problems.is_empty() {
            bail!("{path} at phone width: {problems:#?}");
        }
        Ok(())
    }

    async fn console_errors(&self, artifacts: &Path, role: &str) -> anyhow::Result<Vec<String>> {
        let log = self.driver.browser_log().await.unwrap_or_default();
        let lines: Vec<String> = log
            .iter()
            .map(|e| format!("{} {}", e.level, e.message))
            .collect();
        std::fs::write(
            artifacts.join(format!("console-{role}.log")),
            lines.join("\n"),
        )?;
        Ok(log
            .iter()
            .map(|e| e.message.clone())
            .filter(|m| {
                m.contains("Uncaught")
                    || m.contains("SyntaxError")
                    || m.contains("TypeError")
                    || m.contains("ReferenceError")
            })
            .collect())
    }
}

/// `target/browser-admin-artifacts`, emptied of old screenshots.
fn artifacts_dir() -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("browser-admin-artifacts");
    std::fs::create_dir_all(&dir)?;
    for e in std::fs::read_dir(&dir)? {
        let p = e?.path();
        if p.extension()
            .is_some_and(|x| x == "png" || x == "log" || x == "html")
        {
            std::fs::remove_file(p)?;
        }
    }
    Ok(dir)
}
