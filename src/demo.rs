//! The demo consortium from `fixtures/demo/consortium.json`: synthetic
//! organisations and staff whose keys are derived publicly (demo-only), the
//! genesis built from them (with the controlled-drug list taken from the
//! controlled entries of `fixtures/formulary.json`), and the data directory
//! layout `rxchain demo` uses.

use std::collections::BTreeMap;
use std::path::Path;

use rxchain_contracts::genesis::{NodeDecl, Params};
use rxchain_contracts::tx::Role;
use rxchain_contracts::{
    AtcCode, ControlledDrug, Genesis, Label, OrgDecl, OrgId, OrgKind, SecretKey, Timestamp,
};
use serde::Deserialize;

/// The consortium description, embedded so the binary works from any directory.
pub const CONSORTIUM_JSON: &str = include_str!("../fixtures/demo/consortium.json");

/// The demo formulary, whose controlled entries make the genesis list.
const FORMULARY_JSON: &str = include_str!("../fixtures/formulary.json");

/// The part of the formulary the genesis needs.
#[derive(Deserialize)]
struct Formulary {
    drugs: Vec<FormularyDrug>,
}

#[derive(Deserialize)]
struct FormularyDrug {
    atc: String,
    controlled: bool,
    #[serde(default)]
    schedule: Option<String>,
}

/// The controlled drugs of the demo formulary, with their schedules.
fn controlled_drugs() -> Result<Vec<ControlledDrug>, DemoError> {
    let f: Formulary =
        serde_json::from_str(FORMULARY_JSON).map_err(|e| DemoError(e.to_string()))?;
    f.drugs
        .into_iter()
        .filter(|d| d.controlled)
        .map(|d| {
            let schedule = d
                .schedule
                .ok_or_else(|| DemoError(format!("controlled drug {} has no schedule", d.atc)))?;
            Ok(ControlledDrug {
                atc: AtcCode::parse(d.atc).map_err(|e| DemoError(e.to_string()))?,
                schedule: Label::parse(schedule).map_err(|e| DemoError(e.to_string()))?,
            })
        })
        .collect()
}

/// The derivation tag of every demo key. Demo keys are public knowledge.
pub const DEMO_TAG: &str = "rxchain-demo-only";

/// The synthetic staff password printed by the demo.
pub const DEMO_PASSWORD: &str = "demo-password";

#[derive(Deserialize)]
struct Description {
    chain_id: String,
    created_at: u64,
    orgs: Vec<OrgDesc>,
    staff: Vec<StaffDesc>,
}

#[derive(Deserialize)]
struct OrgDesc {
    id: String,
    kind: OrgKind,
    name: String,
    address: String,
    nodes: Vec<u64>,
}

/// A demo staff member.
#[derive(Deserialize, Clone, Debug)]
pub struct StaffDesc {
    /// Sign-in name.
    pub username: String,
    /// Organisation id.
    pub org: String,
    /// Role.
    pub role: Role,
    /// Display name.
    pub name: String,
    /// Licence number.
    pub licence: String,
}

/// The demo consortium with its derived keys.
pub struct Demo {
    /// The genesis document.
    pub genesis: Genesis,
    /// Staff, in fixture order.
    pub staff: Vec<StaffDesc>,
}

/// Derives a demo key from its label.
pub fn key(label: &str) -> SecretKey {
    SecretKey::derive(DEMO_TAG, label.as_bytes())
}

/// An organisation's admin key.
pub fn admin_key(org: &str) -> SecretKey {
    key(&format!("org/{org}/admin"))
}

/// An organisation's data (decryption) key.
pub fn data_key(org: &str) -> SecretKey {
    key(&format!("org/{org}/data"))
}

/// A node's key.
pub fn node_key(id: u64) -> SecretKey {
    key(&format!("node/{id}"))
}

/// A node's TLS key (Ed25519) and a self-signed certificate for loopback,
/// derived from the public demo seed like every demo key: DEMO-ONLY, since
/// anyone can derive it and pose as the node.
pub fn tls_key(id: u64) -> Result<crate::tls::GeneratedTls, crate::tls::TlsError> {
    let seed = rxchain_contracts::Hash::of(&[
        DEMO_TAG.as_bytes(),
        b"\0tls/node/",
        id.to_string().as_bytes(),
    ]);
    crate::tls::from_seed(*seed.as_bytes())
}

/// The files [`Demo::write_files`] writes for node `id`'s TLS identity,
/// under `dir`: the certificate and the key.
pub fn tls_files(dir: &Path, id: u64) -> (std::path::PathBuf, std::path::PathBuf) {
    (
        dir.join(format!("node{id}.tls.crt")),
        dir.join(format!("node{id}.tls.key")),
    )
}

/// A staff member's signing key.
pub fn staff_key(username: &str) -> SecretKey {
    key(&format!("staff/{username}"))
}

/// Why the fixture could not be used.
#[derive(Debug, thiserror::Error)]
#[error("demo consortium fixture is invalid: {0}")]
pub struct DemoError(String);

impl Demo {
    /// Builds the demo consortium from the embedded fixture.
    pub fn load() -> Result<Demo, DemoError> {
        let d: Description =
            serde_json::from_str(CONSORTIUM_JSON).map_err(|e| DemoError(e.to_string()))?;
        let label = |s: &str| Label::parse(s).map_err(|e| DemoError(e.to_string()));
        let mut orgs = Vec::new();
        for o in d.orgs {
            orgs.push(OrgDecl {
                id: OrgId::parse(o.id.clone()).map_err(|e| DemoError(e.to_string()))?,
                kind: o.kind,
                name: label(&o.name)?,
                address: label(&o.address)?,
                admin_key: admin_key(&o.id).public(),
                data_key: data_key(&o.id).public(),
                nodes: o
                    .nodes
                    .iter()
                    .map(|&id| {
                        Ok(NodeDecl {
                            id,
                            key: node_key(id).public(),
                            tls: tls_key(id).map_err(|e| DemoError(e.to_string()))?.hash,
                        })
                    })
                    .collect::<Result<_, DemoError>>()?,
            });
        }
        let genesis = Genesis {
            chain_id: label(&d.chain_id)?,
            created_at: Timestamp(d.created_at),
            orgs,
            params: Params {
                controlled: controlled_drugs()?,
                ..Params::default()
            },
        };
        genesis.validate().map_err(|e| DemoError(e.to_string()))?;
        Ok(Demo {
            genesis,
            staff: d.staff,
        })
    }

    /// Staff by username.
    pub fn staff_member(&self, username: &str) -> Option<&StaffDesc> {
        self.staff.iter().find(|s| s.username == username)
    }

    /// The demo genesis declaring only the nodes in `nodes` (each stays with
    /// its organisation; organisations keep their place without the others).
    /// The declared nodes are the ones whose majority certifies blocks and
    /// bounds chain time, so a consortium started with fewer nodes than the
    /// fixture declares only those it runs.
    pub fn genesis_for(&self, nodes: &[u64]) -> Genesis {
        let mut g = self.genesis.clone();
        for o in &mut g.orgs {
            o.nodes.retain(|n| nodes.contains(&n.id));
        }
        g
    }

    /// Writes a genesis declaring exactly `nodes` ([`Demo::genesis_for`]),
    /// their node keys and their TLS certificates and keys ([`tls_files`])
    /// into `dir` (each file only if absent), returning the node key paths
    /// by node id.
    pub fn write_files(
        &self,
        dir: &Path,
        nodes: &[u64],
    ) -> std::io::Result<BTreeMap<u64, std::path::PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let gpath = dir.join("genesis.json");
        if !gpath.exists() {
            let text = serde_json::to_string_pretty(&self.genesis_for(nodes))
                .map_err(std::io::Error::other)?;
            std::fs::write(&gpath, text)?;
        }
        let mut keys = BTreeMap::new();
        for &id in nodes {
            let p = dir.join(format!("node{id}.key"));
            if !p.exists() {
                crate::keys::write_new(&p, &node_key(id)).map_err(std::io::Error::other)?;
            }
            let (crt, key) = tls_files(dir, id);
            if !crt.exists() || !key.exists() {
                let tls = tls_key(id).map_err(std::io::Error::other)?;
                std::fs::write(&crt, &tls.cert_pem)?;
                if !key.exists() {
                    crate::keys::write_new_secret(&key, &tls.key_pem)
                        .map_err(std::io::Error::other)?;
                }
            }
            keys.insert(id, p);
        }
        Ok(keys)
    }
}
