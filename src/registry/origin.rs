//! URL origins (scheme, host, port): the unit that credentials are scoped to. An `Authorization`
//! header obtained for one origin is never sent to another.

use std::fmt;

use ureq::http::Uri;

use crate::error::registry::{RegistryError, RegistryErrorKind};
use crate::error::{Error, Result};
use crate::util::sanitize;

/// The scheme, host and port of a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    https: bool,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of an absolute `http://` or `https://` URL; anything else is refused.
    pub fn of(url: &str) -> Result<Origin> {
        let invalid = |why: &str| {
            Error::from(RegistryError::new(
                RegistryErrorKind::Protocol,
                "",
                format!(
                    "`{}` is not a usable URL: {why}",
                    sanitize::outside(url, sanitize::EXCERPT)
                ),
            ))
        };
        let uri: Uri = url.parse().map_err(|_| invalid("it does not parse"))?;
        let https = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            _ => return Err(invalid("only http and https are spoken")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("it names no host"))?
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Origin { https, host, port })
    }

    /// True for `https`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host, without the port.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `host:port`, as `--insecure-registry` takes it.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> Origin {
        Origin::of(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn default_ports_and_case_make_the_same_origin() {
        assert_eq!(
            origin("https://Registry.example.com/v2/"),
            origin("https://registry.example.com:443/x")
        );
        assert_eq!(
            origin("http://127.0.0.1/a"),
            origin("http://127.0.0.1:80/b")
        );
        assert_ne!(
            origin("http://127.0.0.1:5000/"),
            origin("https://127.0.0.1:5000/")
        );
        assert_ne!(
            origin("http://127.0.0.1:5000/"),
            origin("http://127.0.0.1:5001/")
        );
        assert_ne!(
            origin("http://127.0.0.1:5000/"),
            origin("http://localhost:5000/")
        );
    }

    #[test]
    fn user_info_does_not_fool_the_host() {
        assert_eq!(
            origin("https://registry.example.com@evil.example/x").host(),
            "evil.example"
        );
    }

    #[test]
    fn only_absolute_http_urls() {
        for bad in [
            "/v2/",
            "ftp://host/x",
            "file:///etc/passwd",
            "https://",
            "host:5000/x",
        ] {
            assert!(Origin::of(bad).is_err(), "{bad}");
        }
        assert_eq!(origin("http://[::1]:5000/v2/").authority(), "[::1]:5000");
    }
}
