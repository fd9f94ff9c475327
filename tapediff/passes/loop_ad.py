"""Derivatives of ``scan`` (loop blocks), built on the body tapes once.

Reverse mode stores the carried values of every iteration (one re-run of the
loop with the states as extra per-iteration outputs), then runs a reversed
scan whose body recomputes one iteration from its stored state and reverses
it. This is checkpointing with a snapshot per iteration: memory is trips x
carried size, not trips x every intermediate. The checkpointing issue
replaces the snapshot-per-iteration schedule with revolve.

Forward mode is one scan over the body's tangent tape, carrying the tangents
beside the values.
"""
import numpy as np

from ..errors import UnsupportedOperation
from ..interpreter import Plan
from ..ops.control import SCAN, xs_at
from ..ops.registry import BY_NAME
from ..tape import ACTIVE, Tape
from ..tracer import Tracked, current, no_gc
from . import adjoint
from .dce import compact

ADD = BY_NAME["add"]


def _value(x):
    return current(x)._v if type(x) is Tracked else x


def _body_inputs(args, n_carry, n_inv, xs):
    """The body's inputs on the loop's first iteration."""
    carry_inv = [_value(a) for a in args[:n_carry + n_inv]]
    xarr = [_value(a) for a in args[n_carry + n_inv:]]
    return carry_inv + xs_at(xs, xarr, 0)


def _body_values(body, args, n_carry, n_inv, xs):
    """Every slot value of the body on the loop's first iteration."""
    with no_gc():
        return Plan(body, inplace=False, free=False).run(
            _body_inputs(args, n_carry, n_inv, xs), keep_all=True)


def save_params(params):
    """``scan``'s residual facet: the same loop, also returning its states."""
    return dict(params, body=_save_body(params["body"], params["n_carry"]),
                n_ys=params["n_ys"] + params["n_carry"])


def _zeros_like_slot(body, s, like):
    return np.zeros(body.shape(s), dtype=body.dtype(s), like=like)


def _save_body(body, n_carry):
    """The body with its carried inputs as extra per-iteration outputs."""
    key = ("save", n_carry)
    cache = body.__dict__.setdefault("_ad_cache", {})
    if key not in cache:
        b = body.copy()
        b.outputs = list(body.outputs) + list(body.inputs[:n_carry])
        b._plan = None
        cache[key] = b
    return cache[key]


def _reverse_body(body, inputs, n_carry, n_inv, n_x, n_ys, inv_idx):
    """Scan body for the reversed loop.

    inputs:  ct_carry (n_carry), acc (len(inv_idx)) | invariants (n_inv) |
             state (n_carry), x (n_x), ct_y (n_ys)
    outputs: ct of the carried inputs, acc + ct of the active invariants
    """
    key = ("rev", n_carry, n_inv, n_x, n_ys, tuple(inv_idx))
    cache = body.__dict__.setdefault("_ad_cache", {})
    if key in cache:
        return cache[key]
    carried = list(body.inputs[:n_carry])
    invs = [body.inputs[n_carry + j] for j in inv_idx]
    seeds = [np.zeros(body.shape(s), body.dtype(s)) for s in body.outputs]
    G, _ = adjoint.reverse(body, inputs, carried + invs, seeds=seeds)
    R = Tape(f"{body.name}/reverse", body.level)
    t = lambda s: (body.shape(s), body.dtype(s))  # noqa: E731
    ct_c = [R.add_input(*t(s), True, f"ct_carry{j}") for j, s in enumerate(carried)]
    acc = [R.add_input(*t(s), True, f"acc{j}") for j, s in enumerate(invs)]
    inv = [R.add_input(*t(body.inputs[n_carry + j]), body.active(body.inputs[n_carry + j]),
                       f"invariant{j}") for j in range(n_inv)]
    state = [R.add_input(*t(s), body.active(s), f"state{j}") for j, s in enumerate(carried)]
    xsl = [R.add_input(*t(s), False, f"x{j}") for j, s in
           enumerate(body.inputs[n_carry + n_inv:])]
    ct_y = [R.add_input(*t(s), True, f"ct_y{j}") for j, s in
            enumerate(body.outputs[n_carry:])]
    outs = R.inline(G, state + inv + xsl + ct_c + ct_y)
    grads = outs[len(body.outputs):]
    new_acc = []
    for a, g in zip(acc, grads[n_carry:]):
        shape, dtype = t(a)
        new_acc.append(R.append(ADD.code, [a, g], {}, shape, dtype, ACTIVE))
    R.outputs = grads[:n_carry] + new_acc
    R.closed = True
    R = compact(R)
    cache[key] = R
    return R


def scan_vjp(needs, gs, outs, args, body, trips, n_carry, n_inv, xs, n_ys, reverse,
             residuals=None):
    if reverse:
        raise UnsupportedOperation("the reverse of a reversed loop (third-order "
                                   "derivatives through loop blocks) is not supported yet")
    n_x = len(body.inputs) - n_carry - n_inv
    carry0, inv, xarr = args[:n_carry], args[n_carry:n_carry + n_inv], args[n_carry + n_inv:]
    inv_idx = [j for j in range(n_inv) if needs[n_carry + j]]
    R = _reverse_body(body, _body_inputs(args, n_carry, n_inv, xs), n_carry, n_inv, n_x, n_ys,
                      inv_idx)
    like = next(g for g in gs if g is not None)
    # 1. the carried values of every iteration: saved by the forward loop when
    #    the reverse pass asked for residuals, else recomputed here
    if residuals is not None:
        states = residuals
    else:
        saved = SCAN.bind(*carry0, *inv, *xarr, body=_save_body(body, n_carry), trips=trips,
                          n_carry=n_carry, n_inv=n_inv, xs=xs, n_ys=n_ys + n_carry)
        states = saved[n_carry + n_ys:]
    # 2. the reversed loop
    ct_c = [g if g is not None else _zeros_like_slot(body, body.inputs[j], like)
            for j, g in enumerate(gs[:n_carry])]
    acc0 = [_zeros_like_slot(body, body.inputs[n_carry + j], like) for j in inv_idx]
    ct_y = [g if g is not None else
            np.zeros((trips,) + body.shape(body.outputs[n_carry + j]),
                     dtype=body.dtype(body.outputs[n_carry + j]), like=like)
            for j, g in enumerate(gs[n_carry:])]
    rxs = (("array",),) * n_carry + tuple(xs) + (("array",),) * n_ys
    res = SCAN.bind(*ct_c, *acc0, *inv, *states, *xarr, *ct_y, body=R, trips=trips,
                    n_carry=n_carry + len(inv_idx), n_inv=n_inv, xs=rxs, n_ys=0,
                    reverse=True)
    cts = list(res[:n_carry]) + [None] * n_inv + [None] * len(xarr)
    for k, j in enumerate(inv_idx):
        cts[n_carry + j] = res[n_carry + k]
    return tuple(cts)


def _tangent_body(body, values, n_carry, n_inv, inv_idx):
    """Scan body carrying tangents: (carry, t_carry | inv, t_inv | x) ->
    (new carry, new t_carry, ys, t_ys)."""
    key = ("jvp", n_carry, n_inv, tuple(inv_idx))
    cache = body.__dict__.setdefault("_ad_cache", {})
    if key in cache:
        return cache[key]
    carried = list(body.inputs[:n_carry])
    invs = [body.inputs[n_carry + j] for j in inv_idx]
    tmap = {s: np.zeros(body.shape(s), body.dtype(s)) for s in carried + invs
            if body.active(s)}
    T, _ = adjoint.forward(body, values, tmap)
    t = lambda s: (body.shape(s), body.dtype(s))  # noqa: E731
    J = Tape(f"{body.name}/tangent", body.level)
    c = [J.add_input(*t(s), body.active(s), f"carry{j}") for j, s in enumerate(carried)]
    tc = [J.add_input(*t(s), True, f"t_carry{j}") for j, s in enumerate(carried)]
    inv = [J.add_input(*t(body.inputs[n_carry + j]), body.active(body.inputs[n_carry + j]),
                       f"invariant{j}") for j in range(n_inv)]
    ti = [J.add_input(*t(s), True, f"t_invariant{j}") for j, s in enumerate(invs)]
    xsl = [J.add_input(*t(s), False, f"x{j}") for j, s in
           enumerate(body.inputs[n_carry + n_inv:])]
    tan_in = {s: slot for s, slot in zip(carried + invs, tc + ti)}
    outs = J.inline(T, c + inv + xsl + [tan_in[s] for s in tmap])
    nb = len(body.outputs)
    prim, tang = outs[:nb], outs[nb:]
    J.outputs = prim[:n_carry] + tang[:n_carry] + prim[n_carry:] + tang[n_carry:]
    J.closed = True
    J = compact(J)
    cache[key] = J
    return J


def scan_jvp(tangents, outs, args, body, trips, n_carry, n_inv, xs, n_ys, reverse):
    if reverse:
        raise UnsupportedOperation("forward mode through a reversed loop is not supported yet")
    carry0, inv, xarr = args[:n_carry], args[n_carry:n_carry + n_inv], args[n_carry + n_inv:]
    inv_idx = [j for j in range(n_inv) if tangents[n_carry + j] is not None]
    like = next(t for t in tangents if t is not None)
    values = _body_values(body, args, n_carry, n_inv, xs)
    J = _tangent_body(body, values, n_carry, n_inv, inv_idx)
    tc = [t if t is not None else _zeros_like_slot(body, body.inputs[j], like)
          for j, t in enumerate(tangents[:n_carry])]
    ti = [tangents[n_carry + j] for j in inv_idx]
    res = SCAN.bind(*carry0, *tc, *inv, *ti, *xarr, body=J, trips=trips,
                    n_carry=2 * n_carry, n_inv=n_inv + len(inv_idx), xs=xs, n_ys=2 * n_ys)
    t_final = res[n_carry:2 * n_carry]
    t_ys = res[2 * n_carry + n_ys:]
    return tuple(t_final) + tuple(t_ys)


__all__ = ["scan_vjp", "scan_jvp", "ACTIVE"]
