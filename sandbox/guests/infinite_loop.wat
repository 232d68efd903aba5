;; Spins forever: only fuel or the deadline can stop it.
(module
  (memory (export "memory") 1)
  (func (export "_start") (loop (br 0))))
