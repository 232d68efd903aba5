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

/// A C guest's folder built once per version of its files (and of `extra` files it compiles
/// in) by its `build.sh` into `$CARGO_TARGET_TMPDIR/sietch-guests/NAME-HASH`, the folder
/// returned. Tests run as separate processes: each builds into a folder of its own and renames
/// it into place; `done` is a file the build leaves last.
pub fn build_guest_once(name: &str, src: &Path, extra: &[PathBuf], done: &str) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.extend_from_slice(extra);
    let mut key = blake3::Hasher::new();
    for p in &files {
        key.update(p.file_name().unwrap().to_string_lossy().as_bytes());
        key.update(&std::fs::read(p).unwrap());
    }
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sietch-guests");
    std::fs::create_dir_all(&root).unwrap();
    let dir = root.join(format!("{name}-{}", &key.finalize().to_hex()[..16]));
    if !dir.join(done).exists() {
        let tmp = root.join(format!("{name}-tmp{}", std::process::id()));
        let status = Command::new("bash")
            .arg(src.join("build.sh"))
            .arg(&tmp)
            .status();
        match status {
            // Another test may have won the race: its build is the same.
            Ok(s) if s.success() => {
                if std::fs::rename(&tmp, &dir).is_err() {
                    let _ = std::fs::remove_dir_all(&tmp);
                }
            }
            other => panic!(
                "could not build {} with build.sh ({other:?}); install the toolchain \
                 (clang, lld, wasi-libc, libclang-rt-14-dev-wasm32) with scripts/setup.sh",
                src.display()
            ),
        }
    }
    dir
}

/// Runs an independent reference (`tools/venv/bin/python SCRIPT ARGS`, numpy from
/// scripts/setup.sh), prints what it says and holds it to exit 0 and `the guest agrees with the
/// reference`.
pub fn reference_agrees<I, S>(script: &Path, args: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/venv/bin/python");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("tools/venv/bin/python: run scripts/setup.sh to create the venv");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the guest disagrees with {}:\n{text}",
        script.display()
    );
    assert!(text.contains("the guest agrees with the reference"));
}
