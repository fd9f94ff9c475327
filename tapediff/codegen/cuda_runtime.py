"""Run :class:`~tapediff.codegen.cuda.CudaProgram` objects on a GPU through CuPy.

CuPy is an optional dependency (``pip install tapediff[cuda]``), imported
only here and only when a CUDA tape is built. Kernels are compiled by
CuPy's ``RawModule`` (NVRTC; CuPy caches compiled kernels on disk), one
module for the programs built together, kept in memory by their tapes.

A call fills the device tables of input and output pointers (re-uploaded
only when a pointer changed), zeroes the guard status word, runs the
program's steps in order on the current stream (kernel launches; matmuls as
``cupy.matmul`` on views of device memory) and reads the status word back:
one 4-byte transfer, and only for tapes that hold guards.

Status: written and compiled on machines without a GPU; the tests that run
it (tests/test_cuda_device.py) are skipped there and have not run yet.
"""
import dataclasses
import threading

import numpy as np

from .cuda import (BLOCK, RGRID, CudaProgram, Launch, Linalg, Loop, Matmul, host_step,
                   csrc_dir, module_source)

_MAX_BLOCKS = 65535 * 32        # grid-stride loops: more blocks than this add nothing


def import_cupy():
    """CuPy, or ImportError with the install hint."""
    try:
        import cupy
    except ImportError as e:
        raise ImportError("the CUDA backend needs CuPy: pip install 'tapediff[cuda]' (or the "
                          "cupy-cudaXXx wheel matching your CUDA toolkit)") from e
    return cupy


def gpu_status():
    """``(usable, description)`` of the first CUDA device as CuPy sees it."""
    try:
        cp = import_cupy()
    except ImportError as e:
        return False, str(e)
    try:
        n = cp.cuda.runtime.getDeviceCount()
        if n == 0:
            return False, f"CuPy {cp.__version__}: no CUDA device"
        props = cp.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return True, (f"{name} ({n} device{'s' * (n > 1)}), CuPy {cp.__version__}, CUDA "
                      f"runtime {cp.cuda.runtime.runtimeGetVersion()}")
    except Exception as e:      # noqa: BLE001  (driver missing, no device, ...)
        return False, f"CuPy {cp.__version__}: no usable CUDA device ({e})"


def build(programs):
    """Compile ``programs`` into one CuPy module; returns a CudaTape per program."""
    cp = import_cupy()
    module = cp.RawModule(code=module_source(programs),
                          options=("-std=c++17", f"-I{csrc_dir()}"))
    return [CudaTape(pr, module) for pr in programs]


@dataclasses.dataclass
class Frame:
    """Where one launch sequence's buffers live: the addresses of its inputs,
    outputs and workspace, the kernels' arguments pointing at them, and the
    status word its guards set (None when it has none). The program's call
    is one frame; each iteration of a recorded loop is another (its inputs
    and outputs are that iteration's rows of the loop's pointer tables)."""
    args: tuple
    ins: list
    outs: list
    ws: int
    status_at: object = None


class ProgramRunner:
    """Runs a program's steps in order. A subclass supplies the device:
    ``bind`` (the call's pointer tables; returns the kernels' arguments),
    ``launch``, ``matmul``, ``linalg``, ``array_at`` (an array over device
    memory at an address), ``address_of``/``upload``/``copy_bytes``/
    ``read_int``/``clear_int`` (raw memory) and ``loop_args`` (a loop body's
    arguments)."""

    block = BLOCK                 # threads per block the kernels were compiled for
    rgrid = RGRID                 # blocks of a reduction's first pass (TD_RGRID)
    max_blocks = _MAX_BLOCKS

    @property
    def _lock(self):
        lock = self.__dict__.get("_lock_obj")
        if lock is None:
            lock = self.__dict__.setdefault("_lock_obj", threading.Lock())
        return lock

    def call(self, inputs, outputs):
        """Run on ``inputs`` writing ``outputs`` (C-contiguous, the recorded
        dtypes); returns the status: 0, 1 when a guard saw another outcome, or
        a negative code (``codegen.errors.raise_status``; outputs are garbage
        unless it is 0)."""
        with self._lock:            # the tables and the workspace are the runner's own
            pr = self.program
            args = self.bind(inputs, outputs)
            ws = self.address_of(self.W)
            frame = Frame(args, [self.address_of(x) for x in inputs],
                          [self.address_of(o) for o in outputs], ws,
                          None if pr.status_offset is None else ws + pr.status_offset)
            if frame.status_at is not None:
                self.clear_int(frame.status_at)
            status = self.run_steps(pr.steps, frame)
            if status == 0 and frame.status_at is not None:
                status = self.read_int(frame.status_at)
            return status

    def run_steps(self, steps, frame):
        for st in steps:
            if (isinstance(st, Loop) or isinstance(st, Linalg) and st.checks_status) and \
                    frame.status_at is not None:
                # a guard that failed before: report it rather than a numeric
                # error of the path that does not apply (C returns at the guard)
                status = self.read_int(frame.status_at)
                if status:
                    return status
            if isinstance(st, Launch):
                if st.rgrid:
                    grid = self.rgrid
                elif st.blocks is not None:
                    grid = st.blocks
                else:
                    n = int(self.program.P[st.count])
                    if n == 0:
                        continue
                    grid = min(-(-n // self.block), self.max_blocks)
                self.launch(st.kernel, grid, frame.args)
            elif isinstance(st, Matmul):
                self.matmul(*(self.view(v, frame) for v in (st.a, st.b, st.c)))
            elif isinstance(st, Linalg):
                self.linalg(st, [self.view(v, frame) for v in st.args],
                            [self.view(v, frame) for v in st.out])
            elif isinstance(st, Loop):
                status = self.run_loop(st, frame)
                if status:
                    return status
            else:
                raise AssertionError(f"unknown step {st!r}")
        return 0

    def run_loop(self, st, frame):
        """A recorded loop: the pointer tables of every iteration are built here
        (NumPy) and uploaded once; then one launch sequence per iteration.
        Host steps and inner loops in the body find their operands through
        the iteration's frame (its row of the tables), so a nested loop
        builds and uploads its tables once per outer iteration."""
        trips = int(self.program.P[st.trips])
        nc = len(st.carry_a)
        it = np.arange(trips, dtype=np.int64)
        k = trips - 1 - it if st.reverse else it
        I = np.zeros((max(trips, 1), max(st.n_args, 1)), np.uint64)
        O = np.zeros((max(trips, 1), max(st.n_rets, 1)), np.uint64)
        even = (it % 2 == 0)
        addr = [self.address(v, frame) for v in st.carry_a]
        bddr = [self.address(v, frame) for v in st.carry_b]
        for q in range(nc):
            I[:trips, q] = np.where(even, addr[q], bddr[q])
            O[:trips, q] = np.where(even, bddr[q], addr[q])
        for m, v in enumerate(st.inv):
            I[:, nc + m] = self.address(v, frame)
        keep = []
        base = nc + len(st.inv)
        for q, spec in enumerate(st.xs):
            if spec[0] == "row":
                I[:trips, base + q] = (self.address(spec[1], frame)
                                       + k.astype(np.uint64) * np.uint64(spec[2]))
            else:
                _, start, step, dt = spec
                vals = self.upload((start + k * step).astype(dt) if trips else np.zeros(1, dt))
                keep.append(vals)
                I[:trips, base + q] = self.address_of(vals) + it.astype(np.uint64) * dt.itemsize
        for m, (v, row) in enumerate(st.ys):
            O[:trips, nc + m] = (self.address(v, frame) + k.astype(np.uint64) * np.uint64(row))
        Id, Od = self.upload(I), self.upload(O)
        ws = frame.ws + st.ws_offset
        status_at = None if st.status_offset is None else ws + st.status_offset
        if status_at is not None:
            self.clear_int(status_at)
        # host steps and inner loops read the iteration's addresses on the host
        Ih, Oh = (I.tolist(), O.tolist()) if st.host_steps else (None, None)
        for j in range(trips):
            args = self.loop_args(ws, self.address_of(Id) + 8 * j * I.shape[1],
                                  self.address_of(Od) + 8 * j * O.shape[1])
            sub = Frame(args, Ih and Ih[j], Oh and Oh[j], ws, status_at)
            status = self.run_steps(st.steps, sub)
            if status:
                return status
        last = addr if trips % 2 == 0 else bddr
        for q, (dst, nbytes) in enumerate(st.finals):
            self.copy_bytes(self.address(dst, frame), last[q], nbytes)
        return 0 if status_at is None else self.read_int(status_at)

    def view(self, v, frame):
        """An array over the memory a codegen View describes."""
        item = v.dtype.itemsize
        return self.array_at(self.address(v, frame), v.shape, v.dtype,
                             tuple(s * item for s in v.strides))

    def address(self, v, frame):
        """The device address of a View's first element."""
        b = v.buf
        base = {"in": lambda: frame.ins[b.index], "out": lambda: frame.outs[b.index],
                "ws": lambda: frame.ws + b.offset,
                "k": lambda: self.address_of(self.K) + b.offset}[b.where]()
        return base + v.offset * v.dtype.itemsize


def set_results(outs, res):
    """Write a host step's result (a tuple when it has several) into ``outs``."""
    for o, r in zip(outs, res if len(outs) > 1 else (res,)):
        o[...] = r


def _span(shape, dtype, strides):
    """``(low, nbytes)``: the bytes an array with these byte strides touches,
    from ``low`` bytes relative to its first element (negative strides reach
    below it)."""
    if any(n == 0 for n in shape):
        return 0, dtype.itemsize
    low = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
    high = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0)
    return low, high - low + dtype.itemsize


class CudaTape(ProgramRunner):
    """One program bound to a compiled CuPy module, with its device tables."""

    def __init__(self, program, module):
        cp = self.cp = import_cupy()
        self.program = program
        self.fns = {n: module.get_function(n) for n in program.kernel_names}
        self.P = cp.asarray(program.P)
        self.K = cp.asarray(program.K)
        self.W = cp.zeros(program.ws_bytes, dtype=cp.uint8)
        self.I = cp.zeros(max(1, len(program.in_specs)), dtype=cp.uint64)
        self.O = cp.zeros(max(1, len(program.out_specs)), dtype=cp.uint64)
        self._ptrs = (None, None)

    def new_outputs(self):
        return [self.cp.empty(shape, dt) for shape, dt in self.program.out_specs]

    def bind(self, inputs, outputs):
        ins = np.array([x.data.ptr for x in inputs] or [0], dtype=np.uint64)
        outs = np.array([o.data.ptr for o in outputs] or [0], dtype=np.uint64)
        stream = self.cp.cuda.get_current_stream()      # ordered with the launches
        if self._ptrs[0] is None or not np.array_equal(self._ptrs[0], ins):
            self.I.set(ins, stream=stream)
        if self._ptrs[1] is None or not np.array_equal(self._ptrs[1], outs):
            self.O.set(outs, stream=stream)
        self._ptrs = (ins, outs)
        return (self.P, self.W, self.K, self.I, self.O)

    def loop_args(self, ws, i_table, o_table):
        # raw device addresses passed as 64-bit values (kernel pointer parameters)
        return (self.P, np.uint64(ws), self.K, np.uint64(i_table), np.uint64(o_table))

    def address_of(self, a):
        return a.data.ptr

    def upload(self, host):
        return self.cp.asarray(host)

    # raw copies on the current stream, as the kernels and CuPy's calls run
    def copy_bytes(self, dst, src, nbytes):
        rt = self.cp.cuda.runtime
        rt.memcpyAsync(dst, src, nbytes, rt.memcpyDeviceToDevice,
                       self.cp.cuda.get_current_stream().ptr)

    def clear_int(self, at):
        self.cp.cuda.runtime.memsetAsync(at, 0, 4, self.cp.cuda.get_current_stream().ptr)

    def read_int(self, at):
        rt, stream = self.cp.cuda.runtime, self.cp.cuda.get_current_stream()
        out = np.zeros(1, np.int32)                              # the one 4-byte read back
        rt.memcpyAsync(out.ctypes.data, at, 4, rt.memcpyDeviceToHost, stream.ptr)
        stream.synchronize()
        return int(out[0])

    def launch(self, kernel, grid, args):
        self.fns[kernel]((grid,), (BLOCK,), args)

    def matmul(self, a, b, c):
        self.cp.matmul(a, b, out=c)

    def linalg(self, step, args, outs):
        import cupyx
        with cupyx.errstate(linalg="raise"):      # singular: LinAlgError, as NumPy
            set_results(outs, host_step(self.cp, step, args))

    def array_at(self, address, shape, dtype, strides):
        cp = self.cp
        low, nbytes = _span(shape, dtype, strides)
        mem = cp.cuda.UnownedMemory(address + low, nbytes, self)
        return cp.ndarray(shape, dtype, cp.cuda.MemoryPointer(mem, -low), strides=strides)


__all__ = ["build", "CudaTape", "CudaProgram", "Frame", "ProgramRunner", "gpu_status", "import_cupy"]
