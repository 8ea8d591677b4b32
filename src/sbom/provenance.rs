//! SLSA v1 provenance as an in-toto Statement v1: the image digests as subjects, what shaped the build
//! (`externalParameters`), what it used (`resolvedDependencies`: the source commit, Cargo.lock, the
//! base image, the toolchain) and who built it. Times are recorded only when the image's own time is
//! the wall clock (`--created now`): otherwise the statement is as reproducible as the image.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{TOOL_NAME, TOOL_VERSION};
use crate::oci::Digest;
use crate::util::timestamp::Timestamp;

/// The statement's type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SLSA provenance v1.
pub const PREDICATE_TYPE: &str = crate::image::referrers::SLSA_PROVENANCE_V1;
/// `buildType` of a `cargo zeroimage` build.
pub const BUILD_TYPE_CARGO: &str = "https://crates.io/crates/cargo-zeroimage#cargo-zeroimage/v1";
/// `buildType` of a `zeroimage` packaging of existing programs.
pub const BUILD_TYPE_PROGRAM: &str = "https://crates.io/crates/cargo-zeroimage#zeroimage/v1";
/// `builder.id`: this tool, run wherever it was run.
pub const BUILDER_ID: &str = "https://crates.io/crates/cargo-zeroimage";

/// What the job knows about the build, for the provenance statement.
#[derive(Clone, Debug, Default)]
pub struct ProvenanceInputs {
    /// The SLSA build type: a cargo build, or a program packaged as it is.
    pub build_type: String,
    /// The options that shaped the image (target, features, profile, tag ...).
    pub external_parameters: BTreeMap<String, Value>,
    /// In-toto resource descriptors of what the build used.
    pub resolved_dependencies: Vec<Value>,
    /// When the build started; set only when times are recorded (`--created now`).
    pub started: Option<Timestamp>,
}

/// An in-toto resource descriptor: a name, a URI and digests, with annotations.
pub fn resource(
    name: &str,
    uri: Option<&str>,
    digest: &[(&str, &str)],
    annotations: &[(&str, Value)],
) -> Value {
    let mut value = json!({ "name": name });
    if let Some(uri) = uri {
        value["uri"] = json!(uri);
    }
    if !digest.is_empty() {
        let map: BTreeMap<&str, &str> = digest.iter().copied().collect();
        value["digest"] = json!(map);
    }
    if !annotations.is_empty() {
        let map: BTreeMap<&str, &Value> = annotations.iter().map(|(k, v)| (*k, v)).collect();
        value["annotations"] = json!(map);
    }
    value
}

/// The image as a resource: a base image, by name and digest.
pub fn image_resource(name: &str, digest: &Digest) -> Value {
    resource(
        name,
        Some(&format!("oci://{name}")),
        &[(digest.algorithm().as_str(), digest.hex())],
        &[],
    )
}

/// The statement about `subjects` (name and digest), finished at `finished` when times are recorded.
pub(crate) fn write(
    inputs: &ProvenanceInputs,
    subjects: &[(String, &Digest)],
    finished: Option<Timestamp>,
) -> Vec<u8> {
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|(name, digest)| {
            json!({
                "name": name,
                "digest": { digest.algorithm().as_str(): digest.hex() },
            })
        })
        .collect();
    let mut metadata = serde_json::Map::new();
    if let (Some(started), Some(finished)) = (inputs.started, finished) {
        metadata.insert("startedOn".into(), json!(started.to_string()));
        metadata.insert("finishedOn".into(), json!(finished.to_string()));
    }
    let mut run_details = json!({
        "builder": {
            "id": BUILDER_ID,
            "version": { TOOL_NAME: TOOL_VERSION },
        },
    });
    if !metadata.is_empty() {
        run_details["metadata"] = Value::Object(metadata);
    }
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": inputs.build_type,
                "externalParameters": inputs.external_parameters,
                "resolvedDependencies": inputs.resolved_dependencies,
            },
            "runDetails": run_details,
        },
    });
    crate::oci::to_json_bytes(&statement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_only_when_started_is_known() {
        let digest = Digest::of(b"x");
        let mut inputs = ProvenanceInputs {
            build_type: BUILD_TYPE_PROGRAM.to_owned(),
            ..Default::default()
        };
        let quiet: Value =
            serde_json::from_slice(&write(&inputs, &[("app".into(), &digest)], None)).unwrap();
        assert!(quiet["predicate"]["runDetails"].get("metadata").is_none());
        assert_eq!(quiet["subject"][0]["digest"]["sha256"], digest.hex());
        inputs.started = Some(Timestamp::EPOCH);
        let timed: Value = serde_json::from_slice(&write(
            &inputs,
            &[("app".into(), &digest)],
            Some(Timestamp::EPOCH),
        ))
        .unwrap();
        assert_eq!(
            timed["predicate"]["runDetails"]["metadata"]["startedOn"],
            "1970-01-01T00:00:00Z"
        );
    }
}
