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

/// The settings that make generated code differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct CodegenSettings {
    /// Optimisation level.
    pub opt_level: OptLevel,
    /// Bounds-check strategy.
    pub bounds_checks: BoundsChecks,
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
        format!("opt_level={opt},bounds_checks={bounds}")
    }
}
