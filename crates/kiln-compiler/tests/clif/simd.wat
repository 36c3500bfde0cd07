;; SIMD: v128 stays I8X16 between operators (bitcasts around each), shift counts are
;; masked, pmin is a compare-and-select, and a splat load goes through the heap address.
(module
  (memory 1)
  (func (export "mix") (param v128 v128 i32) (result v128)
    (i32x4.shl
      (i32x4.add (local.get 0) (local.get 1))
      (local.get 2)))
  (func (export "pmin") (param v128 v128) (result v128)
    (f32x4.pmin (local.get 0) (local.get 1)))
  (func (export "splat") (param i32) (result v128)
    (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23
      (v128.load32_splat (local.get 0))
      (v128.const i32x4 1 2 3 4))))
