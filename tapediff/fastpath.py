"""Repeated-call paths of compiled tapes.

An optimizer loop calls ``value_and_grad`` thousands of times with arguments
of one structure, shapes and dtypes. The first such call goes through
:class:`~tapediff.api.RecordedFunction`'s full checks (signature, version,
guards) and leaves a *call path* behind; a later call that matches it goes
straight to the native function. On tiny problems (an MLP on one sample) the
Python around the C call is most of the time, so each step here is counted:

* :func:`matcher` generates a function that checks a call's arguments
  against the first call's structure, static values, shapes, dtypes and
  layout (no signature object, no pytree walk) and hands back the array
  leaves, copying one that is not C-contiguous;
* the native tape keeps a pointer while the same array object comes back
  (``NativeTape.call``), so parameters updated in place cost nothing;
* the results are put together by generated functions too (:func:`builder`);
* with ``out=`` buffers the buffers are checked once, and an argument is
  checked for overlap with them only when it is a new object.

Anything a path does not know (another structure, a tracked value, a failed
guard, a non-zero status) makes it return ``None``; the caller then takes the
full path, which decides and raises as it always did.

The generated functions are plain Python (a matcher's ``source`` shows one): a
chain of ``type(v) is ...``/``v.shape != ...`` tests costs about half of the
same tests run by nested closures on the machines we measured.
"""
import numpy as np

from . import pytree

__all__ = ["matcher", "builder", "Paths", "PrimalCall", "GradCall", "IntoCall"]


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
    if not _emit_match(tuple(args), "args", src, leaves, buffers, 0):
        return None
    src.lines.append(f"return [{', '.join(leaves)}]")
    return src.compile("def match(args):", "match")


MAX_DEPTH = 32       # deeper trees take the full path (Python's parser nests ~200 deep)


def _emit_match(x, v, src, leaves, buffers, depth):
    """Append tests that the value named ``v`` is shaped like ``x`` (``return
    None`` otherwise) and the expressions of its dynamic leaves to ``leaves``.
    False when ``x`` holds something a matcher does not check."""
    t = type(x)
    miss = "return None"
    if depth > MAX_DEPTH:
        return False
    if t is np.ndarray:
        if not x.dtype.isnative:
            return False
        src.lines.append(f"if type({v}) is not _nd or {v}.shape != {src.const(x.shape)} "
                         f"or {v}.dtype != {src.const(x.dtype)}: {miss}")
        # C-contiguous: the strides of a new array, else the flag (a size-1
        # axis may have any stride). Tested on every call, also for an array
        # seen before: assigning ``a.strides`` (deprecated, not gone) changes
        # an array in place.
        from .codegen.values import c_contiguous_strides     # (loaded once a tape compiled)
        strides = src.const(tuple(n * x.dtype.itemsize for n in c_contiguous_strides(x.shape)))
        if buffers:
            src.lines.append(f"if ({v}.strides != {strides} and not {v}.flags.c_contiguous) "
                             f"or not {v}.flags.writeable: {miss}")
        else:
            src.lines.append(f"if {v}.strides != {strides} and not {v}.flags.c_contiguous: "
                             f"{v} = _copy({v})")
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
        return _emit_items(list(x.values()), f"{v}.values()", src, leaves, buffers, depth)
    elif t is list or t is tuple or (isinstance(x, tuple) and hasattr(x, "_fields")):
        src.lines.append(f"if type({v}) is not {src.const(t)} or len({v}) != {len(x)}: {miss}")
        return _emit_items(list(x), v, src, leaves, buffers, depth)
    else:
        return False
    return True


def _emit_items(items, expr, src, leaves, buffers, depth):
    """Unpack the checked container ``expr`` (its length is known) and match
    each item."""
    if not items:
        return True
    names = [src.var() for _ in items]
    src.lines.append(f"{', '.join(names)}, = {expr}")
    return all(_emit_match(x, n, src, leaves, buffers, depth + 1) for x, n in zip(items, names))


# ---------------------------------------------------------------- results
def builder(treedef, parts):
    """A function ``f(outs)`` giving the pytree ``treedef`` whose leaves are
    ``parts``: per leaf, ``None`` (the leaf is None), or ``(k, scalar)`` for
    ``outs[k]``, read out as a NumPy scalar when ``scalar``.

    Examples
    --------
    >>> import numpy as np
    >>> from tapediff import pytree
    >>> from tapediff.fastpath import builder
    >>> _, td = pytree.flatten({"a": 0, "b": (0, 0)})
    >>> f = builder(td, [(1, True), (0, False), None])
    >>> f([np.ones(2), np.array(3.0)])
    {'a': np.float64(3.0), 'b': (array([1., 1.]), None)}
    """
    if _depth(treedef) > MAX_DEPTH:
        raise _TooDeep
    src = _Source()
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

    src.lines.append(f"return {expr(treedef)}")
    return src.compile("def build(outs):", "build")


class _TooDeep(Exception):
    """A tree nested deeper than MAX_DEPTH: no generated function for it."""


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
        if k:
            self.items.insert(0, self.items.pop(k))

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
    """``cls(version, nt, matcher, *rest)``, or None when the arguments need
    the full path on every call (see :func:`matcher`), their leaves have
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
        return cls(version, nt, match, *rest)
    except _TooDeep:
        return None


class PrimalCall(_Path):
    """``CompiledFunction.__call__`` for matching calls: the results as the
    full path gives them (0-d ones as NumPy scalars)."""

    __slots__ = ("build",)

    def __init__(self, version, nt, match):
        super().__init__(version, nt, match)
        self.build = builder(version.tape.out_treedef,
                             [(k, shape == ()) for k, (shape, _) in enumerate(nt.out_specs)])

    def __call__(self, args):
        leaves = self.match(args)
        if leaves is None:
            return None
        outs = self.nt.result_outputs()
        # (a status other than 0: a guard failed or a step failed; the full
        # path replays, re-records or raises)
        return self.build(outs) if self.nt.call(leaves, outs) == 0 else None


class GradCall(_Path):
    """``CompiledFunction.value_and_grad`` for matching calls.

    ``parts`` says where each leaf of the gradient tree comes from (see
    :func:`builder`); the value is output 0. With ``out=``, :meth:`into`
    writes the gradients into buffers that :meth:`keep_out` checked."""

    __slots__ = ("grads", "kept")

    def __init__(self, version, nt, match, parts, treedef):
        super().__init__(version, nt, match)
        self.grads = builder(treedef, parts)
        self.kept = None

    def __call__(self, args):
        leaves = self.match(args)
        if leaves is None:
            return None
        outs = self.nt.result_outputs()
        if self.nt.call(leaves, outs) != 0:
            return None
        return outs[0][()], self.grads(outs)

    def keep_out(self, out, outs):
        """Remember ``out`` (a pytree the full path checked) and ``outs[1:]``,
        the gradient buffers it gave (``outs[0]`` is the value's)."""
        # one object, replaced whole: a thread in into() sees one out= call's
        # state even while another thread keeps another out
        self.kept = _Kept(out, list(outs[1:]), len(self.nt.in_specs))

    def into(self, args, out):
        """``(value, out)`` with the gradients written into ``out``, or None."""
        kept = self.kept
        if kept is None or not kept.holds(out):
            return None
        leaves = self.match(args)
        if leaves is None:
            return None
        checked, j = kept.checked, 0
        for x in leaves:
            if x is not checked[j] and type(x) is np.ndarray:
                if not kept.apart(x):
                    return None          # the full path names the overlap
                checked[j] = x       # (another thread may write it too: it checked x)
            j += 1
        outs = [self.nt.scalar_output(0)] + kept.bufs
        if self.nt.call(leaves, outs) != 0:
            return None
        return outs[0][()], out


class _Kept:
    """An ``out=`` pytree a path checked once, its arrays ``bufs`` that the
    native call writes, and (``checked``) the argument objects found apart
    from them."""

    __slots__ = ("out", "match", "leaves", "bufs", "roots", "checked")

    def __init__(self, out, bufs, n_args):
        self.out, self.match = out, matcher((out,), buffers=True)
        self.leaves = None if self.match is None else self.match((out,))
        self.bufs, self.roots = bufs, _roots(bufs)
        self.checked = [None] * n_args

    def holds(self, out):
        """Whether ``out`` is the pytree kept, holding the same arrays, with
        their shapes, dtypes and layout, still writeable."""
        if out is not self.out or self.leaves is None:
            return False
        leaves = self.match((out,))
        if leaves is None:
            return False
        k, kept = 0, self.leaves
        for x in leaves:
            if x is not kept[k]:
                return False
            k += 1
        return True

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
    same ``out`` arrays. Arguments that are the very objects of the last call
    are not prepared or checked again; a new one is checked for overlap with
    the output arrays, so a training step's per-call cost is its batch, not
    its parameters. ``donate`` maps output positions to the argument
    positions whose arrays they are (updated in place)."""

    __slots__ = ("kept", "outs", "donated", "fresh", "build")

    def __init__(self, version, nt, match, out, outs, olv, donate):
        super().__init__(version, nt, match)
        self.outs = outs
        # the caller's output arrays (None leaves get fresh ones per call)
        self.kept = _Kept(out, [o for o in olv if o is not None], len(nt.in_specs))
        self.donated = {j: outs[k] for k, j in donate.items()}
        self.fresh = [k for k, o in enumerate(olv) if o is None]
        # the caller's arrays, and for None leaves the fresh ones (0-d as NumPy scalars)
        self.build = builder(version.tape.out_treedef,
                             [(k, x is None and shape == ())
                              for k, (x, (shape, _)) in enumerate(zip(olv, nt.out_specs))])

    def __call__(self, args, out):
        if not self.kept.holds(out):
            return None
        leaves = self.match(args)
        if leaves is None:
            return None
        outs = self.run(leaves)
        return None if outs is None else self.build(outs)

    def run(self, leaves):
        """The output arrays, or None when the full path must handle this call
        (something changed, or the native call did not return 0)."""
        seen, specs = self.kept.checked, self.nt.in_specs
        ins = list(leaves)          # per call: threads may share this path
        for j, x in enumerate(leaves):
            if x is seen[j]:
                continue
            if j in self.donated:
                if x is not self.donated[j]:
                    return None
                seen[j] = x
                continue
            if type(x) is np.ndarray and x.dtype != specs[j][1]:
                return None                   # another dtype: the full path (a new version)
            p = prepared(x, specs[j][1])
            if p is x:
                if not self.kept.apart(x):
                    return None               # the full path names the overlap
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
