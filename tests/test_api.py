"""The public API: transforms, pytrees, replay, signatures, printing."""
import collections

import numpy as np
import pytest

import tapediff as td
from tapediff.testing import check_grads, check_replay

from .threads import run_in_threads

rng = np.random.default_rng(0)


def loss(w, x, y):
    p = np.tanh(x @ w["W"] + w["b"])
    return np.mean((p - y) ** 2)


def mlp_args(seed=0):
    r = np.random.default_rng(seed)
    return ({"W": r.normal(size=(4, 3)), "b": r.normal(size=3)},
            r.normal(size=(5, 4)), r.normal(size=(5, 3)))


def fd_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


def test_grad_of_mlp_matches_finite_differences():
    w, x, y = mlp_args()
    g = td.grad(loss)(w, x, y)
    assert set(g) == {"W", "b"}
    np.testing.assert_allclose(g["W"], fd_grad(lambda W: loss({"W": W, "b": w["b"]}, x, y),
                                                w["W"]), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(g["b"], fd_grad(lambda b: loss({"W": w["W"], "b": b}, x, y),
                                                w["b"]), rtol=1e-6, atol=1e-9)


def test_value_and_grad_argnums_tuple_and_negative():
    w, x, y = mlp_args()
    v, (gw, gx) = td.value_and_grad(loss, argnums=(0, -2))(w, x, y)
    assert np.isclose(v, loss(w, x, y))
    np.testing.assert_allclose(gx, fd_grad(lambda x_: loss(w, x_, y), x), rtol=1e-6, atol=1e-9)
    assert gw["W"].shape == (4, 3)


def test_bad_argnums():
    with pytest.raises(ValueError, match="argnums"):
        td.grad(loss, argnums=5)(*mlp_args())


def test_pytree_structures_and_python_floats():
    Point = collections.namedtuple("Point", "a b")

    def f(p, lst, s):
        return p.a * lst[0][1] + np.sum(p.b ** 2) * lst[1] + s

    args = (Point(2.0, np.arange(3.0)), [(1, 3.0), 0.5], 1.5)
    g = td.grad(f, argnums=(0, 1, 2))(*args)
    assert isinstance(g[0], Point)
    assert g[0].a == 3.0 and isinstance(g[0].a, np.float64)
    np.testing.assert_allclose(g[0].b, 2 * np.arange(3.0) * 0.5)
    assert g[1][0][0] is None          # a static Python int: no gradient
    assert g[1][0][1] == 2.0 and g[1][1] == np.sum(np.arange(3.0) ** 2)
    assert g[2] == 1.0


def test_integer_argument_in_argnums_is_an_error():
    with pytest.raises(TypeError, match="args\\[0\\].*integer|int64"):
        td.grad(lambda i: np.sum(i * 2.0))(np.arange(3))


def test_grad_needs_scalar_output():
    with pytest.raises(TypeError, match="vjp"):
        td.grad(lambda x: x * 2)(np.ones(3))


def test_vjp_nonscalar_and_pytree_output():
    def f(x, y):
        return {"a": x * y, "b": np.sin(x)}
    x, y = rng.normal(size=3), rng.normal(size=3)
    out, pull = td.vjp(f, x, y)
    np.testing.assert_allclose(out["a"], x * y)
    ct = {"a": np.ones(3), "b": np.arange(3.0)}
    gx, gy = pull(ct)
    np.testing.assert_allclose(gx, y + np.cos(x) * np.arange(3.0))
    np.testing.assert_allclose(gy, x)
    gx2, _ = pull({"a": 2 * np.ones(3), "b": np.zeros(3)})   # replays the reverse tape
    np.testing.assert_allclose(gx2, 2 * y)
    with pytest.raises(td.ShapeMismatch):
        pull({"a": np.ones(4), "b": np.ones(3)})


def test_jvp():
    y, t = td.jvp(lambda x: np.sum(x ** 3), (np.array([1.0, 2.0]),), (np.array([1.0, 0.5]),))
    assert np.isclose(y, 9.0) and np.isclose(t, 3 * 1 + 12 * 0.5)


def test_record_replay_many_values():
    w, x, y = mlp_args(0)
    tape = td.record(loss, w, x, y, argnums=0)
    for seed in range(1, 4):
        w2, x2, y2 = mlp_args(seed)
        v, g = tape.value_and_grad(w2, x2, y2)
        v_ref, g_ref = td.value_and_grad(loss)(w2, x2, y2)
        assert v == pytest.approx(v_ref, rel=1e-14)
        np.testing.assert_allclose(g["W"], g_ref["W"], rtol=1e-13)
        np.testing.assert_allclose(tape.gradient(w2, x2, y2)["b"], g_ref["b"], rtol=1e-13)
        assert tape(w2, x2, y2) == pytest.approx(loss(w2, x2, y2), rel=1e-14)
    assert tape.n_versions == 1


def test_replay_wrong_shape_names_argument_and_both_shapes():
    w, x, y = mlp_args()
    tape = td.record(loss, w, x, y)
    with pytest.raises(td.ShapeMismatch, match=r"args\[1\].*\(7, 4\).*\(5, 4\)"):
        tape(w, np.zeros((7, 4)), y)
    with pytest.raises(td.ShapeMismatch, match=r"args\[0\]\['b'\].*float32"):
        tape({"W": w["W"], "b": w["b"].astype(np.float32)}, x, y)
    with pytest.raises(td.ShapeMismatch, match="structure"):
        tape({"W": w["W"]}, x, y)


def test_static_argument_change_re_records():
    calls = []

    def f(x, n, mode):
        calls.append(n)
        r = x ** n
        return np.sum(r) if mode == "sum" else np.max(r)
    tape = td.record(f, np.arange(1.0, 4.0), 2, "sum")
    assert tape(np.arange(1.0, 4.0), 3, "sum") == 36.0
    assert tape(np.arange(1.0, 4.0), 2, "sum") == 14.0
    assert calls == [2, 3]   # the n=2 version was kept


def test_caller_arrays_are_never_modified():
    def f(x):
        x[0] = 100.0
        x *= 2
        return np.sum(x)
    x = np.arange(3.0)
    keep = x.copy()
    tape = td.record(f, x)
    assert tape(x) == 206.0
    v, g = tape.value_and_grad(x)
    np.testing.assert_array_equal(x, keep)
    np.testing.assert_array_equal(g, [0.0, 2.0, 2.0])


def test_outputs_do_not_alias_inputs_or_constants():
    c = np.ones(3)
    tape = td.record(lambda x: (x, c), np.zeros(3))
    a, b = tape(np.zeros(3))
    a[0] = 5
    b[0] = 5
    a2, b2 = tape(np.zeros(3))
    assert a2[0] == 0 and b2[0] == 1


def test_print_lists_constants_with_source_line():
    weights = np.linspace(0.0, 1.0, 7)

    def f(x):
        return np.sum(x * weights) * 2.0
    text = str(td.record(f, np.ones(7)))
    assert "constants:" in text and "test_api.py" in text
    assert "multiply(" in text and "2.0" in text
    assert "args[0]" in text


def test_formatting_shows_value_and_records_no_guard():
    def f(x):
        s = f"{x[0]:.2f} {x} {x!r}"
        assert "1.00" in s
        return np.sum(x)
    tape = td.record(f, np.ones(2))
    assert len(tape.tape.guards) == 0


def test_nested_grad_second_derivative():
    f = lambda x: np.sum(x ** 3)  # noqa: E731
    x = np.array([1.0, 2.0, -0.5])
    g2 = td.grad(lambda z: np.sum(td.grad(f)(z) * np.array([1.0, 0.0, 2.0])))(x)
    np.testing.assert_allclose(g2, 6 * x * np.array([1.0, 0.0, 2.0]))


def test_nested_grad_inside_record():
    f = lambda x: np.sum(np.sin(x) * x)  # noqa: E731
    tape = td.record(lambda x: np.sum(td.grad(f)(x) ** 2), np.ones(3))
    x2 = np.array([0.1, 0.2, 0.3])
    ref = td.grad(lambda x: np.sum(td.grad(f)(x) ** 2))(x2)
    np.testing.assert_allclose(tape.gradient(x2), ref, rtol=1e-13)
    gf = np.sin(x2) + x2 * np.cos(x2)
    np.testing.assert_allclose(tape(x2), np.sum(gf ** 2), rtol=1e-13)


def test_two_threads_record_at_once():
    results = {}

    def work(k):
        x = np.full(50, 0.1 * k)
        for _ in range(20):
            g = td.grad(lambda z: np.sum(np.sin(z) * k))(x)
        results[k] = g
    run_in_threads(work, [(1,), (2,), (3,)])
    for k, g in results.items():
        np.testing.assert_allclose(g, k * np.cos(np.full(50, 0.1 * k)))


def test_leaked_tracer_is_an_error():
    leak = []

    def f(x):
        leak.append(x * 2)
        return np.sum(x)
    td.grad(f)(np.ones(2))
    with pytest.raises(td.LeakedTracer):
        leak[0] + 1


def test_nan_and_inf_inputs_give_ieee_results():
    f = lambda x: np.sum(np.exp(x) + np.sqrt(x))  # noqa: E731
    with np.errstate(all="ignore"):
        v, g = td.value_and_grad(f)(np.array([np.nan, np.inf, -1.0, 0.0]))
    assert np.isnan(v)
    assert np.isnan(g[0]) and np.isinf(g[1]) and np.isnan(g[2]) and np.isinf(g[3])


def test_check_replay_helper():
    check_replay(loss, mlp_args(0), mlp_args(1))


def test_check_grads_catches_a_wrong_rule():
    bad = td.custom_op(lambda x: np.sin(x), name="badsin")
    bad.defvjp(lambda g, y, x: (g * np.sin(x),))     # wrong on purpose
    bad.defjvp(lambda t, y, x: t[0] * np.cos(x))
    with pytest.raises(AssertionError, match="VJP"):
        check_grads(bad, np.array([0.3, 0.7]))


def test_unsupported_function_names_function_and_fix():
    with pytest.raises(td.UnsupportedOperation, match=r"np\.fft\.fft.*custom_op"):
        td.grad(lambda x: np.sum(np.fft.fft(x).real))(np.ones(4))


def test_sort_method_sorts_in_place_and_returns_none():
    def f(x):
        y = x * 1.0
        r = y.sort()
        assert r is None
        return np.sum(y * np.arange(3.0))
    x = np.array([3.0, 1.0, 2.0])
    assert td.vjp(f, x)[0] == f(x) == 8.0
    np.testing.assert_allclose(td.grad(f)(x), [2.0, 0.0, 1.0])


def test_np_array_of_tracked_values_honours_ndmin_and_dtype():
    def f(x):
        a = np.array(x, ndmin=3, like=x)          # like= makes NumPy dispatch to tapediff
        b = np.array([x[0], x[1]], dtype=np.float32, ndmin=2, like=x)
        assert a.shape == (1, 1, 3) and b.shape == (1, 2) and b.dtype == np.float32
        return np.sum(a) + np.sum(b)
    np.testing.assert_allclose(td.grad(f)(np.ones(3)), [2.0, 2.0, 1.0])


def test_recorded_vjp_replays_with_new_cotangents_and_inputs():
    def f(w, x):
        return {"y": np.tanh(x @ w), "s": np.sum(w ** 2)}
    w, x = rng.normal(size=(3, 2)), rng.normal(size=(4, 3))
    tape = td.record(f, w, x, argnums=0)
    for k in range(3):
        w2 = w * (k + 1)
        out, pull = tape.vjp(w2, x)
        ct = {"y": rng.normal(size=(4, 2)), "s": 2.0}
        ref_out, ref_pull = td.vjp(f, w2, x)
        np.testing.assert_allclose(out["y"], ref_out["y"])
        np.testing.assert_allclose(pull(ct), ref_pull(ct)[0], rtol=1e-13)
    with pytest.raises(td.ShapeMismatch):
        pull({"y": np.ones(3), "s": 1.0})
