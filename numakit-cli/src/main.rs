//! `numakit`: strict NUMA placement for programs you cannot change.

use clap::{Parser, Subcommand};
use numakit::mem::NodeLocal;
use numakit_cli::launch::{self, Request};
use numakit_cli::process;
use numakit_cli::topology::{self, Format};
use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::time::Duration;

/// The command's own allocations come from the node its thread runs on;
/// `numakit topology` shows the per-node heaps. `nearest`, because a tool
/// started on a CPU of a memoryless node must still run.
#[global_allocator]
static ALLOC: NodeLocal = NodeLocal::nearest();

/// Exit status of a request that was refused (nothing was started).
const REFUSED: u8 = 2;

/// Exit status when whoever reads stdout stopped reading (`EPIPE`, as in
/// `numakit topology | head -n 2`): 128 + `SIGPIPE`, the status a shell
/// reports for a tool that `SIGPIPE` ended, so that `set -o pipefail` sees
/// what it sees for `cat` or `grep`. Nothing is said on stderr: the reader
/// chose to stop. Never 0, so that cut-off output is not taken for complete
/// output. (`verify` is the exception: its status is its verdict.)
const BROKEN_PIPE: u8 = 141;

#[derive(Parser)]
#[command(
    name = "numakit",
    version,
    about = "Strict NUMA placement: do what was asked or say why not, and show proof",
    long_about = "Strict NUMA placement for programs you cannot change: run a command on a node \
                  with its memory bound there, show where a process's memory and threads are, \
                  and verify that its pages obey their policies. Nothing falls back to another \
                  node unless you ask for it."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the NUMA topology: nodes, CPUs, memory, hugepages, distances
    #[command(after_help = "Example:\n  numakit topology --json | jq '.nodes[].cpulist'")]
    Topology {
        /// One JSON object
        #[arg(long, conflicts_with = "numactl")]
        json: bool,
        /// `numactl --hardware`'s format
        #[arg(long)]
        numactl: bool,
        /// Detect through libhwloc (built with the `hwloc` feature)
        #[arg(long)]
        hwloc: bool,
    },
    /// Run a command on a node's CPUs with its memory bound to that node
    #[command(after_help = "Examples:\n  \
        numakit run --node 1 -- ./server --port 8080\n  \
        numakit run --node 0 --interleave 0,1 -- ./bench\n  \
        numakit run --node 1 --fallback nearest -- ./batch   # says it may fall back\n  \
        numakit run --node 1 --node-local-malloc -- python3 app.py\n\n\
        Exit status: the command's; 2 when the request is refused (nothing runs); \
        126/127 when the command cannot be executed / is not found.")]
    Run {
        /// The node: its CPUs (those this process may use) and, unless
        /// --membind or --interleave says otherwise, its memory (strict)
        #[arg(long)]
        node: u32,
        /// Run on these CPUs instead of the node's (list: 0,2-3)
        #[arg(long, value_name = "LIST")]
        cpus: Option<String>,
        /// Bind memory to these nodes instead (strict)
        #[arg(long, value_name = "LIST", conflicts_with = "interleave")]
        membind: Option<String>,
        /// Interleave memory over these nodes (strict: only them)
        #[arg(long, value_name = "LIST")]
        interleave: Option<String>,
        /// `nearest`: prefer --node's memory and fall back to the nearest
        /// node when it is full (said on stderr); without it nothing falls back
        #[arg(long, value_name = "POLICY", value_parser = ["nearest"])]
        fallback: Option<String>,
        /// Preload libnumakit_malloc.so (next to this binary, or
        /// $NUMAKIT_MALLOC_LIB), appended to LD_PRELOAD: malloc gives each
        /// thread memory on the node it runs on; strict unless --fallback
        /// nearest; NUMAKIT_MALLOC_STATS=1 prints its per-node figures at exit
        #[arg(long)]
        node_local_malloc: bool,
        /// Print the placement applied to stderr before starting
        #[arg(short, long)]
        verbose: bool,
        /// The command and its arguments (any bytes, as `exec` takes them)
        #[arg(
            last = true,
            required = true,
            value_name = "CMD",
            value_parser = clap::value_parser!(OsString)
        )]
        command: Vec<OsString>,
    },
    /// Where a process's memory and threads are, per node, and which of its
    /// mappings break their memory policy
    #[command(after_help = "Example:\n  numakit stat $(pidof server) --watch 2")]
    Stat {
        /// The process id
        pid: u32,
        /// One JSON object
        #[arg(long)]
        json: bool,
        /// Show it again every SECS seconds until the process exits
        #[arg(long, value_name = "SECS")]
        watch: Option<f64>,
    },
    /// Exit 0 only when every mapping of the process with a strict policy
    /// (bind, interleave) has all its resident pages on the policy's nodes
    #[command(after_help = "Example:\n  numakit verify $(pidof server) || echo misplaced")]
    Verify {
        /// The process id
        pid: u32,
        /// One JSON object (the `stat` one) on stdout
        #[arg(long)]
        json: bool,
    },
    /// Measure latency, bandwidth and cache-line handoff for every pair of
    /// (CPU node, memory node), beside the firmware's distance table
    #[command(
        long_about = "Measure the machine's NUMA costs for every pair of a node with CPUs \
                      and a node with memory: idle load-to-use latency (a dependent pointer \
                      chase in random order over a buffer much larger than the last-level \
                      cache), read and read/write bandwidth with every CPU of the first node \
                      streaming from the second, and the cost of handing a cache line \
                      between CPUs of two nodes. Buffers are bound to their node and checked \
                      there page by page before anything is timed; figures are medians with \
                      their spread. Run it on an otherwise idle machine.",
        after_help = "Examples:\n  \
        numakit measure --quick          # a few seconds\n  \
        numakit measure --json > measured.json\n  \
        numakit measure --quick --buffer-mib 512 --repetitions 5\n\n\
        Exit status: 0 measured; 1 the measurement failed; 2 an option is out of range."
    )]
    Measure {
        /// Smaller buffers and fewer runs: a first look in seconds (the
        /// default is the full measurement, 1 GiB buffers per node)
        #[arg(long)]
        quick: bool,
        /// One JSON object (reads back as `numakit::measure::Measurement`)
        #[arg(long)]
        json: bool,
        /// Size of each buffer on every memory node, in MiB
        #[arg(long, value_name = "MIB")]
        buffer_mib: Option<u64>,
        /// Runs per figure (the median and spread are over them)
        #[arg(long, value_name = "N")]
        repetitions: Option<u64>,
        /// Dependent loads timed per latency run
        #[arg(long, value_name = "N")]
        loads: Option<u64>,
        /// Cache-line round trips timed per handoff run
        #[arg(long, value_name = "N")]
        round_trips: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help, version or a usage error; a stdout or stderr that cannot
            // be written changes nothing about the status.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(REFUSED));
        }
    };
    match cli.command {
        Command::Topology {
            json,
            numactl,
            hwloc,
        } => {
            let format = if json {
                Format::Json
            } else if numactl {
                Format::Numactl
            } else {
                Format::Table
            };
            match topology::show(format, hwloc) {
                Ok(()) => ExitCode::SUCCESS,
                Err(topology::ShowError::Write(e)) => write_failed("topology", &e),
                Err(e) => fail(&format!("numakit topology: {e}"), 1),
            }
        }
        Command::Run {
            node,
            cpus,
            membind,
            interleave,
            fallback,
            node_local_malloc,
            verbose,
            command,
        } => run(
            &Request {
                node,
                cpus,
                membind,
                interleave,
                fallback_nearest: fallback.is_some(),
                node_local_malloc,
            },
            verbose,
            &command,
        ),
        Command::Stat { pid, json, watch } => stat(pid, json, watch),
        Command::Verify { pid, json } => verify(pid, json),
        Command::Measure {
            quick,
            json,
            buffer_mib,
            repetitions,
            loads,
            round_trips,
        } => measure(
            &numakit_cli::measure::Request {
                quick,
                buffer_mib,
                repetitions,
                loads,
                round_trips,
            },
            json,
        ),
    }
}

fn measure(request: &numakit_cli::measure::Request, json: bool) -> ExitCode {
    match numakit_cli::measure::run(request) {
        Ok(m) => {
            let text = if json {
                format!("{}\n", numakit_cli::measure::to_json(&m))
            } else {
                numakit_cli::measure::table(&m)
            };
            match write_stdout(text.as_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => write_failed("measure", &e),
            }
        }
        Err((e, true)) => fail(&format!("numakit measure: refused: {e}"), REFUSED),
        Err((e, false)) => fail(&format!("numakit measure: {e}"), 1),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    say(message);
    ExitCode::from(code)
}

/// A line on stderr; a stderr that cannot be written to is no reason to
/// stop or to change the exit status.
fn say(message: &str) {
    let _ = writeln!(io::stderr(), "{message}");
}

/// Write `bytes` to stdout and flush them.
fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// The exit for a failed write to stdout: quietly [`BROKEN_PIPE`] when the
/// reader has gone, else the error on stderr and status 1.
fn write_failed(command: &str, e: &io::Error) -> ExitCode {
    if e.kind() == io::ErrorKind::BrokenPipe {
        ExitCode::from(BROKEN_PIPE)
    } else {
        fail(
            &format!("numakit {command}: cannot write the output to stdout: {e}"),
            1,
        )
    }
}

fn run(request: &Request, verbose: bool, command: &[OsString]) -> ExitCode {
    let plan = match launch::plan(request) {
        Ok(p) => p,
        Err(e) => return fail(&format!("numakit run: refused: {e}"), REFUSED),
    };
    let preload = if request.node_local_malloc {
        let exe = std::env::current_exe().ok();
        match launch::malloc_preload(
            request,
            exe.as_deref().and_then(std::path::Path::parent),
            std::env::var_os(launch::MALLOC_LIBRARY_ENV).as_deref(),
            std::env::var_os("LD_PRELOAD").as_deref(),
            std::env::var_os("NUMAKIT_MALLOC_FALLBACK").as_deref(),
        )
        .and_then(|p| {
            launch::check_malloc_library(&p.library)?;
            launch::check_program(&command[0], std::env::var_os("PATH").as_deref(), &p.library)?;
            Ok(p)
        }) {
            Ok(p) => Some(p),
            Err(e) => return fail(&format!("numakit run: refused: {e}"), REFUSED),
        }
    } else {
        None
    };
    if let Err(e) = launch::apply(&plan) {
        return fail(&format!("numakit run: refused: {e}"), REFUSED);
    }
    if verbose || matches!(plan.memory, launch::MemoryPlan::PreferNearest(_)) {
        say(&format!("numakit run: {plan}"));
    }
    let mut cmd = std::process::Command::new(&command[0]);
    cmd.args(&command[1..]);
    if let Some(p) = &preload {
        if verbose {
            say(&format!(
                "numakit run: LD_PRELOAD={} NUMAKIT_MALLOC_FALLBACK={}",
                p.ld_preload.to_string_lossy(),
                p.fallback
            ));
        }
        cmd.env("LD_PRELOAD", &p.ld_preload)
            .env("NUMAKIT_MALLOC_FALLBACK", p.fallback);
    }
    let err = cmd.exec();
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    fail(
        &format!(
            "numakit run: cannot execute `{}`: {err}",
            command[0].to_string_lossy()
        ),
        code,
    )
}

fn snapshot(pid: u32) -> Result<process::Snapshot, ExitCode> {
    let topo = numakit::topology::Topology::current()
        .map_err(|e| fail(&format!("numakit: {e}"), REFUSED))?;
    process::snapshot(pid, &topo).map_err(|e| fail(&format!("numakit: {e}"), REFUSED))
}

fn stat(pid: u32, json: bool, watch: Option<f64>) -> ExitCode {
    let interval = match watch {
        None => None,
        Some(s) if s.is_finite() && (0.1..=86_400.0).contains(&s) => {
            Some(Duration::from_secs_f64(s))
        }
        Some(s) => {
            return fail(
                &format!("numakit stat: --watch {s}: give seconds between 0.1 and 86400"),
                REFUSED,
            )
        }
    };
    let tty = io::stdout().is_terminal();
    let color = tty && std::env::var_os("NO_COLOR").is_none();
    let mut first = true;
    loop {
        let snap = match snapshot(pid) {
            Ok(s) => s,
            // Watching ends when the process does.
            Err(_) if !first => {
                say(&format!("numakit stat: process {pid} has exited"));
                return ExitCode::SUCCESS;
            }
            Err(code) => return code,
        };
        let mut text = String::new();
        if json {
            text = format!("{}\n", snap.to_json());
        } else {
            if interval.is_some() && tty {
                // Clear the screen and go home, like `watch`.
                text.push_str("\x1b[2J\x1b[H");
            }
            if let Some(i) = interval {
                text.push_str(&format!(
                    "every {:.1}s; {}\n",
                    i.as_secs_f64(),
                    humantime(std::time::SystemTime::now())
                ));
            }
            text.push_str(&snap.table(color));
        }
        if let Err(e) = write_stdout(text.as_bytes()) {
            return write_failed("stat", &e);
        }
        first = false;
        match interval {
            Some(i) => std::thread::sleep(i),
            None => return ExitCode::SUCCESS,
        }
    }
}

/// UTC wall-clock time as `HH:MM:SS`.
fn humantime(t: std::time::SystemTime) -> String {
    let s = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{:02}:{:02}:{:02} UTC", s / 3600 % 24, s / 60 % 60, s % 60)
}

fn verify(pid: u32, json: bool) -> ExitCode {
    let snap = match snapshot(pid) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (text, code) = snap.verify();
    let written = if json {
        let written = write_stdout(format!("{}\n", snap.to_json()).as_bytes());
        let _ = write!(io::stderr(), "{text}");
        written
    } else {
        write_stdout(text.as_bytes())
    };
    // The status is the verdict, whatever became of the report: a script
    // that asks `numakit verify PID > file && ...` learns where the pages
    // are even when the file could not be written, which is said on stderr
    // (a reader that stopped reading is not).
    if let Err(e) = written {
        if e.kind() != io::ErrorKind::BrokenPipe {
            say(&format!(
                "numakit verify: cannot write the report to stdout: {e}; the exit status \
                 is still the verdict ({code})"
            ));
        }
    }
    ExitCode::from(code)
}
