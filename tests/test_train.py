"""train_step: the same training as the explicit loop, batch shapes, NaN losses, backends."""
import numpy as np
import pytest

import tapediff as td
from tapediff.optim import SGD, Adam, flat_params, schedules
from tapediff.train import train_step


def loss(w, x, y):
    h = np.tanh(x @ w["W1"] + w["b1"])
    return np.mean((h @ w["W2"] + w["b2"] - y) ** 2)


def setup(seed=0, n=10, n_in=3, hidden=5, n_out=2):
    rng = np.random.default_rng(seed)
    w = {"W1": rng.normal(size=(n_in, hidden)) * 0.5, "b1": np.zeros(hidden),
         "W2": rng.normal(size=(hidden, n_out)) * 0.5, "b2": np.zeros(n_out)}
    return w, rng.normal(size=(n, n_in)), rng.normal(size=(n, n_out))


def copy(w):
    return {k: v.copy() for k, v in w.items()}


# "auto" replays the compiled tape (slower to build); the other tests use the interpreter
@pytest.mark.parametrize("backend", ["interpreted", "auto"])
def test_train_step_equals_explicit_loop_with_a_schedule_changing_every_step(backend):
    w, x, y = setup()
    lr = schedules.exponential_decay(0.05, 0.9, decay_steps=7)   # a new value each step
    a, b = copy(w), copy(w)
    _, a = flat_params(a)                 # so a compiled tape writes into the flat buffer
    step = train_step(loss, a, Adam(a, lr=lr), x, y, backend=backend)
    assert step.backend == ("c" if backend == "auto" else "interpreted")
    rf = td.record(loss, b, x, y)
    opt = Adam(b, lr=lr)
    for _ in range(100):
        va = step(x, y)
        vb, g = rf.value_and_grad(b, x, y)
        opt.step(g)
        assert isinstance(va, float) and abs(va - float(vb)) <= 1e-10 * abs(vb)
    for k in w:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-10, atol=1e-12)
    assert not np.allclose(a["W1"], w["W1"])
    assert step.n_calls == 100 and opt.step_count == 100


def test_short_last_batch_is_recorded_once_and_reused():
    w, x, y = setup(n=10)
    _, params = flat_params(w)
    ref = copy(w)
    opt_ref = SGD(ref, lr=0.1, momentum=0.9)
    step = train_step(loss, params, SGD(params, lr=0.1, momentum=0.9), x[:4], y[:4],
                      backend="interpreted")
    for epoch in range(2):
        for k in range(0, 10, 4):                       # batches of 4, 4 and 2
            xb, yb = x[k:k + 4], y[k:k + 4]
            v_ref, g_ref = td.value_and_grad(loss)(ref, xb, yb)
            assert step(xb, yb) == pytest.approx(float(v_ref), rel=1e-13)
            opt_ref.step(g_ref)
            for name in w:
                np.testing.assert_allclose(params[name], ref[name], rtol=1e-12)
    # one recording per leading size, kept across epochs
    assert sorted(step.recorded) == [((2,), (2,)), ((4,), (4,))]
    assert all(rf.n_versions == 1 for rf in step.recorded.values())


def test_bad_batches_raise_naming_the_argument():
    w, x, y = setup()
    step = train_step(loss, w, SGD(w, lr=0.1), x, y, backend="interpreted")
    with pytest.raises(ValueError, match=r"batch\[1\] has shape \(10, 3\) but the example "
                                         r"batch had \(10, 2\).*leading"):
        step(x, np.ones((10, 3)))
    with pytest.raises(ValueError, match=r"batch\[0\] has shape \(30,\)"):
        step(x.ravel(), y)
    with pytest.raises(ValueError, match=r"the batch has leaves \['batch\[0\]'\]"):
        step(x)
    assert step.n_calls == 0


def test_nan_loss_raises_naming_the_step_or_skips():
    w, x, y = setup()
    bad = y.copy()
    bad[3, 0] = np.nan
    step = train_step(loss, w, SGD(w, lr=0.1), x, y, backend="interpreted")
    step(x, y)
    step(x, y)
    before = copy(w)
    with pytest.raises(FloatingPointError, match="train step 3: the loss is nan"):
        step(x, bad)
    for k in w:
        np.testing.assert_array_equal(w[k], before[k])

    skipping = train_step(loss, w, SGD(w, lr=0.1), x, y, on_nan="continue",
                          backend="interpreted")
    with np.errstate(invalid="ignore"):          # inf - inf in the gradient
        assert np.isinf(skipping(x, np.full_like(y, np.inf)))
    assert skipping.n_skipped == 1 and skipping.opt.step_count == 0
    for k in w:
        np.testing.assert_array_equal(w[k], before[k])
    assert np.isfinite(skipping(x, y)) and skipping.opt.step_count == 1


def test_bad_arguments():
    w, x, y = setup()
    with pytest.raises(ValueError, match="params must be the very arrays the optimizer"):
        train_step(loss, copy(w), SGD(w, lr=0.1), x, y, backend="interpreted")
    with pytest.raises(ValueError, match="backend='gpu'"):
        train_step(loss, w, SGD(w, lr=0.1), x, y, backend="gpu")
    with pytest.raises(ValueError, match="on_nan='ignore'"):
        train_step(loss, w, SGD(w, lr=0.1), x, y, on_nan="ignore")


class FakeCompiled:
    """Stands in for the compiled tape: interpreted gradients written into ``out=``."""

    calls = []

    def __init__(self, rf):
        self.rf = rf

    def value_and_grad(self, *args, out):
        value, grads = self.rf.value_and_grad(*args)
        for k in out:
            out[k][...] = grads[k]
        self.calls.append(out)
        return value, out


def test_unfused_compiled_backend_writes_gradients_into_the_optimizer(monkeypatch):
    monkeypatch.setattr(td.RecordedFunction, "compile", lambda self: FakeCompiled(self))
    FakeCompiled.calls.clear()
    w, x, y = setup()
    a, b = copy(w), copy(w)
    opt = Adam(a, lr=0.01)
    step = train_step(loss, a, opt, x, y, fused=False)
    ref = train_step(loss, b, Adam(b, lr=0.01), x, y, backend="interpreted")
    assert (step.backend, ref.backend) == ("c", "interpreted")
    for _ in range(5):
        assert step(x, y) == ref(x, y)
    for k in w:
        np.testing.assert_array_equal(a[k], b[k])
    assert len(FakeCompiled.calls) == 5
    # the gradients went straight into the optimizer's flat buffer
    assert all(np.shares_memory(FakeCompiled.calls[0][k], opt._g) for k in w)
