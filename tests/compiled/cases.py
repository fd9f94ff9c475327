"""The corpus of programs replayed compiled and compared with the interpreter.

Each :class:`~tapediff.testing_compiled.Case` is recorded once and replayed
(interpreted, then compiled) on its arguments and on 1-3 more argument sets:
other random values, IEEE special values, inputs that take the other branch
of a guard, a singular matrix. ``CASES`` is the whole corpus; the conftest
compiles it per group (a few modules, built in parallel).

Compiling is what costs (about 50 ms of gcc per kB of generated C, plus a
cffi wrapper per tape), so related programs share a tape: ``summed`` adds
several uses of an op into one gradient case and ``grouped`` returns many
ops' values as one dict. Any part the C backend cannot lower is split off
into a case of its own (``name/label``), replayed interpreted with its
CompileWarning, so it never turns the rest of its group interpreted.

Groups (the prefix of a case's name): ``unary/``, ``binary/``, ``inactive/``
(every ufunc of the tables in tests/ops/test_elementwise.py), ``reduce/``,
``shape/``, ``index/``, ``write/`` (mutation), ``matmul/``, ``select/``
(where, clip, relu, abs, astype), ``linalg/``, ``more/`` (other ops of
tests/ops), ``loop/``, ``guard/``, ``prog/`` (end-to-end programs).
"""
import math

import numpy as np

from benchmarks import programs as bp
from tapediff.testing_compiled import Case
from tests.ops.test_elementwise import BINARY, INACTIVE_BINARY, INACTIVE_UNARY, UNARY
from tests import test_programs as tp

CASES = []
_names = set()


def add(name, fun, args, argnums=0, replays=(), modes=None, rtol=None, check_numpy=True,
        call=None):
    """Append a case, unless NumPy itself rejects the operation (``check_numpy``)."""
    if check_numpy:
        try:
            with np.errstate(all="ignore"):
                fun(*args)
        except (TypeError, ValueError, np.exceptions.DTypePromotionError):
            return
    assert name not in _names, name
    _names.add(name)
    if call is None:        # programs: the primal tape too, not only value_and_grad's
        call = name.split("/")[0] in ("loop", "guard")
    CASES.append(Case(name, fun, tuple(args), argnums, [tuple(r) for r in replays], modes, rtol,
                      call))


_rng = np.random.default_rng(20240611)


def draw(shape, dom=(-2, 2, None), dtype=np.float64):
    lo, hi, avoid = dom
    x = _rng.uniform(lo, hi, size=shape)
    if avoid:
        x = np.where(np.abs(x) < avoid, np.copysign(avoid, x) + x, x)
        x = np.clip(x, lo, hi)
    return x.astype(dtype) if shape != () else dtype(x)


def ints(shape, dom, dtype=np.int64):
    lo, hi, avoid = dom
    vals = [k for k in range(math.ceil(lo), math.floor(hi) + 1) if not avoid or abs(k) >= avoid]
    vals = vals or [1]
    return _rng.choice(np.array(vals, dtype=dtype), size=shape)


def bools(shape):
    return _rng.uniform(size=shape) < 0.5


def W(shape, dtype=np.float64):
    """Fixed non-uniform weights: the cotangents are not all ones."""
    n = int(np.prod(shape, dtype=np.int64))
    return (np.cos(np.arange(n) * 0.7) + 1.5).reshape(shape).astype(dtype)


def S(y):
    """A scalar of ``y`` whose gradient is ``W``: sum(y * W)."""
    dt = y.dtype if np.dtype(y.dtype).kind == "f" else np.float64
    return np.sum(y * W(y.shape, dt))


SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e300, -3e-310,
                    -2.5])
SPECIAL2 = np.array([2.0, -0.0, np.inf, 0.25, np.nan, -1.0, -np.inf, 1.0, 0.0, -7.5, 1e-300,
                     3.0])
# every pair of special values (binary ops)
PA, PB = (x.ravel().copy() for x in np.meshgrid(SPECIAL[:9], SPECIAL[:9]))


def _mid(dom):
    lo, hi, _ = dom
    return 0.5 * (lo + hi) + 0.1 * (hi - lo)


def _name(u):
    return u.__name__


# ---------------------------------------------------------------- elementwise
def _allowed(term, args):
    """Whether NumPy evaluates ``term(*args)`` to a dtype the corpus compares
    (float16 results are left to one documenting case)."""
    try:
        with np.errstate(all="ignore"):
            r = term(*args)
    except (TypeError, ValueError, np.exceptions.DTypePromotionError):
        return False
    return np.asarray(r).dtype != np.float16


def _lowers(fn, args, argnums=()):
    """Whether the tapes of ``fn`` (primal, and the gradient tape when
    ``argnums`` is given) lower to C: recording and lowering only."""
    import tapediff as td
    from tapediff.api import _dynamic_leaves
    from tapediff.codegen import NativeTape, Unsupported
    try:
        with np.errstate(all="ignore"):
            rf = td.record(fn, *args, argnums=argnums)
            NativeTape(rf.tape)
            if argnums != ():
                v = rf._current
                v.build_grad(args, _dynamic_leaves(args), rf.nums)
                NativeTape(v.grad_tape)
    except Unsupported:
        return False
    return True


def summed(name, terms, args, argnums=0, replays=()):
    """One gradient case out of several uses of an op: the sum of ``S(term)``
    over the terms NumPy accepts for ``args`` (one tape instead of one per term:
    compiling is what costs). A term the C backend cannot lower gets a case of
    its own (``name/label``; ``terms`` is a list or a dict by label), so that
    it does not turn the others interpreted."""
    if isinstance(terms, dict):
        labels, terms = list(terms), list(terms.values())
    else:
        labels = [str(k) for k in range(len(terms))]
    inside = []
    for k, t in zip(labels, terms):
        if not _allowed(t, args):
            continue
        if _lowers(lambda *a, t=t: S(t(*a)), args, argnums):
            inside.append(t)
        else:
            add(f"{name}/{k}", lambda *a, t=t: S(t(*a)), args, argnums, replays)

    def f(*a):
        total = S(inside[0](*a))
        for t in inside[1:]:
            total = total + S(t(*a))
        return total
    if inside:
        add(name, f, args, argnums, replays)


def grouped(prefix, terms, args, replays, argnums=(), modes=None):
    """Many small programs on the same arguments as one case returning a dict
    (one tape instead of one per term). Terms NumPy rejects are left out; terms
    the C backend cannot lower get a case of their own (``prefix/label``), so
    that they do not turn the group interpreted."""
    ok = {k: t for k, t in terms.items() if _allowed(t, args)}
    inside = {k: t for k, t in ok.items() if _lowers(t, args)}
    for k, t in ok.items():
        if k not in inside:
            add(f"{prefix}/{k}", t, args, argnums, replays, modes)

    def f(*a):
        return {k: t(*a) for k, t in inside.items()}
    add(prefix, f, args, argnums, replays, modes)


def batches(seq, n=6):
    return [seq[i:i + n] for i in range(0, len(seq), n)]


class Inputs:
    """Arguments built from generators: ``add(gen)`` returns the argument's
    index; ``draw_all()`` draws a fresh set (the recorded one, then replays)."""

    def __init__(self):
        self.gens, self.active = [], []

    def add(self, gen, active=True):
        self.gens.append(gen)
        if active:
            self.active.append(len(self.gens) - 1)
        return len(self.gens) - 1

    def draw_all(self):
        return [g() for g in self.gens]


def batch_name(prefix, ufs):
    return f"{prefix}/{_name(ufs[0][0])}..{_name(ufs[-1][0])}"


# six ufuncs per gradient tape: each on its own (3, 4) input in its domain, on an
# integer input, and on a bool input where NumPy allows (most give float16 for
# bools: one case below)
for chunk in batches(UNARY):
    inp, terms = Inputs(), {}
    for uf, dom in chunk:
        n = _name(uf)
        jx = inp.add(lambda dom=dom: draw((3, 4), dom))
        terms[n] = lambda *a, uf=uf, jx=jx: uf(a[jx])
        jk = inp.add(lambda dom=dom: ints((3, 4), dom), active=False)
        terms[f"{n}(int)"] = lambda *a, uf=uf, jx=jx, jk=jk: a[jx] * uf(a[jk])
        if _allowed(uf, [bools(2)]):
            jm = inp.add(lambda: bools(4), active=False)
            terms[f"{n}(bool)"] = lambda *a, uf=uf, jx=jx, jm=jm: a[jx][0] * uf(a[jm])
    summed(batch_name("unary/f64", chunk), terms, inp.draw_all(), tuple(inp.active),
           replays=[inp.draw_all()])
    inp, terms = Inputs(), {}
    for uf, dom in chunk:
        jx = inp.add(lambda dom=dom: draw((2, 5), dom, np.float32))
        terms[_name(uf)] = lambda *a, uf=uf, jx=jx: uf(a[jx])
    summed(batch_name("unary/f32", chunk), terms, inp.draw_all(), tuple(inp.active),
           replays=[inp.draw_all()])
# a Python float argument (a 0-d float64 input): every op in one gradient tape
summed("unary/pyfloat", {_name(uf): (lambda s, uf=uf, dom=dom: uf(s * (dom[1] - dom[0]) + dom[0]))
                         for uf, dom in UNARY}, [0.55], replays=[[0.45], [0.62]])
add("unary/sin/bool-float16", lambda x, m: S(x * np.sin(m)), [draw((4,)), bools(4)],
    replays=[[draw((4,)), bools(4)]])
# IEEE special values (float64 and float32), values and gradients (NaN where the
# interpreter has NaN)
S32 = SPECIAL[:8].astype(np.float32)
grouped("unary/special",
        {f"{_name(uf)}{sfx}": (lambda x, y, uf=uf, j=j: uf((x, y)[j]))
         for uf, _ in UNARY for j, sfx in ((0, ""), (1, "/f32"))},
        [SPECIAL.reshape(3, 4), S32], [[SPECIAL2.reshape(3, 4), S32[::-1].copy()],
                                      [SPECIAL[::-1].reshape(3, 4).copy(), -S32]],
        argnums=(0, 1))

# four ufuncs per gradient tape: broadcasting (4,) against (3, 4) and (3, 1)
# against (4,), a Python scalar, a float-int mix for some
for chunk in batches(BINARY, 4):
    inp, terms = Inputs(), {}
    for uf, da, db in chunk:
        n = _name(uf)
        ja = inp.add(lambda da=da: draw((3, 4), da))
        jb = inp.add(lambda db=db: draw((4,), db))
        jc = inp.add(lambda da=da: draw((3, 1), da))
        terms[f"{n}(row)"] = lambda *a, uf=uf, ja=ja, jb=jb: uf(a[ja], a[jb])
        terms[f"{n}(outer)"] = lambda *a, uf=uf, jb=jb, jc=jc: uf(a[jc], a[jb])
        terms[f"{n}(pyscalar)"] = lambda *a, uf=uf, ja=ja, s=_mid(db): uf(a[ja], s)
        if uf in (np.add, np.multiply, np.true_divide, np.power, np.maximum, np.arctan2):
            jk = inp.add(lambda db=db: ints((4,), db), active=False)
            terms[f"{n}(int)"] = lambda *a, uf=uf, jc=jc, jk=jk: uf(a[jc], a[jk])
    summed(batch_name("binary/f64", chunk), terms, inp.draw_all(), tuple(inp.active),
           replays=[inp.draw_all()])
    # float32 (and a weak Python scalar, which keeps float32)
    inp, terms = Inputs(), {}
    for uf, da, db in chunk:
        n = _name(uf)
        ja = inp.add(lambda da=da: draw((2, 5), da, np.float32))
        jb = inp.add(lambda db=db: draw((5,), db, np.float32))
        terms[n] = lambda *a, uf=uf, ja=ja, jb=jb: uf(a[ja], a[jb])
        terms[f"{n}(pyscalar)"] = lambda *a, uf=uf, jb=jb, s=_mid(da): uf(s, a[jb])
    summed(batch_name("binary/f32", chunk), terms, inp.draw_all(), tuple(inp.active),
           replays=[inp.draw_all()])
# float32 with float64: the result promotes
inp, terms = Inputs(), {}
for uf, da, db in BINARY:
    if uf in (np.add, np.multiply, np.true_divide, np.arctan2, np.maximum):
        ja = inp.add(lambda da=da: draw((4,), da, np.float32))
        jb = inp.add(lambda db=db: draw((4,), db))
        terms[_name(uf)] = lambda *a, uf=uf, ja=ja, jb=jb: uf(a[ja], a[jb])
summed("binary/f32-f64", terms, inp.draw_all(), tuple(inp.active), replays=[inp.draw_all()])
add("binary/power/f32-f64", lambda a, b: S(np.power(a, b)),
    [draw((4,), (0.2, 2, None), np.float32), draw((4,))], (0, 1),
    replays=[[draw((4,), (0.2, 2, None), np.float32), draw((4,))]])
# every pair of special values: values and gradients
grouped("binary/special", {_name(uf): (lambda a, b, uf=uf: uf(a, b)) for uf, _, _ in BINARY},
        [PA, PB], [[PB[::-1].copy(), PA[::-1].copy()]], argnums=(0, 1))


def _iargs():
    return [ints((5,), (-3, 3, 1)), ints((5,), (-3, 3, 1)), ints((5,), (-3, 3, 1), np.int32),
            ints((5,), (0, 3, None), np.int8), bools(6), bools(6)]


# integer and bool operands (values only)
grouped("binary/int-bool",
        {f"{_name(uf)}/{lab}": (lambda i, j, i32, i8, m, q, uf=uf, f=f: f(uf, i, j, i32, i8, m, q))
         for uf, _, _ in BINARY for lab, f in (
             ("int64", lambda uf, i, j, i32, i8, m, q: uf(np.abs(i), j)),
             ("int32-int64", lambda uf, i, j, i32, i8, m, q: uf(i32, np.abs(j))),
             ("int8-pyint", lambda uf, i, j, i32, i8, m, q: uf(i8, 2)),
             ("bool", lambda uf, i, j, i32, i8, m, q: uf(m, q)))},
        _iargs(), [_iargs()], modes=("call",))

summed("inactive/unary-f64", {_name(uf): (lambda x, uf=uf: uf(x) * x) for uf in INACTIVE_UNARY},
       [draw((3, 7)) * 2], replays=[[draw((3, 7)) * 2]])


def _vargs_u(x):
    return [x, draw((5,), (-3, 3, None), np.float32) * 2, ints((7,), (-3, 3, None)),
            ints((7,), (-3, 3, None), np.int8), bools(7)]


grouped("inactive/unary-values",
        {f"{_name(uf)}/{lab}": (lambda x, x32, k, k8, m, uf=uf, j=j: uf((x, x32, k, k8, m)[j]))
         for uf in INACTIVE_UNARY
         for j, lab in enumerate(("special", "f32", "int64", "int8", "bool"))},
        _vargs_u(SPECIAL.reshape(3, 4)), [_vargs_u(SPECIAL2.reshape(3, 4))], modes=("call",))

summed("inactive/binary-f64",
       {f"{_name(uf)}{sfx}": t for uf in INACTIVE_BINARY for sfx, t in (
           ("", lambda a, b, uf=uf: uf(a, b) * a),
           ("(pyscalar)", lambda a, b, uf=uf: uf(a, 0.25) * b))},
       [draw((3, 4)), draw((4,))], (0, 1), replays=[[draw((3, 4)), draw((4,))]])


def _vargs_b(a, b):
    return [a, b, draw((5,), dtype=np.float32), draw((5,), dtype=np.float32),
            ints((7,), (-3, 3, 1)), ints((7,), (-3, 3, 1)), bools(7), bools(7)]


grouped("inactive/binary-values",
        {f"{_name(uf)}/{lab}": (lambda a, b, a32, b32, i, j, m, q, uf=uf, f=f:
                                f(uf, a, b, a32, b32, i, j, m, q))
         for uf in INACTIVE_BINARY for lab, f in (
             ("special", lambda uf, a, b, a32, b32, i, j, m, q: uf(a, b)),
             ("f32", lambda uf, a, b, a32, b32, i, j, m, q: uf(a32, b32)),
             ("f32-pyfloat", lambda uf, a, b, a32, b32, i, j, m, q: uf(a32, 0.5)),
             ("int", lambda uf, a, b, a32, b32, i, j, m, q: uf(i, j)),
             ("bool", lambda uf, a, b, a32, b32, i, j, m, q: uf(m, q)))},
        _vargs_b(PA, PB), [_vargs_b(PB[::-1].copy(), PA[::-1].copy())], modes=("call",))

# ---------------------------------------------------------------- reductions
REDUCTIONS = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min, "mean": np.mean}
AXES = [None, 0, 1, (0, 2), -1]
X3R = draw((2, 3, 4))
for rn, red in REDUCTIONS.items():
    # every axis in one tape, keepdims alternating; sin() makes the cotangents non-uniform
    terms = {f"axis={ax}": (lambda x, red=red, ax=ax, kd=k % 2 == 1:
                            np.sin(red(x, axis=ax, keepdims=kd)))
             for k, ax in enumerate(AXES)}
    summed(f"reduce/{rn}", terms, [X3R],
           replays=[[draw((2, 3, 4), (0.5, 1.5, None))], [draw((2, 3, 4), (-2, 2, 0.2))]])
    add(f"reduce/{rn}/values",
        lambda x, red=red: tuple(red(x, axis=ax, keepdims=k % 2 == 0) for k, ax in enumerate(AXES)),
        [draw((2, 3, 4))], modes=("call",), replays=[[draw((2, 3, 4))]])
for rn, red in (("all", np.all), ("any", np.any)):
    terms = {f"axis={ax}": (lambda x, red=red, ax=ax: x * red(x > 0, axis=ax, keepdims=True))
             for ax in AXES}
    summed(f"reduce/{rn}", terms, [X3R],
           replays=[[np.abs(draw((2, 3, 4)))], [-np.abs(draw((2, 3, 4)))]])
    add(f"reduce/{rn}/values",
        lambda x, red=red: tuple(red(x > 0.5, axis=ax, keepdims=kd) for ax in AXES
                                 for kd in (False, True)),
        [draw((2, 3, 4))], modes=("call",), replays=[[draw((2, 3, 4))], [np.ones((2, 3, 4))]])
X_NAN = draw((3, 4))
X_NAN[1, 2] = np.nan
X_NAN2 = draw((3, 4))
X_NAN2[0, 0] = X_NAN2[2, 3] = np.nan
for rn, red in (("max", np.max), ("min", np.min), ("sum", np.sum), ("prod", np.prod)):
    add(f"reduce/{rn}/nan", lambda x, red=red: (red(x, axis=1), red(x, axis=0), red(x)),
        [X_NAN], replays=[[X_NAN2], [draw((3, 4))]])
X_INF = draw((3, 4))
X_INF[0, 1], X_INF[2, 2] = np.inf, -np.inf
add("reduce/inf", lambda x: (np.max(x, axis=0), np.min(x, axis=1), np.sum(x, axis=0)), [X_INF],
    replays=[[draw((3, 4))], [-X_INF]])
add("reduce/prod/zeros", lambda x: np.prod(x, axis=1),
    [np.array([[0.0, 2.0, 3.0], [1.5, 0.0, 0.0], [1.0, 2.0, -1.0]])],
    replays=[[np.array([[1.0, 0.0, 3.0], [0.0, 2.0, 0.5], [-1.0, 0.0, 0.0]])]])
add("reduce/max/ties", lambda x: (np.max(x, axis=-1), np.min(x)),
    [np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])],
    replays=[[np.array([[5.0, 1.0, 5.0], [0.0, -1.0, 0.0]])]])
add("reduce/methods", lambda x: S(x.sum(axis=1) + x.mean(0).sum() + x.max() - x.min(axis=0)[1]),
    [draw((3, 4))], replays=[[draw((3, 4))]])
add("reduce/f32", lambda x: S(np.sum(x, axis=0) * np.max(x, axis=0) + np.mean(x, axis=0)),
    [draw((50, 7), dtype=np.float32)], replays=[[draw((50, 7), dtype=np.float32)]])
add("reduce/f32-total", lambda x: np.sum(x * x) + np.prod(x[:5]),
    [draw((1001,), dtype=np.float32)], replays=[[draw((1001,), dtype=np.float32)]])
add("reduce/int", lambda x, k: S(x * np.sum(k, axis=0)) + S(x * np.max(k, axis=0)),
    [draw((4,)), ints((3, 4), (-5, 5, 0))], replays=[[draw((4,)), ints((3, 4), (-5, 5, 0))]])
add("reduce/int-values", lambda k: (np.sum(k, axis=1), np.prod(k, axis=0), np.max(k), np.min(k)),
    [ints((3, 4), (-5, 5, 0))], (), replays=[[ints((3, 4), (-5, 5, 0))]])
add("reduce/big-sum", lambda x: np.sum(x * x) / x.size, [draw((1000,))],
    replays=[[draw((1000,)) * 1e3]])
# Tall arrays, whose long axis the C loops run innermost in blocks
# (lower.tiled_axes): several blocks and a remainder, 2-d and 3-d, with the
# reductions the blocks may regroup (sums) and those whose order they must
# keep (a product or a max along a short axis leaves the loop unblocked).
TALL = {
    "outer": lambda x, p: np.sin(x * p[:7]) * np.exp(-x * p[7:]),
    "sum0": lambda x, p: np.sum(np.tanh(x * p[:7]), axis=0),
    "max0": lambda x, p: np.max(x * p[:7], axis=0),
    "prod1": lambda x, p: np.prod(1 + 0.01 * x * p[7:], axis=1),
    "min": lambda x, p: np.min(x * p[7:]) + np.sum(x * p[:7]),
}
summed("reduce/tall", TALL, [draw((700, 1)), draw((14,))], argnums=(0, 1),
       replays=[[draw((700, 1)), draw((14,))]])
TALL3 = {
    "sum1": lambda z: np.sum(z * z, axis=1),
    "max02": lambda z: np.max(np.sin(z), axis=(0, 2)),
    "total": lambda z: np.sum(np.cos(z)),
    "moved": lambda z: np.swapaxes(z, 0, 2) * 2.0,
}
summed("reduce/tall-3d", TALL3, [draw((2, 900, 9))], replays=[[draw((2, 900, 9))]])
summed("reduce/tall-3d-b", {"last": lambda z: np.sum(z ** 2, axis=-1),
                            "mean0": lambda z: np.mean(np.exp(z / 4), axis=0)},
       [draw((600, 3, 4))], replays=[[draw((600, 3, 4))]])

# ---------------------------------------------------------------- shape ops
X3 = draw((2, 3, 4))
X34 = draw((3, 4))
SHAPE_GROUPS = {
    "reshape": (X3, [lambda x: np.reshape(x, (4, 6)), lambda x: x.reshape(-1),
                     lambda x: x.reshape(6, 4)[::2], lambda x: x.T.reshape(6, 4),
                     lambda x: x.flatten(), lambda x: np.ravel(np.swapaxes(x, 1, 2))]),
    "transpose": (X3, [lambda x: np.transpose(x), lambda x: np.transpose(x, (1, 0, 2)),
                       lambda x: np.swapaxes(x, 0, 2), lambda x: np.moveaxis(x, 0, -1),
                       lambda x: x[0].T]),
    "dims": (draw((3, 1, 4)), [lambda x: np.expand_dims(x, axis=1), lambda x: np.squeeze(x),
                               lambda x: np.squeeze(x, axis=1), lambda x: x[..., None, :],
                               lambda x: np.atleast_3d(x[0, 0])]),
    "broadcast": (draw((3, 1)), [lambda x: np.broadcast_to(x, (2, 3, 4)),
                                 lambda x: np.broadcast_to(x[:, 0], (2, 3)) * x.T,
                                 lambda x: np.tile(x, (2, 3))]),
    "join": (X34, [lambda x: np.concatenate([x, 2 * x[:, :2]], axis=1),
                   lambda x: np.concatenate([np.sin(x), x[::-1]]),
                   lambda x: np.concatenate([x[:1], x, x[-1:]], axis=0),
                   lambda x: np.stack([x, x ** 2], axis=-1),
                   lambda x: np.stack([x[0], x[1], np.cos(x[2])]),
                   lambda x: np.hstack([x, x[:, ::-1]]), lambda x: np.vstack([x, x[0]])]),
    "flip": (X34, [lambda x: x[::-1, None, 1:], lambda x: np.flip(x, axis=1),
                   lambda x: np.flip(x), lambda x: np.fliplr(x), lambda x: x[::-2, ::-3]]),
    "misc": (X34, [lambda x: np.repeat(x, 2, axis=0), lambda x: np.roll(x, 1, axis=1),
                   lambda x: np.diagonal(x), lambda x: np.triu(x), lambda x: np.pad(x, 1),
                   lambda x: np.split(x, 2, axis=1)[1] * np.split(x, 2, axis=1)[0]]),
}
for nm, (x, fns) in SHAPE_GROUPS.items():
    add(f"shape/{nm}", lambda x, fns=fns: tuple(f(x) for f in fns), [x],
        replays=[[draw(np.shape(x))]])


# ---------------------------------------------------------------- indexing reads
READS = {
    "basic": [lambda x: x[1:-1], lambda x: x[::2], lambda x: x[:, 0], lambda x: x[..., None],
              lambda x: x[-1], lambda x: x[1, 2] * x[0, 0], lambda x: x[::-2],
              lambda x: x[1:3, 1:], lambda x: x[:, -1:0:-2], lambda x: x[None, 2, ::3]],
    "fancy": [lambda x: x[[0, 2, 2]], lambda x: x[np.array([0, 2]), np.array([1, 3])],
              lambda x: np.take(x, [3, 0, 1], axis=1)],
}
for nm, fns in READS.items():
    add(f"index/{nm}", lambda x, fns=fns: tuple(f(x) for f in fns), [X34],
        replays=[[draw((3, 4))]])

# index arrays with an Ellipsis: where the broadcast index axes go follows
# NumPy's rule (an Ellipsis separates arrays, even one standing for no axes)
X432 = draw((4, 3, 2))
add("index/ellipsis", lambda x, i: (x[..., i % 2], x[i, ..., i % 2], x[:, i, ..., i % 2],
                                    x[..., i, i % 2], x[i, ..., 1], x[1, ..., i % 2],
                                    x[1, :, i % 2], x[:, 1, i % 2], x[None, i, 1]),
    [X432, np.array([2, 0, 1])], replays=[[draw((4, 3, 2)), np.array([-1, 1, 0])],
                                          [draw((4, 3, 2)), np.array([0, 3, 1])]])
add("index/int-array-arg", lambda x, i: S(x[i] ** 2), [draw((6,)), np.array([5, 0, 0, 2])],
    replays=[[draw((6,)), np.array([1, 1, 3, 4])], [draw((6,)), np.array([1, 6, 3, 4])]])
add("index/mask", lambda x, m: np.sum(x[m] ** 2), [draw((6,)), np.array([1, 0, 1, 1, 0, 0], bool)],
    replays=[[draw((6,)), np.array([0, 1, 1, 0, 1, 0], bool)], [draw((6,)), np.ones(6, bool)]])

# boolean masks: gathers and writes read a mask as its nonzero() (their count
# guarded; the second replay changes it), in any position among basic items
M6 = np.array([1, 0, 1, 1, 0, 0], bool)
M23 = np.array([[1, 0, 1], [0, 1, 1]], bool)
add("index/mask-2d-and-middle",
    lambda x, m, k: S(x[m] ** 2) + S(x[:, k[0]] * 3.0) + S(x[k[:2], 1:3]),
    [draw((2, 3, 4)), M23, np.array([[1, 0, 1], [1, 1, 0]], bool)],
    replays=[[draw((2, 3, 4)), M23[::-1].copy(), np.array([[0, 1, 1], [1, 0, 1]], bool)],
             [draw((2, 3, 4)), np.ones((2, 3), bool), np.array([[0, 0, 1], [1, 0, 1]], bool)]])
add("index/mask-constant", lambda x: S(x[np.array([0, 1, 1, 0, 1, 0], bool)] ** 3),
    [draw((6,))], replays=[[draw((6,))]])


def write_masks(x, m):
    y = x.copy()
    y[x > 0.5] = 0.0                       # a scalar into a data-dependent mask
    y[m] = x[m] * 2.0                      # the selected values
    y[~m] *= 0.5
    z = np.zeros((3, 6), like=x)
    z[1:, m] = x[m]                        # the mask after a slice
    np.add.at(y, m, 1.0)
    return S(y ** 2) + S(z * x)


def zero_above(x):
    y = x.copy()
    y[x > 0.5] = 0.0               # no gather in the tape: the write alone reads the mask
    return S(y ** 2)


add("write/mask-only", zero_above, [np.linspace(-1, 1, 6)],
    replays=[[np.linspace(1, -1, 6)], [np.linspace(0, 2, 6)]])
def index_through_views(x, m, i):
    z = np.zeros((3, 6), like=x)
    z[0][m] = x[m]                          # a mask through a row view
    z[1:, ::2][:, i] = x[:3] * 2.0          # index arrays through a strided view
    z.T[2][1:] += x[4]
    np.add.at(z[2], i * 2, x[:3])
    y = x.copy()
    y[1:][m[1:]] = -y[:-1][m[1:]]
    return S(z * np.arange(18.0).reshape(3, 6)) + S(y ** 2)


add("write/index-through-views", index_through_views,
    [np.linspace(-1, 1, 6), M6, np.array([2, 0, 1])],
    replays=[[np.linspace(1, -1, 6), M6[::-1].copy(), np.array([1, 2, 0])],
             [np.linspace(0, 2, 6), ~M6, np.array([0, 0, 2])]])
add("write/masks", write_masks, [np.linspace(-1, 1, 6), M6],
    replays=[[np.linspace(1, -1, 6), M6[::-1].copy()], [np.linspace(0, 2, 6), M6]])


def repeated_indices(E, v, i):
    # an embedding's rows taken 200 times (its gradient adds 200 rows into 10),
    # np.add.at and a write with long runs of each index: on CUDA the runs
    # span threads and blocks, and must still add (or keep the last value) in
    # NumPy's order
    y = np.zeros((10, 3), like=E)
    np.add.at(y, i, v)
    z = E.copy()
    z[i % 7] = v * 2.0
    return S(E[i] * v) + S(y ** 2) + S(z * E)


_r = np.random.default_rng(5)          # its own draws: the later cases' stay as they were
add("write/repeated-indices", repeated_indices,
    [_r.normal(size=(10, 3)), _r.normal(size=(200, 3)), _r.integers(-10, 10, 200)], (0, 1),
    replays=[[_r.normal(size=(10, 3)), _r.normal(size=(200, 3)), np.zeros(200, np.int64)],
             [_r.normal(size=(10, 3)), _r.normal(size=(200, 3)), np.sort(_r.integers(0, 10, 200))]])

# ---------------------------------------------------------------- writes (mutation)


def stencil(x):
    u = x.copy()
    u[1:-1] = u[:-2] + u[2:] - 2 * u[1:-1] * 0.3     # must read the old u (no Gauss-Seidel)
    return u


def stencil_plus(x):
    u = x.copy()
    u[1:-1] += 0.1 * (u[2:] - 2 * u[1:-1] + u[:-2])
    return u


def stencil_2d(x):
    u = x.copy()
    u[1:-1, 1:-1] = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:])
    return u


def stencil_twice(x):
    u = x.copy()
    for _ in range(2):
        u[1:-1] = 0.5 * (u[:-2] + u[2:])
    return u


def shift_right(x):
    u = x.copy()
    u[1:] = u[:-1]
    return u


def shift_left(x):
    u = x.copy()
    u[:-1] = u[1:] * 2
    return u


def reverse_into_self(x):
    u = x.copy()
    u[:] = u[::-1] + 1
    return u


def set_row0(x):
    y = x.copy()
    y[0] = np.sin(x[1])
    return y


def add_col1(x):
    y = x.copy()
    y[:, 1] += x[:, 0] * 2
    return y


def through_T(x):
    a = x.copy()
    a.T[0] = x[:, 1] * 3          # a[:, 0] = ...
    return a


def through_slice_view(x):
    a = x.copy()
    v = a[1:, ::2]
    v[0] = -x[0, :2]
    v *= 2
    return a


def inplace_ops(x, y):
    z = x.copy()
    z *= 2
    z += y
    z -= x ** 2
    z /= 3
    return z


def fill_zeros_like(x):
    z = np.zeros((3, 4), like=x)
    z[1:, :2] = x[:2, 2:]
    z[0] = 1.5
    return z * x


def write_constant(x):
    y = x.copy()
    y[1:3] = 0.0
    return y * x


def write_broadcast(x):
    y = x.copy()
    y[:, :2] = x[0, :2]
    return y


def write_scalar_element(x):
    y = x.copy()
    y[2, 3] = x[0, 0] * x[1, 1]
    y[-1, 0] += 1.0
    return y


WRITES = [stencil, stencil_plus, stencil_twice, shift_right, shift_left, reverse_into_self,
          set_row0, add_col1, through_T, through_slice_view, fill_zeros_like, write_constant,
          write_broadcast, write_scalar_element]
for fn in WRITES:
    x = draw((3, 4)) if fn not in (stencil, stencil_plus, stencil_twice, shift_right,
                                   shift_left, reverse_into_self) else draw((9,))
    add(f"write/{fn.__name__}", fn, [x], replays=[[draw(x.shape)]])
    if fn in (stencil, through_T):
        add(f"write/{fn.__name__}/grad", lambda x, fn=fn: S(fn(x) ** 2), [x],
            replays=[[draw(x.shape)]])
add("write/stencil_2d", stencil_2d, [draw((5, 6))], replays=[[draw((5, 6))]])


# In-place writes into memory the open fused loop reads: at the written
# elements' own index (the write joins the loop), at another index (the loop
# runs first), and the copy-then-accumulate of a stencil's reverse sweep.
def write_after_shifted_read(x):
    y = x * 1.5
    t = y[:-2] + 1.0
    y[2:] = np.sin(x[:-2])
    return S(t * y[:-2]) + S(y ** 2)


def write_reading_itself(x):
    y = x * 1.5
    y[1:-1] = y[1:-1] + y[1:-1] * 2.0
    y[:-2] += y[2:]
    u = y[2:] * 3
    y[2:] = y[:-2] - u
    return S(y ** 3)


def heat_steps(x):
    u = x.copy()
    for _ in range(3):
        un = u.copy()
        un[1:-1] = u[1:-1] + 0.3 * (u[2:] - 2 * u[1:-1] + u[:-2])
        un[0] = un[1]
        u = un
    return S(np.sin(u))


for fn in (write_after_shifted_read, write_reading_itself, heat_steps):
    add(f"write/{fn.__name__}", fn, [draw((9,))], replays=[[draw((9,))]])


def write_int_array_apart(x, v):
    # an integer and an index array apart: the index axes come first in the target
    y = x * 1.0
    y[1, ..., np.array([0, 1, 1])] = v
    y[2, :, np.array([1, 0, 0])] += v * 2
    return y


add("write/int-array-apart", write_int_array_apart, [draw((4, 3, 2)), draw((3, 3))], (0, 1),
    replays=[[draw((4, 3, 2)), draw((3, 3))]])
add("write/inplace_ops", inplace_ops, [X34, draw((3, 4))], (0, 1), replays=[[draw((3, 4)),
                                                                             draw((3, 4))]])


def views_and_transposes(x):
    """tests/test_programs.py::test_writes_through_views_and_transposes."""
    a = np.zeros((3, 4), like=x)
    v = a[1:, 1:3]
    v[0] = x[:2] * 3
    t = a.T
    t[3, 2] = x[2]
    w = a[1]
    return np.sum(a ** 2) + np.sum(w * x[:4]) + np.sum(v)


add("write/views_and_transposes", views_and_transposes, [draw((5,))], replays=[[draw((5,))]],
    check_numpy=False)


# ---------------------------------------------------------------- matmul
MATMUL = {
    # name: (argument shapes, products)
    "vectors": ([(3, 4), (4, 5), (4,), (3,)],
                lambda a, b, u, w: (u @ u, w @ a, a @ u, a @ b, w @ (a @ b), np.dot(a, u))),
    "transposed": ([(4, 3), (4, 5), (5, 4)],
                   lambda a, b, c: (a.T @ b, b.T @ a, b @ c, a.T @ c.T, (b @ c).T @ a)),
    "batched": ([(2, 3, 4), (2, 4, 5), (4, 5), (3, 4)],
                lambda x, y, m, n: (x @ y, x @ m, n @ y,
                                    np.swapaxes(y, 1, 2) @ np.swapaxes(x, 1, 2))),
    "broadcast-batch": ([(2, 1, 3, 4), (3, 4, 2)], lambda z, w: (z @ w,)),
    "k1-slices": ([(3, 1), (1, 4), (3, 5), (6, 2)],
                  lambda p, q, a, b: (p @ q, a[:, 1:] @ b[2:], a @ a.T, a[::2, ::-1] @ a[1].T)),
    "big": ([(40, 30), (30, 20)], lambda a, b: (a @ b,)),
}
for nm, (shapes, fn) in MATMUL.items():
    a0 = [draw(sh) for sh in shapes]
    add(f"matmul/{nm}", fn, a0, tuple(range(len(shapes))), replays=[[draw(sh) for sh in shapes]])
    if nm == "batched":
        add(f"matmul/{nm}/grad", lambda *a, fn=fn: sum(S(np.tanh(y)) for y in fn(*a)), a0,
            tuple(range(len(shapes))), replays=[[draw(sh) for sh in shapes]])
F32 = np.float32
add("matmul/f32", lambda a, b, u: (a @ b, u @ b, a.T @ a), [draw((3, 4), dtype=F32),
                                                           draw((4, 5), dtype=F32),
                                                           draw((4,), dtype=F32)], (0, 1, 2),
    replays=[[draw((3, 4), dtype=F32), draw((4, 5), dtype=F32), draw((4,), dtype=F32)]])
add("matmul/f32/grad", lambda a, b: S(np.tanh(a @ b)),
    [draw((3, 4), dtype=F32), draw((4, 5), dtype=F32)], (0, 1),
    replays=[[draw((3, 4), dtype=F32), draw((4, 5), dtype=F32)]])
add("matmul/f32@f64", lambda a, b: a @ b, [draw((3, 4), dtype=F32), draw((4, 2))], (0, 1),
    replays=[[draw((3, 4), dtype=F32), draw((4, 2))]])
add("matmul/int", lambda x, i, j: S(x * (i @ j)), [draw((2, 2)), ints((2, 3), (-3, 3, None)),
                                                    ints((3, 2), (-3, 3, None))],
    replays=[[draw((2, 2)), ints((2, 3), (-3, 3, None)), ints((3, 2), (-3, 3, None))]])
add("matmul/nan", lambda a, b: a @ b, [X_NAN, draw((4, 2))], (0, 1),
    replays=[[draw((3, 4)), draw((4, 2))]])
add("matmul/chain", lambda a, b, c: S(a @ (b @ c) - (a @ b) @ c + a @ b @ c),
    [draw((3, 3)), draw((3, 3)), draw((3, 2))], (0, 1, 2),
    replays=[[draw((3, 3)), draw((3, 3)), draw((3, 2))]])

# ---------------------------------------------------------------- where, clip, relu, abs, astype
XZ = np.array([-1.5, -0.0, 0.0, 0.3, 2.0, -0.2, 1.0, 0.0])
SELECT = {
    "where": [lambda x: np.where(x > 0, x, 0.1 * x),
              lambda x: np.where(x > 0, np.sqrt(np.abs(x)), x ** 2),
              lambda x: np.where(x > 0.1, 1.0, -2.0) * x,
              lambda x: np.where(x[:4] > 0, x[:4], x[4:][:, None])],
    "clip": [lambda x: np.clip(x, -0.5, 0.5), lambda x: np.clip(x, x[::-1] - 1, x[::-1] + 0.1),
             lambda x: x.clip(min=0.0)],
    "relu-abs": [lambda x: np.maximum(x, 0),
                 lambda x: np.maximum(x, 0.0) + np.minimum(0.0, x) * 0.01,
                 lambda x: np.abs(x), lambda x: abs(x) * 2, lambda x: np.sign(x) * np.abs(x)],
    "astype": [lambda x: x.astype(np.float32).astype(np.float64) * 3,
               lambda x: (x * 3).astype(np.int64) * x, lambda x: x.astype(bool) + x,
               lambda x: np.round(x * 10) * x, lambda x: np.round(x, 2) + x],
}
for nm, fns in SELECT.items():
    add(f"select/{nm}", lambda x, fns=fns: tuple(f(x) for f in fns), [XZ],
        replays=[[draw((8,))], [XZ[::-1].copy()], [SPECIAL[:8].copy()]])
add("select/astype-f64-from-f32", lambda x: S(np.sin(x.astype(np.float64))),
    [draw((6,), dtype=np.float32)], replays=[[draw((6,), dtype=np.float32)]])
add("select/where-f32", lambda x: S(np.where(x > 0, x * 2, x ** 2)),
    [draw((6,), dtype=np.float32)], replays=[[draw((6,), dtype=np.float32)]])


# ---------------------------------------------------------------- loops
def per_iteration_input(x, w):
    s = x[0] * 0
    for i in range(x.shape[0]):
        s = s + np.sin(x[i]) * w[i]
    return s


def reversed_horner(c, t):
    s = c[0] * 0
    for i in reversed(range(c.shape[0])):
        s = s * t + c[i]
    return s


def row_loop(A, v):
    h = v
    for i in range(A.shape[0]):
        h = np.tanh(A[i] * h + 0.1)
    return np.sum(h ** 2)


def last_iteration_read(x):
    s = x * 0
    for i in range(10):
        t = np.sin(x * i)
        s = s + t
    return np.sum(s * t)


def stacked_iterations(x):
    xs = []
    y = x
    for _ in range(8):
        y = np.tanh(y) * 1.5
        xs.append(y)
    return np.sum(np.stack(xs) * np.arange(1.0, 9.0)[:, None])


def nested_loops(x):
    s = x * 0
    for i in range(6):
        for j in range(5):
            s = s + np.sin(x * (j + 1))
        s = s * 0.5 + x
    return np.sum(s)


def rnn_matmul(W, h0, xs):
    # a matmul in the loop body (a host step on CUDA, run once per iteration)
    h = h0
    for i in range(xs.shape[0]):
        h = np.tanh(W @ h + xs[i])
    return np.sum(h ** 2)


def implicit_euler(A, x0):
    # a linear solve in the loop body
    x = x0
    M = np.eye(A.shape[0]) - 0.1 * A
    for _ in range(7):
        x = np.linalg.solve(M, x)
    return np.sum(x * x)


def many_scalar_reads(x):
    s = x[0] * 0
    for i in range(x.shape[0]):
        s = s + x[i] * x[i]
    return s


add("loop/taylor50", bp.taylor, [0.5, 50], replays=[[0.25, 50], [-0.75, 50]])
add("loop/taylor50-array", bp.taylor, [draw((4,), (-0.9, 0.9, None)), 50],
    replays=[[draw((4,), (-0.9, 0.9, None)), 50]])
add("loop/heat", bp.heat, [np.sin(np.linspace(0, np.pi, 16)), 0.2, 20], (0, 1),
    replays=[[draw((16,)), 0.1, 20]])
add("loop/heat-tp", tp.heat, [np.sin(np.linspace(0, np.pi, 16)), 0.2], (0, 1),
    replays=[[draw((16,)), 0.15]])
add("loop/heat-inplace", tp.heat_inplace, [np.sin(np.linspace(0, np.pi, 16)), 0.2], (0, 1),
    replays=[[draw((16,)), 0.15]])
add("loop/per-iteration-input", per_iteration_input, [draw((12,)), draw((12,))], (0, 1),
    replays=[[draw((12,)), draw((12,))]])
add("loop/reversed-horner", reversed_horner, [draw((10,)), 0.7], (0, 1),
    replays=[[draw((10,)), -0.4]])
add("loop/rows", row_loop, [draw((8, 5)), draw((5,))], (0, 1), replays=[[draw((8, 5)), draw((5,))]])
add("loop/last-iteration", last_iteration_read, [np.array([0.3, 0.7])],
    replays=[[np.array([-0.3, 1.1])]])
add("loop/stacked", stacked_iterations, [np.array([0.2, -0.4])], replays=[[np.array([0.6, 1.2])]])
add("loop/nested", nested_loops, [np.array([0.1, 0.2])], replays=[[np.array([-0.3, 0.5])]])
add("loop/rnn-matmul", rnn_matmul, [draw((4, 4)) * 0.5, draw((4,)), draw((9, 4))], (0, 1, 2),
    replays=[[draw((4, 4)) * 0.5, draw((4,)), draw((9, 4))]])
add("loop/implicit-euler", implicit_euler, [draw((3, 3)), draw((3,))], (0, 1),
    replays=[[draw((3, 3)), draw((3,))]])
add("loop/scalar-reads", many_scalar_reads, [np.linspace(0.0, 1.0, 60)],
    replays=[[draw((60,))]])
add("loop/taylor-nan", bp.taylor, [np.array([0.5, np.nan, np.inf, -0.0]), 20],
    replays=[[np.array([np.nan, 0.1, -np.inf, 2.0]), 20]])


# ---------------------------------------------------------------- guards
def branchy(x):
    if np.sum(x) > 0:
        return np.sum(np.sin(x))
    return np.sum(x ** 2)


def argmax_guard(x):
    k = int(np.argmax(x))
    return x[k] * 2.0 + np.sum(x ** 2)


def loop_if(x):
    s = x[0] * 0
    for i in range(x.shape[0]):
        if x[i] > 0:
            s = s + x[i] ** 2
        else:
            s = s - np.sin(x[i])
    return s


def newton_sqrt(a):
    x = a.copy()
    err = 1.0
    while err > 1e-12:
        x_new = 0.5 * (x + a / x)
        err = np.max(np.abs(x_new - x))
        x = x_new
    return np.sum(x)


def value_guards(w, data):
    scale = float(np.max(data))
    n = int(np.sum(data > 0))
    return np.sum(w * scale) * n


add("guard/branchy", branchy, [np.ones(3)],
    replays=[[np.array([0.5, -0.1, 0.2])], [-np.ones(3)], [np.array([-2.0, 0.1, 0.2])],
             [np.array([3.0, 0.1, 0.2])]])
add("guard/branchy-first-negative", branchy, [-np.ones(3)],
    replays=[[np.ones(3)], [np.array([-2.0, 0.1, 0.2])]])
add("guard/argmax", argmax_guard, [np.array([0.1, 2.0, 0.3, -1.0])],
    replays=[[np.array([0.5, 3.0, 0.3, 1.0])], [np.array([5.0, 1.0, 0.3, -1.0])],
             [np.array([0.5, 1.0, 0.3, 4.0])]])
add("guard/loop-if", loop_if, [np.array([1.0, -1.0, 2.0])],
    replays=[[np.array([0.5, -0.5, 0.1])], [np.array([-1.0, 1.0, 2.0])],
             [np.array([-1.0, -1.0, -2.0])]])
add("guard/newton", newton_sqrt, [np.array([2.0, 3.0])],
    replays=[[np.array([2.5, 3.5])], [np.array([100.0, 1e-3])]])
add("guard/value", value_guards, [np.ones(3), np.array([1.0, 2.0, 3.0])],
    replays=[[np.ones(3) * 2, np.array([1.0, 2.0, 3.0])], [np.ones(3), np.array([1.0, -2.0, 5.0])]])
add("guard/mask-count", lambda x, m: np.sum(x[m] ** 2),
    [np.arange(1.0, 5.0), np.array([True, False, True, False])],
    replays=[[np.arange(2.0, 6.0), np.array([False, True, False, True])],
             [np.arange(1.0, 5.0), np.array([True, True, True, False])]])
add("guard/nan-branch", lambda x: np.sum(x) if np.all(np.isfinite(x)) else np.sum(x * 0.0),
    [np.ones(3)], replays=[[np.array([1.0, np.nan, 2.0])], [np.array([0.5, 0.5, 2.0])]])


# ---------------------------------------------------------------- linalg
def solve_loss(A, b):
    return S(np.linalg.solve(A, b))


A_OK = np.eye(3) * 2 + draw((3, 3)) * 0.3
A_OK2 = np.eye(3) * 3 - draw((3, 3)) * 0.3
A_SING = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.5, 1.0, 1.5]])
add("linalg/solve", solve_loss, [A_OK, draw((3,))], (0, 1),
    replays=[[A_OK2, draw((3,))], [A_SING, draw((3,))], [np.zeros((3, 3)), draw((3,))]])
add("linalg/solve-value", np.linalg.solve, [A_OK, draw((3, 2))], (0, 1),
    replays=[[A_SING, draw((3, 2))]])
add("linalg/inv", lambda A: S(np.linalg.inv(A)), [A_OK], replays=[[A_OK2], [A_SING]])
add("linalg/det", lambda A: np.linalg.det(A) * 1.0, [A_OK], replays=[[A_OK2], [A_SING]])
add("linalg/cholesky", lambda A: S(np.linalg.cholesky(A @ A.T + np.eye(3))), [A_OK],
    replays=[[A_OK2]])
add("linalg/cholesky-upper", lambda A: S(np.linalg.cholesky(A.T @ A + np.eye(3), upper=True)),
    [A_OK], replays=[[A_OK2]])
# only one triangle is read; the second replay is not positive definite (LinAlgError)
add("linalg/cholesky-triangle", lambda A: S(np.linalg.cholesky(A + 4 * np.eye(3))), [A_OK],
    replays=[[A_OK2], [A_OK2 - 9 * np.eye(3)]])
add("linalg/slogdet", lambda A: np.linalg.slogdet(A)[0] * np.linalg.slogdet(A)[1] + S(A),
    [A_OK], replays=[[A_OK2], [-A_OK2], [A_SING]])
# np.linalg.solve factors every matrix (LU), a triangular one too, as NumPy
# does (cholesky's rules record solve_triangular, which substitutes): one
# tape sees lower, upper, singular triangular and full matrices
L_OK = np.tril(A_OK)
add("linalg/solve-triangular", lambda A, b: S(np.linalg.solve(A, b)), [L_OK, draw((3, 2))],
    (0, 1), replays=[[L_OK.T.copy(), draw((3, 2))], [L_OK - np.diag([0.0, 0.0, L_OK[2, 2]]),
                                                     draw((3, 2))], [A_OK2, draw((3, 2))]])
# stacks of matrices: one LAPACK call per matrix; a singular one mid-stack raises
A_STACK = np.eye(3) * 2 + draw((2, 3, 3)) * 0.3
A_STACK_SING = A_STACK.copy()
A_STACK_SING[1] = A_SING
add("linalg/stacked", lambda A, b: (S(np.linalg.solve(A, b)), S(np.linalg.solve(A, A[..., :2])),
                                    S(np.linalg.inv(A)), S(np.linalg.det(A)),
                                    S(np.linalg.slogdet(A)[1]), S(np.linalg.slogdet(A)[0]),
                                    S(np.linalg.cholesky(A @ np.swapaxes(A, 1, 2)))),
    [A_STACK, draw((3,))], (0, 1), replays=[[A_STACK[::-1].copy(), draw((3,))],
                                            [A_STACK_SING, draw((3,))]])
add("linalg/norm", lambda x: np.linalg.norm(x), [X34], replays=[[draw((3, 4))]])
add("linalg/einsum", lambda a, b: S(np.einsum("ij,jk->ik", a, b)), [draw((3, 4)), draw((4, 2))],
    (0, 1), replays=[[draw((3, 4)), draw((4, 2))]])
# einsum: each pairwise contraction of the recorded path is a BLAS product or a loop
EINSUMS = {"batched": ("bij,bjk->bik", [(2, 3, 8), (2, 8, 5)]), "rows": ("ij,ij->i", [(3, 4)] * 2),
           "diagonal": ("ii->i", [(4, 4)]), "trace": ("ii", [(4, 4)]),
           "chain": ("ij,jk,kl->il", [(3, 8), (8, 9), (9, 2)]), "outer": ("i,j->ij", [(3,), (4,)]),
           "transpose-sum": ("ijk->kj", [(2, 3, 4)]), "broadcast": ("ij,kj->ki", [(1, 4), (3, 4)]),
           "ellipsis": ("...ij,...jk", [(2, 3, 4), (4, 2)]), "diag-3d": ("iij->ji", [(3, 3, 2)]),
           "triple": ("i,i,i->", [(5,)] * 3),
           # matrix products (BLAS when the sum has 8 terms or more): a transposed
           # operand, a matrix-vector, batched; a short sum stays a loop
           "gram": ("ik,jk->ij", [(4, 9), (5, 9)]), "gram-short": ("ik,jk->ij", [(4, 3), (5, 3)]),
           "matvec": ("ij,j->i", [(3, 8), (8,)]),
           "vecmat-batch": ("bj,bjk->bk", [(2, 8), (2, 8, 3)])}
for nm, (sub, shapes) in EINSUMS.items():
    add(f"linalg/einsum-{nm}", lambda *a, sub=sub: S(np.einsum(sub, *a)),
        [draw(sh) for sh in shapes], tuple(range(len(shapes))),
        replays=[[draw(sh) for sh in shapes]])
add("linalg/einsum-int", lambda x, i: S(x * np.einsum("ij,jk->ik", i, i)),
    [draw((3, 3)), ints((3, 3), (-3, 3, None))], replays=[[draw((3, 3)), ints((3, 3), (-3, 3, None))]])
add("linalg/einsum-f32", lambda a, b: S(np.einsum("ij,jk->ik", a, b)),
    [draw((3, 8), dtype=F32), draw((8, 2), dtype=F32)], (0, 1),
    replays=[[draw((3, 8), dtype=F32), draw((8, 2), dtype=F32)]])


# ---------------------------------------------------------------- more ops (tests/ops/*)
# One gradient tape per family for the ops that lower; each op that does not
# lower is a case of its own (replayed interpreted, with the CompileWarning).
XM = draw((3, 4))
XN = XM.copy()
XN[1, 1] = np.nan
AM = np.eye(3) * 2 + draw((3, 3)) * 0.3
UM, VM = draw((3,)), draw((3,))
MORE = {
    "reduce": [lambda x, a, u, v: np.var(x, axis=0), lambda x, a, u, v: np.std(x),
               lambda x, a, u, v: np.cumsum(x, axis=1), lambda x, a, u, v: np.cumprod(u),
               lambda x, a, u, v: np.average(x, axis=0, weights=np.arange(1.0, 4.0)),
               lambda x, a, u, v: np.ptp(x, axis=1), lambda x, a, u, v: np.add.reduce(x, axis=1),
               lambda x, a, u, v: np.maximum.reduce(x, axis=0),
               lambda x, a, u, v: np.add.accumulate(x, axis=0),
               lambda x, a, u, v: np.sort(x, axis=1), lambda x, a, u, v: np.amin(x, axis=0),
               lambda x, a, u, v: np.nansum(np.where(x > 1.5, np.nan, x)),
               lambda x, a, u, v: np.nanmean(np.where(x > 1.5, np.nan, x), axis=0),
               lambda x, a, u, v: np.nanmax(np.where(x > 1.5, np.nan, x), axis=1),
               lambda x, a, u, v: x * np.count_nonzero(x > 0)],
    "linalg": [lambda x, a, u, v: np.linalg.norm(x, axis=1),
               lambda x, a, u, v: np.linalg.slogdet(a)[1], lambda x, a, u, v: np.linalg.det(a),
               lambda x, a, u, v: np.linalg.inv(a),
               lambda x, a, u, v: np.tensordot(x, x, axes=([1], [1])),
               lambda x, a, u, v: np.linalg.matrix_power(a, 3), lambda x, a, u, v: np.cross(u, v),
               lambda x, a, u, v: np.vecdot(x, x),
               lambda x, a, u, v: np.linalg.multi_dot([a, a, x]),
               lambda x, a, u, v: np.outer(u, v), lambda x, a, u, v: np.inner(u, v),
               lambda x, a, u, v: np.kron(a[:2, :2], a[1:, 1:]),
               lambda x, a, u, v: np.einsum("ij,ij->i", x, x), lambda x, a, u, v: np.trace(a),
               lambda x, a, u, v: np.linalg.solve(a, x), lambda x, a, u, v: np.dot(u, a)],
    "shape": [lambda x, a, u, v: np.pad(x, ((1, 0), (0, 2))),
              lambda x, a, u, v: np.pad(x, 1, mode="edge"),
              lambda x, a, u, v: np.take_along_axis(x, np.argsort(XM, axis=1), axis=1),
              lambda x, a, u, v: np.block([[a, u[:, None]], [v[None, :], u[:1, None]]]),
              lambda x, a, u, v: np.array_split(x, 3, axis=1)[2],
              lambda x, a, u, v: np.diag(u), lambda x, a, u, v: np.diagflat(v),
              lambda x, a, u, v: np.tril(a), lambda x, a, u, v: np.rot90(x),
              lambda x, a, u, v: np.append(u, v), lambda x, a, u, v: np.unstack(x)[1],
              lambda x, a, u, v: np.column_stack([u, v]), lambda x, a, u, v: np.dstack([u, v]),
              lambda x, a, u, v: np.broadcast_arrays(u[:, None], x[0])[0],
              lambda x, a, u, v: np.flipud(a), lambda x, a, u, v: np.diag(a, k=1)],
    "composite": [lambda x, a, u, v: np.diff(x, axis=1), lambda x, a, u, v: np.diff(u, n=2),
                  lambda x, a, u, v: np.trapezoid(x, axis=1),
                  lambda x, a, u, v: np.interp(np.array([0.1, 0.4, 1.5]),
                                               np.array([0.0, 1.0, 2.0]), u),
                  lambda x, a, u, v: np.convolve(u, v), lambda x, a, u, v: np.polyval(u, 0.7),
                  lambda x, a, u, v: np.cov(x), lambda x, a, u, v: np.corrcoef(x),
                  lambda x, a, u, v: np.linspace(u[0], u[1], 5),
                  lambda x, a, u, v: np.where(x > 0, x, np.zeros_like(x)),
                  lambda x, a, u, v: np.clip(x, u[0], 1.0)],
    "scatter": [lambda x, a, u, v: _add_at(x, u), lambda x, a, u, v: _put_along(x)],
    "logic": [lambda x, a, u, v: np.select([x > 0, x < -1], [np.sin(x), x ** 2], 0.5),
              lambda x, a, u, v: np.nan_to_num(np.log(u), nan=-2.0) * v,
              lambda x, a, u, v: np.fix(x * 3) * x + np.isclose(x, x * (1 + 1e-9)) * x,
              lambda x, a, u, v: (np.isposinf(x) + np.isneginf(x)) * x + np.real(x),
              lambda x, a, u, v: np.piecewise(u, [u < 0], [lambda t: t ** 2, np.sin])],
    "editing": [lambda x, a, u, v: _edited(x, lambda y: np.put(y, [0, 5, -1, 5], u[:2])),
                lambda x, a, u, v: _edited(a, lambda y: np.fill_diagonal(y, u)),
                lambda x, a, u, v: _edited(x, lambda y: np.copyto(y, v[:, None] * 2,
                                                                   where=x > 0)),
                lambda x, a, u, v: np.delete(x, [0, 2], axis=1),
                lambda x, a, u, v: np.insert(x, [1, 1, 4], u, axis=1),
                lambda x, a, u, v: np.compress([1, 0, 1], x, axis=0),
                lambda x, a, u, v: np.extract(x > 0, x),
                lambda x, a, u, v: np.correlate(u, v, "same"),
                lambda x, a, u, v: np.ediff1d(x, to_begin=u[0]),
                lambda x, a, u, v: np.unique(x)],
    "numeric": [lambda x, a, u, v: np.gradient(x, np.array([0.0, 0.5, 1.5]), 2.0, edge_order=2)[0],
                lambda x, a, u, v: np.gradient(x, axis=1),
                lambda x, a, u, v: np.cumulative_sum(x, axis=1, include_initial=True),
                lambda x, a, u, v: np.isin(x, u) * x + np.nanargmax(x, axis=0) * v,
                lambda x, a, u, v: np.polyfit(u, v, 1) + np.polyval(v, u),
                lambda x, a, u, v: np.apply_along_axis(lambda r: r[::-1] * r[0], 1, x),
                lambda x, a, u, v: np.linalg.trace(a) + np.linalg.matrix_transpose(x),
                lambda x, a, u, v: np.nanmedian(np.where(x > 1.0, np.nan, x), axis=1),
                lambda x, a, u, v: np.nanquantile(np.where(x > 1.0, np.nan, x), [0.2, 0.9],
                                                  axis=0)],
}
# lexsort (stable argsorts: lowered); partition keeps NumPy's introselect
# order, so it has no lowering and its case replays interpreted
add("reduce/lexsort", lambda x, k: S(x[np.lexsort((x, k))] * x),
    [draw((9,)), ints((9,), (0, 2, None))], replays=[[draw((9,)), ints((9,), (0, 2, None))]])
add("reduce/partition", lambda x: S(np.partition(x, (1, 5), axis=1)) + S(np.argpartition(x, 2) * x),
    [draw((2, 7))], replays=[[draw((2, 7))]])
# running extrema: ties (their derivative goes to the first element) and NaN
_RUN = np.array([[1.0, 3.0, 2.0, 3.0, 5.0, np.nan, 7.0], [0.5, -1.0, 4.0, 4.0, 1.0, 2.0, 9.0]])
# the sign of zero: of equal operands np.maximum/np.minimum return the second
# (copysign shows it), elementwise and in the running extrema
_ZEROS = np.array([[-0.0, 0.0, -0.0, 0.0, 1.0], [0.0, -0.0, 0.0, -0.0, -1.0]])
add("select/signed-zero-extrema",
    lambda x, y: (S(np.copysign(1.0, np.maximum(x, y))) + S(np.copysign(1.0, np.minimum(x, y)))
                  + S(np.copysign(1.0, np.maximum.accumulate(x, axis=1)))
                  + S(np.copysign(1.0, np.minimum.accumulate(y, axis=1))) + S(x * y)),
    [_ZEROS, _ZEROS[::-1].copy()], (0, 1), replays=[[_ZEROS[::-1].copy(), _ZEROS]])
add("reduce/running-extrema",
    lambda x, k: (S(np.maximum.accumulate(x, axis=1)) + S(np.minimum.accumulate(x, axis=0))
                  + S(np.maximum.accumulate(k, axis=1) * x[:, :5])
                  + S(np.minimum.accumulate(x.astype(np.float32)[1]))),
    [_RUN, ints((2, 5), (-3, 3, None), np.int16)],
    replays=[[_RUN[::-1].copy(), ints((2, 5), (-3, 3, None), np.int16)],
             [draw((2, 7)), ints((2, 5), (-3, 3, None), np.int16)]],
    rtol=1e-6)            # (a float32 sum in another order than NumPy's pairwise one)


def _edited(x, edit):
    y = x.copy()
    edit(y)
    return y


def _add_at(x, u):
    y = x.copy()
    np.add.at(y, (np.array([0, 2, 0]), np.array([1, 1, 1])), u)
    return y


def _put_along(x):
    y = x.copy()
    np.put_along_axis(y, np.array([[1], [0], [3]]), -x[:, :1] * 2, axis=1)
    return y


def _labelled(terms):
    """``{label: term}``, the label being the (first) op the term calls."""
    out = {}
    for t in terms:
        names = [n for n in t.__code__.co_names if n not in ("np", "linalg")]
        label = names[0] if names else "term"
        if len(names) > 1 and names[1] in ("reduce", "accumulate"):
            label += "." + names[1]
        while label in out:
            label += "'"
        out[label] = t
    return out


for fam, terms in MORE.items():
    summed(f"more/{fam}", _labelled(terms), [XM, AM, UM, VM], (0, 1, 2, 3),
           replays=[[draw((3, 4)), np.eye(3) * 3 - draw((3, 3)) * 0.3, draw((3,)), draw((3,))]])


# ---------------------------------------------------------------- end-to-end programs
def softmax_xent_mlp(p, x, y):
    h = np.maximum(x @ p["W1"] + p["b1"], 0.0)
    z = h @ p["W2"] + p["b2"]
    z = z - np.max(z, axis=1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.mean(np.sum(logp * y, axis=1))


def mlp_params(n_in, hidden, n_out, dtype=np.float64, seed=0):
    r = np.random.default_rng(seed)
    return {"W1": (r.normal(size=(n_in, hidden)) * 0.3).astype(dtype),
            "b1": (r.normal(size=hidden) * 0.1).astype(dtype),
            "W2": (r.normal(size=(hidden, n_out)) * 0.3).astype(dtype),
            "b2": np.zeros(n_out, dtype)}


def mlp_data(batch, n_in, n_out, dtype=np.float64, seed=1):
    r = np.random.default_rng(seed)
    return (r.normal(size=(batch, n_in)).astype(dtype),
            np.eye(n_out, dtype=dtype)[r.integers(0, n_out, size=batch)])


add("prog/taylor", bp.taylor, [0.5, 50], replays=[[0.3, 50]])
add("prog/chain", bp.chain, [draw((50,))], replays=[[draw((50,))]])
for b in (4, 8):
    w, x, y = bp.mlp_args(batch=b, n_in=6, hidden=16, n_out=3)
    w2, x2, y2 = bp.mlp_args(batch=b, n_in=6, hidden=16, n_out=3, seed=1)
    add(f"prog/mlp-b{b}", bp.mlp, [w, x, y], replays=[[w2, x2, y2]])
add("prog/heat", bp.heat, [np.sin(np.linspace(0, np.pi, 32)), 0.2, 30], (0, 1),
    replays=[[draw((32,)), 0.1, 30]])
X_LR = draw((30, 4))
Y_LR = (_rng.uniform(size=30) < 0.5).astype(np.float64)
add("prog/logistic", tp.logistic_nll, [draw((4,)), 0.3, X_LR, Y_LR], (0, 1),
    replays=[[draw((4,)), -0.2, X_LR, 1 - Y_LR], [draw((4,)), 0.0, X_LR * 50, Y_LR]])
add("prog/softmax-mlp", softmax_xent_mlp, [mlp_params(5, 8, 3), *mlp_data(6, 5, 3)], (0, 1),
    replays=[[mlp_params(5, 8, 3, seed=3), *mlp_data(6, 5, 3, seed=4)]])
add("prog/softmax-mlp-f32", softmax_xent_mlp,
    [mlp_params(5, 8, 3, np.float32), *mlp_data(6, 5, 3, np.float32)],
    replays=[[mlp_params(5, 8, 3, np.float32, seed=3), *mlp_data(6, 5, 3, np.float32, seed=4)]])


def _mlp_two_layers(p, x, y):
    h = np.tanh(x @ p["l1"]["W"] + p["l1"]["b"])
    logits = h @ p["l2"]["W"] + p["l2"]["b"]
    logits = logits - np.max(logits, axis=1, keepdims=True)
    logp = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
    return -np.mean(np.sum(logp * y, axis=1))


P2 = {"l1": {"W": draw((5, 8)) * 0.5, "b": np.zeros(8)},
      "l2": {"W": draw((8, 3)) * 0.5, "b": np.zeros(3)}}
X2, Y2 = mlp_data(6, 5, 3)
add("prog/mlp-dict", _mlp_two_layers, [P2, X2, Y2], replays=[[P2, X2 * 2, Y2]])


def _argsort_mask(x, data):
    order = np.argsort(data)
    m = data > 0
    return np.sum(x[order] * np.arange(1.0, 6.0)) + np.sum(np.where(m, x ** 2, 0.0))


add("prog/argsort-mask", _argsort_mask, [draw((5,)), np.array([3.0, 1.0, -2.0, 5.0, 0.5])],
    replays=[[draw((5,)), np.array([-1.0, 4.0, 2.0, -3.0, 0.0])]])
add("prog/float32", lambda w, x: np.sum(np.tanh(x @ w) * 2.0) / 3,
    [draw((3,), dtype=np.float32), draw((4, 3), dtype=np.float32)], (0, 1),
    replays=[[draw((3,), dtype=np.float32), draw((4, 3), dtype=np.float32)]])
add("prog/taylor200", lambda x: bp.taylor(x, 200), [0.5], replays=[[0.25]])

# (appended here, so that the cases above keep their random draws)
# vecdot: batch axes broadcast, 1-d with 1-d, an empty batch and an empty sum
add("linalg/vecdot-broadcast", lambda a, b: S(np.vecdot(a, b) ** 2),
    [draw((2, 1, 3)), draw((4, 3))], (0, 1), replays=[[draw((2, 1, 3)), draw((4, 3))]])
add("linalg/vecdot-1d", lambda a, b: np.vecdot(a, b) * 2.0, [draw((5,)), draw((5,))], (0, 1),
    replays=[[draw((5,)), draw((5,))]])
add("linalg/vecdot-empty", lambda a, b: S(np.vecdot(a, b)) + S(np.vecdot(b[:0], b[:0])),
    [draw((0, 3)), draw((3,))], (0, 1), replays=[[draw((0, 3)), draw((3,))]])
# integer matmul (no BLAS routine: one fused loop): 1-d operands, batches, int8 wrapping
_IM = (-3, 3, None)
add("matmul/int-batched", lambda x, i, j: S(x * (i @ j)),
    [draw((4,)), ints((2, 1, 2, 3), _IM), ints((4, 3, 4), _IM)],
    replays=[[draw((4,)), ints((2, 1, 2, 3), _IM), ints((4, 3, 4), _IM)]])
add("matmul/int-vector", lambda x, i, j, k: S(x * (i @ j)) + S(x * (k @ i)) + (i @ i) * x[0],
    [draw((2,)), ints((3,), _IM), ints((3, 2), _IM), ints((2, 3), _IM)],
    replays=[[draw((2,)), ints((3,), _IM), ints((3, 2), _IM), ints((2, 3), _IM)]])
add("matmul/int8-wraps", lambda x, i, j: S(x * (i @ j)),
    [draw((2, 2)), ints((2, 40), (-9, 9, None), np.int8), ints((40, 2), (-9, 9, None), np.int8)],
    replays=[[draw((2, 2)), ints((2, 40), (-9, 9, None), np.int8),
              ints((40, 2), (-9, 9, None), np.int8)]])
# sorting (a stable merge sort per line): ties, NaN (sorted last), axes, dtypes
_TIES = np.array([[1.0, 2.0, 1.0, np.nan, 2.0, 0.5], [0.0, -1.0, 3.0, 3.0, 3.0, -1.0]])
add("reduce/sort-ties-nan", lambda x: S(np.sort(x) * np.arange(1.0, 7.0)), [_TIES],
    replays=[[np.array([[2.0, 2.0, 2.0, 1.0, np.nan, np.nan], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])]])
add("reduce/sort-axis0-f32", lambda x: S(np.sort(x, axis=0) * np.arange(12.0, dtype=np.float32)
                                  .reshape(4, 3)), [draw((4, 3), dtype=np.float32)],
    replays=[[draw((4, 3), dtype=np.float32)]])
add("reduce/sort-flat-empty",
    lambda x, e: S(np.sort(x, axis=None)[:4] ** 2) + S(np.sort(e, axis=0)),
    [draw((3, 4)), draw((0, 2))], replays=[[draw((3, 4)), draw((0, 2))]])
add("reduce/sort-argsort-stable",
    lambda x, d, k8: S(x[np.argsort(d, kind="stable")] * np.arange(1.0, 7.0))
    + S(np.take_along_axis(x[None] * k8, np.argsort(k8, axis=1, stable=True), axis=1)),
    [draw((6,)), ints((6,), (-2, 2, None)), ints((2, 6), (-2, 2, None), np.int8)],
    replays=[[draw((6,)), ints((6,), (-2, 2, None)), ints((2, 6), (-2, 2, None), np.int8)]])
# argsort of NumPy's default kind: lowered for lines without ties or NaN;
# the replays with ties (where NumPy's order is not the stable one) and a
# NaN go to the interpreter through the kernel's status
_D40 = _rng.permutation(40).astype(float)
_T40 = _rng.integers(0, 4, 40).astype(float)
add("reduce/argsort-default",
    lambda x, d: S(x[np.argsort(d)] * np.arange(40.0))
    + S(np.argsort(d[:8].reshape(2, 4)) * x[:8].reshape(2, 4)),
    [draw((40,)), _D40],
    replays=[[draw((40,)), _rng.permutation(40).astype(float)], [draw((40,)), _T40],
             [draw((40,)), np.where(np.arange(40) == 3, np.nan, _D40)]])
# many lines (CUDA: a thread per line across blocks, each with its own scratch)
add("reduce/sort-many-lines",
    lambda x: S(np.sort(np.round(x, 1), axis=1) * x)
    + S(np.argsort(x, axis=0, kind="stable")[0] * x[0]),
    [draw((300, 5))], replays=[[draw((300, 5))]])
# searchsorted: both sides, keys on the edges, NaN (sorted last), infinities,
# float32 and integer data; a replay with an unsorted ``e`` (NumPy's answer
# depends on its probes there) goes to the interpreter through the status
_EDGES = np.array([-1.0, 0.0, 0.0, 0.5, 2.0, np.inf, np.nan])
_KEYS = np.array([[-3.0, 0.0, 0.25, 2.0], [np.inf, np.nan, 0.5, -1.0]])


def _bins(x, e, q, k):
    i = np.searchsorted(e, q)
    j = np.searchsorted(e, q[0], side="right")
    n = np.searchsorted(k, np.array([0, 3, 9]), side="right")
    m = np.searchsorted(e.astype(np.float32), 0.1)      # compared in float64, as NumPy
    return S(x[i] * x[j]) + S(n * x[:3]) + m * x[0]


add("reduce/searchsorted", _bins, [draw((8,)), _EDGES, _KEYS, np.array([0, 1, 3, 3, 7])],
    replays=[[draw((8,)), _EDGES * 2, _KEYS[::-1], np.array([-5, 0, 9, 9, 9])],
             [draw((8,)), _EDGES[[1, 0, 2, 3, 4, 5, 6]], _KEYS, np.array([0, 1, 3, 3, 7])]])
add("reduce/interp-tracked",
    lambda x, fp: S(np.interp(x, np.array([-1.0, 0.0, 0.5, 2.0]), fp)),
    [np.array([-2.0, -0.5, 0.0, 0.3, 1.0, 2.0, 3.0]), draw((4,))], (0, 1),
    replays=[[draw((7,)), draw((4,))]])
# histograms (bins from the data, a range, given edges; weighted and
# density), digitize both ways and bincount: no shape depends on the data,
# so every replay runs compiled


def _hist(x, w):
    n, e = np.histogram(x, 5, weights=w)
    d, e2 = np.histogram(x, 4, density=True)
    c, _ = np.histogram(x, 6, range=(-1.0, 1.0))
    m, _ = np.histogram(w, np.array([0.0, 0.3, 0.6, 2.0]), weights=x)
    k, _ = np.histogram(w, np.array([0.0, 0.3, 0.6, 2.0]))
    return (S(n * e[1:]) + S(d) + S(e2) + S(c * x[:6]) + S(m) + S(k * x[:3])
            + S(np.digitize(x, np.array([-1.0, 0.0, 1.0])) * w)
            + S(np.digitize(x, np.array([1.0, 0.0, -1.0]), right=True) * x)
            + S(np.bincount(np.digitize(w, np.array([0.5])), weights=x, minlength=3)))


add("reduce/histogram", _hist, [draw((30,)), draw((30,), (0.0, 1.0, None))], (0, 1),
    replays=[[draw((30,)) * 3, draw((30,), (0.0, 1.0, None))]])
# eigh (LAPACK syevd called as NumPy calls it): both triangles, a stack, the
# eigenvectors themselves as outputs (their signs are LAPACK's, the same
# routine NumPy calls)
def eigh_loss(A, c):
    w, V = np.linalg.eigh(A + A.T)
    wu, Vu = np.linalg.eigh(A + 3 * np.eye(3), UPLO="U")
    ws = np.linalg.eigvalsh(np.stack([A @ A.T, A.T @ A]))
    return (S((V * np.tanh(w)) @ V.T * c) + S(Vu ** 2 * c) + S(wu * wu) + S(ws ** 0.5)
            + S(np.abs(V[0])))


add("linalg/eigh", eigh_loss, [A_OK, draw((3, 3))], (0, 1), replays=[[A_OK2, draw((3, 3))]])
add("linalg/eigh-value", lambda A: np.linalg.eigh(A + A.T), [A_OK], replays=[[A_OK2]])
# solves with a Cholesky factor (passes.structure: recorded as
# solve_triangular, substitution): the factor, its transpose, the upper
# factor's transpose; a vector, a matrix and a stack; the last replay is
# not positive definite (LinAlgError)
def cholesky_solves(A, y, Y):
    K = A @ A.T + np.eye(3)
    L = np.linalg.cholesky(K)
    z = np.linalg.solve(L, y)
    w = np.linalg.solve(L.T, z)
    U = np.linalg.cholesky(K, upper=True)
    Ks = K * np.array([1.0, 2.0])[:, None, None]
    Z = np.linalg.solve(np.linalg.cholesky(Ks), Y)
    return S(z * z) + S(w) + S(np.linalg.solve(np.swapaxes(U, -1, -2), Y[0])) + S(Z ** 2)


add("linalg/cholesky-solves", cholesky_solves, [A_OK, draw((3,)), draw((2, 3, 2))], (0, 1, 2),
    replays=[[A_OK2, draw((3,)), draw((2, 3, 2))]])
add("linalg/cholesky-solve-not-pd",
    lambda K, y: S(np.linalg.solve(np.linalg.cholesky(K), y) ** 2),
    [A_OK @ A_OK.T, draw((3,))], (0, 1), replays=[[-np.eye(3), draw((3,))]])


def broadcast_solves(A, As, b, Bs):
    # batches that broadcast (NumPy 2's rule): one matrix for a stack of
    # right-hand sides, a stack for one right-hand side matrix, (2, 1)
    # against (1, 3), and a Cholesky factor (a triangular solve) shared
    # by a stack
    L = np.linalg.cholesky(A @ A.T + np.eye(3))
    return (S(np.sin(np.linalg.solve(A, Bs))) + S(np.linalg.solve(As, b) ** 2)
            + S(np.linalg.solve(As[:, None], Bs[None, :, :, :1]))
            + S(np.linalg.solve(L, Bs) * Bs))


_r = np.random.default_rng(11)
add("linalg/solve-broadcast", broadcast_solves,
    [A_OK, A_STACK, _r.normal(size=(3, 2)), _r.normal(size=(3, 3, 2))], (0, 1, 2, 3),
    replays=[[A_OK2, A_STACK[::-1].copy(), _r.normal(size=(3, 2)), _r.normal(size=(3, 3, 2))],
             [A_OK, A_STACK_SING, _r.normal(size=(3, 2)), _r.normal(size=(3, 3, 2))]])

_r = np.random.default_rng(12)
add("shape/concatenate-mixed-dtypes",
    lambda x, y, i, m: S(np.concatenate([x, y, i, m]) ** 2) + S(np.stack([y, y * 2.0])),
    [_r.normal(size=4), _r.normal(size=3).astype(np.float32), np.arange(3, dtype=np.int8),
     np.array([True, False])], (0, 1),
    replays=[[_r.normal(size=4), _r.normal(size=3).astype(np.float32),
              np.array([-3, 0, 7], np.int8), np.array([False, True])]],
    rtol=1e-6)       # a float32 sum (compiled: another order) in a float64 result


def linalg_f32(A, b):
    # every LAPACK kernel in single precision (NumPy calls sgetrf, spotrf,
    # ssyevd, ...: so does compiled code), results and gradients float32
    # (eigh and eigvalsh, whose gradient is eigh's, in their own case: the
    # CUDA backend does not lower eigh)
    K = A @ A.T + 3 * np.eye(3, dtype=A.dtype)
    L = np.linalg.cholesky(K)
    return (S(np.linalg.solve(A, b) ** 2) + S(np.linalg.solve(L, b))
            + np.linalg.slogdet(A)[1] + np.linalg.det(A) + S(np.linalg.inv(K)))


_r = np.random.default_rng(13)
add("linalg/float32", linalg_f32,
    [(_r.normal(size=(3, 3)) + 3 * np.eye(3)).astype(np.float32),
     _r.normal(size=(3, 2)).astype(np.float32)], (0, 1),
    replays=[[(_r.normal(size=(3, 3)) + 3 * np.eye(3)).astype(np.float32),
              _r.normal(size=(3, 2)).astype(np.float32)],
             [np.ones((3, 3), np.float32), _r.normal(size=(3, 2)).astype(np.float32)]])
add("linalg/eigh-float32",
    lambda A: (S(np.linalg.eigh(A @ A.T)[0] ** 2) + S(np.linalg.eigh(A @ A.T)[1][:, -1] ** 2)
               + S(np.linalg.eigvalsh(A @ A.T))),
    [_r.normal(size=(3, 3)).astype(np.float32)],
    replays=[[_r.normal(size=(3, 3)).astype(np.float32)]])


def svd_loss(A, B):
    # sign-invariant in each pair of singular vectors (a matrix function of
    # the factors, squares of the vectors), tall and wide, a stack
    U, s, Vh = np.linalg.svd(A, full_matrices=False)
    V2 = np.linalg.svd(B, full_matrices=False)[2]
    return (S((U * np.tanh(s)) @ Vh * A) + S(U ** 2 * np.arange(3.0)) + S(s ** 3)
            + S(V2 ** 4) + S(np.linalg.svd(B, compute_uv=False) ** 2))


_r = np.random.default_rng(14)
add("linalg/svd", svd_loss, [_r.normal(size=(4, 3)), _r.normal(size=(2, 3, 5))], (0, 1),
    replays=[[_r.normal(size=(4, 3)), _r.normal(size=(2, 3, 5))]])
add("linalg/svd-value", lambda A: np.linalg.svd(A, full_matrices=False),
    [_r.normal(size=(4, 3))], replays=[[_r.normal(size=(4, 3))]])
add("linalg/pinv", lambda A, C: S(np.linalg.pinv(A) * C) + S(np.linalg.pinv(A[:, :2] * 1.0) ** 2),
    [_r.normal(size=(3, 4)), _r.normal(size=(4, 3))], (0, 1),
    replays=[[np.outer(np.arange(1.0, 4.0), np.ones(4)), _r.normal(size=(4, 3))],
             [_r.normal(size=(3, 4)), _r.normal(size=(4, 3))]])
add("linalg/svd-norms",
    lambda A: (np.linalg.norm(A, 2) + np.linalg.norm(A, "nuc") + np.linalg.norm(A, -2)
               + np.linalg.cond(A) + np.linalg.matrix_rank(A) * 1.0),
    [_r.normal(size=(3, 3))], replays=[[_r.normal(size=(3, 3))]])
add("linalg/svd-float32", lambda A: S(np.linalg.pinv(A) ** 2) + S(np.linalg.svdvals(A)),
    [_r.normal(size=(3, 2)).astype(np.float32)],
    replays=[[_r.normal(size=(3, 2)).astype(np.float32)]])


def bool_add_at(x, b, i):
    # np.add.at on bool: True stays True however often it is added (a byte
    # that adds would wrap to False after 256)
    y = b.copy()
    np.add.at(y, i, True)
    return S(x * y)


add("write/bool-add-at", bool_add_at,
    [np.linspace(-1, 1, 3), np.zeros(3, bool), np.array([0] * 256 + [1, 1])],
    replays=[[np.linspace(0, 1, 3), np.array([False, True, False]), np.array([2] * 300)]])
# an empty region still reads its index arrays' bounds (NumPy raises)
add("index/empty-region-bounds",
    lambda x, i, j, e: S(x[1:1, i] ** 2) + S(x[j, e]) + S(x),
    [np.ones((2, 3)), np.array([0, 2]), np.array(1), np.zeros(0, np.int64)],
    replays=[[np.ones((2, 3)), np.array([0, 7]), np.array(1), np.zeros(0, np.int64)],
             [np.ones((2, 3)), np.array([0, -3]), np.array(9), np.zeros(0, np.int64)],
             [np.ones((2, 3)), np.array([-1, 2]), np.array(-2), np.zeros(0, np.int64)]])


def qr_loss(A, B):
    Q, R = np.linalg.qr(A)
    Q2, R2 = np.linalg.qr(B)                 # wide, a stack
    return (S(Q * np.arange(3.0)) + S(R ** 2) + S(np.tanh(Q2 @ R2) * B)
            + S(np.linalg.qr(A, mode="r") ** 3))


_r = np.random.default_rng(15)
add("linalg/qr", qr_loss, [_r.normal(size=(5, 3)), _r.normal(size=(2, 3, 4))], (0, 1),
    replays=[[_r.normal(size=(5, 3)), _r.normal(size=(2, 3, 4))]])
add("linalg/qr-value", lambda A: (np.linalg.qr(A), np.linalg.qr(A, mode="complete")),
    [_r.normal(size=(4, 3))], replays=[[_r.normal(size=(4, 3)).astype(np.float32)]],
    modes=("call",))

_r = np.random.default_rng(16)
add("linalg/lstsq",
    lambda A, b: S(np.linalg.lstsq(A, b)[0] ** 2) + S(np.linalg.lstsq(A, b)[1]),
    [_r.normal(size=(5, 3)), _r.normal(size=5)], (0, 1),
    replays=[[_r.normal(size=(5, 3)), _r.normal(size=5)],        # rank 1: another version
             [np.outer(_r.normal(size=5), _r.normal(size=3)), _r.normal(size=5)]])

CASE_NAMES = [c.name for c in CASES]
