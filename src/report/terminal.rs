//! The terminal: live progress while scenarios run, then a summary table and the details of
//! every scenario that needs attention.
//!
//! Progress goes to stderr through indicatif (hidden automatically when stderr is not a
//! terminal); the summary goes to stdout. Colour is used only when the stream is a terminal.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use console::{Style, style};

use super::view::{self, RunView};
use super::{Exporter, Outputs, Target};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::untrusted;
use crate::metric::Metric;
use crate::protocol::Phase;
use crate::results::ScenarioResult;
use crate::runner::{Event, EventSink};
use crate::verdict::Verdict;

/// Shows every running scenario (one bar each, several with `-j`) and a line per finished one.
pub struct ProgressDisplay {
    bars: MultiProgress,
    running: HashMap<usize, (ProgressBar, String)>,
    total: usize,
    quiet: bool,
}

impl ProgressDisplay {
    /// A display on stderr; `quiet` hides progress and per-scenario lines.
    pub fn new(quiet: bool) -> ProgressDisplay {
        ProgressDisplay {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            running: HashMap::new(),
            total: 0,
            quiet,
        }
    }

    /// Prints a finished scenario's line above the bars (or plainly when they are hidden, as in
    /// a CI log, where these lines are the progress).
    ///
    /// The bars are suspended (cleared, then redrawn) around the line rather than the line
    /// printed through `MultiProgress::println`, which pads it to the bars' width and, once the
    /// last bar is gone, leaves it without its newline: the summary table's header then began
    /// on the last scenario's line.
    fn print_line(&self, line: &str) {
        if self.bars.is_hidden() {
            let _ = writeln!(std::io::stderr(), "{line}");
        } else {
            self.bars.suspend(|| {
                let _ = writeln!(std::io::stderr(), "{line}");
            });
        }
    }
}

impl EventSink for ProgressDisplay {
    fn event(&mut self, event: &Event<'_>) {
        if self.quiet {
            return;
        }
        match event {
            Event::RunStarted { total } => self.total = *total,
            Event::ScenarioStarted { index, scenario } => {
                let bar = self
                    .bars
                    .add(ProgressBar::new(scenario.warmup + scenario.iterations));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:.bold} {wide_msg} [{bar:30.cyan/blue}] {pos}/{len} it {elapsed}",
                    )
                    .expect("valid progress template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(format!("[{}/{}]", index + 1, self.total));
                let name = untrusted::terminal(&scenario.name).into_owned();
                bar.set_message(format!("{name} (starting)"));
                bar.enable_steady_tick(Duration::from_millis(200));
                self.running.insert(*index, (bar, name));
            }
            Event::PhaseChanged { index, phase } => {
                if let Some((bar, name)) = self.running.get(index) {
                    let label = match phase {
                        Phase::Measure => "measuring".to_string(),
                        other => other.to_string(),
                    };
                    bar.set_message(format!("{name} ({label})"));
                }
            }
            Event::Progress { index, done } => {
                if let Some((bar, _)) = self.running.get(index) {
                    if bar.length().is_some_and(|len| *done > len) {
                        bar.set_length(*done);
                    }
                    bar.set_position(*done);
                }
            }
            Event::ScenarioFinished { index, result } => {
                let line = format!(
                    "{} {} {} {}",
                    style(format!("[{}/{}]", index + 1, self.total)).bold(),
                    verdict_label(result),
                    untrusted::terminal(&result.name),
                    style(format!("({:.1} s)", result.duration_secs)).dim(),
                );
                if let Some((bar, _)) = self.running.remove(index) {
                    bar.finish_and_clear();
                    self.bars.remove(&bar);
                }
                self.print_line(&line);
            }
            // The summary, and the line saying a run was interrupted, come after the reports
            // are written (see `app.rs`), so that they can name the files.
            Event::RunInterrupted { .. } | Event::RunFinished { .. } => {}
        }
    }
}

/// `PASS`, `LEAK`, `LEAK (expected)`, … coloured with a colour-blind-safe palette
/// (blue for as-expected, orange/red for failures).
fn verdict_label(result: &ScenarioResult) -> String {
    let colour = match (result.ok, result.verdict) {
        (true, Verdict::Inconclusive) => Style::new().yellow(),
        (true, Verdict::Skipped) => Style::new().dim(),
        (true, _) => Style::new().blue().bold(),
        (false, Verdict::Error) => Style::new().magenta().bold(),
        (false, _) => Style::new().red().bold(),
    };
    colour.apply_to(view::label(result)).to_string()
}

/// The summary after a run, on stdout: the baseline comparison when there is one, then the
/// table and the details (see [`print_summary`]).
pub struct SummaryExporter;

impl Exporter for SummaryExporter {
    fn targets(&self, outputs: &Outputs) -> Vec<Target> {
        outputs.terminal.iter().map(|_| Target::Stdout).collect()
    }

    fn name(&self) -> &'static str {
        "terminal"
    }

    fn render(&self, run: &RunView<'_>, outputs: &Outputs) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        if let Some(comparison) = &run.comparison {
            super::baseline::print_comparison(comparison, &mut out)?;
        }
        print_summary(run, &mut out, outputs.terminal.unwrap_or(false))?;
        Ok(out)
    }
}

/// Writes the summary table and the details of every leak, error and unexpected outcome, and of
/// every pass that waited for a bounded cache to fill (its reason names the cache).
pub fn print_summary(run: &RunView<'_>, out: &mut dyn Write, quiet: bool) -> std::io::Result<()> {
    write_summary(run, out, quiet, terminal_width())
}

/// [`print_summary`] with the table fitted to `width` columns (whole without one), whatever
/// stdout is: what the snapshot tests render.
pub fn write_summary(
    run: &RunView<'_>,
    out: &mut dyn Write,
    quiet: bool,
    width: Option<usize>,
) -> std::io::Result<()> {
    let results = run.results;
    if !quiet {
        print_table(run, out, width)?;
    }
    for row in run.in_run_order() {
        let scenario = row.result;
        if scenario.ok
            && scenario.verdict == Verdict::Pass
            && (quiet || !scenario.waited_for_holders())
        {
            continue;
        }
        if quiet && scenario.ok {
            continue;
        }
        writeln!(out)?;
        writeln!(
            out,
            "{} {}  {}",
            verdict_label(scenario),
            style(untrusted::terminal(&scenario.name)).bold(),
            style(format!(
                "{}:{}",
                untrusted::terminal(&scenario.file.display().to_string()),
                scenario.line
            ))
            .dim()
        )?;
        for line in scenario.reason.lines() {
            writeln!(out, "  {}", untrusted::terminal(line))?;
        }
        if let Some(advice) = &row.advice {
            writeln!(out, "  {advice}")?;
        }
        if row.failure == Some(view::REGRESSION) {
            writeln!(out, "  fails the gate: {}", view::REGRESSION)?;
        }
        if let Some(diagnosis) = &row.diagnosis {
            for line in diagnosis.lines() {
                for line in line.lines() {
                    writeln!(out, "  {}", untrusted::terminal(line))?;
                }
            }
        }
        if let Some(traceback) = &scenario.traceback {
            for line in traceback.lines() {
                writeln!(out, "  {}", untrusted::terminal(line))?;
            }
        }
        if scenario.verdict == Verdict::Error {
            for (label, text) in [("stdout", &scenario.stdout), ("stderr", &scenario.stderr)] {
                let lines: Vec<&str> = text.lines().collect();
                if lines.is_empty() {
                    continue;
                }
                writeln!(out, "  {label} (last lines):")?;
                for line in &lines[lines.len().saturating_sub(15)..] {
                    writeln!(out, "    {}", untrusted::terminal(line))?;
                }
            }
        }
    }
    writeln!(out)?;
    let headline = format!("{} ({:.1} s)", run.tally(), results.duration_secs);
    if run.all_ok {
        writeln!(out, "{}", style(headline).blue().bold())
    } else {
        writeln!(out, "{}", style(headline).red().bold())
    }
}

/// The width of the terminal stdout is, or `None` when it is not one (a CI log, a file): the
/// table is then printed whole.
fn terminal_width() -> Option<usize> {
    let term = console::Term::stdout();
    if !term.is_term() {
        return None;
    }
    term.size_checked().map(|(_, columns)| usize::from(columns))
}

/// The one-line-per-scenario table and its legend, fitted to `width` columns when given: the
/// metrics no scenario gates on are left out first (the HTML report and results.json have
/// them), then long names are cut short with `…` (to 12 columns at most), then the intervals
/// are left out (the growth alone stays), then names are cut shorter still; the legend is
/// wrapped and says what was left out.
fn print_table(
    run: &RunView<'_>,
    out: &mut dyn Write,
    width: Option<usize>,
) -> std::io::Result<()> {
    let results = run.results;
    let gated: Vec<Metric> = Metric::ALL
        .into_iter()
        .filter(|m| results.scenarios.iter().any(|s| s.gate.contains(m)))
        .collect();
    // The metrics that decide first: the reader's eye goes to the first figure.
    let order: Vec<Metric> = gated
        .iter()
        .copied()
        .chain(Metric::ALL.into_iter().filter(|m| !gated.contains(m)))
        .collect();
    let (lines, hidden, intervals) = fitted(run, &order, &gated, width);
    for line in &lines {
        writeln!(out, "{line}")?;
    }
    let mut legend = if intervals {
        "growth per iteration (Theil–Sen, the slope the verdict uses) ± half-width of its \
         interval"
    } else {
        "growth per iteration (Theil–Sen, the slope the verdict uses; its interval left out to \
         fit the terminal, in the HTML report)"
    }
    .to_string();
    legend.push_str(
        "; * = gated metric; \"flat after N\": grew, then stopped (not a leak); \"floor flat\": \
         rises and falls, but the level it falls back to is flat (not a leak)",
    );
    // Without its column, tracemalloc's mark needs no explaining.
    if !hidden.contains(&Metric::Tracemalloc) {
        legend.push_str(
            "; ~ = tracemalloc from the short traced window after the run: not gated, \
             approximate while caches turn over",
        );
    }
    if !hidden.is_empty() {
        let names: Vec<String> = hidden.iter().map(|m| m.to_string()).collect();
        legend.push_str(&format!(
            "; not gated, left out to fit the terminal: {} (in the HTML report)",
            names.join(", ")
        ));
    }
    for line in wrap(&legend, width) {
        writeln!(out, "{}", style(line).dim())?;
    }
    Ok(())
}

/// The table's lines for `width` (see [`print_table`]), with the metrics left out and whether
/// the cells keep their intervals.
fn fitted(
    run: &RunView<'_>,
    order: &[Metric],
    gated: &[Metric],
    width: Option<usize>,
) -> (Vec<String>, Vec<Metric>, bool) {
    let widest = |lines: &[String]| {
        lines
            .iter()
            .map(|line| console::measure_text_width(line))
            .max()
            .unwrap_or(0)
    };
    let all = table(run, order, None, true);
    let Some(width) = width.filter(|&width| widest(&all) > width) else {
        return (all, Vec::new(), true);
    };
    let hidden: Vec<Metric> = order
        .iter()
        .copied()
        .filter(|m| !gated.contains(m))
        .collect();
    let names = run
        .results
        .scenarios
        .iter()
        .map(|s| console::measure_text_width(&s.name))
        .max()
        .unwrap_or(0)
        .max("scenario".len());
    // Each step gives up a little more; the last is printed even if it does not fit.
    let steps = [(true, 12), (false, 12), (false, 6)];
    for (n, (intervals, shortest)) in steps.into_iter().enumerate() {
        let lines = table(run, gated, None, intervals);
        let excess = widest(&lines).saturating_sub(width);
        let last = n + 1 == steps.len();
        let lines = match names.saturating_sub(excess) {
            _ if excess == 0 => lines,
            limit if limit >= shortest || last => {
                table(run, gated, Some(limit.max(shortest)), intervals)
            }
            _ => continue,
        };
        if last || widest(&lines) <= width {
            return (lines, hidden, intervals);
        }
    }
    unreachable!("the last step always returns")
}

/// `text` in lines of at most `width` columns, broken between words; one line without a width.
fn wrap(text: &str, width: Option<usize>) -> Vec<String> {
    let Some(width) = width else {
        return vec![text.to_string()];
    };
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty()
            && console::measure_text_width(&line) + 1 + console::measure_text_width(word) > width
        {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The header and one row per scenario, with these metrics' columns (their intervals too with
/// `intervals`), padded into columns; names longer than `name_width` are cut short with `…`.
fn table(
    run: &RunView<'_>,
    metrics: &[Metric],
    name_width: Option<usize>,
    intervals: bool,
) -> Vec<String> {
    let mut header = vec!["scenario".to_string(), "verdict".to_string()];
    header.extend(metrics.iter().map(|m| format!("{m}/iter")));
    header.push("iters".to_string());
    header.push("time".to_string());

    let rows: Vec<Vec<String>> = run
        .in_run_order()
        .into_iter()
        .map(|view| {
            let s = view.result;
            let mut name = untrusted::terminal(&s.name).into_owned();
            if let Some(limit) = name_width {
                name = console::truncate_str(&name, limit, "…").into_owned();
            }
            let mut row = vec![name, verdict_label(s)];
            // Unless the scenario gates on it, tracemalloc's figure comes from the short traced
            // window after the run: marked as approximate, and without an interval unless the
            // scenario leaks (a window of a few samples on a cache turning over would give a
            // precise-looking `±0 B` to a pass).
            let windowed = !crate::sampling::traced_throughout(&s.gate);
            row.extend(metrics.iter().map(|m| {
                let Some(metric) = view.metric(*m) else {
                    return "-".to_string();
                };
                let cell = if intervals {
                    &metric.compact
                } else {
                    &metric.bare
                };
                if *m != Metric::Tracemalloc || !windowed || cell == "-" {
                    return cell.clone();
                }
                match (s.verdict, &metric.slope) {
                    (Verdict::Leak, _) | (_, None) => format!("~{cell}"),
                    (_, Some(slope)) => format!("~{slope}"),
                }
            }));
            row.push(s.iterations_done.to_string());
            row.push(format!("{:.1}s", s.duration_secs));
            row
        })
        .collect();

    let widths: Vec<usize> = (0..header.len())
        .map(|col| {
            rows.iter()
                .map(|r| console::measure_text_width(&r[col]))
                .chain(std::iter::once(header[col].len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let render = |cells: &[String]| -> String {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(col, (cell, width))| {
                if col < 2 {
                    console::pad_str(cell, *width, console::Alignment::Left, None).into_owned()
                } else {
                    console::pad_str(cell, *width, console::Alignment::Right, None).into_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    std::iter::once(style(render(&header)).bold().to_string())
        .chain(rows.iter().map(|row| render(row)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::RunResults;
    use crate::results::examples::{run, scenario};

    /// A run of two scenarios measured on every metric and gated on the default ones.
    fn measured_everywhere() -> RunResults {
        let scenarios = ["a-scenario-with-a-long-name", "b"]
            .map(|name| {
                let mut s = scenario(name, Verdict::Pass, (0.0, 1.0));
                let metric = s.metrics[&Metric::Tracemalloc].clone();
                s.metrics = Metric::ALL
                    .into_iter()
                    .map(|m| (m, metric.clone()))
                    .collect();
                s.gate = Metric::DEFAULT_GATE.to_vec();
                s
            })
            .to_vec();
        run(scenarios)
    }

    fn printed(results: &RunResults, width: Option<usize>) -> Vec<String> {
        let mut out = Vec::new();
        print_table(&RunView::new(results), &mut out, width).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|line| console::strip_ansi_codes(line).into_owned())
            .collect()
    }

    #[test]
    fn the_table_fits_a_narrow_terminal_by_leaving_out_ungated_metrics_and_wrapping_its_legend() {
        let results = measured_everywhere();
        let whole = printed(&results, None);
        assert!(whole[0].contains("tracemalloc/iter") && whole[0].contains("gc_objects/iter"));
        assert_eq!(
            whole.len(),
            4,
            "header, two rows, the legend on one line: {whole:#?}"
        );
        let width = 100;
        let narrow = printed(&results, Some(width));
        assert!(!narrow[0].contains("tracemalloc/iter"), "{narrow:#?}");
        assert!(!narrow[0].contains("gc_objects/iter"), "{narrow:#?}");
        assert!(narrow[0].contains("malloc/iter") && narrow[0].contains("fds/iter"));
        for line in &narrow {
            assert!(
                console::measure_text_width(line) <= width,
                "too wide: {line}"
            );
        }
        assert!(narrow[1].starts_with("a-scenario-with-") && narrow[1].contains('…'));
        let legend = narrow[3..].join(" ");
        assert!(
            legend.contains("left out to fit the terminal: tracemalloc, gc_objects"),
            "{legend}"
        );
        // A terminal wide enough gets the whole table.
        assert_eq!(printed(&results, Some(400))[0], whole[0]);
    }
}
