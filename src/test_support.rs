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
use rxchain_contracts::Label;

use crate::accounts::{hash_password, AccountError, Accounts, NewAccount};
use crate::client::{Client, ClientError, Submitted};
use crate::config::{ApiSettings, BlockSettings, RaftSettings, Settings};
use crate::demo::{admin_key, data_key, staff_key, Demo, DEMO_PASSWORD};
use crate::node::RunningNode;

/// Settings for demo node `id` under `dir`.
pub fn demo_settings(
    dir: &std::path::Path,
    id: u64,
    listen: std::net::SocketAddr,
    web: Option<std::path::PathBuf>,
) -> Settings {
    Settings {
        node_id: id,
        data_dir: dir.join(format!("node{id}")),
        genesis: dir.join("genesis.json"),
        node_key_file: dir.join(format!("node{id}.key")),
        listen,
        advertise: None,
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
        testing_faults: false,
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

/// Registers every demo staff member that is not registered yet.
pub async fn register_demo_staff(demo: &Demo, client: &Client) -> anyhow::Result<()> {
    for s in &demo.staff {
        let org = rxchain_contracts::OrgId::parse(s.org.clone())?;
        let tx = crate::txbuild::register_staff(
            &demo.genesis,
            &admin_key(&s.org),
            org,
            staff_key(&s.username).public(),
            s.role,
            Label::parse(s.licence.clone())?,
            Label::parse(s.name.clone())?,
        );
        match client.submit(&tx).await {
            Ok(Submitted::Applied(_)) => {}
            Err(ClientError::Api { code, .. }) if code == "staff_exists" => {}
            Ok(Submitted::Pending(p)) => anyhow::bail!("staff registration still pending at {p}"),
            Err(e) => return Err(e).context(format!("registering {}", s.username)),
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
