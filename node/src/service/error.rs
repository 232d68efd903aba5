//! Why a node could not start.

use std::net::SocketAddr;
use std::path::PathBuf;

use alloy::signers::k256::ecdsa::Error as EvmKeyError;
use sietch_sandbox::SandboxError;

use crate::buyer::RestoreError;
use crate::chain::ChainError;
use crate::chain::token::TokenError;
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
    /// The RPC endpoint cannot be reached, or does not answer as an Ethereum JSON-RPC
    /// endpoint.
    #[error(
        "the chain's RPC endpoint {url} does not answer as an Ethereum JSON-RPC endpoint \
         ({why}): check `rpc_url` in the configuration (and that the chain's node behind it \
         is up); nothing was sent"
    )]
    RpcUnreachable {
        /// The RPC endpoint.
        url: String,
        /// What the endpoint answered, or why it could not be reached.
        why: String,
    },
    /// The RPC endpoint serves another chain than the configured `chain_id`.
    #[error(
        "the RPC endpoint {url} serves chain {got}, but the configuration says chain_id = \
         {expected}: point `rpc_url` at an endpoint of chain {expected}, or set chain_id = \
         {got} if that is the chain you mean; nothing was sent"
    )]
    WrongChain {
        /// The RPC endpoint.
        url: String,
        /// `chain_id` in the configuration.
        expected: u64,
        /// The chain the endpoint serves.
        got: u64,
    },
    /// No contract at the configured escrow address.
    #[error(
        "there is no contract at the escrow address {escrow} on chain {chain_id}: check \
         `escrow` in the configuration (`sietch escrow deploy` prints the lines to use); \
         nothing was sent"
    )]
    NoEscrow {
        /// `escrow` in the configuration.
        escrow: sietch_market::Address,
        /// The chain.
        chain_id: u64,
    },
    /// The contract at the escrow address does not answer as the escrow does.
    #[error(
        "the contract at {escrow} is not a Sietch escrow (its `token()` read fails: {why}): \
         check `escrow` in the configuration; nothing was sent"
    )]
    NotEscrow {
        /// `escrow` in the configuration.
        escrow: sietch_market::Address,
        /// What the escrow's read answered.
        why: String,
    },
    /// The escrow settles in a token this node refuses (no ERC-20, or unreadable).
    #[error(
        "the escrow {escrow} settles in a token this node cannot use: {source}; deploy an \
         escrow over an ERC-20 without fees on transfer (`sietch escrow deploy --token`); \
         nothing was sent"
    )]
    TokenRefused {
        /// `escrow` in the configuration.
        escrow: sietch_market::Address,
        /// What is wrong with the token.
        source: TokenError,
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

impl StartError {
    /// What connecting to the chain of `config` at `url` failed with, as the start-up error
    /// that names the setting to fix.
    pub(crate) fn chain(url: &str, config: &crate::config::NodeConfig, e: ChainError) -> Self {
        let (chain_id, escrow) = (config.chain_id, config.escrow_address().unwrap_or_default());
        // Shown without its path, query or user part: a hosted endpoint's API key is there.
        let shown = super::steps::endpoint(url);
        let hide = |text: String| match url.parse::<alloy::transports::http::reqwest::Url>() {
            Ok(u) => crate::chain::rpc::redact(&text, &u),
            Err(_) => text,
        };
        let url = shown;
        match e {
            ChainError::Rpc(why) => Self::RpcUnreachable {
                url,
                why: hide(why),
            },
            ChainError::WrongChain { expected, got } => Self::WrongChain { url, expected, got },
            ChainError::NoEscrow(escrow) => Self::NoEscrow { escrow, chain_id },
            ChainError::Escrow(e) => Self::NotEscrow {
                escrow,
                why: e.to_string(),
            },
            ChainError::Token(source) => Self::TokenRefused { escrow, source },
            source => Self::Chain { url, source },
        }
    }
}
