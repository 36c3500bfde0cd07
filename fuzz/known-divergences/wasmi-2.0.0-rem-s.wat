;; Found by `fuzz/run differential 420 -seed=11 -max_len=4096` on 2026-12-03 (input
;; crash-7a4a2930..., module written with KILN_FUZZ_DUMP), export renamed to "f".
;; Called with three 0.0 arguments, the function returns: the i32.rem_s divides -129
;; by 1 (the select picks 1, the block changes neither local). Kiln (`kiln run --invoke f
;; FILE 0 0 0`) and Wasmtime 50.0.1 (the PyPI wheel) return; wasmi 2.0.0 (the newest
;; release) traps "integer divide by zero". Without the fuel check at the top (global 0),
;; wasmi returns as well.
(module
  (type (;0;) (func (param f64 f64 f64)))
  (func (;0;) (type 0) (param f64 f64 f64)
    (local i32 i32)
    global.get 0
    i32.eqz
    if  ;; label = @1
      unreachable
    end
    global.get 0
    i32.const 1
    i32.sub
    global.set 0
    i32.const -129
    i32.const 0
    local.set 3
    i32.const 1
    local.get 3
    local.get 3
    i32.eqz
    select
    local.set 3
    local.set 4
    block  ;; label = @1
      block  ;; label = @2
        local.get 4
        local.get 3
        local.set 3
        local.tee 4
        i32.const -2147483648
        i32.ne
        br_if 0 (;@2;)
        local.get 3
        i32.const -1
        i32.ne
        br_if 0 (;@2;)
        i32.const 1
        local.set 3
        br 1 (;@1;)
      end
    end
    local.get 4
    local.get 3
    i32.rem_s
    drop)
  (global (;0;) (mut i32) (i32.const 2000))
  (export "f" (func 0)))
