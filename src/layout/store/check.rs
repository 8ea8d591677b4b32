//! Which directories may take an image, decided before anything is built and again under the lock:
//! a new one, an empty one, or a sound OCI layout; and the names a layout can list.

use std::fs;
use std::io;
use std::path::Path;

use super::lock::locked_by_another_run;
use super::{FLAG, MAX_INDEX, MAX_MARKER};
use crate::error::{Error, Result};
use crate::image::reference::Reference;
use crate::image::referrers::REFERRERS_FILE;
use crate::layout::dir::read_referrers;
use crate::oci::Index;
use crate::util::sanitize;

/// The name an image is listed under in a layout: its name as docker shows it (`app:1.0`,
/// `registry.example.com/team/app:1.0`), so that images of several repositories (a workspace's)
/// can share one layout, refused when the OCI grammar of reference names does not allow it (skopeo
/// and umoci could not select it).
pub fn ref_name(name: &Reference) -> Result<String> {
    let familiar = name.familiar();
    if is_ref_name(&familiar) {
        Ok(familiar)
    } else {
        Err(Error::Invalid(format!(
            "{FLAG}: the image name `{familiar}` cannot name an image in an OCI layout (its parts \
             must be letters and digits joined by one of `-._:@+` or `--`, and by `/`); choose \
             another --tag"
        )))
    }
}

/// The grammar of `org.opencontainers.image.ref.name`: `component ("/" component)*`, a component
/// being `alphanum (separator alphanum)*`, a separator one of `-._:@+` or `--`.
fn is_ref_name(name: &str) -> bool {
    fn component(part: &str) -> bool {
        let mut previous_alphanum = false;
        let mut separator = String::new();
        for c in part.chars() {
            if c.is_ascii_alphanumeric() {
                // One separator, or `--`.
                if separator.len() > 1 && separator != "--" {
                    return false;
                }
                separator.clear();
                previous_alphanum = true;
            } else if "-._:@+".contains(c) {
                if !previous_alphanum && separator.is_empty() {
                    // A component starts with a letter or digit.
                    return false;
                }
                separator.push(c);
                previous_alphanum = false;
            } else {
                return false;
            }
        }
        previous_alphanum
    }
    !name.is_empty() && name.split('/').all(component)
}

/// Checks, before anything is built, that `dir` can become or be added to as a layout: a new
/// directory under a writable one, an empty writable directory, or a writable layout whose
/// `oci-layout` and `index.json` are sound. Changes nothing.
pub fn check(dir: &Path) -> Result<()> {
    match classify(dir)? {
        Kind::Missing => {
            let existing = dir
                .ancestors()
                .skip(1)
                .map(|p| {
                    if p.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        p
                    }
                })
                .find(|p| fs::symlink_metadata(p).is_ok())
                .unwrap_or(Path::new("."));
            if !existing.is_dir() {
                return Err(Error::input(
                    existing,
                    format!(
                        "is not a directory, so {FLAG} {} cannot be made",
                        dir.display()
                    ),
                ));
            }
            writable(existing)
        }
        Kind::Empty => writable(dir),
        // Another run making a layout there holds its lock until it is one: it is checked again
        // under the lock before anything is written.
        Kind::Foreign if locked_by_another_run(dir) => writable(dir),
        Kind::Foreign => Err(foreign(dir)),
        Kind::Layout(..) => {
            writable(dir)?;
            let blobs = dir.join("blobs/sha256");
            if blobs.is_dir() {
                writable(&blobs)?;
            }
            Ok(())
        }
    }
}

/// Refuses an archive path that is the layout directory or inside it: the archive would take the
/// layout's place, or make a new layout's directory one that is not a layout.
pub fn ensure_apart(output: &Path, dir: &Path) -> Result<()> {
    if crate::util::destination::is_dash(output) {
        return Ok(());
    }
    let (Ok(output_at), Ok(dir_at)) = (std::path::absolute(output), std::path::absolute(dir))
    else {
        return Ok(());
    };
    if output_at.starts_with(&dir_at) {
        return Err(Error::input(
            output,
            format!(
                "is inside the {FLAG} directory {}; write the archive elsewhere",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Refuses a directory this process may not write to: on Windows, where access is decided by ACLs,
/// by making (and at once removing) a file there.
#[cfg(windows)]
fn writable(dir: &Path) -> Result<()> {
    tempfile::tempfile_in(dir).map(drop).map_err(|e| {
        Error::input(
            dir,
            format!("cannot be written ({e}); choose a writable {FLAG} directory"),
        )
    })
}

/// Refuses a directory this process may not write to.
#[cfg(unix)]
fn writable(dir: &Path) -> Result<()> {
    use rustix::fs::Access;
    rustix::fs::access(dir, Access::WRITE_OK | Access::EXEC_OK).map_err(|e| {
        Error::input(
            dir,
            format!(
                "cannot be written ({}); choose a writable {FLAG} directory",
                io::Error::from(e)
            ),
        )
    })
}

/// What is at the layout's path.
pub(super) enum Kind {
    Missing,
    Empty,
    /// A directory holding something else (or a layout another run is making).
    Foreign,
    /// A layout: its `index.json` (`None`: there is none yet) and its `referrers.json`.
    Layout(Box<(Option<Index>, Option<Index>)>),
}

/// Reads what is at `dir` and refuses what may not be written to.
pub(super) fn classify(dir: &Path) -> Result<Kind> {
    let meta = match fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if fs::symlink_metadata(dir).is_ok() {
                return Err(Error::input(
                    dir,
                    format!(
                        "is a symbolic link to nothing; give {FLAG} a directory, or remove the link"
                    ),
                ));
            }
            return Ok(Kind::Missing);
        }
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(Error::input(
                dir,
                format!(
                    "cannot be a directory: a part of that path is a file; give {FLAG} another path"
                ),
            ));
        }
        Err(e) => return Err(Error::io("reading", dir)(e)),
    };
    if !meta.is_dir() {
        let what = if meta.is_file() {
            "a file"
        } else {
            "not a directory"
        };
        return Err(Error::input(
            dir,
            format!(
                "is {what}; {FLAG} takes a directory: a new or empty one, or an OCI image layout"
            ),
        ));
    }
    let marker = dir.join("oci-layout");
    if fs::symlink_metadata(&marker).is_err() {
        let mut entries = fs::read_dir(dir).map_err(Error::io("reading", dir))?;
        return Ok(if entries.next().is_none() {
            Kind::Empty
        } else {
            Kind::Foreign
        });
    }
    read_marker(&marker)?;
    for sub in ["blobs", "blobs/sha256", "blobs/sha512"] {
        real_directory(&dir.join(sub))?;
    }
    let referrers = read_referrers(&dir.join(REFERRERS_FILE)).map_err(|e| match e {
        Error::Input { path, message } => Error::Input {
            path,
            message: format!("{message}; fix or remove it, or give {FLAG} another directory"),
        },
        other => other,
    })?;
    let index = dir.join("index.json");
    let bytes = crate::util::fsutil::read_regular_if_present(
        &index,
        MAX_INDEX,
        "an OCI layout's index.json",
    )?;
    let Some(bytes) = bytes else {
        return Ok(Kind::Layout(Box::new((None, referrers))));
    };
    let parsed: Index = serde_json::from_slice(&bytes).map_err(|e| {
        Error::input(
            &index,
            format!(
                "is not a valid image index ({}); fix it, or give {FLAG} another directory",
                sanitize::outside(&e.to_string(), sanitize::EXCERPT)
            ),
        )
    })?;
    if parsed.schema_version != 2 {
        return Err(Error::input(
            &index,
            format!(
                "has schemaVersion {}, not 2; fix it, or give {FLAG} another directory",
                parsed.schema_version
            ),
        ));
    }
    Ok(Kind::Layout(Box::new((Some(parsed), referrers))))
}

/// The refusal of a directory that is not empty and not a layout.
pub(super) fn foreign(dir: &Path) -> Error {
    Error::input(
        dir,
        format!(
            "is not empty and not an OCI image layout (it has no oci-layout file); give {FLAG} a \
             new or empty directory, or an existing layout"
        ),
    )
}

/// Checks the `oci-layout` file: `{"imageLayoutVersion": "1.0.0"}`, other fields allowed.
fn read_marker(marker: &Path) -> Result<()> {
    let bytes =
        crate::util::fsutil::read_regular(marker, MAX_MARKER, "an OCI layout's oci-layout file")?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::input(
            marker,
            format!(
                "is not valid JSON ({}); an OCI layout's oci-layout file is \
                 {{\"imageLayoutVersion\":\"1.0.0\"}}",
                sanitize::outside(&e.to_string(), sanitize::EXCERPT)
            ),
        )
    })?;
    match value.get("imageLayoutVersion").and_then(|v| v.as_str()) {
        Some("1.0.0") => Ok(()),
        Some(other) => Err(Error::input(
            marker,
            format!(
                "says imageLayoutVersion `{}`; only 1.0.0 is known, so nothing is added to this \
                 layout",
                sanitize::outside(other, 100)
            ),
        )),
        None => Err(Error::input(
            marker,
            "has no imageLayoutVersion; an OCI layout's oci-layout file is \
             {\"imageLayoutVersion\":\"1.0.0\"}",
        )),
    }
}

/// Refuses a blobs directory that is a symbolic link or not a directory: blobs are written only
/// inside the layout. A missing one is fine (it is created).
pub(super) fn real_directory(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) => {
            let what = if meta.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "not a directory"
            };
            Err(Error::input(
                path,
                format!(
                    "is {what}; blobs are written only into the layout's own directories: fix \
                     the layout, or give {FLAG} another directory"
                ),
            ))
        }
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_names_follow_the_oci_grammar() {
        for good in [
            "app:1",
            "1.0",
            "registry.example.com/team/app:1.0",
            "localhost:5000/app:v1-rc.2",
            "a--b:c+d",
            "app@sha256:0123",
        ] {
            assert!(is_ref_name(good), "{good}");
        }
        for bad in [
            "", "app__x:1", "a---b:1", "app:_1", "app:1.", "/app", "app//x", "a b", "app:1..2",
        ] {
            assert!(!is_ref_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_refused_name_says_why_and_what_to_do() {
        let name: Reference = "team/app__x:1".parse().unwrap();
        let err = ref_name(&name).unwrap_err().to_string();
        assert!(err.contains("app__x") && err.contains("--tag"), "{err}");
        let name: Reference = "docker.io/library/app:1".parse().unwrap();
        assert_eq!(ref_name(&name).unwrap(), "app:1");
    }
}
