"""Lower a tape to CUDA kernels: the C generator's passes, rendered for a GPU.

:class:`CudaLowering` is :class:`~tapediff.codegen.lower.Lowering` with
three things replaced, and nothing else:

* **Rendering a loop** (:meth:`CudaLowering.render_region`): each fused
  region becomes one ``__global__`` kernel whose threads stride over the
  region's elements (one flat counter, decomposed into indices when an
  operand is not contiguous). A region that ends in full reductions adds
  per-thread accumulators, a tree reduction in shared memory per block,
  per-block partials in the workspace and a one-block second kernel; the
  grid of that first pass is fixed (``TD_RGRID`` blocks of ``TD_BLOCK``
  threads), so a sum adds in the same order on every device (deterministic;
  no atomics). A region with partial reductions gives each thread one output
  element, and it loops over the reduced axes in order.
* **Spelling** (``facet = "cuda"``): ``op.cuda`` instead of ``op.c``, the C
  spelling except where the C one serves gcc only (see
  ``ops/elementwise.py``); the NumPy-semantics helpers come from the same
  header as C's (``csrc/tapediff_math.h``, device functions under nvcc/NVRTC).
* **Kernels that are not loops** (:data:`CUDA_KERNELS`): reductions,
  concatenation, einsum and diagonal_embed are the C backend's own handlers
  (they build regions; einsum's matrix products go to the ``gemm`` entry);
  matmul, ``gemm`` and the linear algebra of :data:`HOST_LINALG` are host
  steps (cuBLAS/cuSOLVER through CuPy);
  guards are evaluated on the device and set a status word that the host
  reads once at the end; gathers run a thread per element, writes with
  index arrays a thread per element and per run of a device sort of their
  offsets (``indexed_write``), argmax/argmin, cumulative sums and sorts a
  thread per line; an array guard is the C handler's ``all`` reduction (a
  parallel one here) and its flag test in a one-thread kernel.

Recorded loops (``scan``, nested or holding host steps) are a host-driven
:class:`Loop` step. Everything else raises :class:`Unsupported` (the tape
then replays with the interpreter): what the C backend does not lower
either (sort, einsum, cholesky/slogdet, ...).

The result is :attr:`CudaLowering.text` (the kernels) and
:attr:`CudaLowering.steps`, the launch sequence the runner
(:mod:`tapediff.codegen.cuda_runtime`) replays.
"""
import copy
import dataclasses
import functools
import hashlib
import re

import numpy as np

from ..ops.registry import OPS
from . import kernels as _c_kernels
from .lower import (KERNELS, Lowering, Unsupported, acc_type, reduce_init, reduce_step,
                    loop_nest, offset, region_is_flat, register_in)
from .values import Buf, Lit, View, ctype, kind, np_dtype

_KSIG = "const int64_t *P, char *W, const char *K, void *const *I, void *const *O"
BLOCK = 256            # TD_BLOCK in csrc/tapediff_cuda.cuh
RGRID = 1024           # TD_RGRID


@dataclasses.dataclass
class Launch:
    """Launch ``kernel``: over ``P[count]`` elements (grid-stride, ``BLOCK``
    threads per block), with a fixed grid of ``blocks`` blocks, or (``rgrid``)
    as a reduction's first pass, one block per partial (``TD_RGRID``: the
    runner's ``rgrid``)."""
    kernel: str
    count: int = None
    blocks: int = None
    rgrid: bool = False


@dataclasses.dataclass
class Matmul:
    """``C = A @ B`` on the device (cuBLAS through CuPy) for these views."""
    a: View
    b: View
    c: View


# The C handlers that only build regions (rendered by CudaLowering.render_region)
@dataclasses.dataclass
class Linalg:
    """``out = op(*args)`` on the device, ``op`` one of :data:`HOST_STEPS`
    (CuPy's cuSOLVER calls, and its sort); ``out`` lists the result views (an
    op with several results returns a tuple)."""
    op: str
    args: list
    out: list
    params: dict = dataclasses.field(default_factory=dict)
    #: read the status word first and stop if a guard failed: a step that
    #: may raise (LinAlgError) must not, on a path that does not apply; one
    #: that cannot skips that read (a device synchronisation)
    checks_status: bool = True


def _cholesky(xp, a, upper):
    # NumPy reads one triangle only: factor the symmetric matrix it stands
    # for, whatever triangle the device library reads
    if upper:
        return xp.linalg.cholesky(xp.triu(a) + xp.swapaxes(xp.triu(a, 1), -1, -2)).swapaxes(-1, -2)
    return xp.linalg.cholesky(xp.tril(a) + xp.swapaxes(xp.tril(a, -1), -1, -2))


def _solve(xp, a, b):
    # NumPy 2's rule (b is one vector when 1-d, else a stack of matrices
    # broadcast against a's batch) made explicit, so that a library following
    # the older rule (b with one dimension fewer than a: a stack of vectors)
    # computes the same
    vec = b.ndim == 1
    if vec:
        b = b[:, None]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    x = xp.linalg.solve(xp.broadcast_to(a, batch + a.shape[-2:]),
                        xp.broadcast_to(b, batch + b.shape[-2:]))
    return x[..., 0] if vec else x


def _solve_triangular(xp, a, b, lower):
    # the general solve of the triangle: cuSOLVER's LU (a trsm would
    # substitute; CuPy has no batched one)
    return _solve(xp, xp.tril(a) if lower else xp.triu(a), b)


#: op name -> ``f(xp, *args, **params)``: the linear algebra host steps, with
#: ``xp`` the array module (CuPy on a device, NumPy in the emulator)
HOST_LINALG = {
    "solve": _solve,
    "solve_triangular": _solve_triangular,
    "inv": lambda xp, a: xp.linalg.inv(a),
    "det": lambda xp, a: xp.linalg.det(a),
    "slogdet": lambda xp, a: xp.linalg.slogdet(a),
    "eigvalsh": lambda xp, a, UPLO: xp.linalg.eigvalsh(a, UPLO=UPLO),
    "cholesky": _cholesky,
    "svdvals": lambda xp, a: xp.linalg.svd(a, compute_uv=False),
    # (no hermitian= in CuPy: the lowering refuses it, see pinv below)
    "pinv": lambda xp, a, rcond, hermitian: xp.linalg.pinv(a, rcond=rcond),
}


def _stable_argsort(xp, d):
    # CuPy's argsort is always stable (some versions take no other kind= than None)
    return xp.argsort(d, kind="stable") if xp is np else xp.argsort(d)


#: step name -> function, for every host step: the linear algebra, and the
#: order of an indexed write's offsets (``indexed_write``)
HOST_STEPS = {**HOST_LINALG, "stable_argsort": _stable_argsort}


def host_step(xp, step, args):
    """The result of host step ``step`` on ``args`` (arrays of ``xp``).
    float32 linear algebra runs in double, as NumPy's does (its
    ``_commonType``); the caller's result buffers cast it back."""
    if step.op in HOST_LINALG:
        args = [a.astype(np.float64) if a.dtype == np.float32 else a for a in args]
    return HOST_STEPS[step.op](xp, *args, **step.params)


CUDA_KERNELS = {n: KERNELS[n] for n in ("sum", "prod", "max", "min", "all", "any",
                                        "concatenate", "count_nonzero", "einsum",
                                        "diagonal_embed", "vecdot")}


cuda_kernel = functools.partial(register_in, CUDA_KERNELS)


class CudaLowering(Lowering):
    """A tape as CUDA kernels plus a launch sequence (see the module docstring)."""

    facet = "cuda"

    def __init__(self, tape, name, tables):
        self.kernel_src = []
        self.steps = []
        self.status = None          # workspace int32 the guards set (allocated on first use)
        super().__init__(tape, name, tables)

    @property
    def kernels(self):
        return CUDA_KERNELS

    def finish(self, name, static):
        if self.lines:       # a C handler wrote host C that no kernel wraps: a bug
            raise AssertionError(f"C statements outside any CUDA kernel: {self.lines[:3]}")
        self.text = "\n".join(self.kernel_src)

    # ------------------------------------------------------------ loops
    def _kernel(self, R, suffix=""):
        name = f"{self.name}_k{R.tag}{suffix}"
        return name, [f"TD_KERNEL void {name}({_KSIG}) {{"]

    def render_region(self, R):
        groups = {}
        for red in R.part_reds:
            kept = tuple(d for d, st in enumerate(red[1].broadcast_strides(R.shape)) if st)
            groups.setdefault(kept, []).append(red)
        parts = list(groups.values()) + ([None] if R.full_reds else [])
        if len(parts) > 1:
            # reductions over different axes: one kernel per kind, each
            # recomputing the loop's values (cheaper than a grid-wide sync);
            # the stores go with the last, so in-place stores cannot feed the
            # recomputation
            for k, reds in enumerate(parts):
                S = copy.copy(R)
                S.tag = f"{R.tag}_{k}"
                S.part_reds = reds or []
                S.full_reds = R.full_reds if reds is None else []
                S.stores = R.stores if k == len(parts) - 1 else []
                self.render_region(S)
            return
        if R.part_reds:
            return self._render_partial(R)
        shape = R.shape
        name, src = self._kernel(R)
        header, hoisted = self.region_header(R)
        src += header
        p = self.tab.p
        n = int(np.prod(shape, dtype=np.int64))
        if not shape:                               # one element: one thread
            src.append("    if (blockIdx.x != 0 || threadIdx.x != 0) return;")
            src += self.region_body(R, hoisted, lambda v: "0", "    ")
            for acc, expr, v, at, how in R.full_reds:
                src.append(f"    {self.ptr(v, const=False)}[0] = {expr};")
            src.append("}")
            self.kernel_src.append("\n".join(src) + "\n")
            self.steps.append(Launch(name, blocks=1))
            return
        for acc, expr, v, at, how in R.full_reds:
            src.append(f"    {ctype(at)} {acc} = {reduce_init(how, at)};")
        count = _pindex(p(n))
        src.append(f"    const int64_t n = P[{count}];")
        src.append("    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; "
                   "t < n; t += (int64_t)gridDim.x * blockDim.x) {")
        index, decompose = self._indexing(R, shape, "t", range(len(shape)))
        src += decompose
        src += self.region_body(R, hoisted, index, "        ")
        src += [f"        {reduce_step(how, acc, expr)};" for acc, expr, v, at, how in R.full_reds]
        src.append("    }")
        if not R.full_reds:
            src.append("}")
            self.kernel_src.append("\n".join(src) + "\n")
            self.steps.append(Launch(name, count=count))
            return
        # first pass: one partial per block; second pass: one block folds them
        parts = [self.new_buffer(None, (RGRID,), at) for _, _, _, at, _ in R.full_reds]
        for j, (acc, expr, v, at, how) in enumerate(R.full_reds):
            src += _block_fold(j, acc, at, how)
            src.append(f"    if (threadIdx.x == 0) {self.ptr(parts[j], const=False)}"
                       f"[blockIdx.x] = s{j}[0];")
        src.append("}")
        fin_name, fin = self._kernel(R, "_fin")
        for j, (acc, expr, v, at, how) in enumerate(R.full_reds):
            fin.append(f"    {ctype(at)} {acc} = {reduce_init(how, at)};")
            fin.append(f"    for (int t = threadIdx.x; t < TD_RGRID; t += TD_BLOCK) "
                       f"{reduce_step(how, acc, f'{self.ptr(parts[j])}[t]')};")
            fin += _block_fold(j, acc, at, how)
            fin.append(f"    if (threadIdx.x == 0) {self.ptr(v, const=False)}[0] = "
                       f"({ctype(v.dtype)})s{j}[0];")
        fin.append("}")
        self.kernel_src += ["\n".join(src) + "\n", "\n".join(fin) + "\n"]
        self.steps += [Launch(name, rgrid=True), Launch(fin_name, blocks=1)]

    def _render_partial(self, R):
        """Partial reductions: a thread per output element, looping over the
        reduced axes in row-major order (deterministic)."""
        shape = R.shape
        kept = [tuple(d for d, st in enumerate(v.broadcast_strides(shape)) if st)
                for _, v, _, _ in R.part_reds]
        if len(set(kept)) != 1:
            raise Unsupported("cuda", "partial reductions over different axes in one loop")
        kept = [d for d in kept[0]]
        # a size-1 axis reduces nothing: keep it with the others
        kept += [d for d in range(len(shape)) if shape[d] == 1 and d not in kept]
        reduced = [d for d in range(len(shape)) if d not in kept]
        name, src = self._kernel(R)
        header, hoisted = self.region_header(R)
        src += header
        p = self.tab.p
        n_out = int(np.prod([shape[d] for d in kept], dtype=np.int64))
        n_red = int(np.prod([shape[d] for d in reduced], dtype=np.int64))
        count = _pindex(p(n_out))
        src.append(f"    const int64_t n = P[{count}];")
        src.append(f"    const int64_t m = {p(n_red)};")
        src.append("    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; "
                   "t < n; t += (int64_t)gridDim.x * blockDim.x) {")
        index, dk = self._indexing(R, shape, "t", kept)
        _, dr = self._indexing(R, shape, "u", reduced)
        src += dk
        for j, (_, _, dt, how) in enumerate(R.part_reds):
            src.append(f"        {ctype(acc_type(dt) if how == 'sum' else dt)} r{j} = "
                       f"{reduce_init(how, dt)};")
        src.append("        for (int64_t u = 0; u < m; u++) {")
        src += ["    " + ln for ln in dr]
        src += self.region_body(R, hoisted, index, "            ",
                                {j: f"r{j}" for j in range(len(R.part_reds))})
        src.append("        }")
        for j, (_, v, dt, _) in enumerate(R.part_reds):
            src.append(f"        p_rd{j}[{index(v)}] = ({ctype(dt)})r{j};")
        src += ["    }", "}"]
        self.kernel_src.append("\n".join(src) + "\n")
        self.steps.append(Launch(name, count=count))

    def _indexing(self, R, shape, var, axes):
        """``(index, lines)``: ``index(view)`` addresses an element from the
        per-axis counters ``i<d>`` that ``lines`` compute from the flat counter
        ``var`` over ``axes`` (row-major); a flat loop uses ``var`` itself."""
        axes = list(axes)
        p = self.tab.p
        if axes == list(range(len(shape))) and region_is_flat(R):
            return (lambda v: var if any(v.broadcast_strides(shape)) else "0"), []
        lines = _counters(p, shape, axes, var)
        stride_p = {}

        def index(v):
            terms = []
            for d, st in enumerate(v.broadcast_strides(shape)):
                if st == 0:
                    continue
                key = (id(v), d)
                if key not in stride_p:
                    stride_p[key] = p(st)
                terms.append(f"i{d} * {stride_p[key]}")
            return " + ".join(terms) or "0"
        return index, lines

    # ------------------------------------------------------------ statuses
    def status_word(self):
        """The int32 in the workspace that failed guards set (the runner zeroes
        it before a call)."""
        if self.status is None:
            # above everything allocated so far, never freed: the host zeroes it
            # before the first kernel, so no earlier kernel may use these bytes
            off = self.arena.top
            self.arena.top += 64
            self.status = View(Buf("ws", offset=off, nbytes=64, dtype=np.dtype(np.int32)), 0,
                               (), (), np.int32)
        return self.status


def _counters(p, shape, axes, var):
    """C lines (in a kernel's loop) setting the counters ``i<d>`` of ``axes``
    of ``shape`` from the flat row-major position ``var``."""
    axes = list(axes)
    lines = [f"        int64_t {var}_r = {var};"]
    for d in reversed(axes[1:]):
        size = p(shape[d])
        lines.append(f"        const int64_t i{d} = {var}_r % {size}; {var}_r /= {size};")
    if axes:
        lines.append(f"        const int64_t i{axes[0]} = {var}_r;")
    return lines


def _pindex(ref):
    """The position in ``P`` of a ``Tables.p`` reference ``"P[k]"``."""
    return int(ref[2:-1])


def _block_fold(j, acc, at, how):
    """Fold every thread's ``acc`` into ``s<j>[0]`` (shared memory, a tree)."""
    return [f"    __shared__ {ctype(at)} s{j}[TD_BLOCK];",
            f"    s{j}[threadIdx.x] = {acc};",
            "    __syncthreads();",
            "    for (int w = TD_BLOCK / 2; w > 0; w >>= 1) {",
            "        if (threadIdx.x < w) "
            f"{reduce_step(how, f's{j}[threadIdx.x]', f's{j}[threadIdx.x + w]')};",
            "        __syncthreads();",
            "    }"]


# ---------------------------------------------------------------- kernels
@cuda_kernel("matmul")
def matmul(low, i, out, args, params):
    """``a @ b`` as a host step: cuBLAS (through CuPy) on views of device memory
    (operands of another dtype are cast first, by a kernel, as in C)."""
    a, b = args
    dt = np_dtype(low.t.dtype(out))
    if kind(dt) == "i":
        return _c_kernels.matmul_by_loops(low, i, out, args)
    if kind(dt) != "f":
        raise Unsupported("matmul", f"dtype {dt} (cuBLAS handles float32/float64)")
    A, B = (low.view_of(s) for s in args)
    A, B = (v if v.dtype == dt else _c_kernels._cast_copy(low, v, dt) for v in (A, B))
    C = low.new_buffer(out, low.t.shape(out), dt)
    low.steps.append(Matmul(A, B, C))


@cuda_kernel("gemm")
def gemm(low, A, B, C):
    """Not an op: einsum's matrix products (see the C entry), as a cuBLAS host
    step on the views."""
    low.steps.append(Matmul(A, B, C))
    return True


@cuda_kernel(*HOST_LINALG)
def linalg(low, i, out, args, params):
    """``solve``/``solve_triangular``/``inv``/``det``/``slogdet``/``cholesky``/``eigvalsh``/
    ``svdvals``/``pinv`` as host steps
    (cuSOLVER through CuPy), batched or not; a singular (or, for cholesky,
    not positive definite) matrix raises LinAlgError as NumPy's does."""
    name = OPS[low.t.op[i]].name
    views = [low.view_of(s) for s in args]
    if any(v.dtype.kind != "f" for v in views):
        raise Unsupported(name, "integer matrices")
    res = [low.new_buffer(o, low.t.shape(o), low.t.dtype(o)) for o in low.t.outs(i)]
    params = {k: v for k, v in params.items() if k != "nout"}
    low.steps.append(Linalg(name, views, res, params))


@cuda_kernel("pinv")
def pinv(low, i, out, args, params):
    """``pinv`` as a host step (``cupy.linalg.pinv``), except NumPy's
    ``hermitian=True`` route, which CuPy does not take."""
    if params["hermitian"]:
        raise Unsupported("pinv", "hermitian=True (NumPy's route through eigh)")
    linalg(low, i, out, args, params)


@cuda_kernel("guard_bool", "guard_int")
def guard(low, i, out, args, params):
    """A recorded branch checked on the device: a mismatch sets the status word
    (the host reads it once after the last launch and replays the interpreter)."""
    name = OPS[low.t.op[i]].name
    x = low.operand(args[0])
    val = repr(x.value) if isinstance(x, Lit) else f"{low.ptr(x)}[0]"
    if name == "guard_bool":
        cond = f"(({val}) != 0) != {int(bool(params['expect']))}"
    else:
        cond = f"(int64_t)({val}) != {low.tab.number(int(params['expect']), np.int64)}"
    st = low.status_word()
    low.n_regions += 1
    kname = f"{low.name}_g{low.n_regions}"
    low.kernel_src.append(
        f"TD_KERNEL void {kname}({_KSIG}) {{\n"
        f"    if (blockIdx.x == 0 && threadIdx.x == 0 && ({cond}) && "
        f"{low.ptr(st, const=False)}[0] == 0) {low.ptr(st, const=False)}[0] = 1;\n}}\n")
    low.steps.append(Launch(kname, blocks=1))


@dataclasses.dataclass
class Loop:
    """A recorded loop (``scan``) driven by the host: each iteration launches the
    body's kernels with its own pointer tables (built for all iterations at
    once and uploaded once per call). Carried values alternate between
    ``carry_a`` and ``carry_b``; ``xs`` are ``("row", view, row_bytes)`` or
    ``("affine", start, step, dtype)``; ``ys`` are ``(view, row_bytes)``; the
    final carry is copied into ``finals`` (``(view, nbytes)``)."""
    steps: list
    trips: int                 # position in P of the trip count
    reverse: bool
    ws_offset: int             # the body's workspace, in the caller's
    status_offset: object      # the body's status word, in its workspace (or None)
    carry_a: list
    carry_b: list
    inv: list
    xs: list
    ys: list
    finals: list
    n_args: int
    n_rets: int

    @functools.cached_property
    def host_steps(self):
        """Whether the body holds host steps or loops, which read each
        iteration's addresses on the host (known per program, not per call)."""
        return any(not isinstance(st, Launch) for st in self.steps)


@cuda_kernel("scan")
def scan(low, i, out, args, params):
    """A loop whose body is lowered once (its kernels join the module) and run
    by the host, one launch sequence per iteration. Correct for any trip
    count; each iteration costs the body's launches (a CUDA graph or a
    persistent kernel would remove that, later). The body may hold host
    steps (matmul, solve) and loops of its own: the runner gives each
    iteration a frame with its operands' addresses."""
    from .loops import scan_operands
    body, trips = params["body"], params["trips"]
    nc, ninv, xs = params["n_carry"], params["n_inv"], params["xs"]
    reverse = params.get("reverse", False)
    low.n_regions += 1
    sub = CudaLowering(body, f"{low.name}_b{low.n_regions}", low.tab)
    low.kernel_src += sub.kernel_src
    ops = scan_operands(low, i, args, params)
    outs, inv, xarr, shapes, dts = ops.outs, ops.inv, ops.xarr, ops.shapes, ops.dts
    bufs_a, bufs_b, ys = ops.bufs_a, ops.bufs_b, ops.ys
    xspec, j = [], 0
    for q, spec in enumerate(xs):
        dt = np_dtype(body.dtype(body.inputs[nc + ninv + q]))
        if spec[0] in ("affine", "counter"):
            xspec.append(("affine", spec[1], spec[2], dt))
            continue
        v = xarr[j]
        j += 1
        if np_dtype(v.dtype) != dt:
            raise Unsupported("scan", f"per-iteration input of dtype {v.dtype} read as {dt}")
        xspec.append(("row", v, int(np.prod(v.shape[1:], dtype=np.int64)) * v.dtype.itemsize))
    off, size = low.arena.alloc(max(sub.arena.top, 1))
    finals = []
    for q in range(nc):
        dst = low.new_buffer(outs[q], shapes[q], dts[q])
        finals.append((dst, int(np.prod(shapes[q], dtype=np.int64)) * dts[q].itemsize))
    trips_p = _pindex(low.tab.p(trips))
    low.steps.append(Loop(
        sub.steps, trips_p, reverse, off, None if sub.status is None else sub.status.buf.offset,
        bufs_a, bufs_b, inv, xspec,
        [(v, int(np.prod(v.shape[1:], dtype=np.int64)) * v.dtype.itemsize) for v in ys],
        finals, len(body.inputs), len(body.outputs)))
    low.arena.release(off, size)


def _sequential(c_handler):
    """The C backend's handler run by one GPU thread: its C statements become
    the body of a one-thread kernel, and each ``return code;`` sets the status
    word instead (a failed guard, an index out of bounds). Array guards use
    it: their comparison is a region (a parallel reduction, rendered as
    usual), and the one thread only tests its flag."""
    def handler(low, i, out, args, params):
        n0 = len(low.lines)
        c_handler(low, i, out, args, params)
        _one_thread(low, n0)
    return handler


def _fail(low, code, then):
    """The C statement that sets the status word to ``code`` unless a failure
    came first (as the C function's first ``return`` wins), then runs
    ``then`` (``return``: this thread stops; ``continue``: its next element)."""
    status = f"{low.ptr(low.status_word(), const=False)}[0]"
    return f"{{ if ({status} == 0) {status} = {code}; {then}; }}"


def _one_thread(low, n0):
    """The C statements a C handler added to ``low.lines`` since ``n0`` as a
    one-thread kernel, launched in their place; each ``return code;`` sets
    the status word instead."""
    body, low.lines[n0:] = low.lines[n0:], []
    if not body:
        return
    if any("return" in ln for ln in body):
        body = [re.sub(r"\breturn ([^;]+);", lambda m: _fail(low, m.group(1), "return"), ln)
                for ln in body]
    low.n_regions += 1
    kname = f"{low.name}_s{low.n_regions}"
    low.kernel_src.append(f"TD_KERNEL void {kname}({_KSIG}) {{\n"
                          "    if (blockIdx.x != 0 || threadIdx.x != 0) return;\n"
                          + "\n".join("    " + ln for ln in body) + "\n}\n")
    low.steps.append(Launch(kname, blocks=1))


CUDA_KERNELS["guard_array"] = _sequential(KERNELS["guard_array"])
# (one thread in row-major order: a parallel version needs a prefix sum of
# the nonzero flags)
CUDA_KERNELS["argwhere"] = _sequential(KERNELS["argwhere"])


def _per_line(low, kind, x, res, lines_axes, along_axes, body, before=(), after=(),
              cap=None, head=()):
    """A kernel with a thread per line: the flat counter ``t`` runs over
    ``lines_axes`` (row-major, so it is also the line's position in the
    result); ``body(ind)`` gives the sequential statements over
    ``along_axes`` (their counters named ``i<d>``), with ``before`` and
    ``after`` around that loop.

    ``cap``: at most that many threads, each taking every ``cap``-th line,
    for kernels with per-thread scratch;
    ``head`` runs once per thread before its lines, with ``tid`` its index
    (below ``cap``)."""
    p = low.tab.p
    shape = x.shape
    low.n_regions += 1
    kname = f"{low.name}_{kind}{low.n_regions}"
    count = _pindex(p(int(np.prod([shape[d] for d in lines_axes], dtype=np.int64))))
    L = [f"TD_KERNEL void {kname}({_KSIG}) {{",
         f"    const {ctype(x.dtype)} *px = {low.ptr(x)};",
         f"    {ctype(res.dtype)} *po = {low.ptr(res, const=False)};",
         f"    const int64_t n = P[{count}];",
         "    const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;",
         "    int64_t stride = (int64_t)gridDim.x * blockDim.x;"]
    if cap is not None:
        # (fewer threads than cap where the grid is smaller: the emulator's)
        L += [f"    if (stride > {p(cap)}) stride = {p(cap)};",
              "    if (tid >= stride) return;"]
    L += ["    " + h for h in head]
    L.append("    for (int64_t t = tid; t < n; t += stride) {")
    L += _counters(p, shape, lines_axes, "t")
    ind = "        "
    L += [ind + ln for ln in before]
    L += loop_nest(p, shape, along_axes, ind, body)
    L += [ind + ln for ln in after]
    L += ["    }", "}"]
    low.kernel_src.append("\n".join(L) + "\n")
    # (with a cap, a thread per capped line: the emulator's one-thread blocks
    # then run every thread's scratch too)
    low.steps.append(Launch(kname, count=count if cap is None else _pindex(p(cap))))


#: bytes of index scratch a sort kernel may take: one thread per line up to
#: this (a thread needs 16 bytes per element of its line), fewer for long lines
SORT_SCRATCH = 32 << 20


@cuda_kernel("sort", "argsort")
def sort_lines(low, i, out, args, params):
    """``np.sort`` / ``np.argsort``: the C backend's stable merge sort
    (``td_argsort_*``, with its check for ties where NumPy's default argsort
    has its own order), a thread per line with its own scratch
    (threads capped by :data:`SORT_SCRATCH`). One long line is sorted by one
    thread: correct, not parallel."""
    x, res, axis, body = _c_kernels.sort_operands(low, i, out, args, params)
    n = max(x.shape[axis], 1)
    keep = [d for d in range(len(x.shape)) if d != axis]
    lines = int(np.prod([x.shape[d] for d in keep], dtype=np.int64))
    cap = max(1, min(lines, SORT_SCRATCH // (16 * n)))
    scratch = low.new_buffer(None, (cap, 2, n), np.dtype(np.int64))
    p = low.tab.p
    fail = _fail(low, 1, "return")           # (as C's return 1)
    _per_line(low, "s", x, res, keep, [], lambda ind: body(ind, fail), cap=cap,
              head=[f"int64_t *idx = {low.ptr(scratch, const=False)} + tid * {p(2 * n)}, "
                    f"*tmp = idx + {p(n)};"])


@cuda_kernel("searchsorted")
def searchsorted(low, i, out, args, params):
    """``np.searchsorted``: a thread per element of ``a`` checks its order
    against the one before (status 1 where ``a`` is not sorted, as in C),
    then a thread per element of ``v`` runs its binary search."""
    a, v, res, unsorted, search = _c_kernels.searchsorted_operands(low, i, out, args, params)
    fail = _fail(low, 1, "return")
    head = [f"const {ctype(a.dtype)} *pa = {low.ptr(a)};"]
    # (the order check's kernel is over ``a``: its px is unused)
    _per_line(low, "o", a, res, [0], [], lambda ind: [f"{ind}if (i0 > 0 && {unsorted('i0')}) "
                                                      f"{fail}"], head=head)
    _per_line(low, "b", v, res, list(range(len(v.shape))), [], search, head=head)


@cuda_kernel("argmax", "argmin")
def argextreme(low, i, out, args, params):
    """``np.argmax`` / ``np.argmin``: a thread per result element, scanning its
    line in row-major order (first extreme wins, a NaN counts as extreme)."""
    name = OPS[low.t.op[i]].name
    x = low.view_of(args[0])
    if x.shape and 0 in x.shape:
        raise Unsupported(name, "an empty array")
    nd = len(x.shape)
    red = list(range(nd)) if params["axis"] is None else [params["axis"] % nd]
    keep = [d for d in range(nd) if d not in red]
    res = low.new_buffer(out, low.t.shape(out), low.t.dtype(out))
    p = low.tab.p
    ct = ctype(x.dtype)
    better = ">" if name == "argmax" else "<"
    off = offset(p, x, range(nd))

    def body(ind):
        return [f"{ind}const {ct} v = px[{off}];",
                f"{ind}if (k == 0 || (best == best && (v {better} best || v != v))) "
                "{ best = v; best_k = k; }",
                f"{ind}k++;"]
    _per_line(low, "a", x, res, keep, red, body,
              before=[f"int64_t k = 0, best_k = 0; {ct} best = 0;"], after=["po[t] = best_k;"])


@cuda_kernel("cumsum", "cumprod", "cummax", "cummin")
def cumulative(low, i, out, args, params):
    """``np.cumsum`` / ``np.cumprod`` / the running extrema along one axis: a
    thread per line, each running the C backend's scan in NumPy's order."""
    name, x, res, axis = _c_kernels.cumulative_operands(low, i, out, args, params)
    nd = len(x.shape)
    p = low.tab.p
    _per_line(low, "c", x, res, [d for d in range(nd) if d != axis], [],
              lambda ind: _c_kernels.scan_body(name, x, res, axis, p, ind))


def _indexed(low, name, x, arrays, params):
    """The ``_advanced_plan`` of op ``name``'s index into view ``x`` with
    index views ``arrays``; a boolean mask becomes its ``nonzero()``, and
    the index arrays of an empty region are bounds-checked, in a one-thread
    kernel first."""
    if not arrays:
        raise Unsupported(name, "no index arrays")
    n0 = len(low.lines)
    plan = _c_kernels._advanced_plan(low, x, params["index"], arrays, name)
    _one_thread(low, n0)
    return plan


def _per_index(low, plan, tag, decls, store, on_bad):
    """A kernel with a thread per element of ``plan``'s indexed region (flat
    position ``t``, row-major): ``decls`` (C declarations), the index arrays
    read and checked (the C kernels' ``indexed_address``), then ``store(src)``
    with ``src`` the element's offset from the plan's base. An index out of
    bounds sets TD_BAD_INDEX (every failing thread writes the same code, and
    only over a zero) and runs ``on_bad``, which ends with ``continue``."""
    adv = plan[2]
    p = low.tab.p
    shape, address, src = _c_kernels.indexed_address(
        p, plan, "        ", _fail(low, "TD_BAD_INDEX", on_bad))
    low.n_regions += 1
    kname = f"{low.name}_{tag}{low.n_regions}"
    count = _pindex(p(int(np.prod(shape, dtype=np.int64))))
    L = [f"TD_KERNEL void {kname}({_KSIG}) {{"] + ["    " + d for d in decls]
    L += [f"    const {ctype(iv.dtype)} *pi{j} = {low.ptr(iv)};"
          for j, (iv, _, _) in enumerate(adv)]
    L.append(f"    const int64_t n = P[{count}];")
    L.append("    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; "
             "t < n; t += (int64_t)gridDim.x * blockDim.x) {")
    L += _counters(p, shape, range(len(shape)), "t")
    L += address
    L += [f"        {store(src)}", "    }", "}"]
    low.kernel_src.append("\n".join(L) + "\n")
    low.steps.append(Launch(kname, count=count))
    return count


@cuda_kernel("gather")
def gather(low, i, out, args, params):
    """``x[index]`` with index arrays: a thread per result element (bounds
    checked, negative indices wrapped; an index out of bounds sets
    TD_BAD_INDEX). Same addressing as the C kernel (``_advanced_plan``)."""
    x = low.view_of(args[0])
    dst = low.new_buffer(out, low.t.shape(out), low.t.dtype(out))
    plan = _indexed(low, "gather", x, [low.view_of(a) for a in args[1:]], params)
    _per_index(low, plan, "x", [f"const {ctype(plan[0].dtype)} *px = {low.ptr(plan[0])};",
                                f"{ctype(dst.dtype)} *pd = {low.ptr(dst, const=False)};"],
               lambda src: f"pd[t] = px[{src}];", "continue")


@cuda_kernel("setitem", "scatter_add")
def indexed_write(low, i, out, args, params):
    """``base[index] = val`` / ``np.add.at(base, index, val)``, in parallel
    and with NumPy's result where indices repeat, without atomics:

    1. a thread per element of the indexed region stores the element
       offset it writes (INT64_MIN for an index out of bounds, which also
       sets TD_BAD_INDEX);
    2. a host step orders the offsets, stably (CuPy's argsort);
    3. a thread per position in that order: the first of each run of equal
       offsets writes that element, its values in the region's order (the
       last one stays, or they add one by one as NumPy's loop adds them:
       the same roundings as the C kernel's sequential loop).
    """
    name, whole, idx, v = _c_kernels.write_operands(low, i, out, args, params)
    plan = _indexed(low, name, whole, idx, params)
    n = int(np.prod(v.shape, dtype=np.int64))          # the region, in order
    dest = low.new_buffer(None, (n,), np.dtype(np.int64))
    order = low.new_buffer(None, (n,), np.dtype(np.int64))
    count = _per_index(low, plan, "w", [f"int64_t *pk = {low.ptr(dest, const=False)};"],
                       lambda src: f"pk[t] = {src};", "pk[t] = INT64_MIN; continue")
    low.steps.append(Linalg("stable_argsort", [dest], [order], checks_status=False))
    low.n_regions += 1
    kname = f"{low.name}_w{low.n_regions}"
    L = [f"TD_KERNEL void {kname}({_KSIG}) {{",
         f"    {ctype(whole.dtype)} *px = {low.ptr(plan[0], const=False)};",
         f"    const {ctype(v.dtype)} *pv = {low.ptr(v)};",
         f"    const int64_t *pk = {low.ptr(dest)}, *po = {low.ptr(order)};",
         f"    const int64_t n = P[{count}];",
         "    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; "
         "t < n; t += (int64_t)gridDim.x * blockDim.x) {",
         "        const int64_t d = pk[po[t]];",
         "        if (d == INT64_MIN || (t > 0 && pk[po[t - 1]] == d)) continue;"]
    if name == "scatter_add":
        L.append("        for (int64_t u = t; u < n && pk[po[u]] == d; u++) "
                 + _c_kernels.write_statement(name, whole.dtype, "px[d]", "pv[po[u]]"))
    else:                       # the run's last value is the one that stays
        L += ["        int64_t u = t;",
              "        while (u + 1 < n && pk[po[u + 1]] == d) u++;",
              "        px[d] = pv[po[u]];"]
    L += ["    }", "}"]
    low.kernel_src.append("\n".join(L) + "\n")
    low.steps.append(Launch(kname, count=count))


class CudaProgram:
    """A tape lowered to CUDA: kernel source, launch steps and run-time tables.

    Raises :class:`Unsupported` when the tape holds an op without a CUDA
    lowering. Nothing here needs CuPy or a GPU; :mod:`.cuda_runtime` runs it.
    """

    def __init__(self, tape):
        from ..passes.dce import compact
        from .lower import Tables
        tape = compact(tape)
        tab = Tables()
        low = CudaLowering(tape, "@FN@", tab)
        digest = hashlib.sha256(low.text.encode()).hexdigest()[:16]
        self.name = f"tdk_{digest}"
        self.text = low.text.replace("@FN@", self.name)
        self.steps = _renamed(low.steps, self.name)
        self.kernel_names = list(dict.fromkeys(_kernel_names(self.steps)))
        self.P = np.array(tab.P or [0], dtype=np.int64)
        self.K = np.frombuffer(bytes(tab.K) + b"\0" * 8, dtype=np.uint8).copy()
        self.ws_bytes = max(low.arena.top, 64)
        self.status_offset = None if low.status is None else low.status.buf.offset
        self.in_specs = [(tape.shape(s), np_dtype(tape.dtype(s))) for s in tape.inputs]
        self.out_specs = [(tape.shape(s), np_dtype(tape.dtype(s))) for s in tape.outputs]


def _renamed(steps, name):
    """``steps`` with the placeholder function name replaced (loops included)."""
    out = []
    for st in steps:
        if isinstance(st, Launch):
            st = dataclasses.replace(st, kernel=st.kernel.replace("@FN@", name))
        elif isinstance(st, Loop):
            st = dataclasses.replace(st, steps=_renamed(st.steps, name))
        out.append(st)
    return out


def _kernel_names(steps):
    for st in steps:
        if isinstance(st, Launch):
            yield st.kernel
        elif isinstance(st, Loop):
            yield from _kernel_names(st.steps)


def module_source(programs):
    """One CUDA module holding the kernels of ``programs`` (CudaProgram objects)."""
    seen = {}
    for pr in programs:
        seen.setdefault(pr.name, pr.text)
    return '#include "tapediff_cuda.cuh"\n\n' + "\n".join(seen[n] for n in sorted(seen))


def csrc_dir():
    from ..runtime.compiler import _csrc_dir
    return _csrc_dir()


def nvcc_ptx(source, arch=None):
    """Compile ``source`` with ``nvcc --ptx`` (a check that needs no GPU).

    Returns ``(ok, messages)``; ``ok`` is None when nvcc is not on PATH."""
    import shutil
    import subprocess
    import tempfile
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None, "nvcc not found on PATH"
    with tempfile.TemporaryDirectory() as d:
        src = f"{d}/module.cu"
        with open(src, "w") as f:
            f.write(source)
        cmd = [nvcc, "--ptx", "-std=c++17", "-I", csrc_dir(), "-o", f"{d}/module.ptx", src]
        if arch:
            cmd[2:2] = [f"-arch={arch}"]
        r = subprocess.run(cmd, capture_output=True, text=True)
    return r.returncode == 0, r.stderr


__all__ = ["CudaLowering", "CUDA_KERNELS", "CudaProgram", "HOST_LINALG", "Launch", "Linalg", "Loop",
           "Matmul",
           "module_source",
           "nvcc_ptx"]
_ = _c_kernels          # the C handlers must be registered before CUDA_KERNELS copies them
