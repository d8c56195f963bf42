//! The unit tests of the worker's modules (`src/worker/*.rs`), which embed CPython in-process.
//!
//! The `leakcheck-worker` executable has no run path (the runner gives it the target's library
//! folder), so its modules are compiled here too, in a test that links the build's libpython
//! through a run path (build.rs).

#[allow(dead_code, unused_imports)]
#[path = "../src/worker/mod.rs"]
mod worker;
#[allow(unused_imports)]
use leakcheck::{
    diagnosis, fork_server, holders, metric, protocol, sampling, scenario, units, verdict,
};
