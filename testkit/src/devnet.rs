//! A whole market on one machine: a real anvil with the mock token and the escrow deployed,
//! several provider nodes (registered and staked on chain, announcing offers over gossip on
//! loopback) and a buyer node, each a real [`Node`] with its own data directory. `sietch
//! devnet` runs one and submits jobs to it (the jobs of [`guest`]); the end-to-end tests
//! start one too.

pub mod cold_owner;
pub mod guest;

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use sietch_contracts::SietchEscrow::Config as EscrowConfig;
use sietch_contracts::{MockToken, send};

use sietch_node::config::{FinalityConfig, NodeConfig};
use sietch_node::events::{Events, NodeEvent};
use sietch_node::service::Node;

use crate::hostile::{Chaos, ChaosConfig, RpcProxy};

pub use cold_owner::ColdOwner;

/// Token base units per token (the mock token has 18 decimals).
pub const E18: u128 = 1_000_000_000_000_000_000;

/// Where the set-up script installs the pinned anvil, relative to the repository root.
const PINNED: &str = "tools/bin/anvil";

fn pinned_under(dir: &Path) -> Option<PathBuf> {
    let p = dir.join(PINNED);
    p.is_file().then_some(p)
}

/// The anvil binary: `$SIETCH_ROOT/tools/bin/anvil` (set by `scripts/env.sh`), else
/// `tools/bin/anvil` in the current directory or one above it, else above the running
/// executable (`target/debug/...` in a checkout), else `anvil` on PATH.
pub fn find_anvil() -> anyhow::Result<PathBuf> {
    if let Some(root) = std::env::var_os("SIETCH_ROOT")
        && let Some(p) = pinned_under(Path::new(&root))
    {
        return Ok(p);
    }
    if let Ok(cwd) = std::env::current_dir()
        && let Some(p) = cwd.ancestors().find_map(pinned_under)
    {
        return Ok(p);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(p) = exe.ancestors().skip(1).find_map(pinned_under)
    {
        return Ok(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("anvil"))
            .find(|p| p.is_file())
    });
    match on_path {
        Some(p) => Ok(p),
        None => bail!(
            "anvil not found (looked in $SIETCH_ROOT/{PINNED}, ./{PINNED} and the directories \
             above, above this executable, and on PATH): run `bash scripts/setup.sh` to \
             install the pinned Foundry tools"
        ),
    }
}

/// A provider that signs for `key`, with simple nonce management (see `sietch_node::chain`).
pub fn connect(key: &PrivateKeySigner, url: &str) -> anyhow::Result<DynProvider> {
    Ok(ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(url.parse().context("the anvil URL")?)
        .erased())
}

/// The escrow's parameters of the tests' markets: short windows, so that a dispute plays out
/// in seconds (a dispute settles as soon as two verifiers agree; the windows bound only the
/// slow paths: a verifier that never votes, a delivery that never comes).
pub fn escrow_config() -> EscrowConfig {
    EscrowConfig {
        closeDelay: 20,
        challengeWindow: 15,
        verdictWindow: 30,
        unstakeDelay: 120,
        disputeBond: 30 * E18,
        verifierFee: 5 * E18,
        minStake: 100 * E18,
        minDeposit: E18,
        // 8 one-second blocks: a stake counts in verifier draws 8-16 s after it is made.
        epochBlocks: 8,
    }
}

/// The escrow's parameters of `sietch devnet` (the demo and the explorer's browser tests):
/// windows long enough for a slow two-core machine running language-model jobs. The buyer's
/// check of a generation job can end after its provider claimed the ticket (the voucher
/// timeout is 60 s), and a drawn verifier re-runs that job before it votes (tens of seconds
/// when several run at once on two cores).
pub fn escrow_config_for_ai() -> EscrowConfig {
    EscrowConfig {
        challengeWindow: 60,
        verdictWindow: 120,
        unstakeDelay: 300,
        ..escrow_config()
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct DevnetConfig {
    /// Provider nodes.
    pub providers: usize,
    /// Per provider (by index), how many jobs in a million it answers wrongly (tests).
    pub cheats: Vec<u32>,
    /// Where the nodes' data directories go (one subdirectory each).
    pub dir: PathBuf,
    /// Tokens minted to each node's account.
    pub funds: u128,
    /// Stake of each provider, in tokens.
    pub stake: u128,
    /// Changes to a node's configuration before it starts, by name (`provider-0`, ...,
    /// `buyer`).
    pub tweak: fn(&str, &mut NodeConfig),
    /// The escrow's parameters ([`escrow_config`] unless set).
    pub escrow: EscrowConfig,
    /// The token's decimals: 18 deploys the mock token (`mUSD`), anything else a
    /// [`crate::tokens::TestToken`] (`tUSDC`). Every amount of the devnet (the escrow's, the
    /// nodes' settings, `tweak`'s, funds and stake) is written at 18 decimals and rescaled
    /// to these.
    pub token_decimals: u8,
    /// A hostile chain ([`crate::hostile`]): the nodes reach anvil through a flaky RPC
    /// endpoint and wait for [`HOSTILE_CONFIRMATIONS`]; once they are up, anvil reorganizes
    /// and spikes its base fee at random ([`Devnet::chaos`]).
    pub hostile: bool,
    /// Provider-0 earns for a cold owner ([`cold_owner`]): an account of its own, which the
    /// set-up stakes from and names the node's key its operator; the node holds only that
    /// key, in an encrypted keystore unlocked from a password file under `dir`.
    pub cold_owner: bool,
}

/// Confirmations the nodes of a hostile devnet wait for; its reorganizations go as deep.
pub const HOSTILE_CONFIRMATIONS: u64 = 3;

impl DevnetConfig {
    /// `providers` honest providers, data under `dir`.
    pub fn new(providers: usize, dir: impl Into<PathBuf>) -> Self {
        Self {
            providers,
            cheats: Vec::new(),
            dir: dir.into(),
            funds: 10_000,
            stake: 1_000,
            tweak: |_, _| {},
            escrow: escrow_config(),
            token_decimals: 18,
            hostile: false,
            cold_owner: false,
        }
    }
}

/// A running devnet.
pub struct Devnet {
    /// The chain.
    pub anvil: AnvilInstance,
    /// A provider connected as the deployer (anvil's first account).
    pub deployer: DynProvider,
    /// The escrow's address.
    pub escrow: Address,
    /// The token's address.
    pub token: Address,
    /// The provider nodes, in order.
    pub providers: Vec<Node>,
    /// The buyer node.
    pub buyer: Node,
    /// Every node's events, each tagged with its name (`provider-0`, ..., `buyer`).
    pub events: tokio::sync::mpsc::Receiver<(String, NodeEvent)>,
    /// A hostile devnet's flaky RPC endpoint, which every node goes through.
    pub proxy: Option<RpcProxy>,
    /// A hostile devnet's reorganizations and fee spikes.
    pub chaos: Option<Chaos>,
    /// Provider-0's cold owner and operator, when [`DevnetConfig::cold_owner`].
    pub cold_owner: Option<ColdOwner>,
}

/// A chain of its own for a test: anvil mining a block per transaction, the mock token and
/// the escrow deployed with [`escrow_config`] by anvil's first account.
pub struct EscrowChain {
    /// The chain.
    pub anvil: AnvilInstance,
    /// Anvil's first account, which deployed.
    pub deployer: DynProvider,
    /// The escrow's address.
    pub escrow: Address,
    /// The token's address.
    pub token: Address,
}

/// Starts an [`EscrowChain`].
pub async fn escrow_chain() -> anyhow::Result<EscrowChain> {
    let path = find_anvil()?;
    let anvil = Anvil::at(&path)
        .host("127.0.0.1")
        .try_spawn()
        .with_context(|| format!("starting {}", path.display()))?;
    let key: PrivateKeySigner = anvil
        .keys()
        .first()
        .context("anvil has no dev accounts")?
        .clone()
        .into();
    let deployer = connect(&key, &anvil.endpoint())?;
    let dep = sietch_contracts::deploy::deploy_with_mock_token(deployer.clone(), escrow_config())
        .await
        .context("deploying the token and the escrow")?;
    Ok(EscrowChain {
        anvil,
        deployer,
        escrow: dep.escrow,
        token: dep.token,
    })
}

/// The configuration every devnet node starts from.
pub fn node_config(anvil: &AnvilInstance, escrow: Address) -> NodeConfig {
    NodeConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        mdns: false,
        autonat_private: true,
        api: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        announce_every_secs: 2,
        offer_ttl_secs: 30,
        chain_id: anvil.chain_id(),
        escrow: Some(escrow.to_string()),
        rpc_url: Some(anvil.endpoint()),
        chain_poll_ms: 200,
        settle_every_secs: 1,
        claim_every_secs: 10,
        claim_threshold: E18 / 10,
        // Longer than a spot check with its escalation takes.
        voucher_timeout_secs: 60,
        channel_deposit: 5 * E18,
        verify_local_network: true,
        // One block (a second) before the roles act on an event, and a provider serves a
        // fresh channel at once up to a whole deposit: today's tests stay fast, and the
        // confirmed path runs in every one of them (docs/finality.md).
        finality: FinalityConfig {
            confirmations: 1,
            unconfirmed_risk: 5 * E18,
        },
        ..NodeConfig::default()
    }
}

impl Devnet {
    /// Starts anvil, deploys, funds and starts the nodes; returns once every node holds
    /// every provider's offer.
    pub async fn start(cfg: DevnetConfig) -> anyhow::Result<Self> {
        let anvil_path = find_anvil()?;
        let anvil = tokio::task::block_in_place(|| {
            // Interval mining: blocks come every second whether or not anyone sends a
            // transaction, as on a real chain (a dispute's verifier draw waits for the block
            // after the dispute).
            Anvil::at(&anvil_path)
                .host("127.0.0.1")
                .block_time(1)
                .try_spawn()
                .with_context(|| format!("starting {}", anvil_path.display()))
        })?;
        let deployer_key: PrivateKeySigner = anvil
            .keys()
            .first()
            .context("anvil has no dev accounts")?
            .clone()
            .into();
        let deployer = connect(&deployer_key, &anvil.endpoint())?;
        let decimals = cfg.token_decimals;
        let dep =
            crate::tokens::deploy_with_decimals(deployer.clone(), cfg.escrow.clone(), decimals)
                .await
                .context("deploying the token and the escrow")?;
        let units = |at_18: u128| sietch_node::chain::token::rescale_from_18(at_18, decimals);
        let token = MockToken::new(dep.token, deployer.clone());

        let proxy = match cfg.hostile {
            true => {
                let upstream = ([127, 0, 0, 1], anvil.port()).into();
                Some(RpcProxy::start(upstream, 30_000).await?)
            }
            false => None,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(8192);
        let owner_chain = cold_owner::OwnerChain {
            deployer: &deployer,
            endpoint: anvil.endpoint(),
            chain_id: anvil.chain_id(),
            escrow: dep.escrow,
            token: dep.token,
        };
        let start_node = async |name: String,
                                provide: bool,
                                cheat: u32,
                                bootstrap: Vec<String>,
                                cold: bool|
               -> anyhow::Result<(Node, Option<ColdOwner>)> {
            let dir = cfg.dir.join(&name);
            let password_file = cfg.dir.join(format!("{name}.password"));
            let id = if cold {
                cold_owner::init_operator(&dir, &password_file)?
            } else {
                sietch_node::service::init(&dir, false)?
            };
            // Gas for the node's own account, and tokens unless its owner is cold (the
            // operator needs gas only).
            deployer
                .raw_request::<_, ()>(
                    "anvil_setBalance".into(),
                    (id.evm_address, U256::from(1_000u128 * E18)),
                )
                .await
                .context("funding a node with ETH")?;
            if !cold {
                send(token.mint(id.evm_address, U256::from(units(cfg.funds * E18)))).await?;
            }
            let mut c = node_config(&anvil, dep.escrow);
            c.provide = provide;
            c.stake = if provide { cfg.stake * E18 } else { 0 };
            c.bootstrap = bootstrap;
            c.test_cheat_ppm = cheat;
            (cfg.tweak)(&name, &mut c);
            if let Some(p) = &proxy {
                c.rpc_url = Some(p.url());
                c.finality.confirmations = HOSTILE_CONFIRMATIONS;
                c.transactions.replace_after_secs = 8;
                c.transactions.rpc_retries = 6;
                c.transactions.rpc_backoff_ms = 200;
            }
            if decimals != 18 {
                for amount in [
                    &mut c.stake,
                    &mut c.claim_threshold,
                    &mut c.channel_deposit,
                    &mut c.price_per_gfuel,
                    &mut c.price_per_gpu_second,
                    &mut c.min_job_price,
                    &mut c.finality.unconfirmed_risk,
                ] {
                    *amount = units(*amount);
                }
            }
            let owner = match cold {
                true => Some(
                    cold_owner::stake_for(
                        &owner_chain,
                        &dir,
                        id.evm_address,
                        &password_file,
                        U256::from(units(cfg.funds * E18)),
                        &mut c,
                    )
                    .await?,
                ),
                false => None,
            };
            let events = Events::new();
            let mut sub = events.subscribe();
            let out = tx.clone();
            let tag = name.clone();
            tokio::spawn(async move {
                while let Ok(e) = sub.recv().await {
                    if out.send((tag.clone(), e)).await.is_err() {
                        return;
                    }
                }
            });
            let node = Node::start(&dir, c, events)
                .await
                .with_context(|| format!("starting {name}"))?;
            Ok((node, owner))
        };
        let mut providers = Vec::new();
        let mut bootstrap = Vec::new();
        let mut cold_owner = None;
        for i in 0..cfg.providers {
            let cheat = cfg.cheats.get(i).copied().unwrap_or(0);
            let cold = cfg.cold_owner && i == 0;
            let (node, owner) = start_node(
                format!("provider-{i}"),
                true,
                cheat,
                bootstrap.clone(),
                cold,
            )
            .await?;
            if owner.is_some() {
                cold_owner = owner;
            }
            if bootstrap.is_empty() {
                let addrs = node.net.wait_listening(1, Duration::from_secs(10)).await?;
                let first = addrs.first().context("provider-0 does not listen")?;
                bootstrap.push(format!("{first}/p2p/{}", node.net.peer_id()));
            }
            providers.push(node);
        }
        let (buyer, _) = start_node("buyer".into(), false, 0, bootstrap.clone(), false).await?;
        let chaos = match cfg.hostile {
            true => Some(Chaos::start(
                deployer.clone(),
                ChaosConfig {
                    max_depth: HOSTILE_CONFIRMATIONS,
                    keep_below: deployer.get_block_number().await? + 1,
                    ..ChaosConfig::default()
                },
            )),
            false => None,
        };
        let me = Self {
            anvil,
            deployer,
            escrow: dep.escrow,
            token: dep.token,
            providers,
            buyer,
            events: rx,
            proxy,
            chaos,
            cold_owner,
        };
        me.wait_for_offers(Duration::from_secs(60)).await?;
        Ok(me)
    }

    /// Waits until the buyer's book holds every provider's offer.
    pub async fn wait_for_offers(&self, timeout: Duration) -> anyhow::Result<()> {
        let want = self.provider_accounts();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let have = {
                let book = self.buyer.net.book();
                let book = book.lock().map_err(|_| anyhow::anyhow!("the book"))?;
                want.iter()
                    .filter(|a| book.iter().any(|o| o.payload.evm_address == **a))
                    .count()
            };
            if have == want.len() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the buyer sees {have} of {} providers' offers after {timeout:?}",
                    want.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Each provider's chain account, in order: the address its offer names, its channels
    /// pay and its stake is under (a cold owner's for a node that operates for one; else the
    /// node's own EVM address).
    pub fn provider_accounts(&self) -> Vec<Address> {
        self.providers
            .iter()
            .map(|p| p.chain.as_ref().map_or(p.evm_address, |c| c.me()))
            .collect()
    }

    /// Token balance of `who`.
    pub async fn balance(&self, who: Address) -> anyhow::Result<U256> {
        Ok(MockToken::new(self.token, &self.deployer)
            .balanceOf(who)
            .call()
            .await?)
    }

    /// Moves the chain's clock forward (and mines a block).
    pub async fn advance(&self, secs: u64) -> anyhow::Result<()> {
        self.deployer
            .raw_request::<_, serde_json::Value>("evm_increaseTime".into(), (secs,))
            .await?;
        self.deployer
            .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
            .await?;
        Ok(())
    }

    /// Stops every node (providers claim what they are owed on the way out), then anvil.
    pub async fn shutdown(self) {
        self.buyer.shutdown().await;
        for p in self.providers {
            p.shutdown().await;
        }
    }
}
