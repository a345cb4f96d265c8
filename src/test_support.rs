//! The pieces that stand up a local demo consortium in-process: demo node
//! settings, waiting for a Raft leader, and registering the demo staff on the
//! chain with sign-in accounts for them.
//!
//! This module exists for the integration tests under `tests/` and for the
//! `rxchain demo` and `rxchain bench` commands, which need exactly the same
//! setup; it is not part of what a production node runs. Everything here uses
//! the publicly derived demo keys of [`crate::demo`], so it must never be
//! pointed at a real consortium.

use std::time::Duration;

use anyhow::Context;
use std::collections::HashSet;

use rxchain_contracts::state::StaffRecord;
use rxchain_contracts::{Label, PublicKey, SignedTx};

use crate::accounts::{hash_password, AccountError, Accounts, NewAccount};
use crate::client::{Client, Submitted};
use crate::config::{ApiSettings, BlockSettings, RaftSettings, Settings};
use crate::demo::{admin_key, data_key, staff_key, Demo, DEMO_PASSWORD};
use crate::node::RunningNode;
use crate::service::submit::Submitted as ServiceSubmitted;

/// Settings for demo node `id` under `dir`.
pub fn demo_settings(
    dir: &std::path::Path,
    id: u64,
    listen: std::net::SocketAddr,
    web: Option<std::path::PathBuf>,
) -> Settings {
    // Tests build plain reqwest clients right after; reqwest needs a default
    // rustls provider even for plain HTTP.
    crate::tls::install_default_provider();
    Settings {
        node_id: id,
        data_dir: dir.join(format!("node{id}")),
        genesis: dir.join("genesis.json"),
        node_key_file: dir.join(format!("node{id}.key")),
        listen,
        advertise: None,
        addr_file: None,
        peers: Default::default(),
        bootstrap: id == 1,
        web_dir: web,
        data_key_file: None,
        block: BlockSettings::default(),
        // Every test node checks its answers against the OpenAPI document.
        api: ApiSettings {
            testing_validate_openapi: true,
            ..ApiSettings::default()
        },
        raft: RaftSettings::default(),
        storage: Default::default(),
        tls: None,
        insecure_plaintext: false,
        testing_faults: false,
        testing_clock_offset_ms: 0,
        erasure_sweep_secs: 3600,
        email: Default::default(),
    }
}

/// The `[tls]` settings of demo node `id` whose files
/// [`Demo::write_files`] wrote under `dir`.
pub fn demo_tls_settings(dir: &std::path::Path, id: u64) -> crate::config::TlsSettings {
    let (cert_file, key_file) = crate::demo::tls_files(dir, id);
    crate::config::TlsSettings {
        cert_file,
        key_file,
    }
}

/// Waits until the node knows a leader.
pub async fn wait_for_leader(node: &RunningNode) -> anyhow::Result<()> {
    let mut m = node.raft.metrics();
    tokio::time::timeout(
        Duration::from_secs(20),
        m.wait_for(|m| m.current_leader.is_some()),
    )
    .await
    .context("no Raft leader was elected within 20 s")?
    .context("raft stopped")?;
    Ok(())
}

/// The registration transactions of the demo staff whose keys are not in
/// `registered` yet. Checking state first keeps a demo restart from putting
/// refused `register_staff` transactions (and regulator alerts) on the chain.
fn unregistered_staff(
    demo: &Demo,
    registered: &HashSet<PublicKey>,
) -> anyhow::Result<Vec<(String, SignedTx)>> {
    let mut out = Vec::new();
    for s in &demo.staff {
        let key = staff_key(&s.username).public();
        if registered.contains(&key) {
            continue;
        }
        let org = rxchain_contracts::OrgId::parse(s.org.clone())?;
        let tx = crate::txbuild::register_staff(
            &demo.genesis,
            &admin_key(&s.org),
            org,
            key,
            s.role,
            Label::parse(s.licence.clone())?,
            Label::parse(s.name.clone())?,
        );
        out.push((s.username.clone(), tx));
    }
    Ok(out)
}

/// Registers, over the API, every demo staff member the node's directory
/// does not list yet.
pub async fn register_demo_staff(demo: &Demo, client: &Client) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct Directory {
        staff: Vec<StaffRecord>,
    }
    let dir: Directory = client
        .get("/v1/consortium")
        .await
        .context("reading the registered staff")?;
    let registered = dir.staff.iter().map(|r| r.key).collect();
    for (username, tx) in unregistered_staff(demo, &registered)? {
        match client.submit(&tx).await {
            Ok(Submitted::Applied(_)) => {}
            Ok(Submitted::Pending(poll)) => wait_for_receipt(client, &poll)
                .await
                .with_context(|| format!("registering {username}"))?,
            Err(e) => return Err(e).context(format!("registering {username}")),
        }
    }
    Ok(())
}

/// Polls a pending transaction's URL until its receipt is there (a slow
/// commit is not a failure), for at most 30 seconds.
async fn wait_for_receipt(client: &Client, poll: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v: serde_json::Value = client.get(poll).await?;
        if v.get("receipt").is_some() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("still pending at {poll} after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Registers every demo staff member the chain does not know yet, through
/// the node's own submission service (the demo runs the node in-process).
pub async fn register_demo_staff_on(demo: &Demo, node: &RunningNode) -> anyhow::Result<()> {
    let mut registered = HashSet::new();
    for s in &demo.staff {
        let key = staff_key(&s.username).public();
        if node.chain.staff(&key)?.is_some() {
            registered.insert(key);
        }
    }
    for (username, tx) in unregistered_staff(demo, &registered)? {
        match crate::service::submit::submit(&node.service, tx).await {
            Ok(ServiceSubmitted::Committed(r)) if r.outcome.is_applied() => {}
            Ok(other) => anyhow::bail!("registering {username}: {other:?}"),
            Err(e) => return Err(e).context(format!("registering {username}")),
        }
    }
    Ok(())
}

/// Gives every demo staff member a sign-in account (password
/// [`DEMO_PASSWORD`], signing key from [`staff_key`]) unless they have one,
/// and hands the node every organisation's demo data key, since the one
/// demo node stands in for every member's node.
pub async fn create_demo_accounts(demo: &Demo, accounts: &Accounts) -> anyhow::Result<()> {
    for org in &demo.genesis.orgs {
        accounts.add_data_key(org.id.clone(), data_key(org.id.as_str()));
    }
    let mut missing = Vec::new();
    for s in &demo.staff {
        if accounts.account(&s.username)?.is_none() {
            missing.push(s);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    // One argon2id hash (and so one salt) serves every demo account: they
    // share one published password anyway, and each hash costs a noticeable
    // fraction of a second.
    let phc = tokio::task::spawn_blocking(|| hash_password(DEMO_PASSWORD)).await??;
    for s in missing {
        let new = NewAccount {
            username: s.username.clone(),
            name: s.name.clone(),
            org: rxchain_contracts::OrgId::parse(s.org.clone())?,
            role: s.role,
        };
        match accounts.create(new, &phc, &staff_key(&s.username)) {
            Ok(_) | Err(AccountError::Exists(_)) => {}
            Err(e) => return Err(e).context(format!("creating the account of {}", s.username)),
        }
    }
    Ok(())
}
