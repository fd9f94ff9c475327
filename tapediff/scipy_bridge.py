"""Hand a tapediff function to ``scipy.optimize.minimize`` with its exact gradient.

SciPy optimizes over one flat float64 vector; :func:`ravel_pytree` maps a
pytree of float arrays to such a vector and back. SciPy itself is only needed
to run the optimizer, not to import this module.
"""
import numpy as np

from . import pytree
from .api import record
from .train import _check_backend, _replayer

__all__ = ["ravel_pytree", "scipy_objective"]


def ravel_pytree(tree):
    """Flatten a pytree of floats and float arrays to one 1-D float64 vector.

    Parameters
    ----------
    tree : pytree
        Dicts, lists and tuples of float ndarrays and Python floats.

    Returns
    -------
    flat : ndarray
        1-D float64 copy of every leaf, in pytree order.
    unravel : callable
        ``unravel(vector)`` gives the pytree back: arrays of the leaves'
        shapes and dtypes (views into ``vector`` where it is float64; Python
        float leaves come back as 0-d arrays).

    Examples
    --------
    >>> import numpy as np
    >>> from tapediff.scipy_bridge import ravel_pytree
    >>> flat, unravel = ravel_pytree({"W": np.ones((2, 2)), "b": 0.5})
    >>> flat
    array([1. , 1. , 1. , 1. , 0.5])
    >>> unravel(np.arange(5.0))["W"]
    array([[0., 1.],
           [2., 3.]])
    """
    leaves, treedef = pytree.flatten(tree)
    specs = []
    for path, leaf in zip(pytree.leaf_paths(treedef, "x0"), leaves):
        dtype = leaf.dtype if isinstance(leaf, (np.ndarray, np.generic)) else np.dtype(
            type(leaf)) if isinstance(leaf, float) else None
        if dtype is None or dtype.kind != "f":
            raise TypeError(f"{path} is {type(leaf).__name__}"
                            f"{'' if dtype is None else f' of dtype {dtype}'}: optimizing "
                            "needs floats or float arrays (use np.asarray(..., dtype=float))")
        specs.append((np.shape(leaf), dtype))
    flat = _concat(leaves)
    size = flat.size

    def unravel(vector):
        vector = np.asarray(vector)
        if vector.shape != (size,):
            raise ValueError(f"unravel needs a vector of shape ({size},), got {vector.shape}")
        out, k = [], 0
        for shape, dtype in specs:
            n = int(np.prod(shape))
            out.append(vector[k:k + n].reshape(shape).astype(dtype, copy=False))
            k += n
        return pytree.unflatten(treedef, out)
    return flat, unravel


def _concat(leaves):
    """A new 1-D float64 array holding every leaf."""
    return np.concatenate([np.ravel(leaf) for leaf in leaves]).astype(np.float64, copy=False)


def scipy_objective(f, x0, *args, backend="auto"):
    """Keyword arguments for ``scipy.optimize.minimize`` minimising ``f(x, *args)`` over ``x``.

    ``f`` is recorded once on ``(x0, *args)``; each evaluation replays the
    tape for value and gradient (compiled for ``backend`` ``"auto"`` or
    ``"c"``). Use it as ``scipy.optimize.minimize(**scipy_objective(f, x0))``.

    Parameters
    ----------
    f : callable
        Plain NumPy code returning a scalar float.
    x0 : pytree
        Starting point: a float array or a pytree of them (and Python floats).
    *args
        Further arguments of ``f``, fixed for the whole optimization.
    backend : {"auto", "c", "interpreted"}
        As for :func:`tapediff.train.train_step`.

    Returns
    -------
    dict
        ``{"fun": fun, "x0": flat_x0, "jac": True, "args": ()}``, where
        ``fun(x)`` returns ``(value, gradient)`` as a float and a 1-D float64
        array. ``fun.unravel(x)`` turns a flat vector (e.g. ``result.x``) back
        into the structure of ``x0``.

    Examples
    --------
    With SciPy, ``res = minimize(**obj, method="L-BFGS-B")`` and then
    ``obj["fun"].unravel(res.x)``; below, what SciPy sees:

    >>> import numpy as np
    >>> from tapediff.scipy_bridge import scipy_objective
    >>> def f(p, c):
    ...     return np.sum((p["a"] - c) ** 2) + (p["b"] - 1.0) ** 2
    >>> obj = scipy_objective(f, {"a": np.zeros(2), "b": 0.0}, np.array([2.0, 3.0]))
    >>> obj["x0"], obj["jac"], obj["args"]
    (array([0., 0., 0.]), True, ())
    >>> obj["fun"](np.array([2.0, 3.0, 0.0]))
    (1.0, array([ 0.,  0., -2.]))
    >>> obj["fun"].unravel(np.array([2.0, 3.0, 1.0]))["a"]
    array([2., 3.])
    """
    _check_backend(backend)
    flat0, unravel = ravel_pytree(x0)
    tape = _replayer(record(f, x0, *args, argnums=0), backend)

    def fun(x):
        value, grads = tape.value_and_grad(unravel(np.asarray(x, dtype=np.float64)), *args)
        # a fresh gradient array per call: SciPy keeps earlier ones for its updates
        return float(value), _concat(pytree.flatten(grads)[0])
    fun.unravel = unravel
    return {"fun": fun, "x0": flat0, "jac": True, "args": ()}
