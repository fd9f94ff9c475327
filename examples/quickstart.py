"""Quickstart: differentiate a small MLP-style loss written in plain NumPy.

The loss below is ordinary NumPy code taking a dict of parameters. tapediff
differentiates it one shot (``td.grad``), or records it once (``td.record``)
and replays the recorded tape on new data of the same shapes.

Run:  python examples/quickstart.py [batch]
"""
import sys

import numpy as np

import tapediff as td


def loss(w, x, y):
    """Mean squared error of a one-layer tanh network; ``w`` is a dict."""
    p = np.tanh(x @ w["W"] + w["b"])
    return np.mean((p - y) ** 2)


def fd_grad(f, x, eps=1e-6):
    """Central finite differences of scalar ``f`` at every entry of ``x``."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


def main(batch=8, n_in=4, n_out=3, seed=0, verbose=True):
    """Run the quickstart; return the largest gradient error against finite differences."""
    out = print if verbose else (lambda *a, **k: None)
    rng = np.random.default_rng(seed)
    w = {"W": rng.normal(size=(n_in, n_out)), "b": np.zeros(n_out)}
    x, y = rng.normal(size=(batch, n_in)), rng.normal(size=(batch, n_out))

    # One shot: record, reverse, discard. The gradient has the structure of w.
    g = td.grad(loss)(w, x, y)
    out("gradient keys:", sorted(g), " dL/db =", np.round(g["b"], 6))

    # vjp works for non-scalar outputs: pull back any cotangent.
    s, pullback = td.vjp(np.sin, x)
    (gx,) = pullback(np.ones_like(x))
    out("vjp of sin with ones == cos(x):", bool(np.allclose(gx, np.cos(x))))

    # Record once ...
    tape = td.record(loss, w, x, y, argnums=0)
    out("\nThe recorded tape (constants listed with their source line):")
    out(tape)

    # ... and replay on new data of the same shapes.
    x2, y2 = rng.normal(size=(batch, n_in)), rng.normal(size=(batch, n_out))
    v, g2 = tape.value_and_grad(w, x2, y2)
    out(f"\nreplayed loss on new data: {float(v):.6f} (plain NumPy: {loss(w, x2, y2):.6f})")

    # Check the replayed gradient against finite differences, leaf by leaf.
    fd_W = fd_grad(lambda W: loss({"W": W, "b": w["b"]}, x2, y2), w["W"])
    fd_b = fd_grad(lambda b: loss({"W": w["W"], "b": b}, x2, y2), w["b"])
    err = max(np.max(np.abs(g2["W"] - fd_W)), np.max(np.abs(g2["b"] - fd_b)))
    out(f"max |replayed gradient - finite difference| = {err:.2e}")
    value_err = abs(float(v) - loss(w, x2, y2))
    return max(err, value_err)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
