"""On-disk cache of compiled cffi modules, safe across threads and processes.

:func:`load_or_build` is what code generators call: it returns a loaded
``(ffi, lib)`` for a C source, compiling it only when no valid build of the
same inputs exists. A build is looked up

1. in this process (a dict: the same key is loaded once per process; cffi
   modules cannot be unloaded anyway),
2. on disk, under a key that hashes everything that changes the binary (see
   :func:`cache_key`), checked against its manifest's sha256 before loading,
3. else built, holding a per-key file lock so that concurrent processes build
   it once, and published atomically.

Layout of the cache directory (``TAPEDIFF_CACHE_DIR``, else the user's cache
directory, e.g. ``~/.cache/tapediff``)::

    cffi/<key>/manifest.json       key, file name, size and sha256 of the library, provenance
    cffi/<key>/<module>-<nonce>.so the library; the random nonce gives a rebuilt entry a new
                                   path, so the dynamic loader never hands back an old mapping
    cffi/.locks/<key>.lock         one lock file per key
    cffi/.tmp/                     builds in progress (same file system: os.replace is atomic)

An entry is immutable once published. A corrupt one (truncated or altered
library, missing file, unreadable manifest) is never handed to the dynamic
loader; it is moved aside and rebuilt under the lock, as is one whose
library passes its checksum but fails to load. The directory must be
private (owned by you, not writable by group or others) because loading a
library runs its code; otherwise tapediff warns once
(:class:`~tapediff.runtime.errors.CacheDirWarning`) and caches in a private
temporary directory for the rest of the process.
"""
from __future__ import annotations

import atexit
import collections
import datetime
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
from pathlib import Path

import filelock
import platformdirs

from .compiler import (_build_extension, _csrc_dir, _env_flag, _load_extension, _module_name,
                       _Options, _print_debug, _require_compiler, _resolve_options, _Toolchain)
from .errors import CacheDirWarning, CompileError

__all__ = ["cache_dir", "cache_info", "cache_key", "clear_cache", "load_or_build"]

logger = logging.getLogger(__name__)

# Bump when the layout, the manifest or the key's inputs change meaning; it is
# hashed into every key, so old entries are simply never looked up again.
CACHE_FORMAT = 1

_SUBDIR = "cffi"
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")

# A build normally takes about a second; waiting longer than this for another
# process's lock means it hangs, and building in parallel is then safe (the
# publish step tolerates a concurrent publish).
_LOCK_TIMEOUT_S = 600.0

# Leftovers in .tmp older than this are from builds that crashed.
_STALE_TMP_S = 3600.0

# Environment variables that setuptools reads when building an extension;
# each changes the binary, so each is part of the key.
_BUILD_ENV = ("CC", "CPP", "CFLAGS", "CPPFLAGS", "LDFLAGS", "LDSHARED")


# --------------------------------------------------------------------------
# The cache directory

_dir_lock = threading.Lock()
_refused: dict = {}            # refused directory -> why (warned once each)
_fallback: Path | None = None  # this process's private directory, once needed


def _current_uid() -> int:
    """The effective user id (a function, so tests can impersonate another user)."""
    return os.geteuid()


def _configured_dir() -> Path:
    env = os.environ.get("TAPEDIFF_CACHE_DIR")
    path = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("tapediff"))
    # Absolute: cffi changes the working directory while it compiles.
    return Path(os.path.abspath(path))


def _why_not_private(path: Path) -> str | None:
    """None when ``path`` is a directory only the current user can write; else why not."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot be inspected ({exc.strerror})"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if os.name != "posix":   # no POSIX owner/mode to check; rely on the OS's ACLs
        return None
    uid = _current_uid()
    if st.st_uid != uid:
        return f"is owned by user id {st.st_uid}, not by you (user id {uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):#o})"
    return None


def _make_private_dir(path: Path) -> str | None:
    """Create ``path`` (mode 0o700) if needed; None when usable, else why not."""
    if not path.exists():
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path, 0o700)   # a umask may have removed some of our own bits
        except OSError as exc:
            return f"cannot be created ({exc.strerror})"
    return _why_not_private(path)


def _warn(message: str, category) -> None:
    """Warn with the stack level of the first caller outside the tapediff package."""
    package = str(Path(__file__).resolve().parents[1]) + os.sep
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _fallback_dir() -> Path:
    global _fallback
    if _fallback is None:
        # mkdtemp creates the directory with mode 0o700.
        _fallback = Path(tempfile.mkdtemp(prefix="tapediff-cache-"))
        atexit.register(shutil.rmtree, _fallback, True)
    return _fallback


def cache_dir() -> Path:
    """The directory that holds compiled modules, created (mode 0o700) if needed.

    ``TAPEDIFF_CACHE_DIR`` when set, else the user's cache directory
    (``platformdirs.user_cache_dir("tapediff")``, e.g. ``~/.cache/tapediff``).
    A directory owned by another user or writable by group or others is
    refused: tapediff warns once (:class:`~tapediff.runtime.errors.CacheDirWarning`)
    and returns a private temporary directory, used for the rest of the
    process and removed at exit.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import os
    >>> from tapediff.runtime import cache_dir
    >>> d = cache_dir()
    >>> d.is_dir() and (os.name != "posix" or d.stat().st_mode & 0o022 == 0)
    True
    """
    path = _configured_dir()
    with _dir_lock:
        key = str(path)
        if key in _refused:
            return _fallback_dir()
        problem = _make_private_dir(path)
        if problem is None:
            return path
        _refused[key] = problem
        fallback = _fallback_dir()
    if problem.startswith(("is owned", "is writable")):
        why = ("; another user could plant a library in it that this process would load "
               f"and run. Fix: `chmod 700 {path}` if it is yours, or set TAPEDIFF_CACHE_DIR "
               "to a directory you own")
    else:
        why = ". Fix: set TAPEDIFF_CACHE_DIR to a directory you own"
    _warn(f"tapediff will not use the compile cache directory {path}: it {problem}{why}. "
          f"Compiled modules are cached in the private temporary directory {fallback} for "
          f"this process instead (and rebuilt by the next process).", CacheDirWarning)
    return fallback


def _root() -> Path:
    """``cache_dir()/cffi`` with its lock and temp subdirectories."""
    root = cache_dir() / _SUBDIR
    for d in (root, root / ".locks", root / ".tmp"):
        if not d.is_dir():
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


# --------------------------------------------------------------------------
# The key

_csrc_lock = threading.Lock()
_csrc_memo: tuple = (None, "")   # (stat signature, digest)


def _csrc_digest() -> str:
    """sha256 over the names and contents of the files under ``csrc/``.

    Generated code includes its headers, so editing one must rebuild every
    module. Hidden files (editor swap files, ``.DS_Store``) are skipped. The
    digest is recomputed only when a file's size or mtime changes.
    """
    global _csrc_memo
    root = _csrc_dir()
    if root is None:
        return "no csrc"
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                p = Path(dirpath, name)
                st = p.stat()
                files.append((p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    signature = tuple(files)
    with _csrc_lock:
        if _csrc_memo[0] == signature:
            return _csrc_memo[1]
    h = hashlib.sha256()
    for rel, _, _ in files:
        data = (root / rel).read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    digest = h.hexdigest()
    with _csrc_lock:
        _csrc_memo = (signature, digest)
    return digest


@functools.lru_cache(maxsize=8)
def _platform_digest(tc: _Toolchain) -> str:
    """sha256 of the inputs fixed for the process: toolchain, CPU, Python, versions."""
    import cffi

    import tapediff   # at call time: the package imports its submodules first
    inputs = {
        "compiler": [list(tc.argv), tc.version],
        "target": tc.target,                  # what -march=native means on this machine
        "python": [sys.implementation.cache_tag, sysconfig.get_config_var("EXT_SUFFIX")],
        "tapediff": tapediff.__version__,
        "cffi": cffi.__version__,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _key_for(source: str, cdef: str, opts: _Options, tc: _Toolchain) -> str:
    inputs = {
        "format": CACHE_FORMAT,
        "source": source,
        "cdef": cdef,
        "options": opts.as_dict(),            # flags, libraries (libmvec), include dirs
        "csrc": _csrc_digest(),
        "build_env": {k: os.environ.get(k) for k in _BUILD_ENV},
        "platform": _platform_digest(tc),
    }
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def cache_key(source: str, cdef: str, *, name_hint: str = "td", extra_compile_args=(),
              libraries=(), include_dirs=(), extra_link_args=()) -> str:
    """The cache key :func:`load_or_build` would use for these inputs.

    A sha256 (64 hex digits) over everything that changes the binary: the
    source and cdef, all flags (defaults included), libraries (libmvec
    included when linked), include directories, the contents of every file
    in the repository's ``csrc/``, the compiler's identity (``cc --version``)
    and what ``-march=native`` targets on this machine, the build-related
    environment variables (``CC``, ``CFLAGS``, ...), the Python ABI, and the
    versions of tapediff and cffi. Parameters are those of
    :func:`load_or_build`.

    Returns
    -------
    str

    Raises
    ------
    CompilerUnavailable
        The key includes the compiler's identity, so it needs a compiler.

    Examples
    --------
    .. code-block:: python

        k1 = cache_key("double f(double x) { return x; }", "double f(double);")
        k2 = cache_key("double f(double x) { return -x; }", "double f(double);")
        assert k1 != k2 and len(k1) == 64
    """
    tc = _require_compiler()
    opts = _resolve_options(name_hint, extra_compile_args, libraries, include_dirs,
                            extra_link_args, toolchain=tc)
    return _key_for(source, cdef, opts, tc)


# --------------------------------------------------------------------------
# Entries

def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_entry(entry: Path, key: str):
    """``(path of the library, module name)`` when ``entry`` is intact, else a reason string."""
    try:
        manifest = json.loads((entry / "manifest.json").read_text())
    except FileNotFoundError:
        return "no manifest"
    except (OSError, ValueError) as exc:
        return f"unreadable manifest ({exc})"
    if not isinstance(manifest, dict):
        return "malformed manifest"
    if manifest.get("format") != CACHE_FORMAT or manifest.get("key") != key:
        return "manifest of another format or key"
    name, module = manifest.get("file"), manifest.get("module")
    # A plain file name: the manifest cannot point outside its entry.
    if (not isinstance(name, str) or not isinstance(module, str)
            or Path(name).name != name or name in ("", ".", "..")):
        return "malformed manifest"
    lib = entry / name
    try:
        size = lib.stat().st_size
    except OSError:
        return f"library {name} missing"
    if size != manifest.get("size"):
        return f"library {name} has {size} bytes, the manifest says {manifest.get('size')}"
    if _sha256_file(lib) != manifest.get("sha256"):
        return f"library {name} does not match its sha256"
    return lib, module


def _publish(stage: Path, entry: Path, trash_dir: Path) -> bool:
    """Move the complete ``stage`` directory to ``entry``; False if one appeared meanwhile.

    A directory rename is atomic, so readers see either no entry or a
    complete one. A corrupt entry in the way is moved aside first (we hold
    the key's lock; without it, see :func:`_load_or_build_locked`).
    """
    if entry.exists():
        aside = Path(tempfile.mkdtemp(prefix="old-", dir=trash_dir))
        try:
            os.replace(entry, aside / "entry")
        except FileNotFoundError:   # removed meanwhile (clear_cache)
            pass
        shutil.rmtree(aside, ignore_errors=True)
    try:
        os.replace(stage, entry)
    except OSError:   # another process published first (possible without the lock)
        return False
    return True


def _build_entry(source, cdef, opts, key, module_name, root: Path) -> None:
    """Build into ``root/.tmp`` and publish ``root/<key>`` (library + manifest)."""
    tmp = root / ".tmp"
    work = Path(tempfile.mkdtemp(prefix="build-", dir=tmp))
    try:
        built = _build_extension(source, cdef, module_name, work, opts)
        _count("builds")
        stage = work / "entry"
        stage.mkdir(mode=0o700)
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        name = f"{module_name}-{secrets.token_hex(4)}{suffix}"
        os.replace(built, stage / name)
        digest = _sha256_file(stage / name)
        import cffi

        import tapediff
        manifest = {
            "format": CACHE_FORMAT, "key": key, "module": module_name, "file": name,
            "size": (stage / name).stat().st_size, "sha256": digest,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "name_hint": opts.name_hint, "compile_args": list(opts.compile_args),
            "libraries": list(opts.libraries), "tapediff": tapediff.__version__,
            "cffi": cffi.__version__,
        }
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=1))
        # Flush both files before the rename publishes the entry, so that a
        # crash leaves no entry or a whole one (a torn one fails the checksum).
        for fname in (name, "manifest.json"):
            with open(stage / fname, "rb") as f:
                os.fsync(f.fileno())
        if not _publish(stage, root / key, tmp):
            logger.debug("entry %s was published by another process meanwhile", key)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------
# Loading

_loaded: dict = {}                  # key -> (ffi, lib), for the life of the process
_key_locks: dict = {}               # key -> threading.Lock (one build per key per process)
_loaded_lock = threading.Lock()
_stats = collections.Counter()     # builds, disk_loads, memory_hits, rebuilt_corrupt
_stats_lock = threading.Lock()


def _count(event: str) -> None:
    with _stats_lock:
        _stats[event] += 1


def _try_load(entry: Path, key: str):
    """``(ffi, lib)`` from an intact entry, None when absent; a corrupt one is logged."""
    if not entry.exists():
        return None
    checked = _check_entry(entry, key)
    if isinstance(checked, str):
        logger.info("cache entry %s is corrupt (%s); rebuilding it", entry, checked)
        return None
    lib_path, module = checked
    try:
        return _load_extension(lib_path, module)
    except (ImportError, OSError) as exc:
        logger.info("cache entry %s cannot be loaded (%s); rebuilding it", entry, exc)
        return None


def _load_or_build_locked(source, cdef, opts, key):
    root = _root()
    entry = root / key
    module_name = _module_name(opts.name_hint, key)
    # Entries are immutable once published, so an intact one is loaded
    # without taking the lock.
    found = _try_load(entry, key)
    if found is not None:
        _count("disk_loads")
        return found
    lock = filelock.FileLock(str(root / ".locks" / f"{key}.lock"))
    try:
        lock.acquire(timeout=_LOCK_TIMEOUT_S)
        locked = True
    except filelock.Timeout:
        logger.warning("waited %.0f s for the lock of cache entry %s; building anyway",
                       _LOCK_TIMEOUT_S, key)
        locked = False
    try:
        # Another process may have published the entry while we waited.
        found = _try_load(entry, key)
        if found is not None:
            _count("disk_loads")
            return found
        if entry.exists():
            _count("rebuilt_corrupt")
        _build_entry(source, cdef, opts, key, module_name, root)
        checked = _check_entry(entry, key)
        if isinstance(checked, str):
            raise CompileError(f"module {module_name} ({opts.name_hint}.c) was built but its "
                               f"cache entry {entry} is unusable: {checked}", source=source)
        try:
            return _load_extension(*checked)
        except ImportError as exc:
            raise CompileError(f"module {module_name} ({opts.name_hint}.c) compiled but could "
                               f"not be loaded: {exc}", source=source) from exc
    finally:
        if locked:
            lock.release()


def load_or_build(source: str, cdef: str, *, name_hint: str = "td", extra_compile_args=(),
                  libraries=(), include_dirs=(), extra_link_args=()):
    """Load the compiled module for a C source, building and caching it if needed.

    The entry point of code generators. The same inputs give the same
    module: loaded once per process, built once per machine (see
    :func:`cache_key` for what "the same" covers). Safe to call from several
    threads and processes at once; the module is built once and the others
    wait for it.

    Parameters
    ----------
    source, cdef, name_hint, extra_compile_args, libraries, include_dirs, extra_link_args
        As for :func:`tapediff.runtime.compile_c`.

    Returns
    -------
    ffi, lib
        As for :func:`tapediff.runtime.compile_c`. Repeated calls with the same
        inputs return the same objects.

    Raises
    ------
    CompilerUnavailable
        When :func:`tapediff.runtime.compiler_available` is False (the key
        needs the compiler's identity, so even a cached module is not loaded).
    CompileError
        When the source does not compile; nothing is cached then.

    Examples
    --------
    .. code-block:: python

        from tapediff.runtime import compiler_available, load_or_build

        if compiler_available():
            ffi, lib = load_or_build(
                "double td_sq(double x) { return x * x; }",
                "double td_sq(double);",
                name_hint="square")
            lib.td_sq(3.0)      # 9.0; built on first use, then loaded from the cache
    """
    tc = _require_compiler()
    opts = _resolve_options(name_hint, extra_compile_args, libraries, include_dirs,
                            extra_link_args, toolchain=tc)
    key = _key_for(source, cdef, opts, tc)
    found = _loaded.get(key)
    if found is not None:
        _count("memory_hits")
        return found
    with _loaded_lock:
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:   # a second thread waits for the first one's build
        found = _loaded.get(key)
        if found is not None:
            _count("memory_hits")
            return found
        if _env_flag("TAPEDIFF_DEBUG"):
            _print_debug(source, cdef, _module_name(opts.name_hint, key),
                         f"{opts.name_hint}.c", opts)
        found = _load_or_build_locked(source, cdef, opts, key)
        _loaded[key] = found
        return found


def _forget_loaded() -> None:
    """Forget the modules loaded by this process and zero its counters (for tests).

    The libraries stay mapped; only the next :func:`load_or_build` goes to disk.
    """
    with _loaded_lock:
        _loaded.clear()
    with _stats_lock:
        _stats.clear()


# --------------------------------------------------------------------------
# Maintenance

def _entries(root: Path):
    try:
        return [p for p in root.iterdir() if _KEY_RE.match(p.name) and p.is_dir()]
    except FileNotFoundError:
        return []


def cache_info() -> dict:
    """What the compile cache holds, and what this process did with it.

    Returns
    -------
    dict
        ``dir`` (str, :func:`cache_dir`), ``entries`` (int, built modules on
        disk), ``bytes`` (int, their total size) and ``this_process``: counts
        of ``builds``, ``disk_loads`` (found on disk), ``memory_hits`` (found
        already loaded) and ``rebuilt_corrupt`` in this process.

    Examples
    --------
    >>> from tapediff.runtime import cache_info
    >>> info = cache_info()
    >>> sorted(info)
    ['bytes', 'dir', 'entries', 'this_process']
    >>> info["entries"] >= 0
    True
    """
    d = cache_dir()
    entries = _entries(d / _SUBDIR)
    size = 0
    for e in entries:
        for p in e.rglob("*"):
            try:
                if p.is_file():
                    size += p.stat().st_size
            except OSError:   # removed meanwhile
                pass
    counts = {k: _stats[k] for k in ("builds", "disk_loads", "memory_hits", "rebuilt_corrupt")}
    return {"dir": str(d), "entries": len(entries), "bytes": size, "this_process": counts}


def clear_cache() -> int:
    """Remove every compiled module from the cache directory.

    Modules already loaded stay loaded (and :func:`load_or_build` keeps
    returning them in this process); other processes rebuild what they need.
    Builds in progress are left alone; leftovers of crashed builds are removed.

    Returns
    -------
    int
        The number of entries removed.

    Examples
    --------
    .. code-block:: python

        from tapediff.runtime import cache_info, clear_cache

        removed = clear_cache()
        assert cache_info()["entries"] == 0
    """
    root = cache_dir() / _SUBDIR
    if not root.is_dir():
        return 0
    tmp = root / ".tmp"
    tmp.mkdir(mode=0o700, exist_ok=True)
    removed = 0
    for entry in _entries(root):
        # Renamed away first (atomic), so no reader sees a half-deleted entry.
        aside = Path(tempfile.mkdtemp(prefix="old-", dir=tmp))
        try:
            os.replace(entry, aside / "entry")
            removed += 1
        except OSError:
            pass
        shutil.rmtree(aside, ignore_errors=True)
    now = time.time()
    for p in tmp.iterdir():
        try:
            if now - p.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass
    # Lock files of keys nobody is building (a held lock is kept: removing it
    # would let a second process build the same key, harmless but wasteful).
    for lock_path in (root / ".locks").glob("*.lock"):
        lock = filelock.FileLock(str(lock_path))
        try:
            with lock.acquire(timeout=0):
                lock_path.unlink(missing_ok=True)
        except (filelock.Timeout, OSError):
            pass
    return removed
