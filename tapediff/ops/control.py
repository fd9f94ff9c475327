"""Loop blocks: the ``scan`` primitive.

A repeated block of a recorded Python loop is stored once, as a *body* tape,
with its trip count. ``scan`` runs it:

* arguments: initial *carried* values, loop *invariants*, and stacked
  per-iteration inputs *xs* (one row per iteration);
* body inputs: carried, invariants, then the row of each x for this iteration;
* body outputs: the new carried values, then per-iteration outputs *ys*;
* results: the final carried values, then the stacked ys.

Per-iteration inputs that form an arithmetic progression (the ``i`` of
``x ** i / i``) are stored as ``("affine", start, step, type)`` and take no
argument, loop-counted indices (``x[i]``) as ``("counter", start, step)``; stacked Python scalars (``("weak", type)``) are handed back as
Python numbers so that NumPy 2's promotion rules stay those of the recording.

The VJP of a scan splits the body's gradient tape in two: the forward loop
runs the forward part and also returns, per iteration, the intermediates the
reverse part reads (its residuals); a reversed scan runs the reverse part.
The JVP is one scan over the body's tangent tape. Both are built on the body
tapes, once.
"""
import numpy as np

from .registry import Aval, defop


def xs_at(xs, xarr, k):
    """The per-iteration inputs of iteration ``k``."""
    out = []
    j = 0
    for spec in xs:
        kind = spec[0]
        if kind == "affine":
            out.append(spec[3](spec[1] + k * spec[2]))
        elif kind == "counter":     # a loop-counted index: a 0-d array (NumPy copies)
            out.append(np.array(spec[1] + k * spec[2], dtype=np.int64))
        elif kind == "weak":
            out.append(spec[1](xarr[j][k]))
            j += 1
        else:
            out.append(xarr[j][k])
            j += 1
    return out


def _scan(*args, body, trips, n_carry, n_inv, xs, n_ys, reverse=False, guard_base=0):
    # imported here: the interpreter imports the registry that imports us
    from ..interpreter import loop_plan_of
    from ..tape import flat_guards
    from ..tracer import GuardFailed

    from ..codegen import native_loops
    if native_loops.enabled(trips, body):
        res = native_loops.run(args, dict(body=body, trips=trips, n_carry=n_carry, n_inv=n_inv,
                                          xs=xs, n_ys=n_ys, reverse=reverse))
        if res is not None:
            return res
    plan, owned = loop_plan_of(body, n_carry)
    # the loop owns these carried values from here on (see loop_plan_of)
    carry = [np.copy(c) if own and trips else c for c, own in zip(args[:n_carry], owned)]
    inv = args[n_carry:n_carry + n_inv]
    xarr = args[n_carry + n_inv:]
    try:
        final, ys = plan.run_loop(carry, inv, lambda k: xs_at(xs, xarr, k), trips, reverse)
    except GuardFailed as e:
        raise GuardFailed(guard_base + e.step * flat_guards(body) + e.ordinal,
                          e.observed) from None
    # a result must not share memory with an argument (it may be the argument, or
    # a view of it): the interpreter treats scan results as memory of their own
    final = [np.copy(v) if any(_overlaps(v, a) for a in args) else v for v in final]
    stacked = []
    for j in range(n_ys):
        if trips:
            stacked.append(np.stack(ys[j]))
        else:
            s = body.outputs[n_carry + j]
            stacked.append(np.zeros((0,) + body.shape(s), body.dtype(s)))
    return tuple(final) + tuple(stacked)


def _overlaps(v, a):
    if v is a:
        return True
    return (isinstance(v, np.ndarray) and isinstance(a, np.ndarray)
            and np.may_share_memory(v, a))


def _scan_shape(*avals, body, trips, n_carry, n_inv, xs, n_ys, reverse=False, guard_base=0):
    outs = [Aval(body.shape(s), body.dtype(s)) for s in body.inputs[:n_carry]]
    outs += [Aval((trips,) + body.shape(s), body.dtype(s))
             for s in body.outputs[n_carry:n_carry + n_ys]]
    return outs


def _scan_vjp(needs, gs, outs, *args, body, trips, n_carry, n_inv, xs, n_ys, reverse=False,
              guard_base=0, residuals=None):
    from ..passes.loop_ad import scan_vjp
    return scan_vjp(needs, gs, outs, args, body, trips, n_carry, n_inv, xs, n_ys, reverse,
                    residuals)


def _scan_jvp(tangents, outs, *args, body, trips, n_carry, n_inv, xs, n_ys, reverse=False,
              guard_base=0):
    from ..passes.loop_ad import scan_jvp
    return scan_jvp(tangents, outs, args, body, trips, n_carry, n_inv, xs, n_ys, reverse)


def _scan_residuals(params, args):
    from ..passes.loop_ad import save_params
    return None if params.get("reverse") else save_params(params, args)


SCAN = defop("scan", _scan, shape=_scan_shape, vjp=_scan_vjp, jvp=_scan_jvp)
SCAN.residuals = _scan_residuals
