//! `kiln cache`: where the module cache is, what it holds, and emptying or trimming it; and
//! the cache configuration `kiln run` uses (`KILN_CACHE_DIR`, and the key of
//! [`crate::key::cache_key`]), the same for every command.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use kiln::{Cache, CacheConfig};

use crate::{CliError, CliResult, fail, outln};

/// Arguments of `kiln cache`.
#[derive(Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Print the cache directory.
    Dir,
    /// Print the number of entries and their size.
    Stats,
    /// Remove every entry.
    Clear,
    /// Remove least-recently-used entries until the cache fits its limit, and leftovers of
    /// killed writers.
    Gc {
        /// The limit (suffixes K, M, G allowed; default 1G).
        #[arg(long, value_name = "SIZE", value_parser = crate::run::parse_size)]
        max_size: Option<usize>,
    },
}

/// The cache configuration of the command line: the default directory (or
/// `KILN_CACHE_DIR`), 1 GiB, and the cache key ([`crate::key::cache_key`]).
pub fn config_from_env() -> Result<CacheConfig, CliError> {
    let mut config = CacheConfig::new();
    if let Some(key) = crate::key::cache_key()? {
        config.key(key);
    }
    Ok(config)
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn main(args: CacheArgs) -> CliResult {
    let config = config_from_env()?;
    if let CacheCommand::Dir = args.command {
        let dir = config.resolved_directory().ok_or_else(|| {
            fail!("no cache directory: set KILN_CACHE_DIR, XDG_CACHE_HOME or HOME")
        })?;
        outln!("{}", dir.display())?;
        return Ok(ExitCode::SUCCESS);
    }
    // Looking and removing create nothing: a mistyped directory is left as it was.
    let Some(cache) = Cache::open_existing(&config)? else {
        let dir = config.resolved_directory().unwrap_or_default();
        outln!("no module cache at {}", dir.display())?;
        return Ok(ExitCode::SUCCESS);
    };
    match args.command {
        CacheCommand::Dir => unreachable!("handled above"),
        CacheCommand::Stats => {
            let stats = cache.stats()?;
            outln!("directory: {}", cache.directory().display())?;
            outln!("entries: {}", stats.entries)?;
            outln!("size: {} ({} bytes)", human(stats.bytes), stats.bytes)?;
            outln!(
                "limit: {} ({} bytes)",
                human(cache.max_size()),
                cache.max_size()
            )?;
            if stats.temp_files > 0 {
                outln!("unfinished writes: {}", stats.temp_files)?;
            }
            outln!(
                "authenticated: {}",
                if cache.authentication_key().is_some() {
                    "yes"
                } else {
                    "no"
                }
            )?;
        }
        CacheCommand::Clear => {
            let report = cache.clear()?;
            outln!(
                "removed {} entries ({})",
                report.removed,
                human(report.freed)
            )?;
        }
        CacheCommand::Gc { max_size } => {
            let report = cache.gc(max_size.map(|s| s as u64))?;
            outln!(
                "removed {} entries ({}) and {} unfinished writes; {} entries ({}) left",
                report.removed,
                human(report.freed),
                report.temp_removed,
                report.left.entries,
                human(report.left.bytes)
            )?;
            if report.not_removed > 0 {
                eprintln!(
                    "warning: {} files could not be removed (read-only directory, or another \
                     user's files; KILN_LOG=debug says why)",
                    report.not_removed
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
