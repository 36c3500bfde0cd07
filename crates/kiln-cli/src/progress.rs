//! The compile progress bar: shown on a terminal only, only once compiling has taken about
//! a second (quick compiles print nothing), and never with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long compiling runs before the bar appears.
const DELAY: Duration = Duration::from_secs(1);

/// Whether `--quiet` was given.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Turns progress output off for the whole process.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// A progress display for one compilation.
pub struct CompileProgress {
    bar: Option<ProgressBar>,
    start: Instant,
}

impl CompileProgress {
    /// A display for compiling `what`; inert unless stderr is a terminal and not quiet.
    pub fn new(what: &str) -> Self {
        let enabled = !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal();
        let bar = enabled.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
            let style = ProgressStyle::with_template(
                "compiling {msg} [{bar:30}] {pos}/{len} functions ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(what.to_owned());
            bar
        });
        CompileProgress {
            bar,
            start: Instant::now(),
        }
    }

    /// The callback for the compiler: `done` of `total` units compiled.
    pub fn update(&self, done: usize, total: usize) {
        let Some(bar) = &self.bar else { return };
        if bar.is_hidden() {
            if self.start.elapsed() < DELAY {
                return;
            }
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}

impl Drop for CompileProgress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
