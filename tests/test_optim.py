"""Optimizers against their published update rules (torch.optim's documentation).

The expected values are written out step by step from the formulas, not
computed by the implementation."""
import math

import numpy as np
import pytest

from tapediff.optim import (SGD, Adam, AdamW, RMSprop, clip_grad_norm, flat_params,
                            schedules)

G = [np.array([0.5, -2.0]), np.array([-1.0, 0.25]), np.array([2.0, 1.0])]   # 3 gradients
THETA0 = np.array([1.0, -3.0])
TOL = dict(rtol=1e-14, atol=1e-15)


def run(cls, grads=G, **kw):
    w = {"x": THETA0.copy()}
    opt = cls(w, **kw)
    for g in grads:
        opt.step({"x": g.copy()})
    return w["x"]


# ---------------------------------------------------------------- SGD
def test_sgd_plain_and_weight_decay_by_hand():
    lr, wd = 0.1, 0.01
    t = THETA0 - lr * G[0]
    t = t - lr * G[1]
    t = t - lr * G[2]
    np.testing.assert_allclose(run(SGD, lr=lr), t, **TOL)
    t1 = THETA0 - lr * (G[0] + wd * THETA0)
    t2 = t1 - lr * (G[1] + wd * t1)
    t3 = t2 - lr * (G[2] + wd * t2)
    np.testing.assert_allclose(run(SGD, lr=lr, weight_decay=wd), t3, **TOL)


def test_sgd_momentum_by_hand():
    lr, mu = 0.1, 0.9
    b1 = G[0]                          # first step: the buffer is the gradient
    t1 = THETA0 - lr * b1
    b2 = mu * b1 + G[1]
    t2 = t1 - lr * b2
    b3 = mu * b2 + G[2]
    t3 = t2 - lr * b3
    np.testing.assert_allclose(run(SGD, lr=lr, momentum=mu), t3, **TOL)


def test_sgd_nesterov_with_weight_decay_by_hand():
    lr, mu, wd = 0.05, 0.8, 0.1
    g1 = G[0] + wd * THETA0
    b1 = g1
    t1 = THETA0 - lr * (g1 + mu * b1)
    g2 = G[1] + wd * t1
    b2 = mu * b1 + g2
    t2 = t1 - lr * (g2 + mu * b2)
    g3 = G[2] + wd * t2
    b3 = mu * b2 + g3
    t3 = t2 - lr * (g3 + mu * b3)
    np.testing.assert_allclose(run(SGD, lr=lr, momentum=mu, nesterov=True, weight_decay=wd),
                               t3, **TOL)


# ---------------------------------------------------------------- Adam / AdamW
def test_adam_first_step_moves_each_entry_by_lr():
    # m_hat = g and v_hat = g^2 at t = 1, so the step is lr * g / (|g| + eps)
    lr, eps = 0.01, 1e-8
    np.testing.assert_allclose(run(Adam, grads=G[:1], lr=lr),
                               THETA0 - lr * G[0] / (np.abs(G[0]) + eps), **TOL)


def test_adam_three_steps_by_hand_with_l2_weight_decay():
    lr, b1, b2, eps, wd = 0.01, 0.8, 0.9, 1e-6, 0.1
    m = np.zeros(2)
    v = np.zeros(2)
    t = THETA0.copy()
    g = G[0] + wd * t
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    t = t - lr * (m / (1 - b1)) / (np.sqrt(v / (1 - b2)) + eps)
    g = G[1] + wd * t
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    t = t - lr * (m / (1 - b1 ** 2)) / (np.sqrt(v / (1 - b2 ** 2)) + eps)
    g = G[2] + wd * t
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    t = t - lr * (m / (1 - b1 ** 3)) / (np.sqrt(v / (1 - b2 ** 3)) + eps)
    np.testing.assert_allclose(run(Adam, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd), t,
                               rtol=1e-13)


def test_amsgrad_uses_running_max_of_second_moment():
    # a large gradient then small ones: v falls, v_max keeps the peak
    grads = [np.array([4.0, 1.0]), np.array([0.1, 1.0]), np.array([0.1, 1.0])]
    lr, b1, b2, eps = 0.1, 0.5, 0.5, 1e-8
    m = (1 - b1) * grads[0]
    v = (1 - b2) * grads[0] ** 2
    vmax = v
    t = THETA0 - lr / (1 - b1) * m / (np.sqrt(vmax) / math.sqrt(1 - b2) + eps)
    m = b1 * m + (1 - b1) * grads[1]
    v = b2 * v + (1 - b2) * grads[1] ** 2
    vmax = np.maximum(vmax, v)
    t = t - lr / (1 - b1 ** 2) * m / (np.sqrt(vmax) / math.sqrt(1 - b2 ** 2) + eps)
    m = b1 * m + (1 - b1) * grads[2]
    v = b2 * v + (1 - b2) * grads[2] ** 2
    vmax = np.maximum(vmax, v)
    t = t - lr / (1 - b1 ** 3) * m / (np.sqrt(vmax) / math.sqrt(1 - b2 ** 3) + eps)
    got = run(Adam, grads=grads, lr=lr, betas=(b1, b2), eps=eps, amsgrad=True)
    np.testing.assert_allclose(got, t, rtol=1e-13)
    assert not np.allclose(got, run(Adam, grads=grads, lr=lr, betas=(b1, b2), eps=eps))


def test_adamw_decays_the_parameters_not_the_gradient():
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.99, 1e-8, 0.5
    m = np.zeros(2)
    v = np.zeros(2)
    t = THETA0.copy()
    for k, g in enumerate(G, start=1):       # the same three lines per step
        t = t * (1 - lr * wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        t = t - lr * (m / (1 - b1 ** k)) / (np.sqrt(v / (1 - b2 ** k)) + eps)
    np.testing.assert_allclose(run(AdamW, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd),
                               t, rtol=1e-13)
    assert AdamW({"x": np.ones(1)}).weight_decay == 1e-2      # PyTorch's default


# ---------------------------------------------------------------- RMSprop
def test_rmsprop_plain_by_hand():
    lr, a, eps = 0.01, 0.9, 1e-8
    v = (1 - a) * G[0] ** 2
    t1 = THETA0 - lr * G[0] / (np.sqrt(v) + eps)
    v = a * v + (1 - a) * G[1] ** 2
    t2 = t1 - lr * G[1] / (np.sqrt(v) + eps)
    v = a * v + (1 - a) * G[2] ** 2
    t3 = t2 - lr * G[2] / (np.sqrt(v) + eps)
    np.testing.assert_allclose(run(RMSprop, lr=lr, alpha=a, eps=eps), t3, **TOL)


def test_rmsprop_centered_momentum_weight_decay_by_hand():
    lr, a, eps, mu, wd = 0.01, 0.8, 1e-6, 0.5, 0.1
    g = G[0] + wd * THETA0
    v = (1 - a) * g ** 2
    gavg = (1 - a) * g
    b = g / (np.sqrt(v - gavg ** 2) + eps)
    t1 = THETA0 - lr * b
    g = G[1] + wd * t1
    v = a * v + (1 - a) * g ** 2
    gavg = a * gavg + (1 - a) * g
    b = mu * b + g / (np.sqrt(v - gavg ** 2) + eps)
    t2 = t1 - lr * b
    got = run(RMSprop, grads=G[:2], lr=lr, alpha=a, eps=eps, momentum=mu, centered=True,
              weight_decay=wd)
    np.testing.assert_allclose(got, t2, rtol=1e-13)


# ---------------------------------------------------------------- layouts, schedules
CONFIGS = [(SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
           (Adam, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
           (AdamW, dict(lr=0.01)),
           (RMSprop, dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1))]
IDS = [c.__name__ for c, _ in CONFIGS]


def problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4), "s": np.array(0.5)}
    grads = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(6)]
    return params, grads


@pytest.mark.parametrize("cls,kw", CONFIGS, ids=IDS)
def test_flat_buffer_and_separate_arrays_update_bit_identically(cls, kw):
    params, grads = problem()
    sep = {k: v.copy() for k, v in params.items()}
    flat, views = flat_params(params)
    opt_sep, opt_flat = cls(sep, **kw), cls(views, **kw)
    assert opt_flat._flat is not None and np.shares_memory(opt_flat._flat, flat)
    assert opt_sep._flat is None
    for g in grads:
        opt_sep.step(g)
        opt_flat.step(g)
    for k in params:
        np.testing.assert_array_equal(sep[k], views[k])
        assert np.shares_memory(views[k], flat)
    # each state kind is one flat buffer; the per-parameter arrays are views into it
    for kind, tree in opt_flat.state.items():
        assert all(np.shares_memory(v, opt_flat._state[kind]) for v in tree.values())


def test_schedule_is_called_with_the_number_of_updates_done():
    seen = []

    def lr(step):
        seen.append(step)
        return 0.1 / (1 + step)
    w = [np.array([1.0])]
    opt = SGD(w, lr=lr)
    for _ in range(3):
        opt.step([np.array([1.0])])
    assert seen == [0, 1, 2]
    np.testing.assert_allclose(w[0], 1.0 - 0.1 - 0.05 - 0.1 / 3, **TOL)


def test_schedules_values():
    assert schedules.constant(3e-4)(10 ** 6) == 3e-4
    ed = schedules.exponential_decay(0.1, 0.5, decay_steps=4, staircase=True)
    assert [ed(s) for s in (0, 3, 4, 9)] == [0.1, 0.1, 0.05, 0.025]
    cd = schedules.cosine_decay(2.0, decay_steps=10, alpha=0.1)
    np.testing.assert_allclose([cd(0), cd(5), cd(10), cd(20)], [2.0, 1.1, 0.2, 0.2])
    wl = schedules.warmup_linear(1.0, warmup_steps=2, decay_steps=4, end=0.2)
    np.testing.assert_allclose([wl(s) for s in range(8)],
                               [0.0, 0.5, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2])


def test_clip_grad_norm_standalone_and_as_option():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert clip_grad_norm(g, 10.0) == 5.0 and g["a"][0] == 3.0      # within: unchanged
    assert clip_grad_norm(g, 1.0) == 5.0
    np.testing.assert_allclose(g["a"], [0.6 * 5 / (5 + 1e-6), 0.0], **TOL)
    np.testing.assert_allclose(g["b"], [[0.8 * 5 / (5 + 1e-6)]], **TOL)
    params, grads = problem()
    a = {k: v.copy() for k, v in params.items()}
    b = {k: v.copy() for k, v in params.items()}
    opt_a, opt_b = Adam(a, lr=0.1, max_grad_norm=0.5), Adam(b, lr=0.1)
    for gr in grads:
        opt_a.step(gr)
        gr = {k: v.copy() for k, v in gr.items()}
        clip_grad_norm(gr, 0.5)
        opt_b.step(gr)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-13)


# ---------------------------------------------------------------- resuming
@pytest.mark.parametrize("cls,kw", CONFIGS, ids=IDS)
def test_resume_from_saved_state_is_bit_identical(cls, kw, tmp_path):
    kw = dict(kw, lr=schedules.cosine_decay(kw["lr"], decay_steps=6))
    params, grads = problem(1)
    straight = {k: v.copy() for k, v in params.items()}
    opt = cls(straight, **kw)
    for g in grads:
        opt.step(g)

    first = {k: v.copy() for k, v in params.items()}
    opt1 = cls(first, **kw)
    for g in grads[:3]:
        opt1.step(g)
    np.savez(tmp_path / "opt.npz", **opt1.state_dict())
    np.savez(tmp_path / "params.npz", **first)

    saved = np.load(tmp_path / "params.npz")
    resumed = {k: saved[k].copy() for k in params}
    opt2 = cls(resumed, **kw)
    opt2.load_state_dict(np.load(tmp_path / "opt.npz"))
    assert opt2.step_count == 3
    for g in grads[3:]:
        opt2.step(g)
    for k in params:
        np.testing.assert_array_equal(resumed[k], straight[k])


def test_load_state_dict_refuses_other_optimizers_and_sizes():
    d = Adam([np.ones(3)]).state_dict()
    with pytest.raises(ValueError, match="from a Adam optimizer; load it into a Adam"):
        RMSprop([np.ones(3)]).load_state_dict(d)
    with pytest.raises(ValueError, match="state is for 3 parameters but this optimizer has 4"):
        Adam([np.ones(4)]).load_state_dict(d)
    with pytest.raises(ValueError, match="no 'v_max' buffer"):
        Adam([np.ones(3)], amsgrad=True).load_state_dict(d)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("params,match", [
    ({"w": [1.0, 2.0]}, r"params\['w'\]\[0\] is a float, not a NumPy array.*np.array"),
    ({"w": np.arange(3)}, r"params\['w'\] has dtype int64; .*astype"),
    ({"w": np.ones(2), "b": np.ones(2, np.float32)}, r"params\['b'\] has dtype float32 .*share"),
    ({"w": np.broadcast_to(np.ones(1), (3,))}, r"params\['w'\] is read-only"),
])
def test_bad_parameters_raise_type_error_naming_them(params, match):
    with pytest.raises(TypeError, match=match):
        SGD(params, lr=0.1)


def test_bad_hyperparameters_raise_value_error():
    w = [np.ones(2)]
    for kw, match in [(dict(lr=0.0), "lr=0.0 must be a finite number > 0"),
                      (dict(lr=-1.0), "lr=-1.0"), (dict(lr=float("nan")), "lr=nan")]:
        with pytest.raises(ValueError, match=match):
            Adam(w, **kw)
    with pytest.raises(ValueError, match=r"betas\[1\]=1.0 must lie in \[0, 1\)"):
        Adam(w, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match=r"betas\[0\]=-0.1"):
        AdamW(w, betas=(-0.1, 0.9))
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        SGD(w, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="params holds no arrays"):
        SGD({}, lr=0.1)
    opt = SGD(w, lr=lambda step: -0.1)
    with pytest.raises(ValueError, match="schedule returned -0.1 at step 0"):
        opt.step([np.ones(2)])


def test_gradient_mismatches_raise_value_error_naming_the_leaf():
    opt = Adam({"W": np.ones((2, 3)), "b": np.ones(3)})
    with pytest.raises(ValueError, match=r"grads must have the structure of params"):
        opt.step({"W": np.ones((2, 3))})
    with pytest.raises(ValueError, match=r"grads\['W'\] has shape \(3, 2\) but params\['W'\]"):
        opt.step({"W": np.ones((3, 2)), "b": np.ones(3)})
    assert opt.step_count == 0


def test_check_finite_names_the_gradient_and_leaves_parameters_alone():
    w = {"W": np.ones(2), "b": np.ones(2)}
    opt = SGD(w, lr=0.1, check_finite=True)
    with pytest.raises(FloatingPointError, match=r"grads\['b'\] holds NaN or inf at step 0"):
        opt.step({"W": np.ones(2), "b": np.array([1.0, np.inf])})
    np.testing.assert_array_equal(w["b"], [1.0, 1.0])
    SGD(w, lr=0.1).step({"W": np.ones(2), "b": np.array([1.0, np.nan])})   # unchecked


# ---------------------------------------------------------------- PyTorch, if present
TORCH = [(SGD, "SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
         (SGD, "SGD", dict(lr=0.1, momentum=0.5)),
         (SGD, "SGD", dict(lr=0.1, momentum=0.8, dampening=0.3, maximize=True)),
         (RMSprop, "RMSprop", dict(lr=0.01, maximize=True)),
         (Adam, "Adam", dict(lr=0.01, maximize=True, weight_decay=0.1)),
         (Adam, "Adam", dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.1, amsgrad=True)),
         (AdamW, "AdamW", dict(lr=0.01, weight_decay=0.3)),
         (RMSprop, "RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True,
                                   weight_decay=0.1))]


@pytest.mark.parametrize("cls,name,kw", TORCH, ids=[f"{n}-{i}" for i, (_, n, _) in
                                                     enumerate(TORCH)])
def test_matches_torch_optim(cls, name, kw):
    torch = pytest.importorskip("torch")
    params, grads = problem(2)
    ours = {k: v.copy() for k, v in params.items()}
    opt = cls(ours, **kw)
    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    topt = getattr(torch.optim, name)(list(theirs.values()), foreach=False, **kw)
    for g in grads:
        opt.step(g)
        for k, p in theirs.items():
            p.grad = torch.tensor(g[k])
        topt.step()
    for k in params:
        np.testing.assert_allclose(ours[k], theirs[k].detach().numpy(), rtol=1e-12,
                                   atol=1e-14)
