//! The few requests cloud credentials take (a token endpoint, STS, a metadata server): one attempt
//! each, within the registry's time limits, the answer read up to 1 MiB.

use crate::context::Context;
use crate::error::Result;
use crate::registry::client::ClientOptions;
use crate::registry::transport::http::{self, Http, Payload};
use crate::util::sanitize;

use super::CloudError;

/// Most of an answer read.
const MAX_ANSWER: u64 = 1 << 20;

/// A URL to send to: `http(s)://HOST[:PORT][/PATH]`.
#[derive(Clone, Debug)]
pub(super) struct Endpoint {
    pub scheme: String,
    pub authority: String,
    pub path: String,
}

impl Endpoint {
    /// Parses `url`, called `what` in the error.
    pub fn parse(url: &str, what: &str) -> Result<Endpoint> {
        let bad = || {
            CloudError::new(format!(
                "{what} `{}` is not an http:// or https:// URL",
                sanitize::outside(url, 200)
            ))
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad());
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains(['@', ' ']) {
            return Err(bad());
        }
        Ok(Endpoint {
            scheme,
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    /// The `Host` header.
    pub fn host_header(&self) -> String {
        self.authority.clone()
    }

    /// The URL.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.path)
    }

    /// The URL for messages.
    pub fn shown(&self) -> String {
        sanitize::outside(&format!("{}://{}", self.scheme, self.authority), 200)
    }
}

/// An answer: its status and body.
pub(super) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends `method` with `headers` and `body`; the answer read whole, at most 1 MiB.
pub(super) fn send(
    method: &str,
    endpoint: &Endpoint,
    headers: &[(&str, String)],
    body: &[u8],
    client: &ClientOptions,
    cx: &Context,
) -> Result<Answer> {
    let http = Http::new(&endpoint.authority, client, cx.cancel().clone())?;
    let payload = if body.is_empty() && method == "GET" {
        Payload::Empty
    } else {
        Payload::Bytes(body)
    };
    let response = http
        .send_once(method, &endpoint.url(), None, headers, &payload)
        .map_err(|failure| failure.error)?;
    let status = response.status().as_u16();
    let (body, more) = http::read_limited(response, MAX_ANSWER);
    cx.cancel().check()?;
    if more {
        return Err(CloudError::new(format!(
            "{} answered more than {} KiB; refusing to read it",
            endpoint.shown(),
            MAX_ANSWER >> 10
        )));
    }
    Ok(Answer { status, body })
}

/// `POST` `body` with `headers`.
pub(super) fn post(
    endpoint: &Endpoint,
    headers: &[(&str, String)],
    body: &[u8],
    client: &ClientOptions,
    cx: &Context,
) -> Result<Answer> {
    send("POST", endpoint, headers, body, client, cx)
}

/// `GET` with `headers`.
pub(super) fn get(
    endpoint: &Endpoint,
    headers: &[(&str, String)],
    client: &ClientOptions,
    cx: &Context,
) -> Result<Answer> {
    send("GET", endpoint, headers, b"", client, cx)
}
