"""Checkpointing for the adjoints of time-steppers.

:mod:`tapediff.checkpoint.schedule` plans which states to keep and which
steps to recompute (pure bookkeeping: no tapes, no arrays); see
:func:`revolve`.
"""
from .executor import Checkpointed, checkpointed  # noqa: F401
from .schedule import (Action, Advance, Free, InvalidSchedule, Replay, Restore, Reverse,
                       Schedule, ScheduleArgumentError, Store, forward_steps_revolve,
                       recompute_steps_revolve, revolve, simulate, store_all)

__all__ = ["Action", "Advance", "Store", "Restore", "Reverse", "Free", "Schedule",
           "revolve", "store_all", "forward_steps_revolve", "recompute_steps_revolve",
           "simulate", "Replay", "InvalidSchedule", "ScheduleArgumentError"]
