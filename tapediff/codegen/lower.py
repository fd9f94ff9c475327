"""Lower a tape to one C function: fusion, buffer planning and kernels.

:class:`Lowering` walks a tape once, in order, and renders C statements:

* **Fused loops.** Elementwise instructions with the same iteration shape
  join the open :class:`Region`; each becomes a local variable of one loop
  nest, and only values read outside the region are stored. A ``sum`` of a
  region value, and a basic-index write of one (``u[1:-1] = ...``), join the
  region too: a gradient's bias reduction or a stencil update costs no extra
  pass. Standalone kernels (matmul, reductions, loops, guards) that do not
  read the open region are emitted before it, so they do not break it up.
* **Buffers.** Every materialised value gets workspace memory (a byte offset
  in one arena) or, for a tape output, the caller's output array. Memory is
  recycled only between kernels, never inside one, and a write updates its
  base in place only when nothing reads the base afterwards and no pending
  loop reads the base at another index (an explicit stencil therefore never
  turns into Gauss-Seidel).
* **Sizes at run time.** Shapes, strides, offsets, trip counts and numeric
  constants are entries of the ``P`` (int64) and ``K`` (bytes) tables passed
  per call; the source holds only the program's structure, so a new batch
  size re-uses the compiled module.

Anything without a C lowering raises :class:`Unsupported`; the caller then
replays that tape with the interpreter.
"""
import math

import numpy as np

from ..ops.elementwise import UFUNC_OPS
from ..ops.reduce import acc_dtype
from ..ops.registry import OPS
from . import values as V
from .values import Buf, Lit, Local, Pending, View, ctype, kind, np_dtype

_UFUNC_OF = {op.name: uf for uf, op in UFUNC_OPS.items()}
_VIEW_OPS = {"getitem", "reshape", "transpose", "broadcast_to", "diagonal", "stop_gradient"}
_ALIGN = 64
# Loops whose iterations touch disjoint elements are marked so: a fused loop
# reads and writes many arrays, more pairs than gcc will check for overlap at
# run time (10), and it would otherwise not vectorise them. The buffer planner
# guarantees the independence (see Lowering.write and can_update).
_SIMD = "#pragma omp simd"


class Unsupported(Exception):
    """The tape holds an instruction the C backend cannot lower (op name in ``op``)."""

    def __init__(self, op, why=""):
        super().__init__(f"{op}: {why}" if why else op)
        self.op = op


class Tables:
    """The run-time tables shared by a function and its loop bodies.

    ``P`` holds int64 sizes, strides and offsets; ``K`` the constants (numbers
    as 8-byte values, arrays at 64-byte alignment). The renderer refers to
    entries by position, so the source is independent of the values."""

    def __init__(self):
        self.P = []
        self.K = bytearray()

    def p(self, v):
        self.P.append(int(v))
        return f"P[{len(self.P) - 1}]"

    def k_bytes(self, data, align=8):
        pad = (-len(self.K)) % align
        self.K += b"\0" * pad
        off = len(self.K)
        self.K += data
        return off

    def number(self, value, dt):
        """C expression reading a number constant, as type ``dt``."""
        if kind(dt) == "f":
            off = self.k_bytes(np.float64(value).tobytes())
            raw = f"*(const double *)(K + {self.p(off)})"
        else:       # bool: NumPy's truth value (0.25 is True), not int(0.25)
            v = bool(value) if np_dtype(dt).kind == "b" else value
            off = self.k_bytes(np.int64(v).tobytes())
            raw = f"*(const int64_t *)(K + {self.p(off)})"
        return f"(({ctype(dt)}){raw})"


class Arena:
    """Workspace allocator: first fit among freed blocks, else bump."""

    def __init__(self):
        self.top = 0
        self.free = []       # (offset, nbytes)

    def alloc(self, nbytes):
        nbytes = max(_ALIGN, -(-nbytes // _ALIGN) * _ALIGN)
        for j, (off, n) in enumerate(self.free):
            if n >= nbytes:
                del self.free[j]
                if n > nbytes:
                    self.free.append((off + nbytes, n - nbytes))
                return off, nbytes
        off = self.top
        self.top += nbytes
        return off, nbytes

    def release(self, off, nbytes):
        self.free.append((off, nbytes))


class Region:
    """An open fused loop over ``shape``."""

    def __init__(self, shape, tag):
        self.shape = tuple(shape)
        self.tag = tag
        self.members = set()
        self.body = []          # C statements (locals) in order
        self.locals = {}        # slot -> local name
        self.loads = []         # (name, View)
        self.stores = []        # (expr, View, add)
        self.full_reds = []     # (acc name, expr, View out, acc dtype, kind)
        self.part_reds = []     # (expr, View over shape, dtype, kind)
        self.pending = []       # slots whose values exist once the loop has run
        self.consts = {}        # name -> (C expression, dtype), read before the loop

    def constant(self, expr, dt):
        """A name for a constant read once before the loop: the compiler cannot
        hoist reads of the constants table itself (stores might alias it)."""
        for name, (e, _) in self.consts.items():
            if e == expr:
                return name
        name = f"c{len(self.consts)}"
        self.consts[name] = (expr, dt)
        return name

    def load(self, view):
        for name, v in self.loads:
            if v.same(view) and v.dtype == view.dtype:
                return name
        name = f"ld{len(self.loads)}"
        self.loads.append((name, view))
        return name

    def reads(self, buf):
        return [v for _, v in self.loads if v.buf is buf]


class Lowering:
    """Render one tape as the body of a C function (see the module docstring).

    ``name`` is the function's name; ``tables`` the shared run-time tables.
    After construction, :attr:`text` is the C function (and :attr:`helpers`
    the loop bodies it calls) and :attr:`arena_bytes` its workspace size.
    """

    #: which spelling of an op this target uses (``op.c``; the CUDA target's is ``op.cuda``)
    facet = "c"

    def __init__(self, tape, name, tables, static=False, donate=None, owned=()):
        self.t = tape
        # inputs whose memory the caller gives up (a loop body's carried values:
        # the loop's own buffers, refilled from the outputs of every iteration),
        # so they may be written in place as workspace is
        self.owned = frozenset(owned)
        self.name = name
        self.tab = tables
        self.lines = []
        self.helpers = []
        self.arena = Arena()
        self.cur = None
        self.n_regions = 0
        self.waiting = []       # open loops set aside while a scalar op runs before them
        self.live = []          # workspace buffers
        self.trip_params = []   # P entries holding trip counts of top-level loops
        n = len(tape)
        self.order = schedule(tape)
        self.pos = 0                # position in ``order`` of the instruction being lowered
        self.last = [-1] * tape.n_slots     # position of each slot's last read
        self.readers = [[] for _ in range(tape.n_slots)]
        for pos, i in enumerate(self.order):
            for a in tape.args[tape.argp[i]:tape.argp[i + 1]]:
                self.last[a] = pos
                self.readers[a].append(i)
        self.out_index = {}
        for k, s in enumerate(tape.outputs):
            self.last[s] = n
            self.out_index.setdefault(s, k)
        self.val = [None] * tape.n_slots
        self.in_bufs = []
        for k, s in enumerate(tape.inputs):
            self._check_type(s, "an input")
            self.in_bufs.append(Buf("in", k, dtype=tape.dtype(s)))
            self.set_view(s, View.whole(self.in_bufs[-1], tape.shape(s), tape.dtype(s)))
        self._init_donation(donate)
        for s, v in tape.consts.items():
            self.val[s] = self._const(s, v)
        for pos, i in enumerate(self.order):
            self.pos = pos
            self.instr(i)
        self.pos = len(self.order)          # everything is lowered: no reader comes later
        self.close()
        self.finish_outputs()
        self.finish(name, static)
        self.arena_bytes = self.arena.top

    @property
    def kernels(self):
        """op name -> handler for the ops that are not fused loops."""
        return KERNELS

    def finish(self, name, static):
        """Set :attr:`text`: the C function."""
        # loop bodies are inlined into their loop: the pointer tables they are
        # called with become registers, and nothing is spilled per iteration
        qual = "static inline __attribute__((always_inline)) " if static else ""
        self.text = (f"{qual}int {name}(const int64_t *P, char *W, const char *K, "
                     f"void *const *I, void *const *O) {{\n"
                     + "\n".join("    " + ln for ln in self.lines)
                     + "\n    return 0;\n}\n")

    # ------------------------------------------------------------ values
    def _check_type(self, s, what):
        if ctype(self.t.dtype(s)) is None:
            raise Unsupported("dtype", f"{what} of dtype {np_dtype(self.t.dtype(s))}")

    def _const(self, s, v):
        if isinstance(v, (bool, int, float)) and not isinstance(v, np.generic):
            return Lit(v, type(v), ())
        a = np.asarray(v)
        if ctype(a.dtype) is None:
            raise Unsupported("dtype", f"a constant of dtype {a.dtype}")
        if a.ndim == 0:
            return Lit(a.item(), a.dtype, ())
        off = self.tab.k_bytes(np.ascontiguousarray(a).tobytes(), _ALIGN)
        return View(Buf("k", offset=off, nbytes=a.nbytes, dtype=a.dtype), 0, a.shape,
                    V.c_contiguous_strides(a.shape), a.dtype)

    def set_view(self, s, view):
        self.val[s] = view
        view.buf.slots.append(s)

    def operand(self, s):
        """The value of slot ``s`` for a kernel outside the open region (closing
        the region first when ``s`` is still being computed by it)."""
        v = self.val[s]
        if isinstance(v, (Local, Pending)) and v.region is self.cur:
            self.close()
            v = self.val[s]
        if v is None:
            raise AssertionError(f"slot {s} has no value (a planning bug)")
        return v

    def view_of(self, s):
        """``s`` as memory (a literal is filled into a new buffer)."""
        v = self.operand(s)
        if isinstance(v, Lit):
            out = self.new_buffer(None, v.shape, v.dtype)
            self.emit_copy(v, out)
            v = out
            self.set_view(s, v)
        return v

    def contiguous(self, s):
        v = self.view_of(s)
        if not v.is_contiguous():
            out = self.new_buffer(None, v.shape, v.dtype)
            self.emit_copy(v, out)
            v = out
            self.set_view(s, v)
        return v

    # ------------------------------------------------------------ donated inputs
    def _init_donation(self, donate):
        """``donate`` maps output k -> input j: the caller passes the same array
        for both (an optimizer state updated in place). An output is written
        there only once nothing reads the input any more (else it is computed
        in workspace and copied at the end), and never before an instruction
        that can fail, so a failed guard or a singular solve leaves the inputs
        as they were for the interpreter's replay."""
        t = self.t
        self.donate = dict(donate or {})
        for k, j in self.donate.items():
            so, si = t.outputs[k], t.inputs[j]
            if (t.shape(so), np_dtype(t.dtype(so))) != (t.shape(si), np_dtype(t.dtype(si))):
                raise ValueError(f"donate: output {k} ({t.shape(so)}, {np_dtype(t.dtype(so))}) "
                                 f"cannot be written into input {j} ({t.shape(si)}, "
                                 f"{np_dtype(t.dtype(si))})")
        self.posof = {i: pos for pos, i in enumerate(self.order)}
        # may_fail[pos]: an instruction at or after ``pos`` can return a status
        self.may_fail = [False] * (len(self.order) + 1)
        for pos in range(len(self.order) - 1, -1, -1):
            self.may_fail[pos] = (self.may_fail[pos + 1]
                                  or OPS[t.op[self.order[pos]]].name in _MAY_FAIL)
        self.output_slots = set(t.outputs)

    def _may_overwrite(self, k, region=None, target=None):
        """Whether donated output ``k`` may be written now: by ``region`` (a loop
        being rendered, storing ``target``) or, without one, by the instruction
        being lowered, ahead of the open loop."""
        j = self.donate[k]
        buf = self.in_bufs[j]
        if self.may_fail[self.pos] or any(s in self.output_slots for s in buf.slots):
            return False
        for s in buf.slots:
            for r in self.readers[s]:
                if (region is None or r not in region.members) and self.posof[r] >= self.pos:
                    return False
        if any(R.reads(buf) for R in self.waiting):
            return False
        if region is None:
            return self.cur is None or not self.cur.reads(buf)
        if target is None:
            return not region.reads(buf)
        mine = fit(View(buf, target.offset, target.shape, target.strides, target.dtype),
                   target.shape, region.shape)
        return all(r.offset == mine.offset and r.broadcast_strides(region.shape)
                   == mine.broadcast_strides(region.shape) for r in region.reads(buf))

    def new_buffer(self, slot, shape, dtype, region=None):
        """Fresh memory for ``slot``: the caller's output array when ``slot`` is an
        output (first occurrence), else workspace. ``region`` is the loop that
        stores it, when a loop does."""
        dt = np_dtype(dtype)
        k = self.out_index.get(slot) if slot is not None else None
        if k is not None and k in self.donate and not self._may_overwrite(
                k, region, View.whole(Buf("out", k), shape, dt) if region else None):
            k = None                          # workspace now, copied at the end
        elif k is not None:
            del self.out_index[slot]
        if k is not None:
            view = View.whole(Buf("out", k, dtype=dt), shape, dt)
        else:
            nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            off, size = self.arena.alloc(nbytes)
            buf = Buf("ws", offset=off, nbytes=size, dtype=dt)
            self.live.append(buf)
            view = View.whole(buf, shape, dt)
        if slot is not None:
            self.set_view(slot, view)
        return view

    def release_dead(self, i):
        """Return workspace no slot reads at or after position ``i`` (only
        between kernels: never while a region that might read it is open)."""
        if self.cur is not None:
            return
        keep = []
        for b in self.live:
            if all(self.last[s] < i for s in b.slots):
                self.arena.release(b.offset, b.nbytes)
            else:
                keep.append(b)
        self.live = keep

    def can_update(self, s, i, region_reads=False):
        """Whether instruction ``i`` (the one being lowered) may write slot
        ``s``'s memory in place. ``region_reads``: the caller orders the write
        after the open region's reads of that memory itself (``write`` keeps
        the region only where it reads the written elements at their own
        index, and closes it otherwise)."""
        i = self.pos
        v = self.val[s]
        if not isinstance(v, View) or not (
                v.buf.where == "ws" or (v.buf.where == "in" and v.buf.index in self.owned)):
            return False
        if any(self.last[x] > i for x in v.buf.slots):
            return False
        return region_reads or self.cur is None or not self.cur.reads(v.buf)

    # ------------------------------------------------------------ pointers
    def ptr(self, view, const=True):
        """C expression of a typed pointer to a view's first element."""
        b = view.buf
        base = {"in": f"(char *)I[{b.index}]", "out": f"(char *)O[{b.index}]",
                "ws": f"(W + {self.tab.p(b.offset)})",
                "k": f"(char *)(K + {self.tab.p(b.offset)})"}[b.where]
        ct = ctype(view.dtype)
        q = "const " if const else ""
        off = f" + {self.tab.p(view.offset)}" if view.offset else ""
        return f"(({q}{ct} *)({base}){off})"

    # ------------------------------------------------------------ instructions
    def instr(self, i):
        t = self.t
        op, out, args, params = t.instr(i)
        self.release_dead(self.pos)
        name = op.name
        if out >= 0:
            for o in t.outs(i):
                self._check_type(o, f"the result of {name}")
        if name in _VIEW_OPS:
            return self.view(i, op, out, args, params)
        if name == "full":
            self.val[out] = Lit(params["fill"], np_dtype(params["dtype"]), params["shape"])
            return
        if name in ("setitem", "scatter_add") and len(args) == 2:
            return self.write(i, out, args, params, add=name == "scatter_add")
        if name == "sum" and self._joins_as_reduction(args[0]):
            return self.fused_sum(i, out, args[0], params)
        if name == "matmul" and self.matmul_as_loop(i, out, args):
            return
        if getattr(op, self.facet) is not None or name in ("where", "astype", "copy", "round"):
            return self.elementwise(i, op, out, args, params)
        handler = self.kernels.get(name)
        if handler is None:
            raise Unsupported(name, f"no {self.facet.upper()} lowering")
        handler(self, i, out, args, params)

    # ------------------------------------------------------------ fused loops
    def region_for(self, shape, args):
        """The open region when an instruction of output ``shape`` can join it
        (same elements in the same row-major order: shapes equal up to size-1
        axes, so ``x.reshape(1, n)`` joins a loop over ``(n,)``), else a new one."""
        R = self.cur
        if R is not None and (canon(R.shape) != canon(shape) or any(
                isinstance(self.val[a], Pending) and self.val[a].region is R for a in args)):
            self.close()
            R = None
        if R is None:
            self.n_regions += 1
            R = self.cur = Region(shape, self.n_regions)
        return R

    def region_operand(self, R, s, dt, shape):
        """C expression of slot ``s`` inside region ``R``, cast to dtype ``dt``,
        for an instruction whose output has ``shape`` (NumPy broadcasting)."""
        v = self.val[s]
        if isinstance(v, Local):
            expr, have = v.name, self.t.dtype(s)
        elif isinstance(v, Lit):
            return R.constant(self.tab.number(v.value, dt), dt)
        else:
            expr, have = R.load(fit(v, shape, R.shape)), v.dtype
        return cast(expr, have, dt)

    def elementwise(self, i, op, out, args, params):
        t = self.t
        shape = t.shape(out)
        out_dt = np_dtype(t.dtype(out))
        in_dts = self._loop_dtypes(op, args, out_dt, params)
        # Scalar arithmetic that does not read the open loop runs before it, as
        # a kernel would, instead of splitting it (a flag computed from the loss
        # and then used by an update loop that is already open).
        outer = self.cur
        if outer is not None and shape == () and canon(outer.shape) != () and not any(
                isinstance(self.val[a], (Local, Pending)) and self.val[a].region is outer
                for a in args):
            self.cur = None
            self.waiting.append(outer)      # still to run: _may_overwrite must see it
            try:
                self.elementwise(i, op, out, args, params)
                self.close()
            finally:
                self.waiting.pop()
                self.cur = outer
            return
        R = self.region_for(shape, args)
        if op.name == "power" and isinstance(self.val[args[1]], Lit):
            expr = self._power_literal(R, args, in_dts)
        else:
            ops = [self.region_operand(R, a, dt, shape) for a, dt in zip(args, in_dts)]
            expr = self._spell(op, ops, in_dts, params)
        if op.name == "astype":
            expr = cast(expr, in_dts[0], out_dt)
        elif out_dt.kind == "b" and op.name != "copy":
            expr = f"({expr} != 0)"     # C comparisons and isnan() give ints, not 0/1 bytes
        name = f"v{out}"
        R.body.append(f"const {ctype(out_dt)} {name} = {expr};")
        R.members.add(i)
        R.locals[out] = name
        self.val[out] = Local(R, name)

    def _loop_dtypes(self, op, args, out_dt, params):
        t = self.t
        name = op.name
        if name in ("copy", "astype", "round"):
            return [np_dtype(t.dtype(args[0]))]
        if name == "where":
            return [np.dtype(np.bool_), out_dt, out_dt]
        uf = _UFUNC_OF[name]
        avals = tuple(np.dtype(np.bool_) if t.dtype(a) is bool else t.dtype(a) for a in args)
        if all(isinstance(d, type) for d in avals):    # all weak: NumPy gives object
            avals = tuple(np_dtype(d) for d in avals)
        try:
            dts = uf.resolve_dtypes(avals + (None,) * uf.nout)
        except TypeError as e:
            raise Unsupported(name, str(e)) from None
        out = [np_dtype(d) for d in dts[:uf.nin]]
        for d in out:
            if ctype(d) is None:      # e.g. signbit of int8 computes in float16
                raise Unsupported(name, f"a {d} loop")
        return out

    def _spell(self, op, ops, in_dts, params):
        name = op.name
        if name in ("copy", "astype"):
            return ops[0]
        if name == "where":
            return f"({ops[0]} ? {ops[1]} : {ops[2]})"
        dt = in_dts[0]
        if name == "round":
            d = params["decimals"]
            if kind(dt) != "f":
                if d < 0:
                    raise Unsupported("round", "negative decimals of integers")
                return ops[0]
            f = "f" if dt == np.float32 else ""
            return f"rint{f}({ops[0]})" if d == 0 else f"td_round({ops[0]}, {10.0 ** d!r})"
        c = getattr(op, self.facet)
        if isinstance(c, dict):
            c = c.get(kind(dt))
        if c is None:
            raise Unsupported(name, f"no C spelling for dtype {dt}")
        return c.format(*ops, T=ctype(dt), f="f" if dt == np.float32 else "")

    def _power_literal(self, R, args, in_dts):
        """``x ** c`` for a constant ``c``: small integer powers become products
        (vector pow is slower than NumPy's), others call pow."""
        x = self.region_operand(R, args[0], in_dts[0], self.t.shape(args[0]))
        c = self.val[args[1]].value
        dt = in_dts[0]
        f = "f" if dt == np.float32 else ""
        if kind(dt) == "f":
            if c == 2:
                return f"({x} * {x})"
            if c == 3:
                return f"({x} * {x} * {x})"
            if c == 4:
                return f"(({x} * {x}) * ({x} * {x}))"
            if c == 1:
                return x
            if c == 0.5:
                return f"sqrt{f}({x})"
            if c == -1:
                return f"(({ctype(dt)})1 / {x})"
            return f"pow{f}({x}, {R.constant(self.tab.number(c, dt), dt)})"
        if c < 0:
            raise Unsupported("power", "negative integer powers of integers")
        return f"td_ipow({x}, {R.constant(self.tab.number(c, dt), dt)})"

    def _joins_as_reduction(self, x):
        v = self.val[x]
        return isinstance(v, Local) and v.region is self.cur

    def matmul_as_loop(self, i, out, args):
        """Products BLAS is poor at, as fused loops: a dot product of vectors
        (a sum of products that joins the open loop) and an outer product
        (``k == 1``: elementwise). Returns False for everything else."""
        t = self.t
        a, b = args
        sa, sb = t.shape(a), t.shape(b)
        dt = np_dtype(t.dtype(out))
        if kind(dt) != "f":
            return False
        if len(sa) == 1 and len(sb) == 1:
            R = self.region_for(sa, args)
            x, y = (self.region_operand(R, s, dt, sa) for s in args)
            view = self.new_buffer(out, (), dt)
            self.add_reduction(R, "sum", f"({x} * {y})", view, (0,))
            R.members.add(i)
            R.pending.append(out)
            self.val[out] = Pending(R, lambda: view)
            return True
        if len(sa) == 2 and len(sb) == 2 and sa[1] == 1:
            shape = t.shape(out)
            self.operand(a)             # closes the open loop if it still computes them
            self.operand(b)
            R = self.region_for(shape, [])
            x = self.region_operand(R, a, dt, shape)
            y = self.region_operand(R, b, dt, shape)
            name = f"v{out}"
            R.body.append(f"const {ctype(dt)} {name} = {x} * {y};")
            R.members.add(i)
            R.locals[out] = name
            self.val[out] = Local(R, name)
            return True
        return False

    def fused_sum(self, i, out, x, params):
        R = self.cur
        view = self.new_buffer(out, self.t.shape(out), self.t.dtype(out))
        self.add_reduction(R, "sum", cast(R.locals[x], self.t.dtype(x), view.dtype), view,
                           map_axes(self.t.shape(x), params["axis"], R.shape))
        R.members.add(i)
        R.pending.append(out)
        self.val[out] = Pending(R, lambda: view)

    def write(self, i, out, args, params, add):
        """``base[index] = val`` (or ``+=``) through the view ``chain``: a store
        (accumulation) in a region over the written part."""
        base, val = args
        bv = self.operand(base)
        vv = self.val[val]
        if isinstance(vv, Pending) and vv.region is self.cur:
            self.close()
            vv = self.val[val]
            bv = self.operand(base)
        idx = params["index"]
        chain = params["chain"]

        def target_of(whole):
            from ..ops.indexing import apply_chain
            v = whole.apply(lambda a: V.basic_index(apply_chain(a, chain), idx))
            if v is None:
                raise Unsupported("setitem", "a write through a view that needs a copy")
            return v

        inplace = isinstance(bv, View) and self.can_update(base, i, region_reads=True)
        if inplace:
            tgt = target_of(bv)
            reads = [vv] if isinstance(vv, View) else []
            if any(r.buf is tgt.buf and not r.same(tgt) for r in reads):
                inplace = False
        if inplace:
            whole = bv
            self.set_view(out, bv)
        else:
            whole = self.new_buffer(out, self.t.shape(out), self.t.dtype(out))
            self.emit_copy(bv, whole)
            tgt = target_of(whole)
        R = self.cur
        if R is not None and (canon(R.shape) != canon(tgt.shape) or any(
                not r.same(fit(tgt, tgt.shape, R.shape)) for r in R.reads(tgt.buf))):
            self.close()
        R = self.region_for(tgt.shape, [val])
        expr = self.region_operand(R, val, tgt.dtype, tgt.shape)
        R.stores.append((expr, fit(tgt, tgt.shape, R.shape), add))
        R.members.add(i)
        R.pending.append(out)
        view = self.val[out]
        self.val[out] = Pending(R, lambda: view)

    def view(self, i, op, out, args, params):
        x = args[0]
        v = self.val[x]
        if op.name == "reshape":
            shape = tuple(params["shape"])

            def fn(a):
                return a.reshape(shape, copy=False)
        elif op.name == "getitem":
            def fn(a):
                return V.basic_index(a, params["index"])
        else:
            def fn(a):
                return op.forward(a, **params)
        if isinstance(v, Lit):
            self.val[out] = Lit(v.value, v.dtype, self.t.shape(out))
        elif isinstance(v, Local) and _keeps_order(op.name, self.t.shape(x),
                                                   self.t.shape(out), params):
            v.region.locals[out] = v.name         # the same element, another shape
            v.region.members.add(i)
            self.val[out] = Local(v.region, v.name)
        elif isinstance(v, (Local, Pending)):
            R = v.region

            def resolve():
                return self._view_or_copy(x, fn)
            R.pending.append(out)
            self.val[out] = Pending(R, resolve)
        else:
            self.set_view(out, self._view_or_copy(x, fn))

    def _view_or_copy(self, x, fn):
        nv = self.val[x].apply(fn)
        if nv is None:
            nv = self.contiguous(x).apply(fn)
        return nv

    def close(self):
        """Render the open region, store the values read after it, and settle
        its pending results."""
        R = self.cur
        if R is None:
            return
        self.cur = None
        stores = list(R.stores)
        for s, name in R.locals.items():
            outside = s in self.out_index or any(r not in R.members for r in self.readers[s])
            if outside:
                view = self.new_buffer(s, self.t.shape(s), self.t.dtype(s), region=R)
                stores.append((name, fit(view, view.shape, R.shape), False))
            else:
                self.val[s] = None
        R.stores = stores
        self.render_region(R)
        for s in R.pending:
            res = self.val[s].resolve()
            self.val[s] = res
            if s not in res.buf.slots:
                res.buf.slots.append(s)

    def emit_copy(self, src, dst):
        """Render ``dst[...] = src`` (a View or a Lit broadcast to ``dst``) now."""
        self.n_regions += 1
        R = Region(dst.shape, self.n_regions)
        if isinstance(src, Lit):
            expr = R.constant(self.tab.number(src.value, dst.dtype), dst.dtype)
        else:
            expr = cast(R.load(src), src.dtype, dst.dtype)
        R.stores.append((expr, dst, False))
        self.render_region(R)

    # ------------------------------------------------------------ rendering a loop
    def render_region(self, R):
        """Append the C of region ``R``: one loop nest (or one flat loop when
        every operand is contiguous over the shape or a broadcast scalar)."""
        shape = R.shape
        nd = len(shape)
        flat = not R.part_reds and region_is_flat(R)
        # no sizes in the source (comments included): they are run-time parameters
        L = [f"{{ /* loop {R.tag}: {len(shape)}-d{', flat' if flat else ''} */"]
        header, hoisted = self.region_header(R)
        L += header
        for j, (_, v, dt, how) in enumerate(R.part_reds):
            size = int(np.prod([n for n, st in zip(shape, v.strides) if st], dtype=np.int64))
            L.append(f"    for (int64_t z = 0; z < {self.tab.p(size)}; z++) "
                     f"p_rd{j}[z] = {reduce_init(how, dt)};")

        def body(index, ind, red_into=None):
            return self.region_body(R, hoisted, index, ind, red_into)

        def flat_index(var):
            return lambda v: var if any(v.broadcast_strides(shape)) else "0"

        if nd == 0:
            L += body(flat_index("0"), "    ")
            for acc, expr, v, at, how in R.full_reds:
                L.append(f"    {self.ptr(v, const=False)}[0] = {expr};")
            L.append("}")
            self.lines += L
            return
        for acc, expr, v, at, how in R.full_reds:
            L.append(f"    {ctype(at)} {acc} = {reduce_init(how, at)};")
        if flat and R.full_reds and all(r[4] == "sum" for r in R.full_reds):
            L += self._lanes(R, body, flat_index("i"), "i",
                             self.tab.p(int(np.prod(shape, dtype=np.int64))), "    ")
        elif flat:
            L.append(f"    const int64_t n = {self.tab.p(int(np.prod(shape, dtype=np.int64)))};")
            if not R.full_reds:
                L.append(f"    {_SIMD}")
            L.append("    for (int64_t i = 0; i < n; i++) {")
            L += body(flat_index("i"), "        ")
            L += [f"        {reduce_step(how, acc, expr)};"
                  for acc, expr, v, at, how in R.full_reds]
            L.append("    }")
        else:
            L += self._nest(R, body, shape)
        for acc, expr, v, at, how in R.full_reds:
            L.append(f"    {self.ptr(v, const=False)}[0] = ({ctype(v.dtype)}){acc};")
        L.append("}")
        self.lines += L

    def region_header(self, R):
        """The declarations before region ``R``'s loop (constants, pointers,
        values read once) and the set of loads read once there."""
        shape = R.shape
        L = [f"    const {ctype(dt)} {name} = {expr};" for name, (expr, dt) in R.consts.items()]
        # A value broadcast over the whole loop is read once, before it: the
        # tape's semantics read it before any store of the loop anyway (in-place
        # stores never target a buffer the loop reads at another index), and a
        # load left inside would make gcc re-read it and check aliasing.
        hoisted = {name for name, v in R.loads if shape and not any(v.broadcast_strides(shape))}
        for name, v in R.loads:
            if name in hoisted:
                L.append(f"    const {ctype(v.dtype)} {name} = {self.ptr(v)}[0];")
            else:
                L.append(f"    const {ctype(v.dtype)} *p_{name} = {self.ptr(v)};")
        for j, (_, v, _) in enumerate(R.stores):
            L.append(f"    {ctype(v.dtype)} *p_st{j} = {self.ptr(v, const=False)};")
        for j, (_, v, dt, how) in enumerate(R.part_reds):
            L.append(f"    {ctype(dt)} *p_rd{j} = {self.ptr(v, const=False)};")
        return L, hoisted

    @staticmethod
    def region_body(R, hoisted, index, ind, red_into=None):
        """Region ``R``'s loop body, elements addressed by ``index(view)``;
        ``red_into[j]`` names a scalar that partial reduction j accumulates
        into instead of its output element."""
        out = [f"const {ctype(v.dtype)} {name} = p_{name}[{index(v)}];"
               for name, v in R.loads if name not in hoisted]
        out += R.body
        for j, (expr, v, add) in enumerate(R.stores):
            out.append(f"p_st{j}[{index(v)}] {'+=' if add else '='} {expr};")
        for j, (expr, v, dt, how) in enumerate(R.part_reds):
            target = red_into[j] if red_into else f"p_rd{j}[{index(v)}]"
            out.append(reduce_step(how, target, expr) + ";")
        return [ind + ln for ln in out]

    def _nest(self, R, body, shape):
        """Nested loops over ``shape``, row-major: the last axis innermost, with
        unit strides spelled as such so that gcc vectorises it. Where
        ``loop_order`` moved a long axis innermost, that axis is cut into
        blocks (``tiled_axes``) so that the short axes after it revisit
        memory that is still in cache."""
        dims = [self.tab.p(m) for m in shape]
        stride_p = {}
        order = loop_order(shape)
        inner = order[-1]

        def index(v):
            terms = []
            for d, st in enumerate(v.broadcast_strides(shape)):
                if st == 0:
                    continue
                if st == 1 and d == inner:
                    terms.append(f"i{d}")
                    continue
                key = (id(v), d)
                if key not in stride_p:
                    stride_p[key] = self.tab.p(st)
                terms.append(f"i{d} * {stride_p[key]}")
            return " + ".join(terms) or "0"
        # Sums whose target does not move along the innermost axis are
        # reductions of that loop: eight accumulators per sum, as in the flat
        # loops' lanes, so the loop vectorises and the additions do not wait on
        # each other (the sum order changes, within rounding).
        sums = (bool(R.full_reds or R.part_reds)
                and all(r[4] == "sum" for r in R.full_reds) and all(
                    how == "sum" and v.broadcast_strides(shape)[inner] == 0
                    for _, v, _, how in R.part_reds))
        # otherwise the inner loop's iterations are independent unless a
        # reduction target stays put along it (a max over the inner axis)
        independent = not R.full_reds and all(
            v.broadcast_strides(shape)[inner] != 0 for _, v, _, _ in R.part_reds)
        outer, after, block = tiled_axes(shape, order)
        if block and not self._tiling_keeps_order(R, shape, inner, after):
            outer, after, block = order[:-1], [], None
        blk = self.tab.p(block) if block else None     # a size: a run-time parameter
        L = []
        ind = "    "
        for d in outer:
            L.append(f"{ind}for (int64_t i{d} = 0; i{d} < {dims[d]}; i{d}++) {{")
            ind += "    "
        start, stop = "0", dims[inner]
        if blk:
            # the block of the inner axis: [b<d>, e<d>)
            start, stop = f"b{inner}", f"e{inner}"
            L += [f"{ind}for (int64_t b{inner} = 0; b{inner} < {dims[inner]}; "
                  f"b{inner} += {blk}) {{",
                  f"{ind}    const int64_t e{inner} = b{inner} + {blk} < {dims[inner]} "
                  f"? b{inner} + {blk} : {dims[inner]};"]
            ind += "    "
            for d in after:
                L.append(f"{ind}for (int64_t i{d} = 0; i{d} < {dims[d]}; i{d}++) {{")
                ind += "    "
        if sums:
            L += self._lanes(R, body, index, f"i{inner}", stop, ind, start)
        else:
            if independent:
                L.append(f"{ind}{_SIMD}")
            L.append(f"{ind}for (int64_t i{inner} = {start}; i{inner} < {stop}; "
                     f"i{inner}++) {{")
            L += body(index, ind + "    ")
            L += [f"{ind}    {reduce_step(how, acc, expr)};"
                  for acc, expr, v, at, how in R.full_reds]
            L.append(f"{ind}}}")
        for _ in range(len(outer) + len(after) + bool(blk)):
            ind = ind[:-4]
            L.append(f"{ind}}}")
        return L

    @staticmethod
    def _tiling_keeps_order(R, shape, inner, after):
        """Whether blocking the inner axis leaves every reduction's result as
        the plain nest gives it. Fine: a target that moves along the inner
        axis or along every axis the blocks move before (each output element
        sees its terms in the same order), and ``all``/``any``. Sums are fine
        too (the lanes regroup them already) unless their output is float32
        and the lanes would fold into it once per block instead of once (the
        float64 accumulator's accuracy lost). A product, a max or a min over
        signed zeros could otherwise change."""
        def moves(v, axes):
            st = v.broadcast_strides(shape)
            return all(st[d] for d in axes)
        for *_, how in R.full_reds:
            if how not in ("sum", "all", "any"):
                return False
        for _, v, dt, how in R.part_reds:
            if how == "sum":
                if not moves(v, [inner]) and np_dtype(dt) != np_dtype(acc_type(dt)):
                    return False            # lanes folded into float32 once per block
            elif how not in ("all", "any") and not (moves(v, [inner]) or moves(v, after)):
                return False
        return True

    @staticmethod
    def _lanes(R, body, index, var, n, ind, start="0"):
        """A loop from ``start`` to ``n`` (counter ``var``: a flat loop's ``i``
        or a nest's innermost ``i<d>``) whose sums all reduce along it: eight
        accumulators per sum (vectorised, and the additions do not wait on
        each other; combined pairwise), then the remainder, then each partial
        sum added to its output element. The block counter is ``blk_<var>``
        (``c<k>`` names the region's constants)."""
        blk = f"blk_{var}"
        accs = [f"r{j}" for j in range(len(R.part_reds))] + [r[0] for r in R.full_reds]
        L = [f"{ind}{ctype(acc_type(dt))} r{j}_l[8] = {{0, 0, 0, 0, 0, 0, 0, 0}};"
             for j, (_, _, dt, _) in enumerate(R.part_reds)]
        L += [f"{ind}{ctype(at)} {acc}_l[8] = {{0, 0, 0, 0, 0, 0, 0, 0}};"
              for acc, _, _, at, _ in R.full_reds]
        L += [f"{ind}int64_t {blk} = {start};",
              f"{ind}for (; {blk} + 8 <= {n}; {blk} += 8) {{",
              f"{ind}    {_SIMD}",
              f"{ind}    for (int64_t l = 0; l < 8; l++) {{",
              f"{ind}        const int64_t {var} = {blk} + l;"]
        lanes = {j: f"r{j}_l[l]" for j in range(len(R.part_reds))}
        L += body(index, ind + "        ", lanes)
        L += [f"{ind}        {acc}_l[l] += {expr};" for acc, expr, _, _, _ in R.full_reds]
        L += [f"{ind}    }}", f"{ind}}}"]
        L += [f"{ind}{ctype(acc_type(dt))} r{j} = 0;"
              for j, (_, _, dt, _) in enumerate(R.part_reds)]
        for a in accs:
            a = f"{a}_l"
            L.append(f"{ind}{a[:-2]} += (({a}[0] + {a}[1]) + ({a}[2] + {a}[3])) + "
                     f"(({a}[4] + {a}[5]) + ({a}[6] + {a}[7]));")
        L.append(f"{ind}for (int64_t {var} = {blk}; {var} < {n}; {var}++) {{")
        L += body(index, ind + "    ", {j: f"r{j}" for j in range(len(R.part_reds))})
        L += [f"{ind}    {acc} += {expr};" for acc, expr, _, _, _ in R.full_reds]
        L.append(f"{ind}}}")
        L += [f"{ind}p_rd{j}[{index(v)}] += r{j};" for j, (_, v, _, _) in enumerate(R.part_reds)]
        return L

    def add_reduction(self, R, how, expr, out_view, axes):
        """Make region ``R`` reduce ``expr`` over ``axes`` into ``out_view``."""
        dt = out_view.dtype
        keep = [d for d in range(len(R.shape)) if d not in axes and R.shape[d] != 1]
        if not keep:
            at = acc_type(dt) if how == "sum" else dt
            R.full_reds.append((f"acc{len(R.full_reds)}", expr, out_view, at, how))
            return
        st = V.c_contiguous_strides(tuple(R.shape[d] for d in keep))
        strides = [0] * len(R.shape)
        for d, x in zip(keep, st):
            strides[d] = x
        R.part_reds.append((expr, View(out_view.buf, out_view.offset, R.shape, strides, dt),
                            dt, how))

    # ------------------------------------------------------------ outputs
    def finish_outputs(self):
        """Copy outputs that are not already in the caller's arrays (inputs,
        constants, views, literals, an output listed twice)."""
        copies = []
        for k, s in enumerate(self.t.outputs):
            v = self.val[s]
            if (isinstance(v, View) and v.buf.where == "out" and v.buf.index == k
                    and v.offset == 0 and v.is_contiguous()):
                continue
            if isinstance(v, View) and v.buf.where == "in" and self.donate:
                # an input returned as it is: snapshot it before a donated
                # output overwrites it
                snap = self.new_buffer(None, v.shape, v.dtype)
                self.emit_copy(v, snap)
                v = snap
            copies.append((k, s, v))
        for k, s, v in copies:
            dt = self.t.dtype(s)
            self.emit_copy(v, View.whole(Buf("out", k, dtype=dt), self.t.shape(s), dt))

# ---------------------------------------------------------------- helpers
def acc_type(dt):
    """Accumulator dtype of a sum: float64 for floats (float32 sums stay close
    to NumPy's pairwise result), int64 for integers and bools."""
    dt = np_dtype(dt)
    return np.dtype(np.float64) if dt.kind == "f" else acc_dtype(dt)


def schedule(tape):
    """The order instructions are lowered in: the tape's, except that scalar
    (0-d) arithmetic sinks to just before the first non-scalar instruction that
    depends on it. A loss ``a + b`` of two reductions then no longer splits the
    loop that computes them from the elementwise reverse sweep that follows
    (one pass instead of two).

    Sunk instructions keep their tape order among themselves, and each lands
    before everything that reads it, so the order stays topological."""
    n = len(tape)
    sunk = set()
    for i in range(n):
        out = tape.out[i]
        if (out >= 0 and tape.shape(out) == () and OPS[tape.op[i]].c is not None
                and "nout" not in tape.attrs[tape.attr[i]]):
            sunk.add(i)
    if not sunk:
        return list(range(n))
    readers = {}
    for i in range(n):
        for a in tape.args[tape.argp[i]:tape.argp[i + 1]]:
            readers.setdefault(a, []).append(i)
    anchor = {}
    for i in reversed(range(n)):
        if i in sunk:
            anchor[i] = min((anchor[r] if r in sunk else r
                             for r in readers.get(tape.out[i], ())), default=n)
    due = {}
    for i in sorted(sunk):
        due.setdefault(anchor[i], []).append(i)
    order = []
    for i in range(n):
        if i not in sunk:
            order += due.get(i, [])
            order.append(i)
    return order + due.get(n, [])


#: The axes after a long axis that ``loop_order`` moves innermost hold at
#: most this many elements, and a block of the long axis holds
#: ``_TILE_ELEMENTS`` elements of each array (32 KiB of float64): the loop
#: over the short axes then revisits what the block before loaded, from L1
#: or L2, instead of streaming each array once per short index.
_TILE_AFTER = 64
_TILE_ELEMENTS = 4096


def loop_order(shape):
    """Axes from outermost to innermost: row-major, except that a much longer
    axis goes innermost when the axes after it are short, so the vectorised
    loop is long (a (10^5, 5) loop runs 5 outer iterations of 10^5, not 10^5
    of 5). Of equally long axes the first is the one considered; an empty
    loop keeps the row-major order."""
    order = list(range(len(shape)))
    if len(shape) > 1 and all(shape):
        longest = max(order, key=lambda d: shape[d])
        if (longest != order[-1] and shape[longest] >= 4 * shape[-1]
                and math.prod(shape[longest + 1:]) <= _TILE_AFTER):
            order.remove(longest)
            order.append(longest)
    return order


def tiled_axes(shape, order):
    """``(outer, after, block)`` for a nest in ``order``: the loops outside
    the blocks of the inner axis, the loops between a block and the inner
    loop, and the block's length; ``(order[:-1], [], None)`` where the inner
    axis is the last one (row-major, nothing to block)."""
    inner = order[-1]
    if inner == len(shape) - 1:
        return order[:-1], [], None
    after = [d for d in order[:-1] if d > inner]
    outer = [d for d in order[:-1] if d < inner]
    block = max(64, _TILE_ELEMENTS // math.prod(shape[d] for d in after)) // 8 * 8
    return outer, after, block


def canon(shape):
    """``shape`` without its size-1 axes: two shapes with equal canon hold their
    elements in the same row-major order."""
    return tuple(n for n in shape if n != 1)


def fit(view, shape, region_shape):
    """``view`` as read by an instruction with output ``shape`` (broadcast to
    it), re-indexed over the region's iteration shape (equal up to size-1 axes)."""
    if tuple(view.shape) != tuple(shape):
        view = view.apply(lambda a: np.broadcast_to(a, shape))
    if tuple(shape) != tuple(region_shape):
        view = view.apply(lambda a: a.reshape(region_shape, copy=False))
    return view


def map_axes(shape, axes, region_shape):
    """Reduction ``axes`` of an array of ``shape`` as axes of the region
    (their non-size-1 axes correspond in order)."""
    src = [d for d, n in enumerate(shape) if n != 1]
    dst = [d for d, n in enumerate(region_shape) if n != 1]
    return tuple(dst[src.index(a)] for a in axes if a in src)


def _keeps_order(name, shape, out_shape, params):
    """Whether a view op only adds or drops size-1 axes (element order kept)."""
    if canon(shape) != canon(out_shape):
        return False
    if name in ("reshape", "stop_gradient"):
        return True
    if name == "transpose":
        perm = [a for a in params["axes"] if shape[a] != 1]
        return perm == sorted(perm)
    return False


def reduce_init(how, dt):
    """Identity of a reduction, in C."""
    dt = np_dtype(dt)
    if how in ("max", "min"):
        if dt.kind == "f":
            return ("-" if how == "max" else "") + "INFINITY"
        info = np.iinfo(dt) if dt.kind in "iu" else None
        if info is None:
            return "0" if how == "max" else "1"
        v = info.min if how == "max" else info.max
        if v < 0:           # the literal -2^63 does not exist in C: write -(2^63 - 1) - 1
            return f"(({ctype(dt)})({v + 1}LL - 1))"
        return f"(({ctype(dt)}){v}{'LL' if dt.kind == 'i' else 'ULL'})" if v else "0"
    return {"sum": "0", "prod": "1", "all": "1", "any": "0"}[how]


def reduce_step(how, acc, expr):
    """C statement folding ``expr`` into ``acc`` (max/min propagate NaN, as NumPy)."""
    return {"sum": f"{acc} += {expr}", "prod": f"{acc} *= {expr}",
            "max": f"{acc} = TD_MAXR({acc}, {expr})", "min": f"{acc} = TD_MINR({acc}, {expr})",
            "all": f"{acc} = {acc} && ({expr})", "any": f"{acc} = {acc} || ({expr})"}[how]


def cast(expr, have, want):
    """``expr`` (of dtype ``have``) converted as NumPy's casting would."""
    have, want = np_dtype(have), np_dtype(want)
    if have == want:
        return expr
    if want.kind == "b":
        return f"({expr} != 0)"
    if have.kind == "f" and want.kind == "i":
        # NaN and out-of-range values: C leaves them undefined; NumPy (x86)
        # gives the most negative integer, as the hardware conversion does
        bits = want.itemsize * 8 - 1
        lo = f"(({ctype(want)})-{2 ** bits - 1} - 1)"
        return (f"(({expr}) != ({expr}) || ({expr}) >= 0x1p{bits} || ({expr}) < -0x1p{bits} "
                f"? {lo} : ({ctype(want)})({expr}))")
    return f"(({ctype(want)}){expr})"


def region_is_flat(R):
    """Whether every operand of region ``R`` can be indexed by one flat counter."""
    views = [v for _, v in R.loads] + [v for _, v, _ in R.stores] + [r[1] for r in R.part_reds]
    return all(_flat_ok(v, R.shape) for v in views)


def _flat_ok(view, shape):
    """Whether ``view`` can be indexed by one flat counter over ``shape``:
    C-contiguous over it, or one element broadcast everywhere."""
    st = view.broadcast_strides(shape)
    if not any(st):
        return True
    want = V.c_contiguous_strides(shape)
    return all(n <= 1 or s == w for n, s, w in zip(shape, st, want))


#: Ops whose kernels can return a status (a guard, an index out of bounds, a
#: singular matrix, a decomposition that does not converge, an argsort of the
#: default kind over ties, a searchsorted in an unsorted array, a count that
#: is not the guarded one, or a loop whose body does).
_MAY_FAIL = {"guard_bool", "guard_int", "guard_array", "gather", "setitem", "scatter_add",
             "solve", "solve_triangular", "inv", "cholesky", "eigh", "eigvalsh", "svd",
             "svdvals", "pinv", "argsort", "searchsorted", "argwhere", "scan"}

#: op name -> ``kernel(lowering, instr, out, args, params)`` for the ops that
#: are not fused loops; filled by the modules imported below.
KERNELS = {}


def offset(p, view, axes):
    """The C expression of ``view``'s element offset at the loop counters
    ``i<d>`` of ``axes`` (strides through ``p``, the run-time table)."""
    return " + ".join(f"i{d} * {p(view.strides[d])}" for d in axes if view.strides[d]) or "0"


def loop_nest(p, shape, axes, ind, body):
    """C lines of ``for`` loops over ``axes`` of ``shape`` (counters ``i<d>``,
    sizes through ``p``, the run-time table) around the lines ``body(ind)``."""
    L = []
    for d in axes:
        L.append(f"{ind}for (int64_t i{d} = 0; i{d} < {p(shape[d])}; i{d}++) {{")
        ind += "    "
    L += body(ind)
    for _ in axes:
        ind = ind[:-4]
        L.append(f"{ind}}}")
    return L


def register_in(table, *names):
    """Decorator: store the function in ``table`` (a target's kernel table)
    under each of ``names``."""
    def register(fn):
        for n in names:
            table[n] = fn
        return fn
    return register


from . import kernels, loops  # noqa: E402,F401  (they register into KERNELS)
