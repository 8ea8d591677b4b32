//! The image's creation time: `SOURCE_DATE_EPOCH` or the Unix epoch by default, so that builds are
//! reproducible; the wall clock only when asked for.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{Error, Result};

/// The environment variable of the reproducible-builds convention.
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// A UTC creation time, used for `created`, history entries and every tar mtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// 1970-01-01T00:00:00Z.
    pub const EPOCH: Timestamp = Timestamp(OffsetDateTime::UNIX_EPOCH);

    /// The default: `SOURCE_DATE_EPOCH` when set (and valid), else the Unix epoch.
    pub fn from_env() -> Result<Timestamp> {
        match std::env::var(SOURCE_DATE_EPOCH) {
            Ok(value) if !value.trim().is_empty() => {
                let seconds: i64 = value.trim().parse().map_err(|_| {
                    Error::Time(format!(
                        "{SOURCE_DATE_EPOCH}=`{value}` is not a number of seconds since 1970; \
                         set it to an integer such as `$(git log -1 --format=%ct)` or unset it"
                    ))
                })?;
                Timestamp::from_unix(seconds)
            }
            _ => Ok(Timestamp::EPOCH),
        }
    }

    /// The value of a `--created` option: `now`, `@SECONDS`, or an RFC 3339 date-time; `None` means
    /// the reproducible default.
    pub fn resolve(option: Option<&str>) -> Result<Timestamp> {
        match option {
            Some(value) => value.parse(),
            None => Timestamp::from_env(),
        }
    }

    /// Seconds since the epoch; before 1970 is refused because tar mtimes cannot express it.
    pub fn from_unix(seconds: i64) -> Result<Timestamp> {
        if seconds < 0 {
            return Err(Error::Time(format!(
                "timestamp {seconds} is before 1970, which tar cannot record"
            )));
        }
        OffsetDateTime::from_unix_timestamp(seconds)
            .map(Timestamp)
            .map_err(|e| Error::Time(format!("timestamp {seconds} is out of range: {e}")))
    }

    /// Whole seconds since the epoch, as tar mtimes record them.
    pub fn unix_seconds(&self) -> u64 {
        u64::try_from(self.0.unix_timestamp()).unwrap_or(0)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, e.g. `1970-01-01T00:00:00Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.format(&Rfc3339).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl FromStr for Timestamp {
    type Err = Error;

    fn from_str(value: &str) -> Result<Timestamp> {
        if value == "now" {
            let now = OffsetDateTime::now_utc();
            // Whole seconds: tar cannot record more, and the config should agree with the layer.
            return Timestamp::from_unix(now.unix_timestamp());
        }
        if let Some(seconds) = value.strip_prefix('@') {
            let seconds: i64 = seconds.parse().map_err(|_| {
                Error::Time(format!(
                    "`{value}` is not `@` followed by a number of seconds"
                ))
            })?;
            return Timestamp::from_unix(seconds);
        }
        let parsed = OffsetDateTime::parse(value, &Rfc3339).map_err(|e| {
            Error::Time(format!(
                "`{value}` is not a valid time ({e}); use `now`, `@SECONDS` or RFC 3339 like 2024-05-01T12:00:00Z"
            ))
        })?;
        Timestamp::from_unix(parsed.unix_timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_formats_as_rfc3339_utc() {
        assert_eq!(Timestamp::EPOCH.to_string(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn accepted_forms() {
        assert_eq!("@0".parse::<Timestamp>().unwrap(), Timestamp::EPOCH);
        assert_eq!(
            "@1700000000".parse::<Timestamp>().unwrap().to_string(),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            "2023-11-15T00:13:20+02:00"
                .parse::<Timestamp>()
                .unwrap()
                .to_string(),
            "2023-11-14T22:13:20Z"
        );
        let now = "now".parse::<Timestamp>().unwrap();
        assert!(now.unix_seconds() > 1_700_000_000);
    }

    #[test]
    fn refused_forms() {
        for bad in [
            "yesterday",
            "@x",
            "@-5",
            "2023-13-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }
}
