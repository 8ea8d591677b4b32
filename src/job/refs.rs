//! `--image-refs FILE` (ko's and crane's flag): after a run that succeeded, the exact images it made,
//! pinned by digest, for the next step of a pipeline (sign, scan, deploy) to read without parsing
//! status lines. The file is checked and a temporary file made beside it before anything is built,
//! and it is put in place only at the very end, so a failed run never touches it.
//!
//! Its format, one reference per line, images first:
//! - one line per repository each image was pushed to: `REGISTRY/REPOSITORY@sha256:...` (several
//!   tags in one repository are one line); for an image pushed nowhere, its name as written in the
//!   archive, `NAME:TAG@sha256:...`;
//! - then one line per document attached to those images, in the same order, marked by a second
//!   field: `REGISTRY/REPOSITORY@sha256:... sbom-spdx [PLATFORM]` (`sbom-cyclonedx`, `provenance`);
//!   a document a registry refused is not listed.
//!
//! So `awk 'NF == 1'` gives the images and `cut -d' ' -f1` every reference.

use super::JobOutcome;
use crate::image::reference::Reference;
use crate::image::referrers::DocumentKind;

/// The references a run made, in the order the lines are written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageRefs {
    images: Vec<String>,
    documents: Vec<String>,
}

impl ImageRefs {
    /// Nothing yet.
    pub fn new() -> ImageRefs {
        ImageRefs::default()
    }

    /// Adds what one image became: a line per repository it was pushed to (else its archive name),
    /// and a line per document attached to it there.
    pub fn add(&mut self, outcome: &JobOutcome) {
        let summary = &outcome.summary;
        let mut repositories: Vec<String> = Vec::new();
        for pushed in &outcome.pushed {
            let name = pushed
                .reference
                .parse::<Reference>()
                .map_or_else(|_| pushed.reference.clone(), |r| r.name());
            if !repositories.contains(&name) {
                repositories.push(name);
            }
        }
        if repositories.is_empty() {
            self.push_image(format!("{}@{}", summary.tag, summary.digest));
            // In an archive the documents are found by digest, under the image's name.
            let name = untagged(&summary.tag);
            for document in &summary.attachments {
                self.push_document(
                    name,
                    document.kind,
                    &document.manifest_digest.to_string(),
                    document.platform.as_deref(),
                );
            }
            return;
        }
        for repository in &repositories {
            self.push_image(format!("{repository}@{}", summary.digest));
        }
        for repository in &repositories {
            for document in &summary.attachments {
                let refused = summary.attachments_not_pushed.iter().any(|not| {
                    not.manifest_digest == document.manifest_digest
                        && repository_matches(&not.repository, repository)
                });
                if !refused {
                    self.push_document(
                        repository,
                        document.kind,
                        &document.manifest_digest.to_string(),
                        document.platform.as_deref(),
                    );
                }
            }
        }
    }

    fn push_image(&mut self, line: String) {
        if !self.images.contains(&line) {
            self.images.push(line);
        }
    }

    fn push_document(
        &mut self,
        repository: &str,
        kind: DocumentKind,
        digest: &str,
        platform: Option<&str>,
    ) {
        let mut line = format!("{repository}@{digest} {}", marker(kind));
        if let Some(platform) = platform {
            line.push(' ');
            line.push_str(platform);
        }
        if !self.documents.contains(&line) {
            self.documents.push(line);
        }
    }

    /// The file's text: every line, each ended by a newline.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for line in self.images.iter().chain(&self.documents) {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

/// The second field of a document's line.
fn marker(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::Spdx => "sbom-spdx",
        DocumentKind::CycloneDx => "sbom-cyclonedx",
        DocumentKind::Provenance => "provenance",
        DocumentKind::SigstoreBundle => "signature-bundle",
        DocumentKind::CosignSignature => "signature-cosign",
        DocumentKind::CosignAttestation => "attestation-cosign",
    }
}

/// `NAME:TAG` without its tag (a registry's port is not a tag: it is followed by a `/`).
fn untagged(name: &str) -> &str {
    match name.rsplit_once(':') {
        Some((head, tag)) if !tag.contains('/') => head,
        _ => name,
    }
}

/// A refused document names its repository as `HOST/REPOSITORY`, which is the fully qualified name
/// except for Docker Hub's official images.
fn repository_matches(refused: &str, repository: &str) -> bool {
    refused == repository
        || refused
            .parse::<Reference>()
            .is_ok_and(|r| r.name() == repository)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_taken_off_but_a_port_is_not() {
        assert_eq!(untagged("app:1.0"), "app");
        assert_eq!(untagged("localhost:5000/app:1"), "localhost:5000/app");
        assert_eq!(untagged("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(untagged("app"), "app");
    }

    #[test]
    fn images_come_first_then_documents_each_once() {
        let mut refs = ImageRefs::new();
        refs.push_document("r/a", DocumentKind::Spdx, "sha256:1", Some("linux/amd64"));
        refs.push_image("r/a@sha256:0".to_owned());
        refs.push_document("r/a", DocumentKind::Provenance, "sha256:2", None);
        refs.push_image("r/a@sha256:0".to_owned());
        refs.push_document("r/a", DocumentKind::Provenance, "sha256:2", None);
        assert_eq!(
            refs.text(),
            "r/a@sha256:0\nr/a@sha256:1 sbom-spdx linux/amd64\nr/a@sha256:2 provenance\n"
        );
    }
}
