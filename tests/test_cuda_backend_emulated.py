"""CudaFunction end to end on the CPU stand-in for the GPU (EmulatedDevice).

The same code path as ``compile(backend="cuda")`` (signatures, versions,
guards evaluated by the kernels, dtype re-recording, host fallback for ops
without a CUDA lowering, status codes raised as exceptions), with the
kernels compiled for the CPU and NumPy arrays standing in for CuPy's.
"""
import warnings

import numpy as np
import pytest

import tapediff as td
from tapediff.codegen.cuda_emu import EmulatedDevice
from tapediff.cuda_backend import CudaFunction
from tapediff.runtime import compiler_available

pytestmark = pytest.mark.skipif(not compiler_available(), reason="no working C compiler")


def emulated(f, *args, **kw):
    rf = td.record(f, *args, **kw)
    return rf, CudaFunction(rf, device=EmulatedDevice())


def mlp(w, x, y):
    h = np.tanh(x @ w["W1"] + w["b1"])
    z = h @ w["W2"] + w["b2"]
    z = z - np.max(z, axis=1, keepdims=True)
    return np.mean(np.log(np.sum(np.exp(z), axis=1)) - z[np.arange(len(y)), y])


def mlp_args(dtype=np.float64, seed=0):
    r = np.random.default_rng(seed)
    w = {"W1": r.normal(size=(6, 16)), "b1": r.normal(size=16), "W2": r.normal(size=(16, 4)),
         "b2": np.zeros(4)}
    w = {k: v.astype(dtype) for k, v in w.items()}
    return w, r.normal(size=(10, 6)).astype(dtype), r.integers(0, 4, 10)


def test_mlp_value_and_gradient_agree_with_the_interpreter():
    rf, gt = emulated(mlp, *mlp_args())
    for seed in range(3):
        args = mlp_args(seed=seed)
        v, g = gt.value_and_grad(*args)
        v0, g0 = td.value_and_grad(mlp)(*args)
        assert abs(float(v) - float(v0)) <= 1e-12 * abs(float(v0))
        for k in g0:
            np.testing.assert_allclose(g[k], g0[k], rtol=1e-12, atol=1e-14)
    assert rf.n_versions == 1


def test_float32_arguments_get_their_own_recording_not_a_cast():
    rf, gt = emulated(mlp, *mlp_args())
    gt.value_and_grad(*mlp_args())
    v32, g32 = gt.value_and_grad(*mlp_args(np.float32))
    assert g32["W1"].dtype == np.float32
    assert len(gt.recordings) == 2
    t32 = gt.recordings[1].tape
    assert np.dtype(t32.dtype(t32.inputs[0])) == np.float32
    v0, g0 = td.value_and_grad(mlp)(*mlp_args(np.float32))
    np.testing.assert_allclose(g32["W1"], g0["W1"], rtol=1e-5, atol=1e-6)


def test_branches_are_followed_by_the_kernels_guards():
    def f(x):
        if np.sum(x) > 0:
            return np.sum(x ** 2)
        return np.sum(x ** 3)
    rf, gt = emulated(f, np.ones(8))
    for sign in (1, -1, 1, -1):
        v, g = gt.value_and_grad(sign * np.ones(8))
        assert float(v) == (8.0 if sign > 0 else -8.0)
        np.testing.assert_array_equal(g, np.full(8, 2.0 if sign > 0 else 3.0))
    assert rf.n_versions == 2
    # both versions are built once; later calls pick them on the "device"
    assert len(gt._programs) == 2


def test_out_of_bounds_index_and_singular_matrix_raise():
    def pick(x, i):
        return np.sum(x[i])
    _, gt = emulated(pick, np.ones(5), np.array([0, 4]))
    assert float(gt(np.arange(5.0), np.array([1, 4]))) == 5.0
    with pytest.raises(IndexError):
        gt(np.arange(5.0), np.array([1, 7]))

    def solve(A, b):
        return np.sum(np.linalg.solve(A, b))
    _, gs = emulated(solve, np.eye(3), np.ones(3))
    assert float(gs(2 * np.eye(3), np.ones(3))) == 1.5
    with pytest.raises(np.linalg.LinAlgError):
        gs(np.zeros((3, 3)), np.ones(3))


def test_an_op_without_cuda_lowering_replays_on_the_host_with_a_warning():
    def f(x, d):       # an integer reciprocal (not lowered)
        return np.sum(x * np.reciprocal(d))
    d = np.array([2, 1, 1, 3])
    _, gt = emulated(f, np.ones(4), d)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v, g = gt.value_and_grad(np.array([3.0, 1.0, 2.0, 0.0]), d)
    assert any("CUDA backend cannot lower reciprocal" in str(c.message) for c in caught)
    v0, g0 = td.value_and_grad(f)(np.array([3.0, 1.0, 2.0, 0.0]), d)
    assert float(v) == float(v0)
    np.testing.assert_array_equal(g, g0)


def test_a_failed_guard_wins_over_a_later_index_error():
    # C returns at the guard; the kernels keep going, so the first status must stick
    def f(x, i):
        return x[i] * 2 if np.sum(x) > 0 else x[:2] * 3
    x = np.arange(1.0, 5.0)
    _, gt = emulated(f, x, np.array([1, 2]))
    np.testing.assert_array_equal(gt(x, np.array([1, 2])), [4.0, 6.0])
    np.testing.assert_array_equal(gt(-x - 1, np.array([1, 7])), [-6.0, -9.0])


def test_a_branch_decided_differently_by_device_rounding_gives_numpys_result():
    def f(x):
        if np.sum(x) > 0:
            return x * 2.0
        return x * 3.0
    _, gt = emulated(f, np.ones(8))
    gt(np.ones(8))
    x = np.array([1e16, 1, 1, 1, 1, 1, 1, -1e16])   # NumPy's pairwise sum: 4
    np.testing.assert_array_equal(gt(x), f(x))


@pytest.mark.parametrize("scratch", [None, 3 * 16 * 7])
def test_sorts_run_a_thread_per_line_with_its_own_scratch(monkeypatch, scratch):
    # 10 lines of 7: a thread each, or (scratch for 3 lines) 3 threads taking
    # every third line; ties, NaN and both sort and stable argsort. (The
    # emulator runs threads one after another: that no two threads share
    # scratch needs a device, tests/test_cuda_device.py.)
    from tapediff.codegen import cuda
    if scratch is not None:
        monkeypatch.setattr(cuda, "SORT_SCRATCH", scratch)

    def f(x, k):
        order = np.argsort(k, axis=1, kind="stable")
        return np.sum(np.sort(x, axis=1) * np.arange(1.0, 8.0)) + np.sum(
            np.take_along_axis(x, order, axis=1) ** 2 * np.arange(7.0))
    r = np.random.default_rng(3)
    x = np.round(r.normal(size=(10, 7)), 1)
    x[2, 3] = np.nan
    k = r.integers(-2, 3, size=(10, 7))
    rf, gt = emulated(f, x, k, argnums=0)
    for seed in range(2):
        x2 = np.round(np.random.default_rng(seed).normal(size=(10, 7)), 1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")        # lowered: no fallback to the host
            v, g = gt.value_and_grad(x2, k)
        v0, g0 = rf.value_and_grad(x2, k)
        assert abs(float(v) - float(v0)) <= 1e-12 * abs(float(v0))
        np.testing.assert_allclose(g, g0, rtol=1e-12, atol=1e-14)


# ------------------------------------------------ the threaded emulator itself
def _sum_program():
    from tapediff.codegen.cuda import CudaProgram
    rf = td.record(lambda x: np.sum(np.tanh(x) ** 3), np.ones((37, 5)))
    return CudaProgram(rf.tape)


def _emulated_sums(x, **blocks):
    from tapediff.codegen.cuda_emu import build_emulated
    (et,) = build_emulated([_sum_program()], **blocks)
    outs = et.new_outputs()
    assert et.call([x], outs) == 0
    return outs[0][()]


@pytest.mark.parametrize("blocks", [dict(threads=1), dict(threads=8, rgrid=4),
                                    dict(threads=8, rgrid=4, reverse=True),
                                    dict(threads=4, rgrid=3)])
def test_emulated_block_trees_agree_with_numpy(blocks):
    x = np.random.default_rng(1).normal(size=(37, 5))
    want = np.sum(np.tanh(x) ** 3)
    assert abs(_emulated_sums(x, **blocks) - want) <= 1e-13 * abs(want)


def test_threaded_emulator_catches_a_missing_barrier(monkeypatch):
    # the tree without the barrier inside its loop: a thread reads a partner's
    # slot before the partner has folded into it (one order or the other)
    from tapediff.codegen import cuda
    fold = cuda._block_fold

    def without_barrier(*args):
        lines = fold(*args)
        last = max(k for k, ln in enumerate(lines) if "__syncthreads" in ln)
        return lines[:last] + lines[last + 1:]
    monkeypatch.setattr(cuda, "_block_fold", without_barrier)
    x = np.random.default_rng(1).normal(size=(37, 5))
    want = np.sum(np.tanh(x) ** 3)
    assert abs(_emulated_sums(x, threads=1) - want) <= 1e-13 * abs(want)   # one thread: no tree
    got = [_emulated_sums(x, threads=8, rgrid=4, reverse=r) for r in (False, True)]
    assert any(abs(g - want) > 1e-6 * abs(want) for g in got)


def test_threaded_emulator_refuses_a_barrier_some_threads_skip(monkeypatch):
    from tapediff.codegen import cuda
    fold = cuda._block_fold
    monkeypatch.setattr(cuda, "_block_fold",
                        lambda *a: ["    if (threadIdx.x == 1) return;"] + fold(*a))
    with pytest.raises(AssertionError, match="disagreed on a __syncthreads"):
        _emulated_sums(np.ones((37, 5)), threads=4, rgrid=2)


def test_emulator_configuration_is_checked():
    from tapediff.codegen.cuda_emu import build_emulated
    with pytest.raises(ValueError, match="power of two"):
        build_emulated([_sum_program()], threads=6)
    with pytest.raises(ValueError, match="rgrid=0"):
        build_emulated([_sum_program()], rgrid=0)
