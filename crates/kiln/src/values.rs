//! Values and their conversions to the runtime's raw slots.

use kiln_artifact::ValType;
use kiln_runtime::ValRaw;

use crate::store::{RStore, store_id};
use crate::{Error, ExternRef, Func, Result};

/// A WebAssembly value. Floats are kept as raw bits so NaN payloads survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Val {
    /// An `i32`.
    I32(i32),
    /// An `i64`.
    I64(i64),
    /// An `f32`, as bits.
    F32(u32),
    /// An `f64`, as bits.
    F64(u64),
    /// A `v128`, as its 16 bytes read little-endian (lane 0 in the low bits).
    V128(u128),
    /// A `funcref` (`None` = null).
    FuncRef(Option<Func>),
    /// An `externref` (`None` = null).
    ExternRef(Option<ExternRef>),
}

impl Val {
    /// The value's type.
    pub fn ty(&self) -> ValType {
        match self {
            Val::I32(_) => ValType::I32,
            Val::I64(_) => ValType::I64,
            Val::F32(_) => ValType::F32,
            Val::F64(_) => ValType::F64,
            Val::V128(_) => ValType::V128,
            Val::FuncRef(_) => ValType::FuncRef,
            Val::ExternRef(_) => ValType::ExternRef,
        }
    }

    /// The `i32`, if this is one.
    pub fn i32(&self) -> Option<i32> {
        match self {
            Val::I32(v) => Some(*v),
            _ => None,
        }
    }

    /// The `i64`, if this is one.
    pub fn i64(&self) -> Option<i64> {
        match self {
            Val::I64(v) => Some(*v),
            _ => None,
        }
    }

    /// The `f32`, if this is one.
    pub fn f32(&self) -> Option<f32> {
        match self {
            Val::F32(v) => Some(f32::from_bits(*v)),
            _ => None,
        }
    }

    /// The `f64`, if this is one.
    pub fn f64(&self) -> Option<f64> {
        match self {
            Val::F64(v) => Some(f64::from_bits(*v)),
            _ => None,
        }
    }

    /// The `v128`, if this is one.
    pub fn v128(&self) -> Option<u128> {
        match self {
            Val::V128(v) => Some(*v),
            _ => None,
        }
    }

    /// The default (zero or null) value of `ty`.
    pub fn default_for(ty: ValType) -> Val {
        match ty {
            ValType::I32 => Val::I32(0),
            ValType::I64 => Val::I64(0),
            ValType::F32 => Val::F32(0),
            ValType::F64 => Val::F64(0),
            ValType::FuncRef => Val::FuncRef(None),
            ValType::ExternRef => Val::ExternRef(None),
            ValType::V128 => Val::V128(0),
        }
    }

    pub(crate) fn to_raw<T>(self, store: &mut RStore<T>) -> Result<ValRaw> {
        Ok(match self {
            Val::I32(v) => ValRaw::from_u32(v as u32),
            Val::I64(v) => ValRaw::from_u64(v as u64),
            Val::F32(v) => ValRaw::from_u32(v),
            Val::F64(v) => ValRaw::from_u64(v),
            Val::V128(v) => ValRaw::from_u128(v),
            Val::FuncRef(None) | Val::ExternRef(None) => ValRaw::from_u64(0),
            Val::FuncRef(Some(f)) => {
                f.check_store(store)?;
                ValRaw::from_u64(store.func_ref(f.id).map_err(Error::Type)? as u64)
            }
            Val::ExternRef(Some(x)) => ValRaw::from_u64(x.raw(store_id(store))?),
        })
    }

    pub(crate) fn from_raw<T>(store: &RStore<T>, raw: ValRaw, ty: ValType) -> Val {
        match ty {
            ValType::I32 => Val::I32(raw.get_u32() as i32),
            ValType::I64 => Val::I64(raw.get_u64() as i64),
            ValType::F32 => Val::F32(raw.get_u32()),
            ValType::F64 => Val::F64(raw.get_u64()),
            ValType::FuncRef => {
                let ptr = raw.get_u64() as usize as *const kiln_runtime::VMFuncRef;
                Val::FuncRef(store.func_from_ref(ptr).map(|id| Func {
                    store: store_id(store),
                    id,
                }))
            }
            ValType::ExternRef => {
                Val::ExternRef(ExternRef::from_raw(store_id(store), raw.get_u64()))
            }
            ValType::V128 => Val::V128(raw.get_u128()),
        }
    }
}

impl From<i32> for Val {
    fn from(v: i32) -> Val {
        Val::I32(v)
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::I64(v)
    }
}
impl From<f32> for Val {
    fn from(v: f32) -> Val {
        Val::F32(v.to_bits())
    }
}
impl From<f64> for Val {
    fn from(v: f64) -> Val {
        Val::F64(v.to_bits())
    }
}
impl From<u128> for Val {
    fn from(v: u128) -> Val {
        Val::V128(v)
    }
}
impl From<ExternRef> for Val {
    fn from(r: ExternRef) -> Val {
        Val::ExternRef(Some(r))
    }
}
impl From<Func> for Val {
    fn from(f: Func) -> Val {
        Val::FuncRef(Some(f))
    }
}

/// The typed-call traits are sealed: their raw conversions write the bits that wasm reads,
/// so an implementation outside Kiln could hand wasm a forged reference.
mod sealed {
    pub trait Scalar {}
    pub trait Params {}
    pub trait Results {}
}

/// A Rust type that is a WebAssembly scalar: `i32`, `i64`, `f32`, `f64`. Sealed.
pub trait WasmTy: sealed::Scalar + Copy + Send + Sync + 'static {
    /// Its WebAssembly type.
    fn valtype() -> ValType;
    #[doc(hidden)]
    fn to_raw(self) -> ValRaw;
    #[doc(hidden)]
    fn from_raw(raw: ValRaw) -> Self;
}

impl sealed::Scalar for i32 {}
impl WasmTy for i32 {
    fn valtype() -> ValType {
        ValType::I32
    }
    fn to_raw(self) -> ValRaw {
        ValRaw::from_u32(self as u32)
    }
    fn from_raw(raw: ValRaw) -> Self {
        raw.get_u32() as i32
    }
}
impl sealed::Scalar for i64 {}
impl WasmTy for i64 {
    fn valtype() -> ValType {
        ValType::I64
    }
    fn to_raw(self) -> ValRaw {
        ValRaw::from_u64(self as u64)
    }
    fn from_raw(raw: ValRaw) -> Self {
        raw.get_u64() as i64
    }
}
impl sealed::Scalar for u32 {}
impl WasmTy for u32 {
    fn valtype() -> ValType {
        ValType::I32
    }
    fn to_raw(self) -> ValRaw {
        ValRaw::from_u32(self)
    }
    fn from_raw(raw: ValRaw) -> Self {
        raw.get_u32()
    }
}
impl sealed::Scalar for u64 {}
impl WasmTy for u64 {
    fn valtype() -> ValType {
        ValType::I64
    }
    fn to_raw(self) -> ValRaw {
        ValRaw::from_u64(self)
    }
    fn from_raw(raw: ValRaw) -> Self {
        raw.get_u64()
    }
}
impl sealed::Scalar for f32 {}
impl WasmTy for f32 {
    fn valtype() -> ValType {
        ValType::F32
    }
    fn to_raw(self) -> ValRaw {
        ValRaw::from_u32(self.to_bits())
    }
    fn from_raw(raw: ValRaw) -> Self {
        f32::from_bits(raw.get_u32())
    }
}
impl sealed::Scalar for f64 {}
impl WasmTy for f64 {
    fn valtype() -> ValType {
        ValType::F64
    }
    fn to_raw(self) -> ValRaw {
        ValRaw::from_u64(self.to_bits())
    }
    fn from_raw(raw: ValRaw) -> Self {
        f64::from_bits(raw.get_u64())
    }
}

/// Parameter lists of typed calls: `()`, a scalar, or a tuple of up to 8 scalars. Sealed.
pub trait WasmParams: sealed::Params + Send {
    /// The parameter types.
    fn valtypes() -> Vec<ValType>;
    #[doc(hidden)]
    fn store_raw(self, raw: &mut [ValRaw]);
}

/// Result lists of typed calls: `()`, a scalar, or a tuple of up to 8 scalars. Sealed.
pub trait WasmResults: sealed::Results + Sized {
    /// The result types.
    fn valtypes() -> Vec<ValType>;
    #[doc(hidden)]
    fn load_raw(raw: &[ValRaw]) -> Self;
    #[doc(hidden)]
    fn store_raw(self, raw: &mut [ValRaw]);
}

impl<A: WasmTy> sealed::Params for A {}
impl<A: WasmTy> sealed::Results for A {}
impl<A: WasmTy> WasmParams for A {
    fn valtypes() -> Vec<ValType> {
        vec![A::valtype()]
    }
    fn store_raw(self, raw: &mut [ValRaw]) {
        raw[0] = self.to_raw();
    }
}
impl<A: WasmTy> WasmResults for A {
    fn valtypes() -> Vec<ValType> {
        vec![A::valtype()]
    }
    fn load_raw(raw: &[ValRaw]) -> Self {
        A::from_raw(raw[0])
    }
    fn store_raw(self, raw: &mut [ValRaw]) {
        raw[0] = self.to_raw();
    }
}

macro_rules! tuples {
    ($($t:ident $i:tt),*) => {
        impl<$($t: WasmTy),*> sealed::Params for ($($t,)*) {}
        impl<$($t: WasmTy),*> sealed::Results for ($($t,)*) {}
        impl<$($t: WasmTy),*> WasmParams for ($($t,)*) {
            fn valtypes() -> Vec<ValType> {
                vec![$($t::valtype()),*]
            }
            #[allow(unused_variables)]
            fn store_raw(self, raw: &mut [ValRaw]) {
                $(raw[$i] = self.$i.to_raw();)*
            }
        }
        impl<$($t: WasmTy),*> WasmResults for ($($t,)*) {
            fn valtypes() -> Vec<ValType> {
                vec![$($t::valtype()),*]
            }
            #[allow(unused_variables, clippy::unused_unit)]
            fn load_raw(raw: &[ValRaw]) -> Self {
                ($($t::from_raw(raw[$i]),)*)
            }
            #[allow(unused_variables)]
            fn store_raw(self, raw: &mut [ValRaw]) {
                $(raw[$i] = self.$i.to_raw();)*
            }
        }
    };
}
tuples!();
tuples!(A 0);
tuples!(A 0, B 1);
tuples!(A 0, B 1, C 2);
tuples!(A 0, B 1, C 2, D 3);
tuples!(A 0, B 1, C 2, D 3, E 4);
tuples!(A 0, B 1, C 2, D 3, E 4, F 5);
tuples!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuples!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

/// What a host closure may return: `R` or `Result<R>` with `R: WasmResults`.
pub trait WasmRet {
    /// The successful results.
    type Results: WasmResults;
    #[doc(hidden)]
    fn into_result(self) -> Result<Self::Results>;
}

impl<R: WasmResults> WasmRet for R {
    type Results = R;
    fn into_result(self) -> Result<R> {
        Ok(self)
    }
}
impl<R: WasmResults> WasmRet for Result<R, Error> {
    type Results = R;
    fn into_result(self) -> Result<R> {
        self
    }
}
