"""Compiled replay: a recorded function's tapes run as generated C.

``td.record(f, ...).compile()`` gives a :class:`CompiledFunction` with the
same entry points as the recorded function (call, ``value_and_grad``,
``vjp``, ``gradient``), each running one native call per replay. Versions,
guards and re-recording are those of :class:`~tapediff.api.RecordedFunction`:
a failed guard in native code makes the call replay the interpreter, which
names the guard and what it saw, and the usual path (another kept version,
a new recording, or :class:`~tapediff.BranchChanged` in strict mode) follows.

When no C compiler works (or ``TAPEDIFF_DISABLE_C=1``) compiling warns once
and everything replays interpreted, with the same results. A tape holding an
op the generator cannot lower yet replays interpreted too, with one warning
naming the op (see ``docs/c-backend-design.md`` for what is lowered).
"""
import threading
import warnings

import numpy as np

from . import pytree
from .api import Signature, _grads_tree, _seeds, record
from .errors import TapediffError
from .fastpath import GradCall, GradIntoCall, IntoCall, Paths, PrimalCall, make_path
from .fastpath import prepared as _prepared

__all__ = ["CompiledFunction", "compile_grad", "CompileWarning", "TapeRunner"]


class CompileWarning(UserWarning):
    """A tape could not be compiled and replays with the interpreter."""


_warned = set()
_warn_lock = threading.Lock()


def _warn_once(key, message):
    with _warn_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(message, CompileWarning, stacklevel=4)


def _native_for(tape, name, lower=None):
    """The compiled form of ``tape``, or None (with one warning) when it cannot
    be compiled here. ``lower(tape)`` makes the NativeTape (default: plain)."""
    from .codegen import NativeTape, Unsupported, build
    from .runtime import CompilerUnavailable, compiler_available
    if not compiler_available():
        from .runtime import compiler_status
        _warn_once("compiler", f"tapediff: no working C compiler ({compiler_status()}); "
                               "compiled tapes replay with the NumPy interpreter")
        return None
    try:
        nt = (lower or NativeTape)(tape)
    except Unsupported as e:
        _warn_once(("op", e.op), f"tapediff: {name}: the C backend cannot lower {e} yet; "
                                 "this tape replays with the NumPy interpreter")
        return None
    try:
        build([nt], name_hint=name)
    except CompilerUnavailable as e:
        _warn_once("compiler", f"tapediff: {e}; compiled tapes replay with the NumPy "
                               "interpreter")
        return None
    return nt


def _into_result(treedef, outs, olv):
    """The result of an ``out=`` call: the caller's arrays, and for ``None``
    leaves the fresh ones (0-d as NumPy scalars)."""
    return pytree.unflatten(treedef, [o[()] if o.ndim == 0 and x is None else o
                                      for o, x in zip(outs, olv)])


def _native_for_donated(tape, name, donate):
    from .codegen import NativeTape
    if not donate:
        return _native_for(tape, name)
    return _native_for(tape, name, lambda t: NativeTape(t, donate=donate))


def _out_specs(tape):
    from .codegen.values import np_dtype
    return [(tape.shape(s), np_dtype(tape.dtype(s))) for s in tape.outputs]


def _donation(outs, ins, tape):
    """Output position -> input position for ``out=`` leaves that are argument
    arrays (checked to match); any other memory overlap is refused."""
    donate = {}
    for k, (o, (shape, dt)) in enumerate(zip(outs, _out_specs(tape))):
        if o is None:
            continue
        if (not isinstance(o, np.ndarray) or o.shape != tuple(shape) or o.dtype != dt
                or not o.flags.c_contiguous or not o.flags.writeable):
            got = type(o).__name__
            if isinstance(o, np.ndarray):
                got = " ".join([f"{o.dtype} {o.shape}"]
                               + ["not C-contiguous"] * (not o.flags.c_contiguous)
                               + ["read-only"] * (not o.flags.writeable))
            raise TapediffError(f"out=: result {k} needs a writable C-contiguous {dt} array of "
                                f"shape {tuple(shape)}; got {got}")
        for j, x in enumerate(ins):
            if x is o:
                if j in donate.values():
                    raise TapediffError("out=: one argument array is given for two results")
                if k in donate:
                    raise TapediffError(
                        f"out=: the array for result {k} is passed as arguments {donate[k]} "
                        f"and {j}; updating it in place would change the other argument "
                        "while it is read. Pass a copy for one of them")
                donate[k] = j
            elif isinstance(x, np.ndarray) and np.may_share_memory(o, x):
                raise TapediffError(
                    f"out=: the array for result {k} overlaps argument array {j} without "
                    "being it; pass the very argument array to update it in place, or a "
                    "separate array")
        for q in range(k):
            if outs[q] is not None and np.may_share_memory(o, outs[q]):
                raise TapediffError(f"out=: the arrays for results {q} and {k} overlap")
    return donate


def _run_native(nt, plan, inputs, outputs=None):
    """Run compiled tape ``nt``; on a guard failure the interpreter ``plan``
    replays (and raises the GuardFailed the caller handles)."""
    ins = [_prepared(x, dt) for x, (_, dt) in zip(inputs, nt.in_specs)]
    outs = outputs if outputs is not None else nt.result_outputs()
    status = nt.call(ins, outs)
    if status == 0:
        if outputs is None:         # 0-d results as NumPy scalars, as NumPy's reductions give
            outs = [o[()] if o.ndim == 0 else o for o in outs]
        return outs
    if status > 0:
        return plan.run(list(inputs))      # raises GuardFailed for the new path
    from .codegen.errors import raise_status
    raise_status(status)


class TapeRunner:
    """Replay one tape: natively when it compiles, else with its interpreter plan.

    ``runner(inputs)`` returns the outputs (a failed guard raises the
    interpreter's GuardFailed, as ``plan.run`` does). Used by executors that
    drive tapes themselves (checkpointed adjoints).
    """

    __slots__ = ("plan", "native")

    def __init__(self, tape, plan, name="tape", compiled=True):
        self.plan = plan
        self.native = _native_for(tape, name) if compiled else None

    def __call__(self, inputs):
        if self.native is None:
            return self.plan.run(list(inputs))
        return _run_native(self.native, self.plan, inputs)


class CompiledFunction:
    """A :class:`~tapediff.api.RecordedFunction` whose replays run compiled.

    Made by :meth:`RecordedFunction.compile`; shares the recorded function's
    versions. Each entry point compiles its tape on first use per version.

    Examples
    --------
    >>> import numpy as np, tapediff as td
    >>> ct = td.record(lambda x: np.sum(np.tanh(x) ** 2), np.ones(3)).compile()
    >>> v, g = ct.value_and_grad(np.zeros(3))
    >>> float(v), g
    (0.0, array([0., 0., 0.]))
    """

    def __init__(self, recorded, backend="c"):
        if backend != "c":
            raise ValueError(f"backend={backend!r}: CompiledFunction is the C backend "
                             "(use RecordedFunction.compile(backend='cuda') for the GPU)")
        self.recorded = recorded
        self.backend = backend
        # the repeated-call paths of the last few signatures (tapediff.fastpath)
        self._fast = Paths()        # value_and_grad: GradCalls
        self._fast_out = Paths()    # value_and_grad with out=: GradIntoCalls
        self._fast_primal = Paths()  # __call__: PrimalCalls
        self._into = Paths()        # __call__ with out=: IntoCalls

    def _native(self, v, key, tape):
        if key not in v.native:
            v.native[key] = _native_for(tape, f"{self.recorded.name}_{key}")
        return v.native[key]

    def __call__(self, *args, out=None):
        """Replay the primal natively; same results as calling the recorded function.

        Parameters
        ----------
        *args
            As for the recorded function.
        out : pytree, optional
            Arrays to write the results into, shaped like the result (a
            ``None`` leaf: allocate that one). A leaf that *is* one of the
            arguments' arrays is updated in place: the generated code writes it
            only once nothing reads the old value any more, and never before a
            guard or a step that can fail, so a failed call leaves the
            arguments unchanged. Any other overlap with an argument raises.

        Examples
        --------
        >>> import numpy as np, tapediff as td
        >>> def step(w, m, g):
        ...     m = 0.9 * m + g
        ...     return w - 0.1 * m, m
        >>> w, m, g = np.ones(2), np.zeros(2), np.array([1.0, 2.0])
        >>> ct = td.record(step, w, m, g).compile()
        >>> res = ct(w, m, g, out=(w, m))          # w and m updated in place
        >>> res[0] is w, w, m
        (True, array([0.9, 0.8]), array([1., 2.]))
        """
        rf = self.recorded
        if out is not None:
            return self._call_into(args, out)
        paths = self._fast_primal
        res = paths.run(args)          # a call like a recent one: straight to C
        if res is not None:
            return res

        def run(v, leaves):
            nt = self._native(v, "primal", v.tape)
            outs = v.plan.run(leaves) if nt is None else _run_native(nt, v.plan, leaves)
            if nt is not None and paths.find(nt, args) is None:
                paths.add(make_path(PrimalCall, v, nt, args))
            return pytree.unflatten(v.tape.out_treedef, outs)
        return rf._replay(args, run)

    def _call_into(self, args, out):
        """``__call__`` with ``out=`` (see there): outputs that are arguments are
        donated to the generated code (``Lowering`` decides when to write them)."""
        rf = self.recorded
        paths = self._into
        res = paths.into(args, out)
        if res is not None:
            return res

        def run(v, leaves):
            tape = v.tape
            olv = _leaves_like(out, tape.out_treedef, "out")
            donate = _donation(olv, leaves, tape)
            nkey = ("primal_into", tuple(sorted(donate.items())))
            if nkey not in v.native:
                v.native[nkey] = _native_for_donated(tape, f"{rf.name}_into", donate)
            nt = v.native[nkey]
            outs = [np.empty(shape, dt) if o is None else o
                    for o, (shape, dt) in zip(olv, _out_specs(tape))]
            ok = False
            if nt is not None:
                ins = [_prepared(x, dt) for x, (_, dt) in zip(leaves, nt.in_specs)]
                if any(ins[j] is not leaves[j] for j in donate.values()):
                    raise TapediffError("out=: an array updated in place must be a C-contiguous "
                                        "array of the recorded dtype")
                status = nt.call(ins, outs)
                if status < 0:
                    from .codegen.errors import raise_status
                    raise_status(status)
                ok = status == 0
            if not ok:       # interpreted (or a failed guard: raises for the next version)
                res = v.plan.run(list(leaves))
                # a result may be an argument array that another result overwrites
                res = [np.array(r) if any(np.may_share_memory(r, o) for o in outs) else r
                       for r in res]
                for o, r in zip(outs, res):
                    np.copyto(o, r)
            if nt is not None and ok:     # one path per native tape and out= pytree
                paths.add(make_path(IntoCall, v, nt, args, out, outs, olv, donate),
                          replaces=lambda p: p.nt is nt and p.kept.same(out))
            return _into_result(tape.out_treedef, outs, olv)
        return rf._replay(args, run)

    def value_and_grad(self, *args, out=None):
        """``(value, gradient)`` in one native call.

        Parameters
        ----------
        *args
            As for the recorded function.
        out : pytree of arrays, optional
            Preallocated gradients shaped like the gradient this returns
            (C-contiguous, the argument's dtype): written in place and returned,
            so a loop of calls allocates nothing for the gradients.

        Examples
        --------
        >>> import numpy as np, tapediff as td
        >>> ct = td.record(lambda x: np.sum(x ** 2), np.ones(2)).compile()
        >>> g = np.empty(2)
        >>> v, g2 = ct.value_and_grad(np.array([1.0, 2.0]), out=g)
        >>> float(v), g, g2 is g
        (5.0, array([2., 4.]), True)
        """
        rf = self.recorded
        # a call like a recent one: straight to C
        res = self._fast.run(args) if out is None else self._fast_out.into(args, out)
        if res is not None:
            return res

        def run(v, leaves):
            first = v.build_grad(args, leaves, rf.nums)
            nt = self._native(v, "grad", v.grad_tape)
            outs = None
            if out is not None and nt is not None:
                outs = _out_buffers(nt, v.spread, out, args, rf)
                _check_no_alias(outs, leaves)
            if first is not None and outs is None:
                results = first
            elif nt is None:
                results = v.grad_plan.run(leaves)
            else:
                results = _run_native(nt, v.grad_plan, leaves, outs)
            if nt is not None and first is None:
                self._remember(args, v, nt, out, outs)
            if out is not None:
                if outs is None:           # interpreted: copy into the caller's arrays
                    _copy_into(out, _grads_tree(args, rf.nums, rf.single,
                                                v.spread(results[1:])))
                return np.asarray(results[0])[()], out    # a NumPy scalar, as on later calls
            return results[0], _grads_tree(args, rf.nums, rf.single, v.spread(results[1:]))
        return rf._replay(args, run)

    def _remember(self, args, v, nt, out, outs):
        """Keep the path a repeated call with the same signature takes: the
        native tape of version ``v`` and where each gradient leaf comes from
        (and, for ``out=`` calls, the checked buffers ``outs``)."""
        rf = self.recorded
        if out is not None:          # one path per native tape and buffer pytree
            self._fast_out.add(make_path(GradIntoCall, v, nt, args, out, outs),
                               replaces=lambda p: p.nt is nt and p.kept.same(out))
        elif self._fast.find(nt, args) is None:
            pos = v.spread(list(range(1, len(nt.out_specs))))
            positions, treedef = pytree.flatten(_grads_tree(args, rf.nums, rf.single, pos))
            parts = [None if k is None else (int(k), nt.out_specs[int(k)][0] == ())
                     for k in positions]     # (_grads_tree made floats of some)
            self._fast.add(make_path(GradCall, v, nt, args, parts, treedef))

    def gradient(self, *args, out=None):
        """The gradient only (see :meth:`value_and_grad`).

        Examples
        --------
        >>> import numpy as np, tapediff as td
        >>> td.record(lambda x: np.sum(np.sin(x)), np.ones(2)).compile().gradient(np.zeros(2))
        array([1., 1.])
        """
        return self.value_and_grad(*args, out=out)[1]

    def vjp(self, *args):
        """Replay the primal and return ``(out, pullback)``.

        ``pullback(cotangent, accumulate_into=None)`` returns the gradients of
        the differentiated arguments; with ``accumulate_into`` (a pytree of
        arrays shaped like them) it adds them there in place (``+=``) and
        returns it.

        Examples
        --------
        >>> import numpy as np, tapediff as td
        >>> ct = td.record(lambda x: x * 3.0, np.ones(2)).compile()
        >>> y, pull = ct.vjp(np.arange(2.0))
        >>> acc = np.ones(2)
        >>> pull(np.array([1.0, 2.0]), accumulate_into=acc)
        array([4., 7.])
        """
        rf = self.recorded

        def run(v, leaves):
            nt = self._native(v, "primal", v.tape)
            outs = v.plan.run(leaves) if nt is None else _run_native(nt, v.plan, leaves)
            return v, leaves, outs
        v, leaves, outs = rf._replay(args, run)
        tape = v.tape
        result = pytree.unflatten(tape.out_treedef, outs)

        def pullback(cotangent, accumulate_into=None):
            seeds = _seeds(tape, cotangent)
            results = v.build_vjp(args, leaves, rf.nums, seeds)
            if results is None:
                nt = self._native(v, "vjp", v.vjp_tape)
                inputs = list(leaves) + list(seeds)
                results = (v.vjp_plan.run(inputs) if nt is None
                           else _run_native(nt, v.vjp_plan, inputs))
            grads = _grads_tree(args, rf.nums, rf.single,
                                v.vjp_spread(results[len(tape.outputs):]))
            if accumulate_into is None:
                return grads
            _add_into(accumulate_into, grads)
            return accumulate_into
        return result, pullback

    def advance(self, k, *args):
        """Run a step function ``k`` times in one native call.

        For a recorded ``step(u, *rest)`` whose result has the structure,
        shapes and dtypes of ``u``: returns ``step(step(...step(u, *rest)...))``
        (``k`` applications, ``rest`` fixed). The generated code is one C loop
        (the trip count is a run-time parameter, so every ``k`` shares it). A
        branch that changes between steps makes the call fall back to ``k``
        separate replays, which follow guards as :meth:`__call__` does.

        Examples
        --------
        >>> import numpy as np, tapediff as td
        >>> ct = td.record(lambda u, a: u + a * np.sin(u), np.ones(3), 0.1).compile()
        >>> u = ct.advance(100, np.ones(3), 0.1)
        >>> ref = np.ones(3)
        >>> for _ in range(100):
        ...     ref = ref + 0.1 * np.sin(ref)
        >>> bool(np.allclose(u, ref, rtol=1e-14, atol=0))
        True
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"k={k!r}: give the number of steps, an int >= 0")
        if not args:
            raise TypeError("advance(k, u, *rest) needs the state u")
        rf = self.recorded
        n_carry = sum(1 for leaf in pytree.flatten(args[0])[0] if not pytree.is_static(leaf))

        def run(v, leaves):
            tape = v.tape
            ins = [(tape.shape(s), tape.dtype(s)) for s in tape.inputs[:n_carry]]
            outs = [(tape.shape(s), tape.dtype(s)) for s in tape.outputs]
            if outs != ins:
                raise TapediffError(
                    f"advance: the step's result (shapes/dtypes {outs}) must match its first "
                    f"argument ({ins}) so that it can feed the next step")
            key = ("advance", n_carry)
            if key not in v.native:      # one loop for every k: the trip count is a parameter
                v.native[key] = _native_for(_advance_tape(tape, 1, n_carry),
                                            f"{rf.name}_advance")
            nt = v.native[key]
            if nt is None:
                return None
            ins_ = [_prepared(x, dt) for x, (_, dt) in zip(leaves, nt.in_specs)]
            res = nt.new_outputs()
            if nt.call(ins_, res, trips=int(k)) != 0:
                return None
            return pytree.unflatten(tape.out_treedef, res)
        result = rf._replay(args, run)
        if result is None:                # no C backend, or a branch changed mid-way
            result = args[0]
            for _ in range(int(k)):
                result = self(result, *args[1:])
        return result

    def __repr__(self):
        return f"<tapediff compiled ({self.backend}) {self.recorded!r}>"


def _advance_tape(step, k, n_carry):
    """A tape running ``step`` (whose outputs feed its first ``n_carry`` inputs)
    ``k`` times: one ``scan`` instruction with the step tape as its body."""
    from .ops.control import SCAN
    from .tape import ACTIVE, Tape
    t = Tape(name=f"{step.name}_advance")
    ins = [t.add_input(step.shape(s), step.dtype(s), False, n)
           for s, n in zip(step.inputs, step.input_names)]
    params = dict(body=step, trips=k, n_carry=n_carry, n_inv=len(ins) - n_carry, xs=(),
                  n_ys=0)
    types = [(step.shape(s), step.dtype(s)) for s in step.inputs[:n_carry]]
    t.outputs = t.append_multi(SCAN.code, ins, params, types, [ACTIVE] * n_carry)
    t.out_treedef = step.out_treedef
    return t


def _out_buffers(nt, spread, out, args, rf):
    """The output arrays of a native gradient call: a scalar for the value, then
    the caller's ``out`` leaves for the gradients (checked)."""
    want = _grads_tree(args, rf.nums, rf.single, spread(list(range(1, len(nt.out_specs)))))
    pos, td = pytree.flatten(want)
    leaves = _leaves_like(out, td, "out")
    outs = [np.empty(nt.out_specs[0][0], nt.out_specs[0][1])] + [None] * (len(nt.out_specs) - 1)
    for k, leaf in zip(pos, leaves):
        if k is None:
            continue
        shape, dt = nt.out_specs[k]
        if (not isinstance(leaf, np.ndarray) or leaf.shape != tuple(shape) or leaf.dtype != dt
                or not leaf.flags.c_contiguous or not leaf.flags.writeable):
            raise TapediffError(
                f"out=: a gradient buffer must be a writable C-contiguous {dt} array of "
                f"shape {tuple(shape)}; got "
                f"{type(leaf).__name__ if not isinstance(leaf, np.ndarray) else (leaf.dtype, leaf.shape)}")
        outs[k] = leaf
    for k, o in enumerate(outs):
        if o is None:
            outs[k] = np.empty(nt.out_specs[k][0], nt.out_specs[k][1])
    return outs


def _check_no_alias(outs, inputs):
    """Refuse ``out=`` buffers that share memory with an argument: the native
    code would overwrite an input while it still reads it."""
    for o in outs[1:]:
        for x in inputs:
            if isinstance(x, np.ndarray) and np.may_share_memory(o, x):
                raise TapediffError(
                    "out=: a gradient buffer shares memory with an argument of this call; "
                    "the compiled tape would overwrite its own input. Pass separate arrays "
                    "(e.g. np.empty_like(w) for each gradient).")


def _leaves_like(tree, td, path):
    """The leaves of ``tree`` in the order of treedef ``td`` (dict entries by
    key, whatever their order), or a TapediffError naming the first mismatch."""
    if td is None:
        return [tree]
    kind, meta, children = td
    out = []
    if kind == "dict":
        if not isinstance(tree, dict) or set(tree) != set(meta):
            raise TapediffError(f"{path}: expected a dict with keys {sorted(map(repr, meta))} "
                                "(shaped like the gradient)")
        for k, c in zip(meta, children):
            out += _leaves_like(tree[k], c, f"{path}[{k!r}]")
        return out
    if not isinstance(tree, (list, tuple)) or len(tree) != len(children):
        raise TapediffError(f"{path}: expected a {kind} of {len(children)} entries "
                            "(shaped like the gradient)")
    for k, (v, c) in enumerate(zip(tree, children)):
        out += _leaves_like(v, c, f"{path}[{k}]")
    return out


def _copy_into(dst, src):
    for d, s in zip(pytree.flatten(dst)[0], pytree.flatten(src)[0]):
        if s is not None:
            np.copyto(d, s)


def _add_into(dst, src):
    dl, sl = pytree.flatten(dst)[0], pytree.flatten(src)[0]
    if len(dl) != len(sl):
        raise TapediffError(f"accumulate_into: expected {len(sl)} arrays shaped like the "
                            f"gradient, got {len(dl)}")
    for d, s in zip(dl, sl):
        if s is not None:
            np.add(d, s, out=d)


def _shape_key(args):
    """Structure, static leaves, and the shape and dtype of every array leaf."""
    sig = Signature(args)
    return sig.key, tuple((s, str(d)) for _, s, d in sig.dynamic)


def compile_grad(fun, argnums=0, strict=False, max_shapes=32):
    """Decorator: ``f(*args) -> (value, gradient)`` through a compiled tape.

    Records and compiles on the first call; later calls replay natively. A
    new shape or dtype records the function again (the generated C takes sizes
    at run time, so the compiled module is re-used: no new compile); a new
    static argument or branch outcome gives another version as in
    :func:`~tapediff.record`. At most ``max_shapes`` shape signatures are kept
    (least recently used dropped).

    Examples
    --------
    >>> import numpy as np, tapediff as td
    >>> @td.compile_grad
    ... def loss(w):
    ...     return np.sum(w ** 2)
    >>> v, g = loss(np.array([1.0, 2.0]))
    >>> g
    array([2., 4.])
    >>> loss(np.ones(3))[1]            # another shape: recorded again, same C code
    array([2., 2., 2.])
    """
    cache = {}
    lock = threading.Lock()

    def wrapped(*args, out=None):
        key = _shape_key(args)
        ct = cache.get(key)
        if ct is None:
            with lock:
                ct = cache.get(key)
                if ct is None:
                    ct = CompiledFunction(record(fun, *args, argnums=argnums, strict=strict))
                    cache[key] = ct
                    while len(cache) > max_shapes:
                        cache.pop(next(iter(cache)))
        else:
            cache[key] = cache.pop(key, ct)        # most recently used last
        return ct.value_and_grad(*args, out=out)
    wrapped.__name__ = getattr(fun, "__name__", "compiled_grad")
    wrapped.__doc__ = getattr(fun, "__doc__", None)
    wrapped.versions = cache
    return wrapped
