//! Crash test: a real `rxchain node` process is killed with SIGKILL while
//! load is running, then restarted, several times. Every transaction it
//! acknowledged must be on the chain afterwards, nothing half-applied may
//! remain, and `rxchain verify` must pass.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::issue::{atorvastatin_issue, SyntheticPatient};
use common::spawned;
use rxchain::client::{Client, ClientError, Submitted};
use rxchain::demo::{staff_key, Demo};
use rxchain::txbuild;
use rxchain_contracts::TxId;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_rxchain");

fn write_config(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("node.toml");
    std::fs::write(
        &cfg,
        format!(
            "node_id = 1\ndata_dir = \"node1\"\ngenesis = \"genesis.json\"\nnode_key_file = \"node1.key\"\n{}bootstrap = true\n[tls]\ncert_file = \"node1.tls.crt\"\nkey_file = \"node1.tls.key\"\n",
            spawned::listen_any(1)
        ),
    )
    .unwrap();
    cfg
}

/// Spawns the node and waits until it listens; returns it and its port.
fn spawn(cfg: &Path) -> (Child, u16) {
    let dir = cfg.parent().unwrap();
    spawned::forget_addr(dir, 1);
    let mut child = Command::new(BIN)
        .args(["node", "--config"])
        .arg(cfg)
        .env("RXCHAIN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(spawned::log_sink(dir, 1))
        .spawn()
        .expect("spawn rxchain node");
    let port = spawned::wait_bound(&mut child, dir, 1);
    (child, port)
}

/// HTTPS trusting exactly the TLS keys the genesis under `dir` declares.
fn tls_config(dir: &Path) -> rustls::ClientConfig {
    let g: rxchain_contracts::Genesis =
        serde_json::from_str(&std::fs::read_to_string(dir.join("genesis.json")).unwrap()).unwrap();
    rxchain::tls::genesis_client_config(&g).unwrap()
}

async fn wait_ready(base: &str, dir: &Path) {
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(dir))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node at {base} did not become ready");
}

fn issue_tx(g: &rxchain_contracts::Genesis, i: usize) -> rxchain_contracts::SignedTx {
    let (doctor, hospital) = if i % 2 == 0 {
        ("dr.ada", "hosp-north")
    } else {
        ("dr.ben", "hosp-river")
    };
    let input = atorvastatin_issue(
        hospital,
        30,
        2,
        SyntheticPatient {
            name: format!("Crash Synthetic {i}"),
            birth_date: "1960-06-06",
            identifier: format!("SYN-C-{i}"),
        },
        "one tablet at night",
    );
    txbuild::issue(g, &staff_key(doctor), input).unwrap().tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::load().unwrap();
    demo.write_files(dir.path(), &[1]).unwrap();
    let cfg = write_config(dir.path());

    // 1. Start the node and register the demo staff. Restarts come back on
    //    the port it first bound.
    let (mut child, port) = spawn(&cfg);
    spawned::pin_listen(&cfg, 1, port);
    let base = format!("https://127.0.0.1:{port}");
    let client = Client::with_tls(base.clone(), tls_config(dir.path())).unwrap();
    wait_ready(&base, dir.path()).await;
    rxchain::test_support::register_demo_staff(&demo, &client)
        .await
        .unwrap();
    let g = demo.genesis.clone();
    let acked: Arc<Mutex<Vec<TxId>>> = Arc::new(Mutex::new(Vec::new()));
    let mut next = 0usize;

    for cycle in 0..4 {
        // 2. Offer load from several clients, then SIGKILL the node mid-stream.
        let txs: Vec<_> = (next..next + 400).map(|i| issue_tx(&g, i)).collect();
        next += 400;
        let txs = Arc::new(Mutex::new(txs));
        let mut workers = Vec::new();
        for _ in 0..16 {
            let (txs, acked, client) = (txs.clone(), acked.clone(), client.clone());
            let chain_id = g.chain_id.to_string();
            workers.push(tokio::spawn(async move {
                loop {
                    let Some(tx) = txs.lock().unwrap().pop() else {
                        break;
                    };
                    match client.submit(&tx).await {
                        Ok(Submitted::Applied(r)) => acked.lock().unwrap().push(r.tx_id),
                        Err(ClientError::Api { body, .. }) if body["receipt"].is_object() => {
                            acked.lock().unwrap().push(tx.tx.id(&chain_id))
                        }
                        // Unacknowledged: the node died first. Nothing is promised.
                        _ => {}
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(300 + 150 * cycle as u64)).await;
        child.kill().expect("SIGKILL the node");
        child.wait().unwrap();
        for w in workers {
            w.await.unwrap();
        }

        // 3. Restart: the node recovers by itself.
        child = spawn(&cfg).0;
        wait_ready(&base, dir.path()).await;

        // 4. Every acknowledged transaction is on the chain, with a proof.
        let ids = acked.lock().unwrap().clone();
        assert!(
            !ids.is_empty(),
            "cycle {cycle}: some transactions were acknowledged before the kill"
        );
        for id in &ids {
            let v: serde_json::Value = client
                .get(&format!("/v1/tx/{id}"))
                .await
                .unwrap_or_else(|e| panic!("cycle {cycle}: acknowledged {id} lost: {e}"));
            assert!(v["receipt"]["height"].as_u64().is_some());
        }
    }

    // 5. Stop the node cleanly and verify the whole chain offline with the CLI.
    child.kill().unwrap();
    child.wait().unwrap();
    let out = Command::new(BIN)
        .args(["verify", "--quiet"])
        .arg(dir.path().join("node1"))
        .arg("--genesis")
        .arg(dir.path().join("genesis.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rxchain verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("ok:"), "{stdout}");
    let n = acked.lock().unwrap().len();
    eprintln!("{n} acknowledged transactions survived 4 SIGKILLs; {stdout}");
}
