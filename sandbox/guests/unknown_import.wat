;; Imports a host function the sandbox does not offer.
(module
  (import "env" "launch_missiles" (func $evil (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (drop (call $evil))))
