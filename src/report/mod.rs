//! Everything a run produces for people and machines, one file per format.
//!
//! Every format renders one [`view::RunView`], built once per run, and implements
//! [`Exporter`]: the terminal summary, GitHub annotations and step summary, HTML, JSON and
//! JUnit. Each says from the command's [`Outputs`] whether it is written and where (a file in
//! the report folder or elsewhere, the end of `$GITHUB_STEP_SUMMARY`, stdout), so `run`,
//! `report` and `merge` call the one loop [`write_all`]; adding a format means adding a file
//! here and one line in [`exporters`]. The live progress display is a consumer of runner
//! events, in [`terminal`]; what `leakcheck list` prints is in [`list`]. Nothing in this module runs scenarios or spawns processes.

pub mod baseline;
pub mod chart;
pub mod github;
pub mod html;
pub mod journal;
pub mod json;
pub mod junit;
pub mod list;
pub mod markdown;
#[cfg(test)]
mod snapshots;
pub mod terminal;
pub mod untrusted;
pub mod view;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use view::RunView;

/// Where a format goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A file, replaced atomically (see [`write_atomically`]).
    File(PathBuf),
    /// The end of a file that others write too (`$GITHUB_STEP_SUMMARY`).
    Append(PathBuf),
    /// Standard output.
    Stdout,
}

/// What a command asks to be written, and where: every [`Exporter`] reads its targets here.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    /// The report folder (`index.html`, `results.json`, `junit.xml`), created if missing.
    pub dir: Option<PathBuf>,
    /// `leakcheck report --html FILE`: the HTML report there too.
    pub html: Option<PathBuf>,
    /// `leakcheck merge --output FILE`: `results.json` there.
    pub json: Option<PathBuf>,
    /// A file no format may replace: the results `leakcheck report` reads.
    pub keep: Option<PathBuf>,
    /// The terminal summary on stdout (`Some(quiet)`), or none.
    pub terminal: Option<bool>,
    /// The GitHub Actions environment, for commands that publish to it.
    pub github: Option<github::Environment>,
}

/// Renders a run in one format.
pub trait Exporter {
    /// Where this format goes for `outputs`; none when the command does not write it.
    fn targets(&self, outputs: &Outputs) -> Vec<Target>;
    /// Whether the command writes this format at all.
    fn enabled(&self, outputs: &Outputs) -> bool {
        !self.targets(outputs).is_empty()
    }
    /// A short name for this format, e.g. `junit.xml`, `terminal`.
    fn name(&self) -> &'static str;
    /// Renders the run.
    fn render(&self, run: &RunView<'_>, outputs: &Outputs) -> Result<Vec<u8>>;
}

/// Every format, in the order [`write_all`] writes them: what goes on the terminal first (so a
/// run's findings show even when its files cannot be saved), then the files.
pub fn exporters() -> Vec<Box<dyn Exporter>> {
    vec![
        Box::new(terminal::SummaryExporter),
        Box::new(github::AnnotationsExporter),
        Box::new(github::StepSummaryExporter),
        Box::new(html::HtmlExporter),
        Box::new(json::JsonExporter),
        Box::new(junit::JunitExporter),
        Box::new(markdown::MarkdownExporter),
    ]
}

/// The files `outputs` would have written, so a command can check them before it writes.
pub fn files(outputs: &Outputs) -> Vec<PathBuf> {
    exporters()
        .iter()
        .flat_map(|exporter| exporter.targets(outputs))
        .filter_map(|target| match target {
            Target::File(path) => Some(path),
            Target::Append(_) | Target::Stdout => None,
        })
        .collect()
}

/// What [`write_all`] did.
#[derive(Debug, Default)]
pub struct Written {
    /// The files written, in order.
    pub files: Vec<PathBuf>,
    /// What failed, in order; every other target was still written.
    pub errors: Vec<anyhow::Error>,
}

/// Writes every enabled format to its targets: files atomically (temporary file, then rename),
/// so a reader never sees a half-written report and an interrupted write leaves the previous
/// one intact; `outputs.keep` is never replaced. The first file that cannot be written stops
/// the files after it (a full disk or a read-only folder would fail them too, and the previous
/// run's files stay whole), not the terminal or the step summary; a failure elsewhere (an
/// unwritable `$GITHUB_STEP_SUMMARY`) stops nothing.
pub fn write_all(run: &RunView<'_>, outputs: &Outputs) -> Written {
    let mut written = Written::default();
    let mut files_failed = false;
    if let Some(dir) = &outputs.dir
        && let Err(err) = std::fs::create_dir_all(dir)
    {
        files_failed = true;
        written.errors.push(
            anyhow::Error::new(err)
                .context(format!("cannot create report folder `{}`", dir.display())),
        );
    }
    let keep = outputs
        .keep
        .as_ref()
        .and_then(|path| path.canonicalize().ok());
    for exporter in exporters() {
        let targets = exporter.targets(outputs);
        if targets.is_empty() {
            continue;
        }
        let bytes = match exporter.render(run, outputs) {
            Ok(bytes) => bytes,
            Err(err) => {
                written.errors.push(err);
                continue;
            }
        };
        for target in targets {
            if let Target::File(path) = &target
                && (files_failed || keep.is_some() && path.canonicalize().ok() == keep)
            {
                continue;
            }
            match write_to(&target, &bytes, exporter.name()) {
                Ok(()) => {
                    if let Target::File(path) = target {
                        written.files.push(path);
                    }
                }
                Err(err) => {
                    files_failed |= matches!(target, Target::File(_));
                    written.errors.push(err);
                }
            }
        }
    }
    written
}

/// Writes `bytes` of the format `name` to one target.
fn write_to(target: &Target, bytes: &[u8], name: &str) -> Result<()> {
    match target {
        Target::File(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create folder `{}`", parent.display()))?;
            }
            write_atomically(path, bytes)
        }
        Target::Append(path) => {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open `{}` ({name})", path.display()))?;
            file.write_all(bytes)
                .with_context(|| format!("cannot append to `{}` ({name})", path.display()))
        }
        Target::Stdout => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(bytes)?;
            stdout.flush()?;
            Ok(())
        }
    }
}

/// Replaces `path` with `bytes` in one rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write into report folder `{}`", dir.display()))?;
    file.write_all(bytes)
        .and_then(|_| file.as_file().sync_all())
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    // Reports are meant to be shared (CI artifacts, a colleague's browser): rw-r--r--, not the
    // owner-only mode of a temporary file.
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot set the permissions of `{}`", path.display()))?;
    }
    file.persist(path)
        .with_context(|| format!("cannot replace `{}`", path.display()))?;
    Ok(())
}
