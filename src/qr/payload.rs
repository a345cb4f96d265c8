//! The versioned text form of a prescription code: `RX1:` and 85 base32
//! characters of version, prescription id, access secret and a SHA3-256
//! checksum, so that a mistyped code is told apart from a wrong one.

use std::fmt;

use data_encoding::{DecodeError, DecodeKind, Encoding, BASE32_NOPAD_NOCASE};
use rxchain_contracts::model::PrescriptionId;
use rxchain_contracts::privacy::AccessSecret;
use sha3::{Digest, Sha3_256};

/// The payload format version this build writes, and the only one it reads.
pub const PAYLOAD_VERSION: u8 = 1;

/// The text every version-1 payload starts with. `RX` marks an rxchain code
/// and the digits before the colon repeat the version, so that a future
/// format is refused by name rather than as garbage.
pub const PAYLOAD_PREFIX: &str = "RX1:";

/// The RFC 4648 base32 alphabet, which [`BASE32`] writes. All its
/// characters, like the prefix, are in the QR alphanumeric set, which packs
/// 5.5 bits per character instead of the 8 of byte mode and so keeps the
/// code small. It is spelled out here so that a wrong character can be
/// reported before the length is checked, as the parser has always done.
const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Unpadded RFC 4648 base32 that writes upper case and also reads lower case,
/// because some handheld scanners follow the keyboard's caps state. It
/// refuses non-zero unused trailing bits (see [`QrPayload::parse`]).
const BASE32: Encoding = BASE32_NOPAD_NOCASE;

/// Bytes covered by the checksum: version, id, secret.
const BODY_LEN: usize = 1 + 16 + 32;

/// Bytes of the checksum: the first bytes of SHA3-256 over the body. Four
/// bytes let one random typo through once in four billion times.
const CHECKSUM_LEN: usize = 4;

/// Bytes in the binary payload.
const RAW_LEN: usize = BODY_LEN + CHECKSUM_LEN;

/// Base32 characters after the prefix: 53 bytes are 424 bits, 85 characters.
const ENCODED_LEN: usize = (RAW_LEN * 8).div_ceil(5);

/// What a prescription QR code carries: the prescription id and the access
/// secret that proves possession of the code.
///
/// `Debug` never shows the secret, and there is deliberately no `Display`:
/// the text form holds the secret too, so it is only produced on purpose,
/// through [`QrPayload::encode`].
#[derive(Clone, PartialEq, Eq)]
pub struct QrPayload {
    /// Which prescription the code is for.
    pub id: PrescriptionId,
    /// The secret that lets the holder claim and read the prescription.
    pub secret: AccessSecret,
}

impl fmt::Debug for QrPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QrPayload")
            .field("id", &self.id)
            .field("secret", &format_args!("<redacted>"))
            .finish()
    }
}

/// Why a text is not a valid prescription code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The text does not start with `RX<version>:`: it is some other code,
    /// for example a product barcode or a web address.
    #[error("this is not an rxchain prescription code")]
    NotRxchain,
    /// An rxchain code of a format this build does not know.
    #[error(
        "this prescription code uses format version {version}, which this service does not support"
    )]
    UnsupportedVersion {
        /// The version as written in the code.
        version: String,
    },
    /// A character outside the code's alphabet, e.g. `0`, `1`, `8` or a space.
    #[error(
        "the prescription code contains an invalid character {character:?} at position {position}"
    )]
    BadCharacter {
        /// The offending character.
        character: char,
        /// Its 1-based position in the code, counting the prefix.
        position: usize,
    },
    /// Characters are missing, usually a scan or copy that stopped early.
    #[error(
        "the prescription code is incomplete: {found} of {expected} characters after the prefix"
    )]
    Truncated {
        /// Characters found after the prefix.
        found: usize,
        /// Characters a complete code has after the prefix.
        expected: usize,
    },
    /// Characters were added, usually two codes run together.
    #[error("the prescription code is too long: {found} characters after the prefix, expected {expected}")]
    TooLong {
        /// Characters found after the prefix.
        found: usize,
        /// Characters a complete code has after the prefix.
        expected: usize,
    },
    /// The checksum does not match: a character was mistyped or misread.
    #[error("the prescription code does not check out; a character was probably mistyped")]
    ChecksumMismatch,
}

impl PayloadError {
    /// A stable machine-readable code for API responses and logs.
    pub fn code(&self) -> &'static str {
        match self {
            PayloadError::NotRxchain => "not_rxchain_code",
            PayloadError::UnsupportedVersion { .. } => "unsupported_version",
            PayloadError::BadCharacter { .. } => "bad_character",
            PayloadError::Truncated { .. } => "truncated",
            PayloadError::TooLong { .. } => "too_long",
            PayloadError::ChecksumMismatch => "checksum_mismatch",
        }
    }
}

impl QrPayload {
    /// Pairs an id with its access secret.
    pub fn new(id: PrescriptionId, secret: AccessSecret) -> Self {
        QrPayload { id, secret }
    }

    /// The text form: `RX1:` followed by 85 base32 characters (RFC 4648
    /// alphabet, upper case, no padding) of version byte, id, secret and a
    /// 4-byte SHA3-256 checksum. 89 characters in all, which fit a version-4
    /// QR code at error correction level M.
    ///
    /// The result contains the secret: treat it like the secret itself.
    pub fn encode(&self) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[0] = PAYLOAD_VERSION;
        raw[1..17].copy_from_slice(self.id.as_bytes());
        raw[17..BODY_LEN].copy_from_slice(self.secret.expose());
        let sum = checksum(&raw[..BODY_LEN]);
        raw[BODY_LEN..].copy_from_slice(&sum);
        let mut out = String::with_capacity(PAYLOAD_PREFIX.len() + ENCODED_LEN);
        out.push_str(PAYLOAD_PREFIX);
        BASE32.encode_append(&raw, &mut out);
        out
    }

    /// Parses the text form.
    ///
    /// Surrounding whitespace and lower case are accepted, because handheld
    /// scanners that type into a form add a newline and some follow the
    /// keyboard's caps state. Nothing else is forgiven: a code with an inner
    /// space or a wrong character is refused rather than guessed at.
    pub fn parse(text: &str) -> Result<Self, PayloadError> {
        let text = text.trim();
        let (head, body) = text.split_once(':').ok_or(PayloadError::NotRxchain)?;
        let version = match head.get(..2) {
            Some(rx) if rx.eq_ignore_ascii_case("RX") => &head[2..],
            _ => return Err(PayloadError::NotRxchain),
        };
        // A short run of digits is a version of our format; anything else
        // after `RX` is someone else's code that happens to start alike.
        if version.is_empty() || version.len() > 3 || !version.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PayloadError::NotRxchain);
        }
        if version != "1" {
            return Err(PayloadError::UnsupportedVersion {
                version: version.to_owned(),
            });
        }

        // Every character is checked before the length, so that two codes
        // run together are reported at the second prefix, where they join.
        let body_start = head.len() + 1;
        if let Some((i, c)) = body.chars().enumerate().find(|&(_, c)| !is_symbol(c)) {
            return Err(PayloadError::BadCharacter {
                character: c,
                position: body_start + i + 1,
            });
        }
        // Only ASCII is left, so bytes and characters count alike.
        if body.len() < ENCODED_LEN {
            return Err(PayloadError::Truncated {
                found: body.len(),
                expected: ENCODED_LEN,
            });
        }
        if body.len() > ENCODED_LEN {
            return Err(PayloadError::TooLong {
                found: body.len(),
                expected: ENCODED_LEN,
            });
        }

        let mut raw = [0u8; RAW_LEN];
        BASE32
            .decode_mut(body.as_bytes(), &mut raw)
            .map_err(|partial| decode_error(partial.error, body, body_start))?;
        if checksum(&raw[..BODY_LEN]) != raw[BODY_LEN..] {
            return Err(PayloadError::ChecksumMismatch);
        }
        // The checksum covers the version byte, so a mismatch here is a code
        // built by a different format, not a typo.
        if raw[0] != PAYLOAD_VERSION {
            return Err(PayloadError::UnsupportedVersion {
                version: raw[0].to_string(),
            });
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&raw[1..17]);
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&raw[17..BODY_LEN]);
        Ok(QrPayload::new(
            PrescriptionId::from_bytes(id),
            AccessSecret::from_bytes(secret),
        ))
    }

    /// Parses what a scanner read: either the bare code or a patient link
    /// made by [`QrPayload::patient_link`] (absolute or relative), whose
    /// fragment is the code.
    ///
    /// This lets a pharmacy scan whichever of the two the patient shows. A
    /// bare code never contains `#`, so whatever follows the last `#` is the
    /// code and is held to the rules of [`QrPayload::parse`].
    pub fn parse_scanned(text: &str) -> Result<Self, PayloadError> {
        match text.trim().rsplit_once('#') {
            Some((_, fragment)) => QrPayload::parse(fragment),
            None => QrPayload::parse(text),
        }
    }

    /// The link for the patient page: `{base_url}/patient/#RX1:...`.
    ///
    /// The code travels in the URL fragment because browsers never send the
    /// fragment to the server in HTTP requests: the secret stays out of
    /// access logs, proxies and `Referer` headers, and the page's script
    /// reads it locally.
    pub fn patient_link(&self, base_url: &str) -> String {
        format!(
            "{}/patient/#{}",
            base_url.trim_end_matches('/'),
            self.encode()
        )
    }
}

/// The checksum of the body: the first bytes of its SHA3-256 hash.
fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha3_256::digest(body);
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&digest[..CHECKSUM_LEN]);
    out
}

/// Whether `c` is a base32 character, in either case.
fn is_symbol(c: char) -> bool {
    c.is_ascii() && ALPHABET.contains(c.to_ascii_uppercase())
}

/// Maps a base32 decoding error of a body that has the right length and only
/// alphabet characters; `body_start` is the body's offset in the whole code.
fn decode_error(e: DecodeError, body: &str, body_start: usize) -> PayloadError {
    match e.kind {
        // The last character carries one bit beyond the 53 bytes. It must be
        // zero: otherwise a typo that only flips that bit would decode to the
        // same bytes and slip past the checksum.
        DecodeKind::Trailing => PayloadError::ChecksumMismatch,
        // The checks before decoding rule these out; they are mapped to what
        // they would mean all the same rather than trusted never to happen.
        DecodeKind::Symbol | DecodeKind::Padding => PayloadError::BadCharacter {
            character: body[e.position..].chars().next().unwrap_or('='),
            position: body_start + e.position + 1,
        },
        DecodeKind::Length if body.len() > ENCODED_LEN => PayloadError::TooLong {
            found: body.len(),
            expected: ENCODED_LEN,
        },
        DecodeKind::Length => PayloadError::Truncated {
            found: body.len(),
            expected: ENCODED_LEN,
        },
    }
}

#[cfg(test)]
mod tests {
    use qrcode::{EcLevel, QrCode};

    use super::*;

    fn payload() -> QrPayload {
        QrPayload::new(
            PrescriptionId::from_bytes([7; 16]),
            AccessSecret::from_bytes([42; 32]),
        )
    }

    #[test]
    fn base32_matches_rfc4648_vectors() {
        let cases: [(&[u8], &str); 6] = [
            (b"f", "MY"),
            (b"fo", "MZXQ"),
            (b"foo", "MZXW6"),
            (b"foob", "MZXW6YQ"),
            (b"fooba", "MZXW6YTB"),
            (b"foobar", "MZXW6YTBOI"),
        ];
        for (input, expected) in cases {
            let mut out = String::new();
            BASE32.encode_append(input, &mut out);
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn the_spelled_out_alphabet_is_the_encodings() {
        let spec = BASE32.specification();
        assert_eq!(spec.symbols, ALPHABET);
        assert!(spec.check_trailing_bits);
        assert_eq!(spec.padding, None);
    }

    #[test]
    fn lower_case_codes_parse_and_a_set_trailing_bit_is_refused() {
        let text = payload().encode();
        assert_eq!(QrPayload::parse(&text.to_lowercase()).unwrap(), payload());
        // The last character's lowest bit is the unused 425th bit.
        let mut chars: Vec<char> = text.chars().collect();
        let last = chars.len() - 1;
        let value = ALPHABET.find(chars[last]).unwrap();
        chars[last] = char::from(ALPHABET.as_bytes()[value ^ 1]);
        let flipped: String = chars.into_iter().collect();
        assert_eq!(
            QrPayload::parse(&flipped).unwrap_err(),
            PayloadError::ChecksumMismatch
        );
    }

    #[test]
    fn encoded_form_has_the_documented_length_and_fits_version_4_m() {
        let text = payload().encode();
        assert_eq!(text.len(), PAYLOAD_PREFIX.len() + ENCODED_LEN);
        assert_eq!(text.len(), 89);
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).unwrap();
        assert_eq!(code.version(), qrcode::Version::Normal(4));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let p = payload();
        let shown = format!("{p:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&hex::encode(p.secret.expose())));
        assert!(!shown.contains("42"));
    }
}
