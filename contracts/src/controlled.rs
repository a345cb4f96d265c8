//! The controlled-drug list is chain data, not a client's say-so.
//!
//! Genesis declares the controlled drugs the chain starts with
//! ([`crate::genesis::Params::controlled`]); a registered regulator officer
//! adds a drug, changes its schedule or takes it off the list with a
//! [`crate::tx::SetControlled`] transaction. The list in force is the last
//! one written to state, or the genesis list while none was
//! ([`ControlledList::current`]).
//!
//! The chain derives everything "controlled" from this list: an issue must
//! flag exactly the listed items as controlled (`controlled_mismatch`
//! otherwise), so the shorter validity and the controlled-drug reports follow
//! the list. Every item carries a syntactically valid ATC code (the
//! [`crate::AtcCode`] type refuses anything else, so there are no free-text
//! medicines on the chain); a code not on the list is not controlled. A
//! change of the list applies to prescriptions issued after it: a record
//! keeps the flags it was issued with.

use serde::{Deserialize, Serialize};

use crate::encoding;
use crate::genesis::Genesis;
use crate::model::{AtcCode, Label};
use crate::state::{controlled_key, CorruptState, StateRead};

/// One controlled drug and its schedule (the jurisdiction's class, e.g.
/// `II`), which reports group by.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ControlledDrug {
    /// The drug's ATC code.
    pub atc: AtcCode,
    /// Its schedule.
    pub schedule: Label,
}

/// The controlled drugs in force, ordered by ATC code, each once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ControlledList(Vec<ControlledDrug>);

impl ControlledList {
    /// The list genesis starts with. Genesis validation refuses a code that
    /// appears twice; should one slip through, the first entry counts.
    pub fn from_genesis(g: &Genesis) -> ControlledList {
        let mut list = ControlledList::default();
        for d in &g.params.controlled {
            if list.schedule(&d.atc).is_none() {
                list.set(d.atc.clone(), Some(d.schedule.clone()));
            }
        }
        list
    }

    /// The list in force: the one stored by the last
    /// [`crate::tx::SetControlled`], or the genesis list before any.
    pub fn current(g: &Genesis, st: &dyn StateRead) -> Result<ControlledList, CorruptState> {
        let key = controlled_key();
        match st.get(&key) {
            None => Ok(ControlledList::from_genesis(g)),
            Some(bytes) => encoding::from_bytes(&bytes).map_err(|source| CorruptState {
                key: hex::encode(&key),
                source,
            }),
        }
    }

    /// The schedule of `atc`, if it is controlled.
    pub fn schedule(&self, atc: &AtcCode) -> Option<&Label> {
        self.0
            .binary_search_by(|d| d.atc.cmp(atc))
            .ok()
            .map(|i| &self.0[i].schedule)
    }

    /// Whether `atc` is controlled.
    pub fn contains(&self, atc: &AtcCode) -> bool {
        self.schedule(atc).is_some()
    }

    /// Every controlled drug, ordered by ATC code.
    pub fn drugs(&self) -> &[ControlledDrug] {
        &self.0
    }

    /// Puts `atc` on the list with `schedule`, or takes it off with `None`.
    /// Returns whether the list changed.
    pub(crate) fn set(&mut self, atc: AtcCode, schedule: Option<Label>) -> bool {
        match (self.0.binary_search_by(|d| d.atc.cmp(&atc)), schedule) {
            (Ok(i), Some(s)) if self.0[i].schedule == s => false,
            (Ok(i), Some(s)) => {
                self.0[i].schedule = s;
                true
            }
            (Ok(i), None) => {
                self.0.remove(i);
                true
            }
            (Err(i), Some(schedule)) => {
                self.0.insert(i, ControlledDrug { atc, schedule });
                true
            }
            (Err(_), None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atc(s: &str) -> AtcCode {
        AtcCode::parse(s).unwrap()
    }

    #[test]
    fn the_list_stays_ordered_and_reports_changes() {
        let mut l = ControlledList::default();
        let ii = Label::parse("II").unwrap();
        let iv = Label::parse("IV").unwrap();
        assert!(l.set(atc("N05BA01"), Some(iv.clone())));
        assert!(l.set(atc("N02AA01"), Some(ii.clone())));
        assert!(
            !l.set(atc("N02AA01"), Some(ii.clone())),
            "the same schedule is no change"
        );
        assert_eq!(
            l.drugs().iter().map(|d| d.atc.as_str()).collect::<Vec<_>>(),
            ["N02AA01", "N05BA01"]
        );
        assert!(l.set(atc("N02AA01"), Some(iv.clone())));
        assert_eq!(l.schedule(&atc("N02AA01")), Some(&iv));
        assert!(l.set(atc("N02AA01"), None));
        assert!(!l.contains(&atc("N02AA01")));
        assert!(
            !l.set(atc("N02AA01"), None),
            "removing an unlisted code is no change"
        );
        assert!(l.contains(&atc("N05BA01")));
    }
}
