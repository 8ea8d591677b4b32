//! PEM blocks read leniently, as Go's `encoding/pem` reads them (any line width, text around the
//! block), because keys come from cosign, openssl and hand-edited files alike; and written as Go
//! writes them (64 columns, `\n`), so that our files are byte for byte what cosign writes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

/// One PEM block: its label and its decoded bytes (zeroized when dropped: they may be a secret key).
pub(crate) struct Block {
    pub label: String,
    pub bytes: Zeroizing<Vec<u8>>,
}

/// Why no block could be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PemError {
    /// No `-----BEGIN ...-----` line at all.
    NoBlock,
    /// A block without its end line, or whose base64 does not decode: the file was cut or damaged.
    Damaged,
    /// A block with RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`): openssl's legacy encryption.
    Headers,
}

/// The blocks of `text`, in order, skipping `skip` labels; stops at the first damaged block.
pub(crate) fn blocks(text: &str, skip: &[&str]) -> Result<Vec<Block>, PemError> {
    let mut found = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(label) = line
            .trim_end()
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = Zeroizing::new(String::new());
        let mut closed = false;
        let mut headers = false;
        for line in lines.by_ref() {
            let line = line.trim();
            if line == end {
                closed = true;
                break;
            }
            if line.contains(':') {
                headers = true;
            }
            body.push_str(line);
        }
        if headers {
            return Err(PemError::Headers);
        }
        if !closed {
            return Err(PemError::Damaged);
        }
        if skip.contains(&label) {
            continue;
        }
        let bytes = Zeroizing::new(
            BASE64
                .decode(body.as_bytes())
                .map_err(|_| PemError::Damaged)?,
        );
        found.push(Block {
            label: label.to_owned(),
            bytes,
        });
    }
    if found.is_empty() {
        return Err(PemError::NoBlock);
    }
    Ok(found)
}

/// `bytes` as a PEM block, as Go's `pem.EncodeToMemory` writes it.
pub(crate) fn encode(label: &str, bytes: &[u8]) -> String {
    let b64 = Zeroizing::new(BASE64.encode(bytes));
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // Base64 is ASCII: every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_damage_is_seen() {
        let text = encode("PUBLIC KEY", &[7u8; 100]);
        assert_eq!(text.lines().nth(1).map(str::len), Some(64));
        let found = blocks(&format!("preamble\n{text}trailer\n"), &[]).unwrap();
        assert_eq!(found[0].label, "PUBLIC KEY");
        assert_eq!(*found[0].bytes, vec![7u8; 100]);
        let cut = &text[..text.len() - 20];
        assert_eq!(blocks(cut, &[]).err(), Some(PemError::Damaged));
        assert_eq!(blocks("hello", &[]).err(), Some(PemError::NoBlock));
        let legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(blocks(legacy, &[]).err(), Some(PemError::Headers));
        let params = format!("{}{text}", encode("EC PARAMETERS", b"x"));
        assert_eq!(
            blocks(&params, &["EC PARAMETERS"]).unwrap()[0].label,
            "PUBLIC KEY"
        );
    }
}
