"""Reductions with axis/keepdims, cumulative ops, and inactive arg-reductions."""
import numpy as np

from .registry import Aval, defop


def norm_axis(axis, ndim):
    """A sorted tuple of non-negative axes (``None`` means all)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    out = []
    for a in axis:
        a = int(a)
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(a, ndim)
        out.append(a % ndim)
    return tuple(sorted(out))


def reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def expand_to(g, shape, axes, keepdims):
    """Broadcast a reduced cotangent back to the argument's shape."""
    if not keepdims:
        g = np.reshape(g, reduced_shape(shape, axes, True))
    return np.broadcast_to(g, shape)


def _sum_shape(x, axis, keepdims):
    dt = np.add.reduce(np.zeros(1, x.dtype)).dtype if x.dtype.kind in "biu" else x.dtype
    return Aval(reduced_shape(x.shape, axis, keepdims), dt)


SUM = defop(
    "sum", lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
    shape=_sum_shape,
    vjp=lambda needs, g, out, x, axis, keepdims: (expand_to(g, np.shape(x), axis, keepdims),),
    jvp=lambda t, out, x, axis, keepdims: np.sum(t[0], axis=axis, keepdims=keepdims))

COUNT_NONZERO = defop(
    "count_nonzero", lambda x: np.int64(np.count_nonzero(x)), inactive=True,
    shape=lambda x: Aval((), np.dtype(np.int64)))
