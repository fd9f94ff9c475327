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
import numpy as np

from .cuda import BLOCK, CudaProgram, Launch, Linalg, Matmul, csrc_dir, module_source

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


class ProgramRunner:
    """Runs a program's steps in order; a subclass supplies the device: binding
    the pointer tables, launching a kernel, a matmul, the status word, and an
    array over a block of its memory (``array_at``)."""

    block = BLOCK                 # threads per block the kernels were compiled for
    max_blocks = _MAX_BLOCKS

    def call(self, inputs, outputs):
        """Run on ``inputs`` writing ``outputs`` (C-contiguous, the recorded
        dtypes); returns the status: 0, 1 when a guard saw another outcome, or
        a negative code (``codegen.errors.raise_status``; outputs are garbage
        unless it is 0)."""
        pr = self.program
        self.bind(inputs, outputs)
        if pr.status_offset is not None:
            self.set_status(0)
        for st in pr.steps:
            if isinstance(st, Launch):
                if st.blocks is not None:
                    grid = st.blocks
                else:
                    n = int(pr.P[st.count])
                    if n == 0:
                        continue
                    grid = min(-(-n // self.block), self.max_blocks)
                self.launch(st.kernel, grid)
            elif isinstance(st, Matmul):
                self.matmul(*(self.view(v, inputs, outputs) for v in (st.a, st.b, st.c)))
            elif isinstance(st, Linalg):
                self.linalg(st.op, [self.view(v, inputs, outputs) for v in st.args],
                            self.view(st.out, inputs, outputs))
            else:
                raise AssertionError(f"unknown step {st!r}")
        return 0 if pr.status_offset is None else self.get_status()

    def view(self, v, inputs, outputs):
        """An array over the memory a codegen View describes."""
        b = v.buf
        base = {"in": lambda: (inputs[b.index], 0), "out": lambda: (outputs[b.index], 0),
                "ws": lambda: (self.W, b.offset), "k": lambda: (self.K, b.offset)}[b.where]()
        item = v.dtype.itemsize
        return self.array_at(base[0], base[1] + v.offset * item, v.shape, v.dtype,
                             tuple(s * item for s in v.strides))


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
        if self._ptrs[0] is None or not np.array_equal(self._ptrs[0], ins):
            self.I.set(ins)
        if self._ptrs[1] is None or not np.array_equal(self._ptrs[1], outs):
            self.O.set(outs)
        self._ptrs = (ins, outs)

    def _status(self):
        off = self.program.status_offset
        return self.W[off:off + 4].view(self.cp.int32)

    def set_status(self, value):
        self._status().fill(value)

    def get_status(self):
        return int(self._status().get()[0])       # the one device-to-host transfer

    def launch(self, kernel, grid):
        self.fns[kernel]((grid,), (BLOCK,), (self.P, self.W, self.K, self.I, self.O))

    def matmul(self, a, b, c):
        self.cp.matmul(a, b, out=c)

    def linalg(self, op, args, out):
        import cupyx
        with cupyx.errstate(linalg="raise"):      # singular: LinAlgError, as NumPy
            out[...] = getattr(self.cp.linalg, op)(*args)

    def array_at(self, base, byte_offset, shape, dtype, strides):
        cp = self.cp
        ptr = base.data.ptr + byte_offset
        span = dtype.itemsize + sum((n - 1) * abs(s) for n, s in zip(shape, strides) if n)
        mem = cp.cuda.UnownedMemory(ptr, span, self)
        return cp.ndarray(shape, dtype, cp.cuda.MemoryPointer(mem, 0), strides=strides)


__all__ = ["build", "CudaTape", "CudaProgram", "ProgramRunner", "gpu_status", "import_cupy"]
