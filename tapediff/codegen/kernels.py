"""Kernels that are not fused elementwise loops: matmul (BLAS), reductions,
guards and concatenation. Each registers itself in :data:`lower.KERNELS`."""
import functools

import numpy as np

from ..ops.linalg import _fresh_letters
from ..ops.registry import OPS, Aval
from .lower import KERNELS, Region, Unsupported, cast, loop_nest, offset, register_in
from .values import Lit, View, basic_index, c_contiguous_strides, ctype, kind, np_dtype

kernel = functools.partial(register_in, KERNELS)


# ---------------------------------------------------------------- reductions
@kernel("sum", "prod", "max", "min", "all", "any")
def reduce(low, i, out, args, params):
    """A reduction over ``axis`` as one loop over the argument (a region with a
    load and an accumulator): no transposes, any axes."""
    name = OPS[low.t.op[i]].name
    x = low.view_of(args[0])
    axes = tuple(params["axis"])
    view = low.new_buffer(out, low.t.shape(out), low.t.dtype(out))
    low.n_regions += 1
    R = Region(x.shape, low.n_regions)
    expr = R.load(x)
    if name in ("all", "any"):
        expr = f"({expr} != 0)"
    else:
        expr = cast(expr, x.dtype, view.dtype)
    low.add_reduction(R, name, expr, view, axes)
    low.render_region(R)


# ---------------------------------------------------------------- einsum
@kernel("einsum")
def einsum(low, i, out, args, params):
    """``np.einsum``, one pairwise contraction of the recorded path at a time
    (NumPy's greedy order; one step for one or two operands): a matrix
    product goes to the target's ``gemm`` (:func:`_contract_gemm`), anything
    else is one region over the labels of its operands that multiplies
    their elements and sums over the labels no later step needs. A repeated
    label reads a diagonal (the axes' strides add) and a size-1 axis
    broadcasts (stride 0)."""
    from ..ops.linalg import label_sizes, split_subscripts
    ins, res = split_subscripts(params["subscripts"])
    dt = np_dtype(low.t.dtype(out))
    if kind(dt) not in "fi":
        raise Unsupported("einsum", f"dtype {dt}")
    sizes = label_sizes(ins, [low.t.shape(a) for a in args])
    terms = [(sub, low.operand(a)) for sub, a in zip(ins, args)]
    path = params.get("path")
    steps = [tuple(c) for c in path[1:]] if path else [tuple(range(len(terms)))]
    for n, pick in enumerate(steps):
        chosen = [terms[k] for k in pick]
        terms = [t for k, t in enumerate(terms) if k not in pick]
        last = n == len(steps) - 1
        if last:
            keep = res
        else:   # the labels a later step or the result still needs
            later = set(res).union(*(set(sub) for sub, _ in terms))
            keep = "".join(c for c in dict.fromkeys("".join(sub for sub, _ in chosen))
                           if c in later)
        summed = "".join(c for c in dict.fromkeys("".join(sub for sub, _ in chosen))
                         if c not in keep)
        shape = tuple(sizes[c] for c in keep)
        dst = low.new_buffer(out if last else None, shape, dt)
        if not _contract_gemm(low, chosen, keep, summed, sizes, dst):
            _contract(low, chosen, _label_order(chosen, keep, summed, dst), sizes, summed, dst)
        terms.append((keep, dst))
    if len(terms) != 1:
        raise AssertionError(f"einsum path {path} left {len(terms)} operands")


@kernel("vecdot")
def vecdot(low, i, out, args, params):
    """``np.vecdot`` (real operands): einsum over the last axis, batch axes
    broadcast (``'...z,...z->...'`` with explicit labels)."""
    ra, rb = (len(low.t.shape(a)) - 1 for a in args)
    batch = "".join(_fresh_letters("z", len(low.t.shape(out))))
    subs = f"{batch[len(batch) - ra:]}z,{batch[len(batch) - rb:]}z->{batch}"
    einsum(low, i, out, args, {"subscripts": subs})


def matmul_by_loops(low, i, out, args):
    """``a @ b`` as an einsum contraction (one fused loop): integer operands,
    which BLAS has no routine for. 1-d operands are a row or a column."""
    ra, rb = (len(low.t.shape(a)) for a in args)
    nb = len(low.t.shape(out)) - (ra > 1) - (rb > 1)
    batch = "".join(_fresh_letters("mnz", nb))
    sa = batch[nb - max(ra - 2, 0):] + ("m" if ra > 1 else "") + "z"
    sb = batch[nb - max(rb - 2, 0):] + "z" + ("n" if rb > 1 else "")
    res = batch + ("m" if ra > 1 else "") + ("n" if rb > 1 else "")
    einsum(low, i, out, args, {"subscripts": f"{sa},{sb}->{res}"})


def _contract_gemm(low, terms, keep, summed, sizes, dst):
    """A two-operand contraction that is a (batched) matrix product, through
    the target's ``gemm`` (BLAS; cuBLAS on CUDA): one summed label of size 8
    or more, one free label in one or both operands, the batch labels first in ``dst``, floats
    of ``dst``'s dtype, no repeated or broadcast labels. Returns whether it
    did."""
    if len(terms) != 2 or len(summed) != 1 or kind(dst.dtype) != "f":
        return False
    (sa, a), (sb, b) = terms
    if (isinstance(a, Lit) or isinstance(b, Lit) or a.dtype != dst.dtype
            or b.dtype != dst.dtype or len(set(sa)) < len(sa) or len(set(sb)) < len(sb)
            or any(n != sizes[c] for sub, v in terms for c, n in zip(sub, v.shape))):
        return False
    k = summed
    if k not in sa or k not in sb or sizes[k] < 8:
        return False        # (a short sum: the fused loop beats a dgemm call)
    batch = [c for c in keep if c in sa and c in sb]
    m = [c for c in keep if c in sa and c not in sb]
    n = [c for c in keep if c in sb and c not in sa]
    if len(m) > 1 or len(n) > 1 or list(keep) != batch + m + n or not (m or n):
        return False        # (batched dot products: one dgemm per dot loses to a loop)

    def view(sub, v, rows, cols):
        st = dict(zip(sub, v.strides))
        labels = batch + [rows, cols]
        return View(v.buf, v.offset, [sizes.get(c, 1) for c in labels],
                    [st.get(c, 0) for c in labels], v.dtype)
    A = view(sa, a, m[0] if m else None, k)
    B = view(sb, b, k, n[0] if n else None)
    shape = A.shape[:-1] + B.shape[-1:]
    C = View(dst.buf, dst.offset, shape, c_contiguous_strides(shape), dst.dtype)
    return low.kernels["gemm"](low, A, B, C)


def _label_order(terms, keep, summed, dst):
    """The region's axes: ``dst``'s labels in its order (its layout), the summed
    ones innermost, or just before the last kept label when more operands
    run contiguously along that one (``'ij,jk->ik'`` loops i, j, k, so the
    innermost loop streams rows of the second factor and of the result)."""
    if not summed or not keep:
        return keep + summed

    def unit(c):
        n = sum(1 for sub, v in terms if not isinstance(v, Lit)
                for lab, st in zip(sub, v.strides) if lab == c and st == 1)
        return n + (c == keep[-1] and dst.strides[-1] == 1)
    if unit(keep[-1]) > unit(summed[-1]):
        return keep[:-1] + summed + keep[-1]
    return keep + summed


def _contract(low, terms, labels, sizes, summed, dst):
    """Region over ``labels`` (``dst``'s labels in order, and ``summed``): the
    product of the ``terms`` (``(subscript, value)``), summed over ``summed``."""
    low.n_regions += 1
    R = Region(tuple(sizes[c] for c in labels), low.n_regions)
    factors = []
    for sub, v in terms:
        if isinstance(v, Lit):
            factors.append(R.constant(low.tab.number(v.value, dst.dtype), dst.dtype))
            continue
        strides = [0] * len(labels)
        for c, n, st in zip(sub, v.shape, v.strides):
            if n != 1:                  # size 1 broadcasts over the label's size
                strides[labels.index(c)] += st
        view = View(v.buf, v.offset, R.shape, strides, v.dtype)
        factors.append(cast(R.load(view), v.dtype, dst.dtype))
    expr = " * ".join(f"({f})" for f in factors)
    if not summed:
        R.stores.append((expr, View(dst.buf, dst.offset, R.shape, dst.strides, dst.dtype), False))
    else:
        low.add_reduction(R, "sum", expr, dst, tuple(labels.index(c) for c in summed))
    low.render_region(R)


# ---------------------------------------------------------------- diagonal_embed
@kernel("diagonal_embed")
def diagonal_embed(low, i, out, args, params):
    """``v`` written on a diagonal of zeros (``np.diag(v)``, ``np.diagflat``,
    the cotangent of ``np.diagonal``/``np.trace``): two loops, one filling the
    result with zeros, one storing ``v`` through a view whose last axis steps
    along the diagonal (the two axes' strides added)."""
    shape, off = tuple(params["shape"]), params["offset"]
    nd = len(shape)
    a1, a2 = params["axis1"] % nd, params["axis2"] % nd
    dt = np_dtype(low.t.dtype(out))
    v = low.operand(args[0])
    dst = low.new_buffer(out, shape, dt)
    low.emit_copy(Lit(0, dt, ()), dst)
    rest = [d for d in range(nd) if d not in (a1, a2)]
    n = max(0, min(shape[a1] + min(off, 0), shape[a2] - max(off, 0)))
    start = dst.offset + (off * dst.strides[a2] if off >= 0 else -off * dst.strides[a1])
    diag = View(dst.buf, start, [shape[d] for d in rest] + [n],
                [dst.strides[d] for d in rest] + [dst.strides[a1] + dst.strides[a2]], dt)
    if n and all(shape[d] for d in rest):
        low.emit_copy(v, diag)


# ---------------------------------------------------------------- matmul
def _blas_operand(v):
    """``(trans, ld)`` when the last two axes of ``v`` are a BLAS matrix
    (row-major, or its transpose), else None."""
    r, c = v.shape[-2:]
    s0, s1 = v.strides[-2:]
    if (c == 1 or s1 == 1) and (r == 1 or s0 >= max(1, c)):
        return 0, (s0 if r > 1 else max(1, c))
    if (r == 1 or s0 == 1) and (c == 1 or s1 >= max(1, r)):
        return 1, (s1 if c > 1 else max(1, r))
    return None


def _as_matrix(low, s, v, vector_as):
    """View ``v`` (slot ``s``) with at least two axes, as a BLAS operand."""
    if len(v.shape) == 1:
        v = (View(v.buf, v.offset, (1, v.shape[0]), (0, v.strides[0]), v.dtype) if vector_as == "row"
             else View(v.buf, v.offset, (v.shape[0], 1), (v.strides[0], 0), v.dtype))
    tl = _blas_operand(v)
    if tl is None:
        v = low.contiguous(s)
        return _as_matrix(low, s, v, vector_as) if len(v.shape) == 1 else (v, _blas_operand(v))
    return v, tl


@kernel("matmul")
def matmul(low, i, out, args, params):
    """``a @ b`` through dgemm/sgemm (float operands) with transpose flags, one
    call per batch entry; 1-d operands are rows/columns, never copied."""
    a, b = args
    dt = np_dtype(low.t.dtype(out))
    if kind(dt) == "i":
        return matmul_by_loops(low, i, out, args)
    if kind(dt) != "f":
        raise Unsupported("matmul", f"dtype {dt} (BLAS handles float32/float64)")
    A, B = low.view_of(a), low.view_of(b)
    if A.dtype != dt:
        A = _cast_copy(low, A, dt)
    if B.dtype != dt:
        B = _cast_copy(low, B, dt)
    A, (ta, lda) = _as_matrix(low, a, A, "row")
    B, (tb, ldb) = _as_matrix(low, b, B, "col")
    C = low.new_buffer(out, low.t.shape(out), dt)
    _gemm_lines(low, A, B, C, ta, lda, tb, ldb)


@kernel("gemm")
def gemm(low, A, B, C):
    """Not an op: ``C = A @ B`` for views (batch..., m, k) and (batch..., k, n)
    and a C-contiguous (batch..., m, n), used by einsum's contractions (the
    CUDA target's entry is a cuBLAS host step). Returns False, emitting
    nothing, when an operand is not a BLAS matrix as it is."""
    ta, tb = _blas_operand(A), _blas_operand(B)
    if ta is None or tb is None:
        return False
    _gemm_lines(low, A, B, C, *ta, *tb)
    return True


def _gemm_lines(low, A, B, C, ta, lda, tb, ldb):
    """The dgemm/sgemm calls of ``C = A @ B``, one per batch entry."""
    dt = C.dtype
    m, k = A.shape[-2:]
    n = B.shape[-1]
    batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    p = low.tab.p
    gemm = "td_dgemm" if dt == np.float64 else "td_sgemm"
    zero = "0.0" if dt == np.float64 else "0.0f"
    ct = ctype(dt)
    L = [f"{{ /* matmul {len(A.shape)}-d @ {len(B.shape)}-d */",
         f"    const {ct} *pa = {low.ptr(A)};", f"    const {ct} *pb = {low.ptr(B)};",
         f"    {ct} *pc = {low.ptr(C, const=False)};"]
    terms = {"a": [], "b": [], "c": []}
    ind = "    "
    for d, nb in enumerate(batch):
        L.append(f"{ind}for (int64_t b{d} = 0; b{d} < {p(nb)}; b{d}++) {{")
        ind += "    "
        for key, v in (("a", A), ("b", B)):
            st = _batch_stride(v, batch, d)
            if st:
                terms[key].append(f"b{d} * {p(st)}")
        terms["c"].append(f"b{d} * {p(m * n * int(np.prod(batch[d + 1:], dtype=np.int64)))}")
    off = {key: (" + " + " + ".join(t)) if t else "" for key, t in terms.items()}
    L.append(f"{ind}{gemm}({ta}, {tb}, {p(m)}, {p(n)}, {p(k)}, pa{off['a']}, {p(lda)}, "
             f"pb{off['b']}, {p(ldb)}, {zero}, pc{off['c']}, {p(max(n, 1))});")
    for _ in batch:
        ind = ind[:-4]
        L.append(f"{ind}}}")
    L.append("}")
    low.lines += L


def _batch_stride(v, batch, d):
    lead = len(batch) - (len(v.shape) - 2)
    if d < lead:
        return 0
    j = d - lead
    return 0 if v.shape[j] == 1 else v.strides[j]


def _cast_copy(low, v, dt):
    out = low.new_buffer(None, v.shape, dt)
    low.emit_copy(v, out)
    return out


# ---------------------------------------------------------------- guards
@kernel("guard_bool", "guard_int", "guard_array")
def guard(low, i, out, args, params):
    """Check a recorded branch or value; on a mismatch the function returns 1
    before anything else runs (the caller then replays the interpreter, which
    names the guard and what it saw)."""
    name = OPS[low.t.op[i]].name
    x = low.operand(args[0])
    if name == "guard_array":
        ref = low.operand(args[1])
        _guard_array(low, args, x, ref)
        return
    if isinstance(x, Lit):
        val = repr(x.value)
    else:
        val = f"{low.ptr(x)}[0]"
    if name == "guard_bool":
        cond = f"(({val}) != 0) != {int(bool(params['expect']))}"
    else:
        cond = f"(int64_t)({val}) != {low.tab.number(int(params['expect']), np.int64)}"
    low.lines.append(f"if ({cond}) return 1;  /* guard */")


def _guard_array(low, args, x, ref):
    if tuple(x.shape) != tuple(ref.shape):
        low.lines.append("return 1;  /* guard: shape changed */")
        return
    x, ref = low.view_of(args[0]), low.view_of(args[1])
    flag = low.new_buffer(None, (), np.bool_)
    low.n_regions += 1
    R = Region(x.shape, low.n_regions)
    a, b = R.load(x), R.load(ref)
    nan = f" || ({a} != {a} && {b} != {b})" if x.dtype.kind == "f" else ""
    low.add_reduction(R, "all", f"({a} == {b}{nan})", flag, tuple(range(len(x.shape))))
    low.render_region(R)
    low.lines.append(f"if (!{low.ptr(flag)}[0]) return 1;  /* guard */")


# ---------------------------------------------------------------- concatenate
@kernel("concatenate")
def concatenate(low, i, out, args, params):
    axis = params["axis"]
    whole = low.new_buffer(out, low.t.shape(out), low.t.dtype(out))
    start = 0
    for a in args:
        v = low.operand(a)
        n = low.t.shape(a)[axis]
        dst = whole.apply(lambda arr, s=start, n=n: arr[(slice(None),) * axis + (slice(s, s + n),)])
        low.emit_copy(v, dst)
        start += n


__all__ = ["reduce", "matmul", "guard", "concatenate"]


# ---------------------------------------------------------------- advanced indexing
def _advanced_plan(low, x_view, spec, arrays, name="gather"):
    """How an index with integer arrays addresses ``x_view``.

    Returns ``(base, out_dims, adv, bshape)``: ``base`` is ``x_view`` with the
    basic part of the index applied (advanced items kept as whole axes); each
    output dimension is ``("basic", length, stride)`` or ``("b", j)``
    (dimension j of the broadcast index shape ``bshape``); ``adv`` lists
    ``(index view, axis length, axis stride)`` per index array, its strides
    broadcast to the index shape.
    """
    spec, arrays = _mask_indices(low, spec, arrays, name)
    # NumPy: advanced indices (the arrays, and integers next to them) separated
    # by anything, even an Ellipsis standing for no axes, put the broadcast
    # index dimensions first
    positions = [k for k, it in enumerate(spec) if it[0] in "ai"]
    adjacent = positions == list(range(positions[0], positions[0] + len(positions)))
    if any(it[0] == "e" for it in spec):
        used = sum(1 for it in spec if it[0] in "sia")
        k = next(k for k, it in enumerate(spec) if it[0] == "e")
        spec = (tuple(spec[:k]) + (("s", None, None, None),) * (len(x_view.shape) - used)
                + tuple(spec[k + 1:]))
    keep = tuple(("s", None, None, None) if it[0] == "a" else it for it in spec)
    base = x_view.apply(lambda a: basic_index(a, keep))
    if base is None:
        raise Unsupported(name, "an index that needs a copy")
    # axes of ``base``: walk the spec (ints drop an axis, newaxis adds one)
    axis, adv_axes, basic_axes = 0, [], []
    for it in spec:
        if it[0] == "i":
            continue
        if it[0] == "a":
            adv_axes.append(axis)
        else:
            basic_axes.append(axis)
        axis += 1
    basic_axes += list(range(axis, len(base.shape)))
    bshape = np.broadcast_shapes(*(a.shape for a in arrays))
    adv = []
    for a, ax in zip(arrays, adv_axes):
        adv.append((View(a.buf, a.offset, bshape, a.broadcast_strides(bshape), a.dtype),
                    base.shape[ax], base.strides[ax]))
    b_dims = [("b", j) for j in range(len(bshape))]
    basic = [("basic", base.shape[ax], base.strides[ax]) for ax in basic_axes]
    if adjacent:
        first = sum(1 for ax in basic_axes if ax < adv_axes[0])
        dims = basic[:first] + b_dims + basic[first:]
    else:
        dims = b_dims + basic
    if any(d[1] == 0 for d in basic) or 0 in bshape:
        _check_unread(low, arrays, adv)
    return base, dims, adv, bshape


def _check_unread(low, arrays, adv):
    """C lines checking the index arrays of an empty region (an empty slice
    next to them, or another index array that is empty): no element is
    addressed, yet NumPy raises IndexError for an index out of bounds."""
    p = low.tab.p
    for j, (a, (_, n, _)) in enumerate(zip(arrays, adv)):
        if int(np.prod(a.shape, dtype=np.int64)) == 0:
            continue
        axes = range(len(a.shape))
        low.lines += [f"{{ /* index array {j} of an empty region: bounds */",
                      f"    const {ctype(a.dtype)} *pc = {low.ptr(a)};"]
        low.lines += loop_nest(p, a.shape, axes, "    ", lambda ind: [
            f"{ind}int64_t v = (int64_t)pc[{offset(p, a, axes)}];",
            f"{ind}if (v < 0) v += {p(n)};",
            f"{ind}if (v < 0 || v >= {p(n)}) return TD_BAD_INDEX;"])
        low.lines.append("}")


def _mask_indices(low, spec, arrays, name="gather"):
    """``(spec, arrays)`` with each boolean mask item ``("a", j, count)``
    replaced by the integer arrays of its ``nonzero()``, as NumPy reads a
    mask: one index item per mask dimension, each ``count`` long, filled by
    C lines added here (a row-major scan of the mask). ``count`` is the one
    the mask's guard fixed; a mask with another count returns 1, the guard
    status, so the caller replays the interpreter. A boolean index array
    without a count is Unsupported: it is never read as integers."""
    if not any(it[0] == "a" and arrays[it[1]].dtype == np.bool_ for it in spec):
        return spec, arrays
    p = low.tab.p
    new_spec, new_arrays = [], []      # (index arrays in the order the items use them)
    for it in spec:
        if it[0] != "a" or arrays[it[1]].dtype != np.bool_:
            if it[0] == "a":
                new_arrays.append(arrays[it[1]])
                it = ("a", len(new_arrays) - 1)
            new_spec.append(it)
            continue
        m = arrays[it[1]]
        if len(it) < 3 or not m.shape:
            raise Unsupported(name, "a boolean index without its guarded count"
                              if len(it) < 3 else "a 0-d boolean index")
        k, count = len(m.shape), it[2]
        coords = low.new_buffer(None, (k, max(count, 1)), np.dtype(np.int64))
        off = offset(p, m, range(k))
        stores = " ".join(f"pk[{p(d * max(count, 1))} + c] = i{d};" for d in range(k))
        low.lines += ["{ /* mask: nonzero() */", f"    const {ctype(m.dtype)} *pm = {low.ptr(m)};",
                      f"    int64_t *pk = {low.ptr(coords, const=False)}, c = 0;"]
        low.lines += loop_nest(p, m.shape, range(k), "    ", lambda ind: [
            f"{ind}if (pm[{off}]) {{ if (c < {p(count)}) {{ {stores} }} c++; }}"])
        low.lines += [f"    if (c != {p(count)}) return 1;  /* the mask's guard */", "}"]
        for d in range(k):
            new_spec.append(("a", len(new_arrays)))
            new_arrays.append(coords.apply(lambda a, d=d: a[d, :count]))
    return tuple(new_spec), new_arrays


def indexed_address(p, plan, ind, fail):
    """For ``plan``, an :func:`_advanced_plan`: the shape of the indexed
    region, the C lines (indent ``ind``) that read each index array at the
    region's counters ``i<d>`` into ``a<j>`` (negative indices wrapped, one
    out of bounds runs ``fail``), and the element offset they address
    (shared by the C loops and the CUDA gather)."""
    base, dims, adv, bshape = plan
    shape = [bshape[d[1]] if d[0] == "b" else d[1] for d in dims]
    src = [f"i{d} * {p(sd[2])}" for d, sd in enumerate(dims) if sd[0] == "basic" and sd[2]]
    L = []
    for j, (iv, n, st) in enumerate(adv):
        at = " + ".join(f"i{d} * {p(iv.strides[sd[1]])}" for d, sd in enumerate(dims)
                        if sd[0] == "b" and iv.strides[sd[1]]) or "0"
        L += [f"{ind}int64_t a{j} = (int64_t)pi{j}[{at}];",
              f"{ind}if (a{j} < 0) a{j} += {p(n)};",
              f"{ind}if (a{j} < 0 || a{j} >= {p(n)}) {fail}"]
        src.append(f"a{j} * {p(st)}")
    return shape, L, " + ".join(src) or "0"


def _indexed_loop(low, name, x_view, arrays, spec, body, value=None):
    """Loops over the indexed region of ``x_view`` (op ``name``); ``body(src,
    k)`` gives the C statement for element offset ``src`` of ``x_view`` and
    flat position ``k`` of the region (row-major); ``value`` is read at
    ``k`` when given."""
    plan = _advanced_plan(low, x_view, spec, arrays, name)
    base, adv = plan[0], plan[2]
    p = low.tab.p
    L = ["{ /* indexed */", f"    {ctype(base.dtype)} *px = "
         f"({ctype(base.dtype)} *){low.ptr(base)};"]
    for j, (iv, n, st) in enumerate(adv):
        L.append(f"    const {ctype(iv.dtype)} *pi{j} = {low.ptr(iv)};")
    if value is not None:
        L.append(f"    const {ctype(value.dtype)} *pv = {low.ptr(value)};")
    L.append("    int64_t k = 0;")
    ind = "    " * (len(plan[1]) + 1)
    shape, address, src = indexed_address(p, plan, ind, "return TD_BAD_INDEX;")
    L += loop_nest(p, shape, range(len(shape)), "    ",
                   lambda ind: address + [f"{ind}{body(src, 'k')}", f"{ind}k++;"])
    L.append("}")
    low.lines += L


@kernel("gather")
def gather(low, i, out, args, params):
    """``x[index]`` with integer index arrays (bounds checked, negative indices
    wrapped, as NumPy)."""
    x = low.view_of(args[0])
    arrays = [low.view_of(a) for a in args[1:]]
    dst = low.new_buffer(out, low.t.shape(out), low.t.dtype(out))
    if not arrays:
        raise Unsupported("gather", "no index arrays")
    _indexed_loop(low, "gather", x, arrays, params["index"],
                  lambda src, k: f"{low.ptr(dst, const=False)}[{k}] = px[{src}];")


@kernel("setitem", "scatter_add")
def indexed_write(low, i, out, args, params):
    """``base[index] = val`` / ``np.add.at(base, index, val)`` with index
    arrays, into ``base`` or into a view of it (``z[0][m] = v``: the view
    ``chain``, applied to the written buffer); in NumPy's order, so a
    repeated index keeps the last value (setitem) or adds in order."""
    name, whole, idx, v = write_operands(low, i, out, args, params)
    _indexed_loop(low, name, whole, idx, params["index"],
                  lambda src, k: write_statement(name, whole.dtype, f"px[{src}]", f"pv[{k}]"),
                  value=v)


def write_statement(name, dtype, dst, val):
    """The C statement of one element of an indexed write: ``=`` (setitem),
    or NumPy's add (scatter_add; for bool a logical or: a byte that adds
    would hold 2, or wrap to 0 after 256 Trues)."""
    if name != "scatter_add":
        return f"{dst} = {val};"
    if np.dtype(dtype) == np.bool_:
        return f"{dst} = {dst} | {val};"
    return f"{dst} += {val};"


def write_operands(low, i, out, args, params):
    """For an indexed write: ``(name, whole, idx, v)``, the op's name, the
    view written (the result's buffer, a copy of the base unless it is
    updated in place, with the view chain applied), the index views and the
    value broadcast to the indexed region (a buffer, in row-major order)."""
    name = OPS[low.t.op[i]].name
    base, val, arrays = args[0], args[1], args[2:]
    bv = low.operand(base)
    if isinstance(bv, View) and low.can_update(base, i):
        whole = bv
        low.set_view(out, bv)
    else:
        whole = low.new_buffer(out, low.t.shape(out), low.t.dtype(out))
        low.emit_copy(bv, whole)
    if params["chain"]:
        from ..ops.indexing import apply_chain
        whole = whole.apply(lambda a: apply_chain(a, params["chain"]))
        if whole is None:
            raise Unsupported(name, "a write through a view that needs a copy")
    idx = [low.view_of(a) for a in arrays]
    from ..ops.indexing import GATHER    # (the shape rule reads a mask's count)
    rshape = GATHER.shape(Aval(whole.shape, whole.dtype),
                          *[Aval(a.shape, a.dtype) for a in idx], index=params["index"]).shape
    vv = low.operand(val)
    v = low.new_buffer(None, rshape, whole.dtype)
    low.emit_copy(vv, v)             # the value broadcast to the region, in order
    return name, whole, idx, v


# ---------------------------------------------------------------- LAPACK
def _lapack_operand(low, s, name, what):
    """Operand ``s`` as a C-contiguous float64 array. float32 is cast up:
    NumPy computes float32 linear algebra in double and casts the results
    (``numpy.linalg._commonType``), and so do compiled tapes (see
    :class:`_Results`). Unsupported for other dtypes."""
    A = low.contiguous(s)
    if A.dtype == np.float32:
        return _cast_copy(low, A, np.float64)
    if A.dtype != np.float64:
        raise Unsupported(name, f"{A.dtype} {what} (NumPy's LAPACK calls take floats)")
    return A


def _square_stack(low, s, name):
    """Operand ``s`` as float64 matrices (batch..., n, n; see
    :func:`_lapack_operand`), with the batch size and n."""
    A = _lapack_operand(low, s, name, "matrices")
    return A, int(np.prod(A.shape[:-2], dtype=np.int64)), A.shape[-1]


class _Results:
    """The result buffers of a LAPACK kernel and its loop over the matrices.
    float64 results are written in place; a float32 one gets a float64
    buffer, copied into it after the loop (NumPy's double computation, then
    its cast)."""

    def __init__(self, low):
        self.low, self.pending = low, []

    def new(self, slot, shape):
        dt = self.low.t.dtype(slot)
        out = self.low.new_buffer(slot, shape, dt)
        if out.dtype == np.float64:
            return out
        tmp = self.low.new_buffer(None, shape, np.float64)
        self.pending.append((tmp, out))
        return tmp

    def per_matrix(self, name, nb, call):
        """``call`` (C text using ``q``, the matrix's index) for each of ``nb``
        matrices, in order (a failure returns at the first failing one, as
        NumPy raises when any matrix of a stack fails), then the casts."""
        low = self.low
        low.lines.append(f"for (int64_t q = 0; q < {low.tab.p(nb)}; q++) {{ /* {name} */ "
                         f"{call} }}")
        for tmp, out in self.pending:
            low.emit_copy(tmp, out)


def _rhs(low, s, A, name, out_shape):
    """Operand ``s``, the right-hand side of a solve with matrices ``A``
    (NumPy 2's rule: a vector, shared by every matrix, or a stack of
    matrices whose batch broadcasts against ``A``'s), as C-contiguous
    float64, with its column count, the number of systems (the result
    ``out_shape``'s batch) and the C offsets (in doubles) of system ``q``'s
    matrix in ``A`` and its right-hand side in ``B``."""
    B = _lapack_operand(low, s, name, "right-hand sides")
    n = A.shape[-1]
    batch = tuple(out_shape[:-2] if len(B.shape) > 1 else out_shape[:-1])
    a_off = _batch_offset(low.tab.p, batch, A.shape[:-2], n * n)
    systems = int(np.prod(batch, dtype=np.int64))
    if len(B.shape) == 1:
        return B, 1, systems, a_off, "0"
    return (B, B.shape[-1], systems, a_off,
            _batch_offset(low.tab.p, batch, B.shape[:-2], n * B.shape[-1]))


def _batch_offset(p, batch, own, size):
    """The C offset of system ``q`` (row-major over ``batch``) in a stack of
    ``own``-batch items of ``size`` elements each, ``own`` broadcasting
    against ``batch`` (its size-1 and missing axes repeat one item)."""
    own = (1,) * (len(batch) - len(own)) + tuple(own)
    if own == tuple(batch):
        return f"q * {p(size)}"
    terms, step, inner = [], size, 1
    for d in reversed(range(len(batch))):
        if own[d] != 1:
            terms.append(f"((q / {p(inner)}) % {p(batch[d])}) * {p(step)}")
            step *= own[d]
        inner *= batch[d]
    return " + ".join(terms) or "0"


@kernel("solve", "inv")
def solve(low, i, out, args, params):
    """``solve(A, b)`` / ``inv(A)`` through LAPACK getrf + getrs, as NumPy,
    one system after another for a stack (a matrix shared by
    several right-hand sides is factored once per system, as NumPy's loop
    does); an exactly singular matrix returns TD_SINGULAR (LinAlgError).
    ``b`` follows NumPy 2's rule (:func:`_rhs`)."""
    name = OPS[low.t.op[i]].name
    A, nb, n = _square_stack(low, args[0], name)
    dt = A.dtype
    res = _Results(low)
    p = low.tab.p
    shape = low.t.shape(out)
    if name == "solve":
        B, nrhs, systems, a_off, b_off = _rhs(low, args[1], A, name, shape)
        b_ptr = low.ptr(B)
    else:
        nrhs, systems, a_off, b_off = n, nb, f"q * {p(n * n)}", "0"
        eye = low.new_buffer(None, (n, n), dt)
        low.emit_copy(Lit(0.0, float, ()), eye)
        low.lines.append(f"for (int64_t d = 0; d < {p(n)}; d++) "
                         f"{low.ptr(eye, const=False)}[d * {p(n + 1)}] = 1;")
        b_ptr = low.ptr(eye)
    X = res.new(out, shape)
    work = low.new_buffer(None, (n * n + n * nrhs,), dt)
    piv = low.new_buffer(None, (max(n, 1),), np.int32)
    res.per_matrix(name, systems,
                   f"int st = td_dsolve({p(n)}, {p(nrhs)}, {low.ptr(A)} + {a_off}, "
                   f"{b_ptr} + {b_off}, {low.ptr(X, const=False)} + q * {p(n * nrhs)}, "
                   f"{low.ptr(work, const=False)}, (int *){low.ptr(piv, const=False)}); "
                   "if (st) return st;")


@kernel("solve_triangular")
def solve_triangular(low, i, out, args, params):
    """``solve_triangular(A, b, lower)`` through LAPACK trtrs (substitution),
    one system after another for a stack, with solve's right-hand
    sides; a zero on the diagonal returns TD_SINGULAR (LinAlgError)."""
    A, _, n = _square_stack(low, args[0], "solve_triangular")
    shape = low.t.shape(out)
    B, nrhs, systems, a_off, b_off = _rhs(low, args[1], A, "solve_triangular", shape)
    res = _Results(low)
    X = res.new(out, shape)
    work = low.new_buffer(None, (max(n * nrhs, 1),), A.dtype)
    p = low.tab.p
    res.per_matrix("solve_triangular", systems,
                   f"int st = td_dtrsolve({p(n)}, {p(nrhs)}, {low.ptr(A)} + {a_off}, "
                   f"{low.ptr(B)} + {b_off}, {low.ptr(X, const=False)} + q * "
                   f"{p(n * nrhs)}, {low.ptr(work, const=False)}, {int(bool(params['lower']))}); "
                   "if (st) return st;")


@kernel("eigh", "eigvalsh")
def eigh(low, i, out, args, params):
    """``np.linalg.eigh(A, UPLO)`` / ``eigvalsh`` through LAPACK syevd, called
    as NumPy calls it (a Fortran copy, the same triangle, eigenvectors only
    for eigh), per matrix of a stack; eigh's two outputs are slots ``out``
    (eigenvalues) and ``out + 1``."""
    name = OPS[low.t.op[i]].name
    A, nb, n = _square_stack(low, args[0], name)
    if 3 * n * n + 6 * n + 1 >= 2**31:
        raise Unsupported(name, "a matrix too large for LAPACK's 32-bit workspace size")
    res = _Results(low)
    W = res.new(out, A.shape[:-1])
    vectors = "NULL"
    if name == "eigh":
        V = res.new(out + 1, A.shape)
        vectors = f"{low.ptr(V, const=False)} + q * {low.tab.p(n * n)}"
    work = low.new_buffer(None, (3 * n * n + 6 * n + 1,), A.dtype)
    iwork = low.new_buffer(None, (5 * n + 3,), np.int32)
    p = low.tab.p
    res.per_matrix(name, nb,
                   f"int st = td_dsyevd({p(n)}, {low.ptr(A)} + q * {p(n * n)}, "
                   f"{low.ptr(W, const=False)} + q * {p(n)}, {vectors}, "
                   f"{low.ptr(work, const=False)}, (int *){low.ptr(iwork, const=False)}, "
                   f"{int(params['UPLO'] == 'U')}); if (st) return st;")


def _optimal_lwork(name, query, *args, **kwargs):
    """LAPACK's optimal workspace for a routine, from scipy's ``query``
    (``dgesdd_lwork``, ...): NumPy asks the routine before each call; asked
    once per tape here. Unsupported past LAPACK's 32-bit sizes."""
    from scipy.linalg import lapack      # (lazily: only tapes with these ops need it)
    lwork, info = getattr(lapack, query)(*args, **kwargs)
    if info != 0 or lwork >= 2**31:
        raise Unsupported(name, "a matrix too large for LAPACK's 32-bit workspace size")
    return int(lwork)


def _nonempty_stack(low, s, name):
    """Operand ``s`` as float64 m x n matrices (m, n >= 1, as the gesdd and
    geqrf kernels take them), with the batch size, m and n."""
    A = _lapack_operand(low, s, name, "matrices")
    m, n = A.shape[-2:]
    if m == 0 or n == 0:
        raise Unsupported(name, "empty matrices")
    return A, int(np.prod(A.shape[:-2], dtype=np.int64)), m, n


@kernel("svd", "svdvals")
def svd(low, i, out, args, params):
    """``np.linalg.svd`` / ``svd(compute_uv=False)`` through LAPACK gesdd,
    called as NumPy calls it (a Fortran copy, its jobz, the optimal
    workspace), per matrix of a stack; svd's outputs are slots ``out``
    (U), ``out + 1`` (s) and ``out + 2`` (Vh), svdvals's ``out`` (s)."""
    name = OPS[low.t.op[i]].name
    A, nb, m, n = _nonempty_stack(low, args[0], name)
    k = min(m, n)
    vectors, full = name == "svd", bool(params.get("full_matrices"))
    lwork = _optimal_lwork(name, "dgesdd_lwork", m, n, compute_uv=int(vectors),
                           full_matrices=int(full))
    ucols, vrows = (m, n) if full else (k, k)
    p = low.tab.p
    res = _Results(low)
    S = res.new(out + 1 if vectors else out, A.shape[:-2] + (k,))
    U = Vh = "NULL"
    if vectors:
        Ub = res.new(out, A.shape[:-2] + (m, ucols))
        Vb = res.new(out + 2, A.shape[:-2] + (vrows, n))
        U = f"{low.ptr(Ub, const=False)} + q * {p(m * ucols)}"
        Vh = f"{low.ptr(Vb, const=False)} + q * {p(vrows * n)}"
    work = low.new_buffer(None, (m * n + m * ucols + vrows * n + lwork,), A.dtype)
    iwork = low.new_buffer(None, (8 * k,), np.int32)
    res.per_matrix(name, nb,
                   f"int st = td_dgesdd({p(m)}, {p(n)}, {low.ptr(A)} + q * {p(m * n)}, "
                   f"{low.ptr(S, const=False)} + q * {p(k)}, {U}, {Vh}, {int(full)}, "
                   f"{low.ptr(work, const=False)}, {p(lwork)}, "
                   f"(int *){low.ptr(iwork, const=False)}); if (st) return st;")


@kernel("qr")
def qr(low, i, out, args, params):
    """``np.linalg.qr(a, mode)`` as NumPy computes it (a Fortran copy,
    geqrf, R from the factored matrix, orgqr for Q), per matrix of a
    stack; Q is slot ``out``, R ``out + 1``."""
    A, nb, m, n = _nonempty_stack(low, args[0], "qr")
    k = min(m, n)
    complete = params["mode"] == "complete" and m > n
    qcols = rrows = m if complete else k
    # orgqr's blocked path needs qcols times its block size (scipy has no query)
    lwork = max(_optimal_lwork("qr", "dgeqrf_lwork", m, n), 64 * qcols, 1)
    if m * max(n, qcols) + k + lwork >= 2**31:
        raise Unsupported("qr", "a matrix too large for LAPACK's 32-bit sizes")
    res = _Results(low)
    Qb = res.new(out, A.shape[:-2] + (m, qcols))
    Rb = res.new(out + 1, A.shape[:-2] + (rrows, n))
    work = low.new_buffer(None, (m * max(n, qcols) + k + lwork,), A.dtype)
    p = low.tab.p
    res.per_matrix("qr", nb,
                   f"td_dqr({p(m)}, {p(n)}, {low.ptr(A)} + q * {p(m * n)}, "
                   f"{low.ptr(Qb, const=False)} + q * {p(m * qcols)}, "
                   f"{low.ptr(Rb, const=False)} + q * {p(rrows * n)}, {p(qcols)}, {p(rrows)}, "
                   f"{low.ptr(work, const=False)}, {p(lwork)});")


@kernel("pinv")
def pinv(low, i, out, args, params):
    """``np.linalg.pinv(a, rcond)`` as NumPy computes it (gesdd, the cutoff,
    ``Vh^T (s_inv U^T)``), per matrix of a stack."""
    if params["hermitian"]:
        raise Unsupported("pinv", "hermitian=True (NumPy's route through eigh)")
    A, nb, m, n = _nonempty_stack(low, args[0], "pinv")
    k = min(m, n)
    lwork = _optimal_lwork("pinv", "dgesdd_lwork", m, n, compute_uv=1, full_matrices=0)
    res = _Results(low)
    P = res.new(out, A.shape[:-2] + (n, m))
    work = low.new_buffer(None, (2 * k * m + k + k * n + m * n + m * k + k * n + lwork,),
                          A.dtype)
    iwork = low.new_buffer(None, (8 * k,), np.int32)
    p = low.tab.p
    res.per_matrix("pinv", nb,
                   f"int st = td_dpinv({p(m)}, {p(n)}, {low.ptr(A)} + q * {p(m * n)}, "
                   f"{low.ptr(P, const=False)} + q * {p(n * m)}, "
                   f"{low.tab.number(params['rcond'], np.float64)}, "
                   f"{low.ptr(work, const=False)}, {p(lwork)}, "
                   f"(int *){low.ptr(iwork, const=False)}); if (st) return st;")


@kernel("det")
def det(low, i, out, args, params):
    """``det(A)`` as NumPy computes it, per matrix of a stack: slogdet's LU
    (getrf), then ``sign * exp(log|det|)`` (0 for an exactly singular
    matrix)."""
    A, nb, n = _square_stack(low, args[0], "det")
    res = _Results(low)
    D = res.new(out, low.t.shape(out))
    work = low.new_buffer(None, (n * n,), A.dtype)
    piv = low.new_buffer(None, (max(n, 1),), np.int32)
    p = low.tab.p
    res.per_matrix("det", nb,
                   f"{low.ptr(D, const=False)}[q] = td_ddet({p(n)}, {low.ptr(A)} + q * {p(n * n)}, "
                   f"{low.ptr(work, const=False)}, (int *){low.ptr(piv, const=False)});")


@kernel("slogdet")
def slogdet(low, i, out, args, params):
    """``slogdet(A)``: one LU (getrf) per matrix of a stack, then the sign
    (slot ``out``) and the sum of the logarithms of the pivots' magnitudes
    (slot ``out + 1``); sign 0 and -inf for an exactly singular matrix, as
    NumPy."""
    A, nb, n = _square_stack(low, args[0], "slogdet")
    res = _Results(low)
    sign = res.new(out, low.t.shape(out))
    logabs = res.new(out + 1, low.t.shape(out + 1))
    work = low.new_buffer(None, (n * n + 1,), A.dtype)
    piv = low.new_buffer(None, (max(n, 1),), np.int32)
    p = low.tab.p
    res.per_matrix("slogdet", nb,
                   f"td_dslogdet({p(n)}, {low.ptr(A)} + q * {p(n * n)}, "
                   f"{low.ptr(work, const=False)}, (int *){low.ptr(piv, const=False)}, "
                   f"{low.ptr(sign, const=False)} + q, {low.ptr(logabs, const=False)} + q);")


@kernel("cholesky")
def cholesky(low, i, out, args, params):
    """``np.linalg.cholesky(A, upper=...)`` through LAPACK potrf, per matrix
    of a stack; a matrix that is not positive definite returns TD_NOT_PD
    (LinAlgError, as NumPy)."""
    A, nb, n = _square_stack(low, args[0], "cholesky")
    res = _Results(low)
    L = res.new(out, A.shape)
    p = low.tab.p
    res.per_matrix("cholesky", nb,
                   f"int st = td_dcholesky({p(n)}, {low.ptr(A)} + q * {p(n * n)}, "
                   f"{low.ptr(L, const=False)} + q * {p(n * n)}, {int(bool(params['upper']))}); "
                   "if (st) return st;")


@kernel("count_nonzero")
def count_nonzero(low, i, out, args, params):
    """``np.count_nonzero(x)``: a sum of ``x != 0`` into an int64."""
    x = low.view_of(args[0])
    view = low.new_buffer(out, (), np.int64)
    low.n_regions += 1
    R = Region(x.shape, low.n_regions)
    low.add_reduction(R, "sum", f"(int64_t)({R.load(x)} != 0)", view,
                      tuple(range(len(x.shape))))
    low.render_region(R)


@kernel("argwhere")
def argwhere(low, i, out, args, params):
    """``np.argwhere(x)`` (and ``nonzero``, ``flatnonzero``, ``extract``, built
    on it): the indices of the nonzero elements in row-major order, one row
    each. The recording guarded their number (``count``, the result's
    length), so a different count cannot reach this kernel; it is checked
    again, as the guard status, rather than written past the result."""
    x = low.view_of(args[0])
    nd = len(x.shape)
    res = low.new_buffer(out, low.t.shape(out), low.t.dtype(out))
    p = low.tab.p
    count = p(params["count"])

    def body(ind):
        L = [f"{ind}if (px[{offset(p, x, range(nd))}] != 0) {{",
             f"{ind}    if (k == {count}) return 1;  /* more than the guarded count */"]
        L += [f"{ind}    po[k * {max(nd, 1)} + {d}] = i{d};" for d in range(nd)]
        return L + [f"{ind}    k++;", f"{ind}}}"]
    L = ["{ /* argwhere */", f"    const {ctype(x.dtype)} *px = {low.ptr(x)};",
         f"    {ctype(res.dtype)} *po = {low.ptr(res, const=False)};", "    int64_t k = 0;"]
    L += loop_nest(p, x.shape, range(nd), "    ", body)
    L += [f"    if (k != {count}) return 1;  /* fewer than the guarded count */", "}"]
    low.lines += L


@kernel("argmax", "argmin")
def argextreme(low, i, out, args, params):
    """``np.argmax`` / ``np.argmin`` over one axis or all: the first extreme
    element in row-major order, a NaN counting as the extreme (as NumPy)."""
    name = OPS[low.t.op[i]].name
    x = low.view_of(args[0])
    if x.shape and 0 in x.shape:
        raise Unsupported(name, "an empty array")
    axis = params["axis"]
    nd = len(x.shape)
    red = list(range(nd)) if axis is None else [axis % nd]
    keep = [d for d in range(nd) if d not in red]
    res = low.new_buffer(out, low.t.shape(out), low.t.dtype(out))
    p = low.tab.p
    ct = ctype(x.dtype)
    better = ">" if name == "argmax" else "<"
    L = [f"{{ /* {name} */", f"    const {ct} *px = {low.ptr(x)};",
         f"    {ctype(res.dtype)} *po = {low.ptr(res, const=False)};", "    int64_t o = 0;"]
    ind = "    "
    for d in keep:
        L.append(f"{ind}for (int64_t i{d} = 0; i{d} < {p(x.shape[d])}; i{d}++) {{")
        ind += "    "
    L += [f"{ind}int64_t k = 0, best_k = 0;", f"{ind}{ct} best = 0;"]
    inner = ind
    for d in red:
        L.append(f"{ind}for (int64_t i{d} = 0; i{d} < {p(x.shape[d])}; i{d}++) {{")
        ind += "    "
    off = offset(p, x, range(nd))
    L += [f"{ind}const {ct} v = px[{off}];",
          f"{ind}if (k == 0 || (best == best && (v {better} best || v != v))) "
          "{ best = v; best_k = k; }",
          f"{ind}k++;"]
    for _ in red:
        ind = ind[:-4]
        L.append(f"{ind}}}")
    L.append(f"{inner}po[o++] = best_k;")
    for _ in keep:
        ind = ind[:-4]
        L.append(f"{ind}}}")
    L.append("}")
    low.lines += L


_ARGSORT = {"f8": "f64", "f4": "f32", "i8": "i64", "i4": "i32", "i2": "i16", "i1": "i8",
            "u1": "u8", "b1": "u8"}     # dtype -> td_argsort_* of csrc/tapediff_math.h


def sort_operands(low, i, out, args, params):
    """``(x, res, axis, body)`` of a sort/argsort (shared with the CUDA
    target): ``body(ind, fail)`` gives the statements sorting the line of
    ``x`` at the loop counters ``i<d>`` (``px``/``po`` point at ``x`` and
    ``res``, ``idx``/``tmp`` at ``x.shape[axis]`` int64 each of scratch).

    An argsort of NumPy's default kind (quicksort) orders equal values its
    own way; its result is the unique sorting permutation when a line has no
    two equal values and no NaN, so the line is checked for that and runs
    ``fail`` (the guard status: the call replays the interpreter) where it
    does not hold."""
    name = OPS[low.t.op[i]].name
    x = low.view_of(args[0])
    fn = _ARGSORT.get(x.dtype.str[1:])
    if fn is None:
        raise Unsupported(name, f"dtype {x.dtype}")
    res = low.new_buffer(out, low.t.shape(out), low.t.dtype(out))
    axis, p = params["axis"], low.tab.p
    n = x.shape[axis]
    keep = [d for d in range(len(x.shape)) if d != axis]
    src = offset(p, x, keep)
    dst = offset(p, res, keep)
    sx, so = p(x.strides[axis]), p(res.strides[axis])
    value = f"px[{src} + idx[k] * {sx}]" if name == "sort" else "idx[k]"
    unique = name == "argsort" and params["kind"] not in ("stable", "mergesort")

    def body(ind, fail):
        L = [f"{ind}td_argsort_{fn}(px + {src}, {sx}, {p(n)}, idx, tmp);"]
        if unique:      # strictly increasing: no ties, no NaN (a NaN compares false)
            L.append(f"{ind}for (int64_t k = 1; k < {p(n)}; k++) if (!(px[{src} + idx[k - 1] "
                     f"* {sx}] < px[{src} + idx[k] * {sx}])) {fail}")
        L.append(f"{ind}for (int64_t k = 0; k < {p(n)}; k++) po[{dst} + k * {so}] = {value};")
        return L
    return x, res, axis, body


@kernel("sort", "argsort")
def sort_lines(low, i, out, args, params):
    """``np.sort`` and ``np.argsort`` along one axis: a stable merge sort of
    each line's indices (``td_argsort_*``), then the values or the indices
    written out. Sorted *values* are the same whatever the order of equal
    ones (up to the sign of zeros that compare equal, and NaN payloads); an
    argsort of the default kind needs lines without ties (see
    :func:`sort_operands`)."""
    x, res, axis, body = sort_operands(low, i, out, args, params)
    n = max(x.shape[axis], 1)
    scratch = low.new_buffer(None, (2, n), np.dtype(np.int64))
    _line_block(low, OPS[low.t.op[i]].name, x, res, axis,
                lambda ind: body(ind, "return 1;  /* ties: NumPy's own order */"),
                head=[f"int64_t *idx = {low.ptr(scratch, const=False)}, "
                      f"*tmp = idx + {low.tab.p(n)};"])


def _sorts_before(x, y, dt):
    """C condition: ``x`` sorts before ``y`` in NumPy's order (NaN last)."""
    if kind(dt) == "f":
        return f"({x} < {y} || ({y} != {y} && {x} == {x}))"
    return f"({x} < {y})"


def searchsorted_operands(low, i, out, args, params):
    """``(a, v, res, unsorted, search)`` of a searchsorted (shared with the
    CUDA target): ``unsorted(k)`` is the C condition that ``a[k]`` sorts
    before ``a[k - 1]``, ``search(ind)`` the statements of one binary search
    for the element of ``v`` at the loop counters ``i<d>`` (``pa``/``px``/
    ``po`` point at ``a``, ``v`` and ``res``).

    On a sorted ``a`` (NaN last) the answer is unique: the count of the
    elements that sort before the key (``side='left'``) or not after it
    (``'right'``). On an unsorted one NumPy's answer depends on the order of
    its probes, so the kernel checks the order first and the call replays
    the interpreter where ``a`` is not sorted."""
    a, v = low.view_of(args[0]), low.view_of(args[1])
    if ctype(a.dtype) is None:
        raise Unsupported("searchsorted", f"dtype {a.dtype}")
    res = low.new_buffer(out, low.t.shape(out), low.t.dtype(out))
    p = low.tab.p
    sa = p(a.strides[0])
    nd = len(v.shape)
    key, dst = f"px[{offset(p, v, range(nd))}]", offset(p, res, range(nd))
    if params["side"] == "left":
        goes_right = _sorts_before("m", "key", a.dtype)
    else:
        goes_right = "!" + _sorts_before("key", "m", a.dtype)
    ct = ctype(a.dtype)

    def unsorted(k):
        return _sorts_before(f"pa[{k} * {sa}]", f"pa[({k} - 1) * {sa}]", a.dtype)

    def search(ind):
        return [f"{ind}const {ct} key = {key};",
                f"{ind}int64_t lo = 0, hi = {p(a.shape[0])};",
                f"{ind}while (lo < hi) {{",
                f"{ind}    const int64_t mid = lo + ((hi - lo) >> 1);",
                f"{ind}    const {ct} m = pa[mid * {sa}];",
                f"{ind}    if ({goes_right}) lo = mid + 1; else hi = mid;",
                f"{ind}}}",
                f"{ind}po[{dst}] = lo;"]
    return a, v, res, unsorted, search


@kernel("searchsorted")
def searchsorted(low, i, out, args, params):
    """``np.searchsorted``: an order check of ``a`` (status 1 where it is not
    sorted: NumPy's own answer depends on its probes), then a binary search
    per element of ``v``."""
    a, v, res, unsorted, search = searchsorted_operands(low, i, out, args, params)
    p = low.tab.p
    L = ["{ /* searchsorted */", f"    const {ctype(a.dtype)} *pa = {low.ptr(a)};",
         f"    const {ctype(v.dtype)} *px = {low.ptr(v)};",
         f"    {ctype(res.dtype)} *po = {low.ptr(res, const=False)};",
         f"    for (int64_t k = 1; k < {p(a.shape[0])}; k++) if ({unsorted('k')}) "
         "return 1;  /* unsorted: NumPy's own answer */"]
    L += loop_nest(p, v.shape, range(len(v.shape)), "    ", search)
    L.append("}")
    low.lines += L


def _line_block(low, title, x, res, axis, body, head=()):
    """A C block running the statements ``body(ind)`` once per line of ``x``
    along ``axis`` (loops over the other axes, counters ``i<d>``), with ``px``
    and ``po`` pointing at ``x`` and ``res`` and ``head`` before the loops."""
    p = low.tab.p
    L = [f"{{ /* {title} */", f"    const {ctype(x.dtype)} *px = {low.ptr(x)};",
         f"    {ctype(res.dtype)} *po = {low.ptr(res, const=False)};"]
    L += ["    " + h for h in head]
    L += loop_nest(p, x.shape, [d for d in range(len(x.shape)) if d != axis], "    ", body)
    L.append("}")
    low.lines += L


def cumulative_operands(low, i, out, args, params):
    """``(name, x, res, axis)`` of a running scan (shared with the CUDA target)."""
    name = OPS[low.t.op[i]].name
    x = low.view_of(args[0])
    res = low.new_buffer(out, low.t.shape(out), low.t.dtype(out))
    axis = params["axis"]
    if axis is None:
        if len(x.shape) != 1:
            raise Unsupported(name, "axis=None on a multi-dimensional array")
        axis = 0
    return name, x, res, axis % len(x.shape)


#: a running scan's (start, step) in C: ``acc`` the total so far, ``v`` the
#: next element, ``k`` its position (the running extrema start at element 0;
#: TD_MAX/TD_MIN propagate NaN, as NumPy's maximum/minimum)
SCAN_STEPS = {"cumsum": ("0", "acc += v;"), "cumprod": ("1", "acc *= v;"),
              "cummax": ("0", "acc = k == 0 ? v : TD_MAX(acc, v);"),
              "cummin": ("0", "acc = k == 0 ? v : TD_MIN(acc, v);")}


def scan_body(name, x, res, axis, p, ind):
    """The C statements of one line of a running scan (``px``/``po`` at ``x``
    and ``res``, the other axes' counters set; shared with CUDA)."""
    nd = len(x.shape)
    rt = ctype(res.dtype)
    start, step = SCAN_STEPS[name]
    return [f"{ind}{rt} acc = {start};",
            f"{ind}for (int64_t i{axis} = 0; i{axis} < {p(x.shape[axis])}; i{axis}++) {{",
            f"{ind}    const int64_t k = i{axis}; (void)k;",
            f"{ind}    const {rt} v = ({rt})px[{offset(p, x, range(nd))}];",
            f"{ind}    {step}", f"{ind}    po[{offset(p, res, range(nd))}] = acc;", f"{ind}}}"]


@kernel("cumsum", "cumprod", "cummax", "cummin")
def cumulative(low, i, out, args, params):
    """``np.cumsum`` / ``np.cumprod`` / ``np.maximum.accumulate`` /
    ``np.minimum.accumulate`` along one axis (``axis=None`` is recorded on the
    flattened array): a running total per line, in NumPy's order."""
    name, x, res, axis = cumulative_operands(low, i, out, args, params)
    p = low.tab.p
    _line_block(low, name, x, res, axis, lambda ind: scan_body(name, x, res, axis, p, ind))
