;; A call to an imported function, a direct call and a call_indirect, plus the
;; division and unreachable traps.
(module
  (type $t (func (param i32) (result i32)))
  (import "env" "f" (func $imp (type $t)))
  (table 1 funcref)
  (func $g (type $t)
    (i32.div_s (call $imp (local.get 0)) (local.get 0)))
  (func (param i32 i32) (result i32)
    (if (i32.eqz (local.get 1)) (then unreachable))
    (call_indirect (type $t) (call $g (local.get 0)) (local.get 1))))
