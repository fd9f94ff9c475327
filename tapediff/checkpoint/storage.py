"""Where snapshot slots live: memory, or ``.npy`` files in a private directory.

:class:`SnapshotStore` holds what a schedule's slots hold -- states (trees of
arrays) and step tapes -- and counts, per storage level, the snapshots and
bytes held at once and the reads and writes. A state in a slot listed as a
disk slot is written leaf by leaf with ``np.save`` into a directory made by
``tempfile.mkdtemp`` (mode 0700: other users cannot read the snapshots) on
the first such write. The directory and its files are removed by
:meth:`SnapshotStore.close`, which the executor calls in a ``finally`` (so
also when a step raises or the run is interrupted with Ctrl-C), and, as a
last resort, when the store is garbage-collected or the interpreter exits.

A state kept in memory is not copied: the executor never writes a state in
place (replays are copy-on-write), so holding a reference is a snapshot.

Examples
--------
>>> import numpy as np
>>> with SnapshotStore(disk_slots={1}) as store:
...     store.put_state(0, np.zeros(3), 24)
...     store.put_state(1, {"a": np.ones(2)}, 16)
...     back = store.get(1)
...     levels = store.level_stats()
>>> back
{'a': array([1., 1.])}
>>> levels["disk"]
{'max_snapshots': 1, 'max_bytes': 16, 'writes': 1, 'reads': 1}
>>> store.directory is None      # removed on close
True
"""
from __future__ import annotations

import os
import shutil
import tempfile
import weakref

import numpy as np

from .. import pytree

__all__ = ["SnapshotStore", "LEVELS"]

LEVELS = ("memory", "disk")


class _Level:
    __slots__ = ("held", "bytes", "max_snapshots", "max_bytes", "writes", "reads")

    def __init__(self):
        self.held = self.bytes = self.max_snapshots = self.max_bytes = 0
        self.writes = self.reads = 0

    def add(self, nbytes):
        self.held += 1
        self.bytes += nbytes
        self.writes += 1
        self.max_snapshots = max(self.max_snapshots, self.held)
        self.max_bytes = max(self.max_bytes, self.bytes)

    def remove(self, nbytes):
        self.held -= 1
        self.bytes -= nbytes


class SnapshotStore:
    """Snapshot slots in memory and on disk.

    Parameters
    ----------
    disk_slots : collection of int, optional
        Slots whose states are written to disk; tapes always stay in memory.

    Attributes
    ----------
    directory : str or None
        The private directory of the disk snapshots while it exists.
    peak_bytes, peak_snapshots : int
        Most bytes, and slots, held at once over both levels.

    Examples
    --------
    >>> store = SnapshotStore()
    >>> store.put_tape(0, "the residuals of a step", 800)
    >>> store.get(0), store.peak_bytes
    ('the residuals of a step', 800)
    >>> store.free(0); store.close()
    """

    def __init__(self, disk_slots=(), to_host=np.asarray, from_host=None):
        self.disk_slots = frozenset(disk_slots)
        # states on a GPU go to disk through host memory and come back
        self._to_host, self._from_host = to_host, from_host
        self.directory = None
        self._finalizer = None
        self._slots = {}          # slot -> (level, payload, nbytes)
        self._levels = {name: _Level() for name in LEVELS}
        self.peak_bytes = self.peak_snapshots = 0
        self._held_bytes = 0

    # ------------------------------------------------------------ context
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        """Drop every slot and remove the disk directory (idempotent)."""
        self._slots.clear()
        if self._finalizer is not None:
            self._finalizer()          # runs shutil.rmtree once
            self._finalizer = None
        self.directory = None

    # ------------------------------------------------------------ slots
    def _account(self, slot, level, payload, nbytes):
        if slot in self._slots:
            raise KeyError(f"slot {slot} is already filled")
        self._slots[slot] = (level, payload, nbytes)
        self._levels[level].add(nbytes)
        self._held_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self._held_bytes)
        self.peak_snapshots = max(self.peak_snapshots, len(self._slots))

    def put_state(self, slot, state, nbytes):
        """Keep ``state`` (a tree of arrays) in ``slot``: in memory, or on disk
        for a disk slot."""
        if slot not in self.disk_slots:
            self._account(slot, "memory", state, nbytes)
            return
        leaves, treedef = pytree.flatten(state)
        directory = self._directory()
        paths = []
        for k, leaf in enumerate(leaves):
            path = os.path.join(directory, f"slot{slot}-leaf{k}.npy")
            np.save(path, self._to_host(leaf), allow_pickle=False)
            paths.append(path)
        self._account(slot, "disk", (treedef, paths), nbytes)

    def put_tape(self, slot, tape, nbytes):
        """Keep a step's tape in ``slot`` (memory)."""
        self._account(slot, "memory", tape, nbytes)

    def get(self, slot):
        """What ``slot`` holds (a state read back from disk for a disk slot)."""
        level, payload, _ = self._slots[slot]
        self._levels[level].reads += 1
        if level == "memory":
            return payload
        treedef, paths = payload
        leaves = [np.load(p, allow_pickle=False) for p in paths]
        if self._from_host is not None:
            leaves = [self._from_host(x) for x in leaves]
        return pytree.unflatten(treedef, leaves)

    def free(self, slot):
        """Release ``slot`` (deleting its files for a disk slot)."""
        level, payload, nbytes = self._slots.pop(slot)
        self._levels[level].remove(nbytes)
        self._held_bytes -= nbytes
        if level == "disk":
            for path in payload[1]:
                os.unlink(path)

    def _directory(self):
        if self.directory is None:
            # mkdtemp creates the directory readable by this user only (0700)
            self.directory = tempfile.mkdtemp(prefix="tapediff-snapshots-")
            self._finalizer = weakref.finalize(self, shutil.rmtree, self.directory, True)
        return self.directory

    # ------------------------------------------------------------ report
    def level_stats(self):
        """Per level: ``max_snapshots``, ``max_bytes``, ``writes``, ``reads``."""
        return {name: {"max_snapshots": lv.max_snapshots, "max_bytes": lv.max_bytes,
                       "writes": lv.writes, "reads": lv.reads}
                for name, lv in self._levels.items()}
