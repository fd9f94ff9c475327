"""The fused train step: loss, gradient and optimizer update in one native call."""
import numpy as np
import pytest

import tapediff as td
from tapediff.optim import SGD, Adam, AdamW, RMSprop, flat_params, schedules
from tapediff.train import train_step

from .test_train import copy, loss, setup

OPTIMIZERS = [
    (SGD, dict(momentum=0.9, nesterov=True, weight_decay=1e-2)),
    (SGD, dict(momentum=0.7, dampening=0.3, maximize=True)),    # a step-dependent scalar
    (Adam, dict(weight_decay=1e-2, amsgrad=True)),
    (AdamW, dict(max_grad_norm=0.05)),
    (RMSprop, dict(centered=True, momentum=0.5, weight_decay=1e-3, check_finite=True)),
]


@pytest.mark.parametrize("flat", [True, False], ids=["flat", "separate"])
@pytest.mark.parametrize("cls,kw", OPTIMIZERS, ids=[f"{c.__name__}-{i}" for i, (c, _) in
                                                    enumerate(OPTIMIZERS)])
def test_fused_equals_compiled_gradient_then_python_update(cls, kw, flat):
    w, x, y = setup(n=12)
    lr = schedules.exponential_decay(0.05, 0.9, decay_steps=7)   # a new value each step
    a, b = copy(w), copy(w)
    if flat:
        _, a = flat_params(a)
    arrays = {k: a[k] for k in a}
    fused = train_step(loss, a, cls(a, lr=lr, **kw), x[:4], y[:4])
    unfused = train_step(loss, b, cls(b, lr=lr, **kw), x[:4], y[:4], fused=False)
    assert fused.fused and not unfused.fused and unfused.backend == "c"
    for i in range(100):
        j = 4 * (i % 3)
        va, vb = fused(x[j:j + 4], y[j:j + 4]), unfused(x[j:j + 4], y[j:j + 4])
        assert va == pytest.approx(vb, rel=1e-10)
    for k in w:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-10, atol=1e-12)
        assert a[k] is arrays[k]                     # updated in place
    assert not np.allclose(a["W1"], w["W1"])
    for k, buf in fused.opt.state.items():
        for name in w:
            np.testing.assert_allclose(buf[name], unfused.opt.state[k][name],
                                       rtol=1e-10, atol=1e-12)
    assert fused.opt.step_count == unfused.opt.step_count == 100


def test_the_fused_step_never_calls_the_python_update(monkeypatch):
    w, x, y = setup()
    opt = Adam(w, lr=0.01)
    step = train_step(loss, w, opt, x, y)

    def boom(grads):
        raise AssertionError("opt.step ran")
    monkeypatch.setattr(opt, "step", boom)
    ref = copy(w)
    ref_opt = Adam(ref, lr=0.01)
    for _ in range(3):
        step(x, y)
        ref_opt.step(td.value_and_grad(loss)(ref, x, y)[1])
    for k in w:
        np.testing.assert_allclose(w[k], ref[k], rtol=1e-12)
    (rf,) = step.recorded.values()
    assert rf.n_versions == 1


def test_float32_parameters_stay_float32():
    w, x, y = setup()
    w = {k: v.astype(np.float32) for k, v in w.items()}
    x, y = x.astype(np.float32), y.astype(np.float32)
    ref = copy(w)
    step = train_step(loss, w, Adam(w, lr=0.01), x, y)
    unfused = train_step(loss, ref, Adam(ref, lr=0.01), x, y, fused=False)
    for _ in range(20):
        step(x, y)
        unfused(x, y)
    for k in w:
        assert w[k].dtype == np.float32
        np.testing.assert_allclose(w[k], ref[k], rtol=1e-5, atol=1e-6)


def test_nan_loss_leaves_parameters_and_state_alone():
    w, x, y = setup()
    bad = y.copy()
    bad[3, 0] = np.nan
    step = train_step(loss, w, Adam(w, lr=0.1), x, y)
    step(x, y)
    before, state = copy(w), {k: copy(v) for k, v in step.opt.state.items()}
    with pytest.raises(FloatingPointError, match="train step 2: the loss is nan"):
        step(x, bad)
    assert step.opt.step_count == 1
    skipping = train_step(loss, w, step.opt, x, y, on_nan="continue")
    with np.errstate(invalid="ignore"):
        assert np.isnan(skipping(x, bad))
    assert skipping.n_skipped == 1 and step.opt.step_count == 1
    for k in w:
        np.testing.assert_array_equal(w[k], before[k])
    for kind, buf in step.opt.state.items():
        for k in w:
            np.testing.assert_array_equal(buf[k], state[kind][k])
    assert np.isfinite(skipping(x, y)) and step.opt.step_count == 2


def test_check_finite_names_the_gradient_when_only_it_is_not_finite():
    def sqrt_loss(w, x):
        return np.sum(np.sqrt(w["a"]) * x) + np.sum(w["b"] * x)
    w = {"a": np.ones(3), "b": np.ones(3)}
    x = np.ones(3)
    step = train_step(sqrt_loss, w, SGD(w, lr=0.1, check_finite=True), x)
    step(x)
    w["a"][1] = 0.0                            # finite loss, infinite gradient
    before = copy(w)
    with np.errstate(divide="ignore"), pytest.raises(FloatingPointError,
                                                     match=r"gradient of grads\['a'\]"):
        step(x)
    for k in w:
        np.testing.assert_array_equal(w[k], before[k])


def test_resume_from_state_dict_is_bit_identical(tmp_path):
    w, x, y = setup()
    lr = schedules.cosine_decay(0.05, 60)
    run = copy(w)
    step = train_step(loss, run, Adam(run, lr=lr), x, y)
    for _ in range(60):
        step(x, y)
    half = copy(w)
    step1 = train_step(loss, half, Adam(half, lr=lr), x, y)
    for _ in range(30):
        step1(x, y)
    np.savez(tmp_path / "opt.npz", **step1.opt.state_dict())
    resumed = copy(half)
    opt2 = Adam(resumed, lr=lr)
    opt2.load_state_dict(np.load(tmp_path / "opt.npz"))
    step2 = train_step(loss, resumed, opt2, x, y)
    for _ in range(30):
        step2(x, y)
    for k in w:
        np.testing.assert_array_equal(resumed[k], run[k])


def test_short_last_batch_gets_its_own_fused_recording():
    w, x, y = setup(n=10)
    ref = copy(w)
    step = train_step(loss, w, SGD(w, lr=0.1, momentum=0.9), x[:4], y[:4])
    unfused = train_step(loss, ref, SGD(ref, lr=0.1, momentum=0.9), x[:4], y[:4],
                         fused=False)
    for epoch in range(2):
        for k in range(0, 10, 4):
            assert step(x[k:k + 4], y[k:k + 4]) == pytest.approx(
                unfused(x[k:k + 4], y[k:k + 4]), rel=1e-12)
    for k in w:
        np.testing.assert_allclose(w[k], ref[k], rtol=1e-12)
    assert sorted(step.recorded) == [((2,), (2,)), ((4,), (4,))]


def test_fused_needs_a_compiled_backend():
    w, x, y = setup()
    with pytest.raises(ValueError, match="fused=True needs a compiled step"):
        train_step(loss, w, SGD(w, lr=0.1), x, y, backend="interpreted", fused=True)


def test_non_contiguous_parameters_train_unfused_or_are_refused_for_fused():
    w, x, y = setup()
    w["W1"] = w["W1"].T.copy().T                  # a transposed view: not C-contiguous
    assert not w["W1"].flags.c_contiguous
    ref = {k: np.array(v, order="C") for k, v in w.items()}
    step = train_step(loss, w, Adam(w, lr=0.01), x, y)
    assert not step.fused
    unfused = train_step(loss, ref, Adam(ref, lr=0.01), x, y, fused=False)
    for _ in range(3):
        assert step(x, y) == pytest.approx(unfused(x, y), rel=1e-12)
    with pytest.raises(ValueError, match=r"params\['W1'\] is not C-contiguous"):
        train_step(loss, w, Adam(w, lr=0.01), x, y, fused=True)
