"""pytest-benchmark suite for repeated calls of compiled tapes on tiny
problems, where the Python around the C call is most of the time
(``tapediff/fastpath.py``).

Run: ``python -m pytest benchmarks/test_bench_calls.py --benchmark-only``.
Timings, not tests: nothing here asserts a speed. ``compare.py`` prints the
ratios to the peers that the README quotes (tanh-cube n = 50, the 2-50-2
MLP). Skipped without a working C compiler.
"""
import numpy as np
import pytest

import tapediff as td
from tapediff.runtime import compiler_available

from .programs import mlp, mlp_args

pytestmark = pytest.mark.skipif(not compiler_available(), reason="no working C compiler")


def tanh_cube(x):
    return np.sum(np.tanh(x) ** 3) + x @ x


@pytest.fixture(scope="module")
def small():
    x = np.linspace(-1, 1, 50)
    ct = td.record(tanh_cube, x).compile()
    ct.value_and_grad(x)
    ct.value_and_grad(x)
    return ct, x


@pytest.fixture(scope="module")
def mlp2():
    args = mlp_args(batch=1, n_in=2, hidden=50, n_out=2, seed=4)
    ct = td.record(mlp, *args, argnums=0).compile()
    ct.value_and_grad(*args)
    ct.value_and_grad(*args)
    return ct, args


def test_tanh_cube_50_value_and_grad(benchmark, small):
    ct, x = small
    benchmark(ct.value_and_grad, x)


def test_tanh_cube_50_value_and_grad_out(benchmark, small):
    ct, x = small
    g = np.empty_like(x)
    benchmark(lambda: ct.value_and_grad(x, out=g))


def test_tanh_cube_50_primal(benchmark, small):
    ct, x = small
    ct(x)
    benchmark(ct, x)


def test_mlp_2_50_2_value_and_grad(benchmark, mlp2):
    ct, args = mlp2
    benchmark(ct.value_and_grad, *args)


def test_mlp_2_50_2_value_and_grad_new_batch(benchmark, mlp2):
    # a training loop's call: the same parameter arrays, a new batch each time
    ct, (w, x, y) = mlp2
    batches = [(x + k, y) for k in range(16)]
    it = iter(range(10**9))
    benchmark(lambda: ct.value_and_grad(w, *batches[next(it) % 16]))


def test_mlp_2_50_2_value_and_grad_out(benchmark, mlp2):
    ct, args = mlp2
    out = {k: np.empty_like(v) for k, v in args[0].items()}
    ct.value_and_grad(*args, out=out)
    benchmark(lambda: ct.value_and_grad(*args, out=out))


def test_momentum_step_out_new_tuple_per_call(benchmark):
    # ``ct(w, m, g, out=(w, m))`` as a loop writes it: a new out tuple per call,
    # the same arrays (updated in place)
    def step(w, m, g):
        m = 0.9 * m + g
        return w - 0.1 * m, m
    w, m, g = np.ones(50), np.zeros(50), np.linspace(-1, 1, 50)
    ct = td.record(step, w, m, g).compile()
    ct(w, m, g, out=(w, m))
    benchmark(lambda: ct(w, m, g, out=(w, m)))
