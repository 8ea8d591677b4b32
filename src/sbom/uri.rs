//! URLs in the documents. Homepages, repositories and download locations come from package metadata
//! (free text in Cargo.toml, names and versions from a binary's embedded list), and both formats
//! validate them: CycloneDX wants an RFC 3987 IRI reference, SPDX tools a URL whose host is a domain
//! name. Every URL written is therefore rebuilt here: parsed, percent-encoded where RFC 3986 does not
//! allow a byte, and left out (or `NOASSERTION`) when it is no URL at all.

/// Longest URL written: longer ones are metadata mistakes, not addresses.
const MAX_URL: usize = 2048;

/// `url` (trimmed) as a valid http(s) URL: the scheme in lower case, the host checked, and every byte
/// RFC 3986 does not allow where it stands percent-encoded (an existing `%XX` is kept). `None` when it
/// is not an http(s) URL with a host.
pub(crate) fn web(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return None;
    }
    normalize(&scheme, rest)
}

/// `url` (an absolute URL with `://`, any scheme, such as cargo's `ssh://git@host/repo`) rebuilt as
/// [`web`] does; `None` when it is not one.
pub(crate) fn any(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid {
        return None;
    }
    normalize(&scheme.to_ascii_lowercase(), rest)
}

/// `scheme://` and `rest` (authority, then path, query and fragment) rebuilt.
fn normalize(scheme: &str, rest: &str) -> Option<String> {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let (host, port) = split_port(host_port)?;
    let mut out = format!("{scheme}://");
    if let Some(userinfo) = userinfo {
        push_encoded(&mut out, userinfo, |b| {
            is_unreserved(b) || is_sub_delim(b) || b == b':'
        });
        out.push('@');
    }
    // An IP literal (`[::1]`) is valid, but the CycloneDX validator's IRI grammar refuses it, and no
    // package's homepage is one: such a URL is left out.
    if host.is_empty() || host.starts_with('[') {
        return None;
    }
    push_encoded(&mut out, host, |b| is_unreserved(b) || is_sub_delim(b));
    if let Some(port) = port {
        out.push(':');
        out.push_str(port);
    }
    // Path and query: pchar, `/` and `?`; the fragment starts at the first `#`.
    let (before, fragment) = match tail.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (tail, None),
    };
    let pchar_or_slash =
        |b: u8| is_unreserved(b) || is_sub_delim(b) || matches!(b, b':' | b'@' | b'/' | b'?');
    push_encoded(&mut out, before, pchar_or_slash);
    if let Some(fragment) = fragment {
        out.push('#');
        push_encoded(&mut out, fragment, pchar_or_slash);
    }
    (out.len() <= MAX_URL).then_some(out)
}

/// Splits `host:port`; the port must be digits (an empty one is dropped). `None` when it is not.
fn split_port(host_port: &str) -> Option<(&str, Option<&str>)> {
    let Some(colon) = host_port.rfind(':') else {
        return Some((host_port, None));
    };
    let (host, port) = (&host_port[..colon], &host_port[colon + 1..]);
    if port.is_empty() {
        return Some((host, None));
    }
    (port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())).then_some((host, Some(port)))
}

/// Appends `text` with each byte that `allowed` refuses as `%XX`; a `%` followed by two hex digits is
/// an escape already and is kept.
fn push_encoded(out: &mut String, text: &str, allowed: impl Fn(u8) -> bool) {
    let bytes = text.as_bytes();
    for (i, &byte) in bytes.iter().enumerate() {
        let escape = byte == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if escape || (byte != b'%' && allowed(byte)) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// Percent-encodes one path segment: everything but RFC 3986's pchar.
pub(crate) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if is_unreserved(byte)
            || (is_sub_delim(byte) && byte != b'&')
            || matches!(byte, b':' | b'@')
        {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(byte: u8) -> bool {
    matches!(
        byte,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// True when SPDX tools take `url` (one [`web`] or [`any`] made) as a package's homepage: an optional
/// known scheme and user, then a domain name whose last label starts with two letters. This is the
/// pattern spdx-tools checks (`uri_validators.url_pattern`, matched at the start).
pub(crate) fn spdx_homepage(url: &str) -> bool {
    after_scheme_and_user(url, false)
        .iter()
        .any(|host| domain_prefix(host, false))
}

/// True when SPDX tools take `url` as a download location: what they take as a homepage, or
/// `VCS+URL` where the domain name is the whole host (its last label 2 to 5 letters), then an optional
/// port and path (`uri_validators.download_location_pattern`).
pub(crate) fn spdx_download_location(url: &str) -> bool {
    spdx_homepage(url)
        || after_scheme_and_user(url, true)
            .iter()
            .any(|host| domain_prefix(host, true))
}

/// The text after the scheme (and, as a second choice, after a user part) where a host must start.
fn after_scheme_and_user(url: &str, vcs_prefix: bool) -> Vec<&str> {
    let mut url = url;
    if vcs_prefix {
        for vcs in ["git+", "hg+", "svn+", "bzr+"] {
            if let Some(rest) = strip_prefix_ignore_case(url, vcs) {
                url = rest;
                break;
            }
        }
    }
    let schemes = [
        "http://", "https://", "ssh://", "git://", "svn://", "sftp://", "ftp://",
    ];
    let Some(rest) = schemes
        .iter()
        .find_map(|scheme| strip_prefix_ignore_case(url, scheme))
    else {
        return Vec::new();
    };
    let mut starts = Vec::new();
    let user_chars = |c: char| c.is_alphanumeric() || "_-.!~*'()%;:&=+$,".contains(c);
    if let Some(at) = rest.find('@')
        && at > 0
        && rest[..at].chars().all(user_chars)
    {
        starts.push(&rest[at + 1..]);
    }
    starts.push(rest);
    starts
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// True when `text` starts with `[a-z0-9]+([-.][a-z0-9]+)*\.[a-z]{2,5}` (ASCII, any case). With
/// `whole`, that must be all of the host: what follows is nothing, `:PORT` (1 to 5 digits) or `/...`.
fn domain_prefix(text: &str, whole: bool) -> bool {
    let bytes = text.as_bytes();
    // Runs of letters and digits separated by single `-` or `.`: the longest such prefix.
    let mut end = 0;
    let mut dots = Vec::new();
    while end < bytes.len() && bytes[end].is_ascii_alphanumeric() {
        end += 1;
    }
    if end == 0 {
        return false;
    }
    let mut separators = 0;
    while end + 1 < bytes.len()
        && matches!(bytes[end], b'-' | b'.')
        && bytes[end + 1].is_ascii_alphanumeric()
    {
        // The pattern allows at most 100 separators before the dot of the top label.
        if bytes[end] == b'.' && separators <= 100 {
            dots.push(end);
        }
        separators += 1;
        end += 1;
        while end < bytes.len() && bytes[end].is_ascii_alphanumeric() {
            end += 1;
        }
    }
    let rest_ok = |after: usize| {
        let rest = &text[after..];
        match rest.strip_prefix(':') {
            Some(port) => {
                let digits = port.bytes().take_while(u8::is_ascii_digit).count();
                (1..=5).contains(&digits)
                    && (port.len() == digits || port[digits..].starts_with('/'))
            }
            None => rest.is_empty() || rest.starts_with('/'),
        }
    };
    dots.iter().any(|&dot| {
        let letters = bytes[dot + 1..end]
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        if !whole {
            return letters >= 2;
        }
        // The top label: letters only, 2 to 5 of them, ending the host.
        (2..=5).contains(&letters) && dot + 1 + letters == end && rest_ok(end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_urls_are_encoded_where_rfc_3986_says() {
        assert_eq!(
            web("https://example.com/a b/<x>?q={1}#frag ment").as_deref(),
            Some("https://example.com/a%20b/%3Cx%3E?q=%7B1%7D#frag%20ment")
        );
        assert_eq!(
            web(" HTTP://Example.com:8080/%7Euser/100%/ü ").as_deref(),
            Some("http://Example.com:8080/%7Euser/100%25/%C3%BC")
        );

        assert_eq!(
            web("https://us er@exa\"mple.com/").as_deref(),
            Some("https://us%20er@exa%22mple.com/")
        );
        for bad in [
            "ftp://example.com/",
            "https://",
            "https:///path",
            "https://host:port/",
            "https://[::1]:443/x",
            "see the README",
            "",
        ] {
            assert_eq!(web(bad), None, "{bad}");
        }
        assert_eq!(web(&format!("https://a.io/{}", "x".repeat(MAX_URL))), None);
        assert_eq!(
            any("ssh://git@github.com/a/b.git").as_deref(),
            Some("ssh://git@github.com/a/b.git")
        );
        assert_eq!(any("1ssh://host/"), None);
    }

    #[test]
    fn path_segments_keep_only_pchar() {
        assert_eq!(segment("serde_json"), "serde_json");
        assert_eq!(segment("1.0.0+build.1"), "1.0.0+build.1");
        assert_eq!(segment("a/b c?#%&"), "a%2Fb%20c%3F%23%25%26");
    }

    #[test]
    fn spdx_url_checks_follow_spdx_tools() {
        assert!(spdx_homepage("https://example.com"));
        assert!(spdx_homepage("https://docs.rs/crate/x"));
        assert!(spdx_homepage("https://user@example.museum/x"));
        assert!(!spdx_homepage("https://localhost:8080/"));
        assert!(!spdx_homepage("https://127.0.0.1/"));
        assert!(!spdx_homepage("https://[::1]/"));
        assert!(!spdx_homepage("mailto:a@example.com"));
        assert!(spdx_download_location(
            "https://crates.io/api/v1/crates/itoa/1.0.19/download"
        ));
        assert!(spdx_download_location(
            "git+https://github.com/a/b.git@0123abc"
        ));
        assert!(spdx_download_location("git+ssh://git@github.com:22/a/b"));
        assert!(!spdx_download_location("git+file:///home/me/repo"));
        assert!(spdx_download_location("https://example.museum/x"));
        assert!(!spdx_download_location("git+https://example.museum/x"));
        assert!(!spdx_download_location("git+https://example.com_x/"));
        assert!(!spdx_download_location("git+"));
    }
}
