//! The GPU build of the inference guest (`guests/llm/gpu.c`, `-DSK_GPU`, docs/ai.md "The GPU
//! path"): its matrix products run on a CUDA device through `sietch_gpu` with exactly the
//! arithmetic of `kernels_ref.c`, so its completions must equal the CPU builds' byte for byte.
//!
//! - Here and in CI (no GPU): the GPU build, told "no device", falls back to the host kernels
//!   and gives the host-kernel build's bytes, on the real model and on synthetic ones.
//! - On a GPU (`#[ignore]`d elsewhere; `scripts/gpu-check.sh` runs them with
//!   `SIETCH_REQUIRE_GPU=1`): the same bytes with the products on the device, twice, and the
//!   tokens/s of both.
//!
//! The real model (98 MB) cannot be carried to a lent GPU machine (the device tool carries 64
//! MiB in all), so the GPU tests use models this file writes: GGUF v3 files with the real
//! tensor types (Q8_0 embeddings tied with the output, Q4_1 matrices, F32 norms) and seeded
//! random weights, one small and one of SmolLM2-135M's shapes (for tokens/s), and the real
//! model as well where it is present. `SIETCH_LLM_BUILDS=DIR` takes the guest's builds from DIR
//! (a GPU machine has no clang to build them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

#[path = "common/llm.rs"]
mod llm_support;

mod common;

use std::path::{Path, PathBuf};

use llm_support::{Builds, MODEL_NAME, completions, sandbox, spec};
use sietch_sandbox::{JobReport, Outcome, Sandbox};

const FUEL: u64 = 2_000_000_000_000;

/// What the GPU build says on stderr when it uses the device, and when it does not.
const GPU_ON: &str = "llm: GPU path on:";
const NO_DEVICE: &str =
    "llm: GPU path off (sietch_gpu.device_count: no device): matrix products by the host kernels";

fn builds() -> Builds {
    match std::env::var_os("SIETCH_LLM_BUILDS") {
        Some(dir) => Builds {
            dir: PathBuf::from(dir),
        },
        None => llm_support::builds(),
    }
}

fn gpu_wasm(b: &Builds) -> Vec<u8> {
    std::fs::read(b.dir.join("llm-gpu.wasm")).unwrap()
}

/// The real model where it is (`$SIETCH_MODEL_DIR` or `~/.cache/sietch/models`), or `None`.
fn real_model() -> Option<Vec<u8>> {
    let dir = std::env::var_os("SIETCH_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/sietch/models")))?;
    std::fs::read(dir.join(MODEL_NAME)).ok()
}

/// A batch with greedy and seeded sampling, a chat prompt and a prompt longer than one chunk
/// of 32 positions (so that products with n = 32 vectors run as well as n = 1).
const PROMPTS: &str = concat!(
    "{\"prompt\":\"What is the capital of France?\",\"max_tokens\":10}\n",
    "{\"prompt\":\"The quick brown fox\",\"raw\":true,\"max_tokens\":6,\"temperature\":0.8,\"top_p\":0.9,\"seed\":42}\n",
    "{\"prompt\":\"Once upon a time, in a land far away, there lived a king who had three daughters and a very old dog.\",\"raw\":true,\"max_tokens\":6,\"temperature\":1.5,\"seed\":7}\n",
    "{\"prompt\":\"1, 2, 3, 4,\",\"raw\":true,\"max_tokens\":8}\n",
);

fn run(sb: &Sandbox, wasm: &[u8], model: &[u8], prompts: &str, gpu: bool) -> JobReport {
    let m = sb.load(wasm).unwrap();
    let mut s = spec(model, prompts, FUEL);
    s.limits.gpu = gpu;
    let r = sb.run(&m, &s).unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Exited { code: 0 },
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    r
}

fn stderr(r: &JobReport) -> String {
    String::from_utf8_lossy(&r.stderr).into_owned()
}

// ---------------------------------------------------------------------------------------
// Synthetic models: GGUF v3 as the guest reads it (gguf.c), with seeded random weights.
// ---------------------------------------------------------------------------------------

struct Shape {
    dim: u32,
    layers: u32,
    heads: u32,
    kv_heads: u32,
    ffn: u32,
    vocab: u32,
}

/// Small: 2 layers of 64, a vocabulary of 512 (the 256 byte symbols, ChatML's tokens, fillers).
const SMALL: Shape = Shape {
    dim: 64,
    layers: 2,
    heads: 4,
    kv_heads: 2,
    ffn: 128,
    vocab: 512,
};

/// SmolLM2-135M's shapes and tensor types (30 layers of 576, FFN 1536, 9 query and 3 key-value
/// heads, a vocabulary of 49,152): the same work per token as the real model.
const SMOLLM2: Shape = Shape {
    dim: 576,
    layers: 30,
    heads: 9,
    kv_heads: 3,
    ffn: 1536,
    vocab: 49_152,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// An IEEE half scale of about 2^(exp - 15), now and then a subnormal one.
    fn half(&mut self, exp: u16, negative: bool) -> u16 {
        let v = self.next();
        let man = (v & 0x3ff) as u16;
        let sign = if negative { 0x8000 } else { 0 };
        if (v >> 10).is_multiple_of(64) {
            sign | man.max(1) // subnormal: exercises the exact half conversion
        } else {
            sign | (exp << 10) | man
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn kv_u32(out: &mut Vec<u8>, key: &str, v: u32) {
    put_str(out, key);
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&v.to_le_bytes());
}

fn kv_f32(out: &mut Vec<u8>, key: &str, v: f32) {
    put_str(out, key);
    out.extend_from_slice(&6u32.to_le_bytes());
    out.extend_from_slice(&v.to_le_bytes());
}

fn kv_string(out: &mut Vec<u8>, key: &str, v: &str) {
    put_str(out, key);
    out.extend_from_slice(&8u32.to_le_bytes());
    put_str(out, v);
}

fn kv_strings(out: &mut Vec<u8>, key: &str, v: &[String]) {
    put_str(out, key);
    out.extend_from_slice(&9u32.to_le_bytes());
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
    for s in v {
        put_str(out, s);
    }
}

/// GPT-2's byte-to-symbol map: printable bytes stand for themselves, the rest for U+0100 on.
fn byte_symbols() -> Vec<String> {
    let mut next = 256u32;
    (0u32..256)
        .map(|b| {
            let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
            let cp = if printable {
                b
            } else {
                next += 1;
                next - 1
            };
            char::from_u32(cp).unwrap().to_string()
        })
        .collect()
}

/// A llama GGUF of `shape` with seeded random weights: Q8_0 token embeddings (tied with the
/// output), Q4_1 attention and FFN matrices, F32 norms of 1. Its vocabulary: `<|endoftext|>`,
/// `<|im_start|>`, `<|im_end|>`, the 256 byte symbols (no merges: a token per byte), fillers.
fn synthetic_gguf(shape: &Shape, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    tokens.extend(byte_symbols());
    while tokens.len() < shape.vocab as usize {
        tokens.push(format!("<f{}>", tokens.len()));
    }
    let kv_dim = shape.dim / shape.heads * shape.kv_heads;
    // (name, cols, rows or 0 for a vector, type)
    let mut tensors: Vec<(String, u32, u32, u32)> = vec![
        ("token_embd.weight".into(), shape.dim, shape.vocab, 8),
        ("output_norm.weight".into(), shape.dim, 0, 0),
    ];
    for l in 0..shape.layers {
        for (name, cols, rows) in [
            ("attn_q", shape.dim, shape.dim),
            ("attn_k", shape.dim, kv_dim),
            ("attn_v", shape.dim, kv_dim),
            ("attn_output", shape.dim, shape.dim),
            ("ffn_gate", shape.dim, shape.ffn),
            ("ffn_up", shape.dim, shape.ffn),
            ("ffn_down", shape.ffn, shape.dim),
        ] {
            tensors.push((format!("blk.{l}.{name}.weight"), cols, rows, 3));
        }
        for name in ["attn_norm", "ffn_norm"] {
            tensors.push((format!("blk.{l}.{name}.weight"), shape.dim, 0, 0));
        }
    }
    let bytes_of = |cols: u32, rows: u32, ty: u32| -> usize {
        let (cols, rows) = (cols as usize, rows.max(1) as usize);
        match ty {
            0 => cols * rows * 4,
            3 => cols / 32 * 20 * rows,
            _ => cols / 32 * 34 * rows,
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&13u64.to_le_bytes());
    kv_string(&mut out, "general.architecture", "llama");
    kv_u32(&mut out, "general.alignment", 32);
    kv_u32(&mut out, "llama.block_count", shape.layers);
    kv_u32(&mut out, "llama.embedding_length", shape.dim);
    kv_u32(&mut out, "llama.feed_forward_length", shape.ffn);
    kv_u32(&mut out, "llama.attention.head_count", shape.heads);
    kv_u32(&mut out, "llama.attention.head_count_kv", shape.kv_heads);
    kv_f32(&mut out, "llama.attention.layer_norm_rms_epsilon", 1e-5);
    kv_f32(&mut out, "llama.rope.freq_base", 100_000.0);
    kv_string(&mut out, "tokenizer.ggml.model", "gpt2");
    kv_strings(&mut out, "tokenizer.ggml.tokens", &tokens);
    kv_strings(&mut out, "tokenizer.ggml.merges", &[]);
    kv_u32(&mut out, "tokenizer.ggml.eos_token_id", 2);
    let mut offset = 0usize;
    for (name, cols, rows, ty) in &tensors {
        put_str(&mut out, name);
        if *rows == 0 {
            out.extend_from_slice(&1u32.to_le_bytes());
            out.extend_from_slice(&u64::from(*cols).to_le_bytes());
        } else {
            out.extend_from_slice(&2u32.to_le_bytes());
            out.extend_from_slice(&u64::from(*cols).to_le_bytes());
            out.extend_from_slice(&u64::from(*rows).to_le_bytes());
        }
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        offset += bytes_of(*cols, *rows, *ty).div_ceil(32) * 32;
    }
    out.resize(out.len().div_ceil(32) * 32, 0);
    for (_, cols, rows, ty) in &tensors {
        let start = out.len();
        match ty {
            0 => {
                for _ in 0..*cols {
                    out.extend_from_slice(&1.0f32.to_le_bytes());
                }
            }
            3 => {
                for _ in 0..(cols / 32 * rows) {
                    // d about 2^-7, m about -2^-4 (so that d * q + m is centred), 16 bytes of
                    // nibbles.
                    let d = rng.half(8, false);
                    let m = rng.half(11, true);
                    out.extend_from_slice(&d.to_le_bytes());
                    out.extend_from_slice(&m.to_le_bytes());
                    for _ in 0..2 {
                        out.extend_from_slice(&rng.next().to_le_bytes());
                    }
                }
            }
            _ => {
                for _ in 0..(cols / 32 * rows) {
                    // d about 2^-10: logits spread enough for sampling to vary.
                    out.extend_from_slice(&rng.half(5, false).to_le_bytes());
                    for _ in 0..4 {
                        out.extend_from_slice(&rng.next().to_le_bytes());
                    }
                }
            }
        }
        let len = bytes_of(*cols, *rows, *ty);
        assert_eq!(out.len() - start, len);
        out.resize(start + len.div_ceil(32) * 32, 0);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Without a device (here, in CI, on every provider without a GPU)
// ---------------------------------------------------------------------------------------

/// The GPU build told "no device" (a job not given the GPU) uses the host kernels, says so,
/// and gives the host-kernel build's bytes: on a small synthetic model and on the real one.
/// It imports `sietch_gpu` and `sietch_kernels.matmul` (its fallback).
#[test]
fn gpu_build_falls_back_to_the_host_kernels_without_a_device() {
    use wasmtime::{Engine, Module};
    let b = builds();
    let gpu = gpu_wasm(&b);
    let module = Module::new(&Engine::default(), &gpu).unwrap();
    let imports: Vec<String> = module
        .imports()
        .map(|i| format!("{}.{}", i.module(), i.name()))
        .collect();
    for f in [
        "sietch_gpu.device_count",
        "sietch_gpu.alloc",
        "sietch_gpu.upload",
        "sietch_gpu.load_kernel",
        "sietch_gpu.launch",
        "sietch_gpu.download",
        "sietch_kernels.matmul",
    ] {
        assert!(imports.iter().any(|i| i == f), "no import {f}: {imports:?}");
    }

    let sb = sandbox();
    let cpu = b.host_kernels_wasm();
    let small = synthetic_gguf(&SMALL, 1);
    let mut models = vec![("synthetic (small)", small)];
    models.push((
        "SmolLM2-135M",
        real_model().expect("the model is missing: run scripts/setup.sh (or scripts/model.sh)"),
    ));
    for (what, model) in &models {
        let want = run(&sb, &cpu, model, PROMPTS, false);
        let got = run(&sb, &gpu, model, PROMPTS, false);
        let text = completions(&want);
        assert_eq!(text.lines().count(), 4, "{what}: {text}");
        assert!(stderr(&got).contains(NO_DEVICE), "{what}: {}", stderr(&got));
        assert_eq!(
            completions(&got),
            text,
            "{what}: the fallback changed the completions"
        );
        assert_eq!(got.gpu_time_ns, 0);
        println!("{what}: {text}");
    }
    assert!(
        completions(&run(&sb, &cpu, &models[1].1, PROMPTS, false))
            .lines()
            .next()
            .unwrap()
            .contains("Paris")
    );
}

/// A job given the GPU sees the device the host has. Without one (here): the fallback, the
/// same bytes, no GPU time, and a SKIPPED note for the GPU comparison (a failure where
/// `SIETCH_REQUIRE_GPU=1` says a GPU is expected). With one: the products on the device and
/// the same bytes (the full check is `gpu_build_matches_the_cpu_builds_on_the_gpu`).
#[test]
fn gpu_build_sees_the_device_the_host_has() {
    let b = builds();
    let sb = sandbox();
    let model = synthetic_gguf(&SMALL, 2);
    let want = completions(&run(&sb, &b.host_kernels_wasm(), &model, PROMPTS, false));
    let got = run(&sb, &gpu_wasm(&b), &model, PROMPTS, true);
    assert_eq!(completions(&got), want);
    match sietch_sandbox::gpu::unavailable_reason() {
        Some(why) => {
            common::no_gpu_is_fine(&why);
            assert!(stderr(&got).contains(NO_DEVICE), "{}", stderr(&got));
            assert_eq!(got.gpu_time_ns, 0);
            println!(
                "SKIPPED: the LLM's GPU path on a device (no CUDA device here: {why}); checked \
                 the fallback instead. The GPU tests: scripts/gpu-check.sh"
            );
        }
        None => {
            assert!(stderr(&got).contains(GPU_ON), "{}", stderr(&got));
            assert!(got.gpu_time_ns > 0, "no GPU time billed");
        }
    }
}

// ---------------------------------------------------------------------------------------
// On a GPU (ignored elsewhere: nextest lists them as skipped)
// ---------------------------------------------------------------------------------------

fn assert_on_gpu(what: &str, r: &JobReport) {
    let e = stderr(r);
    assert!(
        e.contains(GPU_ON),
        "{what}: the GPU path was not taken: {e}"
    );
    assert!(!e.contains("failed"), "{what}: {e}");
    assert!(r.gpu_time_ns > 0, "{what}: no GPU time billed");
}

/// On a GPU: the GPU build gives the host-kernel build's bytes (greedy and seeded, prefill
/// chunks of 32 and single tokens), on synthetic models and on the real one where it is
/// present, and a second GPU run gives the same bytes and fuel again.
#[test]
#[ignore = "needs a CUDA GPU: SIETCH_REQUIRE_GPU=1 cargo nextest run --run-ignored only (scripts/gpu-check.sh)"]
fn gpu_build_matches_the_cpu_builds_on_the_gpu() {
    common::require_gpu();
    let b = builds();
    let (cpu, gpu) = (b.host_kernels_wasm(), gpu_wasm(&b));
    let sb = sandbox();
    let mut models = vec![
        ("synthetic (small)", synthetic_gguf(&SMALL, 3)),
        ("synthetic (SmolLM2 shapes)", synthetic_gguf(&SMOLLM2, 4)),
    ];
    match real_model() {
        Some(m) => models.push(("SmolLM2-135M", m)),
        None => println!(
            "LLM-GPU SmolLM2-135M: SKIPPED (the 98 MB model is not on this machine: the device \
             tool carries 64 MiB)"
        ),
    }
    for (what, model) in &models {
        let want = run(&sb, &cpu, model, PROMPTS, false);
        let got = run(&sb, &gpu, model, PROMPTS, true);
        assert_on_gpu(what, &got);
        assert_eq!(
            completions(&got),
            completions(&want),
            "{what}: the GPU build's completions differ from the CPU build's"
        );
        let again = run(&sb, &gpu, model, PROMPTS, true);
        assert_eq!(
            (completions(&again), again.fuel_used),
            (completions(&got), got.fuel_used),
            "{what}: two GPU runs differ"
        );
        println!(
            "LLM-GPU {what}: byte-identical to the CPU build (and on a re-run); {} bytes",
            completions(&got).len()
        );
    }
}

/// Tokens/s of the GPU build against the host-kernel build in the same sandbox, prefill and
/// generation apart (the model's load, weights uploaded once, taken out by a run that only
/// loads it), on the synthetic model of SmolLM2's shapes (and the real one where present).
#[test]
#[ignore = "needs a CUDA GPU: a measurement, run by scripts/gpu-check.sh"]
fn speed_of_the_gpu_build() {
    common::require_gpu();
    let b = builds();
    let (cpu, gpu) = (b.host_kernels_wasm(), gpu_wasm(&b));
    let sb = sandbox();
    let text = "The history of the city begins in the third century, when a small settlement \
                grew on the banks of the river.";
    let req = |max: u32| format!("{{\"prompt\":\"{text}\",\"raw\":true,\"max_tokens\":{max}}}\n");
    let mut models = vec![("synthetic (SmolLM2 shapes)", synthetic_gguf(&SMOLLM2, 5))];
    if let Some(m) = real_model() {
        models.push(("SmolLM2-135M", m));
    }
    for (what, model) in &models {
        for (build, wasm, on_gpu) in [("host kernels", &cpu, false), ("GPU", &gpu, true)] {
            let time = |prompts: &str| {
                let r = run(&sb, wasm, model, prompts, on_gpu);
                if on_gpu {
                    assert_on_gpu(what, &r);
                }
                (r.wall_time.as_secs_f64(), completions(&r))
            };
            let (load, _) = time("\n");
            let (prefill, one) = time(&req(1));
            let (both, all) = time(&req(33));
            let n = field(&one, "prompt_tokens");
            let generated = field(&all, "completion_tokens") - 1.0;
            println!(
                "LLM-GPU tokens/s {what}, {build}: load {load:.2} s; prefill {n} tokens {:.1} \
                 tokens/s; generation {generated} tokens {:.1} tokens/s",
                n / (prefill - load),
                generated / (both - prefill)
            );
        }
    }
}

fn field(jsonl: &str, name: &str) -> f64 {
    let key = format!("\"{name}\":");
    let at = jsonl.find(&key).unwrap() + key.len();
    jsonl[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}
