"""Tracked arrays and the recording machinery.

A :class:`Tracked` wraps a concrete value (an ndarray, a NumPy scalar, or -- in
nested differentiation -- a tracked value of an outer tape) together with its
slot on a :class:`~tapediff.tape.Tape`. Every NumPy operation on it goes
through :func:`bind`, which runs the op's forward and appends an instruction.

Mutation follows NumPy's view semantics through *storages*: a tracked value
that has views is backed by a :class:`Storage` holding the newest version of
the base array; a view is a chain of view ops applied to the base. A write
through any view makes a new version of the base, and views re-derive
themselves from it when they are next read.

The recording context is a :mod:`contextvars` variable, so two threads can
record at once and nested ``grad`` gets its own, deeper, tape.
"""
import contextvars
import gc
import os
import sys

import numpy as np

from .errors import LeakedTracer, TrackedEscape
from .ops.registry import BY_NAME, set_binder
from .tape import ACTIVE, CONST, VARYING, Tape

_RECORDING = contextvars.ContextVar("tapediff_recording", default=())
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))


class GuardFailed(Exception):
    """Internal: guard number ``ordinal`` (in tape order) saw another outcome."""

    def __init__(self, ordinal, observed):
        super().__init__(ordinal, observed)
        self.ordinal = ordinal
        self.observed = observed


# --------------------------------------------------------------- context
class recording:
    """Context manager that makes ``tape`` the innermost recording tape."""

    def __init__(self, tape):
        self.tape = tape

    def __enter__(self):
        self._token = _RECORDING.set(_RECORDING.get() + (self.tape,))
        self.tape.closed = False
        self._gc = no_gc()
        self._gc.__enter__()
        return self.tape

    def __exit__(self, *exc):
        self.tape.closed = True
        _RECORDING.reset(self._token)
        self._gc.__exit__()
        return False


class no_gc:
    """Pause Python's cyclic garbage collector.

    Recording and planning allocate millions of small acyclic objects; each
    full collection rescans all live ones, which makes long tapes quadratic.
    Reference counting still frees everything as usual.
    """

    def __enter__(self):
        self.was = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc):
        if self.was:
            gc.enable()
        return False


def new_tape(name="f"):
    """A tape one level deeper than the innermost tape recording in this context."""
    stack = _RECORDING.get()
    t = Tape(name, level=(stack[-1].level + 1) if stack else 0)
    t.closed = True
    return t


def user_site():
    """``(file, line)`` of the innermost frame outside tapediff: the user's code."""
    f = sys._getframe(1)
    while f is not None and (f.f_code.co_filename.startswith(_PKG_DIR)
                             or f.f_code.co_filename.startswith(_NUMPY_DIR)):
        f = f.f_back
    if f is None:
        return ("<unknown>", 0)
    return (f.f_code.co_filename, f.f_lineno)


# --------------------------------------------------------------- storage
class Storage:
    """Newest version of a base array that has views. ``ver`` counts writes."""

    __slots__ = ("v", "s", "c", "ver", "fresh", "tape")

    def __init__(self, t):
        self.v, self.s, self.c, self.tape = t._v, t._s, t._c, t._t
        self.ver = 0
        self.fresh = t._fresh


# --------------------------------------------------------------- tracked
class Tracked:
    """An array-like value being recorded on a tape.

    Behaves like an ndarray for NumPy code: operators, ufuncs (NEP 13), NumPy
    functions (NEP 18), indexing, methods and attributes all record. It does
    not subclass ndarray. Converting an active value to a Python number or a
    plain ndarray raises :class:`~tapediff.TrackedEscape`.
    """

    __slots__ = ("_v", "_s", "_t", "_c", "_st", "_ch", "_ver", "_fresh", "__weakref__")
    __array_priority__ = 1000.0
    __hash__ = None

    def __init__(self, value, slot, tape, cls, fresh=False):
        self._v = value
        self._s = slot
        self._t = tape
        self._c = cls
        self._st = None
        self._ch = ()
        self._ver = 0
        self._fresh = fresh

    # static attributes: shapes are fixed per tape version, reading them is free
    @property
    def shape(self):
        return self._v.shape

    @property
    def dtype(self):
        return self._v.dtype

    @property
    def ndim(self):
        return len(self._v.shape)

    @property
    def size(self):
        return int(np.prod(self._v.shape, dtype=np.int64))

    @property
    def itemsize(self):
        return self._v.dtype.itemsize

    @property
    def nbytes(self):
        return self.size * self.itemsize

    def __len__(self):
        if not self._v.shape:
            raise TypeError("len() of unsized object")
        return self._v.shape[0]

    def __iter__(self):
        if not self._v.shape:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self._v.shape[0]))

    @property
    def is_active(self):
        """True when this value carries a derivative.

        Examples
        --------
        >>> import numpy as np, tapediff as td
        >>> def f(x, data):
        ...     assert (x * 2).is_active and not (data * 2).is_active
        ...     return np.sum(x * data)
        >>> _ = td.grad(f)(np.ones(2), np.ones(2))
        """
        return self._c == ACTIVE

    # printing shows the recorded value and records nothing
    def __repr__(self):
        cur = current(self)
        return f"Tracked({cur._v!r}, {'active' if cur._c == ACTIVE else 'inactive'})"

    def __str__(self):
        return str(current(self)._v)

    def __format__(self, spec):
        return format(current(self)._v, spec)


def current(t):
    """Return ``t`` with its value and slot re-derived if its storage was written."""
    st = t._st
    if st is not None and t._ver != st.ver:
        _rebuild(t)
    return t


def _rebuild(t):
    st = t._st
    if t._t.closed:
        raise LeakedTracer("a view of a tracked array was used after the recording it "
                           "belongs to ended (was it stored in a global or a closure?); "
                           "return it from the function instead")
    v = Tracked(st.v, st.s, st.tape, st.c)
    for name, params in t._ch:
        if name != "readonly":
            v = record(v._t, BY_NAME[name], (v,), dict(params), keep_fresh=True)
    t._v, t._s, t._c, t._ver = v._v, v._s, v._c, st.ver


def storage_of(t):
    """The storage backing ``t``, created on first use (when a view is taken)."""
    st = t._st
    if st is None:
        st = t._st = Storage(t)
        t._ch = ()
        t._ver = 0
    return st


def make_view(base, name, params, readonly=False):
    """Record a view op on ``base`` and return a tracked view sharing its storage."""
    if type(base) is not Tracked:
        return BY_NAME[name].forward(base, **params)
    base = current(base)
    out = record(base._t, BY_NAME[name], (base,), params, keep_fresh=True)
    st = storage_of(base)
    out._st = st
    out._ch = base._ch + ((name, tuple(sorted(params.items()))),)
    out._ver = st.ver
    if readonly:
        out._ch = out._ch + (("readonly", ()),)
    return out


# --------------------------------------------------------------- binding
def tape_of(args):
    """Innermost tape among the tracked arguments, or None."""
    tape = None
    for a in args:
        if type(a) is Tracked:
            t = a._t
            if tape is None or t.level > tape.level:
                tape = t
    return tape


def const_slot(tape, a):
    """Slot of a non-tracked argument (a constant baked into the tape)."""
    if isinstance(a, (float, int, bool)) and not isinstance(a, np.generic):
        return tape.add_const(a, (), type(a)), a
    if type(a) is Tracked:  # belongs to an outer tape: a constant of this one
        return tape.add_const(a, tuple(a.shape), a.dtype), a
    if isinstance(a, np.generic):
        return tape.add_const(a, (), a.dtype), a
    if not isinstance(a, np.ndarray):
        a = as_constant_array(a)
    # The tape keeps a snapshot: the caller may change the array afterwards
    # (a reused buffer), and the recording must keep the value it used. A
    # closure array used again unchanged (every iteration of a loop) reuses its
    # slot, which also lets loop folding see it as loop-invariant.
    seen = tape.const_ids.get(id(a))
    if seen is not None:
        slot, snap, obj = seen
        if obj is a and snap.shape == a.shape and snap.dtype == a.dtype and \
                np.array_equal(snap, a, equal_nan=a.dtype.kind in "fc"):
            return slot, snap
    snap = a.copy()
    snap.flags.writeable = False
    slot = tape.add_const(snap, snap.shape, snap.dtype, site=user_site() if a.ndim else None)
    tape.const_ids[id(a)] = (slot, snap, a)
    return slot, snap


def recorded(x):
    """The recorded NumPy value behind a tracked value (through nested
    tapes), read without a guard: for decisions that may differ on replay
    without changing a result (a memory layout, a warning)."""
    v = x
    while type(v) is Tracked:
        v = current(v)._v
    return v


def operand(a):
    """An argument of a NumPy function as a handler takes it: tracked values
    and NumPy arrays/scalars as they are, other inputs (lists, Python
    numbers) as constant arrays."""
    if type(a) is Tracked or isinstance(a, (np.ndarray, np.generic)):
        return a
    return as_constant_array(a)


def as_constant_array(a):
    """``np.asarray`` for constants, refusing containers that hold tracked values."""
    try:
        return np.asarray(a)
    except TrackedEscape:
        raise
    except Exception as e:  # pragma: no cover - odd user objects
        raise TypeError(f"cannot use {type(a).__name__} as an array operand: {e}") from e


def bind(op, *args, **params):
    """Run ``op`` on ``args``; record it when any argument is tracked.

    Untracked arguments become constants of the innermost tape. Returns a
    plain value when no argument is tracked.
    """
    tape = tape_of(args)
    if tape is None:
        return op.forward(*args, **params)
    return record(tape, op, args, params)


def record(tape, op, args, params, forward=None, keep_fresh=False):
    """Append ``op(*args, **params)`` to ``tape``; ``forward`` overrides the op's
    own forward (the in-place variant of a write). ``keep_fresh``: the caller
    registers the result as a view that is rebuilt after writes (make_view).

    This is the recording hot path: every line counts for scalar loops.
    """
    if tape.closed:
        raise LeakedTracer(
            f"{op.name}: a tracked value was used after the recording it belongs to "
            "ended (was it stored in a global or returned inside an opaque object?)")
    slots = []
    vals = []
    cls = CONST
    for a in args:
        if type(a) is Tracked and a._t is tape:
            st = a._st
            if st is not None and a._ver != st.ver:
                _rebuild(a)
            slots.append(a._s)
            vals.append(a._v)
            if a._c > cls:
                cls = a._c
        elif type(a) is float or type(a) is int:
            slots.append(tape.add_number(a))
            vals.append(a)
        else:
            s, v = const_slot(tape, a)
            slots.append(s)
            vals.append(v)
    fn = forward or op.forward
    out = fn(*vals, **params) if params else fn(*vals)
    if op.view and not keep_fresh and type(args[0]) is Tracked:
        # the result may share argument 0's memory and, unlike a registered view
        # (make_view), is not re-derived after a write: never write it in place
        a = args[0]
        a._fresh = False
        if a._st is not None:
            a._st.fresh = False
    if type(out) is tuple:
        return _record_multi(tape, op, slots, params, out, cls)
    dt = out.dtype
    if cls == ACTIVE and (op.inactive or dt.kind != "f"):
        cls = VARYING
    slot = tape.append(op.code, slots, params, out.shape, dt, cls)
    return Tracked(out, slot, tape, cls, not op.view)


def _record_multi(tape, op, slots, params, outs, cls):
    classes = [VARYING if cls == ACTIVE and (op.inactive or k in op.inactive_outputs
                                              or o.dtype.kind != "f") else cls
               for k, o in enumerate(outs)]
    new = tape.append_multi(op.code, slots, params, [(tuple(o.shape), o.dtype) for o in outs],
                            classes)
    return tuple(Tracked(o, s, tape, c, not op.view) for o, s, c in zip(outs, new, classes))


def record_guard(t, opname, expect, site=None, extra=()):
    """Append a guard on ``t``: replay fails over when the outcome differs."""
    tape = t._t
    slots = [t._s] + [const_slot(tape, e)[0] for e in extra]
    params = {"expect": expect, "site": site or user_site()}
    tape.append(BY_NAME[opname].code, slots, params, None, None, CONST)
    tape.guards.append(len(tape) - 1)


def escape_error(t, what, advice=None):
    advice = advice or (
        "Keep it an array: use np.exp instead of math.exp, np.stack instead of "
        "np.array([...]), create buffers with np.zeros(n, like=x) instead of np.zeros(n), "
        "and pass arrays instead of Python numbers.")
    return TrackedEscape(f"{what} on an active tracked value would drop its derivative. "
                         f"{advice} (value: shape {t.shape}, dtype {t.dtype})")


def is_tracked(x):
    """True for a tracked value of any tape.

    Examples
    --------
    >>> import numpy as np, tapediff as td
    >>> def f(x):
    ...     assert td.is_tracked(x) and not td.is_tracked(np.ones(2))
    ...     return np.sum(x)
    >>> _ = td.grad(f)(np.ones(2))
    """
    return type(x) is Tracked


set_binder(bind)
