//! Shared by the test drivers that build a workspace library and run C
//! programs against it (`numakit-capi/tests/c_api.rs`,
//! `numakit-malloc/tests/preload.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>`: the test runs from `target/<profile>/deps/`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps")
        .to_path_buf()
}

/// Build the library of `package` for the test's own profile and target
/// directory (a no-op when cargo already did), from `crate_dir`; panics
/// with cargo's output when the build fails. Returns `target/<profile>`.
pub fn build_library(package: &str, crate_dir: &Path) -> PathBuf {
    let dir = profile_dir();
    let target = dir.parent().expect("target dir").to_path_buf();
    let profile = dir.file_name().unwrap().to_string_lossy().into_owned();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", package, "--lib"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(crate_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running cargo build -p {package}: {e}"));
    assert!(
        out.status.success(),
        "cargo build -p {package} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}
