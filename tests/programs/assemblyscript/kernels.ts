// Kernels in AssemblyScript, a second toolchain (Binaryen-based) next to clang: explicit
// SIMD, bulk memory, funcref tables through first-class functions, and 64-bit math.
// Build command: see ../README.md.

const N: i32 = 1024;
let seed: u32 = 0x9e3779b9;

function nextRandom(): u32 {
  seed ^= seed << 13;
  seed ^= seed >> 17;
  seed ^= seed << 5;
  return seed;
}

// The buffer lives at a fixed place in linear memory so bulk operations can address it.
const BUF: usize = 65536;

function fill(rounds: i32): void {
  for (let i = 0; i < N * rounds; i++) store<u32>(BUF + (<usize>(i % N) << 2), nextRandom());
}

/// Sum of lane-wise max(a, b) over two arrays with explicit i32x4 operations, folded into a
/// single wrapping u32.
export function simdMaxSum(n: i32): u32 {
  seed = <u32>n * 2654435761;
  fill(2);
  let acc = i32x4.splat(0);
  for (let i = 0; i < N / 2; i += 4) {
    const a = v128.load(BUF + (<usize>i << 2));
    const b = v128.load(BUF + (<usize>(i + N / 2) << 2));
    acc = i32x4.add(acc, i32x4.max_s(a, b));
    acc = v128.xor(acc, i32x4.shl(b, 3));
  }
  return <u32>i32x4.extract_lane(acc, 0) + <u32>i32x4.extract_lane(acc, 1) * 3 +
    <u32>i32x4.extract_lane(acc, 2) * 5 + <u32>i32x4.extract_lane(acc, 3) * 7;
}

/// FNV-1a of the buffer after `memory.fill` and overlapping `memory.copy` moves.
export function bulkHash(n: i32): u32 {
  seed = <u32>n + 17;
  fill(1);
  memory.fill(BUF + 100, <u8>n, 200);
  memory.copy(BUF + 50, BUF, 1000);
  memory.copy(BUF, BUF + 30, 2000);
  let h: u32 = 2166136261;
  for (let i = 0; i < N * 4; i++) h = (h ^ load<u8>(BUF + <usize>i)) * 16777619;
  return h;
}

function double(x: i64): i64 { return x * 2; }
function addSeven(x: i64): i64 { return x + 7; }
function mix(x: i64): i64 { return x ^ (x >>> 5); }

/// Calls through a table of functions chosen at run time (call_indirect).
export function pipeline(n: i32): i64 {
  const steps: Array<(x: i64) => i64> = [double, addSeven, mix];
  let v: i64 = n;
  for (let i = 0; i < 30; i++) v = steps[(i * 7 + n) % 3](v);
  return v;
}

/// Float lanes: a saturating f32x4 -> i32x4 conversion of scaled square roots.
export function floatLanes(n: i32): i32 {
  let acc = i32x4.splat(0);
  for (let i = 0; i < 64; i++) {
    const x = f32x4(<f32>(i + n), <f32>(i * 3), <f32>(i * i), <f32>(n - i));
    const r = f32x4.mul(f32x4.sqrt(f32x4.abs(x)), f32x4.splat(1000.5));
    acc = i32x4.add(acc, i32x4.trunc_sat_f32x4_s(r));
  }
  return i32x4.extract_lane(acc, 0) ^ i32x4.extract_lane(acc, 1) ^
    i32x4.extract_lane(acc, 2) ^ i32x4.extract_lane(acc, 3);
}
