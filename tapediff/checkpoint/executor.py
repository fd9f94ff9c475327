"""Checkpointed adjoints of time-steppers: carry out a schedule on recorded step tapes.

:func:`checkpointed` turns a plain-NumPy time step ``step(u, p[, t])`` into
an object whose :meth:`Checkpointed.value_and_grad` computes

    value = loss(u_N) + sum_{n=0}^{N-1} running_cost(u_n, p[, t_n])

and its gradient with respect to the initial state ``u0`` and the parameters
``p``, holding a few snapshots (states, or steps' tapes) instead of the
intermediates of all ``N`` steps. The schedule is

* chosen by slot count (``snapshots=s``): every tape kept when ``s >= N -
  1`` (``N`` primal steps, no recomputation), else revolve (``N + t(N, s)``);
  ``schedule="mixed"`` lets slots hold tapes too;
* chosen by byte budget (``memory="200MB"``, optionally ``disk="5GB"``):
  the kind with the fewest primal steps that fits, given the real state and
  tape sizes (:mod:`.planner`); disk snapshots are ``.npy`` files in a
  private temporary directory removed at the end, also on error;
* online (``until=lambda u, i: ...`` instead of ``n_steps``): states are kept
  as the run goes (:mod:`.online`), then reversed offline.

The step is recorded once (:mod:`.steptape`): advances replay it, a taped
step replays its forward half keeping the residuals, and an adjoint step
replays the reverse half on them, so ``stats["forward_steps"]`` counts every
primal step evaluated and matches the schedule's count. The step index is
passed as a 0-d float64 array ``np.float64(n)``, a replayed input (a Python
``int`` would be static and re-record the step at every time step). A
data-dependent branch in the step re-records the step tape for the new path,
as ``td.record`` does; the results stay exact.

Examples
--------
>>> import numpy as np, tapediff as td
>>> def step(u, p):
...     return u + p["dt"] * np.sin(u)
>>> cp = td.checkpointed(step, n_steps=10, snapshots=3, loss=lambda u: np.sum(u ** 2))
>>> v, (du0, dp) = cp.value_and_grad(np.linspace(0.0, 1.0, 4), {"dt": np.float64(0.1)})
>>> cp.stats["schedule"], cp.stats["forward_steps"], cp.stats["max_snapshots"]
('revolve', 25, 3)
"""
from __future__ import annotations

import numpy as np

from .. import pytree
from ..api import record
from .online import OnlinePlanner, online
from .planner import KINDS, choose_for_budget, choose_for_count, format_bytes, parse_bytes
from .schedule import (Advance, Free, Restore, Reverse, ReverseTape, ScheduleArgumentError,
                       Store, StoreTape, _check_args, _check_n, forward_steps_revolve)
from .steptape import StepTape
from .storage import SnapshotStore

__all__ = ["Checkpointed", "checkpointed"]


def _progress_bar(progress, total, name):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("progress=True needs tqdm, which is not installed: pip install tqdm "
                          "(or pass progress=False)") from None
    return tqdm(total=total, desc=f"checkpointed {name}", unit="step")


class _Run:
    """One execution: the current state, the snapshots, the cotangents and the counts."""

    def __init__(self, owner, u0, store, bar, n_steps):
        self.tapes, self.store, self.bar = owner._tapes, store, bar
        self.loss = owner.loss
        self._loss_tape = owner._loss_tape
        self.owner = owner
        self.n_steps = n_steps          # None while an online run goes on
        self.current = u0
        self.value = np.float64(0.0)
        self.du = None                  # cotangent of the state after the step reversed next
        self.dp = self.tapes.zero_dp()
        self.forward = self.reverse = 0
        self.do = {Advance: self.advance, Store: self.store_current, Restore: self.restore,
                   Reverse: self.reverse_now, StoreTape: self.store_tape,
                   ReverseTape: self.reverse_tape, Free: self.free}

    def run(self, actions):
        do = self.do
        for a in actions:
            do[type(a)](a)

    def _tick(self, k):
        if self.bar is not None:
            self.bar.update(k)

    # ------------------------------------------------------------- primal
    def advance(self, a):
        u = self.tapes.advance_run(self.current, a.n0, a.n1)
        self._tick(a.n1 - a.n0)
        self.forward += a.n1 - a.n0
        self.current = u
        if a.n1 == self.n_steps:
            self.final(u)

    def _taped(self, n):
        u_next, tape = self.tapes.taped(self.current, n)
        self.forward += 1
        self._tick(1)
        if n + 1 == self.n_steps:
            self.final(u_next)
        return u_next, tape

    def store_tape(self, a):
        self.current, tape = self._taped(a.n)
        self.store.put_tape(a.slot, tape, tape.nbytes)

    def reverse_now(self, a):
        _, tape = self._taped(a.n)
        self._adjoint(tape, a.n)

    def final(self, u_n):
        """The loss and its state cotangent at the final state."""
        if self.loss is None:
            self.du = self.tapes.state_cotangent(None)
            return
        u_n = self.tapes.to_host(u_n)        # the loss runs once, on the host
        if self._loss_tape is None:
            self._loss_tape = self.owner._loss_tape = record(self.loss, u_n)
        v, g = self._loss_tape.value_and_grad(u_n)
        self.value = self.value + np.float64(v)
        self.du = self.tapes.state_cotangent(g)

    # ------------------------------------------------------------- slots
    def store_current(self, a):
        self.store_state(a.slot, self.current)

    def store_state(self, slot, state):
        # a reference, not a copy: states are never written in place
        self.store.put_state(slot, state, self.tapes.state_bytes)

    def restore(self, a):
        self.current = self.store.get(a.slot)

    def free(self, a):
        self.store.free(a.slot)

    # ------------------------------------------------------------- adjoint
    def reverse_tape(self, a):
        self._adjoint(self.store.get(a.slot), a.n)

    def _adjoint(self, tape, n):
        # a step may be taped more than once (an online run tapes every step
        # on its way), but it is reversed exactly once: its cost counts here
        if tape.cost is not None:
            self.value = self.value + np.float64(tape.cost)
        self.du, self.dp = self.tapes.reverse(tape, n, self.du, self.dp)
        self.reverse += 1
        self._tick(1)
        self.current = None


class Checkpointed:
    """A time-stepper whose adjoint runs under a checkpointing schedule.

    Made by :func:`checkpointed` (see there for the arguments). Attributes:

    * ``schedule``: the :class:`~tapediff.checkpoint.Schedule` followed --
      known at construction for a slot count, chosen by the first
      :meth:`value_and_grad` for a byte budget, and the actions actually run
      for an online run (``None`` until then); ``schedule.plot(path)`` draws
      it;
    * ``n_steps`` (``None`` for an online run until it ran), ``snapshots``,
      ``memory``, ``disk`` (bytes, or ``None``);
    * ``stats``: a dict filled by the last :meth:`value_and_grad` --
      ``schedule`` (its kind), ``n_steps``, ``snapshots``, ``forward_steps``
      (primal steps evaluated, first sweep included), ``reverse_steps``,
      ``max_snapshots``, ``max_states``, ``max_tapes``, ``snapshot_bytes``
      (most bytes held in slots at once), ``state_bytes``, ``tape_bytes``,
      ``workspace_bytes``, ``levels`` (per storage level ``"memory"`` and
      ``"disk"``: ``max_snapshots``, ``max_bytes``, ``writes``, ``reads``),
      ``step_versions``, ``setup_evaluations`` (step evaluations spent
      recording tapes in this call), and ``considered`` (byte budgets: each
      kind's primal steps or why it did not fit) or
      ``offline_forward_steps`` (online: revolve's count for the ``n_steps``
      found).

    Examples
    --------
    >>> import numpy as np, tapediff as td
    >>> cp = td.checkpointed(lambda u, p: u * p, 5, 5, loss=lambda u: np.sum(u))
    >>> cp.schedule.name, cp.schedule.forward_steps       # every tape kept: 5 primal steps
    ('store-all', 5)
    >>> cp
    <checkpointed <lambda>: n_steps=5 snapshots=5 schedule=store-all>
    """

    def __init__(self, step, n_steps=None, snapshots=None, *, loss=None, running_cost=None,
                 until=None, memory=None, disk=None, schedule="auto", progress=False,
                 backend="auto"):
        # every argument is checked here, before any step runs
        if backend not in ("auto", "c", "interpreted", "cuda"):
            raise ValueError(f"backend={backend!r}: choose 'auto' (compiled C when a compiler "
                             "works), 'c', 'interpreted' or 'cuda' (CuPy arrays on a GPU)")
        device = None
        if backend == "cuda":
            from ..cuda_backend import CupyDevice
            device = CupyDevice()
        self._tapes = StepTape(step, running_cost, compiled=backend != "interpreted",
                               device=device)
        for name, f in (("loss", loss), ("until", until)):
            if f is not None and not callable(f):
                raise TypeError(f"{name} must be callable or None, got {type(f).__name__}")
        if loss is None and running_cost is None:
            raise ValueError("give loss (a function of the final state) and/or running_cost "
                             "(a function of (u, p[, t])): there is nothing to differentiate")
        if (n_steps is None) == (until is None):
            raise ValueError("give n_steps (a known number of steps) or until=f(u, i) (a stop "
                             "condition for an unknown number), exactly one of them")
        if (snapshots is None) == (memory is None):
            raise ValueError("give snapshots (how many states may be held) or memory (a byte "
                             "budget such as '200MB'), exactly one of them")
        if schedule not in KINDS:
            raise ScheduleArgumentError(
                f"schedule must be one of {', '.join(map(repr, KINDS))}, got {schedule!r}; "
                "pass schedule='auto' to let tapediff choose")
        if disk is not None and memory is None:
            raise ValueError("disk needs memory: pass memory='...' (the budget in RAM) with "
                             "disk='...'")
        self.loss, self.running_cost, self.until = loss, running_cost, until
        self.kind, self.progress = schedule, progress
        self.memory = None if memory is None else parse_bytes(memory, "memory")
        self.disk = None if disk is None else parse_bytes(disk, "disk")
        self._memory_arg, self._disk_arg = memory, disk
        if until is not None:
            if schedule not in ("auto", "online"):
                raise ScheduleArgumentError(f"schedule={schedule!r} needs a known n_steps; an "
                                            "until= run is online: pass schedule='auto'")
            if disk is not None:
                raise ValueError("disk= is not supported with until= (online runs keep their "
                                 "snapshots in memory); drop disk or pass n_steps")
            self.n_steps = None
            self.snapshots = None if snapshots is None else _check_args(1, snapshots)[1]
        else:
            if schedule == "online":
                raise ScheduleArgumentError("schedule='online' needs until=f(u, i) instead of "
                                            "n_steps")
            if schedule == "two-level" and disk is None:
                raise ScheduleArgumentError("schedule='two-level' needs memory= and disk= "
                                            "budgets")
            self.n_steps = _check_n(n_steps)
            self.snapshots = None
            if snapshots is not None:
                self.snapshots = _check_args(self.n_steps, snapshots)[1]
        self._choice = None
        if self.snapshots is not None and self.n_steps is not None:
            self._choice = choose_for_count(self.n_steps, self.snapshots, schedule)
        self.schedule = None if self._choice is None else self._choice.schedule
        if progress:
            _progress_bar(True, 0, self._tapes.name).close()   # fail now if tqdm is missing
        self._loss_tape = None
        self.stats = {}

    # ------------------------------------------------------------------ budgets
    def _check_budget_floor(self, u0, p):
        """Before recording: a budget below what the state alone needs cannot work."""
        if self.memory is None:
            return
        from .steptape import _leaf_info, _nbytes
        state = _nbytes(_leaf_info(u0, "u")[1])
        floor = 5 * state
        if self.memory < floor:
            raise ScheduleArgumentError(
                f"memory={self._memory_arg} ({format_bytes(self.memory)}) holds no snapshot: "
                f"the state takes {format_bytes(state)} and a step's workspace at least four "
                f"states; pass memory >= {floor} bytes (about {format_bytes(floor)}) plus the "
                "size of one step's intermediates, or pass snapshots=k instead")

    def _online_slots(self):
        if self.snapshots is not None:
            return self.snapshots
        st = self._tapes
        # the workspace, plus the previous state an online run holds one step longer
        work = st.workspace_bytes + st.state_bytes
        slots = (self.memory - work) // max(1, st.state_bytes)
        if slots < 1:
            need = work + st.state_bytes
            raise ScheduleArgumentError(
                f"memory={self._memory_arg} ({format_bytes(self.memory)}) holds no snapshot: "
                f"an online step needs {format_bytes(work)} of workspace (a taped step and "
                f"its adjoint, and the state before it; a state is "
                f"{format_bytes(st.state_bytes)}) and a snapshot one state more; pass memory "
                f">= {need} bytes (about {format_bytes(need)}) or pass snapshots=k instead")
        return slots

    # ------------------------------------------------------------------ the run
    def value_and_grad(self, u0, p):
        """Return ``(value, (du0, dp))`` following the checkpointing schedule.

        ``du0`` has the structure of ``u0``, ``dp`` that of ``p`` (dtypes as
        the inputs'; ``dp`` is accumulated over the steps in the parameters'
        dtype). Fills :attr:`stats`.

        Raises
        ------
        ShapeMismatch
            When the step changes the state's structure, a leaf's shape or
            dtype (found when recording the step, before any time step).
        ScheduleArgumentError
            (a ``ValueError``) when a byte budget holds no snapshot.

        Examples
        --------
        >>> import numpy as np, tapediff as td
        >>> cp = td.checkpointed(lambda u, p: u * p, 4, 2, loss=lambda u: np.sum(u))
        >>> v, (du0, dp) = cp.value_and_grad(np.ones(2), np.float64(2.0))
        >>> float(v), du0, float(dp)                       # sum(2^4 u0)
        (32.0, array([16., 16.]), 64.0)
        >>> cp.stats["forward_steps"], cp.stats["reverse_steps"]
        (8, 4)
        """
        self._check_budget_floor(u0, p)
        st = self._tapes
        setup_before = st.setup_evaluations
        if st.prepare(u0, p):
            self._loss_tape = None      # new shapes: recorded on the first final state
        online = self.until is not None
        choice = self._choice
        if not online and self.memory is not None:
            choice = choose_for_budget(self.n_steps, st.state_bytes, st.tape_bytes,
                                       st.workspace_bytes, self._memory_arg, self._disk_arg,
                                       self.kind)
            self.schedule = choice.schedule
        slots = self._online_slots() if online else None
        sched = None if online else choice.schedule
        total = None if online else sched.forward_steps + sched.reverse_steps
        store = SnapshotStore(() if online else sched.disk_slots,
                              *(() if st.device is None else
                                (st.device.to_host, st.xp.asarray)))
        bar = _progress_bar(self.progress, total, st.name)
        run = _Run(self, u0, store, bar, None if online else self.n_steps)
        try:
            if online:
                sched = self._run_online(run, slots)
                self.schedule = sched
            else:
                run.run(sched)       # generated as it runs: O(snapshots) bookkeeping
        finally:
            store.close()
            if bar is not None:
                bar.close()
        is_array = (lambda x: isinstance(x, np.ndarray)) if st.device is None else (
            lambda x: isinstance(x, np.ndarray) or st.device.is_array(x))
        dp = pytree.unflatten(st.p_td, [st.xp.asarray(g, dtype=dt) if is_array(leaf)
                                        else dt.type(float(g)) for g, leaf, (_, _, dt)
                                        in zip(run.dp, pytree.flatten(p)[0], st.p_info)])
        self.stats = {
            "schedule": sched.name, "n_steps": sched.n_steps,
            # an online schedule's extra slot is the tape workspace, not a snapshot
            "snapshots": slots if online else sched.snapshots,
            "forward_steps": run.forward, "reverse_steps": run.reverse,
            "max_snapshots": store.peak_snapshots, "max_states": sched.max_states,
            "max_tapes": sched.max_tapes, "snapshot_bytes": store.peak_bytes,
            "state_bytes": st.state_bytes, "tape_bytes": st.tape_bytes,
            "workspace_bytes": st.workspace_bytes,
            "levels": store.level_stats(), "step_versions": st.n_versions,
            "setup_evaluations": st.setup_evaluations - setup_before}
        if online:
            self.stats["offline_forward_steps"] = forward_steps_revolve(sched.n_steps, slots)
        elif self.memory is not None:
            self.stats["considered"] = choice.considered
        return np.float64(run.value), (run.du, dp)

    def _run_online(self, run, slots):
        """Step until ``until`` holds, keeping states as :mod:`.online` decides; reverse."""
        plan = OnlinePlanner(slots)
        i = 0
        while True:
            previous = run.current
            run.store_tape(StoreTape(i, plan.workspace))
            if self.until(run.current, i + 1):
                break
            for a in plan.keep(i):
                if type(a) is Store:         # state i: the one before the step just run
                    run.store_state(a.slot, previous)
                else:
                    run.free(a)
            run.free(Free(plan.workspace))
            i += 1
        run.n_steps = i + 1
        run.final(run.current)
        run.run(plan.reversal(i + 1))
        # the same decisions for the n found, generated on demand (not recorded)
        return online(i + 1, slots)

    def __repr__(self):
        what = (f"n_steps={self.n_steps}" if self.n_steps is not None else "until=...")
        budget = (f"snapshots={self.snapshots}" if self.snapshots is not None
                  else f"memory={format_bytes(self.memory)}")
        kind = self.schedule.name if self.schedule is not None else self.kind
        return f"<checkpointed {self._tapes.name}: {what} {budget} schedule={kind}>"


def checkpointed(step, n_steps=None, snapshots=None, *, loss=None, running_cost=None,
                 until=None, memory=None, disk=None, schedule="auto", progress=False,
                 backend="auto"):
    """Checkpointed adjoint of a time-stepper written in plain NumPy.

    Parameters
    ----------
    step : callable
        ``step(u, p)`` or ``step(u, p, t)`` returning the next state (same
        structure, shapes and dtypes as ``u``). ``t`` is the step index as a
        0-d float64 array (``np.float64(n)``), so it is replayed, not baked in.
    n_steps : int, optional
        Number of steps ``N >= 1``. Give it or ``until``.
    snapshots : int, optional
        Slots held at once, the initial state included, ``>= 1``. Give it or
        ``memory``. With ``snapshots >= n_steps - 1`` every step's tape is
        kept (no recomputation: ``n_steps`` primal steps); otherwise states
        are kept by revolve.
    loss : callable, optional
        ``loss(u_N)``, a scalar.
    running_cost : callable, optional
        ``running_cost(u_n, p[, t_n])``, a scalar, summed over ``n = 0 .. N-1``.
    until : callable, optional
        ``until(u_i, i) -> bool``, called after each step ``i = 1, 2, ...``:
        the run stops after the first step for which it is true (an online
        run; see :mod:`tapediff.checkpoint.online`).
    memory : int or str, optional
        A byte budget (``"200MB"``, ``"1.5GiB"`` or an int) for snapshots and
        one step's workspace; the schedule that fits with the fewest primal
        steps is chosen from the real state and tape sizes
        (:mod:`tapediff.checkpoint.planner`).
    disk : int or str, optional
        With ``memory``: a byte budget for states on disk (two-level
        checkpointing; ``.npy`` files in a private temporary directory,
        removed at the end even if a step raises).
    schedule : {"auto", "revolve", "mixed", "store-all", "two-level", "online"}
        Force a kind; ``"auto"`` chooses as described above.
    progress : bool
        Show a tqdm progress bar (needs ``pip install tqdm``).
    backend : {"auto", "c", "interpreted", "cuda"}
        How the step's tapes replay: compiled to C (one native call per
        plain step, per taped step and per step adjoint; the default when a
        compiler works, with one warning and the interpreter otherwise),
        with the NumPy interpreter, or as CUDA kernels on CuPy arrays
        (``u0`` and array leaves of ``p`` may be CuPy arrays; states,
        snapshots and residuals stay on the GPU, a ``disk=`` budget spills
        through host memory, the loss runs once on the host; results are
        CuPy arrays; not yet run on a GPU, see docs/cuda-backend.md).

    Returns
    -------
    Checkpointed
        With ``value_and_grad(u0, p) -> (value, (du0, dp))``, ``stats`` and
        ``schedule``.

    Raises
    ------
    ValueError
        For ``n_steps`` or ``snapshots`` below 1 or not integers, an
        unreadable budget (the message names the argument and the fix),
        conflicting arguments, or neither ``loss`` nor ``running_cost``.
    TypeError
        For a step (or ``loss``, ``running_cost``, ``until``) that is not
        callable or has the wrong signature.
    ImportError
        For ``progress=True`` without tqdm.

    Examples
    --------
    >>> import numpy as np, tapediff as td
    >>> def heat(u, p):
    ...     v = u.copy()
    ...     v[1:-1] = u[1:-1] + p * (u[2:] - 2 * u[1:-1] + u[:-2])
    ...     return v
    >>> u0, p = np.sin(np.linspace(0, 3, 50)), np.float64(0.2)
    >>> cp = td.checkpointed(heat, 1000, memory="12kB", loss=lambda u: np.sum(u ** 2))
    >>> v, (du0, dp) = cp.value_and_grad(u0, p)
    >>> cp.stats["schedule"], cp.stats["snapshots"], cp.stats["forward_steps"]
    ('mixed', 20, 2823)
    >>> cp.stats["considered"]["revolve"], cp.stats["state_bytes"], cp.stats["tape_bytes"]
    (3747, 400, 384)
    >>> online = td.checkpointed(heat, until=lambda u, i: i == 1000, snapshots=19,
    ...                          loss=lambda u: np.sum(u ** 2))
    >>> v2, (du0_2, _) = online.value_and_grad(u0, p)
    >>> bool(np.allclose(du0_2, du0)), online.stats["n_steps"]
    (True, 1000)
    >>> online.stats["forward_steps"], online.stats["offline_forward_steps"]
    (3845, 3769)
    """
    return Checkpointed(step, n_steps, snapshots, loss=loss, running_cost=running_cost,
                        until=until, memory=memory, disk=disk, schedule=schedule,
                        progress=progress, backend=backend)
