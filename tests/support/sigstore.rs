//! Sigstore's own verifier, `@sigstore/verify` from npm, run by node through
//! `tests/tools/sigstore_verify.js`, trusting one public key and nothing else.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// node and the npm modules holding `@sigstore/verify` (scripts/test installs it in the test tools'
/// cache; ZEROIMAGE_NPM_MODULES names that `node_modules`).
pub fn sigstore_verify() -> Option<(PathBuf, PathBuf)> {
    let node = super::peer("node")?;
    let modules = std::env::var_os("ZEROIMAGE_NPM_MODULES")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(cache.join("zeroimage-test-tools/npm/node_modules"))
        })
        .filter(|m| m.join("@sigstore/verify/package.json").is_file());
    let modules = super::peer_at(
        "@sigstore/verify (npm; scripts/test installs it; ZEROIMAGE_NPM_MODULES names its node_modules)",
        modules,
    )?;
    Some((node, modules))
}

/// Runs the verifier on `bundle` with `public` as the only trusted key, and `artifact` (the signed
/// bytes) for a message signature.
pub fn node_verify(
    node: &Path,
    modules: &Path,
    bundle: &Path,
    public: &Path,
    artifact: Option<&Path>,
) -> Output {
    let mut command = Command::new(node);
    command
        .arg(super::root().join("tests/tools/sigstore_verify.js"))
        .arg(modules)
        .arg(bundle)
        .arg(public);
    if let Some(artifact) = artifact {
        command.arg(artifact);
    }
    command.output().unwrap()
}

/// A P-256 key pair made by `openssl`: the private key (PKCS#8 PEM) and the public key (PKIX PEM),
/// as `DIR/STEM.pem` and `DIR/STEM.pub`.
pub fn openssl_key(openssl: &Path, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{stem}.pem"));
    let public = dir.join(format!("{stem}.pub"));
    super::run_ok(
        Command::new(openssl)
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&key),
    );
    super::run_ok(
        Command::new(openssl)
            .args(["pkey", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&public),
    );
    (key, public)
}
