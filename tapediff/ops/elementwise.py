"""Elementwise ufuncs: arithmetic, comparisons and common math.

Each differentiable ufunc is described by its local partial derivatives, one
function per argument of ``(out, *args)``; the VJP (``unbroadcast(g * p)``) and
the JVP (``sum(t * p)``) both follow from that one table, so the two can never
disagree. A partial that returns the Python number 1 or -1 costs no multiply.
"""
import math
import operator

import numpy as np

from ..tape import CONSTANT
from .registry import Aval, defop, unbroadcast

UFUNC_OPS = {}   # ufunc -> Op, read by the dispatcher

_BOOL = np.dtype(np.bool_)
LN2 = math.log(2.0)
LN10 = math.log(10.0)


def ufunc_shape(uf):
    """Shape rule of a ufunc: broadcast shapes, NumPy 2's own dtype resolution."""
    def rule(*avals):
        shape = np.broadcast_shapes(*(a.shape for a in avals))
        # resolve_dtypes takes the weak Python types int, float and complex but not
        # bool; bool is the lowest kind, so its strong dtype promotes the same way
        dts = uf.resolve_dtypes(tuple(_BOOL if a.dtype is bool else a.dtype for a in avals)
                                + (None,) * uf.nout)
        return Aval(shape, dts[-1])
    return rule


def _baked(a):
    """True for a tracked handle on a constant baked into its tape.

    Only a CONSTANT-kind slot has the same value on every replay. The activity
    class is not enough: in a folded loop body a number that changes per
    iteration is an input of class CONST."""
    t = getattr(a, "_t", None)
    return t is not None and t.skind[a._s] == CONSTANT


def _known_finite(p):
    """True when multiplier ``p`` is finite for every replay: a finite Python
    number, or a baked constant with only finite values."""
    if isinstance(p, (int, float)) and not isinstance(p, bool):
        return math.isfinite(p)
    v = p
    if _baked(p):
        v = p._v
    elif hasattr(p, "_c"):                    # may change on replay
        return False
    if isinstance(v, (np.ndarray, np.generic)) and v.dtype.kind in "biuf":
        return bool(np.all(np.isfinite(v)))
    return isinstance(v, (int, float, bool)) and math.isfinite(v)


def _times(g, p):
    """``g * p`` with *strong zeros*: where ``g`` is exactly 0 the product is 0
    even when ``p`` is infinite or NaN.

    Why: a zero cotangent means "this output does not matter here" (the branch
    ``np.where`` did not take, elements a write overwrote, items a gather did
    not read). Without the mask ``np.where(x > 0, np.sqrt(x), 0.0)`` has a NaN
    gradient at ``x = -1`` (0 * the NaN partial of sqrt there) and
    ``np.where(c, x, np.inf * x)`` a NaN in the taken branch (0 * inf). The
    mask is skipped when ``p`` is a known-finite constant, where it cannot
    change the result.
    """
    if p is None:
        return None
    if isinstance(p, (int, float)) and not isinstance(p, bool):
        if p == 1:
            return g
        if p == -1:
            return -g
        if p == 0:
            return None
    if _known_finite(p):
        return g * p
    return np.where(g == 0, 0, g * p)


class _Direct:
    """A partial given as ``fn(g, out, *args) -> g * p`` (already multiplied).

    Used where the product is better expressed as a selection, which keeps the
    cotangent's dtype and exact zeros (max/min winners)."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn


def _apply(part, g, out, args):
    if isinstance(part, _Direct):
        return part.fn(g, out, *args)
    return _times(g, part(out, *args))


def _static(a):
    """The number itself for a handle on a weak Python scalar constant.

    The reverse and forward sweeps call the rules with tracked handles for every
    argument, constants included, so ``x ** 2`` would see a tracked ``2`` and
    take the general (array-exponent) path, and ``x * 2.0`` would multiply by a
    tracked constant. A baked Python number never changes on replay, so the
    rules may use its value (and their Python-number fast paths).
    """
    if _baked(a):
        v = a._v
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return v
    return a


def _vjp_from(partials):
    def vjp(needs, g, out, *args):
        args = tuple(_static(a) for a in args)
        cts = []
        for need, p, a in zip(needs, partials, args):
            c = _apply(p, g, out, args) if need else None
            # None is a symbolic zero (e.g. d(x**0)/dx): no array is built for it
            cts.append(None if c is None else unbroadcast(c, np.shape(a)))
        return tuple(cts)
    return vjp


def _jvp_from(partials):
    def jvp(tangents, out, *args):
        args = tuple(_static(a) for a in args)
        acc = None
        for t, p in zip(tangents, partials):
            if t is None:
                continue
            term = _apply(p, t, out, args)
            if term is None:
                continue
            acc = term if acc is None else acc + term
        if acc is None:
            return None
        if acc.shape != out.shape:
            acc = np.broadcast_to(acc, out.shape)
        return acc
    return jvp


# Python's operators apply the same NumPy ufuncs to arrays, NumPy scalars and
# tracked values, but skip the ufunc-call machinery: on NumPy scalars
# ``operator.add`` costs ~50 ns where ``np.add`` costs ~420 ns (``**``: 56 vs
# 610 ns). Scalar loops record and replay through these forwards (a wrapper
# around the operator costs ~60 ns more, still far below the ufunc call).
_OPERATOR_FORWARD = {
    np.add: operator.add, np.subtract: operator.sub, np.multiply: operator.mul,
    np.true_divide: operator.truediv, np.power: operator.pow, np.negative: operator.neg,
    np.floor_divide: operator.floordiv, np.remainder: operator.mod,
    np.less: operator.lt, np.less_equal: operator.le, np.greater: operator.gt,
    np.greater_equal: operator.ge, np.equal: operator.eq, np.not_equal: operator.ne,
}


_PYNUM = (int, float, bool)


def _operator_forward(uf, fn):
    """``fn`` (an operator), except on Python numbers alone: there the ufunc
    gives a NumPy scalar (strong dtype) where the operator would give a Python
    number (weak), and replay must promote exactly as recording did."""
    if uf.nin == 1:
        def forward(a):
            return uf(a) if type(a) in _PYNUM else fn(a)
    else:
        def forward(a, b):
            return uf(a, b) if type(a) in _PYNUM and type(b) in _PYNUM else fn(a, b)
    forward.__name__ = uf.__name__
    return forward


def defufunc(uf, *partials, name=None, c=None):
    """Register ufunc ``uf``; ``partials`` are ``p_i(out, *args)`` or empty for inactive."""
    inactive = not partials
    forward = _operator_forward(uf, _OPERATOR_FORWARD[uf]) if uf in _OPERATOR_FORWARD else uf
    op = defop(name or uf.__name__, forward, shape=ufunc_shape(uf),
               vjp=None if inactive else _vjp_from(partials),
               jvp=None if inactive else _jvp_from(partials),
               inactive=inactive, c=c)
    UFUNC_OPS[uf] = op
    return op


def _recip(b):
    """1 / b with IEEE results for a Python number too (1 / 0 is inf, not an error)."""
    if isinstance(b, (int, float)) and b == 0:
        return math.copysign(math.inf, b)
    return 1 / b


def _safe_log(a):
    # log(a) where a > 0, 0 elsewhere: d(a**b)/db at a <= 0 has no real value and
    # the product with y (0 at a = 0) must not become 0 * -inf = nan.
    if isinstance(a, (int, float)):   # a constant base: a weak Python float keeps dtypes
        return math.log(a) if a > 0 else 0.0
    pos = a > 0
    return np.where(pos, np.log(np.where(pos, a, 1)), 0)


def _pow_base(y, a, b):
    if isinstance(b, (int, float)) and not isinstance(b, bool):
        if b == 0:
            return None
        if b == 1:
            return 1
        if b == 2:
            return 2 * a
        return b * a ** (b - 1)
    # exponent 1 where b == 0 (the result is replaced by 0 there anyway): no
    # spurious 0 ** -1 division warning and no 0 * inf
    z = b == 0
    return np.where(z, 0, b * a ** np.where(z, 1, b - 1))


# ---- max/min: NumPy's NaN rules; ties split the cotangent evenly (as JAX and autograd do)
def _winner(better, first, nan_ignoring):
    """Partial of max/min-like ufuncs w.r.t. argument ``first`` (True: a, False: b).

    maximum/minimum propagate NaN: a NaN operand is the result, so it takes the
    whole cotangent (the other operand gets 0). fmax/fmin ignore NaN: the
    number is the result and takes the cotangent. Two NaNs, like equal
    values, share it 0.5/0.5. Written as a selection of ``g`` so the result
    keeps g's dtype (float32 stays float32) and losers get exact zeros.
    """
    def apply(g, y, a, b):
        x, o = (a, b) if first else (b, a)
        win = better(x, o)
        tie = x == o
        if _known_finite(o):        # e.g. np.maximum(x, 0.0): o is never NaN
            if not nan_ignoring:
                win = np.logical_or(win, np.isnan(x))
        else:
            xn, on = np.isnan(x), np.isnan(o)
            if nan_ignoring:    # fmax/fmin: a number beats NaN
                win = np.logical_or(win, np.logical_and(on, np.logical_not(xn)))
            else:               # maximum/minimum: NaN beats a number
                win = np.logical_or(win, np.logical_and(xn, np.logical_not(on)))
            tie = np.logical_or(tie, np.logical_and(xn, on))
        return np.where(win, g, np.where(tie, 0.5 * g, 0))
    return _Direct(apply)


# ---- partials with safe limits at infinities (IEEE inputs give IEEE-sensible gradients)
def _unit(x, o, h):
    """``x / h`` with ``h = hypot(x, o)``, and its limits: 0 at the origin, and for
    an infinite ``h`` the value for the directions of the infinite operands
    (x = inf, o = 1 gives 1; x = 1, o = inf gives 0), where ``x / h`` is inf/inf."""
    inf = np.isinf(h)
    xs = np.where(inf, np.where(np.isinf(x), np.sign(x), 0), x)
    os = np.where(inf, np.where(np.isinf(o), np.sign(o), 0), o)
    hs = np.where(inf, np.hypot(xs, os), h)
    return np.where(h == 0, 0, xs / np.where(h == 0, 1, hs))


def _arctan2_a(y, a, b):
    # d/da atan2(a, b) = b / (a^2 + b^2) = (b/h) / h: no overflow of a*a, and 0
    # (not inf/inf) when an operand is infinite
    h = np.hypot(a, b)
    return _unit(b, a, h) / h


def _arctan2_b(y, a, b):
    h = np.hypot(a, b)
    return -_unit(a, b, h) / h


def _logaddexp_p(expf, first):
    """d/da logaddexp(a, b) = exp(a - y): 0.5 at ties (also a = b = +-inf,
    where a - y is nan) and 1 for the infinite winner (a = inf, b finite)."""
    def p(y, a, b):
        x, o = (a, b) if first else (b, a)
        return np.where(x == o, 0.5, expf(np.where(x == y, 0, x - y)))
    return p


def ONE(y, a, *rest):
    """Partial derivative 1 (a Python number: no multiply)."""
    return 1


def NEG(y, a, *rest):
    """Partial derivative -1."""
    return -1

defufunc(np.add, ONE, lambda y, a, b: 1)
defufunc(np.subtract, ONE, lambda y, a, b: -1)
defufunc(np.multiply, lambda y, a, b: b, lambda y, a, b: a)
defufunc(np.true_divide, lambda y, a, b: _recip(b), lambda y, a, b: -y / b)
def _pow_exponent(y, a, b):
    """d(a**b)/db = y log(a), with log taken in the result's dtype: a float32
    base raised to a float64 power has a float64 result, and log in float32
    would lose half its digits (and differ between libms by an ulp)."""
    dt = getattr(y, "dtype", None)
    if dt is not None and getattr(a, "dtype", dt) != dt:
        a = a.astype(dt)
    return y * _safe_log(a)


defufunc(np.power, _pow_base, _pow_exponent)
defufunc(np.negative, NEG)
defufunc(np.positive, ONE)
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
# (1 - a)(1 + a) instead of 1 - a*a: no cancellation near |a| = 1
defufunc(np.arcsin, lambda y, a: 1 / np.sqrt((1 - a) * (1 + a)))
defufunc(np.arccos, lambda y, a: -1 / np.sqrt((1 - a) * (1 + a)))
defufunc(np.arctan, lambda y, a: 1 / (1 + a * a))
defufunc(np.sinh, lambda y, a: np.cosh(a))
defufunc(np.cosh, lambda y, a: np.sinh(a))
defufunc(np.tanh, lambda y, a: 1 - y * y)
# hypot(a, 1) instead of sqrt(a*a + 1): a*a overflows for |a| > 1e154
defufunc(np.arcsinh, lambda y, a: 1 / np.hypot(a, 1))
# sqrt(a-1)*sqrt(a+1): accurate near 1, no overflow, NaN (not 0) for a = -inf
defufunc(np.arccosh, lambda y, a: 1 / (np.sqrt(a - 1) * np.sqrt(a + 1)))
defufunc(np.arctanh, lambda y, a: 1 / ((1 - a) * (1 + a)))
defufunc(np.deg2rad, lambda y, a: math.pi / 180)
defufunc(np.rad2deg, lambda y, a: 180 / math.pi)
defufunc(np.arctan2, _arctan2_a, _arctan2_b)
defufunc(np.hypot, lambda y, a, b: _unit(a, b, y), lambda y, a, b: _unit(b, a, y))
defufunc(np.logaddexp, _logaddexp_p(np.exp, True), _logaddexp_p(np.exp, False))
defufunc(np.logaddexp2, _logaddexp_p(np.exp2, True), _logaddexp_p(np.exp2, False))
defufunc(np.maximum, _winner(np.greater, True, False), _winner(np.greater, False, False))
defufunc(np.minimum, _winner(np.less, True, False), _winner(np.less, False, False))
defufunc(np.fmax, _winner(np.greater, True, True), _winner(np.greater, False, True))
defufunc(np.fmin, _winner(np.less, True, True), _winner(np.less, False, True))
# d/db copysign(a, b) = 0 almost everywhere: a symbolic zero (None), not g * 0
defufunc(np.copysign, lambda y, a, b: np.sign(a) * np.sign(y), lambda y, a, b: None)

# zero derivative almost everywhere, or integer/boolean results: inactive
def _round_shape(x, decimals):
    return Aval(x.shape, x.dtype)


# np.round: piecewise constant, so no derivative (like rint); decimals is static
ROUND = defop("round", lambda x, decimals: np.round(x, decimals), inactive=True,
              shape=_round_shape)

# Remainders are differentiable almost everywhere (as in JAX and PyTorch):
# d(a % b)/da = 1 and d(a % b)/db = -floor(a / b) between the jumps; fmod
# truncates instead of flooring; nextafter(a, b) moves a by one ulp.
defufunc(np.remainder, ONE, lambda y, a, b: -np.floor_divide(a, b))
defufunc(np.fmod, ONE, lambda y, a, b: -np.trunc(a / b))
defufunc(np.nextafter, ONE, lambda y, a, b: None)
defufunc(np.conjugate, ONE)          # real arrays only: complex is not supported

for _uf in (np.sign, np.floor, np.ceil, np.trunc, np.rint, np.floor_divide,
            np.greater, np.greater_equal, np.less,
            np.less_equal, np.equal, np.not_equal, np.logical_and, np.logical_or,
            np.logical_xor, np.logical_not, np.isnan, np.isinf, np.isfinite,
            np.signbit, np.bitwise_and, np.bitwise_or, np.bitwise_xor, np.invert,
            np.left_shift, np.right_shift, np.heaviside, np.spacing):
    defufunc(_uf)


# ---------------------------------------------------------------- C spellings
# The ``c`` facet of each ufunc: a C expression over its operands, already cast
# to the ufunc's loop dtype. ``{0}``.. are operands, ``{T}`` the C type of the
# loop and ``{f}`` the libm suffix (``f`` for float32). A dict picks a spelling
# by the loop dtype's kind ("f" float, "i" signed/unsigned integer, "b" bool);
# ``None`` means no C lowering (the tape stays interpreted). The CUDA backend
# overrides entries in its own table. Helpers (``td_*``, ``TD_*``) live in
# csrc/tapediff.h and follow NumPy's semantics (signs of floor division and
# modulo, NaN-propagating maximum).
_MATH1 = {"sqrt": "sqrt", "cbrt": "cbrt", "exp": "exp", "exp2": "exp2", "expm1": "expm1",
          "log": "log", "log2": "log2", "log10": "log10", "log1p": "log1p", "sin": "sin",
          "cos": "td_cos", "tan": "tan", "arcsin": "asin", "arccos": "acos", "arctan": "atan",
          "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "arcsinh": "asinh",
          "arccosh": "acosh", "arctanh": "atanh"}
_ROUNDING = {"floor": "floor", "ceil": "ceil", "trunc": "trunc", "rint": "rint"}
_C_SPELLING = {
    "add": {"f": "({0} + {1})", "i": "({0} + {1})", "b": "({0} || {1})"},
    "subtract": "({0} - {1})",
    "multiply": {"f": "({0} * {1})", "i": "({0} * {1})", "b": "({0} && {1})"},
    "divide": "({0} / {1})",
    "power": {"f": "pow{f}({0}, {1})", "i": "td_ipow({0}, {1})"},
    "negative": "(-{0})",
    "positive": "(+{0})",
    "absolute": {"f": "fabs{f}({0})", "i": "({0} < 0 ? -{0} : {0})", "b": "{0}"},
    "square": "({0} * {0})",
    "reciprocal": {"f": "(({T})1 / {0})"},
    "deg2rad": {"f": "({0} * ({T})0.017453292519943295)"},
    "rad2deg": {"f": "({0} * ({T})57.29577951308232)"},
    "arctan2": {"f": "atan2{f}({0}, {1})"},
    "hypot": {"f": "hypot{f}({0}, {1})"},
    "logaddexp": {"f": "td_logaddexp{f}({0}, {1})"},
    "logaddexp2": {"f": "td_logaddexp2{f}({0}, {1})"},
    "maximum": "TD_MAX({0}, {1})",
    "minimum": "TD_MIN({0}, {1})",
    "fmax": {"f": "fmax{f}({0}, {1})", "i": "TD_MAX({0}, {1})", "b": "({0} || {1})"},
    "fmin": {"f": "fmin{f}({0}, {1})", "i": "TD_MIN({0}, {1})", "b": "({0} && {1})"},
    "copysign": {"f": "copysign{f}({0}, {1})"},
    "remainder": {"f": "td_fmod_py{f}({0}, {1})", "i": "td_imod({0}, {1})"},
    "fmod": {"f": "fmod{f}({0}, {1})", "i": "({1} == 0 ? 0 : {0} % {1})"},
    "floor_divide": {"f": "td_floordiv{f}({0}, {1})", "i": "td_ifloordiv({0}, {1})"},
    "nextafter": {"f": "nextafter{f}({0}, {1})"},
    "conjugate": "{0}",
    "sign": {"f": "td_sign{f}({0})", "i": "(({0} > 0) - ({0} < 0))"},
    "greater": "({0} > {1})", "greater_equal": "({0} >= {1})", "less": "({0} < {1})",
    "less_equal": "({0} <= {1})", "equal": "({0} == {1})", "not_equal": "({0} != {1})",
    "logical_and": "({0} && {1})", "logical_or": "({0} || {1})",
    "logical_xor": "(!{0} != !{1})", "logical_not": "(!{0})",
    "isnan": {"f": "isnan({0})", "i": "0", "b": "0"},
    "isinf": {"f": "isinf({0})", "i": "0", "b": "0"},
    "isfinite": {"f": "isfinite({0})", "i": "1", "b": "1"},
    "signbit": {"f": "signbit({0})", "i": "({0} < 0)", "b": "0"},
    "bitwise_and": "({0} & {1})", "bitwise_or": "({0} | {1})", "bitwise_xor": "({0} ^ {1})",
    "invert": {"i": "(~{0})", "b": "(!{0})"},
    "left_shift": {"i": "({0} << {1})"}, "right_shift": {"i": "({0} >> {1})"},
    "heaviside": {"f": "td_heaviside{f}({0}, {1})"},
    "spacing": {"f": "td_spacing{f}({0})"},
}
_C_SPELLING.update({k: {"f": v + "{f}({0})"} for k, v in _MATH1.items()})
_C_SPELLING.update({k: {"f": v + "{f}({0})", "i": "{0}", "b": "{0}"} for k, v in _ROUNDING.items()})
# CUDA spells every op as C does, except where the C spelling serves gcc
# only (cos under another name, so that gcc does not merge sin/cos pairs into
# an unvectorised sincos call).
_CUDA_OVERRIDES = {"cos": {"f": "cos{f}({0})"}}
for _op in UFUNC_OPS.values():
    _op.c = _C_SPELLING.get(_op.name)
    _op.cuda = _CUDA_OVERRIDES.get(_op.name, _op.c)
