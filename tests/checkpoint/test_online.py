"""Tests of online checkpointing (unknown number of steps), tapediff.checkpoint.online."""
import importlib

import pytest

import tapediff as td
from tapediff.checkpoint import Free, Store, StoreTape, forward_steps_revolve, online, simulate
from tapediff.checkpoint.online import (OnlinePlacement, OnlinePlanner, excess_table,
                                        online_forward_steps)

from .problems import PROBLEMS

# the module (the package re-exports its function `online` under the same name)
online_module = importlib.import_module("tapediff.checkpoint.online")


def cap(s):
    return (s + 1) * (s + 2) // 2


def test_optimal_up_to_stumm_walther_bound():
    for s in range(1, 9):
        for n in range(1, cap(s) + 1):
            assert online(n, s).forward_steps == forward_steps_revolve(n, s), (n, s)
        # one step beyond the bound the dynamic phase starts (and costs more)
        if s > 1:
            assert online(cap(s) + 1, s).forward_steps > forward_steps_revolve(cap(s) + 1, s)


def test_valid_and_counted_beyond_the_bound():
    for s in (1, 2, 3, 5, 8):
        for n in list(range(1, cap(s) + 30)) + [200, 500]:
            sched = online(n, s)
            replay = simulate(sched)
            assert replay.forward_steps == sched.forward_steps == online_forward_steps(n, s)
            assert replay.reverse_steps == n
            assert sched.max_states <= s and sched.max_tapes <= 1
            assert sched.forward_steps >= forward_steps_revolve(n, s)


def test_placement_invariants():
    for s in (1, 2, 4, 10):
        place = OnlinePlacement(s)
        for i in range(3000):
            keep, dropped = place.keep(i)
            pos = place.positions
            assert pos[0] == 0 and len(pos) <= s and pos == sorted(pos)
            assert (pos[-1] == i) == keep
            assert dropped is None or (dropped not in pos and dropped > 0)


def test_docstring_table_is_generated():
    # the module docstring's table is what excess_table() computes
    table = "\n".join("    " + line for line in excess_table().splitlines())
    assert table in online_module.__doc__


def test_excess_is_documented_and_bounded():
    # beyond C(s+2, 2) the dynamic phase costs at most ~20% over revolve here
    for s in (2, 5, 10, 20):
        for n in (100, 1000, 10**4):
            extra = online_forward_steps(n, s) - forward_steps_revolve(n, s)
            assert 0 <= extra <= 0.2 * forward_steps_revolve(n, s), (n, s, extra)


def test_schedule_orders_stores_before_the_taped_step():
    acts = online(40, 3).actions
    assert acts[:3] == (Store(0, 0), StoreTape(0, 3), Free(3))
    last = acts.index(StoreTape(39, 3))               # the reversal follows
    for k, a in enumerate(acts[:last]):
        if isinstance(a, Store):
            following = next(b for b in acts[k:] if isinstance(b, StoreTape))
            assert following.n == a.n
    plan = OnlinePlanner(3)
    assert plan.keep(0) == [Store(0, 0)]              # what the executor does, in order


def test_until_errors_propagate_and_nothing_is_left():
    step, args, loss, _ = PROBLEMS["heat"]

    def until(u, i):
        if i == 7:
            raise RuntimeError("stop condition failed")
        return False

    cp = td.checkpointed(step, until=until, snapshots=2, loss=loss)
    with pytest.raises(RuntimeError, match="stop condition failed"):
        cp.value_and_grad(*args())
