"""GPU benchmark of the CUDA backend (needs CuPy and a GPU; prints why not otherwise).

Usage: ``python benchmarks/bench_cuda.py [--n 100000000] [--quick]``

* Fused value+gradient of ``sum(tanh(x)**3)`` in float32: the bytes that must
  move (read x, write the gradient: 8 bytes per element) over the time, as a
  fraction of the device's measured copy bandwidth (a device-to-device copy
  of the same bytes, timed with CUDA events). The issue's target is >= 80%.
* The same value+gradient with CuPy eager (hand-written gradient), PyTorch
  CUDA autograd and ``jax.jit`` on the GPU when those are installed.

Results are printed as a table with the device name; the README quotes them
only from a run of this script.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _time(cp, fn, repeat):
    """Median seconds of ``fn()`` with CUDA events (after one warm-up call)."""
    fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(repeat):
        a, b = cp.cuda.Event(), cp.cuda.Event()
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(cp.cuda.get_elapsed_time(a, b) / 1e3)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10 ** 8)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    from tapediff.codegen.cuda_runtime import gpu_status
    ok, why = gpu_status()
    if not ok:
        print(f"skipped: {why}")
        return 0
    import cupy as cp
    import tapediff as td
    n = 10 ** 6 if a.quick else a.n
    repeat = 5 if a.quick else 20
    x = cp.random.default_rng(0).standard_normal(n, dtype=cp.float32)
    dst = cp.empty(2 * n, dtype=cp.float32)
    src = cp.empty(2 * n, dtype=cp.float32)
    t_copy = _time(cp, lambda: cp.copyto(dst, src), repeat)
    bw = 2 * (8 * n) / t_copy              # a copy reads and writes 8n bytes each

    def f(x):
        return np.sum(np.tanh(x) ** 3)
    gt = td.record(f, np.ones(n, np.float32)).compile(backend="cuda")
    rows = [("tapediff compile(backend='cuda')", _time(cp, lambda: gt.value_and_grad(x), repeat))]

    def cupy_eager():
        t = cp.tanh(x)
        return (t ** 3).sum(), 3 * t * t * (1 - t * t)
    rows.append(("CuPy eager (hand-written gradient)", _time(cp, cupy_eager, repeat)))
    try:
        import torch
        xt = torch.as_tensor(x, device="cuda").requires_grad_(True)

        def torch_step():
            xt.grad = None
            (torch.tanh(xt) ** 3).sum().backward()
        rows.append((f"PyTorch {torch.__version__} CUDA autograd", _time(cp, torch_step, repeat)))
    except Exception as e:      # noqa: BLE001
        print(f"skipped PyTorch: {e}")
    try:
        import jax
        import jax.numpy as jnp
        if jax.default_backend() != "gpu":
            raise RuntimeError("jax has no GPU backend here")
        vg = jax.jit(jax.value_and_grad(lambda x: jnp.sum(jnp.tanh(x) ** 3)))
        xj = jnp.asarray(cp.asnumpy(x))
        rows.append((f"jax.jit {jax.__version__}", _time(
            cp, lambda: jax.block_until_ready(vg(xj)), repeat)))
    except Exception as e:      # noqa: BLE001
        print(f"skipped jax: {e}")
    print(f"device: {why}; n = {n:,} float32; copy bandwidth {bw / 1e9:.0f} GB/s")
    print("| value+gradient | time | effective GB/s | of copy bandwidth |")
    print("|---|---|---|---|")
    for name, t in rows:
        eff = 8 * n / t
        print(f"| {name} | {t * 1e3:.3f} ms | {eff / 1e9:.0f} | {eff / bw:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
