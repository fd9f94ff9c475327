"""Shape manipulation handlers.

Results that NumPy returns as *views* are views here (``make_view``), so that
writes through them reach the base exactly as in NumPy: reshape (when NumPy
can avoid a copy), ravel (likewise), transpose and friends, expand_dims,
squeeze, atleast_*d, split parts, flip, rot90, diagonal (read-only) and
broadcast_to (read-only). Everything NumPy returns as a new array (concatenate
and the stacks, tile, repeat, roll, pad, take, diag of a 1-d array, triu) is
a new array here too.

Composites use the primitives of :mod:`tapediff.ops.shape` directly for their
intermediates (never exposed, so they need no view bookkeeping) and end with a
result that shares no memory with their inputs (``_own``).
"""
import operator

import numpy as np
from numpy.lib.array_utils import normalize_axis_index, normalize_axis_tuple

from ..errors import UnsupportedOperation
from ..numpy_dispatch import assign, implements, to_array_escape
from ..ops.indexing import COPY, GATHER, encode_index
from ..ops.shape import (BROADCAST_TO, CONCATENATE, DIAG_EMBED, DIAGONAL, RESHAPE,
                         TRANSPOSE, norm_shape)
from ..tracer import Tracked, as_constant_array, bind, make_view, recorded


# ---------------------------------------------------------------- helpers
def _unsupported(func, what):
    return UnsupportedOperation(f"np.{func}: {what} is not supported by tapediff")


def _arr(x):
    """Tracked values stay; anything else becomes a constant ndarray."""
    if type(x) is Tracked:
        return x
    if isinstance(x, (np.ndarray, np.generic)):
        return x
    return as_constant_array(x)


def _static_ints(x, what):
    """Concrete integer data (a tracked argument is guarded, as for ``int(x)``)."""
    a = to_array_escape(x) if type(x) is Tracked else np.asarray(x)
    if a.dtype.kind not in "iub" and a.size:
        raise TypeError(f"{what} must be integers, got dtype {a.dtype}")
    return a


def _rs(x, shape):
    """Intermediate reshape (no view bookkeeping)."""
    shape = tuple(shape)
    return x if tuple(x.shape) == shape else bind(RESHAPE, x, shape=shape)


def _own(r, *srcs):
    """``r`` as a new array: copied when it shares memory with an input."""
    if type(r) is not Tracked and not any(type(s) is Tracked for s in srcs):
        return r
    rv = recorded(r)
    for s in srcs:
        if np.may_share_memory(rv, recorded(s)):
            return bind(COPY, r)
    return r


def _copy(x):
    return bind(COPY, x)


def _gather(a, idx):
    """``a[idx]`` for an advanced index (a new array), ``a`` tracked or not."""
    spec, arrays = encode_index(idx)
    return bind(GATHER, a, *arrays, index=spec)


def _out(r, out, func):
    if out is None:
        return r
    assign(out, Ellipsis, r, casting="same_kind", what=f"np.{func}(..., out=)")
    return out


def _viewable(a, shape):
    """True when NumPy reshapes ``a``'s recorded value without copying."""
    v = recorded(a)
    if not isinstance(v, np.ndarray):
        return False      # a NumPy scalar: reshaping makes a new array
    try:
        np.reshape(v, shape, copy=False)
    except ValueError:
        return False
    except TypeError:             # NumPy 2.0: no copy= argument
        w = v.view()
        try:
            w.shape = shape
        except AttributeError:
            return False
    return True


def _reshape_view(a, shape):
    """NumPy's reshape: a view when possible, else a copy."""
    shape = tuple(shape)
    if _viewable(a, shape):
        if tuple(a.shape) == shape:
            return a
        return make_view(a, "reshape", {"shape": shape})
    return bind(RESHAPE, a, shape=shape)


# ---------------------------------------------------------------- reshape and friends
@implements(np.reshape)
def reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    if order != "C":
        raise _unsupported("reshape", f"order={order!r} (only order='C')")
    if shape is None:
        if newshape is None:
            raise TypeError("reshape() missing required argument 'shape'")
        shape = newshape
    if type(a) is not Tracked:
        a = _arr(a)
        return np.reshape(a, shape) if copy is None else np.reshape(a, shape, copy=copy)
    shape = norm_shape(shape, a.size)
    if copy:
        return _copy(_rs(a, shape))
    if copy is False and not _viewable(a, shape):
        raise ValueError("Unable to avoid creating a copy while reshaping.")
    return _reshape_view(a, shape)


@implements(np.ravel)
def ravel(a, order="C"):
    if order != "C":
        raise _unsupported("ravel", f"order={order!r} (only order='C')")
    if type(a) is not Tracked:
        return np.ravel(_arr(a))
    return _reshape_view(a, (a.size,))


@implements(np.transpose)
def transpose(a, axes=None):
    if type(a) is not Tracked:
        return np.transpose(_arr(a), axes)
    nd = a.ndim
    if axes is None:
        axes = tuple(range(nd))[::-1]
    else:
        axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
        if len(axes) != nd:
            raise ValueError("axes don't match array")
        try:
            axes = normalize_axis_tuple(axes, nd)
        except ValueError as e:
            if "repeated" in str(e):
                raise ValueError("repeated axis in transpose") from None
            raise
    if axes == tuple(range(nd)):
        return a
    return make_view(a, "transpose", {"axes": axes})


@implements(np.matrix_transpose)
def matrix_transpose(x):
    if x.ndim < 2:
        raise ValueError(f"Input array must be at least 2-dimensional, but it is {x.ndim}")
    return swapaxes(x, -1, -2)


@implements(np.swapaxes)
def swapaxes(a, axis1, axis2):
    a = _arr(a)
    axis1 = normalize_axis_index(axis1, a.ndim, "axis1")
    axis2 = normalize_axis_index(axis2, a.ndim, "axis2")
    axes = list(range(a.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(a, axes)


@implements(np.moveaxis)
def moveaxis(a, source, destination):
    a = _arr(a)
    source = normalize_axis_tuple(source, a.ndim, "source")
    destination = normalize_axis_tuple(destination, a.ndim, "destination")
    if len(source) != len(destination):
        raise ValueError("`source` and `destination` arguments must have the same number "
                         "of elements")
    order = [n for n in range(a.ndim) if n not in source]
    for dest, src in sorted(zip(destination, source)):
        order.insert(dest, src)
    return transpose(a, order)


@implements(np.rollaxis)
def rollaxis(a, axis, start=0):
    a = _arr(a)
    n = a.ndim
    axis = normalize_axis_index(axis, n)
    if start < 0:
        start += n
    if not 0 <= start < n + 1:
        raise np.exceptions.AxisError(
            f"'start' arg requires {-n} <= start < {n + 1}, but {start} was passed in")
    if axis < start:
        start -= 1
    if axis == start:
        return a[...]
    axes = list(range(n))
    axes.remove(axis)
    axes.insert(start, axis)
    return transpose(a, axes)


@implements(np.expand_dims)
def expand_dims(a, axis):
    a = _arr(a)
    if type(axis) not in (tuple, list):
        axis = (axis,)
    nd = a.ndim + len(axis)
    axis = normalize_axis_tuple(axis, nd)
    it = iter(a.shape)
    shape = tuple(1 if i in axis else next(it) for i in range(nd))
    if type(a) is not Tracked:
        return np.reshape(a, shape)
    return _reshape_view(a, shape)


@implements(np.squeeze)
def squeeze(a, axis=None):
    a = _arr(a)
    if axis is None:
        axes = tuple(i for i, n in enumerate(a.shape) if n == 1)
    else:
        axes = normalize_axis_tuple(axis, a.ndim)
        if any(a.shape[i] != 1 for i in axes):
            raise ValueError("cannot select an axis to squeeze out which has size not "
                             "equal to one")
    shape = tuple(n for i, n in enumerate(a.shape) if i not in axes)
    if type(a) is not Tracked:
        return np.reshape(a, shape)
    return _reshape_view(a, shape)


def _atleast(a, nd):
    if type(a) is not Tracked:
        return (np.atleast_1d, np.atleast_2d, np.atleast_3d)[nd - 1](a)
    if a.ndim >= nd:
        return a
    if a.ndim == 0:
        return _reshape_view(a, (1,) * nd)
    if nd == 2:
        return a[np.newaxis, :]
    if a.ndim == 1:
        return a[np.newaxis, :, np.newaxis]
    return a[:, :, np.newaxis]


def _atleast_api(nd):
    def f(*arys):
        res = tuple(_atleast(a, nd) for a in arys)
        return res[0] if len(res) == 1 else res
    f.__name__ = f"atleast_{nd}d"
    return f


atleast_1d = implements(np.atleast_1d)(_atleast_api(1))
atleast_2d = implements(np.atleast_2d)(_atleast_api(2))
atleast_3d = implements(np.atleast_3d)(_atleast_api(3))


# ---------------------------------------------------------------- broadcasting
def _shape_arg(shape):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple(operator.index(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError("all elements of broadcast shape must be non-negative")
    return shape


@implements(np.broadcast_to)
def broadcast_to(array, shape, subok=False):
    shape = _shape_arg(shape)
    if type(array) is not Tracked:
        return np.broadcast_to(_arr(array), shape)
    # always a read-only view, as in NumPy (also when the shape is unchanged)
    return make_view(array, "broadcast_to", {"shape": shape}, readonly=True)


@implements(np.broadcast_arrays)
def broadcast_arrays(*args, subok=False):
    xs = [_arr(x) for x in args]
    shape = np.broadcast_shapes(*(tuple(x.shape) for x in xs))
    if all(tuple(x.shape) == shape for x in xs):
        return tuple(xs)
    # Arrays already of the full shape stay writable (views of themselves); the
    # stretched ones are read-only here, where NumPy 2 still lets them be written
    # with a DeprecationWarning (writing one element writes a whole broadcast line).
    return tuple(x if tuple(x.shape) == shape else broadcast_to(x, shape) for x in xs)


# ---------------------------------------------------------------- joining
def _seq(arrays, func):
    if type(arrays) is Tracked:
        arrays = list(arrays)
    try:
        return [_arr(x) for x in arrays]
    except TypeError:
        raise TypeError(f"np.{func}: arrays must be passed as a sequence") from None


@implements(np.concatenate)
def concatenate(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    xs = _seq(arrays, "concatenate")
    if not xs:
        raise ValueError("need at least one array to concatenate")
    if axis is None:
        xs = [_rs(x, (x.size,)) for x in xs]
        axis = 0
    else:
        if xs[0].ndim == 0:
            raise ValueError("zero-dimensional arrays cannot be concatenated")
        axis = normalize_axis_index(axis, xs[0].ndim)
    for i, x in enumerate(xs[1:], 1):
        if x.ndim != xs[0].ndim:
            raise ValueError(
                "all the input arrays must have same number of dimensions, but the array "
                f"at index 0 has {xs[0].ndim} dimension(s) and the array at index {i} has "
                f"{x.ndim} dimension(s)")
    if dtype is not None:
        dt = np.dtype(dtype)
        for x in xs:
            if not np.can_cast(x.dtype, dt, casting):
                raise TypeError(f"Cannot cast array data from {x.dtype!r} to {dt!r} "
                                f"according to the rule {casting!r}")
        xs = [x if x.dtype == dt else x.astype(dt) for x in xs]
    return _out(bind(CONCATENATE, *xs, axis=axis), out, "concatenate")


@implements(np.stack)
def stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    xs = _seq(arrays, "stack")
    if not xs:
        raise ValueError("need at least one array to stack")
    if len({tuple(x.shape) for x in xs}) != 1:
        raise ValueError("all input arrays must have the same shape")
    axis = normalize_axis_index(axis, xs[0].ndim + 1)
    xs = [_rs(x, x.shape[:axis] + (1,) + x.shape[axis:]) for x in xs]
    return concatenate(xs, axis=axis, out=out, dtype=dtype, casting=casting)


@implements(np.hstack)
def hstack(tup, *, dtype=None, casting="same_kind"):
    arrs = [_atleast(x, 1) for x in _seq(tup, "hstack")]
    axis = 0 if arrs and arrs[0].ndim == 1 else 1
    return concatenate(arrs, axis=axis, dtype=dtype, casting=casting)


@implements(np.vstack, *((np.row_stack,) if hasattr(np, "row_stack") else ()))
def vstack(tup, *, dtype=None, casting="same_kind"):
    return concatenate([_atleast(x, 2) for x in _seq(tup, "vstack")], axis=0, dtype=dtype,
                       casting=casting)


@implements(np.dstack)
def dstack(tup):
    return concatenate([_atleast(x, 3) for x in _seq(tup, "dstack")], axis=2)


@implements(np.column_stack)
def column_stack(tup):
    arrs = []
    for x in _seq(tup, "column_stack"):
        if x.ndim < 2:
            x = _rs(x, (x.size, 1))
        arrs.append(x)
    return concatenate(arrs, axis=1)


@implements(np.block)
def block(arrays):
    def depth(x, where):
        if type(x) is tuple:
            raise TypeError(f"{where} is a tuple. Only lists can be used to arrange blocks, "
                            "and np.block does not allow implicit conversion from tuple "
                            "to ndarray.")
        if type(x) is list:
            if not x:
                raise ValueError(f"List at {where} cannot be empty")
            ds = {depth(e, f"{where}[{i}]") for i, e in enumerate(x)}
            if len(ds) != 1:
                raise ValueError("List depths are mismatched.")
            return 1 + ds.pop()
        return 0

    def leaves(x):
        if type(x) is list:
            for e in x:
                yield from leaves(e)
        else:
            yield _arr(x)

    list_ndim = depth(arrays, "arrays")
    nd = max([list_ndim] + [a.ndim for a in leaves(arrays)])

    def build(x, d):
        if type(x) is list:
            return concatenate([build(e, d + 1) for e in x], axis=d - list_ndim)
        x = _arr(x)
        return _rs(x, (1,) * (nd - x.ndim) + tuple(x.shape))

    r = build(arrays, 0)
    return _copy(r) if list_ndim == 0 else r


@implements(np.append)
def append(arr, values, axis=None):
    arr, values = _arr(arr), _arr(values)
    if axis is None:
        return concatenate([_rs(arr, (arr.size,)), _rs(values, (values.size,))], axis=0)
    return concatenate([arr, values], axis=axis)


# ---------------------------------------------------------------- splitting (views)
def _split(ary, ios, axis, func, equal):
    ary = _arr(ary)
    axis = normalize_axis_index(axis, ary.ndim)
    n = ary.shape[axis]
    if type(ios) is Tracked:
        ios = _static_ints(ios, f"np.{func} indices")
    try:
        len(ios)
    except TypeError:                      # a number of sections (NumPy takes int(...))
        sections = int(ios)
        if sections <= 0:
            raise ValueError("number sections must be larger than 0.")
        if equal and n % sections:
            raise ValueError("array split does not result in an equal division")
        each, extras = divmod(n, sections)
        points = [0]
        for i in range(sections):
            points.append(points[-1] + each + (1 if i < extras else 0))
    else:
        points = [0] + [operator.index(i) for i in ios] + [n]
    lead = (slice(None),) * axis
    return [ary[lead + (slice(points[i], points[i + 1]),)] for i in range(len(points) - 1)]


@implements(np.split)
def split(ary, indices_or_sections, axis=0):
    return _split(ary, indices_or_sections, axis, "split", True)


@implements(np.array_split)
def array_split(ary, indices_or_sections, axis=0):
    return _split(ary, indices_or_sections, axis, "array_split", False)


@implements(np.hsplit)
def hsplit(ary, indices_or_sections):
    ary = _arr(ary)
    if ary.ndim == 0:
        raise ValueError("hsplit only works on arrays of 1 or more dimensions")
    return _split(ary, indices_or_sections, 1 if ary.ndim > 1 else 0, "hsplit", True)


@implements(np.vsplit)
def vsplit(ary, indices_or_sections):
    ary = _arr(ary)
    if ary.ndim < 2:
        raise ValueError("vsplit only works on arrays of 2 or more dimensions")
    return _split(ary, indices_or_sections, 0, "vsplit", True)


@implements(np.dsplit)
def dsplit(ary, indices_or_sections):
    ary = _arr(ary)
    if ary.ndim < 3:
        raise ValueError("dsplit only works on arrays of 3 or more dimensions")
    return _split(ary, indices_or_sections, 2, "dsplit", True)


def unstack(x, /, *, axis=0):
    x = _arr(x)
    if x.ndim == 0:
        raise ValueError("Input array must be at least 1-d.")
    return tuple(moveaxis(x, axis, 0))


if hasattr(np, "unstack"):            # NumPy >= 2.1
    implements(np.unstack)(unstack)


# ---------------------------------------------------------------- repetition
def _interleave(a, b):
    return tuple(v for pair in zip(a, b) for v in pair)


@implements(np.tile)
def tile(A, reps):
    try:
        tup = tuple(operator.index(r) for r in reps)
    except TypeError:
        tup = (operator.index(reps),)
    if any(t < 0 for t in tup):
        raise ValueError("negative dimensions are not allowed")
    A = _arr(A)
    nd = max(A.ndim, len(tup))
    shape = (1,) * (nd - A.ndim) + tuple(A.shape)
    tup = (1,) * (nd - len(tup)) + tup
    if all(t == 1 for t in tup):
        return _copy(_rs(A, shape))
    x = _rs(A, _interleave((1,) * nd, shape))
    x = bind(BROADCAST_TO, x, shape=_interleave(tup, shape))
    return _own(bind(RESHAPE, x, shape=tuple(t * s for t, s in zip(tup, shape))), A)


@implements(np.repeat)
def repeat(a, repeats, axis=None):
    a = _arr(a)
    if axis is None:
        a = _rs(a, (a.size,))
        axis = 0
    else:
        axis = normalize_axis_index(axis, a.ndim)
    reps = _static_ints(repeats, "np.repeat repeats")
    n = a.shape[axis]
    idx = np.repeat(np.arange(n), reps)       # validates like NumPy (negative, length)
    lead = (slice(None),) * axis
    if reps.size == 1:                         # one count for all: broadcast, no gather
        k = int(reps.reshape(-1)[0])
        s = tuple(a.shape)
        x = _rs(a, s[:axis + 1] + (1,) + s[axis + 1:])
        x = bind(BROADCAST_TO, x, shape=s[:axis + 1] + (k,) + s[axis + 1:])
        return _own(bind(RESHAPE, x, shape=s[:axis] + (n * k,) + s[axis + 1:]), a)
    return _gather(a, lead + (idx,))


# ---------------------------------------------------------------- reordering
@implements(np.flip)
def flip(m, axis=None):
    m = _arr(m)
    if axis is None:
        idx = (slice(None, None, -1),) * m.ndim
    else:
        axes = normalize_axis_tuple(axis, m.ndim)
        idx = tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(m.ndim))
    return m[idx]


@implements(np.fliplr)
def fliplr(m):
    m = _arr(m)
    if m.ndim < 2:
        raise ValueError("Input must be >= 2-d.")
    return m[:, ::-1]


@implements(np.flipud)
def flipud(m):
    m = _arr(m)
    if m.ndim < 1:
        raise ValueError("Input must be >= 1-d.")
    return m[::-1, ...]


@implements(np.rot90)
def rot90(m, k=1, axes=(0, 1)):
    axes = tuple(axes)
    if len(axes) != 2:
        raise ValueError("len(axes) must be 2.")
    m = _arr(m)
    if axes[0] == axes[1] or abs(axes[0] - axes[1]) == m.ndim:
        raise ValueError("Axes must be different.")
    if not all(-m.ndim <= ax < m.ndim for ax in axes):
        raise ValueError(f"Axes={axes} out of range for array of ndim={m.ndim}.")
    k = operator.index(k) % 4
    if k == 0:
        return m[:]
    if k == 2:
        return flip(flip(m, axes[0]), axes[1])
    perm = list(range(m.ndim))
    perm[axes[0]], perm[axes[1]] = perm[axes[1]], perm[axes[0]]
    if k == 1:
        return transpose(flip(m, axes[1]), perm)
    return flip(transpose(m, perm), axes[1])


@implements(np.roll)
def roll(a, shift, axis=None):
    a = _arr(a)
    if type(shift) is Tracked:
        shift = _static_ints(shift, "np.roll shift")
    if axis is None:
        flat = _rs(a, (a.size,))
        return _rs(roll(flat, shift, 0), a.shape)
    axes = normalize_axis_tuple(axis, a.ndim, allow_duplicate=True)
    b = np.broadcast(np.asarray(shift), np.asarray(axes if type(axis) in (tuple, list)
                                                   else axes[0]))
    if b.ndim > 1:
        raise ValueError("'shift' and 'axis' should be scalars or 1D sequences")
    shifts = [0] * a.ndim
    for sh, ax in b:
        shifts[int(ax)] += operator.index(sh)
    r = a
    for ax, sh in enumerate(shifts):
        n = r.shape[ax]
        s = sh % n if n else 0
        if not s:
            continue
        lead = (slice(None),) * ax
        r = bind(CONCATENATE, r[lead + (slice(n - s, None),)], r[lead + (slice(0, n - s),)],
                 axis=ax)
    return _copy(a) if r is a else r


# ---------------------------------------------------------------- padding
_PAD_MODES = {"constant": ("constant_values",), "empty": (), "edge": (), "wrap": (),
              "reflect": ("reflect_type",), "symmetric": ("reflect_type",)}


def _pairs(x, ndim, what):
    a = np.asarray(x)
    try:
        return np.broadcast_to(a, (ndim, 2))
    except ValueError:
        raise ValueError(f"np.pad: {what} of shape {a.shape} cannot be broadcast to "
                         f"({ndim}, 2)") from None


@implements(np.pad)
def pad(array, pad_width, mode="constant", **kwargs):
    if not isinstance(mode, str) or mode not in _PAD_MODES:
        raise _unsupported("pad", f"mode={mode!r} (supported: {', '.join(_PAD_MODES)})")
    extra = set(kwargs) - set(_PAD_MODES[mode])
    if extra:
        raise ValueError(f"unsupported keyword arguments for mode '{mode}': {extra}")
    a = _arr(array)
    nd = a.ndim
    pw = _static_ints(pad_width, "np.pad pad_width")
    if pw.dtype.kind not in "iu":
        raise TypeError("`pad_width` must be of integral type.")
    if np.any(pw < 0):
        raise ValueError("index can't contain negative values")
    pw = _pairs(pw, nd, "pad_width")
    if mode in ("constant", "empty"):
        cv = kwargs.get("constant_values", 0)
        if type(cv) is Tracked:
            cvp = np.broadcast_to(cv, (nd, 2)) if cv.shape != (nd, 2) else cv
        else:
            cvp = _pairs(cv, nd, "constant_values")
        r = a
        for ax in range(nd):
            parts = []
            for side in (0, 1):
                w = int(pw[ax, side])
                if not w:
                    continue
                shape = tuple(r.shape[:ax]) + (w,) + tuple(r.shape[ax + 1:])
                v = cvp[ax, side]
                if type(v) is Tracked:
                    if v.dtype != a.dtype:
                        v = v.astype(a.dtype)
                    block = np.broadcast_to(v, shape)
                else:
                    block = np.full(shape, v.item() if isinstance(v, np.generic) else v,
                                    dtype=a.dtype, like=r if type(r) is Tracked else None)
                parts.append((side, block))
            if parts:
                seq = [b for s, b in parts if s == 0] + [r] + [b for s, b in parts if s == 1]
                r = bind(CONCATENATE, *seq, axis=ax)
        return _copy(a) if r is a else r
    if kwargs.get("reflect_type", "even") != "even":
        raise _unsupported("pad", f"reflect_type={kwargs['reflect_type']!r} (only 'even')")
    r = a
    for ax in range(nd):
        before, after = int(pw[ax, 0]), int(pw[ax, 1])
        if not before and not after:
            continue
        # the source index of every output position along this axis, from NumPy itself
        idx = np.pad(np.arange(r.shape[ax]), (before, after), mode=mode)
        r = _gather(r, (slice(None),) * ax + (idx,))
    return _copy(a) if r is a else r


# ---------------------------------------------------------------- diagonals and triangles
@implements(np.diagonal)
def diagonal(a, offset=0, axis1=0, axis2=1):
    a = _arr(a)
    if type(a) is not Tracked:
        return np.diagonal(a, offset, axis1, axis2)
    nd = a.ndim
    if nd < 2:
        raise ValueError("diag requires an array of at least two dimensions")
    axis1 = normalize_axis_index(axis1, nd, "axis1")
    axis2 = normalize_axis_index(axis2, nd, "axis2")
    if axis1 == axis2:
        raise ValueError("axis1 and axis2 cannot be the same")
    params = {"offset": operator.index(offset), "axis1": axis1, "axis2": axis2}
    return make_view(a, "diagonal", params, readonly=True)


@implements(np.trace)
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    a = _arr(a)
    nd = a.ndim
    if nd < 2:
        raise ValueError("diag requires an array of at least two dimensions")
    axis1 = normalize_axis_index(axis1, nd, "axis1")
    axis2 = normalize_axis_index(axis2, nd, "axis2")
    if axis1 == axis2:
        raise ValueError("axis1 and axis2 cannot be the same")
    d = bind(DIAGONAL, a, offset=operator.index(offset), axis1=axis1, axis2=axis2)
    return _out(np.sum(d, axis=-1, dtype=dtype), out, "trace")


@implements(np.diag)
def diag(v, k=0):
    v = _arr(v)
    k = operator.index(k)
    if v.ndim == 1:
        n = v.shape[0] + abs(k)
        return bind(DIAG_EMBED, v, shape=(n, n), offset=k, axis1=0, axis2=1)
    if v.ndim == 2:
        return diagonal(v, k)
    raise ValueError("Input must be 1- or 2-d.")


@implements(np.diagflat)
def diagflat(v, k=0):
    v = _arr(v)
    return diag(_rs(v, (v.size,)), k)


def _tri_mask(m, k):
    if m.ndim < 1:
        raise ValueError("tril/triu need an array of at least one dimension")
    return np.tri(*m.shape[-2:], k=k, dtype=bool)


@implements(np.triu)
def triu(m, k=0):
    m = _arr(m)
    return np.where(_tri_mask(m, operator.index(k) - 1), np.zeros((), m.dtype), m)


@implements(np.tril)
def tril(m, k=0):
    m = _arr(m)
    return np.where(_tri_mask(m, operator.index(k)), m, np.zeros((), m.dtype))


# ---------------------------------------------------------------- take / along axis
def _int_indices(indices, func):
    if type(indices) is Tracked:
        if indices.dtype.kind == "b":
            return indices.astype(np.intp)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"np.{func}: indices must be integers, got {indices.dtype}")
        return indices
    idx = np.asarray(indices)
    if idx.dtype.kind == "b" or (idx.size == 0 and idx.dtype.kind not in "iu"):
        return idx.astype(np.intp)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"Cannot cast array data from {idx.dtype!r} to "
                        f"{np.dtype(np.intp)!r} according to the rule 'safe'")
    return idx


@implements(np.take)
def take(a, indices, axis=None, out=None, mode="raise"):
    if mode != "raise":
        raise _unsupported("take", f"mode={mode!r} (only mode='raise')")
    a = _arr(a)
    idx = _int_indices(indices, "take")
    if axis is None:
        a = _rs(a, (a.size,))
        axis = 0
    else:
        axis = normalize_axis_index(axis, a.ndim)
    return _out(_gather(a, (slice(None),) * axis + (idx,)), out, "take")


def _along_axis_index(shape, indices, axis):
    if indices.dtype.kind not in "iu":
        raise IndexError("`indices` must be an integer array")
    if len(shape) != indices.ndim:
        raise ValueError("`indices` and `arr` must have the same number of dimensions")
    nd = len(shape)
    fancy = []
    for dim, n in enumerate(shape):
        if dim == axis:
            fancy.append(indices)
        else:
            fancy.append(np.arange(n).reshape((1,) * dim + (-1,) + (1,) * (nd - dim - 1)))
    return tuple(fancy)


@implements(np.take_along_axis)
def take_along_axis(arr, indices, axis=-1):
    arr = _arr(arr)
    indices = _arr(indices)
    if axis is None:
        if indices.ndim != 1:
            raise ValueError("when axis=None, `indices` must have a single dimension.")
        arr = _rs(arr, (arr.size,))
        axis = 0
    else:
        axis = normalize_axis_index(axis, arr.ndim)
    return _gather(arr, _along_axis_index(arr.shape, indices, axis))


@implements(np.put_along_axis)
def put_along_axis(arr, indices, values, axis):
    if axis is None:
        raise _unsupported("put_along_axis", "axis=None (NumPy 2 writes it into a temporary "
                                             "copy of arr; index arr.flat yourself)")
    indices = _arr(indices)
    axis = normalize_axis_index(axis, np.ndim(arr))
    arr[_along_axis_index(arr.shape, indices, axis)] = values


__all__ = ["bind", "TRANSPOSE"]


@implements(np.resize)
def resize(a, new_shape):
    """NumPy's ``np.resize``: the raveled elements repeated to fill
    ``new_shape`` (zeros for an empty ``a``)."""
    if isinstance(new_shape, (int, np.integer)):
        new_shape = (new_shape,)
    new_shape = tuple(operator.index(n) for n in new_shape)
    a = np.ravel(a)
    if any(n < 0 for n in new_shape):
        raise ValueError("all elements of `new_shape` must be non-negative")
    size = 1
    for n in new_shape:
        size *= n
    if a.size == 0 or size == 0:
        return np.zeros(new_shape, a.dtype, like=a)
    repeats = (size + a.size - 1) // a.size
    return np.reshape(np.concatenate((a,) * repeats)[:size], new_shape)
