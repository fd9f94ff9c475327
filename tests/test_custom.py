"""The custom-rule API: traced forward, traced VJP; host callbacks."""
import warnings

import numpy as np
import pytest

import tapediff as td
from tapediff.testing import check_grads


@td.custom_op
def implicit_root(theta, x0):
    """Solve x**3 + theta * x - 1 = 0 elementwise by Newton, to tolerance."""
    x = x0.copy()
    while np.max(np.abs(x ** 3 + theta * x - 1)) > 1e-13:
        x = x - (x ** 3 + theta * x - 1) / (3 * x ** 2 + theta)
    return x


@implicit_root.defvjp
def _(g, x, theta, x0):
    # F(x, theta) = 0  =>  dx/dtheta = -(dF/dx)^-1 dF/dtheta = -x / (3x^2 + theta)
    return (-g * x / (3 * x ** 2 + theta), None)


@implicit_root.defjvp
def _(t, x, theta, x0):
    return None if t[0] is None else -t[0] * x / (3 * x ** 2 + theta)


def objective(theta):
    x = implicit_root(theta, np.ones_like(theta))
    return np.sum(x ** 2 * np.arange(1.0, theta.size + 1))


def test_implicit_function_gradient_matches_finite_differences():
    theta = np.array([0.5, 1.0, 2.0, 3.5])
    check_grads(objective, theta, rtol=1e-6)


def test_iterations_are_recorded_without_derivatives_and_replay():
    theta = np.array([0.5, 1.0])
    tape = td.record(objective, theta)
    # the Newton updates are inactive: only the link and the objective are active
    t = tape.tape
    n_active = sum(1 for i in range(len(t)) if t.out[i] >= 0 and t.active(t.out[i]))
    assert n_active <= 6
    theta2 = np.array([4.0, 0.25])   # needs another number of iterations: re-recorded
    v, g = tape.value_and_grad(theta2)
    v2, g2 = td.value_and_grad(objective)(theta2)
    np.testing.assert_allclose(g, g2, rtol=1e-12)


def test_custom_op_without_rule_raises():
    op = td.custom_op(lambda x: x * 2, name="norule")
    with pytest.raises(td.UnsupportedOperation, match="norule.*defvjp"):
        td.grad(lambda x: np.sum(op(x)))(np.ones(2))


def test_custom_op_on_plain_arrays_just_runs():
    assert implicit_root(np.array([0.0]), np.array([1.0]))[0] == pytest.approx(1.0)


def test_host_op_warns_and_differentiates():
    sq = td.host_op(lambda x: x * x, vjp=lambda g, out, x: (2 * g * x,), name="sq")
    with pytest.warns(td.HostCallbackWarning, match="sq.*Python"):
        tape = td.record(lambda x: np.sum(sq(x) * 3), np.ones(3))
    np.testing.assert_allclose(tape.gradient(np.arange(3.0)), 6 * np.arange(3.0))


def test_stop_gradient():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = td.grad(lambda x: np.sum(td.stop_gradient(x) * x))(np.array([2.0, 3.0]))
    np.testing.assert_allclose(g, [2.0, 3.0])


def test_custom_rule_that_calls_grad():
    """A VJP rule may differentiate inside itself (nested recording)."""
    def energy(x):
        return np.sum(np.sin(x) * x)

    @td.custom_op
    def force(x):
        return np.cos(x) * x + np.sin(x)       # = d energy / dx, computed by hand

    @force.defvjp
    def _(g, out, x):
        # the Hessian is diagonal here: d/dx (cos x * x + sin x) = 2 cos x - x sin x;
        # get it by differentiating the gradient with tapediff itself
        diag = td.grad(lambda z: np.sum(td.grad(energy)(z)))(x)
        return (g * diag,)

    x = np.array([0.3, -1.2, 2.0])
    g = td.grad(lambda x: np.sum(force(x) ** 2))(x)
    f = np.cos(x) * x + np.sin(x)
    np.testing.assert_allclose(g, 2 * f * (2 * np.cos(x) - x * np.sin(x)), rtol=1e-12)
