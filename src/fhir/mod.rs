//! HL7 FHIR R4: our prescriptions, fills and transactions as FHIR
//! resources ([`export`]), and a hospital system's MedicationRequest read
//! into an issue ([`import`]).
//!
//! Nothing here knows HTTP or the store: `http::fhir` reads the chain,
//! applies the role rules and calls in. The resources are small serde
//! structs ([`resources`]) rather than a FHIR model crate, whose thousands
//! of types cost minutes of build time; CI validates every resource we
//! emit with an independent validator (`scripts/fhir-validate.py`).

pub mod export;
pub mod import;
pub mod resources;
pub mod time;

use serde_json::{json, Value};

/// The FHIR version we speak.
pub const FHIR_VERSION: &str = "4.0.1";

/// The media type of FHIR JSON.
pub const MEDIA_TYPE: &str = "application/fhir+json";

/// The CapabilityStatement: exactly the interactions and search
/// parameters `/fhir/r4/` serves.
pub fn capability_statement(software_version: &str, date: &str) -> Value {
    let search = |name: &str, kind: &str, doc: &str| json!({"name": name, "type": kind, "documentation": doc});
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": {"name": "rxchain", "version": software_version},
        "implementation": {"description": "rxchain node: e-prescriptions on a consortium chain"},
        "fhirVersion": FHIR_VERSION,
        "format": [MEDIA_TYPE, "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Patient identity only for the issuing hospital's staff and regulators; everyone else gets an opaque per-prescription subject. Errors are OperationOutcome resources whose details carry rxchain's stable codes (system urn:rxchain:error).",
            "security": {"description": "Staff session cookie (and its CSRF token for writes); the same role rules as the JSON API."},
            "resource": [
                {
                    "type": "MedicationRequest",
                    "interaction": [{"code": "read"}, {"code": "create"}],
                    "conditionalCreate": true,
                    "documentation": "One per prescription item; create issues a one-item prescription signed with the signed-in doctor's key. If-None-Exist and Idempotency-Key make a retry create nothing new."
                },
                {
                    "type": "MedicationDispense",
                    "interaction": [{"code": "search-type"}],
                    "searchParam": [
                        search("prescription", "reference", "The prescription id: every dispensed line of it"),
                        search("performer", "reference", "Regulators: the dispensing pharmacy's consortium id"),
                        search("whenhandedover", "date", "Regulators: ge and le bounds (UTC), at most a year apart"),
                        search("_count", "number", "Page size, 1 to 100 (default 20)"),
                        search("_offset", "number", "Matches to skip (paging)")
                    ]
                },
                {
                    "type": "Provenance",
                    "interaction": [{"code": "search-type"}],
                    "searchParam": [
                        search("target", "reference", "MedicationRequest/{id}: every applied transaction about the prescription, with its block and signatures")
                    ]
                }
            ]
        }]
    })
}
