;; Reads argv[1], stdin and /input/data, writes them to /output/copy and random bytes to
;; stdout: everything the spec controls, so the output hash depends on all of it.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "data")
  (data (i32.const 220) "copy")
  ;; iovec at 0: buffer 1024, 4096 bytes
  (func $iov (param $len i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (local.get $len)))
  (func (export "_start")
    (local $n i32) (local $in i32) (local $out i32)
    ;; stdin -> stdout
    (call $iov (i32.const 4096))
    (if (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)) (then (call $exit (i32.const 10))))
    (call $iov (i32.load (i32.const 8)))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    ;; /input/data -> /output/copy
    (if (call $open (i32.const 3) (i32.const 0) (i32.const 200) (i32.const 4) (i32.const 0)
          (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16))
      (then (call $exit (i32.const 11))))
    (local.set $in (i32.load (i32.const 16)))
    (call $iov (i32.const 4096))
    (drop (call $read (local.get $in) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (call $open (i32.const 4) (i32.const 0) (i32.const 220) (i32.const 4) (i32.const 9)
          (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 16))
      (then (call $exit (i32.const 12))))
    (local.set $out (i32.load (i32.const 16)))
    (call $iov (i32.load (i32.const 8)))
    (drop (call $write (local.get $out) (i32.const 0) (i32.const 1) (i32.const 8)))
    ;; 16 random bytes and the virtual clock -> stdout
    (drop (call $random (i32.const 1024) (i32.const 16)))
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 1040)))
    (call $iov (i32.const 24))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const 7))))
