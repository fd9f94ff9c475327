"""Exception and warning classes of the C runtime layer.

They live here rather than in :mod:`tapediff.errors` so that the runtime
layer can be developed without touching the core package; both error
classes derive from :class:`tapediff.errors.TapediffError`, so
``except tapediff.TapediffError`` catches them too.
"""
from ..errors import TapediffError


class CompileError(TapediffError, RuntimeError):
    """A generated C module failed to compile, link or load.

    The message holds the compiler's output and the C source with line
    numbers; the compiler's own diagnostics name lines of that listing
    (``td.c:12:5: error: ...``), not lines of cffi's wrapper file. The same
    pieces are available as attributes:

    Attributes
    ----------
    source : str
        The C source given to the compiler (without cffi's wrapper).
    compiler_output : str
        What the compiler wrote to stderr (may be empty when the failure
        happened while loading the built module).

    Fix the generator (or the hand-written C) at the line the compiler
    names. Set ``TAPEDIFF_DEBUG=1`` to print every generated source before it
    is compiled, or ``TAPEDIFF_DISABLE_C=1`` to run without compiled code.
    """

    def __init__(self, message, *, source="", compiler_output=""):
        super().__init__(message)
        self.source = source
        self.compiler_output = compiler_output


class CompilerUnavailable(CompileError):
    """No usable C toolchain: C compilation was requested but cannot run.

    The message gives the reason (no compiler on ``PATH``, ``CC`` pointing
    nowhere, missing Python headers, setuptools not installed, or
    ``TAPEDIFF_DISABLE_C=1``). Check
    :func:`tapediff.runtime.compiler_available` before compiling to fall back
    to the NumPy interpreter instead; install a C compiler (``gcc`` or
    ``clang``), the Python development headers and ``setuptools`` to enable
    compiled code.
    """


class CacheDirWarning(UserWarning):
    """The compile cache directory is unusable or not private, so tapediff avoids it.

    A directory owned by another user, or writable by group or others, would
    let someone else plant a shared library that this process then loads
    and runs; a directory that cannot be created cannot hold anything.
    tapediff warns once and caches in a private temporary directory for the
    rest of the process (compiled modules are then rebuilt by every new
    process). Fix the directory's permissions (``chmod 700 DIR``) or point
    ``TAPEDIFF_CACHE_DIR`` at a directory you own.
    """
