"""Train a 64-128-10 MLP on scikit-learn's bundled digits with ``train_step`` and Adam.

The loss is ordinary NumPy (tanh hidden layer, softmax cross-entropy); it is
recorded once per batch shape (the short last batch of an epoch gets its own
recording) and each step replays value and gradient, then Adam updates the
parameters in place with a cosine learning-rate schedule. The data ships with
scikit-learn (no download). A progress bar is shown when tqdm is installed and
the loss curve is saved as a PNG when matplotlib is installed.

Run:  python examples/train_mlp_digits.py [epochs]
"""
import sys

import numpy as np

from tapediff.optim import Adam, flat_params, schedules
from tapediff.train import train_step


def init_params(rng, n_in=64, hidden=128, n_out=10):
    """Glorot-scaled weights, zero biases."""
    return {"W1": rng.normal(size=(n_in, hidden)) / np.sqrt(n_in), "b1": np.zeros(hidden),
            "W2": rng.normal(size=(hidden, n_out)) / np.sqrt(hidden), "b2": np.zeros(n_out)}


def logits(w, x):
    return np.tanh(x @ w["W1"] + w["b1"]) @ w["W2"] + w["b2"]


def loss(w, x, y):
    """Mean softmax cross-entropy; ``y`` is one-hot."""
    z = logits(w, x)
    z = z - np.max(z, axis=1, keepdims=True)     # shift for a stable log-sum-exp
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.mean(np.sum(logp * y, axis=1))


def load_data(seed, test_fraction=0.2):
    """Digits scaled to [0, 1], split into (train, held-out) at random."""
    from sklearn.datasets import load_digits
    X, labels = load_digits(return_X_y=True)
    X = X / 16.0
    order = np.random.default_rng(seed).permutation(len(X))
    n_test = int(len(X) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return (X[train], labels[train]), (X[test], labels[test])


def progress(iterable, quiet):
    """A tqdm progress bar when tqdm is installed (and not quiet), else the iterable."""
    if not quiet:
        try:
            from tqdm import tqdm
            return tqdm(iterable, desc="epochs")
        except ImportError:
            pass
    return iterable


def save_loss_curve(losses, path):
    """Save the per-step losses as a PNG; returns the path, or None without matplotlib."""
    try:
        from matplotlib.figure import Figure     # no pyplot: no GUI backend needed
    except ImportError:
        return None
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.semilogy(losses, lw=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy")
    ax.set_title("64-128-10 MLP on digits (tapediff train_step + Adam)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def main(epochs=20, seed=0, quiet=False, batch=64, lr=1e-2, png=None, backend="auto"):
    """Train; return the held-out accuracy (and save the loss curve to ``png`` if given)."""
    say = (lambda *a: None) if quiet else print
    (X, labels), (X_test, labels_test) = load_data(seed)
    Y = np.eye(10)[labels]
    rng = np.random.default_rng(seed)
    # one flat buffer: Adam updates all four arrays with one NumPy call per formula
    _, params = flat_params(init_params(rng))
    steps_per_epoch = -(-len(X) // batch)
    opt = Adam(params, lr=schedules.cosine_decay(lr, epochs * steps_per_epoch, alpha=0.05))
    step = train_step(loss, params, opt, X[:batch], Y[:batch], backend=backend)
    losses = []
    bar = progress(range(epochs), quiet)
    for epoch in bar:
        order = rng.permutation(len(X))
        for k in range(0, len(X), batch):
            idx = order[k:k + batch]
            losses.append(step(X[idx], Y[idx]))
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{np.mean(losses[-steps_per_epoch:]):.4f}")
    accuracy = float(np.mean(np.argmax(logits(params, X_test), axis=1) == labels_test))
    say(f"{step.n_calls} steps on {len(X)} digits ({step.backend} replay, "
        f"{len(step.recorded)} recordings: batch sizes {sorted(k[0][0] for k in step.recorded)})")
    say(f"final training loss {np.mean(losses[-steps_per_epoch:]):.4f}; held-out accuracy "
        f"{accuracy:.3f} on {len(X_test)} digits")
    if png is not None:
        saved = save_loss_curve(losses, png)
        say(f"loss curve saved to {saved}" if saved else "matplotlib not installed: no plot")
    return accuracy


if __name__ == "__main__":
    main(epochs=int(sys.argv[1]) if len(sys.argv) > 1 else 20,
         png="train_mlp_digits_loss.png")
