//! AI on the market, whole-system: a real anvil, real `sietch node run` processes, the
//! inference guest and the real SmolLM2-135M weights (docs/ai.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use alloy::primitives::{B256, U256};
use base64::Engine;
use serde_json::{Value, json};
use sietch_testkit::devnet::E18;
use sietch_testkit::system::*;

/// Sets provider-0 cheapest so it gets the first job; provider-1 re-runs the sampled ones.
fn cheapest_first(name: &str, c: &mut sietch_node::config::NodeConfig) {
    c.price_per_gfuel = if name == "provider-0" { 1_000 } else { 2_000 };
}

/// A generation job: the guest, the model and a prompts file, every job sampled.
fn generation(module: B256, model: B256, prompts: B256) -> Value {
    json!({
        "module": module,
        "inputs": [
            {"name": sietch_guests::MODEL_INPUT, "blob": model},
            {"name": sietch_guests::PROMPTS_INPUT, "blob": prompts},
        ],
        "limits": {"fuel": 20_000_000_000u64, "memory_bytes": 256 << 20,
                   "wall_time_ms": 300_000, "output_bytes": 1 << 20},
        "verification": {"sampling_ppm": 1_000_000},
        "price_cap": E18.to_string(),
    })
}

/// The completions of an API answer, one JSON value per line.
fn completions(answer: &Value) -> Vec<Value> {
    let b64 = answer["outputs"]["files"][sietch_guests::COMPLETIONS_OUTPUT]
        .as_str()
        .unwrap_or_else(|| panic!("no completions in {answer}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// How many times `who` fetched blob `hash` from a peer, by its `fetched blob` lines.
fn fetches(m: &Market, who: &Member, hash: B256) -> usize {
    let prefix = format!("fetched blob {hash} ");
    m.nodes.0[who.index]
        .stdout()
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .count()
}

/// A buyer asks "What is the capital of France?" in ChatML through the market: provider-0
/// answers naming Paris, the job is sampled and re-run on provider-1, found equal, and paid.
/// The model crosses the network once per provider: a second job sends only its hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_the_capital_of_france_is_paris_checked_and_paid_the_model_moved_once() {
    let model = std::fs::read(sietch_testkit::model::smollm2()).unwrap();
    let mut cfg = MarketConfig::new(2, 1);
    cfg.tweak = cheapest_first;
    let m = Market::start(cfg).await.unwrap();
    let buyer = m.buyers[0].clone();
    let (p0, p1) = (m.providers[0].clone(), m.providers[1].clone());
    let module = m.upload(&buyer, sietch_guests::LLM).await.unwrap();
    let weights = m.upload(&buyer, &model).await.unwrap();

    let ask = m
        .upload(
            &buyer,
            b"{\"prompt\":\"What is the capital of France?\",\"max_tokens\":16}\n",
        )
        .await
        .unwrap();
    let a = m
        .run_job(&buyer, &generation(module, weights, ask))
        .await
        .unwrap();
    assert_eq!(a["provider"], p0.evm.to_string(), "{a}");
    assert_eq!(
        a["check"], "Passed",
        "the re-run on provider-1 disagreed: {a}"
    );
    assert!(
        a["paid"].as_str().unwrap().parse::<U256>().unwrap() > U256::ZERO,
        "{a}"
    );
    let c = completions(&a);
    assert_eq!(c.len(), 1, "{c:?}");
    let text = c[0]["text"].as_str().unwrap();
    assert!(text.contains("Paris"), "the answer: {text:?}");
    assert_eq!(c[0]["finish"], "stop", "{c:?}");
    assert_eq!(
        (fetches(&m, &p0, weights), fetches(&m, &p1, weights)),
        (1, 1),
        "the model went once to the provider and once to the re-runner"
    );

    // A second question: the providers hold the model, only its hash travels.
    let again = m
        .upload(
            &buyer,
            b"{\"prompt\":\"Name a colour of the French flag.\",\"max_tokens\":8}\n",
        )
        .await
        .unwrap();
    let b = m
        .run_job(&buyer, &generation(module, weights, again))
        .await
        .unwrap();
    assert_eq!(b["check"], "Passed", "{b}");
    assert_eq!(completions(&b).len(), 1);
    assert_eq!(
        (fetches(&m, &p0, weights), fetches(&m, &p1, weights)),
        (1, 1),
        "a provider fetched the model again"
    );

    // The buyer's one command: `sietch generate` through the node (the SDK's generate),
    // naming the model by the hash the node holds.
    let out = std::process::Command::new(sietch_testkit::process::sietch())
        .args([
            "generate",
            "--json",
            "--sampling-ppm",
            "1",
            "--price-cap",
            "0.0001",
            "--max-tokens",
            "12",
        ])
        .args([
            "--api",
            &format!("http://{}", buyer.api),
            "--token",
            &buyer.token,
        ])
        .args([
            "--model",
            &weights.to_string(),
            "What is the capital of France?",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let g: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        g["completions"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Paris"),
        "{g}"
    );
    let s = &g["summary"];
    assert!(s["completion_tokens"].as_u64().unwrap() > 0, "{g}");
    assert!(s["fuel_used"].as_u64().unwrap() > 0, "{g}");
    assert!(s["tokens_per_second"].as_f64().unwrap() > 0.0, "{g}");
    assert!(
        s["paid"].as_str().unwrap().parse::<u128>().unwrap() > 0,
        "{g}"
    );
}
