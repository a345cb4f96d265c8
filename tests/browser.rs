//! The whole story in real headless Chromium: a doctor issues a prescription
//! on the web page, the patient opens the link and picks a pharmacy, the
//! pharmacist scans the code (an uploaded photo, then a handheld scanner
//! typing into the field), claims and dispenses, a second scan is refused
//! naming where and when it was dispensed, and the regulator sees the
//! dispense and the refused attempt. Each role page is also checked at phone
//! width for horizontal overflow.
//!
//! `chinese_story_in_headless_chromium` runs the story again with the
//! browsers in Simplified Chinese: every page (doctor, patient, pharmacist,
//! regulator, courier, staff admin, insurer, start page) must be in Chinese
//! with no English word outside data (`common::browser::no_english`, whose
//! check is first proven to catch an English sentence), axe-clean in both
//! languages, and keep its language across reloads; its screenshots go to
//! `target/browser-artifacts-zh/`.
//!
//! It drives `/usr/bin/chromium` through `/usr/bin/chromedriver` (WebDriver)
//! against a real one-node demo consortium serving `web/`
//! (`RXCHAIN_CHROMIUM` and `RXCHAIN_CHROMEDRIVER` name other binaries). Every
//! step saves a screenshot to `target/browser-artifacts/NN-step.png`; a
//! failing step saves `failure-<role>.png` and the browser's console log
//! next to them.
//!
//! Without Chromium or ChromeDriver the test fails, saying how to install
//! them (`scripts/install-test-deps.sh` does). `RXCHAIN_SKIP_BROWSER=1` opts
//! out explicitly: the test then passes without starting anything and says
//! on stderr that it was skipped and why.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use common::browser::{artifacts_dir, browser_tools, ChromeDriver, POLL, WAIT};
use rxchain::client::{Client, ClientError};
use rxchain::demo::{staff_key, Demo, DEMO_PASSWORD};
use rxchain::node::RunningNode;
use rxchain::qr::QrPayload;
use rxchain::test_support::{demo_settings, register_demo_staff, wait_for_leader};
use rxchain_contracts::tx::DispenseLine;
use rxchain_contracts::{Label, Quantity};
use serde_json::{json, Value};
use thirtyfour::prelude::*;
use thirtyfour::LoggingPrefsLogLevel;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_patient_pharmacist_regulator_in_headless_chromium() -> anyhow::Result<()> {
    let Some((chromium, chromedriver)) = browser_tools("the browser test")? else {
        return Ok(());
    };
    let started = Instant::now();
    let artifacts = artifacts_dir("browser-artifacts")?;
    let stack = Stack::start().await?;
    let driver = ChromeDriver::spawn(&chromedriver, chromium, &artifacts)?;
    driver.wait_ready().await?;
    let mut story = Story {
        stack: &stack,
        driver: &driver,
        artifacts,
        shots: 0,
        timings: Vec::new(),
        lang: "en-US",
        data: Vec::new(),
    };
    let result = story.run().await;
    for (step, took) in &story.timings {
        eprintln!("  {step:<46} {:>6.1} s", took.as_secs_f64());
    }
    eprintln!(
        "browser story took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        story.artifacts.display()
    );
    stack.node.stop().await;
    result
}

/// The whole story again with the browsers in Simplified Chinese (their
/// own language `zh-CN`, as a first visit in China would be): doctor,
/// patient, pharmacist (a bad scan, a claim, a dispense, a refused second
/// scan), regulator, courier, staff admin, insurer and the start page. On
/// every page: `<html lang>` is `zh-CN`, the page shows Chinese and no
/// English (`common::browser::no_english`, whose check is first shown to
/// catch an English sentence), axe-core finds nothing serious in Chinese
/// nor, after the switch, in English, and the language switch survives a
/// reload both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chinese_story_in_headless_chromium() -> anyhow::Result<()> {
    let Some((chromium, chromedriver)) = browser_tools("the Chinese browser test")? else {
        return Ok(());
    };
    let started = Instant::now();
    let artifacts = artifacts_dir("browser-artifacts-zh")?;
    let stack = Stack::start().await?;
    let driver = ChromeDriver::spawn(&chromedriver, chromium, &artifacts)?;
    driver.wait_ready().await?;
    let data = shown_data(&stack).await?;
    let mut story = Story {
        stack: &stack,
        driver: &driver,
        artifacts,
        shots: 0,
        timings: Vec::new(),
        lang: "zh-CN",
        data,
    };
    let result = story.run_zh().await;
    for (step, took) in &story.timings {
        eprintln!("  {step:<46} {:>6.1} s", took.as_secs_f64());
    }
    eprintln!(
        "Chinese browser story took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        story.artifacts.display()
    );
    stack.node.stop().await;
    result
}

/// What a Chinese page shows as it is, being data rather than the page's
/// own words: the consortium's organisations (names and ids), the demo
/// staff (names and usernames), and the formulary's medicines (names,
/// strengths, forms and units).
async fn shown_data(stack: &Stack) -> anyhow::Result<Vec<String>> {
    let mut data = Vec::new();
    let g = stack.client.genesis().await?;
    for o in &g.orgs {
        data.push(o.name.to_string());
        data.push(o.id.to_string());
        data.push(o.address.to_string());
    }
    for s in &Demo::load()?.staff {
        data.push(s.name.clone());
        data.push(s.username.clone());
    }
    let formulary: Value = serde_json::from_str(&std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/formulary.json"),
    )?)?;
    for d in formulary["drugs"].as_array().into_iter().flatten() {
        for k in ["name", "strength", "form", "unit"] {
            if let Some(v) = d[k].as_str() {
                data.push(v.to_string());
            }
        }
    }
    Ok(data)
}

/// The node, its data directory, and an API client.
struct Stack {
    node: RunningNode,
    base: String,
    client: Client,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// A real one-node demo consortium serving `web/`, with the demo staff
    /// registered on the chain and their sign-in accounts created.
    async fn start() -> anyhow::Result<Stack> {
        let dir = tempfile::tempdir()?;
        let demo = Demo::load()?;
        demo.write_files(dir.path(), &[1])?;
        let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web");
        let node = rxchain::node::start(demo_settings(
            dir.path(),
            1,
            "127.0.0.1:0".parse()?,
            Some(web),
        ))
        .await?;
        wait_for_leader(&node).await?;
        let base = format!("http://{}", node.addr);
        let client = Client::new(base.clone());
        register_demo_staff(&demo, &client).await?;
        rxchain::test_support::create_demo_accounts(&demo, &node.accounts).await?;
        Ok(Stack {
            node,
            base,
            client,
            _dir: dir,
        })
    }
}

/// One person's browser: a fresh Chromium profile and WebDriver session.
struct Browser {
    driver: WebDriver,
    base: String,
    /// The emulated viewport, if any: `(width, height, mobile)`.
    phone: std::cell::Cell<Option<(u32, u32, bool)>>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A browser whose own language is `lang` (`en-US`, `zh-CN`), started
    /// with `extra` command-line switches (e.g. a fake camera).
    async fn open_with(
        driver: &ChromeDriver,
        base: &str,
        lang: &str,
        extra: &[String],
    ) -> anyhow::Result<Browser> {
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
        // The pages follow the browser's language on a first visit: the
        // English story reads English texts, the Chinese one Chinese.
        caps.add_arg(&format!("--lang={lang}"))?;
        caps.add_experimental_option("prefs", json!({"intl.accept_languages": lang}))?;
        caps.add_arg(&format!("--user-data-dir={}", profile.path().display()))?;
        for arg in extra {
            caps.add_arg(arg)?;
        }
        caps.set_browser_log_level(LoggingPrefsLogLevel::All)?;
        let driver = WebDriver::new(driver.url.clone(), caps)
            .await
            .context("starting a Chromium session")?;
        Ok(Browser {
            driver,
            base: base.to_string(),
            phone: std::cell::Cell::new(None),
            _profile: profile,
        })
    }

    async fn goto(&self, path: &str) -> anyhow::Result<()> {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        self.driver.goto(url).await?;
        Ok(())
    }

    /// Runs `script` (a function body) with `args` and answers its value.
    async fn js(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        Ok(self.driver.execute(script, args).await?.json().clone())
    }

    /// Waits until `script` answers a truthy value; answers that value.
    async fn wait_js(&self, what: &str, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.js(script, args.clone()).await?;
            let truthy = !(v.is_null() || v == false || v == "" || v == 0);
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out after {WAIT:?} waiting for {what}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for a visible element matching `css`.
    async fn find(&self, css: &str) -> anyhow::Result<WebElement> {
        self.wait_js(
            &format!("a visible {css}"),
            "const e = document.querySelector(arguments[0]); return !!(e && e.getClientRects().length);",
            vec![json!(css)],
        )
        .await?;
        Ok(self.driver.find(By::Css(css)).await?)
    }

    /// Waits until the element matching `css` contains `text`.
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

    /// Signs in on a staff page already loaded.
    async fn sign_in(&self, username: &str) -> anyhow::Result<()> {
        self.type_into("#username", username).await?;
        self.type_into("#password", DEMO_PASSWORD).await?;
        self.click("#sign-in").await?;
        self.wait_js(
            &format!("{username} to be signed in"),
            "return !!document.querySelector('#sign-out');",
            vec![],
        )
        .await?;
        Ok(())
    }

    /// Emulates a viewport of `width` × `height` CSS pixels (a phone's when
    /// `mobile`), or the window's own when `None`.
    async fn viewport(&self, size: Option<(u32, u32, bool)>) -> anyhow::Result<()> {
        let cdp = self.driver.cdp();
        match size {
            Some((width, height, mobile)) => {
                cdp.send_raw(
                    "Emulation.setDeviceMetricsOverride",
                    json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
                )
                .await?;
            }
            None => {
                cdp.send_raw("Emulation.clearDeviceMetricsOverride", json!({}))
                    .await?;
            }
        }
        self.phone.set(size);
        Ok(())
    }

    /// Checks `path` at phone width (390 px) once `ready_css` is visible, and
    /// saves a screenshot: no horizontal page overflow; nothing cut off
    /// (outside the viewport, or past an `overflow: hidden` box) unless it
    /// sits in a box that scrolls sideways; every table wider than its box
    /// shows the scroll hint; no short id broken across lines.
    async fn phone_check(
        &self,
        story: &mut Story<'_>,
        path: &str,
        ready_css: &str,
        name: &str,
    ) -> anyhow::Result<()> {
        const WIDTH: i64 = 390;
        self.viewport(Some((WIDTH as u32, 844, true))).await?;
        self.goto(path).await?;
        self.find(ready_css).await?;
        // Let layout settle after the last render.
        self.js_async("requestAnimationFrame(() => requestAnimationFrame(() => done(true)));")
            .await?;
        let m = self.js(common::browser::PHONE_LAYOUT_JS, vec![]).await?;
        story.shot(self, name).await?;
        self.viewport(None).await?;
        let (scroll, inner) = (
            m["scroll"].as_i64().unwrap_or(-1),
            m["inner"].as_i64().unwrap_or(-1),
        );
        if inner != WIDTH {
            // Mobile emulation widens the layout viewport to fit content
            // that does not fit the phone.
            bail!("{path} is wider than the phone: the emulated viewport grew to {inner} px ({m})");
        }
        if scroll > WIDTH {
            bail!("{path} overflows horizontally at phone width: scrollWidth {scroll} > {WIDTH}");
        }
        let problems = m["problems"].as_array().cloned().unwrap_or_default();
        if !problems.is_empty() {
            bail!("{path} at phone width: {problems:#?}");
        }
        Ok(())
    }

    /// Runs axe-core in the page as it is now (see `common::browser::axe_check`).
    async fn axe_check(&self, page: &str) -> anyhow::Result<()> {
        common::browser::axe_check(&self.driver, page).await
    }

    /// Runs an asynchronous script whose last argument `done` must be called.
    async fn js_async(&self, body: &str) -> anyhow::Result<Value> {
        let script = format!("const done = arguments[arguments.length - 1]; {body}");
        Ok(self
            .driver
            .execute_async(script, Vec::<Value>::new())
            .await?
            .json()
            .clone())
    }

    /// Saves a screenshot of the whole page, not just the viewport: the
    /// viewport is stretched to the page's height for the shot.
    async fn full_screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let m = self
            .js(
                "return [window.innerWidth, document.documentElement.scrollHeight];",
                vec![],
            )
            .await?;
        let (width, height) = (
            m[0].as_u64().unwrap_or(1280) as u32,
            m[1].as_u64().unwrap_or(900) as u32,
        );
        let before = self.phone.get();
        let mobile = before.is_some_and(|(_, _, m)| m);
        self.viewport(Some((width, height.clamp(400, 6000), mobile)))
            .await?;
        self.js_async("requestAnimationFrame(() => requestAnimationFrame(() => done(true)));")
            .await?;
        let shot = self.driver.screenshot(path).await;
        self.viewport(before).await?;
        shot.with_context(|| format!("saving {}", path.display()))
    }

    /// The browser console's errors (uncaught exceptions and the like).
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
                    // A key missing from the catalogue (web/assets/i18n.js).
                    || m.contains("rxchain i18n")
            })
            .collect())
    }
}

/// The scenario's shared state.
struct Story<'a> {
    stack: &'a Stack,
    driver: &'a ChromeDriver,
    artifacts: PathBuf,
    shots: u32,
    timings: Vec<(String, Duration)>,
    /// The browsers' language: `en-US`, or `zh-CN` for the Chinese story.
    lang: &'static str,
    /// What the Chinese pages may show in English because it is data (see
    /// `common::browser::ENGLISH_LEAKS_JS`).
    data: Vec<String>,
}

impl Story<'_> {
    async fn shot(&mut self, b: &Browser, name: &str) -> anyhow::Result<()> {
        self.shots += 1;
        let path = self.artifacts.join(format!("{:02}-{name}.png", self.shots));
        b.full_screenshot(&path).await
    }

    /// Runs one role's steps in its own browser; on failure saves a
    /// screenshot and the console log, and always checks the console.
    async fn as_role<T>(
        &mut self,
        role: &str,
        steps: impl AsyncFnOnce(&mut Self, &Browser) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let b = Browser::open_with(self.driver, &self.stack.base, self.lang, &[]).await?;
        let out = steps(self, &b).await;
        if out.is_err() {
            let _ = b
                .driver
                .screenshot(&self.artifacts.join(format!("failure-{role}.png")))
                .await;
            let _ = std::fs::write(
                self.artifacts.join(format!("failure-{role}.html")),
                b.driver.source().await.unwrap_or_default(),
            );
        }
        let errors = b.console_errors(&self.artifacts, role).await;
        let _ = b.driver.quit().await;
        let out =
            out.with_context(|| format!("the {role} steps failed (see failure-{role}.png)"))?;
        let errors = errors?;
        if !errors.is_empty() {
            bail!("the {role} pages raised JavaScript errors: {errors:#?}");
        }
        Ok(out)
    }

    /// A second dispense of `id` from another client (the page offers none
    /// on a red verdict) is refused and recorded, for the regulator's
    /// alerts.
    async fn second_dispense_is_refused(
        &self,
        id: rxchain_contracts::PrescriptionId,
    ) -> anyhow::Result<()> {
        let g = self.stack.client.genesis().await?;
        let again = rxchain::txbuild::dispense(
            &g,
            &staff_key("ph.cara"),
            id,
            vec![DispenseLine {
                item: 0,
                quantity: Quantity::new(1)?,
                batch: Label::parse("LOT-AGAIN")?,
            }],
            false,
        );
        match self.stack.client.submit(&again).await {
            Err(ClientError::Api { code, .. }) if code == "already_dispensed" => Ok(()),
            other => {
                bail!("a second dispense should be refused as already_dispensed, got {other:?}")
            }
        }
    }

    fn timed(&mut self, step: &str, since: Instant) {
        self.timings.push((step.to_string(), since.elapsed()));
    }

    async fn run(&mut self) -> anyhow::Result<()> {
        // 1. The doctor signs in and issues a prescription; the page shows
        //    the QR code, the short id and the patient link.
        let t = Instant::now();
        let (link, short_id) = self
            .as_role("doctor", async |s: &mut Self, b: &Browser| {
                b.goto("/doctor/").await?;
                b.sign_in("dr.ada").await?;
                b.find("#issue-form").await?;
                // 1a. Signing an empty form says what is missing; choosing
                //     the medicine takes that error away (it used to stay).
                b.click("#issue").await?;
                b.wait_text("#issue-status", "Choose medicine 1 from the formulary list").await?;
                // The formulary search is driven by the keyboard only.
                b.type_into("#item-0-drug", "amox").await?;
                b.find("#item-0-list li[role=option]").await?;
                let drug = b.driver.find(By::Css("#item-0-drug")).await?;
                drug.send_keys(Key::Down).await?;
                drug.send_keys(Key::Enter).await?;
                b.wait_text("#item-0-drug-hint", "Amoxicillin").await?;
                b.wait_js("the stale 'choose medicine 1' error to go", "return document.querySelector('#issue-status').hidden;", vec![]).await?;
                b.type_into("#item-0-quantity", "20").await?;
                b.type_into("#item-0-dosage", "One capsule three times a day for 7 days").await?;
                let days = b.js("return document.querySelector('#valid-days').value;", vec![]).await?;
                if days != "90" {
                    bail!("a non-controlled prescription should default to 90 days, the form shows {days}");
                }
                // A second, controlled drug: the validity drops to 28 days.
                b.click("#add-item").await?;
                b.type_into("#item-1-drug", "morph").await?;
                b.find("#item-1-list li[role=option]").await?;
                let drug = b.driver.find(By::Css("#item-1-drug")).await?;
                drug.send_keys(Key::Down).await?;
                drug.send_keys(Key::Enter).await?;
                b.wait_text("#item-1-drug-hint", "Controlled drug").await?;
                b.type_into("#item-1-quantity", "10").await?;
                b.type_into("#item-1-dosage", "One tablet at night when needed for pain").await?;
                let days = b.js("return document.querySelector('#valid-days').value;", vec![]).await?;
                if days != "28" {
                    bail!("a controlled drug should set the validity to 28 days, the form shows {days}");
                }
                b.type_into("#patient-name", "Synthetic Patient Browser").await?;
                b.js(
                    "const e = document.querySelector('#patient-birth'); e.value = '1980-02-01'; \
                     e.dispatchEvent(new Event('input', {bubbles: true})); return true;",
                    vec![],
                )
                .await?;
                b.type_into("#patient-id", "SYNTH-BROWSER-1").await?;
                b.type_into("#patient-email", "patient@example.invalid").await?;
                b.click("#issue").await?;
                let link_input = b.find("#patient-link").await?;
                let link = link_input.value().await?.unwrap_or_default();
                let short_id = b.find("#short-id").await?.text().await?;
                if !link.contains("/patient/#RX1:") {
                    bail!("the patient link does not carry the payload in its fragment: {link}");
                }
                // The printable slip shows the code as a picture, never its text.
                let slip = b.js("return document.querySelector('#slip').textContent;", vec![]).await?;
                let slip = slip.as_str().unwrap_or_default();
                if slip.contains("RX1:") || !slip.contains(&short_id) || !slip.contains("Amoxicillin") || !slip.contains("Morphine") || !slip.contains("Dr Ada Example") {
                    bail!("the slip must show the short id, drugs and prescriber and never the payload: {slip}");
                }
                // 1b. "Download PNG" saves the node's PNG of the code; it
                //     decodes to the payload of the link.
                let href = b.find("#download-png").await?.attr("href").await?.unwrap_or_default();
                let name = b.driver.find(By::Css("#download-png")).await?.attr("download").await?.unwrap_or_default();
                let png = href.strip_prefix("data:image/png;base64,")
                    .ok_or_else(|| anyhow!("the Download PNG link is not a PNG: {:.40}", href))?;
                use base64::Engine as _;
                let png = base64::engine::general_purpose::STANDARD.decode(png)?;
                let decoded = rxchain::qr::decode_image(&png, &rxchain::qr::DecodeLimits::default())?;
                let fragment = percent_decode(link.split_once('#').map(|(_, f)| f).unwrap_or_default());
                if decoded != fragment || !name.ends_with(".png") || !name.contains(&short_id) {
                    bail!("the downloaded PNG ({name}) should decode to the link's payload: {decoded}");
                }
                // 1c. The printed prescription: printed to PDF by Chromium
                //     itself (its print stylesheet, A5), page 1 rendered to
                //     PNG by pdftoppm, and its QR code decoded.
                s.printed_prescription(b, &fragment, &short_id).await?;
                b.wait_text("#mine-list", &short_id).await?;
                s.shot(b, "doctor-issued").await?;
                b.axe_check("the doctor's page").await?;
                b.phone_check(s, "/doctor/", "#mine-list", "doctor-phone").await?;
                Ok((link, short_id))
            })
            .await?;
        self.timed("1. doctor signs in and issues", t);
        let payload_text = percent_decode(link.split_once('#').map(|(_, f)| f).unwrap_or_default());
        let payload = QrPayload::parse(&payload_text)
            .map_err(|e| anyhow!("the link's payload does not parse: {e}"))?;

        // 2. The patient opens the link and picks Central Pharmacy for pickup.
        let t = Instant::now();
        self.as_role("patient", async |s: &mut Self, b: &Browser| {
            // 2a. A cut-off link gets plain words; the precise reason is
            //     kept in the technical details.
            let cut = &link[..link.find("#RX1:").map_or(link.len(), |i| i + 15)];
            b.goto(cut).await?;
            b.wait_text("#link-problem", "incomplete or was mistyped").await?;
            let shown = b.js("return document.querySelector('#page-status').innerText;", vec![]).await?;
            let tech = b.js("return document.querySelector('#link-tech').textContent;", vec![]).await?;
            if shown.as_str().unwrap_or_default().contains("characters") || !tech.as_str().unwrap_or_default().contains("characters after the prefix") {
                bail!("step 2a: the patient should see plain words, the count only in the details: {shown} / {tech}");
            }
            s.shot(b, "patient-cut-link-plain").await?;
            b.goto(&link).await?;
            b.wait_text("#patient-name", "Synthetic Patient Browser")
                .await?;
            b.wait_text("#prescriber", "Dr Ada Example").await?;
            b.find("#assign-form").await?;
            b.click("label[for='pharmacy-pharm-central']").await?;
            b.click("#assign").await?;
            b.wait_text("#choice", "Central Pharmacy").await?;
            b.wait_text("#timeline", "You chose pickup at Central Pharmacy")
                .await?;
            s.shot(b, "patient-chose-pickup").await?;
            b.axe_check("the patient's page").await?;
            b.phone_check(s, &link, "#timeline li", "patient-phone")
                .await?;
            Ok(())
        })
        .await?;
        self.timed("2. patient picks Central Pharmacy", t);

        // A photo-like picture of the QR code: the code on a larger, grey,
        // slightly uneven background, off-centre.
        let photo = self.artifacts.join("qr-photo.png");
        write_qr_photo(&payload_text, &photo)?;

        // 3–5. The pharmacist scans (photo upload, then a handheld scanner),
        //      claims and dispenses; a second scan is refused.
        let t = Instant::now();
        let year = self
            .as_role("pharmacist", async |s: &mut Self, b: &Browser| {
                b.goto("/pharmacist/").await?;
                b.sign_in("ph.cara").await?;
                // 3a. Upload a photo of the code.
                let t = Instant::now();
                b.find("#photo").await?.send_keys(photo.display().to_string()).await?;
                let v = b.find("#verdict .verdict").await?;
                let (verdict, code) = (v.attr("data-verdict").await?, v.attr("data-code").await?);
                if verdict.as_deref() != Some("green") || code.as_deref() != Some("claimable") {
                    bail!("expected a green claimable verdict for the photo, got {verdict:?} {code:?}: {}", v.text().await?);
                }
                b.wait_text("#verdict-prescriber", "Dr Ada Example").await?;
                b.wait_text("#verdict-short-id", &short_id).await?;
                // No jargon on the card; the codes are in its technical details.
                let card = b.js("return document.querySelector('#verdict').innerText;", vec![]).await?;
                let card = card.as_str().unwrap_or_default();
                let tech = b.js("return document.querySelector('#verdict-tech').textContent;", vec![]).await?;
                if card.contains("ATC") || card.contains("QR secret") || !card.contains("Genuine: it belongs to this prescription")
                    || !tech.as_str().unwrap_or_default().contains("ATC J01CA04") {
                    bail!("the verdict card should speak plainly and keep ATC codes in its details: {card}");
                }
                s.shot(b, "pharmacist-photo-verdict-green").await?;
                s.timed("3a. pharmacist scans an uploaded photo", t);

                // 3b. The same code typed by a handheld scanner, ending in Enter.
                let t = Instant::now();
                b.js("document.querySelector('#verdict').replaceChildren(); return true;", vec![]).await?;
                b.find("#scan-text").await?.send_keys(TypingData::from(payload_text.clone()) + Key::Enter).await?;
                b.wait_js("a green verdict from the typed code",
                    "const v = document.querySelector('#verdict .verdict'); return v && v.dataset.code === 'claimable';", vec![]).await?;
                s.shot(b, "pharmacist-scanner-verdict-green").await?;
                s.timed("3b. pharmacist scans with a handheld scanner", t);

                // 4. Claim, then dispense everything with a batch number.
                let t = Instant::now();
                b.click("#claim").await?;
                b.find("#dispense-form").await?;
                b.wait_text("#verdict-title", "ready to dispense").await?;
                b.type_into("#dispense-batch-0", "LOT-BROWSER-1").await?;
                b.type_into("#dispense-batch-1", "LOT-BROWSER-2").await?;
                let complete = b.js("return document.querySelector('#dispense-complete').checked;", vec![]).await?;
                if complete != true {
                    bail!("dispensing the whole remaining quantity should tick 'complete' by default");
                }
                b.click("#dispense").await?;
                b.wait_text("#action-status", "Dispensed 20 capsules of Amoxicillin, 10 tablets of Morphine").await?;
                b.wait_text("#verdict-title", "Dispensed and complete").await?;
                s.shot(b, "pharmacist-dispensed").await?;
                b.axe_check("the pharmacist's page").await?;
                s.timed("4. pharmacist claims and dispenses", t);

                // 5. A second scan is red and names where and when.
                let t = Instant::now();
                b.find("#scan-text").await?.send_keys(TypingData::from(payload_text.clone()) + Key::Enter).await?;
                b.wait_js("a red verdict on the second scan",
                    "const v = document.querySelector('#verdict .verdict'); return v && v.dataset.code === 'already_dispensed' && v.dataset.verdict === 'red';", vec![]).await?;
                let sentence = b.find("#verdict-sentence").await?.text().await?;
                let year = b.js("return String(new Date().getFullYear());", vec![]).await?;
                let year = year.as_str().unwrap_or_default().to_string();
                if !sentence.contains("Central Pharmacy") || !sentence.contains(&year) || !sentence.starts_with("Already dispensed at") {
                    bail!("the red verdict must name the pharmacy and the date: {sentence:?}");
                }
                s.shot(b, "pharmacist-second-scan-red").await?;
                b.wait_text("#pharmacy-table", &short_id).await?;
                // 5b. A completed row has an Open button too: it shows the
                //     record read from the chain, with nothing to act on.
                b.js("document.querySelector('#verdict').replaceChildren(); return true;", vec![]).await?;
                b.wait_js("the completed row's Open button",
                    "const row = [...document.querySelectorAll('#pharmacy-table tbody tr')].find((r) => r.textContent.includes(arguments[0])); \
                     const btn = row && row.querySelector('button'); if (btn) btn.click(); return !!btn;", vec![json!(short_id)]).await?;
                b.wait_text("#verdict-title", "Record: Completed").await?;
                if b.js("return !!document.querySelector('#verdict button#claim, #verdict #dispense-form, #verdict #delivery-form');", vec![]).await? != false {
                    bail!("step 5b: a record opened from the list must offer no action");
                }
                s.shot(b, "pharmacist-completed-row-opened").await?;
                b.phone_check(s, "/pharmacist/", "#pharmacy-table", "pharmacist-phone").await?;
                s.timed("5. second scan is refused", t);
                Ok(year)
            })
            .await?;
        self.timed("3-5. pharmacist (total)", t);

        // The second dispense attempt reaches the chain from another client
        // (the page offers no dispense on a red verdict); it is refused and
        // recorded, which is what the regulator's alerts show.
        self.second_dispense_is_refused(payload.id).await?;
        let g = self.stack.client.genesis().await?;

        // 5b. The patient's timeline shows what concerns the patient, in
        //     plain words: their own refused cancel, never the pharmacy's
        //     refused second dispense (it used to show its raw sentence).
        let late_cancel = rxchain::txbuild::cancel(
            &g,
            &payload.secret.signing_key(),
            payload.id,
            rxchain_contracts::tx::CancelReason::PatientRequest,
        );
        match self.stack.client.submit(&late_cancel).await {
            Err(ClientError::Api { code, .. }) if code == "already_dispensed" => {}
            other => bail!("a cancel after the dispense should be refused, got {other:?}"),
        }
        let t = Instant::now();
        self.as_role("patient-timeline", async |s: &mut Self, b: &Browser| {
            b.goto(&link).await?;
            b.wait_text("#timeline", "Completed").await?;
            b.wait_text("#timeline", "You tried to cancel the prescription, but this was not possible: it had already been dispensed.").await?;
            let tl = b.find("#timeline").await?.text().await?;
            let dispensed = tl.matches("Dispensed at").count();
            if dispensed != 1 || tl.contains("already dispensed") || tl.contains("refused attempt") || tl.contains("LOT-") {
                bail!("the patient's timeline should show one dispense and no pharmacy refusal: {tl}");
            }
            s.shot(b, "patient-timeline-plain").await?;
            Ok(())
        })
        .await?;
        self.timed("5b. patient timeline in plain words", t);

        // 6. The regulator sees the dispense and the refused attempt.
        let t = Instant::now();
        self.as_role("regulator", async |s: &mut Self, b: &Browser| {
            b.goto("/regulator/").await?;
            b.sign_in("reg.gail").await?;
            b.find("#report-table").await?;
            b.js(
                "const g = document.querySelector('#group-by'); g.value = 'pharmacy'; \
                 g.dispatchEvent(new Event('change', {bubbles: true})); return true;",
                vec![],
            )
            .await?;
            b.click("#report-submit").await?;
            b.wait_text("#report-table", "Central Pharmacy").await?;
            b.find("#report-chart rect.bar").await?;
            let csv = b
                .find("#csv-link")
                .await?
                .attr("href")
                .await?
                .unwrap_or_default();
            if !csv.contains("/v1/reports/dispensing.csv?") || !csv.contains("group_by=pharmacy") {
                bail!("the CSV link should carry the report's query: {csv}");
            }
            b.wait_js(
                "the refused second dispense in the alerts",
                "return !!document.querySelector('#alerts-table tr[data-code=already_dispensed]');",
                vec![],
            )
            .await?;
            b.wait_text("#alerts-table", &year).await?;
            // Plain words in the alerts; codes and block numbers in the details.
            let shown = b.js("return document.querySelector('#alerts-table').innerText;", vec![]).await?;
            let shown = shown.as_str().unwrap_or_default();
            let tech = b.js("return document.querySelector('#alerts-table tr[data-code=already_dispensed] details').textContent;", vec![]).await?;
            if shown.contains("already_dispensed") || shown.contains("Block") || !shown.contains("Dispensing")
                || !tech.as_str().unwrap_or_default().contains("already_dispensed") {
                bail!("the alerts should read plainly, codes only in the details: {shown}");
            }
            b.find("#chain-height").await?;
            b.click("#verify").await?;
            b.wait_text("#chain-status", "verified").await?;
            s.shot(b, "regulator-report-alerts").await?;
            b.axe_check("the regulator's page").await?;
            b.phone_check(s, "/regulator/", "#report-table", "regulator-phone")
                .await?;
            Ok(())
        })
        .await?;
        self.timed("6. regulator sees dispense and alert", t);

        let t = Instant::now();
        self.verdict_card_safety().await?;
        self.timed("7-9. the verdict card is never stale", t);

        let t = Instant::now();
        self.release_goes_back_to_the_patient().await?;
        self.timed("10. change of pharmacy, and a release", t);

        let t = Instant::now();
        self.courier_delivers().await?;
        self.timed("11. a courier delivers through their page", t);

        let t = Instant::now();
        self.camera_scan().await?;
        self.timed("12. the camera path scans", t);
        Ok(())
    }

    /// Step 12: Chromium's fake camera plays a video of the QR code held at
    /// an angle; the pharmacist starts the camera and gets the verdict.
    async fn camera_scan(&mut self) -> anyhow::Result<()> {
        let (_rx, text) = self.issue_by_api("Camera Scan").await?;
        let video = self.artifacts.join("camera-qr.y4m");
        write_qr_video(&text, &video)?;
        let b = Browser::open_with(
            self.driver,
            &self.stack.base,
            self.lang,
            &[
                "--use-fake-device-for-media-stream".to_string(),
                "--use-fake-ui-for-media-stream".to_string(),
                format!("--use-file-for-fake-video-capture={}", video.display()),
            ],
        )
        .await?;
        let out = async {
            b.goto("/pharmacist/").await?;
            b.sign_in("ph.cara").await?;
            b.click("#camera-start").await?;
            b.wait_js("a verdict from the camera",
                "const v = document.querySelector('#verdict .verdict'); return v && v.dataset.code === 'claimable';", vec![]).await?;
            b.wait_text("#verdict-prescriber", "Dr Ada Example").await?;
            self.shot(&b, "pharmacist-camera-verdict").await?;
            anyhow::Ok(())
        }
        .await;
        if out.is_err() {
            let _ = b
                .driver
                .screenshot(&self.artifacts.join("failure-camera.png"))
                .await;
        }
        let _ = b.driver.quit().await;
        out.context("the camera steps failed (see failure-camera.png)")
    }

    /// A home delivery of a prescription for `name` to `address`: Central
    /// Pharmacy claims, dispenses and packs it and hands it to Swift
    /// Couriers, all through the API. Answers the prescription's id and
    /// its QR payload text.
    async fn parcel_for_courier(
        &self,
        name: &str,
        address: &str,
    ) -> anyhow::Result<(String, String)> {
        use rxchain_contracts::tx::DeliveryStatus;
        let g = self.stack.client.genesis().await?;
        let (rx, text) = self.issue_by_api(name).await?;
        let client = self.stack.client.clone();
        let _: Value = client
            .post("/v1/patient/assign", &json!({"payload": text, "mode": "delivery", "pharmacy": "pharm-central", "address": address}))
            .await?;
        let central = rxchain_contracts::OrgId::parse("pharm-central")?;
        let cara = staff_key("ph.cara");
        client
            .submit(&rxchain::txbuild::claim(&g, &cara, &central, &rx))
            .await?;
        client
            .submit(&rxchain::txbuild::dispense(
                &g,
                &cara,
                rx.id,
                vec![DispenseLine {
                    item: 0,
                    quantity: Quantity::new(30)?,
                    batch: Label::parse("LOT-PARCEL")?,
                }],
                true,
            ))
            .await?;
        client
            .submit(&rxchain::txbuild::delivery(
                &g,
                &cara,
                rx.id,
                DeliveryStatus::Packed,
            ))
            .await?;
        client
            .submit(&rxchain::txbuild::hand_to_carrier(
                &g,
                &cara,
                rx.id,
                rxchain_contracts::OrgId::parse("logi-swift")?,
            ))
            .await?;
        Ok((rx.id.to_string(), text))
    }

    /// Step 11: Central Pharmacy packs a home delivery and hands it to Swift
    /// Couriers; their courier takes it through dispatched, out for delivery
    /// and delivered on the courier page, seeing the address and nothing
    /// else about the patient.
    async fn courier_delivers(&mut self) -> anyhow::Result<()> {
        let address = "7 Synthetic Lane, Testville";
        let (id, _) = self.parcel_for_courier("Courier Parcel", address).await?;
        self.as_role("courier", async |s: &mut Self, b: &Browser| {
            b.goto("/courier/").await?;
            b.sign_in("courier.finn").await?;
            let row = format!("li[data-id='{id}']");
            b.wait_text(&format!("#address-{id}"), address).await?;
            let page = b.js("return document.querySelector('main').innerText;", vec![]).await?;
            let page = page.as_str().unwrap_or_default();
            if page.contains("Courier Parcel") || page.contains("RX1:") || page.contains("Atorvastatin") {
                bail!("the courier must see the address only, not the patient, code or medicines: {page}");
            }
            s.shot(b, "courier-open-delivery").await?;
            b.axe_check("the courier's page").await?;
            for (step, label) in [("dispatched", "Handed to the courier"), ("out_for_delivery", "Out for delivery"), ("delivered", "Delivered")] {
                // The next step is preselected; the courier only confirms.
                b.wait_js(&format!("{step} to be preselected"),
                    "const s = document.getElementById('next-' + arguments[0]); return s && s.value === arguments[1];",
                    vec![json!(id), json!(step)]).await?;
                if step == "delivered" {
                    // The proof of delivery: how it was handed over, asked
                    // for only now, and required.
                    b.wait_js("the hand-over choice to show",
                        "const f = document.getElementById('detail-' + arguments[0] + '-hand-over'); return !!f && !f.closest('.field').hidden;",
                        vec![json!(id)]).await?;
                    b.js("const f = document.getElementById('detail-' + arguments[0] + '-hand-over'); f.value = 'to_neighbour';", vec![json!(id)]).await?;
                }
                b.click(&format!("#record-{id}")).await?;
                b.wait_text("#courier-status", &format!("{label} — recorded")).await?;
            }
            b.wait_js("the delivered parcel to leave the list",
                "return !document.querySelector(arguments[0]);", vec![json!(row)]).await?;
            s.shot(b, "courier-delivered").await?;
            b.phone_check(s, "/courier/", "#deliveries", "courier-phone").await?;
            Ok(())
        })
        .await?;
        let view: Value = self
            .stack
            .client
            .get(&format!("/v1/prescriptions/{id}"))
            .await?;
        let trail: Vec<&str> = view["record"]["delivery"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d["status"].as_str()).collect())
            .unwrap_or_default();
        if trail != ["packed", "dispatched", "out_for_delivery", "delivered"] {
            bail!("the chain should hold the courier's steps, it holds {trail:?}");
        }
        let hand_over = &view["record"]["delivery"][3]["hand_over"];
        if hand_over != "to_neighbour" {
            bail!("the chain should hold the courier's proof of delivery, it holds {hand_over}");
        }
        Ok(())
    }

    /// Step 10: the patient changes the chosen pharmacy before it is
    /// claimed; the pharmacy then claims and releases it, and the patient's
    /// page says so and offers the choice again.
    async fn release_goes_back_to_the_patient(&mut self) -> anyhow::Result<()> {
        let g = self.stack.client.genesis().await?;
        let (rx, text) = self.issue_by_api("Release Rule").await?;
        let client = self.stack.client.clone();
        self.as_role("patient-release", async |s: &mut Self, b: &Browser| {
            b.goto(&format!("/patient/#{text}")).await?;
            b.click("label[for='pharmacy-pharm-central']").await?;
            b.click("#assign").await?;
            b.wait_text("#choice", "Central Pharmacy").await?;
            // 10a. A change of mind before any pharmacy claims it.
            b.click("#change-choice").await?;
            b.click("label[for='pharmacy-pharm-harbour']").await?;
            b.click("#assign").await?;
            b.wait_text("#choice", "Harbour Pharmacy").await?;
            let central = rxchain_contracts::OrgId::parse("pharm-central")?;
            match client.submit(&rxchain::txbuild::claim(&g, &staff_key("ph.cara"), &central, &rx)).await {
                Err(ClientError::Api { code, .. }) if code == "assigned_elsewhere" => {}
                other => bail!("step 10a: the first pharmacy should be refused after the change, got {other:?}"),
            }
            s.shot(b, "patient-changed-pharmacy").await?;
            // 10b. Harbour claims and releases it: the page says it is back
            //      with the patient and offers the choice again.
            let harbour = rxchain_contracts::OrgId::parse("pharm-harbour")?;
            client.submit(&rxchain::txbuild::claim(&g, &staff_key("ph.dan"), &harbour, &rx)).await?;
            client.submit(&rxchain::txbuild::release(&g, &staff_key("ph.dan"), rx.id)).await?;
            b.wait_text("#released-note", "Harbour Pharmacy (demo) returned your prescription").await?;
            b.find("#assign-form").await?;
            b.wait_text("#timeline", "returned the prescription without filling it").await?;
            s.shot(b, "patient-told-of-release").await?;
            Ok(())
        })
        .await
    }

    /// Prints the doctor's page to PDF (print media, the page's own `@page`
    /// size), renders page 1 with `pdftoppm`, and checks the paper: A5, the
    /// facts a pharmacist needs, and a QR code that decodes to `payload`.
    async fn printed_prescription(
        &mut self,
        b: &Browser,
        payload: &str,
        short_id: &str,
    ) -> anyhow::Result<()> {
        let pdf = b
            .driver
            .cdp()
            .send_raw(
                "Page.printToPDF",
                json!({"preferCSSPageSize": true, "printBackground": true}),
            )
            .await?;
        use base64::Engine as _;
        let pdf = base64::engine::general_purpose::STANDARD.decode(
            pdf["data"]
                .as_str()
                .ok_or_else(|| anyhow!("printToPDF answered no data: {pdf}"))?,
        )?;
        let pdf_path = self.artifacts.join("prescription.pdf");
        std::fs::write(&pdf_path, &pdf)?;
        let png_base = self.artifacts.join("printed-prescription");
        let out = Command::new("pdftoppm")
            .args(["-r", "200", "-f", "1", "-l", "1", "-png", "-singlefile"])
            .arg(&pdf_path)
            .arg(&png_base)
            .output()
            .context("running pdftoppm (scripts/install-test-deps.sh installs poppler-utils)")?;
        if !out.status.success() {
            bail!("pdftoppm failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let png = std::fs::read(png_base.with_extension("png"))?;
        let page = image::load_from_memory(&png)?;
        // A5 is 148 × 210 mm: 1166 × 1654 pixels at 200 dpi.
        let (w, h) = (page.width(), page.height());
        if w.abs_diff(1166) > 12 || h.abs_diff(1654) > 12 {
            bail!("the printed prescription should be A5 (1166 × 1654 px at 200 dpi), page 1 is {w} × {h}");
        }
        let decoded = rxchain::qr::decode_image(&png, &rxchain::qr::DecodeLimits::default())
            .map_err(|e| anyhow!("the printed QR code does not decode: {e}"))?;
        if decoded != payload {
            bail!("the printed QR code decodes to {decoded:?}, not the prescription's payload");
        }
        let text = Command::new("pdftotext")
            .args(["-f", "1", "-l", "1"])
            .arg(&pdf_path)
            .arg("-")
            .output()?;
        // Table cells wrap: compare with the white space collapsed.
        let text = String::from_utf8_lossy(&text.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for want in [
            "Northgate General Hospital (synthetic)",
            "Synthetic Patient Browser",
            "Dr Ada Example",
            "Amoxicillin",
            "One capsule three times a day for 7 days",
            "Morphine",
            "Valid until",
            "Repeat fills",
            "What to do",
            short_id,
        ] {
            if !text.contains(want) {
                bail!("the printed prescription lacks {want:?}:\n{text}");
            }
        }
        if text.contains("RX1:") || text.contains("Sign and issue") {
            bail!("the printed prescription shows the payload text or the page around it:\n{text}");
        }
        Ok(())
    }

    /// Issues an Atorvastatin prescription from Dr Ada through the API and
    /// answers its QR payload text.
    async fn issue_by_api(&self, name: &str) -> anyhow::Result<(QrPayload, String)> {
        let g = self.stack.client.genesis().await?;
        let input = common::issue::atorvastatin_issue(
            "hosp-north",
            30,
            0,
            common::issue::SyntheticPatient {
                name: name.to_string(),
                birth_date: "1970-01-01",
                identifier: format!("SYNTH-{name}"),
            },
            "One tablet at night",
        );
        let rx = rxchain::txbuild::issue(&g, &staff_key("dr.ada"), input)?;
        self.stack.client.submit(&rx.tx).await?;
        let text = rx.payload.encode();
        Ok((rx.payload, text))
    }

    /// Steps 7–9: the pharmacist's verdict card after a bad scan, after a
    /// change made elsewhere, when old, and after a refusal.
    async fn verdict_card_safety(&mut self) -> anyhow::Result<()> {
        let g = self.stack.client.genesis().await?;
        let central = rxchain_contracts::OrgId::parse("pharm-central")?;
        let (rx, text) = self.issue_by_api("Card Safety").await?;
        let client = self.stack.client.clone();
        self.as_role("pharmacist-safety", async |s: &mut Self, b: &Browser| {
            // This pharmacist works in Shanghai: times are shown in that zone.
            b.driver.cdp().send_raw("Emulation.setTimezoneOverride", json!({"timezoneId": "Asia/Shanghai"})).await?;
            b.goto("/pharmacist/").await?;
            b.sign_in("ph.cara").await?;
            // 7. A mistyped code after a good scan: the old card is gone
            //    before the error is shown, never left under it.
            b.find("#scan-text").await?.send_keys(TypingData::from(text.clone()) + Key::Enter).await?;
            b.wait_js("a green verdict", "const v = document.querySelector('#verdict .verdict'); return v && v.dataset.code === 'claimable';", vec![]).await?;
            b.wait_text("#verdict-checked", "Chain state at block").await?;
            let mistyped = format!("{}X", &text[..text.len() - 3]);
            b.find("#scan-text").await?.send_keys(TypingData::from(mistyped) + Key::Enter).await?;
            b.wait_js("the bad scan's error", "const s = document.querySelector('#scan-status'); return s && !s.hidden && s.dataset.kind === 'error';", vec![]).await?;
            let left = b.js("return document.querySelector('#verdict').childElementCount;", vec![]).await?;
            if left != 0 {
                bail!("step 7: after a bad scan the previous prescription's card is still on screen");
            }
            s.shot(b, "pharmacist-bad-scan-clears-card").await?;

            // 8. The card refreshes by itself when the chain changes: another
            //    pharmacist of this pharmacy claims it from elsewhere.
            b.find("#scan-text").await?.send_keys(TypingData::from(text.clone()) + Key::Enter).await?;
            b.wait_js("a green claimable verdict", "const v = document.querySelector('#verdict .verdict'); return v && v.dataset.code === 'claimable';", vec![]).await?;
            client.submit(&rxchain::txbuild::claim(&g, &staff_key("ph.cara"), &central, &rx)).await?;
            b.wait_js("the card to reload after the claim made elsewhere",
                "const v = document.querySelector('#verdict .verdict'); return v && v.dataset.code === 'already_claimed_here' && !!document.querySelector('#action-status[data-changed=true]') && !!document.querySelector('#dispense-form');", vec![]).await?;
            s.shot(b, "pharmacist-card-refreshed-after-change").await?;

            // 9a. While the chain cannot be asked, the card ages; once old it
            //     is greyed out and its Dispense button is off. The page's
            //     clock is moved a minute on to age it without waiting.
            let cdp = b.driver.cdp();
            cdp.send_raw("Network.enable", json!({})).await?;
            cdp.send_raw("Network.setBlockedURLs", json!({"urls": ["*/v1/prescriptions/*"]})).await?;
            client.submit(&rxchain::txbuild::dispense(&g, &staff_key("ph.cara"), rx.id,
                vec![DispenseLine { item: 0, quantity: Quantity::new(30)?, batch: Label::parse("LOT-ELSEWHERE")? }], true)).await?;
            b.js("window.__realNow = Date.now; Date.now = () => window.__realNow.call(Date) + 60000; return true;", vec![]).await?;
            b.wait_js("the old card to grey out",
                "const v = document.querySelector('#verdict .verdict'); const d = document.querySelector('#dispense'); \
                 const n = document.querySelector('#verdict-stale'); return v && v.dataset.stale === 'true' && d && d.disabled && n && !n.hidden;", vec![]).await?;
            b.wait_text("#verdict-stale", "Do not act on this card").await?;
            s.shot(b, "pharmacist-old-card-greyed").await?;
            b.js("Date.now = window.__realNow; return true;", vec![]).await?;
            b.wait_js("the card to be fresh again", "const d = document.querySelector('#dispense'); return d && !d.disabled;", vec![]).await?;

            // 9b. The card still says "ready to dispense" (the background
            //     check is blocked), but the chain has it dispensed: the
            //     Dispense click is refused, and the card reloads from the
            //     chain instead of staying green under the refusal.
            let title = b.find("#verdict-title").await?.text().await?;
            if !title.contains("ready to dispense") {
                bail!("step 9b needs the outdated green card on screen, it shows {title:?}");
            }
            b.type_into("#dispense-batch-0", "LOT-STALE").await?;
            b.click("#dispense").await?;
            b.wait_js("the refused dispense to reload the card",
                "const v = document.querySelector('#verdict .verdict'); return v && v.dataset.code === 'already_dispensed' && v.dataset.verdict === 'red';", vec![]).await?;
            if b.js("return !!document.querySelector('#dispense-form, #claim');", vec![]).await? != false {
                bail!("step 9b: after the refusal the card still offers an action");
            }
            b.wait_text("#verdict-title", "Do not dispense").await?;
            b.wait_text("#action-status", "Refused").await?;
            b.wait_text("#verdict-sentence", "Already dispensed at Central Pharmacy").await?;
            // 9c. The refusal's time comes as a number in the error's
            //     details and is written in the viewer's zone (UTC+8), like
            //     every other time on the page, never as "… UTC".
            let view: Value = client.get(&format!("/v1/prescriptions/{}", rx.id)).await?;
            let at = view["record"]["fills"][0]["at"].as_u64().ok_or_else(|| anyhow!("no fill time in {view}"))?;
            let local = (at / 60_000 + 8 * 60) % (24 * 60);
            let (h, m) = (local / 60, local % 60);
            let hhmm = format!("{:02}:{m:02} {}", if h % 12 == 0 { 12 } else { h % 12 }, if h < 12 { "AM" } else { "PM" });
            // ICU writes a narrow no-break space before AM/PM.
            let refusal: String = b.find("#action-status").await?.text().await?
                .chars().map(|c| if c.is_whitespace() { ' ' } else { c }).collect();
            if refusal.contains("UTC") || !refusal.contains("Already dispensed at Central Pharmacy (demo) on") || !refusal.contains(&hhmm) {
                bail!("step 9c: the refusal should give the dispense time {hhmm} in Shanghai time: {refusal:?}");
            }
            cdp.send_raw("Network.setBlockedURLs", json!({"urls": []})).await?;
            s.shot(b, "pharmacist-refusal-reloads-card").await?;
            Ok(())
        })
        .await
    }
}

/// The Chinese story (`chinese_story_in_headless_chromium`).
impl Story<'_> {
    /// Checks the page `b` shows in Chinese (no English outside the data),
    /// runs axe-core on it, saves a screenshot.
    async fn zh_check(&mut self, b: &Browser, page: &str, shot: &str) -> anyhow::Result<()> {
        common::browser::no_english(&b.driver, page, &self.data).await?;
        b.axe_check(&format!("{page} (Chinese)")).await?;
        self.shot(b, shot).await
    }

    /// The language switch on `page` (shown in Chinese, `ready_css`
    /// visible): 中文 → English makes the page English (`<html lang="en">`,
    /// no longer Chinese) and axe-clean; a reload keeps English; English →
    /// 中文 and a reload keep Chinese, again with no English leaking.
    async fn switch_languages(
        &mut self,
        b: &Browser,
        page: &str,
        ready_css: &str,
    ) -> anyhow::Result<()> {
        let lang = "return document.documentElement.lang;";
        let ready = async |want: &str| -> anyhow::Result<()> {
            b.wait_js(&format!("{page} in {want} with {ready_css}"),
                "return document.readyState === 'complete' && document.documentElement.lang === arguments[0] \
                 && !!document.querySelector(arguments[1]) && !!document.querySelector('#lang-switch');",
                vec![json!(want), json!(ready_css)]).await?;
            Ok(())
        };
        ready("zh-CN").await?;
        b.click("#lang-en").await?;
        ready("en").await?;
        // Chinese data (the patient's name, a dosage) stays Chinese.
        // Chinese data (the patient's name, a dosage) stays Chinese, and so
        // does a name marked as Chinese (the e-mail language "简体中文").
        let cjk = b.js("let n = 0; const w = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT); \
            for (let t = w.nextNode(); t; t = w.nextNode()) { \
              if (t.parentElement.closest('[lang]') !== document.documentElement) continue; \
              let text = t.nodeValue; for (const d of arguments[0]) text = text.split(d).join(' '); \
              n += (text.match(/[\\u3400-\\u9fff]/g) || []).length; } \
            return n;", vec![json!(self.data)]).await?;
        if cjk.as_u64().unwrap_or(0) > 0 {
            bail!("{page} switched to English still shows {cjk} Chinese characters");
        }
        if b.js(
            "return document.querySelector('#lang-en').getAttribute('aria-pressed');",
            vec![],
        )
        .await?
            != "true"
        {
            bail!("{page}: the switch does not mark English as chosen");
        }
        b.axe_check(&format!("{page} (English)")).await?;
        b.driver.refresh().await?;
        ready("en").await?;
        b.click("#lang-zh").await?;
        ready("zh-CN").await?;
        b.driver.refresh().await?;
        ready("zh-CN").await?;
        if b.js(lang, vec![]).await? != "zh-CN" {
            bail!("{page}: Chinese did not survive a reload");
        }
        common::browser::no_english(&b.driver, &format!("{page} after the switch"), &self.data)
            .await?;
        Ok(())
    }

    async fn run_zh(&mut self) -> anyhow::Result<()> {
        let patient = "王小明（测试）";
        let dosage = "每日三次，每次一粒，连服七天";
        self.data.push(patient.to_string());
        self.data.push(dosage.to_string());
        // 1. The doctor, in Chinese from the first visit.
        let t = Instant::now();
        let (link, _short_id) = self
            .as_role("doctor-zh", async |s: &mut Self, b: &Browser| {
                b.goto("/doctor/").await?;
                b.find("#username").await?;
                // The check can fail: an English sentence, label and option
                // put into this Chinese page are reported.
                common::browser::english_leak_check_self_test(&b.driver).await?;
                s.zh_check(b, "the doctor's sign-in form", "zh-doctor-sign-in").await?;
                b.sign_in("dr.ada").await?;
                b.find("#issue-form").await?;
                b.click("#issue").await?;
                b.wait_js("the empty form's error", "const e = document.querySelector('#issue-status'); return e && !e.hidden && e.textContent.length > 0;", vec![]).await?;
                s.zh_check(b, "the doctor's form with its error", "zh-doctor-form-error").await?;
                b.type_into("#item-0-drug", "amox").await?;
                b.find("#item-0-list li[role=option]").await?;
                let drug = b.driver.find(By::Css("#item-0-drug")).await?;
                drug.send_keys(Key::Down).await?;
                drug.send_keys(Key::Enter).await?;
                b.wait_text("#item-0-drug-hint", "Amoxicillin").await?;
                b.type_into("#item-0-quantity", "21").await?;
                b.type_into("#item-0-dosage", dosage).await?;
                b.type_into("#patient-name", patient).await?;
                b.js("const e = document.querySelector('#patient-birth'); e.value = '1975-06-01'; \
                      e.dispatchEvent(new Event('input', {bubbles: true})); return true;", vec![]).await?;
                b.type_into("#patient-id", "SYNTH-ZH-1").await?;
                // The code is e-mailed too: the staff admin's outbox shows it.
                b.type_into("#patient-email", "wang@example.invalid").await?;
                b.click("label[for='email-code']").await?;
                s.zh_check(b, "the doctor's filled form", "zh-doctor-filled").await?;
                b.click("#issue").await?;
                let link = b.find("#patient-link").await?.value().await?.unwrap_or_default();
                let short_id = b.find("#short-id").await?.text().await?;
                s.data.push(short_id.clone());
                b.wait_text("#mine-list", &short_id).await?;
                s.zh_check(b, "the doctor's issued prescription", "zh-doctor-issued").await?;
                s.switch_languages(b, "the doctor's page", "#mine-list").await?;
                Ok((link, short_id))
            })
            .await?;
        self.timed("zh 1. doctor issues", t);
        let payload_text = percent_decode(link.split_once('#').map(|(_, f)| f).unwrap_or_default());
        let payload = QrPayload::parse(&payload_text)
            .map_err(|e| anyhow!("the link's payload does not parse: {e}"))?;

        // 2. The patient opens the link and chooses Central Pharmacy.
        let t = Instant::now();
        self.as_role("patient-zh", async |s: &mut Self, b: &Browser| {
            b.goto(&link).await?;
            b.wait_text("#patient-name", patient).await?;
            b.find("#assign-form").await?;
            s.zh_check(b, "the patient's page", "zh-patient-open")
                .await?;
            b.click("label[for='pharmacy-pharm-central']").await?;
            b.click("#assign").await?;
            b.wait_text("#choice", "Central Pharmacy").await?;
            b.find("#timeline li").await?;
            s.zh_check(b, "the patient's page with the choice", "zh-patient-chose")
                .await?;
            b.phone_check(s, &link, "#timeline li", "zh-patient-phone")
                .await?;
            s.switch_languages(b, "the patient's page", "#timeline li")
                .await?;
            Ok(())
        })
        .await?;
        self.timed("zh 2. patient chooses", t);

        // 3. The pharmacist: a mistyped code, the good one, claim, dispense,
        //    and the refused second scan, all in Chinese.
        let t = Instant::now();
        self.data.push("LOT-ZH-1".to_string());
        self.as_role("pharmacist-zh", async |s: &mut Self, b: &Browser| {
            b.goto("/pharmacist/").await?;
            b.sign_in("ph.cara").await?;
            b.find("#pharmacy-table, #scan-text").await?;
            let mistyped = format!("{}X", &payload_text[..payload_text.len() - 3]);
            b.find("#scan-text").await?.send_keys(TypingData::from(mistyped) + Key::Enter).await?;
            b.wait_js("the bad scan's error", "const s = document.querySelector('#scan-status'); return s && !s.hidden && s.dataset.kind === 'error';", vec![]).await?;
            s.zh_check(b, "the pharmacist's bad scan", "zh-pharmacist-bad-scan").await?;
            b.find("#scan-text").await?.send_keys(Key::Control + "a").await?;
            b.find("#scan-text").await?.send_keys(TypingData::from(payload_text.clone()) + Key::Enter).await?;
            b.wait_js("a green verdict", "const v = document.querySelector('#verdict .verdict'); return v && v.dataset.code === 'claimable';", vec![]).await?;
            s.zh_check(b, "the pharmacist's green verdict", "zh-pharmacist-green").await?;
            b.click("#claim").await?;
            b.find("#dispense-form").await?;
            b.type_into("#dispense-batch-0", "LOT-ZH-1").await?;
            s.zh_check(b, "the pharmacist's dispense form", "zh-pharmacist-claimed").await?;
            // The switch keeps what is on screen: the card comes back, read
            // again from the chain, with the batch number typed into it.
            for (button, lang) in [("#lang-en", "en"), ("#lang-zh", "zh-CN")] {
                b.click(button).await?;
                b.wait_js(&format!("the card and its batch number back in {lang}"),
                    "const v = document.querySelector('#verdict .verdict'); const f = document.querySelector('#dispense-batch-0'); \
                     return document.documentElement.lang === arguments[0] && v && v.dataset.code === 'already_claimed_here' \
                       && f && f.value === 'LOT-ZH-1';", vec![json!(lang)]).await?;
            }
            s.shot(b, "zh-pharmacist-card-kept-through-switch").await?;
            b.click("#dispense").await?;
            b.wait_js("the dispense to be recorded", "const s = document.querySelector('#action-status'); return s && s.dataset.kind === 'ok';", vec![]).await?;
            s.zh_check(b, "the pharmacist's dispensed card", "zh-pharmacist-dispensed").await?;
            b.find("#scan-text").await?.send_keys(TypingData::from(payload_text.clone()) + Key::Enter).await?;
            b.wait_js("a red verdict on the second scan",
                "const v = document.querySelector('#verdict .verdict'); return v && v.dataset.code === 'already_dispensed' && v.dataset.verdict === 'red';", vec![]).await?;
            s.zh_check(b, "the pharmacist's red verdict", "zh-pharmacist-red").await?;
            b.phone_check(s, "/pharmacist/", "#pharmacy-table", "zh-pharmacist-phone").await?;
            s.switch_languages(b, "the pharmacist's page", "#pharmacy-table").await?;
            Ok(())
        })
        .await?;
        self.timed("zh 3. pharmacist scans and dispenses", t);

        // A refused second dispense from another client, for the alerts.
        self.second_dispense_is_refused(payload.id).await?;
        let g = self.stack.client.genesis().await?;

        // 3b. The patient's page after the dispense, and a prescription a
        //     pharmacy returned: the timeline and the note in Chinese.
        let t = Instant::now();
        let (released, released_text) = self.issue_by_api("Zh Release").await?;
        // Data written by the hospital in English (`issue_by_api`).
        self.data
            .extend(["Zh Release".to_string(), "One tablet at night".to_string()]);
        let central = rxchain_contracts::OrgId::parse("pharm-central")?;
        let _: Value = self
            .stack
            .client
            .post(
                "/v1/patient/assign",
                &json!({"payload": released_text, "mode": "pickup", "pharmacy": "pharm-central"}),
            )
            .await?;
        self.stack
            .client
            .submit(&rxchain::txbuild::claim(
                &g,
                &staff_key("ph.cara"),
                &central,
                &released,
            ))
            .await?;
        self.stack
            .client
            .submit(&rxchain::txbuild::release(
                &g,
                &staff_key("ph.cara"),
                released.id,
            ))
            .await?;
        self.as_role("patient-later-zh", async |s: &mut Self, b: &Browser| {
            b.goto(&link).await?;
            b.wait_js(
                "the dispense on the timeline",
                "return document.querySelectorAll('#timeline li').length >= 3;",
                vec![],
            )
            .await?;
            s.zh_check(
                b,
                "the patient's page after the dispense",
                "zh-patient-dispensed",
            )
            .await?;
            b.goto(&format!("/patient/#{released_text}")).await?;
            b.find("#released-note").await?;
            b.find("#assign-form").await?;
            s.zh_check(
                b,
                "the patient's page after a release",
                "zh-patient-released",
            )
            .await?;
            Ok(())
        })
        .await?;
        self.timed("zh 3b. patient after dispense and release", t);

        // 4. The regulator's report and alerts.
        let t = Instant::now();
        self.as_role("regulator-zh", async |s: &mut Self, b: &Browser| {
            b.goto("/regulator/").await?;
            b.sign_in("reg.gail").await?;
            b.find("#report-table").await?;
            b.click("#report-submit").await?;
            b.find("#report-chart rect.bar").await?;
            b.wait_js(
                "the refused second dispense in the alerts",
                "return !!document.querySelector('#alerts-table tr[data-code=already_dispensed]');",
                vec![],
            )
            .await?;
            b.find("#chain-height").await?;
            b.click("#verify").await?;
            b.wait_js("the chain's check", "const s = document.querySelector('#chain-status'); return s && !s.hidden && ['ok', 'error'].includes(s.dataset.kind);", vec![]).await?;
            s.zh_check(b, "the regulator's page", "zh-regulator")
                .await?;
            b.phone_check(s, "/regulator/", "#report-table", "zh-regulator-phone")
                .await?;
            s.switch_languages(b, "the regulator's page", "#report-table")
                .await?;
            Ok(())
        })
        .await?;
        self.timed("zh 4. regulator", t);

        // 4b. The insurer asks for access, the patient allows it, the
        //     insurer reads it: the sharing pages in Chinese.
        let t = Instant::now();
        let rx_id = payload.id.to_string();
        self.as_role("insurer-asks-zh", async |s: &mut Self, b: &Browser| {
            b.goto("/insurer/").await?;
            b.sign_in("ins.ivy").await?;
            b.type_into("#request-id", &rx_id).await?;
            b.click("#request-submit").await?;
            b.wait_js("the request's answer", "const s = [...document.querySelectorAll('.status')].find((x) => ['ok', 'error'].includes(x.dataset.kind)); return s ? s.dataset.kind : null;", vec![]).await?;
            s.zh_check(b, "the insurer's request", "zh-insurer-asked").await?;
            Ok(())
        })
        .await?;
        self.as_role("patient-shares-zh", async |s: &mut Self, b: &Browser| {
            b.goto(&link).await?;
            b.wait_text("#requests", "Ivy Reviewer").await?;
            s.zh_check(
                b,
                "the patient's sharing card with a request",
                "zh-patient-request",
            )
            .await?;
            b.click("#approve-ins-civic").await?;
            b.find("#grants li[data-org='ins-civic'][data-state='active']")
                .await?;
            s.zh_check(
                b,
                "the patient's sharing card after allowing",
                "zh-patient-allowed",
            )
            .await?;
            Ok(())
        })
        .await?;
        self.as_role("insurer-reads-zh", async |s: &mut Self, b: &Browser| {
            b.goto("/insurer/").await?;
            b.sign_in("ins.ivy").await?;
            let row = format!("#claims tr[data-id='{rx_id}'][data-state='active']");
            b.find(&row).await?;
            b.click(&format!("{row} button")).await?;
            b.wait_text("#shared-patient", patient).await?;
            s.zh_check(b, "the insurer's shared prescription", "zh-insurer-reads")
                .await?;
            b.phone_check(s, "/insurer/", "#claims", "zh-insurer-phone")
                .await?;
            Ok(())
        })
        .await?;
        self.timed("zh 4b. sharing with the insurer", t);

        // 5. The courier takes a parcel one step on.
        let t = Instant::now();
        let address = "上海市测试路 8 号";
        self.data.push(address.to_string());
        let (id, parcel) = self.parcel_for_courier("Zh Parcel", address).await?;
        self.as_role("courier-zh", async |s: &mut Self, b: &Browser| {
            b.goto("/courier/").await?;
            b.sign_in("courier.finn").await?;
            b.wait_text(&format!("#address-{id}"), address).await?;
            s.zh_check(b, "the courier's page", "zh-courier").await?;
            for step in ["dispatched", "out_for_delivery"] {
                b.wait_js(&format!("{step} to be preselected"),
                    "const s = document.getElementById('next-' + arguments[0]); return s && s.value === arguments[1];",
                    vec![json!(id), json!(step)]).await?;
                b.click(&format!("#record-{id}")).await?;
                b.wait_js("the step to be recorded", "const s = document.querySelector('#courier-status'); return s && s.dataset.kind === 'ok';", vec![]).await?;
                b.js("document.querySelector('#courier-status').dataset.kind = ''; return true;", vec![]).await?;
            }
            s.zh_check(b, "the courier's recorded step", "zh-courier-recorded").await?;
            // A failed delivery asks for its reason, in Chinese.
            b.js("const s = document.getElementById('next-' + arguments[0]); s.value = 'failed'; \
                  s.dispatchEvent(new Event('change', {bubbles: true})); return true;", vec![json!(id)]).await?;
            b.find(&format!("#detail-{id}-problem")).await?;
            s.zh_check(b, "the courier's failed-delivery form", "zh-courier-failed-form").await?;
            b.js("const f = document.getElementById('detail-' + arguments[0] + '-problem'); f.value = 'no_one_home'; return true;", vec![json!(id)]).await?;
            b.click(&format!("#record-{id}")).await?;
            b.wait_js("the failure to be recorded", "const s = document.querySelector('#courier-status'); return s && s.dataset.kind === 'ok';", vec![]).await?;
            s.zh_check(b, "the courier's page after a failed delivery", "zh-courier-failed").await?;
            b.phone_check(s, "/courier/", "#deliveries", "zh-courier-phone").await?;
            s.switch_languages(b, "the courier's page", "#deliveries").await?;
            Ok(())
        })
        .await?;
        self.timed("zh 5. courier", t);

        // 5b. The pharmacy's view of the failed delivery: the card with its
        //     delivery trail and the next step to record, in Chinese.
        self.as_role(
            "pharmacist-delivery-zh",
            async |s: &mut Self, b: &Browser| {
                b.goto("/pharmacist/").await?;
                b.sign_in("ph.cara").await?;
                b.find("#scan-text")
                    .await?
                    .send_keys(TypingData::from(parcel.clone()) + Key::Enter)
                    .await?;
                b.find("#verdict #delivery-form").await?;
                s.zh_check(
                    b,
                    "the pharmacist's card of a failed delivery",
                    "zh-pharmacist-delivery",
                )
                .await?;
                Ok(())
            },
        )
        .await?;

        // 6. The staff admin, the insurer and the start page.
        let t = Instant::now();
        self.as_role("others-zh", async |s: &mut Self, b: &Browser| {
            b.goto("/").await?;
            b.find(".role-links").await?;
            s.zh_check(b, "the start page", "zh-index").await?;
            s.switch_languages(b, "the start page", ".role-links")
                .await?;
            b.goto("/admin/").await?;
            b.sign_in("alex.admin").await?;
            b.find("#staff-list table").await?;
            s.zh_check(b, "the staff admin's page", "zh-admin").await?;
            b.type_into("#new-username", "dr.zhang").await?;
            b.type_into("#new-name", "张医生").await?;
            b.type_into("#new-licence", "MD-ZH-1").await?;
            b.type_into("#new-password-initial", "initial tram ninety lamps").await?;
            b.click("#add-staff").await?;
            b.wait_js("the enrolment's answer", "const s = document.querySelector('#add-status'); return s && !s.hidden && ['ok', 'error'].includes(s.dataset.kind);", vec![]).await?;
            s.data.push("张医生".to_string());
            s.zh_check(b, "the staff admin's enrolment", "zh-admin-enrolled").await?;
            s.switch_languages(b, "the staff admin's page", "#staff-list table")
                .await?;
            b.goto("/admin/outbox/").await?;
            b.find("#outbox tbody tr[data-state]").await?;
            s.zh_check(b, "the staff admin's outbox", "zh-admin-outbox").await?;
            s.switch_languages(b, "the staff admin's outbox", "#outbox tbody tr").await?;
            b.click("#sign-out").await?;
            b.find("#username").await?;
            // Signed in on a page for another role: it says so, in Chinese.
            b.sign_in("ins.ivy").await?;
            b.wait_js("the page to say it is not for this role", "return !!document.querySelector('#app a[href=\"/\"]');", vec![]).await?;
            s.zh_check(b, "the outbox page for a claims reviewer", "zh-not-your-role").await?;
            b.goto("/insurer/").await?;
            b.find("#claims, #claims-empty").await?;
            s.zh_check(b, "the insurer's page", "zh-insurer").await?;
            s.switch_languages(b, "the insurer's page", "#claims, #claims-empty")
                .await?;
            Ok(())
        })
        .await?;
        self.timed("zh 6. admin, insurer, start page", t);
        Ok(())
    }
}

/// Writes a photo-like PNG of the QR code for `payload` to `path`: the code
/// off-centre on a larger canvas with a soft grey gradient and speckles.
fn write_qr_photo(payload: &str, path: &Path) -> anyhow::Result<()> {
    let png = rxchain::qr::render_png(payload, 6)?;
    let code = image::load_from_memory(&png)?.to_luma8();
    let (w, h) = (code.width() + 420, code.height() + 300);
    let mut canvas = image::RgbImage::from_fn(w, h, |x, y| {
        // A deterministic speckle so the background is not flat.
        let noise = ((x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) % 23) as u8;
        let shade = 170u8
            .saturating_add(((x + y) * 50 / (w + h)) as u8)
            .saturating_add(noise);
        image::Rgb([shade, shade.saturating_sub(6), shade.saturating_sub(14)])
    });
    let (ox, oy) = (170, 110);
    for (x, y, p) in code.enumerate_pixels() {
        let v = if p.0[0] < 128 { 28 } else { 236 };
        canvas.put_pixel(ox + x, oy + y, image::Rgb([v, v, v.saturating_sub(4)]));
    }
    canvas.save(path)?;
    Ok(())
}

/// Writes a short Y4M video (640 × 480, 4:2:0) for Chromium's fake camera:
/// the QR code for `payload`, turned 12 degrees, on a grey, uneven
/// background, as a phone held up to the camera would show it.
fn write_qr_video(payload: &str, path: &Path) -> anyhow::Result<()> {
    let png = rxchain::qr::render_png(payload, 4)?;
    let code = image::load_from_memory(&png)?.to_luma8();
    let (w, h) = (640u32, 480u32);
    let (cx, cy) = (w as f64 / 2.0 + 20.0, h as f64 / 2.0 - 10.0);
    let (sin, cos) = 12f64.to_radians().sin_cos();
    let (hw, hh) = (code.width() as f64 / 2.0, code.height() as f64 / 2.0);
    let mut luma = vec![0u8; (w * h) as usize];
    for y in 0..h {
        for x in 0..w {
            // Where this pixel comes from in the upright code.
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let (sx, sy) = (cos * dx + sin * dy + hw, -sin * dx + cos * dy + hh);
            let noise = ((x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) % 19) as u8;
            let v = if sx >= 0.0
                && sy >= 0.0
                && (sx as u32) < code.width()
                && (sy as u32) < code.height()
            {
                if code.get_pixel(sx as u32, sy as u32).0[0] < 128 {
                    30
                } else {
                    225
                }
            } else {
                150u8
                    .saturating_add(((x + y) * 40 / (w + h)) as u8)
                    .saturating_add(noise)
            };
            luma[(y * w + x) as usize] = v;
        }
    }
    let mut out = format!("YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg\n").into_bytes();
    let chroma = vec![128u8; (w / 2 * h / 2) as usize];
    for _ in 0..2 {
        out.extend_from_slice(b"FRAME\n");
        out.extend_from_slice(&luma);
        out.extend_from_slice(&chroma);
        out.extend_from_slice(&chroma);
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// Decodes `%XX` escapes in a URL fragment.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
