//! WebAssembly types as Kiln records them: value types, function signatures and their
//! compile-time identities, limits of tables and memories, and constant expressions.

use crate::entity::{FuncIndex, GlobalIndex};

/// A WebAssembly value type.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
#[repr(u8)]
pub enum ValType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// 128-bit vector.
    V128,
    /// Nullable function reference.
    FuncRef,
    /// Nullable host reference.
    ExternRef,
}

impl ValType {
    /// A stable small code used in signature identities.
    pub const fn code(self) -> u64 {
        match self {
            ValType::I32 => 1,
            ValType::I64 => 2,
            ValType::F32 => 3,
            ValType::F64 => 4,
            ValType::V128 => 5,
            ValType::FuncRef => 6,
            ValType::ExternRef => 7,
        }
    }
}

impl ArchivedValType {
    /// The type in native form.
    pub fn native(&self) -> ValType {
        match self {
            ArchivedValType::I32 => ValType::I32,
            ArchivedValType::I64 => ValType::I64,
            ArchivedValType::F32 => ValType::F32,
            ArchivedValType::F64 => ValType::F64,
            ArchivedValType::V128 => ValType::V128,
            ArchivedValType::FuncRef => ValType::FuncRef,
            ArchivedValType::ExternRef => ValType::ExternRef,
        }
    }
}

impl core::fmt::Display for ValType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
            ValType::V128 => "v128",
            ValType::FuncRef => "funcref",
            ValType::ExternRef => "externref",
        };
        f.write_str(s)
    }
}

/// The identity of a function signature, fixed at compile time.
///
/// `call_indirect` compares this value, so it must be the same for equal signatures in every
/// module and different for different ones. Signatures with few enough values are encoded
/// injectively (3 bits a value type plus the counts); longer ones use a 63-bit xxh3 hash of
/// the canonical encoding with the top bit set, so the two forms never meet. A hash can
/// collide (and one can be searched for offline), so wherever a hashed id matches, the
/// signatures themselves are compared as well ([`SignatureId::is_hashed`]).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub struct SignatureId(pub u64);

impl SignatureId {
    /// Whether this id is a hash (of a signature with more than 17 values) rather than the
    /// injective encoding: equal hashed ids do not prove equal signatures, so the signature
    /// itself has to be compared too.
    pub const fn is_hashed(self) -> bool {
        self.0 & HASHED_TAG != 0
    }
}

/// The top bit marks hashed signature ids.
const HASHED_TAG: u64 = 1 << 63;

static COLLIDING_HASHES: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Makes every hashed signature id the same from now on in this process, as if an attacker
/// had found a hash collision between any two long signatures, so tests can show that no
/// check relies on ids of long signatures being unique.
#[doc(hidden)]
pub fn make_hashed_signature_ids_collide_for_testing() {
    COLLIDING_HASHES.store(true, core::sync::atomic::Ordering::Relaxed);
}

impl ArchivedSignatureId {
    /// The identity in native form.
    pub fn native(&self) -> SignatureId {
        SignatureId(self.0.to_native())
    }
}

/// A function signature.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct FuncType {
    /// Parameter types.
    pub params: Vec<ValType>,
    /// Result types.
    pub results: Vec<ValType>,
}

impl FuncType {
    /// A signature from its parameters and results.
    pub fn new(
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
    ) -> Self {
        Self {
            params: params.into_iter().collect(),
            results: results.into_iter().collect(),
        }
    }

    /// The compile-time identity of this signature.
    pub fn signature_id(&self) -> SignatureId {
        signature_id(
            self.params.iter().copied(),
            self.results.iter().copied(),
            self.params.len(),
            self.results.len(),
        )
    }
}

impl ArchivedFuncType {
    /// The compile-time identity of this signature.
    pub fn signature_id(&self) -> SignatureId {
        signature_id(
            self.params.iter().map(ArchivedValType::native),
            self.results.iter().map(ArchivedValType::native),
            self.params.len(),
            self.results.len(),
        )
    }

    /// Whether this is exactly the signature `ty` (compared value by value).
    pub fn matches(&self, ty: &FuncType) -> bool {
        self.params.len() == ty.params.len()
            && self.results.len() == ty.results.len()
            && self
                .params
                .iter()
                .zip(&ty.params)
                .all(|(a, b)| a.native() == *b)
            && self
                .results
                .iter()
                .zip(&ty.results)
                .all(|(a, b)| a.native() == *b)
    }

    /// The signature in native form.
    pub fn to_native(&self) -> FuncType {
        FuncType::new(
            self.params.iter().map(ArchivedValType::native),
            self.results.iter().map(ArchivedValType::native),
        )
    }
}

impl core::fmt::Display for FuncType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "(func")?;
        if !self.params.is_empty() {
            write!(f, " (param")?;
            for p in &self.params {
                write!(f, " {p}")?;
            }
            write!(f, ")")?;
        }
        if !self.results.is_empty() {
            write!(f, " (result")?;
            for r in &self.results {
                write!(f, " {r}")?;
            }
            write!(f, ")")?;
        }
        write!(f, ")")
    }
}

fn signature_id(
    params: impl Iterator<Item = ValType>,
    results: impl Iterator<Item = ValType>,
    num_params: usize,
    num_results: usize,
) -> SignatureId {
    // Injective form: bits 0..5 param count, 5..10 result count, then 3 bits per value.
    // 10 + 3 * 17 = 61 bits, so up to 17 values fit below the hash tag bit.
    if num_params < 32 && num_results < 32 && num_params + num_results <= 17 {
        let mut id = num_params as u64 | ((num_results as u64) << 5);
        let mut shift = 10;
        for ty in params.chain(results) {
            id |= ty.code() << shift;
            shift += 3;
        }
        return SignatureId(id);
    }
    let mut bytes = Vec::with_capacity(8 + num_params + num_results);
    bytes.extend_from_slice(&(num_params as u32).to_le_bytes());
    bytes.extend_from_slice(&(num_results as u32).to_le_bytes());
    bytes.extend(params.chain(results).map(|t| t.code() as u8));
    let hash = if COLLIDING_HASHES.load(core::sync::atomic::Ordering::Relaxed) {
        0
    } else {
        twox_hash::XxHash3_64::oneshot(&bytes)
    };
    SignatureId(hash | HASHED_TAG)
}

/// The kind of reference a table holds.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
pub enum RefType {
    /// Function references.
    FuncRef,
    /// Host references.
    ExternRef,
}

/// A table's element type and limits (in elements).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct TableType {
    /// Element type.
    pub element: RefType,
    /// Initial size.
    pub min: u32,
    /// Maximum size, if any.
    pub max: Option<u32>,
}

/// A linear memory's limits, in 64 KiB pages.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct MemoryType {
    /// Initial size in pages.
    pub min: u64,
    /// Maximum size in pages, if any.
    pub max: Option<u64>,
    /// Whether the memory is indexed by 64-bit addresses.
    pub memory64: bool,
    /// Whether the memory may be shared between threads.
    pub shared: bool,
}

/// Size of a WebAssembly page in bytes.
pub const WASM_PAGE_SIZE: u64 = 65536;

/// A global's value type and mutability.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct GlobalType {
    /// Value type.
    pub content: ValType,
    /// Whether `global.set` may change it.
    pub mutable: bool,
}

/// A constant expression: a global's initial value, a segment's offset or an element item.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub enum ConstExpr {
    /// `i32.const`.
    I32(i32),
    /// `i64.const`.
    I64(i64),
    /// `f32.const`, as raw bits.
    F32(u32),
    /// `f64.const`, as raw bits.
    F64(u64),
    /// `v128.const`, as raw bits.
    V128(u128),
    /// `global.get` of an imported global.
    GlobalGet(GlobalIndex),
    /// `ref.null`.
    RefNull(RefType),
    /// `ref.func`.
    RefFunc(FuncIndex),
}
