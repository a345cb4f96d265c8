//! Our records as FHIR R4 resources: prescriptions as MedicationRequest
//! (one per item), fills as MedicationDispense (one per dispensed line),
//! transactions as Provenance, errors as OperationOutcome.
//!
//! The mapping is pure: the HTTP layer reads the chain, decides what the
//! caller may see (the patient's identity and the sealed text only for the
//! issuing hospital and the regulator) and hands the opened content in,
//! or none. `docs/fhir.md` is the table of this mapping.

use rxchain_contracts::privacy::PrivateContent;
use rxchain_contracts::state::{PrescriptionRecord, PublicStatus};
use rxchain_contracts::tx::{DeliveryStatus, Fulfilment, Item};
use rxchain_contracts::{PrescriptionId, Timestamp};
use sha3::{Digest, Sha3_256};

use super::resources::*;
use super::time::instant;

/// The WHO ATC code system.
pub const ATC: &str = "http://www.whocc.no/atc";
/// Our prescription ids.
pub const SYS_PRESCRIPTION: &str = "urn:rxchain:prescription";
/// A prescription's item, `<id>/<n>`.
pub const SYS_ITEM: &str = "urn:rxchain:prescription-item";
/// Staff keys (hex).
pub const SYS_STAFF: &str = "urn:rxchain:staff-key";
/// A prescription's access key (hex), the patient's signing key.
pub const SYS_ACCESS_KEY: &str = "urn:rxchain:access-key";
/// Consortium organisation ids.
pub const SYS_ORG: &str = "urn:rxchain:org";
/// Consortium node ids.
pub const SYS_NODE: &str = "urn:rxchain:node";
/// Transaction ids.
pub const SYS_TX: &str = "urn:rxchain:tx";
/// Block heights.
pub const SYS_BLOCK: &str = "urn:rxchain:block";
/// The opaque per-prescription patient reference.
pub const SYS_PATIENT_REF: &str = "urn:rxchain:patient-ref";
/// The patient's identifier as the prescriber entered it.
pub const SYS_PATIENT_ID: &str = "urn:rxchain:patient-identifier";
/// Our stable error codes.
pub const SYS_ERROR: &str = "urn:rxchain:error";
/// The QR payload extension of an import's answer.
pub const EXT_QR_PAYLOAD: &str = "urn:rxchain:fhir:qr-payload";
/// The patient link extension of an import's answer.
pub const EXT_PATIENT_LINK: &str = "urn:rxchain:fhir:patient-link";

/// Someone or something named by an id and, when known, a display name.
#[derive(Clone, Debug)]
pub struct Party {
    /// A staff key (hex), an organisation or node id.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
}

/// What an export of one prescription needs besides the record.
pub struct RxView<'a> {
    /// The record.
    pub rec: &'a PrescriptionRecord,
    /// Its status now.
    pub status: PublicStatus,
    /// The prescriber (staff key).
    pub prescriber: Party,
    /// The issuing hospital.
    pub hospital: Party,
    /// The pharmacy the patient chose, if any.
    pub pharmacy: Option<Party>,
    /// Per fill (in record order): the pharmacy and the pharmacist.
    pub fill_parties: Vec<(Party, Party)>,
    /// The opened content, for callers allowed to see the patient.
    pub content: Option<&'a PrivateContent>,
}

/// The MedicationRequest id of item `i` (from 0): the prescription id for
/// a one-item prescription, else `<id>-<n>` with `n` from 1.
pub fn request_id(rec: &PrescriptionRecord, i: usize) -> String {
    if rec.items.len() == 1 {
        rec.id.to_string()
    } else {
        format!("{}-{}", rec.id, i + 1)
    }
}

/// Which item a MedicationRequest id names: `(prescription, item from 0)`;
/// a bare prescription id names item 0 only when it is the only item,
/// which the caller checks.
pub fn parse_request_id(id: &str) -> Option<(PrescriptionId, Option<usize>)> {
    match id.split_once('-') {
        None => Some((PrescriptionId::parse(id).ok()?, None)),
        Some((rx, n)) => {
            let k: usize = n.parse().ok()?;
            // Written canonically: no leading zeros or sign, counted from 1.
            (k >= 1 && k.to_string() == n).then_some(())?;
            Some((PrescriptionId::parse(rx).ok()?, Some(k - 1)))
        }
    }
}

/// The MedicationDispense id of line `l` of fill `f` (both from 0).
pub fn dispense_id(id: &PrescriptionId, f: usize, l: usize) -> String {
    format!("{id}-f{}-{}", f + 1, l + 1)
}

/// The FHIR MedicationRequest status of a public status: the FHIR value
/// set only; an expired prescription is `stopped`.
pub fn request_status(s: PublicStatus) -> &'static str {
    match s {
        PublicStatus::Issued
        | PublicStatus::Assigned
        | PublicStatus::Claimed
        | PublicStatus::PartiallyDispensed => "active",
        PublicStatus::Completed => "completed",
        PublicStatus::Cancelled => "cancelled",
        PublicStatus::Expired => "stopped",
    }
}

/// An opaque reference that tells readers which prescriptions share a
/// patient never, and names nobody: derived from the prescription id alone.
pub fn opaque_subject(id: &PrescriptionId) -> Reference {
    let mut h = Sha3_256::new();
    h.update(b"rxchain-fhir-subject-v1\0");
    h.update(id.as_bytes());
    let digest = h.finalize();
    Reference::logical(
        "Patient",
        Identifier::new(SYS_PATIENT_REF, hex::encode(&digest[..16])),
        None,
    )
}

fn org_ref(p: &Party) -> Reference {
    Reference::logical(
        "Organization",
        Identifier::new(SYS_ORG, &p.id),
        p.name.clone(),
    )
}

fn staff_ref(p: &Party) -> Reference {
    Reference::logical(
        "Practitioner",
        Identifier::new(SYS_STAFF, &p.id),
        p.name.clone(),
    )
}

/// The drug as a concept: the ATC coding with the drug's name, and the
/// whole description as text.
pub fn medication_concept(item: &Item) -> CodeableConcept {
    CodeableConcept {
        coding: vec![Coding {
            system: ATC.into(),
            code: item.atc.as_str().into(),
            display: Some(item.name.as_str().into()),
        }],
        text: Some(format!(
            "{} {} {}",
            item.name.as_str(),
            item.strength.as_str(),
            item.form.as_str()
        )),
    }
}

/// The patient's identifier as a FHIR Identifier: an imported one was kept
/// as the token `system|value` (the system a URI); one typed in our form is
/// a plain value in [`SYS_PATIENT_ID`].
pub fn patient_identifier(stored: &str) -> Identifier {
    match stored.split_once('|') {
        Some((system, value)) if system.contains(':') && !value.is_empty() => {
            Identifier::new(system, value)
        }
        _ => Identifier::new(SYS_PATIENT_ID, stored),
    }
}

fn patient(content: &PrivateContent) -> Patient {
    let p = &content.patient;
    Patient {
        resource_type: "Patient",
        id: "patient".into(),
        identifier: vec![patient_identifier(&p.identifier)],
        name: vec![HumanName {
            text: p.name.clone(),
        }],
        birth_date: p.birth_date.clone(),
        telecom: p
            .email
            .iter()
            .map(|e| ContactPoint {
                system: "email",
                value: e.clone(),
            })
            .collect(),
    }
}

/// The subject: the contained patient for callers given the content, the
/// opaque reference for everyone else.
fn subject(v: &RxView<'_>) -> (Reference, Option<Contained>) {
    match v.content {
        Some(c) => (
            Reference {
                reference: Some("#patient".into()),
                display: Some(c.patient.name.clone()),
                ..Reference::default()
            },
            Some(Contained::Patient(patient(c))),
        ),
        None => (opaque_subject(&v.rec.id), None),
    }
}

/// The MedicationRequest of item `i`.
pub fn medication_request(v: &RxView<'_>, i: usize) -> MedicationRequest {
    let rec = v.rec;
    let item = &rec.items[i];
    let (subject, patient) = subject(v);
    let requester = PractitionerRole {
        resource_type: "PractitionerRole",
        id: "requester".into(),
        practitioner: staff_ref(&v.prescriber),
        organization: org_ref(&v.hospital),
    };
    let mut contained: Vec<Contained> = patient.into_iter().collect();
    contained.push(Contained::PractitionerRole(requester));
    let dosage = v
        .content
        .and_then(|c| c.dosage.get(i))
        .filter(|d| !d.is_empty())
        .map(|d| Dosage { text: d.clone() });
    let note = v
        .content
        .map(|c| c.notes.clone())
        .filter(|n| !n.is_empty())
        .map(|text| Annotation { text });
    MedicationRequest {
        resource_type: "MedicationRequest",
        id: request_id(rec, i),
        contained,
        extension: Vec::new(),
        identifier: vec![Identifier::new(SYS_ITEM, format!("{}/{}", rec.id, i + 1))],
        status: request_status(v.status),
        intent: "order",
        medication_codeable_concept: medication_concept(item),
        subject,
        authored_on: instant(rec.issued_at),
        requester: Reference {
            reference: Some("#requester".into()),
            display: v.prescriber.name.clone(),
            ..Reference::default()
        },
        group_identifier: Identifier::new(SYS_PRESCRIPTION, rec.id.to_string()),
        note: note.into_iter().collect(),
        dosage_instruction: dosage.into_iter().collect(),
        dispense_request: DispenseRequest {
            validity_period: Period {
                start: Some(instant(rec.valid_from)),
                end: Some(instant(rec.valid_until)),
            },
            number_of_repeats_allowed: rec.repeats,
            quantity: Quantity {
                value: u64::from(item.quantity.get()),
                unit: item.unit.as_str().into(),
            },
            performer: v.pharmacy.as_ref().map(org_ref),
        },
    }
}

/// Every item's MedicationRequest.
pub fn medication_requests(v: &RxView<'_>) -> Vec<MedicationRequest> {
    (0..v.rec.items.len())
        .map(|i| medication_request(v, i))
        .collect()
}

/// The status of fill `f` and when the patient got it: a pickup (or a
/// fill without a chosen mode) is handed over at the counter when it is
/// dispensed; a home delivery follows the delivery events recorded after
/// the fill (and before the next one): none or packed is `preparation`,
/// dispatched and out for delivery `in-progress`, delivered `completed`,
/// failed `on-hold`, returned `stopped`.
pub fn dispense_status(rec: &PrescriptionRecord, f: usize) -> (&'static str, Option<Timestamp>) {
    let fill = &rec.fills[f];
    if !matches!(rec.fulfilment, Some(Fulfilment::Delivery { .. })) {
        return ("completed", Some(fill.at));
    }
    let until = rec.fills.get(f + 1).map(|n| n.at);
    let last = rec
        .delivery
        .iter()
        .filter(|e| e.at >= fill.at && until.is_none_or(|u| e.at < u))
        .next_back();
    match last.map(|e| (e.status, e.at)) {
        None | Some((DeliveryStatus::Packed | DeliveryStatus::ReadyForPickup, _)) => {
            ("preparation", None)
        }
        Some((DeliveryStatus::Dispatched | DeliveryStatus::OutForDelivery, _)) => {
            ("in-progress", None)
        }
        Some((DeliveryStatus::Delivered, at)) => ("completed", Some(at)),
        Some((DeliveryStatus::Failed, _)) => ("on-hold", None),
        Some((DeliveryStatus::Returned, _)) => ("stopped", None),
    }
}

/// The MedicationDispense of line `l` of fill `f`, or `None` when the line
/// names no item of the record.
pub fn medication_dispense(v: &RxView<'_>, f: usize, l: usize) -> Option<MedicationDispense> {
    let rec = v.rec;
    let fill = rec.fills.get(f)?;
    let (item_no, qty, batch) = fill.lines.get(l)?;
    let i = usize::from(*item_no);
    let item = rec.items.get(i)?;
    let (pharmacy, pharmacist) = v.fill_parties.get(f)?;
    let (status, handed) = dispense_status(rec, f);
    let (subject, patient) = subject(v);
    let mut contained: Vec<Contained> = patient.into_iter().collect();
    contained.push(Contained::Medication(Medication {
        resource_type: "Medication",
        id: "med".into(),
        code: medication_concept(item),
        batch: MedicationBatch {
            lot_number: batch.as_str().into(),
        },
    }));
    Some(MedicationDispense {
        resource_type: "MedicationDispense",
        id: dispense_id(&rec.id, f, l),
        contained,
        identifier: vec![Identifier::new(SYS_TX, fill.tx.to_string())],
        status,
        medication_reference: Reference::to("#med"),
        subject,
        performer: vec![
            Performer {
                actor: org_ref(pharmacy),
            },
            Performer {
                actor: staff_ref(pharmacist),
            },
        ],
        authorizing_prescription: vec![Reference::to(format!(
            "MedicationRequest/{}",
            request_id(rec, i)
        ))],
        quantity: Quantity {
            value: u64::from(*qty),
            unit: item.unit.as_str().into(),
        },
        when_prepared: instant(fill.at),
        when_handed_over: handed.map(instant),
    })
}

/// Every dispensed line of fill `f`.
pub fn fill_dispenses(v: &RxView<'_>, f: usize) -> Vec<MedicationDispense> {
    let lines = v.rec.fills.get(f).map_or(0, |x| x.lines.len());
    (0..lines)
        .filter_map(|l| medication_dispense(v, f, l))
        .collect()
}

/// Every dispensed line of every fill.
pub fn medication_dispenses(v: &RxView<'_>) -> Vec<MedicationDispense> {
    (0..v.rec.fills.len())
        .flat_map(|f| fill_dispenses(v, f))
        .collect()
}

/// What a Provenance describes: one transaction in its block.
pub struct TxProof {
    /// The transaction id.
    pub tx_id: String,
    /// Its kind, e.g. `issue`.
    pub kind: &'static str,
    /// The block's height.
    pub height: u64,
    /// The block's hash (hex).
    pub block_hash: String,
    /// Block time.
    pub at: Timestamp,
    /// The signer.
    pub signer: Party,
    /// Whether the signer is the patient (the prescription's access key)
    /// rather than staff or an organisation's admin.
    pub signer_is_patient: bool,
    /// The signer's organisation, when known.
    pub signer_org: Option<Party>,
    /// The block's proposer.
    pub proposer: Party,
    /// The proposer's signature over the header.
    pub block_signature: Vec<u8>,
    /// The quorum certificate of the block as JSON, when this node has it.
    pub certificate: Option<Vec<u8>>,
    /// The resources the transaction concerns (`Type/id`).
    pub targets: Vec<String>,
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// ASTM E1762 signature types.
const SIG_TYPES: &str = "urn:iso-astm:E1762-95:2013";

/// The Provenance of a transaction: its signer, its block and the block's
/// signature and certificate.
pub fn provenance(p: &TxProof) -> Provenance {
    let activity = match p.kind {
        "issue" => "CREATE",
        "cancel" => "ABORT",
        _ => "UPDATE",
    };
    let mut signature = vec![Signature {
        kind: vec![Coding {
            system: SIG_TYPES.into(),
            code: "1.2.840.10065.1.12.1.14".into(),
            display: Some("Source Signature".into()),
        }],
        when: instant(p.at),
        who: Reference::logical("Device", Identifier::new(SYS_NODE, &p.proposer.id), None),
        sig_format: "application/octet-stream",
        data: b64(&p.block_signature),
    }];
    if let Some(cert) = &p.certificate {
        signature.push(Signature {
            kind: vec![Coding {
                system: SIG_TYPES.into(),
                code: "1.2.840.10065.1.12.1.5".into(),
                display: Some("Verification Signature".into()),
            }],
            when: instant(p.at),
            who: Reference::logical(
                "Organization",
                Identifier::new(SYS_ORG, "consortium"),
                Some("the consortium's declared nodes (quorum certificate)".into()),
            ),
            sig_format: "application/json",
            data: b64(cert),
        });
    }
    Provenance {
        resource_type: "Provenance",
        id: p.tx_id.clone(),
        target: p.targets.iter().map(Reference::to).collect(),
        recorded: instant(p.at),
        activity: CodeableConcept {
            coding: vec![Coding::new(
                "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                activity,
            )],
            text: Some(p.kind.into()),
        },
        agent: vec![ProvenanceAgent {
            who: if p.signer_is_patient {
                // The access key is public on the chain and names nobody.
                Reference::logical(
                    "Patient",
                    Identifier::new(SYS_ACCESS_KEY, &p.signer.id),
                    Some("the patient (holder of the QR code)".into()),
                )
            } else {
                staff_ref(&p.signer)
            },
            on_behalf_of: p.signer_org.as_ref().map(org_ref),
        }],
        entity: vec![
            ProvenanceEntity {
                role: "source",
                what: Reference::logical(
                    "Basic",
                    Identifier::new(SYS_TX, &p.tx_id),
                    Some(format!("transaction {} ({})", p.tx_id, p.kind)),
                ),
            },
            ProvenanceEntity {
                role: "source",
                what: Reference::logical(
                    "Basic",
                    Identifier::new(SYS_BLOCK, p.height.to_string()),
                    Some(format!("block {} hash {}", p.height, p.block_hash)),
                ),
            },
        ],
        signature,
    }
}

/// The FHIR issue type of an HTTP error status.
pub fn issue_type(status: u16) -> &'static str {
    match status {
        401 => "login",
        403 => "forbidden",
        404 => "not-found",
        405 | 415 => "not-supported",
        408 => "timeout",
        409 => "conflict",
        410 => "expired",
        413 => "too-long",
        422 => "business-rule",
        429 => "throttled",
        503 => "transient",
        400..=499 => "invalid",
        _ => "exception",
    }
}

/// An OperationOutcome with one issue carrying our stable code.
pub fn operation_outcome(
    status: u16,
    code: &str,
    message: &str,
    expression: Option<String>,
) -> OperationOutcome {
    OperationOutcome {
        resource_type: "OperationOutcome",
        extension: Vec::new(),
        issue: vec![Issue {
            severity: if status < 400 { "information" } else { "error" },
            code: if status < 400 {
                "informational"
            } else {
                issue_type(status)
            },
            details: CodeableConcept {
                coding: vec![Coding::new(SYS_ERROR, code)],
                text: Some(message.into()),
            },
            expression: expression.into_iter().collect(),
        }],
    }
}
