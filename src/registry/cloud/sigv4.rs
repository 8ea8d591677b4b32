//! AWS Signature Version 4, with headers: the canonical request, the string to sign and the
//! `Authorization` header, as AWS's published test suite has them (one unit test per case). Small
//! enough to write here: the SDK's signer brings the SDK's runtime with it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};

/// AWS credentials: a key pair and, for temporary ones, the session token.
#[derive(Clone)]
pub struct AwsCredentials {
    /// The access key id (`AKIA...`, `ASIA...`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// A request to sign: the path and query as they are on the request line, and its headers.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// `GET`, `POST`.
    pub method: &'a str,
    /// The path, percent-encoded as sent (`/`, `/a%3Ab`).
    pub path: &'a str,
    /// The query without `?`, as sent; empty for none.
    pub query: &'a str,
    /// Every header sent (`Host` included), names in any case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: &'a [u8],
}

/// How to sign.
#[derive(Clone, Debug)]
pub struct Scope<'a> {
    /// `us-east-1`.
    pub region: &'a str,
    /// `ecr`, `sts`.
    pub service: &'a str,
    /// The signing time, `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
    /// Remove `.` and `..` segments and repeated slashes from the path first (every service but S3).
    pub normalize: bool,
    /// Add `x-amz-content-sha256`.
    pub sign_body: bool,
    /// Add the session token after signing instead of signing it (a few services want that).
    pub omit_session_token: bool,
    /// Encode the path as sent once more (`%` as `%25`), as every service but S3 expects; else it
    /// is decoded and encoded once.
    pub double_encode_path: bool,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Percent-encodes everything but the unreserved characters (and `/` when `keep_slash`).
fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char);
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Decodes `%XX` escapes (a malformed one is kept as it is).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(value) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(value);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path with `.` and `..` segments and repeated slashes removed, keeping a final slash.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    if path.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(&decode(key), false), encode(&decode(value), false))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The headers as signed: names lowercased and sorted, values trimmed with inner runs of spaces
/// made one, a name given twice joined with commas in order.
fn canonical_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut merged: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => merged.push((name, value)),
        }
    }
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    merged
}

/// What signing adds to the request's headers, and what it signed (the test suite checks each step;
/// nothing else reads them: the canonical request holds the session token).
#[derive(Clone, Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub struct Signed {
    /// Headers to send besides the request's own: `x-amz-date`, maybe `x-amz-security-token` and
    /// `x-amz-content-sha256`, and `authorization`.
    pub headers: Vec<(String, String)>,
    /// The canonical request.
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
    /// The signature, hex.
    pub signature: String,
}

/// Signs `request` with `credentials` in `scope`.
pub fn sign(request: &Request, credentials: &AwsCredentials, scope: &Scope) -> Signed {
    let payload_hash = sha256_hex(request.body);
    // The signing time replaces any date the request had.
    let mut added = vec![("x-amz-date".to_owned(), scope.amz_date.to_owned())];
    if scope.sign_body {
        added.push(("x-amz-content-sha256".to_owned(), payload_hash.clone()));
    }
    let token = credentials.session_token.as_ref();
    if let (Some(token), false) = (token, scope.omit_session_token) {
        added.push(("x-amz-security-token".to_owned(), token.clone()));
    }
    let all: Vec<(String, String)> = request
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("x-amz-date"))
        .cloned()
        .chain(added.clone())
        .collect();
    let headers = canonical_headers(&all);
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let path = if scope.normalize {
        normalize_path(request.path)
    } else {
        request.path.to_owned()
    };
    let path = if scope.double_encode_path {
        encode(&path, true)
    } else {
        encode(&decode(&path), true)
    };
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        path,
        canonical_query(request.query),
        headers
            .iter()
            .map(|(n, v)| format!("{n}:{v}\n"))
            .collect::<String>(),
        signed_headers,
        payload_hash
    );
    let date = scope.amz_date.get(..8).unwrap_or(scope.amz_date);
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{credential_scope}\n{}",
        scope.amz_date,
        sha256_hex(canonical_request.as_bytes())
    );
    let mut key = hmac(
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [scope.region, scope.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    added.push((
        "authorization".to_owned(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{credential_scope}, SignedHeaders={signed_headers}, \
             Signature={signature}",
            credentials.access_key_id
        ),
    ));
    if let (Some(token), true) = (token, scope.omit_session_token) {
        added.push(("x-amz-security-token".to_owned(), token.clone()));
    }
    Signed {
        headers: added,
        canonical_request,
        string_to_sign,
        signature,
    }
}

/// `YYYYMMDDTHHMMSSZ` for a time in seconds since the epoch.
pub fn amz_date(unix_seconds: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        date.year(),
        u8::from(date.month()),
        date.day(),
        date.hour(),
        date.minute(),
        date.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn suite() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/aws-signing-test-suite")
    }

    /// Parses a case's `request.txt`: the request line, headers (a line starting with spaces
    /// continues the one before), a blank line, the body.
    fn parse(text: &str) -> (String, String, String, Vec<(String, String)>, Vec<u8>) {
        let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let line = lines.next().unwrap();
        let target = line
            .strip_suffix(" HTTP/1.1")
            .unwrap()
            .split_once(' ')
            .unwrap();
        let (path, query) = target.1.split_once('?').unwrap_or((target.1, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with(' ') {
                let last = headers.last_mut().unwrap();
                last.1.push(' ');
                last.1.push_str(line.trim());
            } else {
                let (name, value) = line.split_once(':').unwrap();
                headers.push((name.to_owned(), value.to_owned()));
            }
        }
        (
            target.0.to_owned(),
            path.to_owned(),
            query.to_owned(),
            headers,
            body.as_bytes().to_vec(),
        )
    }

    fn check(case: &str) {
        let dir = suite().join(case);
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        let (method, path, query, headers, body) = parse(&read("request.txt").unwrap());
        let legacy = read("context.json").is_none();
        let context: serde_json::Value = read("context.json").map_or_else(
            || {
                // The two older cases: a date header, no credentials given, a Lambda-like service.
                serde_json::json!({"credentials": {"access_key_id": "AKIDEXAMPLE",
                    "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
                    "region": "us-east-1", "service": "service", "normalize": true,
                    "sign_body": false, "timestamp": "2021-05-11T15:40:45Z"})
            },
            |c| serde_json::from_str(&c).unwrap(),
        );
        let credentials = AwsCredentials {
            access_key_id: context["credentials"]["access_key_id"]
                .as_str()
                .unwrap()
                .to_owned(),
            secret_access_key: context["credentials"]["secret_access_key"]
                .as_str()
                .unwrap()
                .to_owned(),
            session_token: context["credentials"]["token"].as_str().map(str::to_owned),
        };
        let timestamp: crate::util::timestamp::Timestamp =
            context["timestamp"].as_str().unwrap().parse().unwrap();
        let amz = amz_date(timestamp.unix_seconds() as i64);
        let scope = Scope {
            region: context["region"].as_str().unwrap(),
            service: context["service"].as_str().unwrap(),
            amz_date: &amz,
            normalize: context["normalize"].as_bool().unwrap_or(true),
            sign_body: context["sign_body"].as_bool().unwrap_or(false),
            omit_session_token: context["omit_session_token"].as_bool().unwrap_or(false),
            // The CRT cases encode once; the two older ones are the SDK's double encoding.
            double_encode_path: legacy,
        };
        let request = Request {
            method: &method,
            path: &path,
            query: &query,
            headers,
            body: &body,
        };
        let signed = sign(&request, &credentials, &scope);
        let canonical = read("header-canonical-request.txt").unwrap();
        assert_eq!(
            signed.canonical_request,
            canonical.trim_end_matches('\n'),
            "{case}"
        );
        // The older cases' string to sign was made with credentials they do not give.
        if let (Some(expected), false) = (read("header-string-to-sign.txt"), legacy) {
            assert_eq!(
                signed.string_to_sign,
                expected.trim_end_matches('\n'),
                "{case}"
            );
        }
        if let Some(expected) = read("header-signature.txt") {
            assert_eq!(signed.signature, expected.trim(), "{case}");
        }
    }

    macro_rules! cases {
        ($($name:ident => $dir:literal,)*) => {
            $(#[test] fn $name() { check($dir); })*
        };
    }

    cases! {
        double_encode_path => "double-encode-path",
        double_url_encode => "double-url-encode",
        get_header_key_duplicate => "get-header-key-duplicate",
        get_header_value_multiline => "get-header-value-multiline",
        get_header_value_order => "get-header-value-order",
        get_header_value_trim => "get-header-value-trim",
        get_relative_normalized => "get-relative-normalized",
        get_relative_relative_normalized => "get-relative-relative-normalized",
        get_relative_relative_unnormalized => "get-relative-relative-unnormalized",
        get_relative_unnormalized => "get-relative-unnormalized",
        get_slash_dot_slash_normalized => "get-slash-dot-slash-normalized",
        get_slash_dot_slash_unnormalized => "get-slash-dot-slash-unnormalized",
        get_slash_normalized => "get-slash-normalized",
        get_slash_pointless_dot_normalized => "get-slash-pointless-dot-normalized",
        get_slash_pointless_dot_unnormalized => "get-slash-pointless-dot-unnormalized",
        get_slash_unnormalized => "get-slash-unnormalized",
        get_slashes_normalized => "get-slashes-normalized",
        get_slashes_unnormalized => "get-slashes-unnormalized",
        get_space_normalized => "get-space-normalized",
        get_space_unnormalized => "get-space-unnormalized",
        get_unreserved => "get-unreserved",
        get_utf8 => "get-utf8",
        get_vanilla => "get-vanilla",
        get_vanilla_empty_query_key => "get-vanilla-empty-query-key",
        get_vanilla_query => "get-vanilla-query",
        get_vanilla_query_order_encoded => "get-vanilla-query-order-encoded",
        get_vanilla_query_order_key_case => "get-vanilla-query-order-key-case",
        get_vanilla_query_unreserved => "get-vanilla-query-unreserved",
        get_vanilla_utf8_query => "get-vanilla-utf8-query",
        get_vanilla_with_session_token => "get-vanilla-with-session-token",
        post_header_key_case => "post-header-key-case",
        post_header_key_sort => "post-header-key-sort",
        post_header_value_case => "post-header-value-case",
        post_sts_header_after => "post-sts-header-after",
        post_sts_header_before => "post-sts-header-before",
        post_vanilla => "post-vanilla",
        post_vanilla_empty_query_value => "post-vanilla-empty-query-value",
        post_vanilla_query => "post-vanilla-query",
        post_x_www_form_urlencoded => "post-x-www-form-urlencoded",
        post_x_www_form_urlencoded_parameters => "post-x-www-form-urlencoded-parameters",
    }
}
