//! What a node does while it starts, step by step, for a progress display: opening the store
//! takes milliseconds, but unlocking a keystore (scrypt), reaching a remote RPC endpoint and
//! registering a provider (its stake's transactions waiting for confirmations) can each take
//! seconds to minutes on a real chain. `sietch node run` shows these steps on stderr.

use std::fmt;

/// One step of [`super::Node::start_reporting`], reported as it begins.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartStep {
    /// Opening the store in the data directory.
    OpeningStore,
    /// Unlocking the node's EVM key (a keystore's scrypt takes about a second).
    UnlockingKey,
    /// Connecting to the chain's RPC endpoint and checking the escrow and its token.
    ConnectingChain {
        /// The endpoint (as configured; it names no secret the config does not).
        rpc: String,
    },
    /// Starting the peer-to-peer network.
    StartingNetwork,
    /// Rebuilding the buyer's lanes from the chain and the store.
    RestoringLanes,
    /// Registering the provider: its node key bound to its account, its stake, its offer
    /// (transactions that wait for the configured confirmations).
    Registering {
        /// Confirmations each transaction waits for.
        confirmations: u64,
    },
    /// Starting the HTTP API.
    StartingApi,
    /// Started: the roles run and the API answers (the last step).
    Ready,
}

impl fmt::Display for StartStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OpeningStore => f.write_str("opening the store"),
            Self::UnlockingKey => f.write_str("unlocking the EVM key"),
            Self::ConnectingChain { rpc } => {
                write!(f, "connecting to the chain at {rpc} (escrow, token)")
            }
            Self::StartingNetwork => f.write_str("starting the peer-to-peer network"),
            Self::RestoringLanes => f.write_str("restoring the buyer's channels from the chain"),
            Self::Registering { confirmations } => write!(
                f,
                "registering as a provider: key, stake and offer on chain ({confirmations} confirmations per transaction)"
            ),
            Self::StartingApi => f.write_str("starting the HTTP API"),
            Self::Ready => f.write_str("started"),
        }
    }
}

/// An RPC endpoint as it may be shown: scheme, host and port only (`chain::rpc::label`), with
/// `/…` where more was configured. Hosted endpoints carry an API key in their path, query or
/// user part (`https://x.example/v2/KEY`), which is a secret.
pub(crate) fn endpoint(url: &str) -> String {
    match url.parse::<alloy::transports::http::reqwest::Url>() {
        Ok(u) => {
            let shown = crate::chain::rpc::label(&u);
            let more = !matches!(u.path(), "" | "/")
                || u.query().is_some()
                || u.fragment().is_some()
                || !u.username().is_empty()
                || u.password().is_some();
            if more { format!("{shown}/…") } else { shown }
        }
        Err(_) => "(an RPC URL that does not parse)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_read_as_what_the_node_is_waiting_for() {
        let rpc = StartStep::ConnectingChain {
            rpc: "http://127.0.0.1:8545".into(),
        };
        assert_eq!(
            rpc.to_string(),
            "connecting to the chain at http://127.0.0.1:8545 (escrow, token)"
        );
        assert_eq!(endpoint("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
        assert_eq!(
            endpoint("https://user:pw@base.example/v2/SECRETKEY?x=1"),
            "https://base.example:443/…"
        );
        assert_eq!(endpoint("https://rpc.example/"), "https://rpc.example:443");
        assert!(
            StartStep::Registering { confirmations: 3 }
                .to_string()
                .contains("3 confirmations")
        );
    }
}
