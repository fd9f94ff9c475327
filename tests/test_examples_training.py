"""The training examples run at small sizes and reach what they claim.

They run interpreted here (compiling their tapes would take longer than the
training); tests/test_train.py covers the compiled backend."""
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without(monkeypatch, *names):
    """Make ``import name`` fail for these modules, as if they were not installed."""
    for name in names:
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, mod)
        monkeypatch.setitem(sys.modules, name, None)


def test_mlp_digits_reaches_95_percent_and_saves_the_loss_curve(tmp_path):
    pytest.importorskip("sklearn")
    png = tmp_path / "loss.png"
    assert load("train_mlp_digits").main(epochs=12, seed=0, quiet=True, png=png,
                                             backend="interpreted") >= 0.95
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not png.exists()
    else:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mlp_digits_runs_without_tqdm_and_matplotlib(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    without(monkeypatch, "tqdm", "matplotlib")
    png = tmp_path / "loss.png"
    assert load("train_mlp_digits").main(epochs=1, seed=1, quiet=False, png=png,
                                             backend="interpreted") > 0.5
    assert not png.exists()
    out = capsys.readouterr().out
    assert "matplotlib not installed" in out and "batch sizes [30, 64]" in out


@pytest.mark.parametrize("use_sklearn", [True, False])
def test_logistic_lbfgs_converges(use_sklearn, monkeypatch):
    pytest.importorskip("scipy")
    if not use_sklearn:
        without(monkeypatch, "sklearn")
    r = load("logistic_lbfgs").main(quiet=True, backend="interpreted")
    assert r["success"] and r["grad_norm"] < 1e-6 and r["accuracy"] > 0.9
    assert r["data"].startswith("breast cancer" if use_sklearn else "synthetic")
    if use_sklearn:
        sklearn_lm = pytest.importorskip("sklearn.linear_model")
        ex = load("logistic_lbfgs")
        X, y, _ = ex.load_data()
        train = np.random.default_rng(0).permutation(len(X))[int(len(X) * 0.25):]
        # the same objective: C = 1 / (l2 n) turns sklearn's sum of losses into our mean
        ref = sklearn_lm.LogisticRegression(C=1 / (1e-2 * len(train)), tol=1e-12,
                                            max_iter=10_000).fit(X[train], y[train])
        np.testing.assert_allclose(r["params"]["w"], ref.coef_[0], atol=1e-6)
        np.testing.assert_allclose(r["params"]["b"], ref.intercept_[0], atol=1e-6)
