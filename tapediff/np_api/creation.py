"""Array creation: ``like=`` constructors, ``*_like``, copies, ``where``, ``clip``;
and what depends on a tracked array's dtype or shape only (``result_type``,
``can_cast``, ``common_type``, ``iscomplex``/``isreal``, the
``*_indices_from`` functions)."""
import numpy as np

from ..numpy_dispatch import FUNCTIONS, copy, full_like, implements
from ..ops.indexing import WHERE
from ..ops.registry import BY_NAME
from ..tracer import Tracked, bind, tape_of


def _shape_of(shape):
    return tuple(int(s) for s in shape) if isinstance(shape, (tuple, list)) else (int(shape),)


def _like_dtype(a, dtype):
    return np.dtype(dtype) if dtype is not None else a.dtype


@implements(np.zeros, np.empty)
def zeros(shape, dtype=float, order="C", *, like=None, device=None):
    return full_like(like, _shape_of(shape), dtype, 0)


@implements(np.ones)
def ones(shape, dtype=None, order="C", *, like=None, device=None):
    return full_like(like, _shape_of(shape), dtype, 1)


@implements(np.full)
def full(shape, fill_value, dtype=None, order="C", *, like=None, device=None):
    if type(fill_value) is Tracked:
        return np.broadcast_to(fill_value, _shape_of(shape)).copy()
    dt = dtype if dtype is not None else np.asarray(fill_value).dtype
    return full_like(like, _shape_of(shape), dt, fill_value.item()
                     if isinstance(fill_value, np.generic) else fill_value)


@implements(np.zeros_like, np.empty_like)
def zeros_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return full_like(a, a.shape if shape is None else shape, _like_dtype(a, dtype), 0)


@implements(np.ones_like)
def ones_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return full_like(a, a.shape if shape is None else shape, _like_dtype(a, dtype), 1)


@implements(np.full_like)
def full_like_(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
    if type(fill_value) is Tracked:
        return np.broadcast_to(fill_value, a.shape if shape is None else shape).astype(
            _like_dtype(a, dtype))
    return full_like(a, a.shape if shape is None else shape, _like_dtype(a, dtype), fill_value)


@implements(np.arange)
def arange(*args, dtype=None, like=None, device=None):
    val = np.arange(*args, dtype=dtype)
    return full_like(like, val.shape, val.dtype, 0) + val


@implements(np.copy)
def copy_(a, order="K", subok=False):
    return copy(a)


@implements(np.array, np.asarray, np.asanyarray, np.ascontiguousarray)
def array(obj, dtype=None, order=None, *, like=None, copy=None, ndmin=0, subok=False,
          device=None):
    """``np.array``/``np.asarray`` with ``like=`` or of tracked values: stacks
    nested lists of tracked values; the memory order is not tracked (values
    are the same in any order)."""
    if order not in (None, "K", "A", "C", "F"):
        raise ValueError(f"np.array: order must be one of 'K', 'A', 'C', 'F', got {order!r}")
    if type(obj) is Tracked:
        out = obj if dtype is None or np.dtype(dtype) == obj.dtype else obj.astype(dtype)
        out = out.copy() if copy else out
    elif isinstance(obj, (list, tuple)) and any(
            type(o) is Tracked or isinstance(o, (list, tuple)) for o in obj):
        out = FUNCTIONS[np.stack]([array(o, dtype) for o in obj])
    else:
        val = np.asarray(obj, dtype=dtype)
        out = val if like is None else full_like(like, val.shape, val.dtype, 0) + val
    if out.ndim < ndmin:
        out = np.reshape(out, (1,) * (ndmin - out.ndim) + tuple(out.shape))
    return out


@implements(np.where)
def where(condition, x=None, y=None):
    if x is None and y is None:
        return FUNCTIONS[np.nonzero](condition)
    return bind(WHERE, condition, x, y)


@implements(np.clip)
def clip(a, a_min=None, a_max=None, out=None, **kw):
    a_min = kw.pop("min", a_min)
    a_max = kw.pop("max", a_max)
    r = a
    if a_min is not None:
        r = np.maximum(r, a_min)
    if a_max is not None:
        r = np.minimum(r, a_max)
    if out is not None:
        out[...] = r
        return out
    return r


@implements(np.round, np.around)
def round_(a, decimals=0, out=None):
    r = bind(BY_NAME["round"], a, decimals=int(decimals))
    if out is not None:
        out[...] = r
        return out
    return r


@implements(np.shape)
def shape(a):
    return a.shape


@implements(np.ndim)
def ndim(a):
    return a.ndim


@implements(np.size)
def size(a, axis=None):
    return a.size if axis is None else a.shape[axis]


@implements(np.result_type)
def result_type(*arrays_and_dtypes):
    return np.result_type(*(a.dtype if type(a) is Tracked else a for a in arrays_and_dtypes))


@implements(np.iscomplexobj)
def iscomplexobj(x):
    return x.dtype.kind == "c"


@implements(np.isrealobj)
def isrealobj(x):
    return x.dtype.kind != "c"


@implements(np.iscomplex)
def iscomplex(x):
    # tracked arrays are real: NumPy's answer for real input, a new False array
    return np.zeros(np.shape(x), bool)[()]


@implements(np.isreal)
def isreal(x):
    return np.imag(x) == 0


@implements(np.real_if_close)
def real_if_close(a, tol=100):
    return a                  # real already: NumPy returns it as it is


@implements(np.astype)
def astype_(x, dtype, /, *, copy=True, device=None):
    if device not in (None, "cpu"):
        raise ValueError(f'Device not understood. Only "cpu" is allowed, but received: {device}')
    return x.astype(dtype, copy=copy)


@implements(np.can_cast)
def can_cast(from_, to, casting="safe"):
    # dtype rules only: a tracked value stands for its dtype
    return np.can_cast(from_.dtype if type(from_) is Tracked else from_, to, casting)


@implements(np.common_type)
def common_type(*arrays):
    return np.common_type(*(np.empty(0, a.dtype) if type(a) is Tracked else a for a in arrays))


def _indices_from(name, arr, need):
    if not need(np.ndim(arr)):
        raise ValueError("input array must be 2-d" if name != "diag_indices_from"
                         else "input array must be at least 2-d")
    return np.shape(arr)


@implements(np.tril_indices_from)
def tril_indices_from(arr, k=0):
    shape = _indices_from("tril_indices_from", arr, lambda nd: nd == 2)
    return np.tril_indices(shape[-2], k=k, m=shape[-1])


@implements(np.triu_indices_from)
def triu_indices_from(arr, k=0):
    shape = _indices_from("triu_indices_from", arr, lambda nd: nd == 2)
    return np.triu_indices(shape[-2], k=k, m=shape[-1])


@implements(np.diag_indices_from)
def diag_indices_from(arr):
    shape = _indices_from("diag_indices_from", arr, lambda nd: nd >= 2)
    if len(set(shape)) != 1:
        raise ValueError("All dimensions of input must be of equal length")
    return np.diag_indices(shape[0], len(shape))


__all__ = ["tape_of"]
