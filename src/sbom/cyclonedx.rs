//! CycloneDX 1.6 JSON. The BOM's subject (`metadata.component`) is the image, a container whose
//! ancestor is the base image; the program file is a component the image depends on, and the program
//! depends on its root package. Crates compiled in are `required`; build-time crates `excluded` (not
//! part of the program). The compiler goes under `formulation`.

use serde::Serialize;
use serde_json::{Value, json};

use super::{
    Component, ImageSubject, Inventory, License, Scope, Streamed, TOOL_NAME, TOOL_VERSION,
    split_author, unique_ids, uri, uuid_from,
};
use crate::oci::{Algorithm, Digest};

/// The BOM. Its fields are in the byte order of their names, as a JSON object of ours always is; the
/// components are written as they are made.
#[derive(Serialize)]
#[serde(bound(serialize = "Streamed<C>: Serialize"))]
struct Bom<'a, C> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    #[serde(rename = "bomFormat")]
    bom_format: &'static str,
    components: Streamed<C>,
    dependencies: Vec<Dependency<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    formulation: Option<Value>,
    metadata: Value,
    #[serde(rename = "serialNumber")]
    serial_number: String,
    #[serde(rename = "specVersion")]
    spec_version: &'static str,
    version: u32,
}

/// One entry of the dependency graph, its fields in the order of their names.
#[derive(Serialize)]
struct Dependency<'a> {
    #[serde(rename = "dependsOn")]
    depends_on: Vec<&'a str>,
    #[serde(rename = "ref")]
    reference: &'a str,
}

pub(super) fn write(subject: &ImageSubject, inventory: &Inventory) -> Vec<u8> {
    let refs = component_refs(inventory);
    let components = std::iter::once(program_component(subject, inventory)).chain(
        inventory
            .components
            .iter()
            .enumerate()
            .map(|(i, component)| component_json(component, &refs[i], inventory.root == Some(i))),
    );
    let bom = Bom {
        schema: "http://cyclonedx.org/schema/bom-1.6.schema.json",
        bom_format: "CycloneDX",
        components: Streamed::new(components),
        dependencies: dependencies(inventory, &refs),
        formulation: formulation(inventory),
        metadata: json!({
            "timestamp": subject.created.to_string(),
            "tools": {"components": [{
                "type": "application",
                "name": TOOL_NAME,
                "version": TOOL_VERSION,
            }]},
            "component": image_component(subject),
        }),
        serial_number: format!(
            "urn:uuid:{}",
            uuid_from(&[&subject.manifest_digest.to_string(), "cyclonedx"])
        ),
        spec_version: "1.6",
        version: 1,
    };
    super::to_bytes(&bom)
}

/// The BOM's subject: the image, a container whose ancestor (its pedigree) is the base image.
fn image_component(subject: &ImageSubject) -> Value {
    let mut image = json!({
        "type": "container",
        "bom-ref": "image",
        "name": subject.name.name(),
        "version": subject.name.tag(),
        "purl": super::purl::of_image(
            subject.name,
            subject.manifest_digest,
            Some(&subject.platform.architecture),
        ),
        "hashes": hashes_of_digest(subject.manifest_digest),
        "properties": [{"name": "zeroimage:platform", "value": subject.platform.to_string()}],
    });
    if let Some((name, digest)) = subject.base {
        image["pedigree"] = json!({"ancestors": [{
            "type": "container",
            "bom-ref": "base-image",
            "name": crate::util::sanitize::outside(name, 300),
            "hashes": hashes_of_digest(digest),
        }]});
    }
    image
}

/// The program file, the first component: what the image depends on.
fn program_component(subject: &ImageSubject, inventory: &Inventory) -> Value {
    json!({
        "type": "file",
        "bom-ref": "program",
        "name": subject.program.path,
        "hashes": [{"alg": "SHA-256", "content": subject.program.sha256}],
        "properties": [
            {"name": "zeroimage:size", "value": subject.program.size.to_string()},
            {"name": "zeroimage:contents-from", "value": inventory.source.describe()},
        ],
    })
}

/// The dependency graph: the image on the program, the program on its root package (or, without
/// one, on every runtime component), and each component on the ones it uses (`refs` name them).
fn dependencies<'a>(inventory: &Inventory, refs: &'a [String]) -> Vec<Dependency<'a>> {
    let mut dependencies = vec![Dependency {
        reference: "image",
        depends_on: vec!["program"],
    }];
    let program_deps: Vec<&str> = match inventory.root {
        Some(root) => refs.get(root).map(String::as_str).into_iter().collect(),
        None => inventory
            .components
            .iter()
            .zip(refs)
            .filter(|(c, _)| c.scope == Scope::Runtime)
            .map(|(_, r)| r.as_str())
            .collect(),
    };
    dependencies.push(Dependency {
        reference: "program",
        depends_on: program_deps,
    });
    // Each component's dependencies, each named once (an edge can be both a normal and a build one).
    let mut depends_on: Vec<Vec<usize>> = vec![Vec::new(); refs.len()];
    for edge in &inventory.edges {
        if let Some(list) = depends_on.get_mut(edge.from)
            && edge.to < refs.len()
        {
            list.push(edge.to);
        }
    }
    for (reference, mut on) in refs.iter().zip(depends_on) {
        if on.len() > 1 {
            let mut seen = std::collections::HashSet::new();
            on.retain(|to| seen.insert(*to));
        }
        dependencies.push(Dependency {
            reference,
            depends_on: on.into_iter().map(|to| refs[to].as_str()).collect(),
        });
    }
    dependencies
}

/// The tools that built the program (the compiler ...), under `formulation`; `None` when unknown.
fn formulation(inventory: &Inventory) -> Option<Value> {
    (!inventory.tools.is_empty()).then(|| {
        let tools: Vec<Value> = inventory
            .tools
            .iter()
            .enumerate()
            .map(|(i, tool)| {
                let mut value = json!({
                    "type": "application",
                    "bom-ref": format!("tool-{i}-{}", tool.name),
                    "name": tool.name,
                    "version": tool.version,
                });
                if !tool.details.is_empty() {
                    value["properties"] = tool
                        .details
                        .iter()
                        .map(|(k, v)| json!({"name": format!("zeroimage:{k}"), "value": v}))
                        .collect();
                }
                value
            })
            .collect();
        json!([{"bom-ref": "formulation", "components": tools}])
    })
}

fn component_json(component: &Component, bom_ref: &str, is_root: bool) -> Value {
    let mut value = json!({
        "type": if is_root { "application" } else { "library" },
        "bom-ref": bom_ref,
        "name": component.name,
        "scope": if component.scope == Scope::Runtime { "required" } else { "excluded" },
    });
    let object = value.as_object_mut().expect("a JSON object");
    if !component.version.is_empty() {
        object.insert("version".into(), json!(component.version));
    }
    if let Some(purl) = component.purl() {
        object.insert("purl".into(), json!(purl));
    }
    if let Some(sha256) = component.sha256_hex() {
        object.insert(
            "hashes".into(),
            json!([{"alg": "SHA-256", "content": sha256}]),
        );
    }
    match component.declared_license() {
        Some(License::Expression { expression, .. }) => {
            object.insert("licenses".into(), json!([{ "expression": expression }]));
        }
        Some(License::Text(text)) => {
            object.insert("licenses".into(), json!([{ "license": { "name": text } }]));
        }
        None => {}
    }
    let authors: Vec<Value> = component
        .authors
        .iter()
        .map(|a| split_author(a))
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, email)| match email {
            Some(email) => json!({"name": name, "email": email}),
            None => json!({"name": name}),
        })
        .collect();
    if !authors.is_empty() {
        object.insert("authors".into(), Value::Array(authors));
    }
    if let Some(description) = &component.description {
        object.insert(
            "description".into(),
            json!(crate::util::sanitize::outside(description, 1000)),
        );
    }
    let mut references = Vec::new();
    if let Some(url) = component.homepage.as_deref().and_then(uri::web) {
        references.push(json!({"type": "website", "url": url}));
    }
    if let Some(url) = component.repository.as_deref().and_then(uri::web) {
        references.push(json!({"type": "vcs", "url": url}));
    }
    if let Some(url) = component.download_location().as_deref().and_then(uri::web) {
        references.push(json!({"type": "distribution", "url": url}));
    }
    if !references.is_empty() {
        object.insert("externalReferences".into(), Value::Array(references));
    }
    if let Some(vcs) = &component.vcs {
        object.insert("pedigree".into(), json!({"commits": [{"uid": vcs.commit}]}));
    }
    let mut properties = Vec::new();
    if !component.features.is_empty() {
        properties
            .push(json!({"name": "zeroimage:features", "value": component.features.join(",")}));
    }
    if let Some(sum) = &component.go_sum {
        properties.push(json!({"name": "zeroimage:go-sum", "value": sum}));
    }
    if let Some(replacement) = &component.replaced_by {
        properties.push(json!({"name": "zeroimage:replaced-by", "value": replacement}));
    }
    if let Some(vcs) = &component.vcs {
        properties.push(json!({"name": "zeroimage:vcs-dirty", "value": vcs.dirty.to_string()}));
    }
    if !properties.is_empty() {
        object.insert("properties".into(), Value::Array(properties));
    }
    value
}

fn hashes_of_digest(digest: &Digest) -> Value {
    let alg = match digest.algorithm() {
        Algorithm::Sha256 => "SHA-256",
        Algorithm::Sha512 => "SHA-512",
    };
    json!([{"alg": alg, "content": digest.hex()}])
}

/// A unique reference per component: its purl, else ecosystem, name and version.
fn component_refs(inventory: &Inventory) -> Vec<String> {
    let bases = inventory.components.iter().map(|c| {
        c.purl().unwrap_or_else(|| {
            let ecosystem = match c.ecosystem {
                super::Ecosystem::Cargo => "cargo",
                super::Ecosystem::Go => "go",
            };
            format!("{ecosystem}:{}@{}", c.name, c.version)
        })
    });
    unique_ids(
        bases,
        "#",
        &["image", "program", "base-image", "formulation"],
    )
}
