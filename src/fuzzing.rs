//! Entry points for the fuzz targets in `fuzz/` and their regression test: one function per parser of
//! outside input, taking raw bytes. None of them may panic, abort, hang or exhaust memory whatever the
//! bytes are; errors are expected and ignored. Where a parser has a property that must hold (a
//! reference prints back to itself, two readers of the same ELF bytes agree), it is asserted here.

use std::io::{self, Cursor};
use std::path::Path;

use crate::cargo::settings::Settings;
use crate::image::ImageTree;
use crate::image::blobs::BlobSource;
use crate::image::reference::Reference;
use crate::layout::read::ArchiveSource;
use crate::registry::credentials::{self, Found};

/// A fuzz target's entry point.
pub type Entry = fn(&[u8]);

/// Every target: its name (the directory names under `fuzz/`) and entry point.
pub const TARGETS: &[(&str, Entry)] = &[
    ("elf", elf),
    ("archive", archive),
    ("reference", reference),
    ("challenge", challenge),
    ("credentials", credentials),
    ("settings", settings),
    ("layer", layer),
    ("signature", signature),
];

/// The ELF inspector, on a slice and through the read cache `inspect` uses for files: both must give
/// the same answer. Then the readers of cargo auditable's and Go's embedded dependency lists, and the
/// SBOMs written from what they read, which must be JSON.
pub fn elf(data: &[u8]) {
    let direct = crate::assemble::elf::inspect_data(data);
    let cache = object::ReadCache::new(Cursor::new(data));
    let cached = crate::assemble::elf::inspect_data(&cache);
    assert_eq!(direct, cached, "slice and read cache disagree");
    if let Ok(info) = direct {
        let _ = info.linkage.describe_needs();
        let _ = info.platform.to_string();
    }
    // The embedded dependency lists an SBOM is read from, through the same read cache.
    let auditable = crate::sbom::auditable::read(&cache);
    let go = crate::sbom::gobuild::read(&cache);
    let _ = crate::sbom::gobuild::read(data);
    for inventory in [auditable, go].into_iter().filter_map(|r| r.ok().flatten()) {
        sboms_are_json(&inventory);
    }
}

/// Writes both SBOMs of `inventory` and reads them back as JSON.
fn sboms_are_json(inventory: &crate::sbom::Inventory) {
    use crate::sbom::{DocumentKind, ImageSubject, ProgramFile};
    let Ok(name) = "fuzz/app:1".parse::<Reference>() else {
        return;
    };
    let Ok(platform) = crate::oci::platform::Platform::linux("amd64", None) else {
        return;
    };
    let digest = crate::oci::Digest::of(b"");
    let program = ProgramFile::new("/app", &digest, 0);
    let subject = ImageSubject {
        name: &name,
        manifest_digest: &digest,
        platform: &platform,
        base: None,
        program: &program,
        created: crate::util::timestamp::Timestamp::EPOCH,
    };
    for kind in [DocumentKind::Spdx, DocumentKind::CycloneDx] {
        let bytes = crate::sbom::document(kind, &subject, inventory);
        assert!(
            serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(),
            "an SBOM that is not JSON"
        );
    }
}

/// A base image's layer applied by `RootFs::scan`: the first byte picks the compression (0 none,
/// 1 gzip, 2 zstd), the rest is the blob. Every path the index lists must be found again by a lookup,
/// and the loader check must run on it.
pub fn layer(data: &[u8]) {
    use crate::oci::{Compression, Descriptor, Digest, MediaType};
    let Some((&selector, blob)) = data.split_first() else {
        return;
    };
    let compression = match selector % 3 {
        0 => Compression::None,
        1 => Compression::Gzip,
        _ => Compression::Zstd,
    };
    let digest = Digest::of(blob);
    let descriptor = Descriptor::new(
        MediaType::OciLayer(compression),
        digest.clone(),
        blob.len() as u64,
    );
    let mut memory = crate::image::blobs::Memory::new();
    memory.insert(digest, blob.to_vec());
    let mut keep = crate::assemble::loader::LOADER_FILES.to_vec();
    keep.extend(crate::assemble::essentials::BASE_FILES);
    let Ok(rootfs) = crate::assemble::rootfs::RootFs::scan(
        &memory,
        &[descriptor],
        &keep,
        &crate::util::cancel::CancelToken::new(),
    ) else {
        return;
    };
    for entry in rootfs.entries().take(10_000) {
        if !entry.path.contains('\u{FFFD}') {
            let found = rootfs.lookup(&entry.path).map(|e| e.path);
            assert_eq!(
                found.as_deref(),
                Some(entry.path.as_str()),
                "an indexed path is lost"
            );
        }
        let _ = rootfs.resolve(&entry.path);
    }
    let _ = rootfs.file("/etc/passwd");
    let linkage = crate::assemble::elf::Linkage::Dynamic {
        interpreter: Some("/lib64/ld-linux-x86-64.so.2".to_owned()),
        needed: vec!["libc.so.6".to_owned()],
        rpath: vec!["$ORIGIN/../lib".to_owned()],
        runpath: Vec::new(),
    };
    if let Ok(platform) = crate::oci::platform::Platform::linux("amd64", None) {
        let _ = crate::assemble::loader::check_dynamic(
            &linkage,
            "/app/bin/app",
            None,
            &rootfs,
            &platform,
        );
    }
    let _ = crate::assemble::essentials::Essentials {
        nonroot: true,
        ..Default::default()
    }
    .layer_on(Some(&rootfs));
}

/// The archive reader: the tar walk, index.json, image indexes, manifests and blob reads. The bytes
/// are read as they are, then once more with every header checksum corrected, so that mutations of
/// headers reach the code behind the checksum test.
pub fn archive(data: &[u8]) {
    read_archive(data);
    let mut repaired = data.to_vec();
    repair_checksums(&mut repaired);
    if repaired != data {
        read_archive(&repaired);
    }
}

fn read_archive(data: &[u8]) {
    let Ok(source) = ArchiveSource::from_bytes(
        Path::new("fuzz.tar"),
        data,
        &crate::util::cancel::CancelToken::new(),
    ) else {
        return;
    };
    let _ = source.select(Some("latest"));
    let Ok(top) = source.select(None) else { return };
    let Ok(tree) = ImageTree::read(&source, &top.descriptor) else {
        return;
    };
    let _ = tree.top_bytes();
    for node in &tree.manifests {
        let _ = crate::image::read_config(&source, node);
    }
    for blob in tree.blobs() {
        if let Ok(mut blob) = source.open(blob) {
            let _ = io::copy(&mut blob, &mut io::sink());
        }
    }
}

/// Rewrites the checksum of each header found by following the headers' size fields.
fn repair_checksums(data: &mut [u8]) {
    const BLOCK: usize = 512;
    let mut at = 0usize;
    while let Some(block) = data.get_mut(at..at + BLOCK) {
        if block.iter().all(|&b| b == 0) {
            return;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let Ok(size) = tar::Header::from_byte_slice(block).entry_size() else {
            return;
        };
        let Some(next) = usize::try_from(size.div_ceil(BLOCK as u64))
            .ok()
            .and_then(|blocks| blocks.checked_mul(BLOCK))
            .and_then(|data| data.checked_add(at + BLOCK))
        else {
            return;
        };
        at = next;
    }
}

/// Image reference parsing; a parsed reference must parse back to itself from both printed forms, and
/// a pinnable one (`NAME[:TAG][@DIGEST]`) from those and its pinned form.
pub fn reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = Reference::parse_pinnable(text) {
        let printed = [parsed.full(), parsed.familiar()];
        for printed in printed.iter().chain(parsed.pinned().iter()) {
            match Reference::parse_pinnable(printed) {
                Ok(again) => {
                    let both = (again.name(), again.digest());
                    assert_eq!(
                        both,
                        (parsed.name(), parsed.digest()),
                        "`{text}` as `{printed}`"
                    );
                }
                Err(e) => panic!("`{text}` printed as `{printed}`, which does not parse: {e}"),
            }
        }
    }
    let Ok(parsed) = text.parse::<Reference>() else {
        return;
    };
    for printed in [parsed.full(), parsed.familiar()] {
        match printed.parse::<Reference>() {
            Ok(again) => assert_eq!(again, parsed, "`{text}` printed as `{printed}`"),
            Err(e) => panic!("`{text}` printed as `{printed}`, which does not parse: {e}"),
        }
    }
}

/// `WWW-Authenticate` header parsing.
pub fn challenge(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (kind, params) = crate::registry::transport::auth::parse_challenge(&text);
    let _ = kind.to_ascii_lowercase();
    let _ = (params.get("realm"), params.get("service"));
}

/// Registries looked up in each credentials file; the fuzzer finds keys that match them through the
/// comparisons it observes.
const REGISTRIES: &[&str] = &[
    "docker.io",
    "ghcr.io",
    "localhost:5000",
    "registry.example.com",
];

/// Docker's config.json / containers' auth.json for a few registries (without running helpers: the
/// helper name is checked as it would be before running it), and the same bytes as what a credential
/// helper prints.
pub fn credentials(data: &[u8]) {
    for registry in REGISTRIES {
        match credentials::find_in_config(data, registry, Path::new("config.json")) {
            Ok(Some(Found::Helper(helper))) => {
                let _ = credentials::helper_program(&helper);
            }
            Ok(Some(Found::Credential(credential))) => {
                let _ = credential.who();
            }
            Ok(None) | Err(_) => {}
        }
    }
    let _ = credentials::helper_credential(data);
}

/// `[package.metadata.zeroimage]` and `[workspace.metadata.zeroimage]` of a Cargo.toml (TOML, turned
/// into JSON as `cargo metadata` shows it), or a `metadata` value given as JSON; then every check the
/// settings get before a build.
pub fn settings(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (package, workspace) = match text.parse::<toml::Table>() {
        Ok(table) => {
            let Ok(manifest) = serde_json::to_value(table) else {
                return;
            };
            let metadata = |section: &str| {
                manifest
                    .get(section)
                    .and_then(|s| s.get("metadata"))
                    .cloned()
                    .unwrap_or_default()
            };
            (metadata("package"), metadata("workspace"))
        }
        Err(_) => match serde_json::from_str(text) {
            Ok(metadata) => (metadata, serde_json::Value::Null),
            Err(_) => return,
        },
    };
    let manifest = Path::new("/fuzz/Cargo.toml");
    let Ok(package) = Settings::from_metadata(&package, manifest, "package") else {
        return;
    };
    let Ok(workspace) = Settings::from_metadata(&workspace, manifest, "workspace") else {
        return;
    };
    let settings = package.or(workspace);
    if let (Ok(options), Ok(platform)) = (
        settings.image_options(),
        crate::oci::platform::Platform::linux("amd64", None),
    ) {
        let mut spec = crate::assemble::compose::ImageSpec::new(
            platform,
            "/app",
            crate::util::timestamp::Timestamp::EPOCH,
        );
        options.apply_to(&mut spec);
    }
    let _ = settings.essentials();
    let _ = settings.push_patterns();
    let _ = settings.tag_pattern();
    if let Some(created) = &settings.created {
        let _ = crate::util::timestamp::Timestamp::resolve(Some(created));
    }
    for triple in settings.targets.iter().flatten().chain(&settings.target) {
        let _ = crate::oci::platform::Platform::from_target_triple(triple);
    }
}

/// A fixed P-256 key for the signature target (made by `openssl genpkey` for the tests; it guards
/// nothing).
const FUZZ_KEY: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgFaJjp3zXQVtPBETp\n\
MWyO9rJksrl54PDA3gSwBkwqwrOhRANCAAQw2HphvB9TPeS+q8j3F4Rx+kW/KK/V\n\
OdC2BkCp6XNUf6f2LaqQgcQaujipmibNs4xxbCzcGg5pieWUURVJKtbq\n\
-----END PRIVATE KEY-----\n\
";

/// The readers of signing material: key files (private and public; the password is refused, so the
/// key derivation, whose bounds have their own tests, is not run), cosign payloads, DSSE envelopes,
/// in-toto subjects and Sigstore bundles. A signature made over the bytes must verify, and nothing the
/// bytes hold may pass as signed by the fixed key unless the key signed it.
pub fn signature(data: &[u8]) {
    use crate::sign::{PublicKey, SigningKey, bundle, dsse, payload};
    let origin = Path::new("fuzz.key");
    let mut refuse = || Err(crate::error::Error::Interrupted);
    let key = SigningKey::from_pem(FUZZ_KEY, origin, &mut refuse).expect("the fixed key loads");
    let public = key.public_key();
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SigningKey::from_pem(text, origin, &mut refuse);
        let _ = PublicKey::from_pem(text, origin);
    }
    let _ = payload::parse_simple_signing(data);
    let digest = crate::oci::Digest::of(data);
    let _ = dsse::check_statement_subject(data, &digest);
    let _ = dsse::verify_envelope(&public, data);
    let _ = bundle::verify(&public, data, &digest);
    assert!(
        public.verify(data, &key.sign(data)).is_ok(),
        "our own signature fails"
    );
}
