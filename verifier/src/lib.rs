//! Spot-check verification for the Sietch market (`docs/protocol.md` §2.6, §2.8 and §4): a
//! sample of jobs, chosen by a secret the provider cannot see in advance, is re-run on
//! other, independent providers and compared; a mismatch brings two more re-runs and the
//! majority decides; a provider found wrong is not paid, and the signed commitments of the
//! check are the evidence for a dispute on chain. What the checks and the chain show feeds
//! each provider's reputation, and so the order book's ranking.
//!
//! - [`sampling`]: commit-reveal: the ticket commits to `keccak256(secret)`; after the result
//!   commitment the secret is revealed and the job is checked iff
//!   `keccak256(secret ‖ jobId) < q · 2^256`.
//! - [`select`](mod@select): `k` re-run providers drawn at random among staked offers that
//!   can run the spec, never the original, its EVM owner or its /24; the value cap
//!   `stake · q / (1 − q)` ([`check_value_cap`]).
//! - [`compare`](mod@compare): `exact` (output hash and fuel) and `tolerance` (declared
//!   f32/f64 arrays in `/output`, `|a − b| ≤ absolute + relative · max(|a|, |b|)`).
//! - [`rescore`]: `rescore` (generation jobs: the claimed completions re-scored by the
//!   inference guest's rescoring mode, each token within a margin of the model's choice).
//! - [`check`]: the whole check of one job through an [`Executor`], which the node implements
//!   over its network and tests over real sandboxes; the result is a [`Check`] with its
//!   [`Decision`].
//! - [`evidence`]: the bundle of signed commitments against a provider found wrong, its
//!   encoding, the escrow call it drives (`dispute`) and the arguments of `claimTicket`.
//! - [`reputation`]: counters per provider from chain events and local checks, a stated
//!   formula, and a table the order book ranks with ([`sietch_market::Observations`]).
//!
//! Nothing here reads the clock or the OS's randomness: time is passed in as unix seconds and
//! every random choice comes from an RNG the caller passes, so a simulation or test is
//! reproduced from its seed. The crate does no networking of its own; the chain calls of
//! [`Evidence`] go through the alloy provider the caller gives.
//!
//! # Example: one job, sampled and checked
//!
//! ```
//! use async_trait::async_trait;
//! use rand::SeedableRng;
//! use sietch_market::eip712::{Domain, TypedData};
//! use sietch_market::*;
//! use sietch_verifier::*;
//! # use alloy::signers::local::PrivateKeySigner;
//!
//! /// Every provider computes the same, honest answer (the node runs a sandbox instead).
//! struct Honest { keys: Vec<PrivateKeySigner>, domain: Domain }
//!
//! /// A result for the job's ticket on `channel_id` (each run is paid on its own channel).
//! fn answer(job_id: B256, channel_id: B256, spec: &JobSpec, key: &PrivateKeySigner, domain: &Domain)
//!     -> RunResult {
//!     let commitment = ResultCommitment {
//!         job_id, spec_hash: spec.hash(), channel_id, output_hash: B256::repeat_byte(0x42),
//!         fuel_used: 1_000, gpu_millis: 0, amount: U256::from(1),
//!     };
//!     let signature = commitment.sign(domain, key).expect("a local key signs");
//!     RunResult { commitment, signature, outputs: None }
//! }
//!
//! #[async_trait]
//! impl Executor for Honest {
//!     async fn rerun(&self, r: RerunRequest<'_>) -> Result<RunResult, RerunError> {
//!         let key = self.keys.iter().find(|k| k.address() == r.provider.evm_address)
//!             .ok_or(RerunError::Unreachable("unknown provider".into()))?;
//!         Ok(answer(r.job_id, B256::repeat_byte(0xc1), r.spec, key, &self.domain))
//!     }
//! }
//!
//! let domain = Domain::new(31337, Address::repeat_byte(0xe5));
//! let keys: Vec<PrivateKeySigner> = (1..=3u8)
//!     .map(|i| PrivateKeySigner::from_bytes(&B256::repeat_byte(i)).expect("a valid key"))
//!     .collect();
//! let offers: Vec<Offer> = keys.iter().enumerate().map(|(i, k)| Offer {
//!     provider: PublicKey([i as u8; 32]),
//!     evm_address: k.address(),
//!     hardware: Hardware::default(), features: vec![], prices: Prices::default(),
//!     stake: 1_000_000,
//!     addresses: vec![format!("/ip4/198.51.{i}.1/tcp/4001")],
//!     sequence: 1, expires_at: 2_000_000_000,
//!     max_input_bytes: 0, cached_blobs: vec![],
//! }).collect();
//! let mut spec = JobSpec {
//!     module: B256::repeat_byte(0xab), args: vec![], env: vec![], stdin: None, inputs: vec![],
//!     limits: Limits {
//!         fuel: 1 << 30, memory_bytes: 1 << 24, wall_time_ms: 1_000, output_bytes: 1 << 20,
//!     },
//!     requirements: Requirements::default(),
//!     verification: VerificationPolicy::default(),
//!     price_cap: 100, deadline: 2_000_000_000,
//! };
//! spec.verification.sampling_ppm = 1_000_000; // check every job, for the example
//!
//! // The buyer commits to a secret in the ticket...
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
//! let (secret, commit) = new_secret(&mut rng);
//! let job_id = job_id(Address::repeat_byte(0xb0), 0, spec.hash());
//! let ticket = Ticket {
//!     job_id, spec_hash: spec.hash(), channel_id: B256::repeat_byte(0xc0),
//!     cumulative_before: U256::ZERO, max_amount: U256::from(100), deadline: 2_000_000_000,
//!     check_commit: commit, per_gfuel: offers[0].prices.per_gfuel, per_gpu_second: 0,
//! };
//! // ...the provider (offer 0) answers; the buyer reveals and checks on the others.
//! assert!(check_value_cap(&spec, &offers[0]).is_ok());
//! let result = answer(job_id, ticket.channel_id, &spec, &keys[0], &domain);
//! let verifier = Verifier::new(Honest { keys, domain }, domain, VerifierConfig::default());
//! let job = Job { spec: &spec, ticket: &ticket, ticket_signature: None, secret,
//!                 provider: &offers[0], result: &result };
//! let candidates: Vec<&Offer> = offers.iter().collect();
//! let now = 1_700_000_000;
//! let check = futures::executor::block_on(verifier.check(&job, &candidates, now, &mut rng))?;
//! assert_eq!(check.decision, Decision::Passed);
//! assert!(check.pays());
//!
//! // What it observed feeds the order book's ranking.
//! let mut table = ReputationTable::default();
//! table.record_check(&check);
//! assert!(table.stats(&offers[0].provider).expect("observed").reputation > 0.5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod check;
pub mod compare;
pub mod error;
pub mod evidence;
pub mod exec;
pub mod reputation;
pub mod rescore;
pub mod sampling;
pub mod select;

pub use check::{
    Check, Decision, ESCALATION_RERUNS, Job, Phase, RunRecord, Verifier, VerifierConfig,
};
pub use compare::{Agreement, Difference, compare, verdict_commitment, with_outputs};
pub use error::{
    CheckError, EvidenceError, Fault, FaultKind, RerunError, ResultError, RevealError,
    ValueCapError,
};
pub use evidence::{
    ClaimTicket, Evidence, SignedCommitment, Vote, escrow_result, escrow_ticket, escrow_voucher,
};
pub use exec::{Executor, RerunRequest, RunResult};
pub use reputation::{ChainEvent, Event, Reputation, ReputationTable};
pub use rescore::{RerunPlan, rerun_plan, rescore_spec, verdict_agreement};
pub use sampling::{new_secret, reveal};
pub use select::{
    Exclusions, NetBlock, SelectConfig, blocks, candidates, check_value_cap, select, value_cap,
};
/// A job's outputs and how it ended: the market's one form of a result, which tolerance mode
/// compares.
pub use sietch_market::{Outcome, Outputs, ticket_id};
