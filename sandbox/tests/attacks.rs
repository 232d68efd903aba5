//! Every sandbox control, attacked by a guest that tries to break it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::time::{Duration, Instant};

use common::{c_guest, sandbox, spec, wat};
use sietch_sandbox::{LoadError, Outcome, TrapKind};

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let sb = sandbox();
    let m = sb.load(&wat("infinite_loop")).unwrap();
    let mut s = spec();
    s.limits.fuel = 1_000_000;
    let r = sb.run(&m, &s).unwrap();
    assert_eq!(r.outcome, Outcome::OutOfFuel);
    assert_eq!(r.fuel_used, 1_000_000);
}

#[test]
fn infinite_loop_is_stopped_by_the_deadline() {
    let sb = sandbox();
    let m = sb.load(&wat("infinite_loop")).unwrap();
    let mut s = spec();
    s.limits.fuel = u64::MAX;
    s.limits.deadline = Duration::from_millis(100);
    let t = Instant::now();
    let r = sb.run(&m, &s).unwrap();
    assert_eq!(r.outcome, Outcome::DeadlineExceeded);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_secs(2), "deadline overshot: {took:?}");
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let sb = sandbox();
    let m = sb.load(&wat("memory_bomb")).unwrap();
    let mut s = spec();
    s.limits.memory_bytes = 8 << 20;
    let r = sb.run(&m, &s).unwrap();
    assert_eq!(r.outcome, Outcome::MemoryLimitExceeded);
}

#[test]
fn module_whose_initial_memory_is_over_the_limit_is_an_outcome() {
    let sb = sandbox();
    // 512 pages = 32 MiB initial memory.
    let wasm =
        wat::parse_str(r#"(module (memory (export "memory") 512) (func (export "_start")))"#)
            .unwrap();
    let m = sb.load(&wasm).unwrap();
    let mut s = spec();
    s.limits.memory_bytes = 1 << 20;
    assert_eq!(
        sb.run(&m, &s).unwrap().outcome,
        Outcome::MemoryLimitExceeded
    );
}

#[test]
fn module_whose_initial_memory_no_sandbox_slot_holds_is_refused_at_load() {
    // 2048 pages = 128 MiB, over the test sandbox's 64 MiB slots.
    let wasm =
        wat::parse_str(r#"(module (memory (export "memory") 2048) (func (export "_start")))"#)
            .unwrap();
    assert!(matches!(sandbox().load(&wasm), Err(LoadError::Invalid(_))));
    let table = wat::parse_str(
        r#"(module (table 200000 funcref) (memory (export "memory") 1) (func (export "_start")))"#,
    )
    .unwrap();
    assert!(matches!(sandbox().load(&table), Err(LoadError::Invalid(_))));
}

#[test]
fn a_moved_sandbox_still_runs_its_modules_and_refuses_others() {
    let sb = sandbox();
    let m = sb.load(&wat("hello")).unwrap();
    let moved = Box::new(sb);
    assert_eq!(moved.run(&m, &spec()).unwrap().stdout, b"hello\n");
    let other = sandbox();
    assert!(matches!(
        other.run(&m, &spec()),
        Err(sietch_sandbox::RunError::ForeignModule)
    ));
}

#[test]
fn deep_recursion_is_a_stack_overflow_trap() {
    let sb = sandbox();
    let m = sb.load(&wat("deep_recursion")).unwrap();
    let r = sb.run(&m, &spec()).unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Trapped {
            trap: TrapKind::StackOverflow
        }
    );
    // The host thread survived and the sandbox still runs jobs.
    let ok = sb.load(&wat("hello")).unwrap();
    assert_eq!(sb.run(&ok, &spec()).unwrap().stdout, b"hello\n");
}

#[test]
fn output_flood_is_cut_at_the_stdout_limit() {
    let sb = sandbox();
    let m = sb.load(&wat("output_flood")).unwrap();
    let mut s = spec();
    s.limits.stdout_bytes = 1 << 20;
    let r = sb.run(&m, &s).unwrap();
    assert_eq!(r.outcome, Outcome::OutputTooLarge);
    assert_eq!(r.stdout.len(), 1 << 20);
}

#[test]
fn output_file_flood_is_cut_at_the_output_limit() {
    let sb = sandbox();
    let m = sb.load(&c_guest("output_bomb")).unwrap();
    let mut s = spec();
    s.limits.output_bytes = 1 << 20;
    let r = sb.run(&m, &s).unwrap();
    assert_eq!(r.outcome, Outcome::OutputTooLarge);
    assert!(r.outputs.values().map(Vec::len).sum::<usize>() <= 1 << 20);
}

#[test]
fn unknown_host_import_is_refused_at_load_by_name() {
    let err = sandbox().load(&wat("unknown_import")).unwrap_err();
    match &err {
        LoadError::ForbiddenImport { module, name } => {
            assert_eq!((module.as_str(), name.as_str()), ("env", "launch_missiles"));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("env::launch_missiles"));
}

#[test]
fn wasi_import_with_wrong_signature_is_refused_at_load() {
    let wasm = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32)))
                   (memory (export "memory") 1) (func (export "_start")))"#,
    )
    .unwrap();
    match sandbox().load(&wasm).unwrap_err() {
        LoadError::ImportType { name, .. } => assert_eq!(name, "fd_write"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn opening_host_files_fails_inside_the_guest() {
    let sb = sandbox();
    let r = sb
        .run(&sb.load(&wat("open_file")).unwrap(), &spec())
        .unwrap();
    // ENOTCAPABLE for the escape, EBADF for an invented descriptor, ENOENT for a host name.
    assert_eq!(
        r.outcome,
        Outcome::Exited {
            code: 76 * 10000 + 8 * 100 + 44
        }
    );
}

#[test]
fn opening_host_files_from_c_fails() {
    let sb = sandbox();
    let r = sb
        .run(&sb.load(&c_guest("open_file")).unwrap(), &spec())
        .unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Exited { code: 0 },
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
    let out = String::from_utf8(r.stdout).unwrap();
    assert!(!out.contains("root:"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.ends_with("refused")).count(),
        4,
        "{out}"
    );
}

#[test]
fn sockets_are_not_supported() {
    let sb = sandbox();
    let r = sb.run(&sb.load(&wat("socket")).unwrap(), &spec()).unwrap();
    assert_eq!(r.outcome, Outcome::Exited { code: 58 }); // ENOTSUP
    match sb.load(&wat("socket_open")).unwrap_err() {
        LoadError::ForbiddenImport { name, .. } => assert_eq!(name, "sock_open"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bytes_that_are_not_wasm_are_refused() {
    let sb = sandbox();
    assert!(matches!(
        sb.load(b"#!/bin/sh\nrm -rf /\n"),
        Err(LoadError::NotWasm(_))
    ));
    assert!(matches!(sb.load(b""), Err(LoadError::NotWasm(_))));
    // A component (layer 1) is not a core module.
    assert!(matches!(
        sb.load(b"\0asm\x0d\0\x01\0"),
        Err(LoadError::NotWasm(_))
    ));
    // Right magic, garbage after it.
    let mut bad = b"\0asm\x01\0\0\0".to_vec();
    bad.extend_from_slice(&[0xff; 32]);
    assert!(matches!(sb.load(&bad), Err(LoadError::Invalid(_))));
    // Valid wasm that is not a command.
    let lib = wat::parse_str("(module (func (export \"f\")))").unwrap();
    assert!(matches!(sb.load(&lib), Err(LoadError::NotCommand(_))));
}

#[test]
fn module_over_the_size_limit_is_refused_before_parsing() {
    let sb = sandbox();
    let mut big = b"\0asm\x01\0\0\0".to_vec();
    big.resize(sb.config().max_module_bytes + 1, 0);
    match sb.load(&big).unwrap_err() {
        LoadError::TooLarge { size, limit } => {
            assert_eq!((size, limit), (big.len(), big.len() - 1))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sb.cache_stats().compiles, 0);
}

#[test]
fn guest_traps_are_outcomes_with_their_kind() {
    let sb = sandbox();
    let wasm = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "_start") (drop (i32.div_u (i32.const 1) (i32.const 0)))))"#,
    )
    .unwrap();
    let r = sb.run(&sb.load(&wasm).unwrap(), &spec()).unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Trapped {
            trap: TrapKind::IntegerDivisionByZero
        }
    );
    let oob = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "_start") (drop (i32.load (i32.const 70000)))))"#,
    )
    .unwrap();
    let r = sb.run(&sb.load(&oob).unwrap(), &spec()).unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Trapped {
            trap: TrapKind::MemoryOutOfBounds
        }
    );
}

#[test]
fn many_jobs_at_once_exhaust_only_their_own_limits() {
    let sb = sandbox();
    let looping = sb.load(&wat("infinite_loop")).unwrap();
    let bomb = sb.load(&wat("memory_bomb")).unwrap();
    let flood = sb.load(&wat("output_flood")).unwrap();
    let hello = sb.load(&wat("hello")).unwrap();
    let mut s = spec();
    s.limits.fuel = 2_000_000;
    s.limits.memory_bytes = 4 << 20;
    s.limits.stdout_bytes = 256 << 10;
    let jobs = [
        (&looping, Outcome::OutOfFuel),
        (&bomb, Outcome::MemoryLimitExceeded),
        (&flood, Outcome::OutputTooLarge),
        (&hello, Outcome::Exited { code: 0 }),
    ];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let (m, want) = jobs[i % jobs.len()];
                let (sb, s) = (&sb, &s);
                scope.spawn(move || {
                    for _ in 0..3 {
                        let r = sb.run(m, s).unwrap();
                        assert_eq!(r.outcome, want);
                        if want == (Outcome::Exited { code: 0 }) {
                            assert_eq!(r.stdout, b"hello\n");
                        }
                        if want == Outcome::OutOfFuel {
                            assert_eq!(r.fuel_used, 2_000_000);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn more_jobs_than_the_pool_holds_are_refused_not_crashed() {
    use sietch_sandbox::{RunError, Sandbox, SandboxConfig};
    let sb = Sandbox::new(SandboxConfig {
        max_concurrent_jobs: 1,
        ..common::test_config()
    })
    .unwrap();
    let looping = sb.load(&wat("infinite_loop")).unwrap();
    let hello = sb.load(&wat("hello")).unwrap();
    let mut s = spec();
    s.limits.fuel = u64::MAX;
    s.limits.deadline = Duration::from_millis(300);
    std::thread::scope(|scope| {
        let busy = scope.spawn(|| sb.run(&looping, &s).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        assert!(matches!(sb.run(&hello, &spec()), Err(RunError::Busy(_))));
        assert_eq!(busy.join().unwrap().outcome, Outcome::DeadlineExceeded);
    });
    assert_eq!(
        sb.run(&hello, &spec()).unwrap().outcome,
        Outcome::Exited { code: 0 }
    );
}

#[test]
fn spec_asking_for_more_than_the_sandbox_allows_is_refused() {
    use sietch_sandbox::{RunError, Sandbox, SandboxConfig};
    let sb = sandbox();
    let m = sb.load(&wat("hello")).unwrap();
    let mut s = spec();
    s.limits.memory_bytes = 1 << 40;
    assert!(sb.run(&m, &s).is_err());
    let mut s = spec();
    s.inputs.insert("../x".into(), vec![]);
    assert!(sb.run(&m, &s).is_err());
    let small = Sandbox::new(SandboxConfig {
        max_input_bytes: 10,
        ..common::test_config()
    })
    .unwrap();
    let m = small.load(&wat("hello")).unwrap();
    let mut s = spec();
    s.stdin = vec![0; 11];
    assert!(matches!(small.run(&m, &s), Err(RunError::InvalidSpec(_))));
}
