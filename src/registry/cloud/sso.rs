//! AWS IAM Identity Center (SSO): a profile set up by `aws configure sso` keeps no keys; the AWS
//! CLI's `aws sso login` leaves an access token in `~/.aws/sso/cache`, which the SSO portal's
//! `GetRoleCredentials` trades for the role's temporary keys. The token is only read: refreshing
//! it (and writing the cache back) is left to the AWS CLI.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::CloudError;
use super::http::{Endpoint, get};
use super::sigv4::AwsCredentials;
use crate::context::Context;
use crate::error::Result;
use crate::registry::client::ClientOptions;
use crate::util::{fsutil, sanitize};

/// Most a cached token file may hold.
const MAX_CACHE_FILE: u64 = 64 << 10;

/// What a profile says about its SSO role.
pub(super) struct SsoRole<'a> {
    /// The profile, for messages and the fix.
    pub profile: &'a str,
    /// The `sso_session` name, or for a legacy profile its `sso_start_url`: what the cache file is
    /// named after.
    pub cache_key: &'a str,
    /// The AWS account and the role in it.
    pub account_id: &'a str,
    pub role_name: &'a str,
    /// The portal's endpoint: `AWS_ENDPOINT_URL_SSO` and the like, else the `sso_region`'s.
    pub endpoint: String,
}

/// The portal of `region`, as the SDKs name it.
pub(super) fn portal(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://portal.sso.{region}.{suffix}")
}

/// The cache file the AWS CLI writes for `key`: the SHA-1 of the session name (or start URL), in hex.
pub(super) fn cache_file(aws_dir: &Path, key: &str) -> PathBuf {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, key.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    aws_dir
        .join("sso")
        .join("cache")
        .join(format!("{hex}.json"))
}

/// The role's temporary keys, for the token the CLI cached at `file`, if it has not expired by `now`.
pub(super) fn role_credentials(
    role: &SsoRole<'_>,
    file: &Path,
    now: OffsetDateTime,
    client: &ClientOptions,
    cx: &Context,
) -> Result<AwsCredentials> {
    let profile = sanitize::outside(role.profile, 100);
    let login = format!("run `aws sso login --profile {profile}`");
    let token = cached_token(file, now, &login)?;
    let url = format!(
        "{}/federation/credentials?account_id={}&role_name={}",
        role.endpoint.trim_end_matches('/'),
        form(role.account_id),
        form(role.role_name)
    );
    let endpoint = Endpoint::parse(&url, "the IAM Identity Center endpoint")?;
    let answer = get(&endpoint, &[("x-amz-sso_bearer_token", token)], client, cx)?;
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Keys {
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer {
        role_credentials: Keys,
    }
    if answer.status != 200 {
        #[derive(serde::Deserialize)]
        struct Refusal {
            message: Option<String>,
        }
        let text = serde_json::from_slice::<Refusal>(&answer.body)
            .ok()
            .and_then(|r| r.message)
            .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).into_owned());
        // 401: the sign-in is no longer valid; 403: the sign-in does not reach that role.
        let fix = match answer.status {
            401 => login,
            403 => format!(
                "check the profile's sso_account_id and sso_role_name against `aws sso \
                 list-account-roles --account-id {}`",
                sanitize::outside(role.account_id, 20)
            ),
            _ => "try again".to_owned(),
        };
        return Err(CloudError::new(format!(
            "IAM Identity Center ({}) refused the role {} in account {} for profile `{profile}` \
             ({}: {}); {fix}",
            endpoint.shown(),
            sanitize::outside(role.role_name, 100),
            sanitize::outside(role.account_id, 20),
            answer.status,
            sanitize::outside(&text, 200)
        )));
    }
    let keys = serde_json::from_slice::<Answer>(&answer.body)
        .map_err(|e| {
            CloudError::new(format!(
                "{} answered no role credentials ({})",
                endpoint.shown(),
                sanitize::outside(&e.to_string(), 200)
            ))
        })?
        .role_credentials;
    Ok(AwsCredentials {
        access_key_id: keys.access_key_id,
        secret_access_key: keys.secret_access_key,
        session_token: keys.session_token,
    })
}

/// The access token in the CLI's cache file, refused once expired.
fn cached_token(file: &Path, now: OffsetDateTime, login: &str) -> Result<String> {
    let shown = file.display();
    let Some(bytes) = fsutil::read_regular_if_present(file, MAX_CACHE_FILE, "the SSO token cache")?
    else {
        return Err(CloudError::new(format!(
            "no IAM Identity Center sign-in is cached ({shown} does not exist); {login}"
        )));
    };
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Cached {
        access_token: String,
        expires_at: String,
    }
    let cached: Cached = serde_json::from_slice(&bytes).map_err(|e| {
        CloudError::new(format!(
            "{shown} is not an IAM Identity Center token ({}); {login}",
            sanitize::outside(&e.to_string(), 200)
        ))
    })?;
    let expires = parse_expiry(&cached.expires_at).ok_or_else(|| {
        CloudError::new(format!(
            "{shown} has an expiry `{}` that is not a time; {login}",
            sanitize::outside(&cached.expires_at, 50)
        ))
    })?;
    if expires <= now {
        return Err(CloudError::new(format!(
            "the IAM Identity Center sign-in in {shown} expired at {}; {login}",
            sanitize::outside(&cached.expires_at, 50)
        )));
    }
    Ok(cached.access_token)
}

/// An expiry as the AWS CLI writes it: RFC 3339 (`Z` or `+00:00`), or with `UTC` for the zone.
fn parse_expiry(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    let normal = match text.strip_suffix("UTC") {
        Some(rest) => format!("{rest}Z"),
        None => text.to_owned(),
    };
    OffsetDateTime::parse(&normal, &Rfc3339).ok()
}

/// Query-encodes a value.
fn form(value: &str) -> String {
    crate::registry::transport::http::encode(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_are_read_in_each_form_the_cli_writes() {
        let at = OffsetDateTime::from_unix_timestamp(1_796_342_400).unwrap();
        for text in [
            "2026-12-04T00:00:00Z",
            "2026-12-04T00:00:00UTC",
            "2026-12-04T00:00:00+00:00",
        ] {
            assert_eq!(parse_expiry(text), Some(at), "{text}");
        }
        assert_eq!(parse_expiry("tomorrow"), None);
    }

    #[test]
    fn cache_files_are_named_by_the_sha1_of_the_session() {
        // SHA-1 of the empty string, as FIPS 180 publishes it.
        assert_eq!(
            cache_file(Path::new("/h/.aws"), ""),
            Path::new("/h/.aws/sso/cache/da39a3ee5e6b4b0d3255bfef95601890afd80709.json")
        );
    }

    #[test]
    fn portals_are_named_by_region_and_partition() {
        assert_eq!(
            portal("eu-west-1"),
            "https://portal.sso.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            portal("cn-north-1"),
            "https://portal.sso.cn-north-1.amazonaws.com.cn"
        );
    }
}
