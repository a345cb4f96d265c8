//! The Raft RPC client: openraft's [`RaftNetworkFactory`] over HTTP.
//!
//! Each RPC is one signed JSON POST to the peer's address from the Raft
//! membership (see [`super::rpc`] for the wire format). Failures are
//! mapped to what openraft should do next: a refused connection or refused
//! credentials is [`Unreachable`] (back off, the peer is down or
//! misconfigured), a timeout is [`Timeout`], an oversized batch is
//! [`PayloadTooLarge`] (openraft retries with fewer entries), a Raft error
//! from the peer is a [`RemoteError`], anything else a [`NetworkError`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes};
use reqwest::StatusCode;
use rxchain_contracts::SecretKey;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::peers::Peers;
use super::rpc::{self, ErrorBody};
use super::{Faults, TypeConfig};
use crate::metrics::Metrics;

/// What went wrong on the wire, wrapped into openraft's error kinds.
#[derive(Debug, thiserror::Error)]
enum TransportError {
    #[error("cannot encode the request: {0}")]
    Encode(serde_json::Error),
    #[error("the response does not decode: {0}")]
    Decode(serde_json::Error),
    #[error("peer refused our credentials ({status}): {body}")]
    Refused { status: StatusCode, body: String },
    #[error("peer answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("node {0} is cut off by an injected test partition")]
    Partitioned(u64),
    #[error("peer could not take even one entry per request: {0}")]
    TooLarge(String),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Client(#[from] super::peers::PeerClientError),
}

/// Creates connections to peers. One per node; cloned state is shared.
pub struct Network {
    /// Everything a connection needs, shared by all of them.
    shared: Arc<Shared>,
}

struct Shared {
    chain_id: String,
    self_id: u64,
    node_key: Arc<SecretKey>,
    peers: Peers,
    /// Test-only partitions; empty in production.
    faults: Arc<Faults>,
    /// Where AppendEntries latency and failures per peer are counted.
    metrics: Arc<Metrics>,
}

impl Network {
    /// A network that signs as `self_id` with `node_key` for `chain_id`,
    /// sending through the node's peer client. Timeouts are set per
    /// request from openraft.
    pub fn new(chain_id: String, self_id: u64, node_key: Arc<SecretKey>, peers: &Peers) -> Self {
        Network {
            shared: Arc::new(Shared {
                chain_id,
                self_id,
                node_key,
                peers: peers.clone(),
                faults: Faults::new(false),
                metrics: Arc::new(Metrics::new()),
            }),
        }
    }

    /// The same network, honouring the test-only partitions in `faults`.
    pub fn with_faults(self, faults: Arc<Faults>) -> Self {
        let s = &self.shared;
        let shared = Shared {
            chain_id: s.chain_id.clone(),
            self_id: s.self_id,
            node_key: s.node_key.clone(),
            peers: s.peers.clone(),
            faults,
            metrics: s.metrics.clone(),
        };
        Network {
            shared: Arc::new(shared),
        }
    }

    /// The same network, counting AppendEntries latency and failures per
    /// peer in `metrics` (by default in a private, unexported registry).
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        let s = &self.shared;
        let shared = Shared {
            chain_id: s.chain_id.clone(),
            self_id: s.self_id,
            node_key: s.node_key.clone(),
            peers: s.peers.clone(),
            faults: s.faults.clone(),
            metrics,
        };
        Network {
            shared: Arc::new(shared),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Connection {
        Connection {
            shared: self.shared.clone(),
            target,
            node: node.clone(),
        }
    }
}

/// A connection to one peer. HTTP connections are pooled by the shared
/// client, so this holds no socket of its own.
pub struct Connection {
    shared: Arc<Shared>,
    target: u64,
    node: BasicNode,
}

type RpcResult<T, E> = Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>;

impl Connection {
    /// Sends one signed request and decodes the answer.
    ///
    /// `entries` is the number of log entries carried, for the
    /// payload-too-large hint.
    async fn call<Req, Resp, E>(
        &self,
        path: &'static str,
        action: RPCTypes,
        req: &Req,
        option: &RPCOption,
        entries: Option<usize>,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let s = &self.shared;
        if s.faults.is_blocked(self.target) {
            return Err(Unreachable::new(&TransportError::Partitioned(self.target)).into());
        }
        let body =
            serde_json::to_vec(req).map_err(|e| NetworkError::new(&TransportError::Encode(e)))?;
        // Signed for this target with a fresh nonce: a retry by openraft
        // is a new request, never a replay of this one.
        let auth = rpc::signed_headers(
            &s.chain_id,
            &s.node_key,
            s.self_id,
            self.target,
            path,
            &body,
        );
        let url = s.peers.url(&self.node.addr, path);
        let ttl = option.hard_ttl();
        let http = s
            .peers
            .client(self.target)
            .map_err(|e| Unreachable::new(&TransportError::Client(e)))?;
        let mut req = http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in auth {
            req = req.header(name, value);
        }
        let sent = req.body(body).timeout(ttl).send().await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Err(self.transport_error(e, action, ttl)),
        };
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(e, action, ttl))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| NetworkError::new(&TransportError::Decode(e)).into());
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                tracing::error!(target = self.target, %status, body = %text, "peer refused this node's credentials");
                Err(Unreachable::new(&TransportError::Refused { status, body: text }).into())
            }
            StatusCode::PAYLOAD_TOO_LARGE => match entries {
                Some(n) if n > 1 => Err(PayloadTooLarge::new_entries_hint((n / 2) as u64).into()),
                _ => Err(NetworkError::new(&TransportError::TooLarge(text)).into()),
            },
            _ => match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(ErrorBody {
                    raft: Some(raft), ..
                }) => match serde_json::from_value::<RaftError<u64, E>>(raft) {
                    Ok(source) => {
                        Err(
                            RemoteError::new_with_node(self.target, self.node.clone(), source)
                                .into(),
                        )
                    }
                    Err(e) => Err(NetworkError::new(&TransportError::Decode(e)).into()),
                },
                _ => Err(NetworkError::new(&TransportError::Status { status, body: text }).into()),
            },
        }
    }

    fn transport_error<E: std::error::Error>(
        &self,
        e: reqwest::Error,
        action: RPCTypes,
        ttl: Duration,
    ) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
        if e.is_timeout() {
            RPCError::Timeout(Timeout {
                action,
                id: self.shared.self_id,
                target: self.target,
                timeout: ttl,
            })
        } else if e.is_connect() {
            RPCError::Unreachable(Unreachable::new(&TransportError::Http(e)))
        } else {
            RPCError::Network(NetworkError::new(&TransportError::Http(e)))
        }
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    #[tracing::instrument(level = "debug", skip_all, fields(target = self.target, entries = req.entries.len()))]
    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, openraft::error::Infallible> {
        let n = req.entries.len();
        let started = Instant::now();
        let result = self
            .call(
                rpc::PATH_APPEND,
                RPCTypes::AppendEntries,
                &req,
                &option,
                Some(n),
            )
            .await;
        let failure = result.as_ref().err().map(|e| match e {
            RPCError::Timeout(_) => "timeout",
            RPCError::Unreachable(_) => "unreachable",
            RPCError::PayloadTooLarge(_) => "too_large",
            RPCError::Network(_) => "network",
            RPCError::RemoteError(_) => "remote",
        });
        self.shared
            .metrics
            .append_done(self.target, started.elapsed(), failure);
        result
    }

    #[tracing::instrument(level = "debug", skip_all, fields(target = self.target, offset = req.offset, done = req.done))]
    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.call(
            rpc::PATH_SNAPSHOT,
            RPCTypes::InstallSnapshot,
            &req,
            &option,
            None,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(target = self.target))]
    async fn vote(
        &mut self,
        req: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, openraft::error::Infallible> {
        self.call(rpc::PATH_VOTE, RPCTypes::Vote, &req, &option, None)
            .await
    }
}
