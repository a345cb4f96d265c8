//! What each subcommand does. `main` parses and dispatches here.

pub mod admin;
pub mod backup;
pub mod bench;
pub mod cluster;
pub mod demo;
pub mod genesis;
pub mod governance;
pub mod receipt;
pub mod staff;
pub mod storage;
pub mod tx;
pub mod verify;

use anyhow::Context;

/// Opens a private read-only copy of the stopped node's data directory
/// `dir` (see `store::readonly`) for the genesis file `genesis`, by default
/// `<dir>/genesis.json`: what the offline commands (`verify`, `backup`,
/// `storage-report`) read.
pub(crate) fn open_stopped(
    dir: &std::path::Path,
    genesis: Option<&std::path::Path>,
) -> anyhow::Result<(
    std::sync::Arc<rxchain_contracts::Genesis>,
    crate::store::readonly::ReadOnlyCopy,
)> {
    let gpath = genesis.map_or_else(|| dir.join("genesis.json"), |g| g.to_path_buf());
    let genesis = std::sync::Arc::new(crate::node::read_genesis(&gpath)?);
    let copy = crate::store::readonly::open_copy(dir, genesis.clone())
        .with_context(|| format!("opening {} read-only", dir.display()))?;
    Ok((genesis, copy))
}

use crate::cli::{Cli, Command};
use crate::config::Settings;

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    crate::tls::install_default_provider();
    match cli.command {
        Command::Demo(a) => demo::run(a).await,
        Command::Init(a) => {
            let g = crate::node::read_genesis(&a.genesis)?;
            std::fs::create_dir_all(&a.data_dir)
                .with_context(|| format!("creating {}", a.data_dir.display()))?;
            let dest = a.data_dir.join("genesis.json");
            if dest.exists() {
                anyhow::bail!(
                    "{} already exists; refusing to overwrite a node's genesis",
                    dest.display()
                );
            }
            std::fs::write(&dest, serde_json::to_string_pretty(&g)?)?;
            println!(
                "initialised {} for chain {} (genesis {})",
                a.data_dir.display(),
                g.chain_id,
                g.hash()
            );
            Ok(())
        }
        Command::Keygen(a) => {
            if let Some(org) = &a.org {
                let desc = genesis::read_org(org)?;
                let peers = genesis::parse_peers(&a.peers)?;
                let decl = genesis::keygen_org(&desc, &a.out, &peers)?;
                println!("{}", a.out.join(genesis::Layout::ORG_PUB).display());
                eprintln!(
                    "wrote the keys of {} ({} node(s)) into {}; send only {} to whoever assembles genesis (`rxchain genesis add-org`), keep admin.key offline, and put the consortium's genesis.json beside the node settings once it is final",
                    decl.id,
                    decl.nodes.len(),
                    a.out.display(),
                    genesis::Layout::ORG_PUB
                );
                return Ok(());
            }
            // Both paths are checked before anything is written, so a
            // second run neither overwrites nor leaves half a set.
            let (tls_key, tls_crt) = keygen_tls_paths(&a.out);
            let public = keygen_public_path(&a.out);
            for p in [&a.out, &tls_key, &tls_crt, &public] {
                if p.exists() {
                    anyhow::bail!("{} exists; refusing to overwrite it", p.display());
                }
            }
            let k = crate::keys::generate();
            let tls = crate::tls::generate(&a.tls_names)?;
            crate::keys::write_new(&a.out, &k)?;
            crate::keys::write_new_secret(&tls_key, &tls.key_pem)?;
            std::fs::write(&tls_crt, &tls.cert_pem)?;
            // The public half, to send to whoever declares the node: the
            // `key` and `tls` fields of a genesis node declaration.
            let decl = serde_json::json!({"key": k.public(), "tls": tls.hash});
            std::fs::write(&public, format!("{decl:#}\n"))?;
            // The first line stays the node key, as before, for scripts.
            println!("{}", k.public().to_hex());
            println!("tls {}", tls.hash.to_hex());
            eprintln!(
                "wrote {} (node key), {} and {} (TLS key and self-signed certificate), and {} (both public identities, to declare for the node in genesis: \"key\" and \"tls\")",
                a.out.display(),
                tls_key.display(),
                tls_crt.display(),
                public.display()
            );
            Ok(())
        }
        Command::Node(a) => {
            let settings = Settings::load(&a.config, std::env::vars())?;
            crate::node::run(settings, shutdown_signal()).await?;
            Ok(())
        }
        Command::Genesis(a) => genesis::run(a.action),
        Command::Tx(a) => tx::run(a).await,
        Command::Verify(a) => verify::run(a),
        Command::StorageReport(a) => storage::run(a),
        Command::Bench(a) => bench::run(a).await,
        Command::Cluster(a) => cluster::run(a).await,
        Command::Governance(a) => governance::run(a).await,
        Command::Staff(a) => staff::run(a).await,
        Command::Admin(a) => admin::run(a).await,
        Command::Receipt(a) => receipt::run(a),
        Command::Backup(a) => backup::run(a).await,
        Command::Restore(a) => backup::restore(a),
    }
}

/// Where `rxchain keygen --out FILE` writes the TLS key and certificate:
/// `FILE.tls.key` and `FILE.tls.crt`.
pub fn keygen_tls_paths(out: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let with = |ext: &str| {
        let mut s = out.as_os_str().to_owned();
        s.push(ext);
        std::path::PathBuf::from(s)
    };
    (with(".tls.key"), with(".tls.crt"))
}

/// Where `rxchain keygen --out FILE` writes the public keys: `FILE.pub.json`.
pub fn keygen_public_path(out: &std::path::Path) -> std::path::PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".pub.json");
    std::path::PathBuf::from(s)
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Sends an admin request signed with `key` as `signer` for the node
/// behind `client` (the headers of [`crate::http::cluster::admin_headers`];
/// the node's id comes from its `GET /v1/cluster/local`) and returns the
/// JSON answer;
/// an answer of 300 or above becomes an error naming its code and sentence.
pub(crate) async fn signed_admin_call(
    client: &crate::client::Client,
    genesis: &rxchain_contracts::Genesis,
    key: &rxchain_contracts::SecretKey,
    signer: &crate::http::cluster::Signer,
    method: reqwest::Method,
    path: &str,
    body: String,
) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context;
    // Requests are signed for the node they are sent to; it says who it is.
    let local: crate::http::cluster::LocalView = client
        .get("/v1/cluster/local")
        .await
        .with_context(|| format!("asking {} for its node id", client.base()))?;
    let headers = crate::http::cluster::admin_headers(
        genesis.chain_id.as_str(),
        key,
        signer,
        local.node_id,
        path,
        body.as_bytes(),
    );
    let (status, v) = client
        .request_raw(method, path, &headers, body)
        .await
        .with_context(|| format!("cannot reach {}", client.base()))?;
    if status >= 300 {
        anyhow::bail!(
            "{status} {}: {}",
            v["code"].as_str().unwrap_or(""),
            v["message"].as_str().unwrap_or("")
        );
    }
    Ok(v)
}
