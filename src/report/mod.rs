//! Everything a run produces for people and machines, one file per format.
//!
//! Every format renders one [`view::RunView`], built once per run: file formats implement
//! [`Exporter`], and adding one means adding a file here and one line in [`exporters`]. The
//! terminal display is a consumer of runner events plus a final summary, in [`terminal`].
//! Nothing in this module runs scenarios or spawns processes.

pub mod baseline;
pub mod chart;
pub mod github;
pub mod html;
pub mod journal;
pub mod json;
pub mod junit;
#[cfg(test)]
mod snapshots;
pub mod terminal;
pub mod untrusted;
pub mod view;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use view::RunView;

/// Writes one report format from finished results.
pub trait Exporter {
    /// File name inside the report folder, e.g. `results.json`.
    fn file_name(&self) -> &'static str;
    /// Renders the run.
    fn render(&self, run: &RunView<'_>) -> Result<Vec<u8>>;
}

/// Every file format written into the report folder `dir`.
pub fn exporters(dir: &Path) -> Vec<Box<dyn Exporter>> {
    vec![
        Box::new(html::HtmlExporter),
        Box::new(json::JsonExporter),
        Box::new(junit::JunitExporter {
            report_dir: dir.to_path_buf(),
        }),
    ]
}

/// Writes every format into `dir`, each atomically (temporary file, then rename), so a reader
/// never sees a half-written report and an interrupted write leaves the previous one intact.
pub fn write_all(run: &RunView<'_>, dir: &Path) -> Result<Vec<PathBuf>> {
    write_all_except(run, dir, None)
}

/// Like [`write_all`], but leaves `keep` alone when a format would replace it: `leakcheck
/// report` never overwrites the results file it reads.
pub fn write_all_except(
    run: &RunView<'_>,
    dir: &Path,
    keep: Option<&Path>,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create report folder `{}`", dir.display()))?;
    let keep = keep.and_then(|path| path.canonicalize().ok());
    let mut written = Vec::new();
    for exporter in exporters(dir) {
        let path = dir.join(exporter.file_name());
        if keep.is_some() && path.canonicalize().ok() == keep {
            continue;
        }
        let bytes = exporter.render(run)?;
        write_atomically(&path, &bytes)?;
        written.push(path);
    }
    Ok(written)
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
