//! The shapes of the names Kiln gives what it makes in a cache directory, so that a walk
//! over the directory touches those and nothing else.
//!
//! Layout: `<root>/<format version: decimal>/<shard: 2 hex digits>/<entry: 32 hex digits,
//! the first two the shard's>`, and temporary files `.tmp-<letters, digits, '-', '_'>` beside
//! entries. Anything of another shape (a file a user keeps there by mistake, or one planted
//! by someone who can write a shared cache) is never opened, counted or removed.

use crate::write::TEMP_PREFIX;

/// A format-version directory: 1 to 10 decimal digits.
pub(crate) fn is_version(name: &[u8]) -> bool {
    (1..=10).contains(&name.len()) && name.iter().all(u8::is_ascii_digit)
}

/// A shard directory: two lowercase hexadecimal digits.
pub(crate) fn is_shard(name: &[u8]) -> bool {
    name.len() == 2 && name.iter().all(is_lower_hex)
}

/// An entry of shard `shard`: 32 lowercase hexadecimal digits beginning with the shard's.
pub(crate) fn is_entry(shard: &[u8], name: &[u8]) -> bool {
    name.len() == 32 && name.starts_with(shard) && name.iter().all(is_lower_hex)
}

/// A temporary file of a writer: [`TEMP_PREFIX`] and up to 64 letters, digits, `-` or `_`.
pub(crate) fn is_temp(name: &[u8]) -> bool {
    name.strip_prefix(TEMP_PREFIX.as_bytes())
        .is_some_and(|rest| {
            (1..=64).contains(&rest.len())
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        })
}

fn is_lower_hex(b: &u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_shapes_kiln_writes_are_recognised() {
        assert!(is_version(b"10") && !is_version(b"") && !is_version(b"1x"));
        assert!(!is_version(b"12345678901"));
        assert!(is_shard(b"0f") && !is_shard(b"0F") && !is_shard(b"zz") && !is_shard(b"abc"));
        let entry = b"0f0123456789abcdef0123456789abcd";
        assert!(is_entry(b"0f", entry));
        assert!(!is_entry(b"10", entry), "another shard's name");
        assert!(!is_entry(b"0f", &entry[..31]));
        assert!(!is_entry(b"0f", b"0f0123456789abcdef0123456789abcD"));
        assert!(is_temp(b".tmp-a1_b-C") && !is_temp(b".tmp-") && !is_temp(b".tmp-a/b"));
        assert!(!is_temp(b".tmp-..") && !is_temp(b"tmp-a"));
    }
}
