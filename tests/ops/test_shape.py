"""Shape manipulation: values, derivatives, shape rules, views, replay and errors.

Every op is compared with plain NumPy on the same inputs (random shapes with
size-0 and size-1 axes, random memory layouts), its derivatives are checked
with :func:`tapediff.testing.check_grads`, and writes through the views it
returns must reach the base exactly as in NumPy.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapediff as td
from tapediff import UnsupportedOperation
from tapediff.ops import shape as S
from tapediff.ops.registry import aval_of
from tapediff.testing import check_grads, check_replay
from tests.strategies import LAYOUTS, arrays, relayout, shapes


# ---------------------------------------------------------------- helpers
def primal(f, *args):
    """tapediff's value of ``f(*args)`` (recorded, then replayed by the interpreter)."""
    return td.vjp(f, *args)[0]


def _leaves(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def assert_same(got, want):
    """Same structure, shapes, dtypes and values."""
    assert type(got) is type(want) or not isinstance(want, (list, tuple)), (type(got), type(want))
    g, w = _leaves(got), _leaves(want)
    assert len(g) == len(w)
    for a, b in zip(g, w):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, (a.shape, b.shape)
        assert a.dtype == b.dtype, (a.dtype, b.dtype)
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)


def check(f, *args):
    """Value equals NumPy's, derivatives pass check_grads."""
    assert_same(primal(f, *args), f(*args))
    check_grads(f, *args)


def axis_of(data, nd):
    return data.draw(st.integers(-nd, nd - 1))


# ---------------------------------------------------------------- reshape family
@given(st.data())
def test_reshape_ravel(data):
    shape = data.draw(shapes())
    a = data.draw(arrays(shape))
    size = a.size
    targets = [(-1,), (size,), tuple(reversed(shape)), (1,) + shape + (1,), shape, ()]
    if shape and shape[-1]:
        targets.append((-1, shape[-1]))
    if size:
        targets.append((1, -1))
    target = data.draw(st.sampled_from([t for t in targets if np.prod(t, dtype=int) == size
                                        or -1 in t]))
    check(lambda x: np.reshape(x, target), a)
    check(lambda x: x.reshape(target), a)
    check(lambda x: x.reshape(*target) if target else x.reshape(()), a)
    check(np.ravel, a)
    check(lambda x: x.flatten(), a)


@given(st.data())
def test_transpose_family(data):
    nd = data.draw(st.integers(0, 3))
    a = data.draw(arrays(data.draw(shapes(min_dims=nd, max_dims=nd))))
    perm = tuple(data.draw(st.permutations(range(nd))))
    check(lambda x: np.transpose(x, perm), a)
    check(lambda x: np.permute_dims(x, perm), a)
    check(np.transpose, a)
    check(lambda x: x.T, a)
    check(lambda x: x.transpose(*perm) if perm else x.transpose(), a)
    if nd:
        i, j = axis_of(data, nd), axis_of(data, nd)
        check(lambda x: np.swapaxes(x, i, j), a)
        check(lambda x: x.swapaxes(i, j), a)
        k = data.draw(st.integers(1, nd))
        src = data.draw(st.permutations(range(nd)))[:k]
        dst = data.draw(st.permutations(range(-nd, 0)))[:k]
        check(lambda x: np.moveaxis(x, src, dst), a)
        check(lambda x: np.moveaxis(x, src[0], dst[0]), a)
        ax, start = axis_of(data, nd), data.draw(st.integers(-nd, nd))
        check(lambda x: np.rollaxis(x, ax, start), a)
    if nd >= 2:
        check(np.matrix_transpose, a)
        check(lambda x: x.mT, a)


@given(st.data())
def test_expand_dims_squeeze(data):
    a = data.draw(arrays(data.draw(shapes(max_side=2))))
    nd = a.ndim
    k = data.draw(st.integers(1, 2))
    axis = tuple(data.draw(st.lists(st.integers(-(nd + k), nd + k - 1), min_size=k, max_size=k,
                                    unique_by=lambda i: i % (nd + k))))
    check(lambda x: np.expand_dims(x, axis), a)
    one = data.draw(st.integers(-nd - 1, nd))
    check(lambda x: np.expand_dims(x, one), a)
    check(np.squeeze, a)
    check(lambda x: x.squeeze(), a)
    ones = [i for i, n in enumerate(a.shape) if n == 1]
    if ones:
        sub = tuple(data.draw(st.lists(st.sampled_from(ones), min_size=1, unique=True)))
        check(lambda x: np.squeeze(x, sub), a)
        check(lambda x: np.squeeze(x, sub[0] - nd), a)


@given(st.data())
def test_atleast(data):
    a = data.draw(arrays(data.draw(shapes(max_dims=3))))
    b = data.draw(arrays(data.draw(shapes(max_dims=2))))
    for f in (np.atleast_1d, np.atleast_2d, np.atleast_3d):
        check(f, a)
        check(lambda x, y: f(x, y), a, b)


# ---------------------------------------------------------------- joining
@st.composite
def joinable(draw, min_n=1, max_n=3, min_dims=1):
    nd = draw(st.integers(min_dims, 3))
    base = list(draw(shapes(min_dims=nd, max_dims=nd, max_side=3)))
    axis = draw(st.integers(-nd, nd - 1)) if nd else None
    n = draw(st.integers(min_n, max_n))
    xs = []
    for _ in range(n):
        if nd:
            base[axis] = draw(st.integers(0, 3))
        xs.append(draw(arrays(tuple(base))))
    return xs, axis


@given(joinable())
def test_concatenate(case):
    xs, axis = case
    check(lambda *v: np.concatenate(v, axis=axis), *xs)
    check(lambda *v: np.concatenate(list(v), axis), *xs)
    check(lambda *v: np.concat(v, axis=axis), *xs)


@given(st.lists(shapes(max_dims=3), min_size=1, max_size=3), st.data())
def test_concatenate_axis_none_and_append(shs, data):
    xs = [data.draw(arrays(s)) for s in shs]
    check(lambda *v: np.concatenate(v, axis=None), *xs)
    if len(xs) >= 2:
        check(lambda x, y, *r: np.append(x, y), *xs)


@given(st.data())
def test_block(data):
    a = data.draw(arrays((2, 2)))
    b = data.draw(arrays((2, data.draw(st.integers(0, 3)))))
    c = data.draw(arrays((data.draw(st.integers(0, 2)), 2 + b.shape[1])))
    v = data.draw(arrays((3,)))
    check(lambda a, b, c: np.block([[a, b], [c]]), a, b, c)
    check(lambda a, b, c: np.block([a, b]), a, b, c)
    check(lambda v: np.block([v, 1.0, v[:1]]), v)
    check(lambda v: np.block([[v], [v]]), v)
    check(lambda a, v: np.block([[[a]], [[a]]]) * v[0], a, v)
    check(np.block, a)
    with pytest.raises(ValueError):
        primal(lambda a: np.block([[a], a]), a)
    with pytest.raises(TypeError):
        primal(lambda a: np.block((a, a)), a)


def test_concatenate_mixed_dtypes_and_constants():
    a32 = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.linspace(0, 1, 4).reshape(2, 2)
    k = np.arange(2).reshape(2, 1)          # an int constant, no derivative

    def f(x, y):
        return np.concatenate([x, k, y, np.ones((2, 1))], axis=1)
    assert_same(primal(f, a32, b), f(a32, b))
    gx, gy = td.grad(lambda x, y: np.sum(f(x, y) ** 2), argnums=(0, 1))(a32, b)
    assert gx.dtype == np.float32 and gy.dtype == np.float64
    np.testing.assert_allclose(gx, 2 * a32)
    np.testing.assert_allclose(gy, 2 * b)
    check_grads(f, a32.astype(float), b)
    # dtype= casts every input first, out= writes into a tracked buffer
    g = td.grad(lambda x: np.sum(np.concatenate([x, x], dtype=np.float32) ** 2))(b)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, 4 * b, rtol=1e-6)

    def h(x):
        out = np.zeros((4, 2), like=x)
        r = np.concatenate([x, 2 * x], out=out)
        return out * r
    check(h, b)
    with pytest.raises(TypeError):
        primal(lambda x: np.concatenate([x, x], dtype=np.int64), b)


@given(joinable(min_n=1, max_n=3, min_dims=0), st.data())
def test_stack_family(case, data):
    xs, _ = case
    shape = xs[0].shape
    xs = [data.draw(arrays(shape)) for _ in xs]          # stack needs equal shapes
    nd = len(shape)
    axis = data.draw(st.integers(-nd - 1, nd))
    check(lambda *v: np.stack(v, axis=axis), *xs)
    check(lambda *v: np.stack(v, -1), *xs)
    check(lambda *v: np.hstack(v), *xs)
    check(lambda *v: np.vstack(v), *xs)
    check(lambda *v: np.dstack(v), *xs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if hasattr(np, "row_stack"):
            check(lambda *v: np.row_stack(v), *xs)
    if nd <= 2:
        check(lambda *v: np.column_stack(v), *xs)
    if nd >= 1 and shape[0]:
        check(lambda x: np.stack(x), xs[0])      # iterates the first axis, like NumPy


@given(joinable(min_n=1, max_n=3))
def test_vstack_hstack_ragged(case):
    xs, axis = case
    if xs[0].ndim == 2 and axis in (0, -2):
        check(lambda *v: np.vstack(v), *xs)
    if xs[0].ndim >= 2 and axis in (1, 1 - xs[0].ndim) or xs[0].ndim == 1:
        check(lambda *v: np.hstack(v), *xs)


# ---------------------------------------------------------------- splitting
@given(st.data())
def test_split_family(data):
    a = data.draw(arrays(data.draw(shapes(min_dims=1, max_dims=3))))
    nd = a.ndim
    axis = axis_of(data, nd)
    n = a.shape[axis]
    divisors = [k for k in range(1, 5) if n % k == 0]
    k = data.draw(st.sampled_from(divisors))
    check(lambda x: np.split(x, k, axis=axis), a)
    idx = data.draw(st.lists(st.integers(-n - 2, n + 2), max_size=3))
    check(lambda x: np.split(x, idx, axis=axis), a)
    check(lambda x: np.array_split(x, idx, axis), a)
    check(lambda x: np.array_split(x, np.array(idx, dtype=np.int64), axis), a)
    sections = data.draw(st.integers(1, 5))
    check(lambda x: np.array_split(x, sections, axis=axis), a)
    check(lambda x: np.array_split(x, float(sections), axis=axis), a)
    h = 1 if nd > 1 else 0
    if a.shape[h] % 2 == 0:
        check(lambda x: np.hsplit(x, 2), a)
    check(lambda x: np.hsplit(x, idx), a)
    if nd >= 2:
        check(lambda x: np.vsplit(x, idx), a)
    if nd >= 3:
        check(lambda x: np.dsplit(x, idx), a)
    if hasattr(np, "unstack") and n:     # (check_grads cannot take an empty output tuple)
        check(lambda x: np.unstack(x, axis=axis), a)


# ---------------------------------------------------------------- repetition
@given(st.data())
def test_tile(data):
    a = data.draw(arrays(data.draw(shapes(max_dims=3, max_side=3))))
    reps = tuple(data.draw(st.lists(st.integers(0, 3), max_size=3)))
    check(lambda x: np.tile(x, reps), a)
    r = data.draw(st.integers(0, 3))
    check(lambda x: np.tile(x, r), a)


@given(st.data())
def test_repeat(data):
    a = data.draw(arrays(data.draw(shapes(max_dims=3, max_side=3))))
    axis = data.draw(st.none() | (st.integers(-a.ndim, a.ndim - 1) if a.ndim else st.none()))
    n = a.size if axis is None else a.shape[axis]
    r = data.draw(st.integers(0, 3))
    check(lambda x: np.repeat(x, r, axis=axis), a)
    check(lambda x: np.repeat(x, [r], axis=axis), a)
    check(lambda x: x.repeat(r, axis), a)
    counts = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)),
                      dtype=np.int64)
    check(lambda x: np.repeat(x, counts, axis=axis), a)


def test_repeat_counts_are_data():
    """Repeat counts passed as a replayed argument are guarded: a new count re-records."""
    x = np.arange(3.0)
    f = td.record(lambda x, c: np.sum(np.repeat(x, c) ** 2), x, np.array([1, 2, 0]))
    v, g = f.value_and_grad(x, np.array([1, 2, 0]))
    np.testing.assert_allclose(g, [0, 4, 0])
    v, g = f.value_and_grad(x, np.array([0, 0, 3]))
    np.testing.assert_allclose(g, [0, 0, 12])


# ---------------------------------------------------------------- broadcasting
@given(st.data())
def test_broadcast_to_and_arrays(data):
    shape = data.draw(shapes(max_dims=3, max_side=3))
    other = data.draw(hnp.broadcastable_shapes(shape, max_dims=3, max_side=3))
    target = np.broadcast_shapes(shape, other)
    a = data.draw(arrays(shape))
    b = data.draw(arrays(other))
    check(lambda x: np.broadcast_to(x, target), a)
    check(lambda x, y: np.broadcast_arrays(x, y), a, b)
    check(lambda x, y: np.broadcast_arrays(x, y, x), a, b)


# ---------------------------------------------------------------- reordering
@given(st.data())
def test_flip_rot90(data):
    a = data.draw(arrays(data.draw(shapes(max_dims=3))))
    nd = a.ndim
    check(np.flip, a)
    if nd:
        ax = axis_of(data, nd)
        check(lambda x: np.flip(x, ax), a)
        axes = tuple(data.draw(st.lists(st.integers(0, nd - 1), min_size=1, unique=True)))
        check(lambda x: np.flip(x, axes), a)
        check(np.flipud, a)
    if nd >= 2:
        check(np.fliplr, a)
        k = data.draw(st.integers(-5, 5))
        i, j = data.draw(st.lists(st.integers(0, nd - 1), min_size=2, max_size=2, unique=True))
        check(lambda x: np.rot90(x, k, axes=(i, j - nd)), a)
        check(lambda x: np.rot90(x), a)


@given(st.data())
def test_roll(data):
    a = data.draw(arrays(data.draw(shapes(max_dims=3))))
    nd = a.ndim
    shift = data.draw(st.integers(-7, 7))
    check(lambda x: np.roll(x, shift), a)
    if nd:
        axis = axis_of(data, nd)
        check(lambda x: np.roll(x, shift, axis=axis), a)
        axes = tuple(data.draw(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=3)))
        shifts = tuple(data.draw(st.lists(st.integers(-5, 5), min_size=len(axes),
                                          max_size=len(axes))))
        check(lambda x: np.roll(x, shifts, axis=axes), a)
        check(lambda x: np.roll(x, shift, axis=axes), a)


# ---------------------------------------------------------------- padding
@given(st.data())
def test_pad(data):
    a = data.draw(arrays(data.draw(shapes(max_dims=3, max_side=3))))
    nd = a.ndim
    widths = data.draw(st.sampled_from(["scalar", "pair", "full"] if nd else ["scalar"]))
    if widths == "scalar":
        pw = data.draw(st.integers(0, 3))
    elif widths == "pair":
        pw = tuple(data.draw(st.lists(st.integers(0, 3), min_size=2, max_size=2)))
    else:
        pw = tuple(tuple(data.draw(st.lists(st.integers(0, 5), min_size=2, max_size=2)))
                   for _ in range(nd))
    mode = data.draw(st.sampled_from(["constant", "edge", "reflect", "symmetric", "wrap"]))
    pairs = np.broadcast_to(np.asarray(pw), (nd, 2))
    if mode != "constant" and any(a.shape[i] == 0 and pairs[i].any() for i in range(nd)):
        with pytest.raises(ValueError):
            np.pad(a, pw, mode=mode)
        with pytest.raises(ValueError):
            primal(lambda x: np.pad(x, pw, mode=mode), a)
        return
    check(lambda x: np.pad(x, pw, mode=mode), a)
    if mode == "constant":
        cv = data.draw(st.sampled_from([1.5, (1.0, -2.0)] + (["per-axis"] if nd else [])))
        if cv == "per-axis":
            cv = tuple((float(i), -float(i) - 0.5) for i in range(nd))
        check(lambda x: np.pad(x, pw, constant_values=cv), a)
        # a tracked fill value gets its derivative (corners belong to the last axis)
        c = data.draw(arrays(data.draw(st.sampled_from([(), (1,), (2,), (nd, 2)]))))
        check(lambda x, v: np.pad(x, pw, constant_values=v), a, c)


def test_pad_empty_mode():
    a = np.arange(6.0).reshape(2, 3)
    f = lambda x: np.pad(x, ((1, 0), (2, 1)), mode="empty")      # noqa: E731
    got, want = primal(f, a), f(a)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got[1:, 2:-1], a)              # the pad itself is undefined
    g = td.grad(lambda x: np.sum(f(x)[1:, 2:-1] ** 2))(a)
    np.testing.assert_allclose(g, 2 * a)


def test_out_arguments():
    a = np.random.default_rng(0).standard_normal((3, 4))

    def f(x):
        buf = np.zeros((3, 2), like=x)
        np.take(x, [3, 0], axis=1, out=buf)
        t = np.zeros((), like=x)
        np.trace(x, out=t)
        return buf * t
    check(f, a)


def test_pad_dtypes():
    a = np.arange(6).reshape(2, 3)
    x32 = np.ones((2, 2), np.float32)
    for f in (lambda x: np.pad(x, 1, constant_values=2.7),
              lambda x: np.pad(x, (1, 2), mode="reflect"),
              lambda x: np.pad(x, 1, constant_values=np.float64(3))):
        assert_same(primal(lambda x: f(x) * 1, a), f(a) * 1)
        assert_same(primal(f, x32), f(x32))
        assert td.grad(lambda x: np.sum(f(x) ** 2))(x32).dtype == np.float32
    # int array padded with a tracked float: cast like NumPy (no derivative flows)
    g = td.grad(lambda v, a: np.sum(np.pad(a, 1, constant_values=v) * 1.0))(np.float64(1.7), a)
    assert g == 0
    # np.pad dispatches on its array only: a plain array with a tracked fill value
    # runs NumPy's own code, which refuses to convert the tracked value
    with pytest.raises(td.TrackedEscape):
        td.grad(lambda v: np.sum(np.pad(a * 1.0, 1, constant_values=v)))(np.float64(1.7))


# ---------------------------------------------------------------- diagonals and triangles
@given(st.data())
def test_diag_diagonal_trace(data):
    n = data.draw(st.integers(0, 4))
    k = data.draw(st.integers(-5, 5))
    v = data.draw(arrays((n,)))
    check(lambda x: np.diag(x, k), v)
    check(lambda x: np.diagflat(x, k), v)
    m = data.draw(arrays(data.draw(shapes(min_dims=2, max_dims=2))))
    check(lambda x: np.diag(x, k), m)
    check(lambda x: np.diagflat(x, -k), m)
    a = data.draw(arrays(data.draw(shapes(min_dims=2, max_dims=3))))
    nd = a.ndim
    i, j = data.draw(st.lists(st.integers(-nd, nd - 1), min_size=2, max_size=2,
                              unique_by=lambda t: t % nd))
    check(lambda x: np.diagonal(x, k, i, j), a)
    check(lambda x: x.diagonal(k, i, j), a)
    check(lambda x: np.trace(x, k, i, j), a)
    check(lambda x: x.trace(), a)
    check(lambda x: np.triu(x, k), a)
    check(lambda x: np.tril(x, k), a)
    check(np.triu, v)
    check(lambda x: np.tril(x, -1), v)


# ---------------------------------------------------------------- take / along axis
@given(st.data())
def test_take(data):
    a = data.draw(arrays(data.draw(shapes(max_dims=3))))
    nd = a.ndim
    axis = data.draw(st.none() | (st.integers(-nd, nd - 1) if nd else st.none()))
    n = a.size if axis is None else a.shape[axis]
    ishape = data.draw(shapes(max_dims=2, max_side=3))
    if n:
        idx = data.draw(hnp.arrays(np.int64, ishape, elements=st.integers(-n, n - 1)))
        check(lambda x: np.take(x, idx, axis=axis), a)
        check(lambda x: x.take(idx.tolist(), axis), a)
        i0 = data.draw(st.integers(-n, n - 1))
        check(lambda x: np.take(x, i0, axis=axis), a)
        # tracked (replayed) indices
        check(lambda x, i: np.take(x, i, axis=axis), a, idx)
    check(lambda x: np.take(x, np.zeros((0,), np.int64), axis=axis), a)


@given(st.data())
def test_take_put_along_axis(data):
    a = data.draw(arrays(data.draw(shapes(min_dims=1, max_dims=3))))
    nd = a.ndim
    axis = axis_of(data, nd)
    n = a.shape[axis]
    ishape = tuple(data.draw(st.sampled_from([1, s])) if i != axis % nd
                   else data.draw(st.integers(0 if n == 0 else 1, 3) if n else st.just(0))
                   for i, s in enumerate(a.shape))
    if n:
        idx = data.draw(hnp.arrays(np.int64, ishape, elements=st.integers(-n, n - 1)))
    else:
        idx = np.zeros(ishape, np.int64)
    check(lambda x: np.take_along_axis(x, idx, axis=axis), a)
    check(lambda x, i: np.take_along_axis(x, i, axis), a, idx)
    check(lambda x: np.take_along_axis(x, np.argsort(x, axis=axis), axis=axis), a)
    check(lambda x: np.take_along_axis(x, np.argsort(x, axis=None), axis=None), a)
    vals = data.draw(arrays(idx.shape))

    def put(x, v):
        y = x * 1.0
        np.put_along_axis(y, idx, v * 2.0, axis=axis)
        return y
    check(put, a, vals)


# ---------------------------------------------------------------- shape rules
def _rule_matches(op, *args, **params):
    out = op.forward(*args, **params)
    aval = op.shape(*[aval_of(x) for x in args], **params)
    assert tuple(aval.shape) == np.shape(out)
    assert np.dtype(aval.dtype) == np.asarray(out).dtype


@given(st.data())
def test_shape_rules(data):
    a = data.draw(arrays(data.draw(shapes())))
    nd = a.ndim
    target = data.draw(st.sampled_from([(-1,), (a.size,), a.shape[::-1], (1,) + a.shape]))
    _rule_matches(S.RESHAPE, a, shape=S.norm_shape(target, a.size))
    _rule_matches(S.RESHAPE, a, shape=target)
    _rule_matches(S.TRANSPOSE, a, axes=tuple(data.draw(st.permutations(range(nd)))))
    other = data.draw(hnp.broadcastable_shapes(a.shape, max_dims=3, max_side=3))
    _rule_matches(S.BROADCAST_TO, a, shape=np.broadcast_shapes(a.shape, other))
    xs, axis = data.draw(joinable())
    dts = data.draw(st.lists(st.sampled_from([np.float32, np.float64, np.int32, np.bool_]),
                             min_size=len(xs), max_size=len(xs)))
    xs = [x.astype(d) for x, d in zip(xs, dts)]
    _rule_matches(S.CONCATENATE, *xs, axis=axis % xs[0].ndim)
    if nd >= 2:
        i, j = data.draw(st.lists(st.integers(0, nd - 1), min_size=2, max_size=2, unique=True))
        k = data.draw(st.integers(-4, 4))
        _rule_matches(S.DIAGONAL, a, offset=k, axis1=i, axis2=j)
        d = np.diagonal(a, k, i, j).astype(data.draw(st.sampled_from([np.float32, np.int64])))
        _rule_matches(S.DIAG_EMBED, d, shape=a.shape, offset=k, axis1=i, axis2=j)
        np.testing.assert_array_equal(np.diagonal(S.DIAG_EMBED.forward(
            d, shape=a.shape, offset=k, axis1=i, axis2=j), k, i, j), d)


def test_shape_rule_errors():
    f = np.zeros((2, 3))
    with pytest.raises(ValueError):
        S.CONCATENATE.shape(aval_of(f), aval_of(np.zeros((3, 3))), axis=1)
    with pytest.raises(ValueError):
        S.RESHAPE.shape(aval_of(f), shape=(4, -1))
    with pytest.raises(ValueError):
        S.BROADCAST_TO.shape(aval_of(f), shape=(3, 3))
    with pytest.raises(ValueError):
        S.DIAG_EMBED.shape(aval_of(np.zeros(3)), shape=(2, 2), offset=0, axis1=0, axis2=1)


# ---------------------------------------------------------------- float32
F32_CASES = {
    "reshape": lambda x: np.reshape(x, (-1,)),
    "transpose": lambda x: x.T,
    "concatenate": lambda x: np.concatenate([x, x * 2], axis=1),
    "stack": lambda x: np.stack([x, x]),
    "split": lambda x: np.split(x, 2, axis=1)[1],
    "tile": lambda x: np.tile(x, (2, 1)),
    "repeat": lambda x: np.repeat(x, 2, axis=0),
    "repeat_counts": lambda x: np.repeat(x, [1, 0, 2], axis=0),
    "broadcast_to": lambda x: np.broadcast_to(x, (2, 3, 4)),
    "flip": lambda x: np.flip(x),
    "roll": lambda x: np.roll(x, 1, axis=1),
    "rot90": np.rot90,
    "pad_constant": lambda x: np.pad(x, 1, constant_values=0.5),
    "pad_reflect": lambda x: np.pad(x, 2, mode="reflect"),
    "diag": lambda x: np.diag(x[0], 1),
    "diagonal": np.diagonal,
    "trace": np.trace,
    "triu": np.triu,
    "take": lambda x: np.take(x, [2, 0, 0], axis=1),
    "take_along_axis": lambda x: np.take_along_axis(x, np.argsort(x, axis=0), axis=0),
}


@pytest.mark.parametrize("name", sorted(F32_CASES))
def test_float32_gradients_stay_float32(name):
    f = F32_CASES[name]
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    assert_same(primal(f, x), f(x))
    g = td.grad(lambda x: np.sum(f(x) ** 2))(x)
    assert g.dtype == np.float32
    g64 = td.grad(lambda x: np.sum(f(x) ** 2))(x.astype(np.float64))
    np.testing.assert_allclose(g, g64, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- views: writes reach the base
VIEWS = {
    "transpose": lambda b: np.transpose(b),
    "T": lambda b: b.T,
    "swapaxes": lambda b: np.swapaxes(b, 0, 1),
    "moveaxis": lambda b: np.moveaxis(b, 0, -1),
    "rollaxis": lambda b: np.rollaxis(b, 1),
    "reshape": lambda b: b.reshape(2, 6),
    "reshape_of_T": lambda b: b.T.reshape(12),          # a copy in NumPy: base unchanged
    "ravel": np.ravel,
    "ravel_of_T": lambda b: np.ravel(b.T),               # a copy in NumPy
    "expand_dims": lambda b: np.expand_dims(b, 1)[:, 0],
    "squeeze": lambda b: np.squeeze(b[:1]),
    "atleast_3d": lambda b: np.atleast_3d(b)[..., 0],
    "flip": lambda b: np.flip(b),
    "fliplr": np.fliplr,
    "flipud": np.flipud,
    "rot90": np.rot90,
    "split": lambda b: np.split(b, 2, axis=1)[1],
    "split_of_T": lambda b: np.split(b.T, 2)[1][:, ::-1],
    "swapaxes_of_flip": lambda b: np.swapaxes(np.flip(b, 0)[1:], 0, 1),
    "array_split": lambda b: np.array_split(b, 3)[2],
    "hsplit": lambda b: np.hsplit(b, [1])[1],
    "vsplit": lambda b: np.vsplit(b, [1])[1],
    "broadcast_arrays_same": lambda b: np.broadcast_arrays(b, b[:1])[0],
    # new arrays in NumPy: writes must not reach the base
    "tile": lambda b: np.tile(b, 1),
    "repeat": lambda b: np.repeat(b, 1, axis=0),
    "roll": lambda b: np.roll(b, 0),
    "pad": lambda b: np.pad(b, 0),
    "concatenate": lambda b: np.concatenate([b]),
    "stack": lambda b: np.stack([b])[0],
    "take": lambda b: np.take(b, 1, axis=0),
    "diag": lambda b: np.diag(b[0]),
    "triu": np.triu,
}


def _write_through(view):
    def f(a, x):
        b = a * 1.0
        v = view(b)
        v[(0,) * (v.ndim - 1) + (slice(0, 2),)] = x * 3.0
        v[(-1,) * v.ndim] += x
        return b * 2.0, v * 1.0
    return f


# NumPy's reshape/ravel is a view or a copy depending on the memory layout; so is
# tapediff's, decided on the layout seen when recording
LAYOUT_DEPENDENT = {"reshape", "reshape_of_T", "ravel", "ravel_of_T"}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", sorted(VIEWS))
def test_writes_through_results(name, layout):
    f = _write_through(VIEWS[name])
    a = relayout(np.random.default_rng(1).standard_normal((3, 4)), layout)
    x = np.float64(0.7)
    assert_same(primal(f, a, x), f(a, x))
    if name not in LAYOUT_DEPENDENT or layout == "c":
        # (finite differences run on perturbed copies, which may change the layout)
        check_grads(f, a, x)
    check_replay(lambda a, x: np.sum(f(a, x)[0] ** 2), (a, x), (a * 2 + 1, x + 1))


@pytest.mark.parametrize("order", ["C", "F"])
def test_reshape_view_or_copy_follows_layout(order):
    def f(a):
        b = a * 1.0
        b.reshape(-1)[:3] = 0.0          # a view of C-ordered b, a copy of F-ordered b
        np.ravel(b)[-1] = 1.0
        return b
    a = np.asarray(np.random.default_rng(2).standard_normal((3, 4)), order=order)
    want = f(a)
    assert (want[0, :3] == 0).all() == (order == "C")
    assert_same(primal(f, a), want)
    check_replay(lambda a: np.sum(f(a) ** 2), (a,), (a * 3,))


def test_write_into_argument_through_view():
    def f(a):
        v = np.swapaxes(a, 0, 1)
        v[0, 1] = 5.0
        return a * 2.0
    a = np.arange(6.0).reshape(2, 3)
    assert_same(primal(f, a.copy()), f(a.copy()))
    check_grads(f, a)


READONLY = {
    "diagonal": lambda b: np.diagonal(b),
    "diagonal_method": lambda b: b.diagonal(1),
    "diag_of_2d": lambda b: np.diag(b),
    "diagonal_slice": lambda b: np.diagonal(b)[1:],
    "broadcast_to": lambda b: np.broadcast_to(b, (2, 3, 4)),
    "broadcast_to_same_shape": lambda b: np.broadcast_to(b, b.shape),
    "reshape_of_broadcast": lambda b: np.broadcast_to(b, (2, 3, 4)).reshape(2, 12),
}


@pytest.mark.parametrize("name", sorted(READONLY))
def test_readonly_views_refuse_writes(name):
    view = READONLY[name]

    def f(a):
        v = view(a * 1.0)
        v[(0,) * v.ndim] = 1.0
        return v
    a = np.ones((3, 4))
    with pytest.raises(ValueError):
        f(a)
    with pytest.raises(ValueError):
        primal(f, a)
    with pytest.raises(ValueError):
        td.grad(lambda a: np.sum(f(a)))(a)


def test_broadcast_arrays_stretched_results_are_readonly():
    # NumPy 2 still writes them with a DeprecationWarning; tapediff refuses
    def f(a):
        v = np.broadcast_arrays(a, np.ones((3, 1)))[0]
        v[0, 0] = 1.0
        return v
    with pytest.raises(ValueError):
        primal(f, np.ones(4))


def test_copy_results_are_writable():
    def f(a):
        v = np.broadcast_to(a, (2, 3, 4)).reshape(6, 4)   # NumPy copies here
        v[0, 0] = 9.0
        return v * np.tile(a, (2, 1))
    a = np.arange(12.0).reshape(3, 4)
    assert_same(primal(f, a), f(a))
    check_grads(f, a)


# ---------------------------------------------------------------- replay
def _pipeline(x, w):
    y = np.concatenate([x, np.flip(x, 0)], axis=1)               # (3, 8)
    y = np.pad(y, ((1, 0), (0, 2)), mode="edge")                  # (4, 10)
    parts = np.split(y, 2, axis=1)
    z = np.stack(parts, axis=-1) * w                              # (4, 5, 2)
    z = np.moveaxis(z, -1, 0).reshape(2, -1)
    t = np.roll(np.tile(z, (1, 2)), 3, axis=1)
    d = np.diagonal(t[:, :2]) + np.trace(t[:, 2:4])
    u = np.repeat(t, [1, 2], axis=0)
    return np.sum(u ** 2) + np.sum(d * 3.0) + np.sum(np.triu(x[:, :3]) ** 3)


def test_replay():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((3, 4)), rng.standard_normal(2)
    check_grads(_pipeline, x, w)
    check_replay(_pipeline, (x, w), (rng.standard_normal((3, 4)), rng.standard_normal(2)),
                 argnums=(0, 1))


def test_replay_with_view_writes():
    def f(x):
        y = x * 1.0
        np.swapaxes(y, 0, 1)[1] = np.sum(x, axis=1)
        for part in np.split(y, 2, axis=1):
            part *= 2.0
        np.flip(y)[0, 0] = 7.0
        return np.sum(y ** 2)
    rng = np.random.default_rng(4)
    check_replay(f, (rng.standard_normal((4, 4)),), (rng.standard_normal((4, 4)),))


NESTED = {
    "concatenate": lambda x: np.sum(np.concatenate([x, x ** 2], 1) ** 3),
    "diagonal_trace": lambda x: np.sum(np.diagonal(x, 1) ** 3) + np.trace(x ** 3),
    "diag": lambda x: np.sum(np.diag(np.sum(x, 0), 1) ** 3) + np.sum(np.diag(x[0]) ** 3),
    "tile_repeat": lambda x: np.sum(np.tile(x.T, (2, 1)) ** 3 + np.repeat(x, 2, 0) ** 3),
    "pad": lambda x: np.sum(np.pad(x, 2, mode="reflect") ** 3) + np.sum(np.pad(x, 1) ** 3),
    "roll_flip": lambda x: np.sum(np.roll(x, 1, 0) ** 3 * np.flip(x)),
    "split_stack": lambda x: np.sum(np.stack(np.split(x, 3, axis=1)) ** 3),
    "take": lambda x: np.sum(np.take(x, [2, 0, 2], axis=1) ** 3),
    "view_write": lambda x: (lambda b: (b.__setitem__((0, 1), b[1, 0] ** 2),
                                        np.sum(b ** 3))[1])(np.swapaxes(x * 1.0, 0, 1)),
}


@pytest.mark.parametrize("name", sorted(NESTED))
def test_nested_derivatives(name):
    f = NESTED[name]
    g = td.grad(f)
    h = td.grad(lambda x: np.sum(g(x) ** 2))
    rng = np.random.default_rng(5)
    x, d = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    eps = 1e-6
    fd = (np.sum(g(x + eps * d) ** 2) - np.sum(g(x - eps * d) ** 2)) / (2 * eps)
    np.testing.assert_allclose(np.sum(h(x) * d), fd, rtol=1e-5)


# ---------------------------------------------------------------- errors
UNSUPPORTED = [
    ("reshape", lambda x: np.reshape(x, -1, order="F")),
    ("reshape", lambda x: x.reshape(-1, order="A")),
    ("ravel", lambda x: np.ravel(x, order="F")),
    ("ravel", lambda x: x.flatten(order="K")),
    ("pad", lambda x: np.pad(x, 1, mode="mean")),
    ("pad", lambda x: np.pad(x, 1, mode="linear_ramp")),
    ("pad", lambda x: np.pad(x, 1, mode=lambda *a: None)),
    ("pad", lambda x: np.pad(x, 1, mode="reflect", reflect_type="odd")),
    ("take", lambda x: np.take(x, [5], mode="wrap")),
    ("take", lambda x: np.take(x, [5], mode="clip")),
    ("put_along_axis", lambda x: np.put_along_axis(x * 1.0, np.array([0]), 1.0, axis=None)),
]


@pytest.mark.parametrize("k", range(len(UNSUPPORTED)))
def test_unsupported_arguments(k):
    name, f = UNSUPPORTED[k]
    with pytest.raises(UnsupportedOperation, match=f"np.{name}"):
        primal(f, np.ones((2, 3)))


NUMPY_ERRORS = [
    lambda x: np.reshape(x, (4, -1)),
    lambda x: np.reshape(x, (-1, -1)),
    lambda x: np.reshape(x[:0], (0, -1)),
    lambda x: np.transpose(x, (0, 0)),
    lambda x: np.transpose(x, (0,)),
    lambda x: np.swapaxes(x, 0, 2),
    lambda x: np.moveaxis(x, (0, 1), 0),
    lambda x: np.squeeze(x, 0),
    lambda x: np.expand_dims(x, 4),
    lambda x: np.concatenate([x, x.T]),
    lambda x: np.concatenate([x, x[0]]),
    lambda x: np.concatenate([x[0, 0], x[0, 0]]),
    lambda x: np.stack([x, x.T]),
    lambda x: np.split(x, 2, axis=1),
    lambda x: np.array_split(x, 0),
    lambda x: np.vsplit(x[0], 1),
    lambda x: np.repeat(x, -1),
    lambda x: np.repeat(x, [1, 2, 3], axis=0),
    lambda x: np.broadcast_to(x, (3, 2)),
    lambda x: np.tile(x, -1),
    lambda x: np.fliplr(x[0]),
    lambda x: np.rot90(x, axes=(0, 0)),
    lambda x: np.pad(x, -1),
    lambda x: np.pad(x[:0], 1, mode="edge"),
    lambda x: np.diag(x[None]),
    lambda x: np.diagonal(x[0]),
    lambda x: np.diagonal(x, 0, 1, 1),
    lambda x: np.take(x, [7]),
    lambda x: np.take_along_axis(x, np.zeros(2, np.int64), axis=0),
]


@pytest.mark.parametrize("k", range(len(NUMPY_ERRORS)))
def test_errors_match_numpy(k):
    f = NUMPY_ERRORS[k]
    x = np.arange(6.0).reshape(2, 3)
    with pytest.raises(Exception) as want:
        f(x)
    with pytest.raises(type(want.value)):
        primal(f, x)


@pytest.mark.parametrize("shape", [(2, 5), 7, 0, (3, 0), ()])
def test_resize_is_numpys(shape):
    from .exact import assert_same
    x = np.array([0.5, 2.0, -1.5])
    assert_same(lambda t: np.resize(t, shape), x)
    assert_same(lambda t: np.resize(t[:0], shape), x)
    check_grads(lambda t: np.resize(t, shape) * np.arange(1.0, 1.0 + np.prod(shape)).reshape(shape), x)
    with pytest.raises(ValueError, match="non-negative"):
        td.vjp(lambda t: np.resize(t, (2, -1)), x)
