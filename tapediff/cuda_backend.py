"""``td.record(...).compile(backend="cuda")``: replay a recorded function's tapes on a GPU.

Arguments are CuPy arrays (numbers are allowed too) and results stay on the
device. A call runs the CUDA programs already built for its argument
signature (shapes, dtypes, static values), most recent version first; when
none applies (the first call, a new signature, a guard that saw another
outcome on the device) it copies the arguments to the host once and replays
the interpreter there, which selects or records the version, and builds that
version's program. A new shape or dtype gets a recording of its own: a
float64 recording is never replayed on float32 arrays.

Status: written and compiled (``nvcc --ptx``) on machines without a GPU; the
device tests (tests/test_cuda_device.py) are skipped there and have not run
yet. See ``docs/cuda-backend.md``.
"""
import threading

import numpy as np

from . import pytree
from .api import _grads_tree

__all__ = ["CudaFunction", "CupyDevice", "DeviceTapeRunner"]


def _contiguous(xp, x):
    """``x`` on the device, C-contiguous, its shape kept (``ascontiguousarray``
    would make a 0-d array 1-d)."""
    a = xp.asarray(x)
    return a if a.flags.c_contiguous else xp.ascontiguousarray(a)


class CupyDevice:
    """The GPU as CuPy sees it: where CudaFunction's arrays live and its
    programs are built. (:class:`tapediff.codegen.cuda_emu.EmulatedDevice`
    is the CPU stand-in the tests use.)"""

    name = "cuda"

    def __init__(self):
        from .codegen.cuda_runtime import gpu_status, import_cupy
        self.xp = import_cupy()
        ok, why = gpu_status()
        if not ok:
            raise RuntimeError(f"compile(backend='cuda'): {why}; use backend='c' on this "
                               "machine")

    def is_array(self, x):
        return isinstance(x, self.xp.ndarray)

    def to_host(self, x):
        return self.xp.asnumpy(x)

    def build(self, programs):
        from .codegen.cuda_runtime import build
        return build(programs)


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

    def __init__(self, recorded, device=None):
        self.device = device if device is not None else CupyDevice()
        self.xp = self.device.xp
        self.recorded = recorded
        self.backend = "cuda"
        self._built = {}       # (signature, entry) -> [(version, runner or None)]
        self._programs = {}    # (id(version), entry) -> (version, runner or None)
        self._rfs = {}         # signature -> the RecordedFunction replayed for it
        self._lock = threading.Lock()

    # ------------------------------------------------------------ helpers
    def _leaves(self, args):
        """Signature key and the dynamic leaves as device arrays."""
        xp, dev = self.xp, self.device
        leaves, treedef = pytree.flatten(args)
        key, dyn = [treedef], []
        for x in leaves:
            if dev.is_array(x) or isinstance(x, (float, np.generic, np.ndarray)):
                a = _contiguous(xp, x)
                key.append((a.shape, a.dtype.str))
                dyn.append(a)
            elif pytree.is_static(x):
                key.append((type(x), x))
            else:
                raise TypeError(f"backend='cuda': an argument leaf of type {type(x).__name__} "
                                "(pass CuPy arrays, NumPy arrays or numbers)")
        return tuple(key), dyn

    def _host(self, args):
        leaves, treedef = pytree.flatten(args)
        return pytree.unflatten(treedef, [self.device.to_host(x) if self.device.is_array(x)
                                          else x for x in leaves])

    def _program(self, v, entry):
        """The runner of version ``v``'s tape (built once), or None when the
        tape has an op without a CUDA lowering (one CompileWarning)."""
        from .codegen import Unsupported
        from .codegen.cuda import CudaProgram
        key = (id(v), entry)
        if key not in self._programs:
            tape = v.grad_tape if entry == "grad" else v.tape
            try:
                (runner,) = self.device.build([CudaProgram(tape)])
            except Unsupported as e:
                from .compiled import _warn_once
                _warn_once(("cuda", e.op), f"tapediff: the CUDA backend cannot lower {e} yet; "
                                           "this tape replays with the NumPy interpreter on "
                                           "the host")
                runner = None
            self._programs[key] = (v, runner)
        return self._programs[key][1]

    def _run(self, key, entry, args, dyn, host_run):
        """``(version, outputs)`` on the device, or ``(None, result)`` computed
        on the host when the version's tape has no CUDA lowering.

        The versions already built for this signature are tried on the device,
        most recent first (a guard that fails costs one launch sequence and a
        4-byte read); when none applies, the interpreter replays once on the
        host, which selects or records the version for these arguments."""
        tried = self._built.setdefault((key, entry), [])
        for v, runner in reversed(tried):
            res = self._attempt(v, runner, dyn)
            if res is not None:
                return res
        with self._lock:
            rf, host = self._host_replay(key, args, host_run)
            v = rf._current
            runner = self._program(v, entry)
            if all(t is not v for t, _ in tried):
                tried.append((v, runner))
        if runner is None:
            return None, self._to_device(host)
        res = self._attempt(v, runner, dyn)
        if res is None:
            # the device's rounding (a sum in another order) took the other side
            # of a branch than the host did: the host's result is NumPy's
            return None, self._to_device(host)
        return res

    def _host_replay(self, key, args, host_run):
        """Replay on the host with the recording for this signature (a new shape
        or dtype gets its own recording: never a cast); returns it and the result."""
        from .api import record
        from .errors import ShapeMismatch
        host_args = self._host(args)
        rf = self._rfs.get(key)
        if rf is None:
            rf = self.recorded
            try:
                result = host_run(rf, host_args)
            except ShapeMismatch:
                rf = record(rf.fun, *host_args, argnums=rf.nums[0] if rf.single else rf.nums,
                            strict=rf.strict)
                result = host_run(rf, host_args)
            self._rfs[key] = rf
            return rf, result
        return rf, host_run(rf, host_args)

    @property
    def recordings(self):
        """The recorded functions in use, one per argument signature (shapes, dtypes)."""
        return list(dict.fromkeys(self._rfs.values())) or [self.recorded]

    @staticmethod
    def _attempt(v, runner, dyn):
        """Run one version: ``(v, outputs)``, or None when a guard did not hold."""
        if runner is None:
            return None
        outs = runner.new_outputs()
        status = runner.call(dyn, outs)
        if status == 0:
            return v, outs
        if status < 0:
            from .codegen.errors import raise_status
            raise_status(status)
        return None

    def _to_device(self, tree):
        leaves, treedef = pytree.flatten(tree)
        return pytree.unflatten(treedef, [None if x is None else self.xp.asarray(x)
                                          for x in leaves])

    # ------------------------------------------------------------ entry points
    def value_and_grad(self, *args):
        """``(value, gradient)`` computed on the device (CuPy results)."""
        rf = self.recorded
        key, dyn = self._leaves(args)
        v, outs = self._run(key, "grad", args, dyn, lambda r, host: r.value_and_grad(*host))
        if v is None:
            return outs
        return outs[0], _grads_tree(args, rf.nums, rf.single, v.spread(outs[1:]))

    def __call__(self, *args):
        """The primal on the device (CuPy results)."""
        key, dyn = self._leaves(args)
        v, outs = self._run(key, "primal", args, dyn, lambda r, host: r(*host))
        if v is None:
            return outs
        return pytree.unflatten(v.tape.out_treedef, outs)

    def __repr__(self):
        return f"<tapediff compiled (cuda) {self.recorded!r}>"


class DeviceTapeRunner:
    """:class:`~tapediff.compiled.TapeRunner`'s device twin: replay one tape
    with its CUDA program on device arrays (used by checkpointed adjoints).

    ``runner(inputs)`` takes device arrays (or host numbers, uploaded) and
    returns device arrays. A failed guard replays the interpreter on host
    copies, which raises the GuardFailed its caller handles; a tape without a
    CUDA lowering replays on the host after one CompileWarning.
    """

    __slots__ = ("plan", "device", "native")

    def __init__(self, tape, plan, device, name="tape"):
        from .codegen import Unsupported
        from .codegen.cuda import CudaProgram
        self.plan, self.device = plan, device
        try:
            (self.native,) = device.build([CudaProgram(tape)])
        except Unsupported as e:
            from .compiled import _warn_once
            _warn_once(("cuda", e.op), f"tapediff: {name}: the CUDA backend cannot lower {e} "
                                       "yet; this tape replays with the NumPy interpreter on "
                                       "the host")
            self.native = None

    def _host(self, inputs):
        dev = self.device
        return [dev.to_host(x) if dev.is_array(x) else x for x in inputs]

    def __call__(self, inputs):
        xp = self.device.xp
        if self.native is None:
            return [xp.asarray(r) for r in self.plan.run(self._host(inputs))]
        specs = self.native.program.in_specs
        ins = [_contiguous(xp, x) for x in inputs]
        for k, (x, (shape, dt)) in enumerate(zip(ins, specs)):
            if tuple(x.shape) != tuple(shape) or x.dtype != dt:
                raise ValueError(f"input {k} has shape {tuple(x.shape)} dtype {x.dtype}; the "
                                 f"tape was recorded with {tuple(shape)} {dt}")
        outs = self.native.new_outputs()
        status = self.native.call(ins, outs)
        if status == 0:
            return outs
        if status < 0:
            from .codegen.errors import raise_status
            raise_status(status)
        return [xp.asarray(r) for r in self.plan.run(self._host(inputs))]   # raises GuardFailed
