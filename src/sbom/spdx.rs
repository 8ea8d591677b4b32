//! SPDX 2.3 JSON. The document describes the image (a CONTAINER package, checksummed by its manifest
//! digest), which CONTAINS the program file; the program is GENERATED_FROM its root package and
//! STATIC_LINKs every crate or module compiled into it. Crates DEPENDS_ON each other; build-time crates
//! are BUILD_DEPENDENCY_OF what needs them; the compiler is a BUILD_TOOL_OF the program.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::{
    Component, ImageSubject, Inventory, License, Scope, Streamed, TOOL_NAME, TOOL_VERSION, Tool,
    split_author, unique_ids, uri, uuid_from,
};
use crate::oci::{Algorithm, Digest};

const NOASSERTION: &str = "NOASSERTION";

/// The document. Its fields are in the byte order of their names, as a JSON object of ours always is;
/// the packages and relationships are written as they are made.
#[derive(Serialize)]
#[serde(bound(serialize = "Streamed<P>: Serialize"))]
struct Document<'a, P> {
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    #[serde(rename = "creationInfo")]
    creation_info: Value,
    #[serde(rename = "dataLicense")]
    data_license: &'static str,
    #[serde(rename = "documentDescribes")]
    document_describes: [&'static str; 1],
    #[serde(rename = "documentNamespace")]
    document_namespace: String,
    #[serde(
        rename = "hasExtractedLicensingInfos",
        skip_serializing_if = "Vec::is_empty"
    )]
    extracted_licenses: Vec<Value>,
    name: String,
    packages: Streamed<P>,
    relationships: Vec<Relationship<'a>>,
    #[serde(rename = "spdxVersion")]
    spdx_version: &'static str,
}

/// One relationship, its fields in the order of their names.
#[derive(Serialize)]
struct Relationship<'a> {
    #[serde(rename = "relatedSpdxElement")]
    related: &'a str,
    #[serde(rename = "relationshipType")]
    kind: &'static str,
    #[serde(rename = "spdxElementId")]
    element: &'a str,
}

fn relationship<'a>(element: &'a str, kind: &'static str, related: &'a str) -> Relationship<'a> {
    Relationship {
        related,
        kind,
        element,
    }
}

pub(super) fn write(subject: &ImageSubject, inventory: &Inventory) -> Vec<u8> {
    let ids = component_ids(inventory);
    let licenses: Vec<Option<License>> = inventory
        .components
        .iter()
        .map(Component::declared_license)
        .collect();
    let tool_ids: Vec<String> = inventory
        .tools
        .iter()
        .enumerate()
        .map(|(i, tool)| format!("SPDXRef-Tool-{}-{i}", sanitize(&tool.name)))
        .collect();
    let tools = inventory
        .tools
        .iter()
        .zip(&tool_ids)
        .map(|(tool, id)| tool_package(tool, id));
    let packages = std::iter::once(image_package(subject))
        .chain(base_package(subject))
        .chain(std::iter::once(program_package(subject, inventory)))
        .chain(
            inventory
                .components
                .iter()
                .enumerate()
                .map(|(i, component)| {
                    package(
                        component,
                        &ids[i],
                        licenses[i].as_ref(),
                        inventory.root == Some(i),
                    )
                }),
        )
        .chain(tools);
    let uuid = uuid_from(&[&subject.manifest_digest.to_string(), "spdx"]);
    let document = Document {
        spdx_id: "SPDXRef-DOCUMENT",
        creation_info: json!({
            "created": subject.created.to_string(),
            "creators": [format!("Tool: {TOOL_NAME}-{TOOL_VERSION}")],
        }),
        data_license: "CC0-1.0",
        document_describes: ["SPDXRef-Image"],
        document_namespace: format!(
            "https://spdx.org/spdxdocs/{TOOL_NAME}/{}-{uuid}",
            sanitize(subject.name.path())
        ),
        extracted_licenses: extracted_licenses(&licenses),
        name: format!("{} ({})", subject.name.familiar(), subject.platform),
        packages: Streamed::new(packages),
        relationships: relationships(subject, inventory, &ids, &tool_ids),
        spdx_version: "SPDX-2.3",
    };
    super::to_bytes(&document)
}

/// The package the document describes: the image, checksummed by its manifest digest.
fn image_package(subject: &ImageSubject) -> Value {
    let mut image = json!({
        "SPDXID": "SPDXRef-Image",
        "name": subject.name.name(),
        "versionInfo": subject.name.tag(),
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "checksums": checksums_of_digest(subject.manifest_digest),
        "externalRefs": [purl_ref(&super::purl::of_image(
            subject.name,
            subject.manifest_digest,
            Some(&subject.platform.architecture),
        ))],
        "comment": format!("The image manifest for {}.", subject.platform),
    });
    if let Some(object) = image.as_object_mut() {
        object.retain(|_, v| !v.is_null());
    }
    image
}

/// The base image, when there is one: only named and checksummed, its own SBOM says what it holds.
fn base_package(subject: &ImageSubject) -> Option<Value> {
    subject.base.map(|(name, digest)| {
        json!({
            "SPDXID": "SPDXRef-BaseImage",
            "name": crate::util::sanitize::outside(name, 300),
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
            "checksums": checksums_of_digest(digest),
            "comment": format!("The base image, {digest}; its own SBOM describes its contents."),
        })
    })
}

/// The program file the image contains.
fn program_package(subject: &ImageSubject, inventory: &Inventory) -> Value {
    json!({
        "SPDXID": "SPDXRef-Program",
        "name": subject.program.path,
        "packageFileName": subject.program.path,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "primaryPackagePurpose": "FILE",
        "checksums": [{"algorithm": "SHA256", "checksumValue": subject.program.sha256}],
        "comment": format!(
            "The program, {} bytes; its contents were learned from {}.",
            subject.program.size,
            inventory.source.describe()
        ),
    })
}

/// A tool that built the program (the compiler ...), as the package `id`.
fn tool_package(tool: &Tool, id: &str) -> Value {
    let details: Vec<String> = tool
        .details
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let mut package = json!({
        "SPDXID": id,
        "name": tool.name,
        "versionInfo": tool.version,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "primaryPackagePurpose": "APPLICATION",
    });
    if !details.is_empty() {
        package["comment"] = Value::String(details.join("; "));
    }
    package
}

/// The relationships, in the order the module doc gives them: the document describes the image,
/// which descends from its base and contains the program; the program is generated from its root
/// package and statically links the runtime components (named by `ids`); the components depend on
/// each other; the tools (`tool_ids`) build the program.
fn relationships<'a>(
    subject: &ImageSubject,
    inventory: &Inventory,
    ids: &'a [String],
    tool_ids: &'a [String],
) -> Vec<Relationship<'a>> {
    let mut relationships = vec![relationship(
        "SPDXRef-DOCUMENT",
        "DESCRIBES",
        "SPDXRef-Image",
    )];
    if subject.base.is_some() {
        relationships.push(relationship(
            "SPDXRef-Image",
            "DESCENDANT_OF",
            "SPDXRef-BaseImage",
        ));
    }
    relationships.push(relationship("SPDXRef-Image", "CONTAINS", "SPDXRef-Program"));
    for (i, component) in inventory.components.iter().enumerate() {
        if inventory.root == Some(i) {
            relationships.push(relationship("SPDXRef-Program", "GENERATED_FROM", &ids[i]));
        } else if component.scope == Scope::Runtime {
            relationships.push(relationship("SPDXRef-Program", "STATIC_LINK", &ids[i]));
        }
    }
    for edge in &inventory.edges {
        let (Some(from), Some(to)) = (ids.get(edge.from), ids.get(edge.to)) else {
            continue;
        };
        relationships.push(if edge.build {
            relationship(to, "BUILD_DEPENDENCY_OF", from)
        } else {
            relationship(from, "DEPENDS_ON", to)
        });
    }
    for id in tool_ids {
        relationships.push(relationship(id, "BUILD_TOOL_OF", "SPDXRef-Program"));
    }
    relationships
}

/// The `hasExtractedLicensingInfos` entries the declared licenses need: each `LicenseRef-` an
/// expression names (its text is the package's, not known here), and each text that is no
/// expression (under the identifier [`License::text_ref`] gives it).
fn extracted_licenses(licenses: &[Option<License>]) -> Vec<Value> {
    let mut infos: BTreeMap<String, Value> = BTreeMap::new();
    for license in licenses.iter().flatten() {
        match license {
            License::Expression { refs, .. } => {
                for id in refs {
                    infos.entry(id.clone()).or_insert_with(|| {
                        json!({
                            "licenseId": id,
                            "extractedText": NOASSERTION,
                            "comment": format!(
                                "A package declares {id}; the license text is not part of this \
                                 document."
                            ),
                        })
                    });
                }
            }
            License::Text(text) => {
                let id = License::text_ref(text);
                infos.entry(id.clone()).or_insert_with(|| {
                    json!({
                        "licenseId": id,
                        "name": text,
                        "extractedText": text,
                        "comment": "A package declares this license text, which is not an SPDX \
                                    license expression.",
                    })
                });
            }
        }
    }
    infos.into_values().collect()
}

fn package(component: &Component, id: &str, license: Option<&License>, is_root: bool) -> Value {
    let download_location = component
        .download_location()
        .filter(|url| uri::spdx_download_location(url))
        .unwrap_or_else(|| NOASSERTION.to_owned());
    let declared = match license {
        Some(License::Expression { expression, .. }) => expression.clone(),
        Some(License::Text(text)) => License::text_ref(text),
        None => NOASSERTION.to_owned(),
    };
    let mut package = json!({
        "SPDXID": id,
        "name": component.name,
        "downloadLocation": download_location,
        "filesAnalyzed": false,
        "primaryPackagePurpose": if is_root { "APPLICATION" } else { "LIBRARY" },
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": declared,
        "copyrightText": NOASSERTION,
    });
    let object = package.as_object_mut().expect("a JSON object");
    if !component.version.is_empty() {
        object.insert("versionInfo".into(), json!(component.version));
    }
    if let Some(sha256) = component.sha256_hex() {
        object.insert(
            "checksums".into(),
            json!([{"algorithm": "SHA256", "checksumValue": sha256}]),
        );
    }
    if let Some(purl) = component.purl() {
        object.insert("externalRefs".into(), json!([purl_ref(&purl)]));
    }
    if let Some(first) = component.authors.first() {
        let (name, email) = split_author(first);
        if !name.is_empty() && !name.contains(['(', ')']) {
            object.insert(
                "originator".into(),
                json!(format!("Person: {name} ({})", email.unwrap_or_default())),
            );
        }
    }
    if let Some(homepage) = component
        .homepage
        .as_deref()
        .and_then(uri::web)
        .filter(|url| uri::spdx_homepage(url))
    {
        object.insert("homepage".into(), json!(homepage));
    }
    if let Some(description) = &component.description {
        object.insert(
            "description".into(),
            json!(crate::util::sanitize::outside(description, 1000)),
        );
    }
    if let Some(vcs) = &component.vcs {
        object.insert(
            "sourceInfo".into(),
            json!(format!(
                "built from commit {}{}",
                vcs.commit,
                if vcs.dirty {
                    " with uncommitted changes"
                } else {
                    ""
                }
            )),
        );
    }
    let mut notes = Vec::new();
    if component.scope == Scope::Build {
        notes.push("used at build time only, not part of the program".to_owned());
    }
    if !component.features.is_empty() {
        notes.push(format!("features: {}", component.features.join(", ")));
    }
    if let Some(sum) = &component.go_sum {
        notes.push(format!("go.sum: {sum}"));
    }
    if let Some(replacement) = &component.replaced_by {
        notes.push(format!("replaced by {replacement}"));
    }
    if component.authors.len() > 1 {
        notes.push(format!("authors: {}", component.authors.join(", ")));
    }
    if !notes.is_empty() {
        object.insert("comment".into(), json!(notes.join("; ")));
    }
    package
}

fn purl_ref(purl: &str) -> Value {
    json!({
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": purl,
    })
}

fn checksums_of_digest(digest: &Digest) -> Value {
    let algorithm = match digest.algorithm() {
        Algorithm::Sha256 => "SHA256",
        Algorithm::Sha512 => "SHA512",
    };
    json!([{"algorithm": algorithm, "checksumValue": digest.hex()}])
}

/// SPDX identifiers hold letters, digits, `.` and `-`.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A unique SPDX identifier per component, from its name and version.
fn component_ids(inventory: &Inventory) -> Vec<String> {
    let bases = inventory.components.iter().map(|c| {
        if c.version.is_empty() {
            format!("SPDXRef-Package-{}", sanitize(&c.name))
        } else {
            format!(
                "SPDXRef-Package-{}-{}",
                sanitize(&c.name),
                sanitize(&c.version)
            )
        }
    });
    unique_ids(bases, "-", &[])
}
