//! Cloud registries without a login step, offline: a registry named like ECR (or `ghcr.io`) is sent to
//! the loopback registry (the debug-only `ZEROIMAGE_TEST_HOST_MAP`), and ECR's and STS's endpoints
//! are fakes (`tests/tools/fake_aws.py`) that check each request's Signature Version 4 with botocore's
//! own signer before handing out a token the registry's htpasswd accepts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support;
use support::registry::{Setup, TestRegistry};
use support::{X86_64_MUSL, isolated_zeroimage, stderr_of};

const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const ECR_PASSWORD: &str = "ecr-password-from-the-token";
const KEY_ID: &str = "AKIDEXAMPLE0001";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// A fake cloud endpoint (`tests/tools/fake_*.py`), stopped when dropped.
struct Fake {
    child: Child,
    port: u16,
    log: PathBuf,
}

/// The fake ECR and STS endpoints.
type FakeAws = Fake;

impl Fake {
    fn start(dir: &Path, config: serde_json::Value) -> Option<Fake> {
        Fake::script(dir, "fake_aws.py", "botocore", config)
    }

    /// Runs `tests/tools/SCRIPT` with `config`, in the test tools' Python, which must have `module`.
    fn script(dir: &Path, script: &str, module: &str, config: serde_json::Value) -> Option<Fake> {
        let python = support::sbom_tools::venv().join("bin/python3");
        let has_module = python.is_file()
            && Command::new(&python)
                .args(["-c", &format!("import {module}")])
                .output()
                .is_ok_and(|o| o.status.success());
        let python = support::peer_at(
            &format!("python3 with {module} (scripts/test installs it in its virtual environment)"),
            has_module.then_some(python),
        )?;
        let log = dir.join(format!("{script}.log"));
        let mut child = Command::new(python)
            .arg(support::root().join("tests/tools").join(script))
            .arg(config.to_string())
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Some(Fake {
            port: line.trim().parse().unwrap(),
            child,
            log,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests received, one JSON object each.
    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config() -> serde_json::Value {
    serde_json::json!({
        "keys": {KEY_ID: SECRET, "ASIATEMPORARY01": "temporary-secret", "AKIDEXPIRED0001": "x"},
        "tokens": {"ASIATEMPORARY01": "session-token-from-sts"},
        "ecr_password": ECR_PASSWORD,
        "web_identity_token": "oidc-token-from-github",
        "sts_key": ["ASIATEMPORARY01", "temporary-secret", "session-token-from-sts"],
        "expired": ["AKIDEXPIRED0001"],
        "container_token": "container-authorization",
    })
}

/// A push of the hello program to `reference` (its registry mapped to `registry`), with `env` and
/// no AWS variable from the machine running the tests.
fn push(
    dir: &Path,
    registry: &TestRegistry,
    reference: &str,
    env: &[(&str, String)],
    extra: &[&str],
) -> std::process::Output {
    let hello = support::hello_fixture(X86_64_MUSL).unwrap();
    let host = reference.split('/').next().unwrap();
    let mut command = isolated_zeroimage(dir);
    command
        .arg(&hello)
        .args(["--push", reference, "-v", "--sbom", "none"])
        .args(extra)
        .env(
            "ZEROIMAGE_TEST_HOST_MAP",
            format!("{host}={}", registry.host()),
        );
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_ENDPOINT_URL",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "GITHUB_ACTIONS",
        "GITHUB_TOKEN",
        "GITHUB_ACTOR",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GCE_METADATA_HOST",
    ] {
        command.env_remove(name);
    }
    // No test asks the machine's own instance metadata address.
    if !env
        .iter()
        .any(|(n, _)| *n == "AWS_EC2_METADATA_SERVICE_ENDPOINT")
    {
        command.env("AWS_EC2_METADATA_DISABLED", "true");
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn ecr_registry() -> Option<TestRegistry> {
    TestRegistry::start(Setup {
        user: Some(("AWS", ECR_PASSWORD)),
        ..Setup::default()
    })
}

#[test]
fn an_ecr_registry_takes_a_token_signed_with_the_environments_keys_and_no_login() {
    let Some(registry) = ecr_registry() else {
        return;
    };
    if support::hello_fixture(X86_64_MUSL).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(aws) = FakeAws::start(dir.path(), config()) else {
        return;
    };
    let env = [
        ("AWS_ACCESS_KEY_ID", KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET.to_owned()),
        ("AWS_ENDPOINT_URL_ECR", aws.url()),
    ];
    let output = push(dir.path(), &registry, &format!("{ECR}/app:1.0"), &env, &[]);
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "using an ECR token (GetAuthorizationToken with the credentials of AWS_ACCESS_KEY_ID"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains(SECRET) && !stderr.contains(ECR_PASSWORD),
        "{stderr}"
    );
    let requests = aws.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["signature"], "ok", "{requests:?}");
    assert_eq!(
        requests[0]["target"],
        "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
    );
    assert!(
        requests[0]["authorization"]
            .as_str()
            .unwrap()
            .contains(&format!("Credential={KEY_ID}/")),
        "{requests:?}"
    );

    // --no-cloud-credentials: no token asked for, and the registry refuses the push.
    let off = push(
        dir.path(),
        &registry,
        &format!("{ECR}/app:1.0"),
        &env,
        &["--no-cloud-credentials"],
    );
    assert_eq!(off.status.code(), Some(1), "{}", stderr_of(&off));
    assert_eq!(aws.requests().len(), 1, "no second token request");

    // Keys AWS says are expired: its code and message, escaped, in one line, and no push.
    let expired = push(
        dir.path(),
        &registry,
        &format!("{ECR}/app:2.0"),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDEXPIRED0001".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "x".to_owned()),
            ("AWS_ENDPOINT_URL_ECR", aws.url()),
        ],
        &[],
    );
    assert_eq!(expired.status.code(), Some(1));
    let stderr = stderr_of(&expired);
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(
        error[0].contains(
            "ExpiredTokenException: The security token included in the request is expired"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\x1b'),
        "the answer's escape sequence is escaped: {stderr:?}"
    );
    assert!(
        registry
            .log()
            .lines()
            .all(|l| !l.contains("app/manifests/2.0"))
    );

    // A wrong secret: the fake's signature check refuses it, and so nothing is pushed.
    let wrong = push(
        dir.path(),
        &registry,
        &format!("{ECR}/app:3.0"),
        &[
            ("AWS_ACCESS_KEY_ID", KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "not-the-secret".to_owned()),
            ("AWS_ENDPOINT_URL_ECR", aws.url()),
        ],
        &[],
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stderr_of(&wrong).contains("InvalidSignatureException"),
        "{}",
        stderr_of(&wrong)
    );
}

#[test]
fn profiles_credential_process_and_web_identity_reach_ecr() {
    let Some(registry) = ecr_registry() else {
        return;
    };
    if support::hello_fixture(X86_64_MUSL).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(aws) = FakeAws::start(dir.path(), config()) else {
        return;
    };
    // isolated_zeroimage makes `dir` the home directory.
    let aws_dir = dir.path().join(".aws");
    std::fs::create_dir_all(&aws_dir).unwrap();
    std::fs::write(
        aws_dir.join("credentials"),
        format!("[ci]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    std::fs::write(
        aws_dir.join("config"),
        format!(
            "[profile ci]\nendpoint_url = {url}\n\
             [profile process]\nendpoint_url = {url}\ncredential_process = printf '{{\"Version\": 1, \"AccessKeyId\": \"{KEY_ID}\", \"SecretAccessKey\": \"{SECRET}\"}}'\n\
             [profile assumer]\nrole_arn = arn:aws:iam::123456789012:role/pusher\nsource_profile = ci\nendpoint_url = {url}\n\
             [profile hangs]\ncredential_process = sleep 600\n\
             [profile floods]\ncredential_process = yes\n",
            url = aws.url()
        ),
    )
    .unwrap();
    let reference = format!("{ECR}/app:1.0");
    for profile in ["ci", "process", "assumer"] {
        let output = push(
            dir.path(),
            &registry,
            &reference,
            &[("AWS_PROFILE", profile.to_owned())],
            &[],
        );
        let stderr = stderr_of(&output);
        assert!(output.status.success(), "{profile}: {stderr}");
        assert!(stderr.contains(&format!("profile `{profile}`")), "{stderr}");
    }
    // The assumed role's temporary keys (and session token) signed the ECR request; botocore
    // checked the AssumeRole request's signature, made with the source profile's keys.
    let requests = aws.requests();
    let assumed = requests
        .iter()
        .find(|r| r["action"] == "AssumeRole")
        .unwrap();
    assert_eq!(assumed["signature"], "ok", "{assumed}");
    assert!(assumed["authorization"].as_str().unwrap().contains(KEY_ID));
    assert!(
        requests.last().unwrap()["authorization"]
            .as_str()
            .unwrap()
            .contains("ASIATEMPORARY01")
    );
    for (profile, why) in [
        ("missing", "names the profile `missing`, which"),
        ("hangs", "did not finish within 2 s"),
        ("floods", "printed more than"),
    ] {
        let output = push(
            dir.path(),
            &registry,
            &reference,
            &[
                ("AWS_PROFILE", profile.to_owned()),
                ("ZEROIMAGE_CREDENTIAL_HELPER_TIMEOUT", "2".to_owned()),
            ],
            &[],
        );
        assert_eq!(output.status.code(), Some(1), "{profile}");
        let stderr = stderr_of(&output);
        assert!(stderr.contains(why), "{profile}: {stderr}");
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("error")).count(),
            1,
            "{stderr}"
        );
    }

    // Web identity (GitHub Actions' OIDC token): STS hands out temporary keys, which sign for ECR.
    let token_file = dir.path().join("oidc-token");
    std::fs::write(&token_file, "oidc-token-from-github\n").unwrap();
    let web = |token: &str, sts: &str| {
        std::fs::write(&token_file, token).unwrap();
        push(
            dir.path(),
            &registry,
            &reference,
            &[
                (
                    "AWS_ROLE_ARN",
                    "arn:aws:iam::123456789012:role/ci".to_owned(),
                ),
                (
                    "AWS_WEB_IDENTITY_TOKEN_FILE",
                    token_file.display().to_string(),
                ),
                ("AWS_ENDPOINT_URL_STS", sts.to_owned()),
                ("AWS_ENDPOINT_URL_ECR", aws.url()),
                (
                    "AWS_CONFIG_FILE",
                    dir.path().join("none").display().to_string(),
                ),
                (
                    "AWS_SHARED_CREDENTIALS_FILE",
                    dir.path().join("none").display().to_string(),
                ),
            ],
            &["--registry-timeout", "2"],
        )
    };
    let output = web("oidc-token-from-github", &aws.url());
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("AssumeRoleWithWebIdentity"), "{stderr}");
    let requests = aws.requests();
    let sts = requests
        .iter()
        .find(|r| r["action"] == "AssumeRoleWithWebIdentity")
        .unwrap();
    assert!(
        sts["body"]
            .as_str()
            .unwrap()
            .contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fci")
    );
    let last = requests.last().unwrap();
    assert_eq!(last["signature"], "ok");
    assert!(
        last["authorization"]
            .as_str()
            .unwrap()
            .contains("ASIATEMPORARY01")
    );

    let refused = web("another-token", &aws.url());
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr_of(&refused).contains("InvalidIdentityToken: Couldn't retrieve verification key"),
        "{}",
        stderr_of(&refused)
    );

    // STS answering what STS never answers, or not at all.
    for (mode, why) in [("garbage", "not an STS answer"), ("stall", "no progress")] {
        let mut odd = config();
        odd["sts_mode"] = mode.into();
        let sub = dir.path().join(mode);
        std::fs::create_dir(&sub).unwrap();
        let other = FakeAws::start(&sub, odd).unwrap();
        let started = std::time::Instant::now();
        let output = web("oidc-token-from-github", &other.url());
        assert_eq!(output.status.code(), Some(1), "{mode}");
        let stderr = stderr_of(&output);
        assert!(stderr.contains(why), "{mode}: {stderr}");
        assert!(
            started.elapsed().as_secs() < 30,
            "{mode}: bounded by the registry timeout"
        );
    }
}

/// Writes the AWS CLI's cached IAM Identity Center sign-in for `key` (a session name, or the
/// start URL of an older profile) under `home`, with botocore's own cache code, expiring in `hours`.
fn cache_sso_sign_in(home: &Path, key: &str, session: bool, token: &str, hours: i64) {
    let python = support::sbom_tools::venv().join("bin/python3");
    let script = "import datetime, sys\n\
        from botocore.utils import JSONFileCache, SSOTokenLoader\n\
        home, key, session, token, hours = sys.argv[1:]\n\
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=int(hours))\n\
        loader = SSOTokenLoader(cache=JSONFileCache(home + '/.aws/sso/cache'))\n\
        loader.save_token(key, {'startUrl': key, 'region': 'eu-west-1', 'accessToken': token,\n\
            'expiresAt': expires}, session_name=key if session == '1' else None)\n";
    let output = Command::new(python)
        .args(["-c", script])
        .arg(home)
        .args([key, if session { "1" } else { "0" }, token])
        .arg(hours.to_string())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
}

#[test]
fn an_sso_profile_trades_the_cli_cached_sign_in_for_role_keys() {
    let Some(registry) = ecr_registry() else {
        return;
    };
    if support::hello_fixture(X86_64_MUSL).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut fake_config = config();
    fake_config["sso_token"] = "sso-access-token".into();
    fake_config["sso_role"] = serde_json::json!(["123456789012", "Pusher"]);
    let Some(aws) = FakeAws::start(dir.path(), fake_config) else {
        return;
    };
    let aws_dir = dir.path().join(".aws");
    std::fs::create_dir_all(&aws_dir).unwrap();
    std::fs::write(
        aws_dir.join("config"),
        "[profile sso]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Pusher\n\
         [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n\
         [profile legacy]\nsso_start_url = https://legacy.awsapps.com/start\nsso_region = eu-west-1\n\
         sso_account_id = 123456789012\nsso_role_name = Pusher\n\
         [profile other-role]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Admin\n",
    )
    .unwrap();
    let reference = format!("{ECR}/app:1.0");
    let run = |profile: &str| {
        push(
            dir.path(),
            &registry,
            &reference,
            &[
                ("AWS_PROFILE", profile.to_owned()),
                ("AWS_ENDPOINT_URL_SSO", aws.url()),
                ("AWS_ENDPOINT_URL_ECR", aws.url()),
            ],
            &[],
        )
    };
    let refused = |profile: &str, why: &str| {
        let output = run(profile);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{profile}: {stderr}");
        assert!(stderr.contains(why), "{profile}: {stderr}");
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("error")).count(),
            1,
            "{stderr}"
        );
    };

    // No sign-in yet: the fix is the CLI's login.
    refused("sso", "no IAM Identity Center sign-in is cached");
    refused("sso", "run `aws sso login --profile sso`");

    // Signed in (the cache file written by botocore): the portal trades the token for the role's
    // temporary keys, which sign for ECR.
    cache_sso_sign_in(dir.path(), "corp", true, "sso-access-token", 8);
    cache_sso_sign_in(
        dir.path(),
        "https://legacy.awsapps.com/start",
        false,
        "sso-access-token",
        8,
    );
    for profile in ["sso", "legacy"] {
        let output = run(profile);
        let stderr = stderr_of(&output);
        assert!(output.status.success(), "{profile}: {stderr}");
        assert!(
            stderr.contains(&format!("profile `{profile}` (IAM Identity Center)")),
            "{stderr}"
        );
        assert!(!stderr.contains("sso-access-token"), "{stderr}");
        let requests = aws.requests();
        let asked = requests
            .iter()
            .rev()
            .find(|r| r["action"] == "GetRoleCredentials")
            .unwrap();
        assert_eq!(asked["token"], "sso-access-token");
        assert_eq!(
            asked["asked"],
            serde_json::json!(["123456789012", "Pusher"])
        );
        let last = requests.last().unwrap();
        assert_eq!(last["signature"], "ok", "{last}");
        assert!(
            last["authorization"]
                .as_str()
                .unwrap()
                .contains("ASIATEMPORARY01")
        );
    }

    // A role the sign-in does not reach, a token the portal no longer knows, an expired sign-in.
    refused(
        "other-role",
        "refused the role Admin in account 123456789012 for profile `other-role` (403: No access); \
         check the profile's sso_account_id and sso_role_name",
    );
    cache_sso_sign_in(dir.path(), "corp", true, "revoked-token", 8);
    refused(
        "sso",
        "(401: Session token not found or invalid); run `aws sso login --profile sso`",
    );
    cache_sso_sign_in(dir.path(), "corp", true, "sso-access-token", -1);
    refused("sso", "expired at");
}

#[test]
fn ghcr_takes_github_token_inside_github_actions_only() {
    let Some(registry) = TestRegistry::start(Setup {
        user: Some(("octocat", "ghs_workflowtoken")),
        ..Setup::default()
    }) else {
        return;
    };
    if support::hello_fixture(X86_64_MUSL).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("GITHUB_TOKEN", "ghs_workflowtoken".to_owned()),
        ("GITHUB_ACTOR", "octocat".to_owned()),
    ];
    let outside = push(dir.path(), &registry, "ghcr.io/octocat/app:1.0", &env, &[]);
    assert_eq!(outside.status.code(), Some(1), "not in Actions: no token");
    env.push(("GITHUB_ACTIONS", "true".to_owned()));
    let inside = push(dir.path(), &registry, "ghcr.io/octocat/app:1.0", &env, &[]);
    let stderr = stderr_of(&inside);
    assert!(inside.status.success(), "{stderr}");
    assert!(
        stderr.contains("using GITHUB_TOKEN as `octocat` (GitHub Actions)"),
        "{stderr}"
    );
    assert!(!stderr.contains("ghs_workflowtoken"), "{stderr}");
}

#[test]
fn google_registries_take_an_access_token_from_adc_or_the_metadata_server() {
    let Some(registry) = TestRegistry::start(Setup {
        user: Some(("oauth2accesstoken", "ya29.fake-access-token")),
        ..Setup::default()
    }) else {
        return;
    };
    if support::hello_fixture(X86_64_MUSL).is_none() || support::peer("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sa.pem");
    support::run_ok(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&key),
    );
    let public = support::run_ok(
        Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&key),
    );
    let Some(google) = Fake::script(
        dir.path(),
        "fake_google.py",
        "cryptography",
        serde_json::json!({
            "public_key_pem": support::stdout_of(&public),
            "client_email": "pusher@project.iam.gserviceaccount.com",
            "refresh_token": "1//refresh", "client_id": "id.apps.googleusercontent.com",
            "client_secret": "client-secret", "access_token": "ya29.fake-access-token",
        }),
    ) else {
        return;
    };
    let token_uri = format!("{}/token", google.url());
    let service_account = dir.path().join("service-account.json");
    std::fs::write(
        &service_account,
        serde_json::json!({
            "type": "service_account", "project_id": "project", "private_key_id": "k1",
            "private_key": std::fs::read_to_string(&key).unwrap(),
            "client_email": "pusher@project.iam.gserviceaccount.com", "token_uri": token_uri,
        })
        .to_string(),
    )
    .unwrap();
    let reference = "europe-west1-docker.pkg.dev/project/images/app:1.0";
    let with = |env: &[(&str, String)]| {
        let mut env = env.to_vec();
        env.push((
            "CLOUDSDK_CONFIG",
            dir.path().join("no-gcloud").display().to_string(),
        ));
        push(dir.path(), &registry, reference, &env, &[])
    };
    let output = with(&[(
        "GOOGLE_APPLICATION_CREDENTIALS",
        service_account.display().to_string(),
    )]);
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("using a Google access token (service_account credentials in"),
        "{stderr}"
    );
    assert!(!stderr.contains("ya29."), "{stderr}");
    let requests = google.requests();
    assert_eq!(
        requests[0]["problem"],
        serde_json::Value::Null,
        "{requests:?}"
    );

    // gcloud's authorized_user file, where gcloud keeps it.
    let gcloud = dir.path().join("gcloud");
    std::fs::create_dir(&gcloud).unwrap();
    std::fs::write(
        gcloud.join("application_default_credentials.json"),
        serde_json::json!({"type": "authorized_user", "client_id": "id.apps.googleusercontent.com",
            "client_secret": "client-secret", "refresh_token": "1//refresh",
            "token_uri": token_uri})
        .to_string(),
    )
    .unwrap();
    let output = push(
        dir.path(),
        &registry,
        reference,
        &[("CLOUDSDK_CONFIG", gcloud.display().to_string())],
        &[],
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("authorized_user credentials"),
        "{}",
        stderr_of(&output)
    );

    // The metadata server (GCE, Cloud Build), at GCE_METADATA_HOST.
    let output = with(&[("GCE_METADATA_HOST", format!("127.0.0.1:{}", google.port))]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("the metadata server"),
        "{}",
        stderr_of(&output)
    );

    // A key the account does not have: Google's error, in one line, and nothing pushed.
    let other = dir.path().join("other.pem");
    support::run_ok(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&other),
    );
    let forged = dir.path().join("forged.json");
    std::fs::write(
        &forged,
        serde_json::json!({"type": "service_account",
            "private_key": std::fs::read_to_string(&other).unwrap(),
            "client_email": "pusher@project.iam.gserviceaccount.com", "token_uri": token_uri})
        .to_string(),
    )
    .unwrap();
    let refused = with(&[(
        "GOOGLE_APPLICATION_CREDENTIALS",
        forged.display().to_string(),
    )]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = stderr_of(&refused);
    assert!(
        stderr.contains("invalid_grant: Invalid JWT Signature."),
        "{stderr}"
    );
}

#[test]
fn one_token_per_run_ecr_public_and_the_container_endpoint() {
    let Some(registry) = ecr_registry() else {
        return;
    };
    if support::hello_fixture(X86_64_MUSL).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(aws) = FakeAws::start(dir.path(), config()) else {
        return;
    };
    let keys = [
        ("AWS_ACCESS_KEY_ID", KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET.to_owned()),
        ("AWS_ENDPOINT_URL", aws.url()),
    ];
    let base = format!("{ECR}/base:1");
    let pushed = push(dir.path(), &registry, &base, &keys, &[]);
    assert!(pushed.status.success(), "{}", stderr_of(&pushed));
    // A base pulled and an image pushed, on one registry: one token for both.
    let output = push(
        dir.path(),
        &registry,
        &format!("{ECR}/app:1"),
        &keys,
        &["--from", &base, "--entrypoint-path", "/app/hello"],
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    let tokens = |aws: &FakeAws| {
        aws.requests()
            .iter()
            .filter(|r| r["signature"] == "ok")
            .count()
    };
    assert_eq!(tokens(&aws), 2, "{:?}", aws.requests());

    // ECR Public: its own API (ecr-public, in us-east-1).
    let output = push(
        dir.path(),
        &registry,
        "public.ecr.aws/team/app:1",
        &keys,
        &[],
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    let last = aws.requests().pop().unwrap();
    assert_eq!(
        last["target"],
        "SpencerFrontendService.GetAuthorizationToken"
    );
    assert!(
        last["authorization"]
            .as_str()
            .unwrap()
            .contains("/us-east-1/ecr-public/aws4_request"),
        "{last}"
    );

    // The container credentials endpoint (ECS, EKS Pod Identity), with its authorization token.
    let output = push(
        dir.path(),
        &registry,
        &format!("{ECR}/app:2"),
        &[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                format!("{}/creds", aws.url()),
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                "container-authorization".to_owned(),
            ),
            ("AWS_ENDPOINT_URL", aws.url()),
            (
                "AWS_CONFIG_FILE",
                dir.path().join("none").display().to_string(),
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("none").display().to_string(),
            ),
        ],
        &[],
    );
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("the container credentials endpoint"),
        "{stderr}"
    );

    // The EC2 instance profile, through IMDSv2 (a session token, then the role's credentials).
    let output = push(
        dir.path(),
        &registry,
        &format!("{ECR}/app:3"),
        &[
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", aws.url()),
            ("AWS_ENDPOINT_URL", aws.url()),
            (
                "AWS_CONFIG_FILE",
                dir.path().join("none").display().to_string(),
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("none").display().to_string(),
            ),
        ],
        &[],
    );
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("the EC2 instance profile"), "{stderr}");
}

#[test]
fn ecr_public_goes_on_without_credentials_when_its_token_is_refused() {
    // ECR Public serves public images to anyone: keys without its permissions must not break them.
    let Some(open) = TestRegistry::start(Setup::default()) else {
        return;
    };
    if support::hello_fixture(X86_64_MUSL).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(aws) = FakeAws::start(dir.path(), config()) else {
        return;
    };
    let output = push(
        dir.path(),
        &open,
        "public.ecr.aws/team/app:1",
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDEXPIRED0001".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "x".to_owned()),
            ("AWS_ENDPOINT_URL", aws.url()),
        ],
        &[],
    );
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("no ECR Public token") && stderr.contains("ExpiredTokenException"),
        "{stderr}"
    );
    assert_eq!(aws.requests().len(), 1);
}
