"""Checkpointed adjoints with backend="cuda", on the CPU stand-in for the GPU.

``CupyDevice`` is replaced by :class:`~tapediff.codegen.cuda_emu.EmulatedDevice`
(the CUDA kernels compiled for the CPU, NumPy arrays as device arrays), so the
step tapes run as CUDA programs through the executor's CUDA path: results
must equal the interpreted backend's. On a GPU, tests/test_cuda_device.py
covers the real device.
"""
import numpy as np
import pytest

import tapediff as td
import tapediff.cuda_backend as cb
from tapediff.codegen.cuda_emu import EmulatedDevice
from tapediff.runtime import compiler_available

pytestmark = pytest.mark.skipif(not compiler_available(), reason="no working C compiler")


@pytest.fixture
def emulated_gpu(monkeypatch):
    monkeypatch.setattr(cb, "CupyDevice", EmulatedDevice)


def heat(u, p):
    un = u.copy()
    un[1:-1] = u[1:-1] + p["alpha"] * (u[2:] - 2 * u[1:-1] + u[:-2])
    return un


def _agree(a, b):
    (va, (ua, pa)), (vb, (ub, pb)) = a, b
    assert abs(float(va) - float(vb)) <= 1e-12 * abs(float(vb))
    np.testing.assert_allclose(ua, ub, rtol=1e-12, atol=1e-14)
    for k in pb:
        np.testing.assert_allclose(pa[k], pb[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw", [dict(snapshots=3), dict(snapshots=40),
                                dict(memory="6KB", disk="1MB", schedule="two-level")],
                         ids=["revolve", "store-all", "two-level"])
def test_heat_equation_adjoint_equals_the_interpreted_one(emulated_gpu, kw):
    u0 = np.sin(np.linspace(0, np.pi, 64))
    p = {"alpha": np.float64(0.2)}
    args = dict(loss=lambda u: np.sum(u ** 2), running_cost=lambda u, p: 0.1 * np.sum(u))
    cuda = td.checkpointed(heat, 40, backend="cuda", **kw, **args)
    ref = td.checkpointed(heat, 40, backend="interpreted", **kw, **args)
    _agree(cuda.value_and_grad(u0, p), ref.value_and_grad(u0, p))
    assert cuda.stats["forward_steps"] == ref.stats["forward_steps"]
    assert type(cuda._tapes.device).__name__ == "EmulatedDevice"


def test_a_branch_that_changes_mid_run_is_followed(emulated_gpu):
    def step(u, p):
        if np.sum(u) > 0:
            return u * p["a"] - 0.5
        return u * p["a"] + 0.25
    u0, p = np.linspace(0.5, 1.0, 8), {"a": np.float64(0.9)}
    cuda = td.checkpointed(step, 30, 4, loss=lambda u: np.sum(u ** 2), backend="cuda")
    ref = td.checkpointed(step, 30, 4, loss=lambda u: np.sum(u ** 2), backend="interpreted")
    _agree(cuda.value_and_grad(u0, p), ref.value_and_grad(u0, p))
    assert cuda.stats["step_versions"] >= 2
