//! What the node's API returns, and the job a buyer builds. Token amounts are decimal
//! strings of base units (they exceed what JSON numbers hold); hashes, ids and addresses
//! are `0x` hex.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Error, Result, str_field};

/// The node.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NodeInfo {
    /// libp2p peer id.
    pub peer_id: String,
    /// EVM account (the buyer of its jobs).
    pub evm_address: String,
    /// Where it listens.
    pub listen_addrs: Vec<String>,
    /// Peers connected now.
    pub peers: Vec<String>,
    /// Offers in its book.
    pub offers: u64,
    /// Channel opens its buyer has sent that have not landed yet ([`crate::Client::channels`]
    /// lists a channel once its open lands).
    #[serde(default)]
    pub channels_opening: u64,
    /// Its connection counters.
    #[serde(default)]
    pub connections: Connections,
    /// The chain, if it follows one.
    pub chain: Option<ChainInfo>,
    /// How the settlement token's amounts read (none without a chain, or from an older
    /// node): every amount of the API is in its base units.
    #[serde(default)]
    pub token: Option<TokenInfo>,
}

/// The settlement token, as a person reads its amounts.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct TokenInfo {
    /// Its contract.
    pub address: String,
    /// Its symbol (`tokens` when it has none).
    pub symbol: String,
    /// Its decimals: an amount of base units is `amount / 10^decimals` tokens.
    pub decimals: u8,
}

/// A node's connection counters, since it started.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Connections {
    /// Peers connected now.
    pub open: u64,
    /// Connections established, both directions.
    pub opened: u64,
    /// Connections that failed before they were established, both directions.
    pub failed: u64,
    /// Dials not started because the node held its most outgoing connections.
    pub dials_refused: u64,
    /// Kademlia requests from other nodes answered (rises while nearby nodes discover the
    /// network).
    #[serde(default)]
    pub discovery_requests_served: u64,
}

/// The chain a node settles on.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChainInfo {
    /// Chain id.
    pub chain_id: u64,
    /// The escrow's address.
    pub escrow: String,
    /// The settlement token's address.
    pub token: String,
}

/// A live offer.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Offer {
    /// The provider's EVM account.
    pub evm_address: String,
    /// Its peer id.
    pub peer_id: Option<String>,
    /// CPU cores offered.
    pub cpu_cores: u32,
    /// Memory a job may use, bytes.
    pub memory_bytes: u64,
    /// Price per 10^9 fuel, base units.
    pub price_per_gfuel: String,
    /// Stake stated.
    pub stake: String,
    /// When it expires, unix seconds.
    pub expires_at: u64,
    /// The GPUs offered (none for a CPU-only provider).
    #[serde(default)]
    pub gpus: Vec<OfferGpu>,
    /// Price per GPU-second, base units (`None` from a node that does not say).
    #[serde(default)]
    pub price_per_gpu_second: Option<String>,
}

/// A GPU of an offer.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OfferGpu {
    /// Model name as the driver reports it, e.g. `NVIDIA H100 80GB HBM3`.
    pub model: String,
    /// Device memory, bytes.
    pub memory_bytes: u64,
    /// Compute capability, `major.minor`.
    pub compute_capability: String,
}

/// A provider with its stake and reputation.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Provider {
    /// EVM account.
    pub evm_address: String,
    /// Stake on chain, base units.
    pub stake: Option<String>,
    /// Reputation as this node counts it.
    pub reputation: Reputation,
}

/// What a node has counted of a provider.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
pub struct Reputation {
    /// In `(0, 1)`; 0.5 when nothing is known.
    pub score: f64,
    /// Jobs paid.
    pub settled_jobs: u64,
    /// Spot checks passed.
    pub checks_passed: u64,
    /// Spot checks failed.
    pub checks_failed: u64,
    /// Times slashed.
    pub slashes: u64,
    /// Disputes over its jobs.
    pub disputes: u64,
}

/// The node itself as a provider (`GET /api/v1/provider`): earnings, jobs, stake and what it
/// allows, channels with what is owed, GPU, blob cache, and what stops it from earning.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ProviderStatus {
    /// Whether the node sells compute (`--provide`).
    pub providing: bool,
    /// Its EVM account.
    pub evm_address: String,
    /// Its peer id.
    pub peer_id: String,
    /// The offer as built at start; `None` when not providing.
    pub offer: Option<OwnOffer>,
    /// The GPUs offered.
    #[serde(default)]
    pub gpus: Vec<OwnGpu>,
    /// The `offer_gpu` setting.
    pub offer_gpu: bool,
    /// The chain as read now; `None` when none is configured.
    pub chain: Option<OwnChain>,
    /// The most a job may be worth to be sent here, by buyers' sampling rate.
    pub value_caps: Vec<ValueCap>,
    /// Jobs run.
    pub jobs: OwnJobs,
    /// This node's reputation row for its own key.
    pub reputation: Reputation,
    /// Paid jobs' amounts over time.
    pub earnings: Earnings,
    /// Channels it ran jobs on, the most recently used first (at most 64).
    pub channels: Vec<OwnChannel>,
    /// Channels it ran jobs on, in all.
    pub channels_total: u64,
    /// Owed on the channels listed, base units.
    pub owed: String,
    /// Owed on channels that still pay, base units.
    pub claimable: String,
    /// The blob cache.
    pub blobs: BlobUse,
    /// Reachability.
    pub network: OwnNetwork,
    /// What stops it from earning, in order.
    pub preflight: Vec<PreflightCheck>,
}

/// A provider's offer as the node built it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OwnOffer {
    /// Price per 10^9 fuel, base units.
    pub price_per_gfuel: String,
    /// Price per GPU-second, base units.
    pub price_per_gpu_second: String,
    /// Stake stated, base units.
    pub stake: String,
    /// CPU cores offered.
    pub cpu_cores: u32,
    /// Memory a job may use, bytes.
    pub memory_bytes: u64,
}

/// A GPU offered.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OwnGpu {
    /// Its model.
    pub model: String,
    /// Its memory, bytes.
    pub memory_bytes: u64,
    /// Compute capability, `major.minor`.
    pub compute_capability: String,
    /// Driver version.
    pub driver: String,
}

/// The provider's account on chain.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OwnChain {
    /// Whether the chain answered.
    pub reachable: bool,
    /// Why not.
    pub error: Option<String>,
    /// Active stake, base units.
    pub stake: Option<String>,
    /// Stake on its way out, base units.
    pub unstaking: Option<String>,
    /// The escrow's `minStake`, base units.
    pub min_stake: Option<String>,
    /// Whether this node's key is registered for its account.
    pub registered: Option<bool>,
    /// Credited by the escrow and not withdrawn yet, base units.
    pub credited: Option<String>,
}

/// The value cap at one sampling rate: `stake · q / (1 − q)`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ValueCap {
    /// The buyer's sampling rate, parts per million.
    pub sampling_ppm: u32,
    /// The most a job may be worth, base units; `None`: no bound.
    pub max_job_value: Option<String>,
}

/// A provider's jobs.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OwnJobs {
    /// Stored, in all.
    pub total: u64,
    /// Read for the counts (at most 10,000).
    pub scanned: u64,
    /// Counts by state (`paid`, `failed`, ...).
    pub by_state: BTreeMap<String, u64>,
    /// Paid jobs whose voucher the chain has paid, counted by job.
    pub settled: u64,
    /// Results whose payment a buyer withheld, since the node started.
    pub withheld_since_start: u64,
}

/// Earnings in time buckets.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Earnings {
    /// Paid jobs' amounts in all, base units.
    pub total: String,
    /// Bucket width, seconds.
    pub bucket_secs: u64,
    /// Oldest first.
    pub buckets: Vec<EarningsBucket>,
}

/// One time bucket of earnings.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EarningsBucket {
    /// Unix time it starts.
    pub start: u64,
    /// Earned, base units.
    pub amount: String,
    /// Jobs paid.
    pub jobs: u64,
}

/// A channel a provider is paid from.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OwnChannel {
    /// Its id.
    pub channel: String,
    /// Who funds it.
    pub buyer: String,
    /// `open`, `closing`, `closed`; `None` when the chain did not answer.
    pub state: Option<String>,
    /// The latest voucher's cumulative amount, base units.
    pub voucher: String,
    /// Paid on chain so far, base units.
    pub paid: Option<String>,
    /// Voucher less paid, base units.
    pub owed: String,
    /// Owed and the channel still pays.
    pub claimable: bool,
}

/// The blob cache's use.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BlobUse {
    /// Bytes held.
    pub bytes: u64,
    /// Blobs held.
    pub count: u64,
    /// The quota, bytes.
    pub quota_bytes: u64,
}

/// Whether peers reach the node.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OwnNetwork {
    /// AutoNAT's judgement: `unknown`, `public`, `private`.
    pub reachability: String,
    /// Relays configured.
    pub relays: u64,
    /// Whether a relayed listen address is up.
    pub relayed: bool,
    /// Peers connected.
    pub peers: u64,
}

/// One pre-flight check.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PreflightCheck {
    /// `providing`, `chain`, `registered`, `stake`, `gpu`, `reachable`, `blobs`.
    pub check: String,
    /// `ok`, `warning` or `blocking`.
    pub status: String,
    /// What is the case.
    pub message: String,
    /// What to do about it.
    pub fix: Option<String>,
}

/// A payment channel of the node.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Channel {
    /// Its id.
    pub channel: String,
    /// The provider paid from it.
    pub provider: String,
    /// The latest voucher signed, base units.
    pub cumulative: String,
    /// Deposited, base units.
    pub deposit: String,
}

/// A job's outputs.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Outputs {
    /// How it ended, in words.
    pub outcome: String,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// stdout, base64 (see [`Outputs::stdout`]).
    pub stdout: String,
    /// `/output` files, base64 by name (see [`Outputs::file`]).
    pub files: BTreeMap<String, String>,
    /// The committed output hash.
    pub output_hash: String,
    /// Fuel used.
    pub fuel_used: u64,
    /// What it cost, base units.
    pub amount: String,
}

fn unbase64(s: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| Error::Decode(e.to_string()))
}

impl Outputs {
    /// stdout's bytes.
    pub fn stdout(&self) -> Result<Vec<u8>> {
        unbase64(&self.stdout)
    }

    /// An `/output` file's bytes, if the job wrote it.
    pub fn file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.files.get(name).map(|b| unbase64(b)).transpose()
    }
}

/// A finished job, as `run` returns it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Finished {
    /// Its id.
    pub job_id: String,
    /// The provider whose result stands.
    pub provider: String,
    /// Paid for it, base units (`0` when the provider was found wrong).
    pub paid: String,
    /// The spot check's decision when it was sampled: `Passed`, `ProviderRight`,
    /// `ProviderWrong` or `Undecided { .. }`.
    pub check: Option<String>,
    /// Milliseconds from submission to the verified result.
    pub millis: u64,
    /// Its outputs.
    pub outputs: Outputs,
}

/// A job as the node stored it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct JobRecord {
    /// Its id.
    pub job_id: String,
    /// `requested`, `accepted`, `running`, `done`, `checked`, `paid`, `refused`, `failed`.
    pub state: String,
    /// The provider (zero until one delivered).
    pub counterparty: String,
    /// Its charge, once a result came.
    pub amount: Option<String>,
    /// Fuel used.
    pub fuel_used: Option<u64>,
    /// Why it failed, when it did.
    pub note: String,
    /// Its outputs, once finished.
    pub outputs: Option<Outputs>,
    /// The providers the node sent it to, in order (the last one runs it, or ran it): what
    /// a job submitted again elsewhere avoids ([`Job::avoid`]). Empty from a node that does
    /// not say, and in job lists.
    #[serde(default)]
    pub sent_to: Vec<String>,
}

impl JobRecord {
    /// Whether nothing will change it any more.
    pub fn is_final(&self) -> bool {
        matches!(self.state.as_str(), "paid" | "refused" | "failed")
            || (self.state == "done" && self.outputs.is_some())
    }
}

/// A ticket claimed, disputed or withheld, with what happened to it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Dispute {
    /// The escrow's ticket id.
    pub ticket: String,
    /// The job.
    pub job: Option<String>,
    /// `withheld`, `claimed`, `disputed`, `drawn` or `settled`.
    pub state: String,
    /// When settled: `undisputed`, `provider_right`, `provider_wrong`, `undecided`.
    pub outcome: Option<String>,
    /// The check's decision, when this node found the provider wrong.
    pub decision: Option<String>,
    /// The signed commitments of the check (original and re-runs).
    pub evidence: Option<Value>,
    /// The escrow's events about the ticket.
    #[serde(default)]
    pub events: Vec<Value>,
}

/// Something that happened in the node (its `kind` names it: `submitted`, `sent`,
/// `result_in`, `checking`, `checked`, `finished`, `claimed`, `disputed`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event's kind.
    pub kind: String,
    /// All its fields.
    pub data: Value,
}

impl Event {
    pub(crate) fn from_value(data: Value) -> Self {
        Self {
            kind: str_field(&data, "kind").unwrap_or_default().to_owned(),
            data,
        }
    }

    /// The job it is about, if any.
    pub fn job(&self) -> Option<&str> {
        str_field(&self.data, "job")
    }
}

/// Tolerance bounds (relative, absolute) and the arrays compared (`(file, kind)`).
type Tolerance = (f64, f64, Vec<(String, String)>);

/// An `/input` file of a [`Job`]: bytes to upload, or a blob the node holds.
#[derive(Debug, Clone)]
pub(crate) enum InputData {
    /// Uploaded with the job.
    Bytes(Vec<u8>),
    /// Already a blob of the node, by hash.
    Blob(String),
}

/// A job to submit: a WebAssembly module (a WASI preview 1 command), its arguments,
/// environment, stdin and `/input` files, its limits, what the provider must have, how it
/// is checked, and the most it may cost.
#[derive(Debug, Clone)]
pub struct Job {
    pub(crate) module: Vec<u8>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub(crate) stdin: Option<Vec<u8>>,
    pub(crate) inputs: Vec<(String, InputData)>,
    fuel: u64,
    memory_bytes: u64,
    wall_time_ms: u64,
    output_bytes: u64,
    min_cpu_cores: u16,
    gpu: Option<Value>,
    sampling_ppm: u32,
    reruns: u8,
    tolerance: Option<Tolerance>,
    rescore: Option<f64>,
    price_cap: u128,
    deadline_secs: u64,
    avoid: Vec<String>,
}

/// Most providers one [`Job`] may avoid (the node's bound).
pub const MAX_AVOID: usize = 16;

impl Job {
    /// A job running `module`, with the node's defaults: 10^9 fuel, 64 MiB, 60 s, 1 MiB
    /// of output, 10% sampling with one re-run, exact comparison, a price cap of 0.1 token.
    pub fn new(module: Vec<u8>) -> Self {
        Self {
            module,
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            inputs: Vec::new(),
            fuel: 1_000_000_000,
            memory_bytes: 64 << 20,
            wall_time_ms: 60_000,
            output_bytes: 1 << 20,
            min_cpu_cores: 1,
            gpu: None,
            sampling_ppm: 100_000,
            reruns: 1,
            tolerance: None,
            rescore: None,
            price_cap: 100_000_000_000_000_000,
            deadline_secs: 600,
            avoid: Vec::new(),
        }
    }

    /// Adds an argument.
    #[must_use]
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Sets an environment variable.
    #[must_use]
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Standard input.
    #[must_use]
    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    /// A file of `/input`, uploaded with the job.
    #[must_use]
    pub fn input(mut self, name: impl Into<String>, bytes: Vec<u8>) -> Self {
        self.inputs.push((name.into(), InputData::Bytes(bytes)));
        self
    }

    /// A file of `/input` that the node already holds as a blob (`0x` and the blake3 hash,
    /// as [`crate::Client::upload`] returned it): nothing is uploaded again. A provider that
    /// holds the blob too runs the job without fetching it (a model moves once per provider).
    #[must_use]
    pub fn input_blob(mut self, name: impl Into<String>, hash: impl Into<String>) -> Self {
        self.inputs
            .push((name.into(), InputData::Blob(hash.into())));
        self
    }

    /// Fuel limit (the billing unit).
    #[must_use]
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = fuel;
        self
    }

    /// Memory limit, bytes.
    #[must_use]
    pub fn memory_bytes(mut self, b: u64) -> Self {
        self.memory_bytes = b;
        self
    }

    /// Wall-clock limit, milliseconds.
    #[must_use]
    pub fn wall_time_ms(mut self, ms: u64) -> Self {
        self.wall_time_ms = ms;
        self
    }

    /// Output limit (stdout and `/output` each), bytes.
    #[must_use]
    pub fn output_bytes(mut self, b: u64) -> Self {
        self.output_bytes = b;
        self
    }

    /// CPU cores the provider must have.
    #[must_use]
    pub fn min_cpu_cores(mut self, n: u16) -> Self {
        self.min_cpu_cores = n;
        self
    }

    /// GPUs the provider must have: how many, acceptable models (empty: any), memory per
    /// GPU, and the lowest compute capability (`"8.0"`).
    #[must_use]
    pub fn gpu(mut self, count: u8, models: &[&str], min_memory_bytes: u64, cc: &str) -> Self {
        self.gpu = Some(json!({
            "count": count, "models": models, "min_memory_bytes": min_memory_bytes,
            "min_compute_capability": cc,
        }));
        self
    }

    /// Share of such jobs spot-checked, parts per million (100000 = 10%).
    #[must_use]
    pub fn sampling_ppm(mut self, ppm: u32) -> Self {
        self.sampling_ppm = ppm;
        self
    }

    /// Re-runs of a sampled job.
    #[must_use]
    pub fn reruns(mut self, k: u8) -> Self {
        self.reruns = k;
        self
    }

    /// Compare these `/output` float arrays (`(file, "f32" | "f64")`) within bounds, for
    /// GPU floats, instead of demanding identical bytes.
    #[must_use]
    pub fn tolerance(mut self, relative: f64, absolute: f64, arrays: &[(&str, &str)]) -> Self {
        self.rescore = None;
        self.tolerance = Some((
            relative,
            absolute,
            arrays
                .iter()
                .map(|(p, k)| ((*p).to_owned(), (*k).to_owned()))
                .collect(),
        ));
        self
    }

    /// Check a generation job of the inference guest by re-scoring its claimed completions
    /// (every token within `margin` logits of the model's choice; 0.1 is what docs/ai.md
    /// measured) instead of demanding identical bytes: for GPU providers. The node refuses a
    /// margin that is not above 0 and at most 1000 (`bad_job`).
    #[must_use]
    pub fn rescore(mut self, margin: f64) -> Self {
        self.tolerance = None;
        self.rescore = Some(margin);
        self
    }

    /// The most the job may cost, base units.
    #[must_use]
    pub fn price_cap(mut self, cap: u128) -> Self {
        self.price_cap = cap;
        self
    }

    /// Seconds from submission by which the result must arrive.
    #[must_use]
    pub fn deadline_secs(mut self, s: u64) -> Self {
        self.deadline_secs = s;
        self
    }

    /// Never run on these providers (EVM addresses, `0x` and 40 hex digits; at most
    /// [`MAX_AVOID`], each once): a job submitted again after one of them failed or was
    /// slow. The node refuses a malformed list (`bad_avoid`), and answers [`Error::NoMatch`]
    /// with the blocker `avoid` at once when only these providers fit.
    ///
    /// [`Error::NoMatch`]: crate::Error::NoMatch
    #[must_use]
    pub fn avoid<I, S>(mut self, providers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for p in providers {
            let p = p.into();
            if !self.avoid.contains(&p) {
                self.avoid.push(p);
            }
        }
        self
    }

    /// The providers it avoids.
    pub fn avoided(&self) -> &[String] {
        &self.avoid
    }

    /// Seconds the job has to finish, from submission.
    pub(crate) fn deadline_secs_left(&self) -> u64 {
        self.deadline_secs
    }

    /// The submission as `POST /api/v1/jobs` takes it, once the blobs are uploaded.
    pub(crate) fn submission(
        &self,
        module: &str,
        stdin: Option<&str>,
        inputs: Vec<Value>,
    ) -> Value {
        let verification = match &self.tolerance {
            None if self.rescore.is_some() => json!({
                "sampling_ppm": self.sampling_ppm, "reruns": self.reruns, "comparison": "rescore",
                "margin": self.rescore,
            }),
            None => {
                json!({"sampling_ppm": self.sampling_ppm, "reruns": self.reruns, "comparison": "exact"})
            }
            Some((rel, abs, arrays)) => json!({
                "sampling_ppm": self.sampling_ppm, "reruns": self.reruns, "comparison": "tolerance",
                "relative": rel, "absolute": abs,
                "float_outputs": arrays.iter().map(|(p, k)| json!({"path": p, "kind": k})).collect::<Vec<_>>(),
            }),
        };
        let mut body = json!({
            "module": module,
            "args": self.args,
            "env": self.env,
            "stdin": stdin,
            "inputs": inputs,
            "limits": {
                "fuel": self.fuel, "memory_bytes": self.memory_bytes,
                "wall_time_ms": self.wall_time_ms, "output_bytes": self.output_bytes,
            },
            "requirements": {"min_cpu_cores": self.min_cpu_cores, "features": [], "gpu": self.gpu},
            "verification": verification,
            "price_cap": self.price_cap.to_string(),
            "deadline_secs": self.deadline_secs,
        });
        // Only when there is one: a node older than the field refuses unknown fields.
        if !self.avoid.is_empty()
            && let Some(o) = body.as_object_mut()
        {
            o.insert("avoid".into(), json!(self.avoid));
        }
        body
    }
}
