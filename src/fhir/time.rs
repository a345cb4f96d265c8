//! FHIR `instant`/`dateTime` text for block times, and back.

use rxchain_contracts::Timestamp;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

/// A time FHIR cannot carry, or text that is no FHIR date or dateTime.
#[derive(Debug, thiserror::Error)]
pub enum TimeError {
    /// Not a FHIR date (`YYYY-MM-DD`) or dateTime with a time zone.
    #[error("{text:?} is not a FHIR date (YYYY-MM-DD) or a dateTime with a time zone")]
    Unparsable {
        /// What was sent.
        text: String,
        /// The parser's complaint.
        #[source]
        source: time::error::Parse,
    },
    /// Before 1970 or out of range.
    #[error("{0:?} lies before 1970")]
    BeforeEpoch(String),
}

/// A block time as a FHIR `instant` in UTC, with milliseconds only when
/// they are not zero.
pub fn instant(t: Timestamp) -> String {
    let nanos = i128::from(t.0) * 1_000_000;
    // Any u64 of milliseconds fits the range `time` accepts up to year 9999;
    // beyond it the epoch is the honest fallback of an impossible block time.
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let ms = t.0 % 1000;
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    if ms == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{ms:03}Z")
    }
}

/// Parses a FHIR date (midnight UTC) or dateTime with zone into a block time.
pub fn parse(text: &str) -> Result<Timestamp, TimeError> {
    let at = match OffsetDateTime::parse(text, &Rfc3339) {
        Ok(t) => t,
        Err(rfc) => match Date::parse(text, format_description!("[year]-[month]-[day]")) {
            Ok(d) => PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc(),
            Err(_) => {
                return Err(TimeError::Unparsable {
                    text: text.into(),
                    source: rfc,
                })
            }
        },
    };
    let ms = at.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms)
        .map(Timestamp)
        .map_err(|_| TimeError::BeforeEpoch(text.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_and_dates_are_midnight_utc() {
        let t = Timestamp(1_764_633_600_123);
        assert_eq!(instant(t), "2025-12-02T00:00:00.123Z");
        assert_eq!(parse(&instant(t)).unwrap(), t);
        assert_eq!(
            instant(Timestamp(1_764_633_600_000)),
            "2025-12-02T00:00:00Z"
        );
        assert_eq!(parse("2025-12-02").unwrap(), Timestamp(1_764_633_600_000));
        assert_eq!(
            parse("2025-12-02T01:00:00+01:00").unwrap(),
            Timestamp(1_764_633_600_000)
        );
        assert!(parse("02/12/2025").is_err());
        assert!(parse("1969-12-31").is_err());
    }
}
