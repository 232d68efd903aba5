//! `GET /api/v1/provider`: this node as a provider, in one read. What it earned over time,
//! the jobs it ran, how its results fared, its stake and the job values that stake allows,
//! its channels with what is owed and claimable, its GPU and blob cache, and a pre-flight
//! check that says what stops it from earning (each check `ok`, `warning` or `blocking`,
//! with the fix in words).
//!
//! Everything comes from the store (the provider's jobs, the latest vouchers), the chain
//! (the account, `minStake`, each channel's `paid`: at most [`MAX_CHANNELS`] reads, each
//! bounded by [`CHAIN_READ`]), the network's counters (AutoNAT's judgement) and the activity
//! (withheld payments since start). A node that does not provide answers too, with
//! `providing: false` and the check that says so.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};
use sietch_market::{Address, B256, U256};

use super::Api;
use super::error::{ApiError, unavailable};
use crate::chain::token::TokenInfo;
use crate::chain::{AccountView, ChannelView};
use crate::net::Reachability;
use crate::store::{JobRecord, JobState, Side};

/// Most provider jobs read (the store keys them by id: past this, counts are of a sample).
const SCAN_JOBS: usize = 10_000;
/// Most channels read on chain, the most recently used first.
pub(crate) const MAX_CHANNELS: usize = 64;
/// Longest one chain read may take before the chain counts as unreachable.
pub(crate) const CHAIN_READ: Duration = Duration::from_secs(3);
/// The earnings' bucket width with nothing paid yet.
const BUCKET_SECS: u64 = 10;
/// Most buckets of the earnings series.
const MAX_BUCKETS: u64 = 120;
/// Bucket widths the earnings series picks from, seconds: the first that fits the span.
const WIDTHS: [u64; 7] = [10, 60, 600, 3_600, 21_600, 86_400, WIDEST];
/// The widest bucket: a week.
const WIDEST: u64 = 604_800;
/// Sampling rates the value cap is given at, parts per million (1%, the default 10%, 50%).
const CAP_RATES: [u32; 3] = [10_000, 100_000, 500_000];
/// Blob cache use that is worth a warning, and one that blocks, in percent of the quota.
const BLOBS_WARN: u64 = 90;
const BLOBS_BLOCK: u64 = 98;

/// What the API knows of this node as a provider, from the service.
#[derive(Debug, Clone, Default)]
pub struct ProviderInfo {
    /// The offer as built at start (hardware, prices, stated stake), when providing.
    pub offer: Option<sietch_market::Offer>,
    /// Whether the config offers the GPU (`offer_gpu`).
    pub offer_gpu: bool,
    /// Relays configured to listen through.
    pub relays: usize,
}

/// How a check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    /// Nothing to do.
    Ok,
    /// Earning, but less than it could, or soon not at all.
    Warning,
    /// Not earning until it is fixed.
    Blocking,
}

/// One pre-flight check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Check {
    /// Its name: `providing`, `chain`, `registered`, `stake`, `gpu`, `reachable`, `blobs`.
    pub(crate) check: &'static str,
    pub(crate) status: Status,
    /// What is the case, in words.
    pub(crate) message: String,
    /// What to do about it (`None` when ok).
    pub(crate) fix: Option<String>,
}

fn check(check: &'static str, status: Status, message: String, fix: Option<&str>) -> Check {
    Check {
        check,
        status,
        message,
        fix: fix.map(str::to_owned),
    }
}

/// The chain as the provider sees it.
#[derive(Debug, Clone)]
pub(crate) enum ChainFacts {
    /// No `rpc_url` and `escrow` configured.
    None,
    /// A read failed or took too long.
    Unreachable(String),
    /// The account and the escrow's `minStake`.
    Read {
        account: AccountView,
        min_stake: u128,
    },
}

/// What the pre-flight check looks at.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    pub(crate) providing: bool,
    pub(crate) chain: ChainFacts,
    /// This node's ed25519 key.
    pub(crate) node_key: [u8; 32],
    /// The stake the offer states.
    pub(crate) offered_stake: u128,
    pub(crate) offer_gpu: bool,
    pub(crate) gpus: usize,
    pub(crate) reachability: Reachability,
    /// Relays configured, or a relayed listen address.
    pub(crate) relayed: bool,
    pub(crate) blob_bytes: u64,
    pub(crate) blob_quota: u64,
    /// The escrow's token, for the amounts in the sentences.
    pub(crate) token: TokenInfo,
}

/// What stops this provider from earning, in order: providing, chain, registration, stake,
/// GPU, reachability, blob cache.
pub(crate) fn preflight(f: &Facts) -> Vec<Check> {
    use Status::{Blocking, Ok, Warning};
    let mut out = Vec::new();
    if !f.providing {
        // Nothing else matters until it provides (and a buyer's stake, GPU and
        // reachability are no provider's).
        out.push(check(
            "providing",
            Blocking,
            "this node does not provide: it announces no offer and refuses every job".into(),
            Some("start it with `sietch node run --provide` (or `provide = true` in config.toml)"),
        ));
        return out;
    }
    {
        out.push(check(
            "providing",
            Ok,
            "this node sells compute: it announces an offer and runs the jobs buyers send".into(),
            None,
        ));
    }
    match &f.chain {
        ChainFacts::None => out.push(check(
            "chain",
            Blocking,
            "no chain is configured: buyers pay only through the escrow, so no job is paid".into(),
            Some("set `rpc_url` and `escrow` in config.toml and restart the node"),
        )),
        ChainFacts::Unreachable(e) => out.push(check(
            "chain",
            Blocking,
            format!("the chain does not answer: {e}"),
            Some(
                "check that the chain's RPC endpoint (`rpc_url`) is up and reachable from \
                 this machine; the node claims its pay and takes channels only through it",
            ),
        )),
        ChainFacts::Read { account, min_stake } => {
            out.push(check("chain", Ok, "the chain answers".into(), None));
            if account.node_key == f.node_key {
                out.push(check(
                    "registered",
                    Ok,
                    "this node's key is registered with the escrow for its account".into(),
                    None,
                ));
            } else if account.node_key == [0; 32] {
                out.push(check(
                    "registered",
                    Blocking,
                    "this account is not registered with the escrow: other nodes drop its offer"
                        .into(),
                    Some("restart with `--provide`: a provider registers and stakes at start"),
                ));
            } else {
                out.push(check(
                    "registered",
                    Blocking,
                    "this account is registered with another node key: other nodes drop this \
                     node's offer"
                        .into(),
                    Some(
                        "run the node whose key is registered, or register this one (restart \
                         with `--provide`)",
                    ),
                ));
            }
            let stake = account.stake;
            if stake < *min_stake {
                out.push(check(
                    "stake",
                    Blocking,
                    format!(
                        "the stake on chain, {}, is below the escrow's minStake, {}: buyers \
                         cannot pay this provider through a channel",
                        f.token.show(stake),
                        f.token.show(*min_stake)
                    ),
                    Some(
                        "stake at least the escrow's minStake (`stake` in config.toml) and restart",
                    ),
                ));
            } else if stake < f.offered_stake {
                out.push(check(
                    "stake",
                    Blocking,
                    format!(
                        "the offer states a stake of {}, more than the {} on chain: \
                         other nodes drop the offer",
                        f.token.show(f.offered_stake),
                        f.token.show(stake)
                    ),
                    Some("state no more than the stake on chain (`stake` in config.toml)"),
                ));
            } else {
                let cap = sietch_market::max_job_value(f.offered_stake, 100_000)
                    .map_or_else(|| "any amount".to_owned(), |c| f.token.show(c));
                out.push(check(
                    "stake",
                    Ok,
                    format!(
                        "stake {} on chain, at least the escrow's minStake ({}); the \
                         offer states {}, so a buyer checking one job in ten sends jobs worth \
                         up to {cap} each",
                        f.token.show(stake),
                        f.token.show(*min_stake),
                        f.token.show(f.offered_stake)
                    ),
                    None,
                ));
            }
        }
    }
    if !f.offer_gpu {
        out.push(check(
            "gpu",
            Ok,
            "the GPU is not offered (`offer_gpu = false`): this node sells CPU time".into(),
            None,
        ));
    } else if f.gpus == 0 {
        out.push(check(
            "gpu",
            Warning,
            "no GPU was found (no CUDA device or driver): this node sells CPU time only, and \
             GPU jobs go elsewhere"
                .into(),
            Some(
                "install the NVIDIA driver and check that `nvidia-smi` lists device 0, then \
                 restart; or set `offer_gpu = false` (`--no-gpu`) to sell CPU time on purpose",
            ),
        ));
    } else {
        out.push(check("gpu", Ok, format!("{} GPU offered", f.gpus), None));
    }
    match (f.reachability, f.relayed) {
        (Reachability::Public, _) => out.push(check(
            "reachable",
            Ok,
            "peers dial this node back (AutoNAT): it is reachable from outside".into(),
            None,
        )),
        (_, true) => out.push(check(
            "reachable",
            Ok,
            "reachable through a relay (slower than direct; hole punching is tried)".into(),
            None,
        )),
        (Reachability::Private, false) => out.push(check(
            "reachable",
            Blocking,
            "peers cannot dial this node (AutoNAT says private) and it has no relay: buyers \
             outside this network cannot send it jobs"
                .into(),
            Some(
                "forward the listen port (7070 TCP and UDP by default) to this machine, or \
                 name a relay with `--relay ADDR`",
            ),
        )),
        (Reachability::Unknown, false) => out.push(check(
            "reachable",
            Warning,
            "AutoNAT has not judged yet whether peers can dial this node, and it has no relay"
                .into(),
            Some(
                "wait for more peers to connect; if it stays unknown, forward the listen port \
                 or name a relay with `--relay ADDR`",
            ),
        )),
    }
    let used = if f.blob_quota == 0 {
        100
    } else {
        u64::try_from(u128::from(f.blob_bytes) * 100 / u128::from(f.blob_quota)).unwrap_or(u64::MAX)
    };
    let blobs = format!(
        "blobs use {} MiB of their {} MiB quota ({used}%)",
        f.blob_bytes >> 20,
        f.blob_quota >> 20
    );
    let fix = "raise `blob_quota_bytes` in config.toml (and the disk under the data \
               directory), or lower `blob_keep_secs` so unused blobs are evicted sooner";
    out.push(if used >= BLOBS_BLOCK {
        check(
            "blobs",
            Blocking,
            format!("{blobs}: a job whose module or inputs must be fetched is refused"),
            Some(fix),
        )
    } else if used >= BLOBS_WARN {
        check("blobs", Warning, format!("{blobs}: nearly full"), Some(fix))
    } else {
        check("blobs", Ok, blobs, None)
    });
    out
}

/// Paid jobs' earnings in time buckets: `(bucket width, [(start, amount, jobs)])`, the width
/// the first of [`WIDTHS`] that spans the jobs in at most [`MAX_BUCKETS`] buckets.
pub(crate) fn earnings(jobs: &[JobRecord]) -> (u64, Vec<(u64, U256, u64)>) {
    let paid: Vec<(u64, U256)> = jobs
        .iter()
        .filter(|j| j.state == JobState::Paid)
        .filter_map(|j| Some((j.updated_at, j.result.as_ref()?.message.amount)))
        .collect();
    let (Some(first), Some(last)) = (
        paid.iter().map(|p| p.0).min(),
        paid.iter().map(|p| p.0).max(),
    ) else {
        return (BUCKET_SECS, Vec::new());
    };
    let span = last - first;
    let width = WIDTHS
        .into_iter()
        .find(|w| span / w < MAX_BUCKETS)
        .unwrap_or(WIDEST);
    let mut buckets: BTreeMap<u64, (U256, u64)> = BTreeMap::new();
    for (t, amount) in paid {
        let b = buckets.entry(t - t % width).or_default();
        b.0 = b.0.saturating_add(amount);
        b.1 += 1;
    }
    // Empty buckets between, so that a chart shows the quiet times.
    let (start, end) = (first - first % width, last - last % width);
    let series = (0..=(end - start) / width)
        .map(|i| {
            let s = start + i * width;
            let (a, n) = buckets.get(&s).copied().unwrap_or_default();
            (s, a, n)
        })
        .collect();
    (width, series)
}

async fn bounded<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CHAIN_READ, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(super::scrub(&e.to_string())),
        Err(_) => Err(format!("no answer within {} s", CHAIN_READ.as_secs())),
    }
}

/// `GET /api/v1/provider`.
pub(crate) async fn provider(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let me = api.buyer.address();
    let info = api.provider.clone();
    let store = api.store.clone();
    let (jobs, total, blobs) = tokio::task::spawn_blocking(move || {
        let total = store.job_count(Side::Provider)?;
        let jobs = store.jobs(Side::Provider, None, SCAN_JOBS)?;
        let b = store.blobs();
        Ok::<_, crate::store::StoreError>((jobs, total, (b.total(), b.limits().quota_bytes)))
    })
    .await
    .map_err(unavailable)?
    .map_err(unavailable)?;
    let ((blob_bytes, blob_count), blob_quota) = blobs;
    let stats = api.net.stats().await.map_err(unavailable)?;
    let listen = api.net.listen_addrs().await.map_err(unavailable)?;
    let relayed_listen = listen
        .iter()
        .any(|a| a.to_string().contains("/p2p-circuit"));

    // Channels this provider ran jobs on, most recently used first, with their buyer.
    let mut channels: HashMap<B256, (Address, u64)> = HashMap::new();
    for j in &jobs {
        if let Some(t) = &j.ticket {
            let e = channels
                .entry(t.message.channel_id)
                .or_insert((j.counterparty, 0));
            e.1 = e.1.max(j.updated_at);
        }
    }
    let mut order: Vec<(B256, Address, u64)> =
        channels.into_iter().map(|(c, (b, t))| (c, b, t)).collect();
    order.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    let channels_total = order.len();
    order.truncate(MAX_CHANNELS);

    let store = api.store.clone();
    let ids: Vec<B256> = order.iter().map(|c| c.0).collect();
    let vouchers: HashMap<B256, U256> = tokio::task::spawn_blocking(move || {
        let mut out = HashMap::new();
        for id in ids {
            if let Some(v) = store.voucher(&id)? {
                out.insert(id, v.message.cumulative_amount);
            }
        }
        Ok::<_, crate::store::StoreError>(out)
    })
    .await
    .map_err(unavailable)?
    .map_err(unavailable)?;

    let mut chain_facts = ChainFacts::None;
    let mut views: HashMap<B256, ChannelView> = HashMap::new();
    let mut credited = None;
    if let Some(c) = &api.chain {
        chain_facts = match bounded(c.account(me)).await {
            Ok(account) => ChainFacts::Read {
                account,
                min_stake: c.min_stake(),
            },
            Err(e) => ChainFacts::Unreachable(e),
        };
        if matches!(chain_facts, ChainFacts::Read { .. }) {
            credited = bounded(c.credited(me)).await.ok();
            let reads = order.iter().map(|(id, _, _)| {
                let (c, id) = (c.clone(), *id);
                async move { (id, bounded(c.channel(id)).await) }
            });
            for (id, v) in futures::future::join_all(reads).await {
                if let Ok(v) = v {
                    views.insert(id, v);
                }
            }
        }
    }

    let paid_by_channel: HashMap<B256, U256> = views
        .iter()
        .map(|(id, v)| (*id, U256::from(v.paid)))
        .collect();
    let settled = crate::activity::jobs_settled(&jobs, &paid_by_channel, |_| me)
        .get(&me)
        .copied()
        .unwrap_or(0);

    let mut owed_total = U256::ZERO;
    let mut claimable_total = U256::ZERO;
    let channel_list: Vec<Value> = order
        .iter()
        .map(|(id, buyer, last)| {
            let voucher = vouchers.get(id).copied().unwrap_or_default();
            let view = views.get(id);
            let paid = view.map(|v| U256::from(v.paid));
            let owed = voucher.saturating_sub(paid.unwrap_or_default());
            // A closed channel pays nothing more; an open or closing one pays its voucher.
            let claimable = view.is_some_and(|v| v.state == 1 || v.state == 2) && owed > U256::ZERO;
            owed_total = owed_total.saturating_add(owed);
            if claimable {
                claimable_total = claimable_total.saturating_add(owed);
            }
            json!({
                "channel": id.to_string(),
                "buyer": buyer.to_string(),
                "state": view.map(|v| match v.state {
                    1 => "open",
                    2 => "closing",
                    3 => "closed",
                    _ => "unknown",
                }),
                "deposit": view.map(|v| v.deposit.to_string()),
                "voucher": voucher.to_string(),
                "paid": paid.map(|p| p.to_string()),
                "owed": owed.to_string(),
                "claimable": claimable,
                "last_job_at": last,
            })
        })
        .collect();

    let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
    for j in &jobs {
        *by_state.entry(j.state.to_string()).or_default() += 1;
    }
    let earned = jobs
        .iter()
        .filter(|j| j.state == JobState::Paid)
        .filter_map(|j| j.result.as_ref().map(|r| r.message.amount))
        .fold(U256::ZERO, U256::saturating_add);
    let (width, series) = earnings(&jobs);

    let offer = info.offer.as_ref();
    let node_key = offer.map_or([0; 32], |o| o.provider.0);
    let (rep, score) = offer.map_or_else(
        || (sietch_verifier::Reputation::default(), 0.5),
        |o| api.buyer.reputation_of(&o.provider),
    );
    let offered_stake = offer.map_or(0, |o| o.stake);
    let facts = Facts {
        providing: offer.is_some(),
        chain: chain_facts.clone(),
        node_key,
        offered_stake,
        offer_gpu: info.offer_gpu,
        gpus: offer.map_or(0, |o| o.hardware.gpus.len()),
        reachability: stats.reachability,
        relayed: info.relays > 0 || relayed_listen,
        blob_bytes,
        blob_quota,
        token: api.chain.as_ref().map_or_else(
            || TokenInfo::unknown(Address::ZERO),
            |c| c.token_info().clone(),
        ),
    };
    let checks = preflight(&facts);
    let (stake, unstaking, min_stake, chain_error) = match &chain_facts {
        ChainFacts::Read { account, min_stake } => (
            Some(account.stake.to_string()),
            Some(account.unstaking.to_string()),
            Some(min_stake.to_string()),
            None,
        ),
        ChainFacts::Unreachable(e) => (None, None, None, Some(e.clone())),
        ChainFacts::None => (None, None, None, None),
    };
    Ok(Json(json!({
        "providing": offer.is_some(),
        "evm_address": me.to_string(),
        "peer_id": api.net.peer_id().to_string(),
        "offer": offer.map(|o| json!({
            "price_per_gfuel": o.prices.per_gfuel.to_string(),
            "price_per_gpu_second": o.prices.per_gpu_second.to_string(),
            "stake": o.stake.to_string(),
            "cpu_cores": o.hardware.cpu_cores,
            "memory_bytes": o.hardware.memory_bytes,
            "max_input_bytes": o.max_input_bytes,
            "features": o.features,
        })),
        "gpus": offer.map(|o| o.hardware.gpus.iter().map(|g| json!({
            "model": g.model,
            "memory_bytes": g.memory_bytes,
            "compute_capability": format!("{}.{}", g.compute_capability.major, g.compute_capability.minor),
            "driver": g.driver,
        })).collect::<Vec<_>>()).unwrap_or_default(),
        "offer_gpu": info.offer_gpu,
        "chain": api.chain.as_ref().map(|_| json!({
            "reachable": matches!(chain_facts, ChainFacts::Read { .. }),
            "error": chain_error,
            "stake": stake,
            "unstaking": unstaking,
            "min_stake": min_stake,
            "registered": match &chain_facts {
                ChainFacts::Read { account, .. } => Some(account.node_key == node_key && offer.is_some()),
                _ => None,
            },
            "credited": credited.map(|c| c.to_string()),
        })),
        "value_caps": CAP_RATES.iter().map(|&ppm| json!({
            "sampling_ppm": ppm,
            "max_job_value": sietch_market::max_job_value(offered_stake, ppm).map(|v| v.to_string()),
        })).collect::<Vec<_>>(),
        "jobs": {
            "total": total,
            "scanned": jobs.len(),
            "by_state": by_state,
            "settled": settled,
            "withheld_since_start": api.activity.withheld(),
        },
        "reputation": {
            "score": score,
            "settled_jobs": rep.settled_jobs.max(settled),
            "checks_passed": rep.checks_passed,
            "checks_failed": rep.checks_failed,
            "disputes": rep.disputes,
            "slashes": rep.slashes,
        },
        "earnings": {
            "total": earned.to_string(),
            "bucket_secs": width,
            "buckets": series.iter().map(|(s, a, n)| json!({
                "start": s, "amount": a.to_string(), "jobs": n,
            })).collect::<Vec<_>>(),
        },
        "channels": channel_list,
        "channels_total": channels_total,
        "owed": owed_total.to_string(),
        "claimable": claimable_total.to_string(),
        "blobs": {"bytes": blob_bytes, "count": blob_count, "quota_bytes": blob_quota},
        "network": {
            "reachability": match stats.reachability {
                Reachability::Unknown => "unknown",
                Reachability::Public => "public",
                Reachability::Private => "private",
            },
            "relays": info.relays,
            "relayed": relayed_listen,
            "peers": stats.connected,
        },
        "preflight": checks,
    })))
}

#[cfg(test)]
mod tests;
