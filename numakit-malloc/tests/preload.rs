//! Builds `libnumakit_malloc.so` and the C programs in `tests/c/`, and runs
//! them with the library preloaded: on the host, under valgrind's
//! memcheck, and with everyday tools (`ls`, `sort`, `sh -c`, `python3`).
//!
//! The programs are left in `target/<profile>/malloc-tests/` (with
//! `libpreload_early.so`); `tests/guest.sh` runs them in the qemu guests
//! (see its header for the `cargo xtask vm-run` line).
//!
//! Every test here needs cargo and gcc, so their names say `host_only`.

#[path = "../../numakit-capi/tests/support/cargo_lib.rs"]
mod cargo_lib;

use cargo_lib::{run_checked, run_limited};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// How long one program may run before it counts as hung.
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// The same under valgrind.
const VALGRIND_LIMIT: Duration = Duration::from_secs(600);

/// The C programs (each `tests/c/NAME.c`, run as it is).
const PROGRAMS: &[&str] = &[
    "preload_threads",
    "preload_fork",
    "preload_exit",
    "preload_foreign",
    "preload_limits",
    "preload_edges",
    "preload_sandbox",
];

/// Programs the tests below run with arguments of their own.
const HELPERS: &[&str] = &["preload_stderr"];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Build the library for this profile (a no-op when cargo already did)
/// and return its path.
fn library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = cargo_lib::build_library("numakit-malloc", &crate_dir());
        let lib = dir.join("libnumakit_malloc.so");
        assert!(lib.is_file(), "{} was not built", lib.display());
        lib
    })
}

/// Compile the programs (and the early-constructor library) into
/// `target/<profile>/malloc-tests/`; returns that directory.
fn programs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = cargo_lib::profile_dir().join("malloc-tests");
        std::fs::create_dir_all(&out).unwrap();
        let src = crate_dir().join("tests/c");
        let gcc = || {
            let mut cmd = Command::new("gcc");
            cmd.args([
                "-std=gnu11",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-O1",
                "-g",
                "-pthread",
            ]);
            cmd
        };
        for name in PROGRAMS.iter().chain(HELPERS) {
            let mut cmd = gcc();
            cmd.arg(src.join(format!("{name}.c")))
                .arg("-o")
                .arg(out.join(name))
                .arg("-ldl");
            run_checked(&mut cmd, &format!("compiling {name}.c"));
        }
        let mut cmd = gcc();
        cmd.arg("-O2")
            .arg(src.join("bench_alloc.c"))
            .arg("-o")
            .arg(out.join("bench_alloc"));
        run_checked(&mut cmd, "compiling bench_alloc.c");
        let mut cmd = gcc();
        cmd.args(["-fPIC", "-shared"])
            .arg(src.join("preload_early.c"))
            .arg("-o")
            .arg(out.join("libpreload_early.so"));
        run_checked(&mut cmd, "compiling preload_early.c");
        out
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn check_passed(out: &Output, what: &str) {
    assert!(
        out.status.success() && text(&out.stdout).contains("checks passed"),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A program run with the library preloaded (and `preload`, after it).
fn preloaded(program: &str, extra: &[&Path]) -> Command {
    let mut list = library().as_os_str().to_owned();
    for e in extra {
        list.push(" ");
        list.push(e.as_os_str());
    }
    let mut cmd = Command::new(programs().join(program));
    cmd.env("LD_PRELOAD", list)
        .env_remove("NUMAKIT_MALLOC_FALLBACK")
        .env_remove("NUMAKIT_MALLOC_STATS")
        .env_remove("NKM_ALLOCATOR");
    cmd
}

#[test]
fn programs_pass_preloaded_host_only() {
    for name in PROGRAMS {
        for fallback in ["strict", "nearest"] {
            let mut cmd = preloaded(name, &[]);
            cmd.env("NUMAKIT_MALLOC_FALLBACK", fallback);
            let what = format!("{name} (NUMAKIT_MALLOC_FALLBACK={fallback})");
            let out = run_limited(cmd, RUN_LIMIT, &what);
            check_passed(&out, &what);
            print!("{what}:\n{}", text(&out.stdout));
        }
    }
}

/// Without the library the placement checks fail: the programs can tell.
#[test]
fn programs_see_a_missing_preload_host_only() {
    let mut cmd = Command::new(programs().join("preload_threads"));
    cmd.env_remove("LD_PRELOAD").env_remove("NKM_ALLOCATOR");
    let out = run_limited(cmd, RUN_LIMIT, "preload_threads without the library");
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("CHECK failed"));
}

/// A constructor of a library preloaded after ours runs before our
/// constructor (the loader initialises the last one first), and its
/// allocations work, as do those of the fork handlers it registers (which
/// run while the fork gate is closed); so do those of thread-local
/// destructors, key destructors and atexit handlers.
#[test]
fn allocation_before_init_and_at_exit_host_only() {
    let early = programs().join("libpreload_early.so");
    let out = run_limited(
        preloaded("preload_exit", &[&early]),
        RUN_LIMIT,
        "preload_exit with an early constructor",
    );
    check_passed(&out, "preload_exit");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("a library constructor before the allocator's: ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fork handlers of that library allocate: ok"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("atexit ok"), "{stdout}");
    // The order the test relies on: the loader's own account of it.
    let mut cmd = preloaded("preload_exit", &[&early]);
    cmd.env("LD_DEBUG", "files");
    let out = run_limited(cmd, RUN_LIMIT, "preload_exit with LD_DEBUG=files");
    let log = text(&out.stderr);
    let at = |needle: &str| {
        log.lines()
            .position(|l| l.contains("calling init:") && l.contains(needle))
            .unwrap_or_else(|| panic!("no `calling init: ...{needle}` in\n{log}"))
    };
    assert!(
        at("libpreload_early.so") < at("libnumakit_malloc.so"),
        "{log}"
    );
}

/// Foreign pointers are named (the first 16), counted, and left alone.
#[test]
fn foreign_pointers_are_reported_and_left_alone_host_only() {
    let mut cmd = preloaded("preload_foreign", &[]);
    cmd.env("NUMAKIT_MALLOC_STATS", "1");
    let out = run_limited(cmd, RUN_LIMIT, "preload_foreign");
    check_passed(&out, "preload_foreign");
    let stderr = text(&out.stderr);
    let named = stderr
        .lines()
        .filter(|l| l.contains("not a block of this allocator"))
        .count();
    assert_eq!(named, 16, "{stderr}");
    assert!(
        stderr.contains("(further ones are only counted)"),
        "{stderr}"
    );
    // 9 mmap + 3 stack + 3 glibc + 6 inside a block + 2 double frees
    // + 8 stale pointers of moved blocks.
    assert!(stderr.contains("foreign pointers met: 31)"), "{stderr}");
}

/// `NUMAKIT_MALLOC_STATS=1`: the per-node table at exit, with the fallback
/// policy; a value that is not understood is named.
#[test]
fn statistics_at_exit_host_only() {
    let mut cmd = preloaded("preload_threads", &[]);
    cmd.env("NUMAKIT_MALLOC_STATS", "1");
    let out = run_limited(cmd, RUN_LIMIT, "preload_threads with statistics");
    check_passed(&out, "preload_threads");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("per-node figures at exit") && stderr.contains("FALLBACK=strict"),
        "{stderr}"
    );
    for column in [
        "node",
        "in use (B)",
        "remote frees",
        "fallbacks",
        "failures",
    ] {
        assert!(stderr.contains(column), "no `{column}` in\n{stderr}");
    }
    let row = stderr
        .lines()
        .find(|l| l.split_whitespace().next() == Some("0"))
        .unwrap_or_else(|| panic!("no row for node 0 in\n{stderr}"));
    let allocs: u64 = row.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(allocs >= 1000, "{row}");

    let mut cmd = preloaded("preload_limits", &[]);
    cmd.env("NUMAKIT_MALLOC_FALLBACK", "preferred")
        .env("NUMAKIT_MALLOC_STATS", "yes");
    let out = run_limited(cmd, RUN_LIMIT, "preload_limits with bad settings");
    check_passed(&out, "preload_limits");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "NUMAKIT_MALLOC_FALLBACK=preferred is not one of strict, nearest; using strict"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("NUMAKIT_MALLOC_STATS=yes is not one of 0, 1"),
        "{stderr}"
    );
    assert!(!stderr.contains("per-node figures"), "{stderr}");
}

/// A program that closed stderr may have opened a file of its own as
/// fd 2: the statistics go to the stderr the program started with (the
/// copy kept at start), or nowhere when it had none, never into that file;
/// nor do the lines for a foreign pointer or a failed allocation.
#[test]
fn statistics_never_go_into_a_file_that_took_fd_2_host_only() {
    use std::os::unix::process::CommandExt;
    for closed_at_start in [true, false] {
        let file = cargo_lib::profile_dir().join("malloc-tests").join(format!(
            "stderr-{}-{closed_at_start}.txt",
            std::process::id()
        ));
        let mut cmd = preloaded("preload_stderr", &[]);
        cmd.arg(&file).env("NUMAKIT_MALLOC_STATS", "1");
        if closed_at_start {
            // SAFETY: only close(2), async-signal-safe, between fork and
            // exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::close(2);
                    Ok(())
                });
            }
        } else {
            cmd.arg("close");
        }
        let what = format!("preload_stderr (stderr closed at start: {closed_at_start})");
        let out = run_limited(cmd, RUN_LIMIT, &what);
        check_passed(&out, &what);
        let data = std::fs::read_to_string(&file).unwrap();
        let _ = std::fs::remove_file(&file);
        assert_eq!(
            data, "data\n",
            "{what}: the program's own file was written to"
        );
        if !closed_at_start {
            let stderr = text(&out.stderr);
            assert!(
                stderr.contains("per-node figures at exit"),
                "{what}: {stderr}"
            );
            // The failed allocation made before the program closed its
            // stderr was named there, with what to do.
            assert!(
                stderr.contains("1125899906842624 bytes could not be had on node")
                    && stderr.contains("NUMAKIT_MALLOC_FALLBACK=nearest"),
                "{what}: {stderr}"
            );
        }
    }
}

/// A stderr nobody reads any more (a pipe whose reader has gone, as in
/// `prog 2>&1 | head -1`): the library's own lines there are lost, and
/// never make the program die of `SIGPIPE` (it exits as it would
/// without them).
#[test]
fn lines_to_a_stderr_without_reader_do_not_kill_the_program_host_only() {
    use std::os::fd::{FromRawFd, OwnedFd};
    // Programs that write nothing to stderr themselves.
    for program in ["preload_limits", "preload_edges"] {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two new descriptors into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors are new and owned here only.
        let (reader, writer) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(reader);
        let mut cmd = preloaded(program, &[]);
        cmd.env("NUMAKIT_MALLOC_STATS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(writer));
        let out = cmd.output().unwrap();
        assert!(
            out.status.success() && text(&out.stdout).contains("checks passed"),
            "{program} with a stderr nobody reads: {} (SIGPIPE is signal 13)\n{}",
            out.status,
            text(&out.stdout)
        );
    }
}

/// The allocator workloads run to the end preloaded (briefly: `bench.sh`
/// takes the figures).
#[test]
fn workloads_run_preloaded_host_only() {
    let mut cmd = preloaded("bench_alloc", &[]);
    cmd.arg("quick");
    let out = run_limited(cmd, RUN_LIMIT, "bench_alloc quick");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        9,
        "{}",
        text(&out.stdout)
    );
}

/// Everyday programs give the same output with and without the library.
#[test]
fn everyday_tools_run_preloaded_host_only() {
    let input = "pear\napple\nfig\n".repeat(2000);
    let tools: &[(&str, &[&str])] = &[
        ("ls", &["-la", "/usr/bin"]),
        ("sh", &["-c", "for i in 1 2 3; do echo line $i; done | sort -r | tr a-z A-Z"]),
        ("sort", &["-"]),
        (
            "python3",
            &["-c", "import json,threading; d={str(i): list(range(i%50)) for i in range(20000)}; t=[threading.Thread(target=lambda: json.dumps(d)) for _ in range(4)]; [x.start() for x in t]; [x.join() for x in t]; print(len(json.dumps(d)))"],
        ),
    ];
    for (tool, args) in tools {
        if Command::new(tool).arg("--version").output().is_err() && *tool == "python3" {
            println!("python3 is not installed: skipped");
            continue;
        }
        let run = |preload: bool| {
            let mut cmd = Command::new(tool);
            cmd.args(*args).env_remove("NUMAKIT_MALLOC_FALLBACK");
            if preload {
                cmd.env("LD_PRELOAD", library())
                    .env("NUMAKIT_MALLOC_STATS", "1");
            } else {
                cmd.env_remove("LD_PRELOAD");
            }
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let feed = input.clone();
            let writer = std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(feed.as_bytes());
            });
            let out = child.wait_with_output().unwrap();
            writer.join().unwrap();
            out
        };
        let plain = run(false);
        let ours = run(true);
        assert!(
            ours.status.success(),
            "{tool}: {} (without the library: {})\n{}",
            ours.status,
            plain.status,
            text(&ours.stderr)
        );
        assert_eq!(text(&ours.stdout), text(&plain.stdout), "{tool} {args:?}");
        let stderr = text(&ours.stderr);
        assert!(
            stderr.contains("per-node figures at exit"),
            "{tool}: {stderr}"
        );
        assert!(!stderr.contains("not a block"), "{tool}: {stderr}");
    }
}

fn have_valgrind() -> bool {
    let have = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("NUMAKIT_REQUIRE_VALGRIND").is_none_or(|v| v != "1"),
            "valgrind is not installed and NUMAKIT_REQUIRE_VALGRIND=1 (apt-get install valgrind)"
        );
        println!("valgrind is not installed: skipped (set NUMAKIT_REQUIRE_VALGRIND=1 to fail)");
    }
    have
}

fn valgrind(program: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--tool=memcheck",
        "--error-exitcode=99",
        "--quiet",
        "--trace-children=yes",
    ])
    .args(extra)
    .arg("env")
    .arg(format!("LD_PRELOAD={}", library().display()))
    .arg(programs().join(program))
    .env_remove("NUMAKIT_MALLOC_FALLBACK")
    .env_remove("NUMAKIT_MALLOC_STATS");
    cmd
}

/// Valgrind normally replaces `malloc` in every object, ours included;
/// `--soname-synonyms=somalloc=nouserintercepts` leaves ours in place. So
/// this runs the allocator itself under memcheck: its reads and writes
/// (headers, free lists, caches, the registry) must all be to mapped,
/// initialised memory and its system calls get valid arguments. Memcheck
/// does not see our blocks as heap blocks (they are inside mappings), so
/// it cannot report leaks or overruns of them.
#[test]
fn allocator_runs_under_memcheck_host_only() {
    if !have_valgrind() {
        return;
    }
    // preload_fork is left out: 100 forks under valgrind take minutes.
    for name in [
        "preload_threads",
        "preload_exit",
        "preload_foreign",
        "preload_limits",
    ] {
        let cmd = valgrind(name, &["--soname-synonyms=somalloc=nouserintercepts"]);
        let what = format!("valgrind (our allocator) {name}");
        let out = run_limited(cmd, VALGRIND_LIMIT, &what);
        check_passed(&out, &what);
    }
}

/// With valgrind's own allocator in place (its default), the programs are
/// checked: no invalid access, no leak. `NKM_ALLOCATOR=other` turns off
/// the checks that only hold for ours (placement, the library's own
/// constructor order). `preload_limits` and `preload_foreign` test our
/// semantics at the edges, which valgrind's allocator does not share.
#[test]
fn programs_are_clean_under_memcheck_host_only() {
    if !have_valgrind() {
        return;
    }
    for name in ["preload_threads", "preload_exit"] {
        let mut cmd = valgrind(
            name,
            &[
                "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect",
            ],
        );
        cmd.env("NKM_ALLOCATOR", "other");
        let what = format!("valgrind (its allocator) {name}");
        let out = run_limited(cmd, VALGRIND_LIMIT, &what);
        check_passed(&out, &what);
    }
}
