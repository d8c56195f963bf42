//! Reading the files a user names (scenario files, the configuration, a baseline or a results
//! file to render), with the two guards every such read needs: a size limit, so `/dev/zero` or a
//! data file given by mistake is refused after a bounded read instead of filling memory, and no
//! wait on a named pipe nobody writes to.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a bounded read gave no bytes.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be opened or read.
    #[error("cannot read file: {0}")]
    Io(#[from] io::Error),
    /// It holds more than the limit: `size` when its length is known (a regular file).
    #[error("file is too large ({}the limit is {})", describe(*.size), crate::units::format_bytes(*.limit as f64))]
    TooLarge {
        /// The file's length, when it has one.
        size: Option<u64>,
        /// The limit it went over.
        limit: u64,
    },
    /// A named pipe that no process had open for writing.
    #[error("is a named pipe (FIFO) with nothing writing to it")]
    IdlePipe,
}

impl InputError {
    /// As an [`io::Error`], for callers whose errors carry one: the message is kept.
    pub fn into_io(self) -> io::Error {
        match self {
            InputError::Io(err) => err,
            other => io::Error::other(other.to_string()),
        }
    }
}

/// The size of a file, followed by `; `, when known.
fn describe(size: Option<u64>) -> String {
    size.map_or_else(String::new, |s| {
        format!("{}; ", crate::units::format_bytes(s as f64))
    })
}

/// Reads at most `limit` bytes of `path`, refusing anything longer.
///
/// A named pipe is opened without blocking (an `open` for reading would otherwise wait for a
/// writer forever); then reads block as usual, so `<(command)` and a pipe being written work,
/// and a pipe with no writer reads as empty and is refused as [`InputError::IdlePipe`].
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function owns, with flags it just read.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags == -1 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) == -1 {
            return Err(io::Error::last_os_error().into());
        }
    }
    let meta = file.metadata()?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        let size = meta.is_file().then_some(meta.len());
        return Err(InputError::TooLarge { size, limit });
    }
    if bytes.is_empty() && meta.file_type().is_fifo() {
        return Err(InputError::IdlePipe);
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> Result<String, InputError> {
    let bytes = read_bounded(path, limit)?;
    String::from_utf8(bytes).map_err(|err| {
        let at = err.utf8_error().valid_up_to();
        InputError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not UTF-8 (byte {at} is not valid UTF-8)"),
        ))
    })
}

/// `path` as reports show it: relative to the working directory when it lies under it, so that
/// results.json, JUnit suite names and the GitHub summary of a run given absolute paths mean
/// the same on the CI machine that made them and on the reader's; else as given.
pub fn shown(path: &Path) -> std::path::PathBuf {
    if path.is_absolute()
        && let Ok(cwd) = std::env::current_dir()
        && let Ok(relative) = path.strip_prefix(&cwd)
        && !relative.as_os_str().is_empty()
    {
        return relative.to_path_buf();
    }
    path.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_read_up_to_the_limit_only() {
        let err = read_bounded(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(
            matches!(err, InputError::TooLarge { size: None, .. }),
            "{err}"
        );
        assert_eq!(err.to_string(), "file is too large (the limit is 1 MiB)");
    }

    #[test]
    fn a_pipe_nobody_writes_to_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_bounded(&fifo, 100).unwrap_err();
        assert!(matches!(err, InputError::IdlePipe), "{err}");
    }

    #[test]
    fn regular_files_within_the_limit_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "abc").unwrap();
        assert_eq!(read_text(&file, 3).unwrap(), "abc");
        let err = read_text(&file, 2).unwrap_err();
        assert!(
            matches!(
                err,
                InputError::TooLarge {
                    size: Some(3),
                    limit: 2
                }
            ),
            "{err}"
        );
    }
}
