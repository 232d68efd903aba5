//! Errors: the escrow's custom reverts decoded into [`SietchEscrowErrors`], and what can go wrong
//! around them (transport, signing, receipts).

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::network::Ethereum;
use alloy::primitives::TxHash;
use alloy::providers::{PendingTransactionError, Provider};
use alloy::rpc::types::TransactionReceipt;

use crate::SietchEscrow::SietchEscrowErrors;

/// What an escrow operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EscrowError {
    /// The contract refused the call with one of its custom errors: the variant says why (for
    /// example `NothingToClaim` for a stale voucher, `BadSignature` for a foreign signer).
    #[error("the escrow refused the call: {0:?}")]
    Reverted(SietchEscrowErrors),
    /// The call reverted without a custom error of the escrow (e.g. a token's own revert).
    #[error("the call reverted: {0}")]
    Contract(#[from] alloy::contract::Error),
    /// The transaction was sent but waiting for its receipt failed.
    #[error("waiting for the transaction failed: {0}")]
    Pending(#[from] PendingTransactionError),
    /// The transaction was mined but reverted, and the call, replayed, gave no custom error of
    /// the escrow.
    #[error("transaction {0} was mined but reverted")]
    Failed(TxHash),
    /// The transaction was mined but reverted: the escrow's custom error, decoded by replaying
    /// the call at the block it was mined in (the state another transaction in that block
    /// changed first, most often).
    #[error("transaction {hash} was mined but the escrow refused it: {error:?}")]
    RevertedOnChain {
        /// The mined transaction.
        hash: TxHash,
        /// Why the escrow refused it (boxed: the error enum stays small).
        error: Box<SietchEscrowErrors>,
    },
    /// A deployment's receipt did not name the new contract.
    #[error("deployment transaction {0} created no contract")]
    NoContract(TxHash),
    /// Signing a typed message failed.
    #[error("signing failed: {0}")]
    Signer(#[from] alloy::signers::Error),
}

impl EscrowError {
    /// Decodes the escrow's custom revert out of a contract error when there is one.
    pub fn from_contract(err: alloy::contract::Error) -> Self {
        match err.try_decode_into_interface_error::<SietchEscrowErrors>() {
            Ok(decoded) => Self::Reverted(decoded),
            Err(other) => Self::Contract(other),
        }
    }

    /// The escrow's custom error, if that is what this is (refused when estimated or called,
    /// or mined and reverted).
    pub fn reverted(&self) -> Option<&SietchEscrowErrors> {
        match self {
            Self::Reverted(e) => Some(e),
            Self::RevertedOnChain { error, .. } => Some(error),
            _ => None,
        }
    }

    /// A mined transaction `hash` reverted; `replay` is what the same call gave when replayed
    /// at the block it was mined in: the escrow's custom error when it names one.
    pub fn mined_revert(hash: TxHash, replay: Option<alloy::contract::Error>) -> Self {
        match replay.map(Self::from_contract) {
            Some(Self::Reverted(error)) => Self::RevertedOnChain {
                hash,
                error: Box::new(error),
            },
            _ => Self::Failed(hash),
        }
    }
}

/// Sends a call, waits for its receipt and checks that it succeeded; a revert (seen at gas
/// estimation or in the receipt) becomes a typed [`EscrowError`].
pub async fn send<P, D>(
    call: CallBuilder<P, D, Ethereum>,
) -> Result<TransactionReceipt, EscrowError>
where
    P: Provider<Ethereum>,
    D: CallDecoder,
{
    let pending = call.send().await.map_err(EscrowError::from_contract)?;
    confirmed(pending).await
}

/// Sends `first` and then `then` without waiting for `first` to be mined in between, so that
/// both can land in one block; their receipts, checked like [`send`]'s. `then`'s gas is
/// estimated against the pending state, which holds `first` on nodes that keep one (anvil,
/// geth); where the estimate fails all the same (a node whose pending state does not),
/// `then` is sent again once `first` is mined, as two [`send`]s would.
pub async fn send_pair<P1, P2, D1, D2>(
    first: CallBuilder<P1, D1, Ethereum>,
    then: CallBuilder<P2, D2, Ethereum>,
) -> Result<(TransactionReceipt, TransactionReceipt), EscrowError>
where
    P1: Provider<Ethereum>,
    P2: Provider<Ethereum>,
    D1: CallDecoder,
    D2: CallDecoder,
{
    let pending = first.send().await.map_err(EscrowError::from_contract)?;
    match then.send().await {
        Ok(second) => {
            let a = confirmed(pending).await?;
            Ok((a, confirmed(second).await?))
        }
        Err(_) => {
            let a = confirmed(pending).await?;
            Ok((a, send(then).await?))
        }
    }
}

async fn confirmed(
    pending: alloy::providers::PendingTransactionBuilder<Ethereum>,
) -> Result<TransactionReceipt, EscrowError> {
    let receipt = pending.get_receipt().await?;
    if !receipt.status() {
        return Err(EscrowError::Failed(receipt.transaction_hash));
    }
    Ok(receipt)
}
