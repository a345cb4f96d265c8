//! Business rules as pure functions, shared by the chain and the node.
//!
//! The chain's [`crate::lifecycle::apply`] calls these where it applies the
//! rule, and the node calls the same functions to check a form before it
//! signs anything, so a rule has exactly one copy. Rules that concern one
//! type live on it instead: [`crate::state::PrescriptionRecord::remaining`],
//! [`crate::state::PublicStatus::is_open`],
//! [`crate::state::PrescriptionRecord::secret_matches`],
//! [`crate::genesis::Genesis::org_of_kind`] and
//! [`crate::genesis::Genesis::is_pharmacy`]. None of them reads a clock:
//! times arrive as arguments.

use crate::controlled::ControlledList;
use crate::genesis::Params;
use crate::model::Timestamp;
use crate::privacy::{PatientDetails, PrivateContent};
use crate::rejection::Rejection;
use crate::tx::{limits, DeliveryEvent, DeliveryStatus, DispenseLine, Item};

/// Whether a prescription with these items counts as controlled: one item
/// whose ATC code is on the chain's controlled list is enough. The items'
/// own flags are not consulted; [`check_controlled_flags`] makes sure they
/// agree.
pub fn is_controlled(list: &ControlledList, items: &[Item]) -> bool {
    items.iter().any(|i| list.contains(&i.atc))
}

/// Refuses items whose controlled flag disagrees with the chain's list: a
/// listed code flagged as not controlled, or an unlisted one flagged as
/// controlled (`controlled_mismatch`, naming the first such item, counted
/// from 0). Codes not on the list are not controlled.
pub fn check_controlled_flags(list: &ControlledList, items: &[Item]) -> Result<(), Rejection> {
    match items
        .iter()
        .enumerate()
        .find(|(_, i)| i.controlled != list.contains(&i.atc))
    {
        None => Ok(()),
        Some((n, i)) => Err(Rejection::ControlledMismatch {
            // At most `limits::MAX_ITEMS` items pass verification.
            item: u16::try_from(n).unwrap_or(u16::MAX),
            atc: i.atc.clone(),
            listed: list.contains(&i.atc),
        }),
    }
}

/// The validity, in days, of a prescription issued without an end date:
/// `controlled_validity_days` (28 by default) when any item is controlled,
/// otherwise `default_validity_days` (90 by default).
pub fn default_validity_days(params: &Params, controlled: bool) -> u32 {
    if controlled {
        params.controlled_validity_days
    } else {
        params.default_validity_days
    }
}

/// The longest validity, in days, a prescriber may choose: the controlled
/// validity (28 by default) is also the maximum for controlled
/// prescriptions; others may run to `max_validity_days` (365 by default).
pub fn max_validity_days(params: &Params, controlled: bool) -> u32 {
    if controlled {
        params.controlled_validity_days
    } else {
        params.max_validity_days
    }
}

/// The end of validity the chain records: the requested end, or the default
/// for the prescription's kind counted from `valid_from`.
pub fn valid_until(
    params: &Params,
    controlled: bool,
    valid_from: Timestamp,
    requested: Option<Timestamp>,
) -> Timestamp {
    requested.unwrap_or(valid_from.plus_days(default_validity_days(params, controlled)))
}

/// Most characters of one dosage instruction.
pub const MAX_DOSAGE_CHARS: usize = 500;
/// Most characters of the patient's name.
pub const MAX_PATIENT_NAME_CHARS: usize = 200;
/// Most characters of the patient's identifier.
pub const MAX_PATIENT_IDENTIFIER_CHARS: usize = 64;
/// Most characters of the patient's e-mail address.
pub const MAX_EMAIL_CHARS: usize = 254;
/// Most characters of the notes for the pharmacist.
pub const MAX_NOTES_CHARS: usize = 2000;
/// Most characters of a delivery address.
pub const MAX_ADDRESS_CHARS: usize = 500;

/// A prescription form as a prescriber fills it in, before it is sealed and
/// signed. Borrowed, so the node can check its request without copying.
#[derive(Clone, Copy, Debug)]
pub struct IssueForm<'a> {
    /// The drugs.
    pub items: &'a [Item],
    /// Dosage instructions, one per item.
    pub dosage: &'a [String],
    /// Repeat fills after the first.
    pub repeats: u8,
    /// Validity in days; `None` takes the default for the kind.
    pub valid_days: Option<u32>,
    /// Who the prescription is for.
    pub patient: &'a PatientDetails,
    /// Notes for the pharmacist.
    pub notes: Option<&'a str>,
}

/// Why a prescription form is refused. [`IssueFormError::code`] is stable;
/// the `Display` text is the sentence shown to the prescriber.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IssueFormError {
    /// No items, or more than [`limits::MAX_ITEMS`].
    #[error("a prescription has 1 to {max} items", max = limits::MAX_ITEMS)]
    Items,
    /// The dosage list does not have one entry per item.
    #[error("give one dosage instruction per item: {items} items, {instructions} instructions")]
    DosageCount {
        /// Items on the form.
        items: usize,
        /// Dosage instructions on the form.
        instructions: usize,
    },
    /// A dosage instruction is blank or too long.
    #[error("the dosage of item {item} must have 1 to {max} characters", max = MAX_DOSAGE_CHARS)]
    Dosage {
        /// The item, counted from 1 as people count.
        item: usize,
    },
    /// More repeats than [`limits::MAX_REPEATS`].
    #[error("at most {max} repeat fills", max = limits::MAX_REPEATS)]
    Repeats,
    /// The chosen validity is zero or longer than allowed.
    #[error("{} is valid for 1 to {max_days} days", kind_phrase(*.controlled))]
    Validity {
        /// Whether any item is controlled (which shortens the limit).
        controlled: bool,
        /// The limit.
        max_days: u32,
    },
    /// The patient's name is blank or too long.
    #[error("the patient's name must have 1 to {max} characters", max = MAX_PATIENT_NAME_CHARS)]
    PatientName,
    /// The date of birth is not an existing `YYYY-MM-DD` date.
    #[error("the patient's date of birth must be a date written YYYY-MM-DD")]
    BirthDate,
    /// The patient's identifier is blank or too long.
    #[error("the patient's identifier must have 1 to {max} characters", max = MAX_PATIENT_IDENTIFIER_CHARS)]
    PatientIdentifier,
    /// The e-mail address does not look like one.
    #[error("the patient's e-mail address is not valid")]
    Email,
    /// The notes are too long.
    #[error("notes have at most {max} characters", max = MAX_NOTES_CHARS)]
    Notes,
    /// An item's controlled flag disagrees with the chain's controlled list.
    #[error("item {item} is {} the controlled-drug list; its controlled flag must say so", if *listed { "on" } else { "not on" })]
    ControlledFlag {
        /// The item, counted from 1 as people count.
        item: usize,
        /// Whether its code is on the list.
        listed: bool,
    },
    /// The patient's details, dosage and notes together would seal to more
    /// than the chain accepts ([`limits::MAX_SEALED`]); possible only with
    /// many characters outside ASCII.
    #[error("the patient's details, dosage and notes are too long together")]
    ContentTooLarge,
}

impl IssueFormError {
    /// The stable machine-readable code: `bad_items`, `bad_dosage`,
    /// `bad_repeats`, `controlled_mismatch`, `bad_validity`, `bad_patient` or
    /// `bad_notes`.
    pub fn code(&self) -> &'static str {
        match self {
            IssueFormError::Items => "bad_items",
            IssueFormError::DosageCount { .. } | IssueFormError::Dosage { .. } => "bad_dosage",
            IssueFormError::Repeats => "bad_repeats",
            IssueFormError::Validity { .. } => "bad_validity",
            IssueFormError::PatientName
            | IssueFormError::BirthDate
            | IssueFormError::PatientIdentifier
            | IssueFormError::Email => "bad_patient",
            IssueFormError::Notes | IssueFormError::ContentTooLarge => "bad_notes",
            IssueFormError::ControlledFlag { .. } => "controlled_mismatch",
        }
    }
}

/// How a validity refusal names the prescription.
fn kind_phrase(controlled: bool) -> &'static str {
    if controlled {
        "a prescription with a controlled drug"
    } else {
        "a prescription"
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Whether `s` is a `YYYY-MM-DD` date that exists, with a year from 1900 to
/// 2999 (a date of birth, so nothing earlier makes sense).
pub fn is_valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: core::ops::Range<usize>| {
        s.get(r)
            .filter(|p| p.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|p| p.parse::<u32>().ok())
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1900..=2999).contains(&y) && (1..=days).contains(&d)
}

/// Checks a prescription form beyond its shape, in a fixed order, and names
/// the first problem. The item and repeat limits are the chain's own
/// ([`limits`]); the validity limit is [`max_validity_days`], which the chain
/// enforces as `validity_too_long`; the controlled flags must agree with the
/// chain's `controlled` list, as the chain requires ([`check_controlled_flags`]).
/// The patient and notes limits guard the sealed content, which the chain
/// cannot read; together they must also seal within [`limits::MAX_SEALED`].
pub fn check_issue_form(
    params: &Params,
    controlled: &ControlledList,
    form: &IssueForm<'_>,
) -> Result<(), IssueFormError> {
    if form.items.is_empty() || form.items.len() > limits::MAX_ITEMS {
        return Err(IssueFormError::Items);
    }
    if form.dosage.len() != form.items.len() {
        return Err(IssueFormError::DosageCount {
            items: form.items.len(),
            instructions: form.dosage.len(),
        });
    }
    if let Some(i) = form
        .dosage
        .iter()
        .position(|d| d.trim().is_empty() || chars(d) > MAX_DOSAGE_CHARS)
    {
        return Err(IssueFormError::Dosage { item: i + 1 });
    }
    if form.repeats > limits::MAX_REPEATS {
        return Err(IssueFormError::Repeats);
    }
    if let Err(Rejection::ControlledMismatch { item, listed, .. }) =
        check_controlled_flags(controlled, form.items)
    {
        return Err(IssueFormError::ControlledFlag {
            item: usize::from(item) + 1,
            listed,
        });
    }
    let controlled = is_controlled(controlled, form.items);
    let max_days = max_validity_days(params, controlled);
    if let Some(d) = form.valid_days {
        if d == 0 || d > max_days {
            return Err(IssueFormError::Validity {
                controlled,
                max_days,
            });
        }
    }
    let p = form.patient;
    if p.name.trim().is_empty() || chars(&p.name) > MAX_PATIENT_NAME_CHARS {
        return Err(IssueFormError::PatientName);
    }
    if !is_valid_date(&p.birth_date) {
        return Err(IssueFormError::BirthDate);
    }
    if p.identifier.trim().is_empty() || chars(&p.identifier) > MAX_PATIENT_IDENTIFIER_CHARS {
        return Err(IssueFormError::PatientIdentifier);
    }
    if let Some(e) = &p.email {
        if chars(e) > MAX_EMAIL_CHARS || !e.contains('@') || e.contains(char::is_whitespace) {
            return Err(IssueFormError::Email);
        }
    }
    if form.notes.is_some_and(|n| chars(n) > MAX_NOTES_CHARS) {
        return Err(IssueFormError::Notes);
    }
    if sealed_content_len(form) > limits::MAX_SEALED {
        return Err(IssueFormError::ContentTooLarge);
    }
    Ok(())
}

/// The size of the form's private content once sealed: its canonical
/// encoding plus the 16-byte AEAD tag.
fn sealed_content_len(form: &IssueForm<'_>) -> usize {
    let content = PrivateContent {
        patient: form.patient.clone(),
        dosage: form.dosage.to_vec(),
        notes: form.notes.unwrap_or_default().to_string(),
    };
    crate::encoding::to_bytes(&content).len() + 16
}

/// Why the lines of a dispense are refused before signing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DispenseLinesError {
    /// No lines, and the dispense does not complete the prescription.
    #[error("a dispense needs at least one line unless it completes the prescription")]
    NoLines,
    /// More lines than [`limits::MAX_LINES`].
    #[error("at most {max} lines per dispense", max = limits::MAX_LINES)]
    TooManyLines,
}

impl DispenseLinesError {
    /// The stable machine-readable code: `no_lines` or `too_many_lines`.
    pub fn code(&self) -> &'static str {
        match self {
            DispenseLinesError::NoLines => "no_lines",
            DispenseLinesError::TooManyLines => "too_many_lines",
        }
    }
}

/// The structural rule of a dispense: at most [`limits::MAX_LINES`] lines,
/// and at least one unless it completes the prescription. The chain checks it
/// when a transaction is verified ([`crate::tx::SignedTx::verify`]); the
/// allowance per item is checked against state by `apply`.
pub fn check_dispense_lines(
    lines: &[DispenseLine],
    complete: bool,
) -> Result<(), DispenseLinesError> {
    if lines.len() > limits::MAX_LINES {
        return Err(DispenseLinesError::TooManyLines);
    }
    if lines.is_empty() && !complete {
        return Err(DispenseLinesError::NoLines);
    }
    Ok(())
}

/// Why a delivery address is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryAddressError {
    /// Home delivery was chosen without an address.
    #[error("home delivery needs the delivery address")]
    Missing,
    /// The address is too long or holds control characters.
    #[error("the address has at most {max} printable characters", max = MAX_ADDRESS_CHARS)]
    Bad,
}

impl DeliveryAddressError {
    /// The stable machine-readable code: `missing_address` or `bad_address`.
    pub fn code(&self) -> &'static str {
        match self {
            DeliveryAddressError::Missing => "missing_address",
            DeliveryAddressError::Bad => "bad_address",
        }
    }
}

/// The address rule of home delivery: one is needed, and once trimmed it has
/// 1 to [`MAX_ADDRESS_CHARS`] characters, none of them control characters
/// except line breaks. Returns the trimmed address, which is what gets
/// sealed. Pickup needs no address. The chain never sees the address in
/// plaintext; it only requires that a delivery carries a sealed address and
/// a hand-over (see [`crate::tx::SignedTx::verify`]).
pub fn check_delivery_address(address: Option<&str>) -> Result<&str, DeliveryAddressError> {
    match address.map(str::trim) {
        None | Some("") => Err(DeliveryAddressError::Missing),
        Some(a)
            if chars(a) > MAX_ADDRESS_CHARS || a.chars().any(|c| c.is_control() && c != '\n') =>
        {
            Err(DeliveryAddressError::Bad)
        }
        Some(a) => Ok(a),
    }
}

/// Why a delivery event's detail is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryDetailError {
    /// A failure or return without its reason.
    #[error("say why the delivery {}", if *status == DeliveryStatus::Failed { "failed" } else { "was returned" })]
    MissingProblem {
        /// `failed` or `returned`.
        status: DeliveryStatus,
    },
    /// A delivery without how it was handed over.
    #[error("say how the parcel was handed over")]
    MissingHandOver,
    /// A reason or hand-over on a status that takes none.
    #[error("a '{}' event takes no reason or hand-over", status.label())]
    Unexpected {
        /// The status.
        status: DeliveryStatus,
    },
}

impl DeliveryDetailError {
    /// The stable machine-readable code: `missing_problem`,
    /// `missing_hand_over` or `unexpected_detail`.
    pub fn code(&self) -> &'static str {
        match self {
            DeliveryDetailError::MissingProblem { .. } => "missing_problem",
            DeliveryDetailError::MissingHandOver => "missing_hand_over",
            DeliveryDetailError::Unexpected { .. } => "unexpected_detail",
        }
    }
}

/// The detail rule of a delivery event: `failed` and `returned` name their
/// problem, `delivered` names how the parcel was handed over (the courier's
/// proof of delivery), and no other status carries either. The chain checks
/// it when a transaction is verified ([`crate::tx::SignedTx::verify`]); that a
/// controlled medicine is handed over in person only is checked against
/// state by `apply`.
pub fn check_delivery_detail(e: &DeliveryEvent) -> Result<(), DeliveryDetailError> {
    let failure = matches!(e.status, DeliveryStatus::Failed | DeliveryStatus::Returned);
    let delivered = e.status == DeliveryStatus::Delivered;
    if failure && e.problem.is_none() {
        return Err(DeliveryDetailError::MissingProblem { status: e.status });
    }
    if delivered && e.hand_over.is_none() {
        return Err(DeliveryDetailError::MissingHandOver);
    }
    if (!failure && e.problem.is_some()) || (!delivered && e.hand_over.is_some()) {
        return Err(DeliveryDetailError::Unexpected { status: e.status });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AtcCode, Label, Quantity};

    /// A controlled item is morphine, which [`list`] controls.
    fn item(controlled: bool) -> Item {
        Item {
            atc: AtcCode::parse(if controlled { "N02AA01" } else { "J01CA04" }).unwrap(),
            name: Label::parse("Amoxicillin").unwrap(),
            strength: Label::parse("500 mg").unwrap(),
            form: Label::parse("capsule").unwrap(),
            quantity: Quantity::new(21).unwrap(),
            unit: Label::parse("capsules").unwrap(),
            controlled,
        }
    }

    /// The controlled list of these tests: morphine only.
    fn list() -> ControlledList {
        let mut l = ControlledList::default();
        l.set(
            AtcCode::parse("N02AA01").unwrap(),
            Some(Label::parse("II").unwrap()),
        );
        l
    }

    fn patient() -> PatientDetails {
        PatientDetails {
            name: "Ana Silva".into(),
            birth_date: "1980-02-29".into(),
            identifier: "123".into(),
            email: Some("ana@example.org".into()),
        }
    }

    fn check(
        items: &[Item],
        dosage: &[String],
        valid_days: Option<u32>,
    ) -> Result<(), IssueFormError> {
        let p = patient();
        check_issue_form(
            &Params::default(),
            &list(),
            &IssueForm {
                items,
                dosage,
                repeats: 0,
                valid_days,
                patient: &p,
                notes: None,
            },
        )
    }

    #[test]
    fn validity_defaults_and_limits_follow_the_kind() {
        let p = Params::default();
        assert_eq!(default_validity_days(&p, true), 28);
        assert_eq!(default_validity_days(&p, false), 90);
        assert_eq!(max_validity_days(&p, true), 28);
        assert_eq!(max_validity_days(&p, false), 365);
        let from = Timestamp(1_000);
        assert_eq!(valid_until(&p, true, from, None), from.plus_days(28));
        assert_eq!(valid_until(&p, false, from, None), from.plus_days(90));
        assert_eq!(
            valid_until(&p, false, from, Some(Timestamp(5))),
            Timestamp(5)
        );
        assert!(is_controlled(&list(), &[item(false), item(true)]));
        assert!(!is_controlled(&list(), &[item(false)]));
        // The list decides, not the flag.
        let mut flagged = item(false);
        flagged.controlled = true;
        assert!(!is_controlled(&list(), &[flagged]));
    }

    #[test]
    fn controlled_flags_must_agree_with_the_chain_list() {
        let mut flagged = item(false);
        flagged.controlled = true;
        let e = check(
            &[item(false), flagged.clone()],
            &["x".into(), "y".into()],
            None,
        )
        .unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                "controlled_mismatch",
                "item 2 is not on the controlled-drug list; its controlled flag must say so"
            )
        );
        let mut unflagged = item(true);
        unflagged.controlled = false;
        assert_eq!(
            check(&[unflagged.clone()], &["x".into()], None),
            Err(IssueFormError::ControlledFlag {
                item: 1,
                listed: true
            })
        );
        // The chain's own check names the item from 0, with its code.
        assert_eq!(
            check_controlled_flags(&list(), &[unflagged]),
            Err(Rejection::ControlledMismatch {
                item: 0,
                atc: AtcCode::parse("N02AA01").unwrap(),
                listed: true
            })
        );
        assert_eq!(
            check_controlled_flags(&list(), &[item(true), item(false)]),
            Ok(())
        );
    }

    #[test]
    fn a_good_form_passes() {
        assert_eq!(
            check(&[item(false)], &["1 daily".into()], Some(365)),
            Ok(())
        );
    }

    #[test]
    fn each_form_problem_has_its_code_and_sentence() {
        let one = [item(false)];
        let e = check(&[], &[], None).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("bad_items", "a prescription has 1 to 10 items")
        );
        let e = check(&one, &[], None).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                "bad_dosage",
                "give one dosage instruction per item: 1 items, 0 instructions"
            )
        );
        let e = check(&one, &["  ".into()], None).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                "bad_dosage",
                "the dosage of item 1 must have 1 to 500 characters"
            )
        );
        let e = check(&one, &["x".repeat(501)], None).unwrap_err();
        assert_eq!(e, IssueFormError::Dosage { item: 1 });
        let e = check(&one, &["x".into()], Some(366)).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("bad_validity", "a prescription is valid for 1 to 365 days")
        );
        let e = check(&[item(true)], &["x".into()], Some(29)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a prescription with a controlled drug is valid for 1 to 28 days"
        );
        assert_eq!(
            check(&one, &["x".into()], Some(0)).unwrap_err().code(),
            "bad_validity"
        );

        let p = patient();
        let form = |patient: &PatientDetails, repeats: u8, notes: Option<&str>| {
            check_issue_form(
                &Params::default(),
                &list(),
                &IssueForm {
                    items: &one,
                    dosage: &["x".into()],
                    repeats,
                    valid_days: None,
                    patient,
                    notes,
                },
            )
        };
        let e = form(&p, 13, None).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("bad_repeats", "at most 12 repeat fills")
        );
        assert_eq!(form(&p, 12, None), Ok(()));
        let e = form(&p, 0, Some(&"n".repeat(2001))).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("bad_notes", "notes have at most 2000 characters")
        );
        assert_eq!(form(&p, 0, Some(&"n".repeat(2000))), Ok(()));

        let with = |f: &dyn Fn(&mut PatientDetails)| {
            let mut q = patient();
            f(&mut q);
            form(&q, 0, None)
        };
        let e = with(&|q| q.name = " ".into()).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                "bad_patient",
                "the patient's name must have 1 to 200 characters"
            )
        );
        let e = with(&|q| q.birth_date = "1981-02-29".into()).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                "bad_patient",
                "the patient's date of birth must be a date written YYYY-MM-DD"
            )
        );
        let e = with(&|q| q.identifier = "i".repeat(65)).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                "bad_patient",
                "the patient's identifier must have 1 to 64 characters"
            )
        );
        let e = with(&|q| q.email = Some("ana at example".into())).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("bad_patient", "the patient's e-mail address is not valid")
        );
        assert_eq!(with(&|q| q.email = None), Ok(()));
    }

    #[test]
    fn dates_must_exist() {
        for good in [
            "1900-01-01",
            "1990-02-28",
            "2000-02-29",
            "2024-12-31",
            "2999-06-30",
        ] {
            assert!(is_valid_date(good), "{good}");
        }
        for bad in [
            "1899-12-31",
            "1900-02-29",
            "2023-02-29",
            "2024-04-31",
            "2024-13-01",
            "1990-13-01",
            "19a0-01-01",
            "2024-00-10",
            "2024-01-00",
            "2024-1-01",
            "24-01-01",
            "2024/01/01",
            "+024-01-01",
            "2024-01-1a",
            "",
        ] {
            assert!(!is_valid_date(bad), "{bad}");
        }
    }

    #[test]
    fn dispense_lines_are_bounded_and_present_unless_completing() {
        let line = DispenseLine {
            item: 0,
            quantity: Quantity::new(1).unwrap(),
            batch: Label::parse("B1").unwrap(),
        };
        assert_eq!(
            check_dispense_lines(std::slice::from_ref(&line), false),
            Ok(())
        );
        assert_eq!(check_dispense_lines(&[], true), Ok(()));
        let e = check_dispense_lines(&[], false).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                "no_lines",
                "a dispense needs at least one line unless it completes the prescription"
            )
        );
        let many = vec![line; limits::MAX_LINES + 1];
        let e = check_dispense_lines(&many, true).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("too_many_lines", "at most 10 lines per dispense")
        );
        assert_eq!(
            check_dispense_lines(&many[..limits::MAX_LINES], false),
            Ok(())
        );
    }

    #[test]
    fn a_delivery_address_is_needed_printable_and_bounded() {
        assert_eq!(
            check_delivery_address(Some("  1 Main St\nTown ")),
            Ok("1 Main St\nTown")
        );
        let e = check_delivery_address(None).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                "missing_address",
                "home delivery needs the delivery address"
            )
        );
        assert_eq!(
            check_delivery_address(Some("   ")),
            Err(DeliveryAddressError::Missing)
        );
        let e = check_delivery_address(Some("a\tb")).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                "bad_address",
                "the address has at most 500 printable characters"
            )
        );
        assert_eq!(
            check_delivery_address(Some(&"é".repeat(500))).map(str::len),
            Ok(1000)
        );
        assert_eq!(
            check_delivery_address(Some(&"a".repeat(501))),
            Err(DeliveryAddressError::Bad)
        );
    }
}
