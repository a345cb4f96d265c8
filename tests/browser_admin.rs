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
use std::time::Instant;

use anyhow::{bail, Context};
use common::browser::{artifacts_dir, browser_tools, Browser, ChromeDriver, POLL, WAIT};
use rxchain::cli::{AdminAction, AdminArgs, BootstrapArgs};
use rxchain::demo::{admin_key, Demo};
use rxchain::node::RunningNode;
use rxchain::test_support::{demo_settings, register_demo_staff, wait_for_leader};
use thirtyfour::prelude::*;

const ADMIN_PW: &str = "north admin violet harbour";
const INITIAL_PW: &str = "initial tram ninety lamps";
const DOCTOR_PW: &str = "doctor chose quiet maple river";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_admin_enrols_a_doctor_who_is_then_disabled_in_chromium() -> anyhow::Result<()> {
    let Some((chromium, chromedriver)) = browser_tools("the admin browser test")? else {
        return Ok(());
    };
    let artifacts = artifacts_dir("browser-admin-artifacts")?;
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
    let row = admin
        .wait_text("#outbox tbody tr[data-state=sent]", "Sent")
        .await?;
    if !row.contains("QR code") || !row.contains("example.invalid") || row.contains("grace.patient")
    {
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
                bail!(
                    "one message expected under {}, found {emls:?}",
                    dir.display()
                );
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
