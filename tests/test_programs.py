"""End-to-end programs: each checked against finite differences and replayed."""
import numpy as np
import pytest

import tapediff as td
from tapediff.testing import check_grads, check_replay

rng = np.random.default_rng(42)


def logistic_nll(w, b, X, y):
    z = X @ w + b
    return np.mean(np.logaddexp(0.0, z) - y * z)


def test_logistic_regression():
    X = rng.normal(size=(30, 4))
    y = (rng.uniform(size=30) < 0.5).astype(np.float64)
    w, b = rng.normal(size=4), 0.3
    check_grads(logistic_nll, w, b, X, y)
    check_replay(logistic_nll, (w, b, X, y), (rng.normal(size=4), -0.2, X, 1 - y),
                 argnums=(0, 1))


def heat(u0, alpha, steps=20):
    u = u0.copy()
    for _ in range(steps):
        un = u.copy()
        un[1:-1] = u[1:-1] + alpha * (u[2:] - 2 * u[1:-1] + u[:-2])
        u = un
    return np.sum(u ** 2)


def heat_inplace(u0, alpha, steps=20):
    """The same scheme written with an in-place update of a copy."""
    u = u0.copy()
    for _ in range(steps):
        lap = u[2:] - 2 * u[1:-1] + u[:-2]
        u[1:-1] += alpha * lap
    return np.sum(u ** 2)


@pytest.mark.parametrize("f", [heat, heat_inplace])
def test_heat_equation_stepper(f):
    u0 = np.sin(np.linspace(0, np.pi, 16)) + 0.1 * rng.normal(size=16)
    check_grads(f, u0, 0.2)
    check_replay(f, (u0, 0.2), (u0[::-1].copy(), 0.1), argnums=(0, 1))
    assert f(u0, 0.2) == pytest.approx(heat(u0, 0.2), rel=1e-14)


def test_writes_through_views_and_transposes():
    def f(x):
        a = np.zeros((3, 4), like=x)
        v = a[1:, 1:3]            # a view
        v[0] = x[:2] * 3          # writes into a
        t = a.T                   # another view of a
        t[3, 2] = x[2]            # a[2, 3] = x[2]
        w = a[1]                  # sees both writes
        return np.sum(a ** 2) + np.sum(w * x[:4]) + np.sum(v)
    x = rng.normal(size=5)
    ref = np.zeros((3, 4))
    ref[1, 1:3] = x[:2] * 3
    ref[2, 3] = x[2]
    want = np.sum(ref ** 2) + np.sum(ref[1] * x[:4]) + np.sum(ref[1:, 1:3])
    assert td.record(f, x)(x) == pytest.approx(want, rel=1e-14)
    check_grads(f, x)


def test_mlp_with_dict_parameters_two_layers():
    def mlp(p, x, y):
        h = np.tanh(x @ p["l1"]["W"] + p["l1"]["b"])
        logits = h @ p["l2"]["W"] + p["l2"]["b"]
        logits = logits - np.max(logits, axis=1, keepdims=True)
        logp = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
        return -np.mean(np.sum(logp * y, axis=1))
    p = {"l1": {"W": rng.normal(size=(5, 8)) * 0.5, "b": np.zeros(8)},
         "l2": {"W": rng.normal(size=(8, 3)) * 0.5, "b": np.zeros(3)}}
    x = rng.normal(size=(6, 5))
    y = np.eye(3)[rng.integers(0, 3, size=6)]
    check_grads(mlp, p, x, y)
    check_replay(mlp, (p, x, y), (p, x * 2, y))


def test_argsort_and_mask_program_replayed_on_new_permutation():
    def f(x, data):
        order = np.argsort(data)
        m = data > 0
        return np.sum(x[order] * np.arange(1.0, 6.0)) + np.sum(np.where(m, x ** 2, 0.0))
    x = rng.normal(size=5)
    check_replay(f, (x, np.array([3.0, 1.0, -2.0, 5.0, 0.5])),
                 (x, np.array([-1.0, 4.0, 2.0, -3.0, 0.0])))


def test_float32_program_keeps_float32():
    x = rng.normal(size=(4, 3)).astype(np.float32)
    w = rng.normal(size=3).astype(np.float32)
    v, g = td.value_and_grad(lambda w, x: np.sum(np.tanh(x @ w) * 2.0) / 3)(w, x)
    assert v.dtype == np.float32 and g.dtype == np.float32
    g64 = td.grad(lambda w, x: np.sum(np.tanh(x @ w) * 2.0) / 3)(w.astype(np.float64),
                                                                   x.astype(np.float64))
    np.testing.assert_allclose(g, g64, rtol=1e-5)


def test_taylor_series_loop():
    def taylor(x, n=200):
        s = x * 0
        for i in range(1, n + 1):
            s = s + x ** i / i
        return s
    v, g = td.value_and_grad(taylor)(0.5)
    assert v == pytest.approx(-np.log(0.5), rel=1e-12)
    assert g == pytest.approx(1 / 0.5, rel=1e-10)
    tape = td.record(taylor, 0.5)
    v2, g2 = tape.value_and_grad(0.25)
    assert v2 == pytest.approx(-np.log(0.75), rel=1e-12) and g2 == pytest.approx(1 / 0.75)


def test_many_scalar_reads_have_a_linear_reverse_sweep():
    """x[i] read n times: each read's cotangent is added in place, not a full array."""
    def f(x):
        s = x[0] * 0
        for i in range(x.shape[0]):
            s = s + x[i] * x[i]
        return s
    x = np.linspace(0.0, 1.0, 400)
    tape = td.record(f, x)
    v, g = tape.value_and_grad(x)
    np.testing.assert_allclose(g, 2 * x)
    from tapediff.interpreter import loop_plan_of
    from tapediff.ops.indexing import SCATTER_ADD, SETITEM
    G = tape._current.grad_plan.tape
    # the loop is folded: its reverse is a reversed scan whose body adds each
    # read's cotangent into the running total for x, in place
    (rev,) = [G.attrs[G.attr[i]] for i in range(len(G)) if G.attrs[G.attr[i]].get("reverse")]
    R = rev["body"]
    plan, owned = loop_plan_of(R, rev["n_carry"])
    assert all(owned)
    names = [R.instr(i)[0].name for i in range(len(R))]
    assert not any(nm == "full" and R.shape(R.out[i]) == x.shape for i, nm in enumerate(names))
    writes = [st for st, nm in zip(plan.steps, names) if nm in ("setitem", "scatter_add")]
    assert writes and all(st[0] in (SETITEM.inplace, SCATTER_ADD.inplace) for st in writes)
