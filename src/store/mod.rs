//! Durable storage in sled: the Raft log, the state machine and the chain.
