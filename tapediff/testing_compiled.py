"""Checking compiled replay against the interpreter, many programs at a time.

Compiling one C module per tape costs about a second, so a corpus of
hundreds of programs is checked in batches: :func:`prepare_many` records
every case, runs the interpreter on every argument set (the oracle; this also
records the versions that other guard outcomes need and builds the gradient
and vjp tapes), lowers every tape of every version, compiles all of them in
one module per job (``jobs`` modules built in parallel, forked processes) and
installs them as the versions' native code. A tape that does not compile is
left out of its module and reported with its case. Each case is then checked
on its own by :func:`check_prepared`, which replays the compiled entry points
and compares them with the oracle:

* float results norm-wise, ``||got - want|| <= rtol ||want||`` over the
  finite entries (``rtol`` 1e-12 for float64, 1e-5 for float32), with NaN
  positions identical and infinities identical;
* integer and bool results exactly; shapes and dtypes exactly;
* an argument set on which the interpreter raises must raise the same
  exception type compiled;
* a tape the generator cannot lower must replay interpreted with a
  :class:`~tapediff.CompileWarning` naming the op;
* no compiled call may record a new version (every guard outcome was
  recorded by the oracle, so a failed native guard must find the kept one).

:func:`check_compiled_many` does both steps and returns a report.

Examples
--------
>>> import numpy as np
>>> from tapediff.testing_compiled import Case, check_compiled_many
>>> rep = check_compiled_many([Case("sq", lambda x: np.sum(x ** 2), (np.ones(3),),
...                                 replays=[(np.arange(3.0),)])])
>>> rep.failures
{}
"""
import copy
import dataclasses
import warnings

import numpy as np

from . import pytree
from .api import record

__all__ = ["Case", "Prepared", "Report", "prepare_many", "check_prepared",
           "check_compiled_many", "assert_agree", "unsupported_ops", "RTOL"]

#: Norm-wise relative tolerance per float dtype.
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5,
        np.dtype(np.float16): 1e-2}


@dataclasses.dataclass
class Case:
    """One program of a corpus.

    ``fun(*args)`` is recorded with ``argnums``; the compiled entry points are
    compared with the interpreter on ``args`` and on every argument tuple in
    ``replays``. ``modes`` picks the entry points: ``"call"`` (the primal),
    ``"grad"`` (``value_and_grad``; needs a scalar float output) and ``"vjp"``
    (with a fixed pseudo-random cotangent). ``None`` means ``grad`` for a
    scalar float output (plus ``call`` when ``call`` is true: the value is
    compared by ``grad`` already), else ``call`` plus ``vjp`` for float
    outputs, else ``call`` only.
    """
    name: str
    fun: object
    args: tuple
    argnums: object = 0
    replays: list = dataclasses.field(default_factory=list)
    modes: tuple = None
    rtol: float = None          # overrides RTOL
    call: bool = False          # also replay the primal of a scalar-valued case


@dataclasses.dataclass
class Prepared:
    """A recorded case, its oracle and its installed native tapes."""
    case: Case
    rf: object = None
    ct: object = None
    modes: tuple = ()
    argsets: list = dataclasses.field(default_factory=list)
    oracle: list = dataclasses.field(default_factory=list)   # per argset: {mode: result}
    cotangents: dict = dataclasses.field(default_factory=dict)   # argset -> vjp cotangent
    natives: list = dataclasses.field(default_factory=list)  # (version, key, NativeTape)
    unsupported: list = dataclasses.field(default_factory=list)  # (version, key, op, message)
    errors: list = dataclasses.field(default_factory=list)   # problems found while preparing
    n_versions: int = 0
    compiled: bool = True       # False: no working C compiler, everything replays interpreted


@dataclasses.dataclass
class Report:
    """What :func:`check_compiled_many` found."""
    prepared: dict
    failures: dict          # case name -> message
    unsupported: dict       # op name -> [case names]
    build_seconds: float = 0.0


class _Raised:
    """The oracle raised: the compiled replay must raise the same type."""

    def __init__(self, exc):
        self.type = type(exc)
        self.message = str(exc)

    def __repr__(self):
        return f"raises {self.type.__name__}({self.message!r})"


# ---------------------------------------------------------------- comparison
def assert_agree(got, want, rtol=None, what="result"):
    """Assert ``got`` equals ``want`` leaf by leaf (see the module docstring)."""
    gl, gtd = pytree.flatten(got)
    wl, wtd = pytree.flatten(want)
    if gtd != wtd or len(gl) != len(wl):
        raise AssertionError(f"{what}: structure {gtd} != {wtd}")
    paths = pytree.leaf_paths(wtd, what)
    for k, (g, w) in enumerate(zip(gl, wl)):
        where = paths[k]
        if w is None or g is None:
            if not (w is None and g is None):
                raise AssertionError(f"{where}: got {g!r}, want {w!r}")
            continue
        _agree_leaf(g, w, rtol, where)


def _agree_leaf(g, w, rtol, where):
    ga, wa = np.asarray(g), np.asarray(w)
    if ga.shape != wa.shape:
        raise AssertionError(f"{where}: shape {ga.shape} != {wa.shape}")
    if ga.dtype != wa.dtype:
        raise AssertionError(f"{where}: dtype {ga.dtype} != {wa.dtype}")
    if wa.dtype.kind not in "fc":
        if not np.array_equal(ga, wa):
            bad = np.argwhere(ga != wa)[:5].tolist()
            raise AssertionError(f"{where}: {wa.dtype} values differ at {bad}: "
                                 f"got {ga[tuple(np.transpose(bad))] if bad else ga}, "
                                 f"want {wa[tuple(np.transpose(bad))] if bad else wa}")
        return
    tol = rtol if rtol is not None else RTOL.get(wa.dtype, 1e-12)
    gn, wn = np.isnan(ga), np.isnan(wa)
    if not np.array_equal(gn, wn):
        bad = np.argwhere(gn != wn)[:5].tolist()
        raise AssertionError(f"{where}: NaN positions differ at {bad}: got "
                             f"{ga[tuple(np.transpose(bad))]}, want {wa[tuple(np.transpose(bad))]}")
    gi, wi = np.isinf(ga), np.isinf(wa)
    if not np.array_equal(gi, wi) or not np.array_equal(ga[wi], wa[wi]):
        bad = np.argwhere((gi != wi) | (wi & (ga != wa)))[:5].tolist()
        raise AssertionError(f"{where}: infinities differ at {bad}: got "
                             f"{ga[tuple(np.transpose(bad))]}, want {wa[tuple(np.transpose(bad))]}")
    fin = np.isfinite(wa)
    d = ga[fin].astype(np.float64) - wa[fin].astype(np.float64)
    err = float(np.linalg.norm(d))
    ref = float(np.linalg.norm(wa[fin].astype(np.float64)))
    if not err <= tol * ref + 1e-300:
        j = int(np.argmax(np.abs(d))) if d.size else 0
        raise AssertionError(
            f"{where}: ||got - want|| = {err:.3g} > {tol:g} * ||want|| = {tol * ref:.3g} "
            f"(relative {err / ref if ref else float('inf'):.3g}); worst finite entry "
            f"got {ga[fin].ravel()[j] if d.size else None!r} want "
            f"{wa[fin].ravel()[j] if d.size else None!r}; got={_short(ga)} want={_short(wa)}")


def _short(a):
    return np.array2string(np.asarray(a), threshold=12, precision=17)


def _snapshot(x):
    """A deep copy of a result (leaves copied: later calls may reuse buffers)."""
    leaves, td = pytree.flatten(x)
    out = [np.copy(v) if isinstance(v, np.ndarray) else copy.copy(v) for v in leaves]
    return pytree.unflatten(td, out)


def _cotangent(out, seed):
    """A fixed pseudo-random cotangent shaped like ``out`` (its dtypes)."""
    rng = np.random.default_rng(seed)
    leaves, td = pytree.flatten(out)
    cot = []
    for v in leaves:
        a = np.asarray(v)
        c = rng.standard_normal(a.shape) + 0.5
        cot.append(c.astype(a.dtype) if a.ndim else a.dtype.type(c))
    return pytree.unflatten(td, cot)


def _versions(rf):
    return [v for vs in rf._versions.values() for v in vs]


# ---------------------------------------------------------------- preparing
def _oracle(p):
    """Run the interpreter on every argument set; remember results or raises."""
    rf = p.rf
    for j, args in enumerate(p.argsets):
        res = {}
        with np.errstate(all="ignore"):
            for mode in p.modes:
                try:
                    if mode == "call":
                        res[mode] = _snapshot(rf(*args))
                    elif mode == "grad":
                        res[mode] = _snapshot(rf.value_and_grad(*args))
                    else:
                        out, pull = rf.vjp(*args)
                        cot = _cotangent(out, 1000 + j)
                        p.cotangents[j] = cot
                        res[mode] = _snapshot((out, pull(cot)))
                except Exception as e:       # noqa: BLE001  (the compiled replay must agree)
                    res[mode] = _Raised(e)
        p.oracle.append(res)
    p.n_versions = rf.n_versions


def _prepare_one(case):
    p = Prepared(case)
    try:
        with np.errstate(all="ignore"):
            p.rf = record(case.fun, *case.args, argnums=case.argnums)
    except Exception as e:        # noqa: BLE001
        p.errors.append(f"recording failed: {type(e).__name__}: {e}")
        return p
    p.ct = p.rf.compile()
    p.argsets = [tuple(case.args)] + [tuple(a) for a in case.replays]
    if case.modes is not None:
        p.modes = tuple(case.modes)
    else:
        out = p.rf.tape.outputs
        t = p.rf.tape
        dts = [np.dtype(t.dtype(s)) for s in out]
        if len(out) == 1 and t.shape(out[0]) == () and dts[0].kind == "f":
            p.modes = ("call", "grad") if case.call else ("grad",)
        elif out and all(d.kind == "f" for d in dts):
            p.modes = ("call", "vjp")
        else:
            p.modes = ("call",)
    _oracle(p)
    return p


def _lower(p):
    from .codegen import NativeTape, Unsupported
    for v in _versions(p.rf):
        for key, tape in (("primal", v.tape), ("grad", v.grad_tape), ("vjp", v.vjp_tape)):
            if tape is None or (key == "primal" and not {"call", "vjp"} & set(p.modes)):
                continue
            try:
                nt = NativeTape(tape)
            except Unsupported as e:
                p.unsupported.append((v, key, e.op, str(e)))
                continue
            except Exception as e:   # noqa: BLE001  (a generator bug: report it)
                p.errors.append(f"lowering the {key} tape raised {type(e).__name__}: {e}")
                continue
            p.natives.append((v, key, nt))


def _errors_by_function(err):
    """``{function name: its part of the compiler output}`` for a CompileError."""
    import re
    text = getattr(err, "compiler_output", "") or str(err)
    out, cur = {}, None
    for line in text.splitlines():
        m = re.search(r"In function .(td_[0-9a-f]+)", line)
        if m:
            cur = m.group(1)
            out.setdefault(cur, [])
        elif cur is not None:
            out[cur].append(line)
    return {k: "\n".join(v[:40]) for k, v in out.items()
            if any("error" in line for line in v)}


def _compile_chunk(nts, hint):
    """Build ``nts`` into one module, leaving out tapes that do not compile:
    first those the compiler names, else by bisection. Returns ``{tape name:
    compiler output}`` of the tapes left out."""
    from .codegen import build
    from .runtime import CompileError
    dropped = {}

    def attempt(chunk, hint, retry):
        if not chunk:
            return
        try:
            build(chunk, name_hint=hint)
        except CompileError as e:
            named = _errors_by_function(e)
            if len(chunk) == 1:
                dropped[chunk[0].name] = named.get(chunk[0].name) or str(e)[:3000]
                return
            if retry and named and any(t.name in named for t in chunk):
                for t in chunk:
                    if t.name in named:
                        dropped[t.name] = named[t.name]
                attempt([t for t in chunk if t.name not in named], hint, False)
                return
            h = len(chunk) // 2
            attempt(chunk[:h], hint + "a", retry)
            attempt(chunk[h:], hint + "b", retry)
    attempt(list(nts), hint, True)
    return dropped


_FORK_CHUNKS = []


def _child_build(k, hint, conn):
    """In a forked child: compile chunk ``k`` into the on-disk cache, send back
    what was left out, exit."""
    import os
    try:
        conn.send(_compile_chunk(_FORK_CHUNKS[k], hint))
        code = 0
    except BaseException:        # noqa: BLE001  (the parent compiles it again and reports)
        code = 1
    finally:
        conn.close()
    os._exit(code)


def _prebuild(chunks, hints):
    """Compile the chunks in parallel, one forked process each (the compile
    lock of :mod:`tapediff.runtime` serialises builds within a process). The
    children fill the on-disk cache, from which the parent then loads the
    modules; returns per chunk the tapes left out (None where unknown)."""
    import multiprocessing as mp
    global _FORK_CHUNKS
    results = [None] * len(chunks)
    try:
        ctx = mp.get_context("fork")
    except ValueError:
        return results
    _FORK_CHUNKS = chunks
    try:
        procs = []
        for k in range(len(chunks)):
            recv, send = ctx.Pipe(duplex=False)
            pr = ctx.Process(target=_child_build, args=(k, hints[k], send))
            pr.start()
            send.close()
            procs.append((pr, recv))
        for k, (pr, recv) in enumerate(procs):
            try:
                results[k] = recv.recv()
            except (EOFError, OSError):
                pass
            pr.join()
    except OSError:
        pass
    finally:
        _FORK_CHUNKS = []
    return results


def _build_all(prepared, name_hint, jobs=1):
    """Compile every lowered tape (in ``jobs`` modules, built in parallel); a
    tape that does not compile is reported in its case's errors and left out."""
    items = [(p, v, key, nt) for p in prepared for v, key, nt in p.natives]
    by_name = {}
    for it in items:
        by_name.setdefault(it[3].name, []).append(it)
    jobs = max(1, min(jobs, len(by_name)))
    # balance the chunks by source size (compile time is about proportional)
    chunks, sizes = [[] for _ in range(jobs)], [0] * jobs
    for n in sorted(by_name, key=lambda n: -len(by_name[n][0][3].text)):
        k = sizes.index(min(sizes))
        chunks[k] += [it[3] for it in by_name[n]]
        sizes[k] += len(by_name[n][0][3].text) + 3000      # + the cffi wrapper
    hints = [f"{name_hint}{k}" if jobs > 1 else name_hint for k in range(jobs)]
    known = _prebuild(chunks, hints) if jobs > 1 else [None] * jobs
    dropped = {}
    for chunk, hint, left_out in zip(chunks, hints, known):
        if left_out is not None:     # the child's build, loaded from the cache
            rest = [t for t in chunk if t.name not in left_out]
            more = _compile_chunk(rest, hint) if rest else {}
            dropped.update(left_out)
            dropped.update(more)
        else:
            dropped.update(_compile_chunk(chunk, hint))
    for p in prepared:
        for v, key, nt in list(p.natives):
            if nt.name in dropped:
                p.errors.append(f"the {key} tape does not compile ({nt.name}):\n"
                                f"{dropped[nt.name]}")
                p.natives.remove((v, key, nt))
            else:
                v.native[key] = nt


def prepare_many(cases, name_hint="corpus", jobs=1):
    """Record, run the oracle, lower and compile all ``cases`` (one module per
    job; ``jobs`` modules are compiled in parallel processes).

    Returns ``{name: Prepared}``. Cases that fail to prepare carry the reason
    in ``Prepared.errors`` (and fail in :func:`check_prepared`)."""
    from .runtime import compiler_available
    names = [c.name for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"case names must be unique: {sorted(dup)}")
    prepared = [_prepare_one(c) for c in cases]
    for p in prepared:
        if p.rf is not None:
            _lower(p)
    if compiler_available():
        _build_all([p for p in prepared if p.natives], name_hint, jobs)
    else:
        for p in prepared:
            p.natives, p.compiled = [], False
    return {p.case.name: p for p in prepared}


# ---------------------------------------------------------------- checking
def _run(p, mode, args, j):
    ct = p.ct
    if mode == "call":
        return _snapshot(ct(*args))
    if mode == "grad":
        return _snapshot(ct.value_and_grad(*args))
    out, pull = ct.vjp(*args)
    return _snapshot((out, pull(p.cotangents[j])))


def check_prepared(p):
    """Replay ``p``'s compiled entry points on every argument set and compare
    with the oracle; raises AssertionError describing the first mismatch."""
    from . import compiled
    if p.errors:
        raise AssertionError(f"{p.case.name}: " + "\n".join(p.errors))
    # the unsupported ops must warn on first use (the warning is issued once per
    # op and process: forget earlier ones)
    ops = {op for v, key, op, _ in p.unsupported if key not in v.native}
    with compiled._warn_lock:
        for op in ops:
            compiled._warned.discard(("op", op))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(all="ignore"):
            for j, args in enumerate(p.argsets):
                for mode in p.modes:
                    want = p.oracle[j][mode]
                    what = f"{p.case.name}: {mode} on argument set {j}"
                    if isinstance(want, _Raised):
                        try:
                            _run(p, mode, args, j)
                        except want.type:
                            continue
                        except Exception as e:       # noqa: BLE001
                            raise AssertionError(f"{what}: raised {type(e).__name__}: {e}; the "
                                                 f"interpreter {want!r}") from e
                        raise AssertionError(f"{what}: returned; the interpreter {want!r}")
                    got = _run(p, mode, args, j)
                    assert_agree(got, want, p.case.rtol, what)
    for v, key, nt in p.natives:
        if v.native.get(key) is not nt:
            raise AssertionError(f"{p.case.name}: the installed {key} tape was replaced")
    if p.rf.n_versions != p.n_versions:
        raise AssertionError(f"{p.case.name}: compiled replays recorded "
                             f"{p.rf.n_versions - p.n_versions} new version(s)")
    msgs = [str(w.message) for w in caught if issubclass(w.category, compiled.CompileWarning)]
    for op in ops if p.compiled else ():
        used = [(v, key) for v, key, o, _ in p.unsupported if o == op]
        if any(key in v.native for v, key in used) and not any(op in m for m in msgs):
            raise AssertionError(f"{p.case.name}: the tape holding {op!r} replayed "
                                 f"interpreted without a CompileWarning (got {msgs})")
    for v, key, op, _ in p.unsupported:
        if v.native.get(key, None) is not None:
            raise AssertionError(f"{p.case.name}: {key} tape holding {op!r} got native code")


def unsupported_ops(prepared):
    """``{op: [case names]}`` over prepared cases."""
    out = {}
    for name, p in prepared.items():
        for _, key, op, _ in p.unsupported:
            lst = out.setdefault(op, [])
            if name not in lst:
                lst.append(name)
    return out


def check_compiled_many(cases, name_hint="corpus", jobs=1):
    """Prepare (see :func:`prepare_many`) and check every case; returns a :class:`Report`."""
    import time
    t0 = time.perf_counter()
    prepared = prepare_many(cases, name_hint, jobs)
    t1 = time.perf_counter()
    failures = {}
    for name, p in prepared.items():
        try:
            check_prepared(p)
        except AssertionError as e:
            failures[name] = str(e)
    return Report(prepared, failures, unsupported_ops(prepared), t1 - t0)

