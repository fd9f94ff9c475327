"""Arrays edited by position: ``np.copyto``, ``np.put``, ``np.fill_diagonal``
``np.putmask``, ``np.place`` (in place), ``np.compress``, ``np.extract``,
``np.delete``, ``np.insert`` and ``np.trim_zeros`` (new arrays).

Composites of writes (``a[idx] = v``, recorded like any in-place write: the
derivative of the overwritten elements is cut, the written values get it)
and gathers. The in-place functions need a tracked target: writing tracked
values into a plain ndarray raises, as every assignment does.

Positions given as data (``put``'s indices, ``compress``'s condition) may
be tracked: indices are then computed on the tape; a condition is read as
its ``nonzero()``, whose count is guarded (the result's length depends on
it). ``delete`` and ``insert`` take their positions as constants (a
tracked ``obj`` is guarded: the tape re-records when it changes), and so
does ``trim_zeros`` the bounds it finds.
"""
import operator

import numpy as np
from numpy.lib.array_utils import normalize_axis_index, normalize_axis_tuple

from ..numpy_dispatch import assign, check_casting, implements, on_tape
from ..tracer import operand as _arr, recorded


def _cyclic(v, k):
    """The first ``k`` values of ``v`` (raveled) repeated as often as needed:
    what NumPy's flat assignments (``put``, ``fill_diagonal``) write."""
    v = np.ravel(v)
    if v.shape[0] == k:
        return v
    return v[np.arange(k) % v.shape[0]]


def _flat_to_index(flat, shape):
    """The index tuple of row-major positions ``flat`` (tracked or not)."""
    coords = []
    for n in reversed(shape[1:]):
        coords.append(flat % n)
        flat = flat // n
    coords.append(flat)
    return tuple(reversed(coords))


# ---------------------------------------------------------------- in place
@implements(np.copyto)
def copyto(dst, src, casting="same_kind", where=True):
    if not hasattr(dst, "shape") or not hasattr(dst, "__setitem__"):
        raise TypeError(f"copyto() argument 1 must be numpy.ndarray, not {type(dst).__name__}")
    src = src if type(src) in (int, float, bool) else _arr(src)
    if where is not True:
        where = _arr(where)
        if where.dtype != np.bool_:
            raise TypeError(f"Cannot cast array data from {where.dtype!r} to "
                            "dtype('bool') according to the rule 'safe'")
        check_casting(src, dst.dtype, casting, "np.copyto")
        src = np.where(where, src, dst)
        casting = "unsafe"        # (checked above; where's result is promoted)
    if np.broadcast_shapes(np.shape(src), dst.shape) != dst.shape:
        raise ValueError(f"could not broadcast input array from shape {np.shape(src)} into "
                         f"shape {dst.shape}")
    assign(dst, Ellipsis, src, casting=casting, what="np.copyto")


@implements(np.put)
def put(a, ind, v, mode="raise"):
    if not hasattr(a, "shape") or not hasattr(a, "__setitem__"):
        raise TypeError(f"put() argument 1 must be numpy.ndarray, not {type(a).__name__}")
    ind, v = np.ravel(_arr(ind)), _arr(v)
    if ind.shape[0] == 0:                      # (also ``[]``, a float64 array)
        return
    if ind.dtype.kind not in "iu":
        raise TypeError(f"Cannot cast array data from {ind.dtype!r} to "
                        f"{np.dtype(np.intp)!r} according to the rule 'safe'")
    n, k = a.size, ind.shape[0]
    if np.size(v) == 0:
        return
    if mode == "raise":
        out_of_bounds = (ind < -n) | (ind >= n)
        if n == 0 or np.any(out_of_bounds):                  # (a guard when tracked)
            bad = recorded(ind)[np.argmax(recorded(out_of_bounds))]
            raise IndexError(f"index {bad} is out of bounds for axis 0 with size {n}")
        ind = np.where(ind < 0, ind + n, ind)
    elif mode == "wrap":
        if n == 0:
            raise IndexError("cannot do a non-empty take from an empty axes.")
        ind = ind % n
    elif mode == "clip":
        if n == 0:
            raise IndexError("cannot do a non-empty take from an empty axes.")
        ind = np.clip(ind, 0, n - 1)
    else:
        raise ValueError(f"clipmode must be one of 'clip', 'raise', or 'wrap' (got {mode!r})")
    vals = _cyclic(v, k)
    if a.ndim == 0:
        assign(a, (), vals[k - 1], what="np.put")     # (every index is 0: the last wins)
        return
    assign(a, _flat_to_index(ind, a.shape), vals, what="np.put")


@implements(np.fill_diagonal)
def fill_diagonal(a, val, wrap=False):
    if a.ndim < 2:
        raise ValueError("array must be at least 2-d")
    if a.ndim == 2:
        step = a.shape[1] + 1
        end = a.size if wrap else min(a.shape[1] * a.shape[1], a.size)
    else:
        if len(set(a.shape)) != 1:
            raise ValueError("All dimensions of input must be of equal length")
        step = 1 + int(np.sum(np.cumprod(a.shape[:-1])))
        end = a.size
    flat = np.arange(0, end, step)
    if flat.size == 0 or np.size(val) == 0:
        return
    assign(a, np.unravel_index(flat, a.shape), _cyclic(_arr(val), flat.size),
           what="np.fill_diagonal")


# ---------------------------------------------------------------- new arrays
def _selected(condition, n):
    """The positions where the 1-d ``condition`` is nonzero, checked against
    length ``n`` (NumPy refuses a nonzero entry beyond it)."""
    cond = _arr(condition)
    if cond.ndim != 1:
        raise ValueError("condition must be a 1-d array")
    return _in_bounds(np.nonzero(cond)[0], n)


def _in_bounds(idx, n):
    """``idx`` (ascending positions) when all are below ``n``; tested on
    the last one (for tracked positions a guard on that test's outcome,
    not on the position)."""
    if idx.shape[0] and bool(idx[-1] >= n):
        raise IndexError(f"index {int(idx[-1])} is out of bounds for axis 0 with size {n}")
    return idx


@implements(np.compress)
def compress(condition, a, axis=None, out=None):
    a = _arr(a)
    if axis is None:
        a, axis = np.ravel(a), 0
    axis = normalize_axis_index(axis, a.ndim)
    idx = _selected(condition, a.shape[axis])
    r = np.take(on_tape(a, idx), idx, axis=axis)
    if out is not None:
        assign(out, Ellipsis, r, what="np.compress(..., out=)")
        return out
    return r


@implements(np.extract)
def extract(condition, arr):
    arr = np.ravel(_arr(arr))
    cond = np.ravel(_arr(condition))
    idx = _in_bounds(np.nonzero(cond)[0], arr.shape[0])
    return np.take(on_tape(arr, idx), idx)


def _positions(arr, obj, axis):
    """``(arr, axis, positions, is_mask)`` of ``np.delete``/``np.insert``:
    ``arr`` raveled when ``axis`` is None, and ``obj`` as constant positions
    along ``axis`` (a slice's, or the array's; a tracked one is guarded)."""
    arr = _arr(arr)
    if axis is None:
        arr, axis = np.ravel(arr), 0
    axis = normalize_axis_index(axis, arr.ndim)
    if isinstance(obj, slice):
        return arr, axis, np.arange(*obj.indices(arr.shape[axis])), False
    idx = np.asarray(obj)
    if idx.dtype == np.bool_:
        return arr, axis, idx, True
    if idx.size == 0 and idx.dtype.kind not in "iu":
        idx = idx.astype(np.intp)
    if idx.dtype.kind not in "iu":
        raise IndexError("arrays used as indices must be of integer (or boolean) type")
    return arr, axis, idx, False


@implements(np.delete)
def delete(arr, obj, axis=None):
    arr, axis, idx, mask = _positions(arr, obj, axis)
    n = arr.shape[axis]
    keep = np.ones(n, bool)
    if mask:
        if idx.ndim != 1 or idx.shape[0] != n:
            raise ValueError("boolean array argument obj to delete must be one dimensional "
                             f"and match the axis length of {n}")
        keep = ~idx
    else:
        bad = (idx < -n) | (idx >= n)
        if np.any(bad):
            raise IndexError(f"index {int(np.ravel(idx)[np.argmax(np.ravel(bad))])} is out "
                             f"of bounds for axis {axis} with size {n}")
        keep[idx] = False
    return np.take(arr, np.nonzero(keep)[0], axis=axis)


@implements(np.insert)
def insert(arr, obj, values, axis=None):
    arr, axis, idx, mask = _positions(arr, obj, axis)
    n = arr.shape[axis]
    if mask:                                   # NumPy inserts before each True
        idx = np.flatnonzero(idx)
    if idx.ndim > 1:
        raise ValueError("index array argument obj to insert must be one dimensional or "
                         "scalar")
    values = _arr(values)
    values = values if values.dtype == arr.dtype else values.astype(arr.dtype)
    if idx.size == 1:
        # one position: values take as many slots as they have along axis
        pos = operator.index(idx.ravel()[0])
        if not -n <= pos <= n:
            raise IndexError(f"index {pos} is out of bounds for axis {axis} with size {n}")
        pos += n if pos < 0 else 0
        if values.ndim < arr.ndim:
            values = np.reshape(values, (1,) * (arr.ndim - values.ndim) + values.shape)
        if idx.ndim == 0:             # a[:, i] = v, not a[:, [i]] = v: v's first axis moves
            values = np.moveaxis(values, 0, axis)
        k = values.shape[axis]
        targets = np.arange(pos, pos + k)
    else:
        bad = (idx < -n) | (idx > n)
        if np.any(bad):
            raise IndexError(f"index {int(idx[np.argmax(bad)])} is out of bounds for axis "
                             f"{axis} with size {n}")
        idx = np.where(idx < 0, idx + n, idx)
        k = idx.shape[0]
        targets = idx.copy()
        targets[np.argsort(idx, kind="mergesort")] += np.arange(k)
    slot = arr.shape[:axis] + (k,) + arr.shape[axis + 1:]
    values = np.broadcast_to(values, slot)
    # the result as a gather from [arr, values] along axis: old elements keep
    # their order in the positions no value takes; value j goes to targets[j]
    src = np.empty(n + k, np.intp)
    is_new = np.zeros(n + k, bool)
    is_new[targets] = True
    src[~is_new] = np.arange(n)
    src[targets] = n + np.arange(k)
    both = np.concatenate([arr, values], axis=axis)
    return np.take(both, src, axis=axis)


@implements(np.trim_zeros)
def trim_zeros(filt, trim="fb", axis=None):
    """NumPy's ``trim_zeros``: the slice from the first to the last nonzero
    element along ``axis`` (all axes by default). The bounds set the result's
    shape, so they are guards; each is counted on the tape (the leading and
    trailing all-zero slices of its axis), so zeros inside the bounds replay
    without re-recording."""
    a = _arr(filt)
    trim = trim.lower()
    if trim not in {"fb", "bf", "f", "b"}:
        raise ValueError(f"unexpected character(s) in `trim`: {trim!r}")
    nd = a.ndim
    axes = (tuple(range(nd)) if axis is None
            else normalize_axis_tuple(axis, nd, argname="axis"))
    if not axes:
        return filt
    index = [slice(None)] * nd
    for d in axes:
        # which slices along axis d hold a nonzero; the zero runs at both ends
        held = np.any(a != 0, axis=tuple(e for e in range(nd) if e != d))
        n = a.shape[d]
        lead = int(np.sum(np.cumprod(~held))) if n else 0
        if lead == n:               # all zero: NumPy's empty slice [0:0]
            index[d] = slice(0, 0)
            continue
        trail = int(np.sum(np.cumprod(~held[::-1])))
        index[d] = slice(lead if "f" in trim else None, n - trail if "b" in trim else None)
    return a[tuple(index)]


@implements(np.putmask)
def putmask(a, mask, values):
    """``a[i] = values[i % len(values)]`` where ``mask[i]``: the values cycle
    over the positions of ``a``, not over the masked ones (that is
    ``np.place``)."""
    mask = _arr(mask)
    if mask.size != a.size:
        raise ValueError("putmask: mask and data must be the same size")
    v = _arr(values)
    if v.size == 0:
        return
    v = np.reshape(_cyclic(v, a.size), a.shape)
    assign(a, Ellipsis, np.where(np.reshape(mask, a.shape), v, a), casting="unsafe",
           what="np.putmask")


@implements(np.place)
def place(arr, mask, vals):
    """``arr[mask] = vals``, the values repeated over the masked elements in
    order (their number is guarded: it is the written part's size)."""
    mask = _arr(mask)
    if mask.size != arr.size:
        raise ValueError("place: mask and data must be the same size")
    n = int(np.count_nonzero(mask))
    v = np.ravel(_arr(vals))
    if v.shape[0] == 0:
        if n:
            raise ValueError("Cannot insert from an empty array!")
        return
    assign(arr, np.reshape(mask, arr.shape) != 0, _cyclic(v, n), casting="unsafe",
           what="np.place")
