//! Transport security between real `rxchain node` processes on loopback
//! (issue 10, tests 1 and 2), and the session cookie over HTTPS.
//!
//! 1. Man in the middle: every node's Raft traffic goes through a TCP proxy
//!    the test controls. A proxy that terminates TLS with its own
//!    certificate, one that relays to another member node (which holds a
//!    declared key, but not the pinned one), and one that relays the bytes
//!    but alters the replies are each refused: nothing commits without a
//!    real majority, and the cluster commits again once the links heal.
//! 2. A peer speaking plain HTTP to a TLS node, a client presenting a
//!    certificate that genesis does not declare, a client without a
//!    certificate on node-only routes, and a node certificate used to speak
//!    for another node are all refused, while public routes work without a
//!    client certificate.
//! 3. The session cookie is `Secure` over HTTPS and over plain loopback HTTP.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::issue::{atorvastatin_issue, SyntheticPatient};
use common::spawned;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rxchain::demo::{node_key, staff_key, Demo};
use rxchain::http::cluster::LocalView;
use rxchain::tls::{genesis_client_config, pinned_client_config, TlsIdentity};
use rxchain_contracts::Genesis;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_rxchain");

/// Raft timing for debug builds on a loaded machine (as in tests/cluster.rs).
const RAFT_TIMING: &str =
    "[raft]\nheartbeat_ms = 1000\nelection_min_ms = 3000\nelection_max_ms = 5000\n[api]\ncommit_wait_ms = 3000\n";

fn written_genesis(dir: &Path) -> Genesis {
    serde_json::from_str(&std::fs::read_to_string(dir.join("genesis.json")).unwrap()).unwrap()
}

/// An HTTPS client trusting exactly the genesis nodes, with no certificate.
fn https(genesis: &Genesis) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .use_preconfigured_tls(genesis_client_config(genesis).unwrap())
        .build()
        .unwrap()
}

/// A killed-on-drop node process.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes node `id`'s settings (TLS on, an ephemeral port, advertising
/// `advertise`), starts it and returns it with the port it bound.
fn start_node(dir: &Path, id: u64, advertise: Option<String>, join: Option<u16>) -> (Proc, u16) {
    let mut toml = format!(
        "node_id = {id}\ndata_dir = \"node{id}\"\ngenesis = \"genesis.json\"\nnode_key_file = \"node{id}.key\"\n{}bootstrap = {}\n",
        spawned::listen_any(id),
        id == 1
    );
    if let Some(a) = advertise {
        toml.push_str(&format!("advertise = \"{a}\"\n"));
    }
    toml.push_str(&format!(
        "[tls]\ncert_file = \"node{id}.tls.crt\"\nkey_file = \"node{id}.tls.key\"\n"
    ));
    if let Some(p) = join {
        toml.push_str(&format!("[peers]\n\"1\" = \"127.0.0.1:{p}\"\n"));
    }
    toml.push_str(RAFT_TIMING);
    let cfg = dir.join(format!("node{id}.toml"));
    std::fs::write(&cfg, toml).unwrap();
    let mut child = Command::new(BIN)
        .args(["node", "--config"])
        .arg(&cfg)
        .env(
            "RXCHAIN_LOG",
            std::env::var("TLS_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(spawned::log_sink(dir, id))
        .spawn()
        .expect("spawn rxchain node");
    let port = spawned::wait_bound(&mut child, dir, id);
    (Proc(child), port)
}

async fn local(http: &reqwest::Client, port: u16) -> Option<LocalView> {
    let r = http
        .get(format!("https://127.0.0.1:{port}/v1/cluster/local"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

async fn wait_ready(http: &reqwest::Client, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = http
            .get(format!("https://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("node on port {port} did not become ready over HTTPS");
}

/// What a proxy does with each new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// Relays bytes both ways to its node.
    Relay = 0,
    /// Terminates TLS itself, with a certificate of its own, and answers
    /// every request with a forged successful Raft reply.
    Terminate = 1,
    /// Relays bytes, but flips one byte of every chunk the node sends back.
    Tamper = 2,
    /// Relays bytes to another member node instead of its own.
    Redirect = 3,
}

/// A TCP proxy in front of one node. Changing the mode cuts the open
/// connections, so the next request opens a new one in the new mode.
struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
    /// The node relayed to, and the other member redirected to; set once
    /// the nodes listen.
    target: Arc<AtomicU16>,
    redirect: Arc<AtomicU16>,
    epoch: tokio::sync::watch::Sender<u64>,
    /// TLS handshakes the terminating proxy completed: a client that
    /// accepted its certificate would count here.
    forged_handshakes: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start() -> Proxy {
        let target = Arc::new(AtomicU16::new(0));
        let redirect = Arc::new(AtomicU16::new(0));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(Mode::Relay as u8));
        let (epoch, epoch_rx) = tokio::sync::watch::channel(0u64);
        let forged_handshakes = Arc::new(AtomicUsize::new(0));
        // The man in the middle's own certificate: a fresh key genesis does not know.
        let own = rxchain::tls::generate(&[]).unwrap();
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(own.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(own.key_pem.as_bytes()).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(rxchain::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let (m, forged) = (mode.clone(), forged_handshakes.clone());
        let (to, aside) = (target.clone(), redirect.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let mode = match m.load(Ordering::SeqCst) {
                    0 => Mode::Relay,
                    1 => Mode::Terminate,
                    2 => Mode::Tamper,
                    _ => Mode::Redirect,
                };
                let mut cut = epoch_rx.clone();
                cut.mark_unchanged();
                let (acceptor, forged) = (acceptor.clone(), forged.clone());
                let (target, redirect) = (to.load(Ordering::SeqCst), aside.load(Ordering::SeqCst));
                tokio::spawn(async move {
                    let work = async {
                        match mode {
                            Mode::Terminate => forge(client, acceptor, forged).await,
                            Mode::Relay => relay(client, target, false).await,
                            Mode::Tamper => relay(client, target, true).await,
                            Mode::Redirect => relay(client, redirect, false).await,
                        }
                    };
                    tokio::select! {
                        _ = work => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            mode,
            target,
            redirect,
            epoch,
            forged_handshakes,
        }
    }

    /// Points the proxy at its node's port and at the member it redirects to.
    fn aim(&self, target: u16, redirect: u16) {
        self.target.store(target, Ordering::SeqCst);
        self.redirect.store(redirect, Ordering::SeqCst);
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }
}

/// The terminating man in the middle: if a client ever completes the
/// handshake, it answers with a forged "append ok".
async fn forge(client: TcpStream, acceptor: tokio_rustls::TlsAcceptor, forged: Arc<AtomicUsize>) {
    let Ok(mut tls) = acceptor.accept(client).await else {
        return;
    };
    forged.fetch_add(1, Ordering::SeqCst);
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = tls.read(&mut buf).await {
        if n == 0 {
            return;
        }
        let body = r#"{"vote":{"leader_id":{"term":1,"node_id":1},"committed":true},"success":true,"conflict":false}"#;
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if tls.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Relays bytes between `client` and the node on `target`; with `tamper`,
/// flips one byte of every chunk coming back from the node.
async fn relay(client: TcpStream, target: u16, tamper: bool) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if tamper {
                buf[n / 2] ^= 0x01;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}

/// The highest chain height any of the nodes on `ports` reports.
async fn max_height(http: &reqwest::Client, ports: &[u16]) -> u64 {
    let mut best = 0;
    for &p in ports {
        if let Some(l) = local(http, p).await {
            best = best.max(l.height);
        }
    }
    best
}

/// Submits `tx` to the node on `port`; returns the HTTP status, or 0 when
/// no answer came.
async fn submit(http: &reqwest::Client, port: u16, tx: &rxchain_contracts::SignedTx) -> u16 {
    match http
        .post(format!("https://127.0.0.1:{port}/v1/tx"))
        .json(tx)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

fn issue_tx(g: &Genesis, i: usize) -> rxchain_contracts::SignedTx {
    let input = atorvastatin_issue(
        "hosp-north",
        30,
        0,
        SyntheticPatient {
            name: format!("Proxy Synthetic {i}"),
            birth_date: "1970-01-01",
            identifier: format!("SYN-TLS-{i}"),
        },
        "one tablet at night",
    );
    rxchain::txbuild::issue(g, &staff_key("dr.ada"), input)
        .unwrap()
        .tx
}

/// Waits until the heights on `ports` pass `above`.
async fn wait_height_above(http: &reqwest::Client, ports: &[u16], above: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if max_height(http, ports).await > above {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the chain never grew past {above}: {what}");
}

/// Asserts that nothing commits on any node for `quiet`, while `tx` is offered.
async fn assert_no_commit(
    http: &reqwest::Client,
    ports: &[u16],
    tx: &rxchain_contracts::SignedTx,
    what: &str,
) -> u64 {
    let before = max_height(http, ports).await;
    let status = submit(http, ports[0], tx).await;
    assert_ne!(
        status, 200,
        "{what}: a transaction committed without a real majority"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = max_height(http, ports).await;
    assert_eq!(
        after, before,
        "{what}: the chain grew without a real majority"
    );
    before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_man_in_the_middle_cannot_fake_a_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::load().unwrap();
    demo.write_files(dir.path(), &[1, 2, 3]).unwrap();
    let g = written_genesis(dir.path());
    let http = https(&g);
    // Every node is advertised (and so reached by the others for Raft)
    // through its own proxy; the redirecting proxy of node i points at the
    // next node, a member whose key is declared, but not node i's.
    let mut proxies = Vec::new();
    for _ in 0..3 {
        proxies.push(Proxy::start().await);
    }
    let advertised = |i: usize| Some(format!("127.0.0.1:{}", proxies[i].port));

    // Setup: node 1 bootstraps, nodes 2 and 3 join it; all links relay.
    // Each proxy relays to its node as soon as the node listens.
    let (first, port1) = start_node(dir.path(), 1, advertised(0), None);
    proxies[0].aim(port1, 0);
    let mut procs = vec![first];
    let mut ports = vec![port1];
    wait_ready(&http, ports[0]).await;
    for id in 2..=3u64 {
        let i = id as usize - 1;
        let (proc, port) = start_node(dir.path(), id, advertised(i), Some(ports[0]));
        proxies[i].aim(port, 0);
        procs.push(proc);
        ports.push(port);
    }
    for (i, p) in proxies.iter().enumerate() {
        p.aim(ports[i], ports[(i + 1) % 3]);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let l = local(&http, ports[0]).await;
        if l.as_ref()
            .is_some_and(|l| l.voters.len() == 3 && l.learners.is_empty())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster never formed over TLS: {l:?}\nnode 2:\n{}\nnode 3:\n{}",
            spawned::log_tail(dir.path(), 2),
            spawned::log_tail(dir.path(), 3)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let client = rxchain::client::Client::with_tls(
        format!("https://127.0.0.1:{}", ports[0]),
        genesis_client_config(&g).unwrap(),
    )
    .unwrap();
    rxchain::test_support::register_demo_staff(&demo, &client)
        .await
        .unwrap();
    let start = max_height(&http, &ports).await;
    assert!(
        start > 0,
        "the staff registrations committed over mutual TLS"
    );

    // 1a. Every link terminates TLS at a man in the middle with its own
    //     certificate, ready to forge "append ok": refused, nothing commits.
    for p in &proxies {
        p.set(Mode::Terminate);
    }
    let h = assert_no_commit(&http, &ports, &issue_tx(&g, 1), "terminating proxy").await;
    for p in &proxies {
        assert_eq!(
            p.forged_handshakes.load(Ordering::SeqCst),
            0,
            "a node accepted the proxy's certificate"
        );
    }
    // Heal: the offered transaction (or a later one) commits.
    for p in &proxies {
        p.set(Mode::Relay);
    }
    assert_eq!(submit(&http, ports[0], &issue_tx(&g, 2)).await, 200);
    wait_height_above(&http, &ports, h, "after healing the terminating proxies").await;

    // 1b. Every link leads to another member node: its certificate is
    //     declared in genesis, but not for the node the sender meant to
    //     reach, so node 2 cannot answer for node 3. Nothing commits.
    for p in &proxies {
        p.set(Mode::Redirect);
    }
    let h = assert_no_commit(&http, &ports, &issue_tx(&g, 3), "redirecting proxy").await;
    for p in &proxies {
        p.set(Mode::Relay);
    }
    assert_eq!(submit(&http, ports[0], &issue_tx(&g, 4)).await, 200);
    wait_height_above(&http, &ports, h, "after healing the redirecting proxies").await;

    // 1c. Every link relays the bytes but alters the replies: the TLS
    //     records fail their integrity check and nothing commits.
    for p in &proxies {
        p.set(Mode::Tamper);
    }
    let h = assert_no_commit(&http, &ports, &issue_tx(&g, 5), "tampering proxy").await;
    for p in &proxies {
        p.set(Mode::Relay);
    }
    assert_eq!(submit(&http, ports[0], &issue_tx(&g, 6)).await, 200);
    wait_height_above(&http, &ports, h, "after healing the tampering proxies").await;
    drop(procs);
}

/// A client presenting `identity` (or no certificate) and trusting the genesis nodes.
fn client_with(g: &Genesis, identity: Option<&TlsIdentity>) -> reqwest::Client {
    let pins = g
        .orgs
        .iter()
        .flat_map(|o| o.nodes.iter().map(|n| n.tls))
        .collect();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .use_preconfigured_tls(pinned_client_config(pins, identity).unwrap())
        .build()
        .unwrap()
}

/// A Raft vote request signed by node `signer`'s genesis key.
fn signed_vote(
    http: &reqwest::Client,
    url: &str,
    g: &Genesis,
    signer: u64,
) -> reqwest::RequestBuilder {
    let body = serde_json::json!({
        "vote": {"leader_id": {"term": 99, "node_id": signer}, "committed": false},
        "last_log_id": null
    })
    .to_string();
    let path = rxchain::raft::rpc::PATH_VOTE;
    // Addressed to node 1, the node every test here sends it to.
    let mut req = http.post(url).header("content-type", "application/json");
    for (k, v) in rxchain::raft::rpc::signed_headers(
        g.chain_id.as_str(),
        &node_key(signer),
        signer,
        1,
        path,
        body.as_bytes(),
    ) {
        req = req.header(k, v);
    }
    req.body(body)
}

async fn code_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (status, v["code"].as_str().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_and_stranger_peers_are_refused() {
    // The plain reqwest client below needs the process's rustls provider.
    rxchain::tls::install_default_provider();
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::load().unwrap();
    demo.write_files(dir.path(), &[1, 2, 3]).unwrap();
    let g = written_genesis(dir.path());
    let (_node, port) = start_node(dir.path(), 1, None, None);
    let http = https(&g);
    wait_ready(&http, port).await;
    let base = format!("https://127.0.0.1:{port}");
    let vote_url = format!("{base}{}", rxchain::raft::rpc::PATH_VOTE);

    // 2a. A peer speaking plain HTTP to the TLS port gets no HTTP answer at all.
    let plain = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let got = signed_vote(
        &plain,
        &format!("http://127.0.0.1:{port}/raft/append"),
        &g,
        2,
    )
    .send()
    .await;
    assert!(
        got.is_err(),
        "a plain-HTTP peer got an answer: {:?}",
        got.map(|r| r.status())
    );

    // 2b. A client whose certificate genesis does not declare (a fresh key)
    //     is refused in the handshake, on node-only and public routes alike.
    let stranger = rxchain::tls::generate(&[]).unwrap().identity().unwrap();
    let strange = client_with(&g, Some(&stranger));
    assert!(signed_vote(&strange, &vote_url, &g, 2)
        .send()
        .await
        .is_err());
    assert!(strange
        .get(format!("{base}/v1/chain/head"))
        .send()
        .await
        .is_err());

    // 2c. Without a client certificate the public routes work, and the
    //     node-only ones refuse with a precise code: Raft RPCs (even
    //     validly signed by a node key), the read index, and submissions
    //     claiming to be forwarded by a node.
    let anonymous = client_with(&g, None);
    let head = anonymous
        .get(format!("{base}/v1/chain/head"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let refused = code_of(
        signed_vote(&anonymous, &vote_url, &g, 2)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(refused, (401, "peer_certificate_required".into()));
    let ri = anonymous
        .get(format!("{base}/v1/cluster/read-index"))
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(ri).await, (401, "peer_certificate_required".into()));
    let fwd = anonymous
        .post(format!("{base}/v1/tx"))
        .header("x-rxchain-forwarded-by", "2")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code_of(fwd).await,
        (401, "peer_certificate_required".into())
    );

    // 2d. Node 2's own certificate may speak for node 2 (the request then
    //     meets the usual signature and Raft checks), but not for node 3.
    let (crt, key) = rxchain::demo::tls_files(dir.path(), 2);
    let node2 = client_with(&g, Some(&TlsIdentity::load(&crt, &key).unwrap()));
    let as_3 = code_of(signed_vote(&node2, &vote_url, &g, 3).send().await.unwrap()).await;
    assert_eq!(as_3, (403, "peer_certificate_mismatch".into()));
    let (status, code) = code_of(signed_vote(&node2, &vote_url, &g, 2).send().await.unwrap()).await;
    assert!(
        !code.starts_with("peer_certificate"),
        "node 2's certificate speaking for node 2 passed the transport check ({status} {code})"
    );
}

/// The attributes of the `Set-Cookie` of a demo sign-in on `base`.
async fn sign_in_cookie(http: &reqwest::Client, base: &str) -> Vec<String> {
    let r = http
        .post(format!("{base}/v1/session"))
        .json(&serde_json::json!({"username": "dr.ada", "password": rxchain::demo::DEMO_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let c = r.headers()["set-cookie"].to_str().unwrap().to_string();
    c.split(';').map(|a| a.trim().to_string()).collect()
}

/// Starts an in-process demo node on loopback, with `[tls]` when asked.
async fn in_process(dir: &Path, tls: bool) -> (rxchain::node::RunningNode, Demo) {
    let demo = Demo::load().unwrap();
    demo.write_files(dir, &[1]).unwrap();
    let mut s = rxchain::test_support::demo_settings(dir, 1, "127.0.0.1:0".parse().unwrap(), None);
    if tls {
        s.tls = Some(rxchain::test_support::demo_tls_settings(dir, 1));
    }
    let node = rxchain::node::start(s).await.unwrap();
    rxchain::test_support::wait_for_leader(&node).await.unwrap();
    rxchain::test_support::register_demo_staff_on(&demo, &node)
        .await
        .unwrap();
    rxchain::test_support::create_demo_accounts(&demo, &node.accounts)
        .await
        .unwrap();
    (node, demo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_secure_over_https_and_plain_loopback() {
    // 3a. Over HTTPS.
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = in_process(dir.path(), true).await;
    let http = https(&written_genesis(dir.path()));
    let attrs = sign_in_cookie(&http, &format!("https://{}", node.addr)).await;
    assert!(attrs.iter().any(|a| a == "Secure"), "{attrs:?}");
    node.stop().await;

    // 3b. Over plain HTTP on loopback, which browsers treat as secure.
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = in_process(dir.path(), false).await;
    let plain = reqwest::Client::new();
    let attrs = sign_in_cookie(&plain, &format!("http://{}", node.addr)).await;
    assert!(attrs.iter().any(|a| a == "Secure"), "{attrs:?}");
    node.stop().await;
}
