//! Disassembly aid for comparing code generation: compiles a module with both engines for one
//! CPU level and writes the machine code of the named function as Kiln compiled it (raw
//! bytes) and Wasmtime's whole compiled module (an ELF file with a symbol per function), then
//! prints the `objdump` commands that show them side by side.
//!
//! ```sh
//! cargo run --release --manifest-path bench/peer/Cargo.toml --target-dir target \
//!     --bin disasm -- target/peer/bench-kernels.wasm strings [native|baseline] [out dir]
//! ```
//!
//! With `--sizes` for the function, it prints instead the functions whose code size differs
//! most between the engines (Wasmtime's sizes from `nm -S` of its ELF file).

#[path = "../baseline.rs"]
mod baseline;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, wasm, name, rest @ ..] = args.as_slice() else {
        eprintln!("usage: disasm MODULE.wasm FUNCTION [native|baseline] [OUT DIR]");
        std::process::exit(2);
    };
    let native = rest.first().map(String::as_str) != Some("baseline");
    let out = std::path::PathBuf::from(rest.get(1).map(String::as_str).unwrap_or("target/disasm"));
    std::fs::create_dir_all(&out).unwrap();
    let wasm = std::fs::read(wasm).unwrap();

    let mut config = kiln::Config::new();
    if native {
        config.cpu(kiln::CpuLevel::Native);
    }
    let engine = kiln::Engine::new(&config).unwrap();
    let artifact = engine.precompile_module(&wasm).unwrap();
    let info = kiln_artifact::read_metadata(&artifact).unwrap();
    let header = kiln_artifact::Header::parse(&artifact).unwrap();
    let func = info
        .func_names
        .iter()
        .find(|f| f.name == *name || (name == "--sizes" && f.func.0 >= info.num_imported_funcs))
        .unwrap_or_else(|| panic!("no function named `{name}` in the name section"))
        .func;
    let defined = kiln_artifact::DefinedFuncIndex(func.0 - info.num_imported_funcs);
    let body = info.compiled[defined].body;
    let start = header.code.offset as usize + body.start as usize;
    let kiln_path = out.join(format!("{name}.kiln.bin"));
    std::fs::write(&kiln_path, &artifact[start..start + body.len as usize]).unwrap();

    let mut config = wasmtime::Config::new();
    if !native {
        baseline::restrict_to_kiln_baseline(&mut config);
    }
    let engine = wasmtime::Engine::new(&config).unwrap();
    let elf = engine.precompile_module(&wasm).unwrap();
    let wasmtime_path = out.join("module.wasmtime.elf");
    std::fs::write(&wasmtime_path, elf).unwrap();

    if name == "--sizes" {
        print_size_differences(&info, &wasmtime_path);
        return;
    }
    println!(
        "function {} (`{name}`): {} bytes at {:#x} of Kiln's text section",
        func.0, body.len, body.start
    );
    println!(
        "objdump -D -b binary -m i386:x86-64 -M intel {}",
        kiln_path.display()
    );
    println!(
        "objdump -d -M intel {} | sed -n '/function\\[{}\\]/,/^$/p'",
        wasmtime_path.display(),
        func.0
    );
}

/// Prints the 25 functions with the largest difference of code size, Kiln minus Wasmtime, and
/// the totals over all functions.
fn print_size_differences(info: &kiln_artifact::ModuleInfo, wasmtime_elf: &std::path::Path) {
    let nm = std::process::Command::new("nm")
        .args(["-S", "--defined-only"])
        .arg(wasmtime_elf)
        .output()
        .expect("nm (binutils) runs");
    let mut wasmtime_sizes = std::collections::HashMap::new();
    for line in String::from_utf8_lossy(&nm.stdout).lines() {
        // "<address> <size> t wasm[0]::function[12]::name"
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [_, size, _, symbol] = parts.as_slice()
            && let Some(rest) = symbol.strip_prefix("wasm[0]::function[")
            && let Some((index, _)) = rest.split_once(']')
        {
            let index: u32 = index.parse().unwrap();
            wasmtime_sizes.insert(index, u64::from_str_radix(size, 16).unwrap());
        }
    }
    let mut rows = Vec::new();
    let (mut kiln_total, mut wasmtime_total) = (0u64, 0u64);
    for (defined, compiled) in info.compiled.iter() {
        let index = defined.0 + info.num_imported_funcs;
        let kiln = u64::from(compiled.body.len);
        let wasmtime = wasmtime_sizes.get(&index).copied().unwrap_or(0);
        kiln_total += kiln;
        wasmtime_total += wasmtime;
        let name = info
            .func_names
            .iter()
            .find(|n| n.func.0 == index)
            .map_or("", |n| n.name.as_str());
        rows.push((
            kiln as i64 - wasmtime as i64,
            index,
            kiln,
            wasmtime,
            name.to_owned(),
        ));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0.abs()));
    println!("all functions: Kiln {kiln_total} bytes, Wasmtime {wasmtime_total} bytes");
    for (diff, index, kiln, wasmtime, name) in rows.iter().take(25) {
        println!("{diff:+8}  function {index:5} {kiln:8} {wasmtime:8}  {name}");
    }
}
