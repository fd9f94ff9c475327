"""First-order optimizers that update pytrees of float arrays in place.

``SGD``, ``Adam``, ``AdamW`` and ``RMSprop`` follow the update rules that
``torch.optim`` documents (same hyperparameter names and defaults). The
optimizer state lives in one flat buffer per kind (``m`` and ``v`` for Adam)
and every formula runs as one vectorised NumPy call over that buffer. The
parameters stay the caller's arrays and are updated in place; when they are
all views of one flat buffer (see :func:`flat_params`) the update is one call
on that buffer too.

A learning rate is a float or a schedule: a callable ``lr(step)`` of the
number of updates done so far (0 for the first update), such as the ones in
:data:`schedules`.

Examples
--------
>>> import numpy as np
>>> from tapediff.optim import SGD
>>> w = {"a": np.array([1.0, 2.0])}
>>> opt = SGD(w, lr=0.5)
>>> opt.step({"a": np.array([1.0, -2.0])})
>>> w["a"]
array([0.5, 3. ])
"""
import math
from types import SimpleNamespace

import numpy as np

from . import pytree

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "clip_grad_norm", "clip_factor",
           "flat_params", "schedules"]


# ---------------------------------------------------------------- helpers
def _float_leaves(tree, name):
    """Leaves, treedef and readable paths of a pytree of float ndarrays (else TypeError)."""
    leaves, treedef = pytree.flatten(tree)
    paths = pytree.leaf_paths(treedef, name)
    if not leaves:
        raise ValueError(f"{name} holds no arrays: pass a pytree (dict/list/tuple) of float "
                         "arrays")
    for path, leaf in zip(paths, leaves):
        if not isinstance(leaf, np.ndarray):
            hint = ("wrap it with np.array(...); a list of numbers is a list of separate "
                    "scalars here, make it one array" if isinstance(leaf, (int, float)) else
                    "convert it with np.asarray(..., dtype=float)")
            raise TypeError(f"{path} is a {type(leaf).__name__}, not a NumPy array: the "
                            f"optimizer updates arrays in place ({hint})")
        if leaf.dtype.kind != "f":
            raise TypeError(f"{path} has dtype {leaf.dtype}; parameters must be real floating "
                            "arrays (use .astype(np.float64))")
        if not leaf.flags.writeable:
            raise TypeError(f"{path} is read-only; the optimizer updates parameters in place "
                            "(pass a writeable copy)")
    return leaves, treedef, paths


def _positive(name, value, allow_zero=True):
    if not (math.isfinite(value) and (value >= 0 if allow_zero else value > 0)):
        raise ValueError(f"{name}={value!r} must be a finite number "
                         f"{'>= 0' if allow_zero else '> 0'}")
    return float(value)


def _unit(name, value):
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name}={value!r} must lie in [0, 1)")
    return float(value)


def clip_grad_norm(grads, max_norm):
    """Scale a pytree of gradients in place so that their global L2 norm is at most ``max_norm``.

    The global norm is ``sqrt(sum of every squared entry)``; when it exceeds
    ``max_norm`` every array is multiplied by ``max_norm / (norm + 1e-6)``
    (as ``torch.nn.utils.clip_grad_norm_``).

    Parameters
    ----------
    grads : pytree of float ndarrays
        Gradients, modified in place.
    max_norm : float
        Largest allowed global norm (> 0).

    Returns
    -------
    float
        The global norm before clipping.

    Examples
    --------
    >>> import numpy as np
    >>> from tapediff.optim import clip_grad_norm
    >>> g = {"a": np.array([3.0]), "b": np.array([4.0])}
    >>> clip_grad_norm(g, 1.0)
    5.0
    >>> np.round(g["a"], 6), np.round(g["b"], 6)
    (array([0.6]), array([0.8]))
    """
    leaves, _, _ = _float_leaves(grads, "grads")
    max_norm = _positive("max_norm", max_norm, allow_zero=False)
    total = _global_norm(leaves)
    scale = float(_norm_factor(total, max_norm))
    if not scale >= 1.0:           # NaN too: the gradients become NaN, as torch's
        for g in leaves:
            g *= scale
    return float(total)


def _flat_views(flat, leaves):
    """Views of ``flat`` shaped like ``leaves``, consecutive in order."""
    out, k = [], 0
    for leaf in leaves:
        out.append(flat[k:k + leaf.size].reshape(leaf.shape))
        k += leaf.size
    return out


def flat_params(params):
    """Copy a pytree of float arrays into one contiguous buffer; return it and views into it.

    Optimizers built on the returned views update the whole buffer with one
    NumPy call per formula instead of one per array.

    Parameters
    ----------
    params : pytree of float ndarrays
        All of one dtype.

    Returns
    -------
    flat : ndarray
        1-D buffer holding every parameter, in pytree order.
    views : pytree
        The structure of ``params``, each leaf a view into ``flat``.

    Examples
    --------
    >>> import numpy as np
    >>> from tapediff.optim import flat_params
    >>> flat, w = flat_params({"W": np.ones((2, 2)), "b": np.zeros(2)})
    >>> flat
    array([1., 1., 1., 1., 0., 0.])
    >>> w["b"] += 5.0
    >>> flat
    array([1., 1., 1., 1., 5., 5.])
    """
    leaves, treedef, paths = _float_leaves(params, "params")
    dtype = _common_dtype(leaves, paths)
    flat = np.concatenate([leaf.ravel() for leaf in leaves]).astype(dtype, copy=False)
    return flat, pytree.unflatten(treedef, _flat_views(flat, leaves))


def _common_dtype(leaves, paths):
    dtype = leaves[0].dtype
    for path, leaf in zip(paths, leaves):
        if leaf.dtype != dtype:
            raise TypeError(f"{path} has dtype {leaf.dtype} but {paths[0]} has {dtype}: the "
                            "optimizer keeps one flat buffer per state, so all parameters "
                            f"must share a dtype (cast with .astype({dtype}))")
    return dtype


def _shared_buffer(leaves):
    """The 1-D slice of one buffer that the leaves tile consecutively, or None.

    True for the views :func:`flat_params` returns; then updates can run on
    that slice in one call."""
    if len(leaves) == 1 and leaves[0].flags.c_contiguous:
        return leaves[0].reshape(-1)
    base = leaves[0].base
    if not (isinstance(base, np.ndarray) and base.ndim == 1 and base.flags.c_contiguous
            and base.flags.writeable):
        return None
    start = leaves[0].ctypes.data - base.ctypes.data
    pos = leaves[0].ctypes.data
    for leaf in leaves:
        if leaf.base is not base or not leaf.flags.c_contiguous or leaf.ctypes.data != pos:
            return None
        pos += leaf.nbytes
    i = start // base.itemsize
    return base[i:i + (pos - leaves[0].ctypes.data) // base.itemsize]


# ---------------------------------------------------------------- schedules
def constant(value):
    """Schedule returning ``value`` at every step.

    Examples
    --------
    >>> from tapediff.optim import schedules
    >>> schedules.constant(0.1)(1000)
    0.1
    """
    value = float(value)
    return lambda step: value


def exponential_decay(init, decay_rate, decay_steps, staircase=False):
    """Schedule ``init * decay_rate ** (step / decay_steps)``.

    With ``staircase=True`` the exponent is ``step // decay_steps`` (the rate
    drops every ``decay_steps`` steps).

    Examples
    --------
    >>> from tapediff.optim import schedules
    >>> lr = schedules.exponential_decay(1.0, 0.5, decay_steps=10)
    >>> lr(0), lr(10), lr(20)
    (1.0, 0.5, 0.25)
    """
    init, decay_rate = float(init), float(decay_rate)

    def lr(step):
        e = step // decay_steps if staircase else step / decay_steps
        return init * decay_rate ** e
    return lr


def cosine_decay(init, decay_steps, alpha=0.0):
    """Cosine decay from ``init`` to ``alpha * init`` over ``decay_steps`` steps, then constant.

    ``init * ((1 - alpha) * (1 + cos(pi * min(step, decay_steps) / decay_steps)) / 2 + alpha)``
    (Loshchilov and Hutter's SGDR without restarts; optax's ``cosine_decay_schedule``).

    Examples
    --------
    >>> from tapediff.optim import schedules
    >>> lr = schedules.cosine_decay(1.0, decay_steps=100)
    >>> lr(0), round(lr(50), 12), lr(100), lr(500)
    (1.0, 0.5, 0.0, 0.0)
    """
    init, alpha = float(init), float(alpha)

    def lr(step):
        c = 0.5 * (1.0 + math.cos(math.pi * min(step, decay_steps) / decay_steps))
        return init * ((1.0 - alpha) * c + alpha)
    return lr


def warmup_linear(peak, warmup_steps, decay_steps=0, end=0.0):
    """Linear warmup from 0 to ``peak`` over ``warmup_steps``, then linear decay to ``end``.

    The decay takes ``decay_steps`` steps (0: stay at ``peak``) and then stays
    at ``end``. With ``end=0`` this is the schedule of BERT-style training
    (``transformers.get_linear_schedule_with_warmup`` with
    ``num_training_steps = warmup_steps + decay_steps``); the first update has
    learning rate 0.

    Examples
    --------
    >>> from tapediff.optim import schedules
    >>> lr = schedules.warmup_linear(1.0, warmup_steps=4, decay_steps=10)
    >>> [lr(s) for s in (0, 2, 4, 9, 14, 20)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    """
    peak, end = float(peak), float(end)

    def lr(step):
        if step < warmup_steps:
            return peak * step / warmup_steps
        if not decay_steps:
            return peak
        return peak + (end - peak) * min(step - warmup_steps, decay_steps) / decay_steps
    return lr


#: Learning-rate schedules: callables of the number of updates done so far.
schedules = SimpleNamespace(constant=constant, exponential_decay=exponential_decay,
                            cosine_decay=cosine_decay, warmup_linear=warmup_linear)


# ---------------------------------------------------------------- optimizers
class Optimizer:
    """Base class: flat state buffers, gradient checks, clipping, schedules, state dicts.

    Subclasses name their state buffers in ``_kinds`` and implement two
    functions that together are the update rule:

    * ``_scalars(lr, t)``: the numbers that change from step to step (the
      learning rate, bias corrections), as a tuple of floats, for the 1-based
      step number ``t``;
    * ``_rule(g, theta, state, sc)``: the new parameters and the new state
      (a dict by kind) from the gradient, the parameters, the state and those
      numbers. It is written with NumPy calls only and never modifies its
      arguments, so the same code updates arrays here and is recorded as part
      of a fused training step (:func:`tapediff.train_step`), where ``sc`` is
      a tape input and every array is one parameter's slice.

    Parameters
    ----------
    params : pytree of float ndarrays
        Updated in place by :meth:`step`; all of one dtype.
    lr : float or callable
        Learning rate (> 0), or a schedule ``lr(step)`` of the number of
        updates done so far returning a float >= 0.
    weight_decay : float
        L2 penalty coefficient (its meaning is the subclass's).
    max_grad_norm : float, optional
        Clip the gradients to this global L2 norm before each update (see
        :func:`clip_grad_norm`).
    check_finite : bool
        Raise ``FloatingPointError`` naming the array when a gradient holds
        NaN or inf (costs one pass over the gradients).
    maximize : bool
        Ascend instead of descend (the gradient's sign is flipped before the
        update, as torch's ``maximize=True``).

    Examples
    --------
    >>> import numpy as np
    >>> from tapediff.optim import Adam
    >>> w = [np.zeros(2)]
    >>> opt = Adam(w, lr=0.1)
    >>> opt.step([np.array([1.0, -1.0])])
    >>> w[0], opt.step_count
    (array([-0.1,  0.1]), 1)
    """

    _kinds = ()

    def __init__(self, params, lr, weight_decay=0.0, max_grad_norm=None, check_finite=False,
                 maximize=False):
        leaves, self._treedef, self._paths = _float_leaves(params, "params")
        dtype = _common_dtype(leaves, self._paths)
        self._params = leaves
        self._shapes = [p.shape for p in leaves]
        self._flat = _shared_buffer(leaves)
        self.size = sum(p.size for p in leaves)
        if callable(lr):
            self._lr = lr
        else:
            value = _positive("lr", lr, allow_zero=False)
            self._lr = lambda step: value
        self.weight_decay = _positive("weight_decay", weight_decay)
        self.max_grad_norm = (None if max_grad_norm is None else
                              _positive("max_grad_norm", max_grad_norm, allow_zero=False))
        self.check_finite = check_finite
        self.maximize = bool(maximize)
        self.step_count = 0
        self._state = {k: np.zeros(self.size, dtype) for k in self._kinds}
        self._g = np.empty(self.size, dtype)
        self._g_leaves = _flat_views(self._g, leaves)
        self._theta = self._flat if self._flat is not None else np.empty(self.size, dtype)

    # -------------------------------------------------------------- public
    @property
    def params(self):
        """The parameter pytree being optimised (the caller's arrays)."""
        return pytree.unflatten(self._treedef, self._params)

    @property
    def grad_buffers(self):
        """A gradient pytree of views into the optimizer's flat gradient buffer.

        Writing gradients here (e.g. as a backend's ``out=``) and passing this
        very pytree to :meth:`step` saves one copy. :meth:`step` overwrites it.
        """
        return pytree.unflatten(self._treedef, self._g_leaves)

    @property
    def state(self):
        """Each state buffer as a pytree of views shaped like the parameters."""
        return {k: pytree.unflatten(self._treedef, _flat_views(buf, self._params))
                for k, buf in self._state.items()}

    def lr_at(self, step):
        """The learning rate of update number ``step`` (0-based), checked finite and >= 0."""
        lr = self._lr(step)
        if not (isinstance(lr, (int, float, np.floating)) and math.isfinite(lr) and lr >= 0):
            raise ValueError(f"the learning-rate schedule returned {lr!r} at step {step}; it "
                             "must return a finite float >= 0")
        return float(lr)

    def step(self, grads):
        """Update the parameters in place from gradients shaped like them.

        Parameters
        ----------
        grads : pytree
            The structure of ``params``, each leaf an array of its
            parameter's shape (values are copied, or taken as they are when
            ``grads`` is :attr:`grad_buffers`).
        """
        g = self._gather(grads)
        if self.check_finite and not np.isfinite(g).all():
            bad = next(p for p, v in zip(self._paths, self._g_leaves) if not np.isfinite(v).all())
            raise FloatingPointError(
                f"the gradient of {bad.replace('params', 'grads', 1)} holds NaN or inf at step "
                f"{self.step_count}; parameters were not updated (check the loss for overflow, "
                "lower the learning rate or set max_grad_norm)")
        if self.max_grad_norm is not None:
            g = g * clip_factor([g], self.max_grad_norm)
        sc = self.scalars()
        self.step_count += 1
        theta = self._theta
        if self._flat is None:
            np.concatenate([p.ravel() for p in self._params], out=theta)
        theta_new, state = self._rule(g, theta, self._state, sc)
        for k, buf in self._state.items():
            if state[k] is not buf:
                np.copyto(buf, state[k])
        if self._flat is not None:
            np.copyto(theta, theta_new)
            return
        for p, t in zip(self._params, _flat_views(theta_new, self._params)):
            np.copyto(p, t)

    def _signed(self, g):
        return -g if self.maximize else g

    def scalars(self):
        """The step-dependent numbers of the next update (:meth:`step` number
        ``step_count + 1``) as a tuple of floats: what ``_rule`` reads as ``sc``."""
        return self._scalars(self.lr_at(self.step_count), self.step_count + 1)

    def _gather(self, grads):
        """The gradients as the flat buffer ``self._g``, checked against the parameters."""
        leaves, treedef = pytree.flatten(grads)
        if len(leaves) == len(self._g_leaves) and all(
                a is b for a, b in zip(leaves, self._g_leaves)):
            return self._g
        if treedef != self._treedef:
            raise ValueError(
                "grads must have the structure of params: got leaves "
                f"{pytree.leaf_paths(treedef, 'grads')} for parameters {self._paths} (pass the "
                "gradient that value_and_grad returns for the params argument)")
        for path, g, shape in zip(self._paths, leaves, self._shapes):
            if np.shape(g) != shape:
                raise ValueError(f"{path.replace('params', 'grads', 1)} has shape "
                                 f"{np.shape(g)} but {path} has shape {shape}; pass the "
                                 "gradient of each parameter")
        np.concatenate([np.ravel(g) for g in leaves], out=self._g)
        return self._g

    def state_dict(self):
        """The optimizer's state as a flat dict of NumPy arrays and scalars.

        It can be saved with ``np.savez(path, **opt.state_dict())`` and
        restored with :meth:`load_state_dict`; training then resumes
        bit-identically (the parameters are the caller's to save).
        Hyperparameters are not included: build the new optimizer with the same
        arguments.

        Examples
        --------
        >>> import io, numpy as np
        >>> from tapediff.optim import Adam
        >>> opt = Adam([np.ones(2)], lr=0.1)
        >>> opt.step([np.ones(2)])
        >>> f = io.BytesIO(); np.savez(f, **opt.state_dict()); _ = f.seek(0)
        >>> fresh = Adam([np.ones(2)], lr=0.1)
        >>> fresh.load_state_dict(np.load(f))
        >>> fresh.step_count, fresh.state["m"][0]
        (1, array([0.1, 0.1]))
        """
        d = {"optimizer": type(self).__name__, "step_count": np.int64(self.step_count),
             "size": np.int64(self.size)}
        d.update((k, buf.copy()) for k, buf in self._state.items())
        return d

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict` (a dict, or the mapping ``np.load`` returns)."""
        kind, size = str(state["optimizer"]), int(state["size"])
        if kind != type(self).__name__:
            raise ValueError(f"state is from a {kind} optimizer; load it into a {kind}, not a "
                             f"{type(self).__name__}")
        if size != self.size:
            raise ValueError(f"state is for {size} parameters but this optimizer has "
                             f"{self.size}: build it on the same params")
        for k, buf in self._state.items():
            if k not in state or np.shape(state[k]) != buf.shape:
                raise ValueError(f"state has no {k!r} buffer of {self.size} entries: it was "
                                 "saved by an optimizer with other options (momentum, "
                                 "amsgrad, centered)")
            buf[...] = state[k]
        self.step_count = int(state["step_count"])

    def __repr__(self):
        return (f"<{type(self).__name__}: {self.size} parameters in {len(self._params)} "
                f"arrays, {self.step_count} steps>")


def _decayed(g, theta, weight_decay):
    """``g + weight_decay * theta``: the L2 penalty's gradient (torch's coupled weight
    decay)."""
    return g + weight_decay * theta if weight_decay else g


def _global_norm(grads):
    """``sqrt`` of the sum of every squared entry, as NumPy calls (also traceable)."""
    sq = None
    for g in grads:
        s = np.sum(g * g)
        sq = s if sq is None else sq + s
    return np.sqrt(sq)


def _norm_factor(norm, max_norm):
    """``min(1, max_norm / (norm + 1e-6))``: the 1e-6 keeps a zero norm finite,
    as torch's clip_grad_norm_; a NaN norm gives NaN."""
    return np.minimum(max_norm / (norm + 1e-6), 1.0)


def clip_factor(grads, max_norm):
    """The factor :func:`clip_grad_norm` scales by, as NumPy calls on the arrays
    ``grads`` (so that a fused train step records it on its tape)."""
    return _norm_factor(_global_norm(grads), max_norm)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and Nesterov momentum.

    As ``torch.optim.SGD``: with ``g = grad + weight_decay * theta``,
    ``b_1 = g``, ``b_t = momentum * b_{t-1} + (1 - dampening) * g``, the step
    is ``theta -= lr * d`` with ``d = g + momentum * b_t`` (``nesterov``),
    ``d = b_t`` (``momentum > 0``) or ``d = g``.

    Parameters
    ----------
    params, lr, weight_decay, max_grad_norm, check_finite, maximize
        See :class:`Optimizer`.
    momentum : float
        Momentum factor (>= 0).
    dampening : float
        Damps the gradient's share of the momentum after the first step, in [0, 1].
    nesterov : bool
        Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).

    Examples
    --------
    >>> import numpy as np
    >>> from tapediff.optim import SGD
    >>> w = [np.array([1.0])]
    >>> opt = SGD(w, lr=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     opt.step([np.array([1.0])])
    >>> w[0]          # 1 - 0.1 * 1 - 0.1 * (0.9 + 1)
    array([0.71])
    """

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0, **options):
        self.momentum = _positive("momentum", momentum)
        self.dampening = _positive("dampening", dampening)
        if self.dampening > 1.0:
            raise ValueError(f"dampening={dampening!r} must lie in [0, 1]")
        if nesterov and (not self.momentum or self.dampening):
            raise ValueError("nesterov=True needs momentum > 0 and dampening=0")
        self.nesterov = nesterov
        self._kinds = ("momentum",) if self.momentum else ()
        super().__init__(params, lr, weight_decay, **options)

    def _scalars(self, lr, t):
        # the gradient's weight in the momentum: torch's first step copies it undamped
        return lr, 1.0 if t == 1 else 1.0 - self.dampening

    def _rule(self, g, theta, state, sc):
        lr, share = sc
        g = _decayed(self._signed(g), theta, self.weight_decay)
        if not self.momentum:
            return theta - lr * g, {}
        # the buffer starts at zero, so the first step gives b = g as torch's does
        b = self.momentum * state["momentum"] + (share * g if self.dampening else g)
        d = g + self.momentum * b if self.nesterov else b
        return theta - lr * d, {"momentum": b}


class Adam(Optimizer):
    """Adam (Kingma and Ba), optionally AMSGrad, as ``torch.optim.Adam``.

    With ``g = grad + weight_decay * theta`` (an L2 penalty; see
    :class:`AdamW` for decoupled decay)::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        v_max = max(v_max, v)                      # amsgrad only; used for v below
        theta -= lr / (1 - beta1**t) * (m / (sqrt(v) / sqrt(1 - beta2**t) + eps))

    Parameters
    ----------
    params, lr, weight_decay, max_grad_norm, check_finite, maximize
        See :class:`Optimizer`.
    betas : (float, float)
        Decay rates of the first and second moment, each in [0, 1).
    eps : float
        Added to the denominator (>= 0).
    amsgrad : bool
        Use the running maximum of the second moment (Reddi et al.).

    Examples
    --------
    >>> import numpy as np
    >>> from tapediff.optim import Adam
    >>> w = {"x": np.array([0.0, 0.0])}
    >>> opt = Adam(w, lr=0.01)
    >>> opt.step({"x": np.array([2.0, -0.5])})   # the first step has size lr per entry
    >>> w["x"]
    array([-0.01,  0.01])
    """

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, **options):
        if len(betas) != 2:
            raise ValueError(f"betas={betas!r} must be a pair (beta1, beta2)")
        self.betas = (_unit("betas[0]", betas[0]), _unit("betas[1]", betas[1]))
        self.eps = _positive("eps", eps)
        self.amsgrad = amsgrad
        self._kinds = ("m", "v", "v_max") if amsgrad else ("m", "v")
        super().__init__(params, lr, weight_decay, **options)

    def _scalars(self, lr, t):
        b1, b2 = self.betas
        # step size with the first moment's bias correction, the second
        # moment's correction (divided out of sqrt(v)), and the decoupled decay
        return lr / (1.0 - b1 ** t), math.sqrt(1.0 - b2 ** t), 1.0 - lr * self.weight_decay

    def _rule(self, g, theta, state, sc):
        step, corr2, decay = sc
        b1, b2 = self.betas
        g = self._signed(g)
        if not self._decoupled:
            g = _decayed(g, theta, self.weight_decay)
        elif self.weight_decay:
            theta = theta * decay
        new = {"m": b1 * state["m"] + (1.0 - b1) * g,
               "v": b2 * state["v"] + (1.0 - b2) * (g * g)}
        v = new["v"]
        if self.amsgrad:
            v = new["v_max"] = np.maximum(state["v_max"], v)
        return theta - new["m"] / (np.sqrt(v) / corr2 + self.eps) * step, new


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), as ``torch.optim.AdamW``.

    Each step first shrinks the parameters, ``theta *= 1 - lr * weight_decay``,
    then takes the :class:`Adam` step on the raw gradient (no L2 term in
    ``g``). Same parameters as :class:`Adam`; ``weight_decay`` defaults to
    0.01 as in PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> from tapediff.optim import AdamW
    >>> w = [np.array([1.0])]
    >>> AdamW(w, lr=0.1, weight_decay=0.5).step([np.array([0.0])])
    >>> w[0]           # 1 * (1 - 0.1 * 0.5), and no Adam step for a zero gradient
    array([0.95])
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, **options):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, **options)


class RMSprop(Optimizer):
    """RMSprop (Hinton), optionally centered and with momentum, as ``torch.optim.RMSprop``.

    With ``g = grad + weight_decay * theta``::

        v = alpha * v + (1 - alpha) * g**2
        g_avg = alpha * g_avg + (1 - alpha) * g        # centered only
        d = sqrt(v - g_avg**2) + eps                   # sqrt(v) + eps if not centered
        b = momentum * b + g / d;  theta -= lr * b     # momentum > 0
        theta -= lr * (g / d)                          # otherwise

    Parameters
    ----------
    params, lr, weight_decay, max_grad_norm, check_finite, maximize
        See :class:`Optimizer`.
    alpha : float
        Smoothing constant in [0, 1).
    eps : float
        Added to the denominator (>= 0).
    momentum : float
        Momentum factor (>= 0).
    centered : bool
        Normalise by the estimated variance of the gradient instead of its
        second moment.

    Examples
    --------
    >>> import numpy as np
    >>> from tapediff.optim import RMSprop
    >>> w = [np.array([1.0])]
    >>> RMSprop(w, lr=0.01, alpha=0.75, eps=0.0).step([np.array([3.0])])
    >>> w[0]           # 1 - 0.01 * 3 / sqrt(0.25 * 9)
    array([0.98])
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, centered=False,
                 weight_decay=0.0, **options):
        self.alpha = _unit("alpha", alpha)
        self.eps = _positive("eps", eps)
        self.momentum = _positive("momentum", momentum)
        self.centered = centered
        self._kinds = ("v",) + ("g_avg",) * centered + ("momentum",) * bool(self.momentum)
        super().__init__(params, lr, weight_decay, **options)

    def _scalars(self, lr, t):
        return (lr,)

    def _rule(self, g, theta, state, sc):
        (lr,) = sc
        a = self.alpha
        g = _decayed(self._signed(g), theta, self.weight_decay)
        new = {"v": a * state["v"] + (1.0 - a) * (g * g)}
        if self.centered:
            new["g_avg"] = a * state["g_avg"] + (1.0 - a) * g
            d = g / (np.sqrt(new["v"] - new["g_avg"] * new["g_avg"]) + self.eps)
        else:
            d = g / (np.sqrt(new["v"]) + self.eps)
        if self.momentum:
            d = new["momentum"] = self.momentum * state["momentum"] + d
        return theta - lr * d, new
