//! `sietch escrow deploy`: the escrow (with its verifier pool, which it inherits) on any EVM
//! chain, for a given ERC-20, from the node's keystore or a raw key file; the token checked
//! first, and the `config.toml` lines a node needs printed at the end (`docs/deploy.md`).

use std::path::PathBuf;

use alloy::network::EthereumWallet;
use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sietch_contracts::EscrowError;
use sietch_contracts::SietchEscrow::{self, Config as EscrowConfig};
use sietch_node::chain::token::{self, TokenInfo};

use super::client::{block_on, print_json};
use super::key::KeyFlags;

#[derive(Debug, Args)]
pub(crate) struct EscrowArgs {
    #[command(subcommand)]
    command: EscrowCommand,
}

#[derive(Debug, Subcommand)]
enum EscrowCommand {
    /// Deploy the escrow (with its verifier pool) to any EVM chain for an ERC-20, after
    /// checking the chain id and the token, and print the config.toml lines a node needs.
    Deploy(Box<DeployArgs>),
}

#[derive(Debug, Args)]
struct DeployArgs {
    /// The chain's JSON-RPC endpoint.
    #[arg(long, env = "SIETCH_RPC_URL")]
    rpc_url: String,
    /// The chain's id, checked against the endpoint's before anything is sent (84532 Base
    /// Sepolia, 421614 Arbitrum Sepolia, 11155420 OP Sepolia, 31337 anvil).
    #[arg(long)]
    chain_id: u64,
    /// The settlement token: an ERC-20 without fees on transfer and without rebasing (a
    /// USDC, say). Its decimals and symbol are read from it.
    #[arg(long, value_name = "ADDRESS")]
    token: String,
    /// Deploy from the key in this raw key file (64 hex digits) instead of the node's
    /// keystore (the keystore flags are then not used).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// The node's data directory, whose keystore deploys (without --key-file).
    #[arg(long, env = "SIETCH_DATA_DIR", default_value_os_t = super::default_data_dir())]
    data_dir: PathBuf,
    #[command(flatten)]
    key: KeyFlags,
    /// Seconds a provider has to claim after a buyer starts closing a channel.
    #[arg(long, default_value_t = 86_400)]
    close_delay: u64,
    /// Seconds a buyer has to dispute a claimed ticket.
    #[arg(long, default_value_t = 3_600)]
    challenge_window: u64,
    /// Seconds the drawn verifiers have to vote.
    #[arg(long, default_value_t = 7_200)]
    verdict_window: u64,
    /// Seconds between asking to unstake and unstaking (more than the challenge and verdict
    /// windows together).
    #[arg(long, default_value_t = 604_800)]
    unstake_delay: u64,
    /// What a buyer posts to dispute, in the token's units.
    #[arg(long, default_value = "30")]
    dispute_bond: String,
    /// What each verifier voting with the majority is paid, in the token's units.
    #[arg(long, default_value = "5")]
    verifier_fee: String,
    /// The stake a provider needs to be paid, claim and be drawn, in the token's units.
    #[arg(long, default_value = "100")]
    min_stake: String,
    /// The smallest channel deposit, in the token's units.
    #[arg(long, default_value = "1")]
    min_deposit: String,
    /// Blocks per stake epoch (a stake change counts in verifier draws from the next one).
    #[arg(long, default_value_t = 100)]
    epoch_blocks: u64,
    /// Check the chain, the key and the token and estimate the deployment's gas; send
    /// nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: EscrowArgs) -> anyhow::Result<()> {
    match args.command {
        EscrowCommand::Deploy(a) => block_on(deploy(*a)),
    }
}

/// The key that deploys: a raw key file, else the data directory's keystore.
fn signer(a: &DeployArgs) -> anyhow::Result<PrivateKeySigner> {
    if let Some(file) = &a.key_file {
        return Ok(sietch_node::keys::read_raw_key(file)?);
    }
    let keys = a.key.keys(&a.data_dir, None)?;
    let (signer, _) = sietch_node::keys::load(&a.data_dir, &keys, None)
        .context("unlocking the node's keystore (or name a raw key with --key-file)")?;
    Ok(signer)
}

/// The escrow's parameters, amounts in the token's base units.
fn escrow_config(a: &DeployArgs, decimals: u8) -> anyhow::Result<EscrowConfig> {
    let units = |flag: &str, text: &str| -> anyhow::Result<u128> {
        token::parse_units(text, decimals).with_context(|| format!("--{flag}"))
    };
    if a.unstake_delay <= a.challenge_window.saturating_add(a.verdict_window) {
        bail!(
            "--unstake-delay ({} s) must be more than --challenge-window and --verdict-window \
             together ({} s): a provider could leave before its dispute is settled",
            a.unstake_delay,
            a.challenge_window.saturating_add(a.verdict_window)
        );
    }
    Ok(EscrowConfig {
        closeDelay: a.close_delay,
        challengeWindow: a.challenge_window,
        verdictWindow: a.verdict_window,
        unstakeDelay: a.unstake_delay,
        disputeBond: units("dispute-bond", &a.dispute_bond)?,
        verifierFee: units("verifier-fee", &a.verifier_fee)?,
        minStake: units("min-stake", &a.min_stake)?,
        minDeposit: units("min-deposit", &a.min_deposit)?,
        epochBlocks: a.epoch_blocks,
    })
}

/// `[finality] confirmations` recommended on a chain (`docs/deploy.md` says why), and its
/// name, for the chains the docs describe.
fn known_chain(chain_id: u64) -> Option<(&'static str, u64)> {
    match chain_id {
        1 => Some(("Ethereum", 64)),
        11_155_111 => Some(("Sepolia", 64)),
        8_453 => Some(("Base", 30)),
        84_532 => Some(("Base Sepolia", 30)),
        10 => Some(("OP Mainnet", 30)),
        11_155_420 => Some(("OP Sepolia", 30)),
        42_161 => Some(("Arbitrum One", 120)),
        421_614 => Some(("Arbitrum Sepolia", 120)),
        31_337 => Some(("anvil", 1)),
        _ => None,
    }
}

/// The lines of `config.toml` a node needs to settle through `escrow` (top-level settings:
/// above any `[section]`), and the finality advice for the chain.
fn config_lines(a: &DeployArgs, escrow: Address, from_block: u64) -> String {
    let mut out = format!(
        "chain_id = {}\nrpc_url = {:?}\nescrow = \"{escrow}\"\nchain_from_block = {from_block}\n",
        a.chain_id, a.rpc_url
    );
    if let Some((name, depth)) = known_chain(a.chain_id) {
        out.push_str(&format!(
            "\n[finality]\n# {name}: see docs/deploy.md\nconfirmations = {depth}\n"
        ));
    }
    out
}

async fn deploy(a: DeployArgs) -> anyhow::Result<()> {
    let token: Address = a.token.parse().with_context(|| {
        format!(
            "--token {:?} is not an address (0x and 40 hex digits)",
            a.token
        )
    })?;
    let signer = signer(&a)?;
    let me = signer.address();
    let provider: DynProvider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(
            a.rpc_url
                .parse()
                .with_context(|| format!("--rpc-url {:?} is not a URL", a.rpc_url))?,
        )
        .erased();
    let got = provider.get_chain_id().await.with_context(|| {
        format!(
            "the RPC endpoint {} does not answer as an Ethereum JSON-RPC endpoint; nothing was sent",
            a.rpc_url
        )
    })?;
    if got != a.chain_id {
        bail!(
            "the RPC endpoint {} serves chain {got}, not --chain-id {}: nothing was sent",
            a.rpc_url,
            a.chain_id
        );
    }
    let (info, warnings) = TokenInfo::read(&provider, token, me)
        .await
        .map_err(|e| anyhow::anyhow!("{e}; nothing was sent"))?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let config = escrow_config(&a, info.decimals)?;
    let balance = provider
        .get_balance(me)
        .await
        .context("the deployer's balance")?;
    let builder = SietchEscrow::deploy_builder(provider.clone(), token, config.clone());
    let gas = builder
        .estimate_gas()
        .await
        .map_err(EscrowError::from_contract)
        .context("estimating the deployment (the escrow refuses these parameters?)")?;
    let price = provider.get_gas_price().await.context("the gas price")?;
    let cost = u128::from(gas).saturating_mul(price);
    if a.dry_run {
        if a.json {
            return print_json(&serde_json::json!({
                "dry_run": true,
                "chain_id": a.chain_id,
                "deployer": me.to_string(),
                "token": token_json(&info),
                "gas": gas,
                "gas_price_wei": price.to_string(),
                "balance_wei": balance.to_string(),
            }));
        }
        println!("dry run: nothing sent");
        println!(
            "deployer  {me} ({} ETH)",
            token::format_units(balance.saturating_to::<u128>(), 18, Some(6))
        );
        print_plan(&info, &config, a.chain_id);
        println!(
            "gas       {gas} (about {} ETH at {price} wei per gas, before an L2's L1 data fee)",
            token::format_units(cost, 18, Some(6))
        );
        return Ok(());
    }
    if balance < alloy::primitives::U256::from(cost) {
        bail!(
            "the deployer {me} holds {} ETH, less than the deployment's gas (about {} ETH): fund \
             it first; nothing was sent",
            token::format_units(balance.saturating_to::<u128>(), 18, Some(6)),
            token::format_units(cost, 18, Some(6))
        );
    }
    let pending = builder.send().await.map_err(EscrowError::from_contract)?;
    let receipt = pending
        .get_receipt()
        .await
        .context("waiting for the deployment's receipt")?;
    if !receipt.status() {
        bail!(
            "the deployment transaction {} reverted",
            receipt.transaction_hash
        );
    }
    let escrow = receipt
        .contract_address
        .context("the deployment's receipt names no contract")?;
    let from_block = receipt.block_number.unwrap_or_default();
    // Read back: the contract there is this escrow, over this token.
    let deployed = SietchEscrow::new(escrow, provider.clone())
        .token()
        .call()
        .await
        .map_err(EscrowError::from_contract)?;
    if deployed != token {
        bail!("the contract deployed at {escrow} names token {deployed}, not {token}");
    }
    let lines = config_lines(&a, escrow, from_block);
    if a.json {
        return print_json(&serde_json::json!({
            "escrow": escrow.to_string(),
            "chain_id": a.chain_id,
            "block": from_block,
            "transaction": receipt.transaction_hash.to_string(),
            "deployer": me.to_string(),
            "token": token_json(&info),
            "gas_used": receipt.gas_used,
            "config": lines,
        }));
    }
    println!(
        "deployed the escrow {escrow} on chain {} in block {from_block} (transaction {}, {} gas)",
        a.chain_id, receipt.transaction_hash, receipt.gas_used
    );
    print_plan(&info, &config, a.chain_id);
    println!(
        "\n# config.toml of each node on this market (top-level settings: above any [section])"
    );
    print!("{lines}");
    Ok(())
}

fn token_json(info: &TokenInfo) -> serde_json::Value {
    serde_json::json!({
        "address": info.address.to_string(),
        "symbol": info.symbol,
        "decimals": info.decimals,
    })
}

/// The token and the escrow's parameters, in words.
fn print_plan(info: &TokenInfo, c: &EscrowConfig, chain_id: u64) {
    let name = known_chain(chain_id).map_or(String::new(), |(n, _)| format!(" ({n})"));
    println!("chain     {chain_id}{name}");
    println!(
        "token     {} {} ({} decimals)",
        info.address, info.symbol, info.decimals
    );
    println!(
        "windows   close {} s, challenge {} s, verdict {} s, unstake {} s; epochs of {} blocks",
        c.closeDelay, c.challengeWindow, c.verdictWindow, c.unstakeDelay, c.epochBlocks
    );
    println!(
        "amounts   dispute bond {}, verifier fee {}, min stake {}, min deposit {}",
        info.show(c.disputeBond),
        info.show(c.verifierFee),
        info.show(c.minStake),
        info.show(c.minDeposit)
    );
}
