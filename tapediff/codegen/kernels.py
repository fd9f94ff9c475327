"""Kernels that are not fused elementwise loops: matmul (BLAS), reductions,
guards and concatenation. Each registers itself in :data:`lower.KERNELS`."""
import numpy as np

from ..ops.registry import OPS
from .lower import KERNELS, Region, Unsupported, cast
from .values import Lit, View, ctype, kind, np_dtype


def kernel(*names):
    def register(fn):
        for n in names:
            KERNELS[n] = fn
        return fn
    return register


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
    m, k = A.shape[-2:]
    n = B.shape[-1]
    batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    p = low.tab.p
    gemm = "td_dgemm" if dt == np.float64 else "td_sgemm"
    zero = "0.0" if dt == np.float64 else "0.0f"
    ct = ctype(dt)
    L = [f"{{ /* matmul {A.shape} @ {B.shape} */",
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
    if len(low.t.shape(out)) != len(C.shape):
        raise AssertionError("matmul output rank")


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
