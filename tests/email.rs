//! Patient e-mail through a real SMTP server (issue 12): aiosmtpd with
//! STARTTLS and AUTH required (`scripts/smtp-server.py`, installed by
//! `scripts/install-test-deps.sh`), a real node sending through lettre.
//!
//! Each message is parsed as MIME; the QR mail's inline PNG is decoded with
//! the project's QR decoder and must be the prescription's payload.
//!
//! Without python3 and aiosmtpd these tests fail, unless
//! `RXCHAIN_SKIP_EMAIL=1` opts out (they then say SKIPPED on stderr).

mod common;
mod procs;
mod staff_client;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mail_parser::{MessageParser, MimeHeaders};
use rxchain::config::{EmailSettings, EmailTransport, Secret};
use rxchain::qr::{decode_image, DecodeLimits};
use rxchain::test_support::{
    create_demo_accounts, demo_settings, register_demo_staff, wait_for_leader,
};
use serde_json::{json, Value};
use staff_client::{issue_body, post_anon, Staff};

const SKIP_VAR: &str = "RXCHAIN_SKIP_EMAIL";
const USER: &str = "rxchain-test";
const PASSWORD: &str = "synthetic-smtp-password";

/// Whether the tests were told to do without the SMTP server.
fn skipped(test: &str) -> bool {
    let skip = std::env::var(SKIP_VAR).is_ok_and(|v| v == "1");
    if skip {
        eprintln!("SKIPPED {test}: {SKIP_VAR}=1 is set");
    }
    skip
}

/// A certificate authority and a server certificate for 127.0.0.1, as PEM
/// files under `dir`: (ca, cert, key).
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let (c, l, k) = (
        dir.join("ca.pem"),
        dir.join("smtp.crt"),
        dir.join("smtp.key"),
    );
    std::fs::write(&c, ca.pem()).unwrap();
    std::fs::write(&l, leaf.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, l, k)
}

/// The SMTP server process and where it writes what it receives.
struct Smtp {
    dir: tempfile::TempDir,
    maildir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    port: u16,
    child: Option<Child>,
    reject: Option<String>,
}

impl Smtp {
    /// Starts the server on a free port; `reject` makes it answer 550 to
    /// recipients containing it.
    fn start(reject: Option<&str>) -> Smtp {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = tls_files(dir.path());
        let mut s = Smtp {
            maildir: dir.path().join("mail"),
            dir,
            ca,
            cert,
            key,
            port: 0,
            child: None,
            reject: reject.map(str::to_string),
        };
        s.up();
        s
    }

    /// (Re)starts the process, on the port it had if any.
    fn up(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/smtp-server.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .args(["--port", &self.port.to_string()])
            .arg("--cert")
            .arg(&self.cert)
            .arg("--key")
            .arg(&self.key)
            .args(["--user", USER, "--password", PASSWORD])
            .arg("--maildir")
            .arg(&self.maildir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(r) = &self.reject {
            cmd.args(["--reject", r]);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run python3 for the SMTP server ({e}); run scripts/install-test-deps.sh or set {SKIP_VAR}=1")
        });
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("the SMTP server did not start (is aiosmtpd installed? run scripts/install-test-deps.sh or set {SKIP_VAR}=1); it said {line:?}")
            });
        self.port = port;
        self.child = Some(child);
    }

    /// Stops the process (an outage).
    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The node's `[email]` settings for this server.
    fn settings(&self) -> EmailSettings {
        EmailSettings {
            transport: EmailTransport::Smtp,
            smtp_url: format!("smtp://127.0.0.1:{}", self.port),
            username: Some(USER.into()),
            password: Some(Secret::new(PASSWORD.to_string())),
            ca_file: Some(self.ca.clone()),
            from: "North Hospital <no-reply@hosp-north.example.invalid>".into(),
            reply_to: Some("help@hosp-north.example.invalid".into()),
            public_url: "https://rx.example.invalid".into(),
            max_per_minute: 0,
            retry_initial_ms: 1_000,
            timeout_secs: 5,
            ..EmailSettings::default()
        }
    }

    /// Every message received so far, in order of arrival.
    fn received(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<_> = match std::fs::read_dir(&self.maildir) {
            Ok(d) => d
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// Waits until `n` messages arrived, then a little more to see that no
    /// further one comes.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + within;
        while self.received().len() < n {
            assert!(
                Instant::now() < deadline,
                "{n} messages expected within {within:?}, got {}",
                self.received().len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let got = self.received();
        assert_eq!(got.len(), n, "exactly {n} messages, no more");
        got
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.down();
        let _ = &self.dir;
    }
}

/// A one-node demo consortium sending through `email`, with the demo's
/// staff and accounts.
async fn start_node(email: EmailSettings) -> common::TestNode {
    let dir = tempfile::tempdir().unwrap();
    let demo = rxchain::demo::Demo::load().unwrap();
    demo.write_files(dir.path(), &[1]).unwrap();
    let mut settings = demo_settings(dir.path(), 1, "127.0.0.1:0".parse().unwrap(), None);
    settings.email = email;
    let node = rxchain::node::start(settings).await.expect("node starts");
    wait_for_leader(&node).await.unwrap();
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

fn issue_with_email(patient: &str, email: &str, lang: &str) -> Value {
    let mut b = issue_body(patient, 14);
    b["patient"]["email"] = json!(email);
    b["email_code"] = json!(true);
    b["lang"] = json!(lang);
    b
}

/// Parses a received message: (subject, message id, plain text, html, the
/// inline `cid:qr` PNG if any).
fn parse(raw: &[u8]) -> (String, String, String, String, Option<Vec<u8>>) {
    let m = MessageParser::default().parse(raw).expect("a MIME message");
    let png = m
        .attachments()
        .find(|p| p.content_id() == Some("qr"))
        .map(|p| {
            let ct = p.content_type().expect("a content type");
            assert_eq!(
                (ct.ctype(), ct.subtype()),
                ("image", Some("png")),
                "the inline QR is a PNG"
            );
            p.contents().to_vec()
        });
    (
        m.subject().unwrap_or_default().to_string(),
        m.message_id().unwrap_or_default().to_string(),
        m.body_text(0).unwrap_or_default().to_string(),
        m.body_html(0).unwrap_or_default().to_string(),
        png,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_pickup_lifecycle_mails_the_patient_in_order() {
    if skipped("the_whole_pickup_lifecycle_mails_the_patient_in_order") {
        return;
    }
    let smtp = Smtp::start(None);
    let t = start_node(smtp.settings()).await;
    let ada = Staff::sign_in(&t.base, "dr.ada").await;
    let cara = Staff::sign_in(&t.base, "ph.cara").await;

    let issued = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_with_email(
                "Synthetic Mail Patient",
                "patient.one@example.invalid",
                "en",
            ),
        )
        .await;
    let id = issued["id"].as_str().unwrap().to_string();
    let short = issued["short_id"].as_str().unwrap().to_string();
    let payload = issued["payload"].as_str().unwrap().to_string();
    let (s, _, r) = post_anon(
        &t.base,
        "/v1/patient/assign",
        &json!({"payload": payload, "mode": "pickup", "pharmacy": "pharm-central"}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    cara.ok("/v1/staff/claim", &json!({"payload": payload}))
        .await;
    cara.ok(
        "/v1/staff/delivery",
        &json!({"id": id, "status": "ready_for_pickup"}),
    )
    .await;
    cara.ok(
        "/v1/staff/dispense",
        &json!({"id": id, "lines": [{"item": 0, "quantity": 5, "batch": "LOT-M1"}], "complete": false}),
    )
    .await;
    cara.ok(
        "/v1/staff/dispense",
        &json!({"id": id, "lines": [{"item": 0, "quantity": 15, "batch": "LOT-M2"}, {"item": 1, "quantity": 10, "batch": "LOT-M3"}], "complete": false}),
    )
    .await;

    let got = smtp.wait_for(6, Duration::from_secs(60)).await;
    let parsed: Vec<_> = got.iter().map(|m| parse(m)).collect();
    let subjects: Vec<&str> = parsed.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        subjects,
        [
            format!("Your e-prescription {short}"),
            format!("Prescription {short}: pharmacy chosen"),
            format!("Prescription {short}: being prepared"),
            format!("Prescription {short}: ready for pickup"),
            format!("Prescription {short}: partly dispensed"),
            format!("Prescription {short}: dispensed"),
        ]
    );
    // No subject names a drug.
    for s in &subjects {
        assert!(!s.contains("Amoxicillin") && !s.contains("Tramadol"), "{s}");
    }
    // Stable, distinct Message-IDs naming the prescription.
    let ids: std::collections::BTreeSet<&str> = parsed.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(ids.len(), 6, "{ids:?}");
    let hex_id = hex::encode(
        rxchain::qr::QrPayload::parse(&payload)
            .unwrap()
            .id
            .as_bytes(),
    );
    assert!(ids.iter().all(|m| m.starts_with(&hex_id)), "{ids:?}");

    // The QR mail: the inline PNG decodes to the payload; text and HTML
    // carry the patient link and the validity; no unsubscribe link.
    let (_, _, text, html, png) = &parsed[0];
    let png = png.clone().expect("the QR mail has an inline PNG");
    let decoded = tokio::task::spawn_blocking(move || decode_image(&png, &DecodeLimits::default()))
        .await
        .unwrap()
        .expect("the inline QR decodes");
    assert_eq!(decoded, payload);
    let link = format!("https://rx.example.invalid/patient/#{payload}");
    assert!(text.contains(&link), "{text}");
    assert!(html.contains("cid:qr") && html.contains(&link), "{html}");
    assert!(!text.contains("unsubscribe"), "{text}");
    // Status mail carries the unsubscribe link and no secret.
    let (_, _, text, _, png) = &parsed[4];
    assert!(png.is_none());
    assert!(text.contains("/v1/email/unsubscribe?rx="), "{text}");
    assert!(!text.contains(&payload), "{text}");
    assert!(text.contains("Tramadol 50 mg: 10"), "what remains: {text}");
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chinese_prescriptions_are_mailed_in_chinese_and_a_550_marks_the_message_failed() {
    if skipped("chinese_prescriptions_are_mailed_in_chinese_and_a_550_marks_the_message_failed") {
        return;
    }
    let smtp = Smtp::start(Some("refused"));
    let t = start_node(smtp.settings()).await;
    let ada = Staff::sign_in(&t.base, "dr.ada").await;
    let ok = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_with_email("Synthetic Zh", "zh.patient@example.invalid", "zh"),
        )
        .await;
    ada.ok(
        "/v1/staff/prescriptions",
        &issue_with_email("Synthetic Refused", "refused@example.invalid", "en"),
    )
    .await;
    let got = smtp.wait_for(1, Duration::from_secs(60)).await;
    let (subject, _, text, _, _) = parse(&got[0]);
    assert_eq!(
        subject,
        format!("您的电子处方 {}", ok["short_id"].as_str().unwrap())
    );
    assert!(text.contains("有效期至"), "{text}");
    // The refused one is failed at once (a permanent answer), not retried.
    let outbox = t.node.service.outbox.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (queued, failed) = outbox.depth();
        if failed == 1 {
            assert_eq!(queued, 0);
            break;
        }
        assert!(Instant::now() < deadline, "the 550 was never marked failed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let list = outbox.list(10).unwrap();
    let failed = list
        .iter()
        .find(|(s, _)| *s == rxchain::email::MessageState::Failed)
        .unwrap();
    assert_eq!(failed.1.attempts, 1, "a permanent refusal is not retried");
    assert!(
        failed.1.last_error.as_deref().unwrap_or("").contains("550"),
        "{:?}",
        failed.1.last_error
    );
    let metrics = reqwest::get(format!("{}/metrics", t.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("rxchain_email_failed 1"), "{metrics}");
    assert!(
        metrics.contains("rxchain_email_outbox_depth 0"),
        "{metrics}"
    );
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_outage_of_30_seconds_delays_mail_and_slows_nothing() {
    if skipped("an_smtp_outage_of_30_seconds_delays_mail_and_slows_nothing") {
        return;
    }
    let mut smtp = Smtp::start(None);
    let t = start_node(smtp.settings()).await;
    smtp.down();
    let ada = Staff::sign_in(&t.base, "dr.ada").await;
    let started = Instant::now();
    let mut payloads = Vec::new();
    for i in 0..3 {
        let issued = ada
            .ok(
                "/v1/staff/prescriptions",
                &issue_with_email(
                    &format!("Synthetic Outage {i}"),
                    &format!("outage{i}@example.invalid"),
                    "en",
                ),
            )
            .await;
        payloads.push(issued["payload"].as_str().unwrap().to_string());
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "issuing during an outage took {took:?}"
    );
    // The outbox fills, the metrics show it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = reqwest::get(format!("{}/metrics", t.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("rxchain_email_outbox_depth 3"),
        "{metrics}"
    );
    tokio::time::sleep(Duration::from_secs(28)).await;
    assert!(smtp.received().is_empty());
    smtp.up();
    let got = smtp.wait_for(3, Duration::from_secs(90)).await;
    let mut decoded = Vec::new();
    for raw in &got {
        let png = parse(raw).4.expect("a QR mail");
        decoded.push(
            tokio::task::spawn_blocking(move || decode_image(&png, &DecodeLimits::default()))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    decoded.sort();
    payloads.sort();
    assert_eq!(decoded, payloads);
    t.node.stop().await;
}

/// Spawns `rxchain node` on `cfg` and waits until it listens.
fn spawn_node(cfg: &Path) -> (Child, u16) {
    let dir = cfg.parent().unwrap();
    common::spawned::forget_addr(dir, 1);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rxchain"))
        .args(["node", "--config"])
        .arg(cfg)
        .env("RXCHAIN_LOG", "warn")
        // The SMTP password as an operator would give it: a setting from
        // the environment, never in the file.
        .env("RXCHAIN_EMAIL__PASSWORD", PASSWORD)
        .stdout(Stdio::null())
        .stderr(common::spawned::log_sink(dir, 1))
        .spawn()
        .expect("spawn rxchain node");
    let port = common::spawned::wait_bound(&mut child, dir, 1);
    (child, port)
}

async fn wait_applied(client: &rxchain::client::Client, tx: &rxchain_contracts::SignedTx) {
    match client.submit(tx).await.expect("submitted") {
        rxchain::client::Submitted::Applied(r) => {
            assert!(r.outcome.is_applied(), "{:?}", r.outcome)
        }
        rxchain::client::Submitted::Pending(poll) => panic!("not committed in time: {poll}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_between_apply_and_send_still_sends_exactly_one_message() {
    if skipped("a_sigkill_between_apply_and_send_still_sends_exactly_one_message") {
        return;
    }
    let mut smtp = Smtp::start(None);
    smtp.down();
    let dir = tempfile::tempdir().unwrap();
    let demo = rxchain::demo::Demo::load().unwrap();
    demo.write_files(dir.path(), &[1]).unwrap();
    // Node 1 is its hospital's node and holds the hospital's data key, which
    // opens the address sealed in an issue signed outside the web app.
    let hospital = demo.genesis.node(1).unwrap().0.id.clone();
    rxchain::keys::write_new(
        &dir.path().join("data.key"),
        &rxchain::demo::data_key(hospital.as_str()),
    )
    .unwrap();
    let doctor = demo
        .staff
        .iter()
        .find(|s| s.org == hospital.as_str() && s.role == rxchain_contracts::tx::Role::Practitioner)
        .expect("a doctor of node 1's hospital")
        .username
        .clone();
    let s = smtp.settings();
    let cfg = dir.path().join("node.toml");
    std::fs::write(
        &cfg,
        format!(
            "node_id = 1\ndata_dir = \"node1\"\ngenesis = \"genesis.json\"\nnode_key_file = \"node1.key\"\ndata_key_file = \"data.key\"\n{}bootstrap = true\n[email]\ntransport = \"smtp\"\nsmtp_url = \"{}\"\nusername = \"{USER}\"\nca_file = \"{}\"\npublic_url = \"https://rx.example.invalid\"\nretry_initial_ms = 500\nmax_per_minute = 0\n",
            common::spawned::listen_any(1),
            s.smtp_url,
            s.ca_file.unwrap().display(),
        ),
    )
    .unwrap();
    let (mut child, port) = spawn_node(&cfg);
    common::spawned::pin_listen(&cfg, 1, port);
    let client = rxchain::client::Client::new(format!("http://127.0.0.1:{port}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = format!("http://127.0.0.1:{port}/readyz");
    while !reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200) {
        assert!(Instant::now() < deadline, "the node never answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    register_demo_staff(&demo, &client).await.unwrap();

    let mut input = common::issue::atorvastatin_issue(
        hospital.as_str(),
        30,
        0,
        common::issue::SyntheticPatient {
            name: "Synthetic Crash Mail".into(),
            birth_date: "1970-01-01",
            identifier: "SYN-MAIL-1".into(),
        },
        "one tablet at night",
    );
    input.content.patient.email = Some("crash.patient@example.invalid".into());
    let g = demo.genesis.clone();
    let new = rxchain::txbuild::issue(&g, &rxchain::demo::staff_key(&doctor), input).unwrap();
    wait_applied(&client, &new.tx).await;
    let pharmacy = g
        .orgs
        .iter()
        .find(|o| g.is_pharmacy(&o.id))
        .unwrap()
        .id
        .clone();
    let assign = rxchain::txbuild::assign_pickup(&g, &new.payload, &pharmacy).unwrap();
    wait_applied(&client, &assign).await;
    // Applied, queued, not sent (the server is down): kill the node now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(smtp.received().is_empty());

    smtp.up();
    let (mut child, _) = spawn_node(&cfg);
    let got = smtp.wait_for(1, Duration::from_secs(60)).await;
    let (subject, message_id, ..) = parse(&got[0]);
    assert_eq!(
        subject,
        format!("Prescription {}: pharmacy chosen", new.payload.id.short())
    );
    assert!(
        message_id.starts_with(&hex::encode(new.payload.id.as_bytes())),
        "{message_id}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        // A folder not written yet holds nothing.
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_node_but_the_issuing_one_holds_the_patients_address() {
    const ADDRESS: &str = "privacy.patient.7731@example.invalid";
    let keys = tempfile::tempdir().unwrap();
    let demo = rxchain::demo::Demo::load().unwrap();
    let hospital = demo.genesis.node(1).unwrap().0.id.clone();
    let key_file = keys.path().join("data.key");
    rxchain::keys::write_new(&key_file, &rxchain::demo::data_key(hospital.as_str())).unwrap();
    let line = format!("data_key_file = \"{}\"\n", key_file.display());
    let p = procs::Procs::start(&[1, 2, 3], move |id| {
        if id == 1 {
            line.clone()
        } else {
            String::new()
        }
    })
    .await;
    let client = rxchain::client::Client::new(p.base(1));
    register_demo_staff(&p.demo, &client).await.unwrap();
    let doctor = p
        .demo
        .staff
        .iter()
        .find(|s| s.org == hospital.as_str() && s.role == rxchain_contracts::tx::Role::Practitioner)
        .unwrap()
        .username
        .clone();
    let mut input = common::issue::atorvastatin_issue(
        hospital.as_str(),
        30,
        0,
        common::issue::SyntheticPatient {
            name: "Synthetic Privacy".into(),
            birth_date: "1970-01-01",
            identifier: "SYN-PRIV-1".into(),
        },
        "one tablet at night",
    );
    input.content.patient.email = Some(ADDRESS.into());
    let g = p.genesis.clone();
    let new = rxchain::txbuild::issue(&g, &rxchain::demo::staff_key(&doctor), input).unwrap();
    p.commit(1, &new.tx).await;
    let pharmacy = g
        .orgs
        .iter()
        .find(|o| g.is_pharmacy(&o.id))
        .unwrap()
        .id
        .clone();
    p.commit(
        1,
        &rxchain::txbuild::assign_pickup(&g, &new.payload, &pharmacy).unwrap(),
    )
    .await;
    // The issuing node mailed it (the demo's file outbox): the scan finds
    // the address there, so it would find it anywhere else too.
    let deadline = Instant::now() + Duration::from_secs(60);
    while files_containing(&p.data_dir(1).join("outbox"), ADDRESS.as_bytes()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the issuing node never wrote the message"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every node applied both blocks.
    let height = p.head(1).await.unwrap()["height"].as_u64().unwrap();
    for id in [2, 3] {
        let deadline = Instant::now() + Duration::from_secs(60);
        while p
            .head(id)
            .await
            .and_then(|h| h["height"].as_u64())
            .unwrap_or(0)
            < height
        {
            assert!(Instant::now() < deadline, "node {id} did not catch up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for id in [2, 3] {
        let hits = files_containing(&p.data_dir(id), ADDRESS.as_bytes());
        assert!(hits.is_empty(), "node {id} holds the address in {hits:?}");
        assert!(
            !p.data_dir(id).join("outbox").exists(),
            "node {id} wrote no message"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_email_button_sends_the_code_once_and_unsubscribing_stops_status_mail() {
    if skipped("the_email_button_sends_the_code_once_and_unsubscribing_stops_status_mail") {
        return;
    }
    let smtp = Smtp::start(None);
    let t = start_node(smtp.settings()).await;
    let ada = Staff::sign_in(&t.base, "dr.ada").await;
    let cara = Staff::sign_in(&t.base, "ph.cara").await;
    // The code cannot be mailed without an address: a field error at issue.
    let mut no_address = issue_body("Synthetic No Address", 14);
    no_address["patient"]
        .as_object_mut()
        .unwrap()
        .remove("email");
    no_address["email_code"] = json!(true);
    staff_client::assert_error(
        &ada.post("/v1/staff/prescriptions", &no_address).await,
        400,
        "bad_patient",
    );
    // A malformed address is refused as before.
    let mut bad = issue_with_email("Synthetic Bad Address", "not an address", "en");
    bad["email_code"] = json!(false);
    staff_client::assert_error(
        &ada.post("/v1/staff/prescriptions", &bad).await,
        400,
        "bad_patient",
    );

    let mut body = issue_with_email("Synthetic Button", "button.patient@example.invalid", "en");
    body["email_code"] = json!(false);
    let issued = ada.ok("/v1/staff/prescriptions", &body).await;
    let id = issued["id"].as_str().unwrap().to_string();
    let payload = issued["payload"].as_str().unwrap().to_string();
    let path = format!("/v1/staff/prescriptions/{id}/email");
    let first = ada.ok(&path, &json!({"payload": payload})).await;
    assert_eq!(first["queued"], true);
    let again = ada.ok(&path, &json!({"payload": payload})).await;
    assert_eq!(again["queued"], false, "the code is mailed once");
    let got = smtp.wait_for(1, Duration::from_secs(60)).await;
    let png = parse(&got[0]).4.expect("the QR mail");
    let decoded = tokio::task::spawn_blocking(move || decode_image(&png, &DecodeLimits::default()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decoded, payload);

    // One status mail, then the patient follows its unsubscribe link.
    post_anon(
        &t.base,
        "/v1/patient/assign",
        &json!({"payload": payload, "mode": "pickup", "pharmacy": "pharm-central"}),
    )
    .await;
    let got = smtp.wait_for(2, Duration::from_secs(60)).await;
    let text = parse(&got[1]).2;
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/v1/email/unsubscribe?"))
        .expect("an unsubscribe link");
    let query = link.split_once('?').unwrap().1;
    let forged = query.replace("token=", "token=00");
    let r = reqwest::get(format!("{}/v1/email/unsubscribe?{forged}", t.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = reqwest::get(format!("{}/v1/email/unsubscribe?{query}", t.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("stopped"));
    cara.ok("/v1/staff/claim", &json!({"payload": payload}))
        .await;
    cara.ok(
        "/v1/staff/delivery",
        &json!({"id": id, "status": "ready_for_pickup"}),
    )
    .await;
    smtp.wait_for(2, Duration::from_secs(5)).await;
    // The patient page's switch turns it on again (the code proves the holder).
    let (s, _, r) = post_anon(
        &t.base,
        "/v1/patient/email",
        &json!({"payload": payload, "subscribed": true}),
    )
    .await;
    assert_eq!((s.as_u16(), &r["subscribed"]), (200, &json!(true)), "{r}");
    cara.ok(
        "/v1/staff/dispense",
        &json!({"id": id, "lines": [{"item": 0, "quantity": 20, "batch": "LOT-B1"}, {"item": 1, "quantity": 10, "batch": "LOT-B2"}], "complete": true}),
    )
    .await;
    let got = smtp.wait_for(3, Duration::from_secs(60)).await;
    assert_eq!(
        parse(&got[2]).0,
        format!(
            "Prescription {}: dispensed",
            issued["short_id"].as_str().unwrap()
        )
    );
    // The outbox view is for the hospital's staff admins, not its doctors.
    let (s, _, r) = ada.get("/v1/staff/outbox").await;
    assert_eq!(
        (s.as_u16(), r["code"].as_str()),
        (403, Some("wrong_role")),
        "{r}"
    );
    // It lists all three as sent, addresses by domain only.
    let admin = Staff::sign_in(&t.base, "alex.admin").await;
    let (s, _, rows) = admin.get("/v1/staff/outbox").await;
    assert_eq!(s, 200, "{rows}");
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["state"] == "sent" && r["to_domain"] == "example.invalid"),
        "{rows:?}"
    );
    assert!(!serde_json::to_string(rows)
        .unwrap()
        .contains("button.patient"));
    t.node.stop().await;
}

/// The `To` address of a received message.
fn to_of(raw: &[u8]) -> String {
    let m = MessageParser::default().parse(raw).expect("a MIME message");
    m.to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .expect("a To address")
        .to_string()
}

/// `rxchain_email_scans_total` on the node's `/metrics`.
async fn scans(base: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("rxchain_email_scans_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rxchain_email_scans_total in {text}"))
}

/// Waits until the scheduler has completed `more` further runs.
async fn wait_scans(base: &str, more: u64) {
    let start = scans(base).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while scans(base).await < start + more {
        assert!(
            Instant::now() < deadline,
            "the scheduler did not run {more} more times"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Issues a prescription valid `days` for `email`, without the code mail.
async fn issue_for(ada: &Staff, name: &str, email: &str, days: u32) -> (String, String) {
    let mut body = issue_with_email(name, email, "en");
    body["email_code"] = json!(false);
    body["valid_days"] = json!(days);
    let r = ada.ok("/v1/staff/prescriptions", &body).await;
    (
        r["id"].as_str().unwrap().to_string(),
        r["payload"].as_str().unwrap().to_string(),
    )
}

async fn choose_central(base: &str, payload: &str) {
    let (s, _, r) = post_anon(
        base,
        "/v1/patient/assign",
        &json!({"payload": payload, "mode": "pickup", "pharmacy": "pharm-central"}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_scheduler_reminds_once_and_only_of_unfilled_prescriptions_ending_soon() {
    if skipped("the_expiry_scheduler_reminds_once_and_only_of_unfilled_prescriptions_ending_soon") {
        return;
    }
    let smtp = Smtp::start(None);
    let dir = tempfile::tempdir().unwrap();
    let demo = rxchain::demo::Demo::load().unwrap();
    demo.write_files(dir.path(), &[1]).unwrap();
    // First life: the scheduler runs at start-up, then not for an hour, so
    // the prescriptions below are all in place before it looks at them.
    let (node, base) = common::boot(dir.path(), |s| {
        s.email = smtp.settings();
        s.email.scan_secs = 3600;
    })
    .await;
    register_demo_staff(&demo, &rxchain::client::Client::new(base.clone()))
        .await
        .unwrap();
    create_demo_accounts(&demo, &node.accounts).await.unwrap();
    let ada = Staff::sign_in(&base, "dr.ada").await;
    let cara = Staff::sign_in(&base, "ph.cara").await;
    // Ending within 3 days and unfilled: reminded.
    let (a, _) = issue_for(&ada, "Synthetic Expiring", "expiring.a@example.invalid", 2).await;
    // Ending in 20 days: not yet.
    issue_for(&ada, "Synthetic Later", "later.b@example.invalid", 20).await;
    // Ending within 3 days but dispensed: nothing to remind of.
    let (c, pc) = issue_for(&ada, "Synthetic Filled", "filled.c@example.invalid", 2).await;
    choose_central(&base, &pc).await;
    cara.ok("/v1/staff/claim", &json!({"payload": pc})).await;
    cara.ok(
        "/v1/staff/dispense",
        &json!({"id": c, "lines": [{"item": 0, "quantity": 20, "batch": "LOT-X1"}, {"item": 1, "quantity": 10, "batch": "LOT-X2"}], "complete": true}),
    )
    .await;
    // Ending within 3 days, but the patient turned status mail off.
    let (_, pd) = issue_for(&ada, "Synthetic Quiet", "quiet.d@example.invalid", 2).await;
    let (s, _, r) = post_anon(
        &base,
        "/v1/patient/email",
        &json!({"payload": pd, "subscribed": false}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    // Claimed by the pharmacy but not collected: still unfilled, reminded.
    let (e, pe) = issue_for(&ada, "Synthetic Claimed", "claimed.e@example.invalid", 2).await;
    choose_central(&base, &pe).await;
    cara.ok("/v1/staff/claim", &json!({"payload": pe})).await;
    // C: chosen, claimed, dispensed; E: chosen, claimed.
    let before = smtp.wait_for(5, Duration::from_secs(60)).await;
    assert!(
        before.iter().all(|m| !parse(m).0.ends_with("expires soon")),
        "no reminder before the scheduler's next run"
    );
    node.stop().await;

    // Second life: the scheduler runs every second.
    let (node, base) = common::boot(dir.path(), |s| {
        s.email = smtp.settings();
        s.email.scan_secs = 1;
    })
    .await;
    let got = smtp.wait_for(7, Duration::from_secs(60)).await;
    let reminders = |got: &[Vec<u8>]| -> Vec<(String, String, String)> {
        got.iter()
            .filter(|m| parse(m).0.ends_with("expires soon"))
            .map(|m| {
                let (subject, _, text, _, _) = parse(m);
                (to_of(m), subject, text)
            })
            .collect()
    };
    let mut r = reminders(&got);
    r.sort();
    assert_eq!(
        r.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
        ["claimed.e@example.invalid", "expiring.a@example.invalid"],
        "reminders for A and E only"
    );
    for ((_, subject, text), id) in r.iter().zip([&e, &a]) {
        let rec = reqwest::get(format!("{base}/v1/prescriptions/{id}"))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let short_id = rec["short_id"].as_str().unwrap_or_else(|| panic!("{rec}"));
        assert_eq!(subject, &format!("Prescription {short_id}: expires soon"));
        assert!(text.contains("has not been filled"), "{text}");
    }
    // More runs of the scheduler remind nobody twice.
    wait_scans(&base, 3).await;
    assert_eq!(
        smtp.received().len(),
        7,
        "each prescription is reminded at most once"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_sent_mail_and_the_address_of_closed_prescriptions_only() {
    if skipped("retention_deletes_sent_mail_and_the_address_of_closed_prescriptions_only") {
        return;
    }
    let smtp = Smtp::start(None);
    let mut settings = smtp.settings();
    settings.retention_days = 0;
    settings.scan_secs = 1;
    let t = start_node(settings).await;
    let ada = Staff::sign_in(&t.base, "dr.ada").await;
    let cara = Staff::sign_in(&t.base, "ph.cara").await;
    let admin = Staff::sign_in(&t.base, "alex.admin").await;
    // X runs its whole course; Y stays open.
    let (x, px) = issue_for(&ada, "Synthetic Closed", "closed.x@example.invalid", 14).await;
    let (_, py) = issue_for(&ada, "Synthetic Open", "open.y@example.invalid", 14).await;
    choose_central(&t.base, &px).await;
    choose_central(&t.base, &py).await;
    cara.ok("/v1/staff/claim", &json!({"payload": px})).await;
    cara.ok(
        "/v1/staff/dispense",
        &json!({"id": x, "lines": [{"item": 0, "quantity": 20, "batch": "LOT-R1"}, {"item": 1, "quantity": 10, "batch": "LOT-R2"}], "complete": true}),
    )
    .await;
    // X: chosen, claimed, dispensed; Y: chosen.
    smtp.wait_for(4, Duration::from_secs(60)).await;
    // With no retention, the sent messages go at the next runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, _, rows) = admin.get("/v1/staff/outbox").await;
        assert_eq!(s, 200, "{rows}");
        if rows.as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sent messages are never pruned: {rows}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_scans(&t.base, 2).await;
    // The closed prescription's address is gone from the node...
    let (s, _, r) = post_anon(
        &t.base,
        "/v1/patient/email",
        &json!({"payload": px, "subscribed": true}),
    )
    .await;
    assert_eq!(
        (s.as_u16(), r["code"].as_str()),
        (404, Some("no_email")),
        "{r}"
    );
    // ...the open one's is kept, and its patient still hears of it.
    let (s, _, r) = post_anon(
        &t.base,
        "/v1/patient/email",
        &json!({"payload": py, "subscribed": true}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    cara.ok("/v1/staff/claim", &json!({"payload": py})).await;
    let got = smtp.wait_for(5, Duration::from_secs(60)).await;
    assert_eq!(to_of(&got[4]), "open.y@example.invalid");
    assert!(
        parse(&got[4]).0.ends_with("being prepared"),
        "{}",
        parse(&got[4]).0
    );
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hospital_node_caught_up_by_a_snapshot_mails_where_things_stand_once() {
    if skipped("a_hospital_node_caught_up_by_a_snapshot_mails_where_things_stand_once") {
        return;
    }
    use common::inproc::{applied_index, is_voter, partition, purged_past, start, wait_until};
    let smtp = Smtp::start(None);
    let dir = tempfile::tempdir().unwrap();
    let demo = rxchain::demo::Demo::load().unwrap();
    demo.write_files(dir.path(), &[1, 2, 3]).unwrap();
    // Node 1 is North Hospital's, the one that mails its patients.
    let email = smtp.settings();
    let n1 = start(dir.path(), 1, None, |s| s.email = email).await;
    wait_for_leader(&n1).await.unwrap();
    let addr1 = n1.addr.to_string();
    let n2 = start(dir.path(), 2, Some(&addr1), |_| {}).await;
    let n3 = start(dir.path(), 3, Some(&addr1), |_| {}).await;
    wait_until("nodes 2 and 3 are voters", 60, || {
        is_voter(&n1, 2) && is_voter(&n1, 3)
    })
    .await;
    let (base1, base2) = (format!("http://{}", n1.addr), format!("http://{}", n2.addr));
    register_demo_staff(&demo, &rxchain::client::Client::new(base1.clone()))
        .await
        .unwrap();
    create_demo_accounts(&demo, &n1.accounts).await.unwrap();
    create_demo_accounts(&demo, &n2.accounts).await.unwrap();
    let ada = Staff::sign_in(&base1, "dr.ada").await;
    let issued = ada
        .ok(
            "/v1/staff/prescriptions",
            &issue_with_email("Synthetic Away", "away.patient@example.invalid", "en"),
        )
        .await;
    let id = issued["id"].as_str().unwrap().to_string();
    let payload = issued["payload"].as_str().unwrap().to_string();
    smtp.wait_for(1, Duration::from_secs(60)).await;

    // The hospital's node is cut off; its last block settles first.
    let nodes = [&n1, &n2, &n3];
    partition(&nodes, Some(1));
    let mut cut_at = n1.chain.tip();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if n1.chain.tip() == cut_at {
            break;
        }
        cut_at = n1.chain.tip();
    }
    let cut_index = applied_index(&n1);
    wait_until("node 2 or 3 leads", 60, || {
        matches!(n2.raft.metrics().borrow().current_leader, Some(2 | 3))
    })
    .await;
    // Meanwhile the patient chooses Central, which claims, readies and
    // dispenses everything; more blocks follow, past a snapshot.
    choose_central(&base2, &payload).await;
    let cara = Staff::sign_in(&base2, "ph.cara").await;
    cara.ok("/v1/staff/claim", &json!({"payload": payload}))
        .await;
    cara.ok(
        "/v1/staff/delivery",
        &json!({"id": id, "status": "ready_for_pickup"}),
    )
    .await;
    cara.ok(
        "/v1/staff/dispense",
        &json!({"id": id, "lines": [{"item": 0, "quantity": 20, "batch": "LOT-S1"}, {"item": 1, "quantity": 10, "batch": "LOT-S2"}], "complete": true}),
    )
    .await;
    common::inproc::commit_blocks(
        &demo,
        &rxchain::client::Client::new(base2.clone()),
        "mail",
        6,
    )
    .await;
    wait_until(
        "nodes 2 and 3 built a snapshot past node 1 and purged",
        60,
        || purged_past(&n2, cut_index) && purged_past(&n3, cut_index),
    )
    .await;
    assert_eq!(n1.chain.tip(), cut_at, "a cut-off node learns nothing");
    assert_eq!(smtp.received().len(), 1, "and mails nothing");
    let installed_before = n1.raft.metrics().borrow().snapshot;

    // Healed, node 1 can only catch up from a snapshot; its patient hears
    // where things stand now, once, not the three steps it missed.
    partition(&nodes, None);
    wait_until("node 1 reaches the others' head", 90, || {
        n1.chain.tip() == n2.chain.tip()
    })
    .await;
    assert_ne!(
        n1.raft.metrics().borrow().snapshot,
        installed_before,
        "node 1 caught up by installing a snapshot"
    );
    let got = smtp.wait_for(2, Duration::from_secs(60)).await;
    assert_eq!(to_of(&got[1]), "away.patient@example.invalid");
    assert_eq!(
        parse(&got[1]).0,
        format!(
            "Prescription {}: dispensed",
            issued["short_id"].as_str().unwrap()
        )
    );
    for n in [n3, n2, n1] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_delivery_a_failed_delivery_and_a_cancellation_mail_the_patient_in_order() {
    if skipped("home_delivery_a_failed_delivery_and_a_cancellation_mail_the_patient_in_order") {
        return;
    }
    let smtp = Smtp::start(None);
    let t = start_node(smtp.settings()).await;
    let ada = Staff::sign_in(&t.base, "dr.ada").await;
    let dan = Staff::sign_in(&t.base, "ph.dan").await;
    let finn = Staff::sign_in(&t.base, "courier.finn").await;
    // One prescription delivered, one whose delivery fails, one cancelled.
    let issue = |name: &'static str, email: &'static str| {
        let ada = &ada;
        async move {
            let r = ada
                .ok(
                    "/v1/staff/prescriptions",
                    &issue_with_email(name, email, "en"),
                )
                .await;
            (
                r["id"].as_str().unwrap().to_string(),
                r["short_id"].as_str().unwrap().to_string(),
                r["payload"].as_str().unwrap().to_string(),
            )
        }
    };
    let (x, xs, xp) = issue("Synthetic Delivered", "delivered.x@example.invalid").await;
    let (y, ys, yp) = issue("Synthetic Not Home", "nothome.y@example.invalid").await;
    let (z, zs, _) = issue("Synthetic Cancelled", "cancelled.z@example.invalid").await;
    for (id, payload, steps) in [
        (
            &x,
            &xp,
            &["dispatched", "out_for_delivery", "delivered"][..],
        ),
        (&y, &yp, &["dispatched", "failed", "returned"][..]),
    ] {
        let (s, _, r) = post_anon(
            &t.base,
            "/v1/patient/assign",
            &json!({"payload": payload, "mode": "delivery", "pharmacy": "pharm-harbour", "address": "3 Synthetic Lane"}),
        )
        .await;
        assert_eq!(s, 200, "{r}");
        dan.ok("/v1/staff/claim", &json!({"payload": payload}))
            .await;
        dan.ok(
            "/v1/staff/dispense",
            &json!({"id": id, "lines": [{"item": 0, "quantity": 20, "batch": "LOT-D1"}, {"item": 1, "quantity": 10, "batch": "LOT-D2"}], "complete": true}),
        )
        .await;
        dan.ok("/v1/staff/delivery", &json!({"id": id, "status": "packed"}))
            .await;
        dan.ok(
            "/v1/staff/hand-over",
            &json!({"id": id, "carrier": "logi-swift"}),
        )
        .await;
        for status in steps {
            let step = match *status {
                "delivered" => json!({"id": id, "status": status, "hand_over": "to_household"}),
                "failed" | "returned" => {
                    json!({"id": id, "status": status, "problem": "no_one_home"})
                }
                _ => json!({"id": id, "status": status}),
            };
            finn.ok("/v1/staff/delivery", &step).await;
        }
    }
    ada.ok(
        &format!("/v1/staff/prescriptions/{z}/cancel"),
        &json!({"reason": "treatment_changed"}),
    )
    .await;

    // X: code, chosen, claimed, dispensed, packed, three delivery steps (8);
    // Y: the same, its steps dispatched, failed and returned (8); Z: code
    // and cancelled (2). The hand-over to the carrier mails nothing.
    let got = smtp.wait_for(18, Duration::from_secs(90)).await;
    let of = |to: &str| -> Vec<(String, String)> {
        got.iter()
            .filter(|m| to_of(m) == to)
            .map(|m| {
                let (subject, _, text, _, _) = parse(m);
                (subject, text)
            })
            .collect()
    };
    let subjects = |to: &str| of(to).into_iter().map(|(s, _)| s).collect::<Vec<_>>();
    let expect = |short: &str, tail: &[&str]| -> Vec<String> {
        let mut v = vec![
            format!("Your e-prescription {short}"),
            format!("Prescription {short}: pharmacy chosen"),
            format!("Prescription {short}: being prepared"),
            format!("Prescription {short}: dispensed"),
            format!("Prescription {short}: packed"),
        ];
        v.extend(tail.iter().map(|t| format!("Prescription {short}: {t}")));
        v
    };
    assert_eq!(
        subjects("delivered.x@example.invalid"),
        expect(&xs, &["dispatched", "out for delivery", "delivered"])
    );
    assert_eq!(
        subjects("nothome.y@example.invalid"),
        expect(
            &ys,
            &["dispatched", "delivery failed", "returned to the pharmacy"]
        )
    );
    // The courier's detail reaches the patient: how it was handed over, or
    // why it failed and came back.
    let x_mail = of("delivered.x@example.invalid");
    assert!(
        x_mail[7]
            .1
            .contains("The parcel was handed to someone at the address."),
        "{}",
        x_mail[7].1
    );
    let y_mail = of("nothome.y@example.invalid");
    for m in &y_mail[6..8] {
        assert!(m.1.contains("Reason: no one was at home."), "{}", m.1);
    }
    let z_mail = of("cancelled.z@example.invalid");
    assert_eq!(
        z_mail.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
        [
            format!("Your e-prescription {zs}"),
            format!("Prescription {zs}: cancelled"),
        ]
    );
    assert!(
        z_mail[1].1.contains("Reason: treatment changed"),
        "the doctor's reason: {}",
        z_mail[1].1
    );
    // No subject names a drug.
    for m in &got {
        let subject = parse(m).0;
        assert!(
            !subject.contains("Amoxicillin") && !subject.contains("Tramadol"),
            "{subject}"
        );
    }
    t.node.stop().await;
}
