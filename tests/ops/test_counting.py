"""Binning and counting (tapediff/np_api/counting.py): np.digitize, np.bincount
and np.histogram against NumPy (values and dtypes exactly), their derivatives
against finite differences, and replays that must not re-record."""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tapediff as td
from tapediff.testing import check_grads

from .exact import assert_same, value


_DATA = st.lists(st.sampled_from([-2.0, -1.0, -0.25, 0.0, 0.1, 0.5, 1.0, 1.5, 3.0]),
                 min_size=1, max_size=12)


@given(st.data())
def test_histogram_matches_numpy(data):
    a = np.array(data.draw(_DATA)) * data.draw(st.sampled_from([1.0, 1.3]))
    a = a.astype(data.draw(st.sampled_from([np.float64, np.float32])))
    kw = {}
    kind = data.draw(st.sampled_from(["int", "range", "edges"]))
    if kind == "int":
        kw["bins"] = data.draw(st.integers(1, 6))
    elif kind == "range":
        kw["bins"] = data.draw(st.integers(1, 6))
        kw["range"] = data.draw(st.sampled_from([(-1.0, 1.0), (0, 2), (-0.25, 0.1)]))
    else:
        kw["bins"] = np.array(data.draw(st.sampled_from(
            [[-1.0, 0.0, 0.5, 2.0], [0.0, 0.0, 1.0], [-3.0, 3.0]])))
    if data.draw(st.booleans()):
        kw["weights"] = np.linspace(0.5, 2.0, a.size).astype(
            data.draw(st.sampled_from([np.float64, np.float32, np.int64])))
    kw["density"] = data.draw(st.booleans())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # density of an empty histogram
        assert_same(lambda x: np.histogram(x, **kw), a)
        if "weights" in kw and kw["weights"].dtype.kind == "f":
            w = kw.pop("weights")
            assert_same(lambda x, y: np.histogram(x, weights=y, **kw), a, w)


def test_histogram_inputs_numpy_takes():
    ints = np.array([3, -1, 4, 1, 5, 9, 2, 6])
    assert_same(lambda x: np.histogram(x, 4), ints)                     # integer data
    assert_same(lambda x: np.histogram(x, 3, range=(0, 4)), ints)
    assert_same(lambda w: np.histogram(ints, 3, weights=w), np.arange(8.0))
    assert_same(lambda x: np.histogram(x), np.full(5, 2.0))            # equal values
    assert_same(lambda x: np.histogram(x, 3), np.zeros(0))              # empty
    with pytest.warns(RuntimeWarning, match="Converting input from bool"):
        assert_same(lambda w: np.histogram(np.array([True, False, True]), 2, weights=w),
                    np.ones(3))


def test_histogram_errors():
    a = np.array([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="'best' is not a valid estimator"):
        value(lambda x: np.histogram(x, bins="best"), a)
    with pytest.raises(TypeError, match="not supported for weighted data"):
        value(lambda x: np.histogram(x, bins="auto", weights=x), a)
    with pytest.raises(ValueError, match="must be positive"):
        value(lambda x: np.histogram(x, bins=0), a)
    with pytest.raises(ValueError, match="increase monotonically"):
        value(lambda x: np.histogram(x, bins=[1.0, 0.0]), a)
    with pytest.raises(ValueError, match="max must be larger than min"):
        value(lambda x: np.histogram(x, range=(1.0, 0.0)), a)
    with pytest.raises(ValueError, match="autodetected range of"):
        value(lambda x: np.histogram(x), np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match="same shape"):
        value(lambda x: np.histogram(x, weights=np.ones(2)), a)


def test_histogram_derivatives():
    """Weighted counts are linear in the weights; edges from the data move
    with its min and max; a density divides by the bin widths."""
    rng = np.random.default_rng(3)
    a, w = rng.normal(size=40), rng.uniform(0.5, 1.5, size=40)

    def f(x, y):
        n, e = np.histogram(x, 5, weights=y)
        d, e2 = np.histogram(x, 4, density=True)
        m, _ = np.histogram(x, np.array([-1.0, 0.0, 0.5, 2.0]), weights=y)
        return np.sum(n * e[1:]) + np.sum(d * np.arange(4.0)) + np.sum(e2) + np.sum(m ** 2)
    check_grads(f, a, w)
    g = td.grad(lambda x: np.sum(np.histogram(x, 5)[1]))(a)
    assert np.count_nonzero(g) == 2            # only the minimum and the maximum


def test_histogram_replays_new_data_without_rerecording():
    rng = np.random.default_rng(4)

    def f(x, y):
        n, e = np.histogram(x, 6, weights=y)
        c, _ = np.histogram(x, 4, range=(-1.0, 1.0))
        m, _ = np.histogram(y, np.array([0.0, 0.3, 0.6, 2.0]), weights=x)
        return np.sum(n * e[:-1]) + np.sum(c * x[:4]) + np.sum(m * x[:3])
    rec = td.record(f, rng.normal(size=30), rng.uniform(size=30), argnums=(0, 1))
    for k in range(4):
        x, y = rng.normal(size=30) * (k + 1), rng.uniform(size=30)
        v, (gx, gy) = rec.value_and_grad(x, y)
        assert v == f(x, y)
        w, (hx, hy) = td.value_and_grad(f, argnums=(0, 1))(x, y)
        np.testing.assert_array_equal(gx, hx)
        np.testing.assert_array_equal(gy, hy)
    assert rec.n_versions == 1


# ---------------------------------------------------------------- digitize
@pytest.mark.parametrize("bins", [[-1.0, 0.0, 0.0, 2.0], [2.0, 0.5, 0.5, -1.0], [1.0, 1.0],
                                  [], [1.0, np.nan], [2.0, 1.0, np.nan, 0.0], [3, 1, 0],
                                  [np.nan, 1.0, 2.0], [0.0, 1.0, 0.5]])
@pytest.mark.parametrize("right", [False, True])
def test_digitize_matches_numpy(bins, right):
    """NumPy's direction test: the first value unlike ``bins[0]`` decides, a
    NaN compares false both ways (so ``[nan, 1, 2]`` is refused)."""
    x = np.array([-2.0, -1.0, 0.0, 0.3, 0.5, 1.0, 2.0, 5.0, np.nan])
    b = np.array(bins, dtype=float if any(isinstance(v, float) for v in bins) or not bins
                 else int)
    try:
        np.digitize(x, b)
    except ValueError:
        for f, args in [(lambda t: np.digitize(t, b), (x,)), (np.digitize, (x, b))]:
            with pytest.raises(ValueError, match="monotonically increasing or decreasing"):
                value(f, *args)
        return
    assert_same(lambda t: np.digitize(t, b, right=right), x)
    assert_same(lambda t, u: np.digitize(t, u, right=right), x, b)    # tracked bins
    assert_same(lambda t: np.digitize(0.5, t, right=right), b)


def test_digitize_guards_the_direction_only():
    def f(x, b):
        return np.sum(np.digitize(x, b) * x)
    rec = td.record(f, np.array([0.1, 0.7]), np.array([0.0, 0.5, 1.0]), argnums=0)
    for b in (np.array([-1.0, 0.2, 0.3]), np.array([1.0, 0.5, 0.0])):   # up, then down
        x = np.array([0.25, 0.6])
        v, g = rec.value_and_grad(x, b)
        assert v == f(x, b)
        np.testing.assert_array_equal(g, np.digitize(x, b))
    assert rec.n_versions == 2
    with pytest.raises(ValueError, match="monotonically increasing or decreasing"):
        rec.value_and_grad(np.array([0.1, 0.2]), np.array([0.0, 1.0, 0.5]))
    with pytest.raises(TypeError, match="complex"):
        value(lambda t: np.digitize(np.array([1j]), t), np.array([0.0, 1.0]))


# ---------------------------------------------------------------- bincount
def test_bincount_matches_numpy_and_differentiates_weights():
    idx = np.array([0, 3, 3, 1, 7, 3])
    w = np.array([0.5, 1.0, -2.0, 0.25, 3.0, 1e-17])
    assert_same(lambda t: np.bincount(idx, weights=t), w)
    assert_same(lambda t: np.bincount(idx, weights=t, minlength=10), w.astype(np.float32))
    assert_same(lambda i: np.bincount(i), idx)
    assert_same(lambda i: np.bincount(i, minlength=3), np.zeros(0, np.int64))
    assert_same(lambda i: np.bincount(i), np.array([2, 0], np.uint8))
    check_grads(lambda t: np.bincount(idx, weights=t) ** 2, w)


def test_bincount_guards_its_length():
    def f(w, i):
        return np.sum(np.bincount(i, weights=w) * np.arange(1.0, 9.0)[:np.max(i) + 1])
    rec = td.record(f, np.ones(4), np.array([0, 2, 2, 1]))
    for i in (np.array([1, 1, 0, 2]), np.array([7, 0, 0, 3])):        # same max, then another
        w = np.array([1.0, 2.0, 3.0, 4.0])
        v, g = rec.value_and_grad(w, i)
        assert v == f(w, i)
        np.testing.assert_array_equal(g, np.arange(1.0, 9.0)[i])
    assert rec.n_versions == 2


def test_bincount_errors():
    with pytest.raises(ValueError, match="no negative elements"):
        value(lambda i: np.bincount(i), np.array([0, -1]))
    with pytest.raises(TypeError, match=r"astype\(np.intp\)"):
        value(lambda w: np.bincount(np.array([0.0, 1.0]), weights=w), np.ones(2))
    with pytest.raises(ValueError, match="same length"):
        value(lambda w: np.bincount(np.array([0, 1]), weights=w), np.ones(3))
    with pytest.raises(ValueError, match="minlength"):
        value(lambda i: np.bincount(i, minlength=-1), np.array([0]))
    with pytest.raises(ValueError, match="too deep"):
        value(lambda i: np.bincount(i), np.zeros((2, 2), int))


# ---------------------------------------------------------------- unique
@given(st.data())
def test_unique_matches_numpy(data):
    vals = st.sampled_from([np.nan, -1.0, 0.5, 0.5, 2.0, 3.0, np.inf])
    a = np.array(data.draw(st.lists(vals, max_size=8)))
    if data.draw(st.booleans()) and a.size % 2 == 0 and a.size:
        a = a.reshape(2, -1)
    flags = [data.draw(st.booleans()) for _ in range(3)]
    equal_nan = data.draw(st.booleans())
    assert_same(lambda x: np.unique(x, *flags, equal_nan=equal_nan), a)
    assert_same(lambda x: tuple(np.unique_all(x)), a)
    assert_same(lambda x: tuple(np.unique_counts(x)), a)
    assert_same(lambda x: tuple(np.unique_inverse(x)), a)
    assert_same(np.unique_values, np.sort(a.ravel()))   # (NumPy's order is unspecified)


def test_unique_derivative_and_replay():
    x = np.array([3.0, 1.0, 3.0, 2.0, 1.0])
    g = td.grad(lambda a: np.sum(np.unique(a) * np.array([1.0, 2.0, 3.0])))(x)
    np.testing.assert_array_equal(g, [3.0, 1.0, 0.0, 2.0, 0.0])    # the first of equal ones
    check_grads(lambda a: np.unique(a) ** 2, np.array([3.0, 1.0, 2.5, 2.0, 0.5]))
    f = lambda a: np.sum(np.unique(a, return_counts=True)[1] * np.unique(a))  # noqa: E731
    rec = td.record(f, x)
    y = np.array([5.0, 4.0, 5.0, 6.0, 4.0])             # three values again: no re-recording
    assert rec(y) == f(y)
    assert rec.n_versions == 1
    assert rec(np.arange(5.0)) == f(np.arange(5.0))
    assert rec.n_versions == 2


_ROWS = np.array([[1.0, np.nan], [1.0, np.nan], [0.0, 2.0], [-0.0, 2.0], [0.0, 2.0], [3.0, -1.0],
                  [0.0, 1.0], [3.0, -2.0]])         # ties on the first column, not the second


@pytest.mark.parametrize("x", [_ROWS, _ROWS.T, np.arange(24.0).reshape(2, 3, 4) % 3,
                               np.zeros((3, 0)), np.zeros((0, 3)),
                               np.array([[2, 1], [0, 5], [2, 1]])],
                         ids=["rows-nan-zero", "columns", "3d", "no-columns", "no-rows", "int"])
@pytest.mark.parametrize("flags", [(False, False, False), (True, True, True),
                                   (False, True, False), (True, False, True)])
def test_unique_along_an_axis_is_numpys(x, flags):
    """Unique slices (rows, columns, sub-arrays): NumPy's values, first
    indices, inverse and counts; slices holding a NaN are all distinct and
    -0.0 equals 0.0, as in NumPy's record comparison."""
    for axis in range(-x.ndim, x.ndim):
        assert_same(lambda t: np.unique(t, *flags, axis=axis), x)


def test_unique_rows_derivative_replay_and_errors():
    x = np.array([[3.0, 1.0], [0.5, 2.0], [3.0, 1.0], [0.5, 2.5]])
    check_grads(lambda a: np.unique(a, axis=0) ** 2,       # distinct first columns: no ties
                np.array([[3.0, 1.0], [0.5, 2.0], [3.1, 1.0], [0.7, 2.5]]))
    g = td.grad(lambda a: np.sum(np.unique(a, axis=0) * np.array([[1.0, 2.0]])))(x)
    np.testing.assert_array_equal(g, [[1, 2], [1, 2], [0, 0], [1, 2]])  # the first of equal ones
    f = lambda a: np.sum(np.unique(a, axis=0, return_counts=True)[1]  # noqa: E731
                         * np.unique(a, axis=0)[:, 0])
    rec = td.record(f, x)
    y = x[::-1] * 2.0                                       # three rows again: no re-recording
    assert rec(y) == f(y)
    assert rec.n_versions == 1
    z = np.arange(8.0).reshape(4, 2)
    assert rec(z) == f(z)
    assert rec.n_versions == 2
    with pytest.raises(np.exceptions.AxisError):
        value(lambda a: np.unique(a, axis=2), x)


def test_review_bincount_of_bools_and_empty_input():
    """Found in review: a bool ``x`` was read as a mask by ``np.add.at``, and
    an empty ``x`` with weights gave float64 where NumPy gives intp."""
    w = np.array([10.0, 20.0, 5.0])
    for b in (np.array([True, True, False]), np.array([True, False, True])):
        assert_same(lambda t: np.bincount(b, t), w)
        assert_same(lambda i: np.bincount(i, minlength=3), b)
    assert_same(lambda t: np.bincount(np.zeros(0, np.int64), t[:0]), w)


# ---------------------------------------------------------------- bin edges, sets
def test_histogram_bin_edges():
    a = np.array([0.5, -1.0, 2.0, 3.5, 0.0])
    for kw in ({}, {"bins": 3}, {"bins": 4, "range": (0.0, 2.0)}, {"bins": [0.0, 1.0, 5.0]}):
        assert_same(lambda t: np.histogram_bin_edges(t, **kw), a)
    check_grads(lambda t: np.histogram_bin_edges(t, 4), a)


_ESTIMATORS = ["auto", "fd", "doane", "rice", "scott", "sqrt", "sturges", "stone"]


@pytest.mark.parametrize("bins", _ESTIMATORS)
def test_histogram_bin_estimators_are_numpys(bins):
    """NumPy's own estimator runs on the tracked data: the same edges and
    counts as NumPy's, for float and integer data, a range that drops points,
    and equal values."""
    rng = np.random.default_rng(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # 'stone': "may be suboptimal"
        for data in (rng.normal(size=200), rng.integers(0, 50, size=100), np.ones(5),
                     rng.normal(size=300).astype(np.float32)):
            for rg in (None, (-1, 1.5)):
                assert_same(lambda t: np.histogram_bin_edges(t, bins, range=rg), data)
                assert_same(lambda t: np.histogram(t, bins, range=rg), data)
        x = rng.normal(size=40)
        check_grads(lambda t: np.histogram_bin_edges(t, bins) ** 2, x)
        check_grads(lambda t: np.histogram(t, bins, density=True)[0], x)


def test_histogram_estimated_count_is_a_guard():
    """The estimated number of bins fixes the result's shape: data giving the
    same count replays, data giving another re-records (never a wrong shape)."""
    rng = np.random.default_rng(6)
    f = lambda t: np.sum(np.histogram_bin_edges(t, "sturges") ** 2)  # noqa: E731
    x = rng.normal(size=64)
    rec = td.record(f, x)
    assert rec(x * 2.0 + 1.0) == f(x * 2.0 + 1.0)      # sturges: log2(64) + 1 bins again
    assert rec.n_versions == 1
    y = rng.normal(size=64)
    rec2 = td.record(lambda t: np.histogram(t, "fd")[1], y)
    for z in (y, y[::-1] * 1.0, np.concatenate([y[:60], [40.0, -40.0, 0.0, 0.0]])):
        np.testing.assert_array_equal(rec2(z), np.histogram_bin_edges(z, "fd"))
    assert rec2.n_versions == 2                         # the outliers change fd's count


_SET_A = np.array([3.0, 1.0, np.nan, 2.0, 1.0, -0.0, 7.0])
_SET_B = np.array([1.0, 0.0, np.nan, 5.0, 5.0, 7.0])


@pytest.mark.parametrize("f", [
    np.isin, lambda x, y: np.isin(x, y, invert=True), lambda x, y: np.isin(x.reshape(-1, 1), y),
    lambda x, y: np.isin(x, y[:0]), lambda x, y: np.isin(x, y, kind="sort"),
    np.union1d, np.intersect1d, lambda x, y: np.intersect1d(x, y, return_indices=True),
    np.setdiff1d, np.setxor1d,
    lambda x, y: np.intersect1d(x[[0, 1, 3]], y[[0, 1, 3]], assume_unique=True,
                                return_indices=True),
    lambda x, y: np.setdiff1d(x[[0, 1]], y[[0, 1]], assume_unique=True),
    lambda x, y: np.setxor1d(x[:0], y[:0])], ids=lambda f: "")
def test_sets_match_numpy(f):
    assert_same(f, _SET_A, _SET_B)
    assert_same(lambda x: f(x, _SET_B), _SET_A)                # one side tracked
    assert_same(lambda y: f(np.round(_SET_A[[0, 1, 3, 6]]).astype(int), y), _SET_B)


def test_set_values_carry_derivatives_and_isin_replays():
    a, b = np.array([3.0, 1.0, 2.0, 4.0]), np.array([2.0, 5.0, 3.0])
    check_grads(lambda x, y: np.union1d(x, y) ** 2, a, b + 0.5)     # (values kept apart)
    # a common value carries the derivative of its element of the first array
    g = td.grad(lambda x: np.sum(np.intersect1d(x, b) * np.array([10.0, 20.0])))(a)
    np.testing.assert_array_equal(g, [20.0, 0.0, 10.0, 0.0])
    rec = td.record(lambda x: np.sum(x * np.isin(x, b)), a)
    c = np.array([5.0, 5.0, 0.0, 3.0])
    assert rec(c) == np.sum(c * np.isin(c, b))
    assert rec.n_versions == 1
    with pytest.raises(ValueError, match="Invalid kind"):
        value(lambda x: np.isin(x, b, kind="hash"), a)
