//! Use cases as plain functions over the node's shared parts.
//!
//! A handler parses its request, calls a function here, and maps the
//! result to a response; nothing here knows about axum. [`Node`] is what
//! every use case may touch; [`submit`] puts a signed transaction on the
//! chain (or finds it there), and [`leader`] finds the Raft leader and
//! talks to it and to the other peers through the node's one HTTP client.

pub mod idempotency;
pub mod leader;
pub mod orders;
pub mod submit;

use std::sync::Arc;

use rxchain_contracts::{Genesis, SecretKey};

use crate::accounts::Accounts;
use crate::config::ApiSettings;
use crate::mempool::Mempool;
use crate::metrics::Metrics;
use crate::raft::nonces::Nonces;
use crate::raft::rpc::Signer;
use crate::raft::Faults;
use crate::store::ChainStore;
use crate::types::Raft;

/// The parts of a running node that use cases share. Built once by
/// `node::start` and shared as `Arc<Node>`.
pub struct Node {
    /// This node's id.
    pub node_id: u64,
    /// The founding document: it names the chain (chain id, genesis hash).
    /// Look organisations, keys, nodes and parameters up in
    /// [`Node::consortium`] instead.
    pub genesis: Arc<Genesis>,
    /// Committed chain and state.
    pub chain: Arc<ChainStore>,
    /// Raft, for leadership, linearizable reads and forwarding.
    pub raft: Raft,
    /// Waiting transactions.
    pub mempool: Arc<Mempool>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Limits and waits.
    pub api: ApiSettings,
    /// The node's one HTTP client to its peers.
    pub peers: leader::Peers,
    /// Staff accounts and sessions, for the web apps' server-side signing.
    pub accounts: Arc<Accounts>,
    /// Test-only partitions (empty unless `testing_faults` is set).
    pub faults: Arc<Faults>,
    /// Refused transactions per signer and client address.
    pub throttle: submit::Throttle,
    /// What was signed for each `Idempotency-Key`, so retries re-offer it.
    pub idempotency: Arc<idempotency::Idempotency>,
    /// The node key, to sign the admin requests this node forwards.
    pub node_key: Arc<SecretKey>,
    /// The nonces of the admin requests this node accepted, per signer,
    /// so none is accepted twice.
    pub admin_nonces: Arc<Nonces<Signer>>,
    /// The issuing hospital's patient e-mail outbox (idle on other nodes).
    pub outbox: Arc<crate::email::Outbox>,
    /// The order identifiers of prescriptions created here through FHIR.
    pub orders: Arc<orders::Orders>,
    /// This node's log of reads of private content.
    pub access_log: Arc<crate::access_log::AccessLog>,
}

impl Node {
    /// The effective consortium after the last committed block: genesis
    /// plus every executed governance decision. Refreshed after each
    /// applied block that changed it.
    pub fn consortium(&self) -> Arc<Genesis> {
        self.chain.consortium()
    }
}
