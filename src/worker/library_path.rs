//! The dynamic loader's search path in a worker: the target interpreter's library folder first.
//!
//! The worker executable links `libpython3.X.so.1.0` by soname and carries no run path: which
//! file the loader maps is decided when the worker starts, by `LD_LIBRARY_PATH`
//! (`DYLD_LIBRARY_PATH` on macOS). The runner puts the target interpreter's `LIBDIR` in front of
//! the user's value ([`worker_env`]), so a worker built against one CPython 3.11 runs on the
//! libpython of whichever 3.11 the project uses (pyenv's, Debian's, a uv-managed one). The loader
//! reads the variable once, at start-up; the worker then puts the user's own value back first
//! thing ([`restore_user_env`]), so subprocesses that scenario code starts see the user's.

use std::ffi::OsString;
use std::path::Path;

/// The loader's search-path variable on this platform.
pub const VARIABLE: &str = if cfg!(target_os = "macos") {
    "DYLD_LIBRARY_PATH"
} else {
    "LD_LIBRARY_PATH"
};
/// The user's value of [`VARIABLE`], handed to the worker so it can restore it; absent when
/// the user had none, so that "unset" and "empty" stay apart.
const USER_VALUE: &str = "LEAKCHECK_USER_LIBRARY_PATH";
/// Present (empty) when the user had no value to restore.
const USER_UNSET: &str = "LEAKCHECK_USER_LIBRARY_PATH_UNSET";

/// The variables the runner sets for a worker: `libdir` in front of the user's search path, and
/// what to restore.
pub fn worker_env(libdir: &Path) -> Vec<(&'static str, OsString)> {
    let user = std::env::var_os(VARIABLE);
    let mut value = libdir.as_os_str().to_os_string();
    if let Some(user) = user.as_ref().filter(|user| !user.is_empty()) {
        value.push(":");
        value.push(user);
    }
    let mut env = vec![(VARIABLE, value)];
    match user {
        Some(user) => env.push((USER_VALUE, user)),
        None => env.push((USER_UNSET, OsString::new())),
    }
    env
}

/// Puts the user's search path back (the loader already read the worker's).
///
/// # Safety
/// Changes the process environment: call it before the worker starts any thread.
pub unsafe fn restore_user_env() {
    let user = std::env::var_os(USER_VALUE);
    let unset = std::env::var_os(USER_UNSET).is_some();
    if user.is_none() && !unset {
        // Not started by the runner: leave the environment as it is.
        return;
    }
    // SAFETY: the caller guarantees no other thread runs.
    unsafe {
        match user {
            Some(user) => std::env::set_var(VARIABLE, user),
            None => std::env::remove_var(VARIABLE),
        }
        std::env::remove_var(USER_VALUE);
        std::env::remove_var(USER_UNSET);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_folder_goes_first_and_the_user_value_is_kept_for_restoring() {
        let env = worker_env(Path::new("/opt/python/lib"));
        let value = &env[0];
        assert_eq!(value.0, VARIABLE);
        assert!(value.1.to_string_lossy().starts_with("/opt/python/lib"));
        assert!(env[1].0 == USER_VALUE || env[1].0 == USER_UNSET);
    }
}
