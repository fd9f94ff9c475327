"""How NumPy reaches tapediff: ufuncs (NEP 13), functions (NEP 18), operators,
methods, indexing and the conversions that would escape the tape.

Domain modules register handlers for NumPy functions with :func:`implements`;
a function with no handler raises :class:`~tapediff.UnsupportedOperation`
instead of falling back to NumPy's Python implementation (which would call
``np.asarray`` and silently drop the derivative).
"""
import sys

import numpy as np

from .errors import TrackedEscape, UnsupportedOperation
from .ops.elementwise import UFUNC_OPS
from .ops.indexing import (COPY, FULL, GATHER, GETITEM, SCATTER_ADD, SETITEM,
                           encode_index, is_basic, with_mask_counts)
from .ops.registry import BY_NAME
from .tape import ACTIVE, CONST, RESULT
from .tracer import (Tracked, bind, current, escape_error, make_view, record,
                     record_guard, tape_of)

FUNCTIONS = {}     # NumPy function -> handler
# NEP 35: NumPy drops ``like=`` before dispatching; these handlers get it back
_TAKES_LIKE = {np.zeros, np.ones, np.empty, np.full, np.arange, np.array, np.asarray,
               np.asanyarray, np.ascontiguousarray, np.identity, np.eye, np.linspace,
               np.fromiter, np.frombuffer, np.tri}
UFUNC_METHODS = {}  # (ufunc, method) -> handler, e.g. (np.add, "reduce") -> sum


def implements(*funcs):
    """Register a handler for NumPy functions ``funcs`` (decorator)."""
    def deco(handler):
        for f in funcs:
            FUNCTIONS[f] = handler
        return handler
    return deco


def _unsupported(name, extra=""):
    return UnsupportedOperation(
        f"{name} has no tapediff rule{extra}. Rewrite it with supported NumPy "
        "operations, or register a rule with tapediff.custom_op (see its docstring).")


# ------------------------------------------------------------------ NEP 18
def array_function(self, func, types, args, kwargs):
    handler = FUNCTIONS.get(func)
    if handler is None:
        mod = getattr(func, "__module__", "numpy") or "numpy"
        raise _unsupported(f"{mod.replace('numpy.', 'np.').replace('numpy', 'np')}."
                           f"{func.__name__}")
    if func in _TAKES_LIKE:
        kwargs["like"] = self
    return handler(*args, **kwargs)


# ------------------------------------------------------------------ NEP 13
def array_ufunc(self, ufunc, method, *inputs, **kwargs):
    out = kwargs.pop("out", None)
    if isinstance(out, tuple):
        # NumPy hands out= over as a tuple (one entry per ufunc output); a tuple
        # of Nones means no out at all
        if all(o is None for o in out):
            out = None
        elif len(out) != 1:
            raise _unsupported(f"np.{ufunc.__name__}(..., out=) with {len(out)} outputs")
        else:
            out = out[0]
    if method == "at" and ufunc in (np.add, np.subtract):
        # np.add.at / np.subtract.at: unbuffered in-place accumulation (duplicates add up)
        if kwargs or len(inputs) != 3:
            raise TypeError(f"np.{ufunc.__name__}.at(a, indices, b) takes exactly three "
                            "arguments")
        a, indices, b = inputs
        if ufunc is np.subtract:
            # a[i] -= b is a[i] += (-b) exactly; unsigned b is widened first so that
            # its negation does not wrap around
            if getattr(b, "dtype", None) is not None and b.dtype.kind == "u":
                b = astype(b, np.result_type(a.dtype, b.dtype))
            b = np.negative(b)
        return add_at(a, indices, b)
    if method != "__call__":
        handler = UFUNC_METHODS.get((ufunc, method))
        if handler is None:
            raise _unsupported(f"np.{ufunc.__name__}.{method}")
        return handler(*inputs, **({"out": out} if out is not None else {}), **kwargs)
    op = UFUNC_OPS.get(ufunc)
    if op is None:
        raise _unsupported(f"np.{ufunc.__name__}")
    name = f"np.{ufunc.__name__}"
    dtype = kwargs.pop("dtype", None)
    where = kwargs.pop("where", True)
    # NumPy's default casting for ufuncs is 'same_kind', for the inputs (dtype=)
    # and for the output (out=): an int array *= float raises TypeError there
    casting = kwargs.pop("casting", "same_kind")
    kwargs.pop("order", None)
    kwargs.pop("subok", None)
    if kwargs:
        raise _unsupported(f"{name} with {sorted(kwargs)}")
    if where is not True and out is None:
        # NumPy leaves the unselected elements uninitialised: nothing to reproduce
        raise _unsupported(f"{name}(..., where=...) without out=",
                           "; use np.where(mask, np.f(x), fallback) instead")
    if dtype is not None:
        dt = np.dtype(dtype)
        for a in inputs:
            adt = getattr(a, "dtype", None)   # weak Python scalars cast freely, as in NumPy
            if adt is not None and not np.can_cast(adt, dt, casting):
                raise TypeError(f"{name}: cannot cast input from {adt} to {dt} with casting "
                                f"rule {casting!r} (NumPy refuses too)")
        inputs = tuple(astype(a, dt) for a in inputs)
    result = bind(op, *inputs)
    if out is None:
        return result
    target = out
    rdt = getattr(result, "dtype", None)
    if rdt is not None and not np.can_cast(rdt, target.dtype, casting):
        raise TypeError(f"{name}(..., out=): cannot cast the result from {rdt} to "
                        f"{target.dtype} with casting rule {casting!r} (NumPy refuses too)")
    if where is not True:
        # out= with where=: the unselected elements keep out's old values
        result = np.where(where, result, target)
    assign(target, Ellipsis, result, casting="unsafe", what=f"{name}(..., out=)")
    return target


# ------------------------------------------------------------------ conversions
def astype(x, dtype, copy=True):
    dt = np.dtype(dtype)
    if type(x) is not Tracked:
        return np.asarray(x).astype(dt)
    if x.dtype == dt and not copy:
        return x
    return bind(BY_NAME["astype"], x, dtype=dt.str)


#: Advice for the NumPy functions that convert their arguments with
#: np.asarray (no __array_function__ dispatch brings them to tapediff).
_CONVERTS = {
    "vectorize": "np.vectorize calls the function on Python scalars: write the function "
                 "with array operations (np.where(cond, a, b) for an if).",
    "poly1d": "A np.poly1d holding tracked coefficients went where NumPy takes an array: "
              "pass its coefficients (p.coeffs).",
}


def _numpy_entry():
    """The code object of the NumPy function the user's code called that is
    converting a tracked value (``vectorize.__call__``), or None when the
    conversion is the user's own. Only the frames between ``__array__`` and
    the first frame outside NumPy and tapediff are looked at."""
    f, entry = sys._getframe(2), None
    while f is not None:
        mod = f.f_globals.get("__name__", "")
        if mod == "numpy" or mod.startswith("numpy."):
            entry = f
        elif not (mod == "tapediff" or mod.startswith("tapediff.")):
            break
        f = f.f_back
    return None if entry is None else entry.f_code


def to_array_escape(t, dtype=None, copy=None):
    """``__array__``: refuse for active values, guard the value for data."""
    caller = sys._getframe(1).f_code.co_name
    if caller == "as_strided":
        # NumPy's as_strided has no dispatch: it would build a strided view of a
        # detached copy, and writes through it could not reach the tape
        raise UnsupportedOperation(
            "np.lib.stride_tricks.as_strided on a tracked array: strided views (and "
            "writes through them) cannot be recorded. Use slicing, np.stack of slices, "
            "or np.lib.stride_tricks.sliding_window_view's equivalent built from slices.")
    t = current(t)
    if t._c == ACTIVE:
        code = _numpy_entry()
        if code is None:
            raise escape_error(t, "np.asarray / np.array(...) / assignment into a plain ndarray")
        entry = getattr(code, "co_qualname", code.co_name)      # co_qualname: 3.11+
        # a function tapediff implements, reached without dispatch
        implemented = any(getattr(getattr(f, "_implementation", f), "__code__", None) is code
                          for f in FUNCTIONS)
        advice = _CONVERTS.get(entry.split(".")[0], (
            "NumPy ran its own code because no argument is a tracked array itself (a "
            "np.poly1d or a list holding one?): pass the tracked arrays." if implemented else
            "tapediff has no rule for it: write that step with the array functions it is "
            "made of."))
        raise escape_error(t, f"np.asarray inside NumPy's {entry}", advice)
    value = np.asarray(t._v)
    if t._c != CONST:
        record_guard(t, "guard_array", expect=True, extra=(value.copy(),))
    return value if dtype is None else value.astype(dtype)


def scalar_escape(t, kind, what):
    """``float()``, ``int()``, ``bool()``, ``.item()``: guard or refuse."""
    t = current(t)
    v = t._v
    if kind is float and t._c == ACTIVE:
        err = escape_error(t, what)
        # NumPy swallows this exception in ``z[i] = t`` (it retries t as a
        # sequence); the tracer re-raises it if the function then fails.
        t._t.pending_escape = err
        raise err
    if kind is bool:
        r = bool(v)
        if t._c != CONST:
            record_guard(t, "guard_bool", expect=r)
        return r
    if kind is int:
        r = int(v) if what != "__index__" else _index(v)
        if t._c != CONST:
            record_guard(t, "guard_int", expect=r)
        return r
    r = kind(v)
    if t._c != CONST:
        record_guard(t, "guard_array", expect=True, extra=(np.asarray(v).copy(),))
    return r


def _index(v):
    import operator
    return operator.index(v)


# ------------------------------------------------------------------ indexing
def getitem(x, idx):
    x = current(x)
    spec, arrays = encode_index(idx)
    if is_basic(spec):
        n_int = sum(1 for it in spec if it[0] == "i")
        if n_int == x.ndim and all(it[0] in "i" for it in spec):
            return bind(GETITEM, x, index=spec)     # a scalar: a copy in NumPy too
        return make_view(x, "getitem", {"index": spec})
    arrays = [_guard_mask(a) for a in arrays]
    return bind(GATHER, x, *arrays, index=with_mask_counts(spec, arrays))


def _guard_mask(a):
    """A boolean mask gives a data-dependent shape: guard its count.

    A constant mask (CONST class: no replayed input reaches it) needs no guard."""
    if type(a) is Tracked and a.dtype == np.bool_ and current(a)._c != CONST:
        cnt = bind(BY_NAME["count_nonzero"], a)
        record_guard(current(cnt), "guard_int", expect=int(cnt._v))
    return a


def assign(t, idx, val, casting="unsafe", what="assignment"):
    """``t[idx] = val``. Plain ndarray targets take only inactive values."""
    if isinstance(val, (list, tuple)):
        def holds(v):
            return type(v) is Tracked or (isinstance(v, (list, tuple)) and any(map(holds, v)))
        # z[:2] = [a, b]: NumPy converts the list with np.array; its tracked
        # handler stacks the items instead of refusing them as escapes
        val = FUNCTIONS[np.array](val) if holds(val) else np.asarray(val)
    if casting != "unsafe":
        check_casting(val, t.dtype, casting, what)
    if type(t) is not Tracked:
        return _assign_plain(t, idx, val, what)
    _write(t, idx, val, SETITEM, what)


def check_casting(val, dtype, casting, what):
    """Raise NumPy's TypeError when ``val`` may not be cast to ``dtype`` under
    ``casting``. A Python scalar is weak, as in NumPy (``np.copyto`` of 5
    into uint8 is fine): NumPy itself answers for it, on a 0-d array."""
    if type(val) in (bool, int, float, complex):
        try:
            np.copyto(np.empty((), dtype), val, casting=casting)
        except TypeError:
            pass
        else:
            return
        vdt = np.result_type(val)
    else:
        vdt = val.dtype if hasattr(val, "dtype") else np.result_type(val)
        if np.can_cast(vdt, dtype, casting):
            return
    raise TypeError(f"{what}: cannot cast {vdt} to {dtype} with casting rule {casting!r} "
                    "(as NumPy refuses)")


def _write(t, idx, val, op, what):
    """Record write ``op`` (setitem or scatter_add) of ``val`` at ``t[idx]``.

    The write goes to the base array behind ``t`` (through ``t``'s view chain),
    in place while recording when the base's memory is the tape's own, and
    becomes the newest version of that base.
    """
    t = current(t)
    if t._ch and t._ch[-1][0] == "readonly":
        raise ValueError(f"{what}: assignment destination is read-only (a broadcast_to "
                         "or diagonal view cannot be written, as in NumPy)")
    spec, arrays = encode_index(idx)
    # a tracked mask gives a data-dependent count: guarded, and kept in the
    # spec (a compiled write reads the mask as its nonzero() of that length)
    arrays = [_guard_mask(a) for a in arrays]
    spec = with_mask_counts(spec, arrays)
    tape = tape_of((t, val) + tuple(arrays))
    if tape is not t._t:  # an inner tape writing into an outer tracked array
        raise UnsupportedOperation(
            f"{what}: writing a value of a nested recording into an array of the outer "
            "one; create the array inside the inner function")
    st = t._st
    if st is None:
        base, chain = t, ()
    else:
        base = Tracked(st.v, st.s, st.tape, st.c, fresh=st.fresh)
        chain = t._ch
    inplace = (base._fresh and base._t.skind[base._s] == RESULT
               and isinstance(base._v, np.ndarray) and base._v.flags.writeable)
    new = record(tape, op, (base, val) + tuple(arrays), {"chain": chain, "index": spec},
                 forward=op.inplace if inplace else None)
    _publish(t, new)


def _publish(t, new):
    """Make ``new`` the newest version of the storage behind ``t``."""
    st = t._st
    if st is None:
        t._v, t._s, t._c, t._fresh = new._v, new._s, new._c, True
        return
    st.v, st.s, st.c, st.fresh = new._v, new._s, new._c, True
    st.ver += 1
    if not t._ch:
        t._v, t._s, t._c, t._ver = new._v, new._s, new._c, st.ver


def add_at(a, indices, b):
    """``np.add.at(a, indices, b)`` on a tracked ``a``: duplicates accumulate."""
    if type(a) is not Tracked:
        return _assign_plain(a, indices, b, "np.add.at", add=True)
    _write(a, indices, b, SCATTER_ADD, "np.add.at")


def _assign_plain(target, idx, val, what, add=False):
    vals = [val] + list(idx if isinstance(idx, tuple) else (idx,))
    concrete = []
    for v in vals:
        if type(v) is Tracked:
            v = current(v)
            if v._c == ACTIVE:
                raise TrackedEscape(
                    f"{what}: writing an active tracked value into a plain ndarray would "
                    "drop its derivative. Create the array with np.zeros(n, like=x) (or "
                    "np.zeros_like(x)) so that it is tracked too.")
            concrete.append(to_array_escape(v))
        else:
            concrete.append(v)
    key = tuple(concrete[1:]) if isinstance(idx, tuple) else concrete[1]
    if add:
        np.add.at(target, key, concrete[0])
    else:
        target[key] = concrete[0]


# ------------------------------------------------------------------ creation
def full_like(like, shape, dtype, fill):
    t = like if type(like) is Tracked else None
    shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    dt = np.dtype(dtype if dtype is not None else float)
    return record(t._t, FULL, (), {"shape": shape, "dtype": dt.str, "fill": fill})


def copy(x):
    return bind(COPY, x)


# ------------------------------------------------------------------ methods
def _call(func, *args, **kwargs):
    handler = FUNCTIONS.get(func)
    if handler is None:
        raise _unsupported(f"np.{func.__name__}")
    return handler(*args, **kwargs)


def _method(func):
    def m(self, *args, **kwargs):
        return _call(func, self, *args, **kwargs)
    m.__name__ = func.__name__
    m.__doc__ = f"Same as ``np.{func.__name__}(x, ...)``; recorded."
    return m


def on_tape(x, like):
    """``x``, made a tracked constant when ``like`` is tracked: a plain array
    indexed by tracked indices goes through NumPy's indexing, which converts
    the indices (a guard: the tape would re-record whenever they change);
    ``np.take(x, idx)`` too, as NumPy dispatches it on ``x`` only."""
    if type(like) is Tracked and type(x) is not Tracked:
        return np.asarray(x, like=like)
    return x


def _shape_args(args):
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return args


_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
           "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power,
           "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor,
           "lshift": np.left_shift, "rshift": np.right_shift}
_COMPARE = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
            "eq": np.equal, "ne": np.not_equal}
_UNARY = {"neg": np.negative, "pos": np.positive, "abs": np.absolute, "invert": np.invert}
_METHODS = ("sum", "mean", "prod", "max", "min", "std", "var", "cumsum", "cumprod",
            "argmax", "argmin", "argsort", "argpartition", "searchsorted", "swapaxes",
            "squeeze", "ravel", "dot", "clip", "all", "any", "nonzero", "diagonal", "trace",
            "repeat", "take", "round", "ptp")


def _binary(op):
    # With an untracked operand the tape is self's: skip tape_of and bind (the
    # operators are the recording hot path of scalar loops).
    def f(self, other):
        if type(other) is Tracked:
            return bind(op, self, other)
        return record(self._t, op, (self, other), _NO_PARAMS)

    def r(self, other):
        if type(other) is Tracked:
            return bind(op, other, self)
        return record(self._t, op, (other, self), _NO_PARAMS)
    return f, r


_NO_PARAMS = {}


def _inplace(op, name):
    def f(self, other):
        assign(self, Ellipsis, bind(op, self, other), casting="same_kind",
               what=f"x {name}= ...")
        return self
    return f


def _install(T):
    T.__array_ufunc__ = array_ufunc
    T.__array_function__ = array_function
    for name, uf in _BINARY.items():
        op = UFUNC_OPS[uf]
        f, r = _binary(op)
        setattr(T, f"__{name}__", f)
        setattr(T, f"__r{name}__", r)
        setattr(T, f"__i{name}__", _inplace(op, name))
    T.__divmod__ = lambda self, o: (self // o, self % o)
    for name, uf in _COMPARE.items():
        op = UFUNC_OPS[uf]
        setattr(T, f"__{name}__", (lambda op: lambda self, o: bind(op, self, o))(op))
    for name, uf in _UNARY.items():
        op = UFUNC_OPS[uf]
        setattr(T, f"__{name}__", (lambda op: lambda self: bind(op, self))(op))
    T.__matmul__ = lambda self, o: _call(np.matmul, self, o)
    T.__rmatmul__ = lambda self, o: _call(np.matmul, o, self)
    T.__imatmul__ = lambda self, o: (assign(self, Ellipsis, _call(np.matmul, self, o)), self)[1]
    T.__getitem__ = getitem
    T.__setitem__ = assign
    T.__array__ = to_array_escape
    T.__float__ = lambda self: scalar_escape(self, float, "float()")
    T.__complex__ = lambda self: scalar_escape(self, complex, "complex()")
    T.__int__ = lambda self: scalar_escape(self, int, "int()")
    T.__index__ = lambda self: scalar_escape(self, int, "__index__")
    T.__bool__ = lambda self: scalar_escape(self, bool, "bool()")
    T.__round__ = lambda self, ndigits=None: round(scalar_escape(self, float, "round()"),
                                                   ndigits)
    T.item = lambda self, *a: scalar_escape(self[a] if a else self.reshape(()) if self.size == 1
                                            else _item_error(self), float, ".item()")
    T.tolist = _tolist
    for name in _METHODS:
        setattr(T, name, _method(getattr(np, name)))
    T.reshape = lambda self, *shape, order="C": _call(np.reshape, self, _shape_args(shape),
                                                      order=order)
    T.transpose = lambda self, *axes: _call(np.transpose, self, _shape_args(axes) or None)
    T.T = property(lambda self: _call(np.transpose, self))
    T.mT = property(lambda self: _call(np.swapaxes, self, -1, -2))
    T.flatten = lambda self, order="C": copy(_call(np.ravel, self, order=order))
    T.astype = lambda self, dtype, copy=True, **kw: astype(self, dtype, copy)
    T.copy = lambda self, order="C": copy(self)
    T.real = property(lambda self: self if self.dtype.kind != "c" else _call(np.real, self))
    T.fill = lambda self, value: assign(self, Ellipsis, value)
    T.sort = _sort_inplace
    T.conj = T.conjugate = lambda self: bind(UFUNC_OPS[np.conjugate], self)


def _sort_inplace(self, axis=-1, kind=None, order=None, *, stable=None):
    """``x.sort()``: sorts in place (a new version of x) and returns None, as in NumPy."""
    assign(self, Ellipsis, _call(np.sort, self, axis=axis, kind=kind, order=order,
                                 stable=stable))


def _item_error(t):
    raise ValueError("can only convert an array of size 1 to a Python scalar")


def _tolist(self):
    t = current(self)
    if t._c == ACTIVE:
        raise escape_error(t, ".tolist()")
    return to_array_escape(t).tolist()


_install(Tracked)
