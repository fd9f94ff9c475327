"""The CUDA generator's kernels, run on the CPU, agree with the interpreter.

Every corpus tape that lowers to CUDA is compiled with
``csrc/tapediff_cuda_emu.h`` (blocks in order; one thread per block, or
eight as fibers meeting at the barriers, see ``BLOCKS``) and its
steps replayed by :class:`~tapediff.codegen.cuda_emu.EmuTape`, the CPU twin
of the CuPy runner, on every argument set of its case; results are compared
with the interpreter's replay of the same tape (1e-12 norm-wise in float64,
1e-5 in float32, NaN/inf positions and integers exact). A version whose
guard does not hold for an argument set must report it (status 1).
This checks the generated indexing, grid-stride loops, two-pass and partial
reductions, block trees and barriers, guards and matmul steps without a GPU; tests/test_cuda_device.py
checks the real thing on a device.
"""
import numpy as np
import pytest

from tapediff.api import _dynamic_leaves, _seeds
from tapediff.codegen import Unsupported
from tapediff.codegen.cuda import CudaProgram
from tapediff.codegen.cuda_emu import build_emulated
from tapediff.compiled import _prepared
from tapediff.tracer import GuardFailed
from tapediff.testing_compiled import _versions, assert_agree

from .conftest import GROUPS


def _entries(p):
    """(version, key, tape, plan, argset index -> inputs or None) of a prepared case."""
    for v in _versions(p.rf):
        yield v, "primal", v.tape, v.plan, lambda j, args: _dynamic_leaves(args)
        if v.grad_tape is not None:
            yield v, "grad", v.grad_tape, v.grad_plan, lambda j, args: _dynamic_leaves(args)
        if v.vjp_tape is not None:
            def vjp_inputs(j, args, v=v):
                if j not in p.cotangents:
                    return None
                return _dynamic_leaves(args) + list(_seeds(v.tape, p.cotangents[j]))
            yield v, "vjp", v.vjp_tape, v.vjp_plan, vjp_inputs


def _may_decline(tape):
    """Whether the kernels may return the guard status where the interpreter
    runs: an argsort of NumPy's default kind over a line with ties or a NaN,
    whose order is NumPy's own (``kernels.sort_operands``), or a searchsorted
    in an unsorted array (the caller then replays the interpreter)."""
    return any((op.name == "argsort" and params.get("kind") not in ("stable", "mergesort"))
               or op.name == "searchsorted"
               for op, _, _, params in map(tape.instr, range(len(tape))))


#: emulated blocks: one thread (fast), and eight threads as fibers in both
#: orders with four reduction blocks (the shared-memory trees, barriers and
#: per-block partials; a result that depends on the order is a missing barrier)
BLOCKS = {"1-thread": dict(threads=1),
          "8-threads": dict(threads=8, rgrid=4),
          "8-threads-reversed": dict(threads=8, rgrid=4, reverse=True)}


@pytest.mark.slow
@pytest.mark.parametrize("blocks", sorted(BLOCKS))
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_emulated_cuda_kernels_agree_with_the_interpreter(corpus, group, blocks):
    prepared = corpus(group)
    jobs = []
    for name, p in prepared.items():
        for v, key, tape, plan, inputs in _entries(p):
            try:
                jobs.append((name, key, CudaProgram(tape), plan, inputs, p, _may_decline(tape)))
            except Unsupported:
                continue            # listed by test_cuda_source's summary
    runners = build_emulated([j[2] for j in jobs], **BLOCKS[blocks])
    failures, checked, declined, served = [], 0, set(), set()
    for (name, key, pr, plan, inputs, p, may_decline), et in zip(jobs, runners):
        rtol = p.case.rtol
        for j, args in enumerate(p.argsets):
            leaves = inputs(j, args)
            if leaves is None:
                continue
            try:
                with np.errstate(all="ignore"):      # special values are part of the corpus
                    want = plan.run(list(leaves))
            except GuardFailed:
                want = GuardFailed
            except IndexError:
                want = IndexError
            except Exception as e:   # noqa: BLE001  (LinAlgError: the host step raises it too)
                want = e
            ins = [_prepared(x, dt) for x, (_, dt) in zip(leaves, pr.in_specs)]
            outs = et.new_outputs()
            checked += 1
            if isinstance(want, Exception):
                with pytest.raises(type(want)):
                    et.call(ins, outs)
                continue
            with np.errstate(all="ignore"):
                status = et.call(ins, outs)
            if want is GuardFailed or want is IndexError:
                expect = 1 if want is GuardFailed else -3      # TD_BAD_INDEX
                if status != expect:
                    failures.append(f"{name} {key} argset {j}: the interpreter raised "
                                    f"{want.__name__} but the kernels returned {status}")
                continue
            if status == 1 and may_decline:
                declined.add((name, key))
                continue
            if status != 0:
                failures.append(f"{name} {key} argset {j}: status {status}")
                continue
            served.add((name, key))
            try:
                with np.errstate(all="ignore"):      # norms of huge values overflow
                    assert_agree([o[()] if o.ndim == 0 else o for o in outs],
                                 [w for w in want], rtol=rtol, what=f"{name} {key}")
            except AssertionError as e:
                failures.append(f"argset {j}: {e}")
    assert checked > 0
    # a tape that declines some arguments must still run others itself
    failures += [f"{name} {key}: declined every argument set" for name, key in declined - served]
    assert not failures, "\n".join(failures[:20])
