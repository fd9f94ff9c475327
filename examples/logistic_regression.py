"""Fit a logistic regression by gradient descent on a recorded tape.

The loss is recorded once; every training step replays the tape for value
and gradient with the current parameters (same shapes, so no re-recording).

Run:  python examples/logistic_regression.py [n_samples] [n_features] [steps]
"""
import sys

import numpy as np

import tapediff as td


def nll(params, X, y):
    """Mean negative log-likelihood with a small L2 penalty (numerically stable)."""
    z = X @ params["w"] + params["b"]
    # log(1 + exp(z)) - y z, written with logaddexp to avoid overflow
    return np.mean(np.logaddexp(0.0, z) - y * z) + 1e-3 * np.sum(params["w"] ** 2)


def make_data(n, d, seed=0):
    """Two Gaussian classes separated along a random direction."""
    rng = np.random.default_rng(seed)
    w_true = rng.standard_normal(d)
    w_true *= 2.0 / np.linalg.norm(w_true)    # margin std 2 against label noise 0.5
    X = rng.standard_normal((n, d))
    y = (X @ w_true + 0.5 + 0.5 * rng.standard_normal(n) > 0).astype(np.float64)
    return X, y


def main(n=400, d=5, steps=200, lr=0.5, seed=0, verbose=True):
    """Train; return a dict with the loss history and the final training accuracy."""
    out = print if verbose else (lambda *a, **k: None)
    X, y = make_data(n, d, seed)
    params = {"w": np.zeros(d), "b": 0.0}     # b is a Python float: a 0-d input

    tape = td.record(nll, params, X, y)       # record once ...
    out(f"recorded {len(tape.tape)} instructions; training {steps} steps "
        f"on {n} samples x {d} features")
    losses = []
    for step in range(steps):
        loss, g = tape.value_and_grad(params, X, y)   # ... replay every step
        losses.append(float(loss))
        params = {"w": params["w"] - lr * g["w"], "b": params["b"] - lr * float(g["b"])}
        if step % max(1, steps // 8) == 0 or step == steps - 1:
            out(f"  step {step:4d}  loss {float(loss):.5f}")

    pred = (X @ params["w"] + params["b"]) > 0
    acc = float(np.mean(pred == (y > 0.5)))
    out(f"final training accuracy: {acc:.3f} (versions recorded: {tape.n_versions})")
    return {"losses": losses, "accuracy": acc, "n_versions": tape.n_versions}


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
