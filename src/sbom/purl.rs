//! Package URLs (`pkg:cargo/NAME@VERSION`, `pkg:golang/PATH@VERSION`, `pkg:oci/NAME@DIGEST`), the
//! identifiers scanners match vulnerability databases against.

use super::{Component, Ecosystem, Origin};

/// The package URL of `component`, when it has one (see [`Component::purl`]).
pub(super) fn of(component: &Component) -> Option<String> {
    match component.ecosystem {
        Ecosystem::Cargo => {
            let base = format!(
                "pkg:cargo/{}@{}",
                encode(&component.name),
                encode(&component.version)
            );
            match &component.origin {
                Origin::CratesIo => Some(base),
                Origin::Registry(url) => Some(format!("{base}?repository_url={}", encode(url))),
                Origin::Git { url, commit } => {
                    let vcs = match commit {
                        Some(commit) => format!("git+{url}@{commit}"),
                        None => format!("git+{url}"),
                    };
                    Some(format!("{base}?vcs_url={}", encode(&vcs)))
                }
                Origin::Local | Origin::GoModule | Origin::Unknown => None,
            }
        }
        Ecosystem::Go => {
            if !matches!(component.origin, Origin::GoModule) || component.version.is_empty() {
                return None;
            }
            // The namespace is every segment but the last; each segment is encoded on its own.
            let path: Vec<String> = component.name.split('/').map(encode).collect();
            Some(format!(
                "pkg:golang/{}@{}",
                path.join("/"),
                encode(&component.version)
            ))
        }
    }
}

/// The purl of an image: `pkg:oci/NAME@DIGEST?repository_url=...&tag=...`.
pub(super) fn of_image(
    reference: &crate::image::reference::Reference,
    digest: &crate::oci::Digest,
    arch: Option<&str>,
) -> String {
    let name = reference
        .path()
        .rsplit('/')
        .next()
        .unwrap_or(reference.path());
    let repository = format!("{}/{}", reference.domain(), reference.path());
    let mut purl = format!("pkg:oci/{}@{}?", encode(name), encode(&digest.to_string()));
    if let Some(arch) = arch {
        purl.push_str(&format!("arch={}&", encode(arch)));
    }
    purl.push_str(&format!(
        "repository_url={}&tag={}",
        encode(&repository),
        encode(reference.tag())
    ));
    purl
}

/// Percent-encodes everything but the unreserved characters of RFC 3986.
pub(super) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A Go module path as the module proxy spells it: capital letters as `!` and the lowercase letter.
pub(super) fn go_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_purls_name_their_source_when_not_crates_io() {
        let mut c = Component::new(Ecosystem::Cargo, "itoa", "1.0.19", Origin::CratesIo);
        assert_eq!(of(&c).unwrap(), "pkg:cargo/itoa@1.0.19");
        c.version = "1.0.0+build.1".into();
        assert_eq!(of(&c).unwrap(), "pkg:cargo/itoa@1.0.0%2Bbuild.1");
        c.origin = Origin::Git {
            url: "https://example.com/a.git".into(),
            commit: Some("abc".into()),
        };
        assert_eq!(
            of(&c).unwrap(),
            "pkg:cargo/itoa@1.0.0%2Bbuild.1?vcs_url=git%2Bhttps%3A%2F%2Fexample.com%2Fa.git%40abc"
        );
        c.origin = Origin::Local;
        assert_eq!(of(&c), None);
    }

    #[test]
    fn go_purls_keep_the_path_segments() {
        let c = Component::new(
            Ecosystem::Go,
            "github.com/Foo/bar",
            "v1.2.3",
            Origin::GoModule,
        );
        assert_eq!(of(&c).unwrap(), "pkg:golang/github.com/Foo/bar@v1.2.3");
        assert_eq!(go_escape("github.com/Foo/bar"), "github.com/!foo/bar");
    }
}
