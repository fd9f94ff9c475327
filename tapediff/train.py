"""One call per training step: forward, gradient and optimizer update.

:func:`train_step` records, once per batch shape, a function that computes
the loss, its gradient and the optimizer's update (the optimizer's own
``_rule``), and compiles it: a step is then one native call that reads the
batch and rewrites the parameters and the optimizer state in place. The
numbers that change from step to step (learning rate, bias corrections) are
inputs of that call, computed in Python from the step count; nothing is
frozen at record time. With ``fused=False`` (or the interpreted backend) the
loss and gradient are replayed and the optimizer's ``step`` runs separately.
"""
import functools
import math

import numpy as np

from . import pytree
from .api import record, value_and_grad
from .optim import _flat_views, clip_factor

__all__ = ["train_step", "TrainStep"]

BACKENDS = ("auto", "c", "interpreted")


def _check_backend(backend):
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: choose one of {BACKENDS}")


def _replayer(rf, backend):
    """``rf`` itself for ``backend="interpreted"``, else its compiled form (which
    replays interpreted, after one warning, when no C compiler works).

    Both have ``value_and_grad(*args)``; only a compiled one takes ``out=``."""
    return rf if backend == "interpreted" else rf.compile()


class TrainStep:
    """The callable :func:`train_step` returns; ``step(*batch)`` gives the loss as a float.

    Attributes
    ----------
    backend : str
        ``"c"`` when the recorded tapes are compiled, else ``"interpreted"``.
    recorded : dict
        Leading batch sizes -> the recorded function for that batch shape.
    n_calls, n_skipped : int
        Calls so far, and updates skipped for a non-finite loss
        (``on_nan="continue"``).
    """

    def __init__(self, loss, params, opt, example_batch, backend="auto", on_nan="raise",
                 fused=None):
        _check_backend(backend)
        if fused and backend == "interpreted":
            raise ValueError("fused=True needs a compiled step: use backend='auto' or 'c'")
        if on_nan not in ("raise", "continue"):
            raise ValueError(f"on_nan={on_nan!r}: choose 'raise' or 'continue'")
        leaves, _ = pytree.flatten(params)
        mine, _ = pytree.flatten(opt.params)
        if len(leaves) != len(mine) or any(a is not b for a, b in zip(leaves, mine)):
            raise ValueError("params must be the very arrays the optimizer updates: build "
                             "the optimizer on params (e.g. Adam(params)) and pass the same "
                             "pytree here")
        self.loss, self.params, self.opt, self.on_nan = loss, params, opt, on_nan
        self._backend = backend
        # a fused step updates the parameters in place inside the native call,
        # which needs C-contiguous arrays (a transposed view is not)
        odd = [path for path, leaf in zip(pytree.leaf_paths(pytree.flatten(params)[1], "params"),
                                          leaves) if not leaf.flags.c_contiguous]
        if fused and odd:
            raise ValueError(f"fused=True updates parameters in place in the compiled step; "
                             f"{odd[0]} is not C-contiguous (pass np.ascontiguousarray(...) "
                             "copies, or fused=False)")
        self.fused = (backend != "interpreted" and not odd) if fused is None else bool(fused)
        self._leaves, self._treedef = pytree.flatten(tuple(example_batch))
        self._paths = pytree.leaf_paths(self._treedef, "batch")
        self.recorded = {}
        self._runners = {}
        self.backend = None
        self.n_calls = self.n_skipped = 0
        self._runner(example_batch)

    def _key(self, batch):
        """Leading sizes of the batch's array leaves; raises when anything else changed."""
        return self._key_leaves(batch)[0]

    def _key_leaves(self, batch):
        """``_key`` and the batch's leaves."""
        leaves, treedef = pytree.flatten(tuple(batch))
        if treedef != self._treedef:
            raise ValueError(f"the batch has leaves {pytree.leaf_paths(treedef, 'batch')} but "
                             f"the example batch had {self._paths}: pass the same structure")
        key = []
        for path, new, old in zip(self._paths, leaves, self._leaves):
            if pytree.is_static(old):
                continue
            s, s0 = np.shape(new), np.shape(old)
            if len(s) != len(s0) or s[1:] != s0[1:]:
                raise ValueError(f"{path} has shape {s} but the example batch had {s0}: only "
                                 "the leading (batch) dimension may change between steps")
            key.append(s[:1])
        return tuple(key), leaves

    def _runner(self, batch):
        """``run(batch, leaves)`` for this batch shape, recorded on first use: it
        returns ``(value, grads)``, or for a fused step ``(value, updated)``."""
        key, leaves = self._key_leaves(batch)
        run = self._runners.get(key)
        if run is not None:
            return run, leaves
        # a tape replays one shape only: each leading size gets its own recording
        if self.fused:
            run = self._runners[key] = self._fused_runner(key, batch)
            return run, leaves
        rf = self.recorded[key] = record(self.loss, self.params, *batch, argnums=0)
        tape = _replayer(rf, self._backend)
        self.backend = "interpreted" if tape is rf else "c"
        # a compiled tape writes the gradients into the optimizer's flat buffer (no copy)
        kw = {} if tape is rf else {"out": self.opt.grad_buffers}
        vg = functools.partial(tape.value_and_grad, self.params, **kw)
        run = self._runners[key] = lambda batch, leaves: vg(*batch)
        return run, leaves

    def _fused_runner(self, key, batch):
        """Record loss + gradient + update for this batch shape and compile it;
        the call writes the parameters and the state buffers in place."""
        opt = self.opt
        leaves = opt._params
        state = {k: _flat_views(buf, leaves) for k, buf in opt._state.items()}
        # the step-dependent scalars, real values (none of 1/0 while recording)
        sc = np.array(opt.scalars(), leaves[0].dtype)
        fn = _fused_step(self.loss, opt, pytree.flatten(self.params)[1])
        rf = self.recorded[key] = record(fn, leaves, state, sc, *batch, argnums=())
        tape = rf.compile()
        self.backend = "c"
        out = (None, None, leaves, state)
        fixed = pytree.flatten((leaves, state, sc))[0]      # the call's leaves, batch excluded

        def run(batch, batch_leaves):
            sc[...] = opt.scalars()
            # after the first call, straight to the native call when nothing but
            # the batch arrays changed (the checks CompiledFunction does on a
            # repeated out= call; pytree work on the fixed arguments skipped)
            fast = tape._into.latest
            if fast is not None and fast.version is rf._current and all(
                    type(x) is np.ndarray for x in batch_leaves):
                outs = fast.call_leaves(fixed + batch_leaves)
                if outs is not None:
                    return outs[0][()], bool(outs[1])
            value, ok, _, _ = tape(leaves, state, sc, *batch, out=out)
            return value, bool(ok)
        return run

    def __call__(self, *batch):
        run, leaves = self._runner(batch)
        self.n_calls += 1
        value, result = run(batch, leaves)    # fused: whether it updated; else the gradients
        value = float(value)
        if self.fused and result:
            self.opt.step_count += 1
            return value
        if not math.isfinite(value):
            if self.on_nan == "raise":
                raise FloatingPointError(
                    f"train step {self.n_calls}: the loss is {value}; the parameters were not "
                    "updated. Lower the learning rate, check the batch, or pass "
                    "on_nan='continue' to skip such steps.")
            self.n_skipped += 1
            return value
        grads = result
        if self.fused:      # finite loss, non-finite gradient (check_finite): opt.step names it
            grads = record(self.loss, self.params, *batch, argnums=0).value_and_grad(
                self.params, *batch)[1]
        self.opt.step(grads)
        return value

    def __repr__(self):
        return (f"<TrainStep {getattr(self.loss, '__name__', 'loss')}: {self.backend}, "
                f"{type(self.opt).__name__}, {self.n_calls} calls>")


def _fused_step(loss, opt, treedef):
    """``f(leaves, state, sc, *batch) -> (loss, ok, new leaves, new state)``: the
    function a fused step records. ``ok`` says the loss (and, with
    ``check_finite``, every gradient) is finite; when it is not, the new
    parameters and state are the old ones (a skipped step)."""
    vg = value_and_grad(loss, argnums=0)

    def fused_step(leaves, state, sc, *batch):
        value, grads = vg(pytree.unflatten(treedef, leaves), *batch)
        gs = [np.zeros_like(p) if g is None else g
              for g, p in zip(pytree.flatten(grads)[0], leaves)]
        ok = np.isfinite(value)
        if opt.check_finite:
            for g in gs:
                ok = ok & np.all(np.isfinite(g))
        if opt.max_grad_norm is not None:
            f = clip_factor(gs, opt.max_grad_norm)
            gs = [g * f for g in gs]
        scalars = tuple(sc[i] for i in range(sc.shape[0]))
        new_leaves, new_state = [], {k: [] for k in state}
        for i, (g, p) in enumerate(zip(gs, leaves)):
            # the update rule is elementwise given the scalars: one parameter at a time
            p_new, s_new = opt._rule(g, p, {k: b[i] for k, b in state.items()}, scalars)
            new_leaves.append(np.where(ok, p_new, p))
            for k, b in state.items():
                new_state[k].append(np.where(ok, s_new[k], b[i]))
        return value, ok, new_leaves, new_state
    fused_step.__name__ = f"{getattr(loss, '__name__', 'loss')}_{type(opt).__name__}_step"
    return fused_step


def train_step(loss, params, opt, *example_batch, backend="auto", on_nan="raise", fused=None):
    """Build ``step(*batch) -> float``: loss value, gradient and optimizer update in one call.

    The loss is recorded with :func:`tapediff.record` on ``(params,
    *example_batch)`` (gradient with respect to ``params``) and replayed by
    each step; ``opt.step(grads)`` then updates ``params`` in place. A batch
    whose leading dimension differs (the short last batch of an epoch) is
    recorded once more and that recording is kept for later epochs.

    By default the optimizer's update is recorded on the same tape as the loss
    and its gradient and compiled with them (a *fused* step): each step is one
    native call that rewrites ``params`` and the optimizer state in place,
    with no Python work per parameter. The step count and the learning rate
    are never part of the tape: the optimizer evaluates its schedule in Python
    at every step and passes the resulting numbers to the call. A non-finite
    loss leaves parameters and state untouched (the call selects the old
    values), so ``on_nan`` means the same fused or not.

    Parameters
    ----------
    loss : callable
        ``loss(params, *batch)``: plain NumPy code returning a scalar float.
    params : pytree of float ndarrays
        The arrays ``opt`` was built on (updated in place).
    opt : tapediff.optim.Optimizer
        The optimizer.
    *example_batch
        Example data arguments (pytrees of arrays), fixing their structure and
        trailing shapes.
    backend : {"auto", "c", "interpreted"}
        ``"auto"`` and ``"c"`` replay the compiled tape (gradients written
        into the optimizer's buffer through ``out=``; without a C compiler it
        replays interpreted after one warning); ``"interpreted"`` uses the
        NumPy interpreter.
    on_nan : {"raise", "continue"}
        On a NaN or infinite loss, raise ``FloatingPointError`` naming the
        step, or skip the update and go on.
    fused : bool, optional
        Record the update with the gradient (default for a compiled backend
        when every parameter is C-contiguous), or replay the gradient and
        call ``opt.step`` after it (``False``; always so for
        ``backend="interpreted"``).

    Returns
    -------
    TrainStep
        ``step(*batch)`` returns the loss before the update as a float.

    Examples
    --------
    >>> import numpy as np, tapediff as td
    >>> from tapediff.optim import SGD
    >>> from tapediff.train import train_step
    >>> def loss(w, x, y):
    ...     return np.mean((x @ w["a"] - y) ** 2)
    >>> w = {"a": np.zeros(2)}
    >>> x, y = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, -1.0])
    >>> step = train_step(loss, w, SGD(w, lr=0.5), x, y)
    >>> [round(step(x, y), 6) for _ in range(3)]
    [1.0, 0.25, 0.0625]
    >>> w["a"]
    array([ 0.875, -0.875])
    """
    return TrainStep(loss, params, opt, example_batch, backend=backend, on_nan=on_nan,
                     fused=fused)
