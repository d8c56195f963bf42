//! leakcheck's own recorder of the C allocator, for the native window: the Python line of
//! native allocations that memray cannot see, or when memray is not installed.
//!
//! memray hooks `malloc` by rewriting the symbol tables of the loaded libraries, so code that
//! calls the C allocator through a pointer that `dlsym` returned (ctypes' `CDLL(None).malloc`,
//! cffi's ABI mode) bypasses it: those leaks showed the gap and no line. The worker executable
//! therefore defines `malloc`, `calloc`, `realloc` and `free` itself, forwarding to glibc's
//! `__libc_*` functions. An executable's definition is the one the dynamic linker binds for
//! every library and for `dlsym` on the program's global scope, so the worker sees every call
//! to them; outside a recording each costs one relaxed load. A library opened by name and asked
//! for its own symbol (`CDLL("libc.so.6").malloc`) still gets glibc's, which nothing sees.
//!
//! While recording ([`recorder_start`] … [`recorder_stop`], the native window's iterations
//! between), every block taken and not given back (and every mapping the interpreter's arena
//! allocator makes outside Python's allocators: a frame data stack) is kept with the Python
//! line that was running, read from a shadow
//! of the thread's Python stack that a C-level trace function keeps (the allocator cannot ask
//! the interpreter: ctypes releases the GIL around its calls). Python's own allocators are
//! wrapped for the while so that the blocks they take (objects, which tracemalloc sees) are
//! left out, as are allocations made while only leakcheck's frames run. [`recorder_stop`] sums the
//! blocks still alive by line. The two windows of `native.py` then keep what grew with the
//! window, as for memray's records; nothing here decides a verdict.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PySet, PyTuple};

unsafe extern "C" {
    fn __libc_malloc(size: usize) -> *mut c_void;
    fn __libc_calloc(count: usize, size: usize) -> *mut c_void;
    fn __libc_realloc(block: *mut c_void, size: usize) -> *mut c_void;
    fn __libc_free(block: *mut c_void);
}

/// Whether a recording runs: the only thing the allocator reads outside one.
static RECORDING: AtomicBool = AtomicBool::new(false);

/// The C allocator of the whole worker process (see the module's comment).
///
/// # Safety
/// As C's `malloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    // SAFETY: glibc's allocator, called as C's malloc is.
    let block = unsafe { __libc_malloc(size) };
    if RECORDING.load(Ordering::Relaxed) && !block.is_null() {
        allocated(block, size);
    }
    block
}

/// The C allocator's `calloc` (see [`malloc`]).
///
/// # Safety
/// As C's `calloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    // SAFETY: as C's calloc.
    let block = unsafe { __libc_calloc(count, size) };
    if RECORDING.load(Ordering::Relaxed) && !block.is_null() {
        allocated(block, count.saturating_mul(size));
    }
    block
}

/// The C allocator's `realloc` (see [`malloc`]).
///
/// # Safety
/// As C's `realloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(block: *mut c_void, size: usize) -> *mut c_void {
    if !RECORDING.load(Ordering::Relaxed) {
        // SAFETY: as C's realloc.
        return unsafe { __libc_realloc(block, size) };
    }
    // Forgotten first: once glibc has it back, another thread may be given the same address.
    if !block.is_null() {
        freed(block);
    }
    // SAFETY: as C's realloc.
    let moved = unsafe { __libc_realloc(block, size) };
    // A block that grows is recorded whole from here, wherever it was first taken: a buffer
    // grown a little at each iteration grows with the window. (Should glibc fail, the old block
    // stays the caller's, unrecorded.)
    if !moved.is_null() {
        allocated(moved, size);
    }
    moved
}

/// The C allocator's `free` (see [`malloc`]).
///
/// # Safety
/// As C's `free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(block: *mut c_void) {
    if RECORDING.load(Ordering::Relaxed) && !block.is_null() {
        freed(block);
    }
    // SAFETY: as C's free; every block of this process comes from glibc's allocator.
    unsafe { __libc_free(block) }
}

/// Where a frame's code is: leakcheck's, an installed package's or the standard library's, or
/// the project's (the scenario's own code, the user's modules).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Own,
    Installed,
    Project,
}

/// One frame of the shadow stack: its code object's address, its current line and its kind.
#[derive(Clone, Copy)]
struct Frame {
    code: usize,
    line: u32,
    kind: Kind,
}

const NO_FRAME: Frame = Frame {
    code: 0,
    line: 0,
    kind: Kind::Own,
};

/// Innermost frames the shadow stack keeps; deeper ones are dropped (only the innermost and the
/// first project frame are wanted).
const DEPTH: usize = 48;

/// A thread's state: its shadow stack, and how deep it is in code whose allocations are not to
/// be recorded (Python's allocators, the trace function, the recorder itself).
struct Thread {
    quiet: Cell<u32>,
    depth: Cell<usize>,
    frames: [Cell<Frame>; DEPTH],
}

thread_local! {
    // `const` and without a destructor: a plain thread-local the allocator can read without
    // allocating.
    static THREAD: Thread = const {
        Thread {
            quiet: Cell::new(0),
            depth: Cell::new(0),
            frames: [const { Cell::new(NO_FRAME) }; DEPTH],
        }
    };
}

/// Runs `f` with the thread's allocations left unrecorded.
fn quietly<R>(f: impl FnOnce() -> R) -> R {
    THREAD.with(|t| t.quiet.set(t.quiet.get() + 1));
    let result = f();
    THREAD.with(|t| t.quiet.set(t.quiet.get() - 1));
    result
}

/// A live block taken during the recording: its address (0: empty slot, 1: freed), size, and
/// the innermost Python frame and the first project frame when it was taken.
#[derive(Clone, Copy)]
struct Slot {
    block: usize,
    size: usize,
    code: usize,
    line: u32,
    caller_line: u32,
    caller: usize,
}

const EMPTY: usize = 0;
const TOMBSTONE: usize = 1;

/// The open-addressing table of live blocks, in memory mapped for it (the allocator cannot use
/// the allocator).
struct Table {
    slots: *mut Slot,
    capacity: usize,
    /// Slots not empty (live or freed).
    used: usize,
    live: usize,
}

// SAFETY: the slots are only reached through the mutex that holds the table.
unsafe impl Send for Table {}

static TABLE: Mutex<Table> = Mutex::new(Table {
    slots: ptr::null_mut(),
    capacity: 0,
    used: 0,
    live: 0,
});

/// Slots of a new table: 40 MiB of address space, touched only as used.
const CAPACITY: usize = 1 << 20;

impl Table {
    fn map(capacity: usize) -> *mut Slot {
        let bytes = capacity * std::mem::size_of::<Slot>();
        // SAFETY: an anonymous private mapping; zeroed pages are empty slots.
        let memory = unsafe {
            libc::mmap(
                ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if memory == libc::MAP_FAILED {
            ptr::null_mut()
        } else {
            memory.cast()
        }
    }

    fn unmap(&mut self) {
        if !self.slots.is_null() {
            // SAFETY: the mapping `map` made, of this size.
            unsafe {
                libc::munmap(
                    self.slots.cast(),
                    self.capacity * std::mem::size_of::<Slot>(),
                )
            };
        }
        self.slots = ptr::null_mut();
        self.capacity = 0;
        self.used = 0;
        self.live = 0;
    }

    fn slots(&mut self) -> &mut [Slot] {
        if self.slots.is_null() {
            return &mut [];
        }
        // SAFETY: `capacity` slots mapped by `map`, reached only under the table's mutex.
        unsafe { std::slice::from_raw_parts_mut(self.slots, self.capacity) }
    }

    fn home(block: usize, capacity: usize) -> usize {
        let hash = (block >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (hash ^ (hash >> 29)) & (capacity - 1)
    }

    fn insert(&mut self, slot: Slot) {
        if self.capacity == 0 {
            return;
        }
        // Should no memory be left to grow the table, the block goes unrecorded.
        if self.used >= self.capacity / 4 * 3 && !self.rebuild() {
            return;
        }
        let capacity = self.capacity;
        let mut at = Self::home(slot.block, capacity);
        let mut reuse = None;
        loop {
            let current = self.slots()[at].block;
            if current == slot.block {
                // A block freed behind the allocator's back (inside glibc) and given again.
                self.slots()[at] = slot;
                return;
            }
            if current == TOMBSTONE && reuse.is_none() {
                reuse = Some(at);
            }
            if current == EMPTY {
                break;
            }
            at = (at + 1) & (capacity - 1);
        }
        let at = reuse.unwrap_or_else(|| {
            self.used += 1;
            at
        });
        self.slots()[at] = slot;
        self.live += 1;
    }

    fn remove(&mut self, block: usize) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let capacity = self.capacity;
        let mut at = Self::home(block, capacity);
        loop {
            let current = self.slots()[at].block;
            if current == block {
                self.slots()[at].block = TOMBSTONE;
                self.live -= 1;
                return true;
            }
            if current == EMPTY {
                return false;
            }
            at = (at + 1) & (capacity - 1);
        }
    }

    /// Copies the live blocks into a fresh table (freed slots accumulate), twice the size when
    /// more than a quarter are live. False when no memory could be mapped.
    fn rebuild(&mut self) -> bool {
        let capacity = if self.live > self.capacity / 4 {
            self.capacity * 2
        } else {
            self.capacity
        };
        let fresh = Self::map(capacity);
        if fresh.is_null() {
            return false;
        }
        let mut old = Table {
            slots: fresh,
            capacity,
            used: 0,
            live: 0,
        };
        std::mem::swap(self, &mut old);
        for k in 0..old.capacity {
            let slot = old.slots()[k];
            if slot.block > TOMBSTONE {
                self.insert(slot);
            }
        }
        old.unmap();
        true
    }
}

fn allocated(block: *mut c_void, size: usize) {
    let frames = THREAD.try_with(|t| {
        if t.quiet.get() > 0 {
            return None;
        }
        let depth = t.depth.get();
        let innermost = if depth == 0 {
            NO_FRAME
        } else {
            t.frames[depth - 1].get()
        };
        if depth > 0 && innermost.kind == Kind::Own {
            // Only leakcheck's own code runs: its work, not the scenario's.
            return None;
        }
        let caller = (0..depth)
            .rev()
            .map(|k| t.frames[k].get())
            .find(|frame| frame.kind == Kind::Project)
            .unwrap_or(NO_FRAME);
        Some((innermost, caller))
    });
    let Ok(Some((innermost, caller))) = frames else {
        return;
    };
    if let Ok(mut table) = TABLE.lock() {
        table.insert(Slot {
            block: block as usize,
            size,
            code: innermost.code,
            line: innermost.line,
            caller: caller.code,
            caller_line: caller.line,
        });
    }
}

fn freed(block: *mut c_void) -> bool {
    TABLE
        .lock()
        .map(|mut table| table.remove(block as usize))
        .unwrap_or(false)
}

/// What the recorder holds between [`recorder_start`] and [`recorder_stop`]: the kinds of the code objects the
/// trace function met (and a reference to each, so that an address names one code until the
/// end), the files of each kind, and Python's allocators as they were.
struct Session {
    kinds: HashMap<usize, Kind>,
    codes: Vec<Py<PyAny>>,
    own: Vec<String>,
    installed: Vec<String>,
}

// SAFETY: used only with the GIL held (the trace function and start/stop run under it).
unsafe impl Send for Session {}

static SESSION: Mutex<Option<Session>> = Mutex::new(None);

/// Python's allocators before [`recorder_start`] wrapped them, one per domain: each wrapper's context.
static mut ORIGINAL: [ffi::PyMemAllocatorEx; 3] = [EMPTY_ALLOCATOR; 3];

const EMPTY_ALLOCATOR: ffi::PyMemAllocatorEx = ffi::PyMemAllocatorEx {
    ctx: ptr::null_mut(),
    malloc: None,
    calloc: None,
    realloc: None,
    free: None,
};

const DOMAINS: [ffi::PyMemAllocatorDomain; 3] = [
    ffi::PyMemAllocatorDomain::PYMEM_DOMAIN_RAW,
    ffi::PyMemAllocatorDomain::PYMEM_DOMAIN_MEM,
    ffi::PyMemAllocatorDomain::PYMEM_DOMAIN_OBJ,
];

fn original(ctx: *mut c_void) -> ffi::PyMemAllocatorEx {
    // SAFETY: `ctx` is the address of one of `ORIGINAL`'s entries, written before the wrapper
    // was installed and not written again while it is.
    unsafe { *ctx.cast::<ffi::PyMemAllocatorEx>() }
}

extern "C" fn python_malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    let inner = original(ctx);
    quietly(|| inner.malloc.map_or(ptr::null_mut(), |f| f(inner.ctx, size)))
}

extern "C" fn python_calloc(ctx: *mut c_void, count: usize, size: usize) -> *mut c_void {
    let inner = original(ctx);
    quietly(|| {
        inner
            .calloc
            .map_or(ptr::null_mut(), |f| f(inner.ctx, count, size))
    })
}

extern "C" fn python_realloc(ctx: *mut c_void, block: *mut c_void, size: usize) -> *mut c_void {
    let inner = original(ctx);
    quietly(|| {
        inner
            .realloc
            .map_or(ptr::null_mut(), |f| f(inner.ctx, block, size))
    })
}

extern "C" fn python_free(ctx: *mut c_void, block: *mut c_void) {
    let inner = original(ctx);
    quietly(|| {
        if let Some(f) = inner.free {
            f(inner.ctx, block)
        }
    })
}

/// The interpreter's arena allocator before [`recorder_start`] wrapped it: the wrapper's context.
static mut ORIGINAL_ARENA: ffi::PyObjectArenaAllocator = ffi::PyObjectArenaAllocator {
    ctx: ptr::null_mut(),
    alloc: None,
    free: None,
};

fn original_arena(ctx: *mut c_void) -> ffi::PyObjectArenaAllocator {
    // SAFETY: `ctx` is `ORIGINAL_ARENA`'s address, written before the wrapper was installed.
    unsafe { *ctx.cast::<ffi::PyObjectArenaAllocator>() }
}

/// The arena allocator maps memory for pymalloc's arenas, which it asks for from inside
/// Python's (wrapped, so quiet) allocators, and for the frames' data stacks, which the
/// interpreter asks for directly: a greenlet that keeps its stack keeps such a mapping, taken
/// at the line that switched into it.
extern "C" fn arena_alloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    let inner = original_arena(ctx);
    let block = inner.alloc.map_or(ptr::null_mut(), |f| f(inner.ctx, size));
    if RECORDING.load(Ordering::Relaxed) && !block.is_null() {
        allocated(block, size);
    }
    block
}

extern "C" fn arena_free(ctx: *mut c_void, block: *mut c_void, size: usize) {
    let inner = original_arena(ctx);
    if RECORDING.load(Ordering::Relaxed) && !block.is_null() {
        freed(block);
    }
    if let Some(f) = inner.free {
        f(inner.ctx, block, size)
    }
}

/// The kind of `code` (a code object), looked up once per code object.
fn kind_of(code: *mut ffi::PyObject) -> Kind {
    let mut session = SESSION.lock().unwrap_or_else(|poison| poison.into_inner());
    let Some(session) = session.as_mut() else {
        return Kind::Own;
    };
    if let Some(kind) = session.kinds.get(&(code as usize)) {
        return *kind;
    }
    // SAFETY: the trace function runs with the GIL held, and `code` is alive (its frame runs).
    let py = unsafe { Python::assume_attached() };
    let code_obj = unsafe { Bound::from_borrowed_ptr(py, code) };
    let file: String = code_obj
        .getattr("co_filename")
        .and_then(|f| f.extract())
        .unwrap_or_default();
    let kind = if session.own.contains(&file) {
        Kind::Own
    } else if file.starts_with("<frozen ")
        || file.contains("site-packages")
        || file.contains("dist-packages")
        || session
            .installed
            .iter()
            .any(|prefix| file.starts_with(prefix.as_str()))
    {
        Kind::Installed
    } else {
        Kind::Project
    };
    session.kinds.insert(code as usize, kind);
    session.codes.push(code_obj.unbind());
    kind
}

/// The frame's code object (borrowed: the frame holds it) and current line.
///
/// # Safety
/// `frame` is a live frame and the GIL is held.
unsafe fn frame_of(frame: *mut ffi::PyFrameObject) -> (*mut ffi::PyObject, u32) {
    // SAFETY: as the caller promises; the new reference is dropped at once, the frame keeps
    // its code alive.
    unsafe {
        let code = ffi::PyFrame_GetCode(frame).cast::<ffi::PyObject>();
        ffi::Py_DECREF(code);
        let line = ffi::PyFrame_GetLineNumber(frame);
        (code, u32::try_from(line).unwrap_or(0))
    }
}

/// Rebuilds the shadow stack from `frame` (the innermost) outwards.
///
/// # Safety
/// `frame` is null or a live frame, and the GIL is held.
unsafe fn resync(t: &Thread, frame: *mut ffi::PyFrameObject) {
    let mut innermost_first = [NO_FRAME; DEPTH];
    let mut count = 0;
    let mut current = frame;
    if !current.is_null() {
        // SAFETY: a new reference of our own, dropped below as we walk.
        unsafe { ffi::Py_INCREF(current.cast()) };
    }
    while !current.is_null() {
        if count < DEPTH {
            // SAFETY: `current` is alive (we hold a reference) and the GIL is held.
            let (code, line) = unsafe { frame_of(current) };
            innermost_first[count] = Frame {
                code: code as usize,
                line,
                kind: kind_of(code),
            };
            count += 1;
        }
        // SAFETY: as above; PyFrame_GetBack returns a new reference or null.
        let back = unsafe { ffi::PyFrame_GetBack(current) };
        unsafe { ffi::Py_DECREF(current.cast()) };
        current = if count < DEPTH { back } else { ptr::null_mut() };
        if count >= DEPTH && !back.is_null() {
            unsafe { ffi::Py_DECREF(back.cast()) };
        }
    }
    for (k, frame) in innermost_first[..count].iter().rev().enumerate() {
        t.frames[k].set(*frame);
    }
    t.depth.set(count);
}

/// The C-level trace function: keeps the thread's shadow stack (pushed at a call, its line
/// moved at each line, popped at a return). A stack that does not match the running frame (a
/// greenlet switched, the stack was deeper than [`DEPTH`]) is rebuilt from the frame.
unsafe extern "C" fn trace(
    _arg: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    what: c_int,
    _value: *mut ffi::PyObject,
) -> c_int {
    let _ = THREAD.try_with(|t| {
        t.quiet.set(t.quiet.get() + 1);
        // SAFETY: the interpreter calls a trace function with the running frame and the GIL.
        let (code, line) = unsafe { frame_of(frame) };
        let depth = t.depth.get();
        let top = (depth > 0).then(|| t.frames[depth - 1].get());
        let on_top = top.is_some_and(|top| top.code == code as usize);
        match what {
            ffi::PyTrace_CALL if depth < DEPTH => {
                t.frames[depth].set(Frame {
                    code: code as usize,
                    line,
                    kind: kind_of(code),
                });
                t.depth.set(depth + 1);
            }
            ffi::PyTrace_LINE if on_top => {
                let mut frame = t.frames[depth - 1].get();
                frame.line = line;
                t.frames[depth - 1].set(frame);
            }
            ffi::PyTrace_RETURN if on_top => t.depth.set(depth - 1),
            ffi::PyTrace_RETURN => {
                // SAFETY: as above; a new reference or null, dropped after the rebuild.
                let back = unsafe { ffi::PyFrame_GetBack(frame) };
                unsafe { resync(t, back) };
                if !back.is_null() {
                    unsafe { ffi::Py_DECREF(back.cast()) };
                }
            }
            ffi::PyTrace_CALL | ffi::PyTrace_LINE => unsafe { resync(t, frame) },
            _ => {}
        }
        t.quiet.set(t.quiet.get() - 1);
    });
    0
}

/// Starts recording: `own` are leakcheck's own files, `installed` the prefixes of the standard
/// library and installed packages (beside any `site-packages` folder). The caller restores any
/// Python trace function of its own after [`recorder_stop`].
#[pyfunction]
pub fn recorder_start(own: &Bound<'_, PySet>, installed: Vec<String>) -> PyResult<()> {
    let mut session = SESSION.lock().unwrap_or_else(|poison| poison.into_inner());
    if session.is_some() {
        return Err(PyRuntimeError::new_err("the malloc recorder already runs"));
    }
    let own = own
        .iter()
        .map(|file| file.extract::<String>())
        .collect::<PyResult<Vec<_>>>()?;
    *session = Some(Session {
        kinds: HashMap::new(),
        codes: Vec::new(),
        own,
        installed,
    });
    drop(session);
    {
        let mut table = TABLE.lock().unwrap_or_else(|poison| poison.into_inner());
        let slots = Table::map(CAPACITY);
        if slots.is_null() {
            *SESSION.lock().unwrap_or_else(|poison| poison.into_inner()) = None;
            return Err(PyRuntimeError::new_err(
                "the malloc recorder could not map its table",
            ));
        }
        *table = Table {
            slots,
            capacity: CAPACITY,
            used: 0,
            live: 0,
        };
    }
    // SAFETY: the GIL is held; each wrapper calls the allocator it replaces, which
    // PyMem_SetAllocator allows after initialisation. `ORIGINAL` is written before the
    // wrappers that read it are installed.
    unsafe {
        let original = &raw mut ORIGINAL;
        for (k, domain) in DOMAINS.into_iter().enumerate() {
            let entry = (&raw mut (*original)[k]).cast::<ffi::PyMemAllocatorEx>();
            ffi::PyMem_GetAllocator(domain, entry);
            let mut wrapper = ffi::PyMemAllocatorEx {
                ctx: entry.cast(),
                malloc: Some(python_malloc),
                calloc: Some(python_calloc),
                realloc: Some(python_realloc),
                free: Some(python_free),
            };
            ffi::PyMem_SetAllocator(domain, &mut wrapper);
        }
        let arena = &raw mut ORIGINAL_ARENA;
        ffi::PyObject_GetArenaAllocator(arena);
        let mut wrapper = ffi::PyObjectArenaAllocator {
            ctx: arena.cast(),
            alloc: Some(arena_alloc),
            free: Some(arena_free),
        };
        ffi::PyObject_SetArenaAllocator(&mut wrapper);
        THREAD.with(|t| {
            t.quiet.set(t.quiet.get() + 1);
            resync(t, ffi::PyEval_GetFrame());
            t.quiet.set(t.quiet.get() - 1);
        });
        ffi::PyEval_SetTrace(Some(trace), ptr::null_mut());
    }
    RECORDING.store(true, Ordering::SeqCst);
    Ok(())
}

/// Stops recording and returns the blocks still alive by site, largest first: each site
/// `(code or None, line, caller code or None, caller line, bytes, blocks)`.
#[pyfunction]
pub fn recorder_stop(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    RECORDING.store(false, Ordering::SeqCst);
    // SAFETY: the GIL is held; the wrappers are replaced by the allocators they wrapped.
    unsafe {
        ffi::PyEval_SetTrace(None, ptr::null_mut());
        let original = &raw mut ORIGINAL;
        for (k, domain) in DOMAINS.into_iter().enumerate() {
            let mut entry = (*original)[k];
            if entry.malloc.is_some() {
                ffi::PyMem_SetAllocator(domain, &mut entry);
            }
        }
        let mut arena = ORIGINAL_ARENA;
        if arena.alloc.is_some() {
            ffi::PyObject_SetArenaAllocator(&mut arena);
        }
    }
    THREAD.with(|t| t.depth.set(0));
    let mut sites: HashMap<(usize, u32, usize, u32), (usize, usize)> = HashMap::new();
    {
        let mut table = TABLE.lock().unwrap_or_else(|poison| poison.into_inner());
        for slot in table.slots().iter().filter(|slot| slot.block > TOMBSTONE) {
            let site = sites
                .entry((slot.code, slot.line, slot.caller, slot.caller_line))
                .or_default();
            site.0 += slot.size;
            site.1 += 1;
        }
        table.unmap();
    }
    let session = SESSION
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .take();
    let Some(session) = session else {
        return Err(PyRuntimeError::new_err(
            "the malloc recorder was not started",
        ));
    };
    let codes: HashMap<usize, &Py<PyAny>> = session
        .codes
        .iter()
        .map(|code| (code.as_ptr() as usize, code))
        .collect();
    let code = |address: usize| -> Bound<'_, PyAny> {
        codes
            .get(&address)
            .map_or_else(|| py.None().into_bound(py), |code| code.bind(py).clone())
    };
    let mut sorted: Vec<_> = sites.into_iter().collect();
    sorted.sort_by_key(|site| std::cmp::Reverse(site.1.0));
    let list = PyList::empty(py);
    for ((innermost, line, caller, caller_line), (bytes, blocks)) in sorted {
        list.append(PyTuple::new(
            py,
            [
                code(innermost),
                line.into_pyobject(py)?.into_any(),
                code(caller),
                caller_line.into_pyobject(py)?.into_any(),
                bytes.into_pyobject(py)?.into_any(),
                blocks.into_pyobject(py)?.into_any(),
            ],
        )?)?;
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(block: usize, size: usize) -> Slot {
        Slot {
            block,
            size,
            code: 0,
            line: 0,
            caller_line: 0,
            caller: 0,
        }
    }

    fn live(table: &mut Table) -> Vec<(usize, usize)> {
        let mut blocks: Vec<_> = table
            .slots()
            .iter()
            .filter(|slot| slot.block > TOMBSTONE)
            .map(|slot| (slot.block, slot.size))
            .collect();
        blocks.sort_unstable();
        blocks
    }

    /// Blocks freed and taken again, at addresses that collide, and more than the table holds:
    /// it grows, and keeps exactly the blocks not freed, each once.
    #[test]
    fn the_table_keeps_the_blocks_not_freed_through_churn_and_growth() {
        let mut table = Table {
            slots: Table::map(16),
            capacity: 16,
            used: 0,
            live: 0,
        };
        for round in 0..50usize {
            for k in 0..8usize {
                table.insert(slot(0x1000 + 16 * k, round));
            }
            for k in 0..8usize {
                assert!(table.remove(0x1000 + 16 * k));
            }
        }
        assert!(!table.remove(0x1000), "a freed block is found again");
        let kept: Vec<_> = (0..40usize).map(|k| (0x10_0000 + 4096 * k, k)).collect();
        for (block, size) in &kept {
            table.insert(slot(*block, *size));
        }
        // Taken again without a free the recorder saw: counted once, with its new size.
        table.insert(slot(kept[3].0, 99));
        assert!(table.capacity >= 64, "capacity {}", table.capacity);
        let mut expected = kept.clone();
        expected[3].1 = 99;
        assert_eq!(live(&mut table), expected);
        assert_eq!(table.live, 40);
        table.unmap();
    }
}
