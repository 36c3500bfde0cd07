//! Kiln's keys on the command line, each 64 hexadecimal digits in a variable or in a file
//! that `<VARIABLE>_FILE` names (a file keeps the key out of the environment and of shell
//! history). The artifact key (`KILN_ARTIFACT_KEY`): with it, `kiln compile` seals what it
//! writes and `kiln run` runs artifacts whose seal verifies. The cache key (`KILN_CACHE_KEY`,
//! else the artifact key): authenticates the module cache, for `kiln run` and every
//! `kiln cache` command alike. Neither is ever passed to a guest
//! (`kiln_wasi::is_kiln_secret`) or printed.

use kiln::ArtifactKey;

use crate::{CliError, fail};

/// The variable that holds the artifact key.
pub const KEY_VARIABLE: &str = "KILN_ARTIFACT_KEY";

/// The variable that holds the cache's own key.
pub const CACHE_KEY_VARIABLE: &str = "KILN_CACHE_KEY";

/// The artifact key, if one is set.
pub fn artifact_key() -> Result<Option<ArtifactKey>, CliError> {
    from_env(KEY_VARIABLE)
}

/// The key that authenticates the module cache: the cache key, else the artifact key (the
/// engine seals cache entries with its artifact key when the cache has none of its own).
pub fn cache_key() -> Result<Option<ArtifactKey>, CliError> {
    match from_env(CACHE_KEY_VARIABLE)? {
        Some(key) => Ok(Some(key)),
        None => artifact_key(),
    }
}

/// Whether a cache key is given (in any of the four variables), without reading it.
pub fn cache_key_is_set() -> bool {
    [KEY_VARIABLE, CACHE_KEY_VARIABLE]
        .iter()
        .any(|v| std::env::var_os(v).is_some() || std::env::var_os(format!("{v}_FILE")).is_some())
}

/// The key in `variable`, or in the file `<variable>_FILE` names.
fn from_env(variable: &str) -> Result<Option<ArtifactKey>, CliError> {
    let file_variable = format!("{variable}_FILE");
    match (std::env::var_os(variable), std::env::var_os(&file_variable)) {
        (Some(_), Some(_)) => Err(fail!("set {variable} or {file_variable}, not both")),
        (Some(text), None) => {
            let text = text
                .into_string()
                .map_err(|_| fail!("{variable} is not 64 hexadecimal digits"))?;
            ArtifactKey::from_hex(&text)
                .map(Some)
                .map_err(|e| fail!("{variable}: {e}"))
        }
        (None, Some(path)) => ArtifactKey::from_file(std::path::Path::new(&path))
            .map(Some)
            .map_err(|e| fail!("{file_variable}: {e}")),
        (None, None) => Ok(None),
    }
}
