//! A cold owner and the node's key as its operator (`[chain] owner`, `docs/keys.md` "A cold
//! owner", `Operators.sol`). The node's chain *account* ([`Chain::me`]) is then the owner: the
//! registry entry, the channels' provider, whom vouchers and credits pay, what the offer names.
//! Its transactions and result commitments are still signed by the node's key
//! ([`Chain::signer`]), which the escrow accepts for the owner while the owner keeps it named,
//! and so do buyers and verifiers (`chain::signers`, [`Chain::may_sign_for`]).
//! What only the owner may do (stake, unstake, withdraw, name or revoke the operator) the node
//! cannot do: it says which `cast send` the owner runs from its cold wallet instead.

use super::*;

/// Why the node cannot act for the configured owner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// The owner has not named this node's key its operator (or named another, or revoked it).
    #[error(
        "{owner} (chain.owner) has not named this node's key {signer} its operator{named}: \
         the owner runs, from its own wallet,\n  {command}"
    )]
    NotNamed {
        /// The configured owner.
        owner: Address,
        /// The node's key.
        signer: Address,
        /// What the escrow holds instead (" (it names 0x…)"), or nothing.
        named: String,
        /// The `cast send` that names this key.
        command: String,
    },
    /// Only the owner may do this; the node prints what the owner runs.
    #[error("only the owner {owner} may {what}: the owner runs, from its own wallet,\n  {command}")]
    OwnerOnly {
        /// The configured owner.
        owner: Address,
        /// What the node was about to do.
        what: &'static str,
        /// The command(s) the owner runs.
        command: String,
    },
    /// Reading the escrow failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
}

impl Chain {
    /// The address that signs this node's transactions and result commitments: its EVM key.
    /// The same as [`Chain::me`] unless the node operates for a cold owner.
    pub fn signer(&self) -> Address {
        self.inner.me
    }

    /// The cold owner this node operates for, if any.
    pub fn owner(&self) -> Option<Address> {
        self.inner.owner.get().copied()
    }

    /// Makes `owner` this node's chain account, after checking on chain that the owner has
    /// named this node's key its operator (a clear error otherwise, with the command that
    /// names it). Once per connection: a second, different owner is refused.
    pub async fn operate_for(&self, owner: Address) -> Result<(), OperatorError> {
        let signer = self.signer();
        let named = self.operator_of(owner).await?;
        if named != Some(signer) {
            return Err(OperatorError::NotNamed {
                owner,
                signer,
                named: named.map_or_else(String::new, |n| format!(" (it names {n})")),
                command: self.cast_send(owner, &format!("\"setOperator(address)\" {signer}")),
            });
        }
        if self.inner.owner.set(owner).is_err() && self.owner() != Some(owner) {
            return Err(OperatorError::OwnerOnly {
                owner,
                what: "be set once per connection (restart the node to change chain.owner)",
                command: String::new(),
            });
        }
        tracing::info!(%owner, operator = %signer, "acting as the operator of a cold owner");
        Ok(())
    }

    /// The operator `owner` named in the escrow, if any.
    pub async fn operator_of(&self, owner: Address) -> Result<Option<Address>, ChainError> {
        let op = self
            .inner
            .escrow
            .operatorOf(owner)
            .call()
            .await
            .map_err(EscrowError::from_contract)?;
        Ok((op != Address::ZERO).then_some(op))
    }

    /// Whether `signer` may sign for `account` now: the account itself or its operator, read
    /// from the escrow every time ([`Chain::may_sign_for`] keeps the answer a while).
    pub async fn signs_for(&self, signer: Address, account: Address) -> Result<bool, ChainError> {
        Ok(signer == account || self.operator_of(account).await? == Some(signer))
    }

    /// The `cast send` that makes `call` on the escrow from `from`'s wallet.
    pub fn cast_send(&self, from: Address, call: &str) -> String {
        format!(
            "cast send --rpc-url <RPC URL> --from {from} {} {call}",
            self.escrow()
        )
    }

    /// The commands the owner runs to stake `amount` more (approving the escrow first).
    pub fn stake_commands(&self, owner: Address, amount: u128) -> String {
        let approve = format!(
            "cast send --rpc-url <RPC URL> --from {owner} {} \"approve(address,uint256)\" {} {amount}",
            self.token(),
            self.escrow()
        );
        let stake = self.cast_send(owner, &format!("\"stake(uint256)\" {amount}"));
        format!("{approve}\n  {stake}")
    }
}
