//! A chain that reorganizes and whose fees spike, at random, while a market trades on it:
//! anvil driven through its RPC methods (`anvil_reorg`, `anvil_setNextBlockBaseFeePerGas`).
//!
//! A reorganization replaces the last few blocks with empty ones; the transactions of the
//! dropped blocks are then sent again as they were signed, as a public network's pools would
//! keep them (those whose nonce another transaction took meanwhile are refused, like there).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{B256, Bytes};
use alloy::providers::{DynProvider, Provider as _};
use rand::Rng as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How hostile the chain is.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Mean time between reorganizations.
    pub reorg_every: Duration,
    /// Deepest reorganization (blocks); each one's depth is drawn from `1..=max_depth`.
    pub max_depth: u64,
    /// Mean time between fee spikes.
    pub spike_every: Duration,
    /// A spike sets the next block's base fee to this many times the current one (at
    /// least this many gwei); it then falls by an eighth a block, as EIP-1559 has it.
    pub spike_factor: u128,
    /// Blocks below this one are never reorganized (the deployment and set-up).
    pub keep_below: u64,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        Self {
            reorg_every: Duration::from_secs(10),
            max_depth: 3,
            spike_every: Duration::from_secs(30),
            spike_factor: 20,
            keep_below: 0,
        }
    }
}

/// What the chaos did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChaosReport {
    /// Reorganizations made.
    pub reorgs: u64,
    /// The deepest, in blocks.
    pub deepest: u64,
    /// Transactions the reorganizations dropped.
    pub txs_dropped: u64,
    /// Of those, sent again and accepted by the pool.
    pub txs_resent: u64,
    /// Fee spikes.
    pub fee_spikes: u64,
    /// The highest base fee set, wei.
    pub highest_base_fee: u128,
    /// RPC calls of the chaos itself that failed (anvil busy or refusing).
    pub errors: u64,
}

/// Chaos running against a chain; [`Chaos::stop`] ends it and gives its report.
pub struct Chaos {
    rpc: DynProvider,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    report: Arc<Mutex<ChaosReport>>,
}

impl Chaos {
    /// Starts the chaos on the chain `rpc` talks to (directly, not through a flaky proxy).
    pub fn start(rpc: DynProvider, cfg: ChaosConfig) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let report = Arc::new(Mutex::new(ChaosReport::default()));
        let r = report.clone();
        let chain = rpc.clone();
        let task = tokio::spawn(async move {
            let mut next_reorg = jitter(cfg.reorg_every);
            let mut next_spike = jitter(cfg.spike_every);
            loop {
                let wait = next_reorg.min(next_spike);
                tokio::select! {
                    _ = stopped.changed() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                next_reorg = next_reorg.saturating_sub(wait);
                next_spike = next_spike.saturating_sub(wait);
                if next_reorg.is_zero() {
                    next_reorg = jitter(cfg.reorg_every);
                    let depth = rand::thread_rng().gen_range(1..=cfg.max_depth.max(1));
                    let done = reorg(&rpc, depth, cfg.keep_below).await;
                    let mut rep = lock(&r);
                    match done {
                        Ok(Some((dropped, resent))) => {
                            rep.reorgs += 1;
                            rep.deepest = rep.deepest.max(depth);
                            rep.txs_dropped += dropped;
                            rep.txs_resent += resent;
                        }
                        Ok(None) => {}
                        Err(_) => rep.errors += 1,
                    }
                }
                if next_spike.is_zero() {
                    next_spike = jitter(cfg.spike_every);
                    let done = spike(&rpc, cfg.spike_factor).await;
                    let mut rep = lock(&r);
                    match done {
                        Ok(fee) => {
                            rep.fee_spikes += 1;
                            rep.highest_base_fee = rep.highest_base_fee.max(fee);
                        }
                        Err(_) => rep.errors += 1,
                    }
                }
            }
        });
        Self {
            rpc: chain,
            stop,
            task,
            report,
        }
    }

    /// What it did so far.
    pub fn report(&self) -> ChaosReport {
        lock(&self.report).clone()
    }

    /// Stops it (a reorganization in progress finishes first); its report. A fee spike
    /// still on passes at once: the next block's base fee is set back to 1 gwei. Left to
    /// EIP-1559, a spike above the nodes' fee cap holds their transactions for a minute or
    /// more (an eighth off a block), past what a test waits to settle.
    pub async fn stop(self) -> ChaosReport {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let mut rep = lock(&self.report).clone();
        if rep.fee_spikes > 0 && set_next_base_fee(&self.rpc, GWEI).await.is_err() {
            rep.errors += 1;
        }
        rep
    }
}

fn lock(m: &Mutex<ChaosReport>) -> std::sync::MutexGuard<'_, ChaosReport> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Between half and one and a half of `mean`.
fn jitter(mean: Duration) -> Duration {
    mean.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
}

/// Replaces the last `depth` blocks with empty ones and sends their transactions again:
/// how many were dropped and how many the pool took back; `None` when the chain is too
/// short to reorganize that deep above `keep_below`.
async fn reorg(
    rpc: &DynProvider,
    depth: u64,
    keep_below: u64,
) -> anyhow::Result<Option<(u64, u64)>> {
    let head = rpc.get_block_number().await?;
    if head < keep_below + depth {
        return Ok(None);
    }
    let mut raws: Vec<Bytes> = Vec::new();
    for n in head + 1 - depth..=head {
        let block: serde_json::Value = rpc
            .raw_request("eth_getBlockByNumber".into(), (format!("{n:#x}"), false))
            .await?;
        let hashes = block
            .get("transactions")
            .and_then(|t| t.as_array())
            .cloned()
            .unwrap_or_default();
        for h in hashes {
            let Some(h) = h.as_str().and_then(|s| s.parse::<B256>().ok()) else {
                continue;
            };
            let raw: Option<Bytes> = rpc
                .raw_request("eth_getRawTransactionByHash".into(), (h,))
                .await?;
            raws.extend(raw);
        }
    }
    rpc.raw_request::<_, serde_json::Value>(
        "anvil_reorg".into(),
        (depth, Vec::<serde_json::Value>::new()),
    )
    .await?;
    let mut resent = 0;
    for raw in &raws {
        if rpc
            .raw_request::<_, B256>("eth_sendRawTransaction".into(), (raw,))
            .await
            .is_ok()
        {
            resent += 1;
        }
    }
    Ok(Some((raws.len() as u64, resent)))
}

/// Sets the next block's base fee to `factor` times the latest one's (at least `factor`
/// gwei); the fee set.
async fn spike(rpc: &DynProvider, factor: u128) -> anyhow::Result<u128> {
    let block: serde_json::Value = rpc
        .raw_request("eth_getBlockByNumber".into(), ("latest", false))
        .await?;
    let base = block
        .get("baseFeePerGas")
        .and_then(|b| b.as_str())
        .and_then(|s| u128::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0);
    let fee = (base * factor).max(factor * GWEI);
    set_next_base_fee(rpc, fee).await?;
    Ok(fee)
}

const GWEI: u128 = 1_000_000_000;

async fn set_next_base_fee(rpc: &DynProvider, fee: u128) -> anyhow::Result<()> {
    rpc.raw_request::<_, serde_json::Value>(
        "anvil_setNextBlockBaseFeePerGas".into(),
        (format!("{fee:#x}"),),
    )
    .await?;
    Ok(())
}
