"""Peak memory and time of checkpointed adjoints against full taping.

Usage::

    python benchmarks/bench_checkpoint.py            # grid 10^4, 10^4 steps, s = 20
    python benchmarks/bench_checkpoint.py --quick    # grid 10^3, 10^3 steps, s = 10 (< 30 s)
    python benchmarks/bench_checkpoint.py --full-steps 2000   # full tape at fewer steps

The problem is the explicit heat equation ``u[1:-1] += a (u[2:] - 2 u[1:-1] +
u[:-2])`` with loss ``sum(u_N ** 2)``; the gradient is taken with respect to
``u0`` and ``a``. Each method runs in its own subprocess (so peak RSS is its
own) and is called twice: the first call records (tapediff) or compiles
(JAX), the second is the one timed. Memory is measured on that second call
as

* ``tracemalloc`` peak: NumPy reports its allocations to tracemalloc, so this
  is exactly the arrays tapediff allocates (not JAX's or PyTorch's buffers);
* peak RSS increase (``resource.getrusage``) over the process's peak before
  the call -- it includes the first call, so for tapediff it also shows the
  recording.

Methods: ``checkpointed`` (``td.checkpointed``, revolve with ``s``
snapshots), ``one-step`` (the same for a single step: one taped step, its
adjoint and the loss -- the workspace the bound below allows), ``full-tape`` (``td.record`` of the unrolled loop, then
``value_and_grad``: every step's intermediates kept), ``numpy-forward``
(the plain forward, for the time ratio), and, when importable (they are not
installed by this project), ``jax-checkpoint`` (``jax.checkpoint`` of the
step inside ``lax.scan``: one state per step kept, the step recomputed) and
``torch-checkpoint`` (``torch.utils.checkpoint.checkpoint_sequential`` with
``s`` segments).

Prints a Markdown table: peak bytes as multiples of the state size, and
time as a multiple of the NumPy forward and of the full tape.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

ALPHA = 0.25


def initial_state(grid):
    x = np.linspace(0.0, 1.0, grid)
    return np.sin(np.pi * x) + 0.1 * np.cos(7 * np.pi * x)


def heat_step(u, a):
    v = u.copy()
    v[1:-1] = u[1:-1] + a * (u[2:] - 2.0 * u[1:-1] + u[:-2])
    return v


def loss(u):
    return np.sum(u ** 2)


# ----------------------------------------------------------------------------- methods
# Each returns a function computing (value, du0, da) for (u0, a).

def make_checkpointed(steps, snapshots):
    import tapediff as td
    cp = td.checkpointed(heat_step, steps, snapshots, loss=loss)

    def run(u0, a):
        v, (du0, da) = cp.value_and_grad(u0, a)
        run.stats = cp.stats
        return v, du0, da
    return run


def make_full_tape(steps, snapshots):
    import tapediff as td

    def unrolled(u, a):
        for _ in range(steps):
            u = heat_step(u, a)
        return loss(u)

    tape = None

    def run(u0, a):
        nonlocal tape
        if tape is None:
            tape = td.record(unrolled, u0, a, argnums=(0, 1))
        v, (du0, da) = tape.value_and_grad(u0, a)
        return v, du0, da
    return run


def make_one_step(steps, snapshots):
    """One taped step and its adjoint (and the loss): one step's workspace."""
    return make_checkpointed(1, 1)


def make_numpy_forward(steps, snapshots):
    def run(u0, a):
        u = u0
        for _ in range(steps):
            u = heat_step(u, a)
        return loss(u), None, None
    return run


def make_jax(steps, snapshots):
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    import jax.numpy as jnp

    def step(u, a):
        return u.at[1:-1].set(u[1:-1] + a * (u[2:] - 2.0 * u[1:-1] + u[:-2]))

    def f(u0, a):
        def body(u, _):
            return jax.checkpoint(step)(u, a), None
        u_n, _ = jax.lax.scan(body, u0, None, length=steps)
        return jnp.sum(u_n ** 2)

    vg = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))

    def run(u0, a):
        v, (du0, da) = vg(jnp.asarray(u0), jnp.float64(a))
        return float(v), np.asarray(du0), float(da)
    return run


def make_torch(steps, snapshots):
    import torch
    from torch.utils.checkpoint import checkpoint_sequential
    torch.set_num_threads(1)

    def run(u0, a):
        ut = torch.tensor(u0, requires_grad=True)
        at = torch.tensor(a, dtype=torch.float64, requires_grad=True)

        def step(u):
            v = u.clone()
            v[1:-1] = u[1:-1] + at * (u[2:] - 2.0 * u[1:-1] + u[:-2])
            return v
        u_n = checkpoint_sequential([step] * steps, snapshots, ut, use_reentrant=False)
        v = (u_n ** 2).sum()
        v.backward()
        return float(v), ut.grad.numpy(), float(at.grad)
    return run


METHODS = {"checkpointed": make_checkpointed, "one-step": make_one_step,
           "full-tape": make_full_tape, "numpy-forward": make_numpy_forward,
           "jax-checkpoint": make_jax, "torch-checkpoint": make_torch}
OPTIONAL = {"jax-checkpoint": "jax", "torch-checkpoint": "torch"}


def _rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # KiB on Linux


def worker(method, grid, steps, snapshots):
    """Run one method in this process; print one JSON line."""
    u0, a = initial_state(grid), ALPHA
    fn = METHODS[method](steps, snapshots)
    rss0 = _rss_bytes()
    t0 = time.perf_counter()
    fn(u0, a)                                  # first call: records / compiles
    t_first = time.perf_counter() - t0
    rss1 = _rss_bytes()
    t0 = time.perf_counter()
    v, du0, da = fn(u0, a)                     # the timed call
    t_run = time.perf_counter() - t0
    tracemalloc.start()
    fn(u0, a)
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = {"method": method, "grid": grid, "steps": steps, "snapshots": snapshots,
           "time_first": t_first, "time": t_run, "tracemalloc_peak": traced,
           "rss_increase_first": rss1 - rss0, "rss_increase": _rss_bytes() - rss0,
           "value": float(v), "state_bytes": u0.nbytes}
    if du0 is not None:
        out["du0_norm"] = float(np.linalg.norm(du0))
        out["da"] = float(da)
    stats = getattr(fn, "stats", None)
    if stats:
        out["stats"] = {k: stats[k] for k in ("schedule", "forward_steps", "reverse_steps",
                                              "max_snapshots", "snapshot_bytes",
                                              "tape_bytes", "workspace_bytes")}
    print(json.dumps(out))


def spawn(method, grid, steps, snapshots, timeout):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", method, "--grid", str(grid),
           "--steps", str(steps), "--snapshots", str(snapshots)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"method": method, "steps": steps, "error": f"timed out after {timeout} s"}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        return {"method": method, "steps": steps,
                "error": f"exit {done.returncode}: {tail[0][:200]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fmt_bytes(n):
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="grid 10^3, 10^3 steps, s = 10")
    ap.add_argument("--grid", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--snapshots", type=int)
    ap.add_argument("--full-steps", type=int,
                    help="steps for the full tape (default: --steps; lower it if the full "
                         "tape does not fit in memory)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the raw results to this file")
    args = ap.parse_args()
    grid = args.grid or (1000 if args.quick else 10_000)
    steps = args.steps or (1000 if args.quick else 10_000)
    snapshots = args.snapshots or (10 if args.quick else 20)
    if args.worker:
        worker(args.worker, grid, steps, snapshots)
        return
    full_steps = args.full_steps or steps
    results = []
    for method in args.methods.split(","):
        if method in OPTIONAL:
            try:
                __import__(OPTIONAL[method])
            except ImportError:
                results.append({"method": method, "error": f"{OPTIONAL[method]} not installed"})
                continue
        n = {"full-tape": full_steps, "one-step": 1}.get(method, steps)
        r = spawn(method, grid, n, snapshots, args.timeout)
        results.append(r)
        print(f"# {method}: " + (r.get("error") or f"{r['time']:.2f} s"), file=sys.stderr)
    report(results, grid, steps, snapshots)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def report(results, grid, steps, snapshots):
    state = grid * 8
    by = {r["method"]: r for r in results}
    forward = by.get("numpy-forward", {}).get("time")
    full = by.get("full-tape", {})
    print(f"heat equation, grid {grid} (state {_fmt_bytes(state)}), {steps} steps, "
          f"s = {snapshots}, numpy {np.__version__}, one thread\n")
    print("| method | steps | time (2nd call) | / NumPy forward | / full tape (per step) "
          "| tracemalloc peak | / state | peak RSS increase | note |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['method']} | {r.get('steps', '')} | - | - | - | - | - | - | "
                  f"{r['error']} |")
            continue
        n = r["steps"]
        per_step = r["time"] / n
        t_fwd = f"{r['time'] / (forward * n / steps):.1f}x" if forward else "-"
        t_full = (f"{per_step / (full['time'] / full['steps']):.2f}x"
                  if "time" in full else "-")
        note = ""
        if "stats" in r and r["method"] == "checkpointed":
            st = r["stats"]
            note = (f"{st['schedule']}: {st['forward_steps']} primal steps "
                    f"({st['forward_steps'] / n:.2f} per step); tape "
                    f"{_fmt_bytes(st['tape_bytes'])}/step")
        elif r["method"] == "full-tape":
            note = f"first call (records) {r['time_first']:.1f} s"
        elif r["method"] == "jax-checkpoint":
            note = f"first call (compiles) {r['time_first']:.1f} s; RSS includes XLA"
        print(f"| {r['method']} | {n} | {r['time']:.2f} s | {t_fwd} | {t_full} | "
              f"{_fmt_bytes(r['tracemalloc_peak'])} | {r['tracemalloc_peak'] / state:.1f} | "
              f"{_fmt_bytes(max(0, r['rss_increase']))} | {note} |")
    cp = by.get("checkpointed", {})
    if "value" in cp and "value" in full and full["steps"] == cp["steps"]:
        rel = abs(cp["du0_norm"] - full["du0_norm"]) / full["du0_norm"]
        print(f"\ncheckpointed vs full tape: |du0| relative difference {rel:.1e}, "
              f"da {cp['da']:.12g} vs {full['da']:.12g}")
    one = by.get("one-step", {})
    if "value" in cp and "tracemalloc_peak" in one:
        peak, work = cp["tracemalloc_peak"] / state, one["tracemalloc_peak"] / state
        print(f"checkpointed tracemalloc peak = {peak:.1f} states = s ({snapshots}) + one "
              f"step's workspace ({work:.1f}, measured by one-step) + {peak - snapshots - work:.1f}"
              f"; tapediff's static workspace estimate: "
              f"{cp['stats']['workspace_bytes'] / state:.1f} states")
    if "value" in full:
        print(f"full tape: {full['tracemalloc_peak'] / state:.0f} states for {full['steps']} "
              f"steps = {full['tracemalloc_peak'] / state / full['steps']:.2f} states per step")


if __name__ == "__main__":
    main()
