//! `rxchain verify <data dir>`: re-verifies a stopped node's whole chain
//! offline with the contracts' verifier, and compares the recomputed state
//! with the state the node stored.

use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rxchain_contracts::{Block, TxId, VerifiedTx};

use crate::cli::VerifyArgs;
use crate::store::verify::verify_chain;
pub use crate::store::verify::Verified;
use crate::store::ApplyObserver;

/// Observes nothing: verification opens the store read-only in spirit.
struct Quiet;

impl ApplyObserver for Quiet {
    fn known(&self, _: &TxId) -> Option<VerifiedTx> {
        None
    }
    fn applied(&self, _: &Block) {}
}

/// Verifies the chain in `args.data_dir`.
pub fn verify_dir(args: &VerifyArgs) -> anyhow::Result<Verified> {
    let gpath = args
        .genesis
        .clone()
        .unwrap_or_else(|| args.data_dir.join("genesis.json"));
    let genesis = Arc::new(crate::node::read_genesis(&gpath)?);
    let storage =
        crate::store::open(&args.data_dir, genesis, Arc::new(Quiet)).with_context(|| {
            format!(
                "opening {} (is the node still running?)",
                args.data_dir.display()
            )
        })?;
    let chain = storage.chain.clone();
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(chain.tip().height)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} verifying [{bar:40}] {pos}/{len} blocks {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let result = verify_chain(&chain, Some(&mut |height| bar.set_position(height)));
    bar.finish_and_clear();
    Ok(result?)
}

/// Runs `verify` and prints the result.
pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let r = verify_dir(&args)?;
    println!(
        "ok: {} blocks, {} transactions ({} refused and recorded); hash links, block signatures, every transaction signature, every outcome and the derived state verify",
        r.height, r.txs, r.refused
    );
    Ok(())
}
