//! Build script: choose the CPython to embed deliberately and make the binary find it at run time.
//!
//! pyo3 links `libpython3.X.so` by soname only. On a machine with two CPython builds of the same
//! minor version (say pyenv's and the distribution's), the dynamic loader would pick whichever is
//! in the system library path, so the embedded interpreter could silently differ from the
//! `python3` the project was built with. We resolve the interpreter exactly as pyo3 does
//! (`PYO3_PYTHON`, else an active virtualenv, else `python3` on `PATH`), then add its library
//! folder as a run-time search path (`RUNPATH`, which the loader consults before its cache and
//! default folders), and record what we chose so `leakcheck --version` can show it.
//!
//! It also compiles the worker's Python (`src/python/*.py`) to bytecode with that interpreter,
//! once per build instead of in every worker: compiling them costs a worker ~7 ms of its start.

use std::path::Path;
use std::process::Command;

/// The Python files the worker loads, with the pseudo-filename each is compiled under (the one
/// `src/worker/interpreter.rs` gives it, which tracebacks and the harness's frame filters see).
const PYTHON_MODULES: [(&str, &str); 3] = [
    ("harness", "<leakcheck harness>"),
    ("diagnose", "<leakcheck diagnose>"),
    ("holders", "<leakcheck holders>"),
];

/// Prints the interpreter's magic number followed by the marshalled code of `argv[1]` compiled
/// under the filename `argv[2]` (optimisation level 0, no inherited `__future__` flags).
const COMPILE: &str = "import importlib.util, marshal, sys
source = open(sys.argv[1], encoding='utf-8').read()
code = compile(source, sys.argv[2], 'exec', dont_inherit=True, optimize=0)
sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER + marshal.dumps(code))";

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
    // Which installation this is, to recognise its own venvs at run time (their
    // `sys.base_prefix` and `sys.version` are the installation's).
    let (base_prefix, sys_version) = config
        .executable()
        .and_then(|python| {
            let output = Command::new(python)
                .args([
                    "-c",
                    "import sys; print(sys.base_prefix); print(sys.version)",
                ])
                .output()
                .ok()?;
            let text = String::from_utf8(output.stdout).ok()?;
            let mut lines = text.lines();
            Some((lines.next()?.to_string(), lines.next()?.to_string()))
        })
        .unwrap_or_default();
    println!("cargo:rustc-env=LEAKCHECK_BUILD_PYTHON_BASE_PREFIX={base_prefix}");
    println!("cargo:rustc-env=LEAKCHECK_BUILD_PYTHON_SYS_VERSION={sys_version}");

    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for (name, file_name) in PYTHON_MODULES {
        let source = format!("{}/src/python/{name}.py", env!("CARGO_MANIFEST_DIR"));
        println!("cargo:rerun-if-changed={source}");
        let bytecode = match config.executable() {
            Some(python) => compile(python, &source, file_name),
            None => Err("pyo3 found no interpreter to run".to_string()),
        };
        // Without bytecode the worker compiles the source itself, as it did before: slower, same.
        let bytecode = bytecode.unwrap_or_else(|reason| {
            println!("cargo:warning=not precompiling {source} ({reason}); workers will compile it");
            Vec::new()
        });
        let target = Path::new(&out_dir).join(format!("{name}.bytecode"));
        std::fs::write(&target, bytecode).expect("OUT_DIR is writable");
    }
}

/// Compiles one Python file with `python` (isolated, no `site`); returns magic number + code.
fn compile(python: &str, source: &str, file_name: &str) -> Result<Vec<u8>, String> {
    let output = Command::new(python)
        .args(["-I", "-S", "-c", COMPILE, source, file_name])
        .output()
        .map_err(|err| format!("running {python}: {err}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("{python} failed: {}", stderr.trim()));
    }
    Ok(output.stdout)
}
