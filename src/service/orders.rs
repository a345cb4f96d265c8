//! The identifiers hospital systems give the prescriptions they create
//! through FHIR (`MedicationRequest.identifier`, say an order number), kept
//! on the node that created them and nowhere else: for FHIR conditional
//! create (`If-None-Exist: identifier=system|value` finds the prescription
//! made for that order instead of making a second) and to give them back
//! in the hospital's own exports. They are not put on the chain: an order
//! number names no patient, but the hospital's records link it to one.
//!
//! Tree `fhir_orders`: `i/<org>\0<system>\0<value>` → prescription id, and
//! `r/<prescription id>` → the identifiers as JSON `[[system, value], …]`.
//! The organisation is part of the key: one hospital's order numbers never
//! match another's.

use rxchain_contracts::{OrgId, PrescriptionId};

use crate::store::StoreError;

/// The order identifiers of prescriptions created on this node.
pub struct Orders {
    tree: sled::Tree,
}

fn index_key(org: &OrgId, system: &str, value: &str) -> Vec<u8> {
    [
        b"i/".as_slice(),
        org.as_str().as_bytes(),
        b"\0",
        system.as_bytes(),
        b"\0",
        value.as_bytes(),
    ]
    .concat()
}

fn record_key(rx: &PrescriptionId) -> Vec<u8> {
    [b"r/".as_slice(), rx.as_bytes()].concat()
}

impl Orders {
    /// Opens the `fhir_orders` tree of `db`.
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Orders {
            tree: db.open_tree("fhir_orders")?,
        })
    }

    /// The prescription `org` created for the order (`system`, `value`).
    pub fn find(
        &self,
        org: &OrgId,
        system: &str,
        value: &str,
    ) -> Result<Option<PrescriptionId>, StoreError> {
        let Some(v) = self.tree.get(index_key(org, system, value))? else {
            return Ok(None);
        };
        let id = <[u8; 16]>::try_from(v.as_ref())
            .map_err(|_| StoreError::corrupt("an order index entry", "not 16 bytes"))?;
        Ok(Some(PrescriptionId::from_bytes(id)))
    }

    /// Remembers that `org` created `rx` for these orders; the first
    /// prescription recorded for an order keeps it.
    pub fn record(
        &self,
        org: &OrgId,
        rx: &PrescriptionId,
        identifiers: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (system, value) in identifiers {
            let k = index_key(org, system, value);
            if self.tree.get(&k)?.is_none() {
                batch.insert(k, rx.as_bytes().as_slice());
            }
        }
        let json = serde_json::to_vec(identifiers)
            .map_err(|e| StoreError::corrupt("order identifiers", e))?;
        batch.insert(record_key(rx), json);
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// The order identifiers of `rx`, as (system, value); none when it was
    /// not created on this node through FHIR.
    pub fn of(&self, rx: &PrescriptionId) -> Result<Vec<(String, String)>, StoreError> {
        match self.tree.get(record_key(rx))? {
            None => Ok(Vec::new()),
            Some(v) => {
                serde_json::from_slice(&v).map_err(|e| StoreError::corrupt("order identifiers", e))
            }
        }
    }
}
