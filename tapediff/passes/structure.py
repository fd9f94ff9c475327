"""Rewrites that follow from how a value was made, whatever its data.

A Cholesky factor is exactly triangular on every replay: the op zeroes the
other triangle. A ``solve`` whose matrix is one (or its transpose) is
recorded as ``solve_triangular``, which substitutes (n^2 per right-hand
side) where the general solve factors the matrix first (2n^3/3). The
rewrite depends only on the tape, never on the values, so every replay
takes it; the solution differs from NumPy's LU only by rounding.
"""
import numpy as np

from ..ops.registry import BY_NAME


def triangular_solves(tape):
    """Rewrite, in place, each ``solve`` of ``tape`` whose matrix is made by
    ``cholesky`` or is the transpose of the last two axes of such a factor
    into ``solve_triangular`` with the triangle the factor has; returns
    ``tape``.

    The gradient stays the gradient: ``solve_triangular``'s VJP gives the
    matrix a cotangent on its triangle only, and cholesky's VJP reads only
    that triangle of its output's cotangent.

    Examples
    --------
    >>> import numpy as np, tapediff as td
    >>> def nll(A, y):
    ...     L = np.linalg.cholesky(A)
    ...     return np.sum(np.linalg.solve(L, y) ** 2)
    >>> "solve_triangular(" in str(td.record(nll, 2 * np.eye(2), np.ones(2)))
    True
    """
    solve = BY_NAME["solve"].code
    op = np.frombuffer(tape.op, dtype=np.uint16)
    sites = np.nonzero(op == solve)[0]
    if not len(sites):
        return tape
    chol, transpose = BY_NAME["cholesky"].code, BY_NAME["transpose"].code
    tri = BY_NAME["solve_triangular"].code
    prod = tape.producers()
    for i in sites:
        j = prod[tape.args[tape.argp[i]]]
        flipped = False
        if j >= 0 and op[j] == transpose:
            axes = tuple(tape.attrs[tape.attr[j]]["axes"])
            nd = len(axes)
            if axes != tuple(range(nd - 2)) + (nd - 1, nd - 2):
                continue
            j, flipped = prod[tape.args[tape.argp[j]]], True
        if j < 0 or op[j] != chol:
            continue
        lower = bool(tape.attrs[tape.attr[j]]["upper"]) == flipped
        tape.op[i] = tri
        tape.attr[i] = tape.attr_id({"lower": lower})
    return tape
