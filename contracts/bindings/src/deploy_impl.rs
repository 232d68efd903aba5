//! Deploying the escrow and, for development, a mock token.

use alloy::network::Ethereum;
use alloy::primitives::Address;
use alloy::providers::Provider;

use crate::SietchEscrow::Config;
use crate::{EscrowError, MockToken, SietchEscrow};

/// Addresses of a fresh deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    /// The settlement token.
    pub token: Address,
    /// The escrow.
    pub escrow: Address,
}

/// Deploys a [`MockToken`] (anyone can mint; development only).
pub async fn deploy_mock_token<P: Provider<Ethereum>>(provider: P) -> Result<Address, EscrowError> {
    MockToken::deploy_builder(provider)
        .deploy()
        .await
        .map_err(EscrowError::from_contract)
}

/// Deploys the escrow for `token` with `config`. A bad config is refused with
/// `EscrowError::Reverted(BadConfig)`.
pub async fn deploy_escrow<P: Provider<Ethereum>>(
    provider: P,
    token: Address,
    config: Config,
) -> Result<Address, EscrowError> {
    SietchEscrow::deploy_builder(provider, token, config)
        .deploy()
        .await
        .map_err(EscrowError::from_contract)
}

/// Deploys a mock token and an escrow over it.
pub async fn deploy_with_mock_token<P: Provider<Ethereum> + Clone>(
    provider: P,
    config: Config,
) -> Result<Deployment, EscrowError> {
    let token = deploy_mock_token(provider.clone()).await?;
    let escrow = deploy_escrow(provider, token, config).await?;
    Ok(Deployment { token, escrow })
}
