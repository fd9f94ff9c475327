"""Run CUDA programs on the CPU: the generated kernels compiled as C (tests only).

The kernels of :mod:`.cuda` are compiled with ``csrc/tapediff_cuda_emu.h``
through the same cffi runtime as the C backend, and :class:`EmuTape` replays
a program's steps exactly as the CuPy runner does
(:class:`~.cuda_runtime.ProgramRunner`), with NumPy for the host steps. It
checks the CUDA generator's logic (indexing, grid-stride loops, the two-pass
reductions, partial reductions, guards, matmul views) against the
interpreter on machines without a GPU. By default a block has one thread;
``build_emulated(..., threads=8)`` runs several threads per block as fibers
that meet at ``__syncthreads()``, so the shared-memory trees and the
barriers are exercised too (in increasing or, ``reverse=True``, decreasing
thread order: a result that changes with the order is a missing barrier).
Concurrency inside a barrier interval still needs a device.

Examples
--------
>>> import numpy as np, tapediff as td
>>> from tapediff.codegen.cuda import CudaProgram
>>> from tapediff.codegen.cuda_emu import build_emulated
>>> rf = td.record(lambda x: np.sum(np.tanh(x) ** 3), np.ones(5))
>>> (et,) = build_emulated([CudaProgram(rf.tape)])
>>> outs = et.new_outputs()
>>> et.call([np.linspace(-1, 1, 5)], outs)
0
>>> bool(np.isclose(outs[0], np.sum(np.tanh(np.linspace(-1, 1, 5)) ** 3)))
True
"""
import ctypes

import numpy as np

from ..runtime import load_or_build
from .cuda import RGRID, CudaProgram, host_step
from .cuda_runtime import ProgramRunner, _span, set_results

_DIVERGED = -100           # TD_EMU_DIVERGED
_CDEF = ("int td_emu_launch(int k, int64_t blocks, int reverse, const int64_t *P, char *W, "
         "const char *K, void *const *I, void *const *O);")


def build_emulated(programs, threads=1, rgrid=RGRID, reverse=False):
    """Compile ``programs`` for the CPU into one module; an EmuTape per program.

    Parameters
    ----------
    programs : list of CudaProgram
    threads : int
        Threads per block (``TD_BLOCK``), a power of two. 1 runs a block as a
        plain call; more run each thread as a fiber (slower, checks barriers).
    rgrid : int
        Blocks of a reduction's first pass (``TD_RGRID``), at most the
        generator's ``RGRID`` (the size of its partials buffer).
    reverse : bool
        Run a block's threads in decreasing order.
    """
    if threads < 1 or threads & (threads - 1):
        raise ValueError(f"threads={threads!r}: the block trees need a power of two")
    if not 1 <= rgrid <= RGRID:
        raise ValueError(f"rgrid={rgrid!r}: must be in 1..{RGRID} (the partials buffer)")
    names = []
    texts = {}
    for pr in programs:
        if pr.name not in texts:
            texts[pr.name] = pr.text
            names += [n for n in dict.fromkeys(pr.kernel_names) if n not in names]
    config = f"#define TD_EMU_RGRID {rgrid}\n"
    if threads > 1:
        config += f"#define TD_EMU_THREADS {threads}\n"
    source = (config + '#include "tapediff_cuda_emu.h"\n\n'
              + "\n".join(texts[n] for n in sorted(texts))
              + "\nstatic const td_emu_kernel td_emu_table[] = {"
              + ", ".join(names or ["0"]) + "};\n"
              "int td_emu_launch(int k, int64_t blocks, int reverse, const int64_t *P, "
              "char *W, const char *K, void *const *I, void *const *O) {\n"
              "    return td_emu_run(td_emu_table[k], blocks, reverse, P, W, K, I, O);\n}\n")
    # -O0: these modules check logic, and the corpus' are large (gcc takes a
    # quarter of its -O3 time); no flag here changes floating-point results
    ffi, lib = load_or_build(source, _CDEF, name_hint="cuda_emu", extra_compile_args=("-O0",))
    index = {n: k for k, n in enumerate(names)}
    return [EmuTape(pr, ffi, lib, index, threads, rgrid, reverse) for pr in programs]


class EmuTape(ProgramRunner):
    """A program run by the CPU build of its kernels (see :func:`build_emulated`)."""

    max_blocks = 7            # few blocks, so that grid-stride loops take several turns

    def __init__(self, program, ffi, lib, index, threads=1, rgrid=RGRID, reverse=False):
        self.program, self.ffi, self.lib, self.index = program, ffi, lib, index
        self.block, self.rgrid, self.reverse = threads, rgrid, int(reverse)
        self.P = program.P
        self.K = program.K
        self.W = np.zeros(program.ws_bytes, np.uint8)
        self.I = ffi.new("void *[]", max(1, len(program.in_specs)))
        self.O = ffi.new("void *[]", max(1, len(program.out_specs)))
        self._keep = []

    def new_outputs(self):
        return [np.empty(shape, dt) for shape, dt in self.program.out_specs]

    def bind(self, inputs, outputs):
        fb = self.ffi.from_buffer
        self._keep = [fb(x) for x in inputs] + [fb(o, require_writable=True) for o in outputs]
        for k in range(len(inputs)):
            self.I[k] = self._keep[k]
        for k in range(len(outputs)):
            self.O[k] = self._keep[len(inputs) + k]
        ffi = self.ffi
        self._P = ffi.cast("int64_t *", ffi.from_buffer(self.P))
        self._K = ffi.cast("char *", ffi.from_buffer(self.K))
        return (self._P, ffi.cast("char *", ffi.from_buffer(self.W)), self._K, self.I, self.O)

    def loop_args(self, ws, i_table, o_table):
        c = self.ffi.cast
        return (self._P, c("char *", ws), self._K, c("void **", i_table), c("void **", o_table))

    def address_of(self, a):
        return a.__array_interface__["data"][0]

    def upload(self, host):
        return np.ascontiguousarray(host)

    def copy_bytes(self, dst, src, nbytes):
        ctypes.memmove(dst, src, nbytes)

    def clear_int(self, at):
        ctypes.c_int32.from_address(at).value = 0

    def read_int(self, at):
        return ctypes.c_int32.from_address(at).value

    def launch(self, kernel, grid, args):
        status = self.lib.td_emu_launch(self.index[kernel], grid, self.reverse, *args)
        if status == _DIVERGED:
            raise AssertionError(f"kernel {kernel}: the threads of a block disagreed on "
                                 "a __syncthreads() (some returned before it)")
        if status:
            raise MemoryError(f"kernel {kernel}: no memory for the emulator's thread stacks")

    def matmul(self, a, b, c):
        np.matmul(a, b, out=c)

    def linalg(self, step, args, outs):
        set_results(outs, host_step(np, step, args))

    def array_at(self, address, shape, dtype, strides):
        low, nbytes = _span(shape, dtype, strides)
        raw = (ctypes.c_char * nbytes).from_address(address + low)
        return np.ndarray(shape, dtype, buffer=raw, offset=-low, strides=strides)


class EmulatedDevice:
    """A CPU stand-in for :class:`tapediff.cuda_backend.CupyDevice`: NumPy
    arrays, programs built by :func:`build_emulated`. Lets the tests drive
    ``CudaFunction`` (versions, guards, dtypes, fallbacks) without a GPU."""

    name = "cuda-emulated"
    xp = np

    def is_array(self, x):
        return isinstance(x, np.ndarray)

    def to_host(self, x):
        return np.array(x)

    def build(self, programs):
        return build_emulated(programs)


__all__ = ["build_emulated", "EmuTape", "EmulatedDevice", "CudaProgram"]
