//! Computes `KILN_BUILD_ID`: a hash of the sources that decide what code Kiln generates and
//! how the runtime calls it (compiler, artifact format, runtime), plus the compiler's own
//! version. The module cache keys entries by it, so a rebuilt Kiln never runs an entry an
//! older build wrote, even when the version number did not change.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "rs" || e == "c" || e == "toml")
        {
            out.push(path);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let crates = manifest.parent().unwrap();
    let mut files = Vec::new();
    for krate in ["kiln-compiler", "kiln-artifact", "kiln-runtime"] {
        let dir = crates.join(krate);
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("Cargo.toml").display()
        );
        sources(&dir.join("src"), &mut files);
        files.push(dir.join("Cargo.toml"));
    }
    // The lock file pins Cranelift: another Cranelift may generate other code.
    let lock = crates.parent().unwrap().join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    files.push(lock);
    files.sort();
    let mut hasher = twox_hash::XxHash3_128::new();
    for file in &files {
        let name = file.strip_prefix(crates.parent().unwrap()).unwrap_or(file);
        hasher.write(name.to_string_lossy().as_bytes());
        hasher.write(&[0]);
        hasher.write(&std::fs::read(file).unwrap_or_default());
        hasher.write(&[0]);
    }
    println!("cargo:rustc-env=KILN_BUILD_ID={:032x}", hasher.finish_128());
}
