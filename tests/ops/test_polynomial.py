"""Polynomials (tapediff/np_api/polynomial.py) against NumPy and finite
differences."""
import numpy as np
import pytest

import tapediff as td
from tapediff.testing import check_grads, check_replay

from .exact import assert_same, value

X = np.linspace(-1.0, 1.0, 9)
Y = np.sin(2 * X) + 0.1 * np.cos(7 * X)
P = np.array([1.5, -2.0, 0.5, 3.0])


@pytest.mark.parametrize("f", [
    lambda a: np.polyval(P, a), lambda a: np.vander(a), lambda a: np.vander(a, 3, increasing=True),
    lambda a: np.vander(a, 0), lambda a: np.vander(np.arange(4), 2) * a[0],
    lambda a: np.polyder(a[:4], 2), lambda a: np.polyder(a[:4], 0), lambda a: np.polyint(a[:4]),
    lambda a: np.polyint(a[:4], 2, k=[1.0, 2.0]), lambda a: np.polyint(a[:3], 3, k=a[0]),
    lambda a: np.polyadd(a[:2], a[3:7]), lambda a: np.polysub(a[:5], a[:2]),
    lambda a: np.polyadd(a[:3], a[6:]), lambda a: np.polymul(a[:3], a[3:5]),
    lambda a: np.poly(a[:3])], ids=lambda f: "")
def test_exact_and_differentiable(f):
    assert_same(f, X)
    if np.asarray(f(X)).dtype.kind == "f":
        check_grads(f, X)


@pytest.mark.parametrize("kw", [{}, {"w": np.linspace(1.0, 2.0, 9)}, {"full": True},
                                {"cov": True}, {"cov": "unscaled"}, {"rcond": 1e-3}])
def test_polyfit_matches_numpy_to_rounding(kw):
    """Least squares through pinv: NumPy's gelsd to rounding, not bit for bit."""
    for y in (Y, np.stack([Y, Y ** 2], axis=1)):
        got, want = value(lambda a, b: np.polyfit(a, b, 3, **kw), X, y), np.polyfit(X, y, 3, **kw)
        got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
        for g, w in zip(got, want):
            assert np.shape(g) == np.shape(w) and np.asarray(g).dtype == np.asarray(w).dtype
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-13)
    check_grads(lambda a, b: np.polyfit(a, b, 2, **{k: v for k, v in kw.items()
                                                    if k != "full"}), X, Y)
    check_replay(lambda b: np.sum(np.polyfit(X, b, 3) ** 2), (Y,), (Y * 2 + 1,))


def test_errors():
    with pytest.raises(ValueError, match="deg >= 0"):
        value(lambda a: np.polyfit(X, a, -1), Y)
    with pytest.raises(TypeError, match="same length"):
        value(lambda a: np.polyfit(X[:3], a, 1), Y)
    with pytest.warns(np.exceptions.RankWarning, match="poorly conditioned"):
        value(lambda a: np.polyfit(np.ones(9), a, 3), Y)
    with pytest.raises(td.UnsupportedOperation, match="square matrix"):
        value(np.poly, np.eye(2))
    with pytest.raises(ValueError, match="one-dimensional"):
        value(np.vander, np.eye(2))
    with pytest.raises(ValueError, match="must be positive"):
        value(lambda a: np.polyder(a, -1), P)


def test_review_polymul_trims_and_poly_casts():
    """Found in review: polymul kept leading zeros (NumPy's poly1d trims
    them), poly negated unsigned roots in their own dtype (wrapping) and
    returned float32 roots' polynomial in float64."""
    assert_same(lambda a: np.polymul(a, [1.0, 1.0]), np.array([0.0, 1.0, 2.0]))
    assert_same(lambda a: np.polymul(a, [1.0, 2.0]), np.array([0.0, 0.0]))
    assert_same(lambda a: np.polymul(a[:0], [1.0, 2.0]), np.array([0.0]))
    for roots in (np.array([1, 2], np.uint8), np.array([True, False]),
                  np.array([1.0, 2.0], np.float32)):
        assert_same(np.poly, roots)
    assert_same(lambda p: np.polyder(p, 1.0), P)
    with pytest.raises(ValueError, match="negative dimensions"):
        value(lambda a: np.vander(a, -1), X)


_DIV = [(P, np.array([1.0, 2.0])), (P, np.array([2.0])), (P[:2], P),
        (np.array([1, 3, 2]), np.array([1, 1])), (np.array([1.0, 3.0, 2.0]), np.array([1.0, 1.0])),
        (P.astype(np.float32), np.array([1.0, 2.0], np.float32))]


@pytest.mark.parametrize("u, v", _DIV, ids=["by-linear", "by-constant", "lower-degree", "ints",
                                            "exact-remainder-dropped", "float32"])
def test_polydiv_is_numpys(u, v):
    """Long division as NumPy divides: quotient and remainder (leading entries
    within allclose of zero dropped), dtypes, and the derivatives."""
    assert_same(lambda a, b: np.polydiv(a, b), u, v)
    assert_same(lambda b: np.polydiv(u, b), v)                # only the divisor tracked
    if u.dtype == v.dtype == np.float64:
        check_grads(lambda a, b: np.polydiv(a, b)[0], u, v)
        check_grads(lambda a, b: np.polydiv(a, b)[1], u, v)


def _coeffs(*ps):
    return tuple(p.coeffs for p in ps)


def test_poly1d_with_tracked_coefficients():
    """NumPy's own poly1d class over tracked coefficients: evaluation,
    derivative, integral, arithmetic; the poly* functions return a poly1d
    where NumPy does. Values equal NumPy's, derivatives check."""
    x = np.array([0.3, -1.2, 2.0])
    fs = [lambda c: np.poly1d(c)(x), lambda c: np.poly1d(c).deriv()(x),
          lambda c: np.poly1d(c).integ(k=1.0).coeffs,
          lambda c: (np.poly1d(c) + np.poly1d([1.0, 2.0]))(x),
          lambda c: (np.poly1d(c) * np.poly1d(c[:2])).coeffs,
          lambda c: (np.poly1d(c) ** 2 - np.poly1d([1.0, 2.0])).coeffs,
          lambda c: np.poly1d(c[:3], r=True).coeffs,
          lambda c: np.poly1d(np.concatenate([np.zeros(2), c])).coeffs,   # leading zeros
          lambda c: np.poly1d([1.0, 2.0, 3.0])(c) * np.poly1d(c)[1],
          lambda c: _coeffs(*np.polydiv(np.poly1d([1.0, 2.0, 3.0, 4.0, 5.0]), c)),
          lambda c: _coeffs(np.polyadd(np.poly1d([1.0, 2.0]), c), np.polysub(c, np.poly1d([1.0])),
                            np.polymul(np.poly1d([1.0, 2.0]), c))]
    for f in fs:
        assert_same(f, P)
        check_grads(f, P)
