//! A whole Sietch market on loopback for the whole-system tests and benchmarks: a real anvil
//! (mining a block a second) with the mock token and the escrow deployed, and real `sietch
//! node run` processes — providers registered and staked, buyers — each with its own data
//! directory, configuration file and HTTP API, funded from the chain's first account.
//! Tests drive the buyers through the HTTP API, as a user or the SDK would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use crate::devnet::{self, E18};
use crate::hostile::RpcProxy;
use crate::process as procs;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use serde_json::Value;
use sietch_contracts::{MockToken, SietchEscrow, send};
use sietch_node::config::NodeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use crate::fnv::{hash_guest, hex as fnv_hex};
pub use crate::process::{Node, Nodes, Spec};

/// How long one step may take on a loaded 2-core machine.
pub const STEP: Duration = Duration::from_secs(90);

/// What to start.
pub struct MarketConfig {
    /// Provider nodes.
    pub providers: usize,
    /// Buyer nodes.
    pub buyers: usize,
    /// Tokens minted to each node.
    pub funds: u128,
    /// Stake of each provider, tokens.
    pub stake: u128,
    /// Changes to a node's configuration by name (`provider-0`, `buyer-0`, ...).
    pub tweak: fn(&str, &mut NodeConfig),
    /// Seconds between anvil's blocks.
    pub block_time: u64,
    /// Nodes reach the chain through a flaky [`RpcProxy`] dropping this many requests in a
    /// million (`None`: straight to anvil).
    pub rpc_proxy_ppm: Option<u32>,
    /// The token's decimals: 18, the mock token; else a [`crate::tokens::TestToken`]. Funds,
    /// stakes and the nodes' amount settings are written at 18 decimals and rescaled.
    pub token_decimals: u8,
}

impl MarketConfig {
    /// `providers` providers and `buyers` buyers, defaults otherwise.
    pub fn new(providers: usize, buyers: usize) -> Self {
        Self {
            providers,
            buyers,
            funds: 10_000,
            stake: 1_000,
            tweak: |_, _| {},
            block_time: 1,
            rpc_proxy_ppm: None,
            token_decimals: 18,
        }
    }
}

/// One node of the market.
#[derive(Debug, Clone)]
pub struct Member {
    /// `provider-0`, `buyer-1`, ...
    pub name: String,
    /// Index in [`Market::nodes`].
    pub index: usize,
    /// Its EVM account.
    pub evm: Address,
    /// Its peer id.
    pub peer: String,
    /// `host:port` of its API.
    pub api: String,
    /// Its API token.
    pub token: String,
}

/// A running market.
pub struct Market {
    /// The chain.
    pub anvil: AnvilInstance,
    /// The deployer's provider.
    pub chain: DynProvider,
    /// The escrow.
    pub escrow: Address,
    /// The token.
    pub token: Address,
    /// The node processes.
    pub nodes: Nodes,
    /// The providers.
    pub providers: Vec<Member>,
    /// The buyers.
    pub buyers: Vec<Member>,
    /// Tokens minted to each node, base units.
    pub funds: U256,
    /// The token's decimals.
    pub decimals: u8,
    /// The flaky RPC endpoint the nodes use, if [`MarketConfig::rpc_proxy_ppm`] asked for one.
    pub proxy: Option<RpcProxy>,
    configs: Vec<NodeConfig>,
}

fn line_value(out: &str, prefix: &str) -> anyhow::Result<String> {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::to_owned)
        .with_context(|| format!("no `{prefix}` line in {out}"))
}

impl Market {
    /// Starts the chain and the nodes; returns once every buyer sees every provider's offer.
    pub async fn start(cfg: MarketConfig) -> anyhow::Result<Self> {
        let anvil_path = devnet::find_anvil()?;
        let anvil = Anvil::at(&anvil_path)
            .host("127.0.0.1")
            .block_time(cfg.block_time)
            .try_spawn()
            .with_context(|| format!("starting {}", anvil_path.display()))?;
        let proxy = match cfg.rpc_proxy_ppm {
            Some(ppm) => {
                let upstream = ([127, 0, 0, 1], anvil.port()).into();
                Some(RpcProxy::start(upstream, ppm).await?)
            }
            None => None,
        };
        let key: PrivateKeySigner = anvil
            .keys()
            .first()
            .context("anvil has no accounts")?
            .clone()
            .into();
        let chain = devnet::connect(&key, &anvil.endpoint())?;
        let decimals = cfg.token_decimals;
        let dep =
            crate::tokens::deploy_with_decimals(chain.clone(), devnet::escrow_config(), decimals)
                .await?;
        let units = |at_18: u128| sietch_node::chain::token::rescale_from_18(at_18, decimals);
        let mut m = Self {
            anvil,
            chain,
            escrow: dep.escrow,
            token: dep.token,
            nodes: Nodes(Vec::new()),
            providers: Vec::new(),
            buyers: Vec::new(),
            funds: U256::from(units(cfg.funds * E18)),
            decimals,
            proxy,
            configs: Vec::new(),
        };
        let mut bootstrap: Vec<String> = Vec::new();
        for i in 0..cfg.providers + cfg.buyers {
            let provide = i < cfg.providers;
            let name = if provide {
                format!("provider-{i}")
            } else {
                format!("buyer-{}", i - cfg.providers)
            };
            let mut c = devnet::node_config(&m.anvil, m.escrow);
            if let Some(p) = &m.proxy {
                c.rpc_url = Some(p.url());
            }
            c.provide = provide;
            c.stake = if provide { cfg.stake * E18 } else { 0 };
            c.bootstrap = bootstrap.clone();
            c.result_slack_secs = 5;
            (cfg.tweak)(&name, &mut c);
            rescale_amounts(&mut c, decimals);
            let member = m.start_node(&name, c).await?;
            if bootstrap.is_empty() {
                let listen = m
                    .nodes
                    .wait_for(member.index, "a TCP listen address", STEP, |l| {
                        l.strip_prefix("listening ")
                            .filter(|a| a.contains("/tcp/"))
                            .map(str::to_owned)
                    });
                bootstrap.push(format!("{listen}/p2p/{}", member.peer));
            }
            if provide {
                m.providers.push(member);
            } else {
                m.buyers.push(member);
            }
        }
        for b in m.buyers.clone() {
            m.wait_offers(&b, m.providers.len()).await?;
        }
        Ok(m)
    }

    async fn start_node(&mut self, name: &str, config: NodeConfig) -> anyhow::Result<Member> {
        let (dir, out) = procs::init(name);
        let evm: Address = line_value(&out, "evm address ")?.parse()?;
        self.gas(evm).await?;
        send(MockToken::new(self.token, &self.chain).mint(evm, self.funds)).await?;
        self.launch(name, dir, &out, config).await
    }

    /// Gives `who` 1,000 ETH for gas.
    pub async fn gas(&self, who: Address) -> anyhow::Result<()> {
        self.chain
            .raw_request::<_, ()>(
                "anvil_setBalance".into(),
                (who, U256::from(1_000u128 * E18)),
            )
            .await?;
        Ok(())
    }

    /// Starts `sietch node run` on `dir`, a data directory `sietch init` made (its output
    /// `init_out` names the node's account and peer), with `config`; returns once it is
    /// ready. Funding, staking and adding it to [`Market::providers`] or [`Market::buyers`]
    /// are the caller's (a node made another way than [`Market::start`]'s: a keystore, a
    /// cold owner).
    pub async fn launch(
        &mut self,
        name: &str,
        dir: tempfile::TempDir,
        init_out: &str,
        config: NodeConfig,
    ) -> anyhow::Result<Member> {
        let evm: Address = line_value(init_out, "evm address ")?.parse()?;
        let peer = line_value(init_out, "peer ")?;
        std::fs::write(dir.path().join("config.toml"), config.to_toml())?;
        let token = std::fs::read_to_string(dir.path().join("api-token"))?
            .trim()
            .to_owned();
        let index = self.nodes.0.len();
        self.nodes.0.push(Node::start_in(
            dir,
            Spec {
                name: name.to_owned(),
                ns: None,
                args: Vec::new(),
                rust_log: "warn,sietch_node=info".into(),
            },
        ));
        self.configs.push(config);
        let api = self
            .nodes
            .wait_for(index, "its `api` line", STEP, procs::api_line);
        self.nodes
            .wait_for(index, "`ready`", STEP, |l| (l == "ready").then_some(()));
        Ok(Member {
            name: name.to_owned(),
            index,
            evm,
            peer,
            api,
            token,
        })
    }

    /// Waits until `who` holds `n` offers.
    pub async fn wait_offers(&mut self, who: &Member, n: usize) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let offers = get(&who.api, "/api/v1/offers").await?;
            if offers.as_array().is_some_and(|a| a.len() >= n) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{} sees {} offers, not {n}\n{}",
                    who.name,
                    offers.as_array().map_or(0, Vec::len),
                    self.nodes.dump()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Token balance of `who`.
    pub async fn balance(&self, who: Address) -> anyhow::Result<U256> {
        Ok(MockToken::new(self.token, &self.chain)
            .balanceOf(who)
            .call()
            .await?)
    }

    /// The escrow, for reads.
    pub fn escrow(&self) -> SietchEscrow::SietchEscrowInstance<&DynProvider> {
        SietchEscrow::new(self.escrow, &self.chain)
    }

    /// Uploads a blob to `who`; its hash.
    pub async fn upload(&self, who: &Member, bytes: &[u8]) -> anyhow::Result<B256> {
        let v = request(&who.api, "POST", "/api/v1/blobs", Some(&who.token), bytes).await?;
        Ok(v["hash"].as_str().context("no hash")?.parse()?)
    }

    /// Submits a job to `who` and waits for it to finish; the API's answer.
    pub async fn run_job(&self, who: &Member, job: &Value) -> anyhow::Result<Value> {
        request(
            &who.api,
            "POST",
            "/api/v1/jobs?wait=true",
            Some(&who.token),
            job.to_string().as_bytes(),
        )
        .await
    }

    /// Submits a job to `who` without waiting; its id.
    pub async fn submit(&self, who: &Member, job: &Value) -> anyhow::Result<B256> {
        let v = request(
            &who.api,
            "POST",
            "/api/v1/jobs",
            Some(&who.token),
            job.to_string().as_bytes(),
        )
        .await?;
        Ok(v["job_id"].as_str().context("no job id")?.parse()?)
    }

    /// A job as `who` stored it (`side`: buyer or provider).
    pub async fn job(&self, who: &Member, side: &str, id: &B256) -> anyhow::Result<Value> {
        get(&who.api, &format!("/api/v1/jobs/{id}?side={side}")).await
    }

    /// The escrow's events so far.
    pub async fn escrow_events(&self) -> anyhow::Result<Vec<SietchEscrow::SietchEscrowEvents>> {
        use alloy::sol_types::SolEventInterface;
        let head = self.chain.get_block_number().await?;
        let filter = alloy::rpc::types::Filter::new()
            .address(self.escrow)
            .from_block(0)
            .to_block(head);
        Ok(self
            .chain
            .get_logs(&filter)
            .await?
            .iter()
            .filter_map(|l| SietchEscrow::SietchEscrowEvents::decode_log(&l.inner).ok())
            .map(|l| l.data)
            .collect())
    }

    /// Restarts node `index` on its data directory.
    pub fn restart(&mut self, member: &Member) -> Member {
        self.nodes.0[member.index].restart();
        let api = self
            .nodes
            .wait_for(member.index, "its `api` line", STEP, procs::api_line);
        self.nodes.wait_for(member.index, "`ready`", STEP, |l| {
            (l == "ready").then_some(())
        });
        let m = Member {
            api,
            ..member.clone()
        };
        for list in [&mut self.providers, &mut self.buyers] {
            for x in list.iter_mut() {
                if x.index == m.index {
                    *x = m.clone();
                }
            }
        }
        m
    }

    /// The configuration node `index` started with.
    pub fn config(&self, index: usize) -> &NodeConfig {
        &self.configs[index]
    }

    /// Everything every node printed, for a failure message.
    pub fn dump(&mut self) -> String {
        self.nodes.dump()
    }
}

/// A new empty directory, removed when dropped: a data directory for [`Market::launch`], or
/// a place for a test's secrets.
pub fn temp_dir() -> anyhow::Result<tempfile::TempDir> {
    Ok(tempfile::tempdir()?)
}

/// Rescales a node's amount settings, written at 18 decimals, to a token of `decimals` (as
/// [`Market::start`] does with each node's).
pub fn rescale_amounts(c: &mut NodeConfig, decimals: u8) {
    if decimals == 18 {
        return;
    }
    for amount in [
        &mut c.stake,
        &mut c.claim_threshold,
        &mut c.channel_deposit,
        &mut c.price_per_gfuel,
        &mut c.price_per_gpu_second,
        &mut c.min_job_price,
        &mut c.finality.unconfirmed_risk,
    ] {
        *amount = sietch_node::chain::token::rescale_from_18(*amount, decimals);
    }
}

/// `GET path` on an API, as JSON.
pub async fn get(api: &str, path: &str) -> anyhow::Result<Value> {
    request(api, "GET", path, None, &[]).await
}

/// A buyer node's channels (`GET /api/v1/channels`) once none of its channel opens is in
/// flight (`channels_opening` of `GET /api/v1/node`): every channel its money went into.
pub async fn settled_channels(api: &str) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let opening = get(api, "/api/v1/node").await?["channels_opening"]
            .as_u64()
            .context("channels_opening")?;
        if opening == 0 {
            return get(api, "/api/v1/channels").await;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{opening} channel opens still in flight after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One HTTP/1.1 request; the JSON answer, or an error with the status and body.
pub async fn request(
    api: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> anyhow::Result<Value> {
    let mut s = tokio::net::TcpStream::connect(api)
        .await
        .with_context(|| format!("connecting to {api}"))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no HTTP header in {text:?}"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if !status.starts_with('2') {
        bail!("{method} {path}: {status}: {body}");
    }
    serde_json::from_str(body).with_context(|| format!("{method} {path}: {body}"))
}

/// Waits until `f` holds, polling every 300 ms, up to `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A job submission for `module` with `stdin`, as `POST /api/v1/jobs` takes it.
pub fn job(module: B256, stdin: B256, sampling_ppm: u32, wall_ms: u64) -> Value {
    serde_json::json!({
        "module": module,
        "stdin": stdin,
        "limits": {"fuel": 2_000_000_000u64, "memory_bytes": 1 << 20, "wall_time_ms": wall_ms, "output_bytes": 1 << 16},
        "verification": {"sampling_ppm": sampling_ppm},
        "price_cap": (E18 / 10).to_string(),
    })
}

/// Decodes the `stdout` of an API answer.
pub fn stdout_of(answer: &Value) -> String {
    use base64::Engine;
    let b = answer["outputs"]["stdout"].as_str().unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b)
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Waits (up to [`STEP`]) for a condition on chain or the API, or fails the test with every
/// node's output: `until!(market, "what", || async { Ok(done) })`.
#[macro_export]
macro_rules! until {
    ($m:ident, $what:expr, $f:expr) => {{
        let r = $crate::system::eventually($what, $crate::system::STEP, $f).await;
        if let Err(e) = r {
            panic!("{e}\n{}", $m.dump());
        }
    }};
}
