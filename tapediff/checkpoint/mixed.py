"""Mixed checkpointing: a slot holds either a state or one step's tape.

Revolve (:func:`~tapediff.checkpoint.revolve`) stores states only, so every
step runs once more, taped, just before its adjoint. A slot can instead keep
the *tape* of a step -- the intermediates its adjoint reads -- taken while
the step runs anyway; that step is then never evaluated again. With slots of
equal size, the optimal mixture needs fewer primal steps than revolve: 3921
instead of 4636 for ``n = 1000, s = 10``. This is the offline optimum of
Maddison (Step-based checkpointing with high-level algorithmic
differentiation, J. Comput. Sci. 82, 2024), the schedule of
``checkpoint_schedules.MixedCheckpointSchedule`` (the "H-Revolve" idea of
Herrmann & Pallez and the multistage view of Stumm & Walther).

The cost ``F(m, c)``, primal steps to reverse ``m`` steps with ``c`` slots
(the first state's slot included, once it is stored), obeys

* ``F(1, c) = 1`` (the last step is run taped and reversed at once);
* ``F(m, c) = m`` for ``m <= c + 1``: tape every step but the last;
* ``F(m, 1) = m (m + 1) / 2 - 1``;
* otherwise the minimum of ``1 + F(m - 1, c - 1)`` (tape the first step) and
  ``k + F(k, c) + F(m - k, c - 1)`` (store the first state, advance ``k``
  steps, reverse the right part, then the left part).

:func:`mixed_table` tabulates it. It searches ``k`` only within revolve's
interval of optimal splits for ``(m, c)`` (widened to the union over a block
of rows), a level of revolve's repetition number at a time with NumPy. That
an optimal ``k`` lies there is observed, not proven: the test-suite checks
the table against the exhaustive minimum for every ``m <= 1200, c <= 9``
(and against checkpoint_schedules). The work still grows like ``n^2 s /
r``: about 0.04 s for ``n = 1000, s = 10`` and 1.5 s for ``n = 10^4, s =
20`` on a 2-core development machine; :func:`mixed_feasible` says whether a
size stays within a few seconds.

Examples
--------
>>> from tapediff.checkpoint import forward_steps_revolve, simulate
>>> from tapediff.checkpoint.mixed import mixed, forward_steps_mixed
>>> forward_steps_mixed(1000, 10), forward_steps_revolve(1000, 10)
(3921, 4636)
>>> sched = mixed(10, 2)
>>> simulate(sched)
Replay(forward_steps=26, reverse_steps=10, max_snapshots=2)
"""
from __future__ import annotations

import functools

import numpy as np

from .schedule import (Advance, Free, Restore, Reverse, ReverseTape, Schedule, Store,
                       StoreTape, _check_args)

__all__ = ["mixed", "forward_steps_mixed", "mixed_table", "mixed_feasible"]

_TAPE = 0               # decision code: tape the segment's first step
_CHUNK = 1 << 22        # elements per vectorised block (bounds temporary memory)
_MAX_WORK = 10**9       # table elements we are willing to scan (a few seconds)


def _binom(c: int, r: int) -> int:
    """``B(c, r) = C(c + r, c)``, 0 for ``r < 0``."""
    if r < 0:
        return 0
    out = 1
    for j in range(1, r + 1):
        out = out * (c + j) // j
    return out


def _levels(n: int, c: int):
    """Revolve's repetition levels for ``c`` slots: ``(r, first m, last m)``
    for the ``m`` in ``c + 2 .. n`` (level ``r`` is ``B(c, r-1) < m <= B(c, r)``)."""
    r, prev = 1, c + 1
    while prev < n:
        r += 1
        cur = _binom(c, r)
        yield r, prev + 1, min(cur, n)
        prev = cur


def _work(n: int, s: int) -> int:
    """Elements the table scans (rows times interval widths), for :func:`mixed_feasible`."""
    total = 0
    for c in range(2, min(s, n - 1) + 1):
        for r, m0, m1 in _levels(n, c):
            width = _binom(c, r - 1) - max(_binom(c, r - 2), 2) + 1
            total += (m1 - m0 + 1) * max(width, 1)
    return total


def mixed_feasible(n_steps: int, snapshots: int) -> bool:
    """Whether :func:`mixed_table` for this size takes at most a few seconds.

    Examples
    --------
    >>> mixed_feasible(10**4, 20), mixed_feasible(10**6, 20)
    (True, False)
    """
    n, s = _check_args(n_steps, snapshots)
    return _work(n, s) <= _MAX_WORK


@functools.lru_cache(maxsize=4)
def mixed_table(n_steps: int, snapshots: int):
    """Tabulate the optimal mixed cost and decisions for up to ``n_steps`` steps.

    Parameters
    ----------
    n_steps, snapshots : int
        ``>= 1``. ``snapshots`` is clipped to ``n_steps - 1`` (more slots
        than that are never used).

    Returns
    -------
    (F, K) : int64 and int32 arrays of shape ``(n_steps + 1, s + 1)``
        ``F[m, c]`` is the fewest primal steps to reverse ``m`` steps with
        ``c`` slots; ``K[m, c]`` the decision: 0 to tape the first step,
        ``k > 0`` to store the first state and advance ``k`` steps.
        (Row 0 and column 0 are unused.) Cached for the last few sizes.

    Examples
    --------
    >>> F, K = mixed_table(10, 2)
    >>> int(F[10, 2]), int(F[3, 2]), int(K[3, 2])
    (26, 3, 0)
    """
    n, s = _check_args(n_steps, snapshots)
    s = max(1, min(s, n - 1))
    F = np.zeros((n + 1, s + 1), np.int64)
    K = np.zeros((n + 1, s + 1), np.int64)
    F[1, :] = 1
    m = np.arange(n + 1, dtype=np.int64)
    F[2:, 1] = m[2:] * (m[2:] + 1) // 2 - 1
    K[3:, 1] = m[3:] - 1                     # one slot: state 0, advance to the end
    for c in range(2, s + 1):
        top = min(n, c + 1)
        F[2:top + 1, c] = m[2:top + 1]       # tape every step but the last
        for r, m0, m1 in _levels(n, c):
            _fill_level(F, K, c, r, m0, m1)
    # K is kept by the generated schedule while it runs: the narrower type halves it
    K = K.astype(np.int32)
    F.setflags(write=False)
    K.setflags(write=False)
    return F, K


def _fill_level(F, K, c, r, m0, m1):
    """Fill rows ``m0 .. m1`` of column ``c`` (revolve level ``r``), vectorised.

    Rows are taken in chunks; a chunk's candidate splits are the union of
    revolve's optimal intervals of its rows (see the module docstring). Every
    candidate is a valid split for every row of the chunk (``2 <= k < m0 <=
    m``), so the union can only help, and all read rows already filled.
    """
    b_c1, b_c2 = _binom(c, r - 1), _binom(c, r - 2)
    b_d0, b_d1 = _binom(c - 1, r), _binom(c - 1, r - 1)
    left = np.arange(F.shape[0], dtype=np.int64) + F[:, c]     # k + F(k, c)
    right = np.ascontiguousarray(F[:, c - 1])                  # F(j, c - 1)
    rows_per_chunk = max(1, _CHUNK // max(1, b_c1))
    for first in range(m0, m1 + 1, rows_per_chunk):
        last_m = min(m1, first + rows_per_chunk - 1)
        k0 = max(first - b_d0, b_c2, 2)
        k1 = min(b_c1, last_m - b_d1)
        M = np.arange(first, last_m + 1, dtype=np.int64)
        # cost[row, i] for k = k1 - i: k + F(k, c) + F(m - k, c - 1); the
        # F(m - k) of a row are a contiguous run, and consecutive rows are
        # consecutive windows: a strided view, no gather
        windows = np.lib.stride_tricks.sliding_window_view(right, k1 - k0 + 1)
        cost = left[k0:k1 + 1][::-1][None, :] + windows[first - k1:last_m - k1 + 1]
        # argmin takes the first minimum: the largest optimal k, advancing as
        # far as possible as revolve does
        i = np.argmin(cost, axis=1)
        best = cost[np.arange(len(M)), i]
        tape = 1 + F[M - 1, c - 1]
        use_tape = tape < best
        F[M, c] = np.where(use_tape, tape, best)
        K[M, c] = np.where(use_tape, _TAPE, k1 - i)


def forward_steps_mixed(n_steps: int, snapshots: int) -> int:
    """Primal steps of the optimal mixed schedule, the first sweep included.

    Parameters
    ----------
    n_steps : int
        Number of time steps, ``>= 1``.
    snapshots : int
        Slots (each holds a state or a tape), ``>= 1``.

    Returns
    -------
    int

    Raises
    ------
    ScheduleArgumentError
        (a ``ValueError``) for a non-integer or an argument below 1.

    Examples
    --------
    >>> forward_steps_mixed(1000, 10)
    3921
    >>> forward_steps_mixed(10, 9), forward_steps_mixed(5, 1)
    (10, 14)
    """
    n, s = _check_args(n_steps, snapshots)
    if n == 1:
        return 1
    F, _ = mixed_table(n, min(s, n - 1))
    return int(F[n, min(s, n - 1)])


def mixed(n_steps: int, snapshots: int) -> Schedule:
    """The optimal offline schedule whose slots hold states or tapes.

    Slots are assumed to be of equal size (a state and a step's tape cost
    one slot each; :func:`tapediff.checkpoint.planner.choose` sizes them by
    the larger of the two). With ``snapshots >= n_steps - 1`` this is
    :func:`~tapediff.checkpoint.store_all`'s action list.

    Parameters
    ----------
    n_steps : int
        Number of time steps, ``>= 1``.
    snapshots : int
        Slots that may be held at once, ``>= 1``.

    Returns
    -------
    Schedule
        ``name == "mixed"``; ``forward_steps ==``
        :func:`forward_steps_mixed` ``(n_steps, snapshots)``.

    Raises
    ------
    ScheduleArgumentError
        (a ``ValueError``) for a non-integer or an argument below 1.

    Examples
    --------
    >>> sched = mixed(4, 2)
    >>> print(sched.to_text())
    mixed: n_steps=4 snapshots=2 forward_steps=6 reverse_steps=4 max_snapshots=2
       0  store    state 0 -> slot 0
       1  advance  0 -> 2
       2  tape     step 2 -> slot 1
       3  reverse  step 3
       4  reverse  step 2 <- tape in slot 1
       5  free     slot 1
       6  restore  state 0 <- slot 0
       7  free     slot 0
       8  tape     step 0 -> slot 0
       9  reverse  step 1
      10  reverse  step 0 <- tape in slot 0
      11  free     slot 0
    """
    n, s = _check_args(n_steps, snapshots)
    c = max(1, min(s, n - 1))
    _, K = mixed_table(n, c)
    return Schedule(lambda: _mixed_actions(n, c, K), n, s, "mixed")


def _mixed_actions(n, c, K):
    """Generate the actions of the optimal mixed schedule from the decisions ``K``."""
    free = list(range(c - 1, -1, -1))     # pop() hands out the lowest slot first
    cur = 0
    # Tasks: ("seg", a, b, c, slot) reverses steps a .. b-1 with at most c
    # slots, state a held in `slot` (None: state a is current, not stored);
    # ("tape", j, slot) reverses step j from its tape. A stack, not
    # recursion: n may exceed Python's recursion limit.
    stack = [("seg", 0, n, c, None)]
    while stack:
        task = stack.pop()
        if task[0] == "tape":
            _, j, slot = task
            yield ReverseTape(j, slot)
            yield Free(slot)
            free.append(slot)
            continue
        _, a, b, units, slot = task
        m = b - a
        units = min(units, m - 1)
        if cur != a:
            yield Restore(a, slot)
            cur = a
        if slot is not None and (m == 1 or K[m, units] == _TAPE):
            # the stored state is not needed again: free its slot (a tape
            # taken next reuses it, as pop() hands it out first)
            yield Free(slot)
            free.append(slot)
            slot = None
        if m == 1:
            yield Reverse(a)
            cur = None
            continue
        k = int(K[m, units])
        if k == _TAPE:
            t = free.pop()
            yield StoreTape(a, t)
            cur = a + 1
            stack.append(("tape", a, t))
            stack.append(("seg", a + 1, b, units - 1, None))
            continue
        if slot is None:
            slot = free.pop()
            yield Store(a, slot)
        yield Advance(a, a + k)
        cur = a + k
        stack.append(("seg", a, a + k, units, slot))
        stack.append(("seg", a + k, b, units - 1, None))
