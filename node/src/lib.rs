//! zongzhi-node: one comprehensive-governance center's node.
//!
//! [`store`] (RocksDB; only `store/rocks.rs` names it), [`ledger`] (signs
//! and durably appends this node's records), [`api`] (HTTP JSON API),
//! [`accounts`] (operators and sessions), [`integrity`] (tamper checks),
//! [`node`] (start-up and shutdown).
//!
//! Architecture invariants: only `store/rocks.rs` names rocksdb and only
//! `net/` names quinn and rustls; every change goes through the ledger's one
//! writer and is acknowledged only after its synced write batch; derived
//! data can always be rebuilt from records (`reindex`).

#![recursion_limit = "256"]

pub mod accounts;
pub mod api;
pub mod citizen;
pub mod config;
pub mod console;
pub mod context;
pub mod export;
pub mod failpoint;
pub mod http_client;
pub mod index;
#[cfg(test)]
mod index_tests;
pub mod integration;
pub mod integrity;
pub mod ledger;
pub mod login;
pub mod metrics;
pub mod net;
pub mod node;
pub mod notify;
pub mod ports;
pub mod probes;
pub mod progress;
pub mod queue;
pub mod recovery;
pub mod release;
pub mod replication;
pub mod report;
pub mod search;
pub mod stats;
pub mod status;
pub mod store;
pub mod summary;
pub mod workers;
/// The supervision worker, at the path it had before `workers/`.
pub use workers::supervisor;
