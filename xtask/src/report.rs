//! Reading the guest console: the `/init` markers and libtest's
//! `test result:` lines, and the summary printed at the end.

use std::collections::HashMap;
use std::time::Duration;

use crate::cli::VmOptions;
use crate::initramfs::{BinaryKind, GuestBinary, MARKER};
use crate::qemu::GuestRun;

/// libtest's counts from its `test result:` line(s).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed.
    pub failed: u64,
    /// `#[ignore]`d tests.
    pub ignored: u64,
    /// Tests left out by filters (`--skip host_only` among them).
    pub filtered: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
        self.filtered += other.filtered;
    }
}

/// How one binary ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Exited 0.
    Ok,
    /// Exited non-zero.
    Failed,
    /// Started, but the host-side limit hit before its exit marker.
    TimedOut,
    /// Started, but the guest ended (panic, reset) before its exit marker.
    Died,
    /// No start marker.
    NeverStarted,
}

/// What the console says about one binary.
#[derive(Debug, Clone)]
pub struct BinaryOutcome {
    /// Its label.
    pub label: String,
    /// How it is run.
    pub kind: BinaryKind,
    /// Its exit status (`sh`'s `$?`: 128 + N for signal N).
    pub exit: Option<i32>,
    /// libtest counts, if it printed any.
    pub counts: Option<Counts>,
    /// `host_only` tests skipped in the guest.
    pub host_only: u64,
    /// Time from its start marker to its exit marker.
    pub duration: Option<Duration>,
    /// The verdict.
    pub verdict: Verdict,
}

/// Everything the console says.
#[derive(Debug)]
pub struct Outcome {
    /// Per binary, in run order.
    pub binaries: Vec<BinaryOutcome>,
    /// The guest's topology line.
    pub topology: Option<String>,
    /// When `/init` started (time since qemu started).
    pub boot: Option<Duration>,
    /// Whether `/init` reached the end.
    pub done: bool,
    /// Whether the host-side limit hit.
    pub timed_out: bool,
}

impl Outcome {
    /// Every binary exited 0 and the guest powered off by itself.
    pub fn success(&self) -> bool {
        self.done && !self.timed_out && self.binaries.iter().all(|b| b.verdict == Verdict::Ok)
    }

    /// Tests passed and failed over all binaries. A binary that failed
    /// without reporting a failing test (crash, signal, non-zero exit of an
    /// example, timeout, never started) counts as one failed test, so the
    /// plain total line never says `0 failed` for a failed run.
    pub fn totals(&self) -> (u64, u64) {
        let mut passed = 0;
        let mut failed = 0;
        for binary in &self.binaries {
            let counts = binary.counts.unwrap_or_default();
            passed += counts.passed;
            failed += counts.failed;
            if binary.verdict != Verdict::Ok && counts.failed == 0 {
                failed += 1;
            }
        }
        (passed, failed)
    }

    fn count(&self, verdict: Verdict) -> usize {
        self.binaries
            .iter()
            .filter(|b| b.verdict == verdict)
            .count()
    }
}

/// Parses libtest's `test result: ok. 3 passed; 0 failed; 1 ignored;
/// 0 measured; 2 filtered out; finished in 0.01s`, anywhere in a line.
pub fn parse_test_result(line: &str) -> Option<Counts> {
    let rest = &line[line.find("test result:")? + "test result:".len()..];
    let mut counts = Counts::default();
    let mut seen = false;
    for part in rest.split(';') {
        let words: Vec<&str> = part.split_whitespace().collect();
        // The first part is "ok. 3 passed" / "FAILED. 3 passed".
        let [.., number, what] = words.as_slice() else {
            continue;
        };
        let (number, what) = match (number.parse::<u64>(), *what) {
            (Ok(n), w) => (n, w),
            // "2 filtered out": the number is two words back.
            (Err(_), "out") if words.len() >= 3 && *number == "filtered" => {
                match words[words.len() - 3].parse::<u64>() {
                    Ok(n) => (n, "filtered"),
                    Err(_) => continue,
                }
            }
            _ => continue,
        };
        seen = true;
        match what {
            "passed" => counts.passed = number,
            "failed" => counts.failed = number,
            "ignored" => counts.ignored = number,
            "filtered" => counts.filtered = number,
            _ => {}
        }
    }
    seen.then_some(counts)
}

/// Reads the console of a run.
pub fn analyse(binaries: &[GuestBinary], run: &GuestRun) -> Outcome {
    #[derive(Default)]
    struct State {
        start: Option<Duration>,
        end: Option<Duration>,
        exit: Option<i32>,
        counts: Option<Counts>,
        host_only: u64,
    }
    let mut states: HashMap<&str, State> = HashMap::new();
    let mut current: Option<String> = None;
    let mut topology = None;
    let mut boot = None;
    let mut done = false;

    for (time, line) in &run.lines {
        if let Some(position) = line.find(MARKER) {
            let rest = line[position + MARKER.len()..].trim();
            let words: Vec<&str> = rest.split_whitespace().collect();
            match words.as_slice() {
                ["start", label, ..] => {
                    if let Some(b) = binaries.iter().find(|b| b.label == *label) {
                        states.entry(&b.label).or_default().start = Some(*time);
                        current = Some(b.label.clone());
                    }
                }
                ["exit", label, status, ..] => {
                    if let Some(b) = binaries.iter().find(|b| b.label == *label) {
                        let state = states.entry(&b.label).or_default();
                        state.exit = status.parse().ok().or(Some(-1));
                        state.end = Some(*time);
                    }
                    current = None;
                }
                ["host-only-skip", label, ..] => {
                    if let Some(b) = binaries.iter().find(|b| b.label == *label) {
                        states.entry(&b.label).or_default().host_only += 1;
                    }
                }
                ["topology", ..] => topology = Some(rest["topology".len()..].trim().to_string()),
                ["guest", "up:", ..] => boot = Some(*time),
                ["done"] => done = true,
                _ => {}
            }
        } else if let (Some(label), Some(counts)) = (&current, parse_test_result(line)) {
            if let Some(b) = binaries.iter().find(|b| &b.label == label) {
                states
                    .entry(&b.label)
                    .or_default()
                    .counts
                    .get_or_insert_with(Counts::default)
                    .add(counts);
            }
        }
    }

    let outcomes = binaries
        .iter()
        .filter(|b| b.kind != BinaryKind::Tool)
        .map(|b| {
            let state = states.remove(b.label.as_str()).unwrap_or_default();
            let verdict = match (state.start, state.exit) {
                (None, _) => Verdict::NeverStarted,
                (Some(_), None) if run.timed_out => Verdict::TimedOut,
                (Some(_), None) => Verdict::Died,
                (Some(_), Some(0)) if state.counts.is_none_or(|c| c.failed == 0) => Verdict::Ok,
                (Some(_), Some(_)) => Verdict::Failed,
            };
            BinaryOutcome {
                label: b.label.clone(),
                kind: b.kind,
                exit: state.exit,
                counts: state.counts,
                host_only: state.host_only,
                duration: state.start.zip(state.end).map(|(s, e)| e.saturating_sub(s)),
                verdict,
            }
        })
        .collect();
    Outcome {
        binaries: outcomes,
        topology,
        boot,
        done,
        timed_out: run.timed_out,
    }
}

/// The `hugepages2M=GOT/WANTED` entries of the topology line where the guest
/// could not reserve all that was asked for.
fn hugepage_shortfall(topology: &str) -> Option<String> {
    let short: Vec<String> = topology
        .split('|')
        .filter_map(|node| {
            let name = node.split_whitespace().next()?;
            let entry = node
                .split_whitespace()
                .find_map(|w| w.strip_prefix("hugepages2M="))?;
            let (got, wanted) = entry.split_once('/')?;
            (got != wanted).then(|| format!("{name} {got}/{wanted}"))
        })
        .collect();
    (!short.is_empty()).then(|| short.join(", "))
}

/// `exit 101`, `exit 139 (signal 11)`, `no exit`.
fn describe_exit(exit: Option<i32>) -> String {
    match exit {
        None => "no exit".into(),
        Some(code) if code > 128 && code < 128 + 65 => {
            format!("exit {code} (signal {})", code - 128)
        }
        Some(code) => format!("exit {code}"),
    }
}

/// Prints the summary: one line per binary, the binaries' totals and the
/// tests' plain `N passed, N failed` line last.
pub fn print_summary(options: &VmOptions, run: &GuestRun, outcome: &Outcome, total: Duration) {
    println!();
    println!(
        "== vm-test summary: accelerator {}; {} nodes, vCPUs per node {:?}, MiB per node {:?}, \
         {} hugepages/node, NUMAKIT_EXPECT_NODES={}",
        run.accel,
        options.nodes(),
        options.cpus,
        options.mem_mib,
        options.hugepages_per_node,
        options.expect_nodes
    );
    match &outcome.topology {
        Some(topology) => {
            println!("== guest topology: {topology}");
            if let Some(short) = hugepage_shortfall(topology) {
                println!("== warning: fewer hugepages than asked for: {short}");
            }
        }
        None => println!("== guest topology: (not reported)"),
    }
    let width = outcome
        .binaries
        .iter()
        .map(|b| b.label.len())
        .max()
        .unwrap_or(0);
    for b in &outcome.binaries {
        let tag = match b.verdict {
            Verdict::Ok => "ok",
            Verdict::Failed => "FAILED",
            Verdict::TimedOut => "TIMEOUT",
            Verdict::Died => "DIED",
            Verdict::NeverStarted => "NOT RUN",
        };
        let counts = match (b.counts, b.kind) {
            (Some(c), _) => format!(
                "{} passed, {} failed, {} ignored, {} filtered out",
                c.passed, c.failed, c.ignored, c.filtered
            ),
            (None, BinaryKind::Test) if b.verdict != Verdict::NeverStarted => {
                "no test result line".into()
            }
            (None, _) => "-".into(),
        };
        let host_only = if b.host_only > 0 {
            format!(" ({} host_only skipped)", b.host_only)
        } else {
            String::new()
        };
        let time = b
            .duration
            .map(|d| format!(" [{:.1} s]", d.as_secs_f64()))
            .unwrap_or_default();
        println!(
            "{tag:<8} {label:<width$}  {exit:<20} {counts}{host_only}{time}",
            label = b.label,
            exit = describe_exit(b.exit),
        );
    }
    let boot = outcome
        .boot
        .map(|d| format!("{:.1} s", d.as_secs_f64()))
        .unwrap_or_else(|| "-".into());
    println!(
        "binaries: {} total, {} ok, {} failed, {} timed out, {} never started{}; guest {:.1} s \
         (init after {boot}), total {:.1} s",
        outcome.binaries.len(),
        outcome.count(Verdict::Ok),
        outcome.count(Verdict::Failed) + outcome.count(Verdict::Died),
        outcome.count(Verdict::TimedOut),
        outcome.count(Verdict::NeverStarted),
        if outcome.count(Verdict::Died) > 0 {
            " (the guest died during a binary)"
        } else {
            ""
        },
        run.wall.as_secs_f64(),
        total.as_secs_f64()
    );
    if outcome.timed_out {
        println!(
            "guest: did not power off within {} s (killed)",
            options.timeout.as_secs()
        );
    } else if !outcome.done {
        println!("guest: ended without reaching the end of /init (kernel panic or reset?)");
    }
    if let Some(status) = run.status.filter(|s| !s.success()) {
        println!("guest: qemu exited with {status}");
    }
    let (passed, failed) = outcome.totals();
    println!("{passed} passed, {failed} failed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn test_result_lines() {
        assert_eq!(
            parse_test_result(
                "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 2 filtered out; \
                 finished in 0.01s"
            ),
            Some(Counts {
                passed: 3,
                failed: 0,
                ignored: 1,
                filtered: 2
            })
        );
        assert_eq!(
            parse_test_result("xx test result: FAILED. 1 passed; 4 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s"),
            Some(Counts {
                passed: 1,
                failed: 4,
                ignored: 0,
                filtered: 0
            })
        );
        assert_eq!(parse_test_result("running 3 tests"), None);
    }

    fn binary(label: &str) -> GuestBinary {
        GuestBinary {
            label: label.into(),
            host_path: PathBuf::from("/x"),
            kind: BinaryKind::Test,
        }
    }

    fn run(text: &str, timed_out: bool) -> GuestRun {
        GuestRun {
            lines: text
                .lines()
                .map(|l| (Duration::from_secs(1), l.to_string()))
                .collect(),
            status: None,
            timed_out,
            wall: Duration::from_secs(2),
            accel: "tcg".into(),
        }
    }

    #[test]
    fn markers() {
        let binaries = [binary("a/lib"), binary("b/test:x"), binary("c/lib")];
        let console = "\
garbage@@numakit-vm: guest up: kernel 6.1
@@numakit-vm: topology nodes online=0-1 | node0 cpus=0 MemTotal=1kB
@@numakit-vm: start a/lib
@@numakit-vm: host-only-skip a/lib t::host_only_big (skipped in the guest)
test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out; finished in 0.01s
@@numakit-vm: exit a/lib 0
@@numakit-vm: start b/test:x
test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s
@@numakit-vm: exit b/test:x 101
@@numakit-vm: start c/lib
";
        let outcome = analyse(&binaries, &run(console, true));
        assert_eq!(
            outcome.topology.as_deref(),
            Some("nodes online=0-1 | node0 cpus=0 MemTotal=1kB")
        );
        assert!(outcome.boot.is_some());
        let [a, b, c] = &outcome.binaries[..] else {
            panic!()
        };
        assert_eq!((a.verdict, a.host_only, a.exit), (Verdict::Ok, 1, Some(0)));
        assert_eq!(b.verdict, Verdict::Failed);
        assert_eq!(c.verdict, Verdict::TimedOut);
        assert!(!outcome.success());
        assert_eq!(outcome.totals(), (3, 2));

        let outcome = analyse(&binaries, &run("@@numakit-vm: start a/lib\n", false));
        assert_eq!(outcome.binaries[0].verdict, Verdict::Died);
        assert_eq!(outcome.binaries[1].verdict, Verdict::NeverStarted);
        assert_eq!(outcome.totals(), (0, 3));
    }

    #[test]
    fn all_ok() {
        let binaries = [binary("a/lib")];
        let console = "@@numakit-vm: start a/lib\r\n\
            test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
            \x1b[0m@@numakit-vm: exit a/lib 0\n@@numakit-vm: done\n";
        let outcome = analyse(&binaries, &run(console, false));
        assert!(outcome.success());
        assert_eq!(outcome.totals(), (2, 0));
        assert_eq!(describe_exit(Some(139)), "exit 139 (signal 11)");
        assert_eq!(
            hugepage_shortfall(
                "nodes online=0-2 | node0 cpus=0 MemTotal=1kB hugepages2M=16/16 \
                 | node1 cpus=1 MemTotal=1kB hugepages2M=3/16 | node2 cpus=none MemTotal=0kB"
            )
            .as_deref(),
            Some("node1 3/16")
        );
    }
}
