//! Test support for Sietch, in one place for the node's integration tests and benches, the
//! CLI's tests, the whole-system tests and `sietch devnet`:
//!
//! * [`devnet`]: a whole market in one process (real anvil, real [`sietch_node::service::Node`]s
//!   on loopback), and its jobs ([`devnet::guest`]);
//! * [`system`]: a whole market of real `sietch node run` processes, driven over HTTP;
//! * [`process`]: one `sietch` process, its output collected, stopped on drop, and where the
//!   `sietch` binary is;
//! * [`fnv`]: the FNV-1a test guest and its host-side check;
//! * [`sim`]: many nodes over libp2p's memory transport, for the gossip benches and tests;
//! * [`net`]: real network actors on loopback for the node's network tests (start, wait,
//!   a node of another major version refused);
//! * [`pinned`]: bytes pinned in a committed file (wire messages, store records);
//! * [`hostile`]: a hostile chain for rehearsals: random reorganizations and fee spikes on
//!   anvil, and a flaky RPC endpoint in front of it;
//! * [`fake_http`]: a fake HTTP server that records requests, for the clients' tests;
//! * [`tokens`]: tokens of other decimals than the mock's 18 (a 6-decimal USDC-like one).
//!
//! Test support, not a library for users: errors are `anyhow`, and the process harness fails
//! the calling test (panics) where a test could do nothing else.

pub mod devnet;
pub mod fake_http;
pub mod fnv;
pub mod hostile;
pub mod model;
pub mod net;
pub mod pinned;
pub mod process;
pub mod sim;
pub mod system;
pub mod tokens;
