"""Training steps per second: the digits MLP (64-128-10, tanh, softmax
cross-entropy), batch 64, Adam, float64, one thread.

Usage: ``python benchmarks/bench_training.py [--quick]``

Compares in one run: ``tapediff.train.train_step`` (fused: loss, gradient
and Adam update in one native call); the same compiled gradient followed by
the same update run separately (``fused=False``, parameters in one flat
buffer so the update is one NumPy call per formula); the interpreted loop
``rf.value_and_grad`` + ``opt.step`` (parameters as separate arrays); and,
when installed, PyTorch eager + ``torch.optim.Adam`` and ``jax.jit`` +
``optax.adam``. Missing peers are reported as skipped. Prints medians of
per-step times and the ratios to ``train_step``.
"""
import argparse
import os
import sys

# one thread everywhere, before NumPy (and the peers) load their BLAS
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tapediff as td  # noqa: E402
from tapediff._timing import fmt, median_time  # noqa: E402
from tapediff.optim import Adam, flat_params  # noqa: E402
from tapediff.train import train_step  # noqa: E402
from benchmarks.programs import mlp, mlp_args  # noqa: E402

LR = 1e-3


def _train_step(params, x, y, fused):
    step = train_step(mlp, params, Adam(params, lr=LR), x, y, fused=fused)
    return lambda: step(x, y), f"{step.backend}, {'fused' if fused else 'not fused'}"


def tapediff_train_step(w, x, y):
    return _train_step({k: v.copy() for k, v in w.items()}, x, y, fused=True)


def tapediff_unfused(w, x, y):
    """The same compiled gradient, then the same update as a separate NumPy step."""
    _, params = flat_params(w)         # the update as one NumPy call per formula
    return _train_step(params, x, y, fused=False)


def tapediff_explicit(w, x, y):
    params = {k: v.copy() for k, v in w.items()}
    rf = td.record(mlp, params, x, y)
    opt = Adam(params, lr=LR)

    def step():
        value, grads = rf.value_and_grad(params, x, y)
        opt.step(grads)
        return float(value)
    return step, "interpreted"


def torch_eager(w, x, y):
    import torch
    torch.set_num_threads(1)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in w.items()}
    xt, yt = torch.tensor(x), torch.tensor(y)
    opt = torch.optim.Adam(p.values(), lr=LR)

    def step():
        opt.zero_grad()
        logits = torch.tanh(xt @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
        loss = -(torch.log_softmax(logits, dim=1) * yt).sum(dim=1).mean()
        loss.backward()
        opt.step()
        return loss.item()
    return step, f"torch {torch.__version__}"


def jax_optax(w, x, y):
    import jax
    jax.config.update("jax_enable_x64", True)    # float64 like the others
    import jax.numpy as jnp
    import optax

    def loss(p, x, y):
        logits = jnp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits, axis=1) * y, axis=1))
    tx = optax.adam(LR)

    @jax.jit
    def update(p, state, x, y):
        value, g = jax.value_and_grad(loss)(p, x, y)
        updates, state = tx.update(g, state, p)
        return optax.apply_updates(p, updates), state, value
    p = {k: jnp.asarray(v) for k, v in w.items()}
    carry = [p, tx.init(p)]
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def step():
        carry[0], carry[1], value = update(carry[0], carry[1], xj, yj)
        return float(value)      # waits for the result
    return step, f"jax {jax.__version__}"


PEERS = [("tapediff train_step (fused)", tapediff_train_step),
         ("tapediff compiled gradient, then opt.step", tapediff_unfused),
         ("tapediff rf.value_and_grad + opt.step", tapediff_explicit),
         ("PyTorch eager + torch.optim.Adam", torch_eager),
         ("jax.jit + optax.adam", jax_optax)]


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer, shorter samples (smoke run)")
    a = p.parse_args()
    repeat, min_time = (3, 0.02) if a.quick else (9, 0.2)
    w, x, y = mlp_args(batch=64)
    t_fwd = median_time(lambda: mlp(w, x, y), repeat=repeat, min_time=min_time)
    rows, skipped = [], []
    for name, make in PEERS:
        try:
            step, note = make(w, x, y)
        except ImportError as e:
            skipped.append(f"{name} ({e.name or e} not installed)")
            continue
        rows.append((name, median_time(step, repeat=repeat, min_time=min_time), note))

    print(f"tapediff {td.__version__}, numpy {np.__version__}, 1 thread; MLP 64-128-10, "
          f"batch 64, Adam, float64; NumPy forward alone {fmt(t_fwd)}\n")
    print("| training step | median time | steps/s | vs train_step | backend / version |")
    print("|---|---|---|---|---|")
    base = rows[0][1]
    for name, t, note in rows:
        print(f"| {name} | {fmt(t)} | {1 / t:,.0f} | {t / base:.2f}x | {note} |")
    for s in skipped:
        print(f"skipped: {s}")


if __name__ == "__main__":
    main()
