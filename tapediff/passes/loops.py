"""Loop folding: repeated blocks of a recorded tape become ``scan`` instructions.

Recording a Python loop appends the same instructions once per iteration.
After recording, this pass looks for runs where instruction ``j`` has the same
*signature* (opcode, attributes, output types, which arguments are constants)
as instruction ``j - P``, and checks that each argument of the block refers

* to a value made earlier in the same iteration (``internal``),
* to a value made in the previous iteration (``carried``; the first iteration
  reads its initial value from before the loop),
* to the same value in every iteration (``invariant``), or
* to a constant that changes per iteration (``per-iteration input``; stored as
  an arithmetic progression when it is one, else stacked).

A block that passes becomes one body tape, held once, and a ``scan`` with the
trip count. Values of the last iteration that the rest of the tape reads are
carried too. Nested loops fold from the inside out: bodies are interned by
content, so the outer iterations look alike once their inner loops are folded.
"""
from array import array

import numpy as np

from ..ops.control import SCAN
from ..ops.registry import BY_NAME, OPS
from ..tape import ACTIVE, CONSTANT, Tape

MIN_TRIPS = 4          # fewer repetitions are left unrolled

# classes of a loop-block argument (first item of its class tuple)
INTERNAL = "internal"          # made earlier in the same iteration: (INTERNAL, q, out index)
CARRIED = "carried"            # made in the previous iteration:      (CARRIED, q, out index)
INVARIANT = "invariant"        # the same slot in every iteration:     (INVARIANT, slot)
PER_ITERATION = "per-iteration"  # a constant that changes per iteration: (PER_ITERATION,)
MAX_PERIOD = 4096      # longest loop body looked for, in instructions
_CANDIDATES = 4        # previous occurrences of a signature tried as period starts


def fold(tape):
    """Return ``tape`` with its repeated blocks folded into scans."""
    interned = {}
    for _ in range(4):                      # inner loops first, then enclosing ones
        new = _fold_once(tape, interned)
        if new is tape:
            break
        tape = new
    return tape


# ------------------------------------------------------------------ analysis
_MAX_ARITY = 8   # instructions with more arguments never start a loop block


def _signatures(tape, interned):
    """Small integers equal exactly when two instructions have the same opcode,
    attributes, output type and pattern of constant arguments."""
    n = len(tape)
    if n == 0:
        return []
    attr_key = {}
    akeys = np.empty(len(tape.attrs), dtype=np.int64)
    for k, a in enumerate(tape.attrs):
        if "body" in a:
            key = _body_key(a, interned)
        elif "index" in a:      # x[i] with a loop counter i: equal up to the integers
            key = ("index",) + _index_shape(a)
        else:
            key = k
        akeys[k] = attr_key.setdefault(key, len(attr_key))
    out = np.frombuffer(tape.out, dtype=np.int32)
    stype = np.frombuffer(tape.stype, dtype=np.int32)
    argp = np.frombuffer(tape.argp, dtype=np.int32)
    args = np.frombuffer(tape.args, dtype=np.int32)
    nargs = np.diff(argp)
    width = int(min(nargs.max(initial=0), _MAX_ARITY))
    # one column at a time (memory stays a few arrays of n), combined exactly:
    # renumber after each column so the running key stays below n * range
    sig = np.zeros(n, dtype=np.int64)
    radix = [1]

    def combine(sig, col):
        # mixed-radix packing is exact; renumber (np.unique) only when it would overflow
        col = col.astype(np.int64)
        col -= col.min(initial=0)
        r = int(col.max(initial=0)) + 1
        if radix[0] * r >= 2 ** 62:
            _, sig = np.unique(sig, return_inverse=True)
            sig = sig.ravel()
            radix[0] = int(sig.max(initial=0)) + 1
        radix[0] *= r
        sig *= r
        sig += col
        return sig

    sig = combine(sig, np.frombuffer(tape.op, dtype=np.uint16))
    sig = combine(sig, akeys[np.frombuffer(tape.attr, dtype=np.int32)])
    sig = combine(sig, np.where(out >= 0, stype[np.maximum(out, 0)], -1))
    sig = combine(sig, nargs)
    skind = np.frombuffer(tape.skind, dtype=np.int8)
    for t in range(width):
        has = nargs > t
        a = args[argp[:-1][has] + t]
        col = np.zeros(n, dtype=np.int32)
        col[has] = np.where(skind[a] == CONSTANT, -1 - stype[a], 0)
        sig = combine(sig, col)
    wide = np.nonzero(nargs > _MAX_ARITY)[0]
    if len(wide):
        _, sig = np.unique(sig, return_inverse=True)
        sig = sig.ravel()
        sig[wide] = sig.max(initial=0) + 1 + np.arange(len(wide))
    return array("q", sig.tobytes())


# ops whose integer index items may become per-iteration inputs (see _counter_op)
_INDEXED = {"getitem": "gather", "gather": "gather", "setitem": "setitem",
            "scatter_add": "scatter_add"}


def _index_shape(params):
    """Params with the integer items of ``index`` blanked: equal for ``x[i]``
    and ``x[i + 1]``."""
    index = tuple(("i", None) if it[0] == "i" else it for it in params["index"])
    return tuple(sorted((k, index if k == "index" else v) for k, v in params.items()))


def _counters(a0, a1):
    """Every integer index item of two attribute dicts of the same op, with its
    first value and step (0 for a constant item: still to be checked on every
    later iteration); None if anything else differs."""
    if "index" not in a0:
        return [] if a0 is a1 else None
    if a0 is not a1 and _index_shape(a0) != _index_shape(a1):
        return None
    return [(p, x[1], y[1] - x[1]) for p, (x, y) in enumerate(zip(a0["index"], a1["index"]))
            if x[0] == "i"]


def _body_key(params, interned):
    return tuple((k, interned.get(id(v), id(v)) if isinstance(v, Tape) else v)
                 for k, v in sorted(params.items()))


class _Region:
    __slots__ = ("start", "period", "trips", "cls", "keys", "inits", "invariants", "xs",
                 "counters")

    @property
    def end(self):
        return self.start + self.period * self.trips


def _classify(tape, prod, start, P):
    """Argument classes from iterations 0 and 1 (and the index items that
    count with the loop), or None."""
    cls = {}
    inits = {}
    counters = {}
    out, skind = tape.out, tape.skind
    for q in range(P):
        j0, j1 = start + q, start + P + q
        c = _counters(tape.attrs[tape.attr[j0]], tape.attrs[tape.attr[j1]])
        if c is None or (c and tape.instr(j0)[0].name not in _INDEXED):
            return None
        if c:
            counters[q] = c             # verified on every iteration by _verify_counters
        a0s = tape.args[tape.argp[j0]:tape.argp[j0 + 1]]
        a1s = tape.args[tape.argp[j1]:tape.argp[j1 + 1]]
        for t, (a0, a1) in enumerate(zip(a0s, a1s)):
            if skind[a1] == CONSTANT:
                if skind[a0] != CONSTANT:
                    return None
                cls[q, t] = (INVARIANT, a0) if a0 == a1 else (PER_ITERATION,)
                continue
            p0, p1 = prod[a0], prod[a1]
            if start + P <= p1 < start + 2 * P:
                if p0 != p1 - P or a1 - out[p1] != a0 - out[p0]:
                    return None
                cls[q, t] = (INTERNAL, p1 - start - P, a1 - out[p1])
            elif start <= p1 < start + P:
                # a carried value must keep its type: a 0-d accumulator that
                # broadcasts to an array in the first iteration is not a loop
                # value yet (the search then starts one iteration later)
                if p0 >= start or tape.stype[a0] != tape.stype[a1]:
                    return None
                key = (p1 - start, a1 - out[p1])
                if inits.setdefault(key, a0) != a0:
                    return None
                cls[q, t] = (CARRIED,) + key
            elif a1 == a0:
                cls[q, t] = (INVARIANT, a0)
            else:
                return None
    return cls, inits, counters


def _verify(tape, start, P, trips, cls):
    """Trips (<= ``trips``) for which every iteration matches the classes.

    Iterations have the same argument layout, so the region's arguments form
    a (trips, L) matrix; each column is compared with what its class predicts.
    """
    argp = np.frombuffer(tape.argp, dtype=np.int32)
    lo, hi = argp[start], argp[start + trips * P]
    L = argp[start + P] - lo
    if L == 0:                 # no arguments at all: nothing can disagree
        return trips
    if hi - lo != trips * L:   # cannot happen with equal signatures; stay safe
        return 2
    got = np.frombuffer(tape.args, dtype=np.int32)[lo:hi].reshape(trips, L)[2:]
    out = np.frombuffer(tape.out, dtype=np.int32)
    const = np.frombuffer(tape.skind, dtype=np.int8) == CONSTANT
    bases = start + P * np.arange(2, trips)
    bad = np.zeros(trips - 2, dtype=bool)
    col = 0
    for q in range(P):
        j = start + q
        for t in range(argp[j + 1] - argp[j]):
            c = cls[q, t]
            g = got[:, col]
            kind = c[0]
            if kind == INTERNAL:
                bad |= g != out[bases + c[1]] + c[2]
            elif kind == CARRIED:
                bad |= g != out[bases - P + c[1]] + c[2]
            elif kind == INVARIANT:
                bad |= g != c[1]
            else:
                bad |= ~const[g]
            col += 1
    first = np.argmax(bad) if bad.any() else None
    return trips if first is None else int(first) + 2


class _ReadLater:
    """Why a region was refused: code after it reads its instruction at
    ``last`` (the latest such), which is not in its last iteration."""
    __slots__ = ("last",)

    def __init__(self, last):
        self.last = last


def _external_uses(tape, prod, start, end, P):
    """Positions (q, o) of the last iteration read after the region, or a
    :class:`_ReadLater` when something after it reads an earlier iteration."""
    argp = np.frombuffer(tape.argp, dtype=np.int32)
    refs = np.concatenate([np.frombuffer(tape.args, dtype=np.int32)[argp[end]:],
                           np.asarray(tape.outputs, dtype=np.int32)])
    p = prod[refs]
    inside = (p >= start) & (p < end)
    if not inside.any():
        return set()
    early = p[inside] < end - P
    if early.any():
        return _ReadLater(int(p[inside][early].max()))
    out = np.frombuffer(tape.out, dtype=np.int32)
    pi, ri = p[inside], refs[inside]
    return {(int(a) - (end - P), int(b) - int(out[a])) for a, b in zip(pi, ri)}


def _find(tape, prod, sig):
    regions = []
    last = {}
    # period -> (end of its run of equal signatures, latest instruction of the
    # run that code after it reads): a list of per-iteration values used later
    # (``keys = [x[i] for i in range(n)]``) is refused at every start up to
    # that instruction, and retrying each start would cost O(n^2)
    read_later = {}
    runs = {}       # period -> end of the last run of equal signatures scanned
    n = len(tape)
    i = 0
    while i < n:
        s = sig[i]
        found = None
        for p0 in reversed(last.get(s, ())):
            P = i - p0
            if P > MAX_PERIOD or p0 + 2 * P > n:
                continue
            known = read_later.get(P)
            if known is not None and i < known[0] and p0 <= known[1]:
                continue
            j = runs.get(P, 0)
            if j <= i:          # else position i is inside a run scanned before: same end
                j = i
                while j < n and sig[j] == sig[j - P]:
                    j += 1
                runs[P] = j
            trips = (j - p0) // P
            if trips < MIN_TRIPS:
                continue
            r = _region(tape, prod, p0, P, trips)
            if isinstance(r, _ReadLater):
                read_later[P] = (j, r.last)
                continue
            if r is not None:
                found = r
                break
        if found is not None:
            regions.append(found)
            i = found.end
            last = {}
            continue
        lst = last.setdefault(s, [])
        lst.append(i)
        if len(lst) > _CANDIDATES:
            del lst[0]
        i += 1
    return regions


def _verify_counters(tape, start, P, trips, counters):
    """Trips (<= ``trips``) whose integer index items follow their progressions.

    Vectorised over iterations: each distinct attribute entry is read once."""
    attr = np.frombuffer(tape.attr, dtype=np.int32)
    k = np.arange(trips)
    first_bad = trips
    for q, items in counters.items():
        ids = attr[start + q + P * k]
        uniq, inv = np.unique(ids, return_inverse=True)
        shape0 = _index_shape(tape.attrs[int(ids[0])])
        vals = np.empty((len(uniq), len(items)), dtype=np.int64)
        ok = np.ones(len(uniq), dtype=bool)
        for u, aid in enumerate(uniq):
            a = tape.attrs[int(aid)]
            if "index" not in a or _index_shape(a) != shape0:
                ok[u] = False
                continue
            vals[u] = [a["index"][p][1] for p, _, _ in items]
        v0 = np.array([it[1] for it in items], dtype=np.int64)
        step = np.array([it[2] for it in items], dtype=np.int64)
        bad = ~ok[inv.ravel()] | (vals[inv.ravel()] != v0 + k[:, None] * step).any(axis=1)
        if bad.any():
            first_bad = min(first_bad, int(np.argmax(bad)))
    return first_bad


def _region(tape, prod, start, P, trips):
    got = _classify(tape, prod, start, P)
    if got is None:
        return None
    cls, inits, counters = got
    trips = _verify(tape, start, P, trips, cls)
    if counters:
        trips = _verify_counters(tape, start, P, trips, counters)
    if trips < MIN_TRIPS:
        return None
    used = _external_uses(tape, prod, start, start + P * trips, P)
    if isinstance(used, _ReadLater):
        return used
    keys = list(inits) + sorted(u for u in used if u not in inits)
    if not keys:        # nothing flows out (dead code, or guards only): leave it unrolled
        return None
    r = _Region()
    r.start, r.period, r.trips, r.cls = start, P, trips, cls
    r.keys = keys
    r.inits = inits
    r.counters = counters
    r.invariants = list(dict.fromkeys(c[1] for c in cls.values() if c[0] == INVARIANT))
    r.xs = sorted(k for k, c in cls.items() if c[0] == PER_ITERATION)
    return r


# ------------------------------------------------------------------ rewriting
def _xs_spec(tape, region, q, t):
    """How the per-iteration constant at (q, t) is stored: spec and stacked value."""
    P = region.period
    argp = np.frombuffer(tape.argp, dtype=np.int32)
    rows = argp[region.start + q + P * np.arange(region.trips)] + t
    slots = np.frombuffer(tape.args, dtype=np.int32)[rows]
    vals = tape.consts.scalars(slots)
    if vals is not None:
        values, is_int = vals
        if is_int.all() or not is_int.any():
            kind = int if is_int[0] else float
            v0 = values[0]
            step = values[1] - v0 if len(values) > 1 else 0.0
            # bit patterns, not ==: -0.0 == 0.0 but they are different constants
            if values.tobytes() == (v0 + step * np.arange(len(values))).tobytes():
                return ("affine", kind(v0), kind(step), kind), None
            return ("weak", kind), values.astype(np.int64) if kind is int else values
    vals = [tape.consts[int(x)] for x in slots]
    return ("array",), np.stack([np.asarray(v) for v in vals])


def _slot_type(tape, s):
    return tape.types[tape.stype[s]]


def _build_body(tape, r, xs_specs):
    P, start, last = r.period, r.start, r.start + (r.trips - 1) * r.period
    body = Tape(f"{tape.name}/loop", tape.level)
    where = {}
    for j, key in enumerate(r.keys):
        s_last = tape.out[last + key[0]] + key[1]
        init = r.inits.get(key)
        cls = tape.sclass[s_last] if init is None else max(tape.sclass[s_last],
                                                           tape.sclass[init])
        shape, dtype = _slot_type(tape, s_last)
        where[(CARRIED,) + key] = body.add_input(shape, dtype, cls == ACTIVE, f"carry{j}")
        body.sclass[where[(CARRIED,) + key]] = cls
    for j, s in enumerate(r.invariants):
        shape, dtype = _slot_type(tape, s)
        b = body.add_input(shape, dtype, tape.sclass[s] == ACTIVE, f"invariant{j}")
        body.sclass[b] = tape.sclass[s]
    inv_slot = dict(zip(r.invariants, body.inputs[len(r.keys):]))
    for (q, t), spec in zip(r.xs, xs_specs):
        a = tape.args[tape.argp[start + q] + t]
        shape, dtype = _slot_type(tape, a)
        if spec[0] == "affine" and spec[2] == 0:     # the same number every time
            where[(PER_ITERATION, q, t)] = body.add_const(spec[1], shape, dtype)
            continue
        # VARYING, not CONST: the value changes from one iteration to the next,
        # so rules must not bake it in
        where[(PER_ITERATION, q, t)] = body.add_input(shape, dtype, False, f"x{q}_{t}")
    # one int64 input per counting index item: x[i] becomes a gather at input i
    counter_in = {q: [body.add_input((), np.dtype(np.int64), False, f"i{q}_{p}")
                      for p, _, _ in _counting(items)]
                  for q, items in sorted(r.counters.items())}
    internal = {}
    for q in range(P):
        i0, il = start + q, last + q
        a_ = tape.args[tape.argp[il]:tape.argp[il + 1]]
        args = []
        for t in range(len(a_)):
            c = r.cls[q, t]
            if c[0] == INTERNAL:
                args.append(internal[c[1], c[2]])
            elif c[0] == CARRIED:
                args.append(where[c])
            elif c[0] == INVARIANT:
                args.append(inv_slot[c[1]])
            else:
                args.append(where[(PER_ITERATION, q, t)])
        params = tape.attrs[tape.attr[il]]
        opcode = tape.op[il]
        if counter_in.get(q):
            opcode, params = _counter_op(tape, il, params, _counting(r.counters[q]), args,
                                         counter_in[q])
        outs_last, outs0 = tape.outs(il), tape.outs(i0)
        if not outs_last:
            body.append(opcode, args, params, None, None, 0)
            body.guards.append(len(body) - 1)
            continue
        classes = [max(tape.sclass[a], tape.sclass[b]) for a, b in zip(outs_last, outs0)]
        if "nout" in params:
            new = body.append_multi(opcode, args,
                                    {k: v for k, v in params.items() if k != "nout"},
                                    [_slot_type(tape, o) for o in outs_last], classes)
        else:
            shape, dtype = _slot_type(tape, outs_last[0])
            new = [body.append(opcode, args, params, shape, dtype, classes[0])]
        for o, s in enumerate(new):
            internal[q, o] = s
    body.outputs = [internal[key] for key in r.keys]
    body.closed = True
    return body


def _counting(items):
    """The index items that change from one iteration to the next."""
    return [it for it in items if it[2] != 0]


def _counter_op(tape, i, params, items, args, inputs):
    """Instruction ``i`` with its counting index items read from ``inputs``.

    ``x[3]`` (getitem, a static index) becomes ``gather(x, i)`` with a 0-d
    int64 array ``i``: the same elements and shape as with the integer, but
    always a copy (advanced indexing), as ``gather`` promises.
    Writes (setitem, scatter_add) keep their op and gain index arguments.
    """
    name = tape.instr(i)[0].name
    n_arrays = sum(1 for it in params["index"] if it[0] == "a")
    index = list(params["index"])
    for j, (p, _, _) in enumerate(items):
        index[p] = ("a", n_arrays + j)
    args.extend(inputs)
    new = dict(params, index=tuple(index))
    return BY_NAME[_INDEXED[name]].code, new


def _fold_once(tape, interned):
    prod = tape.producers()
    regions = _find(tape, prod, _signatures(tape, interned))
    if not regions:
        return tape
    # constants are copied on first use, so those of folded iterations are dropped
    new, remap = Tape.with_inputs_of(tape)
    i = 0
    for r in regions:
        new.copy_range(tape, i, r.start, remap)
        _emit_scan(tape, new, r, remap, interned)
        i = r.end
    new.copy_range(tape, i, len(tape), remap)
    new.outputs = [new.map_slot(tape, s, remap) for s in tape.outputs]
    new.out_treedef = tape.out_treedef
    new.closed = True
    return new


def _emit_scan(tape, new, r, remap, interned):
    specs, stacked = [], []
    for q, t in r.xs:
        spec, arr = _xs_spec(tape, r, q, t)
        specs.append(spec)
        if arr is not None:
            stacked.append(arr)
    body = _build_body(tape, r, specs)
    fp = _fingerprint(body, interned)
    body = interned.setdefault(fp, body)
    interned[id(body)] = fp
    last = r.start + (r.trips - 1) * r.period
    args = []
    for key in r.keys:
        init = r.inits.get(key)
        if init is None:      # read only after the loop: a placeholder initial value
            shape, dtype = _slot_type(tape, tape.out[last + key[0]] + key[1])
            init_slot = new.add_const(np.zeros(shape, dtype), shape, dtype)
        else:
            init_slot = new.map_slot(tape, init, remap)
        args.append(init_slot)
    args += [new.map_slot(tape, s, remap) for s in r.invariants]
    for arr in stacked:
        args.append(new.add_const(arr, arr.shape, arr.dtype))
    specs = [sp for sp in specs if not (sp[0] == "affine" and sp[2] == 0)]
    specs += [("counter", v0, step) for q, items in sorted(r.counters.items())
              for _, v0, step in _counting(items)]
    types, classes = [], []
    for key in r.keys:
        s_last = tape.out[last + key[0]] + key[1]
        types.append(_slot_type(tape, s_last))
        classes.append(max(tape.sclass[s_last], body.sclass[body.inputs[r.keys.index(key)]]))
    params = {"body": body, "trips": r.trips, "n_carry": len(r.keys),
              "n_inv": len(r.invariants), "xs": tuple(specs), "n_ys": 0}
    outs = new.append_multi(SCAN.code, args, params, types, classes)
    for key, o in zip(r.keys, outs):
        remap[tape.out[last + key[0]] + key[1]] = o


def _fingerprint(body, interned):
    """Content key of a body tape, so identical loop bodies are one object."""
    consts = tuple((s, _const_key(v)) for s, v in sorted(body.consts.items()))
    attrs = tuple(_body_key(a, interned) if "body" in a else tuple(sorted(
        (k, v) for k, v in a.items())) for a in body.attrs)
    return (bytes(body.op), bytes(body.out), bytes(body.argp), bytes(body.args),
            bytes(body.attr), bytes(body.skind), bytes(body.sclass), bytes(body.stype),
            tuple(body.types), attrs, consts, tuple(body.inputs), tuple(body.outputs))


def _const_key(v):
    if isinstance(v, np.ndarray):
        return (v.shape, v.dtype.str, v.tobytes())
    return (type(v).__name__, repr(v))


__all__ = ["fold", "OPS"]
