"""The CUDA backend's API where no GPU is needed: errors, info, the benchmark's skip."""
import os
import subprocess
import sys

import numpy as np
import pytest

import tapediff as td
from tapediff.codegen.cuda_runtime import gpu_status

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_unknown_backend_names_the_choices():
    rf = td.record(lambda x: np.sum(x), np.ones(2))
    with pytest.raises(ValueError, match=r"backend='gpu': choose 'c' .* or 'cuda'"):
        rf.compile(backend="gpu")


@pytest.mark.skipif(gpu_status()[0], reason="a GPU is usable here")
def test_cuda_without_a_usable_gpu_says_why():
    rf = td.record(lambda x: np.sum(x), np.ones(2))
    with pytest.raises((ImportError, RuntimeError), match="CuPy|CUDA"):
        rf.compile(backend="cuda")


def test_info_reports_the_cuda_backend():
    out = subprocess.run([sys.executable, "-m", "tapediff", "info"], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stdout.splitlines() if "CUDA" in ln]
    assert line and ("usable" in line[0] or "unavailable" in line[0])


@pytest.mark.skipif(gpu_status()[0], reason="a GPU is usable here: the benchmark would run")
def test_gpu_benchmark_skips_cleanly_without_a_gpu():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_cuda.py"),
                          "--quick"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("skipped: ")


def test_cuda_spelling_differs_from_c_only_in_the_override_table():
    from tapediff.ops.elementwise import _CUDA_OVERRIDES, UFUNC_OPS
    for op in UFUNC_OPS.values():
        if op.name in _CUDA_OVERRIDES:
            assert op.cuda == _CUDA_OVERRIDES[op.name] and op.cuda != op.c
        else:
            assert op.cuda is op.c
