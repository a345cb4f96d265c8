//! The demo formulary in `fixtures/formulary.json` is well-formed: every
//! entry would pass the chain's own value rules, so the prescription form
//! never offers a drug that the contracts would refuse.

use std::collections::HashSet;

use rxchain_contracts::model::{AtcCode, Label, Quantity};
use serde::Deserialize;

/// The file: a note saying the data is synthetic, beside the list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    note: String,
    drugs: Vec<Entry>,
}

/// One drug, as the staff API serves it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    atc: String,
    name: String,
    strength: String,
    form: String,
    unit: String,
    pack: u32,
    controlled: bool,
    /// The schedule of a controlled drug; the demo genesis's controlled
    /// list is built from it.
    #[serde(default)]
    schedule: Option<String>,
}

fn load() -> File {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/formulary.json"
    ))
    .expect("fixtures/formulary.json is readable");
    serde_json::from_str(&text).expect("fixtures/formulary.json parses")
}

/// The seven-character ATC shape, checked here independently of the
/// contracts' parser: letter, two digits, two letters, two digits.
fn is_atc(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 7
        && b[0].is_ascii_uppercase()
        && b[1..3].iter().all(u8::is_ascii_digit)
        && b[3..5].iter().all(u8::is_ascii_uppercase)
        && b[5..7].iter().all(u8::is_ascii_digit)
}

#[test]
fn formulary_is_marked_synthetic() {
    let file = load();
    assert!(
        file.note.to_lowercase().contains("synthetic"),
        "note: {}",
        file.note
    );
    assert!(
        file.note.to_lowercase().contains("demo"),
        "note: {}",
        file.note
    );
}

#[test]
fn every_entry_passes_the_chain_value_rules() {
    for e in load().drugs {
        assert!(is_atc(&e.atc), "{}: bad ATC code {:?}", e.name, e.atc);
        AtcCode::parse(e.atc.as_str()).unwrap_or_else(|err| panic!("{}: {err}", e.name));
        for (field, value) in [
            ("name", &e.name),
            ("strength", &e.strength),
            ("form", &e.form),
            ("unit", &e.unit),
        ] {
            Label::parse(value.as_str()).unwrap_or_else(|err| panic!("{}: {field}: {err}", e.name));
        }
        Quantity::new(e.pack).unwrap_or_else(|err| panic!("{}: pack: {err}", e.name));
        assert_eq!(
            e.schedule.is_some(),
            e.controlled,
            "{}: a schedule exactly when controlled",
            e.name
        );
        if let Some(s) = &e.schedule {
            Label::parse(s.as_str()).unwrap_or_else(|err| panic!("{}: schedule: {err}", e.name));
        }
    }
}

#[test]
fn names_and_codes_are_unique() {
    let drugs = load().drugs;
    let mut names = HashSet::new();
    let mut codes = HashSet::new();
    for e in &drugs {
        assert!(
            names.insert(e.name.to_lowercase()),
            "duplicate name {}",
            e.name
        );
        assert!(codes.insert(e.atc.as_str()), "duplicate ATC code {}", e.atc);
    }
}

#[test]
fn formulary_is_large_enough_for_the_demo() {
    let drugs = load().drugs;
    assert!(drugs.len() >= 90, "only {} entries", drugs.len());
    let controlled = drugs.iter().filter(|e| e.controlled).count();
    assert!(controlled >= 8, "only {controlled} controlled drugs");
}

#[test]
fn known_drugs_carry_their_real_codes() {
    // Spot checks against the WHO ATC index, so a shifted column or a
    // made-up code is caught.
    let drugs = load().drugs;
    let expect = [
        ("Paracetamol", "N02BE01", false),
        ("Amoxicillin", "J01CA04", false),
        ("Metformin", "A10BA02", false),
        ("Atorvastatin", "C10AA05", false),
        ("Morphine", "N02AA01", true),
        ("Oxycodone", "N02AA05", true),
        ("Methylphenidate", "N06BA04", true),
        ("Diazepam", "N05BA01", true),
    ];
    for (name, atc, controlled) in expect {
        let e = drugs
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} is missing"));
        assert_eq!((e.atc.as_str(), e.controlled), (atc, controlled), "{name}");
    }
}
