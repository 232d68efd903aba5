//! The Sietch node as a library: its networking actor (`net`), its durable state (`store`),
//! its configuration (`config`), its HTTP API (`api`) and the service that wires them
//! together (`service`, what `sietch node run` runs). The `sietch` binary (`main.rs`,
//! `cmd/`) is a thin layer over these; the tests and the network simulation use them
//! directly.

pub mod api;
pub mod config;
pub mod net;
pub mod service;
pub mod store;
