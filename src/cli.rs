//! The command line: `rxchain demo | init | keygen | genesis | node | tx | verify | bench | cluster | staff | admin | governance | receipt | backup | restore`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// rxchain: e-prescriptions on a Raft-ordered consortium chain.
#[derive(Parser, Debug)]
#[command(name = "rxchain", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a local demo consortium from fixtures/ and serve the API and web pages.
    Demo(DemoArgs),
    /// Create a node's data directory from a genesis file.
    Init(InitArgs),
    /// Generate a secp256k1 key file and print its public key, or (with
    /// `--org`) one organisation's whole key set and its public declaration.
    Keygen(KeygenArgs),
    /// Build a consortium's genesis and every organisation's key files, or
    /// add an organisation's public declaration to a genesis before launch.
    Genesis(GenesisArgs),
    /// Run a node from a settings file.
    Node(NodeArgs),
    /// Build, sign and submit lifecycle transactions.
    Tx(TxArgs),
    /// Re-verify a stopped node's whole chain offline.
    Verify(VerifyArgs),
    /// Where a stopped node's disk goes: records and bytes per sled tree and
    /// per kind of chain record, and bytes per transaction.
    StorageReport(StorageReportArgs),
    /// Drive full prescription lifecycles against a node and report throughput and latency.
    Bench(BenchArgs),
    /// Inspect and change the Raft cluster's membership.
    Cluster(ClusterArgs),
    /// Manage your organisation's staff accounts on its node (a staff admin).
    Staff(StaffArgs),
    /// Organisation set-up on its own node: `admin bootstrap` creates the
    /// first staff admin from the organisation's admin key file.
    Admin(AdminArgs),
    /// Propose, approve and follow M-of-N changes to the consortium
    /// (nodes, organisations, keys, parameters), or take your own node out.
    Governance(GovernanceArgs),
    /// Check a transaction receipt (`GET /v1/tx/{id}`) offline.
    Receipt(ReceiptArgs),
    /// Back up a node's chain: online from a running node (`--node URL`),
    /// or offline from a stopped node's data directory.
    Backup(BackupArgs),
    /// Check a backup completely and restore it into a new data directory.
    Restore(RestoreArgs),
}

/// `rxchain backup`.
#[derive(Args, Debug)]
pub struct BackupArgs {
    /// A stopped node's data directory (offline backup; read, never written).
    #[arg(required_unless_present = "node", conflicts_with = "node")]
    pub data_dir: Option<PathBuf>,
    /// A running node's base URL (online backup, signed with `--key`).
    #[arg(long)]
    pub node: Option<String>,
    /// Online: the key that signs the request, the admin key of the
    /// organisation that runs the node or the node's own key.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The genesis file: it checks the backup, and trusts an `https://`
    /// node by the TLS keys it declares. Offline it defaults to
    /// `<data dir>/genesis.json`.
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// Online over `https://`: trust a CA's certificate instead.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Where to write the backup (refuses to overwrite).
    #[arg(long)]
    pub out: PathBuf,
    /// No progress bar (for scripts).
    #[arg(long)]
    pub quiet: bool,
}

/// `rxchain restore`.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file.
    pub file: PathBuf,
    /// The new (or empty) data directory to restore into.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The consortium's genesis file the backup must grow from.
    #[arg(long, default_value = "genesis.json")]
    pub genesis: PathBuf,
    /// No progress bar (for scripts).
    #[arg(long)]
    pub quiet: bool,
}

/// `rxchain governance …`.
#[derive(Args, Debug)]
pub struct GovernanceArgs {
    /// A node's base URL.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    pub node: String,
    /// The signing organisation's admin key file.
    #[arg(long, global = true)]
    pub admin_key: Option<PathBuf>,
    /// DEMO ONLY: sign with the publicly derived demo admin key of this
    /// organisation.
    #[arg(long, global = true)]
    pub demo_org: Option<String>,
    /// Print JSON instead of text (`status`).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: GovernanceAction,
}

/// A governance command.
#[derive(Subcommand, Debug)]
pub enum GovernanceAction {
    /// Propose a change; your organisation's approval is the first.
    Propose {
        /// Days the proposal stays open for approvals.
        #[arg(long, default_value_t = 7)]
        expires_days: u32,
        /// The change.
        #[command(subcommand)]
        action: ProposeAction,
    },
    /// Approve an open proposal by its id (the `propose` transaction id).
    Approve {
        /// The proposal id, hex.
        proposal: String,
    },
    /// Take one of your organisation's own nodes out of the consortium, alone.
    Leave {
        /// The node id.
        #[arg(long)]
        id: u64,
    },
    /// List proposals, open and decided, with their approvals.
    Status,
}

/// The change a proposal asks for.
#[derive(Subcommand, Debug)]
pub enum ProposeAction {
    /// Declare a new node for a member organisation.
    AddNode {
        /// The organisation that runs it.
        #[arg(long)]
        org: String,
        /// The node declaration, JSON as in genesis (`{"id": .., "key": ..}`).
        #[arg(long)]
        file: PathBuf,
    },
    /// Take a declared node out of the consortium and of Raft.
    RemoveNode {
        /// The node id.
        #[arg(long)]
        id: u64,
    },
    /// Admit a new organisation with its nodes.
    AddOrg {
        /// The organisation declaration, JSON as in genesis.
        #[arg(long)]
        file: PathBuf,
    },
    /// Replace an organisation's admin key.
    RotateAdminKey {
        /// The organisation.
        #[arg(long)]
        org: String,
        /// The new admin public key, hex (33-byte compressed).
        #[arg(long)]
        key: String,
    },
    /// Replace a node's keys with a new declaration of the same id.
    RotateNodeKeys {
        /// The node declaration, JSON as in genesis.
        #[arg(long)]
        file: PathBuf,
    },
    /// Replace the chain parameters.
    SetParams {
        /// The parameters, JSON as in genesis's `params`.
        #[arg(long)]
        file: PathBuf,
    },
}

/// `rxchain receipt`.
#[derive(Args, Debug)]
pub struct ReceiptArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ReceiptAction,
}

/// Receipt operations.
#[derive(Subcommand, Debug)]
pub enum ReceiptAction {
    /// Check a saved `GET /v1/tx/{id}` answer against genesis alone: the
    /// inclusion proof, the proposer's signature and the quorum certificate.
    Verify {
        /// The saved JSON answer.
        file: PathBuf,
        /// The consortium's genesis file.
        #[arg(long)]
        genesis: PathBuf,
    },
}

/// How the CLI trusts a node reached over `https://`: by the TLS keys the
/// genesis declares (the default), or by a CA's certificate for a node
/// whose public API has a CA-issued certificate. Plain `http://` ignores both.
#[derive(Args, Debug, Clone)]
pub struct NodeTrust {
    /// The consortium's genesis file: the node must present a TLS key it declares.
    #[arg(long, global = true, default_value = "genesis.json")]
    pub genesis: PathBuf,
    /// Trust a node whose certificate chains to a CA in this PEM file instead.
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
}

impl Default for NodeTrust {
    /// What the command line gives without `--genesis` and `--ca`.
    fn default() -> Self {
        NodeTrust {
            genesis: PathBuf::from("genesis.json"),
            ca: None,
        }
    }
}

/// `rxchain staff`.
#[derive(Args, Debug)]
pub struct StaffArgs {
    /// The node that holds the account (accounts are kept per node).
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    pub node: String,
    /// The organisation's genesis admin key file; it signs the request
    /// (`disable` and `enable` only). Without it, the command signs in as
    /// a staff admin: username from `RXCHAIN_USERNAME`, password from
    /// `RXCHAIN_PASSWORD`, each prompted for when unset.
    #[arg(long, global = true)]
    pub key: Option<PathBuf>,
    /// How an `https://` node is trusted.
    #[command(flatten)]
    pub trust: NodeTrust,
    /// Print JSON instead of a sentence.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: StaffAction,
}

/// `rxchain admin`.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: AdminAction,
}

/// Organisation set-up.
#[derive(Subcommand, Debug)]
pub enum AdminAction {
    /// Create the organisation's first staff admin on its own node and
    /// register the admin's key on the chain, signed with the
    /// organisation's admin key.
    Bootstrap(BootstrapArgs),
}

/// `rxchain admin bootstrap`.
#[derive(Args, Debug)]
pub struct BootstrapArgs {
    /// The organisation's own node.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub node: String,
    /// The organisation's genesis admin key file.
    #[arg(long)]
    pub key: PathBuf,
    /// The admin's sign-in name.
    #[arg(long)]
    pub username: String,
    /// The admin's display name.
    #[arg(long)]
    pub name: String,
    /// A reference recorded as the admin's licence number.
    #[arg(long, default_value = "admin")]
    pub licence: String,
    /// Read the admin's password from this file (first line) instead of
    /// the `RXCHAIN_NEW_PASSWORD` environment variable or a prompt.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// How an `https://` node is trusted.
    #[command(flatten)]
    pub trust: NodeTrust,
    /// Print JSON instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

/// Staff account operations.
#[derive(Subcommand, Debug)]
pub enum StaffAction {
    /// Refuse the account's sign-in and end all its sessions.
    Disable {
        /// The account's sign-in name.
        username: String,
    },
    /// Let a disabled account sign in again.
    Enable {
        /// The account's sign-in name.
        username: String,
    },
    /// Create an account and register its new key on the chain; its
    /// initial password must be changed at first sign-in.
    Add {
        /// The new account's sign-in name.
        account: String,
        /// Display name, as the chain shows it.
        #[arg(long)]
        name: String,
        /// practitioner, pharmacist, courier, regulator_officer or admin.
        #[arg(long)]
        role: String,
        /// Professional licence number.
        #[arg(long)]
        licence: String,
        /// Read the initial password from this file (first line) instead
        /// of `RXCHAIN_NEW_PASSWORD` or a prompt.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List the organisation's accounts with their chain status and last sign-in.
    List,
    /// Set a new initial password, to be changed at the next sign-in.
    ResetPassword {
        /// The account's sign-in name.
        account: String,
        /// Read the new password from this file (first line) instead of
        /// `RXCHAIN_NEW_PASSWORD` or a prompt.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Register a fresh key for the account and revoke the old one.
    RotateKey {
        /// The account's sign-in name.
        account: String,
    },
    /// Revoke the person's key on the chain and disable the account for good.
    Revoke {
        /// The account's sign-in name.
        account: String,
        /// left_organisation, key_compromised, licence_suspended or other.
        #[arg(long, default_value = "left_organisation")]
        reason: String,
    },
}

/// `rxchain cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Any node of the cluster; followers forward changes to the leader.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    pub node: String,
    /// The key that signs changes: an organisation's admin key (an
    /// operator) or a node's own key (that node only). Not needed for `status`.
    #[arg(long, global = true)]
    pub key: Option<PathBuf>,
    /// How an `https://` node is trusted.
    #[command(flatten)]
    pub trust: NodeTrust,

    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: ClusterAction,
}

/// Cluster operations.
#[derive(Subcommand, Debug)]
pub enum ClusterAction {
    /// Members, learners, leader, term and each node's progress.
    Status,
    /// Add a node as a learner (it receives the chain but does not vote).
    AddLearner {
        /// The node's genesis id.
        #[arg(long)]
        id: u64,
        /// Where the other nodes reach it, `host:port`.
        #[arg(long)]
        addr: String,
    },
    /// Promote a caught-up learner to voter.
    Promote {
        /// The learner's id.
        #[arg(long)]
        id: u64,
    },
    /// Remove a voter or learner from the cluster.
    Remove {
        /// The node's id.
        #[arg(long)]
        id: u64,
    },
}

/// `rxchain demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the demo keeps its data (created if missing; reused if present).
    #[arg(long, default_value = "data/demo")]
    pub dir: PathBuf,
    /// Address of the first node.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Serve the web pages from this directory instead of the copy built
    /// into the binary (for working on the pages).
    #[arg(long)]
    pub web_dir: Option<PathBuf>,
    /// Number of nodes.
    #[arg(long, default_value_t = 1)]
    pub nodes: u64,
    /// Serve HTTPS and run mutual TLS between the demo nodes, with the
    /// demo's publicly derived TLS keys (DEMO-ONLY), as a real consortium
    /// does. Clients trust the nodes through the written `genesis.json`.
    #[arg(long)]
    pub tls: bool,
}

/// `rxchain init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// The genesis file (JSON).
    #[arg(long)]
    pub genesis: PathBuf,
    /// The data directory to create.
    #[arg(long)]
    pub data_dir: PathBuf,
}

/// `rxchain keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the secret key (refuses to overwrite; mode 0600).
    /// The TLS key and certificate go beside it, as `<out>.tls.key` and
    /// `<out>.tls.crt`, and both public identities as `<out>.pub.json`.
    /// With `--org`, the directory to write the organisation's files into.
    #[arg(long)]
    pub out: PathBuf,
    /// A host name or IP address the TLS certificate is valid for, besides
    /// loopback (repeatable): the address browsers reach the node at.
    /// (With `--org`, each node's `address` and `tls_names` give them.)
    #[arg(long = "tls-name", conflicts_with = "org")]
    pub tls_names: Vec<String>,
    /// Instead of one node key: generate the whole key set of the one
    /// organisation this file describes (an `[[orgs]]` entry of the
    /// `genesis new` consortium file, at top level) into the directory
    /// `--out`, with `org.pub.json`, its public declaration, to send to
    /// whoever assembles genesis (`rxchain genesis add-org`).
    #[arg(long)]
    pub org: Option<PathBuf>,
    /// With `--org`: another node of the consortium, `ID=HOST:PORT`
    /// (repeatable), written into the node settings as a peer to join through.
    #[arg(long = "peer", requires = "org")]
    pub peers: Vec<String>,
}

/// `rxchain genesis`.
#[derive(Args, Debug)]
pub struct GenesisArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: GenesisAction,
}

/// Genesis operations.
#[derive(Subcommand, Debug)]
pub enum GenesisAction {
    /// Write `genesis.json` and, per organisation, a directory with its
    /// admin, data, node and TLS keys and a ready `node<id>.toml`.
    New {
        /// The consortium description (TOML; see fixtures/consortium.toml).
        #[arg(long)]
        config: PathBuf,
        /// The output directory (created; refuses to overwrite files).
        #[arg(long)]
        out: PathBuf,
    },
    /// Add an organisation's public declaration (`org.pub.json`, written by
    /// `rxchain keygen --org`) to a genesis that has not launched yet.
    AddOrg {
        /// The genesis file, rewritten in place.
        #[arg(long)]
        genesis: PathBuf,
        /// The organisation's public declaration.
        #[arg(long)]
        org_file: PathBuf,
    },
}

/// `rxchain node`.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The settings file (TOML); `RXCHAIN_` variables override it.
    #[arg(long, env = "RXCHAIN_CONFIG")]
    pub config: PathBuf,
}

/// `rxchain verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The stopped node's data directory.
    pub data_dir: PathBuf,
    /// The genesis file; defaults to `<data dir>/genesis.json`.
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// No progress bar (for scripts).
    #[arg(long)]
    pub quiet: bool,
}

/// `rxchain storage-report`.
#[derive(Args, Debug)]
pub struct StorageReportArgs {
    /// The stopped node's data directory (read, never written).
    pub data_dir: PathBuf,
    /// The genesis file; defaults to `<data dir>/genesis.json`.
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `rxchain bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A running node to drive; by default a fresh one-node demo consortium is started in a temp dir.
    #[arg(long)]
    pub node: Option<String>,
    /// For an `https://` node: the consortium's genesis file, whose declared
    /// TLS keys are the only ones trusted.
    #[arg(long)]
    pub genesis: Option<std::path::PathBuf>,
    /// Full lifecycles (issue, assign, claim, partial dispense, final dispense: 5 tx each).
    #[arg(long, default_value_t = 2000)]
    pub lifecycles: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Fixed offered load in tx/s for the latency run (0 skips it).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Submit in batches (`POST /v1/tx/batch`, postcard): each client takes
    /// this many lifecycles at a time and sends each step as one batch.
    /// 1 submits one transaction per request.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `rxchain tx`.
#[derive(Args, Debug)]
pub struct TxArgs {
    /// The node to submit to.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    pub node: String,
    /// The signer's key file.
    #[arg(long, global = true)]
    pub key: Option<PathBuf>,
    /// Sign as a demo identity instead: a staff username, `admin:<org>`, or `regulator-admin` (demo consortium only).
    #[arg(long, global = true)]
    pub demo_user: Option<String>,
    /// How an `https://` node is trusted.
    #[command(flatten)]
    pub trust: NodeTrust,

    /// The transaction.
    #[command(subcommand)]
    pub kind: TxKind,
}

/// Transactions the CLI builds.
#[derive(Subcommand, Debug)]
pub enum TxKind {
    /// Submit already signed transactions from a JSON file (an array of
    /// them, or `{"txs": [...]}`) as one batch (`POST /v1/tx/batch`); prints
    /// one line per transaction: applied, refused, pending or failed.
    Batch {
        /// The JSON file.
        file: PathBuf,
    },
    /// Issue a prescription (practitioner); prints the id and the patient's QR payload.
    Issue {
        /// The prescriber's hospital.
        #[arg(long)]
        hospital: String,
        /// An item: `ATC:name:strength:form:quantity:unit[:controlled]`.
        #[arg(long = "item", required = true)]
        items: Vec<String>,
        /// Dosage instructions, one per item (sealed).
        #[arg(long = "dosage")]
        dosage: Vec<String>,
        /// Repeat fills allowed.
        #[arg(long, default_value_t = 0)]
        repeats: u8,
        /// Validity in days (default by kind).
        #[arg(long)]
        valid_days: Option<u32>,
        /// Patient name (sealed).
        #[arg(long)]
        patient_name: String,
        /// Patient date of birth (sealed).
        #[arg(long, default_value = "1970-01-01")]
        birth_date: String,
        /// Patient identifier (sealed).
        #[arg(long, default_value = "SYNTH-0000")]
        patient_id: String,
        /// Write the QR code PNG here.
        #[arg(long)]
        qr_png: Option<PathBuf>,
    },
    /// Choose pickup at a pharmacy (signed with the QR payload's access key).
    Assign {
        /// The QR payload.
        #[arg(long)]
        payload: String,
        /// The pharmacy.
        #[arg(long)]
        pharmacy: String,
    },
    /// Claim a prescription for a pharmacy with the QR payload.
    Claim {
        /// The QR payload.
        #[arg(long)]
        payload: String,
        /// The pharmacist's pharmacy.
        #[arg(long)]
        pharmacy: String,
    },
    /// Dispense lines: `item:quantity:batch`.
    Dispense {
        /// The prescription id.
        #[arg(long)]
        id: String,
        /// A line `item:quantity:batch`.
        #[arg(long = "line")]
        lines: Vec<String>,
        /// Close the prescription after this fill.
        #[arg(long)]
        complete: bool,
    },
    /// Release a claimed prescription.
    Release {
        /// The prescription id.
        #[arg(long)]
        id: String,
    },
    /// Cancel (prescriber key, or `--payload` for the patient).
    Cancel {
        /// The prescription id (prescriber).
        #[arg(long)]
        id: Option<String>,
        /// The QR payload (patient).
        #[arg(long)]
        payload: Option<String>,
    },
    /// Record a delivery event: ready_for_pickup, packed, dispatched, out_for_delivery, delivered, failed, returned.
    Delivery {
        /// The prescription id.
        #[arg(long)]
        id: String,
        /// The status.
        #[arg(long)]
        status: String,
        /// Why it failed or was returned (required for `failed` and
        /// `returned`): no_one_home, address_not_found, refused, damaged,
        /// needs_hand_over_in_person, other.
        #[arg(long)]
        problem: Option<String>,
        /// How it was handed over (required for `delivered`): to_patient,
        /// to_household, to_neighbour, safe_place, parcel_locker.
        #[arg(long)]
        hand_over: Option<String>,
    },
    /// Hand a home delivery to a logistics member, whose couriers may then
    /// record its progress (pharmacist of the claiming pharmacy).
    HandToCarrier {
        /// The prescription id.
        #[arg(long)]
        id: String,
        /// The logistics organisation.
        #[arg(long)]
        carrier: String,
    },
    /// Put a drug on the chain's controlled list, change its schedule, or
    /// (without --schedule) take it off (registered regulator officer).
    SetControlled {
        /// The ATC code.
        #[arg(long)]
        atc: String,
        /// The schedule, e.g. `II`; absent takes the drug off the list.
        #[arg(long)]
        schedule: Option<String>,
    },
    /// Register a staff key (org admin).
    RegisterStaff {
        /// The organisation.
        #[arg(long)]
        org: String,
        /// The staff public key (hex).
        #[arg(long)]
        public_key: String,
        /// practitioner, pharmacist, courier or regulator_officer.
        #[arg(long)]
        role: String,
        /// Licence number.
        #[arg(long)]
        licence: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// Revoke a staff key (org admin or regulator).
    RevokeStaff {
        /// The staff public key (hex).
        #[arg(long)]
        public_key: String,
        /// left_organisation, key_compromised, licence_suspended or other.
        #[arg(long, default_value = "other")]
        reason: String,
    },
}
