//! The escrow contract on an EVM chain, as a node uses it: reads (accounts, channels,
//! tickets), transactions signed with the node's EVM key, and a watcher that follows the
//! escrow's events from the chain cursor kept in the store, so that a restarted node misses
//! none.
//!
//! Works against any EVM JSON-RPC endpoint (`rpc_url` in the node's configuration); the
//! devnet and the tests use anvil. Transactions are sent one at a time per node with the
//! nonce read from the chain each time: alloy's caching nonce filler leaves a gap when a call
//! is refused at estimation, which would stall every later transaction.

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
use sietch_contracts::{EscrowError, MockToken, send, send_pair};
use sietch_market::{Domain, Offer, PublicKey, ResultCommitment, Ticket, Voucher, registration};
use sietch_verifier::{escrow_result, escrow_ticket, escrow_voucher};
use tokio::sync::mpsc;

use crate::net::Registry;
use crate::store::{EvmSigned, Store};

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
    /// The escrow refused a call, or a transaction failed.
    #[error(transparent)]
    Escrow(#[from] EscrowError),
    /// A receipt lacked the event the call must emit.
    #[error("the receipt of {0} lacks its event")]
    MissingEvent(&'static str),
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
    me: Address,
    chain_id: u64,
    /// One transaction at a time: the nonce is read from the chain for each.
    sending: tokio::sync::Mutex<()>,
    /// Registered accounts by EVM address, from the events seen.
    accounts: RwLock<HashMap<Address, AccountView>>,
    /// The escrow's `minStake`: a provider with less cannot be paid through a channel.
    min_stake: u128,
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
    /// Connects to `rpc_url`, checks the chain id and that the escrow exists, and reads its
    /// token. Transactions are signed with `key`.
    pub async fn connect(
        rpc_url: &str,
        chain_id: u64,
        escrow: Address,
        key: &PrivateKeySigner,
    ) -> Result<Self, ChainError> {
        let url = rpc_url
            .parse()
            .map_err(|_| ChainError::BadUrl(rpc_url.to_owned()))?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(EthereumWallet::from(key.clone()))
            .connect_http(url)
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
        let min_stake = escrow
            .minStake()
            .call()
            .await
            .map_err(EscrowError::from_contract)?;
        Ok(Self {
            inner: Arc::new(Inner {
                provider,
                escrow,
                token,
                me: key.address(),
                chain_id,
                sending: tokio::sync::Mutex::new(()),
                accounts: RwLock::new(HashMap::new()),
                min_stake,
            }),
        })
    }

    /// The node's EVM address.
    pub fn me(&self) -> Address {
        self.inner.me
    }

    /// The escrow's address.
    pub fn escrow(&self) -> Address {
        *self.inner.escrow.address()
    }

    /// The settlement token.
    pub fn token(&self) -> Address {
        self.inner.token
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

    // ---- transactions ----

    async fn tx<D: alloy::contract::CallDecoder>(
        &self,
        call: alloy::contract::CallBuilder<&DynProvider, D>,
    ) -> Result<TransactionReceipt, ChainError> {
        let _one = self.inner.sending.lock().await;
        Ok(send(call).await?)
    }

    /// Approves `amount` for the escrow and sends `call`, with no other transaction of this
    /// node in between (another would spend or overwrite the allowance).
    async fn tx_paying<D: alloy::contract::CallDecoder>(
        &self,
        amount: u128,
        call: alloy::contract::CallBuilder<&DynProvider, D>,
    ) -> Result<TransactionReceipt, ChainError> {
        let token = MockToken::new(self.inner.token, &self.inner.provider);
        let _one = self.inner.sending.lock().await;
        // The approval and the call in one block where the node allows (half the wait).
        let (_, receipt) =
            send_pair(token.approve(self.escrow(), U256::from(amount)), call).await?;
        Ok(receipt)
    }

    /// Registers the node's ed25519 key for its EVM address, with the key's proof that it
    /// binds itself to this account (`sietch_market::registration`).
    pub async fn register(&self, key: &ed25519_dalek::SigningKey) -> Result<(), ChainError> {
        let public = PublicKey::of(key);
        let proof = registration::prove(key, self.chain_id(), self.escrow(), self.me());
        let escrow = &self.inner.escrow;
        self.tx(escrow.register(B256::from(public.0), Bytes::copy_from_slice(&proof)))
            .await?;
        Ok(())
    }

    /// Whether a `Registered` event's proof binds its node key to its account here: a
    /// registration without one binds nothing (someone else's key, most likely).
    pub fn proven(&self, e: &SietchEscrow::Registered) -> bool {
        registration::verify(
            &PublicKey(e.nodeKey.0),
            &e.proof,
            self.chain_id(),
            self.escrow(),
            e.account,
        )
    }

    /// Stakes `amount` (approving it first).
    pub async fn stake(&self, amount: u128) -> Result<(), ChainError> {
        let escrow = &self.inner.escrow;
        self.tx_paying(amount, escrow.stake(U256::from(amount)))
            .await?;
        Ok(())
    }

    /// Opens a channel to `provider` with `amount` (approving it first); its id.
    pub async fn open_channel(&self, provider: Address, amount: u128) -> Result<B256, ChainError> {
        let escrow = &self.inner.escrow;
        let receipt = self
            .tx_paying(amount, escrow.openChannel(provider, U256::from(amount)))
            .await?;
        receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| SietchEscrow::ChannelOpened::decode_log(&l.inner).ok())
            .map(|e| e.data.channelId)
            .ok_or(ChainError::MissingEvent("openChannel"))
    }

    /// Adds `amount` to a channel (approving it first).
    pub async fn top_up(&self, channel: B256, amount: u128) -> Result<(), ChainError> {
        let escrow = &self.inner.escrow;
        self.tx_paying(amount, escrow.topUp(channel, U256::from(amount)))
            .await?;
        Ok(())
    }

    /// Claims the latest voucher of each channel in one transaction.
    pub async fn claim_batch(
        &self,
        vouchers: &[EvmSigned<Voucher>],
    ) -> Result<TransactionReceipt, ChainError> {
        let mut vs = Vec::with_capacity(vouchers.len());
        let mut sigs = Vec::with_capacity(vouchers.len());
        for v in vouchers {
            vs.push(escrow_voucher(&v.message));
            sigs.push(Bytes::copy_from_slice(&v.signature));
        }
        let escrow = &self.inner.escrow;
        self.tx(escrow.claimBatch(vs, sigs)).await
    }

    /// Claims a ticket with the provider's result commitment (starts the challenge window).
    pub async fn claim_ticket(
        &self,
        ticket: &EvmSigned<Ticket>,
        result: &EvmSigned<ResultCommitment>,
    ) -> Result<TransactionReceipt, ChainError> {
        let escrow = &self.inner.escrow;
        self.tx(escrow.claimTicket(
            escrow_ticket(&ticket.message),
            Bytes::copy_from_slice(&ticket.signature),
            escrow_result(&result.message),
            Bytes::copy_from_slice(&result.signature),
        ))
        .await
    }

    /// Pays a claimed ticket whose challenge window passed undisputed.
    pub async fn finalize_ticket(&self, id: B256) -> Result<(), ChainError> {
        let escrow = &self.inner.escrow;
        self.tx(escrow.finalizeTicket(id)).await?;
        Ok(())
    }

    /// Disputes a claimed ticket, posting the bond (approving it first): its result, or
    /// (`undelivered`) that the result never arrived.
    pub async fn dispute(&self, id: B256, undelivered: bool) -> Result<(), ChainError> {
        let bond = self.dispute_bond().await?;
        let escrow = &self.inner.escrow;
        if undelivered {
            self.tx_paying(bond, escrow.disputeUndelivered(id)).await?;
        } else {
            self.tx_paying(bond, escrow.dispute(id)).await?;
        }
        Ok(())
    }

    /// Draws a disputed ticket's verifiers (anyone may, from the block after the dispute).
    pub async fn draw_verifiers(&self, id: B256) -> Result<(), ChainError> {
        let escrow = &self.inner.escrow;
        self.tx(escrow.drawVerifiers(id)).await?;
        Ok(())
    }

    /// Posts this node's verdict: its own signed result commitment for the disputed job.
    pub async fn submit_verdict(
        &self,
        id: B256,
        result: &EvmSigned<ResultCommitment>,
    ) -> Result<(), ChainError> {
        let escrow = &self.inner.escrow;
        self.tx(escrow.submitVerdict(
            id,
            escrow_result(&result.message),
            Bytes::copy_from_slice(&result.signature),
        ))
        .await?;
        Ok(())
    }

    /// Settles a dispute once a majority voted, or after the verdict window.
    pub async fn resolve(&self, id: B256) -> Result<(), ChainError> {
        let escrow = &self.inner.escrow;
        self.tx(escrow.resolve(id)).await?;
        Ok(())
    }

    /// Withdraws everything the escrow credited to this node's account, if anything.
    pub async fn withdraw(&self) -> Result<u128, ChainError> {
        let owed = self.credited(self.me()).await?;
        if owed == 0 {
            return Ok(0);
        }
        let escrow = &self.inner.escrow;
        self.tx(escrow.withdraw()).await?;
        Ok(owed)
    }

    /// Drives a dispute to its end, for as long as `limit`: draws the verifiers whenever the
    /// draw is due (the escrow re-arms a draw whose seed block lies in an earlier epoch or
    /// aged out, and one that finds fewer than three verifiers), and resolves once a round's
    /// verdict window is over (a round without a majority is drawn again). Anyone may make
    /// these calls; both parties of a dispute do, so neither can stall it.
    pub async fn drive_dispute(&self, id: B256, every: Duration, limit: Duration) {
        let until = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < until {
            // While the verifiers have time, wake toward the deadline (at most every 30 s)
            // rather than polling the chain each `every`.
            let mut pause = every;
            let step = match self.ticket(id).await {
                Ok(t) if t.state == TICKET_DISPUTED => match self.block_number().await {
                    Ok(head) if t.drawBlock < head => self.draw_verifiers(id).await,
                    _ => Ok(()),
                },
                Ok(t) if t.state == TICKET_DRAWN => match self.now().await {
                    Ok(now) if t.deadline < now => self.resolve(id).await,
                    Ok(now) => {
                        let left = Duration::from_secs(t.deadline - now + 1);
                        pause = left.min(Duration::from_secs(30)).max(every);
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Ok(_) => return,
                Err(e) => Err(e),
            };
            if let Err(e) = step {
                tracing::debug!("moving the dispute of {id} on: {e}");
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// The latest block's number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.inner.provider.get_block_number().await.map_err(rpc)
    }

    /// Starts closing a channel (its buyer or provider).
    pub async fn start_close(&self, channel: B256) -> Result<(), ChainError> {
        let escrow = &self.inner.escrow;
        self.tx(escrow.startClose(channel)).await?;
        Ok(())
    }

    /// Returns what is left of a closed channel to its buyer, after the close delay.
    pub async fn finalize_close(&self, channel: B256) -> Result<(), ChainError> {
        let escrow = &self.inner.escrow;
        self.tx(escrow.finalizeClose(channel)).await?;
        Ok(())
    }

    // ---- events ----

    /// The escrow's events in blocks `from..=to`, in order.
    pub async fn events(&self, from: u64, to: u64) -> Result<Vec<ChainEvent>, ChainError> {
        let filter = Filter::new()
            .address(self.escrow())
            .from_block(from)
            .to_block(to);
        let logs = self.inner.provider.get_logs(&filter).await.map_err(rpc)?;
        Ok(logs
            .iter()
            .filter_map(|l| {
                let block = l.block_number?;
                let event = SietchEscrowEvents::decode_log(&l.inner).ok()?.data;
                Some(ChainEvent { block, event })
            })
            .collect())
    }

    /// Keeps the account index current from an event.
    fn index(&self, event: &SietchEscrowEvents) {
        let Ok(mut accounts) = self.inner.accounts.write() else {
            return;
        };
        match event {
            SietchEscrowEvents::Registered(e) => {
                // An unproven key binds nothing: the account counts as unregistered.
                accounts.entry(e.account).or_default().node_key =
                    if self.proven(e) { e.nodeKey.0 } else { [0; 32] };
            }
            SietchEscrowEvents::Staked(e) => {
                accounts.entry(e.account).or_default().stake = e.total.saturating_to();
            }
            SietchEscrowEvents::UnstakeRequested(e) => {
                let a = accounts.entry(e.account).or_default();
                a.stake = a.stake.saturating_sub(e.amount.saturating_to());
                a.unstaking = e.unstaking.saturating_to();
            }
            SietchEscrowEvents::Unstaked(e) => {
                accounts.entry(e.account).or_default().unstaking = 0;
            }
            SietchEscrowEvents::Slashed(e) => {
                // What stays is held for the provider's other open tickets' disputes.
                let a = accounts.entry(e.provider).or_default();
                a.stake = 0;
                a.unstaking = e.kept.saturating_to();
            }
            SietchEscrowEvents::VerifierPenalized(e) => {
                // Taken from the active stake first (the escrow's order).
                let a = accounts.entry(e.verifier).or_default();
                let amount: u128 = e.amount.saturating_to();
                let from_stake = amount.min(a.stake);
                a.stake -= from_stake;
                a.unstaking = a.unstaking.saturating_sub(amount - from_stake);
            }
            _ => {}
        }
    }

    /// Follows the escrow's events until `stop`: rebuilds the account index from
    /// `index_from`, then sends every event after the stored chain cursor to `out`, moving
    /// the cursor past a block once all its events were taken. Polls every `poll`.
    pub async fn watch(
        self,
        store: Arc<Store>,
        index_from: u64,
        poll: Duration,
        out: mpsc::Sender<ChainEvent>,
    ) -> Result<(), ChainError> {
        let chain_id = self.inner.chain_id;
        let cursor = store
            .chain_cursor(chain_id)
            .map_err(|e| ChainError::Rpc(format!("reading the chain cursor: {e}")))?;
        // Blocks up to the cursor: index only (their events were handled before a restart).
        let mut next = index_from;
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let head = match self.inner.provider.get_block_number().await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!("chain: cannot read the head: {e}");
                    continue;
                }
            };
            while next <= head {
                let to = head.min(next + LOG_RANGE - 1);
                let events = match self.events(next, to).await {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!("chain: cannot read events {next}..={to}: {e}");
                        break;
                    }
                };
                for ev in events {
                    self.index(&ev.event);
                    if cursor.is_none_or(|c| ev.block > c) && out.send(ev).await.is_err() {
                        return Ok(());
                    }
                }
                if cursor.is_none_or(|c| to > c)
                    && let Err(e) = store.set_chain_cursor(chain_id, to)
                {
                    tracing::warn!("chain: cannot store the cursor: {e}");
                }
                next = to + 1;
            }
        }
    }
}

/// Gossip validation against the accounts seen on chain: an offer passes when its key is
/// registered (with a proof that verifies) for its EVM address, and that account holds at
/// least the escrow's `minStake` and at least the stake the offer states.
struct ChainRegistry(Arc<Inner>);

impl Registry for ChainRegistry {
    fn check(&self, offer: &Offer) -> Result<(), String> {
        let accounts = self
            .0
            .accounts
            .read()
            .map_err(|_| "registry unavailable".to_owned())?;
        let Some(a) = accounts.get(&offer.evm_address) else {
            return Err(format!("{} is not registered", offer.evm_address));
        };
        if a.node_key != offer.provider.0 {
            return Err(format!("{} registered another node key", offer.evm_address));
        }
        if a.stake < self.0.min_stake {
            return Err(format!(
                "{} stakes {}, below the escrow's minimum of {}",
                offer.evm_address, a.stake, self.0.min_stake
            ));
        }
        if a.stake < offer.stake {
            return Err(format!(
                "{} stakes {}, the offer states {}",
                offer.evm_address, a.stake, offer.stake
            ));
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
