"""Derivatives of ``scan`` (loop blocks), built on the body tapes once.

Reverse mode partially evaluates the body's gradient tape: its forward part
becomes the body of the forward loop, which also returns, per iteration, the
intermediates that the reverse part reads (the *residuals*, stacked over
iterations exactly as a flat tape would keep them); its reverse part becomes
the body of a reversed scan that carries the cotangents of the carried values
and accumulates those of the loop invariants. Nothing is recomputed. (Bounded
memory -- storing only some iterations and recomputing the rest -- is the
checkpointing issue's revolve schedule.)

Forward mode is one scan over the body's tangent tape, carrying the tangents
beside the values.
"""
import numpy as np

from ..errors import UnsupportedOperation
from ..ops.control import SCAN, xs_at
from ..tape import RESULT, Tape
from ..tracer import Tracked, current
from . import adjoint
from .dce import compact

def _value(x):
    return current(x)._v if type(x) is Tracked else x


def _body_inputs(args, n_carry, n_inv, xs):
    """The body's inputs on the loop's first iteration."""
    carry_inv = [_value(a) for a in args[:n_carry + n_inv]]
    xarr = [_value(a) for a in args[n_carry + n_inv:]]
    return carry_inv + xs_at(xs, xarr, 0)


def _zeros_of_slot(body, s, like, lead=()):
    """Zeros shaped like body slot ``s`` (with leading ``lead`` axes), recorded like ``like``."""
    return np.zeros(lead + body.shape(s), dtype=body.dtype(s), like=like)


def _cache(body):
    return body.__dict__.setdefault("_ad_cache", {})


class _Split:
    """The two halves of a body's gradient tape (see the module docstring)."""

    def __init__(self, forward, reverse, n_res, inv_idx):
        self.forward = forward      # body inputs -> body outputs + residuals
        self.reverse = reverse      # (ct_carry, acc | inv | residuals, x, ct_y) -> (ct_carry, acc)
        self.n_res = n_res
        self.inv_idx = inv_idx      # invariants whose cotangents are accumulated


def _split(body, inputs0, n_carry, n_inv, n_ys):
    key = ("split", n_carry, n_inv, n_ys)
    cache = _cache(body)
    if key in cache:
        return cache[key]
    carried = list(body.inputs[:n_carry])
    inv_idx = [j for j in range(n_inv) if body.active(body.inputs[n_carry + j])]
    invs = [body.inputs[n_carry + j] for j in inv_idx]
    seeds = [np.zeros(body.shape(s), body.dtype(s)) for s in body.outputs]
    # the invariants' cotangents are summed over iterations: each iteration adds
    # into the running total instead of building its own (x[i] reads stay O(1))
    G, _ = adjoint.reverse(body, inputs0, carried + invs, seeds=seeds, accumulate=invs)
    n_b, nb_out, nf, bound = len(body.inputs), len(body.outputs), G.n_forward, G.forward_slots
    b_in = G.inputs[:n_b]
    seed_in = G.inputs[n_b:n_b + nb_out]
    acc_in = G.inputs[n_b + nb_out:]
    inv_in = set(b_in[n_carry:n_carry + n_inv])
    x_in = set(b_in[n_carry + n_inv:])
    # forward values the reverse part reads: per-iteration ones become residuals
    read = {}
    for i in range(nf, len(G)):
        for a in G.args[G.argp[i]:G.argp[i + 1]]:
            if a < bound:
                read[a] = None
    for a in G.outputs[nb_out:]:
        if a < bound:
            read[a] = None
    res = [a for a in read if a not in inv_in and a not in x_in and a not in G.consts
           and (G.skind[a] == RESULT or a in b_in[:n_carry])]

    def typ(t, s):
        return t.shape(s), t.dtype(s)

    # forward half: the body's forward, also returning the residuals
    Fw = Tape(f"{body.name}/forward", body.level)
    fmap = {}
    for s, name in zip(b_in, body.input_names):
        fmap[s] = Fw.add_input(*typ(G, s), False, name)
        Fw.sclass[fmap[s]] = G.sclass[s]
    Fw.copy_range(G, 0, nf, fmap)
    Fw.outputs = [Fw.map_slot(G, s, fmap) for s in G.outputs[:nb_out] + res]
    Fw.closed = True
    # reverse half
    R = Tape(f"{body.name}/reverse", body.level)
    rmap = {}
    ct_c = [R.add_input(*typ(G, s), True, f"ct_carry{j}") for j, s in enumerate(seed_in[:n_carry])]
    acc = [R.add_input(*typ(body, s), True, f"acc{j}") for j, s in enumerate(invs)]
    rmap.update(zip(acc_in, acc))
    for j, s in enumerate(b_in[n_carry:n_carry + n_inv]):
        rmap[s] = R.add_input(*typ(G, s), G.active(s), f"invariant{j}")
    for j, s in enumerate(res):
        rmap[s] = R.add_input(*typ(G, s), G.active(s), f"residual{j}")
    for j, s in enumerate(b_in[n_carry + n_inv:]):
        rmap[s] = R.add_input(*typ(G, s), False, f"x{j}")
    ct_y = [R.add_input(*typ(G, s), True, f"ct_y{j}") for j, s in enumerate(seed_in[n_carry:])]
    rmap.update(zip(seed_in, ct_c + ct_y))
    R.copy_range(G, nf, len(G), rmap)
    grads = [R.map_slot(G, s, rmap) for s in G.outputs[nb_out:]]
    R.outputs = grads        # carried cotangents, then the updated running totals
    R.closed = True
    out = cache[key] = _Split(compact(Fw), compact(R), len(res), inv_idx)
    return out


def save_params(params, args):
    """``scan``'s residual facet: the forward loop also returns the residuals."""
    n_carry, n_inv, n_ys = params["n_carry"], params["n_inv"], params["n_ys"]
    sp = _split(params["body"], _body_inputs(args, n_carry, n_inv, params["xs"]),
                n_carry, n_inv, n_ys)
    return dict(params, body=sp.forward, n_ys=n_ys + sp.n_res)


def scan_vjp(needs, gs, outs, args, body, trips, n_carry, n_inv, xs, n_ys, reverse,
             residuals=None):
    if reverse:
        raise UnsupportedOperation("the reverse of a reversed loop (third-order "
                                   "derivatives through loop blocks) is not supported yet")
    carry0, inv, xarr = args[:n_carry], args[n_carry:n_carry + n_inv], args[n_carry + n_inv:]
    sp = _split(body, _body_inputs(args, n_carry, n_inv, xs), n_carry, n_inv, n_ys)
    if residuals is None:        # not kept by the forward pass: run the forward half
        residuals = SCAN.bind(*carry0, *inv, *xarr, body=sp.forward, trips=trips,
                              n_carry=n_carry, n_inv=n_inv, xs=xs,
                              n_ys=n_ys + sp.n_res)[n_carry + n_ys:]
    like = next(g for g in gs if g is not None)
    ct_c = [g if g is not None else _zeros_of_slot(body, body.inputs[j], like)
            for j, g in enumerate(gs[:n_carry])]
    acc0 = [_zeros_of_slot(body, body.inputs[n_carry + j], like) for j in sp.inv_idx]
    ct_y = [g if g is not None else _zeros_of_slot(body, body.outputs[n_carry + j], like, (trips,))
            for j, g in enumerate(gs[n_carry:])]
    rxs = (("array",),) * sp.n_res + tuple(xs) + (("array",),) * n_ys
    res = SCAN.bind(*ct_c, *acc0, *inv, *residuals, *xarr, *ct_y, body=sp.reverse,
                    trips=trips, n_carry=n_carry + len(sp.inv_idx), n_inv=n_inv, xs=rxs,
                    n_ys=0, reverse=True)
    cts = list(res[:n_carry]) + [None] * (n_inv + len(xarr))
    for k, j in enumerate(sp.inv_idx):
        if needs[n_carry + j]:
            cts[n_carry + j] = res[n_carry + k]
    return tuple(cts)


def _tangent_body(body, values, n_carry, n_inv, inv_idx):
    """Scan body carrying tangents: (carry, t_carry | inv, t_inv | x) ->
    (new carry, new t_carry, ys, t_ys)."""
    key = ("jvp", n_carry, n_inv, tuple(inv_idx))
    cache = _cache(body)
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
    J = _tangent_body(body, _body_values(body, args, n_carry, n_inv, xs), n_carry, n_inv,
                      inv_idx)
    tc = [t if t is not None else _zeros_of_slot(body, body.inputs[j], like)
          for j, t in enumerate(tangents[:n_carry])]
    ti = [tangents[n_carry + j] for j in inv_idx]
    res = SCAN.bind(*carry0, *tc, *inv, *ti, *xarr, body=J, trips=trips,
                    n_carry=2 * n_carry, n_inv=n_inv + len(inv_idx), xs=xs, n_ys=2 * n_ys)
    t_final = res[n_carry:2 * n_carry]
    t_ys = res[2 * n_carry + n_ys:]
    return tuple(t_final) + tuple(t_ys)


def _body_values(body, args, n_carry, n_inv, xs):
    """Every slot value of the body on the loop's first iteration."""
    from ..interpreter import Plan
    from ..tracer import no_gc
    with no_gc():
        return Plan(body, inplace=False, free=False).run(
            _body_inputs(args, n_carry, n_inv, xs), keep_all=True)
