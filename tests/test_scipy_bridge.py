"""scipy_objective and ravel_pytree: exact gradients for scipy.optimize.minimize."""
import numpy as np
import pytest

from tapediff.scipy_bridge import ravel_pytree, scipy_objective

optimize = pytest.importorskip("scipy.optimize")


def rosen(x):
    """scipy.optimize.rosen's formula in plain NumPy (SciPy's own calls np.asarray)."""
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


# "auto" replays the compiled tape where RecordedFunction.compile exists
@pytest.mark.parametrize("backend", ["interpreted", "auto"])
def test_rosenbrock_value_and_gradient_match_scipy(backend):
    rng = np.random.default_rng(0)
    obj = scipy_objective(rosen, np.zeros(6), backend=backend)
    assert obj["jac"] is True and obj["args"] == ()
    for x in rng.uniform(-2, 2, size=(5, 6)):
        value, grad = obj["fun"](x)
        assert isinstance(value, float) and value == pytest.approx(optimize.rosen(x),
                                                                   rel=1e-14)
        assert grad.dtype == np.float64 and grad.shape == (6,)
        np.testing.assert_allclose(grad, optimize.rosen_der(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "CG", "trust-constr"])
def test_minimizers_converge_to_the_rosenbrock_minimum(method):
    x0 = np.array([-1.2, 1.0, -0.5, 0.8])
    options = {"gtol": 1e-10, "maxiter": 5000}
    if method == "trust-constr":
        options["xtol"] = 1e-12
    res = optimize.minimize(**scipy_objective(rosen, x0, backend="interpreted"), method=method,
                            options=options)
    np.testing.assert_allclose(res.x, np.ones(4), atol=1e-5)


def test_pytree_start_point_extra_arguments_and_unravel():
    def f(p, target, scale):
        return scale * (np.sum((p["W"] - target) ** 2) + (p["b"] + 2.0) ** 2)
    target = np.arange(6.0).reshape(2, 3)
    obj = scipy_objective(f, {"W": np.zeros((2, 3)), "b": 0.0}, target, 0.5,
                          backend="interpreted")
    np.testing.assert_array_equal(obj["x0"], np.zeros(7))
    res = optimize.minimize(**obj, method="L-BFGS-B")
    sol = obj["fun"].unravel(res.x)
    assert sol["W"].shape == (2, 3) and np.shape(sol["b"]) == ()
    np.testing.assert_allclose(sol["W"], target, atol=1e-6)
    np.testing.assert_allclose(sol["b"], -2.0, atol=1e-6)
    # the returned gradients are fresh arrays (SciPy keeps earlier ones)
    g1, g2 = obj["fun"](obj["x0"])[1], obj["fun"](obj["x0"])[1]
    assert g1 is not g2


def test_ravel_pytree_round_trip_keeps_dtypes():
    tree = [np.ones((2, 2), np.float32), (np.array(3.0), 4.5)]
    flat, unravel = ravel_pytree(tree)
    np.testing.assert_array_equal(flat, [1, 1, 1, 1, 3, 4.5])
    back = unravel(flat)
    assert back[0].dtype == np.float32 and back[0].shape == (2, 2)
    assert back[1][0].shape == () and float(back[1][1]) == 4.5
    with pytest.raises(ValueError, match=r"vector of shape \(6,\), got \(5,\)"):
        unravel(np.zeros(5))


@pytest.mark.parametrize("tree,match", [({"n": np.arange(3)}, r"x0\['n'\] is ndarray of "
                                                                r"dtype int64"),
                                        ([1], r"x0\[0\] is int: optimizing needs floats")])
def test_ravel_pytree_refuses_non_floats(tree, match):
    with pytest.raises(TypeError, match=match):
        ravel_pytree(tree)


def test_bad_backend():
    with pytest.raises(ValueError, match="backend='fast'"):
        scipy_objective(rosen, np.zeros(2), backend="fast")
