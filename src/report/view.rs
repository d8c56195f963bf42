//! What every report says about a run, computed once into a [`RunView`]: the headline and
//! counts, the order scenarios are listed in, each scenario's label, why it fails the gate,
//! advice, every metric's growth, interval, confidence and tolerance in words, its diagnosis
//! (a [`DiagnosisView`]) and the comparison with a baseline (a [`ComparisonView`]).
//!
//! The terminal, HTML, JUnit and the GitHub output render a [`RunView`]; none of them
//! re-derives a figure or words a headline of its own.

use crate::compare;
use crate::diagnosis::DiagnosisView;
use crate::metric::Metric;
use crate::results::{
    Change, Comparison, Growth, MetricAnalysis, MetricResult, RunResults, ScenarioComparison,
    ScenarioResult, Shift,
};
use crate::scenario::Expect;
use crate::units::{Unit, format_quantity};
use crate::verdict::Verdict;

/// A run as every report tells it.
pub struct RunView<'r> {
    /// The results rendered.
    pub results: &'r RunResults,
    /// Whether every scenario was as expected (the gate passes).
    pub all_ok: bool,
    /// `every scenario as expected (16 scenarios)` or `4 of 10 scenarios not as expected`.
    pub headline: String,
    /// The scenarios by verdict, `skipped` included even when there are none.
    pub counts: Vec<Count>,
    /// Every scenario, in report order (see [`ordered`]).
    pub rows: Vec<ScenarioView<'r>>,
    /// The comparison with a baseline (`--baseline`), when there is one.
    pub comparison: Option<ComparisonView<'r>>,
}

/// A run compared with its baseline, as every report tells it.
pub struct ComparisonView<'r> {
    /// The comparison rendered.
    pub comparison: &'r Comparison,
    /// `1 new leak(s), 2 significant rise(s), …, 3 unchanged`, with the scenarios not
    /// selected when there are some.
    pub headline: String,
    /// Every scenario compared, in the comparison's order (most important changes first).
    pub entries: Vec<ChangeView<'r>>,
}

/// One scenario compared with its baseline.
pub struct ChangeView<'r> {
    /// The entry rendered.
    pub entry: &'r ScenarioComparison,
    /// The scenario's section in the HTML report; `None` when it did not run now (removed).
    pub anchor: Option<String>,
    /// Whether the change fails the gate (a significant rise under `--fail-on-regression`).
    pub fails_gate: bool,
    /// Every metric compared, old and new growth in words.
    pub metrics: Vec<MetricChangeView>,
}

/// One metric's growth before and after, in words.
pub struct MetricChangeView {
    /// The metric.
    pub metric: Metric,
    /// Growth in the baseline, `—` without a fit (see [`growth_of`]).
    pub old: String,
    /// Growth now, `—` without a fit.
    pub new: String,
    /// How the two compare.
    pub shift: Shift,
}

impl MetricChangeView {
    /// `rose`, `fell`, `same`, or `—` when not compared.
    pub fn shift_word(&self) -> &'static str {
        match self.shift {
            Shift::Rose => "rose",
            Shift::Fell => "fell",
            Shift::Same => "same",
            Shift::NotCompared => "—",
        }
    }
}

/// How many scenarios got one verdict.
pub struct Count {
    /// The verdict's name: `pass`, `leak`, `inconclusive`, `error`, `skipped`.
    pub label: &'static str,
    /// How many.
    pub value: usize,
}

/// One scenario as every report tells it.
pub struct ScenarioView<'r> {
    /// Its position in the run (`results.scenarios`).
    pub index: usize,
    /// The result rendered.
    pub result: &'r ScenarioResult,
    /// Fragment identifier of its section in the HTML report (see [`anchor`]).
    pub anchor: String,
    /// `PASS`, `LEAK (expected)`, `PASS (expected leak!)`, … (see [`label`]).
    pub label: String,
    /// Why it fails the gate, in a few words (see [`failure`]); `None` when as expected.
    pub failure: Option<&'static str>,
    /// What to do about an outcome that calls for it (see [`advice`]).
    pub advice: Option<String>,
    /// Every metric measured, in [`Metric`] order.
    pub metrics: Vec<MetricView>,
    /// Its diagnosis, when it has one.
    pub diagnosis: Option<DiagnosisView>,
}

/// One metric's growth in words.
pub struct MetricView {
    /// The metric.
    pub metric: Metric,
    /// `217 B/iter ± 0.229 B`, `3/iter [1.7, 3]`, or `not fitted` (see [`growth`]).
    pub growth: String,
    /// `[216 B, 217 B]`, or `—` without a fit (see [`interval`]).
    pub interval: String,
    /// The interval's two-sided confidence, e.g. `99.5` (see [`percent`]).
    pub confidence: String,
    /// `8 B/iter`.
    pub tolerance: String,
    /// The growth in a table cell: `36 B ±0.4*`, `flat after 240` (see [`compact_growth`]).
    pub compact: String,
    /// The same cell without its interval, `36 B*`, for a table that must be narrower.
    pub bare: String,
    /// The growth per iteration alone, `36 B`, without a fit `None`.
    pub slope: Option<String>,
    /// The metric's call: `grows`, `within`, `unclear`, `no fit`.
    pub call: &'static str,
    /// Whether the verdict gates on it.
    pub gated: bool,
}

impl<'r> RunView<'r> {
    /// Words every part of `results` once.
    pub fn new(results: &'r RunResults) -> RunView<'r> {
        let s = &results.summary;
        let headline = if s.failed == 0 {
            format!("every scenario as expected ({} scenarios)", s.total)
        } else {
            format!("{} of {} scenarios not as expected", s.failed, s.total)
        };
        let counts = [
            ("pass", s.pass),
            ("leak", s.leak),
            ("inconclusive", s.inconclusive),
            ("error", s.error),
            ("skipped", s.skipped),
        ]
        .map(|(label, value)| Count { label, value })
        .into();
        RunView {
            results,
            all_ok: s.failed == 0,
            headline,
            counts,
            rows: ordered(results)
                .into_iter()
                .map(|(index, scenario)| ScenarioView::new(results, index, scenario))
                .collect(),
            comparison: results
                .baseline
                .as_ref()
                .map(|c| ComparisonView::new(c, results)),
        }
    }

    /// The verdict counts, e.g. `3 pass, 1 leak, 0 inconclusive, 0 error` with `", "`;
    /// `skipped` only when some were, since most suites never skip.
    pub fn counts_text(&self, separator: &str) -> String {
        self.counts
            .iter()
            .filter(|c| c.label != "skipped" || c.value > 0)
            .map(|c| format!("{} {}", c.value, c.label))
            .collect::<Vec<_>>()
            .join(separator)
    }

    /// `5 pass · 4 leak · 0 inconclusive · 1 error · 0.9 s`: the counts line of the Markdown
    /// formats.
    pub fn counts_and_time(&self) -> String {
        format!(
            "{} · {:.1} s",
            self.counts_text(" · "),
            self.results.duration_secs
        )
    }

    /// `16 scenarios: 9 pass, 5 leak, 0 inconclusive, 0 error; 0 not as expected`: the
    /// closing line of the terminal summary and of `leakcheck merge`.
    pub fn tally(&self) -> String {
        let s = &self.results.summary;
        format!(
            "{} scenarios: {}; {} not as expected",
            s.total,
            self.counts_text(", "),
            s.failed
        )
    }

    /// The scenarios in the order they ran.
    pub fn in_run_order(&self) -> Vec<&ScenarioView<'r>> {
        let mut rows: Vec<&ScenarioView<'r>> = self.rows.iter().collect();
        rows.sort_by_key(|row| row.index);
        rows
    }

    /// The row of the scenario named `name`.
    pub fn row_named(&self, name: &str) -> Option<&ScenarioView<'r>> {
        self.rows.iter().find(|row| row.result.name == name)
    }
}

impl<'r> ComparisonView<'r> {
    fn new(comparison: &'r Comparison, results: &RunResults) -> ComparisonView<'r> {
        let s = &comparison.summary;
        let headline = format!(
            "{} new leak(s), {} significant rise(s), {} other verdict change(s), {} fixed leak(s), \
             {} significant fall(s), {} added, {} removed, {} unchanged{}",
            s.new_leaks,
            s.regressions,
            s.verdict_changes,
            s.fixed_leaks,
            s.improvements,
            s.added,
            s.removed,
            s.unchanged,
            not_selected(s.not_selected),
        );
        let entries = comparison
            .scenarios
            .iter()
            .map(|entry| {
                let now = results
                    .scenarios
                    .iter()
                    .position(|sc| sc.name == entry.name);
                let unit_of = |metric: Metric| {
                    now.and_then(|i| results.scenarios[i].metrics.get(&metric))
                        .map_or(metric.unit(), |m| m.unit)
                };
                ChangeView {
                    entry,
                    anchor: now.map(|i| anchor(i, &entry.name)),
                    fails_gate: entry.change == Change::Regression && comparison.fail_on_regression,
                    metrics: entry
                        .metrics
                        .iter()
                        .map(|m| {
                            let unit = unit_of(m.metric);
                            let text = |g: Option<Growth>| {
                                g.map_or_else(|| "—".to_string(), |g| growth_of(g, unit))
                            };
                            MetricChangeView {
                                metric: m.metric,
                                old: text(m.old),
                                new: text(m.new),
                                shift: m.shift,
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        ComparisonView {
            comparison,
            headline,
            entries,
        }
    }

    /// The entries worth listing: every change but `unchanged`.
    pub fn notable(&self) -> impl Iterator<Item = &ChangeView<'r>> {
        self.entries.iter().filter(|e| e.entry.change.is_notable())
    }

    /// The entry of the scenario named `name`.
    pub fn entry_named(&self, name: &str) -> Option<&ChangeView<'r>> {
        self.entries.iter().find(|e| e.entry.name == name)
    }
}

impl ChangeView<'_> {
    /// `tracemalloc 36 B/iter ± 0.2 B → 72 B/iter ± 0.3 B (rose)` for every metric that rose
    /// or fell.
    pub fn shifted(&self) -> Vec<String> {
        self.metrics
            .iter()
            .filter(|m| matches!(m.shift, Shift::Rose | Shift::Fell))
            .map(|m| format!("{} {} → {} ({})", m.metric, m.old, m.new, m.shift_word()))
            .collect()
    }
}

impl<'r> ScenarioView<'r> {
    fn new(results: &RunResults, index: usize, scenario: &'r ScenarioResult) -> ScenarioView<'r> {
        ScenarioView {
            index,
            result: scenario,
            anchor: anchor(index, &scenario.name),
            label: label(scenario),
            failure: failure(results, scenario),
            advice: advice(scenario),
            metrics: scenario
                .metrics
                .iter()
                .map(|(&metric, m)| {
                    let analysis = scenario.analysis_of(metric);
                    MetricView {
                        metric,
                        growth: growth(m, analysis),
                        interval: interval(m, analysis),
                        confidence: percent(scenario.confidence_of(metric, results.confidence)),
                        tolerance: tolerance(m),
                        compact: compact_growth(m, analysis, true),
                        bare: compact_growth(m, analysis, false),
                        slope: m
                            .deciding(analysis)
                            .map(|fit| format_quantity(fit.slope, m.unit)),
                        call: call_name(m),
                        gated: m.gated,
                    }
                })
                .collect(),
            diagnosis: scenario.diagnosis.as_ref().map(DiagnosisView::new),
        }
    }

    /// The view of `metric`, when it was measured.
    pub fn metric(&self, metric: Metric) -> Option<&MetricView> {
        self.metrics.iter().find(|m| m.metric == metric)
    }

    /// What CI systems show next to a failing scenario: why it fails, the reason (with its
    /// growth figure) and the top allocation site when there is a diagnosis.
    pub fn failure_message(&self) -> String {
        let mut message = match self.failure {
            Some(why) => format!("{why}: {}", self.result.reason),
            None => self.result.reason.clone(),
        };
        if let Some(site) = self.top_site() {
            message.push_str("; top allocation site ");
            message.push_str(&site);
        }
        message
    }

    /// The allocation site that grew most, in one line:
    /// `shop/prices.py:12 +217 B/iter: _seen.append(quote)`.
    pub fn top_site(&self) -> Option<String> {
        let site = self.diagnosis.as_ref()?.sites.first()?;
        Some(site.one_line())
    }

    /// Every metric's growth on its own line (see [`MetricView::line`]).
    pub fn growth_lines(&self) -> Vec<String> {
        self.metrics.iter().map(MetricView::line).collect()
    }
}

impl MetricView {
    /// `tracemalloc: 217 B/iter ± 0.229 B, 99.5 % CI [216 B, 217 B], tolerance 8 B/iter (gated,
    /// grows)`, the interval at the confidence it was computed at (see
    /// [`ScenarioResult::confidence_of`]).
    pub fn line(&self) -> String {
        format!(
            "{}: {}, {} % CI {}, tolerance {} ({}{})",
            self.metric,
            self.growth,
            self.confidence,
            self.interval,
            self.tolerance,
            if self.gated { "gated, " } else { "" },
            self.call
        )
    }
}

/// `PASS`, `LEAK`, `LEAK (expected)`, `PASS (expected leak!)`: a scenario's verdict, with what
/// it expected when that matters.
pub fn label(scenario: &ScenarioResult) -> String {
    match (scenario.verdict, scenario.expected) {
        (Verdict::Leak, Expect::Leak) => "LEAK (expected)".to_string(),
        (Verdict::Pass, Expect::Leak) => "PASS (expected leak!)".to_string(),
        (verdict, _) => verdict.name().to_ascii_uppercase(),
    }
}

/// Scenarios in report order: those that fail the gate first, then leaks, errors,
/// inconclusive, passes; run order within each group.
pub fn ordered(results: &RunResults) -> Vec<(usize, &ScenarioResult)> {
    let mut scenarios: Vec<(usize, &ScenarioResult)> =
        results.scenarios.iter().enumerate().collect();
    scenarios.sort_by_key(|(_, s)| (s.ok, verdict_rank(s.verdict)));
    scenarios
}

fn verdict_rank(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Leak => 0,
        Verdict::Error => 1,
        Verdict::Inconclusive => 2,
        Verdict::Pass => 3,
        Verdict::Skipped => 4,
    }
}

/// `", N not selected (not compared)"` when the run's selection left baseline scenarios out,
/// else nothing.
pub fn not_selected(count: usize) -> String {
    if count == 0 {
        String::new()
    } else {
        format!(", {count} not selected (not compared)")
    }
}

/// Why a scenario fails the gate, in a few words; `None` when it is as expected.
pub fn failure(results: &RunResults, scenario: &ScenarioResult) -> Option<&'static str> {
    if scenario.ok {
        return None;
    }
    Some(match (scenario.verdict, scenario.expected) {
        (Verdict::Error, _) => "error",
        _ if compare::regressed(results, &scenario.name) => REGRESSION,
        (Verdict::Leak, _) => "unexpected leak",
        (Verdict::Pass, Expect::Leak) => "expected leak not found",
        (Verdict::Inconclusive, _) => "inconclusive (--fail-on-inconclusive)",
        (Verdict::Pass, Expect::Pass) | (Verdict::Skipped, _) => "not as expected",
    })
}

/// Why a scenario whose growth rose over the baseline fails the gate under
/// `--fail-on-regression` (see [`failure`]).
pub const REGRESSION: &str = "significant rise over the baseline (--fail-on-regression)";

/// What to do about a scenario, when its outcome calls for it: an `expect: leak` scenario
/// that passes was probably fixed, and the mark should go; an inconclusive one needs a longer
/// run or a tolerance that says what is acceptable.
pub fn advice(scenario: &ScenarioResult) -> Option<String> {
    match (scenario.verdict, scenario.expected) {
        (Verdict::Pass, Expect::Leak) => Some(
            "marked `expect: leak` but no leak was found: if it was fixed, remove the mark"
                .to_string(),
        ),
        (Verdict::Inconclusive, _) => Some(inconclusive_advice(scenario)),
        _ => None,
    }
}

/// How to run a scenario that ran up to `most` iterations four times as long, within what a
/// scenario may ask for (a wrapped product once suggested fewer iterations than it ran).
fn longer_run(warmup: u64, sample_every: u64, most: Option<u64>) -> String {
    use crate::scenario::{MAX_ITERATIONS, MAX_SAMPLES};
    match most {
        Some(most) if most > 0 && most < MAX_ITERATIONS => {
            let suggested = most.saturating_mul(4).min(MAX_ITERATIONS);
            // Sampled sparsely enough to stay within the sample budget.
            let needed = warmup
                .saturating_add(suggested)
                .div_ceil(MAX_SAMPLES)
                .max(sample_every);
            let sampling = if needed > sample_every {
                format!(" with `sample_every: {needed}`")
            } else {
                String::new()
            };
            format!(
                "run it longer (`max_iterations: {suggested}`{sampling} in the scenario, or \
                 `--max-iterations {suggested}`)"
            )
        }
        Some(_) => "it already runs the most iterations a scenario may".to_string(),
        None => "run it longer (`max_iterations` in the scenario)".to_string(),
    }
}

/// What to do about an inconclusive scenario: more samples narrow the interval, and a growth
/// that is acceptable calls for a tolerance that says so.
fn inconclusive_advice(scenario: &ScenarioResult) -> String {
    let longer = longer_run(
        scenario.warmup,
        scenario.sample_every,
        scenario.analysis.as_ref().map(|a| a.max_iterations),
    );
    format!(
        "to decide: {longer}; or, if growth this close to the tolerance is acceptable, raise the \
         metric's `tolerance`"
    )
}

/// `pass`, `leak`, … as written in `results.json`.
pub fn expect_name(expect: Expect) -> &'static str {
    crate::names::of(&expect)
}

/// A fragment identifier for the scenario's section: its position (unique) and a readable slug.
pub fn anchor(index: usize, name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    format!("s{index}-{}", slug.trim_matches('-'))
}

/// `217 B/iter ± 0.229 B` (the growth the verdict used), or `not fitted`.
pub fn growth(metric: &MetricResult, analysis: Option<&MetricAnalysis>) -> String {
    match metric.deciding(analysis) {
        Some(fit) => growth_of(fit, metric.unit),
        None => "not fitted".to_string(),
    }
}

/// `217 B/iter ± 0.229 B` for a growth from a comparison, or `3/iter [1.7, 3]` when the interval
/// is lopsided (see [`lopsided`]).
pub fn growth_of(growth: Growth, unit: Unit) -> String {
    if lopsided(growth) {
        return format!(
            "{}/iter [{}, {}]",
            format_quantity(growth.slope, unit),
            format_quantity(growth.ci_low, unit),
            format_quantity(growth.ci_high, unit)
        );
    }
    format!(
        "{}/iter ± {}",
        format_quantity(growth.slope, unit),
        format_quantity((growth.ci_high - growth.ci_low) / 2.0, unit)
    )
}

/// Whether a robust interval is too lopsided around its slope for "± half-width" to describe it
/// (Sen's interval of `3` can be `[1.7, 3]`, `188 B` can be `[188 B, 508 B]`): one side more than
/// twice the other.
pub fn lopsided(growth: Growth) -> bool {
    let below = growth.slope - growth.ci_low;
    let above = growth.ci_high - growth.slope;
    let (short, long) = if below < above {
        (below, above)
    } else {
        (above, below)
    };
    long > 0.0 && long > 2.0 * short.max(0.0)
}

/// `36 B ±0.4*`, the compact growth of the terminal's table: the robust slope the verdict
/// used (least squares for results written before it existed), the half-width of its
/// interval (the interval itself when lopsided), and a star for gated metrics; `flat after N`
/// for growth that stopped, `floor flat` for swings around a flat level; `-` without a fit.
/// Without `with_interval`, the slope and the star alone (`36 B*`).
pub fn compact_growth(
    result: &MetricResult,
    analysis: Option<&MetricAnalysis>,
    with_interval: bool,
) -> String {
    let gated = if result.gated { "*" } else { "" };
    if let Some(plateau) = analysis.and_then(|a| a.plateau.as_ref()) {
        return format!("flat after {:.0}{gated}", plateau.until);
    }
    if analysis.is_some_and(|a| a.floor.is_some()) {
        return format!("floor flat{gated}");
    }
    match result.deciding(analysis) {
        Some(fit) if !with_interval => {
            format!("{}{gated}", format_quantity(fit.slope, result.unit))
        }
        Some(fit) if lopsided(fit) => format!(
            "{} [{}, {}]{gated}",
            format_quantity(fit.slope, result.unit),
            format_quantity(fit.ci_low, result.unit),
            format_quantity(fit.ci_high, result.unit),
        ),
        Some(fit) => format!(
            "{} ±{}{gated}",
            format_quantity(fit.slope, result.unit),
            format_quantity((fit.ci_high - fit.ci_low) / 2.0, result.unit),
        ),
        None => "-".to_string(),
    }
}

/// `[216 B, 217 B]`, the interval of the growth per iteration the verdict used.
pub fn interval(metric: &MetricResult, analysis: Option<&MetricAnalysis>) -> String {
    match metric.deciding(analysis) {
        Some(fit) => format!(
            "[{}, {}]",
            format_quantity(fit.ci_low, metric.unit),
            format_quantity(fit.ci_high, metric.unit)
        ),
        None => "—".to_string(),
    }
}

/// `8 B/iter`: a tolerance with its unit.
pub fn tolerance(metric: &MetricResult) -> String {
    format!("{}/iter", format_quantity(metric.tolerance, metric.unit))
}

/// `grows`, `within`, `unclear`, `no fit`.
pub fn call_name(metric: &MetricResult) -> &'static str {
    match metric.call {
        crate::verdict::Call::Grows => "grows",
        crate::verdict::Call::Within => "within",
        crate::verdict::Call::Unclear => "unclear",
        crate::verdict::Call::NoFit => "no fit",
    }
}

/// `99` for 0.99, `99.833` for a later look's 0.998333: the verdict's own wording of a level.
pub fn percent(confidence: f64) -> String {
    crate::verdict::percent(confidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_unique_and_readable() {
        assert_eq!(anchor(3, "module-list-cache"), "s3-module-list-cache");
        assert_eq!(
            anchor(0, "<script>alert(1)</script>"),
            "s0-script-alert-1---script"
        );
        assert_ne!(anchor(0, "a b"), anchor(1, "a_b"));
    }

    #[test]
    fn percent_drops_trailing_zeros() {
        assert_eq!(percent(0.99), "99");
        assert_eq!(percent(0.999), "99.9");
        assert_eq!(percent(0.95), "95");
    }

    #[test]
    fn lopsided_intervals_are_shown_whole() {
        let g = |slope, ci_low, ci_high| Growth {
            slope,
            ci_low,
            ci_high,
        };
        assert_eq!(growth_of(g(3.0, 1.7, 3.0), Unit::Count), "3/iter [1.7, 3]");
        assert_eq!(
            growth_of(g(188.0, 188.0, 508.0), Unit::Bytes),
            "188 B/iter [188 B, 508 B]"
        );
        assert_eq!(
            growth_of(g(217.0, 216.0, 218.0), Unit::Bytes),
            "217 B/iter ± 1 B"
        );
        // A zero-width interval is not lopsided.
        assert_eq!(growth_of(g(0.0, 0.0, 0.0), Unit::Count), "0/iter ± 0");
    }

    #[test]
    fn a_longer_run_is_suggested_within_the_limits() {
        assert_eq!(
            longer_run(20, 8, Some(800)),
            "run it longer (`max_iterations: 3200` in the scenario, or `--max-iterations 3200`)"
        );
        // Past the sample budget, sampled more sparsely.
        assert_eq!(
            longer_run(20, 2, Some(100_000)),
            "run it longer (`max_iterations: 400000` with `sample_every: 5` in the scenario, or \
             `--max-iterations 400000`)"
        );
        // Never beyond the largest count, never wrapped below what ran.
        assert!(longer_run(0, 1, Some(900_000_000_000)).contains("max_iterations: 1000000000000"));
        assert_eq!(
            longer_run(0, 1, Some(crate::scenario::MAX_ITERATIONS)),
            "it already runs the most iterations a scenario may"
        );
    }

    #[test]
    fn fixed_and_inconclusive_scenarios_get_advice_in_every_format() {
        use crate::results::examples::{run, scenario};
        let mut fixed = scenario("fixed", Verdict::Pass, (0.0, 1.0));
        fixed.expected = Expect::Leak;
        let unsure = scenario("unsure", Verdict::Inconclusive, (0.0, 1.0));
        let results = run(vec![fixed, unsure]);
        let view = RunView::new(&results);
        let advice = |name| view.row_named(name).unwrap().advice.clone().unwrap();
        assert!(advice("fixed").ends_with("if it was fixed, remove the mark"));
        assert!(advice("unsure").starts_with("to decide: run it longer"));
        // The HTML report gives it too, not only the terminal.
        let html = super::super::html::render(&view).unwrap();
        assert!(html.contains("to decide: run it longer"), "{html}");
    }
}
