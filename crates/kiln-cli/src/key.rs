//! The artifact key of the command line: `KILN_ARTIFACT_KEY`, 64 hexadecimal digits. With it,
//! `kiln compile` seals what it writes and `kiln run` runs artifacts whose seal verifies.

use kiln::ArtifactKey;

use crate::{CliError, fail};

/// The environment variable that holds the key.
pub const KEY_VARIABLE: &str = "KILN_ARTIFACT_KEY";

/// The key from the environment, if one is set.
pub fn from_env() -> Result<Option<ArtifactKey>, CliError> {
    match std::env::var(KEY_VARIABLE) {
        Ok(text) => ArtifactKey::from_hex(&text)
            .map(Some)
            .map_err(|e| fail!("{KEY_VARIABLE}: {e}")),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(fail!("{KEY_VARIABLE} is not 64 hexadecimal digits"))
        }
    }
}
