"""Checkpointing for the adjoints of time-steppers.

One responsibility per module:

* :mod:`.schedule` -- the actions, :class:`Schedule`, revolve and store-all,
  the validity simulator (pure planning: no tapes, no arrays);
* :mod:`.mixed` -- schedules whose slots hold states or steps' tapes;
* :mod:`.online` -- placement for an unknown number of steps;
* :mod:`.multistage` -- which snapshots go to disk (two-level);
* :mod:`.planner` -- choosing a schedule for a slot count or a byte budget;
* :mod:`.steptape` -- a step recorded once, split into a taped forward and
  its adjoint;
* :mod:`.storage` -- snapshot slots in memory and on disk;
* :mod:`.executor` -- :func:`checkpointed`, which runs a schedule;
* :mod:`.plot` -- drawing a schedule (matplotlib).
"""
from .executor import Checkpointed, checkpointed
from .mixed import forward_steps_mixed, mixed
from .multistage import two_level
from .online import online
from .schedule import (Action, Advance, Free, InvalidSchedule, Replay, Restore, Reverse,
                       ReverseTape, Schedule, ScheduleArgumentError, Store, StoreTape,
                       forward_steps_revolve, recompute_steps_revolve, revolve, simulate,
                       store_all)

__all__ = ["checkpointed", "Checkpointed", "Action", "Advance", "Store", "Restore", "Reverse",
           "StoreTape", "ReverseTape",
           "Free", "Schedule", "revolve", "store_all", "mixed", "online", "two_level",
           "forward_steps_revolve", "forward_steps_mixed", "recompute_steps_revolve",
           "simulate", "Replay", "InvalidSchedule", "ScheduleArgumentError"]
