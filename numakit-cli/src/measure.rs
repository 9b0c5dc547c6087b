//! `numakit measure`: the machine's measured NUMA costs
//! ([`numakit::measure`]) as matrices for people, with the firmware's
//! distance table beside the measured latency ratio, or as JSON.

use numakit::measure::{measure, MeasureOptions, Measurement, Spread};
use numakit::NodeId;
use std::fmt::Write as _;

const MIB: usize = 1 << 20;

/// What `numakit measure` was asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `--quick`: [`MeasureOptions::quick`] instead of `full`.
    pub quick: bool,
    /// `--buffer-mib`: both buffers' size per memory node, in MiB.
    pub buffer_mib: Option<u64>,
    /// `--repetitions`.
    pub repetitions: Option<u64>,
    /// `--loads`: dependent loads per latency run.
    pub loads: Option<u64>,
    /// `--round-trips`: cache-line round trips per handoff run.
    pub round_trips: Option<u64>,
}

/// The options `request` stands for, checked.
///
/// # Errors
/// The option out of range, as text naming it and its range.
pub fn options(request: &Request) -> Result<MeasureOptions, String> {
    let mut opts = if request.quick {
        MeasureOptions::quick()
    } else {
        MeasureOptions::full()
    };
    let too_large = |what: &str, v: u64| format!("--{what} {v}: too large for this machine");
    if let Some(mib) = request.buffer_mib {
        let bytes = usize::try_from(mib)
            .ok()
            .and_then(|m| m.checked_mul(MIB))
            .ok_or_else(|| too_large("buffer-mib", mib))?;
        opts = opts.latency_buffer(bytes).bandwidth_buffer(bytes);
    }
    if let Some(n) = request.repetitions {
        let n = usize::try_from(n).map_err(|_| too_large("repetitions", n))?;
        opts = opts.repetitions(n);
    }
    if let Some(n) = request.loads {
        let n = usize::try_from(n).map_err(|_| too_large("loads", n))?;
        opts = opts.chase_loads(n);
    }
    if let Some(n) = request.round_trips {
        let n = usize::try_from(n).map_err(|_| too_large("round-trips", n))?;
        opts = opts.handoff_round_trips(n);
    }
    opts.validate().map_err(|e| {
        // Say it in the command's own units.
        match e {
            numakit::measure::MeasureError::InvalidOption {
                option: "latency_buffer" | "bandwidth_buffer",
                min,
                max,
                ..
            } => format!(
                "--buffer-mib {}: give {} to {} MiB",
                request.buffer_mib.unwrap_or(0),
                min / MIB,
                max / MIB
            ),
            numakit::measure::MeasureError::InvalidOption {
                option: "repetitions",
                min,
                max,
                ..
            } => format!(
                "--repetitions {}: give {min} to {max}",
                request.repetitions.unwrap_or(0)
            ),
            numakit::measure::MeasureError::InvalidOption {
                option: "chase_loads",
                min,
                max,
                ..
            } => format!(
                "--loads {}: give {min} to {max}",
                request.loads.unwrap_or(0)
            ),
            numakit::measure::MeasureError::InvalidOption {
                option: "handoff_round_trips",
                min,
                max,
                ..
            } => format!(
                "--round-trips {}: give {min} to {max}",
                request.round_trips.unwrap_or(0)
            ),
            e => e.to_string(),
        }
    })?;
    Ok(opts)
}

/// Run the measurement `request` asks for.
///
/// # Errors
/// `Err((text, refused))`: `refused` when the request itself is invalid
/// (nothing ran), else the measurement's error.
pub fn run(request: &Request) -> Result<Measurement, (String, bool)> {
    let opts = options(request).map_err(|e| (e, true))?;
    measure(&opts).map_err(|e| buffer_error(request, &opts, e))
}

/// A measurement error in the command's own terms: buffers that do not fit
/// on a node name `--buffer-mib`, and are a refused option (status 2) when
/// they are larger than the node itself.
fn buffer_error(
    request: &Request,
    opts: &MeasureOptions,
    e: numakit::measure::MeasureError,
) -> (String, bool) {
    let numakit::measure::MeasureError::Buffer { node, source, .. } = &e else {
        return (e.to_string(), false);
    };
    let too_large = matches!(source, numakit::mem::MemError::InvalidSize { .. });
    let given = match request.buffer_mib {
        Some(mib) => format!("--buffer-mib {mib}"),
        None => format!(
            "the {} measurement's buffers",
            if request.quick { "quick" } else { "full" }
        ),
    };
    (
        format!(
            "{given}: a {} MiB latency and a {} MiB bandwidth buffer cannot be placed on \
             node {node}: {source}; give a smaller --buffer-mib",
            opts.latency_buffer / MIB,
            opts.bandwidth_buffer / MIB
        ),
        too_large,
    )
}

/// The measurement as pretty JSON (what `--json` prints; reads back with
/// `serde_json::from_str::<Measurement>`).
pub fn to_json(m: &Measurement) -> String {
    serde_json::to_string_pretty(m).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn ns(ps: u64) -> String {
    format!("{:.1}", ps as f64 / 1000.0)
}

fn plain(v: u64) -> String {
    v.to_string()
}

fn with_spread(s: &Spread, f: fn(u64) -> String) -> String {
    if s.runs <= 1 {
        f(s.median)
    } else {
        format!("{} [{}-{}]", f(s.median), f(s.min), f(s.max))
    }
}

fn matrix(
    out: &mut String,
    title: &str,
    rows: &[NodeId],
    cols: &[NodeId],
    cell: impl Fn(NodeId, NodeId) -> Option<String>,
) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|&r| {
            cols.iter()
                .map(|&c| cell(r, c).unwrap_or_else(|| "-".into()))
                .collect()
        })
        .collect();
    let head: Vec<String> = cols.iter().map(|c| format!("node {c}")).collect();
    let width = cells
        .iter()
        .flatten()
        .chain(&head)
        .map(String::len)
        .max()
        .unwrap_or(4);
    let label = rows
        .iter()
        .map(|r| format!("node {r}").len())
        .max()
        .unwrap_or(4);
    let _ = writeln!(out, "\n{title}");
    let _ = write!(out, "{:label$}", "");
    for h in &head {
        let _ = write!(out, "  {h:>width$}");
    }
    out.push('\n');
    for (r, row) in rows.iter().zip(&cells) {
        let _ = write!(out, "{:<label$}", format!("node {r}"));
        for c in row {
            let _ = write!(out, "  {c:>width$}");
        }
        out.push('\n');
    }
}

/// The matrices for people.
pub fn table(m: &Measurement) -> String {
    let mut out = String::new();
    let opts = &m.options;
    let _ = writeln!(
        out,
        "{} CPU node{} x {} memory node{}: {} MiB chased ({} loads a run), {} MiB streamed, \
         {} handoff round trips a run, {} run{} each",
        m.cpu_nodes.len(),
        if m.cpu_nodes.len() == 1 { "" } else { "s" },
        m.memory_nodes.len(),
        if m.memory_nodes.len() == 1 { "" } else { "s" },
        opts.latency_buffer / MIB,
        opts.chase_loads,
        opts.bandwidth_buffer / MIB,
        opts.handoff_round_trips,
        opts.repetitions,
        if opts.repetitions == 1 { "" } else { "s" },
    );
    for b in &m.buffers {
        let _ = writeln!(
            out,
            "buffer on node {}: {} MiB, {}; {} pages of {} KiB verified on node {}",
            b.node,
            b.bytes / MIB,
            b.pages,
            b.verified_pages,
            b.page_size >> 10,
            b.node
        );
    }
    if m.debug_build {
        out.push_str(
            "note: a debug build measured this: its loops cost more than the memory does; \
             build with --release for figures about the machine\n",
        );
    }
    if let Some(llc) = m.llc_bytes {
        let _ = writeln!(out, "last-level cache: {} MiB", llc >> 20);
        if (opts.latency_buffer as u64) < llc.saturating_mul(4) {
            let _ = writeln!(
                out,
                "note: the latency buffer is less than 4x the last-level cache: part of the \
                 chase hits in cache and the latency reads low (give --buffer-mib)"
            );
        }
    }
    let runs = m.cells.first().map_or(0, |c| c.latency_ps.runs);
    let spread = if runs > 1 {
        format!("median [min-max] of {runs} runs")
    } else {
        "one run".into()
    };
    matrix(
        &mut out,
        &format!("Idle load-to-use latency, ns, {spread}; rows: CPU node, columns: memory node"),
        &m.cpu_nodes,
        &m.memory_nodes,
        |c, n| m.cell(c, n).map(|x| with_spread(&x.latency_ps, ns)),
    );
    matrix(
        &mut out,
        "Latency ratio: measured (over the row's nearest) | firmware SLIT / 10",
        &m.cpu_nodes,
        &m.memory_nodes,
        |c, n| {
            let ratio = m.latency_ratio(c, n)?;
            let slit = m.slit_distance(c, n)?;
            Some(format!("{ratio:.2} | {:.1}", f64::from(slit) / 10.0))
        },
    );
    matrix(
        &mut out,
        &format!("Read bandwidth, MB/s, {spread}; every CPU of the row's node streaming"),
        &m.cpu_nodes,
        &m.memory_nodes,
        |c, n| m.cell(c, n).map(|x| with_spread(&x.read_mb_s, plain)),
    );
    matrix(
        &mut out,
        &format!("Read/write bandwidth (bytes read + written), MB/s, {spread}"),
        &m.cpu_nodes,
        &m.memory_nodes,
        |c, n| m.cell(c, n).map(|x| with_spread(&x.read_write_mb_s, plain)),
    );
    matrix(
        &mut out,
        &format!(
            "Cache-line handoff, ns one way, {spread} (CPU pair in parentheses; \
             - : the node has one CPU)"
        ),
        &m.cpu_nodes,
        &m.cpu_nodes,
        |a, b| {
            let h = m.handoff(a, b)?;
            Some(format!(
                "{} ({}-{})",
                with_spread(&h.one_way_ps, ns),
                h.from_cpu,
                h.to_cpu
            ))
        },
    );
    if m.nodes.len() == 1 {
        out.push_str(
            "\nOne NUMA node: every figure is local. Remote costs need a machine with \
             several nodes.\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(request: Request) -> String {
        match options(&request) {
            Err(e) => e,
            Ok(o) => panic!("{request:?} accepted as {o:?}"),
        }
    }

    #[test]
    fn every_option_is_checked_at_its_boundaries() {
        let quick = Request {
            quick: true,
            ..Request::default()
        };
        // Each option: 0, the smallest and largest valid, the smallest
        // invalid above, u32::MAX and u64::MAX.
        type Set = fn(&mut Request, u64);
        let cases: [(&str, Set, u64, u64, &str); 4] = [
            (
                "--buffer-mib",
                |r, v| r.buffer_mib = Some(v),
                1,
                65_536,
                " MiB",
            ),
            ("--repetitions", |r, v| r.repetitions = Some(v), 1, 1000, ""),
            ("--loads", |r, v| r.loads = Some(v), 1, 1 << 30, ""),
            (
                "--round-trips",
                |r, v| r.round_trips = Some(v),
                1,
                1 << 24,
                "",
            ),
        ];
        for (flag, set, min, max, unit) in cases {
            for ok in [min, min + 1, max] {
                let mut r = quick.clone();
                set(&mut r, ok);
                assert!(options(&r).is_ok(), "{flag} {ok}");
            }
            for bad in [0, max + 1, u64::from(u32::MAX), u64::MAX] {
                let mut r = quick.clone();
                set(&mut r, bad);
                let e = refused(r);
                assert!(e.starts_with(&format!("{flag} {bad}:")), "{e}");
                if flag == "--buffer-mib" && bad == u64::MAX {
                    // u64::MAX MiB overflows the byte count on the way.
                    assert!(e.contains("too large for this machine"), "{e}");
                } else {
                    assert!(e.contains(&format!("give {min} to {max}{unit}")), "{e}");
                }
            }
        }
        // Without --quick, the full measurement's defaults.
        let full = options(&Request::default()).unwrap();
        assert_eq!(full, MeasureOptions::full());
        let quick = options(&quick).unwrap();
        assert_eq!(quick, MeasureOptions::quick());
    }
}
