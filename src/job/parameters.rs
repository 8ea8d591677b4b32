//! What the provenance statement records of a job's options: the parameters a user gave, as SLSA's
//! `externalParameters`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::JobOptions;
use super::base::BaseRef;
use crate::assemble::essentials::Essentials;
use crate::assemble::options::ImageOptions;
use crate::image::reference::Reference;

/// The options of a job that shape every image (the cargo job adds its build options): the name,
/// base, time and configuration as given.
pub(crate) fn provenance_parameters(
    options: &JobOptions,
    config: &ImageOptions,
    essentials: &Essentials,
    tag: Option<&Reference>,
) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    let mut put = |key: &str, value: Value| {
        let empty = match &value {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Bool(b) => !b,
            _ => false,
        };
        if !empty {
            map.insert(key.to_owned(), value);
        }
    };
    put(
        "tag",
        json!(tag.map(super::super::image::reference::Reference::full)),
    );
    put(
        "base",
        match &options.base {
            Some(BaseRef::Registry(reference)) => json!(reference.full()),
            Some(BaseRef::Archive { path, tag }) => json!(match tag {
                Some(tag) => format!("{}:{tag}", path.display()),
                None => path.display().to_string(),
            }),
            None => Value::Null,
        },
    );
    put("created", json!(options.created.map(|c| c.to_string())));
    put("allowDynamic", json!(options.allow_dynamic));
    put(
        "compression",
        json!(options.compression.map(|c| c.to_string())),
    );
    put("compressionLevel", json!(options.compression_level));
    put(
        "env",
        json!(
            config
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        ),
    );
    put("user", json!(config.user));
    put("workdir", json!(config.workdir));
    put("expose", json!(config.expose));
    put("args", json!(config.args));
    put("entrypointPath", json!(config.entrypoint_path));
    put("caCerts", json!(essentials.ca_certs.is_some()));
    put("nonroot", json!(essentials.nonroot));
    put("tmp", json!(essentials.tmp));
    put("tzdata", json!(essentials.tzdata.is_some()));
    put(
        "include",
        json!(
            essentials
                .include
                .iter()
                .map(|i| format!("{}:{}", i.source.display(), i.dest))
                .collect::<Vec<_>>()
        ),
    );
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::essentials::Source;

    #[test]
    fn compression_and_essentials_are_recorded_as_given() {
        let options = JobOptions {
            compression: Some("zstd".parse().unwrap()),
            compression_level: Some(7),
            ..JobOptions::default()
        };
        let essentials = Essentials {
            ca_certs: Some(Source::Host),
            tzdata: Some(Source::Path("zoneinfo".into())),
            ..Essentials::default()
        };
        let map = provenance_parameters(&options, &ImageOptions::default(), &essentials, None);
        assert_eq!(map["compression"], json!("zstd"), "no level added");
        assert_eq!(map["compressionLevel"], json!(7));
        assert_eq!(map["caCerts"], json!(true));
        assert_eq!(map["tzdata"], json!(true));
        let none = provenance_parameters(
            &JobOptions::default(),
            &ImageOptions::default(),
            &Essentials::default(),
            None,
        );
        assert!(
            ["compression", "compressionLevel", "caCerts", "tzdata"]
                .iter()
                .all(|key| !none.contains_key(*key)),
            "{none:?}"
        );
    }
}
