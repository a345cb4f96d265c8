//! Three real node processes driven past saturation (issue 13): many more
//! concurrent submitters than the cluster commits at once, for a bounded
//! number of prescriptions, sent to every node (followers forward).
//!
//! Full blocks must replicate without a single failed AppendEntries, every
//! submission must be answered with its outcome (applied or refused; a 202
//! is followed to its receipt), and `rxchain_committed_txs_total`, summed
//! over the nodes, must equal the transactions on the chain. No timing is
//! asserted: the blocks are as large as `block.max_bytes` lets them be, and
//! how fast they go is for `scripts/bench.sh`.
//!
//! The same load with several blocks in flight (`[block] pipeline`) must
//! leave one chain on every node, with no proposal lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::issue::{atorvastatin_issue, SyntheticPatient};
use rxchain::demo::{admin_key, staff_key};
use rxchain_contracts::{Label, OrgId, SignedTx};
use serde_json::Value;
use tokio::sync::Semaphore;

mod common;
mod procs;

/// Prescriptions submitted.
const TXS: usize = 2400;
/// Submissions in flight at once: far more than one block's worth of
/// waiting clients per node.
const SUBMITTERS: usize = 256;
/// `block.max_bytes` for the test: a block's whole Raft entry, well below
/// what the waiting submissions would fill, so the byte bound is what cuts.
const MAX_BLOCK_BYTES: usize = 128 * 1024;

/// Sums every sample of `name` (whatever its labels) in an exposition.
fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.trim().parse::<f64>().ok()
        })
        .sum()
}

async fn metrics(p: &procs::Procs, id: u64) -> String {
    p.http
        .get(format!("{}/metrics", p.base(id)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// What became of one submission.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    Applied,
    Refused(String),
    /// Anything else: a 5xx, a 4xx without a receipt, no answer at all.
    Failed(String),
}

/// Polls `/v1/tx/{id}` on node `id` until the receipt is there.
async fn follow(p: &procs::Procs, node: u64, tx: &str) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let r = p
            .http
            .get(format!("{}/v1/tx/{tx}", p.base(node)))
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 200 => {
                let v: Value = r.json().await.unwrap();
                return match v["receipt"]["outcome"]["result"].as_str() {
                    Some("applied") => Answer::Applied,
                    _ => Answer::Refused(v["receipt"]["outcome"].to_string()),
                };
            }
            Ok(r) if r.status() == 202 => {}
            Ok(r) => {
                return Answer::Failed(format!("poll answered {}", r.status()));
            }
            Err(e) => return Answer::Failed(format!("poll failed: {e}")),
        }
        if Instant::now() > deadline {
            return Answer::Failed("pending for three minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn submit(p: &procs::Procs, node: u64, tx: &SignedTx) -> Answer {
    let r = match p
        .http
        .post(format!("{}/v1/tx", p.base(node)))
        .json(tx)
        .timeout(Duration::from_secs(120))
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Answer::Failed(format!("no answer: {e}")),
    };
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    match status {
        200 => Answer::Applied,
        202 => follow(p, node, body["tx_id"].as_str().unwrap()).await,
        400..=499 if body["receipt"].is_object() => Answer::Refused(body["code"].to_string()),
        _ => Answer::Failed(format!("{status} {body}")),
    }
}

/// Registers dr.ada, who signs every issue of these tests.
async fn register_ada(p: &procs::Procs, leader: u64) {
    let ada = p
        .demo
        .staff
        .iter()
        .find(|s| s.username == "dr.ada")
        .expect("dr.ada in the demo");
    let reg = rxchain::txbuild::register_staff(
        &p.genesis,
        &admin_key(&ada.org),
        OrgId::parse(ada.org.clone()).unwrap(),
        staff_key("dr.ada").public(),
        ada.role,
        Label::parse(ada.licence.clone()).unwrap(),
        Label::parse(ada.name.clone()).unwrap(),
    );
    p.commit(leader, &reg).await;
}

/// `n` distinct signed issues, for synthetic patients named after `tag`.
async fn issues(p: &procs::Procs, n: usize, tag: &'static str) -> Vec<SignedTx> {
    let genesis = p.genesis.clone();
    tokio::task::spawn_blocking(move || {
        (0..n)
            .map(|i| {
                let input = atorvastatin_issue(
                    "hosp-north",
                    30,
                    0,
                    SyntheticPatient {
                        name: format!("{tag} Synthetic {i}"),
                        birth_date: "1970-01-01",
                        identifier: format!("SYN-{tag}-{i}"),
                    },
                    "one tablet daily",
                );
                rxchain::txbuild::issue(&genesis, &staff_key("dr.ada"), input)
                    .unwrap()
                    .tx
            })
            .collect()
    })
    .await
    .unwrap()
}

/// Sends every transaction, `SUBMITTERS` at a time, to the three nodes in
/// turn, and asserts each one applied.
async fn drive_all(p: &Arc<procs::Procs>, txs: Vec<SignedTx>) -> BTreeMap<Answer, usize> {
    let n = txs.len();
    let gate = Arc::new(Semaphore::new(SUBMITTERS));
    let mut tasks = Vec::new();
    for (i, tx) in txs.into_iter().enumerate() {
        let p = p.clone();
        let gate = gate.clone();
        let node = 1 + (i % 3) as u64;
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire_owned().await.unwrap();
            submit(&p, node, &tx).await
        }));
    }
    let mut answers: BTreeMap<Answer, usize> = BTreeMap::new();
    for t in tasks {
        *answers.entry(t.await.unwrap()).or_default() += 1;
    }
    let failed: Vec<_> = answers
        .iter()
        .filter(|(a, _)| matches!(a, Answer::Failed(_)))
        .collect();
    assert!(failed.is_empty(), "client failures: {failed:?}");
    assert_eq!(
        answers.get(&Answer::Applied).copied().unwrap_or(0),
        n,
        "every distinct issue applies: {answers:?}"
    );
    answers
}

/// Waits until the three nodes report the same head, and returns it.
async fn agreed_head(p: &procs::Procs, leader: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut heads = Vec::new();
        for id in [1, 2, 3] {
            heads.push(p.head(id).await.map(|h| h["hash"].clone()));
        }
        if heads.iter().all(|h| h.is_some() && *h == heads[0]) {
            return p.head(leader).await.unwrap();
        }
        assert!(Instant::now() < deadline, "nodes never agreed: {heads:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_past_saturation_replicate_every_block_and_answer_every_client() {
    // Blocks fill for 100 ms before they are cut, so the leader cuts them
    // full: `block.max_bytes` binds long before `max_txs`.
    let p = Arc::new(
        procs::Procs::start(&[1, 2, 3], |_| {
            format!("[block]\nmax_wait_ms = 100\nmax_bytes = {MAX_BLOCK_BYTES}\n")
        })
        .await,
    );
    let leader = p.leader().await.expect("a leader");
    register_ada(&p, leader).await;

    let txs = issues(&p, TXS, "Saturation").await;

    let mut before = BTreeMap::new();
    for id in [1, 2, 3] {
        let m = metrics(&p, id).await;
        before.insert(id, total(&m, "rxchain_raft_append_failures_total"));
    }

    let answers = drive_all(&p, txs).await;

    // Every node reaches the same tip; no AppendEntries failed meanwhile.
    let head = agreed_head(&p, leader).await;
    let mut committed = 0.0;
    let mut outlasting = 0.0;
    for id in [1, 2, 3] {
        let m = metrics(&p, id).await;
        let failures = total(&m, "rxchain_raft_append_failures_total") - before[&id];
        assert_eq!(failures, 0.0, "AppendEntries failed on node {id}:\n{m}");
        committed += total(&m, "rxchain_committed_txs_total");
        outlasting += total(&m, "rxchain_raft_appends_outlasting_heartbeat_total");
    }

    // The counter equals the transactions on the chain, applied or refused.
    let blocks = p.blocks(leader).await;
    let on_chain: u64 = blocks
        .iter()
        .map(|b| b["header"]["tx_count"].as_u64().unwrap())
        .sum();
    assert_eq!(on_chain as usize, TXS + 1, "the chain holds each once");
    assert_eq!(
        committed, on_chain as f64,
        "rxchain_committed_txs_total counts every committed transaction once"
    );
    // Every block's Raft entry (its postcard encoding) is within the
    // bound, and the load filled some of them to near it.
    let sizes: Vec<usize> = blocks
        .iter()
        .map(|b| {
            let block: rxchain_contracts::Block = serde_json::from_value(b.clone()).unwrap();
            postcard::to_allocvec(&block).unwrap().len()
        })
        .collect();
    let largest = *sizes.iter().max().unwrap();
    eprintln!(
        "{} blocks up to height {}, largest {largest} bytes; answers {answers:?}; {outlasting} appends outlasted the heartbeat",
        blocks.len(),
        head["height"]
    );
    assert!(
        largest <= MAX_BLOCK_BYTES,
        "a block of {largest} bytes passed block.max_bytes"
    );
    assert!(
        largest > MAX_BLOCK_BYTES / 2,
        "saturation filled blocks close to the byte bound ({largest} bytes)"
    );
}

/// Pipelined blocks (`[block] pipeline = 3`, small blocks cut quickly, so
/// several are in flight at once) under the same load: every submission
/// applies once, the three nodes agree on every block (each follower
/// re-executes each block and checks its state root, so a block built on a
/// wrong picture of the state in flight would be refused), no proposal was
/// lost, and blocks really were proposed ahead of the previous one's commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_with_blocks_in_flight_apply_each_block_on_the_state_the_previous_leave() {
    const PIPELINED_TXS: usize = 900;
    let p = Arc::new(
        procs::Procs::start(&[1, 2, 3], |_| {
            "[block]\npipeline = 3\nmax_wait_ms = 1\nmax_txs = 16\n".to_string()
        })
        .await,
    );
    let leader = p.leader().await.expect("a leader");
    register_ada(&p, leader).await;
    let txs = issues(&p, PIPELINED_TXS, "Pipeline").await;
    drive_all(&p, txs).await;
    let head = agreed_head(&p, leader).await;

    let blocks = p.blocks(leader).await;
    let heights: Vec<u64> = blocks
        .iter()
        .map(|b| b["header"]["height"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=head["height"].as_u64().unwrap()).collect();
    let mut sorted = heights.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected, "one block at each height, none missing");
    let on_chain: u64 = blocks
        .iter()
        .map(|b| b["header"]["tx_count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        on_chain as usize,
        PIPELINED_TXS + 1,
        "the chain holds each once"
    );
    let (mut committed, mut ahead, mut lost) = (0.0, 0.0, 0.0);
    for id in [1, 2, 3] {
        let m = metrics(&p, id).await;
        committed += total(&m, "rxchain_committed_txs_total");
        ahead += total(&m, "rxchain_proposed_ahead_blocks_total");
        lost += total(&m, "rxchain_proposals_not_applied_total");
    }
    assert_eq!(
        committed, on_chain as f64,
        "every committed transaction counted once"
    );
    assert_eq!(
        lost, 0.0,
        "no proposal failed: nothing was built on a wrong tip"
    );
    eprintln!(
        "{} blocks, {ahead} proposed while another was in flight",
        blocks.len()
    );
    assert!(
        ahead > 0.0,
        "with pipeline = 3, some blocks were proposed ahead"
    );
}
