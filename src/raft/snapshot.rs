//! Receiving a snapshot, checked before it is installed.
//!
//! openraft 0.9 installs a snapshot as soon as its last chunk arrives, and a
//! failing `install_snapshot` in the state machine is a storage error that
//! stops the whole Raft core. So the check cannot live in the state machine:
//! the RPC server receives the chunks itself (into the file openraft's state
//! machine hands out, with openraft's own [`Chunked`] receiver), runs
//! [`crate::types::snapshot::verify`] over the finished file, and only then
//! gives it to [`Raft::install_full_snapshot`]. A refused snapshot is logged
//! at warn with the reason, counted in `rxchain_snapshots_refused_total`,
//! and answered with an error the sender retries on; nothing of it is
//! applied and the node keeps running.
//!
//! Retries of the last chunk of a refused snapshot are refused again at
//! once (openraft's sender would otherwise restart the same stream forever),
//! so the sender gives up on that copy and asks its state machine for a
//! fresh one on its next attempt.

use std::sync::{Arc, Mutex as StdMutex};

use openraft::error::{Fatal, InstallSnapshotError, RaftError};
use openraft::network::snapshot_transport::{Chunked, SnapshotTransport, Streaming};
use openraft::raft::{InstallSnapshotRequest, InstallSnapshotResponse};
use prometheus_client::metrics::counter::Counter;
use rxchain_contracts::Genesis;
use tokio::sync::Mutex;

use super::{Raft, TypeConfig};
use crate::types::snapshot::{self, SnapshotRefused};

/// Why a snapshot chunk was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// openraft refused the chunk (a stream mismatch) or stopped.
    #[error(transparent)]
    Raft(#[from] RaftError<u64, InstallSnapshotError>),
    /// openraft stopped while installing.
    #[error(transparent)]
    Fatal(#[from] Fatal<u64>),
    /// The finished snapshot failed its check.
    #[error("snapshot {id} refused: {reason}")]
    Refused {
        /// The snapshot id.
        id: String,
        /// What is wrong with it.
        #[source]
        reason: SnapshotRefused,
    },
    /// A retried chunk of a snapshot already refused.
    #[error("snapshot {0} was refused already; send a fresh one from offset 0")]
    AlreadyRefused(String),
    /// Reading the received file for the check failed.
    #[error("the received snapshot file cannot be read: {0}")]
    Io(#[from] std::io::Error),
    /// The check's blocking task failed.
    #[error("the snapshot check did not finish: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The snapshot receiver of one node.
pub struct SnapshotReceiver {
    /// The stream being received, as openraft's chunked receiver keeps it.
    streaming: Mutex<Option<Streaming<TypeConfig>>>,
    /// The id of the last refused snapshot, whose retried chunks are refused
    /// at once. A std lock: held only to read or replace the id.
    refused_id: StdMutex<Option<String>>,
    /// `rxchain_snapshots_refused_total`.
    refused_total: Counter,
    /// The chain's genesis, which a snapshot must grow from.
    genesis: Arc<Genesis>,
}

impl SnapshotReceiver {
    /// A receiver for the chain of `genesis`, counting refusals in
    /// `refused_total`.
    pub fn new(genesis: Arc<Genesis>, refused_total: Counter) -> Self {
        SnapshotReceiver {
            streaming: Mutex::new(None),
            refused_id: StdMutex::new(None),
            refused_total,
            genesis,
        }
    }

    /// Takes one chunk; on the last one checks the snapshot against the
    /// genesis and the receiver's effective `consortium`, and installs it
    /// if it passes.
    pub async fn receive(
        &self,
        raft: &Raft,
        consortium: &Arc<Genesis>,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<u64>, ReceiveError> {
        let id = req.meta.snapshot_id.clone();
        {
            let mut refused = self.refused_id.lock().unwrap_or_else(|p| p.into_inner());
            if req.offset == 0 {
                *refused = None;
            } else if refused.as_deref() == Some(id.as_str()) {
                return Err(ReceiveError::AlreadyRefused(id));
            }
        }
        // As openraft's own receiver does: a stream from an older leader is
        // answered with our vote and not stored.
        let my_vote = raft.metrics().borrow().vote.clone();
        if req.vote < my_vote {
            return Ok(InstallSnapshotResponse { vote: my_vote });
        }
        let vote = req.vote.clone();
        let finished = {
            let mut streaming = self.streaming.lock().await;
            Chunked::receive_snapshot(&mut *streaming, raft, req).await?
        };
        let Some(mut snap) = finished else {
            return Ok(InstallSnapshotResponse { vote: my_vote });
        };
        use tokio::io::AsyncSeekExt;
        snap.snapshot.seek(std::io::SeekFrom::Start(0)).await?;
        let file = snap.snapshot.try_clone().await?.into_std().await;
        let (g, c) = (Arc::clone(&self.genesis), Arc::clone(consortium));
        let checked = tokio::task::spawn_blocking(move || {
            snapshot::verify(&g, Some(&c), std::io::BufReader::new(file))
        })
        .await?;
        match checked {
            Ok(v) => {
                tracing::info!(
                    snapshot = %snap.meta.snapshot_id,
                    height = v.tip.height,
                    entries = v.entries,
                    state_root = %v.state.root(),
                    "snapshot checked against its tip header; installing"
                );
                let resp = raft.install_full_snapshot(vote, snap).await?;
                Ok(InstallSnapshotResponse { vote: resp.vote })
            }
            Err(reason) => {
                tracing::warn!(snapshot = %id, reason = %reason, "snapshot refused: not installed");
                self.refused_total.inc();
                *self.refused_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
                Err(ReceiveError::Refused { id, reason })
            }
        }
    }
}
