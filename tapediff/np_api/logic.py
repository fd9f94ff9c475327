"""Tolerant comparisons, selection among branches and value cleanup.

Composites of elementwise ops, each following NumPy's own code so values
are NumPy's bit for bit:

``np.isclose``, ``np.allclose``, ``np.array_equal``, ``np.array_equiv``
    Boolean results, no derivative. ``allclose`` and the ``array_*``
    functions return a Python bool: with tracked arguments that is a guard
    (the tape re-records when the answer changes).
``np.select``, ``np.piecewise``
    The derivative of each element is its branch's. ``select`` is a chain
    of ``np.where`` (every choice is computed everywhere, as in NumPy);
    ``piecewise`` calls each function on the elements its condition picks
    (``x[cond]``, as NumPy does), so the number of elements in each piece
    is guarded: replays with other counts re-record.
``np.nan_to_num``
    The derivative is 1 where ``x`` is finite and 0 where it was replaced.
``np.isposinf``, ``np.isneginf``
    ``isinf`` and the sign bit.
``np.real``, ``np.imag``, ``np.fix``
    For real input (complex is not supported): ``real`` is a view of ``x``,
    ``imag`` zeros, ``fix`` rounds towards zero (derivative 0, as ``floor``
    and ``ceil``).
"""
import collections.abc

import numpy as np

from ..errors import UnsupportedOperation
from ..numpy_dispatch import assign, implements
from ..tracer import Tracked
from ..tracer import operand as _arr


def _real_only(name, *xs):
    for x in xs:
        if getattr(x, "dtype", None) is not None and x.dtype.kind == "c":
            raise UnsupportedOperation(f"np.{name} with complex input is not supported by "
                                       "tapediff")


def _scalar_or_array(x):
    """Python scalars as they are (weak in NumPy's promotion), the rest as
    arrays: what NumPy's ``isclose`` and ``select`` do with their inputs."""
    return x if type(x) in (int, float, bool) else _arr(x)


# ---------------------------------------------------------------- comparisons
@implements(np.isclose)
def isclose(a, b, rtol=1.e-5, atol=1.e-8, equal_nan=False):
    x, y, atol, rtol = (_scalar_or_array(v) for v in (a, b, atol, rtol))
    _real_only("isclose", x, y)
    # y inexact, so that abs(y) of the most negative integer cannot overflow
    if hasattr(y, "dtype"):
        dt = np.result_type(y.dtype, 1.0)
        y = y if y.dtype == dt else y.astype(dt)
    elif isinstance(y, int):
        y = float(y)
    with np.errstate(invalid="ignore"):
        result = (np.less_equal(np.abs(x - y), atol + rtol * np.abs(y)) & np.isfinite(y)
                  | (x == y))
        if equal_nan:
            result = result | (np.isnan(x) & np.isnan(y))
    return result[()] if np.ndim(result) == 0 else result


@implements(np.allclose)
def allclose(a, b, rtol=1.e-5, atol=1.e-8, equal_nan=False):
    return bool(np.all(isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)))


@implements(np.array_equal)
def array_equal(a1, a2, equal_nan=False):
    a1, a2 = _arr(a1), _arr(a2)
    _real_only("array_equal", a1, a2)
    if a1.shape != a2.shape:
        return False
    if not equal_nan or (a1.dtype.kind not in "f" and a2.dtype.kind not in "f"):
        return bool(np.all(a1 == a2))
    n1, n2 = np.isnan(a1), np.isnan(a2)
    # equal where neither is NaN, NaN at the same places (one reduction: one guard)
    return bool(np.all((a1 == a2) | (n1 & n2)) & np.all(n1 == n2))


@implements(np.array_equiv)
def array_equiv(a1, a2):
    a1, a2 = _arr(a1), _arr(a2)
    _real_only("array_equiv", a1, a2)
    try:
        np.broadcast_shapes(a1.shape, a2.shape)
    except ValueError:
        return False
    return bool(np.all(a1 == a2))


# ---------------------------------------------------------------- selection
@implements(np.select)
def select(condlist, choicelist, default=0):
    if len(condlist) != len(choicelist):
        raise ValueError("list of cases must be same length as list of conditions")
    if len(condlist) == 0:
        raise ValueError("select with an empty condition list is not possible")
    choices = [_scalar_or_array(c) for c in choicelist] + [_scalar_or_array(default)]
    _real_only("select", *choices)
    try:
        dtype = np.result_type(*(c.dtype if type(c) is Tracked else c for c in choices))
    except TypeError as e:
        raise TypeError(f"Choicelist and default value do not have a common dtype: {e}") \
            from None
    conds = [_arr(c) for c in condlist]
    for i, cond in enumerate(conds):
        if cond.dtype != np.bool_:
            raise TypeError(f"invalid entry {i} in condlist: should be boolean ndarray")
    shape = np.broadcast_shapes(*(c.shape for c in conds),
                                *(np.shape(c) for c in choices))
    # the default, then each choice over it in reverse: the first match wins
    result = np.broadcast_to(np.asarray(choices[-1], dtype) if type(choices[-1]) is not
                             Tracked else choices[-1].astype(dtype), shape)
    for choice, cond in zip(choices[-2::-1], conds[::-1]):
        c = choice.astype(dtype) if type(choice) is Tracked and choice.dtype != dtype \
            else choice
        result = np.where(cond, c, result)
    result = result.astype(dtype) if result.dtype != dtype else result
    return result if type(result) is Tracked else np.array(result)


@implements(np.piecewise)
def piecewise(x, condlist, funclist, *args, **kw):
    x = _arr(x)
    _real_only("piecewise", x)
    n2 = len(funclist)
    # NumPy's rule: one condition unless the first entry is itself an array
    # (a 0-d tracked entry is NumPy's bool scalar)
    scalar = np.isscalar(condlist) or (type(condlist) is Tracked and condlist.ndim == 0)
    first = None if scalar else condlist[0]
    if scalar or (
            not (isinstance(first, (list, np.ndarray)) or (type(first) is Tracked
                                                            and first.ndim > 0))
            and x.ndim != 0):
        condlist = [condlist]
    conds = [_bool(condlist[i]) for i in range(len(condlist))]
    for c in conds:
        if c.shape != x.shape:            # (NumPy's boolean index refuses it too)
            raise IndexError(f"np.piecewise: a condition has shape {c.shape}, x has shape "
                             f"{x.shape}; they must be equal")
    n = len(conds)
    if n == n2 - 1:                   # the "otherwise" piece
        otherwise = ~conds[0]
        for c in conds[1:]:
            otherwise = otherwise & ~c
        conds.append(otherwise)
    elif n != n2:
        raise ValueError(f"with {n} condition(s), either {n} or {n + 1} functions are "
                         "expected")
    y = np.zeros_like(x)
    for cond, func in zip(conds, funclist):
        if not isinstance(func, collections.abc.Callable):
            assign(y, cond, func, what="np.piecewise")
        else:
            vals = x[cond]
            if vals.size > 0:
                assign(y, cond, func(vals, *args, **kw), what="np.piecewise")
    return y


def _bool(c):
    c = _arr(c)
    return c if c.dtype == np.bool_ else c.astype(bool)


# ---------------------------------------------------------------- cleanup
@implements(np.nan_to_num)
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    x = _arr(x)
    _real_only("nan_to_num", x)
    if x.dtype.kind != "f":
        return x[()] if x.ndim == 0 else (np.copy(x) if copy else x)
    info = np.finfo(x.dtype)
    big = info.max if posinf is None else posinf
    small = info.min if neginf is None else neginf
    r = x
    for where, value in ((np.isnan(x), nan), (np.isposinf(x), big), (np.isneginf(x), small)):
        r = np.where(where, np.asarray(value).astype(x.dtype) if type(value) is not Tracked
                     else value.astype(x.dtype), r)
    if not copy:                  # NumPy writes into x itself
        assign(x, Ellipsis, r, what="np.nan_to_num(copy=False)")
        r = x
    return r[()] if np.ndim(r) == 0 else r


@implements(np.isposinf)
def isposinf(x, out=None):
    x = _arr(x)
    _real_only("isposinf", x)
    return _out(np.isinf(x) & ~np.signbit(x), out, "isposinf")


@implements(np.isneginf)
def isneginf(x, out=None):
    x = _arr(x)
    _real_only("isneginf", x)
    return _out(np.isinf(x) & np.signbit(x), out, "isneginf")


def _out(r, out, name):
    if out is None:
        return r
    assign(out, Ellipsis, r, casting="same_kind", what=f"np.{name}(..., out=)")
    return out


@implements(np.real)
def real(val):
    val = _arr(val)
    _real_only("real", val)
    return val[...] if val.ndim else val       # a view, as NumPy's ``a.real``


@implements(np.imag)
def imag(val):
    val = _arr(val)
    _real_only("imag", val)
    return np.zeros(val.shape, val.dtype)


@implements(np.fix)
def fix(x, out=None):
    x = _arr(x)
    _real_only("fix", x)
    r = np.where(x >= 0, np.floor(x), np.ceil(x))
    if isinstance(out, tuple) and len(out) == 1:      # (ufunc style, as NumPy takes it)
        out = out[0]
    if out is not None:
        return _out(r, out, "fix")
    return r[()] if np.ndim(r) == 0 else r
