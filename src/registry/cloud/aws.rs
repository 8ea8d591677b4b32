//! Amazon ECR without a login step: the standard AWS credential chain (environment, the shared
//! `~/.aws` files with `credential_process` and web identity, STS `AssumeRoleWithWebIdentity`, the
//! container endpoint), then ECR's `GetAuthorizationToken`, signed with Signature Version 4. The
//! endpoints the AWS SDKs let users point elsewhere (`AWS_ENDPOINT_URL*`, a profile's
//! `endpoint_url`) are honoured, which is how LocalStack and the tests reach fakes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::http::{Endpoint, get, post};
use super::sigv4::{self, AwsCredentials, Request, Scope};
use super::sso;
use super::{CloudError, Found};
use crate::context::{Context, Credential};
use crate::error::Result;
use crate::registry::client::ClientOptions;
use crate::util::fsutil;
use crate::util::sanitize;

/// An ECR registry host: its region, and which API hands out its tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcrHost {
    /// `us-east-1`.
    pub region: String,
    /// ECR Public (`public.ecr.aws`), whose tokens come from `ecr-public` in us-east-1.
    pub public: bool,
    /// A FIPS endpoint (`dkr.ecr-fips`).
    pub fips: bool,
    /// The DNS suffix: `amazonaws.com`, or `amazonaws.com.cn` in China.
    pub suffix: String,
}

/// The ECR registry `host` names, if it is one: `ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]`
/// or `public.ecr.aws`.
pub fn ecr_host(host: &str) -> Option<EcrHost> {
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    if host == "public.ecr.aws" {
        return Some(EcrHost {
            region: "us-east-1".to_owned(),
            public: true,
            fips: false,
            suffix: "amazonaws.com".to_owned(),
        });
    }
    let labels: Vec<&str> = host.split('.').collect();
    let (account, rest) = labels.split_first()?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (fips, region, suffix) = match rest {
        ["dkr", "ecr", region, "amazonaws", "com"] => (false, region, "amazonaws.com"),
        ["dkr", "ecr-fips", region, "amazonaws", "com"] => (true, region, "amazonaws.com"),
        ["dkr", "ecr", region, "amazonaws", "com", "cn"] => (false, region, "amazonaws.com.cn"),
        _ => return None,
    };
    let valid = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then(|| EcrHost {
        region: (*region).to_owned(),
        public: false,
        fips,
        suffix: suffix.to_owned(),
    })
}

/// The environment, read once per lookup (tests give their own).
pub(super) type Env = BTreeMap<String, String>;

/// The process environment's AWS and container variables.
pub(super) fn env() -> Env {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k == "HOME" || k == "USERPROFILE")
        .collect()
}

fn var<'e>(env: &'e Env, name: &str) -> Option<&'e str> {
    env.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// One profile's keys, from `~/.aws/credentials` and `~/.aws/config` (`[profile NAME]`).
#[derive(Clone, Debug, Default)]
struct Profile {
    name: String,
    keys: BTreeMap<String, String>,
    /// The files read, for messages.
    files: Vec<PathBuf>,
}

impl Profile {
    fn get(&self, key: &str) -> Option<&str> {
        self.keys
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Most a shared AWS file may hold.
const MAX_AWS_FILE: u64 = 1 << 20;

fn aws_dir(env: &Env) -> Option<PathBuf> {
    var(env, "HOME")
        .or_else(|| var(env, "USERPROFILE"))
        .map(|home| PathBuf::from(home).join(".aws"))
}

/// The profile the environment names (`AWS_PROFILE`, else `default`), from the shared files; `None`
/// when neither file has it and it was not asked for by name.
fn profile(env: &Env) -> Result<Option<Profile>> {
    let named = var(env, "AWS_PROFILE").or_else(|| var(env, "AWS_DEFAULT_PROFILE"));
    profile_named(env, named.unwrap_or("default"), named.is_some())
}

/// The profile `name` from the shared files; `None` when they do not have it, an error when it was
/// `asked` for by name.
fn profile_named(env: &Env, name: &str, asked: bool) -> Result<Option<Profile>> {
    let name = name.to_owned();
    let dir = aws_dir(env);
    let credentials = var(env, "AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| dir.as_ref().map(|d| d.join("credentials")));
    let config = var(env, "AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| dir.as_ref().map(|d| d.join("config")));
    let mut found = Profile {
        name: name.clone(),
        ..Profile::default()
    };
    let mut any = false;
    // The credentials file first: its keys win over the config file's.
    for (path, in_config) in [(credentials, false), (config, true)] {
        let Some(path) = path else { continue };
        let Some(bytes) = fsutil::read_regular_if_present(&path, MAX_AWS_FILE, "the AWS file")?
        else {
            continue;
        };
        found.files.push(path.clone());
        let text = String::from_utf8_lossy(&bytes);
        let section = if in_config && name != "default" {
            format!("profile {name}")
        } else {
            name.clone()
        };
        if let Some(keys) = ini_section(&text, &section) {
            any = true;
            for (k, v) in keys {
                found.keys.entry(k).or_insert(v);
            }
        }
    }
    if any {
        return Ok(Some(found));
    }
    if asked {
        let files: Vec<String> = found
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        return Err(CloudError::new(format!(
            "AWS_PROFILE (or a source_profile) names the profile `{}`, which {} does not have; fix \
             the name or add the profile (aws configure --profile {})",
            sanitize::outside(&name, 100),
            if files.is_empty() {
                "no ~/.aws/credentials or ~/.aws/config exists and so".to_owned()
            } else {
                files.join(" and ")
            },
            sanitize::outside(&name, 100)
        )));
    }
    Ok(None)
}

/// The keys of `[section]` in an INI text (`key = value`; `#` and `;` comments).
fn ini_section(text: &str, section: &str) -> Option<BTreeMap<String, String>> {
    let mut current: Option<String> = None;
    let mut keys: Option<BTreeMap<String, String>> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            current = Some(name.clone());
            if name == section && keys.is_none() {
                keys = Some(BTreeMap::new());
            }
            continue;
        }
        if current.as_deref() != Some(section) {
            continue;
        }
        if let (Some(keys), Some((k, v))) = (keys.as_mut(), line.split_once('=')) {
            keys.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    keys
}

/// Credentials from the chain, and where they came from (for `-v`; never the secret).
pub(super) fn credentials(
    env: &Env,
    client: &ClientOptions,
    cx: &Context,
) -> Result<Option<(AwsCredentials, String)>> {
    if let (Some(id), Some(secret)) = (
        var(env, "AWS_ACCESS_KEY_ID"),
        var(env, "AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Some((
            AwsCredentials {
                access_key_id: id.to_owned(),
                secret_access_key: secret.to_owned(),
                session_token: var(env, "AWS_SESSION_TOKEN").map(str::to_owned),
            },
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned(),
        )));
    }
    let profile = profile(env)?;
    if let Some(profile) = &profile
        && let Some(found) = from_profile(env, profile, client, cx)?
    {
        return Ok(Some(found));
    }
    if let (Some(role), Some(token_file)) = (
        var(env, "AWS_ROLE_ARN"),
        var(env, "AWS_WEB_IDENTITY_TOKEN_FILE"),
    ) {
        let credentials = web_identity(env, profile.as_ref(), role, token_file, client, cx)?;
        return Ok(Some((
            credentials,
            "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (STS AssumeRoleWithWebIdentity)"
                .to_owned(),
        )));
    }
    if let Some(credentials) = container(env, client, cx)? {
        return Ok(Some((
            credentials,
            "the container credentials endpoint".to_owned(),
        )));
    }
    if let Some(credentials) = instance(env, client, cx)? {
        return Ok(Some((
            credentials,
            "the EC2 instance profile (instance metadata)".to_owned(),
        )));
    }
    Ok(None)
}

/// Credentials from the profile's own settings: its keys, its `credential_process`, a role assumed
/// from its `source_profile`, or its web identity; `None` when it has none of them.
fn from_profile(
    env: &Env,
    profile: &Profile,
    client: &ClientOptions,
    cx: &Context,
) -> Result<Option<(AwsCredentials, String)>> {
    let source = format!("profile `{}`", sanitize::outside(&profile.name, 100));
    if let (Some(id), Some(secret)) = (
        profile.get("aws_access_key_id"),
        profile.get("aws_secret_access_key"),
    ) {
        return Ok(Some((
            AwsCredentials {
                access_key_id: id.to_owned(),
                secret_access_key: secret.to_owned(),
                session_token: profile.get("aws_session_token").map(str::to_owned),
            },
            source,
        )));
    }
    if let Some(command) = profile.get("credential_process") {
        let credentials = credential_process(command, cx)?;
        return Ok(Some((
            credentials,
            format!("{source} (credential_process)"),
        )));
    }
    if let (Some(role), Some(source_name)) =
        (profile.get("role_arn"), profile.get("source_profile"))
    {
        let source_profile = profile_named(env, source_name, true)?.unwrap_or_default();
        let base = match (
            source_profile.get("aws_access_key_id"),
            source_profile.get("aws_secret_access_key"),
            source_profile.get("credential_process"),
        ) {
            (Some(id), Some(secret), _) => AwsCredentials {
                access_key_id: id.to_owned(),
                secret_access_key: secret.to_owned(),
                session_token: source_profile.get("aws_session_token").map(str::to_owned),
            },
            (_, _, Some(command)) => credential_process(command, cx)?,
            _ => {
                return Err(CloudError::new(format!(
                    "the profile `{}` that {source} takes its source credentials from has no \
                     keys and no credential_process",
                    sanitize::outside(source_name, 100)
                )));
            }
        };
        let credentials = assume_role(env, profile, role, &base, client, cx)?;
        return Ok(Some((
            credentials,
            format!(
                "{source} (AssumeRole from profile `{}`)",
                sanitize::outside(source_name, 100)
            ),
        )));
    }
    if let (Some(role), Some(token_file)) = (
        profile.get("role_arn"),
        profile.get("web_identity_token_file"),
    ) {
        let credentials = web_identity(env, Some(profile), role, token_file, client, cx)?;
        return Ok(Some((credentials, format!("{source} (web identity)"))));
    }
    if profile.get("sso_session").is_some() || profile.get("sso_start_url").is_some() {
        let credentials = sso(env, profile, client, cx)?;
        return Ok(Some((
            credentials,
            format!("{source} (IAM Identity Center)"),
        )));
    }
    Ok(None)
}

/// An IAM Identity Center profile's role keys, for the sign-in the AWS CLI cached: the
/// `[sso-session NAME]` its `sso_session` names, or (older profiles) its own `sso_start_url`.
fn sso(
    env: &Env,
    profile: &Profile,
    client: &ClientOptions,
    cx: &Context,
) -> Result<AwsCredentials> {
    let name = sanitize::outside(&profile.name, 100);
    let missing = |what: &str| {
        CloudError::new(format!(
            "the IAM Identity Center profile `{name}` has no {what}; set it up again with `aws \
             configure sso --profile {name}`"
        ))
    };
    let (cache_key, region) = match profile.get("sso_session") {
        Some(session) => {
            let section =
                config_section(env, &format!("sso-session {session}"))?.ok_or_else(|| {
                    missing(&format!(
                        "[sso-session {}] in the AWS config file",
                        sanitize::outside(session, 100)
                    ))
                })?;
            let region = section
                .get("sso_region")
                .filter(|r| !r.is_empty())
                .cloned()
                .or_else(|| profile.get("sso_region").map(str::to_owned))
                .ok_or_else(|| missing("sso_region"))?;
            (session.to_owned(), region)
        }
        None => (
            profile
                .get("sso_start_url")
                .ok_or_else(|| missing("sso_start_url"))?
                .to_owned(),
            profile
                .get("sso_region")
                .ok_or_else(|| missing("sso_region"))?
                .to_owned(),
        ),
    };
    let role = sso::SsoRole {
        profile: &profile.name,
        cache_key: &cache_key,
        account_id: profile
            .get("sso_account_id")
            .ok_or_else(|| missing("sso_account_id"))?,
        role_name: profile
            .get("sso_role_name")
            .ok_or_else(|| missing("sso_role_name"))?,
        endpoint: var(env, "AWS_ENDPOINT_URL_SSO")
            .or_else(|| var(env, "AWS_ENDPOINT_URL"))
            .or_else(|| profile.get("endpoint_url"))
            .map_or_else(|| sso::portal(&region), str::to_owned),
    };
    let dir = aws_dir(env).ok_or_else(|| missing("home directory to find its sign-in under"))?;
    let file = sso::cache_file(&dir, role.cache_key);
    sso::role_credentials(&role, &file, time::OffsetDateTime::now_utc(), client, cx)
}

/// The keys of `[section]` in the AWS config file, if it has it.
fn config_section(env: &Env, section: &str) -> Result<Option<BTreeMap<String, String>>> {
    let Some(path) = var(env, "AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| aws_dir(env).map(|d| d.join("config")))
    else {
        return Ok(None);
    };
    let Some(bytes) = fsutil::read_regular_if_present(&path, MAX_AWS_FILE, "the AWS file")? else {
        return Ok(None);
    };
    Ok(ini_section(&String::from_utf8_lossy(&bytes), section))
}

/// The EC2 instance profile's credentials from the instance metadata service (IMDSv2: a session
/// token first), at `AWS_EC2_METADATA_SERVICE_ENDPOINT` or the usual address. A machine that is not
/// on EC2 does not answer: one connection attempt of at most a second, and no credentials.
/// `AWS_EC2_METADATA_DISABLED=true` skips it.
fn instance(env: &Env, client: &ClientOptions, cx: &Context) -> Result<Option<AwsCredentials>> {
    if var(env, "AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let configured = var(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
    let base = configured
        .unwrap_or("http://169.254.169.254")
        .trim_end_matches('/')
        .to_owned();
    let quick = ClientOptions {
        connect_timeout: std::time::Duration::from_secs(1),
        stall_timeout: client.stall_timeout.min(std::time::Duration::from_secs(5)),
        ..client.clone()
    };
    let endpoint =
        |path: &str| Endpoint::parse(&format!("{base}{path}"), "the instance metadata endpoint");
    let token = match super::http::send(
        "PUT",
        &endpoint("/latest/api/token")?,
        &[("X-aws-ec2-metadata-token-ttl-seconds", "300".to_owned())],
        b"",
        &quick,
        cx,
    ) {
        Ok(answer) if answer.status == 200 => {
            String::from_utf8_lossy(&answer.body).trim().to_owned()
        }
        // Not on EC2 (nothing answers), unless the endpoint was named: then say why.
        Ok(answer) if configured.is_some() => {
            return Err(CloudError::new(format!(
                "the instance metadata service answered {} to a session token request",
                answer.status
            )));
        }
        Err(e) if configured.is_some() || e.is_interrupted() => return Err(e),
        Ok(_) | Err(_) => return Ok(None),
    };
    let headers = [("X-aws-ec2-metadata-token", token)];
    let roles = get(
        &endpoint("/latest/meta-data/iam/security-credentials/")?,
        &headers,
        &quick,
        cx,
    )?;
    let role = String::from_utf8_lossy(&roles.body)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    if roles.status != 200 || role.is_empty() || role.contains(['/', '?', '#', '%']) {
        return Ok(None);
    }
    let answer = get(
        &endpoint(&format!(
            "/latest/meta-data/iam/security-credentials/{role}"
        ))?,
        &headers,
        &quick,
        cx,
    )?;
    let parsed: EndpointCredentials = serde_json::from_slice(&answer.body).map_err(|e| {
        CloudError::new(format!(
            "the instance metadata service answered no credentials for role {} ({})",
            sanitize::outside(&role, 100),
            sanitize::outside(&e.to_string(), 200)
        ))
    })?;
    Ok(Some(parsed.into()))
}

/// Runs a profile's `credential_process` (through the shell, as the AWS CLI does) within the
/// credential helpers' limits, and reads its JSON.
fn credential_process(command: &str, cx: &Context) -> Result<AwsCredentials> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        version: Option<u32>,
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    }
    let shown = sanitize::outside(command, 100);
    let mut shell = if cfg!(windows) {
        let mut c = Command::new("cmd");
        c.arg("/C").arg(command);
        c
    } else {
        let mut c = Command::new("sh");
        c.arg("-c").arg(command);
        c
    };
    let output = crate::registry::credentials::run_bounded(
        &mut shell,
        "credential_process",
        b"",
        cx.cancel(),
    )?
    .ok_or_else(|| CloudError::new(format!("credential_process `{shown}` could not be run")))?;
    if !output.success {
        return Err(CloudError::new(format!(
            "credential_process `{shown}` failed: {}",
            output.excerpt()
        )));
    }
    let parsed: Output = serde_json::from_slice(&output.stdout).map_err(|e| {
        CloudError::new(format!(
            "credential_process `{shown}` printed no credentials JSON ({})",
            sanitize::outside(&e.to_string(), sanitize::EXCERPT)
        ))
    })?;
    if parsed.version.is_some_and(|v| v != 1) {
        return Err(CloudError::new(format!(
            "credential_process `{shown}` printed Version {}, not 1",
            parsed.version.unwrap_or_default()
        )));
    }
    Ok(AwsCredentials {
        access_key_id: parsed.access_key_id,
        secret_access_key: parsed.secret_access_key,
        session_token: parsed.session_token,
    })
}

/// The STS endpoint: `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else the profile's
/// `endpoint_url`, else the region's (the global one without a region).
fn sts_endpoint(env: &Env, profile: Option<&Profile>) -> String {
    let region = var(env, "AWS_REGION")
        .or_else(|| var(env, "AWS_DEFAULT_REGION"))
        .or_else(|| profile.and_then(|p| p.get("region")));
    var(env, "AWS_ENDPOINT_URL_STS")
        .or_else(|| var(env, "AWS_ENDPOINT_URL"))
        .or_else(|| profile.and_then(|p| p.get("endpoint_url")))
        .map_or_else(
            || match region {
                Some(region) => format!("https://sts.{region}.amazonaws.com"),
                None => "https://sts.amazonaws.com".to_owned(),
            },
            str::to_owned,
        )
}

/// STS `AssumeRoleWithWebIdentity` with the token in `token_file` (GitHub Actions' OIDC token, an
/// EKS service account's).
fn web_identity(
    env: &Env,
    profile: Option<&Profile>,
    role: &str,
    token_file: &str,
    client: &ClientOptions,
    cx: &Context,
) -> Result<AwsCredentials> {
    let token = fsutil::read_regular(
        std::path::Path::new(token_file),
        64 << 10,
        "the web identity token file",
    )?;
    let token = String::from_utf8_lossy(&token).trim().to_owned();
    let session = var(env, "AWS_ROLE_SESSION_NAME")
        .or_else(|| profile.and_then(|p| p.get("role_session_name")))
        .unwrap_or("zeroimage");
    let body = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
        form(role),
        form(session),
        form(&token)
    );
    let endpoint = Endpoint::parse(&sts_endpoint(env, profile), "the STS endpoint")?;
    let answer = post(
        &endpoint,
        &[(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        )],
        body.as_bytes(),
        client,
        cx,
    )?;
    sts_credentials(&answer, "AssumeRoleWithWebIdentity", role)
}

/// The temporary credentials in STS's answer to `action` for `role`, or its error, escaped.
fn sts_credentials(
    answer: &super::http::Answer,
    action: &str,
    role: &str,
) -> Result<AwsCredentials> {
    let text = String::from_utf8_lossy(&answer.body);
    if answer.status != 200 {
        let code = xml_text(&text, "Code");
        let message = xml_text(&text, "Message");
        return Err(CloudError::new(match (code, message) {
            (Some(code), message) => format!(
                "STS {action} for {} was refused ({}): {}: {}",
                sanitize::outside(role, 200),
                answer.status,
                sanitize::outside(&code, 100),
                sanitize::outside(message.as_deref().unwrap_or_default(), 300)
            ),
            _ => format!(
                "STS {action} answered {} with no AWS error in it: {}",
                answer.status,
                sanitize::outside(&text, 200)
            ),
        }));
    }
    let field = |name: &str| {
        xml_text(&text, name).ok_or_else(|| {
            CloudError::new(format!(
                "STS {action} answered without {name}; not an STS answer: {}",
                sanitize::outside(&text, 120)
            ))
        })
    };
    Ok(AwsCredentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: field("SecretAccessKey")?,
        session_token: Some(field("SessionToken")?),
    })
}

/// STS `AssumeRole` of `role`, signed with `source`'s credentials (a profile's `role_arn` with its
/// `source_profile`).
fn assume_role(
    env: &Env,
    profile: &Profile,
    role: &str,
    source: &AwsCredentials,
    client: &ClientOptions,
    cx: &Context,
) -> Result<AwsCredentials> {
    let session = var(env, "AWS_ROLE_SESSION_NAME")
        .or_else(|| profile.get("role_session_name"))
        .unwrap_or("zeroimage");
    let mut body = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={}",
        form(role),
        form(session)
    );
    if let Some(external_id) = profile.get("external_id") {
        body.push_str(&format!("&ExternalId={}", form(external_id)));
    }
    let endpoint = Endpoint::parse(&sts_endpoint(env, Some(profile)), "the STS endpoint")?;
    let region = var(env, "AWS_REGION")
        .or_else(|| var(env, "AWS_DEFAULT_REGION"))
        .or_else(|| profile.get("region"))
        .unwrap_or("us-east-1");
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let request_headers = vec![
        ("host".to_owned(), endpoint.host_header()),
        ("content-type".to_owned(), content_type.to_owned()),
    ];
    let amz_date = sigv4::amz_date(time::OffsetDateTime::now_utc().unix_timestamp());
    let signed = sigv4::sign(
        &Request {
            method: "POST",
            path: &endpoint.path,
            query: "",
            headers: request_headers,
            body: body.as_bytes(),
        },
        source,
        &Scope {
            region,
            service: "sts",
            amz_date: &amz_date,
            normalize: true,
            sign_body: false,
            omit_session_token: false,
            double_encode_path: true,
        },
    );
    let headers: Vec<(&str, String)> = std::iter::once(("Content-Type", content_type.to_owned()))
        .chain(signed.headers.iter().map(|(n, v)| (n.as_str(), v.clone())))
        .collect();
    let answer = post(&endpoint, &headers, body.as_bytes(), client, cx)?;
    sts_credentials(&answer, "AssumeRole", role)
}

/// The text of the first `<tag>...</tag>` in an XML answer, entities decoded.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    let raw = &xml[start..end];
    if raw.contains('<') {
        return None;
    }
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// Form-encodes a value.
fn form(value: &str) -> String {
    crate::registry::transport::http::encode(value)
}

/// Credentials as the container endpoint and the instance metadata service answer them.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointCredentials {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
}

impl From<EndpointCredentials> for AwsCredentials {
    fn from(answer: EndpointCredentials) -> AwsCredentials {
        AwsCredentials {
            access_key_id: answer.access_key_id,
            secret_access_key: answer.secret_access_key,
            session_token: answer.token,
        }
    }
}

/// The container credentials endpoint (ECS, EKS Pod Identity, CodeBuild): its full or relative
/// URI and authorization token, as the SDKs read them.
fn container(env: &Env, client: &ClientOptions, cx: &Context) -> Result<Option<AwsCredentials>> {
    let url = match (
        var(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
        var(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    ) {
        (Some(relative), _) => format!("http://169.254.170.2{relative}"),
        (None, Some(full)) => full.to_owned(),
        (None, None) => return Ok(None),
    };
    let endpoint = Endpoint::parse(&url, "the container credentials endpoint")?;
    let mut headers = Vec::new();
    let token = match var(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(file) => Some(
            String::from_utf8_lossy(&fsutil::read_regular(
                std::path::Path::new(file),
                64 << 10,
                "the container authorization token file",
            )?)
            .trim()
            .to_owned(),
        ),
        None => var(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN").map(str::to_owned),
    };
    if let Some(token) = token {
        headers.push(("Authorization", token));
    }
    let answer = get(&endpoint, &headers, client, cx)?;
    if answer.status != 200 {
        return Err(CloudError::new(format!(
            "the container credentials endpoint answered {}: {}",
            answer.status,
            sanitize::outside(&String::from_utf8_lossy(&answer.body), 200)
        )));
    }
    let parsed: EndpointCredentials = serde_json::from_slice(&answer.body).map_err(|e| {
        CloudError::new(format!(
            "the container credentials endpoint answered no credentials ({})",
            sanitize::outside(&e.to_string(), 200)
        ))
    })?;
    Ok(Some(parsed.into()))
}

/// The ECR API endpoint for `ecr`: `AWS_ENDPOINT_URL_ECR` (`_ECR_PUBLIC`), else `AWS_ENDPOINT_URL`,
/// else the profile's `endpoint_url`, else the region's.
fn ecr_endpoint(env: &Env, profile: Option<&Profile>, ecr: &EcrHost) -> String {
    let specific = if ecr.public {
        "AWS_ENDPOINT_URL_ECR_PUBLIC"
    } else {
        "AWS_ENDPOINT_URL_ECR"
    };
    var(env, specific)
        .or_else(|| var(env, "AWS_ENDPOINT_URL"))
        .or_else(|| profile.and_then(|p| p.get("endpoint_url")))
        .map_or_else(
            || {
                if ecr.public {
                    "https://api.ecr-public.us-east-1.amazonaws.com".to_owned()
                } else if ecr.fips {
                    format!("https://ecr-fips.{}.{}", ecr.region, ecr.suffix)
                } else {
                    format!("https://api.ecr.{}.{}", ecr.region, ecr.suffix)
                }
            },
            str::to_owned,
        )
}

/// An ECR token for `ecr` with the chain's credentials: basic auth `AWS` and the token's password.
pub(super) fn ecr_credential(
    ecr: &EcrHost,
    env: &Env,
    client: &ClientOptions,
    cx: &Context,
) -> Result<Option<Found>> {
    let Some((credentials, source)) = credentials(env, client, cx)? else {
        return Ok(None);
    };
    let profile = profile(env).ok().flatten();
    let endpoint = Endpoint::parse(
        &ecr_endpoint(env, profile.as_ref(), ecr),
        "the ECR endpoint",
    )?;
    let (service, target) = if ecr.public {
        ("ecr-public", "SpencerFrontendService.GetAuthorizationToken")
    } else {
        (
            "ecr",
            "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
        )
    };
    let body = b"{}";
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let amz_date = sigv4::amz_date(now);
    let request_headers = vec![
        ("host".to_owned(), endpoint.host_header()),
        (
            "content-type".to_owned(),
            "application/x-amz-json-1.1".to_owned(),
        ),
        ("x-amz-target".to_owned(), target.to_owned()),
    ];
    let signed = sigv4::sign(
        &Request {
            method: "POST",
            path: &endpoint.path,
            query: "",
            headers: request_headers.clone(),
            body,
        },
        &credentials,
        &Scope {
            region: &ecr.region,
            service,
            amz_date: &amz_date,
            normalize: true,
            sign_body: false,
            omit_session_token: false,
            double_encode_path: true,
        },
    );
    cx.listener().detail(&format!(
        "ECR: asking {} for a token for {} with the credentials of {source}",
        endpoint.shown(),
        ecr.region
    ));
    let headers: Vec<(&str, String)> = request_headers
        .iter()
        .chain(&signed.headers)
        .filter(|(name, _)| name != "host")
        .map(|(n, v)| (n.as_str(), v.clone()))
        .collect();
    let answer = post(&endpoint, &headers, body, client, cx)?;
    let (username, password) = token_of(&answer, ecr, &endpoint, &source)?;
    Ok(Some(Found {
        credential: Credential::Basic { username, password },
        source: format!("an ECR token (GetAuthorizationToken with the credentials of {source})"),
    }))
}

/// The user and password in ECR's answer, or the AWS error it holds, escaped.
fn token_of(
    answer: &super::http::Answer,
    ecr: &EcrHost,
    endpoint: &Endpoint,
    source: &str,
) -> Result<(String, String)> {
    if answer.status != 200 {
        #[derive(serde::Deserialize)]
        struct AwsError {
            #[serde(rename = "__type", default)]
            kind: String,
            #[serde(alias = "Message", default)]
            message: String,
        }
        let why = match serde_json::from_slice::<AwsError>(&answer.body) {
            Ok(e) if !e.kind.is_empty() => format!(
                "{}: {}",
                sanitize::outside(e.kind.rsplit('#').next().unwrap_or(&e.kind), 100),
                sanitize::outside(&e.message, 300)
            ),
            _ => sanitize::outside(&String::from_utf8_lossy(&answer.body), 200),
        };
        return Err(CloudError::new(format!(
            "ECR GetAuthorizationToken at {} refused the credentials of {source} ({}): {why}",
            endpoint.shown(),
            answer.status
        )));
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        authorization_token: String,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Private {
        authorization_data: Vec<Data>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Public {
        authorization_data: Data,
    }
    let token = if ecr.public {
        serde_json::from_slice::<Public>(&answer.body)
            .map(|p| p.authorization_data.authorization_token)
    } else {
        serde_json::from_slice::<Private>(&answer.body).map(|p| {
            p.authorization_data
                .into_iter()
                .next()
                .map(|d| d.authorization_token)
                .unwrap_or_default()
        })
    }
    .map_err(|e| {
        CloudError::new(format!(
            "ECR GetAuthorizationToken answered no token ({})",
            sanitize::outside(&e.to_string(), 200)
        ))
    })?;
    let decoded = BASE64
        .decode(token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
        .filter(|(u, p)| !u.is_empty() && !p.is_empty())
        .ok_or_else(|| {
            CloudError::new(
                "ECR GetAuthorizationToken answered a token that is not base64 of USER:PASSWORD"
                    .to_owned(),
            )
        })?;
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_hosts_are_recognised_with_their_region() {
        let ecr = ecr_host("123456789012.dkr.ecr.eu-west-3.amazonaws.com").unwrap();
        assert_eq!(
            (ecr.region.as_str(), ecr.public, ecr.fips),
            ("eu-west-3", false, false)
        );
        assert!(
            ecr_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com")
                .unwrap()
                .fips
        );
        assert_eq!(
            ecr_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn")
                .unwrap()
                .suffix,
            "amazonaws.com.cn"
        );
        assert!(ecr_host("public.ecr.aws").unwrap().public);
        for other in [
            "ghcr.io",
            "12345.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example",
            "123456789012.dkr.ecr..amazonaws.com",
            "localhost:5000",
        ] {
            assert_eq!(ecr_host(other), None, "{other}");
        }
    }

    #[test]
    fn profiles_are_read_from_both_files_credentials_first() {
        let text = "[default]\nregion = eu-west-1\n[profile ci]\naws_access_key_id = A\n";
        assert_eq!(
            ini_section(text, "profile ci").unwrap()["aws_access_key_id"],
            "A"
        );
        assert_eq!(ini_section(text, "default").unwrap()["region"], "eu-west-1");
        assert!(ini_section(text, "ci").is_none());
    }

    #[test]
    fn sts_answers_are_read_and_escaped() {
        let xml = "<R><Credentials><AccessKeyId>ASIA</AccessKeyId><SessionToken>a&amp;b</SessionToken></Credentials></R>";
        assert_eq!(xml_text(xml, "AccessKeyId").unwrap(), "ASIA");
        assert_eq!(xml_text(xml, "SessionToken").unwrap(), "a&b");
        assert_eq!(xml_text(xml, "Missing"), None);
        assert_eq!(xml_text("<Code><x/></Code>", "Code"), None);
    }
}
