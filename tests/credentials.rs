//! Credential helpers are programs on PATH; this file has one test so changing PATH races nothing.

use std::os::unix::fs::PermissionsExt;

use zeroimage::registry::credentials::{Credential, lookup_in};

#[test]
fn credential_helpers_are_asked_and_not_found_means_anonymous() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-zitest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\nif [ \"$server\" = helped.example.com ]; then\n\
         echo '{\"ServerURL\":\"helped.example.com\",\"Username\":\"bob\",\"Secret\":\"pw\"}'\n\
         elif [ \"$server\" = token.example.com ]; then\n\
         echo '{\"ServerURL\":\"token.example.com\",\"Username\":\"<token>\",\"Secret\":\"refresh\"}'\n\
         else echo 'credentials not found in native keychain'; exit 1; fi\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("config.json");
    std::fs::write(
        &file,
        r#"{"credHelpers": {"helped.example.com": "zitest"}, "credsStore": "zitest"}"#,
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // SAFETY: this test binary runs this one test; nothing else reads the environment meanwhile.
    unsafe { std::env::set_var("PATH", path) };
    assert_eq!(
        lookup_in(&file, "helped.example.com").unwrap(),
        Some(Credential::Basic {
            username: "bob".into(),
            password: "pw".into()
        }),
        "credHelpers entry"
    );
    assert_eq!(
        lookup_in(&file, "token.example.com").unwrap(),
        Some(Credential::IdentityToken("refresh".into())),
        "credsStore, identity token"
    );
    assert_eq!(
        lookup_in(&file, "unknown.example.com").unwrap(),
        None,
        "the store says not found"
    );
}
