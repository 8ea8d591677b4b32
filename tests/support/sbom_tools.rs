//! The real validators of SBOM and provenance documents (from PyPI, in the test tools' virtual
//! environment scripts/test makes), and a Go program with a module dependency built offline.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{peer_at, root, run_ok, which};

/// The virtual environment scripts/test installs the Python test tools into.
pub fn venv() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent"));
    cache.join("zeroimage-test-tools").join("venv")
}

/// A tool from the virtual environment, else from PATH; `None` after a visible skip.
pub fn venv_tool(tool: &str) -> Option<PathBuf> {
    let in_venv = venv().join("bin").join(tool);
    peer_at(
        tool,
        in_venv.is_file().then_some(in_venv).or_else(|| which(tool)),
    )
}

/// Fails unless `pyspdxtools -i` (spdx-tools) accepts `path` as a valid SPDX document.
pub fn validate_spdx(path: &Path) -> bool {
    let Some(tool) = venv_tool("pyspdxtools") else {
        return false;
    };
    let output = Command::new(tool).arg("-i").arg(path).output().unwrap();
    assert!(
        output.status.success(),
        "pyspdxtools refused {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    true
}

/// Fails unless `path` validates against the CycloneDX 1.6 JSON schema, with cyclonedx-python-lib's
/// strict validator and the schema files it ships.
pub fn validate_cyclonedx(path: &Path) -> bool {
    let python = venv().join("bin/python3");
    let Some(python) = peer_at(
        "cyclonedx-python-lib (in the test tools' virtual environment)",
        python.is_file().then_some(python),
    ) else {
        return false;
    };
    const SCRIPT: &str = "import sys\n\
        from cyclonedx.schema import SchemaVersion\n\
        from cyclonedx.validation.json import JsonStrictValidator\n\
        error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
        print(error if error else 'valid')\n\
        sys.exit(1 if error else 0)\n";
    let output = Command::new(python)
        .args(["-c", SCRIPT])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "CycloneDX 1.6 schema refused {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    true
}

/// Fails unless `path` validates (check-jsonschema) against the SLSA v1 provenance schema in
/// `tests/schemas/`.
pub fn validate_provenance(path: &Path) -> bool {
    let Some(tool) = venv_tool("check-jsonschema") else {
        return false;
    };
    let schema = root().join("tests/schemas/slsa-provenance-v1.schema.json");
    let output = Command::new(tool)
        .arg("--schemafile")
        .arg(&schema)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the SLSA v1 schema refused {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    true
}

/// A static Go program `dir/hello` requiring the module `example.com/greeting v1.2.3`, served by a
/// module proxy made of files in `dir` (no network), and the `h1:` sum go.sum records for it.
pub fn go_program(dir: &Path) -> Option<(PathBuf, String)> {
    let go = super::peer("go")?;
    let python = super::peer("python3")?;
    let proxy = dir.join("proxy/example.com/greeting/@v");
    std::fs::create_dir_all(&proxy).unwrap();
    let module = "module example.com/greeting\n\ngo 1.19\n";
    std::fs::write(proxy.join("list"), "v1.2.3\n").unwrap();
    std::fs::write(
        proxy.join("v1.2.3.info"),
        r#"{"Version":"v1.2.3","Time":"2024-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    std::fs::write(proxy.join("v1.2.3.mod"), module).unwrap();
    let source = "package greeting\n\nfunc Hello() string { return \"hello from a module\" }\n";
    run_ok(
        Command::new(python)
            .args([
                "-c",
                "import sys, zipfile\n\
                 with zipfile.ZipFile(sys.argv[1], 'w') as z:\n\
                 \x20   z.writestr('example.com/greeting@v1.2.3/go.mod', sys.argv[2])\n\
                 \x20   z.writestr('example.com/greeting@v1.2.3/greeting.go', sys.argv[3])\n",
            ])
            .arg(proxy.join("v1.2.3.zip"))
            .arg(module)
            .arg(source),
    );
    let main = dir.join("hello-src");
    std::fs::create_dir_all(&main).unwrap();
    std::fs::write(
        main.join("go.mod"),
        "module example.com/hello\n\ngo 1.19\n\nrequire example.com/greeting v1.2.3\n",
    )
    .unwrap();
    std::fs::write(
        main.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\t\"example.com/greeting\"\n)\n\n\
         func main() { fmt.Println(greeting.Hello()) }\n",
    )
    .unwrap();
    let program = dir.join("hello");
    run_ok(
        Command::new(go)
            .args(["build", "-o"])
            .arg(&program)
            .arg(".")
            .current_dir(&main)
            .env("GOPROXY", format!("file://{}", dir.join("proxy").display()))
            .env("GOFLAGS", "-mod=mod -modcacherw")
            .env("GOSUMDB", "off")
            .env("GONOSUMDB", "*")
            .env("GOPATH", dir.join("gopath"))
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0"),
    );
    let sums = std::fs::read_to_string(main.join("go.sum")).unwrap();
    let sum = sums
        .lines()
        .find(|l| l.starts_with("example.com/greeting v1.2.3 h1:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .expect("go.sum lists the module")
        .to_owned();
    Some((program, sum))
}
