"""Data-dependent branches: guards, versions, and strict mode.

An ``if`` on traced data cannot be baked into a tape silently: tapediff
records a *guard* that checks, on every replay, that the input takes the
branch that was recorded. When it does not, the function is recorded again
for the new path and both versions are kept (``tape.n_versions``); later
calls pick the right version without re-recording. With ``strict=True`` a
changed branch raises ``td.BranchChanged`` naming the line of the ``if``.

Run:  python examples/branches_and_guards.py [n]
"""
import sys

import numpy as np

import tapediff as td


def clipped_energy(x, limit):
    """Quadratic energy, switched to a linear penalty when it gets large."""
    e = np.sum(x ** 2)
    if e > limit:                      # a branch on data: recorded as a guard
        return 2 * np.sqrt(limit * e) - limit   # C^1 continuation beyond the limit
    return e


def grad_by_hand(x, limit):
    e = np.sum(x ** 2)
    return 2 * x * np.sqrt(limit / e) if e > limit else 2 * x


def main(n=5, seed=0, verbose=True):
    """Replay across both branches, then show strict mode.

    Returns a dict: the versions recorded after each call, the largest
    gradient error against the hand-written derivative, and the
    ``BranchChanged`` message (None if it was not raised).
    """
    out = print if verbose else (lambda *a, **k: None)
    rng = np.random.default_rng(seed)
    limit = float(n)                   # a Python float: a replayed 0-d input
    small = 0.1 * rng.standard_normal(n)          # e < limit: quadratic branch
    large = 3.0 * rng.standard_normal(n) + 3.0    # e > limit: linear branch

    tape = td.record(clipped_energy, small, limit)
    out(f"recorded on a small input: {tape.n_versions} version")
    out(tape)

    versions, err = [], 0.0
    for name, x in [("small", small), ("large", large), ("small", -small),
                    ("large", large / 2), ("small", small / 2)]:
        v, g = tape.value_and_grad(x, limit)
        err = max(err, float(np.max(np.abs(g - grad_by_hand(x, limit)))))
        versions.append(tape.n_versions)
        out(f"  {name} input: value {float(v):9.4f}  versions kept: {tape.n_versions}")
    out(f"max gradient error over both branches: {err:.1e}")
    out("(the first large input re-recorded; later calls reuse the kept versions)")

    # strict=True: never re-record, tell which guard failed instead.
    strict = td.record(clipped_energy, small, limit, strict=True)
    message = None
    try:
        strict.value_and_grad(large, limit)
    except td.BranchChanged as e:
        message = str(e)
        out(f"\nstrict=True raised BranchChanged:\n  {message}")
    return {"versions": versions, "max_grad_error": err, "branch_changed": message,
            "strict_versions": strict.n_versions}


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
