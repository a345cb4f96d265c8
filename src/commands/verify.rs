//! `rxchain verify <data dir>`: re-verifies a stopped node's whole chain
//! offline with the contracts' verifier, compares the recomputed state with
//! the state the node stored, checks each block's storage key and the Raft
//! log against the chain.
//!
//! The directory is never written: the check runs on a private copy (see
//! [`crate::store::readonly`]), and a running node makes it fail at once.

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::VerifyArgs;
use crate::store::verify::verify_chain_and_log;
pub use crate::store::verify::Verified;

/// Verifies the chain in `args.data_dir`, without writing to it.
pub fn verify_dir(args: &VerifyArgs) -> anyhow::Result<Verified> {
    let (_, copy) = super::open_stopped(&args.data_dir, args.genesis.as_deref())?;
    let chain = copy.storage.chain.clone();
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
    let result = verify_chain_and_log(
        &chain,
        &copy.storage.log,
        Some(&mut |height| bar.set_position(height)),
    );
    bar.finish_and_clear();
    Ok(result?)
}

/// Runs `verify` and prints the result.
pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let r = verify_dir(&args)?;
    println!(
        "ok: {} blocks, {} transactions ({} refused and recorded); hash links, block signatures, every transaction signature, every outcome, the derived state, every block's storage key and {} applied Raft log entries verify",
        r.height, r.txs, r.refused, r.log_entries
    );
    Ok(())
}
