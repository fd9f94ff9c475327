"""Tolerant comparisons, selection and value cleanup (tapediff/np_api/logic.py)
against NumPy (values and dtypes exactly) and finite differences."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tapediff as td
from tapediff.testing import check_grads, check_replay

from .exact import assert_same, value

_SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 1.0 + 1e-9, 1e-300, 3.5, -2.25]


@given(st.data())
def test_isclose_matches_numpy(data):
    pick = st.lists(st.sampled_from(_SPECIAL), min_size=1, max_size=6)
    a = np.array(data.draw(pick))
    b = np.resize(np.array(data.draw(pick)), a.shape)
    kw = {"equal_nan": data.draw(st.booleans())}
    if data.draw(st.booleans()):
        kw["rtol"], kw["atol"] = 1e-3, 0.5
    with np.errstate(invalid="ignore"):
        assert_same(lambda x, y: np.isclose(x, y, **kw), a, b)
        assert_same(lambda x: np.isclose(x, 1.0, **kw), a)
        assert_same(lambda x: np.isclose(x, np.int64(1), **kw), a)
        for f in (np.allclose, np.array_equal):
            kw2 = {} if f is np.array_equal else dict(kw)
            kw2["equal_nan"] = kw["equal_nan"]
            want = f(a, b, **kw2)
            seen = []
            td.vjp(lambda x, y: seen.append(f(x, y, **kw2)) or np.sum(x), a, b)
            assert seen == [want] and type(seen[0]) is bool


def test_comparisons_replay_as_guards():
    """``allclose`` inside a function is a Python bool: a branch, guarded."""
    def f(x, y):
        return np.sum(x ** 2) if np.allclose(x, y) else np.sum(x * y)
    x = np.array([1.0, 2.0])
    check_replay(f, (x, x + 1e-12), (x * 3, x * 3), argnums=0)
    rec = td.record(f, x, x + 1e-12)
    assert rec(x, x + 1.0) == f(x, x + 1.0)          # the other branch
    assert rec.n_versions == 2
    seen = []
    td.vjp(lambda a: seen.append((np.array_equiv(a[:2], a[2:4]), np.array_equiv(a, a[:2]),
                                  np.array_equal(a, a[:2]))) or np.sum(a),
           np.array([1.0, 2.0, 1.0, 2.0]))
    assert seen == [(True, False, False)]


@given(st.data())
def test_select_matches_numpy_and_differentiates(data):
    x = np.array(data.draw(st.lists(st.floats(-3, 3), min_size=1, max_size=6)))
    default = data.draw(st.sampled_from([0, 0.5, np.float32(2.0), "tracked"]))

    def f(a):
        d = a[::-1] * 2 if isinstance(default, str) else default
        return np.select([a > 0.5, a < -1, a == 0], [np.sin(a), a ** 2, 7], d)
    assert_same(f, x)
    check_grads(f, x + 1e-3)
    with pytest.raises(ValueError, match="same length"):
        value(lambda a: np.select([a > 0], [a, a]), x)
    with pytest.raises(ValueError, match="empty condition list"):
        value(lambda a: np.select([], []), x)
    with pytest.raises(TypeError, match="invalid entry 0 in condlist"):
        value(lambda a: np.select([a], [a]), x)


def test_piecewise_matches_numpy_and_guards_piece_sizes():
    x = np.array([-2.0, -0.5, 0.0, 0.3, 1.5, 4.0])

    def f(a):
        return np.piecewise(a, [a < 0, (a >= 0) & (a < 1)], [lambda t: t ** 2, np.sin, 3.0])
    assert_same(f, x)
    assert_same(lambda a: np.piecewise(a, a > 0, [np.exp, lambda t: -t]), x)
    assert_same(lambda a: np.piecewise(a, [a > 0.0], [lambda t, k: t * k], 3.0), x)
    assert_same(lambda a: np.piecewise(a.astype(int), [a > 0], [lambda t: t * 2]), x)
    check_grads(f, x + 1e-3)
    rec = td.record(lambda a: np.sum(f(a)), x)
    assert np.isclose(rec(x + 0.1), np.sum(f(x + 0.1)))        # same piece sizes
    assert rec(-x) == np.sum(f(-x))
    assert rec.n_versions == 2                                        # other sizes
    with pytest.raises(ValueError, match="either 1 or 2 functions"):
        value(lambda a: np.piecewise(a, [a > 0], [np.sin, np.cos, np.tan]), x)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nan_to_num_and_infinity_tests(dtype):
    x = np.array(_SPECIAL, dtype)
    for kw in ({}, {"nan": -1.0, "posinf": 5.0}, {"neginf": -7.0}):
        assert_same(lambda a: np.nan_to_num(a, **kw), x)
    assert_same(lambda a: np.nan_to_num(a, nan=a[5] * 3), x)          # a tracked fill
    assert_same(np.isposinf, x)
    assert_same(np.isneginf, x)
    assert_same(lambda a: np.nan_to_num(a[3]), x)                     # 0-d
    assert_same(lambda a: np.nan_to_num(np.round(a[5:]).astype(int)), x)
    with np.errstate(over="ignore", invalid="ignore"):      # (the largest float, times 10)
        g = td.grad(lambda a: np.sum(np.nan_to_num(a) * np.arange(11.0, dtype=dtype)))(x)
    np.testing.assert_array_equal(g, np.where(np.isfinite(x), np.arange(11.0), 0))

    def in_place(a):
        b = a * 1
        r = np.nan_to_num(b, copy=False)
        return b, r
    assert_same(in_place, x)


def test_real_imag_fix():
    x = np.array([-2.5, -0.5, -0.0, 0.0, 0.7, 3.0, np.nan, -np.inf])
    assert_same(np.real, x)
    assert_same(np.imag, x)
    assert_same(np.fix, x)
    assert_same(lambda a: np.fix(a * 3), x)
    assert_same(lambda a: np.fix(a[4]), x)
    assert_same(lambda a: np.fix(np.array([3, -4])) + 0 * a[0], x)

    def write_through_real(a):
        b = a * 1
        np.real(b)[0] = 5.0                 # NumPy's real of a real array is a view
        return b
    assert_same(write_through_real, x)
    check_grads(lambda a: np.real(a) * 2 + np.fix(a) + np.imag(a), x[:6] + 0.1)
    with pytest.raises(td.UnsupportedOperation, match="complex"):
        value(lambda a: np.real(a + 1j), x)


def test_review_piecewise_scalar_condition_and_shapes():
    """Found in review: a 0-d tracked condition (NumPy's bool scalar) was
    taken for a list of conditions; a condition of another shape than x was
    broadcast where NumPy refuses it."""
    assert_same(lambda a: np.piecewise(a, a > 0, [lambda v: v * 3, 7.0]), np.array(1.5))
    assert_same(lambda a: np.piecewise(a, a > 0, [lambda v: v * 3, 7.0]), np.array(-1.5))
    with pytest.raises(IndexError, match="shape"):
        value(lambda a: np.piecewise(a, [a[:1] > 0], [np.sin]), np.ones(3))


def test_review_fix_out_forms():
    x = np.array([1.5, -1.5])
    assert_same(lambda a: np.fix(a, out=(np.zeros(2),)), x)
    with pytest.raises(TypeError, match="cannot cast float64 to int64"):    # as NumPy
        value(lambda a: np.fix(a, out=np.zeros(2, np.int64)), x)


# ---------------------------------------------------------------- dtype and shape queries
@pytest.mark.parametrize("f", [
    lambda t: np.astype(t, np.float32), lambda t: np.astype(t, np.int64),
    lambda t: np.isreal(t), lambda t: np.iscomplex(t), lambda t: np.iscomplex(t[0]),
    lambda t: np.real_if_close(t), lambda t: np.tril_indices_from(np.outer(t, t), 1),
    lambda t: np.triu_indices_from(np.outer(t, t[:2])), lambda t: np.diag_indices_from(np.outer(t, t)),
], ids=lambda f: "")
def test_dtype_and_shape_queries_are_numpys(f):
    assert_same(f, np.array([0.5, 2.0, -1.5]))


def test_can_cast_and_common_type_read_the_dtype():
    seen = []

    def f(t):
        seen.append((np.can_cast(t, np.float32), np.can_cast(t, np.float32, "same_kind"),
                     np.common_type(t, np.float32(1.0)), np.can_cast(t.astype(np.float32), t)))
        return np.sum(t)
    x = np.array([1.0, 2.0])
    td.grad(f)(x)
    assert seen == [(False, True, np.float64, True)]
    with pytest.raises(ValueError, match="2-d"):
        value(lambda t: np.tril_indices_from(t), x)
    with pytest.raises(ValueError, match="equal length"):
        value(lambda t: np.diag_indices_from(np.outer(t, t[:1])), x)
