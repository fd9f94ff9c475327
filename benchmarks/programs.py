"""The programs the benchmarks time, shared by the pytest-benchmark suite and
``record_replay.py``."""
import numpy as np


def taylor(x, n):
    """sum_{i=1}^{n} x**i / i, a scalar loop: 3 instructions per iteration."""
    s = x * 0
    for i in range(1, n + 1):
        s = s + x ** i / i
    return s


def chain(x):
    """20 elementwise array instructions (the per-instruction replay overhead)."""
    y = x
    for _ in range(5):
        y = np.tanh(y) * 0.5 + x
        y = y * y
    return np.sum(y)


def mlp(w, x, y):
    h = np.tanh(x @ w["W1"] + w["b1"])
    logits = h @ w["W2"] + w["b2"]
    logits = logits - np.max(logits, axis=1, keepdims=True)
    logp = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
    return -np.mean(np.sum(logp * y, axis=1))


def mlp_args(batch=64, n_in=64, hidden=128, n_out=10, seed=0):
    r = np.random.default_rng(seed)
    w = {"W1": r.normal(size=(n_in, hidden)) * 0.1, "b1": np.zeros(hidden),
         "W2": r.normal(size=(hidden, n_out)) * 0.1, "b2": np.zeros(n_out)}
    return w, r.normal(size=(batch, n_in)), np.eye(n_out)[r.integers(0, n_out, size=batch)]


def heat(u0, alpha, steps):
    u = u0.copy()
    for _ in range(steps):
        un = u.copy()
        un[1:-1] = u[1:-1] + alpha * (u[2:] - 2 * u[1:-1] + u[:-2])
        u = un
    return np.sum(u ** 2)
