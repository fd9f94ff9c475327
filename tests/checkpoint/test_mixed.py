"""Tests of the mixed (states or tapes) scheduler, tapediff.checkpoint.mixed."""
import warnings

import numpy as np
import pytest

import tapediff as td
from tapediff.checkpoint import (Replay, Reverse, ReverseTape, StoreTape, forward_steps_mixed,
                                 forward_steps_revolve, mixed, simulate, store_all)
from tapediff.checkpoint.mixed import mixed_feasible, mixed_table

from .problems import heat_args, heat_step, sq_loss


def exhaustive_table(n, s):
    """Maddison's recursion with every split k = 2 .. m-1 (no interval shortcut)."""
    F = np.zeros((n + 1, s + 1), np.int64)
    F[1, :] = 1
    for m in range(2, n + 1):
        F[m, 1] = m * (m + 1) // 2 - 1
    for c in range(2, s + 1):
        for m in range(2, n + 1):
            if m <= c + 1:
                F[m, c] = m
                continue
            k = np.arange(2, m)
            F[m, c] = min(1 + F[m - 1, c - 1], (k + F[2:m, c] + F[m - 2:0:-1, c - 1]).min())
    return F


def test_issue_figure():
    assert forward_steps_mixed(1000, 10) == 3921
    assert forward_steps_revolve(1000, 10) == 4636
    sched = mixed(1000, 10)
    assert simulate(sched) == Replay(3921, 1000, 10)
    assert (sched.name, sched.forward_steps, sched.max_snapshots) == ("mixed", 3921, 10)


def test_table_is_the_exhaustive_minimum():
    # the table searches only revolve's optimal split interval; the full
    # recursion agrees (the module docstring cites this grid)
    mixed_table.cache_clear()
    F, _ = mixed_table(1200, 9)
    np.testing.assert_array_equal(F, exhaustive_table(1200, 9))


def test_against_checkpoint_schedules_costs():
    cs_mixed = pytest.importorskip("checkpoint_schedules.mixed")
    for n in range(1, 80):
        for s in range(1, 9):
            want = cs_mixed.optimal_steps_mixed(n, min(s, n - 1)) if n > 1 else 1
            assert forward_steps_mixed(n, s) == want, (n, s)


def _reference_schedule(n, s):
    """Primal steps and peak slots of checkpoint_schedules' MixedCheckpointSchedule.

    ``Forward(n0, n1, write_ics, write_adj_deps, storage)`` advances over
    steps n0 .. n1-1 (our Advance, StoreTape or the taped step of Reverse);
    storage other than WORK fills a slot (a state with write_ics, a tape with
    write_adj_deps); ``Move`` out of a slot frees it (``Copy`` keeps it).
    """
    cs = pytest.importorskip("checkpoint_schedules")
    forward, held, peak, reversed_steps = 0, set(), 0, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)    # "Numba not available"
        actions = list(cs.MixedCheckpointSchedule(n, s, storage=cs.StorageType.RAM))
    for action in actions:
        if isinstance(action, cs.Forward):
            forward += action.n1 - action.n0
            if action.storage != cs.StorageType.WORK:
                held.add(action.n0)
                peak = max(peak, len(held))
        elif isinstance(action, cs.Move):
            held.discard(action.n)
        elif isinstance(action, cs.Reverse):
            reversed_steps.extend(range(action.n1 - 1, action.n0 - 1, -1))
        elif isinstance(action, cs.EndReverse):
            break
    assert reversed_steps == list(range(n - 1, -1, -1))
    return forward, peak


def test_against_checkpoint_schedules_schedule():
    pytest.importorskip("checkpoint_schedules")
    for n in range(2, 41):
        for s in range(1, 8):
            ours = mixed(n, s)
            assert (ours.forward_steps, ours.max_snapshots) == _reference_schedule(n, s), (n, s)


def test_grid_valid_and_never_worse_than_revolve():
    for n in range(1, 81):
        for s in range(1, 8):
            sched = mixed(n, s)
            replay = simulate(sched)
            assert replay.forward_steps == sched.forward_steps == forward_steps_mixed(n, s)
            assert replay.reverse_steps == n
            assert sched.max_snapshots <= min(s, max(1, n - 1))
            assert sched.forward_steps <= forward_steps_revolve(n, s)
            # each step is taped exactly once: in a StoreTape or a Reverse
            taped = sorted(a.n for a in sched if isinstance(a, (StoreTape, Reverse)))
            assert taped == list(range(n))


def test_store_all_is_the_full_budget_case():
    for n in (1, 2, 3, 9, 40):
        assert mixed(n, max(1, n - 1)).actions == store_all(n).actions
        assert mixed(n, 10 * n).forward_steps == n


def test_small_schedule_exactly():
    # 4 steps, 2 slots: store state 0, tape step 2, reverse 3, 2, then tape step 0
    assert [type(a).__name__ for a in mixed(4, 2)] == [
        "Store", "Advance", "StoreTape", "Reverse", "ReverseTape", "Free", "Restore", "Free",
        "StoreTape", "Reverse", "ReverseTape", "Free"]
    assert isinstance(mixed(2, 1)[0], StoreTape) and isinstance(mixed(2, 1)[2], ReverseTape)


def test_feasibility_guard():
    assert mixed_feasible(10**4, 20)
    assert not mixed_feasible(10**6, 20)


def test_executor_counts_the_issue_figures():
    """The executor's forward_steps are the schedules' (every primal step
    evaluated, first sweep included) at the issue's n = 1000, s = 10."""
    u0, p = heat_args()
    counts = {}
    for kind, s in (("revolve", 10), ("mixed", 10), ("store-all", 999)):
        cp = td.checkpointed(heat_step, 1000, s, loss=sq_loss, schedule=kind)
        cp.value_and_grad(u0, p)
        counts[kind] = cp.stats["forward_steps"]
    assert counts == {"revolve": 4636, "mixed": 3921, "store-all": 1000}
