"""Checkpointing schedules for the adjoint of a time-stepper (pure planning).

A time-stepper runs ``n_steps`` steps; step ``n`` maps *state n* (the state
before step ``n``) to state ``n + 1``. Its adjoint needs the steps in reverse
order, ``n_steps - 1, ..., 1, 0``, each with the intermediates of its primal
evaluation. Keeping every intermediate costs too much memory, so a schedule
keeps a few *states* in snapshot slots and recomputes the rest.

This module only plans: it turns ``(n_steps, snapshots)`` into a sequence of
actions and counts their cost. It holds no tapes and no arrays; an executor
carries the actions out. The actions are

======================  ====================================================
``Advance(n0, n1)``     run the primal from state ``n0`` to state ``n1``
                        without keeping intermediates
``Store(n, slot)``      copy the current state (state ``n``) into ``slot``
``Restore(n, slot)``    make state ``n``, held in ``slot``, the current state
``Reverse(n)``          run step ``n`` once keeping its intermediates (a
                        taped step), then immediately its adjoint
``Free(slot)``          release ``slot``
======================  ====================================================

The machine starts with state 0 current and every slot empty. ``Reverse(n)``
consumes the current state: afterwards the machine holds no current state
until the next ``Restore``.

:func:`revolve` gives the offline binomial schedule of Griewank & Walther
(Algorithm 799: revolve, ACM TOMS 26(1), 2000), optimal in the number of
primal steps for a known ``n_steps`` and a slot budget ``snapshots``. The
initial state counts as a snapshot; the state before the last step is never
stored, so at most ``min(snapshots, n_steps - 1)`` slots are held at once.
Every step runs once inside its ``Reverse`` and, in all, ``t(n, s)`` more
times inside ``Advance`` actions, where (:func:`recompute_steps_revolve`)

    t(n, s) = r n - C(s + r, s + 1),  r the smallest integer with
    C(s + r, s) >= n,

so a schedule costs ``n + t(n, s)`` primal steps (:func:`forward_steps_revolve`)
and ``n`` adjoint steps. With ``snapshots >= n_steps - 1`` this is the
store-all schedule (:func:`store_all`): every state but the last is stored on
the first sweep, and ``t = n - 1``, because reaching state ``n - 1`` takes
``n - 1`` untaped steps and ``Reverse`` re-runs each step taped. (Taping the
whole first sweep, ``n`` primal steps in all, keeps every step's
intermediates rather than states; these actions do not express it, and the
executor needs no schedule for it.)

:func:`simulate` replays a schedule on an abstract machine and raises
:class:`InvalidSchedule` at the first action an executor could not carry out.

Examples
--------
>>> from tapediff.checkpoint import revolve, simulate
>>> sched = revolve(10, 2)
>>> sched.forward_steps, sched.reverse_steps, sched.max_snapshots
(30, 10, 2)
>>> simulate(sched)
Replay(forward_steps=30, reverse_steps=10, max_snapshots=2)
"""
from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import TapediffError

__all__ = ["Advance", "Store", "Restore", "Reverse", "Free", "Action", "Schedule",
           "revolve", "store_all", "forward_steps_revolve", "recompute_steps_revolve",
           "simulate", "Replay", "InvalidSchedule", "ScheduleArgumentError"]


# ----------------------------------------------------------------------------- errors

class ScheduleArgumentError(TapediffError, ValueError):
    """A schedule was asked for with an unusable ``n_steps`` or ``snapshots``.

    A ``ValueError``; the message names the argument, what is wrong with it
    and the fix.
    """


class InvalidSchedule(TapediffError, AssertionError):
    """:func:`simulate` found an action an executor could not carry out.

    The message gives the action's index, the action and the broken rule.
    (An ``AssertionError`` because :func:`simulate` is an executable
    assertion; it raises explicitly, so ``python -O`` does not disable it.)
    """


# ----------------------------------------------------------------------------- actions
# Frozen, slotted dataclasses rather than NamedTuples: a NamedTuple compares
# equal to any tuple with the same fields, so Store(3, 1) == Restore(3, 1)
# would hold -- a trap for an executor or a test comparing action lists.

@dataclass(frozen=True, slots=True)
class Advance:
    """Run the primal from state ``n0`` to state ``n1`` (steps ``n0 .. n1-1``).

    No intermediates are kept. The current state must be ``n0``; afterwards
    it is ``n1``. Costs ``n1 - n0`` primal steps.

    Examples
    --------
    >>> a = Advance(0, 4)
    >>> a.n1 - a.n0
    4
    >>> print(a)
    advance  0 -> 4
    """

    n0: int
    n1: int

    def __str__(self) -> str:
        return f"advance  {self.n0} -> {self.n1}"


@dataclass(frozen=True, slots=True)
class Store:
    """Copy the current state, state ``n`` (the state before step ``n``), into ``slot``.

    The slot must be empty. Slots are numbered ``0 .. snapshots - 1``.

    Examples
    --------
    >>> print(Store(4, 1))
    store    state 4 -> slot 1
    """

    n: int
    slot: int

    def __str__(self) -> str:
        return f"store    state {self.n} -> slot {self.slot}"


@dataclass(frozen=True, slots=True)
class Restore:
    """Load state ``n`` from ``slot``; it becomes the current state.

    The slot keeps its copy (release it with :class:`Free`).

    Examples
    --------
    >>> print(Restore(4, 1))
    restore  state 4 <- slot 1
    """

    n: int
    slot: int

    def __str__(self) -> str:
        return f"restore  state {self.n} <- slot {self.slot}"


@dataclass(frozen=True, slots=True)
class Reverse:
    """Run step ``n`` once keeping its intermediates, then the adjoint of step ``n``.

    This is the executor's taped-step-and-reverse: it costs one primal step
    and one adjoint step. The current state must be ``n`` and steps
    ``n + 1 .. n_steps - 1`` must already be reversed. Afterwards the machine
    holds no current state.

    Examples
    --------
    >>> print(Reverse(9))
    reverse  step 9
    """

    n: int

    def __str__(self) -> str:
        return f"reverse  step {self.n}"


@dataclass(frozen=True, slots=True)
class Free:
    """Release ``slot`` (its state is no longer needed).

    Examples
    --------
    >>> print(Free(1))
    free     slot 1
    """

    slot: int

    def __str__(self) -> str:
        return f"free     slot {self.slot}"


Action = Advance | Store | Restore | Reverse | Free


# ----------------------------------------------------------------------------- schedule

class Schedule:
    """A checkpointing schedule: the actions and what they cost.

    Build one with :func:`revolve` or :func:`store_all`. The counters are
    computed from the actions when the schedule is made (one pass); they do
    not check validity -- :func:`simulate` does.

    Parameters
    ----------
    actions : sequence of Action
        The actions in execution order.
    n_steps : int
        Number of time steps reversed.
    snapshots : int
        Slot budget the schedule was made for (the initial state counts).
    name : str
        ``"revolve"`` or ``"store-all"``.

    Attributes
    ----------
    actions : tuple of Action
    n_steps, snapshots : int
    name : str
    forward_steps : int
        Primal steps evaluated, first sweep included: the steps of every
        :class:`Advance` plus one for each :class:`Reverse`.
    reverse_steps : int
        Adjoint steps (one per :class:`Reverse`); equals ``n_steps``.
    max_snapshots : int
        Most slots filled at once.

    Examples
    --------
    >>> sched = revolve(4, 2)
    >>> len(sched), sched.forward_steps, sched.max_snapshots
    (14, 8, 2)
    >>> print(sched.to_text())
    revolve: n_steps=4 snapshots=2 forward_steps=8 reverse_steps=4 max_snapshots=2
       0  store    state 0 -> slot 0
       1  advance  0 -> 2
       2  store    state 2 -> slot 1
       3  advance  2 -> 3
       4  reverse  step 3
       5  restore  state 2 <- slot 1
       6  free     slot 1
       7  reverse  step 2
       8  restore  state 0 <- slot 0
       9  advance  0 -> 1
      10  reverse  step 1
      11  restore  state 0 <- slot 0
      12  free     slot 0
      13  reverse  step 0
    """

    __slots__ = ("actions", "n_steps", "snapshots", "name",
                 "forward_steps", "reverse_steps", "max_snapshots")

    def __init__(self, actions: Sequence[Action], n_steps: int, snapshots: int,
                 name: str) -> None:
        self.actions = tuple(actions)
        self.n_steps = n_steps
        self.snapshots = snapshots
        self.name = name
        forward = reverse = held = peak = 0
        # `type(a) is X` rather than isinstance: this pass runs over ~4 n
        # actions and must stay cheap for n = 10**5.
        for a in self.actions:
            kind = type(a)
            if kind is Advance:
                forward += a.n1 - a.n0
            elif kind is Reverse:
                forward += 1
                reverse += 1
            elif kind is Store:
                held += 1
                if held > peak:
                    peak = held
            elif kind is Free:
                held -= 1
        self.forward_steps = forward
        self.reverse_steps = reverse
        self.max_snapshots = peak

    def __iter__(self) -> Iterator[Action]:
        return iter(self.actions)

    def __len__(self) -> int:
        return len(self.actions)

    def __getitem__(self, index):
        return self.actions[index]

    def __repr__(self) -> str:
        return (f"Schedule(name={self.name!r}, n_steps={self.n_steps}, "
                f"snapshots={self.snapshots}, forward_steps={self.forward_steps}, "
                f"reverse_steps={self.reverse_steps}, max_snapshots={self.max_snapshots}, "
                f"actions=<{len(self.actions)}>)")

    def to_text(self, max_actions: int | None = None) -> str:
        """Return a header line and one numbered line per action, for debugging.

        Parameters
        ----------
        max_actions : int, optional
            Print at most this many actions (then a ``...`` line); all by
            default.

        Examples
        --------
        >>> print(revolve(3, 1).to_text(max_actions=2))
        revolve: n_steps=3 snapshots=1 forward_steps=6 reverse_steps=3 max_snapshots=1
           0  store    state 0 -> slot 0
           1  advance  0 -> 2
         ... 7 more actions
        """
        lines = [(f"{self.name}: n_steps={self.n_steps} snapshots={self.snapshots} "
                  f"forward_steps={self.forward_steps} reverse_steps={self.reverse_steps} "
                  f"max_snapshots={self.max_snapshots}")]
        shown = self.actions if max_actions is None else self.actions[:max_actions]
        width = max(4, len(str(len(self.actions))))
        lines += [f"{i:>{width}}  {a}" for i, a in enumerate(shown)]
        if len(shown) < len(self.actions):
            lines.append(f"{'...':>{width}} {len(self.actions) - len(shown)} more actions")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- arguments

def _count_arg(value, name: str, fix: str) -> int:
    # bool is an int subclass, but revolve(True, 2) is a bug, not a request;
    # NumPy integers are fine (operator.index turns them into plain ints).
    index = None
    if not isinstance(value, bool):
        try:
            index = operator.index(value)
        except TypeError:
            pass
    if index is None:
        hint = (f"int({value!r})" if isinstance(value, float) and value.is_integer()
                else "a whole number")
        raise ScheduleArgumentError(
            f"{name} must be an integer, got {type(value).__name__} {value!r}; pass {hint}")
    if index < 1:
        raise ScheduleArgumentError(f"{name} must be >= 1, got {index}; {fix}")
    return index


def _check_args(n_steps, snapshots) -> tuple[int, int]:
    n = _count_arg(n_steps, "n_steps",
                   "pass the number of time steps to reverse (at least one)")
    s = _count_arg(snapshots, "snapshots",
                   "pass the number of states that may be held at once, at least 1 "
                   "(the initial state needs a slot; 1 recomputes every step from it)")
    return n, s


# ----------------------------------------------------------------------------- cost

def _repetition_number(n: int, s: int) -> tuple[int, int]:
    """Return ``(r, C(s + r, s))`` with ``r`` the smallest integer such that
    ``C(s + r, s) >= n``."""
    if n <= 1:
        return 0, 1
    if s + 1 >= n:  # store-all regime; skips the loop for huge s
        return 1, s + 1
    r, beta = 0, 1
    while beta < n:
        r += 1
        beta = beta * (s + r) // r  # C(s+r, s) from C(s+r-1, s), exact
    return r, beta


def recompute_steps_revolve(n_steps: int, snapshots: int) -> int:
    """Primal steps a binomial schedule runs *besides* the ``n_steps`` taped ones.

    ``t(n, s) = r n - C(s + r, s + 1)`` with ``r`` the smallest integer such
    that ``C(s + r, s) >= n`` (Griewank & Walther 2000). This is the minimum
    over all schedules made of the actions of this module.

    Parameters
    ----------
    n_steps : int
        Number of time steps, ``>= 1``.
    snapshots : int
        Slots that may be held at once, the initial state included, ``>= 1``.

    Returns
    -------
    int

    Raises
    ------
    ScheduleArgumentError
        (a ``ValueError``) for a non-integer or an argument below 1.

    Examples
    --------
    >>> recompute_steps_revolve(10, 2), recompute_steps_revolve(1000, 10)
    (20, 3636)
    >>> recompute_steps_revolve(5, 1)   # 4 + 3 + 2 + 1 from the initial state
    10
    """
    n, s = _check_args(n_steps, snapshots)
    if s == 1:  # r = n - 1; the closed form is quicker than the loop
        return n * (n - 1) // 2
    r, beta = _repetition_number(n, s)
    # C(s+r, s+1) = C(s+r, s) * r / (s+1)
    return r * n - beta * r // (s + 1)


def forward_steps_revolve(n_steps: int, snapshots: int) -> int:
    """Total primal steps of the binomial schedule: ``n_steps + t(n_steps, snapshots)``.

    Counts the first sweep, every recomputation and the taped step inside
    each :class:`Reverse`; equals ``revolve(n_steps, snapshots).forward_steps``
    without building the schedule.

    Parameters
    ----------
    n_steps : int
        Number of time steps, ``>= 1``.
    snapshots : int
        Slots that may be held at once, the initial state included, ``>= 1``.

    Returns
    -------
    int

    Raises
    ------
    ScheduleArgumentError
        (a ``ValueError``) for a non-integer or an argument below 1.

    Examples
    --------
    >>> forward_steps_revolve(10, 2), forward_steps_revolve(1000, 10)
    (30, 4636)
    >>> forward_steps_revolve(10**4, 20)
    47976
    >>> forward_steps_revolve(10, 9)    # store-all: 9 steps to reach state 9, 10 taped
    19
    """
    n, s = _check_args(n_steps, snapshots)
    return n + recompute_steps_revolve(n, s)


# ----------------------------------------------------------------------------- generation

def _split(m: int, c: int) -> int:
    """Where to place the next snapshot in a segment of ``m >= 2`` steps with
    ``c >= 2`` slots (its first state already in one of them).

    Returns ``k``: advance ``k`` steps, store, reverse the right part
    (``m - k`` steps, ``c - 1`` slots), then the left part (``k`` steps,
    ``c`` slots). The cost ``k + t(m-k, c-1) + t(k, c)`` is convex in ``k``
    and minimal exactly for ``max(m - B(c-1, r), B(c, r-2)) <= k <=
    min(B(c, r-1), m - B(c-1, r-1))``, ``B(c, r) = C(c + r, c)``, ``r`` the
    repetition number of ``(m, c)``; we take the largest such ``k`` (advance
    as far as possible, as revolve does).
    """
    r, beta, prev = 0, 1, 1
    while beta < m:
        r += 1
        prev = beta
        beta = beta * (c + r) // r
    # prev = B(c, r-1); B(c-1, r-1) = B(c, r-1) * c / (c + r - 1), exact
    return min(prev, m - prev * c // (c + r - 1))


def _revolve_actions(n: int, s: int) -> list:
    """The binomial schedule for ``n`` steps and ``s`` slots, as a list.

    Iterative: a segment's left part is handled in place (a loop), only its
    right part is pushed, so the explicit stack holds at most ``s`` segments
    and no recursion limit applies. Appends to a list directly (about ``4 n``
    actions; a generator would add a frame switch per action).
    """
    if n == 1:
        return [Reverse(0)]  # the state before the last step is never stored
    actions = []
    append = actions.append
    free = list(range(s - 1, 0, -1))  # pop() hands out the lowest slot first
    append(Store(0, 0))
    cur = 0  # current state, or None after a Reverse
    # A segment (a, b, slot, c): reverse steps a .. b-1, state a held in
    # `slot`, using at most c slots at once including that one.
    stack = [(0, n, 0, s)]
    while stack:
        a, b, slot, c = stack.pop()
        while b - a > 1:
            m = b - a
            # One slot: recompute from a up to the last step, every time.
            k = m - 1 if c == 1 else _split(m, c)
            if cur != a:
                append(Restore(a, slot))
            append(Advance(a, a + k))
            if m - k == 1:
                # The state before the segment's last step is not stored:
                # reverse it straight away.
                append(Reverse(a + k))
                cur = None
                b = a + k
                continue
            new = free.pop()
            append(Store(a + k, new))
            # Reverse the right part first; come back to the left part later.
            stack.append((a, a + k, slot, c))
            a, slot, c = a + k, new, c - 1
            cur = a
        # One step left: its state is in `slot` for the last time.
        if cur != a:
            append(Restore(a, slot))
        append(Free(slot))
        free.append(slot)
        append(Reverse(a))
        cur = None
    return actions


def _store_all_actions(n: int) -> list:
    if n == 1:
        return [Reverse(0)]
    actions = []
    append = actions.append
    for j in range(n - 1):  # store states 0 .. n-2 on the first sweep
        append(Store(j, j))
        append(Advance(j, j + 1))
    append(Reverse(n - 1))
    for j in range(n - 2, -1, -1):
        append(Restore(j, j))
        append(Free(j))
        append(Reverse(j))
    return actions


def revolve(n_steps: int, snapshots: int) -> Schedule:
    """The optimal offline (binomial) checkpointing schedule.

    Reverses ``n_steps`` steps holding at most ``snapshots`` states at once
    (the initial state counts) with the fewest primal steps,
    :func:`forward_steps_revolve` ``(n_steps, snapshots)``. When
    ``snapshots >= n_steps - 1`` this is :func:`store_all` (``name ==
    "store-all"``, ``snapshots`` kept as given); otherwise ``name ==
    "revolve"``. Generation is iterative and linear in ``n_steps``: well
    under a second for ``n_steps = 10**5``.

    Parameters
    ----------
    n_steps : int
        Number of time steps, ``>= 1``.
    snapshots : int
        Slots that may be held at once, the initial state included, ``>= 1``.

    Returns
    -------
    Schedule

    Raises
    ------
    ScheduleArgumentError
        (a ``ValueError``) for a non-integer or an argument below 1.

    Examples
    --------
    >>> sched = revolve(1000, 10)
    >>> sched.name, sched.forward_steps, sched.max_snapshots
    ('revolve', 4636, 10)
    >>> revolve(5, 4).name
    'store-all'
    >>> for action in revolve(5, 1)[:4]:
    ...     print(action)
    store    state 0 -> slot 0
    advance  0 -> 4
    reverse  step 4
    restore  state 0 <- slot 0
    """
    n, s = _check_args(n_steps, snapshots)
    if s >= n - 1:
        return Schedule(_store_all_actions(n), n, s, "store-all")
    return Schedule(_revolve_actions(n, s), n, s, "revolve")


def store_all(n_steps: int) -> Schedule:
    """Store every state but the last on the first sweep, then reverse.

    Holds ``n_steps - 1`` states (``snapshots`` is set to ``max(1, n_steps -
    1)``) and runs ``2 n_steps - 1`` primal steps: ``n_steps - 1`` to reach
    the last state, then one taped step per :class:`Reverse`.

    Parameters
    ----------
    n_steps : int
        Number of time steps, ``>= 1``.

    Returns
    -------
    Schedule

    Raises
    ------
    ScheduleArgumentError
        (a ``ValueError``) for a non-integer or ``n_steps < 1``.

    Examples
    --------
    >>> sched = store_all(3)
    >>> [str(a) for a in sched]  # doctest: +NORMALIZE_WHITESPACE
    ['store    state 0 -> slot 0', 'advance  0 -> 1', 'store    state 1 -> slot 1',
     'advance  1 -> 2', 'reverse  step 2', 'restore  state 1 <- slot 1', 'free     slot 1',
     'reverse  step 1', 'restore  state 0 <- slot 0', 'free     slot 0', 'reverse  step 0']
    >>> sched.forward_steps, sched.max_snapshots
    (5, 2)
    """
    n = _count_arg(n_steps, "n_steps",
                   "pass the number of time steps to reverse (at least one)")
    return Schedule(_store_all_actions(n), n, max(1, n - 1), "store-all")


# ----------------------------------------------------------------------------- replay

class Replay(NamedTuple):
    """What :func:`simulate` counted while replaying a schedule."""

    forward_steps: int
    reverse_steps: int
    max_snapshots: int


def simulate(schedule: Schedule) -> Replay:
    """Replay a schedule on an abstract machine; raise at the first invalid action.

    The machine holds the index of the current state (``0`` at the start,
    none after a :class:`Reverse`), a dict ``slot -> state index`` and the set
    of reversed steps. The rules, for ``N = schedule.n_steps``:

    * ``Advance(n0, n1)``: the current state is ``n0`` and
      ``n0 < n1 <= N``;
    * ``Store(n, slot)``: the current state is ``n``; ``slot`` is empty and in
      ``range(schedule.snapshots)``;
    * ``Restore(n, slot)``: ``slot`` holds state ``n``;
    * ``Reverse(n)``: the current state is ``n`` and steps ``n+1 .. N-1``
      are reversed, no others (so steps go ``N-1, ..., 0``);
    * ``Free(slot)``: ``slot`` is filled;
    * never more than ``schedule.snapshots`` slots filled at once;
    * at the end every step is reversed exactly once and every slot freed.

    Parameters
    ----------
    schedule : Schedule

    Returns
    -------
    Replay
        ``forward_steps``, ``reverse_steps`` and ``max_snapshots`` counted on
        the replay (compare them with the schedule's own counters).

    Raises
    ------
    InvalidSchedule
        With the index of the offending action and the rule it breaks.

    Examples
    --------
    >>> simulate(revolve(100, 5))
    Replay(forward_steps=416, reverse_steps=100, max_snapshots=5)
    >>> bad = Schedule([Advance(0, 1), Reverse(0)], n_steps=2, snapshots=1, name="revolve")
    >>> simulate(bad)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    tapediff.checkpoint.schedule.InvalidSchedule: action 1 (reverse  step 0): ...
    """
    n_steps, budget = schedule.n_steps, schedule.snapshots
    cur = 0
    slots: dict[int, int] = {}
    reversed_steps: set[int] = set()
    forward = peak = 0

    def fail(i, action, why):
        raise InvalidSchedule(f"action {i} ({action}): {why}")

    for i, a in enumerate(schedule.actions):
        kind = type(a)
        if kind is Advance:
            if cur != a.n0:
                fail(i, a, f"the current state is {cur}, not {a.n0}")
            if not a.n0 < a.n1 <= n_steps:
                fail(i, a, f"needs n0 < n1 <= n_steps = {n_steps}")
            forward += a.n1 - a.n0
            cur = a.n1
        elif kind is Store:
            if cur != a.n:
                fail(i, a, f"the current state is {cur}, not {a.n}")
            if not 0 <= a.slot < budget:
                fail(i, a, f"slot {a.slot} is outside range({budget})")
            if a.slot in slots:
                fail(i, a, f"slot {a.slot} still holds state {slots[a.slot]}; Free it first")
            # Slots are numbered below the budget and a filled one cannot be
            # stored into, so at most `snapshots` are ever filled at once.
            slots[a.slot] = a.n
            peak = max(peak, len(slots))
        elif kind is Restore:
            if a.slot not in slots:
                fail(i, a, f"slot {a.slot} is empty")
            if slots[a.slot] != a.n:
                fail(i, a, f"slot {a.slot} holds state {slots[a.slot]}, not {a.n}")
            cur = a.n
        elif kind is Reverse:
            expected = n_steps - 1 - len(reversed_steps)
            if a.n in reversed_steps:
                fail(i, a, f"step {a.n} is already reversed")
            if a.n != expected:
                fail(i, a, f"the next step to reverse is {expected}")
            if cur != a.n:
                fail(i, a, f"the current state is {cur}, not {a.n}")
            reversed_steps.add(a.n)
            forward += 1
            cur = None  # the taped step consumed the state
        elif kind is Free:
            if a.slot not in slots:
                fail(i, a, f"slot {a.slot} is already empty")
            del slots[a.slot]
        else:
            fail(i, a, f"unknown action type {kind.__name__}")
    if len(reversed_steps) != n_steps:
        missing = n_steps - len(reversed_steps)
        raise InvalidSchedule(f"the schedule ends with {missing} of {n_steps} steps "
                              f"not reversed (next: step {n_steps - 1 - len(reversed_steps)})")
    if slots:
        raise InvalidSchedule(f"the schedule ends with slots still filled: {slots}")
    return Replay(forward, len(reversed_steps), peak)
