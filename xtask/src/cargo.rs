//! Talking to cargo: workspace metadata, building the test binaries and
//! examples, and collecting their executables from `--message-format=json`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::cli::VmOptions;
use crate::initramfs::{BinaryKind, GuestBinary};
use crate::Result;

/// Packages whose tests do not run in the guest: this tool itself, the proc
/// macro crate (host only), and the trybuild UI tests (they need cargo, which
/// the guest lacks).
pub const EXCLUDED_PACKAGES: &[&str] = &["xtask", "numakit-macros", "numakit-ui-tests"];

/// What we need from `cargo metadata`.
#[derive(Debug)]
pub struct Metadata {
    /// The shared target directory (`target/`).
    pub target_directory: PathBuf,
    /// Workspace root (cargo runs from here).
    pub workspace_root: PathBuf,
    /// Package name by manifest path, to name artifacts.
    package_by_manifest: HashMap<String, String>,
}

/// The cargo that ran us (`cargo xtask` sets `$CARGO`), else `cargo`.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

impl Metadata {
    /// Runs `cargo metadata --no-deps`.
    pub fn load() -> Result<Self> {
        let output = cargo()
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("running cargo metadata: {e}"))?;
        if !output.status.success() {
            return Err(format!("cargo metadata failed ({})", output.status));
        }
        let json: Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("parsing cargo metadata: {e}"))?;
        let str_field = |name: &str| {
            json[name]
                .as_str()
                .map(PathBuf::from)
                .ok_or_else(|| format!("cargo metadata has no `{name}`"))
        };
        let package_by_manifest = json["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p["manifest_path"].as_str()?.to_string(),
                    p["name"].as_str()?.to_string(),
                ))
            })
            .collect();
        Ok(Self {
            target_directory: str_field("target_directory")?,
            workspace_root: str_field("workspace_root")?,
            package_by_manifest,
        })
    }
}

/// `--features` and `--release` as cargo arguments.
fn build_flags(options: &VmOptions) -> Vec<String> {
    let mut flags = Vec::new();
    for features in &options.features {
        flags.push("--features".into());
        flags.push(features.clone());
    }
    if options.release {
        flags.push("--release".into());
    }
    flags
}

/// One `compiler-artifact` message that has an executable.
#[derive(Debug, PartialEq)]
struct Artifact {
    package: String,
    target: String,
    kinds: Vec<String>,
    test: bool,
    executable: PathBuf,
}

/// Runs a cargo build with `--message-format=json`, streaming cargo's own
/// progress (stderr) and compiler diagnostics, and returns the executables.
fn run_build(metadata: &Metadata, args: &[String]) -> Result<Vec<Artifact>> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let mut child = cargo()
        .args(args)
        .current_dir(&metadata.workspace_root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("running cargo: {e}"))?;
    let stdout = child.stdout.take().ok_or("cargo stdout not captured")?;
    let mut artifacts = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading cargo output: {e}"))?;
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        match message["reason"].as_str() {
            Some("compiler-message") => {
                if let Some(rendered) = message["message"]["rendered"].as_str() {
                    eprint!("{rendered}");
                }
            }
            Some("compiler-artifact") => {
                if let Some(artifact) = parse_artifact(&message, &metadata.package_by_manifest) {
                    artifacts.push(artifact);
                }
            }
            _ => {}
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo {} failed ({status})", args[0]));
    }
    Ok(artifacts)
}

/// Reads one `compiler-artifact` message; `None` when it has no executable.
fn parse_artifact(message: &Value, packages: &HashMap<String, String>) -> Option<Artifact> {
    let executable = PathBuf::from(message["executable"].as_str()?);
    let manifest = message["manifest_path"].as_str().unwrap_or_default();
    let package = packages
        .get(manifest)
        .cloned()
        .unwrap_or_else(|| package_from_id(message["package_id"].as_str().unwrap_or("?")));
    Some(Artifact {
        package,
        target: message["target"]["name"].as_str()?.to_string(),
        kinds: message["target"]["kind"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(String::from))
            .collect(),
        test: message["profile"]["test"].as_bool().unwrap_or(false),
        executable,
    })
}

/// Fallback package name from a package id, both the old
/// (`name 0.1.0 (path+file:///...)`) and the new
/// (`path+file:///x/name#0.1.0`, `...#name@0.1.0`) formats.
fn package_from_id(id: &str) -> String {
    if let Some((url, fragment)) = id.split_once('#') {
        if let Some((name, _version)) = fragment.split_once('@') {
            return name.to_string();
        }
        return url.rsplit('/').next().unwrap_or(url).to_string();
    }
    id.split_whitespace().next().unwrap_or(id).to_string()
}

/// Label shown in markers and the summary, e.g. `numakit/lib`,
/// `numakit-suite/test:topology`, `numakit-suite/example:demo`.
fn label(artifact: &Artifact) -> String {
    let kind = artifact.kinds.first().map(String::as_str).unwrap_or("bin");
    match kind {
        "lib" | "rlib" | "cdylib" | "dylib" | "staticlib" | "proc-macro" => {
            format!("{}/lib", artifact.package)
        }
        _ => format!("{}/{kind}:{}", artifact.package, artifact.target),
    }
}

/// Builds the workspace's test binaries and returns those to run in the guest.
pub fn build_tests(metadata: &Metadata, options: &VmOptions) -> Result<Vec<GuestBinary>> {
    let mut args: Vec<String> = ["test", "--workspace", "--no-run", "--message-format=json"]
        .map(String::from)
        .into();
    for package in EXCLUDED_PACKAGES {
        // Not building them at all saves time; the filter below still
        // applies if a name changes.
        if metadata.package_by_manifest.values().any(|p| p == package) {
            args.push("--exclude".into());
            args.push((*package).into());
        }
    }
    args.extend(build_flags(options));
    let artifacts = run_build(metadata, &args)?;
    // The workspace's commands are built for their integration tests; the
    // guest gets them as tools those tests run.
    let mut binaries: Vec<GuestBinary> = artifacts
        .into_iter()
        .filter(|a| !EXCLUDED_PACKAGES.contains(&a.package.as_str()))
        .filter_map(|a| {
            let kind = if a.test {
                BinaryKind::Test
            } else if a.kinds.iter().any(|k| k == "bin") {
                BinaryKind::Tool
            } else {
                return None;
            };
            Some(GuestBinary {
                label: label(&a),
                host_path: a.executable,
                kind,
            })
        })
        .collect();
    binaries.sort_by(|a, b| a.label.cmp(&b.label));
    binaries.dedup_by(|a, b| a.host_path == b.host_path);
    Ok(binaries)
}

/// Builds one example (`cargo build --example NAME`) and returns it.
pub fn build_example(metadata: &Metadata, options: &VmOptions, name: &str) -> Result<GuestBinary> {
    let mut args: Vec<String> = vec![
        "build".into(),
        "--example".into(),
        name.into(),
        "--message-format=json".into(),
    ];
    args.extend(build_flags(options));
    let artifacts = run_build(metadata, &args)?;
    let artifact = artifacts
        .into_iter()
        .find(|a| a.target == name && a.kinds.iter().any(|k| k == "example"))
        .ok_or_else(|| format!("cargo built no executable for example `{name}`"))?;
    Ok(GuestBinary {
        label: label(&artifact),
        host_path: artifact.executable,
        kind: BinaryKind::Example,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_ids() {
        assert_eq!(
            package_from_id("path+file:///work/main/xtask#0.1.0"),
            "xtask"
        );
        assert_eq!(
            package_from_id("path+file:///work/main/ui-tests#numakit-ui-tests@0.1.0"),
            "numakit-ui-tests"
        );
        assert_eq!(
            package_from_id("numakit 0.1.0 (path+file:///work/main/numakit)"),
            "numakit"
        );
    }

    #[test]
    fn artifacts() {
        let message: Value = serde_json::from_str(
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/numakit#0.1.0",
            "manifest_path":"/w/numakit/Cargo.toml",
            "target":{"kind":["lib"],"crate_types":["lib"],"name":"numakit"},
            "profile":{"test":true},"executable":"/w/target/debug/deps/numakit-0123"}"#,
        )
        .unwrap();
        let packages = HashMap::from([("/w/numakit/Cargo.toml".into(), "numakit".into())]);
        let artifact = parse_artifact(&message, &packages).unwrap();
        assert!(artifact.test);
        assert_eq!(label(&artifact), "numakit/lib");

        let message: Value = serde_json::from_str(
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w#numakit-suite@0.1.0",
            "manifest_path":"/w/Cargo.toml","target":{"kind":["test"],"name":"topology"},
            "profile":{"test":true},"executable":"/w/target/debug/deps/topology-1"}"#,
        )
        .unwrap();
        let artifact = parse_artifact(&message, &HashMap::new()).unwrap();
        assert_eq!(label(&artifact), "numakit-suite/test:topology");

        let no_exe: Value =
            serde_json::from_str(r#"{"reason":"compiler-artifact","executable":null}"#).unwrap();
        assert!(parse_artifact(&no_exe, &HashMap::new()).is_none());
    }
}
