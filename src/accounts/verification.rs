//! The record of the last full chain verification run on this node, and the
//! flag that keeps two from running at once.

use std::sync::atomic::Ordering;

use rxchain_contracts::Timestamp;
use serde::{Deserialize, Serialize};

use super::{from_json, to_json, AccountError, Accounts};

/// Where the last verification is stored in the accounts tree.
const VERIFICATION: &[u8] = b"m/verification";

/// The result of a full chain verification run on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Verification {
    /// When it finished (ms).
    pub at: Timestamp,
    /// Whether every check passed.
    pub ok: bool,
    /// The last block checked.
    pub height: u64,
    /// What was checked, or the first failure.
    pub message: String,
}

impl Accounts {
    /// Marks a verification as running; false when one already runs.
    pub fn begin_verification(&self) -> bool {
        self.verifying
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Records a finished verification and clears the running mark.
    pub fn finish_verification(&self, v: &Verification) -> Result<(), AccountError> {
        let res = to_json(v).and_then(|b| {
            self.tree.insert(VERIFICATION, b)?;
            Ok(())
        });
        self.verifying.store(false, Ordering::Release);
        res
    }

    /// Whether a verification is running now.
    pub fn verification_running(&self) -> bool {
        self.verifying.load(Ordering::Acquire)
    }

    /// The last recorded verification.
    pub fn last_verification(&self) -> Result<Option<Verification>, AccountError> {
        self.tree
            .get(VERIFICATION)?
            .map(|v| from_json("verification", &v))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::test_support::open;

    #[test]
    fn one_verification_runs_at_a_time_and_its_result_is_kept() {
        let (_d, a) = open("n1");
        assert_eq!(a.last_verification().unwrap(), None);
        assert!(a.begin_verification());
        assert!(!a.begin_verification());
        assert!(a.verification_running());
        let v = Verification {
            at: Timestamp(5),
            ok: true,
            height: 3,
            message: "3 blocks checked".into(),
        };
        a.finish_verification(&v).unwrap();
        assert!(!a.verification_running());
        assert_eq!(a.last_verification().unwrap(), Some(v));
    }
}
