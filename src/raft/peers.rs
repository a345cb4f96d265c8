//! The node's one HTTP client to its peers.
//!
//! Every node-to-node call (Raft RPCs, forwarded submissions and admin
//! requests, read indexes, status probes, joining) goes through the one
//! [`Peers`] client built when the node starts, so connection pooling,
//! timeouts, the peer URL scheme and the TLS pins are decided in one place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::tls::{Directory, TlsIdentity};

/// Header a node sets on requests it forwards for its clients, so the
/// leader does not count those clients under the forwarding node's address.
pub const FORWARDED_BY: &str = "x-rxchain-forwarded-by";

/// A connect timeout short enough that a follower whose leader is gone
/// answers 503 quickly rather than hanging on a dead address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The node's HTTP client to its peers. Cheap to clone (the clients and
/// their pools are shared).
///
/// Over TLS there is one client per target node, each pinned to the TLS key
/// the live consortium declares for that node at each handshake ([`crate::tls::peer_client_config`]):
/// a reply can then only come from the node we meant to reach, and node 2
/// cannot answer for node 3 even though both are members. Clients are built
/// on first use and kept.
#[derive(Clone, Debug)]
pub struct Peers {
    inner: Arc<Inner>,
}

#[derive(Debug)]
enum Inner {
    /// Plain HTTP (loopback or `insecure_plaintext`).
    Plain(reqwest::Client),
    /// Mutual TLS, one pinned client per target node.
    Tls {
        nodes: Directory,
        identity: TlsIdentity,
        clients: Mutex<HashMap<u64, reqwest::Client>>,
    },
}

/// Why a peer client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PeerClientError {
    /// reqwest refused the builder.
    #[error("cannot build the peer HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The pinned TLS configuration could not be made.
    #[error("cannot configure TLS to a peer: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
}

impl Peers {
    /// A plain-HTTP peer client (loopback clusters, `insecure_plaintext`).
    pub fn new() -> Result<Self, reqwest::Error> {
        crate::tls::install_default_provider();
        Ok(Peers {
            inner: Arc::new(Inner::Plain(builder().build()?)),
        })
    }

    /// A mutual-TLS peer client: it presents `identity` and accepts each
    /// peer only under the TLS key `nodes` declares for it when connecting.
    pub fn with_tls(nodes: Directory, identity: TlsIdentity) -> Self {
        Peers {
            inner: Arc::new(Inner::Tls {
                nodes,
                identity,
                clients: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Whether peers are reached over TLS.
    pub fn is_tls(&self) -> bool {
        matches!(*self.inner, Inner::Tls { .. })
    }

    /// The client to use for node `target`, pinned to its declared TLS key
    /// when TLS is on.
    pub fn client(&self, target: u64) -> Result<reqwest::Client, PeerClientError> {
        match &*self.inner {
            Inner::Plain(c) => Ok(c.clone()),
            Inner::Tls {
                nodes,
                identity,
                clients,
            } => {
                let mut clients = clients.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(c) = clients.get(&target) {
                    return Ok(c.clone());
                }
                let config = crate::tls::peer_client_config(nodes.clone(), target, identity)?;
                let c = builder().use_preconfigured_tls(config).build()?;
                clients.insert(target, c.clone());
                Ok(c)
            }
        }
    }

    /// The URL of `path` on the peer at `addr` (`host:port`): `https` when
    /// peers are reached over TLS.
    pub fn url(&self, addr: &str, path: &str) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{addr}{path}")
    }

    /// Sends one request to node `target` at `addr` and reads the whole answer.
    pub async fn call(
        &self,
        target: u64,
        addr: &str,
        req: PeerRequest<'_>,
    ) -> Result<Relayed, PeerError> {
        let http = self.client(target).map_err(PeerError::Client)?;
        let mut b = http
            .request(req.method, self.url(addr, req.path))
            .timeout(req.timeout)
            .body(req.body);
        for (name, value) in req.headers {
            b = b.header(*name, value.as_str());
        }
        let resp = b.send().await.map_err(PeerError::Unreachable)?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.bytes().await.map_err(PeerError::CutOff)?;
        Ok(Relayed {
            status,
            location,
            body,
        })
    }
}

/// One request to a peer.
pub struct PeerRequest<'a> {
    /// The method.
    pub method: reqwest::Method,
    /// The path, with a leading `/`.
    pub path: &'a str,
    /// Headers to send (authentication, content type).
    pub headers: &'a [(&'static str, String)],
    /// The body.
    pub body: Bytes,
    /// How long the whole call may take.
    pub timeout: Duration,
}

/// A peer's answer, kept whole so it can be relayed unchanged.
#[derive(Clone, Debug)]
pub struct Relayed {
    /// The HTTP status.
    pub status: u16,
    /// The `Location` header, for 202 answers that name a poll URL.
    pub location: Option<String>,
    /// The body (JSON).
    pub body: Bytes,
}

/// Why a peer call failed before an answer arrived.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer could not be reached or did not answer in time.
    #[error("the peer did not answer")]
    Unreachable(#[source] reqwest::Error),
    /// The answer was cut off.
    #[error("the peer's answer was cut off")]
    CutOff(#[source] reqwest::Error),
    /// No client for the peer could be built.
    #[error("no client for the peer")]
    Client(#[source] PeerClientError),
}
