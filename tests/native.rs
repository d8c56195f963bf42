//! The native diagnosis window on real native leaks (the accuracy bench's Pillow SGI decoder,
//! selectolax `css_matches` and greenlet's kept greenlets, in a venv of its leaky releases, memray included, made here from
//! PyPI): the top
//! native site names the Python line that calls into the extension and the extension's C
//! function; a pure-Python leak gets no native section.

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
    let (output, results) = project.run(&[
        pypi.join("leaks.yaml").to_str().unwrap(),
        "python.yaml",
        "-k",
        "pillow or selectolax or greenlet-spawn or python-leak",
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
    // greenlet it starts; the site names greenlet's own functions under the interpreter's.
    let greenlet = scenario(&results, "pypi-leak-greenlet-spawn");
    let site = top_native_site(greenlet);
    let names = symbols(site);
    assert!(names.contains(&"…"), "{site:#}");
    assert!(
        names.iter().any(|s| s.starts_with("greenlet::")),
        "{site:#}"
    );

    let python = scenario(&results, "python-leak");
    assert_eq!(python["verdict"], "leak", "{log}");
    assert!(python["diagnosis"]["native"].is_null(), "{python:#}");
}
