//! Booting the guest: accelerator choice, the qemu command line for the NUMA
//! topology, and a run that streams the serial console live (to stdout and to
//! a log file) under a host-side time limit.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::cli::{Accel, VmOptions};
use crate::initramfs::GUEST_UP;
use crate::Result;

/// The kernel command line: serial console, reboot (= qemu exits, with
/// `-no-reboot`) on panic, quiet boot.
const APPEND: &str = "console=ttyS0 panic=-1 quiet loglevel=3 mitigations=off tsc=reliable";

/// How long the guest's init may take to say it is up. A guest boots in a few
/// seconds under TCG; once in a while the emulated kernel stalls before init
/// (seen: `watchdog: BUG: soft lockup` in a kworker) and would sit there until
/// the whole run's limit. Such a guest is killed and booted again.
const BOOT_LIMIT: Duration = Duration::from_secs(120);

/// Boots tried before a guest that never reaches init is reported as such.
const BOOT_ATTEMPTS: u32 = 3;

/// What happened in one guest run.
#[derive(Debug)]
pub struct GuestRun {
    /// Console lines (without `\r`), each with the time since qemu started
    /// at which its end arrived.
    pub lines: Vec<(Duration, String)>,
    /// qemu's exit status; `None` when it was killed on timeout.
    pub status: Option<ExitStatus>,
    /// Whether the host-side limit was hit.
    pub timed_out: bool,
    /// qemu start to exit (or kill).
    pub wall: Duration,
    /// The accelerator used, with the reason it was chosen.
    pub accel: String,
}

/// Picks the accelerator; returns qemu's arguments for it and a description.
fn choose_accel(choice: Accel) -> (Vec<String>, String) {
    let tcg = |why: &str| {
        (
            ["-accel", "tcg,thread=multi", "-cpu", "max"]
                .map(String::from)
                .to_vec(),
            format!("tcg ({why})"),
        )
    };
    let kvm = |why: &str| {
        (
            ["-accel", "kvm", "-cpu", "host"].map(String::from).to_vec(),
            format!("kvm ({why})"),
        )
    };
    match choice {
        Accel::Tcg => tcg("--accel tcg"),
        Accel::Kvm => kvm("--accel kvm"),
        Accel::Auto => match kvm_unusable_reason() {
            Some(why) => tcg(&why),
            None => kvm("/dev/kvm usable, CPU has vmx/svm"),
        },
    }
}

/// Why KVM cannot boot a stock kernel here, or `None` if it can.
///
/// `kvm_pvm` (software nested virtualisation) provides `/dev/kvm` but cannot
/// run a stock kernel: qemu aborts with `-cpu host` and the guest dies on
/// emulation failures with other models.
fn kvm_unusable_reason() -> Option<String> {
    if Path::new("/sys/module/kvm_pvm").exists() {
        return Some("/dev/kvm is kvm_pvm, which cannot run a stock kernel".into());
    }
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return Some(format!("/dev/kvm: {e}"));
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has_virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if !has_virt {
        return Some("no vmx/svm CPU flag".into());
    }
    None
}

/// qemu's arguments for the NUMA topology (memory, CPUs, nodes).
fn topology_args(options: &VmOptions) -> Vec<String> {
    let cpus = options.total_cpus();
    let uniform = options.cpus.iter().all(|&c| c == options.cpus[0]);
    let smp = if uniform {
        format!(
            "{cpus},sockets={},cores={},threads=1",
            options.nodes(),
            options.cpus[0]
        )
    } else {
        cpus.to_string()
    };
    let mut args = vec![
        "-m".to_string(),
        format!("{}M", options.total_mem_mib()),
        "-smp".to_string(),
        smp,
    ];
    let mut first_cpu = 0;
    for (node, (&node_cpus, &mem)) in options.cpus.iter().zip(&options.mem_mib).enumerate() {
        let mut numa = format!("node,nodeid={node}");
        if node_cpus > 0 {
            let last = first_cpu + node_cpus - 1;
            if node_cpus == 1 {
                numa.push_str(&format!(",cpus={first_cpu}"));
            } else {
                numa.push_str(&format!(",cpus={first_cpu}-{last}"));
            }
            first_cpu = last + 1;
        }
        if mem > 0 {
            args.push("-object".into());
            args.push(format!("memory-backend-ram,id=m{node},size={mem}M"));
            numa.push_str(&format!(",memdev=m{node}"));
        }
        args.push("-numa".into());
        args.push(numa);
    }
    if let Some(matrix) = &options.distances {
        for (src, row) in matrix.iter().enumerate() {
            for (dst, &val) in row.iter().enumerate() {
                if src != dst {
                    args.push("-numa".into());
                    args.push(format!("dist,src={src},dst={dst},val={val}"));
                }
            }
        }
    }
    args
}

/// Linux numbers NUMA nodes in the order their proximity domains first appear
/// in the ACPI SRAT, which qemu writes CPUs first, then memory: a CPU-less
/// node placed before a node with CPUs gets a higher number in the guest than
/// its qemu `nodeid` (seen: `--cpus-per-node 1,0,1` gives the guest's node 1
/// the CPU of qemu's node 2).
fn numbering_warning(options: &VmOptions) -> Option<String> {
    let first_cpu_less = options.cpus.iter().position(|&c| c == 0)?;
    let later_with_cpus = options.cpus[first_cpu_less..].iter().any(|&c| c > 0);
    later_with_cpus.then(|| {
        format!(
            "CPU-less node {first_cpu_less} comes before a node with CPUs; Linux numbers \
             nodes with CPUs first, so guest node numbers will differ from the order given \
             here (put CPU-less nodes last)"
        )
    })
}

/// The full qemu command line (without the program name).
fn qemu_args(options: &VmOptions, accel: Vec<String>, kernel: &Path, initrd: &Path) -> Vec<String> {
    let mut args = accel;
    args.extend(["-machine", "pc"].map(String::from));
    args.extend(topology_args(options));
    args.extend([
        "-kernel".to_string(),
        kernel.display().to_string(),
        "-initrd".to_string(),
        initrd.display().to_string(),
        "-append".to_string(),
        APPEND.to_string(),
    ]);
    args.extend(
        [
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
            "-monitor",
            "none",
            // The serial console on our stdout (stdin is /dev/null, so qemu
            // leaves the terminal alone).
            "-chardev",
            "stdio,id=console",
            "-serial",
            "chardev:console",
        ]
        .map(String::from),
    );
    args
}

/// Quotes a word for display as a shell command.
fn display_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=,./:+".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Boots the guest and waits for it to power off, for at most the timeout.
pub fn run(options: &VmOptions, kernel: &Path, initrd: &Path, log: &Path) -> Result<GuestRun> {
    let (accel_args, accel) = choose_accel(options.accel);
    eprintln!("xtask: accelerator: {accel}");
    let args = qemu_args(options, accel_args, kernel, initrd);
    let program = "qemu-system-x86_64";
    eprintln!(
        "xtask: {program} {}",
        args.iter()
            .map(|a| display_word(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    eprintln!(
        "xtask: guest: {} nodes, cpus per node {:?}, MiB per node {:?}, {} hugepages per node, \
         NUMAKIT_EXPECT_NODES={}, timeout {} s",
        options.nodes(),
        options.cpus,
        options.mem_mib,
        options.hugepages_per_node,
        options.expect_nodes,
        options.timeout.as_secs()
    );
    if let Some(warning) = numbering_warning(options) {
        eprintln!("xtask: warning: {warning}");
    }
    let hugepage_mib = options.hugepages_per_node * 2;
    if let Some(node) = options
        .mem_mib
        .iter()
        .position(|&mem| mem > 0 && hugepage_mib * 2 > mem)
    {
        eprintln!(
            "xtask: warning: {hugepage_mib} MiB of hugepages is over half of node {node}'s \
             {} MiB; the guest may run out of memory (seen: init OOM-killed, kernel panic)",
            options.mem_mib[node]
        );
    }
    let mut attempt = 1;
    loop {
        let mut boot = boot_once(program, &args, options, log)?;
        if !boot.never_up || attempt == BOOT_ATTEMPTS {
            if boot.never_up {
                eprintln!(
                    "\nxtask: TIMEOUT: the guest did not reach init within {} s in any of \
                     {BOOT_ATTEMPTS} boots",
                    BOOT_LIMIT.as_secs()
                );
            }
            boot.run.accel = accel;
            return Ok(boot.run);
        }
        eprintln!(
            "\nxtask: the guest did not reach init within {} s (a TCG boot stall); \
             qemu killed, booting again ({} of {BOOT_ATTEMPTS})",
            BOOT_LIMIT.as_secs(),
            attempt + 1
        );
        attempt += 1;
    }
}

/// One boot, and whether it was abandoned because init never said it was up.
struct Boot {
    run: GuestRun,
    never_up: bool,
}

fn boot_once(program: &str, args: &[String], options: &VmOptions, log: &Path) -> Result<Boot> {
    let log_file = File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;

    let start = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("running {program} (install qemu-system-x86): {e}"))?;
    let stdout = child.stdout.take().ok_or("qemu stdout not captured")?;
    let up = Arc::new(AtomicBool::new(false));
    let reader = {
        let up = Arc::clone(&up);
        thread::spawn(move || stream_console(stdout, std::io::stdout(), log_file, start, &up))
    };

    let deadline = start + options.timeout;
    let boot_deadline = start + BOOT_LIMIT.min(options.timeout);
    let ended = wait_with_deadline(&mut child, deadline, boot_deadline, &up)?;
    let wall = start.elapsed();
    let lines = reader
        .join()
        .map_err(|_| "the console reader panicked".to_string())?;
    let (status, timed_out, never_up) = match ended {
        Ended::Exited(status) => (Some(status), false, false),
        Ended::TimedOut => (None, true, false),
        Ended::NeverUp => (None, true, true),
    };
    if timed_out && !never_up {
        eprintln!(
            "\nxtask: TIMEOUT: the guest did not power off within {} s; qemu killed",
            options.timeout.as_secs()
        );
    }
    Ok(Boot {
        run: GuestRun {
            lines,
            status,
            timed_out,
            wall,
            accel: String::new(),
        },
        never_up,
    })
}

/// How waiting for qemu ended.
#[derive(Debug, PartialEq)]
enum Ended {
    Exited(ExitStatus),
    /// Killed at the run's limit.
    TimedOut,
    /// Killed at the boot limit: init never said the guest was up.
    NeverUp,
}

/// Waits for qemu until `deadline`, or until `boot_deadline` if `up` is
/// still false then, and kills it at either.
fn wait_with_deadline(
    child: &mut Child,
    deadline: Instant,
    boot_deadline: Instant,
    up: &AtomicBool,
) -> Result<Ended> {
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("waiting for qemu: {e}"))?
        {
            return Ok(Ended::Exited(status));
        }
        let now = Instant::now();
        let never_up = now >= boot_deadline && !up.load(Ordering::Acquire);
        if now >= deadline || never_up {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(if never_up {
                Ended::NeverUp
            } else {
                Ended::TimedOut
            });
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Copies the console to our stdout and the log as it arrives, and splits it
/// into timestamped lines; sets `up` at init's "guest up" line. Ends when
/// qemu closes its stdout.
fn stream_console(
    mut console: impl Read,
    mut echo: impl Write,
    mut log: File,
    start: Instant,
    up: &AtomicBool,
) -> Vec<(Duration, String)> {
    let mut lines = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match console.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let chunk = &buf[..n];
        let _ = echo.write_all(chunk);
        let _ = echo.flush();
        let _ = log.write_all(chunk);
        for &byte in chunk {
            if byte == b'\n' {
                let line = clean_line(&partial);
                if line.contains(GUEST_UP) {
                    up.store(true, Ordering::Release);
                }
                lines.push((start.elapsed(), line));
                partial.clear();
            } else {
                partial.push(byte);
            }
        }
    }
    if !partial.is_empty() {
        lines.push((start.elapsed(), clean_line(&partial)));
    }
    lines
}

/// A console line as text, without carriage returns.
fn clean_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\r', "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, Command as Cli};
    use crate::initramfs::MARKER;

    fn options(s: &str) -> VmOptions {
        let args: Vec<String> = s.split_whitespace().map(String::from).collect();
        match parse(&args).unwrap() {
            Cli::VmTest(o) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn uniform_topology() {
        let args = topology_args(&options(
            "vm-test --nodes 2 --cpus-per-node 2 --mem-per-node 1G",
        ));
        assert_eq!(
            args.join(" "),
            "-m 2048M -smp 4,sockets=2,cores=2,threads=1 \
             -object memory-backend-ram,id=m0,size=1024M -numa node,nodeid=0,cpus=0-1,memdev=m0 \
             -object memory-backend-ram,id=m1,size=1024M -numa node,nodeid=1,cpus=2-3,memdev=m1"
        );
    }

    #[test]
    fn memoryless_and_cpu_less_nodes() {
        let args = topology_args(&options(
            "vm-test --nodes 3 --cpus-per-node 1,0,2 --mem-per-node 512M,512M,0",
        ));
        assert_eq!(
            args.join(" "),
            "-m 1024M -smp 3 \
             -object memory-backend-ram,id=m0,size=512M -numa node,nodeid=0,cpus=0,memdev=m0 \
             -object memory-backend-ram,id=m1,size=512M -numa node,nodeid=1,memdev=m1 \
             -numa node,nodeid=2,cpus=1-2"
        );
    }

    #[test]
    fn distance_matrix() {
        let args = topology_args(&options("vm-test --nodes 2 --distances 10,21/31,10"));
        assert_eq!(
            args[args.len() - 4..].join(" "),
            "-numa dist,src=0,dst=1,val=21 -numa dist,src=1,dst=0,val=31"
        );
        let args = topology_args(&options("vm-test --nodes 2"));
        assert!(!args.iter().any(|a| a.starts_with("dist")));
    }

    #[test]
    fn warns_about_renumbering() {
        assert!(numbering_warning(&options("vm-test --nodes 3 --cpus-per-node 1,0,1")).is_some());
        assert!(numbering_warning(&options("vm-test --nodes 3 --cpus-per-node 1,1,0")).is_none());
        assert!(numbering_warning(&options("vm-test --nodes 3")).is_none());
    }

    #[test]
    fn console_lines() {
        let path = std::env::temp_dir().join(format!("xtask-console-{}", std::process::id()));
        let log = File::create(&path).unwrap();
        let console = b"\x1b[2J@@x\r\nab\r\ncd".as_slice();
        let up = AtomicBool::new(false);
        let lines: Vec<String> = stream_console(console, std::io::sink(), log, Instant::now(), &up)
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        let _ = std::fs::remove_file(&path);
        assert_eq!(lines, vec!["\x1b[2J@@x", "ab", "cd"]);
        assert!(!up.load(Ordering::Relaxed));

        let log = File::create(&path).unwrap();
        let console = format!("boot noise\r\n{MARKER} {GUEST_UP}: kernel 6.1\r\n");
        let lines = stream_console(
            console.as_bytes(),
            std::io::sink(),
            log,
            Instant::now(),
            &up,
        );
        let _ = std::fs::remove_file(&path);
        assert_eq!(lines.len(), 2);
        assert!(up.load(Ordering::Relaxed));
    }

    #[test]
    fn a_guest_that_never_reaches_init_is_killed_at_the_boot_limit() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let now = Instant::now();
        let up = AtomicBool::new(false);
        let ended = wait_with_deadline(
            &mut child,
            now + Duration::from_secs(60),
            now + Duration::from_millis(100),
            &up,
        )
        .unwrap();
        assert_eq!(ended, Ended::NeverUp);
        assert!(now.elapsed() < Duration::from_secs(10));

        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let now = Instant::now();
        up.store(true, Ordering::Relaxed);
        let ended = wait_with_deadline(
            &mut child,
            now + Duration::from_millis(300),
            now + Duration::from_millis(100),
            &up,
        )
        .unwrap();
        assert_eq!(ended, Ended::TimedOut);

        let mut child = Command::new("true").spawn().unwrap();
        let now = Instant::now();
        let ended = wait_with_deadline(
            &mut child,
            now + Duration::from_secs(60),
            now + Duration::from_secs(60),
            &up,
        )
        .unwrap();
        assert!(matches!(ended, Ended::Exited(s) if s.success()));
    }
}
