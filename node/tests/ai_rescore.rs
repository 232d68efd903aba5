//! The rescore comparison through the node (issue 21, item 5; docs/ai.md "Re-scoring a
//! generation"): on a real devnet (anvil, the escrow, two providers and a buyer in one
//! process, real sandboxes) a generation job of the inference guest on the real SmolLM2
//! weights, sampled at 100% with `Comparison::Rescore`, is re-checked by a rescoring job on
//! the other provider: the buyer puts the claimed completions in its blob store, the re-run
//! provider fetches them like any input, its verdict passes, and the job is paid.
//!
//! Without the model in the cache (scripts/model.sh) the test prints SKIPPED and passes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::time::Duration;

use sietch_market::*;
use sietch_node::events::NodeEvent;
use sietch_testkit::devnet::{Devnet, DevnetConfig, E18};

const MODEL_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

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

/// A generation job (one greedy prompt, one sampled), every job checked by re-scoring.
fn generation(model: &[u8], prompts: &[u8]) -> JobSpec {
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
                blob: BlobRef::of(prompts),
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
            sampling_ppm: 1_000_000,
            reruns: 1,
            comparison: Comparison::Rescore { margin: 0.1 },
        },
        price_cap: E18 / 10,
        deadline: now() + 900,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_generation_is_rechecked_by_rescoring_on_another_provider_and_paid() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut net = Devnet::start(DevnetConfig::new(2, dir.path()))
        .await
        .unwrap();
    let prompts = concat!(
        "{\"prompt\":\"What is the capital of France?\",\"max_tokens\":12}\n",
        "{\"prompt\":\"Write a haiku about the sea.\",\"max_tokens\":8,\"temperature\":0.8,\"top_p\":0.9,\"seed\":7}\n",
    )
    .as_bytes();
    let buyer = &net.buyer;
    for b in [sietch_guests::LLM, &model, prompts] {
        buyer.store.blobs().put(b).unwrap();
    }
    let done = buyer
        .buyer
        .submit(generation(&model, prompts))
        .await
        .unwrap_or_else(|e| panic!("the generation job: {e}"));
    let claimed = done
        .result
        .files
        .get(sietch_guests::COMPLETIONS_OUTPUT)
        .expect("no completions")
        .clone();
    let text = String::from_utf8_lossy(&claimed).into_owned();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("Paris"), "the claim: {text}");
    assert_eq!(
        done.check,
        Some(sietch_verifier::Decision::Passed),
        "the rescoring run did not agree: {text}"
    );
    assert!(done.paid > U256::ZERO, "not paid");

    // The re-run was a rescoring job on the other provider: it fetched the claimed
    // completions (a blob only the buyer's check made) from the buyer's store.
    let original = net
        .providers
        .iter()
        .position(|p| p.evm_address == done.provider)
        .expect("the provider is one of the devnet's");
    let other = format!("provider-{}", 1 - original);
    let claimed_hash = BlobRef::of(&claimed).hash;
    assert!(
        buyer.store.blobs().has(&claimed_hash),
        "the buyer did not store the claimed completions"
    );
    let mut fetched_by = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some((who, e))) = tokio::time::timeout_at(deadline, net.events.recv()).await {
        if let NodeEvent::BlobFetched { hash, .. } = e
            && hash == claimed_hash
        {
            fetched_by.push(who);
        }
    }
    assert_eq!(
        fetched_by,
        vec![other],
        "the claimed completions went to the re-run provider only"
    );
    net.shutdown().await;
}
