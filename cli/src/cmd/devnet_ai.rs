//! The devnet's generation jobs: now and then, among the other jobs, the buyer asks
//! SmolLM2-135M a question through the market (the inference guest, the model as an input
//! blob: docs/ai.md), and the devnet prints the answer, tokens/s and cost per 1,000 tokens.
//! Only with the model cached (`bash scripts/model.sh`): the devnet never downloads it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sietch_market::{BlobRef, Input, JobSpec, Limits, Requirements, VerificationPolicy};
use sietch_node::buyer::Buyer;
use sietch_node::store::Store;
use sietch_testkit::devnet::E18;

/// The questions asked, in turn.
const QUESTIONS: &[&str] = &[
    "What is the capital of France?",
    "Name three colours of the rainbow.",
    "What is 12 times 12?",
    "Write one sentence about the sea.",
];

/// The model's file name in its cache (`scripts/model.sh`).
const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The cached model, if there is one: `$SIETCH_MODEL_DIR` or `~/.cache/sietch/models`.
pub(super) fn cached_model() -> Option<PathBuf> {
    let dir = std::env::var_os("SIETCH_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sietch/models"))
        })?;
    let path = dir.join(MODEL_FILE);
    path.is_file().then_some(path)
}

/// What the generation jobs need, in the buyer's blob store.
pub(super) struct Generation {
    module: BlobRef,
    model: BlobRef,
}

/// Puts the guest and the model into the buyer's blob store.
pub(super) fn prepare(store: &Store, model: &std::path::Path) -> anyhow::Result<Generation> {
    let bytes = std::fs::read(model)?;
    anyhow::ensure!(
        bytes.get(..4) == Some(b"GGUF"),
        "{} is not a GGUF file",
        model.display()
    );
    store.blobs().put(sietch_guests::LLM)?;
    store.blobs().put(&bytes)?;
    Ok(Generation {
        module: BlobRef::of(sietch_guests::LLM),
        model: BlobRef::of(&bytes),
    })
}

/// Generation jobs done and tokens generated, for the settlement.
#[derive(Default)]
pub(super) struct GenerationTally {
    pub(super) done: AtomicU64,
    pub(super) tokens: AtomicU64,
}

fn spec(g: &Generation, prompts: &[u8], sampling_ppm: u32) -> JobSpec {
    JobSpec {
        module: g.module.hash,
        args: Vec::new(),
        env: Vec::new(),
        stdin: None,
        inputs: vec![
            Input {
                name: sietch_guests::MODEL_INPUT.into(),
                blob: g.model,
            },
            Input {
                name: sietch_guests::PROMPTS_INPUT.into(),
                blob: BlobRef::of(prompts),
            },
        ],
        limits: Limits {
            fuel: 5_000_000_000,
            memory_bytes: 256 << 20,
            wall_time_ms: 120_000,
            output_bytes: 1 << 20,
        },
        requirements: Requirements {
            min_cpu_cores: 1,
            ..Requirements::default()
        },
        verification: VerificationPolicy {
            sampling_ppm,
            ..VerificationPolicy::default()
        },
        // The devnet's prices are high (0.4 to 0.9 token per 10^9 fuel): a few tokens.
        price_cap: super::devnet::units(5 * E18),
        deadline: super::devnet::now() + 600,
    }
}

/// Asks a question every `every` until `stop`, one at a time.
pub(super) async fn worker(
    buyer: Arc<Buyer>,
    store: Arc<Store>,
    g: Generation,
    every: Duration,
    sampling_ppm: u32,
    stop: Arc<AtomicBool>,
    tally: Arc<GenerationTally>,
) {
    let mut k = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let question = QUESTIONS
            .get(k % QUESTIONS.len())
            .copied()
            .unwrap_or("Hello!");
        k += 1;
        let prompts = format!(
            "{}\n",
            serde_json::json!({"prompt": question, "max_tokens": 24})
        );
        if let Err(e) = store.blobs().put(prompts.as_bytes()) {
            println!("generation: cannot store the prompt: {e}");
        } else {
            match buyer
                .submit(spec(&g, prompts.as_bytes(), sampling_ppm))
                .await
            {
                Ok(done) => {
                    let lines = done
                        .result
                        .files
                        .get(sietch_guests::COMPLETIONS_OUTPUT)
                        .map(|b| sietch_sdk::parse_completions(b).unwrap_or_default())
                        .unwrap_or_default();
                    let tokens: u64 = lines
                        .iter()
                        .map(|c| c.prompt_tokens + c.completion_tokens)
                        .sum();
                    let generated: u64 = lines.iter().map(|c| c.completion_tokens).sum();
                    let secs = done.elapsed.as_secs_f64().max(0.001);
                    let per_1k = done.paid.saturating_mul(sietch_market::U256::from(1000u32))
                        / sietch_market::U256::from(tokens.max(1));
                    let answer = lines.first().map(|c| c.text.as_str()).unwrap_or("");
                    println!(
                        "generation: {question:?} → {:?} ({generated} tokens, {:.1} tokens/s, \
                         costing {} per 1,000 tokens of text{})",
                        sietch_market::printable(answer),
                        generated as f64 / secs,
                        super::devnet::tokens(per_1k),
                        if done.check.is_some() {
                            ", checked"
                        } else {
                            ""
                        },
                    );
                    tally.done.fetch_add(1, Ordering::Relaxed);
                    tally.tokens.fetch_add(generated, Ordering::Relaxed);
                }
                Err(e) => println!("generation: {question:?} failed: {e}"),
            }
        }
        // Sleep in short steps, so that Ctrl-C is not held up.
        let mut left = every;
        while !left.is_zero() && !stop.load(Ordering::Relaxed) {
            let step = left.min(Duration::from_millis(250));
            tokio::time::sleep(step).await;
            left = left.saturating_sub(step);
        }
    }
}
