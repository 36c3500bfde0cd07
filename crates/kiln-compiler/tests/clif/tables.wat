;; Reference types and bulk memory: inline table access with its bounds check, ref.func
;; from the vmctx, and a builtin call whose status becomes a trap.
(module
  (memory 1)
  (table $t 2 funcref)
  (func $f (export "f") (param i32) (result funcref)
    (table.set $t (local.get 0) (ref.func $f))
    (table.get $t (local.get 0)))
  (func (export "copy") (param i32 i32 i32)
    (memory.copy (local.get 0) (local.get 1) (local.get 2))))
