"""Two-level checkpointing: which of revolve's snapshots go to disk.

With ``m`` snapshots' worth of memory and ``d`` of disk, the binomial
schedule for ``m + d`` slots needs the fewest primal steps; what remains is
to place its snapshots so that the slow level is touched least. Following
Stumm & Walther (MultiStage approaches for optimal offline checkpointing,
SIAM J. Sci. Comput. 31(3), 2009), the slots of a binomial schedule are used
very unevenly: the slot of the initial state is written once and read about
``r`` times, while the deepest slots are rewritten all the time. Counting
each slot's writes and reads (:func:`slot_accesses`) and putting the ``d``
least used on disk keeps the recomputation minimal and makes disk accesses
few. (Revolve hands out slots like a stack, so a slot number is a depth in
its recursion and the counts are per depth.)

Examples
--------
>>> sched = two_level(1000, memory_snapshots=6, disk_snapshots=4)
>>> sched.name, sched.forward_steps, sorted(sched.disk_slots)
('two-level', 4636, [0, 1, 2, 3])
>>> acc = slot_accesses(sched)
>>> acc[0], acc[9]
((1, 4), (220, 285))
"""
from __future__ import annotations

from .schedule import Restore, Schedule, ScheduleArgumentError, Store, _check_n, revolve

__all__ = ["two_level", "slot_accesses"]


def slot_accesses(schedule: Schedule) -> dict[int, tuple[int, int]]:
    """Writes (``Store``) and reads (``Restore``) of each slot of a schedule.

    Examples
    --------
    >>> slot_accesses(revolve(10, 2))
    {0: (1, 3), 1: (3, 6)}
    """
    counts: dict[int, list[int]] = {}
    for a in schedule:
        kind = type(a)
        if kind is Store:
            counts.setdefault(a.slot, [0, 0])[0] += 1
        elif kind is Restore:
            counts.setdefault(a.slot, [0, 0])[1] += 1
    return {slot: (w, r) for slot, (w, r) in sorted(counts.items())}


def two_level(n_steps: int, memory_snapshots: int, disk_snapshots: int) -> Schedule:
    """Revolve with ``memory_snapshots + disk_snapshots`` slots, the least used on disk.

    Parameters
    ----------
    n_steps : int
        Number of time steps, ``>= 1``.
    memory_snapshots, disk_snapshots : int
        States that fit in memory and on disk, ``>= 0`` each, at least one
        in all.

    Returns
    -------
    Schedule
        ``name == "two-level"``; ``disk_slots`` lists the slots on disk
        (at most ``disk_snapshots`` of the slots the schedule uses).

    Raises
    ------
    ScheduleArgumentError
        (a ``ValueError``) for a negative or non-integer count, or none at all.

    Examples
    --------
    >>> sched = two_level(10, memory_snapshots=1, disk_snapshots=1)
    >>> sched.forward_steps, sorted(sched.disk_slots)
    (30, [0])
    """
    n = _check_n(n_steps)
    counts = []
    for name, value in (("memory_snapshots", memory_snapshots),
                        ("disk_snapshots", disk_snapshots)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ScheduleArgumentError(f"{name} must be an integer >= 0, got {value!r}; "
                                        "pass how many states fit on that level")
        counts.append(value)
    m, d = counts
    if m + d < 1:
        raise ScheduleArgumentError("memory_snapshots + disk_snapshots must be >= 1, got 0; "
                                    "the initial state needs a slot")
    base = revolve(n, m + d)
    acc = slot_accesses(base)
    # least used first; among equals the lower slot (held longer, touched as rarely)
    by_use = sorted(acc, key=lambda slot: (sum(acc[slot]), slot))
    return Schedule(base.__iter__, n, m + d, "two-level", disk_slots=by_use[:d])
