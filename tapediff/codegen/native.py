"""Compiled tapes as callables: build the C module, pass pointers, run.

:class:`NativeTape` lowers one tape (:mod:`.lower`), and :func:`build`
compiles any number of them into one cffi module (loaded once; cached on disk
by :mod:`tapediff.runtime`). A call hands the input and output arrays to the
entry point as pointer tables together with the tape's run-time tables (sizes
in ``P``, constants in ``K``) and a per-thread workspace; the C code runs with
the GIL released.
"""
import ctypes
import glob
import hashlib
import os
import threading

import numpy as np

from ..runtime import load_or_build
from .lower import Lowering, Tables
from .values import np_dtype

_SIG = "(const int64_t *P, char *W, const char *K, void *const *I, void *const *O)"
_BLAS_NAMES = [("cython_blas", "dgemm"), ("cython_blas", "sgemm"), ("cython_lapack", "dgetrf"),
               ("cython_lapack", "dgetrs"), ("cython_lapack", "dpotrf"), ("cython_lapack", "dtrtrs")]
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
        st = self._local
        if not hasattr(st, "W"):
            ffi = self.ffi
            st.ws = np.empty(self.ws_bytes, np.uint8)
            st.W = ffi.cast("char *", ffi.from_buffer(st.ws))
            st.I = ffi.new("void *[]", max(len(self.in_specs), 1))
            st.O = ffi.new("void *[]", max(len(self.out_specs), 1))
            st.objs = [None] * (len(self.in_specs) + len(self.out_specs))
            st.bufs = [None] * len(st.objs)
            st.scalars = [np.empty((), dt) if shape == () else None
                          for shape, dt in self.out_specs]
        return st

    def new_outputs(self):
        return [np.empty(shape, dt) for shape, dt in self.out_specs]

    def result_outputs(self):
        """Output arrays for a call whose results are handed back with 0-d ones
        read out as NumPy scalars (copies): those buffers are this thread's
        own and serve every call, so the call need not bind new ones (a
        loss value costs no allocation); the other results are new arrays."""
        sc = self._thread_state().scalars
        return [np.empty(shape, dt) if sc[k] is None else sc[k]
                for k, (shape, dt) in enumerate(self.out_specs)]

    def scalar_output(self, k):
        """This thread's reused buffer for 0-d result ``k`` (see result_outputs)."""
        return self._thread_state().scalars[k]

    def call(self, inputs, outputs, trips=None):
        """Run on ``inputs`` (C-contiguous, native byte order, the recorded
        dtypes) writing ``outputs``; returns the C status (0, or 1 when a guard
        failed, or a negative numeric failure code). ``trips`` replaces the
        trip count of the tape's first loop (``advance``: any k, one module)."""
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
        I, O, objs, bufs = st.I, st.O, st.objs, st.bufs
        for k, x in enumerate(inputs):
            if x is not objs[k]:
                b = fb(x)
                I[k] = b
                objs[k], bufs[k] = x, b
        n = len(inputs)
        for k, o in enumerate(outputs):
            if o is not objs[n + k]:
                b = fb(o, require_writable=True)
                O[k] = b
                objs[n + k], bufs[n + k] = o, b
        return self.fn(P, st.W, self._K, I, O)


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
