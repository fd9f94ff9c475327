"""Gradient of an explicit 1-D heat-equation solver w.r.t. its initial state.

The stepper is plain NumPy with in-place slice writes (``u_new[1:-1] = ...``).
We record it once with ``td.record`` and get the gradient of a final-state
loss with respect to both the initial temperature profile ``u0`` and the
diffusion number ``alpha``. tapediff folds the time loop into a loop block,
so the tape holds the loop body once, whatever the number of steps.

Run:  python examples/heat_equation.py [n_points] [n_steps]
"""
import sys

import numpy as np

import tapediff as td


def heat(u0, alpha, target, steps):
    """Explicit Euler for u_t = u_xx with fixed (Dirichlet) ends; returns a loss.

    ``alpha = dt / dx**2`` must stay below 1/2 for stability. The loss is the
    squared distance of the final state to ``target``.
    """
    u = u0.copy()
    for _ in range(steps):
        u_new = u.copy()                       # keeps the boundary values
        u_new[1:-1] = u[1:-1] + alpha * (u[2:] - 2 * u[1:-1] + u[:-2])
        u = u_new
    return np.sum((u - target) ** 2)


def main(n=32, steps=200, seed=0, verbose=True):
    """Compare tapediff's gradient with central differences.

    Returns the largest relative error over d/dalpha and a few entries of d/du0.
    """
    out = print if verbose else (lambda *a, **k: None)
    rng = np.random.default_rng(seed)
    xs = np.linspace(0.0, 1.0, n)
    u0 = np.sin(np.pi * xs) + 0.1 * rng.standard_normal(n)
    u0[0] = u0[-1] = 0.0
    target = 0.5 * np.sin(np.pi * xs)
    alpha = 0.25

    # Record once (steps is a Python int: static, baked into the tape).
    tape = td.record(heat, u0, alpha, target, steps, argnums=(0, 1))
    n_instr = len(tape.tape)
    out(f"{steps} time steps recorded as a tape of {n_instr} instructions "
        "(the loop body is stored once, in a loop block):")
    out(tape)

    loss, (g_u0, g_alpha) = tape.value_and_grad(u0, alpha, target, steps)
    out(f"loss = {float(loss):.6f}")

    # Central finite differences, side by side.
    eps = 1e-6
    fd_alpha = (heat(u0, alpha + eps, target, steps)
                - heat(u0, alpha - eps, target, steps)) / (2 * eps)
    errs = [abs(g_alpha - fd_alpha) / max(1e-12, abs(fd_alpha))]
    out(f"\n{'derivative':>14} {'tapediff':>14} {'finite diff':>14}")
    out(f"{'d/dalpha':>14} {g_alpha:14.8f} {fd_alpha:14.8f}")
    for i in np.linspace(1, n - 2, 5).astype(int):
        e = np.zeros(n)
        e[i] = eps
        fd = (heat(u0 + e, alpha, target, steps) - heat(u0 - e, alpha, target, steps)) / (2 * eps)
        errs.append(abs(g_u0[i] - fd) / max(1e-8, abs(fd)))
        out(f"{f'd/du0[{i}]':>14} {g_u0[i]:14.8f} {fd:14.8f}")
    err = float(max(errs))
    out(f"\nmax relative error: {err:.2e}")

    # Replay on another initial state: same tape, no re-recording.
    u1 = np.sin(2 * np.pi * xs)
    loss1, _ = tape.value_and_grad(u1, alpha, target, steps)
    out(f"replayed on another u0: loss = {float(loss1):.6f} "
        f"(plain NumPy {heat(u1, alpha, target, steps):.6f}), versions: {tape.n_versions}")
    return {"max_rel_error": err, "n_instructions": n_instr, "steps": steps,
            "replay_error": abs(float(loss1) - heat(u1, alpha, target, steps))}


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
