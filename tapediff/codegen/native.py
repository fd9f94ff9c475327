"""Compiled tapes as callables: build the C module, pass pointers, run.

:class:`NativeTape` lowers one tape (:mod:`.lower`), and :func:`build`
compiles any number of them into one cffi module (loaded once; cached on disk
by :mod:`tapediff.runtime`). A call hands the input and output arrays to the
entry point as pointer tables together with the tape's run-time tables (sizes
in ``P``, constants in ``K``) and a per-thread workspace; the C code runs with
the GIL released.
"""
import ctypes
import functools
import glob
import hashlib
import os
import sys
import threading
import weakref

import numpy as np

from ..runtime import load_or_build
from .lower import Lowering, Tables
from .values import np_dtype

_SIG = "(const int64_t *P, char *W, const char *K, void *const *I, void *const *O)"
#: scipy's BLAS/LAPACK wrappers compiled code calls, in csrc/tapediff.h's td_blas_t order
_BLAS_NAMES = [("cython_blas", "dgemm"), ("cython_blas", "sgemm")] + [
    ("cython_lapack", "d" + f)
    for f in ("getrf", "getrs", "potrf", "trtrs", "syevd", "gesdd", "geqrf", "orgqr")]
_blas_ptrs = None
_init_lock = threading.Lock()
_initialised = set()


def _blas_pointers():
    """Addresses of scipy's BLAS/LAPACK wrappers (nogil, LP64), read once from
    the capsules scipy exports; the capsule name is the C signature."""
    global _blas_ptrs
    if _blas_ptrs is None:
        import scipy.linalg.cython_blas as cb
        import scipy.linalg.cython_lapack as cl
        mods = {"cython_blas": cb, "cython_lapack": cl}
        get = ctypes.pythonapi.PyCapsule_GetPointer
        get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        name = ctypes.pythonapi.PyCapsule_GetName
        name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        ptrs = []
        for mod, fn in _BLAS_NAMES:
            cap = mods[mod].__pyx_capi__[fn]
            ptrs.append(get(cap, name(cap)))
        _blas_ptrs = ptrs
    return _blas_ptrs


def _single_threaded_blas():
    """Run scipy's OpenBLAS (the one compiled tapes call) on one thread, unless
    the user chose a thread count (``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``)
    or ``TAPEDIFF_BLAS_THREADS``.

    NumPy and scipy each bundle an OpenBLAS with its own thread pool; when
    calls alternate between them (NumPy code around a compiled call), each
    pool's spinning workers starve the other's: an MLP step measured 10-20 ms
    instead of 0.6 ms on 2 cores. One thread for the compiled side avoids that.
    """
    n = os.environ.get("TAPEDIFF_BLAS_THREADS")
    if n is None and ("OPENBLAS_NUM_THREADS" in os.environ or "OMP_NUM_THREADS" in os.environ):
        return
    import scipy
    here = os.path.join(os.path.dirname(scipy.__file__), os.pardir, "scipy.libs")
    for path in glob.glob(os.path.join(here, "libscipy_openblas*.so")):
        try:
            fn = ctypes.CDLL(path).scipy_openblas_set_num_threads
        except (OSError, AttributeError):
            continue
        fn(int(n) if n else 1)


class NativeTape:
    """A tape lowered to a C function (not yet compiled: see :func:`build`).

    ``donate`` maps output positions to input positions whose array the caller
    passes as that output too (updated in place; see ``Lowering``).

    Raises :class:`~tapediff.codegen.lower.Unsupported` when an instruction
    has no C lowering.
    """

    def __init__(self, tape, donate=None):
        from ..passes.dce import compact
        tape = compact(tape)      # e.g. a nested gradient's own forward, unused
        tab = Tables()
        low = Lowering(tape, "@FN@", tab, donate=donate)
        text = "\n".join(low.helpers + [low.text])
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        self.name = f"td_{digest}"
        self.text = text.replace("@FN@", self.name)
        self.P = np.array(tab.P or [0], dtype=np.int64)
        self.K = np.frombuffer(bytes(tab.K) + b"\0" * 8, dtype=np.uint8).copy()
        self.ws_bytes = max(low.arena_bytes, 64)
        self.trip_params = low.trip_params
        self.in_specs = [(tape.shape(s), np_dtype(tape.dtype(s))) for s in tape.inputs]
        self.out_specs = [(tape.shape(s), np_dtype(tape.dtype(s))) for s in tape.outputs]
        self.fn = None
        self._local = threading.local()

    def bind(self, ffi, lib):
        self.ffi = ffi
        self.fn = getattr(lib, self.name)
        self._P = ffi.cast("int64_t *", ffi.from_buffer(self.P))
        self._K = ffi.cast("char *", ffi.from_buffer(self.K))

    def _thread_state(self):
        try:
            return self._local.state
        except AttributeError:
            st = self._local.state = _ThreadState(self)
            return st

    def new_outputs(self):
        return [np.empty(shape, dt) for shape, dt in self.out_specs]

    def result_outputs(self):
        """Output arrays for a call whose results are handed back with 0-d ones
        read out as NumPy scalars (copies): those buffers are this thread's
        own and serve every call, so a loss value costs no allocation.

        The other results come from a small per-thread pool: a set of arrays
        is handed out again once nothing but the pool refers to them (the
        caller dropped the last results; see ``_OutputSet.free``), with its
        pointers already bound. An optimizer loop that keeps only the latest
        gradients thus allocates nothing per call. When every set is still
        referenced, new arrays are made. Do not modify the returned list."""
        st = self._thread_state()
        for s in st.pool:
            if s.free():
                return st.take(s)
        if len(st.pool) < _pool_sets():
            s = _OutputSet.of(self, st)
            st.pool.append(s)
            return st.take(s)
        return st.new_outputs()

    def call(self, inputs, outputs, trips=None):
        """Run on ``inputs`` (C-contiguous, native byte order, the recorded
        dtypes) writing ``outputs``; returns the C status (0, or 1 when a guard
        failed, or a negative numeric failure code). ``trips`` replaces the
        trip count of the tape's first loop (``advance``: any k, one module).

        An array that is not C-contiguous raises ValueError (from
        ``ffi.from_buffer``) before anything runs."""
        st = self._thread_state()
        P = self._P
        if trips is not None:
            st.P = self.P.copy()             # per thread: the shared table stays as recorded
            st.P[self.trip_params[0]] = trips
            P = self.ffi.cast("int64_t *", self.ffi.from_buffer(st.P))
        # A pointer stays in the table while the array it came from is the
        # one passed again (held in ``st.objs``, so it cannot be freed and its
        # address reused): a training loop re-sets only its batch's pointers.
        fb = self.ffi.from_buffer
        I, objs, bufs = st.I, st.objs, st.bufs
        k = 0
        # (objs[k] is cleared first: a KeyboardInterrupt between two of these
        # statements must not leave a pointer that an old object vouches for)
        for x in inputs:
            if x is not objs[k]:
                objs[k] = None
                I[k] = bufs[k] = fb(x)
                objs[k] = x
            k += 1
        if outputs is not st.taken:         # (result_outputs bound a pooled set)
            st.bind_outputs(outputs)
        return self.fn(P, st.W, self._K, I, st.O)

    def inline_call(self, src, leaves, outputs=None):
        """Append to the generated function ``src`` (a ``fastpath._Source``)
        what :meth:`result_outputs` and :meth:`call` do, unrolled for this
        tape: run it on the input expressions ``leaves`` (names of arrays as
        :meth:`call` takes them; NumPy scalars too), leaving the output list
        in ``outs``; a status other than 0 returns None. ``outputs``: the
        expressions of the output arrays (``st`` is the thread state), or
        None for outputs from this thread's pool.

        One generated function per call path saves the Python calls and loops
        of the general route (measured in ``fastpath``'s docstring)."""
        c = src.const
        lines = src.lines
        lines += ["try:", f"    st = {c(self._local)}.state",
                  "except AttributeError:", f"    st = {c(self._thread_state)}()",
                  "objs, bufs = st.objs, st.bufs"]
        fb = c(self.ffi.from_buffer)
        if outputs is None:
            self._inline_pool(src)
        else:
            lines += ["st.taken = None", "O = st.O", f"outs = [{', '.join(outputs)}]"]
            n = len(self.in_specs)
            for k in range(len(outputs)):
                lines += _rebind(f"outs[{k}]", n + k, f"O[{k}]",
                                 f"{fb}(outs[{k}], require_writable=True)")
        if leaves:
            lines.append("I = st.I")
        for k, x in enumerate(leaves):
            lines += _rebind(x, k, f"I[{k}]", f"{fb}({x})")
        lines.append(f"if {c(self.fn)}({c(self._P)}, st.W, {c(self._K)}, st.I, st.O): return None")

    def _inline_pool(self, src):
        """``outs``: a free set of this thread's pool, bound (as result_outputs)."""
        src.env.update(_rc=sys.getrefcount, _wr=weakref.getweakrefcount)
        n_pooled = sum(shape != () for shape, _ in self.out_specs)   # (as _OutputSet.of)
        # the pool's test, in the text _counter compiles: the counts it
        # recorded are those this code sees (see _OutputSet)
        unpack, counts, weak = _count_source(n_pooled, "s")
        src.lines += ["for s in st.pool:"] + [f"    {ln}" for ln in unpack] + [
            f"    if {counts} == s.counts and not ({weak}):",
            "        outs = s.outs",
            "        if st.taken is not outs:",
            "            st.take(s)",
            "        break",
            "else:",
            f"    outs = {src.const(self.result_outputs)}()",
            "    if outs is not st.taken:",
            "        st.bind_outputs(outs)"]


def _rebind(x, k, slot, make):
    """Lines that put a new pointer for ``x`` (made by ``make``) in the table
    entry ``slot`` unless ``x`` is the object whose pointer is there (entry
    ``k`` of ``st.objs``/``st.bufs``; see :meth:`NativeTape.call`)."""
    return [f"if {x} is not objs[{k}]:",
            f"    objs[{k}] = None",
            f"    {slot} = bufs[{k}] = {make}",
            f"    objs[{k}] = {x}"]


class _ThreadState:
    """One thread's workspace and pointer tables for a NativeTape (calls from
    several threads run at once, each on its own)."""

    __slots__ = ("ws", "W", "I", "O", "n_in", "objs", "bufs", "template", "fresh", "P",
                 "pool", "taken", "fb")

    def __init__(self, nt):
        ffi = nt.ffi
        self.fb = ffi.from_buffer
        self.ws = np.empty(nt.ws_bytes, np.uint8)
        self.W = ffi.cast("char *", ffi.from_buffer(self.ws))
        self.I = ffi.new("void *[]", max(len(nt.in_specs), 1))
        self.O = ffi.new("void *[]", max(len(nt.out_specs), 1))
        self.n_in = len(nt.in_specs)
        self.objs = [None] * (len(nt.in_specs) + len(nt.out_specs))
        self.bufs = [None] * len(self.objs)
        # result_outputs: 0-d results in this thread's own buffers, the rest new
        self.template = [np.empty((), dt) if shape == () else None
                         for shape, dt in nt.out_specs]
        self.fresh = [(k, shape, dt) for k, (shape, dt) in enumerate(nt.out_specs)
                      if shape != ()]
        self.pool = []
        self.taken = None        # the output list whose pointers are in O

    def new_outputs(self):
        """Output arrays: this thread's 0-d buffers, the other results new."""
        outs = self.template.copy()
        for k, shape, dt in self.fresh:
            outs[k] = np.empty(shape, dt)
        return outs

    def take(self, s):
        """Bind pooled set ``s`` as the outputs (its pointers were made once)."""
        if self.taken is not s.outs:
            self.taken = None    # (first: an interrupt below must not leave O vouched for)
            O = self.O
            for k, b in enumerate(s.bufs):
                O[k] = b
            n = self.n_in        # the identity cache no longer describes O
            for k in range(len(s.outs)):
                self.objs[n + k] = self.bufs[n + k] = None
            self.taken = s.outs
        return s.outs

    def bind_outputs(self, outputs):
        """Put the pointers of ``outputs`` in O (those of the arrays bound last
        time are kept)."""
        self.taken, k, n, O = None, 0, self.n_in, self.O
        objs, bufs, fb = self.objs, self.bufs, self.fb
        for o in outputs:
            if o is not objs[n + k]:
                objs[n + k] = None
                O[k] = bufs[n + k] = fb(o, require_writable=True)
                objs[n + k] = o
            k += 1


class _OutputSet:
    """Result arrays that are handed out again once the caller has let go of them.

    CPython frees an object when its reference count drops to zero; while only
    the pool holds an array, its count is the one measured when the set was
    made (the set's list and its cffi buffer), and nothing else can read it.
    A weak reference would see it change, so an array with one is never
    reused. The counts are recorded by the code that later compares them;
    :func:`_pool_sets` turns the pool off where that code would not see an
    added reference (and on a free-threaded Python).

    Not covered: code that calls the same compiled tape on the same thread
    between ``result_outputs`` and the native call (a finalizer run by the
    garbage collector, a signal handler) could be handed the same set."""

    __slots__ = ("outs", "bufs", "arrays", "counts")

    def __init__(self, outs, bufs, arrays):
        self.outs, self.bufs, self.arrays = outs, bufs, arrays
        self.counts = _counter(len(arrays))(self)[0]   # read by the code free() runs

    @classmethod
    def of(cls, nt, st):
        """A set of ``nt``'s outputs for thread state ``st``, pointers bound."""
        outs = st.new_outputs()
        return cls(outs, [nt.ffi.from_buffer(o, require_writable=True) for o in outs],
                   [outs[k] for k, _, _ in st.fresh])

    def free(self):
        counts, weak = _counter(len(self.arrays))(self)
        return counts == self.counts and not weak


def _count_source(n, s):
    """The code that reads the reference counts of pooled set ``s``'s ``n``
    arrays: unpacking lines, the counts' tuple and the weak-reference test.
    ``_counter`` and ``NativeTape.inline_call`` both run this text, so a count
    recorded by one is what the other sees for an array nobody else holds."""
    names = [f"a{k}" for k in range(n)]
    unpack = [f"{', '.join(names)}, = {s}.arrays"] if n else []
    counts = "(" + "".join(f"_rc({a}), " for a in names) + ")"
    weak = " or ".join(f"_wr({a})" for a in names) or "False"
    return unpack, counts, weak


@functools.lru_cache(maxsize=None)
def _counter(n):
    """``f(s)``: the reference counts of pooled set ``s``'s ``n`` arrays, and
    whether one has a weak reference."""
    unpack, counts, weak = _count_source(n, "s")
    src = "\n".join(["def count(s):"] + [f"    {ln}" for ln in unpack]
                     + [f"    return {counts}, {weak}"])
    env = {"_rc": sys.getrefcount, "_wr": weakref.getweakrefcount}
    exec(compile(src, "<tapediff pool count>", "exec"), env)
    return env["count"]


@functools.lru_cache(maxsize=None)
def _pool_sets():
    """Result sets per thread (the caller may hold the last one or two): 3,
    or 0 where reference counts cannot be read as the pool reads them: a
    free-threaded Python, or an interpreter where a set does not see one
    added reference (checked once, on a probe set)."""
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        return 0
    a = np.empty(1)
    probe = _OutputSet([a], [], [a])
    held = [a]                      # the reference free() must see
    seen = not probe.free()
    held.clear()
    return 3 if seen and probe.free() else 0


def build(tapes, name_hint="tape"):
    """Compile ``tapes`` (NativeTape objects) into one module and bind them.

    Tapes with the same structure share one function, so recording another
    batch size re-uses the module already loaded."""
    seen = {}
    for t in tapes:
        seen.setdefault(t.name, t.text)
    source = '#include "tapediff.h"\n\nint td_init(void **p) { return td_init_blas(p); }\n\n'
    source += "\n".join(seen[n] for n in sorted(seen))
    cdef = "int td_init(void **p);\n" + "".join(f"int {n}{_SIG};\n" for n in sorted(seen))
    ffi, lib = load_or_build(source, cdef, name_hint=name_hint)
    with _init_lock:
        if id(lib) not in _initialised:
            ptrs = _blas_pointers()
            _single_threaded_blas()
            arr = ffi.new("void *[]", [ffi.cast("void *", p) for p in ptrs])
            if lib.td_init(arr) != 0:
                raise RuntimeError("scipy's BLAS/LAPACK pointers are missing")
            _initialised.add(id(lib))
    for t in tapes:
        t.bind(ffi, lib)
    return ffi, lib
