;; Loads and stores, memory.size and memory.grow, and a mutable global, compiled with
;; the default (guard-page) bounds checks.
(module
  (memory 1)
  (global $g (mut i64) (i64.const 0))
  (func (param i32) (result i32)
    (i64.store32 offset=8 (local.get 0) (global.get $g))
    (global.set $g (i64.load8_s (local.get 0)))
    (drop (memory.grow (i32.const 1)))
    (i32.add (memory.size) (i32.load offset=4 (local.get 0)))))
