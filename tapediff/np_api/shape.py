"""Shape manipulation handlers. Results that NumPy makes as views are views here."""
import numpy as np

from ..numpy_dispatch import implements
from ..ops.shape import BROADCAST_TO, RESHAPE, TRANSPOSE  # noqa: F401
from ..tracer import Tracked, bind, make_view


def _norm_shape(shape, size):
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    if -1 in shape:
        known = 1
        for s in shape:
            if s != -1:
                known *= s
        shape = tuple(size // known if known and s == -1 else (0 if s == -1 else s)
                      for s in shape)
    return shape


@implements(np.reshape)
def reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    if order != "C":
        raise NotImplementedError("tapediff: reshape with order other than 'C'")
    shape = _norm_shape(newshape if shape is None else shape, a.size)
    if tuple(shape) == a.shape:
        return a
    return make_view(a, "reshape", {"shape": shape})


@implements(np.transpose)
def transpose(a, axes=None):
    axes = tuple(range(a.ndim))[::-1] if axes is None else tuple(int(x) % a.ndim for x in axes)
    if axes == tuple(range(a.ndim)):
        return a
    return make_view(a, "transpose", {"axes": axes})


@implements(np.swapaxes)
def swapaxes(a, axis1, axis2):
    axes = list(range(a.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(a, axes)


@implements(np.expand_dims)
def expand_dims(a, axis):
    axis = (axis,) if isinstance(axis, int) else tuple(axis)
    nd = a.ndim + len(axis)
    axis = sorted(x % nd for x in axis)
    shape = list(a.shape)
    for ax in axis:
        shape.insert(ax, 1)
    return reshape(a, tuple(shape))


@implements(np.broadcast_to)
def broadcast_to(array, shape, subok=False):
    shape = _norm_shape(shape, None) if not isinstance(shape, int) else (shape,)
    if tuple(shape) == array.shape:
        return array
    if type(array) is not Tracked:
        return np.broadcast_to(array, shape)
    return make_view(array, "broadcast_to", {"shape": tuple(shape)}, readonly=True)


@implements(np.ravel)
def ravel(a, order="C"):
    return reshape(a, (a.size,))


__all__ = ["bind"]
