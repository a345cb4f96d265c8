//! Attack: a stranger sends Raft RPCs with huge or endless bodies, hoping
//! the node buffers them before it checks who is speaking. The node must
//! refuse on the headers alone, before reading the body, and nothing may
//! reach Raft.

use rxchain::demo::node_key;
use rxchain::raft::rpc;

use super::{assert_refused, common, Feed, Raw};

const BIG: u64 = rpc::MAX_RPC_BODY as u64;

/// A request head for `path` with `content-length: len` (or chunked when
/// `len` is `None`) and the given extra header lines.
fn head(path: &str, len: Option<u64>, auth: &[(&str, String)]) -> String {
    let mut h = format!("POST {path} HTTP/1.1\r\ncontent-type: application/json");
    match len {
        Some(n) => h.push_str(&format!("\r\ncontent-length: {n}")),
        None => h.push_str("\r\ntransfer-encoding: chunked"),
    }
    for (name, value) in auth {
        h.push_str(&format!("\r\n{name}: {value}"));
    }
    h
}

/// Authentication headers for `node` at `ts`, addressed to node 1 (the
/// demo node) with a fresh nonce, signed by `node`'s demo key over `body`.
fn auth(
    chain_id: &str,
    node: u64,
    ts: u64,
    path: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let stamp = rpc::Stamp {
        to: 1,
        ts_ms: ts,
        nonce: rpc::Nonce::random(),
    };
    let sig = rpc::sign(chain_id, &node_key(node), path, &stamp, body);
    let mut headers = vec![(rpc::HEADER_NODE, node.to_string())];
    headers.extend(stamp.headers());
    headers.push((rpc::HEADER_SIG, sig.to_hex()));
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_endless_raft_bodies_are_refused_before_they_are_read() {
    // 1. A one-node consortium; note what Raft and the chain hold.
    let t = common::start_demo_node().await;
    let addr = t.node.addr;
    let chain_id = t.demo.genesis.chain_id.to_string();
    let height = t.node.chain.tip().height;
    let before = t.node.raft.metrics().borrow().clone();

    // 2. No headers, 64 MiB declared and pushed as fast as the socket takes
    //    it: 401 missing_auth, answered while most of the body is unsent.
    let a = Raw::start(
        addr,
        &head(rpc::PATH_APPEND, Some(BIG), &[]),
        Feed::Declared { total: BIG },
    )
    .await
    .answer()
    .await;
    assert_refused(&a, 401, "missing_auth");
    assert!(
        a.sent_when_answered < BIG / 2,
        "answered after {} of {BIG} bytes: the node read the body first",
        a.sent_when_answered
    );

    // 3. A chunked body that never ends, from a node id genesis does not
    //    know: 403 unknown_node. The answer can only come if the node did
    //    not wait for the body.
    let now = rxchain::clock::now_ms();
    let stranger = auth(&chain_id, 99, now, rpc::PATH_APPEND, b"");
    let a = Raw::start(
        addr,
        &head(rpc::PATH_APPEND, None, &stranger),
        Feed::EndlessChunked,
    )
    .await
    .answer()
    .await;
    assert_refused(&a, 403, "unknown_node");

    // 4. Node 1's real key, but two minutes old, with an endless body:
    //    401 stale_request, again without waiting for the body.
    let stale = auth(&chain_id, 1, now - 120_000, rpc::PATH_VOTE, b"");
    let a = Raw::start(
        addr,
        &head(rpc::PATH_VOTE, None, &stale),
        Feed::EndlessChunked,
    )
    .await
    .answer()
    .await;
    assert_refused(&a, 401, "stale_request");

    // 5. A signature header that is not hex, 64 MiB declared and none
    //    sent: 401 malformed_auth.
    let mut malformed = auth(&chain_id, 1, now, rpc::PATH_SNAPSHOT, b"");
    malformed
        .iter_mut()
        .find(|(name, _)| *name == rpc::HEADER_SIG)
        .expect("a signature header")
        .1 = "not-hex".into();
    let a = Raw::start(
        addr,
        &head(rpc::PATH_SNAPSHOT, Some(BIG), &malformed),
        Feed::Nothing,
    )
    .await
    .answer()
    .await;
    assert_refused(&a, 401, "malformed_auth");
    assert_eq!(a.sent_when_answered, 0);

    // 6. Fresh, well-formed headers naming node 1, declaring one byte more
    //    than the limit and sending none of it: 413 body_too_large at once.
    let fresh = auth(
        &chain_id,
        1,
        rxchain::clock::now_ms(),
        rpc::PATH_APPEND,
        b"",
    );
    let a = Raw::start(
        addr,
        &head(rpc::PATH_APPEND, Some(BIG + 1), &fresh),
        Feed::Nothing,
    )
    .await
    .answer()
    .await;
    assert_refused(&a, 413, "body_too_large");
    assert_eq!(a.sent_when_answered, 0);

    // 7. The same headers with a small body they do not sign: the body is
    //    read, the signature fails, 401 bad_signature.
    let body = br#"{"vote":{}}"#;
    let mut req = reqwest::Client::new().post(format!("http://{addr}{}", rpc::PATH_APPEND));
    for (name, value) in &fresh {
        req = req.header(*name, value);
    }
    let a = req.body(body.to_vec()).send().await.expect("sent");
    let status = a.status().as_u16();
    let json: serde_json::Value = a.json().await.expect("a JSON body");
    assert_eq!(
        (status, json["code"].as_str()),
        (401, Some("bad_signature")),
        "{json}"
    );

    // 8. Nothing reached Raft or the chain.
    let after = t.node.raft.metrics().borrow().clone();
    assert_eq!(t.node.chain.tip().height, height, "the chain did not move");
    assert_eq!(after.current_term, before.current_term);
    assert_eq!(after.current_leader, before.current_leader);
    assert_eq!(after.last_log_index, before.last_log_index);
    t.node.stop().await;
}
