//! CPU features: the levels a module can be compiled for, the feature names an artifact
//! header lists, and how this process's CPU is asked about each name.
//!
//! One table of names serves the compiler (which features a level enables, and what `native`
//! finds on this machine) and the loader (which features of an artifact this CPU lacks), so
//! that an artifact compiled for `native` always loads on the machine that compiled it.
//! Names are Cranelift's ISA flags without their `has_` prefix (`avx2`, `lse`).

use std::fmt;
use std::str::FromStr;

/// Which CPU features generated code may use. Recorded in the artifact header; a load on a
/// CPU that lacks any of them is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum CpuLevel {
    /// The portable baseline (the default): x86-64-v2 on x86_64 (SSE3, SSSE3, SSE4.1,
    /// SSE4.2, POPCNT), the architectural baseline on aarch64. An artifact runs on every
    /// CPU of its architecture and is the same wherever it was compiled.
    #[default]
    Baseline,
    /// x86-64-v3: the baseline plus AVX, AVX2, BMI1, BMI2, FMA and LZCNT (Intel Haswell,
    /// AMD Zen and later). x86_64 only.
    X86_64V3,
    /// x86-64-v4: v3 plus AVX-512 F, VL and DQ. x86_64 only.
    X86_64V4,
    /// Every feature of the CPU this process runs on that Kiln knows. Host target only: the
    /// artifact may not run on another machine.
    Native,
    /// The baseline plus the named features (see [`known_features`]).
    Features(Vec<String>),
}

/// x86-64-v2 minus what Cranelift does not use.
const X86_64_BASELINE: &[&str] = &["popcnt", "sse3", "sse41", "sse42", "ssse3"];
const X86_64_V3: &[&str] = &["avx", "avx2", "bmi1", "bmi2", "fma", "lzcnt"];
const X86_64_V4: &[&str] = &["avx512dq", "avx512f", "avx512vl"];

/// Why a CPU level does not apply to a target.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CpuLevelError {
    /// An x86_64 level for another architecture.
    #[error("CPU level `{level}` is for x86_64, not {arch}")]
    WrongArchitecture {
        /// The level.
        level: String,
        /// The target's architecture.
        arch: String,
    },
    /// `native` for a target other than the host.
    #[error("CPU level `native` describes this {host} machine, not the target {arch}")]
    NativeForeign {
        /// The host's architecture.
        host: &'static str,
        /// The target's architecture.
        arch: String,
    },
    /// A feature name Kiln does not know for the architecture.
    #[error("unknown CPU feature `{feature}` for {arch} (known: {known})")]
    UnknownFeature {
        /// The name given.
        feature: String,
        /// The target's architecture.
        arch: String,
        /// The names Kiln knows there.
        known: String,
    },
    /// The text is not a CPU level.
    #[error(
        "`{0}` is not a CPU level: use baseline, x86-64-v2, x86-64-v3, x86-64-v4, native or a \
         comma-separated list of features"
    )]
    Unparsable(String),
}

impl CpuLevel {
    /// The features (sorted, deduplicated) this level enables on the architecture `arch`
    /// (the first component of a target triple: `x86_64`, `aarch64`).
    pub fn features(&self, arch: &str) -> Result<Vec<&'static str>, CpuLevelError> {
        let is_x86 = arch == "x86_64";
        let mut features: Vec<&'static str> = if is_x86 {
            X86_64_BASELINE.to_vec()
        } else {
            Vec::new()
        };
        let x86_only = || CpuLevelError::WrongArchitecture {
            level: self.to_string(),
            arch: arch.to_owned(),
        };
        match self {
            CpuLevel::Baseline => {}
            CpuLevel::X86_64V3 | CpuLevel::X86_64V4 if !is_x86 => return Err(x86_only()),
            CpuLevel::X86_64V3 => features.extend(X86_64_V3),
            CpuLevel::X86_64V4 => features.extend(X86_64_V3.iter().chain(X86_64_V4)),
            CpuLevel::Native => {
                if arch != std::env::consts::ARCH {
                    return Err(CpuLevelError::NativeForeign {
                        host: std::env::consts::ARCH,
                        arch: arch.to_owned(),
                    });
                }
                features.extend(host_features());
            }
            CpuLevel::Features(names) => {
                let known = known_features(arch);
                for name in names {
                    let found = known.iter().find(|k| **k == name.as_str()).ok_or_else(|| {
                        CpuLevelError::UnknownFeature {
                            feature: name.clone(),
                            arch: arch.to_owned(),
                            known: known.join(", "),
                        }
                    })?;
                    features.push(found);
                }
            }
        }
        features.sort_unstable();
        features.dedup();
        Ok(features)
    }
}

impl fmt::Display for CpuLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuLevel::Baseline => f.write_str("baseline"),
            CpuLevel::X86_64V3 => f.write_str("x86-64-v3"),
            CpuLevel::X86_64V4 => f.write_str("x86-64-v4"),
            CpuLevel::Native => f.write_str("native"),
            CpuLevel::Features(names) => f.write_str(&names.join(",")),
        }
    }
}

impl FromStr for CpuLevel {
    type Err = CpuLevelError;

    /// `baseline` (or `x86-64-v2`), `x86-64-v3`, `x86-64-v4`, `native`, or features to add
    /// to the baseline, comma-separated (`avx2,bmi2`; a leading `+` is allowed).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "baseline" | "x86-64-v2" => CpuLevel::Baseline,
            "x86-64-v3" => CpuLevel::X86_64V3,
            "x86-64-v4" => CpuLevel::X86_64V4,
            "native" => CpuLevel::Native,
            list => {
                let names: Vec<String> = list
                    .split(',')
                    .map(|n| n.trim().trim_start_matches('+').to_owned())
                    .collect();
                let valid = |n: &String| {
                    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                };
                if !names.iter().all(valid) {
                    return Err(CpuLevelError::Unparsable(s.to_owned()));
                }
                CpuLevel::Features(names)
            }
        })
    }
}

/// A feature Kiln can compile for, and how to ask this CPU about it.
struct KnownFeature {
    name: &'static str,
    /// Whether this process's CPU has it (only meaningful on the feature's architecture).
    detect: fn() -> bool,
}

/// A table of features of one architecture: each name with the `std` detection macro's
/// check for it on that architecture (and `false` elsewhere).
macro_rules! feature_table {
    ($arch:tt, $detect:ident: $($name:literal => $std:tt),* $(,)?) => {
        &[$(KnownFeature {
            name: $name,
            detect: || {
                #[cfg(target_arch = $arch)]
                { std::arch::$detect!($std) }
                #[cfg(not(target_arch = $arch))]
                { false }
            },
        }),*]
    };
}

/// Cranelift's x86_64 ISA flags, by the name `std` detects them under.
const X86_64_FEATURES: &[KnownFeature] = feature_table! {
    "x86_64", is_x86_feature_detected:
    "avx" => "avx",
    "avx2" => "avx2",
    "avx512bitalg" => "avx512bitalg",
    "avx512dq" => "avx512dq",
    "avx512f" => "avx512f",
    "avx512vbmi" => "avx512vbmi",
    "avx512vl" => "avx512vl",
    "avx512vnni" => "avx512vnni",
    "avx_vnni" => "avxvnni",
    "bmi1" => "bmi1",
    "bmi2" => "bmi2",
    "cmpxchg16b" => "cmpxchg16b",
    "fma" => "fma",
    "lzcnt" => "lzcnt",
    "popcnt" => "popcnt",
    "sse3" => "sse3",
    "sse41" => "sse4.1",
    "sse42" => "sse4.2",
    "ssse3" => "ssse3",
};

/// Cranelift's aarch64 ISA flags that name CPU features.
const AARCH64_FEATURES: &[KnownFeature] = feature_table! {
    "aarch64", is_aarch64_feature_detected:
    "dotprod" => "dotprod",
    "fp16" => "fp16",
    "i8mm" => "i8mm",
    "lse" => "lse",
    "pauth" => "paca",
};

fn table(arch: &str) -> &'static [KnownFeature] {
    match arch {
        "x86_64" => X86_64_FEATURES,
        "aarch64" => AARCH64_FEATURES,
        _ => &[],
    }
}

/// The feature names Kiln can compile for on `arch`.
pub fn known_features(arch: &str) -> Vec<&'static str> {
    table(arch).iter().map(|f| f.name).collect()
}

/// The known features this process's CPU has.
pub fn host_features() -> Vec<&'static str> {
    table(std::env::consts::ARCH)
        .iter()
        .filter(|f| (f.detect)())
        .map(|f| f.name)
        .collect()
}

/// Whether this process's CPU has the feature `name` of its own architecture (`None`: a
/// name Kiln does not know there).
pub fn host_has(name: &str) -> Option<bool> {
    table(std::env::consts::ARCH)
        .iter()
        .find(|f| f.name == name)
        .map(|f| (f.detect)())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_print_back() {
        for text in ["baseline", "x86-64-v3", "x86-64-v4", "native", "avx2,bmi2"] {
            let level: CpuLevel = text.parse().unwrap();
            assert_eq!(level.to_string(), text);
        }
        assert_eq!("x86-64-v2".parse::<CpuLevel>(), Ok(CpuLevel::Baseline));
        assert_eq!(
            "+avx2, +lzcnt".parse::<CpuLevel>(),
            Ok(CpuLevel::Features(vec!["avx2".into(), "lzcnt".into()]))
        );
        assert!("avx2,,".parse::<CpuLevel>().is_err());
        assert!("x86-64-v9!".parse::<CpuLevel>().is_err());
    }

    #[test]
    fn x86_levels_grow_by_inclusion() {
        let v2 = CpuLevel::Baseline.features("x86_64").unwrap();
        let v3 = CpuLevel::X86_64V3.features("x86_64").unwrap();
        let v4 = CpuLevel::X86_64V4.features("x86_64").unwrap();
        assert_eq!(v2, ["popcnt", "sse3", "sse41", "sse42", "ssse3"]);
        assert!(v2.iter().all(|f| v3.contains(f)) && v3.len() == v2.len() + 6);
        assert!(v3.iter().all(|f| v4.contains(f)) && v4.contains(&"avx512f"));
        for f in &v4 {
            assert!(known_features("x86_64").contains(f), "{f}");
        }
    }

    #[test]
    fn levels_that_do_not_fit_the_target_are_refused() {
        assert!(CpuLevel::Baseline.features("aarch64").unwrap().is_empty());
        assert!(matches!(
            CpuLevel::X86_64V3.features("aarch64"),
            Err(CpuLevelError::WrongArchitecture { .. })
        ));
        let foreign = if std::env::consts::ARCH == "x86_64" {
            "aarch64"
        } else {
            "x86_64"
        };
        assert!(matches!(
            CpuLevel::Native.features(foreign),
            Err(CpuLevelError::NativeForeign { .. })
        ));
        let err = CpuLevel::Features(vec!["avx9".into()])
            .features("x86_64")
            .unwrap_err();
        assert!(err.to_string().contains("avx9") && err.to_string().contains("avx2"));
        assert_eq!(
            CpuLevel::Features(vec!["lse".into()]).features("aarch64"),
            Ok(vec!["lse"])
        );
    }

    #[test]
    fn native_is_what_this_cpu_has() {
        let native = CpuLevel::Native.features(std::env::consts::ARCH).unwrap();
        for f in &native {
            assert_eq!(host_has(f), Some(true), "{f}");
        }
        for f in known_features(std::env::consts::ARCH) {
            assert_eq!(native.contains(&f), host_has(f) == Some(true), "{f}");
        }
        assert_eq!(host_has("no_such_feature"), None);
    }
}
