//! Image configuration the user chooses (`--env`, `--label`, `--user`, `--expose` ...): parsing,
//! validation, and applying it to an image's config.

use std::collections::BTreeMap;

use crate::assemble::compose::ImageSpec;
use crate::error::{Error, Result};

/// Validated image configuration options. Everything is optional; an empty value changes nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// `KEY=VALUE` environment entries, in order; a later entry for the same key wins.
    pub env: Vec<(String, String)>,
    /// Config labels (`LABEL`), shown by `docker inspect`.
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations, e.g. `org.opencontainers.image.source`.
    pub annotations: BTreeMap<String, String>,
    /// `UID[:GID]` or `NAME[:GROUP]`.
    pub user: Option<String>,
    /// Absolute working directory.
    pub workdir: Option<String>,
    /// Exposed ports, normalized to `PORT/tcp` or `PORT/udp`.
    pub expose: Vec<String>,
    /// Normalized to `SIGNAME` or a number.
    pub stop_signal: Option<String>,
    /// Default arguments after the entrypoint (the config's `Cmd`).
    pub args: Vec<String>,
    /// Where the executable lives in the image; `/<name>` when `None`.
    pub entrypoint_path: Option<String>,
}

impl ImageOptions {
    /// Writes these options into `spec`. Environment entries replace earlier ones with the same key (the
    /// default PATH included) in place; labels and annotations override same-named ones.
    pub(crate) fn apply_to(&self, spec: &mut ImageSpec) {
        for (key, value) in &self.env {
            set_env(&mut spec.env, key, value);
        }
        spec.labels.extend(self.labels.clone());
        spec.annotations.extend(self.annotations.clone());
        if let Some(user) = &self.user {
            spec.user = Some(user.clone());
        }
        if let Some(workdir) = &self.workdir {
            spec.workdir = Some(workdir.clone());
        }
        spec.exposed_ports.extend(self.expose.iter().cloned());
        if let Some(signal) = &self.stop_signal {
            spec.stop_signal = Some(signal.clone());
        }
        if !self.args.is_empty() {
            spec.cmd.clone_from(&self.args);
        }
    }

    /// `other`'s values on top of these: lists are appended (so later environment entries win), maps
    /// are overridden key by key, and set scalars replace.
    pub fn overlay(mut self, other: ImageOptions) -> ImageOptions {
        self.env.extend(other.env);
        self.labels.extend(other.labels);
        self.annotations.extend(other.annotations);
        self.user = other.user.or(self.user);
        self.workdir = other.workdir.or(self.workdir);
        for port in other.expose {
            if !self.expose.contains(&port) {
                self.expose.push(port);
            }
        }
        self.stop_signal = other.stop_signal.or(self.stop_signal);
        if !other.args.is_empty() {
            self.args = other.args;
        }
        self.entrypoint_path = other.entrypoint_path.or(self.entrypoint_path);
        self
    }
}

/// Sets `key=value` in an environment list, replacing an existing entry for `key` where it stands.
pub(crate) fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
        Some(existing) => *existing = entry,
        None => env.push(entry),
    }
}

/// Parses `KEY=VALUE` (the value may be empty and may contain `=`). `what` names the option.
pub fn parse_key_value(what: &str, input: &str) -> Result<(String, String)> {
    match input.split_once('=') {
        Some((key, value)) if !key.is_empty() && !key.chars().any(char::is_whitespace) => {
            Ok((key.to_owned(), value.to_owned()))
        }
        _ => Err(Error::Invalid(format!(
            "{what} `{input}` is not KEY=VALUE (a non-empty key without spaces, then `=`)"
        ))),
    }
}

/// Parses an environment entry `KEY=VALUE`; see [`env_pair`].
pub fn parse_env(input: &str) -> Result<(String, String)> {
    let (key, value) = parse_key_value("--env", input)?;
    env_pair(&key, &value).map_err(|e| Error::Invalid(format!("--env `{input}`: {e}")))
}

/// Checks an environment variable given as a name and a value (Cargo.toml's `env` table): the name
/// follows POSIX (letters, digits, `_`, not starting with a digit), so it can never hold the `=`.
pub fn env_pair(key: &str, value: &str) -> Result<(String, String)> {
    let valid = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if valid {
        Ok((key.to_owned(), value.to_owned()))
    } else {
        Err(Error::Invalid(format!(
            "`{key}` is not a valid variable name (letters, digits and `_`, not starting with a digit)"
        )))
    }
}

/// Checks a label or annotation key as [`parse_key_value`] does for the flags.
pub(crate) fn key_value_pair(what: &str, key: &str, value: &str) -> Result<(String, String)> {
    if key.is_empty() || key.contains('=') || key.chars().any(char::is_whitespace) {
        return Err(Error::Invalid(format!(
            "{what} key `{key}` must be non-empty, without `=` or spaces"
        )));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Parses `PORT[/tcp|/udp]` into `PORT/PROTO`.
pub fn parse_port(input: &str) -> Result<String> {
    let (port, proto) = input.split_once('/').unwrap_or((input, "tcp"));
    let proto = proto.to_ascii_lowercase();
    let number: Option<u16> = port.parse().ok().filter(|p| *p > 0);
    match (number, proto.as_str()) {
        (Some(n), "tcp" | "udp" | "sctp") => Ok(format!("{n}/{proto}")),
        (None, _) => Err(Error::Invalid(format!(
            "--expose `{input}`: the port must be a number from 1 to 65535"
        ))),
        _ => Err(Error::Invalid(format!(
            "--expose `{input}`: the protocol must be tcp or udp"
        ))),
    }
}

const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

/// Parses a stop signal: `SIGTERM`, `TERM`, `term` or a number from 1 to 64; names are normalized to
/// `SIGNAME`.
pub fn parse_signal(input: &str) -> Result<String> {
    if let Ok(n) = input.parse::<u8>()
        && (1..=64).contains(&n)
    {
        return Ok(n.to_string());
    }
    let upper = input.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let realtime = name
        .strip_prefix("RTMIN")
        .or_else(|| name.strip_prefix("RTMAX"))
        .is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix(['+', '-'])
                    .is_some_and(|n| n.parse::<u8>().is_ok())
        });
    if SIGNALS.contains(&name) || realtime {
        Ok(format!("SIG{name}"))
    } else {
        Err(Error::Invalid(format!(
            "--stop-signal `{input}` is not a signal; use a name such as SIGTERM or SIGINT, or a number"
        )))
    }
}

/// Checks `UID[:GID]` / `NAME[:GROUP]`.
pub fn parse_user(input: &str) -> Result<String> {
    let valid_part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
    };
    let ok = match input.split_once(':') {
        Some((user, group)) => valid_part(user) && valid_part(group),
        None => valid_part(input),
    };
    if ok {
        Ok(input.to_owned())
    } else {
        Err(Error::Invalid(format!(
            "--user `{input}` is not UID[:GID] or NAME[:GROUP] (for example 65532:65532 or nonroot)"
        )))
    }
}

/// Checks that `path` is absolute and clean (no `.`, `..` or empty components) and returns it without a
/// trailing slash. `what` names the option.
pub fn parse_absolute_path(what: &str, path: &str) -> Result<String> {
    let trimmed = path.trim_end_matches('/');
    let clean = path.starts_with('/')
        && trimmed
            .split('/')
            .skip(1)
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if clean {
        Ok(if trimmed.is_empty() {
            "/".to_owned()
        } else {
            trimmed.to_owned()
        })
    } else {
        Err(Error::Invalid(format!(
            "{what} `{path}` must be an absolute path without `.` or `..` (for example /srv/app)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values() {
        assert_eq!(
            parse_key_value("--label", "a=b=c").unwrap(),
            ("a".into(), "b=c".into())
        );
        assert_eq!(
            parse_key_value("--label", "a=").unwrap(),
            ("a".into(), String::new())
        );
        for bad in ["a", "=b", "a b=c", ""] {
            assert!(parse_key_value("--label", bad).is_err(), "{bad}");
        }
        assert!(parse_env("1X=y").is_err());
        assert!(parse_env("MY-VAR=y").is_err());
        assert!(
            env_pair("A=B", "1").is_err(),
            "a name holding `=` would write A=B=1"
        );
        assert!(env_pair("", "1").is_err());
        assert_eq!(env_pair("A", "B=1").unwrap(), ("A".into(), "B=1".into()));
        assert!(key_value_pair("labels", "a b", "x").is_err());
        assert!(key_value_pair("labels", "a=b", "x").is_err());
        assert_eq!(parse_env("RUST_LOG=info").unwrap().0, "RUST_LOG");
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("8080").unwrap(), "8080/tcp");
        assert_eq!(parse_port("53/UDP").unwrap(), "53/udp");
        for bad in ["0", "65536", "http", "80/icmp", "-1", ""] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), "SIGTERM");
        assert_eq!(parse_signal("int").unwrap(), "SIGINT");
        assert_eq!(parse_signal("9").unwrap(), "9");
        assert_eq!(parse_signal("SIGRTMIN+3").unwrap(), "SIGRTMIN+3");
        for bad in ["SIGFOO", "0", "65", "", "RTMIN+x"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn users_and_paths() {
        for ok in ["65532", "65532:65532", "nonroot", "app:staff"] {
            assert_eq!(parse_user(ok).unwrap(), ok);
        }
        for bad in ["", ":1", "1:", "a b", "a:b:c"] {
            assert!(parse_user(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_absolute_path("--workdir", "/srv/app/").unwrap(),
            "/srv/app"
        );
        assert_eq!(parse_absolute_path("--workdir", "/").unwrap(), "/");
        for bad in ["srv", "/a/../b", "/a//b", "./a", ""] {
            assert!(parse_absolute_path("--workdir", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_is_last_wins_in_place() {
        let mut env = vec!["PATH=/bin".to_owned(), "A=1".to_owned()];
        set_env(&mut env, "PATH", "/usr/bin");
        set_env(&mut env, "B", "2");
        set_env(&mut env, "A", "3");
        assert_eq!(env, ["PATH=/usr/bin", "A=3", "B=2"]);
    }

    #[test]
    fn overlay_appends_lists_and_overrides_scalars() {
        let base = ImageOptions {
            env: vec![("A".into(), "1".into())],
            user: Some("1".into()),
            args: vec!["x".into()],
            expose: vec!["80/tcp".into()],
            ..Default::default()
        };
        let top = ImageOptions {
            env: vec![("A".into(), "2".into())],
            workdir: Some("/w".into()),
            expose: vec!["80/tcp".into(), "443/tcp".into()],
            ..Default::default()
        };
        let merged = base.overlay(top);
        assert_eq!(merged.env.last().unwrap().1, "2");
        assert_eq!(merged.user.as_deref(), Some("1"));
        assert_eq!(merged.workdir.as_deref(), Some("/w"));
        assert_eq!(merged.args, ["x"]);
        assert_eq!(merged.expose, ["80/tcp", "443/tcp"]);
    }
}
