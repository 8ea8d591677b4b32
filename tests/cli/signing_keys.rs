//! Signing keys and signed documents against implementations that are not ours: keys made by openssl
//! and by Python (`cryptography` + `pynacl`, following cosign's encrypted format) load and sign;
//! `zeroimage generate-key-pair`'s key is decrypted by that Python; signatures verify with `openssl
//! dgst`, DSSE envelopes with Python over its own pre-authentication encoding, and Sigstore bundles
//! with `@sigstore/verify` from npm; and each of them refuses another key or changed bytes. The key
//! file, payload and envelope are byte for byte what Go's encoders write for the struct shapes cosign
//! marshals (checked with the Go standard library).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroimage::error::Error;
use zeroimage::error::signing::{KeyProblem, SignatureProblem};
use zeroimage::oci::Digest;
use zeroimage::sign::{self, PublicKey, SigningKey, bundle, dsse, payload};
use zeroize::Zeroizing;

use crate::support::{self, stderr_of, zeroimage};

fn openssl() -> Option<PathBuf> {
    support::peer("openssl")
}

/// A Python with `cryptography` and `nacl` (the test tools' virtual environment, first on PATH).
fn python() -> Option<PathBuf> {
    let found = support::which("python3").filter(|python| {
        Command::new(python)
            .args(["-c", "import cryptography, nacl"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    support::peer_at(
        "python3 with cryptography and pynacl (scripts/test installs them in its virtual environment)",
        found,
    )
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn python_run(python: &Path, script: &str, args: &[&Path]) -> Output {
    let mut command = Command::new(python);
    command.arg("-c").arg(script).args(args);
    command.output().unwrap()
}

fn password(text: &'static str) -> impl FnMut() -> zeroimage::Result<Zeroizing<String>> {
    move || Ok(Zeroizing::new(text.to_owned()))
}

fn no_password() -> impl FnMut() -> zeroimage::Result<Zeroizing<String>> {
    || panic!("the password was asked for an unencrypted key")
}

fn manifest_digest() -> Digest {
    Digest::of(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#)
}

#[test]
fn an_openssl_key_signs_what_openssl_verifies_and_another_key_does_not() {
    let Some(openssl) = openssl() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (key_path, public_path) = support::sigstore::openssl_key(&openssl, dir.path(), "signer");
    let (_, other_public) = support::sigstore::openssl_key(&openssl, dir.path(), "other");
    let key = SigningKey::load(&key_path, &mut no_password()).unwrap();
    // Our PKIX PEM is openssl's, byte for byte; and the key openssl derives is the one we read.
    assert_eq!(
        key.public_key().to_pem(),
        std::fs::read_to_string(&public_path).unwrap()
    );
    assert_eq!(PublicKey::load(&public_path).unwrap(), key.public_key());

    let signed = dir.path().join("payload.json");
    std::fs::write(
        &signed,
        payload::simple_signing("registry.example.com/team/app", &manifest_digest()),
    )
    .unwrap();
    let signature = dir.path().join("payload.sig");
    std::fs::write(&signature, key.sign(&std::fs::read(&signed).unwrap())).unwrap();
    let verify = |public: &Path| {
        Command::new(&openssl)
            .args(["dgst", "-sha256", "-verify"])
            .arg(public)
            .arg("-signature")
            .arg(&signature)
            .arg(&signed)
            .output()
            .unwrap()
    };
    let ok = verify(&public_path);
    assert!(ok.status.success(), "{}", stderr_of(&ok));
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "Verified OK");
    let refused = verify(&other_public);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stdout).contains("Verification failure"));

    // And the other way: a signature openssl makes verifies with our verifier, not with another key.
    let theirs = dir.path().join("openssl.sig");
    run(Command::new(&openssl)
        .args(["dgst", "-sha256", "-sign"])
        .arg(&key_path)
        .arg("-out")
        .arg(&theirs)
        .arg(&signed));
    let message = std::fs::read(&signed).unwrap();
    let their_signature = std::fs::read(&theirs).unwrap();
    key.public_key().verify(&message, &their_signature).unwrap();
    let other = PublicKey::load(&other_public).unwrap();
    assert!(matches!(
        other.verify(&message, &their_signature),
        Err(Error::Signature {
            problem: SignatureProblem::Invalid { .. }
        })
    ));
    // The SEC1 form of the same key (`openssl ec`) is the same key.
    let sec1 = dir.path().join("signer-sec1.pem");
    run(Command::new(&openssl)
        .args(["ec", "-in"])
        .arg(&key_path)
        .arg("-out")
        .arg(&sec1));
    assert_eq!(
        SigningKey::load(&sec1, &mut no_password())
            .unwrap()
            .public_key(),
        key.public_key()
    );
    // `openssl ecparam -genkey` writes an `EC PARAMETERS` block before the key: skipped.
    let ecparam = dir.path().join("ecparam.pem");
    run(Command::new(&openssl)
        .args(["ecparam", "-name", "prime256v1", "-genkey", "-out"])
        .arg(&ecparam));
    assert!(
        std::fs::read_to_string(&ecparam)
            .unwrap()
            .starts_with("-----BEGIN EC PARAMETERS-----")
    );
    let from_ecparam = SigningKey::load(&ecparam, &mut no_password()).unwrap();
    from_ecparam
        .public_key()
        .verify(b"m", &from_ecparam.sign(b"m"))
        .unwrap();
}

/// Decrypts a cosign key as go-securesystemslib does (scrypt with the file's parameters, then
/// nacl/secretbox), prints its parameters, salt length and public key PEM, and signs argv[2] with it
/// into argv[3].
const PYTHON_DECRYPT: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
import nacl.secret

text = open(sys.argv[1]).read()
lines = text.strip().splitlines()
assert lines[0] == "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----", lines[0]
assert lines[-1] == "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----", lines[-1]
doc = json.loads(base64.b64decode("".join(lines[1:-1])))
kdf, cipher = doc["kdf"], doc["cipher"]
assert kdf["name"] == "scrypt" and cipher["name"] == "nacl/secretbox"
params = kdf["params"]
salt = base64.b64decode(kdf["salt"])
key = Scrypt(salt=salt, length=32, n=params["N"], r=params["r"], p=params["p"]).derive(sys.argv[4].encode())
der = nacl.secret.SecretBox(key).decrypt(base64.b64decode(doc["ciphertext"]), base64.b64decode(cipher["nonce"]))
private = serialization.load_der_private_key(der, password=None)
assert isinstance(private.curve, ec.SECP256R1)
open(sys.argv[3], "wb").write(private.sign(open(sys.argv[2], "rb").read(), ec.ECDSA(hashes.SHA256())))
print(params["N"], params["r"], params["p"], len(salt), len(base64.b64decode(cipher["nonce"])))
print(private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(), end="")
"#;

#[test]
fn generate_key_pair_writes_a_cosign_key_that_python_decrypts_and_never_replaces_one() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("release");
    let output = zeroimage()
        .args(["generate-key-pair", "--output-key-prefix"])
        .arg(&prefix)
        .env("COSIGN_PASSWORD", "correct horse battery")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("Generated"),
        "{}",
        stderr_of(&output)
    );
    let private = dir.path().join("release.key");
    let public = dir.path().join("release.pub");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let message = dir.path().join("message");
    std::fs::write(&message, b"signed by python with our key").unwrap();
    let signature = dir.path().join("python.sig");
    let decrypted = python_run(
        &python,
        &format!("import sys; sys.argv += ['correct horse battery']\n{PYTHON_DECRYPT}"),
        &[&private, &message, &signature],
    );
    assert!(decrypted.status.success(), "{}", stderr_of(&decrypted));
    let stdout = String::from_utf8(decrypted.stdout).unwrap();
    let (parameters, public_pem) = stdout.split_once('\n').unwrap();
    // What current cosign writes: N=65536 r=8 p=1, a 32-byte salt, a 24-byte nonce.
    assert_eq!(parameters, "65536 8 1 32 24");
    assert_eq!(public_pem, std::fs::read_to_string(&public).unwrap());
    let ours = PublicKey::load(&public).unwrap();
    ours.verify(
        &std::fs::read(&message).unwrap(),
        &std::fs::read(&signature).unwrap(),
    )
    .unwrap();
    // Our loader reads it back with the password, and refuses a wrong one.
    let key = SigningKey::load(&private, &mut password("correct horse battery")).unwrap();
    assert_eq!(key.public_key(), ours);
    assert!(matches!(
        SigningKey::load(&private, &mut password("wrong")),
        Err(Error::Key {
            problem: KeyProblem::WrongPassword,
            ..
        })
    ));

    // A second run refuses, with both files as they were and nothing else left.
    let before = (
        std::fs::read(&private).unwrap(),
        std::fs::read(&public).unwrap(),
    );
    let again = zeroimage()
        .args(["generate-key-pair", "--output-key-prefix"])
        .arg(&prefix)
        .env("COSIGN_PASSWORD", "other")
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    let err = stderr_of(&again);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("release.key") && err.contains("already exists"),
        "{err}"
    );
    assert_eq!(
        (
            std::fs::read(&private).unwrap(),
            std::fs::read(&public).unwrap()
        ),
        before
    );
    // No password at hand (no variable, standard input not a terminal): one line naming the variable,
    // and no file written.
    let elsewhere = dir.path().join("nothing");
    let refused = zeroimage()
        .args(["generate-key-pair", "--output-key-prefix"])
        .arg(&elsewhere)
        .env_remove("COSIGN_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let err = stderr_of(&refused);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("COSIGN_PASSWORD"), "{err}");
    // An empty COSIGN_PASSWORD is a password, as cosign takes it.
    let empty = dir.path().join("empty");
    let made = zeroimage()
        .args(["generate-key-pair", "--output-key-prefix"])
        .arg(&empty)
        .env("COSIGN_PASSWORD", "")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr_of(&made));
    SigningKey::load(&dir.path().join("empty.key"), &mut password("")).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "empty.key",
            "empty.pub",
            "message",
            "python.sig",
            "release.key",
            "release.pub"
        ]
    );
}

/// Writes a cosign encrypted key the way go-securesystemslib does, from a key Python makes: argv[1]
/// the key file, argv[2] its public key, argv[3] the password, argv[4] N, argv[5] the PEM label.
const PYTHON_ENCRYPT: &str = r#"
import base64, json, os, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
import nacl.secret, nacl.utils

private = ec.generate_private_key(ec.SECP256R1())
der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
n = int(sys.argv[4])
salt = os.urandom(32)
key = Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(sys.argv[3].encode())
nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
sealed = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext
doc = {"kdf": {"name": "scrypt", "params": {"N": n, "r": 8, "p": 1}, "salt": base64.b64encode(salt).decode()},
       "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
       "ciphertext": base64.b64encode(sealed).decode()}
body = base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()
label = sys.argv[5]
pem = "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(body[i:i + 64] for i in range(0, len(body), 64)), label)
open(sys.argv[1], "w").write(pem)
open(sys.argv[2], "wb").write(private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
"#;

#[test]
fn a_cosign_key_encrypted_by_python_loads_with_its_own_parameters() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // cosign 1.x wrote N=32768 and the older label; 2.x N=65536 and the current one.
    for (n, label) in [
        ("32768", "ENCRYPTED COSIGN PRIVATE KEY"),
        ("65536", "ENCRYPTED SIGSTORE PRIVATE KEY"),
    ] {
        let key_path = dir.path().join(format!("{n}.key"));
        let public_path = dir.path().join(format!("{n}.pub"));
        let made = python_run(
            &python,
            PYTHON_ENCRYPT,
            &[
                &key_path,
                &public_path,
                Path::new("pass phrase"),
                Path::new(n),
                Path::new(label),
            ],
        );
        assert!(made.status.success(), "{}", stderr_of(&made));
        let key = SigningKey::load(&key_path, &mut password("pass phrase")).unwrap();
        let public = PublicKey::load(&public_path).unwrap();
        assert_eq!(key.public_key(), public, "N={n}");
        public.verify(b"m", &key.sign(b"m")).unwrap();
        let wrong = SigningKey::load(&key_path, &mut password("pass phrase!"));
        match wrong {
            Err(error @ Error::Key { .. }) => {
                let text = error.to_string();
                assert!(text.contains(&format!("{n}.key")), "{text}");
                assert!(text.contains("wrong password"), "{text}");
                assert!(matches!(
                    error,
                    Error::Key {
                        problem: KeyProblem::WrongPassword,
                        ..
                    }
                ));
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Verifies a DSSE envelope (argv[1]) with the public key (argv[2]), computing the
/// pre-authentication encoding itself; prints the payload type and the payload.
const PYTHON_DSSE_VERIFY: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
envelope = json.load(open(sys.argv[1]))
public = serialization.load_pem_public_key(open(sys.argv[2], "rb").read())
kind = envelope["payloadType"].encode()
body = base64.b64decode(envelope["payload"])
pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)
for signature in envelope["signatures"]:
    public.verify(base64.b64decode(signature["sig"]), pae, ec.ECDSA(hashes.SHA256()))
print(kind.decode())
sys.stdout.write(body.decode())
"#;

/// Signs argv[2] (a payload) as an in-toto DSSE envelope with the PEM key argv[1], written to argv[3].
const PYTHON_DSSE_SIGN: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
private = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), password=None)
kind = b"application/vnd.in-toto+json"
body = open(sys.argv[2], "rb").read()
pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)
sig = private.sign(pae, ec.ECDSA(hashes.SHA256()))
json.dump({"payloadType": kind.decode(), "payload": base64.b64encode(body).decode(),
           "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}]}, open(sys.argv[3], "w"))
"#;

fn statement(digest: &Digest) -> Vec<u8> {
    format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"registry.example.com/team/app","digest":{{"sha256":"{}"}}}}],"predicateType":"https://spdx.dev/Document","predicate":{{"spdxVersion":"SPDX-2.3"}}}}"#,
        digest.hex()
    )
    .into_bytes()
}

#[test]
fn dsse_envelopes_verify_in_python_and_python_envelopes_verify_here() {
    let (Some(python), Some(openssl)) = (python(), openssl()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (key_path, public_path) = support::sigstore::openssl_key(&openssl, dir.path(), "signer");
    let (other_key_path, _) = support::sigstore::openssl_key(&openssl, dir.path(), "other");
    let key = SigningKey::load(&key_path, &mut no_password()).unwrap();
    let body = statement(&manifest_digest());
    let envelope = dir.path().join("envelope.json");
    std::fs::write(
        &envelope,
        dsse::sign_envelope(&key, dsse::IN_TOTO_PAYLOAD_TYPE, &body),
    )
    .unwrap();
    let verified = python_run(&python, PYTHON_DSSE_VERIFY, &[&envelope, &public_path]);
    assert!(verified.status.success(), "{}", stderr_of(&verified));
    let stdout = String::from_utf8(verified.stdout).unwrap();
    assert_eq!(
        stdout,
        format!(
            "{}\n{}",
            dsse::IN_TOTO_PAYLOAD_TYPE,
            String::from_utf8(body.clone()).unwrap()
        )
    );
    // Another statement under the same signature: Python refuses it too.
    let text = std::fs::read_to_string(&envelope).unwrap();
    let tampered = dir.path().join("tampered.json");
    std::fs::write(
        &tampered,
        text.replace(
            &BASE64.encode(&body),
            &BASE64.encode(statement(&Digest::of(b"another image"))),
        ),
    )
    .unwrap();
    let refused = python_run(&python, PYTHON_DSSE_VERIFY, &[&tampered, &public_path]);
    assert!(!refused.status.success());
    assert!(
        stderr_of(&refused).contains("InvalidSignature"),
        "{}",
        stderr_of(&refused)
    );

    // Envelopes Python signs verify here, with the right key only.
    let statement_path = dir.path().join("statement.json");
    std::fs::write(&statement_path, &body).unwrap();
    let theirs = dir.path().join("python-envelope.json");
    let signed = python_run(
        &python,
        PYTHON_DSSE_SIGN,
        &[&key_path, &statement_path, &theirs],
    );
    assert!(signed.status.success(), "{}", stderr_of(&signed));
    let (kind, payload) =
        dsse::verify_envelope(&key.public_key(), &std::fs::read(&theirs).unwrap()).unwrap();
    assert_eq!(kind, dsse::IN_TOTO_PAYLOAD_TYPE);
    assert_eq!(payload, body);
    dsse::check_statement_subject(&payload, &manifest_digest()).unwrap();
    let by_other = dir.path().join("other-envelope.json");
    let signed = python_run(
        &python,
        PYTHON_DSSE_SIGN,
        &[&other_key_path, &statement_path, &by_other],
    );
    assert!(signed.status.success(), "{}", stderr_of(&signed));
    assert!(matches!(
        dsse::verify_envelope(&key.public_key(), &std::fs::read(&by_other).unwrap()),
        Err(Error::Signature {
            problem: SignatureProblem::Invalid { .. }
        })
    ));
}

#[test]
fn bundles_verify_with_sigstore_js_trusting_only_the_key() {
    let (Some((node, modules)), Some(openssl)) = (support::sigstore::sigstore_verify(), openssl())
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (key_path, public_path) = support::sigstore::openssl_key(&openssl, dir.path(), "signer");
    let (other_key_path, other_public) =
        support::sigstore::openssl_key(&openssl, dir.path(), "other");
    let key = SigningKey::load(&key_path, &mut no_password()).unwrap();
    let other = SigningKey::load(&other_key_path, &mut no_password()).unwrap();

    let manifest = dir.path().join("manifest.json");
    std::fs::write(
        &manifest,
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
    )
    .unwrap();
    let manifest_bytes = std::fs::read(&manifest).unwrap();
    let message_bundle = dir.path().join("message.sigstore.json");
    std::fs::write(
        &message_bundle,
        bundle::message_signature(&key, &manifest_bytes),
    )
    .unwrap();
    let ok = support::sigstore::node_verify(
        &node,
        &modules,
        &message_bundle,
        &public_path,
        Some(&manifest),
    );
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        stderr_of(&ok)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "verified");
    bundle::verify(
        &key.public_key(),
        &std::fs::read(&message_bundle).unwrap(),
        &Digest::of(&manifest_bytes),
    )
    .unwrap();
    // Trusting another key, or over other bytes: refused.
    let wrong_key = support::sigstore::node_verify(
        &node,
        &modules,
        &message_bundle,
        &other_public,
        Some(&manifest),
    );
    assert!(!wrong_key.status.success());
    let changed = dir.path().join("changed.json");
    std::fs::write(&changed, b"{\"schemaVersion\":2}").unwrap();
    let wrong_bytes = support::sigstore::node_verify(
        &node,
        &modules,
        &message_bundle,
        &public_path,
        Some(&changed),
    );
    assert!(!wrong_bytes.status.success());
    assert!(
        String::from_utf8_lossy(&wrong_bytes.stdout).contains("SIGNATURE_ERROR"),
        "{}",
        String::from_utf8_lossy(&wrong_bytes.stdout)
    );
    // A bundle by the other key that names this key's hint: its signature fails.
    let forged = dir.path().join("forged.sigstore.json");
    std::fs::write(
        &forged,
        String::from_utf8(bundle::message_signature(&other, &manifest_bytes))
            .unwrap()
            .replace(
                &other.public_key().bundle_hint(),
                &key.public_key().bundle_hint(),
            ),
    )
    .unwrap();
    let refused =
        support::sigstore::node_verify(&node, &modules, &forged, &public_path, Some(&manifest));
    assert!(!refused.status.success());

    // The DSSE form: verified, and the payload is our statement.
    let body = statement(&Digest::of(&manifest_bytes));
    let dsse_bundle = dir.path().join("dsse.sigstore.json");
    std::fs::write(
        &dsse_bundle,
        bundle::dsse(&key, dsse::IN_TOTO_PAYLOAD_TYPE, &body),
    )
    .unwrap();
    let ok = support::sigstore::node_verify(&node, &modules, &dsse_bundle, &public_path, None);
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        stderr_of(&ok)
    );
    let stdout = String::from_utf8(ok.stdout).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("verified"));
    assert_eq!(BASE64.decode(lines.next().unwrap()).unwrap(), body);
    let wrong_key =
        support::sigstore::node_verify(&node, &modules, &dsse_bundle, &other_public, None);
    assert!(!wrong_key.status.success());
}

#[test]
fn the_library_reexports_what_callers_sign_with() {
    // The key pair the command writes, made in memory, reads back through the public API.
    let (private, public) = sign::generate_key_pair("pw").unwrap();
    let key = SigningKey::from_pem(&private, Path::new("mem.key"), &mut password("pw")).unwrap();
    assert_eq!(
        PublicKey::from_pem(&public, Path::new("mem.pub")).unwrap(),
        key.public_key()
    );
}

#[test]
fn documents_are_byte_for_byte_what_go_encoders_write() {
    let Some(go) = support::peer("go") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (private_pem, public_pem) = sign::generate_key_pair("pw").unwrap();
    let private = dir.path().join("cosign.key");
    let public = dir.path().join("cosign.pub");
    std::fs::write(&private, private_pem.as_bytes()).unwrap();
    std::fs::write(&public, &public_pem).unwrap();
    let key = SigningKey::load(&private, &mut password("pw")).unwrap();
    // Characters Go's encoding/json escapes (`<`, `>`, `&`) in the reference, to compare escaping too.
    let reference = "registry.example.com/team/app<&>";
    let digest = manifest_digest();
    let payload_bytes = payload::simple_signing(reference, &digest);
    let payload_path = dir.path().join("payload.json");
    std::fs::write(&payload_path, &payload_bytes).unwrap();
    let signature = dir.path().join("payload.sig");
    std::fs::write(&signature, key.sign(&payload_bytes)).unwrap();
    let envelope = dir.path().join("envelope.json");
    std::fs::write(
        &envelope,
        dsse::sign_envelope(&key, dsse::IN_TOTO_PAYLOAD_TYPE, &statement(&digest)),
    )
    .unwrap();
    let output = Command::new(&go)
        .arg("run")
        .arg(support::root().join("tests/tools/cosign_formats.go"))
        .args([&public, &private, &payload_path, &signature, &envelope])
        .arg(reference)
        .arg(digest.to_string())
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GO111MODULE", "off")
        .env("GOCACHE", dir.path().join("go-cache"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", stderr_of(&output));
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok: ")).count(),
        4,
        "{stdout}"
    );
}

/// The password prompt, on a terminal of its own: what is typed is not shown, the key made is
/// encrypted with it, and Ctrl-C at the prompt ends the run by SIGINT with no key written and the
/// terminal's echo back on (the signal ends the process before any guard drops).
#[test]
fn the_password_prompt_hides_the_password_and_ctrl_c_gives_the_terminal_back() {
    let Some(python) = support::peer("python3") else {
        return;
    };
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/prompt_pty.py");
    let dir = tempfile::tempdir().unwrap();
    let drive = |mode: &[&str], prefix: &Path| {
        let output = Command::new(&python)
            .arg(&driver)
            .args(mode)
            .arg(env!("CARGO_BIN_EXE_zeroimage"))
            .args(["generate-key-pair", "--output-key-prefix"])
            .arg(prefix)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            stderr_of(&output)
        );
        let shown = String::from_utf8(output.stdout).unwrap();
        let (shown, status) = shown.trim_end().rsplit_once('\n').unwrap();
        (shown.to_owned(), status.trim().parse::<i32>().unwrap())
    };

    let typed = dir.path().join("typed");
    let (shown, status) = drive(&["type", "pass word 7"], &typed);
    assert_eq!(status, 0, "{shown}");
    assert!(shown.contains("Generated"), "{shown}");
    let key = SigningKey::load(&dir.path().join("typed.key"), &mut password("pass word 7"));
    assert!(key.is_ok(), "{key:?}");
    let wrong = SigningKey::load(&dir.path().join("typed.key"), &mut password("pass word"));
    assert!(wrong.is_err());

    let interrupted = dir.path().join("interrupted");
    let (shown, status) = drive(&["interrupt"], &interrupted);
    assert_eq!(status, -2, "ended by SIGINT: {shown}");
    assert!(shown.contains("interrupted"), "{shown}");
    assert!(!dir.path().join("interrupted.key").exists());
    assert!(!dir.path().join("interrupted.pub").exists());
}
