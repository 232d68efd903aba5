//! What a real C guest reading a large `/input` file (a language model) needs from WASI:
//! `fd_filestat_get` reports the size, `fd_seek` from the end, `fd_pread` (wasi-libc's
//! `pread` and its `mmap` emulation) at any offset without moving the position, with its
//! refusals; and a model-sized file (98 MB) through all of them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use common::{sandbox, spec};
use sietch_sandbox::Outcome;

const EBADF: u32 = 8;
const EFAULT: u32 = 21;
const EISDIR: u32 = 31;
const ESPIPE: u32 = 70;

/// The guest: opens `/input/data`, then emits (as little-endian words to stdout):
/// the size from fd_filestat_get; fd_seek(-10, END)'s result; 4 bytes read there; pread of 8
/// bytes at PREAD_AT (errno, count, bytes); fd_tell after it; pread past the end (errno,
/// count); pread into two iovecs across the end (count, bytes); the errnos of pread on
/// stdout, on the /input directory, on fd 99, with an iovec outside memory, and of
/// fd_pread with a negative offset (read as unsigned: past the end, 0 bytes).
const GUEST: &str = r#"
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_get" (func $fstat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func $seek (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_tell" (func $tell (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pread" (func $pread (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "data")
  (global $o (mut i32) (i32.const 0x2000))
  (func $w32 (param i32) (i32.store (global.get $o) (local.get 0))
    (global.set $o (i32.add (global.get $o) (i32.const 4))))
  (func $w64 (param i64) (i64.store (global.get $o) (local.get 0))
    (global.set $o (i32.add (global.get $o) (i32.const 8))))
  ;; iovec at 0x100: one buffer at 0x200 of $len bytes
  (func $iov (param $len i32) (i32.store (i32.const 0x100) (i32.const 0x200))
    (i32.store (i32.const 0x104) (local.get $len)))
  (func (export "_start") (local $fd i32)
    (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 4)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 0x80)))
    (local.set $fd (i32.load (i32.const 0x80)))
    ;; size
    (call $w32 (call $fstat (local.get $fd) (i32.const 0x300)))
    (call $w64 (i64.load (i32.const 0x320)))
    ;; seek to 10 before the end, read 4
    (call $w32 (call $seek (local.get $fd) (i64.const -10) (i32.const 2) (i32.const 0x90)))
    (call $w64 (i64.load (i32.const 0x90)))
    (call $iov (i32.const 4))
    (call $w32 (call $read (local.get $fd) (i32.const 0x100) (i32.const 1) (i32.const 0x98)))
    (call $w32 (i32.load (i32.const 0x200)))
    ;; pread 8 at PREAD_AT
    (call $iov (i32.const 8))
    (call $w32 (call $pread (local.get $fd) (i32.const 0x100) (i32.const 1) (i64.const PREAD_AT) (i32.const 0x98)))
    (call $w32 (i32.load (i32.const 0x98)))
    (call $w64 (i64.load (i32.const 0x200)))
    ;; the position did not move: still size - 6
    (call $w32 (call $tell (local.get $fd) (i32.const 0x90)))
    (call $w64 (i64.load (i32.const 0x90)))
    ;; past the end: 0 bytes
    (call $w32 (call $pread (local.get $fd) (i32.const 0x100) (i32.const 1) (i64.const 0x7fffffff0) (i32.const 0x98)))
    (call $w32 (i32.load (i32.const 0x98)))
    ;; two iovecs of 4 across the end (at size - 6): 6 bytes
    (i64.store (i32.const 0x200) (i64.const 0))
    (i32.store (i32.const 0x108) (i32.const 0x204))
    (i32.store (i32.const 0x10c) (i32.const 4))
    (call $iov (i32.const 4))
    (call $w32 (call $pread (local.get $fd) (i32.const 0x100) (i32.const 2) (i64.sub (i64.load (i32.const 0x320)) (i64.const 6)) (i32.const 0x98)))
    (call $w32 (i32.load (i32.const 0x98)))
    (call $w64 (i64.load (i32.const 0x200)))
    ;; refusals
    (call $w32 (call $pread (i32.const 1) (i32.const 0x100) (i32.const 1) (i64.const 0) (i32.const 0x98)))
    (call $w32 (call $pread (i32.const 3) (i32.const 0x100) (i32.const 1) (i64.const 0) (i32.const 0x98)))
    (call $w32 (call $pread (i32.const 99) (i32.const 0x100) (i32.const 1) (i64.const 0) (i32.const 0x98)))
    (i32.store (i32.const 0x100) (i32.const 0xfffe))
    (call $w32 (call $pread (local.get $fd) (i32.const 0x100) (i32.const 1) (i64.const 0) (i32.const 0x98)))
    (call $iov (i32.const 4))
    (call $w32 (call $pread (local.get $fd) (i32.const 0x100) (i32.const 1) (i64.const -1) (i32.const 0x98)))
    (call $w32 (i32.load (i32.const 0x98)))
    ;; everything emitted
    (i32.store (i32.const 0x40) (i32.const 0x2000))
    (i32.store (i32.const 0x44) (i32.sub (global.get $o) (i32.const 0x2000)))
    (drop (call $write (i32.const 1) (i32.const 0x40) (i32.const 1) (i32.const 0x48)))))
"#;

/// Reads the guest's words back.
struct Words<'a>(&'a [u8]);

impl Words<'_> {
    fn u32(&mut self) -> u32 {
        let (a, b) = self.0.split_at(4);
        self.0 = b;
        u32::from_le_bytes(a.try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        let (a, b) = self.0.split_at(8);
        self.0 = b;
        u64::from_le_bytes(a.try_into().unwrap())
    }
}

fn le64(data: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(data[at..at + 8].try_into().unwrap())
}

fn check(data: Vec<u8>, pread_at: u64) {
    let size = data.len() as u64;
    let sb = sietch_sandbox::Sandbox::new(common::test_config()).unwrap();
    let m = sb
        .load(&wat::parse_str(GUEST.replace("PREAD_AT", &pread_at.to_string())).unwrap())
        .unwrap();
    let mut s = spec();
    s.inputs.insert("data".into(), data.clone());
    let r = sb.run(&m, &s).unwrap();
    assert_eq!(r.outcome, Outcome::Exited { code: 0 }, "{r:?}");
    let mut w = Words(&r.stdout);
    assert_eq!((w.u32(), w.u64()), (0, size), "fd_filestat_get: the size");
    assert_eq!((w.u32(), w.u64()), (0, size - 10), "fd_seek from the end");
    let at = (size - 10) as usize;
    assert_eq!(
        (w.u32(), w.u32()),
        (0, u32::from_le_bytes(data[at..at + 4].try_into().unwrap())),
        "fd_read there"
    );
    assert_eq!(
        (w.u32(), w.u32(), w.u64()),
        (0, 8, le64(&data, pread_at as usize)),
        "fd_pread"
    );
    assert_eq!(
        (w.u32(), w.u64()),
        (0, size - 6),
        "fd_pread leaves the position"
    );
    assert_eq!((w.u32(), w.u32()), (0, 0), "fd_pread past the end");
    let mut tail = [0u8; 8];
    tail[..6].copy_from_slice(&data[size as usize - 6..]);
    assert_eq!(
        (w.u32(), w.u32(), w.u64()),
        (0, 6, u64::from_le_bytes(tail)),
        "fd_pread into two iovecs across the end"
    );
    assert_eq!(w.u32(), ESPIPE, "fd_pread on stdout");
    assert_eq!(w.u32(), EISDIR, "fd_pread on the /input directory");
    assert_eq!(w.u32(), EBADF, "fd_pread on a closed fd");
    assert_eq!(w.u32(), EFAULT, "fd_pread into an iovec outside memory");
    assert_eq!((w.u32(), w.u32()), (0, 0), "fd_pread at offset 2^64 - 1");
    assert!(w.0.is_empty());
}

#[test]
fn pread_seek_and_size_on_a_small_file() {
    let data: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
    check(data, 50);
}

/// A file the size of the SmolLM2-135M Q4_1 model (98,362,432 bytes): size, seek from the
/// end, and a pread 60 MB in all work, and a pread costs fuel for the bytes it moves only.
#[test]
fn a_model_sized_file() {
    let mut data = vec![0u8; 98_362_432];
    for (i, b) in data.iter_mut().enumerate().step_by(4093) {
        *b = (i >> 12) as u8;
    }
    data[60_000_000..60_000_008].copy_from_slice(&0x0123_4567_89ab_cdefu64.to_le_bytes());
    let n = data.len();
    data[n - 10..].copy_from_slice(b"0123456789");
    check(data, 60_000_000);
}

#[test]
fn pread_is_deterministic_and_billed_by_bytes() {
    let sb = sandbox();
    let m = sb
        .load(&wat::parse_str(GUEST.replace("PREAD_AT", "3")).unwrap())
        .unwrap();
    let run = |len: usize| {
        let mut s = spec();
        s.inputs.insert("data".into(), vec![9u8; len]);
        sb.run(&m, &s).unwrap()
    };
    let (a, b) = (run(100), run(100));
    assert_eq!((a.output_hash, a.fuel_used), (b.output_hash, b.fuel_used));
    // A bigger file changes no count of bytes moved (every read is bounded by its iovec).
    assert_eq!(run(10_000).fuel_used, a.fuel_used);
}
