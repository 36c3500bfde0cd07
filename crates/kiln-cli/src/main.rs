//! The `kiln` command-line tool: compile WebAssembly to artifacts, run modules and
//! artifacts, inspect artifacts and run spec scripts.

mod cache;
mod compile;
mod inspect;
mod key;
mod progress;
mod run;
mod wast;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

/// Kiln: a WebAssembly runtime whose compiled modules load from a zero-copy archive.
#[derive(Parser)]
#[command(name = "kiln", version, about)]
struct Cli {
    /// Print nothing but results and errors (no progress bar).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a .wasm or .wat module into a .kiln artifact.
    Compile(compile::CompileArgs),
    /// Run a module (.wasm, .wat) or an artifact (.kiln). Exit status: the program's own
    /// (`proc_exit`, 0 to 125), 134 after a trap or --timeout, 1 when Kiln fails or the
    /// program exits with a status outside 0 to 125.
    Run(run::RunArgs),
    /// Describe an artifact: header, sections, imports, exports and functions.
    Inspect(inspect::InspectArgs),
    /// Run WebAssembly spec scripts (.wast).
    Wast(wast::WastArgs),
    /// Show, clear or trim the module cache that `kiln run` uses.
    Cache(cache::CacheArgs),
}

/// A failed command.
pub enum CliError {
    /// The one line printed after `error: `.
    Message(String),
    /// Standard output was closed before everything was written (`kiln inspect m.kiln |
    /// head`): the command stops quietly with status 141, as a tool killed by `SIGPIPE`.
    OutputClosed,
}

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError::Message(e.to_string())
    }
}

/// Builds a [`CliError`] from a format string.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => { $crate::CliError::Message(format!($($arg)*)) };
}

/// Writes to standard output; a closed output is [`CliError::OutputClosed`], not a panic.
pub fn write_out(args: std::fmt::Arguments<'_>) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::OutputClosed,
            _ => fail!("cannot write to standard output: {e}"),
        })
}

/// `print!` for command output: evaluates to `Result<(), CliError>` ([`write_out`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::write_out(format_args!($($arg)*)) };
}

/// `println!` for command output: evaluates to `Result<(), CliError>` ([`write_out`]).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// What a successful command asks the process to exit with.
pub type CliResult = Result<ExitCode, CliError>;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error: {message}{at}");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help, --version, and the help shown when no command is given.
        Err(e)
            if !e.use_stderr()
                || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            e.exit()
        }
        Err(e) => {
            // One line: clap's message without the usage block.
            let text = e.to_string();
            let message = text.split("\n\n").next().unwrap_or(&text);
            let words: Vec<&str> = message.split_whitespace().collect();
            eprintln!("{}", words.join(" "));
            return ExitCode::from(2);
        }
    };
    progress::set_quiet(cli.quiet);
    // Diagnostics (failed WASI calls, fallbacks, ...) on stderr when KILN_LOG asks for them,
    // e.g. `KILN_LOG=debug`.
    // Without KILN_LOG, warnings only (a module cache that cannot be used, for example).
    let filter = tracing_subscriber::EnvFilter::try_from_env("KILN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let result = std::panic::catch_unwind(|| match cli.command {
        Command::Compile(args) => compile::main(args),
        Command::Run(args) => run::main(args),
        Command::Inspect(args) => inspect::main(args),
        Command::Wast(args) => wast::main(args),
        Command::Cache(args) => cache::main(args),
    });
    match result {
        Ok(Ok(code)) => code,
        Ok(Err(CliError::OutputClosed)) => ExitCode::from(141),
        Ok(Err(CliError::Message(message))) => {
            let line: Vec<&str> = message.lines().map(str::trim).collect();
            eprintln!("error: {}", line.join(" "));
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::from(101),
    }
}
