;; Blocks with results, a loop with a parameter, if/else and a br_table whose targets
;; take a value (reached through intermediate blocks).
(module
  (func (param i32) (result i32)
    (block $out (result i32)
      (block $a (result i32)
        (i32.const 7)
        (br_table $a $out (local.get 0)))
      (i32.const 1)
      (i32.add)))
  (func (param i32) (result i32)
    (local.get 0)
    (loop (param i32) (result i32)
      (i32.const 1)
      (i32.sub)
      (local.tee 0)
      (br_if 0 (local.get 0)))
    (if (result i32) (then (i32.const 1)) (else (i32.const 2)))))
