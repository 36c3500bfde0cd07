//! The module cache against a second user of the machine and against mistakes, through
//! whole `kiln` processes: links at every level of the cache, files that are not entries,
//! FIFOs and devices at an entry's name, sparse giants, the cache commands' key, and (as
//! root, with `setpriv`) a second user who swaps the cache path or writes a shared cache
//! while the first one runs, collects and clears. Afterwards nothing outside the cache was
//! touched, nothing foreign ran, and every run printed the right answer (docs/security.md,
//! "Local users").

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::assert_answer;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The `kiln` under test: this build's, or `KILN_TEST_BINARY` (to show that a defect
/// these tests pin is present in another build).
fn kiln_binary() -> PathBuf {
    std::env::var_os("KILN_TEST_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kiln")))
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("kiln-hostile-{name}"));
    if dir.exists() {
        let _ = Command::new("chmod")
            .args(["-R", "u+rwx"])
            .arg(&dir)
            .status();
        let _ = Command::new("rm").arg("-rf").arg(&dir).status();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The wasm binary of a module whose answer shows which module ran.
fn module_bytes(answer: i32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module (func (export "answer") (param i32) (result i32)
             (i32.add (local.get 0) (i32.const {answer}))))"#
    ))
    .unwrap()
}

fn module(dir: &Path, name: &str, answer: i32) -> PathBuf {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, module_bytes(answer)).unwrap();
    path
}

fn kiln(cache: &Path) -> Command {
    let mut command = Command::new(kiln_binary());
    command
        .env("KILN_CACHE_DIR", cache)
        .env_remove("KILN_CACHE_KEY")
        .env_remove("KILN_ARTIFACT_KEY")
        .env_remove("KILN_LOG")
        .stdin(Stdio::null());
    command
}

/// `kiln run wasm --invoke answer 1`, stopped by a watchdog after 60 s so that a hang
/// fails the test instead of blocking it.
fn run_answer(mut command: Command, wasm: &Path) -> Output {
    let child = command
        .args(["run", wasm.to_str().unwrap(), "--invoke", "answer", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let done = watchdog(child.id(), Duration::from_secs(60));
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    out
}

/// Kills process `pid` after `limit` unless told first (through the returned sender), so
/// that a hang fails the test instead of blocking it; never signals a pid after its child
/// was reaped.
fn watchdog(pid: u32, limit: Duration) -> std::sync::mpsc::Sender<()> {
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if finished.recv_timeout(limit).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    done
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The regular files under `dir` and their contents, not following links.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                stack.push(e.path());
            } else if kind.is_file() {
                found.push((e.path(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    found.sort();
    found
}

/// A directory of someone's own files that no cache operation may touch.
fn documents(dir: &Path) -> PathBuf {
    let docs = dir.join("documents");
    std::fs::create_dir_all(docs.join("deep")).unwrap();
    for (name, text) in [
        ("letter.txt", "dear"),
        ("0123456789abcdef0123456789abcdef", "entry-shaped name"),
        ("deep/thesis.tex", "chapter 1"),
    ] {
        std::fs::write(docs.join(name), text).unwrap();
    }
    docs
}

/// The entry files under a cache (regular files with an entry's 32-digit name).
fn entries(cache: &Path) -> Vec<PathBuf> {
    snapshot(cache)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.file_name().unwrap().len() == 32)
        .collect()
}

#[test]
fn gc_and_clear_never_follow_links_or_remove_foreign_files() {
    let dir = scratch("links");
    let docs = documents(&dir);
    let before = snapshot(&docs);
    let cache = dir.join("cache");
    let wasm = module(&dir, "m", 41);
    assert_answer(&run_answer(kiln(&cache), &wasm), 41);
    let entry = entries(&cache).pop().expect("one entry");
    let shard = entry.parent().unwrap();
    let versioned = shard.parent().unwrap();
    // A shard that is a link to the documents, an entry-shaped link to one of them, a file
    // of another name in a shard, and a link in place of an entry's name.
    std::os::unix::fs::symlink(&docs, versioned.join("01")).unwrap();
    std::os::unix::fs::symlink(
        docs.join("letter.txt"),
        shard.join(format!(
            "{}ffffffffffffffffffffffffffffff",
            &shard_name(shard)
        )),
    )
    .unwrap();
    std::fs::write(shard.join("notes.txt"), "mine").unwrap();

    let gc = kiln(&cache)
        .args(["cache", "gc", "--max-size", "0"])
        .output()
        .unwrap();
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(!entry.exists(), "gc --max-size 0 removes the real entry");
    assert!(shard.join("notes.txt").exists(), "not an entry: kept");
    assert_eq!(snapshot(&docs), before, "gc touched the documents");

    // A store (which collects) and `clear`, which refuses the foreign files and removes
    // nothing.
    assert_answer(&run_answer(kiln(&cache), &wasm), 41);
    let clear = kiln(&cache).args(["cache", "clear"]).output().unwrap();
    assert!(!clear.status.success());
    assert!(
        stderr(&clear).contains("is not a module cache entry"),
        "{}",
        stderr(&clear)
    );
    assert!(entry.exists(), "a refused clear removes nothing");
    assert_eq!(snapshot(&docs), before, "clear touched the documents");

    // The mistake of pointing the cache at a directory of one's own.
    let clear = kiln(&docs).args(["cache", "clear"]).output().unwrap();
    assert!(!clear.status.success(), "{}", stderr(&clear));
    assert_eq!(snapshot(&docs), before, "clearing the documents as a cache");

    // With the foreign files gone, clear works.
    std::fs::remove_file(shard.join("notes.txt")).unwrap();
    for link in std::fs::read_dir(shard).unwrap().flatten() {
        if link.file_type().unwrap().is_symlink() {
            std::fs::remove_file(link.path()).unwrap();
        }
    }
    std::fs::remove_file(versioned.join("01")).unwrap();
    let clear = kiln(&cache).args(["cache", "clear"]).output().unwrap();
    assert!(clear.status.success(), "{}", stderr(&clear));
    assert!(entries(&cache).is_empty());
    assert_eq!(snapshot(&docs), before);
}

fn shard_name(shard: &Path) -> String {
    shard.file_name().unwrap().to_str().unwrap().to_owned()
}

#[test]
fn fifos_devices_and_links_at_an_entry_name_neither_hang_nor_run() {
    let dir = scratch("fifo");
    let cache = dir.join("cache");
    let wasm = module(&dir, "m", 7);
    assert_answer(&run_answer(kiln(&cache), &wasm), 7);
    let entry = entries(&cache).pop().unwrap();
    for plant in ["fifo", "device link", "link"] {
        std::fs::remove_file(&entry).unwrap();
        match plant {
            "fifo" => assert!(
                Command::new("mkfifo")
                    .arg(&entry)
                    .status()
                    .unwrap()
                    .success()
            ),
            "device link" => std::os::unix::fs::symlink("/dev/zero", &entry).unwrap(),
            _ => {
                // A link to a genuine entry of this module: still not opened.
                let elsewhere = dir.join("elsewhere");
                let out = run_answer(kiln(&elsewhere), &wasm);
                assert_answer(&out, 7);
                std::os::unix::fs::symlink(entries(&elsewhere).pop().unwrap(), &entry).unwrap();
            }
        }
        let mut logged = kiln(&cache);
        logged.env("KILN_LOG", "kiln=debug");
        let out = run_answer(logged, &wasm);
        assert_answer(&out, 7);
        assert!(!stderr(&out).contains("module cache hit"), "{plant}");
        let meta = std::fs::symlink_metadata(&entry).unwrap();
        assert!(meta.is_file(), "{plant}: the store replaced it");
    }
}

/// Runs `command` to its end and returns its output and the largest resident size it
/// reached, in KiB (its own, from `wait4`, not that of other tests' children).
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped with wait4, for its own resource usage"
)]
fn run_measured(mut command: Command) -> (Output, i64) {
    use std::io::Read;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let done = watchdog(child.id(), Duration::from_secs(60));
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `status` and `usage` are writable; the pid is our child, not yet reaped (the
    // `Child` is never waited on after this).
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, usage.as_mut_ptr()) };
    let _ = done.send(());
    assert_eq!(pid, child.id() as i32);
    // SAFETY: wait4 succeeded, so it filled the struct (which was zeroed before).
    let usage = unsafe { usage.assume_init() };
    let status = std::os::unix::process::ExitStatusExt::from_raw(status);
    (
        Output {
            status,
            stdout,
            stderr,
        },
        usage.ru_maxrss,
    )
}

#[test]
fn a_sparse_giant_at_an_entry_name_is_refused_before_it_is_read() {
    let dir = scratch("giant");
    let cache = dir.join("cache");
    let wasm = module(&dir, "m", 5);
    let keyed = || {
        let mut command = kiln(&cache);
        command.env("KILN_CACHE_KEY", KEY);
        command
    };
    assert_answer(&run_answer(keyed(), &wasm), 5);
    let entry = entries(&cache).pop().unwrap();
    let header = std::fs::read(&entry).unwrap()[..512].to_vec();
    // Under the entry limit with a genuine header that declares another length, and over
    // the limit: neither is read.
    for giant in [900u64 << 20, 3 << 30] {
        let file = std::fs::File::create(&entry).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, &header, 0).unwrap();
        file.set_len(giant).unwrap();
        drop(file);
        let mut command = keyed();
        command.args(["run", wasm.to_str().unwrap(), "--invoke", "answer", "1"]);
        let (out, rss) = run_measured(command);
        assert_answer(&out, 5);
        assert!(
            std::fs::metadata(&entry).unwrap().len() < 1 << 20,
            "replaced"
        );
        assert!(rss < 256 * 1024, "{giant} bytes: the run used {rss} KiB");
    }
}

#[test]
fn cache_commands_use_the_same_key_as_run() {
    let dir = scratch("key");
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    // Shared: only a keyed cache may use it.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let wasm = module(&dir, "m", 3);
    let key_file = dir.join("key.hex");
    std::fs::write(&key_file, KEY).unwrap();
    for (variable, value) in [
        ("KILN_ARTIFACT_KEY", KEY),
        ("KILN_ARTIFACT_KEY_FILE", key_file.to_str().unwrap()),
        ("KILN_CACHE_KEY_FILE", key_file.to_str().unwrap()),
    ] {
        let with_key = || {
            let mut command = kiln(&cache);
            command.env(variable, value);
            command
        };
        let out = run_answer(with_key(), &wasm);
        assert_answer(&out, 3);
        assert!(
            !stderr(&out).contains("WARN"),
            "{variable}: {}",
            stderr(&out)
        );
        let stats = with_key().args(["cache", "stats"]).output().unwrap();
        let text = String::from_utf8_lossy(&stats.stdout);
        assert!(stats.status.success(), "{variable}: {}", stderr(&stats));
        assert!(text.contains("entries: 1"), "{variable}: {text}");
        assert!(text.contains("authenticated: yes"), "{variable}: {text}");
        let gc = with_key().args(["cache", "gc"]).output().unwrap();
        assert!(gc.status.success(), "{variable}: {}", stderr(&gc));
    }
    let clear = kiln(&cache)
        .env("KILN_ARTIFACT_KEY", KEY)
        .args(["cache", "clear"])
        .output()
        .unwrap();
    assert!(clear.status.success(), "{}", stderr(&clear));
    // Without a key the shared directory is refused, by every command alike.
    let stats = kiln(&cache).args(["cache", "stats"]).output().unwrap();
    assert!(!stats.status.success());
    assert!(stderr(&stats).contains("owner-only"), "{}", stderr(&stats));
    let both = kiln(&cache)
        .env("KILN_CACHE_KEY", KEY)
        .env("KILN_CACHE_KEY_FILE", &key_file)
        .args(["cache", "stats"])
        .output()
        .unwrap();
    assert!(stderr(&both).contains("not both"), "{}", stderr(&both));
    assert!(!stderr(&both).contains(KEY), "a key in a message");
}

/// An artifact of `other` that claims to be compiled from `claimed`: its recorded wasm
/// hashes replaced and its checksum made right, so it passes a checked load. What a second
/// user could plant to run their own code as the first.
fn forge(artifact: &[u8], other: &[u8], claimed: &[u8]) -> Vec<u8> {
    use kiln_artifact::source::{fast_hash, strong_hash};
    let mut forged = artifact.to_vec();
    let replace = |bytes: &mut Vec<u8>, from: &[u8], to: &[u8]| {
        let at: Vec<usize> = (0..bytes.len() - from.len())
            .filter(|&i| &bytes[i..i + from.len()] == from)
            .collect();
        assert_eq!(at.len(), 1, "the recorded hash appears once");
        bytes[at[0]..at[0] + to.len()].copy_from_slice(to);
    };
    replace(&mut forged, &fast_hash(other), &fast_hash(claimed));
    replace(&mut forged, &strong_hash(other), &strong_hash(claimed));
    let mut header = kiln_artifact::Header::parse(&forged).unwrap();
    header.checksum = kiln_artifact::header::checksum(&forged);
    forged[..512].copy_from_slice(&header.encode().unwrap());
    forged
}

/// The forger works: in a cache the user owns, a forged entry is trusted (that is what
/// ownership means), so it runs; the hostile tests below show that nobody else can put one
/// there.
#[test]
fn a_forged_entry_passes_a_checked_load_when_the_user_planted_it() {
    let dir = scratch("forged");
    let cache = dir.join("cache");
    let honest = forged_cache(&dir, &cache);
    assert_answer(&run_answer(kiln(&cache), &honest), 1000);
}

/// Fills the unkeyed cache `cache` with a forged entry under the name of a module whose own
/// answer is 1 (and which is returned): the entry holds the code of a module answering 1000.
fn forged_cache(dir: &Path, cache: &Path) -> PathBuf {
    let (honest, evil) = (module(dir, "honest", 1), module(dir, "evil", 1000));
    assert_answer(&run_answer(kiln(cache), &evil), 1000);
    let evil_artifact = std::fs::read(entries(cache).pop().unwrap()).unwrap();
    std::fs::remove_dir_all(cache).unwrap();
    assert_answer(&run_answer(kiln(cache), &honest), 1);
    let entry = entries(cache).pop().unwrap();
    let forged = forge(&evil_artifact, &module_bytes(1000), &module_bytes(1));
    std::fs::write(&entry, forged).unwrap();
    honest
}

const VICTIM: u32 = 41001;
const ATTACKER: u32 = 41002;

/// Whether two users can be simulated here (root and `setpriv`); says so when not.
fn two_users() -> bool {
    let root = rustix::process::geteuid().is_root();
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !(root && setpriv) {
        eprintln!(
            "SKIPPED: the two-user cache tests need root and setpriv (root: {root}, setpriv: \
             {setpriv})"
        );
    }
    root && setpriv
}

fn as_user(uid: u32, program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command.args([
        &format!("--reuid={uid}"),
        &format!("--regid={uid}"),
        "--clear-groups",
        "--",
        program,
    ]);
    command
}

fn chown(path: &Path, uid: u32) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// The attacker's loop, a shell script run as the second user until `stop` exists.
fn start_attacker(script: &str, stop: &Path) -> std::process::Child {
    as_user(ATTACKER, "sh")
        .arg("-c")
        .arg(script)
        .env("STOP", stop)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The victim's side: runs both modules, collects and clears, `rounds` times; every run
/// must print its own module's answer.
fn victim_rounds(cache: &Path, keyed: bool, modules: &[(PathBuf, i32)], rounds: usize) {
    let command = |args: &[&str]| {
        let mut command = as_user(VICTIM, kiln_binary().to_str().unwrap());
        command
            .args(args)
            .env("KILN_CACHE_DIR", cache)
            .env_remove("KILN_ARTIFACT_KEY")
            .env_remove("KILN_CACHE_KEY")
            .env_remove("KILN_LOG")
            .stdin(Stdio::null());
        if keyed {
            command.env("KILN_CACHE_KEY", KEY);
        }
        command
    };
    for round in 0..rounds {
        for (wasm, answer) in modules {
            let out = run_answer(command(&[]), wasm);
            assert_answer(&out, *answer);
        }
        let maintenance: &[&str] = match round % 3 {
            0 => &["cache", "gc", "--max-size", "0"],
            1 => &["cache", "clear"],
            _ => &["cache", "stats"],
        };
        // These may fail (a refused clear, a swapped root): they must only not harm.
        let _ = command(maintenance).output().unwrap();
    }
}

/// A private cache reached through a path the attacker can swap: the cache path is a link
/// in a directory of the attacker's, switched between the victim's own cache and one of
/// the attacker's that holds forged entries under the victim's names. The forged code must
/// never run, whatever the timing.
#[test]
fn a_second_user_swapping_the_cache_path_never_runs_code_as_the_first() {
    if !two_users() {
        return;
    }
    let dir = scratch("swap");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The forged entry, made by root in a cache of its own, then owned by the attacker.
    let workshop = dir.join("workshop");
    let honest = forged_cache(&dir, &workshop);
    let attacker_cache = dir.join("attacker-cache");
    std::fs::rename(&workshop, &attacker_cache).unwrap();
    chown(&attacker_cache, ATTACKER);
    // Readable by the victim, as an attacker would leave it.
    let status = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&attacker_cache)
        .status()
        .unwrap();
    assert!(status.success());
    let victim_cache = dir.join("victim-cache");
    std::fs::create_dir_all(&victim_cache).unwrap();
    std::fs::set_permissions(&victim_cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown(&victim_cache, VICTIM);
    let swap_dir = dir.join("attacker-dir");
    std::fs::create_dir_all(&swap_dir).unwrap();
    chown(&swap_dir, ATTACKER);
    let link = swap_dir.join("cache");
    let stop = dir.join("stop");
    let script = format!(
        "while [ ! -e \"$STOP\" ]; do \
           ln -sfn {victim} {link}.new && mv -T {link}.new {link}; \
           ln -sfn {evil} {link}.new && mv -T {link}.new {link}; \
         done",
        victim = victim_cache.display(),
        evil = attacker_cache.display(),
        link = link.display(),
    );
    let mut attacker = start_attacker(&script, &stop);
    let result =
        std::panic::catch_unwind(|| victim_rounds(&link, false, &[(honest.clone(), 1)], 150));
    std::fs::write(&stop, "").unwrap();
    attacker.wait().unwrap();
    result.unwrap();
}

/// A shared, keyed cache the attacker can write: links at every level, FIFOs, devices,
/// sparse giants, renamed and forged entries and swapped version directories, while the
/// victim runs, collects and clears. Nothing outside the cache is touched, every run is
/// right.
#[test]
fn a_second_user_writing_a_shared_cache_harms_nothing() {
    if !two_users() {
        return;
    }
    let dir = scratch("shared");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let docs = documents(&dir);
    chown(&docs, VICTIM);
    let before = snapshot(&docs);
    let (one, two) = (module(&dir, "one", 1), module(&dir, "two", 2));
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    // The names the victim's entries will have (keyed names, which the attacker could not
    // compute; given here so that every plant lands where the victim looks), and an unsealed
    // forged artifact for them.
    let rehearsal = dir.join("rehearsal");
    let mut names = Vec::new();
    let mut forged = PathBuf::new();
    for (wasm, answer) in [(&one, 1), (&two, 2)] {
        let mut keyed = kiln(&rehearsal);
        keyed.env("KILN_CACHE_KEY", KEY);
        assert_answer(&run_answer(keyed, wasm), answer);
    }
    for entry in entries(&rehearsal) {
        let shard = shard_name(entry.parent().unwrap());
        names.push(format!(
            "{shard}/{}",
            entry.file_name().unwrap().to_str().unwrap()
        ));
        let artifact = std::fs::read(&entry).unwrap();
        let of_one = kiln_artifact::source::fast_hash(&module_bytes(1));
        if artifact.windows(16).any(|w| w == of_one) {
            forged = dir.join("forged");
            std::fs::write(
                &forged,
                forge(&artifact, &module_bytes(1), &module_bytes(2)),
            )
            .unwrap();
        }
    }
    assert_eq!(names.len(), 2);
    assert!(
        !forged.as_os_str().is_empty(),
        "no rehearsal entry was module one's"
    );
    let stop = dir.join("stop");
    let version = kiln_artifact::header::FORMAT_VERSION;
    let script = format!(
        "c={cache}; d={docs}; v={version}; i=0; \
         while [ ! -e \"$STOP\" ]; do i=$((i+1)); e=$c/evil$i/$v; \
           mkdir -p $e/00 2>/dev/null; \
           ln -sfn $d $e/01; \
           ln -sfn $d/letter.txt $e/00/00ffffffffffffffffffffffffffffff; \
           for n in {names}; do \
             mkdir -p $e/${{n%/*}} 2>/dev/null; \
             case $((i % 5)) in \
               0) mkfifo $e/$n ;; \
               1) ln -sfn /dev/zero $e/$n ;; \
               2) truncate -s 3G $e/$n ;; \
               3) ln -sfn $d/letter.txt $e/$n ;; \
               *) cp {forged} $e/$n ;; \
             esac 2>/dev/null; \
           done; \
           mv -T $c/$v $c/old$i 2>/dev/null; \
           mv -T $e $c/$v 2>/dev/null; \
           ln -sfn $d $c/$v.link; mv -T $c/$v.link $c/$v 2>/dev/null; \
           rm -rf $c/old$((i-3)) $c/evil$((i-3)) 2>/dev/null; \
         done",
        cache = cache.display(),
        docs = docs.display(),
        names = names.join(" "),
        forged = forged.display(),
    );
    let mut attacker = start_attacker(&script, &stop);
    let result = std::panic::catch_unwind(|| {
        victim_rounds(&cache, true, &[(one.clone(), 1), (two.clone(), 2)], 25)
    });
    std::fs::write(&stop, "").unwrap();
    attacker.wait().unwrap();
    result.unwrap();
    assert_eq!(snapshot(&docs), before, "the victim's documents changed");
}

/// A module with enough functions that its artifact is mapped, not read (over 128 KiB).
fn large_module(dir: &Path, answer: i32) -> PathBuf {
    let mut wat = format!(
        r#"(module (func (export "answer") (param i32) (result i32)
             (i32.add (local.get 0) (i32.const {answer})))"#
    );
    for i in 0..3000 {
        wat.push_str(&format!(
            "(func (export \"f{i}\") (param i32) (result i32) \
             (i32.mul (i32.add (local.get 0) (i32.const {i})) (i32.const 3)))"
        ));
    }
    wat.push(')');
    let path = dir.join("large.wasm");
    std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
    path
}

/// On a file system mounted `noexec` (common for `/tmp` and home volumes) no file page can
/// be made executable: hits of small and large entries still load, by copying the checked
/// code.
#[test]
fn hits_load_from_a_noexec_cache_directory() {
    let dir = scratch("noexec");
    let mount = dir.join("mount");
    std::fs::create_dir_all(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "noexec,size=64m", "tmpfs"])
        .arg(&mount)
        .output();
    if !matches!(&mounted, Ok(o) if o.status.success()) {
        eprintln!("SKIPPED: cannot mount a noexec tmpfs here ({mounted:?})");
        return;
    }
    let result = std::panic::catch_unwind(|| {
        let cache = mount.join("cache");
        for wasm in [module(&dir, "small", 4), large_module(&dir, 4)] {
            assert_answer(&run_answer(kiln(&cache), &wasm), 4);
            let mut logged = kiln(&cache);
            logged.env("KILN_LOG", "kiln=debug");
            let out = run_answer(logged, &wasm);
            assert_answer(&out, 4);
            assert!(
                stderr(&out).contains("module cache hit"),
                "{}",
                stderr(&out)
            );
            assert!(!stderr(&out).contains("unusable"), "{}", stderr(&out));
        }
        let sizes: Vec<u64> = entries(&cache)
            .iter()
            .map(|e| std::fs::metadata(e).unwrap().len())
            .collect();
        assert!(sizes.iter().any(|&s| s > 128 * 1024), "{sizes:?}");
    });
    let _ = Command::new("umount").arg(&mount).status();
    result.unwrap();
}

/// A program given the directory that holds the unkeyed cache could write entries that a
/// later start runs: `kiln run` says so (and says nothing when entries are authenticated).
#[test]
fn a_preopen_holding_the_unkeyed_cache_is_warned_about() {
    let dir = scratch("preopen");
    let cache = dir.join("home/.cache/kiln");
    std::fs::create_dir_all(&cache).unwrap();
    let wasm = module(&dir, "m", 2);
    let out = kiln(&cache)
        .args(["run", "--dir"])
        .arg(dir.join("home"))
        .arg(&wasm)
        .args(["--invoke", "answer", "1"])
        .output()
        .unwrap();
    assert_answer(&out, 2);
    assert!(
        stderr(&out).contains("write access to the module cache"),
        "{}",
        stderr(&out)
    );
    let out = kiln(&cache)
        .env("KILN_CACHE_KEY", KEY)
        .args(["run", "--dir"])
        .arg(dir.join("home"))
        .arg(&wasm)
        .args(["--invoke", "answer", "1"])
        .output()
        .unwrap();
    assert_answer(&out, 2);
    assert!(!stderr(&out).contains("module cache ("), "{}", stderr(&out));
}
