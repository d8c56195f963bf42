//! The diagnosis census's set of object identities, kept in Rust.
//!
//! The census (`_Census` in `src/python/diagnose.py`) walks every live object at both
//! checkpoints of the diagnosis window and must count an object held twice once. In Python that
//! took an `id()` per object that is not compared by identity (tuples, dicts, equal strings that
//! are different objects): a new int each, and under the window's 10-frame tracing every
//! allocation costs microseconds, so on a heap of 200 000 objects the ints were half of each
//! census. Here the identities live in a Rust `HashSet`, whose memory tracemalloc does not trace
//! and the census does not count; Python sees only the lists of objects not seen before.
//!
//! Checkpoint A needs only the counts, which [`count_types`] takes in one walk in Rust, making
//! no Python object until the walk is done: ~30 ms instead of the Python census's 0.25 s
//! (0.3-0.6 s under the window's tracing) on that heap. Checkpoint B counts the same way, so
//! that the A→B differences compare like with like, and keeps the Python census for the objects
//! the referrer search starts from. Both follow the census's rule (a unit test checks the walk
//! against it written plainly; tests/diagnosis.rs that clean scenarios show no growing type).

use std::collections::{HashMap, HashSet};
use std::os::raw::{c_int, c_void};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

/// Identities of the objects a census has met (their addresses: every one is alive, held by
/// the census's own lists, until the census is dropped).
#[pyclass(module = "_leakcheck", unsendable)]
#[derive(Default)]
pub struct Identities {
    seen: HashSet<usize>,
}

#[pymethods]
impl Identities {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Marks the objects of `objects` (any iterable) as met.
    fn add(&mut self, objects: &Bound<'_, PyAny>) -> PyResult<()> {
        for obj in objects.try_iter()? {
            self.seen.insert(obj?.as_ptr() as usize);
        }
        Ok(())
    }

    /// The objects of `bucket` not met before, each once, in `bucket`'s order; marks them met.
    fn fresh<'py>(&mut self, bucket: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(bucket.py());
        for obj in bucket.iter() {
            if self.seen.insert(obj.as_ptr() as usize) {
                out.append(obj)?;
            }
        }
        Ok(out)
    }

    /// How many objects were met.
    fn __len__(&self) -> usize {
        self.seen.len()
    }
}

/// `{type: number of live objects}` as `_Census(skip).counts()` gives it: the gc-tracked
/// objects of `tracked` (`gc.get_objects()`, which the caller holds until this returns), then
/// the untracked objects they refer to, then what those refer to, each once, minus the objects
/// of `skip`; objects whose type is one of `atoms` are counted but not walked, as the census
/// does (`_VALUE_ATOMS`).
#[pyfunction]
pub fn count_types<'py>(
    tracked: &Bound<'py, PyList>,
    skip: &Bound<'py, PyAny>,
    atoms: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyDict>> {
    let py = tracked.py();
    let mut walk = Walk::default();
    for obj in skip.try_iter()? {
        walk.seen.insert(obj?.as_ptr() as usize);
    }
    let atoms: HashSet<usize> = atoms.iter().map(|t| t.as_ptr() as usize).collect();
    let mut level: Vec<*mut ffi::PyObject> = Vec::with_capacity(tracked.len());
    for obj in tracked.iter() {
        let ptr = obj.as_ptr();
        if !walk.seen.contains(&(ptr as usize)) {
            walk.count(ptr);
            level.push(ptr);
        }
    }
    // From here to the end of the walk no Python object is made, so no collection and no
    // Python code can run: every pointer stays valid, the tracked ones held by `tracked`, the
    // untracked ones by the objects that refer to them.
    while !level.is_empty() {
        for &obj in &level {
            // SAFETY: `obj` is alive (see above) and the GIL is held; `tp_traverse` only calls
            // `visit` on each referent, which touches no Python state.
            unsafe {
                let kind = ffi::Py_TYPE(obj);
                if atoms.contains(&(kind as usize)) || ffi::PyObject_IS_GC(obj) == 0 {
                    continue;
                }
                if let Some(traverse) = (*kind).tp_traverse {
                    traverse(obj, visit, (&mut walk as *mut Walk).cast::<c_void>());
                }
            }
        }
        level = std::mem::take(&mut walk.next);
    }
    let counts = PyDict::new(py);
    for (kind, n) in walk.counts {
        // SAFETY: a type of a live object, alive while `tracked` is (its instances hold it).
        let kind = unsafe { Bound::from_borrowed_ptr(py, kind as *mut ffi::PyObject) };
        counts.set_item(kind, n)?;
    }
    Ok(counts)
}

/// The state of [`count_types`]'s walk.
#[derive(Default)]
struct Walk {
    /// Objects met (and those skipped).
    seen: HashSet<usize>,
    /// Objects per type (the type's address).
    counts: HashMap<usize, usize>,
    /// The untracked objects met at this level, to walk at the next.
    next: Vec<*mut ffi::PyObject>,
}

impl Walk {
    fn count(&mut self, obj: *mut ffi::PyObject) {
        // SAFETY: `obj` is a live object (see `count_types`).
        let kind = unsafe { ffi::Py_TYPE(obj) } as usize;
        *self.counts.entry(kind).or_default() += 1;
    }
}

/// `tp_traverse`'s callback: an untracked referent met for the first time is counted and
/// walked at the next level (tracked ones are all in the list already).
unsafe extern "C" fn visit(obj: *mut ffi::PyObject, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Walk` that `count_types` passed, borrowed only here.
    let walk = unsafe { &mut *arg.cast::<Walk>() };
    if obj.is_null() || unsafe { ffi::PyObject_GC_IsTracked(obj) } != 0 {
        return 0;
    }
    if walk.seen.insert(obj as usize) {
        walk.count(obj);
        walk.next.push(obj);
    }
    0
}

#[cfg(test)]
mod tests {
    use pyo3::prelude::*;
    use pyo3::types::{PyDict, PyList};

    use super::Identities;

    #[test]
    fn each_object_is_fresh_once_whatever_its_value() {
        Python::attach(|py| {
            let mut seen = Identities::new();
            // Two equal tuples that are different objects, one of them twice, and a skipped one.
            let one = py.eval(c"(1, 'a', None)", None, None).unwrap();
            let other = py.eval(c"tuple([1, 'a', None])", None, None).unwrap();
            let skipped = py.eval(c"(2,)", None, None).unwrap();
            seen.add(&PyList::new(py, [&skipped]).unwrap()).unwrap();
            let bucket = PyList::new(py, [&one, &other, &one, &skipped]).unwrap();
            let fresh = seen.fresh(&bucket).unwrap();
            assert_eq!(fresh.len(), 2);
            assert!(fresh.get_item(0).unwrap().is(&one));
            assert!(fresh.get_item(1).unwrap().is(&other));
            // Met already: nothing is fresh a second time.
            assert_eq!(seen.fresh(&bucket).unwrap().len(), 0);
            assert_eq!(seen.__len__(), 3);
        });
    }

    #[test]
    fn counts_each_object_once_by_the_censuss_rule() {
        Python::attach(|py| {
            let globals = PyDict::new(py);
            globals
                .set_item(
                    "count_types",
                    wrap_pyfunction!(super::count_types, py).unwrap(),
                )
                .unwrap();
            // Objects of every kind the census tells apart: tracked containers and a cycle,
            // untracked tuples and atomic dicts (told apart by identity), equal strings and ints
            // that are different objects, atoms held twice, one skipped object. The roots stand
            // for gc.get_objects(): private objects, so that other tests' threads cannot change
            // what is counted; the expected counts follow the census's rule written plainly.
            py.run(
                c"
import gc
shared = 'shared-' + str(7)
skipped = ('skip', 'me' * 40)
heap = {
    'tuples': [(i, str(i)) for i in range(300)] + [(1, 'a'), tuple([1, 'a'])],
    'strings': ['x' + str(i % 10) for i in range(200)] + [shared, shared],
    'ints': [10 ** 6 + i % 7 for i in range(100)],
    'atomic': [{'a': i, 'b': 'text'} for i in range(50)],
    'nested': [((i, (i, 'deep')),) for i in range(40)],
    'code': [compile(f'x = {i}', 'f', 'exec') for i in range(5)],
    'skipped': [skipped],
}
cycle = []
cycle.append(cycle)
gc.collect()
roots = [heap, cycle] + [v for v in heap.values() if gc.is_tracked(v)]
atoms = (str, int, float, bytes, complex, bool, type(compile('', '', 'exec')), type(None))

def expected(roots, skip):
    seen = {id(o) for o in skip}
    counts = {}
    level = []
    for o in roots:
        if id(o) not in seen:
            counts[type(o)] = counts.get(type(o), 0) + 1
            level.append(o)
    while level:
        following = []
        for o in level:
            if type(o) in atoms:
                continue
            for child in gc.get_referents(o):
                if gc.is_tracked(child) or id(child) in seen:
                    continue
                seen.add(id(child))
                counts[type(child)] = counts.get(type(child), 0) + 1
                following.append(child)
        level = following
    return counts

want = expected(roots, [skipped])
got = count_types(roots, [skipped], atoms)
tuples = got.get(tuple, 0)
",
                Some(&globals),
                None,
            )
            .unwrap();
            let want = globals.get_item("want").unwrap().unwrap();
            let got = globals.get_item("got").unwrap().unwrap();
            assert!(
                want.eq(&got).unwrap(),
                "counted {got}, the rule gives {want}"
            );
            let tuples: usize = globals
                .get_item("tuples")
                .unwrap()
                .unwrap()
                .extract()
                .unwrap();
            // The 302 flat ones at least (the nested ones are untracked only as collections get
            // to them, a level each), the skipped one not.
            assert!((302..=302 + 3 * 40).contains(&tuples), "{got}");
        });
    }
}
