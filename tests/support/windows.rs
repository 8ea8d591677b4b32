//! `zeroimage.exe`, the Windows build of the command (x86_64-pc-windows-gnu, linked by mingw-w64), run
//! under wine.
//!
//! Kept between runs: the build, in `target/windows-host` (about 5 minutes cold on 2 cores, then only
//! what changed), and wine's prefix, in `${XDG_CACHE_HOME:-~/.cache}/zeroimage-test-tools/wine`
//! (about 700 MB, made once in about 15 seconds). Rust's standard library on Windows draws its random
//! numbers from `ProcessPrng` in `bcryptprimitives.dll`, which wine 8 does not have: a DLL of that name
//! exporting `ProcessPrng` over `RtlGenRandom` (`SystemFunction036`) is built with mingw-w64 and put
//! beside the .exe, where Windows looks first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::{peer, peers_required, root, target_installed};

/// The Rust target of the Windows build.
pub const TARGET: &str = "x86_64-pc-windows-gnu";

/// mingw-w64's C compiler, which also links the Rust build.
const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";

/// `ProcessPrng` for wine 8 (see the module documentation).
const PROCESS_PRNG: &str = r#"#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
"#;

/// The Windows build of `zeroimage`, ready to run under wine.
pub struct WindowsZeroimage {
    wine: PathBuf,
    exe: PathBuf,
    prefix: PathBuf,
}

impl WindowsZeroimage {
    /// `wine zeroimage.exe`, with wine's own messages silenced and the environment that reaches the
    /// program kept from the machine's credentials (`config_dir` holds an empty docker config).
    pub fn command(&self, config_dir: &Path) -> Command {
        let mut cmd = Command::new(&self.wine);
        cmd.arg(&self.exe)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("DOCKER_CONFIG", windows_path(config_dir))
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("SOURCE_DATE_EPOCH")
            .env("HOME", windows_path(config_dir))
            .env("XDG_RUNTIME_DIR", windows_path(&config_dir.join("runtime")));
        cmd
    }
}

/// `path` (absolute) as a Windows program under wine names it: on drive `Z:`, wine's view of `/`,
/// with `\` between its parts.
pub fn windows_path(path: &Path) -> String {
    assert!(path.is_absolute(), "{} is not absolute", path.display());
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// Builds `zeroimage.exe` and its `ProcessPrng` DLL and makes wine's prefix, once per test process;
/// `None` (with a visible skip) when wine, mingw-w64 or the Rust target is missing.
pub fn zeroimage_exe() -> Option<&'static WindowsZeroimage> {
    static BUILT: OnceLock<Mutex<Option<&'static WindowsZeroimage>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(|| Mutex::new(None))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(built) = *built {
        return Some(built);
    }
    let wine = peer("wine")?;
    peer(MINGW_GCC)?;
    if !target_installed(TARGET) {
        if peers_required() {
            panic!("Rust target {TARGET} is required; run `rustup target add {TARGET}`");
        }
        eprintln!("SKIPPED: Rust target {TARGET} is not installed (rustup target add {TARGET})");
        return None;
    }
    let exe = build_exe();
    build_process_prng(exe.parent().expect("the .exe's directory"));
    let prefix = wine_prefix(&wine);
    let ready: &'static WindowsZeroimage =
        Box::leak(Box::new(WindowsZeroimage { wine, exe, prefix }));
    *built = Some(ready);
    Some(ready)
}

/// `cargo build --target x86_64-pc-windows-gnu --bin zeroimage` into a target dir of its own, without
/// debug information (which only makes the .exe larger and its link slower).
fn build_exe() -> PathBuf {
    // scripts/test keeps it in the test tools' cache, across checkouts.
    let target_dir = std::env::var_os("ZEROIMAGE_WINDOWS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target").join("windows-host"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!(
        "building zeroimage.exe for {TARGET} in {} (about 5 minutes the first time)",
        target_dir.display()
    );
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--target", TARGET, "--bin", "zeroimage"])
        .arg("--manifest-path")
        .arg(root().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .status()
        .expect("running cargo build for Windows");
    assert!(
        status.success(),
        "building zeroimage.exe for {TARGET} failed"
    );
    let exe = target_dir.join(TARGET).join("debug").join("zeroimage.exe");
    assert!(exe.is_file(), "{} missing after the build", exe.display());
    exe
}

/// Builds `bcryptprimitives.dll` in `dir` when it is missing or its source changed.
fn build_process_prng(dir: &Path) {
    let source = dir.join("process_prng.c");
    let dll = dir.join("bcryptprimitives.dll");
    let current = std::fs::read_to_string(&source).is_ok_and(|text| text == PROCESS_PRNG);
    if current && dll.is_file() {
        return;
    }
    std::fs::write(&source, PROCESS_PRNG).expect("writing the ProcessPrng source");
    let output = Command::new(MINGW_GCC)
        .args(["-shared", "-O2", "-s", "-o"])
        .arg(&dll)
        .arg(&source)
        .arg("-ladvapi32")
        .output()
        .expect("running mingw-w64's gcc");
    assert!(
        output.status.success(),
        "building {} failed:\n{}",
        dll.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Wine's prefix in the test tools' cache, made (under a lock, as other test processes may want it
/// at the same time) when it does not exist yet.
fn wine_prefix(wine: &Path) -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME for the test tools' cache");
    let tools = cache.join("zeroimage-test-tools");
    std::fs::create_dir_all(&tools).expect("the test tools' cache");
    let prefix = tools.join("wine");
    let ready = prefix.join("system.reg");
    if ready.is_file() {
        return prefix;
    }
    let lock = std::fs::File::create(tools.join("wine.lock")).expect("wine's lock file");
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("locking");
    if !ready.is_file() {
        eprintln!("making wine's prefix in {}", prefix.display());
        let output = Command::new(wine)
            .args(["wineboot", "--init"])
            .env("WINEPREFIX", &prefix)
            .env("WINEDEBUG", "-all")
            .output()
            .expect("running wineboot");
        // The registry files are written when wine's server ends.
        let waited = Command::new(peer("wineserver").expect("wineserver, of wine"))
            .arg("-w")
            .env("WINEPREFIX", &prefix)
            .status()
            .expect("running wineserver -w");
        assert!(
            output.status.success() && waited.success() && ready.is_file(),
            "wineboot --init failed for {}:\n{}",
            prefix.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    prefix
}
