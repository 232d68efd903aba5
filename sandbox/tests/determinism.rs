//! The same spec gives the same output hash and the same fuel: across runs, sandboxes
//! (engines), threads and a serialize/deserialize of the compiled module.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use common::{c_guest, sandbox, spec, test_config, wat};
use sietch_sandbox::{JobReport, JobSpec, Outcome, Sandbox, SandboxConfig};

fn tour_spec() -> JobSpec {
    let mut s = spec();
    s.job_id = [7; 32];
    s.args = vec!["arg1".into()];
    s.stdin = b"from stdin|".to_vec();
    s.inputs.insert("data".into(), b"input file bytes".to_vec());
    s
}

fn key(r: &JobReport) -> ([u8; 32], u64, Outcome) {
    (r.output_hash, r.fuel_used, r.outcome)
}

#[test]
fn wasi_state_comes_only_from_the_spec() {
    let sb = sandbox();
    let m = sb.load(&wat("wasi_tour")).unwrap();
    let r = sb.run(&m, &tour_spec()).unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Exited { code: 7 },
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(r.stdout.starts_with(b"from stdin|"));
    assert_eq!(r.stdout.len(), 11 + 24);
    assert_eq!(
        r.outputs.get("copy").map(Vec::as_slice),
        Some(&b"input file bytes"[..])
    );
    // The clock is virtual: it reads the fuel burned so far, deterministically.
    let clock = u64::from_le_bytes(r.stdout[11 + 16..].try_into().unwrap());
    assert!(
        clock > 0 && clock < r.fuel_used,
        "{clock} vs {}",
        r.fuel_used
    );

    // Same spec again: same bytes, same fuel.
    assert_eq!(key(&sb.run(&m, &tour_spec()).unwrap()), key(&r));
    // Another job id changes the random bytes and so the hash, not the fuel.
    let mut other = tour_spec();
    other.job_id = [8; 32];
    let o = sb.run(&m, &other).unwrap();
    assert_ne!(o.output_hash, r.output_hash);
    assert_ne!(o.stdout[11..27], r.stdout[11..27]);
    assert_eq!(o.fuel_used, r.fuel_used);
    // Other input bytes change the hash.
    let mut other = tour_spec();
    other
        .inputs
        .insert("data".into(), b"input file BYTES".to_vec());
    assert_ne!(sb.run(&m, &other).unwrap().output_hash, r.output_hash);
}

#[test]
fn same_spec_same_hash_and_fuel_across_engines_and_threads() {
    let wasm = c_guest("matmul");
    let mut s = spec();
    s.args = vec!["48".into()];
    let first = {
        let sb = sandbox();
        sb.run(&sb.load(&wasm).unwrap(), &s).unwrap()
    };
    assert_eq!(
        first.outcome,
        Outcome::Exited { code: 0 },
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let shared = sandbox();
    let m = shared.load(&wasm).unwrap();
    let results: Vec<_> = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let (shared, m, s, wasm) = (&shared, &m, &s, &wasm);
                scope.spawn(move || {
                    if i % 2 == 0 {
                        shared.run(m, s).unwrap()
                    } else {
                        let own = sandbox();
                        own.run(&own.load(wasm).unwrap(), s).unwrap()
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        assert_eq!(key(r), key(&first));
        assert_eq!(r.stdout, first.stdout);
    }
}

#[test]
fn serialized_module_from_disk_gives_the_same_result_and_skips_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..test_config()
    };
    let wasm = c_guest("montecarlo");
    let mut s = spec();
    s.args = vec!["20000".into()]; // no seed: uses random_get, seeded from the job id
    s.job_id = [3; 32];

    let a = Sandbox::new(config.clone()).unwrap();
    let ra = a.run(&a.load(&wasm).unwrap(), &s).unwrap();
    assert_eq!(a.cache_stats().compiles, 1);
    assert!(
        String::from_utf8_lossy(&ra.stdout).starts_with("pi ~ 3.1"),
        "{:?}",
        ra
    );

    // A second job with the same module pays no compile.
    let again = a.load(&wasm).unwrap();
    assert_eq!(a.cache_stats().compiles, 1);
    assert_eq!(a.cache_stats().memory_hits, 1);
    assert_eq!(key(&a.run(&again, &s).unwrap()), key(&ra));

    // A new engine finds the serialized module on disk.
    let b = Sandbox::new(config).unwrap();
    let rb = b.run(&b.load(&wasm).unwrap(), &s).unwrap();
    let stats = b.cache_stats();
    assert_eq!(
        (stats.compiles, stats.disk_hits, stats.disk_errors),
        (0, 1, 0)
    );
    assert_eq!(key(&rb), key(&ra));
    assert_eq!(rb.stdout, ra.stdout);
}

#[test]
fn corrupt_cache_file_is_recompiled_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..test_config()
    };
    let wasm = wat("hello");
    let hash = blake3::hash(&wasm);
    std::fs::write(
        dir.path().join(format!("{hash}.cwasm")),
        b"not a compiled module",
    )
    .unwrap();
    let sb = Sandbox::new(config).unwrap();
    let r = sb.run(&sb.load(&wasm).unwrap(), &spec()).unwrap();
    assert_eq!(r.stdout, b"hello\n");
    let stats = sb.cache_stats();
    assert_eq!(
        (stats.compiles, stats.disk_hits, stats.disk_errors),
        (1, 0, 1)
    );
}

#[test]
fn nan_results_have_canonical_bits() {
    let sb = sandbox();
    let r = sb.run(&sb.load(&wat("nan")).unwrap(), &spec()).unwrap();
    assert_eq!(r.outcome, Outcome::Exited { code: 0 });
    assert_eq!(r.stdout.len(), 16);
    assert_eq!(
        u32::from_le_bytes(r.stdout[0..4].try_into().unwrap()),
        0x7fc0_0000
    );
    assert_eq!(
        u64::from_le_bytes(r.stdout[4..12].try_into().unwrap()),
        0x7ff8_0000_0000_0000
    );
    assert_eq!(
        u32::from_le_bytes(r.stdout[12..16].try_into().unwrap()),
        0x7fc0_0000
    );
}

#[test]
fn c_guests_run_and_agree_with_themselves() {
    let sb = sandbox();
    let mut s = spec();
    s.inputs.insert(
        "data".into(),
        (0..10_000u32)
            .flat_map(u32::to_le_bytes)
            .collect::<Vec<u8>>(),
    );
    let m = sb.load(&c_guest("hash")).unwrap();
    let r = sb.run(&m, &s).unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Exited { code: 0 },
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
    assert_eq!(r.outputs.get("digest"), Some(&r.stdout));
    assert_eq!(key(&sb.run(&m, &s).unwrap()), key(&r));

    let mut s = spec();
    s.args = vec!["100000".into(), "42".into()];
    let mc = sb
        .run(&sb.load(&c_guest("montecarlo")).unwrap(), &s)
        .unwrap();
    assert!(
        String::from_utf8_lossy(&mc.stdout).starts_with("pi ~ 3.1"),
        "{mc:?}"
    );
}

#[test]
fn wasi_libc_sees_flat_in_memory_directories() {
    let sb = sandbox();
    let mut s = spec();
    s.inputs.insert("b.txt".into(), b"BB".to_vec());
    s.inputs.insert("a.txt".into(), b"A".to_vec());
    let r = sb
        .run(&sb.load(&c_guest("list_inputs")).unwrap(), &s)
        .unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Exited { code: 0 },
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(
        String::from_utf8(r.stdout).unwrap(),
        "a.txt 1 65\nb.txt 2 132\nwrite to input: refused\nread from output: refused\nclock moves: yes\n"
    );
    assert_eq!(r.outputs.get("summary").unwrap(), b"a.txt=1\nb.txt=2\n");
    assert_eq!(r.stderr, b"argv[0]=job argc=1\n");
}

/// What a run of the `gpu_saxpy` guest that used the GPU must show.
fn assert_gpu_saxpy_ran(r: &JobReport) {
    assert_eq!(
        r.outcome,
        Outcome::Exited { code: 0 },
        "the GPU guest failed on a machine with a CUDA device: {}",
        String::from_utf8_lossy(&r.stdout)
    );
    assert_eq!(r.stdout, b"ok\n");
    assert!(r.gpu_time_ns > 0, "no GPU time billed");
}

/// A job given the GPU sees the device the host has: where there is none it is told "no
/// device" (exit 3) and billed no GPU time; where there is one it runs on it. Never vacuous:
/// each branch checks the sandbox's answer. With `SIETCH_REQUIRE_GPU=1` no device is a
/// failure. The GPU side proper is `gpu_guest_runs_on_the_gpu` (ignored without a GPU).
#[test]
fn gpu_guest_sees_the_device_the_host_has() {
    let sb = sandbox();
    let r = sb
        .run(&sb.load(&c_guest("gpu_saxpy")).unwrap(), &spec())
        .unwrap();
    match sietch_sandbox::gpu::unavailable_reason() {
        Some(why) => {
            common::no_gpu_is_fine(&why);
            assert_eq!(r.stdout, b"no device\n");
            assert_eq!(r.outcome, Outcome::Exited { code: 3 });
            assert_eq!(r.gpu_time_ns, 0);
        }
        None => assert_gpu_saxpy_ran(&r),
    }
}

/// On a GPU: SAXPY and a matrix product through `sietch_gpu` (CUDA C through NVRTC), the same
/// job twice gives the same output hash and fuel, a job over its GPU memory quota is refused
/// its allocation, and a job not given the GPU is told "no device" even here.
#[test]
#[ignore = "needs a CUDA GPU: SIETCH_REQUIRE_GPU=1 cargo nextest run --run-ignored only (docs/gpu.md)"]
fn gpu_guest_runs_on_the_gpu() {
    common::require_gpu();
    let info = sietch_sandbox::gpu::device_info().expect("device 0 described");
    println!("device 0: {info:?}");
    assert!(
        info.nvrtc,
        "NVRTC (libnvrtc.so) not found: CUDA C kernels cannot load"
    );
    let sb = sandbox();
    let m = sb.load(&c_guest("gpu_saxpy")).unwrap();
    let r = sb.run(&m, &spec()).unwrap();
    assert_gpu_saxpy_ran(&r);
    println!(
        "gpu_saxpy: {} ns of GPU time billed, wall {:?}",
        r.gpu_time_ns, r.wall_time
    );
    let again = sb.run(&m, &spec()).unwrap();
    assert_gpu_saxpy_ran(&again);
    assert_eq!(key(&again), key(&r), "two GPU runs of one job differ");

    // 20,000 bytes of quota: x (16 KiB) fits, y does not.
    let mut small = spec();
    small.limits.gpu_memory_bytes = 20_000;
    let q = sb.run(&m, &small).unwrap();
    assert_eq!(q.outcome, Outcome::Exited { code: 4 }, "{q:?}");
    assert!(
        String::from_utf8_lossy(&q.stdout).contains("failed: -3"),
        "{}",
        String::from_utf8_lossy(&q.stdout)
    );

    let mut cpu_only = spec();
    cpu_only.limits.gpu = false;
    let n = sb.run(&m, &cpu_only).unwrap();
    assert_eq!(n.stdout, b"no device\n");
    assert_eq!(n.gpu_time_ns, 0);
}

/// A job not given the GPU is told "no device" even where one exists, so that it runs the
/// same on a provider with a GPU and on a verifier without one.
#[test]
fn a_job_not_given_the_gpu_sees_no_device_anywhere() {
    let sb = sandbox();
    let module = sb.load(&c_guest("gpu_saxpy")).unwrap();
    let mut s = spec();
    s.limits.gpu = false;
    let r = sb.run(&module, &s).unwrap();
    assert_eq!(r.outcome, Outcome::Exited { code: 3 });
    assert_eq!(r.stdout, b"no device\n");
    assert_eq!(r.gpu_time_ns, 0);
    let again = sb.run(&module, &s).unwrap();
    assert_eq!(again.output_hash, r.output_hash);
    assert_eq!(again.fuel_used, r.fuel_used);
}

/// What a provider puts in its offer: nothing where there is no device, else device 0.
#[test]
fn device_info_matches_the_device_count() {
    match (
        sietch_sandbox::gpu::devices(),
        sietch_sandbox::gpu::device_info(),
    ) {
        (0, info) => {
            common::no_gpu_is_fine(&sietch_sandbox::gpu::unavailable_reason().unwrap_or_default());
            assert_eq!(info, None);
        }
        (_, Some(info)) => {
            assert!(!info.model.is_empty());
            assert!(info.memory_bytes > 0);
            assert!(info.compute_capability.0 >= 3, "{info:?}");
        }
        (n, None) => panic!("{n} devices but no description of device 0"),
    }
}
