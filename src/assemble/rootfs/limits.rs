//! The bounds a scan of a base image keeps to, in memory and in time, and the one a user may raise
//! ([`MAX_EXPANDED_VAR`]).

use crate::error::{Error, Result};
use crate::util::sanitize;

/// Paths one image may hold.
pub const MAX_ENTRIES: usize = 2_000_000;
/// Bytes of names and link targets kept in the index.
pub const MAX_NAME_BYTES: usize = 256 << 20;
/// Largest file whose content is kept; a larger one is indexed, but
/// [`RootFs::file`](super::RootFs::file) has no content for it.
pub const MAX_KEPT_FILE: u64 = 1 << 20;
/// Content kept for all the files asked for together.
pub const MAX_KEPT_TOTAL: usize = 16 << 20;
/// Symbolic links followed in one lookup: Linux's limit.
pub const MAX_LINK_HOPS: usize = 40;
/// Longest entry path and link target: Linux's PATH_MAX, beyond which no runtime can create them.
pub const MAX_PATH: usize = 4096;
/// Path components walked while placing a whole image's entries (a bound on time: entries reached
/// through links to deep directories cost a walk each).
const MAX_STEPS: u64 = 200_000_000;
/// Reads of the layers in one scan: the first, then one more while files to keep turn out to be
/// reached through links (a link, then a hard link behind it, then one behind that).
pub const MAX_SCANS: usize = 4;
/// Bytes the layers of one image may decompress to, together: a bound on the time a scan takes
/// whatever the blobs' size (at this limit, 10 to 13 s of CPU on this project's machine for a 300
/// KB blob of zeros). The largest common bases expand to a few GiB; 8 GiB leaves room above them,
/// while a 300 KB zstd blob can claim terabytes. [`MAX_EXPANDED_VAR`] raises it for a base that
/// really is larger.
pub const MAX_EXPANDED: u64 = 8 << 30;
/// The environment variable that replaces [`MAX_EXPANDED`]: bytes, or a number with `KiB`, `MiB`,
/// `GiB` or `TiB`.
pub const MAX_EXPANDED_VAR: &str = "ZEROIMAGE_MAX_BASE_SIZE";

/// The bounds a scan keeps to; tests lower them.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub(super) entries: usize,
    pub(super) name_bytes: usize,
    pub(super) kept_file: u64,
    pub(super) kept_total: usize,
    pub(super) steps: u64,
    pub(super) expanded: u64,
}

pub(super) const LIMITS: Limits = Limits {
    entries: MAX_ENTRIES,
    name_bytes: MAX_NAME_BYTES,
    kept_file: MAX_KEPT_FILE,
    kept_total: MAX_KEPT_TOTAL,
    steps: MAX_STEPS,
    expanded: MAX_EXPANDED,
};

/// The limit on what one image's layers decompress to: [`MAX_EXPANDED_VAR`] when it is set, else
/// [`MAX_EXPANDED`].
pub fn max_expanded() -> Result<u64> {
    match std::env::var(MAX_EXPANDED_VAR) {
        Err(std::env::VarError::NotPresent) => Ok(MAX_EXPANDED),
        Ok(text) => parse_size(&text).ok_or_else(|| {
            Error::Invalid(format!(
                "{MAX_EXPANDED_VAR}=`{}` is not a size; write bytes or a number with KiB, MiB, \
                 GiB or TiB, e.g. {MAX_EXPANDED_VAR}=32GiB",
                sanitize::outside(&text, 100)
            ))
        }),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::Invalid(format!(
            "{MAX_EXPANDED_VAR} is not UTF-8; write bytes or a number with KiB, MiB, GiB or TiB"
        ))),
    }
}

/// `123`, `512MiB`, `16GiB` (also `K`, `M`, `G`, `T`, `KB` ... all binary), as a byte count.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

/// A byte count in GiB, MiB, or KiB below one MiB (rounded down).
pub(super) fn amount(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_bytes_or_with_binary_units() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size(" 16 GiB "), Some(16 << 30));
        assert_eq!(parse_size("2t"), Some(2 << 40));
        assert_eq!(parse_size("1K"), Some(1024));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("GiB"), None);
        assert_eq!(parse_size("1.5GiB"), None);
        assert_eq!(parse_size("99999999999999999999"), None);
        assert_eq!(parse_size("17179869184TiB"), None, "overflows");
        assert_eq!(amount(MAX_EXPANDED), "8 GiB");
    }
}
