"""Reductions, scans, sorting and searching: derivatives, shape rules, replay, edge cases."""
import functools
import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tapediff as td
from tapediff.ops import reduce as R
from tapediff.ops.registry import aval_of
from tapediff.testing import check_grads, check_replay

from .. import strategies as S


# ---------------------------------------------------------------- strategies and helpers
@st.composite
def axis_arg(draw, ndim):
    """None, an int (maybe negative) or a tuple of distinct axes (maybe negative)."""
    axis = S.axis_for(draw, ndim)
    if isinstance(axis, tuple):
        axis = tuple(a - ndim if draw(st.booleans()) else a for a in axis)
    return axis


@st.composite
def reduce_case(draw, max_dims=3, min_side=0, lo=-2.0, hi=2.0, dtype=np.float64):
    shape = draw(S.shapes(min_dims=0, max_dims=max_dims, min_side=min_side))
    axis = draw(axis_arg(len(shape)))
    keepdims = draw(st.booleans())
    x = draw(S.arrays(shape, lo, hi, dtype=dtype))
    return x, axis, keepdims


@st.composite
def scan_case(draw, max_dims=3, min_side=0, lo=-2.0, hi=2.0):
    shape = draw(S.shapes(min_dims=1, max_dims=max_dims, min_side=min_side))
    nd = len(shape)
    axis = draw(st.one_of(st.none(), st.integers(-nd, nd - 1)))
    return draw(S.arrays(shape, lo, hi)), axis


def n_reduced(shape, axis):
    """How many elements go into each result of a reduction over ``axis``."""
    n = 1
    for a in R.norm_axis(axis, len(shape)):
        n *= shape[a]
    return n


def _weights(shape):
    return np.linspace(0.5, 1.5, int(np.prod(shape))).reshape(shape)


def quiet(f, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return f(*a, **k)


# name -> (fn(x, axis, keepdims), smallest number of reduced elements it needs)
REDUCTIONS = {
    "sum": (lambda x, a, k: np.sum(x, axis=a, keepdims=k), 0),
    "mean": (lambda x, a, k: np.mean(x, axis=a, keepdims=k), 1),
    "prod": (lambda x, a, k: np.prod(x, axis=a, keepdims=k), 0),
    "max": (lambda x, a, k: np.max(x, axis=a, keepdims=k), 1),
    "min": (lambda x, a, k: np.min(x, axis=a, keepdims=k), 1),
    "amax": (lambda x, a, k: np.amax(x, axis=a, keepdims=k), 1),
    "amin": (lambda x, a, k: np.amin(x, axis=a, keepdims=k), 1),
    "ptp": (lambda x, a, k: np.ptp(x, axis=a, keepdims=k), 1),
    "var": (lambda x, a, k: np.var(x, axis=a, keepdims=k), 1),
    "var_ddof1": (lambda x, a, k: np.var(x, axis=a, keepdims=k, ddof=1), 2),
    "std": (lambda x, a, k: np.std(x, axis=a, keepdims=k), 2),
    "std_ddof1": (lambda x, a, k: np.std(x, axis=a, keepdims=k, ddof=1), 2),
    "average": (lambda x, a, k: np.average(x, axis=a, keepdims=k), 1),
    "nansum": (lambda x, a, k: np.nansum(x, axis=a, keepdims=k), 0),
    "nanmean": (lambda x, a, k: np.nanmean(x, axis=a, keepdims=k), 1),
    "nanmax": (lambda x, a, k: np.nanmax(x, axis=a, keepdims=k), 1),
    "nanmin": (lambda x, a, k: np.nanmin(x, axis=a, keepdims=k), 1),
    "nanprod": (lambda x, a, k: np.nanprod(x, axis=a, keepdims=k), 0),
    "nanvar": (lambda x, a, k: np.nanvar(x, axis=a, keepdims=k), 1),
    "nanstd": (lambda x, a, k: np.nanstd(x, axis=a, keepdims=k), 2),
    "add.reduce": (lambda x, a, k: np.add.reduce(x, axis=a, keepdims=k), 0),
    "multiply.reduce": (lambda x, a, k: np.multiply.reduce(x, axis=a, keepdims=k), 0),
    "maximum.reduce": (lambda x, a, k: np.maximum.reduce(x, axis=a, keepdims=k), 1),
    "minimum.reduce": (lambda x, a, k: np.minimum.reduce(x, axis=a, keepdims=k), 1),
    "x.sum": (lambda x, a, k: x.sum(axis=a, keepdims=k), 0),
    "x.max": (lambda x, a, k: x.max(axis=a, keepdims=k), 1),
    "x.prod": (lambda x, a, k: x.prod(a, keepdims=k), 0),
    "x.std": (lambda x, a, k: x.std(a, keepdims=k), 2),
}

SCANS = {
    "cumsum": lambda x, a: np.cumsum(x, axis=a),
    "cumprod": lambda x, a: np.cumprod(x, axis=a),
    "nancumsum": lambda x, a: np.nancumsum(x, axis=a),
    "nancumprod": lambda x, a: np.nancumprod(x, axis=a),
    "sort": lambda x, a: np.sort(x, axis=a),
    "x.cumsum": lambda x, a: x.cumsum(a),
    "x.cumprod": lambda x, a: x.cumprod(a),
}


def _put(x, seed, count, value):
    """Write ``value`` at ``count`` random places of ``x`` (in place: keeps its layout)."""
    if x.size and count:
        rng = np.random.default_rng(seed)
        where = rng.choice(x.size, size=min(count, x.size), replace=False)
        x[np.unravel_index(where, x.shape) if x.ndim else ()] = value
    return x


def _with_nans(x, seed):
    """``x`` with a few NaNs (whole NaN slices are left to the tests that assume them)."""
    return _put(x, seed, x.size // 4, np.nan)


# ---------------------------------------------------------------- derivatives
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(case=reduce_case(), seed=st.integers(0, 2**16))
def test_reduction_grads(name, case, seed):
    fn, need = REDUCTIONS[name]
    x, axis, keepdims = case
    if name.startswith("nan"):
        x = _with_nans(x, seed)
        counts = np.sum(~np.isnan(x), axis=axis)
        assume(np.size(counts) == 0 or np.min(counts) >= need)
    n = n_reduced(x.shape, axis)
    if n < need:
        if name in ("max", "min", "amax", "amin", "ptp", "maximum.reduce", "minimum.reduce",
                    "x.max") and n == 0:
            with pytest.raises(ValueError):
                td.vjp(lambda a: fn(a, axis, keepdims), x)
        return
    f = lambda a: fn(a, axis, keepdims)    # noqa: E731
    try:
        want = quiet(f, x)
    except ZeroDivisionError:    # np.average of an empty result (tapediff returns it)
        return
    got = td.vjp(f, x)[0]
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    check_grads(f, x)


@pytest.mark.parametrize("name", sorted(SCANS))
@given(case=scan_case())
def test_scan_and_sort_grads(name, case):
    x, axis = case
    f = lambda a: SCANS[name](a, axis)    # noqa: E731
    got = td.vjp(f, x)[0]
    want = f(x)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    check_grads(f, x)


@given(case=reduce_case(min_side=1), seed=st.integers(0, 2**16))
def test_average_weights(case, seed):
    x, axis, keepdims = case
    rng = np.random.default_rng(seed)
    if axis is None or isinstance(axis, tuple) and len(axis) == x.ndim and rng.random() < .5:
        w = rng.uniform(0.5, 2.0, x.shape)
    else:
        axes = axis if isinstance(axis, tuple) else (axis,)
        w = rng.uniform(0.5, 2.0, tuple(x.shape[a] for a in axes))
    f = lambda a, w: np.average(a, axis=axis, weights=w, keepdims=keepdims)    # noqa: E731
    np.testing.assert_allclose(td.vjp(f, x, w)[0], f(x, w), rtol=1e-12)
    check_grads(f, x, w)
    g = lambda a, w: np.average(a, axis=axis, weights=w, returned=True)    # noqa: E731
    for a, b in zip(td.vjp(g, x, w)[0], g(x, w)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
        assert np.shape(a) == np.shape(b)


def test_average_weights_sum_to_zero_is_guarded():
    f = lambda x, w: np.sum(np.average(x, axis=0, weights=w))    # noqa: E731
    x = np.ones((2, 3))
    with pytest.raises(ZeroDivisionError):
        td.grad(f)(x, np.array([1.0, -1.0]))
    rec = td.record(f, x, np.array([1.0, 2.0]))
    with pytest.raises(ZeroDivisionError):   # the recorded guard fails, re-recording raises
        rec.value_and_grad(x, np.array([1.0, -1.0]))
    v, g = rec.value_and_grad(x, np.array([3.0, 1.0]))
    np.testing.assert_allclose(g, np.full((2, 3), [[0.75], [0.25]]))


# ---------------------------------------------------------------- prod, cumprod with zeros
def _others(x, axis):
    """Brute force: product of the other elements of each reduced slice."""
    axes = R.norm_axis(axis, x.ndim)
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        sl = tuple(slice(None) if k in axes else i for k, i in enumerate(idx))
        mask = np.zeros(x.shape, bool)
        mask[sl] = True
        mask[idx] = False
        out[idx] = np.prod(x[mask])
    return out


def _cumprod_grad(x, g):
    """Brute force gradient of sum(g * cumprod(x)) for 1-D ``x``."""
    n = len(x)
    return np.array([sum(g[i] * np.prod(np.delete(x[:i + 1], k)) for i in range(k, n))
                     for k in range(n)])


def test_prod_with_zeros_examples():
    p = td.grad(lambda x: np.prod(x))
    np.testing.assert_array_equal(p(np.array([2.0, 3.0, 4.0])), [12.0, 8.0, 6.0])
    np.testing.assert_array_equal(p(np.array([2.0, 0.0, 4.0])), [0.0, 8.0, 0.0])
    np.testing.assert_array_equal(p(np.array([0.0, 3.0, 0.0])), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(p(np.array([0.0])), [1.0])
    np.testing.assert_array_equal(p(np.zeros(0)), np.zeros(0))
    # no division: exact where prod / x under- or overflows
    np.testing.assert_allclose(p(np.array([1e-200, 1e-200, 1e200])), [1.0, 1.0, 0.0])


@given(case=reduce_case(min_side=1), n_zeros=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_prod_with_zeros(case, n_zeros, seed):
    x, axis, keepdims = case
    x = _put(x, seed, n_zeros, 0.0)
    f = lambda a: np.prod(a, axis=axis, keepdims=keepdims)    # noqa: E731
    w = _weights(np.shape(f(x)))
    g = td.grad(lambda a: np.sum(f(a) * w))(x)
    want = np.broadcast_to(np.reshape(w, R.reduced_shape(x.shape, R.norm_axis(axis, x.ndim),
                                                         True)), x.shape) * _others(x, axis)
    np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-300)
    check_grads(f, x)          # a polynomial: finite differences are fine at zeros


def test_cumprod_with_zeros_examples():
    for x in ([2.0, 0.0, 3.0, 0.0, 5.0], [0.0, 0.0, 3.0], [1.5, -2.0, 0.0], [0.0], [0.5, 2.0]):
        x = np.array(x)
        g = _weights(x.shape)
        got = td.grad(lambda a: np.sum(np.cumprod(a) * g))(x)
        np.testing.assert_allclose(got, _cumprod_grad(x, g), rtol=1e-12, atol=1e-15)
        check_grads(np.cumprod, x)


@given(case=scan_case(min_side=1), n_zeros=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_cumprod_with_zeros(case, n_zeros, seed):
    x, axis = case
    x = _put(x, seed, n_zeros, 0.0)
    f = lambda a: np.cumprod(a, axis=axis)    # noqa: E731
    g = _weights(f(x).shape)
    got = td.grad(lambda a: np.sum(f(a) * g))(x)
    if axis is None:
        want = _cumprod_grad(x.reshape(-1), g).reshape(x.shape)
    else:
        want = np.empty_like(x)
        xm, gm, wm = (np.moveaxis(v, axis, -1) for v in (x, g, want))
        for idx in np.ndindex(xm.shape[:-1]):
            wm[idx] = _cumprod_grad(xm[idx], gm[idx])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    check_grads(f, x)


# ---------------------------------------------------------------- max/min ties
def test_max_ties_split_evenly():
    x = np.array([1.0, 3.0, 3.0, 0.0, 3.0])
    np.testing.assert_allclose(td.grad(np.max)(x), [0, 1 / 3, 1 / 3, 0, 1 / 3])
    np.testing.assert_allclose(td.grad(np.min)(-x), [0, 1 / 3, 1 / 3, 0, 1 / 3])
    np.testing.assert_allclose(td.grad(lambda a: np.maximum.reduce(a))(x),
                               [0, 1 / 3, 1 / 3, 0, 1 / 3])
    np.testing.assert_allclose(td.grad(np.nanmax)(np.array([np.nan, 2.0, 2.0])), [0, .5, .5])
    m = np.array([[1.0, 1.0, 0.0], [2.0, 5.0, 5.0], [4.0, 4.0, 4.0]])
    for keepdims in (False, True):
        f = lambda a: np.max(a, axis=1, keepdims=keepdims)    # noqa: E731
        out, pull = td.vjp(f, m)
        u = np.array([1.0, 2.0, 3.0]).reshape(out.shape)
        np.testing.assert_allclose(pull(u)[0], [[.5, .5, 0], [0, 1, 1], [1, 1, 1]])
        # the JVP averages the tangents of the tied elements: consistent with the VJP
        v = np.arange(9.0).reshape(3, 3)
        _, t = td.jvp(f, (m,), (v,))
        np.testing.assert_allclose(np.ravel(t), [0.5, 4.5, 7.0])
        assert np.isclose(np.sum(u * t), np.sum(pull(u)[0] * v))


@given(case=reduce_case(min_side=1), seed=st.integers(0, 2**16))
def test_max_ties_random(case, seed):
    x, axis, keepdims = case
    x = np.round(np.array(x))          # integers in [-2, 2]: many ties
    f = lambda a: np.max(a, axis=axis, keepdims=keepdims)    # noqa: E731
    out, pull = td.vjp(f, x)
    u = _weights(np.shape(out)) + 0.0
    g = pull(u)[0]
    axes = R.norm_axis(axis, x.ndim)
    o = np.reshape(out, R.reduced_shape(x.shape, axes, True))
    mask = x == o
    want = mask * np.reshape(u, o.shape) / np.sum(mask, axis=axes, keepdims=True)
    np.testing.assert_allclose(g, want, rtol=1e-12)
    # the cotangent is conserved: each result's cotangent is fully distributed
    np.testing.assert_allclose(np.sum(g), np.sum(u), rtol=1e-12)


# ---------------------------------------------------------------- NaN and IEEE behaviour
NAN_CASES = {
    "sum": lambda a: np.sum(a, axis=1), "prod": lambda a: np.prod(a, axis=1),
    "max": lambda a: np.max(a, axis=1), "min": lambda a: np.min(a, axis=0),
    "mean": lambda a: np.mean(a, axis=1), "var": lambda a: np.var(a, axis=1),
    "std": lambda a: np.std(a), "ptp": lambda a: np.ptp(a, axis=1),
    "cumsum": lambda a: np.cumsum(a, axis=1), "cumprod": lambda a: np.cumprod(a, axis=1),
    "sort": lambda a: np.sort(a, axis=1), "argsort": lambda a: np.argsort(a, axis=1),
    "argmax": lambda a: np.argmax(a, axis=1), "argmin": lambda a: np.argmin(a),
    "nansum": lambda a: np.nansum(a, axis=1), "nanmean": lambda a: np.nanmean(a, axis=1),
    "nanmax": lambda a: np.nanmax(a, axis=1), "nanmin": lambda a: np.nanmin(a, axis=1),
    "nanvar": lambda a: np.nanvar(a, axis=1), "nanstd": lambda a: np.nanstd(a, axis=1),
    "nanprod": lambda a: np.nanprod(a, axis=1), "nancumsum": lambda a: np.nancumsum(a, 1),
    "average": lambda a: np.average(a, axis=1, weights=np.arange(1.0, 4.0)),
}
XNAN = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan], [0.5, np.inf, -1.0],
                 [0.0, -np.inf, np.inf]])


@pytest.mark.parametrize("name", sorted(NAN_CASES))
def test_nan_and_inf_like_numpy(name):
    f = NAN_CASES[name]
    want = quiet(f, XNAN)
    out, pull = quiet(td.vjp, f, XNAN)
    np.testing.assert_array_equal(out, want)      # NaNs in the same places
    assert np.asarray(out).dtype == np.asarray(want).dtype
    g = quiet(pull, np.ones(np.shape(want)))[0]   # no exception; IEEE values
    assert g.shape == XNAN.shape


def test_nan_gets_the_max_cotangent():
    x = np.array([1.0, np.nan, 3.0, np.nan])
    np.testing.assert_array_equal(td.grad(np.max)(x), [0, .5, 0, .5])
    np.testing.assert_array_equal(td.grad(np.nanmax)(x), [0, 0, 1, 0])
    np.testing.assert_array_equal(td.grad(np.nansum)(x), [1, 0, 1, 0])
    np.testing.assert_array_equal(td.grad(np.nanmean)(x), [.5, 0, .5, 0])
    g = td.grad(np.nanstd)(np.array([1.0, np.nan, 3.0]))
    np.testing.assert_allclose(g, [-.5, 0, .5])
    # prod: the derivative is the product of the others, finite next to a NaN-free rest
    np.testing.assert_array_equal(quiet(td.grad(np.prod), np.array([2.0, np.nan, 3.0]))[1], 6.0)


def test_empty_slices_like_numpy():
    x = np.zeros((0, 3))
    for f in (lambda a: np.mean(a, axis=0), lambda a: np.var(a, axis=0),
              lambda a: np.std(a, axis=0, ddof=1), lambda a: np.sum(a, axis=0),
              lambda a: np.prod(a, axis=0), lambda a: np.max(a, axis=1),
              lambda a: np.nanmean(a, axis=0)):
        np.testing.assert_array_equal(quiet(td.vjp, f, x)[0], quiet(f, x))
    np.testing.assert_array_equal(td.vjp(lambda a: np.max(a, axis=0, initial=-1.0), x)[0],
                                  [-1.0, -1.0, -1.0])
    with pytest.raises(ValueError):
        td.vjp(lambda a: np.max(a, axis=0), x)
    with pytest.raises(ValueError):
        td.vjp(lambda a: np.argmax(a, axis=0), x)


def test_std_at_zero_variance():
    # sqrt is not differentiable at 0: the gradient is NaN (0/0), never an exception
    v, g = quiet(td.value_and_grad(np.std), np.ones(3))
    assert v == 0.0 and np.all(np.isnan(g))
    v, g = quiet(td.value_and_grad(lambda a: np.var(a, ddof=1)), np.ones(1))
    assert np.isnan(v)


# ---------------------------------------------------------------- shape rules
DTYPES = (np.float64, np.float32, np.int8, np.uint8, np.int32, np.bool_)


def _prims(x, axis, keepdims):
    """(op, params, NumPy reference) for every primitive of the domain."""
    nd = x.ndim
    axes = R.norm_axis(axis, nd)
    out = [(R.SUM, dict(axis=axes, keepdims=keepdims),
            lambda a: np.sum(a, axis=axes, keepdims=keepdims)),
           (R.PROD, dict(axis=axes, keepdims=keepdims),
            lambda a: np.prod(a, axis=axes, keepdims=keepdims)),
           (R.ALL, dict(axis=axes, keepdims=keepdims),
            lambda a: np.all(a, axis=axes, keepdims=keepdims)),
           (R.ANY, dict(axis=axes, keepdims=keepdims),
            lambda a: np.any(a, axis=axes, keepdims=keepdims)),
           (R.COUNT_NONZERO, {}, lambda a: np.int64(np.count_nonzero(a))),
           (R.ARGWHERE, dict(count=int(np.count_nonzero(x))), np.argwhere)]
    if n_reduced(x.shape, axes) > 0:
        out += [(R.MAX, dict(axis=axes, keepdims=keepdims),
                 lambda a: np.max(a, axis=axes, keepdims=keepdims)),
                (R.MIN, dict(axis=axes, keepdims=keepdims),
                 lambda a: np.min(a, axis=axes, keepdims=keepdims))]
    if x.size:
        out += [(R.ARGMAX, dict(axis=None, keepdims=keepdims),
                 lambda a: np.argmax(a, keepdims=keepdims))]
    if nd:
        ax1 = axes[0] if axes else 0
        out += [(R.CUMSUM, dict(axis=ax1), lambda a: np.cumsum(a, axis=ax1)),
                (R.CUMPROD, dict(axis=ax1), lambda a: np.cumprod(a, axis=ax1)),
                (R.SORT, dict(axis=ax1), lambda a: np.sort(a, axis=ax1)),
                (R.ARGSORT, dict(axis=ax1, kind="stable"),
                 lambda a: np.argsort(a, axis=ax1, kind="stable"))]
        if x.shape[ax1]:
            out += [(R.ARGMIN, dict(axis=ax1, keepdims=keepdims),
                     lambda a: np.argmin(a, axis=ax1, keepdims=keepdims))]
    return out


@given(case=reduce_case(), dtype=st.sampled_from(DTYPES))
def test_shape_rules(case, dtype):
    x, axis, keepdims = case
    x = (x > 0) if dtype is np.bool_ else (x * 3).astype(dtype)
    for op, params, ref in _prims(x, axis, keepdims):
        want = np.asarray(ref(x))
        rule = op.shape(aval_of(x), **params)
        assert rule.shape == want.shape, (op, params)
        assert rule.dtype == want.dtype, (op, params)
        got = np.asarray(op.forward(x, **params))
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@given(case=reduce_case())
def test_recorded_shapes_match_numpy(case):
    """The handlers (composites included) give NumPy's shapes and dtypes on tracked input."""
    x, axis, keepdims = case
    n = n_reduced(x.shape, axis)
    fns = [v[0] for k, v in REDUCTIONS.items() if n >= v[1]]
    fns += [lambda a, ax, k: np.all(a > 0, axis=ax, keepdims=k),
            lambda a, ax, k: np.any(a > 0, axis=ax, keepdims=k),
            lambda a, ax, k: np.count_nonzero(a > 0, axis=ax, keepdims=k),
            lambda a, ax, k: np.logical_and.reduce(a > 0, axis=ax, keepdims=k)]
    for fn in fns:
        try:
            want = np.asarray(quiet(fn, x, axis, keepdims))
        except ZeroDivisionError:   # np.average with an empty result (tapediff returns it)
            continue
        got = np.asarray(quiet(td.vjp, lambda a: fn(a, axis, keepdims), x)[0])
        assert got.shape == want.shape and got.dtype == want.dtype


# ---------------------------------------------------------------- float32
F32 = {
    "sum": lambda a: np.sum(a, axis=0), "mean": lambda a: np.mean(a, axis=1),
    "prod": lambda a: np.prod(a, axis=1), "max": lambda a: np.max(a, axis=(0, 1)),
    "min": lambda a: np.min(a, axis=0, keepdims=True), "ptp": lambda a: np.ptp(a, axis=1),
    "var": lambda a: np.var(a, axis=0, ddof=1), "std": lambda a: np.std(a),
    "cumsum": lambda a: np.cumsum(a, axis=1), "cumprod": lambda a: np.cumprod(a),
    "sort": lambda a: np.sort(a, axis=0), "average": lambda a: np.average(a, axis=1),
    "average_w": lambda a: np.average(a, axis=1, weights=np.arange(1, 5, dtype=np.float32)),
    "nansum": lambda a: np.nansum(a), "nanmean": lambda a: np.nanmean(a, axis=0),
    "nanmax": lambda a: np.nanmax(a, axis=1), "nanvar": lambda a: np.nanvar(a, axis=1),
    "nanprod": lambda a: np.nanprod(a, axis=0), "max_initial": lambda a: a.max(1, initial=0.5),
    "gather_argmax": lambda a: a[np.arange(3), np.argmax(a, axis=1)],
    "take_argsort": lambda a: a[0][np.argsort(a[1])],
}


@pytest.mark.parametrize("name", sorted(F32))
def test_float32_gradients(name):
    f = F32[name]
    x = np.random.default_rng(3).uniform(-2, 2, (3, 4))
    x32 = x.astype(np.float32)
    v32, g32 = td.value_and_grad(lambda a: np.sum(f(a) * 0.5))(x32)
    v64, g64 = td.value_and_grad(lambda a: np.sum(f(a) * 0.5))(x)
    assert g32.dtype == np.float32
    assert np.asarray(v32).dtype == np.float32
    assert np.asarray(f(x32)).dtype == np.asarray(td.vjp(f, x32)[0]).dtype
    np.testing.assert_allclose(g32, g64, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(v32, v64, rtol=2e-4, atol=2e-5)


# ---------------------------------------------------------------- inactive results and replay
def test_inactive_results():
    x = np.random.default_rng(0).standard_normal((3, 4))

    def f(a):
        outs = [np.argmax(a), np.argmin(a, axis=1), np.argsort(a, axis=0), a.argmax(1),
                np.all(a > 0, axis=1), np.any(a > 0), np.count_nonzero(a),
                np.logical_or.reduce(a > 0, axis=0), np.nonzero(a > 0)[1],
                np.flatnonzero(a > 0), np.argwhere(a > 0)]
        assert not any(o.is_active for o in outs)
        assert np.max(a).is_active and np.sort(a).is_active
        return np.sum(a * np.argmax(a, axis=1, keepdims=True))
    g = td.grad(f)(x)
    np.testing.assert_array_equal(g, np.broadcast_to(np.argmax(x, axis=1)[:, None], x.shape))


@given(shape=S.shapes(min_dims=1, max_dims=2, min_side=1), seeds=st.tuples(
    st.integers(0, 2**16), st.integers(0, 2**16)))
def test_replay_changed_permutation(shape, seeds):
    a, b = (np.random.default_rng(s).standard_normal(shape) for s in seeds)
    w = _weights(shape)
    check_replay(lambda x: np.sum(np.sort(x, axis=-1) * w), (a,), (b,))
    check_replay(lambda x: np.sum(np.sort(x, axis=None) ** 3 * w.ravel()), (a,), (b,))
    check_replay(lambda x: np.sum(x.ravel()[np.argsort(x, axis=None)] * w.ravel()), (a,), (b,))
    check_replay(lambda x: np.sum(np.sort(x, axis=0) * w), (a,), (b,))
    check_replay(lambda x: x.ravel()[np.argmax(x)] * 2.0 + x.ravel()[np.argmin(x)], (a,), (b,))
    check_replay(lambda x: np.sum(np.max(x, axis=0) ** 2 + np.min(x, axis=0)), (a,), (b,))
    check_replay(lambda x: np.sum(x ** 2 * np.argsort(x, axis=-1)), (a,), (b,))


def test_argsort_permutation_replay_1d():
    a = np.array([3.0, 1.0, 2.0])
    b = np.array([1.0, 2.0, 3.0])
    f = lambda x: np.sum(x[np.argsort(x)] * np.array([1.0, 10.0, 100.0]))    # noqa: E731
    rec = check_replay(f, (a,), (b,))
    np.testing.assert_array_equal(rec.gradient(a), [100.0, 1.0, 10.0])
    np.testing.assert_array_equal(rec.gradient(b), [1.0, 10.0, 100.0])
    assert rec.n_versions == 1        # argsort is an instruction, not a guard


NONZERO_FNS = {
    "nonzero": lambda x: np.sum(x[np.nonzero(x > 0)] ** 2),
    "nonzero2d": lambda x: np.sum(x.reshape(2, -1)[np.nonzero(x.reshape(2, -1) > 0)] ** 3),
    "flatnonzero": lambda x: np.sum(np.sin(x[np.flatnonzero(x > 0)])),
    "argwhere": lambda x: np.sum(x[np.argwhere(x > 0)[:, 0]] * 2.0)
    + 0.0 * np.sum(np.argwhere(x > 0)),
    "where1": lambda x: np.sum(x[np.where(x < 0)] ** 2),
    "method": lambda x: np.sum(x[(x > 0).nonzero()[0]] ** 2),
}


@pytest.mark.parametrize("name", sorted(NONZERO_FNS))
def test_nonzero_replay_other_count(name):
    f = NONZERO_FNS[name]
    a = np.array([1.0, -1.0, 2.0, -3.0])
    b = np.array([1.0, 1.0, 2.0, -3.0])       # another count
    c = np.array([-1.0, 1.0, -2.0, 3.0])      # same count, other places
    rec = td.record(f, a)
    assert len(rec.tape.guards) >= 1
    for x in (b, c, a, b):
        v1, g1 = rec.value_and_grad(x)
        v2, g2 = td.value_and_grad(f)(x)
        np.testing.assert_allclose(v1, v2, rtol=1e-14)
        np.testing.assert_allclose(g1, g2, rtol=1e-14)
        np.testing.assert_allclose(rec(x), f(x), rtol=1e-14)
    assert rec.n_versions == 2
    with pytest.raises(td.BranchChanged):
        td.record(f, a, strict=True)(b)


def test_nonzero_values_and_constants():
    x = np.random.default_rng(1).standard_normal((3, 4))
    f = lambda a: (np.nonzero(a > 0), np.argwhere(a > 0), np.flatnonzero(a > 0))    # noqa: E731
    got, want = td.vjp(f, x)[0], f(x)
    for p, q in zip(got[0], want[0]):
        np.testing.assert_array_equal(p, q)
        assert p.dtype == q.dtype
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])
    # a mask that does not depend on the inputs needs no guard
    rec = td.record(lambda a: np.sum(a[np.nonzero(np.arange(4, like=a) > 1)]), np.ones(4))
    assert len(rec.tape.guards) == 0
    with pytest.raises(ValueError, match="0d"):
        td.vjp(lambda a: np.nonzero(a[0, 0]), x)


# ---------------------------------------------------------------- arguments
def test_ufunc_methods_match_numpy():
    x = np.random.default_rng(2).uniform(0.5, 2.0, (3, 4))
    fns = [lambda a: np.add.reduce(a), lambda a: np.add.reduce(a, axis=None),
           lambda a: np.add.reduce(a, 1, keepdims=True),
           lambda a: np.multiply.reduce(a, axis=(0, 1)), lambda a: np.multiply.reduce(a, -1),
           lambda a: np.maximum.reduce(a, axis=1), lambda a: np.minimum.reduce(a),
           lambda a: np.add.accumulate(a, axis=1), lambda a: np.multiply.accumulate(a),
           lambda a: np.add.reduce(a, axis=0, where=a > 1.0),
           lambda a: np.maximum.reduce(a, axis=0, initial=1.5),
           lambda a: np.multiply.reduce(a, axis=1, dtype=np.float32)]
    for f in fns:
        got, want = td.vjp(f, x)[0], f(x)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-6)
        if want.dtype == np.float64:
            check_grads(f, x)
    for f in (lambda a: np.logical_and.reduce(a > 1, axis=1),
              lambda a: np.logical_or.reduce(a > 1), lambda a: np.logical_or.reduce(a, 1)):
        np.testing.assert_array_equal(td.vjp(f, x)[0], f(x))


def test_where_initial_dtype_arguments():
    x = np.random.default_rng(4).uniform(-2, 2, (3, 4))
    m = np.ones(x.shape, bool)
    m[0, 3] = m[1, 0] = m[2, 2] = False     # at least two True in every row and column
    fns = [lambda a: np.sum(a, axis=1, where=m), lambda a: np.sum(a, initial=2.0),
           lambda a: np.prod(a, axis=0, where=m, initial=3.0),
           lambda a: np.mean(a, axis=1, where=m), lambda a: np.var(a, axis=1, where=m),
           lambda a: np.std(a, axis=0, where=m, ddof=1),
           lambda a: np.max(a, axis=1, where=m, initial=-5.0),
           lambda a: np.min(a, axis=1, initial=-1.0),
           lambda a: np.nansum(a, axis=0, where=m), lambda a: np.nanmean(a, axis=1, where=m),
           lambda a: np.var(a, axis=1, mean=np.mean(a, axis=1, keepdims=True)),
           lambda a: np.std(a, axis=1, correction=1),
           lambda a: np.sum(a, axis=0, dtype=np.float32), lambda a: np.mean(a, dtype=np.float32),
           lambda a: np.cumsum(a, axis=0, dtype=np.float32),
           lambda a: np.var(a, axis=1, dtype=np.float32)]
    for f in fns:
        got, want = td.vjp(f, x)[0], f(x)
        assert np.shape(got) == np.shape(want) and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-6)
        if want.dtype == np.float64:
            check_grads(f, x)
        else:
            assert td.vjp(f, x)[1](np.ones(np.shape(want), want.dtype))[0].dtype == np.float64
    # where on all / any
    for f in (lambda a: np.all(a > 0, axis=1, where=m), lambda a: np.any(a > 0, where=~m)):
        np.testing.assert_array_equal(td.vjp(f, x)[0], f(x))
    # integer input: mean and var in float64, sums and scans promoted like NumPy
    i = np.arange(12, dtype=np.int8).reshape(3, 4)
    for f in (lambda a: np.mean(a, axis=0), lambda a: np.var(a), lambda a: np.cumsum(a, 1),
              lambda a: np.prod(a, axis=1), lambda a: np.sum(a), lambda a: np.average(a),
              lambda a: np.ptp(a, axis=0)):
        got, want = td.vjp(f, i)[0], f(i)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want)


def test_out_argument():
    x = np.random.default_rng(5).standard_normal((3, 4))

    def f(a):
        o1 = np.zeros(4, like=a)
        r = np.sum(a, axis=0, out=o1)
        assert r is o1
        o2 = np.zeros((1, 4), like=a)
        np.add.reduce(a ** 2, axis=0, keepdims=True, out=o2)
        o3 = np.zeros(3, like=a)
        np.max(a, axis=1, out=o3)
        o4 = np.zeros(12, like=a)
        np.cumprod(a, out=o4)
        o5 = np.zeros(4, like=a)
        np.std(a, axis=0, out=o5)
        return np.sum(o1 * o2[0]) + np.sum(o3) + np.sum(o4) + np.sum(o5)
    check_grads(f, x)
    # inactive results may go into plain arrays
    idx = np.zeros(3, dtype=np.intp)
    td.vjp(lambda a: np.argmax(a, axis=1, out=idx), x)
    np.testing.assert_array_equal(idx, np.argmax(x, axis=1))
    with pytest.raises(td.TrackedEscape):
        td.vjp(lambda a: np.sum(a, out=np.zeros(())), x)
    with pytest.raises(ValueError, match="np.sum"):
        td.vjp(lambda a: np.sum(a, out=np.zeros(2, like=a)), x)


def test_errors_name_the_function():
    x = np.random.default_rng(6).standard_normal((3, 4))
    with pytest.raises(td.UnsupportedOperation, match="np.sort"):
        td.vjp(lambda a: np.sort(a, order="f"), x)
    with pytest.raises(td.UnsupportedOperation, match="np.argsort"):
        td.vjp(lambda a: np.argsort(a, order="f"), x)
    with pytest.raises(td.UnsupportedOperation, match="logical_and.reduce"):
        td.vjp(lambda a: np.logical_and.reduce(a > 0, initial=True), x)
    with pytest.raises(ValueError, match="initial"):
        td.vjp(lambda a: np.max(a, where=a > 0), x)
    with pytest.raises(ValueError, match="accumulate"):
        td.vjp(lambda a: np.add.accumulate(a, axis=None), x)
    with pytest.raises(ValueError, match="duplicate"):
        td.vjp(lambda a: np.sum(a, axis=(0, -2)), x)
    with pytest.raises(np.exceptions.AxisError):
        td.vjp(lambda a: np.prod(a, axis=2), x)
    with pytest.raises(np.exceptions.AxisError):
        td.vjp(lambda a: np.cumsum(a, axis=-3), x)
    with pytest.raises(TypeError):
        td.vjp(lambda a: np.cumsum(a, axis=(0,)), x)
    with pytest.raises(ValueError, match="kind"):
        td.vjp(lambda a: np.sort(a, kind="bogus"), x)
    with pytest.raises(ValueError):
        td.vjp(lambda a: np.sort(a, kind="stable", stable=True), x)
    with pytest.raises(ValueError, match="correction"):
        td.vjp(lambda a: np.var(a, ddof=1, correction=1), x)
    with pytest.raises(TypeError, match="Axis must be specified"):
        td.vjp(lambda a: np.average(a, weights=np.ones(4)), x)


def test_tracked_methods():
    x = np.random.default_rng(7).standard_normal((3, 4))
    names = [("sum", (1,)), ("mean", (0,)), ("prod", ()), ("max", (1,)), ("min", ()),
             ("std", (0,)), ("var", ()), ("cumsum", (1,)), ("cumprod", (0,)),
             ("argmax", (1,)), ("argmin", ()), ("argsort", (0,)), ("all", (1,)), ("any", ())]
    for name, args in names:
        f = lambda a: getattr(a, name)(*args)    # noqa: E731
        np.testing.assert_allclose(td.vjp(f, x)[0], f(x), rtol=1e-12)
    for got, want in zip(td.vjp(lambda a: (a > 0).nonzero(), x)[0], (x > 0).nonzero()):
        np.testing.assert_array_equal(got, want)


def test_integer_axis_types():
    x = np.random.default_rng(8).standard_normal((2, 3, 4))
    for ax in (np.int64(1), (0, 2), (np.int32(-1), 0)):
        np.testing.assert_allclose(td.vjp(lambda a: np.max(a, axis=ax), x)[0],
                                   np.max(x, axis=ax))
    np.testing.assert_allclose(td.vjp(lambda a: np.sum(a, axis=()), x)[0], x)


# ---------------------------------------------------------------- second order
SECOND = {
    "prod": lambda a: np.sum(np.prod(a, axis=1) ** 2),
    "prod_all": lambda a: np.prod(a),
    "cumprod": lambda a: np.sum(np.cumprod(a, axis=1) * np.arange(1.0, 5.0)),
    "cumsum": lambda a: np.sum(np.cumsum(a, axis=0) ** 3),
    "max": lambda a: np.sum(np.max(a, axis=0) ** 3),
    "sort": lambda a: np.sum(np.sort(a, axis=1) ** 3 * np.arange(4.0)),
    "std": lambda a: np.sum(np.std(a, axis=1) ** 3),
    "var": lambda a: np.var(a * a, ddof=1),
}


@pytest.mark.parametrize("name, zeros", [(n, False) for n in sorted(SECOND)]
                         + [(n, True) for n in ("prod", "prod_all", "cumprod")])
def test_second_order(name, zeros):
    """grad of (grad . v): the rules record differentiable tapes, exact at zeros too."""
    f = SECOND[name]
    rng = np.random.default_rng(9)
    x = rng.uniform(-2, 2, (3, 4))
    if zeros:
        x[0, 0] = x[0, 3] = x[1, 2] = x[2, 1] = x[2, 2] = 0.0
    v = rng.standard_normal(x.shape)
    check_grads(lambda a: np.sum(td.grad(f)(a) * v), x)


# ---------------------------------------------------------------- fast paths used elsewhere
def test_count_nonzero():
    x = np.array([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0]])
    got = td.vjp(lambda a: (np.count_nonzero(a), np.count_nonzero(a, axis=0),
                            np.count_nonzero(a, axis=1, keepdims=True)), x)[0]
    want = (np.count_nonzero(x), np.count_nonzero(x, axis=0),
            np.count_nonzero(x, axis=1, keepdims=True))
    for p, q in zip(got, want):
        np.testing.assert_array_equal(p, q)
        assert np.shape(p) == np.shape(q)


def test_boolean_mask_indexing_still_guards():
    # tapediff.numpy_dispatch._guard_mask uses the count_nonzero primitive of this module
    f = lambda x: np.sum(x[x > 0] ** 2)    # noqa: E731
    rec = td.record(f, np.array([1.0, -1.0, 2.0]))
    for x in (np.array([1.0, 1.0, 2.0]), np.array([-1.0, -1.0, 2.0])):
        np.testing.assert_allclose(rec.gradient(x), td.grad(f)(x))


@pytest.mark.parametrize("kind", [None, "stable", "mergesort", "heapsort"])
def test_argsort_kinds(kind):
    x = np.array([3.0, 1.0, 3.0, 2.0, 1.0])
    got = td.vjp(lambda a: np.argsort(a, kind=kind), x)[0]
    np.testing.assert_array_equal(x[got], np.sort(x))
    if kind in ("stable", "mergesort"):
        np.testing.assert_array_equal(got, np.argsort(x, kind=kind))
    np.testing.assert_array_equal(td.vjp(lambda a: np.argsort(a, stable=True), x)[0],
                                  np.argsort(x, stable=True))


def test_sort_grad_is_a_permutation():
    x = np.array([[3.0, -1.0, 2.0], [0.5, 0.25, 4.0]])
    for axis in (0, 1, -1, None):
        w = _weights(np.sort(x, axis=axis).shape)
        g = td.grad(lambda a: np.sum(np.sort(a, axis=axis) * w))(x)
        perm = np.argsort(x, axis=axis)
        want = np.zeros(x.size)
        if axis is None:
            want[perm] = w
        else:
            want = np.empty_like(x)
            np.put_along_axis(want, perm, w, axis=axis)
        np.testing.assert_array_equal(g, want.reshape(x.shape))


@given(case=reduce_case(max_dims=2, min_side=1))
def test_all_axis_forms_in_one_program(case):
    """Reductions over the same axes chained into one scalar: a replayable program."""
    x, axis, keepdims = case
    assume(n_reduced(x.shape, axis) >= 2)

    def f(a):
        return (np.sum(np.max(a, axis=axis, keepdims=keepdims) * 0.5)
                + np.sum(np.prod(a, axis=axis, keepdims=keepdims))
                + np.sum(np.std(a, axis=axis, keepdims=keepdims)))
    b = np.random.default_rng(x.size).uniform(-2, 2, x.shape)
    check_replay(f, (x,), (b,), rtol=1e-10)


# ---------------------------------------------------------------- searchsorted
_POOL = [-np.inf, -2.0, -0.5, -0.0, 0.0, 0.5, 1.0, 1.0, 3.0, np.inf, np.nan]


@given(st.data())
def test_searchsorted_matches_numpy(data):
    """Every side, duplicates, signed zeros, infinities and NaN (sorted last),
    with ``a``, ``v`` or both tracked; the result is inactive and exact."""
    a = np.sort(np.array(data.draw(st.lists(st.sampled_from(_POOL), max_size=8)), float))
    v = np.array(data.draw(st.lists(st.sampled_from(_POOL), min_size=0, max_size=6)), float)
    v = v.reshape(data.draw(st.sampled_from([(v.size,), (1, v.size)])))
    side = data.draw(st.sampled_from(["left", "right"]))
    want = np.searchsorted(a, v, side=side)
    for f, args in [(lambda p, q: np.searchsorted(p, q, side=side), (a, v)),
                    (lambda q: np.searchsorted(a, q, side=side), (v,)),
                    (lambda p: p.searchsorted(v, side=side), (a,))]:
        got = td.vjp(f, *args)[0]
        assert got.dtype == np.intp and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_searchsorted_dtypes_sorter_and_scalars():
    f32 = np.array([0.1, 0.5, 2.0], np.float32)
    # NumPy compares a float32 array and a Python float in float64
    for v in (0.1, np.float32(0.1), np.array([0.1, 0.5])):
        want = np.searchsorted(f32, v, side="right")
        got = td.vjp(lambda a: np.searchsorted(a, v, side="right"), f32)[0]
        assert np.shape(got) == np.shape(want)
        np.testing.assert_array_equal(got, want)
    ints = np.array([1, 2, 2, 5])
    for v in (2.5, 2, np.array([-1, 7]), np.int8(2)):
        np.testing.assert_array_equal(
            td.vjp(lambda x: np.searchsorted(ints, v) * x, np.ones(1))[0][0] if np.ndim(v)
            == 0 else td.vjp(lambda q: np.searchsorted(ints, q), np.asarray(v))[0],
            np.searchsorted(ints, v))
    u = np.array([3.0, -1.0, 2.0, 0.0])
    order = np.argsort(u)
    q = np.array([-2.0, 0.0, 2.5, 9.0])
    want = np.searchsorted(u, q, sorter=order)
    np.testing.assert_array_equal(td.vjp(lambda x: np.searchsorted(x, q, sorter=order), u)[0],
                                  want)
    np.testing.assert_array_equal(td.vjp(lambda s: np.searchsorted(u, q, sorter=s), order)[0],
                                  want)
    assert R.SEARCHSORTED.shape(aval_of(u), aval_of(q[:, None]), side="left") == \
        ((4, 1), np.dtype(np.intp))


def test_searchsorted_errors():
    a = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="side must be 'left' or 'right'"):
        td.vjp(lambda x: np.searchsorted(x, 2.0, side="middle"), a)
    with pytest.raises(ValueError, match="too deep"):
        td.vjp(lambda x: np.searchsorted(x, 2.0), np.eye(2))
    with pytest.raises(ValueError, match="too small depth"):
        td.vjp(lambda x: np.searchsorted(x, 2.0), np.float64(1.0))
    with pytest.raises(ValueError, match="Sorter index out of range"):
        # (NumPy reads only some entries of the sorter and may miss this one)
        td.vjp(lambda x: np.searchsorted(x, 2.0, sorter=np.array([0, 1, 5])), a)
    with pytest.raises(ValueError, match="Sorter index out of range"):
        td.vjp(lambda x: np.searchsorted(x, 2.0, sorter=np.array([0, -1, 1])), a)
    with pytest.raises(ValueError, match="sorter.size"):
        td.vjp(lambda x: np.searchsorted(x, 2.0, sorter=np.array([0, 1])), a)
    with pytest.raises(TypeError, match="integers"):
        td.vjp(lambda x: np.searchsorted(x, 2.0, sorter=np.array([0.0, 1.0, 2.0])), a)


def test_searchsorted_bins_replay_and_gradient():
    """A lookup table indexed by the bin of each point: the gradient flows
    to the table entries picked, and new points replay without re-recording
    (the bin indices are computed on the tape, not guarded)."""
    edges = np.array([-1.0, 0.0, 0.5, 2.0])
    table = np.array([1.0, -2.0, 0.5, 3.0, 4.0])

    def f(t, x):
        return np.sum(t[np.searchsorted(edges, x)] * x)
    x = np.array([-3.0, 0.2, 0.7, 2.5, 0.0])
    check_grads(f, table, x[:4])          # (away from the edges: piecewise smooth in x)
    rec = td.record(f, table, x, argnums=(0, 1))
    for y in (x[::-1] * 0.9, np.array([5.0, -5.0, 0.4, 0.5, 1.9])):
        v, (gt, gx) = rec.value_and_grad(table, y)
        want = np.zeros(5)
        np.add.at(want, np.searchsorted(edges, y), y)
        np.testing.assert_array_equal(gt, want)
        np.testing.assert_allclose(v, f(table, y))
    assert rec.n_versions == 1


# ---------------------------------------------------------------- NumPy 2 scans, nanarg*
def test_cumulative_sum_and_prod():
    x = np.array([[1.5, -2.0, 0.5], [3.0, 0.25, -1.0]])
    cases = [lambda a: np.cumulative_sum(a[0]), lambda a: np.cumulative_sum(a, axis=1),
             lambda a: np.cumulative_sum(a, axis=0, include_initial=True),
             lambda a: np.cumulative_prod(a, axis=-1, include_initial=True, dtype=np.float32),
             lambda a: np.cumulative_sum(a[0, 1]), lambda a: np.cumulative_sum(a > 0, axis=1),
             lambda a: np.cumulative_prod(np.round(a).astype(np.int8), axis=1)]
    for f in cases:
        got, want = td.vjp(f, x)[0], f(x)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    check_grads(lambda a: np.cumulative_sum(a, axis=1, include_initial=True) ** 2
                + np.cumulative_prod(a, axis=1, include_initial=True), x)
    with pytest.raises(ValueError, match="``axis`` argument is required"):
        td.vjp(np.cumulative_sum, x)


def test_nanargmax_nanargmin():
    a = np.array([[np.nan, 1.0, 3.0], [2.0, np.nan, -1.0], [np.nan, 5.0, np.nan]])
    for f in (np.nanargmax, np.nanargmin, lambda t: np.nanargmax(t, axis=1, keepdims=True),
              lambda t: np.nanargmin(t, axis=0), lambda t: np.nanargmax(np.round(t[1:, 2]))):
        got, want = td.vjp(f, a)[0], f(a)
        assert np.shape(got) == np.shape(want)
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="All-NaN slice"):
        td.vjp(lambda t: np.nanargmax(t, axis=0), np.array([[np.nan, 1.0], [np.nan, 2.0]]))
    f = lambda t: np.nansum(t * np.nanargmax(t, axis=1, keepdims=True))  # noqa: E731
    rec = td.record(f, a[:2])
    assert rec(a[:2] * 2) == f(a[:2] * 2)


# ---------------------------------------------------------------- running extrema
@given(st.data())
def test_running_extrema_match_numpy_and_differentiate(data):
    pool = st.sampled_from([-1.0, 0.0, 0.5, 0.5, 2.0, np.nan, np.inf, -np.inf])
    x = np.array(data.draw(st.lists(pool, min_size=1, max_size=12)))
    if x.size % 2 == 0:
        x = x.reshape(2, -1)
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    for uf in (np.maximum, np.minimum):
        got, want = td.vjp(lambda a: uf.accumulate(a, axis=axis), x)[0], uf.accumulate(x, axis)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        # each output's derivative is its first record's: the gradient of
        # sum(w * out) is w scattered to those elements
        w = np.arange(1.0, x.size + 1).reshape(x.shape)
        with np.errstate(invalid="ignore"):            # (inf - inf in the finite check)
            g = td.grad(lambda a: np.sum(np.where(np.isnan(uf.accumulate(a, axis=axis)), 0,
                                                  uf.accumulate(a, axis=axis) * w)))(x)
        assert g.shape == x.shape and np.all(np.isfinite(g))
    y = np.random.default_rng(x.size).normal(size=x.shape)
    check_grads(lambda a: np.maximum.accumulate(a, axis=axis) ** 2
                + np.minimum.accumulate(a, axis=axis), y)


def test_running_extrema_ties_nan_dtypes_and_errors():
    x = np.array([0.5, -1.0, 4.0, 4.0, 1.0, 2.0, 9.0])
    g = td.grad(lambda a: np.sum(np.maximum.accumulate(a) * np.arange(1.0, 8.0)))(x)
    np.testing.assert_array_equal(g, [3.0, 0.0, 18.0, 0.0, 0.0, 0.0, 7.0])
    g = td.grad(lambda a: np.sum(np.maximum.accumulate(a)))(np.array([1.0, np.nan, 3.0, np.nan]))
    np.testing.assert_array_equal(g, [1.0, 3.0, 0.0, 0.0])           # the first NaN holds it
    for f in (lambda a: np.maximum.accumulate(np.round(a).astype(np.int8)),
              lambda a: np.minimum.accumulate(a > 0), lambda a: np.maximum.accumulate(a, dtype=np.float32),
              lambda a: np.minimum.accumulate(a.reshape(7, 1), axis=0)):
        got, want = td.vjp(f, x)[0], f(x)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    check_replay(lambda a: np.sum(np.maximum.accumulate(a) ** 2), (x,), (x[::-1].copy(),))
    with pytest.raises(ValueError, match="multiple axes"):
        td.vjp(lambda a: np.maximum.accumulate(a.reshape(7, 1), axis=None), x)
    with pytest.raises(TypeError, match="scalar"):
        td.vjp(lambda a: np.maximum.accumulate(a[0]), x)


# ---------------------------------------------------------------- lexsort, partition
def test_lexsort_matches_numpy():
    rng = np.random.default_rng(5)
    k1 = rng.integers(0, 3, (2, 8)).astype(float)
    k1[0, 3] = np.nan
    k2 = rng.integers(0, 2, (2, 8))
    for f in (lambda a, b: np.lexsort((a[0], b[0])), lambda a, b: np.lexsort((a, b)),
              lambda a, b: np.lexsort((a, b), axis=0), lambda a, b: np.lexsort(np.stack([a[0], a[1]])),
              lambda a, b: np.lexsort((a[0],)), lambda a, b: np.lexsort((a[0, 0], b[0, 0]))):
        got, want = td.vjp(f, k1, k2)[0], f(k1, k2)
        assert np.shape(got) == np.shape(want)
        np.testing.assert_array_equal(got, want)
    check_grads(lambda x: x[np.lexsort((x, k2[0]))] * np.arange(8.0), rng.normal(size=8))
    with pytest.raises(TypeError, match="len > 0"):
        td.vjp(lambda a: np.lexsort([]) + a, np.ones(1))


def test_partition_is_numpys_and_differentiates():
    """NumPy's own introselect order (interpreted: no C lowering), the
    derivative paired by value."""
    rng = np.random.default_rng(6)
    x = rng.integers(0, 5, (3, 12)).astype(float)
    x[0, 3] = np.nan
    for f in (lambda a: np.partition(a, 4), lambda a: np.partition(a, (1, 7)),
              lambda a: np.partition(a, 1, axis=0), lambda a: np.partition(a, -2, axis=None),
              lambda a: np.argpartition(a, 3), lambda a: a.argpartition(5, axis=1),
              lambda a: np.partition(a.astype(np.float32), [0, 11])):
        got, want = td.vjp(f, x)[0], f(x)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    y = rng.normal(size=(3, 12))
    check_grads(lambda a: np.partition(a, (2, 9), axis=1) ** 2, y)
    g = td.grad(lambda a: np.sum(np.partition(a, 4)[:5]))(x[1])
    np.testing.assert_array_equal(g, x[1] <= np.partition(x[1], 4)[4])      # (no ties at kth)
    check_replay(lambda a: np.sum(np.partition(a, -3)[-3:]), (y[0],), (y[1],))
    for bad, err in [(lambda a: np.partition(a, 12), ValueError),
                     (lambda a: np.partition(a, 1.5), TypeError),
                     (lambda a: np.partition(a, 1, kind="quick"), ValueError)]:
        with pytest.raises(err):
            td.vjp(bad, y[0])


def test_review_small_integer_dtypes_and_accumulate_axes():
    """Found in review: an explicit small-integer (or bool) dtype was widened
    to int64, where NumPy accumulates in it (wrapping)."""
    x = np.array([[100, 0], [0, 100]])
    for f in (lambda a: np.cumulative_sum(a[0] + a[1], dtype=np.int8),
              lambda a: np.linalg.trace(a, dtype=np.int8), lambda a: np.sum(a, dtype=np.int8),
              lambda a: np.sum(a, axis=0, dtype=bool), lambda a: np.cumsum(a, dtype=np.int8),
              lambda a: np.prod(a + 1, dtype=np.uint8), lambda a: np.maximum.accumulate(a[0], axis=None),
              lambda a: np.add.accumulate(a, axis=(1,))):
        got, want = td.vjp(lambda t: f(np.round(t).astype(np.int64)), x.astype(float))[0], f(x)
        assert np.asarray(got).dtype == np.asarray(want).dtype, f
        np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- 0-d arrays and axis
_ZERO_D_AXIS = ["sum", "prod", "max", "min", "amax", "all", "any", "nansum", "nanprod",
                "nanmax", "nanmin", "nanmean", "nanvar", "nanstd", "mean", "var", "std",
                "average", "median", "nanmedian", "quantile", "ptp", "cumsum", "cumprod",
                "nancumsum", "argsort", "argmax", "argmin", "nanargmax", "nanargmin", "sort",
                "cumulative_sum", "cumulative_prod"]


@pytest.mark.parametrize("name", _ZERO_D_AXIS)
@pytest.mark.parametrize("axis", [0, -1, 1, (0,), None])
def test_zero_d_arrays_take_numpys_axes(name, axis):
    """NumPy's legacy rules for a 0-d array's axis: ufunc reductions take the
    integer 0 or -1 as no axis, scans and arg-reductions see one element along
    axis 0, other functions raise; tapediff raises where NumPy does and gives
    NumPy's value, dtype and shape where it does not."""
    from .exact import assert_same
    f = getattr(np, name)
    x = np.array(2.5)
    kw = {} if name.startswith("cumulative") and axis is None else {"axis": axis}
    if name == "quantile":
        f = functools.partial(np.quantile, q=0.5)
    try:
        f(x, **kw)
    except Exception as e:
        with pytest.raises(type(e)):
            td.vjp(lambda x: f(x, **kw), x)
        return
    assert_same(lambda x: f(x, **kw), x)


def test_cumulative_sum_takes_one_axis_in_a_tuple():
    x = np.arange(1.0, 7.0).reshape(2, 3)
    from .exact import assert_same
    assert_same(lambda x: np.cumulative_sum(x, axis=(1,)), x)
    with pytest.raises(ValueError, match="multiple axes"):
        td.vjp(lambda x: np.cumulative_sum(x, axis=(0, 1)), x)
    check_grads(lambda x: np.cumulative_prod(x, axis=(0,)), x)
