;; One call of sietch_kernels.matmul, driven by stdin (sandbox/tests/kernels.rs builds it).
;; stdin is copied into memory at address 0 (up to 0x3f0000 bytes); its first 48 bytes say
;; what to call, little-endian:
;;   0 fd (i32; -1: open the /input file named at [4] with length [44] and use its fd)
;;   4 name pointer   8 offset (i64)   16 wtype   20 rows   24 cols   28 x   32 n   36 y
;;   40 bytes of y to echo   44 name length
;; stdout: the errno matmul returned (i32), then the echoed bytes at y.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "sietch_kernels" "matmul"
    (func $matmul (param i32 i64 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 64)
  (func (export "_start")
    (local $pos i32) (local $fd i32)
    (block $done
      (loop $more
        (i32.store (i32.const 0x3fff00) (local.get $pos))
        (i32.store (i32.const 0x3fff04) (i32.sub (i32.const 0x3f0000) (local.get $pos)))
        (br_if $done (call $fd_read (i32.const 0) (i32.const 0x3fff00) (i32.const 1) (i32.const 0x3fff08)))
        (br_if $done (i32.eqz (i32.load (i32.const 0x3fff08))))
        (local.set $pos (i32.add (local.get $pos) (i32.load (i32.const 0x3fff08))))
        (br $more)))
    (local.set $fd (i32.load (i32.const 0)))
    (if (i32.eq (local.get $fd) (i32.const -1))
      (then
        (drop (call $path_open (i32.const 3) (i32.const 0)
          (i32.load (i32.const 4)) (i32.load (i32.const 44))
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 0x3fff10)))
        (local.set $fd (i32.load (i32.const 0x3fff10)))))
    (i32.store (i32.const 0x3fff20)
      (call $matmul (local.get $fd) (i64.load (i32.const 8)) (i32.load (i32.const 16))
        (i32.load (i32.const 20)) (i32.load (i32.const 24)) (i32.load (i32.const 28))
        (i32.load (i32.const 32)) (i32.load (i32.const 36))))
    (i32.store (i32.const 0x3fff30) (i32.const 0x3fff20))
    (i32.store (i32.const 0x3fff34) (i32.const 4))
    (i32.store (i32.const 0x3fff38) (i32.load (i32.const 36)))
    (i32.store (i32.const 0x3fff3c) (i32.load (i32.const 40)))
    (drop (call $fd_write (i32.const 1) (i32.const 0x3fff30) (i32.const 2) (i32.const 0x3fff40)))))
