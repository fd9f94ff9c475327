"""Reductions with axis/keepdims, cumulative ops, sorting and searching, and
inactive arg-reductions.

Axis parameters are normalised by the handlers: reductions take ``axis`` as a
sorted tuple of non-negative axes, scans and sorts a single non-negative int.

Derivative conventions
----------------------
* ``max``/``min``: the cotangent is split evenly among the elements equal to
  the extremum (as JAX and autograd do); a NaN in a slice makes the result NaN
  and the NaN elements share the cotangent.
* ``prod``: the partial of each element is the product of the *other*
  elements (exclusive products from both sides, no division), exact with any
  number of zeros.
* ``cumprod``: division only on the prefix before the first zero of a slice;
  the first zero gets the product of the others; later elements get 0, written
  as ``x[z0] * (...)`` so that second derivatives at zeros are exact too
  (third and higher derivatives at exact zeros are not).
* ``cummax``/``cummin`` (``np.maximum.accumulate``): each output's cotangent
  goes to the element whose value it holds, the first to reach it.
* ``sort``: the cotangent is scattered back through a stable ``argsort(x)``
  (ties: any assignment is a valid subgradient; the stable one is the one
  compiled code can reproduce, and VJP and JVP use it both).
"""
import operator

import numpy as np

from .registry import Aval, defop

INTP = np.dtype(np.intp)


# ---------------------------------------------------------------- axis helpers
def norm_axis(axis, ndim):
    """A sorted tuple of non-negative axes (``None`` means all)."""
    if axis is None:
        return tuple(range(ndim))
    if not isinstance(axis, tuple):   # NumPy takes tuples, not lists, of axes
        axis = (axis,)
    out = []
    for a in axis:
        a = operator.index(a)
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(a, ndim)
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError("duplicate value in 'axis'")
    return tuple(sorted(out))


def norm_axis1(axis, ndim):
    """One non-negative axis (scans, sorts, arg-reductions)."""
    if isinstance(axis, (tuple, list)):
        raise TypeError(f"'{type(axis).__name__}' object cannot be interpreted as an integer")
    a = operator.index(axis)
    if not -ndim <= a < ndim:
        raise np.exceptions.AxisError(a, ndim)
    return a % ndim


def reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def keep(g, shape, axes, keepdims):
    """``g`` (a reduction's result) with the reduced axes kept as size 1."""
    return g if keepdims else np.reshape(g, reduced_shape(shape, axes, True))


def expand_to(g, shape, axes, keepdims):
    """Broadcast a reduced cotangent back to the argument's shape."""
    return np.broadcast_to(keep(g, shape, axes, keepdims), shape)


def acc_dtype(dt):
    """Result dtype of ``add``/``multiply`` reductions and scans: small ints promote."""
    if isinstance(dt, np.dtype) and dt.kind in "biu":
        return np.add.reduce(np.zeros(1, dt)).dtype
    return dt


def _flip(v, axis):
    return v[(slice(None),) * axis + (slice(None, None, -1),)]


def revcumsum(v, axis):
    """``out[i] = sum(v[i:])`` along ``axis``."""
    return _flip(np.cumsum(_flip(v, axis), axis=axis), axis)


def along_index(idx, axis):
    """The fancy index that picks ``idx`` along ``axis`` (``np.take_along_axis``
    semantics for ``idx`` of the array's shape): plain fancy indexing, so it
    records ``gather``/``setitem`` on tracked values, nested levels included."""
    nd = len(idx.shape)
    return tuple(
        idx if k == axis else
        np.arange(n).reshape((1,) * k + (n,) + (1,) * (nd - k - 1))
        for k, n in enumerate(idx.shape))


def _inverse_perm(axes):
    return tuple(int(i) for i in np.argsort(axes))


# ---------------------------------------------------------------- sum
def _sum_shape(x, axis, keepdims):
    return Aval(reduced_shape(x.shape, axis, keepdims), acc_dtype(x.dtype))


SUM = defop(
    "sum", lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
    shape=_sum_shape,
    vjp=lambda needs, g, out, x, axis, keepdims: (expand_to(g, np.shape(x), axis, keepdims),),
    jvp=lambda t, out, x, axis, keepdims: np.sum(t[0], axis=axis, keepdims=keepdims))


# ---------------------------------------------------------------- prod
def others_product(x, axis):
    """For each element, the product of the other elements of its reduced slice.

    Exclusive products from the left and from the right along the flattened
    reduced axes: no division, so exact with zeros (and free of the overflow
    and underflow of ``prod / x``).
    """
    nd = len(x.shape)
    kept = tuple(k for k in range(nd) if k not in axis)
    perm = kept + tuple(axis)
    xt = np.transpose(x, perm) if perm != tuple(range(nd)) else x
    tshape = tuple(xt.shape)
    m = 1
    for a in axis:
        m *= x.shape[a]
    flat = tuple(x.shape[k] for k in kept) + (m,)
    xf = np.reshape(xt, flat) if flat != tshape else xt
    last = len(flat) - 1
    if m > 1:
        # shifted copies (x[-1] = 1 and x[m] = 1) by gathers: no writes, so the
        # rule also records when x belongs to an outer tape (nested derivatives)
        pos = np.arange(m)
        lo = np.where(pos == 0, 1, xf[..., np.maximum(pos - 1, 0)])
        hi = np.where(pos == m - 1, 1, xf[..., np.minimum(pos + 1, m - 1)])
        left = np.cumprod(lo, axis=last)
        right = revcumprod(hi, last)
    else:
        left = right = np.ones(flat, dtype=x.dtype, like=x)
    o = left * right
    if flat != tshape:
        o = np.reshape(o, tshape)
    return np.transpose(o, _inverse_perm(perm)) if perm != tuple(range(nd)) else o


def revcumprod(v, axis):
    return _flip(np.cumprod(_flip(v, axis), axis=axis), axis)


def _prod_vjp(needs, g, out, x, axis, keepdims):
    return (expand_to(g, np.shape(x), axis, keepdims) * others_product(x, axis),)


def _prod_jvp(t, out, x, axis, keepdims):
    return np.sum(t[0] * others_product(x, axis), axis=axis, keepdims=keepdims)


PROD = defop(
    "prod", lambda x, axis, keepdims: np.prod(x, axis=axis, keepdims=keepdims),
    shape=_sum_shape, vjp=_prod_vjp, jvp=_prod_jvp)


# ---------------------------------------------------------------- max / min
def _winners(out, x, axis, keepdims):
    """Mask of the elements equal to the extremum (NaNs when it is NaN) and their count."""
    o = keep(out, np.shape(x), axis, keepdims)
    mask = (x == o) | np.isnan(x)   # a NaN in a slice makes its extremum NaN
    cnt = np.sum(mask, axis=axis, keepdims=True, dtype=x.dtype)
    return mask, cnt


def _extremum_vjp(needs, g, out, x, axis, keepdims):
    mask, cnt = _winners(out, x, axis, keepdims)
    return (np.where(mask, keep(g, np.shape(x), axis, keepdims) / cnt, 0),)


def _extremum_jvp(t, out, x, axis, keepdims):
    mask, cnt = _winners(out, x, axis, keepdims)
    s = np.sum(np.where(mask, t[0], 0), axis=axis, keepdims=True) / cnt
    return s if keepdims else np.reshape(s, np.shape(out))


def _same_shape(x, axis, keepdims):
    return Aval(reduced_shape(x.shape, axis, keepdims), x.dtype)


MAX = defop(
    "max", lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
    shape=_same_shape, vjp=_extremum_vjp, jvp=_extremum_jvp)
MIN = defop(
    "min", lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims),
    shape=_same_shape, vjp=_extremum_vjp, jvp=_extremum_jvp)


# ---------------------------------------------------------------- scans
CUMSUM = defop(
    "cumsum", lambda x, axis: np.cumsum(x, axis=axis),
    shape=lambda x, axis: Aval(x.shape, acc_dtype(x.dtype)),
    vjp=lambda needs, g, out, x, axis: (revcumsum(g, axis),),
    jvp=lambda t, out, x, axis: np.cumsum(t[0], axis=axis))


def _cumprod_parts(x, axis):
    """Masks and partial products that make the cumprod rules zero-safe.

    ``before``: elements before the first zero ``z0`` of their slice;
    ``first``: that zero; ``safe``: ``x`` on ``before``, 1 elsewhere (the only
    divisor); ``rest``: ``x`` after ``z0``, 1 up to it; ``tail = cumprod(rest)``,
    so ``tail[i]`` is the product of ``x[z0+1 .. i]`` for ``i >= z0``;
    ``lead``: the product of ``x[.. z0-1]``.
    """
    z = x == 0
    zc = np.cumsum(z, axis=axis)
    before = zc == 0
    first = z & (zc == 1)
    safe = np.where(before, x, 1)
    rest = np.where(before | first, 1, x)
    tail = np.cumprod(rest, axis=axis)
    lead = np.prod(safe, axis=axis, keepdims=True)
    return before, first, safe, rest, tail, lead


def _cumprod_vjp_at(g, out, x, axis, refine):
    """``d/dx_k sum_i g_i cumprod(x)_i = sum_{i>=k} g_i prod_{j<=i, j!=k} x_j``.

    Before ``z0`` it is ``revcumsum(g * out) / x`` (``out`` is 0 from ``z0`` on);
    at ``z0`` it is ``lead * sum_{i>=z0} g_i tail_i``; after ``z0`` every term
    holds the factor ``x[z0] = 0``. ``refine`` writes that factor out as
    ``x[z0] * (the rule for rest)`` so that the rule's own derivative -- the
    second derivative -- is exact too (higher orders at zeros are not).
    """
    before, first, safe, rest, tail, lead = _cumprod_parts(x, axis)
    head = revcumsum(g * out, axis) / safe
    s = np.sum(np.where(before, 0, g * tail), axis=axis, keepdims=True)
    after = 0
    if refine:
        x0 = np.sum(np.where(first, x, 0), axis=axis, keepdims=True)
        after = x0 * lead * _cumprod_vjp_at(g, tail, rest, axis, False)
    return np.where(before, head, np.where(first, lead * s, after))


def _cumprod_jvp_at(t, out, x, axis, refine):
    """``sum_{k<=i} t_k prod_{j<=i, j!=k} x_j``; see :func:`_cumprod_vjp_at`."""
    before, first, safe, rest, tail, lead = _cumprod_parts(x, axis)
    q = t / safe
    t0 = np.sum(np.where(first, t, 0), axis=axis, keepdims=True)
    after = t0 * lead * tail
    if refine:
        x0 = np.sum(np.where(first, x, 0), axis=axis, keepdims=True)
        qs = np.sum(np.where(before, q, 0), axis=axis, keepdims=True)
        inner = _cumprod_jvp_at(np.where(before | first, 0, t), tail, rest, axis, False)
        after = after + x0 * lead * (tail * qs + inner)
    return np.where(before, out * np.cumsum(q, axis=axis), after)


def _cumprod_vjp(needs, g, out, x, axis):
    return (_cumprod_vjp_at(g, out, x, axis, True),)


def _cumprod_jvp(t, out, x, axis):
    return _cumprod_jvp_at(t[0], out, x, axis, True)


CUMPROD = defop(
    "cumprod", lambda x, axis: np.cumprod(x, axis=axis),
    shape=lambda x, axis: Aval(x.shape, acc_dtype(x.dtype)),
    vjp=_cumprod_vjp, jvp=_cumprod_jvp)


def _record_positions(out, x, axis, name):
    """For each element, the position along ``axis`` of the element whose
    value the running extremum holds there: the first that reached it (a
    strictly better value starts a new record; a NaN, which the extremum
    propagates, is a record when the extremum so far is not NaN). The
    positions of records, carried forward by the same running maximum on
    integers (inactive)."""
    n = x.shape[axis]
    k = np.reshape(np.arange(n), (1,) * axis + (n,) + (1,) * (x.ndim - axis - 1))
    shifted = (slice(None),) * axis + (slice(None, -1),)
    first = (slice(None),) * axis + (slice(0, 1),)
    prev = np.concatenate([out[first], out[shifted]], axis=axis)
    better = x > prev if name == "cummax" else x < prev
    if x.dtype.kind == "f":
        better = better | (np.isnan(x) & ~np.isnan(prev))
    record = better | (k == 0)
    return CUMMAX.bind(np.where(record, k, 0), axis=axis)


def _to_sources(g, x, src, axis, add=False):
    """The cotangent of ``take_along_axis(x, src, axis)``: ``g`` written back
    to the sources (``add``: added, for sources that repeat)."""
    gx = np.zeros(x.shape, dtype=g.dtype, like=g)
    if add:
        np.add.at(gx, along_index(src, axis), g)
    else:
        gx[along_index(src, axis)] = g
    return gx


def _cumext_vjp(needs, g, out, x, axis, name):
    # each element's cotangent goes to the element it holds the value of
    return (_to_sources(g, x, _record_positions(out, x, axis, name), axis, add=True),)


def _cumext_jvp(t, out, x, axis, name):
    return t[0][along_index(_record_positions(out, x, axis, name), axis)]


def _cumext(name, ufunc):
    return defop(
        name, lambda x, axis: ufunc.accumulate(x, axis=axis),
        shape=lambda x, axis: Aval(x.shape, x.dtype),
        vjp=lambda needs, g, out, x, axis: _cumext_vjp(needs, g, out, x, axis, name),
        jvp=lambda t, out, x, axis: _cumext_jvp(t, out, x, axis, name))


#: ``np.maximum.accumulate`` / ``np.minimum.accumulate``: NaN propagates, as
#: in NumPy. Each element's derivative is that of the element the running
#: extremum holds the value of, the first to reach it (ties: the earlier
#: element, a subgradient; ``np.maximum``'s own rule splits ties instead).
CUMMAX = _cumext("cummax", np.maximum)
CUMMIN = _cumext("cummin", np.minimum)


# ---------------------------------------------------------------- sorting
def _sort_vjp(needs, g, out, x, axis):
    # g goes back to where each sorted element came from: a scatter by the
    # permutation (any order of ties is a valid subgradient)
    return (_to_sources(g, x, np.argsort(x, axis=axis, kind="stable"), axis),)


def _sort_jvp(t, out, x, axis):
    return t[0][along_index(np.argsort(x, axis=axis, kind="stable"), axis)]


SORT = defop(
    "sort", lambda x, axis: np.sort(x, axis=axis),
    shape=lambda x, axis: Aval(x.shape, x.dtype), vjp=_sort_vjp, jvp=_sort_jvp)

ARGSORT = defop(
    "argsort", lambda x, axis, kind: np.argsort(x, axis=axis, kind=kind), inactive=True,
    shape=lambda x, axis, kind: Aval(x.shape, INTP))

def _partition_sources(out, x, axis):
    """For each element of ``np.partition``'s result, an element of ``x`` of
    the same value: the two arrays hold the same values, so their stable
    sorts pair them (equal values, NaNs included, in some order: a valid
    subgradient at ties)."""
    return _to_sources(np.argsort(x, axis=axis, kind="stable"), x,
                       np.argsort(out, axis=axis, kind="stable"), axis)


def _partition_vjp(needs, g, out, x, kth, axis):
    return (_to_sources(g, x, _partition_sources(out, x, axis), axis),)


#: ``np.partition`` with NumPy's own introselect: its order of the elements
#: around the ``kth`` is NumPy's (no C or CUDA lowering: a tape holding it
#: replays interpreted).
PARTITION = defop(
    "partition", lambda x, kth, axis: np.partition(x, kth, axis=axis),
    shape=lambda x, kth, axis: Aval(x.shape, x.dtype), vjp=_partition_vjp,
    jvp=lambda t, out, x, kth, axis: t[0][along_index(_partition_sources(out, x, axis), axis)])
ARGPARTITION = defop(
    "argpartition", lambda x, kth, axis: np.argpartition(x, kth, axis=axis), inactive=True,
    shape=lambda x, kth, axis: Aval(x.shape, INTP))

# ``a`` 1-d and sorted, ``a`` and ``v`` of one dtype (the handler converts them
# as NumPy does). For an unsorted ``a`` NumPy's answer depends on its search
# order, so compiled code checks that ``a`` is sorted and otherwise replays
# the interpreter.
SEARCHSORTED = defop(
    "searchsorted", lambda a, v, side: np.searchsorted(a, v, side=side), inactive=True,
    shape=lambda a, v, side: Aval(tuple(v.shape), INTP))


# ---------------------------------------------------------------- inactive reductions
def _arg_shape(x, axis, keepdims):
    if axis is None:
        return Aval((1,) * len(x.shape) if keepdims else (), INTP)
    return Aval(reduced_shape(x.shape, (axis,), keepdims), INTP)


ARGMAX = defop(
    "argmax", lambda x, axis, keepdims: np.argmax(x, axis=axis, keepdims=keepdims),
    inactive=True, shape=_arg_shape)
ARGMIN = defop(
    "argmin", lambda x, axis, keepdims: np.argmin(x, axis=axis, keepdims=keepdims),
    inactive=True, shape=_arg_shape)


def _bool_shape(x, axis, keepdims):
    return Aval(reduced_shape(x.shape, axis, keepdims), np.dtype(np.bool_))


ALL = defop("all", lambda x, axis, keepdims: np.all(x, axis=axis, keepdims=keepdims),
            inactive=True, shape=_bool_shape)
ANY = defop("any", lambda x, axis, keepdims: np.any(x, axis=axis, keepdims=keepdims),
            inactive=True, shape=_bool_shape)


def _count_nonzero(x):
    r = np.count_nonzero(x)
    return r if hasattr(r, "dtype") else np.int64(r)


COUNT_NONZERO = defop(
    "count_nonzero", _count_nonzero, inactive=True,
    shape=lambda x: Aval((), np.dtype(np.int64)))

# Data-dependent shape: the handler guards the count first, so ``count`` is a
# static parameter that the replayed input is known to match.
ARGWHERE = defop(
    "argwhere", lambda x, count: np.argwhere(x), inactive=True,
    shape=lambda x, count: Aval((count, len(x.shape)), INTP))
