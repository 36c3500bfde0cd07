//! What running a script produced: one [`Outcome`] per directive, collected in a [`Report`].

use std::fmt;

/// Why one directive did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The script (or a module text inside it) could not be parsed or encoded.
    #[error("cannot parse: {0}")]
    Parse(String),
    /// A module that should compile did not.
    #[error("module failed to compile: {0}")]
    Compile(String),
    /// The artifact round trip (`serialize` then checked `deserialize`) failed.
    #[error("artifact round trip failed: {0}")]
    RoundTrip(String),
    /// A module that should instantiate did not.
    #[error("module failed to instantiate: {0}")]
    Instantiate(String),
    /// A module that should be rejected was accepted.
    #[error("module was accepted, expected it to be rejected ({expected})")]
    Accepted {
        /// The spec's expected error message.
        expected: String,
    },
    /// An invocation failed where it should have returned.
    #[error("invocation failed: {0}")]
    Invoke(String),
    /// Results differ from the expected ones.
    #[error("wrong results: expected {expected}, got {got}")]
    Results {
        /// Expected values, rendered.
        expected: String,
        /// Actual values, rendered.
        got: String,
    },
    /// Something returned or failed differently than a trap was expected.
    #[error("expected trap `{expected}`, got {got}")]
    NoTrap {
        /// The spec's trap message.
        expected: String,
        /// What happened instead.
        got: String,
    },
    /// A module or export the directive names does not exist.
    #[error("{0}")]
    Missing(String),
    /// A directive, value or feature the runner does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The engine panicked while running the directive.
    #[error("panicked: {0}")]
    Panic(String),
}

/// The result of one directive of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// 1-based line of the directive in the script.
    pub line: usize,
    /// The directive's keyword, e.g. `assert_return`.
    pub directive: &'static str,
    /// `Ok` if the directive passed.
    pub result: Result<(), Failure>,
}

impl Outcome {
    /// Whether the directive passed.
    pub fn passed(&self) -> bool {
        self.result.is_ok()
    }
}

/// Every directive's outcome for one script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The script's file name, as given to the runner.
    pub file: String,
    /// One entry per directive, in script order.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// How many directives passed.
    pub fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.passed()).count()
    }

    /// How many directives failed.
    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.passed()
    }

    /// The failed directives, in script order.
    pub fn failures(&self) -> impl Iterator<Item = (&Outcome, &Failure)> {
        self.outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().err().map(|f| (o, f)))
    }
}

/// `file:LINE: directive: message`, one line per failure.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (outcome, failure) in self.failures() {
            writeln!(
                f,
                "{}:{}: {}: {}",
                self.file, outcome.line, outcome.directive, failure
            )?;
        }
        write!(
            f,
            "{}: {} passed, {} failed",
            self.file,
            self.passed(),
            self.failed()
        )
    }
}
