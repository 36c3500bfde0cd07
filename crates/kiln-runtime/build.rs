//! Builds the tiny C helper that owns `sigsetjmp`/`siglongjmp`: Rust cannot call a function
//! that returns twice, so the jump buffer lives in a C frame.

fn main() {
    println!("cargo:rerun-if-changed=src/helpers.c");
    cc::Build::new()
        .file("src/helpers.c")
        .warnings(true)
        .compile("kiln_helpers");
}
