"""Gradients of every schedule kind equal the unrolled program's full-tape gradient.

Kinds: revolve and store-all (slot counts), mixed (slots holding states or
tapes), online (until=...), two-level (memory and disk budgets), and a byte
budget left to choose. Problems: the heat equation, Lorenz-96, a step using
t, a step with a data-dependent branch, a running cost (with and without a
final loss). Small n keeps the suite fast.
"""
import numpy as np
import pytest

import tapediff as td
from tapediff.checkpoint import (forward_steps_mixed, forward_steps_revolve, mixed, online,
                                 simulate, two_level)
from tapediff.checkpoint.steptape import StepTape

from .problems import PROBLEMS, assert_matches_reference

N_STEPS = [1, 13, 24]


def sizes(name):
    step, args, _, cost = PROBLEMS[name]
    st = StepTape(step, cost)
    st.prepare(*args())
    return st.state_bytes, st.tape_bytes, st.workspace_bytes


def run(name, n_steps, **kwargs):
    step, args, loss, cost = PROBLEMS[name]
    cp = td.checkpointed(step, n_steps, loss=loss, running_cost=cost, **kwargs)
    value, grads = cp.value_and_grad(*args())
    assert_matches_reference(name, cp.stats["n_steps"], value, grads)
    st = cp.stats
    assert st["forward_steps"] == cp.schedule.forward_steps
    assert st["reverse_steps"] == st["n_steps"]
    simulate(cp.schedule)
    return cp


@pytest.mark.parametrize("name", sorted(PROBLEMS))
@pytest.mark.parametrize("n_steps", N_STEPS)
@pytest.mark.parametrize("snapshots", [1, 2, 5, "all"])
def test_mixed(name, n_steps, snapshots):
    s = n_steps + 1 if snapshots == "all" else snapshots
    cp = run(name, n_steps, snapshots=s, schedule="mixed")
    assert cp.stats["schedule"] == "mixed"
    assert cp.stats["forward_steps"] == forward_steps_mixed(n_steps, s)
    assert cp.schedule.actions == mixed(n_steps, s).actions
    assert cp.stats["max_snapshots"] <= s
    if s >= n_steps - 1:
        assert cp.stats["forward_steps"] == n_steps      # every tape kept


@pytest.mark.parametrize("name", sorted(PROBLEMS))
@pytest.mark.parametrize("n_steps", N_STEPS)
@pytest.mark.parametrize("snapshots", [1, 2, 5, "all"])
def test_online(name, n_steps, snapshots):
    s = n_steps + 1 if snapshots == "all" else snapshots
    seen = []

    def until(u, i):
        seen.append(i)
        return i == n_steps

    cp = run(name, None, snapshots=s, until=until)
    st = cp.stats
    assert seen == list(range(1, n_steps + 1))       # called after every step, from 1
    assert (st["schedule"], st["n_steps"]) == ("online", n_steps)
    assert cp.schedule.actions == online(n_steps, s).actions
    assert st["max_states"] <= s and st["max_tapes"] == 1
    assert st["offline_forward_steps"] == forward_steps_revolve(n_steps, s)
    if n_steps <= (s + 1) * (s + 2) // 2:   # Stumm & Walther's range: the offline optimum
        assert st["forward_steps"] == st["offline_forward_steps"]


@pytest.mark.parametrize("name", sorted(PROBLEMS))
@pytest.mark.parametrize("n_steps", N_STEPS)
@pytest.mark.parametrize("memory_states, disk_states", [(0, 1), (1, 1), (2, 3), (1, 30)])
def test_two_level(name, n_steps, memory_states, disk_states):
    state, _, work = sizes(name)
    cp = run(name, n_steps, memory=work + memory_states * state, disk=disk_states * state,
             schedule="two-level")
    st = cp.stats
    assert st["schedule"] == "two-level"
    assert cp.schedule.actions == two_level(n_steps, memory_states, disk_states).actions
    levels = st["levels"]
    assert levels["memory"]["max_snapshots"] <= memory_states
    assert levels["disk"]["max_snapshots"] <= disk_states
    assert levels["disk"]["max_bytes"] == levels["disk"]["max_snapshots"] * state
    if n_steps > 1:
        assert levels["disk"]["writes"] >= 1 and levels["disk"]["reads"] >= 1


@pytest.mark.parametrize("name", sorted(PROBLEMS))
@pytest.mark.parametrize("n_steps", N_STEPS)
@pytest.mark.parametrize("slots", [1, 3, 40])
def test_budget_chooses_and_is_exact(name, n_steps, slots):
    state, tape, work = sizes(name)
    cp = run(name, n_steps, memory=work + slots * max(state, tape))
    st = cp.stats
    considered = st["considered"]
    costs = {k: v for k, v in considered.items() if isinstance(v, int)}
    assert st["schedule"] in costs
    assert st["forward_steps"] == costs[st["schedule"]] == min(costs.values())
    # what the chosen schedule holds fits the budget (workspace aside)
    assert cp.schedule.peak_bytes(state, tape) <= slots * max(state, tape)
    if slots >= n_steps:
        assert st["schedule"] == "store-all" and st["forward_steps"] == n_steps


def test_online_stop_condition_on_the_state():
    """until may look at the state: stop when the heat has spread out."""
    step, args, loss, _ = PROBLEMS["heat"]
    u0, p = args()
    cp = td.checkpointed(step, until=lambda u, i: np.max(u) < 0.5, snapshots=3, loss=loss)
    value, grads = cp.value_and_grad(u0, p)
    n = cp.stats["n_steps"]
    u = u0
    for _ in range(n - 1):
        u = step(u, p)
    assert np.max(u) >= 0.5 and np.max(step(u, p)) < 0.5    # stopped at the first such step
    assert_matches_reference("heat", n, value, grads)


def test_online_with_memory_budget():
    state, tape, work = sizes("lorenz96")
    step, args, loss, _ = PROBLEMS["lorenz96"]
    # an online run also holds the previous state one step longer
    cp = td.checkpointed(step, until=lambda u, i: i == 40, memory=work + state + 4 * state,
                         loss=loss)
    value, grads = cp.value_and_grad(*args())
    assert cp.stats["snapshots"] == 4          # state slots (the tape workspace is extra)
    assert cp.schedule.snapshots == 4 + 1
    assert cp.stats["max_states"] <= 4
    assert_matches_reference("lorenz96", 40, value, grads)
