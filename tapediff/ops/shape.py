"""Shape ops: reshape, transpose, broadcasting and friends.

Ops flagged ``view=True`` may return NumPy views of their argument; the
dispatcher registers their results as views of the argument's storage so
writes through them reach the base, exactly as in NumPy.
"""
import numpy as np

from .registry import Aval, defop


def _reshape_shape(x, shape):
    return Aval(np.empty(x.shape, np.bool_).reshape(shape).shape, x.dtype)


RESHAPE = defop(
    "reshape", lambda x, shape: np.reshape(x, shape), view=True, shape=_reshape_shape,
    vjp=lambda needs, g, out, x, shape: (np.reshape(g, np.shape(x)),),
    jvp=lambda t, out, x, shape: np.reshape(t[0], shape))


def _inverse(axes):
    return tuple(int(i) for i in np.argsort(axes))


TRANSPOSE = defop(
    "transpose", lambda x, axes: np.transpose(x, axes), view=True,
    shape=lambda x, axes: Aval(tuple(x.shape[a] for a in axes), x.dtype),
    vjp=lambda needs, g, out, x, axes: (np.transpose(g, _inverse(axes)),),
    jvp=lambda t, out, x, axes: np.transpose(t[0], axes))


BROADCAST_TO = defop(
    "broadcast_to", lambda x, shape: np.broadcast_to(x, shape), view=True,
    shape=lambda x, shape: Aval(tuple(shape), x.dtype),
    vjp=lambda needs, g, out, x, shape: (_sum_to(g, np.shape(x)),),
    jvp=lambda t, out, x, shape: np.broadcast_to(t[0], shape))


def _sum_to(g, shape):
    from .registry import unbroadcast
    return unbroadcast(g, shape)
