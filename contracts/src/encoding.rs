//! The canonical byte encoding of everything that is signed or hashed.
//!
//! rxchain uses the [postcard 1.x wire format], which is fully specified and
//! has exactly one encoding per value, over the Rust types in this crate with
//! their fields in declaration order:
//!
//! * unsigned integers are LEB128 varints (`u8` is a single raw byte);
//! * `bool` is one byte, 0 or 1;
//! * strings and byte vectors are a varint length followed by the bytes;
//! * fixed-size arrays (hashes, keys, signatures, ids, nonces) are their raw
//!   bytes with no length prefix;
//! * `Option` is a byte 0 (none) or 1 followed by the value;
//! * sequences are a varint count followed by the elements;
//! * enums are the varint index of the variant, in declaration order,
//!   followed by the variant's fields.
//!
//! There are no maps and no floating-point numbers in any signed or hashed
//! type, so the encoding is the same on every platform.
//!
//! [postcard 1.x wire format]: https://postcard.jamesmunns.com/wire-format

use serde::{de::DeserializeOwned, Serialize};

/// Encodes a value canonically.
pub fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Every type in this crate uses only the serde data model subset that
    // postcard supports (no maps of unknown length, no `serialize_any`), so
    // encoding into a growable vector cannot fail.
    postcard::to_allocvec(value).expect("rxchain types always encode")
}

/// Decodes a canonically encoded value; trailing bytes are an error.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (v, rest) = postcard::take_from_bytes(bytes).map_err(|e| DecodeError(e.to_string()))?;
    if rest.is_empty() {
        Ok(v)
    } else {
        Err(DecodeError(format!("{} trailing bytes", rest.len())))
    }
}

/// Bytes that do not decode as the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode: {0}")]
pub struct DecodeError(pub String);

/// Gives an enum two serde forms: internally tagged (`{"<tag>": "<variant>",
/// ...}`) for human-readable formats such as the JSON API, and the plain
/// variant index for the canonical binary encoding.
///
/// Internally tagged enums cannot be decoded from postcard at all (serde
/// buffers them through `deserialize_any`, which a non-self-describing format
/// cannot offer), and they would put the tag string into signed bytes. So the
/// enum itself derives neither trait; this macro defines both through two
/// private `remote` mirrors of its variants, which must be listed exactly as
/// in the enum (the compiler checks every field against it).
macro_rules! tagged_in_json {
    ($ty:ident, $ty_name:literal, $tag:literal, { $($variants:tt)* }) => {
        const _: () = {
            #[derive(serde::Serialize, serde::Deserialize)]
            #[serde(remote = $ty_name)]
            #[allow(dead_code, clippy::large_enum_variant)]
            enum Binary { $($variants)* }

            #[derive(serde::Serialize, serde::Deserialize)]
            #[serde(remote = $ty_name, rename_all = "snake_case", tag = $tag)]
            #[allow(dead_code, clippy::large_enum_variant)]
            enum Tagged { $($variants)* }

            impl serde::Serialize for $ty {
                fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    if s.is_human_readable() {
                        Tagged::serialize(self, s)
                    } else {
                        Binary::serialize(self, s)
                    }
                }
            }

            impl<'de> serde::Deserialize<'de> for $ty {
                fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    if d.is_human_readable() {
                        Tagged::deserialize(d)
                    } else {
                        Binary::deserialize(d)
                    }
                }
            }
        };
    };
}
pub(crate) use tagged_in_json;
