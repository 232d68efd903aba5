//! The devnet's jobs, written inline in WAT: a CPU guest that hashes its stdin, and a GPU
//! guest that runs a PTX kernel through `sietch_gpu` (submitted where a GPU exists).

use crate::fnv;

/// Rounds of FNV-1a the guest runs over its input, so that a run burns visible fuel.
const ROUNDS: u32 = 200;

/// A WAT function both guests print with: `$hex(h, at)` writes `h` as 8 hex digits at `at`
/// (the digits are at 120).
const HEX: &str = r#"
  (func $hex (param $h i32) (param $at i32)
    (local $i i32)
    (block $done (loop $digit
      (br_if $done (i32.ge_u (local.get $i) (i32.const 8)))
      (i32.store8 (i32.add (local.get $at) (local.get $i))
        (i32.load8_u offset=120
          (i32.and
            (i32.shr_u (local.get $h) (i32.sub (i32.const 28) (i32.mul (local.get $i) (i32.const 4))))
            (i32.const 15))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $digit))))
"#;

/// Reads up to 4 KiB of stdin, runs 32-bit FNV-1a over it `ROUNDS` times (the hash carried
/// from round to round) and prints `fnv1a=<8 hex digits>\n`.
const WAT: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "fnv1a=")
  (data (i32.const 120) "0123456789abcdef")
  (func (export "_start")
    (local $len i32) (local $h i32) (local $i i32) (local $r i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 4096))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $len (i32.load (i32.const 8)))
    (local.set $h (i32.const 0x811c9dc5))
    (block $rounds_done (loop $rounds
      (br_if $rounds_done (i32.ge_u (local.get $r) (i32.const 200)))
      (local.set $i (i32.const 0))
      (block $bytes_done (loop $bytes
        (br_if $bytes_done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $h (i32.mul
          (i32.xor (local.get $h) (i32.load8_u offset=1024 (local.get $i)))
          (i32.const 0x01000193)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $bytes)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rounds)))
    (call $hex (local.get $h) (i32.const 106))
    (i32.store8 (i32.const 114) (i32.const 10))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 15))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
"#;

/// The CPU guest module's bytes.
pub fn module() -> anyhow::Result<Vec<u8>> {
    Ok(wat::parse_str(format!("{WAT}{HEX})"))?)
}

/// What the guest prints for `input`, computed on the host to check the provider's answer.
pub fn expected_stdout(input: &[u8]) -> String {
    let input = input.get(..4096).unwrap_or(input);
    let h = (0..ROUNDS).fold(fnv::OFFSET, |h, _| fnv::fnv1a_from(h, input));
    format!("fnv1a={h:08x}\n")
}

/// Elements of the GPU guest's array (one block of 256 threads per 256).
const GPU_ELEMENTS: u32 = 1024;

/// The GPU guest's kernel, in PTX (loaded by the driver; no NVRTC needed):
/// `x[i] = 3 · x[i] + 1` for `i < n`, on `u32`s.
const PTX: &str = ".version 7.0
.target sm_70
.address_size 64
.visible .entry affine(.param .u64 p_x, .param .u32 p_n)
{
  .reg .pred %p<2>;
  .reg .b32 %r<9>;
  .reg .b64 %rd<5>;
  ld.param.u64 %rd1, [p_x];
  ld.param.u32 %r1, [p_n];
  mov.u32 %r2, %ctaid.x;
  mov.u32 %r3, %ntid.x;
  mov.u32 %r4, %tid.x;
  mad.lo.u32 %r5, %r2, %r3, %r4;
  setp.ge.u32 %p1, %r5, %r1;
  @%p1 bra DONE;
  cvta.to.global.u64 %rd2, %rd1;
  mul.wide.u32 %rd3, %r5, 4;
  add.u64 %rd4, %rd2, %rd3;
  ld.global.u32 %r6, [%rd4];
  mul.lo.u32 %r7, %r6, 3;
  add.u32 %r8, %r7, 1;
  st.global.u32 [%rd4], %r8;
DONE:
  ret;
}
";

/// The GPU guest: seeds 1,024 `u32`s from the FNV-1a of its stdin (`x[i] = seed + i`),
/// has the GPU compute `3 · x[i] + 1`, reads them back, and prints
/// `gpu fnv1a=<8 hex digits>\n`, the FNV-1a of the result's bytes. Exits 3 printing
/// `no device` where the job is not given a GPU, 4 when a `sietch_gpu` call fails.
///
/// Memory: 16 the buffer handle, 20 the kernel handle, 24 grid, 36 block, 48 the two launch
/// arguments, 100 the output line, 120 hex digits, 200 the kernel's name, 256 `no device`,
/// 1024 stdin, 4096 the PTX, 16384 the array.
fn gpu_wat() -> String {
    let ptx = PTX.replace('\n', "\\n");
    let ptx_len = PTX.len();
    let n = GPU_ELEMENTS;
    let bytes = n * 4;
    format!(
        r#"
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "sietch_gpu" "device_count" (func $count (result i32)))
  (import "sietch_gpu" "load_kernel" (func $load (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "sietch_gpu" "alloc" (func $alloc (param i64 i32) (result i32)))
  (import "sietch_gpu" "upload" (func $upload (param i32 i64 i32 i32) (result i32)))
  (import "sietch_gpu" "launch" (func $launch (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "sietch_gpu" "download" (func $download (param i32 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "gpu fnv1a=")
  (data (i32.const 120) "0123456789abcdef")
  (data (i32.const 200) "affine")
  (data (i32.const 256) "no device\n")
  (data (i32.const 4096) "{ptx}")
  (func $print (param $at i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $at))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $fnv (param $at i32) (param $len i32) (result i32)
    (local $h i32) (local $i i32)
    (local.set $h (i32.const 0x811c9dc5))
    (block $done (loop $bytes
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (local.set $h (i32.mul
        (i32.xor (local.get $h) (i32.load8_u (i32.add (local.get $at) (local.get $i))))
        (i32.const 0x01000193)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $bytes)))
    (local.get $h))
  (func (export "_start")
    (local $seed i32) (local $i i32) (local $h i32)
    (if (i32.lt_s (call $count) (i32.const 0))
      (then (call $print (i32.const 256) (i32.const 10)) (call $exit (i32.const 3))))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 2048))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $seed (call $fnv (i32.const 1024) (i32.load (i32.const 8))))
    (block $filled (loop $fill
      (br_if $filled (i32.ge_u (local.get $i) (i32.const {n})))
      (i32.store offset=16384 (i32.shl (local.get $i) (i32.const 2))
        (i32.add (local.get $seed) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $fill)))
    (call $check (call $load (i32.const 0) (i32.const 4096) (i32.const {ptx_len})
      (i32.const 200) (i32.const 6) (i32.const 20)))
    (call $check (call $alloc (i64.const {bytes}) (i32.const 16)))
    (call $check (call $upload (i32.load (i32.const 16)) (i64.const 0) (i32.const 16384)
      (i32.const {bytes})))
    (i32.store (i32.const 24) (i32.const {grid}))
    (i32.store (i32.const 28) (i32.const 1))
    (i32.store (i32.const 32) (i32.const 1))
    (i32.store (i32.const 36) (i32.const 256))
    (i32.store (i32.const 40) (i32.const 1))
    (i32.store (i32.const 44) (i32.const 1))
    ;; {{tag 0 buffer, handle}}, {{tag 2 u32, n}}
    (i64.store (i32.const 48) (i64.const 0))
    (i64.store (i32.const 56) (i64.extend_i32_u (i32.load (i32.const 16))))
    (i64.store (i32.const 64) (i64.const 2))
    (i64.store (i32.const 72) (i64.const {n}))
    (call $check (call $launch (i32.load (i32.const 20)) (i32.const 24) (i32.const 36)
      (i32.const 0) (i32.const 48) (i32.const 2)))
    (call $check (call $download (i32.load (i32.const 16)) (i64.const 0) (i32.const 16384)
      (i32.const {bytes})))
    (local.set $h (call $fnv (i32.const 16384) (i32.const {bytes})))
    (call $hex (local.get $h) (i32.const 110))
    (i32.store8 (i32.const 118) (i32.const 10))
    (call $print (i32.const 100) (i32.const 19)))
  (func $check (param $rc i32)
    (if (i32.ne (local.get $rc) (i32.const 0)) (then (call $exit (i32.const 4)))))
{HEX})
"#,
        grid = n.div_ceil(256),
    )
}

/// The GPU guest module's bytes.
pub fn gpu_module() -> anyhow::Result<Vec<u8>> {
    Ok(wat::parse_str(gpu_wat())?)
}

/// What the GPU guest prints for `input`, computed on the host.
pub fn gpu_expected_stdout(input: &[u8]) -> String {
    let input = input.get(..2048).unwrap_or(input);
    let seed = fnv::fnv1a(input);
    let out: Vec<u8> = (0..GPU_ELEMENTS)
        .flat_map(|i| {
            seed.wrapping_add(i)
                .wrapping_mul(3)
                .wrapping_add(1)
                .to_le_bytes()
        })
        .collect();
    format!("gpu fnv1a={:08x}\n", fnv::fnv1a(&out))
}

#[cfg(test)]
mod tests {
    use sietch_sandbox::{Outcome, Sandbox, SandboxConfig};

    fn sandbox() -> Sandbox {
        Sandbox::new(SandboxConfig {
            max_memory_bytes: 16 << 20,
            max_concurrent_jobs: 2,
            ..SandboxConfig::default()
        })
        .unwrap()
    }

    fn spec(input: &[u8], gpu: bool) -> sietch_sandbox::JobSpec {
        sietch_sandbox::JobSpec {
            stdin: input.to_vec(),
            limits: sietch_sandbox::Limits {
                fuel: 50_000_000,
                memory_bytes: 16 << 20,
                gpu,
                ..sietch_sandbox::Limits::default()
            },
            ..sietch_sandbox::JobSpec::default()
        }
    }

    #[test]
    fn the_cpu_guest_prints_what_the_host_expects() {
        let sb = sandbox();
        let module = sb.load(&super::module().unwrap()).unwrap();
        for input in [&b""[..], b"job 7 of the sietch devnet!!!!!!!!"] {
            let r = sb.run(&module, &spec(input, false)).unwrap();
            assert_eq!(r.outcome, Outcome::Exited { code: 0 });
            assert_eq!(
                String::from_utf8(r.stdout).unwrap(),
                super::expected_stdout(input)
            );
        }
    }

    /// Not given the GPU (a CPU job's limits) the guest is told "no device" on any machine;
    /// given it, it sees the device the host has: "no device" where there is none (a failure
    /// with `SIETCH_REQUIRE_GPU=1`), the right answer where there is one. Never vacuous.
    #[test]
    fn the_gpu_guest_needs_the_gpu_and_sees_the_host_device() {
        let sb = sandbox();
        let module = sb.load(&super::gpu_module().unwrap()).unwrap();
        let input = b"job 3 of the sietch devnet";
        let r = sb.run(&module, &spec(input, false)).unwrap();
        assert_eq!(r.outcome, Outcome::Exited { code: 3 });
        assert_eq!(r.stdout, b"no device\n");
        let expected = super::gpu_expected_stdout(input);
        assert!(expected.starts_with("gpu fnv1a=") && expected.len() == 19);
        assert_ne!(
            expected,
            super::gpu_expected_stdout(b"job 4 of the sietch devnet")
        );
        let r = sb.run(&module, &spec(input, true)).unwrap();
        if let Some(why) = sietch_sandbox::gpu::unavailable_reason() {
            assert!(
                !sietch_sandbox::gpu::gpu_expected(),
                "SIETCH_REQUIRE_GPU=1 but no CUDA device is usable: {why}"
            );
            assert_eq!(r.outcome, Outcome::Exited { code: 3 });
            assert_eq!(r.stdout, b"no device\n");
            assert_eq!(r.gpu_time_ns, 0);
            return;
        }
        assert_gpu_answer(&r, &expected);
    }

    fn assert_gpu_answer(r: &sietch_sandbox::JobReport, expected: &str) {
        assert_eq!(
            r.outcome,
            Outcome::Exited { code: 0 },
            "the GPU guest failed on a machine with a CUDA device: {}",
            String::from_utf8_lossy(&r.stdout)
        );
        assert_eq!(String::from_utf8_lossy(&r.stdout), expected);
        assert!(r.gpu_time_ns > 0, "no GPU time billed");
    }

    /// On a GPU: the devnet's GPU job (a PTX kernel, no NVRTC needed) computes on the device
    /// what the host expects, twice with the same output hash.
    #[test]
    #[ignore = "needs a CUDA GPU: SIETCH_REQUIRE_GPU=1 cargo nextest run --run-ignored only (docs/gpu.md)"]
    fn the_gpu_guest_computes_on_the_gpu() {
        if let Some(why) = sietch_sandbox::gpu::unavailable_reason() {
            panic!(
                "this GPU test runs only where a GPU is expected, and no CUDA device is usable: {why}"
            );
        }
        let sb = sandbox();
        let module = sb.load(&super::gpu_module().unwrap()).unwrap();
        for input in [&b"job 3 of the sietch devnet"[..], b""] {
            let expected = super::gpu_expected_stdout(input);
            let r = sb.run(&module, &spec(input, true)).unwrap();
            assert_gpu_answer(&r, &expected);
            let again = sb.run(&module, &spec(input, true)).unwrap();
            assert_eq!(again.output_hash, r.output_hash, "two GPU runs differ");
        }
    }

    /// What the CPU stand-in saw and the guest printed.
    #[derive(Default)]
    struct StandIn {
        stdin: Vec<u8>,
        stdout: Vec<u8>,
        exit: Option<i32>,
        buffer: Vec<u8>,
        kernel: Option<(i32, String)>,
        launches: u32,
    }

    fn memory(c: &mut wasmtime::Caller<'_, StandIn>) -> wasmtime::Memory {
        c.get_export("memory")
            .and_then(wasmtime::Extern::into_memory)
            .unwrap()
    }

    fn word(m: &[u8], at: i32) -> u32 {
        let at = at as usize;
        u32::from_le_bytes(m[at..at + 4].try_into().unwrap())
    }

    /// Runs the GPU guest with `sietch_gpu` answered on the CPU: one device, one buffer,
    /// `affine` applied on launch. It checks the guest's side of the ABI (buffer handle,
    /// argument records, launch shape) and its arithmetic, which no GPU checks here; the
    /// PTX itself is only parsed by a driver.
    fn run_on_a_cpu_stand_in(input: &[u8]) -> StandIn {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, super::gpu_module().unwrap()).unwrap();
        let mut l = wasmtime::Linker::<StandIn>::new(&engine);
        let wasi = "wasi_snapshot_preview1";
        l.func_wrap(
            wasi,
            "fd_read",
            |mut c: wasmtime::Caller<'_, StandIn>, fd: i32, iov: i32, _n: i32, out: i32| {
                assert_eq!(fd, 0);
                let m = memory(&mut c);
                let (mem, st) = m.data_and_store_mut(&mut c);
                let (at, cap) = (word(mem, iov) as usize, word(mem, iov + 4) as usize);
                let n = st.stdin.len().min(cap);
                mem[at..at + n].copy_from_slice(&st.stdin[..n]);
                mem[out as usize..out as usize + 4].copy_from_slice(&(n as u32).to_le_bytes());
                0
            },
        )
        .unwrap();
        l.func_wrap(
            wasi,
            "fd_write",
            |mut c: wasmtime::Caller<'_, StandIn>, fd: i32, iov: i32, _n: i32, _out: i32| {
                assert_eq!(fd, 1);
                let m = memory(&mut c);
                let (mem, st) = m.data_and_store_mut(&mut c);
                let (at, len) = (word(mem, iov) as usize, word(mem, iov + 4) as usize);
                st.stdout.extend_from_slice(&mem[at..at + len]);
                0
            },
        )
        .unwrap();
        l.func_wrap(
            wasi,
            "proc_exit",
            |mut c: wasmtime::Caller<'_, StandIn>, code: i32| {
                c.data_mut().exit = Some(code);
                Err::<(), _>(wasmtime::Error::msg("exit"))
            },
        )
        .unwrap();
        let gpu = sietch_sandbox::gpu::MODULE;
        l.func_wrap(gpu, "device_count", || 1i32).unwrap();
        l.func_wrap(
            gpu,
            "load_kernel",
            |mut c: wasmtime::Caller<'_, StandIn>,
             kind: i32,
             src: i32,
             len: i32,
             name: i32,
             name_len: i32,
             out: i32| {
                let m = memory(&mut c);
                let (mem, st) = m.data_and_store_mut(&mut c);
                let source = std::str::from_utf8(&mem[src as usize..(src + len) as usize]).unwrap();
                assert!(
                    source.starts_with(".version") && source.ends_with("}\n"),
                    "{source}"
                );
                let name =
                    std::str::from_utf8(&mem[name as usize..(name + name_len) as usize]).unwrap();
                assert!(source.contains(&format!(".entry {name}(")));
                st.kernel = Some((kind, name.to_owned()));
                mem[out as usize..out as usize + 4].copy_from_slice(&7i32.to_le_bytes());
                0
            },
        )
        .unwrap();
        l.func_wrap(
            gpu,
            "alloc",
            |mut c: wasmtime::Caller<'_, StandIn>, bytes: i64, out: i32| {
                let m = memory(&mut c);
                let (mem, st) = m.data_and_store_mut(&mut c);
                st.buffer = vec![0; bytes as usize];
                mem[out as usize..out as usize + 4].copy_from_slice(&5i32.to_le_bytes());
                0
            },
        )
        .unwrap();
        l.func_wrap(
            gpu,
            "upload",
            |mut c: wasmtime::Caller<'_, StandIn>, h: i32, off: i64, src: i32, len: i32| {
                assert_eq!((h, off), (5, 0));
                let m = memory(&mut c);
                let (mem, st) = m.data_and_store_mut(&mut c);
                st.buffer
                    .copy_from_slice(&mem[src as usize..(src + len) as usize]);
                0
            },
        )
        .unwrap();
        l.func_wrap(
            gpu,
            "launch",
            |mut c: wasmtime::Caller<'_, StandIn>,
             k: i32,
             grid: i32,
             block: i32,
             shared: i32,
             args: i32,
             nargs: i32| {
                assert_eq!((k, shared, nargs), (7, 0, 2));
                let m = memory(&mut c);
                let (mem, st) = m.data_and_store_mut(&mut c);
                let dims = |at: i32| [word(mem, at), word(mem, at + 4), word(mem, at + 8)];
                let (g, b) = (dims(grid), dims(block));
                // {tag 0: buffer, handle}, {tag 2: u32, n}
                let rec = |i: i32, w: i32| word(mem, args + i * 16 + w * 4);
                assert_eq!((rec(0, 0), rec(0, 2)), (0, 5));
                assert_eq!(rec(1, 0), 2);
                let n = rec(1, 2);
                assert!(g[0] * b[0] >= n && g[1] == 1 && b[1] == 1, "{g:?} {b:?}");
                for x in st.buffer.chunks_exact_mut(4).take(n as usize) {
                    let v = u32::from_le_bytes(x.try_into().unwrap());
                    x.copy_from_slice(&v.wrapping_mul(3).wrapping_add(1).to_le_bytes());
                }
                st.launches += 1;
                0
            },
        )
        .unwrap();
        l.func_wrap(
            gpu,
            "download",
            |mut c: wasmtime::Caller<'_, StandIn>, h: i32, off: i64, dst: i32, len: i32| {
                assert_eq!((h, off, len as usize), (5, 0, c.data().buffer.len()));
                let m = memory(&mut c);
                let (mem, st) = m.data_and_store_mut(&mut c);
                mem[dst as usize..(dst + len) as usize].copy_from_slice(&st.buffer);
                0
            },
        )
        .unwrap();
        let mut store = wasmtime::Store::new(
            &engine,
            StandIn {
                stdin: input.to_vec(),
                ..StandIn::default()
            },
        );
        let instance = l.instantiate(&mut store, &module).unwrap();
        let start = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .unwrap();
        let ended = start.call(&mut store, ());
        let mut st = std::mem::take(store.data_mut());
        if ended.is_ok() {
            st.exit.get_or_insert(0);
        }
        st
    }

    #[test]
    fn the_gpu_guest_drives_the_abi_and_prints_what_the_host_expects() {
        for input in [&b""[..], b"job 3 of the sietch devnet!!!!!!!!!!!!!!!!"] {
            let st = run_on_a_cpu_stand_in(input);
            assert_eq!(st.exit, Some(0), "{}", String::from_utf8_lossy(&st.stdout));
            assert_eq!(st.kernel, Some((0, "affine".to_owned())), "PTX, by name");
            assert_eq!(st.launches, 1);
            assert_eq!(st.buffer.len(), 4 * super::GPU_ELEMENTS as usize);
            assert_eq!(
                String::from_utf8(st.stdout).unwrap(),
                super::gpu_expected_stdout(input)
            );
        }
    }
}
