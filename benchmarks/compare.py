"""Value+gradient speed of tapediff against JAX, PyTorch, HIPS autograd and
hand-written gradients (issue 3, "Compiled tapes").

Usage::

    python benchmarks/compare.py [--quick] [--only taylor,heat] [--libs tapediff,jax]
                                 [--json out.json] [--warm-cache]

Everything runs in one process, single-threaded (the thread variables are set
below, before NumPy, JAX or PyTorch is imported), in float64, on fixed seeded
inputs. For each program and library it reports the median and the minimum
time per value+gradient call, the first-call time (recording + compiling for
tapediff, tracing + compiling for jax.jit) and the ratio to tapediff's
compiled replay (to its interpreted replay when this tapediff has no
``RecordedFunction.compile``; the output says which).

Before anything is timed, each library's value and gradient are checked
against the hand-written NumPy gradient (1e-8 relative), so a wrong gradient
is never timed. Timed batches then alternate between the libraries (the
median of 7 batches of >= 0.2 s each, fewer for calls slower than about a
second). Missing peers are skipped with a note.

Programs and their per-library implementations are one table, ``PROGRAMS``;
libraries are adapters in ``LIBRARIES``. ``--sizes tiny`` (used by
``tests/test_bench_compare.py``) runs the same code at toy sizes.
"""
import os

# One thread for every library, set before any of them is imported (their
# thread pools are sized when they load). OpenBLAS/MKL/OpenMP for NumPy,
# scipy (whose BLAS compiled tapes call) and PyTorch's CPU kernels; the XLA
# flag stops JAX's CPU backend from splitting Eigen ops over threads. The
# second XLA_FLAGS item is the commonly quoted intra-op setting; current XLA
# does not parse it as a flag (no leading --) and ignores it, so the TF_*
# variables that some XLA builds read are set as well. torch's own pools are
# set after it is imported (torch.set_num_threads, set_num_interop_threads).
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
for _var in _THREAD_VARS:
    os.environ[_var] = "1"
_XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
if _XLA_ONE_THREAD not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _XLA_ONE_THREAD).strip()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Callable, Optional  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tapediff as td  # noqa: E402
from tapediff._timing import fmt  # noqa: E402
from tapediff.runtime import compiler_status  # noqa: E402
from benchmarks import handwritten as hw  # noqa: E402
from benchmarks.programs import heat, mlp_args, taylor  # noqa: E402

now = time.perf_counter
RTOL = 1e-8          # agreement with the hand-written NumPy gradient required before timing


# ==========================================================================
# Peers, imported on first use so that --libs numpy,tapediff needs none of them

@functools.lru_cache(maxsize=None)
def _import(name):
    """The peer's module(s), or None when it is not installed."""
    try:
        if name == "jax":
            import jax
            jax.config.update("jax_enable_x64", True)    # float64 like everyone else
            import jax.numpy as jnp
            from jax import lax
            return jax, jnp, lax
        if name == "torch":
            import torch
            torch.set_num_threads(1)
            torch.set_num_interop_threads(1)             # must precede any parallel work
            return torch
        if name == "autograd":
            import autograd
            import autograd.numpy as anp
            return autograd, anp
    except ImportError:
        return None
    raise ValueError(name)


# ==========================================================================
# The programs. Where the same source serves several array libraries it
# takes the namespace as ``xp``; tapediff and NumPy run it with xp=np.

def sin_exp(p, t, xp=np):
    """sum_{k,i} sin(t_k p_i) exp(-p_{5+i} t_k), p in R^10."""
    T = t[:, None]
    return xp.sum(xp.sin(T * p[:5]) * xp.exp(-T * p[5:]))


def tanh_cube(x, xp=np):
    # x ** 3 is what users write; NumPy evaluates it with pow (slow), which the
    # NumPy-forward row shows; backends are free to lower it to multiplies.
    return xp.sum(xp.tanh(x) ** 3) + x @ x


def matmul_loss(AB, xp=np):
    """sum((A @ B)^2) / 2, gradient w.r.t. both A and B (three matmuls per call)."""
    A, B = AB
    return xp.sum((A @ B) ** 2) / 2


def mlp(w, x, y, xp=np):
    """benchmarks/programs.py's mlp, generic in the array namespace."""
    h = xp.tanh(x @ w["W1"] + w["b1"])
    logits = h @ w["W2"] + w["b2"]
    logits = logits - xp.max(logits, axis=1, keepdims=True)
    logp = logits - xp.log(xp.sum(xp.exp(logits), axis=1, keepdims=True))
    return -xp.mean(xp.sum(logp * y, axis=1))


def gp_nll(theta, X, y, eye, xp=np):
    """Negative log marginal likelihood of a Gaussian process (squared-exponential
    kernel plus noise; theta = log signal variance, log length scale, log noise
    variance), the objective of hyperparameter fits: pairwise distances by
    einsum, a Cholesky factor, a triangular system, the log-determinant."""
    sq = xp.sum(X * X, axis=1)
    D = sq[:, None] + sq[None, :] - 2 * xp.einsum("ik,jk->ij", X, X)
    K = xp.exp(theta[0]) * xp.exp(-0.5 * D * xp.exp(-2 * theta[1])) + xp.exp(theta[2]) * eye
    L = xp.linalg.cholesky(K)
    z = xp.linalg.solve(L, y)
    # positional (offset, axis1, axis2): torch names them dim1/dim2, and
    # autograd differentiates only the last two axes
    return 0.5 * xp.sum(z * z) + xp.sum(xp.log(xp.diagonal(L, 0, -1, -2)))


# --- JAX: loops as lax.fori_loop inside jit (one compiled loop; Python loops
# would unroll 10^6 iterations into the trace). fori_loop with constant
# bounds is lowered to a scan, which reverse mode needs; an explicit
# lax.scan over arange(1, N+1) measured the same.

def taylor_jax(n):
    _, jnp, lax = _import("jax")

    def f(x):
        return lax.fori_loop(1, n + 1, lambda i, s: s + x ** i / i, jnp.zeros_like(x))
    return f


def heat_jax(steps):
    _, jnp, lax = _import("jax")

    def f(u0, alpha):
        def step(_, u):
            return u.at[1:-1].set(u[1:-1] + alpha * (u[2:] - 2 * u[1:-1] + u[:-2]))
        return jnp.sum(lax.fori_loop(0, steps, step, u0) ** 2)
    return f


# --- PyTorch eager: Python loops as in the NumPy source (there is no loop
# construct to hand the whole loop to; torch.compile is not eager autograd).

def taylor_torch(n):
    def f(x):
        s = x * 0
        for i in range(1, n + 1):
            s = s + x ** i / i
        return s
    return f


def heat_torch(steps):
    def f(u0, alpha):
        u = u0.clone()
        for _ in range(steps):
            un = u.clone()      # slice assignment on a clone: autograd-safe; torch.cat measured the same
            un[1:-1] = u[1:-1] + alpha * (u[2:] - 2 * u[1:-1] + u[:-2])
            u = un
        return (u ** 2).sum()
    return f


def mlp_torch(w, x, y):
    torch = _import("torch")
    h = torch.tanh(x @ w["W1"] + w["b1"])
    logp = torch.log_softmax(h @ w["W2"] + w["b2"], dim=1)   # the idiomatic fused form
    return -(logp * y).sum(dim=1).mean()


# --- HIPS autograd: no slice assignment, so the heat step is concatenated.

def heat_autograd(steps):
    _, anp = _import("autograd")

    def f(u0, alpha):
        u = u0
        for _ in range(steps):
            u = anp.concatenate([u[:1], u[1:-1] + alpha * (u[2:] - 2 * u[1:-1] + u[:-2]), u[-1:]])
        return anp.sum(u ** 2)
    return f


def _xp(name, fun):
    """``fun`` with xp bound to the peer's NumPy-like namespace (jnp, anp, torch)."""
    mod = _import(name)
    return functools.partial(fun, xp=mod if name == "torch" else mod[1])


def _xp_peers(fun, *names):
    """Program entries running the xp-generic ``fun`` under each peer in ``names``."""
    return {n: (lambda s, n=n: _xp(n, fun)) for n in names or ("jax", "torch", "autograd")}


# ==========================================================================
# The table


@dataclasses.dataclass
class Program:
    """One benchmark program and its implementation in every library.

    Each implementation is a function of the size (a dict) returning
    ``f(params, *data)``; the gradient is taken w.r.t. ``params``.
    """
    key: str                     # for --only
    label: Callable              # size -> row label
    sizes: dict                  # mode -> size
    inputs: Callable             # size -> (params, *data), seeded
    numpy: Callable              # the program as NumPy code: tapediff records it, NumPy runs it
    reference: Callable          # hand-written NumPy value+gradient
    jax: Optional[Callable] = None
    torch: Optional[Callable] = None
    autograd: Optional[Callable] = None
    # hand-written C: library key -> (size -> (factory: example inputs -> vg))
    c: dict = dataclasses.field(default_factory=dict)
    # mode -> {library: smaller size}: libraries too slow at full size (Python
    # loops of 10^6 iterations) are timed there and scaled linearly; flagged.
    scaled: dict = dataclasses.field(default_factory=dict)
    scale_param: str = ""        # the size entry that scales linearly
    notes: dict = dataclasses.field(default_factory=dict)   # library key -> note for the table


def _n(n):
    """10**6 as '10^6' (other numbers as they are), for labels."""
    e = round(math.log10(n)) if n > 0 else 0
    return f"10^{e}" if e >= 3 and 10 ** e == n else str(n)


def _const(f):
    return lambda size: f


def _taylor_inputs(s):
    return (0.5,)


def _sin_exp_inputs(s):
    rng = np.random.default_rng(1)
    return rng.uniform(0.5, 2.0, 10), np.arange(1, s["K"] + 1) / s["K"]


def _vector_inputs(s):
    return (np.random.default_rng(2).normal(size=s["n"]),)


def _matmul_inputs(s):
    rng = np.random.default_rng(3)       # B scaled so that the entries of A @ B are O(1)
    return ((rng.normal(size=(s["m"], s["k"])), rng.normal(size=(s["k"], s["n"])) / math.sqrt(s["k"])),)


def _mlp_inputs(s):
    return mlp_args(batch=s["batch"], n_in=s["n_in"], hidden=s["hidden"], n_out=s["n_out"], seed=4)


def _heat_inputs(s):
    x = np.linspace(0, np.pi, s["n"])
    return np.sin(x) + 0.1 * np.random.default_rng(5).normal(size=s["n"]), 0.2


def _gp_inputs(s):
    rng = np.random.default_rng(6)
    X = rng.uniform(-2, 2, size=(s["n"], 3))
    y = np.sin(X @ np.array([1.0, -0.5, 0.3])) + 0.1 * rng.normal(size=s["n"])
    return np.array([0.1, -0.2, np.log(0.05)]), X, y, np.eye(s["n"])


def _mlp_label(s):
    return (f"MLP {s['n_in']}-{s['hidden']}-{s['n_out']} batch {s['batch']}")


MLP_BIG = dict(n_in=784, hidden=256, n_out=10, batch=128)
MLP_SMALL = dict(n_in=2, hidden=50, n_out=2, batch=1)

PROGRAMS = [
    Program(
        key="taylor",
        label=lambda s: f"taylor: sum x^i/i, N={_n(s['N'])}, x=0.5",
        sizes={"full": {"N": 10**6}, "quick": {"N": 10**4}, "tiny": {"N": 30}},
        inputs=_taylor_inputs,
        numpy=lambda s: functools.partial(taylor, n=s["N"]),
        reference=lambda s: functools.partial(hw.np_taylor, n=s["N"]),
        jax=lambda s: taylor_jax(s["N"]),
        torch=lambda s: taylor_torch(s["N"]),
        autograd=lambda s: functools.partial(taylor, n=s["N"]),   # the NumPy source runs on boxes
        # the running product is what one writes by hand (1 multiply per term);
        # pow per term is the tape's own operations: both are reported
        c={"hand-c": lambda s: functools.partial(hw.c_taylor, n=s["N"], variant="product"),
           "hand-c-pow": lambda s: functools.partial(hw.c_taylor, n=s["N"], variant="pow")},
        # Python-speed replays cost 20-300 us per iteration (interpreted
        # tapediff, torch eager, autograd): 10^6 iterations would take minutes
        scaled={"full": {"tapediff": {"N": 10**4}, "torch": {"N": 10**4}, "autograd": {"N": 10**4}},
                "quick": {"torch": {"N": 10**3}, "autograd": {"N": 10**3}}},
        scale_param="N",
        notes={"hand-c": "running product x^i = x^(i-1) x, no pow", "hand-numpy": "cumprod",
               "jax": "lax.fori_loop", "torch": "Python loop", "autograd": "Python loop",
               "numpy": "Python loop on floats"}),
    Program(
        key="sin-exp",
        label=lambda s: f"sin-exp: K={_n(s['K'])} x 5 terms, grad p in R^10",
        sizes={"full": {"K": 10**5}, "quick": {"K": 10**4}, "tiny": {"K": 50}},
        inputs=_sin_exp_inputs, numpy=_const(sin_exp), reference=_const(hw.np_sin_exp),
        **_xp_peers(sin_exp),
        c={"hand-c": lambda s: hw.c_sin_exp}),
    Program(
        key="tanh-cube-50",
        label=lambda s: f"tanh-cube: sum(tanh(x)^3) + x.x, n={s['n']}",
        sizes={"full": {"n": 50}, "quick": {"n": 50}, "tiny": {"n": 50}},
        inputs=_vector_inputs, numpy=_const(tanh_cube), reference=_const(hw.np_tanh_cube),
        **_xp_peers(tanh_cube),
        c={"hand-c": lambda s: hw.c_tanh_cube}),
    Program(
        key="tanh-cube-1e6",
        label=lambda s: f"tanh-cube: sum(tanh(x)^3) + x.x, n={_n(s['n'])}",
        sizes={"full": {"n": 10**6}, "quick": {"n": 10**5}, "tiny": {"n": 200}},
        inputs=_vector_inputs, numpy=_const(tanh_cube), reference=_const(hw.np_tanh_cube),
        **_xp_peers(tanh_cube),
        c={"hand-c": lambda s: hw.c_tanh_cube}),
    Program(
        key="matmul",
        label=lambda s: f"matmul: sum((A@B)^2)/2, {s['m']}x{s['k']} @ {s['k']}x{s['n']}, grad A and B",
        sizes={"full": dict(m=1024, k=64, n=512), "quick": dict(m=256, k=64, n=128),
               "tiny": dict(m=8, k=4, n=6)},
        inputs=_matmul_inputs, numpy=_const(matmul_loss), reference=_const(hw.np_matmul),
        **_xp_peers(matmul_loss)),
    Program(
        key="mlp-784", label=_mlp_label,
        sizes={"full": MLP_BIG, "quick": MLP_BIG, "tiny": dict(n_in=20, hidden=8, n_out=3, batch=4)},
        inputs=_mlp_inputs, numpy=_const(mlp), reference=_const(hw.np_mlp),
        torch=_const(mlp_torch), **_xp_peers(mlp, "jax", "autograd")),
    Program(
        key="mlp-2", label=_mlp_label,
        sizes={"full": MLP_SMALL, "quick": MLP_SMALL, "tiny": dict(n_in=2, hidden=5, n_out=2, batch=1)},
        inputs=_mlp_inputs, numpy=_const(mlp), reference=_const(hw.np_mlp),
        torch=_const(mlp_torch), **_xp_peers(mlp, "jax", "autograd"),
        c={"hand-c": lambda s: hw.c_mlp}),      # loops: the floor for a tiny network
    Program(
        key="gp",
        label=lambda s: f"gp: GP negative log likelihood, {s['n']} points in 3-d, grad 3 log-hyperparameters",
        sizes={"full": {"n": 400}, "quick": {"n": 100}, "tiny": {"n": 12}},
        inputs=_gp_inputs, numpy=_const(gp_nll), reference=_const(hw.np_gp_nll),
        **_xp_peers(gp_nll),
        notes={"hand-numpy": "explicit inverse: tr((K^-1 - a a^T) dK) / 2"}),
    Program(
        key="heat",
        label=lambda s: f"heat: {s['n']} points x {s['steps']} steps, alpha=0.2, grad u0",
        sizes={"full": {"n": 1000, "steps": 1000}, "quick": {"n": 200, "steps": 200},
               "tiny": {"n": 20, "steps": 10}},
        inputs=_heat_inputs,
        numpy=lambda s: (lambda u0, alpha: heat(u0, alpha, s["steps"])),
        reference=lambda s: (lambda u0, alpha: hw.np_heat(u0, alpha, s["steps"])),
        jax=lambda s: heat_jax(s["steps"]), torch=lambda s: heat_torch(s["steps"]),
        autograd=lambda s: heat_autograd(s["steps"]),
        c={"hand-c": lambda s: functools.partial(hw.c_heat, steps=s["steps"])},
        notes={lib: "reverse pass exploits linearity: no stored states" for lib in ("hand-c", "hand-numpy")}
        | {"jax": "lax.fori_loop", "torch": "Python loop", "autograd": "Python loop, concatenate"}),
]


# ==========================================================================
# Pytrees (dict / tuple / list of leaves), the canonical order of gradients

def flatten(tree):
    """(leaves, treedef); dict keys sorted, as JAX orders them."""
    if isinstance(tree, dict):
        keys = sorted(tree)
        parts = [flatten(tree[k]) for k in keys]
        return [leaf for p in parts for leaf in p[0]], ("dict", keys, [p[1] for p in parts])
    if isinstance(tree, (tuple, list)):
        parts = [flatten(v) for v in tree]
        return [leaf for p in parts for leaf in p[0]], (type(tree), None, [p[1] for p in parts])
    return [tree], None


def tree_map(f, tree):
    """``f`` applied to every leaf, keeping containers and dict order."""
    if isinstance(tree, dict):
        return {k: tree_map(f, v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(tree_map(f, v) for v in tree)
    return f(tree)


def unflatten(treedef, leaves):
    it = iter(leaves)

    def build(td_):
        if td_ is None:
            return next(it)
        kind, keys, children = td_
        vals = [build(c) for c in children]
        return dict(zip(keys, vals)) if kind == "dict" else kind(vals)
    return build(treedef)


# ==========================================================================
# Library adapters: each turns (program, size, inputs) into timed runs


@dataclasses.dataclass
class Run:
    """One timed implementation: ``call()`` is one value+gradient evaluation."""
    lib: str                     # key in LABELS
    call: Callable
    build_s: float               # recording/compiling before the first call (part of first call)
    result: Callable             # call()'s output -> (value, [gradient leaves]) as NumPy
    note: str = ""
    check: Callable = None       # optional extra assertion on the first call's output
    fallback: Callable = None    # optional: after the first call, why it is not native ("" if it is)
    value_only: bool = False     # NumPy forward: no gradient


class Skip(Exception):
    """A library cannot run this program here (missing peer, no compiler, ...)."""


def _np_result(out):
    value, grads = out
    return float(value), [np.asarray(g) for g in flatten(grads)[0]]


def lib_numpy(prog, size, args):
    f = prog.numpy(size)
    return [Run("numpy", lambda: f(*args), 0.0, lambda v: (float(v), []), value_only=True)]


def lib_hand_numpy(prog, size, args):
    f = prog.reference(size)
    return [Run("hand-numpy", lambda: f(*args), 0.0, _np_result)]


def lib_hand_c(prog, size, args):
    if not prog.c:
        raise Skip("no hand-written C (BLAS-bound: C would call the same dgemm as NumPy)")
    if not hw.c_available():
        raise Skip("no C compiler: " + compiler_status())
    runs = []
    for key, factory in prog.c.items():
        t0 = now()
        vg = factory(size)(*args)
        runs.append(Run(key, lambda vg=vg: vg(*args), now() - t0, _np_result))
    return runs


def lib_tapediff(prog, size, args):
    t0 = now()
    rf = td.record(prog.numpy(size), *args, argnums=0)
    t_rec = now() - t0
    return [Run("tapediff", lambda: rf.value_and_grad(*args), t_rec, _np_result,
                note=f"record {fmt(t_rec)}")]


def lib_tapediff_compiled(prog, size, args):
    t0 = now()
    rf = td.record(prog.numpy(size), *args, argnums=0)
    t_rec = now() - t0
    try:
        compile_ = rf.compile
    except AttributeError:
        raise Skip("this tapediff has no RecordedFunction.compile (C backend not built yet)") from None
    t0 = now()
    ct = compile_()                      # an exception here is a tapediff bug: let it propagate
    build = t_rec + now() - t0
    # compile() is lazy: the gradient tape is generated and built by the first call
    note = f"record {fmt(t_rec)}; the rest: compile() + first call (C build)"
    fallback = functools.partial(_not_native, rf)
    runs = [Run("tapediff-compiled", lambda: ct.value_and_grad(*args), build, _np_result,
                note=note, fallback=fallback)]
    # value_and_grad(..., out=grads) writes into caller buffers: no allocation
    # per call. Only for array parameters (a Python-float parameter has no buffer).
    if all(isinstance(leaf, np.ndarray) for leaf in flatten(args[0])[0]):
        out = tree_map(np.zeros_like, args[0])     # same structure and dict order as params

        def check_out(result, ref):
            assert result[1] is out, "value_and_grad(..., out=out) did not return out"
            _compare(f"{prog.key} / tapediff compiled, out= buffers", (result[0], flatten(out)[0]), ref)
        runs.append(Run("tapediff-compiled-out", lambda: ct.value_and_grad(*args, out=out),
                        0.0, _np_result, note="first call reuses the compiled tape above",
                        check=check_out, fallback=fallback))
    return runs


def _not_native(rf):
    """Why the compiled gradient tape replays with the interpreter ("" when native).

    tapediff warns (CompileWarning) only once per unsupported op per process,
    so a second program with the same op would fall back silently: look at the
    version's native gradient tape instead (None when it could not be built)."""
    native = getattr(rf._current, "native", None)
    if native is not None and native.get("grad", True) is None:
        return "fell back to the NumPy interpreter (see the CompileWarning)"
    return ""


def lib_jax(prog, size, args):
    mods = _import("jax")
    if mods is None:
        raise Skip("jax is not installed")
    jax, jnp, _ = mods
    f = prog.jax(size)
    # inputs are device arrays made once: converting NumPy arrays per call
    # would time a copy, not JAX
    jargs = jax.tree_util.tree_map(jnp.asarray, args)
    vg = jax.jit(jax.value_and_grad(f))
    return [Run("jax", lambda: jax.block_until_ready(vg(*jargs)), 0.0, _np_result,
                note="first call: trace + compile")]


def lib_torch(prog, size, args):
    torch = _import("torch")
    if torch is None:
        raise Skip("torch is not installed")
    f = prog.torch(size)
    leaves, tdef = flatten(args[0])
    tleaves = [torch.tensor(np.asarray(leaf), dtype=torch.float64, requires_grad=True)
               for leaf in leaves]
    tparams = unflatten(tdef, tleaves)
    tdata = [torch.from_numpy(d) if isinstance(d, np.ndarray) else d for d in args[1:]]

    def call():
        value = f(tparams, *tdata)
        # autograd.grad rather than backward(): no .grad accumulation to reset
        return value.detach(), torch.autograd.grad(value, tleaves)

    def result(out):
        return float(out[0]), [g.numpy() for g in out[1]]
    return [Run("torch", call, 0.0, result)]


def lib_autograd(prog, size, args):
    mods = _import("autograd")
    if mods is None:
        raise Skip("autograd is not installed")
    vg = mods[0].value_and_grad(prog.autograd(size))
    return [Run("autograd", lambda: vg(*args), 0.0, _np_result)]


LIBRARIES = {                 # --libs key -> adapter; also the column order
    "tapediff-compiled": lib_tapediff_compiled,
    "tapediff": lib_tapediff,
    "hand-c": lib_hand_c,
    "hand-numpy": lib_hand_numpy,
    "numpy": lib_numpy,
    "jax": lib_jax,
    "torch": lib_torch,
    "autograd": lib_autograd,
}

LABELS = {
    "tapediff-compiled": "tapediff compiled",
    "tapediff-compiled-out": "tapediff compiled, out=",
    "tapediff": "tapediff interpreted",
    "hand-c": "hand-written C",
    "hand-c-pow": "hand-written C, pow (the tape's operations)",
    "hand-numpy": "hand-written NumPy",
    "numpy": "NumPy forward only",
    "jax": "jax.jit",
    "torch": "torch eager",
    "autograd": "autograd",
}

# Peers an adapter needs in --libs to exist for the program (None: always).
_PEER = {"jax": "jax", "torch": "torch", "autograd": "autograd"}


# ==========================================================================
# Checking and timing


def _compare(label, got, ref):
    """Assert ``got`` == ``ref`` (value, [leaves]) to RTOL, relative to each leaf's scale."""
    (v, gs), (rv, rgs) = got, ref
    if not abs(v - rv) <= RTOL * abs(rv) + 1e-300:
        raise AssertionError(f"{label}: value {v!r} differs from the hand-written {rv!r} "
                             f"(relative {abs(v - rv) / abs(rv):.2e} > {RTOL})")
    if gs is None:
        return
    if len(gs) != len(rgs):
        raise AssertionError(f"{label}: {len(gs)} gradient leaves, expected {len(rgs)}")
    for i, (g, r) in enumerate(zip(gs, rgs)):
        g, r = np.asarray(g, dtype=np.float64), np.asarray(r)
        if g.shape != r.shape:
            raise AssertionError(f"{label}: gradient leaf {i} has shape {g.shape}, expected {r.shape}")
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        err = float(np.max(np.abs(g - r))) if r.size else 0.0
        if not err <= RTOL * scale + 1e-300:
            raise AssertionError(f"{label}: gradient leaf {i} differs from the hand-written one: "
                                 f"max abs error {err:.3e}, max |grad| {scale:.3e} (rtol {RTOL})")


@dataclasses.dataclass
class Budget:
    """How long to time: ``batches`` batches of >= ``batch_s`` each, but at
    most ``total_s`` per measurement (slow calls then get >= min_batches)."""
    batches: int
    batch_s: float
    total_s: float
    min_batches: int


BUDGETS = {"full": Budget(7, 0.2, 6.0, 3), "quick": Budget(3, 0.02, 0.5, 2),
           "tiny": Budget(1, 0.0, 0.0, 1)}


def calibrate(call, budget):
    """(calls per batch, batches) for ``call``, which has already run once."""
    t0 = now()
    call()
    one = max(now() - t0, 1e-9)
    number = max(1, math.ceil(budget.batch_s / one))
    batches = budget.batches
    if one * number * batches > budget.total_s:      # slow calls: fewer batches, not minutes
        batches = max(budget.min_batches, int(budget.total_s / (one * number)))
    return number, batches


def time_batch(call, number):
    """Seconds per call over ``number`` calls. GC is off meanwhile, as in
    timeit, so a collection of one library's garbage is not billed to another."""
    gc.collect()
    gc.disable()
    try:
        t0 = now()
        for _ in range(number):
            call()
        return (now() - t0) / number
    finally:
        gc.enable()


@dataclasses.dataclass
class Result:
    lib: str
    median_s: Optional[float] = None
    min_s: Optional[float] = None
    first_call_s: Optional[float] = None
    calls_per_batch: int = 0
    batches: int = 0
    scaled_from: Optional[dict] = None     # size actually run when scaled
    factor: float = 1.0                    # times multiply by this (linear extrapolation)
    note: str = ""
    skipped: str = ""
    native: bool = True                    # False: a compiled tapediff run that fell back


def run_program(prog, mode, libs, timing=True, log=print):
    """Check (and time) every library in ``libs`` on ``prog`` at ``prog.sizes[mode]``.

    Returns ``{lib key: Result}``. Every library runs its first call and is
    checked before any is timed: a wrong value or gradient raises
    AssertionError and nothing is timed."""
    size = prog.sizes[mode]
    results, refs, timed = {}, {}, []
    for key in libs:
        adapter = LIBRARIES[key]
        smaller = prog.scaled.get(mode, {}).get(key)
        run_size = {**size, **smaller} if smaller else size
        factor = size[prog.scale_param] / run_size[prog.scale_param] if smaller else 1.0
        args = prog.inputs(run_size)
        frozen = tuple(sorted(run_size.items()))
        if frozen not in refs:
            refs[frozen] = _np_result(prog.reference(run_size)(*args))
        ref = refs[frozen]
        try:
            runs = adapter(prog, run_size, args)
        except Skip as why:
            results[key] = Result(key, skipped=str(why))
            continue
        for run in runs:
            t0 = now()
            out = run.call()
            first = run.build_s + now() - t0
            got = run.result(out)
            _compare(f"{prog.key} / {LABELS[run.lib]}", (got[0], None if run.value_only else got[1]), ref)
            if run.check is not None:
                run.check(out, ref)
            why = run.fallback() if run.fallback else ""
            note = "; ".join(n for n in (f"NOT NATIVE: {why}" if why else "",
                                         prog.notes.get(run.lib, ""), run.note) if n)
            r = Result(run.lib, first_call_s=first, factor=factor, note=note,
                       scaled_from=run_size if factor != 1.0 else None, native=not why)
            results[run.lib] = r
            if timing:
                r.calls_per_batch, r.batches = calibrate(run.call, BUDGETS[mode])
                timed.append((r, run.call, []))
    # Batches run round-robin over the libraries, so that a change of load on
    # the machine during the program hits every library alike instead of
    # whichever happened to be timed then.
    for round_ in range(max((r.batches for r, _, _ in timed), default=0)):
        for r, call, times in timed:
            if round_ < r.batches:
                times.append(time_batch(call, r.calls_per_batch))
    for r, _, times in timed:
        r.median_s = statistics.median(times) * r.factor
        r.min_s = min(times) * r.factor
    if log:
        for r in results.values():
            status = ("skipped" if r.skipped else f"median {fmt(r.median_s)}" if timing
                      else "checked")
            log(f"  {LABELS[r.lib]:<44} {status}")
    return results


# ==========================================================================
# Report


def reference_lib(results):
    """The library ratios are taken against: compiled tapediff if it ran, else interpreted."""
    for key in ("tapediff-compiled", "tapediff"):
        if any(key in r and r[key].median_s is not None for r in results.values()):
            return key
    return None


def _cell(r, ref, with_ratio=True):
    if r is None:
        return "n/a"
    if r.skipped:
        return "-"
    t = ("~" if r.factor != 1.0 else "") + fmt(r.median_s) + ("" if r.native else " (NOT NATIVE)")
    if with_ratio and ref is not None and ref.median_s:
        t += f" ({_ratio(r.median_s / ref.median_s)})"
    return t


def _ratio(x):
    if x >= 100:
        return f"{x:.0f}x"
    return f"{x:.1f}x" if x >= 10 else f"{x:.2f}x" if x >= 0.1 else f"{x:.2g}x"


SUMMARY_COLUMNS = ["tapediff-compiled", "tapediff", "hand-c", "hand-numpy", "numpy",
                   "jax", "torch", "autograd"]


def markdown(all_results, programs, mode, ref_key):
    """The summary table (one row per program) and the detailed table."""
    lines = []
    ref_label = LABELS[ref_key] if ref_key else "none"
    cols = [c for c in SUMMARY_COLUMNS      # a column that ran somewhere
            if any(c in all_results[p.key] and not all_results[p.key][c].skipped for p in programs)]
    lines.append(f"Median time per value+gradient call; (r) = time / {ref_label} "
                 "(r > 1: slower than tapediff). `~`: measured at a smaller N and scaled "
                 "linearly (see the detailed table).\n")
    lines.append("| program | " + " | ".join(LABELS[c] for c in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for p in programs:
        res = all_results[p.key]
        ref = res.get(ref_key) if ref_key else None
        lines.append(f"| {p.label(p.sizes[mode])} | "
                     + " | ".join(_cell(res.get(c), ref, c != ref_key) for c in cols) + " |")
    lines.append("")
    lines.append(f"| program | library | median | min | first call | vs {ref_label} | note |")
    lines.append("|---|---|---|---|---|---|---|")
    for p in programs:
        res = all_results[p.key]
        ref = res.get(ref_key) if ref_key else None
        for key, r in res.items():
            if r.skipped:
                lines.append(f"| {p.key} | {LABELS.get(key, key)} | | | | | skipped: {r.skipped} |")
                continue
            ratio = _ratio(r.median_s / ref.median_s) if ref and ref.median_s else ""
            note = r.note
            if r.factor != 1.0:
                note = (f"measured at {p.scale_param}={_n(r.scaled_from[p.scale_param])}, times "
                        f"x{r.factor:g}; first call not scaled" + ("; " + note if note else ""))
            if r.batches and r.batches < BUDGETS[mode].batches:
                note = (note + "; " if note else "") + f"{r.batches} batches of {r.calls_per_batch}"
            lines.append(f"| {p.key} | {LABELS[key]} | {('~' if r.factor != 1 else '') + fmt(r.median_s)}"
                         f" | {fmt(r.min_s)} | {fmt(r.first_call_s)} | {ratio} | {note} |")
    return "\n".join(lines)


# The issue's targets: (program, peer, test on t = tapediff / peer median, wording)
TARGETS = [
    ("taylor", "jax", lambda t: t < 1, "faster than jax.jit"),
    ("sin-exp", "jax", lambda t: t < 1, "faster than jax.jit"),
    ("tanh-cube-50", "jax", lambda t: t < 1, "faster than jax.jit"),
    ("tanh-cube-1e6", "jax", lambda t: t < 1, "faster than jax.jit"),
    ("heat", "jax", lambda t: t < 1, "faster than jax.jit"),
    ("tanh-cube-50", "jax", lambda t: t <= 1 / 5, ">= 5x faster than jax.jit"),
    ("mlp-2", "jax", lambda t: t <= 1 / 5, ">= 5x faster than jax.jit"),
    ("matmul", "jax", lambda t: t <= 1 / 0.95, ">= 0.95x jax.jit's speed"),
    ("mlp-784", "jax", lambda t: t <= 1 / 0.95, ">= 0.95x jax.jit's speed"),
    ("taylor", "hand-c", lambda t: t <= 1.5, "within 1.5x of hand-written C"),
    ("tanh-cube-1e6", "hand-c", lambda t: t <= 1.5, "within 1.5x of hand-written C"),
]


def targets_report(all_results, ref_key, mode):
    lines = ["Targets (issue 3), for " + (LABELS[ref_key] if ref_key else "tapediff") + ":"]
    if ref_key != "tapediff-compiled":
        lines.append("  (the targets are for compiled tapes; this tapediff has none, so the "
                     "interpreted replay is checked and is not expected to meet them)")
    if mode != "full":
        lines.append(f"  ({mode} sizes, not the issue's: indicative only)")
    for prog, peer, ok, words in TARGETS:
        res = all_results.get(prog, {})
        mine, theirs = res.get(ref_key), res.get(peer)
        if mine is None or theirs is None or mine.median_s is None or theirs.median_s is None:
            lines.append(f"  [ -- ] {prog}: {words}: not measured")
            continue
        t = mine.median_s / theirs.median_s
        extra = ""
        if prog == "taylor" and peer == "hand-c" and res.get("hand-c-pow") and res["hand-c-pow"].median_s:
            extra = (f"; vs the pow-based C (the tape's operations) "
                     f"{mine.median_s / res['hand-c-pow'].median_s:.3g}x")
        flag = " (extrapolated)" if mine.factor != 1 or theirs.factor != 1 else ""
        flag += "" if mine.native else " (NOT NATIVE: interpreter fallback)"
        lines.append(f"  [{'MET ' if ok(t) else 'MISS'}] {prog}: {words}: {fmt(mine.median_s)} vs "
                     f"{LABELS[peer]} {fmt(theirs.median_s)} = {t:.3g}x the time{flag}{extra}")
    return "\n".join(lines)


def environment():
    """Versions and thread settings, printed above the tables and stored in the JSON."""
    env = {"date": datetime.date.today().isoformat(), "python": platform.python_version(),
           "numpy": np.__version__, "tapediff": td.__version__, "machine": platform.machine(),
           "threads": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                      "MKL_NUM_THREADS", "XLA_FLAGS")}}
    try:
        with open("/proc/cpuinfo") as fh:
            env["cpu"] = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        env["cpu"] = platform.processor()
    env["cpus"] = os.cpu_count()
    try:                                   # which tapediff was measured (read-only git queries)
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        git = ["git", "-C", repo]
        env["commit"] = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True, check=True).stdout.strip()
        if subprocess.run(git + ["status", "--porcelain", "--untracked-files=no"],
                          capture_output=True, text=True, check=True).stdout.strip():
            env["commit"] += " + uncommitted changes"
    except (OSError, subprocess.CalledProcessError):
        env["commit"] = None
    env["compiler"] = compiler_status()
    try:
        import threadpoolctl
        env["blas_threads"] = {i["filepath"].rsplit("/", 1)[-1]: i["num_threads"]
                               for i in threadpoolctl.threadpool_info()}
    except ImportError:
        pass
    for name in ("jax", "jaxlib", "torch", "autograd"):
        try:
            env[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            env[name] = None
    torch = sys.modules.get("torch")
    if torch is not None:
        env["threads"]["torch"] = (torch.get_num_threads(), torch.get_num_interop_threads())
    return env


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and repeats (about a minute)")
    ap.add_argument("--sizes", choices=["full", "quick", "tiny"], default=None,
                    help="size set (--quick is --sizes quick; tiny is for the test-suite)")
    ap.add_argument("--only", default="",
                    help="comma-separated programs: " + ",".join(p.key for p in PROGRAMS))
    ap.add_argument("--libs", default="", help="comma-separated libraries: " + ",".join(LIBRARIES))
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    ap.add_argument("--warm-cache", action="store_true",
                    help="use the normal tapediff compile cache (default: a fresh one, so the "
                         "first-call time includes building the C)")
    a = ap.parse_args(argv)
    mode = a.sizes or ("quick" if a.quick else "full")
    programs = PROGRAMS
    if a.only:
        wanted = a.only.split(",")
        unknown = set(wanted) - {p.key for p in PROGRAMS}
        if unknown:
            ap.error(f"unknown program(s) {sorted(unknown)}; choose from {[p.key for p in PROGRAMS]}")
        programs = [p for p in PROGRAMS if p.key in wanted]
    libs = list(LIBRARIES)
    if a.libs:
        wanted = a.libs.split(",")
        unknown = set(wanted) - set(LIBRARIES)
        if unknown:
            ap.error(f"unknown librar(ies) {sorted(unknown)}; choose from {list(LIBRARIES)}")
        libs = [k for k in LIBRARIES if k in wanted]
    if not a.warm_cache:
        os.environ["TAPEDIFF_CACHE_DIR"] = tempfile.mkdtemp(prefix="tapediff-compare-")

    t_start = now()
    load_start = os.getloadavg()       # other processes on the machine skew timings: say so
    for key in libs:                       # say up front which peers are missing
        if key in _PEER and _import(_PEER[key]) is None:
            print(f"note: {key} is not installed; its column is skipped")
    c_build = None
    if "hand-c" in libs and hw.c_available():
        t0 = now()
        hw.load()
        c_build = now() - t0
    all_results = {}
    for p in programs:
        print(f"{p.label(p.sizes[mode])}", flush=True)
        t0 = now()
        all_results[p.key] = run_program(p, mode, libs)
        print(f"  ({now() - t0:.1f} s)")
    ref_key = reference_lib(all_results)
    env = environment()
    env["loadavg_1min"] = {"start": load_start[0], "end": os.getloadavg()[0]}

    print()
    print(f"tapediff {env['tapediff']} (commit {env['commit']}), numpy {env['numpy']}, jax {env['jax']}, torch {env['torch']}, "
          f"autograd {env['autograd']}; python {env['python']}; {env['cpu']} ({env['cpus']} CPUs), "
          f"1 thread per library, float64; {env['date']}; sizes: {mode}")
    print(f"C: {env['compiler']}" + (f"; hand-written C module built in {fmt(c_build)}" if c_build else ""))
    load = env["loadavg_1min"]
    print(f"load average (1 min) at start / end: {load['start']:.2f} / {load['end']:.2f} "
          f"on {env['cpus']} CPUs" + (" -- other processes were running: timings are noisy"
                                      if max(load.values()) > 1.5 else ""))
    if ref_key is None:
        print("no tapediff timing: ratios omitted")
    elif ref_key == "tapediff":
        print("ratios are to tapediff's INTERPRETED replay: this tapediff has no compiled tapes "
              "(RecordedFunction.compile)")
    print()
    print(markdown(all_results, programs, mode, ref_key))
    print()
    print(targets_report(all_results, ref_key, mode))
    print(f"\ntotal {now() - t_start:.1f} s")

    if a.json:
        doc = {"environment": env, "sizes": mode, "reference": ref_key, "rtol_checked": RTOL,
               "hand_c_build_s": c_build,
               "programs": [{"key": p.key, "label": p.label(p.sizes[mode]), "size": p.sizes[mode],
                             "results": {k: dataclasses.asdict(r) for k, r in all_results[p.key].items()}}
                            for p in programs]}
        with open(a.json, "w") as fh:
            json.dump(doc, fh, indent=1, default=str)
        print(f"wrote {a.json}")
    return all_results


if __name__ == "__main__":
    main()
