"""Linear algebra: products, einsum, solves, decompositions and norms."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapediff as td
from tapediff.ops import linalg as L
from tapediff.ops.registry import aval_of
from tapediff.np_api.linalg import normalize_einsum
from tapediff.testing import check_grads, check_replay
from tests.strategies import LAYOUTS, arrays, relayout, shapes

from .exact import randn

LinAlgError = np.linalg.LinAlgError


# ---------------------------------------------------------------- helpers
def value(f, *args):
    """The recorded-and-replayed value of ``f`` (every argument tracked)."""
    return td.vjp(f, *args)[0]


def assert_value(f, *args, rtol=1e-10, atol=1e-12):
    got = value(f, *args)
    want = f(*args)
    for g, w in zip(np.atleast_1d(got) if not isinstance(got, tuple) else got,
                    np.atleast_1d(want) if not isinstance(want, tuple) else want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
    assert np.shape(got) == np.shape(want)
    assert np.asarray(got).dtype == np.asarray(want).dtype


def grad_dtypes(f, *args):
    """dtypes of the gradients of ``sum(f(*args))`` w.r.t. every argument."""
    g = td.grad(lambda *a: np.sum(f(*a)), argnums=tuple(range(len(args))))(*args)
    return [x.dtype for x in g]


def shape_rule(op, *args, **params):
    return op.shape(*[aval_of(a) for a in args], **params)


def assert_shape_rule(op, want, *args, **params):
    got = shape_rule(op, *args, **params)
    assert tuple(got.shape) == np.shape(want)
    assert np.dtype(got.dtype) == np.asarray(want).dtype


@st.composite
def square(draw, batch=(), n=None, max_n=4, dtype=np.float64, min_n=1):
    """Well-conditioned matrices: random entries in [-1, 1] + 2 n I (diagonally dominant),
    with a random sign on the first row so determinants of both signs occur."""
    n = draw(st.integers(min_n, max_n)) if n is None else n
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, batch + (n, n)) + 2 * n * np.eye(n)
    if n and draw(st.booleans()):
        a[..., 0, :] *= -1
    return relayout(a.astype(dtype), draw(st.sampled_from(LAYOUTS)))


@st.composite
def spd(draw, batch=(), n=None, max_n=4, dtype=np.float64):
    n = draw(st.integers(1, max_n)) if n is None else n
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    b = rng.uniform(-1, 1, batch + (n, n))
    a = b @ np.swapaxes(b, -1, -2) + n * np.eye(n)
    return relayout(a.astype(dtype), draw(st.sampled_from(LAYOUTS)))


def batch_pair(draw, max_dims=2):
    sh = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=max_dims, max_side=3))
    return sh.input_shapes


# ================================================================ matmul
@given(st.data())
def test_matmul_batched_and_vectors(data):
    kind = data.draw(st.sampled_from(["mm", "mv", "vm", "vv"]))
    ba, bb = batch_pair(data.draw)
    n, k, m = (data.draw(st.integers(0, 3)) for _ in range(3))
    sa = (k,) if kind[0] == "v" else ba + (n, k)
    sb = (k,) if kind[1] == "v" else bb + (k, m)
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    assert_value(np.matmul, a, b)
    assert_value(lambda x, y: x @ y, a, b)
    assert_shape_rule(L.MATMUL, np.matmul(a, b), a, b)
    check_grads(np.matmul, a, b)


def test_matmul_float32_and_replay():
    a, b = randn(2, 3, 4, dtype=np.float32), randn(4, dtype=np.float32)
    assert grad_dtypes(np.matmul, a, b) == [np.float32, np.float32]
    check_replay(lambda x, y: np.sum(np.matmul(x, y) ** 2), (a, b), (a + 1, b - 1),
                 argnums=(0, 1), rtol=1e-5)


def test_matmul_out_and_errors():
    a, b = randn(2, 3), randn(3, 2)
    f = lambda x: np.matmul(x, b, out=np.zeros((2, 2), like=x))  # noqa: E731
    check_grads(f, a)
    with pytest.raises(ValueError):
        value(np.matmul, randn(2, 3), randn(2, 3))
    with pytest.raises(ValueError):
        value(np.matmul, np.float64(2.0), randn(2))


# ================================================================ dot, vdot, inner, outer
DOT_NDIMS = [(0, 0), (0, 2), (2, 0), (1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (1, 3),
             (3, 2), (2, 3), (3, 3)]


@pytest.mark.parametrize("nda,ndb", DOT_NDIMS)
@settings(max_examples=8)
@given(data=st.data())
def test_dot_all_cases(nda, ndb, data):
    k = data.draw(st.integers(0, 3))
    sa = tuple(data.draw(st.integers(1, 3)) for _ in range(max(nda - 1, 0))) + ((k,) if nda else ())
    if ndb >= 2:
        sb = tuple(data.draw(st.integers(1, 3)) for _ in range(ndb - 2)) + (k, data.draw(
            st.integers(1, 3)))
    else:
        sb = (k,) if ndb == 1 else ()
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    assert_value(np.dot, a, b)
    check_grads(np.dot, a, b)
    if nda and ndb:
        check_grads(lambda x, y: x.dot(y), a, b)


def test_dot_mixed_and_out():
    a, b = randn(3, 4), randn(4)
    check_grads(lambda x: np.dot(x, [1.0, 2.0, 3.0, 4.0]), a)
    check_grads(lambda y: np.dot(a, y), b)
    check_grads(lambda x: np.dot(x, 2.0), a)
    check_grads(lambda x: np.dot(x, b, out=np.zeros(3, like=x)), a)
    with pytest.raises(ValueError):
        value(np.dot, randn(2, 3), randn(2, 3))


@given(shapes(0, 3, max_side=3), st.data())
def test_vdot(shape, data):
    a, b = data.draw(arrays(shape)), data.draw(arrays(shape))
    b = data.draw(arrays(shape))
    assert_value(np.vdot, a, b)
    check_grads(np.vdot, a, b)


@given(st.data())
def test_inner(data):
    k = data.draw(st.integers(0, 3))
    sa = data.draw(shapes(0, 2, max_side=3)) + (k,)
    sb = data.draw(shapes(0, 2, max_side=3)) + (k,)
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    assert_value(np.inner, a, b)
    check_grads(np.inner, a, b)
    check_grads(np.inner, np.float64(1.5), b)


@given(shapes(0, 3, max_side=3), shapes(0, 3, max_side=3), st.data())
def test_outer(sa, sb, data):
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    assert_value(np.outer, a, b)
    check_grads(np.outer, a, b)


def test_linalg_outer_and_matmul():
    a, b = randn(3), randn(4)
    assert_value(np.linalg.outer, a, b)
    check_grads(np.linalg.outer, a, b)
    with pytest.raises(ValueError, match="one-dimensional"):
        value(np.linalg.outer, randn(2, 2), b)
    check_grads(np.linalg.matmul, randn(2, 3, 4), randn(4, 2))



PRODUCTS = [
    ("dot", np.dot, (3, 4), (4, 2)),
    ("dot-nd", np.dot, (2, 3, 4), (2, 4, 3)),
    ("vdot", np.vdot, (2, 3), (3, 2)),
    ("inner", np.inner, (2, 4), (3, 4)),
    ("outer", np.outer, (3,), (2, 2)),
    ("tensordot", lambda a, b: np.tensordot(a, b, axes=([0, 1], [1, 0])), (2, 3, 4), (3, 2)),
    ("kron", np.kron, (2, 3), (3,)),
    ("cross", np.cross, (4, 3), (3,)),
    ("einsum", lambda a, b: np.einsum("bij,jk->bki", a, b), (2, 3, 4), (4, 2)),
    ("matmul", np.matmul, (2, 3, 4), (4,)),
]


@pytest.mark.parametrize("name,f,sa,sb", PRODUCTS, ids=[p[0] for p in PRODUCTS])
def test_products_one_argument_float32_replay(name, f, sa, sb):
    a, b = randn(*sa), randn(*sb, seed=1)
    check_grads(lambda x: f(x, b), a)            # one argument at a time: needs/None tangents
    check_grads(lambda y: f(a, y), b)
    assert grad_dtypes(f, a.astype(np.float32), b.astype(np.float32)) == [np.float32] * 2
    assert value(f, a.astype(np.float32), b.astype(np.float32)).dtype == np.float32
    check_replay(lambda x, y: np.sum(f(x, y) ** 2), (a, b), (a * 2 - 1, b + 0.5),
                 argnums=(0, 1), rtol=1e-10)

# ================================================================ tensordot, kron, cross
@given(st.data())
def test_tensordot_int_axes(data):
    n = data.draw(st.integers(0, 2))
    shared = tuple(data.draw(st.integers(0, 3)) for _ in range(n))
    sa = data.draw(shapes(0, 2, max_side=3)) + shared
    sb = shared + data.draw(shapes(0, 2, max_side=3))
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    f = lambda x, y: np.tensordot(x, y, axes=n)  # noqa: E731
    assert_value(f, a, b)
    check_grads(f, a, b)


@given(st.data())
def test_tensordot_axis_lists(data):
    sa = data.draw(shapes(1, 3, max_side=3))
    k = data.draw(st.integers(1, len(sa)))
    ax_a = data.draw(st.permutations(range(len(sa))))[:k]
    extra = data.draw(shapes(0, 2, max_side=3))
    perm = data.draw(st.permutations(range(k + len(extra))))
    dims = [sa[i] for i in ax_a] + list(extra)
    sb = tuple(dims[p] for p in perm)
    ax_b = [perm.index(i) for i in range(k)]
    neg = data.draw(st.booleans())
    ax_a = [i - len(sa) if neg else i for i in ax_a]
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    f = lambda x, y: np.tensordot(x, y, axes=(ax_a, ax_b))  # noqa: E731
    assert_value(f, a, b)
    check_grads(f, a, b)


def test_tensordot_forms_and_errors():
    a, b = randn(2, 3, 4), randn(4, 3, 5)
    for axes in (([1, 2], [1, 0]), (2, 0), ([2], [0]), 0, 1):
        f = lambda x, y, ax=axes: np.tensordot(x, y, axes=ax)  # noqa: E731
        assert_value(f, a, b)
        check_grads(f, a, b)
    check_grads(lambda x, y: np.linalg.tensordot(x, y, axes=1), a, b)
    with pytest.raises(ValueError, match="shape-mismatch"):
        value(lambda x, y: np.tensordot(x, y, axes=([0], [0])), a, b)
    with pytest.raises(ValueError, match="shape-mismatch"):
        value(lambda x, y: np.tensordot(x, y, axes=([0, 1], [0])), a, b)


@given(shapes(0, 3, max_side=3), shapes(0, 3, max_side=3), st.data())
def test_kron(sa, sb, data):
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    assert_value(np.kron, a, b)
    check_grads(np.kron, a, b)


@given(st.data())
def test_cross(data):
    na, nb = data.draw(st.sampled_from([(3, 3), (2, 3), (3, 2), (2, 2)]))
    ba, bb = batch_pair(data.draw)
    a = data.draw(arrays(ba + (na,)))
    b = data.draw(arrays(bb + (nb,)))
    # move the vector axis somewhere else
    ax_a = data.draw(st.integers(-a.ndim, a.ndim - 1))
    ax_b = data.draw(st.integers(-b.ndim, b.ndim - 1))
    a, b = np.moveaxis(a, -1, ax_a), np.moveaxis(b, -1, ax_b)
    out_nd = len(np.broadcast_shapes(ba, bb)) + (0 if na == nb == 2 else 1)
    ax_c = data.draw(st.integers(-out_nd, out_nd - 1)) if out_nd else -1
    f = lambda x, y: np.cross(x, y, axisa=ax_a, axisb=ax_b, axisc=ax_c)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert_value(f, a, b, rtol=1e-14, atol=0)
        check_grads(f, a, b)


def test_cross_forms():
    a, b = randn(4, 3), randn(3, 4, seed=1)
    check_grads(lambda x, y: np.cross(x, y, axisb=0), a, b)
    c, d = randn(3, 2, 5), randn(3, 2, 5, seed=1)
    assert_value(lambda x, y: np.cross(x, y, axis=0), c, d)
    check_grads(lambda x, y: np.cross(x, y, axis=0), c, d)
    assert_value(lambda x, y: np.linalg.cross(x, y), a, randn(4, 3, seed=2))
    with pytest.warns(DeprecationWarning, match="2-dimensional vectors"):
        value(np.cross, randn(2), randn(3))
    with pytest.raises(ValueError, match="incompatible dimensions"):
        value(np.cross, randn(4), randn(3))
    with pytest.raises(ValueError, match="3-dimensional"):
        value(np.linalg.cross, randn(2), randn(2))
    assert grad_dtypes(np.cross, randn(3, dtype=np.float32), randn(3, dtype=np.float32)) \
        == [np.float32, np.float32]


def test_multi_dot_and_matrix_power():
    A, B, C, D = randn(3, 4), randn(4, 2, seed=1), randn(2, 5, seed=2), randn(5, 3, seed=3)
    v, w = randn(4, seed=4), randn(2, seed=5)
    for arrs in ([A, B], [A, B, C], [A, B, C, D], [v, B, C], [A, B, w], [v, B, w], [v, B, C, D]):
        f = lambda *xs: np.linalg.multi_dot(list(xs))  # noqa: E731
        assert_value(f, *arrs)
        check_grads(f, *arrs)
    M = np.eye(3) + 0.3 * randn(3, 3)
    for n in (0, 1, 2, 3, 5, 6, -1, -3):
        f = lambda x, n=n: np.linalg.matrix_power(x, n)  # noqa: E731
        assert_value(f, M)
        check_grads(f, M)
    check_grads(lambda x: np.linalg.matrix_power(x, 4), randn(2, 3, 3) * 0.5)
    with pytest.raises(TypeError, match="integer"):
        value(lambda x: np.linalg.matrix_power(x, 1.5), M)
    with pytest.raises(LinAlgError):
        value(lambda x: np.linalg.matrix_power(x, 2), randn(2, 3))


@pytest.mark.skipif(not isinstance(getattr(np, "matvec", None), np.ufunc),
                    reason="NumPy < 2.2 has no matvec/vecmat")
@given(st.data())
def test_vecdot_matvec_vecmat(data):
    ba, bb = batch_pair(data.draw)
    n, m = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
    x, y = data.draw(arrays(ba + (n,))), data.draw(arrays(bb + (n,)))
    A = data.draw(arrays(bb + (m, n)))
    At = np.swapaxes(A, -1, -2)
    for f, args in ((np.vecdot, (x, y)), (np.matvec, (A, x)), (np.vecmat, (x, At)),
                    (np.linalg.vecdot, (x, y))):
        assert_value(f, *args)
        check_grads(f, *args)
    assert_shape_rule(L.UFUNC_OPS[np.vecdot], np.vecdot(x, y), x, y)
    assert_shape_rule(L.UFUNC_OPS[np.matvec], np.matvec(A, x), A, x)
    assert_shape_rule(L.UFUNC_OPS[np.vecmat], np.vecmat(x, At), x, At)


def test_vecdot_axis():
    a, b = randn(3, 4), randn(3, 4, seed=1)
    f = lambda x, y: np.linalg.vecdot(x, y, axis=0)  # noqa: E731
    assert_value(f, a, b)
    check_grads(f, a, b)
    with pytest.raises(td.UnsupportedOperation, match="vecdot"):
        value(lambda x: np.vecdot(x, b, axis=0), a)


# ================================================================ einsum
EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("ij,jk->ki", [(2, 3), (3, 4)]),
    ("ii->", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("ii->i", [(3, 3)]),
    ("iij->j", [(2, 2, 3)]),
    ("iji->j", [(2, 3, 2)]),
    ("iii->i", [(2, 2, 2)]),
    ("ij->ji", [(2, 3)]),
    ("ij", [(2, 3)]),
    ("ji", [(2, 3)]),
    ("ij->i", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("i,i", [(3,), (3,)]),
    ("i,i->i", [(3,), (3,)]),
    ("i,j->ij", [(3,), (2,)]),
    (",i->i", [(), (3,)]),
    ("", [()]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    ("...ij,...jk->...ik", [(2, 2, 3), (3, 2)]),
    ("...ij,...jk", [(4, 1, 2, 3), (2, 3, 2)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("i...->...", [(2, 3, 4)]),
    ("...", [(2, 3)]),
    ("ij,j->i", [(2, 1), (3,)]),                # label broadcasting (size 1)
    ("ij,ij->", [(1, 3), (2, 3)]),
    ("ii,i->i", [(3, 3), (3,)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("ij,jk,kl", [(2, 3), (3, 4), (4, 2)]),
    ("i,i,i->", [(3,), (3,), (3,)]),
    ("ab,cd->abcd", [(2, 0), (3, 2)]),
    ("ij,jk->ik", [(2, 0), (0, 3)]),
    ("Ba,aA", [(2, 3), (3, 4)]),
    (" i j , j k -> i k ", [(2, 3), (3, 4)]),
]


@pytest.mark.parametrize("subs,shp", EINSUM_CASES)
def test_einsum_cases(subs, shp):
    args = [randn(*s, seed=k) for k, s in enumerate(shp)]
    f = lambda *a: np.einsum(subs, *a)  # noqa: E731
    assert_value(f, *args)
    check_grads(f, *args)
    want = np.einsum(subs, *args)
    norm = normalize_einsum(subs, shp)
    assert_shape_rule(L.EINSUM, want, *args, subscripts=norm, path=None)
    if all(s for s in shp):
        f32 = [a.astype(np.float32) for a in args]
        assert grad_dtypes(f, *f32) == [np.float32] * len(args)


def test_einsum_one_operand_at_a_time_and_replay():
    a, b, c = randn(2, 3), randn(3, 4, seed=1), randn(4, seed=2)
    f = lambda x, y, z: np.einsum("ij,jk,k->ji", x, y, z)  # noqa: E731
    check_grads(lambda x: f(x, b, c), a)
    check_grads(lambda y: f(a, y, c), b)
    check_grads(lambda z: f(a, b, z), c)
    check_replay(lambda x, y, z: np.sum(f(x, y, z) ** 2), (a, b, c), (a * 3 - 1, b ** 2,
                 c * 3), argnums=(0, 1, 2), rtol=1e-10)
    check_replay(lambda x: np.einsum("ii", x) * np.sum(np.einsum("ii->i", x) ** 2),
                 (randn(3, 3),), (randn(3, 3, seed=5),))


def test_einsum_same_operand_twice_and_layouts():
    x = randn(3, 3)
    for lay in LAYOUTS:
        y = relayout(x, lay)
        check_grads(lambda a: np.einsum("ij,ij->", a, a), y)
        check_grads(lambda a: np.einsum("ij,jk->ik", a, a.T), y)


@settings(max_examples=20)
@given(st.data())
def test_einsum_random(data):
    """Random einsums of 1-3 operands drawn from a small alphabet, implicit or explicit."""
    labels = "abcd"
    sizes = {c: data.draw(st.integers(1, 3)) for c in labels}
    nops = data.draw(st.integers(1, 3))
    terms = [data.draw(st.lists(st.sampled_from(labels), max_size=3)) for _ in range(nops)]
    used = sorted(set(c for t in terms for c in t))
    explicit = data.draw(st.booleans())
    subs = ",".join("".join(t) for t in terms)
    if explicit:
        out = data.draw(st.permutations(used))[:data.draw(st.integers(0, len(used)))]
        subs += "->" + "".join(out)
    bcast = data.draw(st.booleans())
    args = []
    for t in terms:
        shape = tuple(1 if bcast and data.draw(st.booleans()) else sizes[c] for c in t)
        # a repeated label needs equal sizes within one operand
        shape = tuple(sizes[c] if t.count(c) > 1 else n for c, n in zip(t, shape))
        args.append(data.draw(arrays(shape)))
    f = lambda *a: np.einsum(subs, *a)  # noqa: E731
    assert_value(f, *args)
    check_grads(f, *args)


def test_einsum_interleaved_and_kwargs():
    a, b = randn(2, 3), randn(3, 4, seed=1)
    f = lambda x, y: np.einsum(x, [0, 1], y, [1, 2], [0, 2])  # noqa: E731
    assert_value(f, a, b)
    check_grads(f, a, b)
    g = lambda x, y: np.einsum(x, [Ellipsis, 1], y, [1, 2])  # noqa: E731
    assert_value(g, randn(5, 2, 3), b)
    check_grads(g, randn(5, 2, 3), b)
    for opt in (True, False, "greedy", "optimal", ["einsum_path", (0, 1)]):
        check_grads(lambda x, y, o=opt: np.einsum("ij,jk->ik", x, y, optimize=o), a, b)
    check_grads(lambda x: np.einsum("ij,jk->ik", x, b, out=np.zeros((2, 4), like=x)), a)
    i32 = np.arange(6, dtype=np.int32).reshape(3, 2)
    r = value(lambda x: np.einsum("ij,jk->ik", x, i32, dtype=np.float64), b.T.copy())
    np.testing.assert_allclose(r, np.einsum("ij,jk->ik", b.T, i32))
    r = value(lambda x: np.einsum("ij->i", x, dtype=np.float32, casting="same_kind"), a)
    assert r.dtype == np.float32


def test_einsum_transpose_is_a_view():
    def f(x):
        y = x * 1.0
        v = np.einsum("ij->ji", y)
        v[0, 1] = 7.0                  # writes through to y, as in NumPy
        return y
    x = randn(3, 2)
    want = x.copy()
    np.einsum("ij->ji", want)[0, 1] = 7.0
    np.testing.assert_array_equal(value(f, x), want)
    check_grads(f, x)


def test_einsum_mixed_dtypes_and_constants():
    a = randn(2, 3, dtype=np.float32)
    b = randn(3, dtype=np.float64)
    f = lambda x: np.einsum("ij,j->i", x, b)  # noqa: E731
    assert_value(f, a)
    assert grad_dtypes(f, a) == [np.float32]
    n = np.arange(3)
    assert_value(lambda x: np.einsum("ij,j->i", x, n), a)


def test_einsum_errors():
    a = randn(2, 3)
    with pytest.raises(ValueError):
        value(lambda x: np.einsum("ij,jk", x), a)
    with pytest.raises(ValueError):
        value(lambda x: np.einsum("ijk", x), a)
    with pytest.raises(ValueError):
        value(lambda x: np.einsum("ij->k", x), a)
    with pytest.raises(ValueError):
        value(lambda x: np.einsum("ij->ii", x), a)
    with pytest.raises(ValueError):
        value(lambda x: np.einsum("ij,ij->", x, randn(3, 3)), a)
    with pytest.raises(ValueError, match="ellipsis"):
        value(lambda x: np.einsum("...j->j", x), randn(2, 2, 3))
    with pytest.raises(ValueError):
        value(lambda x: np.einsum("i.j", x), a)
    with pytest.raises(td.UnsupportedOperation, match="einsum"):
        value(lambda x: np.einsum("ij->ij", x, order="F"), a)
    with pytest.raises(TypeError, match="cast"):
        value(lambda x: np.einsum("ij->i", x, dtype=np.float32), a)


def test_einsum_second_order():
    a, b = randn(3, 3), randn(3, 2, seed=1)
    f = lambda x: td.grad(lambda y: np.sum(np.einsum("ij,jk->ik", y, b) ** 2  # noqa: E731
                                           + np.einsum("ii->", y) ** 3))(x)
    check_grads(f, a)


# ================================================================ solve
@settings(max_examples=20)
@given(st.data())
def test_solve(data):
    ba, bb = batch_pair(data.draw)
    n = data.draw(st.integers(1, 3))
    a = data.draw(square(ba, n))
    vec = data.draw(st.booleans())
    b = data.draw(arrays((n,) if vec else bb + (n, data.draw(st.integers(0, 3)))))
    assert_value(np.linalg.solve, a, b, rtol=1e-9)
    assert_shape_rule(L.SOLVE, np.linalg.solve(a, b), a, b)
    check_grads(np.linalg.solve, a, b)
    check_grads(lambda x: np.linalg.solve(x, b), a)
    check_grads(lambda y: np.linalg.solve(a, y), b)


def test_solve_float32_and_replay():
    a = (randn(2, 3, 3) + 4 * np.eye(3)).astype(np.float32)
    b = randn(3, dtype=np.float32)
    assert grad_dtypes(np.linalg.solve, a, b) == [np.float32, np.float32]
    assert value(np.linalg.solve, a, b).dtype == np.float32
    assert shape_rule(L.SOLVE, a, b.astype(np.float64)).dtype == np.float64
    f = lambda x, y: np.sum(np.linalg.solve(x, y) ** 2)  # noqa: E731
    a64, b64 = a.astype(np.float64), randn(2, 3, 2)
    check_replay(f, (a64, b64), (a64 + 0.1 * np.eye(3), b64 * 2), argnums=(0, 1), rtol=1e-9)


SINGULAR = np.array([[1.0, 2.0], [2.0, 4.0]])


@pytest.mark.parametrize("fn", [lambda a: np.linalg.solve(a, np.ones(2)),
                                lambda a: np.linalg.solve(a, np.ones((2, 3))),
                                np.linalg.inv],
                         ids=["solve-vector", "solve-matrix", "inv"])
def test_singular_raises_when_recording_and_on_replay(fn):
    f = lambda a: np.sum(fn(a) ** 2)  # noqa: E731
    with pytest.raises(LinAlgError):
        fn(SINGULAR)                              # NumPy itself
    with pytest.raises(LinAlgError):
        td.grad(f)(SINGULAR)                      # recording
    with pytest.raises(LinAlgError):
        td.grad(f)(np.stack([np.eye(2), SINGULAR]))   # one singular matrix in a batch
    rec = td.record(f, np.eye(2) * 2.0)
    v, g = rec.value_and_grad(np.eye(2) * 3.0)      # fine on a regular input
    assert np.isfinite(v) and np.all(np.isfinite(g))
    with pytest.raises(LinAlgError):
        rec.value_and_grad(SINGULAR)              # replay of value and gradient
    with pytest.raises(LinAlgError):
        rec(SINGULAR)                             # replay of the primal
    v2, _ = rec.value_and_grad(np.eye(2) * 3.0)     # the tape is still usable
    np.testing.assert_allclose(v2, v)


def test_solve_errors():
    with pytest.raises(LinAlgError):
        value(np.linalg.solve, randn(2, 3), randn(2))
    with pytest.raises(ValueError):
        value(np.linalg.solve, np.eye(3), randn(2))
    with pytest.raises(td.UnsupportedOperation, match="solve"):
        value(lambda a: np.linalg.solve(a, np.ones(2, complex)), np.eye(2))


# ================================================================ inv, det, slogdet
@given(st.data())
def test_inv_det_slogdet(data):
    batch = data.draw(shapes(0, 2, max_side=2))
    a = data.draw(square(batch, min_n=0))
    for f in (np.linalg.inv, np.linalg.det, lambda x: np.linalg.slogdet(x)[1],
              lambda x: np.linalg.slogdet(x).logabsdet):
        assert_value(f, a, rtol=1e-9)
        check_grads(f, a)
    s = value(lambda x: np.linalg.slogdet(x).sign, a)
    np.testing.assert_array_equal(s, np.linalg.slogdet(a).sign)
    assert_shape_rule(L.INV, np.linalg.inv(a), a)
    assert_shape_rule(L.DET, np.linalg.det(a), a)
    got = L.SLOGDET.shape(aval_of(a))
    assert [tuple(g.shape) for g in got] == [np.shape(r) for r in np.linalg.slogdet(a)]


def test_slogdet_result():
    a = np.array([[0.0, 2.0], [3.0, 1.0]])    # negative determinant

    def f(x):
        r = np.linalg.slogdet(x)
        assert isinstance(r, tuple) and r._fields == ("sign", "logabsdet")
        sign, logdet = r
        if td.is_tracked(x):
            assert td.is_tracked(sign) and not sign.is_active
            assert logdet.is_active
        return sign * np.exp(logdet)
    np.testing.assert_allclose(value(f, a), np.linalg.det(a))
    check_grads(f, a)
    np.testing.assert_allclose(td.grad(lambda x: np.sum(f(x)))(a),
                               td.grad(np.linalg.det)(a), rtol=1e-12)
    # both halves from one instruction (one LU), the sign recorded as data
    assert str(td.record(f, a)).count("slogdet(") == 1


def test_inv_det_float32_and_replay():
    a = (randn(3, 3) + 4 * np.eye(3)).astype(np.float32)
    for f in (np.linalg.inv, np.linalg.det, lambda x: np.linalg.slogdet(x)[1]):
        assert grad_dtypes(f, a) == [np.float32]
        assert value(f, a).dtype == np.float32
    f = lambda x: np.linalg.det(x) + np.sum(np.linalg.inv(x)) + np.linalg.slogdet(x)[1]  # noqa
    a64 = a.astype(np.float64)
    check_replay(f, (a64,), (a64.T + 0.5 * np.eye(3),), rtol=1e-9)


def test_det_singular():
    """The value is fine; the derivative needs inv(a) and raises (documented)."""
    assert value(np.linalg.det, SINGULAR) == 0.0
    with pytest.raises(LinAlgError):
        td.grad(np.linalg.det)(SINGULAR)
    s, l = value(np.linalg.slogdet, SINGULAR)
    assert s == 0 and l == -np.inf


def test_inv_second_order():
    a = randn(3, 3) + 3 * np.eye(3)
    check_grads(lambda x: td.grad(lambda y: np.sum(np.linalg.inv(y)) + np.linalg.det(y))(x), a)
    check_grads(lambda x: td.grad(lambda y: np.sum(np.linalg.solve(y, np.ones(3)) ** 2))(x), a)


# ================================================================ cholesky
@given(st.data())
def test_cholesky(data):
    batch = data.draw(shapes(0, 2, max_side=2))
    a = data.draw(spd(batch))
    upper = data.draw(st.booleans())
    f = lambda x: np.linalg.cholesky(x, upper=upper)  # noqa: E731
    assert_value(f, a, rtol=1e-9)
    assert_shape_rule(L.CHOLESKY, f(a), a, upper=upper)
    # random (non-symmetric) directions: NumPy reads only one triangle, and so do the rules
    check_grads(f, a)


def test_cholesky_reads_one_triangle():
    a = np.array([[4.0, 1.0], [1.0, 3.0]])
    g_lo = td.grad(lambda x: np.sum(np.linalg.cholesky(x) ** 2))(a)
    assert g_lo[0, 1] == 0.0
    g_up = td.grad(lambda x: np.sum(np.linalg.cholesky(x, upper=True) ** 2))(a)
    assert g_up[1, 0] == 0.0


def test_cholesky_float32_replay_errors():
    a = (randn(3, 3) @ randn(3, 3).T + 3 * np.eye(3)).astype(np.float32)
    assert grad_dtypes(np.linalg.cholesky, a) == [np.float32]
    a64 = a.astype(np.float64)
    check_replay(lambda x: np.sum(np.linalg.cholesky(x) ** 3), (a64,), (a64 + np.eye(3),),
                 rtol=1e-9)
    with pytest.raises(LinAlgError):
        td.grad(lambda x: np.sum(np.linalg.cholesky(x)))(-np.eye(2))
    rec = td.record(lambda x: np.sum(np.linalg.cholesky(x)), np.eye(2))
    with pytest.raises(LinAlgError):
        rec.value_and_grad(-np.eye(2))
    check_grads(lambda x: td.grad(lambda y: np.sum(np.linalg.cholesky(y) ** 2))(x), a64)


# ================================================================ solve_triangular
def _tri_solve(lower):
    return lambda a, b: L.SOLVE_TRIANGULAR.bind(a, b, lower=lower)


@given(st.data())
def test_solve_triangular(data):
    (ba, bb) = batch_pair(data.draw, max_dims=2)
    a = data.draw(square(batch=ba))
    n, k = a.shape[-1], data.draw(st.integers(1, 3))
    b = data.draw(arrays((n,) if data.draw(st.booleans()) else bb + (n, k)))   # solve's shapes
    lower = data.draw(st.booleans())
    f = _tri_solve(lower)
    tri = np.tril(a) if lower else np.triu(a)
    np.testing.assert_allclose(value(f, a, b), np.linalg.solve(tri, b), rtol=1e-10, atol=1e-12)
    assert_shape_rule(L.SOLVE_TRIANGULAR, np.linalg.solve(tri, b), a, b, lower=lower)
    check_grads(f, a, b)


def test_solve_triangular_reads_one_triangle_and_raises_when_singular():
    a, b = randn(3, 3) + 6 * np.eye(3), randn(3, 2, seed=1)
    ga = td.grad(lambda x: np.sum(_tri_solve(True)(x, b) ** 2))(a)
    assert np.all(ga[np.triu_indices(3, 1)] == 0.0)
    ga = td.grad(lambda x: np.sum(_tri_solve(False)(x, b) ** 2))(a)
    assert np.all(ga[np.tril_indices(3, -1)] == 0.0)
    with pytest.raises(LinAlgError):
        value(_tri_solve(True), a - np.diag(np.diag(a)), b)      # zero diagonal
    empty = value(_tri_solve(True), np.ones((0, 3, 3)), np.ones((0, 3, 2)))
    assert empty.shape == (0, 3, 2)
    assert value(_tri_solve(True), np.ones((0, 3, 3)), np.ones(3)).shape == (0, 3)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    assert value(_tri_solve(True), a32, b32).dtype == np.float32
    assert grad_dtypes(_tri_solve(True), a32, b32) == [np.float32, np.float32]


def test_a_solve_with_a_cholesky_factor_records_what_it_replays():
    # the substitution is chosen while recording, so a branch on the solution
    # sees the values every replay computes (it once was rewritten afterwards)
    r = np.random.default_rng(5)
    B = r.normal(size=(40, 40))
    A, b = B @ B.T + 40 * np.eye(40), r.normal(size=40)

    def f(A, b):
        L = np.linalg.cholesky(A)
        return np.linalg.solve(L, b), np.linalg.solve(L.T, b), np.linalg.solve(L @ L.T, b)
    recorded = td.vjp(f, A, b)[0]
    rec = td.record(f, A, b)
    for got, want in zip(rec(A, b), recorded):
        np.testing.assert_array_equal(got, want)
    text = str(rec)
    assert text.count("solve_triangular(") == 2 and text.count(" solve(") == 1
    L = np.linalg.cholesky(A)
    np.testing.assert_allclose(recorded[0], np.linalg.solve(L, b), rtol=1e-12)


def test_solve_triangular_second_order():
    a, b = randn(3, 3) + 6 * np.eye(3), randn(3, 2, seed=1)
    check_grads(lambda x: td.grad(lambda y: np.sum(_tri_solve(True)(y, b) ** 3))(x), a)
    check_grads(lambda y: td.grad(lambda x: np.sum(_tri_solve(False)(a, x) ** 3))(y), b)


# ================================================================ eigh
@st.composite
def separated(draw, batch=(), max_n=4, dtype=np.float64):
    """Random symmetric matrices whose eigenvalues are at least 0.5 apart (the
    eigenvectors' derivative divides by the gaps)."""
    n = draw(st.integers(1, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    q, _ = np.linalg.qr(rng.normal(size=batch + (n, n)))
    w = np.cumsum(rng.uniform(0.5, 2.0, size=batch + (n,)), axis=-1) - n
    a = (q * w[..., None, :]) @ np.swapaxes(q, -1, -2)
    return relayout(a.astype(dtype), draw(st.sampled_from(LAYOUTS)))


def _eig_loss(uplo, c):
    def f(a):
        w, V = np.linalg.eigh(a, UPLO=uplo)
        # sign-invariant in each eigenvector: a matrix function and squares
        return np.sum((V * np.tanh(w)[..., None, :]) @ np.swapaxes(V, -1, -2) * c) \
            + np.sum(V ** 2 * c) + np.sum(w * w)
    return f


@given(st.data())
def test_eigh(data):
    batch = data.draw(shapes(0, 2, max_side=2))
    a = data.draw(separated(batch))
    uplo = data.draw(st.sampled_from(["L", "U"]))
    c = np.random.default_rng(1).normal(size=a.shape)
    w, V = value(lambda x: np.linalg.eigh(x, UPLO=uplo), a)
    w0, V0 = np.linalg.eigh(a, UPLO=uplo)
    # eigvalsh is NumPy's (LAPACK without eigenvectors), not eigh's first output
    np.testing.assert_array_equal(value(lambda x: np.linalg.eigvalsh(x, UPLO=uplo), a),
                                  np.linalg.eigvalsh(a, UPLO=uplo))
    np.testing.assert_allclose(w, w0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.abs(V), np.abs(V0), rtol=1e-10, atol=1e-12)
    got = L.EIGH.shape(aval_of(a), UPLO=uplo)
    assert [tuple(g.shape) for g in got] == [w0.shape, V0.shape]
    # random (non-symmetric) directions: NumPy reads only one triangle, and so do the rules
    check_grads(_eig_loss(uplo, c), a)
    check_grads(lambda x: np.sum(np.linalg.eigvalsh(x, UPLO=uplo) ** 3), a)


def test_eigh_reads_one_triangle_and_keeps_nothing_else():
    a = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 5.0]])
    g_lo = td.grad(_eig_loss("L", np.ones((3, 3))))(a)
    assert np.all(g_lo[np.triu_indices(3, 1)] == 0.0)
    g_up = td.grad(_eig_loss("U", np.ones((3, 3))))(a)
    assert np.all(g_up[np.tril_indices(3, -1)] == 0.0)
    res = value(np.linalg.eigh, a)
    assert type(res).__name__ == "EighResult" and res.eigenvalues.shape == (3,)
    with pytest.raises(LinAlgError):
        td.grad(lambda x: np.sum(np.linalg.eigvalsh(x)))(np.ones((2, 3)))
    with pytest.raises(ValueError, match="UPLO"):
        td.grad(lambda x: np.sum(np.linalg.eigvalsh(x, UPLO="X")))(a)


def test_eigh_repeated_eigenvalues_and_second_order():
    # eigenvalues only: finite at a repeated eigenvalue (the gaps are not used)
    g = td.grad(lambda x: np.sum(np.linalg.eigvalsh(x) ** 2))(np.eye(3))
    np.testing.assert_allclose(g, 2 * np.eye(3), atol=1e-14)
    a = np.diag([1.0, 2.0, 4.0]) + 0.1
    check_grads(lambda x: td.grad(_eig_loss("L", np.ones((3, 3))))(x)[1, 0], a)
    a32 = a.astype(np.float32)
    assert grad_dtypes(lambda x: np.linalg.eigvalsh(x), a32) == [np.float32]


def test_eigh_compiled_agrees_with_numpy():
    # LAPACK syevd called as NumPy calls it: the same values and eigenvector signs
    from tapediff.runtime import compiler_available
    if not compiler_available():
        pytest.skip("no working C compiler")
    a = np.diag([1.0, 2.0, 4.0]) + 0.1
    rf = td.record(_eig_loss("L", np.ones((3, 3))), a)
    with warnings.catch_warnings():
        warnings.simplefilter("error", td.CompileWarning)
        ct = rf.compile()
        v, g = ct.value_and_grad(a + 0.01)
        w, V = td.record(np.linalg.eigh, a).compile()(a + 0.01)
    v0, g0 = rf.value_and_grad(a + 0.01)
    assert abs(v - v0) <= 1e-13 * abs(v0)
    np.testing.assert_allclose(g, g0, rtol=1e-12, atol=1e-14)
    w0, V0 = np.linalg.eigh(a + 0.01)
    np.testing.assert_allclose(w, w0, rtol=1e-14)
    np.testing.assert_allclose(V, V0, rtol=1e-12, atol=1e-14)


def test_compiled_lapack_is_numpys_double_computation():
    # NumPy computes float32 linear algebra in double and casts the results,
    # and factors the matrix itself (not its transpose): compiled code too,
    # so an ill-conditioned float32 solve and an exactly singular float64
    # matrix behave as in NumPy
    from tapediff.runtime import compiler_available
    if not compiler_available():
        pytest.skip("no working C compiler")
    A = np.array([[3.0, 1.0], [1.0, 1.0 / 3.0]], np.float32)
    b = np.array([1.0, 2.0], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", td.CompileWarning)
        ct = td.record(lambda a, c: np.linalg.solve(a, c), A, b).compile()
        np.testing.assert_array_equal(ct(A, b), np.linalg.solve(A, b))
        U = td.record(lambda a: np.linalg.svd(a)[0], A).compile()(A)
        np.testing.assert_array_equal(U, np.linalg.svd(A)[0])
        rng = np.random.default_rng(3)
        for _ in range(20):
            M = rng.normal(size=(4, 4))
            M[2] = M[0]                       # two equal rows: exactly singular for NumPy
            cd = td.record(lambda a: np.linalg.det(a) * 1.0, M).compile()
            assert cd(M) == np.linalg.det(M)
            ci = td.record(lambda a: np.linalg.inv(a), np.eye(4)).compile()
            try:
                want = np.linalg.inv(M)
            except np.linalg.LinAlgError:
                with pytest.raises(np.linalg.LinAlgError):
                    ci(M)
            else:
                np.testing.assert_array_equal(ci(M), want)
        with pytest.raises(np.linalg.LinAlgError):      # factored before any right-hand side
            td.record(lambda a, c: np.linalg.solve(a, c), np.eye(2),
                      np.ones((2, 0))).compile()(np.zeros((2, 2)), np.ones((2, 0)))


# ================================================================ norm
VECTOR_ORDS = [None, 2, 1, 0, 3, 0.5, -1, -2.5]
MATRIX_ORDS = [None, "fro", 1, -1]


@given(st.data())
def test_norm_vector(data):
    shape = data.draw(shapes(1, 3, min_side=1, max_side=3))
    x = data.draw(arrays(shape, avoid=0.1))
    ord_ = data.draw(st.sampled_from(VECTOR_ORDS))
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    if axis is None and len(shape) > 1 and ord_ is not None:
        axis = -1
    keep = data.draw(st.booleans())
    f = lambda a: np.linalg.norm(a, ord_, axis, keep)  # noqa: E731
    assert_value(f, x)
    if ord_ != 0:
        check_grads(f, x)


@given(st.data())
def test_norm_matrix(data):
    shape = data.draw(shapes(2, 3, min_side=1, max_side=3))
    x = data.draw(arrays(shape, avoid=0.1))
    ord_ = data.draw(st.sampled_from(MATRIX_ORDS))
    axes = data.draw(st.permutations(range(len(shape))))[:2]
    neg = data.draw(st.booleans())
    axes = tuple(a - len(shape) if neg else a for a in axes)
    keep = data.draw(st.booleans())
    f = lambda a: np.linalg.norm(a, ord_, axes, keep)  # noqa: E731
    assert_value(f, x)
    check_grads(f, x)


@pytest.mark.parametrize("ord_", [np.inf, -np.inf])
def test_norm_inf(ord_):
    x = np.array([[1.0, -3.0, 2.0], [0.5, 0.25, -4.0]])
    for axis in (0, 1, -1):
        f = lambda a: np.linalg.norm(a, ord_, axis)  # noqa: E731
        assert_value(f, x)
        check_grads(f, x)
    f = lambda a: np.linalg.norm(a, ord_)  # noqa: E731
    assert_value(f, x)
    check_grads(f, x)
    f = lambda a: np.linalg.norm(a, ord_, (1, 0), keepdims=True)  # noqa: E731
    assert_value(f, x)
    check_grads(f, x)
    if ord_ > 0:   # NumPy's initial=0: the max over an empty axis is 0
        assert_value(lambda a: np.linalg.norm(a, ord_, axis=1), np.ones((2, 0)))


def test_norm_defaults_and_flattening():
    for shape in [(3,), (2, 3), (2, 2, 2), (1,)]:
        x = randn(*shape)
        for keep in (False, True):
            assert_value(lambda a: np.linalg.norm(a, keepdims=keep), x)
            check_grads(lambda a: np.linalg.norm(a, keepdims=keep), x)
    assert_value(lambda a: np.linalg.norm(a, "fro"), randn(2, 3))
    assert_value(lambda a: np.linalg.norm(a, 2), randn(4))
    assert_value(np.linalg.norm, np.arange(5))        # ints: computed in float64


def test_norm_gradient_at_zero_is_zero():
    """Documented choice: 0 (a subgradient), where JAX returns NaN."""
    for f in (np.linalg.norm, lambda a: np.linalg.norm(a, axis=0),
              lambda a: np.linalg.norm(a, "fro", axis=(0, 1)),
              lambda a: np.linalg.norm(a, 1, axis=0)):
        g = td.grad(lambda a: np.sum(f(a)))(np.zeros((3, 2)))
        np.testing.assert_array_equal(g, 0.0)
    g = td.grad(lambda a: np.linalg.norm(a))(np.array([0.0, 3.0, 4.0]))
    np.testing.assert_allclose(g, [0.0, 0.6, 0.8])
    assert np.isnan(value(np.linalg.norm, np.array([np.nan, 1.0])))


def test_norm_float32_replay_errors():
    x = randn(3, 4, dtype=np.float32)
    for f in (np.linalg.norm, lambda a: np.linalg.norm(a, 3, axis=0),
              lambda a: np.linalg.norm(a, "fro", axis=(0, 1))):
        assert grad_dtypes(f, x) == [np.float32]
        assert value(f, x).dtype == np.float32
    x64 = x.astype(np.float64)
    check_replay(lambda a: np.linalg.norm(a, axis=1).sum(), (x64,), (x64 * 3,), rtol=1e-12)
    for ord_ in (2, -2, "nuc"):            # through the singular values
        f = lambda a, o=ord_: np.linalg.norm(a, o, keepdims=True)  # noqa: E731
        assert_value(f, x64)
        check_grads(f, x64)
        assert value(f, x).dtype == np.float32
    with pytest.raises(ValueError, match="Invalid norm order"):
        value(lambda a: np.linalg.norm(a, "fro"), randn(3))
    with pytest.raises(ValueError, match="Invalid norm order for matrices"):
        value(lambda a: np.linalg.norm(a, 3), x64)
    with pytest.raises(ValueError, match="Improper number"):
        value(lambda a: np.linalg.norm(a, 1), randn(2, 2, 2))
    with pytest.raises(ValueError, match="Duplicate axes"):
        value(lambda a: np.linalg.norm(a, axis=(1, -1)), x64)


def test_vector_and_matrix_norm():
    x = randn(2, 3, 4)
    for kw in ({}, {"axis": 1}, {"axis": (0, 2)}, {"axis": (2, 0), "keepdims": True},
               {"ord": 1, "axis": -1}, {"ord": 3}, {"keepdims": True}):
        f = lambda a, kw=kw: np.linalg.vector_norm(a, **kw)  # noqa: E731
        assert_value(f, x)
        check_grads(f, x)
    for kw in ({}, {"keepdims": True}):
        f = lambda a, kw=kw: np.linalg.matrix_norm(a, **kw)  # noqa: E731
        assert_value(f, x)
        check_grads(f, x)


# ================================================================ svd, pinv
@st.composite
def spread(draw, batch=(), max_side=4, dtype=np.float64):
    """Random matrices whose singular values are at least 0.5 apart and at
    least 0.5 (the singular vectors' derivative divides by s_j^2 - s_i^2,
    and, for a rectangular matrix, by s)."""
    m, n = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    k = min(m, n)
    u, _ = np.linalg.qr(rng.normal(size=batch + (m, k)))
    v, _ = np.linalg.qr(rng.normal(size=batch + (n, k)))
    s = np.cumsum(rng.uniform(0.5, 2.0, size=batch + (k,)), axis=-1)[..., ::-1]
    a = (u * s[..., None, :]) @ np.swapaxes(v, -1, -2)
    return relayout(a.astype(dtype), draw(st.sampled_from(LAYOUTS)))


def _svd_loss(c):
    def f(a):
        U, s, Vh = np.linalg.svd(a, full_matrices=False)
        # sign-invariant in each pair of singular vectors: a matrix function
        # and squares of the vectors
        return (np.sum((U * np.tanh(s)[..., None, :]) @ Vh * c) + np.sum(U ** 2 * c[..., :, :1])
                + np.sum(Vh ** 2 * c[..., :1, :]) + np.sum(s * s))
    return f


@given(st.data())
@settings(max_examples=40)
def test_svd(data):
    batch = data.draw(shapes(0, 2, max_side=2))
    a = data.draw(spread(batch))
    c = np.random.default_rng(1).normal(size=a.shape)
    U, s, Vh = value(lambda x: np.linalg.svd(x, full_matrices=False), a)
    U0, s0, Vh0 = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_array_equal(s, s0)              # NumPy's own call
    np.testing.assert_array_equal(U, U0)
    np.testing.assert_array_equal(Vh, Vh0)
    # svdvals is NumPy's (gesdd without vectors), not svd's second output
    np.testing.assert_array_equal(value(lambda x: np.linalg.svd(x, compute_uv=False), a),
                                  np.linalg.svd(a, compute_uv=False))
    got = L.SVD.shape(aval_of(a), full_matrices=False)
    assert [tuple(g.shape) for g in got] == [U0.shape, s0.shape, Vh0.shape]
    check_grads(_svd_loss(c), a)
    check_grads(lambda x: np.sum(np.linalg.svd(x, compute_uv=False) ** 3), a)


@given(st.data())
@settings(max_examples=40)
def test_pinv_and_svd_norms(data):
    batch = data.draw(shapes(0, 2, max_side=2))
    a = data.draw(spread(batch))
    c = np.random.default_rng(2).normal(size=a.shape[:-2] + a.shape[-2:][::-1])
    assert_value(np.linalg.pinv, a)
    check_grads(lambda x: np.sum(np.linalg.pinv(x) * c), a)
    for ord_ in (2, -2, "nuc"):
        f = lambda x, o=ord_: np.linalg.norm(x, o, axis=(-2, -1))  # noqa: E731
        assert_value(f, a)
        check_grads(f, a)
    assert_value(np.linalg.cond, a)
    check_grads(np.linalg.cond, a)


def test_svd_misc():
    a = np.diag([3.0, 2.0, 1.0]) + 0.1
    # a square full SVD is the reduced one; a rectangular full one has no derivative
    check_grads(_svd_loss(np.ones((3, 3))), a)
    res = value(np.linalg.svd, a)
    assert type(res).__name__ == "SVDResult" and res.S.shape == (3,)
    with pytest.raises(td.UnsupportedOperation, match="full_matrices=False"):
        td.grad(lambda x: np.sum(np.linalg.svd(x)[0]))(np.ones((3, 2)))
    # singular values alone: finite at repeated ones; pinv's rules do not divide by gaps
    np.testing.assert_allclose(td.grad(lambda x: np.sum(np.linalg.svdvals(x)))(np.eye(3)),
                               np.eye(3), atol=1e-14)
    np.testing.assert_allclose(td.grad(lambda x: np.sum(np.linalg.pinv(x) ** 2))(np.eye(3)),
                               -2 * np.eye(3), atol=1e-14)
    check_grads(lambda x: np.sum(np.linalg.pinv(x) ** 2), np.eye(3) + 0.01)
    # NumPy's hermitian route (eigh) and the cutoffs
    h = a + a.T
    for k in range(3):
        assert_value(lambda x, k=k: np.linalg.svd(x, hermitian=True)[k], h)
    assert_value(lambda x: np.linalg.svd(x, compute_uv=False, hermitian=True), h)
    check_grads(lambda x: np.sum(np.linalg.svd(x, hermitian=True)[1] ** 2), h)
    check_grads(lambda x: np.sum(np.linalg.pinv(x, hermitian=True) ** 2), h)
    sing = np.diag([1.0, 1e-17, 2.0])
    assert_value(np.linalg.pinv, sing)
    assert_value(lambda x: np.linalg.pinv(x, rtol=None), sing)
    assert_value(lambda x: np.linalg.pinv(x, rcond=0.6), sing)
    assert value(np.linalg.matrix_rank, sing) == 2
    assert value(lambda x: np.linalg.matrix_rank(x, tol=1.5), sing) == 1
    assert value(np.linalg.cond, sing) == np.linalg.cond(sing)
    assert value(lambda x: np.linalg.cond(x, 1), a) == np.linalg.cond(a, 1)
    assert grad_dtypes(lambda x: np.linalg.svd(x, compute_uv=False), a.astype(np.float32)) == \
        [np.float32]
    with pytest.raises(td.UnsupportedOperation, match="rcond"):
        value(lambda x: np.linalg.pinv(x, rcond=np.array([0.1])), a)
    with pytest.raises(ValueError, match="both set"):
        value(lambda x: np.linalg.pinv(x, rcond=0.1, rtol=0.1), a)
    with pytest.raises(np.linalg.LinAlgError):
        value(np.linalg.svd, np.ones(3))
    # NumPy's conventions: cond of a singular matrix is inf for every p (its
    # inverse is taken ignoring errors), of an empty one an error; a zero
    # eigenvalue keeps its sign in the hermitian route
    stack = np.stack([np.zeros((2, 2)), np.eye(2) * 2.0])
    for p in (None, 1, -1, np.inf, "fro"):
        np.testing.assert_array_equal(value(lambda x, p=p: np.linalg.cond(x, p), stack),
                                      np.linalg.cond(stack, p))
    check_grads(lambda x: np.sum(np.linalg.cond(x, "fro")), a)
    with pytest.raises(np.linalg.LinAlgError, match="empty"):
        value(np.linalg.cond, np.zeros((0, 3)))
    z = np.array([[1.0, 2.0], [2.0, 4.0]])
    for k in range(3):
        assert_value(lambda x, k=k: np.linalg.svd(x, hermitian=True)[k], z)
    check_replay(lambda x: np.sum(np.linalg.svd(x, full_matrices=False)[1]), (a,), (a * 2,))


# ================================================================ qr
def _qr_loss(c):
    def f(a):
        Q, R = np.linalg.qr(a)
        return (np.sum(Q * np.arange(Q.shape[-1])) + np.sum(R ** 2 * np.arange(R.shape[-1]))
                + np.sum(np.tanh(Q @ R) * c))
    return f


@given(st.data())
@settings(max_examples=40)
def test_qr(data):
    batch = data.draw(shapes(0, 2, max_side=2))
    a = data.draw(spread(batch))               # full rank: R's square block invertible
    c = np.random.default_rng(4).normal(size=a.shape)
    for k in range(2):
        assert_value(lambda x, k=k: np.linalg.qr(x)[k], a, rtol=0, atol=0)
    assert_value(lambda x: np.linalg.qr(x, mode="r"), a, rtol=0, atol=0)
    assert_value(lambda x: np.linalg.qr(x, mode="complete")[0], a, rtol=0, atol=0)
    got = L.QR.shape(aval_of(a), mode="reduced")
    assert [tuple(g.shape) for g in got] == [x.shape for x in np.linalg.qr(a)]
    check_grads(_qr_loss(c), a)          # tall, square and wide
    check_grads(lambda x: np.sum(np.linalg.qr(x, mode="r") ** 3), a)


def test_qr_misc():
    r = np.random.default_rng(5)
    a = r.normal(size=(4, 2))
    res = value(np.linalg.qr, a)
    assert type(res).__name__ == "QRResult"
    # complete: a square Q, or a wide matrix's, has a derivative; a tall one's not
    check_grads(lambda x: np.sum(np.linalg.qr(x, mode="complete")[0] ** 2 * np.arange(3)),
                r.normal(size=(3, 3)))
    check_grads(lambda x: np.sum(np.linalg.qr(x, mode="complete")[1] ** 3), a.T)
    with pytest.raises(td.UnsupportedOperation, match="mode='reduced'"):
        td.grad(lambda x: np.sum(np.linalg.qr(x, mode="complete")[0]))(a)
    with pytest.raises(td.UnsupportedOperation, match="raw"):
        value(lambda x: np.linalg.qr(x, mode="raw"), a)
    with pytest.raises(ValueError, match="mode"):
        value(lambda x: np.linalg.qr(x, mode="economic!"), a)
    # second order, float32, replay
    check_grads(lambda x: td.grad(lambda y: np.sum(np.linalg.qr(y)[1] ** 3))(x)[0, 1], a)
    assert grad_dtypes(lambda x: np.linalg.qr(x)[1], a.astype(np.float32)) == [np.float32]
    check_replay(lambda x: np.sum(np.linalg.qr(x)[1] ** 2), (a,), (a * 2 + 1,))


# ================================================================ lstsq
@given(st.data())
@settings(max_examples=30)
def test_lstsq(data):
    a = data.draw(spread())
    m, n = a.shape
    k = data.draw(st.sampled_from([None, 1, 2]))
    b = np.random.default_rng(6).normal(size=(m,) if k is None else (m, k))
    x0, res0, rank0, s0 = np.linalg.lstsq(a, b)
    # pinv(a) @ b, the minimum-norm solution gelsd computes: equal up to rounding
    assert_value(lambda A, B: np.linalg.lstsq(A, B)[0], a, b, rtol=1e-10, atol=1e-12)
    assert_value(lambda A, B: np.linalg.lstsq(A, B)[1], a, b, rtol=1e-10, atol=1e-12)
    assert_value(lambda A, B: np.linalg.lstsq(A, B)[3], a, b)
    rank = value(lambda A, B: np.linalg.lstsq(A, B)[2], a, b)
    assert int(rank) == rank0 and np.asarray(rank).dtype == np.asarray(rank0).dtype  # int32
    check_grads(lambda A, B: np.sum(np.linalg.lstsq(A, B)[0] ** 2)
                + np.sum(np.linalg.lstsq(A, B)[1]), a, b)


def test_lstsq_misc():
    r = np.random.default_rng(7)
    a = np.outer(r.normal(size=5), r.normal(size=3))         # rank 1: no residuals
    b = r.normal(size=5)
    assert_value(lambda A: np.linalg.lstsq(A, b)[0], a, rtol=1e-10, atol=1e-12)
    assert value(lambda A: np.linalg.lstsq(A, b)[1], a).shape == (0,)
    assert_value(lambda A: np.linalg.lstsq(A, b, rcond=0.5)[0], r.normal(size=(5, 3)),
                 rtol=1e-10, atol=1e-12)
    # the residuals' shape follows the rank: a replay with another rank re-records
    f = lambda A: np.sum(np.linalg.lstsq(A, b)[1]) + np.sum(np.linalg.lstsq(A, b)[0])  # noqa: E731
    rf = td.record(f, r.normal(size=(5, 3)))
    full = r.normal(size=(5, 3))
    assert abs(rf(full) - f(full)) <= 1e-12 * abs(f(full))
    assert abs(rf(a) - f(a)) <= 1e-12 * abs(f(a))
    with pytest.raises(np.linalg.LinAlgError, match="Incompatible"):
        value(lambda A: np.linalg.lstsq(A, np.ones(4)), a)
    with pytest.raises(np.linalg.LinAlgError, match="two-dimensional"):
        value(lambda A: np.linalg.lstsq(A, b), np.ones(5))


# ================================================================ unsupported
@pytest.mark.parametrize("name", ["eig", "eigvals"])
def test_unsupported_decompositions(name):
    f = getattr(np.linalg, name)
    args = (np.eye(2),)
    with pytest.raises(td.UnsupportedOperation, match=f"np.linalg.{name}"):
        td.grad(lambda a: np.sum(f(a, *args[1:])[0]))(args[0])



def test_array_api_linalg_diagonal_trace_matrix_transpose():
    a = np.arange(24.0).reshape(2, 3, 4) * 0.5 - 3
    for f in (np.linalg.diagonal, lambda x: np.linalg.diagonal(x, offset=1),
              lambda x: np.linalg.trace(x, offset=-1), lambda x: np.linalg.trace(x, dtype=np.float32),
              np.linalg.matrix_transpose, lambda x: np.matrix_transpose(x[0])):
        got, want = td.vjp(f, a)[0], f(a)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        if want.dtype == np.float64:           # (float32: finite differences too coarse)
            check_grads(f, a)
    with pytest.raises(ValueError, match="at least 2-dimensional"):
        td.vjp(np.linalg.matrix_transpose, a[0, 0])
