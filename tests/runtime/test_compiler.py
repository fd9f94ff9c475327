"""The C runtime: cffi builds, the on-disk cache, locks, and the no-compiler path.

Builds of these tiny modules take a fraction of a second each; tests that
need a process of their own (a different ``CC``, a race between processes)
start them concurrently.
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest

from tapediff.runtime import (CacheDirWarning, CompileError, CompilerUnavailable, cache,
                              cache_dir, cache_info, cache_key, clear_cache, compile_c, compiler,
                              compiler_available, compiler_status, load_or_build)
from tapediff.runtime.errors import TapediffError

needs_cc = pytest.mark.skipif(not compiler_available(), reason=compiler_status())

NUMERIC_SRC = r"""
#include <math.h>
#include <stddef.h>

/* Declared SIMD-callable so that gcc calls libmvec's vector exp. */
#pragma omp declare simd notinbranch
extern double exp(double);

void td_axpy(double a, const double *x, const double *y, double *out, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) out[i] = a * x[i] + y[i];
}

double td_dot(const double *x, const double *y, ptrdiff_t n) {
    double s = 0.0;
    for (ptrdiff_t i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

void td_exp(const double *restrict x, double *restrict out, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) out[i] = exp(x[i]);
}
"""
NUMERIC_CDEF = """
void td_axpy(double a, const double *x, const double *y, double *out, ptrdiff_t n);
double td_dot(const double *x, const double *y, ptrdiff_t n);
void td_exp(const double *x, double *out, ptrdiff_t n);
"""


def square_src(tag):
    """A one-function module whose source (hence key) differs per ``tag``."""
    return f"/* {tag} */\ndouble td_sq(double x) {{ return x * x; }}\n", "double td_sq(double);"


@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    """A fresh cache directory and a process that has loaded nothing from it."""
    d = tmp_path / "cache"
    monkeypatch.setenv("TAPEDIFF_CACHE_DIR", str(d))
    for var in ("TAPEDIFF_DEBUG", "TAPEDIFF_DISABLE_C"):
        monkeypatch.delenv(var, raising=False)
    cache._forget_loaded()
    yield d
    cache._forget_loaded()


def counts():
    return cache_info()["this_process"]


def entry_of(key):
    entry = cache_dir() / "cffi" / key
    manifest = json.loads((entry / "manifest.json").read_text())
    return entry, manifest


# --------------------------------------------------------------------------
# Compiling and calling

@pytest.fixture(scope="module")
def numeric():
    if not compiler_available():
        pytest.skip(compiler_status())
    return compile_c(NUMERIC_SRC, NUMERIC_CDEF, name_hint="numeric")


def test_two_functions_on_double_arrays_match_numpy(numeric):
    ffi, lib = numeric
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=1001), rng.normal(size=1001)
    out = np.empty_like(x)
    # from_buffer: no copy, the C code reads NumPy's memory
    px, py = ffi.from_buffer("double[]", x), ffi.from_buffer("double[]", y)
    lib.td_axpy(2.5, px, py, ffi.from_buffer("double[]", out), x.size)
    np.testing.assert_array_equal(out, 2.5 * x + y)
    np.testing.assert_allclose(lib.td_dot(px, py, x.size), x @ y, rtol=1e-12)
    # a raw address works too (what a prepared argument block holds)
    p = ffi.cast("double *", x.ctypes.data)
    assert lib.td_dot(p, p, 3) == pytest.approx(x[:3] @ x[:3], rel=1e-14)


def test_vectorised_exp_keeps_ieee_semantics(numeric):
    ffi, lib = numeric
    rng = np.random.default_rng(1)
    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, 710.0, -1000.0, 700.0, -700.0]
    # an odd length exercises the vector loop's scalar tail
    x = np.concatenate([rng.uniform(-700, 700, 10_001), rng.normal(size=1000), specials])
    rng.shuffle(x)
    x[::97] = np.nan
    out = np.empty_like(x)
    lib.td_exp(ffi.from_buffer("double[]", x), ffi.from_buffer("double[]", out), x.size)
    with np.errstate(over="ignore"):
        expected = np.exp(x)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(x))   # NaN stays NaN
    np.testing.assert_array_equal(out[x == np.inf], np.inf)      # inf stays inf
    np.testing.assert_array_equal(out[x == -np.inf], 0.0)
    np.testing.assert_array_equal(out[x == 710.0], np.inf)       # overflow is inf, as NumPy
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=0)


@needs_cc
def test_default_flags_call_libmvec(cache_env):
    if not compiler._toolchain().has_libmvec:
        pytest.skip("this toolchain cannot link libmvec")
    key = cache_key(NUMERIC_SRC, NUMERIC_CDEF, name_hint="numeric")
    load_or_build(NUMERIC_SRC, NUMERIC_CDEF, name_hint="numeric")
    entry, manifest = entry_of(key)
    assert manifest["libraries"][-2:] == ["mvec", "m"]
    assert "-ffast-math" not in manifest["compile_args"]
    # glibc's vector ABI names: _ZGV<isa><mask><lanes>v_exp
    assert re.search(rb"_ZGV[a-z]N\d+v_exp", (entry / manifest["file"]).read_bytes())


# --------------------------------------------------------------------------
# Compile errors

@needs_cc
def test_syntax_error_shows_numbered_source(monkeypatch, capfd):
    monkeypatch.setenv("TAPEDIFF_DEBUG", "1")
    src = "double td_f(double x) {\n    double y = 2.0 * x;\n    return y +;\n}\n"
    with pytest.raises(CompileError) as info:
        compile_c(src, "double td_f(double);", name_hint="broken")
    msg = str(info.value)
    assert isinstance(info.value, TapediffError)
    assert "broken.c:3:" in msg                        # the compiler names line 3 ...
    assert re.search(r"^\s*3 \| +return y \+;$", msg, re.MULTILINE)   # ... of this listing
    assert "error" in info.value.compiler_output
    assert info.value.source == src
    assert "TAPEDIFF_DEBUG" in msg
    err = capfd.readouterr().err
    assert re.search(r"^\s*3 \| +return y \+;$", err, re.MULTILINE)   # TAPEDIFF_DEBUG listing
    assert "error:" not in err        # the diagnostics went into the exception only


@needs_cc
def test_cdef_mismatch_names_wrapper_lines_and_caches_nothing(cache_env):
    src, cdef = "double td_g(float x) { return x; }\n", "double td_g(double *x);"
    with pytest.raises(CompileError) as info:
        load_or_build(src, cdef, name_hint="mismatch")
    msg = str(info.value)
    assert "cffi wrapper" in msg and "td_g(x0)" in msg and "double td_g(double *x);" in msg
    assert cache_info()["entries"] == 0
    assert list((cache_env / "cffi" / ".tmp").iterdir()) == []


@needs_cc
def test_bad_cdef_is_a_compile_error():
    with pytest.raises(CompileError, match="cffi could not parse the cdef"):
        compile_c("int td_h(void) { return 1; }", "int td_h(void) { return 1; }")


def test_options_must_be_sequences():
    if not compiler_available():
        pytest.skip(compiler_status())
    with pytest.raises(TypeError, match="extra_compile_args must be a sequence"):
        compile_c("int td_h(void) { return 1; }", "int td_h(void);", extra_compile_args="-O0")


# --------------------------------------------------------------------------
# The cache

@needs_cc
def test_second_load_does_not_recompile(cache_env):
    src, cdef = square_src("second-load")
    _, lib = load_or_build(src, cdef, name_hint="sq")
    assert lib.td_sq(3.0) == 9.0
    assert counts()["builds"] == 1
    # TAPEDIFF_CACHE_DIR is where it went, private
    assert cache_dir() == cache_env and cache_env.stat().st_mode & 0o777 == 0o700
    entry, _ = entry_of(cache_key(src, cdef, name_hint="sq"))
    assert entry.parent.parent == cache_env
    info = cache_info()
    assert info["dir"] == str(cache_env) and info["entries"] == 1 and info["bytes"] > 0
    # same process: the loaded module, no disk access
    assert load_or_build(src, cdef, name_hint="sq")[1] is lib
    assert counts() == {"builds": 1, "disk_loads": 0, "memory_hits": 1, "rebuilt_corrupt": 0}
    # a fresh process (simulated): loaded from disk, not rebuilt, and fast
    cache._forget_loaded()
    t0 = time.perf_counter()
    _, lib2 = load_or_build(src, cdef, name_hint="sq")
    assert time.perf_counter() - t0 < 0.5
    assert lib2.td_sq(-4.0) == 16.0
    assert counts() == {"builds": 0, "disk_loads": 1, "memory_hits": 0, "rebuilt_corrupt": 0}


def test_keys_cover_what_changes_the_binary(monkeypatch, tmp_path):
    if not compiler_available():
        pytest.skip(compiler_status())
    src, cdef = square_src("keys")
    k = cache_key(src, cdef)
    assert re.fullmatch(r"[0-9a-f]{64}", k) and cache_key(src, cdef) == k
    assert cache_key(src + " ", cdef) != k
    assert cache_key(src, cdef + " ") != k
    assert cache_key(src, cdef, extra_compile_args=["-O2"]) != k
    assert cache_key(src, cdef, libraries=["rt"]) != k
    assert cache_key(src, cdef, include_dirs=[tmp_path]) != k
    assert cache_key(src, cdef, name_hint="other") != k
    monkeypatch.setenv("CFLAGS", "-DTD_EXTRA=1")
    assert cache_key(src, cdef) != k
    monkeypatch.delenv("CFLAGS")
    # the contents of every file under csrc/
    csrc = tmp_path / "csrc"
    csrc.mkdir()
    monkeypatch.setattr(cache, "_csrc_dir", lambda: csrc)
    (csrc / "td_runtime.h").write_text("#define TD_A 1\n")
    k1 = cache_key(src, cdef)
    (csrc / "td_runtime.h").write_text("#define TD_A 2\n")
    os.utime(csrc / "td_runtime.h", ns=(1, 1))  # a new mtime even on coarse clocks
    k2 = cache_key(src, cdef)
    (csrc / "sub").mkdir()
    (csrc / "sub" / "more.h").write_text("")
    k3 = cache_key(src, cdef)
    assert len({k, k1, k2, k3}) == 4


@needs_cc
def test_threads_build_once(cache_env):
    src, cdef = square_src("threads")
    barrier = threading.Barrier(4)
    results, errors = [], []

    def work():
        try:
            barrier.wait()
            results.append(load_or_build(src, cdef, name_hint="threads"))
        except Exception as exc:  # noqa: BLE001  reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({id(lib) for _, lib in results}) == 1
    assert counts()["builds"] == 1 and cache_info()["entries"] == 1


RACE_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    from tapediff.runtime import cache_info, load_or_build
    ready, go = sys.argv[1], sys.argv[2]
    open(ready, "w").close()
    deadline = time.time() + 60
    while not os.path.exists(go) and time.time() < deadline:
        time.sleep(0.002)
    ffi, lib = load_or_build("double td_race(double x) { return 3.0 * x; }",
                             "double td_race(double);", name_hint="race")
    assert lib.td_race(2.0) == 6.0
    print(json.dumps(cache_info()))
""")


def _env(**changes):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TAPEDIFF_DEBUG", "TAPEDIFF_DISABLE_C")}
    env.update(changes)
    return env


@needs_cc
def test_two_processes_build_once(tmp_path):
    script = tmp_path / "race.py"
    script.write_text(RACE_SCRIPT)
    env = _env(TAPEDIFF_CACHE_DIR=str(tmp_path / "cache"))
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / f"ready{i}"), str(go)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    deadline = time.time() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.time() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.005)
    go.touch()  # both start compiling the same source at once
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    infos = [json.loads(out) for out, _ in outputs]
    assert sum(i["this_process"]["builds"] for i in infos) == 1
    assert sum(i["this_process"]["disk_loads"] for i in infos) == 1
    root = tmp_path / "cache" / "cffi"
    (entry,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    assert sorted(p.suffix for p in entry.iterdir()) == [".json", ".so"]
    assert list((root / ".tmp").iterdir()) == []


@needs_cc
@pytest.mark.parametrize("damage", ["truncated", "missing", "unloadable"])
def test_corrupt_entry_is_rebuilt_not_loaded(cache_env, monkeypatch, damage):
    src, cdef = square_src(f"corrupt-{damage}")
    load_or_build(src, cdef, name_hint="sq")
    key = cache_key(src, cdef, name_hint="sq")
    entry, manifest = entry_of(key)
    so = entry / manifest["file"]
    if damage == "truncated":
        # A truncated copy replaces the file (new inode): the original stays
        # intact for this process, which has it mapped.
        data = so.read_bytes()
        (entry / "part").write_bytes(data[: len(data) // 2])
        os.replace(entry / "part", so)
    elif damage == "missing":
        so.unlink()
    else:
        # An intact checksum, but not a shared library. A new file name: the
        # dynamic loader hands back the library already loaded from a path
        # without reading the file again (the reason entries get fresh names).
        garbage = b"not an ELF file"
        (entry / "garbage.so").write_bytes(garbage)
        manifest.update(file="garbage.so", size=len(garbage),
                        sha256=hashlib.sha256(garbage).hexdigest())
        (entry / "manifest.json").write_text(json.dumps(manifest))
        so = entry / "garbage.so"

    loaded_paths = []
    real_load = cache._load_extension

    def spy(path, name):
        loaded_paths.append(os.fspath(path))
        return real_load(path, name)

    monkeypatch.setattr(cache, "_load_extension", spy)
    cache._forget_loaded()
    _, lib = load_or_build(src, cdef, name_hint="sq")
    assert lib.td_sq(5.0) == 25.0
    assert counts() == {"builds": 1, "disk_loads": 0, "memory_hits": 0, "rebuilt_corrupt": 1}
    if damage != "unloadable":   # checksum failures are never handed to the loader
        assert str(so) not in loaded_paths
    _, new_manifest = entry_of(key)
    assert new_manifest["file"] != manifest["file"]   # a new path: never the old mapping
    assert isinstance(cache._check_entry(entry, key), tuple)
    assert cache_info()["entries"] == 1


def test_check_entry_reasons(tmp_path):
    key = "0" * 64
    entry = tmp_path / key
    entry.mkdir()
    assert cache._check_entry(entry, key) == "no manifest"
    (entry / "manifest.json").write_text("{not json")
    assert cache._check_entry(entry, key).startswith("unreadable manifest")
    lib = entry / "m.so"
    lib.write_bytes(b"abc")
    good = {"format": cache.CACHE_FORMAT, "key": key, "module": "m", "file": "m.so", "size": 3,
            "sha256": hashlib.sha256(b"abc").hexdigest()}
    for change, reason in [({}, None), ({"key": "1" * 64}, "another format or key"),
                           ({"file": "../m.so"}, "malformed"), ({"size": 4}, "has 3 bytes"),
                           ({"sha256": "0" * 64}, "does not match its sha256"),
                           ({"file": "gone.so"}, "missing")]:
        (entry / "manifest.json").write_text(json.dumps({**good, **change}))
        got = cache._check_entry(entry, key)
        if reason is None:
            assert got == (lib, "m")
        else:
            assert reason in got


@needs_cc
def test_clear_cache(cache_env):
    src, cdef = square_src("clear")
    _, lib = load_or_build(src, cdef)
    stale = cache_env / "cffi" / ".tmp" / "build-crashed"
    stale.mkdir()
    os.utime(stale, (0, 0))
    assert clear_cache() == 1
    assert cache_info()["entries"] == 0 and not stale.exists()
    assert list((cache_env / "cffi" / ".locks").iterdir()) == []
    assert lib.td_sq(2.0) == 4.0                       # still loaded
    assert load_or_build(src, cdef)[1] is lib          # and still returned in-process
    assert clear_cache() == 0


# --------------------------------------------------------------------------
# The cache directory must be private

@pytest.mark.skipif(os.name != "posix", reason="POSIX owners and modes")
@pytest.mark.parametrize("problem", ["group_writable", "foreign_owned"])
def test_unsafe_cache_dir_is_refused(tmp_path, monkeypatch, problem):
    d = tmp_path / problem
    d.mkdir(mode=0o700)
    if problem == "group_writable":
        os.chmod(d, 0o777)
        match = "writable by group or others"
    elif os.geteuid() == 0:
        os.chown(d, 65534, 65534)   # root can give it away for real
        match = "owned by user id 65534"
    else:
        monkeypatch.setattr(cache, "_current_uid", lambda: os.geteuid() + 1)
        match = "not by you"
    monkeypatch.setenv("TAPEDIFF_CACHE_DIR", str(d))
    with pytest.warns(CacheDirWarning, match=match) as record:
        got = cache_dir()
    assert record[0].filename == __file__          # points at the caller, not tapediff
    assert got != d and got.is_dir() and got.stat().st_mode & 0o777 == 0o700
    assert got.stat().st_uid == os.geteuid()
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # warned once only
        assert cache_dir() == got


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_new_cache_dir_is_private(tmp_path, monkeypatch):
    d = tmp_path / "a" / "b"
    monkeypatch.setenv("TAPEDIFF_CACHE_DIR", str(d))
    old = os.umask(0o277)   # would leave the directory unusable: read-only for us
    try:
        assert cache_dir() == d
    finally:
        os.umask(old)
    assert d.stat().st_mode & 0o777 == 0o700


# --------------------------------------------------------------------------
# Without a compiler

NO_CC_SCRIPT = textwrap.dedent("""
    import json, sys
    if sys.argv[1] == "no-setuptools":
        sys.modules["setuptools"] = None      # find_spec now reports it missing
    from tapediff.runtime import CompilerUnavailable, compile_c, compiler_available, compiler_status
    try:
        compile_c("int td_f(void) { return 0; }", "int td_f(void);")
        raised = None
    except CompilerUnavailable as exc:
        raised = str(exc)
    print(json.dumps([compiler_available(), compiler_status(), raised]))
""")


def test_no_compiler_reports_why():
    cases = {"CC=/nonexistent": (_env(CC="/nonexistent"), "/nonexistent"),
             "TAPEDIFF_DISABLE_C=1": (_env(TAPEDIFF_DISABLE_C="1"), "TAPEDIFF_DISABLE_C"),
             "no-setuptools": (_env(), "setuptools")}
    procs = {name: subprocess.Popen([sys.executable, "-c", NO_CC_SCRIPT, name], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, (env, _) in cases.items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        available, status, raised = json.loads(out)
        needle = cases[name][1]
        assert available is False, name
        assert needle in status and needle in raised, (name, status, raised)


def test_disable_c_is_read_on_every_call(monkeypatch):
    monkeypatch.setenv("TAPEDIFF_DISABLE_C", "1")
    assert compiler_available() is False
    assert "TAPEDIFF_DISABLE_C" in compiler_status()
    with pytest.raises(CompilerUnavailable, match="TAPEDIFF_DISABLE_C"):
        load_or_build("int td_f(void) { return 0; }", "int td_f(void);")
    monkeypatch.setenv("TAPEDIFF_DISABLE_C", "0")
    assert "TAPEDIFF_DISABLE_C" not in compiler_status()


@needs_cc
def test_status_when_available():
    status = compiler_status()
    assert "libmvec:" in status and compiler._toolchain().version.splitlines()[0] in status
