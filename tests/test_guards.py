"""Escapes and guards: a changed branch never yields a wrong result."""
import math
import warnings

import numpy as np
import pytest

import tapediff as td
from tapediff.api import MAX_VERSIONS_PER_SITE


def branchy(x):
    if np.sum(x) > 0:
        return np.sum(np.sin(x))
    return np.sum(x ** 2)


def test_branch_replayed_across_both_outcomes():
    tape = td.record(branchy, np.ones(3))
    for x in (np.ones(3), -np.ones(3), np.array([0.5, -0.1, 0.2]), np.array([-2.0, 0.1, 0.2])):
        v, g = tape.value_and_grad(x)
        v2, g2 = td.value_and_grad(branchy)(x)
        assert v == v2
        np.testing.assert_array_equal(g, g2)
        assert tape(x) == branchy(x)
    assert tape.n_versions == 2


def test_strict_mode_raises_branch_changed_naming_the_line():
    tape = td.record(branchy, np.ones(3), strict=True)
    with pytest.raises(td.BranchChanged, match=r"test_guards\.py:\d+.*True.*False"):
        tape(-np.ones(3))


def test_while_loop_on_data_newton_iteration():
    def newton_sqrt(a):
        x = a.copy()
        err = 1.0
        while err > 1e-12:           # bool() of traced data: a guard per iteration
            x_new = 0.5 * (x + a / x)
            err = np.max(np.abs(x_new - x))
            x = x_new
        return np.sum(x)
    a = np.array([2.0, 3.0])
    tape = td.record(newton_sqrt, a)
    for a2 in (np.array([2.5, 3.5]), np.array([100.0, 1e-3])):
        v, g = tape.value_and_grad(a2)
        np.testing.assert_allclose(v, np.sum(np.sqrt(a2)), rtol=1e-12)
        np.testing.assert_allclose(g, 0.5 / np.sqrt(a2), rtol=1e-8)


def test_loop_with_data_dependent_if_replayed_across_branches():
    def f(x):
        s = x[0] * 0
        for i in range(x.shape[0]):
            if x[i] > 0:
                s = s + x[i] ** 2
            else:
                s = s - np.sin(x[i])
        return s
    tape = td.record(f, np.array([1.0, -1.0, 2.0]))
    r = np.random.default_rng(1)
    for _ in range(6):
        x = r.normal(size=3)
        v, g = tape.value_and_grad(x)
        v2, g2 = td.value_and_grad(f)(x)
        assert v == v2
        np.testing.assert_array_equal(g, g2)


def test_thrash_at_one_site_warns_once_and_stays_correct():
    def f(x):
        k = int(np.argmax(x))       # value guard: a new version per distinct k
        return x[k] * 2.0
    n = MAX_VERSIONS_PER_SITE + 4
    tape = td.record(f, np.eye(n)[0])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for k in range(1, n):
            x = np.eye(n)[k] * (k + 1)
            v, g = tape.value_and_grad(x)
            assert v == 2.0 * (k + 1) and g[k] == 2.0 and g.sum() == 2.0
    msgs = [str(m.message) for m in w if issubclass(m.category, td.RetraceWarning)]
    assert len(msgs) == 1 and "test_guards.py" in msgs[0]


@pytest.mark.parametrize("escape, fix", [
    (lambda t: float(t[0]), "np.exp"),
    (lambda t: t[0].item(), "np.exp"),
    (lambda t: t.tolist(), "np.exp"),
    (lambda t: math.exp(t[0]), "math.exp"),
    (lambda t: np.asarray(t), "np.asarray"),
    (lambda t: np.array([t[0], t[1]]), "np.stack"),
])
def test_active_escapes_raise_and_name_the_fix(escape, fix):
    def f(x):
        escape(x * 2)
        return np.sum(x)
    with pytest.raises(td.TrackedEscape, match=fix.replace(".", r"\.").replace("(", r"\(")):
        td.grad(f)(np.ones(2))


def test_escape_inside_a_numpy_function_names_it():
    """A NumPy function without dispatch that converts its argument is named in
    the error, with advice for the ones users reach for (np.vectorize)."""
    vec = np.vectorize(lambda a: 2 * a if a > 0 else -a)
    with pytest.raises(td.TrackedEscape, match=r"vectorize\.__call__ .*np\.where"):
        td.grad(lambda x: np.sum(vec(x)))(np.ones(3))
    with pytest.raises(td.TrackedEscape, match=r"NumPy's polyval .*no rule for it"):
        td.grad(lambda c: np.polynomial.polynomial.polyval(2.0, c))(np.ones(3))
    # np.polydiv has a rule, but NumPy does not dispatch on poly1d objects
    with pytest.raises(td.TrackedEscape, match=r"NumPy's polydiv .*pass the tracked arrays"):
        td.grad(lambda c: np.sum(np.polydiv(np.poly1d(c), np.poly1d([1.0, 2.0]))[0].coeffs))(
            np.ones(3))
    with pytest.raises(td.TrackedEscape, match=r"p\.coeffs"):
        td.grad(lambda c: np.sum(np.asarray(np.poly1d(c))))(np.ones(3))
    # the user's own conversion, called from a NumPy function, is the user's
    with pytest.raises(td.TrackedEscape, match=r"^np\.asarray / np\.array"):
        td.grad(lambda x: np.sum(np.apply_along_axis(np.asarray, 0, x)))(np.ones(3))


def test_assignment_into_plain_ndarray():
    def bad(x):
        z = np.zeros(3)
        z[0] = x[0]
        return np.sum(z)
    with pytest.raises(td.TrackedEscape, match="like=x"):
        td.grad(bad)(np.ones(3))

    def bad_slice(x):
        z = np.zeros(3)
        z[:2] = x[:2]
        return np.sum(z)
    with pytest.raises(td.TrackedEscape):
        td.grad(bad_slice)(np.ones(3))

    def good(x):
        z = np.zeros(3, like=x)
        z[0] = x[0]
        z[1:] = np.zeros_like(x)[1:] + x[1:] * 2
        return np.sum(z ** 2)
    np.testing.assert_allclose(td.grad(good)(np.ones(3)), [2.0, 8.0, 8.0])


def test_inactive_escapes_record_value_guards():
    def f(w, data):
        scale = float(np.max(data))     # data is not differentiated: a value guard
        n = int(np.sum(data > 0))
        buf = np.zeros(2)
        buf[0] = data[0]                # into a plain ndarray: guarded
        return np.sum(w * scale) * n + np.sum(buf)
    w = np.ones(3)
    d1, d2 = np.array([1.0, 2.0, 3.0]), np.array([1.0, -2.0, 5.0])
    tape = td.record(f, w, d1)
    assert tape(w, d1) == f(w, d1)
    assert tape(w, d2) == f(w, d2)          # guards fail, re-recorded: right answer
    np.testing.assert_allclose(tape.gradient(w, d2), td.grad(f)(w, d2))
    assert len(tape.tape.guards) >= 3


def test_data_dependent_shape_records_a_guard():
    def f(x, m):
        return np.sum(x[m] ** 2)
    x = np.arange(1.0, 5.0)
    m1 = np.array([True, False, True, False])
    m2 = np.array([True, True, True, False])
    tape = td.record(f, x, m1)
    for m in (m1, m2, ~m1):
        v, g = tape.value_and_grad(x, m)
        v2, g2 = td.value_and_grad(f)(x, m)
        assert v == v2
        np.testing.assert_array_equal(g, g2)


def test_bool_of_constant_records_no_guard():
    def f(x):
        z = np.zeros(3, like=x)
        if np.sum(z) == 0:                   # does not depend on inputs
            return np.sum(x)
        return np.sum(x) * 2
    assert len(td.record(f, np.ones(3)).tape.guards) == 0


def test_as_strided_views_are_unsupported():
    from numpy.lib.stride_tricks import as_strided

    def f(x):
        v = as_strided(x, shape=(2, 2), strides=(8, 8))
        v[0, 0] = 5.0
        return np.sum(x)
    with pytest.raises(td.UnsupportedOperation, match="as_strided"):
        td.grad(f)(np.ones(3))
