//! The `numakit` command, run as a user runs it: on the host (one node) and
//! in the multi-node guests (`cargo xtask vm-test` installs it as
//! `/usr/bin/numakit`).

#[path = "../../tests/common/mod.rs"]
mod common;

use numakit::sys::mem as sysmem;
use numakit::NodeId;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The command under test: cargo's build of it, or the guest's copy.
fn numakit() -> Command {
    let built = PathBuf::from(env!("CARGO_BIN_EXE_numakit"));
    let path = if built.exists() {
        built.clone()
    } else {
        PathBuf::from("/usr/bin/numakit")
    };
    assert!(
        path.exists(),
        "the numakit command is neither at {built:?} nor in /usr/bin"
    );
    Command::new(path)
}

fn run(args: &[&str]) -> Output {
    numakit().args(args).output().expect("numakit starts")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
}

#[test]
fn run_places_the_command_on_every_node_or_says_why_not() {
    let topo = common::topology();
    for node in topo.nodes() {
        let id = node.id().get().to_string();
        let out = run(&[
            "run",
            "--node",
            &id,
            "--",
            "cat",
            "/proc/self/status",
            "/proc/self/numa_maps",
        ]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        if node.cpus().is_empty() || !node.has_memory() {
            assert_eq!(out.status.code(), Some(2), "node {id}: {stdout}{stderr}");
            assert!(stderr.contains(&format!("node {id}")), "{stderr}");
            assert!(stdout.is_empty(), "the command ran: {stdout}");
            continue;
        }
        assert!(out.status.success(), "node {id}: {stderr}");
        assert_eq!(
            field(&stdout, "Cpus_allowed_list:"),
            node.allowed_cpus().unwrap().to_string(),
            "node {id}"
        );
        // Every page the command wrote (heap, stack, anonymous memory) is
        // on the node; page-cache pages of files are where the file was.
        let (maps, bad) = numakit_cli::maps::parse(
            &stdout
                .lines()
                .filter(|l| {
                    l.split(' ')
                        .next()
                        .is_some_and(|a| u64::from_str_radix(a, 16).is_ok())
                })
                .collect::<Vec<_>>()
                .join("\n"),
        );
        assert!(bad.is_empty(), "{bad:?}");
        let mut anon = 0;
        for m in &maps {
            if matches!(
                m.kind,
                numakit_cli::maps::MappingKind::Heap
                    | numakit_cli::maps::MappingKind::Stack
                    | numakit_cli::maps::MappingKind::Anonymous
            ) {
                for (&n, &p) in &m.pages {
                    assert_eq!(n, node.id().get(), "{p} pages of {m:?} off node {id}");
                    anon += p;
                }
            }
        }
        assert!(anon > 0, "the command's own pages were not seen: {stdout}");
    }
}

#[test]
fn a_refused_request_runs_nothing_and_exits_2() {
    let topo = common::topology();
    let absent = common::absent_node(&topo).get().to_string();
    let marker = std::env::temp_dir().join(format!("numakit-cli-ran-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let m = marker.to_str().unwrap();
    for args in [
        vec!["run", "--node", absent.as_str(), "--", "touch", m],
        vec!["run", "--node", "4294967295", "--", "touch", m],
        vec!["run", "--node", "0", "--cpus", "4095", "--", "touch", m],
        vec!["run", "--node", "0", "--cpus", "", "--", "touch", m],
        vec![
            "run",
            "--node",
            "0",
            "--membind",
            absent.as_str(),
            "--",
            "touch",
            m,
        ],
        vec!["run", "--node", "0", "--interleave", "0-", "--", "touch", m],
        vec![
            "run",
            "--node",
            "0",
            "--membind",
            "0",
            "--fallback",
            "nearest",
            "--",
            "touch",
            m,
        ],
        vec![
            "run",
            "--node",
            "0",
            "--fallback",
            "farthest",
            "--",
            "touch",
            m,
        ],
        vec!["run", "--node", "4294967296", "--", "touch", m],
        vec!["run", "--node", "-1", "--", "touch", m],
        vec!["run", "--node", "0"],
    ] {
        let out = run(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!marker.exists(), "{args:?} ran the command");
        assert!(!stderr.trim().is_empty(), "{args:?} said nothing");
    }
    let out = run(&["run", "--node", absent.as_str(), "--", "true"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("node {absent}")) && stderr.contains("refused"),
        "{stderr}"
    );
}

#[test]
fn a_command_that_cannot_run_is_127_and_a_fallback_is_said() {
    let out = run(&["run", "--node", "0", "--", "/nonexistent/numakit-test"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("/nonexistent/numakit-test"));
    let out = run(&["run", "--node", "0", "--fallback", "nearest", "--", "true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("falling back"),
        "{}",
        text(&out.stderr)
    );
    // The command's own status comes back.
    let out = run(&["run", "--node", "0", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn node_local_malloc_without_its_library_runs_nothing() {
    let out = numakit()
        .args([
            "run",
            "--node",
            "0",
            "--node-local-malloc",
            "--",
            "sh",
            "-c",
            "echo ran",
        ])
        .env("NUMAKIT_MALLOC_LIB", "/nonexistent/libnumakit_malloc.so")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(text(&out.stdout).is_empty(), "the command ran");
    assert!(
        stderr.contains("/nonexistent/libnumakit_malloc.so")
            && stderr.contains("NUMAKIT_MALLOC_LIB")
            && stderr.contains("cargo build --release -p numakit-malloc"),
        "{stderr}"
    );
    // With --membind it is a conflict, refused before anything is looked up.
    let out = run(&[
        "run",
        "--node",
        "0",
        "--membind",
        "0",
        "--node-local-malloc",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--node-local-malloc"));
}

/// The library cargo builds next to the numakit binary (a host-only test:
/// it runs cargo).
#[test]
fn node_local_malloc_preloads_the_library_host_only() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_numakit"));
    let dir = exe.parent().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "-p", "numakit-malloc", "--lib"])
        .env("CARGO_TARGET_DIR", dir.parent().unwrap());
    if dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let built = build.output().unwrap();
    assert!(built.status.success(), "{}", text(&built.stderr));
    let lib = dir.join("libnumakit_malloc.so");
    assert!(lib.is_file(), "{}", lib.display());
    let out = numakit()
        .args([
            "run",
            "--node",
            "0",
            "--node-local-malloc",
            "--verbose",
            "--",
        ])
        // dash leaves with _exit (no atexit handlers); cat exits normally.
        .args([
            "sh",
            "-c",
            "echo \"$LD_PRELOAD|$NUMAKIT_MALLOC_FALLBACK\"; exec cat /dev/null",
        ])
        .env("LD_PRELOAD", "")
        .env("NUMAKIT_MALLOC_STATS", "1")
        .env_remove("NUMAKIT_MALLOC_LIB")
        .env_remove("NUMAKIT_MALLOC_FALLBACK")
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let canonical = std::fs::canonicalize(&lib).unwrap();
    assert_eq!(stdout.trim(), format!("{}|strict", canonical.display()));
    // The shell ran on the library: its figures at exit.
    assert!(
        stderr.contains("numakit-malloc: per-node figures at exit"),
        "{stderr}"
    );
    assert!(stderr.contains("LD_PRELOAD="), "{stderr}");

    // A statically linked program has no dynamic loader to preload it: the
    // numakit binary's own ELF header without program headers stands for
    // one, directly, by PATH and behind a script's `#!`.
    use std::os::unix::fs::PermissionsExt;
    let tmp = std::env::temp_dir().join(format!("numakit-cli-static-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut header = std::fs::read(&exe).unwrap()[..64].to_vec();
    header[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    header[56..58].fill(0); // e_phnum: no PT_INTERP
    let program = tmp.join("static-prog");
    std::fs::write(&program, &header).unwrap();
    let script = tmp.join("script");
    std::fs::write(&script, format!("#!{} -x\n", program.display())).unwrap();
    for p in [&program, &script] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        tmp.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for cmd in [
        program.to_str().unwrap(),
        "static-prog",
        script.to_str().unwrap(),
    ] {
        let out = numakit()
            .args(["run", "--node", "0", "--node-local-malloc", "--", cmd])
            .env("PATH", &path)
            .env_remove("NUMAKIT_MALLOC_LIB")
            .env_remove("NUMAKIT_MALLOC_FALLBACK")
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {stderr}");
        assert!(
            stderr.contains("static-prog is statically linked"),
            "{cmd}: {stderr}"
        );
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn help_shows_an_example_for_each_command() {
    for cmd in ["topology", "run", "stat", "verify", "measure"] {
        let out = run(&[cmd, "--help"]);
        assert!(out.status.success());
        let help = text(&out.stdout);
        assert!(help.contains(&format!("numakit {cmd}")), "{cmd}: {help}");
    }
}

#[test]
fn topology_json_lists_every_node() {
    let topo = common::topology();
    let out = run(&["topology", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<u32> = v["node_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(ids, topo.node_ids().map(NodeId::get).collect::<Vec<_>>());
}

/// The environment variable that makes [`child_holds_memory`] the child.
const CHILD: &str = "NUMAKIT_CLI_TEST_CHILD";
/// What precedes the child's addresses in its output.
const MARKER: &str = "child addresses: ";

/// Run by [`stat_and_verify_report_a_mapping_moved_off_its_policy`] as a
/// child process: two 1 MiB mappings bound to the first node with memory,
/// the second then migrated to the second such node (when there is one),
/// their addresses printed; it lives until its stdin closes.
#[test]
#[ignore = "helper: the child process of the stat/verify test"]
fn child_holds_memory() {
    let Some(nodes) = std::env::var(CHILD).ok() else {
        return;
    };
    let nodes: Vec<u32> = nodes.split(',').map(|n| n.parse().unwrap()).collect();
    let len = 1 << 20;
    // Three megabytes with the middle one unmapped: two mappings the
    // kernel cannot merge into one.
    let p = sysmem::mmap_anonymous(3 * len, libc::PROT_READ | libc::PROT_WRITE, 0).unwrap();
    // SAFETY: the middle of the fresh mapping is ours and unreferenced.
    unsafe {
        sysmem::munmap(
            std::ptr::NonNull::new(p.as_ptr().wrapping_add(len)).unwrap(),
            len,
        )
    }
    .unwrap();
    let mut addrs = Vec::new();
    for part in [0, 2 * len] {
        let q = std::ptr::NonNull::new(p.as_ptr().wrapping_add(part)).unwrap();
        sysmem::mbind(
            q,
            len,
            sysmem::MPOL_BIND,
            &[1 << nodes[0]],
            sysmem::MPOL_MF_STRICT,
        )
        .unwrap();
        // SAFETY: the mapping is ours and nothing references it.
        unsafe { sysmem::madvise(q, len, sysmem::MADV_POPULATE_WRITE) }.unwrap();
        addrs.push(q.as_ptr());
    }
    if let Some(&other) = nodes.get(1) {
        numakit::mem::migrate(addrs[1], len, NodeId::new(other)).unwrap();
    }
    // libtest writes `test NAME ... ` first, on the same line.
    println!("{MARKER}{:x} {:x}", addrs[0] as usize, addrs[1] as usize);
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn stat_and_verify_report_a_mapping_moved_off_its_policy() {
    let topo = common::topology();
    let with_memory: Vec<String> = topo
        .nodes()
        .iter()
        .filter(|n| n.has_memory())
        .map(|n| n.id().to_string())
        .take(2)
        .collect();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_memory",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, with_memory.join(","))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        for line in lines.by_ref() {
            let Some((_, addrs)) = line.split_once(MARKER) else {
                continue;
            };
            let parsed = addrs.split_once(' ').and_then(|(a, b)| {
                Some((
                    u64::from_str_radix(a, 16).ok()?,
                    u64::from_str_radix(b, 16).ok()?,
                ))
            });
            let _ = tx.send(parsed);
            break;
        }
        let _ = tx.send(None);
        // Keep reading, so that the child never writes to a closed pipe.
        for _ in lines {}
    });
    let addresses = rx.recv_timeout(std::time::Duration::from_secs(120));
    let Ok(Some((kept, moved))) = addresses else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child did not print its addresses within 120 s: {addresses:?}");
    };
    let verify = run(&["verify", &pid]);
    let stat = run(&["stat", &pid]);
    let json = run(&["stat", &pid, "--json"]);
    drop(child.stdin.take());
    let _ = child.wait();

    let (vout, sout) = (text(&verify.stdout), text(&stat.stdout));
    assert!(stat.status.success(), "{}", text(&stat.stderr));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let violations: Vec<&str> = v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["address"].as_str().unwrap())
        .collect();
    assert!(sout.contains(&format!("{kept:x}")), "{sout}");
    if with_memory.len() < 2 {
        assert_eq!(verify.status.code(), Some(0), "{vout}");
        assert!(violations.is_empty(), "{v}");
        return;
    }
    assert_eq!(verify.status.code(), Some(1), "{vout}");
    assert!(vout.contains(&format!("mapping {moved:#x}")), "{vout}");
    assert!(!vout.contains(&format!("mapping {kept:#x}")), "{vout}");
    let pages = (1 << 20) / numakit::sys::page_size();
    assert!(
        vout.contains(&format!("{pages} on node {}", with_memory[1])),
        "{vout}"
    );
    assert_eq!(violations, [format!("{moved:#x}")], "{v}");
    assert!(sout.contains(&format!("! {moved:x}")), "{sout}");
    assert!(sout.contains("BREAKS ITS POLICY"), "{sout}");
}

#[test]
fn stat_and_verify_of_absent_processes_are_errors() {
    for pid in ["0", "4294967295", "2147483647"] {
        for cmd in ["stat", "verify"] {
            let out = run(&[cmd, pid]);
            assert_eq!(out.status.code(), Some(2), "{cmd} {pid}");
            assert!(
                text(&out.stderr).contains(&format!("no process {pid}")),
                "{}",
                text(&out.stderr)
            );
        }
    }
    for bad in ["-1", "4294967296", "x"] {
        assert_eq!(run(&["verify", bad]).status.code(), Some(2), "{bad}");
    }
    for watch in ["0", "-1", "NaN", "inf", "1e300"] {
        let out = run(&["stat", &std::process::id().to_string(), "--watch", watch]);
        assert_eq!(out.status.code(), Some(2), "--watch {watch}");
    }
}

/// A measurement small enough for a few seconds in a TCG guest.
const SMALL: [&str; 10] = [
    "measure",
    "--quick",
    "--buffer-mib",
    "1",
    "--repetitions",
    "1",
    "--loads",
    "10000",
    "--round-trips",
    "20",
];

#[test]
fn measure_json_has_a_cell_for_every_pair_with_cpus_and_memory() {
    let topo = common::topology();
    let mut args = SMALL.to_vec();
    args.push("--json");
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m: numakit::measure::Measurement =
        serde_json::from_slice(&out.stdout).expect("the JSON reads back as a Measurement");
    let cpus: Vec<NodeId> = topo
        .nodes()
        .iter()
        .filter(|n| !n.cpus().is_empty())
        .map(|n| n.id())
        .collect();
    let mems: Vec<NodeId> = topo
        .nodes()
        .iter()
        .filter(|n| n.has_memory())
        .map(|n| n.id())
        .collect();
    assert_eq!(m.cells.len(), cpus.len() * mems.len());
    for &c in &cpus {
        for &n in &mems {
            let cell = m.cell(c, n).unwrap_or_else(|| panic!("no cell ({c}, {n})"));
            assert!(cell.latency_ps.median > 0 && cell.read_mb_s.median > 0);
            assert_eq!(cell.latency_ps.runs, 1);
        }
    }
    assert_eq!(m.buffers.iter().map(|b| b.node).collect::<Vec<_>>(), mems);
    assert!(m.buffers.iter().all(|b| b.verified_pages > 0));
    assert_eq!(m.options.latency_buffer, 1 << 20);
    assert_eq!(m.options.chase_loads, 10_000);
    assert_eq!(m.options.handoff_round_trips, 20);
    // Written out again, the same JSON.
    let again: serde_json::Value = serde_json::to_value(&m).unwrap();
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again, printed);
    // And it orders this machine's nodes.
    assert!(topo.with_measured(&m).is_ok());
}

#[test]
fn measure_table_shows_the_slit_beside_the_measured_ratio() {
    let topo = common::topology();
    let out = run(&SMALL);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for title in [
        "Idle load-to-use latency",
        "Latency ratio: measured",
        "Read bandwidth",
        "Read/write bandwidth",
        "Cache-line handoff",
    ] {
        assert!(table.contains(title), "{title}: {table}");
    }
    // The ratio matrix: one row per node with CPUs, with its SLIT / 10 in
    // each memory node's column.
    let ratios: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("Latency ratio"))
        .skip(2)
        .take_while(|l| l.starts_with("node "))
        .collect();
    let cpu_nodes: Vec<&numakit::topology::Node> = topo
        .nodes()
        .iter()
        .filter(|n| !n.cpus().is_empty())
        .collect();
    assert_eq!(ratios.len(), cpu_nodes.len(), "{table}");
    for (row, node) in ratios.iter().zip(cpu_nodes) {
        assert!(row.starts_with(&format!("node {} ", node.id())), "{row}");
        for mem in topo.nodes().iter().filter(|n| n.has_memory()) {
            let slit = topo.distance(node.id(), mem.id()).unwrap();
            let want = format!("| {:.1}", f64::from(slit) / 10.0);
            assert!(row.contains(&want), "{want} in {row}");
        }
    }
    assert_eq!(
        table.contains("One NUMA node"),
        topo.num_nodes() == 1,
        "{table}"
    );
}

/// Every option's boundaries are checked in `numakit_cli::measure`'s unit
/// tests; here, that the command refuses with status 2 and runs nothing.
#[test]
fn measure_refuses_options_out_of_range_and_runs_nothing() {
    let max = u64::MAX.to_string();
    let cases: [(&[&str], &str); 3] = [
        (
            &["--buffer-mib", "0"],
            "--buffer-mib 0: give 1 to 65536 MiB",
        ),
        (&["--repetitions", &max], "--repetitions"),
        (&["--buffer-mib", "-1"], "-1"),
    ];
    for (extra, said) in cases {
        let mut args = vec!["measure", "--quick"];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(said), "{args:?}: {err}");
    }
    // The smallest of everything measures.
    let out = run(&[
        "measure",
        "--quick",
        "--buffer-mib",
        "1",
        "--repetitions",
        "1",
        "--loads",
        "1",
        "--round-trips",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("one run"));
}

/// Run `numakit args` with `stdout` as its standard output, waiting at most
/// 60 s: a command that hangs fails the test instead of stalling it.
fn run_with_stdout(args: &[&str], stdout: Stdio) -> Output {
    let mut child = numakit()
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("numakit starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("numakit {args:?} hung with its stdout closed or full");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Output into a pipe nobody reads (`numakit topology | head -n 0`), or
/// onto a full disk, ends the command with a status, never a panic or a
/// hang: 141 quietly for the closed pipe, 1 with the error for the full
/// disk, and `verify`'s verdict whatever became of its report.
#[test]
fn output_to_a_closed_pipe_or_a_full_disk_is_an_exit_not_a_panic() {
    let me = std::process::id().to_string();
    let me = me.as_str();
    let cases: [&[&str]; 8] = [
        &["topology"],
        &["topology", "--json"],
        &["topology", "--numactl"],
        &["stat", me],
        &["stat", me, "--json"],
        &["stat", me, "--watch", "0.1"],
        &["verify", me],
        &["verify", me, "--json"],
    ];
    let verify = |args: &[&str]| args[0] == "verify";
    for args in cases {
        for _ in 0..3 {
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            let out = run_with_stdout(args, Stdio::from(writer));
            let stderr = text(&out.stderr);
            let want = if verify(args) { 0 } else { 141 };
            assert_eq!(out.status.code(), Some(want), "{args:?}: {stderr}");
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
            if !verify(args) {
                assert!(stderr.is_empty(), "{args:?} said: {stderr}");
            }
        }
        let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            continue;
        };
        let out = run_with_stdout(args, Stdio::from(full));
        let stderr = text(&out.stderr);
        let want = if verify(args) { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(want), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot write") && stderr.contains("No space left"),
            "{args:?}: {stderr}"
        );
    }
}

/// A command's arguments are bytes, as `exec` takes them, not text.
#[test]
fn run_passes_arguments_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let dir = std::env::temp_dir().join(format!("numakit-cli-bytes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(std::ffi::OsStr::from_bytes(b"f\xff"));
    std::fs::write(&file, "bytes ok\n").unwrap();
    let out = numakit()
        .args(["run", "--node", "0", "--", "cat"])
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "bytes ok\n");
}

/// Node lists are called node lists, limits are named, and an absent node
/// points at `numakit topology`.
#[test]
fn refusals_name_the_list_the_limit_and_the_command_to_look() {
    let topo = common::topology();
    let absent = common::absent_node(&topo).get().to_string();
    let cases: [(&[&str], &[&str]); 8] = [
        (&["--membind", ","], &["--membind `,`", "not a node list"]),
        (
            &["--interleave", "0-"],
            &["--interleave `0-`", "not a node list"],
        ),
        (&["--cpus", "x"], &["not a CPU list"]),
        (&["--cpus", "65536"], &["CPU 65536 is above 65535"]),
        (
            &["--cpus", "0-4294967295"],
            &["CPU 4294967295 is above 65535"],
        ),
        (&["--membind", "65536"], &["node 65536 is above 65535"]),
        (&["--membind", &absent], &["`numakit topology` lists them"]),
        (&["--node", &absent], &["`numakit topology` lists them"]),
    ];
    for (extra, said) in cases {
        let mut args = vec!["run"];
        if extra[0] != "--node" {
            args.extend(["--node", "0"]);
        }
        args.extend_from_slice(extra);
        args.extend(["--", "true"]);
        let out = run(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for s in said {
            assert!(stderr.contains(s), "{args:?}: `{s}` not in {stderr}");
        }
        assert!(!stderr.contains("cargo run"), "{args:?}: {stderr}");
        if extra[0] != "--cpus" {
            assert!(!stderr.contains("CPU list"), "{args:?}: {stderr}");
        }
    }
    if !cfg!(feature = "hwloc") {
        let out = run(&["topology", "--hwloc"]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success());
        assert!(
            !stderr.contains("--example") && stderr.contains("--features hwloc"),
            "{stderr}"
        );
    }
}

/// Buffers larger than a node are `--buffer-mib`'s fault, refused with 2.
#[test]
fn measure_names_buffer_mib_when_the_buffers_do_not_fit() {
    let topo = common::topology();
    let largest = topo.nodes().iter().map(|n| n.memory_total()).max().unwrap();
    let mib = (largest >> 20) + 1;
    if mib > 65_536 {
        return; // larger than --buffer-mib can ask for
    }
    let mib = mib.to_string();
    let out = run(&["measure", "--quick", "--buffer-mib", &mib]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("--buffer-mib {mib}")), "{stderr}");
    assert!(stderr.contains("give a smaller --buffer-mib"), "{stderr}");
    assert!(!stderr.contains("latency_buffer"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// An exited process that its parent has not collected yet, and a thread
/// of another process, are refused with what they are.
#[test]
fn stat_and_verify_refuse_zombies_and_threads() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    let status = format!("/proc/{pid}/status");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&status)
        .unwrap()
        .lines()
        .any(|l| l.starts_with("State:") && l.contains('Z'))
    {
        assert!(std::time::Instant::now() < deadline, "no zombie");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pid = pid.to_string();
    let outs: Vec<Output> = ["stat", "verify"]
        .iter()
        .map(|cmd| run(&[cmd, &pid]))
        .collect();
    child.wait().unwrap();
    for out in outs {
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
        assert!(
            stderr.contains(&format!("process {pid} (true) has exited")),
            "{stderr}"
        );
    }

    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tx.send(unsafe { libc::gettid() }).unwrap();
        let _ = stop_rx.recv();
    });
    let tid = rx.recv().unwrap().to_string();
    let outs: Vec<Output> = ["stat", "verify"]
        .iter()
        .map(|cmd| run(&[cmd, &tid]))
        .collect();
    drop(stop_tx);
    thread.join().unwrap();
    let me = std::process::id();
    for out in outs {
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("{tid} is a thread of process {me}")),
            "{stderr}"
        );
    }
}

/// What the dynamic loader would skip, or a program it does not load, is
/// refused before anything runs.
#[test]
fn node_local_malloc_refuses_other_files_and_static_programs() {
    let dir = std::env::temp_dir().join(format!("numakit-cli-preload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text_file = dir.join("libnumakit_malloc.so");
    std::fs::write(&text_file, "not a library\n").unwrap();
    let marker = dir.join("ran");
    let m = marker.to_str().unwrap();
    // The test program itself: a shared object (PIE) without malloc.
    let exe = std::env::current_exe().unwrap();
    // A FIFO (opening it would wait for a writer) and a device.
    let fifo = dir.join("fifo.so");
    let fifo_c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o644) }, 0);
    let mut cases = vec![
        (text_file.clone(), "is not an ELF file"),
        (exe.clone(), "not a malloc library"),
        (fifo.clone(), "is not a file"),
        ("/dev/zero".into(), "is not a file"),
    ];
    // Another allocator: glibc defines malloc, free and malloc_usable_size.
    let libc_so = std::path::PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6");
    if libc_so.is_file() {
        cases.push((libc_so, "another allocator"));
    }
    for (lib, said) in &cases {
        let out = numakit()
            .args([
                "run",
                "--node",
                "0",
                "--node-local-malloc",
                "--",
                "touch",
                m,
            ])
            .env("NUMAKIT_MALLOC_LIB", lib)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(said), "{said}: {stderr}");
        assert!(!marker.exists(), "{lib:?}: the command ran");
    }
    // A program that is a FIFO is left to exec's own error (no wait).
    let out = numakit()
        .args(["run", "--node", "0", "--node-local-malloc", "--"])
        .arg(&fifo)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}
