//! Development tasks for the numakit workspace, run as `cargo xtask <task>`.
//!
//! The main task is `vm-test`: it builds the workspace's test binaries, packs
//! them with busybox into an initramfs, boots the host's Debian kernel in a
//! qemu guest with a chosen NUMA topology (nodes, CPUs and memory per node,
//! memoryless and CPU-less nodes, 2 MiB hugepages per node), runs every test
//! binary there and reports per binary. See `cargo xtask help` and
//! `xtask/README.md`.
//!
//! Layout, one step per module:
//!
//! | module        | step                                                    |
//! | ------------- | ------------------------------------------------------- |
//! | [`cli`]       | argument parsing into [`cli::VmOptions`]                |
//! | [`cargo`]     | `cargo metadata`, building tests/examples, artifacts    |
//! | [`initramfs`] | newc cpio writer, `ldd` closure, the guest's `/init`    |
//! | [`kernel`]    | newest `/boot/vmlinuz-*`, cached uncompressed `vmlinux` |
//! | [`qemu`]      | accelerator choice, command line, live run with timeout |
//! | [`report`]    | marker / libtest parsing and the summary                |

mod cargo;
mod cli;
mod initramfs;
mod kernel;
mod qemu;
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use cli::{Command, VmOptions};
use initramfs::{BinaryKind, GuestBinary};

/// Errors are plain messages: this is a developer tool, and every message
/// already says which step and which file failed.
pub type Result<T> = std::result::Result<T, String>;

/// Exit status for usage and infrastructure errors (as opposed to failing
/// tests, which exit with 1).
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("xtask: {message}");
            eprintln!("run `cargo xtask help` for usage");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let result = match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            Ok(true)
        }
        Command::VmTest(options) => vm_test(&options),
        Command::VmRun(options, paths) => vm_run(&options, &paths),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// `cargo xtask vm-test`: build the workspace tests (and chosen examples),
/// run them in the guest. Returns whether everything passed.
fn vm_test(options: &VmOptions) -> Result<bool> {
    let started = Instant::now();
    let metadata = cargo::Metadata::load()?;
    let mut binaries = cargo::build_tests(&metadata, options)?;
    for example in &options.examples {
        binaries.push(cargo::build_example(&metadata, options, example)?);
    }
    if binaries.is_empty() {
        return Err("the build produced no test binaries to run".into());
    }
    eprintln!(
        "xtask: built {} binaries in {:.1} s",
        binaries.len(),
        started.elapsed().as_secs_f64()
    );
    boot_and_report(&metadata.target_directory, options, binaries, started)
}

/// `cargo xtask vm-run PATH...`: run the given executables in the guest,
/// each with the extra arguments and nothing else.
fn vm_run(options: &VmOptions, paths: &[PathBuf]) -> Result<bool> {
    let started = Instant::now();
    let metadata = cargo::Metadata::load()?;
    let binaries = paths
        .iter()
        .map(|path| {
            let path = path
                .canonicalize()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "binary".into());
            Ok(GuestBinary {
                label: name,
                host_path: path,
                kind: if options.libtest {
                    BinaryKind::Test
                } else {
                    BinaryKind::Executable
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut binaries = binaries;
    for file in &options.installs {
        let path = file
            .canonicalize()
            .map_err(|e| format!("--install {}: {e}", file.display()))?;
        if !path.is_file() {
            return Err(format!("--install {}: not a file", file.display()));
        }
        binaries.push(GuestBinary {
            label: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "file".into()),
            host_path: path,
            kind: BinaryKind::Tool,
        });
    }
    boot_and_report(&metadata.target_directory, options, binaries, started)
}

/// A file in a work dir that `--keep` asked to keep.
const KEEP_MARKER: &str = "KEEP";

/// Removes `run-PID` work dirs left by runs that were interrupted (their
/// process is gone) and that `--keep` did not ask to keep.
fn remove_stale_work_dirs(xtask_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(xtask_dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("run-")) else {
            continue;
        };
        let path = entry.path();
        let alive = Path::new("/proc").join(pid).exists();
        if !alive && !path.join(KEEP_MARKER).exists() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Shared tail of `vm-test` and `vm-run`: initramfs, kernel, boot, report.
fn boot_and_report(
    target_dir: &Path,
    options: &VmOptions,
    mut binaries: Vec<GuestBinary>,
    started: Instant,
) -> Result<bool> {
    initramfs::make_labels_unique(&mut binaries);
    let xtask_dir = target_dir.join("xtask");
    remove_stale_work_dirs(&xtask_dir);
    let work_dir = xtask_dir.join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&work_dir)
        .map_err(|e| format!("creating {}: {e}", work_dir.display()))?;
    if options.keep {
        let _ = std::fs::write(work_dir.join(KEEP_MARKER), "kept by --keep\n");
    }

    let result = (|| {
        let kernel = kernel::find_and_prepare(&xtask_dir)?;
        let initrd = work_dir.join("initramfs.cpio");
        let size = initramfs::build(&initrd, &binaries, options)?;
        eprintln!(
            "xtask: initramfs {} ({:.1} MiB, {} binaries)",
            initrd.display(),
            size as f64 / (1024.0 * 1024.0),
            binaries.len()
        );
        let serial_log = work_dir.join("serial.log");
        let run = qemu::run(options, &kernel, &initrd, &serial_log)?;
        // Keep the last guest log outside the work dir, which is removed.
        let last_log = xtask_dir.join("last-serial.log");
        let _ = std::fs::copy(&serial_log, &last_log);
        let outcome = report::analyse(&binaries, &run);
        report::print_summary(options, &run, &outcome, started.elapsed());
        eprintln!("xtask: guest log kept at {}", last_log.display());
        Ok(outcome.success())
    })();

    if options.keep {
        eprintln!("xtask: work dir kept at {}", work_dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    result
}
