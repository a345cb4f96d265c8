//! UTC calendar days, the unit of the regulator's reports.
//!
//! The chain indexes transactions by the UTC day of their block's time
//! (days since 1970-01-01, see [`Timestamp::day`]); people write days as
//! `YYYY-MM-DD`. [`Day`] is the checked meeting point of the two, built on
//! the `time` crate's calendar so no date arithmetic is written by hand.

use std::fmt;

use rxchain_contracts::Timestamp;
use serde::{Serialize, Serializer};
use time::macros::{date, format_description};
use time::{Date, Duration, Time};

/// The chain's first possible day: block times count from the Unix epoch.
const EPOCH: Date = date!(1970 - 01 - 01);

/// A UTC calendar day from 1970-01-01 to 9999-12-31.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, utoipa::ToSchema)]
#[schema(value_type = String, format = Date, example = "2026-11-23")]
pub struct Day(Date);

/// Why a text or a day number is not a [`Day`].
#[derive(Debug, thiserror::Error)]
pub enum DayError {
    /// Not written `YYYY-MM-DD`, or not a real date (31 April, 29 February
    /// of a common year).
    #[error("{input:?} is not a date written YYYY-MM-DD")]
    Malformed {
        /// The text given.
        input: String,
        /// The calendar's complaint.
        #[source]
        source: time::error::Parse,
    },
    /// A sign before the year: the calendar parser accepts `+2026-01-01`,
    /// but a report's day is written with exactly four year digits.
    #[error("{input:?} is not a date written YYYY-MM-DD")]
    Signed {
        /// The text given.
        input: String,
    },
    /// A real date before 1970-01-01, where the chain has no days.
    #[error("{input:?} is before 1970-01-01")]
    BeforeEpoch {
        /// The text given.
        input: String,
    },
    /// A day number past 9999-12-31.
    #[error("day {number} after 1970-01-01 lies past 9999-12-31")]
    OutOfRange {
        /// Days since 1970-01-01.
        number: u64,
    },
}

impl Day {
    /// Parses `YYYY-MM-DD`, refusing dates that do not exist.
    pub fn parse(input: &str) -> Result<Day, DayError> {
        if input.starts_with(['+', '-']) {
            return Err(DayError::Signed {
                input: input.to_string(),
            });
        }
        let date =
            Date::parse(input, format_description!("[year]-[month]-[day]")).map_err(|source| {
                DayError::Malformed {
                    input: input.to_string(),
                    source,
                }
            })?;
        if date < EPOCH {
            return Err(DayError::BeforeEpoch {
                input: input.to_string(),
            });
        }
        Ok(Day(date))
    }

    /// The day `number` days after 1970-01-01.
    pub fn from_number(number: u64) -> Result<Day, DayError> {
        i64::try_from(number)
            .ok()
            .and_then(|n| EPOCH.checked_add(Duration::days(n)))
            .map(Day)
            .ok_or(DayError::OutOfRange { number })
    }

    /// The UTC day of a block time.
    pub fn of(t: Timestamp) -> Result<Day, DayError> {
        Day::from_number(t.day())
    }

    /// Today in UTC, by this node's clock.
    pub fn today() -> Day {
        // A clock past the year 9999 is broken; the last day keeps the
        // reports answering instead of failing on it.
        Day::of(crate::clock::now()).unwrap_or(Day(Date::MAX))
    }

    /// Days since 1970-01-01, the chain's day-index key.
    pub fn number(self) -> u64 {
        // A `Day` is never before the epoch, so the difference is never negative.
        (self.0 - EPOCH).whole_days().unsigned_abs()
    }

    /// The day `days` days earlier, or 1970-01-01 when that is earlier still.
    pub fn saturating_back(self, days: u64) -> Day {
        i64::try_from(days)
            .ok()
            .and_then(|d| self.0.checked_sub(Duration::days(d)))
            .filter(|d| *d >= EPOCH)
            .map_or(Day(EPOCH), Day)
    }
}

impl fmt::Display for Day {
    /// `YYYY-MM-DD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Day {
    /// As `YYYY-MM-DD`, the form people and the query parameters use.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A block time's UTC time of day as `HH:MM:SS`.
pub fn time_of_day(t: Timestamp) -> String {
    // The remainder is under a day, so it always fits an i64.
    let ms = i64::try_from(t.0 % Timestamp::DAY_MS).unwrap_or(0);
    let at = Time::MIDNIGHT + Duration::milliseconds(ms);
    format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second())
}

/// A checked report range: `from` is not after `to`, and it spans at most
/// [`DayRange::MAX_DAYS`] days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayRange {
    from: Day,
    to: Day,
}

/// Why two days do not make a report range.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    /// `from` is after `to`.
    #[error("from must not be after to")]
    Reversed,
    /// More than [`DayRange::MAX_DAYS`] days.
    #[error("a report covers at most {} days", DayRange::MAX_DAYS)]
    TooLong,
}

impl DayRange {
    /// The longest report range: a year, leap day included.
    pub const MAX_DAYS: u64 = 366;

    /// The range used when `from` is absent: this many days up to `to`.
    pub const DEFAULT_DAYS: u64 = 30;

    /// The days from `from` to `to` inclusive; without `from`, the
    /// [`DayRange::DEFAULT_DAYS`] days ending at `to`.
    pub fn new(from: Option<Day>, to: Day) -> Result<DayRange, RangeError> {
        let from = from.unwrap_or_else(|| to.saturating_back(Self::DEFAULT_DAYS - 1));
        if from > to {
            return Err(RangeError::Reversed);
        }
        if to.number() - from.number() + 1 > Self::MAX_DAYS {
            return Err(RangeError::TooLong);
        }
        Ok(DayRange { from, to })
    }

    /// The first day.
    pub fn from(self) -> Day {
        self.from
    }

    /// The last day, inclusive.
    pub fn to(self) -> Day {
        self.to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> u64 {
        Day::parse(s).unwrap().number()
    }

    #[test]
    fn days_round_trip() {
        assert_eq!(n("1970-01-01"), 0);
        assert_eq!(n("2026-01-01"), 1_767_225_600_000 / Timestamp::DAY_MS);
        for d in [0u64, 59, 365, 11_016, 20_454, 30_000] {
            let day = Day::from_number(d).unwrap();
            assert_eq!(n(&day.to_string()), d);
        }
        assert!(Day::parse("2025-02-29").is_err());
        assert!(Day::parse("2024-02-29").is_ok());
        assert!(Day::parse("2024-04-31").is_err());
        assert!(Day::parse("24-04-01").is_err());
        assert!(Day::parse("+2024-04-01").is_err());
        assert!(Day::parse("1969-12-31").is_err());
        assert_eq!(time_of_day(Timestamp(3_723_000)), "01:02:03");
    }

    #[test]
    fn ranges_are_checked() {
        let to = Day::parse("2026-03-01").unwrap();
        let r = DayRange::new(None, to).unwrap();
        assert_eq!(r.from().to_string(), "2026-01-31");
        let early = Day::parse("1970-01-10").unwrap();
        assert_eq!(DayRange::new(None, early).unwrap().from().number(), 0);
        assert_eq!(
            DayRange::new(Some(to), early).unwrap_err(),
            RangeError::Reversed
        );
        let year_ago = Day::parse("2025-02-28").unwrap();
        assert_eq!(
            DayRange::new(Some(year_ago), to).unwrap_err(),
            RangeError::TooLong
        );
        assert!(DayRange::new(Some(Day::parse("2025-03-01").unwrap()), to).is_ok());
    }
}
