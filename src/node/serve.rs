//! Serving the node's router over TLS: the accept loop, the handshake, and
//! the per-connection [`PeerNode`] extension that node-only routes check.
//!
//! Plain HTTP (loopback, or `insecure_plaintext`) is served by
//! `axum::serve` in [`super::start`]; its requests carry no [`PeerNode`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::http::cluster::HEADER_ORG;
use crate::raft::peers::FORWARDED_BY;
use crate::raft::rpc::HEADER_NODE;
use crate::tls::{admit, Directory, NodeClaims, PeerNode, PeerRefusal};

/// How long a client may take to complete the TLS handshake. A stranger
/// that opens a connection and stalls is dropped after this, so it cannot
/// pin a task for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long stopping waits for open connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The refusal of a node-only route on a TLS connection: 401 without a
/// node certificate, 403 with another node's.
fn refusal(r: PeerRefusal) -> Response {
    let status = match r {
        PeerRefusal::CertificateRequired => StatusCode::UNAUTHORIZED,
        PeerRefusal::CertificateMismatch { .. } => StatusCode::FORBIDDEN,
    };
    let body = serde_json::json!({"code": r.code(), "message": r.to_string()});
    (status, Json(body)).into_response()
}

/// What [`admit`] needs from a request's path and headers.
fn claims<'a>(path: &'a str, headers: &'a HeaderMap) -> NodeClaims<'a> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    NodeClaims {
        path,
        node: text(HEADER_NODE),
        org: headers.contains_key(HEADER_ORG),
        forwarded_by: text(FORWARDED_BY),
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` flips, then waits
/// up to [`DRAIN_TIMEOUT`] for open requests.
///
/// Each connection is handshaken in its own task; its requests carry
/// `ConnectInfo<SocketAddr>` (the client's address, as `axum::serve` gives
/// on plain HTTP) and [`PeerNode`] (the node whose declared key the client
/// certificate holds, looked up in the live consortium `nodes`), and are checked by [`admit`] before they reach the
/// router.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    config: Arc<rustls::ServerConfig>,
    nodes: Directory,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(config);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|v| *v) => break,
        };
        let (tcp, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly
                // rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let nodes = nodes.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let peer = PeerNode::of(&nodes.get(), stream.get_ref().1.peer_certificates());
            let service = hyper::service::service_fn(
                move |mut req: Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    async move {
                        req.extensions_mut().insert(ConnectInfo(remote));
                        req.extensions_mut().insert(peer);
                        if let Err(r) = admit(peer, &claims(req.uri().path(), req.headers())) {
                            tracing::warn!(%remote, ?peer, path = req.uri().path(), reason = %r, "node-only route refused");
                            return Ok::<_, Infallible>(refusal(r));
                        }
                        app.oneshot(req.map(axum::body::Body::new)).await
                    }
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish in time; dropping them");
    }
}

/// Whether a plain-HTTP node may listen on `addr`: only on loopback, unless
/// the operator said `insecure_plaintext`.
pub fn plaintext_allowed(addr: SocketAddr, insecure_plaintext: bool) -> bool {
    addr.ip().is_loopback() || insecure_plaintext
}
