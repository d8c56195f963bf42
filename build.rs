//! Build script: record which CPython minor version the worker is built for.
//!
//! pyo3 resolves the interpreter (`PYO3_PYTHON`, else an active virtualenv, else `python3` on
//! `PATH`) and links `libpython3.X.so.1.0` by soname into the `leakcheck-worker` executable
//! only; the parent `leakcheck` links no libpython. The worker carries no run path: the runner
//! starts it with the library folder of the project's own interpreter, which may be another
//! build of the same minor version (pyenv's or Debian's 3.11, say). We record the version so the
//! parent knows what its sibling worker serves, and a hash of the sources ([`source_hash`]) so
//! the two recognise each other.
//!
//! It also compiles the worker's Python (`src/python/*.py`) to bytecode with that interpreter,
//! once per build instead of in every worker: compiling them costs a worker ~7 ms of its start.

use std::path::Path;
use std::process::Command;

/// The Python files the worker loads, with the pseudo-filename each is compiled under (the one
/// `src/worker/interpreter.rs` gives it, which tracebacks and the harness's frame filters see).
const PYTHON_MODULES: [(&str, &str); 6] = [
    ("harness", "<leakcheck harness>"),
    ("diagnose", "<leakcheck diagnose>"),
    ("holders", "<leakcheck holders>"),
    ("pytest_item", "<leakcheck pytest>"),
    ("native", "<leakcheck native>"),
    ("collect_pytest", "<leakcheck collect>"),
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
        // Only the tests and benches that embed CPython in-process get a run path; the worker
        // executable carries none, as the runner gives it the target interpreter's library
        // folder.
        for targets in ["tests", "benches"] {
            println!("cargo:rustc-link-arg-{targets}=-Wl,-rpath,{lib_dir}");
            println!("cargo:rustc-link-arg-{targets}=-Wl,--enable-new-dtags");
        }
    }
    println!("cargo:rustc-env=LEAKCHECK_BUILD_ID={:016x}", source_hash());
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
        let source = format!("{}/src/python/{name}.py", manifest_dir());
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

/// The package's folder, read when the script runs: `env!` would fix it when the script is
/// compiled, and a build script compiled in one checkout and reused by another (a copied
/// `target/`) would then read the first checkout's sources.
fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")
}

/// FNV-1a over the sources both executables are built from (`src/`, the manifest, the lock file
/// and this script): the parent starts only a worker with the same hash, so a worker left over
/// from an older build (`cargo run` builds only the parent) is never used by mistake. Workers
/// built for other Python versions from the same sources share it.
fn source_hash() -> u64 {
    let manifest = manifest_dir();
    let root = Path::new(&manifest);
    let mut files = vec![
        root.join("Cargo.toml"),
        root.join("Cargo.lock"),
        root.join("build.rs"),
    ];
    collect_files(&root.join("src"), &mut files);
    for file in ["src", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in files {
        let relative = file.strip_prefix(root).unwrap_or(&file);
        let bytes = std::fs::read(&file).unwrap_or_default();
        for byte in relative.to_string_lossy().bytes().chain([0]).chain(bytes) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

fn collect_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, files);
        } else {
            files.push(path);
        }
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
