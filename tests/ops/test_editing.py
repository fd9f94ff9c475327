"""Arrays edited by position (tapediff/np_api/editing.py): copyto, put,
fill_diagonal (in place), compress, extract, delete, insert; against NumPy
(values and dtypes exactly) and finite differences."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tapediff as td
from tapediff.testing import check_grads

from .exact import assert_same, value

X = np.arange(12.0).reshape(3, 4) * 0.5 - 0.9          # no element at 0


def in_place(edit):
    """A function that edits a copy of its argument with ``edit`` and returns it."""
    def f(a):
        b = a * 1.0
        assert edit(b) is None               # (as NumPy's: they return None)
        return b
    return f


EDITS = {
    "copyto": lambda b: np.copyto(b, 2.0),
    "copyto-broadcast": lambda b: np.copyto(b, np.arange(4.0)),
    "copyto-where": lambda b: np.copyto(b, b[0] * 3, where=b > 0),
    "copyto-tracked-into-view": lambda b: np.copyto(b[1:, ::2], np.sin(b[:2, 1::2])),
    "put": lambda b: np.put(b, [0, 5, -1, 5], [9.0, 8.0]),         # repeated values, last wins
    "put-tracked-values": lambda b: np.put(b, np.array([[3], [1]]), b[2, :2] * 2),
    "put-wrap": lambda b: np.put(b, [13, -20], b[0, :2], mode="wrap"),
    "put-clip": lambda b: np.put(b, [13, -20], 7.0, mode="clip"),
    "put-transposed": lambda b: np.put(b.T, [1, 2], [5.0, 6.0]),
    "fill_diagonal": lambda b: np.fill_diagonal(b, [1.0, 2.0]),
    "fill_diagonal-tall-wrap": lambda b: np.fill_diagonal(b.reshape(4, 3), b[0, 0], wrap=True),
    "fill_diagonal-3d": lambda b: np.fill_diagonal(b[:2, :2].reshape(2, 2, 1)[:, :, [0, 0]]
                                                   .reshape(2, 2, 2), 1.0),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_in_place_edits(name):
    f = in_place(EDITS[name])
    assert_same(f, X)
    check_grads(f, X)


def test_in_place_edits_of_other_dtypes_and_errors():
    ints = in_place(lambda b: np.put(b, [0, 1], [1.7, -2.2]))
    assert_same(lambda a: ints(np.round(a).astype(np.int64)), X)
    with pytest.raises(TypeError, match="cannot cast float64 to int64"):
        value(lambda a: np.copyto(np.zeros(3, np.int64) * a[0, 0].astype(np.int64), a[0, :3]),
              X)
    with pytest.raises(IndexError, match="index 12 is out of bounds for axis 0 with size 12"):
        value(in_place(lambda b: np.put(b, [12], 1.0)), X)
    with pytest.raises(ValueError, match="clipmode"):
        value(in_place(lambda b: np.put(b, [0], 1.0, mode="nearest")), X)
    with pytest.raises(ValueError, match="at least 2-d"):
        value(in_place(lambda b: np.fill_diagonal(b[0], 1.0)), X)
    with pytest.raises(td.TrackedEscape):           # tracked values into a plain array
        value(lambda a: np.copyto(np.zeros(4), a[0]), X)


def test_put_with_tracked_indices_replays():
    def f(a, i):
        b = a * 1.0
        np.put(b, i, a[0, :2] ** 2)
        return np.sum(b * np.arange(12.0).reshape(3, 4))
    rec = td.record(f, X, np.array([0, 7]))
    for i in (np.array([11, 3]), np.array([-1, 0])):
        v, g = rec.value_and_grad(X, i)
        want_v, want_g = td.value_and_grad(f)(X, i)
        assert v == want_v
        np.testing.assert_array_equal(g, want_g)
    assert rec.n_versions == 1


@given(st.data())
def test_compress_extract_delete_insert_match_numpy(data):
    a = X if data.draw(st.booleans()) else X.T
    axis = data.draw(st.sampled_from([None, 0, 1, -1]))
    n = a.size if axis is None else a.shape[axis]
    cond = data.draw(st.lists(st.booleans(), min_size=0, max_size=n))
    assert_same(lambda t: np.compress(cond, t, axis=axis), a)
    assert_same(lambda t: np.extract(np.resize(np.array(cond + [True]), t.shape), t), a)
    obj = data.draw(st.sampled_from([0, -1, [0, 2], [1, -1, 1], slice(1, None, 2),
                                     np.array([], np.intp)]))
    assert_same(lambda t: np.delete(t, obj, axis=axis), a)
    ins = data.draw(st.sampled_from([0, n, -1, [0], [1, 1, n], slice(0, 2)]))
    vals = data.draw(st.sampled_from(["scalar", "row", "tracked"]))

    def f(t):
        if vals == "scalar":
            v = 5.0
        elif vals == "row":
            # (one position, a[:, i] = v: a row of the other axis's length)
            v = np.arange(1.0, 1.0 + (t.shape[1 - axis % 2] if axis is not None and
                                      isinstance(ins, int) else 1))
        else:
            v = t.ravel()[0] * 2
        return np.insert(t, ins, v, axis=axis)
    assert_same(f, a)
    check_grads(f, a)
    check_grads(lambda t: np.delete(t, obj, axis=axis) ** 2, a)
    if any(cond):
        check_grads(lambda t: np.compress(cond, t, axis=axis) ** 2, a)


def test_insert_values_shapes_and_errors():
    a = np.arange(6.0).reshape(2, 3)
    assert_same(lambda t: np.insert(t, 1, [7.0, 8.0], axis=1), a)        # a[:, 1] = v
    assert_same(lambda t: np.insert(t, [1], [[7.0], [8.0]], axis=1), a)  # a[:, [1]] = v
    assert_same(lambda t: np.insert(t, 2, t[:, 0] * 3, axis=1), a)
    assert_same(lambda t: np.insert(t.astype(np.int64), [0, 3], [1.7, 2.2]), a)
    with pytest.raises(IndexError, match="out of bounds"):
        value(lambda t: np.insert(t, 7, 1.0), a)
    with pytest.raises(IndexError, match="out of bounds"):
        value(lambda t: np.delete(t, 6), a)
    with pytest.raises(ValueError, match="match the axis length"):
        value(lambda t: np.delete(t, [True, False], axis=1), a)
    with pytest.raises(IndexError, match="out of bounds"):
        value(lambda t: np.compress([0, 0, 0, 1], t, axis=1), a)
    with pytest.raises(ValueError, match="1-d"):
        value(lambda t: np.compress([[1]], t), a)


def test_compress_with_a_tracked_condition_guards_its_count():
    def f(a):
        return np.sum(np.compress(a[0] > 0, a, axis=1) ** 2)
    rec = td.record(f, X)
    y = X.copy()
    y[0] = [-1.0, 2.0, 3.0, -4.0]                  # same count, other places
    v, g = rec.value_and_grad(y)
    np.testing.assert_allclose(v, f(y), rtol=1e-15)   # (a sum over another memory layout)
    np.testing.assert_array_equal(g, td.grad(f)(y))
    assert rec.n_versions == 1
    y[0] = 1.0
    np.testing.assert_allclose(rec(y), f(y), rtol=1e-15)
    assert rec.n_versions == 2


def test_review_weak_scalars_bool_positions_and_empty_indices():
    """Found in review: Python scalars were cast as int64/float64 (NumPy takes
    them weak), insert refused a boolean obj (NumPy inserts before each
    True), put refused ``[]`` (a float64 array) as indices, and copyto
    broadcast a source larger than its destination."""
    u8 = np.arange(3, dtype=np.uint8)
    assert_same(in_place(lambda b: np.copyto(b, 5)), u8.astype(np.float64))
    assert_same(lambda a: _copied(a, lambda d: np.copyto(d, 5)), u8)
    assert_same(lambda a: _copied(a, lambda d: np.copyto(d, 0.5, casting="safe")),
                np.ones(2, np.float32))
    with pytest.raises(TypeError, match="cannot cast"):
        value(lambda a: _copied(a, lambda d: np.copyto(d, 0.5)), u8)
    with pytest.raises(ValueError, match="could not broadcast"):
        value(lambda a: _copied(a[0], lambda d: np.copyto(d, a[:2])), np.ones(3))
    assert_same(lambda a: np.insert(a, np.array([True, False, True]), 5.0), np.arange(3.0))
    assert_same(in_place(lambda b: np.put(b, [], 5.0)), X)


def _copied(a, edit):
    d = a * 1
    edit(d)
    return d


# ---------------------------------------------------------------- trim_zeros
_TRIM = [np.array([0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 0.0]), np.zeros(3), np.array([1.0, 2.0]),
         np.zeros(0), np.array([[0, 0, 0], [0, 1.0, 0], [0, 2.0, 0], [0, 0, 0]]),
         np.zeros((2, 2)), np.array([0, 0, 5, 0]), np.array([-0.0, 0.5, -0.0])]


@pytest.mark.parametrize("x", _TRIM, ids=range(len(_TRIM)))
@pytest.mark.parametrize("trim", ["fb", "f", "b", "BF", "x"])
@pytest.mark.parametrize("axis", [None, 0, -1, (0,), ()])
def test_trim_zeros_is_numpys(x, trim, axis):
    try:
        np.trim_zeros(x, trim, axis)
    except Exception as e:
        with pytest.raises(type(e)):
            value(lambda t: np.trim_zeros(t, trim, axis), x)
        return
    assert_same(lambda t: np.trim_zeros(t, trim, axis), x)


def test_trim_zeros_derivative_and_guard():
    x = np.array([0.0, 0.0, 1.5, -2.0, 0.0, 3.0, 0.0])
    # (finite differences must not move the bounds: only the inside varies)
    check_grads(lambda t: np.trim_zeros(np.concatenate([np.zeros(2), t, np.zeros(1)])) ** 2,
                x[2:6])
    rec = td.record(lambda t: np.sum(np.trim_zeros(t) ** 2), x)
    y = np.array([0.0, 0.0, 4.0, 1.0, 0.0, 2.0, 0.0])          # the same bounds: replays
    assert rec(y) == np.sum(np.trim_zeros(y) ** 2) and rec.n_versions == 1
    w = np.array([0.0, 0.0, 4.0, 0.0, 0.0, 2.0, 0.0])          # zeros inside: replays too
    assert rec(w) == np.sum(np.trim_zeros(w) ** 2) and rec.n_versions == 1
    z = np.array([1.0, 0.0, 4.0, 1.0, 0.0, 2.0, 0.0])          # other bounds: re-records
    assert rec(z) == np.sum(np.trim_zeros(z) ** 2) and rec.n_versions == 2


# ---------------------------------------------------------------- putmask, place
def _writing(write, vals):
    """``t`` copied, then ``write(copy, t > 2, vals * t[0, 0])`` in place."""
    def f(t):
        y = t * 1.0
        write(y, t > 2, vals * np.ravel(t)[0])
        return y
    return f


def _putmask(vals):
    return _writing(np.putmask, vals)


def _place(vals):
    return _writing(np.place, vals)


@pytest.mark.parametrize("f", [_putmask(np.array([-33.0, -44.0])), _putmask(np.array([7.0])),
                               _putmask(np.zeros(0)), _place(np.array([-33.0, -44.0])),
                               _place(np.arange(1.0, 9.0)), _place(np.array([5.0]))],
                         ids=["putmask-cycle", "putmask-one", "putmask-empty", "place-cycle",
                              "place-more", "place-one"])
def test_putmask_and_place_are_numpys(f):
    """putmask cycles its values over the positions of the array, place over
    the masked elements; both in place, differentiable in the values."""
    a = np.arange(6.0).reshape(2, 3) + 0.25
    assert_same(f, a)
    check_grads(f, a)


def test_place_errors():
    a = np.arange(6.0) + 0.25
    with pytest.raises(ValueError, match="Cannot insert from an empty array"):
        value(_place(np.zeros(0)), a)
    with pytest.raises(ValueError, match="same size"):
        value(lambda t: np.putmask(t * 1.0, np.ones(2, bool), 1.0), a)
