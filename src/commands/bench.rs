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
use crate::client::{Client, Submitted};
use crate::demo::{staff_key, Demo};
use crate::txbuild;

/// One run's numbers.
#[derive(Debug, Serialize)]
pub struct RunResult {
    /// What was run.
    pub name: String,
    /// Transactions committed.
    pub committed: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Committed transactions per second.
    pub tx_per_s: f64,
    /// Median submit→commit latency in ms.
    pub p50_ms: f64,
    /// 99th percentile latency in ms.
    pub p99_ms: f64,
    /// Submissions that did not commit with the expected outcome.
    pub failures: usize,
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

fn summarise(name: &str, mut lat: Vec<f64>, failures: usize, elapsed: Duration) -> RunResult {
    lat.sort_by(|a, b| a.total_cmp(b));
    let committed = lat.len();
    RunResult {
        name: name.into(),
        committed,
        seconds: elapsed.as_secs_f64(),
        tx_per_s: committed as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&lat, 0.50) * 1e3,
        p99_ms: percentile(&lat, 0.99) * 1e3,
        failures,
    }
}

async fn submit_timed(client: &Client, tx: &SignedTx) -> Option<f64> {
    let t = Instant::now();
    match client.submit(tx).await {
        Ok(Submitted::Applied(_)) => Some(t.elapsed().as_secs_f64()),
        Ok(Submitted::Pending(_)) | Err(_) => None,
    }
}

/// Closed loop: `concurrency` clients each run whole lifecycles back to back.
pub async fn throughput(
    client: &Client,
    lifecycles: Vec<Vec<SignedTx>>,
    concurrency: usize,
) -> RunResult {
    let work = Arc::new(lifecycles);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (work, next, client) = (work.clone(), next.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failures = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(lc) = work.get(i) else { break };
                for tx in lc {
                    match submit_timed(&client, tx).await {
                        Some(l) => lat.push(l),
                        None => failures += 1,
                    }
                }
            }
            (lat, failures)
        }));
    }
    let mut lat = Vec::new();
    let mut failures = 0;
    for t in tasks {
        if let Ok((l, f)) = t.await {
            lat.extend(l);
            failures += f;
        }
    }
    summarise(
        &format!("lifecycles, {concurrency} concurrent clients"),
        lat,
        failures,
        start.elapsed(),
    )
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
    let mut lat = Vec::new();
    let mut failures = 0;
    for t in tasks {
        match t.await {
            Ok(Some(l)) => lat.push(l),
            _ => failures += 1,
        }
    }
    summarise(
        &format!("issues offered at {rate} tx/s"),
        lat,
        failures,
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
            let node = crate::node::start(crate::test_support::demo_settings(
                &tmp,
                1,
                "127.0.0.1:0".parse()?,
                None,
            ))
            .await?;
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
    let mut results = vec![throughput(&client, lifecycles, args.concurrency).await];
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
            "{:<40} {:>10} {:>9} {:>10} {:>9} {:>9} {:>8}",
            "run", "committed", "seconds", "tx/s", "p50 ms", "p99 ms", "failed"
        );
        for r in &results {
            println!(
                "{:<40} {:>10} {:>9.2} {:>10.0} {:>9.1} {:>9.1} {:>8}",
                r.name, r.committed, r.seconds, r.tx_per_s, r.p50_ms, r.p99_ms, r.failures
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
