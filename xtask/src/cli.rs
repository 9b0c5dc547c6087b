//! Command-line parsing (std only): `--opt value`, `--opt=value`, and `--`
//! before the arguments passed through to the test binaries.

use std::path::PathBuf;
use std::time::Duration;

use crate::Result;

/// `cargo xtask help`.
pub const USAGE: &str = "\
Usage: cargo xtask <task> [options] [-- extra args]

Tasks:
  vm-test [options] [-- libtest args]
      Build the workspace's test binaries (`cargo test --workspace --no-run`,
      without xtask, numakit-macros and numakit-ui-tests), boot them in a qemu
      guest with the chosen NUMA topology and run each one there with
      NUMAKIT_EXPECT_NODES=<n> NUMAKIT_IN_VM=1 and
      `--test-threads=1 --include-ignored --skip host_only [libtest args]`.
  vm-run [options] [--libtest] [--install FILE]... PATH... [-- args]
      Run the given executables in the guest instead, each with `args` only;
      with --libtest, as test binaries are run by vm-test. Each --install
      FILE (a program, a script or a shared library) is put in the guest's
      /usr/bin/ under its own name, with the libraries ldd lists for it,
      and not run: for the executables to use (the `numakit` command,
      programs a script runs, a library to LD_PRELOAD).
  help
      Print this text.

Guest topology:
  --nodes N                  NUMA nodes (default 2)
  --cpus-per-node C[,C...]   vCPUs per node, or one value per node; 0 makes a
                             CPU-less node (default 1)
  --mem-per-node S[,S...]    memory per node (512M, 1G, 0...), or one value per
                             node; 0 makes a memoryless node (default 512M)
  --hugepages-per-node N     2 MiB hugepages to reserve on each node that has
                             memory (default 0)
  --expect-nodes N           NUMAKIT_EXPECT_NODES given to the tests
                             (default: --nodes)
  --distances M              the ACPI SLIT distance matrix (qemu `-numa dist`):
                             rows separated by `/`, entries by `,`, one row
                             and column per node, 10 on the diagonal, 11-254
                             elsewhere (`10,21/21,10`); or `two-sockets`: an
                             even number of nodes, the first half one socket,
                             the second half another (10 local, 21 same
                             socket, 31 other socket). The tests get it as
                             NUMAKIT_EXPECT_DISTANCES (same syntax, the
                             matrix written out). Default: qemu's, 10 local
                             and 20 remote.

Cgroup:
  --cgroup-mems LIST         run the binaries inside a cgroup2 cpuset whose
                             cpuset.mems is LIST (node list: 0, 0-1, 0,2);
                             the tests see NUMAKIT_EXPECT_MEMS=LIST
  --cgroup-cpus LIST         same, with cpuset.cpus = LIST (CPU list); the
                             tests see NUMAKIT_EXPECT_CGROUP_CPUS=LIST

Run:
  --timeout SECS             limit for the whole guest run, host side; qemu is
                             killed and the run fails past it (default 600)
  --accel auto|tcg|kvm       accelerator (default auto: KVM only where it can
                             run a stock kernel, else TCG)
  --keep                     keep the work dir (initramfs, serial log) under
                             target/xtask/
Build (vm-test):
  --features F               passed to cargo (repeatable)
  --release                  build in release mode
  --example NAME             also build this example of the root package and
                             run it in the guest after the tests (repeatable)

Output: the guest console is streamed live; then one summary line per binary
and a final `N passed, N failed` line (tests). Exit status 0 when every binary
exited 0, 1 when one failed, timed out or never started, 2 on setup errors.
";

/// A parsed command line.
#[derive(Debug)]
pub enum Command {
    /// `help`, `--help`, `-h` or nothing.
    Help,
    /// `vm-test`.
    VmTest(VmOptions),
    /// `vm-run` with the executables to run.
    VmRun(VmOptions, Vec<PathBuf>),
}

/// Which accelerator qemu should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM when it is usable for a stock kernel, TCG otherwise.
    Auto,
    /// Always TCG (software emulation).
    Tcg,
    /// Always KVM (fails if qemu cannot use it).
    Kvm,
}

/// Options of `vm-test` and `vm-run`.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// vCPUs of each node (one entry per node).
    pub cpus: Vec<usize>,
    /// Memory of each node in MiB (one entry per node; 0 = memoryless).
    pub mem_mib: Vec<u64>,
    /// 2 MiB hugepages to reserve per node with memory.
    pub hugepages_per_node: u64,
    /// Whole-guest time limit.
    pub timeout: Duration,
    /// What `NUMAKIT_EXPECT_NODES` says in the guest.
    pub expect_nodes: usize,
    /// `--distances`: the distance matrix, one row per node; `None` leaves
    /// qemu's default (10 local, 20 remote).
    pub distances: Option<Vec<Vec<u32>>>,
    /// Keep the work dir.
    pub keep: bool,
    /// `--features` values for cargo.
    pub features: Vec<String>,
    /// Build with `--release`.
    pub release: bool,
    /// Examples to build and run after the tests.
    pub examples: Vec<String>,
    /// Accelerator choice.
    pub accel: Accel,
    /// `vm-run --libtest`: run the executables as libtest harnesses.
    pub libtest: bool,
    /// `vm-run --install`: files put in the guest's `/usr/bin/`, not run.
    pub installs: Vec<PathBuf>,
    /// Arguments after `--`.
    pub extra: Vec<String>,
    /// `--cgroup-mems`: the guest runs the binaries in a cpuset cgroup
    /// with these memory nodes.
    pub cgroup_mems: Option<String>,
    /// `--cgroup-cpus`: the guest runs the binaries in a cpuset cgroup
    /// with these CPUs.
    pub cgroup_cpus: Option<String>,
}

impl VmOptions {
    /// Number of NUMA nodes.
    pub fn nodes(&self) -> usize {
        self.cpus.len()
    }

    /// Total vCPUs.
    pub fn total_cpus(&self) -> usize {
        self.cpus.iter().sum()
    }

    /// Total memory in MiB.
    pub fn total_mem_mib(&self) -> u64 {
        self.mem_mib.iter().sum()
    }
}

/// Parses the arguments after `cargo xtask`.
pub fn parse(args: &[String]) -> Result<Command> {
    let Some((task, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
    match task.as_str() {
        "help" | "--help" | "-h" => Ok(Command::Help),
        "vm-test" => {
            let (options, paths) = parse_vm(rest, false)?;
            debug_assert!(paths.is_empty());
            Ok(Command::VmTest(options))
        }
        "vm-run" => {
            let (options, paths) = parse_vm(rest, true)?;
            if paths.is_empty() {
                return Err("vm-run needs at least one executable".into());
            }
            Ok(Command::VmRun(options, paths))
        }
        other => Err(format!("unknown task `{other}`")),
    }
}

/// Parses the options of `vm-test` (`positionals == false`) or `vm-run`.
fn parse_vm(args: &[String], positionals: bool) -> Result<(VmOptions, Vec<PathBuf>)> {
    let mut nodes: usize = 2;
    let mut cpus = "1".to_string();
    let mut mem = "512M".to_string();
    let mut expect_nodes = None;
    let mut distances = None;
    let mut options = VmOptions {
        cpus: Vec::new(),
        mem_mib: Vec::new(),
        hugepages_per_node: 0,
        timeout: Duration::from_secs(600),
        expect_nodes: 0,
        distances: None,
        keep: false,
        features: Vec::new(),
        release: false,
        examples: Vec::new(),
        accel: Accel::Auto,
        libtest: false,
        installs: Vec::new(),
        extra: Vec::new(),
        cgroup_mems: None,
        cgroup_cpus: None,
    };
    let mut paths = Vec::new();

    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--" {
            options.extra = iter.by_ref().cloned().collect();
            break;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if arg.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        // Takes the option's value from `--opt=value` or the next argument.
        let mut value = |name: &str| -> Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => iter
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag {
            "--nodes" => nodes = parse_count(flag, &value(flag)?)?,
            "--cpus-per-node" => cpus = value(flag)?,
            "--mem-per-node" => mem = value(flag)?,
            "--hugepages-per-node" => {
                options.hugepages_per_node = parse_count(flag, &value(flag)?)? as u64;
            }
            "--expect-nodes" => expect_nodes = Some(parse_count(flag, &value(flag)?)?),
            "--distances" => distances = Some(value(flag)?),
            "--timeout" => {
                let secs = parse_count(flag, &value(flag)?)?;
                if secs == 0 {
                    return Err("--timeout must be at least 1".into());
                }
                options.timeout = Duration::from_secs(secs as u64);
            }
            "--accel" => {
                options.accel = match value(flag)?.as_str() {
                    "auto" => Accel::Auto,
                    "tcg" => Accel::Tcg,
                    "kvm" => Accel::Kvm,
                    other => return Err(format!("--accel: unknown accelerator `{other}`")),
                }
            }
            "--keep" => options.keep = true,
            "--cgroup-mems" => options.cgroup_mems = Some(parse_id_list(flag, &value(flag)?)?),
            "--cgroup-cpus" => options.cgroup_cpus = Some(parse_id_list(flag, &value(flag)?)?),
            "--release" if !positionals => options.release = true,
            "--features" | "-F" if !positionals => options.features.push(value(flag)?),
            "--example" if !positionals => options.examples.push(value(flag)?),
            "--libtest" if positionals => options.libtest = true,
            "--install" if positionals => options.installs.push(PathBuf::from(value(flag)?)),
            _ if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
            _ if positionals => paths.push(PathBuf::from(arg)),
            _ => {
                return Err(format!(
                    "unexpected argument `{arg}` (libtest args go after `--`)"
                ))
            }
        }
    }

    if nodes == 0 || nodes > 64 {
        return Err(format!("--nodes must be between 1 and 64, not {nodes}"));
    }
    options.cpus = per_node("--cpus-per-node", &cpus, nodes, |s| {
        parse_count("--cpus-per-node", s)
    })?;
    options.mem_mib = per_node("--mem-per-node", &mem, nodes, parse_size_mib)?;
    if options.total_cpus() == 0 {
        return Err("the guest needs at least one vCPU".into());
    }
    if options.total_mem_mib() == 0 {
        return Err("the guest needs memory on at least one node".into());
    }
    if let Some(node) = (0..nodes).find(|&n| options.cpus[n] == 0 && options.mem_mib[n] == 0) {
        // Linux does not bring such a node online: the guest would show
        // fewer nodes than asked for.
        return Err(format!(
            "node {node} has neither CPUs nor memory; Linux would not bring it online"
        ));
    }
    options.expect_nodes = expect_nodes.unwrap_or(nodes);
    if let Some(spec) = distances {
        if let Some(first) = options.cpus.iter().position(|&c| c == 0) {
            if options.cpus[first..].iter().any(|&c| c > 0) {
                // The guest would number that node after the ones with CPUs
                // (see `qemu::numbering_warning`): rows would not match.
                return Err(format!(
                    "--distances: CPU-less node {first} comes before a node with CPUs, so \
                     the guest numbers nodes differently from qemu; put CPU-less nodes last"
                ));
            }
        }
        options.distances = Some(parse_distances(&spec, nodes)?);
    }
    check_ids(
        "--cgroup-mems",
        options.cgroup_mems.as_deref(),
        nodes,
        "nodes",
    )?;
    check_ids(
        "--cgroup-cpus",
        options.cgroup_cpus.as_deref(),
        options.total_cpus(),
        "vCPUs",
    )?;
    Ok((options, paths))
}

/// Parses `--distances`: `two-sockets`, or rows `a,b,.../c,d,...`.
pub fn parse_distances(spec: &str, nodes: usize) -> Result<Vec<Vec<u32>>> {
    if spec.trim() == "two-sockets" {
        if nodes < 2 || !nodes.is_multiple_of(2) {
            return Err(format!(
                "--distances two-sockets needs an even number of nodes (2 or more), not {nodes}"
            ));
        }
        let socket = |n: usize| n / (nodes / 2);
        return Ok((0..nodes)
            .map(|i| {
                (0..nodes)
                    .map(|j| match (i == j, socket(i) == socket(j)) {
                        (true, _) => 10,
                        (false, true) => 21,
                        (false, false) => 31,
                    })
                    .collect()
            })
            .collect());
    }
    let matrix = spec
        .split('/')
        .map(|row| {
            row.split(',')
                .map(|v| {
                    v.trim().parse::<u32>().map_err(|_| {
                        format!("--distances: `{v}` is not a distance (an integer 10-254)")
                    })
                })
                .collect::<Result<Vec<u32>>>()
        })
        .collect::<Result<Vec<Vec<u32>>>>()?;
    if matrix.len() != nodes {
        return Err(format!(
            "--distances: {} rows for {nodes} nodes (one row per node, rows separated by `/`)",
            matrix.len()
        ));
    }
    for (i, row) in matrix.iter().enumerate() {
        if row.len() != nodes {
            return Err(format!(
                "--distances: row {i} has {} entries for {nodes} nodes",
                row.len()
            ));
        }
        for (j, &d) in row.iter().enumerate() {
            if i == j && d != 10 {
                return Err(format!(
                    "--distances: node {i} to itself must be 10 (local), not {d}"
                ));
            }
            if i != j && !(11..=254).contains(&d) {
                return Err(format!(
                    "--distances: node {i} to node {j} is {d}; remote distances are 11-254"
                ));
            }
        }
    }
    Ok(matrix)
}

/// The matrix as `--distances` and `NUMAKIT_EXPECT_DISTANCES` write it.
pub fn format_distances(matrix: &[Vec<u32>]) -> String {
    matrix
        .iter()
        .map(|row| row.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
        .collect::<Vec<_>>()
        .join("/")
}

/// Checks a kernel id list (`0`, `0-1`, `0,2-3`) and returns it unchanged.
fn parse_id_list(flag: &str, s: &str) -> Result<String> {
    let bad = || format!("{flag}: `{s}` is not a list like 0, 0-1 or 0,2-3");
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    for part in s.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let lo: usize = lo.parse().map_err(|_| bad())?;
        let hi: usize = hi.parse().map_err(|_| bad())?;
        if lo > hi {
            return Err(bad());
        }
    }
    Ok(s.to_string())
}

/// Checks that every id of `list` is below `count`.
fn check_ids(flag: &str, list: Option<&str>, count: usize, what: &str) -> Result<()> {
    let Some(list) = list else { return Ok(()) };
    for part in list.split(',') {
        let hi = part.rsplit('-').next().unwrap_or(part);
        if hi.parse::<usize>().map_or(true, |id| id >= count) {
            return Err(format!(
                "{flag}: `{list}` names ids the guest does not have (it has {count} {what})"
            ));
        }
    }
    Ok(())
}

/// Parses a non-negative integer option.
fn parse_count(flag: &str, s: &str) -> Result<usize> {
    s.trim()
        .parse()
        .map_err(|_| format!("{flag}: `{s}` is not a non-negative integer"))
}

/// Parses `V` (same for every node) or `V1,V2,...` (exactly one per node).
fn per_node<T: Clone>(
    flag: &str,
    s: &str,
    nodes: usize,
    parse_one: impl Fn(&str) -> Result<T>,
) -> Result<Vec<T>> {
    let values = s
        .split(',')
        .map(|part| parse_one(part.trim()))
        .collect::<Result<Vec<T>>>()?;
    match values.len() {
        1 => Ok(vec![values[0].clone(); nodes]),
        n if n == nodes => Ok(values),
        n => Err(format!(
            "{flag}: {n} values given for {nodes} nodes (give one, or one per node)"
        )),
    }
}

/// Parses a memory size into MiB: `512`, `512M`, `512MiB`, `1G`, `1GiB`,
/// `524288K`, `0`. A bare number means MiB (as qemu's `-m`).
pub fn parse_size_mib(s: &str) -> Result<u64> {
    let err = || format!("--mem-per-node: `{s}` is not a size like 512M or 1G");
    let upper = s.trim().to_ascii_uppercase();
    let unit_start = upper
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(upper.len());
    let (digits, unit) = upper.split_at(unit_start);
    let number: u64 = digits.parse().map_err(|_| err())?;
    let unit = unit.trim_end_matches("IB").trim_end_matches('B');
    let mib = match unit {
        "" | "M" => Some(number),
        "G" => number.checked_mul(1024),
        "T" => number.checked_mul(1024 * 1024),
        "K" if number.is_multiple_of(1024) => Some(number / 1024),
        "K" => {
            return Err(format!(
                "--mem-per-node: `{s}` is not a whole number of MiB"
            ))
        }
        _ => return Err(err()),
    };
    mib.ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn vm_test(s: &str) -> VmOptions {
        match parse(&args(s)).unwrap() {
            Command::VmTest(options) => options,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let o = vm_test("vm-test");
        assert_eq!(o.cpus, vec![1, 1]);
        assert_eq!(o.mem_mib, vec![512, 512]);
        assert_eq!(o.expect_nodes, 2);
        assert_eq!(o.hugepages_per_node, 0);
        assert!(o.extra.is_empty());
    }

    #[test]
    fn lists_and_passthrough() {
        let o = vm_test(
            "vm-test --nodes 4 --mem-per-node 512M,512M,1G,0 --cpus-per-node=2 \
             --hugepages-per-node 16 --expect-nodes 3 --features hwloc -- --nocapture foo",
        );
        assert_eq!(o.cpus, vec![2; 4]);
        assert_eq!(o.mem_mib, vec![512, 512, 1024, 0]);
        assert_eq!(o.total_mem_mib(), 2048);
        assert_eq!(o.expect_nodes, 3);
        assert_eq!(o.hugepages_per_node, 16);
        assert_eq!(o.features, vec!["hwloc"]);
        assert_eq!(o.extra, vec!["--nocapture", "foo"]);
    }

    #[test]
    fn memoryless_node_0() {
        let o = vm_test("vm-test --mem-per-node 0,512M");
        assert_eq!(o.mem_mib, vec![0, 512]);
    }

    #[test]
    fn cpu_less_nodes() {
        let o = vm_test("vm-test --nodes 3 --cpus-per-node 2,0,1");
        assert_eq!(o.cpus, vec![2, 0, 1]);
        assert_eq!(o.total_cpus(), 3);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "vm-test --nodes 0",
            "vm-test --nodes 3 --mem-per-node 512M,512M",
            "vm-test --cpus-per-node 1,0 --mem-per-node 512M,0",
            "vm-test --cpus-per-node 0",
            "vm-test --mem-per-node 12Q",
            "vm-test --frobnicate",
            "vm-test stray",
            "vm-test --nodes",
            "vm-run --nodes 2",
            "vm-run a --install",
            "vm-test --install a",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn vm_run_paths() {
        match parse(&args("vm-run --nodes 3 a --libtest b -- x")).unwrap() {
            Command::VmRun(o, paths) => {
                assert!(o.libtest);
                assert_eq!(o.nodes(), 3);
                assert_eq!(paths, vec![PathBuf::from("a"), PathBuf::from("b")]);
                assert_eq!(o.extra, vec!["x"]);
                assert!(o.installs.is_empty());
            }
            other => panic!("{other:?}"),
        }
        match parse(&args("vm-run --install lib.so a --install=t -- x")).unwrap() {
            Command::VmRun(o, paths) => {
                assert_eq!(
                    o.installs,
                    vec![PathBuf::from("lib.so"), PathBuf::from("t")]
                );
                assert_eq!(paths, vec![PathBuf::from("a")]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn distances() {
        let o = vm_test("vm-test --nodes 4 --distances two-sockets");
        let m = o.distances.unwrap();
        assert_eq!(
            format_distances(&m),
            "10,21,31,31/21,10,31,31/31,31,10,21/31,31,21,10"
        );
        let o = vm_test("vm-test --distances=10,15/17,10");
        assert_eq!(o.distances.unwrap(), vec![vec![10, 15], vec![17, 10]]);
        assert!(vm_test("vm-test").distances.is_none());
        let m = parse_distances("two-sockets", 8).unwrap();
        assert_eq!(m[0], [10, 21, 21, 21, 31, 31, 31, 31]);
        assert_eq!(m[5], [31, 31, 31, 31, 21, 10, 21, 21]);
        for bad in [
            "vm-test --nodes 3 --distances two-sockets",
            "vm-test --nodes 1 --distances two-sockets",
            "vm-test --distances 10,21",
            "vm-test --distances 10,21/21",
            "vm-test --distances 10,21/21,10/10",
            "vm-test --distances 11,21/21,10",
            "vm-test --distances 10,10/21,10",
            "vm-test --distances 10,255/21,10",
            "vm-test --distances 10,x/21,10",
            "vm-test --distances 10,-1/21,10",
            "vm-test --distances",
            "vm-test --nodes 3 --cpus-per-node 1,0,1 --distances 10,21,21/21,10,21/21,21,10",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
        // A CPU-less node last keeps qemu's numbering: accepted.
        let o = vm_test(
            "vm-test --nodes 3 --cpus-per-node 1,1,0 --distances 10,21,31/21,10,31/31,31,10",
        );
        assert_eq!(o.distances.unwrap()[2], [31, 31, 10]);
    }

    #[test]
    fn cgroup_lists() {
        let o = vm_test("vm-test --cpus-per-node 2 --cgroup-mems 0 --cgroup-cpus=0-1,3");
        assert_eq!(o.cgroup_mems.as_deref(), Some("0"));
        assert_eq!(o.cgroup_cpus.as_deref(), Some("0-1,3"));
        assert_eq!(vm_test("vm-test").cgroup_mems, None);
        for bad in [
            "vm-test --cgroup-mems 2",
            "vm-test --cgroup-mems 1-0",
            "vm-test --cgroup-mems x",
            "vm-test --cgroup-mems ,",
            "vm-test --cgroup-mems=",
            "vm-test --cgroup-cpus 0-2",
            "vm-test --cgroup-mems 18446744073709551616",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size_mib("512M").unwrap(), 512);
        assert_eq!(parse_size_mib("512").unwrap(), 512);
        assert_eq!(parse_size_mib("1G").unwrap(), 1024);
        assert_eq!(parse_size_mib("1gib").unwrap(), 1024);
        assert_eq!(parse_size_mib("2048K").unwrap(), 2);
        assert_eq!(parse_size_mib("0").unwrap(), 0);
        assert!(parse_size_mib("1000K").is_err());
        assert!(parse_size_mib("M").is_err());
    }
}
