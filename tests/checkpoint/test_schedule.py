"""Tests of the pure checkpointing scheduler, tapediff.checkpoint.schedule."""
import time
from functools import cache

import numpy as np
import pytest

from tapediff.checkpoint import (Advance, Free, InvalidSchedule, Replay, Restore, Reverse,
                                 ReverseTape, Schedule, ScheduleArgumentError, Store, StoreTape,
                                 forward_steps_revolve, recompute_steps_revolve, revolve,
                                 simulate, store_all)
from tapediff.errors import TapediffError


def check(sched):
    """simulate() the schedule and check its counters against the replay and
    the closed form; return the replay."""
    replay = simulate(sched)
    n, s = sched.n_steps, sched.snapshots
    assert replay == Replay(sched.forward_steps, sched.reverse_steps, sched.max_snapshots)
    assert sched.reverse_steps == n
    assert sched.forward_steps == n + recompute_steps_revolve(n, s)
    assert sched.max_snapshots <= min(s, n - 1)
    return replay


# --------------------------------------------------------------------------- closed form

@pytest.mark.parametrize("n, s, total, extra", [
    (10, 2, 30, 20),
    (1000, 10, 4636, 3636),
    (10**4, 20, 47976, 37976),
])
def test_closed_form_examples(n, s, total, extra):
    # The figures are totals n + t(n, s): t(10, 2) = 3*10 - C(5, 3) = 20.
    assert forward_steps_revolve(n, s) == total
    assert recompute_steps_revolve(n, s) == extra


def test_closed_form_edge_cases():
    assert forward_steps_revolve(1, 1) == 1            # one taped step, nothing stored
    assert recompute_steps_revolve(7, 1) == 21         # 6 + 5 + ... + 1 from state 0
    for n in (2, 5, 50):
        for s in (n - 1, n, 10 * n):
            # store-all: n - 1 steps to reach the last state, then n taped
            assert forward_steps_revolve(n, s) == 2 * n - 1
    assert recompute_steps_revolve(10**5, 1) == 10**5 * (10**5 - 1) // 2


@cache
def _brute_force(m, c):
    """Fewest untaped steps to reverse m steps with c slots, state 0 held:
    minimise over the first snapshot position (dynamic programming)."""
    if m == 1:
        return 0
    if c == 1:
        return m * (m - 1) // 2
    return min(k + _brute_force(m - k, c - 1) + _brute_force(k, c) for k in range(1, m))


def test_closed_form_is_optimal():
    # independent of the generator: the formula is the DP's minimum
    for c in range(1, 7):
        for m in range(1, 81):
            assert recompute_steps_revolve(m, c) == _brute_force(m, c), (m, c)


# --------------------------------------------------------------------------- schedules

def test_grid_matches_closed_form_and_is_valid():
    for n in range(1, 151):
        for s in range(1, 11):
            sched = revolve(n, s)
            check(sched)
            # revolve uses its whole budget (never more than n - 1 states exist to keep)
            assert sched.max_snapshots == min(s, n - 1), (n, s)
            assert sched.name == "revolve"
            assert (sched.n_steps, sched.snapshots) == (n, s)


def test_log_grid_matches_closed_form():
    # the schedules' own counts (one generation pass each) against n + t(n, s)
    for n in (1, 2, 3, 7, 10, 31, 100, 316, 1000, 3162, 10**4):
        for s in (1, 2, 3, 5, 10, 20, 50):
            sched = revolve(n, s)
            assert sched.forward_steps == forward_steps_revolve(n, s), (n, s)
            assert sched.reverse_steps == n
            assert sched.max_snapshots == min(s, n - 1)


@pytest.mark.slow
@pytest.mark.parametrize("n, s", [(1000, 10), (10**4, 20), (12345, 3), (5000, 1),
                                  (10**5, 10), (10**5, 20)])
def test_spot_checks_large(n, s):
    start = time.perf_counter()
    sched = revolve(n, s)
    elapsed = time.perf_counter() - start
    print(f"revolve({n}, {s}): {len(sched)} actions in {elapsed:.3f} s")
    if n <= 2 * 10**4:
        check(sched)      # the simulator is slower than generation; the grid covers it
    else:
        assert sched.forward_steps == forward_steps_revolve(n, s)
    assert sched.max_snapshots == min(s, n - 1)
    if n == 10**5:
        # target is < 1 s; loose bound so CI noise does not fail it
        assert elapsed < 5.0, f"revolve({n}, {s}) took {elapsed:.2f} s"


def test_every_step_taped_once_and_advances_counted():
    n, s = 60, 4
    sched = revolve(n, s)
    reversed_steps = [a.n for a in sched if isinstance(a, Reverse)]
    assert reversed_steps == list(range(n - 1, -1, -1))
    advanced = sum(a.n1 - a.n0 for a in sched if isinstance(a, Advance))
    assert advanced == recompute_steps_revolve(n, s)
    # the state before the last step is never stored
    assert all(a.n != n - 1 for a in sched if isinstance(a, Store))


def test_store_all():
    # every tape kept on the first sweep: n primal steps, no recomputation
    for n in (1, 2, 3, 10, 257):
        sched = store_all(n)
        assert simulate(sched) == Replay(n, n, n - 1)
        assert sched.name == "store-all"
        assert sched.forward_steps == n
        assert sched.max_snapshots == sched.max_tapes == n - 1 and sched.max_states == 0
        assert sched.snapshots == max(1, n - 1)
    assert store_all(1).actions == (Reverse(0),)
    # revolve with every slot it can use stores every state instead: 2n - 1
    assert revolve(10, 9).forward_steps == 19 == forward_steps_revolve(10, 9)


def test_small_schedules_exactly():
    assert revolve(1, 3).actions == (Reverse(0),)
    assert revolve(3, 1).actions == (
        Store(0, 0), Advance(0, 2), Reverse(2),
        Restore(0, 0), Advance(0, 1), Reverse(1),
        Restore(0, 0), Free(0), Reverse(0))


# --------------------------------------------------------------------------- checkpoint_schedules

def _reference_counts(n, s):
    """Forward steps and peak snapshots of checkpoint_schedules' Revolve.

    Its ``Forward(n0, n1, write_ics, write_adj_deps, storage)`` advances over
    steps n0 .. n1-1; the one with ``write_adj_deps`` is the taped step that
    our ``Reverse`` runs, so the total primal steps are the sum of the lengths
    of all Forward actions. ``write_ics`` stores state n0 (to RAM); a ``Move``
    out of RAM releases it (a ``Copy`` keeps it).
    """
    cs = pytest.importorskip("checkpoint_schedules")
    forward, held, peak, reversed_steps = 0, set(), 0, []
    for action in cs.Revolve(n, s):
        if isinstance(action, cs.Forward):
            forward += action.n1 - action.n0
            if action.write_ics:
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


def test_against_checkpoint_schedules():
    pytest.importorskip("checkpoint_schedules")
    for n in range(1, 41):
        for s in range(1, 9):
            ours = revolve(n, s)
            assert (ours.forward_steps, ours.max_snapshots) == _reference_counts(n, s), (n, s)
    for n, s in [(100, 5), (200, 3), (150, 10)]:
        ours = revolve(n, s)
        assert (ours.forward_steps, ours.max_snapshots) == _reference_counts(n, s), (n, s)


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("fn", [revolve, forward_steps_revolve, recompute_steps_revolve])
@pytest.mark.parametrize("n, s, name, problem", [
    (0, 2, "n_steps", ">= 1, got 0"),
    (-3, 2, "n_steps", ">= 1, got -3"),
    (10, 0, "snapshots", ">= 1, got 0"),
    (10, -1, "snapshots", ">= 1, got -1"),
    (10.0, 2, "n_steps", "integer, got float 10.0"),
    ("10", 2, "n_steps", "integer, got str '10'"),
    (None, 2, "n_steps", "integer, got NoneType None"),
    (True, 2, "n_steps", "integer, got bool True"),
    (np.True_, 2, "n_steps", "integer, got bool"),
    (10, 2.5, "snapshots", "integer, got float 2.5"),
    (10, np.float64(3), "snapshots", "integer, got float64"),
])
def test_bad_arguments(fn, n, s, name, problem):
    with pytest.raises(ValueError) as info:
        fn(n, s)
    assert isinstance(info.value, (ScheduleArgumentError, TapediffError))
    msg = str(info.value)
    assert msg.startswith(f"{name} must be ")
    assert problem in msg
    assert "pass " in msg  # the fix


def test_bad_store_all_argument():
    with pytest.raises(ValueError, match=r"n_steps must be >= 1, got 0; pass"):
        store_all(0)


def test_numpy_integers_accepted():
    sched = revolve(np.int64(50), np.int32(4))
    assert type(sched.n_steps) is int and type(sched.snapshots) is int
    assert sched.forward_steps == forward_steps_revolve(50, 4)


# --------------------------------------------------------------------------- simulate rejects

def _sched(actions, n, s=3):
    return Schedule(actions, n, s, "revolve")


@pytest.mark.parametrize("actions, n, s, match", [
    ([Advance(1, 2), Reverse(1)], 2, 3, r"action 0 .*current state is 0, not 1"),
    ([Advance(0, 3), Reverse(2)], 2, 3, r"action 0 .*n0 < n1 <= n_steps = 2"),
    ([Store(0, 0), Advance(0, 1), Reverse(1), Restore(0, 1), Reverse(0)], 2, 3,
     r"action 3 .*slot 1 is empty"),
    ([Store(0, 0), Advance(0, 1), Store(1, 1), Advance(1, 2), Reverse(2),
      Restore(0, 0), Reverse(0)], 3, 3, r"action 6 .*next step to reverse is 1"),
    ([Store(0, 0), Advance(0, 1), Store(1, 1), Advance(1, 2), Reverse(2),
      Restore(0, 1)], 3, 3, r"action 5 .*slot 1 holds state 1, not state 0"),
    ([Store(0, 0), Advance(0, 1), Reverse(1), Reverse(0)], 2, 3,
     r"action 3 .*current state is None, not 0"),
    ([Store(0, 0), Store(0, 0)], 2, 3, r"action 1 .*slot 0 still holds state 0"),
    ([Store(0, 0), Advance(0, 1), Store(1, 1)], 3, 1, r"action 2 .*outside range\(1\)"),
    ([Free(0)], 1, 3, r"action 0 .*already empty"),
    ([Reverse(0), Reverse(0)], 1, 3, r"action 1 .*already reversed"),
    ([Store(0, 0), Advance(0, 1), Reverse(1)], 2, 3, r"1 of 2 steps not reversed"),
    ([Store(0, 0), Reverse(0)], 1, 3, r"slots still filled: \{0: 'state 0'\}"),
    ([("advance", 0, 1)], 2, 3, r"action 0 .*unknown action type tuple"),
])
def test_simulate_rejects(actions, n, s, match):
    with pytest.raises(InvalidSchedule, match=match):
        simulate(_sched(actions, n, s))


def test_simulate_rejects_tampered_revolve():
    # drop each Free/Restore/Store of a real schedule in turn: every one is caught
    good = revolve(12, 3).actions
    for i, action in enumerate(good):
        if isinstance(action, (Advance, Reverse)):
            continue
        with pytest.raises(InvalidSchedule):
            simulate(_sched(good[:i] + good[i + 1:], 12, 3))


# --------------------------------------------------------------------------- misc

def test_actions_are_typed_and_frozen():
    assert Store(1, 2) != Restore(1, 2)  # not plain tuples
    assert StoreTape(1, 2) != Store(1, 2) and ReverseTape(1, 2) != Restore(1, 2)
    assert Advance(0, 3) != (0, 3) and not Advance(0, 3) == (0, 3)
    assert Advance(0, 3) == Advance(0, 3) and hash(Advance(0, 3)) == hash(Advance(0, 3))
    with pytest.raises(AttributeError):
        Advance(0, 3).n1 = 4


def test_to_text_and_repr():
    sched = revolve(6, 2)
    text = sched.to_text()
    lines = text.splitlines()
    assert lines[0] == ("revolve: n_steps=6 snapshots=2 forward_steps="
                        f"{sched.forward_steps} reverse_steps=6 max_snapshots=2")
    assert len(lines) == len(sched) + 1
    assert lines[1].split() == ["0", "store", "state", "0", "->", "slot", "0"]
    short = sched.to_text(max_actions=3).splitlines()
    assert len(short) == 5 and short[-1].strip() == f"... {len(sched) - 3} more actions"
    assert "forward_steps=" in repr(sched) and f"actions=<{len(sched)}>" in repr(sched)
    assert list(sched) == list(sched.actions) and sched[0] == Store(0, 0)


def test_schedules_are_generated_not_stored():
    """Iterating a schedule for n = 10**5 holds O(snapshots) bookkeeping, so an
    executor's memory does not grow with n (the tuple would be ~30 MB)."""
    import tracemalloc
    sched = revolve(2 * 10**4, 20)
    tracemalloc.start()
    count = sum(1 for _ in sched)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == len(sched) > 8 * 10**4
    assert peak < 50_000            # the stored tuple would take ~5 MB
