"""Test problems for the checkpointing tests, and the full-tape reference.

Every checkpointed gradient is compared with the full-tape gradient of the
unrolled program (td.value_and_grad of a loop calling the step n_steps
times), at RTOL in float64.
"""
import inspect
from functools import lru_cache

import numpy as np

import tapediff as td
from tapediff import pytree

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




@lru_cache(maxsize=None)
def reference(name, n_steps):
    """``(value, (du0, dp))`` of the unrolled program of problem ``name`` (full tape)."""
    step, args, loss, cost = PROBLEMS[name]
    return td.value_and_grad(unrolled(step, n_steps, loss, cost), argnums=(0, 1))(*args())


def assert_matches_reference(name, n_steps, value, grads):
    want_v, want_g = reference(name, n_steps)
    assert abs(value - want_v) <= RTOL * abs(want_v)
    assert_close_tree(grads, want_g)
