//! Writing a new key pair as `cosign generate-key-pair` does (`PREFIX.key`, `PREFIX.pub`), but never
//! over an existing file: a key replaced by mistake is every signature made with it lost. Both files
//! appear complete or neither does; the private key is readable by its owner only.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::util::cancel::CancelToken;
use crate::util::outputs::temp_file;

/// The private key's mode on Unix: its owner's only, as cosign writes it.
const PRIVATE_MODE: u32 = 0o600;
const PUBLIC_MODE: u32 = 0o644;

/// The files a key pair with this prefix is written to: `PREFIX.key` and `PREFIX.pub`.
pub fn key_pair_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let with = |extension: &str| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(extension);
        PathBuf::from(name)
    };
    (with(".key"), with(".pub"))
}

/// The files a key pair with this prefix goes to ([`key_pair_paths`]), refused when either exists or
/// when the prefix names a directory: checked before the password is asked, and again when writing.
pub fn check_key_pair_paths(prefix: &Path) -> Result<(PathBuf, PathBuf)> {
    let text = prefix.as_os_str().to_string_lossy();
    if text.is_empty() || text.ends_with(std::path::is_separator) || prefix.is_dir() {
        return Err(Error::input(
            prefix,
            "is a directory; give --output-key-prefix a file name prefix, e.g. DIR/cosign",
        ));
    }
    let (private, public) = key_pair_paths(prefix);
    for path in [&private, &public] {
        match std::fs::symlink_metadata(path) {
            Ok(_) => {
                return Err(Error::input(
                    path,
                    "already exists; a key is never replaced: move it away, or give another --output-key-prefix",
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("checking", path)(e)),
        }
    }
    Ok((private, public))
}

/// Makes a key pair encrypted under `password` ([`super::generate_key_pair`]) and writes it to
/// `PREFIX.key` and `PREFIX.pub` ([`check_key_pair_paths`] first); returns both paths.
pub fn write_key_pair(
    prefix: &Path,
    password: &str,
    cancel: &CancelToken,
) -> Result<(PathBuf, PathBuf)> {
    let (private_path, public_path) = check_key_pair_paths(prefix)?;
    let (private, public) = super::generate_key_pair(password)?;
    cancel.check()?;
    let private_temp = staged(&private_path, private.as_bytes(), PRIVATE_MODE, cancel)?;
    let public_temp = staged(&public_path, public.as_bytes(), PUBLIC_MODE, cancel)?;
    cancel.check()?;
    // Renames that never replace a file: a file made meanwhile by someone else is kept.
    private_temp
        .0
        .persist_noclobber(&private_path)
        .map_err(|e| placing(&private_path, e.error))?;
    if let Err(e) = public_temp.0.persist_noclobber(&public_path) {
        // Ours, written a moment ago: a private key without its public key is of no use.
        let _ = std::fs::remove_file(&private_path);
        return Err(placing(&public_path, e.error));
    }
    Ok((private_path, public_path))
}

/// A complete temporary file beside `path`, with its cancellation guard.
fn staged(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    cancel: &CancelToken,
) -> Result<(tempfile::TempPath, crate::util::cancel::TempGuard)> {
    let Some(name) = path.file_name() else {
        return Err(Error::input(
            path,
            "is not a file path; give a file name prefix",
        ));
    };
    let dir = crate::util::destination::parent_dir(path);
    let (mut file, temp) = temp_file(&dir, name, ".part", mode).map_err(|e| {
        Error::input(
            path,
            format!("cannot be written ({e}); give an --output-key-prefix in a writable directory"),
        )
    })?;
    let guard = cancel.temporary(&temp);
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(Error::io("writing", path))?;
    Ok((temp, guard))
}

fn placing(path: &Path, error: std::io::Error) -> Error {
    if error.kind() == std::io::ErrorKind::AlreadyExists {
        return Error::input(
            path,
            "appeared while the key was made; a key is never replaced: move it away and run again",
        );
    }
    Error::io("writing", path)(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_pair_is_written_once_and_never_over_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("release");
        let cancel = CancelToken::new();
        let (private, public) = write_key_pair(&prefix, "pw", &cancel).unwrap();
        assert_eq!(private, dir.path().join("release.key"));
        assert_eq!(public, dir.path().join("release.pub"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&private).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "private key mode {mode:o}");
        }
        let key_text = std::fs::read_to_string(&private).unwrap();
        let pub_text = std::fs::read_to_string(&public).unwrap();
        let error = write_key_pair(&prefix, "pw", &cancel).unwrap_err();
        assert!(matches!(error, Error::Input { .. }), "{error}");
        assert_eq!(std::fs::read_to_string(&private).unwrap(), key_text);
        assert_eq!(std::fs::read_to_string(&public).unwrap(), pub_text);
        // A directory as the prefix: refused, nothing written in it.
        let sub = dir.path().join("keys");
        std::fs::create_dir(&sub).unwrap();
        for prefix in [sub.clone(), dir.path().join("keys/")] {
            assert!(matches!(
                write_key_pair(&prefix, "pw", &cancel),
                Err(Error::Input { .. })
            ));
        }
        assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 0);
        std::fs::remove_dir(&sub).unwrap();
        // Only the public key there: refused too, and no private key left behind.
        let lone = dir.path().join("lone");
        std::fs::write(dir.path().join("lone.pub"), "mine").unwrap();
        assert!(write_key_pair(&lone, "pw", &cancel).is_err());
        assert!(!dir.path().join("lone.key").exists());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "no temporary file left: {names:?}");
    }
}
