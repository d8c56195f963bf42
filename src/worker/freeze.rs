//! Freezing the heap all but what the scenario made since setup.
//!
//! After setup the harness calls `gc.freeze()`, so each sample's full collection walks only the
//! objects made since (a few thousand) instead of the whole heap (SQLAlchemy's import alone is
//! ~100 000 objects, ~0.1 s a collection). The holder probe must unfreeze the heap, for
//! `gc.get_referrers` does not search frozen objects, and `gc.freeze()` afterwards would freeze
//! the cache entries made since setup too: once the cache evicts them they would be cyclic
//! garbage the collector never reaches (growth that is not there), so the heap used to be
//! unfrozen for good when the holders were full, and every sample after cost a collection of
//! the whole heap (40 s of a 45 s SQLAlchemy scenario). CPython has no call to freeze some
//! objects only; [`freeze_all_but`] untracks the young ones for the moment of the freeze, which
//! leaves them in the collector's young generation, as they were before the probe. They are
//! listed while the heap is still frozen (`gc.get_objects()` then lists only them): listing the
//! whole heap to pick them out cost ~25 ms a probe.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;

/// Calls `gc.freeze()` with the objects of `young` (listed by the caller while the heap was
/// frozen: the objects made since setup; the list keeps them alive) left out of it: each still
/// tracked is untracked before the freeze and tracked again after, so it stays collectable.
/// Returns how many were left out.
#[pyfunction]
pub fn freeze_all_but(young: &Bound<'_, PyList>) -> PyResult<usize> {
    let freeze = young.py().import("gc")?.getattr("freeze")?;
    let mut left_out: Vec<Bound<'_, PyAny>> = Vec::with_capacity(young.len());
    for obj in young.iter() {
        let ptr = obj.as_ptr();
        // SAFETY: `obj` is alive (held by `young`) and the GIL is held.
        if unsafe { ffi::PyObject_GC_IsTracked(ptr) } == 1 {
            // SAFETY: as above; the object is tracked, so untracking it is allowed. A
            // collection while it is untracked cannot free it (it frees only tracked objects)
            // nor what it refers to (a reference from an untracked object counts as one from
            // outside).
            unsafe { ffi::PyObject_GC_UnTrack(ptr.cast()) };
            left_out.push(obj);
        }
    }
    let frozen = freeze.call0();
    for obj in &left_out {
        let ptr = obj.as_ptr();
        // SAFETY: alive (held by `left_out`); untracked above, and no Python code ran since but
        // `gc.freeze`, which tracks nothing.
        if unsafe { ffi::PyObject_GC_IsTracked(ptr) } == 0 {
            unsafe { ffi::PyObject_GC_Track(ptr.cast()) };
        }
    }
    frozen?;
    Ok(left_out.len())
}

#[cfg(test)]
mod tests {
    use pyo3::prelude::*;
    use pyo3::types::PyList;

    #[test]
    fn the_young_objects_stay_collectable_and_the_rest_is_frozen() {
        Python::attach(|py| {
            let gc = py.import("gc").unwrap();
            let old = PyList::empty(py);
            let young = PyList::empty(py);
            for _ in 0..50 {
                old.append(PyList::empty(py)).unwrap();
                young.append(PyList::empty(py)).unwrap();
            }
            let left_out = super::freeze_all_but(&young).unwrap();
            assert_eq!(left_out, 50);
            let unfrozen = gc.call_method0("get_objects").unwrap();
            let unfrozen = unfrozen.cast::<PyList>().unwrap();
            let is_in =
                |obj: &Bound<'_, PyAny>| unfrozen.iter().any(|o| o.as_ptr() == obj.as_ptr());
            assert!(
                young.iter().all(|o| is_in(&o)),
                "every young object is collectable"
            );
            assert!(!old.iter().any(|o| is_in(&o)), "the old objects are frozen");
            gc.call_method0("unfreeze").unwrap();
        });
    }
}
