//! Shared by the verifier's integration tests and the simulation bench: a market of
//! providers with behaviours (honest, wrong on a fraction of jobs, lazy replay, colluding,
//! GPU-style float jitter) over a [`Compute`] (a real sandbox, or an in-memory stand-in for
//! volume), an [`Executor`] over them, and the buyer's loop that sends jobs and checks them.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod sandboxed;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use alloy::signers::local::PrivateKeySigner;
use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sietch_market::eip712::{Domain, TypedData};
use sietch_market::{
    Address, B256, Comparison, Hardware, JobSpec, Limits, Offer, Prices, PublicKey, Requirements,
    ResultCommitment, Ticket, U256, VerificationPolicy, job_id,
};
use sietch_verifier::{
    Check, Decision, Executor, Job, Outcome, Outputs, RerunError, RerunRequest, RunResult,
    Verifier, VerifierConfig, new_secret, reveal,
};

/// The escrow domain every signature in the tests is in.
pub const DOMAIN: Domain = Domain::new(31337, Address::repeat_byte(0xe5));
/// Unix seconds the tests run at.
pub const NOW: u64 = 1_700_000_000;
/// The buyer's account (in job ids).
pub const BUYER: Address = Address::repeat_byte(0xb0);

/// The seed of a test: `SIETCH_SEED` if set (to reproduce a failure), else `default`.
pub fn seed(default: u64) -> u64 {
    std::env::var("SIETCH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Whether `x` successes out of `n` fit Binomial(n, p) within `z` standard deviations (plus
/// one for the discreteness): the statistical bound the tests state.
pub fn within(x: usize, n: usize, p: f64, z: f64) -> bool {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    (x as f64 - mean).abs() <= z * sd + 1.0
}

/// Asserts that `x` of `n` jobs (`what`) fit Binomial(n, p) within 4 standard deviations.
pub fn assert_rate(what: &str, x: usize, n: usize, p: f64, seed: u64) {
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    assert!(
        within(x, n, p, 4.0),
        "seed {seed}: {what} {x} of {n}, expected {:.1} ± {:.1} (4 sd)",
        n as f64 * p,
        4.0 * sd + 1.0
    );
}

/// `first`, then `honest` honest providers' behaviours.
pub fn among_honest(first: &[Behaviour], honest: usize) -> Vec<Behaviour> {
    first
        .iter()
        .cloned()
        .chain(std::iter::repeat_n(Behaviour::Honest, honest))
        .collect()
}

/// What one run of a job produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub outputs: Outputs,
    pub fuel: u64,
}

/// Runs jobs honestly.
pub trait Compute: Send + Sync {
    fn run(&self, job_id: B256, spec: &JobSpec) -> Run;
}

/// An in-memory stand-in for the sandbox: the output is a hash of the job, the fuel a
/// function of it. Deterministic like the sandbox, and a thousand times cheaper.
pub struct Formula;

impl Compute for Formula {
    fn run(&self, job_id: B256, spec: &JobSpec) -> Run {
        let h = blake3::hash(&[job_id.as_slice(), spec.hash().as_slice()].concat());
        Run {
            outputs: Outputs {
                outcome: Outcome::Exited { code: 0 },
                stdout: h.as_bytes().to_vec(),
                files: Default::default(),
            },
            fuel: 10_000 + u64::from(h.as_bytes()[0]),
        }
    }
}

/// How a provider behaves, as the original and as a re-run provider alike.
#[derive(Debug, Clone)]
pub enum Behaviour {
    Honest,
    /// Returns a wrong output on a fraction of its jobs.
    Wrong(f64),
    /// On a fraction of its jobs, replays the output of its previous job of the same module
    /// (the tests give every job other inputs, so a replay is always wrong).
    Lazy(f64),
    /// Wrong on a fraction of its own jobs; as a re-run provider, repeats its group's wrong
    /// answer for a job the group cheated on.
    Colluder {
        rate: f64,
        ledger: Ledger,
    },
    /// Cheats only when the ticket's check commit "looks" unsampled (its first byte is odd):
    /// a provider trying to read the sampling from the commit.
    CommitReader(f64),
    /// Flips the last mantissa bit of every f32 in `/output/{0}` (another GPU's rounding).
    Jitter(String),
    /// Signs with a key that is not its offer's.
    WrongKey,
}

/// The wrong answers a colluding group gave, by job.
pub type Ledger = Arc<Mutex<HashMap<B256, Run>>>;

/// A provider of the test market.
pub struct Provider {
    pub offer: Offer,
    pub key: PrivateKeySigner,
    /// The domain it signs in ([`DOMAIN`] unless a test deploys an escrow).
    pub domain: Domain,
    pub behaviour: Behaviour,
    rng: Mutex<ChaCha20Rng>,
    last: Mutex<HashMap<B256, Run>>,
}

/// What a provider computed (not signed yet) and whether it cheated.
pub struct Answer {
    pub run: Run,
    pub cheated: bool,
}

impl Provider {
    pub fn new(index: u16, behaviour: Behaviour, seed: u64) -> Self {
        // Its own stream, independent of the buyer's (seeded with `seed` itself) and of the
        // other providers'.
        let mut key_material = [0u8; 10];
        key_material[..8].copy_from_slice(&seed.to_le_bytes());
        key_material[8..].copy_from_slice(&index.to_le_bytes());
        let mut rng = ChaCha20Rng::from_seed(blake3::derive_key(
            "sietch-verifier tests: provider rng",
            &key_material,
        ));
        let key = PrivateKeySigner::from_bytes(&B256::from(rng.r#gen::<[u8; 32]>())).unwrap();
        let node = SigningKey::from_bytes(&rng.r#gen::<[u8; 32]>());
        let [hi, lo] = index.to_be_bytes();
        let offer = Offer {
            provider: PublicKey::of(&node),
            evm_address: key.address(),
            hardware: Hardware {
                cpu_cores: 8,
                memory_bytes: 16 << 30,
                gpus: vec![],
            },
            features: vec![],
            prices: Prices {
                per_gfuel: 1_000_000,
                per_gpu_second: 0,
            },
            stake: 1_000_000_000,
            // One /24 per provider.
            addresses: vec![format!("/ip4/51.{hi}.{lo}.7/tcp/4001")],
            sequence: 1,
            expires_at: NOW + 3_600,
            max_input_bytes: 0,
            cached_blobs: vec![],
        };
        Self {
            offer,
            key,
            domain: DOMAIN,
            behaviour,
            rng: Mutex::new(rng),
            last: Mutex::new(HashMap::new()),
        }
    }

    /// The same provider with another EVM key (an account of a test chain), signing in `domain`.
    pub fn with_key(mut self, key: PrivateKeySigner, domain: Domain) -> Self {
        self.offer.evm_address = key.address();
        self.key = key;
        self.domain = domain;
        self
    }

    fn coin(&self, p: f64) -> bool {
        self.rng.lock().unwrap().gen_bool(p.clamp(0.0, 1.0))
    }

    /// Runs a job as the original provider (`ticket` given) or as a re-run provider.
    pub fn answer(
        &self,
        compute: &dyn Compute,
        job_id: B256,
        spec: &JobSpec,
        ticket: Option<&Ticket>,
    ) -> Answer {
        let honest = || compute.run(job_id, spec);
        let (run, cheated) = match &self.behaviour {
            Behaviour::Honest | Behaviour::WrongKey => (honest(), false),
            Behaviour::Wrong(f) => {
                if self.coin(*f) {
                    (corrupt(honest()), true)
                } else {
                    (honest(), false)
                }
            }
            Behaviour::Lazy(f) => {
                let replay = self.coin(*f);
                let mut last = self.last.lock().unwrap();
                match last.get(&spec.module) {
                    Some(old) if replay => (old.clone(), true),
                    _ => {
                        let run = honest();
                        last.insert(spec.module, run.clone());
                        (run, false)
                    }
                }
            }
            Behaviour::Colluder { rate, ledger } => {
                let mut ledger = ledger.lock().unwrap();
                match ticket {
                    Some(_) if self.coin(*rate) => {
                        let wrong = corrupt(honest());
                        ledger.insert(job_id, wrong.clone());
                        (wrong, true)
                    }
                    Some(_) => (honest(), false),
                    None => match ledger.get(&job_id) {
                        Some(wrong) => (wrong.clone(), true),
                        None => (honest(), false),
                    },
                }
            }
            Behaviour::CommitReader(f) => {
                let looks_unsampled = ticket.is_some_and(|t| t.check_commit[0] % 2 == 1);
                if looks_unsampled && self.coin(*f) {
                    (corrupt(honest()), true)
                } else {
                    (honest(), false)
                }
            }
            Behaviour::Jitter(path) => (jitter(honest(), path), true),
        };
        Answer { run, cheated }
    }

    /// The channel the test buyer pays this provider's re-runs on: a re-run's commitment is
    /// signed for it, never for the original's ticket.
    pub fn rerun_channel(&self) -> B256 {
        B256::from(alloy::primitives::keccak256(self.offer.provider.0))
    }

    /// Signs a run's commitment for the job's ticket on `channel_id`, as the provider sends it.
    pub fn sign(&self, channel_id: B256, job_id: B256, spec: &JobSpec, run: Run) -> RunResult {
        let amount = (u128::from(run.fuel) * self.offer.prices.per_gfuel).div_ceil(1_000_000_000);
        let commitment = ResultCommitment {
            job_id,
            spec_hash: spec.hash(),
            channel_id,
            output_hash: run.outputs.hash(),
            fuel_used: run.fuel,
            gpu_millis: 0,
            amount: U256::from(amount.max(1)),
        };
        let key = match self.behaviour {
            Behaviour::WrongKey => PrivateKeySigner::from_bytes(&B256::repeat_byte(0x66)).unwrap(),
            _ => self.key.clone(),
        };
        RunResult {
            signature: commitment.sign(&self.domain, &key).unwrap(),
            commitment,
            outputs: Some(run.outputs),
        }
    }
}

/// A wrong answer: the honest one with its stdout changed.
fn corrupt(mut run: Run) -> Run {
    run.outputs.stdout.extend_from_slice(b" (wrong)");
    run
}

/// The honest answer as another GPU would give it: the last mantissa bit of every f32 of
/// `/output/{path}` flipped.
fn jitter(mut run: Run, path: &str) -> Run {
    if let Some(data) = run.outputs.files.get_mut(path) {
        for c in data.chunks_exact_mut(4) {
            c[0] ^= 1;
        }
    }
    run
}

/// The providers and the way they run jobs: the [`Executor`] the verifier re-runs through.
pub struct Network {
    pub providers: Vec<Provider>,
    pub compute: Arc<dyn Compute>,
    pub reruns: AtomicUsize,
}

impl Network {
    /// Provider `i` behaves as `behaviours[i]`.
    pub fn of(behaviours: Vec<Behaviour>, compute: Arc<dyn Compute>, seed: u64) -> Self {
        let providers = behaviours
            .into_iter()
            .zip(0..)
            .map(|(b, i)| Provider::new(i, b, seed))
            .collect();
        Self::new(providers, compute)
    }

    pub fn new(providers: Vec<Provider>, compute: Arc<dyn Compute>) -> Self {
        Self {
            providers,
            compute,
            reruns: AtomicUsize::new(0),
        }
    }

    pub fn offers(&self) -> Vec<&Offer> {
        self.providers.iter().map(|p| &p.offer).collect()
    }
}

#[async_trait]
impl Executor for Network {
    async fn rerun(&self, r: RerunRequest<'_>) -> Result<RunResult, RerunError> {
        let p = self
            .providers
            .iter()
            .find(|p| p.offer.provider == r.provider.provider)
            .ok_or_else(|| RerunError::Unreachable("not in the test market".into()))?;
        self.reruns.fetch_add(1, Ordering::Relaxed);
        let run = p.answer(&*self.compute, r.job_id, r.spec, None).run;
        let mut result = p.sign(p.rerun_channel(), r.job_id, r.spec, run);
        if !r.with_outputs {
            result.outputs = None;
        }
        Ok(result)
    }
}

/// What a buyer saw sending jobs to one provider.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub jobs: usize,
    pub sampled: usize,
    pub cheated: usize,
    pub sampled_cheats: usize,
    /// Checks that found the provider wrong on a job it cheated on.
    pub caught: usize,
    /// Checks that found it wrong on a job it did not cheat on.
    pub false_accusations: usize,
    /// Sampled cheats that were not found wrong.
    pub missed: usize,
    pub reruns: usize,
    pub first_catch: Option<usize>,
    pub checks: Vec<Check>,
}

/// A buyer sending jobs built by `spec_for(nonce)` to provider `target` and checking them.
pub struct Buyer<'a> {
    pub net: &'a Network,
    pub verifier: Verifier<&'a Network>,
    pub rng: ChaCha20Rng,
    pub keep_checks: bool,
}

impl<'a> Buyer<'a> {
    pub fn new(net: &'a Network, config: VerifierConfig, seed: u64) -> Self {
        Self {
            net,
            verifier: Verifier::new(net, DOMAIN, config),
            rng: ChaCha20Rng::seed_from_u64(seed),
            keep_checks: false,
        }
    }

    pub fn send(&mut self, target: usize, jobs: u64, spec_for: &dyn Fn(u64) -> JobSpec) -> Tally {
        let mut t = Tally::default();
        let provider = &self.net.providers[target];
        let candidates = self.net.offers();
        for nonce in 0..jobs {
            let spec = spec_for(nonce);
            let id = job_id(BUYER, nonce, spec.hash());
            let (secret, commit) = new_secret(&mut self.rng);
            let ticket = Ticket {
                job_id: id,
                spec_hash: spec.hash(),
                channel_id: B256::repeat_byte(0xc0),
                cumulative_before: U256::ZERO,
                max_amount: U256::from(spec.price_cap),
                deadline: NOW + 3_600,
                check_commit: commit,
                per_gfuel: 0,
                per_gpu_second: 0,
            };
            let answer = provider.answer(&*self.net.compute, id, &spec, Some(&ticket));
            t.jobs += 1;
            t.cheated += usize::from(answer.cheated);
            if !reveal(&ticket, &secret, spec.verification.sampling_ppm).unwrap() {
                continue;
            }
            t.sampled += 1;
            t.sampled_cheats += usize::from(answer.cheated);
            // Signed only now to keep the simulation quick: the provider committed to the run
            // before the reveal either way.
            let result = provider.sign(ticket.channel_id, id, &spec, answer.run);
            let job = Job {
                spec: &spec,
                ticket: &ticket,
                ticket_signature: None,
                secret,
                provider: &provider.offer,
                result: &result,
            };
            let check = futures::executor::block_on(self.verifier.check(
                &job,
                &candidates,
                NOW,
                &mut self.rng,
            ))
            .unwrap();
            t.reruns += check.reruns_attempted();
            if check.decision == Decision::ProviderWrong {
                if answer.cheated {
                    t.caught += 1;
                    t.first_catch.get_or_insert(t.jobs);
                } else {
                    t.false_accusations += 1;
                }
            } else if answer.cheated {
                t.missed += 1;
            }
            if self.keep_checks {
                t.checks.push(check);
            }
        }
        t
    }
}

/// A spec for the in-memory market: nothing runs, so only its hash matters.
pub fn formula_spec(nonce: u64, sampling_ppm: u32, reruns: u8) -> JobSpec {
    JobSpec {
        module: B256::repeat_byte(0xab),
        args: vec![format!("job {nonce}")],
        env: vec![],
        stdin: None,
        inputs: vec![],
        limits: Limits {
            fuel: 1 << 30,
            memory_bytes: 1 << 20,
            wall_time_ms: 1_000,
            output_bytes: 1 << 20,
        },
        requirements: Requirements::default(),
        verification: VerificationPolicy {
            sampling_ppm,
            reruns,
            comparison: Comparison::Exact,
        },
        price_cap: 1_000,
        deadline: NOW + 3_600,
    }
}

/// One cell of the simulation: a provider cheating on a fraction `f` of its jobs, checked at
/// rate `q` with `k` re-runs, over `jobs` jobs, `trials` times; and an honest provider's jobs
/// alongside for the overhead of honest traffic.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    pub q: f64,
    pub f: f64,
    pub k: u8,
    pub jobs: u64,
    pub trials: usize,
    /// Trials that also send `jobs` jobs to an honest provider.
    pub honest_trials: usize,
}

/// What a cell measured, summed over its trials.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    /// Trials in which the cheater was found wrong at least once.
    pub detected: usize,
    pub trials: usize,
    pub cheater_jobs: usize,
    pub cheater_reruns: usize,
    pub caught: usize,
    pub honest_jobs: usize,
    pub honest_reruns: usize,
    /// Honest jobs (the honest provider's, and the cheater's honest ones) found wrong.
    pub false_accusations: usize,
}

impl Measured {
    fn add(&mut self, o: &Self) {
        self.detected += o.detected;
        self.trials += o.trials;
        self.cheater_jobs += o.cheater_jobs;
        self.cheater_reruns += o.cheater_reruns;
        self.caught += o.caught;
        self.honest_jobs += o.honest_jobs;
        self.honest_reruns += o.honest_reruns;
        self.false_accusations += o.false_accusations;
    }
}

impl Cell {
    /// `1 − (1 − q·f)^n`.
    pub fn predicted_detection(&self) -> f64 {
        1.0 - (1.0 - self.q * self.f).powf(self.jobs as f64)
    }

    /// `1 + q·k`.
    pub fn predicted_overhead(&self) -> f64 {
        1.0 + self.q * f64::from(self.k)
    }

    /// Runs the cell's trials on `threads` threads; trial `i` is seeded from `seed` and `i`.
    pub fn run(&self, seed: u64, threads: usize) -> Measured {
        let threads = threads.clamp(1, self.trials.max(1));
        let mut total = Measured::default();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || {
                        let mut m = Measured::default();
                        for i in (t..self.trials).step_by(threads) {
                            m.add(&self.trial(seed, i));
                        }
                        m
                    })
                })
                .collect();
            for h in handles {
                total.add(&h.join().unwrap());
            }
        });
        total
    }

    fn trial(&self, seed: u64, i: usize) -> Measured {
        let s = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let net = Network::of(
            among_honest(&[Behaviour::Wrong(self.f)], 11),
            Arc::new(Formula),
            s,
        );
        let mut buyer = Buyer::new(&net, VerifierConfig::default(), s);
        let ppm = (self.q * 1e6).round() as u32;
        let spec = |n| formula_spec(n, ppm, self.k);
        let t = buyer.send(0, self.jobs, &spec);
        let mut m = Measured {
            detected: usize::from(t.first_catch.is_some()),
            trials: 1,
            cheater_jobs: t.jobs,
            cheater_reruns: t.reruns,
            caught: t.caught,
            false_accusations: t.false_accusations,
            ..Measured::default()
        };
        if i < self.honest_trials {
            let h = buyer.send(1, self.jobs, &spec);
            m.honest_jobs = h.jobs;
            m.honest_reruns = h.reruns;
            m.false_accusations += h.false_accusations + h.caught;
        }
        m
    }
}
