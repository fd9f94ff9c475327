"""Linear algebra: products, solves and decompositions."""
import numpy as np

from .elementwise import UFUNC_OPS
from .registry import Aval, defop, unbroadcast


def _matmul_shape(a, b):
    return Aval(np.matmul(np.empty(a.shape, np.bool_), np.empty(b.shape, np.bool_)).shape,
                np.result_type(*(np.dtype(d) if not isinstance(d, type) else d
                                 for d in (a.dtype, b.dtype))))


def _matmul_vjp(needs, g, out, a, b):
    """Cotangents of ``a @ b`` including 1-d operands and batch broadcasting."""
    a_nd, b_nd = np.ndim(a), np.ndim(b)
    a2 = np.reshape(a, (1,) + np.shape(a)) if a_nd == 1 else a
    b2 = np.reshape(b, np.shape(b) + (1,)) if b_nd == 1 else b
    g2 = g
    if a_nd == 1:
        g2 = np.expand_dims(g2, -2)
    if b_nd == 1:
        g2 = np.expand_dims(g2, -1)
    ga = gb = None
    if needs[0]:
        ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
        if a_nd == 1:
            ga = np.reshape(ga, ga.shape[:-2] + ga.shape[-1:])
        ga = unbroadcast(ga, np.shape(a))
    if needs[1]:
        gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
        if b_nd == 1:
            gb = np.reshape(gb, gb.shape[:-1])
        gb = unbroadcast(gb, np.shape(b))
    return ga, gb


def _matmul_jvp(t, out, a, b):
    ta, tb = t
    r = None
    if ta is not None:
        r = np.matmul(ta, b)
    if tb is not None:
        r2 = np.matmul(a, tb)
        r = r2 if r is None else r + r2
    return r


MATMUL = defop("matmul", np.matmul, shape=_matmul_shape, vjp=_matmul_vjp, jvp=_matmul_jvp)
UFUNC_OPS[np.matmul] = MATMUL    # a ufunc in NumPy 2: reaches __array_ufunc__
