//! SPDX 2.3 JSON. The document describes the image (a CONTAINER package, checksummed by its manifest
//! digest), which CONTAINS the program file; the program is GENERATED_FROM its root package and
//! STATIC_LINKs every crate or module compiled into it. Crates DEPENDS_ON each other; build-time crates
//! are BUILD_DEPENDENCY_OF what needs them; the compiler is a BUILD_TOOL_OF the program.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{
    Component, ImageSubject, Inventory, Scope, TOOL_NAME, TOOL_VERSION, license_expression,
    split_author, uuid_from, web_url,
};
use crate::oci::{Algorithm, Digest};

const NOASSERTION: &str = "NOASSERTION";

pub(super) fn write(subject: &ImageSubject, inventory: &Inventory) -> Vec<u8> {
    let image_name = subject.name.name();
    let ids = component_ids(inventory);
    let mut packages = Vec::new();
    let mut relationships = Vec::new();
    let mut relate = |a: &str, kind: &str, b: &str| {
        relationships.push(json!({
            "spdxElementId": a,
            "relationshipType": kind,
            "relatedSpdxElement": b,
        }));
    };

    let mut image = json!({
        "SPDXID": "SPDXRef-Image",
        "name": image_name,
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
    packages.push(image);
    relate("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image");

    if let Some((name, digest)) = subject.base {
        packages.push(json!({
            "SPDXID": "SPDXRef-BaseImage",
            "name": crate::sanitize::outside(name, 300),
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
            "checksums": checksums_of_digest(digest),
            "comment": format!("The base image, {digest}; its own SBOM describes its contents."),
        }));
        relate("SPDXRef-Image", "DESCENDANT_OF", "SPDXRef-BaseImage");
    }

    packages.push(json!({
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
    }));
    relate("SPDXRef-Image", "CONTAINS", "SPDXRef-Program");

    for (i, component) in inventory.components.iter().enumerate() {
        packages.push(package(component, &ids[i], inventory.root == Some(i)));
        if inventory.root == Some(i) {
            relate("SPDXRef-Program", "GENERATED_FROM", &ids[i]);
        } else if component.scope == Scope::Runtime {
            relate("SPDXRef-Program", "STATIC_LINK", &ids[i]);
        }
    }
    for edge in &inventory.edges {
        if edge.build {
            relate(&ids[edge.to], "BUILD_DEPENDENCY_OF", &ids[edge.from]);
        } else {
            relate(&ids[edge.from], "DEPENDS_ON", &ids[edge.to]);
        }
    }
    for (i, tool) in inventory.tools.iter().enumerate() {
        let id = format!("SPDXRef-Tool-{}-{i}", sanitize(&tool.name));
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
        packages.push(package);
        relate(&id, "BUILD_TOOL_OF", "SPDXRef-Program");
    }

    let uuid = uuid_from(&[&subject.manifest_digest.to_string(), "spdx"]);
    let document = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{} ({})", subject.name.familiar(), subject.platform),
        "documentNamespace": format!(
            "https://spdx.org/spdxdocs/{TOOL_NAME}/{}-{uuid}",
            sanitize(subject.name.path())
        ),
        "creationInfo": {
            "created": subject.created.to_string(),
            "creators": [format!("Tool: {TOOL_NAME}-{TOOL_VERSION}")],
        },
        "documentDescribes": ["SPDXRef-Image"],
        "packages": packages,
        "relationships": relationships,
    });
    crate::oci::to_json_bytes(&document)
}

fn package(component: &Component, id: &str, is_root: bool) -> Value {
    let mut package = json!({
        "SPDXID": id,
        "name": component.name,
        "downloadLocation": component.download_location().unwrap_or_else(|| NOASSERTION.to_owned()),
        "filesAnalyzed": false,
        "primaryPackagePurpose": if is_root { "APPLICATION" } else { "LIBRARY" },
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": component
            .license
            .as_deref()
            .and_then(license_expression)
            .unwrap_or(NOASSERTION),
        "copyrightText": NOASSERTION,
    });
    let object = package.as_object_mut().expect("a JSON object");
    if !component.version.is_empty() {
        object.insert("versionInfo".into(), json!(component.version));
    }
    if let Some(sha256) = &component.sha256 {
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
    if let Some(homepage) = web_url(component.homepage.as_deref()) {
        object.insert("homepage".into(), json!(homepage));
    }
    if let Some(description) = &component.description {
        object.insert(
            "description".into(),
            json!(crate::sanitize::outside(description, 1000)),
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
    let mut used = BTreeSet::new();
    inventory
        .components
        .iter()
        .map(|c| {
            let base = if c.version.is_empty() {
                format!("SPDXRef-Package-{}", sanitize(&c.name))
            } else {
                format!(
                    "SPDXRef-Package-{}-{}",
                    sanitize(&c.name),
                    sanitize(&c.version)
                )
            };
            let mut id = base.clone();
            let mut n = 2;
            while !used.insert(id.clone()) {
                id = format!("{base}-{n}");
                n += 1;
            }
            id
        })
        .collect()
}
