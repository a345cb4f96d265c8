//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP, HMAC-SHA1,
//! 30-second steps, 6 digits): the second sign-in factor for prescribers of
//! controlled drugs. The codes are what every authenticator app computes
//! from an `otpauth://` URI.
//!
//! A code is accepted for the current step and one step either side (clock
//! drift), and a step is accepted once per account (the caller keeps the
//! last step used), so an overheard code cannot be replayed.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use crate::keys::fill_random;

/// Length of one step, ms.
pub const STEP_MS: u64 = 30_000;

/// Digits of a code.
pub const DIGITS: u32 = 6;

/// Bytes of a new shared secret (160 bits, RFC 4226's recommendation).
pub const SECRET_LEN: usize = 20;

/// A fresh random shared secret.
pub fn new_secret() -> [u8; SECRET_LEN] {
    let mut s = [0u8; SECRET_LEN];
    fill_random(&mut s);
    s
}

/// The code of `secret` for time step `step` (RFC 4226 dynamic truncation).
pub fn code_at(secret: &[u8], step: u64) -> u32 {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        unreachable!("HMAC takes any key length")
    };
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = (h[h.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    bin % 10u32.pow(DIGITS)
}

/// The step of time `now_ms`.
pub fn step_of(now_ms: u64) -> u64 {
    now_ms / STEP_MS
}

/// The step `code` is valid for at `now_ms` (this step or one either side),
/// if any, and only if it is later than `last_used`.
pub fn check(secret: &[u8], code: &str, now_ms: u64, last_used: Option<u64>) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let given: u32 = code.parse().ok()?;
    let now = step_of(now_ms);
    [now.saturating_sub(1), now, now + 1]
        .into_iter()
        .filter(|s| last_used.is_none_or(|l| *s > l))
        .find(|s| {
            crate::accounts::constant_time_eq(
                &format!("{:06}", code_at(secret, *s)),
                &format!("{given:06}"),
            )
        })
}

/// The `otpauth://` URI an authenticator app reads (usually as a QR code).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={}",
        enc(issuer),
        enc(account),
        data_encoding::BASE32_NOPAD.encode(secret),
        enc(issuer),
        STEP_MS / 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, truncated to 6 digits.
    #[test]
    fn rfc_6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59u64, 287_082u32),
            (1_111_111_109, 81_804),
            (1_111_111_111, 50_471),
            (1_234_567_890, 5_924),
            (2_000_000_000, 279_037),
        ] {
            assert_eq!(code_at(secret, t / 30), code, "t = {t}");
        }
    }

    #[test]
    fn a_code_is_accepted_near_its_step_once() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_109_000;
        let code = format!("{:06}", code_at(secret, step_of(now)));
        assert_eq!(check(secret, &code, now, None), Some(step_of(now)));
        assert_eq!(
            check(secret, &code, now + STEP_MS, None),
            Some(step_of(now))
        );
        assert_eq!(check(secret, &code, now + 3 * STEP_MS, None), None);
        assert_eq!(check(secret, &code, now, Some(step_of(now))), None);
        assert_eq!(check(secret, "12345", now, None), None);
        assert!(otpauth_uri("rxchain hosp-north", "dr.x", secret)
            .contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"));
    }
}
