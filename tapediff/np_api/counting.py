"""Binning, counting and sets: ``np.digitize``, ``np.bincount``,
``np.histogram`` (and ``histogram_bin_edges``), ``np.unique`` (with its
``unique_*`` relatives), ``np.isin``, ``union1d``, ``intersect1d``,
``setdiff1d`` and ``setxor1d``.

Composites of ``searchsorted`` (an inactive primitive), sorts, comparisons
and ``np.add.at``. They follow NumPy's own algorithms, so counts are equal
and weighted sums are added in NumPy's order (bit for bit in the tests).

Derivatives
-----------
* Bin indices and counts are integers: no derivative.
* ``np.bincount(x, weights)`` is linear in ``weights``.
* ``np.histogram``'s weighted counts are linear in ``weights``; its edges,
  when computed from the data (``bins`` an int, no ``range``), are
  ``linspace(a.min(), a.max())`` and carry the derivative of the minimum
  and maximum; ``density=True`` divides by the bin widths, so it does too.
* ``np.unique``'s values are elements of the input: each carries the
  derivative of the first of its equal elements in a stable sort.

Replay
------
What fixes the *shape* of a result is guarded: the length of a
``bincount`` (its largest value), the monotonic direction of ``digitize``'s
``bins``, ``histogram``'s checks of the range. Which bin each point falls
in is computed on the tape, so new data replays without re-recording (and
compiles). ``histogram`` counts points outside ``range`` as zero-weight
points of the first bin rather than dropping them, so their number is not
a guard either. The number of ``np.unique`` values is its result's shape:
it is guarded.

``np.unique(axis=...)`` of a multi-dimensional array (unique rows) is not
supported; with ``sorted=False`` the values come sorted (NumPy leaves their
order unspecified).
"""
import math
import operator
import warnings

import numpy as np
from numpy.lib.array_utils import normalize_axis_index

from ..errors import UnsupportedOperation
from ..numpy_dispatch import implements, on_tape
from ..tracer import Tracked
from ..tracer import operand as _arr

_F64 = np.dtype(np.float64)


def _one_d(x):
    if x.ndim != 1:
        raise ValueError("object too deep for desired array" if x.ndim else
                         "object of too small depth for desired array")


def _counts(idx, weights, length, dtype, like):
    """``np.bincount(idx, weights, minlength=length)`` for indices known to
    lie in ``[0, length)``: zeros, then ``np.add.at`` in index order (NumPy's
    order of addition)."""
    out = np.zeros(length, dtype, like=like)
    np.add.at(out, idx, 1 if weights is None else weights)
    return out


# ---------------------------------------------------------------- digitize
def _monotonicity(bins):
    """NumPy's test of ``bins`` (as float64): 1 increasing (or all equal), -1
    decreasing, 0 neither. The first value that differs from ``bins[0]``
    decides the direction, and later pairs must not go the other way (a NaN
    compares false both ways, as in NumPy). One int: a single guard when
    ``bins`` is tracked."""
    d = bins if bins.dtype == _F64 else bins.astype(_F64)
    n = d.shape[0]
    if n < 2:
        return 1
    differs = d[1:] != d[0]
    first = np.argmax(differs) + 1              # the first value unequal to d[0]
    later = np.arange(1, n) > first             # pairs (k - 1, k) with k > first
    up_ok = ~np.any((d[:-1] > d[1:]) & later)
    down_ok = ~np.any((d[:-1] < d[1:]) & later)
    mono = np.where(d[0] < d[first], np.where(up_ok, 1, 0), np.where(down_ok, -1, 0))
    return int(np.where(np.any(differs), mono, 1))


@implements(np.digitize)
def digitize(x, bins, right=False):
    x, bins = _arr(x), _arr(bins)
    if x.dtype.kind == "c":
        raise TypeError("x may not be complex")
    _one_d(bins)
    mono = _monotonicity(bins)
    if mono == 0:
        raise ValueError("bins must be monotonically increasing or decreasing")
    side = "left" if right else "right"     # (searchsorted's sides are the other way)
    if mono == -1:
        return bins.shape[0] - np.searchsorted(bins[::-1], x, side=side)
    return np.searchsorted(bins, x, side=side)


# ---------------------------------------------------------------- bincount
@implements(np.bincount)
def bincount(x, weights=None, minlength=0):
    x = _arr(x)
    _one_d(x)
    if x.dtype.kind not in "iub":
        raise TypeError(f"np.bincount: x has dtype {x.dtype}; it takes non-negative "
                        "integers (NumPy deprecates float input): pass x.astype(np.intp)")
    minlength = operator.index(minlength)
    if minlength < 0:
        raise ValueError("'minlength' must not be negative")
    if x.dtype == np.bool_:
        x = x.astype(np.intp)           # (a bool index array would be read as a mask)
    n = x.shape[0]
    if n and np.any(x < 0):                      # (a guard when x is tracked)
        raise ValueError("'list' argument must have no negative elements")
    if weights is not None:
        weights = _arr(weights)
        if weights.shape != x.shape:
            raise ValueError("The weights and list don't have the same length.")
        if weights.dtype.kind == "c":
            raise UnsupportedOperation("np.bincount with complex weights is not supported by "
                                       "tapediff")
    # the length is the largest value + 1: a guard on it when x is tracked
    length = max(int(np.max(x)) + 1 if n else 0, minlength)
    if weights is None or n == 0:       # (NumPy's empty result is intp, weights or not)
        return _counts(x, None, length, np.intp, x)
    w = weights if weights.dtype == _F64 else weights.astype(_F64)
    return _counts(x, w, length, _F64, w)


# ---------------------------------------------------------------- histogram
#: NumPy's block size: data is binned in blocks, weighted sums added per block
_BLOCK = 65536


def _outer_edges(a, range):
    """NumPy's ``_get_outer_edges``: the range, or the data's min and max
    (tracked when ``a`` is), widened by 0.5 each way when they are equal."""
    if range is not None:
        first, last = range
        if first > last:
            raise ValueError("max must be larger than min in range parameter.")
        if not (np.isfinite(first) and np.isfinite(last)):
            raise ValueError(f"supplied range of [{first}, {last}] is not finite")
    elif a.size == 0:
        first, last = 0, 1
    else:
        first, last = np.min(a), np.max(a)
        if not (np.isfinite(first) and np.isfinite(last)):
            raise ValueError(f"autodetected range of [{first}, {last}] is not finite")
    if first == last:
        first, last = first - 0.5, last + 0.5
    return first, last


def _dtype_of(v):
    """What ``np.result_type`` takes for ``v``: a tracked value's dtype,
    Python and NumPy scalars as they are (weak and strong)."""
    return v.dtype if type(v) is Tracked else v


def _width(first, last):
    """``last - first`` as NumPy's ``_unsigned_subtract`` computes it: for
    integers an unsigned 0-d array, otherwise in the common dtype, a strong
    NumPy value either way (so float32 data is scaled in float64 when the
    range is float64, as in NumPy)."""
    dt = np.result_type(_dtype_of(first), _dtype_of(last))
    if dt.kind in "iu":
        return np.asarray(int(last) - int(first), np.uint64)
    d = last - first
    return d.astype(dt) if type(d) is Tracked else np.asarray(d, dt)


def _estimated_bins(a, name, range, weights):
    """The number of equal bins NumPy's estimator ``name`` ('auto', 'fd',
    'sturges', ...) picks, as ``_get_bin_edges`` computes it. NumPy's own
    estimator runs on the (tracked) data, so its branches and the count are
    guards: new data that changes the count re-records."""
    try:        # NumPy's estimators (private: a NumPy without them gets a clear refusal)
        from numpy.lib._histograms_impl import _hist_bin_selectors
    except ImportError:
        raise UnsupportedOperation(f"np.histogram(bins={name!r}): this NumPy does not expose "
                                   "its bin estimators to tapediff; pass the number of bins "
                                   "or the edges") from None
    if name not in _hist_bin_selectors:
        raise ValueError(f"{name!r} is not a valid estimator for `bins`")
    if weights is not None:
        raise TypeError("Automated estimation of the number of bins is not supported for "
                        "weighted data")
    first, last = _outer_edges(a, range)
    if range is not None:
        keep = (a >= first) & (a <= last)
        if not np.all(keep):
            a = a[keep]
    if a.size == 0:
        return 1
    width = _hist_bin_selectors[name](a, (first, last))
    if not width:
        return 1
    if a.dtype.kind in "iu" and width < 1:
        width = 1
    return int(np.ceil(_width(first, last) / width))


def _bin_edges(a, bins, range, weights):
    """``(edges, n_equal_bins or None)``, as NumPy's ``_get_bin_edges``."""
    if isinstance(bins, str):
        bins = _estimated_bins(a, bins, range, weights)
    if np.ndim(bins) == 0:
        try:
            nbins = operator.index(bins)
        except TypeError as e:
            raise TypeError("`bins` must be an integer, a string, or an array") from e
        if nbins < 1:
            raise ValueError("`bins` must be positive, when an integer")
        first, last = _outer_edges(a, range)
        dt = np.result_type(_dtype_of(first), _dtype_of(last), a.dtype)
        if dt.kind in "iub":
            dt = np.result_type(dt, float)
        edges = np.linspace(first, last, nbins + 1, endpoint=True, dtype=dt)
        if np.any(edges[:-1] >= edges[1:]):
            raise ValueError(f"Too many bins for data range. Cannot create {nbins} "
                             "finite-sized bins.")
        return edges, (first, last, nbins)
    edges = _arr(bins)
    if edges.ndim != 1:
        raise ValueError("`bins` must be 1d, when an array")
    if np.any(edges[:-1] > edges[1:]):
        raise ValueError("`bins` must increase monotonically, when an array")
    return edges, None


def _uniform_counts(a, weights, edges, first, last, nbins, ntype):
    """NumPy's equal-width binning, block by block: the index from the
    scaled offset, corrected against the edges (the last bin holds its right
    edge). Points outside ``[first, last]`` are binned as zero-weight points
    of bin 0 instead of being dropped, so no shape depends on the data."""
    n = np.zeros(nbins, ntype, like=edges)
    denom = _width(first, last)
    e = on_tape(edges, a)
    for i in range(0, a.shape[0], _BLOCK):
        tmp_a = a[i:i + _BLOCK]
        keep = (tmp_a >= first) & (tmp_a <= last)
        tmp_a = tmp_a if tmp_a.dtype == edges.dtype else tmp_a.astype(edges.dtype)
        safe = np.where(keep, tmp_a, edges[0])
        idx = ((safe - first) / denom * nbins).astype(np.intp)
        idx = np.where(idx == nbins, idx - 1, idx)
        idx = np.where(safe < e[idx], idx - 1, idx)
        idx = np.where((safe >= e[idx + 1]) & (idx != nbins - 1), idx + 1, idx)
        idx = np.where(keep, idx, 0)
        if weights is None:
            n = n + _counts(idx, keep.astype(np.intp), nbins, np.intp, idx)
        else:
            w = weights[i:i + _BLOCK]
            w = np.where(keep, w if w.dtype == _F64 else w.astype(_F64), 0.0)
            block = _counts(idx, w, nbins, _F64, w)
            n = n + (block if block.dtype == ntype else block.astype(ntype))
    return n


def _cumulative_counts(a, weights, edges, ntype):
    """NumPy's binning for edges given as an array: per block, the sorted
    data searched for every edge (the last one inclusive), with weights as a
    cumulative sum in sorted order; the counts are the differences."""
    cum = np.zeros(edges.shape, ntype, like=edges)
    for i in range(0, a.shape[0], _BLOCK):
        tmp_a = a[i:i + _BLOCK]
        if weights is None:
            sa, cw = np.sort(tmp_a), None
        else:
            order = np.argsort(tmp_a)
            sa = on_tape(tmp_a, order)[order]
            sw = on_tape(weights[i:i + _BLOCK], order)[order]
            cw = np.concatenate((np.zeros(1, ntype, like=sw), np.cumsum(sw)))
        at = np.concatenate((np.searchsorted(sa, edges[:-1], "left"),
                             np.searchsorted(sa, edges[-1:], "right")))
        cum = cum + (at if cw is None else on_tape(cw, at)[at])
    return np.diff(cum)


def _raveled(a, weights, name):
    """``a`` and ``weights`` raveled and checked, as NumPy's
    ``_ravel_and_check_weights`` (bool data as uint8, with its warning)."""
    a = _arr(a)
    if a.dtype.kind == "c" or (weights is not None and _arr(weights).dtype.kind == "c"):
        raise UnsupportedOperation(f"np.{name} with complex input is not supported by "
                                   "tapediff")
    if a.dtype == np.bool_:
        warnings.warn(f"Converting input from {a.dtype} to {np.uint8} for compatibility.",
                      RuntimeWarning, stacklevel=4)
        a = a.astype(np.uint8)
    if weights is not None:
        weights = _arr(weights)
        if weights.shape != a.shape:
            raise ValueError("weights should have the same shape as a.")
        weights = np.ravel(weights)
    return np.ravel(a), weights


@implements(np.histogram_bin_edges)
def histogram_bin_edges(a, bins=10, range=None, weights=None):
    a, weights = _raveled(a, weights, "histogram_bin_edges")
    return _bin_edges(a, bins, range, weights)[0]


@implements(np.histogram)
def histogram(a, bins=10, range=None, density=None, weights=None):
    a, weights = _raveled(a, weights, "histogram")
    edges, uniform = _bin_edges(a, bins, range, weights)
    ntype = np.dtype(np.intp) if weights is None else weights.dtype
    if uniform is not None and (weights is None or np.can_cast(weights.dtype, np.double)):
        n = _uniform_counts(a, weights, edges, *uniform, ntype)
    else:
        n = _cumulative_counts(a, weights, edges, ntype)
    if density:
        db = np.diff(edges)
        db = db if db.dtype == _F64 else db.astype(_F64)
        return n / db / np.sum(n), edges
    return n, edges


# ---------------------------------------------------------------- unique
def _unique_flat(ar, return_index, return_inverse, return_counts, equal_nan):
    """NumPy's sorting method for the unique values of ``ar`` raveled: the
    sorted values, a mask of the first of each run of equal ones (all NaNs
    one run with ``equal_nan``), and what the mask gives."""
    a = np.ravel(ar)
    n = a.shape[0]
    # a stable order: NumPy's for return_index (mergesort); for the rest any
    # order gives the same results, and a stable one compiles
    perm = np.argsort(a, kind="stable")
    aux = on_tape(a, perm)[perm]
    if n == 0:
        mask = np.zeros(0, bool)
    else:
        new = aux[1:] != aux[:-1]
        if equal_nan and aux.dtype.kind == "f":
            nan = np.isnan(aux)
            new = new & ~(nan[1:] & nan[:-1])         # a NaN after a NaN is no new value
        mask = np.concatenate([np.ones(1, bool), new])
    # (the number of unique values is guarded: it is the shape)
    return (aux[mask],) + _from_runs(perm, mask, np.shape(ar), return_index, return_inverse,
                                     return_counts)


def _from_runs(perm, mask, inverse_shape, return_index, return_inverse, return_counts):
    """``unique``'s optional results from the sorting permutation ``perm``
    and ``mask``, True at the first of each run of equal sorted items."""
    n = perm.shape[0]
    ret = ()
    if return_index:
        ret += (perm[mask],)
    if return_inverse:
        inv = np.zeros(n, np.intp, like=perm)
        inv[perm] = np.cumsum(mask) - 1
        ret += (np.reshape(inv, inverse_shape),)
    if return_counts:
        starts = np.nonzero(mask)[0]
        ret += (np.diff(np.concatenate([starts, np.full(1, n, like=starts)])),)
    return ret


@implements(np.unique)
def unique(ar, return_index=False, return_inverse=False, return_counts=False, axis=None, *,
           equal_nan=True, sorted=True):
    """``sorted=False`` returns the values sorted too (NumPy leaves their order
    unspecified)."""
    ar = _arr(ar)
    if ar.dtype.kind == "c":
        raise UnsupportedOperation("np.unique with complex input is not supported by "
                                   "tapediff")
    if axis is not None:
        axis = normalize_axis_index(operator.index(axis), ar.ndim)
    if axis is not None and ar.ndim > 1:
        ret = _unique_rows(ar, axis, return_index, return_inverse, return_counts)
    else:
        ret = _unique_flat(ar, return_index, return_inverse, return_counts, equal_nan)
    return ret[0] if len(ret) == 1 else ret


def _unique_rows(ar, axis, return_index, return_inverse, return_counts):
    """NumPy's ``unique(..., axis=)`` of an array of two or more dimensions:
    the slices along ``axis`` compared as NumPy compares them (as records:
    in lexicographic order, NaN last, a slice holding a NaN equal to no
    other, whatever ``equal_nan``), by a stable lexicographic sort."""
    a = np.moveaxis(ar, axis, 0)
    n, rest = a.shape[0], a.shape[1:]
    a2 = np.reshape(a, (n, math.prod(rest)))
    if a2.shape[1] == 0 or n == 0:      # records of no field: all equal
        perm = np.arange(n, like=a2)
        mask = np.arange(n, like=a2) == 0
        aux = a2
    else:
        perm = np.lexsort(a2.T[::-1])
        aux = on_tape(a2, perm)[perm]
        mask = np.concatenate([np.ones(1, bool, like=aux),
                               np.any(aux[1:] != aux[:-1], axis=1)])
    vals = aux[mask]        # (the number of unique slices is guarded: it is the shape)
    vals = np.moveaxis(np.reshape(vals, (vals.shape[0],) + rest), 0, axis)
    return (vals,) + _from_runs(perm, mask, (n,), return_index, return_inverse, return_counts)


@implements(np.unique_values)
def unique_values(x):
    return unique(x, equal_nan=False)


@implements(np.unique_counts)
def unique_counts(x):
    return _RESULTS["counts"](*unique(x, return_counts=True, equal_nan=False))


@implements(np.unique_inverse)
def unique_inverse(x):
    return _RESULTS["inverse"](*unique(x, return_inverse=True, equal_nan=False))


@implements(np.unique_all)
def unique_all(x):
    return _RESULTS["all"](*unique(x, return_index=True, return_inverse=True,
                                   return_counts=True, equal_nan=False))


def _result_types():
    from numpy.lib import _arraysetops_impl as impl     # NumPy's own namedtuples
    return {"counts": impl.UniqueCountsResult, "inverse": impl.UniqueInverseResult,
            "all": impl.UniqueAllResult}


_RESULTS = _result_types()


# ---------------------------------------------------------------- sets
@implements(np.isin)
def isin(element, test_elements, assume_unique=False, invert=False, *, kind=None):
    """Whether each element is in ``test_elements``: a binary search in
    their sorted values (NaN is in nothing, ``-0.0`` equals ``0.0``, as
    NumPy's comparisons); ``kind`` picks NumPy's algorithm, not the answer."""
    if kind not in (None, "sort", "table"):
        raise ValueError(f"Invalid kind: '{kind}'. Please use None, 'sort' or 'table'.")
    element, test = _arr(element), np.ravel(_arr(test_elements))
    if element.dtype.kind == "c" or test.dtype.kind == "c":
        raise UnsupportedOperation("np.isin with complex input is not supported by tapediff")
    if kind == "table" and not all(t.dtype.kind in "biu" for t in (element, test)):
        raise ValueError("The 'table' method is only supported for boolean or integer "
                         "arrays. Please select 'sort' or None for kind.")
    m = test.shape[0]
    if m == 0:
        found = np.zeros(element.shape, bool, like=element)
    else:
        s = np.sort(test)
        at = np.searchsorted(s, element)
        found = (at < m) & (on_tape(s, at)[np.minimum(at, m - 1)] == element)
    return ~found if invert else found


def _unique1d(ar, assume_unique):
    return np.ravel(ar) if assume_unique else unique(ar)


@implements(np.union1d)
def union1d(ar1, ar2):
    return unique(np.concatenate([np.ravel(_arr(ar1)), np.ravel(_arr(ar2))]))


@implements(np.intersect1d)
def intersect1d(ar1, ar2, assume_unique=False, return_indices=False):
    """NumPy's method: the unique values of both, sorted together (stably);
    a value is common where it equals its successor."""
    ar1, ar2 = _arr(ar1), _arr(ar2)
    if return_indices:
        if assume_unique:
            ar1, ar2 = np.ravel(ar1), np.ravel(ar2)
            ind1, ind2 = np.arange(ar1.shape[0]), np.arange(ar2.shape[0])
        else:
            ar1, ind1 = unique(ar1, return_index=True)
            ar2, ind2 = unique(ar2, return_index=True)
    else:
        ar1, ar2 = _unique1d(ar1, assume_unique), _unique1d(ar2, assume_unique)
    aux = np.concatenate([ar1, ar2])
    order = np.argsort(aux, kind="stable")
    aux = on_tape(aux, order)[order]
    common = aux[1:] == aux[:-1]
    values = aux[:-1][common]
    if not return_indices:
        return values
    i1 = order[:-1][common]
    i2 = order[1:][common] - ar1.shape[0]
    return values, on_tape(ind1, i1)[i1], on_tape(ind2, i2)[i2]


@implements(np.setdiff1d)
def setdiff1d(ar1, ar2, assume_unique=False):
    ar1 = _unique1d(_arr(ar1), assume_unique)
    ar2 = _unique1d(_arr(ar2), assume_unique)
    return ar1[isin(ar1, ar2, invert=True)]


@implements(np.setxor1d)
def setxor1d(ar1, ar2, assume_unique=False):
    aux = np.concatenate([_unique1d(_arr(ar1), assume_unique),
                          _unique1d(_arr(ar2), assume_unique)])
    if aux.shape[0] == 0:
        return aux
    aux = np.sort(aux)
    edge = np.ones(1, bool)
    flag = np.concatenate([edge, aux[1:] != aux[:-1], edge])
    return aux[flag[1:] & flag[:-1]]
