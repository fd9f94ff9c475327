"""The CUDA backend on a GPU agrees with the interpreter (skipped without CuPy and a device).

Every case of the compiled corpus (tests/compiled/cases.py) is replayed with
``compile(backend="cuda")`` on its arguments and replays and compared with
the interpreter: 1e-12 norm-wise for float64, 1e-5 for float32, NaN and inf
positions exact, integers exact. Tapes the CUDA generator does not lower
replay on the host with a CompileWarning and are compared all the same.
"""
import warnings

import numpy as np
import pytest

import tapediff as td
from tapediff import pytree
from tapediff.codegen.cuda_runtime import gpu_status
from tapediff.testing_compiled import assert_agree

usable, why = gpu_status()
pytestmark = pytest.mark.skipif(not usable, reason=f"no GPU for the CUDA backend: {why}")


def _cases():
    from tests.compiled.cases import CASES
    return CASES


def _to_host(tree):
    import cupy as cp
    leaves, td_ = pytree.flatten(tree)
    return pytree.unflatten(td_, [cp.asnumpy(x) if isinstance(x, cp.ndarray) else x
                                  for x in leaves])


def _to_device(tree):
    import cupy as cp
    leaves, td_ = pytree.flatten(tree)
    return pytree.unflatten(td_, [cp.asarray(x) if isinstance(x, np.ndarray) else x
                                  for x in leaves])


@pytest.mark.slow
@pytest.mark.parametrize("case", _cases() if usable else [], ids=lambda c: c.name)
def test_corpus_case_agrees_with_the_interpreter(case):
    rf = td.record(case.fun, *case.args, argnums=case.argnums)
    gt = rf.compile(backend="cuda")
    for args in [case.args] + list(case.replays):
        try:
            want_v, want_g = td.record(case.fun, *args, argnums=case.argnums).value_and_grad(*args)
            grad = True
        except Exception:        # noqa: BLE001  (not a scalar float: compare the primal)
            grad = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", td.CompileWarning)
            if grad:
                got = gt.value_and_grad(*_to_device(args))
                assert_agree(_to_host(got), (want_v, want_g), rtol=case.rtol)
            else:
                got = gt(*_to_device(args))
                assert_agree(_to_host(got), rf(*args), rtol=case.rtol)


def test_float32_arguments_re_record_instead_of_casting():
    import cupy as cp

    def f(x):
        return np.sum(np.tanh(x) ** 3)
    rf = td.record(f, np.ones(1000))
    gt = rf.compile(backend="cuda")
    v64, g64 = gt.value_and_grad(cp.linspace(-1, 1, 1000))
    v32, g32 = gt.value_and_grad(cp.linspace(-1, 1, 1000, dtype=cp.float32))
    assert g64.dtype == cp.float64 and g32.dtype == cp.float32
    assert rf.n_versions == 2
    np.testing.assert_allclose(cp.asnumpy(g32), cp.asnumpy(g64), rtol=1e-5, atol=1e-6)


def test_a_changed_branch_is_followed_on_the_device():
    import cupy as cp

    def f(x):
        if np.sum(x) > 0:
            return np.sum(x ** 2)
        return np.sum(x ** 3)
    gt = td.record(f, np.ones(8)).compile(backend="cuda")
    v1, g1 = gt.value_and_grad(cp.ones(8))
    v2, g2 = gt.value_and_grad(-cp.ones(8))
    assert float(v1) == 8.0 and float(v2) == -8.0
    np.testing.assert_array_equal(cp.asnumpy(g2), np.full(8, 3.0))


def test_checkpointed_heat_equation_on_the_gpu():
    import cupy as cp

    def heat(u, p):
        un = u.copy()
        un[1:-1] = u[1:-1] + p["alpha"] * (u[2:] - 2 * u[1:-1] + u[:-2])
        return un
    u0 = np.sin(np.linspace(0, np.pi, 256))
    p = {"alpha": np.float64(0.2)}
    args = dict(loss=lambda u: np.sum(u ** 2), snapshots=5)
    v, (du, dp) = td.checkpointed(heat, 100, backend="cuda", **args).value_and_grad(
        cp.asarray(u0), {"alpha": cp.asarray(0.2)})
    v0, (du0, dp0) = td.checkpointed(heat, 100, backend="interpreted", **args).value_and_grad(
        u0, p)
    assert abs(float(v) - float(v0)) <= 1e-12 * abs(float(v0))
    np.testing.assert_allclose(cp.asnumpy(du), du0, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(float(dp["alpha"]), float(dp0["alpha"]), rtol=1e-12)
