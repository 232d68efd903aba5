//! A running node: the store, the network actor, the chain watcher, the HTTP API, and the
//! buyer and (with `provide`) provider roles, wired together. [`Node::start`] starts one on
//! the current tokio runtime; `sietch node run` runs one until Ctrl-C ([`run`]); the devnet
//! and tests start several in one process.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sietch_market::eip712::Domain;
use sietch_market::offer::Prices;
use sietch_market::{Address, Offer, PublicKey};
use sietch_sandbox::{Sandbox, SandboxConfig};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::buyer::{Buyer, BuyerParts};
use crate::chain::{Chain, ChainEvent};
use crate::config::NodeConfig;
use crate::events::{Events, NodeEvent};
use crate::keys::KeyError;
use crate::net::{self, Network};
use crate::provider::{Provider, ProviderParts};
use crate::store::Store;

mod dispatch;
mod error;
mod init;
mod local;
mod steps;

use dispatch::dispatch;
pub use local::local_gpus;
use local::{StoreBlobs, local_features, local_hardware};

pub use error::StartError;
pub use steps::StartStep;

pub use init::{
    EvmKeySetup, ExportFormat, Identity, InitError, InitOptions, encrypt_key, export_key, init,
    init_with,
};

/// Chain events queued for the roles, at most.
const CHAIN_EVENTS: usize = 1024;
/// How long a shutdown waits for the buyer's channel opens in flight.
const OPENS_AT_SHUTDOWN: Duration = Duration::from_secs(30);

/// A running node. Dropping it does not stop it: call [`Node::shutdown`].
pub struct Node {
    /// Its network handle.
    pub net: Network,
    /// Its store.
    pub store: Arc<Store>,
    /// Its event stream.
    pub events: Events,
    /// The buyer role (every node can buy).
    pub buyer: Arc<Buyer>,
    /// The chain, when configured.
    pub chain: Option<Chain>,
    /// Where the HTTP API listens.
    pub api: SocketAddr,
    /// The node's EVM address.
    pub evm_address: Address,
    provider: Option<Arc<Provider>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    /// Opens the store in `data_dir` (made by `sietch init`), starts the network, the chain
    /// watcher, the roles and the API. `events` receives everything the node does from the
    /// start (so a caller can print the first lines).
    pub async fn start(
        data_dir: &Path,
        config: NodeConfig,
        events: Events,
    ) -> Result<Self, StartError> {
        Self::start_reporting(data_dir, config, events, &|_: StartStep| {}).await
    }

    /// [`Node::start`], telling `report` each step as it begins (a progress display).
    pub async fn start_reporting(
        data_dir: &Path,
        mut config: NodeConfig,
        events: Events,
        report: &(dyn Fn(StartStep) + Sync),
    ) -> Result<Self, StartError> {
        config.check()?;
        report(StartStep::OpeningStore);
        let options = crate::store::StoreOptions::default()
            .blob_quota(config.blob_quota_bytes, config.blob_keep_secs);
        let store = Arc::new(Store::open_with(data_dir, options).map_err(|source| {
            StartError::OpenStore {
                dir: data_dir.to_owned(),
                source,
            }
        })?);
        let Some(keys) = store.node_keys()? else {
            return Err(StartError::NoKeys {
                dir: data_dir.to_owned(),
            });
        };
        // Unlocked before anything reaches the chain or the network; scrypt and a prompt
        // block, so off the runtime's threads.
        report(StartStep::UnlockingKey);
        let (evm, origin) = {
            let (dir, cfg, stored) = (data_dir.to_owned(), config.keys.clone(), keys.evm);
            tokio::task::spawn_blocking(move || crate::keys::load(&dir, &cfg, stored.as_ref()))
                .await
                .map_err(|_| KeyError::Interrupted)??
        };
        let password_file = match origin {
            crate::keys::KeyOrigin::Keystore { .. } => {
                crate::keys::password_file_warning(&config.keys)
            }
            _ => None,
        };
        for message in origin.warning(data_dir).into_iter().chain(password_file) {
            tracing::warn!("{message}");
            events.emit(NodeEvent::Warning { message });
        }
        let chain = match (&config.rpc_url, &config.escrow) {
            (Some(url), Some(_)) => Some({
                report(StartStep::ConnectingChain {
                    rpc: steps::endpoint(url),
                });
                Chain::connect_with(
                    url,
                    config.chain_id,
                    config.escrow_address()?,
                    &evm,
                    &config.transactions,
                    Some(store.clone()),
                )
                .await
                .map_err(|e| StartError::chain(url, &config, e))?
            }),
            _ => None,
        };
        if let Some(c) = &chain {
            crate::chain::token::adopt(c, &mut config, &events);
        }
        let domain = match &chain {
            Some(c) => c.domain(),
            None => Domain::new(config.chain_id, config.escrow_address()?),
        };

        let mut net_cfg = config.net_config()?;
        net_cfg.blobs = Some(Arc::new(StoreBlobs(store.clone())));
        net_cfg.registry = chain.as_ref().map(Chain::registry);
        let max_blob_fetch = net_cfg.max_blob_bytes;
        report(StartStep::StartingNetwork);
        let (net, net_events) = Network::spawn(net::keypair(&keys.ed25519), net_cfg)?;
        events.emit(NodeEvent::Peer {
            peer: net.peer_id(),
        });

        let buyer = Buyer::new(BuyerParts {
            config: config.clone(),
            store: store.clone(),
            net: net.clone(),
            events: events.clone(),
            evm: evm.clone(),
            domain,
            chain: chain.clone(),
        })
        .map_err(StartError::Buyer)?;
        // Before the chain watcher starts: a claim it hands on finds its channel's lane.
        report(StartStep::RestoringLanes);
        let lanes = buyer
            .restore_lanes()
            .await
            .map_err(StartError::RestoreLanes)?;
        if lanes > 0 {
            tracing::info!("{lanes} lanes of this buyer restored from the chain and the store");
        }
        let mut own_offer = None;
        let provider = if config.provide {
            let sandbox_config = SandboxConfig {
                max_memory_bytes: config.max_job_memory_bytes,
                max_concurrent_jobs: config.max_concurrent_jobs,
                cache_dir: Some(store.modules_dir()),
                ..SandboxConfig::default()
            };
            // The largest input this provider takes: what it fetches, stores and runs.
            let max_input_bytes = max_blob_fetch
                .min(store.blobs().max_blob_bytes())
                .min(sandbox_config.max_input_bytes as u64);
            let sandbox = Arc::new(Sandbox::new(sandbox_config)?);
            let hardware = local_hardware(&config);
            let offer = Offer {
                provider: PublicKey::of(&keys.ed25519),
                evm_address: evm.address(),
                features: local_features(&hardware),
                hardware,
                prices: Prices {
                    per_gfuel: config.price_per_gfuel,
                    per_gpu_second: config.price_per_gpu_second,
                },
                stake: config.stake,
                addresses: Vec::new(),
                sequence: 0,
                expires_at: 0,
                max_input_bytes,
                // Filled from the blob store at every announcement.
                cached_blobs: Vec::new(),
            };
            own_offer = Some(offer.clone());
            let p = Provider::new(ProviderParts {
                config: config.clone(),
                store: store.clone(),
                net: net.clone(),
                events: events.clone(),
                sandbox,
                evm: evm.clone(),
                key: keys.ed25519.clone(),
                domain,
                offer,
                chain: chain.clone(),
            });
            report(StartStep::Registering {
                confirmations: config.finality.confirmations,
            });
            p.register()
                .await
                .map_err(|e| StartError::Register(Box::new(e)))?;
            Some(p)
        } else {
            None
        };

        let activity = crate::activity::Activity::default();
        let token =
            crate::api::load_or_create_token(data_dir).map_err(|source| StartError::Token {
                dir: data_dir.to_owned(),
                source,
            })?;
        report(StartStep::StartingApi);
        let api = crate::api::serve(
            config.api,
            crate::api::Api {
                net: net.clone(),
                store: store.clone(),
                buyer: buyer.clone(),
                events: events.clone(),
                chain: chain.clone(),
                token: Arc::new(token),
                activity: activity.clone(),
                explorer: config.explorer().filter(|d| d.join("index.html").is_file()),
                http: config.http.clone(),
                provider: crate::api::ProviderInfo {
                    offer: own_offer,
                    offer_gpu: config.offer_gpu,
                    relays: config.relays.len(),
                },
            },
        )
        .await
        .map_err(|source| StartError::Api {
            address: config.api,
            source,
        })?;
        events.emit(NodeEvent::Api { address: api });

        let mut tasks = Vec::new();
        let (chain_tx, chain_rx) = mpsc::channel::<ChainEvent>(CHAIN_EVENTS);
        let credited = Arc::new(tokio::sync::Notify::new());
        if let Some(c) = &chain {
            tasks.push(tokio::spawn(withdraw_credits(c.clone(), credited.clone())));
            let c = c.clone();
            let store = store.clone();
            let (from, poll) = (
                config.chain_from_block,
                Duration::from_millis(config.chain_poll_ms.max(50)),
            );
            let (depth, told) = (config.finality.confirmations, events.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = c.watch(store, from, poll, depth, told, chain_tx).await {
                    tracing::error!("the chain watcher stopped: {e}");
                }
            }));
        }
        tasks.push(tokio::spawn(dispatch(
            net_events,
            chain_rx,
            credited,
            events.clone(),
            activity.clone(),
            buyer.clone(),
            provider.clone(),
        )));
        {
            let mut rx = events.subscribe();
            let activity = activity.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(e) => activity.node_event(&e, (net::system_clock())()),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return,
                    }
                }
            }));
        }
        tasks.push(tokio::spawn(buyer.clone().sweep()));
        tasks.push(tokio::spawn(buyer.clone().after_reorgs(events.subscribe())));
        tasks.push(tokio::spawn(buyer.clone().carry_payments()));
        if let Some(p) = &provider {
            tasks.push(tokio::spawn(p.clone().announce()));
            tasks.push(tokio::spawn(p.clone().settle_loop()));
            tasks.push(tokio::spawn(p.clone().after_reorgs(events.subscribe())));
        }
        {
            let net = net.clone();
            let events = events.clone();
            tasks.push(tokio::spawn(async move {
                let addrs = net
                    .wait_listening(1, Duration::from_secs(10))
                    .await
                    .unwrap_or_default();
                tokio::time::sleep(Duration::from_millis(100)).await;
                for a in net.listen_addrs().await.unwrap_or(addrs) {
                    events.emit(NodeEvent::Listening { address: a });
                }
                events.emit(NodeEvent::Ready);
            }));
        }
        report(StartStep::Ready);
        Ok(Self {
            net,
            store,
            events,
            buyer,
            chain,
            api,
            evm_address: evm.address(),
            provider,
            tasks,
        })
    }

    /// Stops the node: a provider withdraws its offer and claims what it is owed first.
    pub async fn shutdown(self) {
        self.events.emit(NodeEvent::ShuttingDown);
        // A channel open in flight lands first: its lane is then known like the others.
        if !self.buyer.opens_settled(OPENS_AT_SHUTDOWN).await {
            tracing::warn!(
                "{} channel opens still in flight after {} s: stopping without them",
                self.buyer.channels_opening(),
                OPENS_AT_SHUTDOWN.as_secs()
            );
        }
        // Payments waiting on their lanes go now: each is what a provider is owed.
        self.buyer.send_payments_now().await;
        if let Some(p) = &self.provider {
            p.withdraw().await;
            if let Some(c) = &self.chain
                && let Err(e) = p.claim_vouchers(c, true).await
            {
                tracing::warn!("claiming on the way out: {e:#}");
            }
        }
        for t in &self.tasks {
            t.abort();
        }
        self.net.shutdown().await;
    }
}

/// Withdraws what the escrow credits to this node's account (settled tickets, refunds,
/// bonds, verifier pay): at start (a node restarted with a balance) and whenever the
/// dispatcher sees a credit to it; again every minute, should a withdrawal have failed.
async fn withdraw_credits(chain: Chain, credited: Arc<tokio::sync::Notify>) {
    loop {
        match chain.withdraw().await {
            Ok(0) => {}
            Ok(amount) => tracing::info!("withdrew {amount} credited by the escrow"),
            Err(e) => tracing::warn!("withdrawing from the escrow: {e}"),
        }
        tokio::select! {
            () = credited.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

/// Runs a node until `shutdown` resolves, printing its events as lines on stdout and telling
/// `report` its start-up steps.
pub async fn run(
    data_dir: &Path,
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
    report: &(dyn Fn(StartStep) + Sync),
) -> Result<(), StartError> {
    let events = Events::new();
    let mut rx = events.subscribe();
    let printer = tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(e) => println!("{e}"),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    println!("warning {n} events not printed (output too slow)");
                }
                Err(_) => return,
            }
        }
    });
    let node = match Node::start_reporting(data_dir, config, events, report).await {
        Ok(n) => n,
        Err(e) => {
            // Let the lines printed so far out before the error.
            tokio::time::sleep(Duration::from_millis(50)).await;
            printer.abort();
            return Err(e);
        }
    };
    shutdown.await;
    node.shutdown().await;
    // Let the last lines out.
    tokio::time::sleep(Duration::from_millis(50)).await;
    printer.abort();
    Ok(())
}
