//! The language-model inference guest (`guests/llm`, docs/ai.md) for the tests: its builds,
//! made with `guests/llm/build.sh` and cached by the sources' hash, and the model file.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sietch_sandbox::{JobReport, JobSpec, Limits, Sandbox, SandboxConfig};

pub const MODEL_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

pub fn llm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/llm")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The guest's builds (see `guests/llm/build.sh`).
pub struct Builds {
    pub dir: PathBuf,
}

impl Builds {
    pub fn native(&self) -> PathBuf {
        self.dir.join("llm-native")
    }
    pub fn native_float(&self) -> PathBuf {
        self.dir.join("llm-native-float")
    }
    pub fn host_kernels_wasm(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("llm.wasm")).unwrap()
    }
    pub fn guest_kernels_wasm(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("llm-guest-kernels.wasm")).unwrap()
    }
}

/// Builds every variant once per version of the sources (tests run as separate processes:
/// each builds into a directory of its own and renames it into place).
pub fn builds() -> Builds {
    let src = llm_dir();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let mut key = blake3::Hasher::new();
    for p in &names {
        key.update(p.file_name().unwrap().to_string_lossy().as_bytes());
        key.update(&std::fs::read(p).unwrap());
    }
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sietch-guests");
    std::fs::create_dir_all(&root).unwrap();
    let dir = root.join(format!("llm-{}", &key.finalize().to_hex()[..16]));
    if !dir.join("llm-native-float").exists() {
        let tmp = root.join(format!("llm-tmp{}", std::process::id()));
        let status = Command::new("bash")
            .arg(src.join("build.sh"))
            .arg(&tmp)
            .status();
        match status {
            Ok(s) if s.success() => {
                // Another test may have won the race: its build is the same.
                if std::fs::rename(&tmp, &dir).is_err() {
                    let _ = std::fs::remove_dir_all(&tmp);
                }
            }
            other => panic!(
                "could not build guests/llm with build.sh ({other:?}); install the toolchain \
                 (clang, lld, wasi-libc, libclang-rt-14-dev-wasm32) with scripts/setup.sh"
            ),
        }
    }
    Builds { dir }
}

/// The model's path: `$SIETCH_MODEL_DIR` or `~/.cache/sietch/models`, where scripts/model.sh
/// keeps it. A missing model fails the test: it is part of the set-up, not optional.
pub fn model_path() -> PathBuf {
    let dir = std::env::var_os("SIETCH_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            Path::new(&home).join(".cache/sietch/models")
        });
    let path = dir.join(MODEL_NAME);
    assert!(
        path.is_file(),
        "the model {} is missing: run scripts/setup.sh (or scripts/model.sh) to fetch it",
        path.display()
    );
    path
}

pub fn model_bytes() -> Vec<u8> {
    std::fs::read(model_path()).unwrap()
}

/// A sandbox with room for the model in guest memory (98 MB of weights, a 47 MB KV cache).
pub fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        max_memory_bytes: 512 << 20,
        max_concurrent_jobs: 2,
        ..SandboxConfig::default()
    })
    .unwrap()
}

/// A job with the model and a batch of prompts.
pub fn spec(model: &[u8], prompts: &str, fuel: u64) -> JobSpec {
    let mut s = JobSpec {
        job_id: [21; 32],
        limits: Limits {
            fuel,
            memory_bytes: 400 << 20,
            deadline: std::time::Duration::from_secs(900),
            ..Limits::default()
        },
        ..JobSpec::default()
    };
    s.inputs.insert("model.gguf".into(), model.to_vec());
    s.inputs
        .insert("prompts.jsonl".into(), prompts.as_bytes().to_vec());
    s
}

/// The completions a sandboxed run left, as text ("" if none).
pub fn completions(r: &JobReport) -> String {
    r.outputs
        .get("completions.jsonl")
        .map(|d| String::from_utf8(d.clone()).unwrap())
        .unwrap_or_default()
}

/// Runs the native build on a batch: (exit code, completions, stderr).
pub fn run_native(b: &Builds, model: &Path, prompts: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (p, o) = (
        dir.path().join("prompts.jsonl"),
        dir.path().join("out.jsonl"),
    );
    std::fs::write(&p, prompts).unwrap();
    let out = Command::new(b.native())
        .arg(model)
        .arg(&p)
        .arg(&o)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        std::fs::read_to_string(&o).unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
