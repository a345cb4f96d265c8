//! `rxchain admin bootstrap`: an organisation's first staff admin, made on
//! the organisation's own node from its genesis admin key file.
//!
//! The command generates the admin's signing key, signs the
//! `register_staff` transaction for it (role `admin`) with the
//! organisation's admin key, and sends both, with the username, name and
//! password, to `POST /v1/accounts/bootstrap` as a request signed with the
//! same key (the signed admin API of [`crate::http::cluster::authenticate`],
//! as `rxchain staff disable` uses). The node seals the key, creates the
//! account and commits the registration as one action: if the
//! registration is refused or not committed, no account is left. The node
//! never holds the organisation's admin key; the admin's own key travels
//! once, to the node that will keep it sealed, which is why this is run on
//! (or over TLS to) the organisation's own node. The password is chosen by
//! the admin, so no change is forced; it must pass the password policy.

use anyhow::Context;
use rxchain_contracts::tx::Role;
use rxchain_contracts::Label;
use serde_json::json;

use crate::cli::{AdminAction, AdminArgs, BootstrapArgs};
use crate::client::Client;
use crate::http::cluster::{signer_for, Signer};

/// Runs one admin command.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    match args.action {
        AdminAction::Bootstrap(a) => bootstrap(a).await,
    }
}

async fn bootstrap(a: BootstrapArgs) -> anyhow::Result<()> {
    let base = a.node.trim_end_matches('/').to_string();
    let client = Client::trusting(base, &a.trust.genesis, a.trust.ca.as_deref())?;
    let org_key = crate::keys::read(&a.key)?;
    let genesis = client
        .genesis()
        .await
        .context("reading the consortium from the node")?;
    let (signer, org) = match signer_for(&genesis, &org_key) {
        Some(Signer::Operator(org)) => (Signer::Operator(org.clone()), org),
        Some(Signer::Node(id)) => anyhow::bail!(
            "the key is node {id}'s key; the first admin is made with the organisation's admin key"
        ),
        None => {
            anyhow::bail!("the key is not an organisation admin key of this consortium's genesis")
        }
    };
    let password = super::staff::secret(
        "RXCHAIN_NEW_PASSWORD",
        a.password_file.as_deref(),
        &format!("Password for the new admin {}: ", a.username),
    )?;
    // Checked here too, so a weak password costs no round trip.
    crate::accounts::password_policy::check(&password, &a.username)
        .with_context(|| format!("the password for {}", a.username))?;
    let key = crate::keys::generate();
    let registration = crate::txbuild::register_staff(
        &genesis,
        &org_key,
        org.clone(),
        key.public(),
        Role::Admin,
        Label::parse(a.licence.clone()).context("--licence")?,
        Label::parse(a.name.trim().to_string()).context("--name")?,
    );
    let body = json!({
        "username": a.username,
        "name": a.name.trim(),
        "password": password,
        "secret_key": hex::encode(key.to_bytes()),
        "registration": registration,
    })
    .to_string();
    let v = super::signed_admin_call(
        &client,
        &genesis,
        &org_key,
        &signer,
        reqwest::Method::POST,
        "/v1/accounts/bootstrap",
        body,
    )
    .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "created the staff admin {} of {org}, key {} registered on the chain; sign in at {}/admin/",
            v["username"].as_str().unwrap_or(&a.username),
            key.public().to_hex(),
            client.base()
        );
    }
    Ok(())
}
