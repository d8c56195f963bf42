//! The geometry of one metric's chart (value against iteration) for the HTML report, computed
//! in Rust so the template only places ready-made coordinates and labels.
//!
//! A chart shows the warmup region (shaded, its samples in grey), the measured samples, the
//! fitted line over the measured range (the robust Theil–Sen fit the verdict used, so the line
//! has the slope the caption states; least squares for results written before robust fits),
//! the confidence band of its slope (two lines with the interval's slopes through the fit at
//! the mean iteration), and a dashed line with the tolerance's slope through the same point: a
//! fit steeper than the dashed line grows faster than allowed. The value axis spans both lines
//! whole, so a flat series shows its tolerance as a gentle slope across the plot. Long series are thinned to at
//! most [`MAX_POINTS`] points per series, keeping each bucket's minimum and maximum so spikes
//! and sawtooth envelopes survive; the raw samples stay in `results.json`.

use std::fmt::Write;

use crate::metric::Metric;
use crate::results::Fit;
use crate::results::MetricResult;
use crate::units::Unit;

/// Most points drawn for the measured series (and a third of it for warmup): a chart is about
/// 400 pixels wide, so more would not show more.
pub const MAX_POINTS: usize = 300;

/// Width of the chart's coordinate system (it scales to the page).
pub const WIDTH: f64 = 440.0;
/// Height of the chart's coordinate system.
pub const HEIGHT: f64 = 220.0;
const LEFT: f64 = 66.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 34.0;

/// Everything the template needs to draw one chart, in SVG user units.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Which metric.
    pub metric: Metric,
    /// Whether the metric decides the verdict.
    pub gated: bool,
    /// Plot area origin and size (inside the axes).
    pub plot: Rect,
    /// Ticks along the iteration axis.
    pub x_ticks: Vec<Tick>,
    /// Ticks along the value axis.
    pub y_ticks: Vec<Tick>,
    /// The warmup region, in plot coordinates, when there are warmup samples.
    pub warmup: Option<Span>,
    /// Warmup samples as a path of dots.
    pub warmup_dots: String,
    /// Measured samples as a path of dots.
    pub measured_dots: String,
    /// The fitted line.
    pub fit: Option<Segment>,
    /// The slope's confidence band as a polygon `points` list.
    pub band: Option<String>,
    /// A line with the tolerance's slope through the fit at the mean iteration.
    pub tolerance: Option<Segment>,
    /// `shown of total` when the series was thinned for drawing.
    pub thinned: Option<(usize, usize)>,
}

/// A rectangle.
#[derive(Debug, Clone, Copy)]
pub struct Rect {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

/// A horizontal stretch of the plot area.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// Left edge.
    pub x: f64,
    /// Width.
    pub w: f64,
}

/// A line segment.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    /// Start x.
    pub x1: f64,
    /// Start y.
    pub y1: f64,
    /// End x.
    pub x2: f64,
    /// End y.
    pub y2: f64,
}

/// An axis tick: where (plot coordinates along its axis) and its label.
#[derive(Debug, Clone)]
pub struct Tick {
    /// Position along the axis inside the plot area.
    pub pos: f64,
    /// Human label, e.g. `20 KiB` or `150`.
    pub label: String,
}

/// Maps data to plot coordinates.
struct Scale {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    plot: Rect,
}

impl Scale {
    fn x(&self, value: f64) -> f64 {
        (value - self.x0) / (self.x1 - self.x0) * self.plot.w
    }

    fn y(&self, value: f64) -> f64 {
        self.plot.h - (value - self.y0) / (self.y1 - self.y0) * self.plot.h
    }
}

impl Chart {
    /// Lays out the chart of one metric; `None` when it has no samples at all. `robust` is the
    /// fit the verdict used (the scenario's analysis), drawn instead of the least-squares one.
    pub fn build(metric: Metric, result: &MetricResult, robust: Option<&Fit>) -> Option<Chart> {
        let measured = thin(&result.samples, MAX_POINTS);
        let warmup = thin(&result.warmup_samples, MAX_POINTS / 3);
        let everything = || result.samples.iter().chain(&result.warmup_samples);
        let (mut x_min, mut x_max) = bounds(everything().map(|&(i, _)| i as f64))?;
        let (mut y_min, mut y_max) = bounds(everything().map(|&(_, v)| v))?;

        let fit = fitted(result, robust);
        if let Some(fit) = &fit {
            // The fitted line and the tolerance line are drawn whole: clipped to a flat series'
            // narrow range, the tolerance line of a flat fds chart was a short, steep stroke in
            // the middle that read as a spike.
            for x in [fit.first, fit.last] {
                let fitted = fit.intercept + fit.slope * x;
                let allowed = fit.at_mean + result.tolerance * (x - fit.mean);
                for y in [fitted, allowed].into_iter().filter(|y| y.is_finite()) {
                    y_min = y_min.min(y);
                    y_max = y_max.max(y);
                }
            }
        }
        if x_max <= x_min {
            x_max = x_min + 1.0;
        }
        x_min = x_min.min(0.0);
        let (y_min, y_max) = pad(y_min, y_max, result.unit);
        let (y_ticks, y0, y1) = ticks(y_min, y_max, result.unit, 5);
        let (x_ticks, _, _) = ticks(x_min, x_max, Unit::Count, 6);

        let plot = Rect {
            x: LEFT,
            y: TOP,
            w: WIDTH - LEFT - RIGHT,
            h: HEIGHT - TOP - BOTTOM,
        };
        let scale = Scale {
            x0: x_min,
            x1: x_max,
            y0,
            y1,
            plot,
        };
        let x_ticks = x_ticks
            .into_iter()
            .filter(|&(v, _)| v >= x_min && v <= x_max)
            .map(|(v, label)| Tick {
                pos: round(scale.x(v)),
                label,
            })
            .collect();
        let y_ticks = y_ticks
            .into_iter()
            .map(|(v, label)| Tick {
                pos: round(scale.y(v)),
                label,
            })
            .collect();

        let warmup_span = match (result.warmup_samples.first(), result.samples.first()) {
            (Some(&(first, _)), measured_start) => {
                let end = measured_start.map_or(x_max, |&(i, _)| i as f64);
                let start = scale.x(first as f64).max(0.0);
                Some(Span {
                    x: round(start),
                    w: round((scale.x(end) - start).max(0.0)),
                })
            }
            (None, _) => None,
        };

        let (fit_segment, band, tolerance) = match &fit {
            Some(fit) => {
                let segment = |slope: f64| Segment {
                    x1: round(scale.x(fit.first)),
                    y1: round(scale.y(fit.at_mean + slope * (fit.first - fit.mean))),
                    x2: round(scale.x(fit.last)),
                    y2: round(scale.y(fit.at_mean + slope * (fit.last - fit.mean))),
                };
                let main = segment(fit.slope);
                let band = fit.ci.map(|(low, high)| {
                    let (a, b) = (segment(low), segment(high));
                    let mid_x = round(scale.x(fit.mean));
                    let mid_y = round(scale.y(fit.at_mean));
                    // Upper envelope left to right, then the lower one back: a bow tie.
                    format!(
                        "{},{} {mid_x},{mid_y} {},{} {},{} {mid_x},{mid_y} {},{}",
                        a.x1,
                        a.y1.min(b.y1),
                        b.x2,
                        a.y2.min(b.y2),
                        b.x2,
                        a.y2.max(b.y2),
                        a.x1,
                        a.y1.max(b.y1)
                    )
                });
                (Some(main), band, Some(segment(result.tolerance)))
            }
            None => (None, None, None),
        };

        let total = result.samples.len() + result.warmup_samples.len();
        let shown = measured.len() + warmup.len();
        Some(Chart {
            metric,
            gated: result.gated,
            plot,
            x_ticks,
            y_ticks,
            warmup: warmup_span,
            warmup_dots: dots(&warmup, &scale),
            measured_dots: dots(&measured, &scale),
            fit: fit_segment,
            band,
            tolerance,
            thinned: (shown < total).then_some((shown, total)),
        })
    }

    /// Width of the whole chart in user units.
    pub fn width(&self) -> f64 {
        WIDTH
    }

    /// Height of the whole chart in user units.
    pub fn height(&self) -> f64 {
        HEIGHT
    }

    /// The x position of the axis title, right-aligned under the plot.
    pub fn x_title_x(&self) -> f64 {
        self.plot.x + self.plot.w
    }

    /// The y position of the axis title, below the tick labels.
    pub fn x_title_y(&self) -> f64 {
        HEIGHT - 3.0
    }

    /// Horizontal grid lines at the value ticks, as one path.
    pub fn grid_path(&self) -> String {
        let mut d = String::new();
        for tick in &self.y_ticks {
            let _ = write!(d, "M0 {}H{}", tick.pos, self.plot.w);
        }
        d
    }

    /// The iteration axis and its tick marks, as one path.
    pub fn axis_path(&self) -> String {
        let mut d = format!("M0 {}H{}", self.plot.h, self.plot.w);
        for tick in &self.x_ticks {
            let _ = write!(d, "M{} {}v4", tick.pos, self.plot.h);
        }
        d
    }

    /// Baseline of the iteration tick labels.
    pub fn tick_label_y(&self) -> f64 {
        self.plot.h + 15.0
    }

    /// The drawing area of the data layers: the plot plus a margin so that dots on the edge
    /// are whole; anything beyond (a wide confidence band) is clipped.
    pub fn clip(&self) -> Rect {
        Rect {
            x: -4.0,
            y: -4.0,
            w: self.plot.w + 8.0,
            h: self.plot.h + 8.0,
        }
    }
}

/// The fitted line in data coordinates.
struct Fitted {
    slope: f64,
    intercept: f64,
    ci: Option<(f64, f64)>,
    first: f64,
    last: f64,
    mean: f64,
    at_mean: f64,
}

fn fitted(result: &MetricResult, robust: Option<&Fit>) -> Option<Fitted> {
    let (slope, intercept, ci) = match robust {
        Some(r) => (r.slope, r.intercept, Some((r.ci_low, r.ci_high))),
        None => (
            result.slope?,
            result.intercept?,
            result.ci_low.zip(result.ci_high),
        ),
    };
    let first = result.samples.first()?.0 as f64;
    let last = result.samples.last()?.0 as f64;
    let mean =
        result.samples.iter().map(|&(i, _)| i as f64).sum::<f64>() / result.samples.len() as f64;
    Some(Fitted {
        slope,
        intercept,
        ci,
        first,
        last,
        mean,
        at_mean: intercept + slope * mean,
    })
}

fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Widens a flat or nearly flat range so a constant series sits mid-chart.
fn pad(lo: f64, hi: f64, unit: Unit) -> (f64, f64) {
    let span = hi - lo;
    let floor = match unit {
        Unit::Bytes => 16.0,
        Unit::Count => 1.0,
    };
    if span < floor {
        let mid = (lo + hi) / 2.0;
        (mid - floor / 2.0, mid + floor / 2.0)
    } else {
        (lo - span * 0.04, hi + span * 0.04)
    }
}

/// About `target` round ticks covering `[lo, hi]`, and the widened range they span. Byte
/// ticks are round in the binary prefix that suits the largest value (`KiB`, `MiB`, …) and
/// labelled with as many decimals as the step needs, so neighbouring labels always differ.
pub fn ticks(lo: f64, hi: f64, unit: Unit, target: usize) -> (Vec<(f64, String)>, f64, f64) {
    let (factor, suffix) = match unit {
        Unit::Bytes => byte_prefix(lo.abs().max(hi.abs())),
        Unit::Count => (1.0, ""),
    };
    let (lo_s, hi_s) = (lo / factor, hi / factor);
    let raw = ((hi_s - lo_s) / target as f64).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let step = if unit == Unit::Count {
        step.max(1.0)
    } else {
        step
    };
    // Fewest decimals that write the step exactly (0.25 needs two, 20 none).
    let decimals = (0..=6)
        .find(|&d| {
            let scaled = step * 10f64.powi(d);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(6) as usize;
    let first = (lo_s / step).floor() as i64;
    let last = (hi_s / step).ceil() as i64;
    let ticks = (first..=last)
        .map(|k| {
            let value = k as f64 * step;
            let number = format!("{value:.decimals$}");
            let label = if suffix.is_empty() {
                number
            } else {
                format!("{number} {suffix}")
            };
            (value * factor, label)
        })
        .collect();
    (
        ticks,
        first as f64 * step * factor,
        last as f64 * step * factor,
    )
}

fn byte_prefix(largest: f64) -> (f64, &'static str) {
    const KIB: f64 = 1024.0;
    if largest >= KIB * KIB * KIB {
        (KIB * KIB * KIB, "GiB")
    } else if largest >= KIB * KIB {
        (KIB * KIB, "MiB")
    } else if largest >= KIB {
        (KIB, "KiB")
    } else {
        (1.0, "B")
    }
}

/// At most `max` points: every point when they fit, else the minimum and maximum of
/// `max / 2` equal buckets, in iteration order.
pub fn thin(points: &[(u64, f64)], max: usize) -> Vec<(u64, f64)> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let buckets = max / 2;
    let mut out = Vec::with_capacity(max);
    for b in 0..buckets {
        let start = b * points.len() / buckets;
        let end = (b + 1) * points.len() / buckets;
        let bucket = &points[start..end];
        let Some(low) = bucket.iter().min_by(|a, b| a.1.total_cmp(&b.1)) else {
            continue;
        };
        let high = bucket
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or(low);
        if low.0 <= high.0 {
            out.push(*low);
            if high.0 != low.0 {
                out.push(*high);
            }
        } else {
            out.push(*high);
            out.push(*low);
        }
    }
    out
}

/// A coordinate to one decimal, kept finite: a line far steeper than the plot (a hand-edited
/// tolerance of -1e308 in results.json) would otherwise reach `-inf`, which is not SVG. Beyond
/// a hundred plot heights the clip rectangle shows the same either way.
fn round(value: f64) -> f64 {
    const FAR: f64 = 100.0 * HEIGHT;
    if value.is_nan() {
        return 0.0;
    }
    (value.clamp(-FAR, FAR) * 10.0).round() / 10.0
}

/// One zero-length segment per point: with round line caps each draws as a dot, so a whole
/// series is one short `<path>` instead of hundreds of `<circle>` elements.
fn dots(points: &[(u64, f64)], scale: &Scale) -> String {
    let mut out = String::with_capacity(points.len() * 10);
    let mut previous: Option<(f64, f64)> = None;
    for &(i, v) in points {
        let (x, y) = (round(scale.x(i as f64)), round(scale.y(v)));
        // Relative moves from the previous dot are about a third shorter than absolute ones.
        let _ = match previous {
            None => write!(out, "M{x} {y}h0"),
            Some((px, py)) => write!(out, "m{} {}h0", round(x - px), round(y - py)),
        };
        previous = Some((x, y));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Call;

    fn series(n: u64, f: impl Fn(u64) -> f64) -> Vec<(u64, f64)> {
        (0..n).map(|i| (i, f(i))).collect()
    }

    fn metric(samples: Vec<(u64, f64)>, warmup: Vec<(u64, f64)>) -> MetricResult {
        MetricResult {
            unit: Unit::Bytes,
            slope: Some(36.0),
            ci_low: Some(35.0),
            ci_high: Some(37.0),
            confidence: Some(0.99),
            stderr: Some(0.3),
            intercept: Some(1000.0),
            tolerance: 8.0,
            gated: true,
            call: Call::Grows,
            samples,
            warmup_samples: warmup,
        }
    }

    #[test]
    fn extreme_slopes_give_finite_coordinates() {
        for tolerance in [-1e308, 1e308, f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            let mut result = metric(series(50, |i| 1000.0 + 36.0 * i as f64), Vec::new());
            result.tolerance = tolerance;
            result.ci_low = Some(-1e308);
            let chart = Chart::build(Metric::Tracemalloc, &result, None).unwrap();
            let t = chart.tolerance.expect("tolerance line");
            for v in [t.x1, t.y1, t.x2, t.y2] {
                assert!(v.is_finite(), "{tolerance}: {t:?}");
            }
            let band = chart.band.expect("band");
            assert!(!band.contains("inf") && !band.contains("NaN"), "{band}");
        }
    }

    #[test]
    fn thinning_keeps_extremes_and_order() {
        let saw = series(10_000, |i| (i % 50) as f64);
        let thinned = thin(&saw, 400);
        assert!(thinned.len() <= 400);
        assert!(thinned.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(thinned.iter().map(|p| p.1).fold(f64::MAX, f64::min), 0.0);
        assert_eq!(thinned.iter().map(|p| p.1).fold(f64::MIN, f64::max), 49.0);
        let short = series(10, |i| i as f64);
        assert_eq!(thin(&short, 400), short);
    }

    #[test]
    fn byte_ticks_are_round_in_a_binary_prefix_and_distinct() {
        let (found, lo, hi) = ticks(17_000.0, 60_000.0, Unit::Bytes, 5);
        let labels: Vec<&str> = found.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            labels,
            ["10 KiB", "20 KiB", "30 KiB", "40 KiB", "50 KiB", "60 KiB"]
        );
        assert!(lo <= 17_000.0 && hi >= 60_000.0);

        // A large value with a small range needs decimals to tell ticks apart.
        let (found, _, _) = ticks(16.50 * 1048576.0, 16.56 * 1048576.0, Unit::Bytes, 5);
        let labels: Vec<&String> = found.iter().map(|(_, l)| l).collect();
        let mut unique = labels.clone();
        unique.dedup();
        assert_eq!(unique.len(), labels.len(), "{labels:?}");
        assert!(labels[0].ends_with(" MiB"), "{labels:?}");
    }

    #[test]
    fn count_ticks_are_whole_numbers() {
        let (ticks, _, _) = ticks(5.5, 6.5, Unit::Count, 5);
        assert!(
            ticks
                .iter()
                .all(|(v, l)| v.fract() == 0.0 && !l.contains('.'))
        );
    }

    #[test]
    fn a_leaking_series_gets_every_layer_inside_the_plot() {
        let chart = Chart::build(
            Metric::Tracemalloc,
            &metric(
                series(200, |i| 1000.0 + 36.0 * i as f64).split_off(20),
                series(20, |i| 1000.0 + 36.0 * i as f64),
            ),
            None,
        )
        .unwrap();
        let warmup = chart.warmup.expect("warmup region");
        assert!(warmup.x >= 0.0 && warmup.w > 0.0);
        let fit = chart.fit.expect("fit");
        assert!(fit.y2 < fit.y1, "a rising line goes up the page");
        assert!(chart.band.is_some() && chart.tolerance.is_some());
        for tick in chart.x_ticks.iter().chain(&chart.y_ticks) {
            assert!(tick.pos >= 0.0 && tick.pos <= chart.plot.w.max(chart.plot.h) + 0.1);
        }
        assert_eq!(chart.measured_dots.matches("h0").count(), 180);
        assert!(chart.thinned.is_none());
    }

    /// Open descriptors, 6 throughout `n` iterations, fitted flat.
    fn flat_fds(n: u64, tolerance: f64) -> MetricResult {
        let mut m = metric(series(n, |_| 6.0), Vec::new());
        m.unit = Unit::Count;
        m.slope = Some(0.0);
        m.intercept = Some(6.0);
        m.tolerance = tolerance;
        m
    }

    #[test]
    fn a_flat_series_is_drawn_mid_chart() {
        let m = flat_fds(100, 8.0);
        let chart = Chart::build(Metric::Fds, &m, None).unwrap();
        let fit = chart.fit.unwrap();
        assert!(fit.y1 > 10.0 && fit.y1 < chart.plot.h - 10.0, "{fit:?}");
        assert!(chart.warmup.is_none());
    }

    #[test]
    fn a_flat_series_gets_its_whole_tolerance_line_not_a_spike() {
        // fds, flat at 6 over 200 iterations, tolerance 0.05/iter: the allowed line rises 10
        // over the run, far beyond the series' own range.
        let m = flat_fds(200, 0.05);
        let chart = Chart::build(Metric::Fds, &m, None).unwrap();
        let t = chart.tolerance.unwrap();
        let fit = chart.fit.unwrap();
        for y in [t.y1, t.y2, fit.y1, fit.y2] {
            assert!((0.0..=chart.plot.h).contains(&y), "{t:?} {fit:?}");
        }
        assert_eq!((t.x1, t.x2), (fit.x1, fit.x2), "both span the measured run");
        assert!(
            t.y1 - t.y2 > chart.plot.h / 2.0,
            "it rises across the plot: {t:?}"
        );
        assert_eq!(fit.y1, fit.y2, "the series is flat");
    }

    #[test]
    fn no_samples_no_chart() {
        assert!(Chart::build(Metric::Rss, &metric(Vec::new(), Vec::new()), None).is_none());
    }

    #[test]
    fn the_line_is_the_robust_fit_the_verdict_used() {
        // Flat with one spike at the end: least squares tilts up, Theil–Sen stays flat, and the
        // caption states the Theil–Sen slope, so the line must be flat too.
        let mut samples = series(100, |_| 5000.0);
        samples[99].1 = 50_000.0;
        let mut m = metric(samples.clone(), Vec::new());
        let points: Vec<(f64, f64)> = samples.iter().map(|&(i, v)| (i as f64, v)).collect();
        let ols = crate::stats::fit_ols(&points, 0.99).unwrap();
        m.slope = Some(ols.slope);
        m.intercept = Some(ols.intercept);
        assert!(ols.slope > 10.0);
        let robust = Fit::from(&crate::stats::fit_robust(&points, 0.99).unwrap());
        assert_eq!(robust.slope, 0.0);

        let tilted = Chart::build(Metric::Rss, &m, None).unwrap().fit.unwrap();
        let flat = Chart::build(Metric::Rss, &m, Some(&robust))
            .unwrap()
            .fit
            .unwrap();
        assert!(tilted.y2 < tilted.y1 - 1.0, "{tilted:?}");
        assert_eq!(flat.y1, flat.y2, "{flat:?}");
    }
}
