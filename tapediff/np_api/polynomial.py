"""Polynomials as coefficient arrays (highest power first, NumPy's legacy
``np.poly*`` API): ``np.polyval`` (Horner's scheme), ``np.vander``,
``np.polyder``, ``np.polyint``, ``np.polyadd``, ``np.polysub``,
``np.polymul``, ``np.polydiv``, ``np.poly`` (from 1-d roots) and
``np.polyfit``; ``np.poly1d`` objects with tracked coefficients work
through NumPy's own class (it is made of these functions and
``np.trim_zeros``), and these functions return one where NumPy does.

Composites following NumPy's code: values are NumPy's (``polymul`` and
``poly`` convolve, equal to NumPy to rounding; ``polyfit`` solves its least
squares through ``lstsq``, which is ``pinv`` here, equal to NumPy's ``gelsd``
to rounding). Derivatives come from the ops: ``polyfit``'s coefficients
are differentiable in ``x``, ``y`` and ``w``. ``np.roots`` (eigenvalues
of a companion matrix, so ``poly1d.roots`` too) is not supported; nor is
``np.poly`` of a square matrix (its eigenvalues).
"""
import operator
import warnings

import numpy as np

from ..errors import UnsupportedOperation
from ..numpy_dispatch import implements, on_tape
from ..tracer import Tracked
from ..tracer import operand as _arr


def _coeffs(p):
    """The coefficient array of ``p`` (a ``np.poly1d`` or array-like)."""
    return _arr(p.coeffs if isinstance(p, np.poly1d) else p)


def _1d(x):
    x = _coeffs(x)
    return np.reshape(x, (1,)) if x.ndim == 0 else x


def _as_given(result, *inputs):
    """``result`` as a ``np.poly1d`` where an input was one, as NumPy's
    functions return it."""
    return np.poly1d(result) if any(isinstance(x, np.poly1d) for x in inputs) else result


@implements(np.polyval)
def polyval(p, x):
    p = _arr(p)
    x = _arr(x)
    y = np.zeros_like(x)
    for i in range(len(p)):
        y = y * x + p[i]
    return y


@implements(np.vander)
def vander(x, N=None, increasing=False):
    """Columns 1, x, x^2, ... as NumPy builds them: a running product along
    each row (``multiply.accumulate``), so powers round as NumPy's."""
    x = _arr(x)
    if x.ndim != 1:
        raise ValueError("x must be a one-dimensional array or sequence.")
    n = x.shape[0] if N is None else operator.index(N)
    if n < 0:
        raise ValueError("negative dimensions are not allowed")
    dt = np.promote_types(x.dtype, int)
    x = x if x.dtype == dt else x.astype(dt)
    cols = []
    if n > 0:
        cols.append(np.ones((x.shape[0], 1), dt, like=x))
    if n > 1:
        cols.append(np.cumprod(np.broadcast_to(x[:, None], (x.shape[0], n - 1)), axis=1))
    if not cols:
        return np.zeros((x.shape[0], 0), dt, like=x)
    v = np.concatenate(cols, axis=1)
    return v if increasing else v[:, ::-1]


@implements(np.polyder)
def polyder(p, m=1):
    m = int(m)
    if m < 0:
        raise ValueError("Order of derivative must be positive (see polyint)")
    given, p = p, _coeffs(p)
    if p.ndim == 0:
        raise TypeError("len() of unsized object")
    for _ in range(m):
        n = p.shape[0] - 1
        p = p[:-1] * np.arange(n, 0, -1)
    return _as_given(p, given)


@implements(np.polyint)
def polyint(p, m=1, k=None):
    m = int(m)
    if m < 0:
        raise ValueError("Order of integral must be positive (see polyder)")
    k = np.zeros(m, float) if k is None else k
    k = _1d(k)
    if k.shape[0] == 1 and m > 1:
        k = k[0] * np.ones(m, float)
    if k.shape[0] < m:
        raise ValueError("k must be a scalar or a rank-1 array of length 1 or >m.")
    given, p = p, _coeffs(p)
    if m == 0:
        return _as_given(p, given)
    if p.ndim == 0:
        raise TypeError("len() of unsized object")
    for j in range(m):
        p = np.concatenate([p / np.arange(p.shape[0], 0, -1), np.reshape(k[j], (1,))])
    return _as_given(p, given)


def _aligned(a1, a2):
    """``a1`` and ``a2`` padded with leading zeros to one length, as NumPy's
    ``polyadd``/``polysub`` do (each in its own dtype)."""
    a1, a2 = _1d(a1), _1d(a2)
    diff = a2.shape[0] - a1.shape[0]
    if diff > 0:
        a1 = np.concatenate([np.zeros(diff, a1.dtype), a1])
    elif diff < 0:
        a2 = np.concatenate([np.zeros(-diff, a2.dtype), a2])
    return a1, a2


@implements(np.polyadd)
def polyadd(a1, a2):
    b1, b2 = _aligned(a1, a2)
    return _as_given(b1 + b2, a1, a2)


@implements(np.polysub)
def polysub(a1, a2):
    b1, b2 = _aligned(a1, a2)
    return _as_given(b1 - b2, a1, a2)


def _trimmed(a):
    """``a`` without its leading zeros (``[0]`` when nothing is left), as
    NumPy's ``poly1d`` keeps coefficients; their number is guarded."""
    a = np.trim_zeros(_1d(a), "f")
    return a if a.shape[0] else np.zeros(1, a.dtype, like=a)


@implements(np.polymul)
def polymul(a1, a2):
    return _as_given(np.convolve(_trimmed(a1), _trimmed(a2)), a1, a2)


@implements(np.polydiv)
def polydiv(u, v):
    """Quotient and remainder by NumPy's long division; the remainder's
    leading entries within ``allclose`` of zero are dropped, as NumPy drops
    them (how many is guarded: it is the remainder's length)."""
    a, b = _1d(u) + 0.0, _1d(v) + 0.0
    dt = np.result_type(a.dtype, b.dtype)
    m, n = a.shape[0] - 1, b.shape[0] - 1
    scale = 1.0 / b[0]
    like = a if type(a) is Tracked else b
    q = np.zeros((max(m - n + 1, 1),), dt, like=like)
    r = on_tape(a.astype(dt), like)
    for k in range(m - n + 1):
        d = scale * r[k]
        q[k] = d
        r[k:k + n + 1] -= d * b
    while np.allclose(r[0], 0, rtol=1e-14) and r.shape[-1] > 1:
        r = r[1:]
    return _as_given(q, u, v), _as_given(r, u, v)


@implements(np.poly)
def poly(seq_of_zeros):
    z = _arr(seq_of_zeros)
    if z.ndim == 2 and z.shape[0] == z.shape[1] and z.shape[0] != 0:
        raise UnsupportedOperation("np.poly of a square matrix (its characteristic "
                                   "polynomial, from eigvals) is not supported by tapediff")
    if z.ndim != 1 and not (z.ndim == 2 and 0 in z.shape):
        raise ValueError("input must be 1d or non-empty square 2d array.")
    if z.dtype.kind == "c":
        raise UnsupportedOperation("np.poly with complex roots is not supported by tapediff")
    z = np.ravel(z)
    if z.shape[0] == 0:
        return 1.0
    # NumPy's mintypecode: float32 stays, every other real type is float64
    dt = np.dtype(np.float32 if z.dtype == np.float32 else np.float64)
    z = z if z.dtype == dt else z.astype(dt)
    a = np.ones((1,), dt)
    for k in range(z.shape[0]):
        a = np.convolve(a, np.stack([np.ones((), dt, like=z), -z[k]]), mode="full")
    return a


@implements(np.polyfit)
def polyfit(x, y, deg, rcond=None, full=False, w=None, cov=False):
    """NumPy's least squares on the column-scaled Vandermonde matrix."""
    order = int(deg) + 1
    x, y = _arr(x) + 0.0, _arr(y) + 0.0
    if deg < 0:
        raise ValueError("expected deg >= 0")
    if x.ndim != 1:
        raise TypeError("expected 1D vector for x")
    if x.size == 0:
        raise TypeError("expected non-empty vector for x")
    if y.ndim < 1 or y.ndim > 2:
        raise TypeError("expected 1D or 2D array for y")
    if x.shape[0] != y.shape[0]:
        raise TypeError("expected x and y to have same length")
    if rcond is None:
        rcond = len(x) * np.finfo(x.dtype).eps
    lhs, rhs = vander(x, order), y
    if w is not None:
        w = _arr(w) + 0.0
        if w.ndim != 1:
            raise TypeError("expected a 1-d array for weights")
        if w.shape[0] != y.shape[0]:
            raise TypeError("expected w and y to have the same length")
        lhs = lhs * w[:, None]
        rhs = rhs * (w[:, None] if rhs.ndim == 2 else w)
    scale = np.sqrt(np.sum(lhs * lhs, axis=0))
    lhs = lhs / scale
    c, resids, rank, s = np.linalg.lstsq(lhs, rhs, rcond)
    c = (c.T / scale).T
    if rank != order and not full:
        warnings.warn("Polyfit may be poorly conditioned", np.exceptions.RankWarning,
                      stacklevel=3)
    if full:
        return c, resids, rank, s, rcond
    if not cov:
        return c
    vbase = np.linalg.inv(lhs.T @ lhs) / np.outer(scale, scale)
    if cov == "unscaled":
        fac = 1
    else:
        if len(x) <= order:
            raise ValueError("the number of data points must exceed order to scale the "
                             "covariance matrix")
        fac = resids / (len(x) - order)
    return c, (vbase * fac if y.ndim == 1 else vbase[:, :, None] * fac)
