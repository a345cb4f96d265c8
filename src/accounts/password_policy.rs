//! What a password chosen by a person must be: at least [`MIN_LENGTH`]
//! characters, at most [`MAX_LENGTH`] bytes, not one of the common
//! passwords in `common_passwords.txt` (compared in lower case), not one
//! character repeated, and not containing the username.
//!
//! The policy follows NIST SP 800-63B: length and a block list rather than
//! composition rules (no "one digit, one symbol"), since those push people
//! to predictable patterns. It applies wherever a password is chosen: an
//! admin's initial password for a new account or a reset, the holder's
//! change, and `rxchain admin bootstrap`. It does not apply to sign-in, so
//! the demo's published password keeps working.

use std::collections::HashSet;
use std::sync::OnceLock;

/// The shortest acceptable password, in characters.
pub const MIN_LENGTH: usize = 12;

/// The longest acceptable password, in bytes (sign-in refuses longer ones).
pub const MAX_LENGTH: usize = 1024;

/// Why a password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Fewer than [`MIN_LENGTH`] characters.
    #[error("a password needs at least {min} characters")]
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// More than [`MAX_LENGTH`] bytes.
    #[error("a password has at most {max} bytes")]
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// On the list of common passwords, or one character repeated.
    #[error("this password is too common to be safe; choose a less predictable one")]
    TooCommon,
    /// Contains the account's username.
    #[error("a password may not contain the username")]
    ContainsUsername,
}

impl PolicyError {
    /// The API code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::TooShort { .. } => "password_too_short",
            PolicyError::TooLong { .. } => "password_too_long",
            PolicyError::TooCommon => "password_too_common",
            PolicyError::ContainsUsername => "password_contains_username",
        }
    }
}

fn common() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("common_passwords.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// Checks a new password for the account `username`.
pub fn check(password: &str, username: &str) -> Result<(), PolicyError> {
    if password.len() > MAX_LENGTH {
        return Err(PolicyError::TooLong { max: MAX_LENGTH });
    }
    if password.chars().count() < MIN_LENGTH {
        return Err(PolicyError::TooShort { min: MIN_LENGTH });
    }
    let lower = password.to_lowercase();
    let mut chars = lower.chars();
    let first = chars.next();
    if common().contains(lower.as_str()) || chars.all(|c| Some(c) == first) {
        return Err(PolicyError::TooCommon);
    }
    let user = username.trim().to_lowercase();
    if user.chars().count() >= 3 && lower.contains(&user) {
        return Err(PolicyError::ContainsUsername);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_list_repetition_and_username_are_checked() {
        assert_eq!(
            check("short-pw", "dr.x"),
            Err(PolicyError::TooShort { min: MIN_LENGTH })
        );
        assert_eq!(check("Password1234", "dr.x"), Err(PolicyError::TooCommon));
        assert_eq!(check("QWERTYUIOP12", "dr.x"), Err(PolicyError::TooCommon));
        assert_eq!(check("zzzzzzzzzzzzzz", "dr.x"), Err(PolicyError::TooCommon));
        assert_eq!(
            check("my-dr.grace-secret", "Dr.Grace"),
            Err(PolicyError::ContainsUsername)
        );
        assert_eq!(
            check(&"x".repeat(MAX_LENGTH + 1), "dr.x")
                .unwrap_err()
                .code(),
            "password_too_long"
        );
        check("violet tram ninety lamps", "dr.grace").unwrap();
        // Every listed password is refused, whatever its case.
        assert!(common().len() > 300);
        for p in common().iter().filter(|p| p.chars().count() >= MIN_LENGTH) {
            assert_eq!(
                check(&p.to_uppercase(), "u"),
                Err(PolicyError::TooCommon),
                "{p}"
            );
        }
    }
}
