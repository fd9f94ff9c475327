"""Tests of the checkpointing executor, td.checkpointed.

Every gradient is compared with the full-tape gradient of the unrolled
program (td.value_and_grad of a loop calling the step n_steps times).
"""
import numpy as np
import pytest

import tapediff as td
from tapediff import pytree
from tapediff.checkpoint import revolve

RTOL = 1e-10


# --------------------------------------------------------------------------- problems

def heat_step(u, p):
    un = u.copy()
    un[1:-1] = u[1:-1] + p["alpha"] * (u[2:] - 2 * u[1:-1] + u[:-2])
    return un


def heat_args():
    x = np.linspace(0.0, 1.0, 12)
    u0 = np.sin(np.pi * x) + 0.1 * np.cos(7 * x)
    return u0, {"alpha": np.float64(0.23)}


def l96_step(u, p):
    # Lorenz-96, forward Euler: du/dt = (u[i+1] - u[i-2]) u[i-1] - u[i] + F
    f = (np.roll(u, -1) - np.roll(u, 2)) * np.roll(u, 1) - u + p["F"]
    return u + p["dt"] * f


def l96_args():
    u0 = 8.0 + np.sin(np.arange(8.0))
    return u0, {"F": np.float64(8.0), "dt": np.float64(0.01)}


def forced_step(u, p, t):
    # uses the step index t (a 0-d float64 array) in a forcing
    return u + p["dt"] * (-p["k"] * u + p["amp"] * np.sin(0.1 * t))


def forced_args():
    return np.linspace(-1.0, 1.0, 5), {"dt": np.float64(0.1), "k": np.linspace(0.5, 1.5, 5),
                                      "amp": np.float64(0.7)}


def branch_step(u, p):
    # data-dependent branch: an `if` on the state (a guard; the step tape is
    # re-recorded when the branch changes) and an np.where.
    if np.sum(u) > 0.0:
        v = u - p["dt"] * (u + 1.0)
    else:
        v = u + p["dt"] * (2.0 - u * u)
    return np.where(v > 0.5, v * p["c"], v)


def branch_args():
    return np.array([0.9, 0.6, 0.4, -0.2]), {"dt": np.float64(0.3), "c": np.float64(0.97)}


def sq_loss(u):
    return np.sum(u ** 2)


def cost_fn(u, p, t):
    return 0.5 * np.sum((u - np.cos(0.05 * t)) ** 2) * p["dt"]


PROBLEMS = {
    "heat": (heat_step, heat_args, sq_loss, None),
    "lorenz96": (l96_step, l96_args, sq_loss, None),
    "forced_t": (forced_step, forced_args, sq_loss, None),
    "branch": (branch_step, branch_args, sq_loss, None),
    "running_cost": (forced_step, forced_args, sq_loss, cost_fn),
    "running_cost_only": (l96_step, l96_args, None, lambda u, p: np.sum(u) * p["dt"]),
}


def unrolled(step, n_steps, loss, running_cost):
    """The program the executor differentiates, as one function (full tape)."""
    import inspect
    step_t = len(inspect.signature(step).parameters) == 3
    cost_t = running_cost is not None and len(inspect.signature(running_cost).parameters) == 3

    def program(u, p):
        total = 0.0
        for n in range(n_steps):
            t = np.float64(n)
            if running_cost is not None:
                total = total + (running_cost(u, p, t) if cost_t else running_cost(u, p))
            u = step(u, p, t) if step_t else step(u, p)
        if loss is not None:
            total = total + loss(u)
        return total
    return program


def rel_err(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def assert_close_tree(got, want):
    g_leaves, g_td = pytree.flatten(got)
    w_leaves, w_td = pytree.flatten(want)
    assert g_td == w_td
    for g, w in zip(g_leaves, w_leaves):
        assert np.shape(g) == np.shape(w)
        assert rel_err(g, w) < RTOL, (g, w)


# --------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("name", sorted(PROBLEMS))
@pytest.mark.parametrize("n_steps", [1, 13, 24])
@pytest.mark.parametrize("snapshots", [1, 2, 5, "all"])
def test_gradient_matches_full_tape(name, n_steps, snapshots):
    step, args, loss, cost = PROBLEMS[name]
    s = n_steps + 1 if snapshots == "all" else snapshots
    u0, p = args()
    cp = td.checkpointed(step, n_steps, s, loss=loss, running_cost=cost)
    value, (du0, dp) = cp.value_and_grad(u0, p)
    want_v, (want_du0, want_dp) = td.value_and_grad(
        unrolled(step, n_steps, loss, cost), argnums=(0, 1))(u0, p)
    assert abs(value - want_v) <= RTOL * abs(want_v)
    assert_close_tree(du0, want_du0)
    assert_close_tree(dp, want_dp)
    assert du0.dtype == u0.dtype

    sched = revolve(n_steps, s)
    st = cp.stats
    assert st["forward_steps"] == sched.forward_steps
    assert st["reverse_steps"] == n_steps
    assert st["max_snapshots"] == sched.max_snapshots
    assert st["max_snapshots"] <= max(0, min(s, n_steps - 1))
    assert st["snapshot_bytes"] == st["max_snapshots"] * u0.nbytes
    assert st["schedule"] == ("store-all" if s >= n_steps - 1 else "revolve")


def test_branch_really_changes():
    """The branch problem takes both sides of its `if` along the trajectory,
    so the step tape is re-recorded (more than one version)."""
    u0, p = branch_args()
    sides = set()
    u = u0
    for _ in range(24):
        sides.add(bool(np.sum(u) > 0.0))
        u = branch_step(u, p)
    assert sides == {True, False}
    cp = td.checkpointed(branch_step, 24, 3, loss=sq_loss)
    cp.value_and_grad(u0, p)
    assert cp.stats["step_versions"] >= 2


def test_repeated_calls_reuse_tapes_and_new_values():
    u0, p = heat_args()
    cp = td.checkpointed(heat_step, 17, 3, loss=sq_loss)
    cp.value_and_grad(u0, p)
    fwd = cp._fwd
    p2 = {"alpha": np.float64(0.11)}
    v, (du0, dp) = cp.value_and_grad(2 * u0, p2)
    assert cp._fwd is fwd
    want_v, (w_du0, w_dp) = td.value_and_grad(unrolled(heat_step, 17, sq_loss, None),
                                              argnums=(0, 1))(2 * u0, p2)
    assert abs(v - want_v) <= RTOL * abs(want_v)
    assert rel_err(du0, w_du0) < RTOL and rel_err(dp["alpha"], w_dp["alpha"]) < RTOL
    # a new shape re-records
    u3 = np.linspace(0.0, 1.0, 7)
    v, (du0, dp) = cp.value_and_grad(u3, p)
    want_v, (w_du0, _) = td.value_and_grad(unrolled(heat_step, 17, sq_loss, None),
                                           argnums=(0, 1))(u3, p)
    assert rel_err(du0, w_du0) < RTOL


def test_pytree_state_and_unused_leaves():
    """State and parameters as pytrees; a parameter the step never reads gets a
    zero gradient; the inputs are not modified."""
    def step(u, p, t):
        x, v = u["x"], u["v"]
        return {"x": x + p["dt"] * v, "v": v - p["dt"] * p["k"] * np.sin(x)}

    u0 = {"x": np.array([0.3, -0.8, 1.1]), "v": np.array([0.0, 0.5, -0.2])}
    p = {"dt": np.float64(0.1), "k": np.float64(2.0), "unused": np.ones(2)}
    before = {k: a.copy() for k, a in u0.items()}
    def loss(u):
        return np.sum(u["x"] ** 2) + np.sum(u["v"])

    cp = td.checkpointed(step, 15, 3, loss=loss)
    v, (du0, dp) = cp.value_and_grad(u0, p)
    want_v, (w_du0, w_dp) = td.value_and_grad(unrolled(step, 15, loss, None),
                                              argnums=(0, 1))(u0, p)
    assert abs(v - want_v) <= RTOL * abs(want_v)
    for k in ("x", "v"):
        assert rel_err(du0[k], w_du0[k]) < RTOL
        np.testing.assert_array_equal(u0[k], before[k])
    for k in ("dt", "k"):
        assert rel_err(dp[k], w_dp[k]) < RTOL
    np.testing.assert_array_equal(dp["unused"], np.zeros(2))
    assert cp.stats["snapshot_bytes"] == cp.stats["max_snapshots"] * 48


def test_float32():
    u0, p = heat_args()
    u0 = u0.astype(np.float32)
    p = {"alpha": np.float32(0.23)}
    cp = td.checkpointed(heat_step, 10, 2, loss=sq_loss)
    _, (du0, dp) = cp.value_and_grad(u0, p)
    assert du0.dtype == np.float32 and np.asarray(dp["alpha"]).dtype == np.float32
    _, (w_du0, w_dp) = td.value_and_grad(unrolled(heat_step, 10, sq_loss, None),
                                         argnums=(0, 1))(u0, p)
    assert rel_err(du0, w_du0) < 1e-5 and rel_err(dp["alpha"], w_dp["alpha"]) < 1e-4


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("kwargs, word", [
    ({"n_steps": 0, "snapshots": 2}, "n_steps"),
    ({"n_steps": 5, "snapshots": 0}, "snapshots"),
    ({"n_steps": 2.5, "snapshots": 2}, "n_steps"),
    ({"n_steps": 5, "snapshots": True}, "snapshots"),
])
def test_bad_counts(kwargs, word):
    with pytest.raises(ValueError, match=word):
        td.checkpointed(heat_step, loss=sq_loss, **kwargs)


def test_nothing_to_differentiate():
    with pytest.raises(ValueError, match="loss"):
        td.checkpointed(heat_step, 5, 2)


def test_bad_step_signature():
    with pytest.raises(TypeError, match="step"):
        td.checkpointed(lambda u: u, 5, 2, loss=sq_loss)


def test_shape_change_is_reported_after_the_first_step():
    calls = []

    def step(u, p):
        calls.append(1)
        return {"a": u["a"][:-1] * p, "b": u["b"]}

    cp = td.checkpointed(step, 20, 3, loss=lambda u: np.sum(u["a"]))
    with pytest.raises(td.ShapeMismatch, match=r"u\['a'\].*\(4,\).*\(3,\)"):
        cp.value_and_grad({"a": np.ones(4), "b": np.ones(2)}, np.float64(2.0))
    assert len(calls) <= 3      # the recording (and its copy), then one step


def test_dtype_change_is_reported():
    def step(u, p):
        return (u * p).astype(np.float32)
    cp = td.checkpointed(step, 8, 2, loss=sq_loss)
    with pytest.raises(td.ShapeMismatch, match="dtype float64.*float32"):
        cp.value_and_grad(np.ones(3), np.float64(0.5))


def test_structure_change_is_reported():
    def step(u, p):
        return (u[0] * p, u[1], u[1])
    cp = td.checkpointed(step, 8, 2, loss=lambda u: np.sum(u[0]))
    with pytest.raises(td.ShapeMismatch, match="structure"):
        cp.value_and_grad((np.ones(3), np.ones(3)), np.float64(0.5))


def test_integer_state_rejected():
    cp = td.checkpointed(lambda u, p: u, 4, 2, loss=lambda u: np.sum(u))
    with pytest.raises(TypeError, match="dtype"):
        cp.value_and_grad(np.arange(3), np.float64(1.0))
