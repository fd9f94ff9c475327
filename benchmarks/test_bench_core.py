"""pytest-benchmark suite for recording and interpreted replay.

Run: ``python -m pytest benchmarks/ --benchmark-only``. These are timings, not
tests: nothing here asserts a speed. ``record_replay.py`` prints the ratios
that the README quotes.
"""
import numpy as np
import pytest

import tapediff as td

from .programs import chain, heat, mlp, mlp_args, taylor


@pytest.mark.parametrize("n", [10_000])
def test_record_taylor(benchmark, n):
    benchmark(lambda: td.record(taylor, 0.5, n))


def _rows_then_loop(x):
    """Per-row values made in one loop and read by a later one: the first
    loop cannot fold (its values are read after it), which the loop finder
    once retried at every start, O(n^2)."""
    rows = [x[i] for i in range(x.shape[0])]
    s = x[0] * 0
    for r in rows:
        s = s + np.sin(r)
    return np.sum(s)


@pytest.mark.parametrize("n", [2000])
def test_record_rows_then_loop(benchmark, n):
    x = np.random.default_rng(0).normal(size=(n, 3))
    benchmark(lambda: td.record(_rows_then_loop, x))


def test_replay_chain_value_and_grad(benchmark):
    x = np.linspace(-1, 1, 10_000)
    tape = td.record(chain, x)
    tape.value_and_grad(x)
    benchmark(tape.value_and_grad, x)


def test_numpy_chain(benchmark):
    x = np.linspace(-1, 1, 10_000)
    benchmark(chain, x)


def test_replay_mlp_value_and_grad(benchmark):
    args = mlp_args()
    tape = td.record(mlp, *args)
    tape.value_and_grad(*args)
    benchmark(tape.value_and_grad, *args)


def test_one_shot_mlp_value_and_grad(benchmark):
    args = mlp_args()
    benchmark(td.value_and_grad(mlp), *args)


def test_replay_heat(benchmark):
    u0 = np.sin(np.linspace(0, np.pi, 1000))
    tape = td.record(heat, u0, 0.2, 100)
    tape.value_and_grad(u0, 0.2, 100)
    benchmark(tape.value_and_grad, u0, 0.2, 100)
