"""Reductions, scans, sorting and searching: handlers for NumPy's API.

Primitives (rules in :mod:`tapediff.ops.reduce`): sum, prod, max, min, cumsum,
cumprod, sort, and the inactive argmax, argmin, argsort, searchsorted, all,
any, count_nonzero, argwhere. Everything else is a composite of those and of
elementwise ops (mean, var, std, ptp, average, the nan* family, nonzero).

``out=`` is honoured by writing the result into ``out`` (a tracked ``out``
records the write; a plain ndarray only takes inactive results, as
everywhere in tapediff).
"""
import operator

import numpy as np

from ..errors import UnsupportedOperation
from ..numpy_dispatch import UFUNC_METHODS, astype, implements
from ..ops.indexing import GETITEM
from ..ops.reduce import (ALL, ANY, ARGMAX, ARGMIN, ARGPARTITION, ARGSORT, ARGWHERE,
                          COUNT_NONZERO, CUMMAX, CUMMIN, CUMPROD, CUMSUM, MAX, MIN, PARTITION,
                          PROD, SEARCHSORTED, SORT, SUM, norm_axis, norm_axis1, reduced_shape)
from ..tracer import Tracked, bind
from ..tracer import operand as _arr


# ---------------------------------------------------------------- helpers
def _cast(a, dtype):
    """``a`` in ``dtype`` (None: as it is). Also applied to a sum's or
    product's result, which small integers accumulate in int64: NumPy
    accumulates in the ``dtype`` asked for, and wrapping integer arithmetic
    gives the int64 result cast (a bool sum is their ``or``)."""
    return a if dtype is None or np.dtype(dtype) == a.dtype else astype(a, dtype)


def _size(shape, axes):
    n = 1
    for ax in axes:
        n *= shape[ax]
    return n


def _store(out, r, name):
    """Write ``r`` into ``out`` (NumPy's ``out=``), or return ``r``."""
    if out is None:
        return r
    if isinstance(out, tuple):
        if len(out) != 1:
            raise ValueError(f"{name}: out must be a single array")
        out = out[0]
    if not hasattr(out, "shape") or not hasattr(out, "__setitem__"):
        raise TypeError(f"{name}: out must be an array, got {type(out).__name__}")
    if tuple(out.shape) != tuple(np.shape(r)):
        raise ValueError(f"{name}: output array has shape {tuple(out.shape)}, the result has "
                         f"shape {tuple(np.shape(r))}")
    out[...] = r
    return out


def _no_order(name, order):
    if order is not None:
        raise UnsupportedOperation(f"{name}(..., order=...) is not supported by tapediff "
                                   "(structured arrays); sort by a field with argsort on it")


def _masked(a, where, fill):
    """``a`` with the ``where=False`` elements replaced by ``fill``."""
    if where is True:
        return a
    return np.where(where, a, fill)


def _count(a, axes, keepdims, where, dtype):
    """Number of elements reduced into each result (``where=`` counts only True)."""
    if where is True:
        return _size(a.shape, axes)
    w = np.broadcast_to(where, a.shape)
    return _cast(sum_(w, axis=axes, keepdims=keepdims), dtype)


def _is_float(a):
    return a.dtype.kind == "f"


def _ufunc_axes(axis, ndim):
    """``axis`` of a ufunc reduction (sum, prod, max, min, all, any) as a
    sorted tuple. NumPy keeps a legacy rule there: a 0-d array takes the
    integer axis 0 or -1 (not a tuple) as no axis."""
    if ndim == 0 and not isinstance(axis, tuple) and axis is not None \
            and operator.index(axis) in (0, -1):
        return ()
    return norm_axis(axis, ndim)


def _ravel_0d(a, axis):
    """``(a, axis)`` as NumPy's scans, sorts and arg-reductions see them: a 0-d
    array is one element long along axis 0 (so ``axis`` 0 and -1 are valid)."""
    if a.ndim == 0 and axis is not None:
        norm_axis1(axis, 1)
        return np.reshape(a, (1,)), 0
    return a, axis


# ---------------------------------------------------------------- sum, prod, mean
@implements(np.sum)
def sum_(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=True):
    a = _cast(_arr(a), dtype)
    a = _masked(a, where, 0)
    r = _cast(bind(SUM, a, axis=_ufunc_axes(axis, a.ndim), keepdims=bool(keepdims)), dtype)
    if initial is not None:
        r = r + initial
    return _store(out, r, "np.sum")


@implements(np.prod)
def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=True):
    a = _cast(_arr(a), dtype)
    a = _masked(a, where, 1)
    r = _cast(bind(PROD, a, axis=_ufunc_axes(axis, a.ndim), keepdims=bool(keepdims)),
                  dtype)
    if initial is not None:
        r = r * initial
    return _store(out, r, "np.prod")


@implements(np.mean)
def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=True):
    a = _arr(a)
    axes = norm_axis(axis, a.ndim)
    if dtype is None and a.dtype.kind in "biu":
        dtype = np.float64
    s = sum_(a, axis=axes, dtype=dtype, keepdims=keepdims, where=where)
    r = s / _count(a, axes, keepdims, where, s.dtype)
    return _store(out, r, "np.mean")


# ---------------------------------------------------------------- max, min, ptp
def _extremum(op, ufname, name):
    def handler(a, axis=None, out=None, keepdims=False, initial=None, where=True):
        a = _arr(a)
        axes = _ufunc_axes(axis, a.ndim)
        if where is not True:
            if initial is None:
                raise ValueError(f"reduction operation '{ufname}' does not have an identity, "
                                 "so to use a where mask one has to specify 'initial'")
            a = np.where(where, a, initial)
        if initial is not None and type(initial) is not Tracked:
            initial = np.asarray(initial, dtype=a.dtype)
        if initial is not None and _size(a.shape, axes) == 0:
            r = np.broadcast_to(initial, reduced_shape(a.shape, axes, keepdims)).astype(a.dtype)
        else:
            r = bind(op, a, axis=axes, keepdims=bool(keepdims))
            if initial is not None:
                r = (np.maximum if ufname == "maximum" else np.minimum)(r, initial)
        return _store(out, r, name)
    handler.__name__ = name.split(".")[-1]
    return handler


max_ = implements(np.max, np.amax)(_extremum(MAX, "maximum", "np.max"))
min_ = implements(np.min, np.amin)(_extremum(MIN, "minimum", "np.min"))


@implements(np.ptp)
def ptp(a, axis=None, out=None, keepdims=False):
    a = _arr(a)
    return _store(out, max_(a, axis=axis, keepdims=keepdims) - min_(a, axis=axis,
                                                                    keepdims=keepdims), "np.ptp")


# ---------------------------------------------------------------- var, std
def _ddof(ddof, correction, name):
    if correction is not None:
        if ddof != 0:
            raise ValueError("ddof and correction can't be provided simultaneously.")
        return correction
    return ddof


def _var(a, axis, dtype, ddof, keepdims, where, mean_):
    a = _arr(a)
    axes = norm_axis(axis, a.ndim)
    if dtype is None and a.dtype.kind in "biu":
        dtype = np.float64
    a = _cast(a, dtype)
    if mean_ is None:
        mean_ = sum_(a, axis=axes, keepdims=True, where=where) / _count(a, axes, True, where,
                                                                          a.dtype)
    d = _masked(a - mean_, where, 0)   # masked-out (NaN) elements stay out of the rules too
    s = sum_(d * d, axis=axes, keepdims=keepdims)
    n = _count(a, axes, keepdims, where, s.dtype)
    dof = max(n - ddof, 0) if where is True else np.maximum(n - ddof, 0)
    return s / dof


@implements(np.var)
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=True, mean=None,
        correction=None):
    r = _var(a, axis, dtype, _ddof(ddof, correction, "np.var"), keepdims, where, mean)
    return _store(out, r, "np.var")


@implements(np.std)
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=True, mean=None,
        correction=None):
    r = np.sqrt(_var(a, axis, dtype, _ddof(ddof, correction, "np.std"), keepdims, where, mean))
    return _store(out, r, "np.std")


# ---------------------------------------------------------------- average
@implements(np.average)
def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    a = _arr(a)
    axes = None
    if axis is not None:   # NumPy's order: the weights' axes follow it
        axis = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
        norm_axis(axis, a.ndim)
        axes = tuple(operator.index(x) % a.ndim for x in axis)
    if weights is None:
        avg = mean(a, axis=axes, keepdims=keepdims)
        scl = None
        if returned:
            scl = avg.dtype.type(a.size / int(np.prod(np.shape(avg))))
    else:
        w = _arr(weights)
        if a.dtype.kind in "biu":
            rdt = np.result_type(a.dtype, w.dtype, "f8")
        else:
            rdt = np.result_type(a.dtype, w.dtype)
        if a.shape != w.shape:
            if axes is None:
                raise TypeError("Axis must be specified when shapes of a and weights differ.")
            if w.shape != tuple(a.shape[ax] for ax in axes):
                raise ValueError("Shape of weights must be consistent with shape of a along "
                                 "specified axis.")
            w = np.transpose(w, tuple(int(i) for i in np.argsort(axes)))
            w = np.reshape(w, tuple(s if ax in axes else 1 for ax, s in enumerate(a.shape)))
        scl = sum_(w, axis=axes, dtype=rdt, keepdims=keepdims)
        if np.any(scl == 0.0):      # a guard when the weights are replayed inputs
            raise ZeroDivisionError("Weights sum to zero, can't be normalized")
        avg = sum_(_cast(a, rdt) * _cast(w, rdt), axis=axes, keepdims=keepdims) / scl
    if returned:
        if np.shape(scl) != np.shape(avg):
            scl = np.broadcast_to(scl, np.shape(avg)).copy()
        return avg, scl
    return avg


# ---------------------------------------------------------------- nan-ignoring
def _notnan_fill(a, fill):
    a = _arr(a)
    return np.where(np.isnan(a), fill, a) if _is_float(a) else a


@implements(np.nansum)
def nansum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=True):
    return sum_(_notnan_fill(a, 0), axis, dtype, out, keepdims, initial, where)


@implements(np.nanprod)
def nanprod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=True):
    return prod(_notnan_fill(a, 1), axis, dtype, out, keepdims, initial, where)


@implements(np.nancumsum)
def nancumsum(a, axis=None, dtype=None, out=None):
    return cumsum(_notnan_fill(a, 0), axis, dtype, out)


@implements(np.nancumprod)
def nancumprod(a, axis=None, dtype=None, out=None):
    return cumprod(_notnan_fill(a, 1), axis, dtype, out)


@implements(np.nanmean)
def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=True):
    a = _arr(a)
    if not _is_float(a):
        return mean(a, axis, dtype, out, keepdims, where=where)
    ok = ~np.isnan(a) if where is True else (~np.isnan(a)) & where
    # NumPy's nanmean and nanvar sum with np.sum: its 0-d axis rule applies
    return mean(np.where(ok, a, 0), _ufunc_axes(axis, a.ndim), dtype, out, keepdims, where=ok)


def _nanvar(a, axis, dtype, ddof, keepdims, where, mean_, correction):
    a = _arr(a)
    ok = ~np.isnan(a) if where is True else (~np.isnan(a)) & where
    return _var(np.where(ok, a, 0), _ufunc_axes(axis, a.ndim), dtype,
                _ddof(ddof, correction, "np.nanvar"), keepdims, ok, mean_)


@implements(np.nanvar)
def nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=True,
           mean=None, correction=None):
    if not _is_float(_arr(a)):
        return var(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean,
                   correction=correction)
    return _store(out, _nanvar(a, axis, dtype, ddof, keepdims, where, mean, correction),
                  "np.nanvar")


@implements(np.nanstd)
def nanstd(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=True,
           mean=None, correction=None):
    if not _is_float(_arr(a)):
        return std(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean,
                   correction=correction)
    return _store(out, np.sqrt(_nanvar(a, axis, dtype, ddof, keepdims, where, mean,
                                       correction)), "np.nanstd")


def _nanextremum(handler, fill, name):
    def h(a, axis=None, out=None, keepdims=False, initial=None, where=True):
        a = _arr(a)
        if not _is_float(a):
            return handler(a, axis, out, keepdims, initial, where)
        nan = np.isnan(a)
        r = handler(np.where(nan, fill, a), axis, None, keepdims, initial, where)
        r = np.where(all_(nan, axis=axis, keepdims=keepdims), np.nan, r)   # all-NaN slices
        return _store(out, r, name)
    h.__name__ = name.split(".")[-1]
    return h


nanmax = implements(np.nanmax)(_nanextremum(max_, -np.inf, "np.nanmax"))
nanmin = implements(np.nanmin)(_nanextremum(min_, np.inf, "np.nanmin"))


# ---------------------------------------------------------------- scans
def _scan(op, name):
    def h(a, axis=None, dtype=None, out=None):
        a = _cast(_arr(a), dtype)
        if axis is None:
            a = np.ravel(a)
            axis = 0
        a, axis = _ravel_0d(a, axis)
        return _store(out, _cast(bind(op, a, axis=norm_axis1(axis, a.ndim)), dtype), name)
    h.__name__ = name.split(".")[-1]
    return h


cumsum = implements(np.cumsum)(_scan(CUMSUM, "np.cumsum"))
cumprod = implements(np.cumprod)(_scan(CUMPROD, "np.cumprod"))


def _cumulative(scan, identity, name):
    """NumPy 2's ``cumulative_sum`` / ``cumulative_prod``: the scan, with
    ``include_initial`` the identity first."""
    def h(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
        x = _arr(x)
        if x.ndim == 0:
            x = np.reshape(x, (1,))
        if axis is None:
            if x.ndim >= 2:
                raise ValueError("For arrays which have more than one dimension ``axis`` "
                                 "argument is required.")
            axis = 0
        axis = norm_axis1(_accumulate_axis(x, axis), x.ndim)
        r = scan(x, axis=axis, dtype=dtype)
        if include_initial:
            shape = list(r.shape)
            shape[axis] = 1
            r = np.concatenate([np.full(tuple(shape), identity, r.dtype, like=r), r],
                               axis=axis)
        return _store(out, r, name)
    h.__name__ = name.split(".")[-1]
    return h


cumulative_sum = implements(np.cumulative_sum)(_cumulative(cumsum, 0, "np.cumulative_sum"))
cumulative_prod = implements(np.cumulative_prod)(_cumulative(cumprod, 1, "np.cumulative_prod"))


# ---------------------------------------------------------------- sorting and searching
def _kind(kind, stable):
    if stable is not None:
        if kind is not None:
            raise ValueError("`kind` and `stable` parameters can't be provided at the same time."
                             " Use only one of them.")
        return "stable" if stable else "quicksort"
    return "quicksort" if kind is None else kind


@implements(np.sort)
def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    _no_order("np.sort", order)
    np.sort(np.zeros(1), kind=_kind(kind, stable))  # NumPy's own check of ``kind``
    a = _arr(a)
    if axis is None:
        a, axis = np.ravel(a), 0
    return bind(SORT, a, axis=norm_axis1(axis, a.ndim))


@implements(np.argsort)
def argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    _no_order("np.argsort", order)
    a = _arr(a)
    if axis is None:
        a, axis = np.ravel(a), 0
    a, axis = _ravel_0d(a, axis)
    return bind(ARGSORT, a, axis=norm_axis1(axis, a.ndim), kind=_kind(kind, stable))


def _partition_args(a, kth, axis, kind, order, name):
    """``(a, kth, axis)`` of ``np.partition``/``argpartition``: ``a`` raveled
    for ``axis=None``, ``kth`` a tuple of non-negative ints, checked."""
    _no_order(name, order)
    if kind != "introselect":
        raise ValueError(f"{name}: kind must be 'introselect' (got {kind!r})")
    a = _arr(a)
    if axis is None:
        a, axis = np.ravel(a), 0
    if a.ndim == 0:
        raise ValueError("Cannot partition a 0-d array")
    axis = norm_axis1(axis, a.ndim)
    n = a.shape[axis]
    ks = np.asarray(kth)
    if ks.dtype.kind not in "iu":
        raise TypeError("Partition index must be integer")
    ks = tuple(int(k) for k in np.ravel(ks))
    for k in ks:
        if not -n <= k < n:
            raise ValueError(f"kth(={k}) out of bounds ({n})")
    return a, tuple(k % n for k in ks), axis


@implements(np.partition)
def partition(a, kth, axis=-1, kind="introselect", order=None):
    a, kth, axis = _partition_args(a, kth, axis, kind, order, "np.partition")
    return bind(PARTITION, a, kth=kth, axis=axis)


@implements(np.argpartition)
def argpartition(a, kth, axis=-1, kind="introselect", order=None):
    a, kth, axis = _partition_args(a, kth, axis, kind, order, "np.argpartition")
    return bind(ARGPARTITION, a, kth=kth, axis=axis)


@implements(np.lexsort)
def lexsort(keys, axis=-1):
    """Indirect stable sort on several keys, the last one primary: a stable
    argsort per key, from the first to the last, each ordering the
    permutation so far (so equal keys keep the earlier keys' order)."""
    if type(keys) is Tracked or isinstance(keys, np.ndarray):
        keys = [keys[i] for i in range(keys.shape[0])] if keys.ndim > 1 else [keys]
    keys = [_arr(k) for k in keys]
    if not keys:
        raise TypeError("need sequence of keys with len > 0 in lexsort")
    shape = keys[0].shape
    if any(k.shape != shape for k in keys):
        raise ValueError("all keys need to be the same shape")
    if not shape:
        return np.intp(0)
    axis = norm_axis1(axis, len(shape))
    order = argsort(keys[0], axis=axis, kind="stable")
    for k in keys[1:]:
        within = argsort(np.take_along_axis(k, order, axis=axis), axis=axis, kind="stable")
        order = np.take_along_axis(order, within, axis=axis)
    return order


@implements(np.searchsorted)
def searchsorted(a, v, side="left", sorter=None):
    """``np.searchsorted``: the inactive SEARCHSORTED primitive on ``a`` (made
    1-d and sorted by ``sorter``) and ``v``, both in NumPy's common dtype."""
    if side not in ("left", "right"):
        raise ValueError(f"search side must be 'left' or 'right' (got {side!r})")
    a, v = _arr(a), _arr(v)
    if a.ndim != 1:
        raise ValueError("object too deep for desired array" if a.ndim else
                         "object of too small depth for desired array")
    if sorter is not None:
        sorter = _arr(sorter)
        if sorter.dtype.kind not in "iu":
            raise TypeError("sorter must only contain integers")
        if sorter.shape != a.shape:
            raise ValueError("sorter.size must equal a.size")
        # NumPy checks only the entries its search reads; every entry is
        # checked here (for a tracked sorter, a guard)
        if sorter.size and (np.any(sorter < 0) or np.any(sorter >= a.shape[0])):
            raise ValueError("Sorter index out of range.")
        a = np.take(a, sorter)
    # NumPy compares in the common dtype of a and v, with a Python scalar v
    # taken as an array (a float32 a searched for 0.1 compares in float64)
    dt = np.promote_types(a.dtype, v.dtype)
    return bind(SEARCHSORTED, _cast(a, dt), _cast(v, dt), side=side)


def _argext(op, name):
    def h(a, axis=None, out=None, *, keepdims=False):
        a = _arr(a)
        if a.ndim == 0 and axis is not None:    # one element: NumPy's index is 0, 0-d
            norm_axis1(axis, 1)
            axis = None
        ax = None if axis is None else norm_axis1(axis, a.ndim)
        return _store(out, bind(op, a, axis=ax, keepdims=bool(keepdims)), name)
    h.__name__ = name.split(".")[-1]
    return h


argmax = implements(np.argmax)(_argext(ARGMAX, "np.argmax"))
argmin = implements(np.argmin)(_argext(ARGMIN, "np.argmin"))


def _nanargext(handler, fill, name):
    """``np.nanargmax`` / ``nanargmin``: NaN replaced by the fill that never
    wins; an all-NaN slice raises, as in NumPy (a guard when tracked)."""
    def h(a, axis=None, out=None, *, keepdims=False):
        a = _arr(a)
        if _is_float(a):
            nan = np.isnan(a)
            if nan.size and bool(np.any(np.all(nan, axis=axis))):
                raise ValueError("All-NaN slice encountered")
            a = np.where(nan, fill, a)
        return handler(a, axis, out, keepdims=keepdims)
    h.__name__ = name.split(".")[-1]
    return h


nanargmax = implements(np.nanargmax)(_nanargext(argmax, -np.inf, "np.nanargmax"))
nanargmin = implements(np.nanargmin)(_nanargext(argmin, np.inf, "np.nanargmin"))


def _logical(op, fill, name):
    def h(a, axis=None, out=None, keepdims=False, *, where=True):
        a = _masked(_arr(a), where, fill)
        return _store(out, bind(op, a, axis=_ufunc_axes(axis, a.ndim), keepdims=bool(keepdims)),
                      name)
    h.__name__ = name.split(".")[-1]
    return h


all_ = implements(np.all)(_logical(ALL, True, "np.all"))
any_ = implements(np.any)(_logical(ANY, False, "np.any"))


@implements(np.count_nonzero)
def count_nonzero(a, axis=None, *, keepdims=False):
    a = _arr(a)
    if axis is not None or keepdims:
        return sum_(a != 0, axis=axis, keepdims=keepdims)
    return bind(COUNT_NONZERO, a)


@implements(np.argwhere)
def argwhere(a):
    """Indices of the nonzero elements, ``(count, ndim)``.

    The count decides the shape, so it is guarded first (``int()`` of a
    replayed value records a ``guard_int``): a replay with another count fails
    over to a new recording instead of returning indices of the wrong length.
    """
    a = _arr(a)
    if type(a) is not Tracked:
        return np.argwhere(a)
    n = int(bind(COUNT_NONZERO, a))
    return bind(ARGWHERE, a, count=n)


@implements(np.nonzero)
def nonzero(a):
    a = _arr(a)
    if a.ndim == 0:
        raise ValueError("Calling nonzero on 0d arrays is not allowed. Use "
                         "np.atleast_1d(scalar).nonzero() instead.")
    w = argwhere(a)
    if type(w) is not Tracked:
        return tuple(w[:, k] for k in range(a.ndim))
    # copies of the columns in NumPy too: plain results, not views of ``w``
    return tuple(bind(GETITEM, w, index=(("s", None, None, None), ("i", k)))
                 for k in range(a.ndim))


@implements(np.flatnonzero)
def flatnonzero(a):
    return nonzero(np.ravel(_arr(a)))[0]


# ---------------------------------------------------------------- ufunc methods
def _ufunc_reduce(handler, name, has_dtype=True):
    def h(a, axis=0, dtype=None, out=None, keepdims=False, initial=None, where=True):
        a = _arr(a)
        if dtype is not None and not has_dtype:
            a = _cast(a, dtype)
        kw = {"dtype": dtype} if has_dtype else {}
        if initial is not None:
            kw["initial"] = initial
        if where is not True:
            kw["where"] = where
        return handler(a, axis=axis, out=out, keepdims=keepdims, **kw)
    h.__name__ = name
    return h


def _ufunc_logical(handler, name):
    def h(a, axis=0, dtype=None, out=None, keepdims=False, initial=None, where=True):
        if initial is not None:
            raise UnsupportedOperation(f"{name}(..., initial=...) is not supported by tapediff")
        return handler(a, axis=axis, out=out, keepdims=keepdims, where=where)
    h.__name__ = name
    return h


def _accumulate_axis(a, axis):
    """The one axis of a ufunc's ``accumulate``: an int, a 1-tuple, or None
    for a 1-d array (NumPy's forms)."""
    if isinstance(axis, tuple) and len(axis) == 1:
        axis = axis[0]
    if axis is None or isinstance(axis, tuple):
        if axis is None and np.ndim(a) == 1:
            return 0
        raise ValueError("accumulate does not allow multiple axes")
    return axis


def _ufunc_accumulate(handler, name):
    """A ufunc's ``accumulate`` through the scan handler of its op."""
    def h(array, axis=0, dtype=None, out=None):
        if np.ndim(array) == 0:
            raise TypeError("cannot accumulate on a scalar")
        return handler(array, axis=_accumulate_axis(array, axis), dtype=dtype, out=out)
    h.__name__ = name
    return h


UFUNC_METHODS[(np.add, "reduce")] = _ufunc_reduce(sum_, "np.add.reduce")
UFUNC_METHODS[(np.multiply, "reduce")] = _ufunc_reduce(prod, "np.multiply.reduce")
UFUNC_METHODS[(np.maximum, "reduce")] = _ufunc_reduce(max_, "np.maximum.reduce", False)
UFUNC_METHODS[(np.minimum, "reduce")] = _ufunc_reduce(min_, "np.minimum.reduce", False)
UFUNC_METHODS[(np.logical_and, "reduce")] = _ufunc_logical(all_, "np.logical_and.reduce")
UFUNC_METHODS[(np.logical_or, "reduce")] = _ufunc_logical(any_, "np.logical_or.reduce")
UFUNC_METHODS[(np.add, "accumulate")] = _ufunc_accumulate(cumsum, "np.add.accumulate")
UFUNC_METHODS[(np.multiply, "accumulate")] = _ufunc_accumulate(cumprod,
                                                                "np.multiply.accumulate")
UFUNC_METHODS[(np.maximum, "accumulate")] = _ufunc_accumulate(
    _scan(CUMMAX, "np.maximum.accumulate"), "np.maximum.accumulate")
UFUNC_METHODS[(np.minimum, "accumulate")] = _ufunc_accumulate(
    _scan(CUMMIN, "np.minimum.accumulate"), "np.minimum.accumulate")
