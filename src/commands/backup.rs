//! `rxchain backup` and `rxchain restore`.
//!
//! - `rxchain backup --node URL --key KEY --out FILE`: asks a running node
//!   for a consistent backup (`GET /v1/admin/backup`, signed with the
//!   organisation's admin key or the node's key), streams it to
//!   `FILE.partial` with a progress bar, checks it against genesis and only
//!   then names it `FILE`.
//! - `rxchain backup DATA_DIR --out FILE`: the same from a stopped node's
//!   data directory, read through a private copy (the directory is never
//!   written; a running node makes it fail, see [`crate::store::readonly`]).
//! - `rxchain restore FILE --data-dir DIR`: checks the whole backup (every
//!   block re-executed, signatures, state root, certificates, every pair)
//!   and only then creates `DIR` (see [`crate::store::backup`]).

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{BackupArgs, RestoreArgs};
use crate::client::Client;
use crate::http::backup::PATH;
use crate::http::cluster::{admin_headers, signer_for, LocalView};
use crate::store::backup::{self as store_backup, BackupInfo};

fn bytes_bar(quiet: bool, len: Option<u64>, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    match len {
        Some(len) => {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner}} {what} [{{bar:40}}] {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            bar.set_message(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        }
    }
}

/// `FILE.partial`, where a backup is written before it is checked.
fn partial_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Runs `rxchain backup`.
pub async fn run(args: BackupArgs) -> anyhow::Result<()> {
    if args.out.exists() {
        anyhow::bail!("{} exists; refusing to overwrite it", args.out.display());
    }
    let partial = partial_path(&args.out);
    let result = match &args.node {
        Some(node) => online(&args, node, &partial).await,
        None => offline(&args, &partial),
    };
    let info = match result {
        Ok(info) => info,
        Err(e) => {
            // Nothing half-written stays behind under any name.
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
    };
    fs::rename(&partial, &args.out)
        .with_context(|| format!("naming the backup {}", args.out.display()))?;
    let bytes = fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "backup {}: height {}, tip {}, {} pairs, {bytes} bytes; checked against genesis",
        args.out.display(),
        info.height,
        info.tip_hash,
        info.entries
    );
    Ok(())
}

fn offline(args: &BackupArgs, partial: &Path) -> anyhow::Result<BackupInfo> {
    let dir = args
        .data_dir
        .as_ref()
        .context("give a data directory or --node URL")?;
    let bar = bytes_bar(args.quiet, None, "backing up");
    let (genesis, copy) = super::open_stopped(dir, args.genesis.as_deref())?;
    let file =
        fs::File::create_new(partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut out = BufWriter::new(file);
    let info = store_backup::write_backup(&copy.storage.chain, &mut out)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(copy);
    bar.finish_and_clear();
    store_backup::check_file(&genesis, partial)
        .context("the backup just written does not check")?;
    Ok(info)
}

async fn online(args: &BackupArgs, node: &str, partial: &Path) -> anyhow::Result<BackupInfo> {
    let base = node.trim_end_matches('/').to_string();
    let gpath = args
        .genesis
        .clone()
        .unwrap_or_else(|| PathBuf::from("genesis.json"));
    let genesis = Arc::new(
        crate::node::read_genesis(&gpath)
            .context("the genesis file checks the backup; give it with --genesis")?,
    );
    let key_file = args.key.as_ref().context(
        "--key is required online: the node's organisation admin key file, or the node's key file",
    )?;
    let key = crate::keys::read(key_file)?;
    let client = Client::trusting(base.clone(), &gpath, args.ca.as_deref())?;
    let consortium = client
        .genesis()
        .await
        .context("reading the consortium from the node")?;
    let signer = signer_for(&consortium, &key).context(
        "the key is neither an organisation admin key nor a node key of this consortium",
    )?;
    let local: LocalView = client
        .get("/v1/cluster/local")
        .await
        .with_context(|| format!("asking {base} for its node id"))?;
    let headers = admin_headers(
        genesis.chain_id.as_str(),
        &key,
        &signer,
        local.node_id,
        PATH,
        b"",
    );
    let http = download_client(&base, &genesis, args.ca.as_deref())?;
    let mut req = http.get(format!("{base}{PATH}"));
    for (k, v) in &headers {
        req = req.header(*k, v.as_str());
    }
    let mut resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let status = resp.status().as_u16();
    if status >= 300 {
        let v: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        anyhow::bail!(
            "{status} {}: {}",
            v["code"].as_str().unwrap_or(""),
            v["message"].as_str().unwrap_or("")
        );
    }
    let len = resp.content_length();
    let bar = bytes_bar(args.quiet, len, "downloading");
    let file =
        fs::File::create_new(partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut out = BufWriter::new(file);
    let mut got = 0u64;
    while let Some(chunk) = resp.chunk().await.context("the download broke off")? {
        out.write_all(&chunk)?;
        got += chunk.len() as u64;
        bar.set_position(got);
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    bar.finish_and_clear();
    if let Some(len) = len.filter(|l| *l != got) {
        anyhow::bail!("the download ended after {got} of {len} bytes");
    }
    let checked = tokio::task::spawn_blocking({
        let genesis = genesis.clone();
        let partial = partial.to_path_buf();
        move || store_backup::check_file(&genesis, &partial)
    })
    .await?
    .context("the downloaded backup does not check")?;
    Ok(BackupInfo {
        height: checked.tip.height,
        tip_hash: checked.tip.hash,
        entries: checked.entries,
        applied: None,
    })
}

/// An HTTP client without an overall deadline (a backup may take long),
/// trusting an `https://` node as the rest of the CLI does.
fn download_client(
    base: &str,
    genesis: &rxchain_contracts::Genesis,
    ca: Option<&Path>,
) -> anyhow::Result<reqwest::Client> {
    crate::tls::install_default_provider();
    let builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120));
    if !base.starts_with("https://") {
        return Ok(builder.build()?);
    }
    let config = match ca {
        Some(ca) => crate::tls::ca_client_config(
            &fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?,
        )?,
        None => crate::tls::genesis_client_config(genesis)?,
    };
    Ok(builder.use_preconfigured_tls(config).build()?)
}

/// Runs `rxchain restore`.
pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let genesis = Arc::new(crate::node::read_genesis(&args.genesis)?);
    let len = fs::metadata(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?
        .len();
    // The file is read three times (check, rebuild, compare).
    let bar = bytes_bar(
        args.quiet,
        Some(len.saturating_mul(3)),
        "checking and restoring",
    );
    let mut base = 0u64;
    let mut last = 0u64;
    let result = store_backup::restore(genesis, &args.file, &args.data_dir, &mut |n| {
        if n < last {
            base += len;
        }
        last = n;
        bar.set_position(base + n);
    });
    bar.finish_and_clear();
    let r = result.with_context(|| {
        format!(
            "restoring {}: nothing was written to {}",
            args.file.display(),
            args.data_dir.display()
        )
    })?;
    let voters: Vec<u64> = r.membership.membership().voter_ids().collect();
    println!(
        "restored {} into {}: {} blocks and {} transactions re-executed, {} certificates checked, every pair verified; Raft starts after log index {} with voters {voters:?}. Point a node's data_dir at it and start it with its peers: it catches up from the leader.",
        args.file.display(),
        args.data_dir.display(),
        r.height,
        r.txs,
        r.certs,
        r.applied.map_or_else(|| "none".into(), |a| a.index.to_string())
    );
    Ok(())
}
