"""Timing helper shared by ``python -m tapediff demo`` and ``benchmarks/``."""
import time

import numpy as np


def median_time(fn, repeat=7, min_time=0.05):
    """Median seconds per call of ``fn()``, each sample at least ``min_time`` long."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    number = max(1, int(min_time / max(one, 1e-7)))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return float(np.median(times))


def fmt(t):
    """Seconds as a short human string."""
    if t < 1e-3:
        return f"{t * 1e6:.1f} us"
    if t < 1:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"
