//! Compiler settings that change generated code, and the memory reservation they imply.
//!
//! They are written into every artifact's header (as [`CodegenSettings::encode`]) and a
//! loader refuses an artifact whose settings differ from its engine's.

/// How much Cranelift optimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum OptLevel {
    /// No optimisation: fastest compilation.
    None,
    /// Optimise for speed (the default).
    #[default]
    Speed,
    /// Optimise for speed and code size.
    SpeedAndSize,
}

/// How generated code keeps linear-memory accesses in bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BoundsChecks {
    /// No explicit checks: each 32-bit memory reserves [`GUARD_RESERVATION`] bytes of address
    /// space, so every `u32` address plus `u32` offset lands in the reservation, and an access
    /// past the accessible part faults and becomes a trap.
    #[default]
    GuardPages,
    /// Compare every access against the memory's current length; needs no large reservation.
    Explicit,
}

/// Address space reserved for each 32-bit linear memory under [`BoundsChecks::GuardPages`]:
/// 4 GiB addressable plus 4 GiB of guard, so `base + u32 index + u32 offset + 16` never
/// leaves the reservation.
pub const GUARD_RESERVATION: u64 = (8 << 30) + (64 << 10);

/// A WebAssembly proposal that an engine can switch on or off.
///
/// Every proposal merged into WebAssembly 2.0 is on by default. Validation follows the set,
/// and the set is part of an artifact's settings, so an engine with another set refuses the
/// artifact instead of running code it would have rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Proposal {
    /// Sign-extension operators (`i32.extend8_s`, ...).
    SignExtension = 1 << 0,
    /// Non-trapping float-to-int conversions (`i32.trunc_sat_f32_s`, ...).
    SaturatingFloatToInt = 1 << 1,
    /// Multiple results and block parameters.
    MultiValue = 1 << 2,
    /// Importing and exporting mutable globals.
    MutableGlobal = 1 << 3,
    /// `memory.copy`, `memory.fill`, passive segments, ...
    BulkMemory = 1 << 4,
    /// `funcref`/`externref` values, multiple tables, table instructions.
    ReferenceTypes = 1 << 5,
    /// 128-bit fixed-width SIMD.
    Simd = 1 << 6,
    /// More than one linear memory (WebAssembly 3.0; off by default).
    MultiMemory = 1 << 7,
}

impl Proposal {
    /// Every proposal, in bit order.
    pub const ALL: [Proposal; 8] = [
        Proposal::SignExtension,
        Proposal::SaturatingFloatToInt,
        Proposal::MultiValue,
        Proposal::MutableGlobal,
        Proposal::BulkMemory,
        Proposal::ReferenceTypes,
        Proposal::Simd,
        Proposal::MultiMemory,
    ];
}

/// A set of enabled [`Proposal`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Proposals(u32);

impl Default for Proposals {
    /// Everything in WebAssembly 2.0.
    fn default() -> Self {
        Self::WASM2
    }
}

impl Proposals {
    /// WebAssembly 1.0 alone.
    pub const NONE: Proposals = Proposals(0);
    /// Every proposal merged into WebAssembly 2.0.
    pub const WASM2: Proposals = Proposals(0x7f);

    /// Whether `p` is enabled.
    pub const fn contains(self, p: Proposal) -> bool {
        self.0 & p as u32 != 0
    }

    /// Enables or disables `p`.
    pub fn set(&mut self, p: Proposal, on: bool) {
        if on {
            self.0 |= p as u32;
        } else {
            self.0 &= !(p as u32);
        }
    }

    /// The bit mask, as written into artifact settings.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

/// The settings that make generated code differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CodegenSettings {
    /// Optimisation level.
    pub opt_level: OptLevel,
    /// Bounds-check strategy.
    pub bounds_checks: BoundsChecks,
    /// Enabled WebAssembly proposals.
    pub proposals: Proposals,
    /// Whether every NaN that float arithmetic produces is replaced by the canonical NaN
    /// (positive sign, quiet bit only), so results are bit-identical on every CPU.
    pub canonicalize_nans: bool,
    /// Whether function entries and loop headers check the engine's epoch against the
    /// store's deadline and trap with `Interrupt` once it is reached.
    pub epoch_interruption: bool,
    /// Whether bounds-checked addresses (explicit memory checks, table indices) are also
    /// clamped with a branch-free select, so a mispredicted check cannot load out of
    /// bounds speculatively (Spectre v1). On by default.
    pub spectre_guards: bool,
}

impl Default for CodegenSettings {
    fn default() -> Self {
        CodegenSettings {
            opt_level: OptLevel::default(),
            bounds_checks: BoundsChecks::default(),
            proposals: Proposals::default(),
            canonicalize_nans: false,
            epoch_interruption: false,
            spectre_guards: true,
        }
    }
}

impl CodegenSettings {
    /// The canonical text written into the header's settings field.
    pub fn encode(&self) -> String {
        let opt = match self.opt_level {
            OptLevel::None => "none",
            OptLevel::Speed => "speed",
            OptLevel::SpeedAndSize => "speed_and_size",
        };
        let bounds = match self.bounds_checks {
            BoundsChecks::GuardPages => "guard_pages",
            BoundsChecks::Explicit => "explicit",
        };
        // Short keys: the header's settings field holds 128 bytes.
        format!(
            "opt_level={opt},bounds_checks={bounds},proposals={:#x},nans={},epoch={},\
             spectre={}",
            self.proposals.bits(),
            if self.canonicalize_nans {
                "canonical"
            } else {
                "native"
            },
            self.epoch_interruption,
            self.spectre_guards
        )
    }
}
