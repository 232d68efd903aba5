//! `sietch node run`: the store, the network actor, the HTTP API and, when providing, the
//! offer announcer and the job runner, wired together until shutdown.
//!
//! What a provider does with a job request here (issue 5's scope): it checks the request
//! against its offer (resources, price, the ticket's spec hash, deadline and signature
//! form), refuses with a reason or accepts, fetches the module and inputs it lacks from the
//! buyer by blake3 hash, runs the job in the sandbox, signs a result commitment with its EVM
//! key and sends the result back. Checking the ticket's channel on chain and settling are
//! the buyer and provider roles of issue 7.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use libp2p::PeerId;
use sietch_market::eip712::{Domain, TypedData, recover};
use sietch_market::offer::{Hardware, Prices};
use sietch_market::{Address, B256, Offer, PublicKey, ResultCommitment, Signed, U256, Withdrawal};
use sietch_sandbox::{Outcome, Sandbox, SandboxConfig};
use tokio::sync::Semaphore;

use crate::config::NodeConfig;
use crate::net::{
    self, BlobSource, JobReply, JobRequest, JobResult, NetEvent, Network, RefuseReason,
    system_clock,
};
use crate::store::{EvmSigned, JobRecord, JobState, Side, Store};

/// Fuel per billing unit of the offer's price.
const FUEL_PER_GFUEL: u128 = 1_000_000_000;
/// Times a provider tries to deliver a result.
const RESULT_ATTEMPTS: u32 = 5;

/// Serves blobs straight from the store's content-addressed files, a chunk at a time.
struct StoreBlobs(Arc<Store>);

impl BlobSource for StoreBlobs {
    fn read(&self, hash: &B256, offset: u64, max_len: usize) -> Option<(u64, Vec<u8>)> {
        let mut f = std::fs::File::open(self.0.blobs().path(hash)).ok()?;
        let total = f.metadata().ok()?.len();
        f.seek(SeekFrom::Start(offset.min(total))).ok()?;
        let mut buf = Vec::with_capacity(max_len.min(total.saturating_sub(offset) as usize));
        f.take(max_len as u64).read_to_end(&mut buf).ok()?;
        Some((total, buf))
    }
}

fn now() -> u64 {
    (system_clock())()
}

/// This machine's hardware, as offered.
fn local_hardware(cfg: &NodeConfig) -> Hardware {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(cfg.max_job_memory_bytes, |kb| kb * 1024);
    Hardware {
        cpu_cores: u16::try_from(cores).unwrap_or(u16::MAX),
        memory_bytes: memory.min(cfg.max_job_memory_bytes),
        // GPU discovery comes with the GPU host module's device query (issue 4's GPU path).
        gpus: Vec::new(),
    }
}

/// The sandbox's form of a job: what every honest provider (and every verifier re-running
/// it) runs for this spec and job id, so that all of them get the same output hash and fuel.
/// The spec's output bound caps stdout and the `/output` files alike.
pub fn sandbox_job(
    spec: &sietch_market::JobSpec,
    job_id: &B256,
    stdin: Vec<u8>,
    inputs: BTreeMap<String, Vec<u8>>,
) -> sietch_sandbox::JobSpec {
    let output = usize::try_from(spec.limits.output_bytes).unwrap_or(usize::MAX);
    let defaults = sietch_sandbox::Limits::default();
    sietch_sandbox::JobSpec {
        job_id: job_id.0,
        args: spec.args.clone(),
        env: spec.env.clone(),
        stdin,
        inputs,
        limits: sietch_sandbox::Limits {
            fuel: spec.limits.fuel,
            memory_bytes: spec.limits.memory_bytes,
            deadline: Duration::from_millis(spec.limits.wall_time_ms),
            stdout_bytes: output,
            output_bytes: output,
            ..defaults
        },
    }
}

struct Provider {
    config: NodeConfig,
    store: Arc<Store>,
    net: Network,
    sandbox: Sandbox,
    evm: PrivateKeySigner,
    domain: Domain,
    offer: Offer,
    slots: Semaphore,
}

/// Runs a node until `shutdown` resolves.
pub async fn run(
    data_dir: &std::path::Path,
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let store = Arc::new(
        Store::open(data_dir)
            .with_context(|| format!("cannot open the node's store in {}", data_dir.display()))?,
    );
    let Some(keys) = store.node_keys()? else {
        bail!(
            "{} has no node keys: run `sietch init --data-dir {}` first",
            data_dir.display(),
            data_dir.display()
        );
    };
    let mut net_cfg = config.net_config()?;
    net_cfg.blobs = Some(Arc::new(StoreBlobs(store.clone())));
    let (net, mut events) = Network::spawn(net::keypair(&keys.ed25519), net_cfg)?;
    println!("peer {}", net.peer_id());

    let api = crate::api::serve(config.api, net.clone(), store.clone()).await?;
    println!("api http://{api}");

    let evm = match keys.evm {
        Some(k) => PrivateKeySigner::from_bytes(&k).context("the node's EVM key")?,
        None => bail!("this node has no EVM key; run `sietch init` again with --force"),
    };
    let domain = Domain::new(config.chain_id, config.escrow_address()?);

    let provider = if config.provide {
        let offer = Offer {
            provider: PublicKey::of(&keys.ed25519),
            evm_address: evm.address(),
            hardware: local_hardware(&config),
            features: vec!["simd".into()],
            prices: Prices {
                per_gfuel: config.price_per_gfuel.into(),
                per_gpu_second: config.price_per_gpu_second.into(),
            },
            stake: config.stake.into(),
            addresses: Vec::new(),
            sequence: 0,
            expires_at: 0,
        };
        let sandbox = Sandbox::new(SandboxConfig {
            max_memory_bytes: config.max_job_memory_bytes,
            max_concurrent_jobs: config.max_concurrent_jobs,
            cache_dir: Some(store.modules_dir()),
            ..SandboxConfig::default()
        })?;
        Some(Arc::new(Provider {
            slots: Semaphore::new(config.max_concurrent_jobs as usize),
            config: config.clone(),
            store: store.clone(),
            net: net.clone(),
            sandbox,
            evm,
            domain,
            offer,
        }))
    } else {
        None
    };

    let announcer = provider.clone().map(|p| tokio::spawn(announce(p)));
    // Print listen addresses once they are known.
    let printer = {
        let net = net.clone();
        tokio::spawn(async move {
            let addrs = net
                .wait_listening(1, Duration::from_secs(10))
                .await
                .unwrap_or_default();
            tokio::time::sleep(Duration::from_millis(100)).await;
            for a in net.listen_addrs().await.unwrap_or(addrs) {
                println!("listening {a}");
            }
            println!("ready");
        })
    };

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            ev = events.recv() => match ev {
                None => bail!("the network stopped"),
                Some(ev) => on_event(ev, provider.as_ref()),
            },
        }
    }

    println!("shutting down");
    printer.abort();
    if let Some(a) = announcer {
        a.abort();
    }
    if let Some(p) = &provider {
        withdraw(p).await;
    }
    Ok(())
}

fn on_event(ev: NetEvent, provider: Option<&Arc<Provider>>) {
    match ev {
        NetEvent::Connected { peer, address } => println!("connected {peer} {address}"),
        NetEvent::Disconnected { peer } => println!("disconnected {peer}"),
        NetEvent::HolePunch { peer, ok, detail } => {
            println!(
                "hole-punch {peer} {} {detail}",
                if ok { "ok" } else { "failed" }
            );
        }
        NetEvent::PeerBanned { peer } => println!("banned {peer}"),
        NetEvent::JobRequested {
            peer,
            request,
            reply,
        } => match provider {
            None => {
                let _ = reply.send(JobReply::Refused {
                    reason: RefuseReason::Other,
                    message: "this node does not provide compute (start it with --provide)".into(),
                });
            }
            Some(p) => {
                let p = p.clone();
                tokio::spawn(async move { p.on_job(peer, *request, reply).await });
            }
        },
        NetEvent::ResultReceived { reply, .. } => {
            // Buying through the node is issue 7; results for jobs it did not ask for are unknown.
            let _ = reply.send(net::ResultAck::UnknownJob);
        }
    }
}

/// Announces the provider's offer now and on every heartbeat, each time with a higher
/// sequence number and a fresh expiry.
async fn announce(p: Arc<Provider>) {
    let mut tick = tokio::time::interval(p.config.announce_every());
    loop {
        tick.tick().await;
        let t = now();
        let previous = p
            .store
            .own_offer(&p.offer.provider)
            .ok()
            .flatten()
            .map_or(0, |o| o.sequence);
        let offer = Offer {
            sequence: previous.max(t.saturating_sub(1)) + 1,
            expires_at: t + p.config.offer_ttl_secs,
            addresses: p
                .net
                .listen_addrs()
                .await
                .unwrap_or_default()
                .iter()
                .take(sietch_market::offer::MAX_ADDRESSES)
                .map(ToString::to_string)
                .collect(),
            ..p.offer.clone()
        };
        let Ok(keys) = p.store.node_keys() else {
            continue;
        };
        let Some(keys) = keys else { continue };
        let signed = Signed::sign(offer, &keys.ed25519);
        if let Err(e) = p.store.put_own_offer(&signed) {
            tracing::warn!("cannot store the offer: {e}");
        }
        match p.net.publish_offer(&signed).await {
            Ok(()) => println!("announced offer sequence {}", signed.payload.sequence),
            Err(e) => tracing::warn!("cannot announce the offer: {e}"),
        }
    }
}

/// Withdraws the provider's offers on shutdown, so buyers stop picking it at once.
async fn withdraw(p: &Provider) {
    let Ok(Some(keys)) = p.store.node_keys() else {
        return;
    };
    let Ok(Some(own)) = p.store.own_offer(&p.offer.provider) else {
        return;
    };
    if own.offer.is_none() {
        return;
    }
    // Above the live offer's sequence, so it removes it (and is itself newer in the store).
    let sequence = own.sequence + 1;
    let w = Signed::sign(
        Withdrawal {
            provider: p.offer.provider,
            sequence,
        },
        &keys.ed25519,
    );
    if let Err(e) = p.net.publish_withdrawal(&w).await {
        tracing::warn!("cannot withdraw the offer: {e}");
    }
    if let Err(e) = p.store.withdraw_own_offer(&p.offer.provider, sequence) {
        tracing::warn!("cannot record the withdrawal: {e}");
    }
    // Let gossipsub send it before the swarm goes away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("withdrew offer sequence {sequence}");
}

impl Provider {
    /// Checks a request against the offer; `Err` is the refusal to send.
    fn check(&self, req: &JobRequest) -> Result<Address, (RefuseReason, String)> {
        let spec = &req.spec;
        let t = &req.ticket;
        if spec.hash() != t.spec_hash {
            return Err((
                RefuseReason::Other,
                "the ticket's spec hash is not the spec's".into(),
            ));
        }
        let n = now();
        if t.deadline <= n {
            return Err((
                RefuseReason::Other,
                format!("the ticket's deadline {} has passed (now {n})", t.deadline),
            ));
        }
        if spec.limits.memory_bytes > self.offer.hardware.memory_bytes {
            return Err((
                RefuseReason::TooBig,
                format!(
                    "the job asks for {} bytes of memory; this provider allows {}",
                    spec.limits.memory_bytes, self.offer.hardware.memory_bytes
                ),
            ));
        }
        // stdout and `/output` may each reach the bound, and the result travels in one
        // message.
        let most_output = (net::MAX_RESULT / 2 - 64 * 1024) as u64;
        if spec.limits.output_bytes > most_output {
            return Err((
                RefuseReason::TooBig,
                format!(
                    "the job may write {} bytes of output; results carry at most {most_output}",
                    spec.limits.output_bytes
                ),
            ));
        }
        if spec.requirements.gpu.is_some() && self.offer.hardware.gpus.is_empty() {
            return Err((
                RefuseReason::TooBig,
                "the job needs a GPU; this provider has none".into(),
            ));
        }
        if spec.requirements.min_cpu_cores > self.offer.hardware.cpu_cores {
            return Err((
                RefuseReason::TooBig,
                format!(
                    "the job needs {} cores; this provider has {}",
                    spec.requirements.min_cpu_cores, self.offer.hardware.cpu_cores
                ),
            ));
        }
        // The provider is paid at most the ticket's maximum: it refuses jobs whose fuel
        // limit could cost more than that, rather than run them at a loss.
        let worst =
            (u128::from(spec.limits.fuel) * self.offer.prices.per_gfuel).div_ceil(FUEL_PER_GFUEL);
        if t.max_amount < U256::from(worst) {
            return Err((
                RefuseReason::PriceTooLow,
                format!(
                    "the job's fuel limit costs up to {worst} at {} per 10^9 fuel; the ticket allows {}",
                    self.offer.prices.per_gfuel, t.max_amount
                ),
            ));
        }
        recover(&t.digest(&self.domain), &req.ticket_signature).map_err(|e| {
            (
                RefuseReason::BadSignature,
                format!("the ticket's signature: {e}"),
            )
        })
    }

    async fn on_job(
        self: Arc<Self>,
        peer: PeerId,
        req: JobRequest,
        reply: tokio::sync::oneshot::Sender<JobReply>,
    ) {
        let job_id = req.ticket.job_id;
        let buyer = match self.check(&req) {
            Ok(b) => b,
            Err((reason, message)) => {
                println!("refused job {job_id}: {message}");
                let _ = reply.send(JobReply::Refused { reason, message });
                return;
            }
        };
        let Ok(_slot) = self.slots.try_acquire() else {
            let _ = reply.send(JobReply::Refused {
                reason: RefuseReason::Busy,
                message: format!(
                    "all {} job slots are in use; try again or pick another offer",
                    self.config.max_concurrent_jobs
                ),
            });
            return;
        };
        let t = now();
        let mut record = JobRecord::new(job_id, req.ticket.spec_hash, buyer, t);
        record.state = JobState::Accepted;
        record.ticket = Some(EvmSigned::new(req.ticket, req.ticket_signature));
        if let Err(e) = self.store.insert_job(Side::Provider, &req.spec, &record) {
            let _ = reply.send(JobReply::Refused {
                reason: RefuseReason::Other,
                message: format!("cannot record the job: {e}"),
            });
            return;
        }
        let _ = reply.send(JobReply::Accepted { job_id });
        println!("accepted job {job_id} from {peer}");

        let result = match self.execute(peer, &req).await {
            Ok(r) => r,
            Err(e) => {
                println!("job {job_id} failed: {e:#}");
                let _ = self.store.set_job_state(
                    Side::Provider,
                    &job_id,
                    JobState::Failed,
                    &format!("{e:#}").chars().take(200).collect::<String>(),
                    now(),
                );
                return;
            }
        };
        let _ = self.store.record_result(
            Side::Provider,
            &job_id,
            &EvmSigned::new(result.commitment, result.signature),
            now(),
        );
        for attempt in 1..=RESULT_ATTEMPTS {
            match self.net.send_result(peer, result.clone()).await {
                Ok(ack) => {
                    println!("delivered result of job {job_id}: {ack:?}");
                    return;
                }
                Err(e) => {
                    tracing::warn!("result of {job_id}, attempt {attempt}: {e}");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
    }

    async fn blob(&self, peer: PeerId, hash: B256) -> anyhow::Result<Vec<u8>> {
        if let Some(b) = self.store.blobs().get(&hash)? {
            return Ok(b);
        }
        let fetched = self
            .net
            .fetch_blob(peer, hash, |_, _| {})
            .await
            .with_context(|| format!("fetching blob {hash} from the buyer"))?;
        self.store.blobs().put_expecting(&hash, &fetched.bytes)?;
        Ok(fetched.bytes)
    }

    async fn execute(&self, peer: PeerId, req: &JobRequest) -> anyhow::Result<JobResult> {
        let spec = &req.spec;
        let wasm = self.blob(peer, spec.module).await?;
        let stdin = match &spec.stdin {
            Some(b) => self.blob(peer, b.hash).await?,
            None => Vec::new(),
        };
        let mut inputs = BTreeMap::new();
        for i in &spec.inputs {
            inputs.insert(i.name.clone(), self.blob(peer, i.blob.hash).await?);
        }
        let module = self.sandbox.load(&wasm)?;
        let run_spec = sandbox_job(spec, &req.ticket.job_id, stdin, inputs);
        let report = tokio::task::block_in_place(|| self.sandbox.run(&module, &run_spec))?;
        let metered =
            (u128::from(report.fuel_used) * self.offer.prices.per_gfuel).div_ceil(FUEL_PER_GFUEL);
        let commitment = ResultCommitment {
            job_id: req.ticket.job_id,
            spec_hash: req.ticket.spec_hash,
            output_hash: B256::from(report.output_hash),
            fuel_used: report.fuel_used,
            gpu_millis: report.gpu_time_ns / 1_000_000,
            amount: U256::from(metered).min(req.ticket.max_amount),
        };
        let signature = commitment.sign(&self.domain, &self.evm)?;
        let exit_code = match report.outcome {
            Outcome::Exited { code } => Some(code),
            _ => None,
        };
        println!(
            "ran job {}: {} with {} fuel",
            req.ticket.job_id, report.outcome, report.fuel_used
        );
        Ok(JobResult {
            job_id: req.ticket.job_id,
            outcome: report.outcome.to_string(),
            exit_code,
            stdout: report.stdout,
            files: report.outputs.into_iter().collect(),
            commitment,
            signature,
        })
    }
}
