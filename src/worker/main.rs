//! The `leakcheck-worker` executable: one scenario in an embedded CPython (see [`worker`]).
//!
//! It is separate from the `leakcheck` binary so that only this one links libpython: the parent
//! starts anywhere, and picks the worker built for the target interpreter's minor version. The
//! worker's modules keep their place in `src/worker/`; the library's modules they use are
//! brought in under the same names, so `crate::protocol` means here what it means there.

// The worker's module tree is shared with the library's parent-side view of it (`allocator`,
// `library_path`), whose parent-only items are unused here.
#[allow(dead_code)]
mod library_path;
#[allow(dead_code)]
#[path = "mod.rs"]
mod worker;

#[allow(unused_imports)]
use leakcheck::{
    diagnosis, fork_server, holders, metric, protocol, sampling, scenario, units, verdict,
};

/// Printed by `leakcheck-worker --describe`: the source build and the CPython minor version this
/// worker embeds, which the parent checks before it starts any scenario.
const DESCRIPTION: &str = concat!(
    env!("LEAKCHECK_BUILD_ID"),
    " ",
    env!("LEAKCHECK_BUILD_PYTHON_VERSION")
);

fn main() {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "--describe")
    {
        println!("{DESCRIPTION}");
        return;
    }
    // SAFETY: first thing in the worker, before any thread starts.
    unsafe { library_path::restore_user_env() };
    let fork_server = std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "--fork-server");
    std::process::exit(if fork_server {
        worker::fork_server::main()
    } else {
        worker::main()
    });
}
