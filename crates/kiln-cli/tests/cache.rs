//! The module cache seen from `kiln run`: concurrent starts, killed writers, damaged and
//! forged entries, eviction, a read-only directory.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::assert_answer;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A module whose result depends on its wasm, so a wrong entry shows in the output.
fn module(dir: &Path, name: &str, answer: i32) -> PathBuf {
    let path = dir.join(format!("{name}.wat"));
    std::fs::write(
        &path,
        format!(
            r#"(module (func (export "answer") (param i32) (result i32)
                 (i32.add (local.get 0) (i32.const {answer}))))"#
        ),
    )
    .unwrap();
    path
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("kiln-cache-{name}"));
    if dir.exists() {
        // A read-only directory left by an interrupted run.
        let _ = Command::new("chmod").args(["-R", "u+w"]).arg(&dir).status();
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn kiln_command(cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .env("KILN_CACHE_DIR", cache)
        .env_remove("KILN_CACHE_KEY")
        .env_remove("KILN_ARTIFACT_KEY")
        .env_remove("KILN_LOG")
        .env_remove("KILN_CACHE_TEST_PAUSE_MS");
    command
}

fn run_answer(cache: &Path, wat: &Path, envs: &[(&str, &str)]) -> Output {
    kiln_command(cache)
        .args(["run", wat.to_str().unwrap(), "--invoke", "answer", "1"])
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Entry files (not temporaries) under the cache directory.
fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![cache.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in read.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if !e.file_name().to_string_lossy().starts_with(".tmp-") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn only_entry(cache: &Path) -> PathBuf {
    let all = entries(cache);
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

#[test]
fn a_second_run_loads_the_entry_and_the_directory_is_private() {
    let dir = scratch("hit");
    let cache = dir.join("cache");
    let wat = module(&dir, "m", 41);
    assert_answer(&run_answer(&cache, &wat, &[]), 41);
    let entry = only_entry(&cache);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&cache), 0o700);
    assert_eq!(mode(&entry), 0o600);
    let written = std::fs::metadata(&entry).unwrap().modified().unwrap();
    let out = run_answer(&cache, &wat, &[("KILN_LOG", "kiln=debug")]);
    assert_answer(&out, 41);
    assert!(
        stderr(&out).contains("module cache hit"),
        "{}",
        stderr(&out)
    );
    // A hit leaves the entry as it was.
    assert_eq!(only_entry(&cache), entry);
    assert_eq!(
        std::fs::metadata(&entry).unwrap().modified().unwrap(),
        written
    );
    // --no-cache compiles without looking.
    let out = kiln_command(&cache)
        .args([
            "run",
            wat.to_str().unwrap(),
            "--no-cache",
            "--invoke",
            "answer",
            "1",
        ])
        .env("KILN_LOG", "kiln=debug")
        .output()
        .unwrap();
    assert_answer(&out, 41);
    assert!(!stderr(&out).contains("module cache hit"));
}

#[test]
fn eight_processes_starting_at_once_leave_one_entry() {
    let dir = scratch("concurrent");
    let cache = dir.join("cache");
    let wat = module(&dir, "m", 7);
    for round in 0..3 {
        let children: Vec<_> = (0..8)
            .map(|_| {
                kiln_command(&cache)
                    .args(["run", wat.to_str().unwrap(), "--invoke", "answer", "1"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            assert_answer(&child.wait_with_output().unwrap(), 7);
        }
        assert_eq!(entries(&cache).len(), 1, "round {round}");
        std::fs::remove_file(only_entry(&cache)).unwrap();
    }
}

#[test]
fn writers_killed_at_any_point_leave_no_broken_entry() {
    let dir = scratch("killed");
    let cache = dir.join("cache");
    let wat = module(&dir, "m", 99);
    // Artifacts are deterministic: every complete entry of this module has these bytes.
    assert_answer(&run_answer(&cache, &wat, &[]), 99);
    let complete = std::fs::read(only_entry(&cache)).unwrap();
    let mut killed_before_rename = 0;
    for attempt in 0..60u64 {
        let _ = std::fs::remove_dir_all(&cache);
        // The writer pauses 30 ms between its synced temporary file and the rename; the kill
        // lands anywhere from start-up to after the rename.
        let mut child = kiln_command(&cache)
            .args(["run", wat.to_str().unwrap(), "--invoke", "answer", "1"])
            .env("KILN_CACHE_TEST_PAUSE_MS", "30")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis((attempt * 7919) % 60));
        child.kill().unwrap();
        child.wait().unwrap();
        let visible = entries(&cache);
        for entry in &visible {
            assert!(
                std::fs::read(entry).unwrap() == complete,
                "attempt {attempt}: a partial entry is visible"
            );
        }
        if visible.is_empty() {
            killed_before_rename += 1;
        }
        // Whatever the writer left, the next run is right, and what it leaves loads.
        assert_answer(&run_answer(&cache, &wat, &[]), 99);
        let out = run_answer(&cache, &wat, &[("KILN_LOG", "kiln=debug")]);
        assert_answer(&out, 99);
        assert!(
            stderr(&out).contains("module cache hit"),
            "{}",
            stderr(&out)
        );
    }
    assert!(
        killed_before_rename > 0,
        "no kill landed before the entry was renamed into place"
    );
}

#[test]
fn damaged_or_replaced_entries_are_recompiled() {
    let dir = scratch("damaged");
    let cache = dir.join("cache");
    let wat = module(&dir, "m", 10);
    let other = module(&dir, "other", 20);
    assert_answer(&run_answer(&cache, &other, &[]), 20);
    let other_entry = only_entry(&cache);
    let other_bytes = std::fs::read(&other_entry).unwrap();
    std::fs::remove_file(&other_entry).unwrap();
    assert_answer(&run_answer(&cache, &wat, &[]), 10);
    let entry = only_entry(&cache);
    let good = std::fs::read(&entry).unwrap();

    let mut flipped = good.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x40;
    let damages: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 3].to_vec()),
        ("empty", Vec::new()),
        ("bit-flipped", flipped),
        ("another module's artifact", other_bytes),
    ];
    for (what, bytes) in damages {
        std::fs::write(&entry, &bytes).unwrap();
        let out = run_answer(&cache, &wat, &[]);
        assert_answer(&out, 10);
        assert!(
            stderr(&out).contains("removing unusable module cache entry"),
            "{what}: {}",
            stderr(&out)
        );
        assert_eq!(std::fs::read(&entry).unwrap(), good, "{what}: stored again");
    }
}

#[test]
fn entries_of_other_settings_are_never_used() {
    let dir = scratch("settings");
    let cache = dir.join("cache");
    let wat = module(&dir, "m", 5);
    assert_answer(&run_answer(&cache, &wat, &[]), 5);
    let plain = only_entry(&cache);
    // --timeout makes the code interruptible: other code, so another entry.
    let out = kiln_command(&cache)
        .args([
            "run",
            wat.to_str().unwrap(),
            "--timeout",
            "10",
            "--invoke",
            "answer",
            "1",
        ])
        .output()
        .unwrap();
    assert_answer(&out, 5);
    let all = entries(&cache);
    assert_eq!(all.len(), 2, "{all:?}");
    let interruptible = all.iter().find(|p| **p != plain).unwrap().clone();
    // An entry of other settings under this name (as a stale build of Kiln could leave) is
    // refused by the header check and replaced.
    std::fs::copy(&interruptible, &plain).unwrap();
    let out = run_answer(&cache, &wat, &[]);
    assert_answer(&out, 5);
    assert!(stderr(&out).contains("settings"), "{}", stderr(&out));
    assert_ne!(
        std::fs::read(&plain).unwrap(),
        std::fs::read(&interruptible).unwrap()
    );
    // Entries live under the artifact format version: another version's directory is
    // never read.
    let version = plain
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .unwrap();
    assert_eq!(
        version.to_str().unwrap(),
        kiln_artifact::header::FORMAT_VERSION.to_string()
    );
}

#[test]
fn gc_keeps_the_most_recently_used_entries_under_the_limit() {
    let dir = scratch("gc");
    let cache = dir.join("cache");
    let mods: Vec<PathBuf> = (0..4).map(|i| module(&dir, &format!("m{i}"), i)).collect();
    let mut sizes = Vec::new();
    for (i, m) in mods.iter().enumerate() {
        assert_answer(&run_answer(&cache, m, &[]), i as i32);
        let newest = entries(&cache)
            .into_iter()
            .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
            .unwrap();
        sizes.push((newest.clone(), std::fs::metadata(&newest).unwrap().len()));
        // Distinct modification times, oldest first.
        let time = std::time::SystemTime::now() - Duration::from_secs(100 * (4 - i as u64));
        std::fs::File::options()
            .write(true)
            .open(&newest)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }
    assert_eq!(entries(&cache).len(), 4);
    // Room for the two newest only.
    let limit = sizes[2].1 + sizes[3].1;
    let out = kiln_command(&cache)
        .args(["cache", "gc", "--max-size", &limit.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed 2 entries"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let left = entries(&cache);
    assert_eq!(left, {
        let mut v = vec![sizes[2].0.clone(), sizes[3].0.clone()];
        v.sort();
        v
    });
    let stats = kiln_command(&cache)
        .args(["cache", "stats"])
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&stats.stdout).into_owned();
    assert!(stats.contains("entries: 2"), "{stats}");
    assert!(stats.contains(&format!("({limit} bytes)")), "{stats}");
    let dir_out = kiln_command(&cache)
        .args(["cache", "dir"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&dir_out.stdout).trim(),
        cache.to_str().unwrap()
    );
    let out = kiln_command(&cache)
        .args(["cache", "clear"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 2 entries"));
    assert!(entries(&cache).is_empty());
}

/// The uid that runs `kiln` in the read-only test: root writes whatever the permissions say,
/// so as root the test hands the directory to `nobody` and runs the child as `nobody`.
const UNPRIVILEGED: u32 = 65534;

fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn a_read_only_cache_directory_still_runs_the_module() {
    use std::os::unix::process::CommandExt;
    let dir = scratch("read-only");
    let cache = dir.join("cache");
    let wat = module(&dir, "m", 3);
    // Create the layout, then make every level read-only.
    assert_answer(&run_answer(&cache, &wat, &[]), 3);
    std::fs::remove_file(only_entry(&cache)).unwrap();
    let as_root = running_as_root();
    if as_root {
        let owner = format!("{UNPRIVILEGED}:{UNPRIVILEGED}");
        let status = Command::new("chown")
            .args(["-R", &owner])
            .arg(&cache)
            .status();
        assert!(status.unwrap().success());
    }
    let status = Command::new("chmod")
        .args(["-R", "a-w"])
        .arg(&cache)
        .status();
    assert!(status.unwrap().success());
    let mut command = kiln_command(&cache);
    command.args(["run", wat.to_str().unwrap(), "--invoke", "answer", "1"]);
    if as_root {
        command.uid(UNPRIVILEGED).gid(UNPRIVILEGED);
    }
    let out = command.output().unwrap();
    // Restore before asserting, so a failure does not leave an undeletable directory.
    let _ = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(&cache)
        .status();
    assert_answer(&out, 3);
    let err = stderr(&out);
    assert_eq!(err.matches("WARN").count(), 1, "{err}");
    assert!(err.contains("module cache not written"), "{err}");
    assert!(entries(&cache).is_empty());
}

#[test]
fn a_cache_directory_that_cannot_be_created_still_runs_the_module() {
    let dir = scratch("uncreatable");
    let blocker = dir.join("a-file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let wat = module(&dir, "m", 4);
    let out = run_answer(&blocker.join("cache"), &wat, &[]);
    assert_answer(&out, 4);
    let err = stderr(&out);
    assert_eq!(err.matches("WARN").count(), 1, "{err}");
    assert!(err.contains("running without the module cache"), "{err}");
    assert_eq!(std::fs::read(&blocker).unwrap(), b"not a directory");
}

#[test]
fn with_a_key_a_forged_entry_is_refused_and_recompiled() {
    let dir = scratch("forged");
    let cache = dir.join("cache");
    let wat = module(&dir, "m", 1000);
    let other = module(&dir, "other", 2000);
    let keyed = [("KILN_CACHE_KEY", KEY)];
    assert_answer(&run_answer(&cache, &wat, &keyed), 1000);
    let entry = only_entry(&cache);
    let genuine = std::fs::read(&entry).unwrap();
    // The attacker can write the directory but lacks the key: the best they have is a valid
    // artifact of their own module (unsealed), or one sealed under another key.
    let forged_dir = dir.join("attacker");
    assert_answer(&run_answer(&forged_dir, &other, &[]), 2000);
    let unsealed = std::fs::read(only_entry(&forged_dir)).unwrap();
    let other_key = [(
        "KILN_CACHE_KEY",
        "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
    )];
    std::fs::remove_dir_all(&forged_dir).unwrap();
    assert_answer(&run_answer(&forged_dir, &other, &other_key), 2000);
    let sealed_elsewhere = std::fs::read(only_entry(&forged_dir)).unwrap();
    for (what, bytes) in [("unsealed", unsealed), ("other key", sealed_elsewhere)] {
        std::fs::write(&entry, &bytes).unwrap();
        let out = run_answer(&cache, &wat, &keyed);
        assert_answer(&out, 1000);
        assert!(
            stderr(&out).contains("removing unusable module cache entry"),
            "{what}: {}",
            stderr(&out)
        );
        assert_eq!(std::fs::read(&entry).unwrap(), genuine, "{what}");
    }
    // A genuine sealed entry of another module of this cache, renamed: refused too.
    let out = run_answer(&cache, &other, &keyed);
    assert_answer(&out, 2000);
    let other_entry = entries(&cache).into_iter().find(|p| *p != entry).unwrap();
    std::fs::copy(&other_entry, &entry).unwrap();
    let out = run_answer(&cache, &wat, &keyed);
    assert_answer(&out, 1000);
    assert!(stderr(&out).contains("other wasm"), "{}", stderr(&out));
}

#[test]
fn a_relative_cache_directory_is_taken_from_the_current_directory() {
    let dir = scratch("relative");
    let wat = module(&dir, "m", 6);
    let out = kiln_command(Path::new("relative-cache"))
        .current_dir(&dir)
        .args(["run", wat.to_str().unwrap(), "--invoke", "answer", "1"])
        .output()
        .unwrap();
    assert_answer(&out, 6);
    assert_eq!(entries(&dir.join("relative-cache")).len(), 1);
    let printed = kiln_command(Path::new("relative-cache"))
        .current_dir(&dir)
        .args(["cache", "dir"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout).trim(),
        dir.join("relative-cache").to_str().unwrap()
    );
}
