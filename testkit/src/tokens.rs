//! Test tokens beyond the mock's 18 decimals: [`TestToken`] (`contracts/src/TestTokens.sol`),
//! an ERC-20 with the name, symbol and decimals it is given, anyone may mint. Its ABI and
//! bytecode are committed in `testkit/artifacts/` (`contracts/script/artifacts.sh` writes them,
//! and its `--check` fails when they drift from a fresh build).

use alloy::network::Ethereum;
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use sietch_contracts::SietchEscrow::Config as EscrowConfig;
use sietch_contracts::{EscrowError, deploy};
use sietch_node::chain::token::rescale_from_18;

#[allow(missing_docs, unreachable_pub, clippy::too_many_arguments)]
mod generated {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug, PartialEq, Eq)]
        TestToken,
        "artifacts/TestToken.json"
    );
}

pub use generated::TestToken;

/// The symbol of the devnet's token when it is not the 18-decimal mock (`mUSD`).
pub const TEST_SYMBOL: &str = "tUSDC";

/// Deploys a [`TestToken`] with `decimals` (symbol [`TEST_SYMBOL`]).
pub async fn deploy_test_token<P: Provider<Ethereum>>(
    provider: P,
    decimals: u8,
) -> Result<Address, EscrowError> {
    TestToken::deploy_builder(
        provider,
        "Sietch Test USD Coin".into(),
        TEST_SYMBOL.into(),
        decimals,
    )
    .deploy()
    .await
    .map_err(EscrowError::from_contract)
}

/// A token of `decimals` and an escrow over it with `config` (its amounts written at 18
/// decimals, rescaled): the mock token at 18, a [`TestToken`] otherwise.
pub async fn deploy_with_decimals<P: Provider<Ethereum> + Clone>(
    provider: P,
    config: EscrowConfig,
    decimals: u8,
) -> Result<deploy::Deployment, EscrowError> {
    if decimals == 18 {
        return deploy::deploy_with_mock_token(provider, config).await;
    }
    let token = deploy_test_token(provider.clone(), decimals).await?;
    let escrow = deploy::deploy_escrow(provider, token, rescale_config(config, decimals)).await?;
    Ok(deploy::Deployment { token, escrow })
}

/// The escrow's amounts (bond, fee, stake, deposit), written at 18 decimals, at `decimals`.
pub fn rescale_config(c: EscrowConfig, decimals: u8) -> EscrowConfig {
    EscrowConfig {
        disputeBond: rescale_from_18(c.disputeBond, decimals),
        verifierFee: rescale_from_18(c.verifierFee, decimals),
        minStake: rescale_from_18(c.minStake, decimals),
        minDeposit: rescale_from_18(c.minDeposit, decimals),
        ..c
    }
}

/// Mints `amount` base units of the token at `token` (the mock and [`TestToken`] share
/// `mint`) to `to`.
pub async fn mint<P: Provider<Ethereum>>(
    provider: P,
    token: Address,
    to: Address,
    amount: U256,
) -> Result<(), EscrowError> {
    let token = TestToken::new(token, provider);
    sietch_contracts::send(token.mint(to, amount))
        .await
        .map(drop)
}
