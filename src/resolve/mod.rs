//! `cargo zeroimage resolve`: Kubernetes YAML (or any YAML) in, the same YAML out with every
//! `zeroimage://PACKAGE[/BIN]` value replaced by the image it names, built and pushed in this run and
//! pinned by digest: `REPOSITORY/BIN@sha256:...`. Each distinct binary is built and pushed once
//! however often it is named; the rest of the text is kept byte for byte.

mod yaml;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::cargo::{CargoImage, CargoJob, CargoOptions};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::job::JobOptions;
use crate::job::naming::Repository;
use crate::report::Listener;

pub(crate) use yaml::SCHEME;

/// Largest YAML input read (each file, and standard input).
const MAX_INPUT: u64 = 64 << 20;

/// Where YAML comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum YamlSource {
    /// A file, or a directory read recursively (its `.yaml` and `.yml` files, in path order).
    Path(PathBuf),
    /// Standard input.
    Stdin,
}

/// A resolve run: the YAML, how to build (the binaries are the ones the YAML names), and where to push.
#[derive(Clone, Debug, Default)]
pub struct ResolveJob {
    /// The YAML files to read (or stdin).
    pub inputs: Vec<YamlSource>,
    /// Build options; the package and binary selection is replaced by what the YAML names.
    pub cargo: CargoOptions,
    /// Push options, registry and base options; every image goes to the repository.
    pub options: JobOptions,
    /// `REGISTRY/PATH`; `None`: `$ZEROIMAGE_REPOSITORY`, else each package's `repository` setting.
    pub repository: Option<Repository>,
}

/// What a resolve run made.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The YAML with every reference replaced.
    pub yaml: String,
    /// Each reference replaced, in the order found.
    pub replaced: Vec<Replaced>,
    /// Each image built and pushed, once however often it is named.
    pub images: Vec<CargoImage>,
}

/// One reference replaced, for `--message-format json`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Replaced {
    /// The YAML file (`<stdin>` for standard input).
    pub file: String,
    /// Its line, from 1.
    pub line: usize,
    /// The reference as written, `zeroimage://PACKAGE[/BIN]`.
    pub reference: String,
    /// The package built.
    pub package: String,
    /// The binary packaged.
    pub bin: String,
    /// What replaced it: `REPOSITORY/BIN@sha256:...`.
    pub image: String,
}

/// One YAML source read whole.
struct Document {
    name: String,
    text: String,
}

fn read_bounded(reader: impl Read, name: &str) -> Result<String> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Invalid(format!("{name}: {e}")))?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(Error::Invalid(format!(
            "{name}: larger than {} MiB; give resolve smaller files",
            MAX_INPUT >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|_| Error::Invalid(format!("{name}: is not UTF-8 text")))
}

/// The YAML files under `dir`, recursively, in path order. Only regular files are read (links
/// followed): a FIFO or device named `*.yaml` would block the run or never end, so it is skipped with a
/// warning. (A path given itself, such as `-f /dev/stdin` or `-f <(kustomize build)`, is read
/// whatever it is.)
fn yaml_files(dir: &Path, into: &mut Vec<PathBuf>, listener: &dyn Listener) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(Error::io("reading the directory", dir))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(Error::io("reading the directory", dir))?;
    entries.sort();
    for path in entries {
        let meta = std::fs::metadata(&path).map_err(Error::io("reading", &path))?;
        if meta.is_dir() {
            yaml_files(&path, into, listener)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            if meta.is_file() {
                into.push(path);
            } else {
                listener.warning(&format!(
                    "{}: skipped, {} and not a regular file; give it with -f PATH to read it",
                    path.display(),
                    special_kind(&meta)
                ));
            }
        }
    }
    Ok(())
}

/// What a special file is, for a message.
#[cfg(windows)]
fn special_kind(_meta: &std::fs::Metadata) -> &'static str {
    "a special file"
}

/// What a special file is, for a message.
#[cfg(unix)]
fn special_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

fn read_inputs(
    inputs: &[YamlSource],
    stdin: &mut dyn Read,
    listener: &dyn Listener,
) -> Result<Vec<Document>> {
    let mut documents = Vec::new();
    for input in inputs {
        match input {
            YamlSource::Stdin => documents.push(Document {
                name: "<stdin>".to_owned(),
                text: read_bounded(&mut *stdin, "standard input")?,
            }),
            YamlSource::Path(path) => {
                let meta = std::fs::metadata(path).map_err(Error::io("reading", path))?;
                let mut files = Vec::new();
                if meta.is_dir() {
                    yaml_files(path, &mut files, listener)?;
                } else {
                    files.push(path.clone());
                }
                for file in files {
                    let name = file.display().to_string();
                    let reader = std::fs::File::open(&file).map_err(Error::io("reading", &file))?;
                    documents.push(Document {
                        text: read_bounded(reader, &name)?,
                        name,
                    });
                }
            }
        }
    }
    if documents.is_empty() {
        return Err(Error::Invalid(
            "no YAML to resolve: the directories given hold no .yaml or .yml file".to_owned(),
        ));
    }
    Ok(documents)
}

impl ResolveJob {
    /// Reads the YAML (`stdin` for [`YamlSource::Stdin`]), builds and pushes every binary it names, and
    /// returns the YAML with the references replaced, in the run `cx`. Inputs are joined with `---`
    /// lines.
    pub fn run(&self, stdin: &mut dyn Read, cx: &Context) -> Result<Resolved> {
        let listener = cx.listener();
        let documents = read_inputs(&self.inputs, stdin, listener)?;
        let found = find_references(&documents)?;
        let (keys, pinned, images) = if found.is_empty() {
            (Vec::new(), BTreeMap::new(), Vec::new())
        } else {
            let Selection {
                keys,
                wanted,
                repository,
            } = self.select(&documents, &found, cx)?;
            let (pinned, images) = self.build_and_push(wanted, repository, cx)?;
            (keys, pinned, images)
        };
        let yaml = rewrite(&documents, &found, &keys, &pinned)?;
        let replaced = found
            .iter()
            .zip(&keys)
            .filter_map(|((index, reference), key)| {
                Some(Replaced {
                    file: documents[*index].name.clone(),
                    line: reference.line,
                    reference: match &reference.bin {
                        Some(bin) => format!("{SCHEME}{}/{bin}", reference.package),
                        None => format!("{SCHEME}{}", reference.package),
                    },
                    package: key.0.clone(),
                    bin: key.1.clone(),
                    image: pinned.get(key)?.clone(),
                })
            })
            .collect();
        Ok(Resolved {
            yaml,
            replaced,
            images,
        })
    }

    /// The binary each reference names, checked against the workspace before anything is built: the
    /// package must be a member, the binary one of its targets, and a repository known for it.
    fn select(
        &self,
        documents: &[Document],
        found: &[(usize, yaml::Found)],
        cx: &Context,
    ) -> Result<Selection> {
        let mut wanted: Vec<Bin> = Vec::new();
        let mut keys: Vec<Bin> = Vec::new();
        let workspace = crate::cargo::workspace::Workspace::load(
            self.cargo.manifest_path.as_deref(),
            &self.cargo.resolution_flags(),
            cx.cancel(),
        )?;
        let members = workspace.metadata.workspace_packages();
        let repository = match &self.repository {
            Some(repository) => Some(repository.clone()),
            None => env_repository()?,
        };
        for (index, reference) in found {
            let at = |message: String| {
                Error::Invalid(format!(
                    "{}:{}: {message}",
                    documents[*index].name, reference.line
                ))
            };
            let package = members
                .iter()
                .find(|p| p.name.as_str() == reference.package)
                .ok_or_else(|| {
                    let names: Vec<&str> = members.iter().map(|p| p.name.as_str()).collect();
                    at(format!(
                        "{SCHEME}{}: no package `{}` in the workspace at {} (its members: {})",
                        reference.package,
                        reference.package,
                        workspace.root().display(),
                        names.join(", ")
                    ))
                })?;
            let bin = crate::cargo::workspace::bin_of(package, reference.bin.as_deref())
                .map_err(|e| at(format!("{SCHEME}{}: {e}", reference.package)))?;
            if repository.is_none() && workspace.settings(Some(package))?.repository()?.is_none() {
                return Err(at(format!(
                    "no repository to push `{bin}` to: give --repository REGISTRY/PATH, set \
                     ZEROIMAGE_REPOSITORY, or set `repository` in [workspace.metadata.zeroimage]"
                )));
            }
            let key = (package.name.to_string(), bin);
            if !wanted.contains(&key) {
                wanted.push(key.clone());
            }
            keys.push(key);
        }
        Ok(Selection {
            keys,
            wanted,
            repository,
        })
    }

    /// Builds and pushes the binaries `wanted` in one cargo job (to `repository`, else each package's
    /// own) and returns the image each one was pushed as, pinned by digest.
    fn build_and_push(
        &self,
        wanted: Vec<Bin>,
        repository: Option<Repository>,
        cx: &Context,
    ) -> Result<(BTreeMap<Bin, String>, Vec<CargoImage>)> {
        let job = CargoJob {
            cargo: CargoOptions {
                only: wanted,
                packages: Vec::new(),
                workspace: false,
                exclude: Vec::new(),
                bins: Vec::new(),
                all_bins: false,
                ..self.cargo.clone()
            },
            options: JobOptions {
                push: Vec::new(),
                tag: None,
                output: None,
                stdout_reserved: true,
                load: crate::load::LoadOptions::default(),
                ..self.options.clone()
            },
            repository,
            deploy: true,
        };
        let outcome = job.run(cx)?;
        let mut pinned = BTreeMap::new();
        for image in &outcome.images {
            let pushed = image.image.pushed.last().ok_or_else(|| {
                Error::Invalid(format!("`{}` was built but not pushed", image.bin))
            })?;
            let name = pushed
                .reference
                .parse::<crate::image::reference::Reference>()
                .map_or_else(|_| pushed.reference.clone(), |r| r.name());
            let resolved = format!("{name}@{}", image.image.summary.digest);
            cx.listener().status(
                "Resolved",
                &format!("{SCHEME}{}/{} to {resolved}", image.package, image.bin),
            );
            pinned.insert((image.package.clone(), image.bin.clone()), resolved);
        }
        Ok((pinned, outcome.images))
    }
}

/// A binary the YAML names: its package and its name.
type Bin = (String, String);

/// What the references name, as [`ResolveJob::select`] checked it.
struct Selection {
    /// The binary each reference resolves to, in the order found.
    keys: Vec<Bin>,
    /// The distinct binaries, to build once each.
    wanted: Vec<Bin>,
    /// The repository given for every image, if any.
    repository: Option<Repository>,
}

/// The references in `documents`, each with the index of its document, in the order found.
fn find_references(documents: &[Document]) -> Result<Vec<(usize, yaml::Found)>> {
    let mut found = Vec::new();
    for (index, document) in documents.iter().enumerate() {
        let references = yaml::scan(&document.text)
            .map_err(|e| Error::Invalid(format!("{}:{}: {}", document.name, e.line, e.message)))?;
        found.extend(references.into_iter().map(|r| (index, r)));
    }
    Ok(found)
}

/// The documents with each reference (`found`, resolved to `keys`) replaced by its `pinned` image,
/// joined with `---` lines; the rest of the text is kept byte for byte.
fn rewrite(
    documents: &[Document],
    found: &[(usize, yaml::Found)],
    keys: &[Bin],
    pinned: &BTreeMap<Bin, String>,
) -> Result<String> {
    let mut out = String::new();
    for (index, document) in documents.iter().enumerate() {
        let replacements: Vec<_> = found
            .iter()
            .zip(keys)
            .filter(|((i, _), _)| *i == index)
            .map(|((_, reference), key)| {
                let text = pinned.get(key).cloned().ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}:{}: `{SCHEME}{}/{}` was not built",
                        document.name, reference.line, key.0, key.1
                    ))
                })?;
                Ok((reference.range.clone(), text))
            })
            .collect::<Result<_>>()?;
        if index > 0 {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("---\n");
        }
        out.push_str(&yaml::replace(&document.text, &replacements));
    }
    Ok(out)
}

/// `$ZEROIMAGE_REPOSITORY`, validated.
fn env_repository() -> Result<Option<Repository>> {
    match std::env::var("ZEROIMAGE_REPOSITORY") {
        Ok(value) if !value.is_empty() => value
            .parse()
            .map(Some)
            .map_err(|e| Error::Invalid(format!("ZEROIMAGE_REPOSITORY: {e}"))),
        _ => Ok(None),
    }
}
