//! `rxchain governance propose | approve | leave | status`: M-of-N changes
//! to the consortium as signed transactions (see
//! `rxchain_contracts::governance`), signed with an organisation's admin key.

use anyhow::{bail, Context};
use rxchain_contracts::governance::Action;
use rxchain_contracts::tx::{Approve, LeaveNode, Propose};
use rxchain_contracts::{Hash, OrgId, PublicKey, SecretKey, TxBody, TxId};

use crate::cli::{GovernanceAction, GovernanceArgs, ProposeAction};
use crate::client::{Client, Submitted};
use crate::txbuild;

fn signer(args: &GovernanceArgs) -> anyhow::Result<SecretKey> {
    match (&args.admin_key, &args.demo_org) {
        (Some(p), None) => Ok(crate::keys::read(p)?),
        (None, Some(org)) => Ok(crate::demo::admin_key(org)),
        (Some(_), Some(_)) => bail!("give either --admin-key or --demo-org, not both"),
        (None, None) => {
            bail!("governance transactions are signed by an organisation admin: --admin-key FILE or --demo-org ORG")
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} does not fit", path.display()))
}

fn action(a: &ProposeAction) -> anyhow::Result<Action> {
    Ok(match a {
        ProposeAction::AddNode { org, file } => Action::AddNode {
            org: OrgId::parse(org.clone())?,
            node: read_json(file)?,
        },
        ProposeAction::RemoveNode { id } => Action::RemoveNode { node: *id },
        ProposeAction::AddOrg { file } => Action::AddOrg {
            org: read_json(file)?,
        },
        ProposeAction::RotateAdminKey { org, key } => Action::RotateAdminKey {
            org: OrgId::parse(org.clone())?,
            key: PublicKey::parse_hex(key)
                .context("the key is a 33-byte compressed public key in hex")?,
        },
        ProposeAction::RotateNodeKeys { file } => Action::RotateNodeKeys {
            node: read_json(file)?,
        },
        ProposeAction::SetParams { file } => Action::SetParams {
            params: read_json(file)?,
        },
    })
}

/// Runs one governance command.
pub async fn run(args: GovernanceArgs) -> anyhow::Result<()> {
    let client = Client::new(args.node.trim_end_matches('/').to_string());
    if let GovernanceAction::Status = &args.action {
        let v: serde_json::Value = client
            .get("/v1/governance/proposals")
            .await
            .context("reading the proposals from the node")?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            print_status(&v);
        }
        return Ok(());
    }
    let key = signer(&args)?;
    let genesis = client
        .genesis()
        .await
        .context("reading the consortium from the node")?;
    let body = match &args.action {
        GovernanceAction::Propose {
            expires_days,
            action: a,
        } => TxBody::Propose(Propose {
            action: action(a)?,
            expires_at: crate::clock::now().plus_days(*expires_days),
        }),
        GovernanceAction::Approve { proposal } => TxBody::Approve(Approve {
            proposal: TxId(Hash::parse_hex(proposal).context("a proposal id is 64 hex digits")?),
        }),
        GovernanceAction::Leave { id } => TxBody::LeaveNode(LeaveNode { node: *id }),
        GovernanceAction::Status => unreachable!("answered above"),
    };
    let tx = txbuild::sign(&genesis, &key, body);
    let id = tx.tx.id(genesis.chain_id.as_str());
    match client.submit(&tx).await? {
        Submitted::Applied(r) => {
            println!(
                "committed: tx {} in block {} (index {})",
                r.tx_id, r.height, r.index
            );
            if let GovernanceAction::Propose { .. } = &args.action {
                println!("proposal id: {id}");
            }
        }
        Submitted::Pending(p) => println!("admitted, not yet committed; poll {}{p}", client.base()),
    }
    Ok(())
}

fn print_status(v: &serde_json::Value) {
    println!(
        "threshold: {} of {} organisations",
        v["threshold"], v["orgs"]
    );
    let empty = Vec::new();
    let list = v["proposals"].as_array().unwrap_or(&empty);
    if list.is_empty() {
        println!("no proposals");
    }
    for p in list {
        let prop = &p["proposal"];
        let approvals: Vec<&str> = prop["approvals"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        println!(
            "{} {} by {}: {} ({} approvals: {}; {} missing)",
            prop["id"].as_str().unwrap_or("?"),
            prop["action"]["action"].as_str().unwrap_or("?"),
            prop["proposer"].as_str().unwrap_or("?"),
            p["status"].as_str().unwrap_or("?"),
            approvals.len(),
            approvals.join(", "),
            p["missing"],
        );
    }
}
