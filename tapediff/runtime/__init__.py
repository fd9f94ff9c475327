"""The C runtime: compile generated C with cffi, cache the builds on disk, load them.

Code generators call :func:`load_or_build` with a C source and its cdef and
get back a loaded ``(ffi, lib)``; everything else here is for inspection and
maintenance. Without a usable compiler (see :func:`compiler_available`)
compiling raises :class:`CompilerUnavailable` and callers stay on the NumPy
interpreter.

Environment variables: ``TAPEDIFF_CACHE_DIR`` (where builds are cached),
``TAPEDIFF_DEBUG=1`` (print generated sources), ``TAPEDIFF_DISABLE_C=1`` (never
compile), and the usual ``CC``/``CFLAGS``/``LDFLAGS`` read by setuptools.

Examples
--------
>>> from tapediff import runtime
>>> sorted(runtime.cache_info())
['bytes', 'dir', 'entries', 'this_process']
"""
from .cache import cache_dir, cache_info, cache_key, clear_cache, load_or_build
from .compiler import DEFAULT_COMPILE_ARGS, compile_c, compiler_available, compiler_status
from .errors import CacheDirWarning, CompileError, CompilerUnavailable

__all__ = ["load_or_build", "compile_c", "compiler_available", "compiler_status",
           "cache_dir", "cache_info", "cache_key", "clear_cache", "DEFAULT_COMPILE_ARGS",
           "CompileError", "CompilerUnavailable", "CacheDirWarning"]
