//! Hand-written SVG charts for the `compare` bench's report: a line chart
//! with a log-scale y-axis (lock throughput against threads) and a grouped
//! bar chart with min–max whiskers (numakit against its peers per case).
//!
//! Included with `#[path = "support/svg.rs"] mod svg;`.

use std::fmt::Write as _;

/// Series colours; numakit's series come first in every chart.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

const FONT: &str = "font-family=\"sans-serif\" font-size=\"12\"";

/// One polyline of a line chart.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Drawn solid and thicker (numakit); otherwise dashed (a peer).
    pub highlight: bool,
    /// `(x, y)` points; `y` must be positive (log scale).
    pub points: Vec<(f64, f64)>,
}

/// One bar: a contender's median with its min–max spread.
pub struct Bar {
    /// Legend text; bars with the same name share a colour.
    pub name: String,
    /// Drawn with a dark outline (numakit).
    pub highlight: bool,
    /// Bar height.
    pub value: f64,
    /// Whisker bottom.
    pub low: f64,
    /// Whisker top.
    pub high: f64,
}

/// The bars of one case, drawn side by side.
pub struct BarGroup {
    /// Text under the group.
    pub label: String,
    /// The contenders.
    pub bars: Vec<Bar>,
}

/// Escapes text for SVG element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// A number for an axis label: no more digits than it needs.
fn tick_label(v: f64) -> String {
    if v >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        // Three significant digits, trailing zeros dropped.
        let decimals = ((-v.log10()).floor().max(0.0) as usize + 3).min(12);
        let s = format!("{v:.decimals$}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The start of an SVG document sized for `plot` with a legend column of
/// `legend_w` on its right: white background and the title.
fn canvas(plot: &Plot, legend_w: f64, title: &str) -> String {
    let width = plot.left + plot.width + legend_w;
    let height = plot.top + plot.height + 60.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\">"
    );
    let _ = writeln!(
        out,
        "<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n\
         <text x=\"{:.1}\" y=\"22\" text-anchor=\"middle\" font-family=\"sans-serif\" \
         font-size=\"15\" font-weight=\"bold\">{}</text>",
        width / 2.0,
        esc(title)
    );
    out
}

/// Axis labels: `x_label` centred under the plot, `y_label` rotated left of it.
fn axis_labels(out: &mut String, plot: &Plot, x_label: &str, y_label: &str) {
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" {FONT}>{}</text>",
        plot.left + plot.width / 2.0,
        plot.top + plot.height + 42.0,
        esc(x_label)
    );
    let (x, y) = (plot.left - 52.0, plot.top + plot.height / 2.0);
    let _ = writeln!(
        out,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 {x:.1} {y:.1})\" \
         {FONT}>{}</text>",
        esc(y_label)
    );
}

/// A legend box at (`x`, `y`): one line per entry, with a line or swatch sample.
fn legend(out: &mut String, x: f64, y: f64, entries: &[(String, &str, bool)], bars: bool) {
    let longest = entries
        .iter()
        .map(|e| e.0.chars().count())
        .max()
        .unwrap_or(0);
    let (w, h) = (
        44.0 + 7.0 * longest as f64,
        8.0 + 18.0 * entries.len() as f64,
    );
    let _ = writeln!(
        out,
        "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"white\" \
         fill-opacity=\"0.9\" stroke=\"#999\"/>"
    );
    for (i, (name, colour, highlight)) in entries.iter().enumerate() {
        let ly = y + 16.0 + 18.0 * i as f64;
        if bars {
            let stroke = if *highlight { "#000" } else { "none" };
            let _ = writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"22\" height=\"10\" fill=\"{colour}\" stroke=\"{stroke}\"/>",
                x + 8.0,
                ly - 9.0
            );
        } else {
            let _ = writeln!(
                out,
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" {}/>",
                x + 8.0,
                ly - 4.0,
                x + 30.0,
                ly - 4.0,
                line_style(*highlight)
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{ly:.1}\" {FONT}>{}</text>",
            x + 36.0,
            esc(name)
        );
    }
}

fn line_style(highlight: bool) -> &'static str {
    if highlight {
        "stroke-width=\"3\""
    } else {
        "stroke-width=\"1.5\" stroke-dasharray=\"6 3\""
    }
}

/// The plot's frame, and a grid line with its label at each of `ticks`
/// (values placed on the y-axis by `py`).
fn frame(out: &mut String, plot: &Plot, ticks: &[f64], py: impl Fn(f64) -> f64) {
    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>",
        plot.left, plot.top, plot.width, plot.height
    );
    for &v in ticks {
        let y = py(v);
        let _ = writeln!(
            out,
            "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" {FONT}>{}</text>",
            plot.left,
            plot.left + plot.width,
            plot.left - 6.0,
            y + 4.0,
            tick_label(v)
        );
    }
}

/// The plotting area inside the margins.
struct Plot {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

/// A line chart with a log-scale y-axis; `xs` are the x positions to label
/// (spaced on a log2 scale, e.g. thread counts 1, 2, 4, 8).
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    xs: &[f64],
    series: &[Series],
) -> String {
    let plot = Plot {
        left: 80.0,
        top: 40.0,
        width: 560.0,
        height: 400.0,
    };
    let mut out = canvas(&plot, 300.0, title);

    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let ys: Vec<f64> = ys.filter(|y| y.is_finite() && *y > 0.0).collect();
    let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ys.iter().copied().fold(0.0, f64::max);
    let (lo_dec, hi_dec) = if ys.is_empty() {
        (0, 1)
    } else {
        let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        (a, b.max(a + 1))
    };
    let x_lo = xs.iter().copied().fold(f64::INFINITY, f64::min).log2();
    let x_hi = xs.iter().copied().fold(0.0, f64::max).log2();
    let x_span = (x_hi - x_lo).max(1.0);
    let px = |x: f64| plot.left + 20.0 + (x.log2() - x_lo) / x_span * (plot.width - 40.0);
    let py = |y: f64| {
        let t = (y.log10() - lo_dec as f64) / (hi_dec - lo_dec) as f64;
        plot.top + plot.height - t * plot.height
    };

    // Frame, decade grid lines and labels, x ticks.
    let decades: Vec<f64> = (lo_dec..=hi_dec).map(|d| 10f64.powi(d)).collect();
    frame(&mut out, &plot, &decades, py);
    for &x in xs {
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{2}\" stroke=\"#ddd\"/>\n\
             <text x=\"{0:.1}\" y=\"{3}\" text-anchor=\"middle\" {FONT}>{4}</text>",
            px(x),
            plot.top,
            plot.top + plot.height,
            plot.top + plot.height + 18.0,
            tick_label(x)
        );
    }
    axis_labels(&mut out, &plot, x_label, y_label);

    let mut entries = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.1.is_finite() && p.1 > 0.0)
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" {}/>",
            pts.join(" "),
            line_style(s.highlight)
        );
        for p in &pts {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                out,
                "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{colour}\"/>"
            );
        }
        entries.push((s.name.clone(), colour, s.highlight));
    }
    legend(
        &mut out,
        plot.left + plot.width + 16.0,
        plot.top,
        &entries,
        false,
    );
    out.push_str("</svg>\n");
    out
}

/// A step of 1, 2 or 5 times a power of ten giving about five ticks up to `max`.
fn nice_step(max: f64) -> f64 {
    let raw = (max / 5.0).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let m = raw / mag;
    mag * if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// A grouped bar chart on a linear y-axis from zero; whiskers show each
/// bar's `low`–`high`. Bars with the same name share a colour across groups.
pub fn bar_chart(title: &str, x_label: &str, y_label: &str, groups: &[BarGroup]) -> String {
    let mut names: Vec<(String, bool)> = Vec::new();
    for b in groups.iter().flat_map(|g| &g.bars) {
        if !names.iter().any(|n| n.0 == b.name) {
            names.push((b.name.clone(), b.highlight));
        }
    }
    let colour = |name: &str| {
        let i = names.iter().position(|n| n.0 == name).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    let bar_w = 22.0;
    let group_w = bar_w * names.len().max(1) as f64 + 36.0;
    let plot = Plot {
        left: 80.0,
        top: 40.0,
        width: (group_w * groups.len() as f64).max(240.0),
        height: 360.0,
    };
    let mut out = canvas(&plot, 260.0, title);

    let top = groups
        .iter()
        .flat_map(|g| &g.bars)
        .map(|b| b.high.max(b.value))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let step = nice_step(top);
    let y_max = (top / step).ceil().max(1.0) * step;
    let py = |v: f64| plot.top + plot.height - (v / y_max).clamp(0.0, 1.0) * plot.height;

    let ticks = (y_max / step).round() as usize;
    let values: Vec<f64> = (0..=ticks).map(|k| step * k as f64).collect();
    frame(&mut out, &plot, &values, py);
    for (gi, g) in groups.iter().enumerate() {
        let gx = plot.left + group_w * gi as f64 + 18.0;
        for (bi, b) in g.bars.iter().enumerate() {
            let x = gx + bar_w * bi as f64;
            let (y, base) = (py(b.value), py(0.0));
            let stroke = if b.highlight { "#000" } else { "none" };
            let _ = writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" \
                 stroke=\"{stroke}\"><title>{}: {}</title></rect>",
                bar_w - 2.0,
                (base - y).max(0.0),
                colour(&b.name),
                esc(&b.name),
                tick_label(b.value)
            );
            let cx = x + (bar_w - 2.0) / 2.0;
            let (lo, hi) = (py(b.low), py(b.high));
            let _ = writeln!(
                out,
                "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-family=\"sans-serif\" \
                 font-size=\"9\">{}</text>",
                hi.min(y) - 4.0,
                tick_label(b.value)
            );
            let _ = writeln!(
                out,
                "<path d=\"M{cx:.1} {lo:.1} V{hi:.1} M{:.1} {lo:.1} H{:.1} M{:.1} {hi:.1} H{:.1}\" \
                 stroke=\"#222\" fill=\"none\"/>",
                cx - 4.0,
                cx + 4.0,
                cx - 4.0,
                cx + 4.0
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" {FONT}>{}</text>",
            gx + bar_w * g.bars.len() as f64 / 2.0,
            plot.top + plot.height + 18.0,
            esc(&g.label)
        );
    }
    axis_labels(&mut out, &plot, x_label, y_label);
    let entries: Vec<(String, &str, bool)> = names
        .iter()
        .map(|(n, h)| (n.clone(), colour(n), *h))
        .collect();
    legend(
        &mut out,
        plot.left + plot.width + 16.0,
        plot.top,
        &entries,
        true,
    );
    out.push_str("</svg>\n");
    out
}
