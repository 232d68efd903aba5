//! The node's transactions to the escrow, one at a time: each sent and watched by `sender`
//! (fees, nonce, replacement, receipt), and the next one sent only after it is mined.

use super::*;

impl Chain {
    async fn tx<D: alloy::contract::CallDecoder>(
        &self,
        purpose: &str,
        call: alloy::contract::CallBuilder<&DynProvider, D>,
    ) -> Result<TransactionReceipt, ChainError> {
        let _one = self.inner.sending.lock().await;
        self.settle_earlier().await?;
        self.transact(purpose, self.escrow(), call.calldata().clone())
            .await
    }

    /// Approves `amount` for the escrow and sends `call`, with no other transaction of this
    /// node in between (another would spend or overwrite the allowance).
    async fn tx_paying<D: alloy::contract::CallDecoder>(
        &self,
        purpose: &str,
        amount: u128,
        call: alloy::contract::CallBuilder<&DynProvider, D>,
    ) -> Result<TransactionReceipt, ChainError> {
        let token = MockToken::new(self.inner.token, &self.inner.provider);
        let approve = token.approve(self.escrow(), U256::from(amount));
        let input = call.calldata().clone();
        let _one = self.inner.sending.lock().await;
        self.settle_earlier().await?;
        // The approval and the call in one block where the node allows (half the wait): the
        // call is estimated against the pending state, which holds the approval on nodes that
        // keep one (anvil, geth); where it fails all the same, it waits for the approval.
        let first = self
            .send_new("approve", self.token(), approve.calldata().clone(), None)
            .await?;
        let then = match self
            .send_new(purpose, self.escrow(), input.clone(), Some(first.nonce + 1))
            .await
        {
            Ok(t) => Some(t),
            Err(ChainError::Escrow(_)) => None,
            Err(e) => return Err(e),
        };
        self.settle(first).await?;
        match then {
            Some(t) => self.settle(t).await,
            None => self.transact(purpose, self.escrow(), input).await,
        }
    }

    /// Registers the node's ed25519 key for its account ([`Chain::me`]: the cold owner when the
    /// node operates for one, which the escrow then registers), with the key's proof that it
    /// binds itself to this account (`sietch_market::registration`).
    pub async fn register(&self, key: &ed25519_dalek::SigningKey) -> Result<(), ChainError> {
        let public = PublicKey::of(key);
        let proof = registration::prove(key, self.chain_id(), self.escrow(), self.me());
        let escrow = &self.inner.escrow;
        self.tx(
            "register",
            escrow.register(B256::from(public.0), Bytes::copy_from_slice(&proof)),
        )
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

    /// Stakes `amount` (approving it first). Only the owner stakes: a node operating for a
    /// cold owner refuses, naming the commands the owner runs.
    pub async fn stake(&self, amount: u128) -> Result<(), ChainError> {
        if let Some(owner) = self.owner() {
            return Err(OperatorError::OwnerOnly {
                owner,
                what: "stake",
                command: self.stake_commands(owner, amount),
            }
            .into());
        }
        let escrow = &self.inner.escrow;
        self.tx_paying("stake", amount, escrow.stake(U256::from(amount)))
            .await?;
        Ok(())
    }

    /// Opens a channel to `provider` with `amount` (approving it first); its id.
    pub async fn open_channel(&self, provider: Address, amount: u128) -> Result<B256, ChainError> {
        let escrow = &self.inner.escrow;
        let receipt = self
            .tx_paying(
                "openChannel",
                amount,
                escrow.openChannel(provider, U256::from(amount)),
            )
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
        self.tx_paying("topUp", amount, escrow.topUp(channel, U256::from(amount)))
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
        self.tx("claimBatch", escrow.claimBatch(vs, sigs)).await
    }

    /// Claims a ticket with the provider's result commitment (starts the challenge window).
    pub async fn claim_ticket(
        &self,
        ticket: &EvmSigned<Ticket>,
        result: &EvmSigned<ResultCommitment>,
    ) -> Result<TransactionReceipt, ChainError> {
        let escrow = &self.inner.escrow;
        self.tx(
            "claimTicket",
            escrow.claimTicket(
                escrow_ticket(&ticket.message),
                Bytes::copy_from_slice(&ticket.signature),
                escrow_result(&result.message),
                Bytes::copy_from_slice(&result.signature),
            ),
        )
        .await
    }

    /// Pays a claimed ticket whose challenge window passed undisputed.
    pub async fn finalize_ticket(&self, id: B256) -> Result<(), ChainError> {
        let escrow = &self.inner.escrow;
        self.tx("finalizeTicket", escrow.finalizeTicket(id)).await?;
        Ok(())
    }

    /// Disputes a claimed ticket, posting the bond (approving it first): its result, or
    /// (`undelivered`) that the result never arrived.
    pub async fn dispute(&self, id: B256, undelivered: bool) -> Result<(), ChainError> {
        let bond = self.dispute_bond().await?;
        let escrow = &self.inner.escrow;
        if undelivered {
            self.tx_paying("disputeUndelivered", bond, escrow.disputeUndelivered(id))
                .await?;
        } else {
            self.tx_paying("dispute", bond, escrow.dispute(id)).await?;
        }
        Ok(())
    }

    /// Draws a disputed ticket's verifiers (anyone may, from the block after the dispute).
    pub async fn draw_verifiers(&self, id: B256) -> Result<(), ChainError> {
        let escrow = &self.inner.escrow;
        self.tx("drawVerifiers", escrow.drawVerifiers(id)).await?;
        Ok(())
    }

    /// Posts this node's verdict: its own signed result commitment for the disputed job.
    pub async fn submit_verdict(
        &self,
        id: B256,
        result: &EvmSigned<ResultCommitment>,
    ) -> Result<(), ChainError> {
        let escrow = &self.inner.escrow;
        self.tx(
            "submitVerdict",
            escrow.submitVerdict(
                id,
                escrow_result(&result.message),
                Bytes::copy_from_slice(&result.signature),
            ),
        )
        .await?;
        Ok(())
    }

    /// Settles a dispute once a majority voted, or after the verdict window.
    pub async fn resolve(&self, id: B256) -> Result<(), ChainError> {
        let escrow = &self.inner.escrow;
        self.tx("resolve", escrow.resolve(id)).await?;
        Ok(())
    }

    /// Withdraws everything the escrow credited to this node's account, if anything. A node
    /// operating for a cold owner withdraws nothing: the owner does, from its wallet.
    pub async fn withdraw(&self) -> Result<u128, ChainError> {
        let owed = self.credited(self.me()).await?;
        if owed == 0 {
            return Ok(0);
        }
        if let Some(owner) = self.owner() {
            tracing::debug!(
                %owner,
                owed,
                "credited to the owner, who withdraws it: {}",
                self.cast_send(owner, "\"withdraw()\"")
            );
            return Ok(0);
        }
        let escrow = &self.inner.escrow;
        self.tx("withdraw", escrow.withdraw()).await?;
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
        self.tx("startClose", escrow.startClose(channel)).await?;
        Ok(())
    }

    /// Returns what is left of a closed channel to its buyer, after the close delay.
    pub async fn finalize_close(&self, channel: B256) -> Result<(), ChainError> {
        let escrow = &self.inner.escrow;
        self.tx("finalizeClose", escrow.finalizeClose(channel))
            .await?;
        Ok(())
    }
}
