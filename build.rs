//! Build script: choose the CPython to embed deliberately and make the binary find it at run time.
//!
//! pyo3 links `libpython3.X.so` by soname only. On a machine with two CPython builds of the same
//! minor version (say pyenv's and the distribution's), the dynamic loader would pick whichever is
//! in the system library path, so the embedded interpreter could silently differ from the
//! `python3` the project was built with. We resolve the interpreter exactly as pyo3 does
//! (`PYO3_PYTHON`, else an active virtualenv, else `python3` on `PATH`), then add its library
//! folder as a run-time search path (`RUNPATH`, which the loader consults before its cache and
//! default folders), and record what we chose so `leakcheck --version` can show it.

fn main() {
    let config = pyo3_build_config::get();
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-env-changed=VIRTUAL_ENV");
    println!("cargo:rerun-if-env-changed=PATH");

    if let Some(lib_dir) = config.lib_dir() {
        // Applies to the binary, tests and benches alike, so no LD_LIBRARY_PATH is ever needed.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
        println!("cargo:rustc-link-arg=-Wl,--enable-new-dtags");
    }
    println!(
        "cargo:rustc-env=LEAKCHECK_BUILD_PYTHON_VERSION={}.{}",
        config.version().major,
        config.version().minor
    );
    println!(
        "cargo:rustc-env=LEAKCHECK_BUILD_PYTHON={}",
        config.executable().unwrap_or("unknown")
    );
    println!(
        "cargo:rustc-env=LEAKCHECK_BUILD_PYTHON_LIBDIR={}",
        config.lib_dir().unwrap_or("")
    );
}
