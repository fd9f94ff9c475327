"""Elementwise ufuncs: arithmetic, comparisons and common math.

Each differentiable ufunc is described by its local partial derivatives, one
function per argument of ``(out, *args)``; the VJP (``unbroadcast(g * p)``) and
the JVP (``sum(t * p)``) both follow from that one table, so the two can never
disagree. A partial that returns the Python number 1 or -1 costs no multiply.
"""
import math

import numpy as np

from .registry import Aval, defop, unbroadcast

UFUNC_OPS = {}   # ufunc -> Op, read by the dispatcher

LN2 = math.log(2.0)
LN10 = math.log(10.0)


def ufunc_shape(uf):
    """Shape rule of a ufunc: broadcast shapes, NumPy 2's own dtype resolution."""
    def rule(*avals):
        shape = np.broadcast_shapes(*(a.shape for a in avals))
        dts = uf.resolve_dtypes(tuple(a.dtype for a in avals) + (None,) * uf.nout)
        return Aval(shape, dts[-1])
    return rule


def _times(g, p):
    if p is None:
        return None
    if isinstance(p, int) and not isinstance(p, bool):
        return g if p == 1 else (-g if p == -1 else g * p)
    return g * p


def _vjp_from(partials):
    def vjp(needs, g, out, *args):
        return tuple(
            unbroadcast(_times(g, p(out, *args)), np.shape(a)) if need else None
            for need, p, a in zip(needs, partials, args))
    return vjp


def _jvp_from(partials):
    def jvp(tangents, out, *args):
        acc = None
        for t, p in zip(tangents, partials):
            if t is None:
                continue
            term = _times(t, p(out, *args))
            acc = term if acc is None else acc + term
        if acc is None:
            return None
        if acc.shape != out.shape:
            acc = np.broadcast_to(acc, out.shape)
        return acc
    return jvp


def defufunc(uf, *partials, name=None, c=None):
    """Register ufunc ``uf``; ``partials`` are ``p_i(out, *args)`` or empty for inactive."""
    inactive = not partials
    op = defop(name or uf.__name__, uf, shape=ufunc_shape(uf),
               vjp=None if inactive else _vjp_from(partials),
               jvp=None if inactive else _jvp_from(partials),
               inactive=inactive, c=c)
    UFUNC_OPS[uf] = op
    return op


def _safe_log(a):
    # log(a) where a > 0, 0 elsewhere: d(a**b)/db at a <= 0 has no real value and
    # the product with y (0 at a = 0) must not become 0 * -inf = nan.
    pos = a > 0
    return np.where(pos, np.log(np.where(pos, a, 1)), 0)


def _pow_base(y, a, b):
    if isinstance(b, (int, float)) and not isinstance(b, bool):
        if b == 0:
            return 0
        if b == 1:
            return 1
        if b == 2:
            return 2 * a
        return b * a ** (b - 1)
    return np.where(b == 0, 0, b * a ** (b - 1))


# ---- max/min: NumPy's NaN rules; ties split the cotangent evenly (as JAX and autograd do)
def _winner(better, first, nan_ignoring):
    """Partial of max/min-like ufuncs w.r.t. argument ``first`` (True: a, False: b)."""
    def p(y, a, b):
        x, o = (a, b) if first else (b, a)
        win = better(x, o)
        if nan_ignoring:   # fmax/fmin: a NaN operand loses to a number
            win = win | (np.isnan(o) & ~np.isnan(x))
        return np.where(win, 1.0, np.where(x == o, 0.5, 0.0))
    return p


ONE = (lambda y, a, *r: 1)
NEG = (lambda y, a, *r: -1)

defufunc(np.add, ONE, lambda y, a, b: 1, c="({0} + {1})")
defufunc(np.subtract, ONE, lambda y, a, b: -1, c="({0} - {1})")
defufunc(np.multiply, lambda y, a, b: b, lambda y, a, b: a, c="({0} * {1})")
defufunc(np.true_divide, lambda y, a, b: 1 / b, lambda y, a, b: -y / b, c="({0} / {1})")
defufunc(np.power, _pow_base, lambda y, a, b: y * _safe_log(a))
defufunc(np.negative, NEG, c="(-{0})")
defufunc(np.positive, ONE, c="(+{0})")
defufunc(np.absolute, lambda y, a: np.sign(a))
defufunc(np.square, lambda y, a: 2 * a)
defufunc(np.reciprocal, lambda y, a: -(y * y))
defufunc(np.sqrt, lambda y, a: 0.5 / y)
defufunc(np.cbrt, lambda y, a: 1 / (3 * y * y))
defufunc(np.exp, lambda y, a: y)
defufunc(np.exp2, lambda y, a: y * LN2)
defufunc(np.expm1, lambda y, a: y + 1)
defufunc(np.log, lambda y, a: 1 / a)
defufunc(np.log2, lambda y, a: 1 / (a * LN2))
defufunc(np.log10, lambda y, a: 1 / (a * LN10))
defufunc(np.log1p, lambda y, a: 1 / (1 + a))
defufunc(np.sin, lambda y, a: np.cos(a))
defufunc(np.cos, lambda y, a: -np.sin(a))
defufunc(np.tan, lambda y, a: 1 + y * y)
defufunc(np.arcsin, lambda y, a: 1 / np.sqrt(1 - a * a))
defufunc(np.arccos, lambda y, a: -1 / np.sqrt(1 - a * a))
defufunc(np.arctan, lambda y, a: 1 / (1 + a * a))
defufunc(np.sinh, lambda y, a: np.cosh(a))
defufunc(np.cosh, lambda y, a: np.sinh(a))
defufunc(np.tanh, lambda y, a: 1 - y * y)
defufunc(np.arcsinh, lambda y, a: 1 / np.sqrt(a * a + 1))
defufunc(np.arccosh, lambda y, a: 1 / np.sqrt(a * a - 1))
defufunc(np.arctanh, lambda y, a: 1 / (1 - a * a))
defufunc(np.deg2rad, lambda y, a: math.pi / 180)
defufunc(np.rad2deg, lambda y, a: 180 / math.pi)
defufunc(np.arctan2, lambda y, a, b: b / (a * a + b * b), lambda y, a, b: -a / (a * a + b * b))
defufunc(np.hypot, lambda y, a, b: a / y, lambda y, a, b: b / y)
defufunc(np.logaddexp, lambda y, a, b: np.exp(a - y), lambda y, a, b: np.exp(b - y))
defufunc(np.logaddexp2, lambda y, a, b: np.exp2(a - y), lambda y, a, b: np.exp2(b - y))
defufunc(np.maximum, _winner(np.greater, True, False), _winner(np.greater, False, False))
defufunc(np.minimum, _winner(np.less, True, False), _winner(np.less, False, False))
defufunc(np.fmax, _winner(np.greater, True, True), _winner(np.greater, False, True))
defufunc(np.fmin, _winner(np.less, True, True), _winner(np.less, False, True))
defufunc(np.copysign, lambda y, a, b: np.sign(a) * np.sign(y), lambda y, a, b: 0)

# zero derivative almost everywhere, or integer/boolean results: inactive
for _uf in (np.sign, np.floor, np.ceil, np.trunc, np.rint, np.floor_divide,
            np.remainder, np.fmod, np.greater, np.greater_equal, np.less,
            np.less_equal, np.equal, np.not_equal, np.logical_and, np.logical_or,
            np.logical_xor, np.logical_not, np.isnan, np.isinf, np.isfinite,
            np.signbit, np.bitwise_and, np.bitwise_or, np.bitwise_xor, np.invert,
            np.left_shift, np.right_shift, np.heaviside, np.spacing, np.nextafter):
    defufunc(_uf)
