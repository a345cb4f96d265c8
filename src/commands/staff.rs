//! `rxchain staff disable | enable USERNAME`: an organisation's admin
//! disables an account on a node (sign-in refused, every session ended) or
//! enables it again, signing the request with the org admin key (see
//! [`crate::http::cluster::authenticate`]).

use anyhow::Context;

use crate::cli::{StaffAction, StaffArgs};
use crate::client::Client;
use crate::http::cluster::{signer_for, Signer};

/// Runs one staff command.
pub async fn run(args: StaffArgs) -> anyhow::Result<()> {
    let base = args.node.trim_end_matches('/').to_string();
    let client = Client::trusting(base.clone(), &args.trust.genesis, args.trust.ca.as_deref())?;
    let (verb, username) = match &args.action {
        StaffAction::Disable { username } => ("disable", username),
        StaffAction::Enable { username } => ("enable", username),
    };
    let key_file = args
        .key
        .as_ref()
        .context("--key is required: your organisation's admin key file")?;
    let key = crate::keys::read(key_file)?;
    let genesis = client
        .genesis()
        .await
        .context("reading the consortium from the node")?;
    let signer = match signer_for(&genesis, &key) {
        Some(s @ Signer::Operator(_)) => s,
        Some(Signer::Node(id)) => anyhow::bail!(
            "the key is node {id}'s key; accounts are changed with an organisation admin key"
        ),
        None => {
            anyhow::bail!("the key is not an organisation admin key of this consortium's genesis")
        }
    };
    // Usernames have no spaces or slashes that matter in a path once
    // encoded; encode anyway, so an odd name cannot reach another route.
    let path = format!("/v1/accounts/{}/{verb}", url_escape(username.trim()));
    let v = super::signed_admin_call(
        &client,
        &genesis,
        &key,
        &signer,
        reqwest::Method::POST,
        &path,
        "{}".to_string(),
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let name = v["account"]["username"].as_str().unwrap_or(username);
        let state = if v["disabled"].as_bool() == Some(true) {
            "disabled"
        } else {
            "enabled"
        };
        let unchanged = if v["unchanged"].as_bool() == Some(true) {
            " (unchanged: it already was)"
        } else {
            ""
        };
        println!(
            "{name} is {state}{unchanged}; {} session(s) ended",
            v["sessions_ended"]
        );
    }
    Ok(())
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
