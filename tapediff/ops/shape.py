"""Shape ops: reshape, transpose, broadcasting, concatenation and diagonals.

Ops flagged ``view=True`` may return NumPy views of their argument; handlers
register their results as views of the argument's storage (``make_view``) so
that writes through them reach the base, exactly as in NumPy.

Everything else in the shape domain (stack, split, tile, repeat, flip, roll,
pad, take, ...) is a composite of these primitives and of indexing, written in
:mod:`tapediff.np_api.shape`.
"""
import numpy as np

from .registry import Aval, defop, unbroadcast


# ---------------------------------------------------------------- helpers
def norm_shape(shape, size):
    """NumPy's reshape target: ints, at most one ``-1`` resolved against ``size``.

    Raises the ValueError NumPy raises for an impossible target.
    """
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple(int(s) for s in shape)
    unknown = [i for i, s in enumerate(shape) if s < 0]
    if len(unknown) > 1:
        if any(s != -1 for s in shape if s < 0):
            raise ValueError("negative dimensions not allowed")
        raise ValueError("can only specify one unknown dimension")
    known = 1
    for s in shape:
        if s >= 0:
            known *= s
    if unknown:
        i = unknown[0]
        if shape[i] != -1:
            raise ValueError("negative dimensions not allowed")
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape array of size {size} into shape "
                             f"{_shape_str(shape)}")
        shape = shape[:i] + (size // known,) + shape[i + 1:]
    elif known != size:
        raise ValueError(f"cannot reshape array of size {size} into shape {_shape_str(shape)}")
    return shape


def _shape_str(shape):
    return "(" + ",".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _size(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _strong(dt):
    if isinstance(dt, np.dtype):
        return dt
    return np.dtype({bool: np.bool_, int: np.int64, float: np.float64,
                     complex: np.complex128}[dt])


def _cast_like(c, x):
    """A cotangent in the dtype of its (floating) argument ``x``."""
    dt = getattr(x, "dtype", None)
    if isinstance(dt, np.dtype) and dt.kind == "f" and c.dtype != dt:
        return c.astype(dt)
    return c


# ---------------------------------------------------------------- reshape
def _reshape_shape(x, shape):
    return Aval(norm_shape(shape, _size(x.shape)), x.dtype)


RESHAPE = defop(
    "reshape", lambda x, shape: np.reshape(x, shape), view=True, shape=_reshape_shape,
    vjp=lambda needs, g, out, x, shape: (np.reshape(g, np.shape(x)),),
    jvp=lambda t, out, x, shape: np.reshape(t[0], shape))


# ---------------------------------------------------------------- transpose
def _inverse(axes):
    inv = [0] * len(axes)
    for i, a in enumerate(axes):
        inv[a] = i
    return tuple(inv)


TRANSPOSE = defop(
    "transpose", lambda x, axes: np.transpose(x, axes), view=True,
    shape=lambda x, axes: Aval(tuple(x.shape[a] for a in axes), x.dtype),
    vjp=lambda needs, g, out, x, axes: (np.transpose(g, _inverse(axes)),),
    jvp=lambda t, out, x, axes: np.transpose(t[0], axes))


# ---------------------------------------------------------------- broadcast_to
def _broadcast_to_shape(x, shape):
    shape = tuple(shape)
    if np.broadcast_shapes(tuple(x.shape), shape) != shape:
        raise ValueError(f"cannot broadcast an array of shape {tuple(x.shape)} to {shape}")
    return Aval(shape, x.dtype)


BROADCAST_TO = defop(
    "broadcast_to", lambda x, shape: np.broadcast_to(x, shape), view=True,
    shape=_broadcast_to_shape,
    vjp=lambda needs, g, out, x, shape: (unbroadcast(g, np.shape(x)),),
    jvp=lambda t, out, x, shape: np.broadcast_to(t[0], shape))


# ---------------------------------------------------------------- concatenate
def _concatenate(*xs, axis):
    return np.concatenate(xs, axis=axis)


def _concatenate_shape(*xs, axis):
    if not xs:
        raise ValueError("need at least one array to concatenate")
    first = tuple(xs[0].shape)
    if not first:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    total = 0
    for x in xs:
        s = tuple(x.shape)
        if len(s) != len(first) or s[:axis] + s[axis + 1:] != first[:axis] + first[axis + 1:]:
            raise ValueError("all the input array dimensions except for the concatenation "
                             "axis must match exactly")
        total += s[axis]
    dt = np.result_type(*(_strong(x.dtype) for x in xs))
    return Aval(first[:axis] + (total,) + first[axis + 1:], dt)


def _concatenate_vjp(needs, g, out, *xs, axis):
    cts = []
    start = 0
    lead = (slice(None),) * axis
    for need, x in zip(needs, xs):
        n = np.shape(x)[axis]
        if need:
            cts.append(_cast_like(g[lead + (slice(start, start + n),)], x))
        else:
            cts.append(None)
        start += n
    return tuple(cts)


def _concatenate_jvp(t, out, *xs, axis):
    like = next((tt for tt in t if tt is not None), None)
    if like is None:
        return None
    parts = [np.zeros(np.shape(x), dtype=out.dtype, like=like) if tt is None else tt
             for tt, x in zip(t, xs)]
    return CONCATENATE.bind(*parts, axis=axis)


CONCATENATE = defop("concatenate", _concatenate, shape=_concatenate_shape,
                    vjp=_concatenate_vjp, jvp=_concatenate_jvp)


# ---------------------------------------------------------------- diagonals
def diag_len(n1, n2, offset):
    """Length of the ``offset`` diagonal of an ``n1 x n2`` matrix."""
    if offset >= 0:
        return max(0, min(n1, n2 - offset))
    return max(0, min(n1 + offset, n2))


def _diagonal_shape(x, offset, axis1, axis2):
    s = tuple(x.shape)
    rest = tuple(n for i, n in enumerate(s) if i not in (axis1, axis2))
    return Aval(rest + (diag_len(s[axis1], s[axis2], offset),), x.dtype)


def _diagonal_vjp(needs, g, out, x, offset, axis1, axis2):
    return (DIAG_EMBED.bind(g, shape=tuple(np.shape(x)), offset=offset, axis1=axis1,
                            axis2=axis2),)


# read-only view of a diagonal (np.diagonal); handlers pass readonly=True to make_view
DIAGONAL = defop(
    "diagonal", lambda x, offset, axis1, axis2: np.diagonal(x, offset, axis1, axis2),
    view=True, shape=_diagonal_shape, vjp=_diagonal_vjp,
    jvp=lambda t, out, x, offset, axis1, axis2: DIAGONAL.bind(
        t[0], offset=offset, axis1=axis1, axis2=axis2))


def _diag_embed(v, shape, offset, axis1, axis2):
    """A zero array of ``shape`` whose ``offset`` diagonal over (axis1, axis2) is ``v``.

    The transpose of :data:`DIAGONAL`: ``v`` has the shape of the diagonal.
    Built without writes (concatenations and reshapes only), so that it also
    records when ``v`` is a tracked value of an outer tape.
    """
    nd = len(shape)
    n1, n2 = shape[axis1], shape[axis2]
    rest = tuple(n for i, n in enumerate(shape) if i not in (axis1, axis2))
    d = v.shape[-1]
    dt = v.dtype
    # rows of n2 + 1 entries, v first: flattened, v[i] lands at i * (n2 + 1),
    # which is row i, column i of an n2-wide matrix
    rows = np.concatenate([np.reshape(v, rest + (d, 1)),
                           np.zeros(rest + (d, n2), dtype=dt, like=v)], axis=-1)
    flat = np.reshape(rows, rest + (d * (n2 + 1),))
    start = offset if offset >= 0 else -offset * n2
    total = n1 * n2
    parts = [flat]
    if start:
        parts.insert(0, np.zeros(rest + (start,), dtype=dt, like=v))
    tail = total - start - d * (n2 + 1)
    if tail > 0:
        parts.append(np.zeros(rest + (tail,), dtype=dt, like=v))
    if len(parts) > 1:
        flat = np.concatenate(parts, axis=-1)
    if flat.shape[-1] != total:
        flat = flat[..., :total]
    m = np.reshape(flat, rest + (n1, n2))
    perm, k = [], 0
    for i in range(nd):
        if i == axis1:
            perm.append(nd - 2)
        elif i == axis2:
            perm.append(nd - 1)
        else:
            perm.append(k)
            k += 1
    return np.transpose(m, perm) if perm != list(range(nd)) else m


def _diag_embed_shape(v, shape, offset, axis1, axis2):
    want = _diagonal_shape(Aval(shape, v.dtype), offset, axis1, axis2).shape
    if tuple(v.shape) != want:
        raise ValueError(f"diagonal_embed: a diagonal of shape {tuple(v.shape)} does not fit "
                         f"shape {shape} (expected {want})")
    return Aval(tuple(shape), v.dtype)


DIAG_EMBED = defop(
    "diagonal_embed", _diag_embed, shape=_diag_embed_shape,
    vjp=lambda needs, g, out, v, shape, offset, axis1, axis2: (DIAGONAL.bind(
        g, offset=offset, axis1=axis1, axis2=axis2),),
    jvp=lambda t, out, v, shape, offset, axis1, axis2: DIAG_EMBED.bind(
        t[0], shape=shape, offset=offset, axis1=axis1, axis2=axis2))
