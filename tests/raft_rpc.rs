//! Real Raft over real HTTP: nodes on 127.0.0.1 port 0 with sled storage in
//! temporary directories, blocks submitted through `client_write`, and the
//! RPC endpoints probed with unsigned, stranger-signed, stale and
//! misattributed requests.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::genesis::{org, synthetic_genesis, test_key as sk};
use openraft::error::RPCError;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{VoteRequest, VoteResponse};
use openraft::{BasicNode, Config, SnapshotPolicy, Vote};
use rxchain::raft::network::Network;
use rxchain::raft::peers::Peers;
use rxchain::raft::{rpc, Raft, RaftRequest};
use rxchain::store::{self, ApplyObserver, ChainStore};
use rxchain_contracts::block::{propose, Block};
use rxchain_contracts::cert::{CertVote, ClockProof, QuorumCert};
use rxchain_contracts::genesis::OrgKind;
use rxchain_contracts::tx::{RegisterStaff, Role, Transaction, TxBody};
use rxchain_contracts::{Genesis, Label, OrgId, SecretKey, Timestamp, TxId, VerifiedTx};
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;

mod common;

const WAIT: Option<Duration> = Some(Duration::from_secs(20));

fn genesis() -> Genesis {
    synthetic_genesis(
        "rx-raft",
        Timestamp(1_700_000_000_000),
        &[
            org("hosp-a", OrgKind::Hospital, &[1]),
            org("pharm-b", OrgKind::Pharmacy, &[2]),
            org("regulator", OrgKind::Regulator, &[]),
        ],
    )
}

/// Stores the quorum certificate of block `height`: the votes of nodes 1
/// and 2, the declared nodes.
fn certify(g: &Genesis, chain: &ChainStore, height: u64) {
    let b = chain
        .block(height)
        .expect("reads")
        .expect("the block exists");
    let hash = b.hash(g.chain_id.as_str());
    let votes = [1u64, 2]
        .iter()
        .map(|&n| CertVote::sign(g.chain_id.as_str(), n, &sk(&format!("node-{n}")), &hash))
        .collect();
    chain
        .put_cert(&QuorumCert {
            height,
            block_hash: hash,
            votes,
        })
        .expect("certificate stored");
}

/// Logs to the test output only when asked with `RUST_LOG`.
fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        // Fails only when another test in this binary already installed it.
        if tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init()
            .is_err()
        {
            tracing::debug!("test logging already initialised");
        }
    }
}

/// Records the heights it is told about, like a mempool waiting for receipts.
#[derive(Default)]
struct Recorder(Mutex<Vec<u64>>);

impl Recorder {
    fn heights(&self) -> Vec<u64> {
        self.0.lock().expect("recorder lock").clone()
    }
}

impl ApplyObserver for Recorder {
    fn known(&self, _id: &TxId) -> Option<VerifiedTx> {
        None
    }
    fn applied(&self, block: &Block) {
        self.0
            .lock()
            .expect("recorder lock")
            .push(block.header.height);
    }
}

struct Node {
    raft: Raft,
    chain: Arc<ChainStore>,
    addr: SocketAddr,
    observer: Arc<Recorder>,
    server: JoinHandle<()>,
    _dir: TempDir,
}

impl Node {
    async fn start(id: u64, g: &Arc<Genesis>, config: Config) -> Node {
        init_logs();
        let dir = TempDir::new().expect("temp dir");
        let observer = Arc::new(Recorder::default());
        let storage = store::open(dir.path(), g.clone(), observer.clone()).expect("storage opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let network = Network::new(
            g.chain_id.to_string(),
            id,
            Arc::new(sk(&format!("node-{id}"))),
            &Peers::new().unwrap(),
        );
        let raft = rxchain::node::start_raft(id, config, &storage, network)
            .await
            .expect("raft starts");
        let app = rpc::router(raft.clone(), g.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("server failed: {e}");
            }
        });
        Node {
            raft,
            chain: storage.chain.clone(),
            addr,
            observer,
            server,
            _dir: dir,
        }
    }

    fn basic(&self) -> BasicNode {
        BasicNode {
            addr: self.addr.to_string(),
        }
    }

    async fn stop(self) {
        self.raft.shutdown().await.expect("raft stops");
        self.server.abort();
    }
}

fn config() -> Config {
    Config {
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        install_snapshot_timeout: 5_000,
        ..Default::default()
    }
}

/// Proposes a block on node `chain`'s tip that registers one new staff key.
fn next_block(chain: &ChainStore, n: u64) -> Block {
    let g = chain.genesis();
    let tx = Transaction {
        signer: sk("hosp-a-admin").public(),
        nonce: n,
        created_at: Timestamp(1_700_000_000_000 + n),
        body: TxBody::RegisterStaff(RegisterStaff {
            org: OrgId::parse("hosp-a").expect("valid org id"),
            key: sk(&format!("doctor-{n}")).public(),
            role: Role::Practitioner,
            licence: Label::parse("LIC-1").expect("valid label"),
            name: Label::parse("Dr Test").expect("valid label"),
        }),
    }
    .sign(g.chain_id.as_str(), &sk("hosp-a-admin"))
    .verify(g.chain_id.as_str())
    .expect("verifies");
    let tip = chain.tip();
    let now = Timestamp(tip.timestamp.0 + 1_000);
    let clock = ClockProof::attested_by_all(g, tip.height, now, |n| sk(&format!("node-{n}")));
    propose(
        g,
        &chain.state(),
        &tip,
        vec![tx],
        clock,
        now,
        1,
        &sk("node-1"),
    )
    .expect("state decodes")
    .0
}

/// A vote request from candidate `node` in `term`, typed as the nodes
/// decode it. openraft's `Vote` is generic over the node id type and every
/// integer type is a `NodeId`, so an untyped literal (`Vote::new(0, 1)`)
/// makes a `Vote<i32>`: the same in JSON, but postcard writes signed
/// integers zigzag-encoded, so a node decoding `Vote<u64>` reads node 2
/// for 1 (and would wrongly take it from node 2). Always `u64`.
fn vote_req(term: u64, node: u64) -> VoteRequest<u64> {
    VoteRequest::new(Vote::<u64>::new(term, node), None)
}

/// Posts a postcard body signed by `node` with `key` (addressed to node 1)
/// and returns the status, the answer's content type and its bytes.
async fn post_postcard(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    node: u64,
    key: &SecretKey,
) -> (u16, String, Vec<u8>) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", rpc::POSTCARD)
        .body(body.to_vec());
    for (name, value) in rpc::signed_headers("rx-raft", key, node, 1, path, body) {
        req = req.header(name, value);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, resp.bytes().await.expect("a body").to_vec())
}

/// Posts raw bytes with optional auth headers and returns status and JSON body.
async fn post(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    auth: Option<(u64, u64, &SecretKey)>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some((node, ts, key)) = auth {
        // Addressed to node 1, the node under test, with a fresh nonce.
        let stamp = rpc::Stamp {
            to: 1,
            ts_ms: ts,
            nonce: rpc::Nonce::random(),
        };
        let sig = rpc::sign("rx-raft", key, path, &stamp, body);
        req = req.header(rpc::HEADER_NODE, node.to_string());
        for (name, value) in stamp.headers() {
            req = req.header(name, value);
        }
        req = req.header(rpc::HEADER_SIG, sig.to_hex());
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let json = resp.json().await.expect("a JSON body");
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_orders_blocks_and_refuses_unauthenticated_rpcs() {
    let g = Arc::new(genesis());

    // 1. Start node 1 and make it a one-node cluster.
    let node = Node::start(1, &g, config()).await;
    node.raft
        .initialize(BTreeMap::from([(1, node.basic())]))
        .await
        .expect("initialises");
    node.raft
        .wait(WAIT)
        .current_leader(1, "node 1 leads")
        .await
        .expect("a leader");

    // 2. A block submitted through Raft is applied and reported.
    let b1 = next_block(&node.chain, 1);
    let resp = node
        .raft
        .client_write(RaftRequest::Block(b1.clone()))
        .await
        .expect("written");
    assert_eq!(resp.data.height, Some(1));
    assert_eq!(resp.data.rejected, None);
    assert_eq!(node.chain.tip().height, 1);
    assert!(node
        .chain
        .staff(&sk("doctor-1").public())
        .expect("read")
        .is_some());
    assert_eq!(node.observer.heights(), vec![1]);

    // 3. The same block again is stale: skipped, explained, nothing written.
    let resp = node
        .raft
        .client_write(RaftRequest::Block(b1))
        .await
        .expect("written");
    assert_eq!(resp.data.height, None);
    assert!(
        resp.data
            .rejected
            .as_deref()
            .is_some_and(|r| r.contains("height")),
        "{:?}",
        resp.data.rejected
    );
    assert_eq!(node.chain.tip().height, 1);
    assert_eq!(node.observer.heights(), vec![1]);

    let vote = serde_json::to_vec(&vote_req(0, 2)).expect("encodes");
    let now = rxchain::clock::now_ms();
    let term_before = node.raft.metrics().borrow().current_term;

    // 4. Unsigned: 401.
    let (status, body) = post(node.addr, rpc::PATH_VOTE, &vote, None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("missing_auth")));
    // 5. A stranger node id: 403.
    let (status, body) = post(
        node.addr,
        rpc::PATH_VOTE,
        &vote,
        Some((99, now, &sk("stranger"))),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("unknown_node")));
    // 6. A genesis node id signed with a stranger's key: 401.
    let (status, body) = post(
        node.addr,
        rpc::PATH_VOTE,
        &vote,
        Some((2, now, &sk("stranger"))),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("bad_signature"))
    );
    // 7. The right key, but a signature over another path: 401.
    let wrong_path = rpc::signed_headers("rx-raft", &sk("node-2"), 2, 1, rpc::PATH_APPEND, &vote);
    let mut req = reqwest::Client::new().post(format!("http://{}{}", node.addr, rpc::PATH_VOTE));
    for (name, value) in wrong_path {
        req = req.header(name, value);
    }
    let resp = req.body(vote.clone()).send().await.expect("sent");
    assert_eq!(resp.status().as_u16(), 401);
    // 8. The right key, two minutes late: 401.
    let (status, body) = post(
        node.addr,
        rpc::PATH_VOTE,
        &vote,
        Some((2, now - 120_000, &sk("node-2"))),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("stale_request"))
    );
    // 9. Node 2 speaking for node 1: 403.
    let for_node_1 = serde_json::to_vec(&vote_req(0, 1)).expect("encodes");
    let (status, body) = post(
        node.addr,
        rpc::PATH_VOTE,
        &for_node_1,
        Some((2, now, &sk("node-2"))),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("sender_mismatch"))
    );
    // 9b. The same in postcard, the encoding nodes send each other: the
    //     decoded vote names node 1, exactly as encoded, so still 403.
    let vote_for_1 = vote_req(0, 1);
    let bytes = postcard::to_allocvec(&vote_for_1).expect("encodes");
    let decoded: VoteRequest<u64> = rpc::Wire::Postcard.decode(&bytes).expect("decodes");
    assert_eq!(decoded.vote, vote_for_1.vote, "postcard keeps the vote");
    assert_eq!(decoded.vote.leader_id().voted_for(), Some(1));
    // What broke an earlier attempt: an untyped vote is a `Vote<i32>`,
    // whose node id postcard zigzag-encodes (1 as 2, the sender here).
    let untyped = postcard::to_allocvec(&VoteRequest::new(Vote::new(0, 1i32), None)).unwrap();
    let misread: VoteRequest<u64> = rpc::Wire::Postcard.decode(&untyped).expect("decodes");
    assert_eq!(misread.vote.leader_id().voted_for(), Some(2));
    let (status, _, body) =
        post_postcard(node.addr, rpc::PATH_VOTE, &bytes, 2, &sk("node-2")).await;
    let body: Value = serde_json::from_slice(&body).expect("failures are JSON");
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("sender_mismatch"))
    );
    // 9c. A postcard body with trailing bytes has no one meaning: 400.
    let mut padded = postcard::to_allocvec(&vote_req(0, 2)).unwrap();
    padded.push(0);
    let (status, _, body) =
        post_postcard(node.addr, rpc::PATH_VOTE, &padded, 2, &sk("node-2")).await;
    let body: Value = serde_json::from_slice(&body).expect("failures are JSON");
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_body")));
    // 10. Signed garbage: 400, after authentication.
    let (status, body) = post(
        node.addr,
        rpc::PATH_APPEND,
        b"{}",
        Some((2, now, &sk("node-2"))),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_body")));
    assert_eq!(
        node.raft.metrics().borrow().current_term,
        term_before,
        "nothing refused reached raft"
    );

    // 11. A correctly signed vote from node 2 reaches Raft and is answered.
    let (status, body) = post(
        node.addr,
        rpc::PATH_VOTE,
        &vote,
        Some((2, rxchain::clock::now_ms(), &sk("node-2"))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: VoteResponse<u64> = serde_json::from_value(body).expect("a vote response");
    assert!(!answer.vote_granted, "a stale vote is not granted");
    // 11b. In postcard it is answered in postcard.
    let bytes = postcard::to_allocvec(&vote_req(0, 2)).unwrap();
    let (status, ct, body) =
        post_postcard(node.addr, rpc::PATH_VOTE, &bytes, 2, &sk("node-2")).await;
    assert_eq!(
        (status, ct.as_str()),
        (200, rpc::POSTCARD),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let answer: VoteResponse<u64> = postcard::from_bytes(&body).expect("a postcard vote response");
    assert!(!answer.vote_granted, "a stale vote is not granted");

    // 12. The same through the network client; an impostor client is told
    //     the peer is unreachable, and so is a closed port.
    let option = RPCOption::new(Duration::from_secs(5));
    let mut net = Network::new(
        "rx-raft".into(),
        2,
        Arc::new(sk("node-2")),
        &Peers::new().unwrap(),
    );
    let mut client = net.new_client(1, &node.basic()).await;
    let answer = client
        .vote(vote_req(0, 2), option.clone())
        .await
        .expect("answered");
    assert!(!answer.vote_granted);
    let mut impostor = Network::new(
        "rx-raft".into(),
        2,
        Arc::new(sk("stranger")),
        &Peers::new().unwrap(),
    );
    let mut client = impostor.new_client(1, &node.basic()).await;
    let err = client
        .vote(vote_req(0, 2), option.clone())
        .await
        .expect_err("refused");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let mut client = net
        .new_client(
            3,
            &BasicNode {
                addr: closed.to_string(),
            },
        )
        .await;
    let err = client
        .vote(vote_req(0, 2), option)
        .await
        .expect_err("no one listens");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err}");

    // 13. The leader was not disturbed: it still orders blocks.
    let b2 = next_block(&node.chain, 2);
    let resp = node
        .raft
        .client_write(RaftRequest::Block(b2))
        .await
        .expect("written");
    assert_eq!(resp.data.height, Some(2));
    assert_eq!(node.observer.heights(), vec![1, 2]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_catches_up_from_a_snapshot_over_signed_http() {
    let g = Arc::new(genesis());
    // Snapshot every three entries, keep no log behind it, and send it in
    // small chunks, so the new node can only catch up by snapshot.
    let config = Config {
        snapshot_policy: SnapshotPolicy::LogsSinceLast(3),
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        snapshot_max_chunk_size: 2048,
        ..config()
    };

    // 1. Node 1 alone writes five blocks, snapshots and purges its log.
    let n1 = Node::start(1, &g, config.clone()).await;
    n1.raft
        .initialize(BTreeMap::from([(1, n1.basic())]))
        .await
        .expect("initialises");
    n1.raft
        .wait(WAIT)
        .current_leader(1, "node 1 leads")
        .await
        .expect("a leader");
    let mut last = None;
    for n in 1..=5 {
        let b = next_block(&n1.chain, n);
        let resp = n1
            .raft
            .client_write(RaftRequest::Block(b))
            .await
            .expect("written");
        assert_eq!(resp.data.height, Some(n));
        last = Some(resp.log_id);
        // No quorum task runs here: certify each block as both declared
        // nodes' votes would, for a receiver refuses an uncertified tip.
        certify(&g, &n1.chain, n);
    }
    n1.raft
        .wait(WAIT)
        .metrics(
            |m| m.snapshot.is_some() && m.purged.is_some(),
            "snapshot built and log purged",
        )
        .await
        .expect("snapshot and purge");

    // 2. Node 2 joins as a learner and receives the chain as a snapshot.
    let n2 = Node::start(2, &g, config).await;
    n1.raft
        .add_learner(2, n2.basic(), true)
        .await
        .expect("learner added");
    n2.raft
        .wait(WAIT)
        .metrics(|m| m.last_applied >= last, "node 2 caught up")
        .await
        .expect("caught up");
    assert!(
        n2.raft.metrics().borrow().snapshot.is_some(),
        "node 2 installed a snapshot"
    );
    assert_eq!(n2.chain.tip(), n1.chain.tip());
    let blocks = |c: &ChainStore| {
        c.blocks(1)
            .collect::<Result<Vec<_>, _>>()
            .expect("blocks read")
    };
    assert_eq!(
        blocks(&n2.chain),
        blocks(&n1.chain),
        "node 2 holds the complete chain"
    );
    assert_eq!(
        n2.chain.try_state_digest().expect("reads"),
        n1.chain.try_state_digest().expect("reads")
    );
    let mut seen = n2.observer.heights();
    seen.sort_unstable();
    assert_eq!(
        seen,
        vec![1, 2, 3, 4, 5],
        "the mempool hears about snapshot blocks"
    );

    // 3. Node 2 becomes a voter; the next block reaches both nodes.
    n1.raft
        .change_membership(BTreeSet::from([1, 2]), false)
        .await
        .expect("membership changed");
    let b6 = next_block(&n1.chain, 6);
    let resp = n1
        .raft
        .client_write(RaftRequest::Block(b6))
        .await
        .expect("written");
    assert_eq!(resp.data.height, Some(6));
    let last = Some(resp.log_id);
    n2.raft
        .wait(WAIT)
        .metrics(|m| m.last_applied >= last, "node 2 applied block 6")
        .await
        .expect("applied");
    assert_eq!(n2.chain.tip(), n1.chain.tip());
    assert_eq!(
        n2.chain.try_state_digest().expect("reads"),
        n1.chain.try_state_digest().expect("reads")
    );

    n2.stop().await;
    n1.stop().await;
}
