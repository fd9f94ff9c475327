"""Compile C sources into cffi extension modules and load them by path.

This is the lowest layer of the C backend: it turns a C source plus a cdef
(the declarations Python may call) into a loaded cffi module, using cffi's
API mode (``FFI.set_source`` + ``FFI.compile``). It knows nothing about tapes;
the code generator renders the C, :mod:`tapediff.runtime.cache` decides
whether a build is needed, and this module builds and loads.

Modules are loaded from their file path with :mod:`importlib` machinery, not
imported from :data:`sys.path`, so a process may load many of them (one per
program structure) from wherever they were built. Each is named after its
content (``_td_<hint>_<digest>``); cffi registers that name in
:data:`sys.modules`, where two different modules therefore never collide.

Flags
-----
Every build uses :data:`DEFAULT_COMPILE_ARGS` (``-O3 -march=native
-fopenmp-simd -fno-math-errno -ffp-contract=off -fno-trapping-math``) followed by the caller's
extra flags, so a later flag overrides a default (``-O0``,
``-ffp-contract=fast``). ``-ffast-math`` is deliberately absent: it assumes no
NaN/inf and reassociates sums, which would break NaN propagation and
agreement with the NumPy interpreter; for the same agreement, multiplies and
adds are not fused into FMA instructions. Vector math
comes from glibc's libmvec instead: generated code declares the functions it
wants vectorised with ``#pragma omp declare simd``, and ``-lmvec -lm`` is
linked whenever the toolchain can link libmvec (detected once per process).

Environment
-----------
``TAPEDIFF_DISABLE_C=1``
    :func:`compiler_available` returns False and compiling raises
    :class:`~tapediff.runtime.errors.CompilerUnavailable`.
``TAPEDIFF_DEBUG=1``
    Print every C source, with line numbers, to stderr before it is built.
``CC``, ``CFLAGS``, ``LDFLAGS``, ...
    Read by setuptools as for any extension build; ``CC`` picks the compiler.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.machinery
import importlib.util
import io
import logging
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path

from .errors import CompileError, CompilerUnavailable

__all__ = ["DEFAULT_COMPILE_ARGS", "compile_c", "compiler_available", "compiler_status"]

logger = logging.getLogger(__name__)

#: Flags every build starts with. IEEE semantics are kept (no ``-ffast-math``);
#: ``-fopenmp-simd`` honours ``#pragma omp declare simd`` declarations (libmvec)
#: without pulling in the OpenMP runtime; ``-fno-math-errno`` lets gcc call the
#: vector ``exp``/``log``/``pow`` (errno is never read by generated code).
#: ``-ffp-contract=off`` stops gcc from fusing ``a * x + y`` into one FMA
#: instruction (its default in GNU C when ``-march=native`` has FMA): NumPy
#: rounds the product and the sum separately, and with contraction 29% of the
#: elements of ``2.5 * x + y`` differed from NumPy by an ulp, and ``a*b - c*d``
#: with ``a*b == c*d`` was no longer 0, breaking agreement with the interpreter.
DEFAULT_COMPILE_ARGS = ("-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno",
                        "-ffp-contract=off", "-fno-trapping-math")
# -fno-trapping-math: generated code never reads floating-point exception flags,
# and without it gcc keeps a select such as ``g == 0 ? 0 : g * p`` (the strong
# zeros of every reverse sweep) as a branch, which stopped the fused
# sum(tanh(x)^3) loop from vectorising (36 ms instead of about 9 ms at 10^6).
# Results are unchanged: no rounding, NaN or infinity semantics depend on it.
# On x86-64, -march=native may tune for 128-bit vectors (gcc's znver1 tuning,
# which virtual machines with AMD CPUs report); loops calling libmvec then use
# the 2-lane SSE variants. Asking for 256-bit vectors measured sum(sin(x)) with
# its gradient 1.4x faster on such a machine and is gcc's default elsewhere.
if platform.machine() in ("x86_64", "AMD64"):
    DEFAULT_COMPILE_ARGS += ("-mprefer-vector-width=256",)

# cffi's compile is not thread-safe: it chdir()s into the build directory and
# rewrites os.environ (both process-wide), and we redirect file descriptor 2
# to capture the compiler's diagnostics. One build at a time per process.
_COMPILE_LOCK = threading.Lock()

# How long a probe of the toolchain may take before it counts as failed.
_PROBE_TIMEOUT_S = 60

# Longest listing or compiler output put into an exception message; the full
# source stays available as ``CompileError.source``.
_MAX_LISTING_LINES = 300
_MAX_OUTPUT_LINES = 200

_TRUE = frozenset({"1", "true", "yes", "on"})


def _env_flag(name: str) -> bool:
    """Whether environment variable ``name`` is set to a true value (1/true/yes/on)."""
    return os.environ.get(name, "").strip().lower() in _TRUE


# --------------------------------------------------------------------------
# The toolchain, probed once per process

@dataclasses.dataclass(frozen=True)
class _Toolchain:
    """What one probe of the C toolchain found (see :func:`_toolchain`)."""

    argv: tuple        # the compiler command setuptools will run (CC, split)
    available: bool
    reason: str        # why not available, or a one-line summary when it is
    version: str       # `cc --version` output (part of the cache key)
    target: str        # what -march=native means here (part of the cache key)
    has_libmvec: bool


_toolchain_lock = threading.Lock()
_toolchain_cache: _Toolchain | None = None


def _compiler_argv() -> tuple:
    """The compiler command, resolved the way setuptools' build_ext resolves it."""
    # customize_compiler() takes CC from the environment when set, else from
    # the interpreter's build configuration; CC may carry flags ("gcc -pthread").
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    try:
        return tuple(shlex.split(cc))
    except ValueError:  # unbalanced quotes: let the existence check report it
        return (cc,)


def _toolchain() -> _Toolchain:
    """Probe the toolchain once per process (thread-safe) and remember the answer."""
    global _toolchain_cache
    with _toolchain_lock:
        if _toolchain_cache is None:
            _toolchain_cache = _probe_toolchain()
            logger.debug("C toolchain: %s", _toolchain_cache.reason)
        return _toolchain_cache


def _reset_toolchain() -> None:
    """Forget the probed toolchain (for tests that change ``CC``)."""
    global _toolchain_cache
    with _toolchain_lock:
        _toolchain_cache = None


def _probe_toolchain() -> _Toolchain:
    argv = _compiler_argv()

    def unavailable(reason):
        return _Toolchain(argv, False, reason, "", "", False)

    if os.name != "posix":
        return unavailable(f"compiled C is supported on POSIX systems only, not os.name={os.name!r}")
    if importlib.util.find_spec("cffi") is None:
        return unavailable("cffi is not installed: pip install 'cffi>=1.15'")
    # cffi compiles through setuptools (distutils is gone from Python 3.12).
    if importlib.util.find_spec("setuptools") is None:
        return unavailable("setuptools is not installed (cffi needs it to compile "
                           "C extensions): pip install setuptools")
    source = "CC" if os.environ.get("CC") else "the Python build configuration"
    if not argv or shutil.which(argv[0]) is None:
        cmd = " ".join(argv) or "<empty>"
        return unavailable(f"C compiler {cmd!r} (from {source}) was not found; install "
                           "gcc or clang, or set CC to a working compiler")

    include = sysconfig.get_paths()["include"]
    with tempfile.TemporaryDirectory(prefix="tapediff-probe-") as tmp:
        tmp = Path(tmp)
        (tmp / "probe.c").write_text("#include <Python.h>\nint td_probe(void) { return 0; }\n")
        (tmp / "empty.c").write_text("int td_probe(void) { return 0; }\n")
        # The probes are independent: start them all, then collect (about 50 ms
        # in all instead of the sum).
        commands = {
            "version": [*argv, "--version"],
            # The compiler, the Python headers, the default flags and the
            # linker, as a real build uses them.
            "build": [*argv, *DEFAULT_COMPILE_ARGS, "-fPIC", "-shared", "-I", include,
                      str(tmp / "probe.c"), "-o", str(tmp / "probe.so")],
            "libmvec": [*argv, "-fPIC", "-shared", str(tmp / "empty.c"),
                        "-o", str(tmp / "mvec.so"), "-lmvec", "-lm"],
            # gcc's summary of what -march=native resolves to (clang has no
            # equivalent; then /proc/cpuinfo stands in, see _cpu_features).
            "target": [*argv, "-march=native", "-Q", "--help=target"],
        }
        results = _run_concurrently(commands)

    rc, out = results["version"]
    if rc != 0:
        return unavailable(f"C compiler {' '.join(argv)!r} (from {source}) does not run: "
                           f"`--version` failed: {out.strip()[:500]}")
    version = out.strip()
    rc, out = results["build"]
    if rc != 0:
        return unavailable(
            f"C compiler {' '.join(argv)!r} cannot build a Python extension with the "
            f"default flags {' '.join(DEFAULT_COMPILE_ARGS)} (are the Python development "
            f"headers installed?):\n{out.strip()[:2000]}")
    has_libmvec = results["libmvec"][0] == 0
    rc, out = results["target"]
    target = out.strip() if rc == 0 and out.strip() else _cpu_features()
    first = version.splitlines()[0] if version else argv[0]
    reason = f"{first} ({' '.join(argv)}); libmvec: {'yes' if has_libmvec else 'no'}"
    return _Toolchain(argv, True, reason, version, target, has_libmvec)


def _run_concurrently(commands: dict) -> dict:
    """Run each command of ``{name: argv}`` at once; return ``{name: (rc, output)}``."""
    procs, results = {}, {}
    for name, cmd in commands.items():
        try:
            procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL)
        except OSError as exc:
            results[name] = (-1, str(exc))
    for name, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=_PROBE_TIMEOUT_S)
            results[name] = (proc.returncode, out.decode(errors="replace"))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            results[name] = (-1, f"timed out after {_PROBE_TIMEOUT_S} s")
    return results


def _cpu_features() -> str:
    """The CPU's feature flags, when the compiler cannot say what it targets."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):  # x86, ARM
                    return line.strip()
    except OSError:
        pass
    import platform
    return f"{platform.machine()} {platform.processor()}"


def compiler_available() -> bool:
    """Whether C sources can be compiled in this process.

    False when ``TAPEDIFF_DISABLE_C=1`` is set, when there is no working C
    compiler (``CC`` pointing nowhere included), when it cannot build a Python
    extension (missing headers) or when setuptools is not installed. The
    toolchain is probed once per process (about 50 ms); ``TAPEDIFF_DISABLE_C``
    is read on every call. :func:`compiler_status` says why.

    Returns
    -------
    bool

    Examples
    --------
    >>> from tapediff.runtime import compiler_available
    >>> isinstance(compiler_available(), bool)
    True
    """
    if _env_flag("TAPEDIFF_DISABLE_C"):
        return False
    return _toolchain().available


def compiler_status() -> str:
    """A one-line description of the C toolchain, or why C cannot be compiled.

    Returns
    -------
    str
        When :func:`compiler_available` is True, the compiler's version,
        command and whether libmvec is linked; otherwise the reason and the fix.

    Examples
    --------
    >>> from tapediff.runtime import compiler_available, compiler_status
    >>> status = compiler_status()  # e.g. 'gcc (Debian 12.2.0-14) 12.2.0 (gcc); libmvec: yes'
    >>> compiler_available() == ("libmvec:" in status)
    True
    """
    if _env_flag("TAPEDIFF_DISABLE_C"):
        return "C compilation is disabled by TAPEDIFF_DISABLE_C=1"
    return _toolchain().reason


def _require_compiler() -> _Toolchain:
    """The toolchain, or :class:`CompilerUnavailable` saying why there is none."""
    if _env_flag("TAPEDIFF_DISABLE_C"):
        raise CompilerUnavailable("cannot compile C: disabled by TAPEDIFF_DISABLE_C=1; "
                                  "unset it to use compiled code")
    tc = _toolchain()
    if not tc.available:
        raise CompilerUnavailable(f"cannot compile C: {tc.reason}")
    return tc


# --------------------------------------------------------------------------
# Build options

@functools.lru_cache(maxsize=1)
def _csrc_dir() -> Path | None:
    """The directory of hand-written C that generated code may ``#include``.

    The repository's ``csrc/`` (an editable install or a checkout), else
    ``tapediff/csrc`` (package data, should it ever be shipped that way);
    None when neither exists.
    """
    package = Path(__file__).resolve().parents[1]       # .../tapediff
    repo = package.parent
    # pyproject.toml marks a checkout: an installed tapediff sits in
    # site-packages, whose "csrc" (if any) belongs to someone else.
    if (repo / "pyproject.toml").is_file() and (repo / "csrc").is_dir():
        return repo / "csrc"
    if (package / "csrc").is_dir():
        return package / "csrc"
    return None


@dataclasses.dataclass(frozen=True)
class _Options:
    """Every build input besides source and cdef, fully resolved."""

    name_hint: str
    compile_args: tuple
    libraries: tuple
    include_dirs: tuple
    extra_link_args: tuple

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _resolve_options(name_hint="td", extra_compile_args=(), libraries=(), include_dirs=(),
                     extra_link_args=(), *, toolchain: _Toolchain) -> _Options:
    """Defaults added, paths made absolute: what the build and the cache key see."""
    for arg_name, value in (("extra_compile_args", extra_compile_args),
                            ("libraries", libraries), ("include_dirs", include_dirs),
                            ("extra_link_args", extra_link_args)):
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{arg_name} must be a sequence of strings, not the string "
                            f"{value!r}; write ({value!r},)")
    hint = re.sub(r"[^0-9A-Za-z_]", "_", str(name_hint))[:32] or "td"
    libs = list(libraries)
    # User libraries first: the linker resolves left to right, and libm last
    # is what the vector-math objects in libmvec need.
    libs += ["mvec", "m"] if toolchain.has_libmvec else ["m"]
    # Absolute include paths: cffi compiles with the build directory as cwd.
    incs = [os.path.abspath(os.fspath(p)) for p in include_dirs]
    csrc = _csrc_dir()
    if csrc is not None:
        incs.append(str(csrc))
    return _Options(hint, (*DEFAULT_COMPILE_ARGS, *map(str, extra_compile_args)),
                    tuple(libs), tuple(incs), tuple(map(str, extra_link_args)))


def _module_name(hint: str, digest: str) -> str:
    # The name is compiled into the binary (PyInit_<name>), so it is derived
    # from the content: equal inputs, equal module; different inputs never
    # share a name in one process.
    return f"_td_{hint}_{digest[:16]}"


# --------------------------------------------------------------------------
# Messages

def _numbered(text: str, lines: set | None = None, context: int = 3) -> str:
    """``text`` with right-aligned line numbers; only around ``lines`` when given."""
    rows = text.splitlines()
    width = max(4, len(str(len(rows))))
    if lines is None:
        keep = range(len(rows))
    else:
        wanted = sorted({i for n in lines for i in range(n - 1 - context, n + context)
                         if 0 <= i < len(rows)})
        keep = wanted
    out, prev = [], None
    for i in keep:
        if prev is not None and i != prev + 1:
            out.append(" " * width + " | ...")
        out.append(f"{i + 1:>{width}} | {rows[i]}")
        prev = i
    return "\n".join(out)


def _print_debug(source: str, cdef: str, module_name: str, src_name: str, opts: _Options) -> None:
    """The TAPEDIFF_DEBUG=1 listing of one module, on stderr."""
    bar = "-" * 72
    sys.stderr.write(
        f"{bar}\ntapediff: C source of module {module_name} ({src_name})\n"
        f"flags: {' '.join(opts.compile_args)}; libraries: {' '.join(opts.libraries)}\n{bar}\n"
        f"{_numbered(source)}\n{bar}\ncdef:\n{cdef.strip()}\n{bar}\n")
    sys.stderr.flush()


def _referenced_lines(output: str, filename: str) -> set:
    """Line numbers of ``filename`` that compiler diagnostics refer to."""
    pattern = re.compile(rf"(?:^|[\s/]){re.escape(filename)}:(\d+)(?::\d+)?:", re.MULTILINE)
    return {int(m.group(1)) for m in pattern.finditer(output)}


def _clip(text: str, limit: int) -> str:
    rows = text.rstrip().splitlines()
    if len(rows) <= limit:
        return "\n".join(rows)
    return "\n".join(rows[:limit] + [f"... ({len(rows) - limit} more lines)"])


def _compile_failure(module_name, src_name, source, cdef, output, summary, wrapper_text):
    """The :class:`CompileError` for a failed build, with everything needed to fix it."""
    output = output.strip()
    parts = [f"C compilation of module {module_name} ({src_name}) failed: {summary}"]
    parts.append("Compiler output:\n" + (_clip(output, _MAX_OUTPUT_LINES) if output
                                         else "(none captured)"))
    n_lines = source.count("\n") + 1
    if n_lines <= _MAX_LISTING_LINES:
        parts.append(f"Source ({src_name}):\n{_numbered(source)}")
    else:
        refs = _referenced_lines(output, src_name) or {1}
        parts.append(f"Source ({src_name}, {n_lines} lines; the lines the compiler names):\n"
                     + _numbered(source, refs))
    # Errors in cffi's wrapper (usually a cdef that does not match the
    # definitions in the source) name lines of the wrapper file.
    wrapper_refs = _referenced_lines(output, f"{module_name}.c")
    if wrapper_refs and wrapper_text:
        parts.append(f"cffi wrapper ({module_name}.c), the lines the compiler names:\n"
                     + _numbered(wrapper_text, set(sorted(wrapper_refs)[:5]), context=2))
        parts.append(f"cdef:\n{cdef.strip()}")
    parts.append("Fix the C source (or the cdef) at the line the compiler names; set "
                 "TAPEDIFF_DEBUG=1 to print every generated source, or TAPEDIFF_DISABLE_C=1 "
                 "to run without compiled code.")
    return CompileError("\n\n".join(parts), source=source, compiler_output=output)


# --------------------------------------------------------------------------
# Build and load

@contextlib.contextmanager
def _captured_stderr():
    """Redirect file descriptor 2 (the compiler's stderr) into a list's first item.

    The compiler runs as a child process inheriting fd 2, so redirecting
    ``sys.stderr`` would not catch it. Callers hold ``_COMPILE_LOCK``; output
    that other threads write to stderr meanwhile is captured too (it is logged
    at DEBUG level with the compiler's warnings).
    """
    captured = []
    try:
        saved = os.dup(2)
    except OSError:   # no fd 2 (a detached process): nothing to capture
        yield captured
        captured.append("")
        return
    with tempfile.TemporaryFile() as tmp:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(tmp.fileno(), 2)
        try:
            yield captured
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read().decode(errors="replace"))


def _wrap_source(source, cdef, module_name, src_name, kwds):
    """``source`` framed by ``#line`` directives.

    Compiler diagnostics for the caller's code then name ``src_name`` and the
    line numbers of the listing in :class:`CompileError`, and those for cffi's
    own wrapper name ``<module>.c`` with its true line numbers. The second
    directive needs the line where cffi pastes the source, so the wrapper is
    emitted once (milliseconds) to find it.
    """
    import cffi

    head = f'#line 1 "{src_name}"\n'
    marker = f'#line 1 "{module_name}.c" /* tapediff: end of source */'
    preamble = f"{head}{source}\n{marker}\n"
    probe = cffi.FFI()
    probe.cdef(cdef)
    text = io.StringIO()
    try:
        # What FFI.emit_c_code runs, minus its "generating ..." print.
        from cffi.recompiler import make_c_source
        make_c_source(probe, module_name, preamble, text, verbose=False)
    except (ImportError, TypeError):   # should that internal function ever change
        probe.set_source(module_name, preamble, **kwds)
        text = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()):
            probe.emit_c_code(text)
    lines = text.getvalue().splitlines()
    if marker not in lines:   # a cffi that rewrites the preamble: number the source only
        return f"{head}{source}\n"
    after = lines.index(marker) + 2   # 1-based number of the line after the marker
    return f'{head}{source}\n#line {after} "{module_name}.c"\n'


def _build_extension(source: str, cdef: str, module_name: str, build_dir, opts: _Options) -> Path:
    """Compile one cffi module in ``build_dir``; return the path of the built library.

    Raises
    ------
    CompileError
        When cffi rejects the cdef or the compiler or linker fails.
    """
    import cffi

    src_name = f"{opts.name_hint}.c"
    kwds = {"extra_compile_args": list(opts.compile_args), "libraries": list(opts.libraries),
            "include_dirs": list(opts.include_dirs), "extra_link_args": list(opts.extra_link_args)}
    with _COMPILE_LOCK:
        try:
            preamble = _wrap_source(source, cdef, module_name, src_name, kwds)
        except cffi.CDefError as exc:
            raise CompileError(
                f"cffi could not parse the cdef of module {module_name} ({src_name}): {exc}\n\n"
                f"cdef:\n{_numbered(cdef)}\n\nThe cdef holds C declarations only (no "
                "definitions, no #include); fix the declaration named above.",
                source=source) from None
        ffi = cffi.FFI()
        ffi.cdef(cdef)
        ffi.set_source(module_name, preamble, **kwds)
        failure = None
        with _captured_stderr() as captured:
            try:
                built = ffi.compile(tmpdir=str(build_dir), verbose=False)
            except Exception as exc:  # noqa: BLE001  cffi.VerificationError, distutils errors
                failure = exc
    output = captured[0] if captured else ""
    if failure is not None:
        wrapper = Path(build_dir) / f"{module_name}.c"
        wrapper_text = wrapper.read_text(errors="replace") if wrapper.exists() else ""
        raise _compile_failure(module_name, src_name, source, cdef, output,
                               f"{type(failure).__name__}: {failure}", wrapper_text) from None
    if output.strip():
        logger.debug("compiler output for %s:\n%s", module_name, output.strip())
        if _env_flag("TAPEDIFF_DEBUG"):   # warnings belong next to the listing
            sys.stderr.write(f"tapediff: compiler output for {module_name}:\n{output.strip()}\n")
    return Path(built)


def _load_extension(path, module_name: str):
    """Load the cffi module at ``path``; return its ``(ffi, lib)``.

    By path, not by import: the file may be anywhere and carry any name. The
    dynamic loader identifies libraries by path, so loading a path already
    loaded in this process returns that library even if the file changed
    since; a rebuilt module therefore needs a new path (see the cache).
    """
    path = os.fspath(path)
    loader = importlib.machinery.ExtensionFileLoader(module_name, path)
    spec = importlib.util.spec_from_file_location(module_name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module.ffi, module.lib


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        data = p if isinstance(p, bytes) else str(p).encode()
        h.update(len(data).to_bytes(8, "little"))   # unambiguous concatenation
        h.update(data)
    return h.hexdigest()


def compile_c(source: str, cdef: str, *, name_hint: str = "td", extra_compile_args=(),
              libraries=(), include_dirs=(), extra_link_args=()):
    """Compile a C source into a cffi module and load it, without caching.

    Code generators normally call :func:`tapediff.runtime.load_or_build`,
    which caches the built module on disk; this function always compiles
    (a fraction of a second for a small module) in a private temporary
    directory (under ``TMPDIR``, which must allow executables) that is
    removed once the module is loaded.

    Parameters
    ----------
    source : str
        C definitions (any C, ``#include`` lines too). The repository's
        ``csrc/`` directory is on the include path.
    cdef : str
        Declarations of what Python may call, in the subset of C that cffi
        parses (no ``#include``, no definitions).
    name_hint : str, optional
        A short name for messages and file names (``td_loss``); non-identifier
        characters become ``_``.
    extra_compile_args : sequence of str, optional
        Appended to :data:`DEFAULT_COMPILE_ARGS`, so they override them.
    libraries : sequence of str, optional
        Linked before ``mvec`` (when available) and ``m``.
    include_dirs : sequence of path-like, optional
        Extra include directories.
    extra_link_args : sequence of str, optional
        Extra linker flags.

    Returns
    -------
    ffi : cffi.FFI
        The module's FFI: ``ffi.from_buffer("double[]", array)`` passes a
        NumPy array without copying; ``ffi.cast("double *", ptr)`` a raw address.
    lib : object
        The compiled functions, callable from Python; calls release the GIL.

    Raises
    ------
    CompilerUnavailable
        When :func:`compiler_available` is False.
    CompileError
        When the cdef does not parse, the source does not compile or link, or
        the result cannot be loaded; the message shows the compiler's output
        and the numbered source.

    Examples
    --------
    >>> import numpy as np
    >>> from tapediff.runtime import compile_c, compiler_available
    >>> src = '''
    ... double td_dot(const double *x, const double *y, long n) {
    ...     double s = 0.0;
    ...     for (long i = 0; i < n; i++) s += x[i] * y[i];
    ...     return s;
    ... }'''
    >>> x = np.arange(4.0)
    >>> if compiler_available():    # else stay on the NumPy path
    ...     ffi, lib = compile_c(src, "double td_dot(const double *, const double *, long);")
    ...     d = lib.td_dot(ffi.from_buffer("double[]", x), ffi.from_buffer("double[]", x), x.size)
    ... else:
    ...     d = float(x @ x)
    >>> d
    14.0
    """
    tc = _require_compiler()
    opts = _resolve_options(name_hint, extra_compile_args, libraries, include_dirs,
                            extra_link_args, toolchain=tc)
    module_name = _module_name(opts.name_hint, _digest(source, cdef, opts.as_dict()))
    if _env_flag("TAPEDIFF_DEBUG"):
        _print_debug(source, cdef, module_name, f"{opts.name_hint}.c", opts)
    build_dir = tempfile.mkdtemp(prefix="tapediff-build-")
    try:
        path = _build_extension(source, cdef, module_name, build_dir, opts)
        try:
            return _load_extension(path, module_name)
        except ImportError as exc:
            raise CompileError(f"module {module_name} ({opts.name_hint}.c) compiled but could "
                               f"not be loaded: {exc}", source=source) from exc
    finally:
        # A loaded library stays mapped after its file is removed (POSIX).
        shutil.rmtree(build_dir, ignore_errors=True)
