"""The C argument test of compiled tapes' repeated-call paths.

:func:`checker` returns ``check(dims, dtypes, *arrays) -> bool``, a builtin
function made from ``csrc/tapediff_argcheck.h`` (see there for what it
tests), or None where it cannot be built: the call paths then test their
arguments in Python, as before. :func:`spec` encodes the expected shapes.

The function is compiled through the module cache like a tape (built once
per machine, keyed by the NumPy version too, whose C API it uses), and made
a Python function with ``PyCFunction_NewEx`` from the address of its method
definition, which the cffi module returns: a cffi call releases the GIL
and passes no Python objects, a builtin function does both.
"""
import ctypes
import functools
import logging
import sys

import numpy as np

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def checker():
    """The builtin ``check(dims, dtypes, *arrays)``, or None (no compiler,
    a build error, not CPython)."""
    if sys.implementation.name != "cpython":
        return None
    from .cache import load_or_build
    from .compiler import compiler_available
    from .errors import CompileError
    if not compiler_available():
        return None
    # (the NumPy version in the source keys the cache on it)
    source = f'/* numpy {np.__version__} */\n#include "tapediff_argcheck.h"\n'
    try:
        ffi, lib = load_or_build(source, "void *td_argcheck_def(void);",
                                 name_hint="argcheck",
                                 extra_compile_args=("-D_CFFI_NO_LIMITED_API", "-O2"),
                                 include_dirs=(np.get_include(),))
    except CompileError as e:
        logger.warning("tapediff: the C argument check did not build; call paths test "
                       "their arguments in Python: %s", e)
        return None
    new = ctypes.pythonapi.PyCFunction_NewEx
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    # (no self, no module: a plain builtin function; the library stays
    # loaded, the module cache holds it for the process)
    return new(int(ffi.cast("uintptr_t", lib.td_argcheck_def())), None, None)


def spec(shapes, dtypes, writeable=False):
    """``(dims, dtypes)``: the first two arguments of ``check`` for arrays of
    these shapes and dtypes."""
    words = []
    for s in shapes:
        words.append(len(s))
        words.extend(s)
    words.append(1 if writeable else 0)
    return np.array(words, np.int64).tobytes(), tuple(np.dtype(d) for d in dtypes)
