//! openraft's own storage conformance suite, run against the sled log store
//! and state machine on a fresh temporary directory per case.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use rxchain::raft::TypeConfig;
use rxchain::store::{self, LogStore, NoObserver, StateMachine};
use rxchain_contracts::genesis::{NodeDecl, OrgDecl, OrgKind, Params};
use rxchain_contracts::{Genesis, Label, OrgId, SecretKey, Timestamp};
use tempfile::TempDir;

fn genesis() -> Genesis {
    let key = |s: &str| SecretKey::derive("test", s.as_bytes()).public();
    let org = |id: &str, kind: OrgKind, nodes: Vec<NodeDecl>| OrgDecl {
        id: OrgId::parse(id).expect("valid org id"),
        kind,
        name: Label::parse(id).expect("valid label"),
        address: Label::parse("1 Test Street").expect("valid label"),
        admin_key: key(&format!("{id}-admin")),
        data_key: key(&format!("{id}-data")),
        nodes,
    };
    Genesis {
        chain_id: Label::parse("rx-suite").expect("valid label"),
        created_at: Timestamp(1_700_000_000_000),
        orgs: vec![
            org(
                "hosp-a",
                OrgKind::Hospital,
                vec![NodeDecl {
                    id: 1,
                    key: key("node-1"),
                }],
            ),
            org("regulator", OrgKind::Regulator, vec![]),
        ],
        params: Params::default(),
    }
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
