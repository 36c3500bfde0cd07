//! Trap codes and the records that map code offsets to them.

/// Why WebAssembly execution stopped abnormally.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
#[repr(u8)]
pub enum TrapCode {
    /// The call stack grew past the configured limit.
    StackOverflow = 0,
    /// A load or store outside a linear memory.
    MemoryOutOfBounds = 1,
    /// A misaligned atomic access.
    HeapMisaligned = 2,
    /// A table access outside the table.
    TableOutOfBounds = 3,
    /// `call_indirect` reached an element outside the table.
    IndirectCallOutOfBounds = 4,
    /// `call_indirect` through a null entry.
    IndirectCallToNull = 5,
    /// `call_indirect` to a function of another signature.
    BadSignature = 6,
    /// Signed integer overflow (`i32.div_s` of `MIN` by `-1`, or a float-to-int overflow).
    IntegerOverflow = 7,
    /// Integer division or remainder by zero.
    IntegerDivisionByZero = 8,
    /// Float-to-int conversion of NaN.
    BadConversionToInteger = 9,
    /// The `unreachable` instruction.
    UnreachableCodeReached = 10,
    /// Access through a null reference.
    NullReference = 11,
    /// Execution was interrupted by the host.
    Interrupt = 12,
}

impl TrapCode {
    /// All trap codes, in code order.
    pub const ALL: [TrapCode; 13] = [
        TrapCode::StackOverflow,
        TrapCode::MemoryOutOfBounds,
        TrapCode::HeapMisaligned,
        TrapCode::TableOutOfBounds,
        TrapCode::IndirectCallOutOfBounds,
        TrapCode::IndirectCallToNull,
        TrapCode::BadSignature,
        TrapCode::IntegerOverflow,
        TrapCode::IntegerDivisionByZero,
        TrapCode::BadConversionToInteger,
        TrapCode::UnreachableCodeReached,
        TrapCode::NullReference,
        TrapCode::Interrupt,
    ];

    /// The trap with code `byte`, if there is one.
    pub fn from_u8(byte: u8) -> Option<TrapCode> {
        Self::ALL.get(usize::from(byte)).copied()
    }

    /// The wording used by the WebAssembly specification's tests.
    pub fn message(self) -> &'static str {
        match self {
            TrapCode::StackOverflow => "call stack exhausted",
            TrapCode::MemoryOutOfBounds => "out of bounds memory access",
            TrapCode::HeapMisaligned => "unaligned atomic",
            TrapCode::TableOutOfBounds => "out of bounds table access",
            TrapCode::IndirectCallOutOfBounds => "undefined element",
            TrapCode::IndirectCallToNull => "uninitialized element",
            TrapCode::BadSignature => "indirect call type mismatch",
            TrapCode::IntegerOverflow => "integer overflow",
            TrapCode::IntegerDivisionByZero => "integer divide by zero",
            TrapCode::BadConversionToInteger => "invalid conversion to integer",
            TrapCode::UnreachableCodeReached => "unreachable",
            TrapCode::NullReference => "null reference",
            TrapCode::Interrupt => "interrupt",
        }
    }
}

impl ArchivedTrapCode {
    /// The code in native form.
    pub fn native(&self) -> TrapCode {
        TrapCode::from_u8(*self as u8).expect("archived trap codes are valid by construction")
    }
}

impl core::fmt::Display for TrapCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

/// One instruction in the text section that may trap, and why.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct TrapRecord {
    /// Offset of the trapping instruction from the start of the text section.
    pub code_offset: u32,
    /// Offset of the WebAssembly instruction in the module's bytes (`u32::MAX` if unknown).
    pub wasm_offset: u32,
    /// Why it traps.
    pub code: TrapCode,
}
