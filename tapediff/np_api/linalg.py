"""Linear-algebra handlers: products, einsum, solves, decompositions and norms.

Primitives (``tapediff.ops.linalg``): ``matmul``, ``einsum``, ``solve``,
``inv``, ``det``, ``slogdet``, ``cholesky``, ``eigh``, ``eigvalsh``, ``svd``,
``svdvals``, ``pinv``, ``qr`` and the gufuncs ``vecdot``, ``matvec``, ``vecmat``.
Everything else here is a composite of those and of shape/elementwise ops,
written the way NumPy computes it (``tensordot`` is transpose + reshape +
matmul, ``dot`` is ``matmul`` or ``tensordot``, ``norm(ord=2 / -2 / 'nuc')``
of matrices, ``cond`` and ``matrix_rank`` go through the singular values,
``svd(hermitian=True)`` through ``eigh``, ...).

Not supported (they raise :class:`~tapediff.UnsupportedOperation`): a
general eigendecomposition (``eig``, ``eigvals``: complex-valued),
``qr(mode='raw')``, the derivative of a rectangular ``svd``
with ``full_matrices=True`` or of a tall ``qr`` with ``mode='complete'``
(their extra vectors have none), complex inputs, ``einsum(order='F')``.

Differences from NumPy, on purpose:

* ``norm`` (2-norm and Frobenius) has derivative 0 at ``x = 0`` (a
  subgradient, as PyTorch returns; JAX returns NaN there). ``ord=1`` gives 0
  there too (``sign(0)``); other p-norms give NaN at 0, as in JAX;
* ``det`` / ``slogdet`` differentiate through ``inv(a)``: their gradient at a
  singular matrix raises ``LinAlgError`` (the value is fine);
* ``einsum`` returns a copy where NumPy would return a writeable *view*
  (``'ii->i'``); pure transpositions (``'ij->ji'``) are views as in NumPy;
* ``multi_dot`` falls back to left-to-right order if NumPy's private
  chain-order helpers are unavailable.
"""
import operator
import warnings
from collections import namedtuple

import numpy as np

from ..errors import UnsupportedOperation
from ..numpy_dispatch import implements
from ..ops import linalg as L
from ..ops.linalg import (CHOLESKY, DET, EIGH, EIGVALSH, EINSUM, INV, MATMUL, PINV, QR,
                          SLOGDET, SOLVE, SOLVE_TRIANGULAR, SVD, SVDVALS, label_sizes)
from ..tracer import Tracked, bind, current

try:   # NumPy's own result type, so that ``type(result)`` matches
    from numpy.linalg._linalg import SlogdetResult
except ImportError:   # pragma: no cover
    SlogdetResult = namedtuple("SlogdetResult", "sign logabsdet")


_NoValue = np._NoValue


def _arr(x):
    return x if type(x) is Tracked else np.asarray(x)


def _unsupported(what, why=""):
    return UnsupportedOperation(f"{what} is not supported by tapediff{why}")


def _no_complex(name, *xs):
    for x in xs:
        if x.dtype.kind == "c":
            raise _unsupported(f"{name} with complex input", " (real inputs only)")


def _out(r, out):
    if out is None:
        return r
    out[...] = r
    return out


def _norm_axis(ax, ndim, name="axis"):
    ax = operator.index(ax)
    if not -ndim <= ax < ndim:
        raise np.exceptions.AxisError(ax, ndim, name)
    return ax % ndim


def _moveaxis(x, src, dst):
    nd = x.ndim
    src, dst = _norm_axis(src, nd, "source"), _norm_axis(dst, nd, "destination")
    order = [i for i in range(nd) if i != src]
    order.insert(dst, src)
    return np.transpose(x, order)


# ================================================================ products
@implements(np.matmul)
def matmul(a, b, out=None, **kw):
    if kw:
        raise _unsupported(f"np.matmul with {sorted(kw)}")
    return _out(bind(MATMUL, a, b), out)


@implements(np.linalg.matmul)
def linalg_matmul(x1, x2, /):
    return bind(MATMUL, x1, x2)


@implements(np.dot)
def dot(a, b, out=None):
    a, b = _arr(a), _arr(b)
    if a.ndim == 0 or b.ndim == 0:
        r = a * b
    elif a.ndim <= 2 and b.ndim <= 2 or b.ndim == 1 or a.ndim == 1:
        r = bind(MATMUL, a, b)      # matmul agrees with dot for these cases
    else:
        r = tensordot(a, b, axes=([-1], [-2]))
    return _out(r, out)


@implements(np.vdot)
def vdot(a, b):
    a, b = _arr(a), _arr(b)
    _no_complex("np.vdot", a, b)
    return bind(MATMUL, np.reshape(a, (a.size,)), np.reshape(b, (b.size,)))


@implements(np.inner)
def inner(a, b):
    a, b = _arr(a), _arr(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"shapes {a.shape} and {b.shape} not aligned: {a.shape[-1]} (dim "
                         f"{a.ndim - 1}) != {b.shape[-1]} (dim {b.ndim - 1})")
    return tensordot(a, b, axes=([-1], [-1]))


@implements(np.outer)
def outer(a, b, out=None):
    a, b = _arr(a), _arr(b)
    r = np.reshape(a, (a.size, 1)) * np.reshape(b, (1, b.size))
    return _out(r, out)


@implements(np.linalg.diagonal)
def linalg_diagonal(x, /, *, offset=0):
    return np.diagonal(x, offset=offset, axis1=-2, axis2=-1)


@implements(np.linalg.trace)
def linalg_trace(x, /, *, offset=0, dtype=None):
    return np.trace(x, offset=offset, axis1=-2, axis2=-1, dtype=dtype)


@implements(np.linalg.matrix_transpose, np.matrix_transpose)
def matrix_transpose(x, /):
    if np.ndim(x) < 2:
        raise ValueError(f"Input array must be at least 2-dimensional, but it is "
                         f"{np.ndim(x)}")
    return np.swapaxes(x, -1, -2)


@implements(np.linalg.outer)
def linalg_outer(x1, x2, /):
    x1, x2 = _arr(x1), _arr(x2)
    if x1.ndim != 1 or x2.ndim != 1:
        raise ValueError("Input arrays must be one-dimensional, but they are "
                         f"x1.ndim={x1.ndim} and x2.ndim={x2.ndim}.")
    return outer(x1, x2)


def _prod(xs):
    p = 1
    for x in xs:
        p *= int(x)
    return p


@implements(np.tensordot)
def tensordot(a, b, axes=2):
    """NumPy's algorithm: transpose both, reshape to matrices, one matmul."""
    try:
        iter(axes)
    except TypeError:
        axes = operator.index(axes)
        axes_a, axes_b = list(range(-axes, 0)), list(range(0, axes))
    else:
        axes_a, axes_b = axes
    try:
        axes_a = list(axes_a)
    except TypeError:
        axes_a = [axes_a]
    try:
        axes_b = list(axes_b)
    except TypeError:
        axes_b = [axes_b]
    a, b = _arr(a), _arr(b)
    as_, bs = a.shape, b.shape
    nda, ndb = a.ndim, b.ndim
    if len(axes_a) != len(axes_b):
        raise ValueError("shape-mismatch for sum")
    axes_a = [_norm_axis(x, nda) for x in axes_a]
    axes_b = [_norm_axis(x, ndb) for x in axes_b]
    if any(as_[i] != bs[j] for i, j in zip(axes_a, axes_b)):
        raise ValueError("shape-mismatch for sum")
    notin_a = [k for k in range(nda) if k not in axes_a]
    notin_b = [k for k in range(ndb) if k not in axes_b]
    n2 = _prod(as_[i] for i in axes_a)
    at = np.reshape(np.transpose(a, notin_a + axes_a), (_prod(as_[i] for i in notin_a), n2))
    bt = np.reshape(np.transpose(b, axes_b + notin_b), (n2, _prod(bs[i] for i in notin_b)))
    return np.reshape(bind(MATMUL, at, bt), tuple(as_[i] for i in notin_a) +
                      tuple(bs[i] for i in notin_b))


@implements(np.linalg.tensordot)
def linalg_tensordot(x1, x2, /, *, axes=2):
    return tensordot(x1, x2, axes=axes)


@implements(np.kron)
def kron(a, b):
    a, b = _arr(a), _arr(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    nd = max(a.ndim, b.ndim)
    as_ = (1,) * (nd - a.ndim) + a.shape
    bs = (1,) * (nd - b.ndim) + b.shape
    ae = np.reshape(a, tuple(x for n in as_ for x in (n, 1)))
    be = np.reshape(b, tuple(x for n in bs for x in (1, n)))
    return np.reshape(ae * be, tuple(m * n for m, n in zip(as_, bs)))


_CROSS_MSG = "incompatible dimensions for cross product\n(dimension must be 2 or 3)"


@implements(np.cross)
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """NumPy's algorithm (same products and differences, so bit-identical results)."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = _arr(a), _arr(b)
    if a.ndim < 1 or b.ndim < 1:
        raise ValueError("At least one array has zero dimension")
    a = _moveaxis(a, _norm_axis(axisa, a.ndim, "axisa"), -1)
    b = _moveaxis(b, _norm_axis(axisb, b.ndim, "axisb"), -1)
    na, nb = a.shape[-1], b.shape[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError(_CROSS_MSG)
    if na == 2 or nb == 2:
        warnings.warn("Arrays of 2-dimensional vectors are deprecated. Use arrays of "
                      "3-dimensional vectors instead. (deprecated in NumPy 2.0)",
                      DeprecationWarning, stacklevel=3)
    dtype = np.promote_types(a.dtype, b.dtype)
    if dtype == np.bool_:
        raise TypeError("numpy boolean subtract, the `-` operator, is not supported, use "
                        "the bitwise_xor, the `^` operator, or the logical_xor function "
                        "instead.")
    a = a.astype(dtype) if a.dtype != dtype else a
    b = b.astype(dtype) if b.dtype != dtype else b
    a0, a1, b0, b1 = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    if na == 2 and nb == 2:
        return a0 * b1 - a1 * b0
    shape = tuple(np.broadcast_shapes(a0.shape, b0.shape)) + (3,)
    cp = np.zeros(shape, dtype, like=a if type(a) is Tracked else b)
    if na == 2:
        b2 = b[..., 2]
        cp[..., 0] = a1 * b2
        cp[..., 1] = -(a0 * b2)
    elif nb == 2:
        a2 = a[..., 2]
        cp[..., 0] = -(a2 * b1)
        cp[..., 1] = a2 * b0
    else:
        a2, b2 = a[..., 2], b[..., 2]
        cp[..., 0] = a1 * b2 - a2 * b1
        cp[..., 1] = a2 * b0 - a0 * b2
    cp[..., 2] = a0 * b1 - a1 * b0
    return _moveaxis(cp, -1, _norm_axis(axisc, cp.ndim, "axisc"))


@implements(np.linalg.cross)
def linalg_cross(x1, x2, /, *, axis=-1):
    x1, x2 = _arr(x1), _arr(x2)
    if x1.shape[axis] != 3 or x2.shape[axis] != 3:
        raise ValueError("Both input arrays must be (arrays of) 3-dimensional vectors, "
                         f"but they are {x1.shape[axis]} and {x2.shape[axis]} "
                         "dimensional instead.")
    return cross(x1, x2, axis=axis)


@implements(np.linalg.multi_dot)
def multi_dot(arrays, *, out=None):
    n = len(arrays)
    if n < 2:
        raise ValueError("Expecting at least two arrays.")
    if n == 2:
        return dot(arrays[0], arrays[1], out=out)
    arrays = [_arr(a) for a in arrays]
    nd_first, nd_last = arrays[0].ndim, arrays[-1].ndim
    if nd_first == 1:
        arrays[0] = np.reshape(arrays[0], (1, arrays[0].shape[0]))
    if nd_last == 1:
        arrays[-1] = np.reshape(arrays[-1], (arrays[-1].shape[0], 1))
    for a in arrays:
        if a.ndim != 2:
            raise np.linalg.LinAlgError(f"{a.ndim}-dimensional array given. Array must be "
                                        "two-dimensional")
    try:
        from numpy.linalg import _linalg as L
        if n == 3:
            result = L._multi_dot_three(*arrays, out=None)
        else:
            result = L._multi_dot(arrays, L._multi_dot_matrix_chain_order(arrays), 0, n - 1)
    except (ImportError, AttributeError, TypeError):   # pragma: no cover
        result = arrays[0]
        for a in arrays[1:]:
            result = bind(MATMUL, result, a)
    if nd_first == 1 and nd_last == 1:
        result = result[0, 0]
    elif nd_first == 1 or nd_last == 1:
        result = np.reshape(result, (result.size,))
    return _out(result, out)


@implements(np.linalg.matrix_power)
def matrix_power(a, n):
    a = _arr(a)
    _assert_stacked_square(a)
    try:
        n = operator.index(n)
    except TypeError as e:
        raise TypeError("exponent must be an integer") from e
    if n == 0:
        eye = np.broadcast_to(np.eye(a.shape[-2], dtype=a.dtype), a.shape)
        return np.zeros(a.shape, a.dtype, like=a) + eye
    if n < 0:
        a = inv(a)
        n = -n
    if n == 1:
        return a
    if n == 2:
        return bind(MATMUL, a, a)
    if n == 3:
        return bind(MATMUL, bind(MATMUL, a, a), a)
    z = result = None
    while n > 0:
        z = a if z is None else bind(MATMUL, z, z)
        n, bit = divmod(n, 2)
        if bit:
            result = z if result is None else bind(MATMUL, result, z)
    return result


if L.VECDOT is not None:
    @implements(np.linalg.vecdot)
    def linalg_vecdot(x1, x2, /, *, axis=-1):
        x1, x2 = _arr(x1), _arr(x2)
        _no_complex("np.linalg.vecdot", x1, x2)
        if axis != -1:
            x1 = _moveaxis(x1, axis, -1)
            x2 = _moveaxis(x2, axis, -1)
        return bind(L.VECDOT, x1, x2)


# ================================================================ einsum
_LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _sublist(sub):
    out = ""
    for s in sub:
        if s is Ellipsis:
            out += "..."
        else:
            s = operator.index(s)
            if not 0 <= s < 52:
                raise ValueError("subscript is not within the valid range [0, 52)")
            out += _LABELS[s]
    return out


def _interleaved(args):
    ops, subs = list(args[0::2]), [_sublist(s) for s in args[1::2]]
    out = None
    if len(args) % 2:          # trailing output sublist
        out = _sublist(args[-1])
        ops = ops[:-1]
    return ",".join(subs) + ("" if out is None else "->" + out), ops


def normalize_einsum(subscripts, shapes):
    """Explicit subscripts with no ellipsis and no spaces, for operands of ``shapes``."""
    s = subscripts.replace(" ", "")
    explicit = "->" in s
    ins, out = s.split("->") if explicit else (s, None)
    if out is not None and "->" in out:
        raise ValueError("einstein sum subscript string contains more than one '->'")
    ins = ins.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"more operands provided to einstein sum function ({len(shapes)}) "
                         f"than specified in the subscripts string ({len(ins)})"
                         if len(shapes) > len(ins) else
                         "fewer operands provided to einstein sum function than specified "
                         "in the subscripts string")
    for term in ins + ([out] if out is not None else []):
        bad = set(term.replace("...", "")) - set(_LABELS)
        if bad or term.count("...") > 1 or "." in term.replace("...", ""):
            raise ValueError(f"invalid subscript {term!r} in einstein sum subscripts string")
    used = set(s)
    n_ell = []
    for term, shape in zip(ins, shapes):
        labels = len(term.replace("...", ""))
        if "..." in term:
            if labels > len(shape):
                raise ValueError("einstein sum subscripts string contains too many "
                                 "subscripts for operand")
            n_ell.append(len(shape) - labels)
        else:
            if labels != len(shape):
                raise ValueError(
                    f"operand has {len(shape)} dimensions but the einstein sum subscripts "
                    f"string {term!r} has {labels}")
            n_ell.append(0)
    E = max(n_ell, default=0)
    free = [c for c in _LABELS if c not in used]
    if E > len(free):
        raise _unsupported("np.einsum with more than 52 labels (ellipsis included)")
    ell = "".join(free[:E])
    ins = [t.replace("...", ell[E - n:]) for t, n in zip(ins, n_ell)]
    if out is None:
        counts = {}
        for t in ins:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in ell))
    else:
        if "..." in out:
            out = out.replace("...", ell)
        elif E and any(n_ell):
            raise ValueError("output has more dimensions than subscripts given in einstein "
                             "sum, but no '...' ellipsis provided to broadcast the extra "
                             "dimensions.")
        if len(set(out)) != len(out):
            raise ValueError(f"einstein sum subscripts string includes output subscript "
                             f"{out!r} multiple times")
        missing = set(out) - set("".join(ins))
        if missing:
            raise ValueError(f"einstein sum subscripts string included output subscript "
                             f"{sorted(missing)[0]!r} which never appeared in an input")
    return ",".join(ins) + "->" + out


@implements(np.einsum)
def einsum(*operands, out=None, dtype=None, order="K", casting="safe", optimize=False):
    """``np.einsum``; ``optimize`` is accepted and ignored (tapediff picks its own path)."""
    if not operands:
        raise ValueError("No input operands")
    if isinstance(operands[0], str):
        subscripts, ops = operands[0], list(operands[1:])
    else:
        subscripts, ops = _interleaved(operands)
    ops = [_arr(o) for o in ops]
    _no_complex("np.einsum", *ops)
    if order not in ("K", "A", "C"):
        raise _unsupported(f"np.einsum(..., order={order!r})", " (only 'K', 'A', 'C')")
    if dtype is not None:
        dt = np.dtype(dtype)
        for o in ops:
            if not np.can_cast(o.dtype, dt, casting):
                raise TypeError(f"Cannot cast array data from {o.dtype!r} to {dt!r} "
                                f"according to the rule {casting!r}")
        ops = [o.astype(dt) if o.dtype != dt else o for o in ops]
    subs = normalize_einsum(subscripts, [o.shape for o in ops])
    ins, res = subs.split("->")
    ins = ins.split(",")
    label_sizes(ins, [o.shape for o in ops])          # raises on mismatched sizes
    if (len(ops) == 1 and len(set(ins[0])) == len(ins[0]) and sorted(ins[0]) == sorted(res)):
        # a pure transposition: a view, as in NumPy
        r = np.transpose(ops[0], [ins[0].index(c) for c in res])
        return _out(r, out)
    path = None
    if len(ops) >= 2:
        dummies = [np.broadcast_to(np.zeros((), np.float64), o.shape) for o in ops]
        path = tuple(np.einsum_path(subs, *dummies, optimize="greedy")[0])
    r = bind(EINSUM, *ops, subscripts=subs, path=path)
    if out is not None:
        _check_out_cast(r, out, casting)
    return _out(r, out)


def _check_out_cast(r, out, casting):
    if not np.can_cast(r.dtype, out.dtype, casting):
        raise TypeError(f"Cannot cast einsum result from {r.dtype} to {out.dtype} according "
                        f"to the rule {casting!r}")


# ================================================================ solves and decompositions
def _assert_stacked_square(*arrays):
    for a in arrays:
        if a.ndim < 2:
            raise np.linalg.LinAlgError(f"{a.ndim}-dimensional array given. Array must be at "
                                        "least two-dimensional")
        if a.shape[-1] != a.shape[-2]:
            raise np.linalg.LinAlgError("Last 2 dimensions of the array must be square")


def _float_input(name, *xs):
    _no_complex(name, *xs)


def _triangle(a):
    """``True``/``False`` (its lower/upper triangle) when tracked ``a`` is a
    Cholesky factor as recorded, or the transpose of its last two axes:
    exactly triangular on every replay, whatever the data (the factor's
    other triangle is zeroed, and a write into it makes another slot).
    Otherwise None."""
    if type(a) is not Tracked:
        return None
    a = current(a)
    st = a._st
    lower = a._t.triangular.get(a._s if st is None else st.s)
    if lower is None or not a._ch:
        return lower
    if len(a._ch) == 1 and a._ch[0][0] == "transpose":
        axes = dict(a._ch[0][1])["axes"]
        nd = len(axes)
        if tuple(axes) == tuple(range(nd - 2)) + (nd - 1, nd - 2):
            return not lower
    return None


@implements(np.linalg.solve)
def solve(a, b):
    """``np.linalg.solve``; with a Cholesky factor (or its transpose) as the
    matrix, ``solve_triangular``, which substitutes where a general solve
    factors the matrix again. Decided by how the matrix was made, never by
    its values, so recording and every replay compute the same way."""
    a, b = _arr(a), _arr(b)
    _float_input("np.linalg.solve", a, b)
    lower = _triangle(a)
    if lower is not None:
        return bind(SOLVE_TRIANGULAR, a, b, lower=lower)
    return bind(SOLVE, a, b)


@implements(np.linalg.inv)
def inv(a):
    a = _arr(a)
    _float_input("np.linalg.inv", a)
    return bind(INV, a)


@implements(np.linalg.det)
def det(a):
    a = _arr(a)
    _float_input("np.linalg.det", a)
    return bind(DET, a)


@implements(np.linalg.slogdet)
def slogdet(a):
    """``(sign, logabsdet)`` as NumPy's named tuple; ``sign`` carries no derivative."""
    a = _arr(a)
    _float_input("np.linalg.slogdet", a)
    return SlogdetResult(*bind(SLOGDET, a))


@implements(np.linalg.cholesky)
def cholesky(a, /, *, upper=False):
    a = _arr(a)
    _float_input("np.linalg.cholesky", a)
    out = bind(CHOLESKY, a, upper=bool(upper))
    if type(out) is Tracked:
        out._t.triangular[out._s] = not upper     # (see _triangle)
    return out


try:
    from numpy.linalg._linalg import EighResult
except ImportError:  # pragma: no cover - older layout
    EighResult = namedtuple("EighResult", "eigenvalues eigenvectors")


def _uplo(UPLO):
    if UPLO not in ("L", "U"):
        raise ValueError(f"UPLO argument must be 'L' or 'U', got {UPLO!r}")
    return UPLO


@implements(np.linalg.eigh)
def eigh(a, UPLO="L"):
    """``(eigenvalues, eigenvectors)`` as NumPy's named tuple; see ``ops.linalg.EIGH``."""
    a = _arr(a)
    _float_input("np.linalg.eigh", a)
    _assert_stacked_square(a)
    return EighResult(*bind(EIGH, a, UPLO=_uplo(UPLO)))


@implements(np.linalg.eigvalsh)
def eigvalsh(a, UPLO="L"):
    """The eigenvalues, as NumPy computes them; see ``ops.linalg.EIGVALSH``."""
    a = _arr(a)
    _float_input("np.linalg.eigvalsh", a)
    _assert_stacked_square(a)
    return bind(EIGVALSH, a, UPLO=_uplo(UPLO))


try:
    from numpy.linalg._linalg import SVDResult
except ImportError:  # pragma: no cover - older layout
    SVDResult = namedtuple("SVDResult", "U S Vh")


def _stacked_matrices(name, a):
    _float_input(name, a)
    if a.ndim < 2:
        raise np.linalg.LinAlgError(f"{a.ndim}-dimensional array given. Array must be at "
                                    "least two-dimensional")


@implements(np.linalg.svd)
def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """``np.linalg.svd``; see ``ops.linalg.SVD`` (``hermitian=True``: NumPy's
    own route through ``eigh``, recorded as its operations)."""
    a = _arr(a)
    _stacked_matrices("np.linalg.svd", a)
    if hermitian:
        if not compute_uv:
            return np.flip(np.sort(abs(eigvalsh(a)), axis=-1), axis=-1)
        w, u = eigh(a)
        sgn, w = np.copysign(1.0, w), abs(w)     # (NumPy's: a zero eigenvalue keeps a sign)
        order = np.flip(np.argsort(w, axis=-1), axis=-1)
        sgn = np.take_along_axis(sgn, order, axis=-1)
        u = np.take_along_axis(u, order[..., None, :], axis=-1)
        return SVDResult(u, np.take_along_axis(w, order, axis=-1),
                         np.swapaxes(u * sgn[..., None, :], -1, -2))
    if not compute_uv:
        return bind(SVDVALS, a)
    return SVDResult(*bind(SVD, a, full_matrices=bool(full_matrices)))


if hasattr(np.linalg, "svdvals"):
    @implements(np.linalg.svdvals)
    def svdvals(x, /):
        """The singular values, as NumPy computes them; see ``ops.linalg.SVDVALS``."""
        return svd(x, compute_uv=False)


@implements(np.linalg.pinv)
def pinv(a, rcond=None, hermitian=False, *, rtol=_NoValue):
    """``np.linalg.pinv`` with NumPy's cutoff rules; see ``ops.linalg.PINV``."""
    a = _arr(a)
    _float_input("np.linalg.pinv", a)
    if rcond is None:
        if rtol is _NoValue:
            rcond = 1e-15
        elif rtol is None:
            rcond = max(a.shape[-2:]) * np.finfo(a.dtype if a.dtype.kind == "f"
                                                 else np.float64).eps
        else:
            rcond = rtol
    elif rtol is not _NoValue:
        raise ValueError("`rtol` and `rcond` can't be both set.")
    if type(rcond) is Tracked or np.ndim(rcond) != 0:
        raise _unsupported("np.linalg.pinv with an array or tracked rcond/rtol",
                           " (a Python or NumPy scalar only)")
    if a.ndim < 2:
        raise np.linalg.LinAlgError(f"{a.ndim}-dimensional array given. Array must be at "
                                    "least two-dimensional")
    return bind(PINV, a, rcond=float(rcond), hermitian=bool(hermitian))


@implements(np.linalg.matrix_rank)
def matrix_rank(A, tol=None, hermitian=False, *, rtol=None):
    """NumPy's count of singular values above the tolerance (an integer:
    no derivative)."""
    if rtol is not None and tol is not None:
        raise ValueError("`tol` and `rtol` can't be both set.")
    A = _arr(A)
    if A.ndim < 2:
        return int(not np.all(A == 0))
    S = svd(A, compute_uv=False, hermitian=hermitian)
    if type(tol) is Tracked or type(rtol) is Tracked:
        raise _unsupported("np.linalg.matrix_rank with a tracked tolerance")
    if tol is None:
        if rtol is None:
            rtol = max(A.shape[-2:]) * np.finfo(S.dtype).eps
        else:
            rtol = np.asarray(rtol)[..., np.newaxis]
        tol = np.max(S, axis=-1, keepdims=True, initial=0) * rtol
    else:
        tol = np.asarray(tol)[..., np.newaxis]
    return np.count_nonzero(S > tol, axis=-1)


@implements(np.linalg.cond)
def cond(x, p=None):
    """NumPy's condition number: ratio of singular values for ``p`` None/2/-2,
    else ``norm(x, p) * norm(inv(x), p)``; NaN (a singular matrix) becomes
    inf unless ``x`` holds a NaN."""
    x = _arr(x)
    _float_input("np.linalg.cond", x)
    if x.ndim >= 2 and x.shape[-1] * x.shape[-2] == 0:
        raise np.linalg.LinAlgError("cond is not defined on empty arrays")
    if p is None or p == 2 or p == -2:
        s = svd(x, compute_uv=False)
        num, den = (s[..., -1], s[..., 0]) if p == -2 else (s[..., 0], s[..., -1])
        # x / 0 is inf, 0 / 0 NaN (then inf below) for NumPy: inf either way,
        # without a division by zero on every replay
        zero = den == 0
        r = np.where(zero, np.inf, num / np.where(zero, 1, den))
    else:
        _assert_stacked_square(x)
        # NumPy inverts ignoring errors: a singular matrix gives NaN, then
        # inf below. Here the singular ones (slogdet's sign 0, the same LU
        # test as inv's) are inverted as the identity and their result set
        singular = slogdet(x)[0] == 0
        eye = np.eye(x.shape[-1], dtype=x.dtype)
        ok = np.where(singular[..., None, None], eye, x)
        with np.errstate(all="ignore"):
            r = norm(x, p, axis=(-2, -1)) * norm(inv(ok), p, axis=(-2, -1))
        r = np.where(singular, np.nan, r)
    nan = np.isnan(r) & ~np.any(np.isnan(x), axis=(-2, -1))
    return np.where(nan, np.inf, r)


try:
    from numpy.linalg._linalg import QRResult
except ImportError:  # pragma: no cover - older layout
    QRResult = namedtuple("QRResult", "Q R")


@implements(np.linalg.qr)
def qr(a, mode="reduced"):
    """``np.linalg.qr`` for modes ``'reduced'``, ``'complete'`` and ``'r'``
    (R alone: the same geqrf, so the same values); see ``ops.linalg.QR``."""
    a = _arr(a)
    _stacked_matrices("np.linalg.qr", a)
    if mode not in ("reduced", "complete", "r"):
        if mode == "raw":
            raise _unsupported("np.linalg.qr(a, mode='raw')",
                               " (LAPACK's Householder form has no derivative here)")
        raise ValueError(f"Unrecognized mode '{mode}'")
    q, r = bind(QR, a, mode="complete" if mode == "complete" else "reduced")
    return r if mode == "r" else QRResult(q, r)


@implements(np.linalg.lstsq)
def lstsq(a, b, rcond=None):
    """``np.linalg.lstsq``: ``(x, residuals, rank, s)`` with NumPy's cutoff
    (singular values at most ``rcond`` times the largest count as zero;
    ``rcond=None``: machine epsilon times ``max(m, n)``). ``x`` is the
    minimum-norm solution ``pinv(a, rcond) @ b``, the one LAPACK's gelsd
    computes, equal to it up to rounding (not bit for bit); its derivative
    is ``pinv``'s (valid where the rank does not change). The residuals'
    shape depends on the rank, so the recording keeps a guard on it."""
    a, b = _arr(a), _arr(b)
    _float_input("np.linalg.lstsq", a, b)
    for x in (a, b):
        if x.ndim > 2 or (x is a and x.ndim != 2) or x.ndim == 0:
            raise np.linalg.LinAlgError(f"{x.ndim}-dimensional array given. Array must be "
                                        "two-dimensional")
    m, n = a.shape
    if b.shape[0] != m:
        raise np.linalg.LinAlgError("Incompatible dimensions")
    if type(rcond) is Tracked or np.ndim(rcond) != 0:
        raise _unsupported("np.linalg.lstsq with an array or tracked rcond",
                           " (a Python or NumPy scalar only)")
    if rcond is None:
        rcond = np.finfo(np.float64).eps * max(n, m)     # NumPy's: in double
    s = svd(a, compute_uv=False)
    # NumPy's gufunc returns the rank as a C int
    rank = np.count_nonzero(s > rcond * np.max(s, initial=0)).astype(np.int32)
    x = np.matmul(pinv(a, rcond=rcond), b)
    if int(rank) == n and m > n:
        r = np.matmul(a, x) - b
        resids = np.sum(r * r, axis=0)
        if b.ndim == 1:
            resids = np.reshape(resids, (1,))
    else:
        resids = np.zeros(0, s.dtype)
    return x, resids, rank, s


for _f in ("eig", "eigvals", "tensorinv", "tensorsolve"):
    if hasattr(np.linalg, _f):
        def _make(name):
            def handler(*args, **kwargs):
                raise _unsupported(f"np.linalg.{name}", " (no tapediff rule yet" + (
                    "; a general eigendecomposition is complex-valued)" if name.startswith("eig")
                    else ")"))
            return handler
        implements(getattr(np.linalg, _f))(_make(_f))


# ================================================================ norms
def _safe_sqrt(s):
    """``sqrt(s)`` whose derivative at ``s == 0`` is 0 instead of inf * 0 = NaN."""
    zero = s == 0
    return np.where(zero, 0, np.sqrt(np.where(zero, 1, s)))


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _amax(v, axis, keepdims=False, minimum=False):
    """``max(v, axis, initial=0)`` for ``v >= 0`` (0 over an empty axis, as NumPy's norm)."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(a % v.ndim for a in axes)
    if any(v.shape[a] == 0 for a in axes):
        if minimum:
            raise ValueError("zero-size array to reduction operation minimum which has no "
                             "identity")
        return np.zeros(_reduced_shape(v.shape, axes, keepdims), v.dtype, like=v)
    f = np.min if minimum else np.max
    return f(v, axis=axis, keepdims=keepdims)


@implements(np.linalg.norm)
def norm(x, ord=None, axis=None, keepdims=False):
    """NumPy's ``norm`` as a composite (see the module docstring for the value at 0)."""
    x = _arr(x)
    _no_complex("np.linalg.norm", x)
    if x.dtype.kind != "f":
        x = x.astype(float)
    inf = np.inf
    if axis is None:
        nd = x.ndim
        if ord is None or (ord in ("f", "fro") and nd == 2) or (ord == 2 and nd == 1):
            xf = np.reshape(x, (x.size,))
            ret = _safe_sqrt(bind(MATMUL, xf, xf))
            if keepdims:
                ret = np.reshape(ret, (1,) * nd)
            return ret
    nd = x.ndim
    if axis is None:
        axis = tuple(range(nd))
    elif not isinstance(axis, tuple):
        try:
            axis = int(axis)
        except Exception as e:
            raise TypeError("'axis' must be None, an integer or a tuple of integers") from e
        axis = (axis,)
    if len(axis) == 1:
        if ord == inf:
            return _amax(abs(x), axis, keepdims)
        if ord == -inf:
            return _amax(abs(x), axis, keepdims, minimum=True)
        if ord == 0:
            return np.sum((x != 0).astype(x.dtype), axis=axis, keepdims=keepdims)
        if ord == 1:
            return np.sum(abs(x), axis=axis, keepdims=keepdims)
        if ord is None or ord == 2:
            return _safe_sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))
        if isinstance(ord, str):
            raise ValueError(f"Invalid norm order '{ord}' for vectors")
        ret = np.sum(abs(x) ** ord, axis=axis, keepdims=keepdims)
        return ret ** (1.0 / ord)
    if len(axis) == 2:
        row, col = (_norm_axis(a, nd) for a in axis)
        if row == col:
            raise ValueError("Duplicate axes given.")
        if ord in (2, -2, "nuc"):
            # NumPy's _multi_svd_norm: the singular values of the moved axes
            sv = svd(np.moveaxis(x, (row, col), (-2, -1)), compute_uv=False)
            ret = (np.sum(sv, axis=-1) if ord == "nuc"
                   else _amax(sv, -1, minimum=ord == -2))
        elif ord == 1 or ord == -1:
            if col > row:
                col -= 1
            ret = _amax(np.sum(abs(x), axis=row), col, minimum=ord == -1)
        elif ord == inf or ord == -inf:
            if row > col:
                row -= 1
            ret = _amax(np.sum(abs(x), axis=col), row, minimum=ord == -inf)
        elif ord in (None, "fro", "f"):
            ret = _safe_sqrt(np.sum(x * x, axis=(row, col)))
        else:
            raise ValueError("Invalid norm order for matrices.")
        if keepdims:
            shape = list(x.shape)
            shape[axis[0] % nd] = 1
            shape[axis[1] % nd] = 1
            ret = np.reshape(ret, tuple(shape))
        return ret
    raise ValueError("Improper number of dimensions to norm.")


@implements(np.linalg.vector_norm)
def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    x = _arr(x)
    shape = list(x.shape)
    if axis is None:
        x = np.reshape(x, (x.size,))
        _axis = 0
    elif isinstance(axis, tuple):
        axes = tuple(_norm_axis(a, x.ndim) for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError("repeated axis")
        rest = tuple(i for i in range(x.ndim) if i not in axes)
        x = np.reshape(np.transpose(x, axes + rest),
                       (_prod(x.shape[i] for i in axes),) + tuple(x.shape[i] for i in rest))
        _axis = 0
    else:
        _axis = axis
    res = norm(x, axis=_axis, ord=ord)
    if keepdims:
        axes = range(len(shape)) if axis is None else (
            axis if isinstance(axis, tuple) else (axis,))
        for i in axes:
            shape[_norm_axis(i, len(shape))] = 1
        res = np.reshape(res, tuple(shape))
    return res


@implements(np.linalg.matrix_norm)
def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    return norm(x, axis=(-2, -1), keepdims=keepdims, ord=ord)
