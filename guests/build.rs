//! Compiles Sietch's C guests to wasm32-wasi with clang, the way their `build.sh` scripts
//! build them, so that the CLI and the SDK carry the modules they submit: the inference guest
//! (`sandbox/guests/llm`, `llm.wasm`), the training guest (`sandbox/guests/train`,
//! `train.wasm`, which compiles in `../llm/mathx.c`) and the language-model training guest
//! (`sandbox/guests/train_lm`, `train_lm.wasm`, which compiles in parts of both).
#![allow(clippy::panic, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const LLM_SOURCES: &[&str] = &[
    "main.c",
    "rescore.c",
    "gguf.c",
    "tokenizer.c",
    "model.c",
    "mathx.c",
    "sample.c",
    "json.c",
];
const TRAIN_SOURCES: &[&str] = &["main.c", "args.c", "formats.c", "mlp.c", "../llm/mathx.c"];
const TRAIN_LM_SOURCES: &[&str] = &[
    "main.c",
    "lmargs.c",
    "model.c",
    "backward.c",
    "../train/args.c",
    "../train/formats.c",
    "../train/mlp.c",
    "../llm/mathx.c",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    println!("cargo:rerun-if-env-changed=CC_WASM");
    let guests = manifest.join("../sandbox/guests");
    compile(
        "inference",
        &guests.join("llm"),
        LLM_SOURCES,
        &["-Wl,-z,stack-size=1048576"],
        &out.join("llm.wasm"),
    );
    compile(
        "training",
        &guests.join("train"),
        TRAIN_SOURCES,
        &["-Wl,--strip-debug"],
        &out.join("train.wasm"),
    );
    compile(
        "language-model training",
        &guests.join("train_lm"),
        TRAIN_LM_SOURCES,
        &["-Wl,--strip-debug"],
        &out.join("train_lm.wasm"),
    );
}

/// `clang -O2 -ffp-contract=off ... --target=wasm32-wasi -msimd128 SOURCES -o OUT` in `src`.
fn compile(what: &str, src: &Path, sources: &[&str], extra: &[&str], out: &Path) {
    for entry in std::fs::read_dir(src).expect("the guest's folder is part of the repository") {
        let path = entry.expect("a readable directory").path();
        if matches!(path.extension().and_then(|e| e.to_str()), Some("c" | "h")) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let cc = std::env::var("CC_WASM").unwrap_or_else(|_| "clang".into());
    let status = Command::new(&cc)
        .current_dir(src)
        .args([
            "-O2",
            "-ffp-contract=off",
            "-std=gnu11",
            "-Wall",
            "-Wextra",
            "-Werror",
        ])
        .args(["--target=wasm32-wasi", "-msimd128"])
        .args(extra)
        .args(sources)
        .arg("-o")
        .arg(out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "could not compile the {what} guest in {} with {cc} --target=wasm32-wasi \
             ({other:?}): install clang, lld, wasi-libc and libclang-rt-14-dev-wasm32 \
             (scripts/setup.sh does)",
            src.display()
        ),
    }
}
