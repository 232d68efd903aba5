//! The language-model training guest (guests/train_lm, docs/training.md "A second model"): the
//! wasm build in the sandbox and the native build write the same bytes in every mode, and the
//! same job twice the same bytes and fuel; one batch's loss and gradient agree with an
//! independent numpy reference; rounds of local AdamW steps on Jane Austen's novels lower the
//! held-out loss; every bad input exits 2 with nothing in /output. The tests that need the
//! corpus (scripts/corpus.sh) print SKIPPED without it; the others run on a synthetic text.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;
#[path = "common/train.rs"]
mod train_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sietch_sandbox::{JobModule, Outcome, Sandbox, SandboxConfig};
use train_support::Run;

/// The tiny model of the reference and byte-equality checks: 34,304 parameters.
const TINY: &[&str] = &[
    "vocab=256",
    "ctx=16",
    "d=32",
    "layers=2",
    "heads=4",
    "ff=64",
];
/// The corpus's size: scripts/corpus.sh pins its sha256.
const AUSTEN_BYTES: usize = 4_025_029;
/// blake3 of the guest's `mode=init seed=1` (the default model).
const INIT_SEED_1_BLAKE3: &str = "a53baee298a9838603be234c0591e9c123e855a39445dcdccf35b3a9f0fced3f";
/// The held-out text: the corpus's last 4,097 bytes (64 windows of 64 predictions).
const HELD_OUT: usize = 64 * 64 + 1;

fn guest_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/train_lm")
}

/// Both builds (`guests/train_lm/build.sh`), once per version of the sources it compiles.
fn builds() -> PathBuf {
    let g = guest_dir();
    let train = g.join("../train");
    let mut extra: Vec<PathBuf> = ["args.c", "args.h", "formats.c", "formats.h", "mlp.c"]
        .iter()
        .chain(&["mlp.h", "train.h"])
        .map(|f| train.join(f))
        .collect();
    extra.extend([g.join("../llm/mathx.c"), g.join("../llm/mathx.h")]);
    common::build_guest_once("train_lm", &g, &extra, "train_lm-native")
}

fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        max_memory_bytes: 128 << 20,
        max_concurrent_jobs: 2,
        ..SandboxConfig::default()
    })
    .unwrap()
}

fn module(sb: &Sandbox) -> JobModule {
    sb.load(&std::fs::read(builds().join("train_lm.wasm")).unwrap())
        .unwrap()
}

/// The wasm build in the sandbox: 64 MiB, 10^12 fuel, five minutes.
fn run_wasm(sb: &Sandbox, m: &JobModule, inputs: &[(&str, &[u8])], args: &[&str]) -> Run {
    let mut spec = train_support::spec(inputs, args);
    spec.limits.fuel = 1_000_000_000_000;
    spec.limits.memory_bytes = 64 << 20;
    let r = sb.run(m, &spec).unwrap();
    let Outcome::Exited { code } = r.outcome else {
        panic!(
            "the job ended {}: {}",
            r.outcome,
            String::from_utf8_lossy(&r.stderr)
        );
    };
    Run {
        code,
        outputs: r.outputs,
        stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
        fuel: r.fuel_used,
        wall: r.wall_time,
    }
}

/// The native build, with `/input` and `/output` under a fresh `$TRAIN_ROOT`.
fn run_native(inputs: &[(&str, &[u8])], args: &[&str]) -> Run {
    let root = tempfile::tempdir().unwrap();
    let (input, output) = (root.path().join("input"), root.path().join("output"));
    std::fs::create_dir(&input).unwrap();
    std::fs::create_dir(&output).unwrap();
    for (name, data) in inputs {
        std::fs::write(input.join(name), data).unwrap();
    }
    let started = Instant::now();
    let out = Command::new(builds().join("train_lm-native"))
        .args(args)
        .env("TRAIN_ROOT", root.path())
        .output()
        .unwrap();
    let wall = started.elapsed();
    let mut outputs = BTreeMap::new();
    for e in std::fs::read_dir(&output).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        outputs.insert(name, std::fs::read(&p).unwrap());
    }
    Run {
        code: out.status.code().unwrap_or(-1),
        outputs,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        fuel: 0,
        wall,
    }
}

/// Both builds, held to exit 0 and the same `/output` bytes; the sandbox's run.
fn same(sb: &Sandbox, m: &JobModule, inputs: &[(&str, &[u8])], args: &[&str]) -> Run {
    let native = run_native(inputs, args);
    let wasm = run_wasm(sb, m, inputs, args);
    assert_eq!(native.code, 0, "native {args:?}: {}", native.stderr);
    assert_eq!(wasm.code, 0, "wasm {args:?}: {}", wasm.stderr);
    assert_eq!(
        native.outputs, wasm.outputs,
        "{args:?}: the sandboxed guest and the native build wrote different bytes"
    );
    wasm
}

/// Jane Austen's novels where scripts/corpus.sh keeps them, or None (SKIPPED).
fn austen() -> Option<Vec<u8>> {
    let dir = std::env::var_os("SIETCH_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/sietch/models")))?;
    let text = std::fs::read(dir.join("austen.txt")).ok()?;
    assert_eq!(
        text.len(),
        AUSTEN_BYTES,
        "austen.txt: run scripts/corpus.sh again"
    );
    Some(text)
}

/// `n` bytes of learnable text from a seed: sentences of a few words, ASCII only.
fn synthetic_text(n: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "house", "of", "Mr.",
        "Darcy", "was", "not", "very", "happy",
    ];
    let mut s = seed;
    let mut text = Vec::with_capacity(n + 16);
    while text.len() < n {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let w = WORDS[(s >> 33) as usize % WORDS.len()];
        text.extend_from_slice(w.as_bytes());
        text.extend_from_slice(if (s >> 20).is_multiple_of(7) {
            b".\n"
        } else {
            b" "
        });
    }
    text.truncate(n);
    text
}

/// Weights plus an update, element by element in f32 (the header is the weights').
fn plus(weights: &[u8], update: &[u8]) -> Vec<u8> {
    assert_eq!(weights.len(), update.len());
    assert_eq!(weights[..28], update[..28], "the update's header");
    let f = |b: &[u8]| f32::from_le_bytes(b.try_into().unwrap());
    let mut out = weights[..28].to_vec();
    for (w, u) in weights[28..]
        .chunks_exact(4)
        .zip(update[28..].chunks_exact(4))
    {
        out.extend_from_slice(&(f(w) + f(u)).to_le_bytes());
    }
    out
}

fn init(args: &[&str]) -> Vec<u8> {
    let r = run_native(&[], &[&["mode=init"][..], args].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.outputs["weights.lmw"].clone()
}

#[test]
fn sandboxed_and_native_builds_write_the_same_bytes() {
    let sb = sandbox();
    let m = module(&sb);
    let tiny = same(&sb, &m, &[], &[&["mode=init", "seed=2"][..], TINY].concat());
    let tiny = tiny.outputs["weights.lmw"].clone();
    assert_eq!(tiny.len(), 28 + 4 * 34_304);
    let default = same(&sb, &m, &[], &["mode=init", "seed=1"]);
    let default = default.outputs["weights.lmw"].clone();
    assert_eq!(default.len(), 28 + 4 * 279_424, "the default model's size");
    // The SDK's LmWeights::init(DEFAULT, 1) pins the same hash (sdk/src/train/text.rs).
    assert_eq!(blake3::hash(&default).to_hex().as_str(), INIT_SEED_1_BLAKE3);
    let mut texts = vec![("synthetic text", synthetic_text(30_000, 1))];
    match austen() {
        Some(t) => texts.push(("austen.txt", t)),
        None => println!("SKIPPED austen.txt here: not in the cache (bash scripts/corpus.sh)"),
    }
    let prompt: &[u8] = b"It is a truth universally acknowledged";
    for (what, text) in &texts {
        for (weights, args) in [
            (&tiny, &["steps=3", "batch=4", "seed=3"][..]),
            (
                &tiny,
                &[
                    "lr=0.01", "wd=0.1", "steps=2", "batch=3", "from=100", "to=20000",
                ][..],
            ),
            (
                &tiny,
                &["mode=grad", "batch=2", "seed=18446744073709551615"][..],
            ),
            (&tiny, &["mode=eval", "from=1000", "to=2000"][..]),
            (&default, &["steps=2", "batch=2", "seed=4", "from=5000"][..]),
        ] {
            let inputs: &[(&str, &[u8])] = &[("weights.lmw", weights), ("corpus.txt", text)];
            let r = same(&sb, &m, inputs, args);
            println!(
                "{what}, {args:?}: {} fuel, {:?} in the sandbox",
                r.fuel, r.wall
            );
        }
        let inputs: &[(&str, &[u8])] = &[("weights.lmw", &tiny), ("prompt.txt", prompt)];
        let r = same(&sb, &m, inputs, &["mode=sample", "tokens=20"]);
        assert_eq!(r.outputs["sample.txt"].len(), 20);
    }
    // The same job twice: the same bytes and fuel; another seed, another update.
    let text = &texts.last().unwrap().1;
    let inputs: &[(&str, &[u8])] = &[("weights.lmw", &default), ("corpus.txt", text)];
    let one = run_wasm(&sb, &m, inputs, &["steps=2", "batch=4", "seed=1"]);
    let again = run_wasm(&sb, &m, inputs, &["steps=2", "batch=4", "seed=1"]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert_eq!((&one.outputs, one.fuel), (&again.outputs, again.fuel));
    let other = run_wasm(&sb, &m, inputs, &["steps=2", "batch=4", "seed=2"]);
    assert_ne!(one.outputs["update.lmw"], other.outputs["update.lmw"]);
    println!(
        "LM-JOB default model (279,424 parameters), 2 steps of 4 x 64 bytes: {} fuel ({} a \
         step), {:?} in the sandbox",
        one.fuel,
        one.fuel / 2,
        one.wall
    );
}

/// reference.py (numpy, float32, batched) from the same weights and windows: one batch's loss
/// and gradient, at initialisation and after 40 steps, every tensor within 1e-5 of its largest
/// element.
#[test]
fn gradients_agree_with_the_numpy_reference() {
    let text = synthetic_text(20_000, 7);
    let fresh = init(&[&["seed=5"][..], TINY].concat());
    let inputs: &[(&str, &[u8])] = &[("weights.lmw", &fresh), ("corpus.txt", &text)];
    let r = run_native(inputs, &["steps=40", "batch=4", "lr=0.01", "seed=6"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let trained = plus(&fresh, &r.outputs["update.lmw"]);
    let dir = tempfile::tempdir().unwrap();
    for (what, weights) in [("initial weights", &fresh), ("after 40 steps", &trained)] {
        let args = ["mode=grad", "batch=3", "seed=8", "from=100", "to=15000"];
        let inputs: &[(&str, &[u8])] = &[("weights.lmw", weights), ("corpus.txt", &text)];
        let r = run_native(inputs, &args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let files =
            ["weights.lmw", "corpus.txt", "grad.lmw", "stats.json"].map(|n| dir.path().join(n));
        std::fs::write(&files[0], weights).unwrap();
        std::fs::write(&files[1], &text).unwrap();
        std::fs::write(&files[2], &r.outputs["grad.lmw"]).unwrap();
        std::fs::write(&files[3], &r.outputs["stats.json"]).unwrap();
        println!("{what}:");
        common::reference_agrees(
            &guest_dir().join("reference.py"),
            files
                .iter()
                .map(|f| f.as_os_str())
                .chain(args.iter().map(std::ffi::OsStr::new)),
        );
    }
}

/// The held-out loss of weights on the corpus's last HELD_OUT bytes, and the fuel it took.
fn held_out(sb: &Sandbox, m: &JobModule, weights: &[u8], text: &[u8]) -> (f64, u64) {
    let from = format!("from={}", text.len() - HELD_OUT);
    let inputs: &[(&str, &[u8])] = &[("weights.lmw", weights), ("corpus.txt", text)];
    let r = run_wasm(sb, m, inputs, &["mode=eval", &from]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    (r.number("eval.json", "loss").unwrap(), r.fuel)
}

/// `rounds` jobs in the sandbox, each `steps` steps of `batch` windows on the corpus but its
/// held-out end, from the last round's weights plus its update; a line per round. Returns the
/// held-out losses (before the first round, then after each) and the weights.
fn rounds(rounds: u32, steps: u32, batch: u32, text: &[u8]) -> (Vec<f64>, Vec<u8>) {
    let sb = sandbox();
    let m = module(&sb);
    let init = run_wasm(&sb, &m, &[], &["mode=init", "seed=1"]);
    let mut w = init.outputs["weights.lmw"].clone();
    let (loss, fuel) = held_out(&sb, &m, &w, text);
    println!(
        "round 0: held-out loss {loss:.4} (init {} fuel, eval {fuel} fuel)",
        init.fuel
    );
    let mut losses = vec![loss];
    let to = format!("to={}", text.len() - HELD_OUT);
    let (steps, batch) = (format!("steps={steps}"), format!("batch={batch}"));
    let started = Instant::now();
    let mut train_fuel = 0;
    for round in 1..=rounds {
        let seed = format!("seed={round}");
        let inputs: &[(&str, &[u8])] = &[("weights.lmw", &w), ("corpus.txt", text)];
        let r = run_wasm(&sb, &m, inputs, &[&steps, &batch, &seed, &to]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        w = plus(&w, &r.outputs["update.lmw"]);
        train_fuel += r.fuel;
        let (loss, _) = held_out(&sb, &m, &w, text);
        losses.push(loss);
        println!(
            "round {round}: training loss {:.4} -> {:.4}, held-out {loss:.4}; {} fuel, {:?}",
            r.number("stats.json", "loss_first").unwrap(),
            r.number("stats.json", "loss_last").unwrap(),
            r.fuel,
            r.wall
        );
    }
    let elapsed: Duration = started.elapsed();
    println!("{rounds} rounds: {train_fuel} fuel of training, {elapsed:?} with the evals");
    (losses, w)
}

/// Four rounds of 15 local steps of 8 windows on Jane Austen (480 windows of 64 bytes): the
/// held-out loss falls from about ln 256 = 5.55 by more than a third.
#[test]
fn rounds_on_austen_lower_the_held_out_loss() {
    let Some(text) = austen() else {
        println!(
            "SKIPPED: Jane Austen's novels are not in the cache (bash scripts/corpus.sh fetches \
             them); nothing was trained"
        );
        return;
    };
    let (losses, _) = rounds(4, 15, 8, &text);
    assert!((losses[0] - 256f64.ln()).abs() < 0.05, "{losses:?}");
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
    assert!(losses[4] < losses[0] * 2.0 / 3.0, "{losses:?}");
}

/// The docs' training run (docs/training.md, "A second model"): 10 rounds of 50 steps of 16
/// windows (8,000 windows of 64 bytes), then 300 bytes of greedy text. About four minutes here:
/// `cargo test -p sietch-sandbox --test train_lm -- --ignored --nocapture` (nextest's
/// slow-test limit of 300 s is near).
#[test]
#[ignore = "minutes: the run docs/training.md records"]
fn a_training_run_for_the_docs() {
    let Some(text) = austen() else {
        println!("SKIPPED: no austen.txt (bash scripts/corpus.sh)");
        return;
    };
    let (losses, w) = rounds(10, 50, 16, &text);
    assert!(losses[10] < 2.5, "{losses:?}");
    let sb = sandbox();
    let m = module(&sb);
    let prompt: &[u8] = b"It is a truth universally acknowledged";
    let inputs: &[(&str, &[u8])] = &[("weights.lmw", &w), ("prompt.txt", prompt)];
    let r = run_wasm(&sb, &m, inputs, &["mode=sample", "tokens=300"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    println!(
        "sample ({} fuel): {}{}",
        r.fuel,
        String::from_utf8_lossy(prompt),
        String::from_utf8_lossy(&r.outputs["sample.txt"])
    );
}

/// A bad-input case: what, the weights, the corpus, the arguments.
type Case = (&'static str, Vec<u8>, Vec<u8>, Vec<&'static str>);
/// A job's `/input` files, by name.
type Files = Vec<(&'static str, Vec<u8>)>;

/// Every bad input: exit 2, a message, nothing in /output, in either build.
#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let sb = sandbox();
    let m = module(&sb);
    let w = init(TINY);
    let text = synthetic_text(1_000, 3);
    let edit = |at: usize, v: u32| {
        let mut b = w.clone();
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        b
    };
    let mut high = text.clone();
    high[500] = 200;
    let small = init(&[
        "vocab=128",
        "ctx=16",
        "d=32",
        "layers=1",
        "heads=4",
        "ff=64",
    ]);
    let weights_cases: Vec<Case> = vec![
        (
            "weights: magic",
            [&b"LMW2"[..], &w[4..]].concat(),
            text.clone(),
            vec![],
        ),
        (
            "weights: truncated",
            w[..w.len() - 1].to_vec(),
            text.clone(),
            vec![],
        ),
        (
            "weights: trailing byte",
            [&w[..], &[0u8][..]].concat(),
            text.clone(),
            vec![],
        ),
        (
            "weights: only a header",
            w[..28].to_vec(),
            text.clone(),
            vec![],
        ),
        ("weights: vocab 257", edit(4, 257), text.clone(), vec![]),
        ("weights: ctx 0", edit(8, 0), text.clone(), vec![]),
        (
            "weights: 3 heads of d 32",
            edit(20, 3),
            text.clone(),
            vec![],
        ),
        ("weights: 9 layers", edit(16, 9), text.clone(), vec![]),
        (
            "weights: 2^22 parameters",
            edit(12, 1024),
            text.clone(),
            vec![],
        ),
        (
            "shard: to past the corpus",
            w.clone(),
            text.clone(),
            vec!["to=1001"],
        ),
        (
            "shard: from past the corpus",
            w.clone(),
            text.clone(),
            vec!["from=1000"],
        ),
        (
            "shard: from after to",
            w.clone(),
            text.clone(),
            vec!["from=500", "to=400"],
        ),
        (
            "shard: ctx bytes only",
            w.clone(),
            text.clone(),
            vec!["from=500", "to=516"],
        ),
        ("shard: a byte over vocab", small, high, vec![]),
        ("shard: empty corpus", w.clone(), vec![], vec![]),
    ];
    let mut cases: Vec<(String, Files, Vec<&str>)> = Vec::new();
    for (what, w, t, args) in weights_cases {
        for mode in ["mode=train", "mode=eval", "mode=grad"] {
            let inputs = vec![("weights.lmw", w.clone()), ("corpus.txt", t.clone())];
            cases.push((
                format!("{what}, {mode}"),
                inputs,
                [&[mode][..], &args[..]].concat(),
            ));
        }
    }
    let good = || vec![("weights.lmw", w.clone()), ("corpus.txt", text.clone())];
    cases.push((
        "no weights".into(),
        vec![("corpus.txt", text.clone())],
        vec![],
    ));
    cases.push(("no corpus".into(), vec![("weights.lmw", w.clone())], vec![]));
    cases.push(("sample: no prompt".into(), good(), vec!["mode=sample"]));
    let empty = vec![("weights.lmw", w.clone()), ("prompt.txt", vec![])];
    cases.push(("sample: empty prompt".into(), empty, vec!["mode=sample"]));
    for args in [
        &["foo=1"][..],
        &["noequals"],
        &["steps=0"],
        &["batch=4097"],
        &["steps=1", "steps=2"],
        &["lr=0"],
        &["lr=1e-3"],
        &["wd=-1"],
        &["mode=predict"],
        &["from=-1"],
        &["to=0"],
        &["to=4294967296"],
        &["d=64"],
        &["mode=init", "d=0"],
        &["mode=init", "d=30", "heads=4"],
        &["mode=init", "layers=9"],
        &["mode=init", "vocab=257"],
        &["mode=init", "d=1024", "ff=4096", "layers=8"],
        &["mode=init", "ctx=1024", "d=96", "heads=96"],
    ] {
        cases.push((format!("{args:?}"), good(), args.to_vec()));
    }
    for (what, inputs, args) in &cases {
        let inputs: Vec<(&str, &[u8])> = inputs.iter().map(|(n, d)| (*n, d.as_slice())).collect();
        for (build, r) in [
            ("wasm", run_wasm(&sb, &m, &inputs, args)),
            ("native", run_native(&inputs, args)),
        ] {
            assert_eq!(r.code, 2, "{what} ({build}): {}", r.stderr);
            assert!(
                r.outputs.is_empty(),
                "{what} ({build}): wrote {:?}",
                r.outputs.keys()
            );
            assert!(
                r.stderr.starts_with("train_lm: "),
                "{what} ({build}): {}",
                r.stderr
            );
        }
    }
    // The same files, intact, are accepted (each case above fails for its one reason).
    let intact = good();
    let inputs: Vec<(&str, &[u8])> = intact.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    assert_eq!(run_wasm(&sb, &m, &inputs, &["steps=1"]).code, 0);
}
