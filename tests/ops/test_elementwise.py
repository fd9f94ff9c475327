"""Elementwise ufuncs: derivatives, shape rules, dtypes, IEEE special values,
the ufunc entry (out=, dtype=, casting, where=), operators and np.where.

Every differentiable ufunc registered in ``tapediff/ops/elementwise.py`` has a
row in UNARY or BINARY with the input domain its derivative is checked on.
"""
import math
import operator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapediff as td
from tapediff.ops.elementwise import UFUNC_OPS
from tapediff.ops.registry import aval_of
from tapediff.testing import check_grads, check_replay
from tests.strategies import arrays, shapes

# ----------------------------------------------------------------- tables
# (ufunc, (lo, hi, avoid)): inputs are drawn in [lo, hi], |x| >= avoid
UNARY = [
    (np.negative, (-2, 2, None)),
    (np.positive, (-2, 2, None)),
    (np.absolute, (-2, 2, 0.1)),
    (np.square, (-2, 2, None)),
    (np.reciprocal, (-2, 2, 0.3)),
    (np.sqrt, (0.2, 3, None)),
    (np.cbrt, (-2, 2, 0.2)),
    (np.exp, (-2, 2, None)),
    (np.exp2, (-2, 2, None)),
    (np.expm1, (-2, 2, None)),
    (np.log, (0.2, 3, None)),
    (np.log2, (0.2, 3, None)),
    (np.log10, (0.2, 3, None)),
    (np.log1p, (-0.7, 2, None)),
    (np.sin, (-3, 3, None)),
    (np.cos, (-3, 3, None)),
    (np.tan, (-1.2, 1.2, None)),
    (np.arcsin, (-0.9, 0.9, None)),
    (np.arccos, (-0.9, 0.9, None)),
    (np.arctan, (-3, 3, None)),
    (np.sinh, (-2, 2, None)),
    (np.cosh, (-2, 2, None)),
    (np.tanh, (-2, 2, None)),
    (np.arcsinh, (-3, 3, None)),
    (np.arccosh, (1.2, 3, None)),
    (np.arctanh, (-0.9, 0.9, None)),
    (np.deg2rad, (-90, 90, None)),
    (np.rad2deg, (-2, 2, None)),
    (np.conjugate, (-2, 2, None)),
]

# (ufunc, domain of a, domain of b)
ANY = (-2, 2, None)
BINARY = [
    (np.add, ANY, ANY),
    (np.subtract, ANY, ANY),
    (np.multiply, ANY, ANY),
    (np.true_divide, ANY, (-2, 2, 0.3)),
    (np.power, (0.2, 2, None), ANY),
    (np.arctan2, (-2, 2, 0.2), (-2, 2, 0.2)),
    (np.hypot, (-2, 2, 0.2), (-2, 2, 0.2)),
    (np.logaddexp, ANY, ANY),
    (np.logaddexp2, ANY, ANY),
    (np.maximum, ANY, ANY),
    (np.minimum, ANY, ANY),
    (np.fmax, ANY, ANY),
    (np.fmin, ANY, ANY),
    (np.copysign, (-2, 2, 0.2), (-2, 2, 0.2)),
    # a / b stays within (2.1, 2.8): no jump of the remainder nearby
    (np.remainder, (1.1, 1.4, None), (0.5, 0.52, None)),
    (np.fmod, (1.1, 1.4, None), (0.5, 0.52, None)),
    (np.nextafter, ANY, ANY),
]

INACTIVE_UNARY = [np.sign, np.floor, np.ceil, np.trunc, np.rint, np.isnan, np.isinf,
                  np.isfinite, np.signbit, np.spacing, np.logical_not]
INACTIVE_BINARY = [np.floor_divide, np.greater, np.greater_equal,
                   np.less, np.less_equal, np.equal, np.not_equal, np.logical_and,
                   np.logical_or, np.logical_xor, np.heaviside]


# the ufuncs this domain registers (other domains add gufuncs such as matmul)
ELEMENTWISE = {u: op for u, op in UFUNC_OPS.items()
               if op.shape.__module__ == "tapediff.ops.elementwise"}


def test_tables_cover_every_registered_ufunc():
    listed = {u for u, *_ in UNARY} | {u for u, *_ in BINARY}
    differentiable = {u for u, op in ELEMENTWISE.items() if not op.inactive}
    assert listed == differentiable
    inactive = {u for u, op in ELEMENTWISE.items() if op.inactive}
    assert set(INACTIVE_UNARY) | set(INACTIVE_BINARY) <= inactive


def _ids(table):
    return [row[0].__name__ for row in table]


@st.composite
def _scalar(draw, dom):
    """A Python float in the domain."""
    lo, hi, avoid = dom
    return float(draw(arrays((), lo, hi, avoid=avoid)))


# ----------------------------------------------------------------- derivatives
@pytest.mark.parametrize("uf,dom", UNARY, ids=_ids(UNARY))
@given(data=st.data())
def test_unary_grads(uf, dom, data):
    x = data.draw(arrays(data.draw(shapes()), *dom[:2], avoid=dom[2]))
    check_grads(uf, x)


@pytest.mark.parametrize("uf,dom", UNARY, ids=_ids(UNARY))
def test_unary_scalar_inputs(uf, dom):
    lo, hi, avoid = dom
    v = 0.5 * (lo + hi) + 0.1 * (hi - lo)
    check_grads(uf, v)                        # Python float argument
    check_grads(uf, np.float64(v))            # NumPy scalar
    check_grads(uf, np.array(v))              # 0-d array
    check_grads(lambda x: uf(x) * 2.0, np.array([v]))


MIXES = ("tracked-tracked", "tracked-ndarray", "ndarray-tracked", "tracked-pyfloat",
         "pyfloat-tracked", "tracked-npscalar")


@pytest.mark.parametrize("uf,da,db", BINARY, ids=_ids(BINARY))
@given(data=st.data())
def test_binary_grads(uf, da, db, data):
    sh = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
    a = data.draw(arrays(sh.input_shapes[0], *da[:2], avoid=da[2]))
    b = data.draw(arrays(sh.input_shapes[1], *db[:2], avoid=db[2]))
    mix = data.draw(st.sampled_from(MIXES))
    if mix == "tracked-tracked":
        check_grads(uf, a, b)
    elif mix == "tracked-ndarray":
        check_grads(lambda a: uf(a, b), a)
    elif mix == "ndarray-tracked":
        check_grads(lambda b: uf(a, b), b)
    elif mix == "tracked-pyfloat":
        s = data.draw(_scalar(db))
        check_grads(lambda a: uf(a, s), a)
    elif mix == "pyfloat-tracked":
        s = data.draw(_scalar(da))
        check_grads(lambda b: uf(s, b), b)
    else:
        s = np.float64(data.draw(_scalar(db)))
        check_grads(lambda a: uf(a, s), a)


@pytest.mark.parametrize("uf,da,db", BINARY, ids=_ids(BINARY))
def test_binary_python_scalar_argument(uf, da, db):
    # a differentiated Python float argument gets a float gradient
    a = 0.5 * (da[0] + da[1]) + 0.13
    b = np.array([0.5 * (db[0] + db[1]) + 0.31, db[1] * 0.7])
    check_grads(uf, a, b)
    g = td.grad(lambda a, b: np.sum(uf(a, b)), (0, 1))(a, b)
    assert isinstance(g[0], (float, np.floating)) and g[1].shape == b.shape


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, -1, -2, -3, 0.5, -0.5, 1.5, 2.5, 3.0])
def test_power_python_exponents(k):
    x = np.array([0.3, 0.7, 1.4, 2.0])
    check_grads(lambda a: a ** k, x)
    check_grads(lambda a: np.power(a, k), x)
    if isinstance(k, int):           # integer exponents: negative bases too
        check_grads(lambda a: a ** k, -x)
    g = td.grad(lambda a: np.sum(a ** k))(x)
    np.testing.assert_allclose(g, k * x ** (k - 1) if k else 0 * x, rtol=1e-13)


def test_power_special_cases():
    # x ** 0 has a zero gradient everywhere, even at 0; x ** 1 has gradient 1 at 0
    z = np.array([0.0, 2.0, -1.5])
    np.testing.assert_array_equal(td.grad(lambda a: np.sum(a ** 0))(z), [0, 0, 0])
    np.testing.assert_array_equal(td.grad(lambda a: np.sum(a ** 1))(z), [1, 1, 1])
    np.testing.assert_array_equal(td.grad(lambda a: np.sum(a ** 2))(z), 2 * z)
    # array exponents, including 0 and 1 at base 0 and integer exponents on negative bases
    b = np.array([0.0, 1.0, 2.0, 3.0])
    base = np.array([0.0, 0.0, -1.5, 2.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        ga, gb = td.grad(lambda a, b: np.sum(a ** b), (0, 1))(base, b)
    np.testing.assert_allclose(ga, [0.0, 1.0, -3.0, 12.0])
    # d/db a**b = a**b log a; 0 where a <= 0 (no real log), never NaN
    np.testing.assert_allclose(gb, [0.0, 0.0, 0.0, 8 * math.log(2.0)])
    eb = np.array([0, 1, 2, 3])      # integer array exponent
    check_grads(lambda a: a ** eb, np.array([-0.7, 0.4, -1.3, 1.1]))
    check_grads(lambda b: 2.0 ** b, np.array([-0.7, 0.4, 1.3]))
    check_grads(lambda b: np.power(np.array([0.5, 1.5, 2.5]), b), np.array([-0.7, 0.4, 1.3]))


# ----------------------------------------------------------------- shape rules
DTYPES = [np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.int64),
          np.dtype(np.int32), np.dtype(np.int8), np.dtype(np.bool_), float, int, bool]


def _operand(shape, dt):
    if isinstance(dt, type):                      # a weak Python scalar
        return dt(1)
    return np.ones(shape, dt)


@pytest.mark.parametrize("uf", sorted(ELEMENTWISE, key=lambda u: u.__name__),
                         ids=lambda u: u.__name__)
@given(data=st.data())
def test_shape_rule_matches_numpy(uf, data):
    op = UFUNC_OPS[uf]
    sh = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=uf.nin, max_dims=3,
                                                     max_side=3))
    dts = [data.draw(st.sampled_from(DTYPES)) for _ in range(uf.nin)]
    args = [_operand(s, d) for s, d in zip(sh.input_shapes, dts)]
    with np.errstate(all="ignore"):
        try:
            want = uf(*args)
        except TypeError:            # NumPy has no loop for these types: nor does the rule
            with pytest.raises(TypeError):
                op.shape(*[aval_of(a) for a in args])
            return
    got = op.shape(*[aval_of(a) for a in args])
    assert got.shape == np.shape(want)
    assert got.dtype == np.asarray(want).dtype


@pytest.mark.parametrize("uf,da,db", BINARY, ids=_ids(BINARY))
def test_recorded_value_matches_shape_rule(uf, da, db):
    a = np.linspace(da[0], da[1], 6).reshape(2, 3).astype(np.float32) + 0.05
    b = np.float32(db[1] * 0.6)
    out, _ = td.vjp(lambda a: uf(a, 1.5), a)
    want = UFUNC_OPS[uf].shape(aval_of(a), aval_of(1.5))
    assert (out.shape, out.dtype) == (want.shape, want.dtype) == ((2, 3), np.float32)
    out, _ = td.vjp(lambda a: uf(a, b), a)
    assert out.dtype == uf(a, b).dtype == np.float32


# ----------------------------------------------------------------- float32
def _f32_inputs(dom, n=5):
    lo, hi, avoid = dom
    x = np.linspace(lo, hi, n)
    if avoid:
        x = np.where(np.abs(x) < avoid, np.sign(x + 1e-300) * avoid + x, x)
    return x.astype(np.float32)


@pytest.mark.parametrize("uf,dom", UNARY, ids=_ids(UNARY))
def test_float32_unary(uf, dom):
    x = _f32_inputs(dom)
    out, pull = td.vjp(uf, x)
    assert out.dtype == uf(x).dtype == np.float32
    (g,) = pull(np.ones(5, np.float32))
    assert g.dtype == np.float32
    g64 = td.grad(lambda a: np.sum(uf(a)))(x.astype(np.float64))
    np.testing.assert_allclose(g, g64, rtol=2e-4, atol=1e-5)


@pytest.mark.parametrize("uf,da,db", BINARY, ids=_ids(BINARY))
def test_float32_binary(uf, da, db):
    a, b = _f32_inputs(da), _f32_inputs(db)[::-1].copy()
    # float32 op float32, float32 op Python float (NumPy 2: stays float32)
    for f, args in [(uf, (a, b)), (lambda a: uf(a, 1.25), (a,)), (lambda b: uf(1.25, b), (b,)),
                    (lambda a: uf(a, np.float32(1.25)), (a,))]:
        out, pull = td.vjp(f, *args)
        assert out.dtype == f(*args).dtype == np.float32
        grads = pull(np.ones(out.shape, np.float32))
        assert all(g.dtype == np.float32 for g in grads)
    # mixed with float64: the output promotes, each gradient keeps its input's dtype
    out, pull = td.vjp(uf, a, b.astype(np.float64))
    assert out.dtype == np.float64
    ga, gb = pull(np.ones(5))
    assert ga.dtype == np.float32 and gb.dtype == np.float64
    ga64, gb64 = td.grad(lambda a, b: np.sum(uf(a, b)), (0, 1))(a.astype(float),
                                                              b.astype(float))
    np.testing.assert_allclose(ga, ga64, rtol=2e-4, atol=1e-5)


def test_float32_times_python_float_stays_float32():
    x = np.array([1.0, 2.0], np.float32)
    v, g = td.value_and_grad(lambda a: np.sum(a * 2.0 + 1 - a / 3.0))(x)
    assert v.dtype == np.float32 and g.dtype == np.float32
    v, g = td.value_and_grad(lambda a: np.sum(a ** 2 + 2.0 ** a))(x)
    assert v.dtype == np.float32 and g.dtype == np.float32
    # a float64 *array* promotes (the gradient of x still is float32)
    v, g = td.value_and_grad(lambda a: np.sum(a * np.ones(2)))(x)
    assert v.dtype == np.float64 and g.dtype == np.float32


# ----------------------------------------------------------------- IEEE special values
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, 2.0])


@pytest.mark.parametrize("uf", [r[0] for r in UNARY] + INACTIVE_UNARY,
                         ids=lambda u: u.__name__)
def test_unary_special_values(uf):
    with np.errstate(all="ignore"):
        want = uf(SPECIAL)
        out, pull = td.vjp(uf, SPECIAL)
        np.testing.assert_array_equal(out, want)        # NaN == NaN here
        (g,) = pull(np.ones(SPECIAL.shape))
        rec = td.record(lambda x: uf(x), SPECIAL)
        rev = SPECIAL[::-1].copy()     # (same layout on both sides: NumPy's SIMD and
        np.testing.assert_array_equal(rec(rev), uf(rev))   # scalar loops round differently)
    assert g.shape == SPECIAL.shape
    if not UFUNC_OPS[uf].inactive:
        # a NaN input gives a NaN gradient unless the derivative is a constant
        const = uf in (np.negative, np.positive, np.deg2rad, np.rad2deg, np.conjugate)
        assert np.isnan(g[0]) != const


@pytest.mark.parametrize("uf", [r[0] for r in BINARY] + INACTIVE_BINARY,
                         ids=lambda u: u.__name__)
def test_binary_special_values(uf):
    a, b = (x.ravel() for x in np.meshgrid(SPECIAL, SPECIAL))
    with np.errstate(all="ignore"):
        want = uf(a, b)
        out, pull = td.vjp(uf, a, b)
        np.testing.assert_array_equal(out, want)
        ga, gb = pull(np.ones(a.shape))
    assert ga.shape == gb.shape == a.shape


# d f / d x at IEEE special points where the limit is finite (or a definite inf)
UNARY_LIMITS = [
    (np.exp, -np.inf, 0.0), (np.exp, np.inf, np.inf), (np.exp2, -np.inf, 0.0),
    (np.expm1, -np.inf, 0.0), (np.tanh, np.inf, 0.0), (np.tanh, -np.inf, 0.0),
    (np.arctan, np.inf, 0.0), (np.arctan, -np.inf, 0.0), (np.arcsinh, np.inf, 0.0),
    (np.arcsinh, 1e200, 1e-200), (np.arccosh, np.inf, 0.0), (np.arccosh, 1e200, 1e-200),
    (np.sqrt, np.inf, 0.0), (np.sqrt, 0.0, np.inf), (np.log, np.inf, 0.0),
    (np.log, 0.0, np.inf), (np.log1p, -1.0, np.inf), (np.reciprocal, np.inf, -0.0),
    (np.reciprocal, 0.0, -np.inf), (np.cbrt, np.inf, 0.0), (np.cbrt, 0.0, np.inf),
    (np.absolute, 0.0, 0.0), (np.absolute, np.inf, 1.0), (np.absolute, -np.inf, -1.0),
    (np.square, 0.0, 0.0), (np.arcsin, 1.0, np.inf), (np.arccos, 1.0, -np.inf),
    (np.arctanh, 1.0, np.inf), (np.sinh, 0.0, 1.0), (np.cosh, 0.0, 0.0),
]


@pytest.mark.parametrize("uf,x,want", UNARY_LIMITS,
                         ids=[f"{u.__name__}({x})" for u, x, _ in UNARY_LIMITS])
def test_unary_gradient_limits(uf, x, want):
    with np.errstate(all="ignore"):
        g = td.grad(lambda a: np.sum(uf(a)))(np.array([x]))
    np.testing.assert_allclose(g, [want], rtol=1e-12)


INF, NAN = np.inf, np.nan
BINARY_LIMITS = [
    # maximum/minimum propagate NaN: the NaN operand is the result and takes g
    (np.maximum, NAN, 1.0, 1.0, 0.0), (np.maximum, 1.0, NAN, 0.0, 1.0),
    (np.minimum, NAN, 1.0, 1.0, 0.0), (np.minimum, 1.0, NAN, 0.0, 1.0),
    (np.maximum, NAN, NAN, 0.5, 0.5),
    # fmax/fmin ignore NaN: the number is the result and takes g
    (np.fmax, NAN, 1.0, 0.0, 1.0), (np.fmax, 1.0, NAN, 1.0, 0.0),
    (np.fmin, NAN, 1.0, 0.0, 1.0), (np.fmin, 1.0, NAN, 1.0, 0.0),
    (np.fmin, NAN, NAN, 0.5, 0.5),
    # ties split 0.5 / 0.5, infinite ties too
    (np.maximum, 2.0, 2.0, 0.5, 0.5), (np.minimum, -1.0, -1.0, 0.5, 0.5),
    (np.fmax, INF, INF, 0.5, 0.5), (np.fmin, -INF, -INF, 0.5, 0.5),
    (np.maximum, INF, 1.0, 1.0, 0.0), (np.minimum, -INF, 1.0, 1.0, 0.0),
    # hypot: unit vector, also towards infinity; 0 at the origin like abs
    (np.hypot, INF, 1.0, 1.0, 0.0), (np.hypot, 3.0, -INF, 0.0, -1.0),
    (np.hypot, INF, INF, 0.5 ** 0.5, 0.5 ** 0.5), (np.hypot, 0.0, 0.0, 0.0, 0.0),
    (np.hypot, 3.0, 4.0, 0.6, 0.8), (np.hypot, 3e200, 4e200, 0.6, 0.8),
    (np.hypot, NAN, INF, 0.0, 1.0),
    # arctan2: the derivatives vanish at infinity (no inf/inf NaN), no overflow
    (np.arctan2, 1.0, INF, 0.0, 0.0), (np.arctan2, INF, 1.0, 0.0, 0.0),
    (np.arctan2, 3e200, 4e200, 1.6e-201, -1.2e-201),
    # logaddexp: the infinite operand wins outright, -inf + -inf is a tie
    (np.logaddexp, INF, 1.0, 1.0, 0.0), (np.logaddexp, 1.0, INF, 0.0, 1.0),
    (np.logaddexp, -INF, 2.0, 0.0, 1.0), (np.logaddexp, -INF, -INF, 0.5, 0.5),
    (np.logaddexp, INF, INF, 0.5, 0.5), (np.logaddexp, 3.0, 3.0, 0.5, 0.5),
    (np.logaddexp2, INF, 1.0, 1.0, 0.0), (np.logaddexp2, -INF, -INF, 0.5, 0.5),
    # division and multiplication by infinities: IEEE
    (np.true_divide, 1.0, INF, 0.0, -0.0), (np.multiply, 2.0, INF, INF, 2.0),
    (np.copysign, -2.0, 0.0, -1.0, 0.0), (np.copysign, 2.0, -INF, -1.0, 0.0),
    (np.power, 0.0, 2.0, 0.0, 0.0), (np.power, 0.0, 0.5, INF, 0.0),
    (np.power, -2.0, 3.0, 12.0, 0.0),
]


@pytest.mark.parametrize("uf,a,b,ga,gb", BINARY_LIMITS,
                         ids=[f"{r[0].__name__}({r[1]},{r[2]})" for r in BINARY_LIMITS])
def test_binary_gradient_limits(uf, a, b, ga, gb):
    with np.errstate(all="ignore"):
        got = td.grad(lambda a, b: np.sum(uf(a, b)), (0, 1))(np.array([a]), np.array([b]))
    np.testing.assert_allclose(np.concatenate(got), [ga, gb], rtol=1e-12, atol=0)


@pytest.mark.parametrize("uf", [np.maximum, np.minimum, np.fmax, np.fmin])
def test_max_min_ties_and_dtypes(uf):
    a = np.array([1.0, 2.0, -3.0], np.float32)
    ga, gb = td.grad(lambda a, b: np.sum(uf(a, b)), (0, 1))(a, a.copy())
    np.testing.assert_array_equal(ga, [0.5] * 3)
    np.testing.assert_array_equal(gb, [0.5] * 3)
    assert ga.dtype == gb.dtype == np.float32
    # uf(t, t) = t: the two halves add up to 1
    np.testing.assert_array_equal(td.grad(lambda a: np.sum(uf(a, a)))(a), [1.0] * 3)
    # relu at exactly 0 splits too; away from 0 it is 0 or 1
    g = td.grad(lambda a: np.sum(uf(a, 0.0)))(np.array([-1.0, 0.0, 1.0]))
    big = uf in (np.maximum, np.fmax)
    np.testing.assert_array_equal(g, [0.0, 0.5, 1.0] if big else [1.0, 0.5, 0.0])
    # NaN against a constant
    g = td.grad(lambda a: np.sum(uf(a, 0.0)))(np.array([np.nan]))
    np.testing.assert_array_equal(g, [1.0 if uf in (np.maximum, np.minimum) else 0.0])


# ----------------------------------------------------------------- inactive ufuncs
@pytest.mark.parametrize("uf", INACTIVE_UNARY + INACTIVE_BINARY, ids=lambda u: u.__name__)
def test_inactive_ufuncs_record_with_zero_gradient(uf):
    x = np.array([0.3, -1.7, 2.5, -0.2])
    y = np.array([0.7, 0.4, -1.1, -0.6])

    def f(a):
        r = uf(a) if uf.nin == 1 else uf(a, y)
        if td.is_tracked(a):                  # (check_replay also runs f on plain arrays)
            assert td.is_tracked(r) and not r.is_active
        return np.sum(a) + np.sum(r * 2.0)

    v, g = td.value_and_grad(f)(x)
    np.testing.assert_array_equal(g, np.ones(4))
    want = uf(x) if uf.nin == 1 else uf(x, y)
    np.testing.assert_allclose(v, np.sum(x) + np.sum(want * 2.0))
    rec = td.record(f, x)
    assert uf.__name__ in str(rec) or UFUNC_OPS[uf].name in str(rec)
    check_replay(f, (x,), (-y,))


def test_inactive_operators_and_integer_data():
    x = np.array([0.3, -1.7, 2.5])
    g = td.grad(lambda a: np.sum(a // 0.5 + (a > 0) + divmod(a, 0.7)[0]))(x)
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.0])
    # the remainder is differentiable between its jumps: d(a % b)/da = 1
    g = td.grad(lambda a: np.sum(a % 0.5 + divmod(a, 0.7)[1]))(x)
    np.testing.assert_array_equal(g, [2.0, 2.0, 2.0])
    k = np.array([5, 6, 7])

    def f(a, k):
        m = (k & 3) | (k << 1) ^ (k >> 1)
        return np.sum(a * m) + np.sum(~k)
    check_grads(lambda a: f(a, k), x)
    np.testing.assert_allclose(td.value_and_grad(f)(x, k)[0], f(x, k))


# ----------------------------------------------------------------- the ufunc entry: out=, dtype=
def _run_both(f, *args):
    """``f`` on plain NumPy (copies) and through tapediff's vjp: outputs must agree."""
    want = f(*[np.copy(a) for a in args])
    got, _ = td.vjp(f, *args)
    for w, g in zip(want if isinstance(want, tuple) else (want,),
                    got if isinstance(got, tuple) else (got,)):
        np.testing.assert_allclose(g, w, rtol=1e-14)


def test_out_into_tracked_array():
    x = np.array([0.3, -0.7, 1.2])

    def f(a):
        z = np.zeros(3, like=a)
        r = np.sin(a, out=z)
        assert r is z
        np.multiply(z, a, out=(z,))            # tuple form, aliasing an input
        np.exp(z, z)                           # positional out
        return z

    check_grads(f, x)
    np.testing.assert_allclose(td.vjp(f, x)[0], np.exp(np.sin(x) * x))


def test_out_into_view_of_tracked_array():
    x = np.array([0.3, -0.7, 1.2])

    def f(a):
        base = np.zeros(5, like=a) + 1.0
        v = base[1:4]
        w = base[::2]
        r = np.multiply(a, a, out=v)
        assert r is v
        return base * 1.0, v * 1.0, w * 1.0

    def f_np(a):
        base = np.zeros(5) + 1.0
        v, w = base[1:4], base[::2]
        np.multiply(a, a, out=v)
        return base * 1.0, v * 1.0, w * 1.0

    got, _ = td.vjp(f, x)
    for g, w in zip(got, f_np(x)):
        np.testing.assert_allclose(g, w)
    check_grads(f, x)


def test_out_into_plain_ndarray():
    x = np.array([0.3, -0.7, 1.2])

    def active(a):
        z = np.zeros(3)
        np.sin(a, out=z)
        return np.sum(z)

    with pytest.raises(td.TrackedEscape):
        td.grad(active)(x)

    def data(a, d):           # an inactive value may be written: it is guarded
        z = np.zeros(3)
        np.add(d, 1.0, out=z)
        return np.sum(z * a)

    d = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(td.grad(data)(x, d), d + 1)
    rec = td.record(data, x, d)
    np.testing.assert_allclose(rec.gradient(x, d * 2), 2 * d + 1)    # re-recorded
    assert rec.n_versions == 2


def test_out_broadcasts_like_numpy():
    x = np.array([0.3, -0.7, 1.2])

    def f(a):
        z = np.zeros((2, 3), like=a)
        np.add(a, 1.0, out=z)
        return z

    _run_both(f, x)
    check_grads(f, x)

    def bad(a):
        z = np.zeros(2, like=a)
        np.add(a, 1.0, out=z)
        return z
    with pytest.raises(ValueError):
        td.vjp(bad, x)


def test_out_with_where():
    x = np.array([0.3, -0.7, 1.2, 2.0])
    m = np.array([True, False, True, False])

    def f(a):
        z = a * 10.0
        np.sin(a, out=z, where=m)
        return z

    def f_np(a):
        z = a * 10.0
        np.sin(a, out=z, where=m)
        return z

    np.testing.assert_allclose(td.vjp(f, x)[0], f_np(x))
    check_grads(f, x)
    with pytest.raises(td.UnsupportedOperation, match="where"):
        td.grad(lambda a: np.sum(np.sin(a, where=m)))(x)


def test_dtype_argument():
    x = np.array([0.3, -0.7, 1.2])
    v, g = td.value_and_grad(lambda a: np.sum(np.add(a, 1, dtype=np.float32)))(x)
    assert v.dtype == np.float32 and g.dtype == np.float64
    np.testing.assert_allclose(g, np.ones(3))
    x32 = x.astype(np.float32)
    out, pull = td.vjp(lambda a: np.multiply(a, 2.0, dtype=np.float64), x32)
    assert out.dtype == np.float64 and pull(np.ones(3))[0].dtype == np.float32
    # NumPy refuses float -> int under the default casting='same_kind'; so do we
    with pytest.raises(TypeError):
        np.add(x, 1, dtype=np.int64)
    with pytest.raises(TypeError):
        td.grad(lambda a: np.sum(np.add(a, 1, dtype=np.int64) * a))(x)
    # ... and allow it with casting='unsafe' (the integer result has no derivative)
    f = lambda a: np.sum(np.add(a, 1, dtype=np.int64, casting="unsafe") * a)
    v, g = td.value_and_grad(f)(x)
    np.testing.assert_allclose(v, f(x))
    np.testing.assert_allclose(g, np.add(x, 1, dtype=np.int64, casting="unsafe"))


def test_out_casting():
    x = np.array([0.3, -0.7, 1.2])

    def f(a, k):
        np.multiply(k, a, out=k)
        return np.sum(k * a)

    with pytest.raises(TypeError):
        f(x, np.arange(3))                                   # NumPy
    with pytest.raises(TypeError, match="cast"):
        td.grad(f)(x, np.arange(3))

    def g(a, k):
        k = k * 1                                           # tracked int data
        np.multiply(k, 2.5, out=k, casting="unsafe")
        return np.sum(k * a)
    v, gr = td.value_and_grad(g)(x, np.arange(3))
    np.testing.assert_allclose(v, g(x, np.arange(3)))


def test_subtract_at_and_unsupported_methods():
    x = np.array([0.3, -0.7, 1.2])

    def f(a):
        z = np.zeros(4, like=a)
        np.subtract.at(z, [0, 0, 3], a)
        return z

    np.testing.assert_allclose(td.vjp(f, x)[0], [-(x[0] + x[1]), 0, 0, -x[2]])
    check_grads(f, x)
    with pytest.raises(td.UnsupportedOperation, match="multiply.at"):
        td.vjp(lambda a: np.multiply.at(np.ones(3, like=a), [0], a), x)
    with pytest.raises(td.UnsupportedOperation, match="outer"):
        td.vjp(lambda a: np.add.outer(a, a), x)


# ----------------------------------------------------------------- operators
BINOPS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow]


@pytest.mark.parametrize("op", BINOPS, ids=lambda o: o.__name__)
def test_operators(op):
    a = np.array([0.4, 1.3, 2.1])
    b = np.array([[1.5], [0.6]])
    check_grads(op, a, b)
    check_grads(lambda a: op(a, 1.7), a)
    check_grads(lambda a: op(1.7, a), a)
    check_grads(lambda a: op(b, a), a)          # ndarray on the left defers to us
    check_grads(lambda a: op(np.float64(1.7), a), a)
    np.testing.assert_allclose(td.vjp(lambda a: op(b, a), a)[0], op(b, a))


def test_unary_operators():
    a = np.array([0.4, -1.3, 2.1])
    check_grads(lambda a: -a + (+a) * 2 + abs(a), a)
    np.testing.assert_allclose(td.grad(lambda a: np.sum(abs(a)))(a), np.sign(a))


def test_inplace_operators():
    a0 = np.array([0.4, -1.3, 2.1, 0.8])
    b0 = np.array([1.5, 0.6, -0.9, 1.2])

    def f(a, b):
        a = a * 1.0                    # a copy we may write
        same = a
        v = a[1:]                      # a view sees every in-place update
        a += b
        a -= 0.5 * b
        a *= b
        a /= b * b + 1.0
        a **= 2
        v += 1.0
        assert a is same
        return a, v * 1.0

    _run_both(f, a0, b0)
    check_grads(f, a0, b0)


def test_inplace_operator_casting():
    x = np.array([0.5, 1.5])

    def int_times_float(a, k):
        k = k * 1
        k *= a
        return np.sum(k)

    with pytest.raises(TypeError):
        int_times_float(x, np.arange(2))                   # NumPy refuses
    with pytest.raises(TypeError):
        td.grad(int_times_float)(x, np.arange(2))

    def plain_int(a):
        k = np.arange(2)
        k *= a                         # ndarray.__imul__ -> np.multiply(k, a, out=k)
        return np.sum(k)
    with pytest.raises(TypeError):
        td.grad(plain_int)(x)

    def int_div(a, k):
        k = k * 1
        k /= 2
        return np.sum(a)
    with pytest.raises(TypeError):
        td.grad(int_div)(x, np.arange(2))

    def f32(a, b):                     # float64 -> float32 is 'same_kind': allowed
        a = a * 1
        a += b
        return a
    out, pull = td.vjp(f32, x.astype(np.float32), x)
    assert out.dtype == np.float32
    ga, gb = pull(np.ones(2, np.float32))
    assert ga.dtype == np.float32 and gb.dtype == np.float64

    def int_ok(a, k):
        k = k * 1
        k += 3
        k //= 2
        return np.sum(a * k)
    np.testing.assert_allclose(td.grad(int_ok)(x, np.arange(2)), (np.arange(2) + 3) // 2)


# ----------------------------------------------------------------- np.where and strong zeros
def test_where_masks_the_untaken_branch():
    x = np.array([-1.0, 4.0, 0.0])
    with np.errstate(all="ignore"):
        g = td.grad(lambda x: np.sum(np.where(x > 0, np.sqrt(x), 0.0)))(x)
        np.testing.assert_array_equal(g, [0.0, 0.25, 0.0])
        g = td.grad(lambda x: np.sum(np.where(x > 0, np.log(x), x)))(x)
        np.testing.assert_array_equal(g, [1.0, 0.25, 1.0])
        c = np.array([False, True, True])
        g = td.grad(lambda x: np.sum(np.where(c, x, np.inf * x)))(x)
        np.testing.assert_array_equal(g, [np.inf, 1.0, 1.0])
        g = td.grad(lambda x: np.sum(np.where(np.isfinite(x), x ** 2, 0.0)))(
            np.array([np.inf, np.nan, 3.0]))
        np.testing.assert_array_equal(g, [0.0, 0.0, 6.0])
        # 1/x in the untaken branch, through a chain of ops
        g = td.grad(lambda x: np.sum(np.where(x != 0, np.exp(1 / x) * x, 1.0)))(x)
        assert np.isfinite(g).all()


def test_zero_cotangents_stay_zero():
    # items a read does not touch get exact zeros, not 0 * inf
    with np.errstate(all="ignore"):
        g = td.grad(lambda x: np.log(x)[0])(np.array([1.0, 0.0]))
        np.testing.assert_array_equal(g, [1.0, 0.0])
        g = td.grad(lambda x: np.sum(np.sqrt(x)[[0, 2]]))(np.array([4.0, 0.0, 1.0]))
        np.testing.assert_array_equal(g, [0.25, 0.0, 0.5])

        def overwritten(x):
            y = 1 / x
            y[1] = 5.0
            return np.sum(y)
        np.testing.assert_array_equal(td.grad(overwritten)(np.array([2.0, 0.0])),
                                      [-0.25, 0.0])


@given(data=st.data())
def test_where_grads(data):
    sh = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3))
    c = data.draw(hnp.arrays(np.bool_, sh.input_shapes[0]))
    a = data.draw(arrays(sh.input_shapes[1]))
    b = data.draw(arrays(sh.input_shapes[2]))
    check_grads(lambda a, b: np.where(c, a, b), a, b)
    check_grads(lambda a: np.where(c, a, 0.5), a)
    check_grads(lambda b: np.where(c, 2.0, b * b), b)
    np.testing.assert_array_equal(td.vjp(lambda a, b: np.where(c, a, b), a, b)[0],
                                  np.where(c, a, b))


def test_where_domain_masked_grads_and_condition_from_data():
    x = np.array([-1.5, -0.3, 0.4, 2.2])
    with np.errstate(invalid="ignore"):
        check_grads(lambda x: np.where(x > 0, np.sqrt(x), 0.0), x)
    d = np.array([1.0, -1.0, 1.0, -1.0])
    f = lambda x, d: np.sum(np.where(d > 0, x ** 2, -x))
    check_replay(f, (x, d), (x * 2, -d))


def test_where_shape_rule():
    from tapediff.ops.indexing import WHERE
    c = np.array([True, False])
    x32 = np.ones((3, 1), np.float32)
    for a, b in [(x32, 0.0), (0.0, x32), (x32, np.ones(2)), (1, 2.0), (x32, np.float64(1.0)),
                 (np.ones(2, np.int32), 0.5), (True, np.ones(2, np.int8))]:
        want = np.where(c, a, b)
        got = WHERE.shape(aval_of(c), aval_of(a), aval_of(b))
        assert got == (want.shape, want.dtype), (a, b)


# ----------------------------------------------------------------- replay and nesting
@pytest.mark.parametrize("uf,da,db", BINARY, ids=_ids(BINARY))
def test_binary_replay(uf, da, db):
    rng = np.random.default_rng(0)
    a1, a2 = (rng.uniform(*da[:2], 4) for _ in range(2))
    b1, b2 = (rng.uniform(max(db[0], 0.3), db[1], (2, 1)) for _ in range(2))
    f = lambda a, b: np.sum(uf(a, b) * np.arange(1.0, 5.0))
    check_replay(f, (a1, b1), (a2, b2), argnums=(0, 1), rtol=1e-12)


NESTED = [
    lambda a: np.sum(np.sin(a) * a),
    lambda a: np.sum(np.maximum(a, 0.1) ** 3),
    lambda a: np.sum(np.where(a > 0, np.sqrt(np.abs(a)), a ** 2)),
    lambda a: np.sum(np.hypot(a, 2.0) ** 2 + np.arctan2(a, 1.5)),
    lambda a: np.sum(np.logaddexp(a, 1.0) + np.logaddexp2(a, a * a)),
    lambda a: np.sum(np.abs(a) ** np.array([1.5, 2.0, 3.0]) + np.copysign(a, -1.0) ** 2),
    lambda a: np.sum(np.arcsinh(a) + np.arccosh(a * a + 1.5) + np.tanh(a) / np.cosh(a)),
]


@pytest.mark.parametrize("k", range(len(NESTED)))
def test_second_derivatives(k):
    f = NESTED[k]
    x = np.array([0.3, -0.7, 1.2])
    check_grads(lambda a: td.grad(f)(a), x)
