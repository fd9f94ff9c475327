"""Checkpointing schedules for the adjoint of a time-stepper (pure planning).

A time-stepper runs ``n_steps`` steps; step ``n`` maps *state n* (the state
before step ``n``) to state ``n + 1``. Its adjoint needs the steps in reverse
order, ``n_steps - 1, ..., 1, 0``, each with the intermediates of its primal
evaluation. Keeping every intermediate costs too much memory, so a schedule
keeps a few states (or a few steps' intermediates, *tapes*) in snapshot slots
and recomputes the rest.

This module only plans: it turns ``(n_steps, snapshots)`` into a sequence of
actions and counts their cost. It holds no tapes and no arrays; an executor
carries the actions out. The actions are

==========================  ================================================
``Advance(n0, n1)``         run the primal from state ``n0`` to state
                            ``n1`` without keeping intermediates
``Store(n, slot)``          copy the current state (state ``n``) into ``slot``
``Restore(n, slot)``        make state ``n``, held in ``slot``, the current
                            state
``Reverse(n)``              run step ``n`` once keeping its intermediates (a
                            taped step), then immediately its adjoint
``StoreTape(n, slot)``      run step ``n`` keeping its intermediates in
                            ``slot``; state ``n + 1`` becomes current
``ReverseTape(n, slot)``    the adjoint of step ``n`` from the tape in
                            ``slot`` (no primal step)
``Free(slot)``              release ``slot``
==========================  ================================================

The machine starts with state 0 current and every slot empty.
``Reverse`` and ``ReverseTape`` leave no current state: the next action that
needs one is a ``Restore``.

Cost accounting. ``forward_steps`` counts every primal step evaluated, the
first sweep included: the steps of each ``Advance`` plus one per ``Reverse``
and per ``StoreTape``. Every step is evaluated exactly once with its
intermediates kept (in a ``Reverse`` or a ``StoreTape``), and the
``Advance`` actions add the recomputations.

* :func:`store_all` keeps every step's tape on the first sweep: ``n`` primal
  steps, no recomputation, ``n - 1`` tapes held (the last step is reversed
  straight away).
* :func:`revolve` keeps states only: the offline binomial schedule of
  Griewank & Walther (Algorithm 799: revolve, ACM TOMS 26(1), 2000), optimal
  among state-only schedules for a known ``n_steps`` and a slot budget
  ``snapshots`` (the initial state counts). It costs ``n + t(n, s)`` primal
  steps (:func:`forward_steps_revolve`) with (:func:`recompute_steps_revolve`)

      t(n, s) = r n - C(s + r, s + 1),  r the smallest integer with
      C(s + r, s) >= n.

  For ``s >= n - 1`` it stores every state but the last: ``t = n - 1``.
* :func:`~tapediff.checkpoint.mixed.mixed` lets a slot hold a state or a
  tape (:mod:`tapediff.checkpoint.mixed`); with slots of equal size it never
  costs more than revolve (3921 instead of 4636 primal steps for ``n =
  1000, s = 10``).

:func:`simulate` replays a schedule on an abstract machine and raises
:class:`InvalidSchedule` at the first action an executor could not carry out.

Examples
--------
>>> from tapediff.checkpoint import revolve, simulate, store_all
>>> sched = revolve(10, 2)
>>> sched.forward_steps, sched.reverse_steps, sched.max_snapshots
(30, 10, 2)
>>> simulate(sched)
Replay(forward_steps=30, reverse_steps=10, max_snapshots=2)
>>> store_all(10).forward_steps
10
"""
from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator
from typing import NamedTuple

from ..errors import TapediffError

__all__ = ["Advance", "Store", "Restore", "Reverse", "StoreTape", "ReverseTape", "Free",
           "Action", "Schedule", "revolve", "store_all", "forward_steps_revolve",
           "recompute_steps_revolve", "simulate", "Replay", "InvalidSchedule",
           "ScheduleArgumentError"]


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
# NamedTuples, because a schedule for n = 10**5 makes ~5 * 10**5 of them and a
# tuple is about twice as quick to create as a frozen dataclass; but a plain
# NamedTuple compares equal to any tuple with the same fields, so
# Store(3, 1) == Restore(3, 1) would hold -- a trap for an executor or a test
# comparing action lists. Equality therefore also compares the type.

def _same(self, other):
    return type(self) is type(other) and tuple.__eq__(self, other)


def _differ(self, other):
    return not _same(self, other)


class Advance(NamedTuple):
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

    __eq__, __ne__, __hash__ = _same, _differ, tuple.__hash__


class Store(NamedTuple):
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

    __eq__, __ne__, __hash__ = _same, _differ, tuple.__hash__


class Restore(NamedTuple):
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

    __eq__, __ne__, __hash__ = _same, _differ, tuple.__hash__


class Reverse(NamedTuple):
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

    __eq__, __ne__, __hash__ = _same, _differ, tuple.__hash__


class StoreTape(NamedTuple):
    """Run step ``n`` keeping its intermediates (its *tape*) in ``slot``.

    The current state must be ``n``; afterwards it is ``n + 1``. Costs one
    primal step; :class:`ReverseTape` later runs the adjoint of step ``n``
    without evaluating the step again.

    Examples
    --------
    >>> print(StoreTape(3, 0))
    tape     step 3 -> slot 0
    """

    n: int
    slot: int

    def __str__(self) -> str:
        return f"tape     step {self.n} -> slot {self.slot}"

    __eq__, __ne__, __hash__ = _same, _differ, tuple.__hash__


class ReverseTape(NamedTuple):
    """Run the adjoint of step ``n`` from the tape held in ``slot``.

    Steps ``n + 1 .. n_steps - 1`` must already be reversed. Costs one
    adjoint step and no primal step; the slot stays filled until
    :class:`Free`. Afterwards the machine holds no current state.

    Examples
    --------
    >>> print(ReverseTape(3, 0))
    reverse  step 3 <- tape in slot 0
    """

    n: int
    slot: int

    def __str__(self) -> str:
        return f"reverse  step {self.n} <- tape in slot {self.slot}"

    __eq__, __ne__, __hash__ = _same, _differ, tuple.__hash__


class Free(NamedTuple):
    """Release ``slot`` (its state or tape is no longer needed).

    Examples
    --------
    >>> print(Free(1))
    free     slot 1
    """

    slot: int

    def __str__(self) -> str:
        return f"free     slot {self.slot}"

    __eq__, __ne__, __hash__ = _same, _differ, tuple.__hash__


Action = Advance | Store | Restore | Reverse | StoreTape | ReverseTape | Free


# ----------------------------------------------------------------------------- schedule

class Schedule:
    """A checkpointing schedule: the actions and what they cost.

    Build one with :func:`revolve`, :func:`store_all`,
    :func:`~tapediff.checkpoint.mixed.mixed`,
    :func:`~tapediff.checkpoint.multistage.two_level` or an online run. The
    counters are computed from the actions when the schedule is made (one
    pass); they do not check validity -- :func:`simulate` does.

    A schedule made by this package does not store its actions: it keeps
    the function that generates them and runs it again whenever the actions
    are iterated (generation costs about a microsecond per action, a small
    part of a step). So a schedule for ``n_steps = 10**5`` takes a few
    hundred bytes, not the ~30 MB of its half a million actions, and an
    executor holds ``O(snapshots)`` bookkeeping, not ``O(n_steps)``.
    :attr:`actions` builds the tuple when asked.

    Parameters
    ----------
    actions : sequence of Action, or callable
        The actions in execution order, or a function of no arguments
        returning a fresh iterator over them (called once here to count, and
        again for each iteration).
    n_steps : int
        Number of time steps reversed.
    snapshots : int
        Slot budget the schedule was made for (the initial state counts).
    name : str
        ``"revolve"``, ``"store-all"``, ``"mixed"``, ``"online"`` or
        ``"two-level"``.
    disk_slots : iterable of int, optional
        Slots whose states live on disk (two-level schedules); the others are
        in memory.

    Attributes
    ----------
    actions : tuple of Action
        Built on each access for a generated schedule.
    n_steps, snapshots : int
    name : str
    disk_slots : frozenset of int
    forward_steps : int
        Primal steps evaluated, first sweep included: the steps of every
        :class:`Advance` plus one for each :class:`Reverse` and
        :class:`StoreTape`.
    reverse_steps : int
        Adjoint steps (one per :class:`Reverse` or :class:`ReverseTape`);
        equals ``n_steps``.
    max_snapshots : int
        Most slots filled at once (states and tapes).
    max_states, max_tapes : int
        Most slots holding a state, and a tape, at once.

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

    __slots__ = ("_stored", "_source", "_length", "n_steps", "snapshots", "name", "disk_slots",
                 "forward_steps", "reverse_steps", "max_snapshots", "max_states", "max_tapes")

    def __init__(self, actions, n_steps: int, snapshots: int, name: str,
                 disk_slots=()) -> None:
        if callable(actions):
            self._source, self._stored = actions, None
        else:
            self._source, self._stored = None, tuple(actions)
        self.n_steps = n_steps
        self.snapshots = snapshots
        self.name = name
        self.disk_slots = frozenset(disk_slots)
        forward = reverse = states = tapes = peak_states = peak_tapes = peak = length = 0
        tape_slots = set()
        # `type(a) is X` rather than isinstance, most frequent kinds first:
        # this pass runs over ~4 n actions and must stay cheap for n = 10**5.
        for a in self:
            length += 1
            kind = type(a)
            if kind is Advance:
                forward += a.n1 - a.n0
            elif kind is Restore:
                pass
            elif kind is Reverse:
                forward += 1
                reverse += 1
            elif kind is Store:
                states += 1
                if states > peak_states:
                    peak_states = states
                if states + tapes > peak:
                    peak = states + tapes
            elif kind is Free:
                if tape_slots and a.slot in tape_slots:
                    tape_slots.discard(a.slot)
                    tapes -= 1
                else:
                    states -= 1
            elif kind is StoreTape:
                forward += 1
                tapes += 1
                tape_slots.add(a.slot)
                if tapes > peak_tapes:
                    peak_tapes = tapes
                if states + tapes > peak:
                    peak = states + tapes
            elif kind is ReverseTape:
                reverse += 1
        self.forward_steps = forward
        self.reverse_steps = reverse
        self.max_states, self.max_tapes, self.max_snapshots = peak_states, peak_tapes, peak
        self._length = length

    @property
    def actions(self) -> tuple:
        """The actions as a tuple (built anew for a generated schedule)."""
        return self._stored if self._stored is not None else tuple(self._source())

    def __iter__(self) -> Iterator[Action]:
        return iter(self._stored) if self._stored is not None else iter(self._source())

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):
        return self.actions[index]

    def __repr__(self) -> str:
        return (f"Schedule(name={self.name!r}, n_steps={self.n_steps}, "
                f"snapshots={self.snapshots}, forward_steps={self.forward_steps}, "
                f"reverse_steps={self.reverse_steps}, max_snapshots={self.max_snapshots}, "
                f"actions=<{len(self)}>)")

    def peak_bytes(self, state_bytes: int, tape_bytes: int, slots=None) -> int:
        """Most bytes held in slots at once, for a state and a tape of the given sizes.

        Parameters
        ----------
        state_bytes, tape_bytes : int
            Size of one stored state and of one step's tape.
        slots : collection of int, optional
            Count only these slots (e.g. ``schedule.disk_slots``); all by
            default.

        Returns
        -------
        int

        Examples
        --------
        >>> store_all(5).peak_bytes(state_bytes=8, tape_bytes=100)
        400
        >>> revolve(5, 2).peak_bytes(8, 100)
        16
        """
        held = peak = 0
        size = {}
        for a in self:
            kind = type(a)
            if kind is Store or kind is StoreTape:
                if slots is None or a.slot in slots:
                    size[a.slot] = state_bytes if kind is Store else tape_bytes
                    held += size[a.slot]
                    peak = max(peak, held)
            elif kind is Free:
                held -= size.pop(a.slot, 0)
        return peak

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
        shown = list(itertools.islice(self, max_actions))
        width = max(4, len(str(len(self))))
        lines += [f"{i:>{width}}  {a}" for i, a in enumerate(shown)]
        if len(shown) < len(self):
            lines.append(f"{'...':>{width}} {len(self) - len(shown)} more actions")
        return "\n".join(lines)

    def plot(self, path=None, ax=None):
        """Draw the schedule: the step each action works on, and the slots filled.

        Needs matplotlib (``pip install matplotlib``); see
        :func:`tapediff.checkpoint.plot.plot_schedule`, which this calls.

        Parameters
        ----------
        path : str or path-like, optional
            Save the figure there (any format matplotlib knows from the
            suffix, e.g. ``"schedule.png"``).
        ax : pair of matplotlib Axes, optional
            Draw into these two axes (steps, slots) instead of a new figure.

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> import importlib.util
        >>> if importlib.util.find_spec("matplotlib"):      # an optional dependency
        ...     fig = revolve(30, 4).plot()                 # or .plot("schedule.png")
        ...     print(fig.axes[0].get_title())
        ... else:
        ...     print("revolve: 30 steps, 4 slots, 99 primal steps")
        revolve: 30 steps, 4 slots, 99 primal steps
        """
        from .plot import plot_schedule
        return plot_schedule(self, path=path, ax=ax)


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


def _check_n(n_steps) -> int:
    return _count_arg(n_steps, "n_steps",
                      "pass the number of time steps to reverse (at least one)")


def _check_args(n_steps, snapshots) -> tuple[int, int]:
    n = _check_n(n_steps)
    s = _count_arg(snapshots, "snapshots",
                   "pass the number of states that may be held at once, at least 1 "
                   "(the initial state needs a slot; 1 recomputes every step from it)")
    return n, s


# ----------------------------------------------------------------------------- cost

def repetition_number(n: int, s: int) -> tuple[int, int]:
    """Return ``(r, C(s + r, s))`` with ``r`` the smallest integer such that
    ``C(s + r, s) >= n``: the most times revolve runs any one step untaped.

    Examples
    --------
    >>> repetition_number(1000, 10)
    (4, 1001)
    """
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
    over all schedules that store states only.

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
    r, beta = repetition_number(n, s)
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
    >>> forward_steps_revolve(10, 9)    # every state stored: 9 steps to reach state 9, 10 taped
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


def reverse_segment(a: int, b: int, slot: int, c: int, free: list,
                    cur: int | None) -> Iterator[Action]:
    """Generate the binomial reversal of steps ``a .. b-1``.

    State ``a`` is held in ``slot``; at most ``c`` slots are used at once,
    ``slot`` included, taken from (and given back to) the list ``free``
    (``pop()`` hands one out). ``cur`` is the current state (``None`` for
    none). Ends with ``slot`` freed and no current state. :func:`revolve` is
    this for ``a = 0, b = n``; an online run calls it per segment between
    the states it kept.

    Iterative: a segment's left part is handled in place (a loop), only its
    right part is pushed, so the explicit stack holds at most ``c`` segments
    and no recursion limit applies.
    """
    # tuple.__new__ directly: NamedTuple's own __new__ adds a Python call per
    # action, a third of the generation time for n = 10**5
    make = tuple.__new__
    # A segment (a, b, slot, c): reverse steps a .. b-1, state a held in
    # `slot`, using at most c slots at once including that one.
    stack = [(a, b, slot, min(c, b - a))]
    while stack:
        a, b, slot, c = stack.pop()
        while b - a > 1:
            m = b - a
            # One slot: recompute from a up to the last step, every time.
            # (_split gives 1 when c >= m - 1: store every state)
            k = m - 1 if c == 1 else _split(m, c)
            if cur != a:
                yield make(Restore, (a, slot))
            yield make(Advance, (a, a + k))
            if m - k == 1:
                # The state before the segment's last step is not stored:
                # reverse it straight away.
                yield make(Reverse, (a + k,))
                cur = None
                b = a + k
                continue
            new = free.pop()
            yield make(Store, (a + k, new))
            # Reverse the right part first; come back to the left part later.
            stack.append((a, a + k, slot, c))
            a, slot, c = a + k, new, c - 1
            cur = a
        # One step left: its state is in `slot` for the last time.
        if cur != a:
            yield make(Restore, (a, slot))
        yield make(Free, (slot,))
        free.append(slot)
        yield make(Reverse, (a,))
        cur = None


def revolve(n_steps: int, snapshots: int) -> Schedule:
    """The optimal offline (binomial) checkpointing schedule of states.

    Reverses ``n_steps`` steps holding at most ``snapshots`` states at once
    (the initial state counts) with the fewest primal steps among schedules
    that store states only, :func:`forward_steps_revolve` ``(n_steps,
    snapshots)``. With ``snapshots >= n_steps - 1`` every state but the last
    is stored (``2 n_steps - 1`` primal steps; :func:`store_all`, which keeps
    tapes instead, needs ``n_steps``). Generation is iterative and linear in
    ``n_steps``: well under a second for ``n_steps = 10**5``.

    Parameters
    ----------
    n_steps : int
        Number of time steps, ``>= 1``.
    snapshots : int
        Slots that may be held at once, the initial state included, ``>= 1``.

    Returns
    -------
    Schedule
        ``name == "revolve"``.

    Raises
    ------
    ScheduleArgumentError
        (a ``ValueError``) for a non-integer or an argument below 1.

    Examples
    --------
    >>> sched = revolve(1000, 10)
    >>> sched.name, sched.forward_steps, sched.max_snapshots
    ('revolve', 4636, 10)
    >>> for action in revolve(5, 1)[:4]:
    ...     print(action)
    store    state 0 -> slot 0
    advance  0 -> 4
    reverse  step 4
    restore  state 0 <- slot 0
    """
    n, s = _check_args(n_steps, snapshots)
    if n == 1:
        # the state before the last step is never stored
        return Schedule([Reverse(0)], n, s, "revolve")
    c = min(s, n - 1)       # never more than n - 1 states to keep; bounds the free list

    def actions():
        yield Store(0, 0)
        yield from reverse_segment(0, n, 0, c, list(range(c - 1, 0, -1)), 0)
    return Schedule(actions, n, s, "revolve")


def store_all(n_steps: int) -> Schedule:
    """Keep every step's tape on the first sweep, then reverse: no recomputation.

    Runs each step once with its intermediates kept (:class:`StoreTape`,
    ``n_steps - 1`` tapes held) and reverses the last step straight away:
    ``n_steps`` primal steps, the fewest possible. ``snapshots`` is set to
    ``max(1, n_steps - 1)``.

    Parameters
    ----------
    n_steps : int
        Number of time steps, ``>= 1``.

    Returns
    -------
    Schedule
        ``name == "store-all"``.

    Raises
    ------
    ScheduleArgumentError
        (a ``ValueError``) for a non-integer or ``n_steps < 1``.

    Examples
    --------
    >>> sched = store_all(3)
    >>> [str(a) for a in sched]  # doctest: +NORMALIZE_WHITESPACE
    ['tape     step 0 -> slot 0', 'tape     step 1 -> slot 1', 'reverse  step 2',
     'reverse  step 1 <- tape in slot 1', 'free     slot 1',
     'reverse  step 0 <- tape in slot 0', 'free     slot 0']
    >>> sched.forward_steps, sched.max_snapshots, sched.max_tapes
    (3, 2, 2)
    """
    n = _check_n(n_steps)

    def actions():
        for j in range(n - 1):
            yield StoreTape(j, j)
        yield Reverse(n - 1)
        for j in range(n - 2, -1, -1):
            yield ReverseTape(j, j)
            yield Free(j)
    return Schedule(actions, n, max(1, n - 1), "store-all")


# ----------------------------------------------------------------------------- replay

class Replay(NamedTuple):
    """What :func:`simulate` counted while replaying a schedule."""

    forward_steps: int
    reverse_steps: int
    max_snapshots: int


def simulate(schedule: Schedule) -> Replay:
    """Replay a schedule on an abstract machine; raise at the first invalid action.

    The machine holds the index of the current state (``0`` at the start,
    none after a :class:`Reverse` or :class:`ReverseTape`), a dict ``slot ->
    content`` (a state or a step's tape) and the set of reversed steps. The
    rules, for ``N = schedule.n_steps``:

    * ``Advance(n0, n1)``: the current state is ``n0`` and
      ``n0 < n1 <= N``;
    * ``Store(n, slot)``: the current state is ``n``; ``slot`` is empty and in
      ``range(schedule.snapshots)``;
    * ``Restore(n, slot)``: ``slot`` holds state ``n``;
    * ``Reverse(n)``: the current state is ``n`` and steps ``n+1 .. N-1``
      are reversed, no others (so steps go ``N-1, ..., 0``);
    * ``StoreTape(n, slot)``: the current state is ``n < N``, step ``n`` is
      not reversed yet; ``slot`` is empty and in range; the current state
      becomes ``n + 1``;
    * ``ReverseTape(n, slot)``: ``slot`` holds the tape of step ``n``, and
      ``n`` is the next step to reverse;
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
    slots: dict[int, tuple[str, int]] = {}   # slot -> ("state" | "tape", index)
    expected = n_steps - 1      # the next step to reverse; those above it are reversed
    forward = peak = 0

    def fail(i, action, why):
        raise InvalidSchedule(f"action {i} ({action}): {why}")

    def describe(content):
        what, k = content
        return f"state {k}" if what == "state" else f"the tape of step {k}"

    def bad_fill(i, a):
        if not 0 <= a.slot < budget:
            fail(i, a, f"slot {a.slot} is outside range({budget})")
        fail(i, a, f"slot {a.slot} still holds {describe(slots[a.slot])}; Free it first")

    def bad_reverse(i, a):
        if a.n > expected:
            fail(i, a, f"step {a.n} is already reversed")
        fail(i, a, f"the next step to reverse is {expected}")

    # The checks are inline and the messages built only on failure: the
    # test-suite simulates thousands of schedules.
    for i, a in enumerate(schedule):
        kind = type(a)
        if kind is Advance:
            if cur != a.n0:
                fail(i, a, f"the current state is {cur}, not {a.n0}")
            if not a.n0 < a.n1 <= n_steps:
                fail(i, a, f"needs n0 < n1 <= n_steps = {n_steps}")
            forward += a.n1 - a.n0
            cur = a.n1
        elif kind is Restore:
            if slots.get(a.slot) != ("state", a.n):
                if a.slot not in slots:
                    fail(i, a, f"slot {a.slot} is empty")
                fail(i, a, f"slot {a.slot} holds {describe(slots[a.slot])}, not state {a.n}")
            cur = a.n
        elif kind is Reverse:
            if a.n != expected:
                bad_reverse(i, a)
            if cur != a.n:
                fail(i, a, f"the current state is {cur}, not {a.n}")
            expected -= 1
            forward += 1
            cur = None  # the taped step consumed the state
        elif kind is Store or kind is StoreTape:
            # Slots are numbered below the budget and a filled one cannot be
            # stored into, so at most `snapshots` are ever filled at once.
            if cur != a.n:
                fail(i, a, f"the current state is {cur}, not {a.n}")
            if a.slot in slots or not 0 <= a.slot < budget:
                bad_fill(i, a)
            if kind is Store:
                slots[a.slot] = ("state", a.n)
            else:
                if not a.n < n_steps:
                    fail(i, a, f"there is no step {a.n}: n_steps = {n_steps}")
                if a.n > expected:
                    fail(i, a, f"step {a.n} is already reversed")
                slots[a.slot] = ("tape", a.n)
                forward += 1
                cur = a.n + 1
            if len(slots) > peak:
                peak = len(slots)
        elif kind is Free:
            if a.slot not in slots:
                fail(i, a, f"slot {a.slot} is already empty")
            del slots[a.slot]
        elif kind is ReverseTape:
            if slots.get(a.slot) != ("tape", a.n):
                held = describe(slots[a.slot]) if a.slot in slots else "nothing"
                fail(i, a, f"slot {a.slot} holds {held}, not the tape of step {a.n}")
            if a.n != expected:
                bad_reverse(i, a)
            expected -= 1
            cur = None
        else:
            fail(i, a, f"unknown action type {kind.__name__}")
    reversed_count = n_steps - 1 - expected
    if reversed_count != n_steps:
        raise InvalidSchedule(f"the schedule ends with {n_steps - reversed_count} of {n_steps} "
                              f"steps not reversed (next: step {expected})")
    if slots:
        left = {k: describe(v) for k, v in slots.items()}
        raise InvalidSchedule(f"the schedule ends with slots still filled: {left}")
    return Replay(forward, reversed_count, peak)
