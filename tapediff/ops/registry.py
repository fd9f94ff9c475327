"""The op registry: one entry per primitive holding all its facets.

An :class:`Op` bundles, in one place,

* ``forward(*values, **params)`` -- the NumPy implementation. It only calls
  ``np.*`` functions, so the same entry also runs on CuPy arrays and, during
  nested differentiation, on tracked values of an outer tape;
* ``shape(*avals, **params) -> Aval`` -- the output shape and dtype without
  running NumPy, for passes that size buffers;
* ``vjp(g, out, *args, **params) -> tuple`` -- cotangents of the arguments
  (``None`` is a symbolic zero), written with ``np.*`` calls so that, applied
  to tracked values, it records the reverse sweep as a tape;
* ``jvp(tangents, out, *args, **params)`` -- the tangent of the output given
  the tangents of the arguments (``None`` entries are zeros);
* ``c`` / ``cuda`` -- the spellings the code generators use (later backends).

Ops are grouped by domain in the sibling modules; importing :mod:`tapediff.ops`
registers all of them.
"""
from collections import namedtuple

import numpy as np

Aval = namedtuple("Aval", "shape dtype")
Aval.__doc__ = """Abstract value: a shape tuple and a dtype.

For weak Python scalars (``x * 2.0``) the dtype is the Python type itself
(``float``, ``int``, ``bool``), exactly what :meth:`numpy.ufunc.resolve_dtypes`
takes, so NumPy 2's promotion rules (NEP 50) are reproduced without running
the op.
"""

OPS = []          # opcode -> Op
_BINDER = None    # set by tapediff.tracer: (op, *args, **params) -> value


def set_binder(fn):
    global _BINDER
    _BINDER = fn
BY_NAME = {}      # name -> Op


class Op:
    """One primitive. See the module docstring for the meaning of each facet.

    Flags
    -----
    inactive : the output never carries a derivative (comparisons, argmax,
        floor division, ...).
    view : the NumPy forward may return memory shared with argument 0 (basic
        indexing, reshape, transpose); the interpreter never writes such a
        value in place.
    write : argument 0 is the array being updated (setitem-like ops); the
        interpreter may update it in place when its old version is dead.
    nondiff : indices of arguments that never receive a cotangent (indices,
        masks).
    inactive_outputs : for an op with several outputs, the positions of
        those that never carry a derivative.
    """

    __slots__ = ("name", "code", "forward", "shape", "vjp", "jvp", "inactive",
                 "view", "write", "nondiff", "c", "cuda", "host", "inplace", "residuals",
                 "inactive_outputs")

    def __init__(self, name, forward, shape, vjp, jvp, inactive, view, write,
                 nondiff, c, cuda, host, inactive_outputs=()):
        self.name = name
        self.code = len(OPS)
        self.forward = forward
        self.shape = shape
        self.vjp = vjp
        self.jvp = jvp
        self.inactive = inactive
        self.view = view
        self.write = write
        self.nondiff = frozenset(nondiff)
        self.c = c
        self.cuda = cuda
        self.host = host
        # several outputs: the positions of those that never carry a
        # derivative (slogdet's sign), recorded as data like an inactive op's
        self.inactive_outputs = frozenset(inactive_outputs)
        self.inplace = None   # write ops: forward that updates argument 0 in place
        # residuals(params) -> params of a call that also returns, after the
        # usual outputs, values the VJP can reuse (passed as ``residuals=``)
        # instead of recomputing them; the reverse pass uses it when set.
        self.residuals = None

    def bind(self, *args, **params):
        """Apply the op: records when an argument is tracked, computes otherwise."""
        return _BINDER(self, *args, **params)

    def bind_write(self, base, val, arrays, chain, index):
        """Functional write (never in place while recording): returns the new base."""
        return _BINDER(self, base, val, *arrays, chain=chain, index=index)

    def __repr__(self):
        return f"<op {self.name}>"


def defop(name, forward, *, shape, vjp=None, jvp=None, inactive=False,
          view=False, write=False, nondiff=(), c=None, cuda=None, host=False,
          inactive_outputs=()):
    """Register a primitive and return its :class:`Op`.

    A differentiable op (``inactive=False``) must provide both ``vjp`` and
    ``jvp``; leaving one out is a programming error caught here, at import.
    """
    if name in BY_NAME:
        raise ValueError(f"op {name!r} is already registered")
    if not inactive and (vjp is None or jvp is None):
        raise ValueError(f"differentiable op {name!r} needs both vjp and jvp rules")
    op = Op(name, forward, shape, vjp, jvp, inactive, view, write, nondiff, c, cuda, host,
            inactive_outputs)
    OPS.append(op)
    BY_NAME[name] = op
    return op


class LazyCotangent:
    """A cotangent a VJP rule describes instead of building.

    The reverse pass calls :meth:`accumulate` to add it to the cotangent
    gathered so far, or :meth:`materialize` when it is the first one. Reading
    ``x[i]`` for many ``i`` thus costs one in-place indexed add per read
    instead of a full-size zero array per read (O(n) instead of O(n^2)).
    """

    shape = dtype = None

    def materialize(self):
        raise NotImplementedError

    def accumulate(self, prev):
        raise NotImplementedError

    def astype(self, dtype):
        raise NotImplementedError


# ---------------------------------------------------------------- helpers
def aval_of(x):
    """The :class:`Aval` of a concrete value (weak dtype for Python scalars)."""
    if isinstance(x, (bool, int, float, complex)) and not isinstance(x, np.generic):
        return Aval((), type(x))
    return Aval(tuple(x.shape), x.dtype)


def strong(dt):
    """The NumPy dtype a weak Python scalar type takes on its own."""
    if isinstance(dt, np.dtype):
        return dt
    return np.dtype({bool: np.bool_, int: np.int64, float: np.float64, complex: np.complex128}[dt])


def broadcast_shapes(*shapes):
    return np.broadcast_shapes(*shapes)


def unbroadcast(g, shape):
    """Sum a cotangent over the axes that broadcasting added or stretched.

    Every binary VJP calls this one helper. ``g`` may be a tracked value, so
    only ``np.*`` functions are used.
    """
    gshape = g.shape
    shape = tuple(shape)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and gshape[lead + i] != 1)
    if axes:
        g = np.sum(g, axis=axes)
    return np.reshape(g, shape) if g.shape != shape else g


def is_float(dtype):
    """True for real floating dtypes (weak ``float`` included): the only ones with derivatives."""
    if dtype is float:
        return True
    return isinstance(dtype, np.dtype) and dtype.kind == "f"
