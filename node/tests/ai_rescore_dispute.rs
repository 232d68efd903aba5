//! A disputed generation settled on chain by rescoring (docs/ai.md, "Re-scoring a generation"):
//! on a real devnet (anvil, the escrow, four providers and a buyer in one process, real
//! sandboxes, the real SmolLM2 weights) a generation job checked by `Comparison::Rescore` is
//! withheld by the buyer (`test_withhold_ppm`) and disputed when its provider claims the
//! ticket. The three drawn verifiers wait for the provider's delivery and each runs the
//! rescoring job on the delivered completions (put in its own blob store as
//! `claimed.jsonl`), then votes:
//! - an honest provider's claim passes: the verifiers repeat its output hash, it wins the
//!   dispute and is paid the ticket, its stake untouched;
//! - a provider that replaced a word of its completions (`test_cheat_outputs =
//!   "completions"`) fails every verdict: it loses the dispute and is slashed, the buyer
//!   compensated.
//!
//! Without the model in the cache (scripts/model.sh) the tests print SKIPPED and pass.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::time::Duration;

use sietch_contracts::SietchEscrow::{SietchEscrowEvents, TicketSettled};
use sietch_market::*;
use sietch_node::config::NodeConfig;
use sietch_node::events::NodeEvent;
use sietch_testkit::devnet::{Devnet, DevnetConfig, E18, escrow_config_for_ai};

const MODEL_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// One short greedy prompt: each verifier's rescoring run is a single prefill.
const PROMPTS: &[u8] = b"{\"prompt\":\"What is the capital of France?\",\"max_tokens\":6}\n";

/// The model's bytes, or None (and SKIPPED printed) when it is not cached.
fn model() -> Option<Vec<u8>> {
    let dir = std::env::var_os("SIETCH_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/sietch/models")
        });
    let path = dir.join(MODEL_NAME);
    if path.is_file() {
        Some(std::fs::read(path).unwrap())
    } else {
        println!(
            "SKIPPED: the model {} is not cached (scripts/model.sh)",
            path.display()
        );
        None
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A generation job checked by re-scoring. Sampled at 10 in a million (covered by the
/// providers' stake at this price cap): the buyer's own check almost never runs, so the
/// dispute's verifiers are the only ones to re-score.
fn generation(model: &[u8]) -> JobSpec {
    JobSpec {
        module: BlobRef::of(sietch_guests::LLM).hash,
        args: Vec::new(),
        env: Vec::new(),
        stdin: None,
        inputs: vec![
            Input {
                name: sietch_guests::MODEL_INPUT.into(),
                blob: BlobRef::of(model),
            },
            Input {
                name: sietch_guests::PROMPTS_INPUT.into(),
                blob: BlobRef::of(PROMPTS),
            },
        ],
        limits: Limits {
            fuel: 20_000_000_000,
            memory_bytes: 256 << 20,
            wall_time_ms: 300_000,
            output_bytes: 1 << 20,
        },
        requirements: Requirements {
            min_cpu_cores: 1,
            ..Requirements::default()
        },
        verification: VerificationPolicy {
            sampling_ppm: 10,
            reruns: 1,
            comparison: Comparison::Rescore { margin: 0.1 },
        },
        price_cap: E18 / 10_000,
        deadline: now() + 900,
    }
}

/// Every node: provider-0 is the cheapest (it gets the job) and claims soon after the buyer
/// withholds; the buyer withholds every voucher and disputes the claimed ticket.
fn honest(name: &str, c: &mut NodeConfig) {
    if name == "provider-0" {
        c.price_per_gfuel /= 2;
        c.voucher_timeout_secs = 3;
    }
    if name == "buyer" {
        c.test_withhold_ppm = 1_000_000;
    }
}

/// As [`honest`], and provider-0 replaces a word of every generation's completions.
fn cheating(name: &str, c: &mut NodeConfig) {
    honest(name, c);
    if name == "provider-0" {
        c.test_cheat_ppm = 1_000_000;
        c.test_cheat_outputs = "completions".into();
    }
}

/// What a disputed generation came to.
struct Disputed {
    net: Devnet,
    _dir: tempfile::TempDir,
    /// The completions provider-0 claimed.
    claimed: Vec<u8>,
    settled: TicketSettled,
    /// The verdicts on the ticket: (verifier, agrees).
    verdicts: Vec<(Address, bool)>,
    /// The escrow's events up to the settlement.
    events: Vec<SietchEscrowEvents>,
    /// Tokens of the buyer, the providers and the escrow, before the job.
    total_before: U256,
    buyer_before: U256,
    stake_before: u128,
}

/// The token balances of every node and of the escrow, summed: what moves between them
/// stays among them.
async fn total(net: &Devnet) -> U256 {
    let mut sum =
        net.balance(net.escrow).await.unwrap() + net.balance(net.buyer.evm_address).await.unwrap();
    for p in &net.providers {
        sum += net.balance(p.evm_address).await.unwrap();
    }
    sum
}

/// Starts a devnet of four providers (`tweak` for each node), runs one generation on
/// provider-0, and waits for its withheld ticket's dispute to settle.
async fn dispute_a_generation(model: &[u8], tweak: fn(&str, &mut NodeConfig)) -> Disputed {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevnetConfig::new(4, dir.path());
    cfg.tweak = tweak;
    // Windows for language-model re-runs on two cores.
    cfg.escrow = escrow_config_for_ai();
    let mut net = Devnet::start(cfg).await.unwrap();
    // Every node holds the module, the model and the prompts already, as after earlier
    // jobs: the verifiers' time goes to re-scoring, not to fetching the model.
    for store in std::iter::once(&net.buyer.store).chain(net.providers.iter().map(|p| &p.store)) {
        for b in [sietch_guests::LLM, model, PROMPTS] {
            store.blobs().put(b).unwrap();
        }
    }
    let provider = net.providers[0].evm_address;
    let chain = net.buyer.chain.clone().unwrap();
    let total_before = total(&net).await;
    let buyer_before = net.balance(net.buyer.evm_address).await.unwrap();
    let stake_before = chain.account(provider).await.unwrap().stake;
    assert!(stake_before > 0);

    let done = net
        .buyer
        .buyer
        .submit(generation(model))
        .await
        .unwrap_or_else(|e| panic!("the generation job: {e}"));
    assert_eq!(done.provider, provider, "{done:?}");
    assert_eq!(done.paid, U256::ZERO, "the buyer withholds");
    let claimed = done
        .result
        .files
        .get(sietch_guests::COMPLETIONS_OUTPUT)
        .expect("no completions")
        .clone();

    // provider-0 claims the ticket, the buyer disputes it, the verifiers re-score and vote.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(400);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, net.events.recv()).await {
            Ok(Some((_, NodeEvent::TicketSettled { .. }))) => break,
            Ok(Some((who, e))) => {
                let line = format!("{who}: {e}");
                if ["ticket", "verdict", "withheld", "dispute"]
                    .iter()
                    .any(|w| line.contains(w))
                {
                    seen.push(line);
                }
            }
            _ => panic!("no settlement within 400 s; seen: {seen:#?}"),
        }
    }
    let head = chain.block_number().await.unwrap();
    let events: Vec<SietchEscrowEvents> = chain
        .events(0, head)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    let ticket = events
        .iter()
        .find_map(|e| match e {
            SietchEscrowEvents::TicketClaimed(c) if c.jobId == done.job_id => Some(c.ticketId),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the ticket was not claimed: {seen:#?}"));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SietchEscrowEvents::TicketDisputed(d) if d.ticketId == ticket && !d.undelivered)),
        "the buyer did not dispute the ticket: {seen:#?}"
    );
    let settled = events
        .iter()
        .find_map(|e| match e {
            SietchEscrowEvents::TicketSettled(s) if s.ticketId == ticket => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("another ticket settled: {seen:#?}"));
    let verdicts = events
        .iter()
        .filter_map(|e| match e {
            SietchEscrowEvents::VerdictSubmitted(v) if v.ticketId == ticket => {
                Some((v.verifier, v.agrees))
            }
            _ => None,
        })
        .collect();
    Disputed {
        net,
        _dir: dir,
        claimed,
        settled,
        verdicts,
        events,
        total_before,
        buyer_before,
        stake_before,
    }
}

impl Disputed {
    /// Each verifier that voted ran the rescoring job: it stored the claimed completions
    /// (an input only the delivery holds) to run it.
    fn assert_voters_rescored(&self) {
        let claimed = BlobRef::of(&self.claimed).hash;
        for (verifier, _) in &self.verdicts {
            let node = self
                .net
                .providers
                .iter()
                .find(|p| p.evm_address == *verifier)
                .expect("a verifier is one of the devnet's providers");
            assert!(
                node.store.blobs().has(&claimed),
                "verifier {verifier} did not re-score the claimed completions"
            );
        }
    }

    /// Waits until `who` holds no credit in the escrow (its node withdrew it).
    async fn withdrawn(&self, who: Address) {
        let chain = self.net.buyer.chain.clone().unwrap();
        let by = tokio::time::Instant::now() + Duration::from_secs(60);
        while chain.credited(who).await.unwrap() > 0 {
            assert!(
                tokio::time::Instant::now() < by,
                "{who}'s node never withdrew its credit"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_an_honest_generation_disputed_is_rescored_right_and_paid() {
    let Some(model) = model() else { return };
    let d = dispute_a_generation(&model, honest).await;
    let s = &d.settled;
    assert_eq!(
        s.outcome, 1,
        "not provider-right; verdicts {:?}",
        d.verdicts
    );
    let agreeing = d.verdicts.iter().filter(|(_, a)| *a).count();
    assert!(agreeing >= 2, "verdicts {:?}", d.verdicts);
    d.assert_voters_rescored();
    let provider = d.net.providers[0].evm_address;
    let chain = d.net.buyer.chain.clone().unwrap();
    assert_eq!(
        chain.account(provider).await.unwrap().stake,
        d.stake_before,
        "an honest provider was slashed"
    );
    // Paid the ticket's amount, and the bond less the verifiers' fees.
    let amount = d
        .events
        .iter()
        .find_map(|e| match e {
            SietchEscrowEvents::TicketClaimed(c) if c.ticketId == s.ticketId => Some(c.amount),
            _ => None,
        })
        .unwrap();
    assert!(amount > U256::ZERO);
    assert_eq!(s.toProvider, amount, "the ticket paid the job");
    let fees: U256 = d
        .events
        .iter()
        .filter_map(|e| match e {
            SietchEscrowEvents::VerifierPaid(v) if v.ticketId == s.ticketId => Some(v.amount),
            _ => None,
        })
        .sum();
    assert!(fees > U256::ZERO, "the agreeing verifiers were not paid");
    assert_eq!(s.bondToProvider + fees, U256::from(30 * E18), "the bond");
    d.withdrawn(provider).await;
    assert_eq!(total(&d.net).await, d.total_before, "tokens conserved");
    d.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_generation_with_a_replaced_word_fails_the_rescoring_and_is_slashed() {
    let Some(model) = model() else { return };
    let d = dispute_a_generation(&model, cheating).await;
    let text = String::from_utf8_lossy(&d.claimed).into_owned();
    assert!(text.contains("Berlin"), "the cheat's claim: {text}");
    let s = &d.settled;
    assert_eq!(
        s.outcome, 2,
        "not provider-wrong; verdicts {:?}",
        d.verdicts
    );
    let against = d.verdicts.iter().filter(|(_, a)| !*a).count();
    assert!(against >= 2, "verdicts {:?}", d.verdicts);
    d.assert_voters_rescored();
    assert_eq!(s.toProvider, U256::ZERO);
    let provider = d.net.providers[0].evm_address;
    let chain = d.net.buyer.chain.clone().unwrap();
    assert_eq!(
        chain.account(provider).await.unwrap().stake,
        0,
        "the cheat was not slashed"
    );
    let compensation: U256 = d
        .events
        .iter()
        .filter_map(|e| match e {
            SietchEscrowEvents::Slashed(x) if x.provider == provider => Some(x.compensation),
            _ => None,
        })
        .sum();
    assert!(compensation > U256::ZERO, "no compensation for the buyer");
    // The buyer's wallet and what its channels hold: what it had, plus the compensation
    // (the ticket's reservation and the bond came back).
    let buyer = d.net.buyer.evm_address;
    d.withdrawn(buyer).await;
    let mut deposits = U256::ZERO;
    for (id, ..) in d.net.buyer.buyer.channels() {
        deposits += U256::from(chain.channel(id).await.unwrap().deposit);
    }
    assert_eq!(
        d.net.balance(buyer).await.unwrap() + deposits,
        d.buyer_before + compensation,
        "the buyer's tokens"
    );
    assert_eq!(total(&d.net).await, d.total_before, "tokens conserved");
    d.net.shutdown().await;
}
