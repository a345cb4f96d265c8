//! The dispensing report's lines as CSV, one row per dispensed line, for
//! the regulator's spreadsheets.

use super::day::{time_of_day, DayRange};
use super::reports::{fills, Names, QueryError};
use crate::store::{ChainStore, StoreError};

/// The CSV header.
pub const CSV_HEADER: [&str; 13] = [
    "date",
    "time",
    "pharmacy",
    "pharmacist",
    "prescription",
    "hospital",
    "prescriber",
    "atc",
    "drug",
    "quantity",
    "unit",
    "batch",
    "controlled",
];

/// Why the CSV could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The fills could not be read.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The CSV writer failed.
    #[error("writing the CSV failed: {0}")]
    Write(#[from] csv::Error),
    /// The CSV writer could not hand back its buffer.
    #[error("finishing the CSV failed: {0}")]
    Finish(#[source] std::io::Error),
}

impl From<StoreError> for CsvError {
    fn from(e: StoreError) -> Self {
        CsvError::Query(QueryError::Store(e))
    }
}

/// A cell that a spreadsheet would run as a formula is prefixed with `'`,
/// the usual defence against CSV injection: drug names and batch numbers
/// are typed by staff of other organisations.
fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// Every dispensed line in the range as CSV with [`CSV_HEADER`], in chain order.
pub fn dispensing_csv(chain: &ChainStore, range: DayRange) -> Result<Vec<u8>, CsvError> {
    let lines = fills(chain, range)?;
    let mut names = Names::new(chain);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    for l in &lines {
        let drug = format!("{} {} {}", l.item.name, l.item.strength, l.item.form);
        w.write_record([
            l.day.to_string(),
            time_of_day(l.at),
            cell(&names.org(&l.pharmacy)),
            cell(&names.staff(&l.pharmacist)?),
            l.rx.short(),
            cell(&names.org(&l.hospital)),
            cell(&names.staff(&l.prescriber)?),
            l.item.atc.to_string(),
            cell(&drug),
            l.quantity.to_string(),
            cell(l.item.unit.as_str()),
            cell(l.batch.as_str()),
            l.item.controlled.to_string(),
        ])?;
    }
    w.into_inner().map_err(|e| CsvError::Finish(e.into_error()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(cell("B-12"), "B-12");
    }
}

#[cfg(test)]
mod chain_tests {
    use super::*;
    use crate::query::day::Day;
    use crate::query::testchain;

    #[test]
    fn one_row_per_dispensed_line() {
        let t = testchain::build();
        let range = DayRange::new(None, Day::today()).unwrap();
        let bytes = dispensing_csv(&t.storage.chain, range).unwrap();
        let mut rdr = csv::Reader::from_reader(bytes.as_slice());
        assert_eq!(rdr.headers().unwrap(), CSV_HEADER.as_slice());
        let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        let first = &rows[0];
        let block = t.storage.chain.block(4).unwrap().unwrap();
        let day = Day::of(block.header.timestamp).unwrap().to_string();
        assert_eq!(
            (&first[0], &first[2], &first[3], &first[4]),
            (
                day.as_str(),
                "Central Pharmacy (demo)",
                "Cara Placeholder",
                t.rx.short().as_str()
            )
        );
        assert_eq!(
            (&first[7], &first[8], &first[9], &first[11], &first[12]),
            (
                "J01CA04",
                "Amoxicillin 50 mg capsule",
                "20",
                "'=LOT-A1",
                "false"
            )
        );
        assert_eq!((&rows[1][7], &rows[1][12]), ("N02AX02", "true"));
    }
}
