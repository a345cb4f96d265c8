//! Raft wiring: type declarations, network and RPC authentication.
