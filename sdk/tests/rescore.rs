//! The rescore comparison through the SDK (docs/ai.md "Re-scoring a generation") against a
//! real local market (anvil, the escrow, two providers and a buyer in one process): a
//! generation asked with `Generation::rescore(0.1)` and sampled at 100% comes back checked
//! (`Passed`: the other provider re-scored the claimed completions) and paid; a job with a
//! margin out of bounds is refused by the node (`bad_job`).
//!
//! Without the model in the cache (scripts/model.sh) the generation prints SKIPPED.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use sietch_sdk::{Client, Error, Generation, Job, Model};
use sietch_testkit::devnet::{Devnet, DevnetConfig};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_generation_checked_by_rescoring_passes_and_a_bad_margin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(DevnetConfig::new(2, dir.path()))
        .await
        .unwrap();
    let token = std::fs::read_to_string(dir.path().join("buyer/api-token")).unwrap();
    let c = Client::new(&format!("http://{}", net.buyer.api))
        .unwrap()
        .with_token(token.trim());

    // Out of bounds: refused before anything runs.
    let empty = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#)
        .unwrap();
    for margin in [0.0, -1.0, 1001.0] {
        match c.submit(&Job::new(empty.clone()).rescore(margin)).await {
            Err(Error::Api {
                status: 400,
                code,
                message,
            }) => {
                assert_eq!(code, "bad_job", "{message}");
                assert!(message.contains("verification.margin"), "{message}");
            }
            other => panic!("margin {margin}: {other:?}"),
        }
    }

    if let Some(model) = model() {
        let prompts = b"{\"prompt\":\"What is the capital of France?\",\"max_tokens\":12}\n";
        let g = Generation::from_jsonl(Model::Bytes(model), prompts.to_vec())
            .sampling_ppm(1_000_000)
            .rescore(0.1);
        let done = c.generate(&g).await.unwrap();
        assert_eq!(done.completions.len(), 1, "{:?}", done.completions);
        assert!(
            done.completions[0].text.contains("Paris"),
            "{:?}",
            done.completions
        );
        assert_eq!(done.job.check.as_deref(), Some("Passed"), "{:?}", done.job);
        assert_ne!(done.job.paid, "0", "{:?}", done.job);
    }
    net.shutdown().await;
}
