//! Setting up a consortium with the real binary (issue 11): `rxchain genesis
//! new` on the example description, then a three-node consortium from
//! exactly its output (TLS as it configures, node 1 bootstraps, the others
//! join), which commits a staff registration signed with the generated
//! hospital admin key and agrees on one head; the nodes run from a
//! directory without `web/` and still serve the pages built into the
//! binary. And the other way: an organisation's `keygen --org` public file
//! added to a genesis with `genesis add-org`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rxchain::commands::genesis::Layout;
use rxchain::config::Settings;
use rxchain::http::cluster::LocalView;
use rxchain::tls::{genesis_client_config, TlsIdentity};
use rxchain_contracts::tx::Role;
use rxchain_contracts::{Genesis, Label, OrgDecl, OrgId};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rxchain");

/// The checked-in example description.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The example's organisations and node addresses, in order.
const NODES: [(&str, u64, &str); 3] = [
    ("northgate-hospital", 1, "northgate:8443"),
    ("eastside-pharmacy", 2, "eastside:8443"),
    ("health-regulator", 3, "regulator:8443"),
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the binary with `args` from `cwd` and returns its stdout, failing
/// the test (with stderr) if it fails.
fn rxchain(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run rxchain");
    assert!(
        out.status.success(),
        "rxchain {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn read_genesis(path: &Path) -> Genesis {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A killed-on-drop node process.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `rxchain node --config CONFIG` with `cwd` as its working
/// directory, with Raft timing for a loaded test machine.
fn start(config: &Path, cwd: &Path) -> Proc {
    let log = std::env::var("GENESIS_TEST_LOG").ok();
    let child = Command::new(BIN)
        .args(["node", "--config"])
        .arg(config)
        .current_dir(cwd)
        .env("RXCHAIN_LOG", log.clone().unwrap_or_else(|| "error".into()))
        .env("RXCHAIN_RAFT__HEARTBEAT_MS", "500")
        .env("RXCHAIN_RAFT__ELECTION_MIN_MS", "3000")
        .env("RXCHAIN_RAFT__ELECTION_MAX_MS", "5000")
        .stdout(Stdio::null())
        .stderr(if log.is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("spawn rxchain node");
    Proc(child)
}

async fn local(http: &reqwest::Client, base: &str) -> Option<LocalView> {
    let r = http
        .get(format!("{base}/v1/cluster/local"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesis_new_output_runs_a_three_node_consortium() {
    let work = tempfile::tempdir().unwrap();
    // The example, with each node on a free loopback port instead of its
    // compose service name.
    let mut text = std::fs::read_to_string(fixture("consortium.toml")).unwrap();
    let mut bases = Vec::new();
    for (_, _, addr) in NODES {
        let port = free_port();
        text = text.replace(addr, &format!("127.0.0.1:{port}"));
        bases.push(format!("https://127.0.0.1:{port}"));
    }
    let desc = work.path().join("consortium.toml");
    std::fs::write(&desc, text).unwrap();
    let out = work.path().join("out");
    let printed = rxchain(
        work.path(),
        &[
            "genesis",
            "new",
            "--config",
            "consortium.toml",
            "--out",
            "out",
        ],
    );
    let genesis = read_genesis(&Layout::genesis(&out));
    genesis.validate().unwrap();
    assert!(
        printed.contains(&genesis.hash().to_hex()),
        "genesis new prints the genesis hash: {printed}"
    );
    assert_eq!(genesis.chain_id.as_str(), "rxchain-example");
    assert_eq!(genesis.params.governance_threshold, 2);
    assert_eq!(genesis.orgs.len(), 3);

    // Every organisation's directory holds what its node needs, and what
    // it holds is what genesis declares.
    for (org, id, _) in NODES {
        let dir = Layout::org_dir(&out, org);
        let s = Settings::load(&dir.join(Layout::node_config(id)), Vec::new()).unwrap();
        assert_eq!(s.node_id, id);
        assert_eq!(s.bootstrap, id == 1, "only the first node bootstraps");
        assert_eq!(s.peers.len(), 2, "node {id} knows the other two");
        let (decl_org, decl) = genesis.node(id).expect("node declared");
        assert_eq!(decl_org.id.as_str(), org);
        assert_eq!(
            rxchain::keys::read(&s.node_key_file).unwrap().public(),
            decl.key
        );
        let tls = s.tls.as_ref().expect("TLS configured");
        assert_eq!(
            TlsIdentity::load(&tls.cert_file, &tls.key_file)
                .unwrap()
                .hash(),
            decl.tls
        );
        assert_eq!(
            rxchain::keys::read(s.data_key_file.as_ref().unwrap())
                .unwrap()
                .public(),
            decl_org.data_key
        );
        assert_eq!(
            rxchain::keys::read(&dir.join(Layout::ADMIN_KEY))
                .unwrap()
                .public(),
            decl_org.admin_key
        );
        assert_eq!(read_genesis(&s.genesis), genesis, "the org's own copy");
    }
    // A second run refuses to overwrite anything.
    let again = Command::new(BIN)
        .args([
            "genesis",
            "new",
            "--config",
            "consortium.toml",
            "--out",
            "out",
        ])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(!again.status.success(), "genesis new overwrote its output");

    // Start the nodes from a directory without web/, node 1 first.
    rxchain::tls::install_default_provider();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .use_preconfigured_tls(genesis_client_config(&genesis).unwrap())
        .build()
        .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let mut procs = Vec::new();
    for (i, (org, id, _)) in NODES.iter().enumerate() {
        let config = Layout::org_dir(&out, org).join(Layout::node_config(*id));
        procs.push(start(&config, elsewhere.path()));
        if i == 0 {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let ok = http
                    .get(format!("{}/readyz", bases[0]))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if ok {
                    break;
                }
                assert!(Instant::now() < deadline, "node 1 never became ready");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let voters = [1u64, 2, 3].into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    'voters: loop {
        for base in &bases {
            if let Some(l) = local(&http, base).await {
                if l.state == "leader" && l.voters == voters && l.learners.is_empty() {
                    break 'voters;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the three nodes never became voters"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The generated hospital admin key registers a practitioner, submitted
    // to the regulator's node (followers forward to the leader).
    let admin =
        rxchain::keys::read(&Layout::org_dir(&out, "northgate-hospital").join(Layout::ADMIN_KEY))
            .unwrap();
    let doctor = rxchain::keys::generate().public();
    let tx = rxchain::txbuild::register_staff(
        &genesis,
        &admin,
        OrgId::parse("northgate-hospital").unwrap(),
        doctor,
        Role::Practitioner,
        Label::parse("LIC-SYNTH-0001").unwrap(),
        Label::parse("Dr Synthetic Example").unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let receipt = loop {
        let r = http
            .post(format!("{}/v1/tx", bases[2]))
            .json(&tx)
            .send()
            .await;
        if let Ok(r) = r {
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert!(
                [200, 202, 503].contains(&status.as_u16()),
                "submission answered {status}: {body}"
            );
            if status == 200 {
                break body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the registration never committed"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(receipt["outcome"]["result"], "applied", "{receipt}");
    let height = receipt["height"].as_u64().unwrap();

    // Every node reaches the same head, and knows the new practitioner.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut heads = Vec::new();
        for base in &bases {
            heads.push(get_json(&http, &format!("{base}/v1/chain/head")).await);
        }
        let same = heads
            .iter()
            .all(|h| h["hash"] == heads[0]["hash"] && h["height"].as_u64().unwrap() >= height);
        if same {
            assert_eq!(heads[0]["genesis_hash"], genesis.hash().to_hex());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes never agreed on one head: {heads:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for base in &bases {
        let c = get_json(&http, &format!("{base}/v1/consortium")).await;
        let staff = c["staff"].as_array().unwrap();
        assert!(
            staff.iter().any(|s| s["key"] == doctor.to_hex()),
            "{base} lists the practitioner: {c}"
        );
    }

    // The pages come from the binary: the nodes' working directory has no web/.
    assert!(!elsewhere.path().join("web").exists());
    let page = http
        .get(format!("{}/doctor/", bases[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    let on_disk = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("web/doctor/index.html"),
    )
    .unwrap();
    assert_eq!(html, on_disk, "the embedded page is the repository's");
    let asset = http
        .get(format!("{}/assets/api.js", bases[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200);
    assert_eq!(
        asset.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(asset.text().await.unwrap().contains("export"));
    // A directory without its slash is sent to it, so relative links work.
    let no_redirect = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .use_preconfigured_tls(genesis_client_config(&genesis).unwrap())
        .build()
        .unwrap();
    let r = no_redirect
        .get(format!("{}/doctor", bases[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(r.headers()["location"], "/doctor/");
    let missing = http
        .get(format!("{}/no/such/page.html", bases[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "no_such_route");
    drop(procs);
}

#[test]
fn an_organisation_sends_only_public_keys_and_add_org_declares_it() {
    let work = tempfile::tempdir().unwrap();
    let consortium = fixture("consortium.toml");
    rxchain(
        work.path(),
        &[
            "genesis",
            "new",
            "--config",
            consortium.to_str().unwrap(),
            "--out",
            "out",
        ],
    );
    let gpath = Layout::genesis(&work.path().join("out"));
    let before = read_genesis(&gpath);

    // The new organisation, on its own machine.
    let org_file = fixture("consortium-org.toml");
    rxchain(
        work.path(),
        &[
            "keygen",
            "--org",
            org_file.to_str().unwrap(),
            "--out",
            "westfield",
            "--peer",
            "1=northgate:8443",
        ],
    );
    let dir = work.path().join("westfield");
    let public_text = std::fs::read_to_string(dir.join(Layout::ORG_PUB)).unwrap();
    let public: OrgDecl = serde_json::from_str(&public_text).unwrap();
    // The public file names no secret.
    for secret in [Layout::ADMIN_KEY, Layout::DATA_KEY, "node4.key"] {
        let hex = std::fs::read_to_string(dir.join(secret)).unwrap();
        assert!(!public_text.contains(hex.trim()), "{secret} leaked");
    }
    let (_, tls_key) = Layout::tls(4);
    let tls_pem = std::fs::read_to_string(dir.join(&tls_key)).unwrap();
    assert!(!public_text.contains("PRIVATE KEY") && !tls_pem.is_empty());
    // Its node settings join through the given peer and do not bootstrap.
    let s = Settings::load(&dir.join(Layout::node_config(4)), Vec::new()).unwrap();
    assert_eq!(s.node_id, 4);
    assert!(!s.bootstrap);
    assert_eq!(s.peers.get("1").map(String::as_str), Some("northgate:8443"));

    // Back at the consortium: add it, and the genesis declares exactly its keys.
    rxchain(
        work.path(),
        &[
            "genesis",
            "add-org",
            "--genesis",
            gpath.to_str().unwrap(),
            "--org-file",
            dir.join(Layout::ORG_PUB).to_str().unwrap(),
        ],
    );
    let after = read_genesis(&gpath);
    after.validate().unwrap();
    assert_eq!(after.orgs.len(), before.orgs.len() + 1);
    assert_eq!(after.orgs[..before.orgs.len()], before.orgs[..]);
    let added = after
        .org(&OrgId::parse("westfield-couriers").unwrap())
        .expect("the organisation is declared");
    assert_eq!(added, &public);
    assert_eq!(
        added.admin_key,
        rxchain::keys::read(&dir.join(Layout::ADMIN_KEY))
            .unwrap()
            .public()
    );
    let (_, node) = after.node(4).expect("its node is declared");
    assert_eq!(
        node.key,
        rxchain::keys::read(&s.node_key_file).unwrap().public()
    );
    let tls = s.tls.as_ref().unwrap();
    assert_eq!(
        TlsIdentity::load(&tls.cert_file, &tls.key_file)
            .unwrap()
            .hash(),
        node.tls
    );
    assert_ne!(after.hash(), before.hash());

    // Adding it twice is refused and leaves the genesis as it was.
    let twice = Command::new(BIN)
        .args(["genesis", "add-org", "--genesis"])
        .arg(&gpath)
        .arg("--org-file")
        .arg(dir.join(Layout::ORG_PUB))
        .output()
        .unwrap();
    assert!(!twice.status.success());
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("already in the genesis"),
        "{}",
        String::from_utf8_lossy(&twice.stderr)
    );
    assert_eq!(read_genesis(&gpath), after);

    // A single node key: keygen writes its public half beside it.
    rxchain(work.path(), &["keygen", "--out", "spare.key"]);
    let pub_json: Value = serde_json::from_str(
        &std::fs::read_to_string(work.path().join("spare.key.pub.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        pub_json["key"],
        rxchain::keys::read(&work.path().join("spare.key"))
            .unwrap()
            .public()
            .to_hex()
    );
    assert_eq!(
        pub_json["tls"],
        TlsIdentity::load(
            &work.path().join("spare.key.tls.crt"),
            &work.path().join("spare.key.tls.key")
        )
        .unwrap()
        .hash()
        .to_hex()
    );
}
