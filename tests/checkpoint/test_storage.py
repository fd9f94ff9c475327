"""Two-level checkpointing: the disk placement, the snapshot store, and cleanup.

Disk snapshots are .npy files in a private directory (tempfile.mkdtemp, mode
0700) that must be gone after the run -- also when a step raises midway or
the run is interrupted.
"""
import os
import stat
import tempfile

import numpy as np
import pytest

import tapediff as td
from tapediff.checkpoint import forward_steps_revolve, revolve, simulate, two_level
from tapediff.checkpoint.multistage import slot_accesses
from tapediff.checkpoint.storage import SnapshotStore

from .problems import PROBLEMS, assert_matches_reference


@pytest.fixture
def made_dirs(monkeypatch, tmp_path):
    """Every snapshot directory mkdtemp makes during the test (under tmp_path),
    with its mode (other temporary directories, e.g. compiler builds, pass)."""
    made = []
    original = tempfile.mkdtemp

    def spy(*args, **kwargs):
        if kwargs.get("prefix") != "tapediff-snapshots-":
            return original(*args, **kwargs)
        kwargs["dir"] = str(tmp_path)
        path = original(*args, **kwargs)
        made.append((path, stat.S_IMODE(os.stat(path).st_mode)))
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", spy)
    return made


# --------------------------------------------------------------------------- placement

def test_least_used_slots_go_to_disk():
    for n, m, d in [(1000, 6, 4), (200, 2, 3), (57, 0, 5), (30, 5, 0), (12, 3, 30)]:
        sched = two_level(n, m, d)
        simulate(sched)
        assert sched.forward_steps == forward_steps_revolve(n, m + d)
        acc = slot_accesses(sched)
        used = sorted(acc)
        assert len(sched.disk_slots) == min(d, len(used))
        on_disk = [sum(acc[k]) for k in sched.disk_slots]
        in_memory = [sum(acc[k]) for k in used if k not in sched.disk_slots]
        assert not in_memory or not on_disk or max(on_disk) <= min(in_memory)


def test_binomial_access_counts():
    # slot k (recursion depth k) of revolve(n, s) is written C(r+k-1, k) times
    # and read about as often as the next deeper one is written
    acc = slot_accesses(revolve(1000, 10))
    assert acc[0] == (1, 4) and acc[1] == (4, 10) and acc[2] == (10, 20)


def test_two_level_arguments():
    with pytest.raises(ValueError, match="disk_snapshots must be an integer >= 0"):
        two_level(10, 2, -1)
    with pytest.raises(ValueError, match="must be >= 1, got 0"):
        two_level(10, 0, 0)


# --------------------------------------------------------------------------- the store

def test_store_files_mode_and_cleanup(made_dirs):
    state = {"a": np.arange(3.0), "b": np.ones((2, 2), np.float32)}
    with SnapshotStore(disk_slots={0, 2}) as store:
        store.put_state(0, state, 40)
        store.put_state(1, state, 40)               # a memory slot
        (directory, mode), = made_dirs
        assert mode == 0o700                         # other users cannot read it
        assert sorted(os.listdir(directory)) == ["slot0-leaf0.npy", "slot0-leaf1.npy"]
        back = store.get(0)
        np.testing.assert_array_equal(back["a"], state["a"])
        assert back["b"].dtype == np.float32
        assert store.get(1) is state                 # memory: a reference, no copy
        store.free(0)
        assert os.listdir(directory) == []
        store.put_state(2, state, 40)
        stats = store.level_stats()
    assert not os.path.exists(directory)
    assert stats["disk"] == {"max_snapshots": 1, "max_bytes": 40, "writes": 2, "reads": 1}
    assert stats["memory"] == {"max_snapshots": 1, "max_bytes": 40, "writes": 1, "reads": 1}


def test_store_without_disk_slots_makes_no_directory(made_dirs):
    with SnapshotStore() as store:
        store.put_state(0, np.ones(2), 16)
    assert made_dirs == []


# --------------------------------------------------------------------------- runs

def test_two_level_run_uses_disk_and_cleans_up(made_dirs, tmp_path):
    step, args, loss, _ = PROBLEMS["lorenz96"]
    u0, p = args()
    cp = td.checkpointed(step, 24, memory=10_000, disk=5 * u0.nbytes, loss=loss,
                         schedule="two-level")
    value, grads = cp.value_and_grad(u0, p)
    assert_matches_reference("lorenz96", 24, value, grads)
    assert len(made_dirs) == 1 and made_dirs[0][1] == 0o700
    assert list(tmp_path.iterdir()) == []            # removed after the run
    disk = cp.stats["levels"]["disk"]
    assert disk["writes"] >= 1 and disk["max_bytes"] <= 5 * u0.nbytes


def test_auto_uses_disk_only_when_it_saves_steps():
    step, args, loss, _ = PROBLEMS["lorenz96"]
    u0, p = args()
    state = u0.nbytes
    cp = td.checkpointed(step, 24, memory=1_000, disk=20 * state, loss=loss)
    cp.value_and_grad(u0, p)
    tight = cp.stats
    assert tight["schedule"] == "two-level"
    assert tight["forward_steps"] < min(v for k, v in tight["considered"].items()
                                        if k != "two-level" and isinstance(v, int))
    cp = td.checkpointed(step, 24, memory=100_000, disk=20 * state, loss=loss)
    cp.value_and_grad(u0, p)
    assert cp.stats["schedule"] == "store-all"        # memory alone does best
    assert cp.stats["levels"]["disk"]["writes"] == 0


@pytest.mark.parametrize("error", [FloatingPointError, KeyboardInterrupt])
def test_files_removed_when_a_step_raises_midway(made_dirs, tmp_path, error):
    calls = []

    def step(u, p):
        # replayed from its tape until the state grows past 2; then the guard
        # on this branch fails, the step is recorded again, and it raises
        calls.append(1)
        if np.max(u) > 2.0:
            raise error("stop")
        return u * p

    cp = td.checkpointed(step, 40, memory=300, disk=10 * 24, loss=lambda u: np.sum(u),
                         schedule="two-level")
    with pytest.raises(error):
        cp.value_and_grad(np.ones(3), np.float64(1.05))
    assert len(made_dirs) == 1                        # snapshots were on disk ...
    assert list(tmp_path.iterdir()) == []             # ... and are gone
    assert len(calls) >= 2                            # recorded, then raised on the new branch


def test_disk_requires_memory_and_no_until():
    step, args, loss, _ = PROBLEMS["heat"]
    with pytest.raises(ValueError, match="disk needs memory"):
        td.checkpointed(step, 10, 3, disk="1GB", loss=loss)
    with pytest.raises(ValueError, match="disk= is not supported with until="):
        td.checkpointed(step, until=lambda u, i: i == 3, memory="1MB", disk="1GB", loss=loss)
