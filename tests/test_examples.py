"""The scripts in examples/ run and show what they claim, at small sizes."""
import functools
import importlib.util
import pathlib
import runpy
import sys

import numpy as np
import pytest

import tapediff as td
from tapediff.testing import check_grads

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


@functools.lru_cache(maxsize=None)
def load(name):
    """Import examples/<name>.py once (as module ``example_<name>``)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_replayed_gradient_matches_finite_differences():
    assert load("quickstart").main(batch=5, verbose=False) < 1e-7


def test_heat_equation_gradient_and_loop_stored_once():
    heat = load("heat_equation")
    r = heat.main(n=10, steps=20, verbose=False)
    assert r["max_rel_error"] < 1e-6
    assert r["replay_error"] < 1e-12
    # the time loop is stored once: the tape does not grow with the step count
    assert heat.main(n=10, steps=60, verbose=False)["n_instructions"] == r["n_instructions"]
    assert r["n_instructions"] < 20


def test_implicit_solver_vjp_matches_finite_differences():
    ex = load("implicit_solver")
    r = ex.main(n=4, seed=1, verbose=False)
    assert r["max_rel_error"] < 1e-6
    assert r["replay_error"] < 1e-10
    # the Newton iterations carry no derivatives: only the link and the objective
    assert r["n_active"] <= 6


def test_implicit_solver_rules_pass_check_grads():
    ex = load("implicit_solver")
    A, p, w = ex.make_problem(3, seed=2)
    # JVP vs central differences and VJP vs JVP, in both A and p
    check_grads(lambda A_, p_: ex.objective(A_, p_, w), A, p, rtol=1e-6)
    check_grads(ex.solve_cubic, A, p, rtol=1e-6)


def test_branches_replay_across_both_branches_and_strict_raises():
    ex = load("branches_and_guards")
    r = ex.main(n=4, verbose=False)
    # small, large, small, large, small: one re-recording, then versions reused
    assert r["versions"] == [1, 2, 2, 2, 2]
    assert r["max_grad_error"] < 1e-12
    assert r["strict_versions"] == 1
    msg = r["branch_changed"]
    assert msg is not None, "strict=True did not raise BranchChanged"
    if_line = next(i for i, line in enumerate((EXAMPLES / "branches_and_guards.py")
                                              .read_text().splitlines(), 1)
                   if line.strip().startswith("if e > limit"))
    assert f"branches_and_guards.py:{if_line}" in msg


def test_branch_changed_is_raised_directly():
    ex = load("branches_and_guards")
    tape = td.record(ex.clipped_energy, np.full(3, 0.1), 1.0, strict=True)
    with pytest.raises(td.BranchChanged, match="recorded False but this input gives True"):
        tape(np.full(3, 2.0), 1.0)


def test_logistic_regression_trains():
    r = load("logistic_regression").main(n=120, d=3, steps=40, verbose=False)
    losses = np.array(r["losses"])
    assert losses[0] == pytest.approx(np.log(2))       # zero weights: p = 1/2
    assert np.all(np.diff(losses) <= 1e-12)             # gradient descent: monotone
    assert losses[-1] < 0.6 * losses[0]
    assert r["accuracy"] > 0.85
    assert r["n_versions"] == 1                         # replayed, never re-recorded


@pytest.mark.parametrize("name, argv, expect", [
    ("quickstart", ["4"], "max |replayed gradient - finite difference|"),
    ("heat_equation", ["8", "5"], "max relative error"),
    ("implicit_solver", ["3"], "max relative error"),
    ("branches_and_guards", ["3"], "strict=True raised BranchChanged"),
    ("logistic_regression", ["60", "2", "10"], "final training accuracy"),
])
def test_example_runs_as_a_script(name, argv, expect, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / f"{name}.py")] + argv)
    runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__")
    assert expect in capsys.readouterr().out
