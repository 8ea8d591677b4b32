//! CycloneDX 1.6 JSON. The BOM's subject (`metadata.component`) is the image, a container whose
//! ancestor is the base image; the program file is a component the image depends on, and the program
//! depends on its root package. Crates compiled in are `required`; build-time crates `excluded` (not
//! part of the program). The compiler goes under `formulation`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{
    Component, ImageSubject, Inventory, Scope, TOOL_NAME, TOOL_VERSION, license_expression,
    split_author, uuid_from, web_url,
};
use crate::oci::{Algorithm, Digest};

pub(super) fn write(subject: &ImageSubject, inventory: &Inventory) -> Vec<u8> {
    let refs = component_refs(inventory);
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
            "name": crate::sanitize::outside(name, 300),
            "hashes": hashes_of_digest(digest),
        }]});
    }

    let mut components = vec![json!({
        "type": "file",
        "bom-ref": "program",
        "name": subject.program.path,
        "hashes": [{"alg": "SHA-256", "content": subject.program.sha256}],
        "properties": [
            {"name": "zeroimage:size", "value": subject.program.size.to_string()},
            {"name": "zeroimage:contents-from", "value": inventory.source.describe()},
        ],
    })];
    for (i, component) in inventory.components.iter().enumerate() {
        components.push(component_json(
            component,
            &refs[i],
            inventory.root == Some(i),
        ));
    }

    let mut dependencies = vec![json!({"ref": "image", "dependsOn": ["program"]})];
    let program_deps: Vec<&str> = match inventory.root {
        Some(root) => vec![refs[root].as_str()],
        None => inventory
            .components
            .iter()
            .enumerate()
            .filter(|(_, c)| c.scope == Scope::Runtime)
            .map(|(i, _)| refs[i].as_str())
            .collect(),
    };
    dependencies.push(json!({"ref": "program", "dependsOn": program_deps}));
    for (i, _) in inventory.components.iter().enumerate() {
        let on: Vec<&str> = inventory
            .edges
            .iter()
            .filter(|e| e.from == i)
            .map(|e| refs[e.to].as_str())
            .collect();
        dependencies.push(json!({"ref": refs[i], "dependsOn": on}));
    }

    let mut bom = json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!(
            "urn:uuid:{}",
            uuid_from(&[&subject.manifest_digest.to_string(), "cyclonedx"])
        ),
        "version": 1,
        "metadata": {
            "timestamp": subject.created.to_string(),
            "tools": {"components": [{
                "type": "application",
                "name": TOOL_NAME,
                "version": TOOL_VERSION,
            }]},
            "component": image,
        },
        "components": components,
        "dependencies": dependencies,
    });
    if !inventory.tools.is_empty() {
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
        bom["formulation"] = json!([{"bom-ref": "formulation", "components": tools}]);
    }
    crate::oci::to_json_bytes(&bom)
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
    if let Some(sha256) = &component.sha256 {
        object.insert(
            "hashes".into(),
            json!([{"alg": "SHA-256", "content": sha256}]),
        );
    }
    if let Some(expression) = component.license.as_deref().and_then(license_expression) {
        object.insert("licenses".into(), json!([{"expression": expression}]));
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
            json!(crate::sanitize::outside(description, 1000)),
        );
    }
    let mut references = Vec::new();
    if let Some(url) = web_url(component.homepage.as_deref()) {
        references.push(json!({"type": "website", "url": url}));
    }
    if let Some(url) = web_url(component.repository.as_deref()) {
        references.push(json!({"type": "vcs", "url": url}));
    }
    if let Some(url) = component.download_location() {
        if web_url(Some(&url)).is_some() {
            references.push(json!({"type": "distribution", "url": url}));
        }
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
    let mut used: BTreeSet<String> = ["image", "program", "base-image", "formulation"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    inventory
        .components
        .iter()
        .map(|c| {
            let base = c.purl().unwrap_or_else(|| {
                let ecosystem = match c.ecosystem {
                    super::Ecosystem::Cargo => "cargo",
                    super::Ecosystem::Go => "go",
                };
                format!("{ecosystem}:{}@{}", c.name, c.version)
            });
            let mut id = base.clone();
            let mut n = 2;
            while !used.insert(id.clone()) {
                id = format!("{base}#{n}");
                n += 1;
            }
            id
        })
        .collect()
}
