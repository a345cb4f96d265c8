//! The FHIR R4 resources and data types we serve, as small serde structs.
//!
//! Only the elements the mapping fills are declared: a full FHIR model
//! crate costs minutes of build time on our two cores for thousands of
//! types we would never emit. Every optional element is left out of the
//! JSON when empty, as FHIR requires (no `null`, no empty arrays).

use serde::Serialize;

/// A code from a code system.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Coding {
    /// The code system's URI.
    pub system: String,
    /// The code.
    pub code: String,
    /// Its display text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Coding {
    /// A coding without display.
    pub fn new(system: &str, code: &str) -> Coding {
        Coding {
            system: system.into(),
            code: code.into(),
            display: None,
        }
    }
}

/// A concept: codings plus text.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeableConcept {
    /// The codings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub coding: Vec<Coding>,
    /// Plain text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A business identifier.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Identifier {
    /// The namespace.
    pub system: String,
    /// The value.
    pub value: String,
}

impl Identifier {
    /// An identifier in `system`.
    pub fn new(system: &str, value: impl Into<String>) -> Identifier {
        Identifier {
            system: system.into(),
            value: value.into(),
        }
    }
}

/// A reference: a literal one (`reference`), a logical one (`identifier`),
/// or both, with display text.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Reference {
    /// A relative or contained (`#id`) reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The resource type referred to.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A logical identifier of the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    /// Text for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Reference {
    /// A literal reference.
    pub fn to(reference: impl Into<String>) -> Reference {
        Reference {
            reference: Some(reference.into()),
            ..Reference::default()
        }
    }

    /// A logical reference to a `kind` by identifier.
    pub fn logical(kind: &str, identifier: Identifier, display: Option<String>) -> Reference {
        Reference {
            reference: None,
            kind: Some(kind.into()),
            identifier: Some(identifier),
            display,
        }
    }
}

/// A measured amount.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Quantity {
    /// The amount (whole units: we dispense counted units).
    pub value: u64,
    /// The unit, as prescribed.
    pub unit: String,
}

/// A time range.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Period {
    /// Start, inclusive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// End.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// A dosage instruction; we carry its text only.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Dosage {
    /// The instruction as written by the prescriber.
    pub text: String,
}

/// A note.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Annotation {
    /// The note's text.
    pub text: String,
}

/// An extension: our own data that FHIR has no element for.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    /// What it means.
    pub url: String,
    /// Its value, as text.
    #[serde(rename = "valueString")]
    pub value_string: String,
}

/// A person's name.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct HumanName {
    /// The whole name as written.
    pub text: String,
}

/// A contact point (we carry e-mail only).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ContactPoint {
    /// `email`.
    pub system: &'static str,
    /// The address.
    pub value: String,
}

/// A patient, contained in the resource that names them.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    /// Always `Patient`.
    pub resource_type: &'static str,
    /// The local id (`patient`), referenced as `#patient`.
    pub id: String,
    /// The health-service or insurance number.
    pub identifier: Vec<Identifier>,
    /// The name.
    pub name: Vec<HumanName>,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// The e-mail address, when given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<ContactPoint>,
}

/// A practitioner in a role at an organisation.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PractitionerRole {
    /// Always `PractitionerRole`.
    pub resource_type: &'static str,
    /// The local id.
    pub id: String,
    /// The practitioner (by staff key).
    pub practitioner: Reference,
    /// The organisation (by consortium id).
    pub organization: Reference,
}

/// A batch of a medication.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MedicationBatch {
    /// The lot number printed on the pack.
    pub lot_number: String,
}

/// A medication, contained in a dispense to carry its batch.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Medication {
    /// Always `Medication`.
    pub resource_type: &'static str,
    /// The local id.
    pub id: String,
    /// The drug (ATC).
    pub code: CodeableConcept,
    /// The batch dispensed.
    pub batch: MedicationBatch,
}

/// A resource contained in another.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum Contained {
    /// A patient.
    Patient(Patient),
    /// A prescriber with their hospital.
    PractitionerRole(PractitionerRole),
    /// A medication with its batch.
    Medication(Medication),
}

/// `MedicationRequest.dispenseRequest`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DispenseRequest {
    /// When it may be dispensed.
    pub validity_period: Period,
    /// Fills after the first (FHIR counts as we do).
    pub number_of_repeats_allowed: u8,
    /// Units per fill.
    pub quantity: Quantity,
    /// The chosen pharmacy, once there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performer: Option<Reference>,
}

/// A prescription item as a FHIR MedicationRequest.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MedicationRequest {
    /// Always `MedicationRequest`.
    pub resource_type: &'static str,
    /// Our id (see `docs/fhir.md`).
    pub id: String,
    /// The patient and the prescriber.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contained: Vec<Contained>,
    /// Extensions (the QR payload and link on the answer to an import).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// The prescription id and item number.
    pub identifier: Vec<Identifier>,
    /// `active`, `completed`, `cancelled` or `stopped`.
    pub status: &'static str,
    /// Always `order`.
    pub intent: &'static str,
    /// The drug.
    pub medication_codeable_concept: CodeableConcept,
    /// The patient, or an opaque reference.
    pub subject: Reference,
    /// Block time of the issue.
    pub authored_on: String,
    /// The prescriber and the hospital.
    pub requester: Reference,
    /// The prescription all items of one issue share.
    pub group_identifier: Identifier,
    /// Sealed notes, for those who may open them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub note: Vec<Annotation>,
    /// Sealed dosage text, for those who may open it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dosage_instruction: Vec<Dosage>,
    /// Validity, repeats, quantity and pharmacy.
    pub dispense_request: DispenseRequest,
}

/// A `MedicationDispense.performer`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Performer {
    /// The pharmacy.
    pub actor: Reference,
}

/// One dispensed line as a FHIR MedicationDispense.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MedicationDispense {
    /// Always `MedicationDispense`.
    pub resource_type: &'static str,
    /// Our id (see `docs/fhir.md`).
    pub id: String,
    /// The medication with its batch.
    pub contained: Vec<Contained>,
    /// The dispense transaction.
    pub identifier: Vec<Identifier>,
    /// See `docs/fhir.md` for the delivery steps.
    pub status: &'static str,
    /// `#med`.
    pub medication_reference: Reference,
    /// The patient, or an opaque reference.
    pub subject: Reference,
    /// The pharmacy and the pharmacist.
    pub performer: Vec<Performer>,
    /// The MedicationRequest of the item.
    pub authorizing_prescription: Vec<Reference>,
    /// Units handed out.
    pub quantity: Quantity,
    /// Block time of the dispense.
    pub when_prepared: String,
    /// When the patient got it (see `docs/fhir.md`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when_handed_over: Option<String>,
}

/// `Provenance.agent`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProvenanceAgent {
    /// The signer.
    pub who: Reference,
    /// Their organisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<Reference>,
}

/// `Provenance.entity`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ProvenanceEntity {
    /// `source`.
    pub role: &'static str,
    /// The transaction or block.
    pub what: Reference,
}

/// A signature.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Signature {
    /// ASTM E1762 signature type.
    #[serde(rename = "type")]
    pub kind: Vec<Coding>,
    /// When (block time).
    pub when: String,
    /// Who signed.
    pub who: Reference,
    /// The bytes' format.
    pub sig_format: &'static str,
    /// The signature bytes, base64.
    pub data: String,
}

/// What a transaction did to a resource, and the block that holds it.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// Always `Provenance`.
    pub resource_type: &'static str,
    /// The transaction id.
    pub id: String,
    /// The resources it concerns.
    pub target: Vec<Reference>,
    /// Block time.
    pub recorded: String,
    /// What it did.
    pub activity: CodeableConcept,
    /// Who signed.
    pub agent: Vec<ProvenanceAgent>,
    /// The transaction and its block.
    pub entity: Vec<ProvenanceEntity>,
    /// The proposer's block signature and the quorum certificate.
    pub signature: Vec<Signature>,
}

/// One issue of an OperationOutcome.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// `error`, `warning` or `information`.
    pub severity: &'static str,
    /// A FHIR issue type.
    pub code: &'static str,
    /// Our stable code and the sentence.
    pub details: CodeableConcept,
    /// The FHIRPath of the element at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expression: Vec<String>,
}

/// An error (or note) as FHIR.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OperationOutcome {
    /// Always `OperationOutcome`.
    pub resource_type: &'static str,
    /// Extensions (the QR payload of a pending import).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// The issues.
    pub issue: Vec<Issue>,
}

/// A link of a bundle (paging).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct BundleLink {
    /// `self`, `next` or `previous`.
    pub relation: &'static str,
    /// The URL.
    pub url: String,
}

/// `Bundle.entry.search`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct BundleSearch {
    /// `match` or `include`.
    pub mode: &'static str,
}

/// A resource of any kind we serve, for bundles.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum Resource {
    /// A prescription item.
    MedicationRequest(Box<MedicationRequest>),
    /// A dispensed line.
    MedicationDispense(Box<MedicationDispense>),
    /// A transaction's provenance.
    Provenance(Box<Provenance>),
}

/// `Bundle.entry`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BundleEntry {
    /// `<Type>/<id>`.
    pub full_url: String,
    /// The resource.
    pub resource: Resource,
    /// Why it is here.
    pub search: BundleSearch,
}

/// A search answer.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// Always `Bundle`.
    pub resource_type: &'static str,
    /// Always `searchset`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Matches in all pages.
    pub total: u64,
    /// Paging.
    pub link: Vec<BundleLink>,
    /// This page.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<BundleEntry>,
}
