//! Builds the C tests (`tests/c/*.c`) against the library cargo builds and
//! runs them: on the host, under valgrind, through the shared library, with
//! a C++ compiler over the headers, and the example in `examples/c/`.
//!
//! The test binaries are left in `target/<profile>/c-tests/` (linked with
//! `libnumakit.a`, so only libc is needed to run them): the qemu guests run
//! them with `cargo xtask vm-run --nodes N target/<profile>/c-tests/test_*`,
//! where `NUMAKIT_EXPECT_NODES` makes the node checks fail, not skip.
//!
//! Every test here needs cargo and gcc, so their names say `host_only` (the
//! guest harness skips those).

#[path = "support/cargo_lib.rs"]
mod cargo_lib;

use cargo_lib::{assert_success, run_checked, run_limited};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

/// Native libraries a Rust static library needs (`--print native-static-libs`).
const STATIC_DEPS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// How long one C test may run before it counts as hung.
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// The same under valgrind (an order of magnitude slower).
const VALGRIND_LIMIT: Duration = Duration::from_secs(600);

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Build `libnumakit.{a,so}` for this profile (a no-op when cargo already
/// did) and return the directory they are in.
fn library_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = cargo_lib::build_library("numakit-capi", &crate_dir());
        for lib in ["libnumakit.a", "libnumakit.so"] {
            assert!(
                dir.join(lib).is_file(),
                "{} was not built",
                dir.join(lib).display()
            );
        }
        dir
    })
}

fn gcc_c11() -> Command {
    let mut cmd = Command::new("gcc");
    cmd.args([
        "-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread", "-g", "-I",
    ])
    .arg(crate_dir().join("include"));
    cmd
}

/// The C test sources, sorted.
fn c_tests() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(crate_dir().join("tests/c"))
        .expect("tests/c")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "c")
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("test_")
        })
        .collect();
    v.sort();
    assert!(v.len() >= 9, "expected a C test per header, found {v:?}");
    v
}

/// Compile every C test against `libnumakit.a` into `target/<profile>/c-tests/`.
fn built_c_tests() -> &'static [PathBuf] {
    static BINS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    BINS.get_or_init(|| {
        let lib = library_dir();
        let out_dir = cargo_lib::profile_dir().join("c-tests");
        std::fs::create_dir_all(&out_dir).unwrap();
        c_tests()
            .iter()
            .map(|src| {
                let bin = out_dir.join(src.file_stem().unwrap());
                let mut cmd = gcc_c11();
                cmd.arg(src)
                    .arg(lib.join("libnumakit.a"))
                    .args(STATIC_DEPS)
                    .arg("-o")
                    .arg(&bin);
                run_checked(&mut cmd, &format!("compiling {}", src.display()));
                bin
            })
            .collect()
    })
}

fn check_passed(out: &Output, what: &str) {
    assert_success(out, what);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("checks passed"),
        "{what} did not report its checks:\n{stdout}"
    );
}

#[test]
fn c_tests_pass_host_only() {
    for bin in built_c_tests() {
        let out = run_limited(Command::new(bin), RUN_LIMIT, &bin.display().to_string());
        check_passed(&out, &bin.display().to_string());
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

/// Every C test under valgrind's memcheck: no invalid access, no use of
/// uninitialised memory, no leak. CI sets `NUMAKIT_REQUIRE_VALGRIND=1` so a
/// missing valgrind fails instead of skipping.
#[test]
fn c_tests_under_valgrind_host_only() {
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
        return;
    }
    for bin in built_c_tests() {
        let mut cmd = Command::new("valgrind");
        cmd.args([
            "--tool=memcheck",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--track-origins=yes",
            "--quiet",
        ])
        .arg(bin);
        let what = format!("valgrind {}", bin.display());
        let out = run_limited(cmd, VALGRIND_LIMIT, &what);
        check_passed(&out, &what);
    }
}

/// The shared library exports the same API: a test linked with
/// `-lnumakit` against `libnumakit.so` passes.
#[test]
fn shared_library_links_and_runs_host_only() {
    let lib = library_dir();
    let out_dir = cargo_lib::profile_dir().join("c-tests");
    std::fs::create_dir_all(&out_dir).unwrap();
    for name in ["test_numakit", "test_topology"] {
        let bin = out_dir.join(format!("{name}_shared"));
        let mut cmd = gcc_c11();
        cmd.arg(crate_dir().join(format!("tests/c/{name}.c")))
            .arg("-L")
            .arg(lib)
            .arg("-lnumakit")
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .arg("-o")
            .arg(&bin);
        run_checked(&mut cmd, &format!("linking {name} with -lnumakit"));
        let out = run_limited(Command::new(&bin), RUN_LIMIT, &bin.display().to_string());
        check_passed(&out, &bin.display().to_string());
    }
}

/// Every header compiles on its own (C11), and all of them as C++17.
#[test]
fn headers_compile_as_c_and_cpp_host_only() {
    let include = crate_dir().join("include");
    let headers = [
        "numakit/numakit.h",
        "numakit/error.h",
        "numakit/version.h",
        "numakit/topology.h",
        "numakit/memory.h",
        "numakit/sched.h",
        "numakit/sync.h",
        "numakit/structs/ring_buffer.h",
        "numakit/structs/hash_table.h",
        "numakit/structs/deque.h",
        "numakit/structs/skip_list.h",
        "numakit/ext.h",
    ];
    let dir = cargo_lib::profile_dir().join("c-tests/headers");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, h) in headers.iter().enumerate() {
        assert!(include.join(h).is_file(), "{h} is missing");
        let src = dir.join(format!("alone_{i}.c"));
        std::fs::write(
            &src,
            format!("#include <{h}>\nint nkit_header_check_{i};\n"),
        )
        .unwrap();
        let mut cmd = Command::new("gcc");
        cmd.args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-fsyntax-only",
            "-I",
        ])
        .arg(&include)
        .arg(&src);
        run_checked(
            &mut cmd,
            &format!("{h} on its own (gcc -std=c11 -pedantic)"),
        );
    }
    let mut cpp = String::new();
    for h in headers {
        cpp.push_str(&format!("#include <{h}>\n"));
    }
    // Use the declarations from C++: types, a by-value lock, calls.
    cpp.push_str(
        "static_assert(sizeof(nkit_ticket_lock_t) == 128, \"ticket lock\");\n\
         static_assert(alignof(nkit_ticket_lock_t) == 64, \"ticket lock\");\n\
         static_assert(sizeof(nkit_mcs_node_t) == 16, \"mcs node\");\n\
         int use() {\n\
           nkit_mcs_lock_t l; nkit_mcs_node_t n; nkit_mcs_init(&l); nkit_mcs_lock(&l, &n);\n\
           nkit_mcs_unlock(&l, &n);\n\
           nkit_thread_policy_t p{}; p.type = NKIT_POLICY_BIND_NODE; p.node_id = 0;\n\
           nkit_arena_t *a = nkit_arena_create(p.node_id, 4096);\n\
           void *x = nkit_arena_alloc(a, 8); nkit_arena_destroy(a);\n\
           return nkit_last_error() + (x != nullptr) + nkit_topo_num_nodes();\n\
         }\n",
    );
    let src = dir.join("all.cpp");
    std::fs::write(&src, cpp).unwrap();
    let mut cmd = Command::new("g++");
    cmd.args([
        "-std=c++17",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-fsyntax-only",
        "-I",
    ])
    .arg(&include)
    .arg(&src);
    run_checked(&mut cmd, "the headers as C++17 (g++ -std=c++17)");
}

/// `examples/c/placement.c` builds with the README's line and runs.
#[test]
fn placement_example_runs_host_only() {
    let lib = library_dir();
    let example = crate_dir().join("../examples/c/placement.c");
    let bin = cargo_lib::profile_dir().join("c-tests/placement");
    let mut cmd = gcc_c11();
    cmd.arg(&example)
        .arg("-L")
        .arg(lib)
        .arg("-lnumakit")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&bin);
    run_checked(&mut cmd, "compiling examples/c/placement.c");
    let out = run_limited(Command::new(&bin), RUN_LIMIT, "examples/c/placement");
    assert!(
        out.status.success(),
        "placement example failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("all pages on node 0"), "{stdout}");
}

/// `numakit.pc` states this version and, with the prefix pointed at the
/// build, gives the flags that build a C program.
#[test]
fn pkg_config_file_builds_a_program_host_only() {
    let pc = crate_dir().join("numakit.pc");
    let text = std::fs::read_to_string(&pc).expect("numakit.pc");
    assert!(
        text.lines()
            .any(|l| l.trim() == format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "numakit.pc does not say Version: {}",
        env!("CARGO_PKG_VERSION")
    );
    let lib = library_dir();
    let out = run_checked(
        Command::new("pkg-config")
            .arg(format!(
                "--define-variable=includedir={}",
                crate_dir().join("include").display()
            ))
            .arg(format!("--define-variable=libdir={}", lib.display()))
            .args(["--cflags", "--libs"])
            .arg(&pc),
        "pkg-config numakit.pc",
    );
    let flags = String::from_utf8_lossy(&out.stdout);
    let bin = cargo_lib::profile_dir().join("c-tests/test_version_pc");
    let mut cmd = Command::new("gcc");
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(crate_dir().join("tests/c/test_version.c"))
        .args(flags.split_whitespace())
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&bin);
    run_checked(&mut cmd, "gcc with pkg-config's flags");
    let out = run_limited(Command::new(&bin), RUN_LIMIT, "test_version (pkg-config)");
    check_passed(&out, "test_version built with pkg-config's flags");
}
