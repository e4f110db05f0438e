//! Small hand-written SVG line charts: the benchmark's plots, with no plotting dependency.

use std::fmt::Write as _;

/// One line of a chart.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, in data units.
    pub points: Vec<(f64, f64)>,
}

/// An axis.
pub struct Axis {
    /// Label under / beside the axis.
    pub label: String,
    /// Logarithmic (base 10) instead of linear.
    pub log: bool,
}

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

fn ticks(lo: f64, hi: f64, log: bool) -> Vec<f64> {
    if log {
        let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        return (a..=b).map(|e| 10f64.powi(e)).collect();
    }
    let span = (hi - lo).max(1e-9);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(mag * 10.0);
    let first = (lo / step).ceil() * step;
    (0..)
        .map(|i| first + f64::from(i) * step)
        .take_while(|v| *v <= hi + step * 1e-6)
        .collect()
}

fn fmt_tick(v: f64) -> String {
    // Tick values are sums of steps: print them without floating-point noise.
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// The colour of a series: fixed for the modes (push on Redis apart from push on SQLite), so every
/// chart reads the same.
fn colour(name: &str, i: usize) -> &'static str {
    match name
        .split_once(' ')
        .map_or((name, ""), |(m, rest)| (m, rest))
    {
        ("push", rest) if rest.contains("Redis") => COLOURS[3],
        ("push", _) => COLOURS[0],
        ("poll", _) => COLOURS[1],
        ("floor", _) => COLOURS[2],
        _ => COLOURS[(4 + i) % COLOURS.len()],
    }
}

/// Renders a line chart.
pub fn line_chart(title: &str, x: &Axis, y: &Axis, series: &[Series]) -> String {
    let usable = |v: f64, log: bool| v.is_finite() && (!log || v > 0.0);
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(a, b)| usable(*a, x.log) && usable(*b, y.log))
        .collect();
    let range = |vals: Vec<f64>, log: bool| {
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() {
            return if log { (1.0, 10.0) } else { (0.0, 1.0) };
        }
        if log {
            (
                10f64.powf(lo.log10().floor()),
                10f64.powf(hi.log10().ceil().max(lo.log10().floor() + 1.0)),
            )
        } else {
            let lo = lo.min(0.0);
            (lo, if hi > lo { hi * 1.05 } else { lo + 1.0 })
        }
    };
    let (x0, x1) = range(all.iter().map(|p| p.0).collect(), x.log);
    let (y0, y1) = range(all.iter().map(|p| p.1).collect(), y.log);
    let map = |v: f64, lo: f64, hi: f64, log: bool| {
        if log {
            (v.log10() - lo.log10()) / (hi.log10() - lo.log10())
        } else {
            (v - lo) / (hi - lo)
        }
    };
    let px = |v: f64| LEFT + map(v, x0, x1, x.log) * (W - LEFT - RIGHT);
    let py = |v: f64| H - BOTTOM - map(v, y0, y1, y.log) * (H - TOP - BOTTOM);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        escape(title)
    );
    for t in ticks(x0, x1, x.log) {
        let gx = px(t);
        let _ = writeln!(
            svg,
            "<line x1=\"{gx:.1}\" y1=\"{TOP}\" x2=\"{gx:.1}\" y2=\"{:.1}\" stroke=\"#e5e5e5\"/><text x=\"{gx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            H - BOTTOM,
            H - BOTTOM + 16.0,
            fmt_tick(t)
        );
    }
    for t in ticks(y0, y1, y.log) {
        let gy = py(t);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{gy:.1}\" x2=\"{:.1}\" y2=\"{gy:.1}\" stroke=\"#e5e5e5\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            gy + 4.0,
            fmt_tick(t)
        );
    }
    let _ = writeln!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#444\"/>",
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 18.0,
        escape(&x.label)
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        (TOP + H - BOTTOM) / 2.0,
        escape(&y.label)
    );
    for (i, s) in series.iter().enumerate() {
        let colour = colour(&s.name, i);
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|(a, b)| usable(*a, x.log) && usable(*b, y.log))
            .map(|(a, b)| format!("{:.1},{:.1}", px(*a), py(*b)))
            .collect();
        if pts.len() == 1 {
            let (cx, cy) = pts[0].split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                svg,
                r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>"#
            );
        } else if !pts.is_empty() {
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            );
        }
        let ly = TOP + 12.0 + 20.0 * i as f64;
        let lx = W - RIGHT + 14.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_range() {
        assert_eq!(
            ticks(0.1, 1000.0, true),
            vec![0.1, 1.0, 10.0, 100.0, 1000.0]
        );
        assert_eq!(ticks(0.0, 10.0, false), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let labels: Vec<String> = ticks(0.0, 1.05, false).into_iter().map(fmt_tick).collect();
        assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
    }

    #[test]
    fn a_chart_has_one_line_per_series_and_skips_unplottable_points() {
        let svg = line_chart(
            "t <1>",
            &Axis {
                label: "x".into(),
                log: true,
            },
            &Axis {
                label: "y".into(),
                log: false,
            },
            &[
                Series {
                    name: "a".into(),
                    points: vec![(1.0, 0.5), (10.0, 1.0), (0.0, 1.0)],
                },
                Series {
                    name: "b".into(),
                    points: vec![(100.0, 0.2)],
                },
            ],
        );
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("t &lt;1&gt;"));
        assert!(svg.starts_with("<svg"));
    }
}
