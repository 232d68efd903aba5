;; A GPU-style kernel's result: reads up to 256 bytes of stdin and writes one f32 per byte b,
;; (b + 0.5) · 0.37 / (1 + 0.01 · b), to /output/y.f32 (little-endian), then "ok" to stdout.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "y.f32")
  (data (i32.const 220) "ok")
  (func (export "_start")
    (local $n i32) (local $i i32) (local $b f32) (local $fd i32)
    ;; stdin into 1024..1280; bytes read at 8
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 256))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $n (i32.load (i32.const 8)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $b (f32.convert_i32_u (i32.load8_u offset=1024 (local.get $i))))
        (f32.store offset=4096 (i32.shl (local.get $i) (i32.const 2))
          (f32.div
            (f32.mul (f32.add (local.get $b) (f32.const 0.5)) (f32.const 0.37))
            (f32.add (f32.const 1) (f32.mul (local.get $b) (f32.const 0.01)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    ;; /output/y.f32, created, write rights
    (if (call $open (i32.const 4) (i32.const 0) (i32.const 200) (i32.const 5) (i32.const 9)
          (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 16))
      (then (call $exit (i32.const 12))))
    (local.set $fd (i32.load (i32.const 16)))
    (i32.store (i32.const 0) (i32.const 4096))
    (i32.store (i32.const 4) (i32.shl (local.get $n) (i32.const 2)))
    (drop (call $write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 0) (i32.const 220))
    (i32.store (i32.const 4) (i32.const 2))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
