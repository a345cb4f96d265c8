//! The privacy scheme: nothing on the chain names the patient.
//!
//! * A fresh 32-byte **content key** encrypts the patient's identity and the
//!   clinical free text with ChaCha20-Poly1305; the prescription id is the
//!   associated data, so a ciphertext cannot be moved to another prescription.
//! * The content key is **wrapped** three ways: for the holder of the QR
//!   **access secret** (key = KDF(secret)), and for the issuing hospital's and
//!   each regulator's data key (ephemeral secp256k1 ECDH, then the KDF).
//! * The access secret itself never reaches the chain. The chain holds the
//!   **access key**, a secp256k1 public key derived from the secret
//!   ([`AccessSecret::signing_key`]). Patient actions are signed by it, and a
//!   pharmacy's claim carries a proof signed by it.
//!
//! The KDF is `SHA3-256("rxchain-kdf-v1" || 0 || label || 0 || parts...)`,
//! one SHA3 block per key, which is all a 256-bit key needs.
//!
//! Randomness enters as an [`Entropy`] callback supplied by the caller, so
//! this module stays free of I/O and tests can be deterministic.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::crypto::{Hash, PublicKey, SecretKey};
use crate::model::PrescriptionId;

/// Fills a buffer with random bytes. The node passes the OS generator.
pub type Entropy<'a> = &'a mut dyn FnMut(&mut [u8]);

/// Why sealed data could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrivacyError {
    /// Wrong key, or the ciphertext or its context was altered.
    #[error("the sealed data does not open with this key; it is altered or the key is wrong")]
    OpenFailed,
    /// A wrap for a public key lacks its ephemeral key, or the reverse.
    #[error("the key wrap has the wrong form for this recipient")]
    WrongWrapKind,
    /// The plaintext is not what was expected.
    #[error("the opened content is malformed")]
    Malformed,
    /// A key to wrap for, or an ephemeral key, is not a curve point.
    #[error("the key is not a valid secp256k1 point")]
    BadKey,
    /// The node deleted this key wrap when the prescription's retention
    /// period ended ([`WrapBody::Erased`]); nobody can open it any more.
    #[error("the key wrap was erased when the retention period ended")]
    Erased,
}

/// AEAD ciphertext with its nonce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sealed {
    /// ChaCha20-Poly1305 nonce.
    #[cfg_attr(feature = "openapi", schema(min_items = 12, max_items = 12))]
    pub nonce: [u8; 12],
    /// Ciphertext with the 16-byte tag appended.
    #[serde(with = "hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "hex"))]
    pub ciphertext: Vec<u8>,
}

/// A 32-byte key wrapped for one recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WrappedKey {
    /// The sender's ephemeral ECDH key; absent when wrapped under the access secret.
    pub ephemeral: Option<PublicKey>,
    /// The wrapped key, sealed under the derived key-encryption key; or,
    /// once its retention period is over, only the digest of that.
    pub sealed: WrapBody,
}

impl WrappedKey {
    /// Whether the wrap still holds its ciphertext.
    pub fn is_present(&self) -> bool {
        matches!(self.sealed, WrapBody::Present(_))
    }
}

/// The sealed half of a key wrap, as a node stores it.
///
/// Signatures, transaction ids and state never cover the ciphertext itself,
/// only its digest (the commitment form, [`WrapBody::committed`]). So a node
/// may replace a wrap by its digest ([`WrapBody::erase`]) when the retention
/// period ends: the content key it wrapped is then gone from that node, and
/// every signature, id, block hash and state root still verifies.
///
/// JSON: a present wrap is the [`Sealed`] object (`nonce`, `ciphertext`); an
/// erased one is `{"erased": "<digest hex>"}`. Canonical encoding: the
/// variant index (0 present, 1 erased), then the variant's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), serde(untagged))]
pub enum WrapBody {
    /// The ciphertext of the wrapped key.
    Present(Sealed),
    /// Erased after retention: the digest of the ciphertext it held.
    Erased(ErasedWrap),
}

/// What is left of an erased key wrap: the digest its signers committed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErasedWrap {
    /// `SHA3-256("rxchain-wrap-v1\0" || canonical encoding of the Sealed)`.
    pub erased: Hash,
}

impl WrapBody {
    /// The digest of the ciphertext, whether present or erased.
    pub fn digest(&self) -> Hash {
        match self {
            WrapBody::Present(s) => {
                Hash::of(&[b"rxchain-wrap-v1\0", &crate::encoding::to_bytes(s)])
            }
            WrapBody::Erased(e) => e.erased,
        }
    }

    /// The ciphertext, unless erased.
    pub fn present(&self) -> Option<&Sealed> {
        match self {
            WrapBody::Present(s) => Some(s),
            WrapBody::Erased(_) => None,
        }
    }

    /// The form that is signed and hashed: the digest only.
    pub fn committed(&self) -> WrapBody {
        WrapBody::Erased(ErasedWrap {
            erased: self.digest(),
        })
    }

    /// Replaces the ciphertext by its digest; `true` if anything changed.
    pub fn erase(&mut self) -> bool {
        if matches!(self, WrapBody::Erased(_)) {
            return false;
        }
        *self = self.committed();
        true
    }
}

const _: () = {
    #[derive(Serialize, Deserialize)]
    #[serde(remote = "WrapBody")]
    enum Binary {
        Present(Sealed),
        Erased(ErasedWrap),
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Json {
        Present(Sealed),
        Erased(ErasedWrap),
    }

    impl Serialize for WrapBody {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if s.is_human_readable() {
                match self {
                    WrapBody::Present(v) => v.serialize(s),
                    WrapBody::Erased(v) => v.serialize(s),
                }
            } else {
                Binary::serialize(self, s)
            }
        }
    }

    impl<'de> Deserialize<'de> for WrapBody {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            if d.is_human_readable() {
                Ok(match Json::deserialize(d)? {
                    Json::Present(v) => WrapBody::Present(v),
                    Json::Erased(v) => WrapBody::Erased(v),
                })
            } else {
                Binary::deserialize(d)
            }
        }
    }
};

/// A secret that never prints.
macro_rules! secret32 {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps raw bytes.
            pub fn from_bytes(b: [u8; 32]) -> Self {
                $name(b)
            }
            /// Draws fresh random bytes.
            pub fn random(entropy: Entropy<'_>) -> Self {
                let mut b = [0u8; 32];
                entropy(&mut b);
                $name(b)
            }
            /// The raw bytes. Handle with care.
            pub fn expose(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}(<redacted>)", stringify!($name))
            }
        }
    };
}

secret32!(
    /// The secret carried only by the prescription's QR code.
    AccessSecret
);
secret32!(
    /// The key that encrypts one prescription's private content.
    ContentKey
);

impl AccessSecret {
    /// The signing key derived from the secret; its public half is the
    /// prescription's access key on the chain.
    pub fn signing_key(&self) -> SecretKey {
        SecretKey::derive("rxchain-access-key-v1", &self.0)
    }

    /// The public access key derived from the secret, as recorded on the
    /// chain at issue.
    pub fn access_key(&self) -> PublicKey {
        self.signing_key().public()
    }
}

fn kdf(label: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut all: Vec<&[u8]> = vec![b"rxchain-kdf-v1\0", label.as_bytes(), &[0]];
    all.extend_from_slice(parts);
    *Hash::of(&all).as_bytes()
}

/// Encrypts `plaintext` under `key` with `aad` bound to it.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8], entropy: Entropy<'_>) -> Sealed {
    let mut nonce = [0u8; 12];
    entropy(&mut nonce);
    let cipher = ChaCha20Poly1305::new(key.into());
    let ciphertext = cipher
        .encrypt(
            &nonce.into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("ChaCha20-Poly1305 encrypts any message below 256 GiB");
    Sealed { nonce, ciphertext }
}

/// Decrypts and authenticates.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>, PrivacyError> {
    let cipher = ChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(
            &sealed.nonce.into(),
            Payload {
                msg: &sealed.ciphertext,
                aad,
            },
        )
        .map_err(|_| PrivacyError::OpenFailed)
}

fn unwrap32(kek: &[u8; 32], aad: &[u8], w: &WrappedKey) -> Result<[u8; 32], PrivacyError> {
    let sealed = w.sealed.present().ok_or(PrivacyError::Erased)?;
    open(kek, aad, sealed)?
        .try_into()
        .map_err(|_| PrivacyError::Malformed)
}

/// Wraps 32 bytes for whoever holds `secret`, bound to `context`.
pub fn wrap_for_secret(
    secret: &AccessSecret,
    context: &[u8],
    key: &[u8; 32],
    entropy: Entropy<'_>,
) -> WrappedKey {
    let kek = kdf("access-wrap", &[&secret.0, context]);
    WrappedKey {
        ephemeral: None,
        sealed: WrapBody::Present(seal(&kek, context, key, entropy)),
    }
}

/// Unwraps what [`wrap_for_secret`] wrapped.
pub fn unwrap_with_secret(
    secret: &AccessSecret,
    context: &[u8],
    w: &WrappedKey,
) -> Result<[u8; 32], PrivacyError> {
    if w.ephemeral.is_some() {
        return Err(PrivacyError::WrongWrapKind);
    }
    unwrap32(&kdf("access-wrap", &[&secret.0, context]), context, w)
}

/// Wraps 32 bytes for the holder of `recipient`'s secret key: ephemeral
/// ECDH, then the KDF over the shared x, both public keys and `context`.
pub fn wrap_for_key(
    recipient: &PublicKey,
    context: &[u8],
    key: &[u8; 32],
    entropy: Entropy<'_>,
) -> Result<WrappedKey, PrivacyError> {
    let mut seed = [0u8; 32];
    entropy(&mut seed);
    let eph = SecretKey::derive("rxchain-ephemeral-v1", &seed);
    let shared = eph.ecdh(recipient).map_err(|_| PrivacyError::BadKey)?;
    let kek = kdf(
        "ecdh-wrap",
        &[
            &shared,
            eph.public().as_bytes(),
            recipient.as_bytes(),
            context,
        ],
    );
    Ok(WrappedKey {
        ephemeral: Some(eph.public()),
        sealed: WrapBody::Present(seal(&kek, context, key, entropy)),
    })
}

/// Unwraps what [`wrap_for_key`] wrapped, with the recipient's secret key.
pub fn unwrap_with_key(
    recipient: &SecretKey,
    context: &[u8],
    w: &WrappedKey,
) -> Result<[u8; 32], PrivacyError> {
    let eph = w.ephemeral.as_ref().ok_or(PrivacyError::WrongWrapKind)?;
    let shared = recipient.ecdh(eph).map_err(|_| PrivacyError::BadKey)?;
    let kek = kdf(
        "ecdh-wrap",
        &[
            &shared,
            eph.as_bytes(),
            recipient.public().as_bytes(),
            context,
        ],
    );
    unwrap32(&kek, context, w)
}

/// The private part of a prescription. It exists on the chain only sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateContent {
    /// Who the prescription is for.
    pub patient: PatientDetails,
    /// Dosage instructions, one per item, in item order.
    pub dosage: Vec<String>,
    /// Clinical notes for the pharmacist.
    #[serde(default)]
    pub notes: String,
}

/// Patient identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientDetails {
    /// Full name.
    pub name: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub birth_date: String,
    /// Insurance or health-service number.
    pub identifier: String,
    /// Where to e-mail the prescription, if the patient gave an address.
    #[serde(default)]
    pub email: Option<String>,
}

/// The AEAD context of a prescription's content and key wraps.
pub fn content_context(id: &PrescriptionId) -> Vec<u8> {
    let mut c = b"rxchain-content-v1\0".to_vec();
    c.extend_from_slice(id.as_bytes());
    c
}

/// The AEAD context of a delivery address.
pub fn address_context(id: &PrescriptionId) -> Vec<u8> {
    let mut c = b"rxchain-address-v1\0".to_vec();
    c.extend_from_slice(id.as_bytes());
    c
}

/// The AEAD context of an access secret handed over to a pharmacy.
pub fn handover_context(id: &PrescriptionId) -> Vec<u8> {
    let mut c = b"rxchain-handover-v1\0".to_vec();
    c.extend_from_slice(id.as_bytes());
    c
}

/// Seals private content: returns the ciphertext under a fresh content key.
pub fn seal_content(
    id: &PrescriptionId,
    content: &PrivateContent,
    key: &ContentKey,
    entropy: Entropy<'_>,
) -> Sealed {
    seal(
        &key.0,
        &content_context(id),
        &crate::encoding::to_bytes(content),
        entropy,
    )
}

/// Opens private content with the content key.
pub fn open_content(
    id: &PrescriptionId,
    sealed: &Sealed,
    key: &ContentKey,
) -> Result<PrivateContent, PrivacyError> {
    let bytes = open(&key.0, &content_context(id), sealed)?;
    crate::encoding::from_bytes(&bytes).map_err(|_| PrivacyError::Malformed)
}

/// Serde helper: byte vectors as hex in JSON, as length-prefixed bytes in binary.
pub mod hex_bytes {
    use serde::{de, Deserialize, Deserializer, Serializer};

    /// Serialises.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(v))
        } else {
            s.serialize_bytes(v)
        }
    }

    /// Deserialises.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            hex::decode(s.as_ref()).map_err(de::Error::custom)
        } else {
            <serde_bytes_shim::ByteBuf>::deserialize(d).map(|b| b.0)
        }
    }

    mod serde_bytes_shim {
        use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

        pub struct ByteBuf(pub Vec<u8>);

        impl<'de> Deserialize<'de> for ByteBuf {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = ByteBuf;
                    fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v.to_vec()))
                    }
                    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
                        let mut out = Vec::new();
                        while let Some(b) = seq.next_element()? {
                            out.push(b);
                        }
                        Ok(ByteBuf(out))
                    }
                }
                d.deserialize_bytes(V)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter_entropy() -> impl FnMut(&mut [u8]) {
        let mut n = 0u8;
        move |b: &mut [u8]| {
            for x in b.iter_mut() {
                n = n.wrapping_add(1);
                *x = n;
            }
        }
    }

    #[test]
    fn three_parties_recover_the_content_key_and_nobody_else() {
        let mut e = counter_entropy();
        let id = PrescriptionId::from_bytes([7; 16]);
        let ctx = content_context(&id);
        let secret = AccessSecret::random(&mut e);
        let ck = ContentKey::random(&mut e);
        let hospital = SecretKey::derive("t", b"hospital");
        let regulator = SecretKey::derive("t", b"regulator");
        let stranger = SecretKey::derive("t", b"stranger");
        let w_pat = wrap_for_secret(&secret, &ctx, ck.expose(), &mut e);
        let w_hosp = wrap_for_key(&hospital.public(), &ctx, ck.expose(), &mut e).unwrap();
        let w_reg = wrap_for_key(&regulator.public(), &ctx, ck.expose(), &mut e).unwrap();
        assert_eq!(
            &unwrap_with_secret(&secret, &ctx, &w_pat).unwrap(),
            ck.expose()
        );
        assert_eq!(
            &unwrap_with_key(&hospital, &ctx, &w_hosp).unwrap(),
            ck.expose()
        );
        assert_eq!(
            &unwrap_with_key(&regulator, &ctx, &w_reg).unwrap(),
            ck.expose()
        );
        assert_eq!(
            unwrap_with_key(&stranger, &ctx, &w_hosp),
            Err(PrivacyError::OpenFailed)
        );
        let other = AccessSecret::random(&mut e);
        assert_eq!(
            unwrap_with_secret(&other, &ctx, &w_pat),
            Err(PrivacyError::OpenFailed)
        );
        // A wrap moved to another prescription does not open.
        let ctx2 = content_context(&PrescriptionId::from_bytes([8; 16]));
        assert_eq!(
            unwrap_with_secret(&secret, &ctx2, &w_pat),
            Err(PrivacyError::OpenFailed)
        );
    }

    #[test]
    fn content_roundtrip_and_tamper() {
        let mut e = counter_entropy();
        let id = PrescriptionId::from_bytes([1; 16]);
        let ck = ContentKey::random(&mut e);
        let content = PrivateContent {
            patient: PatientDetails {
                name: "Synthetic Patient".into(),
                birth_date: "1970-01-01".into(),
                identifier: "TEST-0001".into(),
                email: None,
            },
            dosage: vec!["1 tablet twice daily".into()],
            notes: String::new(),
        };
        let mut sealed = seal_content(&id, &content, &ck, &mut e);
        assert_eq!(open_content(&id, &sealed, &ck).unwrap(), content);
        sealed.ciphertext[0] ^= 1;
        assert_eq!(
            open_content(&id, &sealed, &ck),
            Err(PrivacyError::OpenFailed)
        );
    }

    #[test]
    fn secrets_never_print() {
        let s = AccessSecret::from_bytes([9; 32]);
        assert_eq!(format!("{s:?}"), "AccessSecret(<redacted>)");
    }
}
