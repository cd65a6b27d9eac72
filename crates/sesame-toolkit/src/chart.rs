//! Line charts as inline SVG, for the tools' self-contained HTML reports
//! (`sesame triage --html`: latency, rate and outcomes over the timeline,
//! with its change points; `sesame load --html`: latency and throughput
//! over time, latency by percentile). No script, no external resource: the
//! SVG is text in the page.
//!
//! A chart is built, then drawn with [`Chart::svg`]:
//!
//! ```
//! use sesame_toolkit::chart::Chart;
//! let svg = Chart::new("Latency")
//!     .log_y()
//!     .y_format(|ms| format!("{ms} ms"))
//!     .x_format(|s| format!("{s}s"))
//!     .line("p50", [(1.0, 2.0), (2.0, 3.0)])
//!     .line("p99", [(1.0, 20.0), (2.0, 300.0)])
//!     .marker(1.5, "deploy")
//!     .svg();
//! assert!(svg.starts_with("<svg"));
//! ```
//!
//! The y axis is linear from zero, or logarithmic by decades for what spans
//! decades (latency); zeros and values below the lowest decade are drawn on
//! the floor. The x axis is numeric; its ticks are chosen (steps of 1, 2 or
//! 5 of a power of ten) unless given with labels of their own (times of day,
//! percentiles). The series' names stand in a legend on the right.

use crate::html::escape;
use std::fmt::Write as _;

/// Colors of the series given without one, in order.
pub const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// How the y axis maps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// From zero to a little above the largest value.
    Linear,
    /// Decades around the positive values.
    Log,
}

/// Margins around the plot: the y axis' labels on the left, the legend on
/// the right, the x axis' labels and the caption below.
const LEFT: f64 = 60.0;
/// Room for the legend.
const RIGHT: f64 = 130.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 36.0;

type Format<'a> = Box<dyn Fn(f64) -> String + 'a>;

/// A line chart; see the module documentation.
pub struct Chart<'a> {
    label: &'a str,
    caption: Option<&'a str>,
    width: f64,
    height: f64,
    y_scale: Scale,
    y_format: Format<'a>,
    x_format: Format<'a>,
    x_range: Option<(f64, f64)>,
    x_ticks: Option<Vec<(f64, String)>>,
    markers: Vec<Marker>,
    series: Vec<Series<'a>>,
}

/// A dashed vertical line; with a `label`, that is written beside it.
struct Marker {
    x: f64,
    title: String,
    label: Option<String>,
}

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
}

impl<'a> Chart<'a> {
    /// An empty chart; `label` names it to screen readers.
    pub fn new(label: &'a str) -> Self {
        Self {
            label,
            caption: None,
            width: 760.0,
            height: 300.0,
            y_scale: Scale::Linear,
            y_format: Box::new(axis_number),
            x_format: Box::new(axis_number),
            x_range: None,
            x_ticks: None,
            markers: Vec::new(),
            series: Vec::new(),
        }
    }

    /// What [`Chart::new`] named it.
    pub fn label(&self) -> &'a str {
        self.label
    }

    /// Size in pixels (default 760 x 300).
    pub fn size(mut self, width: f64, height: f64) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    /// A logarithmic y axis.
    pub fn log_y(mut self) -> Self {
        self.y_scale = Scale::Log;
        self
    }

    /// Labels of the y axis' ticks (default: the number).
    pub fn y_format(mut self, format: impl Fn(f64) -> String + 'a) -> Self {
        self.y_format = Box::new(format);
        self
    }

    /// Labels of the x axis' chosen ticks (default: the number).
    pub fn x_format(mut self, format: impl Fn(f64) -> String + 'a) -> Self {
        self.x_format = Box::new(format);
        self
    }

    /// A line of text under the chart (what the axes are).
    pub fn caption(mut self, caption: &'a str) -> Self {
        self.caption = Some(caption);
        self
    }

    /// The x axis' span (default: the points').
    pub fn x_range(mut self, from: f64, to: f64) -> Self {
        self.x_range = Some((from, to));
        self
    }

    /// The x axis' ticks, each at a value with its label, instead of chosen
    /// ones.
    pub fn x_ticks(mut self, ticks: impl IntoIterator<Item = (f64, String)>) -> Self {
        self.x_ticks = Some(ticks.into_iter().collect());
        self
    }

    /// A dashed vertical line at `x`, titled (a change point, a deploy).
    pub fn marker(mut self, x: f64, title: impl Into<String>) -> Self {
        self.markers.push(Marker {
            x,
            title: title.into(),
            label: None,
        });
        self
    }

    /// A marker with a short `label` written beside the line, for the
    /// moments a reader must see without hovering (an alert, a rollback).
    pub fn labelled_marker(
        mut self,
        x: f64,
        label: impl Into<String>,
        title: impl Into<String>,
    ) -> Self {
        self.markers.push(Marker {
            x,
            title: title.into(),
            label: Some(label.into()),
        });
        self
    }

    /// A series in the next color of the [`PALETTE`].
    pub fn line(self, name: &'a str, points: impl IntoIterator<Item = (f64, f64)>) -> Self {
        let color = PALETTE[self.series.len() % PALETTE.len()];
        self.line_in(color, name, points)
    }

    /// A series in a color of its own (`#rrggbb`).
    pub fn line_in(
        mut self,
        color: &'a str,
        name: &'a str,
        points: impl IntoIterator<Item = (f64, f64)>,
    ) -> Self {
        let points = points
            .into_iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        self.series.push(Series {
            name,
            color,
            points,
        });
        self
    }

    /// The chart as an `<svg>` element, or a "no data" paragraph when no
    /// series has a point.
    pub fn svg(&self) -> String {
        let points = || self.series.iter().flat_map(|s| s.points.iter().copied());
        if points().next().is_none() {
            return "<p>no data</p>".to_owned();
        }
        let (x_lo, x_hi) = self.x_range.unwrap_or_else(|| {
            let xs = points().map(|p| p.0);
            (
                xs.clone().fold(f64::INFINITY, f64::min),
                xs.fold(f64::NEG_INFINITY, f64::max),
            )
        });
        let y_axis = YAxis::new(self.y_scale, points().map(|p| p.1));
        let (w, h) = (self.width, self.height);
        let plot_w = w - LEFT - RIGHT;
        let plot_h = h - TOP - BOTTOM;
        let px = |x: f64| LEFT + (x - x_lo) / (x_hi - x_lo).max(1e-9) * plot_w;
        let py = |y: f64| TOP + (1.0 - y_axis.fraction(y)) * plot_h;

        let mut svg = String::new();
        let _ = write!(
            svg,
            r##"<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{}" font-family="sans-serif" font-size="11"><rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>"##,
            escape(self.label)
        );
        for y in y_axis.ticks() {
            let at = py(y);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" x2="{}" y1="{at:.1}" y2="{at:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end" fill="#555">{}</text>"##,
                w - RIGHT,
                LEFT - 4.0,
                at + 4.0,
                escape(&(self.y_format)(y))
            );
        }
        let ticks = match &self.x_ticks {
            Some(ticks) => ticks.clone(),
            None => chosen_ticks(x_lo, x_hi)
                .into_iter()
                .map(|x| (x, (self.x_format)(x)))
                .collect(),
        };
        for (x, label) in ticks {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
                px(x),
                h - BOTTOM + 16.0,
                escape(&label)
            );
        }
        if let Some(caption) = self.caption {
            let _ = write!(
                svg,
                r##"<text x="{LEFT}" y="{}" fill="#555">{}</text>"##,
                h - 4.0,
                escape(caption)
            );
        }
        let mut labels = 0;
        for m in &self.markers {
            let _ = write!(
                svg,
                r##"<line x1="{0:.1}" x2="{0:.1}" y1="{TOP}" y2="{1}" stroke="#d00" stroke-dasharray="4 3"><title>{2}</title></line>"##,
                px(m.x),
                h - BOTTOM,
                escape(&m.title)
            );
            if let Some(label) = &m.label {
                // Beside its line, towards the middle of the plot, each a
                // row lower than the one before, so close marks stay apart.
                let right_half = px(m.x) > LEFT + plot_w / 2.0;
                let _ = write!(
                    svg,
                    r##"<text x="{:.1}" y="{:.1}" fill="#d00" font-size="11" text-anchor="{}">{}</text>"##,
                    px(m.x) + if right_half { -3.0 } else { 3.0 },
                    TOP + 11.0 + 12.0 * (labels % 6) as f64,
                    if right_half { "end" } else { "start" },
                    escape(label)
                );
                labels += 1;
            }
        }
        for (i, s) in self.series.iter().enumerate() {
            let line: Vec<String> = s
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let legend_y = TOP + 14.0 + 18.0 * i as f64;
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/><line x1="{}" x2="{}" y1="{legend_y}" y2="{legend_y}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
                line.join(" "),
                w - RIGHT + 10.0,
                w - RIGHT + 30.0,
                w - RIGHT + 36.0,
                legend_y + 4.0,
                escape(s.name),
                color = s.color,
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

/// The y axis' span and mapping.
struct YAxis {
    scale: Scale,
    lo: f64,
    hi: f64,
}

impl YAxis {
    fn new(scale: Scale, values: impl Iterator<Item = f64> + Clone) -> Self {
        match scale {
            Scale::Linear => {
                let top = values.fold(0.0, f64::max);
                let hi = if top > 0.0 { top * 1.1 } else { 1.0 };
                Self { scale, lo: 0.0, hi }
            }
            Scale::Log => {
                let positive = values.filter(|v| *v > 0.0);
                let min = positive.clone().fold(f64::INFINITY, f64::min);
                let max = positive.fold(0.0, f64::max);
                let (lo, hi) = if max > 0.0 {
                    let lo = min.log10().floor() as i32;
                    (lo, (max.log10().ceil() as i32).max(lo + 1))
                } else {
                    (-1, 0)
                };
                Self {
                    scale,
                    lo: decade(lo),
                    hi: decade(hi),
                }
            }
        }
    }

    /// Where `y` stands, from 0 (bottom) to 1 (top).
    fn fraction(&self, y: f64) -> f64 {
        match self.scale {
            Scale::Linear => (y - self.lo) / (self.hi - self.lo),
            Scale::Log => (y.max(self.lo) / self.lo).log10() / (self.hi / self.lo).log10(),
        }
    }

    fn ticks(&self) -> Vec<f64> {
        match self.scale {
            Scale::Linear => (0..=4).map(|k| self.hi * f64::from(k) / 4.0).collect(),
            Scale::Log => {
                let (lo, hi) = (
                    self.lo.log10().round() as i32,
                    self.hi.log10().round() as i32,
                );
                (lo..=hi).map(decade).collect()
            }
        }
    }
}

/// 10^k, exactly as written in decimal (0.01, not 0.010000000000000002).
fn decade(k: i32) -> f64 {
    if k >= 0 {
        10f64.powi(k)
    } else {
        1.0 / 10f64.powi(-k)
    }
}

/// Ticks from `lo` to `hi`, a [`nice_step`] apart.
fn chosen_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let step = nice_step(hi - lo);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A step of 1, 2 or 5 times a power of ten (at least 1) that divides
/// `span` into about eight.
pub fn nice_step(span: f64) -> f64 {
    let raw = (span / 8.0).max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// A tick's number: whole from 1 up, as it is below.
pub fn axis_number(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        assert_eq!(nice_step(10.0), 2.0);
        assert_eq!(nice_step(60.0), 10.0);
        assert_eq!(nice_step(3.0), 1.0);
        assert_eq!(nice_step(300.0), 50.0);
        assert_eq!(chosen_ticks(0.0, 10.0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(chosen_ticks(0.5, 3.0), [1.0, 2.0, 3.0]);
    }

    #[test]
    fn a_log_axis_spans_whole_decades_and_labels_them_cleanly() {
        let axis = YAxis::new(Scale::Log, [0.03, 0.0, 250.0].into_iter());
        assert_eq!(axis.ticks(), [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]);
        let labels: Vec<String> = axis.ticks().into_iter().map(axis_number).collect();
        assert_eq!(labels, ["0.01", "0.1", "1", "10", "100", "1000"]);
        assert_eq!(axis.fraction(0.0), 0.0, "zero sits on the floor");
        assert_eq!(axis.fraction(1000.0), 1.0);
        let flat = YAxis::new(Scale::Log, [5.0, 5.0].into_iter());
        assert_eq!(flat.ticks(), [1.0, 10.0]);
    }

    #[test]
    fn a_linear_axis_starts_at_zero() {
        let axis = YAxis::new(Scale::Linear, [3.0, 10.0].into_iter());
        assert_eq!(axis.ticks()[0], 0.0);
        assert!((axis.ticks()[4] - 11.0).abs() < 1e-9);
        let empty = YAxis::new(Scale::Linear, [0.0].into_iter());
        assert_eq!(empty.hi, 1.0);
    }

    #[test]
    fn a_labelled_marker_is_written_beside_its_line_towards_the_middle() {
        let svg = Chart::new("Rate")
            .x_range(0.0, 10.0)
            .line("rate", [(0.0, 1.0), (10.0, 2.0)])
            .labelled_marker(1.0, "injected <x>", "injected at 10:00")
            .labelled_marker(9.0, "rolled back", "rolled back at 10:09")
            .marker(5.0, "change point")
            .svg();
        assert!(
            svg.contains(r#"text-anchor="start">injected &lt;x&gt;</text>"#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"text-anchor="end">rolled back</text>"#),
            "{svg}"
        );
        assert!(svg.contains("<title>rolled back at 10:09</title>"));
        assert!(
            !svg.contains(">change point</text>"),
            "an unlabelled marker has a title only"
        );
    }

    #[test]
    fn draws_series_legend_ticks_and_markers_escaped() {
        let svg = Chart::new("Latency <ms>")
            .log_y()
            .y_format(|v| format!("{v} ms"))
            .x_ticks([(0.0, "06:00".to_owned()), (1.0, "06:05".to_owned())])
            .caption("by minute")
            .line("p50", [(0.0, 20.0), (1.0, 30.0)])
            .line_in("#c62828", "p99 & more", [(0.0, 200.0), (1.0, f64::NAN)])
            .marker(0.5, "change point <06:02>")
            .svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"aria-label="Latency &lt;ms&gt;""#));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("#1f77b4") && svg.contains("#c62828"));
        assert!(svg.contains(">p99 &amp; more<"));
        assert!(svg.contains(">06:05<") && svg.contains(">by minute<"));
        assert!(svg.contains(">100 ms<"));
        assert!(svg.contains("<title>change point &lt;06:02&gt;</title>"));
        assert!(!svg.contains("NaN"), "a missing value is left out");
        assert!(
            !svg.contains("http"),
            "an inline SVG needs no namespace URL"
        );
    }

    #[test]
    fn chosen_x_ticks_use_the_format() {
        let svg = Chart::new("rate")
            .x_format(|s| format!("{s}s"))
            .x_range(0.0, 10.0)
            .line("answered/s", [(1.0, 5.0), (10.0, 7.0)])
            .svg();
        for label in [">0s<", ">4s<", ">10s<"] {
            assert!(svg.contains(label), "{label} in {svg}");
        }
    }

    #[test]
    fn no_points_is_no_data() {
        assert_eq!(Chart::new("x").svg(), "<p>no data</p>");
        assert_eq!(Chart::new("x").line("a", []).svg(), "<p>no data</p>");
    }
}
