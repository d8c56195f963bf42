//! The native diagnosis window on real native leaks (the accuracy bench's Pillow SGI decoder,
//! selectolax `css_matches` and greenlet's kept greenlets, in a venv of its leaky releases,
//! memray included, made here from PyPI): the top native site names the Python line that calls
//! into the extension and the extension's C function; a pure-Python leak gets no native
//! section. `malloc` called through ctypes, which memray does not see, is named by leakcheck's
//! malloc recorder, with memray and without it, and a temporary beside the leak is not blamed.

mod common;

use std::path::Path;

use serde_json::Value;

use common::{Project, scenario, transcript};

/// The top native site of a scenario's diagnosis.
fn top_native_site(result: &Value) -> &Value {
    let native = &result["diagnosis"]["native"];
    assert!(!native.is_null(), "no native section: {result:#}");
    &native["sites"][0]
}

/// The file of a site's `python` or `caller` frame ("" when absent).
fn file_of<'a>(site: &'a Value, frame: &str) -> &'a str {
    site[frame]["file"].as_str().unwrap_or_default()
}

fn symbols(site: &Value) -> Vec<&str> {
    site["native"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["symbol"].as_str().unwrap())
        .collect()
}

#[test]
fn native_leaks_are_named_by_their_python_line_and_c_function() {
    let project = Project::new();
    let pypi = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/accuracy/pypi");
    // The bench's leaky releases (its workloads module imports them all), memray among them.
    let requirements = pypi.join("leaky-requirements.txt");
    let Some(venv) = project.venv_with("venv", &["-r", requirements.to_str().unwrap()]) else {
        return;
    };
    project.write(
        "python.yaml",
        "scenarios:\n  - name: python-leak\n    expect: leak\n    setup: kept = []\n    run: kept.append(bytes(4000))\n",
    );
    let venv = venv.to_str().unwrap();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/accuracy/corpus");
    let (output, results) = project.run(&[
        pypi.join("leaks.yaml").to_str().unwrap(),
        corpus.join("leaks.yaml").to_str().unwrap(),
        "python.yaml",
        "-k",
        "pillow or selectolax or greenlet-spawn or python-leak or leak-native-16KiB",
        "--python",
        venv,
    ]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");

    let pillow = scenario(&results, "pypi-leak-pillow-sgi-short-read");
    let site = top_native_site(pillow);
    assert!(
        file_of(site, "python").ends_with("PIL/ImageFile.py"),
        "{site:#}"
    );
    assert!(
        file_of(site, "caller").ends_with("pypi_workloads.py"),
        "{site:#}"
    );
    assert!(symbols(site).contains(&"ImagingSgiRleDecode"), "{site:#}");
    let rate = site["bytes_per_iteration"].as_f64().unwrap();
    assert!((12_000.0..20_000.0).contains(&rate), "{rate} B/iter");

    let selectolax = scenario(&results, "pypi-leak-selectolax-css-matches");
    let site = top_native_site(selectolax);
    assert!(
        file_of(site, "python").ends_with("pypi_workloads.py"),
        "{site:#}"
    );
    assert_eq!(site["python"]["function"], "selectolax_css_matches");
    assert!(
        symbols(site).iter().any(|s| s.starts_with("lexbor_")),
        "{site:#}"
    );

    // greenlet: the memory is a Python frame's data stack, taken by the interpreter for the
    // greenlet it starts; the site names greenlet's own functions under the interpreter's, and
    // (memray seeing no Python frame there) the recorder's line that switched into it.
    let greenlet = scenario(&results, "pypi-leak-greenlet-spawn");
    assert_eq!(
        greenlet["diagnosis"]["native_gap"]["window"]["outcome"], "found_with_recorded_lines",
        "{greenlet:#}"
    );
    let site = top_native_site(greenlet);
    assert!(
        file_of(site, "python").ends_with("pypi_workloads.py"),
        "{site:#}"
    );
    assert_eq!(site["python"]["function"], "greenlet_spawn", "{site:#}");
    let names = symbols(site);
    assert!(names.contains(&"…"), "{site:#}");
    assert!(
        names.iter().any(|s| s.starts_with("greenlet::")),
        "{site:#}"
    );

    // libc's malloc through ctypes: memray sees nothing, the recorder names the `run` line.
    let ctypes = scenario(&results, "leak-native-16KiB");
    let diagnosis = &ctypes["diagnosis"];
    assert_eq!(
        diagnosis["native_gap"]["window"]["outcome"], "recorded_past_memray",
        "{diagnosis:#}"
    );
    assert_eq!(diagnosis["native"]["source"], "recorder", "{diagnosis:#}");
    let site = top_native_site(ctypes);
    let corpus_text = std::fs::read_to_string(corpus.join("leaks.yaml")).unwrap();
    let run_line = common::line_of(&corpus_text, "run: libc.memset(libc.malloc(16384)");
    assert_eq!(site["python"]["line"], run_line, "{site:#}");
    let rate = site["bytes_per_iteration"].as_f64().unwrap();
    assert!((16_000.0..16_800.0).contains(&rate), "{rate} B/iter");

    let python = scenario(&results, "python-leak");
    assert_eq!(python["verdict"], "leak", "{log}");
    assert!(python["diagnosis"]["native"].is_null(), "{python:#}");
}

/// Without memray, the recorder names the line of a ctypes `malloc` that is never freed, inside
/// the project's module, and not the line of a 32 KiB scratch buffer freed later in the same
/// iteration; the note says what to install for the native frames.
#[test]
fn without_memray_the_recorder_names_the_line_that_keeps_native_memory() {
    let project = Project::new();
    // A venv of its own, so that no memray can be found.
    let Some(venv) = project.venv_with("bare", &[]) else {
        return;
    };
    let module = project.write(
        "nativelib.py",
        r#"import ctypes

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]


def scratch(size):
    block = libc.malloc(size)  # freed by release()
    libc.memset(block, 0, size)
    return block


def keep(size):
    block = libc.malloc(size)  # never freed
    libc.memset(block, 1, size)


def release(block):
    libc.free(block)
"#,
    );
    project.write(
        "native.yaml",
        "scenarios:\n  - name: ctypes-kept\n    expect: leak\n    python_path: [.]\n    setup: import nativelib\n    run: |\n      block = nativelib.scratch(32768)\n      nativelib.keep(4096)\n      nativelib.release(block)\n",
    );
    let (output, results) = project.run(&["native.yaml", "--python", venv.to_str().unwrap()]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    let kept = scenario(&results, "ctypes-kept");
    let diagnosis = &kept["diagnosis"];
    assert_eq!(diagnosis["native"]["source"], "recorder", "{diagnosis:#}");
    let window = &diagnosis["native_gap"]["window"];
    assert_eq!(
        window["outcome"], "recorded_without_memray",
        "{diagnosis:#}"
    );
    let sites = diagnosis["native"]["sites"].as_array().unwrap();
    let source = std::fs::read_to_string(&module).unwrap();
    let keep_line = common::line_of(&source, "# never freed");
    let site = &sites[0];
    assert!(
        file_of(site, "python").ends_with("nativelib.py"),
        "{site:#}"
    );
    assert_eq!(site["python"]["line"], keep_line, "{site:#}");
    assert_eq!(site["python"]["function"], "keep", "{site:#}");
    let rate = site["bytes_per_iteration"].as_f64().unwrap();
    assert!((4_000.0..4_400.0).contains(&rate), "{rate} B/iter");
    let scratch_line = common::line_of(&source, "# freed by release()");
    assert!(
        sites
            .iter()
            .all(|site| site["python"]["line"] != scratch_line),
        "the scratch buffer is blamed: {diagnosis:#}"
    );
    assert!(log.contains("leakcheck's malloc recorder"), "{log}");
    assert!(log.contains("-m pip install memray"), "{log}");
}
