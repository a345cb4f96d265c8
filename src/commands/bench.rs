//! `rxchain bench`: drives full prescription lifecycles against a node and
//! reports committed tx/s and submit→commit latency percentiles.
//!
//! All transactions are built and signed before the clock starts, so the
//! numbers measure the node (admission, ordering, fsync, apply), not the
//! client's signing. Client and node share this machine's cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rxchain_contracts::privacy::{PatientDetails, PrivateContent};
use rxchain_contracts::tx::{DispenseLine, Item};
use rxchain_contracts::{AtcCode, Genesis, Label, OrgId, Quantity, SignedTx};
use serde::Serialize;

use crate::cli::BenchArgs;
use crate::client::{Client, ClientError, Submitted};
use crate::demo::{staff_key, Demo};
use crate::service::submit::ItemStatus;
use crate::txbuild;

/// One run's numbers.
#[derive(Debug, Serialize)]
pub struct RunResult {
    /// What was run.
    pub name: String,
    /// Transactions committed and applied.
    pub committed: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Committed transactions per second.
    pub tx_per_s: f64,
    /// Median submit→commit latency in ms.
    pub p50_ms: f64,
    /// 99th percentile latency in ms.
    pub p99_ms: f64,
    /// Submissions refused (by a chain rule or at admission): answered,
    /// but not applied. A correct run has none.
    pub refused: usize,
    /// Submissions that were not answered with an outcome: errors,
    /// timeouts, or still pending when the run ended.
    pub failures: usize,
}

/// One submission's result.
enum Done {
    /// Applied, after this many seconds.
    Applied(f64),
    /// Refused.
    Refused,
    /// No outcome.
    Failed,
}

/// Tallies of a run.
#[derive(Default)]
struct Tally {
    lat: Vec<f64>,
    refused: usize,
    failures: usize,
}

impl Tally {
    fn add(&mut self, d: Done) {
        match d {
            Done::Applied(l) => self.lat.push(l),
            Done::Refused => self.refused += 1,
            Done::Failed => self.failures += 1,
        }
    }
    fn merge(&mut self, o: Tally) {
        self.lat.extend(o.lat);
        self.refused += o.refused;
        self.failures += o.failures;
    }
}

/// Builds `n` full lifecycles of 5 transactions each, signed.
pub fn build_lifecycles(g: &Genesis, n: usize) -> anyhow::Result<Vec<Vec<SignedTx>>> {
    let doctors = [("dr.ada", "hosp-north"), ("dr.ben", "hosp-river")];
    let pharmacies = [
        ("ph.cara", "pharm-central"),
        ("ph.dan", "pharm-harbour"),
        ("ph.eve", "pharm-hill"),
    ];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (doc, hosp) = doctors[i % 2];
        let (ph, pharm) = pharmacies[i % 3];
        let pharm = OrgId::parse(pharm)?;
        let new = txbuild::issue(
            g,
            &staff_key(doc),
            txbuild::IssueInput {
                hospital: OrgId::parse(hosp)?,
                items: vec![Item {
                    atc: AtcCode::parse("N02BE01")?,
                    name: Label::parse("Paracetamol")?,
                    strength: Label::parse("500 mg")?,
                    form: Label::parse("tablet")?,
                    quantity: Quantity::new(20)?,
                    unit: Label::parse("tablets")?,
                    controlled: false,
                }],
                repeats: 0,
                valid_from: None,
                valid_until: None,
                content: PrivateContent {
                    patient: PatientDetails {
                        name: format!("Synthetic Patient {i}"),
                        birth_date: "1980-01-01".into(),
                        identifier: format!("SYNTH-{i:06}"),
                        email: None,
                    },
                    dosage: vec!["1 tablet up to four times daily".into()],
                    notes: String::new(),
                },
            },
        )?;
        let pk = staff_key(ph);
        let line = |q| DispenseLine {
            item: 0,
            quantity: Quantity::new(q).expect("10 is a valid quantity"),
            batch: Label::parse("BATCH-DEMO-1").expect("valid label"),
        };
        out.push(vec![
            new.tx.clone(),
            txbuild::assign_pickup(g, &new.payload, &pharm)?,
            txbuild::claim(g, &pk, &pharm, &new.payload),
            txbuild::dispense(g, &pk, new.payload.id, vec![line(10)], false),
            txbuild::dispense(g, &pk, new.payload.id, vec![line(10)], false),
        ]);
    }
    Ok(out)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn summarise(name: &str, t: Tally, elapsed: Duration) -> RunResult {
    let Tally {
        mut lat,
        refused,
        failures,
    } = t;
    lat.sort_by(|a, b| a.total_cmp(b));
    let committed = lat.len();
    RunResult {
        name: name.into(),
        committed,
        seconds: elapsed.as_secs_f64(),
        tx_per_s: committed as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&lat, 0.50) * 1e3,
        p99_ms: percentile(&lat, 0.99) * 1e3,
        refused,
        failures,
    }
}

async fn submit_timed(client: &Client, tx: &SignedTx) -> Done {
    let t = Instant::now();
    match client.submit(tx).await {
        Ok(Submitted::Applied(_)) => Done::Applied(t.elapsed().as_secs_f64()),
        // A chain refusal carries its receipt; an admission refusal is a
        // 4xx with a rule's code. Both are answers, not failures.
        Err(ClientError::Api { status, body, .. })
            if (400..500).contains(&status)
                && (body["receipt"].is_object() || body["detail"].is_object()) =>
        {
            Done::Refused
        }
        Ok(Submitted::Pending(_)) | Err(_) => Done::Failed,
    }
}

/// Submits `txs` as one batch; every one's latency is the batch's.
async fn submit_batch_timed(client: &Client, txs: &[SignedTx], out: &mut Tally) {
    let t = Instant::now();
    match client.submit_batch(txs).await {
        Ok(items) => {
            let l = t.elapsed().as_secs_f64();
            for item in &items {
                out.add(match item.status {
                    ItemStatus::Applied => Done::Applied(l),
                    ItemStatus::Refused => Done::Refused,
                    ItemStatus::Pending | ItemStatus::Failed => Done::Failed,
                });
            }
            out.failures += txs.len().saturating_sub(items.len());
        }
        Err(_) => out.failures += txs.len(),
    }
}

/// Closed loop: `concurrency` clients each run whole lifecycles back to
/// back. With `batch` > 1, each client takes `batch` lifecycles at a time
/// and submits each of their five steps as one batch.
pub async fn throughput(
    client: &Client,
    lifecycles: Vec<Vec<SignedTx>>,
    concurrency: usize,
    batch: usize,
) -> RunResult {
    let batch = batch.max(1);
    let work = Arc::new(lifecycles);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (work, next, client) = (work.clone(), next.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                if batch == 1 {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(lc) = work.get(i) else { break };
                    for tx in lc {
                        tally.add(submit_timed(&client, tx).await);
                    }
                    continue;
                }
                let from = next.fetch_add(batch, Ordering::Relaxed);
                let Some(group) = work.get(from..(from + batch).min(work.len())) else {
                    break;
                };
                if group.is_empty() {
                    break;
                }
                for step in 0..group[0].len() {
                    let txs: Vec<SignedTx> = group.iter().map(|lc| lc[step].clone()).collect();
                    submit_batch_timed(&client, &txs, &mut tally).await;
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for t in tasks {
        if let Ok(t) = t.await {
            tally.merge(t);
        }
    }
    let name = if batch > 1 {
        format!("lifecycles, {concurrency} clients, batches of {batch}")
    } else {
        format!("lifecycles, {concurrency} concurrent clients")
    };
    summarise(&name, tally, start.elapsed())
}

/// Open loop: independent issue transactions offered at a fixed rate.
pub async fn fixed_rate(client: &Client, txs: Vec<SignedTx>, rate: u64) -> RunResult {
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(txs.len());
    for (i, tx) in txs.into_iter().enumerate() {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let client = client.clone();
        tasks.push(tokio::spawn(
            async move { submit_timed(&client, &tx).await },
        ));
    }
    let mut tally = Tally::default();
    for t in tasks {
        match t.await {
            Ok(d) => tally.add(d),
            Err(_) => tally.failures += 1,
        }
    }
    summarise(
        &format!("issues offered at {rate} tx/s"),
        tally,
        start.elapsed(),
    )
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let demo = Demo::load()?;
    let tmp = std::env::temp_dir().join(format!("rxchain-bench-{}", std::process::id()));
    let (client, node) = match &args.node {
        Some(url) => match &args.genesis {
            Some(g) => (Client::trusting(url.clone(), g, None)?, None),
            None => (Client::new(url.clone()), None),
        },
        None => {
            demo.write_files(&tmp, &[1])?;
            let mut settings =
                crate::test_support::demo_settings(&tmp, 1, "127.0.0.1:0".parse()?, None);
            // The demo settings check every answer against the OpenAPI
            // document (a test setting); a benchmark measures the node.
            settings.api.testing_validate_openapi = false;
            let node = crate::node::start(settings).await?;
            crate::test_support::wait_for_leader(&node).await?;
            (Client::new(format!("http://{}", node.addr)), Some(node))
        }
    };
    // An in-process node registers the demo staff through its own
    // submission service; a remote one over the API.
    match &node {
        Some(n) => crate::test_support::register_demo_staff_on(&demo, n).await,
        None => crate::test_support::register_demo_staff(&demo, &client).await,
    }
    .context("registering demo staff")?;
    let genesis = client.genesis().await?;
    eprintln!(
        "signing {} lifecycles ({} transactions) before timing…",
        args.lifecycles,
        args.lifecycles * 5
    );
    let g2 = genesis.clone();
    let n = args.lifecycles;
    let lifecycles = tokio::task::spawn_blocking(move || build_lifecycles(&g2, n)).await??;
    let mut results = vec![throughput(&client, lifecycles, args.concurrency, args.batch).await];
    if args.rate > 0 {
        let count = (args.rate * 5) as usize;
        let g3 = genesis.clone();
        let issues = tokio::task::spawn_blocking(move || {
            build_lifecycles(&g3, count).map(|v| {
                v.into_iter()
                    .map(|mut l| l.swap_remove(0))
                    .collect::<Vec<_>>()
            })
        })
        .await??;
        results.push(fixed_rate(&client, issues, args.rate).await);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        println!(
            "{:<48} {:>10} {:>9} {:>10} {:>9} {:>9} {:>8} {:>8}",
            "run", "committed", "seconds", "tx/s", "p50 ms", "p99 ms", "refused", "failed"
        );
        for r in &results {
            println!(
                "{:<48} {:>10} {:>9.2} {:>10.0} {:>9.1} {:>9.1} {:>8} {:>8}",
                r.name,
                r.committed,
                r.seconds,
                r.tx_per_s,
                r.p50_ms,
                r.p99_ms,
                r.refused,
                r.failures
            );
        }
    }
    if let Some(node) = node {
        node.stop().await;
        if let Err(e) = std::fs::remove_dir_all(&tmp) {
            tracing::warn!(error = %e, "could not remove the bench directory");
        }
    }
    Ok(())
}
