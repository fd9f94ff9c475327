"""Choosing schedules for budgets, bad input caught before any work, plot and progress."""
import sys

import numpy as np
import pytest

import tapediff as td
from tapediff.checkpoint import ScheduleArgumentError, revolve
from tapediff.checkpoint.planner import choose_for_budget, choose_for_count, parse_bytes

from .problems import PROBLEMS, heat_args, heat_step, sq_loss


# --------------------------------------------------------------------------- sizes

@pytest.mark.parametrize("text, count", [
    ("200MB", 200 * 10**6), ("200 mb", 200 * 10**6), ("1.5GiB", 3 * 2**29), ("5GB", 5 * 10**9),
    ("512", 512), ("2kB", 2000), ("3KiB", 3072), (".5MB", 500_000), (1234, 1234),
    (np.int64(77), 77),
])
def test_parse_bytes(text, count):
    assert parse_bytes(text, "memory") == count


@pytest.mark.parametrize("value, problem", [
    ("12 parsecs", "'12 parsecs'"), ("MB", "'MB'"), (-5, ">= 0 bytes, got -5"),
    (1.5, "1.5"), (None, "None"), (True, "True"), ("", "''"),
])
def test_parse_bytes_rejects(value, problem):
    with pytest.raises(ValueError) as info:
        parse_bytes(value, "memory")
    msg = str(info.value)
    assert msg.startswith("memory must be ") and problem in msg
    assert "200MB" in msg                               # the fix: what to pass


# --------------------------------------------------------------------------- choice

def test_count_rule():
    assert choose_for_count(10, 8).schedule.name == "revolve"
    assert choose_for_count(10, 9).schedule.name == "store-all"
    assert choose_for_count(10, 100).schedule.forward_steps == 10
    assert choose_for_count(10, 3, "mixed").schedule.name == "mixed"
    with pytest.raises(ValueError, match=r"schedule='store-all' keeps n_steps - 1 = 9 tapes.*"
                                         r"pass snapshots >= 9"):
        choose_for_count(10, 3, "store-all")
    with pytest.raises(ValueError, match="schedule must be one of"):
        choose_for_count(10, 3, "binomial")


def test_budget_picks_the_fewest_steps():
    n, state, tape, work = 1000, 8_000, 24_000, 60_000
    for slots in (1, 2, 5, 20, 60, 200, 1000):
        c = choose_for_budget(n, state, tape, work, memory=work + slots * state)
        costs = {k: v for k, v in c.considered.items() if isinstance(v, int)}
        assert c.schedule.forward_steps == min(costs.values()) == costs[c.schedule.name]
        assert c.schedule.peak_bytes(state, tape) <= slots * state
    # everything fits: every tape kept
    c = choose_for_budget(n, state, tape, work, memory=work + 999 * tape)
    assert (c.schedule.name, c.schedule.forward_steps) == ("store-all", n)


def test_budget_forced_kind_that_does_not_fit():
    with pytest.raises(ValueError, match=r"schedule='store-all' does not fit in memory=.*"
                                         r"99 tapes need.*pass a larger budget"):
        choose_for_budget(100, 1000, 1000, 4000, memory="20kB", kind="store-all")


def test_budget_too_small_names_the_fix():
    with pytest.raises(ScheduleArgumentError) as info:
        choose_for_budget(100, state_bytes=1000, tape_bytes=3000, workspace_bytes=6000,
                          memory="6kB")
    msg = str(info.value)
    assert msg.startswith("memory=6kB (6.0 kB) holds no snapshot")
    assert "pass memory >= 7000 bytes" in msg and "snapshots=k" in msg


# --------------------------------------------------------------------------- bad input, early

def counting(step):
    calls = []

    def wrapped(u, p):
        calls.append(1)
        return step(u, p)
    return wrapped, calls


@pytest.mark.parametrize("kwargs, match", [
    ({"n_steps": 0, "snapshots": 2}, r"n_steps must be >= 1, got 0; pass"),
    ({"n_steps": 5, "snapshots": 0}, r"snapshots must be >= 1, got 0; pass"),
    ({"n_steps": 5}, "give snapshots .* or memory"),
    ({"n_steps": 5, "snapshots": 2, "memory": "1MB"}, "exactly one of them"),
    ({"snapshots": 2}, "give n_steps .* or until"),
    ({"n_steps": 5, "snapshots": 2, "until": lambda u, i: True}, "exactly one of them"),
    ({"n_steps": 5, "memory": "lots"}, r"memory must be a byte count .*'lots'"),
    ({"n_steps": 5, "memory": "1MB", "disk": "-1GB"}, r"disk must be a byte count"),
    ({"n_steps": 5, "snapshots": 2, "schedule": "fast"}, r"schedule must be one of"),
    ({"n_steps": 5, "snapshots": 2, "schedule": "two-level"}, r"needs memory= and disk="),
    ({"n_steps": 5, "snapshots": 2, "schedule": "online"}, r"needs until="),
    ({"until": lambda u, i: True, "snapshots": 2, "schedule": "mixed"}, r"needs a known n_steps"),
    ({"until": 3, "snapshots": 2}, r"until must be callable"),
    ({"n_steps": 5, "snapshots": 2, "loss": "sum"}, r"loss must be callable"),
    ({"n_steps": 5, "snapshots": 2, "running_cost": 1.0}, r"running_cost must be callable"),
])
def test_bad_arguments_before_any_work(kwargs, match):
    step, calls = counting(heat_step)
    kwargs = {"loss": sq_loss, **kwargs}
    error = TypeError if "callable" in match else ValueError
    with pytest.raises(error, match=match):
        td.checkpointed(step, **kwargs)
    assert calls == []


def test_budget_below_the_state_fails_before_recording():
    step, calls = counting(heat_step)
    u0, p = heat_args()
    cp = td.checkpointed(step, 50, memory=3 * u0.nbytes, loss=sq_loss)
    with pytest.raises(ValueError, match=r"memory=.* holds no snapshot: the state takes 96 B"
                                         r".* pass memory >= 480 bytes"):
        cp.value_and_grad(u0, p)
    assert calls == []                                # not even recorded


def test_budget_below_one_snapshot_fails_before_any_step():
    step, calls = counting(heat_step)
    u0, p = heat_args()
    cp = td.checkpointed(step, 50, memory=8 * u0.nbytes, loss=sq_loss)
    with pytest.raises(ValueError, match=r"holds no snapshot: one taped step and its adjoint "
                                         r"need .* pass memory >= \d+ bytes"):
        cp.value_and_grad(u0, p)
    assert len(calls) == 1                            # the recording only: no time step


@pytest.mark.parametrize("bad, match", [
    (lambda u, p: u[:-1] * p["alpha"], r"u from shape \(12,\) dtype float64 to shape \(11,\)"),
    (lambda u, p: (u * p["alpha"]).astype(np.float32), r"dtype float64 to shape \(12,\) dtype float32"),
    (lambda u, p: (u, u), "same structure as u"),
])
def test_state_changes_caught_when_recording(bad, match):
    step, calls = counting(bad)
    cp = td.checkpointed(step, 30, 4, loss=lambda u: np.sum(u[0] if isinstance(u, tuple) else u))
    with pytest.raises(td.ShapeMismatch, match=match) as info:
        cp.value_and_grad(*heat_args())
    assert "before any time step" in str(info.value)
    assert len(calls) == 1


# --------------------------------------------------------------------------- plot, progress

def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    step, args, loss, cost = PROBLEMS["running_cost"]
    for kwargs in ({"n_steps": 30, "snapshots": 4}, {"n_steps": 30, "snapshots": 4,
                                                     "schedule": "mixed"},
                   {"until": lambda u, i: i == 30, "snapshots": 4}):
        adj = td.checkpointed(step, loss=loss, running_cost=cost, **kwargs)
        adj.value_and_grad(*args())
        if adj.schedule.name == "revolve":          # one file is enough (rendering is slow)
            path = tmp_path / "schedule.png"
            fig = adj.schedule.plot(path)
            assert path.stat().st_size > 1000
        else:
            fig = adj.schedule.plot()
        top, bottom = fig.axes[:2]
        assert top.get_ylabel() == "time step" and bottom.get_ylabel() == "slots"


def test_plot_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        revolve(10, 2).plot("never.png")


def test_progress(capsys):
    pytest.importorskip("tqdm")
    cp = td.checkpointed(heat_step, 20, 3, loss=sq_loss, progress=True)
    cp.value_and_grad(*heat_args())
    err = capsys.readouterr().err
    total = cp.schedule.forward_steps + cp.schedule.reverse_steps
    assert f"{total}/{total}" in err


def test_progress_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match="pip install tqdm"):
        td.checkpointed(heat_step, 20, 3, loss=sq_loss, progress=True)


def test_repr_and_schedule_attribute():
    cp = td.checkpointed(heat_step, 20, 3, loss=sq_loss)
    assert cp.schedule.name == "revolve" and "n_steps=20 snapshots=3" in repr(cp)
    budget = td.checkpointed(heat_step, 20, memory="1MB", loss=sq_loss)
    assert budget.schedule is None                    # chosen by the first run
    budget.value_and_grad(*heat_args())
    assert budget.schedule.name == budget.stats["schedule"] == "store-all"
