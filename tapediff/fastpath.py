"""Repeated-call paths of compiled tapes.

An optimizer loop calls ``value_and_grad`` thousands of times with arguments
of one structure, shapes and dtypes. The first such call goes through
:class:`~tapediff.api.RecordedFunction`'s full checks (signature, version,
guards) and leaves a *call path* behind; a later call that matches it goes
straight to the native function. On tiny problems (an MLP on one sample) the
Python around the C call is most of the time, so each path is one generated
function (:func:`caller`; its ``source`` attribute shows it):

* the tests of :func:`matcher`: the call's arguments against the first
  call's structure, static values, shapes, dtypes and layout (no signature
  object, no pytree walk), the arrays' in one C call
  (:mod:`tapediff.runtime.argcheck`), copying an array that is not
  C-contiguous;
* the native call unrolled (``NativeTape.inline_call``): result arrays from
  a per-thread pool, a pointer kept while the same array object comes back
  (parameters updated in place cost nothing), the C function;
* the result tree built in one expression;
* with ``out=`` buffers, their checks, and an overlap test for an argument
  that is a new object.

Anything a path does not know (another structure, a tracked value, a failed
guard, a non-zero status) makes it return ``None``; the caller then takes the
full path, which decides and raises as it always did.

Generating one function per path, rather than calling a matcher, the pool,
the native wrapper and a result builder in turn, took a value+gradient of
the 2-50-2 MLP from 13.3 to 10.2 us (``benchmarks/test_bench_calls.py``;
``benchmarks/results/bench-calls-2026-12-05-{dc8f9d0,ae9b30e}.txt``).
"""
import numpy as np

from . import pytree

__all__ = ["matcher", "caller", "Paths", "PrimalCall", "GradCall", "GradIntoCall", "IntoCall"]


class _Source:
    """Lines of one generated function and the constants it reads."""

    def __init__(self):
        self.lines, self._n = [], 0
        self.env = {"_nd": np.ndarray, "_f64": np.float64, "_copy": np.ascontiguousarray}

    def const(self, value):
        """A name for ``value`` in the generated code."""
        name = f"_c{self._n}"
        self._n += 1
        self.env[name] = value
        return name

    def var(self):
        name = f"v{self._n}"
        self._n += 1
        return name

    def compile(self, header, name):
        src = "\n".join([header] + ["    " + ln for ln in self.lines])
        exec(compile(src, f"<tapediff {name}>", "exec"), self.env)
        fn = self.env[name]
        fn.source = src
        return fn


# ---------------------------------------------------------------- arguments
def matcher(args, buffers=False):
    """A generated function ``match(args)``: the dynamic leaves of ``args``
    (Python floats as ``np.float64``, arrays that are not C-contiguous as
    C-contiguous copies) when they have the structure, static values, array
    shapes and dtypes of the arguments it was made from; otherwise ``None``.
    It is stricter than :class:`~tapediff.api.Signature`, never looser:
    containers match on their exact type, and a Python float is not a NumPy
    scalar. Its ``source`` attribute is its code.

    Returns ``None`` for arguments it does not check (tracked values, arrays
    of a non-native byte order, objects other than arrays, scalars and
    dict/list/tuple/namedtuple containers, trees nested deeper than
    ``MAX_DEPTH``): such calls always take the full path. With
    ``buffers=True`` it checks arrays to be written (``out=``): one that is
    not C-contiguous or not writeable is a miss, not copied.

    Examples
    --------
    >>> import numpy as np
    >>> from tapediff.fastpath import matcher
    >>> m = matcher(({"w": np.ones(2)}, 0.5, "sum"))
    >>> [type(x).__name__ for x in m(({"w": np.zeros(2)}, 1.5, "sum"))]
    ['ndarray', 'float64']
    >>> m(({"w": np.zeros(3)}, 1.5, "sum")) is None      # another shape
    True
    """
    src, leaves = _Source(), []
    if not _emit_match(tuple(args), "args", src, leaves, buffers, 0, None):
        return None
    src.lines.append(f"return [{', '.join(leaves)}]")
    return src.compile("def match(args):", "match")


def caller(nt, args, result, kept=None, outputs=None):
    """A generated function ``run(args)``: the matcher's tests for ``args``,
    then native tape ``nt`` run on the leaves (``NativeTape.inline_call``),
    then ``return`` the expression ``result(src)`` gives (of the output list
    ``outs``; ``src.const`` names its constants). It returns None where the
    matcher misses or the native status is not 0.

    With ``kept`` (a :class:`_Kept`), ``into(args, out)``: it also checks
    ``out`` and the arguments against the buffers kept, and runs on the
    output expressions ``outputs(src)`` instead of pooled arrays.

    Returns None when ``args`` or ``out`` hold something a matcher does not
    check; raises ``_NoPath`` for trees nested deeper than ``MAX_DEPTH``."""
    src, names = _Source(), []
    header = "def run(args):"
    if kept is not None:
        header = "def into(args, out):"
        if not kept.emit_out(src):
            return None
    check = None if kept is None else kept.emit_arg
    if not _emit_match(tuple(args), "args", src, names, False, 0, check):
        return None
    leaves = []
    for e in names:                # (a Python float's leaf is an expression)
        if not e.isidentifier():
            v = src.var()
            src.lines.append(f"{v} = {e}")
            e = v
        leaves.append(e)
    nt.inline_call(src, leaves, None if outputs is None else outputs(src))
    src.lines.append(f"return {result(src)}")
    return src.compile(header, header[4:header.index("(")])


MAX_DEPTH = 32       # deeper trees take the full path (Python's parser nests ~200 deep)


def _emit_match(x, v, src, leaves, buffers, depth, check):
    """Append tests that the value named ``v`` is shaped like ``x`` (``return
    None`` otherwise) and the expressions of its dynamic leaves to ``leaves``.
    False when ``x`` holds something a matcher does not check. ``check(src,
    v, j)``, when given, appends more tests of array leaf ``j``, named ``v``,
    before it is copied for its layout.

    The containers' tests come first, then those of all the arrays at once
    (:func:`_emit_arrays`)."""
    arrays = []
    if not _emit_tree(x, v, src, leaves, depth, arrays):
        return False
    _emit_arrays(src, arrays, buffers, check)
    return True


def _emit_tree(x, v, src, leaves, depth, arrays):
    """The containers' part of :func:`_emit_match`: their tests and
    unpacking; each array leaf is listed in ``arrays`` as ``(name, array,
    leaf position)``."""
    t = type(x)
    miss = "return None"
    if depth > MAX_DEPTH:
        return False
    if t is np.ndarray:
        if not x.dtype.isnative:
            return False
        arrays.append((v, x, len(leaves)))
        leaves.append(v)
    elif t is float:
        src.lines.append(f"if type({v}) is not float: {miss}")
        leaves.append(f"_f64({v})")
    elif isinstance(x, np.generic):
        if not x.dtype.isnative:
            return False
        src.lines.append(f"if type({v}) is not {src.const(t)}: {miss}")
        leaves.append(v)
    elif pytree.is_static(x):
        # the type too: True == 1, but x[True] is not x[1]
        src.lines.append(f"if type({v}) is not {src.const(t)} or {v} != {src.const(x)}: {miss}")
    elif t is dict:
        src.lines.append(f"if type({v}) is not dict or tuple({v}) != {src.const(tuple(x))}: "
                         f"{miss}")
        return _emit_items(list(x.values()), f"{v}.values()", src, leaves, depth, arrays)
    elif t is list or t is tuple or (isinstance(x, tuple) and hasattr(x, "_fields")):
        src.lines.append(f"if type({v}) is not {src.const(t)} or len({v}) != {len(x)}: {miss}")
        return _emit_items(list(x), v, src, leaves, depth, arrays)
    else:
        return False
    return True


def _emit_items(items, expr, src, leaves, depth, arrays):
    """Unpack the checked container ``expr`` (its length is known) and match
    each item."""
    if not items:
        return True
    names = [src.var() for _ in items]
    src.lines.append(f"{', '.join(names)}, = {expr}")
    return all(_emit_tree(x, n, src, leaves, depth + 1, arrays)
               for x, n in zip(items, names))


def _emit_arrays(src, arrays, buffers, check):
    """The tests of the array leaves ``arrays`` (see :func:`_emit_tree`):
    exact type, shape, dtype, C-contiguous layout (``buffers``: writeable
    too, no copy). One call of the C test (:mod:`tapediff.runtime.argcheck`)
    answers them all; where it says no, or was not built, the Python tests
    run, which copy an array of another layout or return None."""
    if not arrays:
        return
    from .codegen.values import c_contiguous_strides     # (loaded once a tape compiled)
    from .runtime import argcheck
    miss = "return None"
    slow, hooks = [], []
    for v, x, j in arrays:
        slow.append(f"if type({v}) is not _nd or {v}.shape != {src.const(x.shape)} "
                    f"or {v}.dtype != {src.const(x.dtype)}: {miss}")
        # C-contiguous: the strides of a new array, else the flag (a size-1
        # axis may have any stride). Tested on every call, also for an array
        # seen before: assigning ``a.strides`` (deprecated, not gone) changes
        # an array in place.
        strides = src.const(tuple(n * x.dtype.itemsize for n in c_contiguous_strides(x.shape)))
        if check is not None:
            hook = _lines_of(src, lambda: check(src, v, j))
            slow += hook
            hooks += hook
        if buffers:
            slow.append(f"if ({v}.strides != {strides} and not {v}.flags.c_contiguous) "
                        f"or not {v}.flags.writeable: {miss}")
        else:
            slow.append(f"if {v}.strides != {strides} and not {v}.flags.c_contiguous: "
                        f"{v} = _copy({v})")
    fast = argcheck.checker()
    if fast is None:
        src.lines += slow
        return
    dims, dtypes = argcheck.spec([x.shape for _, x, _ in arrays],
                                 [x.dtype for _, x, _ in arrays], writeable=buffers)
    names = ", ".join(v for v, _, _ in arrays)
    src.lines.append(f"if not {src.const(fast)}({src.const(dims)}, {src.const(dtypes)}, "
                     f"{names}):")
    src.lines += ["    " + ln for ln in slow]
    if hooks:
        src.lines.append("else:")
        src.lines += ["    " + ln for ln in hooks]


def _lines_of(src, emit):
    """The lines ``emit()`` appends to ``src``, taken out of it."""
    n = len(src.lines)
    emit()
    lines, src.lines[n:] = src.lines[n:], []
    return lines


# ---------------------------------------------------------------- results
def _tree_expr(treedef, parts, src):
    """The expression (of the output list ``outs``) of the pytree ``treedef``
    whose leaves are ``parts``: per leaf, ``None`` (the leaf is None), or
    ``(k, scalar)`` for ``outs[k]``, read out as a NumPy scalar when
    ``scalar``. Its constants (dict keys, namedtuple types) go to ``src``."""
    if _depth(treedef) > MAX_DEPTH:
        raise _NoPath
    it = iter(parts)

    def expr(td):
        if td is None:
            p = next(it)
            if p is None:
                return "None"
            return f"outs[{p[0]}][()]" if p[1] else f"outs[{p[0]}]"
        kind, meta, children = td
        items = [expr(c) for c in children]
        if kind == "dict":
            return "{" + ", ".join(f"{src.const(k)}: {e}" for k, e in zip(meta, items)) + "}"
        if kind == "namedtuple":
            return f"{src.const(meta)}({', '.join(items)})"
        if kind == "list":
            return f"[{', '.join(items)}]"
        return f"({', '.join(items)}{',' if len(items) == 1 else ''})"

    return expr(treedef)


class _NoPath(Exception):
    """No generated function for these arguments: a tree nested deeper than
    MAX_DEPTH, or an ``out=`` a matcher does not check."""


def _depth(td):
    return 0 if td is None else 1 + max((_depth(c) for c in td[2]), default=0)


# ---------------------------------------------------------------- call paths
class Paths:
    """The call paths of one entry point, most recently used first, at most
    ``size`` (a loop alternating a few signatures, training and validation
    batches say, keeps one path each instead of rebuilding them).

    A path made for one version of a recorded function stays valid when
    another version runs: its native code checks that version's guards, and a
    call that takes another branch returns a non-zero status, which sends it
    to the full path."""

    __slots__ = ("items", "size")

    def __init__(self, size=4):
        self.items, self.size = [], size

    def hit(self, k):
        """Path ``k`` served a call: move it to the front."""
        items = self.items
        try:
            items.insert(0, items.pop(k))
        except IndexError:       # another thread changed the list: order only
            pass

    def run(self, args):
        """The result of the first path whose ``run`` answers ``args`` (moved
        to the front), or None."""
        for k, p in enumerate(self.items):
            res = p.run(args)
            if res is not None:
                if k:
                    self.hit(k)
                return res
        return None

    def into(self, args, out):
        """As :meth:`run`, for the paths' ``into(args, out)``. (A loop of its
        own rather than one loop taking the method to call: a bound method or
        closure made per call would cost on a path of a few microseconds.)"""
        for k, p in enumerate(self.items):
            res = p.into(args, out)
            if res is not None:
                if k:
                    self.hit(k)
                return res
        return None

    def find(self, nt, args):
        """The path for native tape ``nt`` that matches ``args``, moved to the
        front, or None."""
        for k, p in enumerate(self.items):
            if p.nt is nt and p.match(args) is not None:
                self.hit(k)
                return p
        return None

    def add(self, path, replaces=None):
        """Put ``path`` in front (dropping the paths ``replaces(p)`` is true
        for, and the oldest beyond ``size``); returns it."""
        if path is not None:
            if replaces is not None:
                self.items = [p for p in self.items if not replaces(p)]
            self.items.insert(0, path)
            del self.items[self.size:]
        return path

    @property
    def latest(self):
        return self.items[0] if self.items else None


class _Path:
    """What every path holds: the version of the recorded function it was made
    for, its native tape, and the argument matcher."""

    __slots__ = ("version", "nt", "match")

    def __init__(self, version, nt, match):
        self.version, self.nt, self.match = version, nt, match


def make_path(cls, version, nt, args, *rest):
    """``cls(version, nt, matcher, args, *rest)``, or None when the arguments
    need the full path on every call (see :func:`matcher`), their leaves have
    other dtypes than the native tape's inputs, or they nest too deeply for
    a generated function."""
    try:
        match = matcher(args)
        if match is None:
            return None
        leaves = match(args)
        if len(leaves) != len(nt.in_specs) or any(
                np.result_type(x) != dt for x, (_, dt) in zip(leaves, nt.in_specs)):
            return None
        return cls(version, nt, match, args, *rest)
    except _NoPath:
        return None


class PrimalCall(_Path):
    """``CompiledFunction.__call__`` for matching calls: ``run(args)`` gives
    the results as the full path does (0-d ones as NumPy scalars), or None
    (the arguments do not match, or the native status was not 0: a guard
    failed or a step failed; the full path replays, re-records or raises)."""

    __slots__ = ("run",)

    def __init__(self, version, nt, match, args):
        super().__init__(version, nt, match)
        parts = [(k, shape == ()) for k, (shape, _) in enumerate(nt.out_specs)]
        self.run = caller(nt, args, lambda src: _tree_expr(version.tape.out_treedef, parts, src))


class GradCall(_Path):
    """``CompiledFunction.value_and_grad`` for matching calls: ``run(args)``
    gives ``(value, gradient)`` or None (as for :class:`PrimalCall`).
    ``parts`` says where each leaf of the gradient tree comes from (see
    ``_tree_expr``); the value is output 0."""

    __slots__ = ("run",)

    def __init__(self, version, nt, match, args, parts, treedef):
        super().__init__(version, nt, match)
        self.run = caller(nt, args,
                          lambda src: f"outs[0][()], {_tree_expr(treedef, parts, src)}")


class GradIntoCall(_Path):
    """``CompiledFunction.value_and_grad(..., out=...)`` for matching calls
    with the same gradient buffers: ``into(args, out)`` writes the gradients
    into them and gives ``(value, out)``, or None. ``outs[1:]`` are the
    buffers the full path checked (``outs[0]`` is the value's)."""

    __slots__ = ("kept", "into")

    def __init__(self, version, nt, match, args, out, outs):
        super().__init__(version, nt, match)
        kept = self.kept = _Kept(out, list(outs[1:]), len(nt.in_specs))
        self.into = caller(nt, args, lambda src: "outs[0][()], out", kept,
                           lambda src: ["st.template[0]"] + [src.const(b) for b in kept.bufs])
        if self.into is None:
            raise _NoPath


class _Kept:
    """An ``out=`` pytree a path checked once, its arrays ``bufs`` that the
    native call writes, the arguments ``donated`` (position: the output array
    it is, updated in place), and (``checked``) the argument objects found
    apart from the buffers."""

    __slots__ = ("out", "bufs", "roots", "checked", "donated")

    def __init__(self, out, bufs, n_args, donated=None):
        self.out, self.bufs, self.roots = out, bufs, _roots(bufs)
        self.checked = [None] * n_args
        self.donated = donated or {}

    def emit_out(self, src):
        """Lines returning None unless ``out`` is a pytree like the one kept
        (not necessarily the same container: ``out=(w, m)`` makes a new
        tuple per call) holding the same arrays, with their shapes, dtypes and
        layout, still writeable. False when ``out`` holds something a matcher
        does not check."""
        match = matcher((self.out,), buffers=True)
        leaves = None if match is None else match((self.out,))
        if leaves is None:
            return False
        names = []
        if not _emit_match(self.out, "out", src, names, True, 1, None):
            return False
        for v, x in zip(names, leaves):
            src.lines.append(f"if {v} is not {src.const(x)}: return None")
        return True

    def emit_arg(self, src, v, j):
        """Lines returning None when argument leaf ``j``, the array named
        ``v``, is not the array donated at ``j``, or is a new object that
        overlaps the buffers (the full path names the overlap). Run before
        the matcher copies an array for its layout: the copy would not
        overlap."""
        if j in self.donated:
            src.lines.append(f"if {v} is not {src.const(self.donated[j])}: return None")
            return
        chk = src.const(self.checked)
        # (another thread may set it too: it checked the same object)
        src.lines += [f"if {v} is not {chk}[{j}]:",
                      f"    if not {src.const(self.apart)}({v}): return None",
                      f"    {chk}[{j}] = {v}"]

    def same(self, out):
        """Whether pytree ``out`` has the structure and the very arrays of the
        one kept."""
        a, ta = pytree.flatten(out)
        b, tb = pytree.flatten(self.out)
        return ta == tb and all(x is y for x, y in zip(a, b))

    def apart(self, x):
        """Whether array ``x`` shares no memory with the kept arrays.

        An array that owns its data and is none of their owners cannot overlap
        them (one attribute test instead of a bounds test per buffer); anything
        else is tested with ``np.may_share_memory``."""
        roots = self.roots
        if roots is not None and x.base is None and x.flags.owndata and all(
                x is not r for r in roots):
            return True
        return not any(np.may_share_memory(x, o) for o in self.bufs)


def _roots(arrays):
    """The arrays owning the memory of ``arrays`` (``.base`` followed), or None
    when one of them does not lead to an ndarray that owns its data."""
    roots = []
    for a in arrays:
        while isinstance(a.base, np.ndarray):
            a = a.base
        if a.base is not None or not a.flags.owndata:
            return None
        roots.append(a)
    return roots


class IntoCall(_Path):
    """``CompiledFunction.__call__(..., out=...)`` for matching calls with the
    same ``out`` arrays: ``into(args, out)`` gives the results, or None.
    Arguments that are the very objects of the last call are not checked
    again; a new one is checked for overlap with the output arrays, so a
    training step's per-call cost is its batch, not its parameters.
    ``donate`` maps output positions to the argument positions whose arrays
    they are (updated in place)."""

    __slots__ = ("kept", "outs", "fresh", "into")

    def __init__(self, version, nt, match, args, out, outs, olv, donate):
        super().__init__(version, nt, match)
        self.outs = outs
        # the caller's output arrays (None leaves get fresh ones per call)
        self.kept = _Kept(out, [o for o in olv if o is not None], len(nt.in_specs),
                          {j: outs[k] for k, j in donate.items()})
        self.fresh = [k for k, o in enumerate(olv) if o is None]
        # the caller's arrays, and for None leaves the fresh ones (0-d as NumPy scalars)
        parts = [(k, x is None and shape == ())
                 for k, (x, (shape, _)) in enumerate(zip(olv, nt.out_specs))]

        def outputs(src):
            # fresh per call; 0-d ones (read out) in this thread's buffer
            return [src.const(o) if x is not None else
                    f"st.template[{k}]" if o.shape == () else
                    f"{src.const(np.empty)}({src.const(o.shape)}, {src.const(o.dtype)})"
                    for k, (x, o) in enumerate(zip(olv, outs))]
        self.into = caller(nt, args, lambda src: _tree_expr(version.tape.out_treedef, parts, src),
                           self.kept, outputs)
        if self.into is None:
            raise _NoPath

    def call_leaves(self, leaves):
        """The output arrays for the dynamic leaves of a call's arguments (as
        the full path flattens them), or None when the full path must handle
        this call (something changed, or the native call did not return 0)."""
        kept, specs = self.kept, self.nt.in_specs
        seen = kept.checked
        ins = list(leaves)          # per call: threads may share this path
        for j, x in enumerate(leaves):
            if x is seen[j]:
                continue
            if j in kept.donated:
                if x is not kept.donated[j]:
                    return None
                seen[j] = x
                continue
            if type(x) is np.ndarray:
                if x.dtype != specs[j][1]:
                    return None               # another dtype: the full path (a new version)
                # before the layout copy below, which would not overlap
                if not kept.apart(x):
                    return None               # the full path names the overlap
            p = prepared(x, specs[j][1])
            if p is x:
                seen[j] = x
            else:
                ins[j] = p                    # a copy: made afresh on every call
        outs = self.outs
        if self.fresh:
            outs = list(outs)
            for k in self.fresh:
                outs[k] = np.empty_like(outs[k])
        if self.nt.call(ins, outs) != 0:
            return None
        return outs


def prepared(x, dtype):
    """``x`` as the native call needs it: C-contiguous, native byte order."""
    if isinstance(x, np.ndarray):
        if x.flags.c_contiguous and x.dtype.isnative and x.dtype == dtype:
            return x
        return np.ascontiguousarray(x, dtype=dtype)
    return np.ascontiguousarray(np.asarray(x, dtype=dtype))
