"""Differentiate through a Newton solver with the implicit-function theorem.

We solve the nonlinear system  F(x; A, p) = A x + x**3 - p = 0  for x by
Newton's method, iterating ``while err > tol``. Differentiating the Newton
iterations themselves would be wasteful (and only approximately right), so
the solver is a ``td.custom_op``: its forward is recorded without
derivatives, and its VJP comes from the implicit-function theorem.

With J = dF/dx = A + diag(3 x**2), a cotangent g of x gives
    lam = J^{-T} g,   dL/dp = lam,   dL/dA = -outer(lam, x)
(one linear solve, however many Newton steps were taken).

Run:  python examples/implicit_solver.py [n]
"""
import sys

import numpy as np

import tapediff as td

TOL = 1e-12


@td.custom_op
def solve_cubic(A, p):
    """Newton's method for A x + x**3 = p, to a residual below TOL."""
    x = np.zeros_like(p)
    err = np.max(np.abs(p))
    while err > TOL:                          # a data-dependent loop: recorded with guards
        r = A @ x + x ** 3 - p
        J = A + np.diag(3 * x ** 2)
        x = x - np.linalg.solve(J, r)
        err = np.max(np.abs(A @ x + x ** 3 - p))
    return x


@solve_cubic.defvjp
def _(g, x, A, p):
    # implicit-function theorem: one transposed linear solve with the Jacobian at x
    J = A + np.diag(3 * x ** 2)
    lam = np.linalg.solve(J.T, g)
    return (-np.outer(lam, x), lam)


@solve_cubic.defjvp
def _(tangents, x, A, p):
    # forward mode: J dx = dp - dA x (used by tapediff.testing.check_grads)
    tA, tp = tangents
    rhs = np.zeros_like(x)
    if tp is not None:
        rhs = rhs + tp
    if tA is not None:
        rhs = rhs - tA @ x
    return np.linalg.solve(A + np.diag(3 * x ** 2), rhs)


def objective(A, p, w):
    """A scalar of the solution: weighted sum of squares."""
    x = solve_cubic(A, p)
    return np.sum(w * x ** 2)


def make_problem(n, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, n))
    A = M @ M.T / n + np.eye(n)              # symmetric positive definite: unique root
    p = rng.standard_normal(n)
    w = rng.uniform(0.5, 1.5, n)
    return A, p, w


def main(n=6, seed=0, verbose=True):
    """Return the largest relative error of dL/dA, dL/dp against finite differences."""
    out = print if verbose else (lambda *a, **k: None)
    A, p, w = make_problem(n, seed)
    x = solve_cubic(A, p)                     # plain arrays: just runs the solver
    out(f"residual of the solution: {np.max(np.abs(A @ x + x ** 3 - p)):.1e}")

    tape = td.record(objective, A, p, w, argnums=(0, 1))
    L, (gA, gp) = tape.value_and_grad(A, p, w)
    out(f"loss L = {float(L):.6f}")
    # count the instructions whose result is active (reads the tape's columns)
    t = tape.tape
    n_active = sum(1 for i in range(len(t)) if t.out[i] >= 0 and t.active(t.out[i]))
    out("\nThe tape: the Newton steps are recorded without derivatives (repeated steps")
    out("fold into a loop block, `scan`) and the `err > tol` test is a guard.")
    out(f"Only {n_active} instructions carry derivatives (marked *):")
    out(tape)

    def f(A_, p_):
        return objective(A_, p_, w)

    eps = 1e-6
    errs = []
    out(f"\n{'derivative':>12} {'implicit VJP':>14} {'finite diff':>14}")
    for i in range(n):
        e = np.zeros(n)
        e[i] = eps
        fd = (f(A, p + e) - f(A, p - e)) / (2 * eps)
        errs.append(abs(gp[i] - fd) / max(1e-6, abs(fd)))
        out(f"{f'dL/dp[{i}]':>12} {gp[i]:14.8f} {fd:14.8f}")
    for i, j in [(0, 0), (0, n - 1), (n - 1, 1 % n)]:
        E = np.zeros((n, n))
        E[i, j] = eps
        fd = (f(A + E, p) - f(A - E, p)) / (2 * eps)
        errs.append(abs(gA[i, j] - fd) / max(1e-6, abs(fd)))
        out(f"{f'dL/dA[{i},{j}]':>12} {gA[i, j]:14.8f} {fd:14.8f}")
    err = float(max(errs))
    out(f"\nmax relative error: {err:.2e}")

    # Replay on another right-hand side. Newton may need another number of
    # steps: the guard on `err > tol` fails and tapediff records that path.
    p2 = 3 * p
    L2, (_, gp2) = tape.value_and_grad(A, p2, w)
    out(f"replayed with p -> 3p: loss {float(L2):.6f} (plain NumPy {f(A, p2):.6f}); "
        f"versions kept: {tape.n_versions}")
    return {"max_rel_error": err, "replay_error": abs(float(L2) - f(A, p2)),
            "n_active": n_active}


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
