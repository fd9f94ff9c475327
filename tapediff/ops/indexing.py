"""Indexing, writes, guards and array creation.

An index is split into a static *spec* (a hashable tuple, stored in the
attribute table) and the index arrays, which become instruction arguments so
that masks and integer indices computed from inputs replay correctly.

Spec items: ``("i", k)`` integer, ``("s", start, stop, step)`` slice,
``("n",)`` newaxis, ``("e",)`` Ellipsis, ``("a", j)`` the j-th index array;
a boolean mask read by ``gather`` is ``("a", j, count)``: its number of True
elements, fixed by the mask's guard, so the shape rule knows the result shape.

Writes (``setitem``, ``scatter_add``) take the base array, the value, the index
arrays, the view *chain* from the base to the array being indexed, and the
spec; they return the new version of the base. Their VJP needs no primal
values, so an old version nobody else reads can be updated in place.
"""
import operator

import numpy as np

from .registry import BY_NAME, Aval, LazyCotangent, defop, unbroadcast


def encode_index(idx):
    """``(spec, arrays)`` for a NumPy index; tracked integers stay arrays."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    spec, arrays = [], []
    for it in idx:
        if it is None:
            spec.append(("n",))
        elif it is Ellipsis:
            spec.append(("e",))
        elif isinstance(it, slice):
            spec.append(("s",) + tuple(None if v is None else operator.index(v)
                                       for v in (it.start, it.stop, it.step)))
        elif isinstance(it, (int, np.integer)) and not isinstance(it, (bool, np.bool_)):
            spec.append(("i", int(it)))
        else:
            if not hasattr(it, "dtype"):
                it = np.asarray(it)
                if it.dtype == object:
                    raise IndexError("only integers, slices, Ellipsis, None and integer "
                                     "or boolean arrays are valid indices")
                if it.size == 0:
                    it = it.astype(np.intp)
            if it.dtype.kind not in "iub":
                raise IndexError(f"arrays used as indices must be of integer or boolean "
                                 f"type, got {it.dtype}")
            spec.append(("a", len(arrays)))
            arrays.append(it)
    return tuple(spec), arrays


def decode_index(spec, arrays):
    out = []
    for it in spec:
        k = it[0]
        if k == "i":
            out.append(it[1])
        elif k == "s":
            out.append(slice(it[1], it[2], it[3]))
        elif k == "n":
            out.append(None)
        elif k == "e":
            out.append(Ellipsis)
        else:
            out.append(arrays[it[1]])
    return tuple(out)


def is_basic(spec):
    return all(it[0] != "a" for it in spec)


def apply_chain(x, chain):
    """Apply recorded view ops to ``x`` (a real NumPy view when ``x`` is an ndarray)."""
    for name, params in chain:
        if name == "readonly":
            raise ValueError("assignment destination is read-only (a broadcast_to or "
                             "diagonal view cannot be written, as in NumPy)")
        x = BY_NAME[name].forward(x, **dict(params))
    return x


def _view_shape(shape, spec):
    return np.empty(shape, dtype=np.bool_)[decode_index(spec, [])].shape


# ---------------------------------------------------------------- reads
def _getitem(x, index):
    return x[decode_index(index, ())]


def _may_repeat(arrays):
    """Whether an index can name an element twice: only integer arrays of at
    least one dimension can (masks and 0-d integers, e.g. a loop counter, cannot)."""
    return any(a.dtype.kind in "iu" and np.ndim(a) > 0 for a in arrays)


class IndexedCotangent(LazyCotangent):
    """The cotangent of ``x[index]``: ``g`` in the indexed region, zero elsewhere."""

    def __init__(self, g, shape, arrays, index, repeats):
        self.g, self.shape, self.arrays, self.index = g, tuple(shape), tuple(arrays), index
        self.dtype = g.dtype
        self.repeats = repeats          # integer index arrays may name an element twice

    def astype(self, dtype):
        return IndexedCotangent(self.g.astype(dtype), self.shape, self.arrays, self.index,
                                self.repeats)

    def materialize(self):
        z = np.zeros(self.shape, dtype=self.g.dtype, like=self.g)
        write = "scatter_add" if self.repeats else "setitem"
        return BY_NAME[write].bind_write(z, self.g, self.arrays, (), self.index)

    def accumulate(self, prev):
        if self.repeats or not is_basic(self.index):
            return BY_NAME["scatter_add"].bind_write(prev, self.g, self.arrays, (), self.index)
        # a basic index selects each element once: read, add, write back (in place
        # on replay, since the running cotangent dies here)
        region = prev[decode_index(self.index, ())]
        return BY_NAME["setitem"].bind_write(prev, region + self.g, (), (), self.index)


def _getitem_vjp(needs, g, out, x, index):
    return (IndexedCotangent(g, x.shape, (), index, False),)


GETITEM = defop(
    "getitem", _getitem, view=True,
    shape=lambda x, index: Aval(_view_shape(x.shape, index), x.dtype),
    vjp=_getitem_vjp,
    jvp=lambda t, out, x, index: t[0][decode_index(index, ())])


def _gather(x, *arrays, index):
    return x[decode_index(index, arrays)]


def _gather_vjp(needs, g, out, x, *arrays, index):
    # Boolean masks select each element at most once, so a plain write is
    # enough (and faster than np.add.at); integer arrays may repeat: accumulate.
    repeats = _may_repeat(arrays)
    return (IndexedCotangent(g, x.shape, arrays, index, repeats),) + (None,) * len(arrays)


def with_mask_counts(spec, arrays):
    """``spec`` with the count of True elements added to each boolean mask item.

    The count of a tracked mask is read from its recorded value; the caller has
    guarded it (``_guard_mask``), so it holds on every replay of this tape.
    """
    out = []
    for it in spec:
        if it[0] == "a":
            a = arrays[it[1]]
            if a.dtype == np.bool_:
                v = a
                while hasattr(v, "_v"):      # tracked (possibly nested): its concrete value
                    v = v._v
                it = ("a", it[1], int(np.count_nonzero(v)))
        out.append(it)
    return tuple(out)


def _gather_shape(x, *arrays, index):
    probe = [np.zeros(a.shape, a.dtype) for a in arrays]
    for it in index:
        if it[0] == "a" and len(it) > 2:    # a mask with a known count of True elements
            probe[it[1]].reshape(-1)[:it[2]] = True
    return Aval(np.empty(x.shape, np.bool_)[decode_index(index, probe)].shape, x.dtype)


GATHER = defop(
    "gather", _gather, shape=_gather_shape, vjp=_gather_vjp,
    nondiff=range(1, 64),
    jvp=lambda t, out, x, *arrays, index: (
        None if t[0] is None else t[0][decode_index(index, arrays)]))


# ---------------------------------------------------------------- writes
def _write(base, val, arrays, chain, index, inplace, add):
    from ..tracer import Tracked, current
    if type(base) is not Tracked and any(type(v) is Tracked for v in (val, *arrays)):
        # Nested differentiation: this forward runs on values of an outer tape. A
        # plain base (e.g. the zeros a VJP scatters into) cannot take a tracked
        # value -- ``plain[key] = tracked`` would drop its derivative and raise
        # TrackedEscape -- so write into a tracked copy that the outer tape records.
        like = next(v for v in (val, *arrays) if type(v) is Tracked)
        out = np.zeros(np.shape(base), dtype=base.dtype, like=like) + base
    elif inplace and isinstance(base, np.ndarray) and base.flags.writeable:
        out = base
    else:
        out = np.copy(base)
    target = apply_chain(out, chain)
    key = decode_index(index, arrays)
    if add:
        if type(target) is not Tracked and type(val) is not Tracked:
            # NumPy 2.4's ufunc.at mishandles a value that must be broadcast to the
            # indexed shape with a multi-dimensional index: it adds only the first
            # row, or reads memory past the value when the value is not contiguous.
            # Handing it the value already broadcast (a zero-stride view) is right.
            region = np.broadcast_to(np.empty((), np.bool_), np.shape(target))[key].shape
            if np.shape(val) != region:
                val = np.broadcast_to(val, region)
        np.add.at(target, key, val)
    else:
        target[key] = val
    # a tracked ``out`` written through a view (chain) has a newer version now
    return current(out) if type(out) is Tracked else out


def _setitem(base, val, *arrays, chain, index):
    return _write(base, val, arrays, chain, index, False, False)


def _setitem_inplace(base, val, *arrays, chain, index):
    return _write(base, val, arrays, chain, index, True, False)


def _region(g, arrays, chain, index):
    """The part of ``g`` that the write's index selects (through the view chain)."""
    for name, params in chain:
        if name != "readonly":
            g = BY_NAME[name].bind(g, **dict(params))
    key = decode_index(index, arrays)
    return g[key]


def _setitem_vjp(needs, g, out, base, val, *arrays, chain, index):
    gb = gv = None
    if needs[1]:
        # Read the value's cotangent *before* zeroing the region of g below. A
        # basic index gives a view of g; it is copied (cheap: the region's size)
        # unless a reduction already made a new array. Then g is dead after the
        # zeroing write, which the planner can do in place: filling an array
        # element by element stays O(n) in the gradient too, not O(n^2) copies.
        region = _region(g, arrays, chain, index)
        if _may_repeat(arrays):
            # repeated indices: NumPy keeps the last write, so only winners get g
            region = np.where(_winners(base, arrays, chain, index, region.shape),
                              region, 0)
        gv = _sum_to_value(region, np.shape(val))
        if not arrays and _size(region.shape) == _size(np.shape(val)):
            gv = np.copy(gv)
    if needs[0]:
        gb = BY_NAME["setitem"].bind_write(g, 0, arrays, chain, index)
    return (gb, gv) + (None,) * len(arrays)


def _size(shape):
    n = 1
    for k in shape:
        n *= k
    return n


def _sum_to_value(region, shape):
    """Cotangent of a written value of ``shape`` from the cotangent of its region."""
    extra = len(shape) - len(region.shape)
    if extra > 0:
        # NumPy accepts extra leading size-1 axes on the value (a[0:2] = ones((1, 2)));
        # unbroadcast only removes axes, so add them first
        region = np.reshape(region, (1,) * extra + tuple(region.shape))
    return unbroadcast(region, shape)


def _winners(base, arrays, chain, index, region_shape):
    """Boolean mask over the region: True where that element's write survived."""
    n = int(np.prod(region_shape, dtype=np.int64))
    # recorded when the index arrays are tracked (they vary on replay), else constant
    like = next((a for a in arrays if not isinstance(a, np.ndarray)), None)
    ids = np.reshape(np.arange(n) if like is None else np.arange(n, like=like), region_shape)
    board = np.full(np.shape(base), -1, dtype=np.int64, **({} if like is None else {"like": like}))
    board = BY_NAME["setitem"].bind_write(board, ids, arrays, chain, index)
    return _region(board, arrays, chain, index) == ids


def _write_shape(base, val, *arrays, chain, index):
    return Aval(base.shape, base.dtype)


def _setitem_jvp(t, out, base, val, *arrays, chain, index):
    tb, tv = t[0], t[1]
    if tb is None and tv is None:
        return None
    if tb is None:
        tb = np.zeros(base.shape, dtype=tv.dtype, like=tv)
    return BY_NAME["setitem"].bind_write(tb, 0 if tv is None else tv, arrays, chain, index)


SETITEM = defop("setitem", _setitem, write=True, shape=_write_shape, vjp=_setitem_vjp,
                jvp=_setitem_jvp, nondiff=range(2, 64))
SETITEM.inplace = _setitem_inplace


def _scatter_add(base, val, *arrays, chain, index):
    return _write(base, val, arrays, chain, index, False, True)


def _scatter_add_inplace(base, val, *arrays, chain, index):
    return _write(base, val, arrays, chain, index, True, True)


def _scatter_add_vjp(needs, g, out, base, val, *arrays, chain, index):
    gv = _sum_to_value(_region(g, arrays, chain, index), np.shape(val)) if needs[1] else None
    return (g if needs[0] else None, gv) + (None,) * len(arrays)


def _scatter_add_jvp(t, out, base, val, *arrays, chain, index):
    tb, tv = t[0], t[1]
    if tv is None:
        return tb
    if tb is None:
        tb = np.zeros(base.shape, dtype=tv.dtype, like=tv)
    return BY_NAME["scatter_add"].bind_write(tb, tv, arrays, chain, index)


SCATTER_ADD = defop("scatter_add", _scatter_add, write=True, shape=_write_shape,
                    vjp=_scatter_add_vjp, jvp=_scatter_add_jvp, nondiff=range(2, 64))
SCATTER_ADD.inplace = _scatter_add_inplace


# ---------------------------------------------------------------- creation and copies
def _full(*, shape, dtype, fill):
    return np.full(shape, fill, dtype=np.dtype(dtype))


FULL = defop("full", _full, inactive=True,
             shape=lambda shape, dtype, fill: Aval(shape, np.dtype(dtype)))

COPY = defop("copy", np.copy,
             shape=lambda x: Aval(x.shape, x.dtype),
             vjp=lambda needs, g, out, x: (g,), jvp=lambda t, out, x: t[0])


def _astype_vjp(needs, g, out, x, dtype):
    return (g.astype(x.dtype),)


ASTYPE = defop("astype", lambda x, dtype: x.astype(np.dtype(dtype)),
               shape=lambda x, dtype: Aval(x.shape, np.dtype(dtype)),
               vjp=_astype_vjp,
               jvp=lambda t, out, x, dtype: t[0].astype(np.dtype(dtype)))


def _where_vjp(needs, g, out, c, a, b):
    ga = unbroadcast(np.where(c, g, 0), np.shape(a)) if needs[1] else None
    gb = unbroadcast(np.where(c, 0, g), np.shape(b)) if needs[2] else None
    return (None, ga, gb)


def _where_jvp(t, out, c, a, b):
    ta, tb = t[1], t[2]
    if ta is None and tb is None:
        return None
    r = np.where(c, 0 if ta is None else ta, 0 if tb is None else tb)
    return r if r.shape == out.shape else np.broadcast_to(r, out.shape)


def _weak(dt):
    # np.result_type takes a Python *type* as a strong dtype (float -> float64) but
    # a Python *value* as weak (NEP 50): np.where(c, x32, 0.0) is float32
    return {bool: False, int: 0, float: 0.0, complex: 0j}.get(dt, dt)


def _where_shape(c, a, b):
    return Aval(np.broadcast_shapes(c.shape, a.shape, b.shape),
                np.result_type(_weak(a.dtype), _weak(b.dtype)))


WHERE = defop(
    "where", lambda c, a, b: np.where(c, a, b), nondiff=(0,),
    shape=_where_shape, vjp=_where_vjp, jvp=_where_jvp)


# ---------------------------------------------------------------- guards
# A guard has no output. Its forward returns True when the replayed value
# matches what was recorded; the interpreter stops before any result is written.
def array_key(x):
    """Hashable identity of an array's value (the outcome of a ``guard_array``)."""
    a = np.asarray(x)
    return (a.shape, a.dtype.str, a.tobytes())


def _same_array(x, ref, expect, site):
    if isinstance(x, np.ndarray) or isinstance(x, np.generic):
        return np.array_equal(x, ref, equal_nan=x.dtype.kind in "fc")
    # a tracked value of an outer tape (nested differentiation): supported ops
    # only, so the outer tape records its own guard through bool()
    if tuple(x.shape) != tuple(np.shape(ref)):
        return False
    same = x == ref
    if x.dtype.kind in "fc":
        same = same | (np.isnan(x) & np.isnan(ref))
    return bool(np.all(same))


GUARD_BOOL = defop("guard_bool", lambda x, expect, site: bool(x) == expect,
                   inactive=True, shape=lambda *a, **k: None)
GUARD_INT = defop("guard_int", lambda x, expect, site: int(x) == expect,
                  inactive=True, shape=lambda *a, **k: None)
GUARD_ARRAY = defop("guard_array", _same_array, inactive=True, shape=lambda *a, **k: None)

# What a guard observed, in the form its recorded outcome takes; failed guards
# report this, and the versions of a recorded function are looked up by it.
GUARD_OUTCOME = {"guard_bool": bool, "guard_int": int, "guard_array": array_key}
