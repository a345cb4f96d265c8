//! `rxchain demo`: a local demo consortium from `fixtures/`, serving the API
//! and the web pages, with the demo identities printed.

use std::time::Duration;

use anyhow::Context;

use crate::cli::DemoArgs;
use crate::demo::{Demo, DEMO_PASSWORD};
use crate::test_support::{
    create_demo_accounts, demo_settings, register_demo_staff_on, wait_for_leader,
};

/// Runs the demo until Ctrl-C.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let n = args.nodes;
    if !(1..=5).contains(&n) {
        anyhow::bail!("the demo consortium declares nodes 1 to 5; choose --nodes between 1 and 5 (3 is a real quorum)");
    }
    let ids: Vec<u64> = (1..=n).collect();
    let demo = Demo::load()?;
    demo.write_files(&args.dir, &ids)
        .with_context(|| format!("writing demo files to {}", args.dir.display()))?;
    // Without --web-dir the pages built into the binary are served.
    let web = args.web_dir.clone();
    if let Some(dir) = web.as_ref().filter(|d| !d.is_dir()) {
        anyhow::bail!("--web-dir {} is not a directory", dir.display());
    }
    // Node i listens on the first node's port + (i - 1); node 1 bootstraps
    // the cluster and every other node joins it through node 1.
    let listen_of = |id: u64| {
        let mut a = args.listen;
        a.set_port(args.listen.port() + (id - 1) as u16);
        a
    };
    if n > 1 && args.listen.port() == 0 {
        anyhow::bail!(
            "a multi-node demo needs a fixed --listen port (nodes use port, port+1, ...)"
        );
    }
    let mut nodes = Vec::new();
    for &id in &ids {
        let mut settings = demo_settings(&args.dir, id, listen_of(id), web.clone());
        if args.tls {
            settings.tls = Some(crate::test_support::demo_tls_settings(&args.dir, id));
        }
        if id != 1 {
            settings.peers.insert("1".into(), listen_of(1).to_string());
        }
        let node = crate::node::start(settings)
            .await
            .with_context(|| format!("starting demo node {id}"))?;
        if id == 1 {
            wait_for_leader(&node).await?;
        }
        nodes.push(node);
    }
    let first = &nodes[0];
    let scheme = if args.tls { "https" } else { "http" };
    let base = format!("{scheme}://{}", first.addr);
    // Wait until every node joined as a voter.
    let mut m = first.raft.metrics();
    tokio::time::timeout(
        Duration::from_secs(60),
        m.wait_for(|m| m.membership_config.membership().voter_ids().count() == n as usize),
    )
    .await
    .context("the demo nodes did not all join as voters within 60 s")?
    .context("raft stopped")?;
    register_demo_staff_on(&demo, first).await?;
    for node in &nodes {
        create_demo_accounts(&demo, &node.accounts).await?;
    }

    println!(
        "rxchain demo consortium '{}' is running ({n} node(s), data in {})",
        demo.genesis.chain_id,
        args.dir.display()
    );
    for node in &nodes {
        println!("  node at {scheme}://{}", node.addr);
    }
    println!();
    println!("  Doctor:     {base}/doctor/");
    println!("  Pharmacist: {base}/pharmacist/");
    println!("  Regulator:  {base}/regulator/");
    println!("  Patient:    opened from the link or QR code a doctor hands out");
    println!("  API:        {base}/v1/chain/head   OpenAPI: {base}/openapi.json   Metrics: {base}/metrics");
    println!("  E-mail:     {base}/admin/outbox/ (patient e-mail goes to .eml files, not sent)");
    for node in &nodes {
        let outbox = &node.service.outbox;
        if outbox.enabled() {
            let dir = outbox.dir();
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .map(|d| {
                    d.filter_map(|e| e.ok().map(|e| e.file_name()))
                        .filter(|n| n.to_string_lossy().ends_with(".eml"))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            println!("    {} ({} message(s) so far)", dir.display(), files.len());
            for f in files.iter().rev().take(10) {
                println!("      {}", f.to_string_lossy());
            }
        }
    }
    println!();
    println!("Demo identities (synthetic; password for every account: {DEMO_PASSWORD}; keys are DEMO-ONLY):");
    for s in &demo.staff {
        println!(
            "  {:<14} {:<18} {:<14} {}",
            s.username,
            s.role.label(),
            s.org,
            s.name
        );
    }
    println!();
    println!("Press Ctrl-C to stop.");
    super::shutdown_signal().await;
    for node in nodes {
        node.stop().await;
    }
    Ok(())
}
