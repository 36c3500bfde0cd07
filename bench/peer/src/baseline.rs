//! Wasmtime restricted to Kiln's default CPU level, so that code generation can be compared
//! at one level (shared by the bench and the `disasm` aid).

/// Turns off the CPU features Wasmtime would use above Kiln's x86-64-v2 baseline (AVX, FMA,
/// BMI, LZCNT, AVX-512).
pub fn restrict_to_kiln_baseline(config: &mut wasmtime::Config) {
    for flag in [
        "has_avx",
        "has_avx2",
        "has_fma",
        "has_bmi1",
        "has_bmi2",
        "has_lzcnt",
        "has_avx512f",
        "has_avx512vl",
        "has_avx512dq",
        "has_avx512bitalg",
        "has_avx512vbmi",
    ] {
        // SAFETY: turning CPU features off only narrows the instructions Cranelift may use;
        // the host supports every instruction of the remaining set.
        unsafe { config.cranelift_flag_set(flag, "false") };
    }
}
