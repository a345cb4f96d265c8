//! Attack: a Raft RPC whose headers pass the precheck (a genesis node id, a
//! fresh time) but whose declared body never arrives. It may hold an RPC
//! slot only until the RPC deadline, then it is answered 408 `timeout` and
//! the slot is free again.

use std::time::{Duration, Instant};

use rxchain::demo::node_key;
use rxchain::raft::rpc;

use super::{assert_refused, common, Feed, Raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raft_body_that_never_arrives_is_cut_off_at_the_deadline() {
    // 1. A one-node consortium; its RPC deadline is the minimum, since the
    //    demo's snapshot install timeout is 10 s (3 × 10 s = 30 s).
    let t = common::start_demo_node().await;
    let deadline = rpc::MIN_RPC_TIMEOUT;
    let height = t.node.chain.tip().height;
    let chain_id = t.demo.genesis.chain_id.to_string();

    // 2. Headers that pass the precheck, a declared 1 MiB body, and then
    //    silence.
    let now = rxchain::clock::now_ms();
    let stamp = rpc::Stamp {
        to: 1,
        ts_ms: now,
        nonce: rpc::Nonce::random(),
    };
    let sig = rpc::sign(&chain_id, &node_key(1), rpc::PATH_APPEND, &stamp, b"").to_hex();
    let nonce = stamp.nonce.to_hex();
    let started = Instant::now();
    let raw = Raw::start(
        t.node.addr,
        &format!(
            "POST {} HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: 1048576\r\n{}: 1\r\n{}: 1\r\n{}: {now}\r\n{}: {nonce}\r\n{}: {sig}",
            rpc::PATH_APPEND,
            rpc::HEADER_NODE,
            rpc::HEADER_TO,
            rpc::HEADER_TS,
            rpc::HEADER_NONCE,
            rpc::HEADER_SIG,
        ),
        Feed::Nothing,
    )
    .await;

    // 3. The answer is 408 timeout, no sooner than the deadline and not
    //    long after it.
    let answer = raw.answer_within(deadline + Duration::from_secs(15)).await;
    let took = started.elapsed();
    assert_refused(&answer, 408, "timeout");
    assert!(
        took >= deadline - Duration::from_secs(1),
        "cut off after {took:?}, before the {deadline:?} deadline"
    );
    assert_eq!(answer.sent_when_answered, 0, "no body byte was sent");
    assert_eq!(t.node.chain.tip().height, height);
    t.node.stop().await;
}
