//! `rxchain cluster status | add-learner | promote | remove`: the operator's
//! view of the Raft cluster and one-member-at-a-time changes, signed with an
//! org admin key or a node's own key (see [`crate::http::cluster`]).

use anyhow::Context;

use crate::cli::{ClusterAction, ClusterArgs};
use crate::client::Client;
use crate::http::cluster::{signer_for, ClusterStatus};

/// Runs one cluster command.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let base = args.node.trim_end_matches('/').to_string();
    let client = Client::trusting(base.clone(), &args.trust.genesis, args.trust.ca.as_deref())?;
    let (method, path, body) = match &args.action {
        ClusterAction::Status => {
            let (status, v) = client
                .request_raw(
                    reqwest::Method::GET,
                    "/v1/cluster/status",
                    &[],
                    String::new(),
                )
                .await
                .with_context(|| format!("cannot reach {base}"))?;
            if status >= 300 {
                anyhow::bail!("{status}: {}", v["message"].as_str().unwrap_or(""));
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_status(&serde_json::from_value(v).context("unexpected status body")?);
            }
            return Ok(());
        }
        ClusterAction::AddLearner { id, addr } => (
            reqwest::Method::POST,
            "/v1/cluster/learners".to_string(),
            serde_json::json!({"id": id, "addr": addr}).to_string(),
        ),
        ClusterAction::Promote { id } => (
            reqwest::Method::POST,
            "/v1/cluster/voters".to_string(),
            serde_json::json!({"id": id}).to_string(),
        ),
        ClusterAction::Remove { id } => (
            reqwest::Method::DELETE,
            format!("/v1/cluster/members/{id}"),
            String::new(),
        ),
    };
    let key_file = args
        .key
        .as_ref()
        .context("--key is required: an org admin key file or this node's key file")?;
    let key = crate::keys::read(key_file)?;
    let genesis = client
        .genesis()
        .await
        .context("reading the consortium from the node")?;
    let signer = signer_for(&genesis, &key).context(
        "the key is neither an organisation admin key nor a node key of this consortium's genesis",
    )?;
    let v = super::signed_admin_call(&client, &genesis, &key, &signer, method, &path, body).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let unchanged = if v["unchanged"].as_bool() == Some(true) {
            " (unchanged: it already was)"
        } else {
            ""
        };
        println!(
            "node {} is now {}{unchanged}; voters {} learners {}",
            v["id"],
            v["role"].as_str().unwrap_or("?"),
            v["voters"],
            v["learners"]
        );
    }
    Ok(())
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |n| n.to_string())
}

fn print_status(s: &ClusterStatus) {
    println!(
        "leader {}  term {}  last log index {}  (answered by node {})",
        opt(s.leader),
        s.term,
        opt(s.last_log_index),
        s.answered_by
    );
    match &s.unhealthy_reason {
        None => println!("healthy: membership changes are accepted"),
        Some(why) => println!("not healthy for membership changes: {why}"),
    }
    println!(
        "{:<5} {:<8} {:<22} {:>9} {:>6} {:>9} {:>8}  state",
        "id", "role", "addr", "matched", "lag", "applied", "height"
    );
    for m in &s.members {
        let (applied, height, state) = match &m.local {
            Some(l) => (opt(l.applied_index), l.height.to_string(), l.state.clone()),
            None => ("-".into(), "-".into(), "unreachable".into()),
        };
        println!(
            "{:<5} {:<8} {:<22} {:>9} {:>6} {:>9} {:>8}  {}",
            m.id,
            m.role,
            m.addr,
            opt(m.matched_index),
            opt(m.lag),
            applied,
            height,
            state
        );
    }
}
