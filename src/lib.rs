//! # rxchain
//!
//! The rxchain node and CLI: a consortium member's process that orders
//! prescription transactions with Raft (openraft), keeps the chain and the
//! world state in sled, and serves the HTTP API and the web pages.
//!
//! The rules themselves live in the `rxchain-contracts` crate; this crate
//! only moves bytes, keeps them durable and answers questions about them.

pub mod accounts;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod demo;
pub mod http;
pub mod keys;
pub mod mempool;
pub mod metrics;
pub mod node;
pub mod producer;
pub mod qr;
pub mod raft;
pub mod store;
pub mod test_support;
pub mod txbuild;
