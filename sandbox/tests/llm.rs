//! The language-model inference guest (guests/llm, docs/ai.md "The inference guest"): its
//! forward pass against an independent numpy reference, its tokenizer against pinned encodings,
//! the pure-wasm build (-DSK_GUEST_KERNELS) in the sandbox against the same C built natively,
//! the I/O contract's error cases, and a batch that runs out of fuel.
//!
//! The host-kernel build (llm.wasm) is only checked to build and to import
//! `sietch_kernels.matmul`: the host side of that import is tested where it is implemented.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

#[path = "common/llm.rs"]
mod llm_support;

use std::process::Command;

use llm_support::{
    builds, completions, model_bytes, model_path, repo_root, run_native, sandbox, spec,
};
use sietch_sandbox::Outcome;

const FUEL: u64 = 2_000_000_000_000;

/// The reference forward pass (tools/reference/llm_reference.py) agrees with the guest: to
/// float precision when the guest's matrix products are in float, and within the stated
/// tolerance of 16-bit activations with the kernels' arithmetic.
#[test]
fn forward_pass_agrees_with_the_numpy_reference() {
    let b = builds();
    let root = repo_root();
    for (binary, mode) in [(b.native_float(), "float"), (b.native(), "quantized")] {
        let out = Command::new(root.join("tools/venv/bin/python"))
            .arg(root.join("tools/reference/llm_reference.py"))
            .arg(model_path())
            .arg(&binary)
            .arg(mode)
            .output()
            .expect("tools/venv/bin/python: run scripts/setup.sh to create the venv");
        let text = String::from_utf8_lossy(&out.stdout);
        println!("{mode}:\n{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{mode} build disagrees:\n{text}");
        assert!(text.contains("the guest agrees with the reference"));
    }
}

/// Encodings checked against the Hugging Face `tokenizers` library (BPE built from the GGUF's
/// vocabulary and merges, pre-tokenizer Digits(individual) + ByteLevel), and decode(encode(s))
/// giving s back.
#[test]
fn tokenizer_gives_the_pinned_encodings_and_decodes_back() {
    let b = builds();
    let pinned: &[(&str, &[u32])] = &[
        ("Hello world", &[19556, 905]),
        (
            "The capital of France is Paris.",
            &[504, 3575, 282, 4649, 314, 7042, 30],
        ),
        (
            "I've got 12345 apples,  and\n\ttabs!",
            &[
                57, 3543, 3363, 216, 33, 34, 35, 36, 37, 13855, 28, 216, 284, 198, 197, 100, 7366,
                17,
            ],
        ),
        (
            "naïve café — “quotes” 日本語 🙂",
            &[
                3546, 46494, 37366, 1841, 619, 385, 2346, 573, 17097, 241, 115, 40993, 179, 120,
                248, 47526,
            ],
        ),
    ];
    for (text, ids) in pinned {
        let out = Command::new(b.native())
            .args(["--tokenize"])
            .arg(model_path())
            .arg(text)
            .output()
            .unwrap();
        let got: Vec<u32> = String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(&got, ids, "encoding of {text:?}");
        assert!(out.status.success(), "decode(encode({text:?})) differs");
    }
    // More text, round trip only.
    for text in [
        "  leading spaces\n\n\nnewlines   \n end  ",
        "don't WON'T it's we'll they're I'd",
        "x=3.14*(y+2); // code!! e-mail: a@b.com https://x.org/?q=1",
        "¿Qué? ¡Sí! 1,000,000 Ünïcödé ß",
    ] {
        let ok = Command::new(b.native())
            .arg("--tokenize")
            .arg(model_path())
            .arg(text)
            .status()
            .unwrap();
        assert!(ok.success(), "decode(encode({text:?})) differs");
    }
}

fn long_prompt() -> String {
    " a".repeat(1100) // 1100 tokens: more than the 1024 of the context
}

/// The pure-wasm build and the host-kernel build in the sandbox and the native build give the
/// same bytes for a batch with greedy and seeded sampling, stop strings and errors; the ChatML
/// answer to "What is the capital of France?" names Paris.
#[test]
fn sandboxed_guest_matches_native_and_answers_paris() {
    let b = builds();
    let model = model_bytes();
    let prompts = format!(
        concat!(
            "{{\"prompt\":\"What is the capital of France?\",\"max_tokens\":10}}\n",
            "{{\"prompt\":\"The quick brown fox\",\"raw\":true,\"max_tokens\":5,\"temperature\":0.8,\"top_p\":0.9,\"seed\":42}}\n",
            "{{\"prompt\":\"Once upon a time\",\"raw\":true,\"max_tokens\":4,\"temperature\":1.5,\"seed\":18446744073709551615}}\n",
            "{{\"prompt\":\"1, 2, 3, 4,\",\"raw\":true,\"max_tokens\":8,\"stop\":[\" 7\"]}}\n",
            "not json\n",
            "{{\"prompt\":\"\\ud83d\\ude00 ok\",\"raw\":true,\"max_tokens\":0}}\n",
            "{{\"prompt\":\"{}\",\"raw\":true}}\n",
        ),
        long_prompt()
    );
    let (code, native, stderr) = run_native(&b, &model_path(), &prompts);
    assert_eq!(code, 0, "{stderr}");
    println!("native: {stderr}{native}");

    let sb = sandbox();
    let m = sb.load(&b.guest_kernels_wasm()).unwrap();
    let r = sb.run(&m, &spec(&model, &prompts, FUEL)).unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Exited { code: 0 },
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let wasm = completions(&r);
    println!(
        "sandbox: {} fuel, {:?} wall time for {} prompt and {} completion tokens",
        r.fuel_used,
        r.wall_time,
        count(&wasm, "prompt_tokens"),
        count(&wasm, "completion_tokens")
    );
    assert_eq!(
        wasm, native,
        "the sandboxed guest and the native build differ"
    );
    // The build a market job runs: matrix products by the host's sietch_kernels (Rust), on
    // weights that stay in the host. Same bytes again.
    let host = sb.load(&b.host_kernels_wasm()).unwrap();
    let h = sb.run(&host, &spec(&model, &prompts, FUEL)).unwrap();
    assert_eq!(
        h.outcome,
        Outcome::Exited { code: 0 },
        "{}",
        String::from_utf8_lossy(&h.stderr)
    );
    println!(
        "sandbox, host kernels: {} fuel, {:?} wall time",
        h.fuel_used, h.wall_time
    );
    assert_eq!(
        completions(&h),
        native,
        "the host-kernel build in the sandbox and the native build differ"
    );

    let lines: Vec<&str> = wasm.lines().collect();
    assert_eq!(lines.len(), 7);
    assert!(lines[0].contains("Paris"), "{}", lines[0]);
    assert!(lines[1].contains("\"completion_tokens\":5,\"finish\":\"length\""));
    assert!(lines[3].contains("\"finish\":\"stop\""), "{}", lines[3]);
    assert!(!lines[3].contains(" 7"), "{}", lines[3]);
    assert!(lines[4].contains("\"finish\":\"error\",\"error\":\"invalid JSON"));
    assert!(lines[5].contains("\"completion_tokens\":0,\"finish\":\"length\""));
    assert!(
        lines[6].contains("\"finish\":\"error\"") && lines[6].contains("context holds 1024"),
        "{}",
        lines[6]
    );
    // The same job again gives the same bytes and fuel; another job id changes nothing here
    // (every sampled prompt has a seed).
    let mut again = spec(&model, &prompts, FUEL);
    again.job_id = [22; 32];
    let r2 = sb.run(&m, &again).unwrap();
    assert_eq!((completions(&r2), r2.fuel_used), (wasm, r.fuel_used));
}

/// Sums a numeric field over JSONL lines.
fn count(jsonl: &str, field: &str) -> u64 {
    let key = format!("\"{field}\":");
    jsonl
        .lines()
        .filter_map(|l| {
            let at = l.find(&key)? + key.len();
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Without a seed, sampling draws its seed from WASI random_get: the job id decides it.
#[test]
fn unseeded_sampling_follows_the_job_id() {
    let b = builds();
    let model = model_bytes();
    let prompts = "{\"prompt\":\"Hello\",\"raw\":true,\"max_tokens\":3,\"temperature\":5}\n";
    let sb = sandbox();
    let m = sb.load(&b.guest_kernels_wasm()).unwrap();
    let run = |id: u8| {
        let mut s = spec(&model, prompts, FUEL);
        s.job_id = [id; 32];
        completions(&sb.run(&m, &s).unwrap())
    };
    let (a, again) = (run(1), run(1));
    assert_eq!(a, again);
    let others: Vec<String> = (2..5).map(run).collect();
    assert!(others.iter().any(|o| *o != a), "{a} {others:?}");
}

/// A corrupt, truncated or unsupported model: a message on stderr, exit code 2, no output.
#[test]
fn bad_models_exit_2_and_write_nothing() {
    let b = builds();
    let model = model_bytes();
    let prompts = "{\"prompt\":\"Hi\"}\n";
    let mut magic = model.clone();
    magic[0] = b'X';
    let truncated = model[..model.len() / 2].to_vec();
    let mut header_cut = model.clone();
    header_cut.truncate(1000);
    // The type of the first tensor (token_embd.weight: name, u32 n_dims = 2, two u64 dims).
    let mut unknown_type = model.clone();
    let name = b"token_embd.weight";
    let at = unknown_type
        .windows(name.len())
        .position(|w| w == name)
        .unwrap()
        + name.len();
    assert_eq!(unknown_type[at..at + 4], [2, 0, 0, 0]);
    assert_eq!(unknown_type[at + 20], 8, "token_embd.weight is Q8_0");
    unknown_type[at + 20] = 99;

    let sb = sandbox();
    let m = sb.load(&b.guest_kernels_wasm()).unwrap();
    for (what, bytes, message) in [
        ("bad magic", magic, "not a GGUF file"),
        (
            "truncated data",
            truncated,
            "reaches past the end of the file",
        ),
        ("truncated header", header_cut, "inside the header"),
        (
            "unknown type",
            unknown_type,
            "unknown or unsupported tensor type 99",
        ),
    ] {
        let r = sb.run(&m, &spec(&bytes, prompts, FUEL)).unwrap();
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.outcome, Outcome::Exited { code: 2 }, "{what}: {stderr}");
        assert!(stderr.contains(message), "{what}: {stderr}");
        assert!(r.outputs.is_empty(), "{what}: {:?}", r.outputs.keys());
        // The native build says the same.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.gguf");
        std::fs::write(&p, &bytes).unwrap();
        let (code, out, stderr) = run_native(&b, &p, prompts);
        assert_eq!((code, out.as_str()), (2, ""), "{what}: {stderr}");
        assert!(stderr.contains(message), "{what}: {stderr}");
    }
}

/// A batch that runs out of fuel keeps the completions finished before: the guest flushes each
/// line, and the sandbox keeps /output on every outcome.
#[test]
fn out_of_fuel_keeps_the_finished_completions() {
    let b = builds();
    let model = model_bytes();
    let first = "{\"prompt\":\"One, two,\",\"raw\":true,\"max_tokens\":2}\n";
    let both = format!("{first}{{\"prompt\":\"Red, green,\",\"raw\":true,\"max_tokens\":2}}\n");
    let sb = sandbox();
    let m = sb.load(&b.guest_kernels_wasm()).unwrap();
    let one = sb.run(&m, &spec(&model, first, FUEL)).unwrap();
    let two = sb.run(&m, &spec(&model, &both, FUEL)).unwrap();
    assert_eq!(one.outcome, Outcome::Exited { code: 0 });
    assert_eq!(two.outcome, Outcome::Exited { code: 0 });
    let line = completions(&one);
    assert!(completions(&two).starts_with(&line) && completions(&two).lines().count() == 2);
    // Fuel for the first prompt and half the second.
    let fuel = one.fuel_used + (two.fuel_used - one.fuel_used) / 2;
    let cut = sb.run(&m, &spec(&model, &both, fuel)).unwrap();
    assert_eq!(cut.outcome, Outcome::OutOfFuel);
    assert_eq!(completions(&cut), line);
}

/// The host-kernel build imports sietch_kernels.matmul with the ABI of kernels.h; the pure-wasm
/// build imports nothing but WASI.
#[test]
fn host_kernel_build_imports_sietch_kernels_matmul() {
    use wasmtime::{Engine, ExternType, Module, ValType};
    let b = builds();
    let engine = Engine::default();
    let host = Module::new(&engine, b.host_kernels_wasm()).unwrap();
    let matmul: Vec<_> = host
        .imports()
        .filter(|i| i.module() == "sietch_kernels")
        .collect();
    assert_eq!(matmul.len(), 1);
    assert_eq!(matmul[0].name(), "matmul");
    let ExternType::Func(f) = matmul[0].ty() else {
        panic!("sietch_kernels.matmul is not a function")
    };
    let params: Vec<String> = f.params().map(|t| format!("{t}")).collect();
    assert_eq!(
        params,
        ["i32", "i64", "i32", "i32", "i32", "i32", "i32", "i32"]
    );
    let results: Vec<ValType> = f.results().collect();
    assert!(results.len() == 1 && format!("{}", results[0]) == "i32");
    let guest = Module::new(&engine, b.guest_kernels_wasm()).unwrap();
    assert!(
        guest
            .imports()
            .all(|i| i.module() == "wasi_snapshot_preview1"),
        "the pure-wasm build must import only WASI"
    );
}

/// Tokens/s of the pure-wasm build in the sandbox against native, prefill and generation
/// apart (`--run-ignored only`: a measurement, not a check). The model load is taken out by a
/// run that only loads it.
#[test]
#[ignore = "a measurement: run with --run-ignored only --no-capture"]
fn speed_of_the_sandboxed_guest() {
    let b = builds();
    let model = model_bytes();
    let text = "The history of the city begins in the third century, when a small settlement \
                grew on the banks of the river. Merchants came from the south with salt and \
                cloth, and the town built walls, a market and a bridge of stone.";
    let req = |max: u32| format!("{{\"prompt\":\"{text}\",\"raw\":true,\"max_tokens\":{max}}}\n");
    let sb = sandbox();
    let m = sb.load(&b.guest_kernels_wasm()).unwrap();
    let time = |prompts: &str| {
        let r = sb.run(&m, &spec(&model, prompts, FUEL)).unwrap();
        assert_eq!(r.outcome, Outcome::Exited { code: 0 });
        (r.wall_time.as_secs_f64(), r.fuel_used, completions(&r))
    };
    let (load, _, _) = time("\n");
    let (prefill, fuel_p, out) = time(&req(1));
    let n = count(&out, "prompt_tokens") as f64;
    let (both, fuel_b, out_b) = time(&req(33));
    let generated = count(&out_b, "completion_tokens") as f64 - 1.0;
    let (_, _, native) = run_native(&b, &model_path(), &req(1));
    let (_, _, native_both) = run_native(&b, &model_path(), &req(33));
    println!(
        "sandbox (pure wasm): load {load:.2} s; prefill {n} tokens {:.1} tokens/s; generation \
         {generated} tokens {:.1} tokens/s; fuel {:.3e} per prompt token, {:.3e} per generated\n\
         native, prefill only: {native}native, prefill and 33 tokens: {native_both}",
        n / (prefill - load),
        generated / (both - prefill),
        fuel_p as f64 / n,
        (fuel_b - fuel_p) as f64 / generated
    );
}
