"""Command line: ``python -m tapediff demo`` and ``python -m tapediff info``."""
import argparse
import os
import platform
import sys
import time

import numpy as np

from ._timing import fmt, median_time


_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def demo():
    """Record once, replay many: an MLP loss on a small synthetic problem."""
    import tapediff as td

    rng = np.random.default_rng(0)

    def loss(w, x, y):
        h = np.tanh(x @ w["W1"] + w["b1"])
        logits = h @ w["W2"] + w["b2"]
        logits = logits - np.max(logits, axis=1, keepdims=True)
        logp = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
        return -np.mean(np.sum(logp * y, axis=1))

    w = {"W1": rng.normal(size=(64, 128)) * 0.1, "b1": np.zeros(128),
         "W2": rng.normal(size=(128, 10)) * 0.1, "b2": np.zeros(10)}
    x = rng.normal(size=(64, 64))
    y = np.eye(10)[rng.integers(0, 10, size=64)]

    print("tapediff demo: record once, replay many (MLP 64-128-10, batch 64, float64)")
    t0 = time.perf_counter()
    tape = td.record(loss, w, x, y, argnums=0)
    t_rec = time.perf_counter() - t0
    t0 = time.perf_counter()
    tape.value_and_grad(w, x, y)
    t_first = time.perf_counter() - t0
    print(f"  record the tape ({len(tape.tape)} instructions):   {fmt(t_rec)}")
    print(f"  first gradient (builds the reverse tape): {fmt(t_first)}")
    t_np = median_time(lambda: loss(w, x, y))
    t_replay = median_time(lambda: tape.value_and_grad(w, x, y))
    t_oneshot = median_time(lambda: td.value_and_grad(loss)(w, x, y), repeat=5)
    print(f"  plain NumPy forward:                      {fmt(t_np)}")
    print(f"  replayed value+gradient (interpreted):    {fmt(t_replay)}"
          f"   ({t_replay / t_np:.1f}x the forward)")
    print(f"  one-shot td.value_and_grad (records):     {fmt(t_oneshot)}")
    t0 = time.perf_counter()
    ct = tape.compile()
    ct.value_and_grad(w, x, y)
    t_comp = time.perf_counter() - t0
    t_native = median_time(lambda: ct.value_and_grad(w, x, y))
    print(f"  compile to C (first call, cached later):  {fmt(t_comp)}")
    print(f"  replayed value+gradient (compiled C):     {fmt(t_native)}"
          f"   ({t_native / t_np:.1f}x the forward)")

    print("\ntraining: Adam on the same MLP, one td.train_step call per batch")
    opt = td.optim.Adam(w, lr=1e-2)
    step = td.train_step(loss, w, opt, x, y)
    t0 = time.perf_counter()
    losses = [step(x, y)]              # records loss + gradient + update, compiles
    t1 = time.perf_counter()
    losses += [step(x, y) for _ in range(99)]
    dt = time.perf_counter() - t1
    kind = "fused: forward, gradient and update in one native call" if step.fused else "not fused"
    print(f"  first step (records and compiles):  {fmt(t1 - t0)}")
    print(f"  99 more steps ({step.backend}, {kind}): {fmt(dt / 99)} per step, "
          f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")

    print("\ncheckpointed adjoint: 1-d heat equation, 1000 steps, 10 snapshots (revolve)")

    def heat_step(u, p):
        un = u.copy()
        un[1:-1] = u[1:-1] + p["alpha"] * (u[2:] - 2 * u[1:-1] + u[:-2])
        return un
    adj = td.checkpointed(heat_step, n_steps=1000, snapshots=10,
                          loss=lambda u: np.sum(u ** 2))
    u0 = np.sin(np.linspace(0, np.pi, 200))
    t0 = time.perf_counter()
    val, (du0, dp) = adj.value_and_grad(u0, {"alpha": np.float64(0.2)})
    dt = time.perf_counter() - t0
    st = adj.stats
    print(f"  value {float(val):.6f}, d/dalpha {float(dp['alpha']):.6f}: {dt * 1e3:.0f} ms, "
          f"{st['forward_steps']} forward steps, at most {st['max_snapshots']} snapshots")


def info():
    import tapediff as td
    print(f"tapediff {td.__version__}")
    print(f"python   {platform.python_version()} ({sys.executable})")
    print(f"numpy    {np.__version__}")
    from . import runtime
    print("backends:")
    print("  interpreter (NumPy): available")
    print(f"  C compiler:          {runtime.compiler_status()}")
    print("  C backend:           " + ("available (record(...).compile(), td.compile_grad)"
                                      if runtime.compiler_available() else
                                      "unavailable: compiled tapes replay interpreted"))
    from .codegen.cuda_runtime import gpu_status
    usable, why = gpu_status()
    print("  CUDA (CuPy):         " + (f"usable: {why} (record(...).compile(backend='cuda'); "
                                      "not yet validated on a device)" if usable else
                                      f"unavailable: {why}"))
    ci = runtime.cache_info()
    print(f"cache:    {ci['dir']} ({ci['entries']} entries, {ci['bytes'] / 1e6:.1f} MB)")


def cache_clear():
    from . import runtime
    n = runtime.clear_cache()
    print(f"removed {n} cached build(s) from {runtime.cache_dir()}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tapediff",
                                description="tapediff command line")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("demo", help="record once, replay many, with timings")
    sub.add_parser("info", help="versions, backends, compiler and cache")
    cache = sub.add_parser("cache", help="manage the compiled-module cache")
    cache.add_argument("action", choices=["clear"], help="clear: remove every cached build")
    args = p.parse_args(argv)
    if args.cmd == "demo" and argv is None and not os.environ.get("OPENBLAS_NUM_THREADS"):
        # Timings are single-threaded, like benchmarks/: BLAS threads spinning on
        # a busy machine make small products hundreds of times slower. The BLAS
        # library reads these variables when NumPy loads, so start afresh.
        env = dict(os.environ)
        for var in _THREAD_VARS:
            env.setdefault(var, "1")
        os.execve(sys.executable, [sys.executable, "-m", "tapediff", "demo"], env)
    if args.cmd == "cache":
        cache_clear()
        return
    {"demo": demo, "info": info}[args.cmd]()


if __name__ == "__main__":
    main()
