"""The C argument test of repeated-call paths (csrc/tapediff_argcheck.h):
it must answer exactly what the Python tests it replaces answer, and a call
path must behave the same with it and without it."""
import numpy as np
import pytest

import tapediff as td
from tapediff import fastpath
from tapediff.runtime import argcheck, compiler_available, compiler_status

needs_cc = pytest.mark.skipif(not compiler_available(), reason=compiler_status())


class Sub(np.ndarray):
    pass


def python_answer(x, shape, dtype, writeable):
    """The Python path's tests (fastpath._emit_arrays), without its copy."""
    if type(x) is not np.ndarray or x.shape != shape or x.dtype != dtype:
        return False
    return bool(x.flags.c_contiguous and (x.flags.writeable or not writeable))


def candidates():
    base = np.arange(24.0).reshape(2, 3, 4)
    ro = base.copy()
    ro.flags.writeable = False
    return [base, base.copy(order="F"), base[:, ::-1], base.view(Sub), base.astype(np.float32),
            base.astype(">f8"), base.astype(np.int64), base.reshape(6, 4), ro,
            np.ones((1, 3, 4))[:, :, :].transpose(0, 1, 2), np.ones((2, 3, 4))[:, :, ::2],
            np.broadcast_to(np.ones(4), (2, 3, 4)), np.zeros((2, 0, 4)), np.float64(1.0), 3.0,
            [[1.0]], None]


@needs_cc
@pytest.mark.parametrize("writeable", [False, True])
@pytest.mark.parametrize("want", [((2, 3, 4), np.float64), ((1, 3, 4), np.float64),
                                  ((2, 0, 4), np.float64), ((), np.float64),
                                  ((2, 3, 4), np.float32), ((6, 4), np.float64)])
def test_the_c_test_answers_as_the_python_tests(want, writeable):
    check = argcheck.checker()
    assert check is not None
    shape, dtype = want
    dims, dtypes = argcheck.spec([shape], [dtype], writeable=writeable)
    for x in candidates() + [np.array(2.0), np.ones((1, 3, 4))[:, :, :]]:
        assert check(dims, dtypes, x) == python_answer(x, shape, np.dtype(dtype), writeable), x
    # several arrays: every one must pass
    d2, t2 = argcheck.spec([(2, 3), (4,)], [np.float64, np.int64])
    assert check(d2, t2, np.ones((2, 3)), np.arange(4))
    assert not check(d2, t2, np.ones((2, 3)), np.arange(4.0))
    assert not check(d2, t2, np.ones((3, 2)), np.arange(4))
    with pytest.raises(ValueError, match="do not fit"):
        check(d2, t2, np.ones((2, 3)))
    with pytest.raises(TypeError, match="numpy dtypes"):
        check(d2, (np.float64, None), np.ones((2, 3)), np.arange(4))


@needs_cc
@pytest.mark.parametrize("with_c", [True, False])
def test_a_call_path_behaves_the_same_without_the_c_test(monkeypatch, with_c):
    """Contiguous arguments, a transposed one (copied), a subclass (the full
    path) and a float32 array (refused by the full path), with and without
    the C test."""
    real = argcheck.checker()
    if not with_c:
        monkeypatch.setattr(argcheck, "checker", lambda: None)

    def f(w, x):
        return np.sum(np.tanh(x @ w["a"]) * w["b"])
    rng = np.random.default_rng(0)
    w = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    x = rng.normal(size=(4, 3))
    ct = td.record(f, w, x).compile()
    ct.value_and_grad(w, x)          # (the first call runs the interpreter, building the
    want = ct.value_and_grad(w, x)   # gradient tape; the second is compiled)
    for args in [(w, x), ({"a": np.asfortranarray(w["a"]), "b": w["b"]}, x),
                 (w, x.view(Sub)), (w, x)]:
        v, g = ct.value_and_grad(*args)
        assert v == want[0]
        np.testing.assert_array_equal(g["a"], want[1]["a"])
    with pytest.raises(td.ShapeMismatch, match="float32"):
        ct.value_and_grad(w, x.astype(np.float32))
    path = ct._fast.latest
    assert any(v is real for v in path.run.__globals__.values()) == with_c


def test_the_generated_test_falls_back_to_python(monkeypatch):
    monkeypatch.setattr(argcheck, "checker", lambda: None)
    m = fastpath.matcher(({"w": np.ones(2)}, np.zeros((2, 2))))
    assert "if not " not in m.source
    assert m(({"w": np.zeros(2)}, np.ones((2, 2)))) is not None
    assert m(({"w": np.zeros(3)}, np.ones((2, 2)))) is None
