"""Loop blocks (``scan``) in C: one native loop calling the lowered body.

The body tape is lowered once into a static C function with the same
calling convention as an entry point (its inputs and outputs are pointer
tables); the loop passes it the carried values, invariants and this
iteration's row of each per-iteration input, and the rows of the stacked
outputs. Carried values alternate between two workspace buffers, so a body
never reads memory it is writing (it may update its carried inputs in place:
they are the loop's own buffers). Source size and compile time do not depend
on the trip count, which is a run-time parameter.
"""
from types import SimpleNamespace

import numpy as np

from .kernels import kernel
from .lower import Lowering, Unsupported
from .values import ctype, np_dtype


def scan_operands(low, i, args, params):
    """The memory a lowered ``scan`` works in (the C and CUDA targets alike):
    the invariants and per-iteration arrays as contiguous views, two buffers
    per carried value (the first holding the initial value, copied in), and
    the stacked outputs ``ys``."""
    body = params["body"]
    nc, ninv, nys = params["n_carry"], params["n_inv"], params["n_ys"]
    outs = low.t.outs(i)
    init = [low.view_of(a) for a in args[:nc]]
    ops = SimpleNamespace(outs=outs, inv=[low.contiguous(a) for a in args[nc:nc + ninv]],
                          xarr=[low.contiguous(a) for a in args[nc + ninv:]],
                          shapes=[body.shape(s) for s in body.inputs[:nc]],
                          dts=[np_dtype(body.dtype(s)) for s in body.inputs[:nc]])
    ops.bufs_a = [low.new_buffer(None, sh, dt) for sh, dt in zip(ops.shapes, ops.dts)]
    ops.bufs_b = [low.new_buffer(None, sh, dt) for sh, dt in zip(ops.shapes, ops.dts)]
    for v, b in zip(init, ops.bufs_a):
        low.emit_copy(v, b)
    ops.ys = [low.new_buffer(outs[nc + m], low.t.shape(outs[nc + m]),
                             low.t.dtype(outs[nc + m])) for m in range(nys)]
    return ops


@kernel("scan")
def scan(low, i, out, args, params):
    body, trips = params["body"], params["trips"]
    nc, ninv, xs = params["n_carry"], params["n_inv"], params["xs"]
    reverse = params.get("reverse", False)
    low.n_regions += 1
    # the body may update its carried inputs in place: cur[q] is the loop's own
    # buffer, refilled with the body's outputs before it is read again
    sub = Lowering(body, f"{low.name}_b{low.n_regions}", low.tab, static=True,
                   owned=range(params["n_carry"]))
    low.helpers += sub.helpers + [sub.text]
    p = low.tab.p
    ops = scan_operands(low, i, args, params)
    outs, inv, xarr, shapes, dts = ops.outs, ops.inv, ops.xarr, ops.shapes, ops.dts
    bufs_a, bufs_b, ys = ops.bufs_a, ops.bufs_b, ops.ys
    n_args = len(body.inputs)
    L = [f"{{ /* scan: {sub.name}, {nc} carried */",
         f"    char *cur[{max(nc, 1)}], *nxt[{max(nc, 1)}];",
         f"    void *args[{max(n_args, 1)}], *rets[{max(len(body.outputs), 1)}];"]
    for j in range(nc):
        L.append(f"    cur[{j}] = (char *){low.ptr(bufs_a[j], const=False)}; "
                 f"nxt[{j}] = (char *){low.ptr(bufs_b[j], const=False)};")
    for m, v in enumerate(inv):
        L.append(f"    args[{nc + m}] = (void *){low.ptr(v)};")
    trips_param = p(trips)
    low.trip_params.append(int(trips_param[2:-1]))   # "P[k]" -> k: callers may change it
    L.append(f"    const int64_t trips = {trips_param};")
    L.append("    for (int64_t it = 0; it < trips; it++) {")
    L.append("        const int64_t k = " + ("trips - 1 - it;" if reverse else "it;"))
    j = 0
    for q, spec in enumerate(xs):
        slot = body.inputs[nc + ninv + q]
        ct = ctype(body.dtype(slot))
        pos = nc + ninv + q
        if spec[0] in ("affine", "counter"):
            dt = np_dtype(body.dtype(slot))
            start, step = low.tab.number(spec[1], dt), low.tab.number(spec[2], dt)
            L.append(f"        {ct} x{q} = {start} + ({ct})k * {step};")
            L.append(f"        args[{pos}] = &x{q};")
            continue
        v = xarr[j]
        j += 1
        if np_dtype(v.dtype) != np_dtype(body.dtype(slot)):
            raise Unsupported("scan", f"per-iteration input of dtype {v.dtype} read as "
                              f"{np_dtype(body.dtype(slot))}")
        row = int(np.prod(v.shape[1:], dtype=np.int64)) * v.dtype.itemsize
        L.append(f"        args[{pos}] = (void *)((const char *){low.ptr(v)} + k * {p(row)});")
    for q in range(nc):
        L.append(f"        args[{q}] = cur[{q}]; rets[{q}] = nxt[{q}];")
    for m, v in enumerate(ys):
        row = int(np.prod(v.shape[1:], dtype=np.int64)) * v.dtype.itemsize
        L.append(f"        rets[{nc + m}] = (void *)((char *){low.ptr(v, const=False)} "
                 f"+ k * {p(row)});")
    off, size = low.arena.alloc(max(sub.arena_bytes, 1))
    L.append(f"        {{ int st = {sub.name}(P, W + {p(off)}, K, args, rets); "
             "if (st) return st; }")
    if nc:
        L.append(f"        for (int q = 0; q < {nc}; q++) "
                 "{ char *t = cur[q]; cur[q] = nxt[q]; nxt[q] = t; }")
    L.append("    }")
    for q in range(nc):
        dst = low.new_buffer(outs[q], shapes[q], dts[q])
        nbytes = int(np.prod(shapes[q], dtype=np.int64)) * dts[q].itemsize
        L.append(f"    memcpy({low.ptr(dst, const=False)}, cur[{q}], {p(nbytes)});")
    L.append("}")
    low.lines += L
    low.arena.release(off, size)
