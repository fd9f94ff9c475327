"""Public entry points: grad, value_and_grad, vjp, jvp, record.

Recording runs the user's function once on tracked arrays. ``record`` keeps
the tape and replays it on new inputs of the same shapes; a guard that sees a
different branch or value re-records the function for the new path (running
the user's Python again), unless ``strict=True``.
"""
import warnings

import numpy as np

from . import pytree
from .errors import (BranchChanged, RetraceWarning, ShapeMismatch, TapediffError, TrackedEscape,
                     UnsupportedOperation)
from .interpreter import Plan
from .passes import adjoint
from .passes.dce import compact
from .ops.indexing import array_key
from .passes.loops import fold
from .tape import ACTIVE, VARYING
from .tracer import GuardFailed, Tracked, current, new_tape, no_gc, recording

MAX_VERSIONS_PER_SITE = 8


# ---------------------------------------------------------------- argument handling
def _norm_argnums(argnums, nargs):
    if isinstance(argnums, bool) or not isinstance(argnums, (int, tuple, list)):
        raise ValueError(f"argnums={argnums!r}: give an int or a tuple of ints")
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for a in nums:
        if not isinstance(a, int) or isinstance(a, bool) or not -nargs <= a < nargs:
            raise ValueError(f"argnums={argnums!r}: each entry must be an int in "
                             f"[-{nargs}, {nargs}) for a call with {nargs} positional arguments")
    nums = tuple(a % nargs for a in nums)
    if len(set(nums)) != len(nums):
        raise ValueError(f"argnums={argnums!r} names an argument twice; list each once")
    return nums, single


def _leaf_value(leaf, path):
    """Concrete value of a dynamic leaf: arrays stay as they are, floats become 0-d."""
    if isinstance(leaf, np.ndarray):
        if leaf.dtype.kind not in "biuf":
            raise TypeError(f"argument {path}: dtype {leaf.dtype} is not supported "
                            "(use bool, integer or real floating arrays)")
        return leaf
    if isinstance(leaf, (float, np.floating)):
        return np.float64(leaf) if isinstance(leaf, float) else leaf
    if isinstance(leaf, np.generic):
        return leaf
    if isinstance(leaf, Tracked):
        return leaf
    if isinstance(leaf, complex):
        raise TypeError(f"argument {path}: complex numbers are not supported")
    raise TypeError(f"argument {path}: {type(leaf).__name__} is not an array, a number "
                    "or a dict/list/tuple of them")


class Signature:
    """What a replayed call must match: structure, static leaves, shapes, dtypes."""

    def __init__(self, args):
        self.treedefs, self.static, self.dynamic = [], [], []
        for i, a in enumerate(args):
            leaves, td = pytree.flatten(a)
            self.treedefs.append(td)
            for path, leaf in zip(pytree.leaf_paths(td, f"args[{i}]"), leaves):
                if pytree.is_static(leaf):
                    self.static.append((path, leaf))
                else:
                    v = _leaf_value(leaf, path)
                    self.dynamic.append((path, tuple(np.shape(v)), np.asarray(v).dtype
                                         if not hasattr(v, "dtype") else v.dtype))
        # the type too: True == 1 and hash alike, but x[True] is not x[1]
        self.key = (tuple(self.treedefs), tuple((type(v), v) for _, v in self.static))

    def check(self, other):
        """Raise :class:`ShapeMismatch` naming the first argument that differs."""
        if len(self.treedefs) != len(other.treedefs):
            raise ShapeMismatch(f"the tape was recorded with {len(self.treedefs)} positional "
                                f"arguments, called with {len(other.treedefs)}")
        for i, (a, b) in enumerate(zip(self.treedefs, other.treedefs)):
            if a != b:
                raise ShapeMismatch(
                    f"args[{i}] has a different structure than when the tape was recorded: "
                    f"leaves {pytree.leaf_paths(b, f'args[{i}]')} instead of "
                    f"{pytree.leaf_paths(a, f'args[{i}]')} (dict keys count in order)")
        for (path, s1, d1), (_, s2, d2) in zip(self.dynamic, other.dynamic):
            if s1 != s2:
                raise ShapeMismatch(f"argument {path} has shape {s2}, but the tape was "
                                    f"recorded with shape {s1}; record a new tape for this "
                                    "shape (or use a fresh td.grad call)")
            if d1 != d2:
                raise ShapeMismatch(f"argument {path} has dtype {d2}, but the tape was "
                                    f"recorded with dtype {d1}; cast it or record a new tape")


def _dynamic_leaves(args):
    out = []
    for i, a in enumerate(args):
        leaves, td = pytree.flatten(a)
        for path, leaf in zip(pytree.leaf_paths(td, f"args[{i}]"), leaves):
            if not pytree.is_static(leaf):
                out.append(_leaf_value(leaf, path))
    return out


# ---------------------------------------------------------------- tracing
def trace(fun, args, argnums, name=None, allow_int=False):
    """Record ``fun(*args)``; returns ``(tape, signature, output treedef)``.

    Leaves of ``args[argnums]`` with a floating dtype become active inputs;
    every other array leaf is a replayed data input; Python int/bool/str/None
    leaves are static. Integer leaves in ``argnums`` are an error unless
    ``allow_int`` (then they get no gradient).
    """
    sig = Signature(args)
    tape = new_tape(name or getattr(fun, "__name__", "f"))
    with recording(tape):
        targs = []
        for i, a in enumerate(args):
            leaves, td = pytree.flatten(a)
            new = []
            for path, leaf in zip(pytree.leaf_paths(td, f"args[{i}]"), leaves):
                if pytree.is_static(leaf):
                    new.append(leaf)
                    continue
                v = _leaf_value(leaf, path)
                dt = v.dtype
                active = i in argnums and dt.kind == "f"
                if i in argnums and dt.kind != "f" and not allow_int:
                    raise TypeError(
                        f"argument {path} has dtype {dt}; gradients need real floating "
                        "inputs. Pass it as a float array, or leave it out of argnums.")
                slot = tape.add_input(tuple(v.shape), dt, active, path)
                new.append(Tracked(v, slot, tape, ACTIVE if active else VARYING))
            targs.append(pytree.unflatten(td, new))
        try:
            out = fun(*targs)
        except Exception as e:
            esc = tape.pending_escape
            if esc is not None and not isinstance(e, TrackedEscape):
                raise esc from e
            raise
        leaves, out_td = pytree.flatten(out)
        slots = []
        for leaf in leaves:
            if type(leaf) is Tracked and leaf._t is tape:
                slots.append(current(leaf)._s)
            else:
                v = leaf if hasattr(leaf, "dtype") else np.asarray(leaf)
                slots.append(tape.add_const(v, tuple(np.shape(v)), v.dtype))
        tape.outputs = slots
        tape.out_treedef = out_td
    _check_written_aliases(tape, args)
    path = _guard_path(tape)
    n_recorded = len(tape)
    with no_gc():
        tape = fold(tape)
    tape.guard_path = path
    tape.n_recorded = n_recorded      # instructions recorded before loop folding
    return tape, sig, out_td


def _check_written_aliases(tape, args):
    """Refuse a write into an argument that shares memory with another one.

    Each argument is its own input of the tape and writes are copy-on-write,
    so NumPy's write-through between two arguments viewing one buffer
    (``f(a, a)``, ``f(c[1:], c[:-1])``) cannot be reproduced."""
    written = set()
    for i in range(len(tape)):
        op = tape.instr(i)[0]
        if op.write:
            written.add(tape.args[tape.argp[i]])
    if not written.intersection(tape.inputs):
        return
    arrays = [(s, name, leaf) for s, name, leaf in zip(tape.inputs, tape.input_names,
                                                        _array_leaves(args))
              if isinstance(leaf, np.ndarray)]
    for j, (s1, n1, a1) in enumerate(arrays):
        for s2, n2, a2 in arrays[j + 1:]:
            if (s1 in written or s2 in written) and np.may_share_memory(a1, a2):
                raise UnsupportedOperation(
                    f"{tape.name} writes into argument {n1 if s1 in written else n2}, which "
                    f"shares memory with argument {n2 if s1 in written else n1}: tapediff "
                    "copies arguments on write, so the other one would not see the write "
                    "as in NumPy. Pass separate arrays (e.g. a.copy()).")


def _array_leaves(args):
    out = []
    for a in args:
        leaves, _ = pytree.flatten(a)
        out.extend(leaf for leaf in leaves if not pytree.is_static(leaf))
    return out


def _guard_path(tape):
    """(site, recorded outcome) of every guard, in the order they run.

    Equal steps share one tuple (a guard in a loop repeats its step per
    iteration)."""
    out, interned = [], {}
    for i in tape.guards:
        op, _, args, p = tape.instr(i)
        expect = array_key(tape.consts[args[1]]) if op.name == "guard_array" else p["expect"]
        step = (p["site"], _outcome(expect))
        out.append(interned.setdefault(step, step))
    return out


def _check_scalar(tape, what):
    s = tape.outputs
    if len(s) != 1 or tape.shape(s[0]) != () or np.dtype(tape.dtype(s[0])).kind != "f":
        shapes = [tape.shape(x) for x in s]
        raise TypeError(f"{what} needs a function returning a scalar float, got outputs of "
                        f"shapes {shapes}: use tapediff.vjp for non-scalar outputs")


def tape_plan(tape):
    with no_gc():
        return Plan(tape)


def _grads_tree(args, argnums, single, grads):
    """Arrange flat input gradients like the differentiated arguments."""
    it = iter(grads)
    out = []
    for i in argnums:
        leaves, td = pytree.flatten(args[i])
        new = []
        for leaf in leaves:
            if pytree.is_static(leaf):
                new.append(None)
            else:
                g = next(it)
                if isinstance(leaf, float) and not isinstance(leaf, np.generic):
                    g = np.float64(g)
                new.append(g)
        out.append(pytree.unflatten(td, new))
    return out[0] if single else tuple(out)


def _wrt_slots(tape, args, argnums):
    """Input slots of the differentiated arguments, in ``argnums`` order (the
    order :func:`_grads_tree` hands the gradients back in)."""
    per_arg, k = [], 0
    for a in args:
        leaves, _ = pytree.flatten(a)
        n = sum(1 for leaf in leaves if not pytree.is_static(leaf))
        per_arg.append(list(tape.inputs[k:k + n]))
        k += n
    return [s for i in argnums for s in per_arg[i]]


def _reverse(tape, inputs, wrt, seeds=None):
    """Reverse sweep for the active slots of ``wrt``; ``None`` gradients for the rest."""
    act = [s for s in wrt if tape.active(s)]
    G, results = adjoint.reverse(tape, inputs, act, seeds=seeds)
    return G, results, _spread(tape, wrt)


def _spread(tape, wrt):
    """Map the gradients of active slots back to all of ``wrt`` (None for data)."""
    pos = []
    k = 0
    for s in wrt:
        pos.append(k if tape.active(s) else None)
        k += tape.active(s)

    def spread(grads):
        return [None if p is None else grads[p] for p in pos]
    return spread


# ---------------------------------------------------------------- one-shot transforms
def value_and_grad(fun, argnums=0):
    """Return a function computing ``(fun(*args), gradient)``.

    Records ``fun`` on the call's arguments, reverses the tape and discards it.
    Use :func:`record` to replay on many inputs.

    Parameters
    ----------
    fun : callable
        Plain NumPy code returning a scalar float.
    argnums : int or tuple of int
        Arguments to differentiate; a tuple gives a tuple of gradients.

    Examples
    --------
    >>> import numpy as np, tapediff as td
    >>> v, g = td.value_and_grad(lambda x: np.sum(x ** 2))(np.array([1.0, 2.0]))
    >>> float(v), g
    (5.0, array([2., 4.]))
    """
    def wrapped(*args):
        nums, single = _norm_argnums(argnums, len(args))
        tape, sig, out_td = trace(fun, args, nums)
        _check_scalar(tape, "grad")
        wrt = _wrt_slots(tape, args, nums)
        _, results, spread = _reverse(tape, _dynamic_leaves(args), wrt)
        return results[0], _grads_tree(args, nums, single, spread(results[1:]))
    wrapped.__name__ = f"value_and_grad({getattr(fun, '__name__', 'f')})"
    return wrapped


def grad(fun, argnums=0):
    """Return a function computing the gradient of scalar-valued ``fun``.

    Parameters
    ----------
    fun : callable
        Plain NumPy code returning a scalar float.
    argnums : int or tuple of int
        Arguments to differentiate; a tuple gives a tuple of gradients.

    Returns
    -------
    callable
        ``grad(fun)(*args)`` records ``fun`` on ``args``, reverses the tape and
        returns gradients shaped like the differentiated arguments.

    Examples
    --------
    >>> import numpy as np, tapediff as td
    >>> td.grad(lambda x: np.sum(np.sin(x)))(np.zeros(2))
    array([1., 1.])
    """
    vg = value_and_grad(fun, argnums)

    def wrapped(*args):
        return vg(*args)[1]
    wrapped.__name__ = f"grad({getattr(fun, '__name__', 'f')})"
    return wrapped


def vjp(fun, *args):
    """Evaluate ``fun(*args)`` and return ``(out, pullback)``.

    ``pullback(cotangent)`` takes a cotangent with the structure of ``out``
    and returns a tuple with one gradient per positional argument.

    Examples
    --------
    >>> import numpy as np, tapediff as td
    >>> out, pull = td.vjp(lambda x: x * 2.0, np.ones(3))
    >>> pull(np.array([1.0, 2.0, 3.0]))
    (array([2., 4., 6.]),)
    """
    nums = tuple(range(len(args)))
    tape, sig, out_td = trace(fun, args, nums, allow_int=True)
    primal = _dynamic_leaves(args)
    out = pytree.unflatten(out_td, tape_plan(tape).run(primal))
    wrt = _wrt_slots(tape, args, nums)
    state = {}

    def pullback(cotangent):
        seeds = _seeds(tape, cotangent)
        if "plan" not in state:
            G, results, spread = _reverse(tape, primal, wrt, seeds=seeds)
            state["plan"], state["spread"] = Plan(compact(G)), spread
        else:
            results = state["plan"].run(primal + seeds)
        return _grads_tree(args, nums, False, state["spread"](results[len(tape.outputs):]))
    return out, pullback


def _seeds(tape, cotangent):
    """The flat output cotangents, checked against the tape's outputs."""
    leaves, td = pytree.flatten(cotangent)
    if td != tape.out_treedef:
        raise ShapeMismatch("the cotangent must have the structure of the output "
                            f"({len(tape.outputs)} arrays)")
    seeds = []
    for k, (c, s) in enumerate(zip(leaves, tape.outputs)):
        dt = tape.dtype(s)
        c = np.asarray(c, dtype=dt if isinstance(dt, np.dtype) else None)
        if c.shape != tape.shape(s):
            raise ShapeMismatch(f"cotangent {k} has shape {c.shape}, the output has "
                                f"shape {tape.shape(s)}")
        seeds.append(c)
    return seeds


def jvp(fun, primals, tangents):
    """Forward mode: ``(fun(*primals), J @ tangents)``.

    Parameters
    ----------
    fun : callable
        Plain NumPy code.
    primals : tuple
        The arguments, pytrees of arrays and numbers.
    tangents : tuple
        One tangent per primal array, with the primals' structure.

    Returns
    -------
    (out, tangent_out) : the value of ``fun`` and its directional derivative.

    Examples
    --------
    >>> import numpy as np, tapediff as td
    >>> y, t = td.jvp(np.sin, (np.zeros(2),), (np.ones(2),))
    >>> t
    array([1., 1.])
    """
    primals, tangents = tuple(primals), tuple(tangents)
    nums = tuple(range(len(primals)))
    tape, sig, out_td = trace(fun, primals, nums, allow_int=True)
    values = Plan(tape, inplace=False, free=False).run(_dynamic_leaves(primals), keep_all=True)
    wrt = _wrt_slots(tape, primals, nums)
    tleaves = _dynamic_leaves(tangents)
    if len(tleaves) != len(wrt):
        raise ShapeMismatch(f"tangents has {len(tleaves)} arrays but the primals have "
                            f"{len(wrt)}: give one tangent per primal array, in the same "
                            "nested structure")
    tmap = {}
    for s, t in zip(wrt, tleaves):
        if not tape.active(s):
            continue
        t = np.asarray(t, dtype=tape.dtype(s))
        if t.shape != tape.shape(s):
            raise ShapeMismatch(f"tangent of shape {t.shape} for a primal of shape "
                                f"{tape.shape(s)}")
        tmap[s] = t
    _, results = adjoint.forward(tape, values, tmap)
    n = len(tape.outputs)
    return pytree.unflatten(out_td, results[:n]), pytree.unflatten(out_td, results[n:])


# ---------------------------------------------------------------- record once, replay many
class _Version:
    """One recorded path of the function: its tape and, lazily, its gradient tape."""

    def __init__(self, tape, sig):
        self.tape = tape
        self.sig = sig
        self._plan = None
        self.grad_tape = None     # forward + reverse sweep, dead code removed
        self.grad_plan = None
        self.spread = None
        self.vjp_tape = None      # reverse tape seeded by an output cotangent
        self.vjp_plan = None
        self.vjp_spread = None
        self.native = {}          # backend artefacts per entry point (tapediff.compiled)
        self.path = tape.guard_path     # (site, outcome) per guard, loops unrolled

    @property
    def plan(self):
        if self._plan is None:
            with no_gc():
                self._plan = Plan(self.tape)
        return self._plan

    def build_grad(self, args, leaves, nums):
        """Build the gradient tape on first use; returns the results of that
        first (interpreted) sweep, or None when the tape already exists."""
        if self.grad_tape is not None:
            return None
        _check_scalar(self.tape, "value_and_grad")
        wrt = _wrt_slots(self.tape, args, nums)
        G, results, self.spread = _reverse(self.tape, leaves, wrt)
        self.grad_tape = compact(G)
        with no_gc():
            self.grad_plan = Plan(self.grad_tape)
        return results

    def build_vjp(self, args, leaves, nums, seeds):
        """Build the cotangent-seeded reverse tape on first use (see build_grad)."""
        if self.vjp_tape is not None:
            return None
        wrt = _wrt_slots(self.tape, args, nums)
        G, results, self.vjp_spread = _reverse(self.tape, leaves, wrt, seeds=seeds)
        self.vjp_tape = compact(G)
        with no_gc():
            self.vjp_plan = Plan(self.vjp_tape)
        return results


def _next_version(versions, v, k, outcome):
    """A kept version that took the same path as ``v`` up to guard ``k`` and
    then ``outcome`` there, or None: it is the one to replay next."""
    site = v.path[k][0]
    prefix = v.path[:k]
    for w in versions:
        if (w is not v and len(w.path) > k and w.path[k] == (site, outcome)
                and w.path[:k] == prefix):
            return w
    return None


class RecordedFunction:
    """A function recorded once and replayed on new inputs (what ``td.record`` returns).

    Replaying never modifies the caller's arrays (writes are copy-on-write).
    When a guard fails -- an ``if`` on data, ``int()`` of data, a mask whose
    count changes -- the function is recorded again for the new path and both
    versions are kept; with ``strict=True`` :class:`~tapediff.BranchChanged`
    is raised instead. Re-recording runs the user's Python code again, with
    its side effects. After more than ``MAX_VERSIONS_PER_SITE`` misses at one
    guard site, new paths through it are recorded for each call and not kept,
    with one :class:`~tapediff.RetraceWarning`.
    """

    def __init__(self, fun, args, argnums=0, strict=False, name=None):
        self.fun = fun
        self.nums, self.single = _norm_argnums(argnums, len(args))
        self.strict = strict
        self.name = name or getattr(fun, "__name__", "f")
        self._versions = {}   # static key -> list of _Version
        self._misses = {}
        self._warned = set()
        self._count = 0
        self._current = self._record(args)

    # -------------------------------------------------------------- versions
    def _record(self, args, keep=True):
        tape, sig, _ = trace(self.fun, args, self.nums, self.name)
        v = _Version(tape, sig)
        if keep:
            self._versions.setdefault(sig.key, []).append(v)
            self._count += 1
        return v

    def _version_for(self, args):
        sig = Signature(args)
        v = self._current
        if sig.treedefs != v.sig.treedefs:
            v.sig.check(sig)            # raises, naming the argument
        if sig.key != v.sig.key:
            kept = self._versions.get(sig.key)
            if not kept:                       # a static argument changed: re-record
                return self._record(args), sig
            v = kept[-1]
        v.sig.check(sig)
        return v, sig

    def _replay(self, args, run):
        """Run ``run(version, leaves)``, following or re-recording failed guards."""
        v, sig = self._version_for(args)
        leaves = _dynamic_leaves(args)
        while True:
            try:
                result = run(v, leaves)
                self._current = v
                return result
            except GuardFailed as e:
                k, outcome = e.ordinal, _outcome(e.observed)
                nxt = _next_version(self._versions.get(sig.key, ()), v, k, outcome)
                if nxt is not None:
                    v = nxt
                    continue
                site, expect = v.path[k]
                if self.strict:
                    raise BranchChanged(
                        f"{v.tape.name}: guard at {site[0]}:{site[1]} recorded {expect!r} "
                        f"but this input gives {outcome!r}; the recorded tape does not "
                        "apply. Use strict=False to re-record for the new path.") from None
                n = self._misses[site] = self._misses.get(site, 0) + 1
                if n > MAX_VERSIONS_PER_SITE:
                    if site not in self._warned:
                        self._warned.add(site)
                        warnings.warn(
                            f"{v.tape.name}: the branch at {site[0]}:{site[1]} changed on "
                            f"{n} calls; tapediff stops keeping versions for it and records "
                            "each such call afresh (slower). Consider np.where instead of "
                            "an if on data.", RetraceWarning, stacklevel=4)
                    fresh = self._record(args, keep=False)
                    try:
                        return run(fresh, leaves)
                    except GuardFailed:
                        raise TapediffError(
                            f"{v.tape.name}: a tape recorded on these very arguments fails "
                            f"its own guard at {site[0]}:{site[1]}: the function is not "
                            "deterministic (it reads state that changes between calls, "
                            "such as a global array it mutates or a random draw)") from None
                v = self._record(args)

    # -------------------------------------------------------------- calls
    def __call__(self, *args):
        """Replay the primal: ``fun(*args)`` on new arguments of the recorded shapes.

        Examples
        --------
        >>> import numpy as np, tapediff as td
        >>> tape = td.record(lambda x: np.sum(x ** 2), np.ones(3))
        >>> float(tape(np.arange(3.0)))
        5.0
        """
        def run(v, leaves):
            outs = v.plan.run(leaves)
            return pytree.unflatten(v.tape.out_treedef, outs)
        return self._replay(args, run)

    def value_and_grad(self, *args):
        """Replay value and gradient: ``(fun(*args), grad)``.

        The first call builds the reverse tape (and the gradient); later calls
        replay it. Gradients follow ``argnums`` as in :func:`value_and_grad`.

        Examples
        --------
        >>> import numpy as np, tapediff as td
        >>> tape = td.record(lambda x: np.sum(x ** 2), np.ones(3))
        >>> v, g = tape.value_and_grad(np.arange(3.0))
        >>> float(v), g
        (5.0, array([0., 2., 4.]))
        """
        def run(v, leaves):
            results = v.build_grad(args, leaves, self.nums)
            if results is None:
                results = v.grad_plan.run(leaves)
            return results[0], _grads_tree(args, self.nums, self.single,
                                           v.spread(results[1:]))
        return self._replay(args, run)

    def vjp(self, *args):
        """Replay the primal and return ``(out, pullback)``.

        ``pullback(cotangent)`` takes a cotangent with the structure of ``out``
        and returns the gradients of the ``argnums`` arguments (shaped like
        them, as :meth:`value_and_grad`). Its reverse tape is built on the
        first pullback of a version and replayed afterwards.

        Examples
        --------
        >>> import numpy as np, tapediff as td
        >>> tape = td.record(lambda x: x * 3.0, np.ones(2))
        >>> out, pull = tape.vjp(np.arange(2.0))
        >>> pull(np.array([1.0, 2.0]))
        array([3., 6.])
        """
        def run(v, leaves):
            return v, leaves, v.plan.run(leaves)
        v, leaves, outs = self._replay(args, run)
        tape = v.tape
        out = pytree.unflatten(tape.out_treedef, outs)

        def pullback(cotangent):
            seeds = _seeds(tape, cotangent)
            results = v.build_vjp(args, leaves, self.nums, seeds)
            if results is None:
                results = v.vjp_plan.run(leaves + seeds)
            return _grads_tree(args, self.nums, self.single,
                               v.vjp_spread(results[len(tape.outputs):]))
        return out, pullback

    def gradient(self, *args):
        """Replay the gradient only.

        Examples
        --------
        >>> import numpy as np, tapediff as td
        >>> td.record(lambda x: np.sum(np.sin(x)), np.ones(2)).gradient(np.zeros(2))
        array([1., 1.])
        """
        return self.value_and_grad(*args)[1]

    def compile(self, backend="c"):
        """Replay through generated native code: a :class:`~tapediff.compiled.CompiledFunction`
        with the same entry points (and ``out=`` / ``accumulate_into=`` buffers), or
        with ``backend="cuda"`` a :class:`~tapediff.cuda_backend.CudaFunction`
        (CuPy arrays in and out; needs CuPy and a GPU; not yet run on a device).

        Examples
        --------
        >>> import numpy as np, tapediff as td
        >>> ct = td.record(lambda x: np.sum(x ** 3), np.ones(2)).compile()
        >>> ct.gradient(np.array([1.0, 2.0]))
        array([ 3., 12.])
        """
        if backend == "cuda":
            from .cuda_backend import CudaFunction
            return CudaFunction(self)
        if backend != "c":
            raise ValueError(f"backend={backend!r}: choose 'c' (generated C) or 'cuda' (CUDA "
                             "kernels through CuPy)")
        from .compiled import CompiledFunction
        return CompiledFunction(self, backend=backend)

    @property
    def tape(self):
        """The :class:`~tapediff.tape.Tape` of the most recently used version."""
        return self._current.tape

    @property
    def n_versions(self):
        """Number of recorded versions kept (paths through guards, static arguments)."""
        return self._count

    def __str__(self):
        return str(self._current.tape)

    def __repr__(self):
        t = self._current.tape
        return f"<tapediff tape {self.name}: {len(t)} instructions, {self.n_versions} version(s)>"


def _outcome(observed):
    """A guard outcome in one canonical form (NumPy bools and ints as Python's)."""
    if isinstance(observed, (bool, np.bool_)):
        return bool(observed)
    if isinstance(observed, (int, np.integer)):
        return int(observed)
    return observed


def record(fun, *args, argnums=0, strict=False):
    """Record ``fun(*args)`` once for replay on new inputs of the same shapes.

    Parameters
    ----------
    fun : callable
        Plain NumPy code.
    *args
        Example arguments (pytrees of arrays and numbers). Python int, bool,
        str and None leaves are static: another value on replay re-records.
    argnums : int or tuple of int
        Arguments that :meth:`RecordedFunction.value_and_grad` differentiates.
    strict : bool
        Raise :class:`~tapediff.BranchChanged` instead of re-recording when a
        replayed input takes another branch.

    Examples
    --------
    >>> import numpy as np, tapediff as td
    >>> tape = td.record(lambda w, x: np.sum(np.tanh(x @ w)), np.ones(3), np.ones((2, 3)))
    >>> v, g = tape.value_and_grad(np.zeros(3), np.ones((2, 3)))
    >>> g
    array([2., 2., 2.])
    """
    return RecordedFunction(fun, args, argnums=argnums, strict=strict)
