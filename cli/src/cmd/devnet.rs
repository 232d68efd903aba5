//! `sietch devnet`: the whole market on this machine, in one command. A real anvil with the
//! mock token and the escrow deployed; provider nodes that register, stake and announce
//! offers over gossip on loopback; a buyer node that submits jobs continuously, has a sample
//! of them re-run elsewhere, and pays by vouchers that the providers claim on chain; the
//! explorer on the buyer's HTTP API. Ctrl-C stops it cleanly and prints the settlement.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Args;
use sietch_market::{
    BlobRef, ComputeCapability, GpuNeeds, JobSpec, Limits, Requirements, U256, VerificationPolicy,
};
use sietch_node::events::NodeEvent;
use sietch_testkit::devnet::{ColdOwner, Devnet, DevnetConfig, E18, guest};

/// Options of `sietch devnet`.
#[derive(Debug, Args)]
pub(crate) struct DevnetArgs {
    /// Provider nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=8))]
    providers: u16,
    /// Jobs to run before stopping; 0 runs until Ctrl-C.
    #[arg(long, default_value_t = 0)]
    jobs: u64,
    /// Jobs in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Share of jobs spot-checked, in parts per million.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    sampling_ppm: u32,
    /// Make provider-0 answer this many jobs per million wrongly, to watch it get caught,
    /// disputed and slashed (it is also made the cheapest, so it gets work).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    cheat_ppm: u32,
    /// Port of the buyer's HTTP API and explorer on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 7077)]
    api_port: u16,
    /// The explorer's built files (`explorer/dist` of a checkout), served by the buyer at
    /// `/`; `scripts/demo.sh` passes its checkout's.
    #[arg(long, env = "SIETCH_EXPLORER_DIR")]
    explorer_dir: Option<std::path::PathBuf>,
    /// A language model (GGUF) the buyer asks a question now and then, through the market
    /// (default: SmolLM2-135M if `scripts/model.sh` cached it; none otherwise).
    #[arg(long, value_name = "FILE")]
    model: Option<std::path::PathBuf>,
    /// Seconds between generation jobs (one at a time, besides the other jobs); 0 asks none.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    generate_every: u64,
    /// Show what the start-up and the settlement wait for, and for how long, on stderr even
    /// when it is not a terminal (default: a spinner on a terminal only).
    #[arg(long)]
    progress: bool,
    /// Instead of the sample jobs, train the digits model across the providers (the round
    /// driver of `sietch train digits`, docs/training.md): a line per round, the held-out
    /// loss falling. Needs `bash scripts/digits.sh` first.
    #[arg(long)]
    train: bool,
    /// With --train: rounds to train.
    #[arg(long, default_value_t = 10, requires = "train", value_parser = clap::value_parser!(u32).range(1..=1000))]
    train_rounds: u32,
    /// With --train: jobs a round [default: one per provider].
    #[arg(long, requires = "train", value_parser = clap::value_parser!(u32).range(1..=64))]
    train_shards: Option<u32>,
    /// The token's decimals: 18 deploys the mock token (mUSD), anything else a test token
    /// of those decimals (tUSDC; 6 as USDC has). Amounts are shown in the token's units.
    #[arg(long, default_value_t = 18, value_parser = clap::value_parser!(u8).range(0..=36))]
    token_decimals: u8,
    /// A hostile chain: the nodes reach anvil through an RPC endpoint that drops 3% of
    /// requests, and wait for 3 confirmations; anvil reorganizes up to 3 blocks every ~10 s
    /// and spikes its base fee every ~30 s. The settlement says what they survived.
    #[arg(long)]
    hostile: bool,
    /// Run provider-0 for a cold owner (docs/keys.md, "A cold owner"): an account of its
    /// own, whose key only the set-up uses, as from a cold wallet (it names the node's key
    /// its operator, registers the node and stakes); the node holds only the operator's hot
    /// key, in an encrypted keystore unlocked from a password file. The settlement shows
    /// the owner's earnings, and that the hot key gained no tokens.
    #[arg(long)]
    cold_owner: bool,
}

/// The devnet token's decimals (`--token-decimals`), set once at start.
static DECIMALS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(18);

/// An amount written at 18 decimals (the devnet's prices, caps and funds) at the token's.
pub(super) fn units(at_18: u128) -> u128 {
    sietch_node::chain::token::rescale_from_18(at_18, DECIMALS.load(Ordering::Relaxed))
}

/// `amount` base units as tokens of the devnet's token, e.g. `0.000081`.
pub(super) fn tokens(amount: U256) -> String {
    sietch_node::chain::token::format_units(
        amount.saturating_to::<u128>(),
        DECIMALS.load(Ordering::Relaxed),
        None,
    )
}

fn section(title: &str) {
    println!();
    println!("== {title}");
}

pub(super) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Job `k`'s input: a line that grows with `k`, so that jobs differ in fuel and price.
fn job_input(k: u64) -> Vec<u8> {
    format!(
        "job {k} of the sietch devnet{}",
        "!".repeat(usize::try_from(k % 200).unwrap_or(0) * 8)
    )
    .into_bytes()
}

/// Every how many jobs one is a GPU job, where a GPU exists.
const GPU_EVERY: u64 = 4;

/// Price per GPU-second of the devnet's providers: 0.01 token.
const PRICE_PER_GPU_SECOND: u128 = E18 / 100;

/// A GPU job of the GPU guest: one GPU of compute capability 7.0 or newer, any model, and
/// 2 s of wall time (so its worst case, 0.02 token of GPU time, fits the price cap).
fn gpu_job_spec(module: &[u8], input: &[u8], sampling_ppm: u32) -> JobSpec {
    let mut spec = job_spec(module, input, sampling_ppm);
    spec.limits.wall_time_ms = 2_000;
    spec.requirements.gpu = Some(GpuNeeds {
        count: 1,
        models: Vec::new(),
        min_memory_bytes: 0,
        min_compute_capability: ComputeCapability { major: 7, minor: 0 },
    });
    spec.requirements.features = vec!["gpu".into()];
    spec
}

fn job_spec(module: &[u8], input: &[u8], sampling_ppm: u32) -> JobSpec {
    JobSpec {
        module: BlobRef::of(module).hash,
        args: Vec::new(),
        env: Vec::new(),
        stdin: Some(BlobRef::of(input)),
        inputs: Vec::new(),
        limits: Limits {
            fuel: 50_000_000,
            memory_bytes: 16 << 20,
            wall_time_ms: 10_000,
            output_bytes: 1 << 16,
        },
        requirements: Requirements {
            min_cpu_cores: 1,
            ..Requirements::default()
        },
        verification: VerificationPolicy {
            sampling_ppm,
            ..VerificationPolicy::default()
        },
        price_cap: units(E18 / 10),
        deadline: now() + 600,
    }
}

/// What the progress line counts.
#[derive(Default)]
struct Tally {
    done: AtomicU64,
    /// Of them, on a GPU.
    gpu_done: AtomicU64,
    failed: AtomicU64,
    checked: AtomicU64,
    caught: AtomicU64,
    unchecked_wrong: AtomicU64,
    paid: Mutex<U256>,
}

use std::sync::Mutex;

pub(crate) fn run(args: DevnetArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(devnet(args))
}

async fn devnet(args: DevnetArgs) -> anyhow::Result<()> {
    ensure!(
        args.cheat_ppm == 0 || args.providers >= 4,
        "--cheat-ppm needs --providers 4 or more: a caught cheat takes three independent \
         re-runs (one, then two more on a mismatch) besides the cheater"
    );
    println!(
        "sietch devnet: a chain, the escrow, {} providers and a buyer on this machine",
        args.providers
    );
    let dir = tempfile::tempdir().context("a directory for the nodes' data")?;
    let mut cfg = DevnetConfig::new(usize::from(args.providers), dir.path());
    cfg.token_decimals = args.token_decimals;
    cfg.hostile = args.hostile;
    cfg.cold_owner = args.cold_owner;
    DECIMALS.store(args.token_decimals, Ordering::Relaxed);
    // It runs language-model jobs among the others: dispute windows for a slow machine.
    cfg.escrow = sietch_testkit::devnet::escrow_config_for_ai();
    if args.cheat_ppm > 0 {
        cfg.cheats = vec![args.cheat_ppm];
    }
    // Distinct prices, the cheater cheapest; the buyer's API on a known port.
    cfg.tweak = |name, c| {
        c.price_per_gfuel = match name {
            "provider-0" => 400_000_000_000_000_000,
            "provider-1" => 700_000_000_000_000_000,
            _ => 900_000_000_000_000_000,
        };
        c.price_per_gpu_second = PRICE_PER_GPU_SECOND;
        // Every node serves the explorer: a provider's own API shows its `/provider` view.
        c.explorer_dir = EXPLORER_DIR.get().cloned().flatten();
        if name == "buyer" {
            c.api = std::net::SocketAddr::from(([127, 0, 0, 1], api_port()));
            // Two jobs in flight per provider at most: the others get work too.
            c.max_lanes = 2;
        }
    };
    API_PORT.store(args.api_port, Ordering::Relaxed);
    let _ = EXPLORER_DIR.set(args.explorer_dir.clone());
    section("starting");
    let started = Instant::now();
    let show = super::progress::Show::choose(false, args.progress);
    let spinner = super::progress::Progress::start(
        show,
        "anvil, the escrow, then each provider registers and stakes (a block a second) and \
         announces its offer",
    );
    let net = Devnet::start(cfg).await;
    drop(spinner);
    let mut net = net?;
    println!(
        "anvil    {} (chain id {}, a block a second)",
        net.anvil.endpoint(),
        net.anvil.chain_id()
    );
    if let Some(t) = net.buyer.chain.as_ref().map(|c| c.token_info()) {
        println!(
            "token    {} ({}, {} decimals)",
            net.token, t.symbol, t.decimals
        );
    }
    println!("escrow   {}", net.escrow);
    let accounts = net.provider_accounts();
    for (i, (p, account)) in net.providers.iter().zip(&accounts).enumerate() {
        println!(
            "provider-{i}  {account}  staked 1000 tokens  api http://{}/{}",
            p.api,
            if i == 0 && args.cheat_ppm > 0 {
                format!("  (cheats on {} jobs per million)", args.cheat_ppm)
            } else {
                String::new()
            }
        );
    }
    if let Some(c) = &net.cold_owner {
        announce_cold_owner(c);
    }
    println!("buyer       {}", net.buyer.evm_address);
    super::devnet_hostile::announce(&net);
    println!("explorer and API: http://{}/", net.buyer.api);
    let gpu = sietch_node::service::local_gpus().into_iter().next();
    match &gpu {
        None => println!("no GPU on this machine: CPU jobs only"),
        Some(g) => println!(
            "GPU      {} ({} MiB, compute capability {}.{}, driver {}): every provider offers \
             it at {} tokens per GPU-second, and one job in {GPU_EVERY} runs on it",
            g.model,
            g.memory_bytes >> 20,
            g.compute_capability.major,
            g.compute_capability.minor,
            g.driver,
            tokens(U256::from(units(PRICE_PER_GPU_SECOND))),
        ),
    }
    println!(
        "every node's offer reached the buyer in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    if args.train {
        section("training");
        let shards = args.train_shards.unwrap_or(u32::from(args.providers));
        let trained = super::devnet_train::train(
            &mut net,
            dir.path(),
            args.train_rounds,
            shards,
            args.sampling_ppm,
        )
        .await?;
        let tally = Tally::default();
        trained.count(&tally.done, &tally.caught);
        if let Ok(mut p) = tally.paid.lock() {
            *p = U256::from(trained.paid);
        }
        return settle(net, &tally, show).await;
    }

    let wasm = guest::module()?;
    net.buyer.store.blobs().put(&wasm)?;
    let gpu_wasm = guest::gpu_module()?;
    net.buyer.store.blobs().put(&gpu_wasm)?;
    let gpus = gpu.is_some();
    section(
        if args.jobs == 0 {
            "jobs (Ctrl-C to stop)".to_owned()
        } else {
            format!("{} jobs", args.jobs)
        }
        .as_str(),
    );
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let buyer = net.buyer.buyer.clone();
        let store = net.buyer.store.clone();
        let (tally, stop, next) = (tally.clone(), stop.clone(), next.clone());
        let (wasm, gpu_wasm) = (wasm.clone(), gpu_wasm.clone());
        let (limit, sampling) = (args.jobs, args.sampling_ppm);
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if limit > 0 && k >= limit {
                    return;
                }
                let input = job_input(k);
                if store.blobs().put(&input).is_err() {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let on_gpu = gpus && k % GPU_EVERY == GPU_EVERY - 1;
                let (spec, expected) = if on_gpu {
                    (
                        gpu_job_spec(&gpu_wasm, &input, sampling),
                        guest::gpu_expected_stdout(&input),
                    )
                } else {
                    (
                        job_spec(&wasm, &input, sampling),
                        guest::expected_stdout(&input),
                    )
                };
                match buyer.submit(spec).await {
                    Ok(done) => {
                        let right = String::from_utf8_lossy(&done.result.stdout) == expected;
                        if !right {
                            // Only an unsampled cheat gets through: the risk the stake covers.
                            println!(
                                "job {k}: a wrong answer went unchecked (not sampled) and was paid"
                            );
                            tally.unchecked_wrong.fetch_add(1, Ordering::Relaxed);
                        }
                        tally.done.fetch_add(1, Ordering::Relaxed);
                        if on_gpu {
                            tally.gpu_done.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Some(d) = done.check {
                            tally.checked.fetch_add(1, Ordering::Relaxed);
                            if d == sietch_verifier::Decision::ProviderWrong {
                                tally.caught.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        if let Ok(mut p) = tally.paid.lock() {
                            *p += done.paid;
                        }
                    }
                    Err(e) => {
                        println!("{} job {k} failed: {e}", if on_gpu { "GPU" } else { "CPU" });
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // Now and then a question to a language model, when one is at hand.
    let model = args.model.clone().or_else(super::devnet_ai::cached_model);
    let generation_tally = Arc::new(super::devnet_ai::GenerationTally::default());
    let generator = match (model, args.generate_every) {
        (Some(path), every) if every > 0 => {
            match super::devnet_ai::prepare(&net.buyer.store, &path) {
                Ok(g) => {
                    println!(
                        "generation: a question to {} every {every} s",
                        path.file_name().map_or_else(
                            || path.display().to_string(),
                            |n| n.to_string_lossy().into_owned()
                        )
                    );
                    Some(tokio::spawn(super::devnet_ai::worker(
                        net.buyer.buyer.clone(),
                        net.buyer.store.clone(),
                        g,
                        Duration::from_secs(every),
                        args.sampling_ppm,
                        stop.clone(),
                        generation_tally.clone(),
                    )))
                }
                Err(e) => {
                    println!("generation: off ({e})");
                    None
                }
            }
        }
        _ => {
            println!("generation: off (no model cached: `bash scripts/model.sh` fetches one)");
            None
        }
    };

    // Progress, notable events, until the jobs are done or Ctrl-C.
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut ctrl_c = Box::pin(tokio::signal::ctrl_c());
    let t0 = Instant::now();
    loop {
        tokio::select! {
            _ = &mut ctrl_c => {
                println!("Ctrl-C: finishing the jobs in flight");
                stop.store(true, Ordering::Relaxed);
                break;
            }
            _ = tick.tick() => {
                let done = tally.done.load(Ordering::Relaxed);
                println!(
                    "[{:>5.0} s] jobs {done} done, {} failed; {} spot-checked, {} cheats caught; paid {} tokens ({:.1} jobs/s)",
                    t0.elapsed().as_secs_f64(),
                    tally.failed.load(Ordering::Relaxed),
                    tally.checked.load(Ordering::Relaxed),
                    tally.caught.load(Ordering::Relaxed),
                    tokens(tally.paid.lock().map(|p| *p).unwrap_or_default()),
                    done as f64 / t0.elapsed().as_secs_f64().max(0.001),
                );
                if workers.iter().all(tokio::task::JoinHandle::is_finished) {
                    break;
                }
            }
            Some((who, e)) = net.events.recv() => {
                let notable = matches!(
                    e,
                    NodeEvent::Claimed { .. }
                        | NodeEvent::ChannelOpened { .. }
                        | NodeEvent::TicketClaimed { .. }
                        | NodeEvent::Disputed { .. }
                        | NodeEvent::Verdict { .. }
                        | NodeEvent::TicketSettled { .. }
                        | NodeEvent::Withheld { .. }
                        | NodeEvent::Warning { .. }
                );
                if notable {
                    println!("  {who}: {e}");
                }
            }
        }
    }
    // Jobs in flight get a while to finish; then they are dropped (their lanes close).
    stop.store(true, Ordering::Relaxed);
    if let Some(g) = generator {
        workers.push(g);
    }
    let grace = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(grace);
    for w in &mut workers {
        tokio::select! {
            _ = &mut *w => {}
            () = &mut grace => {
                println!("jobs still in flight after 30 s: stopping without them");
                break;
            }
        }
    }
    for w in &workers {
        w.abort();
    }
    let asked = generation_tally.done.load(Ordering::Relaxed);
    if asked > 0 {
        println!(
            "generation: {asked} questions answered, {} tokens generated",
            generation_tally.tokens.load(Ordering::Relaxed)
        );
    }
    settle(net, &tally, show).await
}

static API_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(7077);
/// The explorer directory given, for the buyer's configuration.
static EXPLORER_DIR: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();

fn api_port() -> u16 {
    API_PORT.load(Ordering::Relaxed)
}

/// Stops the nodes (providers claim what they are owed on the way out) and checks that the
/// money adds up to the unit.
async fn settle(mut net: Devnet, tally: &Tally, show: super::progress::Show) -> anyhow::Result<()> {
    section("settlement");
    super::devnet_hostile::calm(&mut net).await;
    let buyer_addr = net.buyer.evm_address;
    let chain = net.buyer.chain.clone().context("the devnet has a chain")?;
    // Every channel the buyer's money went into: opens in flight land first.
    let waiting =
        super::progress::Progress::start(show, "the channels opening land on chain (at most 30 s)");
    net.buyer.buyer.opens_settled(Duration::from_secs(30)).await;
    let channels = net.buyer.buyer.channels();
    let providers = net.provider_accounts();
    let cold_owner = net.cold_owner.clone();
    let (token, escrow) = (net.token, net.escrow);
    let funds = U256::from(units(10_000 * E18));
    let stake = U256::from(units(1_000 * E18));
    // Shut down first: providers claim on the way out.
    let deployer = net.deployer.clone();
    let anvil = net.anvil;
    waiting.set("the nodes stop; the providers claim what they are owed on the way out");
    net.buyer.shutdown().await;
    for p in net.providers {
        p.shutdown().await;
    }
    drop(waiting);
    let balance = |who| {
        let token = sietch_contracts::MockToken::new(token, &deployer);
        async move { token.balanceOf(who).call().await }
    };
    let mut deposits = U256::ZERO;
    let mut signed = U256::ZERO;
    let mut claimed = U256::ZERO;
    for (id, _, cumulative, _) in &channels {
        let c = chain.channel(*id).await?;
        deposits += U256::from(c.deposit);
        claimed += U256::from(c.paid);
        signed += *cumulative;
    }
    let buyer_now = balance(buyer_addr).await?;
    let mut received = U256::ZERO;
    let mut slashed = U256::ZERO;
    for (i, p) in providers.iter().enumerate() {
        let now = balance(*p).await?;
        let st = U256::from(chain.account(*p).await?.stake);
        let gained = (now + st).saturating_sub(funds);
        println!(
            "provider-{i}  holds {} tokens, stake {}{}",
            tokens(now),
            tokens(st),
            if st < stake { "  (slashed)" } else { "" }
        );
        if st < stake {
            slashed += stake - st;
        } else {
            received += gained;
        }
    }
    let hot_key_grew = match &cold_owner {
        Some(c) => {
            let owner_stake = U256::from(chain.account(c.owner).await?.stake);
            let hot = balance(c.operator).await?;
            settled_cold_owner(c, balance(c.owner).await?, owner_stake, funds, hot);
            !hot.is_zero()
        }
        None => false,
    };
    println!(
        "buyer       spent {} tokens into {} channels; vouchers signed {} tokens, claimed {}",
        tokens(funds.saturating_sub(buyer_now)),
        channels.len(),
        tokens(signed),
        tokens(claimed)
    );
    println!(
        "escrow      holds {} tokens",
        tokens(balance(escrow).await?)
    );
    println!(
        "jobs        {} done ({} on the GPU), {} failed, {} spot-checked, {} cheats caught, {} \
         wrong answers unchecked, paid {} tokens",
        tally.done.load(Ordering::Relaxed),
        tally.gpu_done.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
        tally.checked.load(Ordering::Relaxed),
        tally.caught.load(Ordering::Relaxed),
        tally.unchecked_wrong.load(Ordering::Relaxed),
        tokens(tally.paid.lock().map(|p| *p).unwrap_or_default()),
    );
    drop(anvil);
    ensure!(
        !hot_key_grew,
        "the cold owner's hot key holds tokens: its earnings went to the operator, not the owner"
    );
    if slashed.is_zero() {
        ensure!(
            claimed == signed && received == signed,
            "settlement does not balance: vouchers {}, claimed {}, providers received {}",
            tokens(signed),
            tokens(claimed),
            tokens(received)
        );
        ensure!(
            funds - buyer_now == deposits,
            "the buyer's wallet went down by {}, its channels hold {}",
            tokens(funds - buyer_now),
            tokens(deposits)
        );
        println!(
            "settlement balanced: every voucher claimed, providers received exactly {} tokens",
            tokens(signed)
        );
    } else {
        println!(
            "a provider was slashed {} tokens; honest providers received {} tokens",
            tokens(slashed),
            tokens(received)
        );
    }
    Ok(())
}

/// The start's line for a cold owner's provider: whom it earns for, what the node holds.
fn announce_cold_owner(c: &ColdOwner) {
    println!(
        "cold owner  provider-0 earns for the owner {}, which staked and named the node's key \
         its operator from its own wallet; the node holds only the operator's hot key {}, in \
         the encrypted keystore {} (password file {})",
        c.owner,
        c.operator,
        c.keystore.display(),
        c.password_file.display()
    );
}

/// The settlement's lines for a cold owner: what the owner earned (its wallet and stake
/// beyond the `funds` it started with) and what the hot key holds (nothing: it never had
/// tokens, and earnings go to the owner).
fn settled_cold_owner(c: &ColdOwner, owner_now: U256, owner_stake: U256, funds: U256, hot: U256) {
    println!(
        "owner       {} (provider-0's cold owner) earned {} tokens: holds {}, stake {}",
        c.owner,
        tokens((owner_now + owner_stake).saturating_sub(funds)),
        tokens(owner_now),
        tokens(owner_stake)
    );
    println!(
        "hot key     {} (provider-0's operator) holds {} tokens: {}",
        c.operator,
        tokens(hot),
        if hot.is_zero() {
            "its token balance did not grow"
        } else {
            "it GREW: earnings reached the hot key"
        }
    );
}

#[cfg(test)]
mod tests {
    use super::{E18, U256, tokens};

    #[test]
    fn tokens_print_exact_decimals() {
        assert_eq!(tokens(U256::ZERO), "0");
        assert_eq!(tokens(U256::from(E18)), "1");
        assert_eq!(tokens(U256::from(E18 + E18 / 4)), "1.25");
        assert_eq!(tokens(U256::from(1u8)), "0.000000000000000001");
    }
}
