;; Tries to reach host files three ways; exits with the three errnos packed as
;; e1 * 10000 + e2 * 100 + e3 (expected: 76 not capable, 8 bad fd, 44 no entry).
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "../../../../etc/passwd")
  (data (i32.const 200) "etc/passwd")
  (data (i32.const 300) "passwd")
  (func (export "_start")
    (call $exit
      (i32.add
        (i32.add
          (i32.mul (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 22)
                     (i32.const 0) (i64.const 2) (i64.const 2) (i32.const 0) (i32.const 0))
                   (i32.const 10000))
          (i32.mul (call $open (i32.const 9) (i32.const 0) (i32.const 200) (i32.const 10)
                     (i32.const 0) (i64.const 2) (i64.const 2) (i32.const 0) (i32.const 0))
                   (i32.const 100)))
        (call $open (i32.const 3) (i32.const 0) (i32.const 300) (i32.const 6)
          (i32.const 0) (i64.const 2) (i64.const 2) (i32.const 0) (i32.const 0))))))
