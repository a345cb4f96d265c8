//! `rxchain receipt verify FILE --genesis genesis.json`: checks a saved
//! `GET /v1/tx/{id}` answer offline, trusting nothing but genesis. It
//! checks that the transaction is the one the proof names, the inclusion
//! proof against the header's roots, the proposer's signature over the
//! header, and the quorum certificate (a majority of the consortium's
//! declared nodes signed this very header after applying it).

use std::path::Path;

use anyhow::Context;
use rxchain_contracts::cert::{verify_receipt, ReceiptParts, Tally};
use rxchain_contracts::{Genesis, InclusionProof, QuorumCert, SignedHeader, SignedTx};
use serde::Deserialize;

use crate::cli::{ReceiptAction, ReceiptArgs};

/// The parts of a `GET /v1/tx/{id}` answer the check reads.
#[derive(Debug, Deserialize)]
struct ReceiptFile {
    receipt: ReceiptParts,
    tx: SignedTx,
    proof: InclusionProof,
    header: SignedHeader,
    certificate: Option<QuorumCert>,
}

/// Why a receipt does not verify.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The signed transaction is not the one the receipt names.
    #[error("the transaction in the file is not the one the receipt names")]
    OtherTx,
    /// A check of the contracts failed.
    #[error(transparent)]
    Cert(#[from] rxchain_contracts::cert::CertError),
}

/// What checking a receipt found: the block height it names, and whether
/// it verifies.
pub type Checked = (u64, Result<Tally, ReceiptError>);

/// Verifies the receipt in `file` against `genesis`. The outer error is a
/// file that cannot be read or is no receipt at all.
pub fn verify_file(file: &Path, genesis: &Genesis) -> anyhow::Result<Checked> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let r: ReceiptFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a GET /v1/tx/{{id}} answer", file.display()))?;
    let height = r.receipt.height;
    if r.tx.tx.id(genesis.chain_id.as_str()) != r.receipt.tx_id {
        return Ok((height, Err(ReceiptError::OtherTx)));
    }
    let verdict = verify_receipt(
        genesis,
        &r.receipt,
        &r.proof,
        &r.header,
        r.certificate.as_ref(),
    )
    .map_err(ReceiptError::from);
    Ok((height, verdict))
}

/// Runs `receipt`.
pub fn run(args: ReceiptArgs) -> anyhow::Result<()> {
    match args.action {
        ReceiptAction::Verify { file, genesis } => {
            let g = crate::node::read_genesis(&genesis)?;
            let (height, verdict) = verify_file(&file, &g)?;
            match verdict {
                Ok(t) => {
                    println!(
                        "ok: a majority of the consortium's nodes ({} of {}) applied block {}",
                        t.votes, t.declared, height
                    );
                    Ok(())
                }
                Err(e) => Err(anyhow::anyhow!(
                    "the receipt for block {height} does not verify: {e}"
                )),
            }
        }
    }
}
