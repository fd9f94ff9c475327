"""Recording and interpreted-replay costs, as ratios measured in one run.

Usage: ``python benchmarks/record_replay.py [--quick]``

Prints a Markdown table (the README's numbers come from it). Every ratio
compares tapediff with plain NumPy running the same operations in the same
process, single-threaded.
"""
import argparse
import gc
import os
import sys
import time
import tracemalloc

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tapediff as td  # noqa: E402
from tapediff._timing import fmt, median_time  # noqa: E402
from benchmarks.programs import chain, heat, mlp, mlp_args, taylor  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller sizes (CI smoke run)")
    p.add_argument("--large", action="store_true",
                   help="also the Taylor loop at N = 10^6 (about half a minute)")
    a = p.parse_args()
    n_taylor = 10_000 if a.quick else 100_000
    rows = []

    # 1. recording cost per scalar instruction (Taylor loop)
    t0 = time.perf_counter()
    rec = td.record(taylor, 0.5, n_taylor)
    t_rec = time.perf_counter() - t0
    n_instr = rec.tape.n_recorded
    t_np = median_time(lambda: taylor(np.float64(0.5), n_taylor), repeat=3)
    rows.append((f"record Taylor loop, N={n_taylor} ({n_instr} instructions)", fmt(t_rec),
                 f"{t_rec / n_instr * 1e6:.2f} us/instruction",
                 f"{t_rec / t_np:.0f}x NumPy-scalar loop ({fmt(t_np)})"))

    # 2. bytes per instruction: peak memory of recording (flat tape, then folding)
    rec2 = td.record(taylor, 0.5, n_taylor)
    gc.collect()
    tracemalloc.start()
    td.record(taylor, 0.5, n_taylor)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t = rec2.tape
    n = t.n_recorded
    rows.append((f"memory while recording the Taylor loop ({n} instructions)",
                 f"{peak / n:.1f} B/instruction at peak",
                 f"folded tape: {len(t)} instructions, {t.nbytes()} B of columns",
                 "peak includes the flat recording and the folding pass"))

    # 3. interpreted replay of array instructions on 10^4 elements
    x = np.linspace(-1, 1, 10_000)
    tape = td.record(chain, x)
    n_ops = tape.tape.n_recorded
    t_np = median_time(lambda: chain(x))
    t_fwd = median_time(lambda: tape(x))
    tape.value_and_grad(x)
    t_vg = median_time(lambda: tape.value_and_grad(x))
    rows.append((f"replay primal, {n_ops} array instructions on 10^4 elements", fmt(t_fwd),
                 f"{t_fwd / t_np:.2f}x NumPy ({fmt(t_np)})", ""))
    rows.append(("replay value+gradient, same program", fmt(t_vg),
                 f"{t_vg / t_np:.2f}x the NumPy forward", ""))

    # 4. MLP 64-128-10, batch 64
    args = mlp_args()
    t_np = median_time(lambda: mlp(*args))
    tape = td.record(mlp, *args)
    tape.value_and_grad(*args)
    t_vg = median_time(lambda: tape.value_and_grad(*args))
    t_one = median_time(lambda: td.value_and_grad(mlp)(*args), repeat=5)
    rows.append(("MLP 64-128-10 batch 64: replayed value+gradient", fmt(t_vg),
                 f"{t_vg / t_np:.2f}x the NumPy forward ({fmt(t_np)})",
                 f"one-shot td.value_and_grad {fmt(t_one)}"))

    # 5. heat equation, 1000 points x 100 steps (slicing and writes)
    u0 = np.sin(np.linspace(0, np.pi, 1000))
    t_np = median_time(lambda: heat(u0, 0.2, 100))
    tape = td.record(heat, u0, 0.2, 100)
    tape.value_and_grad(u0, 0.2, 100)
    t_vg = median_time(lambda: tape.value_and_grad(u0, 0.2, 100))
    rows.append(("heat equation 1000 points x 100 steps: replayed value+gradient", fmt(t_vg),
                 f"{t_vg / t_np:.2f}x the NumPy forward ({fmt(t_np)})", ""))

    if a.large:
        n = 10 ** 6
        t0 = time.perf_counter()
        big = td.record(taylor, 0.5, n)
        t_rec = time.perf_counter() - t0
        t0 = time.perf_counter()
        big.value_and_grad(0.5, n)                 # builds the reverse tape
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        big.value_and_grad(0.25, n)
        t_vg = time.perf_counter() - t0
        rows.append((f"Taylor loop N=10^6 ({3 * n} instructions): record / first gradient "
                     "/ replayed value+gradient",
                     f"{fmt(t_rec)} / {fmt(t_first)} / {fmt(t_vg)}",
                     f"{t_rec / (3 * n) * 1e6:.2f} us/instruction recorded", "interpreted"))

    print(f"tapediff {td.__version__}, numpy {np.__version__}, interpreted backend, "
          "1 thread\n")
    print("| measurement | time / size | ratio | note |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
