//! The signing module against its own promises: keys of every accepted form load and sign, every
//! refused form is a typed one-line error naming the file, and documents verify only untouched, with
//! the right key, over the right digest.

use std::path::Path;

use zeroize::Zeroizing;

use super::*;
use crate::error::signing::{KeyProblem, SignatureProblem};
use crate::oci::Digest;

const ED25519: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEIGwHTVHnwXR8yv7uBDNAGYj7oob3VH2JhShndb/yTh/D\n\
-----END PRIVATE KEY-----\n\
";

const ED25519_PUBLIC: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MCowBQYDK2VwAyEA+7dYwGeFkEXNRbiLApuFSqrtqh+3V0okacSXVHatsFY=\n\
-----END PUBLIC KEY-----\n\
";

const P384_PKCS8: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDBeKcHSr6K1BuS4C6hG\n\
QD+NYbuJ1GbZQbjgpdcZPaA0junP9UjZ0LvlzvW3pcYcntyhZANiAAQv3ye7kJdo\n\
AYrfkLytrmaRsLslEzUPxCRKPB2YksxiX2v1l6jgPQJ0sZd4rstHFgWtJ7UHP6TI\n\
J0oTTeXrhQs9/spR8KzlEgfJgArLBdvsJnk1jEINcSBZkS22XS93W6c=\n\
-----END PRIVATE KEY-----\n\
";

const P384_SEC1: &str = "\
-----BEGIN EC PARAMETERS-----\n\
BgUrgQQAIg==\n\
-----END EC PARAMETERS-----\n\
-----BEGIN EC PRIVATE KEY-----\n\
MIGkAgEBBDCIebrPwyahCcI4yk8+hR0KSDZ8MG8ADp8Blys03+OTAV2Is4v+YxbX\n\
rDD0LyI9KvmgBwYFK4EEACKhZANiAARlUjq4sRaxK+5Klxno9KZJgF0sKEXrsjEt\n\
u48M+k7cUk1MF5oegS/Hlnm16SJiQ+E9Z9qpOjj+JNYMOkOdbjboHAojj0Nep1/k\n\
9gLDou25YpARAKvOCSpa6PulwTHu/90=\n\
-----END EC PRIVATE KEY-----\n\
";

const P256_SEC1: &str = "\
-----BEGIN EC PRIVATE KEY-----\n\
MHcCAQEEIBWiY6d810FbTwRE6TFsjvayZLK5eeDwwN4EsAZMKsKzoAoGCCqGSM49\n\
AwEHoUQDQgAEMNh6YbwfUz3kvqvI9xeEcfpFvyiv1TnQtgZAqelzVH+n9i2qkIHE\n\
Gro4qZomzbOMcWws3BoOaYnllFEVSSrW6g==\n\
-----END EC PRIVATE KEY-----\n\
";

const P256_PKCS8: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgFaJjp3zXQVtPBETp\n\
MWyO9rJksrl54PDA3gSwBkwqwrOhRANCAAQw2HphvB9TPeS+q8j3F4Rx+kW/KK/V\n\
OdC2BkCp6XNUf6f2LaqQgcQaujipmibNs4xxbCzcGg5pieWUURVJKtbq\n\
-----END PRIVATE KEY-----\n\
";

const RSA_PKCS8: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAL7wNwZegeTe/H7f\n\
DyEAESZtbOqxryeapYyUC0gbZAb108foAJgbLyolGhQmXtxU5XJDvxYWQP4Ajhhe\n\
oYnAzTb38cNhdyw6pYm5KZRY5dkBZosvZ6VrsKUDcWJJ8rPfGDuGJxkMSSNX/xT1\n\
Kz5HmW6ZWP/c3ptax2hx4xXA6fadAgMBAAECgYAcAoUv7AFGH+gOfI5tmuLpLjhC\n\
HZrCRo9ulfEpvMrpsnpE4yXjKmm61wKCXjagP9wA7StFBDK4kEBIFum/mYcA/k+3\n\
gibPncpnBzWbKAPBj9Ayf3ZhjkSlLVLPBB3FyazL8o9TXALDGtPgxqH4gT2eA/Jz\n\
dcCz4cc8UEjVpYLBgQJBAOxVVHxyIkqfZ61YZkIUgyu5OOjNUe4PQIIA/EuoY7zT\n\
OXnCn7gFRRn3fwhnaVzRDKnkNrnpY/T0oi6AxV1ec/ECQQDO09LpibRyO8r7xTAR\n\
1zRmzh5cTshQ/zDLkkKNvXRPJgX0BU7m7ZByWpGLVyjsHGL1di+l9mXS6hkWrAWO\n\
MSltAkEA2hRHeOptAEUmC4xmGBYLkH5DqHdGYhGK6iv0o/AH0QdsoxHYBpw+Tp7W\n\
hy+9xxtUvzTK1zUpurE/MwA6n1T4UQJAHeonXF3teoRJdKbtr/bnfmMboxBGCukO\n\
HrOV6rhXRUdjnwrRgbckqFWPLY86vQPSEFy6wY9k5N+1J0FUQF+99QJBANdfsqAD\n\
kJgN5O74ekNUUh9Szv3GWfRJyc7jfixJ9zpixiyzLRnG3XXneFisiGBEEMFXGb3y\n\
/FxOaq/5dNoDRYU=\n\
-----END PRIVATE KEY-----\n\
";

fn password(text: &'static str) -> impl FnMut() -> Result<Zeroizing<String>> {
    move || Ok(Zeroizing::new(text.to_owned()))
}

fn never() -> impl FnMut() -> Result<Zeroizing<String>> {
    || panic!("the password was asked for an unencrypted key")
}

fn key_problem(result: Result<impl std::fmt::Debug>) -> KeyProblem {
    match result {
        Err(error @ Error::Key { .. }) => {
            let text = error.to_string();
            assert!(!text.contains('\n'), "one line: {text}");
            assert!(text.starts_with("key.pem: "), "names the file: {text}");
            let Error::Key { problem, .. } = error else {
                unreachable!()
            };
            problem
        }
        other => panic!("expected a key error, got {other:?}"),
    }
}

fn signature_problem(result: Result<impl std::fmt::Debug>) -> SignatureProblem {
    match result {
        Err(Error::Signature { problem }) => {
            assert!(!problem.to_string().contains('\n'));
            problem
        }
        other => panic!("expected a signature error, got {other:?}"),
    }
}

fn origin() -> &'static Path {
    Path::new("key.pem")
}

fn plain_key() -> SigningKey {
    SigningKey::from_pem(P256_PKCS8, origin(), &mut never()).unwrap()
}

#[test]
fn a_generated_key_pair_reads_back_with_its_password_only() {
    let (private, public) = generate_key_pair("correct horse").unwrap();
    assert!(private.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    assert!(private.ends_with("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let mut asked = 0;
    let mut counted = || {
        asked += 1;
        Ok(Zeroizing::new("correct horse".to_owned()))
    };
    let key = SigningKey::from_pem(&private, origin(), &mut counted).unwrap();
    assert_eq!(asked, 1);
    let public = PublicKey::from_pem(&public, origin()).unwrap();
    assert_eq!(key.public_key(), public);
    let signature = key.sign(b"message");
    public.verify(b"message", &signature).unwrap();

    // cosign before 2.0 labelled the same document differently.
    let older = private.replace("SIGSTORE", "COSIGN");
    let again = SigningKey::from_pem(&older, origin(), &mut password("correct horse")).unwrap();
    assert_eq!(again.public_key(), public);

    assert_eq!(
        key_problem(SigningKey::from_pem(
            &private,
            origin(),
            &mut password("wrong")
        )),
        KeyProblem::WrongPassword
    );
    let cut = &private[..private.len() / 2];
    assert_eq!(
        key_problem(SigningKey::from_pem(
            cut,
            origin(),
            &mut password("correct horse")
        )),
        KeyProblem::Truncated
    );
    // A password callback's own error comes through as it is.
    let mut refuse = || Err(Error::Interrupted);
    assert!(matches!(
        SigningKey::from_pem(&private, origin(), &mut refuse),
        Err(Error::Interrupted)
    ));
}

#[test]
fn openssl_p256_keys_load_and_other_types_are_named() {
    let pkcs8 = plain_key();
    let sec1 = SigningKey::from_pem(P256_SEC1, origin(), &mut never()).unwrap();
    pkcs8.public_key().verify(b"x", &pkcs8.sign(b"x")).unwrap();
    sec1.public_key().verify(b"x", &sec1.sign(b"x")).unwrap();
    // The SEC1 file is the PKCS#8 one converted by `openssl ec`: the same key.
    assert_eq!(sec1.public_key(), pkcs8.public_key());
    for (pem, kind) in [
        (ED25519, "Ed25519"),
        (RSA_PKCS8, "RSA"),
        (P384_PKCS8, "ECDSA P-384"),
        (P384_SEC1, "ECDSA P-384"),
    ] {
        assert_eq!(
            key_problem(SigningKey::from_pem(pem, origin(), &mut never())),
            KeyProblem::UnsupportedType(kind.into()),
            "{pem}"
        );
    }
    assert_eq!(
        key_problem(PublicKey::from_pem(ED25519_PUBLIC, origin())),
        KeyProblem::UnsupportedType("Ed25519".into())
    );
    let traditional_rsa = RSA_PKCS8.replace("PRIVATE KEY", "RSA PRIVATE KEY");
    assert_eq!(
        key_problem(SigningKey::from_pem(
            &traditional_rsa,
            origin(),
            &mut never()
        )),
        KeyProblem::UnsupportedType("RSA".into())
    );
}

#[test]
fn foreign_and_damaged_files_are_refused_by_what_they_are() {
    let certificate = pem::encode("CERTIFICATE", b"not really");
    assert!(matches!(
        key_problem(SigningKey::from_pem(&certificate, origin(), &mut never())),
        KeyProblem::NotAKey(_)
    ));
    assert!(matches!(
        key_problem(PublicKey::from_pem(&certificate, origin())),
        KeyProblem::NotAKey(_)
    ));
    assert!(matches!(
        key_problem(SigningKey::from_pem("just text", origin(), &mut never())),
        KeyProblem::NotAKey(_)
    ));
    let public = plain_key().public_key().to_pem();
    assert!(matches!(
        key_problem(SigningKey::from_pem(&public, origin(), &mut never())),
        KeyProblem::NotAKey(_)
    ));
    assert!(matches!(
        key_problem(PublicKey::from_pem(P256_PKCS8, origin())),
        KeyProblem::NotAKey(_)
    ));
    // Valid PEM around bytes that are not a key.
    let junk = pem::encode("PRIVATE KEY", &[0x30, 0x03, 0x02, 0x01]);
    assert_eq!(
        key_problem(SigningKey::from_pem(&junk, origin(), &mut never())),
        KeyProblem::Truncated
    );
    let cut = &P256_PKCS8[..P256_PKCS8.len() - 30];
    assert_eq!(
        key_problem(SigningKey::from_pem(cut, origin(), &mut never())),
        KeyProblem::Truncated
    );
    // An encrypted document whose JSON was damaged.
    let damaged = pem::encode(key::SIGSTORE_LABEL, br#"{"kdf":{"name":"scrypt""#);
    assert_eq!(
        key_problem(SigningKey::from_pem(&damaged, origin(), &mut never())),
        KeyProblem::Truncated
    );
    let legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END EC PRIVATE KEY-----\n";
    assert!(matches!(
        key_problem(SigningKey::from_pem(legacy, origin(), &mut never())),
        KeyProblem::UnsupportedEncryption(_)
    ));
}

#[test]
fn key_files_are_bounded_and_must_be_regular() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("key.pem");
    std::fs::write(&big, vec![b'A'; (MAX_KEY_FILE + 1) as usize]).unwrap();
    assert!(matches!(
        SigningKey::load(&big, &mut never()),
        Err(Error::Key {
            problem: KeyProblem::TooLarge { .. },
            ..
        })
    ));
    assert!(matches!(
        PublicKey::load(dir.path(),),
        Err(Error::Input { .. })
    ));
    let public = dir.path().join("cosign.pub");
    let key = plain_key();
    std::fs::write(&public, key.public_key().to_pem()).unwrap();
    assert_eq!(PublicKey::load(&public).unwrap(), key.public_key());
}

#[test]
fn signatures_verify_only_with_their_key_over_their_message() {
    let key = plain_key();
    let other = SigningKey::generate().unwrap();
    let signature = key.sign(b"payload");
    key.public_key().verify(b"payload", &signature).unwrap();
    assert!(matches!(
        signature_problem(other.public_key().verify(b"payload", &signature)),
        SignatureProblem::Invalid { .. }
    ));
    assert!(matches!(
        signature_problem(key.public_key().verify(b"payload!", &signature)),
        SignatureProblem::Invalid { .. }
    ));
    assert!(matches!(
        signature_problem(key.public_key().verify(b"payload", b"garbage")),
        SignatureProblem::Malformed(_)
    ));
}

#[test]
fn the_key_id_is_the_sha256_of_the_public_key_der() {
    let public = plain_key().public_key();
    let blocks = pem::blocks(&public.to_pem(), &[]).unwrap();
    assert_eq!(
        format!("sha256:{}", public.key_id()),
        Digest::of(&blocks[0].bytes).to_string()
    );
    use base64::Engine as _;
    let hint = base64::engine::general_purpose::STANDARD
        .decode(public.bundle_hint())
        .unwrap();
    let hex: String = hint.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, public.key_id());
    assert_eq!(
        PublicKey::from_pem(&public.to_pem(), origin()).unwrap(),
        public
    );
}

fn digest(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

#[test]
fn the_payload_is_what_cosign_writes_and_reads_back() {
    let payload = payload::simple_signing("registry.example.com/team/app", &digest('a'));
    assert_eq!(
        String::from_utf8(payload.clone()).unwrap(),
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"registry.example.com/team/app"}},"image":{{"docker-manifest-digest":"sha256:{}"}},"type":"cosign container image signature"}},"optional":null}}"#,
            "a".repeat(64)
        )
    );
    let parsed = payload::parse_simple_signing(&payload).unwrap();
    assert_eq!(parsed.docker_reference, "registry.example.com/team/app");
    assert_eq!(parsed.digest, digest('a'));
    parsed
        .covers("registry.example.com/team/app", &digest('a'))
        .unwrap();
    assert!(matches!(
        signature_problem(parsed.covers("registry.example.com/team/app", &digest('b'))),
        SignatureProblem::DigestMismatch { .. }
    ));
    assert!(matches!(
        signature_problem(parsed.covers("registry.example.com/team/other", &digest('a'))),
        SignatureProblem::ReferenceMismatch { .. }
    ));
    let other_type = String::from_utf8(payload).unwrap().replace(
        "cosign container image signature",
        "atomic container signature",
    );
    assert!(matches!(
        signature_problem(payload::parse_simple_signing(other_type.as_bytes())),
        SignatureProblem::WrongType { .. }
    ));
    assert!(matches!(
        signature_problem(payload::parse_simple_signing(b"{\"critical\":")),
        SignatureProblem::Malformed(_)
    ));
    assert!(matches!(
        signature_problem(payload::parse_simple_signing(&vec![b' '; MAX_DOCUMENT + 1])),
        SignatureProblem::TooLarge { .. }
    ));
}

#[test]
fn json_strings_are_escaped_as_go_escapes_them() {
    assert_eq!(
        go_json_string("a<b>&\"\\\n\u{1}\u{2028}é"),
        r#""a\u003cb\u003e\u0026\"\\\n\u0001\u2028é""#
    );
}

#[test]
fn pae_is_the_dsse_encoding() {
    // The example of the DSSE specification (protocol.md).
    assert_eq!(
        dsse::pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
}

fn statement(subject: &Digest) -> Vec<u8> {
    format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"app","digest":{{"sha256":"{}"}}}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{{}}}}"#,
        subject.hex()
    )
    .into_bytes()
}

#[test]
fn envelopes_verify_untouched_with_their_key() {
    let key = plain_key();
    let other = SigningKey::generate().unwrap();
    let body = statement(&digest('c'));
    let envelope = dsse::sign_envelope(&key, dsse::IN_TOTO_PAYLOAD_TYPE, &body);
    let text = String::from_utf8(envelope.clone()).unwrap();
    assert!(text.starts_with(r#"{"payloadType":"application/vnd.in-toto+json","payload":""#));
    assert!(text.contains(r#""signatures":[{"keyid":"","sig":""#));
    let (kind, payload) = dsse::verify_envelope(&key.public_key(), &envelope).unwrap();
    assert_eq!(kind, dsse::IN_TOTO_PAYLOAD_TYPE);
    assert_eq!(payload, body);
    dsse::check_statement_subject(&payload, &digest('c')).unwrap();
    assert!(matches!(
        signature_problem(dsse::check_statement_subject(&payload, &digest('d'))),
        SignatureProblem::DigestMismatch { .. }
    ));
    assert!(matches!(
        signature_problem(dsse::verify_envelope(&other.public_key(), &envelope)),
        SignatureProblem::Invalid { .. }
    ));
    // The payload swapped for another statement, the signature kept.
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let tampered = text.replace(&b64(&body), &b64(&statement(&digest('d'))));
    assert_ne!(tampered, text);
    assert!(matches!(
        signature_problem(dsse::verify_envelope(
            &key.public_key(),
            tampered.as_bytes()
        )),
        SignatureProblem::Invalid { .. }
    ));
    // The payload type is signed too.
    let retyped = text.replace("in-toto+json", "in-toto+jsox");
    assert!(matches!(
        signature_problem(dsse::verify_envelope(&key.public_key(), retyped.as_bytes())),
        SignatureProblem::Invalid { .. }
    ));
    let unsigned = format!(
        r#"{{"payloadType":"x","payload":"{}","signatures":[]}}"#,
        b64(b"x")
    );
    assert_eq!(
        signature_problem(dsse::verify_envelope(
            &key.public_key(),
            unsigned.as_bytes()
        )),
        SignatureProblem::Missing
    );
    assert!(matches!(
        signature_problem(dsse::verify_envelope(
            &key.public_key(),
            &vec![b' '; MAX_DOCUMENT + 1]
        )),
        SignatureProblem::TooLarge { .. }
    ));
}

#[test]
fn bundles_verify_over_their_artifact_with_their_key() {
    let key = plain_key();
    let other = SigningKey::generate().unwrap();
    let manifest = br#"{"schemaVersion":2}"#;
    let manifest_digest = Digest::of(manifest);
    let bundle = bundle::message_signature(&key, manifest);
    let text = String::from_utf8(bundle.clone()).unwrap();
    assert!(text.contains(&format!(
        r#""publicKey":{{"hint":"{}"}}"#,
        key.public_key().bundle_hint()
    )));
    assert_eq!(
        bundle::verify(&key.public_key(), &bundle, &manifest_digest).unwrap(),
        bundle::Verified::MessageSignature {
            digest: manifest_digest.clone()
        }
    );
    assert!(matches!(
        signature_problem(bundle::verify(&key.public_key(), &bundle, &digest('e'))),
        SignatureProblem::DigestMismatch { .. }
    ));
    assert!(matches!(
        signature_problem(bundle::verify(
            &other.public_key(),
            &bundle,
            &manifest_digest
        )),
        SignatureProblem::Invalid { .. }
    ));
    // Another artifact's digest with this signature: the digest matches, the signature does not.
    let other_manifest = br#"{"schemaVersion":3}"#;
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let swapped = text.replace(
        &b64(&sha2::Sha256::digest(manifest)),
        &b64(&sha2::Sha256::digest(other_manifest)),
    );
    assert!(matches!(
        signature_problem(bundle::verify(
            &key.public_key(),
            swapped.as_bytes(),
            &Digest::of(other_manifest)
        )),
        SignatureProblem::Invalid { .. }
    ));
    let old = text.replace("bundle.v0.3+json", "bundle.v0.9+json");
    assert!(matches!(
        signature_problem(bundle::verify(
            &key.public_key(),
            old.as_bytes(),
            &manifest_digest
        )),
        SignatureProblem::Unsupported(_)
    ));

    let body = statement(&manifest_digest);
    let dsse_bundle = bundle::dsse(&key, dsse::IN_TOTO_PAYLOAD_TYPE, &body);
    assert_eq!(
        bundle::verify(&key.public_key(), &dsse_bundle, &manifest_digest).unwrap(),
        bundle::Verified::Dsse {
            payload_type: dsse::IN_TOTO_PAYLOAD_TYPE.into(),
            payload: body.clone()
        }
    );
    assert!(matches!(
        signature_problem(bundle::verify(
            &key.public_key(),
            &dsse_bundle,
            &digest('f')
        )),
        SignatureProblem::DigestMismatch { .. }
    ));
    assert!(matches!(
        signature_problem(bundle::verify(
            &other.public_key(),
            &dsse_bundle,
            &manifest_digest
        )),
        SignatureProblem::Invalid { .. }
    ));
}

use sha2::Digest as _;

#[test]
fn every_key_error_names_the_file_and_says_the_fix() {
    let certificate = pem::encode("CERTIFICATE", b"x");
    let public = plain_key().public_key().to_pem();
    let (encrypted, _) = generate_key_pair("pw").unwrap();
    let cases: Vec<Result<SigningKey>> = vec![
        SigningKey::from_pem(&encrypted, origin(), &mut password("wrong")),
        SigningKey::from_pem(&encrypted[..100], origin(), &mut never()),
        SigningKey::from_pem("text", origin(), &mut never()),
        SigningKey::from_pem(&certificate, origin(), &mut never()),
        SigningKey::from_pem(&public, origin(), &mut never()),
        SigningKey::from_pem(ED25519, origin(), &mut never()),
        SigningKey::from_pem(RSA_PKCS8, origin(), &mut never()),
    ];
    let mut messages: Vec<String> = cases
        .into_iter()
        .map(|r| r.unwrap_err().to_string())
        .collect();
    messages.extend(
        [
            PublicKey::from_pem("text", origin()),
            PublicKey::from_pem(&certificate, origin()),
            PublicKey::from_pem(P256_PKCS8, origin()),
            PublicKey::from_pem(ED25519_PUBLIC, origin()),
        ]
        .into_iter()
        .map(|r| r.unwrap_err().to_string()),
    );
    for message in &messages {
        eprintln!("{message}");
        assert!(message.starts_with("key.pem: "), "{message}");
        assert!(!message.contains('\n'), "{message}");
        assert!(
            ["give ", "make one"]
                .iter()
                .any(|fix| message.contains(fix)),
            "no fix in: {message}"
        );
    }
}
