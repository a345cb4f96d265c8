//! Keys, signatures and hashes: secp256k1 ECDSA over SHA3-256 digests.
//!
//! Every value here is parsed once into a type that cannot hold an invalid
//! value: a [`PublicKey`] is always a point on the curve, a [`Signature`] is
//! always a well-formed, low-S signature. Verification is therefore a single
//! call that can only fail for cryptographic reasons.

use core::fmt;

use k256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use sha3::{Digest, Sha3_256};

/// Errors from parsing keys, signatures and hashes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The bytes are not a compressed SEC1 secp256k1 point.
    #[error("not a valid compressed secp256k1 public key")]
    BadPublicKey,
    /// The bytes are not a valid secp256k1 secret scalar.
    #[error("not a valid secp256k1 secret key")]
    BadSecretKey,
    /// The bytes are not a 64-byte, low-S ECDSA signature.
    #[error("not a valid low-S 64-byte ECDSA signature")]
    BadSignature,
    /// A hex string had the wrong length or a non-hex character.
    #[error("bad hex: expected {expected} bytes")]
    BadHex {
        /// How many bytes the value must have.
        expected: usize,
    },
    /// The signature does not verify under the key.
    #[error("signature does not verify")]
    VerifyFailed,
}

/// Serialises a fixed-size byte value as lowercase hex for humans (JSON) and
/// as raw bytes for the canonical binary encoding.
macro_rules! bytes_serde {
    ($ty:ty, $len:expr, $from:expr) => {
        bytes_serde!($ty, $len, $from, $from);
    };
    ($ty:ty, $len:expr, $from:expr, $from_bin:expr) => {
        /// In JSON the value is its bytes as lowercase hex, which is what
        /// the API document says.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(format!("^[0-9a-f]{{{}}}$", 2 * $len)))
                    .description(Some(format!("{} bytes as lowercase hex", $len)))
                    .into()
            }
        }
        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $ty {}
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&hex::encode(self.as_bytes()))
                } else {
                    // Fixed-size arrays are tuples in serde: no length prefix.
                    use serde::ser::SerializeTuple;
                    let mut t = s.serialize_tuple($len)?;
                    for b in self.as_bytes().iter() {
                        t.serialize_element(b)?;
                    }
                    t.end()
                }
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                    let v = hex::decode(s.as_ref()).map_err(de::Error::custom)?;
                    let bytes: [u8; $len] = v
                        .try_into()
                        .map_err(|_| de::Error::custom(CryptoError::BadHex { expected: $len }))?;
                    let f: fn([u8; $len]) -> Result<$ty, CryptoError> = $from;
                    f(bytes).map_err(de::Error::custom)
                } else {
                    let bytes = <[u8; $len] as serde_big_array_shim::BigArray>::deserialize(d)?;
                    let f: fn([u8; $len]) -> Result<$ty, CryptoError> = $from_bin;
                    f(bytes).map_err(de::Error::custom)
                }
            }
        }
    };
}

/// Deserialising arrays longer than 32 elements without an extra crate.
mod serde_big_array_shim {
    use core::marker::PhantomData;
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};

    pub trait BigArray<'de>: Sized {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
    }

    impl<'de, const N: usize> BigArray<'de> for [u8; N] {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<const N: usize>(PhantomData<[u8; N]>);
            impl<'de, const N: usize> Visitor<'de> for V<N> {
                type Value = [u8; N];
                fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                    write!(f, "{N} bytes")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
                    let mut out = [0u8; N];
                    for (i, slot) in out.iter_mut().enumerate() {
                        *slot = seq
                            .next_element()?
                            .ok_or_else(|| A::Error::invalid_length(i, &self))?;
                    }
                    Ok(out)
                }
            }
            d.deserialize_tuple(N, V::<N>(PhantomData))
        }
    }
}

/// A SHA3-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash([u8; 32]);

impl Hash {
    /// The all-zero hash, used as the parent of nothing.
    pub const ZERO: Hash = Hash([0u8; 32]);

    /// Wraps 32 raw bytes.
    pub const fn from_bytes(b: [u8; 32]) -> Self {
        Hash(b)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// SHA3-256 over the concatenation of `parts`.
    pub fn of(parts: &[&[u8]]) -> Hash {
        let mut h = Sha3_256::new();
        for p in parts {
            h.update(p);
        }
        Hash(h.finalize().into())
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn parse_hex(s: &str) -> Result<Hash, CryptoError> {
        let v = hex::decode(s).map_err(|_| CryptoError::BadHex { expected: 32 })?;
        Ok(Hash(
            v.try_into()
                .map_err(|_| CryptoError::BadHex { expected: 32 })?,
        ))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", &self.to_hex()[..16])
    }
}
impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
bytes_serde!(Hash, 32, |b| Ok(Hash(b)));

/// A secp256k1 public key: the 33-byte compressed SEC1 form, plus the
/// decompressed point once it is known to be valid.
///
/// Keys parsed from text (JSON, hex: anything a client sends) are checked and
/// decompressed at once. Keys decoded from the canonical binary form (stored
/// state and blocks) are decompressed lazily, when a signature or ECDH first
/// needs the point: decompressing is a square root (about 12 µs), and state
/// records carry several keys that are read far more often than used. An
/// invalid binary key therefore fails at use, as `BadPublicKey`, the same way
/// on every node.
#[derive(Clone, Copy)]
pub struct PublicKey {
    bytes: [u8; 33],
    key: Option<k256::ecdsa::VerifyingKey>,
}

impl PublicKey {
    /// Parses a compressed SEC1 point.
    pub fn parse(bytes: [u8; 33]) -> Result<Self, CryptoError> {
        let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(&bytes)
            .map_err(|_| CryptoError::BadPublicKey)?;
        Ok(PublicKey {
            bytes,
            key: Some(key),
        })
    }

    /// Wraps canonical bytes without decompressing them; see the type docs.
    fn from_canonical(bytes: [u8; 33]) -> Result<Self, CryptoError> {
        if bytes[0] != 2 && bytes[0] != 3 {
            return Err(CryptoError::BadPublicKey);
        }
        Ok(PublicKey { bytes, key: None })
    }

    fn point(&self) -> Result<k256::ecdsa::VerifyingKey, CryptoError> {
        match self.key {
            Some(k) => Ok(k),
            None => k256::ecdsa::VerifyingKey::from_sec1_bytes(&self.bytes)
                .map_err(|_| CryptoError::BadPublicKey),
        }
    }

    /// The same key with its point decompressed, so that signatures checked
    /// under the copy skip the square root; a key parsed from text already is.
    /// An invalid point is `BadPublicKey`, as its first use would be.
    pub fn decompressed(&self) -> Result<Self, CryptoError> {
        Ok(PublicKey {
            bytes: self.bytes,
            key: Some(self.point()?),
        })
    }

    /// Parses 66 hex characters.
    pub fn parse_hex(s: &str) -> Result<Self, CryptoError> {
        let v = hex::decode(s).map_err(|_| CryptoError::BadHex { expected: 33 })?;
        Self::parse(
            v.try_into()
                .map_err(|_| CryptoError::BadHex { expected: 33 })?,
        )
    }

    /// The compressed SEC1 bytes.
    pub fn as_bytes(&self) -> &[u8; 33] {
        &self.bytes
    }

    /// Lowercase hex of the compressed form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// Verifies `sig` over the SHA3-256 digest `digest`.
    pub fn verify_digest(&self, digest: &Hash, sig: &Signature) -> Result<(), CryptoError> {
        let s =
            k256::ecdsa::Signature::from_slice(&sig.0).map_err(|_| CryptoError::BadSignature)?;
        self.point()?
            .verify_prehash(digest.as_bytes(), &s)
            .map_err(|_| CryptoError::VerifyFailed)
    }

    /// Verifies `sig` over `message` under domain tag `tag` (see [`signing_digest`]).
    pub fn verify(&self, tag: &str, message: &[u8], sig: &Signature) -> Result<(), CryptoError> {
        self.verify_digest(&signing_digest(tag, message), sig)
    }

    pub(crate) fn affine(&self) -> Result<k256::AffinePoint, CryptoError> {
        Ok(*self.point()?.as_affine())
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, o: &Self) -> bool {
        self.bytes == o.bytes
    }
}
impl Eq for PublicKey {}
impl PartialOrd for PublicKey {
    fn partial_cmp(&self, o: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for PublicKey {
    fn cmp(&self, o: &Self) -> core::cmp::Ordering {
        self.bytes.cmp(&o.bytes)
    }
}
impl core::hash::Hash for PublicKey {
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        self.bytes.hash(h)
    }
}
impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.to_hex()[..16])
    }
}
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
bytes_serde!(PublicKey, 33, PublicKey::parse, PublicKey::from_canonical);

/// A 64-byte `r || s` ECDSA signature with `s` in the lower half of the order.
///
/// Requiring low-S removes ECDSA's one malleability, so one signed message has
/// exactly one valid signature per nonce.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Parses and checks the shape (range of r and s, low-S).
    pub fn parse(bytes: [u8; 64]) -> Result<Self, CryptoError> {
        let s =
            k256::ecdsa::Signature::from_slice(&bytes).map_err(|_| CryptoError::BadSignature)?;
        if s.normalize_s() != s {
            return Err(CryptoError::BadSignature);
        }
        Ok(Signature(bytes))
    }

    /// The raw `r || s` bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}
impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", &self.to_hex()[..16])
    }
}
bytes_serde!(Signature, 64, Signature::parse);

/// A secp256k1 secret key. It never prints and is not serialisable.
#[derive(Clone)]
pub struct SecretKey {
    key: k256::ecdsa::SigningKey,
    public: PublicKey,
}

impl SecretKey {
    /// Parses 32 big-endian bytes; fails for zero or values not below the group order.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        let key =
            k256::ecdsa::SigningKey::from_slice(bytes).map_err(|_| CryptoError::BadSecretKey)?;
        let enc = key.verifying_key().to_sec1_bytes();
        let public = PublicKey::parse(
            enc.as_ref()
                .try_into()
                .map_err(|_| CryptoError::BadSecretKey)?,
        )?;
        Ok(SecretKey { key, public })
    }

    /// Derives a key from arbitrary seed bytes: SHA3-256(tag || seed || counter)
    /// with the smallest one-byte counter that gives a valid scalar.
    pub fn derive(tag: &str, seed: &[u8]) -> SecretKey {
        for counter in 0u8..=255 {
            let h = Hash::of(&[tag.as_bytes(), &[0], seed, &[counter]]);
            if let Ok(k) = SecretKey::from_bytes(h.as_bytes()) {
                return k;
            }
        }
        // 256 consecutive invalid scalars has probability far below 2^-30000.
        unreachable!("no valid scalar in 256 SHA3 outputs")
    }

    /// The 32 secret bytes, for storing in an encrypted key store.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes().into()
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// Signs a SHA3-256 digest (RFC 6979 deterministic nonce, low-S).
    pub fn sign_digest(&self, digest: &Hash) -> Signature {
        let s: k256::ecdsa::Signature = self
            .key
            .sign_prehash(digest.as_bytes())
            .expect("a 32-byte prehash is always accepted");
        let s = s.normalize_s();
        Signature(s.to_bytes().into())
    }

    /// Signs `message` under domain tag `tag` (see [`signing_digest`]).
    pub fn sign(&self, tag: &str, message: &[u8]) -> Signature {
        self.sign_digest(&signing_digest(tag, message))
    }

    /// Elliptic-curve Diffie-Hellman: the x coordinate of `self * other`.
    pub fn ecdh(&self, other: &PublicKey) -> Result<[u8; 32], CryptoError> {
        let shared = k256::ecdh::diffie_hellman(self.key.as_nonzero_scalar(), other.affine()?);
        Ok((*shared.raw_secret_bytes()).into())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretKey(public={}, secret=<redacted>)",
            self.public.to_hex()
        )
    }
}

/// The digest that is signed for `message` under a domain tag:
/// `SHA3-256("rxchain-sig-v1" || 0x00 || tag || 0x00 || message)`.
pub fn signing_digest(tag: &str, message: &[u8]) -> Hash {
    Hash::of(&[b"rxchain-sig-v1\0", tag.as_bytes(), &[0], message])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_roundtrip_and_domain_separation() {
        let k = SecretKey::derive("test", b"seed");
        let sig = k.sign("a", b"msg");
        k.public().verify("a", b"msg", &sig).unwrap();
        assert_eq!(
            k.public().verify("b", b"msg", &sig),
            Err(CryptoError::VerifyFailed)
        );
        assert_eq!(
            k.public().verify("a", b"msh", &sig),
            Err(CryptoError::VerifyFailed)
        );
    }

    #[test]
    fn high_s_signatures_are_refused() {
        let k = SecretKey::derive("test", b"seed");
        let sig = k.sign("a", b"msg");
        let s = k256::ecdsa::Signature::from_slice(sig.as_bytes()).unwrap();
        let (r, s) = s.split_scalars();
        let high = k256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        let bytes: [u8; 64] = high.to_bytes().into();
        assert_eq!(Signature::parse(bytes), Err(CryptoError::BadSignature));
    }

    #[test]
    fn json_is_hex_and_binary_is_raw() {
        let k = SecretKey::derive("test", b"seed");
        let j = serde_json::to_string(&k.public()).unwrap();
        assert_eq!(j, format!("\"{}\"", k.public().to_hex()));
        let back: PublicKey = serde_json::from_str(&j).unwrap();
        assert_eq!(back, k.public());
        let bin = postcard::to_allocvec(&k.public()).unwrap();
        assert_eq!(bin.as_slice(), k.public().as_bytes());
        let back: PublicKey = postcard::from_bytes(&bin).unwrap();
        assert_eq!(back, k.public());
        assert!(serde_json::from_str::<PublicKey>("\"02ff\"").is_err());
    }

    #[test]
    fn ecdh_agrees() {
        let a = SecretKey::derive("t", b"a");
        let b = SecretKey::derive("t", b"b");
        assert_eq!(a.ecdh(&b.public()).unwrap(), b.ecdh(&a.public()).unwrap());
    }
}
