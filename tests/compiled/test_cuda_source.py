"""The CUDA generator's output for every corpus tape compiles with ``nvcc --ptx``.

No GPU is needed: this checks the generated kernels' syntax and types on the
machines that run CI. Agreement with the interpreter on a device is checked by
tests/test_cuda_device.py (skipped without CuPy and a GPU). The ops the CUDA
generator does not lower yet are listed at the end of the run.
"""
import shutil

import pytest

from tapediff.codegen import Unsupported
from tapediff.codegen.cuda import CudaProgram, module_source, nvcc_ptx
from tapediff.testing_compiled import _versions

from .conftest import GROUPS

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")

#: op -> corpus cases whose tapes the CUDA generator left out (for the summary)
CUDA_UNSUPPORTED = {}
#: group -> (tapes lowered, tapes seen)
CUDA_COUNTS = {}


def cuda_programs(prepared):
    """CudaProgram for every tape of every version of the prepared cases, the
    generator's exceptions other than Unsupported, and the number of tapes."""
    programs, errors, seen = [], [], 0
    for name, p in prepared.items():
        for v in _versions(p.rf):
            for key, tape in (("primal", v.tape), ("grad", v.grad_tape), ("vjp", v.vjp_tape)):
                if tape is None:
                    continue
                seen += 1
                try:
                    programs.append(CudaProgram(tape))
                except Unsupported as e:
                    CUDA_UNSUPPORTED.setdefault(e.op, set()).add(name)
                except Exception as e:   # noqa: BLE001  (a generator bug: report it)
                    errors.append(f"{name} ({key}): {type(e).__name__}: {e}")
    return programs, errors, seen


@needs_nvcc
@pytest.mark.slow
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_generated_cuda_compiles_with_nvcc(corpus, group):
    programs, errors, seen = cuda_programs(corpus(group))
    CUDA_COUNTS[group] = (len(programs), seen)
    assert not errors, "\n".join(errors)
    assert programs, "no tape of the group lowered to CUDA"
    ok, messages = nvcc_ptx(module_source(programs))
    assert ok, messages[-6000:]
