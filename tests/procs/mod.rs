//! A minimal consortium of real `rxchain node` processes on loopback, for
//! the quorum tests (receipts, skewed clock): a copy of the essentials of
//! the `tests/cluster.rs` harness. Node 1 bootstraps, the others join
//! through it; the genesis declares exactly the nodes started.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::spawned;
use rxchain::demo::Demo;
use rxchain::http::cluster::LocalView;
use rxchain_contracts::{Genesis, SignedTx};
use serde_json::Value;

/// The `rxchain` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_rxchain");

/// Raft timing for debug builds on a loaded machine.
const RAFT_TIMING: &str =
    "[raft]\nheartbeat_ms = 500\nelection_min_ms = 3000\nelection_max_ms = 5000\n";

/// Node processes under one temp dir.
pub struct Procs {
    pub dir: tempfile::TempDir,
    pub demo: Demo,
    /// The genesis the nodes run: the demo's, declaring only these nodes.
    pub genesis: Genesis,
    ports: BTreeMap<u64, u16>,
    children: BTreeMap<u64, Child>,
    pub http: reqwest::Client,
}

impl Procs {
    /// Starts nodes `ids` (the first bootstraps), each with the settings
    /// lines `extra(id)`, and waits until they all vote.
    pub async fn start(ids: &[u64], extra: impl Fn(u64) -> String) -> Procs {
        Self::launch(ids, ids, extra).await
    }

    /// The genesis declares `declared`; nodes `started` run (the first
    /// bootstraps), each with the settings lines `extra(id)`.
    async fn launch(declared: &[u64], started: &[u64], extra: impl Fn(u64) -> String) -> Procs {
        let dir = tempfile::tempdir().unwrap();
        let demo = Demo::load().unwrap();
        demo.write_files(dir.path(), declared).unwrap();
        let genesis = demo.genesis_for(declared);
        // reqwest is built without a default rustls provider.
        rxchain::tls::install_default_provider();
        let mut p = Procs {
            dir,
            demo,
            genesis,
            ports: BTreeMap::new(),
            children: BTreeMap::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        for &id in started {
            let cfg = p.write_config(id, id == started[0], &extra(id));
            let mut child = spawn(&cfg, id);
            let port = spawned::wait_bound(&mut child, p.dir.path(), id);
            // A restart comes back on the address the others know.
            spawned::pin_listen(&cfg, id, port);
            p.ports.insert(id, port);
            p.children.insert(id, child);
            if id == started[0] {
                p.wait_ready(id).await;
            }
        }
        p.wait_voters(&started.iter().copied().collect()).await;
        p
    }

    /// The base URL of node `id`.
    pub fn base(&self, id: u64) -> String {
        format!("http://127.0.0.1:{}", self.ports[&id])
    }

    /// The path of the genesis file the nodes run.
    pub fn genesis_path(&self) -> PathBuf {
        self.dir.path().join("genesis.json")
    }

    /// Node `id`'s own view of the cluster.
    pub async fn local(&self, id: u64) -> Option<LocalView> {
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

    async fn wait_voters(&self, voters: &BTreeSet<u64>) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut last = None;
        while Instant::now() < deadline {
            for &id in self.ports.keys() {
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

    /// The leader, as some node sees it.
    pub async fn leader(&self) -> Option<u64> {
        for &id in self.ports.keys() {
            if let Some(l) = self.local(id).await {
                if l.state == "leader" {
                    return Some(id);
                }
            }
        }
        None
    }

    /// Submits `tx` to node `id` until it is committed and applied, and
    /// returns the receipt.
    pub async fn commit(&self, id: u64, tx: &SignedTx) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let r = self
                .http
                .post(format!("{}/v1/tx", self.base(id)))
                .json(tx)
                .send()
                .await;
            if let Ok(r) = r {
                let status = r.status();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                assert!(
                    status == 200 || status == 202 || status == 503,
                    "submission answered {status}: {body}"
                );
                if status == 200 {
                    return body;
                }
            }
            assert!(Instant::now() < deadline, "never committed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every block of node `id`'s chain, as JSON.
    pub async fn blocks(&self, id: u64) -> Vec<Value> {
        let head: Value = self.get(id, "/v1/chain/head").await;
        let h = head["height"].as_u64().unwrap();
        let mut out = Vec::new();
        for height in 1..=h {
            out.push(self.get(id, &format!("/v1/blocks/{height}")).await);
        }
        out
    }

    /// A GET answered 200, as JSON.
    pub async fn get(&self, id: u64, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base(id)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path} on node {id}");
        r.json().await.unwrap()
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in self.children.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(cfg: &Path, id: u64) -> Child {
    spawned::spawn_node(BIN, cfg, id)
}

// Helpers for the backup test (tests/backup.rs): stopping one node, and
// starting it again with its log kept.
impl Procs {
    /// The data directory of node `id`.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node{id}"))
    }

    /// Kills node `id`'s process (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.children.remove(&id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `id` again from its settings file, on its port, with
    /// `RXCHAIN_LOG=filter` written to `node{id}.restart.log` (returned).
    pub fn respawn_logged(&mut self, id: u64, filter: &str) -> PathBuf {
        let cfg = self.dir.path().join(format!("node{id}.toml"));
        let log = self.dir.path().join(format!("node{id}.restart.log"));
        let f = std::fs::File::create(&log).unwrap();
        spawned::forget_addr(self.dir.path(), id);
        let mut child = Command::new(BIN)
            .args(["node", "--config"])
            .arg(&cfg)
            .env("RXCHAIN_LOG", filter)
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("spawn rxchain node");
        let port = spawned::wait_bound(&mut child, self.dir.path(), id);
        spawned::pin_listen(&cfg, id, port);
        self.ports.insert(id, port);
        self.children.insert(id, child);
        log
    }

    /// Node `id`'s chain head (`GET /v1/chain/head`), if it answers.
    pub async fn head(&self, id: u64) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/v1/chain/head", self.base(id)))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if r.status() != 200 {
            return None;
        }
        r.json().await.ok()
    }
}

impl Procs {
    /// Like [`Procs::start`], but the genesis declares the nodes
    /// `declared` while only `started` run (the first bootstraps): the
    /// others can join later with [`Procs::spawn_joiner_logged`].
    pub async fn start_declaring(declared: &[u64], started: &[u64]) -> Procs {
        Self::launch(declared, started, |_| String::new()).await
    }

    /// Writes node `id`'s settings file on an ephemeral port, which the
    /// first start pins (joining through the lowest-numbered running node
    /// unless it bootstraps).
    fn write_config(&mut self, id: u64, bootstrap: bool, extra: &str) -> PathBuf {
        let mut toml = format!(
            "node_id = {id}\ndata_dir = \"node{id}\"\ngenesis = \"genesis.json\"\nnode_key_file = \"node{id}.key\"\n{}bootstrap = {bootstrap}\n{extra}",
            spawned::listen_any(id),
        );
        if !bootstrap {
            let (first, first_port) = self.ports.iter().next().expect("a running node");
            toml.push_str(&format!(
                "[peers]\n\"{first}\" = \"127.0.0.1:{first_port}\"\n"
            ));
        }
        toml.push_str(RAFT_TIMING);
        let cfg = self.dir.path().join(format!("node{id}.toml"));
        std::fs::write(&cfg, toml).unwrap();
        cfg
    }

    /// Starts a new node `id` (declared, not running yet) that joins the
    /// running ones, logging at `filter` into `node{id}.restart.log`.
    pub fn spawn_joiner_logged(&mut self, id: u64, filter: &str) -> PathBuf {
        self.write_config(id, false, "");
        self.respawn_logged(id, filter)
    }
}
