//! Erasure after retention (crypto-shredding) on three real nodes: a
//! completed prescription's personal data is readable on every node, then
//! the whole consortium is restarted 101 days later (the test-only clock
//! offset), each node's sweep erases its key wraps, and from then on no
//! node serves the patient's name, no stored block, Raft log entry or
//! snapshot file holds a personal wrap, the regulator's wraps and a
//! younger prescription's wraps are still there, and the full audit
//! (`rxchain verify`, the dispensing report) still holds.

mod common;
mod staff_client;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::eventually;
use reqwest::StatusCode;
use rxchain::node::RunningNode;
use rxchain::test_support::{create_demo_accounts, demo_settings, register_demo_staff};
use rxchain_contracts::tx::Erasure;
use rxchain_contracts::PrescriptionId;
use serde_json::{json, Value};
use staff_client::{assert_error, issue_body, post_anon, Staff};

const DAY_MS: i64 = 86_400_000;
const NAME: &str = "Synthetic Patient Shred";
const YOUNGER: &str = "Synthetic Patient Younger";

/// Starts demo node `id` of the three under `dir`, `offset_days` ahead,
/// sweeping every second; node 1 bootstraps, the others join through
/// `peer`.
async fn start(
    dir: &Path,
    id: u64,
    listen: SocketAddr,
    peer: Option<&str>,
    offset_days: i64,
) -> RunningNode {
    let mut s = demo_settings(dir, id, listen, None);
    s.testing_faults = true;
    s.testing_clock_offset_ms = offset_days * DAY_MS;
    s.erasure_sweep_secs = 1;
    if let Some(p) = peer {
        s.bootstrap = false;
        s.peers.insert("1".into(), p.into());
    }
    let node = common::start_retrying(s).await;
    let demo = rxchain::demo::Demo::load().unwrap();
    create_demo_accounts(&demo, &node.accounts).await.unwrap();
    node
}

/// The three nodes, node 1 first, waiting until 2 and 3 vote. A new
/// cluster (`at` empty) forms through node 1 on fresh ports; a restarted
/// one takes the same ports again (Raft's membership holds the addresses)
/// and needs a majority up before anyone leads, so all three start first.
async fn cluster(dir: &Path, offset_days: i64, at: &[SocketAddr]) -> Vec<RunningNode> {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let listen = |i: usize| at.get(i).copied().unwrap_or(any);
    let n1 = start(dir, 1, listen(0), None, offset_days).await;
    if at.is_empty() {
        rxchain::test_support::wait_for_leader(&n1).await.unwrap();
    }
    let addr1 = n1.addr.to_string();
    let n2 = start(dir, 2, listen(1), Some(&addr1), offset_days).await;
    let n3 = start(dir, 3, listen(2), Some(&addr1), offset_days).await;
    rxchain::test_support::wait_for_leader(&n1).await.unwrap();
    eventually("nodes 2 and 3 to be voters", 60, || async {
        let m = n1.raft.metrics().borrow().clone();
        let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
        (voters.contains(&2) && voters.contains(&3)).then_some(())
    })
    .await;
    vec![n1, n2, n3]
}

fn base(n: &RunningNode) -> String {
    format!("http://{}", n.addr)
}

/// The ciphertext bytes of every key wrap of `which` kind, in every
/// transaction about `id` that `n` stores, as they are now.
fn wraps(n: &RunningNode, id: &PrescriptionId, which: Erasure) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for b in n.chain.blocks(1) {
        for t in b.expect("a stored block").txs {
            if t.tx.body.prescription() != Some(*id) {
                continue;
            }
            let mut body = t.tx.body.clone();
            for w in body.wraps_mut(which) {
                if let Some(s) = w.sealed.present() {
                    out.push(s.ciphertext.clone());
                }
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Where each of `needles` occurs in a stopped node's data: every value of
/// every sled tree (blocks, state, Raft log, indexes, node-local trees) and
/// every snapshot file.
fn found_in(data: &Path, needles: &[Vec<u8>]) -> Vec<String> {
    let db = {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match sled::open(data) {
                Ok(db) => break db,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!("sled opens {}: {e}", data.display()),
            }
        }
    };
    let mut hits = Vec::new();
    for name in db.tree_names() {
        let tree = db.open_tree(&name).unwrap();
        for kv in tree.iter() {
            let (k, v) = kv.unwrap();
            for (i, n) in needles.iter().enumerate() {
                if contains(&v, n) {
                    hits.push(format!(
                        "wrap {i} in tree {} at key {}",
                        String::from_utf8_lossy(&name),
                        hex::encode(&k)
                    ));
                }
            }
        }
    }
    drop(db);
    for f in snapshot_files(data) {
        let bytes = std::fs::read(&f).unwrap();
        for (i, n) in needles.iter().enumerate() {
            if contains(&bytes, n) {
                hits.push(format!("wrap {i} in snapshot file {}", f.display()));
            }
        }
    }
    hits
}

fn snapshot_files(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data.join(rxchain::store::sm::SNAPSHOT_DIR))
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "snap"))
                .collect()
        })
        .unwrap_or_default()
}

/// Has `n` build a snapshot now and waits for its file.
async fn snapshot(n: &RunningNode, data: &Path) {
    let before = snapshot_files(data);
    n.raft.trigger().snapshot().await.unwrap();
    eventually("a new snapshot file", 30, || async {
        let now = snapshot_files(data);
        (!now.is_empty() && now != before).then_some(())
    })
    .await;
}

async fn open(base: &str, payload: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    post_anon(base, "/v1/patient/open", &json!({"payload": payload})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_retention_no_node_can_read_the_patient_and_the_audit_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let demo = rxchain::demo::Demo::load().unwrap();
    demo.write_files(dir.path(), &[1, 2, 3]).unwrap();
    let data = |id: u64| dir.path().join(format!("node{id}"));

    // 1. Three members: the hospital's node 1, the pharmacy's node 2, the
    //    regulator's node 3.
    let nodes = cluster(dir.path(), 0, &[]).await;
    let b1 = base(&nodes[0]);
    register_demo_staff(&demo, &rxchain::client::Client::new(b1.clone()))
        .await
        .unwrap();
    let ada = Staff::sign_in(&b1, "dr.ada").await;
    let cara = Staff::sign_in(&b1, "ph.cara").await;
    let gail = Staff::sign_in(&b1, "reg.gail").await;

    // 2. A prescription goes the whole way: home delivery from Central
    //    (the access secret handed over, the address sealed), shared with
    //    the insurer, claimed and dispensed in full. A younger one stays
    //    open.
    let issued = ada
        .ok("/v1/staff/prescriptions", &issue_body(NAME, 14))
        .await;
    let id_hex = issued["id"].as_str().unwrap().to_string();
    let id = PrescriptionId::parse(&id_hex).unwrap();
    let payload = issued["payload"].as_str().unwrap().to_string();
    let assigned = post_anon(
        &b1,
        "/v1/patient/assign",
        &json!({"payload": payload, "mode": "delivery", "pharmacy": "pharm-central",
                "address": "7 Synthetic Lane, Testtown"}),
    )
    .await;
    assert_eq!(assigned.0, StatusCode::OK, "{}", assigned.2);
    let shared = post_anon(
        &b1,
        "/v1/patient/share",
        &json!({"payload": payload, "org": "ins-civic", "days": 30}),
    )
    .await;
    assert_eq!(shared.0, StatusCode::OK, "{}", shared.2);
    cara.ok("/v1/staff/claim", &json!({"payload": payload}))
        .await;
    let filled = cara
        .ok(
            "/v1/staff/dispense",
            &json!({"id": id_hex, "lines": [{"item": 0, "quantity": 20, "batch": "SHRED-1"},
                     {"item": 1, "quantity": 10, "batch": "SHRED-2"}], "complete": true}),
        )
        .await;
    assert_eq!(filled["outcome"]["result"], "applied", "{filled}");
    let younger = ada
        .ok("/v1/staff/prescriptions", &issue_body(YOUNGER, 14))
        .await;
    let younger_payload = younger["payload"].as_str().unwrap().to_string();
    let younger_id = PrescriptionId::parse(younger["id"].as_str().unwrap()).unwrap();

    // 3. Before: every node opens it for the patient; the insurer reads it
    //    on node 2; the doctor's list names the patient; the regulator's
    //    report counts the fill.
    let height = nodes[0].chain.tip().height;
    for n in &nodes {
        eventually("the node to catch up", 60, || async {
            (n.chain.tip().height >= height).then_some(())
        })
        .await;
        let (s, _, v) = open(&base(n), &payload).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["content"]["patient"]["name"], NAME, "{v}");
    }
    let ivy = Staff::sign_in(&base(&nodes[1]), "ins.ivy").await;
    let (s, _, read) = ivy.get(&format!("/v1/shared/{id_hex}")).await;
    assert_eq!(s, StatusCode::OK, "{read}");
    assert_eq!(read["content"]["patient"]["name"], NAME);
    let (_, _, list) = ada.get("/v1/staff/prescriptions").await;
    let row = |list: &Value, id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed: {list}"))
    };
    assert_eq!(row(&list, &id_hex)["patient_name"], NAME);
    let (s, _, report) = gail.get("/v1/reports/dispensing").await;
    assert_eq!(s, StatusCode::OK, "{report}");
    let period = format!(
        "from={}&to={}",
        report["from"].as_str().unwrap(),
        report["to"].as_str().unwrap()
    );
    assert_eq!(report["totals"]["quantity"], 30, "{report}");

    // The wraps as stored now: four personal ones (patient, hospital,
    // hand-over, insurer) and the regulator's; the younger prescription's.
    let personal = wraps(&nodes[0], &id, Erasure::Personal);
    let regulator = wraps(&nodes[0], &id, Erasure::Regulator);
    let young = wraps(&nodes[0], &younger_id, Erasure::Personal);
    assert_eq!(personal.len(), 4, "patient, hospital, hand-over, grantee");
    assert_eq!(regulator.len(), 1);
    assert_eq!(young.len(), 2);
    for (i, n) in nodes.iter().enumerate() {
        snapshot(n, &data(i as u64 + 1)).await;
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    for n in nodes {
        n.stop().await;
    }
    // The check below can fail: before erasure, each node holds them, in
    // its blocks, its Raft log and its snapshot.
    for id in 1..=3 {
        let hits = found_in(&data(id), &personal);
        assert!(
            hits.iter().any(|h| h.contains("tree chain"))
                && hits.iter().any(|h| h.contains("snapshot file")),
            "node {id} holds the wraps before erasure: {hits:?}"
        );
    }

    // 4. The consortium restarts 101 days later: past the 100 days of
    //    personal-data retention after completion, well inside the
    //    regulator's, and the younger prescription (valid 14 days) ended
    //    only 87 days ago.
    let nodes = cluster(dir.path(), 101, &addrs).await;
    for n in &nodes {
        eventually("the sweep to erase this node's four wraps", 60, || async {
            (n.service.metrics.erased_key_wraps.get() >= 4
                && wraps(n, &id, Erasure::Personal).is_empty())
            .then_some(())
        })
        .await;
        assert_eq!(
            wraps(n, &id, Erasure::Regulator),
            regulator,
            "the regulator's wrap stays"
        );
        assert_eq!(
            wraps(n, &younger_id, Erasure::Personal),
            young,
            "not due yet"
        );
    }
    // Each node rebuilt its snapshot without them.
    for (i, n) in nodes.iter().enumerate() {
        let d = data(i as u64 + 1);
        eventually("a snapshot without the erased wraps", 60, || async {
            let files = snapshot_files(&d);
            let clean = !files.is_empty()
                && files.iter().all(|f| {
                    let bytes = std::fs::read(f).unwrap_or_default();
                    personal.iter().all(|w| !contains(&bytes, w))
                });
            clean.then_some(())
        })
        .await;
        let _ = n;
    }

    // 5. After: no node opens it, for the patient or the insurer; the
    //    doctor's list no longer names the patient; the younger one opens.
    for n in &nodes {
        let got = open(&base(n), &payload).await;
        assert_error(&got, 410, "personal_data_erased");
        assert!(!got.2.to_string().contains(NAME), "{}", got.2);
        let (s, _, v) = open(&base(n), &younger_payload).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["content"]["patient"]["name"], YOUNGER);
    }
    let b1 = base(&nodes[0]);
    let ada = Staff::sign_in(&b1, "dr.ada").await;
    let (_, _, list) = ada.get("/v1/staff/prescriptions").await;
    let erased_row = row(&list, &id_hex);
    assert_ne!(erased_row["patient_name"], NAME, "{erased_row}");
    assert_eq!(
        erased_row["items"][0]["atc"], "J01CA04",
        "the audit data stays"
    );
    assert_eq!(
        row(&list, younger["id"].as_str().unwrap())["patient_name"],
        YOUNGER
    );
    let ivy = Staff::sign_in(&base(&nodes[1]), "ins.ivy").await;
    let got = ivy.get(&format!("/v1/shared/{id_hex}")).await;
    assert_eq!(got.0.as_u16(), 410, "{}", got.2);
    assert!(!got.2.to_string().contains(NAME));
    // Asking for access to it now is refused by the chain, once chain time
    // (bounded by a majority's clock attestations) has caught up with the
    // nodes' clocks: the younger prescription's reads above are anchored in
    // blocks meanwhile.
    let later = rxchain_contracts::Timestamp(rxchain::clock::now_ms() + 100 * DAY_MS as u64);
    eventually("chain time to pass the retention", 60, || async {
        (nodes[0].chain.tip().timestamp >= later).then_some(())
    })
    .await;
    let asked = ivy
        .post("/v1/consent/requests", &json!({"id": id_hex, "days": 30}))
        .await;
    assert_error(&asked, 410, "personal_data_erased");

    // 6. The audit: the report over the same period still counts the fill
    //    with its drugs and quantities.
    let gail = Staff::sign_in(&b1, "reg.gail").await;
    let (s, _, after) = gail
        .get(&format!("/v1/reports/dispensing?{period}&group_by=drug"))
        .await;
    assert_eq!(s, StatusCode::OK, "{after}");
    assert_eq!(after["totals"]["quantity"], 30, "{after}");
    assert_eq!(after["totals"]["controlled_quantity"], 10, "{after}");
    for n in nodes {
        n.stop().await;
    }

    // 7. On disk, no node holds a personal wrap in any tree or snapshot;
    //    the regulator's and the younger prescription's are still there;
    //    and each data directory verifies from genesis.
    for id in 1..=3 {
        let hits = found_in(&data(id), &personal);
        assert!(hits.is_empty(), "node {id} still holds: {hits:?}");
        assert!(!found_in(&data(id), &regulator).is_empty(), "node {id}");
        assert!(!found_in(&data(id), &young).is_empty(), "node {id}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rxchain"))
            .arg("verify")
            .arg(data(id))
            .arg("--genesis")
            .arg(dir.path().join("genesis.json"))
            .env("RXCHAIN_LOG", "warn")
            .output()
            .expect("rxchain verify runs");
        assert!(
            out.status.success(),
            "node {id} verifies: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
