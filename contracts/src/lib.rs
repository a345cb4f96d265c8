//! # rxchain-contracts
//!
//! The pure, deterministic core of rxchain: every rule of the prescription
//! lifecycle, the shape of transactions and blocks, the privacy scheme, and
//! an offline verifier. This crate does no I/O: it never reads a clock, the
//! network, files or a random source. Time arrives as the block timestamp,
//! randomness as an [`privacy::Entropy`] callback, storage through the
//! [`state::StateRead`] trait. So every node that applies the same blocks to
//! the same state gets the same result, and the rules can be tested
//! exhaustively.
//!
//! ## Lifecycle
//!
//! ```text
//! issued ──assign──▶ assigned ──claim──▶ claimed ──dispense (partial)──▶ claimed
//!   │  ╲──────────claim (walk-in)──────▶   │  ╲──release──▶ issued (available again)
//!   │                                      └──dispense (full or complete)──▶ completed
//!   └──cancel (prescriber or patient, while unclaimed and undispensed)──▶ cancelled
//! any open state ──(block time passes valid_until)──▶ expired
//! ```
//!
//! * Only signers the state knows for a kind may submit it
//!   ([`lifecycle::admissible`], which the mempool asks and `apply` repeats):
//!   registered, unrevoked staff of the right role, organisation admins for
//!   the staff registry, the prescription's access key for the patient.
//! * A practitioner of a hospital issues; validity defaults to 28 days when
//!   any item is on the chain's controlled list ([`controlled`], changed by
//!   regulator officers; an item's flag must agree with it), also the
//!   maximum, otherwise 90 (max 365).
//! * The patient (the prescription's access key) assigns pickup at a pharmacy
//!   or home delivery, and may cancel while unclaimed.
//! * A pharmacist claims with a proof that the pharmacy holds the QR code; a
//!   wrong proof is refused and counted. A claim is a lock: a second claim or
//!   dispense by another pharmacy is refused naming who holds it, and after
//!   completion naming where and when it was dispensed.
//! * Dispenses may be partial; the total per item never exceeds
//!   quantity × (1 + repeats). Reaching it, or `complete`, completes.
//! * Delivery events follow packed → dispatched → out for delivery →
//!   delivered, with failed after dispatch and returned after failure;
//!   pickup prescriptions get ready-for-pickup. Besides the pharmacy's own
//!   staff, only couriers of the logistics member the pharmacy handed the
//!   delivery to record it.
//! * Every variable-length field of a transaction is bounded in bytes
//!   ([`tx::limits`]); no valid transaction is larger than
//!   [`tx::limits::MAX_TX_BYTES`].
//! * Staff keys are registered by their organisation's admin and revoked by
//!   it or by a regulator; a revoked key signs nothing from then on.
//! * A transaction id seen before is refused as a duplicate, so a retried
//!   submission never has a second effect.
//!
//! See [`lifecycle::apply`] and [`lifecycle::Rejection`] for every rule and
//! refusal, [`rules`] for the rules the node checks before it signs, and
//! `docs/rules.md` in the repository for all of them in prose.
//!
//! ## Privacy
//!
//! Nothing on the chain names the patient or carries clinical free text: see
//! [`privacy`] for the sealed content, the three key wraps (QR secret,
//! issuing hospital, regulators) and the access key derived from the QR
//! secret. Drug codes, quantities, dates and organisation and staff
//! references stay in plaintext because the rules need them.
//!
//! ## Canonical encoding and signatures
//!
//! Everything signed or hashed is encoded as described in [`encoding`]
//! (postcard 1.x). Signatures are ECDSA over secp256k1 on a SHA3-256 digest
//! of `"rxchain-sig-v1\0" || tag || 0x00 || message`, low-S, 64 bytes `r||s`;
//! public keys are 33-byte compressed SEC1 points. A transaction's tag is
//! `tx/<chain id>/<kind>`, so a signature can be replayed neither in another
//! consortium nor as another kind; its id is that digest. Blocks use the tag
//! `block/<chain id>` over the header hash, claim proofs `claim-proof`.
//!
//! ## Blocks and verification
//!
//! See [`block`] for headers, merkle roots and inclusion proofs, and
//! [`verify`] for the offline verifier.

#![deny(missing_docs)]

pub mod block;
pub mod cert;
pub mod controlled;
pub mod crypto;
pub mod encoding;
pub mod erasure;
pub mod genesis;
pub mod governance;
pub mod lifecycle;
pub mod model;
pub mod privacy;
mod rejection;
pub mod rules;
pub mod state;
pub mod state_root;
pub mod tx;
pub mod verify;

pub use block::{Block, BlockError, BlockHeader, Execution, InclusionProof, SignedHeader, Tip};
pub use cert::{CertVote, ClockAttestation, ClockProof, QuorumCert};
pub use controlled::{ControlledDrug, ControlledList};
pub use crypto::{Hash, PublicKey, SecretKey, Signature};
pub use genesis::{Genesis, OrgDecl, OrgKind};
pub use lifecycle::{Outcome, Rejection};
pub use model::{AtcCode, Label, NodeId, OrgId, PrescriptionId, Quantity, Timestamp};
pub use tx::{SignedTx, Transaction, TxBody, TxError, TxId, VerifiedTx};
