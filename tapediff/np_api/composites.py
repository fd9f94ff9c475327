"""Second-tier composites: NumPy functions written as NumPy code on tracked values.

None of these has a rule of its own; their derivatives come from the ops they
are made of. Each follows NumPy's own algorithm so values match NumPy to
rounding (mostly bit for bit):

``np.diff`` (``n``, ``axis``, ``prepend``/``append``), ``np.trapezoid`` (``x``
or ``dx``, ``axis``), ``np.cov`` (``rowvar``, ``bias``, ``ddof``,
``fweights``, ``aweights``, ``dtype``), ``np.corrcoef``, ``np.linspace``
(tracked ``start``/``stop``), ``np.convolve`` and ``np.correlate`` (all
modes), ``np.ediff1d``, ``np.gradient`` (``edge_order`` 1 and 2, even and
uneven spacing), ``np.apply_along_axis``, ``np.apply_over_axes``,
``np.interp`` (no ``period``), ``np.logspace``, ``np.geomspace``,
``np.unwrap``, ``np.angle`` (real input), ``np.median``, ``np.quantile`` and
``np.percentile`` (``method='linear'``, constant ``q``: a sort, the two
neighbours of NumPy's virtual index and its weights; the derivative goes to
those elements) and their ``nan*`` forms, ``np.sinc``, ``np.meshgrid``.
Polynomials are in :mod:`tapediff.np_api.polynomial`.

Notes
-----
* ``np.convolve`` builds an ``m x (n + m)`` intermediate (``m`` the shorter
  length): O(n m) memory and time, no FFT.
* ``np.interp`` is differentiable in ``x`` (the slope of the interval, one-sided
  at the sample points), ``fp`` (linear) and ``xp``; ``left``/``right`` may be
  tracked too. Repeated ``xp`` values can give NaN derivatives.
* ``np.linspace`` handles a zero ``step`` per element (NumPy switches the
  whole array to ``y / div * delta`` as soon as one step underflows).
"""
import operator
import warnings

import numpy as np

from ..errors import UnsupportedOperation
from ..numpy_dispatch import implements, on_tape
from ..tracer import Tracked, recorded

_NoValue = np._NoValue


def _arr(x):
    return x if type(x) is Tracked else np.asarray(x)


def _norm_axis(axis, ndim):
    axis = operator.index(axis)
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim


def _slice_along(axis, nd, s):
    idx = [slice(None)] * nd
    idx[axis] = s
    return tuple(idx)


def _no_complex(name, *xs):
    for x in xs:
        if x is not None and x.dtype.kind == "c":
            raise UnsupportedOperation(f"{name} with complex input is not supported by tapediff")


# ---------------------------------------------------------------- diff
@implements(np.diff)
def diff(a, n=1, axis=-1, prepend=_NoValue, append=_NoValue):
    if n == 0:
        return a
    if n < 0:
        raise ValueError("order must be non-negative but got " + repr(n))
    a = _arr(a)
    nd = a.ndim
    if nd == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    axis = _norm_axis(axis, nd)
    combined = []
    for extra, first in ((prepend, True), (append, False)):
        if extra is _NoValue:
            continue
        extra = _arr(extra)
        if extra.ndim == 0:
            shape = list(a.shape)
            shape[axis] = 1
            extra = np.broadcast_to(extra, tuple(shape))
        combined.append((first, extra))
    if combined:
        parts = [e for f, e in combined if f] + [a] + [e for f, e in combined if not f]
        a = np.concatenate(parts, axis)
    hi = _slice_along(axis, nd, slice(1, None))
    lo = _slice_along(axis, nd, slice(None, -1))
    op = np.not_equal if a.dtype == np.bool_ else np.subtract
    for _ in range(n):
        a = op(a[hi], a[lo])
    return a


# ---------------------------------------------------------------- apply_along_axis
@implements(np.apply_along_axis)
def apply_along_axis(func1d, axis, arr, *args, **kwargs):
    """NumPy's loop: ``func1d`` on each 1-d slice along ``axis`` (recorded
    once per slice, as Python runs it), the results stacked where the axis
    was, in the first result's dtype."""
    arr = _arr(arr)
    nd = arr.ndim
    axis = _norm_axis(axis, nd)
    view = np.transpose(arr, [d for d in range(nd) if d != axis] + [axis])
    outer = view.shape[:-1]
    if 0 in outer:
        raise ValueError("Cannot apply_along_axis when any iteration dimensions are 0")
    results = []
    for ind in np.ndindex(outer):
        r = func1d(view[ind + (Ellipsis,)], *args, **kwargs)
        results.append(r if type(r) is Tracked else np.asarray(r))
    first = results[0]
    stacked = np.stack([r if r.shape == first.shape and r.dtype == first.dtype
                        else np.broadcast_to(r, first.shape).astype(first.dtype)
                        for r in results])
    buff = np.reshape(stacked, outer + first.shape)
    k = first.ndim
    dims = list(range(buff.ndim))
    return np.transpose(buff, dims[:axis] + dims[buff.ndim - k:] + dims[axis:buff.ndim - k])


# ---------------------------------------------------------------- gradient
def _spacings(f, axes, varargs):
    """NumPy's ``gradient`` spacings: per axis a scalar step, or the
    differences of 1-d coordinates (a scalar when they are all equal, as
    NumPy reduces them)."""
    n = len(varargs)
    if n == 0:
        return [1.0] * len(axes)
    if n == 1 and np.ndim(varargs[0]) == 0:
        return list(varargs) * len(axes)
    if n != len(axes):
        raise TypeError("invalid number of arguments")
    dx = []
    for ax, d in zip(axes, varargs):
        if np.ndim(d) == 0:
            dx.append(d)
            continue
        d = _arr(d)
        if d.ndim != 1:
            raise ValueError("distances must be either scalars or 1d")
        if d.shape[0] != f.shape[ax]:
            raise ValueError("when 1d, distances must match the length of the corresponding "
                             "dimension")
        if d.dtype.kind in "iub":
            d = d.astype(np.float64)
        diffx = d[1:] - d[:-1]
        # NumPy's shortcut to the scalar case for equal steps, except for
        # coordinates carrying a derivative: the scalar formula's derivative
        # sees only the first step (values then equal NumPy's to rounding)
        active = type(diffx) is Tracked and diffx.is_active
        uniform = (not active and diffx.shape[0]
                   and bool(np.all(diffx == diffx[0])))     # (a guard when tracked)
        dx.append(diffx[0] if uniform else diffx)
    return dx


def _line(a, axis, nd):
    """``a`` (1-d, along ``axis``) shaped to broadcast against an ``nd``-d array."""
    shape = [1] * nd
    shape[axis] = -1
    return np.reshape(a, tuple(shape))


@implements(np.gradient)
def gradient(f, *varargs, axis=None, edge_order=1):
    """NumPy's second-order central differences inside, one-sided
    differences of order ``edge_order`` at the ends, with its formulas for
    uneven spacing; written into a result per axis as NumPy does, so values
    equal NumPy's bit for bit. Differentiated coordinates always take the
    uneven formulas (see :func:`_spacings`)."""
    f = _arr(f)
    _no_complex("np.gradient", f)
    if f.dtype == np.bool_:
        raise TypeError("numpy boolean subtract, the `-` operator, is not supported, use the "
                        "bitwise_xor, the `^` operator, or the logical_xor function instead.")
    nd = f.ndim
    axes = tuple(range(nd)) if axis is None else tuple(
        _norm_axis(a, nd) for a in (axis if isinstance(axis, (tuple, list)) else (axis,)))
    if len(set(axes)) != len(axes):
        raise ValueError("repeated axis")
    dx = _spacings(f, axes, varargs)
    if edge_order > 2:
        raise ValueError("'edge_order' greater than 2 not supported")
    if f.dtype.kind in "iub":
        f = f.astype(np.float64)
    outs = []
    for ax, h in zip(axes, dx):
        if f.shape[ax] < edge_order + 1:
            raise ValueError("Shape of array too small to calculate a numerical gradient, at "
                             "least (edge_order + 1) elements are required.")

        def at(s):
            idx = [slice(None)] * nd
            idx[ax] = s
            return tuple(idx)
        like = f if type(f) is Tracked else (h if type(h) is Tracked else None)
        out = np.zeros(f.shape, f.dtype, like=like)
        uniform = np.ndim(h) == 0
        if uniform:
            out[at(slice(1, -1))] = (f[at(slice(2, None))] - f[at(slice(None, -2))]) / (2. * h)
        else:
            d1, d2 = h[0:-1], h[1:]
            a = _line(-d2 / (d1 * (d1 + d2)), ax, nd)
            b = _line((d2 - d1) / (d1 * d2), ax, nd)
            c = _line(d1 / (d2 * (d1 + d2)), ax, nd)
            out[at(slice(1, -1))] = (a * f[at(slice(None, -2))] + b * f[at(slice(1, -1))]
                                     + c * f[at(slice(2, None))])
        if edge_order == 1:
            out[at(0)] = (f[at(1)] - f[at(0)]) / (h if uniform else h[0])
            out[at(-1)] = (f[at(-1)] - f[at(-2)]) / (h if uniform else h[-1])
        else:
            if uniform:
                a, b, c = -1.5 / h, 2. / h, -0.5 / h
            else:
                d1, d2 = h[0], h[1]
                a = -(2. * d1 + d2) / (d1 * (d1 + d2))
                b = (d1 + d2) / (d1 * d2)
                c = - d1 / (d2 * (d1 + d2))
            out[at(0)] = a * f[at(0)] + b * f[at(1)] + c * f[at(2)]
            if uniform:
                a, b, c = 0.5 / h, -2. / h, 1.5 / h
            else:
                d1, d2 = h[-2], h[-1]
                a = d2 / (d1 * (d1 + d2))
                b = - (d2 + d1) / (d1 * d2)
                c = (2. * d2 + d1) / (d2 * (d1 + d2))
            out[at(-1)] = a * f[at(-3)] + b * f[at(-2)] + c * f[at(-1)]
        outs.append(out)
    return outs[0] if len(axes) == 1 else tuple(outs)


# ---------------------------------------------------------------- trapezoid
@implements(np.trapezoid)
def trapezoid(y, x=None, dx=1.0, axis=-1):
    y = _arr(y)
    if x is None:
        d = dx
    else:
        x = _arr(x)
        if x.ndim == 1:
            d = diff(x)
            shape = [1] * y.ndim
            shape[axis] = d.shape[0]
            d = np.reshape(d, tuple(shape))
        else:
            d = diff(x, axis=axis)
    nd = y.ndim
    axis_n = _norm_axis(axis, nd)
    s1 = _slice_along(axis_n, nd, slice(1, None))
    s2 = _slice_along(axis_n, nd, slice(None, -1))
    return np.sum(d * (y[s1] + y[s2]) / 2.0, axis=axis)


# ---------------------------------------------------------------- cov, corrcoef
def _any(cond):
    """``bool(any(cond))`` for plain or tracked (inactive) booleans."""
    return bool(np.sum(cond) > 0)


@implements(np.cov)
def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *,
        dtype=None):
    if ddof is not None and ddof != int(ddof):
        raise ValueError("ddof must be integer")
    m = _arr(m)
    if m.ndim > 2:
        raise ValueError("m has more than 2 dimensions")
    if y is not None:
        y = _arr(y)
        if y.ndim > 2:
            raise ValueError("y has more than 2 dimensions")
    _no_complex("np.cov", m, y)
    if dtype is None:
        dtype = np.result_type(m.dtype, np.float64) if y is None else \
            np.result_type(m.dtype, y.dtype, np.float64)
    dtype = np.dtype(dtype)
    X = m.astype(dtype) if m.dtype != dtype else m
    if X.ndim < 2:
        X = np.reshape(X, (1,) * (2 - X.ndim) + X.shape)
    if not rowvar and m.ndim != 1:
        X = np.transpose(X)
    if X.shape[0] == 0:
        return np.array([]).reshape(0, 0)
    if y is not None:
        Y = y.astype(dtype) if y.dtype != dtype else y
        if Y.ndim < 2:
            Y = np.reshape(Y, (1,) * (2 - Y.ndim) + Y.shape)
        if not rowvar and Y.shape[0] != 1:
            Y = np.transpose(Y)
        X = np.concatenate((X, Y), axis=0)
    if ddof is None:
        ddof = 1 if bias == 0 else 0

    w = None
    if fweights is not None:
        fweights = _arr(fweights).astype(float)
        if _any(fweights != np.floor(fweights)):
            raise TypeError("fweights must be integer")
        if fweights.ndim > 1:
            raise RuntimeError("cannot handle multidimensional fweights")
        if fweights.shape[0] != X.shape[1]:
            raise RuntimeError("incompatible numbers of samples and fweights")
        if _any(fweights < 0):
            raise ValueError("fweights cannot be negative")
        w = fweights
    if aweights is not None:
        aweights = _arr(aweights).astype(float)
        if aweights.ndim > 1:
            raise RuntimeError("cannot handle multidimensional aweights")
        if aweights.shape[0] != X.shape[1]:
            raise RuntimeError("incompatible numbers of samples and aweights")
        if _any(aweights < 0):
            raise ValueError("aweights cannot be negative")
        w = aweights if w is None else w * aweights

    # np.average(X, axis=1, weights=w, returned=True)
    if w is None:
        n = X.shape[1]
        avg = np.sum(X, axis=1) / n if n else np.sum(X, axis=1) * np.nan
        w_sum = float(n)
    else:
        w_sum = np.sum(w)
        if _any(w_sum == 0.0):
            raise ZeroDivisionError("Weights sum to zero, can't be normalized")
        avg = np.sum(X * w, axis=1) / w_sum

    if w is None:
        fact = X.shape[1] - ddof
    elif ddof == 0:
        fact = w_sum
    elif aweights is None:
        fact = w_sum - ddof
    else:
        fact = w_sum - ddof * np.sum(w * aweights) / w_sum
    if bool(fact <= 0):
        warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=2)
        fact = 0.0

    X = X - np.reshape(avg, (avg.shape[0], 1))
    X_T = np.transpose(X) if w is None else np.transpose(X * w)
    c = np.matmul(X, X_T)
    if type(fact) is Tracked:
        c = c * (1 / fact)
    else:
        with np.errstate(divide="warn"):
            c = c * float(np.true_divide(1, fact))    # a weak scalar keeps c's dtype
    return np.reshape(c, tuple(k for k in c.shape if k != 1))


@implements(np.corrcoef)
def corrcoef(x, y=None, rowvar=True, *, dtype=None):
    c = cov(x, y, rowvar, dtype=dtype)
    if c.ndim == 0:
        return c / c
    d = np.einsum("ii->i", c)
    stddev = np.sqrt(d)
    c = c / stddev[:, None]
    c = c / stddev[None, :]
    return np.clip(c, -1, 1)


# ---------------------------------------------------------------- linspace
@implements(np.linspace)
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *,
             device=None, like=None):
    if device not in (None, "cpu"):
        raise ValueError(f'Device not understood. Only "cpu" is allowed, but received: {device}')
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"Number of samples, {num}, must be non-negative.")
    div = (num - 1) if endpoint else num
    start, stop = (s if type(s) is Tracked or isinstance(s, (int, float)) else np.asarray(s)
                   for s in (start, stop))
    _no_complex("np.linspace", *(s for s in (start, stop) if hasattr(s, "dtype")))
    dt = np.result_type(*(s.dtype if hasattr(s, "dtype") else s for s in (start, stop)), 0.0)
    integer_dtype = dtype is not None and np.issubdtype(dtype, np.integer)
    if dtype is None:
        dtype = dt
    start_f = start.astype(dt) if hasattr(start, "dtype") and start.dtype != dt else start
    stop_f = stop.astype(dt) if hasattr(stop, "dtype") and stop.dtype != dt else stop
    delta = stop_f - start_f
    y = np.arange(0, num, dtype=dt).reshape((-1,) + (1,) * np.ndim(delta))
    if div > 0:
        step = delta / div
        # NumPy's special case for a step that underflows to zero (gh-5437)
        y = np.where(step == 0, y / div * delta, y * step)
    else:
        step = np.nan
        y = y * delta
    y = y + start_f
    if type(y) is not Tracked:    # only untracked pieces (cannot happen via dispatch)
        y = np.asarray(y)
    if endpoint and num > 1:
        y[-1, ...] = stop_f
    if axis != 0:
        nd = y.ndim
        ax = _norm_axis(axis, nd)
        order = list(range(1, nd))
        order.insert(ax, 0)
        y = np.transpose(y, order)
    if integer_dtype:
        y = np.floor(y)
    if y.dtype != np.dtype(dtype):
        y = y.astype(dtype)
    if retstep:
        return y, step
    return y


@implements(np.logspace)
def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    if not isinstance(base, (float, int)) and np.ndim(base):
        # an array base broadcasts with the ends (it may move ``axis``)
        nd = len(np.broadcast_shapes(np.shape(start), np.shape(stop), np.shape(base)))
        start, stop, base = (np.reshape(a, (1,) * (nd - np.ndim(a)) + np.shape(a))
                             if type(a) is Tracked else np.array(a, copy=None, ndmin=nd)
                             for a in (start, stop, base))
        base = np.expand_dims(base, axis=axis)
    y = linspace(start, stop, num=num, endpoint=endpoint, axis=axis)
    r = np.power(base, y)
    return r if dtype is None else r.astype(dtype, copy=False)


@implements(np.geomspace)
def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    """NumPy's ``geomspace``: ``logspace`` between the logarithms of the ends
    (negative ends through their sign), the ends written back exactly."""
    start, stop = _arr(start), _arr(stop)
    _no_complex("np.geomspace", start, stop)
    if np.any(start == 0) or np.any(stop == 0):
        raise ValueError("Geometric sequence cannot include zero")
    dt = np.result_type(start.dtype, stop.dtype, float(num), np.zeros((), dtype))
    dtype = dt if dtype is None else np.dtype(dtype)
    start, stop = start.astype(dt), stop.astype(dt)
    sign = np.sign(start)
    start, stop = start / sign, stop / sign
    result = logspace(np.log10(start), np.log10(stop), num=num, endpoint=endpoint,
                      base=10.0, dtype=dt)
    if type(result) is not Tracked:
        result = np.asarray(result, like=start if type(start) is Tracked else stop)
    if num > 0:
        result[0] = start
        if num > 1 and endpoint:
            result[-1] = stop
    result = result * sign
    if axis != 0:
        result = np.moveaxis(result, 0, axis)
    return result.astype(dtype, copy=False)


# ---------------------------------------------------------------- convolve
def _full_convolution(name, a, v, mode):
    """``(full, n, m, mode)``: the full convolution of 1-d ``a`` and ``v`` by
    the skew trick (rows ``v[j] * a`` shifted by ``j``, summed), the longer
    length ``n`` and the shorter ``m``, and ``mode`` checked (NumPy's names
    or numbers)."""
    a, v = _arr(a), _arr(v)
    if a.ndim == 0:
        a = np.reshape(a, (1,))
    if v.ndim == 0:
        v = np.reshape(v, (1,))
    if a.ndim != 1 or v.ndim != 1:
        raise ValueError("object too deep for desired array")
    if len(a) == 0:
        raise ValueError("a cannot be empty")
    if len(v) == 0:
        raise ValueError("v cannot be empty")
    if mode not in ("full", "same", "valid"):
        modes = {0: "valid", 1: "same", 2: "full"}
        if mode in modes:
            mode = modes[mode]
        else:
            raise ValueError(f"mode must be one of 'valid', 'same', or 'full' (got {mode!r})")
    _no_complex(name, a, v)
    if len(v) > len(a):
        a, v = v, a
    n, m = len(a), len(v)
    like = a if type(a) is Tracked else v
    dt = np.result_type(a.dtype, v.dtype)
    rows = np.reshape(v, (m, 1)) * np.reshape(a, (1, n))          # rows[j] = v[j] * a
    pad = np.zeros((m, n + m), dt, like=like)
    pad[:, :n] = rows
    flat = np.reshape(pad, (m * (n + m),))[: m * (n + m - 1)]
    full = np.sum(np.reshape(flat, (m, n + m - 1)), axis=0)       # row j shifted by j
    if dt == np.bool_:                      # (NumPy's bool products: or of ands)
        full = full != 0
    return full, n, m, mode


@implements(np.convolve)
def convolve(a, v, mode="full"):
    full, n, m, mode = _full_convolution("np.convolve", a, v, mode)
    if mode == "full":
        return full
    if mode == "same":
        k = (m - 1) // 2
        return full[k:k + n]
    return full[m - 1:n]


@implements(np.correlate)
def correlate(a, v, mode="valid"):
    """The full correlation is the full convolution with ``v`` reversed;
    ``same`` centres it as NumPy does, which depends on which input is the
    longer one."""
    a, v = _arr(a), _arr(v)
    if a.ndim == 0 or v.ndim == 0:            # (np.convolve takes 0-d inputs, this not)
        raise ValueError("object of too small depth for desired array")
    full, n, m, mode = _full_convolution("np.correlate", a, v[::-1], mode)
    if mode == "full":
        return full
    if mode == "same":
        k = (m - 1) // 2 if a.size >= v.size else m // 2
        return full[k:k + n]
    return full[m - 1:n]


@implements(np.ediff1d)
def ediff1d(ary, to_end=None, to_begin=None):
    ary = np.ravel(_arr(ary))
    _no_complex("np.ediff1d", ary)
    dt = ary.dtype
    d = ary[1:] - ary[:-1]
    d = d if d.dtype == dt else d.astype(dt)
    parts = []
    for name, extra in (("to_begin", to_begin), ("to_end", to_end)):
        if extra is None:
            parts.append(None)
            continue
        extra = np.ravel(_arr(extra))
        if not np.can_cast(extra.dtype, dt, casting="same_kind"):
            raise TypeError(f"dtype of `{name}` must be compatible with input `ary` under "
                            "the `same_kind` rule.")
        parts.append(extra if extra.dtype == dt else extra.astype(dt))
    if parts[0] is None and parts[1] is None:
        return d
    return np.concatenate([p for p in (parts[0], d, parts[1]) if p is not None])


# ---------------------------------------------------------------- interp
@implements(np.interp)
def interp(x, xp, fp, left=None, right=None, period=None):
    if period is not None:
        raise UnsupportedOperation("np.interp(..., period=...) is not supported by tapediff; "
                                   "reduce x and xp modulo the period yourself")
    x, xp, fp = _arr(x), _arr(xp), _arr(fp)
    _no_complex("np.interp", x, xp, fp)
    f64 = np.float64
    x, xp, fp = (t if t.dtype == f64 else t.astype(f64) for t in (x, xp, fp))
    if xp.ndim != 1 or fp.ndim != 1:
        raise ValueError("object too deep for desired array")
    if xp.shape[0] != fp.shape[0]:
        raise ValueError("fp and xp are not of the same length.")
    m = xp.shape[0]
    if m == 0:
        raise ValueError("array of sample points is empty")
    lval = fp[0] if left is None else left
    rval = fp[m - 1] if right is None else right
    if m == 1:
        r = np.broadcast_to(fp[0], np.shape(x))
    else:
        # the interval of each point (NumPy's own search: the last sample <= x)
        j = np.clip(np.searchsorted(xp, x, side="right") - 1, 0, max(m - 2, 0))
        xp, fp = on_tape(xp, j), on_tape(fp, j)
        xj, xj1, fj, fj1 = xp[j], xp[j + 1], fp[j], fp[j + 1]
        slope = (fj1 - fj) / (xj1 - xj)
        r = slope * (x - xj) + fj
        # NumPy: if that is NaN, try from the right end; exact value at a sample point
        r2 = slope * (x - xj1) + fj1
        r = np.where(np.isnan(r), np.where(np.isnan(r2) & (fj == fj1), fj, r2), r)
        # exactly fp[j] at a sample point, as NumPy, keeping the derivative of the
        # interval to the right (the finite slope; 0 if the slope is not finite)
        safe = np.where(np.isfinite(slope), slope, 0)
        r = np.where(x == xj, fj + (x - xj) * safe, r)
        r = np.where(x == xp[m - 1], fp[m - 1], r)
    r = np.where(x > xp[m - 1], rval, r)
    r = np.where(x < xp[0], lval, r)
    if m > 1:                 # NumPy's one-sample branch has no NaN check
        r = np.where(np.isnan(x), x, r)
    return r if r.dtype == f64 else r.astype(f64)


# ---------------------------------------------------------------- quantiles
def _to_last(a, axis):
    """``(a with the reduced axes moved last and merged into one, the kept
    axes' positions, ndim)``, as NumPy's ``_ureduce`` does (``axis=None``:
    every axis)."""
    nd = a.ndim
    if axis is None:
        axes = tuple(range(nd))
    else:
        axes = tuple(_norm_axis(x, nd) for x in (axis if isinstance(axis, tuple) else (axis,)))
        if len(set(axes)) != len(axes):
            raise ValueError("repeated axis")
    kept = [d for d in range(nd) if d not in axes]
    moved = np.transpose(a, kept + list(axes))
    n = 1
    for d in axes:
        n *= a.shape[d]
    return np.reshape(moved, tuple(a.shape[d] for d in kept) + (n,)), axes, nd


def _keepdims(r, lead, axes, nd):
    """``r`` (``lead`` leading axes of q, then the kept axes) with size-1
    axes where the reduced ones were."""
    shape = list(r.shape[:lead])
    kept = iter(r.shape[lead:])
    shape += [1 if d in axes else next(kept) for d in range(nd)]
    return np.reshape(r, tuple(shape))


def _quantile(name, a, q, axis, method, keepdims, weights, out, interpolation, scale,
              skip_nan=False):
    """``np.quantile`` (``scale`` 1) or ``np.percentile`` (``scale`` 100);
    ``skip_nan``: ``np.nanquantile`` / ``np.nanpercentile``."""
    if interpolation is not None:
        raise UnsupportedOperation(f"{name} with interpolation= (deprecated) is not "
                                   "supported by tapediff: use method=")
    if method != "linear":
        raise UnsupportedOperation(f"{name} with method={method!r} is not supported by "
                                   "tapediff (method='linear', NumPy's default, only)")
    if weights is not None or out is not None:
        raise UnsupportedOperation(f"{name} with weights= or out= is not supported by tapediff")
    if type(q) is Tracked:
        raise UnsupportedOperation(f"{name} with a tracked q is not supported by tapediff "
                                   "(the quantiles must be constants)")
    weak = type(q) in (int, float)       # NumPy: a Python number promotes weakly
    # integer quantiles (0 or 1) give integer virtual indices: NumPy takes
    # the elements without interpolating (inf stays inf, no inf - inf)
    integer = scale == 1 and np.asarray(q).dtype.kind in "iub"
    q = (np.true_divide(q, scale) if scale != 1 else
         np.asarray(q) if integer else np.asarray(q, dtype=np.float64))
    if not (np.all(q >= 0) and np.all(q <= 1)):
        raise ValueError(f"{'Percentiles' if scale == 100 else 'Quantiles'} must be in the "
                         f"range [0, {scale}]")
    a = _arr(a)
    _no_complex(name, a)
    if skip_nan and a.dtype.kind == "f":
        return _nan_quantile(a, q, weak, integer, axis, keepdims)
    flat, axes, nd = _to_last(a, axis)
    n = flat.shape[-1]
    if n == 0:
        raise IndexError("index -1 is out of bounds for axis 0 with size 0")
    # NumPy's method 'linear': the virtual index (n - 1) q, its neighbours,
    # and the weight gamma = virtual - previous (the last element on both
    # sides at q == 1)
    s = np.moveaxis(np.sort(flat, axis=-1), -1, 0)
    virtual = (n - 1) * q
    if integer:
        r = s[virtual]
        if flat.dtype.kind == "f":
            r = np.where(np.isnan(s[-1]), np.nan, r)
        return _keepdims(r, q.ndim, axes, nd) if keepdims else r
    below = np.floor(virtual).astype(np.intp)
    top = virtual >= n - 1
    prev = np.where(top, -1, below)
    nxt = np.where(top, -1, below + 1)
    gamma = virtual - prev
    lo, hi = s[prev], s[nxt]
    diff = hi - lo
    if weak:
        g = float(gamma)
        r = hi - diff * (1 - g) if g >= 0.5 else lo + diff * g
    else:
        g = gamma.reshape(q.shape + (1,) * (flat.ndim - 1))
        r = np.where(g >= 0.5, hi - diff * (1 - g), lo + diff * g)
    if flat.dtype.kind == "f":              # NumPy: a NaN sorts last and makes the result NaN
        r = np.where(np.isnan(s[-1]), np.nan, r)
    return _keepdims(r, q.ndim, axes, nd) if keepdims else r


def _nan_slices(flat, stacklevel):
    """The common part of the nan* order statistics on ``flat`` (the reduced
    axes merged last, :func:`_to_last`): ``(s, k, pick)``, the slices sorted
    with NaN last, each slice's count ``k`` of non-NaN values (they lead the
    sorted slice), and ``pick(i)``: ``s`` at per-slice positions ``i`` (any
    leading axes, then the slices'). An all-NaN slice warns as in NumPy,
    judged on the recorded values: no guard, so a replay that meets one
    gives NaN without the warning."""
    lead, n = flat.shape[:-1], flat.shape[-1]
    s = np.sort(flat, axis=-1)
    k = np.sum(~np.isnan(flat), axis=-1)
    if np.any(recorded(k) == 0):
        warnings.warn("All-NaN slice encountered", RuntimeWarning, stacklevel=stacklevel)

    def pick(i):
        shape = np.shape(i)
        i = np.reshape(np.clip(i, 0, n - 1), (-1,) + lead)
        got = np.take_along_axis(s, np.moveaxis(i, 0, -1), axis=-1)
        return np.reshape(np.moveaxis(got, -1, 0), shape)
    return s, k, pick


def _nan_quantile(a, q, weak, integer, axis, keepdims):
    """NumPy's ``nanquantile``: per slice, the quantile of its ``k`` non-NaN
    values (NaN sorts last, so they lead the sorted slice) by the same
    formulas with ``n = k``; ``k`` differs per slice and the indices are
    computed on the tape (no guard). An all-NaN slice gives NaN (see
    :func:`_nan_slices` for its warning)."""
    flat, axes, nd = _to_last(a, axis)
    dt = a.dtype if weak else np.result_type(a.dtype, np.float64)
    if flat.shape[-1] == 0:
        warnings.warn("All-NaN slice encountered", RuntimeWarning, stacklevel=4)
        r = np.full(q.shape + flat.shape[:-1], np.nan, dt)
        return _keepdims(r, q.ndim, axes, nd) if keepdims else r
    s, k, pick = _nan_slices(flat, stacklevel=5)
    virtual = (k - 1) * np.reshape(q, q.shape + (1,) * k.ndim)   # q's axes, then the slices'
    if integer:
        r = np.where(k == 0, np.nan, pick(virtual))
        return _keepdims(r, q.ndim, axes, nd) if keepdims else r
    below = np.floor(virtual).astype(np.intp)
    top = virtual >= k - 1
    # NumPy's indices on the k values: -1 (the last one) at the top
    gamma = virtual - np.where(top, -1, below)
    prev = np.where(top, k - 1, below)
    nxt = np.where(top, k - 1, below + 1)
    lo, hi = pick(prev), pick(nxt)
    diff = hi - lo
    if weak:     # a Python q: NumPy's float32 stays float32 (gamma a weak float)
        r = np.where(gamma >= 0.5, hi - diff * (1 - gamma).astype(dt),
                     lo + diff * gamma.astype(dt))
    else:
        r = np.where(gamma >= 0.5, hi - diff * (1 - gamma), lo + diff * gamma)
    r = np.where(k == 0, np.nan, r)
    if r.dtype != a.dtype and bool(np.ravel(k)[0] == 0):
        # NumPy fills an all-NaN slice in a's dtype, and (apply_along_axis)
        # the first slice's dtype is the result's: a guard when tracked
        r = r.astype(a.dtype)
    return _keepdims(r, q.ndim, axes, nd) if keepdims else r


@implements(np.nanquantile)
def nanquantile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
                keepdims=False, *, weights=None, interpolation=None):
    return _quantile("np.nanquantile", a, q, axis, method, keepdims, weights, out,
                     interpolation, 1, skip_nan=True)


@implements(np.nanpercentile)
def nanpercentile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
                  keepdims=False, *, weights=None, interpolation=None):
    return _quantile("np.nanpercentile", a, q, axis, method, keepdims, weights, out,
                     interpolation, 100, skip_nan=True)


@implements(np.quantile)
def quantile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
             keepdims=False, *, weights=None, interpolation=None):
    return _quantile("np.quantile", a, q, axis, method, keepdims, weights, out,
                     interpolation, 1)


@implements(np.percentile)
def percentile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
               keepdims=False, *, weights=None, interpolation=None):
    return _quantile("np.percentile", a, q, axis, method, keepdims, weights, out,
                     interpolation, 100)


@implements(np.median)
def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """NumPy's median: the mean of the middle one or two sorted values, NaN
    where a NaN is present."""
    if out is not None:
        raise UnsupportedOperation("np.median with out= is not supported by tapediff")
    a = _arr(a)
    _no_complex("np.median", a)
    flat, axes, nd = _to_last(a, axis)
    n = flat.shape[-1]
    s = np.sort(flat, axis=-1)
    h = n // 2
    r = np.mean(s[..., h:h + 1] if n % 2 else s[..., max(h - 1, 0):h + 1], axis=-1)
    if flat.dtype.kind == "f" and n > 0:
        r = np.where(np.isnan(s[..., -1]), np.nan, r)
    return _keepdims(r, 0, axes, nd) if keepdims else r


@implements(np.nanmedian)
def nanmedian(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """The median of each slice's non-NaN values: sorted (NaN last), the
    middle one or two of the slice's ``k`` values picked on the tape (``k``
    differs per slice: no guard), their sum halved as NumPy's masked and
    per-slice paths do; NaN for an all-NaN slice (see :func:`_nan_slices`
    for its warning)."""
    if out is not None:
        raise UnsupportedOperation("np.nanmedian with out= is not supported by tapediff")
    a = _arr(a)
    _no_complex("np.nanmedian", a)
    if a.dtype.kind != "f":
        return median(a, axis=axis, keepdims=keepdims)
    if a.size == 0:
        return np.nanmean(a, axis=axis, keepdims=keepdims)
    flat, axes, nd = _to_last(a, axis)
    s, k, pick = _nan_slices(flat, stacklevel=4)
    odd = k % 2 == 1
    h = k // 2
    lo, hi = pick(np.where(odd, h, h - 1)), pick(h)
    r = np.where(odd, hi, (lo + hi) / 2)
    r = np.where(k == 0, np.nan, r)
    return _keepdims(r, 0, axes, nd) if keepdims else r


# ---------------------------------------------------------------- sinc, meshgrid
@implements(np.sinc)
def sinc(x):
    """NumPy's: ``sin(pi x) / (pi x)`` with ``pi x`` replaced by epsilon where
    it is 0 (so the value there is 1, and so is the derivative's limit, 0)."""
    x = np.pi * _arr(x)
    eps = np.finfo(x.dtype).eps if x.dtype.kind == "f" else 1e-20
    y = np.where(x != 0, x, eps)
    return np.sin(y) / y


@implements(np.meshgrid)
def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    """NumPy's: each input reshaped along its own axis (the first two
    swapped for ``'xy'``), then broadcast against the others and copied."""
    if indexing not in ("xy", "ij"):
        raise ValueError("Valid values for `indexing` are 'xy' and 'ij'.")
    ndim = len(xi)
    s0 = (1,) * ndim
    out = [np.reshape(_arr(x), s0[:i] + (-1,) + s0[i + 1:]) for i, x in enumerate(xi)]
    if indexing == "xy" and ndim > 1:
        out[0] = np.reshape(out[0], (1, -1) + s0[2:])
        out[1] = np.reshape(out[1], (-1, 1) + s0[2:])
    if not sparse:
        out = np.broadcast_arrays(*out)
    if copy:
        out = [x.copy() for x in out]
    return tuple(out)


# ---------------------------------------------------------------- angles
@implements(np.angle)
def angle(z, deg=False):
    z = _arr(z)
    _no_complex("np.angle", z)
    a = np.arctan2(0, z)            # NumPy: arctan2(imag, real), imag 0 for real input
    return a * (180 / np.pi) if deg else a


@implements(np.unwrap)
def unwrap(p, discont=None, axis=-1, *, period=2 * np.pi):
    """NumPy's ``unwrap``: jumps larger than ``discont`` between neighbours
    along ``axis`` become their complement to ``period``; differentiable in
    ``p`` (the corrections are piecewise constant)."""
    p = _arr(p)
    nd = p.ndim
    dd = np.diff(p, axis=axis)
    if discont is None:
        discont = period / 2
    tail = [slice(None)] * nd
    tail[axis] = slice(1, None)
    tail = tuple(tail)
    dtype = np.result_type(dd.dtype, period)
    if np.issubdtype(dtype, np.integer):
        high, rem = divmod(period, 2)
        ambiguous = rem == 0
    else:
        high, ambiguous = period / 2, True
    low = -high
    ddmod = np.mod(dd - low, period) + low
    if ambiguous:       # a jump of exactly period/2 keeps its sign
        ddmod = np.where((ddmod == low) & (dd > 0), high, ddmod)
    correct = np.where(np.abs(dd) < discont, 0, ddmod - dd)
    up = p.astype(dtype) if p.dtype != dtype else np.copy(p)
    up[tail] = p[tail] + np.cumsum(correct, axis)
    return up


@implements(np.apply_over_axes)
def apply_over_axes(func, a, axes):
    val = _arr(a)
    n = val.ndim
    if np.ndim(axes) == 0:
        axes = (axes,)
    for axis in axes:
        if axis < 0:
            axis = n + axis
        res = func(val, axis)
        if res.ndim != val.ndim:
            res = np.expand_dims(res, axis)
            if res.ndim != val.ndim:
                raise ValueError("function is not returning an array of the correct shape")
        val = res
    return val
