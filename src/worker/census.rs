//! The diagnosis census's set of object identities, kept in Rust.
//!
//! The census (`_Census` in `src/python/diagnose.py`) walks every live object at both
//! checkpoints of the diagnosis window and must count an object held twice once. In Python that
//! took an `id()` per object that is not compared by identity (tuples, dicts, equal strings that
//! are different objects): a new int each, and under the window's 10-frame tracing every
//! allocation costs microseconds, so on a heap of 200 000 objects the ints were half of each
//! census. Here the identities live in a Rust `HashSet`, whose memory tracemalloc does not trace
//! and the census does not count; Python sees only the lists of objects not seen before.

use std::collections::HashSet;

use pyo3::prelude::*;
use pyo3::types::PyList;

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

#[cfg(test)]
mod tests {
    use pyo3::prelude::*;
    use pyo3::types::PyList;

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
}
