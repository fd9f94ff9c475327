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

from .cuda import BLOCK, CudaProgram, Launch, Matmul, csrc_dir, module_source

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


class CudaTape:
    """One program bound to a compiled module, with its device tables."""

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

    def call(self, inputs, outputs):
        """Run on device arrays (C-contiguous, the recorded dtypes); returns 0,
        or 1 when a guard saw another outcome (outputs are then garbage)."""
        cp, pr = self.cp, self.program
        ins = np.array([x.data.ptr for x in inputs] or [0], dtype=np.uint64)
        outs = np.array([o.data.ptr for o in outputs] or [0], dtype=np.uint64)
        if self._ptrs[0] is None or not np.array_equal(self._ptrs[0], ins):
            self.I.set(ins)
        if self._ptrs[1] is None or not np.array_equal(self._ptrs[1], outs):
            self.O.set(outs)
        self._ptrs = (ins, outs)
        status = None
        if pr.status_offset is not None:
            status = self.W[pr.status_offset:pr.status_offset + 4].view(cp.int32)
            status.fill(0)
        args = (self.P, self.W, self.K, self.I, self.O)
        for st in pr.steps:
            if isinstance(st, Launch):
                if st.blocks is not None:
                    grid = st.blocks
                else:
                    n = int(pr.P[st.count])
                    if n == 0:
                        continue
                    grid = min(-(-n // BLOCK), _MAX_BLOCKS)
                self.fns[st.kernel]((grid,), (BLOCK,), args)
            elif isinstance(st, Matmul):
                cp.matmul(self._view(st.a, inputs, outputs), self._view(st.b, inputs, outputs),
                          out=self._view(st.c, inputs, outputs))
            else:
                raise AssertionError(f"unknown step {st!r}")
        if status is not None and int(status.get()[0]) != 0:
            return 1
        return 0

    def _view(self, v, inputs, outputs):
        """A CuPy array over the device memory a codegen View describes."""
        cp = self.cp
        b = v.buf
        base = {"in": lambda: inputs[b.index].data.ptr, "out": lambda: outputs[b.index].data.ptr,
                "ws": lambda: self.W.data.ptr + b.offset,
                "k": lambda: self.K.data.ptr + b.offset}[b.where]()
        item = v.dtype.itemsize
        ptr = base + v.offset * item
        span = item * (1 + sum((n - 1) * abs(s) for n, s in zip(v.shape, v.strides) if n))
        mem = cp.cuda.UnownedMemory(ptr, span, self)
        return cp.ndarray(v.shape, v.dtype, cp.cuda.MemoryPointer(mem, 0),
                          strides=tuple(s * item for s in v.strides))


__all__ = ["build", "CudaTape", "CudaProgram", "gpu_status", "import_cupy"]
