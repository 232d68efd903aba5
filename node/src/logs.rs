//! The node's log lines: `tracing` to stderr, filtered by `RUST_LOG` ([`DEFAULT_FILTER`] when unset), so
//! that what the node says only in its logs (a transaction replaced or stuck at the fee cap,
//! an RPC endpoint failing over, a reorganization) reaches its operator. Its event stream
//! (`events`) goes to stdout and the API as before.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// The filter when `RUST_LOG` is not set: warnings and errors from every crate, but only
/// errors from gossipsub, which warns on every offer re-announced unchanged.
pub const DEFAULT_FILTER: &str = "warn,libp2p_gossipsub=error";

/// Installs the stderr logger once for the process; a second call, or one after another
/// logger was installed, does nothing. A `RUST_LOG` that does not parse falls back to
/// [`DEFAULT_FILTER`] with a line saying so.
pub fn init() {
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => match EnvFilter::try_new(&s) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some((s, e))),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .is_ok();
    if let (true, Some((s, e))) = (installed, bad) {
        tracing::warn!("RUST_LOG={s:?} does not parse ({e}); logging with {DEFAULT_FILTER:?}");
    }
}
