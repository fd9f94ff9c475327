"""Second-tier composites (tapediff/np_api/composites.py): diff, trapezoid, cov,
corrcoef, linspace, polyval, convolve, correlate, ediff1d, gradient,
apply_along_axis, interp, median, quantile, percentile, sinc, meshgrid."""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tapediff as td
from tapediff.testing import check_grads, check_replay
from tests.strategies import arrays, shapes

from .exact import assert_same, randn, value


def assert_value(f, *args, rtol=1e-12, atol=1e-14):
    got, want = value(f, *args), f(*args)
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
    else:
        got, want = (got,), (want,)
    for g, w in zip(got, want):
        assert np.shape(g) == np.shape(w)
        assert np.asarray(g).dtype == np.asarray(w).dtype, (np.asarray(g).dtype,
                                                            np.asarray(w).dtype)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def grad_dtypes(f, *args):
    g = td.grad(lambda *a: np.sum(f(*a)), argnums=tuple(range(len(args))))(*args)
    return [x.dtype for x in g]


# ================================================================ diff
@given(st.data())
def test_diff(data):
    shape = data.draw(shapes(1, 3, max_side=4))
    a = data.draw(arrays(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = data.draw(st.integers(0, 3))
    f = lambda x: np.diff(x, n, axis)  # noqa: E731
    assert_value(f, a)
    check_grads(f, a)


@given(st.data())
def test_diff_prepend_append(data):
    shape = data.draw(shapes(1, 3, min_side=1, max_side=4))
    a = data.draw(arrays(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    side = list(shape)
    side[axis] = data.draw(st.integers(1, 2))
    pre = data.draw(st.one_of(st.none(), st.floats(-2, 2), arrays(tuple(side))))
    app = data.draw(st.one_of(st.none(), st.floats(-2, 2), arrays(tuple(side))))
    kw = {}
    if pre is not None:
        kw["prepend"] = pre
    if app is not None:
        kw["append"] = app
    f = lambda x: np.diff(x, 2, axis, **kw)  # noqa: E731
    assert_value(f, a)
    check_grads(f, a)
    if isinstance(pre, np.ndarray) and isinstance(app, np.ndarray):
        g = lambda x, p, q: np.diff(x, 1, axis, prepend=p, append=q)  # noqa: E731
        check_grads(g, a, pre, app)


def test_diff_misc():
    a = randn(5)
    assert grad_dtypes(np.diff, a.astype(np.float32)) == [np.float32]
    check_replay(lambda x: np.sum(np.diff(x) ** 2), (a,), (a * 3,))
    b = np.array([True, False, False, True])
    assert_value(lambda x: np.diff(b) & (x[:3] > 0), a[:4])
    with pytest.raises(ValueError, match="at least one dimensional"):
        value(np.diff, np.float64(1.0))
    with pytest.raises(ValueError, match="non-negative"):
        value(lambda x: np.diff(x, -1), a)
    check_grads(lambda x: x.sum() * np.diff(np.arange(4.0)), a)


# ================================================================ trapezoid
@given(st.data())
def test_trapezoid(data):
    shape = data.draw(shapes(1, 3, max_side=4))
    y = data.draw(arrays(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    form = data.draw(st.sampled_from(["dx", "x1d", "xnd", "default"]))
    if form == "default":
        args, f = (y,), lambda a: np.trapezoid(a, axis=axis)
    elif form == "dx":
        dx = data.draw(st.floats(0.1, 2))
        args, f = (y,), lambda a: np.trapezoid(a, dx=dx, axis=axis)
    else:
        xs = (shape[axis],) if form == "x1d" else shape
        x = data.draw(arrays(xs))
        args, f = (y, x), lambda a, b: np.trapezoid(a, b, axis=axis)
    assert_value(f, *args)
    check_grads(f, *args)


def test_trapezoid_misc():
    y, x = randn(3, 5), np.linspace(0, 1, 5)
    assert grad_dtypes(np.trapezoid, y.astype(np.float32)) == [np.float32]
    check_replay(lambda a: np.trapezoid(a, x).sum(), (y,), (y ** 2,))
    check_grads(lambda b: np.trapezoid(y, b), randn(5, seed=1))   # w.r.t. the sample points


# ================================================================ cov, corrcoef
@given(st.data())
def test_cov(data):
    nvar, nobs = data.draw(st.integers(1, 3)), data.draw(st.integers(2, 6))
    one_d = data.draw(st.booleans())
    rowvar = data.draw(st.booleans())
    shape = (nobs,) if one_d else ((nvar, nobs) if rowvar else (nobs, nvar))
    m = data.draw(arrays(shape))
    bias = data.draw(st.booleans())
    ddof = data.draw(st.sampled_from([None, 0, 1]))
    weights = data.draw(st.sampled_from(["none", "f", "a", "fa"]))
    kw = {"rowvar": rowvar, "bias": bias, "ddof": ddof}
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    if "f" in weights:
        kw["fweights"] = rng.integers(1, 4, nobs)
    if "a" in weights:
        kw["aweights"] = rng.uniform(0.5, 2, nobs)
    f = lambda x: np.cov(x, **kw)  # noqa: E731
    assert_value(f, m)
    check_grads(f, m)


def test_cov_with_y():
    x, y = randn(2, 5), randn(5, seed=1)
    for rowvar in (True, False):
        xx = x if rowvar else x.T.copy()
        f = lambda a, b, rv=rowvar: np.cov(a, b, rowvar=rv)  # noqa: E731
        assert_value(f, xx, y)
        check_grads(f, xx, y)
    check_grads(lambda a, b: np.corrcoef(a, b), x, y)


def test_cov_tracked_weights_and_dtype():
    m, w = randn(2, 6), np.random.default_rng(3).uniform(0.5, 2, 6)
    f = lambda x, a: np.cov(x, aweights=a)  # noqa: E731
    assert_value(f, m, w)
    check_grads(f, m, w)
    f = lambda x, a: np.cov(x, aweights=a, ddof=0)  # noqa: E731
    check_grads(f, m, w)
    m32 = m.astype(np.float32)
    assert value(np.cov, m32).dtype == np.float64          # NumPy's default dtype
    assert grad_dtypes(np.cov, m32) == [np.float32]
    assert_value(lambda x: np.cov(x, dtype=np.float32), m32, rtol=1e-5)
    assert grad_dtypes(lambda x: np.cov(x, dtype=np.float32), m32) == [np.float32]
    check_replay(lambda x: np.sum(np.cov(x) ** 2), (m,), (m * 2 + 1,))


def test_cov_edge_cases():
    with pytest.raises(ValueError, match="ddof must be integer"):
        value(lambda x: np.cov(x, ddof=0.5), randn(3))
    with pytest.raises(ValueError, match="more than 2"):
        value(np.cov, randn(2, 2, 2))
    with pytest.raises(ValueError, match="fweights cannot be negative"):
        value(lambda x: np.cov(x, fweights=np.array([1, -1, 1])), randn(3))
    with pytest.raises(TypeError, match="fweights must be integer"):
        value(lambda x: np.cov(x, fweights=np.array([1, 1.5, 1])), randn(3))
    with pytest.warns(RuntimeWarning, match="Degrees of freedom"):
        value(np.cov, randn(1, 1))
    r = value(np.cov, np.zeros((0, 3)))
    assert r.shape == (0, 0)
    assert_value(np.cov, randn(5))   # one variable: a 0-d result


@given(st.data())
def test_corrcoef(data):
    nvar, nobs = data.draw(st.integers(1, 3)), data.draw(st.integers(3, 6))
    rowvar = data.draw(st.booleans())
    m = data.draw(arrays((nvar, nobs) if rowvar else (nobs, nvar)))
    f = lambda x: np.corrcoef(x, rowvar=rowvar)  # noqa: E731
    assert_value(f, m, rtol=1e-10)
    check_grads(f, m)


def test_corrcoef_misc():
    m = randn(3, 8)
    assert grad_dtypes(np.corrcoef, m.astype(np.float32)) == [np.float32]
    assert_value(np.corrcoef, randn(6))              # a single variable: 1.0
    check_replay(lambda x: np.sum(np.corrcoef(x) ** 2), (m,), (m ** 3,), rtol=1e-10)
    # the diagonal is constant 1: its derivative vanishes
    g = td.grad(lambda x: np.trace(np.corrcoef(x)))(m)
    np.testing.assert_allclose(g, 0, atol=1e-12)


# ================================================================ linspace
@given(st.data())
def test_linspace(data):
    vec = data.draw(st.booleans())
    start = data.draw(arrays((2,))) if vec else np.float64(data.draw(st.floats(-3, 3)))
    stop = data.draw(arrays((2,))) if vec else np.float64(data.draw(st.floats(-3, 3)))
    num = data.draw(st.integers(0, 6))
    endpoint = data.draw(st.booleans())
    axis = data.draw(st.sampled_from([0, -1])) if vec else 0
    f = lambda a, b: np.linspace(a, b, num, endpoint=endpoint, axis=axis)  # noqa: E731
    assert_value(f, start, stop)
    check_grads(f, start, stop)
    g = lambda a, b: np.linspace(a, b, num, endpoint=endpoint, retstep=True)  # noqa: E731
    y, step = value(g, start, stop)
    wy, wstep = g(start, stop)
    np.testing.assert_allclose(y, wy, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(step, wstep, rtol=1e-12)
    if num > 1:
        check_grads(lambda a, b: np.linspace(a, b, num, endpoint=endpoint, retstep=True)[1],
                    start, stop)


def test_linspace_misc():
    a = np.float32(1.0)
    assert_value(lambda x: np.linspace(x, 5, 4), a)             # float32 in, float32 out
    assert grad_dtypes(lambda x: np.linspace(x, 5, 4), a) == [np.float32]
    assert_value(lambda x: np.linspace(0, x, 5), np.float64(3.0))
    assert_value(lambda x: np.linspace(x, 10.0, 5, dtype=int), np.float64(0.5))
    assert_value(lambda x: np.linspace(x, x, 4), np.float64(2.0))   # step 0
    check_grads(lambda x: np.linspace(x, x, 4), np.float64(2.0))
    check_grads(lambda x: np.linspace(x, 2 * x, 5, axis=1), randn(2, 3))
    check_replay(lambda x: np.sum(np.linspace(x[0], x[1], 7) ** 2), (randn(2),),
                 (randn(2, seed=3),))
    with pytest.raises(ValueError, match="non-negative"):
        value(lambda x: np.linspace(x, 1.0, -1), np.float64(0.0))
    # the end point is exactly ``stop`` (written, as NumPy does)
    y = value(lambda x: np.linspace(0.1, x, 7), np.float64(0.7))
    assert y[-1] == 0.7
    g = td.grad(lambda b: np.linspace(0.0, b, 3)[-1])(np.float64(2.0))
    assert g == 1.0


# ================================================================ polyval
@given(st.data())
def test_polyval(data):
    p = data.draw(arrays((data.draw(st.integers(0, 5)),)))
    x = data.draw(arrays(data.draw(shapes(0, 2, max_side=3))))
    assert_value(np.polyval, p, x)
    check_grads(np.polyval, p, x)


def test_polyval_misc():
    p, x = randn(4), randn(3)
    assert_value(lambda c: np.polyval(c, 2.0), p)
    assert_value(lambda c: np.polyval(c, np.arange(3)), p)
    assert_value(lambda t: np.polyval([1.0, 2.0, 3.0], t), x)
    assert grad_dtypes(np.polyval, p.astype(np.float32), x.astype(np.float32)) == \
        [np.float32, np.float32]
    check_replay(lambda c, t: np.sum(np.polyval(c, t)), (p, x), (p * 2, x - 1),
                 argnums=(0, 1))


# ================================================================ convolve
@given(st.data())
def test_convolve(data):
    a = data.draw(arrays((data.draw(st.integers(1, 6)),)))
    v = data.draw(arrays((data.draw(st.integers(1, 6)),)))
    mode = data.draw(st.sampled_from(["full", "same", "valid"]))
    f = lambda x, y: np.convolve(x, y, mode)  # noqa: E731
    assert_value(f, a, v)
    check_grads(f, a, v)


def test_convolve_misc():
    a, v = randn(7), randn(3, seed=1)
    assert_value(lambda x: np.convolve(x, [1.0, -1.0]), a)
    assert_value(lambda x: np.convolve([1, 2, 3, 4, 5, 6, 7, 8, 9], x, "same"), v)
    assert_value(lambda x: np.convolve(x, np.float64(2.0)), a)
    assert grad_dtypes(np.convolve, a.astype(np.float32), v.astype(np.float32)) == \
        [np.float32, np.float32]
    check_replay(lambda x, y: np.sum(np.convolve(x, y) ** 2), (a, v), (a + 1, v * 2),
                 argnums=(0, 1))
    with pytest.raises(ValueError, match="cannot be empty"):
        value(np.convolve, a, np.zeros(0))
    with pytest.raises(ValueError, match="mode"):
        value(lambda x: np.convolve(x, v, "circular"), a)


@given(st.data())
def test_correlate(data):
    """NumPy centres ``same`` by which input is the longer one."""
    a = data.draw(arrays((data.draw(st.integers(1, 7)),)))
    v = data.draw(arrays((data.draw(st.integers(1, 7)),)))
    mode = data.draw(st.sampled_from(["full", "same", "valid", 0, 1]))
    f = lambda x, y: np.correlate(x, y, mode)  # noqa: E731
    assert_value(f, a, v)
    check_grads(f, a, v)


def test_correlate_default_and_errors():
    a, v = randn(6), randn(2, seed=1)
    assert_value(lambda x, y: np.correlate(x, y), a, v)                # mode 'valid'
    assert_value(lambda x: np.correlate([1, 2, 3], x, "same"), randn(4))
    with pytest.raises(ValueError, match="cannot be empty"):
        value(np.correlate, a, np.zeros(0))
    with pytest.raises(td.UnsupportedOperation, match="complex"):
        value(lambda x: np.correlate(x, v + 1j), a)


def test_ediff1d():
    x = np.array([[1.0, 4.0], [-2.0, 0.5]])
    assert_value(np.ediff1d, x, rtol=0, atol=0)
    assert_value(lambda t: np.ediff1d(t, to_begin=[7, 8], to_end=-1.0), x, rtol=0, atol=0)
    assert_value(lambda t: np.ediff1d(t, to_begin=t[0, 0] * 2), x, rtol=0, atol=0)
    assert_value(lambda t: np.ediff1d(t.astype(np.float32), to_end=np.inf), x)
    assert_value(lambda t: np.ediff1d(t[:0]), x)
    check_grads(lambda t: np.ediff1d(t, to_begin=t[1, 1], to_end=3.0), x)
    with pytest.raises(TypeError, match="same_kind"):
        value(lambda t: np.ediff1d(np.array([1, 2]), to_begin=t[0]), x)


# ================================================================ interp
XP = np.array([-1.0, 0.0, 0.5, 2.0, 3.0])


@given(st.data())
def test_interp(data):
    x = data.draw(arrays(data.draw(shapes(0, 2, max_side=4)), lo=-2.0, hi=4.0))
    fp = data.draw(arrays((5,)))
    kw = {}
    if data.draw(st.booleans()):
        kw["left"] = data.draw(st.floats(-3, 3))
    if data.draw(st.booleans()):
        kw["right"] = data.draw(st.floats(-3, 3))
    f = lambda t, y: np.interp(t, XP, y, **kw)  # noqa: E731
    assert_value(f, x, fp)
    check_grads(f, x, fp)
    check_grads(lambda t, xp, y: np.interp(t, xp, y, **kw), x, XP, fp)


def test_interp_points_and_edges():
    fp = np.array([1.0, -2.0, 0.5, 3.0, 4.0])
    x = np.array([-1.5, -1.0, 0.0, 0.25, 0.5, 2.0, 2.9, 3.0, 3.5, np.nan])
    assert_value(lambda t, y: np.interp(t, XP, y), x, fp, rtol=0, atol=0)   # bit-identical
    # derivatives: the slope inside, one-sided (to the right) at sample points, 0 outside
    g = td.grad(lambda t: np.sum(np.interp(t, XP, fp)))(x[:-1])
    np.testing.assert_allclose(g, [0, -3, 5, 5, 1 / 0.6, 1, 1, 0, 0])
    assert_value(lambda t: np.interp(t, [1.0], [5.0]), x, rtol=0, atol=0)   # one sample
    assert_value(lambda t: np.interp(t, [1.0], [5.0], left=0.0, right=9.0), x, rtol=0, atol=0)
    assert_value(lambda t: np.interp(t, XP, fp), np.float64(0.3))
    assert_value(lambda y: np.interp(0.3, XP, y), fp)
    assert_value(lambda t: np.interp(t, np.arange(5), np.arange(5) * 2), x)   # int data
    assert grad_dtypes(lambda t: np.interp(t, XP, fp), x[:3].astype(np.float32)) == \
        [np.float32]
    check_replay(lambda t, y: np.sum(np.interp(t, XP, y)), (x[:-1], fp), (x[:-1] * 0.5, fp + 1),
                 argnums=(0, 1))
    with pytest.raises(td.UnsupportedOperation, match="period"):
        value(lambda t: np.interp(t, XP, fp, period=2.0), x)
    with pytest.raises(ValueError, match="same length"):
        value(lambda t: np.interp(t, XP, fp[:3]), x)
    with pytest.raises(ValueError, match="empty"):
        value(lambda t: np.interp(t, [], []), x)


def test_interp_replays_without_rerecording_and_nests():
    fp = np.array([1.0, -2.0, 0.5, 3.0, 4.0])
    x = np.array([0.3, 1.0, 2.5])
    rec = td.record(lambda t: np.sum(np.interp(t, XP, fp) ** 2), x)
    v, g = rec.value_and_grad(x[::-1] * 1.1)       # other intervals: no guard fails
    assert rec.n_versions == 1
    v2, g2 = td.value_and_grad(lambda t: np.sum(np.interp(t, XP, fp) ** 2))(x[::-1] * 1.1)
    np.testing.assert_allclose(g, g2)
    check_grads(lambda t: td.grad(lambda u: np.sum(np.interp(u, XP, fp) ** 2))(t), x)


def test_interp_tracked_left_right():
    x = np.array([-3.0, 0.2, 5.0])
    f = lambda t, lo, hi: np.interp(t, XP, np.arange(5.0), left=lo, right=hi)  # noqa: E731
    assert_value(f, x, np.float64(-7.0), np.float64(9.0))
    check_grads(f, x, np.float64(-7.0), np.float64(9.0))


def test_composites_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value(lambda x: np.cov(x) + np.corrcoef(x), randn(2, 4))


# ================================================================ median, quantile, percentile
QS = [0.3, 0.5, 1.0, 0.0, [0.1, 0.9], np.array([[0.25], [0.75]])]
AXES = [None, 0, -1, (0, 2), (2, 0)]


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_quantiles_match_numpy(axis, keepdims):
    # NumPy's own algorithm ('linear': the virtual index's neighbours in the
    # sorted values, its lerp): bit for bit, dtypes and shapes included
    x = randn(4, 5, 3)
    for q in QS:
        assert_value(lambda a, q=q: np.quantile(a, q, axis=axis, keepdims=keepdims), x,
                     rtol=0, atol=0)
    assert_value(lambda a: np.percentile(a, [20, 50], axis=axis, keepdims=keepdims), x,
                 rtol=0, atol=0)
    assert_value(lambda a: np.median(a, axis=axis, keepdims=keepdims), x, rtol=0, atol=0)


def test_quantiles_dtypes_nan_and_gradients():
    x = randn(4, 5, 3)
    x32 = x.astype(np.float32)
    for f in (lambda a: np.quantile(a, 0.3), lambda a: np.quantile(a, [0.3]),
              lambda a: np.median(a, axis=1), lambda a: np.percentile(a, 40.0, axis=0)):
        assert_value(f, x32, rtol=0, atol=0)
    xn = x.copy()
    xn[1, 2, 0] = np.nan
    for f in (lambda a: np.quantile(a, [0.3, 0.6], axis=1), lambda a: np.median(a, axis=(0, 1))):
        np.testing.assert_array_equal(value(f, xn), f(xn))
    check_grads(lambda a: np.quantile(a, [0.3, 0.77], axis=1), x)
    check_grads(lambda a: np.median(a, axis=0), x)
    check_grads(lambda a: np.median(a), x[:, :, :2])          # an even count: two values
    check_grads(lambda a: np.percentile(a, 35), x)
    check_replay(lambda a: np.median(a), (x,), (x[::-1] * 2,))


def test_quantiles_refuse_what_they_do_not_compute():
    x = randn(5)
    with pytest.raises(td.UnsupportedOperation, match="method='linear'"):
        value(lambda a: np.quantile(a, 0.5, method="nearest"), x)
    with pytest.raises(td.UnsupportedOperation, match="tracked q"):
        td.grad(lambda q: np.sum(np.quantile(x, q)))(0.5)
    with pytest.raises(ValueError, match="range"):
        value(lambda a: np.percentile(a, 120), x)
    with pytest.raises(td.UnsupportedOperation, match="weights"):
        value(lambda a: np.quantile(a, 0.5, weights=np.ones(5)), x)



# ================================================================ sinc, meshgrid
def test_sinc_and_meshgrid():
    x = np.array([-1.5, -0.2, 0.0, 0.3, 2.0, np.nan])
    assert_value(np.sinc, x, rtol=0, atol=0)
    assert_value(np.sinc, x.astype(np.float32), rtol=0, atol=0)
    check_grads(np.sinc, x[:5])
    np.testing.assert_allclose(td.grad(lambda t: np.sinc(t))(0.0), 0.0, atol=1e-7)
    a, b, c = randn(3), randn(2, seed=1), randn(4, seed=2)
    for kw in ({}, {"indexing": "ij"}, {"sparse": True}, {"copy": False}):
        for k in range(3):
            assert_value(lambda x, y, z, kw=kw, k=k: np.meshgrid(x, y, z, **kw)[k], a, b, c,
                         rtol=0, atol=0)
        check_grads(lambda x, y, kw=kw: np.meshgrid(x, y, **kw)[0] * np.meshgrid(x, y, **kw)[1],
                    a, b)
    assert isinstance(value(lambda x: np.meshgrid(x, b), a), tuple)
    with pytest.raises(ValueError, match="indexing"):
        value(lambda x: np.meshgrid(x, indexing="yx"), a)


def test_review_correlate_bool_and_0d():
    """Found in review: bool inputs gave int64 (NumPy: bool), a 0-d input
    was taken where NumPy's correlate refuses it."""
    b = np.array([True, False, True])
    assert_value(lambda x: np.correlate(x, np.array([True, True]), "full"), b,
                 rtol=0, atol=0)
    with pytest.raises(ValueError, match="too small depth"):
        value(lambda x: np.correlate(x, np.float64(2.0)), randn(3))


# ================================================================ gradient, apply_along_axis
_F = np.sin(np.arange(20.0).reshape(5, 4) * 0.7)
_XS = np.cumsum(np.linspace(0.5, 1.5, 5))
_YS = np.array([0.0, 0.3, 1.0, 1.2])


@pytest.mark.parametrize("args,kw", [
    ((), {}), ((), {"axis": 0}), ((0.5,), {}), ((_XS, _YS), {}), ((_XS,), {"axis": 0}),
    ((_XS,), {"axis": 0, "edge_order": 2}), ((2.0, _YS), {"edge_order": 2}),
    ((np.arange(5),), {"axis": 0}), ((_XS, 0.25), {"axis": (0, -1)})])
def test_gradient_is_numpys(args, kw):
    """Bit for bit: NumPy's formulas, evaluated in its order."""
    f = lambda t: np.gradient(t, *args, **kw)  # noqa: E731
    assert_value(f, _F, rtol=0, atol=0)
    check_grads(f, _F)
    if args and np.ndim(args[0]):            # float32 data, 1-d coordinates
        assert_value(lambda t: np.gradient(t[:, 0].astype(np.float32), args[0], axis=0),
                     _F, rtol=0, atol=0)


def test_gradient_spacing_inputs_and_errors():
    check_grads(lambda x: np.gradient(_F, x, axis=0, edge_order=2), _XS)
    assert_value(lambda t: np.gradient(np.round(t * 3).astype(int), axis=1), _F, rtol=0, atol=0)
    check_replay(lambda t: np.sum(np.gradient(t, _XS, axis=0) ** 2), (_F,), (_F * 2 + 1,))
    for bad, err in [((1, 2, 3), TypeError), ((np.ones((2, 2)), 1.0), ValueError),
                     ((np.ones(3), 1.0), ValueError)]:
        with pytest.raises(err):
            value(lambda t: np.gradient(t, *bad), _F)
    with pytest.raises(ValueError, match="too small"):
        value(lambda t: np.gradient(t[:1]), _F)
    with pytest.raises(ValueError, match="edge_order"):
        value(lambda t: np.gradient(t, edge_order=3), _F)


@pytest.mark.parametrize("fn,axis,extra", [
    (np.sum, 1, ()), (lambda v: v[::-1] * 2, 1, ()), (lambda v: np.outer(v, v), 0, ()),
    (lambda v, k: np.sort(v)[:k], -1, (2,)), (np.argmax, 1, ()), (lambda v: np.max(v) > 0, 0, ())])
def test_apply_along_axis(fn, axis, extra):
    a = np.arange(24.0).reshape(2, 3, 4) * 0.3 - 1.1
    f = lambda t: np.apply_along_axis(fn, axis, t, *extra)  # noqa: E731
    assert_value(f, a, rtol=0, atol=0)
    if np.asarray(f(a)).dtype.kind == "f":
        check_grads(f, a)
    with pytest.raises(ValueError, match="iteration dimensions are 0"):
        value(lambda t: np.apply_along_axis(np.sum, 0, t[:, :0]), a)


def test_review_gradient_at_evenly_spaced_coordinates():
    """Found in review: for equal steps NumPy's shortcut takes the first
    step only, so the derivative in the other coordinates was 0 (the
    function is smooth there). Differentiated coordinates take the uneven
    formulas: values to rounding, derivatives right."""
    f1 = np.array([0.3, -1.2, 0.8, 2.0, 0.1, -0.5])
    x = np.linspace(0.0, 2.5, 6)
    for order in (1, 2):
        check_grads(lambda c: np.gradient(f1, c, edge_order=order), x)
        np.testing.assert_allclose(value(lambda c: np.gradient(f1, c, edge_order=order), x),
                                   np.gradient(f1, x, edge_order=order), rtol=1e-13, atol=1e-13)
    # a constant spacing next to tracked coordinates of another axis
    got = value(lambda y: np.gradient(np.ones((3, 4)), 0.5, y), np.array([0.0, 1.0, 3.0, 4.0]))
    want = np.gradient(np.ones((3, 4)), 0.5, np.array([0.0, 1.0, 3.0, 4.0]))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    with pytest.raises(ValueError, match="repeated axis"):
        value(lambda t: np.gradient(t, axis=(0, 0)), np.ones((3, 3)))
    with pytest.raises(TypeError, match="boolean subtract"):
        value(lambda t: np.gradient(t > 0), np.ones(3))
    assert_value(lambda t: np.gradient(t, axis=[0, 1]), np.ones((3, 3)), rtol=0, atol=0)


@given(st.data())
def test_nanmedian_is_numpys(data):
    """Bit for bit, on NumPy's small (masked) and large (per-slice) paths, in
    float32 and float64, with all-NaN slices."""
    shape = data.draw(st.sampled_from([(7,), (3, 5), (2, 3, 4), (650,)]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    a = rng.normal(size=shape) * 10.0 ** data.draw(st.integers(-3, 3))
    a[rng.uniform(size=shape) < data.draw(st.floats(0, 1))] = np.nan
    a = a.astype(data.draw(st.sampled_from([np.float64, np.float32])))
    axis = data.draw(st.sampled_from([None, 0, -1] + ([(0, 2)] if a.ndim == 3 else [])))
    keepdims = data.draw(st.booleans())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # all-NaN slices
        assert_value(lambda t: np.nanmedian(t, axis=axis, keepdims=keepdims), a,
                     rtol=0, atol=0)


def test_nanmedian_derivative_replay_and_warning():
    x = np.random.default_rng(3).normal(size=(4, 6))
    x[0, :3] = np.nan
    x[1, 2] = np.nan
    check_grads(lambda t: np.nanmedian(t, axis=1), x)
    check_grads(lambda t: np.nanmedian(t, axis=0), x)
    y = x.copy()
    y[2, :4] = np.nan                       # other NaN counts: indices on the tape
    check_replay(lambda t: np.sum(np.nanmedian(t, axis=1)), (x,), (y,))
    with pytest.warns(RuntimeWarning, match="All-NaN slice"):
        r = value(lambda t: np.nanmedian(t, axis=0), np.where(np.arange(6) == 2, np.nan, x))
    assert np.isnan(r[2])
    assert_value(lambda t: np.nanmedian(np.round(t[2:]).astype(int), axis=0), x)   # (no NaN)


@pytest.mark.parametrize("seed", range(4))
def test_nanquantile_nanpercentile_are_numpys(seed):
    """Bit for bit, dtypes included: per-slice counts of non-NaN values,
    weak and array q, integer q (taken without interpolation: inf stays
    inf), all-NaN slices (NaN in a's dtype, which becomes the result's when
    it is the first slice, as NumPy's apply_along_axis makes it)."""
    rng = np.random.default_rng(seed)
    for t in range(60):
        shape = [(7,), (3, 5), (2, 3, 4), (3, 8)][t % 4]
        a = rng.normal(size=shape) * 10.0 ** rng.integers(-3, 4)
        a[rng.uniform(size=shape) < rng.uniform(0, 1)] = np.nan
        if t % 5 == 0:
            a[..., 1] = np.inf
        if t % 3 == 0:
            a = a.astype(np.float32)
        if t % 7 == 0:
            a[..., :1] = np.nan
        axis = [None, 0, -1, (0, 1) if len(shape) > 2 else None][t % 4]
        q = [0.3, 0.5, 1.0, 0.0, np.array([0.1, 0.9]), np.float64(0.25), [0.5, 0.75], 1,
             [0, 1]][t % 9]
        kw = {"axis": axis, "keepdims": bool(t % 2)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)     # all-NaN slices
            assert_value(lambda x: np.nanquantile(x, q, **kw), a, rtol=0, atol=0)
            assert_value(lambda x: np.nanpercentile(x, np.multiply(q, 100), **kw), a,
                         rtol=0, atol=0)


def test_nanquantile_derivative_replay_and_integer_q_of_quantile():
    x = np.random.default_rng(7).normal(size=(4, 6))
    x[0, :3] = np.nan
    x[1, 2] = np.nan
    check_grads(lambda t: np.nanquantile(t, [0.3, 0.8], axis=1), x)
    check_grads(lambda t: np.nanpercentile(t, 40, axis=0), x)
    y = x.copy()
    y[2, :4] = np.nan
    check_replay(lambda t: np.sum(np.nanquantile(t, 0.7, axis=1)), (x,), (y,))
    # (found on the way) np.quantile with an integer q takes the element: no inf - inf
    assert_value(lambda t: np.quantile(t, [0, 1]), np.array([1.0, np.inf, 3.0]), rtol=0, atol=0)


# ================================================================ logspace, geomspace, angles
_X3 = np.array([0.5, 2.0, 1.5])


@pytest.mark.parametrize("f", [
    lambda t: np.logspace(t[0], t[1], 7), lambda t: np.logspace(t[:2], t[1:], 5, base=2.0, axis=1),
    lambda t: np.logspace(t[0], t[1], 4, base=np.array([2.0, 3.0])),
    lambda t: np.logspace(t[0], t[1], 4, endpoint=False, dtype=np.float32),
    lambda t: np.geomspace(t[0], t[1], 6), lambda t: np.geomspace(-t[1], -t[0], 5),
    lambda t: np.geomspace(t[:2], t[1:], 4, axis=1), lambda t: np.geomspace(t[0], 10.0, 5, False),
    lambda t: np.geomspace(1.0, t[1], 1),
    lambda t: np.geomspace(t[0].astype(np.float32), t[1], 3, dtype=np.float32),
    lambda t: np.angle(t - 1), lambda t: np.angle(t, deg=True), lambda t: np.angle(t.astype(np.float32)),
    lambda t: np.unwrap(np.array([0.0, 3.0, 6.5, 1.0]) * t[1]),
    lambda t: np.unwrap(np.outer(t, [1.0, 4.0, 9.0]), axis=0),
    lambda t: np.unwrap(np.outer(t, [1.0, 4.0, 9.0]), discont=4.0, period=6.0),
    lambda t: np.apply_over_axes(np.sum, np.outer(t, t), [0, 1]),
    lambda t: np.apply_over_axes(lambda v, a: np.max(v, axis=a, keepdims=True), np.outer(t, t), -1),
], ids=lambda f: "")
def test_spaced_values_angles_and_axes_are_numpys(f):
    """NumPy's own algorithms on tracked values: equal to NumPy bit for bit,
    derivatives checked where the result is float64."""
    assert_same(f, _X3)
    if np.asarray(f(_X3)).dtype == np.float64:
        check_grads(f, _X3)


def test_geomspace_and_unwrap_errors():
    with pytest.raises(ValueError, match="cannot include zero"):
        value(lambda t: np.geomspace(t[0] * 0, t[1]), _X3)
    with pytest.raises(ValueError, match="correct shape"):
        value(lambda t: np.apply_over_axes(lambda v, a: np.sum(v), np.outer(t, t), 0), _X3)
