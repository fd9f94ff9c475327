"""Loop blocks: repeated recorded blocks are stored once and replay exactly."""
import numpy as np
import pytest

import tapediff as td
from tapediff.api import trace
from tapediff.interpreter import Plan
from tapediff.passes import adjoint
from tapediff.testing import check_grads, check_replay


def taylor(x, n):
    s = x * 0
    for i in range(1, n + 1):
        s = s + x ** i / i
    return s


def scans(tape):
    params = [tape.attrs[tape.attr[i]] for i in range(len(tape))]
    return [p for p in params if "body" in p]


def unfolded_gradient(f, args, argnums):
    """Reference: the same program recorded flat (folding disabled)."""
    import tapediff.api as api
    orig = api.fold
    api.fold = lambda t: t
    try:
        return td.value_and_grad(f, argnums)(*args)
    finally:
        api.fold = orig


def test_taylor_is_one_scan_and_size_does_not_grow_with_trips():
    small = td.record(taylor, 0.5, 100).tape
    big = td.record(taylor, 0.5, 20_000).tape
    (p,) = scans(big)
    assert p["trips"] == 20_000 and len(p["body"]) == 3
    assert len(big) == len(small) and big.n_slots == small.n_slots
    # the exponents and divisors are affine per-iteration inputs: nothing stacked
    assert all(spec[0] == "affine" for spec in p["xs"])
    v, g = td.record(taylor, 0.5, 20_000).value_and_grad(0.25, 20_000)
    assert v == pytest.approx(-np.log(0.75), rel=1e-13) and g == pytest.approx(1 / 0.75)


def heat(u0, alpha, steps=30):
    u = u0.copy()
    for _ in range(steps):
        un = u.copy()
        un[1:-1] = u[1:-1] + alpha * (u[2:] - 2 * u[1:-1] + u[:-2])
        u = un
    return np.sum(u ** 2)


def test_heat_equation_folds_and_matches_the_flat_gradient():
    u0 = np.sin(np.linspace(0, np.pi, 12)) + 0.05 * np.cos(np.arange(12.0))
    tape = td.record(heat, u0, 0.2, argnums=(0, 1))
    assert [p["trips"] for p in scans(tape.tape)] == [30]
    v, (gu, ga) = tape.value_and_grad(u0, 0.2)
    v2, (gu2, ga2) = unfolded_gradient(heat, (u0, 0.2), (0, 1))
    assert v == v2
    np.testing.assert_allclose(gu, gu2, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(ga, ga2, rtol=1e-13)
    check_grads(heat, u0, 0.2)
    check_replay(heat, (u0, 0.2), (u0[::-1].copy(), 0.15), argnums=(0, 1))


def test_value_of_last_iteration_used_after_the_loop_is_carried():
    def f(x):
        s = x * 0
        for i in range(10):
            t = np.sin(x * i)        # not carried, but read after the loop
            s = s + t
        return s * t
    x = np.array([0.3, 0.7])
    tape = td.record(lambda x: np.sum(f(x)), x)
    assert scans(tape.tape)
    check_grads(f, x)
    np.testing.assert_allclose(tape.gradient(x * 2), td.grad(lambda x: np.sum(f(x)))(x * 2))


def test_reading_an_earlier_iteration_after_the_loop_is_correct():
    def f(x):
        xs = []
        y = x
        for _ in range(8):
            y = np.tanh(y) * 1.5
            xs.append(y)
        return np.sum(np.stack(xs) * np.arange(1.0, 9.0)[:, None])
    x = np.array([0.2, -0.4])
    check_grads(f, x)
    check_replay(f, (x,), (x * 3,))


def test_loop_folds_after_the_iterations_read_later():
    """Iterations whose values the code after the loop reads stay unrolled;
    the loop folds from the one after the last of them (the finder skips the
    starts it knows will fail, not the ones after)."""
    def f(x):
        vals, s = [], x
        for _ in range(12):
            s = np.sin(s) * 0.5
            vals.append(s)
        return np.sum(vals[1] * s)
    tape = td.record(f, np.ones(3)).tape
    scans = [i for i in range(len(tape)) if tape.instr(i)[0].name == "scan"]
    assert len(scans) == 1 and tape.attrs[tape.attr[scans[0]]]["trips"] == 10
    check_replay(f, (np.ones(3),), (np.linspace(-1.0, 1.0, 3),))


def test_uniform_nested_loops_fold_into_one_scan():
    def f(x):
        s = x * 0
        for i in range(6):
            for j in range(5):
                s = s + np.sin(x * (j + 1)) * (i + 1)
        return np.sum(s)
    (p,) = scans(td.record(f, np.array([0.1, 0.2])).tape)
    assert p["trips"] == 30
    check_grads(f, np.array([0.1, 0.2]))


def test_nested_loops_fold_inside_out():
    def f(x):
        s = x * 0
        for i in range(6):
            for j in range(5):
                s = s + np.sin(x * (j + 1))
            s = s * 0.5 + x
        return np.sum(s)
    tape = td.record(f, np.array([0.1, 0.2]))
    # 6 x (5 x 3 + 2) instructions recorded; folded into a scan whose body holds a scan
    assert len(tape.tape) < 10
    assert any(scans(p["body"]) for p in scans(tape.tape))
    check_replay(f, (np.array([0.1, 0.2]),), (np.array([-0.3, 0.5]),))
    check_grads(f, np.array([0.1, 0.2]))


def test_guards_inside_a_loop_body_replay_across_outcomes():
    def f(x):
        s = x[0] * 0
        for _ in range(12):
            if s > 1.0:               # a guard in every iteration
                s = s * 0.5
            s = s + x[0] * x[1]
        return s
    x = np.array([0.3, 0.9])
    tape = td.record(f, x)
    for x2 in (x, np.array([1.5, 1.0]), np.array([0.01, 0.01]), np.array([-1.0, 2.0])):
        v, g = tape.value_and_grad(x2)
        v2, g2 = td.value_and_grad(f)(x2)
        assert v == v2
        np.testing.assert_allclose(g, g2, rtol=1e-14)


def test_float32_loop_keeps_float32_with_weak_constants():
    x = np.float32(0.5)
    tape = td.record(taylor, x, 50)
    v, g = tape.value_and_grad(np.float32(0.25), 50)
    assert v.dtype == np.float32 and g.dtype == np.float32
    assert v == pytest.approx(-np.log(0.75), rel=1e-5)


def test_forward_mode_through_a_loop():
    u0 = np.linspace(0.0, 1.0, 8) ** 2
    t = np.cos(np.arange(8.0))
    y, jv = td.jvp(lambda u: heat(u, 0.1), (u0,), (t,))
    g = td.grad(lambda u: heat(u, 0.1))(u0)
    assert jv == pytest.approx(np.dot(g, t), rel=1e-12)


def test_second_derivative_through_a_loop():
    f = lambda x: taylor(x, 30)  # noqa: E731
    d2 = td.grad(lambda x: td.grad(f)(x))(0.3)
    want = sum(i * (i - 1) / i * 0.3 ** (i - 2) for i in range(2, 31))
    assert d2 == pytest.approx(want, rel=1e-12)


def test_reverse_tape_of_a_loop_is_small():
    tape = td.record(taylor, 0.5, 5000)
    tape.value_and_grad(0.5, 5000)
    plan = tape._current.grad_plan
    assert len(plan.tape) < 50


def test_scan_interpreter_matches_unrolled_values():
    def f(x):
        y = x
        for k in range(7):
            y = np.sin(y) + x * k
        return y
    x = np.array([0.1, 0.5, -0.7])
    tape, _, _ = trace(f, (x,), (0,))
    assert scans(tape)
    np.testing.assert_array_equal(Plan(tape).run([x])[0], f(x))
    vals = Plan(tape, inplace=False, free=False).run([x], keep_all=True)
    T, res = adjoint.forward(tape, vals, {tape.inputs[0]: np.ones(3)})
    assert res[1].shape == (3,)


def counter_fill(x):
    z = np.zeros(x.shape[0], like=x)
    for i in range(x.shape[0]):
        z[i] = x[i] ** 2 + np.sin(x[i])
    return np.sum(z * np.arange(x.shape[0]))


def counter_pairs(x):
    s = x[0] * 0
    for i in range(1, x.shape[0]):
        s = s + x[i] * x[i - 1]          # two counters, same step
    return s


def counter_strided(x):
    s = x[0] * 0
    for i in range(x.shape[0] // 2):
        s = s + np.tanh(x[2 * i]) * x[2 * i + 1]   # step 2
    return s


def counter_2d(a):
    s = a[0, 0] * 0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            s = s + a[i, j] * (i + 1) - a[j, i] ** 2
    return s


@pytest.mark.parametrize("f, shape", [(counter_fill, (40,)), (counter_pairs, (40,)),
                                      (counter_strided, (40,)), (counter_2d, (6, 6))])
def test_loops_indexing_with_their_counter_fold(f, shape):
    x = np.random.default_rng(3).uniform(0.2, 1.2, size=shape)
    tape = td.record(f, x)
    assert tape.tape.n_recorded > 5 * len(tape.tape)      # stored once, not per iteration
    check_grads(f, x)
    check_replay(f, (x,), (x[::-1].copy(),))
    flat_v, flat_g = unfolded_gradient(f, (x,), 0)
    v, g = tape.value_and_grad(x)
    assert v == pytest.approx(flat_v, rel=1e-13)
    np.testing.assert_allclose(g, flat_g, rtol=1e-12, atol=1e-14)


def test_counter_fill_through_a_view_and_reading_back():
    def f(x):
        z = np.zeros(x.shape[0] + 1, like=x)
        v = z[1:]
        for i in range(x.shape[0]):
            v[i] = x[i] * 3.0 + z[i]          # reads the previous write through z
        return np.sum(z * z)
    x = np.linspace(0.1, 1.0, 12)
    check_grads(f, x)
    check_replay(f, (x,), (x * 2,))
