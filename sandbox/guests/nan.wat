;; Produces NaNs from payload-carrying inputs and writes their bits (4 + 8 + 4 bytes) to
;; stdout; with NaN canonicalization they are 0x7fc00000, 0x7ff8000000000000, 0x7fc00000.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (f32.store (i32.const 100)
      (f32.add (f32.reinterpret_i32 (i32.const 0x7fa00001)) (f32.const 1)))
    (f64.store (i32.const 104)
      (f64.mul (f64.reinterpret_i64 (i64.const 0xfff4000000000005)) (f64.const 2)))
    (f32.store (i32.const 112)
      (f32.sqrt (f32.const -1)))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
