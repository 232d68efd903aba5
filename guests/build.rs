//! Compiles the inference guest (`sandbox/guests/llm`, C) to wasm32-wasi with clang, the way
//! its `build.sh` builds `llm.wasm`, so that the CLI and the SDK carry the module they submit.
#![allow(clippy::panic, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCES: &[&str] = &[
    "main.c",
    "gguf.c",
    "tokenizer.c",
    "model.c",
    "mathx.c",
    "sample.c",
    "json.c",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let src = manifest.join("../sandbox/guests/llm");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("llm.wasm");
    for entry in std::fs::read_dir(&src).expect("sandbox/guests/llm is part of the repository") {
        let path = entry.expect("a readable directory").path();
        if matches!(path.extension().and_then(|e| e.to_str()), Some("c" | "h")) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    println!("cargo:rerun-if-env-changed=CC_WASM");
    let cc = std::env::var("CC_WASM").unwrap_or_else(|_| "clang".into());
    let status = Command::new(&cc)
        .current_dir(&src)
        .args([
            "-O2",
            "-ffp-contract=off",
            "-std=gnu11",
            "-Wall",
            "-Wextra",
            "-Werror",
        ])
        .args([
            "--target=wasm32-wasi",
            "-msimd128",
            "-Wl,-z,stack-size=1048576",
        ])
        .args(SOURCES)
        .arg("-o")
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "could not compile the inference guest in {} with {cc} --target=wasm32-wasi \
             ({other:?}): install clang, lld, wasi-libc and libclang-rt-14-dev-wasm32 \
             (scripts/setup.sh does)",
            display(&src)
        ),
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
