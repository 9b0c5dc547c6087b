//! The guest's initramfs: a newc cpio archive written here (no `cpio` tool
//! needed) holding static busybox, the binaries, every shared library `ldd`
//! lists for them (at the same paths, dynamic loader included), and `/init`.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::VmOptions;
use crate::Result;

/// Marker prefix on the guest console. The host matches it anywhere in a line
/// (the firmware can leave the cursor mid-line).
pub const MARKER: &str = "@@numakit-vm:";

/// What init prints (after [`MARKER`]) as soon as it runs.
pub const GUEST_UP: &str = "guest up";

/// Where the binaries live in the guest.
const GUEST_BIN_DIR: &str = "/numakit/bin";

/// Static busybox from `busybox-static`.
const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// One executable to run in the guest.
#[derive(Debug, Clone)]
pub struct GuestBinary {
    /// Name in markers and the summary; `[A-Za-z0-9._:/+-]` only.
    pub label: String,
    /// The executable on the host.
    pub host_path: PathBuf,
    /// How it is run.
    pub kind: BinaryKind,
}

/// How a binary is run in the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryKind {
    /// A libtest harness: `--test-threads=1 --include-ignored --skip host_only`
    /// and the extra
    /// arguments.
    Test,
    /// An example run after the tests, without arguments.
    Example,
    /// A `vm-run` executable: the extra arguments only.
    Executable,
    /// A command of the workspace (a `[[bin]]` target, e.g. `numakit`),
    /// installed as `/usr/bin/NAME` for the tests to run; not run itself.
    Tool,
}

/// Makes labels marker-safe (no spaces or shell metacharacters) and unique.
pub fn make_labels_unique(binaries: &mut [GuestBinary]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for binary in binaries {
        let mut label: String = binary
            .label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._:/+-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let count = seen.entry(label.clone()).or_insert(0);
        *count += 1;
        if *count > 1 {
            label = format!("{label}#{count}");
        }
        binary.label = label;
    }
}

/// Builds the initramfs at `out`; returns its size in bytes.
pub fn build(out: &Path, binaries: &[GuestBinary], options: &VmOptions) -> Result<u64> {
    let busybox = BUSYBOX_CANDIDATES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .ok_or("busybox not found (install busybox-static)")?;
    check_static(busybox)?;

    // Shared libraries of every binary (ldd lists the whole closure).
    let mut libraries = BTreeSet::new();
    for binary in binaries {
        libraries.extend(shared_libraries(&binary.host_path)?);
    }

    let file = File::create(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let mut cpio = CpioWriter::new(BufWriter::new(file));
    let io_err = |e: io::Error| format!("writing {}: {e}", out.display());

    let mut dirs_done = BTreeSet::new();
    for dir in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "root",
        "numakit",
        "numakit/bin",
        "numakit/work",
    ] {
        cpio.dir(dir).map_err(io_err)?;
        dirs_done.insert(dir.to_string());
    }
    // An initial console, so that even errors before `/init` mounts devtmpfs
    // are visible.
    cpio.char_device("dev/console", 0o600, 5, 1)
        .map_err(io_err)?;
    cpio.file_from_host("bin/busybox", busybox, 0o755)
        .map_err(|e| format!("adding {}: {e}", busybox.display()))?;

    for library in &libraries {
        let guest = library.to_string_lossy();
        let guest = guest.trim_start_matches('/');
        add_parent_dirs(&mut cpio, guest, &mut dirs_done).map_err(io_err)?;
        // Follows symlinks: the guest gets a regular file at the path ldd
        // printed, which is the path the loader and binaries look for.
        cpio.file_from_host(guest, library, 0o755)
            .map_err(|e| format!("adding {}: {e}", library.display()))?;
    }
    let strip_dir = out.with_extension("stripped");
    for (index, binary) in binaries.iter().enumerate() {
        let guest = guest_path(index, binary);
        let host = stripped_copy(&binary.host_path, &strip_dir, index);
        cpio.file_from_host(guest.trim_start_matches('/'), &host, 0o755)
            .map_err(|e| format!("adding {}: {e}", binary.host_path.display()))?;
    }
    let _ = std::fs::remove_dir_all(&strip_dir);
    let script = init_script(binaries, options);
    cpio.file("init", script.as_bytes(), 0o755)
        .map_err(io_err)?;
    let size = cpio.finish().map_err(io_err)?;
    Ok(size)
}

/// A copy of `binary` without debug information (`objcopy --strip-debug`):
/// debug test binaries are mostly DWARF (17 MB of which ~2 MB is code), and
/// the guest keeps the whole initramfs in node 0's memory. Symbols stay, so
/// backtraces still name functions. Falls back to the binary itself when
/// objcopy is missing or fails.
fn stripped_copy(binary: &Path, dir: &Path, index: usize) -> std::path::PathBuf {
    if std::fs::create_dir_all(dir).is_err() {
        return binary.to_path_buf();
    }
    let out = dir.join(format!("{index:02}"));
    let ok = std::process::Command::new("objcopy")
        .arg("--strip-debug")
        .arg(binary)
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        out
    } else {
        eprintln!(
            "xtask: objcopy --strip-debug failed for {}; packing it with its debug info",
            binary.display()
        );
        binary.to_path_buf()
    }
}

/// The path of a binary in the guest.
fn guest_path(index: usize, binary: &GuestBinary) -> String {
    let file_name = binary
        .host_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if binary.kind == BinaryKind::Tool {
        return format!("/usr/bin/{file_name}");
    }
    let file_name: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{GUEST_BIN_DIR}/{index:02}-{file_name}")
}

/// Adds the directories above `path` (relative) that were not added yet.
fn add_parent_dirs<W: Write>(
    cpio: &mut CpioWriter<W>,
    path: &str,
    done: &mut BTreeSet<String>,
) -> io::Result<()> {
    let mut prefix = String::new();
    let components: Vec<&str> = path.split('/').collect();
    for component in &components[..components.len().saturating_sub(1)] {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(component);
        if done.insert(prefix.clone()) {
            cpio.dir(&prefix)?;
        }
    }
    Ok(())
}

/// Fails unless `ldd` says the file is static (busybox must run before any
/// library path exists).
fn check_static(path: &Path) -> Result<()> {
    if shared_libraries(path)?.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} is dynamically linked; install busybox-static",
            path.display()
        ))
    }
}

/// Runs `ldd` on a file and returns the absolute library paths it lists
/// (the dynamic loader included). Static executables give an empty list.
fn shared_libraries(path: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(path)
        .output()
        .map_err(|e| format!("running ldd: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        // glibc's ldd exits 1 with "not a dynamic executable" for static files.
        if stdout.contains("not a dynamic executable")
            || stderr.contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        return Err(format!("ldd {} failed: {}", path.display(), stderr.trim()));
    }
    parse_ldd(&stdout).map_err(|e| format!("ldd {}: {e}", path.display()))
}

/// Parses `ldd` output.
fn parse_ldd(text: &str) -> std::result::Result<Vec<PathBuf>, String> {
    let mut libraries = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.contains("statically linked") {
            continue;
        }
        if line.contains("=> not found") {
            return Err(format!("missing library: {line}"));
        }
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`,
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`, `linux-vdso.so.1 (0x...)`.
        let candidate = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = candidate.filter(|p| p.starts_with('/')) {
            libraries.push(PathBuf::from(path));
        }
    }
    Ok(libraries)
}

/// Single-quotes a word for `sh`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The guest's `/init` (busybox `sh`).
pub fn init_script(binaries: &[GuestBinary], options: &VmOptions) -> String {
    let mut s = String::new();
    let extra: Vec<String> = options.extra.iter().map(|a| shell_quote(a)).collect();
    let extra = extra.join(" ");
    // libtest refuses `--test-threads` twice: the caller's wins.
    let threads = if options
        .extra
        .iter()
        .any(|a| a.starts_with("--test-threads"))
    {
        ""
    } else {
        "--test-threads=1 "
    };
    s.push_str(&format!(
        r#"#!/bin/busybox sh
# Generated by `cargo xtask`; runs as PID 1 in the guest.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root RUST_BACKTRACE=1
exec </dev/console >/dev/console 2>&1
M='{MARKER}'
echo
echo "$M {GUEST_UP}: kernel $(uname -r)"

# Hugepages on every node that has memory, then the topology, on one line.
HP={hugepages}
line="nodes online=$(cat /sys/devices/system/node/online)"
for d in /sys/devices/system/node/node*; do
    n=${{d##*/}}
    mem=$(sed -n 's/.*MemTotal: *\([0-9]*\) kB.*/\1/p' "$d/meminfo")
    hp=""
    if [ "$HP" -gt 0 ] && [ "${{mem:-0}}" -gt 0 ]; then
        f="$d/hugepages/hugepages-2048kB/nr_hugepages"
        echo "$HP" > "$f"
        hp=" hugepages2M=$(cat "$f")/$HP"
    fi
    cpus=$(cat "$d/cpulist")
    dist=$(cat "$d/distance" | tr ' ' ',')
    line="$line | $n cpus=${{cpus:-none}} MemTotal=${{mem:-0}}kB dist=$dist$hp"
done
echo "$M topology $line"

export NUMAKIT_EXPECT_NODES={expect} NUMAKIT_IN_VM=1
export NUMAKIT_EXPECT_HUGEPAGES_2M={hugepages} NUMAKIT_EXPECT_MEMORYLESS={memoryless}
{distances}"#,
        distances = match &options.distances {
            Some(m) => format!(
                "export NUMAKIT_EXPECT_DISTANCES={}\n",
                crate::cli::format_distances(m)
            ),
            None => String::new(),
        },
        hugepages = options.hugepages_per_node,
        expect = options.expect_nodes,
        memoryless = u8::from(options.mem_mib.contains(&0)),
    ));
    s.push_str(&cgroup_script(options));
    for (index, binary) in binaries.iter().enumerate() {
        if binary.kind == BinaryKind::Tool {
            continue;
        }
        let path = guest_path(index, binary);
        let label = &binary.label;
        s.push_str(&format!(
            "\nmkdir -p /numakit/work/{index:02}\ncd /numakit/work/{index:02}\necho\necho \"$M start {label}\"\n"
        ));
        if binary.kind == BinaryKind::Test {
            // Name the host-only tests that `--skip host_only` leaves out.
            s.push_str(&format!(
                "for t in $({path} --list 2>/dev/null | sed -n 's/: test$//p' | grep host_only); do\n    echo \"$M host-only-skip {label} $t (skipped in the guest)\"\ndone\n{path} {threads}--include-ignored --skip host_only {extra}\n"
            ));
        } else if binary.kind == BinaryKind::Executable {
            s.push_str(&format!("{path} {extra}\n"));
        } else {
            s.push_str(&format!("{path}\n"));
        }
        s.push_str(&format!(
            "status=$?\necho\necho \"$M exit {label} $status\"\n"
        ));
    }
    s.push_str(
        r#"
cd /
echo
echo "$M done"
poweroff -f
# Never let PID 1 exit (that panics the kernel).
while :; do sleep 1; done
"#,
    );
    s
}

/// With `--cgroup-mems` / `--cgroup-cpus`: mount cgroup2, create the
/// cpuset cgroup `numakit`, move the init shell (and so every binary it
/// starts) into it and tell the tests what to expect. A step that fails
/// stops the run: the tests must not pass outside the cgroup they expect.
fn cgroup_script(options: &VmOptions) -> String {
    if options.cgroup_mems.is_none() && options.cgroup_cpus.is_none() {
        return String::new();
    }
    let mut s = String::from(
        r#"
# The cpuset cgroup the binaries run in.
cg_fail() { echo "$M cgroup setup failed: $1"; echo "$M done"; poweroff -f; while :; do sleep 1; done; }
CG=/sys/fs/cgroup
mount -t cgroup2 cgroup2 $CG || cg_fail "mount cgroup2"
echo +cpuset > $CG/cgroup.subtree_control || cg_fail "enable the cpuset controller"
mkdir -p $CG/numakit || cg_fail "mkdir $CG/numakit"
"#,
    );
    if let Some(cpus) = &options.cgroup_cpus {
        s.push_str(&format!(
            "echo {cpus} > $CG/numakit/cpuset.cpus || cg_fail \"cpuset.cpus={cpus}\"\n\
             export NUMAKIT_EXPECT_CGROUP_CPUS={cpus}\n"
        ));
    }
    if let Some(mems) = &options.cgroup_mems {
        s.push_str(&format!(
            "echo {mems} > $CG/numakit/cpuset.mems || cg_fail \"cpuset.mems={mems}\"\n\
             export NUMAKIT_EXPECT_MEMS={mems}\n"
        ));
    }
    s.push_str(
        r#"echo $$ > $CG/numakit/cgroup.procs || cg_fail "move into $CG/numakit"
echo "$M cgroup /numakit cpus=$(cat $CG/numakit/cpuset.cpus.effective) mems=$(cat $CG/numakit/cpuset.mems.effective) | $(grep -E '^(Cpus|Mems)_allowed_list' /proc/self/status | tr '\n\t' '  ')"
"#,
    );
    s
}

/// Writer for the "new ASCII" (`070701`, newc) cpio format the kernel's
/// initramfs unpacker reads: a 110-byte hex header, the NUL-terminated name
/// padded to 4 bytes, then the data padded to 4 bytes; ends with
/// `TRAILER!!!`.
pub struct CpioWriter<W: Write> {
    out: W,
    next_inode: u32,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive.
    pub fn new(out: W) -> Self {
        Self {
            out,
            next_inode: 1,
            written: 0,
        }
    }

    fn header(&mut self, name: &str, mode: u32, size: u64, rdev: (u32, u32)) -> io::Result<()> {
        let size = u32::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file over 4 GiB"))?;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let inode = self.next_inode;
        self.next_inode += 1;
        let header = format!(
            "070701{inode:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{size:08x}\
             {maj:08x}{min:08x}{rmaj:08x}{rmin:08x}{namesize:08x}{check:08x}",
            uid = 0,
            gid = 0,
            mtime = 0,
            maj = 0,
            min = 0,
            rmaj = rdev.0,
            rmin = rdev.1,
            namesize = name.len() + 1,
            check = 0,
        );
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let padding = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0; 3][..padding])
    }

    /// Adds a directory.
    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        self.header(name, 0o040755, 0, (0, 0))
    }

    /// Adds a character device node.
    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.header(name, 0o020000 | perm, 0, (major, minor))
    }

    /// Adds a regular file with the given contents.
    pub fn file(&mut self, name: &str, data: &[u8], perm: u32) -> io::Result<()> {
        self.header(name, 0o100000 | perm, data.len() as u64, (0, 0))?;
        self.put(data)?;
        self.pad()
    }

    /// Adds a regular file copied from the host (symlinks followed).
    pub fn file_from_host(&mut self, name: &str, host: &Path, perm: u32) -> io::Result<()> {
        let mut file = File::open(host)?;
        let size = file.metadata()?.len();
        self.header(name, 0o100000 | perm, size, (0, 0))?;
        let copied = io::copy(&mut file, &mut self.out)?;
        if copied != size {
            return Err(io::Error::other(format!(
                "{} changed size while being copied",
                host.display()
            )));
        }
        self.written += copied;
        self.pad()
    }

    /// Writes the trailer and flushes; returns the archive's size.
    pub fn finish(mut self) -> io::Result<u64> {
        self.header("TRAILER!!!", 0, 0, (0, 0))?;
        self.out.flush()?;
        Ok(self.written)
    }
}

/// The cpio entries as (name, mode, data) — for tests.
#[cfg(test)]
fn read_newc(mut bytes: &[u8]) -> std::collections::BTreeMap<String, (u32, Vec<u8>)> {
    let hex = |b: &[u8]| u32::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
    let mut entries = std::collections::BTreeMap::new();
    loop {
        assert_eq!(&bytes[..6], b"070701");
        let mode = hex(&bytes[14..22]);
        let size = hex(&bytes[54..62]) as usize;
        let namesize = hex(&bytes[94..102]) as usize;
        let name = std::str::from_utf8(&bytes[110..110 + namesize - 1])
            .unwrap()
            .to_string();
        let data_start = (110 + namesize).div_ceil(4) * 4;
        let data = bytes[data_start..data_start + size].to_vec();
        let next = (data_start + size).div_ceil(4) * 4;
        if name == "TRAILER!!!" {
            return entries;
        }
        entries.insert(name, (mode, data));
        bytes = &bytes[next..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tlibhwloc.so.15 => not found\n").is_err());
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
    }

    #[test]
    fn cpio_round_trip() {
        let mut buf = Vec::new();
        let mut cpio = CpioWriter::new(&mut buf);
        cpio.dir("bin").unwrap();
        cpio.file("bin/a", b"hello", 0o755).unwrap();
        cpio.file("b", b"", 0o644).unwrap();
        cpio.char_device("console", 0o600, 5, 1).unwrap();
        let size = cpio.finish().unwrap();
        assert_eq!(size as usize, buf.len());
        let entries = read_newc(&buf);
        assert_eq!(entries["bin"].0, 0o040755);
        assert_eq!(entries["bin/a"], (0o100755, b"hello".to_vec()));
        assert_eq!(entries["b"], (0o100644, Vec::new()));
        assert_eq!(entries["console"].0, 0o020600);
    }

    #[test]
    fn labels() {
        let mut binaries = vec![
            GuestBinary {
                label: "a b".into(),
                host_path: "/x".into(),
                kind: BinaryKind::Test,
            },
            GuestBinary {
                label: "a_b".into(),
                host_path: "/y".into(),
                kind: BinaryKind::Test,
            },
        ];
        make_labels_unique(&mut binaries);
        assert_eq!(binaries[0].label, "a_b");
        assert_eq!(binaries[1].label, "a_b#2");
    }

    #[test]
    fn script() {
        let cli::Command::VmTest(options) = cli::parse(
            &[
                "vm-test",
                "--hugepages-per-node",
                "8",
                "--expect-nodes",
                "3",
                "--",
                "it's",
            ]
            .map(String::from),
        )
        .unwrap() else {
            panic!()
        };
        let binaries = [
            GuestBinary {
                label: "numakit/lib".into(),
                host_path: "/t/numakit-abc".into(),
                kind: BinaryKind::Test,
            },
            GuestBinary {
                label: "ex".into(),
                host_path: "/t/ex".into(),
                kind: BinaryKind::Example,
            },
            GuestBinary {
                label: "numakit-cli/bin:numakit".into(),
                host_path: "/t/numakit".into(),
                kind: BinaryKind::Tool,
            },
        ];
        // A tool is installed for the tests, never run.
        assert_eq!(guest_path(2, &binaries[2]), "/usr/bin/numakit");
        let s = init_script(&binaries, &options);
        assert!(!s.contains("numakit-cli/bin"), "{s}");
        assert!(s.contains("HP=8\n"));
        assert!(s.contains("NUMAKIT_EXPECT_NODES=3 NUMAKIT_IN_VM=1"));
        assert!(!s.contains("NUMAKIT_EXPECT_DISTANCES"));
        assert!(s.contains(
            "/numakit/bin/00-numakit-abc --test-threads=1 --include-ignored --skip host_only 'it'\\''s'\n"
        ));
        assert!(s.contains("/numakit/bin/01-ex\n"));
        assert!(s.contains("echo \"$M exit numakit/lib $status\""));
        let cli::Command::VmTest(with_distances) = cli::parse(
            &["vm-test", "--nodes", "4", "--distances", "two-sockets"].map(String::from),
        )
        .unwrap() else {
            panic!()
        };
        let s2 = init_script(&binaries, &with_distances);
        assert!(s2.contains(
            "export NUMAKIT_EXPECT_DISTANCES=10,21,31,31/21,10,31,31/31,31,10,21/31,31,21,10\n"
        ));
        assert!(s.contains("poweroff -f"));
        assert!(!s.contains("cgroup2"));
    }

    #[test]
    fn cgroup_script_moves_the_runner_into_the_cpuset() {
        let cli::Command::VmTest(options) =
            cli::parse(&["vm-test", "--cgroup-mems", "0", "--cgroup-cpus", "1"].map(String::from))
                .unwrap()
        else {
            panic!()
        };
        let s = init_script(&[], &options);
        let mount = s.find("mount -t cgroup2").unwrap();
        let mems = s.find("echo 0 > $CG/numakit/cpuset.mems").unwrap();
        let cpus = s.find("echo 1 > $CG/numakit/cpuset.cpus").unwrap();
        let join = s.find("echo $$ > $CG/numakit/cgroup.procs").unwrap();
        assert!(mount < cpus && cpus < mems && mems < join, "{s}");
        assert!(s.contains("export NUMAKIT_EXPECT_MEMS=0\n"));
        assert!(s.contains("export NUMAKIT_EXPECT_CGROUP_CPUS=1\n"));
        assert!(join < s.rfind("$M done").unwrap());
    }
}
