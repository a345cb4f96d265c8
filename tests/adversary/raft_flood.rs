//! Attack: many strangers open Raft RPCs at once and keep their bodies
//! coming slowly, hoping to starve the node. Strangers are refused on their
//! headers; even requests whose headers pass (a known node id and a fresh
//! time, with a signature that cannot be checked until the body is in)
//! only hold Raft RPC slots, never the public API.

use std::time::{Duration, Instant};

use rxchain::demo::node_key;
use rxchain::raft::rpc;

use super::{assert_refused, common, Feed, Raw, ANSWER_WITHIN};

/// Parallel connections per wave: more than the RPC slots.
const WAVE: usize = 3 * rpc::MAX_CONCURRENT_RPCS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_raft_requests_does_not_starve_the_public_api() {
    // 1. A one-node consortium.
    let t = common::start_demo_node().await;
    let addr = t.node.addr;
    let chain_id = t.demo.genesis.chain_id.to_string();
    let height = t.node.chain.tip().height;
    let http = reqwest::Client::new();

    // 2. A wave of headerless requests with endless chunked bodies: every
    //    one is answered 401 missing_auth, body unread.
    let mut strangers = Vec::new();
    for _ in 0..WAVE {
        strangers.push(tokio::spawn(Raw::start(
            addr,
            &format!(
                "POST {} HTTP/1.1\r\ncontent-type: application/json\r\ntransfer-encoding: chunked",
                rpc::PATH_APPEND
            ),
            Feed::EndlessChunked,
        )));
    }
    let mut answers = Vec::new();
    for s in strangers {
        answers.push(tokio::spawn(s.await.expect("connected").answer()));
    }
    for a in answers {
        assert_refused(&a.await.expect("answered"), 401, "missing_auth");
    }

    // 3. A wave whose headers pass the precheck (node 1, now, a well-formed
    //    but wrong signature) and whose bodies trickle in a kilobyte a
    //    second: they take every RPC slot and keep it.
    let now = rxchain::clock::now_ms();
    let stamp = rpc::Stamp {
        to: 1,
        ts_ms: now,
        nonce: rpc::Nonce::random(),
    };
    let forged = rpc::sign(&chain_id, &node_key(99), rpc::PATH_APPEND, &stamp, b"").to_hex();
    let nonce = stamp.nonce.to_hex();
    let mut holders = Vec::new();
    for _ in 0..WAVE {
        holders.push(
            Raw::start(
                addr,
                &format!(
                    "POST {} HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: 1048576\r\n{}: 1\r\n{}: 1\r\n{}: {now}\r\n{}: {nonce}\r\n{}: {forged}",
                    rpc::PATH_APPEND,
                    rpc::HEADER_NODE,
                    rpc::HEADER_TO,
                    rpc::HEADER_TS,
                    rpc::HEADER_NONCE,
                    rpc::HEADER_SIG
                ),
                Feed::Trickle {
                    bytes: 1024 * 1024,
                    every: Duration::from_secs(1),
                },
            )
            .await,
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 4. Meanwhile the public API answers promptly: /healthz, and the chain
    //    head read from committed state.
    let started = Instant::now();
    let health = http
        .get(format!("http://{addr}/healthz"))
        .timeout(ANSWER_WITHIN)
        .send()
        .await
        .expect("healthz answers during the flood");
    assert_eq!(health.status().as_u16(), 200);
    let head: serde_json::Value = http
        .get(format!("http://{addr}/v1/chain/head"))
        .timeout(ANSWER_WITHIN)
        .send()
        .await
        .expect("the chain head answers during the flood")
        .json()
        .await
        .expect("JSON");
    assert_eq!(head["height"].as_u64(), Some(height), "{head}");
    assert!(
        started.elapsed() < ANSWER_WITHIN,
        "the public API took {:?}",
        started.elapsed()
    );

    // 5. A stranger arriving while every slot is held is still refused at
    //    once: the precheck does not wait for a slot.
    let a = Raw::start(
        addr,
        &format!(
            "POST {} HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: 67108864",
            rpc::PATH_VOTE
        ),
        Feed::Nothing,
    )
    .await
    .answer()
    .await;
    assert_refused(&a, 401, "missing_auth");

    // 6. The holders hang up; nothing they sent reached the chain.
    for h in holders {
        h.hang_up();
    }
    assert_eq!(t.node.chain.tip().height, height, "the chain did not move");
    t.node.stop().await;
}
