"""Reverse (VJP) and forward (JVP) sweeps, built by tracing the op rules.

The rules are written with ``np.*`` calls; applied to tracked handles of the
forward slots they record the sweep as more instructions of a copy of the
forward tape. The result is one tape computing values and derivatives, which
the interpreter replays and later backends compile. Building it on concrete
forward values also yields the derivatives of that first call.
"""
import numpy as np

from ..ops.indexing import FULL, GUARD_OUTCOME
from ..ops.registry import LazyCotangent
from ..tape import ACTIVE
from ..tape import Tape, flat_guards
from ..tracer import GuardFailed, Tracked, current, record, recording


class _Handles:
    """Tracked handles on tape ``tape`` for slots whose values are known."""

    def __init__(self, tape, values):
        self.tape = tape
        self.values = values
        self.cache = {}

    def __call__(self, s):
        h = self.cache.get(s)
        if h is None:
            h = self.cache[s] = Tracked(self.values[s], s, self.tape, self.tape.sclass[s])
        return h


def _slot_of(tape, v):
    """Slot of a rule's result: tracked on ``tape``, else a new constant."""
    if type(v) is Tracked and v._t is tape:
        return current(v)._s
    dtype = v.dtype if hasattr(v, "dtype") else np.asarray(v).dtype
    return tape.add_const(v, np.shape(v), dtype)


def _fit(c, tape, s, opname):
    """Cast a cotangent to its slot's dtype (gradients keep the input's dtype).

    ``tape``/``s`` name the primal slot in the forward tape."""
    dt = tape.dtype(s)
    if c.dtype != dt:
        c = c.astype(dt)
    if tuple(c.shape) != tape.shape(s):
        raise AssertionError(f"internal error: the reverse sweep of {opname} produced a "
                             f"cotangent of shape {tuple(c.shape)} for a value of shape "
                             f"{tape.shape(s)}; please report it with the program")
    return c


def _accumulate(prev, c, F, s, opname):
    """Add cotangent ``c`` (possibly lazy) for slot ``s`` to ``prev``."""
    if isinstance(c, LazyCotangent):
        c = _fit(c, F, s, opname)
        return c.materialize() if prev is None else c.accumulate(prev)
    c = _fit(c if type(c) is Tracked else np.asarray(c), F, s, opname)
    return c if prev is None else prev + c


def _zeros(G, F, s):
    """A zero gradient for slot ``s`` of ``F``, recorded on ``G``."""
    return record(G, FULL, (), {"shape": F.shape(s), "dtype": np.dtype(F.dtype(s)).str,
                                "fill": 0})


def _replay_forward(F, G, inputs):
    """Record F's forward onto the empty tape G on concrete ``inputs``.

    Returns ``(handles, residuals)``: a slot -> tracked-handle map for F's
    slots, and per instruction the residual handles of ops that save them.
    Recording (rather than copying F) computes the values the rules need and
    lets ops such as ``scan`` keep what their VJP would otherwise recompute.
    """
    h = {}
    for s, v, name in zip(F.inputs, inputs, F.input_names):
        slot = G.add_input(F.shape(s), F.dtype(s), False, name)
        G.sclass[slot] = F.sclass[s]
        h[s] = Tracked(v, slot, G, F.sclass[s])

    def get(s):
        t = h.get(s)
        if t is None:
            v = F.consts[s]
            t = h[s] = Tracked(v, G.add_const(v, F.shape(s), F.dtype(s), F.sites.get(s)),
                               G, 0)
        return t
    residuals = {}
    n_guards = 0               # guards run so far, loops unrolled (GuardFailed numbering)
    for i in range(len(F)):
        op, out, args, params = F.instr(i)
        a = [get(x) for x in args]
        if out < 0:            # a guard: check it on these inputs, as a replay would
            if not op.forward(*[current(x)._v for x in a], **params):
                raise GuardFailed(n_guards, GUARD_OUTCOME[op.name](current(a[0])._v))
            n_guards += 1
            G.append(op.code, [x._s for x in a], params, None, None, 0)
            G.guards.append(len(G) - 1)
            continue
        outs = F.outs(i)
        multi = "nout" in params
        if multi:
            params = {k: v for k, v in params.items() if k != "nout"}
        rparams = op.residuals(params, a) if op.residuals is not None else None
        try:
            if rparams is not None and any(F.sclass[o] == ACTIVE for o in outs):
                res = record(G, op, a, rparams)
                residuals[i] = res[len(outs):]
                res = res[:len(outs)]
            else:
                res = record(G, op, a, params)
                if not multi:
                    res = (res,)
        except GuardFailed as e:          # inside a loop body: number it globally
            raise GuardFailed(n_guards + e.ordinal, e.observed) from None
        if "body" in params:
            n_guards += params["trips"] * flat_guards(params["body"])
        for o, t in zip(outs, res):
            h[o] = t
    return h, residuals, get


def reverse(F, inputs, wrt, seeds=None, accumulate=()):
    """Record ``F``'s forward and its reverse sweep on a new tape.

    Parameters
    ----------
    F : Tape
        Forward tape.
    inputs : list
        Concrete values of ``F.inputs``; the rules are traced on them.
    wrt : list of int
        Input slots of ``F`` whose gradients are wanted.
    seeds : list of array or None
        Cotangents of ``F.outputs``. ``None`` seeds the single scalar output
        with 1; otherwise each seed becomes a new input of the returned tape.
    accumulate : list of int
        Slots of ``wrt`` whose gradient starts from a running total, a new
        input (after the seeds) per slot, instead of zero: cotangents are
        added into it (in place where possible), as a loop's reverse body does
        for its invariants.

    Returns
    -------
    (G, results) : the tape with outputs ``F.outputs + gradients`` (inputs:
    F's, then the seeds) and the values of those outputs for this call.
    """
    G = Tape(F.name, F.level)
    with recording(G):
        h, residuals, get = _replay_forward(F, G, inputs)
        G.n_forward = len(G)          # instructions and slots of the forward part
        G.forward_slots = G.n_slots   # (loop_ad splits a body's gradient tape here)
        ct = {}
        if seeds is None:
            s = F.outputs[0]
            ct[s] = record(G, FULL, (), {"shape": F.shape(s), "dtype": np.dtype(F.dtype(s)).str,
                                         "fill": 1})
        else:
            for s, seed in zip(F.outputs, seeds):
                slot = G.add_input(np.shape(seed), np.asarray(seed).dtype, False, "cotangent")
                if F.sclass[s] == ACTIVE:
                    t = Tracked(seed, slot, G, 1)
                    ct[s] = t if s not in ct else ct[s] + t
        for s in accumulate:
            total = np.zeros(F.shape(s), F.dtype(s))
            slot = G.add_input(F.shape(s), F.dtype(s), True, "running total")
            ct[s] = Tracked(total, slot, G, ACTIVE)
        for i in range(len(F) - 1, -1, -1):
            out = F.out[i]
            if out < 0:
                continue
            op, _, args, params = F.instr(i)
            if "nout" in params:          # several outputs: a tuple of cotangents
                outs = F.outs(i)
                g = tuple(ct.pop(o, None) if F.sclass[o] == ACTIVE else None for o in outs)
                if all(x is None for x in g):
                    continue
                params = {k: v for k, v in params.items() if k != "nout"}
                out_h = tuple(h[o] for o in outs)
            else:
                g = ct.pop(out, None)
                if g is None or F.sclass[out] != ACTIVE:
                    continue
                out_h = h[out]
            needs = tuple(F.sclass[a] == ACTIVE and k not in op.nondiff
                          for k, a in enumerate(args))
            if not any(needs):
                continue
            if i in residuals:
                params = dict(params, residuals=residuals[i])
            cts = op.vjp(needs, g, out_h, *[h[a] for a in args], **params)
            for a, need, c in zip(args, needs, cts):
                if need and c is not None:
                    ct[a] = _accumulate(ct.get(a), c, F, a, op.name)
        grads = [ct.get(s) for s in wrt]
        grads = [_zeros(G, F, s) if g is None else g for s, g in zip(wrt, grads)]
        gslots = [_slot_of(G, g) for g in grads]
        outs = [current(get(s)) for s in F.outputs]    # an output may be a constant
        G.outputs = [o._s for o in outs] + gslots
    results = [o._v for o in outs] + [current(g)._v if type(g) is Tracked else g
                                      for g in grads]
    return G, results


def forward(F, values, tangents):
    """Append tangent propagation to a copy of ``F``.

    ``tangents`` maps active input slots to tangent values; each becomes a new
    input. Returns ``(T, results)`` with outputs ``F.outputs + output tangents``.
    """
    T = F.copy()
    with recording(T):
        h = _Handles(T, values)
        tan = {}
        for s, t in tangents.items():
            slot = T.add_input(np.shape(t), np.asarray(t).dtype, False, "tangent")
            tan[s] = Tracked(t, slot, T, 1)
        for i in range(len(F)):
            outs = F.outs(i)
            if not outs or all(F.sclass[o] != ACTIVE for o in outs):
                continue
            op, _, args, params = F.instr(i)
            ts = [None if k in op.nondiff else tan.get(a) for k, a in enumerate(args)]
            if all(t is None for t in ts):
                continue
            if "nout" in params:
                params = {k: v for k, v in params.items() if k != "nout"}
                res = op.jvp(ts, tuple(h(o) for o in outs), *[h(a) for a in args], **params)
            else:
                res = (op.jvp(ts, h(outs[0]), *[h(a) for a in args], **params),)
            for o, t in zip(outs, res):
                if t is not None and F.sclass[o] == ACTIVE:
                    tan[o] = _fit(t if type(t) is Tracked else np.asarray(t), T, o, op.name)
        outs = [tan.get(s) for s in F.outputs]
        outs = [_zeros(T, F, s) if t is None else t for s, t in zip(F.outputs, outs)]
        tslots = [_slot_of(T, t) for t in outs]
    T.outputs = list(F.outputs) + tslots
    results = [values[s] for s in F.outputs] + [current(t)._v if type(t) is Tracked else t
                                                for t in outs]
    return T, results
