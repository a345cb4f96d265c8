#!/usr/bin/env python3
"""Validates FHIR R4 JSON resources with an independent implementation.

Usage: validate.py FILE...   (each file holds one resource, or a JSON list
of resources). Every resource is parsed by the `fhir.resources` models of
R4B (R4B changed none of the resources we emit from R4), which check
element names, cardinalities and primitive types. Those models do not
enforce code value sets, so this script also checks every coded element we
emit against its FHIR value set, and FHIR's rule that no element is null,
an empty string, an empty object or an empty list.

Prints "N of N resources valid" and exits 0 when all are; otherwise prints
each problem and exits 1. Exit 2: the validator itself cannot run (the
package is missing), which the Rust test reports as such.
"""
import json
import re
import sys

try:
    from fhir.resources.R4B import get_fhir_model_class
except ImportError as e:  # pragma: no cover - reported by the Rust test
    print(f"cannot import fhir.resources.R4B: {e}", file=sys.stderr)
    sys.exit(2)

ISSUE_TYPES = {
    "invalid", "structure", "required", "value", "invariant", "security", "login",
    "unknown", "expired", "forbidden", "suppressed", "processing", "not-supported",
    "duplicate", "multiple-matches", "not-found", "deleted", "too-long",
    "code-invalid", "extension", "too-costly", "business-rule", "conflict",
    "transient", "lock-error", "no-store", "exception", "timeout", "incomplete",
    "throttled", "informational",
}
RESOURCE_TYPES = {
    "Patient", "Practitioner", "PractitionerRole", "Organization", "Device", "Basic",
    "Medication", "MedicationRequest", "MedicationDispense", "Provenance",
    "OperationOutcome", "Bundle", "CapabilityStatement",
}
# (resource type, dotted path without indices) -> allowed codes
VALUE_SETS = {
    ("MedicationRequest", "status"): {"active", "on-hold", "cancelled", "completed",
                                      "entered-in-error", "stopped", "draft", "unknown"},
    ("MedicationRequest", "intent"): {"proposal", "plan", "order", "original-order",
                                      "reflex-order", "filler-order", "instance-order", "option"},
    ("MedicationDispense", "status"): {"preparation", "in-progress", "cancelled", "on-hold",
                                       "completed", "entered-in-error", "stopped", "declined",
                                       "unknown"},
    ("Bundle", "type"): {"document", "message", "transaction", "transaction-response", "batch",
                         "batch-response", "history", "searchset", "collection"},
    ("Bundle", "entry.search.mode"): {"match", "include", "outcome"},
    ("Bundle", "link.relation"): {"self", "next", "previous", "first", "last"},
    ("OperationOutcome", "issue.severity"): {"fatal", "error", "warning", "information"},
    ("OperationOutcome", "issue.code"): ISSUE_TYPES,
    ("Provenance", "entity.role"): {"derivation", "revision", "quotation", "source", "removal"},
    ("Patient", "telecom.system"): {"phone", "fax", "email", "pager", "url", "sms", "other"},
    ("CapabilityStatement", "status"): {"draft", "active", "retired", "unknown"},
    ("CapabilityStatement", "kind"): {"instance", "capability", "requirements"},
    ("CapabilityStatement", "fhirVersion"): {"4.0.0", "4.0.1"},
    ("CapabilityStatement", "rest.mode"): {"client", "server"},
    ("CapabilityStatement", "rest.resource.type"): RESOURCE_TYPES,
    ("CapabilityStatement", "rest.resource.interaction.code"): {
        "read", "vread", "update", "patch", "delete", "history-instance", "history-type",
        "create", "search-type"},
    ("CapabilityStatement", "rest.resource.searchParam.type"): {
        "number", "date", "string", "token", "reference", "composite", "quantity", "uri",
        "special"},
    ("CapabilityStatement", "format"): {"json", "application/fhir+json", "xml",
                                        "application/fhir+xml"},
}
# Codings by system: the codes allowed (a set) or their pattern.
CODINGS = {
    "http://www.whocc.no/atc": re.compile(r"^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$"),
    "urn:iso-astm:E1762-95:2013": {f"1.2.840.10065.1.12.1.{n}" for n in range(1, 19)},
    "http://terminology.hl7.org/CodeSystem/v3-DataOperation": {
        "CREATE", "UPDATE", "DELETE", "ABORT", "ACTIVATE", "APPEND", "CANCEL", "COMPLETE",
        "HOLD", "JUMP", "NULLIFY", "OBSOLETE", "REACTIVATE", "RELEASE", "RESUME", "SUSPEND",
        "EXECUTE", "READ", "OPERATE", "NOTIFY", "INSTANTIATE"},
}


def problems_of(resource, where):
    """Every value-set and emptiness problem in one resource (recursing
    into contained resources and bundle entries, each under its own type)."""
    out = []
    rtype = resource.get("resourceType")

    def walk(value, path, owner):
        if value is None or value == "" or value == [] or value == {}:
            out.append(f"{where}: {owner}.{path} is empty (FHIR forbids empty elements)")
            return
        if isinstance(value, dict):
            if "resourceType" in value and path:
                # A contained or bundled resource: checked under its own type.
                out.extend(problems_of(value, f"{where} > {path}"))
                return
            if "system" in value and "code" in value and value["system"] in CODINGS:
                allowed = CODINGS[value["system"]]
                code = value["code"]
                ok = allowed.match(code) if hasattr(allowed, "match") else code in allowed
                if not ok:
                    out.append(f"{where}: {owner}.{path} code {code!r} is not in {value['system']}")
            if isinstance(value.get("type"), str) and ("reference" in value or "identifier" in value):
                # A Reference's type names a resource type.
                if value["type"] not in RESOURCE_TYPES:
                    out.append(f"{where}: {owner}.{path}.type {value['type']!r} is no resource type")
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else k, owner)
        elif isinstance(value, list):
            for v in value:
                walk(v, path, owner)
        elif isinstance(value, str):
            allowed = VALUE_SETS.get((owner, path))
            if allowed is not None and value not in allowed:
                out.append(f"{where}: {owner}.{path} = {value!r} is not in its FHIR value set")

    if rtype not in RESOURCE_TYPES:
        out.append(f"{where}: unexpected resourceType {rtype!r}")
    for k, v in resource.items():
        walk(v, k, rtype)
    return out


def main(paths):
    resources = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            data = json.load(f)
        items = data if isinstance(data, list) else [data]
        resources.extend((f"{p}[{i}]", r) for i, r in enumerate(items))
    bad = 0
    for where, r in resources:
        errors = []
        try:
            get_fhir_model_class(r["resourceType"]).model_validate(r)
        except Exception as e:  # every model error is a finding
            errors.append(f"{where} ({r.get('resourceType')}): {e}")
        errors.extend(problems_of(r, f"{where} ({r.get('resourceType')})"))
        if errors:
            bad += 1
            for e in errors:
                print(e)
    print(f"{len(resources) - bad} of {len(resources)} resources valid")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
