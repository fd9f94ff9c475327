"""One call per training step: forward, gradient and optimizer update.

:func:`train_step` records the loss once per batch shape and replays it each
step (the compiled tape when the backend has one), then hands the gradient to
a :mod:`tapediff.optim` optimizer.
"""
import functools
import math

import numpy as np

from . import pytree
from .api import record

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

    def __init__(self, loss, params, opt, example_batch, backend="auto", on_nan="raise"):
        _check_backend(backend)
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
        self._leaves, self._treedef = pytree.flatten(tuple(example_batch))
        self._paths = pytree.leaf_paths(self._treedef, "batch")
        self.recorded = {}
        self._runners = {}
        self.backend = None
        self.n_calls = self.n_skipped = 0
        self._runner(example_batch)

    def _key(self, batch):
        """Leading sizes of the batch's array leaves; raises when anything else changed."""
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
        return tuple(key)

    def _runner(self, batch):
        """``run(*batch) -> (value, grads)`` for this batch shape, recorded on first use."""
        key = self._key(batch)
        run = self._runners.get(key)
        if run is not None:
            return run
        # a tape replays one shape only: each leading size gets its own recording
        rf = self.recorded[key] = record(self.loss, self.params, *batch, argnums=0)
        tape = _replayer(rf, self._backend)
        self.backend = "interpreted" if tape is rf else "c"
        # a compiled tape writes the gradients into the optimizer's flat buffer (no copy)
        kw = {} if tape is rf else {"out": self.opt.grad_buffers}
        run = functools.partial(tape.value_and_grad, self.params, **kw)
        self._runners[key] = run
        return run

    def __call__(self, *batch):
        run = self._runner(batch)
        self.n_calls += 1
        value, grads = run(*batch)
        value = float(value)
        if not math.isfinite(value):
            if self.on_nan == "raise":
                raise FloatingPointError(
                    f"train step {self.n_calls}: the loss is {value}; the parameters were not "
                    "updated. Lower the learning rate, check the batch, or pass "
                    "on_nan='continue' to skip such steps.")
            self.n_skipped += 1
            return value
        self.opt.step(grads)
        return value

    def __repr__(self):
        return (f"<TrainStep {getattr(self.loss, '__name__', 'loss')}: {self.backend}, "
                f"{type(self.opt).__name__}, {self.n_calls} calls>")


def train_step(loss, params, opt, *example_batch, backend="auto", on_nan="raise"):
    """Build ``step(*batch) -> float``: loss value, gradient and optimizer update in one call.

    The loss is recorded with :func:`tapediff.record` on ``(params,
    *example_batch)`` (gradient with respect to ``params``) and replayed by
    each step; ``opt.step(grads)`` then updates ``params`` in place. A batch
    whose leading dimension differs (the short last batch of an epoch) is
    recorded once more and that recording is kept for later epochs.

    The step count and the learning rate are never part of the tape: the
    optimizer evaluates its schedule in Python at every step. The update
    itself currently runs in NumPy after the (possibly compiled) gradient,
    vectorised over the optimizer's flat buffers; it is not yet fused into the
    native call.

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
    return TrainStep(loss, params, opt, example_batch, backend=backend, on_nan=on_nan)
