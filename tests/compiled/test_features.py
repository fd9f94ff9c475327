"""Compiled entry points beyond agreement: out= buffers, vjp accumulation,
threads, sizes as run-time parameters, guards that fall back and re-record,
a singular solve, and the fallback of a tape the C backend cannot lower."""
import warnings

import numpy as np
import pytest

import tapediff as td
from tapediff import compiled, pytree
from tapediff.api import _dynamic_leaves
from tapediff.codegen import NativeTape, Unsupported
from tapediff.runtime import compiler_available
from tapediff.testing_compiled import assert_agree
from benchmarks import programs as bp
from tests.compiled import cases
from tests.threads import run_in_threads

needs_cc = pytest.mark.skipif(not compiler_available(), reason="no working C compiler")


def _leaves(tree):
    return pytree.flatten(tree)[0]


# ---------------------------------------------------------------- out=
@needs_cc
def test_out_buffers_are_written_in_place(corpus):
    p = corpus("programs")["prog/mlp-b4"]
    assert p.rf._current.native.get("grad") is not None
    w = p.argsets[0][0]
    out = {k: np.empty_like(v) for k, v in w.items()}
    ids = [id(a) for a in _leaves(out)]
    for j in (1, 0, 1):
        v, g = p.ct.value_and_grad(*p.argsets[j], out=out)
        assert g is out and [id(a) for a in _leaves(g)] == ids
        assert_agree((v, g), p.oracle[j]["grad"], what=f"out= on argument set {j}")


@needs_cc
def test_out_buffer_of_the_wrong_shape_is_refused(corpus):
    p = corpus("programs")["prog/mlp-b4"]
    w = p.argsets[0][0]
    bad = {k: np.empty(np.shape(v) + (1,)) for k, v in w.items()}
    with pytest.raises(td.TapediffError, match="out="):
        p.ct.value_and_grad(*p.argsets[0], out=bad)


# ---------------------------------------------------------------- vjp
@needs_cc
def test_vjp_of_nonscalar_outputs_accumulates_into(corpus):
    p = corpus("ops")["matmul/batched"]
    assert "vjp" in p.modes
    for j, args in enumerate(p.argsets):
        out, pull = p.ct.vjp(*args)
        want_out, want_grads = p.oracle[j]["vjp"]
        assert_agree(out, want_out, what="vjp output")
        acc = tuple(np.ones_like(a) for a in args)
        got = pull(p.cotangents[j], accumulate_into=acc)
        assert got is acc
        assert_agree(acc, tuple(1.0 + g for g in want_grads), what="accumulate_into")
        assert_agree(pull(p.cotangents[j]), want_grads, what="pullback")
    assert p.rf._current.native.get("vjp") is not None


# ---------------------------------------------------------------- threads
@needs_cc
def test_two_threads_share_one_compiled_tape(corpus):
    p = corpus("programs")["prog/mlp-b8"]

    def work(k):
        for it in range(40):
            j = (it + k) % len(p.argsets)
            got = p.ct.value_and_grad(*p.argsets[j])
            assert_agree(got, p.oracle[j]["grad"], what=f"thread {k} call {it}")
    run_in_threads(work, [(0,), (1,)])


# ---------------------------------------------------------------- sizes at run time
def _native_tapes(fun, args, argnums):
    rf = td.record(fun, *args, argnums=argnums)
    v = rf._current
    v.build_grad(args, _dynamic_leaves(args), rf.nums)
    return NativeTape(v.tape), NativeTape(v.grad_tape)


def test_batch_size_is_a_runtime_parameter():
    a4 = bp.mlp_args(batch=4, n_in=6, hidden=16, n_out=3)
    a8 = bp.mlp_args(batch=8, n_in=6, hidden=16, n_out=3)
    (p4, g4), (p8, g8) = _native_tapes(bp.mlp, a4, 0), _native_tapes(bp.mlp, a8, 0)
    assert p4.name == p8.name and p4.text == p8.text
    assert g4.name == g8.name and g4.text == g8.text
    assert not np.array_equal(g4.P, g8.P)        # the sizes live in the tables
    # the trip count of a folded loop too
    (h1, hg1), (h2, hg2) = (_native_tapes(bp.heat, (np.ones(16), 0.2, n), (0, 1))
                            for n in (10, 30))
    assert hg1.name == hg2.name and h1.name == h2.name


@needs_cc
def test_batch_sizes_share_one_compiled_function(corpus):
    prog = corpus("programs")
    n4 = dict((k, nt) for _, k, nt in prog["prog/mlp-b4"].natives)
    n8 = dict((k, nt) for _, k, nt in prog["prog/mlp-b8"].natives)
    assert n4["grad"].name == n8["grad"].name
    assert n4["grad"].fn == n8["grad"].fn


# ---------------------------------------------------------------- guards
@needs_cc
def test_guard_cases_replayed_natively_on_both_outcomes(corpus):
    prog = corpus("programs")
    for name in ("guard/branchy", "guard/branchy-first-negative", "guard/argmax",
                 "guard/loop-if", "guard/value", "guard/nan-branch"):
        p = prog[name]
        vs = [v for kept in p.rf._versions.values() for v in kept]
        assert p.rf.n_versions == len(vs) >= 2, name
        unlowered = {(id(v), key) for v, key, _, _ in p.unsupported}
        for v in vs:       # every version replayed natively (unless it holds an op not lowered)
            if (id(v), "grad") not in unlowered:
                assert v.native.get("grad") is not None, name


@needs_cc
def test_failed_native_guard_rerecords_and_compiles_the_new_path():
    rf = td.record(cases.branchy, np.ones(3))
    ct = rf.compile()
    for x in (np.ones(3), -np.ones(3), np.array([0.5, -0.1, 0.2]), np.array([-2.0, 0.1, 0.2])):
        v, g = ct.value_and_grad(x)
        v2, g2 = td.value_and_grad(cases.branchy)(x)
        assert_agree((v, g), (v2, g2), what=f"value_and_grad({x})")
        assert_agree(ct(x), cases.branchy(x), what=f"call({x})")
    assert rf.n_versions == 2
    vs = [v for kept in rf._versions.values() for v in kept]
    assert all(v.native.get("grad") is not None for v in vs)


@needs_cc
def test_strict_compiled_function_raises_branch_changed():
    ct = td.record(cases.branchy, np.ones(3), strict=True).compile()
    assert ct(np.array([1.0, 2.0, 3.0])) == pytest.approx(cases.branchy(np.array([1.0, 2.0, 3.0])))
    with pytest.raises(td.BranchChanged):
        ct(-np.ones(3))


# ---------------------------------------------------------------- singular solve
@needs_cc
def test_singular_solve_raises_linalgerror_compiled(corpus):
    p = corpus("ops")["linalg/solve"]
    b = p.argsets[0][1]
    lowered = all(key != "grad" for _, key, _, _ in p.unsupported)
    if not lowered:       # the fallback must say so
        assert any(op == "solve" for _, _, op, _ in p.unsupported)
    else:
        assert p.rf._current.native.get("grad") is not None
    v = p.rf._current

    class NoInterpreter:
        def run(self, inputs):
            raise AssertionError("the singular solve replayed the interpreter")
    plan, v.grad_plan = v.grad_plan, (NoInterpreter() if lowered else v.grad_plan)
    try:
        for A in (cases.A_SING, np.zeros((3, 3))):
            with np.errstate(all="ignore"), pytest.raises(np.linalg.LinAlgError):
                p.ct.value_and_grad(A, b)
    finally:
        v.grad_plan = plan
    v, g = p.ct.value_and_grad(*p.argsets[1])      # and it still works afterwards
    assert_agree((v, g), p.oracle[1]["grad"])


# ---------------------------------------------------------------- unsupported ops
def _unlowered_program():
    """A program holding an op the C backend does not lower (None if all do)."""
    candidates = [
        (lambda x, d: np.sum(x[np.argsort(d)] * np.arange(1.0, 6.0)),
         (np.linspace(0.1, 0.5, 5), np.array([3.0, 1.0, -2.0, 5.0, 0.5]))),
        (lambda x: np.sum(np.spacing(x) * x), (np.linspace(0.1, 0.5, 5),)),
        (lambda x: np.sum(np.linalg.cholesky(x @ x.T + np.eye(3))), (np.eye(3) * 0.5,)),
    ]
    for f, args in candidates:
        rf = td.record(f, *args)
        v = rf._current
        v.build_grad(args, _dynamic_leaves(args), rf.nums)
        try:
            NativeTape(v.grad_tape)
        except Unsupported as e:
            return f, args, e.op
    return None


@needs_cc
def test_unlowered_op_replays_interpreted_with_a_warning():
    found = _unlowered_program()
    if found is None:
        pytest.skip("every candidate program lowers")
    f, args, op = found
    with compiled._warn_lock:
        compiled._warned.discard(("op", op))
    rf = td.record(f, *args)
    ct = rf.compile()
    with pytest.warns(td.CompileWarning, match=op):
        got = ct.value_and_grad(*args)
    assert_agree(got, rf.value_and_grad(*args))
    assert rf._current.native["grad"] is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # once per op
        ct.value_and_grad(*args)


# ---------------------------------------------------------------- the stencil
@needs_cc
def test_stencil_reads_the_old_values(corpus):
    p = corpus("ops")["write/stencil"]
    x = p.argsets[1][0]
    want = x.copy()
    want[1:-1] = x[:-2] + x[2:] - 2 * x[1:-1] * 0.3
    gs = x.copy()                              # what an in-place sweep would give
    for i in range(1, len(x) - 1):
        gs[i] = gs[i - 1] + gs[i + 1] - 2 * gs[i] * 0.3
    got = p.ct(x)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert not np.allclose(got, gs)


# ---------------------------------------------------------------- the comparison itself
def test_assert_agree_is_normwise_and_strict_about_nan_and_inf():
    a = np.array([1.0, np.nan, np.inf, -np.inf, 0.0])
    assert_agree(a.copy(), a)
    assert_agree(a + np.array([1e-13, 0, 0, 0, 0]), a)          # norm-wise 1e-12
    with pytest.raises(AssertionError, match="relative"):
        assert_agree(a + np.array([1e-9, 0, 0, 0, 0]), a)
    with pytest.raises(AssertionError, match="NaN"):
        assert_agree(np.array([1.0, 0.0, np.inf, -np.inf, 0.0]), a)
    with pytest.raises(AssertionError, match="infinities"):
        assert_agree(np.array([1.0, np.nan, -np.inf, -np.inf, 0.0]), a)
    with pytest.raises(AssertionError, match="dtype"):
        assert_agree(a.astype(np.float32), a)
    f = np.array([1.0, 2.0], np.float32)
    assert_agree(f * np.float32(1 + 2e-6), f)                     # 1e-5 in float32
    with pytest.raises(AssertionError):
        assert_agree(f * np.float32(1 + 1e-4), f)
    with pytest.raises(AssertionError, match="values differ"):
        assert_agree(np.array([1, 2]), np.array([1, 3]))
    assert_agree({"a": (1.0, None)}, {"a": (1.0, None)})


# ---------------------------------------------------------------- loop order and blocks
def test_loop_order_and_blocks():
    """A long axis goes innermost only when the axes after it are short (and
    the loop is not empty); it then runs in blocks that hold about 4096
    elements of each array, at least 64."""
    from tapediff.codegen.lower import loop_order, tiled_axes
    assert loop_order((100_000, 5)) == [1, 0]
    assert tiled_axes((100_000, 5), [1, 0]) == ([], [1], 816)
    assert loop_order((2, 900, 9)) == [0, 2, 1]
    assert tiled_axes((2, 900, 9), [0, 2, 1]) == ([0], [2], 448)
    assert loop_order((100_000, 1000)) == [0, 1]          # the last axis is long enough
    assert loop_order((1000, 1000, 5)) == [0, 1, 2]       # 5000 elements after the long axis
    assert loop_order((100, 0)) == [0, 1] and loop_order((300, 0, 2)) == [0, 1, 2]
    assert tiled_axes((5, 100_000), [0, 1]) == ([0], [], None)
    assert tiled_axes((100_000, 60), [1, 0])[2] == 64


@needs_cc
@pytest.mark.parametrize("shape", [(100, 0), (300, 0, 2), (2, 300, 0)])
def test_empty_loops_compile(shape):
    x = np.ones(shape)
    for f in (lambda x: np.sum(x * x, axis=0), lambda x: np.sin(x) * 2):
        got = td.record(f, x).compile()(x)
        assert got.shape == f(x).shape


@needs_cc
def test_blocks_keep_products_and_extrema_bit_for_bit(monkeypatch):
    """Blocking the long axis changes no product, max or min (signed zeros
    included): each compiled result equals the one compiled without blocks,
    bit for bit; float32 sums keep the float64 accumulator's accuracy."""
    from tapediff.codegen import lower
    rng = np.random.default_rng(7)
    X = 1 + 0.01 * rng.normal(size=(8194, 7))
    Z = np.where(rng.random((8194, 7)) < 0.5, -0.0, 0.0)
    F = (rng.random((300_001, 3)) + 1).astype(np.float32)
    progs = [(lambda x: (np.prod(x[::2]), np.prod(x * 1.0, axis=0), np.prod(x * 1.0, axis=1)), X),
             (lambda x: (np.max(x * 1.0, axis=1), np.min(x * 1.0), np.max(x * 1.0, axis=0)), Z),
             (lambda x: np.sum(x * 1.0, axis=0), F)]

    def compiled(f, x):
        return td.record(f, x).compile()(x)
    blocked = [compiled(f, x) for f, x in progs]
    monkeypatch.setattr(lower, "tiled_axes", lambda shape, order: (order[:-1], [], None))
    plain = [compiled(f, x) for f, x in progs]
    for b, p in zip(blocked[:2], plain[:2]):
        for u, v in zip(b, p):
            assert np.asarray(u).tobytes() == np.asarray(v).tobytes()
    exact = np.sum(F.astype(np.float64), axis=0)
    assert np.max(np.abs(blocked[2] - exact) / exact) < 1e-7
