//! Synthetic issue transactions for the tests that run `rxchain node`
//! processes and load them with prescriptions.

use rxchain::txbuild::IssueInput;
use rxchain_contracts::privacy::{PatientDetails, PrivateContent};
use rxchain_contracts::tx::Item;
use rxchain_contracts::{AtcCode, Label, OrgId, Quantity};

/// One line of Atorvastatin 20 mg tablets, `quantity` of them; not controlled.
pub fn atorvastatin(quantity: u32) -> Item {
    Item {
        atc: AtcCode::parse("C10AA05").unwrap(),
        name: Label::parse("Atorvastatin").unwrap(),
        strength: Label::parse("20 mg").unwrap(),
        form: Label::parse("tablet").unwrap(),
        quantity: Quantity::new(quantity).unwrap(),
        unit: Label::parse("tablets").unwrap(),
        controlled: false,
    }
}

/// A synthetic patient with no e-mail address.
pub struct SyntheticPatient {
    /// The patient's name.
    pub name: String,
    /// Birth date, `YYYY-MM-DD`.
    pub birth_date: &'static str,
    /// The synthetic identifier.
    pub identifier: String,
}

/// An issue from `hospital` of [`atorvastatin`]`(quantity)` with `repeats`
/// repeat fills, the default validity, one dosage line and no notes.
pub fn atorvastatin_issue(
    hospital: &str,
    quantity: u32,
    repeats: u8,
    patient: SyntheticPatient,
    dosage: &str,
) -> IssueInput {
    IssueInput {
        hospital: OrgId::parse(hospital).unwrap(),
        items: vec![atorvastatin(quantity)],
        repeats,
        valid_from: None,
        valid_until: None,
        content: PrivateContent {
            patient: PatientDetails {
                name: patient.name,
                birth_date: patient.birth_date.into(),
                identifier: patient.identifier,
                email: None,
            },
            dosage: vec![dosage.into()],
            notes: String::new(),
        },
    }
}
