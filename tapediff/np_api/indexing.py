"""Index arithmetic: ``np.ix_``, ``np.unravel_index``, ``np.ravel_multi_index``
and ``np.choose``.

Indices are data, not derivatives: tracked integer arrays stay on the tape
(so new indices replay without re-recording), and the checks NumPy makes on
them (out of bounds, an invalid choice) are guards that raise NumPy's error.
``np.choose`` is differentiable in its choices (a gather along the stacked
choices).
"""
import operator

import numpy as np

from ..numpy_dispatch import implements
from ..tracer import operand as _arr


@implements(np.ix_)
def ix_(*args):
    out, nd = [], len(args)
    for k, new in enumerate(args):
        new = _arr(new)
        if new.size == 0 and new.dtype.kind == "f":
            new = new.astype(np.intp)
        if new.ndim != 1:
            raise ValueError("Cross index must be 1 dimensional")
        if new.dtype == np.bool_:
            new, = new.nonzero()
        out.append(np.reshape(new, (1,) * k + (new.shape[0],) + (1,) * (nd - k - 1)))
    return tuple(out)


def _int_indices(x, what):
    x = _arr(x)
    if x.dtype.kind not in "iub":
        raise TypeError(f"only int indices permitted ({what} has dtype {x.dtype})")
    return x if x.dtype == np.intp else x.astype(np.intp)


def _dims(shape):
    dims = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    return tuple(operator.index(d) for d in dims)


def _order(order):
    if order not in ("C", "F"):
        raise ValueError("only 'C' or 'F' order is permitted")
    return order


@implements(np.unravel_index)
def unravel_index(indices, shape, order="C"):
    dims = _dims(shape)
    idx = _int_indices(indices, "indices")
    size = int(np.prod(dims, dtype=np.int64))
    bad = (idx < 0) | (idx >= size)
    if np.any(bad):
        first = np.asarray(indices).ravel()[np.argmax(np.ravel(bad))] if idx.ndim else indices
        raise ValueError(f"index {int(first)} is out of bounds for array with size {size}")
    coords = []
    for n in (reversed(dims) if _order(order) == "C" else dims):
        coords.append(idx % n)
        idx = idx // n
    return tuple(reversed(coords)) if order == "C" else tuple(coords)


@implements(np.ravel_multi_index)
def ravel_multi_index(multi_index, dims, mode="raise", order="C"):
    dims = _dims(dims)
    if len(multi_index) != len(dims):
        raise ValueError(f"parameter multi_index must be a sequence of length {len(dims)}")
    modes = (mode,) * len(dims) if isinstance(mode, str) else tuple(mode)
    if len(modes) != len(dims):
        raise ValueError("mode must be a string or a sequence of the same length as dims")
    coords = np.broadcast_arrays(*(_int_indices(m, "multi_index") for m in multi_index))
    axes = range(len(dims)) if _order(order) == "C" else reversed(range(len(dims)))
    flat = None
    for d in axes:
        c = _in_range(coords[d], dims[d], modes[d], "coordinates")
        flat = c if flat is None else flat * dims[d] + c
    return flat


def _in_range(i, n, mode, what):
    """Indices ``i`` into ``n`` items by NumPy's ``mode``: wrapped, clipped,
    or checked (a guard raising NumPy's error)."""
    if mode == "wrap":
        return i % n
    if mode == "clip":
        return np.clip(i, 0, n - 1)
    if mode != "raise":
        raise ValueError(f"clipmode must be one of 'clip', 'raise', or 'wrap' (got {mode!r})")
    if np.any((i < 0) | (i >= n)):
        raise ValueError(f"invalid entry in {what} array")
    return i


@implements(np.choose)
def choose(a, choices, out=None, mode="raise"):
    """``choices[a[i]][i]`` with ``a`` and the choices broadcast together, as a
    gather along the stacked choices (their common dtype)."""
    a = _int_indices(a, "a")
    choices = [_arr(c) for c in choices]
    n = len(choices)
    if n == 0:
        raise ValueError("0-length sequence.")
    *choices, a = np.broadcast_arrays(*choices, a)
    a = _in_range(a, n, mode, "choice")
    r = np.take_along_axis(np.stack(choices), a[None], axis=0)[0]
    if out is None:
        return r
    out[...] = r
    return out
