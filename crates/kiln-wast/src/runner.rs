//! The script runner: parses a `.wast` text, runs its directives one by one against a fresh
//! store (see [`crate::script`]) and collects their outcomes with line numbers.

use std::panic::{AssertUnwindSafe, catch_unwind};

use kiln::Engine;
use wast::lexer::Lexer;
use wast::parser::{self, ParseBuffer};
use wast::token::Span;
use wast::{Wast, WastDirective};

use crate::outcome::{Failure, Outcome, Report};
use crate::script::Script;

/// Runs `.wast` scripts against one [`Engine`].
///
/// Each [`run`](WastRunner::run) starts from a new store holding only the `spectest` module.
#[derive(Clone)]
pub struct WastRunner {
    engine: Engine,
    unlinkable_accepts_trap: bool,
}

impl WastRunner {
    /// A runner compiling with `engine`. It accepts a trap for `assert_unlinkable`, as
    /// WebAssembly 1.0 scripts expect (segments that do not fit were a link error then).
    pub fn new(engine: Engine) -> Self {
        WastRunner {
            engine,
            unlinkable_accepts_trap: true,
        }
    }

    /// Whether `assert_unlinkable` also passes when instantiation traps (WebAssembly 1.0
    /// semantics; on by default).
    pub fn unlinkable_accepts_trap(&mut self, accept: bool) -> &mut Self {
        self.unlinkable_accepts_trap = accept;
        self
    }

    /// Runs the script `text` (named `file` in the report) and returns every directive's
    /// outcome. A script that does not parse gives one failed outcome at the error's line.
    pub fn run(&self, file: &str, text: &str) -> Report {
        let (text, uninstantiable) = rewrite_uninstantiable(text);
        let lines = LineIndex::new(&text);
        let mut report = Report {
            file: file.to_owned(),
            outcomes: Vec::new(),
        };
        let mut lexer = Lexer::new(&text);
        lexer.allow_confusing_unicode(true);
        let buf = match ParseBuffer::new_with_lexer(lexer) {
            Ok(buf) => buf,
            Err(e) => {
                report.outcomes.push(parse_failure(&lines, &e));
                return report;
            }
        };
        let wast = match parser::parse::<Wast<'_>>(&buf) {
            Ok(wast) => wast,
            Err(e) => {
                report.outcomes.push(parse_failure(&lines, &e));
                return report;
            }
        };

        let mut script = match Script::new(&self.engine, self.unlinkable_accepts_trap) {
            Ok(script) => script,
            Err(e) => {
                report.outcomes.push(Outcome {
                    line: 1,
                    directive: "spectest",
                    result: Err(Failure::Instantiate(format!(
                        "cannot define the spectest module: {e}"
                    ))),
                });
                return report;
            }
        };
        for directive in wast.directives {
            let span = directive.span();
            let name = if uninstantiable.contains(&span.offset()) {
                "assert_uninstantiable"
            } else {
                directive_name(&directive)
            };
            let result = catch_unwind(AssertUnwindSafe(|| script.run(directive, name)))
                .unwrap_or_else(|payload| Err(Failure::Panic(panic_message(&*payload))));
            report.outcomes.push(Outcome {
                line: lines.line(span),
                directive: name,
                result,
            });
        }
        report
    }
}

/// `wast` 263 no longer parses `assert_uninstantiable`; it means "instantiation traps",
/// which is `assert_trap` on a module. Rewrite the keyword in place (same length, so every
/// offset stays valid) and remember where, to report it under its own name.
fn rewrite_uninstantiable(text: &str) -> (String, Vec<usize>) {
    const FROM: &str = "(assert_uninstantiable";
    const TO: &str = "(assert_trap          ";
    let offsets: Vec<usize> = text.match_indices(FROM).map(|(at, _)| at + 1).collect();
    if offsets.is_empty() {
        return (text.to_owned(), offsets);
    }
    (text.replace(FROM, TO), offsets)
}

fn parse_failure(lines: &LineIndex, e: &wast::Error) -> Outcome {
    let mut message = e.message();
    message.truncate(message.find('\n').unwrap_or(message.len()));
    Outcome {
        line: lines.line(e.span()),
        directive: "script",
        result: Err(Failure::Parse(message)),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

/// Maps byte offsets to 1-based line numbers.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    fn line(&self, span: Span) -> usize {
        self.starts.partition_point(|&s| s <= span.offset()).max(1)
    }
}

/// The directive's keyword, for reports.
pub(crate) fn directive_name(d: &WastDirective<'_>) -> &'static str {
    match d {
        WastDirective::Module(_) => "module",
        WastDirective::ModuleDefinition(_) => "module definition",
        WastDirective::ModuleInstance { .. } => "module instance",
        WastDirective::AssertMalformed { .. } => "assert_malformed",
        WastDirective::AssertInvalid { .. } => "assert_invalid",
        WastDirective::AssertInvalidCustom { .. } => "assert_invalid_custom",
        WastDirective::AssertMalformedCustom { .. } => "assert_malformed_custom",
        WastDirective::Register { .. } => "register",
        WastDirective::Invoke(_) => "invoke",
        WastDirective::AssertTrap { .. } => "assert_trap",
        WastDirective::AssertReturn { .. } => "assert_return",
        WastDirective::AssertExhaustion { .. } => "assert_exhaustion",
        WastDirective::AssertUnlinkable { .. } => "assert_unlinkable",
        WastDirective::AssertException { .. } => "assert_exception",
        WastDirective::AssertSuspension { .. } => "assert_suspension",
        WastDirective::Thread(_) => "thread",
        WastDirective::Wait { .. } => "wait",
    }
}
