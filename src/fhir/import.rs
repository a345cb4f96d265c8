//! A FHIR R4 MedicationRequest from a hospital system, read into the parts
//! of our issue transaction, or refused with the exact element at fault.
//!
//! Every element we read is declared with `deny_unknown_fields`, so an
//! element we would silently drop is refused instead, and
//! `serde_path_to_error` names where it sits as a FHIRPath
//! (`MedicationRequest.dosageInstruction[0].timing`). Elements that carry
//! nothing the prescription needs and that we set ourselves (`meta`,
//! `text`, `identifier`, `category`, `encounter`, `authoredOn`, `requester`:
//! the chain records the signer and the block time) are accepted and
//! ignored; `docs/fhir.md` lists them.

use rxchain_contracts::privacy::PatientDetails;
use rxchain_contracts::tx::Item;
use rxchain_contracts::{AtcCode, Label, Quantity, Timestamp};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use serde_json::Value;

use super::export::{self, ATC};
use super::time;

/// Why a MedicationRequest cannot become a prescription, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{expression}: {message}")]
pub struct ImportError {
    /// Our stable code, e.g. `unknown_atc`.
    pub code: &'static str,
    /// The FHIRPath of the element at fault.
    pub expression: String,
    /// A sentence for people.
    pub message: String,
}

fn err(
    code: &'static str,
    expression: impl Into<String>,
    message: impl Into<String>,
) -> ImportError {
    ImportError {
        code,
        expression: expression.into(),
        message: message.into(),
    }
}

/// What the formulary and the chain's controlled list say about a code.
#[derive(Clone, Debug)]
pub struct Drug {
    /// Name.
    pub name: String,
    /// Strength.
    pub strength: String,
    /// Dose form.
    pub form: String,
    /// Unit of quantities.
    pub unit: String,
    /// On the chain's controlled list.
    pub controlled: bool,
}

/// The parts of an issue a MedicationRequest carries.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The one item.
    pub item: Item,
    /// Its dosage text.
    pub dosage: String,
    /// Repeats after the first fill.
    pub repeats: u8,
    /// Start of validity, when given.
    pub valid_from: Option<Timestamp>,
    /// End of validity, when given.
    pub valid_until: Option<Timestamp>,
    /// The patient.
    pub patient: PatientDetails,
    /// Notes, joined by new lines.
    pub notes: String,
    /// The hospital system's own identifiers of the order
    /// (`MedicationRequest.identifier`) that name their system, as
    /// (system, value); one without a system identifies nothing outside
    /// its sender and is not kept.
    pub identifiers: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InRequest {
    resource_type: String,
    #[serde(default)]
    id: Option<IgnoredAny>,
    #[serde(default)]
    meta: Option<IgnoredAny>,
    #[serde(default)]
    text: Option<IgnoredAny>,
    #[serde(default)]
    identifier: Vec<InIdentifier>,
    status: String,
    intent: String,
    #[serde(default)]
    category: Option<IgnoredAny>,
    #[serde(default)]
    contained: Vec<Value>,
    #[serde(default)]
    medication_codeable_concept: Option<InConcept>,
    #[serde(default)]
    medication_reference: Option<InRef>,
    subject: InRef,
    #[serde(default)]
    encounter: Option<IgnoredAny>,
    #[serde(default)]
    authored_on: Option<IgnoredAny>,
    #[serde(default)]
    requester: Option<IgnoredAny>,
    #[serde(default)]
    dosage_instruction: Vec<Value>,
    #[serde(default)]
    dispense_request: Option<InDispense>,
    #[serde(default)]
    note: Vec<InNote>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InConcept {
    #[serde(default)]
    coding: Vec<InCoding>,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InCoding {
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    display: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InRef {
    #[serde(default)]
    reference: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    identifier: Option<IgnoredAny>,
    #[serde(default)]
    display: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InDosage {
    #[serde(default)]
    sequence: Option<IgnoredAny>,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InDispense {
    #[serde(default)]
    validity_period: Option<InPeriod>,
    #[serde(default)]
    number_of_repeats_allowed: Option<u8>,
    #[serde(default)]
    quantity: Option<InQuantity>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InPeriod {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InQuantity {
    value: f64,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    system: Option<IgnoredAny>,
    #[serde(default)]
    code: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InNote {
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InPatient {
    resource_type: String,
    id: String,
    #[serde(default)]
    meta: Option<IgnoredAny>,
    #[serde(default)]
    active: Option<IgnoredAny>,
    #[serde(default)]
    identifier: Vec<InIdentifier>,
    #[serde(default)]
    name: Vec<InName>,
    #[serde(default)]
    telecom: Vec<InTelecom>,
    #[serde(default)]
    gender: Option<IgnoredAny>,
    #[serde(default)]
    birth_date: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InIdentifier {
    #[serde(default, rename = "use")]
    usage: Option<IgnoredAny>,
    #[serde(default, rename = "type")]
    kind: Option<IgnoredAny>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InName {
    #[serde(default, rename = "use")]
    usage: Option<IgnoredAny>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    family: Option<String>,
    #[serde(default)]
    given: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InTelecom {
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InMedication {
    resource_type: String,
    id: String,
    #[serde(default)]
    meta: Option<IgnoredAny>,
    #[serde(default)]
    code: Option<InConcept>,
}

/// Reads `value` as `T`, naming the element of a failure under `base`.
fn read<T: DeserializeOwned>(value: Value, base: &str, dosage: bool) -> Result<T, ImportError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let mut at = if path == "." {
            base.to_string()
        } else {
            format!("{base}.{path}")
        };
        let field = |prefix: &str| {
            inner
                .strip_prefix(prefix)
                .and_then(|r| r.split('`').next())
                .map(str::to_owned)
        };
        if let Some(f) = field("unknown field `") {
            if !at.ends_with(&format!(".{f}")) {
                at = format!("{at}.{f}");
            }
            let code = if dosage {
                "unrepresentable_dosage"
            } else {
                "unsupported_element"
            };
            let what = if dosage {
                "we carry a dosage as its text only"
            } else {
                "this element cannot be carried by an rxchain prescription"
            };
            return err(code, at, format!("{what}: {f} is not supported"));
        }
        if let Some(f) = field("missing field `") {
            return err(
                "missing_element",
                format!("{at}.{f}"),
                format!("{f} is required"),
            );
        }
        err("invalid_element", at, inner)
    })
}

/// Maps a MedicationRequest to the parts of an issue: one item found by
/// its ATC code through `drug`, the dosage text, repeats, validity (the
/// chain's default when absent, except for a controlled drug), and the
/// contained Patient.
pub fn medication_request(
    body: Value,
    drug: &dyn Fn(&AtcCode) -> Option<Drug>,
) -> Result<Imported, ImportError> {
    const MR: &str = "MedicationRequest";
    if !body.is_object() {
        return err_r("invalid_element", MR, "the body must be a JSON object");
    }
    let mut r: InRequest = read(body, MR, false)?;
    let _ = (&r.id, &r.meta, &r.text, &r.category);
    let _ = (&r.encounter, &r.authored_on, &r.requester);
    if r.resource_type != MR {
        return err_r(
            "unsupported_resource",
            format!("{MR}.resourceType"),
            format!("send a MedicationRequest, not a {}", r.resource_type),
        );
    }
    if r.status != "active" {
        return err_r(
            "unsupported_value",
            format!("{MR}.status"),
            format!(
                "only an active order can be issued, not status {:?}",
                r.status
            ),
        );
    }
    if r.intent != "order" {
        return err_r(
            "unsupported_value",
            format!("{MR}.intent"),
            format!("only intent order can be issued, not {:?}", r.intent),
        );
    }
    // The drug.
    let (concept, concept_at) = match (
        r.medication_codeable_concept.take(),
        &r.medication_reference,
    ) {
        (Some(c), None) => (c, format!("{MR}.medicationCodeableConcept")),
        (None, Some(m)) => {
            let (i, v) = contained(
                &r.contained,
                &m.reference,
                &format!("{MR}.medicationReference"),
            )?;
            let at = format!("{MR}.contained[{i}]");
            let med: InMedication = read(v, &at, false)?;
            let _ = &med.meta;
            if med.resource_type != "Medication" {
                return err_r(
                    "unresolved_reference",
                    format!("{MR}.medicationReference.reference"),
                    format!("#{} is a {}, not a Medication", med.id, med.resource_type),
                );
            }
            let Some(code) = med.code else {
                return err_r(
                    "missing_element",
                    format!("{at}.code"),
                    "the Medication needs its ATC code",
                );
            };
            (code, format!("{at}.code"))
        }
        (None, None) => {
            return err_r(
                "missing_element",
                format!("{MR}.medication[x]"),
                "name the drug with medicationCodeableConcept or a contained Medication",
            )
        }
        (Some(_), Some(_)) => {
            return err_r(
                "invalid_element",
                format!("{MR}.medication[x]"),
                "send medicationCodeableConcept or medicationReference, not both",
            )
        }
    };
    finish(r, concept, concept_at, drug)
}

fn err_r<T>(
    code: &'static str,
    at: impl Into<String>,
    message: impl Into<String>,
) -> Result<T, ImportError> {
    Err(err(code, at, message))
}

/// The contained resource a local reference (`#id`) names, with its index.
fn contained(
    all: &[Value],
    reference: &Option<String>,
    at: &str,
) -> Result<(usize, Value), ImportError> {
    let Some(local) = reference.as_deref().and_then(|r| r.strip_prefix('#')) else {
        return err_r(
            "unresolved_reference",
            format!("{at}.reference"),
            "only a contained resource (#id) can be carried: this node keeps no patient or medication records",
        );
    };
    all.iter()
        .position(|c| c.get("id").and_then(Value::as_str) == Some(local))
        .map(|i| (i, all[i].clone()))
        .ok_or_else(|| {
            err(
                "unresolved_reference",
                format!("{at}.reference"),
                format!("no contained resource has id {local:?}"),
            )
        })
}

fn finish(
    r: InRequest,
    concept: InConcept,
    concept_at: String,
    drug: &dyn Fn(&AtcCode) -> Option<Drug>,
) -> Result<Imported, ImportError> {
    const MR: &str = "MedicationRequest";
    let _ = &concept.text;
    let mut identifiers = Vec::new();
    for (n, i) in r.identifier.iter().enumerate() {
        let _ = (&i.usage, &i.kind);
        let at = format!("{MR}.identifier[{n}]");
        let Some(value) = i.value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
            return err_r(
                "missing_element",
                format!("{at}.value"),
                "an identifier needs a value",
            );
        };
        let system = i.system.as_deref().map_or("", str::trim);
        if value.chars().count() > 200 || system.chars().count() > 200 {
            return err_r(
                "invalid_element",
                at,
                "an identifier's system and value have at most 200 characters each",
            );
        }
        if !system.is_empty() {
            identifiers.push((system.to_string(), value.to_string()));
        }
    }

    // The ATC coding; other systems are not ours to translate.
    if concept.coding.is_empty() {
        return err_r(
            "missing_element",
            format!("{concept_at}.coding"),
            format!("code the drug in the ATC system {ATC}"),
        );
    }
    let Some(i) = concept
        .coding
        .iter()
        .position(|c| c.system.as_deref() == Some(ATC))
    else {
        return err_r(
            "foreign_code_system",
            format!("{concept_at}.coding[0].system"),
            format!(
                "the drug is coded in {:?}; only ATC ({ATC}) is understood",
                concept.coding[0].system.as_deref().unwrap_or("no system")
            ),
        );
    };
    let coding = &concept.coding[i];
    let _ = &coding.display;
    let code_at = format!("{concept_at}.coding[{i}].code");
    let Some(code) = coding.code.as_deref() else {
        return err_r("missing_element", code_at, "the ATC coding has no code");
    };
    let unknown = || {
        err(
            "unknown_atc",
            code_at.clone(),
            format!("{code:?} is not an ATC code in this consortium's formulary"),
        )
    };
    let atc = AtcCode::parse(code).map_err(|_| unknown())?;
    let d = drug(&atc).ok_or_else(unknown)?;

    // Dosage: exactly one instruction, as text.
    let dosage = match r.dosage_instruction.len() {
        0 => {
            return err_r(
                "missing_element",
                format!("{MR}.dosageInstruction"),
                "a dosage instruction with text is required",
            )
        }
        1 => {
            let at = format!("{MR}.dosageInstruction[0]");
            let dose: InDosage = read(r.dosage_instruction[0].clone(), &at, true)?;
            let _ = &dose.sequence;
            match dose
                .text
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
            {
                Some(t) => t,
                None => {
                    return err_r(
                        "unrepresentable_dosage",
                        format!("{at}.text"),
                        "we carry a dosage as its text: send dosageInstruction.text",
                    )
                }
            }
        }
        _ => {
            return err_r(
                "unrepresentable_dosage",
                format!("{MR}.dosageInstruction[1]"),
                "one dosage instruction per item can be carried; put sequences into one text",
            )
        }
    };

    // Dispense request: quantity, repeats, validity.
    let dr_at = format!("{MR}.dispenseRequest");
    let Some(dr) = r.dispense_request else {
        return err_r(
            "missing_element",
            dr_at,
            "dispenseRequest with a quantity is required",
        );
    };
    let Some(q) = dr.quantity else {
        return err_r(
            "missing_element",
            format!("{dr_at}.quantity"),
            "the quantity per fill is required",
        );
    };
    let _ = (&q.system, &q.code);
    let qv = q.value;
    if qv.fract() != 0.0 || qv < 1.0 || qv > f64::from(u32::MAX) {
        return err_r(
            "invalid_element",
            format!("{dr_at}.quantity.value"),
            format!("a quantity is a whole number of units of at least 1, not {qv}"),
        );
    }
    // Checked above: a whole number within u32.
    let quantity = Quantity::new(qv as u32).map_err(|e| {
        err(
            "invalid_element",
            format!("{dr_at}.quantity.value"),
            e.to_string(),
        )
    })?;
    let unit = q.unit.unwrap_or_else(|| d.unit.clone());
    let (valid_from, valid_until) = match &dr.validity_period {
        None => (None, None),
        Some(p) => {
            let at = |f: &str| format!("{dr_at}.validityPeriod.{f}");
            let parse = |s: &Option<String>, f: &str| {
                s.as_deref()
                    .map(time::parse)
                    .transpose()
                    .map_err(|e| err("invalid_element", at(f), e.to_string()))
            };
            (parse(&p.start, "start")?, parse(&p.end, "end")?)
        }
    };
    if d.controlled && valid_until.is_none() {
        return err_r(
            "missing_validity",
            format!("{dr_at}.validityPeriod.end"),
            format!(
                "{} is a controlled drug: its validity period must end explicitly",
                d.name
            ),
        );
    }
    let label = |s: &str, at: String| {
        Label::parse(s.to_string()).map_err(|e| err("invalid_element", at, e.to_string()))
    };
    let item = Item {
        atc,
        name: label(&d.name, code_at.clone())?,
        strength: label(&d.strength, code_at.clone())?,
        form: label(&d.form, code_at.clone())?,
        quantity,
        unit: label(&unit, format!("{dr_at}.quantity.unit"))?,
        controlled: d.controlled,
    };

    // The patient, contained.
    let (pi, pv) = contained(&r.contained, &r.subject.reference, &format!("{MR}.subject"))?;
    let _ = (&r.subject.kind, &r.subject.identifier, &r.subject.display);
    let pat_at = format!("{MR}.contained[{pi}]");
    let p: InPatient = read(pv, &pat_at, false)?;
    let _ = (&p.meta, &p.active, &p.gender);
    if p.resource_type != "Patient" {
        return err_r(
            "unresolved_reference",
            format!("{MR}.subject.reference"),
            format!("#{} is a {}, not a Patient", p.id, p.resource_type),
        );
    }
    let name = p.name.first().and_then(|n| {
        let _ = &n.usage;
        n.text.clone().filter(|t| !t.trim().is_empty()).or_else(|| {
            let mut parts = n.given.clone();
            parts.extend(n.family.clone());
            let whole = parts.join(" ");
            (!whole.trim().is_empty()).then_some(whole)
        })
    });
    let Some(name) = name else {
        return err_r(
            "missing_element",
            format!("{pat_at}.name"),
            "the patient's name is required",
        );
    };
    let identifier = p.identifier.iter().enumerate().find_map(|(n, i)| {
        let _ = (&i.usage, &i.kind);
        i.value.as_ref().map(|v| (n, i.system.as_deref(), v.trim()))
    });
    let identifier = match identifier {
        Some((n, _, v)) if v.contains('|') => {
            return err_r(
                "invalid_element",
                format!("{pat_at}.identifier[{n}].value"),
                "an identifier value may not contain '|'",
            )
        }
        // The system is kept with the value as a FHIR token,
        // `system|value`, so that the export gives both back.
        Some((_, Some(system), v))
            if !system.trim().is_empty() && system != export::SYS_PATIENT_ID =>
        {
            Some(format!("{}|{v}", system.trim()))
        }
        Some((_, _, v)) => Some(v.to_string()),
        None => None,
    };
    let Some(identifier) = identifier else {
        return err_r(
            "missing_element",
            format!("{pat_at}.identifier"),
            "the patient's health-service or insurance number is required",
        );
    };
    let Some(birth_date) = p.birth_date else {
        return err_r(
            "missing_element",
            format!("{pat_at}.birthDate"),
            "the patient's birth date is required",
        );
    };
    let email = p.telecom.iter().find_map(|t| {
        let _ = &t.usage;
        (t.system.as_deref() == Some("email"))
            .then(|| t.value.clone())
            .flatten()
    });
    let notes = r
        .note
        .iter()
        .map(|n| n.text.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Imported {
        item,
        dosage,
        repeats: dr.number_of_repeats_allowed.unwrap_or(0),
        valid_from,
        valid_until,
        patient: PatientDetails {
            name: name.trim().to_string(),
            birth_date,
            identifier: identifier.trim().to_string(),
            email,
        },
        notes,
        identifiers,
    })
}
