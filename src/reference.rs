//! Image names (`[registry/]repository[:tag]`), parsed and normalized the way docker does.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Docker Hub's canonical domain.
pub const DOCKER_HUB: &str = "docker.io";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A tagged image reference, e.g. `registry.example.com:5000/team/app:1.4.0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    domain: String,
    path: String,
    tag: String,
}

impl Reference {
    /// Registry domain, normalized (`docker.io` for Docker Hub).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Repository path within the registry (`library/app` for an official Docker Hub name).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag (`latest` when none was given).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Fully qualified name, e.g. `docker.io/library/app:latest` (what containerd records).
    pub fn full(&self) -> String {
        format!("{}/{}:{}", self.domain, self.path, self.tag)
    }

    /// The short form docker prints, e.g. `app:latest` or `localhost:5000/app:1`.
    pub fn familiar(&self) -> String {
        if self.domain == DOCKER_HUB {
            // Only an official image loses `library/`: `library/a/b` shortened would name `a/b`.
            let path = match self.path.strip_prefix("library/") {
                Some(name) if !name.contains('/') => name,
                _ => &self.path,
            };
            // Without its domain, `docker.io/a.b/app` would read as registry `a.b`.
            if split_domain(path).0.is_none() {
                return format!("{path}:{}", self.tag);
            }
        }
        self.full()
    }

    /// A reference for `name` with `tag`, both validated.
    pub fn with_tag(name: &str, tag: &str) -> Result<Reference> {
        format!("{name}:{tag}").parse()
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.familiar())
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(input: &str) -> Result<Reference> {
        let fail = |reason: &str| Error::Reference {
            name: input.to_owned(),
            reason: reason.to_owned(),
        };
        if input.is_empty() {
            return Err(fail("it is empty"));
        }
        if input.contains('@') {
            return Err(fail(
                "a digest cannot name an image being built; use NAME[:TAG]",
            ));
        }
        let (domain, rest) = split_domain(input);
        // A ':' after the last '/' starts the tag.
        let (name, tag) = match rest.rfind(':') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        if let Some(domain) = domain {
            validate_domain(domain).map_err(|r| fail(&r))?;
        }
        for component in name.split('/') {
            validate_path_component(component).map_err(|r| fail(&r))?;
        }
        let tag = match tag {
            Some(tag) => {
                validate_tag(tag).map_err(|r| fail(&r))?;
                tag
            }
            None => DEFAULT_TAG,
        };
        let (domain, path) = match domain {
            None | Some("docker.io" | "index.docker.io") => {
                let path = if name.contains('/') {
                    name.to_owned()
                } else {
                    format!("library/{name}")
                };
                (DOCKER_HUB.to_owned(), path)
            }
            Some(domain) => (domain.to_owned(), name.to_owned()),
        };
        if domain.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(fail("the repository name is longer than 255 characters"));
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.to_owned(),
        })
    }
}

/// Docker's rule: the first component is a registry when it has a `.` or `:`, is `localhost`, or has
/// an uppercase letter (repository paths are lowercase).
fn split_domain(input: &str) -> (Option<&str>, &str) {
    match input.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, input),
    }
}

fn validate_domain(domain: &str) -> std::result::Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || domain.starts_with('[') => (host, Some(port)),
        _ => (domain, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("registry port `{port}` is not a number"));
        }
    }
    if let Some(ipv6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return if !ipv6.is_empty() && ipv6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            Ok(())
        } else {
            Err(format!(
                "registry address `{host}` is not a valid IPv6 address"
            ))
        };
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.split('.').all(valid_label) {
        Ok(())
    } else {
        Err(format!("registry host `{host}` is not a valid host name"))
    }
}

fn validate_path_component(component: &str) -> std::result::Result<(), String> {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() {
        return Err("the repository name has an empty path component".to_owned());
    }
    if let Some(b) = bytes.iter().find(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "repository names must be lowercase (found `{}`)",
            *b as char
        ));
    }
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(format!(
            "path component `{component}` must start and end with a lowercase letter or digit"
        ));
    }
    // Separators between alphanumeric runs: one '.', one or two '_', or any number of '-'.
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return Err(format!(
                "path component `{component}` has an invalid separator `{sep}` (allowed: `.`, `_`, `__`, `-`)"
            ));
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    if bytes.is_empty() {
        return Err("the tag after `:` is empty".to_owned());
    }
    if bytes.len() > MAX_TAG_LEN {
        return Err("the tag is longer than 128 characters".to_owned());
    }
    if !word(bytes[0]) || !bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-') {
        return Err(format!(
            "tag `{tag}` may hold only letters, digits, `_`, `.` and `-`, and must not start with `.` or `-`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn short_names_normalize_to_docker_hub_library() {
        let r = parse("app");
        assert_eq!(r.full(), "docker.io/library/app:latest");
        assert_eq!(r.familiar(), "app:latest");
        assert_eq!(r.tag(), "latest");
    }

    #[test]
    fn names_with_registry_port_and_tag() {
        let r = parse("localhost:5000/team/app:1.4.0");
        assert_eq!(r.domain(), "localhost:5000");
        assert_eq!(r.path(), "team/app");
        assert_eq!(r.tag(), "1.4.0");
        assert_eq!(r.familiar(), "localhost:5000/team/app:1.4.0");
        assert_eq!(parse("localhost/app").full(), "localhost/app:latest");
        assert_eq!(
            parse("registry.example.com/app:v1").full(),
            "registry.example.com/app:v1"
        );
        assert_eq!(parse("[::1]:5000/app").full(), "[::1]:5000/app:latest");
    }

    #[test]
    fn docker_hub_aliases_and_user_repositories() {
        assert_eq!(parse("user/app:1").full(), "docker.io/user/app:1");
        assert_eq!(parse("user/app:1").familiar(), "user/app:1");
        assert_eq!(
            parse("docker.io/app").full(),
            "docker.io/library/app:latest"
        );
        assert_eq!(
            parse("index.docker.io/library/app").familiar(),
            "app:latest"
        );
    }

    #[test]
    fn library_is_dropped_only_from_official_single_component_names() {
        // `team/app:1` would name docker.io/team/app, another repository.
        let r = parse("library/team/app:1");
        assert_eq!(r.path(), "library/team/app");
        assert_eq!(r.familiar(), "library/team/app:1");
        assert_eq!(parse(&r.familiar()), r);
    }

    #[test]
    fn docker_hub_names_that_would_read_as_a_registry_keep_the_domain() {
        for name in ["docker.io/team.x/app:1", "docker.io/localhost/app:1"] {
            let r = parse(name);
            assert_eq!(r.familiar(), name);
            assert_eq!(parse(&r.familiar()), r);
        }
    }

    #[test]
    fn separators_follow_the_distribution_grammar() {
        for ok in ["a.b", "a_b", "a__b", "a---b", "a-b.c_d", "0"] {
            parse(ok);
        }
        for bad in [
            "a..b", "a___b", "a.-b", "-a", "a-", "_a", "a/", "/a", "a//b",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn invalid_references_are_refused_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("App", "lowercase"),
            ("app:", "tag after `:` is empty"),
            ("app:-x", "must not start"),
            ("app:a b", "may hold only"),
            ("app@sha256:abc", "digest"),
            ("my app", "invalid separator"),
            ("host:port/app", "port `port`"),
        ];
        for (input, needle) in cases {
            let err = input.parse::<Reference>().unwrap_err().to_string();
            assert!(err.contains(needle), "{input:?}: {err}");
            assert!(err.starts_with("invalid image name"), "{err}");
        }
        let long_tag = format!("app:{}", "x".repeat(129));
        assert!(long_tag.parse::<Reference>().is_err());
    }
}
