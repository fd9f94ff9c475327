"""Online checkpointing: reverse a time-stepper whose number of steps is not known.

A run that stops when a condition holds (``until(u, i)``) learns ``n_steps``
only at its end, so it must decide which states to keep while it runs. This
module plans that (pure bookkeeping, like :mod:`.schedule`); the executor
asks :class:`OnlinePlanner` what to do after each step.

Every online step is run taped (:class:`~.schedule.StoreTape` into slot
``s``, the workspace that a :class:`~.schedule.Reverse` would use anyway), so
when the run stops, the last step's adjoint needs no recomputation, as in an
offline schedule. Whether state ``i`` is kept is decided once step ``i + 1``
is known to run (the run holds the previous state for one step): keeping
the state before the last step would waste a slot.

Placement, with ``s`` slots for states (state 0 always kept):

1. Up to ``C(s + 2, 2)`` steps, the rule of Stumm & Walther (New algorithms
   for optimal online checkpointing, SIAM J. Sci. Comput. 32(2), 2010): the
   kept states cut ``[0, n - 1)`` into segments, the ``j``-th of which may
   hold at most ``s - j + 1`` steps (then it is reversed by storing every
   state, repetition number 1 or 2 overall). A new state is kept as soon as
   dropping some kept state (the earliest whose two segments still fit
   merged) allows it. The result is the offline optimum for every ``n <=
   C(s + 2, 2)``.
2. Beyond, the dynamic scheme of Wang, Moin & Iaccarino (Minimal repetition
   dynamic checkpointing algorithm for unsteady adjoint calculation, SIAM J.
   Sci. Comput. 31(4), 2009): every state is kept on arrival, with a
   *level*. A kept state is *dispensable* when a later one has a higher
   level; the latest dispensable one is dropped and the new state gets level
   0; with none dispensable, the latest kept state is replaced by the new one
   with its level plus one. (States kept in phase 1 enter with level 1; state
   0 is never dropped.)
3. When the run stops, each segment between kept states is reversed by the
   offline binomial schedule (:func:`~.schedule.reverse_segment`) with the
   slots not held by earlier kept states.

Excess primal steps over the offline optimum for a known ``n``,
``forward_steps_revolve(n, s)`` (revolve with the same slots), as computed by
:func:`excess_table` (the test-suite checks this table against it)::

    excess primal steps (percent of the offline optimum)
      s   C(s+2,2)          n=10         n=100        n=1000       n=10000
      2          6       3 (10%)    73 (7.72%)   911 (3.05%)  9719 (1.03%)
      5         21             0    39 (9.38%)   116 (1.59%)  2666 (2.17%)
     10         66             0    20 (6.21%)   499 (10.8%)  2160 (3.19%)
     20        231             0             0   16 (0.427%)  7570 (15.8%)

Examples
--------
>>> from tapediff.checkpoint import forward_steps_revolve, simulate
>>> from tapediff.checkpoint.online import online, online_forward_steps
>>> sched = online(21, 5)            # C(5 + 2, 2) = 21: still optimal
>>> sched.forward_steps, forward_steps_revolve(21, 5)
(56, 56)
>>> simulate(sched).reverse_steps
21
>>> online_forward_steps(100, 5) - forward_steps_revolve(100, 5)
39
"""
from __future__ import annotations

from collections.abc import Iterator

from .schedule import (Free, ReverseTape, Schedule, Store, StoreTape, _check_args,
                       forward_steps_revolve, recompute_steps_revolve, reverse_segment)

__all__ = ["OnlinePlacement", "OnlinePlanner", "online", "online_forward_steps",
           "excess_table"]

_PINNED = float("inf")      # state 0's level: never dispensable, never replaced


class OnlinePlacement:
    """Which states an online run keeps, given ``snapshots`` slots (pure).

    Call :meth:`keep` for ``i = 0, 1, 2, ...`` as each state is known not to
    be the state before the last step. :attr:`positions` lists the kept
    states in increasing order.

    Parameters
    ----------
    snapshots : int
        Slots for states, state 0 included, ``>= 1``.

    Examples
    --------
    >>> place = OnlinePlacement(2)
    >>> [place.keep(i) for i in range(4)]
    [(True, None), (True, None), (True, 1), (True, 2)]
    >>> place.positions
    [0, 3]
    """

    def __init__(self, snapshots: int) -> None:
        self.snapshots = snapshots
        self.positions: list[int] = []
        self.levels: dict[int, float] = {}
        self.phase = 1          # 1: Stumm & Walther; 2: Wang, Moin & Iaccarino

    def keep(self, i: int) -> tuple[bool, int | None]:
        """Decide about state ``i``: return ``(keep it, kept state to drop or None)``."""
        pos = self.positions
        if len(pos) < self.snapshots:
            pos.append(i)
            self.levels[i] = _PINNED if i == 0 else 0
            return True, None
        if self.phase == 1:
            dropped = self._phase1(i)
            if dropped is not False:
                return dropped is not None, dropped
            self.phase = 2
            self.levels = {p: (_PINNED if p == 0 else 1) for p in pos}
        return self._phase2(i)

    def _phase1(self, i):
        """Keep ``i`` if a dropped state lets every segment fit (return it),
        skip ``i`` (None) if the open segment still fits, else False."""
        pos, s = self.positions, self.snapshots
        for j in range(1, len(pos)):
            end = pos[j + 1] if j + 1 < len(pos) else i
            # segments j-1 and j merged, as segment j-1, hold at most s - j + 2 steps
            if end - pos[j - 1] <= s - j + 2:
                dropped = pos.pop(j)
                pos.append(i)
                return dropped
        # not kept: the open segment [pos[-1], i + 1) is the (s-1)-th, at most 2 steps
        if i + 1 - pos[-1] <= 2:
            return None
        return False

    def _phase2(self, i):
        pos, levels = self.positions, self.levels
        if len(pos) == 1:           # one slot: only state 0 is ever kept
            return False, None
        highest = -1.0
        for p in reversed(pos):
            if levels[p] < highest:      # the latest dispensable state
                pos.remove(p)
                del levels[p]
                pos.append(i)
                levels[i] = 0
                return True, p
            highest = max(highest, levels[p])
        last = pos.pop()
        level = levels.pop(last)
        pos.append(i)
        levels[i] = level + 1
        return True, last


class OnlinePlanner:
    """The actions of an online run, step by step (pure; ``O(snapshots)`` memory).

    Slots ``0 .. s-1`` hold states, slot ``s`` (:attr:`workspace`) the tape
    of the step just run. For each step ``i`` a run carries out
    ``StoreTape(i, s)``; if it goes on, :meth:`keep` (a ``Free`` of a dropped
    state, a ``Store`` of state ``i`` -- the state *before* the step just
    run, which the run still holds) and ``Free(s)``; once it stops after
    ``n`` steps, :meth:`reversal`. The same decisions replayed for a known
    ``n`` give :func:`online`'s schedule, where each :meth:`keep` comes
    before its ``StoreTape`` (the order a simulator checks).

    Parameters
    ----------
    snapshots : int
        Slots for states, ``>= 1``.

    Examples
    --------
    >>> plan = OnlinePlanner(2)
    >>> plan.keep(0), plan.keep(1), plan.keep(2)
    ([Store(n=0, slot=0)], [Store(n=1, slot=1)], [Free(slot=1), Store(n=2, slot=1)])
    >>> [str(a) for a in plan.reversal(4)]  # doctest: +NORMALIZE_WHITESPACE
    ['reverse  step 3 <- tape in slot 2', 'free     slot 2', 'restore  state 2 <- slot 1',
     'free     slot 1', 'reverse  step 2', 'restore  state 0 <- slot 0', 'advance  0 -> 1',
     'reverse  step 1', 'restore  state 0 <- slot 0', 'free     slot 0', 'reverse  step 0']
    """

    def __init__(self, snapshots: int) -> None:
        self.placement = OnlinePlacement(snapshots)
        self.workspace = snapshots
        self.free = list(range(snapshots - 1, -1, -1))
        self.slot_of: dict[int, int] = {}

    def keep(self, i: int) -> list:
        """Step ``i + 1`` will run: the actions that keep (or not) state ``i``."""
        keep, dropped = self.placement.keep(i)
        out = []
        if dropped is not None:
            slot = self.slot_of.pop(dropped)
            self.free.append(slot)
            out.append(Free(slot))
        if keep:
            slot = self.free.pop()
            self.slot_of[i] = slot
            out.append(Store(i, slot))
        return out

    def reversal(self, n_steps: int) -> Iterator:
        """The run stopped after ``n_steps`` steps: generate the reversal."""
        yield ReverseTape(n_steps - 1, self.workspace)
        yield Free(self.workspace)
        s = self.placement.snapshots
        pos = self.placement.positions
        for j in range(len(pos) - 1, -1, -1):
            end = pos[j + 1] if j + 1 < len(pos) else n_steps - 1
            # earlier kept states still hold j slots; the segment gets the rest
            yield from reverse_segment(pos[j], end, self.slot_of[pos[j]], s - j, self.free,
                                       None)


def _online_actions(n, s):
    plan = OnlinePlanner(s)
    for i in range(n - 1):
        yield from plan.keep(i)
        yield StoreTape(i, plan.workspace)
        yield Free(plan.workspace)
    yield StoreTape(n - 1, plan.workspace)
    yield from plan.reversal(n)


def online(n_steps: int, snapshots: int) -> Schedule:
    """The schedule an online run with ``snapshots`` state slots follows if it stops after ``n_steps``.

    Parameters
    ----------
    n_steps : int
        Number of steps the run turns out to have, ``>= 1``.
    snapshots : int
        Slots for states, state 0 included, ``>= 1`` (plus one slot for the
        tape of the step just run).

    Returns
    -------
    Schedule
        ``name == "online"``, ``snapshots + 1`` slots.

    Raises
    ------
    ScheduleArgumentError
        (a ``ValueError``) for a non-integer or an argument below 1.

    Examples
    --------
    >>> online(10, 3).forward_steps, online(11, 3).forward_steps
    (25, 30)
    """
    n, s = _check_args(n_steps, snapshots)
    return Schedule(lambda: _online_actions(n, s), n, s + 1, "online")


def online_forward_steps(n_steps: int, snapshots: int) -> int:
    """Primal steps of :func:`online` ``(n_steps, snapshots)`` without building it.

    ``n`` for the run itself plus, per segment ``[p_j, p_{j+1})`` between
    kept states (the last one ends at ``n - 1``, its last step already
    taped), ``m + t(m, s - j)`` for its binomial reversal.

    Examples
    --------
    >>> online_forward_steps(11, 3)
    30
    """
    n, s = _check_args(n_steps, snapshots)
    place = OnlinePlacement(s)
    for i in range(n - 1):
        place.keep(i)
    pos = place.positions
    total = n
    for j, p in enumerate(pos):
        m = (pos[j + 1] if j + 1 < len(pos) else n - 1) - p
        total += m + recompute_steps_revolve(m, s - j)
    return total


def excess_table(snapshots=(2, 5, 10, 20), n_steps=(10, 100, 1000, 10**4)) -> str:
    """The table of the module docstring: online minus offline primal steps.

    Parameters
    ----------
    snapshots, n_steps : sequences of int
        Rows and columns.

    Returns
    -------
    str

    Examples
    --------
    >>> print(excess_table(snapshots=(3,), n_steps=(10, 11)))
    excess primal steps (percent of the offline optimum)
      s   C(s+2,2)         n=10         n=11
      3         10             0     1 (3.45%)
    """
    head = f"{'s':>3} {'C(s+2,2)':>10}" + "".join(f"{f'n={n}':>14}" for n in n_steps)
    lines = ["excess primal steps (percent of the offline optimum)", head]
    for s in snapshots:
        row = f"{s:>3} {(s + 1) * (s + 2) // 2:>10}"
        for n in n_steps:
            extra = online_forward_steps(n, s) - forward_steps_revolve(n, s)
            cell = "0" if extra == 0 else f"{extra} ({100 * extra / forward_steps_revolve(n, s):.3g}%)"
            row += f"{cell:>14}"
        lines.append(row)
    return "\n".join(lines)
