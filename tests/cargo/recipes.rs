//! The manual's CI recipes as written (`docs/src/guide/ci.md`): its cargo-make tasks run by real
//! cargo-make, and its GitHub Actions steps that need no GitHub, on a copy of fixtures/hello while
//! CARGO_TARGET_DIR points elsewhere (so no `target/` exists beside the crate, as in a CI that sets it).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;
use support::registry::{Setup, TestRegistry};
use support::{root, run_ok};

/// The manual's page that holds the recipes.
const RECIPES_PAGE: &str = "docs/src/guide/ci.md";

/// The code block between `<!-- recipe: NAME -->` and `<!-- /recipe -->` in [`RECIPES_PAGE`].
fn documented_recipe(name: &str) -> String {
    let page = std::fs::read_to_string(root().join(RECIPES_PAGE)).unwrap();
    let start = format!("<!-- recipe: {name} -->");
    let (_, rest) = page
        .split_once(&start)
        .unwrap_or_else(|| panic!("{RECIPES_PAGE} has no `{start}`"));
    let (section, _) = rest
        .split_once("<!-- /recipe -->")
        .unwrap_or_else(|| panic!("`{start}` is not closed in {RECIPES_PAGE}"));
    let (_, fenced) = section.split_once("```").expect("a code block");
    let (_, code) = fenced
        .split_once('\n')
        .expect("the code block's language line");
    let (code, _) = code.split_once("```").expect("the end of the code block");
    code.to_owned()
}

/// A copy of fixtures/hello, and a CARGO_TARGET_DIR outside it.
fn project(dir: &Path) -> (PathBuf, PathBuf) {
    support::copy_fixture("hello", dir);
    (dir.join("hello"), dir.join("cargo-target"))
}

/// A PATH on which the binaries under test come first, as if installed.
fn path_with_binaries() -> OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(support::bin_dir()).chain(std::env::split_paths(&path)))
        .unwrap()
}

/// The command a documented recipe runs in `crate_dir`: the binaries under test on PATH, cargo's output
/// in `target_dir`, no network for cargo (so cargo-make's `install_crate` could not fetch anything:
/// its check must pass on the binaries), and no credentials of this machine.
fn in_project(program: &str, crate_dir: &Path, target_dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(crate_dir)
        .env("PATH", path_with_binaries())
        .env("CARGO_TARGET_DIR", target_dir)
        .env("CARGO_NET_OFFLINE", "true")
        .env("CARGO_MAKE_DISABLE_UPDATE_CHECK", "1")
        .env("DOCKER_CONFIG", crate_dir.join("no-docker-config"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("IMAGE")
        .env_remove("SOURCE_DATE_EPOCH");
    cmd
}

fn manifest_digest(archive: &Path) -> serde_json::Value {
    support::json_entry(&support::read_tar(archive), "index.json")["manifests"][0]["digest"].clone()
}

#[test]
fn cargo_make_tasks_from_the_manual_build_and_push() {
    if support::peer("cargo-make").is_none() {
        return;
    }
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (crate_dir, target_dir) = project(dir.path());
    std::fs::write(
        crate_dir.join("Makefile.toml"),
        documented_recipe("Makefile.toml"),
    )
    .unwrap();
    let archive = crate_dir.join("target/image.tar");
    support::claim_output(&archive);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());

    run_ok(in_project(&cargo, &crate_dir, &target_dir).args(["make", "image"]));
    assert!(
        archive.is_file(),
        "cargo make image wrote no {}",
        archive.display()
    );
    assert!(
        target_dir.join(support::X86_64_MUSL).is_dir(),
        "cargo built in CARGO_TARGET_DIR"
    );
    assert_eq!(
        support::image_config(&archive)["config"]["Entrypoint"],
        serde_json::json!(["/hello"])
    );

    let image = format!("{}/recipes/hello", registry.host());
    run_ok(
        in_project(&cargo, &crate_dir, &target_dir)
            .env("IMAGE", &image)
            .args(["make", "push-image"]),
    );
    let inspect = run_ok(Command::new(&skopeo).args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{image}:0.1.0"),
    ]));
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["Digest"], manifest_digest(&archive));
}

#[test]
fn github_actions_steps_that_need_no_github_run_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let (crate_dir, target_dir) = project(dir.path());
    let workflow = documented_recipe("github-actions");
    // Installing the tool and anything with a `${{ ... }}` expression need GitHub; the rest runs here.
    let steps: Vec<&str> = workflow
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- run: "))
        .filter(|step| !step.contains("${{") && !step.starts_with("cargo install"))
        .collect();
    assert!(
        steps.iter().any(|s| s.starts_with("cargo zeroimage")),
        "{workflow}"
    );
    support::claim_output(&crate_dir.join("image.tar"));
    for step in steps {
        run_ok(in_project("sh", &crate_dir, &target_dir).args(["-ec", step]));
    }
    let json = std::fs::read(crate_dir.join("image.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(summary["path"], "image.tar");
    assert_eq!(
        summary["manifest_digest"],
        manifest_digest(&crate_dir.join("image.tar"))
    );
}
