"""The repeated-call paths of compiled tapes (tapediff/fastpath.py) and the
result-array pool of native tapes: a call that takes them gives what the full
path gives, and anything they do not know goes the full path."""
import collections
import functools
import gc
import sys
import threading
import types
import weakref

import numpy as np
import pytest

import tapediff as td
from tapediff import pytree
from tapediff.fastpath import MAX_DEPTH, GradCall, _Source, _tree_expr, make_path, matcher
from tapediff.runtime import compiler_available

from .threads import run_in_threads

needs_cc = pytest.mark.skipif(not compiler_available(), reason="no working C compiler")

Pair = collections.namedtuple("Pair", "a b")
Other = collections.namedtuple("Other", "a b")


# ---------------------------------------------------------------- matcher
def _example():
    return ({"w": np.ones((2, 3)), "b": np.zeros(3)}, [np.ones(4), 2.5], "mode", 3,
            Pair(np.float32(1.0), None))


def test_matcher_hands_back_the_dynamic_leaves_in_pytree_order():
    args = _example()
    got = matcher(args)(args)
    want = [leaf for leaf in pytree.flatten(args)[0] if not pytree.is_static(leaf)]
    assert len(got) == len(want) == 5
    for g, w in zip(got, want):
        if isinstance(w, np.ndarray):
            assert g is w
        else:
            assert g == w and type(g) is (np.float64 if type(w) is float else type(w))


@pytest.mark.parametrize("change", [
    lambda a: ({"b": a[0]["b"], "w": a[0]["w"]},) + a[1:],           # dict order
    lambda a: ({"w": a[0]["w"]},) + a[1:],                             # a key fewer
    lambda a: ({"w": np.ones((3, 2)), "b": a[0]["b"]},) + a[1:],       # a shape
    lambda a: ({"w": np.ones((2, 3), np.float32), "b": a[0]["b"]},) + a[1:],   # a dtype
    lambda a: (a[0], (np.ones(4), 2.5)) + a[2:],                       # list -> tuple
    lambda a: (a[0], [np.ones(4), np.float64(2.5)]) + a[2:],           # float -> np.float64
    lambda a: (a[0], [np.ones(4), 2]) + a[2:],                         # float -> int
    lambda a: a[:2] + ("other",) + a[3:],                              # a static value
    lambda a: a[:3] + (True,) + a[4:],                                 # 3 -> True (a type)
    lambda a: a[:4] + (Other(np.float32(1.0), None),),                 # another namedtuple
    lambda a: a[:4] + (Pair(np.float64(1.0), None),),                  # a scalar's dtype
    lambda a: a[:4],                                                   # an argument fewer
    lambda a: (a[0], [np.ones(4)[None], 2.5]) + a[2:],                 # a rank
    lambda a: (a[0], [list(np.ones(4)), 2.5]) + a[2:],                 # not an array
], ids=["order", "keys", "shape", "dtype", "list-tuple", "float-type", "float-int", "static",
        "bool-int", "namedtuple", "scalar-dtype", "arity", "rank", "list-leaf"])
def test_matcher_misses_what_a_signature_tells_apart(change):
    args = _example()
    assert matcher(args)(change(args)) is None


@pytest.mark.parametrize("args", [
    (np.ones(3).astype(">f8"),),                    # non-native byte order: copied every call
    (object(),),
    ({1: np.ones(2)}.keys(),),
    (collections.OrderedDict(a=np.ones(2)), np.ones(2).tolist()),
])
def test_matcher_declines_arguments_it_does_not_check(args):
    assert matcher(args) is None


def test_result_trees_agree_with_unflatten():
    tree = {"a": (1, [2, 3]), "b": Pair(4, None), "c": [5]}
    leaves, td_ = pytree.flatten(tree)
    outs = [np.full((2,), float(k)) if k % 2 else np.array(float(k)) for k in range(6)]
    parts = [None if leaf is None else (leaf, outs[leaf].ndim == 0) for leaf in leaves]
    src = _Source()
    src.lines.append(f"return {_tree_expr(td_, parts, src)}")
    got = src.compile("def build(outs):", "build")(outs)
    want = pytree.unflatten(td_, [None if p is None else
                                  (outs[p[0]][()] if p[1] else outs[p[0]]) for p in parts])
    assert pytree.flatten(got)[1] == pytree.flatten(want)[1]
    for g, w in zip(pytree.flatten(got)[0], pytree.flatten(want)[0]):
        assert g is w or (type(g) is type(w) and g == w)


# ---------------------------------------------------------------- call paths
def loss(p, x):
    return np.sum(np.tanh(x @ p["W"] + p["b"]) ** 2) + 0.1 * np.sum(p["W"] ** 2)


def _args(seed=0, n=5):
    r = np.random.default_rng(seed)
    return {"W": r.normal(size=(3, 4)), "b": r.normal(size=4)}, r.normal(size=(n, 3))


def _reference(p, x):
    return td.record(loss, p, x).value_and_grad(p, x)


@needs_cc
def test_results_the_caller_holds_are_never_reused():
    p, x = _args()
    ct = td.record(loss, p, x).compile()
    held = []
    for k in range(6):
        pk, xk = _args(k)
        v, g = ct.value_and_grad(pk, xk)
        held.append((pk, xk, v, g))
    for pk, xk, v, g in held:              # every earlier result still as computed
        v0, g0 = _reference(pk, xk)
        assert abs(v - v0) <= 1e-13 * abs(v0)
        for key in g:
            np.testing.assert_allclose(g[key], g0[key], rtol=1e-13, atol=1e-15)
    ids = {id(a) for *_, g in held for a in g.values()}
    assert len(ids) == 2 * len(held)        # all distinct arrays


@needs_cc
def test_dropped_results_are_reused_without_allocating():
    p, x = _args()
    ct = td.record(loss, p, x).compile()
    for _ in range(3):
        ct.value_and_grad(p, x)
    nt = ct._fast.latest.nt
    pool = nt._thread_state().pool
    first = {id(a) for a in ct.value_and_grad(p, x)[1].values()}     # dropped at once
    again = {id(a) for a in ct.value_and_grad(p, x)[1].values()}
    assert first == again and len(pool) == 1
    # an optimizer loop that keeps the latest gradients alternates two sets
    g = None
    for k in range(5):
        pk, xk = _args(k)
        v, g = ct.value_and_grad(pk, xk)
        v0, g0 = _reference(pk, xk)
        np.testing.assert_allclose(g["W"], g0["W"], rtol=1e-13)
    assert len(pool) == 2


@needs_cc
@pytest.mark.parametrize("keep", ["view", "weakref", "one leaf"])
def test_an_array_reachable_any_way_is_not_reused(keep):
    p, x = _args()
    ct = td.record(loss, p, x).compile()
    ct.value_and_grad(p, x)
    ct.value_and_grad(p, x)
    g = ct.value_and_grad(p, x)[1]
    want = g["W"].copy()
    if keep == "view":
        kept = g["W"][1:]
        want = want[1:]
    elif keep == "weakref":
        kept_ref = weakref.ref(g["W"])
    else:
        kept = g["W"]
    del g
    gc.collect()
    for k in range(1, 6):          # other inputs: reusing the array would change it
        ct.value_and_grad(*_args(k))
    if keep == "weakref":
        kept = kept_ref()
        if kept is None:           # freed: nothing can read it any more
            return
    np.testing.assert_array_equal(kept, want)


@needs_cc
def test_the_primal_path_and_its_pool():
    f = lambda a, b: (a * b, np.sum(a))           # noqa: E731
    a, b = np.arange(3.0), np.ones(3)
    ct = td.record(f, a, b).compile()
    results = [ct(a + k, b) for k in range(5)]
    for k, (prod, total) in enumerate(results):
        np.testing.assert_array_equal(prod, a + k)
        assert total == np.sum(a + k) and isinstance(total, np.float64)


@needs_cc
def test_a_non_contiguous_argument_on_the_fast_path_is_copied():
    p, x = _args(n=6)
    ct = td.record(loss, p, x[:3]).compile()
    ct.value_and_grad(p, x[:3])
    ct.value_and_grad(p, x[:3])
    xs = x[::2]                        # the recorded shape, not C-contiguous
    v, g = ct.value_and_grad(p, xs)
    v0, g0 = _reference(p, np.ascontiguousarray(xs))
    assert abs(v - v0) <= 1e-13 * abs(v0)
    np.testing.assert_allclose(g["W"], g0["W"], rtol=1e-13)
    pf = {"W": np.asfortranarray(p["W"]), "b": p["b"]}
    v, g = ct.value_and_grad(pf, x[:3])
    assert abs(v - ct.value_and_grad(p, x[:3])[0]) <= 1e-14 * abs(v)


@needs_cc
def test_out_path_rechecks_a_new_argument_for_overlap():
    p, x = _args()
    ct = td.record(loss, p, x).compile()
    out = {"W": np.empty((3, 4)), "b": np.empty(4)}
    for _ in range(3):
        ct.value_and_grad(p, x, out=out)
    _, g0 = _reference(p, x)
    np.testing.assert_allclose(out["W"], g0["W"], rtol=1e-13)
    big = np.empty(16)
    out2 = {"W": big[:12].reshape(3, 4), "b": big[12:]}
    ct.value_and_grad(p, x, out=out2)
    ct.value_and_grad(p, x, out=out2)
    with pytest.raises(td.TapediffError, match="shares memory"):
        ct.value_and_grad({"W": p["W"], "b": big[12:]}, x, out=out2)   # a view of a buffer
    with pytest.raises(td.TapediffError, match="shares memory"):
        ct.value_and_grad({"W": p["W"], "b": big[12:].copy()}, big[:15].reshape(5, 3),
                          out=out2)


@needs_cc
def test_out_path_with_fresh_results_and_scalar_arguments():
    # out=(w, m, None, None): w and m written in place, a fresh array and a
    # NumPy scalar for the None leaves, a Python float argument
    def step(w, m, g, lr):
        m = 0.9 * m + g
        return w - lr * m, m, m * 2.0, np.sum(m)
    w, m = np.ones(3), np.zeros(3)
    ct = td.record(step, w.copy(), m.copy(), np.ones(3), 0.1).compile()
    wr, mr = w.copy(), m.copy()
    kept = []
    for k in range(5):
        g = np.arange(3.0) + k
        res = ct(w, m, g, 0.1 * (k + 1), out=(w, m, None, None))
        wr, mr, twice, total = step(wr, mr, g, 0.1 * (k + 1))
        assert res[0] is w and res[1] is m
        np.testing.assert_allclose(w, wr, rtol=1e-15)
        np.testing.assert_allclose(res[2], twice, rtol=1e-15)
        assert isinstance(res[3], np.float64) and abs(res[3] - total) <= 1e-14 * abs(total)
        kept.append((res[2], res[3], twice, total))
    # a new out tuple per call, the same arrays: one path, served generated
    path = ct._into.latest
    assert len(ct._into.items) == 1 and path.into((w, m, g, 0.5), (w, m, None, None)) is not None
    ct(w, m, g, 0.5, out=(w, m, None, None))
    assert ct._into.items == [path]
    for arr, scalar, twice, total in kept:         # a fresh array per call; scalars copied
        np.testing.assert_array_equal(arr, twice)
        assert scalar == total


@needs_cc
def test_out_path_refuses_a_buffer_changed_in_place():
    p, x = _args()
    ct = td.record(loss, p, x).compile()
    out = {"W": np.empty((3, 4)), "b": np.empty(4)}
    for _ in range(3):
        ct.value_and_grad(p, x, out=out)
    assert ct._fast_out.latest.into((p, x), out) is not None
    out["W"].shape = (4, 3)            # the same array object, another shape
    with pytest.raises(td.TapediffError):
        ct.value_and_grad(p, x, out=out)
    out["W"].shape = (3, 4)
    out["b"] = np.empty(4)             # another array in the same dict
    ct.value_and_grad(p, x, out=out)
    np.testing.assert_allclose(out["b"], _reference(p, x)[1]["b"], rtol=1e-13)


@needs_cc
def test_threads_share_a_compiled_tape_and_keep_their_own_results():
    p, x = _args()
    ct = td.record(loss, p, x).compile()
    ct.value_and_grad(p, x)

    def work(seed):
        for k in range(30):
            pk, xk = _args(seed * 100 + k)
            v, g = ct.value_and_grad(pk, xk)
            v0, g0 = _reference(pk, xk)
            assert abs(v - v0) <= 1e-13 * abs(v0)
            np.testing.assert_allclose(g["W"], g0["W"], rtol=1e-13)
    run_in_threads(work, [(s,) for s in range(3)])


@needs_cc
def test_alternating_static_arguments_keep_one_path_each():
    def f(x, mode):
        return np.sum(np.sin(x)) if mode == "sin" else np.sum(np.cos(x))
    x = np.linspace(0, 1, 7)
    ct = td.record(f, x, "sin").compile()
    for mode in ["sin", "cos"] * 3:
        ct.value_and_grad(x, mode)
    paths = list(ct._fast.items)
    assert len(paths) == 2
    for k in range(6):
        mode = ["sin", "cos"][k % 2]
        xk = x + k
        v, g = ct.value_and_grad(xk, mode)
        want = (np.sum(np.sin(xk)), np.cos(xk)) if mode == "sin" else (np.sum(np.cos(xk)),
                                                                       -np.sin(xk))
        assert abs(v - want[0]) <= 1e-14 * abs(want[0])
        np.testing.assert_allclose(g, want[1], rtol=1e-14)
    assert {id(p) for p in ct._fast.items} == {id(p) for p in paths}   # none rebuilt


@needs_cc
def test_a_path_of_another_branch_never_answers():
    def f(x):
        return np.sum(x ** 2) if np.sum(x) > 0 else np.sum(np.exp(x))
    x = np.linspace(-1, 2, 5)
    ct = td.record(f, x).compile()
    for k in range(12):
        xk = x if k % 3 else -x          # branches alternate between known versions
        v, g = ct.value_and_grad(xk)
        want = (np.sum(xk ** 2), 2 * xk) if np.sum(xk) > 0 else (np.sum(np.exp(xk)), np.exp(xk))
        assert abs(v - want[0]) <= 1e-14 * abs(want[0])
        np.testing.assert_allclose(g, want[1], rtol=1e-14)
        y = ct(xk)
        assert abs(y - want[0]) <= 1e-14 * abs(want[0])


# ------------------------------------------------- found in review (each failed before its fix)
@needs_cc
def test_out_path_of_one_thread_never_writes_another_threads_buffers():
    # Paths are shared by threads; a thread inside one out= path's call while
    # another thread's call makes or replaces paths must not pick up the
    # other thread's buffers (the interleaving is forced here).
    ct = td.record(lambda x: np.sum(x ** 2), np.ones(3)).compile()
    xa, ga = np.array([1.0, 2.0, 3.0]), np.zeros(3)
    xb, gb = np.array([10.0, 20.0, 30.0]), np.zeros(3)
    for _ in range(3):
        ct.value_and_grad(xa, out=ga)
    path = ct._fast_out.items[0]
    orig = path.into
    go, done, first = threading.Event(), threading.Event(), [True]

    def into(args, out):
        if threading.current_thread().name == "A" and first[0]:
            first[0] = False
            go.set()
            done.wait(10)            # thread B's whole call runs here
        return orig(args, out)
    path.into = into
    res = {}

    def a():
        ga[:] = 0
        res["a"] = ct.value_and_grad(xa + 1, out=ga)

    def b():
        go.wait(10)
        ct.value_and_grad(xb, out=gb)
        done.set()
    ta, tb = threading.Thread(target=a, name="A"), threading.Thread(target=b, name="B")
    tb.start()
    ta.start()
    ta.join()
    tb.join()
    np.testing.assert_allclose(gb, 2 * xb)
    assert res["a"][1] is ga
    np.testing.assert_allclose(ga, 2 * (xa + 1))


@needs_cc
def test_deeply_nested_arguments_take_the_full_path():
    # a result tree is one nested expression per level; Python's parser
    # gives up (MemoryError) on ~200 levels, where the full path succeeds
    depth = 199
    t = np.ones(2)
    for _ in range(depth):
        t = (np.ones(2), t)

    def f(t):
        s = np.sum(t[0])
        while isinstance(t, tuple):
            t = t[1]
        return s + np.sum(t ** 2)
    ct = td.record(f, t).compile()
    for _ in range(3):
        v, _ = ct.value_and_grad(t)
        assert v == 4.0
        assert ct(t) == 4.0


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 199, 300])
def test_deeply_nested_arguments_get_no_path(depth):
    t = np.ones(2)
    for _ in range(depth):
        t = (np.ones(2), t)
    assert matcher((t,)) is None
    _, treedef = pytree.flatten(t)
    nt = types.SimpleNamespace(in_specs=[((2,), np.dtype(float))] * (depth + 1))
    parts = [(k, False) for k in range(depth + 1)]
    assert make_path(GradCall, None, nt, (t,), parts, treedef) is None
    shallow = t
    for _ in range(depth - MAX_DEPTH + 1):       # MAX_DEPTH levels with the args tuple
        shallow = shallow[1]
    assert matcher((shallow,)) is not None


@needs_cc
def test_an_argument_whose_strides_changed_in_place_is_not_read_stale():
    import warnings
    f = lambda x, w: np.sum(np.tanh(x @ w) ** 2)     # noqa: E731
    rng = np.random.default_rng(0)
    x, w = rng.random((3, 3)), rng.random((3, 3))
    ct = td.record(f, x, w, argnums=(0, 1)).compile()
    for _ in range(3):
        ct.value_and_grad(x, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        x.strides = (8, 24)                   # the same object, now a transposed view
    assert abs(ct.value_and_grad(x, w)[0] - f(x, w)) <= 1e-12


@needs_cc
def test_a_non_contiguous_argument_does_not_rebuild_the_matcher_per_call(monkeypatch):
    # the full path re-runs make_path when no kept path matches; a matcher
    # that refuses non-C-contiguous arrays makes every such call exec a new one
    from tapediff import fastpath
    made = []
    of = fastpath.matcher
    monkeypatch.setattr(fastpath, "matcher",
                        lambda args, buffers=False: made.append(1) or of(args, buffers))
    f = lambda w, x: np.sum(np.tanh(x @ w))       # noqa: E731
    w, X = np.ones((4, 4)), np.random.default_rng(0).random((4, 8))
    ct = td.record(f, w, X[:, :4]).compile()
    for _ in range(3):
        ct.value_and_grad(w, X[:, :4])
    made.clear()
    for _ in range(5):
        v, g = ct.value_and_grad(w, X[:, :4])
        assert abs(v - f(w, X[:, :4])) <= 1e-12
    assert len(made) <= 1


@needs_cc
@pytest.mark.parametrize("entry", ["value_and_grad", "call"])
def test_a_buffer_made_read_only_is_refused_as_out(entry):
    # the full path refuses a read-only out= array; a kept path must not write it
    x = np.arange(3.0)
    if entry == "value_and_grad":
        ct = td.record(lambda x: np.sum(x ** 2), x).compile()
        run = lambda x, o: ct.value_and_grad(x, out=o)      # noqa: E731
    else:
        ct = td.record(lambda x: x * 2.0, x).compile()
        run = lambda x, o: ct(x, out=o)                     # noqa: E731
    o = np.zeros(3)
    for _ in range(3):
        run(x, o)
    o.flags.writeable = False
    before = o.copy()
    with pytest.raises(td.TapediffError):
        run(x + 1, o)
    np.testing.assert_array_equal(o, before)


@needs_cc
def test_an_interpreter_that_counts_references_otherwise_gets_fresh_arrays(monkeypatch):
    from tapediff.codegen import native
    # an interpreter where the scan does not see an added reference
    monkeypatch.setattr(native, "_counter", lambda n: lambda s: ((1,) * n, False))
    native._pool_sets.cache_clear()
    monkeypatch.setattr(native, "_pool_sets", functools.lru_cache(native._pool_sets.__wrapped__))
    p, x = _args()
    ct = td.record(loss, p, x).compile()
    ct.value_and_grad(p, x)
    ct.value_and_grad(p, x)
    nt = ct._fast.latest.nt
    for k in range(4):
        pk, xk = _args(k)
        v, g = ct.value_and_grad(pk, xk)
        np.testing.assert_allclose(g["W"], _reference(pk, xk)[1]["W"], rtol=1e-13)
    st = nt._thread_state()
    assert st.pool == [] and native._pool_sets() == 0


@needs_cc
def test_an_out_path_replaces_the_one_for_the_same_buffers():
    f = lambda x: x * 2.0            # noqa: E731
    ct = td.record(f, np.ones(3)).compile()
    o = np.zeros(3)
    for k in range(6):
        ct(np.full(3, float(k)), out=o)
        if k % 2:                     # another out= pytree in between: the full path
            ct(np.ones(3), out=[np.zeros(3)][0])
    assert sum(p.kept.same(o) for p in ct._into.items) == 1
    np.testing.assert_array_equal(o, np.full(3, 10.0))


@needs_cc
def test_an_overlapping_non_contiguous_argument_is_refused_on_the_out_path():
    # the out= path copies a non-contiguous argument for the C call; the
    # overlap test must see the argument, not the copy
    def step(w, m, g):
        m = 0.9 * m + g
        return w - 0.1 * m, m
    ct = td.record(step, np.ones(4), np.zeros(4), np.ones(4)).compile()
    B, m2 = np.zeros(8), np.empty(4)
    w, m = np.ones(4), np.zeros(4)
    for _ in range(3):
        ct(w, m, np.ones(4), out=(B[:4], m2))
    with pytest.raises(td.TapediffError, match="overlaps"):
        ct(w, m, B[::2], out=(B[:4], m2))
    # the leaf-level entry the fused trainer uses applies the same test
    fast = ct._into.latest        # kept for the views of the first call
    assert fast.call_leaves([w, m, B[::2]]) is None
    assert fast.call_leaves([w, m, B[1::2]]) is None     # interleaved with B[:4]
    outs = fast.call_leaves([w, m, np.arange(8.0)[::2]])
    np.testing.assert_allclose(outs[1], 0.9 * m + np.arange(8.0)[::2])


@needs_cc
def test_value_and_grad_alternating_two_out_buffers_keeps_both_paths():
    p, x = _args()
    ct = td.record(loss, p, x).compile()
    outs = [{"W": np.empty((3, 4)), "b": np.empty(4)} for _ in range(2)]
    for k in range(4):
        ct.value_and_grad(p, x, out=outs[k % 2])
    paths = list(ct._fast_out.items)
    assert len(paths) == 2
    for k in range(6):
        pk, xk = _args(k)
        ct.value_and_grad(pk, xk, out=outs[k % 2])
        np.testing.assert_allclose(outs[k % 2]["W"], _reference(pk, xk)[1]["W"], rtol=1e-13)
    assert {id(q) for q in ct._fast_out.items} == {id(q) for q in paths}   # none rebuilt


@needs_cc
def test_an_interrupt_while_binding_a_pooled_set_leaves_no_stale_pointer():
    from tapediff.codegen import native
    ct = td.record(lambda x: (2.0 * x, 3.0 * x), np.ones(3)).compile()
    ct(np.ones(3))
    ct(np.ones(3))
    r1 = ct(np.full(3, 1.0))                 # set A
    r2 = ct(np.full(3, 2.0))                 # set B, bound
    del r1                                   # A free
    code = native._ThreadState.take.__code__
    write = next(n for _, _, n in code.co_lines() if n and "O[k] = b" in _line(code, n))
    seen = []

    def trace(frame, event, arg):           # interrupt take(A) after its first O[k] = b
        if frame.f_code is code and event == "line":
            seen.append(frame.f_lineno)
            if seen.count(write) == 2:
                raise KeyboardInterrupt
        return trace
    sys.settrace(trace)
    try:
        with pytest.raises(KeyboardInterrupt) as held:   # its traceback holds set A
            ct(np.full(3, 5.0))
    finally:
        sys.settrace(None)
    del r2                                   # B free: the next call takes it
    a, b = ct(np.full(3, 7.0))
    del held
    np.testing.assert_array_equal(a, np.full(3, 14.0))
    np.testing.assert_array_equal(b, np.full(3, 21.0))


def _line(code, n):
    import linecache
    return linecache.getline(code.co_filename, n)
