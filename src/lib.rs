//! # rxchain
//!
//! The rxchain node and CLI: a consortium member's process that orders
//! prescription transactions with Raft (openraft), keeps the chain and the
//! world state in sled, and serves the HTTP API and the web pages.
//!
//! The rules themselves live in the `rxchain-contracts` crate; this crate
//! only moves bytes, keeps them durable and answers questions about them.
//!
//! # Layout
//!
//! The modules read top-down; each depends only on those below it, never
//! on one above:
//!
//! - [`commands`], [`cli`]: the `rxchain` subcommands; `main.rs` only
//!   parses, sets up tracing and calls [`commands::run`].
//! - [`node`]: assembles one node (storage, Raft, mempool, producer, HTTP),
//!   runs the join loop, and stops everything on shutdown.
//! - [`http`]: one module per resource, each exporting `router()`; handlers
//!   parse, call a use case, and map its result to a response.
//! - [`service`]: the use cases as plain functions over [`service::Node`]:
//!   submitting a transaction, finding and calling the leader.
//! - `mempool`, `producer`: verified transactions waiting, and the leader's
//!   block cutter.
//! - [`store`]: the sled-backed Raft log, state machine and chain store.
//! - [`raft`]: the Raft network (client) and RPC routes (server), and the
//!   test-only fault switch.
//! - [`tls`]: the node's TLS identity, the genesis-pinned rustls
//!   configurations and the node-only route rule; a leaf beside genesis.
//! - [`types`], [`clock`]: leaves that import nothing of ours but the
//!   contracts: openraft's type configuration, and the one wall clock.
//! - Beside them: [`access_log`] (this node's hash-chained log of reads
//!   of private content), [`email`] (the issuing hospital's patient e-mail outbox
//!   and its sender), [`accounts`] (staff accounts, sealed keys, sessions),
//!   [`qr`] (payload, rendering, decoding), [`txbuild`] (building and
//!   signing every transaction kind), [`client`] (an HTTP client for the
//!   API), [`fhir`] (HL7 FHIR R4 mapping, no HTTP), [`config`], [`keys`], [`demo`] (the synthetic demo consortium)
//!   and [`test_support`] (what the integration tests and the demo share).

pub mod access_log;
pub mod accounts;
pub mod cli;
pub mod client;
pub mod clock;
pub mod commands;
pub mod config;
pub mod demo;
pub mod email;
pub mod fhir;
pub mod http;
pub mod keys;
mod limiter;
pub mod mempool;
pub mod metrics;
pub mod node;
mod producer;
pub mod qr;
pub mod query;
pub mod quorum;
pub mod raft;
pub mod service;
pub mod store;
pub mod test_support;
pub mod tls;
pub mod txbuild;
pub mod types;
