//! The escrow contract on an EVM chain, as a node uses it: reads (accounts, channels,
//! tickets), transactions signed with the node's EVM key, and a watcher that follows the
//! escrow's events from the chain cursor kept in the store, so that a restarted node misses
//! none.
//!
//! Works against any EVM JSON-RPC endpoint (`rpc_url` in the node's configuration, with
//! `[transactions] fallback_rpc_urls` tried in turn when it fails: `rpc`); the devnet and the
//! tests use anvil. Transactions (`txs`, `sender`, `fees`; `docs/transactions.md`) are sent
//! one at a time per node with EIP-1559 fees under a cap, kept in the store before they are
//! sent, watched until mined and replaced with the same nonce when they sit behind a fee
//! spike; the nonce is chosen after the chain's pending count and the node's own pending
//! transactions, so another sender on the account or a restart costs no transaction.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, TransactionReceipt};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolEvent, SolEventInterface};
use sietch_contracts::SietchEscrow::{self, SietchEscrowEvents, SietchEscrowInstance};
use sietch_contracts::{EscrowError, MockToken};
use sietch_market::{Domain, Offer, PublicKey, ResultCommitment, Ticket, Voucher, registration};
use sietch_verifier::{escrow_result, escrow_ticket, escrow_voucher};
use tokio::sync::mpsc;

use crate::config::TxConfig;
use crate::net::{Registry, RegistryError};
use crate::store::{EvmSigned, Store, StoreError};

mod fees;
pub mod finality;
mod operator;
pub(crate) mod rpc;
mod sender;
mod signers;
pub mod token;
mod txs;
mod watch;

pub use crate::store::pending_txs::PendingTx;
pub use operator::OperatorError;
pub use signers::{MAX_OPERATORS, OPERATOR_REFRESH};

/// Blocks asked per `eth_getLogs` call.
const LOG_RANGE: u64 = 2_000;

/// What can go wrong talking to the chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The RPC endpoint is not a URL.
    #[error("the RPC URL {0:?} is not a URL")]
    BadUrl(String),
    /// The endpoint could not be reached or answered with an error.
    #[error("the chain's RPC endpoint: {0}")]
    Rpc(String),
    /// The endpoint serves another chain than the configured one.
    #[error("the RPC endpoint serves chain {got}, the configuration says {expected}")]
    WrongChain {
        /// Configured.
        expected: u64,
        /// Served.
        got: u64,
    },
    /// No escrow at the configured address.
    #[error("no contract at the escrow address {0}")]
    NoEscrow(Address),
    /// The escrow refused a call, or a transaction failed (boxed: every chain call's
    /// `Result` carries this type through the buyer and the provider).
    #[error(transparent)]
    Escrow(Box<EscrowError>),
    /// A receipt lacked the event the call must emit.
    #[error("the receipt of {0} lacks its event")]
    MissingEvent(&'static str),
    /// The `[transactions]` settings are invalid.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// A transaction could not be signed.
    #[error("signing a transaction: {0}")]
    Sign(String),
    /// The pool refused a transaction outright (not for its nonce or fees).
    #[error("the chain refused the transaction with nonce {nonce}: {why}")]
    Rejected {
        /// Its nonce.
        nonce: u64,
        /// The pool's reason.
        why: String,
    },
    /// A transaction waits at the fee cap and the base fee is above it: it stays pending
    /// (kept, watched, and mined when the base fee falls under its offer), and the node sends
    /// nothing after it until then. Raise `[transactions] max_fee_per_gas_wei` to get it in.
    #[error(
        "transaction {hash} (nonce {nonce}) is stuck: it offers {max_fee} wei per gas, the          cap, and the base fee is {base_fee}"
    )]
    FeeCapReached {
        /// Its nonce.
        nonce: u64,
        /// Its latest version.
        hash: B256,
        /// What it offers per gas.
        max_fee: u128,
        /// The next block's base fee.
        base_fee: u128,
    },
    /// Another transaction of this account (another program using the key) was mined with
    /// this transaction's nonce: the call never ran.
    #[error("another transaction of this account took nonce {nonce} ({purpose} never ran)")]
    Superseded {
        /// The nonce.
        nonce: u64,
        /// What the transaction was for.
        purpose: String,
    },
    /// Too many transactions of this node are pending (stuck at the fee cap).
    #[error("{0} transactions of this node are pending already")]
    TooManyPending(usize),
    /// Keeping a pending transaction in the store failed.
    #[error("keeping a pending transaction: {0}")]
    Store(Box<StoreError>),
    /// The store's blocking task was lost.
    #[error("the store's task ended")]
    StoreGone,
    /// The node operates for a cold owner and cannot do this for it (boxed: it is rare).
    #[error(transparent)]
    Owner(Box<OperatorError>),
    /// The escrow's token is no ERC-20 this node can settle in.
    #[error(transparent)]
    Token(#[from] token::TokenError),
}

impl From<EscrowError> for ChainError {
    fn from(e: EscrowError) -> Self {
        Self::Escrow(Box::new(e))
    }
}

impl From<OperatorError> for ChainError {
    fn from(e: OperatorError) -> Self {
        Self::Owner(Box::new(e))
    }
}

impl From<StoreError> for ChainError {
    fn from(e: StoreError) -> Self {
        Self::Store(Box::new(e))
    }
}

fn rpc(e: impl std::fmt::Display) -> ChainError {
    ChainError::Rpc(e.to_string())
}

/// A channel as the escrow holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelView {
    /// Who funds it.
    pub buyer: Address,
    /// Who is paid from it.
    pub provider: Address,
    /// 0 none, 1 open, 2 closing, 3 closed.
    pub state: u8,
    /// Unix time a started close can be finalized.
    pub closes_at: u64,
    /// Deposited so far.
    pub deposit: u128,
    /// Paid so far (the cursor on the cumulative line).
    pub paid: u128,
    /// Held for claimed, unsettled tickets.
    pub reserved: u128,
}

impl ChannelView {
    /// Open (not closing or closed).
    pub fn is_open(&self) -> bool {
        self.state == 1
    }

    /// What the channel can still pay: deposit less paid and reserved.
    pub fn available(&self) -> u128 {
        self.deposit
            .saturating_sub(self.paid)
            .saturating_sub(self.reserved)
    }
}

/// A registered account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountView {
    /// Its ed25519 node key (zero if never registered).
    pub node_key: [u8; 32],
    /// Active stake.
    pub stake: u128,
    /// Stake on its way out (still slashable).
    pub unstaking: u128,
}

/// An escrow event the node reacts to, with the block it is in.
#[derive(Debug, Clone)]
pub struct ChainEvent {
    /// Block number.
    pub block: u64,
    /// The event.
    pub event: SietchEscrowEvents,
}

/// The node's connection to the escrow. Cheap to clone.
#[derive(Clone)]
pub struct Chain {
    inner: Arc<Inner>,
}

struct Inner {
    provider: DynProvider,
    escrow: SietchEscrowInstance<DynProvider>,
    token: Address,
    /// The token's decimals and symbol, read once at connection.
    token_info: token::TokenInfo,
    /// What the token's read had to assume (no `decimals()`, no symbol).
    token_warnings: Vec<String>,
    /// The node's EVM key's address: what signs (`Chain::signer`).
    me: Address,
    /// The cold owner the node operates for (`[chain] owner`), once checked on chain.
    owner: std::sync::OnceLock<Address>,
    chain_id: u64,
    /// One transaction at a time (and the watch of the pending ones before it).
    sending: tokio::sync::Mutex<()>,
    /// Fees, nonces and the pending transactions.
    sender: sender::Sender,
    /// Registered accounts by EVM address, from the events seen.
    accounts: RwLock<HashMap<Address, AccountView>>,
    /// The escrow's `minStake`: a provider with less cannot be paid through a channel.
    min_stake: u128,
    /// Accounts' operators as read, for checking who signed a result (`signers`).
    operators: signers::Operators,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("escrow", self.inner.escrow.address())
            .field("chain_id", &self.inner.chain_id)
            .field("me", &self.inner.me)
            .finish_non_exhaustive()
    }
}

impl Chain {
    /// Connects to `rpc_url` with the default `[transactions]` settings and no store (pending
    /// transactions are kept in memory only): see [`Self::connect_with`].
    pub async fn connect(
        rpc_url: &str,
        chain_id: u64,
        escrow: Address,
        key: &PrivateKeySigner,
    ) -> Result<Self, ChainError> {
        Self::connect_with(rpc_url, chain_id, escrow, key, &TxConfig::default(), None).await
    }

    /// Connects to `rpc_url` (and `tx.fallback_rpc_urls` when it fails), checks the chain id
    /// and that the escrow exists, and reads its token. Transactions are signed with `key`
    /// and follow `tx`; with a `store` they are kept there before they are sent, and those
    /// found there (sent by an earlier run) are watched again from now on, before any new
    /// one is sent.
    pub async fn connect_with(
        rpc_url: &str,
        chain_id: u64,
        escrow: Address,
        key: &PrivateKeySigner,
        tx: &TxConfig,
        store: Option<Arc<Store>>,
    ) -> Result<Self, ChainError> {
        tx.check()?;
        let mut urls = vec![rpc_url.to_owned()];
        urls.extend(tx.fallback_rpc_urls.iter().cloned());
        let local = alloy::transports::utils::guess_local_url(rpc_url);
        let transport = rpc::Failover::new(
            &urls,
            rpc::Policy {
                timeout: tx.rpc_timeout(),
                retries: tx.rpc_retries,
                backoff: tx.rpc_backoff(),
            },
        )?;
        let client = alloy::rpc::client::RpcClient::new(transport.clone(), local);
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(EthereumWallet::from(key.clone()))
            .connect_client(client)
            .erased();
        let got = provider.get_chain_id().await.map_err(rpc)?;
        if got != chain_id {
            return Err(ChainError::WrongChain {
                expected: chain_id,
                got,
            });
        }
        if provider.get_code_at(escrow).await.map_err(rpc)?.is_empty() {
            return Err(ChainError::NoEscrow(escrow));
        }
        let escrow = SietchEscrow::new(escrow, provider.clone());
        let token = escrow
            .token()
            .call()
            .await
            .map_err(EscrowError::from_contract)?;
        let (token_info, token_warnings) =
            token::TokenInfo::read(&provider, token, *escrow.address()).await?;
        let min_stake = escrow
            .minStake()
            .call()
            .await
            .map_err(EscrowError::from_contract)?;
        let me = key.address();
        let found = match &store {
            Some(s) => {
                let s = s.clone();
                crate::store::off_async(&s, move |s| {
                    s.pending_txs(chain_id, &me, sender::MAX_PENDING)
                })
                .await
                .ok_or(ChainError::StoreGone)??
            }
            None => Vec::new(),
        };
        let resumed = found.len();
        let chain = Self {
            inner: Arc::new(Inner {
                provider,
                escrow,
                token,
                token_info,
                token_warnings,
                me,
                owner: std::sync::OnceLock::new(),
                chain_id,
                sending: tokio::sync::Mutex::new(()),
                sender: sender::Sender {
                    wallet: EthereumWallet::from(key.clone()),
                    cfg: tx.clone(),
                    store,
                    pending: std::sync::Mutex::new(
                        found.into_iter().map(|t| (t.nonce, t)).collect(),
                    ),
                },
                accounts: RwLock::new(HashMap::new()),
                min_stake,
                operators: signers::Operators::default(),
            }),
        };
        tracing::info!(
            endpoint = %transport.active(),
            endpoints = urls.len(),
            chain_id,
            account = %me,
            "connected to the chain"
        );
        if resumed > 0 {
            tracing::info!(
                resumed,
                "watching this node's transactions pending since its last run"
            );
            let c = chain.clone();
            tokio::spawn(async move {
                if let Err(e) = c.settle_pending().await {
                    tracing::error!("transactions pending since the last run: {e}");
                }
            });
        }
        Ok(chain)
    }

    /// The node's chain account: the cold owner it operates for (`[chain] owner`, see
    /// [`Chain::operate_for`]), else its EVM key's address. The registry entry, the channels'
    /// provider, whom vouchers and credits pay; [`Chain::signer`] signs.
    pub fn me(&self) -> Address {
        self.owner().unwrap_or(self.inner.me)
    }

    /// The escrow's address.
    pub fn escrow(&self) -> Address {
        *self.inner.escrow.address()
    }

    /// The settlement token.
    pub fn token(&self) -> Address {
        self.inner.token
    }

    /// The settlement token's address, decimals and symbol.
    pub fn token_info(&self) -> &token::TokenInfo {
        &self.inner.token_info
    }

    /// What reading the token had to assume, for the node to say at start.
    pub fn token_warnings(&self) -> &[String] {
        &self.inner.token_warnings
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.inner.chain_id
    }

    /// The EIP-712 domain of this escrow.
    pub fn domain(&self) -> Domain {
        Domain::new(self.inner.chain_id, self.escrow())
    }

    /// The escrow's bindings, for what this type does not wrap.
    pub fn contract(&self) -> &SietchEscrowInstance<DynProvider> {
        &self.inner.escrow
    }

    /// The JSON-RPC provider.
    pub fn provider(&self) -> &DynProvider {
        &self.inner.provider
    }

    // ---- reads ----

    /// A channel.
    pub async fn channel(&self, id: B256) -> Result<ChannelView, ChainError> {
        let c = self
            .inner
            .escrow
            .channels(id)
            .call()
            .await
            .map_err(EscrowError::from_contract)?;
        Ok(ChannelView {
            buyer: c.buyer,
            provider: c.provider,
            state: c.state,
            closes_at: c.closesAt,
            deposit: c.deposit,
            paid: c.paid,
            reserved: c.reserved.to::<u128>(),
        })
    }

    /// An account of the registry.
    pub async fn account(&self, who: Address) -> Result<AccountView, ChainError> {
        let a = self
            .inner
            .escrow
            .accounts(who)
            .call()
            .await
            .map_err(EscrowError::from_contract)?;
        Ok(AccountView {
            node_key: a.nodeKey.0,
            stake: a.stake,
            unstaking: a.unstaking,
        })
    }

    /// A claimed ticket.
    pub async fn ticket(&self, id: B256) -> Result<SietchEscrow::TicketRecord, ChainError> {
        self.inner
            .escrow
            .tickets(id)
            .call()
            .await
            .map_err(|e| EscrowError::from_contract(e).into())
    }

    /// Token balance of `who`.
    pub async fn balance(&self, who: Address) -> Result<u128, ChainError> {
        let token = MockToken::new(self.inner.token, self.inner.provider.clone());
        let b = token
            .balanceOf(who)
            .call()
            .await
            .map_err(EscrowError::from_contract)?;
        Ok(b.saturating_to())
    }

    /// What the escrow has credited to `who` (settled tickets, refunds, bonds, verifier pay)
    /// and `who` has not withdrawn yet.
    pub async fn credited(&self, who: Address) -> Result<u128, ChainError> {
        let b = self
            .inner
            .escrow
            .balances(who)
            .call()
            .await
            .map_err(EscrowError::from_contract)?;
        Ok(b.saturating_to())
    }

    /// The escrow's `minStake`: the least active stake a provider needs to be paid through a
    /// channel and to be drawn as a verifier.
    pub fn min_stake(&self) -> u128 {
        self.inner.min_stake
    }

    /// The escrow's smallest channel deposit.
    pub async fn min_deposit(&self) -> Result<u128, ChainError> {
        Ok(self
            .inner
            .escrow
            .minDeposit()
            .call()
            .await
            .map_err(EscrowError::from_contract)?)
    }

    /// The bond a dispute costs.
    pub async fn dispute_bond(&self) -> Result<u128, ChainError> {
        Ok(self
            .inner
            .escrow
            .disputeBond()
            .call()
            .await
            .map_err(EscrowError::from_contract)?)
    }

    /// Seconds the drawn verifiers have to vote in each round of a dispute.
    pub async fn verdict_window(&self) -> Result<u64, ChainError> {
        Ok(self
            .inner
            .escrow
            .verdictWindow()
            .call()
            .await
            .map_err(EscrowError::from_contract)?)
    }

    /// The current block's timestamp.
    pub async fn now(&self) -> Result<u64, ChainError> {
        let b = self
            .inner
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(rpc)?
            .ok_or_else(|| ChainError::Rpc("no latest block".into()))?;
        Ok(b.header.timestamp)
    }

    /// A registry view of accounts seen in events, for gossip validation.
    pub fn registry(&self) -> Arc<dyn Registry> {
        Arc::new(ChainRegistry(self.inner.clone()))
    }

    /// Every registered account seen in events (no RPC).
    pub fn accounts(&self) -> Vec<(Address, AccountView)> {
        self.inner
            .accounts
            .read()
            .map(|a| a.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }

    /// The account last seen for `who` in events (no RPC).
    pub fn known_account(&self, who: &Address) -> Option<AccountView> {
        self.inner.accounts.read().ok()?.get(who).copied()
    }
}

/// Gossip validation against the accounts seen on chain: an offer passes when its key is
/// registered (with a proof that verifies) for its EVM address, and that account holds at
/// least the escrow's `minStake` and at least the stake the offer states.
struct ChainRegistry(Arc<Inner>);

impl Registry for ChainRegistry {
    fn check(&self, offer: &Offer) -> Result<(), RegistryError> {
        let accounts = self
            .0
            .accounts
            .read()
            .map_err(|_| RegistryError::Unavailable)?;
        let Some(a) = accounts.get(&offer.evm_address) else {
            return Err(RegistryError::NotRegistered(offer.evm_address));
        };
        if a.node_key != offer.provider.0 {
            return Err(RegistryError::OtherKey(offer.evm_address));
        }
        if a.stake < self.0.min_stake {
            return Err(RegistryError::BelowMinimum {
                account: offer.evm_address,
                stake: a.stake,
                min: self.0.min_stake,
            });
        }
        if a.stake < offer.stake {
            return Err(RegistryError::BelowOffer {
                account: offer.evm_address,
                stake: a.stake,
                stated: offer.stake,
            });
        }
        Ok(())
    }
}

/// A ticket claimed on chain, challenge window running (`TicketRecord.state`).
pub const TICKET_CLAIMED: u8 = 1;
/// Disputed: waiting for its verifier draw.
pub const TICKET_DISPUTED: u8 = 2;
/// Verifiers drawn: waiting for their verdicts.
pub const TICKET_DRAWN: u8 = 3;
/// Paid out or refunded.
pub const TICKET_SETTLED: u8 = 4;

/// The verifiers actually drawn for a ticket: the first `drawn` of its three slots.
pub fn drawn(verifiers: &[Address; 3], drawn: u8) -> &[Address] {
    verifiers
        .get(..usize::from(drawn).min(3))
        .unwrap_or_default()
}

#[cfg(test)]
mod size {
    /// Every error of the node's chain calls travels in `Result`s through the buyer and the
    /// provider: keep it small (clippy's `result_large_err` is at 128 bytes).
    #[test]
    fn chain_error_is_small() {
        assert!(std::mem::size_of::<super::ChainError>() <= 96);
    }
}
