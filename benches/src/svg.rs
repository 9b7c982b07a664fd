//! Small line charts as SVG text (latency CDFs, late ticks vs calls). Written by hand so the report needs no
//! plotting stack; a chart is a few kilobytes.

use std::fmt::Write as _;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A chart: axes from the data (or fixed), one colour per series, a legend.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Fixed y range, e.g. 0..=1 for a CDF; otherwise from the data (starting at 0).
    pub y_range: Option<(f64, f64)>,
    /// Draw markers at the points (for short series such as a capacity ladder).
    pub markers: bool,
    /// A horizontal reference line (a goal or a bound) and its label.
    pub y_line: Option<(f64, String)>,
    /// A vertical reference line and its label.
    pub x_line: Option<(f64, String)>,
}

const W: f64 = 640.0;
const H: f64 = 360.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 32.0;
const BOTTOM: f64 = 48.0;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// A "nice" step (1, 2 or 5 × 10^k) giving about `target` ticks over `span`.
fn nice_step(span: f64, target: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / target;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

fn fmt_tick(v: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{v:.0}")
    } else if step >= 0.1 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Chart {
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            y_range: None,
            markers: false,
            y_line: None,
            x_line: None,
        }
    }

    pub fn series(mut self, name: &str, points: Vec<(f64, f64)>) -> Self {
        self.series.push(Series {
            name: name.into(),
            points,
        });
        self
    }

    /// The SVG document.
    pub fn render(&self) -> String {
        let pts = || self.series.iter().flat_map(|s| s.points.iter());
        let finite = |v: &f64| v.is_finite();
        let mut x_max = pts().map(|p| p.0).filter(finite).fold(f64::MIN, f64::max);
        let mut x_min = pts().map(|p| p.0).filter(finite).fold(f64::MAX, f64::min);
        if let Some((x, _)) = &self.x_line {
            x_max = x_max.max(*x);
            x_min = x_min.min(*x);
        }
        if x_max < x_min {
            (x_min, x_max) = (0.0, 1.0);
        }
        x_min = x_min.min(0.0);
        if x_max <= x_min {
            x_max = x_min + 1.0;
        }
        let (y_min, mut y_max) = self.y_range.unwrap_or_else(|| {
            let m = pts().map(|p| p.1).filter(finite).fold(0.0, f64::max);
            (0.0, m)
        });
        if let Some((y, _)) = &self.y_line {
            if self.y_range.is_none() {
                y_max = y_max.max(*y * 1.1);
            }
        }
        if y_max <= y_min {
            y_max = y_min + 1.0;
        }
        let xs = nice_step(x_max - x_min, 8.0);
        let ys = nice_step(y_max - y_min, 5.0);
        let x_max = (x_max / xs).ceil() * xs;
        let y_max = if self.y_range.is_some() {
            y_max
        } else {
            (y_max / ys).ceil() * ys
        };
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let px = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * pw;
        let py = |y: f64| TOP + ph - (y.clamp(y_min, y_max) - y_min) / (y_max - y_min) * ph;

        let mut s = String::new();
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
             font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n"
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
            W / 2.0,
            escape(&self.title)
        );
        // Grid and ticks.
        let mut x = x_min;
        while x <= x_max + xs * 1e-9 {
            let gx = px(x);
            let _ = writeln!(
                s,
                "<line x1=\"{gx:.1}\" y1=\"{TOP}\" x2=\"{gx:.1}\" y2=\"{:.1}\" stroke=\"#e5e5e5\"/>\
                 <text x=\"{gx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                TOP + ph,
                TOP + ph + 14.0,
                fmt_tick(x, xs)
            );
            x += xs;
        }
        let mut y = y_min;
        while y <= y_max + ys * 1e-9 {
            let gy = py(y);
            let _ = writeln!(
                s,
                "<line x1=\"{LEFT}\" y1=\"{gy:.1}\" x2=\"{:.1}\" y2=\"{gy:.1}\" stroke=\"#e5e5e5\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT + pw,
                LEFT - 4.0,
                gy + 4.0,
                fmt_tick(y, ys)
            );
            y += ys;
        }
        let _ = writeln!(
            s,
            "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/>"
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            LEFT + pw / 2.0,
            H - 10.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            s,
            "<text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            escape(&self.y_label)
        );
        if let Some((yv, label)) = &self.y_line {
            let gy = py(*yv);
            let _ = writeln!(
                s,
                "<line x1=\"{LEFT}\" y1=\"{gy:.1}\" x2=\"{:.1}\" y2=\"{gy:.1}\" stroke=\"#888\" stroke-dasharray=\"5,4\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
                LEFT + pw,
                LEFT + pw - 4.0,
                gy - 4.0,
                escape(label)
            );
        }
        if let Some((xv, label)) = &self.x_line {
            let gx = px(*xv);
            let _ = writeln!(
                s,
                "<line x1=\"{gx:.1}\" y1=\"{TOP}\" x2=\"{gx:.1}\" y2=\"{:.1}\" stroke=\"#888\" stroke-dasharray=\"5,4\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#555\">{}</text>",
                TOP + ph,
                gx + 4.0,
                TOP + 12.0,
                escape(label)
            );
        }
        for (i, series) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let path: Vec<String> = series
                .points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            if !path.is_empty() {
                let _ = writeln!(
                    s,
                    "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.8\" points=\"{}\"/>",
                    path.join(" ")
                );
            }
            if self.markers {
                for p in &path {
                    if let Some((cx, cy)) = p.split_once(',') {
                        let _ = writeln!(
                            s,
                            "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"3\" fill=\"{colour}\"/>"
                        );
                    }
                }
            }
        }
        // Legend last, over the lines.
        for (i, series) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let ly = TOP + 14.0 + i as f64 * 15.0;
            if i == 0 {
                let longest = self
                    .series
                    .iter()
                    .map(|s| s.name.chars().count())
                    .max()
                    .unwrap_or(0);
                let _ = writeln!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#ccc\"/>",
                    LEFT + 6.0,
                    TOP + 4.0,
                    34.0 + longest as f64 * 6.2,
                    self.series.len() as f64 * 15.0 + 4.0
                );
            }
            let _ = writeln!(
                s,
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                LEFT + 10.0,
                ly - 4.0,
                LEFT + 30.0,
                ly - 4.0,
                LEFT + 34.0,
                ly,
                escape(&series.name)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(100.0, 5.0), 20.0);
        assert_eq!(nice_step(1.0, 5.0), 0.2);
        assert_eq!(nice_step(2000.0, 8.0), 500.0);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
    }

    #[test]
    fn renders_every_series_and_escapes_text() {
        let svg = Chart::new("a < b & c", "ms", "fraction")
            .series("one", vec![(0.0, 0.0), (10.0, 0.5), (20.0, 1.0)])
            .series("two", vec![(5.0, 0.2), (f64::NAN, 0.3)])
            .render();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("a &lt; b &amp; c"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(!svg.contains("NaN"));
        // An empty chart still renders (no division by zero).
        let empty = Chart::new("empty", "x", "y").render();
        assert!(empty.contains("</svg>") && !empty.contains("NaN"));
    }
}
