//! Organisations' data (decryption) keys this node holds, for opening sealed
//! content addressed to an organisation.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use rxchain_contracts::{OrgId, SecretKey};

use super::Accounts;

/// The data keys by organisation.
///
/// A std lock: written at start-up, then only read, briefly.
#[derive(Default)]
pub(super) struct DataKeys {
    keys: RwLock<HashMap<OrgId, SecretKey>>,
}

impl Accounts {
    /// Records an organisation's data key, for opening sealed content
    /// addressed to it (the prescriber's patient names, pharmacy hand-overs).
    pub fn add_data_key(&self, org: OrgId, key: SecretKey) {
        self.data_keys
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(org, key);
    }

    /// An organisation's data key, when this node holds it.
    pub fn data_key(&self, org: &OrgId) -> Option<SecretKey> {
        self.data_keys
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(org)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::test_support::open;

    #[test]
    fn data_keys_are_kept_per_organisation() {
        let (_d, a) = open("n1");
        let north = OrgId::parse("hosp-north").unwrap();
        let key = SecretKey::derive("test", b"data");
        assert!(a.data_key(&north).is_none());
        a.add_data_key(north.clone(), key.clone());
        assert_eq!(a.data_key(&north).unwrap().public(), key.public());
        assert!(a.data_key(&OrgId::parse("pharm-east").unwrap()).is_none());
    }
}
