//! Script values: turning `(i32.const ..)` arguments into [`Val`]s and checking results
//! against expected patterns (floats by bits, NaN patterns, references).

use kiln::{ExternRef, Store, Val};
use wast::core::{AbstractHeapType, HeapType, NanPattern, V128Pattern, WastArgCore, WastRetCore};
use wast::{WastArg, WastRet};

/// Converts a script argument into a value, or says why it cannot. `ref.extern N` becomes
/// a host object holding `N` in `store`.
pub fn arg_to_val(arg: &WastArg<'_>, store: &mut Store<()>) -> Result<Val, String> {
    let WastArg::Core(core) = arg else {
        return Err("component-model argument".to_owned());
    };
    Ok(match core {
        WastArgCore::I32(v) => Val::I32(*v),
        WastArgCore::I64(v) => Val::I64(*v),
        WastArgCore::F32(v) => Val::F32(v.bits),
        WastArgCore::F64(v) => Val::F64(v.bits),
        WastArgCore::RefNull(heap) => match heap_kind(heap) {
            Some(RefKind::Func) => Val::FuncRef(None),
            Some(RefKind::Extern) => Val::ExternRef(None),
            None => return Err(format!("reference type {heap:?}")),
        },
        WastArgCore::RefExtern(n) => Val::ExternRef(Some(ExternRef::new(store, *n))),
        WastArgCore::V128(v) => Val::V128(u128::from_le_bytes(v.to_le_bytes())),
        WastArgCore::RefHost(_) => return Err("ref.host argument".to_owned()),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RefKind {
    Func,
    Extern,
}

fn heap_kind(heap: &HeapType<'_>) -> Option<RefKind> {
    match heap {
        HeapType::Abstract {
            shared: false,
            ty: AbstractHeapType::Func,
        } => Some(RefKind::Func),
        HeapType::Abstract {
            shared: false,
            ty: AbstractHeapType::Extern,
        } => Some(RefKind::Extern),
        _ => None,
    }
}

/// The number a script's `ref.extern N` put into a host object.
fn extern_payload(r: &ExternRef, store: &Store<()>) -> Option<u32> {
    r.data(store).ok()?.downcast_ref::<u32>().copied()
}

/// Whether `val` matches the expected result `ret`; `Err` if the pattern is unsupported.
pub fn matches(ret: &WastRet<'_>, val: &Val, store: &Store<()>) -> Result<bool, String> {
    let WastRet::Core(core) = ret else {
        return Err("component-model result".to_owned());
    };
    matches_core(core, val, store)
}

fn matches_core(ret: &WastRetCore<'_>, val: &Val, store: &Store<()>) -> Result<bool, String> {
    Ok(match (ret, val) {
        (WastRetCore::I32(e), Val::I32(a)) => e == a,
        (WastRetCore::I64(e), Val::I64(a)) => e == a,
        (WastRetCore::F32(p), Val::F32(a)) => f32_matches(p, *a),
        (WastRetCore::F64(p), Val::F64(a)) => f64_matches(p, *a),
        (WastRetCore::V128(p), Val::V128(a)) => v128_matches(p, *a),
        (WastRetCore::RefNull(heap), Val::FuncRef(r)) => {
            r.is_none()
                && heap
                    .as_ref()
                    .is_none_or(|h| heap_kind(h) == Some(RefKind::Func))
        }
        (WastRetCore::RefNull(heap), Val::ExternRef(r)) => {
            r.is_none()
                && heap
                    .as_ref()
                    .is_none_or(|h| heap_kind(h) == Some(RefKind::Extern))
        }
        (WastRetCore::RefExtern(e), Val::ExternRef(a)) => match (e, a) {
            (None, a) => a.is_some(),
            (Some(e), Some(a)) => extern_payload(a, store) == Some(*e),
            (Some(_), None) => false,
        },
        (WastRetCore::RefFunc(_), Val::FuncRef(a)) => a.is_some(),
        (WastRetCore::Either(options), val) => {
            for option in options {
                if matches_core(option, val, store)? {
                    return Ok(true);
                }
            }
            false
        }
        (
            WastRetCore::RefHost(_)
            | WastRetCore::RefAny
            | WastRetCore::RefEq
            | WastRetCore::RefArray
            | WastRetCore::RefStruct
            | WastRetCore::RefI31
            | WastRetCore::RefI31Shared,
            _,
        ) => return Err(format!("result pattern {ret:?}")),
        _ => false,
    })
}

fn f32_matches(p: &NanPattern<wast::token::F32>, a: u32) -> bool {
    match p {
        NanPattern::CanonicalNan => a & 0x7fff_ffff == 0x7fc0_0000,
        NanPattern::ArithmeticNan => a & 0x7fc0_0000 == 0x7fc0_0000,
        NanPattern::Value(e) => e.bits == a,
    }
}

fn f64_matches(p: &NanPattern<wast::token::F64>, a: u64) -> bool {
    match p {
        NanPattern::CanonicalNan => a & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000,
        NanPattern::ArithmeticNan => a & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000,
        NanPattern::Value(e) => e.bits == a,
    }
}

/// Lane by lane; float lanes follow the scalar NaN rules.
fn v128_matches(p: &V128Pattern, a: u128) -> bool {
    let lanes = |bits: u32| (0..128 / bits).map(move |i| (a >> (i * bits)) & ((1 << bits) - 1));
    match p {
        V128Pattern::I8x16(e) => lanes(8).zip(e).all(|(a, e)| a as u8 == *e as u8),
        V128Pattern::I16x8(e) => lanes(16).zip(e).all(|(a, e)| a as u16 == *e as u16),
        V128Pattern::I32x4(e) => lanes(32).zip(e).all(|(a, e)| a as u32 == *e as u32),
        V128Pattern::I64x2(e) => lanes(64).zip(e).all(|(a, e)| a as u64 == *e as u64),
        V128Pattern::F32x4(e) => lanes(32).zip(e).all(|(a, e)| f32_matches(e, a as u32)),
        V128Pattern::F64x2(e) => lanes(64).zip(e).all(|(a, e)| f64_matches(e, a as u64)),
    }
}

/// Renders a value as the spec writes it, e.g. `i32:42` or `f32:0x7fc00000`.
pub fn render_val(val: &Val, store: &Store<()>) -> String {
    match val {
        Val::I32(v) => format!("i32:{v}"),
        Val::I64(v) => format!("i64:{v}"),
        Val::F32(b) => format!("f32:{} (0x{b:08x})", f32::from_bits(*b)),
        Val::F64(b) => format!("f64:{} (0x{b:016x})", f64::from_bits(*b)),
        Val::V128(v) => format!("v128:0x{v:032x}"),
        Val::FuncRef(None) => "ref.null func".to_owned(),
        Val::FuncRef(Some(_)) => "ref.func".to_owned(),
        Val::ExternRef(None) => "ref.null extern".to_owned(),
        Val::ExternRef(Some(r)) => match extern_payload(r, store) {
            Some(n) => format!("ref.extern {n}"),
            None => "ref.extern (foreign object)".to_owned(),
        },
    }
}

/// Renders an expected result pattern.
pub fn render_ret(ret: &WastRet<'_>) -> String {
    let WastRet::Core(core) = ret else {
        return "<component value>".to_owned();
    };
    render_core(core)
}

fn render_core(ret: &WastRetCore<'_>) -> String {
    fn nan<T>(p: &NanPattern<T>, ty: &str, bits: impl Fn(&T) -> String) -> String {
        match p {
            NanPattern::CanonicalNan => format!("{ty}:nan:canonical"),
            NanPattern::ArithmeticNan => format!("{ty}:nan:arithmetic"),
            NanPattern::Value(v) => format!("{ty}:{}", bits(v)),
        }
    }
    match ret {
        WastRetCore::I32(v) => format!("i32:{v}"),
        WastRetCore::I64(v) => format!("i64:{v}"),
        WastRetCore::F32(p) => nan(p, "f32", |v| {
            format!("{} (0x{:08x})", f32::from_bits(v.bits), v.bits)
        }),
        WastRetCore::F64(p) => nan(p, "f64", |v| {
            format!("{} (0x{:016x})", f64::from_bits(v.bits), v.bits)
        }),
        WastRetCore::V128(p) => format!("v128:{p:?}"),
        WastRetCore::RefNull(_) => "ref.null".to_owned(),
        WastRetCore::RefExtern(Some(n)) => format!("ref.extern {n}"),
        WastRetCore::RefExtern(None) => "ref.extern".to_owned(),
        WastRetCore::RefFunc(_) => "ref.func".to_owned(),
        WastRetCore::Either(options) => {
            let all: Vec<String> = options.iter().map(render_core).collect();
            format!("either({})", all.join(" | "))
        }
        other => format!("{other:?}"),
    }
}

/// Renders a list of items as `[a, b]`.
pub fn render_list<I: IntoIterator<Item = String>>(items: I) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(", "))
}

/// A zero value of each result slot, to be overwritten by a call.
pub fn placeholder() -> Val {
    Val::I32(0)
}
