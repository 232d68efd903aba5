;; Does nothing: the cost of instantiating and running a job.
(module
  (memory (export "memory") 1)
  (func (export "_start")))
