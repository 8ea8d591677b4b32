//! Sending a request again when that may help: a refused or reset connection, a 5xx or a 429 answer
//! (waiting with exponential backoff, or as long as `Retry-After` asks, within a cap), a stalled
//! transfer once, and a host that does not accept connections never. Each wait is announced on a
//! status line and ends early on Ctrl-C.

use std::time::Duration;

use super::http::{Failure, FailureKind, Http, Payload, Response, header, redact_url};
use crate::report::Listener;
use crate::util::sanitize;

/// Longest wait a `Retry-After` header may impose.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Requests to one registry with a budget of extra attempts.
pub(crate) struct Retrying<'l> {
    http: Http,
    retries: u32,
    listener: &'l dyn Listener,
}

impl<'l> Retrying<'l> {
    /// Sends over `http`, with `retries` extra attempts, announcing waits to `listener`.
    pub fn new(http: Http, retries: u32, listener: &'l dyn Listener) -> Retrying<'l> {
        Retrying {
            http,
            retries,
            listener,
        }
    }

    /// The layer below: one request, and the errors that name the registry.
    pub fn http(&self) -> &Http {
        &self.http
    }

    /// Sets the number of extra attempts; returns the one before.
    pub fn set_retries(&mut self, retries: u32) -> u32 {
        std::mem::replace(&mut self.retries, retries)
    }

    /// Sends a request, retrying refused and reset connections, 5xx and 429 answers with exponential
    /// backoff (a status line says when and why), a stalled transfer once, and an unreachable host never.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        authorization: Option<&str>,
        headers: &[(&str, String)],
        payload: &Payload,
    ) -> std::result::Result<Response, Failure> {
        let mut attempt = 0;
        let mut stalls = 0;
        loop {
            crate::util::cancel::check().map_err(Failure::permanent)?;
            let outcome = self
                .http
                .send_once(method, url, authorization, headers, payload);
            let (retryable, retry_after) = match &outcome {
                Err(f) if f.kind == FailureKind::Transient => (true, None),
                Err(f) if f.kind == FailureKind::Stalled => {
                    stalls += 1;
                    (stalls <= 1, None)
                }
                Err(_) => (false, None),
                Ok(r) => (
                    r.status().is_server_error() || r.status().as_u16() == 429,
                    retry_after(r),
                ),
            };
            if !retryable || attempt >= self.retries {
                return outcome;
            }
            attempt += 1;
            let backoff = Duration::from_millis(250 * (1 << attempt.min(6)));
            let wait = retry_after.map_or(backoff, |after| after.max(backoff));
            let why = match &outcome {
                Err(f) => f.error.to_string(),
                Ok(r) => format!(
                    "{method} {} answered HTTP {}",
                    sanitize::outside(redact_url(url), sanitize::EXCERPT),
                    r.status().as_u16()
                ),
            };
            self.listener.status(
                "Retrying",
                &format!(
                    "{why}; waiting {:.1} s (attempt {attempt} of {})",
                    wait.as_secs_f64(),
                    self.retries
                ),
            );
            crate::util::cancel::sleep(wait).map_err(Failure::permanent)?;
        }
    }
}

/// The wait a 429 or 503 asks for in seconds, capped.
fn retry_after(response: &Response) -> Option<Duration> {
    let seconds: u64 = header(response, "retry-after")?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}
