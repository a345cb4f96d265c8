//! Identifiers and value types with rules: each one is parsed, never trusted.

use core::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A value that failed its rule, with the field that was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidValue {
    /// Which field or type was wrong.
    pub field: &'static str,
    /// What is wrong with it, for people.
    pub problem: String,
}

impl InvalidValue {
    pub(crate) fn new(field: &'static str, problem: impl Into<String>) -> Self {
        InvalidValue {
            field,
            problem: problem.into(),
        }
    }
}

/// Milliseconds since the Unix epoch, UTC. Time always enters the contracts
/// as a value: the block timestamp the proposer chose.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// One day in milliseconds.
    pub const DAY_MS: u64 = 86_400_000;

    /// This instant plus `days` whole days (saturating).
    pub fn plus_days(self, days: u32) -> Timestamp {
        Timestamp(self.0.saturating_add(u64::from(days) * Self::DAY_MS))
    }

    /// The UTC day number since the epoch, used to group reports by day.
    pub fn day(self) -> u64 {
        self.0 / Self::DAY_MS
    }
}

/// Shown as an ISO 8601 UTC instant to the minute, e.g. `2026-11-23 15:04 UTC`,
/// so refusal sentences read as dates, not numbers.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = (self.0 / Self::DAY_MS) as i64;
        let ms_of_day = self.0 % Self::DAY_MS;
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
            ms_of_day / 3_600_000,
            (ms_of_day / 60_000) % 60
        )
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`, exact for every day this type can hold).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Defines a string newtype with a private field and a parse rule.
macro_rules! string_newtype {
    ($(#[$m:meta])* $name:ident, $field:literal, $check:expr) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses the value, enforcing its rule.
            pub fn parse(s: impl Into<String>) -> Result<Self, InvalidValue> {
                let s: String = s.into();
                let check: fn(&str) -> Result<(), String> = $check;
                check(&s).map_err(|p| InvalidValue::new($field, p))?;
                Ok($name(s))
            }

            /// The string form.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(s).map_err(de::Error::custom)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

string_newtype!(
    /// An organisation id from genesis: 2–32 characters of `a-z`, `0-9` and `-`.
    OrgId,
    "org",
    |s| {
        if (2..=32).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            Ok(())
        } else {
            Err("must be 2-32 characters of a-z, 0-9 and '-'".into())
        }
    }
);

string_newtype!(
    /// A full seven-character ATC drug code such as `N02BE01`.
    AtcCode,
    "atc",
    |s| {
        let b = s.as_bytes();
        let ok = b.len() == 7
            && b[0].is_ascii_uppercase()
            && b[1].is_ascii_digit()
            && b[2].is_ascii_digit()
            && b[3].is_ascii_uppercase()
            && b[4].is_ascii_uppercase()
            && b[5].is_ascii_digit()
            && b[6].is_ascii_digit();
        if ok {
            Ok(())
        } else {
            Err("must be a 7-character ATC code like N02BE01".into())
        }
    }
);

string_newtype!(
    /// Short printable text that may appear on the chain (drug names, forms,
    /// licence numbers, batch numbers, staff display names): 1–120 characters,
    /// no control characters. Never patient data: that is sealed.
    Label,
    "label",
    |s| {
        if s.trim().is_empty() || s.chars().count() > 120 || s.chars().any(char::is_control) {
            Err("must be 1-120 printable characters".into())
        } else {
            Ok(())
        }
    }
);

/// A dispensable quantity: a whole number from 1 to 1,000,000 units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quantity(u32);

impl Quantity {
    /// The largest quantity one line may carry.
    pub const MAX: u32 = 1_000_000;

    /// Parses a quantity, refusing zero and absurd values.
    pub fn new(n: u32) -> Result<Self, InvalidValue> {
        if n == 0 || n > Self::MAX {
            Err(InvalidValue::new(
                "quantity",
                format!("must be 1..={}", Self::MAX),
            ))
        } else {
            Ok(Quantity(n))
        }
    }

    /// The number of units.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Quantity::new(u32::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// A prescription id: 16 random bytes chosen by the prescriber's client.
///
/// Shown as 32 lowercase hex characters; [`PrescriptionId::short`] gives the
/// short form printed on slips.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = "hex", example = "0123456789abcdef0123456789abcdef"))]
pub struct PrescriptionId([u8; 16]);

impl PrescriptionId {
    /// Wraps 16 bytes.
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        PrescriptionId(b)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses 32 hex characters.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let v = hex::decode(s.trim())
            .map_err(|_| InvalidValue::new("prescription_id", "must be 32 hex characters"))?;
        let b: [u8; 16] = v
            .try_into()
            .map_err(|_| InvalidValue::new("prescription_id", "must be 32 hex characters"))?;
        Ok(PrescriptionId(b))
    }

    /// The short human-readable form, `RX-XXXX-XXXX-XXXX`, from the first six bytes.
    pub fn short(&self) -> String {
        let h = hex::encode_upper(&self.0[..6]);
        format!("RX-{}-{}-{}", &h[0..4], &h[4..8], &h[8..12])
    }
}

impl fmt::Display for PrescriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl fmt::Debug for PrescriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrescriptionId({})", self)
    }
}

impl Serialize for PrescriptionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_string())
        } else {
            self.0.serialize(s)
        }
    }
}
impl<'de> Deserialize<'de> for PrescriptionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            PrescriptionId::parse(&s).map_err(de::Error::custom)
        } else {
            Ok(PrescriptionId(<[u8; 16]>::deserialize(d)?))
        }
    }
}

/// A Raft node id, as declared in genesis.
pub type NodeId = u64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newtypes_enforce_their_rules() {
        assert!(OrgId::parse("hosp-north").is_ok());
        assert!(OrgId::parse("Hosp").is_err());
        assert!(OrgId::parse("x").is_err());
        assert!(AtcCode::parse("N02BE01").is_ok());
        assert!(AtcCode::parse("N02BE0").is_err());
        assert!(AtcCode::parse("n02BE01").is_err());
        assert!(Label::parse("500 mg").is_ok());
        assert!(Label::parse("  ").is_err());
        assert!(Label::parse("a\nb").is_err());
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(1_000_001).is_err());
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert!(serde_json::from_str::<OrgId>("\"BAD ID\"").is_err());
    }

    #[test]
    fn timestamps_display_as_utc_dates() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01 00:00 UTC");
        assert_eq!(
            Timestamp(1_767_225_600_000).to_string(),
            "2026-01-01 00:00 UTC"
        );
        assert_eq!(
            Timestamp(951_782_400_000 + 13 * 3_600_000 + 7 * 60_000).to_string(),
            "2000-02-29 13:07 UTC"
        );
    }

    #[test]
    fn prescription_id_forms() {
        let id = PrescriptionId::from_bytes([0xab; 16]);
        assert_eq!(id.short(), "RX-ABAB-ABAB-ABAB");
        assert_eq!(PrescriptionId::parse(&id.to_string()).unwrap(), id);
        assert!(PrescriptionId::parse("abc").is_err());
        let j = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<PrescriptionId>(&j).unwrap(), id);
    }
}
