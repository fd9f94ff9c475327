"""Checkpointed adjoints of time-steppers: carry out a :mod:`.schedule`.

:func:`checkpointed` turns a plain-NumPy time step ``step(u, p[, t])`` into
an object whose :meth:`Checkpointed.value_and_grad` computes

    value = loss(u_N) + sum_{n=0}^{N-1} running_cost(u_n, p[, t_n])

and its gradient with respect to the initial state ``u0`` and the parameters
``p``, holding at most ``snapshots`` copies of the state at once (the
binomial schedule of :func:`~tapediff.checkpoint.revolve`) instead of the
intermediates of all ``N`` steps.

The step is recorded once (``td.record``) and replayed; the executor needs
three things from it, so a compiled step tape can be plugged in later:

* a plain advance, ``fwd(u, p, t) -> u_next`` (no intermediates kept);
* a taped step and its adjoint, ``out, pull = fwd.vjp(u, p, t)`` then
  ``du, dp = pull(du_next)``;
* the loss, ``value, du_N = loss_tape.value_and_grad(u_N)``.

The step index is passed as a 0-d float64 array ``np.float64(n)``, a
replayed input: a Python ``int`` would be static and re-record the step at
every time step. A data-dependent branch in the step (an ``if`` on the
state) re-records the step tape for the new path, as ``td.record`` does;
the results stay exact.

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

import inspect

import numpy as np

from .. import pytree
from ..api import record
from ..errors import ShapeMismatch, TapediffError
from .schedule import Advance, Free, Restore, Reverse, Store, _check_args, revolve

__all__ = ["Checkpointed", "checkpointed"]


def _takes_t(fun, name):
    """Whether ``fun`` accepts a third positional argument ``t``."""
    try:
        sig = inspect.signature(fun)
    except (TypeError, ValueError):   # builtins without a signature: try with t
        return True
    try:
        sig.bind(None, None, None)
        return True
    except TypeError:
        pass
    try:
        sig.bind(None, None)
        return False
    except TypeError:
        raise TypeError(f"{name} must accept (u, p) or (u, p, t); its signature is "
                        f"{name}{sig}") from None


def _leaf_info(tree, prefix):
    leaves, treedef = pytree.flatten(tree)
    paths = pytree.leaf_paths(treedef, prefix)
    info = []
    for path, leaf in zip(paths, leaves):
        if pytree.is_static(leaf):
            raise TypeError(f"{path} is a Python {type(leaf).__name__} ({leaf!r}); the "
                            "state and parameters must be float arrays or numbers "
                            "(pass np.float64(...) or an array)")
        a = np.asarray(leaf)
        if a.dtype.kind != "f":
            raise TypeError(f"{path} has dtype {a.dtype}; the state and parameters must be "
                            "floating-point (they are differentiated)")
        info.append((path, a.shape, a.dtype))
    return treedef, info


def _copy_tree(tree):
    leaves, treedef = pytree.flatten(tree)
    return pytree.unflatten(treedef, [np.array(leaf, copy=True) for leaf in leaves])


def _nbytes(tree):
    leaves, _ = pytree.flatten(tree)
    return sum(np.asarray(leaf).nbytes for leaf in leaves)


class Checkpointed:
    """A time-stepper whose adjoint runs under a checkpointing schedule.

    Made by :func:`checkpointed`. Attributes: ``schedule`` (the
    :class:`~tapediff.checkpoint.Schedule` followed), ``n_steps``,
    ``snapshots`` and ``stats`` (a dict filled by the last
    :meth:`value_and_grad`: ``forward_steps``, ``reverse_steps``,
    ``max_snapshots``, ``snapshot_bytes``, ``schedule``, ``n_steps``,
    ``snapshots``, ``step_versions``).
    """

    def __init__(self, step, n_steps, snapshots, loss=None, running_cost=None):
        n, s = _check_args(n_steps, snapshots)
        if not callable(step):
            raise TypeError(f"step must be callable, got {type(step).__name__}")
        for name, f in (("loss", loss), ("running_cost", running_cost)):
            if f is not None and not callable(f):
                raise TypeError(f"{name} must be callable or None, got {type(f).__name__}")
        if loss is None and running_cost is None:
            raise ValueError("give loss (a function of the final state) and/or running_cost "
                             "(a function of (u, p[, t])): there is nothing to differentiate")
        self.step, self.loss, self.running_cost = step, loss, running_cost
        self.n_steps, self.snapshots = n, s
        self.schedule = revolve(n, s)
        step_t = _takes_t(step, "step")
        cost_t = running_cost is not None and _takes_t(running_cost, "running_cost")

        def step_fn(u, p, t):
            return step(u, p, t) if step_t else step(u, p)
        step_fn.__name__ = getattr(step, "__name__", "step")
        self._step_fn = step_fn
        if running_cost is not None:
            def step_and_cost(u, p, t):
                c = running_cost(u, p, t) if cost_t else running_cost(u, p)
                return step_fn(u, p, t), c
            step_and_cost.__name__ = step_fn.__name__ + "_and_cost"
            self._taped_fn = step_and_cost
        else:
            self._taped_fn = step_fn
        self._key = None        # (treedefs, shapes, dtypes) the tapes were recorded for
        self._fwd = self._taped = self._loss_tape = None
        self.stats = {}

    # ------------------------------------------------------------------ tapes
    def _tapes(self, u0, p):
        u_td, u_info = _leaf_info(u0, "u")
        p_td, p_info = _leaf_info(p, "p")
        key = (u_td, tuple(i[1:] for i in u_info), p_td, tuple(i[1:] for i in p_info))
        if key != self._key:
            t0 = np.float64(0)
            self._fwd = record(self._step_fn, u0, p, t0, argnums=(0, 1))
            self._taped = (self._fwd if self._taped_fn is self._step_fn
                           else record(self._taped_fn, u0, p, t0, argnums=(0, 1)))
            self._loss_tape = None       # recorded on the first final state
            self._key = key
        return u_td, u_info, p_td, p_info

    def _check_state(self, u, u_td, u_info, n):
        leaves, td = pytree.flatten(u)
        if td != u_td:
            raise ShapeMismatch(
                f"step {n} returned a state with leaves {pytree.leaf_paths(td, 'u')}, but the "
                f"initial state has leaves {[i[0] for i in u_info]}: step(u, p, t) must return "
                "a state of the same structure as u")
        for (path, shape, dtype), leaf in zip(u_info, leaves):
            a = np.asarray(leaf)
            if a.shape != shape or a.dtype != dtype:
                raise ShapeMismatch(
                    f"step {n} changed state leaf {path} from shape {shape} dtype {dtype} to "
                    f"shape {a.shape} dtype {a.dtype}: step(u, p, t) must keep every leaf's "
                    "shape and dtype (cast the result, e.g. .astype(u.dtype))")

    # ------------------------------------------------------------------ the run
    def value_and_grad(self, u0, p):
        """Return ``(value, (du0, dp))`` following the checkpointing schedule.

        ``du0`` has the structure of ``u0``, ``dp`` that of ``p`` (dtypes as
        the inputs'); ``dp`` is accumulated over the steps in float64.
        Fills :attr:`stats`.
        """
        u_td, u_info, p_td, p_info = self._tapes(u0, p)
        fwd, taped = self._fwd, self._taped
        N, has_cost = self.n_steps, self.running_cost is not None
        checked = [False]

        def advance(u, n):
            out = fwd(u, p, np.float64(n))
            if not checked[0]:
                self._check_state(out, u_td, u_info, n)
                checked[0] = True
            return out

        dp_acc = [np.zeros(shape, np.float64) for _, shape, _ in p_info]
        du = None                   # cotangent of the state after the step being reversed
        value = np.float64(0.0)
        slots, slot_bytes = {}, {}
        held_bytes = peak_bytes = peak_slots = 0
        forward = reverse = 0
        current = u0                # None after a Reverse
        for a in self.schedule.actions:
            kind = type(a)
            if kind is Advance:
                u = current
                for n in range(a.n0, a.n1):
                    u = advance(u, n)
                forward += a.n1 - a.n0
                current = u
            elif kind is Store:
                slots[a.slot] = _copy_tree(current)
                slot_bytes[a.slot] = _nbytes(slots[a.slot])
                held_bytes += slot_bytes[a.slot]
                peak_bytes = max(peak_bytes, held_bytes)
                peak_slots = max(peak_slots, len(slots))
            elif kind is Restore:
                # Replays never modify their inputs (copy-on-write), so the
                # snapshot itself can serve as the current state.
                current = slots[a.slot]
            elif kind is Free:
                del slots[a.slot]
                held_bytes -= slot_bytes.pop(a.slot)
            elif kind is Reverse:
                n = a.n
                out, pull = taped.vjp(current, p, np.float64(n))
                forward += 1
                u_next, cost = (out if has_cost else (out, None))
                if not checked[0]:
                    self._check_state(u_next, u_td, u_info, n)
                    checked[0] = True
                if n == N - 1:
                    value, du = self._final(u_next, u_info)
                if has_cost:
                    value = value + np.float64(cost)
                    g_u, g_p = pull((du, np.ones((), np.asarray(cost).dtype)))
                else:
                    g_u, g_p = pull(du)
                du = self._fill(g_u, u_td, u_info)
                for k, g in enumerate(pytree.flatten(g_p)[0]):
                    if g is not None:
                        dp_acc[k] += g
                reverse += 1
                current = None
            else:  # pragma: no cover - schedules hold only these actions
                raise TapediffError(f"unknown schedule action {a!r}")
        dp = pytree.unflatten(p_td, [np.asarray(g, dtype=dt) if isinstance(leaf, np.ndarray)
                                     else dt.type(g) for g, leaf, (_, _, dt)
                                     in zip(dp_acc, pytree.flatten(p)[0], p_info)])
        self.stats = {"forward_steps": forward, "reverse_steps": reverse,
                      "max_snapshots": peak_slots, "snapshot_bytes": peak_bytes,
                      "schedule": self.schedule.name, "n_steps": N,
                      "snapshots": self.snapshots,
                      "step_versions": fwd.n_versions + (taped.n_versions if taped is not fwd
                                                         else 0)}
        return np.float64(value), (du, dp)

    def _final(self, uN, u_info):
        """Value and state cotangent of the loss at the final state."""
        u_td = pytree.flatten(uN)[1]
        if self.loss is None:
            return np.float64(0.0), self._fill(None, u_td, u_info)
        if self._loss_tape is None:
            self._loss_tape = record(self.loss, uN)
        v, g = self._loss_tape.value_and_grad(uN)
        return v, self._fill(g, u_td, u_info)

    @staticmethod
    def _fill(g, u_td, u_info):
        """A state cotangent with zeros where the gradient is None (no dependence)."""
        if g is None:
            leaves = [None] * len(u_info)
        else:
            leaves = pytree.flatten(g)[0]
            if len(leaves) != len(u_info):   # a None leaf for a whole subtree
                leaves = [None] * len(u_info)
        return pytree.unflatten(u_td, [np.zeros(shape, dt) if x is None else x
                                       for x, (_, shape, dt) in zip(leaves, u_info)])

    def __repr__(self):
        return (f"<checkpointed {self._step_fn.__name__}: n_steps={self.n_steps} "
                f"snapshots={self.snapshots} schedule={self.schedule.name}>")


def checkpointed(step, n_steps, snapshots, loss=None, running_cost=None):
    """Checkpointed adjoint of a time-stepper written in plain NumPy.

    Parameters
    ----------
    step : callable
        ``step(u, p)`` or ``step(u, p, t)`` returning the next state (same
        structure, shapes and dtypes as ``u``). ``t`` is the step index as a
        0-d float64 array (``np.float64(n)``), so it is replayed, not baked in.
    n_steps : int
        Number of steps ``N >= 1``.
    snapshots : int
        States held at once, the initial state included, ``>= 1``.
    loss : callable, optional
        ``loss(u_N)``, a scalar.
    running_cost : callable, optional
        ``running_cost(u_n, p[, t_n])``, a scalar, summed over ``n = 0 .. N-1``.

    Returns
    -------
    Checkpointed
        With ``value_and_grad(u0, p) -> (value, (du0, dp))`` and ``stats``.

    Raises
    ------
    ValueError
        For ``n_steps`` or ``snapshots`` below 1 or not integers (the message
        names the argument), or neither ``loss`` nor ``running_cost`` given.
    """
    return Checkpointed(step, n_steps, snapshots, loss=loss, running_cost=running_cost)
