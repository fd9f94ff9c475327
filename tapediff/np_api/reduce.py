"""Reductions: ``np.sum`` and composites built on it."""
import numpy as np

from ..numpy_dispatch import UFUNC_METHODS, implements
from ..ops.reduce import COUNT_NONZERO, SUM, norm_axis
from ..tracer import bind


@implements(np.sum)
def sum_(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=True):
    if where is not True:
        a = np.where(where, a, 0)
    if dtype is not None:
        a = a.astype(dtype)
    r = bind(SUM, a, axis=norm_axis(axis, a.ndim), keepdims=bool(keepdims))
    if initial is not None:
        r = r + initial
    if out is not None:
        out[...] = r
        return out
    return r


UFUNC_METHODS[(np.add, "reduce")] = lambda a, axis=0, dtype=None, out=None, keepdims=False, \
    **kw: sum_(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **kw)


@implements(np.mean)
def mean(a, axis=None, dtype=None, out=None, keepdims=False, where=True):
    axes = norm_axis(axis, a.ndim)
    n = 1
    for ax in axes:
        n *= a.shape[ax]
    if a.dtype.kind in "biu" and dtype is None:
        dtype = np.float64
    r = sum_(a, axis=axis, dtype=dtype, keepdims=keepdims) / n
    if out is not None:
        out[...] = r
        return out
    return r


@implements(np.count_nonzero)
def count_nonzero(a, axis=None, keepdims=False):
    if axis is not None or keepdims:
        return sum_(a != 0, axis=axis, keepdims=keepdims)
    return bind(COUNT_NONZERO, a)
