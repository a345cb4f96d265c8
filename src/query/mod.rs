//! Read-only projections of the committed chain: the answers the HTTP layer
//! and tools compute from a [`ChainStore`](crate::store::ChainStore) without
//! changing it.
//!
//! Nothing here knows about HTTP: every function takes the store directly
//! and returns plain data or a typed error, so it can be tested on a store
//! opened in a temp dir and called from any front end. The scans are
//! synchronous; async callers run them on a blocking thread.

pub mod csv_export;
pub mod day;
pub mod reports;
#[cfg(test)]
pub(crate) mod testchain;
