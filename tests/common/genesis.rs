//! A synthetic genesis for the storage and Raft tests, with every key
//! derived publicly from a name so a test can sign as any organisation's
//! admin or node without files.

use rxchain_contracts::genesis::{NodeDecl, OrgDecl, OrgKind, Params};
use rxchain_contracts::{Genesis, Label, OrgId, SecretKey, Timestamp};

/// The key a synthetic genesis gives `name`: `"{org}-admin"`, `"{org}-data"`
/// and `"node-{id}"` are the ones [`synthetic_genesis`] declares; any other
/// name is a key the genesis does not know.
pub fn test_key(name: &str) -> SecretKey {
    SecretKey::derive("test", name.as_bytes())
}

/// One organisation of a synthetic genesis.
pub struct SyntheticOrg {
    /// The organisation id, also its display name.
    pub id: &'static str,
    /// What kind of organisation it is.
    pub kind: OrgKind,
    /// The Raft node ids it runs, each with the key `test_key("node-{id}")`.
    pub nodes: &'static [u64],
}

/// Shorthand for a [`SyntheticOrg`].
pub const fn org(id: &'static str, kind: OrgKind, nodes: &'static [u64]) -> SyntheticOrg {
    SyntheticOrg { id, kind, nodes }
}

/// A genesis named `chain_id`, created at `created_at`, declaring `orgs` in
/// order with the default parameters. Every organisation sits at
/// "1 Test Street", with admin key `test_key("{id}-admin")` and data key
/// `test_key("{id}-data")`.
pub fn synthetic_genesis(chain_id: &str, created_at: Timestamp, orgs: &[SyntheticOrg]) -> Genesis {
    let label = |s: &str| Label::parse(s).expect("valid label");
    Genesis {
        chain_id: label(chain_id),
        created_at,
        orgs: orgs
            .iter()
            .map(|o| OrgDecl {
                id: OrgId::parse(o.id).expect("valid org id"),
                kind: o.kind,
                name: label(o.id),
                address: label("1 Test Street"),
                admin_key: test_key(&format!("{}-admin", o.id)).public(),
                data_key: test_key(&format!("{}-data", o.id)).public(),
                nodes: o
                    .nodes
                    .iter()
                    .map(|&id| NodeDecl {
                        id,
                        key: test_key(&format!("node-{id}")).public(),
                        // In-process test nodes speak plain HTTP on loopback;
                        // a distinct pin per node keeps genesis valid.
                        tls: rxchain_contracts::Hash::of(&[b"test-tls", &id.to_le_bytes()]),
                    })
                    .collect(),
            })
            .collect(),
        params: Params::default(),
    }
}
