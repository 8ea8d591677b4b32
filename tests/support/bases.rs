//! Base images made in the tests, never downloaded: umoci builds OCI layouts from files of this machine
//! (busybox-static, the host's own loader and libc), skopeo turns them into oci-archives,
//! docker-archives and registry images.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::run_ok;

/// What goes into a test base besides busybox.
pub const MARKER: &str = "/etc/base-marker";
pub const MARKER_TEXT: &str = "hello from the base";
pub const BASE_USER: &str = "app";
pub const BASE_UID: &str = "1000";

/// The tools a base needs, or `None` after a visible skip.
pub fn tools() -> Option<(PathBuf, PathBuf)> {
    let umoci = super::peer("umoci")?;
    let skopeo = super::peer("skopeo")?;
    super::peer_at(
        "busybox (Debian package busybox-static)",
        Path::new("/bin/busybox")
            .is_file()
            .then(|| PathBuf::from("/bin/busybox")),
    )?;
    Some((umoci, skopeo))
}

/// Files under `root` (a staging directory) become one layer of `image` in `layout`.
fn insert(umoci: &Path, layout: &Path, image: &str, root: &Path) {
    run_ok(
        Command::new(umoci)
            .arg("insert")
            .arg("--image")
            .arg(format!("{}:{image}", layout.display()))
            .arg(root)
            .arg("/"),
    );
}

fn config(umoci: &Path, layout: &Path, image: &str, args: &[&str]) {
    run_ok(
        Command::new(umoci)
            .arg("config")
            .arg("--image")
            .arg(format!("{}:{image}", layout.display()))
            .args(args),
    );
}

/// A new image `image` in the layout at `layout` (created when missing).
fn new_image(umoci: &Path, layout: &Path, image: &str) {
    if !layout.join("index.json").exists() {
        run_ok(Command::new(umoci).arg("init").arg("--layout").arg(layout));
    }
    run_ok(
        Command::new(umoci)
            .arg("new")
            .arg("--image")
            .arg(format!("{}:{image}", layout.display())),
    );
}

/// A base of one layer, the files staged under `stage`, in the OCI layout `dir/NAME-layout`, tag
/// `latest` (umoci keeps their modes and links).
pub fn layout_of(umoci: &Path, dir: &Path, name: &str, stage: &Path) -> PathBuf {
    let layout = dir.join(format!("{name}-layout"));
    new_image(umoci, &layout, "latest");
    insert(umoci, &layout, "latest", stage);
    layout
}

/// A busybox base in the OCI layout `dir/layout`, tag `latest`: two layers (busybox; then /etc files:
/// passwd and group with user `app` (1000), a marker file, a CA bundle with `ca` copied in), Env
/// `GREETING=from the base` and PATH, User `app`, WorkingDir /srv, a label, a volume, port 80.
pub fn busybox_layout(umoci: &Path, dir: &Path, ca_bundle: Option<&Path>) -> PathBuf {
    let layout = dir.join("layout");
    new_image(umoci, &layout, "latest");
    let first = dir.join("root-busybox");
    std::fs::create_dir_all(first.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", first.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", first.join("bin/sh")).unwrap();
    insert(umoci, &layout, "latest", &first);
    let second = dir.join("root-etc");
    std::fs::create_dir_all(second.join("etc/ssl/certs")).unwrap();
    std::fs::create_dir_all(second.join("srv")).unwrap();
    std::fs::write(
        second.join("etc/passwd"),
        format!(
            "root:x:0:0:root:/root:/bin/sh\n{BASE_USER}:x:{BASE_UID}:{BASE_UID}:app:/srv:/bin/sh\n"
        ),
    )
    .unwrap();
    std::fs::write(
        second.join("etc/group"),
        format!("root:x:0:\n{BASE_USER}:x:{BASE_UID}:\n"),
    )
    .unwrap();
    std::fs::write(second.join(MARKER.trim_start_matches('/')), MARKER_TEXT).unwrap();
    if let Some(bundle) = ca_bundle {
        std::fs::copy(bundle, second.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    }
    insert(umoci, &layout, "latest", &second);
    config(
        umoci,
        &layout,
        "latest",
        &[
            "--config.env",
            "GREETING=from the base",
            "--config.env",
            "PATH=/bin:/usr/bin",
            "--config.user",
            BASE_USER,
            "--config.workingdir",
            "/srv",
            "--config.label",
            "org.example.base=busybox",
            "--config.volume",
            "/data",
            "--config.exposedports",
            "80/tcp",
        ],
    );
    layout
}

/// Copies `image` of the layout to `dest` with skopeo (`oci-archive:PATH:TAG`, `docker-archive:...`,
/// `oci:DIR:TAG`, `docker://...`), with `extra` flags.
pub fn copy(skopeo: &Path, layout: &Path, image: &str, dest: &str, extra: &[&str]) {
    run_ok(
        Command::new(skopeo)
            .args(["copy", "-q"])
            .args(extra)
            .arg(format!("oci:{}:{image}", layout.display()))
            .arg(dest),
    );
}

/// The host's dynamic loader and C library for `program` (what `ldd` lists), copied (links resolved)
/// into a layer of a new image `glibc` in `dir/glibc-layout`; with `with_libc` false, only busybox.
pub fn glibc_layout(umoci: &Path, dir: &Path, program: &Path, with_libc: bool) -> PathBuf {
    let layout = dir.join(if with_libc {
        "glibc-layout"
    } else {
        "nolibc-layout"
    });
    new_image(umoci, &layout, "latest");
    let root = dir.join(if with_libc {
        "root-glibc"
    } else {
        "root-nolibc"
    });
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    if with_libc {
        for file in ldd_files(program) {
            let dest = root.join(file.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(&file, &dest).unwrap();
        }
    }
    insert(umoci, &layout, "latest", &root);
    layout
}

/// The files `ldd` says `program` loads: its interpreter and libraries, as absolute paths.
pub fn ldd_files(program: &Path) -> Vec<String> {
    let output = run_ok(Command::new("ldd").arg(program));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_owned())
        })
        .collect()
}

/// An image tagged `arch` in `layout`, labelled linux/`arch`, holding `/etc/base-marker` saying its
/// architecture, with `BASE_ARCH=arch` in its environment (staged under `dir`).
pub fn arch_image(umoci: &Path, layout: &Path, dir: &Path, arch: &str) {
    new_image(umoci, layout, arch);
    let root = dir.join(format!("root-{arch}"));
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/base-marker"), format!("{arch} base")).unwrap();
    insert(umoci, layout, arch, &root);
    config(
        umoci,
        layout,
        arch,
        &[
            "--architecture",
            arch,
            "--os",
            "linux",
            "--config.env",
            &format!("BASE_ARCH={arch}"),
        ],
    );
}

/// A multi-platform base in `dir/multi-layout`, image `multi`: an OCI image index over an amd64 and an
/// arm64 image, each holding `/etc/base-marker` saying its architecture. umoci makes the two images;
/// the index blob is written here, as `docker buildx` would.
pub fn multi_platform_layout(umoci: &Path, dir: &Path) -> PathBuf {
    use zeroimage::oci::Digest;
    let layout = dir.join("multi-layout");
    for arch in ["amd64", "arm64"] {
        arch_image(umoci, &layout, dir, arch);
    }
    let index_path = layout.join("index.json");
    let mut top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let mut manifests = Vec::new();
    for descriptor in top["manifests"].as_array().unwrap() {
        let arch = descriptor["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut entry = serde_json::json!({
            "mediaType": descriptor["mediaType"],
            "digest": descriptor["digest"],
            "size": descriptor["size"],
            "platform": {"architecture": arch, "os": "linux"},
        });
        if arch == "arm64" {
            entry["platform"]["variant"] = "v8".into();
        }
        manifests.push(entry);
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    let digest = Digest::of(&index);
    std::fs::write(layout.join(digest.blob_path()), &index).unwrap();
    top["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest.to_string(),
            "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
    std::fs::write(&index_path, serde_json::to_vec(&top).unwrap()).unwrap();
    layout
}
