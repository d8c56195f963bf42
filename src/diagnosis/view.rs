//! A [`Diagnosis`] in words, computed once into a [`DiagnosisView`]: the HTML report lays its
//! parts out in tables, and [`DiagnosisView::lines`] renders the compact plain text of the
//! terminal summary and the JUnit output (one-line figures such as the top site live in
//! `report::view`).

use super::{
    Diagnosis, Frame, Grown, Hint, NativeDiagnosis, NativeGap, NativeSource, NativeWindow, RootKind,
};
use crate::metric::Metric;
use crate::units::{Unit, format_bytes, format_quantity};

/// What a diagnosis found, worded for every report.
pub struct DiagnosisView {
    /// Iterations between the two checkpoints, the divisor of every per-iteration figure.
    pub iterations: u64,
    /// Hints as (what was observed, the fix).
    pub hints: Vec<(String, String)>,
    /// Allocation sites, most bytes grown first.
    pub sites: Vec<SiteView>,
    /// Growing types, most grown first.
    pub types: Vec<TypeView>,
    /// Referrer chains.
    pub chains: Vec<ChainView>,
    /// `gc.garbage` at the window's two checkpoints, in a sentence.
    pub garbage: String,
    /// How many objects `gc.garbage` gained over the window (negative when it lost some).
    pub garbage_growth: i64,
    /// Types of the uncollectable objects, most frequent first.
    pub uncollectable_types: Vec<String>,
    /// `generation 0: 3 collections, 10 collected, 0 uncollectable`, one a generation.
    pub generations: Vec<String>,
    /// What limited the diagnosis.
    pub notes: Vec<String>,
    /// The native window's section (empty when it did not run).
    pub native: Vec<String>,
    /// Where the figures come from and what diagnosing cost.
    pub footer: String,
}

/// One allocation site.
pub struct SiteView {
    /// The allocating line's file, as Python names it, relative to the working directory when
    /// it lies under it (see [`relative`]).
    pub file: String,
    /// Its line.
    pub line: u32,
    /// The allocating line's source text (trimmed), or empty.
    pub code: String,
    /// The first frame outside the standard library, when the allocation is inside it.
    pub caller: Option<FrameView>,
    /// Bytes grown per iteration, e.g. `36 B`.
    pub rate: String,
    /// `+720 B, +20 blocks in 20 iterations`.
    pub total: String,
    /// The stack, innermost first: `app.py:2  log.info(x)`.
    pub stack: Vec<String>,
}

/// A frame of an allocation stack.
pub struct FrameView {
    /// The file as Python names it, relative like [`SiteView::file`].
    pub file: String,
    /// Its line.
    pub line: u32,
    /// Its source text (trimmed), when known.
    pub code: Option<String>,
}

/// A growing type.
pub struct TypeView {
    /// Qualified name.
    pub name: String,
    /// Live objects at the first checkpoint.
    pub before: u64,
    /// Live objects at the last checkpoint.
    pub after: u64,
    /// Objects gained per iteration, e.g. `1`.
    pub rate: String,
}

/// A referrer chain.
pub struct ChainView {
    /// The leaked object's type.
    pub type_name: String,
    /// The kind of root reached, in words: `module global`, `none`, …
    pub root_kind: String,
    /// The chain in one line.
    pub text: String,
    /// Why the search stopped short of a root.
    pub note: Option<String>,
}

impl FrameView {
    fn new(frame: &Frame) -> FrameView {
        FrameView {
            file: relative(&frame.file),
            line: frame.line,
            code: frame.code.as_deref().map(|code| code.trim().to_string()),
        }
    }

    /// `app.py:2: log.info(x)`, or `app.py:2` without source.
    pub fn text(&self) -> String {
        match &self.code {
            Some(code) => format!("{}:{}: {code}", self.file, self.line),
            None => format!("{}:{}", self.file, self.line),
        }
    }
}

impl SiteView {
    /// `file:line` of the allocating line.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// The site in one line, with the user's calling line when the allocation happens in the
    /// standard library: `…/logging/__init__.py:311 +96 B/iter: self.msg = msg (called from
    /// shop/audit.py:12)`; what CI systems show beside a failure.
    pub fn one_line(&self) -> String {
        let mut line = format!("{} +{}/iter", self.location(), self.rate);
        if !self.code.is_empty() {
            line.push_str(": ");
            line.push_str(&self.code);
        }
        if let Some(caller) = &self.caller {
            line.push_str(&format!(" (called from {}:{})", caller.file, caller.line));
        }
        line
    }
}

impl DiagnosisView {
    /// Words every part of `d` once.
    pub fn new(d: &Diagnosis) -> DiagnosisView {
        let g = &d.garbage;
        let mut garbage = format!(
            "gc.garbage held {} object(s) at the diagnosis window's first checkpoint and {} at its last",
            g.garbage_before, g.garbage_after
        );
        if g.garbage_after > g.garbage_before {
            garbage.push_str(": uncollectable cycles (objects with finalizers) accumulate");
        }
        DiagnosisView {
            iterations: d.iterations,
            hints: d.hints.iter().map(|h| (h.message(), h.fix())).collect(),
            sites: d
                .sites
                .iter()
                .map(|s| SiteView {
                    file: relative(&s.file),
                    line: s.line,
                    code: s.code.as_deref().unwrap_or_default().trim().to_string(),
                    caller: s.caller.as_ref().map(FrameView::new),
                    rate: format_bytes(s.bytes_per_iteration),
                    total: format!(
                        "{:+} B, {:+} blocks in {} iterations",
                        s.size_diff, s.count_diff, d.iterations
                    ),
                    stack: s
                        .stack
                        .iter()
                        .map(|f| match &f.code {
                            Some(code) => {
                                format!("{}:{}  {}", relative(&f.file), f.line, code.trim())
                            }
                            None => format!("{}:{}", relative(&f.file), f.line),
                        })
                        .collect(),
                })
                .collect(),
            types: d
                .types
                .iter()
                .map(|t| TypeView {
                    name: t.type_name.clone(),
                    before: t.before,
                    after: t.after,
                    rate: format_quantity(t.per_iteration, Unit::Count),
                })
                .collect(),
            chains: d
                .chains
                .iter()
                .map(|c| ChainView {
                    type_name: c.type_name.clone(),
                    root_kind: c.root_kind.words().to_string(),
                    text: c.text.clone(),
                    note: c.note.clone(),
                })
                .collect(),
            garbage,
            garbage_growth: g.garbage_after as i64 - g.garbage_before as i64,
            uncollectable_types: g.uncollectable_types.clone(),
            generations: g
                .generations
                .iter()
                .map(|s| {
                    format!(
                        "generation {}: {} collections, {} collected, {} uncollectable",
                        s.generation, s.collections, s.collected, s.uncollectable
                    )
                })
                .collect(),
            notes: d
                .error
                .iter()
                .map(|error| {
                    format!(
                        "the diagnosis could not be completed ({error}); the verdict is unaffected"
                    )
                })
                .chain(d.notes.iter().cloned())
                .chain(d.native_gap.as_ref().map(NativeGap::note))
                .collect(),
            native: d
                .native
                .as_ref()
                .map(NativeDiagnosis::summary_lines)
                .unwrap_or_default(),
            footer: format!(
                "over the diagnosis window after the measured run, between its two checkpoints \
                 ({} iterations); diagnosing took {:.2} s",
                d.iterations, d.cost_secs
            ),
        }
    }

    /// A few lines per section, most telling first: allocation sites with their source line,
    /// growing types, referrer chains, hints, uncollectable garbage, the native window and
    /// notes.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.sites.is_empty() {
            lines.push(format!(
                "allocations that grew (over {} iterations):",
                self.iterations
            ));
            for site in self.sites.iter().take(3) {
                lines.push(format!("  {:>10}/iter  {}", site.rate, site.location()));
                if !site.code.is_empty() {
                    lines.push(format!("                  {}", site.code));
                }
                if let Some(caller) = &site.caller {
                    lines.push(format!(
                        "                  called from {}:{}{}",
                        caller.file,
                        caller.line,
                        caller
                            .code
                            .as_ref()
                            .map(|c| format!(": {c}"))
                            .unwrap_or_default()
                    ));
                }
            }
        }
        if !self.types.is_empty() {
            let types: Vec<String> = self
                .types
                .iter()
                .take(5)
                .map(|t| format!("{} +{}/iter", t.name, t.rate))
                .collect();
            lines.push(format!("types that grew: {}", types.join(", ")));
        }
        for chain in self.chains.iter().take(3) {
            match &chain.note {
                Some(note) => lines.push(format!(
                    "held by: (no root found for a {}: {note})",
                    chain.type_name
                )),
                None => lines.push(format!("held by: {}", chain.text)),
            }
        }
        for (message, fix) in &self.hints {
            lines.push(format!("hint: {message}"));
            lines.push(format!("      fix: {fix}"));
        }
        if self.garbage_growth > 0 {
            lines.push(format!(
                "gc.garbage grew by {} uncollectable objects: {}",
                self.garbage_growth,
                self.uncollectable_types.join(", ")
            ));
        }
        lines.extend(self.native.iter().cloned());
        for note in &self.notes {
            lines.push(format!("note: {note}"));
        }
        lines
    }
}

impl Hint {
    /// What was observed, e.g. "shop.prices.tax_unbounded is an lru_cache(maxsize=None) whose
    /// currsize grew by 200 (1 per iteration)".
    pub fn message(&self) -> String {
        match self {
            Hint::UnboundedLruCache {
                name,
                grew,
                per_iteration,
            } => format!(
                "{name} is an lru_cache(maxsize=None) whose currsize grew by {grew} ({})",
                per(*per_iteration)
            ),
            Hint::BufferingHandler {
                handler,
                grew,
                per_iteration,
            } => format!(
                "a {handler} buffered {grew} more records ({}) without flushing",
                per(*per_iteration)
            ),
            Hint::LoggerPerCall {
                grew,
                per_iteration,
                example,
            } => format!(
                "logging.Logger.manager.loggerDict grew by {grew} loggers ({}), each with a new \
                 name, e.g. {example}; logging keeps every logger it made",
                per(*per_iteration)
            ),
            Hint::GrowingModuleContainer {
                module,
                name,
                kind,
                grew,
                per_iteration,
            } => {
                let owner = match module {
                    Some(module) => format!("module {module} global"),
                    None => "the scenario's global".to_string(),
                };
                format!(
                    "{owner} '{name}' ({kind}) grew by {grew} entries ({})",
                    per(*per_iteration)
                )
            }
            Hint::HttpSessions { grown } => format!(
                "HTTP sessions or connection pools grew: {}",
                grown_list(grown)
            ),
            Hint::NumpyViewKeepsBase { views, base_bytes } => format!(
                "{views} growing numpy arrays are views keeping larger base arrays alive \
                 ({base_bytes} bytes of bases among those sampled)"
            ),
            Hint::SqlalchemyResultsKept { grown } => {
                format!("SQLAlchemy ORM objects stayed alive: {}", grown_list(grown))
            }
            Hint::AutogradGraphKept { grown } => format!(
                "autograd graph nodes stayed alive: {} (a kept loss, or a running total of \
                 losses, keeps every step's graph)",
                grown_list(grown)
            ),
            Hint::FinalizerKeepsObject { grown } => format!(
                "objects of classes with __del__ stayed alive: {} (since Python 3.4 the \
                 collector frees cycles through __del__, unless something keeps them: the \
                 __del__ itself, say)",
                grown_list(grown)
            ),
            Hint::Worded { message, .. } => message.clone(),
        }
    }

    /// What to do about it, in one line.
    pub fn fix(&self) -> String {
        match self {
            Hint::UnboundedLruCache { name, .. } => format!(
                "bound it (@lru_cache(maxsize=N)) or call {name}.cache_clear() when its inputs go \
                 away"
            ),
            Hint::BufferingHandler { .. } => "give it a reachable capacity and a flush target \
                 (MemoryHandler(capacity, target=...)), or remove the handler when done"
                .to_string(),
            Hint::LoggerPerCall { .. } => "use one logger per module \
                 (logging.getLogger(__name__)) and pass the varying part as a message argument \
                 or `extra`"
                .to_string(),
            Hint::GrowingModuleContainer { kind, .. } => match kind.as_str() {
                "list" | "collections.deque" => "bound it (collections.deque(maxlen=N), an LRU \
                     cache) or remove entries when they are no longer needed"
                    .to_string(),
                _ => "bound it (an LRU cache such as functools.lru_cache(maxsize=N) or \
                     cachetools.LRUCache) or remove entries when they are no longer needed"
                    .to_string(),
            },
            Hint::HttpSessions { .. } => "create one requests.Session and reuse it, or close \
                 each one (with requests.Session() as s: ...)"
                .to_string(),
            Hint::NumpyViewKeepsBase { .. } => {
                "store view.copy() instead of the view so the large base array can be freed"
                    .to_string()
            }
            Hint::SqlalchemyResultsKept { .. } => "keep what the caller needs (ids, values, a \
                 count) instead of query(...).all() result lists, or bound what keeps them"
                .to_string(),
            Hint::AutogradGraphKept { .. } => "keep the loss's number (loss.data; in PyTorch \
                 loss.item() or loss.detach()), not the loss"
                .to_string(),
            Hint::FinalizerKeepsObject { .. } => "release resources with a context manager or \
                 weakref.finalize, and never store self (or what it holds) from __del__"
                .to_string(),
            Hint::Worded { fix, .. } => fix.clone(),
        }
    }
}

/// `1 per iteration`: the rate with three significant digits, as the hints have always
/// printed it.
fn per(per_iteration: f64) -> String {
    format!("{} per iteration", significant(per_iteration, 3))
}

/// `shop.Quote +20, shop.Order +20`.
fn grown_list(grown: &[Grown]) -> String {
    let named: Vec<String> = grown
        .iter()
        .map(|g| format!("{} +{}", g.type_name, g.grew))
        .collect();
    named.join(", ")
}

/// `value` with `digits` significant digits, as Python's `format(value, ".{digits}g")` writes
/// it: fixed notation for exponents from -4 to `digits - 1`, else scientific (`1.5e+05`), with
/// trailing zeros dropped. The hints were worded in Python, and their figures read the same.
pub(crate) fn significant(value: f64, digits: usize) -> String {
    if !value.is_finite() {
        return if value.is_nan() {
            "nan".to_string()
        } else if value > 0.0 {
            "inf".to_string()
        } else {
            "-inf".to_string()
        };
    }
    let digits = digits.max(1);
    let scientific = format!("{value:.*e}", digits - 1);
    let (mantissa, exponent) = scientific.split_once('e').expect("`e` formatting");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    let trimmed = |text: &str| {
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text.to_string()
        }
    };
    if (-4..digits as i32).contains(&exponent) {
        let decimals = (digits as i32 - 1 - exponent) as usize;
        trimmed(&format!("{value:.decimals$}"))
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trimmed(mantissa), exponent.abs())
    }
}

impl RootKind {
    /// The kind in words, as the reports name it: `module global`, `none`, …
    pub fn words(self) -> &'static str {
        match self {
            RootKind::ModuleGlobal => "module global",
            RootKind::ScenarioGlobal => "scenario global",
            RootKind::ClassAttribute => "class attribute",
            RootKind::Closure => "closure",
            RootKind::DefaultArgument => "default argument",
            RootKind::SysModules => "sys modules",
            RootKind::Frame => "frame",
            RootKind::LoggingHandler => "logging handler",
            RootKind::FunctoolsCache => "functools cache",
            RootKind::None => "none",
        }
    }
}

impl NativeGap {
    /// The gap and what the native window made of it, in one note: what grew, how much of it
    /// the traced sites explain, and where to look next.
    pub fn note(&self) -> String {
        let what = match self.metric {
            Metric::Rss => "resident memory (rss)",
            _ => "the C allocator (malloc)",
        };
        let gap = format!(
            "{what} grew {}/iter, of which the traced allocation sites account for {}/iter: the \
             rest is native memory (a C extension, ctypes or a native library) that tracemalloc \
             cannot see",
            format_bytes(self.bytes_per_iteration),
            format_bytes(self.traced_bytes_per_iteration)
        );
        let next = match &self.window {
            NativeWindow::MemrayMissing { python } => format!(
                "install memray into the scenario's environment (`{python} -m pip install \
                 memray`, Linux only) and leakcheck names the native allocation sites that grew, \
                 with the Python line that called into them"
            ),
            NativeWindow::NotRun { reason } => {
                format!("the native window could not run ({reason})")
            }
            NativeWindow::NotCompleted { reason } => {
                format!("the native window could not be completed ({reason})")
            }
            NativeWindow::Unreadable { reason } => {
                format!("the native window could not be read ({reason})")
            }
            NativeWindow::NothingGrew => {
                "neither memray nor leakcheck's malloc recorder saw a native allocation grow \
                 with the window (memory mapped directly, or a library's own allocator)"
                    .to_string()
            }
            NativeWindow::Found => "the native sites above are memray's".to_string(),
            NativeWindow::FoundWithRecordedLines => {
                "the native sites above are memray's; where memray saw no Python frame, the \
                 line is that of leakcheck's malloc recorder, which grew at the same rate"
                    .to_string()
            }
            NativeWindow::RecordedWithoutMemray { python } => format!(
                "the sites above are from leakcheck's malloc recorder, which names the Python \
                 line; install memray into the scenario's environment (`{python} -m pip \
                 install memray`, Linux only) for the native functions below it"
            ),
            NativeWindow::RecordedPastMemray => {
                "memray saw none of it (the calls went through a pointer from dlsym, as ctypes \
                 and cffi make them); the sites above are from leakcheck's malloc recorder"
                    .to_string()
            }
        };
        format!("{gap}; {next}")
    }
}

impl NativeDiagnosis {
    /// The native sites, each with its bytes per iteration, the Python line that called into
    /// native code (and the scenario's line when that one is in a library), and its top native
    /// frames, innermost first.
    pub fn summary_lines(&self) -> Vec<String> {
        let [short, long] = self.windows;
        let tracer = match self.source {
            NativeSource::Memray => format!("memray {}", self.memray_version),
            NativeSource::Recorder => "leakcheck's malloc recorder".to_string(),
        };
        let mut lines = vec![format!(
            "native allocations that grew ({tracer}, windows of {short} and {long} iterations, {:.1} s):",
            self.cost_secs
        )];
        if self.sites.is_empty() {
            lines.push("  none grew with the window".to_string());
        }
        for site in self.sites.iter().take(3) {
            let python = site.python.as_ref().map_or_else(
                || "(no Python frame)".to_string(),
                |f| format!("{}:{} in {}", relative(&f.file), f.line, f.function),
            );
            lines.push(format!(
                "  {:>10}/iter  {python}",
                format_bytes(site.bytes_per_iteration)
            ));
            if let Some(caller) = site
                .caller
                .as_ref()
                .filter(|c| Some(*c) != site.python.as_ref())
            {
                lines.push(format!(
                    "                  called from {}:{}",
                    relative(&caller.file),
                    caller.line
                ));
            }
            let frames: Vec<String> = site
                .native
                .iter()
                .take(4)
                .map(|f| match f.file.as_str() {
                    "" => f.symbol.clone(),
                    file => format!("{} ({file})", f.symbol),
                })
                .collect();
            if !frames.is_empty() {
                lines.push(format!("                  native: {}", frames.join(" ← ")));
            }
        }
        lines
    }
}

/// `file` relative to the working directory when it lies under it: shorter, clickable in most
/// terminals and editors, and the same in a report read on another machine; worked out once
/// here, so that every report shows the same path.
fn relative(file: &str) -> String {
    crate::input::shown(std::path::Path::new(file))
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::{NativeFrame, NativeSite, PythonFrame};

    fn frame(file: &str, line: u32, function: &str) -> PythonFrame {
        PythonFrame {
            file: file.to_string(),
            line,
            function: function.to_string(),
        }
    }

    #[test]
    fn a_native_site_shows_its_rate_python_line_caller_and_c_frames() {
        let native = NativeDiagnosis {
            source: NativeSource::Memray,
            memray_version: "1.20.0".to_string(),
            windows: [20, 60],
            sites: vec![NativeSite {
                bytes_per_iteration: 16384.0,
                allocations_per_iteration: 1.0,
                python: Some(frame("/venv/PIL/ImageFile.py", 268, "load")),
                caller: Some(frame("/elsewhere/work.py", 107, "decode")),
                native: vec![
                    NativeFrame {
                        symbol: "ImagingSgiRleDecode".to_string(),
                        file: "src/libImaging/SgiRleDecode.c:190".to_string(),
                    },
                    NativeFrame {
                        symbol: "helper".to_string(),
                        file: String::new(),
                    },
                ],
            }],
            cost_secs: 1.04,
        };
        assert_eq!(
            native.summary_lines(),
            [
                "native allocations that grew (memray 1.20.0, windows of 20 and 60 iterations, 1.0 s):",
                "      16 KiB/iter  /venv/PIL/ImageFile.py:268 in load",
                "                  called from /elsewhere/work.py:107",
                "                  native: ImagingSgiRleDecode (src/libImaging/SgiRleDecode.c:190) ← helper",
            ]
        );
    }

    fn grown(type_name: &str, grew: u64) -> Vec<Grown> {
        vec![Grown {
            type_name: type_name.to_string(),
            grew,
        }]
    }

    /// Each rule's words, as `diagnose.py` wrote them before the hints became facts (the
    /// report snapshots' fixtures hold the first five as real runs wrote them).
    #[test]
    fn every_hint_is_worded_as_it_always_was() {
        let container =
            |module: Option<&str>, name: &str, kind: &str| Hint::GrowingModuleContainer {
                module: module.map(str::to_string),
                name: name.to_string(),
                kind: kind.to_string(),
                grew: 20,
                per_iteration: 1.0,
            };
        let cases = [
            (
                container(None, "kept", "list"),
                "the scenario's global 'kept' (list) grew by 20 entries (1 per iteration)",
                "bound it (collections.deque(maxlen=N), an LRU cache) or remove entries when they are no longer needed",
            ),
            (
                container(Some("shop.prices"), "_seen", "dict"),
                "module shop.prices global '_seen' (dict) grew by 20 entries (1 per iteration)",
                "bound it (an LRU cache such as functools.lru_cache(maxsize=N) or cachetools.LRUCache) or remove entries when they are no longer needed",
            ),
            (
                Hint::UnboundedLruCache {
                    name: "shop.prices.tax_unbounded".to_string(),
                    grew: 100,
                    per_iteration: 1.0,
                },
                "shop.prices.tax_unbounded is an lru_cache(maxsize=None) whose currsize grew by 100 (1 per iteration)",
                "bound it (@lru_cache(maxsize=N)) or call shop.prices.tax_unbounded.cache_clear() when its inputs go away",
            ),
            (
                Hint::BufferingHandler {
                    handler: "logging.handlers.BufferingHandler".to_string(),
                    grew: 100,
                    per_iteration: 0.5,
                },
                "a logging.handlers.BufferingHandler buffered 100 more records (0.5 per iteration) without flushing",
                "give it a reachable capacity and a flush target (MemoryHandler(capacity, target=...)), or remove the handler when done",
            ),
            (
                Hint::FinalizerKeepsObject {
                    grown: grown("shop.connections.DeferredClose", 100),
                },
                "objects of classes with __del__ stayed alive: shop.connections.DeferredClose +100 (since Python 3.4 the collector frees cycles through __del__, unless something keeps them: the __del__ itself, say)",
                "release resources with a context manager or weakref.finalize, and never store self (or what it holds) from __del__",
            ),
            (
                Hint::HttpSessions {
                    grown: [
                        ("requests.sessions.Session", 20),
                        ("urllib3.poolmanager.PoolManager", 20),
                    ]
                    .map(|(name, grew)| Grown {
                        type_name: name.to_string(),
                        grew,
                    })
                    .to_vec(),
                },
                "HTTP sessions or connection pools grew: requests.sessions.Session +20, urllib3.poolmanager.PoolManager +20",
                "create one requests.Session and reuse it, or close each one (with requests.Session() as s: ...)",
            ),
            (
                Hint::NumpyViewKeepsBase {
                    views: 5,
                    base_bytes: 40000,
                },
                "5 growing numpy arrays are views keeping larger base arrays alive (40000 bytes of bases among those sampled)",
                "store view.copy() instead of the view so the large base array can be freed",
            ),
            (
                Hint::SqlalchemyResultsKept {
                    grown: grown("app.User", 20),
                },
                "SQLAlchemy ORM objects stayed alive: app.User +20",
                "keep what the caller needs (ids, values, a count) instead of query(...).all() result lists, or bound what keeps them",
            ),
            (
                Hint::AutogradGraphKept {
                    grown: grown("micrograd.engine.Value", 60),
                },
                "autograd graph nodes stayed alive: micrograd.engine.Value +60 (a kept loss, or a running total of losses, keeps every step's graph)",
                "keep the loss's number (loss.data; in PyTorch loss.item() or loss.detach()), not the loss",
            ),
        ];
        for (hint, message, fix) in cases {
            assert_eq!(hint.message(), message);
            assert_eq!(hint.fix(), fix);
        }
    }

    /// The first hint worded only here: the example name comes already quoted (its repr).
    #[test]
    fn a_logger_per_call_is_worded_with_a_new_name() {
        let hint = Hint::LoggerPerCall {
            grew: 200,
            per_iteration: 1.0,
            example: "'shop.request.1199'".to_string(),
        };
        assert_eq!(
            hint.message(),
            "logging.Logger.manager.loggerDict grew by 200 loggers (1 per iteration), each with \
             a new name, e.g. 'shop.request.1199'; logging keeps every logger it made"
        );
        assert_eq!(
            hint.fix(),
            "use one logger per module (logging.getLogger(__name__)) and pass the varying part \
             as a message argument or `extra`"
        );
    }

    /// The rates read as Python's `format(x, ".3g")` wrote them, ties and exponents included.
    #[test]
    fn significant_digits_match_python() {
        use pyo3::prelude::*;
        let values = [
            0.0,
            -0.0,
            1.0,
            10.0,
            0.5,
            0.125,
            1.125,
            2.5,
            1.005,
            0.0125,
            0.1,
            0.0001,
            0.00012345,
            0.00001,
            999.0,
            999.5,
            1000.0,
            1234.5,
            99999.0,
            123456789.0,
            1.0 / 3.0,
            2.0 / 3.0,
            9.995,
            0.9995,
            7.0 / 20.0,
            33.0 / 200.0,
            1e-7,
            1.5e300,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        Python::initialize();
        Python::attach(|py| {
            let format = py.import("builtins").unwrap().getattr("format").unwrap();
            for value in values {
                for value in [value, -value] {
                    let python: String = format.call1((value, ".3g")).unwrap().extract().unwrap();
                    assert_eq!(significant(value, 3), python, "{value:e}");
                }
            }
        });
    }

    /// results.json holds each hint's facts and words; it reads back whole, and a file of
    /// hints with words only (before the facts existed) reads as it was.
    #[test]
    fn hints_are_written_with_their_words_and_read_back() {
        let diagnosis = Diagnosis {
            hints: vec![
                Hint::UnboundedLruCache {
                    name: "m.f".to_string(),
                    grew: 3,
                    per_iteration: 0.15,
                },
                Hint::Worded {
                    rule: "some_later_rule".to_string(),
                    message: "seen".to_string(),
                    fix: "do".to_string(),
                },
            ],
            ..Diagnosis::default()
        };
        let json = serde_json::to_value(&diagnosis).unwrap();
        assert_eq!(
            json["hints"][0],
            serde_json::json!({
                "rule": "unbounded_lru_cache", "name": "m.f", "grew": 3, "per_iteration": 0.15,
                "message": "m.f is an lru_cache(maxsize=None) whose currsize grew by 3 (0.15 per iteration)",
                "fix": "bound it (@lru_cache(maxsize=N)) or call m.f.cache_clear() when its inputs go away",
            })
        );
        assert_eq!(
            json["hints"][1],
            serde_json::json!({"rule": "some_later_rule", "message": "seen", "fix": "do"})
        );
        let read: Diagnosis = serde_json::from_value(json).unwrap();
        assert_eq!(read, diagnosis);
    }

    /// What `diagnose.py` sends has no words: a field it adds or renames is an error, not a
    /// hint dropped or worded from defaults.
    #[test]
    fn hints_from_python_are_read_strictly() {
        let read = |hint: serde_json::Value| {
            let mut json = serde_json::to_value(Diagnosis::default()).unwrap();
            json["hints"] = serde_json::json!([hint]);
            serde_json::from_value::<Diagnosis>(json)
        };
        let hint = serde_json::json!({"rule": "buffering_handler", "handler": "h", "grew": 2, "per_iteration": 1.0});
        assert!(read(hint.clone()).is_ok());
        let mut extra = hint.clone();
        extra["size"] = serde_json::json!(4);
        assert!(read(extra).is_err());
        let mut missing = hint;
        missing.as_object_mut().unwrap().remove("grew");
        assert!(read(missing).is_err());
        assert!(read(serde_json::json!({"rule": "no_such_rule"})).is_err());
    }

    /// The note the worker used to write, word for word (the mixed snapshot's fixture holds
    /// the first as a real run wrote it).
    #[test]
    fn a_native_gap_is_worded_with_what_to_do_next() {
        let gap = |metric, window| NativeGap {
            metric,
            bytes_per_iteration: 2160.0,
            traced_bytes_per_iteration: 382.0,
            window,
        };
        let missing = gap(
            Metric::Rss,
            NativeWindow::MemrayMissing {
                python: "/opt/python-3.11.7/bin/python3".to_string(),
            },
        );
        assert_eq!(
            missing.note(),
            "resident memory (rss) grew 2.11 KiB/iter, of which the traced allocation sites \
             account for 382 B/iter: the rest is native memory (a C extension, ctypes or a native \
             library) that tracemalloc cannot see; install memray into the scenario's environment \
             (`/opt/python-3.11.7/bin/python3 -m pip install memray`, Linux only) and leakcheck \
             names the native allocation sites that grew, with the Python line that called into \
             them"
        );
        let found = gap(Metric::Malloc, NativeWindow::Found).note();
        assert!(
            found.starts_with("the C allocator (malloc) grew 2.11 KiB/iter")
                && found.ends_with("cannot see; the native sites above are memray's"),
            "{found}"
        );
        let diagnosis = Diagnosis {
            notes: vec!["first".to_string()],
            native_gap: Some(gap(Metric::Malloc, NativeWindow::NothingGrew)),
            ..Diagnosis::default()
        };
        let notes = DiagnosisView::new(&diagnosis).notes;
        assert_eq!(notes[0], "first");
        assert!(notes[1].ends_with("(memory mapped directly, or a library's own allocator)"));
        let lent = gap(Metric::Rss, NativeWindow::FoundWithRecordedLines).note();
        assert!(
            lent.ends_with(
                "the line is that of leakcheck's malloc recorder, which grew at the same rate"
            ),
            "{lent}"
        );
        let past = gap(Metric::Malloc, NativeWindow::RecordedPastMemray).note();
        assert!(
            past.ends_with(
                "memray saw none of it (the calls went through a pointer from dlsym, as ctypes \
                 and cffi make them); the sites above are from leakcheck's malloc recorder"
            ),
            "{past}"
        );
        let without = gap(
            Metric::Malloc,
            NativeWindow::RecordedWithoutMemray {
                python: "/usr/bin/python3".to_string(),
            },
        )
        .note();
        assert!(
            without.ends_with(
                "install memray into the scenario's environment (`/usr/bin/python3 -m pip \
                 install memray`, Linux only) for the native functions below it"
            ),
            "{without}"
        );
    }

    /// The recorder's sites have Python lines only: no native line under them.
    #[test]
    fn a_recorded_site_names_its_tracer_and_python_line() {
        let native = NativeDiagnosis {
            source: NativeSource::Recorder,
            windows: [20, 60],
            sites: vec![NativeSite {
                bytes_per_iteration: 4096.0,
                allocations_per_iteration: 1.0,
                python: Some(frame("/work/nativelib.py", 12, "keep")),
                caller: Some(frame("/work/nativelib.py", 12, "keep")),
                native: Vec::new(),
            }],
            cost_secs: 0.04,
            ..NativeDiagnosis::default()
        };
        assert_eq!(
            native.summary_lines(),
            [
                "native allocations that grew (leakcheck's malloc recorder, windows of 20 and 60 iterations, 0.0 s):",
                "       4 KiB/iter  /work/nativelib.py:12 in keep",
            ]
        );
    }

    /// A diagnosis that could not be completed says so, first among its notes, and a field
    /// the Rust side does not know is a decode error, not a figure dropped.
    #[test]
    fn a_failed_diagnosis_is_an_error_and_a_note() {
        let failed = Diagnosis {
            error: Some("undecodable result: unknown field `sizes`".to_string()),
            notes: vec!["later".to_string()],
            ..Diagnosis::default()
        };
        assert_eq!(
            DiagnosisView::new(&failed).notes,
            [
                "the diagnosis could not be completed (undecodable result: unknown field \
                 `sizes`); the verdict is unaffected",
                "later"
            ]
        );
        let mut json = serde_json::to_value(Diagnosis::default()).unwrap();
        assert!(serde_json::from_value::<Diagnosis>(json.clone()).is_ok());
        json["garbage"]["leaked"] = serde_json::json!(1);
        assert!(serde_json::from_value::<Diagnosis>(json).is_err());
    }

    #[test]
    fn a_window_that_found_nothing_says_so() {
        let native = NativeDiagnosis {
            memray_version: "1.20.0".to_string(),
            windows: [10, 30],
            ..NativeDiagnosis::default()
        };
        assert_eq!(native.summary_lines()[1], "  none grew with the window");
    }
}
