//! Pulling through `RegistrySource`: images pushed to a real distribution registry on 127.0.0.1 (OCI,
//! Docker v2 schema 2 and multi-platform) read back blob for blob, bearer-token auth, retries, the blob
//! cache (hits, corruption, concurrency, `--no-cache`), hostile registries that lie about content, and
//! transfer progress for push and pull.
//!
//! Tests that need their own environment (credentials, the cache directory) run their pulling half in a
//! child process: this test binary again, filtered to the one test, with `ZI_PULL_CHILD` set.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support;
use zeroimage::Context;
use zeroimage::image::blobs::BlobSource;
use zeroimage::image::reference::Reference;
use zeroimage::image::{ImageTree, read_config};
use zeroimage::layout;
use zeroimage::layout::read::ArchiveSource;
use zeroimage::oci::{Descriptor, Digest, MediaType};
use zeroimage::registry::cache::CacheMode;
use zeroimage::registry::client::ClientOptions;
use zeroimage::registry::pull::{PullOptions, RegistrySource};
use zeroimage::registry::push::{self, PushOptions};
use zeroimage::report::{Listener, Progress};
use zeroimage::util::cancel::CancelToken;

use support::http::{Reply, Request, TestServer};
use support::proxy::{Fault, FaultProxy};
use support::registry::{Setup, TestRegistry};
use support::tiny_elf::{self, Machine};
use support::token_server::TokenServer;
use support::{assert_child_passed, isolated_zeroimage, run_ok, stderr_of};

const CHILD: &str = "ZI_PULL_CHILD";

// ---------------------------------------------------------------------------------------------------
// Harness

/// One transfer reported to a [`Recorder`].
#[derive(Clone, Debug, Default)]
struct Transfer {
    verb: String,
    what: String,
    total: u64,
    done: u64,
    finished: bool,
}

/// A listener that keeps every line and transfer.
#[derive(Default)]
struct Recorder {
    lines: Mutex<Vec<String>>,
    transfers: Arc<Mutex<Vec<Transfer>>>,
}

impl Recorder {
    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn transfers(&self) -> Vec<Transfer> {
        self.transfers.lock().unwrap().clone()
    }
}

impl Listener for Recorder {
    fn status(&self, verb: &str, message: &str) {
        self.lines.lock().unwrap().push(format!("{verb} {message}"));
    }
    fn warning(&self, message: &str) {
        self.lines
            .lock()
            .unwrap()
            .push(format!("warning: {message}"));
    }
    fn detail(&self, message: &str) {
        self.lines
            .lock()
            .unwrap()
            .push(format!("detail: {message}"));
    }
    fn progress(&self, verb: &str, what: &str, total: u64) -> Box<dyn Progress + '_> {
        let mut transfers = self.transfers.lock().unwrap();
        transfers.push(Transfer {
            verb: verb.to_owned(),
            what: what.to_owned(),
            total,
            ..Transfer::default()
        });
        Box::new(Recording {
            transfers: self.transfers.clone(),
            index: transfers.len() - 1,
        })
    }
}

struct Recording {
    transfers: Arc<Mutex<Vec<Transfer>>>,
    index: usize,
}

impl Progress for Recording {
    fn advance(&self, bytes: u64) {
        self.transfers.lock().unwrap()[self.index].done += bytes;
    }
    fn rewind(&self, done: u64) {
        self.transfers.lock().unwrap()[self.index].done = done;
    }
    fn finish(&self) {
        self.transfers.lock().unwrap()[self.index].finished = true;
    }
}

/// Pull options with a cache in `cache` and quick retries.
fn options(cache: &Path) -> PullOptions {
    PullOptions {
        client: ClientOptions {
            retries: 3,
            ..ClientOptions::with_timeout(Duration::from_secs(20))
        },
        cache: CacheMode::At(cache.to_owned()),
        ..PullOptions::default()
    }
}

/// An archive of one program (followed by `noise` incompressible bytes, so its layer is about as big).
fn build_archive(dir: &Path, name: &str, noise: usize) -> PathBuf {
    let program = tiny_elf::write(
        dir,
        name,
        &tiny_elf::with_noise(Machine::X86_64, &format!("{name}\n"), noise),
    );
    let archive = dir.join(format!("{name}.tar"));
    run_ok(
        isolated_zeroimage(dir)
            .arg(&program)
            .arg("-o")
            .arg(&archive)
            .arg("-q"),
    );
    archive
}

fn push(dir: &Path, archive: &Path, reference: &str) {
    run_ok(
        isolated_zeroimage(dir)
            .arg("push")
            .arg(archive)
            .arg(reference)
            .arg("-q"),
    );
}

fn read_all(source: &dyn BlobSource, descriptor: &Descriptor) -> Vec<u8> {
    let mut bytes = Vec::new();
    source
        .open(descriptor)
        .unwrap_or_else(|e| panic!("{}: {e}", descriptor.digest))
        .read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", descriptor.digest));
    bytes
}

/// The tree and top descriptor of the archive's one image.
fn archive_tree(archive: &Path) -> (ArchiveSource, ImageTree) {
    let source = ArchiveSource::open(archive, &CancelToken::new()).unwrap();
    let top = source.select(None).unwrap().descriptor.clone();
    let tree = ImageTree::read(&source, &top).unwrap();
    (source, tree)
}

/// Resolves `reference`, reads its tree through the registry, and checks that every config and layer
/// has the bytes the archive has under the same digest.
fn pull_and_compare(
    reference: &Reference,
    options: &PullOptions,
    archive: &Path,
    listener: &dyn Listener,
) -> (Descriptor, ImageTree) {
    let (source, top) = RegistrySource::resolve(reference, options, &Context::new(listener))
        .unwrap_or_else(|e| panic!("resolving {reference}: {e}"));
    let tree = ImageTree::read(&source, &top).unwrap();
    let (original, _) = archive_tree(archive);
    for blob in tree.blobs() {
        assert_eq!(
            read_all(&source, blob),
            read_all(&original, blob),
            "{} differs",
            blob.digest
        );
    }
    for node in &tree.manifests {
        read_config(&source, node).unwrap();
    }
    (top, tree)
}

fn reference(text: &str) -> Reference {
    Reference::parse_pinnable(text).unwrap()
}

/// Runs `test` (this binary's test of that name) again in a child process with `env` and
/// `ZI_PULL_CHILD` set, and a clean credential environment unless `env` says otherwise.
fn run_child(test: &str, home: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = support::this_test_in_child(module_path!(), test);
    cmd.env(CHILD, "1")
        .env("HOME", home)
        .env("DOCKER_CONFIG", home)
        .env("XDG_RUNTIME_DIR", home.join("runtime"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("ZEROIMAGE_CACHE_DIR")
        .env_remove("XDG_CACHE_HOME");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().unwrap()
}

fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn blob_gets(registry: &TestRegistry) -> usize {
    registry.blob_gets()
}

/// Names of the files in the cache's sha256 directory.
fn cached_files(cache: &Path) -> Vec<String> {
    match std::fs::read_dir(cache.join("blobs/sha256")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------------
// A fake registry serving a synthetic image, for registries that misbehave on purpose.

struct FakeImage {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layer: Vec<u8>,
}

impl FakeImage {
    fn new(layer_size: usize) -> FakeImage {
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
                .to_vec();
        let layer: Vec<u8> = (0..layer_size).map(|i| (i * 7 % 251) as u8).collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": Digest::of(&config).to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": Digest::of(&layer).to_string(), "size": layer.len()}],
        })
        .to_string()
        .into_bytes();
        FakeImage {
            manifest,
            config,
            layer,
        }
    }

    fn layer_digest(&self) -> String {
        Digest::of(&self.layer).to_string()
    }

    /// The honest answer to `request`.
    fn answer(&self, request: &Request) -> Reply {
        let path = request.path();
        if path == "/v2/" {
            return Reply::status(200).body("{}");
        }
        if path.starts_with("/v2/fake/app/manifests/") {
            return Reply::status(200)
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .body(self.manifest.clone());
        }
        for blob in [&self.config, &self.layer] {
            if path == format!("/v2/fake/app/blobs/{}", Digest::of(blob)) {
                return Reply::status(200).body(blob.clone());
            }
        }
        Reply::status(404).body(r#"{"errors":[{"code":"NOT_FOUND","message":"no such thing"}]}"#)
    }
}

fn blob_requests(server: &TestServer, digest: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path().ends_with(digest))
        .count()
}

// ---------------------------------------------------------------------------------------------------
// Real registry

#[test]
fn pulls_oci_docker_and_multi_platform_images_by_tag_and_by_digest() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let host = registry.host();
    let listener = Recorder::default();

    // An OCI manifest, as zeroimage pushes it.
    let single = build_archive(dir.path(), "single", 0);
    push(dir.path(), &single, &format!("{host}/oci/app:1"));
    let (_, original) = archive_tree(&single);
    let (top, tree) = pull_and_compare(
        &reference(&format!("{host}/oci/app:1")),
        &options(&cache),
        &single,
        &listener,
    );
    assert_eq!(top.media_type, MediaType::OciManifest);
    assert_eq!(
        (&top.digest, top.size),
        (&original.top.digest, original.top.size),
        "the pushed manifest"
    );
    assert_eq!(tree.top_bytes(), original.top_bytes());
    let pinned = reference(&format!("{host}/oci/app@{}", top.digest));
    let (by_digest, _) = pull_and_compare(&pinned, &options(&cache), &single, &listener);
    assert_eq!(by_digest, top);

    // The same image as Docker v2 schema 2, converted by skopeo.
    run_ok(Command::new(&skopeo).args([
        "copy",
        "-q",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}", single.display()),
        &format!("docker://{host}/docker/app:1"),
    ]));
    let (top, tree) = pull_and_compare(
        &reference(&format!("{host}/docker/app:1")),
        &options(&cache),
        &single,
        &listener,
    );
    assert_eq!(top.media_type, MediaType::DockerManifest);
    let manifest = tree.manifests[0].manifest.value();
    assert_eq!(manifest.config.media_type, MediaType::DockerConfig);
    assert_eq!(manifest.layers[0].media_type, MediaType::DockerLayer);
    let pinned = reference(&format!("{host}/docker/app:1@{}", top.digest));
    assert_eq!(
        pull_and_compare(&pinned, &options(&cache), &single, &listener).0,
        top
    );

    // A multi-platform image: an index over two manifests.
    let (amd, arm) = tiny_elf::two_platform_programs(dir.path());
    let multi = dir.path().join("multi.tar");
    run_ok(
        isolated_zeroimage(dir.path())
            .args(["-q", "--platform-binary"])
            .arg(format!("linux/amd64={}", amd.display()))
            .arg("--platform-binary")
            .arg(format!("linux/arm64={}", arm.display()))
            .arg("-o")
            .arg(&multi),
    );
    push(dir.path(), &multi, &format!("{host}/multi/app:1"));
    let (_, original) = archive_tree(&multi);
    let (top, tree) = pull_and_compare(
        &reference(&format!("{host}/multi/app:1")),
        &options(&cache),
        &multi,
        &listener,
    );
    assert_eq!(top.media_type, MediaType::OciIndex);
    assert_eq!(
        (&top.digest, top.size),
        (&original.top.digest, original.top.size)
    );
    let digests = |t: &ImageTree| -> Vec<Digest> {
        t.manifests
            .iter()
            .map(|m| m.manifest.digest().clone())
            .collect()
    };
    assert_eq!(digests(&tree), digests(&original));
    assert_eq!(tree.manifests.len(), 2);
    let pinned = reference(&format!("{host}/multi/app@{}", top.digest));
    assert_eq!(
        pull_and_compare(&pinned, &options(&cache), &multi, &listener).0,
        top
    );

    // The same as a Docker manifest list.
    run_ok(Command::new(&skopeo).args([
        "copy",
        "-q",
        "--all",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}", multi.display()),
        &format!("docker://{host}/list/app:1"),
    ]));
    let (top, tree) = pull_and_compare(
        &reference(&format!("{host}/list/app:1")),
        &options(&cache),
        &multi,
        &listener,
    );
    assert_eq!(top.media_type, MediaType::DockerManifestList);
    assert_eq!(tree.manifests.len(), 2);
    assert!(
        tree.manifests
            .iter()
            .all(|m| m.descriptor.media_type == MediaType::DockerManifest)
    );
}

#[test]
fn missing_images_are_explained_with_the_registry_and_repository() {
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let host = registry.host();
    let missing = reference(&format!("{host}/none/app:nope"));
    let error = RegistrySource::resolve(
        &missing,
        &options(dir.path()),
        &Context::new(&Recorder::default()),
    )
    .err()
    .unwrap();
    // Typed, so a caller can branch on it.
    match &error {
        zeroimage::Error::Registry(e) => {
            assert_eq!(
                e.kind,
                zeroimage::error::registry::RegistryErrorKind::NotFound
            );
            assert_eq!(e.host, host);
            assert_eq!(e.repository.as_deref(), Some("none/app"));
        }
        other => panic!("not a registry error: {other:?}"),
    }
    let err = error.to_string();
    assert!(
        err.contains(&format!("{host}/none/app"))
            && err.contains("not found (404); check the name and tag")
            && err.contains("MANIFEST_UNKNOWN"),
        "{err}"
    );
}

#[test]
fn bearer_token_pull_with_stored_credentials_and_advice_without_them() {
    if in_child() {
        let listener = Recorder::default();
        let wanted = reference(&var("ZI_PULL_REF"));
        let options = options(Path::new(&var("ZI_PULL_CACHE")));
        match std::env::var("ZI_PULL_EXPECT") {
            Ok(needle) => {
                let err = RegistrySource::resolve(&wanted, &options, &Context::new(&listener))
                    .err()
                    .unwrap()
                    .to_string();
                assert!(err.contains(&needle), "{err}");
                assert!(err.contains(wanted.path()), "names the repository: {err}");
            }
            Err(_) => {
                pull_and_compare(
                    &wanted,
                    &options,
                    Path::new(&var("ZI_PULL_ARCHIVE")),
                    &listener,
                );
            }
        }
        return;
    }
    if support::peer("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tokens = TokenServer::start(dir.path(), "robot", "s3cret", "refresh-me");
    let realm = tokens.realm();
    let Some(registry) = TestRegistry::start(Setup {
        token: Some((&realm, &tokens.cert)),
        ..Setup::default()
    }) else {
        return;
    };
    let host = registry.host();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "robot:s3cret");
    std::fs::write(
        home.join("config.json"),
        format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    let archive = build_archive(dir.path(), "tok", 0);
    let image = format!("{host}/tok/app:1");
    push(&home, &archive, &image);
    let issued = tokens.issued.load(Ordering::SeqCst);

    let cache = dir.path().join("cache");
    let output = run_child(
        "bearer_token_pull_with_stored_credentials_and_advice_without_them",
        &home,
        &[
            ("ZI_PULL_REF", &image),
            ("ZI_PULL_CACHE", cache.to_str().unwrap()),
            ("ZI_PULL_ARCHIVE", archive.to_str().unwrap()),
        ],
    );
    assert_child_passed(&output);
    assert!(
        tokens.issued.load(Ordering::SeqCst) > issued,
        "a pull token"
    );

    let anonymous = dir.path().join("anonymous");
    std::fs::create_dir(&anonymous).unwrap();
    let output = run_child(
        "bearer_token_pull_with_stored_credentials_and_advice_without_them",
        &anonymous,
        &[
            ("ZI_PULL_REF", &image),
            ("ZI_PULL_CACHE", cache.to_str().unwrap()),
            (
                "ZI_PULL_EXPECT",
                &format!("{host} requires authentication; log in with `zeroimage login {host}`"),
            ),
        ],
    );
    assert_child_passed(&output);
}

#[test]
fn a_pull_is_retried_after_a_500() {
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let archive = build_archive(dir.path(), "retry", 0);
    push(
        dir.path(),
        &archive,
        &format!("{}/retry/app:1", registry.host()),
    );
    let proxy = FaultProxy::start(registry.port, Fault::Error500Once);
    let listener = Recorder::default();
    pull_and_compare(
        &reference(&format!("{}/retry/app:1", proxy.host())),
        &options(&dir.path().join("cache")),
        &archive,
        &listener,
    );
    assert_eq!(proxy.injected.load(Ordering::SeqCst), 1);
    assert!(
        listener
            .lines()
            .iter()
            .any(|l| l.starts_with("Retrying ") && l.contains("HTTP 500")),
        "{:?}",
        listener.lines()
    );
}

#[test]
fn a_second_pull_reads_blobs_from_the_cache_and_a_corrupted_entry_is_fetched_again() {
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let archive = build_archive(dir.path(), "cached", 1 << 20);
    let image = reference(&format!("{}/cached/app:1", registry.host()));
    push(dir.path(), &archive, &image.full());
    let before = blob_gets(&registry);

    let (_, tree) = pull_and_compare(&image, &options(&cache), &archive, &Recorder::default());
    let first = blob_gets(&registry) - before;
    assert_eq!(first, 2, "config and layer fetched once each");
    let mut expected: Vec<String> = tree
        .blobs()
        .iter()
        .map(|b| b.digest.hex().to_owned())
        .collect();
    expected.sort();
    let mut files = cached_files(&cache);
    files.sort();
    assert_eq!(
        files, expected,
        "the cache holds exactly the blobs, no partial file"
    );

    let listener = Recorder::default();
    pull_and_compare(&image, &options(&cache), &archive, &listener);
    assert_eq!(
        blob_gets(&registry) - before,
        first,
        "no blob GET the second time"
    );
    assert!(
        listener
            .lines()
            .iter()
            .any(|l| l.contains("from the cache")),
        "{:?}",
        listener.lines()
    );

    // A cache file damaged on disk is noticed, removed and fetched again.
    let layer = &tree.manifests[0].manifest.value().layers[0];
    let path = cache.join(layer.digest.blob_path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    let listener = Recorder::default();
    pull_and_compare(&image, &options(&cache), &archive, &listener);
    assert_eq!(
        blob_gets(&registry) - before,
        first + 1,
        "only the layer again"
    );
    assert!(
        listener
            .lines()
            .iter()
            .any(|l| l.starts_with("warning: cached blob") && l.contains("was corrupt")),
        "{:?}",
        listener.lines()
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        read_all(&archive_tree(&archive).0, layer),
        "the entry was replaced"
    );
}

#[test]
fn threads_and_processes_fetching_the_same_blob_at_once_all_succeed() {
    if in_child() {
        let options = options(Path::new(&var("ZI_PULL_CACHE")));
        pull_and_compare(
            &reference(&var("ZI_PULL_REF")),
            &options,
            Path::new(&var("ZI_PULL_ARCHIVE")),
            &Recorder::default(),
        );
        return;
    }
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let archive = build_archive(dir.path(), "shared", 12 << 20);
    let image = format!("{}/shared/app:1", registry.host());
    push(dir.path(), &archive, &image);

    let cache = dir.path().join("threads");
    std::thread::scope(|scope| {
        let pulls: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    pull_and_compare(
                        &reference(&image),
                        &options(&cache),
                        &archive,
                        &Recorder::default(),
                    )
                })
            })
            .collect();
        for pull in pulls {
            pull.join().unwrap();
        }
    });
    assert_eq!(cached_files(&cache).len(), 2, "{:?}", cached_files(&cache));

    let cache = dir.path().join("processes");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            let (image, cache, archive) = (image.clone(), cache.clone(), archive.clone());
            let home = home.clone();
            std::thread::spawn(move || {
                run_child(
                    "threads_and_processes_fetching_the_same_blob_at_once_all_succeed",
                    &home,
                    &[
                        ("ZI_PULL_REF", &image),
                        ("ZI_PULL_CACHE", cache.to_str().unwrap()),
                        ("ZI_PULL_ARCHIVE", archive.to_str().unwrap()),
                    ],
                )
            })
        })
        .collect();
    for child in children {
        assert_child_passed(&child.join().unwrap());
    }
    assert_eq!(cached_files(&cache).len(), 2, "{:?}", cached_files(&cache));
}

#[test]
fn no_cache_pulls_into_a_private_directory_removed_afterwards() {
    if in_child() {
        let shared = PathBuf::from(var("ZEROIMAGE_CACHE_DIR"));
        let wanted = reference(&var("ZI_PULL_REF"));
        let archive = PathBuf::from(var("ZI_PULL_ARCHIVE"));
        let private = PullOptions {
            cache: CacheMode::Private,
            ..options(&shared)
        };
        let listener = Recorder::default();
        let (source, top) =
            RegistrySource::resolve(&wanted, &private, &Context::new(&listener)).unwrap();
        let tree = ImageTree::read(&source, &top).unwrap();
        for blob in tree.blobs() {
            read_all(&source, blob);
        }
        let dir = source.cache().dir().to_owned();
        assert!(!dir.starts_with(&shared), "{}", dir.display());
        assert!(dir.join("blobs/sha256").is_dir());
        drop(source);
        assert!(!dir.exists(), "the private cache is removed");
        assert!(
            cached_files(&shared).is_empty(),
            "nothing in the user's cache"
        );

        // The user's cache is where ZEROIMAGE_CACHE_DIR says.
        let user = PullOptions {
            cache: CacheMode::User,
            ..options(&shared)
        };
        pull_and_compare(&wanted, &user, &archive, &listener);
        assert_eq!(cached_files(&shared).len(), 2);
        return;
    }
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let archive = build_archive(dir.path(), "private", 0);
    let image = format!("{}/private/app:1", registry.host());
    push(dir.path(), &archive, &image);
    let shared = dir.path().join("shared");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let output = run_child(
        "no_cache_pulls_into_a_private_directory_removed_afterwards",
        &home,
        &[
            ("ZI_PULL_REF", &image),
            ("ZI_PULL_ARCHIVE", archive.to_str().unwrap()),
            ("ZEROIMAGE_CACHE_DIR", shared.to_str().unwrap()),
        ],
    );
    assert_child_passed(&output);
    assert!(
        !home.join(".cache").exists(),
        "ZEROIMAGE_CACHE_DIR replaces ~/.cache/zeroimage"
    );
}

// ---------------------------------------------------------------------------------------------------
// Fake registries

#[test]
fn corrupt_blob_bytes_from_the_registry_are_refused_and_never_cached() {
    let image = Arc::new(FakeImage::new(64 << 10));
    let layer = image.layer_digest();
    let served = image.clone();
    let server = TestServer::start(move |request: &Request| {
        let mut reply = served.answer(request);
        if request.path().ends_with(&served.layer_digest()) {
            reply.body[100] ^= 0xff;
        }
        reply
    });
    let dir = tempfile::tempdir().unwrap();
    let listener = Recorder::default();
    let (source, top) = RegistrySource::resolve(
        &reference(&format!("{}/fake/app:1", server.host())),
        &options(dir.path()),
        &Context::new(&listener),
    )
    .unwrap();
    let tree = ImageTree::read(&source, &top).unwrap();
    read_config(&source, &tree.manifests[0]).unwrap();
    let layer_descriptor = &tree.manifests[0].manifest.value().layers[0];
    let err = source.open(layer_descriptor).err().unwrap().to_string();
    assert!(
        err.contains("served corrupt content")
            && err.contains(&format!("{}/fake/app", server.host())),
        "{err}"
    );
    assert_eq!(
        blob_requests(&server, &layer),
        1,
        "corruption is not retried"
    );
    assert_eq!(
        cached_files(dir.path()),
        [Digest::of(&image.config).hex().to_owned()],
        "only the good config is cached, and no partial file is left"
    );
}

#[test]
fn a_cache_whose_blob_directory_links_elsewhere_is_refused_and_nothing_there_is_touched() {
    let image = Arc::new(FakeImage::new(1024));
    let served = image.clone();
    let server = TestServer::start(move |request: &Request| served.answer(request));
    let dir = tempfile::tempdir().unwrap();
    // `blobs/sha256` of the cache is a link to a directory elsewhere holding files named like the
    // image's blobs, with other bytes: read through the link they would count as corrupt and be removed.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    for blob in [&image.config, &image.layer] {
        std::fs::write(outside.join(Digest::of(blob).hex()), b"someone else's file").unwrap();
    }
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(cache.join("blobs")).unwrap();
    std::os::unix::fs::symlink(&outside, cache.join("blobs/sha256")).unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, tiny_elf::Shape::Static, "hi\n"),
    );
    let out = dir.path().join("app.tar");
    let output = isolated_zeroimage(dir.path())
        .arg(&program)
        .args(["--from", &format!("{}/fake/app:1", server.host()), "-o"])
        .arg(&out)
        .env("ZEROIMAGE_CACHE_DIR", &cache)
        .output()
        .unwrap();
    let err = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&cache.join("blobs/sha256").display().to_string())
            && err.contains("is not a directory"),
        "{err}"
    );
    assert!(!out.exists());
    for blob in [&image.config, &image.layer] {
        assert_eq!(
            std::fs::read(outside.join(Digest::of(blob).hex())).unwrap(),
            b"someone else's file",
            "a file outside the cache was touched"
        );
    }
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 2);
}

#[test]
fn a_blob_the_registry_lacks_is_named() {
    let image = Arc::new(FakeImage::new(1024));
    let layer = image.layer_digest();
    let served = image.clone();
    let server = TestServer::start(move |request: &Request| {
        if request.path().ends_with(&served.layer_digest()) {
            return Reply::status(404)
                .body(r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}"#);
        }
        served.answer(request)
    });
    let dir = tempfile::tempdir().unwrap();
    let listener = Recorder::default();
    let (source, top) = RegistrySource::resolve(
        &reference(&format!("{}/fake/app:1", server.host())),
        &options(dir.path()),
        &Context::new(&listener),
    )
    .unwrap();
    let tree = ImageTree::read(&source, &top).unwrap();
    let err = match source.open(&tree.manifests[0].manifest.value().layers[0]) {
        Ok(_) => panic!("a missing blob was read"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&format!(
            "{}/fake/app: blob {layer} not found (404); the registry lists it in the image but \
             does not have it: BLOB_UNKNOWN: blob unknown",
            server.host()
        )),
        "{err}"
    );
}

#[test]
fn a_blob_download_answered_500_then_cut_short_is_retried() {
    let image = Arc::new(FakeImage::new(6 << 20));
    let layer = image.layer_digest();
    let served = image.clone();
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let server = TestServer::start(move |request: &Request| {
        let reply = served.answer(request);
        if !request.path().ends_with(&served.layer_digest()) {
            return reply;
        }
        match counter.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::status(500),
            1 => reply.cut_after(1 << 20),
            _ => reply,
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let listener = Recorder::default();
    let (source, top) = RegistrySource::resolve(
        &reference(&format!("{}/fake/app:1", server.host())),
        &options(dir.path()),
        &Context::new(&listener),
    )
    .unwrap();
    let tree = ImageTree::read(&source, &top).unwrap();
    let layer_descriptor = &tree.manifests[0].manifest.value().layers[0];
    assert_eq!(read_all(&source, layer_descriptor), image.layer);
    assert_eq!(blob_requests(&server, &layer), 3);
    let retries: Vec<String> = listener
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("Retrying "))
        .collect();
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert!(
        retries[1].contains("downloading blob sha256:"),
        "the cut-off body: {retries:?}"
    );
    let transfers = listener.transfers();
    assert_eq!(transfers.len(), 1, "{transfers:?}");
    assert_eq!(transfers[0].done, transfers[0].total, "rewound on retry");
    assert!(transfers[0].finished);
}

#[test]
fn manifests_the_registry_does_not_vouch_for_are_refused() {
    let image = Arc::new(FakeImage::new(1024));
    let good = Digest::of(&image.manifest);
    let other = Digest::of(b"another manifest");
    let served = image.clone();
    let claimed = other.clone();
    let server = TestServer::start(move |request: &Request| {
        let reply = served.answer(request);
        match request.path().rsplit('/').next().unwrap_or_default() {
            "lying" => reply.header("Docker-Content-Digest", claimed.to_string()),
            "schema1" => Reply::status(200)
                .header(
                    "Content-Type",
                    "application/vnd.docker.distribution.manifest.v1+prettyjws",
                )
                .body(r#"{"schemaVersion":1,"name":"fake/app","fsLayers":[]}"#),
            "huge" => Reply::status(200)
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .body(vec![b' '; 5 << 20]),
            _ => reply.header(
                "Docker-Content-Digest",
                Digest::of(&served.manifest).to_string(),
            ),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let host = server.host();
    let resolve = |text: &str| {
        RegistrySource::resolve(
            &reference(text),
            &options(dir.path()),
            &Context::new(&Recorder::default()),
        )
        .map(|(_, top)| top)
    };
    let error = |text: &str| resolve(text).err().unwrap().to_string();

    let top = resolve(&format!("{host}/fake/app:1")).unwrap();
    assert_eq!(top.digest, good);
    assert_eq!(top.media_type, MediaType::OciManifest);
    assert_eq!(resolve(&format!("{host}/fake/app@{good}")).unwrap(), top);

    let err = error(&format!(
        "{host}/fake/app@{}",
        Digest::of(b"pinned elsewhere")
    ));
    assert!(
        err.contains(&format!(
            "{host}/fake/app: the registry served other content for {}",
            Digest::of(b"pinned elsewhere")
        )),
        "{err}"
    );
    let err = error(&format!("{host}/fake/app:lying"));
    assert!(
        err.contains(&format!("the registry served other content for {other}")),
        "{err}"
    );
    let err = error(&format!("{host}/fake/app:schema1"));
    assert!(err.contains("Docker schema 1 manifest"), "{err}");
    let err = error(&format!("{host}/fake/app:huge"));
    assert!(err.contains("larger than 4 MiB"), "{err}");
}

#[test]
fn a_registry_that_wants_a_login_says_so() {
    let server = support::http::TestServer::start(support::fake_registry::handler(
        support::fake_registry::Behaviour {
            basic: Some(("user".into(), "password".into())),
            ..Default::default()
        },
    ));
    let dir = tempfile::tempdir().unwrap();
    let host = server.host();
    let err = RegistrySource::resolve(
        &reference(&format!("{host}/locked/app:1")),
        &options(dir.path()),
        &Context::new(&Recorder::default()),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains(&format!("{host}/locked/app"))
            && err.contains(&format!(
                "{host} requires authentication; log in with `zeroimage login {host}`"
            )),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------------
// Progress

#[test]
fn large_transfers_report_progress_when_pushing_and_pulling() {
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let archive = build_archive(dir.path(), "progress", 6 << 20);
    let host = registry.host();

    // Without a terminal, `zeroimage push` prints a status line per quarter of a large upload.
    let output = run_ok(
        isolated_zeroimage(dir.path())
            .arg("push")
            .arg(&archive)
            .arg(format!("{host}/progress/whole:1")),
    );
    let err = stderr_of(&output);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.trim_start().starts_with("Uploading sha256:"))
        .collect();
    assert!(lines.len() >= 3, "{err}");
    assert!(
        lines.iter().all(|l| l.contains(" MiB of 6.0 MiB)")),
        "{err}"
    );
    let output = run_ok(
        isolated_zeroimage(dir.path())
            .arg("push")
            .arg(&archive)
            .arg(format!("{host}/progress/quiet:1"))
            .arg("-q"),
    );
    assert!(
        !stderr_of(&output).contains("Uploading"),
        "{}",
        stderr_of(&output)
    );

    // A chunked upload reports its progress too.
    let listener = Recorder::default();
    let options_chunked = PushOptions {
        monolithic_limit: 1 << 20,
        chunk_size: 2 << 20,
        ..PushOptions::default()
    };
    push::push(
        &layout::open(&archive, None, &CancelToken::new()).unwrap(),
        &[format!("{host}/progress/chunked:1").parse().unwrap()],
        &options_chunked,
        &Context::new(&listener),
    )
    .unwrap();
    let transfers = listener.transfers();
    assert_eq!(transfers.len(), 1, "only the large layer: {transfers:?}");
    assert_eq!(transfers[0].verb, "Uploading");
    assert!(transfers[0].what.starts_with("sha256:"), "{transfers:?}");
    assert!(transfers[0].total > 6 << 20);
    assert_eq!(transfers[0].done, transfers[0].total);
    assert!(transfers[0].finished);

    // And a pull.
    let listener = Recorder::default();
    pull_and_compare(
        &reference(&format!("{host}/progress/whole:1")),
        &options(&dir.path().join("cache")),
        &archive,
        &listener,
    );
    let transfers = listener.transfers();
    assert_eq!(transfers.len(), 1, "only the large layer: {transfers:?}");
    assert_eq!(transfers[0].verb, "Downloading");
    assert_eq!(transfers[0].done, transfers[0].total);
    assert!(transfers[0].finished);
}
