//! Joining a running consortium: a node started with `peers` (and not
//! `bootstrap`) asks a peer to add it as a learner, waits to be caught up,
//! then asks to become a voter.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rxchain_contracts::{Genesis, SecretKey};

use crate::http::cluster::{admin_headers, Signer};
use crate::raft::peers::{PeerError, PeerRequest, Peers};
use crate::types::Raft;

/// How long one join request may take.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Why joining failed on one attempt.
#[derive(Debug, thiserror::Error)]
enum JoinError {
    #[error("cannot reach {0}")]
    Transport(String, #[source] PeerError),
    #[error("{0} answered {1}: {2}")]
    Refused(String, u16, String),
}

/// A non-bootstrap node with peers joins the cluster: it asks a peer to add
/// it as a learner, waits to be caught up, then asks to become a voter.
/// Runs until this node is a voter or `shutdown` flips.
pub async fn join(
    raft: Raft,
    genesis: Arc<Genesis>,
    node_id: u64,
    node_key: Arc<SecretKey>,
    advertised: String,
    peers: BTreeMap<String, String>,
    client: Peers,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let signer = Signer::Node(node_id);
    let chain_id = genesis.chain_id.to_string();
    // Peers are keyed by node id: each join request is signed for the node
    // it is sent to, and the id pins the TLS key that node must present.
    let peers: Vec<(u64, String)> = peers
        .into_iter()
        .filter(|(_, a)| *a != advertised)
        .filter_map(|(id, a)| match id.parse::<u64>() {
            Ok(id) if id != node_id => Some((id, a)),
            Ok(_) => None,
            Err(_) => {
                tracing::warn!(peer = %id, "a [peers] key is not a node id; skipping it");
                None
            }
        })
        .collect();
    if peers.is_empty() {
        tracing::warn!("no peers other than this node are configured; cannot join a cluster");
        return;
    }
    let mut attempt = 0u64;
    loop {
        let m = raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        if membership.voter_ids().any(|v| v == node_id) {
            tracing::info!("this node is a voter of the cluster");
            return;
        }
        let is_learner = membership.get_node(&node_id).is_some();
        let (path, body) = if is_learner {
            ("/v1/cluster/voters", serde_json::json!({"id": node_id}))
        } else {
            (
                "/v1/cluster/learners",
                serde_json::json!({"id": node_id, "addr": advertised}),
            )
        };
        let body = body.to_string().into_bytes();
        let (peer_id, peer) = &peers[(attempt as usize) % peers.len()];
        attempt += 1;
        let res = async {
            let mut headers = admin_headers(&chain_id, &node_key, &signer, *peer_id, path, &body);
            headers.push(("content-type", "application/json".into()));
            let answer = client
                .call(
                    *peer_id,
                    peer,
                    PeerRequest {
                        method: reqwest::Method::POST,
                        path,
                        headers: &headers,
                        body: body.clone().into(),
                        timeout: JOIN_TIMEOUT,
                    },
                )
                .await
                .map_err(|e| JoinError::Transport(peer.clone(), e))?;
            if answer.status >= 300 {
                let text = String::from_utf8_lossy(&answer.body).into_owned();
                return Err(JoinError::Refused(peer.clone(), answer.status, text));
            }
            Ok(())
        }
        .await;
        match res {
            Ok(()) => tracing::info!(path, peer, "join step accepted"),
            // Expected while the learner catches up; keep the log quiet.
            Err(e) if is_learner => tracing::debug!(error = ?e, "not promoted yet"),
            Err(e) => tracing::warn!(error = ?e, "asking to join failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(if is_learner { 500 } else { 1000 })) => {}
            _ = shutdown.changed() => return,
        }
    }
}
