//! Why a node could not start.

use std::net::SocketAddr;
use std::path::PathBuf;

use alloy::signers::k256::ecdsa::Error as EvmKeyError;
use sietch_sandbox::SandboxError;

use crate::buyer::RestoreError;
use crate::chain::ChainError;
use crate::config::ConfigError;
use crate::keys::KeyError;
use crate::net::NetError;
use crate::store::StoreError;

/// Why [`Node::start`] (or [`run`]) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error("cannot open the node's store in {}", dir.display())]
    OpenStore {
        /// The data directory.
        dir: PathBuf,
        /// Why not.
        source: StoreError,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data directory has no node keys (`sietch init` was not run).
    #[error(
        "{} has no node keys: run `sietch init --data-dir {}` first",
        dir.display(),
        dir.display()
    )]
    NoKeys {
        /// The data directory.
        dir: PathBuf,
    },
    /// The EVM key could not be loaded: no keystore, a malformed one, no password or a
    /// wrong one.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The stored EVM key is not a valid key.
    #[error("the node's EVM key")]
    EvmKey(#[source] EvmKeyError),
    /// The keys have no EVM key.
    #[error("this node has no EVM key; run `sietch init` again with --force")]
    NoEvmKey,
    /// The chain could not be reached, or is not the one configured.
    #[error("connecting to the chain at {url}")]
    Chain {
        /// The RPC endpoint.
        url: String,
        /// Why not.
        source: ChainError,
    },
    /// The network could not start.
    #[error(transparent)]
    Network(#[from] NetError),
    /// The buyer's reputation table or tickets to dispute could not be read.
    #[error("reading the buyer's reputation table and tickets to dispute")]
    Buyer(#[source] StoreError),
    /// The buyer's lanes could not be restored.
    #[error("restoring the buyer's lanes")]
    RestoreLanes(#[source] RestoreError),
    /// The provider's sandbox could not be built.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The provider could not register its key or stake on chain.
    #[error(transparent)]
    Register(Box<dyn std::error::Error + Send + Sync>),
    /// The API token could not be read or made.
    #[error("the API token in {}", dir.display())]
    Token {
        /// The data directory.
        dir: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The HTTP API could not listen.
    #[error("the HTTP API cannot listen on {address}")]
    Api {
        /// The address configured.
        address: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
}
