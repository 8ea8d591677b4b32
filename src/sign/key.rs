//! Private and public keys: read from cosign's encrypted key files, PKCS#8 and SEC1 PEM (openssl), and
//! PKIX public keys; ECDSA P-256 with SHA-256, cosign's default. Any other key type is refused by name.

use std::path::Path;

use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::der::Decode as _;
use p256::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePublicKey as _, PrivateKeyInfoRef,
    SubjectPublicKeyInfoRef,
};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::encrypted::{self, DecryptError};
use super::pem::{self, PemError};
use crate::error::signing::{KeyProblem, SignatureProblem};
use crate::error::{Error, Result};

/// The largest key file read: keys are a few hundred bytes, a cosign key about 700.
pub const MAX_KEY_FILE: u64 = 64 << 10;

/// PEM labels of cosign's encrypted private keys, current and older.
pub(crate) const SIGSTORE_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
const COSIGN_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// A private key to sign with (ECDSA P-256). Its secret is zeroized when dropped.
pub struct SigningKey {
    inner: p256::ecdsa::SigningKey,
}

/// A public key to verify with (ECDSA P-256).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    inner: p256::ecdsa::VerifyingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.public_key().key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a key file: cosign's `ENCRYPTED SIGSTORE PRIVATE KEY` (and the older `ENCRYPTED COSIGN
    /// PRIVATE KEY`), whose scrypt parameters are read from the file within bounds; or an unencrypted
    /// PKCS#8 `PRIVATE KEY` (`openssl genpkey`) or SEC1 `EC PRIVATE KEY` PEM. `password` is called only
    /// when the file is encrypted.
    pub fn load(
        path: &Path,
        password: &mut dyn FnMut() -> Result<Zeroizing<String>>,
    ) -> Result<SigningKey> {
        let text = read_key_file(path, Role::Private)?;
        SigningKey::from_pem(&text, path, password)
    }

    /// [`SigningKey::load`] of text already read; `origin` names it in errors.
    pub fn from_pem(
        pem: &str,
        origin: &Path,
        password: &mut dyn FnMut() -> Result<Zeroizing<String>>,
    ) -> Result<SigningKey> {
        let fail = |problem| Error::key(origin, problem);
        let blocks = pem::blocks(pem, &["EC PARAMETERS"])
            .map_err(|e| fail(pem_problem(e, Role::Private)))?;
        let block = &blocks[0];
        match block.label.as_str() {
            SIGSTORE_LABEL | COSIGN_LABEL => {
                let der = encrypted::decrypt(&block.bytes, password).map_err(|e| match e {
                    DecryptError::Problem(problem) => fail(problem),
                    DecryptError::Password(error) => error,
                })?;
                from_pkcs8(&der).map_err(fail)
            }
            "PRIVATE KEY" => from_pkcs8(&block.bytes).map_err(fail),
            "EC PRIVATE KEY" => from_sec1(&block.bytes).map_err(fail),
            "ENCRYPTED PRIVATE KEY" => Err(fail(KeyProblem::UnsupportedEncryption(
                "a PKCS#8 key encrypted by openssl".into(),
            ))),
            "RSA PRIVATE KEY" => Err(fail(KeyProblem::UnsupportedType("RSA".into()))),
            "OPENSSH PRIVATE KEY" => Err(fail(KeyProblem::UnsupportedType("OpenSSH".into()))),
            "PUBLIC KEY" => Err(fail(KeyProblem::NotAKey(format!(
                "a public key where the private key is needed; {}",
                Role::Private.fix()
            )))),
            other => Err(fail(Role::Private.not_a_key(other))),
        }
    }

    /// A new random key.
    pub(crate) fn generate() -> Result<SigningKey> {
        loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            super::random(bytes.as_mut_slice())?;
            // Fails only for zero or a value above the group order: about 2^-32 of the draws.
            if let Ok(inner) = p256::ecdsa::SigningKey::from_slice(bytes.as_slice()) {
                return Ok(SigningKey { inner });
            }
        }
    }

    /// The key as PKCS#8 DER, as cosign encrypts it.
    pub(crate) fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        use p256::pkcs8::EncodePrivateKey as _;
        let document = self
            .inner
            .to_pkcs8_der()
            .map_err(|_| Error::Invalid("the new key could not be encoded".into()))?;
        Ok(Zeroizing::new(document.as_bytes().to_vec()))
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            inner: *self.inner.verifying_key(),
        }
    }

    /// Signs `message` (ECDSA over its SHA-256), returning the ASN.1 DER signature, as cosign does.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: p256::ecdsa::Signature = self.inner.sign(message);
        signature.to_der().as_bytes().to_vec()
    }
}

impl PublicKey {
    /// Reads a PKIX `PUBLIC KEY` PEM file (cosign.pub, `openssl pkey -pubout`).
    pub fn load(path: &Path) -> Result<PublicKey> {
        let text = read_key_file(path, Role::Public)?;
        PublicKey::from_pem(&text, path)
    }

    /// [`PublicKey::load`] of text already read; `origin` names it in errors.
    pub fn from_pem(pem: &str, origin: &Path) -> Result<PublicKey> {
        let fail = |problem| Error::key(origin, problem);
        let blocks = pem::blocks(pem, &[]).map_err(|e| fail(pem_problem(e, Role::Public)))?;
        let block = &blocks[0];
        match block.label.as_str() {
            "PUBLIC KEY" => {
                let info = SubjectPublicKeyInfoRef::from_der(&block.bytes)
                    .map_err(|_| fail(KeyProblem::Truncated))?;
                check_type(info.algorithm.oids().ok()).map_err(fail)?;
                let inner = p256::ecdsa::VerifyingKey::from_public_key_der(&block.bytes)
                    .map_err(|_| fail(KeyProblem::Truncated))?;
                Ok(PublicKey { inner })
            }
            "CERTIFICATE" => Err(fail(KeyProblem::NotAKey(
                "a certificate, not a public key; give its public key: \
                 `openssl x509 -pubkey -noout -in CERT`"
                    .into(),
            ))),
            label if label.contains("PRIVATE KEY") => Err(fail(KeyProblem::NotAKey(format!(
                "a private key where the public key is needed; {}",
                Role::Public.fix()
            )))),
            other => Err(fail(Role::Public.not_a_key(other))),
        }
    }

    /// The PKIX DER of the key.
    fn to_der(&self) -> Vec<u8> {
        // Encoding a valid point cannot fail.
        self.inner
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default()
    }

    /// The key as a PKIX `PUBLIC KEY` PEM, as cosign writes cosign.pub.
    pub fn to_pem(&self) -> String {
        pem::encode("PUBLIC KEY", &self.to_der())
    }

    /// Hex SHA-256 of the PKIX DER: the key's id, as messages name it (the first 16 digits).
    pub fn key_id(&self) -> String {
        let digest = Sha256::digest(self.to_der());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Base64 of the SHA-256 of the PKIX DER: the public-key hint of a Sigstore bundle, as sigstore-go
    /// (and so cosign) writes it. The same digest as [`PublicKey::key_id`], in the other spelling.
    pub fn bundle_hint(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(self.to_der()))
    }

    /// Checks a DER signature over `message` (ECDSA over its SHA-256).
    pub fn verify(&self, message: &[u8], signature_der: &[u8]) -> Result<()> {
        let signature = parse_signature(signature_der)?;
        self.inner
            .verify(message, &signature)
            .map_err(|_| self.invalid())
    }

    /// Checks a DER signature over a message whose SHA-256 is `sha256`.
    pub(crate) fn verify_sha256(&self, sha256: &[u8], signature_der: &[u8]) -> Result<()> {
        let signature = parse_signature(signature_der)?;
        if sha256.len() != 32 {
            return Err(self.invalid());
        }
        self.inner
            .verify_prehash(sha256, &signature)
            .map_err(|_| self.invalid())
    }

    fn invalid(&self) -> Error {
        Error::signature(SignatureProblem::Invalid {
            key_id: self.key_id(),
        })
    }
}

fn parse_signature(der: &[u8]) -> Result<p256::ecdsa::Signature> {
    p256::ecdsa::Signature::from_der(der).map_err(|_| {
        Error::signature(SignatureProblem::Malformed(
            "not an ASN.1 DER ECDSA P-256 signature".into(),
        ))
    })
}

/// Which half of a key pair a file must hold, for the fix its errors suggest.
#[derive(Clone, Copy)]
enum Role {
    Private,
    Public,
}

impl Role {
    fn fix(self) -> &'static str {
        match self {
            Role::Private => {
                "give a cosign key (`zeroimage generate-key-pair`) or a PEM private key \
                 (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)"
            }
            Role::Public => {
                "give a PKIX `PUBLIC KEY` PEM (cosign.pub, or `openssl pkey -pubout -in KEY`)"
            }
        }
    }

    fn not_a_key(self, label: &str) -> KeyProblem {
        let what = match self {
            Role::Private => "a private key",
            Role::Public => "a public key",
        };
        KeyProblem::NotAKey(format!(
            "PEM `{}`, not {what}; {}",
            crate::util::sanitize::outside(label, 60),
            self.fix()
        ))
    }
}

fn read_key_file(path: &Path, role: Role) -> Result<Zeroizing<String>> {
    let file = crate::util::fsutil::open_regular(path, "a key file")?;
    let mut bytes = Zeroizing::new(Vec::new());
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_KEY_FILE + 1), &mut bytes)
        .map_err(Error::io("reading", path))?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(Error::key(
            path,
            KeyProblem::TooLarge {
                limit: MAX_KEY_FILE,
            },
        ));
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(Error::key(
            path,
            KeyProblem::NotAKey(format!("binary data, not PEM text; {}", role.fix())),
        )),
    }
}

fn pem_problem(error: PemError, role: Role) -> KeyProblem {
    match error {
        PemError::NoBlock => KeyProblem::NotAKey(format!("no PEM block; {}", role.fix())),
        PemError::Damaged => KeyProblem::Truncated,
        PemError::Headers => {
            KeyProblem::UnsupportedEncryption("a PEM key encrypted by openssl (Proc-Type)".into())
        }
    }
}

fn from_pkcs8(der: &[u8]) -> std::result::Result<SigningKey, KeyProblem> {
    let info = PrivateKeyInfoRef::from_der(der).map_err(|_| KeyProblem::Truncated)?;
    check_type(info.algorithm.oids().ok())?;
    p256::ecdsa::SigningKey::from_pkcs8_der(der)
        .map(|inner| SigningKey { inner })
        .map_err(|_| KeyProblem::Truncated)
}

fn from_sec1(der: &[u8]) -> std::result::Result<SigningKey, KeyProblem> {
    let key = p256::SecretKey::from_sec1_der(der).map_err(|_| {
        // A SEC1 key of another curve fails here too: name the curve when it says one.
        match sec1_curve(der) {
            Some(curve) if curve != P256 => KeyProblem::UnsupportedType(curve_name(&curve)),
            _ => KeyProblem::Truncated,
        }
    })?;
    Ok(SigningKey {
        inner: p256::ecdsa::SigningKey::from(key),
    })
}

/// The curve OID a SEC1 `ECPrivateKey` names in its parameters, if it parses that far.
fn sec1_curve(der: &[u8]) -> Option<String> {
    let key = sec1::EcPrivateKey::try_from(der).ok()?;
    Some(key.parameters?.named_curve()?.to_string())
}

const P256: &str = "1.2.840.10045.3.1.7";

/// Refuses any key but ECDSA P-256, naming its type.
fn check_type(
    oids: Option<(
        p256::pkcs8::ObjectIdentifier,
        Option<p256::pkcs8::ObjectIdentifier>,
    )>,
) -> std::result::Result<(), KeyProblem> {
    let Some((algorithm, parameters)) = oids else {
        return Err(KeyProblem::Truncated);
    };
    let kind = match algorithm.to_string().as_str() {
        "1.2.840.10045.2.1" => match parameters.map(|p| p.to_string()) {
            Some(curve) if curve == P256 => return Ok(()),
            Some(curve) => curve_name(&curve),
            None => "EC key without a named curve".into(),
        },
        "1.2.840.113549.1.1.1" => "RSA".into(),
        "1.2.840.113549.1.1.10" => "RSA-PSS".into(),
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.113" => "Ed448".into(),
        "1.3.101.110" => "X25519".into(),
        "1.3.101.111" => "X448".into(),
        "1.2.840.10040.4.1" => "DSA".into(),
        other => format!("unknown (algorithm {other})"),
    };
    Err(KeyProblem::UnsupportedType(kind))
}

fn curve_name(oid: &str) -> String {
    match oid {
        "1.3.132.0.34" => "ECDSA P-384".into(),
        "1.3.132.0.35" => "ECDSA P-521".into(),
        "1.3.132.0.10" => "ECDSA secp256k1".into(),
        other => format!("EC (curve {other})"),
    }
}
