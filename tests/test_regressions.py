"""Regressions for silently wrong results found in review (each once reproduced)."""
import numpy as np
import pytest

import tapediff as td
from tapediff.testing import check_grads, check_replay


def test_array_constant_changed_after_use_keeps_recorded_value():
    def f(x):
        buf = np.zeros(3)
        y = x * buf
        buf[0] = 5.0                      # the plain array changes after being used
        return np.sum(y) + np.sum(buf)
    x = np.ones(3)
    v, g = td.value_and_grad(f)(x)
    assert v == f(x) == 5.0
    np.testing.assert_array_equal(g, np.zeros(3))
    assert td.record(f, x)(x) == 5.0


def test_reused_buffer_in_a_loop():
    def g(x):
        c = np.empty(3)
        s = x
        for i in range(6):
            c[:] = 0.1 * i
            s = s * 0.9 + c
        return np.sum(s ** 2)
    x = np.array([0.5, -1.0, 2.0])
    assert td.value_and_grad(g)(x)[0] == pytest.approx(g(x), rel=1e-14)
    assert td.record(g, x)(x * 2) == pytest.approx(g(x * 2), rel=1e-14)
    check_grads(g, x)


def test_closure_array_in_a_loop_is_one_invariant_constant():
    A = np.random.default_rng(0).normal(size=(30, 30)) / 30

    def f(x):
        for _ in range(20):
            x = np.tanh(A @ x)
        return np.sum(x)
    tape = td.record(f, np.ones(30)).tape
    big = [s for s in tape.consts if np.size(tape.consts[s]) >= A.size]
    assert len(big) == 1 and tape.consts[big[0]].shape == A.shape


def test_static_true_and_one_are_different_versions():
    def f(x, i):
        return np.sum(x[i] ** 2)
    x = np.arange(1.0, 6.0)
    rec = td.record(f, x, True)
    assert rec(x, 1) == f(x, 1) == 4.0
    np.testing.assert_array_equal(rec.gradient(x, 1), [0, 4, 0, 0, 0])


def test_loop_result_never_aliases_a_loop_input():
    def f(x):
        z = x * 2.0
        acc = x[0] * 0.0
        for _ in range(5):
            b = td.stop_gradient(z[1:])
            acc = acc + np.sum(b * x[1:])
        b[0] = 100.0                      # must not write into z
        return acc + np.sum(z) + b[0]
    x = np.arange(1.0, 6.0)
    recorded = td.value_and_grad(f)(x)[0]     # stop_gradient gives a new value:
    assert recorded == 670.0                  # b[0] = 100 does not write into z
    rec = td.record(f, x)
    assert rec(x) == recorded and rec.value_and_grad(x)[0] == recorded


def test_accumulator_that_changes_shape_in_first_iteration():
    def f(x):
        s = x[0] * 0.0                    # 0-d, becomes a vector by broadcasting
        for i in range(1, 8):
            s = s + x ** i / i
        return np.sum(s)
    check_grads(f, np.linspace(0.1, 0.5, 5))


def test_signed_zero_per_iteration_constants():
    def g(x):
        s = x[0] * 0 + 1.0
        for i in range(6):
            c = 0.0 if i % 2 == 0 else -0.0
            s = s + np.arctan2(c, -x[1])
        return s
    x = np.array([0.3, 0.5])
    assert td.record(g, x)(x) == g(x)
    assert td.value_and_grad(g)(x)[0] == g(x)


@pytest.mark.parametrize("kind", ["int", "array"])
def test_value_guards_find_kept_versions(kind):
    if kind == "int":
        def f(x, d):
            return np.sum(x) * int(np.sum(d))
    else:
        def f(x, d):
            return np.sum(x) + float(np.max(d))
    x = np.ones(3)
    rec = td.record(f, x, np.array([1.0, 2.0]))
    for _ in range(6):
        for d in (np.array([1.0, 2.0]), np.array([3.0, 4.0])):
            assert rec(x, d) == f(x, d)
    assert rec.n_versions == 2


def test_non_deterministic_function_gets_a_clear_error():
    state = {"k": 0.0}

    def f(x):
        state["k"] += 1.0
        buf = np.full(3, state["k"])      # a different constant on every call
        if np.sum(x * buf) > 1e9:          # guard on data times that constant
            return np.sum(x)
        return np.sum(x * 2)
    rec = td.record(f, np.ones(3))
    for _ in range(12):
        try:
            rec(np.ones(3))
        except td.TapediffError as e:
            assert "deterministic" in str(e)
            break


# ---- loop folding, second review
def test_index_constant_in_the_first_two_iterations_is_checked_on_all():
    def f(x):
        s = x[0] * 0
        for i in range(6):
            s = s + x[max(i - 1, 0)] * x[i]      # indices 0, 0, 1, 2, 3, 4
        return s
    x = np.linspace(0.3, 1.7, 8)
    assert td.value_and_grad(f)(x)[0] == pytest.approx(f(x), rel=1e-14)
    check_grads(f, x)


def test_half_step_index_is_not_a_counter():
    def f(x):
        z = np.zeros(4, like=x)
        for i in range(8):
            z[i // 2] += x[i]
        return np.sum(z ** 2)
    x = np.linspace(0.3, 1.7, 8)
    assert td.record(f, x)(x * 2) == pytest.approx(f(x * 2), rel=1e-14)
    check_grads(f, x)


@pytest.mark.parametrize("step", ["product", "sin"])
def test_trajectory_rows_of_a_2d_buffer(step):
    def f(x):
        A = x.reshape(6, 2).copy()
        for i in range(5):
            if step == "product":
                A[i + 1] = A[i + 1] * A[i]
            else:
                A[i + 1] = np.sin(A[i]) * 1.5
        return np.sum(A ** 2)
    x = np.linspace(0.3, 1.7, 12)
    check_grads(f, x)
    check_replay(f, (x,), (x[::-1].copy(),))


def test_one_cotangent_slot_shared_by_two_arguments_in_a_loop():
    def f(x):
        z = x * 1.0
        s = x[0] * 0
        for _ in range(6):
            w = np.sin(z) * 0.5
            t = z[0]
            z = w + z
            s = s + t
        return np.sum(z ** 2) + s
    check_grads(f, np.linspace(0.3, 1.7, 5))
