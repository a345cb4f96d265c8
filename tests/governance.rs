//! Governance with real `rxchain node` processes on loopback, over mutual
//! TLS (issue 10, tests 4 and 5): three nodes of the demo consortium (eight
//! organisations, so the default threshold is five), changed only by M-of-N
//! decisions on chain. A node added by governance is trusted over TLS from
//! the decision on: its pin is in no genesis file.
//!
//! The harness is a small copy of the one in `tests/cluster.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::issue::{atorvastatin_issue, SyntheticPatient};
use common::spawned;
use rxchain::demo::{admin_key, node_key, Demo};
use rxchain::http::cluster::{admin_headers, LocalView, Signer};
use rxchain::txbuild;
use rxchain_contracts::genesis::{NodeDecl, OrgDecl, OrgKind};
use rxchain_contracts::governance::Action;
use rxchain_contracts::tx::{Approve, LeaveNode, Propose, RegisterStaff, Role};
use rxchain_contracts::{Genesis, Label, OrgId, SecretKey, SignedTx, TxBody, TxId};
use serde_json::Value;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_rxchain");
/// Raft timing for debug builds on a loaded machine.
const RAFT_TIMING: &str =
    "[raft]\nheartbeat_ms = 1000\nelection_min_ms = 3000\nelection_max_ms = 5000\n";

/// One scenario at a time: several clusters at once on two cores would
/// starve each other into timeouts.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The test's own TLS client: it trusts the demo TLS key of every node id
/// the tests start (1 to 6), presenting no certificate, as a browser would.
fn client_tls() -> rustls::ClientConfig {
    let pins = (1..=6u64)
        .map(|id| rxchain::demo::tls_key(id).unwrap().hash)
        .collect();
    rxchain::tls::pinned_client_config(pins, None).unwrap()
}

/// One node process.
struct Node {
    port: u16,
    child: Option<Child>,
}

/// Real node processes under one temp dir.
struct Cluster {
    dir: tempfile::TempDir,
    demo: Demo,
    nodes: BTreeMap<u64, Node>,
    http: reqwest::Client,
}

impl Cluster {
    /// Starts nodes `1..=n`: node 1 bootstraps, the others join through it.
    async fn start(n: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let demo = Demo::load().unwrap();
        let ids: Vec<u64> = (1..=n).collect();
        demo.write_files(dir.path(), &ids).unwrap();
        // reqwest is built without a default rustls provider.
        rxchain::tls::install_default_provider();
        let mut c = Cluster {
            dir,
            demo,
            nodes: BTreeMap::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .use_preconfigured_tls(client_tls())
                .build()
                .unwrap(),
        };
        for id in 1..=n {
            c.add_node(id);
            if id == 1 {
                c.wait_ready(1).await;
            }
        }
        c.wait_voters(&(1..=n).collect()).await;
        c
    }

    /// Writes a node's settings (node 1 as its peer) and spawns it.
    fn add_node(&mut self, id: u64) {
        let key = self.dir.path().join(format!("node{id}.key"));
        if !key.exists() {
            rxchain::keys::write_new(&key, &node_key(id)).unwrap();
        }
        let (crt, tls_key) = rxchain::demo::tls_files(self.dir.path(), id);
        if !crt.exists() {
            let tls = rxchain::demo::tls_key(id).unwrap();
            std::fs::write(&crt, &tls.cert_pem).unwrap();
            rxchain::keys::write_new_secret(&tls_key, &tls.key_pem).unwrap();
        }
        let mut toml = format!(
            "node_id = {id}\ndata_dir = \"node{id}\"\ngenesis = \"genesis.json\"\nnode_key_file = \"node{id}.key\"\n{}bootstrap = {}\n",
            spawned::listen_any(id),
            id == 1
        );
        if let Some(p) = self.nodes.get(&1).map(|n| n.port).filter(|_| id != 1) {
            toml.push_str(&format!("[peers]\n\"1\" = \"127.0.0.1:{p}\"\n"));
        }
        toml.push_str(&format!(
            "[tls]\ncert_file = \"node{id}.tls.crt\"\nkey_file = \"node{id}.tls.key\"\n"
        ));
        toml.push_str(RAFT_TIMING);
        let cfg = self.dir.path().join(format!("node{id}.toml"));
        std::fs::write(&cfg, toml).unwrap();
        let mut child = spawn(&cfg, id);
        let port = spawned::wait_bound(&mut child, self.dir.path(), id);
        let child = Some(child);
        self.nodes.insert(id, Node { port, child });
    }

    fn base(&self, id: u64) -> String {
        format!("https://127.0.0.1:{}", self.nodes[&id].port)
    }

    fn running(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.child.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.nodes.get_mut(&id).unwrap().child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    async fn local(&self, id: u64) -> Option<LocalView> {
        let r = self
            .http
            .get(format!("{}/v1/cluster/local", self.base(id)))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    async fn wait_ready(&self, id: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = self
                .http
                .get(format!("{}/readyz", self.base(id)))
                .send()
                .await
            {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("node {id} did not become ready");
    }

    /// Waits until some running node leads and names exactly `voters`.
    async fn wait_voters(&self, voters: &BTreeSet<u64>) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut last = None;
        while Instant::now() < deadline {
            for id in self.running() {
                if let Some(l) = self.local(id).await {
                    if l.state == "leader" && &l.voters == voters && l.learners.is_empty() {
                        return;
                    }
                    last = Some(l);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("voters never became {voters:?}; last view {last:?}");
    }

    /// The voters as the leader names them now.
    async fn voters(&self) -> BTreeSet<u64> {
        for id in self.running() {
            if let Some(l) = self.local(id).await {
                if l.state == "leader" {
                    return l.voters;
                }
            }
        }
        panic!("no leader");
    }

    /// Signs `body` with `key` and submits it through node `via` until it
    /// is committed; returns the HTTP status and answer.
    async fn submit(&self, via: u64, key: &SecretKey, body: TxBody) -> (SignedTx, u16, Value) {
        let g = self.consortium(via).await;
        let tx = txbuild::sign(&g, key, body);
        let (status, v) = self.submit_signed(via, &tx).await;
        (tx, status, v)
    }

    async fn submit_signed(&self, via: u64, tx: &SignedTx) -> (u16, Value) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let r = self
                .http
                .post(format!("{}/v1/tx", self.base(via)))
                .json(tx)
                .send()
                .await;
            if let Ok(r) = r {
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                let committed = v["height"].is_u64() || v["receipt"]["height"].is_u64();
                if committed || (400..500).contains(&status) {
                    return (status, v);
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} never committed",
                tx.tx.body.kind()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The effective consortium as node `id` serves it.
    async fn consortium(&self, id: u64) -> Genesis {
        rxchain::client::Client::with_tls(self.base(id), client_tls())
            .unwrap()
            .genesis()
            .await
            .unwrap()
    }

    /// Waits until node `id` serves a consortium that passes `check`.
    async fn wait_consortium(&self, id: u64, check: impl Fn(&Genesis) -> bool) -> Genesis {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let g = self.consortium(id).await;
            if check(&g) {
                return g;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} never served the expected consortium"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until node `id` knows `key` as registered staff.
    async fn wait_staff(&self, id: u64, key: &rxchain_contracts::PublicKey) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v: Value = self
                .http
                .get(format!("{}/v1/consortium", self.base(id)))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let known = v["staff"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r["key"] == key.to_hex()));
            if known {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} never learnt the staff key"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until node `node` lists proposal `id` with `status`, and returns it.
    async fn wait_proposal(&self, node: u64, id: TxId, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let list = self.proposals(node).await;
            let found = list["proposals"].as_array().and_then(|l| {
                l.iter()
                    .find(|p| p["proposal"]["id"] == id.to_string())
                    .cloned()
            });
            match found {
                Some(p) if p["status"] == status => return p,
                other => assert!(
                    Instant::now() < deadline,
                    "node {node} never listed proposal {id} as {status}: {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn proposals(&self, id: u64) -> Value {
        self.http
            .get(format!("{}/v1/governance/proposals", self.base(id)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Stops every node and runs `rxchain verify` on each data dir.
    fn stop_and_verify(&mut self) {
        for id in self.running() {
            self.kill(id);
        }
        for id in self.nodes.keys() {
            let out = Command::new(BIN)
                .args(["verify", "--quiet"])
                .arg(self.dir.path().join(format!("node{id}")))
                .arg("--genesis")
                .arg(self.dir.path().join("genesis.json"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "rxchain verify failed on node {id}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in self.nodes.values_mut() {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // With CLUSTER_TEST_KEEP=<dir> (and CLUSTER_TEST_LOG=<filter>), keep
        // the node logs for a look afterwards.
        if let Ok(keep) = std::env::var("CLUSTER_TEST_KEEP") {
            let dest = std::path::PathBuf::from(keep);
            let _ = std::fs::create_dir_all(&dest);
            for id in self.nodes.keys() {
                let _ = std::fs::copy(
                    self.dir.path().join(format!("node{id}.log")),
                    dest.join(format!("node{id}.log")),
                );
            }
        }
    }
}

fn spawn(cfg: &Path, id: u64) -> Child {
    spawned::spawn_node(BIN, cfg, id)
}

fn org(id: &str) -> OrgId {
    OrgId::parse(id).unwrap()
}

fn propose(action: Action) -> TxBody {
    TxBody::Propose(Propose {
        action,
        expires_at: rxchain::clock::now().plus_days(1),
    })
}

fn approve(proposal: TxId) -> TxBody {
    TxBody::Approve(Approve { proposal })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)] // the guard only serialises whole tests
async fn one_organisation_alone_cannot_remove_a_voter_the_threshold_can() {
    let _serial = serial();
    let started = Instant::now();
    // Nodes 1 (hosp-north), 2 (pharm-central) and 3 (reg-health).
    let mut c = Cluster::start(3).await;
    let chain_id = c.demo.genesis.chain_id.to_string();

    // 4.1 A small pharmacy's admin asks the cluster API to remove the
    //     regulator's voter: refused, governance is required.
    let path = "/v1/cluster/members/3";
    let mut req = c.http.delete(format!("{}{path}", c.base(1)));
    for (k, v) in admin_headers(
        &chain_id,
        &admin_key("pharm-harbour"),
        &Signer::Operator(org("pharm-harbour")),
        1,
        path,
        b"",
    ) {
        req = req.header(k, v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "governance_required", "{v}");

    // 4.2 Nor may it take the node out as if it were its own: refused on chain.
    let (_, status, v) = c
        .submit(
            2,
            &admin_key("pharm-harbour"),
            TxBody::LeaveNode(LeaveNode { node: 3 }),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["code"], "not_your_node", "{v}");
    assert!(
        v["receipt"]["height"].is_u64(),
        "the refusal is on chain: {v}"
    );

    // 4.3 As a proposal it stays open with one approval of five.
    let (p, status, v) = c
        .submit(
            1,
            &admin_key("pharm-harbour"),
            propose(Action::RemoveNode { node: 3 }),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let id = p.tx.id(&chain_id);
    let listed = c.wait_proposal(2, id, "open").await;
    assert_eq!(listed["missing"], 4, "{listed}");
    assert_eq!(c.voters().await, BTreeSet::from([1, 2, 3]));

    // 4.4 Three more approvals: still open, node 3 still a voter.
    for by in ["hosp-north", "pharm-central", "ins-civic"] {
        let (_, status, v) = c.submit(2, &admin_key(by), approve(id)).await;
        assert_eq!(status, 200, "{v}");
    }
    // An organisation approves once.
    let (_, status, v) = c.submit(1, &admin_key("hosp-north"), approve(id)).await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["code"], "already_approved", "{v}");
    let listed = c.wait_proposal(1, id, "open").await;
    assert_eq!(
        listed["proposal"]["approvals"].as_array().unwrap().len(),
        4,
        "{listed}"
    );
    assert!(c.consortium(1).await.node(3).is_some());
    assert_eq!(c.voters().await, BTreeSet::from([1, 2, 3]));

    // 4.5 The fifth approval executes it: node 3 leaves the consortium on
    //     chain and Raft follows.
    let (_, status, v) = c.submit(1, &admin_key("hosp-river"), approve(id)).await;
    assert_eq!(status, 200, "{v}");
    let g = c.wait_consortium(1, |g| g.node(3).is_none()).await;
    assert!(g.org(&org("reg-health")).unwrap().nodes.is_empty());
    c.wait_proposal(1, id, "executed").await;
    c.wait_voters(&BTreeSet::from([1, 2])).await;

    // 4.6 The two remaining voters still commit.
    let dr = rxchain::demo::key("governance/dr-remaining");
    let (_, status, v) = c
        .submit(
            2,
            &admin_key("hosp-north"),
            TxBody::RegisterStaff(RegisterStaff {
                org: org("hosp-north"),
                key: dr.public(),
                role: Role::Practitioner,
                licence: Label::parse("LIC-GOV-0001").unwrap(),
                name: Label::parse("Dr Remaining").unwrap(),
            }),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    c.kill(3);
    c.nodes.remove(&3);
    c.stop_and_verify();
    eprintln!("governance removal: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)] // the guard only serialises whole tests
async fn a_fourth_hospital_joins_after_genesis_and_its_doctor_prescribes() {
    let _serial = serial();
    let started = Instant::now();
    let mut c = Cluster::start(3).await;
    let chain_id = c.demo.genesis.chain_id.to_string();

    // 5.1 The new hospital's keys and node 6, which genesis does not know.
    let admin = rxchain::demo::key("governance/hosp-lake/admin");
    let data = rxchain::demo::key("governance/hosp-lake/data");
    let decl = OrgDecl {
        id: org("hosp-lake"),
        kind: OrgKind::Hospital,
        name: Label::parse("Lakeside Synthetic Hospital").unwrap(),
        address: Label::parse("6 Lake Road, Testtown").unwrap(),
        admin_key: admin.public(),
        data_key: data.public(),
        nodes: vec![NodeDecl {
            id: 6,
            key: node_key(6).public(),
            tls: rxchain::demo::tls_key(6).unwrap().hash,
        }],
    };

    // 5.2 hosp-north proposes; four more organisations approve; the
    //     fifth approval admits it.
    let (p, status, v) = c
        .submit(
            1,
            &admin_key("hosp-north"),
            propose(Action::AddOrg { org: decl }),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let id = p.tx.id(&chain_id);
    for by in ["pharm-central", "reg-health", "hosp-river", "ins-civic"] {
        let (_, status, v) = c.submit(2, &admin_key(by), approve(id)).await;
        assert_eq!(status, 200, "{v}");
    }
    let g = c.wait_consortium(3, |g| g.node(6).is_some()).await;
    assert_eq!(g.node(6).unwrap().0.id, org("hosp-lake"));
    c.wait_proposal(3, id, "executed").await;

    // 5.3 Node 6 starts with node 1 as its peer, joins and becomes a voter.
    c.add_node(6);
    c.wait_voters(&BTreeSet::from([1, 2, 3, 6])).await;
    c.wait_consortium(6, |g| g.node(6).is_some()).await;

    // 5.4 Its admin registers a doctor, through its own node.
    let doctor = rxchain::demo::key("governance/hosp-lake/dr-lake");
    let (_, status, v) = c
        .submit(
            6,
            &admin,
            TxBody::RegisterStaff(RegisterStaff {
                org: org("hosp-lake"),
                key: doctor.public(),
                role: Role::Practitioner,
                licence: Label::parse("LIC-LAKE-0001").unwrap(),
                name: Label::parse("Dr Lake").unwrap(),
            }),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    // 5.5 The doctor issues a prescription, wrapped for hosp-lake's data
    //     key and every regulator, and it commits.
    c.wait_staff(6, &doctor.public()).await;
    let g = c.consortium(6).await;
    let input = atorvastatin_issue(
        "hosp-lake",
        30,
        0,
        SyntheticPatient {
            name: "Lake Synthetic Patient".into(),
            birth_date: "1980-02-02",
            identifier: "SYN-LAKE-1".into(),
        },
        "one tablet daily",
    );
    let rx = tokio::task::spawn_blocking(move || txbuild::issue(&g, &doctor, input).unwrap())
        .await
        .unwrap();
    let (status, v) = c.submit_signed(6, &rx.tx).await;
    assert_eq!(status, 200, "{v}");
    let shown: Value = c
        .http
        .get(format!("{}/v1/prescriptions/{}", c.base(1), rx.payload.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["record"]["hospital"], "hosp-lake", "{shown}");
    assert_eq!(
        shown["hospital_name"], "Lakeside Synthetic Hospital",
        "{shown}"
    );
    assert_eq!(
        shown["history"][0]["outcome"]["result"], "applied",
        "{shown}"
    );
    c.stop_and_verify();
    eprintln!("governance admission: {:?}", started.elapsed());
}
