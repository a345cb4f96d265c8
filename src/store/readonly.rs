//! Reading a stopped node's data directory without writing a byte to it.
//!
//! sled has no read-only mode: opening a database writes (its log grows, a
//! snapshot file appears, our own open records the format version and the
//! state machine creates its snapshot folder). So the tools that only read
//! (`rxchain verify`, the offline `rxchain backup DATA_DIR`) open a private
//! copy instead: the directory's files are copied, read-only, into a
//! temporary folder that is removed afterwards, and the copy is opened.
//!
//! While it copies, the tool holds a shared `flock` on the directory's
//! `db` file, the lock sled takes exclusively: a running node makes the
//! copy fail at once with [`ReadOnlyError::Running`], and a node started
//! during the copy cannot open the directory until the copy is done. The
//! snapshot folder (`rxchain-snapshots/`) is not copied: everything the
//! tools read is in the database.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fs2::FileExt;
use rxchain_contracts::Genesis;

use super::{NoObserver, Storage, StoreError};

/// Why a data directory could not be opened read-only.
#[derive(Debug, thiserror::Error)]
pub enum ReadOnlyError {
    /// The directory holds no rxchain database.
    #[error("{0} is not a node's data directory (it has no sled `db` file)")]
    NotADataDir(PathBuf),
    /// A node (or another tool) has the database open.
    #[error("{0} is in use: a node is running on it; stop the node first (or back it up online with `rxchain backup --node URL`)")]
    Running(PathBuf),
    /// Reading the directory or writing the copy failed.
    #[error("copying {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The copy does not open as a store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A private, opened copy of a data directory; the copy is removed when
/// this is dropped.
pub struct ReadOnlyCopy {
    /// The opened copy. Dropped before the folder (field order).
    pub storage: Storage,
    _folder: tempfile::TempDir,
}

/// Copies the data directory `dir` to a temporary folder, without writing
/// to `dir`, and opens the copy for `genesis`.
pub fn open_copy(dir: &Path, genesis: Arc<Genesis>) -> Result<ReadOnlyCopy, ReadOnlyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReadOnlyError::Io { path, source }
    };
    let db_file = dir.join("db");
    if !db_file.is_file() {
        return Err(ReadOnlyError::NotADataDir(dir.to_path_buf()));
    }
    let lock = fs::File::open(&db_file).map_err(io(&db_file))?;
    // A database closed a moment ago keeps its lock until sled's flusher
    // thread ends its cycle (see `store::open_db`): wait that long, no more.
    let mut tries = 0;
    // fs2's lock, the one sled takes (std's own `File` locks need a newer
    // Rust than the workspace's minimum).
    while FileExt::try_lock_shared(&lock).is_err() {
        tries += 1;
        if tries > 40 {
            return Err(ReadOnlyError::Running(dir.to_path_buf()));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let folder = tempfile::Builder::new()
        .prefix("rxchain-readonly-")
        .tempdir()
        .map_err(io(&std::env::temp_dir()))?;
    copy_tree(dir, folder.path())?;
    // The copy is complete: a node may open the original again.
    if let Err(e) = FileExt::unlock(&lock) {
        tracing::debug!(error = %e, "unlocking the copied database (closing it unlocks too)");
    }
    drop(lock);
    let storage = super::open(folder.path(), genesis, Arc::new(NoObserver))?;
    Ok(ReadOnlyCopy {
        storage,
        _folder: folder,
    })
}

/// Copies every file under `from` to `to`, except the snapshot folder.
fn copy_tree(from: &Path, to: &Path) -> Result<(), ReadOnlyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReadOnlyError::Io { path, source }
    };
    for entry in fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let kind = entry.file_type().map_err(io(&src))?;
        if kind.is_dir() {
            if entry.file_name() == super::sm::SNAPSHOT_DIR {
                continue;
            }
            fs::create_dir_all(&dst).map_err(io(&dst))?;
            copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            fs::copy(&src, &dst).map_err(io(&src))?;
        }
    }
    Ok(())
}
