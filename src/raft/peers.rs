//! The node's one HTTP client to its peers.
//!
//! Every node-to-node call (Raft RPCs, forwarded submissions and admin
//! requests, read indexes, status probes, joining) goes through the one
//! [`Peers`] client built when the node starts, so connection pooling,
//! timeouts and the peer URL scheme are decided in one place.

use std::time::Duration;

use bytes::Bytes;

/// Header a node sets on requests it forwards for its clients, so the
/// leader does not count those clients under the forwarding node's address.
pub const FORWARDED_BY: &str = "x-rxchain-forwarded-by";

/// A connect timeout short enough that a follower whose leader is gone
/// answers 503 quickly rather than hanging on a dead address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The node's HTTP client to its peers. Cheap to clone (reqwest clients
/// share their pool).
#[derive(Clone, Debug)]
pub struct Peers {
    http: reqwest::Client,
}

impl Peers {
    /// Builds the client once per node.
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()?;
        Ok(Peers { http })
    }

    /// The underlying client, for calls that need their own shape.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The URL of `path` on the peer at `addr` (`host:port`).
    pub fn url(addr: &str, path: &str) -> String {
        format!("http://{addr}{path}")
    }

    /// Sends one request to the peer at `addr` and reads the whole answer.
    pub async fn call(&self, addr: &str, req: PeerRequest<'_>) -> Result<Relayed, PeerError> {
        let mut b = self
            .http
            .request(req.method, Self::url(addr, req.path))
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
}
