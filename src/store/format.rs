//! The data directory's format version, and the migrations between versions.
//!
//! The version is one big-endian `u32` under `meta/format_version` in sled's
//! default tree. A binary opens a directory of its own version; migrates an
//! older one forward, one version at a time, before anything else reads it;
//! and refuses a newer one ([`StoreError::FormatTooNew`]) without writing a
//! byte, so that an operator who rolls a binary back after an upgrade gets a
//! sentence, not a corrupt database.
//!
//! Versions:
//!
//! * 1: every directory written before the version was recorded (no key).
//! * 2: the key is present. The migration from 1 records it, and recomputes
//!   the state accumulator `m/lthash` if a version-1 directory predates it
//!   (the tip load did that lazily before; now it happens once, here).
//! * 3: key wraps are erasable (`WrapBody`, crypto-shredding): a wrap is
//!   stored present or erased, and transaction ids sign its digest only.
//!   A version-2 chain that holds a key wrap was signed over the wraps
//!   whole, so its ids differ and it cannot be carried forward: the
//!   migration checks every stored block and Raft log entry against the new
//!   form and refuses the directory with a sentence if any does not fit.
//! * 4: applied Raft log entries are kept as references to the chain's
//!   blocks in `raft_log_applied` (see `store::log`), so each transaction
//!   is stored once; and the day index holds one record per block, not
//!   per transaction. Nothing to rewrite: a version-3 log's whole entries
//!   stay valid and become references as new blocks apply, and the older
//!   per-transaction day records are still read (also when a snapshot or
//!   backup from a version-3 node brings them). The version is
//!   bumped so that an older binary, which does not read the references,
//!   refuses the directory instead of seeing a log with holes.

use super::chain::keys;
use super::StoreError;

/// The key of the format version in sled's default tree.
pub const FORMAT_KEY: &[u8] = b"meta/format_version";
/// The format this binary writes.
pub const FORMAT_VERSION: u32 = 4;

/// What opening did to the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatOutcome {
    /// A new, empty directory: the current version was recorded.
    Created,
    /// The directory was at the current version already.
    Current,
    /// The directory was migrated from this older version.
    Migrated {
        /// The version found.
        from: u32,
    },
}

/// The version recorded in `db`, `None` when the key is absent.
pub fn stored_version(db: &sled::Db) -> Result<Option<u32>, StoreError> {
    match db.get(FORMAT_KEY)? {
        None => Ok(None),
        Some(v) => {
            let bytes: [u8; 4] = v.as_ref().try_into().map_err(|_| {
                StoreError::corrupt("format version", format!("{} bytes, not 4", v.len()))
            })?;
            Ok(Some(u32::from_be_bytes(bytes)))
        }
    }
}

/// Whether `db` holds anything written by rxchain (a version-1 directory
/// has no format key but a genesis hash in its chain tree).
fn holds_data(db: &sled::Db) -> Result<bool, StoreError> {
    let known = ["chain", "raft_log", "raft_meta"];
    for name in db.tree_names() {
        if known.iter().any(|k| k.as_bytes() == name.as_ref()) && !db.open_tree(&name)?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Checks the format of `db` before anything else touches it: refuses a
/// newer one, migrates an older one, records the version in a new one.
pub fn check_and_migrate(db: &sled::Db, chain_id: &str) -> Result<FormatOutcome, StoreError> {
    let found = match stored_version(db)? {
        Some(v) if v > FORMAT_VERSION => {
            return Err(StoreError::FormatTooNew {
                found: v,
                supported: FORMAT_VERSION,
            })
        }
        Some(v) if v == FORMAT_VERSION => return Ok(FormatOutcome::Current),
        Some(v) => v,
        None if holds_data(db)? => 1,
        None => {
            write_version(db, FORMAT_VERSION)?;
            return Ok(FormatOutcome::Created);
        }
    };
    let mut at = found;
    while at < FORMAT_VERSION {
        match at {
            1 => migrate_1_to_2(db)?,
            2 => migrate_2_to_3(db, chain_id)?,
            3 => {}
            other => {
                return Err(StoreError::corrupt(
                    "format version",
                    format!("no migration from version {other}"),
                ))
            }
        }
        at += 1;
        write_version(db, at)?;
        tracing::info!(from = at - 1, to = at, "data directory migrated");
    }
    Ok(FormatOutcome::Migrated { from: found })
}

fn write_version(db: &sled::Db, v: u32) -> Result<(), StoreError> {
    db.insert(FORMAT_KEY, v.to_be_bytes().as_slice())?;
    db.flush()?;
    Ok(())
}

/// Version 1 to 2: a chain with blocks but no stored accumulator gets one,
/// computed over the stored state, so that the tip load never writes.
fn migrate_1_to_2(db: &sled::Db) -> Result<(), StoreError> {
    let chain = db.open_tree("chain")?;
    if chain.contains_key(keys::TIP)? && !chain.contains_key(keys::LTHASH)? {
        let acc = super::chain::accumulator_of(&chain)?;
        chain.insert(keys::LTHASH, acc.to_bytes().as_slice())?;
        tracing::info!("version 1 directory: state accumulator computed once");
    }
    Ok(())
}

/// Version 2 to 3: nothing to rewrite, but only a chain whose blocks and
/// log entries decode, and whose transaction roots hold, under the new
/// form of key wraps may go on.
fn migrate_2_to_3(db: &sled::Db, chain_id: &str) -> Result<(), StoreError> {
    use rxchain_contracts::block::{roots, Block};
    use rxchain_contracts::encoding;
    let refuse = |what: String| {
        StoreError::corrupt(
            "format version",
            format!(
                "{what} was written by rxchain before key wraps became erasable (format 2): \
                 its transaction ids cover the wraps whole, so it cannot be carried forward; \
                 start a new data directory from its genesis"
            ),
        )
    };
    let chain = db.open_tree("chain")?;
    for kv in chain.scan_prefix(keys::BLOCK) {
        let (k, v) = kv?;
        let what = || format!("the block at key {}", hex::encode(&k));
        let b: Block = encoding::from_bytes(&v).map_err(|_| refuse(what()))?;
        let ids: Vec<_> = b.txs.iter().map(|t| t.tx.id(chain_id)).collect();
        if roots(&ids, &b.outcomes).0 != b.header.tx_root {
            return Err(refuse(what()));
        }
    }
    let log = db.open_tree("raft_log")?;
    for kv in log.iter() {
        let (k, v) = kv?;
        super::from_postcard::<openraft::Entry<crate::types::TypeConfig>>(|| String::new(), &v)
            .map_err(|_| refuse(format!("the Raft log entry at key {}", hex::encode(&k))))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_database_gets_the_current_version() {
        let dir = tempfile::TempDir::new().unwrap();
        let db = sled::open(dir.path()).unwrap();
        assert_eq!(
            check_and_migrate(&db, "test").unwrap(),
            FormatOutcome::Created
        );
        assert_eq!(stored_version(&db).unwrap(), Some(FORMAT_VERSION));
        assert_eq!(
            check_and_migrate(&db, "test").unwrap(),
            FormatOutcome::Current
        );
    }

    #[test]
    fn a_newer_version_is_refused_untouched() {
        let dir = tempfile::TempDir::new().unwrap();
        let db = sled::open(dir.path()).unwrap();
        db.insert(FORMAT_KEY, 9u32.to_be_bytes().as_slice())
            .unwrap();
        let e = check_and_migrate(&db, "test").unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::FormatTooNew {
                    found: 9,
                    supported: FORMAT_VERSION
                }
            ),
            "{e}"
        );
        assert_eq!(stored_version(&db).unwrap(), Some(9));
    }
}
