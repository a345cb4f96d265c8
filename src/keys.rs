//! Key files: a secp256k1 secret key as 64 hex characters on one line.
//!
//! Key files are written with mode 0600 and read into a [`SecretKey`], whose
//! `Debug` never shows the secret.

use std::path::{Path, PathBuf};

use rxchain_contracts::SecretKey;

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not hold a valid key.
    #[error("key file {path} does not hold 64 hex characters of a valid secp256k1 key")]
    Invalid {
        /// The file.
        path: PathBuf,
    },
}

/// Reads a key file.
pub fn read(path: &Path) -> Result<SecretKey, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        path: path.into(),
        source,
    })?;
    parse_hex(text.trim()).ok_or_else(|| KeyFileError::Invalid { path: path.into() })
}

/// Parses 64 hex characters into a key.
pub fn parse_hex(s: &str) -> Option<SecretKey> {
    let bytes: [u8; 32] = hex::decode(s).ok()?.try_into().ok()?;
    SecretKey::from_bytes(&bytes).ok()
}

/// Generates a fresh key from the operating system's random source.
pub fn generate() -> SecretKey {
    loop {
        let mut b = [0u8; 32];
        fill_random(&mut b);
        if let Ok(k) = SecretKey::from_bytes(&b) {
            return k;
        }
    }
}

/// Fills `buf` from the operating system's random source.
pub fn fill_random(buf: &mut [u8]) {
    // Without OS randomness no key or secret can be made safely; there is no
    // sensible way to continue, and this does not happen on supported systems.
    getrandom::fill(buf).expect("the operating system random source is unavailable");
}

/// Writes a key file readable only by its owner; refuses to overwrite.
pub fn write_new(path: &Path, key: &SecretKey) -> Result<(), KeyFileError> {
    write_new_secret(path, &format!("{}\n", hex::encode(key.to_bytes())))
}

/// Writes secret text (a hex key, a PEM private key) to a new file readable
/// only by its owner; refuses to overwrite.
pub fn write_new_secret(path: &Path, text: &str) -> Result<(), KeyFileError> {
    use std::io::Write;
    let io = |source| KeyFileError::Io {
        path: path.into(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}
