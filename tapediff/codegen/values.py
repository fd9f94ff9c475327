"""What a slot is while a tape is lowered: memory, a literal, or a loop-local value.

The code generator never copies data to describe a view: a slot that NumPy
would give as a view (a slice, a transpose, a broadcast) is a :class:`View`
of the same :class:`Buf` with other offset, shape and strides, all in
elements. Offsets, shapes and strides are concrete Python ints here; the
renderer passes them to the kernels as run-time parameters, so two tapes that
differ only in sizes render to the same source.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..ops.registry import strong

#: C spelling of each NumPy dtype the backend handles (NumPy's bool is one byte).
CTYPES = {
    "float64": "double", "float32": "float", "int64": "int64_t", "int32": "int32_t",
    "int16": "int16_t", "int8": "int8_t", "uint64": "uint64_t", "uint32": "uint32_t",
    "uint16": "uint16_t", "uint8": "uint8_t", "bool": "uint8_t",
}


def np_dtype(dt):
    """The strong NumPy dtype of a slot type (weak Python scalars included)."""
    if isinstance(dt, str) or (isinstance(dt, type) and issubclass(dt, np.generic)):
        return np.dtype(dt)
    return strong(dt)


def ctype(dt):
    """C type of a dtype, or None when the backend cannot hold it (complex, float16)."""
    return CTYPES.get(np_dtype(dt).name)


def kind(dt):
    """Spelling kind of a dtype: "f" float, "i" integer, "b" bool."""
    k = np_dtype(dt).kind
    return "f" if k == "f" else ("b" if k == "b" else "i")


def c_contiguous_strides(shape):
    st, acc = [], 1
    for n in reversed(shape):
        st.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(st))


class Buf:
    """A block of memory a kernel reads or writes.

    ``where`` is ``"in"`` / ``"out"`` (the k-th entry of the call's input or
    output pointer table), ``"arg"`` / ``"ret"`` (of a loop body's tables),
    ``"ws"`` (the workspace arena, at byte offset ``offset``) or ``"k"`` (the
    constants blob).
    """

    __slots__ = ("where", "index", "offset", "nbytes", "dtype", "slots")

    def __init__(self, where, index=0, offset=0, nbytes=0, dtype=None):
        self.where, self.index, self.offset, self.nbytes = where, index, offset, nbytes
        self.dtype = dtype
        self.slots = []          # slots whose value lives (partly) in this buffer

    def __repr__(self):
        return f"Buf({self.where}{self.index if self.where != 'ws' else '@' + str(self.offset)})"


class View:
    """Elements of a :class:`Buf`: ``offset`` and ``strides`` in elements."""

    __slots__ = ("buf", "offset", "shape", "strides", "dtype")

    def __init__(self, buf, offset, shape, strides, dtype):
        self.buf, self.offset = buf, offset
        self.shape, self.strides = tuple(shape), tuple(strides)
        self.dtype = np_dtype(dtype)

    @classmethod
    def whole(cls, buf, shape, dtype):
        return cls(buf, 0, shape, c_contiguous_strides(shape), dtype)

    def is_contiguous(self):
        """C-contiguous (strides of size-1 dimensions do not matter)."""
        want = c_contiguous_strides(self.shape)
        return all(n <= 1 or s == w for n, s, w in zip(self.shape, self.strides, want))

    def same(self, other):
        return (self.buf is other.buf and self.offset == other.offset
                and self.shape == other.shape and self.strides == other.strides)

    def broadcast_strides(self, shape):
        """Strides of this view read over the (broadcast) iteration ``shape``."""
        lead = len(shape) - len(self.shape)
        out = [0] * lead
        for n, m, s in zip(self.shape, shape[lead:], self.strides):
            out.append(0 if n == 1 and m != 1 or m == 1 else s)
        return tuple(out)

    def apply(self, fn):
        """The view ``fn`` (a NumPy view function) makes of this one, or None
        when NumPy would have to copy. Computed by NumPy on a fake array that
        has this view's strides and is never read."""
        item = self.dtype.itemsize
        fake = as_strided(np.empty(1, self.dtype), shape=self.shape,
                          strides=tuple(s * item for s in self.strides), writeable=False)
        try:
            r = fn(fake)
        except ValueError:       # reshape(copy=False) refuses: a copy is needed
            return None
        if not isinstance(r, np.ndarray):
            raise AssertionError("a view function returned a scalar (index with a "
                                 "trailing Ellipsis to get a 0-d view)")
        shift = r.__array_interface__["data"][0] - fake.__array_interface__["data"][0]
        return View(self.buf, self.offset + shift // item, r.shape,
                    tuple(s // item for s in r.strides), self.dtype)


def basic_index(a, spec):
    """``a[index]`` for a basic index spec, always a view (a 0-d array, not a
    NumPy scalar, when every axis gets an integer)."""
    from ..ops.indexing import decode_index
    idx = decode_index(spec, ())
    if not any(it[0] == "e" for it in spec):
        idx = idx + (Ellipsis,)
    return a[idx]


class Lit:
    """A constant with one value for every element (a Python number, ``full``)."""

    __slots__ = ("value", "dtype", "shape")

    def __init__(self, value, dtype, shape=()):
        self.value, self.dtype, self.shape = value, dtype, tuple(shape)


class Local:
    """A value computed inside a fused loop (a register in the loop body)."""

    __slots__ = ("region", "name")

    def __init__(self, region, name):
        self.region, self.name = region, name


class Pending:
    """A value a fused loop is still producing (a reduction, a write, or a view of
    a loop-local value): usable only after that loop has been closed."""

    __slots__ = ("region", "resolve")

    def __init__(self, region, resolve):
        self.region, self.resolve = region, resolve
