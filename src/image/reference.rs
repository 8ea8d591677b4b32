//! Image names (`[registry/]repository[:tag]`, and `...@sha256:<hex>` for a pinned base image), parsed
//! and normalized the way docker does.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::oci::Digest;

/// Docker Hub's canonical domain.
pub(crate) const DOCKER_HUB: &str = "docker.io";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// An image reference, e.g. `registry.example.com:5000/team/app:1.4.0`: tagged (what we build and
/// push), or pinned to a digest (`app:1.4.0@sha256:...`, `app@sha256:...`; only from
/// [`Reference::parse_pinnable`]).
#[derive(Clone, Debug)]
pub struct Reference {
    domain: String,
    path: String,
    tag: String,
    /// The tag was written (not the `latest` default); only pinned references may lack one.
    tag_given: bool,
    digest: Option<Digest>,
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

    /// The digest a pinned reference names.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The tag or digest the registry's `/manifests/<reference>` endpoint takes: the digest when
    /// pinned, else the tag.
    pub fn manifest_reference(&self) -> String {
        match &self.digest {
            Some(digest) => digest.to_string(),
            None => self.tag.clone(),
        }
    }

    /// The repository's fully qualified name without tag or digest, e.g. `docker.io/library/app`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// Fully qualified name, e.g. `docker.io/library/app:latest` (what containerd records); a pinned
    /// reference adds `@<digest>` (and shows its tag only when one was written).
    pub fn full(&self) -> String {
        self.decorate(self.name())
    }

    /// The short form docker prints, e.g. `app:latest` or `localhost:5000/app:1` (`app@sha256:...`
    /// when pinned).
    pub fn familiar(&self) -> String {
        if self.domain == DOCKER_HUB {
            // Only an official image loses `library/`: `library/a/b` shortened would name `a/b`.
            let path = match self.path.strip_prefix("library/") {
                Some(name) if !name.contains('/') => name,
                _ => &self.path,
            };
            // Without its domain, `docker.io/a.b/app` would read as registry `a.b`.
            if split_domain(path).0.is_none() {
                return self.decorate(path.to_owned());
            }
        }
        self.full()
    }

    /// `name@digest`, fully qualified, when pinned: the exact image, whatever its tag now names.
    pub fn pinned(&self) -> Option<String> {
        self.digest
            .as_ref()
            .map(|digest| format!("{}@{digest}", self.name()))
    }

    /// This reference pinned to `digest` (the tag, if written, is kept for messages).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// `name` with the tag, and the digest when pinned.
    fn decorate(&self, name: String) -> String {
        match &self.digest {
            None => format!("{name}:{}", self.tag),
            Some(digest) if self.tag_given => format!("{name}:{}@{digest}", self.tag),
            Some(digest) => format!("{name}@{digest}"),
        }
    }

    /// A reference for `name` with `tag`, both validated.
    pub fn with_tag(name: &str, tag: &str) -> Result<Reference> {
        format!("{name}:{tag}").parse()
    }

    /// Parses `NAME[:TAG][@DIGEST]`: an image to read (a base image), which a digest may pin. Images
    /// being built or pushed take [`FromStr`], which refuses a digest.
    pub fn parse_pinnable(input: &str) -> Result<Reference> {
        let Some((name, digest)) = input.split_once('@') else {
            return parse(input);
        };
        let fail = |reason: String| Error::Reference {
            name: input.to_owned(),
            reason,
        };
        let digest = Digest::parse(digest).ok_or_else(|| {
            fail(format!(
                "`{}` after `@` is not a digest (sha256:<64 hex> or sha512:<128 hex>)",
                crate::util::sanitize::outside(digest, 140)
            ))
        })?;
        let mut reference = parse(name).map_err(|e| match e {
            Error::Reference { reason, .. } => fail(reason),
            other => other,
        })?;
        reference.digest = Some(digest);
        Ok(reference)
    }
}

/// `app` and `app:latest` are the same reference: whether the tag was written does not count.
impl PartialEq for Reference {
    fn eq(&self, other: &Reference) -> bool {
        self.domain == other.domain
            && self.path == other.path
            && self.tag == other.tag
            && self.digest == other.digest
    }
}

impl Eq for Reference {}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.familiar())
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(input: &str) -> Result<Reference> {
        if input.contains('@') {
            return Err(Error::Reference {
                name: input.to_owned(),
                reason: "a digest cannot name an image being built; use NAME[:TAG]".to_owned(),
            });
        }
        parse(input)
    }
}

/// Parses `[registry/]repository[:tag]`, with no `@`.
fn parse(input: &str) -> Result<Reference> {
    let fail = |reason: &str| Error::Reference {
        name: input.to_owned(),
        reason: reason.to_owned(),
    };
    if input.is_empty() {
        return Err(fail("it is empty"));
    }
    if input.contains('@') {
        return Err(fail("it has more than one `@`"));
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
    let tag_given = tag.is_some();
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
        tag_given,
        digest: None,
    })
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
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("registry port `{port}` is not a number"));
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

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn pinnable_references_carry_a_digest() {
        let digest = format!("sha256:{HEX}");
        let r = Reference::parse_pinnable(&format!("alpine:3.20@{digest}")).unwrap();
        assert_eq!(r.digest().unwrap().to_string(), digest);
        assert_eq!(r.tag(), "3.20");
        assert_eq!(r.manifest_reference(), digest);
        assert_eq!(r.name(), "docker.io/library/alpine");
        assert_eq!(r.full(), format!("docker.io/library/alpine:3.20@{digest}"));
        assert_eq!(r.familiar(), format!("alpine:3.20@{digest}"));
        assert_eq!(
            r.pinned().unwrap(),
            format!("docker.io/library/alpine@{digest}")
        );

        let r = Reference::parse_pinnable(&format!("localhost:5000/base@{digest}")).unwrap();
        assert_eq!(r.domain(), "localhost:5000");
        assert_eq!(r.path(), "base");
        assert_eq!(r.familiar(), format!("localhost:5000/base@{digest}"));
        assert_eq!(r.to_string(), r.familiar());
        assert_eq!(Reference::parse_pinnable(&r.full()).unwrap(), r);

        let sha512 = format!("sha512:{HEX}{HEX}");
        let r = Reference::parse_pinnable(&format!("app@{sha512}")).unwrap();
        assert_eq!(r.manifest_reference(), sha512);
    }

    #[test]
    fn pinnable_without_a_digest_is_a_tag_reference() {
        let r = Reference::parse_pinnable("app:1").unwrap();
        assert_eq!(r, parse("app:1"));
        assert_eq!(r.digest(), None);
        assert_eq!(r.pinned(), None);
        assert_eq!(r.manifest_reference(), "1");
        assert_eq!(r.full(), "docker.io/library/app:1");
        assert_eq!(parse("app"), parse("app:latest"));
    }

    #[test]
    fn with_digest_pins_a_tag_reference() {
        let digest: Digest = format!("sha256:{HEX}").parse().unwrap();
        let r = parse("ghcr.io/team/base:2").with_digest(digest.clone());
        assert_eq!(r.digest(), Some(&digest));
        assert_eq!(r.full(), format!("ghcr.io/team/base:2@{digest}"));
        assert_eq!(r.pinned().unwrap(), format!("ghcr.io/team/base@{digest}"));
        assert_eq!(r.tag(), "2");
    }

    #[test]
    fn bad_digests_and_digests_where_a_tag_belongs_are_refused() {
        for (input, needle) in [
            ("app@sha256:abc", "after `@` is not a digest"),
            (
                "app@md5:d41d8cd98f00b204e9800998ecf8427e",
                "after `@` is not a digest",
            ),
            ("app@", "after `@` is not a digest"),
        ] {
            let err = Reference::parse_pinnable(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
            assert!(
                err.starts_with(&format!("invalid image name `{input}`")),
                "{err}"
            );
        }
        let upper_name = format!("App@sha256:{HEX}");
        let err = Reference::parse_pinnable(&upper_name)
            .unwrap_err()
            .to_string();
        assert!(err.contains("lowercase"), "{err}");
        assert!(
            err.starts_with(&format!("invalid image name `{upper_name}`")),
            "{err}"
        );
        let twice = format!("app@sha256:{HEX}@sha256:{HEX}");
        assert!(Reference::parse_pinnable(&twice).is_err());
        let upper = format!("app@sha256:{}", HEX.to_uppercase());
        assert!(Reference::parse_pinnable(&upper).is_err());
        // Images being built or pushed never take a digest.
        let pinned = format!("app:1@sha256:{HEX}");
        let err = pinned.parse::<Reference>().unwrap_err().to_string();
        assert!(
            err.contains("a digest cannot name an image being built"),
            "{err}"
        );
    }
}
