"""Exact agreement with NumPy: a function run through tapediff (``td.vjp``'s
value) and run by NumPy give equal values, dtypes and shapes; and the
seeded normal draws the op tests share."""
import numpy as np

import tapediff as td


def value(f, *args):
    """``f(*args)`` computed through tapediff (every argument tracked)."""
    return td.vjp(f, *args)[0]


def assert_same(f, *args):
    """``f`` through tapediff equals ``f`` in NumPy: values (NaN where NumPy
    has NaN), dtypes and shapes, for each item of a tuple result."""
    got, want = value(f, *args), f(*args)
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert np.asarray(g).dtype == np.asarray(w).dtype
        assert np.shape(g) == np.shape(w)
        np.testing.assert_array_equal(g, w)


def randn(*shape, seed=0, dtype=np.float64):
    """Standard normal values of ``shape``, seeded (the same draw every run)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)
