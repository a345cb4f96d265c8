//! Issue 11, backup, restore and upgrade:
//!
//! - an online backup of a three-process consortium taken while
//!   prescriptions are being issued is restored into a fresh directory; a
//!   node started on it rejoins, catches up by log entries (no snapshot is
//!   installed) and ends at the same head hash as the others;
//! - the online backup is signed: the public and another organisation are
//!   refused, and its answers match the OpenAPI document;
//! - a new declared node seeded from another node's backup joins and
//!   catches up by log entries; every node's directory then verifies offline;
//! - offline backup and restore of a stopped node's directory; a tampered
//!   backup (a state value, an index pair) is refused and writes nothing;
//!   a non-empty target is refused;
//! - `rxchain verify` and the offline backup leave every file of the data
//!   directory byte-identical and add none, and refuse a running node's;
//! - the data directory's format version: an old layout is migrated, a
//!   newer one refused with a clear message by verify, the store and the node.

mod common;
mod procs;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use procs::{Procs, BIN};
use rxchain::client::Client;
use rxchain::demo::{admin_key, staff_key, Demo};
use rxchain::store::{self, NoObserver, StoreError};
use rxchain::test_support::{demo_settings, register_demo_staff, wait_for_leader};
use rxchain_contracts::{Genesis, Label, OrgId};
use serde_json::Value;

/// Runs the `rxchain` binary with `args`.
fn rxchain<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    std::process::Command::new(BIN)
        .args(args)
        .env("RXCHAIN_LOG", "warn")
        .output()
        .expect("rxchain runs")
}

/// Runs `rxchain verify --quiet DIR --genesis GENESIS`.
fn verify(dir: &Path, genesis: &Path) -> Output {
    rxchain([
        "verify".as_ref(),
        "--quiet".as_ref(),
        dir.as_os_str(),
        "--genesis".as_ref(),
        genesis.as_os_str(),
    ])
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("readable dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.insert(p.clone(), std::fs::read(&p).expect("readable file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

/// A stopped one-node demo consortium with its staff registered: the temp
/// dir, the node's data dir and the genesis file.
async fn stopped_node() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::load().expect("demo fixture");
    demo.write_files(dir.path(), &[1]).expect("demo files");
    let settings = demo_settings(dir.path(), 1, "127.0.0.1:0".parse().unwrap(), None);
    let data = settings.data_dir.clone();
    let genesis = settings.genesis.clone();
    let node = rxchain::node::start(settings).await.expect("node starts");
    wait_for_leader(&node).await.expect("leader");
    let client = Client::new(format!("http://{}", node.addr));
    register_demo_staff(&demo, &client)
        .await
        .expect("staff registered");
    node.stop().await;
    // `stop` returns once the node's tasks and Raft have ended; sled may
    // still write its last flush as the final handles drop. Wait until the
    // directory is quiet, so the read-only checks below compare against
    // the directory as the stopped node left it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut last = files(&data);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = files(&data);
        if now == last {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stopped node's directory kept changing"
        );
        last = now;
    }
    (dir, data, genesis)
}

fn read_genesis(path: &Path) -> Arc<Genesis> {
    Arc::new(rxchain::node::read_genesis(path).expect("genesis"))
}

/// The tip and state digest of a data directory, read through a copy.
fn head_of(dir: &Path, genesis: &Path) -> (rxchain_contracts::Tip, rxchain_contracts::Hash) {
    let copy = store::readonly::open_copy(dir, read_genesis(genesis)).expect("opens read-only");
    let chain = &copy.storage.chain;
    (chain.tip(), chain.try_state_digest().expect("state reads"))
}

/// Rewrites the backup `from` into `to` with `change` applied to its pairs.
fn tamper(from: &Path, to: &Path, change: impl FnOnce(&mut Vec<(Vec<u8>, Vec<u8>)>)) {
    let mut pairs = store::backup::read_pairs(std::io::BufReader::new(
        std::fs::File::open(from).expect("backup"),
    ))
    .expect("backup reads");
    change(&mut pairs);
    pairs.sort();
    store::backup::write_pairs(std::fs::File::create(to).expect("tampered file"), pairs)
        .expect("written");
}

/// Nothing named like a restore's staging folder is left in `dir`.
fn no_staging_left(dir: &Path) {
    for e in std::fs::read_dir(dir).expect("readable") {
        let name = e.expect("entry").file_name();
        assert!(
            !name.to_string_lossy().starts_with(".rxchain-restore-"),
            "a staging folder {name:?} was left behind"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_backup_restore_tamper_and_read_only_verify() {
    let (dir, data, genesis) = stopped_node().await;
    let before = files(&data);
    assert!(!before.is_empty());

    // verify reads a private copy: every file byte-identical, none added.
    let v = verify(&data, &genesis);
    assert!(v.status.success(), "{}", text(&v));
    assert!(String::from_utf8_lossy(&v.stdout).contains("storage key"));
    assert_eq!(files(&data), before, "verify wrote to the data directory");

    // The offline backup reads the directory the same way.
    let backup = dir.path().join("offline.backup");
    let b = rxchain([
        "backup".as_ref(),
        data.as_os_str(),
        "--genesis".as_ref(),
        genesis.as_os_str(),
        "--out".as_ref(),
        backup.as_os_str(),
        "--quiet".as_ref(),
    ]);
    assert!(b.status.success(), "{}", text(&b));
    assert_eq!(
        files(&data),
        before,
        "the offline backup wrote to the data directory"
    );
    let again = rxchain([
        "backup".as_ref(),
        data.as_os_str(),
        "--genesis".as_ref(),
        genesis.as_os_str(),
        "--out".as_ref(),
        backup.as_os_str(),
    ]);
    assert!(
        !again.status.success(),
        "an existing backup file is overwritten"
    );

    // Restore into a fresh directory: the same tip and state, and it verifies.
    let restored = dir.path().join("restored");
    let r = rxchain([
        "restore".as_ref(),
        backup.as_os_str(),
        "--data-dir".as_ref(),
        restored.as_os_str(),
        "--genesis".as_ref(),
        genesis.as_os_str(),
        "--quiet".as_ref(),
    ]);
    assert!(r.status.success(), "{}", text(&r));
    assert_eq!(head_of(&restored, &genesis), head_of(&data, &genesis));
    assert!(head_of(&restored, &genesis).0.height >= 1);
    let v = verify(&restored, &genesis);
    assert!(v.status.success(), "{}", text(&v));
    no_staging_left(dir.path());

    // A non-empty target is refused.
    let r = rxchain([
        "restore".as_ref(),
        backup.as_os_str(),
        "--data-dir".as_ref(),
        restored.as_os_str(),
        "--genesis".as_ref(),
        genesis.as_os_str(),
    ]);
    assert!(!r.status.success(), "{}", text(&r));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("not empty"),
        "{}",
        text(&r)
    );

    // Tampered backups are refused with a clear error and write nothing.
    let state_flip = dir.path().join("state.backup");
    tamper(&backup, &state_flip, |pairs| {
        let (_, v) = pairs
            .iter_mut()
            .find(|(k, v)| k.starts_with(b"s/") && !v.is_empty())
            .expect("a state pair");
        *v.last_mut().unwrap() ^= 1;
    });
    let index_extra = dir.path().join("index.backup");
    tamper(&backup, &index_extra, |pairs| {
        // A refusal index entry no block produced.
        let mut k = b"i/rf/".to_vec();
        k.extend_from_slice(&1u64.to_be_bytes());
        k.extend_from_slice(&77u32.to_be_bytes());
        pairs.push((k, Vec::new()));
    });
    for (file, why) in [
        (&state_flip, "root"),
        (&index_extra, "not what its blocks produce"),
    ] {
        let target = dir.path().join("tampered");
        let r = rxchain([
            "restore".as_ref(),
            file.as_os_str(),
            "--data-dir".as_ref(),
            target.as_os_str(),
            "--genesis".as_ref(),
            genesis.as_os_str(),
        ]);
        assert!(
            !r.status.success(),
            "a tampered backup restored: {}",
            text(&r)
        );
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains("refused") && err.contains(why), "{}", text(&r));
        assert!(err.contains("nothing was written"), "{}", text(&r));
        assert!(
            !target.exists(),
            "a refused restore created {}",
            target.display()
        );
        no_staging_left(dir.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_versions_migrate_old_and_refuse_new() {
    let (dir, data, genesis) = stopped_node().await;
    let g = read_genesis(&genesis);
    let open_sled = |p: &Path| -> sled::Db {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match sled::open(p) {
                Ok(db) => return db,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("sled opens: {e}"),
            }
        }
    };
    // A directory the node wrote has the current version.
    let lthash;
    {
        let db = open_sled(&data);
        assert_eq!(
            db.get(store::format::FORMAT_KEY).unwrap().as_deref(),
            Some(store::format::FORMAT_VERSION.to_be_bytes().as_slice())
        );
        // Make it a version 1 layout: no version key, no stored accumulator.
        let chain = db.open_tree("chain").unwrap();
        lthash = chain.remove(b"m/lthash").unwrap().expect("an accumulator");
        db.remove(store::format::FORMAT_KEY).unwrap();
        db.flush().unwrap();
    }
    // Opening migrates it: the version is recorded, the accumulator back.
    {
        let s = store::open(&data, g.clone(), Arc::new(NoObserver)).expect("a v1 dir opens");
        assert_eq!(
            store::format::stored_version(&s.db).unwrap(),
            Some(store::format::FORMAT_VERSION)
        );
        let chain = s.db.open_tree("chain").unwrap();
        assert_eq!(chain.get(b"m/lthash").unwrap(), Some(lthash));
    }
    let v = verify(&data, &genesis);
    assert!(
        v.status.success(),
        "the migrated dir verifies: {}",
        text(&v)
    );

    // A version-2 directory whose transaction ids do not fit the erasable
    // form of key wraps (there, ids signed the wraps whole: here a block's
    // transaction root is made to disagree) is refused with a sentence.
    {
        let db = open_sled(&data);
        let chain = db.open_tree("chain").unwrap();
        let key = [b"b/".as_slice(), &1u64.to_be_bytes()].concat();
        let mut b: rxchain_contracts::Block =
            rxchain_contracts::encoding::from_bytes(&chain.get(&key).unwrap().unwrap()).unwrap();
        let good = b.clone();
        b.header.tx_root = rxchain_contracts::Hash::of(&[b"ids over whole wraps"]);
        chain
            .insert(&key, rxchain_contracts::encoding::to_bytes(&b))
            .unwrap();
        db.insert(store::format::FORMAT_KEY, 2u32.to_be_bytes().as_slice())
            .unwrap();
        db.flush().unwrap();
        drop(chain);
        drop(db);
        match store::open(&data, g.clone(), Arc::new(NoObserver)) {
            Err(e) => assert!(e.to_string().contains("cannot be carried forward"), "{e}"),
            Ok(_) => panic!("a format-2 chain with foreign ids opened"),
        }
        let db = open_sled(&data);
        assert_eq!(store::format::stored_version(&db).unwrap(), Some(2));
        db.open_tree("chain")
            .unwrap()
            .insert(&key, rxchain_contracts::encoding::to_bytes(&good))
            .unwrap();
        db.flush().unwrap();
    }

    // A newer format is refused, by verify, the store and the node, and
    // left as it is.
    let newer = store::format::FORMAT_VERSION + 1;
    {
        let db = open_sled(&data);
        db.insert(store::format::FORMAT_KEY, newer.to_be_bytes().as_slice())
            .unwrap();
        db.flush().unwrap();
    }
    let v = verify(&data, &genesis);
    assert!(!v.status.success(), "{}", text(&v));
    assert!(
        String::from_utf8_lossy(&v.stderr).contains(&format!("format version {newer}")),
        "{}",
        text(&v)
    );
    match store::open(&data, g.clone(), Arc::new(NoObserver)) {
        Err(StoreError::FormatTooNew { found, supported }) => {
            assert_eq!((found, supported), (newer, store::format::FORMAT_VERSION))
        }
        Err(e) => panic!("expected FormatTooNew, got {e}"),
        Ok(_) => panic!("a newer format opened"),
    }
    let settings = demo_settings(dir.path(), 1, "127.0.0.1:0".parse().unwrap(), None);
    match rxchain::node::start(settings).await {
        Err(rxchain::node::NodeError::Store(StoreError::FormatTooNew { found, .. }))
            if found == newer => {}
        Err(e) => panic!("expected FormatTooNew, got {e}"),
        Ok(_) => panic!("a node started on a newer format"),
    }
    let db = open_sled(&data);
    assert_eq!(store::format::stored_version(&db).unwrap(), Some(newer));
}

/// Stops every node of `p` and verifies each one's data directory offline,
/// the Raft log against the chain included.
fn stop_and_verify_all(p: &mut Procs, ids: &[u64]) {
    for &id in ids {
        p.kill(id);
    }
    for &id in ids {
        let v = verify(&p.data_dir(id), &p.genesis_path());
        assert!(v.status.success(), "node {id}: {}", text(&v));
        let out = String::from_utf8_lossy(&v.stdout).into_owned();
        assert!(out.contains("applied Raft log entries verify"), "{out}");
        // Its two phases are timed apart, on stderr: the private copy, then
        // the checks.
        let err = String::from_utf8_lossy(&v.stderr).into_owned();
        let phases = err
            .lines()
            .find(|l| l.starts_with("copied and opened"))
            .unwrap_or_default();
        let secs: Vec<f64> = phases
            .strip_prefix("copied and opened the directory in ")
            .and_then(|r| r.strip_suffix(" s"))
            .and_then(|r| r.split_once(" s, verified the copy in "))
            .map(|(a, b)| vec![a.parse().unwrap(), b.parse().unwrap()])
            .unwrap_or_else(|| panic!("no phase times: {err}"));
        assert!(secs.iter().all(|s| *s >= 0.0 && *s < 600.0), "{phases}");
    }
}

/// An issue transaction of a fresh prescription by dr.ada.
fn issue_tx(genesis: &Genesis, n: u64) -> rxchain_contracts::SignedTx {
    use rxchain_contracts::privacy::{PatientDetails, PrivateContent};
    use rxchain_contracts::tx::Item;
    use rxchain_contracts::{AtcCode, Quantity};
    rxchain::txbuild::issue(
        genesis,
        &staff_key("dr.ada"),
        rxchain::txbuild::IssueInput {
            hospital: OrgId::parse("hosp-north").unwrap(),
            items: vec![Item {
                atc: AtcCode::parse("J01CA04").unwrap(),
                name: Label::parse("Amoxicillin").unwrap(),
                strength: Label::parse("500 mg").unwrap(),
                form: Label::parse("capsule").unwrap(),
                quantity: Quantity::new(20).unwrap(),
                unit: Label::parse("capsules").unwrap(),
                controlled: false,
            }],
            repeats: 0,
            valid_from: None,
            valid_until: None,
            content: PrivateContent {
                patient: PatientDetails {
                    name: format!("Backup Synthetic {n}"),
                    birth_date: "1970-01-01".into(),
                    identifier: format!("SYN-B-{n}"),
                    email: None,
                },
                dosage: vec!["one capsule".into()],
                notes: String::new(),
            },
        },
    )
    .expect("issue builds")
    .tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_online_backup_under_load_restores_a_node_that_rejoins_and_catches_up() {
    let mut p = Procs::start(&[1, 2, 3], |_| String::new()).await;
    let demo = Demo::load().unwrap();
    for s in &demo.staff {
        let tx = rxchain::txbuild::register_staff(
            &p.genesis,
            &admin_key(&s.org),
            OrgId::parse(s.org.clone()).unwrap(),
            staff_key(&s.username).public(),
            s.role,
            Label::parse(s.licence.clone()).unwrap(),
            Label::parse(s.name.clone()).unwrap(),
        );
        p.commit(1, &tx).await;
    }

    // Load: prescriptions issued continuously through node 1.
    let stop = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, issued) = (stop.clone(), issued.clone());
        let (http, base, genesis) = (p.http.clone(), p.base(1), p.genesis.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let tx = issue_tx(&genesis, n);
                if let Ok(r) = http.post(format!("{base}/v1/tx")).json(&tx).send().await {
                    if r.status() == 200 {
                        issued.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let wait_issued = |at_least: u64| {
        let issued = issued.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while issued.load(Ordering::Relaxed) < at_least {
                assert!(Instant::now() < deadline, "the load stalled");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait_issued(5).await;

    // The backup endpoint is not public, and only node 2's organisation
    // (or node 2 itself) may back node 2 up.
    let r = p
        .http
        .get(format!("{}/v1/admin/backup", p.base(2)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "an unsigned backup request");
    let (org2, _) = p.genesis.node(2).expect("node 2 declared");
    let org2 = org2.id.to_string();
    let other_org = p
        .genesis
        .orgs
        .iter()
        .find(|o| o.id.as_str() != org2)
        .expect("another org")
        .id
        .to_string();
    let other_key = p.dir.path().join("other-admin.key");
    rxchain::keys::write_new(&other_key, &admin_key(&other_org)).unwrap();
    let refused_backup = p.dir.path().join("refused.backup");
    let b = rxchain([
        "backup".as_ref(),
        "--node".as_ref(),
        p.base(2).as_ref(),
        "--key".as_ref(),
        other_key.as_os_str(),
        "--genesis".as_ref(),
        p.genesis_path().as_os_str(),
        "--out".as_ref(),
        refused_backup.as_os_str(),
        "--quiet".as_ref(),
    ]);
    assert!(!b.status.success(), "{}", text(&b));
    assert!(
        String::from_utf8_lossy(&b.stderr).contains("not_your_node"),
        "{}",
        text(&b)
    );
    assert!(!refused_backup.exists());

    // Offline tools refuse a running node's directory.
    let v = rxchain([
        "verify".as_ref(),
        "--quiet".as_ref(),
        p.data_dir(2).as_os_str(),
        "--genesis".as_ref(),
        p.genesis_path().as_os_str(),
    ]);
    assert!(!v.status.success(), "{}", text(&v));
    assert!(
        String::from_utf8_lossy(&v.stderr).contains("in use"),
        "{}",
        text(&v)
    );

    // The online backup, under load, signed by node 2's organisation admin.
    let admin_file = p.dir.path().join("org2-admin.key");
    rxchain::keys::write_new(&admin_file, &admin_key(&org2)).unwrap();
    let backup = p.dir.path().join("online.backup");
    let b = rxchain([
        "backup".as_ref(),
        "--node".as_ref(),
        p.base(2).as_ref(),
        "--key".as_ref(),
        admin_file.as_os_str(),
        "--genesis".as_ref(),
        p.genesis_path().as_os_str(),
        "--out".as_ref(),
        backup.as_os_str(),
        "--quiet".as_ref(),
    ]);
    assert!(b.status.success(), "{}", text(&b));
    let checked = store::backup::check_file(&p.genesis, &backup).expect("the backup checks");
    let backup_height = checked.tip.height;
    assert!(backup_height >= 2);
    let at_backup = issued.load(Ordering::Relaxed);

    // The load goes on past the backup; then node 3 loses its disk.
    wait_issued(at_backup + 10).await;
    p.kill(3);
    std::fs::remove_dir_all(p.data_dir(3)).unwrap();
    let r = rxchain([
        "restore".as_ref(),
        backup.as_os_str(),
        "--data-dir".as_ref(),
        p.data_dir(3).as_os_str(),
        "--genesis".as_ref(),
        p.genesis_path().as_os_str(),
        "--quiet".as_ref(),
    ]);
    assert!(r.status.success(), "{}", text(&r));
    let log = p.respawn_logged(3, "info,openraft=warn,sled=warn");
    wait_issued(at_backup + 20).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();

    // Every node reaches the same head, node 3 included.
    let deadline = Instant::now() + Duration::from_secs(90);
    let heads = loop {
        let mut heads = Vec::new();
        for id in [1, 2, 3] {
            heads.push(p.head(id).await);
        }
        let same = heads.iter().all(|h| h.is_some())
            && heads
                .windows(2)
                .all(|w| w[0].as_ref().map(|h| &h["hash"]) == w[1].as_ref().map(|h| &h["hash"]));
        if same {
            break heads;
        }
        assert!(
            Instant::now() < deadline,
            "node 3 never caught up: heads {heads:?}\nnode 3 log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let head: &Value = heads[2].as_ref().unwrap();
    assert!(
        head["height"].as_u64().unwrap() > backup_height,
        "node 3 moved past the backup: {head}"
    );
    assert_eq!(heads[0].as_ref().unwrap()["state_root"], head["state_root"]);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("node serving"),
        "node 3's log is kept:\n{log_text}"
    );
    assert!(
        !log_text.contains("chain replaced from a snapshot"),
        "node 3 caught up by a snapshot, not by log entries:\n{log_text}"
    );
    assert!(issued.load(Ordering::Relaxed) > at_backup);
    stop_and_verify_all(&mut p, &[1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_declared_node_starts_from_another_nodes_backup() {
    let mut p = Procs::start_declaring(&[1, 2, 3, 4], &[1, 2, 3]).await;
    let demo = Demo::load().unwrap();
    for s in &demo.staff {
        let tx = rxchain::txbuild::register_staff(
            &p.genesis,
            &admin_key(&s.org),
            OrgId::parse(s.org.clone()).unwrap(),
            staff_key(&s.username).public(),
            s.role,
            Label::parse(s.licence.clone()).unwrap(),
            Label::parse(s.name.clone()).unwrap(),
        );
        p.commit(1, &tx).await;
    }
    for n in 0..3 {
        p.commit(1, &issue_tx(&p.genesis, 1000 + n)).await;
    }

    // Node 1's own key signs the backup of node 1.
    let backup = p.dir.path().join("node1.backup");
    let node1_key = p.dir.path().join("node1.key");
    let b = rxchain([
        "backup".as_ref(),
        "--node".as_ref(),
        p.base(1).as_ref(),
        "--key".as_ref(),
        node1_key.as_os_str(),
        "--genesis".as_ref(),
        p.genesis_path().as_os_str(),
        "--out".as_ref(),
        backup.as_os_str(),
        "--quiet".as_ref(),
    ]);
    assert!(b.status.success(), "{}", text(&b));
    let backup_height = store::backup::check_file(&p.genesis, &backup)
        .expect("the backup checks")
        .tip
        .height;
    // The chain moves on before the new node starts.
    for n in 0..3 {
        p.commit(1, &issue_tx(&p.genesis, 2000 + n)).await;
    }

    // Node 4 is seeded from node 1's backup and joins.
    let r = rxchain([
        "restore".as_ref(),
        backup.as_os_str(),
        "--data-dir".as_ref(),
        p.data_dir(4).as_os_str(),
        "--genesis".as_ref(),
        p.genesis_path().as_os_str(),
        "--quiet".as_ref(),
    ]);
    assert!(r.status.success(), "{}", text(&r));
    let log = p.spawn_joiner_logged(4, "info,openraft=warn,sled=warn");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let voter = p.local(1).await.is_some_and(|l| l.voters.contains(&4));
        if voter {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 4 never became a voter; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // It takes part: one more block, then every head is the same.
    p.commit(4, &issue_tx(&p.genesis, 3000)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut hashes = Vec::new();
        for id in [1, 2, 3, 4] {
            hashes.push(
                p.head(id)
                    .await
                    .map(|h| (h["hash"].clone(), h["height"].clone())),
            );
        }
        if hashes.iter().all(|h| h.is_some()) && hashes.windows(2).all(|w| w[0] == w[1]) {
            let height = hashes[0].as_ref().unwrap().1.as_u64().unwrap();
            assert!(height > backup_height + 3, "{hashes:?}");
            break;
        }
        assert!(Instant::now() < deadline, "heads differ: {hashes:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("node serving"), "{log_text}");
    assert!(
        !log_text.contains("chain replaced from a snapshot"),
        "node 4 caught up by a snapshot, not by log entries:\n{log_text}"
    );
    stop_and_verify_all(&mut p, &[1, 2, 3, 4]);
}

/// The backup endpoint on an in-process node that checks every answer
/// against the OpenAPI document: an unsigned request is a documented 401,
/// and a backup signed with the node's own key is the node's chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_endpoint_answers_as_documented() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::load().expect("demo fixture");
    demo.write_files(dir.path(), &[1]).expect("demo files");
    let settings = demo_settings(dir.path(), 1, "127.0.0.1:0".parse().unwrap(), None);
    assert!(settings.api.testing_validate_openapi);
    let genesis = settings.genesis.clone();
    let node = rxchain::node::start(settings).await.expect("node starts");
    wait_for_leader(&node).await.expect("leader");
    let base = format!("http://{}", node.addr);
    register_demo_staff(&demo, &Client::new(base.clone()))
        .await
        .expect("staff registered");

    let r = reqwest::get(format!("{base}/v1/admin/backup"))
        .await
        .expect("answers");
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.expect("a JSON error");
    assert_eq!(body["code"], "missing_auth", "{body}");

    let out = dir.path().join("n1.backup");
    let key = dir.path().join("node1.key");
    let b = rxchain([
        "backup".as_ref(),
        "--node".as_ref(),
        base.as_ref(),
        "--key".as_ref(),
        key.as_os_str(),
        "--genesis".as_ref(),
        genesis.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--quiet".as_ref(),
    ]);
    assert!(b.status.success(), "{}", text(&b));
    let checked = store::backup::check_file(&read_genesis(&genesis), &out).expect("checks");
    let tip = node.chain.tip();
    assert_eq!(
        (checked.tip.height, checked.tip.hash),
        (tip.height, tip.hash)
    );
    assert_eq!(checked.state, tip.state);
    node.stop().await;
}
