//! The Raft RPC client: openraft's [`RaftNetworkFactory`] over HTTP.
//!
//! Each RPC is one signed POST of a postcard body to the peer's address
//! from the Raft membership (see [`super::rpc`] for the wire format). Failures are
//! mapped to what openraft should do next: a refused connection or refused
//! credentials is [`Unreachable`] (back off, the peer is down or
//! misconfigured), a timeout is [`Timeout`], an oversized batch is
//! [`PayloadTooLarge`] (openraft retries with fewer entries), a Raft error
//! from the peer is a [`RemoteError`], anything else a [`NetworkError`].
//!
//! ## The append timeout is not the heartbeat
//!
//! openraft 0.9 gives every AppendEntries exactly one heartbeat interval
//! (`RPCOption::hard_ttl`, and it drops the call at the same moment). A
//! block that takes longer to send and persist would then be cut off and
//! sent again, whole, forever. So every AppendEntries runs in its own task
//! with its own deadline, [`Network::with_append_timeout`]
//! (`raft.append_timeout_ms`): when openraft's wait ends first, openraft
//! hears "timeout" but the request carries on (counted in
//! `rxchain_raft_appends_outlasting_heartbeat_total`, not as a failure). At
//! most one request carrying entries, and one heartbeat, per peer is on the
//! wire: openraft's next call of the same kind to that peer first waits for
//! it, and if it succeeded sends only the entries after the earlier one's
//! last (the peer holds everything up to there; an empty append when it
//! holds them all) instead of the same block again. openraft always gets
//! the answer to a request sent after it asked, never a stored one, so its
//! leader lease counts from a real acknowledgement. A request that outlasts the append
//! timeout itself is a failure
//! (`rxchain_raft_append_failures_total{kind="timeout"}`). Heartbeats have
//! their own slot, so the peer keeps hearing from its leader while a block
//! is on the wire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared as SharedFuture};

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, LogId, RPCTypes, Vote};
use reqwest::StatusCode;
use rxchain_contracts::SecretKey;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::peers::Peers;
use super::rpc::{self, ErrorBody, Wire};
use super::{Faults, TypeConfig};
use crate::metrics::Metrics;

/// What went wrong on the wire, wrapped into openraft's error kinds.
#[derive(Debug, thiserror::Error)]
enum TransportError {
    #[error("cannot encode the request: {0}")]
    Encode(rpc::WireError),
    #[error("the response does not decode: {0}")]
    Decode(rpc::WireError),
    #[error("the error body does not decode: {0}")]
    DecodeError(serde_json::Error),
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
    #[error("the AppendEntries task for node {0} ended abnormally: {1}")]
    Task(u64, String),
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
    /// How long an AppendEntries with entries may take, independent of
    /// openraft's heartbeat-long wait.
    append_timeout: Duration,
    /// The AppendEntries on the wire (or finished and not yet seen by
    /// openraft) per peer, one carrying entries and one heartbeat at most:
    /// keyed by (peer, is a heartbeat).
    in_flight: Mutex<HashMap<(u64, bool), InFlight>>,
}

/// The default [`Network::with_append_timeout`].
pub const DEFAULT_APPEND_TIMEOUT: Duration = Duration::from_secs(10);

type AppendResult = RpcResult<AppendEntriesResponse<u64>, openraft::error::Infallible>;

/// [`AppendResult`] in a form that can be shared between waiters
/// (openraft's response type is not `Clone`).
type SharedAppend = RpcResult<Answer, openraft::error::Infallible>;

/// A copy of [`AppendEntriesResponse`].
#[derive(Clone, Debug)]
enum Answer {
    Success,
    PartialSuccess(Option<LogId<u64>>),
    Conflict,
    HigherVote(Vote<u64>),
}

impl From<AppendEntriesResponse<u64>> for Answer {
    fn from(r: AppendEntriesResponse<u64>) -> Self {
        match r {
            AppendEntriesResponse::Success => Answer::Success,
            AppendEntriesResponse::PartialSuccess(m) => Answer::PartialSuccess(m),
            AppendEntriesResponse::Conflict => Answer::Conflict,
            AppendEntriesResponse::HigherVote(v) => Answer::HigherVote(v),
        }
    }
}

impl From<Answer> for AppendEntriesResponse<u64> {
    fn from(a: Answer) -> Self {
        match a {
            Answer::Success => AppendEntriesResponse::Success,
            Answer::PartialSuccess(m) => AppendEntriesResponse::PartialSuccess(m),
            Answer::Conflict => AppendEntriesResponse::Conflict,
            Answer::HigherVote(v) => AppendEntriesResponse::HigherVote(v),
        }
    }
}

/// An AppendEntries with entries sent to one peer.
struct InFlight {
    /// The leader vote it was sent under.
    vote: Vote<u64>,
    /// Its last entry (for a heartbeat, the entry before it).
    last: Option<LogId<u64>>,
    /// Its answer, shared by every call that waits for it.
    answer: SharedFuture<BoxFuture<'static, SharedAppend>>,
}

impl Shared {
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, bool), InFlight>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn copy(&self) -> Shared {
        Shared {
            chain_id: self.chain_id.clone(),
            self_id: self.self_id,
            node_key: self.node_key.clone(),
            peers: self.peers.clone(),
            faults: self.faults.clone(),
            metrics: self.metrics.clone(),
            append_timeout: self.append_timeout,
            in_flight: Mutex::new(HashMap::new()),
        }
    }
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
                append_timeout: DEFAULT_APPEND_TIMEOUT,
                in_flight: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The same network, honouring the test-only partitions in `faults`.
    pub fn with_faults(self, faults: Arc<Faults>) -> Self {
        let shared = Shared {
            faults,
            ..self.shared.copy()
        };
        Network {
            shared: Arc::new(shared),
        }
    }

    /// The same network, counting AppendEntries latency and failures per
    /// peer in `metrics` (by default in a private, unexported registry).
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        let shared = Shared {
            metrics,
            ..self.shared.copy()
        };
        Network {
            shared: Arc::new(shared),
        }
    }

    /// The same network, giving an AppendEntries that carries entries
    /// `timeout` to finish (by default [`DEFAULT_APPEND_TIMEOUT`]), however
    /// short openraft's heartbeat is.
    pub fn with_append_timeout(self, timeout: Duration) -> Self {
        let shared = Shared {
            append_timeout: timeout,
            ..self.shared.copy()
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
        ttl: Duration,
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
        let body = Wire::Postcard
            .encode(req)
            .map_err(|e| NetworkError::new(&TransportError::Encode(e)))?;
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
        let http = s
            .peers
            .client(self.target)
            .map_err(|e| Unreachable::new(&TransportError::Client(e)))?;
        let mut req = http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, rpc::POSTCARD);
        for (name, value) in auth {
            req = req.header(name, value);
        }
        let sent = req.body(body).timeout(ttl).send().await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Err(self.transport_error(e, action, ttl)),
        };
        let status = resp.status();
        let wire = Wire::of(resp.headers());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(e, action, ttl))?;
        if status.is_success() {
            return wire
                .decode(&bytes)
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
                    Err(e) => Err(NetworkError::new(&TransportError::DecodeError(e)).into()),
                },
                _ => Err(NetworkError::new(&TransportError::Status { status, body: text }).into()),
            },
        }
    }

    /// Sends one AppendEntries with deadline `ttl` and records its
    /// latency and any failure.
    async fn append_now(
        &self,
        req: AppendEntriesRequest<TypeConfig>,
        ttl: Duration,
    ) -> AppendResult {
        let n = req.entries.len();
        let started = Instant::now();
        let result = self
            .call(
                rpc::PATH_APPEND,
                RPCTypes::AppendEntries,
                &req,
                ttl,
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

    /// Forgets the in-flight request in `slot` if it is the one sent under
    /// `vote` ending at `last` (a newer one stays).
    fn forget(&self, slot: (u64, bool), vote: &Vote<u64>, last: Option<LogId<u64>>) {
        let mut slots = self.shared.in_flight();
        if slots
            .get(&slot)
            .is_some_and(|f| &f.vote == vote && f.last == last)
        {
            slots.remove(&slot);
        }
    }

    /// What openraft hears when its heartbeat-long wait ends first.
    fn heartbeat_timeout(&self, ttl: Duration) -> RPCError<u64, BasicNode, RaftError<u64>> {
        RPCError::Timeout(Timeout {
            action: RPCTypes::AppendEntries,
            id: self.shared.self_id,
            target: self.target,
            timeout: ttl,
        })
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
    ) -> AppendResult {
        let ttl = option.hard_ttl();
        // Answer before openraft drops this call at `ttl`, so the slot
        // bookkeeping below always runs.
        let deadline = tokio::time::Instant::now() + ttl.mul_f64(0.9);
        let vote = req.vote;
        let prev = req.prev_log_id;
        // A heartbeat (no entries) has its own slot, so it never queues
        // behind a block; what a success proves is matching up to `last`.
        let heartbeat = req.entries.is_empty();
        let last = req.entries.last().map(|e| e.log_id).or(prev);
        let slot = (self.target, heartbeat);
        let earlier = {
            let mut slots = self.shared.in_flight();
            match slots.get(&slot) {
                Some(f) if f.vote == vote => Some((f.last, f.answer.clone())),
                // A request of an earlier term says nothing for this one.
                Some(_) => {
                    slots.remove(&slot);
                    None
                }
                None => None,
            }
        };
        let mut req = req;
        if let Some((earlier_last, answer)) = earlier {
            let Ok(result) = tokio::time::timeout_at(deadline, answer).await else {
                self.shared.metrics.append_outlasted_heartbeat(self.target);
                return Err(self.heartbeat_timeout(ttl));
            };
            self.forget(slot, &vote, earlier_last);
            match result {
                // The peer holds everything up to `earlier_last`: send
                // only what follows it. The answer openraft gets is always
                // that of a request sent after it asked (its lease clock
                // counts from then), never a stale one replayed.
                Ok(Answer::Success) if !heartbeat && earlier_last >= prev => {
                    req.entries.retain(|e| Some(e.log_id) > earlier_last);
                    req.prev_log_id = if req.entries.is_empty() {
                        last
                    } else {
                        earlier_last
                    };
                }
                Ok(Answer::HigherVote(v)) => return Ok(AppendEntriesResponse::HigherVote(v)),
                // Anything else: this request goes out whole.
                _ => {}
            }
        }
        let answer = {
            let conn = Connection {
                shared: self.shared.clone(),
                target: self.target,
                node: self.node.clone(),
            };
            let timeout = self.shared.append_timeout;
            let task =
                tokio::spawn(async move { conn.append_now(req, timeout).await.map(Answer::from) });
            let target = self.target;
            async move {
                task.await.unwrap_or_else(|e| {
                    Err(NetworkError::new(&TransportError::Task(target, e.to_string())).into())
                })
            }
            .boxed()
            .shared()
        };
        self.shared.in_flight().insert(
            slot,
            InFlight {
                vote,
                last,
                answer: answer.clone(),
            },
        );
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(result) => {
                self.forget(slot, &vote, last);
                result.map(AppendEntriesResponse::from)
            }
            Err(_) => {
                self.shared.metrics.append_outlasted_heartbeat(self.target);
                Err(self.heartbeat_timeout(ttl))
            }
        }
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
            option.hard_ttl(),
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
        self.call(
            rpc::PATH_VOTE,
            RPCTypes::Vote,
            &req,
            option.hard_ttl(),
            None,
        )
        .await
    }
}
