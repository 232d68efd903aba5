//! `sietch devnet`: the one-command local demo. It runs, in one process, what exists today:
//! a real anvil with the escrow deployed, providers that register, stake and sign offers into
//! an order book, a buyer that matches jobs against it, and the money flow of one channel —
//! jobs run in the real sandbox, EIP-712 tickets, result commitments and vouchers, and one
//! claim on chain that pays for all of them. It says plainly what is not built yet.

mod chain;
mod contract;
mod guest;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::node_bindings::AnvilInstance;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::DynProvider;
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use anyhow::{Context, bail, ensure};
use clap::Args;
use ed25519_dalek::SigningKey;
use sietch_contracts::SietchEscrow::{self, ChannelOpened, Config};
use sietch_contracts::{MockToken, deploy, send};
use sietch_market::{
    BlobRef, Domain, GpuNeeds, Hardware, JobSpec, Offer, OrderBook, Prices, PublicKey,
    Requirements, ResultCommitment, Signed, Ticket, TypedData, VerificationPolicy, Voucher,
    check_commit, is_checked, job_id,
};
use sietch_sandbox::{JobModule, Outcome, Sandbox, SandboxConfig};

use contract::ToContract;

/// Token base units per token (the mock token has 18 decimals).
const E18: u128 = 1_000_000_000_000_000_000;
/// Fuel per billing unit of the price: prices are per 10^9 fuel ("gfuel").
const FUEL_PER_GFUEL: u128 = 1_000_000_000;
/// Anvil's dev accounts: 0 deploys, 1 buys, 2.. provide.
const BUYER: usize = 1;
const FIRST_PROVIDER: usize = 2;
/// Anvil starts with 10 dev accounts.
const MAX_PROVIDERS: u16 = 8;
/// How long offers and tickets hold, in seconds.
const TTL: u64 = 600;
/// The devnet job's limits and terms.
const JOB_FUEL: u64 = 50_000_000;
const JOB_MEMORY: u64 = 16 << 20;
const JOB_WALL_MS: u64 = 10_000;
const PRICE_CAP: u128 = E18 / 10;

/// Options of `sietch devnet`.
#[derive(Debug, Args)]
pub(crate) struct DevnetArgs {
    /// Number of providers (anvil dev accounts 2 and up).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_PROVIDERS)))]
    providers: u16,
    /// Jobs the buyer sends to the chosen provider before the provider claims once for all.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    jobs: u16,
    /// Keep anvil up after the walk-through (printing its RPC URL and the escrow address)
    /// until Ctrl-C.
    #[arg(long)]
    keep_running: bool,
}

pub(crate) fn run(args: DevnetArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        // Dropping the walk (Ctrl-C) drops its anvil, which kills it.
        let devnet = tokio::select! {
            r = walk(&args) => r?,
            r = tokio::signal::ctrl_c() => match r {
                Ok(()) => bail!("interrupted (Ctrl-C): anvil stopped"),
                Err(e) => bail!("cannot listen for Ctrl-C: {e}"),
            },
        };
        if args.keep_running {
            println!();
            println!("anvil keeps running until Ctrl-C:");
            let chain = &devnet.chain;
            println!("  RPC URL  {}", chain.anvil.endpoint());
            println!("  chain id {}", chain.anvil.chain_id());
            println!("  escrow   {}", chain.escrow.address());
            println!("  token    {}", chain.token.address());
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            println!("Ctrl-C: stopping anvil");
        }
        drop(devnet);
        Ok(())
    })
}

/// A provider of the devnet.
struct ProviderNode {
    /// Its EVM account.
    evm: PrivateKeySigner,
    /// Its ed25519 node key (the libp2p identity), registered on chain.
    node_key: SigningKey,
    /// Price per 10^9 fuel.
    per_gfuel: u128,
}

impl ProviderNode {
    fn public_key(&self) -> PublicKey {
        PublicKey::of(&self.node_key)
    }
}

fn section(title: &str) {
    println!();
    println!("== {title}");
}

fn now() -> anyhow::Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs())
}

/// `amount` base units as tokens, e.g. `0.000081`.
fn tokens(amount: U256) -> String {
    let unit = U256::from(E18);
    let whole = amount / unit;
    let frac = format!("{:018}", amount % unit);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{whole}")
    } else {
        format!("{whole}.{frac}")
    }
}

fn short(h: &B256) -> String {
    let s = format!("{h:x}");
    s.chars().take(12).collect()
}

fn event<E: SolEvent>(receipt: &TransactionReceipt) -> anyhow::Result<E> {
    receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<E>().ok())
        .map(|l| l.inner.data)
        .with_context(|| {
            format!(
                "transaction {} emitted no {}",
                receipt.transaction_hash,
                E::SIGNATURE
            )
        })
}

/// The escrow's parameters on the devnet (those of the bindings' anvil tests).
fn config() -> Config {
    Config {
        closeDelay: 3600,
        challengeWindow: 600,
        verdictWindow: 1200,
        unstakeDelay: 7 * 24 * 3600,
        disputeBond: 30 * E18,
        verifierFee: 5 * E18,
        minStake: 100 * E18,
        minDeposit: E18,
    }
}

/// This machine's cores and memory, which every devnet provider offers.
fn hardware() -> Hardware {
    let cores = std::thread::available_parallelism()
        .map(|n| u16::try_from(n.get()).unwrap_or(u16::MAX))
        .unwrap_or(1);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(4 << 30, |kib| kib.saturating_mul(1024));
    Hardware {
        cpu_cores: cores,
        memory_bytes: memory,
        gpus: Vec::new(),
    }
}

/// The buyer's job: the guest module hashing `stdin`.
fn job_spec(module: B256, stdin: &[u8], now: u64) -> JobSpec {
    JobSpec {
        module,
        args: Vec::new(),
        env: Vec::new(),
        stdin: Some(BlobRef::of(stdin)),
        inputs: Vec::new(),
        limits: sietch_market::Limits {
            fuel: JOB_FUEL,
            memory_bytes: JOB_MEMORY,
            wall_time_ms: JOB_WALL_MS,
            output_bytes: 1 << 20,
        },
        requirements: Requirements {
            min_cpu_cores: 1,
            ..Requirements::default()
        },
        verification: VerificationPolicy::default(),
        price_cap: PRICE_CAP,
        deadline: now + TTL,
    }
}

/// Job `k`'s input: a line that grows with `k`, so that jobs differ in fuel and price.
fn job_input(k: u16) -> Vec<u8> {
    format!(
        "job {k} of the sietch devnet: hash these bytes, 200 times over{}",
        "!".repeat(usize::from(k) * 8)
    )
    .into_bytes()
}

/// The chain: anvil with the mock token and the escrow deployed.
struct Chain {
    anvil: AnvilInstance,
    /// Anvil's dev accounts: 0 deploys, 1 buys, 2.. provide.
    keys: Vec<PrivateKeySigner>,
    escrow: SietchEscrow::SietchEscrowInstance<DynProvider>,
    token: MockToken::MockTokenInstance<DynProvider>,
    domain: Domain,
}

impl Chain {
    /// Starts anvil, deploys, and checks the escrow's EIP-712 domain against the market's.
    async fn start(providers: usize) -> anyhow::Result<Self> {
        section("chain");
        let anvil_path = chain::find_anvil()?;
        let anvil = tokio::task::block_in_place(|| chain::start(&anvil_path))?;
        println!(
            "anvil {} listening on {} (chain id {})",
            anvil_path.display(),
            anvil.endpoint(),
            anvil.chain_id()
        );
        let keys: Vec<PrivateKeySigner> = anvil.keys().iter().map(|k| k.clone().into()).collect();
        ensure!(
            keys.len() >= FIRST_PROVIDER + providers,
            "anvil has {} dev accounts, {} are needed",
            keys.len(),
            FIRST_PROVIDER + providers
        );
        let (deployer, rest) = keys.split_first().context("anvil has no dev accounts")?;
        let provider = chain::connect(deployer, rest, &anvil);
        let dep = deploy::deploy_with_mock_token(provider.clone(), config())
            .await
            .context("deploying the mock token and the escrow")?;
        let domain = Domain::new(anvil.chain_id(), dep.escrow);
        println!("deployer {}", deployer.address());
        println!("token    {} (mock, anyone may mint)", dep.token);
        println!("escrow   {}", dep.escrow);
        let chain = Self {
            escrow: SietchEscrow::new(dep.escrow, provider.clone()),
            token: MockToken::new(dep.token, provider),
            domain,
            keys,
            anvil,
        };
        let separator = chain.escrow.domainSeparator().call().await?;
        ensure!(
            separator == domain.separator(),
            "the escrow's EIP-712 domain separator {separator} differs from sietch_market's {}",
            domain.separator()
        );
        println!("EIP-712 domain separator agrees with sietch_market: {separator}");
        Ok(chain)
    }

    fn key(&self, account: usize) -> anyhow::Result<&PrivateKeySigner> {
        self.keys
            .get(account)
            .with_context(|| format!("anvil has no dev account {account}"))
    }

    async fn balance(&self, who: Address) -> anyhow::Result<U256> {
        self.token
            .balanceOf(who)
            .call()
            .await
            .with_context(|| format!("reading the token balance of {who}"))
    }

    /// Provider `i`: mints, registers its node key, stakes, and signs its offer.
    async fn start_provider(
        &self,
        i: usize,
        hardware: &Hardware,
        now: u64,
    ) -> anyhow::Result<(ProviderNode, Signed<Offer>)> {
        let evm = self.key(FIRST_PROVIDER + i)?.clone();
        let seed = blake3::hash(format!("sietch devnet provider {i}").as_bytes());
        let node = ProviderNode {
            evm,
            node_key: SigningKey::from_bytes(seed.as_bytes()),
            // 0.8, 1.1, 0.5, 0.8, … tokens per 10^9 fuel: the cheapest is not the first.
            per_gfuel: (5 + 3 * ((i as u128 + 1) % 3)) * E18 / 10,
        };
        let addr = node.evm.address();
        let want = U256::from((1_000 + 500 * i as u128) * E18);
        let escrow = &self.escrow;
        send(self.token.mint(addr, want)).await?;
        send(self.token.approve(*escrow.address(), want).from(addr)).await?;
        send(escrow.register(B256::from(node.public_key().0)).from(addr))
            .await
            .with_context(|| format!("registering provider {i}"))?;
        send(escrow.stake(want).from(addr))
            .await
            .with_context(|| format!("staking for provider {i}"))?;
        let stake = escrow.accounts(addr).call().await?.stake;
        let offer = Offer {
            provider: node.public_key(),
            evm_address: addr,
            hardware: hardware.clone(),
            features: vec!["wasi-p1".to_owned()],
            prices: Prices {
                per_gfuel: node.per_gfuel,
                per_gpu_second: 0,
            },
            stake,
            addresses: Vec::new(),
            sequence: 1,
            expires_at: now + TTL,
        };
        println!(
            "provider-{i}  {addr}  node key {}  registered, staked {} tokens",
            node.public_key().short(),
            tokens(U256::from(stake))
        );
        let signed = Signed::sign(offer, &node.node_key);
        Ok((node, signed))
    }
}

/// What outlives the walk-through: the chain, for `--keep-running`.
struct Running {
    chain: Chain,
}

/// Providers register, stake and sign offers into the order book.
async fn start_providers(
    chain: &Chain,
    n: usize,
    now: u64,
) -> anyhow::Result<(Vec<ProviderNode>, OrderBook)> {
    section(&format!("{n} providers register, stake and sign offers"));
    let hw = hardware();
    let mut book = OrderBook::default();
    let mut providers = Vec::with_capacity(n);
    for i in 0..n {
        let (node, signed) = chain.start_provider(i, &hw, now).await?;
        let verified = signed.verify().context("an offer's signature")?;
        book.insert(verified, now)
            .with_context(|| format!("inserting the offer of provider {i}"))?;
        providers.push(node);
    }
    println!();
    println!(
        "order book ({} signed offers, verified on insertion):",
        book.len()
    );
    println!(
        "  {:<11} {:<14} {:>5} {:>10} {:>16} {:>8}  expires",
        "provider", "node key", "cores", "memory", "price/gfuel", "stake"
    );
    for (i, p) in providers.iter().enumerate() {
        if let Some(o) = book.get(&p.public_key()) {
            let o = &o.payload;
            println!(
                "  provider-{i:<2} {:<14} {:>5} {:>6.1} GiB {:>16} {:>8}  in {} s",
                o.provider.short(),
                o.hardware.cpu_cores,
                o.hardware.memory_bytes as f64 / f64::from(1u32 << 30),
                tokens(U256::from(o.prices.per_gfuel)),
                tokens(U256::from(o.stake)),
                o.expires_at.saturating_sub(now)
            );
        }
    }
    Ok((providers, book))
}

/// The buyer matches `job` and prints the ranking, then shows what a job that matches nothing
/// gets told. Returns the index of the best provider.
fn choose(
    book: &OrderBook,
    providers: &[ProviderNode],
    job: &JobSpec,
    now: u64,
) -> anyhow::Result<usize> {
    let name = |key: &PublicKey| {
        providers
            .iter()
            .position(|p| p.public_key() == *key)
            .map_or_else(|| key.short(), |i| format!("provider-{i}"))
    };
    let ranking = book
        .find(job, now, &(), 10)
        .map_err(|e| anyhow::anyhow!("the devnet's own job matched no offer: {e}"))?;
    println!("ranking (lowest score first):");
    for (rank, m) in ranking.iter().enumerate() {
        println!(
            "  {}. {:<11} max cost {:>10} tokens  score {:.4e}",
            rank + 1,
            name(&m.provider),
            tokens(U256::from(m.max_cost)),
            m.score
        );
    }
    let best = ranking.first().context("an empty ranking")?;
    let chosen = providers
        .iter()
        .position(|p| p.public_key() == best.provider)
        .context("the best offer is of no devnet provider")?;

    let mut gpu_job = job.clone();
    gpu_job.requirements.gpu = Some(GpuNeeds {
        count: 1,
        models: vec!["H100".to_owned()],
        min_memory_bytes: 80 << 30,
        min_compute_capability: sietch_market::ComputeCapability::new(9, 0),
    });
    println!("a job that needs an H100:");
    match book.find(&gpu_job, now, &(), 10) {
        Err(why) => println!("  {why}"),
        Ok(m) => println!("  matched {} offers", m.len()),
    }
    Ok(chosen)
}

/// One channel between the buyer and the chosen provider, and the jobs it pays for.
struct Session<'a> {
    chain: &'a Chain,
    buyer: &'a PrivateKeySigner,
    provider: &'a ProviderNode,
    channel_id: B256,
    sandbox: Sandbox,
    module: JobModule,
    module_hash: B256,
    /// Owed so far: the latest voucher's amount.
    cumulative: U256,
    /// Jobs drawn for a spot-check.
    checked: u32,
}

impl Session<'_> {
    /// Job `k`: the buyer signs a ticket, the provider runs the job in the sandbox and signs
    /// its result commitment, the buyer checks it and signs a voucher for the new total.
    async fn job(&mut self, k: u16) -> anyhow::Result<(Voucher, [u8; 65])> {
        let domain = &self.chain.domain;
        let buyer_addr = self.buyer.address();
        let provider_addr = self.provider.evm.address();
        let input = job_input(k);
        let spec = job_spec(self.module_hash, &input, now()?);
        let spec_hash = spec.hash();
        let id = job_id(buyer_addr, u64::from(k), spec_hash);
        let secret =
            B256::from(*blake3::hash(&[id.as_slice(), b"spot-check secret"].concat()).as_bytes());
        let ticket = Ticket {
            job_id: id,
            spec_hash,
            channel_id: self.channel_id,
            // The job's range starts where the latest voucher left off.
            cumulative_before: self.cumulative,
            max_amount: U256::from(spec.price_cap),
            deadline: spec.deadline,
            check_commit: check_commit(&secret),
        };
        let ticket_sig = ticket.sign(domain, self.buyer)?;

        // The provider checks the ticket and runs the job.
        ticket
            .verify(domain, &ticket_sig, buyer_addr)
            .context("the ticket's signature")?;
        let run_spec = sietch_sandbox::JobSpec {
            job_id: id.0,
            args: spec.args.clone(),
            env: spec.env.clone(),
            stdin: input.clone(),
            inputs: Default::default(),
            limits: sietch_sandbox::Limits {
                fuel: spec.limits.fuel,
                memory_bytes: spec.limits.memory_bytes,
                deadline: Duration::from_millis(spec.limits.wall_time_ms),
                ..sietch_sandbox::Limits::default()
            },
        };
        let report = tokio::task::block_in_place(|| self.sandbox.run(&self.module, &run_spec))?;
        ensure!(
            matches!(report.outcome, Outcome::Exited { code: 0 }),
            "job {k} ended with {}",
            report.outcome
        );
        let stdout = String::from_utf8_lossy(&report.stdout).into_owned();
        let expected = guest::expected_stdout(&input);
        ensure!(
            stdout == expected,
            "job {k} printed {stdout:?}, the host computes {expected:?}"
        );
        let metered =
            (u128::from(report.fuel_used) * self.provider.per_gfuel).div_ceil(FUEL_PER_GFUEL);
        let result = ResultCommitment {
            job_id: id,
            spec_hash,
            output_hash: B256::from(report.output_hash),
            fuel_used: report.fuel_used,
            gpu_millis: report.gpu_time_ns / 1_000_000,
            amount: U256::from(metered).min(ticket.max_amount),
        };
        let result_sig = result.sign(domain, &self.provider.evm)?;

        // The buyer checks the commitment, reveals the secret and pays with a voucher.
        result
            .verify(domain, &result_sig, provider_addr)
            .context("the result commitment's signature")?;
        ensure!(
            result.amount <= ticket.max_amount,
            "job {k} charges more than its ticket"
        );
        let checked = is_checked(&secret, &id, spec.verification.sampling_ppm);
        self.checked += u32::from(checked);
        self.cumulative += result.amount;
        let voucher = Voucher {
            channel_id: self.channel_id,
            cumulative_amount: self.cumulative,
        };
        let voucher_sig = voucher.sign(domain, self.buyer)?;
        voucher
            .verify(domain, &voucher_sig, buyer_addr)
            .context("the voucher's signature")?;
        if k == 1 {
            // The contract hashes the market's messages exactly as sietch_market does.
            let escrow = &self.chain.escrow;
            let on_chain = (
                escrow.hashTicket(ticket.to_contract()?).call().await?,
                escrow.hashResult(result.to_contract()?).call().await?,
                escrow.hashVoucher(voucher.to_contract()?).call().await?,
            );
            ensure!(
                on_chain
                    == (
                        ticket.digest(domain),
                        result.digest(domain),
                        voucher.digest(domain)
                    ),
                "the escrow's EIP-712 digests differ from sietch_market's"
            );
        }
        println!(
            "job {k}  id {}  {}  fuel {:>7}  amount {} tokens  spot-check {}  voucher {} tokens",
            short(&id),
            stdout.trim_end(),
            report.fuel_used,
            tokens(result.amount),
            if checked { "drawn" } else { "no   " },
            tokens(self.cumulative)
        );
        Ok((voucher, voucher_sig))
    }
}

/// Token balances of the buyer, the provider and the escrow.
#[derive(Debug, Clone, Copy)]
struct Balances {
    buyer: U256,
    provider: U256,
    escrow: U256,
}

impl Balances {
    async fn read(chain: &Chain, buyer: Address, provider: Address) -> anyhow::Result<Self> {
        Ok(Self {
            buyer: chain.balance(buyer).await?,
            provider: chain.balance(provider).await?,
            escrow: chain.balance(*chain.escrow.address()).await?,
        })
    }
}

/// Prints the balances and checks that they add up exactly; returns what the provider received.
fn settle(
    before: Balances,
    after: Balances,
    deposit: U256,
    paid: U256,
    vouchers: U256,
    provider: &str,
    jobs: u16,
) -> anyhow::Result<U256> {
    section("settlement");
    println!("{:<22} {:>16} {:>16}", "token balances", "before", "after");
    for (who, b, a) in [
        ("buyer", before.buyer, after.buyer),
        (provider, before.provider, after.provider),
        ("escrow", before.escrow, after.escrow),
    ] {
        println!("{who:<22} {:>16} {:>16}", tokens(b), tokens(a));
    }
    println!(
        "channel: deposit {}, paid {}, {} left for the buyer to take back on close",
        tokens(deposit),
        tokens(paid),
        tokens(deposit.saturating_sub(paid))
    );
    // What the buyer spent: its deposit less what the channel gives back on close.
    let spent = paid;
    let received = after.provider.saturating_sub(before.provider);
    let checks = [
        (
            "the buyer's wallet went down by the deposit",
            before.buyer.checked_sub(after.buyer) == Some(deposit),
        ),
        ("the channel paid the latest voucher", paid == vouchers),
        (
            "the provider received the latest voucher",
            received == vouchers,
        ),
        (
            "the escrow holds the deposit less what it paid",
            after.escrow.checked_sub(before.escrow) == deposit.checked_sub(paid),
        ),
    ];
    let mut ok = true;
    for (what, good) in checks {
        println!("  [{}] {what}", if good { "ok" } else { "FAILED" });
        ok &= good;
    }
    ensure!(
        ok,
        "settlement does not balance: buyer spent {}, provider received {}, vouchers total {}",
        tokens(spent),
        tokens(received),
        tokens(vouchers)
    );
    println!(
        "settlement balanced: buyer spent {} tokens == provider received {} tokens ({jobs} jobs, 1 claim)",
        tokens(spent),
        tokens(received),
    );
    Ok(received)
}

fn summary(providers: usize, jobs: u16, received: U256) {
    section("summary");
    println!("built and run for real above:");
    println!(
        "  - chain: anvil, mock token and escrow deployed; {providers} providers registered and staked"
    );
    println!(
        "  - market: signed offers in an order book, matching, ranking, the no-match explanation"
    );
    println!(
        "  - sandbox: {jobs} jobs run in the provider's wasm sandbox, fuel-metered, output checked"
    );
    println!(
        "  - settlement: EIP-712 tickets, result commitments and vouchers; one claim paid {} tokens",
        tokens(received)
    );
    println!("not built yet (everything here ran in one process, without a network):");
    println!("  - networking: gossip of offers, job transfer between nodes (issue 5)");
    println!("  - spot-check re-runs by other providers (issue 6)");
    println!("  - disputes driven by nodes; end-to-end settlement by the node itself (issue 7)");
    println!("  - the explorer (issue 8)");
}

/// The walk-through, start to finish.
async fn walk(args: &DevnetArgs) -> anyhow::Result<Running> {
    println!(
        "sietch devnet: one process walks one job market through its money flow on a real chain"
    );
    let n = usize::from(args.providers);
    let chain = Chain::start(n).await?;
    let start = now()?;
    let (providers, book) = start_providers(&chain, n, start).await?;

    section("the buyer matches a job");
    let buyer = chain.key(BUYER)?;
    let buyer_addr = buyer.address();
    let wasm = guest::module()?;
    let module_hash = B256::from(*blake3::hash(&wasm).as_bytes());
    let template = job_spec(module_hash, &job_input(1), start);
    println!(
        "job: WAT guest ({} bytes, blake3 {}) hashing its stdin; fuel limit {JOB_FUEL}, price cap {} tokens, sampling {}%",
        wasm.len(),
        short(&module_hash),
        tokens(U256::from(PRICE_CAP)),
        f64::from(template.verification.sampling_ppm) / 10_000.0
    );
    let chosen_index = choose(&book, &providers, &template, start)?;
    let chosen = providers.get(chosen_index).context("the chosen provider")?;
    let provider_addr = chosen.evm.address();
    let provider_name = format!("provider-{chosen_index}");
    println!("chosen: {provider_name} ({provider_addr})");

    section("the buyer opens a channel");
    let escrow = &chain.escrow;
    let deposit = U256::from((PRICE_CAP * u128::from(args.jobs)).max(E18));
    send(chain.token.mint(buyer_addr, U256::from(1_000 * E18))).await?;
    send(
        chain
            .token
            .approve(*escrow.address(), U256::MAX)
            .from(buyer_addr),
    )
    .await?;
    let before = Balances::read(&chain, buyer_addr, provider_addr).await?;
    let opened = send(escrow.openChannel(provider_addr, deposit).from(buyer_addr))
        .await
        .context("opening the channel")?;
    let channel_id = event::<ChannelOpened>(&opened)?.channelId;
    println!(
        "buyer {buyer_addr} opened channel {} to {provider_name} with {} tokens (tx {})",
        short(&channel_id),
        tokens(deposit),
        opened.transaction_hash
    );

    section(&format!(
        "{} jobs: ticket, sandboxed run, result commitment, voucher",
        args.jobs
    ));
    let sandbox = Sandbox::new(SandboxConfig {
        max_memory_bytes: JOB_MEMORY,
        max_concurrent_jobs: 1,
        ..SandboxConfig::default()
    })?;
    let module = sandbox
        .load(&wasm)
        .context("the sandbox refused the guest")?;
    let mut session = Session {
        chain: &chain,
        buyer,
        provider: chosen,
        channel_id,
        sandbox,
        module,
        module_hash,
        cumulative: U256::ZERO,
        checked: 0,
    };
    let mut latest = None;
    for k in 1..=args.jobs {
        latest = Some(session.job(k).await?);
    }
    println!(
        "ticket, result and voucher digests agree with the contract's hashTicket/hashResult/hashVoucher"
    );
    if session.checked > 0 {
        println!(
            "{} job(s) drawn for a spot-check: the re-run elsewhere is not built yet (issue 6)",
            session.checked
        );
    }
    let vouchers = session.cumulative;

    section("the provider claims the latest voucher");
    let (voucher, sig) = latest.context("no job ran")?;
    let claim = send(
        escrow
            .claim(voucher.to_contract()?, Bytes::from(sig.to_vec()))
            .from(provider_addr),
    )
    .await
    .context("claiming the voucher")?;
    println!(
        "claim transaction {} (block {}, gas {}): one transaction pays for {} jobs",
        claim.transaction_hash,
        claim.block_number.unwrap_or_default(),
        claim.gas_used,
        args.jobs
    );

    let after = Balances::read(&chain, buyer_addr, provider_addr).await?;
    let ch = escrow.channels(channel_id).call().await?;
    let received = settle(
        before,
        after,
        U256::from(ch.deposit),
        U256::from(ch.paid),
        vouchers,
        &provider_name,
        args.jobs,
    )?;
    summary(n, args.jobs, received);
    Ok(Running { chain })
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
