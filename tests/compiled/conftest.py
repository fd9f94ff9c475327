"""Compiled-replay corpus: built once per group and session, in parallel.

``corpus(group)`` records the group's cases (tests/compiled/cases.py), runs the
interpreter on every argument set, lowers every tape and compiles them into
a few modules (one per CPU, built in forked processes); the tests then only
replay. The unsupported ops met are listed at the end of the run.
"""
import os
import time

import pytest

from tapediff.testing_compiled import prepare_many, unsupported_ops

GROUPS = {
    "elementwise": ("unary/", "binary/", "inactive/"),
    "ops": ("reduce/", "shape/", "index/", "write/", "matmul/", "select/", "linalg/", "more/"),
    "programs": ("loop/", "guard/", "prog/"),
}

_built = {}
_timings = {}


def group_of(name):
    for g, prefixes in GROUPS.items():
        if name.startswith(prefixes):
            return g
    raise KeyError(name)


def _prepare(group):
    from tests.compiled.cases import CASES
    if group not in _built:
        cases = [c for c in CASES if group_of(c.name) == group]
        # debug information is not needed here and costs a quarter of the build
        old = os.environ.get("CFLAGS")
        os.environ["CFLAGS"] = f"{old} -g0" if old else "-g0"
        t0 = time.perf_counter()
        try:
            _built[group] = prepare_many(cases, name_hint=f"corpus_{group}",
                                         jobs=min(4, os.cpu_count() or 1))
        finally:
            if old is None:
                del os.environ["CFLAGS"]
            else:
                os.environ["CFLAGS"] = old
        _timings[group] = (len(cases), time.perf_counter() - t0)
    return _built[group]


@pytest.fixture(scope="session")
def corpus():
    """``corpus(group)`` -> ``{case name: Prepared}`` (built on first use)."""
    return _prepare


def pytest_terminal_summary(terminalreporter):
    if not _built:
        return
    tr = terminalreporter
    tr.section("compiled corpus")
    for g, (n, sec) in _timings.items():
        prep = _built[g]
        ntapes = sum(len(p.natives) for p in prep.values())
        tr.write_line(f"{g}: {n} cases, {ntapes} compiled tapes, prepared in {sec:.1f} s")
    ops = {}
    for prep in _built.values():
        for op, names in unsupported_ops(prep).items():
            ops.setdefault(op, []).extend(names)
    for op, names in sorted(ops.items()):
        tr.write_line(f"not lowered: {op}: {', '.join(names)}")
    from tests.compiled.test_cuda_source import CUDA_COUNTS, CUDA_UNSUPPORTED
    for g, (n_ok, n_all) in sorted(CUDA_COUNTS.items()):
        tr.write_line(f"CUDA {g}: {n_ok} of {n_all} tapes lowered and compiled with nvcc --ptx")
    for op, names in sorted(CUDA_UNSUPPORTED.items()):
        tr.write_line(f"not lowered for CUDA: {op}: {', '.join(sorted(names))}")
