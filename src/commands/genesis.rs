//! `rxchain genesis new | add-org` and `rxchain keygen --org`: setting up a
//! consortium from a short TOML description.
//!
//! `genesis new` generates every organisation's keys in one place and writes
//! `genesis.json` plus one directory per organisation (see [`Layout`]). When
//! each organisation must keep its secret keys on its own machine, it runs
//! `rxchain keygen --org org.toml --out DIR` instead, which writes the same
//! directory and `org.pub.json` (public keys only, an [`OrgDecl`] as in
//! genesis); whoever assembles genesis adds that file with `genesis add-org`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::Figment;
use rxchain_contracts::genesis::{GenesisError, NodeDecl, Params};
use rxchain_contracts::{
    AtcCode, ControlledDrug, Genesis, Label, OrgDecl, OrgId, OrgKind, Timestamp,
};
use serde::Deserialize;

use crate::cli::GenesisAction;

/// Why a consortium could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The description file does not parse or does not fit.
    #[error("consortium description {path}: {source}")]
    Description {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: Box<figment::Error>,
    },
    /// A value of the description is not valid on the chain.
    #[error("{what}: {source}")]
    Value {
        /// Which value.
        what: String,
        /// Why.
        #[source]
        source: rxchain_contracts::model::InvalidValue,
    },
    /// The genesis built is not consistent.
    #[error("the genesis is not valid: {0}")]
    Genesis(#[from] GenesisError),
    /// An organisation file does not decode.
    #[error("{path} is not an organisation declaration: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// A node of the description has no usable address.
    #[error("node {id}: address {address:?} is not HOST:PORT")]
    Address {
        /// The node.
        id: u64,
        /// The address given.
        address: String,
    },
    /// A `--peer` is not `ID=HOST:PORT`.
    #[error("--peer {0:?} is not ID=HOST:PORT")]
    Peer(String),
    /// A file to write exists already.
    #[error("{0} exists; refusing to overwrite it")]
    Exists(PathBuf),
    /// An organisation of the same id is in the genesis already.
    #[error("organisation {0} is already in the genesis")]
    DuplicateOrg(String),
    /// A key file could not be written.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyFileError),
    /// A TLS key could not be generated.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SetupError + '_ {
    move |source| SetupError::Io {
        path: path.into(),
        source,
    }
}

/// The consortium description `genesis new` reads (TOML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// The chain id every signature is bound to.
    pub chain_id: String,
    /// When the consortium is founded, in Unix milliseconds; now by default.
    #[serde(default)]
    pub created_at: Option<u64>,
    /// Rule parameters; each one left out keeps its default.
    #[serde(default)]
    pub params: ParamsDesc,
    /// The member organisations.
    pub orgs: Vec<OrgDesc>,
}

/// The chain parameters a description may set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamsDesc {
    /// See [`Params::governance_threshold`].
    pub governance_threshold: Option<u32>,
    /// See [`Params::max_grant_days`].
    pub max_grant_days: Option<u32>,
    /// See [`Params::personal_data_retention_days`].
    pub personal_data_retention_days: Option<u32>,
    /// See [`Params::regulator_retention_days`].
    pub regulator_retention_days: Option<u32>,
    /// See [`Params::max_leader_skew_ms`].
    pub max_leader_skew_ms: Option<u64>,
    /// See [`Params::max_clock_skew_ms`].
    pub max_clock_skew_ms: Option<u64>,
    /// See [`Params::controlled_validity_days`].
    pub controlled_validity_days: Option<u32>,
    /// See [`Params::default_validity_days`].
    pub default_validity_days: Option<u32>,
    /// See [`Params::max_validity_days`].
    pub max_validity_days: Option<u32>,
    /// The controlled drugs the chain starts with.
    #[serde(default)]
    pub controlled: Vec<ControlledDesc>,
}

/// A controlled drug of the description.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlledDesc {
    /// ATC code.
    pub atc: String,
    /// Schedule, e.g. `II`.
    pub schedule: String,
}

/// One organisation of the description (also the whole of the file
/// `keygen --org` reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgDesc {
    /// Stable id on the chain, e.g. `st-mary`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// hospital, pharmacy, regulator or logistics.
    pub kind: OrgKind,
    /// Postal address (public; shown to patients choosing a pharmacy).
    pub address: String,
    /// The organisation's nodes.
    pub nodes: Vec<NodeDesc>,
}

/// One node of the description.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDesc {
    /// Raft node id, unique in the consortium.
    pub id: u64,
    /// `HOST:PORT` where the other nodes and browsers reach it.
    pub address: String,
    /// The socket address to bind; by default the address itself when its
    /// host is an IP address, else all interfaces on its port.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// More names for the TLS certificate, besides the address's host.
    #[serde(default)]
    pub tls_names: Vec<String>,
    /// Whether this node initialises the cluster; by default the first
    /// node of the first organisation does.
    #[serde(default)]
    pub bootstrap: Option<bool>,
}

impl NodeDesc {
    fn host_port(&self) -> Result<(&str, u16), SetupError> {
        let bad = || SetupError::Address {
            id: self.id,
            address: self.address.clone(),
        };
        let (host, port) = self.address.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse().map_err(|_| bad())?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok((host, port))
    }

    /// The address to bind.
    pub fn listen_addr(&self) -> Result<SocketAddr, SetupError> {
        if let Some(l) = self.listen {
            return Ok(l);
        }
        let (host, port) = self.host_port()?;
        Ok(match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => SocketAddr::from(([0, 0, 0, 0], port)),
        })
    }
}

/// Where `genesis new` and `keygen --org` put each file, relative to the
/// output directory. Every organisation's directory is self-contained: it
/// holds its own copy of `genesis.json`, so it can be copied to that
/// organisation's machine (minus `admin.key`, which belongs offline) and
/// run with `rxchain node --config node<id>.toml` from there.
pub struct Layout;

impl Layout {
    /// The consortium's genesis: `OUT/genesis.json`.
    pub fn genesis(out: &Path) -> PathBuf {
        out.join("genesis.json")
    }
    /// An organisation's directory: `OUT/<org id>/`.
    pub fn org_dir(out: &Path, org: &str) -> PathBuf {
        out.join(org)
    }
    /// The admin key (signs staff registrations and governance): `admin.key`.
    pub const ADMIN_KEY: &'static str = "admin.key";
    /// The data key (opens content sealed for the organisation): `data.key`.
    pub const DATA_KEY: &'static str = "data.key";
    /// The organisation's public declaration: `org.pub.json`.
    pub const ORG_PUB: &'static str = "org.pub.json";
    /// Node `id`'s settings file: `node<id>.toml`.
    pub fn node_config(id: u64) -> String {
        format!("node{id}.toml")
    }
    /// Node `id`'s key file: `node<id>.key`.
    pub fn node_key(id: u64) -> String {
        format!("node{id}.key")
    }
    /// Node `id`'s TLS certificate and key: `node<id>.tls.crt`, `node<id>.tls.key`.
    pub fn tls(id: u64) -> (String, String) {
        (format!("node{id}.tls.crt"), format!("node{id}.tls.key"))
    }
    /// Node `id`'s data directory, relative to its settings file: `data/node<id>`.
    pub fn data_dir(id: u64) -> String {
        format!("data/node{id}")
    }
}

/// Reads a consortium description.
pub fn read_description(path: &Path) -> Result<Description, SetupError> {
    Figment::from(Toml::file_exact(path))
        .extract()
        .map_err(|e| SetupError::Description {
            path: path.into(),
            source: Box::new(e),
        })
}

/// Reads the one-organisation file of `keygen --org`.
pub fn read_org(path: &Path) -> Result<OrgDesc, SetupError> {
    Figment::from(Toml::file_exact(path))
        .extract()
        .map_err(|e| SetupError::Description {
            path: path.into(),
            source: Box::new(e),
        })
}

fn label(what: &str, s: &str) -> Result<Label, SetupError> {
    Label::parse(s).map_err(|source| SetupError::Value {
        what: what.into(),
        source,
    })
}

fn params(p: &ParamsDesc) -> Result<Params, SetupError> {
    let d = Params::default();
    let controlled = p
        .controlled
        .iter()
        .map(|c| {
            Ok(ControlledDrug {
                atc: AtcCode::parse(c.atc.clone()).map_err(|source| SetupError::Value {
                    what: format!("controlled drug {}", c.atc),
                    source,
                })?,
                schedule: label(&format!("schedule of {}", c.atc), &c.schedule)?,
            })
        })
        .collect::<Result<_, SetupError>>()?;
    Ok(Params {
        controlled_validity_days: p
            .controlled_validity_days
            .unwrap_or(d.controlled_validity_days),
        default_validity_days: p.default_validity_days.unwrap_or(d.default_validity_days),
        max_validity_days: p.max_validity_days.unwrap_or(d.max_validity_days),
        max_clock_skew_ms: p.max_clock_skew_ms.unwrap_or(d.max_clock_skew_ms),
        max_leader_skew_ms: p.max_leader_skew_ms.unwrap_or(d.max_leader_skew_ms),
        controlled,
        governance_threshold: p.governance_threshold.unwrap_or(d.governance_threshold),
        max_grant_days: p.max_grant_days.unwrap_or(d.max_grant_days),
        personal_data_retention_days: p
            .personal_data_retention_days
            .unwrap_or(d.personal_data_retention_days),
        regulator_retention_days: p
            .regulator_retention_days
            .unwrap_or(d.regulator_retention_days),
    })
}

/// Creates `path` with `text`, refusing to overwrite.
fn write_new_file(path: &Path, text: &str) -> Result<(), SetupError> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => SetupError::Exists(path.into()),
            _ => SetupError::Io {
                path: path.into(),
                source: e,
            },
        })?;
    f.write_all(text.as_bytes()).map_err(io(path))
}

/// An organisation's freshly generated keys, held in memory until they
/// are written, so that nothing reaches the disk before the whole
/// consortium checks out.
struct OrgKeys {
    admin: rxchain_contracts::SecretKey,
    data: rxchain_contracts::SecretKey,
    /// Per node: id, node key, TLS key and certificate.
    nodes: Vec<(u64, rxchain_contracts::SecretKey, crate::tls::GeneratedTls)>,
    decl: OrgDecl,
}

impl OrgKeys {
    /// Generates the admin, data, node and TLS keys of `org` (each
    /// certificate valid for its node's address host and `tls_names`).
    fn generate(org: &OrgDesc) -> Result<OrgKeys, SetupError> {
        let admin = crate::keys::generate();
        let data = crate::keys::generate();
        let mut nodes = Vec::new();
        for n in &org.nodes {
            let (host, _) = n.host_port()?;
            let mut names = vec![host.to_string()];
            names.extend(n.tls_names.iter().filter(|t| t.as_str() != host).cloned());
            nodes.push((n.id, crate::keys::generate(), crate::tls::generate(&names)?));
        }
        let decl = OrgDecl {
            id: OrgId::parse(org.id.clone()).map_err(|source| SetupError::Value {
                what: format!("organisation id {}", org.id),
                source,
            })?,
            kind: org.kind,
            name: label(&format!("name of {}", org.id), &org.name)?,
            address: label(&format!("address of {}", org.id), &org.address)?,
            admin_key: admin.public(),
            data_key: data.public(),
            nodes: nodes
                .iter()
                .map(|(id, key, tls)| NodeDecl {
                    id: *id,
                    key: key.public(),
                    tls: tls.hash,
                })
                .collect(),
        };
        Ok(OrgKeys {
            admin,
            data,
            nodes,
            decl,
        })
    }

    /// The files [`OrgKeys::write`] creates under `dir`.
    fn targets(&self, dir: &Path) -> Vec<PathBuf> {
        let mut t = vec![
            dir.join(Layout::ADMIN_KEY),
            dir.join(Layout::DATA_KEY),
            dir.join(Layout::ORG_PUB),
        ];
        for (id, _, _) in &self.nodes {
            let (crt, key) = Layout::tls(*id);
            t.extend([
                dir.join(Layout::node_key(*id)),
                dir.join(crt),
                dir.join(key),
                dir.join(Layout::node_config(*id)),
            ]);
        }
        t
    }

    /// Writes the keys (secret files mode 0600), the certificates and
    /// `org.pub.json` into `dir` (created).
    fn write(&self, dir: &Path) -> Result<(), SetupError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        crate::keys::write_new(&dir.join(Layout::ADMIN_KEY), &self.admin)?;
        crate::keys::write_new(&dir.join(Layout::DATA_KEY), &self.data)?;
        for (id, key, tls) in &self.nodes {
            let (crt, tls_key) = Layout::tls(*id);
            crate::keys::write_new(&dir.join(Layout::node_key(*id)), key)?;
            crate::keys::write_new_secret(&dir.join(tls_key), &tls.key_pem)?;
            write_new_file(&dir.join(crt), &tls.cert_pem)?;
        }
        let path = dir.join(Layout::ORG_PUB);
        let json = serde_json::to_string_pretty(&self.decl).map_err(|source| SetupError::Json {
            path: path.clone(),
            source,
        })?;
        write_new_file(&path, &format!("{json}\n"))
    }
}

/// Refuses if any of `paths` exists, before anything is written, so a
/// second run neither overwrites nor leaves half a set.
fn refuse_existing<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> Result<(), SetupError> {
    match paths.into_iter().find(|p| p.exists()) {
        Some(p) => Err(SetupError::Exists(p.clone())),
        None => Ok(()),
    }
}

/// A TOML basic string: JSON's string escapes are valid TOML ones.
fn toml_str(s: &str) -> String {
    serde_json::Value::String(s.into()).to_string()
}

/// The settings file of node `n` of `org`, joining through `peers`.
fn node_toml(
    org: &OrgDesc,
    n: &NodeDesc,
    bootstrap: bool,
    peers: &BTreeMap<u64, String>,
) -> Result<String, SetupError> {
    let (crt, key) = Layout::tls(n.id);
    let mut t = format!(
        "# rxchain node {id} of {name} ({org}), written by `rxchain genesis`.\n\
         # Run it with `rxchain node --config {file}` from any directory; relative\n\
         # paths are read from this file's directory. Any setting can be\n\
         # overridden with an RXCHAIN_ variable (RXCHAIN_DATA_DIR, RXCHAIN_LISTEN).\n\
         node_id = {id}\n\
         data_dir = {data}\n\
         genesis = \"genesis.json\"\n\
         node_key_file = {nkey}\n\
         data_key_file = {dkey}\n\
         listen = {listen}\n\
         # Where the other nodes reach this one (recorded in the Raft membership).\n\
         advertise = {adv}\n\
         # Only one node of the consortium initialises the cluster; the others join it.\n\
         bootstrap = {bootstrap}\n\
         \n\
         # The node's TLS identity; genesis pins its key (`tls`), so peers and\n\
         # clients that trust genesis accept only this key for node {id}.\n\
         [tls]\n\
         cert_file = {crt}\n\
         key_file = {key}\n",
        id = n.id,
        name = org.name,
        org = org.id,
        file = Layout::node_config(n.id),
        data = toml_str(&Layout::data_dir(n.id)),
        nkey = toml_str(&Layout::node_key(n.id)),
        dkey = toml_str(Layout::DATA_KEY),
        listen = toml_str(&n.listen_addr()?.to_string()),
        adv = toml_str(&n.address),
        crt = toml_str(&crt),
        key = toml_str(&key),
    );
    let others: Vec<_> = peers.iter().filter(|(id, _)| **id != n.id).collect();
    if !others.is_empty() {
        t.push_str("\n# The other nodes, by id: a joining node asks them to add it.\n[peers]\n");
        for (id, addr) in others {
            t.push_str(&format!("\"{id}\" = {}\n", toml_str(addr)));
        }
    }
    Ok(t)
}

/// Writes `genesis` as pretty JSON to a new file.
fn write_genesis(path: &Path, genesis: &Genesis) -> Result<(), SetupError> {
    let text = serde_json::to_string_pretty(genesis).map_err(|source| SetupError::Json {
        path: path.into(),
        source,
    })?;
    write_new_file(path, &format!("{text}\n"))
}

/// `rxchain genesis new`: generates every organisation's keys under `out`
/// ([`Layout`]), builds and validates the genesis, and writes it at the top
/// and into each organisation's directory, with a `node<id>.toml` per node
/// whose peers are all the other nodes. Returns the genesis.
pub fn new_consortium(desc: &Description, out: &Path) -> Result<Genesis, SetupError> {
    let keys = desc
        .orgs
        .iter()
        .map(OrgKeys::generate)
        .collect::<Result<Vec<_>, _>>()?;
    let genesis = Genesis {
        chain_id: label("chain_id", &desc.chain_id)?,
        created_at: Timestamp(desc.created_at.unwrap_or_else(crate::clock::now_ms)),
        orgs: keys.iter().map(|k| k.decl.clone()).collect(),
        params: params(&desc.params)?,
    };
    genesis.validate()?;
    let mut targets = vec![Layout::genesis(out)];
    for (o, k) in desc.orgs.iter().zip(&keys) {
        let dir = Layout::org_dir(out, &o.id);
        targets.extend(k.targets(&dir));
        targets.push(Layout::genesis(&dir));
    }
    refuse_existing(&targets)?;
    let all: Vec<(&OrgDesc, &NodeDesc)> = desc
        .orgs
        .iter()
        .flat_map(|o| o.nodes.iter().map(move |n| (o, n)))
        .collect();
    let explicit = all.iter().any(|(_, n)| n.bootstrap.is_some());
    let peers: BTreeMap<u64, String> = all.iter().map(|(_, n)| (n.id, n.address.clone())).collect();
    let mut configs = Vec::new();
    for (i, (o, n)) in all.iter().enumerate() {
        let bootstrap = if explicit {
            n.bootstrap.unwrap_or(false)
        } else {
            i == 0
        };
        let path = Layout::org_dir(out, &o.id).join(Layout::node_config(n.id));
        configs.push((path, node_toml(o, n, bootstrap, &peers)?));
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    write_genesis(&Layout::genesis(out), &genesis)?;
    for (o, k) in desc.orgs.iter().zip(&keys) {
        let dir = Layout::org_dir(out, &o.id);
        k.write(&dir)?;
        write_genesis(&Layout::genesis(&dir), &genesis)?;
    }
    for (path, text) in configs {
        write_new_file(&path, &text)?;
    }
    Ok(genesis)
}

/// `rxchain keygen --org`: one organisation's keys into `dir`, its
/// `org.pub.json`, and a `node<id>.toml` per node (not bootstrapping,
/// joining through `peers`; it expects `genesis.json` beside it, which the
/// consortium sends once assembled). Returns the public declaration.
pub fn keygen_org(
    org: &OrgDesc,
    dir: &Path,
    peers: &BTreeMap<u64, String>,
) -> Result<OrgDecl, SetupError> {
    let keys = OrgKeys::generate(org)?;
    refuse_existing(&keys.targets(dir))?;
    let configs = org
        .nodes
        .iter()
        .map(|n| {
            Ok((
                dir.join(Layout::node_config(n.id)),
                node_toml(org, n, false, peers)?,
            ))
        })
        .collect::<Result<Vec<_>, SetupError>>()?;
    keys.write(dir)?;
    for (path, text) in configs {
        write_new_file(&path, &text)?;
    }
    Ok(keys.decl)
}

/// Parses `ID=HOST:PORT` peers.
pub fn parse_peers(peers: &[String]) -> Result<BTreeMap<u64, String>, SetupError> {
    peers
        .iter()
        .map(|p| {
            let (id, addr) = p
                .split_once('=')
                .ok_or_else(|| SetupError::Peer(p.clone()))?;
            let id = id.trim().parse().map_err(|_| SetupError::Peer(p.clone()))?;
            Ok((id, addr.trim().to_string()))
        })
        .collect()
}

/// `rxchain genesis add-org`: adds the declaration in `org_file` to the
/// genesis at `genesis_path`, checks the result and rewrites the file
/// (through a temporary file, so a failure leaves the old one). Returns the
/// new genesis.
pub fn add_org(genesis_path: &Path, org_file: &Path) -> Result<Genesis, SetupError> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(io(p));
    let mut genesis: Genesis =
        serde_json::from_str(&read(genesis_path)?).map_err(|source| SetupError::Json {
            path: genesis_path.into(),
            source,
        })?;
    let org: OrgDecl =
        serde_json::from_str(&read(org_file)?).map_err(|source| SetupError::Json {
            path: org_file.into(),
            source,
        })?;
    if genesis.org(&org.id).is_some() {
        return Err(SetupError::DuplicateOrg(org.id.to_string()));
    }
    genesis.orgs.push(org);
    genesis.validate()?;
    let text = serde_json::to_string_pretty(&genesis).map_err(|source| SetupError::Json {
        path: genesis_path.into(),
        source,
    })?;
    let tmp = genesis_path.with_extension("json.tmp");
    std::fs::write(&tmp, format!("{text}\n")).map_err(io(&tmp))?;
    std::fs::rename(&tmp, genesis_path).map_err(io(genesis_path))?;
    Ok(genesis)
}

/// Runs `rxchain genesis …`.
pub fn run(action: GenesisAction) -> anyhow::Result<()> {
    match action {
        GenesisAction::New { config, out } => {
            let desc = read_description(&config)?;
            let g = new_consortium(&desc, &out)?;
            println!(
                "wrote {} for chain {} (genesis {})",
                Layout::genesis(&out).display(),
                g.chain_id,
                g.hash()
            );
            for o in &desc.orgs {
                let dir = Layout::org_dir(&out, &o.id);
                let nodes: Vec<_> = o.nodes.iter().map(|n| Layout::node_config(n.id)).collect();
                println!("  {}: {} ({})", o.id, dir.display(), nodes.join(", "));
            }
            eprintln!(
                "copy each organisation's directory to its machine; keep admin.key offline (it signs staff registrations and governance), never on the node"
            );
            Ok(())
        }
        GenesisAction::AddOrg { genesis, org_file } => {
            let g = add_org(&genesis, &org_file)?;
            println!(
                "added to {}: now {} organisations (genesis {})",
                genesis.display(),
                g.orgs.len(),
                g.hash()
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(text: &str) -> Description {
        Figment::from(Toml::string(text)).extract().unwrap()
    }

    const TWO: &str = r#"
        chain_id = "t"
        [[orgs]]
        id = "hosp"
        name = "H"
        kind = "hospital"
        address = "1 Road"
        [[orgs.nodes]]
        id = 1
        address = "127.0.0.1:9001"
        [[orgs]]
        id = "pharm"
        name = "P"
        kind = "pharmacy"
        address = "2 Road"
        [[orgs.nodes]]
        id = 2
        address = "rx.p.example:9002"
    "#;

    #[test]
    fn an_invalid_consortium_writes_nothing() {
        // No regulator: the genesis is refused before any key is written.
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let err = new_consortium(&desc(TWO), &out).unwrap_err();
        assert!(
            matches!(err, SetupError::Genesis(GenesisError::NoRegulator)),
            "{err}"
        );
        assert!(!out.exists(), "nothing was written");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, format!("{TWO}\nbogus = 1\n")).unwrap();
        let err = read_description(&f).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn nodes_listen_on_their_ip_or_on_all_interfaces() {
        let d = desc(TWO);
        assert_eq!(
            d.orgs[0].nodes[0].listen_addr().unwrap(),
            "127.0.0.1:9001".parse().unwrap()
        );
        assert_eq!(
            d.orgs[1].nodes[0].listen_addr().unwrap(),
            "0.0.0.0:9002".parse().unwrap()
        );
        let bad = NodeDesc {
            address: "no-port".into(),
            ..d.orgs[0].nodes[0].clone()
        };
        assert!(matches!(bad.listen_addr(), Err(SetupError::Address { .. })));
    }

    #[test]
    fn peers_are_id_equals_address() {
        let p = parse_peers(&["1=a:1".into(), " 2 = b:2 ".into()]).unwrap();
        assert_eq!(p[&1], "a:1");
        assert_eq!(p[&2], "b:2");
        assert!(matches!(
            parse_peers(&["x=a:1".into()]),
            Err(SetupError::Peer(_))
        ));
    }
}
