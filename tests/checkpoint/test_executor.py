"""Tests of the checkpointing executor, td.checkpointed, with slot counts
(revolve and store-all; the other kinds are in test_kinds.py).

Every gradient is compared with the full-tape gradient of the unrolled
program (td.value_and_grad of a loop calling the step n_steps times).
"""
import numpy as np
import pytest

import tapediff as td
from tapediff.checkpoint import forward_steps_revolve

from .problems import (PROBLEMS, RTOL, assert_matches_reference, branch_args, branch_step,
                       heat_args, heat_step, rel_err, sq_loss, unrolled)


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
    assert_matches_reference(name, n_steps, value, (du0, dp))
    assert du0.dtype == u0.dtype

    st = cp.stats
    store_everything = s >= n_steps - 1
    assert st["schedule"] == ("store-all" if store_everything else "revolve")
    assert cp.schedule.name == st["schedule"]
    # every primal step evaluated is counted, the first sweep included: the
    # closed forms of the issue (n with every tape kept, n + t(n, s) for revolve)
    assert st["forward_steps"] == cp.schedule.forward_steps == (
        n_steps if store_everything else forward_steps_revolve(n_steps, s))
    assert st["reverse_steps"] == n_steps
    assert st["max_snapshots"] == cp.schedule.max_snapshots <= max(0, min(s, n_steps - 1))
    if store_everything:
        assert st["max_tapes"] == n_steps - 1 and st["max_states"] == 0
        # tape_bytes is the largest over the step's versions (the branch has two)
        assert st["snapshot_bytes"] <= (n_steps - 1) * st["tape_bytes"]
        if name != "branch":
            assert st["snapshot_bytes"] == (n_steps - 1) * st["tape_bytes"]
    else:
        assert st["max_tapes"] == 0
        assert st["snapshot_bytes"] == st["max_snapshots"] * u0.nbytes
    # recording: one trace per tape (two with a running cost) and one gradient-tape build
    assert st["setup_evaluations"] >= 2


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
    p2 = {"alpha": np.float64(0.11)}
    v, (du0, dp) = cp.value_and_grad(2 * u0, p2)
    assert cp.stats["setup_evaluations"] == 0     # the step tapes were reused
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
