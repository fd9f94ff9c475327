"""``td.record(...).compile(backend="cuda")``: replay a recorded function's tapes on a GPU.

Arguments are CuPy arrays (numbers are allowed too) and results stay on the
device. A call whose argument shapes or dtypes match a version already built
runs the version's CUDA program directly; anything else (the first call, a
new shape or dtype, a guard that saw another outcome on the device) copies
the arguments to the host once, replays the interpreter there (which records
a new version when needed: a float64 recording is never replayed on float32
arrays) and builds that version's program.

Status: written and compiled (``nvcc --ptx``) on machines without a GPU; the
device tests (tests/test_cuda_device.py) are skipped there and have not run
yet. See ``docs/cuda-backend.md``.
"""
import threading

import numpy as np

from . import pytree
from .api import _grads_tree

__all__ = ["CudaFunction"]


class CudaFunction:
    """A :class:`~tapediff.api.RecordedFunction` replayed by CUDA kernels.

    Examples
    --------
    Needs CuPy and a GPU, so not run as a doctest::

        import cupy as cp, numpy as np, tapediff as td
        rf = td.record(lambda w, x: np.sum(np.tanh(x @ w) ** 2), np.ones(3), np.ones((4, 3)))
        gt = rf.compile(backend="cuda")
        v, g = gt.value_and_grad(cp.ones(3), cp.ones((4, 3)))    # CuPy results
    """

    def __init__(self, recorded):
        from .codegen.cuda_runtime import gpu_status, import_cupy
        self.cp = import_cupy()
        ok, why = gpu_status()
        if not ok:
            raise RuntimeError(f"compile(backend='cuda'): {why}; use backend='c' on this "
                               "machine")
        self.recorded = recorded
        self.backend = "cuda"
        self._built = {}       # (signature, entry) -> (version, CudaTape or None)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ helpers
    def _leaves(self, args):
        """Signature key and the dynamic leaves as device arrays."""
        cp = self.cp
        leaves, treedef = pytree.flatten(args)
        key, dyn = [treedef], []
        for x in leaves:
            if isinstance(x, cp.ndarray):
                key.append((x.shape, x.dtype.str))
                dyn.append(cp.ascontiguousarray(x))
            elif isinstance(x, (float, np.floating)) or (isinstance(x, np.ndarray)):
                a = cp.asarray(x)
                key.append((a.shape, a.dtype.str))
                dyn.append(a)
            elif pytree.is_static(x):
                key.append((type(x), x))
            else:
                raise TypeError(f"backend='cuda': an argument leaf of type {type(x).__name__} "
                                "(pass CuPy arrays, NumPy arrays or numbers)")
        return tuple(key), dyn

    def _host(self, args):
        cp = self.cp
        return pytree.unflatten(pytree.flatten(args)[1], [
            cp.asnumpy(x) if isinstance(x, cp.ndarray) else x for x in pytree.flatten(args)[0]])

    def _program(self, key, entry, args, host_run):
        """The version and CUDA tape for this signature, recording on the host first."""
        from .codegen import Unsupported
        from .codegen.cuda import CudaProgram
        from .codegen.cuda_runtime import build
        with self._lock:
            host_run(self._host(args))            # selects or records the version
            v = self.recorded._current
            tape = v.grad_tape if entry == "grad" else v.tape
            try:
                (ct,) = build([CudaProgram(tape)])
            except Unsupported as e:
                from .compiled import _warn_once
                _warn_once(("cuda", e.op), f"tapediff: the CUDA backend cannot lower {e} yet; "
                                           "this tape replays with the NumPy interpreter on "
                                           "the host")
                ct = None
            self._built[(key, entry)] = (v, ct)
            return v, ct

    def _run(self, key, entry, args, dyn, host_run):
        """``(version, outputs)`` on the device, or None when the version's tape
        has no CUDA lowering (the caller replays on the host)."""
        built = self._built.get((key, entry))
        for _ in range(2):
            if built is None:
                built = self._program(key, entry, args, host_run)
            v, ct = built
            if ct is None:
                return None
            outs = ct.new_outputs()
            status = ct.call(dyn, outs)
            if status == 0:
                return v, outs
            if status < 0:
                from .codegen.errors import raise_status
                raise_status(status)
            built = None                          # a guard changed: find the version on the host
        raise AssertionError("a freshly selected version failed its own guard on the device")

    def _to_device(self, tree):
        cp = self.cp
        leaves, treedef = pytree.flatten(tree)
        return pytree.unflatten(treedef, [None if x is None else cp.asarray(x) for x in leaves])

    # ------------------------------------------------------------ entry points
    def value_and_grad(self, *args):
        """``(value, gradient)`` computed on the device (CuPy results)."""
        rf = self.recorded
        key, dyn = self._leaves(args)
        res = self._run(key, "grad", args, dyn, lambda host: rf.value_and_grad(*host))
        if res is None:
            return self._to_device(rf.value_and_grad(*self._host(args)))
        v, outs = res
        return outs[0], _grads_tree(args, rf.nums, rf.single, v.spread(outs[1:]))

    def __call__(self, *args):
        """The primal on the device (CuPy results)."""
        rf = self.recorded
        key, dyn = self._leaves(args)
        res = self._run(key, "primal", args, dyn, lambda host: rf(*host))
        if res is None:
            return self._to_device(rf(*self._host(args)))
        v, outs = res
        return pytree.unflatten(v.tape.out_treedef, outs)

    def __repr__(self):
        return f"<tapediff compiled (cuda) {self.recorded!r}>"
