//! The adversarial suite: each module is one attack on a real node (port 0,
//! temp dir), written as numbered steps, each asserting the exact status
//! and JSON code of the node's answer and that nothing changed that should
//! not have.
//!
//! The attacks speak raw HTTP/1.1 over TCP where a normal client would hide
//! what matters: a body that is declared but never sent, a chunked body that
//! never ends, and the moment the answer arrives relative to the bytes sent.
//!
//! The security review's findings and the tests that pin each one down:
//!
//! | # | Finding | Tested in |
//! |---|---|---|
//! | 1 | Strangers (throwaway, revoked, wrong-role keys) write to the chain | `strangers.rs` |
//! | 2 | Memory is not bounded | `raft_body.rs`, `raft_flood.rs`, `raft_deadline.rs`, `upload.rs`, `submit.rs` (the mempool flood), `chain_rules.rs` (oversized ciphertext fields) |
//! | 3 | Revoked staff keep acting | `tests/revocation.rs` |
//! | 4 | The client declares what is controlled | `chain_rules.rs` (morphine declared not controlled) |
//! | 5 | A retried staff action acts twice | `tests/idempotency.rs` |
//! | 6 | Any courier records any delivery | `chain_rules.rs` (`not_carrier`) |
//! | 7 | A claim proof can be replayed | `chain_rules.rs` (`proof_reused`) |
//! | 8 | The sign-in limiter races | `tests/revocation.rs` |
//! | 9 | A corrupted signature on a known id passes as a replay | `submit.rs` |
//! | 10 | A demo restart records refused `register_staff` | `chain_rules.rs` (`a_demo_restart_records_no_refused_registrations`) |
//! | 11 | A captured node request or cluster admin request can be replayed, or sent to another node (issue 10, test 3) | `replay.rs` |

#[path = "../common/mod.rs"]
mod common;
#[path = "../staff_client/mod.rs"]
mod staff_client;

mod chain_rules;
mod raft_body;
mod raft_deadline;
mod raft_flood;
mod replay;
mod strangers;
mod submit;
mod upload;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How long any single answer may take before the attack counts as having
/// stalled the node. Generous, because the test machine is shared.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// What the attacker's body does after the request head.
#[derive(Clone, Copy, Debug)]
pub enum Feed {
    /// Write `total` bytes as fast as the socket takes them (the head
    /// declares them with `Content-Length`).
    Declared {
        /// Bytes to send in all.
        total: u64,
    },
    /// Send nothing after the head.
    Nothing,
    /// A chunked body: one small chunk, then silence, never the final chunk.
    EndlessChunked,
    /// Send `bytes` bytes, one kilobyte at a time every `every`, then stall.
    Trickle {
        /// Bytes to send before stalling.
        bytes: u64,
        /// The pause between kilobytes.
        every: Duration,
    },
}

/// One raw HTTP/1.1 request in flight: the head is written, the body is fed
/// by a task, and the answer can be read while that task still writes.
pub struct Raw {
    read: tokio::net::tcp::OwnedReadHalf,
    sent: Arc<AtomicU64>,
    feeder: JoinHandle<()>,
}

/// An answer read off the wire.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body as JSON.
    pub json: Value,
    /// How many body bytes the attacker had written when the answer was
    /// complete.
    pub sent_when_answered: u64,
}

impl Raw {
    /// Connects, writes `head` (request line and headers, without the final
    /// empty line) and starts feeding the body as `feed` says.
    pub fn start(
        addr: SocketAddr,
        head: &str,
        feed: Feed,
    ) -> impl std::future::Future<Output = Raw> + Send + 'static {
        let head = format!("{head}\r\nhost: {addr}\r\n\r\n");
        Raw::connect(addr, head, feed)
    }

    async fn connect(addr: SocketAddr, head: String, feed: Feed) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connects");
        let (read, mut write) = stream.into_split();
        write
            .write_all(head.as_bytes())
            .await
            .expect("head written");
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let feeder = tokio::spawn(async move {
            // Write errors mean the node closed the connection: the attack
            // is over, which is what the tests want to see, so they end the
            // feed quietly.
            match feed {
                Feed::Nothing => {}
                Feed::Declared { total } => {
                    let chunk = vec![b'x'; 64 * 1024];
                    let mut left = total;
                    while left > 0 {
                        let n = left.min(chunk.len() as u64) as usize;
                        if write.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                        counter.fetch_add(n as u64, Ordering::SeqCst);
                        left -= n as u64;
                    }
                }
                Feed::EndlessChunked => {
                    let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
                    if write.write_all(chunk.as_bytes()).await.is_ok() {
                        counter.fetch_add(1024, Ordering::SeqCst);
                    }
                }
                Feed::Trickle { bytes, every } => {
                    let chunk = vec![b'x'; 1024];
                    let mut left = bytes;
                    while left > 0 {
                        if write.write_all(&chunk).await.is_err() {
                            return;
                        }
                        counter.fetch_add(1024, Ordering::SeqCst);
                        left = left.saturating_sub(1024);
                        tokio::time::sleep(every).await;
                    }
                }
            }
            // Hold the write half open so the body stays unfinished.
            std::future::pending::<()>().await;
        });
        Raw { read, sent, feeder }
    }

    /// Reads the answer (head and a `Content-Length` body), failing the test
    /// if it does not come within [`ANSWER_WITHIN`].
    pub async fn answer(self) -> Answer {
        self.answer_within(ANSWER_WITHIN).await
    }

    /// Like [`Raw::answer`], waiting at most `limit`.
    pub async fn answer_within(mut self, limit: Duration) -> Answer {
        let answer = tokio::time::timeout(limit, read_answer(&mut self.read))
            .await
            .expect("the node answers while the body is still unfinished");
        let sent_when_answered = self.sent.load(Ordering::SeqCst);
        self.feeder.abort();
        let (status, json) = answer;
        Answer {
            status,
            json,
            sent_when_answered,
        }
    }

    /// Hangs up without reading an answer.
    pub fn hang_up(self) {
        self.feeder.abort();
    }
}

async fn read_answer(read: &mut tokio::net::tcp::OwnedReadHalf) -> (u16, Value) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = read.read(&mut chunk).await.expect("reads the answer");
        assert!(n > 0, "the node closed the connection without answering");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("an ASCII head");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .expect("a status line")
        .parse()
        .expect("a numeric status");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().expect("a numeric content-length"))
        })
        .expect("the answer declares its length");
    while buf.len() < head_end + length {
        let n = read.read(&mut chunk).await.expect("reads the answer body");
        assert!(n > 0, "the answer body was cut short");
        buf.extend_from_slice(&chunk[..n]);
    }
    let json = serde_json::from_slice(&buf[head_end..head_end + length]).expect("a JSON answer");
    (status, json)
}

/// Asserts an answer's status and JSON `code`, and that it carries a
/// sentence for people.
pub fn assert_refused(a: &Answer, status: u16, code: &str) {
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (status, Some(code)),
        "{:?}",
        a
    );
    assert!(
        a.json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a refusal carries a sentence: {a:?}"
    );
}

/// POSTs a signed transaction to `/v1/tx` and returns the status and the
/// JSON body.
pub async fn post_signed(
    http: &reqwest::Client,
    base: &str,
    tx: &rxchain_contracts::SignedTx,
) -> (u16, Value) {
    let resp = http
        .post(format!("{base}/v1/tx"))
        .json(tx)
        .send()
        .await
        .expect("node answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON answer"))
}
