"""Compiled replays release the GIL: throughput of one compiled tape called
from 1 and 2 Python threads (each thread has its own workspace).

    python benchmarks/threads.py [--n 200000] [--calls 200]

Prints calls per second for each thread count and the speed-up. Run on an
otherwise idle machine: the ratio is only meaningful when both cores are free.
"""
import argparse
import os
import threading
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import tapediff as td  # noqa: E402


def loss(x):
    return np.sum(np.tanh(x) ** 3) + x @ x


def throughput(ct, xs, n_threads, calls):
    def work(x):
        for _ in range(calls):
            ct.value_and_grad(x)
    ts = [threading.Thread(target=work, args=(xs[k],)) for k in range(n_threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return n_threads * calls / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--calls", type=int, default=200)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=a.n) for _ in range(2)]
    ct = td.record(loss, xs[0]).compile()
    for x in xs:
        ct.value_and_grad(x)
    best = {}
    for n_threads in (1, 2, 1, 2):
        r = throughput(ct, xs, n_threads, a.calls)
        best[n_threads] = max(best.get(n_threads, 0), r)
    print(f"sum(tanh(x)^3) + x.x, n = {a.n}, value+gradient, {os.cpu_count()} cores")
    for k, r in best.items():
        print(f"  {k} thread(s): {r:8.1f} calls/s")
    print(f"  speed-up with 2 threads: {best[2] / best[1]:.2f}x")


if __name__ == "__main__":
    main()
