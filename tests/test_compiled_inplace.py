"""CompiledFunction(..., out=): results written into the caller's arrays,
arguments updated in place only when that cannot change a result."""
import os
import subprocess
import sys

import numpy as np
import pytest

import tapediff as td
from tapediff.errors import TapediffError
from tapediff.runtime import compiler_available

needs_cc = pytest.mark.skipif(not compiler_available(), reason="no working C compiler")


def interpreted(f, *args):
    """The oracle: f on copies of the arguments."""
    return f(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])


def native_text(ct):
    v = ct.recorded._current
    (nt,) = [nt for k, nt in v.native.items() if k[0] == "primal_into"]
    return nt.text


@needs_cc
def test_update_in_place_writes_the_arguments_directly():
    def step(w, m, g):
        m = 0.9 * m + g
        return w - 0.1 * m, m
    rng = np.random.default_rng(0)
    w, m, g = rng.normal(size=(3, 50))
    ref = interpreted(step, w, m, g)
    ct = td.record(step, w, m, g).compile()
    ids = id(w), id(m)
    res = ct(w, m, g, out=(w, m))
    assert (id(res[0]), id(res[1])) == ids
    np.testing.assert_allclose(w, ref[0], rtol=1e-15)
    np.testing.assert_allclose(m, ref[1], rtol=1e-15)
    text = native_text(ct)
    # stored straight into the donated arrays: no workspace copy loop
    assert text.count("O[0]") == 1 and text.count("O[1]") == 1 and "W +" not in text
    for _ in range(3):                        # the fast path gives the same as the oracle
        ref = interpreted(step, w, m, g)
        ct(w, m, g, out=(w, m))
        np.testing.assert_allclose(w, ref[0], rtol=1e-15)


@pytest.mark.parametrize("f", [
    lambda w, g: w + w[::-1] * g,                      # reads w at other indices
    lambda w, g: (w[1:] - w[:-1]).sum() * g + w,       # a reduction of w feeds the update
    lambda w, g: np.cumsum(w) + g,                     # a kernel reads all of w
], ids=["reversed", "reduction", "cumsum"])
def test_reads_of_the_old_value_elsewhere_are_respected(f):
    rng = np.random.default_rng(1)
    w, g = rng.normal(size=(2, 40))
    ct = td.record(f, w, g).compile()
    for _ in range(3):
        ref = interpreted(f, w, g)
        ct(w, g, out=w)
        np.testing.assert_allclose(w, ref, rtol=1e-13, atol=1e-14)


def test_swapped_and_unchanged_outputs():
    def f(a, b):
        return b * 2.0, a + 1.0, a
    a0, b0 = np.arange(6.0), np.arange(6.0, 12.0)
    ct = td.record(f, a0, b0).compile()
    a, b = a0.copy(), b0.copy()
    third = np.empty(6)
    r = ct(a, b, out=(a, b, third))        # a <- 2b, b <- a + 1, third <- the old a
    np.testing.assert_array_equal(a, b0 * 2.0)
    np.testing.assert_array_equal(b, a0 + 1.0)
    np.testing.assert_array_equal(third, a0)
    assert r[2] is third


def test_none_leaves_are_allocated_fresh_on_every_call():
    def f(w):
        return np.sum(w), w * 0.5
    w = np.ones(4)
    ct = td.record(f, w).compile()
    s1, _ = ct(w, out=(None, w))
    s2, _ = ct(w, out=(None, w))
    assert float(s1) == 4.0 and float(s2) == 2.0
    np.testing.assert_array_equal(w, np.full(4, 0.25))


def test_a_failed_guard_leaves_the_arguments_for_the_new_version():
    def f(w, x):
        y = w * 0.5
        if np.sum(x) > 0:
            return y + x
        return y - x
    w, x = np.ones(5), np.ones(5)
    ct = td.record(f, w, x).compile()
    ct(w, x, out=w)
    np.testing.assert_array_equal(w, np.full(5, 1.5))
    ct(w, -x, out=w)                       # the other branch: updated once, correctly
    np.testing.assert_array_equal(w, np.full(5, 1.75))
    assert ct.recorded.n_versions == 2
    ct(w, x, out=w)
    np.testing.assert_array_equal(w, np.full(5, 1.875))


def test_a_singular_solve_raises_and_leaves_the_arguments():
    def f(A, b):
        return np.linalg.solve(A, b) + b
    A, b = np.eye(3), np.ones(3)
    ct = td.record(f, A, b).compile()
    ct(A, b, out=b)
    np.testing.assert_array_equal(b, np.full(3, 2.0))
    with pytest.raises(np.linalg.LinAlgError):
        ct(np.zeros((3, 3)), b, out=b)
    np.testing.assert_array_equal(b, np.full(3, 2.0))


def test_a_failed_cholesky_leaves_the_arguments():
    def f(w, A):          # the factor reads the new w: w's loop runs first
        w2 = w * 2.0
        return w2, np.linalg.cholesky(A + w2[0] * np.eye(3))
    w, A = np.ones(3), np.eye(3) * 4
    ct = td.record(f, w, A).compile()
    ct(w, A, out=(w, None))
    np.testing.assert_array_equal(w, np.full(3, 2.0))
    with pytest.raises(np.linalg.LinAlgError, match="positive definite"):
        ct(w, -2 * A, out=(w, None))
    np.testing.assert_array_equal(w, np.full(3, 2.0))


def test_bad_out_arrays_are_refused_naming_the_result():
    def f(w, g):
        return w + g, w * g
    w, g = np.ones(6), np.ones(6)
    ct = td.record(f, w, g).compile()
    with pytest.raises(TapediffError, match="overlaps argument array 0 without being it"):
        ct(w, g, out=(w[:], None))
    with pytest.raises(TapediffError, match=r"got float64 \(6,\) not C-contiguous"):
        ct(w, g, out=(np.ones(12)[::2], None))
    with pytest.raises(TapediffError, match=r"result 1 needs a writable C-contiguous float64 "
                                            r"array of shape \(6,\); got float32"):
        ct(w, g, out=(None, np.ones(6, np.float32)))
    with pytest.raises(TapediffError, match="one argument array is given for two results"):
        ct(w, g, out=(w, w))
    with pytest.raises(TapediffError, match="expected a tuple of 2 entries"):
        ct(w, g, out=(w,))
    big = np.zeros(12)
    with pytest.raises(TapediffError, match="results 0 and 1 overlap"):
        ct(w, g, out=(big[:6], big[3:9]))
    # the fast path re-checks a new argument array against the outputs
    out = (np.empty(6), np.empty(6))
    ct(w, g, out=out)
    with pytest.raises(TapediffError, match="overlaps argument array 1"):
        ct(w, out[1][:], out=out)


def test_without_a_compiler_out_calls_and_fused_steps_replay_interpreted():
    code = """
import warnings
import numpy as np, tapediff as td
from tapediff.optim import Adam
from tapediff.train import train_step
warnings.simplefilter("ignore", td.CompileWarning)
def step(w, m, g):
    m = 0.9 * m + g
    return w - 0.1 * m, m
w, m, g = np.ones(4), np.zeros(4), np.arange(4.0)
ct = td.record(step, w, m, g).compile()
r = ct(w, m, g, out=(w, m))
assert r[0] is w and np.allclose(w, 1 - 0.1 * np.arange(4.0)), w
def loss(p, x):
    return np.sum((p["a"] * x - 1.0) ** 2)
p, q = {"a": np.ones(3)}, {"a": np.ones(3)}
fused = train_step(loss, p, Adam(p, lr=0.1), np.arange(3.0))
plain = train_step(loss, q, Adam(q, lr=0.1), np.arange(3.0), backend="interpreted")
for _ in range(5):
    assert fused(np.arange(3.0)) == plain(np.arange(3.0))
assert np.array_equal(p["a"], q["a"])
def f(a, b):
    return b * 2.0, a + 1.0, a
a0, b0 = np.arange(6.0), np.arange(6.0, 12.0)
a, b, third = a0.copy(), b0.copy(), np.empty(6)
td.record(f, a0, b0).compile()(a, b, out=(a, b, third))
assert np.array_equal(a, 2 * b0) and np.array_equal(b, a0 + 1) and np.array_equal(third, a0)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "TAPEDIFF_DISABLE_C": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_a_scalar_result_written_into_its_argument_waits_for_the_open_loop():
    # the scalar update runs ahead of the loop that still reads the old scalar
    def f(s, v):
        return v * s, s + 1.0
    s, v = np.array(2.0), np.arange(4.0)
    ct = td.record(f, s, v).compile()
    out = ct(s, v, out=(np.empty(4), s))
    np.testing.assert_array_equal(out[0], [0.0, 2.0, 4.0, 6.0])
    assert float(s) == 3.0


def test_an_out_array_passed_as_two_arguments_is_refused():
    def f(x, y):
        return y + x[::-1]
    a = np.arange(6.0)
    ct = td.record(f, a, a.copy()).compile()
    with pytest.raises(TapediffError, match="passed as arguments 0 and 1"):
        ct(a, a, out=a)


def test_swapping_an_array_inside_the_out_container_is_seen():
    def f(w, g):
        return w + g, w * g
    w, g = np.ones(3), np.full(3, 2.0)
    ct = td.record(f, w, g).compile()
    out = [np.empty(3), np.empty(3)]
    ct(w, g, out=out)
    fresh = np.empty(3)
    out[1] = fresh
    res = ct(w, g, out=out)
    assert res[1] is fresh
    np.testing.assert_array_equal(fresh, [2.0, 2.0, 2.0])


def test_an_argument_of_another_dtype_is_not_cast_on_the_fast_path():
    def f(w, x):
        return w * x
    w, x = np.ones(3), np.arange(3.0)
    ct = td.record(f, w, x).compile()
    ct(w, x, out=w)
    with pytest.raises(TapediffError, match="dtype float32"):
        ct(w, x.astype(np.float32), out=w)
