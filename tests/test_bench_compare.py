"""Smoke test of benchmarks/compare.py at toy sizes.

Runs the correctness checks of every program (the step that precedes any
timing) with NumPy, interpreted tapediff and the hand-written C, without
needing jax, torch or autograd. Timing is not tested: only that wrong
gradients are caught and the report is produced.
"""
import json

import numpy as np
import pytest

import tapediff as td
from benchmarks import compare
from benchmarks import handwritten as hw

PROGRAMS = {p.key: p for p in compare.PROGRAMS}


@pytest.mark.parametrize("key", list(PROGRAMS))
def test_program_agrees_with_hand_written_numpy(key):
    res = compare.run_program(PROGRAMS[key], "tiny", ["tapediff", "hand-numpy", "numpy"],
                              timing=False, log=None)
    assert set(res) == {"tapediff", "hand-numpy", "numpy"}
    assert all(not r.skipped and r.first_call_s > 0 for r in res.values())


@pytest.mark.skipif(not hw.c_available(), reason="no C compiler for the hand-written baselines")
@pytest.mark.parametrize("key", [k for k, p in PROGRAMS.items() if p.c])
def test_hand_written_c_agrees(key):
    res = compare.run_program(PROGRAMS[key], "tiny", ["hand-c"], timing=False, log=None)
    assert set(res) == set(PROGRAMS[key].c)


@pytest.mark.skipif(not hasattr(td.RecordedFunction, "compile") or not hw.c_available(),
                    reason="no compiled tapes here")
def test_compiled_path():
    # mlp-2: dict parameters, so the out= buffers are exercised too
    res = compare.run_program(PROGRAMS["mlp-2"], "tiny", ["tapediff-compiled"], timing=False, log=None)
    assert set(res) == {"tapediff-compiled", "tapediff-compiled-out"}
    assert res["tapediff-compiled"].native


def test_wrong_gradient_is_caught():
    value, grads = compare._np_result(hw.np_tanh_cube(np.linspace(-1, 1, 7)))
    compare._compare("exact", (value, grads), (value, grads))
    bad = [grads[0] * (1 + 1e-6)]
    with pytest.raises(AssertionError, match="gradient leaf 0"):
        compare._compare("perturbed", (value, bad), (value, grads))
    with pytest.raises(AssertionError, match="value"):
        compare._compare("perturbed", (value * (1 + 1e-6), grads), (value, grads))


def test_report_and_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    compare.main(["--sizes", "tiny", "--only", "tanh-cube-50,heat", "--warm-cache",
                  "--libs", "tapediff,hand-numpy,numpy", "--json", str(out)])
    text = capsys.readouterr().out
    assert "| program | tapediff interpreted |" in text and "Targets (issue 3)" in text
    doc = json.loads(out.read_text())
    assert [p["key"] for p in doc["programs"]] == ["tanh-cube-50", "heat"]
    assert doc["programs"][0]["results"]["tapediff"]["median_s"] > 0
