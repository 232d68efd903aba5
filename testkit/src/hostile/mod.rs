//! A hostile chain for rehearsals (`system/tests/hostile.rs`, `sietch devnet --hostile`):
//! [`chaos`] reorganizes anvil's blocks and spikes its fees at random, [`proxy`] stands in
//! for a flaky RPC endpoint that drops connections and goes down. `docs/transactions.md`
//! and `docs/finality.md` say what a node does about each.

pub mod chaos;
pub mod proxy;

pub use chaos::{Chaos, ChaosConfig, ChaosReport};
pub use proxy::{ProxyStats, RpcProxy};
