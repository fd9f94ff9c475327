"""One time step, recorded once and split for checkpointing.

A checkpointing executor needs three things from a step ``step(u, p[, t])``:

* a plain advance, ``u_next = advance(u, n)``, keeping nothing;
* a taped step, ``u_next, tape = taped(u, n)``, whose ``tape`` holds
  exactly the intermediates the step's adjoint reads (the *residuals*);
* the adjoint from such a tape, ``du, dp = reverse(tape, n, du_next, dp)``,
  which evaluates no primal operation again.

(``p``, the parameters, are given once to :meth:`StepTape.prepare`.)

The step is recorded with ``td.record`` (re-recorded, like any recorded
function, when a data-dependent branch takes a new path). Its gradient tape
is split into a forward half that also returns the residuals and a reverse
half that reads them -- the split loop blocks use (:mod:`tapediff.passes.loop_ad`),
with the state as the carried value and the parameters and ``t`` as loop
invariants, whose cotangents are accumulated in a running total. So a taped
step costs one primal evaluation and its adjoint one adjoint evaluation:
the executor's step counts are what runs.

The residuals' total size, known from the recorded shapes, is the *tape
size* a memory budget weighs against the state size.

Examples
--------
>>> import numpy as np
>>> def step(u, p):
...     return u + p["dt"] * np.sin(u)
>>> st = StepTape(step)
>>> u0, p = np.linspace(0.0, 1.0, 4), {"dt": np.float64(0.1)}
>>> st.prepare(u0, p)                # records (True: new shapes)
True
>>> u1, tape = st.taped(u0, 0)
>>> np.allclose(u1, step(u0, p)), st.state_bytes, st.tape_bytes
(True, 32, 64)
>>> du0, dp = st.reverse(tape, 0, np.ones(4), st.zero_dp())
>>> np.allclose(du0, 1 + 0.1 * np.cos(u0))
True
"""
from __future__ import annotations

import inspect

import numpy as np

from .. import pytree
from ..api import record
from ..errors import ShapeMismatch
from ..compiled import TapeRunner
from ..interpreter import Plan
from ..ops.registry import OPS
from ..passes.loop_ad import _split
from ..tracer import GuardFailed, no_gc

__all__ = ["StepTape", "Tape"]


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
    """``(treedef, [(path, shape, dtype)])`` of a state or parameter tree, checked."""
    leaves, treedef = pytree.flatten(tree)
    paths = pytree.leaf_paths(treedef, prefix)
    info = []
    for path, leaf in zip(paths, leaves):
        if pytree.is_static(leaf):
            raise TypeError(f"{path} is a Python {type(leaf).__name__} ({leaf!r}); the "
                            "state and parameters must be float arrays or numbers "
                            "(pass np.float64(...) or an array)")
        # shape and dtype without a conversion (a CuPy array refuses np.asarray)
        a = leaf if hasattr(leaf, "shape") and hasattr(leaf, "dtype") else np.asarray(leaf)
        dtype = np.dtype(a.dtype)
        if dtype.kind != "f":
            raise TypeError(f"{path} has dtype {dtype}; the state and parameters must be "
                            "floating-point (they are differentiated)")
        info.append((path, tuple(a.shape), dtype))
    return treedef, info


def _value(leaf):
    """A leaf as a replay takes it: a Python float becomes a 0-d float64."""
    return np.float64(leaf) if type(leaf) is float else leaf


def _nbytes(info):
    return sum(int(np.prod(shape, dtype=np.int64)) * np.dtype(dt).itemsize
               for _, shape, dt in info)


class Tape:
    """The residuals of one taped step (what a snapshot slot holds for it), and
    the step's running cost (``None`` without one)."""

    __slots__ = ("entry", "residuals", "nbytes", "cost")

    def __init__(self, entry, residuals, nbytes, cost):
        self.entry = entry            # the split step version it came from
        self.residuals = residuals
        self.nbytes = nbytes
        self.cost = cost


def _slot_bytes(tape, s):
    return int(np.prod(tape.shape(s), dtype=np.int64)) * np.dtype(tape.dtype(s)).itemsize


def _peak_live_bytes(plan):
    """Most bytes a plan's run holds in arrays it allocates, from the recorded
    shapes and the plan's frees (views and in-place updates allocate nothing;
    a nested loop's own temporaries are not counted)."""
    tape = plan.tape
    live = peak = 0
    owned = {}
    for i, (fn, out, _, _, dead, nout) in enumerate(plan.steps):
        if out >= 0:
            op = OPS[tape.op[i]]
            if not op.view and fn is not op.inplace:
                for o in range(out, out + max(nout, 1)):
                    owned[o] = _slot_bytes(tape, o)
                    live += owned[o]
        peak = max(peak, live)
        for d in dead:
            live -= owned.pop(d, 0)
    return peak


class _Entry:
    """One recorded version of the step, split: forward and reverse plans, and
    their runners (compiled when asked for and possible)."""

    def __init__(self, tape, split, n_out, runner):
        self.tape = tape
        with no_gc():
            self.forward = Plan(split.forward)
            self.reverse = Plan(split.reverse)
        self.run_forward = runner(split.forward, self.forward, "step_taped")
        self.run_reverse = runner(split.reverse, self.reverse, "step_adjoint")
        self.n_out = n_out            # the step's own outputs; residuals follow
        self.inv_idx = split.inv_idx  # parameter leaves whose cotangents accumulate
        fw = split.forward
        self.tape_bytes = sum(_slot_bytes(fw, s) for s in fw.outputs[n_out:])
        # a taped step then its adjoint: the forward half's arrays (the next
        # state and the residuals among them), or the residuals and the reverse
        # half's arrays (the state cotangent and gradient totals among them)
        self.step_bytes = max(_peak_live_bytes(self.forward),
                              self.tape_bytes + _peak_live_bytes(self.reverse))


class StepTape:
    """A time step ``step(u, p[, t])`` (and an optional running cost) recorded for checkpointing.

    Parameters
    ----------
    step : callable
        ``step(u, p)`` or ``step(u, p, t)``, plain NumPy, returning the next
        state (same structure, shapes and dtypes as ``u``).
    running_cost : callable, optional
        ``running_cost(u, p)`` or ``running_cost(u, p, t)``, a scalar; the
        taped step also returns it.

    Attributes
    ----------
    state_bytes, param_bytes, tape_bytes : int
        Sizes of one state, of the parameters, and of one step's residuals
        (the largest over the recorded versions); set by :meth:`prepare`.
    workspace_bytes : int
        Memory a taped step and its adjoint need besides the snapshots: the
        most bytes the step's forward half, or its residuals and reverse
        half, hold at once (from the recorded shapes and the plans' frees),
        four states (the state stepped from, the incoming state cotangent,
        and two for the loss and its gradient) and the parameters.
    setup_evaluations : int
        Step evaluations spent recording: one per recorded version and one
        per gradient tape built (none on a later call with cached tapes).

    Examples
    --------
    >>> import numpy as np
    >>> st = StepTape(lambda u, p, t: u * p + t, running_cost=lambda u, p: np.sum(u))
    >>> st.prepare(np.ones(3), np.float64(2.0))
    True
    >>> u1, tape = st.taped(np.ones(3), 5)
    >>> u1, float(tape.cost)
    (array([7., 7., 7.]), 3.0)
    >>> st.setup_evaluations          # two recordings and one gradient tape
    3
    """

    def __init__(self, step, running_cost=None, compiled=False, device=None):
        self.compiled = compiled
        # device: where states, parameters and residuals live (None: NumPy on
        # the host; else e.g. tapediff.cuda_backend.CupyDevice), its tapes run
        # by DeviceTapeRunner
        self.device = device
        self.xp = np if device is None else device.xp
        self._runners = {}          # id(plain tape) -> TapeRunner of a plain advance
        if not callable(step):
            raise TypeError(f"step must be callable, got {type(step).__name__}")
        if running_cost is not None and not callable(running_cost):
            raise TypeError(f"running_cost must be callable or None, got "
                            f"{type(running_cost).__name__}")
        step_t = _takes_t(step, "step")
        self._step_uses_t = step_t
        cost_t = running_cost is not None and _takes_t(running_cost, "running_cost")
        self.name = getattr(step, "__name__", "step")

        def step_fn(u, p, t):
            return step(u, p, t) if step_t else step(u, p)
        step_fn.__name__ = self.name
        self._step_fn = step_fn
        self.has_cost = running_cost is not None
        if self.has_cost:
            def step_and_cost(u, p, t):
                c = running_cost(u, p, t) if cost_t else running_cost(u, p)
                return step_fn(u, p, t), c
            step_and_cost.__name__ = self.name + "_and_cost"
            self._taped_fn = step_and_cost
        else:
            self._taped_fn = step_fn
        self._key = None
        self._plain = self._taped = None
        self._entries = {}          # id(tape) -> _Entry (the tape kept to check identity)
        self._checked = set()       # ids of plain-advance tapes whose outputs were checked
        self.state_bytes = self.param_bytes = self.tape_bytes = self.workspace_bytes = 0
        self.setup_evaluations = 0
        self.u_td = self.u_info = self.p_td = self.p_info = None

    # ---------------------------------------------------------------- recording
    def _runner(self, tape, plan, name):
        if self.device is not None:
            from ..cuda_backend import DeviceTapeRunner
            return DeviceTapeRunner(tape, plan, self.device, name)
        return TapeRunner(tape, plan, name, self.compiled)

    def to_host(self, tree):
        """A tree of device arrays as NumPy (itself without a device)."""
        if self.device is None:
            return tree
        leaves, td = pytree.flatten(tree)
        return pytree.unflatten(td, self._host_leaves(leaves))

    def _host_leaves(self, leaves):
        if self.device is None:
            return leaves
        dev = self.device
        return [dev.to_host(x) if dev.is_array(x) else x for x in leaves]

    def to_device(self, x):
        return x if self.device is None else self.xp.asarray(x)

    def prepare(self, u0, p):
        """Record the step for these shapes (once; again when a shape changes).

        Checks the state and parameters (float leaves) and that the step
        returns a state of the same structure, shapes and dtypes, before any
        time step runs; sets the sizes; the following steps use these
        parameters ``p``. Returns whether it recorded (the shapes are new).

        Raises
        ------
        TypeError
            For a non-float or static (Python int) leaf.
        ShapeMismatch
            When the recorded step changes the state's structure, a leaf's
            shape or its dtype.
        """
        self.u_td, self.u_info = _leaf_info(u0, "u")
        self.p_td, self.p_info = _leaf_info(p, "p")
        self._p_leaves = [self.to_device(_value(x)) for x in pytree.flatten(p)[0]]
        p = self.p = self.to_host(p)       # for host replays (recording, a failed guard)
        key = (self.u_td, tuple(i[1:] for i in self.u_info),
               self.p_td, tuple(i[1:] for i in self.p_info))
        self.state_bytes, self.param_bytes = _nbytes(self.u_info), _nbytes(self.p_info)
        if key == self._key:
            return False
        u0 = self.to_host(u0)              # recording runs NumPy code
        t0 = np.float64(0)
        self._plain = record(self._step_fn, u0, p, t0, argnums=(0, 1))
        self.setup_evaluations += 1
        self._check_outputs(self._plain.tape, cost=False)
        self._checked = {id(self._plain.tape)}
        if self.has_cost:
            self._taped = record(self._taped_fn, u0, p, t0, argnums=(0, 1))
            self.setup_evaluations += 1
        else:
            self._taped = self._plain
        self._entries = {}
        self._key = key
        self._native_plain = None
        self.tape_bytes = self.workspace_bytes = 0
        # the sizes need the split, built on these inputs (one more evaluation)
        self._taped._replay((u0, p, t0), self._entry_of)
        return True

    def _check_outputs(self, tape, cost):
        """Raise :class:`ShapeMismatch` unless ``tape`` returns a state like ``u``."""
        out_td = tape.out_treedef
        if cost:
            out_td = out_td[2][0]     # ("tuple", 2, (state, cost))
        n = len(self.u_info)
        outs = tape.outputs[:n]
        if out_td != self.u_td:
            raise ShapeMismatch(
                f"step returns a state with leaves {pytree.leaf_paths(out_td, 'u')}, but the "
                f"initial state has leaves {[i[0] for i in self.u_info]}: step(u, p, t) must "
                "return a state of the same structure as u (found when recording the step, "
                "before any time step)")
        for (path, shape, dtype), s in zip(self.u_info, outs):
            if tape.shape(s) != shape or np.dtype(tape.dtype(s)) != dtype:
                raise ShapeMismatch(
                    f"step changes state leaf {path} from shape {shape} dtype {dtype} to "
                    f"shape {tape.shape(s)} dtype {np.dtype(tape.dtype(s))}: step(u, p, t) "
                    "must keep every leaf's shape and dtype (cast the result, e.g. "
                    ".astype(u.dtype)); found when recording the step, before any time step")

    def _entry_of(self, v, leaves):
        """The split of version ``v`` of the taped step, built on ``leaves`` once."""
        entry = self._entries.get(id(v.tape))
        if entry is None or entry.tape is not v.tape:
            self._check_outputs(v.tape, cost=self.has_cost)
            n_out = len(v.tape.outputs)
            leaves = self._host_leaves(leaves)     # the split replays NumPy code
            # the state is the loop's carried value; p's leaves and t are invariants
            split = _split(v.tape, leaves, len(self.u_info), len(self.p_info) + 1,
                           n_out - len(self.u_info))
            self.setup_evaluations += 1
            entry = self._entries[id(v.tape)] = _Entry(v.tape, split, n_out, self._runner)
            self.tape_bytes = max(self.tape_bytes, entry.tape_bytes)
            self.workspace_bytes = max(self.workspace_bytes, 4 * self.state_bytes
                                       + self.param_bytes + entry.step_bytes)
        return entry

    def _entry_run(self, v, leaves):
        """``run`` for RecordedFunction._replay: the forward half of version
        ``v`` on ``leaves`` (a failed guard re-records, as any replay does)."""
        entry = self._entry_of(v, leaves)
        if self.device is not None or entry.run_forward.native is not None:
            return entry, entry.run_forward(leaves)
        # keep_all: the outputs without the defensive copy of those that alias
        # an input (a state is never written in place, so sharing is safe)
        vals = entry.forward.run(leaves, keep_all=True)
        return entry, [vals[s] for s in entry.forward.outputs]

    def _plain_run(self, v, leaves):
        if id(v.tape) not in self._checked:     # a new branch: check its output too
            self._check_outputs(v.tape, cost=False)
            self._checked.add(id(v.tape))
        runner = self._runners.get(id(v.tape))
        if runner is None or runner.plan is not v.plan:
            runner = self._runners[id(v.tape)] = self._runner(v.tape, v.plan, "step")
        return runner(leaves)

    @property
    def n_versions(self):
        """Recorded versions (paths through data-dependent branches) of both tapes."""
        n = self._plain.n_versions if self._plain is not None else 0
        if self._taped is not None and self._taped is not self._plain:
            n += self._taped.n_versions
        return n

    # ---------------------------------------------------------------- running
    def _leaves(self, u, n):
        return [_value(x) for x in pytree.flatten(u)[0]] + self._p_leaves + [np.float64(n)]

    def _run(self, rf, run, u, n):
        """``run`` on the version ``rf`` used last; through ``rf``'s replay
        (version choice, re-recording) only when a guard fails.

        The fast path skips the per-call signature check of a replay: the
        state keeps its structure, shapes and dtypes (checked on every
        version's outputs) and the parameters were checked by prepare().
        """
        try:
            return run(rf._current, self._leaves(u, n))
        except GuardFailed:
            return rf._replay((self.to_host(u), self.p, np.float64(n)), run)

    def advance(self, u, n):
        """State ``n + 1`` from state ``n``, keeping no intermediates."""
        return pytree.unflatten(self.u_td, self._run(self._plain, self._plain_run, u, n))

    def advance_run(self, u, n0, n1):
        """State ``n1`` from state ``n0``. A step that does not read ``t`` runs
        the whole stretch in one native call when compiled (the step tape as
        the body of one C loop); otherwise step by step."""
        if (self.compiled and self.device is None and not self._step_uses_t and n1 - n0 > 1
                and self._plain.tape is self._plain._current.tape):
            from ..compiled import CompiledFunction
            if getattr(self, "_native_plain", None) is None:
                self._native_plain = CompiledFunction(self._plain)
            return self._native_plain.advance(n1 - n0, u, self.p, np.float64(n0))
        for n in range(n0, n1):
            u = self.advance(u, n)
        return u

    def taped(self, u, n):
        """Run step ``n`` keeping its residuals: ``(state n + 1, Tape)``.

        The running cost, if any, is ``tape.cost``.
        """
        entry, outs = self._run(self._taped, self._entry_run, u, n)
        k = len(self.u_info)
        u_next = pytree.unflatten(self.u_td, outs[:k])
        cost = outs[k] if self.has_cost else None
        res = outs[entry.n_out:]
        return u_next, Tape(entry, res, entry.tape_bytes, cost)

    def reverse(self, tape, n, du_next, dp):
        """The adjoint of step ``n`` from its ``tape``: ``(du, dp)``.

        ``du_next`` is the cotangent of state ``n + 1`` (a tree like ``u``);
        ``dp`` the list of running totals of the parameter cotangents (one
        array per parameter leaf, from :meth:`zero_dp`), returned updated.
        """
        entry = tape.entry
        du_leaves = pytree.flatten(du_next)[0]
        ins = list(du_leaves)
        ins += [dp[j] for j in entry.inv_idx]
        ins += self._p_leaves
        ins.append(np.float64(n))
        ins += tape.residuals
        if self.has_cost:
            ins.append(np.ones((), np.dtype(entry.tape.dtype(entry.tape.outputs[-1]))))
        outs = entry.run_reverse(ins)
        k = len(du_leaves)
        dp = list(dp)
        for j, g in zip(entry.inv_idx, outs[k:]):
            dp[j] = g
        return pytree.unflatten(self.u_td, outs[:k]), dp

    def zero_dp(self):
        """Zero running totals for the parameter cotangents (in each leaf's dtype)."""
        return [self.xp.zeros(shape, dt) for _, shape, dt in self.p_info]

    def state_cotangent(self, g):
        """A state cotangent from a gradient ``g`` (a tree like ``u``, or None),
        with zeros where it is None (no dependence)."""
        leaves = [None] * len(self.u_info) if g is None else pytree.flatten(g)[0]
        if len(leaves) != len(self.u_info):    # a None leaf for a whole subtree
            leaves = [None] * len(self.u_info)
        xp = self.xp
        return pytree.unflatten(self.u_td, [xp.zeros(shape, dt) if x is None else
                                            self.to_device(x)
                                            for x, (_, shape, dt) in zip(leaves, self.u_info)])
