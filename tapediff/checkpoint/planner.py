"""Choose a checkpointing schedule for a slot count or a byte budget.

With a slot count (``snapshots=s``) the choice is by rule: every tape kept
(:func:`~.schedule.store_all`) when ``s >= n_steps - 1``, revolve otherwise,
or the kind asked for.

With byte budgets (``memory="200MB"``, optionally ``disk="5GB"``) the real
sizes decide. ``memory`` first pays for the *workspace* of one taped step
and its adjoint (measured from the recorded step:
:attr:`~.steptape.StepTape.workspace_bytes`); what is left holds snapshots.
Each kind that fits is costed in primal steps:

* ``"store-all"``: ``n - 1`` tapes; ``n`` primal steps;
* ``"revolve"``: ``floor(left / state)`` states;
* ``"mixed"``: ``floor(left / max(state, tape))`` slots holding a state or a
  tape (:mod:`.mixed`; skipped when its table would take long);
* ``"two-level"`` (with ``disk``): revolve with ``floor(disk / state)``
  more slots on disk (:mod:`.multistage`).

``"auto"`` takes the fewest primal steps (on a tie, the first in that
order: no disk when memory does as well). :class:`Choice` reports every
candidate.

Examples
--------
>>> choice = choose_for_budget(1000, state_bytes=8_000, tape_bytes=24_000,
...                            workspace_bytes=48_016, memory="500kB")
>>> choice.schedule.name, choice.schedule.snapshots, choice.schedule.forward_steps
('mixed', 18, 2884)
>>> choice.considered["revolve"]                    # 56 states
2942
>>> choice.considered["store-all"]
'does not fit: 999 tapes need 24.0 MB'
"""
from __future__ import annotations

import re
from typing import NamedTuple

from .mixed import forward_steps_mixed, mixed, mixed_feasible
from .multistage import two_level
from .schedule import (Schedule, ScheduleArgumentError, _check_args, _check_n,
                       forward_steps_revolve, revolve, store_all)

__all__ = ["KINDS", "Choice", "parse_bytes", "format_bytes", "choose_for_count",
           "choose_for_budget"]

KINDS = ("auto", "store-all", "revolve", "mixed", "two-level", "online")

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20,
          "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$")


class Choice(NamedTuple):
    """A chosen schedule and what was weighed.

    ``considered`` maps each kind to its primal steps (an int) or why it was
    not possible (a str); ``memory_slots`` and ``disk_slots`` are the slot
    counts the budgets allow (``None`` in count mode).
    """

    schedule: Schedule
    considered: dict
    memory_slots: int | None = None
    disk_slots: int | None = None


def parse_bytes(value, name: str) -> int:
    """A byte count from ``value``: an int, or a string such as ``"200MB"`` or ``"1.5 GiB"``.

    Units: B, kB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB
    (powers of 1024), case-insensitive.

    Raises
    ------
    ScheduleArgumentError
        (a ``ValueError``) naming ``name`` for anything else or a negative count.

    Examples
    --------
    >>> parse_bytes("200MB", "memory"), parse_bytes("1.5 KiB", "memory"), parse_bytes(10, "disk")
    (200000000, 1536, 10)
    """
    if isinstance(value, bool):
        value = repr(value)
    if isinstance(value, int) or (hasattr(value, "__index__") and not isinstance(value, str)):
        count = int(value)
    else:
        m = _SIZE.match(value) if isinstance(value, str) else None
        unit = _UNITS.get(m.group(2).lower()) if m else None
        if unit is None:
            raise ScheduleArgumentError(
                f"{name} must be a byte count such as 200_000_000 or '200MB', got "
                f"{value!r}; units are B, kB, MB, GB, TB, KiB, MiB, GiB, TiB")
        count = int(float(m.group(1)) * unit)
    if count < 0:
        raise ScheduleArgumentError(f"{name} must be >= 0 bytes, got {count}; pass a size "
                                    "such as '200MB'")
    return count


def format_bytes(n: int) -> str:
    """``n`` bytes in words (decimal units).

    Examples
    --------
    >>> format_bytes(512), format_bytes(24_000_000)
    ('512 B', '24.0 MB')
    """
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _check_kind(kind, allowed):
    if kind not in allowed:
        raise ScheduleArgumentError(f"schedule must be one of {', '.join(map(repr, allowed))}, "
                                    f"got {kind!r}; pass schedule='auto' to let tapediff choose")


def choose_for_count(n_steps: int, snapshots: int, kind: str = "auto") -> Choice:
    """The schedule for ``snapshots`` slots: store-all if ``snapshots >= n_steps - 1``, else revolve.

    Parameters
    ----------
    n_steps, snapshots : int
        ``>= 1``.
    kind : {"auto", "revolve", "mixed", "store-all"}
        ``"mixed"`` lets each slot hold a state or a tape (slots of equal
        size); ``"store-all"`` needs ``snapshots >= n_steps - 1``.

    Returns
    -------
    Choice

    Examples
    --------
    >>> choose_for_count(10, 3).schedule.name, choose_for_count(10, 9).schedule.name
    ('revolve', 'store-all')
    >>> choose_for_count(1000, 10, "mixed").schedule.forward_steps
    3921
    """
    n, s = _check_args(n_steps, snapshots)
    _check_kind(kind, ("auto", "revolve", "mixed", "store-all"))
    if kind == "store-all" and s < n - 1:
        raise ScheduleArgumentError(
            f"schedule='store-all' keeps n_steps - 1 = {n - 1} tapes, but snapshots={s}; "
            f"pass snapshots >= {n - 1} or another schedule")
    if kind == "store-all" or (kind == "auto" and s >= n - 1):
        sched = store_all(n)
    elif kind == "mixed":
        sched = mixed(n, s)
    else:
        sched = revolve(n, s)
    return Choice(sched, {sched.name: sched.forward_steps})


def choose_for_budget(n_steps: int, state_bytes: int, tape_bytes: int, workspace_bytes: int,
                      memory, disk=None, kind: str = "auto") -> Choice:
    """The schedule with the fewest primal steps that fits ``memory`` (and ``disk``).

    Parameters
    ----------
    n_steps : int
        ``>= 1``.
    state_bytes, tape_bytes : int
        One state and one step's tape (its residuals).
    workspace_bytes : int
        What a taped step and its adjoint need besides the snapshots.
    memory : int or str
        Bytes for snapshots and the workspace.
    disk : int or str, optional
        Bytes for states on disk.
    kind : {"auto", "store-all", "revolve", "mixed", "two-level"}

    Returns
    -------
    Choice

    Raises
    ------
    ScheduleArgumentError
        (a ``ValueError``) naming ``memory`` (or ``disk``) when no schedule of
        the kind asked fits, with the size that would.

    Examples
    --------
    >>> c = choose_for_budget(100, 1000, 1000, 4000, memory="13kB")
    >>> c.schedule.name, c.memory_slots, c.considered["revolve"], c.considered["mixed"]
    ('mixed', 9, 334, 250)
    >>> choose_for_budget(100, 1000, 1000, 4000, memory="4.5kB")   # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    tapediff.checkpoint.schedule.ScheduleArgumentError: memory=4.5kB (4.5 kB) holds no snapshot: ...
    """
    n = _check_n(n_steps)
    _check_kind(kind, ("auto", "store-all", "revolve", "mixed", "two-level"))
    mem = parse_bytes(memory, "memory")
    dsk = None if disk is None else parse_bytes(disk, "disk")
    state = max(1, state_bytes)
    work = workspace_bytes
    left = mem - work
    mem_slots = max(0, left) // state
    disk_slots = 0 if dsk is None else dsk // state
    considered, build = {}, {}

    tapes = (n - 1) * tape_bytes
    if left >= tapes:
        considered["store-all"], build["store-all"] = n, lambda: store_all(n)
    else:
        considered["store-all"] = (f"does not fit: {n - 1} tapes need "
                                   f"{format_bytes(tapes)}")
    if mem_slots >= 1:
        considered["revolve"] = forward_steps_revolve(n, mem_slots)
        build["revolve"] = lambda: revolve(n, mem_slots)
    else:
        considered["revolve"] = "does not fit: no room for one state"
    units = max(0, left) // max(state, tape_bytes)
    if units < 1:
        considered["mixed"] = "does not fit: no room for one slot of max(state, tape)"
    elif n == 1 or mixed_feasible(n, min(units, n - 1)):
        considered["mixed"] = forward_steps_mixed(n, units)
        build["mixed"] = lambda: mixed(n, units)
    else:
        considered["mixed"] = "not evaluated: its cost table would take too long to build"
    if dsk is None:
        considered["two-level"] = "no disk budget given"
    elif disk_slots < 1:
        considered["two-level"] = f"does not fit: disk={disk} holds no state"
    elif left < 0:
        considered["two-level"] = "does not fit: memory holds no workspace"
    else:
        considered["two-level"] = forward_steps_revolve(n, mem_slots + disk_slots)
        build["two-level"] = lambda: two_level(n, mem_slots, disk_slots)

    fits = [k for k in ("store-all", "revolve", "mixed", "two-level")
            if k in build and (kind == "auto" or k == kind)]
    if not fits:
        _too_small(kind, memory, mem, dsk, n, state_bytes, tape_bytes, work, considered)
    best = min(fits, key=lambda k: considered[k])     # min keeps the first of equals
    return Choice(build[best](), considered, mem_slots, disk_slots if dsk is not None else None)


def _too_small(kind, memory, mem, dsk, n, state_bytes, tape_bytes, work, considered):
    if kind != "auto":
        raise ScheduleArgumentError(
            f"schedule={kind!r} does not fit in memory={memory} ({format_bytes(mem)}"
            + (f", disk {format_bytes(dsk)}" if dsk is not None else "")
            + f"): {considered[kind]}; pass a larger budget or schedule='auto'")
    need = work + state_bytes
    raise ScheduleArgumentError(
        f"memory={memory} ({format_bytes(mem)}) holds no snapshot: one taped step and its "
        f"adjoint need {format_bytes(work)} of workspace (its tape is "
        f"{format_bytes(tape_bytes)}, a state {format_bytes(state_bytes)}) and one snapshot "
        f"{format_bytes(state_bytes)} more; pass memory >= {need} bytes "
        f"(about {format_bytes(need)}), add disk=..., or pass snapshots=k instead")
