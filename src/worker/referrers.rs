//! The referrers of every object, indexed once for the diagnosis's referrer-chain search.
//!
//! The chain search is a breadth-first walk up from each leaked object to a root, and asked
//! `gc.get_referrers(node)` at every node it visited: each call walks the whole heap, ~5-8 ms
//! on a released library's 100 000 objects, and a search visits dozens to hundreds of nodes (a
//! SQLAlchemy leak's chains cost 0.3-0.6 s, an autograd graph's more). [`Referrers`] walks the
//! heap once, in the order `gc.get_referrers` would (the collector's generations, as
//! `gc.get_objects()` lists them), and answers each node from a sorted table of
//! `(referent, referrer)` pairs: the same referrers, in the same order, for a lookup.
//!
//! It answers for the heap as it was when built: the search runs no scenario code, and what it
//! makes itself (its queues, the lists it returns) it ignores anyway. It keeps the listed
//! objects alive, so that no address in its table can be reused while it exists. Its table is
//! 16 bytes a reference (8 MB on a 100 000-object heap); above a million tracked objects the
//! search asks gc instead (`_INDEX_MAX_OBJECTS` in `diagnose.py`).

use std::os::raw::{c_int, c_void};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;

/// `gc.get_referrers` for one object at a time, from one walk of the heap.
#[pyclass(module = "_leakcheck", unsendable)]
pub struct Referrers {
    /// The gc-tracked objects, `gc.get_objects()`: every possible referrer, held alive.
    objects: Py<PyList>,
    /// `(referent address, index into objects)`, sorted; each pair once.
    edges: Vec<(usize, u32)>,
}

#[pymethods]
impl Referrers {
    /// Indexes the references of every object of `objects` (`gc.get_objects()`), leaving out
    /// the list itself.
    #[new]
    fn new(objects: Bound<'_, PyList>) -> PyResult<Self> {
        let own = objects.as_ptr();
        let mut walk = Walk {
            edges: Vec::with_capacity(objects.len() * 4),
            referrer: 0,
        };
        for (index, obj) in objects.iter().enumerate() {
            let ptr = obj.as_ptr();
            if ptr == own {
                continue;
            }
            walk.referrer = u32::try_from(index).map_err(|_| {
                pyo3::exceptions::PyOverflowError::new_err("more than 2^32 objects")
            })?;
            // SAFETY: `ptr` is alive (held by `objects`) and the GIL is held; `tp_traverse`
            // only calls `visit` on each referent, which touches no Python state.
            unsafe {
                if ffi::PyObject_IS_GC(ptr) == 0 {
                    continue;
                }
                if let Some(traverse) = (*ffi::Py_TYPE(ptr)).tp_traverse {
                    traverse(ptr, visit, (&mut walk as *mut Walk).cast::<c_void>());
                }
            }
        }
        let mut edges = walk.edges;
        // By referent, then by referrer: each referent's referrers in the heap's order.
        edges.sort_unstable();
        edges.dedup();
        Ok(Referrers {
            objects: objects.unbind(),
            edges,
        })
    }

    /// The objects that referred to `obj` when the index was built, in `gc.get_referrers`'s
    /// order.
    fn of<'py>(&self, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let py = obj.py();
        let target = obj.as_ptr() as usize;
        let from = self
            .edges
            .partition_point(|&(referent, _)| referent < target);
        let objects = self.objects.bind(py);
        let out = PyList::empty(py);
        for &(referent, index) in &self.edges[from..] {
            if referent != target {
                break;
            }
            out.append(objects.get_item(index as usize)?)?;
        }
        Ok(out)
    }
}

/// The state of the walk: the pairs so far and the referrer being traversed.
struct Walk {
    edges: Vec<(usize, u32)>,
    referrer: u32,
}

/// `tp_traverse`'s callback: one `(referent, referrer)` pair.
unsafe extern "C" fn visit(obj: *mut ffi::PyObject, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Walk` that `Referrers::new` passed, borrowed only here.
    let walk = unsafe { &mut *arg.cast::<Walk>() };
    if !obj.is_null() {
        walk.edges.push((obj as usize, walk.referrer));
    }
    0
}

#[cfg(test)]
mod tests {
    use pyo3::prelude::*;
    use pyo3::types::PyDict;

    use super::Referrers;

    #[test]
    fn answers_as_gc_get_referrers_does() {
        Python::attach(|py| {
            let globals = PyDict::new(py);
            globals
                .set_item("Referrers", py.get_type::<Referrers>())
                .unwrap();
            // A target held by a list (twice), a dict, a tuple and an instance; a second object
            // nothing holds but a local; the index must give what gc.get_referrers gives.
            py.run(
                cr#"
import gc, types
class Holder:
    pass
target = Holder()
lonely = Holder()
holder = Holder()
holder.kept = target
held = [[target, target], {"k": target}, (target, 1), holder]
def referrers(of, obj):
    return [id(r) for r in of(obj) if r is not globals() and type(r) is not types.FrameType]
want_target = referrers(gc.get_referrers, target)
want_lonely = referrers(gc.get_referrers, lonely)
want_holder = referrers(gc.get_referrers, holder)
index = Referrers(gc.get_objects())
got_target = referrers(index.of, target)
got_lonely = referrers(index.of, lonely)
got_holder = referrers(index.of, holder)
result = (
    (want_target == got_target, len(want_target)),
    (want_lonely == got_lonely, len(want_lonely)),
    (want_holder == got_holder, len(want_holder)),
)
"#,
                Some(&globals),
                None,
            )
            .unwrap();
            let result: ((bool, usize), (bool, usize), (bool, usize)) = globals
                .get_item("result")
                .unwrap()
                .unwrap()
                .extract()
                .unwrap();
            // The inner list (once, though it holds the target twice), the dict, the tuple and
            // the holder; nothing for `lonely` but the namespace; `held` for the holder.
            assert_eq!(result, ((true, 4), (true, 0), (true, 1)));
        });
    }
}
