//! openraft's own storage conformance suite, run against the sled log store
//! and state machine on a fresh temporary directory per case.

use std::sync::Arc;

use common::genesis::{org, synthetic_genesis};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use rxchain::raft::TypeConfig;
use rxchain::store::{self, LogStore, NoObserver, StateMachine};
use rxchain_contracts::genesis::OrgKind;
use rxchain_contracts::{Genesis, Timestamp};
use tempfile::TempDir;

mod common;

fn genesis() -> Genesis {
    synthetic_genesis(
        "rx-suite",
        Timestamp(1_700_000_000_000),
        &[
            org("hosp-a", OrgKind::Hospital, &[1]),
            org("regulator", OrgKind::Regulator, &[]),
        ],
    )
}

/// Opens real sled storage in a temporary directory; the directory is the
/// guard openraft keeps alive for the duration of each case.
struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for SledBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = TempDir::new().expect("a temporary directory");
        let storage = store::open(dir.path(), Arc::new(genesis()), Arc::new(NoObserver))
            .expect("storage opens");
        Ok((dir, storage.log, storage.sm))
    }
}

#[test]
fn sled_storage_passes_the_openraft_suite() {
    if let Err(e) = Suite::test_all(SledBuilder) {
        panic!("the storage suite failed: {e}");
    }
}
