//! Typed settings: a TOML file, then `RXCHAIN_` environment variables on top,
//! merged by figment.
//!
//! Nested keys use a double underscore: `RXCHAIN_BLOCK__MAX_TXS=500` sets
//! `block.max_txs`, `RXCHAIN_API__BODY_LIMIT_BYTES=1048576` sets
//! `api.body_limit_bytes`. Values are read the way figment's `Env` provider
//! reads them: `true`, numbers and `[..]` arrays are typed, anything else is
//! a string. `RXCHAIN_CONFIG` (the file's path) and `RXCHAIN_LOG` (the log
//! filter) are not settings and are skipped. Key material is never part of
//! the settings themselves; the settings name the key file, and keys are
//! loaded into [`Secret`]s.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use figment::Figment;
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};

/// The prefix of every environment variable that overrides a setting.
pub const ENV_PREFIX: &str = "RXCHAIN_";

/// The separator of nested keys in an environment variable's name.
pub const ENV_SEPARATOR: &str = "__";

/// `RXCHAIN_` variables that are not settings: the settings file's path and
/// the log filter, read by the command line and by `main`.
const ENV_NOT_SETTINGS: [&str; 2] = ["CONFIG", "LOG"];

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
    /// Boxed because figment's error is large and this path is cold.
    #[error("invalid settings: {0}")]
    Invalid(#[source] Box<figment::Error>),
    /// A value has the right type but is out of its range.
    #[error("invalid setting {key}: {why}")]
    OutOfRange {
        /// The setting, as a TOML key path.
        key: &'static str,
        /// What the value must be, and what it was.
        why: String,
    },
}

/// A value that must never be printed or logged: `Debug` shows
/// `Secret(<redacted>)`, there is no `Display`, and the value is zeroed when
/// dropped (secrecy's `SecretBox`). Reading it takes [`Secret::expose`],
/// so every use is easy to audit with grep.
pub struct Secret<T: secrecy::zeroize::Zeroize>(SecretBox<T>);

impl<T: secrecy::zeroize::Zeroize> Secret<T> {
    /// Wraps a secret.
    pub fn new(v: T) -> Self {
        Secret(SecretBox::new(Box::new(v)))
    }
    /// Reads the secret. Call sites are easy to audit with grep.
    pub fn expose(&self) -> &T {
        self.0.expose_secret()
    }
}

impl<'de, T: secrecy::zeroize::Zeroize + Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret::new)
    }
}

impl<T: secrecy::zeroize::Zeroize + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Secret::new(self.expose().clone())
    }
}

impl<T: secrecy::zeroize::Zeroize> std::fmt::Debug for Secret<T> {
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
    /// The most bytes of one block's Raft entry (its postcard encoding:
    /// transactions, outcomes, header and clock proof); the leader cuts
    /// when the waiting transactions would fill it. Bounds how long the
    /// largest block takes to replicate (see `raft.append_timeout_ms`).
    pub max_bytes: usize,
    /// Cut this long after the first waiting transaction arrived.
    pub max_wait_ms: u64,
    /// How many proposed blocks may be in flight (appended, not yet
    /// applied) at once. Each is built on the state the ones before it
    /// leave, so the next block is cut and executed while the previous
    /// one replicates; 1 waits for each block to apply before cutting the
    /// next. At most [`BlockSettings::MAX_PIPELINE`].
    pub pipeline: usize,
}

impl BlockSettings {
    /// The most blocks that may be in flight: the mempool keeps the
    /// executions of this many proposed blocks for the state machine to
    /// reuse (`mempool::PROPOSED_KEPT`); a deeper pipeline would make it
    /// execute every block twice.
    pub const MAX_PIPELINE: usize = 8;
}

impl Default for BlockSettings {
    fn default() -> Self {
        BlockSettings {
            max_txs: 4000,
            max_bytes: 1024 * 1024,
            max_wait_ms: 2,
            pipeline: 1,
        }
    }
}

/// HTTP limits.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Largest JSON request body.
    pub body_limit_bytes: usize,
    /// Largest batch body (`POST /v1/tx/batch`, at most 1000 transactions).
    pub batch_body_limit_bytes: usize,
    /// Largest uploaded image (QR photos).
    pub image_limit_bytes: usize,
    /// Requests taking longer are answered 408.
    pub request_timeout_ms: u64,
    /// How long a submission waits for its commit before answering 202.
    pub commit_wait_ms: u64,
    /// Refused transactions one signer may cause per minute before
    /// further submissions get 429 `too_many_refusals`.
    pub refusals_per_signer: usize,
    /// Refused transactions one client address may cause per minute.
    pub refusals_per_address: usize,
    /// Most transactions waiting in the mempool.
    pub mempool_max_txs: usize,
    /// Most encoded bytes of transactions waiting in the mempool; past it
    /// submissions get 503 `mempool_full` with `Retry-After`.
    pub mempool_max_bytes: usize,
    /// TEST ONLY: checks every API answer against the node's OpenAPI
    /// document and replaces one that does not match (an undocumented
    /// status, or a JSON body that does not fit its schema) with a 500
    /// `openapi_mismatch`, so tests catch a drifting document. It buffers
    /// and validates every JSON answer: never set this on a real node.
    /// Default false.
    pub testing_validate_openapi: bool,
}

/// Refused transactions per signer per minute before 429, by default.
pub const DEFAULT_REFUSALS_PER_SIGNER: usize = 30;
/// Refused transactions per client address per minute before 429, by default.
pub const DEFAULT_REFUSALS_PER_ADDRESS: usize = 100;

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            body_limit_bytes: 256 * 1024,
            batch_body_limit_bytes: 8 * 1024 * 1024,
            image_limit_bytes: 15 * 1024 * 1024,
            request_timeout_ms: 30_000,
            commit_wait_ms: 10_000,
            refusals_per_signer: DEFAULT_REFUSALS_PER_SIGNER,
            refusals_per_address: DEFAULT_REFUSALS_PER_ADDRESS,
            mempool_max_txs: 200_000,
            mempool_max_bytes: 64 * 1024 * 1024,
            testing_validate_openapi: false,
        }
    }
}

/// The database.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// sled's page cache in MiB: the bound on the memory the database
    /// keeps as the chain grows (sled's own default is 1 GiB). Default 64.
    pub cache_mb: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            cache_mb: crate::store::DEFAULT_CACHE_BYTES / (1024 * 1024),
        }
    }
}

/// Raft timing and log compaction.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSettings {
    /// Leader heartbeat interval. openraft 0.9 waits this long for every
    /// AppendEntries; one carrying blocks carries on past that, until
    /// [`RaftSettings::append_timeout_ms`] (see `raft::network`).
    pub heartbeat_ms: u64,
    /// How long one AppendEntries carrying blocks may take (send, and the
    /// follower persisting it) before it counts as failed. Independent of
    /// the heartbeat; blocks are bounded in bytes (`block.max_bytes`) so
    /// that the largest one replicates well inside it.
    pub append_timeout_ms: u64,
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
    /// huge request would outlast the append timeout every time and the
    /// follower would never catch up.
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
            append_timeout_ms: 10_000,
            election_min_ms: 1000,
            election_max_ms: 2000,
            snapshot_after_logs: 5000,
            keep_logs: 1000,
            max_payload_entries: 8,
        }
    }
}

/// The node's TLS identity: its certificate chain and private key (PEM).
/// The same certificate serves node-to-node mutual TLS and the public HTTPS
/// API; it may be self-signed (`rxchain keygen` makes one) or issued by a
/// CA for the same key. Either way its key must be the one genesis declares
/// for this node (`tls`), or the node refuses to start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The certificate chain, leaf first (PEM).
    pub cert_file: PathBuf,
    /// The private key (PKCS#8 PEM). Never printed.
    pub key_file: PathBuf,
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
    /// A file the node writes the address it bound to (`host:port`) into
    /// once it listens: with `listen` on port 0, this is how a supervisor
    /// or a test learns the port the system chose.
    #[serde(default)]
    pub addr_file: Option<PathBuf>,
    /// Other nodes of the consortium, by node id: `"2" = "10.0.0.2:8080"`.
    #[serde(default)]
    pub peers: BTreeMap<String, String>,
    /// Whether this node initialises a new cluster (the first node only).
    #[serde(default)]
    pub bootstrap: bool,
    /// Serve the web pages from this directory instead of the copy built
    /// into the binary (for working on the pages); `None` serves the
    /// built-in copy.
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
    /// The database (`[storage]`).
    #[serde(default)]
    pub storage: StorageSettings,
    /// Serve HTTPS and talk to peers over mutual TLS with this identity.
    /// Without it the node speaks plain HTTP, which is allowed only on a
    /// loopback `listen` address unless `insecure_plaintext` is set.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
    /// Allows plain HTTP on a non-loopback address: staff passwords, QR
    /// secrets and Raft traffic then cross the network readable and
    /// forgeable by anyone on the path. Default false.
    #[serde(default)]
    pub insecure_plaintext: bool,
    /// TEST ONLY: enables `POST /v1/test/partition`, which lets anyone who
    /// can reach the node cut it off from chosen peers (fault injection for
    /// the cluster tests). Never set this on a real node. Default false.
    #[serde(default)]
    pub testing_faults: bool,
    /// TEST ONLY: milliseconds added to the clock this node proposes block
    /// times and signs clock attestations with (negative: behind). Honoured
    /// only with `testing_faults = true`. Default 0.
    #[serde(default)]
    pub testing_clock_offset_ms: i64,
    /// Seconds between erasure sweeps, which replace the key wraps of
    /// prescriptions past their retention period by their digests
    /// (crypto-shredding, `store::erase`). The first sweep runs a few
    /// seconds after start. Default 3600.
    #[serde(default = "default_erasure_sweep_secs")]
    pub erasure_sweep_secs: u64,
    /// Patient e-mail (`[email]`): where the issuing hospital's node sends
    /// the QR code and status notifications.
    #[serde(default)]
    pub email: EmailSettings,
}

fn default_erasure_sweep_secs() -> u64 {
    3600
}

/// How the issuing hospital's node delivers patient e-mail.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailSettings {
    /// `file` (the default: `.eml` files under `<data_dir>/outbox`, for the
    /// demo), `smtp` (through `smtp_url`) or `off` (nothing is queued).
    pub transport: EmailTransport,
    /// lettre's URL form: `smtps://host:465` (TLS from the start) or
    /// `smtp://host:587` (STARTTLS, required unless `?tls=opportunistic`
    /// is added, which should never be done outside a test).
    pub smtp_url: String,
    /// SMTP user name, if the server wants AUTH.
    pub username: Option<String>,
    /// SMTP password (`RXCHAIN_EMAIL__PASSWORD`); never printed.
    #[serde(skip_serializing)]
    pub password: Option<Secret<String>>,
    /// Extra PEM root certificates to trust for the SMTP server (a private
    /// CA); the public web roots are always trusted.
    pub ca_file: Option<PathBuf>,
    /// The sender address.
    pub from: String,
    /// Where patients' replies go, if not to `from`.
    pub reply_to: Option<String>,
    /// The base of the patient link (the patient page's public URL).
    pub public_url: String,
    /// Messages sent per minute at most (0: unlimited).
    pub max_per_minute: u32,
    /// Attempts before a message is marked failed.
    pub max_attempts: u32,
    /// The first retry's delay; each further retry doubles it, up to 5 min.
    pub retry_initial_ms: u64,
    /// Seconds one SMTP exchange may take before it counts as a temporary
    /// failure.
    pub timeout_secs: u64,
    /// `en` or `zh`: the language when a prescription names none.
    pub default_lang: String,
    /// Days before the end of validity at which an unfilled prescription's
    /// patient is reminded.
    pub expiry_notice_days: u32,
    /// Seconds between two runs of the expiry scheduler and the outbox
    /// pruner.
    pub scan_secs: u64,
    /// Days a sent or failed message is kept (for the outbox view) before it
    /// is deleted; a closed prescription's contact (the patient's address)
    /// goes once its last message has. 0 deletes them at the next scan.
    pub retention_days: u32,
}

/// Where patient e-mail goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTransport {
    /// `.eml` files under the data directory.
    File,
    /// A real SMTP server.
    Smtp,
    /// Nothing is queued.
    Off,
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            transport: EmailTransport::File,
            smtp_url: String::new(),
            username: None,
            password: None,
            ca_file: None,
            from: "rxchain <no-reply@rxchain.invalid>".into(),
            reply_to: None,
            public_url: String::new(),
            max_per_minute: 120,
            max_attempts: 8,
            retry_initial_ms: 2_000,
            timeout_secs: 10,
            default_lang: "en".into(),
            expiry_notice_days: 3,
            scan_secs: 60,
            retention_days: 30,
        }
    }
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
        let tls = s.tls.as_mut().map(|t| [&mut t.cert_file, &mut t.key_file]);
        for p in [
            s.web_dir.as_mut(),
            s.data_key_file.as_mut(),
            s.addr_file.as_mut(),
            s.email.ca_file.as_mut(),
        ]
        .into_iter()
        .flatten()
        .chain(tls.into_iter().flatten())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(s)
    }

    /// Parses TOML text with environment overrides: the `RXCHAIN_`
    /// variables among `env` are merged over the file, later ones winning.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let settings: Settings = Self::figment(text, env)
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        settings.check_ranges()?;
        Ok(settings)
    }

    /// Refuses values that parse but cannot work.
    fn check_ranges(&self) -> Result<(), ConfigError> {
        let pipeline = self.block.pipeline;
        if !(1..=BlockSettings::MAX_PIPELINE).contains(&pipeline) {
            return Err(ConfigError::OutOfRange {
                key: "block.pipeline",
                why: format!(
                    "must be 1 to {} blocks in flight, not {pipeline}",
                    BlockSettings::MAX_PIPELINE
                ),
            });
        }
        Ok(())
    }

    /// The figment of a TOML text with the `RXCHAIN_` variables among `env`
    /// merged on top.
    ///
    /// The variables come as a list rather than from figment's `Env`
    /// provider, which only reads the process environment, so that callers
    /// and tests choose what is merged. Each is treated as `Env` would treat
    /// it: the prefix stripped, `__` made a key path, the name lower-cased
    /// and the value parsed as a figment [`Value`].
    fn figment(text: &str, env: impl IntoIterator<Item = (String, String)>) -> Figment {
        let mut figment = Figment::from(Toml::string(text));
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path = rest.to_ascii_lowercase().replace(ENV_SEPARATOR, ".");
            // Empty names and empty path segments (`RXCHAIN_A____B`) name no
            // setting; figment's `Env` skips them the same way.
            if path.is_empty()
                || path.split('.').any(str::is_empty)
                || ENV_NOT_SETTINGS
                    .iter()
                    .any(|n| rest.eq_ignore_ascii_case(n))
            {
                continue;
            }
            let value: Value = match value.parse() {
                Ok(v) => v,
                Err(never) => match never {},
            };
            figment = figment.merge(Serialized::default(&path, value));
        }
        figment
    }

    /// The address peers and the cluster record for this node.
    pub fn advertised(&self, bound: SocketAddr) -> String {
        self.advertise.clone().unwrap_or_else(|| bound.to_string())
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
    fn storage_cache_and_erasure_sweep_have_defaults_and_take_file_values() {
        let s = Settings::from_toml(BASE, vec![]).unwrap();
        assert_eq!((s.storage.cache_mb, s.erasure_sweep_secs), (64, 3600));
        let s = Settings::from_toml(
            &format!("erasure_sweep_secs = 60\n{BASE}\n[storage]\ncache_mb = 16\n"),
            vec![],
        )
        .unwrap();
        assert_eq!((s.storage.cache_mb, s.erasure_sweep_secs), (16, 60));
        let err =
            Settings::from_toml(&format!("{BASE}\n[storage]\ncache = 1\n"), vec![]).unwrap_err();
        assert!(err.to_string().contains("cache"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Settings::from_toml(&format!("{BASE}\nbogus = 1"), vec![]).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn a_pipeline_outside_one_to_eight_is_refused_with_its_key() {
        for bad in [0, BlockSettings::MAX_PIPELINE + 1, 64] {
            let err = Settings::from_toml(&format!("{BASE}\n[block]\npipeline = {bad}"), vec![])
                .unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(
                    err,
                    ConfigError::OutOfRange {
                        key: "block.pipeline",
                        ..
                    }
                ),
                "{text}"
            );
            assert!(text.contains(&format!("not {bad}")), "{text}");
        }
        for good in [1, 3, BlockSettings::MAX_PIPELINE] {
            let s = Settings::from_toml(&format!("{BASE}\n[block]\npipeline = {good}"), vec![])
                .unwrap();
            assert_eq!(s.block.pipeline, good);
        }
        let from_env = Settings::from_toml(
            BASE,
            vec![("RXCHAIN_BLOCK__PIPELINE".to_string(), "9".to_string())],
        )
        .unwrap_err();
        assert!(
            from_env.to_string().contains("block.pipeline"),
            "{from_env}"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(
            format!("{:?}", Secret::new("k".to_string())),
            "Secret(<redacted>)"
        );
    }

    #[test]
    fn nested_environment_keys_combine_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            format!("{BASE}\nbootstrap = true\n[api]\nbody_limit_bytes = 1000\nimage_limit_bytes = 2000\n[peers]\n2 = \"10.0.0.2:8080\"\n"),
        )
        .unwrap();
        let env = vec![
            (
                "RXCHAIN_API__BODY_LIMIT_BYTES".to_string(),
                "4096".to_string(),
            ),
            ("RXCHAIN_RAFT__HEARTBEAT_MS".to_string(), "300".to_string()),
            ("RXCHAIN_PEERS__3".to_string(), "10.0.0.3:8080".to_string()),
            (
                "RXCHAIN_ADVERTISE".to_string(),
                "node1.example:8080".to_string(),
            ),
            ("RXCHAIN_CONFIG".to_string(), "elsewhere.toml".to_string()),
            ("RXCHAIN_LOG".to_string(), "debug".to_string()),
        ];
        let s = Settings::load(&file, env).unwrap();
        // The override replaces one nested key and leaves its siblings.
        assert_eq!(s.api.body_limit_bytes, 4096);
        assert_eq!(s.api.image_limit_bytes, 2000);
        assert_eq!(s.api.commit_wait_ms, ApiSettings::default().commit_wait_ms);
        // A nested key of a section the file does not have.
        assert_eq!(s.raft.heartbeat_ms, 300);
        assert_eq!(s.raft.keep_logs, RaftSettings::default().keep_logs);
        // Map entries from both sources are kept.
        assert_eq!(s.peers.get("2").map(String::as_str), Some("10.0.0.2:8080"));
        assert_eq!(s.peers.get("3").map(String::as_str), Some("10.0.0.3:8080"));
        assert_eq!(s.advertise.as_deref(), Some("node1.example:8080"));
        assert!(s.bootstrap);
        // File values stay, with relative paths resolved against its directory.
        assert_eq!(s.node_id, 1);
        assert_eq!(s.data_dir, dir.path().join("d"));
    }

    #[test]
    fn an_unknown_environment_setting_is_refused() {
        let env = vec![("RXCHAIN_BLOCK__MAX_TX".to_string(), "1".to_string())];
        let err = Settings::from_toml(BASE, env).unwrap_err();
        assert!(err.to_string().contains("max_tx"), "{err}");
    }
}
