//! The Sietch node as a library: its networking actor (`net`), its durable state (`store`)
//! and its configuration (`config`). The `sietch` binary (`main.rs`, `cmd/`) is a thin layer
//! over these, and the tests and the network simulation use them directly.

pub mod config;
pub mod net;
pub mod store;
