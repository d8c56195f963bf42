//! The HTML report of the shipped scenarios, checked as a file and in a real browser (headless
//! Chromium): one chart per gated metric per scenario, no console errors, a non-blank page.
//!
//! Chromium is required under CI: `.ci/run` installs Debian's `chromium` package and sets `CI`,
//! and a missing browser then fails these tests with instructions. Without `CI`, a machine
//! without Chromium skips them with a loud note (see [`common::required`]): they never pass
//! without rendering.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{Project, required, transcript};
use serde_json::Value;

/// The shipped scenarios run once for every test in this file.
struct ShippedRun {
    project: Project,
    results: Value,
}

fn shipped() -> &'static ShippedRun {
    static RUN: OnceLock<ShippedRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let project = Project::new();
        let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let (output, results) = project.run(&[scenarios.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
        ShippedRun { project, results }
    })
}

fn report_path() -> PathBuf {
    shipped().project.path().join("reports/index.html")
}

fn scenarios(results: &Value) -> &Vec<Value> {
    results["scenarios"].as_array().expect("scenarios")
}

/// Headless Chromium (`CHROMIUM`, else `/usr/bin/chromium`), or `None` to skip (see
/// [`required`]).
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let how = format!(
        "looked at {}; install it with `apt-get install -y chromium` (.ci/run does) or point \
         CHROMIUM at a Chromium binary; the HTML report must be checked in a real browser",
        path.display()
    );
    required("headless Chromium", path.exists(), &how).then_some(path)
}

/// Runs headless Chromium on `page` with `mode` (`--dump-dom` or `--screenshot=…`); returns
/// stdout and the console messages it logged.
fn browse(chromium: &Path, page: &Path, mode: &[&str]) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().expect("profile dir");
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(mode)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "chromium failed ({:?}):\n{stderr}",
        output.status.code()
    );
    // Every console message (errors, CSP violations, uncaught exceptions) is logged as
    // `[…:INFO:CONSOLE:line] "message", source: …`.
    let console = stderr
        .lines()
        .filter(|line| line.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        console,
    )
}

#[test]
fn the_report_has_one_chart_per_gated_metric_of_every_scenario() {
    let run = shipped();
    let html = std::fs::read_to_string(report_path()).expect("index.html written");
    let gated: usize = scenarios(&run.results)
        .iter()
        .filter(|s| s["verdict"] != "skipped")
        .map(|s| s["gate"].as_array().unwrap().len())
        .sum();
    // A skipped scenario (the shipped pytest tests, without pytest here) measured nothing: it
    // has no chart to draw.
    let all: usize = scenarios(&run.results)
        .iter()
        .filter(|s| s["verdict"] != "skipped")
        .map(|s| s["metrics"].as_object().unwrap().len())
        .sum();
    assert!(gated > 0);
    assert_eq!(
        html.matches(r#"<svg class="chart" "#).count(),
        all,
        "every metric has a chart"
    );
    assert_eq!(
        html.matches(r#"data-gated="true""#).count(),
        gated,
        "one chart per gated metric"
    );
    for scenario in scenarios(&run.results) {
        let name = scenario["name"].as_str().unwrap();
        assert!(html.contains(&escaped(name)), "{name} is in the report");
        let reason = scenario["reason"].as_str().unwrap();
        assert!(
            html.contains(&escaped(reason)),
            "the reason of {name} is in the report"
        );
    }
    // Self-contained: nothing fetched, no scripts.
    for forbidden in ["<script", "http://", "https://", "<link", "@import", "url("] {
        assert!(!html.contains(forbidden), "the report contains {forbidden}");
    }
    // Small: a few hundred KiB for a dozen scenarios; 50 would stay well under a few MiB.
    assert!(
        html.len() < 25_000 * scenarios(&run.results).len(),
        "{} bytes",
        html.len()
    );
}

#[test]
fn the_report_loads_in_chromium_without_console_errors_and_shows_the_charts() {
    let Some(chromium) = chromium() else { return };
    let run = shipped();
    let (dom, console) = browse(&chromium, &report_path(), &["--dump-dom"]);
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    let gated: usize = scenarios(&run.results)
        .iter()
        .filter(|s| s["verdict"] != "skipped")
        .map(|s| s["gate"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        dom.matches(r#"data-gated="true""#).count(),
        gated,
        "the rendered DOM has one chart per gated metric"
    );
    assert!(dom.contains("leakcheck report"));
    for scenario in scenarios(&run.results) {
        let anchor_text = scenario["name"].as_str().unwrap();
        assert!(dom.contains(anchor_text), "{anchor_text} rendered");
    }
}

#[test]
fn the_console_check_catches_errors_and_blocked_loads() {
    // The detector itself: a page with a script error and, under the report's policy, a
    // blocked remote image must both show up, or the check above proves nothing.
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("control.html");
    std::fs::write(
        &page,
        r#"<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy"
        content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"></head>
        <body><img src="http://127.0.0.1:9/x.png"><script>boom()</script></body></html>"#,
    )
    .unwrap();
    let (_, console) = browse(&chromium, &page, &["--dump-dom"]);
    assert!(
        console.iter().any(|line| line.contains("x.png")),
        "blocked load not seen: {console:?}"
    );
    assert!(
        console.iter().any(|line| line.contains("inline")),
        "blocked script not seen: {console:?}"
    );
}

#[test]
fn a_screenshot_of_the_report_is_not_blank() {
    let Some(chromium) = chromium() else { return };
    shipped();
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("report.png");
    let (_, console) = browse(
        &chromium,
        &report_path(),
        &[
            "--window-size=1280,2000",
            &format!("--screenshot={}", png.display()),
        ],
    );
    assert!(console.is_empty(), "{console:?}");
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    // A blank 1280×2000 page compresses to a few KiB; text, badges and charts do not.
    assert!(
        bytes.len() > 60_000,
        "screenshot suspiciously small ({} bytes): blank page?",
        bytes.len()
    );
}

#[test]
fn a_hostile_scenario_name_renders_as_text_in_chromium() {
    let Some(chromium) = chromium() else { return };
    let project = Project::new();
    project.write(
        "scenarios/hostile.yaml",
        "name: \"<script>alert(1)</script>\"\niterations: 10\nwarmup: 2\n\
         description: \"<img src=x onerror=alert(2)>\"\nrun: |\n  print('<script>alert(3)</script>')\n",
    );
    let (output, _) = project.run(&["scenarios"]);
    assert!(output.status.code().is_some(), "{}", transcript(&output));
    let (dom, console) = browse(
        &chromium,
        &project.path().join("reports/index.html"),
        &["--dump-dom"],
    );
    // An unescaped tag would run (console message) or be blocked by the policy (console
    // message too); escaped, it is text, serialized back as &lt;…&gt;.
    assert!(console.is_empty(), "{}", console.join("\n"));
    assert!(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(dom.contains("&lt;img src=x onerror=alert(2)&gt;"));
    assert!(!dom.contains("<script"), "no script element in the DOM");
    assert!(!dom.contains("<img"), "no img element in the DOM");
}

/// `text` as the HTML report writes it (askama escapes these five).
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// What the page measured in Chromium at `width` × 1000 pixels, one finding a line: how wide
/// the page is, every table that scrolls sideways and every scenario name of the summary table
/// that wraps. Scripts are what the report's policy forbids, so a copy without the policy gets
/// one that opens every `<details>`, measures, and writes its findings into the DOM.
fn measured(chromium: &Path, page: &str, width: u32) -> Vec<String> {
    const MEASURE: &str = r#"<script>
document.querySelectorAll('details').forEach(d => { d.open = true; });
const found = [];
const page = document.documentElement.scrollWidth;
if (page > window.innerWidth) found.push(`page ${page} px wide in ${window.innerWidth}`);
document.querySelectorAll('.table-wrap').forEach(w => {
  if (w.scrollWidth > w.clientWidth + 1) {
    const at = w.closest('[id]');
    found.push(`table scrolls: ${w.scrollWidth} px in ${w.clientWidth} (${at ? at.id : '?'}: ${w.querySelector('th').textContent})`);
  }
});
document.querySelectorAll('#scenarios td.name a').forEach(a => {
  if (a.getClientRects().length > 1) found.push(`name wraps: ${a.textContent}`);
});
const out = document.createElement('pre');
out.id = 'measured';
out.textContent = found.join('\n');
document.body.appendChild(out);
</script>"#;
    let policy = without_policy(page);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("measured.html");
    std::fs::write(
        &file,
        policy.replace("</body>", &format!("{MEASURE}</body>")),
    )
    .unwrap();
    let (dom, console) = browse(
        chromium,
        &file,
        &[&format!("--window-size={width},1000"), "--dump-dom"],
    );
    assert!(console.is_empty(), "{}", console.join("\n"));
    let start = dom
        .find(r#"<pre id="measured">"#)
        .expect("the measuring script ran")
        + r#"<pre id="measured">"#.len();
    let end = start + dom[start..].find("</pre>").unwrap();
    dom[start..end]
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect()
}

/// `page` without its Content-Security-Policy, so that a measuring script may run.
fn without_policy(page: &str) -> String {
    let start = page
        .find(r#"<meta http-equiv="Content-Security-Policy""#)
        .expect("the report has a policy");
    let end = start + page[start..].find('>').unwrap() + 1;
    format!("{}{}", &page[..start], &page[end..])
}

#[test]
fn the_report_fits_wide_and_laptop_screens_without_sideways_scrolling() {
    // The snapshot fixtures' pages: long names, a baseline table, diagnosed leaks with
    // standard-library sites and long paths. Once capped at 1180 px, the page made its
    // scenario table scroll even at 1920 px, wrapped names at every hyphen and cut off the
    // allocation-site table.
    let Some(chromium) = chromium() else { return };
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/snapshots");
    for fixture in ["shipped", "mixed", "inconclusive"] {
        let page = std::fs::read_to_string(folder.join(fixture).join("html.snap")).unwrap();
        for width in [1920, 1280] {
            let found = measured(&chromium, &page, width);
            assert!(
                found.is_empty(),
                "{fixture} at {width} px:\n{}",
                found.join("\n")
            );
        }
    }
}
