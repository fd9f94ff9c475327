"""Fit an L2-regularised logistic regression with SciPy's L-BFGS-B through tapediff.

``scipy_objective`` records the NumPy loss once and gives SciPy a function
returning the value and the exact gradient as one flat float64 vector; the
parameters stay a dict ``{"w": array, "b": float}`` on the tapediff side.
The data is scikit-learn's bundled breast-cancer set when scikit-learn is
installed, else a synthetic two-class problem. Needs SciPy.

Run:  python examples/logistic_lbfgs.py
"""
import numpy as np
from scipy.optimize import minimize

from tapediff.scipy_bridge import scipy_objective


def nll(params, X, y, l2):
    """Mean negative log-likelihood plus ``l2 / 2 * |w|^2`` (stable via logaddexp)."""
    z = X @ params["w"] + params["b"]
    return np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * np.sum(params["w"] ** 2)


def synthetic(n=600, d=10, seed=0):
    """Two Gaussian classes separated along a random direction, with label noise."""
    rng = np.random.default_rng(seed)
    w_true = rng.standard_normal(d)
    w_true *= 3.0 / np.linalg.norm(w_true)
    X = rng.standard_normal((n, d))
    y = (X @ w_true + 0.5 * rng.standard_normal(n) > 0).astype(np.float64)
    return X, y, "synthetic"


def load_data(use_sklearn=True, seed=0):
    """(X standardised, y in {0, 1}, name): breast cancer if scikit-learn is there."""
    X = None
    if use_sklearn:
        try:
            from sklearn.datasets import load_breast_cancer
            X, y = load_breast_cancer(return_X_y=True)
            y, name = y.astype(np.float64), "breast cancer (scikit-learn)"
        except ImportError:
            pass
    if X is None:
        X, y, name = synthetic(seed=seed)
    return (X - X.mean(axis=0)) / X.std(axis=0), y, name


def main(quiet=False, use_sklearn=True, l2=1e-2, seed=0, test_fraction=0.25, backend="auto"):
    """Fit; return a dict with the held-out accuracy and SciPy's convergence figures."""
    say = (lambda *a: None) if quiet else print
    X, y, name = load_data(use_sklearn, seed)
    order = np.random.default_rng(seed).permutation(len(X))
    n_test = int(len(X) * test_fraction)
    test, train = order[:n_test], order[n_test:]

    objective = scipy_objective(nll, {"w": np.zeros(X.shape[1]), "b": 0.0},
                                X[train], y[train], l2, backend=backend)
    res = minimize(**objective, method="L-BFGS-B", options={"ftol": 1e-14, "gtol": 1e-9})
    params = objective["fun"].unravel(res.x)
    grad_norm = float(np.linalg.norm(objective["fun"](res.x)[1]))

    pred = X[test] @ params["w"] + params["b"] > 0
    accuracy = float(np.mean(pred == (y[test] > 0.5)))
    say(f"{name}: {len(train)} training / {n_test} held-out samples, {X.shape[1]} features")
    say(f"L-BFGS-B: {res.message} after {res.nit} iterations, {res.nfev} evaluations; "
        f"loss {res.fun:.6f}, |gradient| {grad_norm:.2e}")
    say(f"held-out accuracy {accuracy:.3f}")
    return {"accuracy": accuracy, "success": bool(res.success), "loss": float(res.fun),
            "grad_norm": grad_norm, "n_iterations": int(res.nit), "data": name,
            "params": params}


if __name__ == "__main__":
    main()
