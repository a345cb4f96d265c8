//! Properties of the state root (LtHash): the root a chain maintains block
//! by block from write sets alone equals the root computed from scratch over
//! the resulting state, and the order pairs are added in does not matter.

use proptest::prelude::*;
use rxchain_contracts::state::{MemStore, WriteSet};
use rxchain_contracts::state_root::LtHash;

/// A small key space so that writes hit existing keys, overwrite and delete.
fn key() -> impl Strategy<Value = Vec<u8>> {
    (0u8..12).prop_map(|k| format!("rx/{k}").into_bytes())
}

fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::weighted(0.8, prop::collection::vec(any::<u8>(), 0..24))
}

fn write_set() -> impl Strategy<Value = WriteSet> {
    prop::collection::btree_map(key(), value(), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Block by block, the incremental accumulator equals the one recomputed
    /// over the whole state after that block.
    #[test]
    fn incremental_root_equals_from_scratch(blocks in prop::collection::vec(write_set(), 0..12)) {
        let mut store = MemStore::default();
        let mut acc = LtHash::of_state(&store);
        for writes in &blocks {
            acc = acc.updated(&store, writes);
            store.commit(writes);
            prop_assert_eq!(acc, LtHash::of_state(&store));
            prop_assert_eq!(acc.root(), LtHash::of_state(&store).root());
        }
    }

    /// The accumulator of a set of pairs does not depend on insertion order.
    #[test]
    fn insertion_order_does_not_matter(
        pairs in prop::collection::btree_map(prop::collection::vec(any::<u8>(), 0..8), prop::collection::vec(any::<u8>(), 0..8), 0..16),
        seed in any::<u64>(),
    ) {
        let mut shuffled: Vec<_> = pairs.iter().collect();
        // A deterministic shuffle from the seed (Fisher-Yates on an LCG).
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let sorted = LtHash::of_pairs(pairs.iter());
        let mixed = LtHash::of_pairs(shuffled.into_iter());
        prop_assert_eq!(sorted, mixed);
    }
}
