//! `rxchain verify <data dir>`: re-verifies a stopped node's whole chain
//! offline with the contracts' verifier, compares the recomputed state with
//! the state the node stored, checks each block's storage key and the Raft
//! log against the chain.
//!
//! The directory is never written: the check runs on a private copy (see
//! [`crate::store::readonly`]), and a running node makes it fail at once.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::VerifyArgs;
use crate::store::verify::verify_chain_and_log;
pub use crate::store::verify::Verified;

/// How long the two phases of [`verify_dir`] took.
#[derive(Clone, Copy, Debug)]
pub struct Phases {
    /// Copying the directory privately and opening the copy.
    pub copy: Duration,
    /// Verifying the copy.
    pub check: Duration,
}

/// Verifies the chain in `args.data_dir`, without writing to it.
pub fn verify_dir(args: &VerifyArgs) -> anyhow::Result<(Verified, Phases)> {
    let started = Instant::now();
    let (_, copy) = super::open_stopped(&args.data_dir, args.genesis.as_deref())?;
    let copied = started.elapsed();
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
    let phases = Phases {
        copy: copied,
        check: started.elapsed().saturating_sub(copied),
    };
    Ok((result?, phases))
}

/// Runs `verify` and prints the result.
pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let (r, phases) = verify_dir(&args)?;
    // On stderr, beside the progress bar: stdout stays the one verdict line.
    eprintln!(
        "copied and opened the directory in {:.2} s, verified the copy in {:.2} s",
        phases.copy.as_secs_f64(),
        phases.check.as_secs_f64()
    );
    println!(
        "ok: {} blocks, {} transactions ({} refused and recorded); hash links, block signatures, every transaction signature, every outcome, the derived state, every block's storage key and {} applied Raft log entries verify",
        r.height, r.txs, r.refused, r.log_entries
    );
    Ok(())
}
