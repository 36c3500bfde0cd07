//! What a call or an instantiation reports when it fails: traps (with their backtrace),
//! host errors, resource errors.

use kiln_artifact::TrapCode;

use crate::traphandlers::HostError;

/// One wasm frame of a trap's backtrace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// The function's index in its module.
    pub func_index: u32,
    /// Its name from the name section, if it has one.
    pub func_name: Option<String>,
    /// The wasm offset of the instruction executing in this frame (the trapping instruction
    /// in the innermost frame, the call in the others), if known.
    pub wasm_offset: Option<u32>,
}

/// A trap: why and where wasm stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap {
    /// The trap code.
    pub code: TrapCode,
    /// The function it happened in, if known.
    pub func_index: Option<u32>,
    /// That function's name, if it has one.
    pub func_name: Option<String>,
    /// The wasm instruction's offset in the module's bytes, if known.
    pub wasm_offset: Option<u32>,
    /// The wasm frames from the trapping one outwards (up to 33), for this entry from the
    /// host; empty when the trap did not happen in wasm code.
    pub backtrace: Vec<FrameInfo>,
}

impl Trap {
    /// A trap with only a code (e.g. raised during instantiation).
    pub fn new(code: TrapCode) -> Trap {
        Trap {
            code,
            func_index: None,
            func_name: None,
            wasm_offset: None,
            backtrace: Vec::new(),
        }
    }
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// Wasm trapped.
    Trap(Trap),
    /// A host function returned an error.
    Host(HostError),
}

/// Why instantiation failed.
#[derive(Debug)]
pub enum InstantiateError {
    /// A resource could not be allocated.
    Resource(String),
    /// A segment did not fit, or the start function trapped.
    Trap(Trap),
    /// A host function called by the start function failed.
    Host(HostError),
}
