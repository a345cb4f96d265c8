//! Assembling and running one node: storage, Raft, mempool, block
//! producer and the HTTP server (HTTPS and mutual TLS between nodes when
//! `[tls]` is set, see [`serve`]), with explicit shutdown; and the loop by
//! which a new node joins a running consortium ([`join`]).

mod anchor;
mod erase;
mod join;
mod reconcile;
pub mod serve;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use openraft::BasicNode;
use rxchain_contracts::{Genesis, SecretKey};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::accounts::Accounts;
use crate::config::Settings;
use crate::http::AppState;
use crate::mempool::{Capacity, Mempool};
use crate::metrics::Metrics;
use crate::producer::Producer;
use crate::raft::network::Network;
use crate::raft::peers::Peers;
use crate::raft::{rpc, RaftStartError, MAX_SNAPSHOT_CHUNK};
use crate::service::Node;
use crate::store::{self, ChainStore};
use crate::types::Raft;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The genesis file could not be read or is invalid.
    #[error("genesis {path}: {message}")]
    Genesis {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The node key file is unusable.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyFileError),
    /// The key or id does not match genesis.
    #[error("node {0} is not declared in genesis with this node key")]
    NotInGenesis(u64),
    /// Storage failed to open.
    #[error("storage: {0}")]
    Store(#[from] store::StoreError),
    /// The access log could not be opened.
    #[error("the access log")]
    AccessLog(#[source] crate::access_log::AccessLogError),
    /// The e-mail outbox could not be opened.
    #[error("the e-mail outbox")]
    Email(#[from] crate::email::EmailError),
    /// The data key file holds a key that is not the organisation's data key in genesis.
    #[error("the data key file does not hold the data key genesis declares for {0}")]
    DataKeyMismatch(String),
    /// Raft failed to start.
    #[error("raft: {0}")]
    Raft(String),
    /// The TLS certificate or key could not be loaded.
    #[error("[tls]: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The TLS certificate holds another key than the consortium declares for this node.
    #[error("the [tls] certificate's key hash is {found}, but the consortium (genesis and its governance decisions) declares {declared} for node {node}")]
    TlsNotInGenesis {
        /// This node.
        node: u64,
        /// The hash genesis declares.
        declared: String,
        /// The hash of the configured certificate's key.
        found: String,
    },
    /// The `addr_file` could not be written.
    #[error("cannot write the bound address to {path}: {source}")]
    AddrFile {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Plain HTTP on a non-loopback address without `insecure_plaintext`.
    #[error("refusing to serve plain HTTP on {0}: configure [tls] (cert_file, key_file), listen on a loopback address, or set insecure_plaintext = true to accept that anyone on the network can read and forge the traffic")]
    PlaintextRefused(SocketAddr),
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Reads and validates a genesis file.
pub fn read_genesis(path: &std::path::Path) -> Result<Genesis, NodeError> {
    let err = |message: String| NodeError::Genesis {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let g: Genesis = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    g.validate().map_err(|e| err(e.to_string()))?;
    Ok(g)
}

/// A running node.
pub struct RunningNode {
    /// The bound HTTP address (the real port when configured with port 0).
    pub addr: SocketAddr,
    /// Raft handle.
    pub raft: Raft,
    /// Committed chain.
    pub chain: Arc<ChainStore>,
    /// Staff accounts, sessions and the data keys this node holds.
    pub accounts: Arc<Accounts>,
    /// What the use cases share, so in-process callers (the demo) submit
    /// through [`crate::service::submit`] like the HTTP handlers.
    pub service: Arc<Node>,
    /// Flip to true to stop the node.
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningNode {
    /// Stops the HTTP server, the producer and Raft, and waits for them.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::warn!(error = %e, "a node task ended abnormally");
            }
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }
}

/// The openraft configuration from settings.
pub fn raft_config(s: &crate::config::RaftSettings) -> openraft::Config {
    openraft::Config {
        cluster_name: "rxchain".into(),
        heartbeat_interval: s.heartbeat_ms,
        election_timeout_min: s.election_min_ms,
        election_timeout_max: s.election_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(s.snapshot_after_logs),
        max_in_snapshot_log_to_keep: s.keep_logs,
        max_payload_entries: s.max_payload_entries.max(1),
        // Installing a snapshot carries the whole chain (blocks stay complete
        // on every node), so it needs far longer than openraft's 200 ms default.
        install_snapshot_timeout: 10_000,
        ..Default::default()
    }
}

/// Makes a node that was leader when it stopped start as a follower.
///
/// openraft 0.9 restores a node whose stored vote is committed for itself
/// straight back to leader in the same term. Entries it had sent to
/// followers but not flushed itself before a crash are then gone from its
/// log, and it would hand out the same log ids (same term, same index) for
/// different blocks: followers treat equal ids as equal entries, so chains
/// could fork; in the cluster tests it instead stalled replication for good.
/// Storing the same vote uncommitted keeps the term and whom this node voted
/// for (all Raft's safety needs) but makes it a follower, so leadership comes
/// from a fresh election in a higher term.
async fn demote_restored_leadership(
    storage: &store::Storage,
    node_id: u64,
) -> Result<(), NodeError> {
    use openraft::storage::RaftLogStorage;
    let mut log = storage.log.clone();
    let vote = log
        .read_vote()
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    if let Some(v) = vote {
        if v.is_committed() && v.leader_id().voted_for() == Some(node_id) {
            tracing::info!(
                term = v.leader_id().term,
                "was leader when stopped; restarting as a follower"
            );
            log.save_vote(&openraft::Vote::new(v.leader_id().term, node_id))
                .await
                .map_err(|e| NodeError::Raft(e.to_string()))?;
        }
    }
    Ok(())
}

/// Starts this node's Raft over the opened storage.
#[tracing::instrument(skip(config, storage, network))]
pub async fn start_raft(
    node_id: u64,
    config: openraft::Config,
    storage: &crate::store::Storage,
    network: Network,
) -> Result<Raft, RaftStartError> {
    if storage.chain.consortium().node(node_id).is_none() {
        return Err(RaftStartError::UnknownNode(node_id));
    }
    start_raft_declared_or_joining(node_id, config, storage, network).await
}

/// [`start_raft`] without the declaration check, for a node that governance
/// has declared but whose store has not seen that decision yet.
async fn start_raft_declared_or_joining(
    node_id: u64,
    config: openraft::Config,
    storage: &crate::store::Storage,
    network: Network,
) -> Result<Raft, RaftStartError> {
    if config.snapshot_max_chunk_size > MAX_SNAPSHOT_CHUNK {
        return Err(RaftStartError::ChunkTooLarge {
            chunk: config.snapshot_max_chunk_size,
            max: MAX_SNAPSHOT_CHUNK,
        });
    }
    if config.install_snapshot_timeout < 2_000 {
        // The last chunk's timeout also covers installing the whole chain on
        // the follower; openraft's 200 ms default is too short for a chain
        // of any size, and a snapshot that always times out never lands.
        tracing::warn!(
            install_snapshot_timeout_ms = config.install_snapshot_timeout,
            "install_snapshot_timeout is short for sending a whole chain; consider several seconds"
        );
    }
    let config = Arc::new(config.validate()?);
    let raft = Raft::new(
        node_id,
        config,
        network,
        storage.log.clone(),
        storage.sm.clone(),
    )
    .await?;
    tracing::info!("raft started");
    Ok(raft)
}

/// Writes the bound address into `file` whole: written beside it, then
/// renamed, so a reader never sees half an address.
fn write_addr_file(file: &std::path::Path, addr: SocketAddr) -> Result<(), NodeError> {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{addr}\n"))
        .and_then(|()| std::fs::rename(&tmp, file))
        .map_err(|source| NodeError::AddrFile {
            path: file.to_path_buf(),
            source,
        })
}

/// Starts a node and returns once it is serving.
pub async fn start(settings: Settings) -> Result<RunningNode, NodeError> {
    crate::tls::install_default_provider();
    let genesis = Arc::new(read_genesis(&settings.genesis)?);
    let node_key: SecretKey = crate::keys::read(&settings.node_key_file)?;
    // The TLS identity is loaded (and a bad file refused) before anything
    // else; whether its key is this node's declared one is checked against
    // the consortium the store knows, below.
    let identity = match &settings.tls {
        Some(t) => Some(crate::tls::TlsIdentity::load(&t.cert_file, &t.key_file)?),
        None if serve::plaintext_allowed(settings.listen, settings.insecure_plaintext) => None,
        None => return Err(NodeError::PlaintextRefused(settings.listen)),
    };
    if identity.is_none() && !settings.listen.ip().is_loopback() {
        tracing::warn!(listen = %settings.listen, "insecure_plaintext is on: serving plain HTTP on a network address");
    }
    let node_key = Arc::new(node_key);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| NodeError::Bind {
            addr: settings.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| NodeError::Bind {
        addr: settings.listen,
        source,
    })?;
    let advertised = settings.advertised(addr);
    if let Some(file) = &settings.addr_file {
        write_addr_file(file, addr)?;
    }

    let chain_id = genesis.chain_id.to_string();
    let mempool = Mempool::new(
        chain_id.clone(),
        Capacity {
            txs: settings.api.mempool_max_txs,
            bytes: settings.api.mempool_max_bytes,
        },
    );
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| store::StoreError::from(e))?;
    let storage = store::open_with_cache(
        &settings.data_dir,
        genesis.clone(),
        mempool.clone(),
        settings.storage.cache_mb.max(1).saturating_mul(1024 * 1024),
    )?;
    // The node must be declared in the consortium its store knows: genesis
    // plus the governance decisions applied so far. A node added by a
    // decision after genesis starts from an empty store, so it is not
    // declared there yet: it may still start to join through its peers,
    // which check it against the decision they applied.
    let joining = !settings.bootstrap && !settings.peers.is_empty();
    let declared = match storage.chain.consortium().node(settings.node_id) {
        Some((_, decl)) if decl.key == node_key.public() => true,
        None if joining && storage.chain.tip().height == 0 => {
            tracing::warn!(
                node_id = settings.node_id,
                "this node is not declared in genesis; joining in the hope that a governance decision declares it"
            );
            false
        }
        _ => return Err(NodeError::NotInGenesis(settings.node_id)),
    };
    // TLS pins come from the live consortium (see ARCHITECTURE.md,
    // "Transport"): genesis plus the governance decisions applied, read
    // again at every handshake, so nodes added or re-keyed later are
    // trusted from the block that decides it.
    let view = storage.chain.consortium_view();
    let nodes = crate::tls::Directory::new(move || view.get());
    if let (Some(identity), Some((_, decl))) =
        (&identity, storage.chain.consortium().node(settings.node_id))
    {
        if decl.tls != identity.hash() {
            return Err(NodeError::TlsNotInGenesis {
                node: settings.node_id,
                declared: decl.tls.to_hex(),
                found: identity.hash().to_hex(),
            });
        }
    }
    let tls = match identity {
        Some(identity) => {
            let config = crate::tls::server_config(&identity, nodes.clone())?;
            Some((identity, config))
        }
        None => None,
    };
    // The account store shares the node's database; its keys derive from the node key.
    let accounts = Arc::new(Accounts::open(&storage.db, &node_key)?);
    // So are the idempotency records; their sealing key derives from it too.
    let idempotency = Arc::new(crate::service::idempotency::Idempotency::open(
        &storage.db,
        &node_key,
    )?);
    accounts.end_sessions_on_revocation(&storage.chain);
    if let Some(path) = &settings.data_key_file {
        let key = crate::keys::read(path)?;
        match storage.chain.consortium().node(settings.node_id) {
            Some((org, _)) if org.data_key != key.public() => {
                return Err(NodeError::DataKeyMismatch(org.id.to_string()))
            }
            Some((org, _)) => accounts.add_data_key(org.id.clone(), key),
            // Not declared yet: its organisation, and so the data key it
            // must match, is unknown until the decision is applied.
            None => tracing::warn!("the data key is not used until this node is declared"),
        }
    }
    // The e-mail outbox observes every applied block from the start, so
    // it must be installed before Raft replays or applies anything.
    let consortium = storage.chain.consortium();
    let mine = consortium.node(settings.node_id);
    let my_org = mine.map(|(org, _)| org.id.clone());
    // Addresses sealed in issues signed outside this node's web app are
    // opened with the data key by one node per organisation only (its
    // lowest declared id), so a hospital with two nodes mails once.
    let first_of_org =
        mine.is_some_and(|(org, _)| org.nodes.iter().map(|n| n.id).min() == Some(settings.node_id));
    let data_key = my_org
        .as_ref()
        .filter(|_| first_of_org)
        .and_then(|o| accounts.data_key(o));
    let outbox = crate::email::Outbox::open(
        &storage.db,
        my_org,
        data_key,
        settings.email.clone(),
        &settings.data_dir,
    )?;
    storage.chain.set_apply_observer(outbox.clone());
    let faults = crate::raft::Faults::with_snapshot_switch(
        settings.testing_faults,
        storage.sm.snapshot_tamper_switch(),
    );
    if settings.testing_faults {
        tracing::warn!("testing_faults is on: anyone who reaches this node can cut it off from its peers; never use this in production");
    }
    let peers = match &tls {
        Some((identity, _)) => Peers::with_tls(nodes.clone(), identity.clone()),
        None => Peers::new()
            .map_err(|e| NodeError::Raft(format!("cannot build the peer HTTP client: {e}")))?,
    };
    let metrics = Arc::new(Metrics::new());
    mempool.count_commits(settings.node_id, metrics.clone());
    let network = Network::new(chain_id, settings.node_id, node_key.clone(), &peers)
        .with_faults(faults.clone())
        .with_metrics(metrics.clone())
        .with_append_timeout(std::time::Duration::from_millis(
            settings.raft.append_timeout_ms.max(1),
        ));
    demote_restored_leadership(&storage, settings.node_id).await?;
    let config = raft_config(&settings.raft);
    let raft = if declared {
        start_raft(settings.node_id, config, &storage, network).await
    } else {
        start_raft_declared_or_joining(settings.node_id, config, &storage, network).await
    }
    .map_err(|e| NodeError::Raft(e.to_string()))?;
    if settings.bootstrap {
        let mut members = BTreeMap::new();
        members.insert(
            settings.node_id,
            BasicNode {
                addr: advertised.clone(),
            },
        );
        match raft.initialize(members).await {
            Ok(()) => tracing::info!("initialised a new cluster"),
            // Already initialised on an earlier run: recovery is openraft's job.
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) => {}
            Err(e) => return Err(NodeError::Raft(e.to_string())),
        }
    }

    let access_log = Arc::new(
        crate::access_log::AccessLog::open(&storage.db, settings.node_id)
            .map_err(NodeError::AccessLog)?,
    );
    let (shutdown, shutdown_rx) = watch::channel(false);
    let chain = storage.chain.clone();
    let state = AppState(Arc::new(Node {
        node_id: settings.node_id,
        genesis: genesis.clone(),
        chain: chain.clone(),
        raft: raft.clone(),
        mempool: mempool.clone(),
        metrics: metrics.clone(),
        api: settings.api.clone(),
        peers: peers.clone(),
        throttle: crate::service::submit::Throttle::new(
            settings.api.refusals_per_signer,
            settings.api.refusals_per_address,
        ),
        accounts: accounts.clone(),
        faults: faults.clone(),
        idempotency,
        node_key: node_key.clone(),
        admin_nonces: Arc::new(crate::raft::nonces::Nonces::new(rpc::NONCE_CAP_PER_SIGNER)),
        outbox: outbox.clone(),
        orders: Arc::new(crate::service::orders::Orders::open(&storage.db)?),
        access_log,
    }));
    let service = state.0.clone();
    let app = crate::http::router(state, settings.web_dir.as_deref()).merge(rpc::router_with(
        raft.clone(),
        chain.consortium_view(),
        faults,
        Arc::new(crate::raft::snapshot::SnapshotReceiver::new(
            genesis.clone(),
            metrics.snapshots_refused.clone(),
        )),
    ));

    let clock_offset = if settings.testing_faults {
        settings.testing_clock_offset_ms
    } else {
        if settings.testing_clock_offset_ms != 0 {
            tracing::warn!("testing_clock_offset_ms is ignored without testing_faults");
        }
        0
    };
    let quorum = crate::quorum::Quorum::new(
        settings.node_id,
        node_key.clone(),
        chain.clone(),
        crate::clock::ChainClock::with_offset(clock_offset),
        raft.clone(),
        &peers,
    );
    let app = app.merge(crate::http::quorum::router(
        quorum.clone(),
        service.faults.clone(),
    ));
    let node_key_for_join = node_key.clone();
    let producer = Producer {
        node_id: settings.node_id,
        node_key,
        raft: raft.clone(),
        chain: chain.clone(),
        mempool,
        settings: settings.block.clone(),
        metrics: metrics.clone(),
        quorum: quorum.clone(),
    };
    let sweeper = erase::Sweeper {
        db: storage.db.clone(),
        chain: chain.clone(),
        log: storage.log.clone(),
        raft: raft.clone(),
        clock: crate::clock::ChainClock::with_offset(clock_offset),
        every: std::time::Duration::from_secs(settings.erasure_sweep_secs.max(1)),
        metrics: metrics.clone(),
    };
    let mut tasks = vec![
        tokio::spawn(erase::run(sweeper, shutdown_rx.clone())),
        tokio::spawn(anchor::run(service.clone(), shutdown_rx.clone())),
        tokio::spawn(crate::producer::fail_waiters_on_lost_leadership(
            raft.clone(),
            settings.node_id,
            producer.mempool.clone(),
            shutdown_rx.clone(),
        )),
        tokio::spawn(producer.run(shutdown_rx.clone())),
        tokio::spawn(crate::email::sender::run(
            outbox.clone(),
            chain.clone(),
            metrics.clone(),
            shutdown_rx.clone(),
        )),
        tokio::spawn(reconcile::run(
            raft.clone(),
            settings.node_id,
            chain.consortium_view(),
            shutdown_rx.clone(),
        )),
        tokio::spawn(crate::quorum::vote_on_apply(
            quorum.clone(),
            shutdown_rx.clone(),
        )),
        tokio::spawn(crate::quorum::poll_clocks(quorum, shutdown_rx.clone())),
    ];
    if !settings.bootstrap && !settings.peers.is_empty() {
        tasks.push(tokio::spawn(join::join(
            raft.clone(),
            genesis.clone(),
            settings.node_id,
            node_key_for_join,
            advertised.clone(),
            settings.peers.clone(),
            peers,
            shutdown_rx.clone(),
        )));
    }
    let mut srv_shutdown = shutdown_rx;
    if let Some((_, config)) = tls {
        tasks.push(tokio::spawn(serve::serve_tls(
            listener,
            app,
            config,
            nodes,
            srv_shutdown,
        )));
    } else {
        tasks.push(tokio::spawn(async move {
            let res = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = srv_shutdown.wait_for(|v| *v).await;
            })
            .await;
            if let Err(e) = res {
                tracing::error!(error = %e, "http server failed");
            }
        }));
    }
    tracing::info!(%addr, node_id = settings.node_id, "node serving");
    // Keep the storage handles alive as long as Raft uses them.
    drop(storage);
    Ok(RunningNode {
        addr,
        raft,
        chain,
        accounts,
        service,
        shutdown,
        tasks,
    })
}

/// Runs a node until `shutdown` completes.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    let node = start(settings).await?;
    shutdown.await;
    tracing::info!("shutting down");
    node.stop().await;
    Ok(())
}
