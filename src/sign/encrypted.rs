//! cosign's encrypted private key: a JSON document (from go-securesystemslib's `encrypted` package)
//! holding an scrypt KDF with its parameters and salt, the nacl/secretbox cipher with its nonce, and the
//! ciphertext of the PKCS#8 DER key. The parameters are read from the file (cosign 2.x writes
//! N=65536 r=8 p=1, older versions N=32768) within bounds, so that a hostile file cannot make us
//! allocate gigabytes or spin for minutes before the password is even checked.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::signing::KeyProblem;

/// The scrypt parameters current cosign writes (go-securesystemslib's "standard" strength).
pub(crate) const WRITE_N: u64 = 1 << 16;
const WRITE_R: u32 = 8;
const WRITE_P: u32 = 1;

/// The largest N read: 2^20, eight times the strongest set cosign knows (2^17).
const MAX_N: u64 = 1 << 20;
/// scrypt's memory is 128·N·r bytes: 256 MiB at most, twice what cosign's strongest set needs.
const MAX_MEMORY: u64 = 256 << 20;
/// Its time grows with N·r·p: 2^24 at most, 32 times cosign's default.
const MAX_WORK: u64 = 1 << 24;

const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// A salt longer than this is not from any implementation of the format.
const MAX_SALT: usize = 1024;

#[derive(Deserialize)]
struct Document {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: Params,
    salt: String,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Params {
    N: u64,
    r: u64,
    p: u64,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// Decrypts the JSON document of an encrypted cosign key, asking for the password only once the
/// document is known to be well formed and within bounds.
pub(crate) fn decrypt(
    json: &[u8],
    password: &mut dyn FnMut() -> crate::error::Result<Zeroizing<String>>,
) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    let document: Document =
        serde_json::from_slice(json).map_err(|_| DecryptError::Problem(KeyProblem::Truncated))?;
    if document.kdf.name != "scrypt" {
        return Err(unsupported(format!(
            "key derivation `{}` (only scrypt is read)",
            crate::util::sanitize::outside(&document.kdf.name, 40)
        )));
    }
    if document.cipher.name != "nacl/secretbox" {
        return Err(unsupported(format!(
            "cipher `{}` (only nacl/secretbox is read)",
            crate::util::sanitize::outside(&document.cipher.name, 40)
        )));
    }
    let Params { N: n, r, p } = document.kdf.params;
    let params = scrypt_params(n, r, p)?;
    let salt = decode(&document.kdf.salt)?;
    let nonce = decode(&document.cipher.nonce)?;
    let ciphertext = decode(&document.ciphertext)?;
    if salt.len() > MAX_SALT || nonce.len() != NONCE_LEN {
        return Err(DecryptError::Problem(KeyProblem::Truncated));
    }
    let password = password().map_err(DecryptError::Password)?;
    let key = derive(password.as_bytes(), &salt, &params);
    let cipher = XSalsa20Poly1305::new(Key::from_slice(key.as_slice()));
    cipher
        .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| DecryptError::Problem(KeyProblem::WrongPassword))
}

/// Encrypts `plaintext` (a PKCS#8 DER key) as current cosign does: scrypt N=65536 r=8 p=1 over a
/// random 32-byte salt, nacl/secretbox under a random nonce; the JSON fields in Go's order.
pub(crate) fn encrypt(plaintext: &[u8], password: &str) -> crate::error::Result<Vec<u8>> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    crate::sign::random(&mut salt)?;
    crate::sign::random(&mut nonce)?;
    // Constant parameters within every bound.
    let params = scrypt_params(WRITE_N, u64::from(WRITE_R), u64::from(WRITE_P))
        .map_err(|_| crate::error::Error::Invalid("scrypt parameters".into()))?;
    let key = derive(password.as_bytes(), &salt, &params);
    let cipher = XSalsa20Poly1305::new(Key::from_slice(key.as_slice()));
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), plaintext)
        .map_err(|_| crate::error::Error::Invalid("the key could not be encrypted".into()))?;
    Ok(format!(
        r#"{{"kdf":{{"name":"scrypt","params":{{"N":{WRITE_N},"r":{WRITE_R},"p":{WRITE_P}}},"salt":"{}"}},"cipher":{{"name":"nacl/secretbox","nonce":"{}"}},"ciphertext":"{}"}}"#,
        BASE64.encode(salt),
        BASE64.encode(nonce),
        BASE64.encode(ciphertext)
    )
    .into_bytes())
}

/// What stopped a decryption: a problem with the file or password, or the password callback's error.
pub(crate) enum DecryptError {
    Problem(KeyProblem),
    Password(crate::error::Error),
}

fn unsupported(what: String) -> DecryptError {
    DecryptError::Problem(KeyProblem::UnsupportedEncryption(what))
}

fn decode(text: &str) -> Result<Vec<u8>, DecryptError> {
    BASE64
        .decode(text)
        .map_err(|_| DecryptError::Problem(KeyProblem::Truncated))
}

/// The scrypt parameters of a file, refused beyond the bounds above.
fn scrypt_params(n: u64, r: u64, p: u64) -> Result<scrypt::Params, DecryptError> {
    let within = n.is_power_of_two()
        && (2..=MAX_N).contains(&n)
        && (1..=64).contains(&r)
        && (1..=64).contains(&p)
        && 128 * n * r <= MAX_MEMORY
        && n * r * p <= MAX_WORK;
    let refused = || {
        unsupported(format!(
            "scrypt parameters N={n} r={r} p={p} are beyond what we accept (N a power of two up to \
             2^20, 128·N·r up to 256 MiB, N·r·p up to 2^24)"
        ))
    };
    if !within {
        return Err(refused());
    }
    scrypt::Params::new(n.trailing_zeros() as u8, r as u32, p as u32).map_err(|_| refused())
}

fn derive(password: &[u8], salt: &[u8], params: &scrypt::Params) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    // A 32-byte output is always a valid length.
    let _ = scrypt::scrypt(password, salt, params, key.as_mut_slice());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(password: &str) -> impl FnMut() -> crate::error::Result<Zeroizing<String>> {
        let password = password.to_owned();
        move || Ok(Zeroizing::new(password.clone()))
    }

    #[test]
    fn round_trip_and_wrong_password() {
        let json = encrypt(b"secret der", "pw").unwrap();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(
            text.starts_with(
                r#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":""#
            )
        );
        let plain = decrypt(&json, &mut given("pw")).ok().unwrap();
        assert_eq!(plain.as_slice(), b"secret der");
        assert!(matches!(
            decrypt(&json, &mut given("other")),
            Err(DecryptError::Problem(KeyProblem::WrongPassword))
        ));
    }

    #[test]
    fn every_parameter_set_cosign_writes_is_read() {
        // go-securesystemslib's legacy, standard and OWASP strengths.
        for n in [1u64 << 15, 1 << 16, 1 << 17] {
            assert!(scrypt_params(n, 8, 1).is_ok(), "N={n}");
        }
    }

    #[test]
    fn absurd_parameters_are_refused_before_the_password_is_asked() {
        for (n, r, p) in [
            (1u64 << 21, 8u64, 1u64),
            (1 << 20, 16, 1),
            (1 << 18, 16, 1),
            (1 << 16, 8, 64),
            (1000, 8, 1),
            (0, 8, 1),
            (1 << 16, 0, 1),
        ] {
            let json = format!(
                r#"{{"kdf":{{"name":"scrypt","params":{{"N":{n},"r":{r},"p":{p}}},"salt":"AAAA"}},"cipher":{{"name":"nacl/secretbox","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},"ciphertext":"AAAA"}}"#
            );
            let mut asked = false;
            let mut password = || {
                asked = true;
                Ok(Zeroizing::new(String::new()))
            };
            assert!(
                matches!(
                    decrypt(json.as_bytes(), &mut password),
                    Err(DecryptError::Problem(KeyProblem::UnsupportedEncryption(_)))
                ),
                "N={n} r={r} p={p}"
            );
            assert!(!asked);
        }
    }
}
