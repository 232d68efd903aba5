//! The node's transactions from signing to receipt (`docs/transactions.md`): EIP-1559 fees
//! under a cap, the nonce chosen against the chain's pending count and the node's own pending
//! transactions, each kept (in the store when the node has one) before it is sent, watched
//! until one of its versions is mined, sent again when a pool dropped it, replaced with the
//! same nonce and higher fees when it sits too long, and a mined revert decoded.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy::eips::BlockId;
use alloy::network::eip2718::Encodable2718;
use alloy::network::{Ethereum, NetworkTransactionBuilder, TransactionBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::transports::TransportError;

use super::fees::{self, Fees};
use super::*;
use crate::config::TxConfig;
use crate::store::pending_txs::{MAX_TX_PURPOSE, MAX_TX_VERSIONS, PendingTx};

/// Most transactions of this node pending at once (sent, not yet seen mined).
pub(super) const MAX_PENDING: usize = 16;
/// Most times a new transaction is signed again before it is sent: its nonce taken by
/// another sender, or its fee cap under a base fee that jumped (doubled each time).
const NONCE_TRIES: usize = 8;
/// Most times a call whose nonce another transaction took is sent again.
const RESENDS: usize = 3;
/// Gas headroom over the estimate, in percent: the state can change between the estimate
/// and the block (unused gas is not paid).
const GAS_HEADROOM_PERCENT: u64 = 20;

/// The sending side's state.
pub(super) struct Sender {
    pub(super) wallet: EthereumWallet,
    pub(super) cfg: TxConfig,
    pub(super) store: Option<Arc<Store>>,
    /// This node's pending transactions by nonce (the store's rows, when it has a store).
    pub(super) pending: Mutex<BTreeMap<u64, PendingTx>>,
}

/// What a pool said to a signed transaction.
enum Broadcast {
    /// Taken (or already known: the same bytes were sent before).
    Sent,
    /// The nonce is used already.
    NonceTooLow,
    /// Another transaction with this nonce sits in the pool with fees this one does not beat.
    Underpriced,
    /// Refused for another reason.
    Rejected(String),
    /// No endpoint answered: it may or may not have arrived.
    Unknown(TransportError),
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn classify(e: TransportError) -> Broadcast {
    let Some(resp) = e.as_error_resp() else {
        return Broadcast::Unknown(e);
    };
    let m = resp.message.to_lowercase();
    if m.contains("already known")
        || m.contains("already imported")
        || m.contains("known transaction")
        || m.contains("already exists")
    {
        Broadcast::Sent
    } else if m.contains("nonce too low") || m.contains("nonce has already been used") {
        Broadcast::NonceTooLow
    } else if m.contains("underpriced") || m.contains("replacement") {
        Broadcast::Underpriced
    } else {
        Broadcast::Rejected(resp.message.to_string())
    }
}

impl Chain {
    /// This node's transactions sent and not yet seen mined, by nonce.
    pub fn pending_transactions(&self) -> Vec<PendingTx> {
        self.inner
            .sender
            .pending
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Watches this node's pending transactions (those found at start among them) until each
    /// is mined or its nonce went to another transaction; each is replaced as it waits. A
    /// transaction stuck at the fee cap ends the wait with [`ChainError::FeeCapReached`],
    /// still pending. Transactions are sent one at a time, so a new one waits for this.
    pub async fn settle_pending(&self) -> Result<(), ChainError> {
        let _one = self.inner.sending.lock().await;
        self.settle_earlier().await
    }

    /// Settles every pending transaction, oldest first, none of which a caller waits for:
    /// one whose nonce went to another transaction is not sent again (whoever wanted it
    /// lost track of it in a restart, and acts again on what the chain shows).
    pub(super) async fn settle_earlier(&self) -> Result<(), ChainError> {
        for tx in self.pending_transactions() {
            match self.settle(tx).await {
                Ok(_) => {}
                Err(ChainError::Superseded { nonce, purpose }) => {
                    tracing::warn!(
                        nonce,
                        %purpose,
                        "an earlier transaction's nonce went to another transaction of this \
                         account; not sent again"
                    );
                }
                Err(ChainError::Escrow(e)) => {
                    tracing::warn!("an earlier transaction of this node failed: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends a call and waits until it is mined: its receipt, or the escrow's decoded error
    /// (refused at estimation, or mined and reverted). A call whose nonce another sender's
    /// transaction took is sent again with a new nonce (it never ran).
    pub(super) async fn transact(
        &self,
        purpose: &str,
        to: Address,
        input: Bytes,
    ) -> Result<TransactionReceipt, ChainError> {
        let mut resends = 0;
        loop {
            let tx = self.send_new(purpose, to, input.clone(), None).await?;
            match self.settle(tx).await {
                Err(ChainError::Superseded { nonce, purpose }) if resends < RESENDS => {
                    resends += 1;
                    tracing::warn!(
                        nonce,
                        %purpose,
                        "another transaction of this account took the nonce; sending the call \
                         again with a new one"
                    );
                }
                other => return other,
            }
        }
    }

    /// The next block's base fee (`eth_feeHistory`, else the latest block's).
    async fn next_base_fee(&self) -> Result<u128, ChainError> {
        let p = &self.inner.provider;
        match p
            .get_fee_history(1, alloy::eips::BlockNumberOrTag::Latest, &[])
            .await
        {
            Ok(h) => {
                if let Some(b) = h.next_block_base_fee() {
                    return Ok(b);
                }
            }
            Err(e) => tracing::debug!("eth_feeHistory: {e}; reading the latest block"),
        }
        let b = p
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(rpc)?
            .ok_or_else(|| ChainError::Rpc("no latest block".into()))?;
        match b.header.base_fee_per_gas {
            Some(f) => Ok(u128::from(f)),
            None => Ok(p.get_gas_price().await.map_err(rpc)?),
        }
    }

    /// The gas `input` to `to` needs from this account, with headroom; a refusal is the
    /// escrow's decoded error. `pending`: estimated against the pending state (after this
    /// node's own transactions still in the pool).
    pub(super) async fn estimate(
        &self,
        to: Address,
        input: &Bytes,
        pending: bool,
    ) -> Result<u64, ChainError> {
        let req = TransactionRequest::default()
            .with_from(self.signer())
            .with_to(to)
            .with_input(input.clone());
        let call = self.inner.provider.estimate_gas(req);
        let call = if pending {
            call.block(BlockId::pending())
        } else {
            call
        };
        let gas = call
            .await
            .map_err(|e| EscrowError::from_contract(alloy::contract::Error::TransportError(e)))?;
        Ok(gas.saturating_add(gas.saturating_mul(GAS_HEADROOM_PERCENT) / 100))
    }

    /// The nonce of this account's next transaction: after every transaction the chain's pool
    /// holds (another program's included) and after this node's own pending ones (which an
    /// endpoint that does not see them would forget).
    async fn next_nonce(&self) -> Result<u64, ChainError> {
        let chain = self
            .inner
            .provider
            .get_transaction_count(self.signer())
            .pending()
            .await
            .map_err(rpc)?;
        let own = self.own_next_nonce();
        Ok(chain.max(own))
    }

    fn own_next_nonce(&self) -> u64 {
        self.inner
            .sender
            .pending
            .lock()
            .ok()
            .and_then(|p| p.keys().next_back().map(|n| n + 1))
            .unwrap_or(0)
    }

    /// Signs, keeps and broadcasts a new transaction calling `to` with `input`; `nonce`, or
    /// the next one. The gas is estimated (against the pending state when `nonce` is given:
    /// it follows a transaction of this node still in the pool).
    pub(super) async fn send_new(
        &self,
        purpose: &str,
        to: Address,
        input: Bytes,
        nonce: Option<u64>,
    ) -> Result<PendingTx, ChainError> {
        let full = self
            .inner
            .sender
            .pending
            .lock()
            .map(|p| p.len() >= MAX_PENDING)
            .unwrap_or(true);
        if full {
            return Err(ChainError::TooManyPending(MAX_PENDING));
        }
        let gas = self.estimate(to, &input, nonce.is_some()).await?;
        let cfg = &self.inner.sender.cfg;
        let mut offer = fees::first_offer(self.next_base_fee().await?, cfg);
        let mut nonce = match nonce {
            Some(n) => n,
            None => self.next_nonce().await?,
        };
        let mut purpose = purpose.to_owned();
        purpose.truncate(MAX_TX_PURPOSE);
        for _ in 0..NONCE_TRIES {
            let mut tx = PendingTx {
                purpose: purpose.clone(),
                nonce,
                to,
                input: input.to_vec(),
                gas,
                max_fee: offer.max_fee,
                priority_fee: offer.priority_fee,
                sent_at: unix_now(),
                hashes: Vec::new(),
            };
            let (raw, hash) = self.sign(&tx).await?;
            tx.hashes.push(hash);
            self.keep(&tx).await?;
            match self.broadcast(&raw, hash).await {
                Broadcast::Sent => {
                    tracing::info!(
                        %hash,
                        nonce,
                        %purpose,
                        max_fee = tx.max_fee,
                        priority_fee = tx.priority_fee,
                        "transaction sent"
                    );
                    return Ok(tx);
                }
                Broadcast::Unknown(e) => {
                    // Kept: the watch sends it again if no pool has it.
                    tracing::warn!(%hash, nonce, %purpose, "sending the transaction: {e}; watching for it");
                    return Ok(tx);
                }
                Broadcast::NonceTooLow | Broadcast::Underpriced => {
                    self.forget(nonce).await?;
                    let chain = self
                        .inner
                        .provider
                        .get_transaction_count(self.signer())
                        .pending()
                        .await
                        .map_err(rpc)?;
                    let next = chain.max(nonce + 1).max(self.own_next_nonce());
                    tracing::warn!(
                        nonce,
                        next,
                        %purpose,
                        "another transaction of this account holds the nonce; taking the next"
                    );
                    nonce = next;
                }
                // The base fee jumped past what the fee history foretold (a spike): offer
                // twice as much, up to the cap, rather than give up the call.
                Broadcast::Rejected(why)
                    if why.contains("less than block base fee")
                        && offer.max_fee < u128::from(cfg.max_fee_per_gas_wei) =>
                {
                    self.forget(nonce).await?;
                    let cap = u128::from(cfg.max_fee_per_gas_wei);
                    offer.max_fee = offer.max_fee.saturating_mul(2).min(cap);
                    tracing::warn!(
                        nonce,
                        %purpose,
                        max_fee = offer.max_fee,
                        "the base fee outgrew the transaction's fee cap: offering more"
                    );
                }
                Broadcast::Rejected(why) => {
                    self.forget(nonce).await?;
                    return Err(ChainError::Rejected { nonce, why });
                }
            }
        }
        Err(ChainError::Rejected {
            nonce,
            why: "every nonce tried was taken by another transaction of this account".into(),
        })
    }

    /// Watches `tx` until one of its versions is mined (its receipt, a revert decoded) or its
    /// nonce went to another transaction ([`ChainError::Superseded`]). Sends it again when the
    /// pool lost it, replaces it when it waited [`TxConfig::replace_after`], and stops with
    /// [`ChainError::FeeCapReached`] when there is nothing higher to offer (it stays pending).
    pub(super) async fn settle(&self, mut tx: PendingTx) -> Result<TransactionReceipt, ChainError> {
        let cfg = &self.inner.sender.cfg;
        let p = &self.inner.provider;
        let mut told = false;
        loop {
            let done = p
                .get_transaction_count(self.signer())
                .latest()
                .await
                .map_err(rpc)?;
            if done > tx.nonce {
                for h in tx.hashes.iter().rev() {
                    if let Some(r) = p.get_transaction_receipt(*h).await.map_err(rpc)? {
                        self.forget(tx.nonce).await?;
                        return self.checked(&tx, r).await;
                    }
                }
                self.forget(tx.nonce).await?;
                return Err(ChainError::Superseded {
                    nonce: tx.nonce,
                    purpose: tx.purpose,
                });
            }
            // A pool that lost it (evicted, restarted, or anvil dropping what the base fee
            // outgrew) gets the same bytes again: it is mined whenever the fees allow. A
            // version the pool refused (an underpriced replacement) leaves the one before in.
            if !self.in_a_pool(&tx).await? {
                let h = tx.latest().unwrap_or_default();
                let (raw, _) = self.sign(&tx).await?;
                if told {
                    tracing::debug!(%h, nonce = tx.nonce, "no pool holds the transaction; sending it again");
                } else {
                    tracing::warn!(%h, nonce = tx.nonce, purpose = %tx.purpose, "no pool holds the transaction; sending it again");
                    told = true;
                }
                if let Broadcast::Rejected(why) = self.broadcast(&raw, h).await {
                    tracing::debug!(%h, nonce = tx.nonce, "sending it again was refused: {why}");
                }
            }
            if unix_now().saturating_sub(tx.sent_at) >= cfg.replace_after_secs {
                // Higher fees cannot help a transaction behind a nonce nothing will fill.
                if done < tx.nonce && self.fill_gap(done, tx.nonce).await? {
                    tx.sent_at = unix_now();
                } else {
                    self.replace(&mut tx).await?;
                }
            }
            tokio::time::sleep(cfg.receipt_poll()).await;
        }
    }

    /// Fills the nonces from `next` (the chain's) up to `nonce` (a transaction of this node
    /// waiting behind them) when nothing in the pool can: their transactions were dropped (a
    /// reorganization took them out of the chain and no pool holds them again), so `nonce`
    /// would never be mined. Each is filled with an empty transfer to this account (21,000
    /// gas, today's fees); what the dropped ones did, the node does again from what the chain
    /// shows (a claim, a vote). A nonce this node still watches a transaction for is left to
    /// it. Whether there was such a gap.
    async fn fill_gap(&self, next: u64, nonce: u64) -> Result<bool, ChainError> {
        let pending = self
            .inner
            .provider
            .get_transaction_count(self.signer())
            .pending()
            .await
            .map_err(rpc)?;
        if pending > next {
            return Ok(false);
        }
        let watched: Vec<u64> = self
            .inner
            .sender
            .pending
            .lock()
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default();
        let offer = fees::first_offer(self.next_base_fee().await?, &self.inner.sender.cfg);
        for n in (next..nonce).filter(|n| !watched.contains(n)) {
            let mut filler = PendingTx {
                purpose: "fill a nonce gap".into(),
                nonce: n,
                to: self.signer(),
                input: Vec::new(),
                gas: 21_000,
                max_fee: offer.max_fee,
                priority_fee: offer.priority_fee,
                sent_at: unix_now(),
                hashes: Vec::new(),
            };
            let (raw, hash) = self.sign(&filler).await?;
            filler.hashes.push(hash);
            self.keep(&filler).await?;
            match self.broadcast(&raw, hash).await {
                Broadcast::Sent | Broadcast::Unknown(_) => tracing::warn!(
                    %hash,
                    nonce = n,
                    waiting = nonce,
                    "nonce {n} lost its transaction (dropped by a reorganization?) and holds \
                     back this node's transaction {nonce}: filled with an empty one"
                ),
                _ => self.forget(n).await?,
            }
        }
        Ok(true)
    }

    /// Whether a pool (or the chain) holds a version of `tx`, the latest first.
    async fn in_a_pool(&self, tx: &PendingTx) -> Result<bool, ChainError> {
        for h in tx.hashes.iter().rev() {
            let found = self
                .inner
                .provider
                .get_transaction_by_hash(*h)
                .await
                .map_err(rpc)?;
            if found.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Sends `tx` again with the same nonce and higher fees.
    async fn replace(&self, tx: &mut PendingTx) -> Result<(), ChainError> {
        let cfg = &self.inner.sender.cfg;
        let prev = Fees {
            max_fee: tx.max_fee,
            priority_fee: tx.priority_fee,
        };
        let base = self.next_base_fee().await?;
        let next = match fees::bumped(prev, base, cfg) {
            Some(f) if tx.hashes.len() < MAX_TX_VERSIONS => f,
            _ => {
                let hash = tx.latest().unwrap_or_default();
                tracing::error!(
                    %hash,
                    nonce = tx.nonce,
                    purpose = %tx.purpose,
                    max_fee = tx.max_fee,
                    base_fee = base,
                    cap = cfg.max_fee_per_gas_wei,
                    "transaction stuck at the fee cap (transactions.max_fee_per_gas_wei); it \
                     stays pending and is mined when the base fee falls under its offer"
                );
                return Err(ChainError::FeeCapReached {
                    nonce: tx.nonce,
                    hash,
                    max_fee: tx.max_fee,
                    base_fee: base,
                });
            }
        };
        let mut new = tx.clone();
        new.max_fee = next.max_fee;
        new.priority_fee = next.priority_fee;
        new.sent_at = unix_now();
        let (raw, hash) = self.sign(&new).await?;
        new.hashes.push(hash);
        self.keep(&new).await?;
        let old = tx.latest().unwrap_or_default();
        match self.broadcast(&raw, hash).await {
            Broadcast::Sent | Broadcast::NonceTooLow => {}
            Broadcast::Unknown(e) => tracing::warn!(%hash, "sending the replacement: {e}"),
            Broadcast::Underpriced => {
                tracing::warn!(%hash, nonce = tx.nonce, "the pool refused the replacement as underpriced; bumping again next time");
            }
            Broadcast::Rejected(why) => {
                tracing::warn!(%hash, nonce = tx.nonce, "the pool refused the replacement: {why}");
            }
        }
        tracing::warn!(
            %old,
            %hash,
            nonce = tx.nonce,
            purpose = %tx.purpose,
            max_fee = new.max_fee,
            priority_fee = new.priority_fee,
            base_fee = base,
            "transaction not mined in {} s; replaced with higher fees, same nonce",
            cfg.replace_after_secs
        );
        *tx = new;
        Ok(())
    }

    /// `tx` as signed bytes, and its hash. Signing is deterministic (RFC 6979): the same
    /// fields give the same bytes, so sending again needs only the record.
    async fn sign(&self, tx: &PendingTx) -> Result<(Vec<u8>, B256), ChainError> {
        let req = TransactionRequest::default()
            .with_from(self.signer())
            .with_to(tx.to)
            .with_input(Bytes::copy_from_slice(&tx.input))
            .with_nonce(tx.nonce)
            .with_chain_id(self.chain_id())
            .with_gas_limit(tx.gas)
            .with_max_fee_per_gas(tx.max_fee)
            .with_max_priority_fee_per_gas(tx.priority_fee);
        let env = <TransactionRequest as NetworkTransactionBuilder<Ethereum>>::build(
            req,
            &self.inner.sender.wallet,
        )
        .await
        .map_err(|e| ChainError::Sign(e.to_string()))?;
        Ok((env.encoded_2718(), *env.tx_hash()))
    }

    /// Sends signed bytes. A refusal of a transaction the chain knows already (an earlier
    /// attempt reached an endpoint whose answer was lost, and the failover sent it again) is
    /// no refusal: it was sent, once.
    async fn broadcast(&self, raw: &[u8], hash: B256) -> Broadcast {
        let e = match self.inner.provider.send_raw_transaction(raw).await {
            Ok(_) => return Broadcast::Sent,
            Err(e) => e,
        };
        match classify(e) {
            b @ (Broadcast::Sent | Broadcast::Unknown(_)) => b,
            refused => match self.inner.provider.get_transaction_by_hash(hash).await {
                Ok(Some(_)) => {
                    tracing::info!(%hash, "the chain holds the transaction already (an earlier attempt's answer was lost)");
                    Broadcast::Sent
                }
                _ => refused,
            },
        }
    }

    /// The receipt of `tx`'s mined version, or why it reverted.
    async fn checked(
        &self,
        tx: &PendingTx,
        receipt: TransactionReceipt,
    ) -> Result<TransactionReceipt, ChainError> {
        if receipt.status() {
            tracing::info!(hash = %receipt.transaction_hash, nonce = tx.nonce, purpose = %tx.purpose, block = receipt.block_number, "transaction mined");
            return Ok(receipt);
        }
        let req = TransactionRequest::default()
            .with_from(self.signer())
            .with_to(tx.to)
            .with_input(Bytes::copy_from_slice(&tx.input))
            .with_gas_limit(tx.gas);
        let mut call = self.inner.provider.call(req);
        if let Some(b) = receipt.block_number {
            call = call.block(BlockId::number(b));
        }
        let replay = call.await.err().map(alloy::contract::Error::TransportError);
        let e = EscrowError::mined_revert(receipt.transaction_hash, replay);
        tracing::warn!(hash = %receipt.transaction_hash, nonce = tx.nonce, purpose = %tx.purpose, "transaction mined and reverted: {e}");
        Err(e.into())
    }

    /// Keeps `tx` (a new one or a replacement) before it is sent.
    async fn keep(&self, tx: &PendingTx) -> Result<(), ChainError> {
        if let Some(store) = &self.inner.sender.store {
            let (id, me, row) = (self.chain_id(), self.signer(), tx.clone());
            crate::store::off_async(store, move |s| s.put_pending_tx(id, &me, &row))
                .await
                .ok_or(ChainError::StoreGone)??;
        }
        if let Ok(mut p) = self.inner.sender.pending.lock() {
            p.insert(tx.nonce, tx.clone());
        }
        Ok(())
    }

    async fn forget(&self, nonce: u64) -> Result<(), ChainError> {
        if let Ok(mut p) = self.inner.sender.pending.lock() {
            p.remove(&nonce);
        }
        if let Some(store) = &self.inner.sender.store {
            let (id, me) = (self.chain_id(), self.signer());
            crate::store::off_async(store, move |s| s.remove_pending_tx(id, &me, nonce))
                .await
                .ok_or(ChainError::StoreGone)??;
        }
        Ok(())
    }
}
