//! QR payloads: encoding, rendering and decoding of prescription QR codes.
//!
//! A prescription's QR code carries two things: the prescription id, which
//! anyone may know, and the access secret, which proves that whoever scanned
//! the code holds the patient's slip (product rule 4). [`QrPayload`] is that
//! pair, with a short text form that fits a version-4 QR code in alphanumeric
//! mode and that survives a handheld scanner typing it into a form.
//!
//! The module has three parts, one file each:
//!
//! - `payload`: the payload text form, [`QrPayload::encode`] and
//!   [`QrPayload::parse`], with a checksum so that a mistyped code is told
//!   apart from a wrong one;
//! - `render`: [`render_png`] and [`render_svg`], for the doctor's screen,
//!   print-outs and e-mail;
//! - `decode`: [`decode_image`], which finds and reads a code in an uploaded
//!   photo, trying a few image clean-ups before giving up.
//!
//! Rendering and decoding share one error type, [`QrError`], in `error`.
//!
//! Rendering and decoding are CPU work. They are plain synchronous functions;
//! async callers run them in `tokio::task::spawn_blocking` so that a large
//! photo never stalls the runtime's worker threads.

mod decode;
mod error;
mod payload;
mod render;

pub use decode::{decode_image, DecodeLimits};
pub use error::QrError;
pub use payload::{PayloadError, QrPayload, PAYLOAD_PREFIX, PAYLOAD_VERSION};
pub use render::{render_png, render_svg, MAX_SCALE};
