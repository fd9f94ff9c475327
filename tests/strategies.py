"""Hypothesis strategies shared by the op tests.

Inputs come with random layouts: C-contiguous, Fortran order, strided
(every other element of a larger array) and negative-stride views, so that
rules never assume a memory layout.
"""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

LAYOUTS = ("c", "f", "strided", "reversed")


def relayout(a, layout):
    """The same values as ``a`` in another memory layout."""
    if a.ndim == 0 or layout == "c":
        return a
    if layout == "f":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros(tuple(2 * n for n in a.shape), a.dtype)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    rev = np.ascontiguousarray(a[tuple(slice(None, None, -1) for _ in a.shape)])
    return rev[tuple(slice(None, None, -1) for _ in a.shape)]


def shapes(min_dims=0, max_dims=3, min_side=0, max_side=4):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


@st.composite
def arrays(draw, shape, lo=-2.0, hi=2.0, dtype=np.float64, avoid=None):
    """A float array of ``shape`` in [lo, hi] with a random layout.

    ``avoid`` is a half-width around 0 to keep away from (for 1/x, log, ...).
    """
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    a = rng.uniform(lo, hi, size=shape)
    if avoid:
        a = np.where(np.abs(a) < avoid, np.sign(a + 1e-300) * avoid + a, a)
    a = a.astype(dtype)
    return relayout(a, draw(st.sampled_from(LAYOUTS)))


@st.composite
def broadcast_pair(draw, lo=-2.0, hi=2.0, max_dims=3, avoid=None, min_side=0):
    """Two arrays with mutually broadcastable shapes."""
    sh = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=max_dims, min_side=min_side,
                                                max_side=3))
    return (draw(arrays(sh.input_shapes[0], lo, hi, avoid=avoid)),
            draw(arrays(sh.input_shapes[1], lo, hi, avoid=avoid)))


def axis_for(draw, ndim, allow_none=True, allow_tuple=True):
    """An axis argument valid for ``ndim`` dimensions (int, negative int, tuple or None)."""
    choices = []
    if allow_none:
        choices.append(st.none())
    if ndim:
        choices.append(st.integers(-ndim, ndim - 1))
        if allow_tuple:
            choices.append(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                                    unique=True).map(tuple))
    return draw(st.one_of(*choices)) if choices else None
