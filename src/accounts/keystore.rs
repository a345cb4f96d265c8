//! Staff signing keys (and other per-account secrets, such as a TOTP
//! secret) sealed at rest: ChaCha20-Poly1305 under the node's key-store
//! key, bound to the account by associated data.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use rxchain_contracts::{PublicKey, SecretKey};

use super::AccountError;
use crate::config::Secret;
use crate::keys::fill_random;

/// A signing key as stored: nonce and ciphertext (tag appended), both hex.
pub(super) struct SealedKey {
    /// The ChaCha20-Poly1305 nonce, hex.
    pub(super) nonce: String,
    /// The sealed key with its tag, hex.
    pub(super) sealed: String,
}

/// Seals and opens staff signing keys with the key-store key.
pub(super) struct KeyStore {
    /// Derived from the node key (see the module docs of `accounts`); never printed.
    key: Secret<[u8; 32]>,
}

impl KeyStore {
    /// A key store over the given key-store key.
    pub(super) fn new(key: Secret<[u8; 32]>) -> Self {
        KeyStore { key }
    }

    /// The associated data that binds a sealed key to its account: moving
    /// it to another username or public key makes it fail to open.
    fn aad(username: &str, public: &PublicKey) -> Vec<u8> {
        [
            b"rxchain-staff-key-v1\0".as_slice(),
            username.as_bytes(),
            &[0],
            public.as_bytes(),
        ]
        .concat()
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(self.key.expose().into())
    }

    /// Seals `key` for the account `username` with a fresh random nonce.
    pub(super) fn seal(&self, username: &str, key: &SecretKey) -> Result<SealedKey, AccountError> {
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce);
        let secret = key.to_bytes();
        let aad = Self::aad(username, &key.public());
        let sealed = self
            .cipher()
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: &secret,
                    aad: &aad,
                },
            )
            .map_err(|_| AccountError::Hashing("sealing the signing key failed".into()))?;
        Ok(SealedKey {
            nonce: hex::encode(nonce),
            sealed: hex::encode(sealed),
        })
    }

    /// Opens the sealed key of `username`, checking that it is the key of
    /// `public`. Any failure (bad hex, wrong node key, altered record) is
    /// [`AccountError::KeyUnavailable`]: the caller cannot repair any of them.
    pub(super) fn open(
        &self,
        username: &str,
        public: &PublicKey,
        sealed: &SealedKey,
    ) -> Result<SecretKey, AccountError> {
        let unavailable = || AccountError::KeyUnavailable(username.to_string());
        let nonce: [u8; 12] = hex::decode(&sealed.nonce)
            .map_err(|_| unavailable())?
            .try_into()
            .map_err(|_| unavailable())?;
        let ciphertext = hex::decode(&sealed.sealed).map_err(|_| unavailable())?;
        let aad = Self::aad(username, public);
        let bytes = self
            .cipher()
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| unavailable())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| unavailable())?;
        let key = SecretKey::from_bytes(&bytes).map_err(|_| unavailable())?;
        if key.public() != *public {
            return Err(unavailable());
        }
        Ok(key)
    }
}

impl KeyStore {
    fn secret_aad(username: &str, purpose: &str) -> Vec<u8> {
        [
            b"rxchain-staff-secret-v1\0".as_slice(),
            purpose.as_bytes(),
            &[0],
            username.as_bytes(),
        ]
        .concat()
    }

    /// Seals a per-account secret for `purpose` (e.g. `totp`).
    pub(super) fn seal_bytes(
        &self,
        username: &str,
        purpose: &str,
        secret: &[u8],
    ) -> Result<SealedKey, AccountError> {
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce);
        let aad = Self::secret_aad(username, purpose);
        let sealed = self
            .cipher()
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| AccountError::Hashing("sealing a secret failed".into()))?;
        Ok(SealedKey {
            nonce: hex::encode(nonce),
            sealed: hex::encode(sealed),
        })
    }

    /// Opens what [`KeyStore::seal_bytes`] sealed.
    pub(super) fn open_bytes(
        &self,
        username: &str,
        purpose: &str,
        sealed: &SealedKey,
    ) -> Result<Vec<u8>, AccountError> {
        let unavailable = || AccountError::KeyUnavailable(username.to_string());
        let nonce: [u8; 12] = hex::decode(&sealed.nonce)
            .map_err(|_| unavailable())?
            .try_into()
            .map_err(|_| unavailable())?;
        let ciphertext = hex::decode(&sealed.sealed).map_err(|_| unavailable())?;
        let aad = Self::secret_aad(username, purpose);
        self.cipher()
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| unavailable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_for_its_account_and_node() {
        let store = KeyStore::new(Secret::new([1; 32]));
        let key = SecretKey::derive("test", b"staff");
        let sealed = store.seal("dr.test", &key).unwrap();
        let opened = store.open("dr.test", &key.public(), &sealed).unwrap();
        assert_eq!(opened.public(), key.public());
        assert!(matches!(
            store.open("dr.other", &key.public(), &sealed),
            Err(AccountError::KeyUnavailable(u)) if u == "dr.other"
        ));
        let other_node = KeyStore::new(Secret::new([2; 32]));
        assert!(matches!(
            other_node.open("dr.test", &key.public(), &sealed),
            Err(AccountError::KeyUnavailable(_))
        ));
    }
}
