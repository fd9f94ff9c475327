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


# ---------------------------------------------------------------- a stricter device
class DevArray(np.ndarray):
    """A "device" array: arithmetic with a plain NumPy array raises, as CuPy's
    does, so host/device mix-ups show without a GPU."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        if any(type(x) is np.ndarray and x.ndim for x in inputs):
            raise TypeError(f"{ufunc.__name__}: a device array mixed with a NumPy array")
        plain = [x.view(np.ndarray) if isinstance(x, DevArray) else x for x in inputs]
        if "out" in kw:
            kw["out"] = tuple(o.view(np.ndarray) if isinstance(o, DevArray) else o
                              for o in kw["out"])
        r = getattr(ufunc, method)(*plain, **kw)
        return r.view(DevArray) if isinstance(r, np.ndarray) else r


def _dev(a):
    return np.asarray(a).view(DevArray)


class _StrictXp:
    ndarray = DevArray

    @staticmethod
    def asarray(x, dtype=None):
        return _dev(np.asarray(x.view(np.ndarray) if isinstance(x, DevArray) else x, dtype))

    @staticmethod
    def ascontiguousarray(x):
        return _dev(np.ascontiguousarray(x))

    @staticmethod
    def zeros(shape, dtype=float):
        return _dev(np.zeros(shape, dtype))


class StrictDevice(EmulatedDevice):
    xp = _StrictXp

    def is_array(self, x):
        return isinstance(x, DevArray)

    def to_host(self, x):
        return np.array(x.view(np.ndarray))

    def build(self, programs):
        runners = super().build(programs)
        for r in runners:
            r.new_outputs = (lambda r=r: [_dev(o) for o in type(r).new_outputs(r)])
        return runners


@pytest.fixture
def strict_gpu(monkeypatch):
    """The strict device, and host-only entry points that refuse device arrays."""
    import tapediff.checkpoint.executor as ex
    import tapediff.checkpoint.steptape as stp
    import tapediff.interpreter as it
    from tapediff import pytree
    monkeypatch.setattr(cb, "CupyDevice", StrictDevice)

    def host_only(fn, name):
        def wrapped(*a, **k):
            if any(isinstance(x, DevArray) for x in pytree.flatten([list(a), k])[0]):
                raise TypeError(f"{name} got a device array")
            return fn(*a, **k)
        return wrapped
    monkeypatch.setattr(stp, "_split", host_only(stp._split, "_split"))
    monkeypatch.setattr(stp, "record", host_only(stp.record, "record"))
    monkeypatch.setattr(ex, "record", host_only(ex.record, "record"))
    monkeypatch.setattr(it.Plan, "run", host_only(it.Plan.run, "Plan.run"))


def _branchy(u, p):
    if np.sum(u) > 0:
        return u * p["a"] - 0.5
    return u * p["a"] + 0.25


@pytest.mark.parametrize("kw", [dict(snapshots=4), dict(memory="4KB"),
                                dict(memory="2KB", disk="1MB", schedule="two-level"),
                                dict(snapshots=4, until=lambda u, i: i >= 30)],
                         ids=["revolve", "memory", "two-level", "online"])
def test_device_arrays_never_reach_host_only_code(strict_gpu, kw):
    u0, p = np.linspace(0.5, 1.0, 8), {"a": np.float64(0.9)}
    n = None if "until" in kw else 30
    cuda = td.checkpointed(_branchy, n, loss=lambda u: np.sum(u ** 2), backend="cuda", **kw)
    got = cuda.value_and_grad(_dev(u0), {"a": _dev(p["a"])})
    ref = td.checkpointed(_branchy, n, loss=lambda u: np.sum(u ** 2), backend="interpreted",
                          **kw).value_and_grad(u0, p)
    assert isinstance(got[1][0], DevArray) and isinstance(got[1][1]["a"], DevArray)
    v, (du, dp) = got
    _agree((v, (du.view(np.ndarray), {"a": dp["a"].view(np.ndarray)})), ref)
