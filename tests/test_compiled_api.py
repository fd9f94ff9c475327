"""The compiled entry points' contract: fallback, out=, advance, versions, threads.

Op-by-op agreement with the interpreter is in tests/compiled/."""
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tapediff as td
from tapediff.runtime import compiler_available

from .threads import run_in_threads

needs_cc = pytest.mark.skipif(not compiler_available(), reason="no working C compiler")


def loss(w, x):
    return np.sum(np.tanh(x @ w) ** 2) + 0.5 * np.sum(w * w)


def args(n=8, seed=0):
    r = np.random.default_rng(seed)
    return r.normal(size=(3,)), r.normal(size=(n, 3))


def test_disabled_compiler_falls_back_with_one_warning():
    code = """
import warnings, numpy as np, tapediff as td
warnings.simplefilter("always")
def loss(w, x):
    return np.sum(np.tanh(x @ w) ** 2)
w, x = np.ones(3), np.ones((4, 3))
rf = td.record(loss, w, x)
with warnings.catch_warnings(record=True) as caught:
    ct = rf.compile()
    v1, g1 = ct.value_and_grad(w, x)
    v2, g2 = ct.value_and_grad(w * 2, x)
    ct(w, x)
msgs = [str(c.message) for c in caught if issubclass(c.category, td.CompileWarning)]
assert len(msgs) == 1 and "no working C compiler" in msgs[0], msgs
v0, g0 = rf.value_and_grad(w * 2, x)
assert v0 == v2 and np.array_equal(g0, g2)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "TAPEDIFF_DISABLE_C": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@needs_cc
def test_out_buffers_are_written_and_returned():
    w, x = args()
    ct = td.record(loss, w, x).compile()
    g = np.empty(3)
    v, g2 = ct.value_and_grad(w, x, out=g)
    assert g2 is g
    v0, g0 = td.value_and_grad(loss)(w, x)
    np.testing.assert_allclose(g, g0, rtol=1e-12)
    assert abs(v - v0) <= 1e-12 * abs(v0)


@needs_cc
@pytest.mark.parametrize("bad", [np.empty(4), np.empty(3, np.float32), np.empty((3, 2))[:, 0],
                                 [0.0, 0.0, 0.0]])
def test_out_buffer_errors_name_the_problem(bad):
    w, x = args()
    ct = td.record(loss, w, x).compile()
    with pytest.raises(td.TapediffError, match="out="):
        ct.value_and_grad(w, x, out=bad)


@needs_cc
def test_vjp_accumulates_into_caller_buffers():
    f = lambda w, x: np.tanh(x @ w)          # noqa: E731
    w, x = args()
    ct = td.record(f, w, x).compile()
    y, pull = ct.vjp(w, x)
    np.testing.assert_allclose(y, f(w, x), rtol=1e-13)
    u = np.linspace(-1, 1, 8)
    acc = np.ones(3)
    out = pull(u, accumulate_into=acc)
    assert out is acc
    _, pull0 = td.vjp(f, w, x)
    np.testing.assert_allclose(acc, 1 + pull0(u)[0], rtol=1e-12)


@needs_cc
def test_advance_runs_k_steps():
    def step(u, a):
        un = u.copy()
        un[1:-1] = u[1:-1] + a * (u[2:] - 2 * u[1:-1] + u[:-2])
        return un
    u0 = np.sin(np.linspace(0, 3, 50))
    ct = td.record(step, u0, 0.2).compile()
    ref = u0
    for _ in range(37):
        ref = step(ref, 0.2)
    np.testing.assert_allclose(ct.advance(37, u0, 0.2), ref, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(ct.advance(0, u0, 0.2), u0)
    with pytest.raises(ValueError, match="k="):
        ct.advance(-1, u0, 0.2)


@needs_cc
def test_advance_with_a_branch_that_changes_between_steps():
    def step(u):
        return u * 0.5 if np.sum(u) > 1 else u + 1.0
    ct = td.record(step, np.ones(2)).compile()
    ref = np.ones(2)
    for _ in range(5):
        ref = step(ref)
    np.testing.assert_allclose(ct.advance(5, np.ones(2)), ref)


@needs_cc
def test_compile_grad_records_per_shape_and_reuses_the_module():
    @td.compile_grad
    def f(w, x):
        return loss(w, x)
    for n in (4, 8, 4):
        w, x = args(n)
        v, g = f(w, x)
        v0, g0 = td.value_and_grad(loss)(w, x)
        np.testing.assert_allclose(g, g0, rtol=1e-12)
    assert len(f.versions) == 2
    names = {ct.recorded._current.native["grad"].name for ct in f.versions.values()}
    assert len(names) == 1          # sizes are run-time parameters: one C function


@needs_cc
def test_two_threads_replay_one_compiled_tape():
    w, x = args(64)
    ct = td.record(loss, w, x).compile()
    ct.value_and_grad(w, x)
    inputs = [(w * (1 + 0.1 * k), x) for k in range(8)]
    want = [td.value_and_grad(loss)(*a)[1] for a in inputs]
    got = [None] * len(inputs)

    def work(ks):
        for _ in range(20):
            for k in ks:
                got[k] = ct.value_and_grad(*inputs[k])[1]
    run_in_threads(work, [(range(j, 8, 2),) for j in range(2)])
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@needs_cc
def test_guard_failure_rerecords_and_strict_raises():
    def f(x):
        return np.sum(x ** 2) if np.sum(x) > 0 else np.sum(np.sin(x))
    for strict in (False, True):
        rf = td.record(f, np.ones(3), strict=strict)
        ct = rf.compile()
        ct.value_and_grad(np.ones(3))
        if strict:
            with pytest.raises(td.BranchChanged):
                ct.value_and_grad(-np.ones(3))
            continue
        v, g = ct.value_and_grad(-np.ones(3))
        np.testing.assert_allclose(g, np.cos(-np.ones(3)), rtol=1e-14)
        assert rf.n_versions == 2
        v, g = ct.value_and_grad(np.full(3, 2.0))
        np.testing.assert_allclose(g, 4.0 * np.ones(3), rtol=1e-14)


@needs_cc
def test_singular_solve_raises_linalgerror():
    f = lambda a, b: np.sum(np.linalg.solve(a, b))       # noqa: E731
    a = np.eye(3) * 2
    ct = td.record(f, a, np.ones(3)).compile()
    with warnings.catch_warnings():
        warnings.simplefilter("error", td.CompileWarning)
        ct.value_and_grad(a, np.ones(3))
    with pytest.raises(np.linalg.LinAlgError, match="Singular"):
        ct.value_and_grad(np.ones((3, 3)), np.ones(3))


@needs_cc
def test_unsupported_op_replays_interpreted_with_a_warning(monkeypatch):
    import tapediff.compiled
    monkeypatch.setattr(tapediff.compiled, "_warned", set())   # warned once per process
    # an integer reciprocal: NumPy's 1 // 0 is the platform's, not lowered
    f = lambda x, d: np.sum(x * np.reciprocal(d))       # noqa: E731
    d = np.array([2, 1, 1, 3])
    rf = td.record(f, np.array([3.0, 1.0, 2.0, 0.0]), d)
    with pytest.warns(td.CompileWarning, match="reciprocal"):
        v, g = rf.compile().value_and_grad(np.array([0.5, 2.0, 1.0, 3.0]), d)
    v0, g0 = rf.value_and_grad(np.array([0.5, 2.0, 1.0, 3.0]), d)
    assert v == v0 and np.array_equal(g, g0)


@needs_cc
def test_out_dict_is_matched_by_key_not_by_order():
    # regression: gradients were written by insertion order, swapping entries
    f = lambda w: np.sum(w["a"] ** 2) + 3 * np.sum(w["b"])      # noqa: E731
    w = {"a": np.array([1.0, 2.0]), "b": np.array([5.0, 6.0])}
    ct = td.record(f, w).compile()
    out = {"b": np.zeros(2), "a": np.zeros(2)}
    ct.value_and_grad(w, out=out)
    np.testing.assert_array_equal(out["a"], [2.0, 4.0])
    np.testing.assert_array_equal(out["b"], [3.0, 3.0])
    with pytest.raises(td.TapediffError, match="keys"):
        ct.value_and_grad(w, out={"a": np.zeros(2)})


@needs_cc
def test_repeated_calls_with_a_python_float_argument():
    # the per-signature fast path rebuilds the gradient of a float leaf too
    ct = td.record(lambda a, x: np.sum(np.sin(a * x)), 0.5, np.ones(3)).compile()
    for _ in range(3):
        v, g = ct.value_and_grad(0.5, np.ones(3))
        assert isinstance(g, np.float64)
        assert abs(g - 3 * np.cos(0.5)) < 1e-14


@needs_cc
def test_out_buffer_aliasing_an_argument_is_refused():
    w, x = args()
    ct = td.record(loss, w, x).compile()
    with pytest.raises(td.TapediffError, match="shares memory"):
        ct.value_and_grad(w, x, out=w)
    g = np.empty(3)
    ct.value_and_grad(w, x, out=g)              # the fast path checks it too
    with pytest.raises(td.TapediffError, match="shares memory"):
        ct.value_and_grad(g, x, out=g)
