//! Finding scenario files from the paths given on the command line.
//!
//! A file named directly is always taken (whatever its extension: the user asked for it); a
//! directory is searched recursively for `*.yaml` and `*.yml`. The result is sorted so that runs,
//! reports and duplicate-name errors come out in the same order on every machine.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::ScenarioError;

/// Extensions (compared case-insensitively) that mark a scenario file inside a directory.
const EXTENSIONS: [&str; 2] = ["yaml", "yml"];

/// Expands `paths` into the scenario files to load, in a stable order.
///
/// Files given directly are kept as given; directories are walked recursively for `*.yaml` and
/// `*.yml`, in sorted order, skipping hidden entries (names starting with `.`, such as `.git` or
/// `.venv`) and not following symlinked directories (which could loop). A file reached twice
/// (named directly and through its directory) is kept once, at its first place. Every path is
/// checked, so all problems are reported together: a path that does not exist, or a directory
/// with no scenario files.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Vec<ScenarioError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                let mut found = Vec::new();
                walk(path, &mut found, &mut errors);
                found.sort();
                if found.is_empty() {
                    errors.push(ScenarioError::in_file(
                        path,
                        "no scenario files (*.yaml, *.yml) found under this directory",
                    ));
                }
                files.extend(found);
            }
            Ok(_) => files.push(path.clone()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                errors.push(ScenarioError::in_file(path, "no such file or directory"));
            }
            Err(err) => errors.push(ScenarioError::in_file(path, format!("cannot read: {err}"))),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut seen = HashSet::new();
    files.retain(|file| seen.insert(fs::canonicalize(file).unwrap_or_else(|_| file.clone())));
    Ok(files)
}

/// Collects scenario files under `dir` into `found`; unreadable directories become errors.
fn walk(dir: &Path, found: &mut Vec<PathBuf>, errors: &mut Vec<ScenarioError>) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            errors.push(ScenarioError::in_file(
                dir,
                format!("cannot read directory: {err}"),
            ));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                errors.push(ScenarioError::in_file(
                    dir,
                    format!("cannot read directory: {err}"),
                ));
                continue;
            }
        };
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            walk(&path, found, errors);
        } else if is_scenario_file(&path) && path.is_file() {
            // `is_file` follows symlinks, so a link to a scenario file counts and a dangling or
            // directory link does not.
            found.push(path);
        }
    }
}

/// Whether a file found in a directory walk looks like a scenario file.
fn is_scenario_file(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| {
            EXTENSIONS
                .iter()
                .any(|known| ext.eq_ignore_ascii_case(known))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, relative: &str) -> PathBuf {
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create test dirs");
        }
        fs::write(&path, "name: x\nrun: pass\n").expect("write test file");
        path
    }

    #[test]
    fn walks_directories_sorted_and_skips_hidden_entries() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        touch(root, "b.yaml");
        touch(root, "a.yml");
        touch(root, "sub/c.YAML");
        touch(root, "sub/deeper/a.yaml");
        touch(root, "notes.txt");
        touch(root, ".hidden/skipped.yaml");
        touch(root, "sub/.skipped.yaml");
        let found = discover(&[root.to_path_buf()]).expect("discover");
        let relative: Vec<_> = found
            .iter()
            .map(|p| {
                p.strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            relative,
            ["a.yml", "b.yaml", "sub/c.YAML", "sub/deeper/a.yaml"]
        );
    }

    #[test]
    fn files_are_taken_as_given_and_kept_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let odd = touch(tmp.path(), "scenario.txt");
        let yaml = touch(tmp.path(), "dir/a.yaml");
        let found =
            discover(&[odd.clone(), yaml.clone(), tmp.path().join("dir")]).expect("discover");
        assert_eq!(found, [odd, yaml]);
    }

    #[test]
    fn reports_every_bad_path() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let empty = tmp.path().join("empty");
        fs::create_dir(&empty).expect("mkdir");
        touch(&empty, "readme.md");
        let missing = tmp.path().join("missing.yaml");
        let errors = discover(&[missing.clone(), empty.clone()]).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors[0].to_string(),
            format!("{}: no such file or directory", missing.display())
        );
        assert_eq!(
            errors[1].to_string(),
            format!(
                "{}: no scenario files (*.yaml, *.yml) found under this directory",
                empty.display()
            )
        );
    }
}
