//! Shared helpers of the sandbox's integration tests: guests built from source.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sietch_sandbox::{JobSpec, Limits, Sandbox, SandboxConfig};

pub fn guests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guests")
}

/// A WAT guest from `guests/NAME.wat`, assembled.
pub fn wat(name: &str) -> Vec<u8> {
    let path = guests_dir().join(format!("{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// How C guests are compiled: Debian's clang finds wasi-libc in /usr/include/wasm32-wasi and
/// /usr/lib/wasm32-wasi without a --sysroot. SIMD128 is on, as native -O2 vectorizes too.
pub const CFLAGS: &[&str] = &["--target=wasm32-wasi", "-O2", "-msimd128"];

/// A C guest from `guests/NAME.c`, compiled with clang to wasm32-wasi (cached by source and flags).
pub fn c_guest(name: &str) -> Vec<u8> {
    let src = guests_dir().join(format!("{name}.c"));
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sietch-guests");
    std::fs::create_dir_all(&out_dir).unwrap();
    // The cache key covers everything that shapes the module: source, header, flags.
    let mut key = blake3::Hasher::new();
    key.update(&std::fs::read(&src).unwrap());
    key.update(&std::fs::read(guests_dir().join("kernel_timing.h")).unwrap());
    key.update(CFLAGS.join(" ").as_bytes());
    let out = out_dir.join(format!("{name}-{}.wasm", &key.finalize().to_hex()[..16]));
    if !out.exists() {
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let status = Command::new("clang")
            .args(CFLAGS)
            .arg(&src)
            .arg("-o")
            .arg(&tmp)
            .status();
        match status {
            Ok(s) if s.success() => std::fs::rename(&tmp, &out).unwrap(),
            other => panic!(
                "could not compile {} with clang --target=wasm32-wasi ({other:?}); \
                 install the toolchain (clang, lld, wasi-libc, libclang-rt-14-dev-wasm32) \
                 with scripts/setup.sh",
                src.display()
            ),
        }
    }
    std::fs::read(out).unwrap()
}

/// A sandbox small enough for tests.
pub fn sandbox() -> Sandbox {
    Sandbox::new(test_config()).unwrap()
}

pub fn test_config() -> SandboxConfig {
    SandboxConfig {
        max_memory_bytes: 64 << 20,
        max_concurrent_jobs: 16,
        max_module_bytes: 1 << 20,
        ..SandboxConfig::default()
    }
}

pub fn spec() -> JobSpec {
    JobSpec {
        limits: Limits {
            fuel: 50_000_000,
            memory_bytes: 16 << 20,
            ..Limits::default()
        },
        ..JobSpec::default()
    }
}

/// For a test marked `#[ignore]` because it needs a GPU: it runs only where a GPU is expected
/// (`--run-ignored`, with `SIETCH_REQUIRE_GPU=1`), so no usable device fails it, saying why.
pub fn require_gpu() {
    if let Some(why) = sietch_sandbox::gpu::unavailable_reason() {
        panic!(
            "this GPU test runs only where a GPU is expected, and no CUDA device is usable: {why}"
        );
    }
}

/// For a test that checks the no-device side: fine, unless the environment says a GPU is
/// expected here (`SIETCH_REQUIRE_GPU=1`), where no device means the GPU path is broken.
pub fn no_gpu_is_fine(why: &str) {
    assert!(
        !sietch_sandbox::gpu::gpu_expected(),
        "SIETCH_REQUIRE_GPU=1 but no CUDA device is usable: {why}"
    );
}
