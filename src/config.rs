//! Typed settings: a TOML file, then `RXCHAIN_` environment variables on top.
//!
//! Nested keys use a double underscore: `RXCHAIN_BLOCK__MAX_TXS=500` sets
//! `block.max_txs`. Key material is never part of the settings themselves;
//! the settings name the key file, and keys are loaded into [`Secret`]s.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read settings file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML (after environment overrides) does not fit the settings.
    #[error("invalid settings: {0}")]
    Invalid(String),
}

/// A value that must never be printed or logged.
#[derive(Clone)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret.
    pub fn new(v: T) -> Self {
        Secret(v)
    }
    /// Reads the secret. Call sites are easy to audit with grep.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How the leader cuts blocks.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockSettings {
    /// Cut when this many transactions wait.
    pub max_txs: usize,
    /// Cut when the waiting transactions reach this many encoded bytes.
    pub max_bytes: usize,
    /// Cut this long after the first waiting transaction arrived.
    pub max_wait_ms: u64,
}

impl Default for BlockSettings {
    fn default() -> Self {
        BlockSettings {
            max_txs: 4000,
            max_bytes: 8 * 1024 * 1024,
            max_wait_ms: 2,
        }
    }
}

/// HTTP limits.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Largest JSON request body.
    pub body_limit_bytes: usize,
    /// Largest uploaded image (QR photos).
    pub image_limit_bytes: usize,
    /// Requests taking longer are answered 408.
    pub request_timeout_ms: u64,
    /// How long a submission waits for its commit before answering 202.
    pub commit_wait_ms: u64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            body_limit_bytes: 256 * 1024,
            image_limit_bytes: 15 * 1024 * 1024,
            request_timeout_ms: 30_000,
            commit_wait_ms: 10_000,
        }
    }
}

/// Raft timing and log compaction.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSettings {
    /// Leader heartbeat interval. openraft also uses it as the timeout of
    /// every AppendEntries RPC, so it must cover sending a full block and
    /// the follower persisting it, not just a network round trip.
    pub heartbeat_ms: u64,
    /// Lower bound of the randomised election timeout.
    pub election_min_ms: u64,
    /// Upper bound of the randomised election timeout.
    pub election_max_ms: u64,
    /// Take a snapshot after this many log entries since the last one.
    pub snapshot_after_logs: u64,
    /// Log entries kept after a snapshot, for slow followers.
    pub keep_logs: u64,
    /// The most log entries (blocks) one AppendEntries carries. A follower
    /// that is far behind is caught up in requests of this many blocks; one
    /// huge request would outlast the heartbeat-long RPC timeout every time
    /// and the follower would never catch up.
    pub max_payload_entries: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            // 100 ms (openraft's own default) made AppendEntries of busy
            // blocks time out on a loaded follower, and the leader then lost
            // its quorum and leadership again and again; 250 ms / 1–2 s keeps
            // failover around two seconds without that churn.
            heartbeat_ms: 250,
            election_min_ms: 1000,
            election_max_ms: 2000,
            snapshot_after_logs: 5000,
            keep_logs: 1000,
            max_payload_entries: 8,
        }
    }
}

/// Everything a node needs to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// This node's id; must be declared in genesis.
    pub node_id: u64,
    /// Where sled keeps the log, the chain and the state.
    pub data_dir: PathBuf,
    /// The genesis document (JSON).
    pub genesis: PathBuf,
    /// The node's secret key file (hex). Never printed.
    pub node_key_file: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The address other nodes reach this node at, when it differs from `listen`.
    #[serde(default)]
    pub advertise: Option<String>,
    /// Other nodes of the consortium, by node id: `"2" = "10.0.0.2:8080"`.
    #[serde(default)]
    pub peers: BTreeMap<String, String>,
    /// Whether this node initialises a new cluster (the first node only).
    #[serde(default)]
    pub bootstrap: bool,
    /// Directory of the web pages; `None` serves none.
    #[serde(default)]
    pub web_dir: Option<PathBuf>,
    /// The node's organisation's data key file (hex), for opening sealed
    /// content addressed to the organisation: patient names on a
    /// prescriber's list, patients' hand-overs to a pharmacy. Without it the
    /// web apps show short ids instead of names.
    #[serde(default)]
    pub data_key_file: Option<PathBuf>,
    /// Block cutting.
    #[serde(default)]
    pub block: BlockSettings,
    /// HTTP limits.
    #[serde(default)]
    pub api: ApiSettings,
    /// Raft timing.
    #[serde(default)]
    pub raft: RaftSettings,
    /// TEST ONLY: enables `POST /v1/test/partition`, which lets anyone who
    /// can reach the node cut it off from chosen peers (fault injection for
    /// the cluster tests). Never set this on a real node. Default false.
    #[serde(default)]
    pub testing_faults: bool,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Settings {
    /// Loads a TOML file, applies `RXCHAIN_` variables from `env`, and
    /// resolves relative paths against the file's directory.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let mut s = Self::from_toml(&text, env)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut s.data_dir, &mut s.genesis, &mut s.node_key_file] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for p in [s.web_dir.as_mut(), s.data_key_file.as_mut()]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(s)
    }

    /// Parses TOML text with environment overrides.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut value: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("RXCHAIN_") else {
                continue;
            };
            if rest.is_empty() || rest == "CONFIG" || rest == "LOG" {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            set_path(&mut value, &path, parse_env_value(&v));
        }
        toml::Value::Table(value)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))
    }

    /// The address peers and the cluster record for this node.
    pub fn advertised(&self, bound: SocketAddr) -> String {
        self.advertise.clone().unwrap_or_else(|| bound.to_string())
    }
}

/// Environment values are TOML scalars when they parse as one, else strings.
fn parse_env_value(v: &str) -> toml::Value {
    let probe = format!("x = {v}");
    match toml::from_str::<toml::Table>(&probe) {
        Ok(mut t) => t
            .remove("x")
            .unwrap_or_else(|| toml::Value::String(v.into())),
        Err(_) => toml::Value::String(v.into()),
    }
}

fn set_path(t: &mut toml::Table, path: &[String], v: toml::Value) {
    match path {
        [] => {}
        [last] => {
            t.insert(last.clone(), v);
        }
        [first, rest @ ..] => {
            let entry = t
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(inner) = entry {
                set_path(inner, rest, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        node_id = 1
        data_dir = "d"
        genesis = "g.json"
        node_key_file = "k"
    "#;

    #[test]
    fn environment_overrides_file_values() {
        let env = vec![
            ("RXCHAIN_BLOCK__MAX_TXS".to_string(), "17".to_string()),
            ("RXCHAIN_LISTEN".to_string(), "127.0.0.1:0".to_string()),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let s = Settings::from_toml(BASE, env).unwrap();
        assert_eq!(s.block.max_txs, 17);
        assert_eq!(s.listen.port(), 0);
        assert_eq!(s.api.commit_wait_ms, ApiSettings::default().commit_wait_ms);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Settings::from_toml(&format!("{BASE}\nbogus = 1"), vec![]).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("k")), "Secret(<redacted>)");
    }
}
