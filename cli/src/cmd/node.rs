//! `sietch node run`: runs a node until Ctrl-C or SIGTERM.
//!
//! Settings come in layers: defaults < `config.toml` in the data directory (or `--config`)
//! < `SIETCH_*` environment variables < flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use anyhow::Context;
use clap::{Args, Subcommand};
use sietch_node::config::{CONFIG_FILE, NodeConfig};
use sietch_node::service::StartStep;

#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    #[command(subcommand)]
    command: NodeCommand,
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Run the node: join the network, keep the order book, serve the API and, with
    /// `--provide`, sell this machine's compute.
    Run(Box<RunArgs>),
    /// Print the configuration `node run` would use with the same flags and environment
    /// (defaults < config file < SIETCH_* environment < flags), as TOML.
    Config(Box<RunArgs>),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The node's data directory (created by `sietch init`).
    #[arg(long, env = "SIETCH_DATA_DIR", default_value_os_t = super::default_data_dir())]
    data_dir: PathBuf,
    /// Configuration file [default: DATA_DIR/config.toml].
    #[arg(long, env = "SIETCH_CONFIG")]
    config: Option<PathBuf>,
    /// A libp2p address to listen on, e.g. /ip4/0.0.0.0/tcp/7070 (repeatable; replaces the
    /// configured list).
    #[arg(long, env = "SIETCH_LISTEN", value_delimiter = ',')]
    listen: Vec<String>,
    /// A peer to join through, ending in /p2p/<peer id> (repeatable; adds to the config).
    #[arg(long, env = "SIETCH_BOOTSTRAP", value_delimiter = ',')]
    bootstrap: Vec<String>,
    /// Do not look for peers on the local network with mDNS.
    #[arg(long, env = "SIETCH_NO_MDNS")]
    no_mdns: bool,
    /// Relay connections for nodes behind NAT (for nodes with a public address).
    #[arg(long, env = "SIETCH_RELAY_SERVER")]
    relay_server: bool,
    /// Listen through this relay, ending in /p2p/<relay id> (repeatable).
    #[arg(long = "relay", env = "SIETCH_RELAY", value_delimiter = ',')]
    relays: Vec<String>,
    /// Let AutoNAT use and serve private addresses (private networks, tests).
    #[arg(long, env = "SIETCH_AUTONAT_PRIVATE")]
    autonat_private: bool,
    /// Address of the HTTP API.
    #[arg(long, env = "SIETCH_API")]
    api: Option<SocketAddr>,
    /// The explorer's built files (`explorer/dist` of a checkout), served at `/`; without
    /// it (or `explorer_dir` in the config) `/` says how to build one.
    #[arg(long, env = "SIETCH_EXPLORER_DIR")]
    explorer_dir: Option<PathBuf>,
    /// Sell this machine's compute: announce an offer and run jobs.
    #[arg(long, env = "SIETCH_PROVIDE")]
    provide: bool,
    /// Price per 10^9 fuel, in token base units.
    #[arg(long, env = "SIETCH_PRICE_PER_GFUEL")]
    price_per_gfuel: Option<u128>,
    /// The least a job's ticket must allow, in token base units (about what claiming a
    /// ticket costs in gas, so that a withheld voucher is worth claiming).
    #[arg(long, env = "SIETCH_MIN_JOB_PRICE")]
    min_job_price: Option<u128>,
    /// Re-announce the offer this often, in seconds.
    #[arg(long, env = "SIETCH_ANNOUNCE_EVERY")]
    announce_every: Option<u64>,
    /// Lifetime of each announced offer, in seconds.
    #[arg(long, env = "SIETCH_OFFER_TTL")]
    offer_ttl: Option<u64>,
    /// Sell CPU time only, even where a GPU is found.
    #[arg(long, env = "SIETCH_NO_GPU")]
    no_gpu: bool,
    /// Price per GPU-second, in token base units.
    #[arg(long, env = "SIETCH_PRICE_PER_GPU_SECOND")]
    price_per_gpu_second: Option<u128>,
    /// Stake stated in the offer, in token base units (buyers check it on chain).
    #[arg(long, env = "SIETCH_STAKE")]
    stake: Option<u128>,
    /// Jobs run at once; more are refused as busy.
    #[arg(long, env = "SIETCH_MAX_CONCURRENT_JOBS")]
    max_concurrent_jobs: Option<u32>,
    /// Chain id of the escrow (EIP-712 domain of tickets, results and vouchers).
    #[arg(long, env = "SIETCH_CHAIN_ID")]
    chain_id: Option<u64>,
    /// The escrow contract's address (0x...).
    #[arg(long, env = "SIETCH_ESCROW")]
    escrow: Option<String>,
    #[command(flatten)]
    key: super::key::KeyFlags,
    /// Show the start-up steps on stderr as plain lines where stderr is not a terminal (on a
    /// terminal a spinner shows them anyway).
    #[arg(long)]
    progress: bool,
}

impl RunArgs {
    /// Applies environment and flags over the file's settings.
    fn layer(&self, mut c: NodeConfig) -> NodeConfig {
        if !self.listen.is_empty() {
            c.listen = self.listen.clone();
        }
        c.bootstrap.extend(self.bootstrap.iter().cloned());
        c.relays.extend(self.relays.iter().cloned());
        c.mdns &= !self.no_mdns;
        c.relay_server |= self.relay_server;
        c.autonat_private |= self.autonat_private;
        c.provide |= self.provide;
        c.offer_gpu &= !self.no_gpu;
        if let Some(a) = self.api {
            c.api = a;
        }
        if let Some(d) = &self.explorer_dir {
            c.explorer_dir = Some(d.clone());
        }
        if let Some(p) = self.price_per_gfuel {
            c.price_per_gfuel = p;
        }
        if let Some(p) = self.min_job_price {
            c.min_job_price = p;
        }
        if let Some(s) = self.announce_every {
            c.announce_every_secs = s;
        }
        if let Some(s) = self.offer_ttl {
            c.offer_ttl_secs = s;
        }
        if let Some(p) = self.price_per_gpu_second {
            c.price_per_gpu_second = p;
        }
        if let Some(s) = self.stake {
            c.stake = s;
        }
        if let Some(n) = self.max_concurrent_jobs {
            c.max_concurrent_jobs = n;
        }
        if let Some(id) = self.chain_id {
            c.chain_id = id;
        }
        if let Some(e) = &self.escrow {
            c.escrow = Some(e.clone());
        }
        c
    }

    /// The layered configuration, checked.
    fn config(&self) -> anyhow::Result<NodeConfig> {
        let file = self
            .config
            .clone()
            .unwrap_or_else(|| self.data_dir.join(CONFIG_FILE));
        if self.config.is_some() && !file.exists() {
            anyhow::bail!("the configuration file {} does not exist", file.display());
        }
        let mut config = self.layer(NodeConfig::load(&file)?);
        self.key.layer(&mut config.keys)?;
        config.check()?;
        Ok(config)
    }
}

pub(crate) fn run(args: NodeArgs) -> anyhow::Result<()> {
    match args.command {
        NodeCommand::Config(args) => {
            print!("{}", args.config()?.to_toml());
            Ok(())
        }
        NodeCommand::Run(args) => {
            let config = args.config()?;
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            // The start-up steps on stderr, until the node has started (stdout carries the
            // node's events).
            let show = super::progress::Show::choose(false, args.progress);
            let starting = Mutex::new(Some(super::progress::Progress::start(
                show,
                "starting the node",
            )));
            let report = |step: StartStep| {
                let mut shown = starting.lock().unwrap_or_else(PoisonError::into_inner);
                match step {
                    StartStep::Ready => drop(shown.take()),
                    step => {
                        if let Some(p) = shown.as_ref() {
                            p.set(step.to_string());
                        }
                    }
                }
            };
            let ran = rt.block_on(sietch_node::service::run(
                &args.data_dir,
                config,
                shutdown_signal(),
                &report,
            ));
            drop(starting);
            Ok(ran?)
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
