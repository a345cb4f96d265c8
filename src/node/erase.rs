//! The erasure sweep's task: a few seconds after start and then every
//! `erasure_sweep_secs`, replaces this node's copies of the key wraps whose
//! retention period is over by their digests (`store::erase`), and when it
//! changed anything has openraft build a fresh snapshot, so that no older
//! snapshot file keeps a wrap.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::ChainClock;
use crate::metrics::Metrics;
use crate::store::chain::ChainStore;
use crate::store::log::LogStore;
use crate::types::Raft;

/// Delay before the first sweep, so start-up and the first election go
/// first.
const FIRST_SWEEP: Duration = Duration::from_secs(2);

/// What a sweep works on.
pub struct Sweeper {
    pub db: sled::Db,
    pub chain: Arc<ChainStore>,
    pub log: LogStore,
    pub raft: Raft,
    pub clock: ChainClock,
    pub every: Duration,
    pub metrics: Arc<Metrics>,
}

/// Runs until `shutdown`.
pub async fn run(s: Sweeper, mut shutdown: watch::Receiver<bool>) {
    let mut wait = FIRST_SWEEP;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        wait = s.every;
        let (db, chain, log, now) = (s.db.clone(), s.chain.clone(), s.log.clone(), s.clock.now());
        let swept =
            tokio::task::spawn_blocking(move || crate::store::erase::sweep(&db, &chain, &log, now))
                .await;
        match swept {
            Ok(Ok(swept)) => {
                s.metrics.erasure_sweeps.inc();
                s.metrics.erased_key_wraps.inc_by(swept.wraps);
                if swept.changed() {
                    tracing::info!(
                        wraps = swept.wraps,
                        blocks = swept.blocks,
                        log_entries = swept.log_entries,
                        "key wraps past retention erased"
                    );
                    // The stored snapshot may still hold them: build a new
                    // one, which removes the older files.
                    if let Err(e) = s.raft.trigger().snapshot().await {
                        tracing::warn!(error = %e, "snapshot after erasure not triggered");
                    }
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "erasure sweep failed; retrying at the next"),
            Err(e) => tracing::error!(error = %e, "erasure sweep task failed"),
        }
    }
}
