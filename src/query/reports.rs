//! The regulator's projections of the chain: dispensing volumes grouped
//! five ways, controlled-drug volumes, and the refused attempts (alerts).
//!
//! They read what the chain already holds in plaintext (drug codes,
//! quantities, organisations, signers); nothing here needs a data key, and
//! no patient data is involved. Days are UTC days of block time, the
//! chain's own day index.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use rxchain_contracts::state::PrescriptionRecord;
use rxchain_contracts::tx::{DeliveryStatus, Item, TxBody};
use rxchain_contracts::{Block, Label, OrgId, Outcome, PrescriptionId, PublicKey, Timestamp, TxId};
use serde::{Deserialize, Serialize};

use super::day::{Day, DayError, DayRange};
use crate::store::{ChainStore, StoreError};

/// Why a report could not be computed: the store failed, or its indexes
/// disagree with its blocks.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An index names a block the store does not hold.
    #[error("{index} index points at missing block {height}")]
    MissingBlock {
        /// Which index.
        index: &'static str,
        /// The block it names.
        height: u64,
    },
    /// An index names a position the block does not have.
    #[error("{index} index points past block {height} (position {position})")]
    PastBlock {
        /// Which index.
        index: &'static str,
        /// The block it names.
        height: u64,
        /// The position it names.
        position: u32,
    },
    /// The refusal index names a transaction that was applied.
    #[error("refusal index points at a non-refusal in block {height} (position {position})")]
    NotRefused {
        /// The block it names.
        height: u64,
        /// The position it names.
        position: u32,
    },
    /// An applied dispense names a prescription the state does not hold.
    #[error("an applied dispense names no prescription ({id})")]
    MissingPrescription {
        /// The prescription named.
        id: PrescriptionId,
    },
    /// A block's time lies outside the calendar the reports use.
    #[error("block {height} has a time outside the calendar")]
    OutOfCalendar {
        /// The block.
        height: u64,
        /// The calendar's complaint.
        #[source]
        source: DayError,
    },
}

/// The dispensing report's grouping.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// By UTC day.
    #[default]
    Day,
    /// By dispensing pharmacy.
    Pharmacy,
    /// By ATC code.
    Drug,
    /// By prescriber.
    Prescriber,
    /// By issuing hospital.
    Hospital,
}

/// One dispensed line, with everything the reports show about it.
#[derive(Clone, Debug)]
pub struct FillLine {
    /// Block time.
    pub at: Timestamp,
    /// Its UTC day.
    pub day: Day,
    /// The dispense transaction.
    pub tx: TxId,
    /// The dispensing pharmacy.
    pub pharmacy: OrgId,
    /// The pharmacist who signed.
    pub pharmacist: PublicKey,
    /// The prescription.
    pub rx: PrescriptionId,
    /// Its issuing hospital.
    pub hospital: OrgId,
    /// Its prescriber.
    pub prescriber: PublicKey,
    /// The prescribed item this line dispenses.
    pub item: Item,
    /// Units dispensed.
    pub quantity: u32,
    /// The batch dispensed from.
    pub batch: Label,
}

/// Display names of staff keys and organisations, each staff key looked up
/// once: a report names the same few people on many lines.
pub struct Names<'a> {
    chain: &'a ChainStore,
    cache: HashMap<PublicKey, String>,
}

impl<'a> Names<'a> {
    /// Names from this chain's staff records and genesis.
    pub fn new(chain: &'a ChainStore) -> Self {
        Names {
            chain,
            cache: HashMap::new(),
        }
    }

    /// A staff key's display name, or `key <first 12 hex digits>` for a key
    /// that is not staff.
    pub fn staff(&mut self, key: &PublicKey) -> Result<String, StoreError> {
        if let Some(n) = self.cache.get(key) {
            return Ok(n.clone());
        }
        let n = match self.chain.staff(key)? {
            Some(st) => st.name.to_string(),
            None => format!("key {}", &key.to_hex()[..12]),
        };
        self.cache.insert(*key, n.clone());
        Ok(n)
    }

    /// An organisation's name from the effective consortium, or its id when
    /// it names none.
    pub fn org(&self, org: &OrgId) -> String {
        self.chain
            .consortium()
            .org(org)
            .map_or_else(|| org.to_string(), |o| o.name.to_string())
    }
}

/// Calls `f` with each transaction in the days of `range`, its block and
/// outcome, in chain order. The day index lists a block's transactions
/// together, so each block is decoded once.
fn for_each_tx_in_days(
    chain: &ChainStore,
    range: DayRange,
    mut f: impl FnMut(&Block, &rxchain_contracts::SignedTx, &Outcome) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let mut block: Option<Block> = None;
    for (height, index) in chain.txs_in_days(range.from().number(), range.to().number())? {
        if block.as_ref().map(|b| b.header.height) != Some(height) {
            block = chain.block(height)?;
        }
        let Some(b) = &block else {
            return Err(QueryError::MissingBlock {
                index: "day",
                height,
            });
        };
        let (Some(t), Some(outcome)) = (b.txs.get(index as usize), b.outcomes.get(index as usize))
        else {
            return Err(QueryError::PastBlock {
                index: "day",
                height,
                position: index,
            });
        };
        f(b, t, outcome)?;
    }
    Ok(())
}

/// Every applied dispense line in the range, in chain order.
pub fn fills(chain: &ChainStore, range: DayRange) -> Result<Vec<FillLine>, QueryError> {
    let chain_id = chain.genesis().chain_id.as_str();
    let mut out = Vec::new();
    let mut records = HashMap::new();
    for_each_tx_in_days(chain, range, |b, t, outcome| {
        let height = b.header.height;
        let TxBody::Dispense(d) = &t.tx.body else {
            return Ok(());
        };
        if !matches!(outcome, Outcome::Applied) {
            return Ok(());
        }
        let rec = match records.entry(d.id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(
                chain
                    .prescription(&d.id)?
                    .ok_or(QueryError::MissingPrescription { id: d.id })?,
            ),
        };
        let tx = t.tx.id(chain_id);
        // The fill records the pharmacy at the time; the signer's org is the fallback.
        let pharmacy = match rec.fills.iter().find(|f| f.tx == tx) {
            Some(f) => f.pharmacy.clone(),
            None => match chain.staff(&t.tx.signer)? {
                Some(st) => st.org,
                None => return Ok(()),
            },
        };
        let day = Day::of(b.header.timestamp)
            .map_err(|source| QueryError::OutOfCalendar { height, source })?;
        for line in &d.lines {
            let Some(item) = rec.items.get(usize::from(line.item)) else {
                continue;
            };
            out.push(FillLine {
                at: b.header.timestamp,
                day,
                tx,
                pharmacy: pharmacy.clone(),
                pharmacist: t.tx.signer,
                rx: d.id,
                hospital: rec.hospital.clone(),
                prescriber: rec.prescriber,
                item: item.clone(),
                quantity: line.quantity.get(),
                batch: line.batch.clone(),
            });
        }
        Ok(())
    })?;
    Ok(out)
}

/// The prescriptions with an applied dispense or an applied delivery
/// hand-over (`delivered`) in the days of `range`, in chain order, each
/// once: the candidates for "handed over in this period", since a delivery
/// dispensed before the period may reach the patient inside it.
pub fn handed_over_candidates(
    chain: &ChainStore,
    range: DayRange,
) -> Result<Vec<PrescriptionId>, QueryError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for_each_tx_in_days(chain, range, |_, t, outcome| {
        let id = match &t.tx.body {
            TxBody::Dispense(d) => d.id,
            TxBody::Delivery(d) if d.status == DeliveryStatus::Delivered => d.id,
            _ => return Ok(()),
        };
        if matches!(outcome, Outcome::Applied) && seen.insert(id) {
            out.push(id);
        }
        Ok(())
    })?;
    Ok(out)
}

// ---- dispensing ----------------------------------------------------------

/// One group of the dispensing report.
#[derive(Serialize, Clone, Debug, Default, utoipa::ToSchema)]
pub struct Row {
    /// The group's key: a day, an org id, an ATC code or a key (hex).
    pub key: String,
    /// The group for people.
    pub label: String,
    /// Dispense transactions with a line in this group.
    pub fills: u64,
    /// Units dispensed.
    pub quantity: u64,
    /// Of which of controlled drugs.
    pub controlled_quantity: u64,
}

/// Totals over the range.
#[derive(Serialize, Clone, Debug, Default, utoipa::ToSchema)]
pub struct Totals {
    /// Dispense transactions.
    pub fills: u64,
    /// Units dispensed.
    pub quantity: u64,
    /// Of which of controlled drugs.
    pub controlled_quantity: u64,
}

/// The dispensing report.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct Dispensing {
    /// First day.
    pub from: Day,
    /// Last day, inclusive.
    pub to: Day,
    /// The grouping.
    pub group_by: GroupBy,
    /// The groups: by day in day order, otherwise largest quantity first.
    pub rows: Vec<Row>,
    /// Totals.
    pub totals: Totals,
}

/// Dispensed volumes in the range, grouped as asked.
pub fn dispensing(
    chain: &ChainStore,
    range: DayRange,
    group_by: GroupBy,
) -> Result<Dispensing, QueryError> {
    let lines = fills(chain, range)?;
    let mut names = Names::new(chain);
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut counted: HashSet<(String, TxId)> = HashSet::new();
    let mut totals = Totals::default();
    let mut txs = HashSet::new();
    for l in &lines {
        let (key, label) = match group_by {
            GroupBy::Day => (l.day.to_string(), l.day.to_string()),
            GroupBy::Pharmacy => (l.pharmacy.to_string(), names.org(&l.pharmacy)),
            GroupBy::Drug => (l.item.atc.to_string(), l.item.name.to_string()),
            GroupBy::Prescriber => (l.prescriber.to_hex(), names.staff(&l.prescriber)?),
            GroupBy::Hospital => (l.hospital.to_string(), names.org(&l.hospital)),
        };
        let q = u64::from(l.quantity);
        let cq = if l.item.controlled { q } else { 0 };
        let row = rows.entry(key.clone()).or_insert_with(|| Row {
            key: key.clone(),
            label,
            ..Row::default()
        });
        row.quantity += q;
        row.controlled_quantity += cq;
        // A fill with two lines in one group is still one fill.
        if counted.insert((key, l.tx)) {
            row.fills += 1;
        }
        totals.quantity += q;
        totals.controlled_quantity += cq;
        if txs.insert(l.tx) {
            totals.fills += 1;
        }
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    if group_by != GroupBy::Day {
        rows.sort_by(|a, b| {
            b.quantity
                .cmp(&a.quantity)
                .then_with(|| a.label.cmp(&b.label))
        });
    }
    Ok(Dispensing {
        from: range.from(),
        to: range.to(),
        group_by,
        rows,
        totals,
    })
}

// ---- controlled ----------------------------------------------------------

/// Controlled-drug volume of one drug at one pharmacy.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct ControlledRow {
    /// ATC code.
    pub atc: String,
    /// Drug name.
    pub drug: String,
    /// Pharmacy id.
    pub pharmacy: OrgId,
    /// Pharmacy name.
    pub pharmacy_name: String,
    /// Dispense transactions.
    pub fills: u64,
    /// Units dispensed.
    pub quantity: u64,
    /// Unit of the quantity.
    pub unit: String,
}

/// The controlled-drug report.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct Controlled {
    /// First day.
    pub from: Day,
    /// Last day, inclusive.
    pub to: Day,
    /// By drug, then pharmacy.
    pub rows: Vec<ControlledRow>,
    /// Units over all rows.
    pub total_quantity: u64,
}

/// Controlled-drug volumes in the range, by drug and pharmacy.
pub fn controlled(chain: &ChainStore, range: DayRange) -> Result<Controlled, QueryError> {
    let names = Names::new(chain);
    let mut rows: BTreeMap<(String, OrgId), ControlledRow> = BTreeMap::new();
    let mut counted = HashSet::new();
    let mut total = 0;
    for l in fills(chain, range)?
        .into_iter()
        .filter(|l| l.item.controlled)
    {
        let key = (l.item.atc.to_string(), l.pharmacy.clone());
        let row = rows.entry(key.clone()).or_insert_with(|| ControlledRow {
            atc: l.item.atc.to_string(),
            drug: l.item.name.to_string(),
            pharmacy: l.pharmacy.clone(),
            pharmacy_name: names.org(&l.pharmacy),
            fills: 0,
            quantity: 0,
            unit: l.item.unit.to_string(),
        });
        row.quantity += u64::from(l.quantity);
        total += u64::from(l.quantity);
        if counted.insert((key, l.tx)) {
            row.fills += 1;
        }
    }
    Ok(Controlled {
        from: range.from(),
        to: range.to(),
        rows: rows.into_values().collect(),
        total_quantity: total,
    })
}

// ---- refusals ------------------------------------------------------------

/// One refused attempt, as the chain recorded it.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// Block time.
    pub at: Timestamp,
    /// Block height.
    pub height: u64,
    /// The refused transaction.
    pub tx_id: TxId,
    /// Its kind, e.g. `dispense`.
    pub kind: &'static str,
    /// The refusal's code, e.g. `already_dispensed`.
    pub code: &'static str,
    /// The refusal for people.
    pub message: String,
    /// The refusal with its details (times, organisations), for pages
    /// that write the sentence in their own language.
    pub detail: rxchain_contracts::Rejection,
    /// The prescription it was about.
    pub prescription: Option<PrescriptionId>,
    /// That prescription's record, when the chain holds it: it tells
    /// whether the signer was the patient.
    pub record: Option<PrescriptionRecord>,
    /// Who signed.
    pub signer: PublicKey,
}

/// The `limit` most recent refused transactions, newest first.
pub fn refusals(chain: &ChainStore, limit: usize) -> Result<Vec<Refusal>, QueryError> {
    let chain_id = chain.genesis().chain_id.as_str();
    let mut out = Vec::new();
    let mut block: Option<Block> = None;
    for (height, index) in chain.refused(limit)? {
        if block.as_ref().map(|b| b.header.height) != Some(height) {
            block = chain.block(height)?;
        }
        let Some(b) = &block else {
            return Err(QueryError::MissingBlock {
                index: "refusal",
                height,
            });
        };
        let (Some(t), Some(Outcome::Refused { reason })) =
            (b.txs.get(index as usize), b.outcomes.get(index as usize))
        else {
            return Err(QueryError::NotRefused {
                height,
                position: index,
            });
        };
        let prescription = t.tx.body.prescription();
        let record = match &prescription {
            Some(id) => chain.prescription(id)?,
            None => None,
        };
        out.push(Refusal {
            at: b.header.timestamp,
            height,
            tx_id: t.tx.id(chain_id),
            kind: t.tx.body.kind(),
            code: reason.code(),
            message: reason.to_string(),
            detail: reason.clone(),
            prescription,
            record,
            signer: t.tx.signer,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::testchain;

    fn today() -> DayRange {
        DayRange::new(None, Day::today()).unwrap()
    }

    #[test]
    fn dispensing_groups_the_fills_every_way() {
        let t = testchain::build();
        let chain = &t.storage.chain;
        for group_by in [
            GroupBy::Day,
            GroupBy::Pharmacy,
            GroupBy::Drug,
            GroupBy::Prescriber,
            GroupBy::Hospital,
        ] {
            let rep = dispensing(chain, today(), group_by).unwrap();
            // The refused second dispense counts nowhere.
            assert_eq!(
                (
                    rep.totals.fills,
                    rep.totals.quantity,
                    rep.totals.controlled_quantity
                ),
                (1, 30, 10),
                "{group_by:?}"
            );
        }
        let by_drug = dispensing(chain, today(), GroupBy::Drug).unwrap();
        let keys: Vec<_> = by_drug
            .rows
            .iter()
            .map(|r| (r.key.as_str(), r.label.as_str(), r.quantity, r.fills))
            .collect();
        assert_eq!(
            keys,
            [
                ("J01CA04", "Amoxicillin", 20, 1),
                ("N02AX02", "Tramadol", 10, 1)
            ]
        );
        let by_pharmacy = dispensing(chain, today(), GroupBy::Pharmacy).unwrap();
        assert_eq!(by_pharmacy.rows[0].label, "Central Pharmacy (demo)");
        let by_prescriber = dispensing(chain, today(), GroupBy::Prescriber).unwrap();
        assert_eq!(by_prescriber.rows[0].label, "Dr Ada Example");
        let by_day = dispensing(chain, today(), GroupBy::Day).unwrap();
        let block = chain.block(4).unwrap().unwrap();
        let day = Day::of(block.header.timestamp).unwrap();
        assert_eq!(by_day.rows[0].key, day.to_string());
    }

    #[test]
    fn a_range_without_fills_is_empty() {
        let t = testchain::build();
        let long_ago = Day::parse("2001-01-01").unwrap();
        let rep = dispensing(
            &t.storage.chain,
            DayRange::new(None, long_ago).unwrap(),
            GroupBy::Day,
        )
        .unwrap();
        assert!(rep.rows.is_empty());
        assert_eq!(rep.totals.fills, 0);
    }

    #[test]
    fn controlled_lists_only_controlled_drugs() {
        let t = testchain::build();
        let rep = controlled(&t.storage.chain, today()).unwrap();
        assert_eq!(rep.total_quantity, 10);
        assert_eq!(rep.rows.len(), 1);
        let r = &rep.rows[0];
        assert_eq!(
            (
                r.atc.as_str(),
                r.pharmacy.as_str(),
                r.pharmacy_name.as_str(),
                r.fills,
                r.unit.as_str()
            ),
            (
                "N02AX02",
                "pharm-central",
                "Central Pharmacy (demo)",
                1,
                "capsules"
            )
        );
    }

    #[test]
    fn refusals_name_the_refused_dispense() {
        let t = testchain::build();
        let list = refusals(&t.storage.chain, 10).unwrap();
        assert_eq!(list.len(), 1);
        let r = &list[0];
        assert_eq!(
            (r.kind, r.code, r.height),
            ("dispense", "already_dispensed", 4)
        );
        assert_eq!(r.prescription, Some(t.rx));
        assert!(r.record.is_some());
        assert_eq!(r.signer, crate::demo::staff_key("ph.cara").public());
    }
}
