//! Attack (issue 10, test 3): captured signed requests played again. Three
//! real in-process nodes on port 0: node 1 bootstraps, node 2 joins it (as
//! a voter, through the signed join requests), node 3 runs outside the
//! cluster. An eavesdropper who copied a node's Raft RPC or an operator's
//! cluster admin request byte for byte sends it again, to the same node
//! and to another one: every copy is refused, and the membership changes
//! once.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::raft::VoteRequest;
use openraft::Vote;
use rxchain::demo::{admin_key, node_key, Demo};
use rxchain::http::cluster::{admin_headers, forwarded_headers, Signer, HEADER_ORG};
use rxchain::node::RunningNode;
use rxchain::raft::rpc;
use rxchain::test_support::{demo_settings, wait_for_leader};
use rxchain_contracts::OrgId;
use serde_json::Value;

type Headers = Vec<(&'static str, String)>;

/// Sends `method path` with exactly these headers and body to `addr`, and
/// returns the status and the JSON answer.
async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    addr: std::net::SocketAddr,
    path: &str,
    headers: &Headers,
    body: &[u8],
) -> (u16, Value) {
    let mut req = http
        .request(method, format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let resp = req.send().await.expect("the node answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON answer"))
}

fn code(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["code"].as_str())
}

async fn start(
    dir: &std::path::Path,
    id: u64,
    peers: &[(u64, std::net::SocketAddr)],
) -> RunningNode {
    let mut settings = demo_settings(dir, id, "127.0.0.1:0".parse().unwrap(), None);
    settings.peers = peers
        .iter()
        .map(|(id, addr)| (id.to_string(), addr.to_string()))
        .collect();
    rxchain::node::start(settings).await.expect("node starts")
}

/// Waits until `node` reports exactly `voters` and `learners`, in a
/// completed (uniform, applied) configuration.
async fn wait_membership(node: &RunningNode, voters: &[u64], learners: &[u64]) {
    let (voters, learners): (BTreeSet<u64>, BTreeSet<u64>) = (
        voters.iter().copied().collect(),
        learners.iter().copied().collect(),
    );
    let mut m = node.raft.metrics();
    tokio::time::timeout(
        Duration::from_secs(30),
        m.wait_for(|m| {
            let mem = m.membership_config.membership();
            // Uniform, not joint: the change is complete, so the next one
            // is accepted.
            mem.get_joint_config().len() == 1
                && m.membership_config.log_id() <= &m.last_applied
                && mem.voter_ids().collect::<BTreeSet<_>>() == voters
                && mem.learner_ids().collect::<BTreeSet<_>>() == learners
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("membership did not become voters {voters:?} learners {learners:?}"))
    .expect("raft runs");
}

fn membership(node: &RunningNode) -> (BTreeSet<u64>, BTreeSet<u64>) {
    let m = node.raft.metrics().borrow().clone();
    let mem = m.membership_config.membership();
    (mem.voter_ids().collect(), mem.learner_ids().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_node_and_admin_requests_are_refused() {
    // 1. Three nodes: 1 bootstraps, 2 joins it and becomes a voter, 3 runs
    //    alone outside the cluster (it still serves /raft/* and admin
    //    routes, so it can be sent captured requests).
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::load().expect("demo fixture");
    demo.write_files(dir.path(), &[1, 2, 3])
        .expect("demo files");
    let chain_id = demo.genesis.chain_id.to_string();
    let n1 = start(dir.path(), 1, &[]).await;
    wait_for_leader(&n1).await.expect("node 1 leads");
    let n2 = start(dir.path(), 2, &[(1, n1.addr)]).await;
    let mut settings3 = demo_settings(dir.path(), 3, "127.0.0.1:0".parse().unwrap(), None);
    settings3.bootstrap = false;
    let n3 = rxchain::node::start(settings3)
        .await
        .expect("node 3 starts");
    wait_membership(&n1, &[1, 2], &[]).await;
    let http = reqwest::Client::new();

    // 3a. A captured Raft RPC: a vote request node 2 signed for node 1
    //     (term 0, so it changes nothing when admitted).
    let vote = serde_json::to_vec(&VoteRequest::new(Vote::new(0, 2), None)).expect("encodes");
    let captured = rpc::signed_headers(&chain_id, &node_key(2), 2, 1, rpc::PATH_VOTE, &vote);
    let term_before = n1.raft.metrics().borrow().current_term;
    //     (i) The original reaches Raft and is answered.
    let first = send(
        &http,
        reqwest::Method::POST,
        n1.addr,
        rpc::PATH_VOTE,
        &captured,
        &vote,
    )
    .await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(
        first.1["vote_granted"].as_bool(),
        Some(false),
        "{}",
        first.1
    );
    //     (ii) The same bytes again: 401 replayed_request.
    let again = send(
        &http,
        reqwest::Method::POST,
        n1.addr,
        rpc::PATH_VOTE,
        &captured,
        &vote,
    )
    .await;
    assert_eq!(code(&again), (401, Some("replayed_request")), "{}", again.1);
    //     (iii) The same bytes to node 3: 403 wrong_target.
    let elsewhere = send(
        &http,
        reqwest::Method::POST,
        n3.addr,
        rpc::PATH_VOTE,
        &captured,
        &vote,
    )
    .await;
    assert_eq!(
        code(&elsewhere),
        (403, Some("wrong_target")),
        "{}",
        elsewhere.1
    );
    //     (iv) Raft saw only the original.
    assert_eq!(n1.raft.metrics().borrow().current_term, term_before);

    // 3b. A captured cluster admin request: hosp-north's operator asks the
    //     follower, node 2, to add node 3 as a learner. Node 2 forwards it
    //     to the leader, node 1, re-signed as itself.
    assert_eq!(
        n1.raft.metrics().borrow().current_leader,
        Some(1),
        "node 1 still leads"
    );
    let operator = Signer::Operator(OrgId::parse("hosp-north").expect("org id"));
    let learners = "/v1/cluster/learners";
    let add = serde_json::json!({"id": 3, "addr": n3.addr.to_string()}).to_string();
    let add_signed = admin_headers(
        &chain_id,
        &admin_key("hosp-north"),
        &operator,
        2,
        learners,
        add.as_bytes(),
    );
    let first = send(
        &http,
        reqwest::Method::POST,
        n2.addr,
        learners,
        &add_signed,
        add.as_bytes(),
    )
    .await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first.1["role"].as_str(), Some("learner"), "{}", first.1);
    wait_membership(&n1, &[1, 2], &[3]).await;
    //     (i) The operator asks the leader to remove node 3 again. Node 3
    //     is declared by the consortium, so only governance may remove it:
    //     refused, but the request was authentic, so its nonce is spent.
    let remove = "/v1/cluster/members/3";
    let remove_signed = admin_headers(
        &chain_id,
        &admin_key("hosp-north"),
        &operator,
        1,
        remove,
        b"",
    );
    let removed = send(
        &http,
        reqwest::Method::DELETE,
        n1.addr,
        remove,
        &remove_signed,
        b"",
    )
    .await;
    assert_eq!(
        code(&removed),
        (403, Some("governance_required")),
        "{}",
        removed.1
    );
    wait_membership(&n1, &[1, 2], &[3]).await;
    //     (ii) The captured add, replayed to node 2: 401 replayed_request.
    let again = send(
        &http,
        reqwest::Method::POST,
        n2.addr,
        learners,
        &add_signed,
        add.as_bytes(),
    )
    .await;
    assert_eq!(code(&again), (401, Some("replayed_request")), "{}", again.1);
    //     (iii) Sent straight to the leader, or to node 3: 403 wrong_target.
    for addr in [n1.addr, n3.addr] {
        let elsewhere = send(
            &http,
            reqwest::Method::POST,
            addr,
            learners,
            &add_signed,
            add.as_bytes(),
        )
        .await;
        assert_eq!(
            code(&elsewhere),
            (403, Some("wrong_target")),
            "{}",
            elsewhere.1
        );
    }
    //     (iv) Even node 2 itself cannot push the operator's request through
    //     again: a fresh forward, signed with node 2's key, carries the
    //     original's nonce, which the leader remembers.
    let admitted = rxchain::http::cluster::authenticate(
        &demo.genesis,
        2,
        &rxchain::raft::nonces::Nonces::new(1),
        learners,
        &to_header_map(&add_signed),
        add.as_bytes(),
    )
    .expect("the original verifies for node 2 (a fresh nonce store)");
    let forged_forward = forwarded_headers(
        &chain_id,
        &node_key(2),
        2,
        1,
        &admitted,
        learners,
        add.as_bytes(),
    );
    let forward = send(
        &http,
        reqwest::Method::POST,
        n1.addr,
        learners,
        &forged_forward,
        add.as_bytes(),
    )
    .await;
    assert_eq!(
        code(&forward),
        (401, Some("replayed_request")),
        "{}",
        forward.1
    );
    //     (v) The captured removal, replayed to the leader: refused too.
    let again = send(
        &http,
        reqwest::Method::DELETE,
        n1.addr,
        remove,
        &remove_signed,
        b"",
    )
    .await;
    assert_eq!(code(&again), (401, Some("replayed_request")), "{}", again.1);
    //     (vi) The membership changed once: node 3 is a learner, nothing more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        membership(&n1),
        (BTreeSet::from([1, 2]), BTreeSet::from([3]))
    );
    assert_eq!(
        membership(&n2),
        (BTreeSet::from([1, 2]), BTreeSet::from([3]))
    );

    // 4. An operator request without the org header, a stranger org, and
    //    a signature for another org are still refused as before.
    let mut stranger = admin_headers(
        &chain_id,
        &admin_key("hosp-north"),
        &operator,
        1,
        remove,
        b"",
    );
    for (name, value) in stranger.iter_mut() {
        if *name == HEADER_ORG {
            *value = "no-such-org".into();
        }
    }
    let refused = send(
        &http,
        reqwest::Method::DELETE,
        n1.addr,
        remove,
        &stranger,
        b"",
    )
    .await;
    assert_eq!(code(&refused), (403, Some("unknown_org")), "{}", refused.1);

    n3.stop().await;
    n2.stop().await;
    n1.stop().await;
}

fn to_header_map(headers: &Headers) -> axum::http::HeaderMap {
    let mut map = axum::http::HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, value.parse().expect("a header value"));
    }
    map
}
