//! The Sietch node as a library: its networking actor (`net`), its durable state (`store`),
//! its view of the escrow on chain (`chain`), its configuration (`config`), its HTTP API
//! (`api`), its event stream (`events`), the buyer and provider roles (`buyer`, `provider`,
//! over what a job is to the node: `jobs`, and what both do in a dispute: `dispute`) and the
//! service that wires them together (`service`, what `sietch node run` runs). The `sietch`
//! binary (the `sietch-cli` crate, `cli/`) is a thin layer over these; the tests, the devnet
//! (`sietch-testkit`, `testkit/`) and the network simulation use them directly.

pub mod activity;
pub mod api;
pub mod buyer;
pub mod chain;
pub mod config;
pub mod delivery;
mod dispute;
pub mod events;
pub mod jobs;
pub mod keys;
pub mod logs;
pub mod net;
mod provider;
pub mod service;
pub mod shared_blobs;
pub mod store;
pub mod sync;
