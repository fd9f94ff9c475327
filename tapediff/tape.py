"""The tape: a flat SSA Wengert list stored column-wise.

Every value lives in a *slot*. A slot is an input (replayed argument), a
constant (baked in), or the output of one instruction. Per slot the tape keeps
its kind, shape id, dtype id and activity class; per instruction its opcode,
output slot, argument slots (a flat array with start offsets) and an id into
the de-duplicated attribute table. Nothing here is a closure: a tape can be
printed, hashed, rewritten by passes and rendered to other backends.

Activity classes (one byte per slot):

* ``CONST`` (0) -- does not depend on any replayed input; may be folded;
* ``VARYING`` (1) -- depends on replayed inputs but carries no derivative
  (data arguments, masks, indices, integer results);
* ``ACTIVE`` (2) -- carries a derivative.
"""
import itertools
from array import array
from bisect import bisect_left

import numpy as np

from .ops.registry import OPS, strong

INPUT, CONSTANT, RESULT = 0, 1, 2
CONST, VARYING, ACTIVE = 0, 1, 2
_KIND_NAMES = {CONST: "const", VARYING: "data", ACTIVE: "active"}
_ids = itertools.count(1)


class ConstTable:
    """Slot -> constant value, compact for the common case.

    Scalar loops record two Python-number constants per iteration (the ``i``
    of ``x ** i / i``); a dict of Python objects costs ~65 bytes for each.
    Python floats and ints live here in typed arrays (13 bytes each) and come
    back with their Python type, so NumPy 2's weak promotion is unchanged.
    Everything else (arrays, NumPy scalars) is kept in a dict.
    """

    __slots__ = ("_obj", "_slots", "_vals", "_ints")

    def __init__(self):
        self._obj = {}
        self._slots = array("i")     # increasing: slots are numbered in creation order
        self._vals = array("d")
        self._ints = array("b")      # 1: int, 0: float

    def __setitem__(self, s, v):
        t = type(v)
        if ((t is float or (t is int and -2**53 <= v <= 2**53)) and s not in self._obj
                and (not self._slots or s > self._slots[-1])):
            self._slots.append(s)
            self._vals.append(v)
            self._ints.append(t is int)
        else:
            if self._find(s) >= 0:
                raise ValueError(f"constant slot {s} is already set")
            self._obj[s] = v

    def _find(self, s):
        k = bisect_left(self._slots, s)
        return k if k < len(self._slots) and self._slots[k] == s else -1

    def __getitem__(self, s):
        v = self._obj.get(s, _MISSING)
        if v is not _MISSING:
            return v
        k = self._find(s)
        if k < 0:
            raise KeyError(s)
        x = self._vals[k]
        return int(x) if self._ints[k] else x

    def __contains__(self, s):
        return s in self._obj or self._find(s) >= 0

    def get(self, s, default=None):
        return self[s] if s in self else default

    def __iter__(self):
        yield from self._obj
        yield from self._slots

    def __len__(self):
        return len(self._obj) + len(self._slots)

    def items(self):
        for s in self:
            yield s, self[s]

    def scalars(self, slots):
        """``(values, is_int)`` arrays for slots that all hold Python numbers, else None."""
        if not len(self._slots):
            return None
        table = np.frombuffer(self._slots, dtype=np.int32)
        k = np.searchsorted(table, slots)     # scalar slots are appended in order
        k = np.minimum(k, len(table) - 1)
        if not np.array_equal(table[k], slots):
            return None
        return (np.frombuffer(self._vals, dtype=np.float64)[k],
                np.frombuffer(self._ints, dtype=np.int8)[k].astype(bool))

    def copy(self):
        t = ConstTable()
        t._obj = dict(self._obj)
        t._slots = array("i", self._slots)
        t._vals = array("d", self._vals)
        t._ints = array("b", self._ints)
        return t

    def nbytes(self):
        return (self._slots.itemsize + self._vals.itemsize + 1) * len(self._slots)


_MISSING = object()


class Tape:
    """A recorded program. Built by the tracer, read by passes and the interpreter."""

    def __init__(self, name="f", level=0):
        self.id = next(_ids)
        self.name = name
        self.level = level
        # instruction columns
        self.op = array("H")
        self.out = array("i")
        self.argp = array("i", [0])
        self.args = array("i")
        self.attr = array("i")
        # slot columns
        self.skind = array("b")
        self.sclass = array("b")
        self.stype = array("i")     # index into self.types: (shape, dtype) pairs
        # side tables
        self.consts = ConstTable()  # slot -> value
        self.sites = {}         # slot or ("guard", instr) -> (file, line)
        self.attrs = [{}]
        self._attr_ids = {(): 0}
        self.types = []
        self._type_ids = {}
        self.inputs = []        # input slots, in flattened-argument order
        self.input_names = []
        self.outputs = []       # output slots
        self.out_treedef = None
        self.guards = []        # instruction indices of guards, in order
        # slots whose value is exactly triangular whatever the data (Cholesky
        # factors): slot -> lower; read while recording (np_api.linalg.solve)
        self.triangular = {}
        self.pending_escape = None  # a TrackedEscape NumPy may have swallowed
        self.const_ids = {}         # id(user array) -> (slot, snapshot, array), while recording

    # -------------------------------------------------------------- building
    def attr_id(self, params):
        if not params:
            return 0
        key = tuple(sorted(params.items()))
        i = self._attr_ids.get(key)
        if i is None:
            i = self._attr_ids[key] = len(self.attrs)
            self.attrs.append(dict(params))
        return i

    def new_slot(self, kind, cls, shape, dtype):
        s = len(self.skind)
        self.skind.append(kind)
        self.sclass.append(cls)
        key = (shape, dtype)
        t = self._type_ids.get(key)
        if t is None:
            t = self._type_ids[key] = len(self.types)
            self.types.append(key)
        self.stype.append(t)
        return s

    def add_input(self, shape, dtype, active, name):
        s = self.new_slot(INPUT, ACTIVE if active else VARYING, shape, dtype)
        self.inputs.append(s)
        self.input_names.append(name)
        return s

    def add_number(self, v):
        """A constant slot for a Python float or int (the hot path of scalar loops:
        ``new_slot`` and ``ConstTable.__setitem__`` inlined)."""
        s = len(self.skind)
        self.skind.append(CONSTANT)
        self.sclass.append(CONST)
        key = ((), type(v))
        t = self._type_ids.get(key)
        if t is None:
            t = self._type_ids[key] = len(self.types)
            self.types.append(key)
        self.stype.append(t)
        c = self.consts
        if type(v) is float or -2**53 <= v <= 2**53:
            c._slots.append(s)
            c._vals.append(v)
            c._ints.append(type(v) is int)
        else:
            c._obj[s] = v
        return s

    def add_const(self, value, shape, dtype, site=None):
        s = self.new_slot(CONSTANT, CONST, shape, dtype)
        self.consts[s] = value
        if site is not None:
            self.sites[s] = site
        return s

    def append(self, opcode, arg_slots, params, shape, dtype, cls):
        """Append one instruction; returns its output slot (-1 for guards)."""
        if shape is None:
            out = -1
        else:      # new_slot, inlined: this is the recording hot path
            out = len(self.skind)
            self.skind.append(RESULT)
            self.sclass.append(cls)
            key = (shape, dtype)
            t = self._type_ids.get(key)
            if t is None:
                t = self._type_ids[key] = len(self.types)
                self.types.append(key)
            self.stype.append(t)
        self.op.append(opcode)
        self.out.append(out)
        self.args.extend(arg_slots)
        self.argp.append(len(self.args))
        self.attr.append(self.attr_id(params) if params else 0)
        return out

    def append_multi(self, opcode, arg_slots, params, types, classes):
        """Append an instruction with several outputs (consecutive slots).

        The output count is kept in the attribute ``nout``; ``out[i]`` is the
        first output slot.
        """
        first = len(self.skind)
        for (shape, dtype), cls in zip(types, classes):
            self.new_slot(RESULT, cls, shape, dtype)
        params = dict(params, nout=len(types))
        self.op.append(opcode)
        self.out.append(first)
        self.args.extend(arg_slots)
        self.argp.append(len(self.args))
        self.attr.append(self.attr_id(params))
        return list(range(first, first + len(types)))

    @classmethod
    def with_inputs_of(cls, src):
        """An empty tape with ``src``'s inputs (types, classes, names), and the
        slot map from ``src`` to it, ready for :meth:`copy_range`."""
        new = cls(src.name, src.level)
        remap = {}
        for s, name in zip(src.inputs, src.input_names):
            remap[s] = new.add_input(src.shape(s), src.dtype(s), False, name)
            new.sclass[remap[s]] = src.sclass[s]
        return new, remap

    def inline(self, src, arg_slots):
        """Append the instructions of tape ``src`` with its inputs bound to
        ``arg_slots``; returns the slots of ``src``'s outputs here."""
        remap = dict(zip(src.inputs, arg_slots))
        self.copy_range(src, 0, len(src), remap)
        return [self.map_slot(src, s, remap) for s in src.outputs]

    def map_slot(self, src, s, remap):
        """``remap[s]``, copying a constant of ``src`` on first use."""
        r = remap.get(s)
        if r is None:
            if s not in src.consts:
                raise KeyError(f"slot {s} of tape {src.name!r} has no counterpart")
            r = remap[s] = self.add_const(src.consts[s], src.shape(s), src.dtype(s),
                                          src.sites.get(s))
        return r

    def copy_range(self, src, lo, hi, remap):
        """Append instructions ``lo:hi`` of ``src``; ``remap`` maps its slots to
        ours (inputs given by the caller; results and constants are added)."""
        for i in range(lo, hi):
            args = [self.map_slot(src, a, remap) for a in src.args[src.argp[i]:src.argp[i + 1]]]
            params = src.attrs[src.attr[i]]
            outs = src.outs(i)
            if not outs:
                self.append(src.op[i], args, params, None, None, 0)
                self.guards.append(len(self) - 1)
            elif "nout" in params:
                new = self.append_multi(src.op[i], args,
                                        {k: v for k, v in params.items() if k != "nout"},
                                        [src.types[src.stype[o]] for o in outs],
                                        [src.sclass[o] for o in outs])
                remap.update(zip(outs, new))
            else:
                o = outs[0]
                remap[o] = self.append(src.op[i], args, params, src.shape(o), src.dtype(o),
                                       src.sclass[o])

    def producers(self):
        """``prod[s]``: the index of the instruction that makes slot ``s`` (-1:
        an input or a constant), as an int32 array."""
        out = np.frombuffer(self.out, dtype=np.int32)
        prod = np.full(self.n_slots, -1, dtype=np.int32)
        has = out >= 0
        prod[out[has]] = np.nonzero(has)[0]
        for k, a in enumerate(self.attrs):          # the extra outputs of multi-output ops
            if a.get("nout", 1) > 1:
                for i in np.nonzero(np.frombuffer(self.attr, dtype=np.int32) == k)[0]:
                    prod[out[i]:out[i] + a["nout"]] = i
        return prod

    def outs(self, i):
        """Output slots of instruction ``i`` (empty for a guard)."""
        o = self.out[i]
        if o < 0:
            return ()
        return tuple(range(o, o + self.attrs[self.attr[i]].get("nout", 1)))

    # -------------------------------------------------------------- reading
    def __len__(self):
        return len(self.op)

    @property
    def n_slots(self):
        return len(self.skind)

    def instr(self, i):
        """``(op, out_slot, arg_slots, params)`` of instruction ``i``."""
        return (OPS[self.op[i]], self.out[i],
                tuple(self.args[self.argp[i]:self.argp[i + 1]]), self.attrs[self.attr[i]])

    def shape(self, s):
        return self.types[self.stype[s]][0]

    def dtype(self, s):
        return self.types[self.stype[s]][1]

    def active(self, s):
        return self.sclass[s] == ACTIVE

    def nbytes(self):
        """Bytes held by the tape's columns and its scalar constants (not array payloads)."""
        cols = (self.op, self.out, self.argp, self.args, self.attr,
                self.skind, self.sclass, self.stype)
        return sum(c.itemsize * len(c) for c in cols) + self.consts.nbytes()

    def copy(self):
        """A new tape with the same instructions; used to append a reverse sweep."""
        t = Tape.__new__(Tape)
        t.__dict__.update(self.__dict__)
        t.id = next(_ids)
        for k in ("op", "out", "argp", "args", "attr", "skind", "sclass", "stype"):
            setattr(t, k, array(getattr(self, k).typecode, getattr(self, k)))
        t.consts = self.consts.copy()
        for k in ("sites", "_attr_ids", "_type_ids"):
            setattr(t, k, dict(getattr(self, k)))
        for k in ("attrs", "types", "inputs", "input_names", "outputs", "guards"):
            setattr(t, k, list(getattr(self, k)))
        return t

    # -------------------------------------------------------------- printing
    def _type(self, s):
        dt = self.dtype(s)
        name = dt.__name__ if isinstance(dt, type) else _short_dtype(dt)
        shp = self.shape(s)
        return f"{name}[{','.join(map(str, shp))}]"

    def _arg(self, s):
        if self.skind[s] == CONSTANT:
            v = self.consts[s]
            if isinstance(v, (bool, int, float)) or (np.ndim(v) == 0 and not hasattr(v, "_tape")):
                return repr(v.item() if isinstance(v, np.generic) else v)
        return f"%{s}"

    def __str__(self):
        rec = getattr(self, "n_recorded", None)
        folded = f" (folded from {rec} recorded)" if rec and rec != len(self) else ""
        lines = [f"tape {self.name}: {len(self)} instructions{folded}, {self.n_slots} slots, "
                 f"{len(self.guards)} guards"]
        lines.append("inputs:")
        for s, name in zip(self.inputs, self.input_names):
            lines.append(f"  %{s}: {self._type(s)} {name} ({_KIND_NAMES[self.sclass[s]]})")
        shown = [s for s in self.consts if self._arg(s).startswith("%")]
        if shown:
            lines.append("constants:")
            for s in shown:
                site = self.sites.get(s)
                where = f"  from {site[0]}:{site[1]}" if site else ""
                lines.append(f"  %{s}: {self._type(s)} = {_short_repr(self.consts[s])}{where}")
        lines.append("body:")
        bodies = []
        for i in range(len(self)):
            op, out, args, params = self.instr(i)
            shown = {}
            for k, v in params.items():
                if k in ("site", "nout"):
                    continue
                if isinstance(v, Tape):
                    if v not in bodies:
                        bodies.append(v)
                    v = _Raw(f"<body {bodies.index(v) + 1}>")
                shown[k] = v
            ps = ", ".join(f"{k}={v!r}" for k, v in shown.items())
            arg_text = ", ".join(self._arg(a) for a in args)
            call = f"{op.name}({arg_text}{', ' if ps and args else ''}{ps})"
            if out < 0:
                site = params.get("site")
                lines.append(f"  {call}" + (f"  at {site[0]}:{site[1]}" if site else ""))
            else:
                outs = self.outs(i)
                tag = " *" if any(self.sclass[o] == ACTIVE for o in outs) else ""
                lhs = ", ".join(f"%{o}: {self._type(o)}" for o in outs)
                lines.append(f"  {lhs} = {call}{tag}")
        lines.append("outputs: " + ", ".join(f"%{s}" for s in self.outputs))
        for k, b in enumerate(bodies):
            lines.append(f"<body {k + 1}> (a loop body, stored once):")
            lines.extend("  " + line for line in str(b).splitlines()[1:-1])
        lines.append("(* marks active values; constants include closures, globals and "
                     "random draws)")
        return "\n".join(lines)


class _Raw:
    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def flat_guards(tape):
    """Number of guards the tape runs, loops unrolled (cached on the tape)."""
    n = getattr(tape, "_flat_guards", None)
    if n is None:
        n = 0
        for i in range(len(tape)):
            if tape.out[i] < 0:
                n += 1
            else:
                p = tape.attrs[tape.attr[i]]
                if "body" in p:
                    n += p["trips"] * flat_guards(p["body"])
        tape._flat_guards = n
    return n


def _short_dtype(dt):
    return {"float64": "f64", "float32": "f32", "int64": "i64", "int32": "i32",
            "bool": "bool", "float16": "f16", "complex128": "c128"}.get(dt.name, dt.name)


def _short_repr(v):
    if hasattr(v, "_tape"):
        return "<tracked value of an outer tape>"
    a = np.asarray(v)
    if a.size <= 6:
        return np.array2string(a, separator=", ", precision=6)
    flat = a.ravel()
    return f"[{', '.join(f'{x:.6g}' for x in flat[:3])}, ...] (size {a.size})"


def dtype_of_value(v):
    """Strong dtype of a concrete value (weak Python scalars become their NumPy default)."""
    return strong(type(v)) if isinstance(v, (bool, int, float, complex)) else v.dtype
