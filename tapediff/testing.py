"""Public testing helpers: gradient checks and replay checks.

These are what tapediff's own test-suite uses; they are public so that users
can check custom rules and their own programs the same way.
"""
import numpy as np

from . import pytree
from .api import jvp, record, value_and_grad, vjp


def _float_leaf(x):
    return isinstance(x, (float, np.floating)) or (
        isinstance(x, np.ndarray) and x.dtype.kind == "f")


def _random_like(tree, rng):
    leaves, td = pytree.flatten(tree)
    out = []
    for x in leaves:
        if _float_leaf(x):
            a = np.asarray(x)
            out.append(rng.standard_normal(a.shape).astype(a.dtype) if a.ndim
                       else a.dtype.type(rng.standard_normal()))
        else:
            out.append(None)
    return out, td


def _axpy(tree, direction, eps):
    leaves, td = pytree.flatten(tree)
    out = []
    for x, d in zip(leaves, direction):
        if d is None:
            out.append(x)
        else:
            r = np.asarray(x, dtype=np.float64) + eps * np.asarray(d, dtype=np.float64)
            out.append(float(r) if isinstance(x, float) else r.astype(np.asarray(x).dtype))
    return pytree.unflatten(td, out)


def _vdot(a, b):
    la, _ = pytree.flatten(a)
    lb, _ = pytree.flatten(b)
    total = 0.0
    for x, y in zip(la, lb):
        if x is None or y is None:
            continue
        total += float(np.sum(np.asarray(x, np.float64) * np.asarray(y, np.float64)))
    return total


def _to_f64(out):
    leaves, td = pytree.flatten(out)
    return [np.asarray(x, dtype=np.float64) for x in leaves]


def check_grads(f, *args, eps=1e-6, rtol=1e-5, atol=1e-8, seed=0, modes=("fwd", "rev")):
    """Check the derivatives of ``f`` at ``args`` in a random direction.

    Compares, in float64:

    * the JVP ``J v`` against the central finite difference
      ``(f(x + eps v) - f(x - eps v)) / (2 eps)``;
    * the VJP against the JVP: ``<u, J v> == <J^T u, v>`` for random ``u``,
      which checks the reverse rule independently of the finite difference;
    * both against the finite difference through ``<u, J v>``.

    Integer and boolean arguments are held fixed. Raises ``AssertionError``
    with the measured numbers when a check fails.

    Examples
    --------
    >>> import numpy as np
    >>> from tapediff.testing import check_grads
    >>> check_grads(np.tanh, np.array([0.1, -0.4]))
    """
    rng = np.random.default_rng(seed)
    dirs = [_random_like(a, rng)[0] for a in args]
    plus = [_axpy(a, d, eps) for a, d in zip(args, dirs)]
    minus = [_axpy(a, d, -eps) for a, d in zip(args, dirs)]
    fp, fm = _to_f64(f(*plus)), _to_f64(f(*minus))
    fd = [(p - m) / (2 * eps) for p, m in zip(fp, fm)]
    tangents = [pytree.unflatten(pytree.flatten(a)[1],
                                 [np.zeros_like(np.asarray(x)) if d is None else d
                                  for x, d in zip(pytree.flatten(a)[0], dl)])
                for a, dl in zip(args, dirs)]
    out, jv = jvp(f, args, tangents)
    jv = _to_f64(jv)
    scale = max([1.0] + [float(np.max(np.abs(x))) for x in fd if x.size])
    if "fwd" in modes:
        for k, (a, b) in enumerate(zip(jv, fd)):
            err = np.max(np.abs(a - b)) if a.size else 0.0
            if not err <= atol + rtol * scale:
                raise AssertionError(f"JVP differs from the finite difference in output {k}: "
                                     f"max error {err:.3e} (scale {scale:.3e})\nJVP: {a}\nFD:  {b}")
    if "rev" in modes:
        out2, pull = vjp(f, *args)
        uleaves, utd = _random_like(out2, rng)
        oleaves = pytree.flatten(out2)[0]
        u = pytree.unflatten(utd, [np.zeros_like(np.asarray(o)) if x is None else x
                                   for x, o in zip(uleaves, oleaves)])
        grads = pull(u)
        lhs = _vdot(u, pytree.unflatten(pytree.flatten(out2)[1], jv))
        rhs = sum(_vdot(g, pytree.unflatten(pytree.flatten(a)[1], d))
                  for g, a, d in zip(grads, args, dirs))
        lhs_fd = _vdot(u, pytree.unflatten(pytree.flatten(out2)[1], fd))
        tight = 1e-10 * max(1.0, abs(lhs), abs(rhs)) + 1e3 * np.finfo(np.float64).eps * scale
        out_leaves = pytree.flatten(out2)[0]
        f64 = bool(out_leaves) and all(np.asarray(o).dtype == np.float64 for o in out_leaves)
        if f64 and not abs(lhs - rhs) <= max(
                tight, rtol * 1e-3 * max(1.0, abs(lhs))):
            raise AssertionError(f"VJP and JVP disagree: <u, J v> = {lhs!r}, "
                                 f"<J^T u, v> = {rhs!r}")
        if not abs(lhs_fd - rhs) <= atol * 10 + rtol * 10 * max(1.0, abs(lhs_fd)) * scale:
            raise AssertionError(f"VJP differs from the finite difference: <u, FD> = "
                                 f"{lhs_fd!r}, <J^T u, v> = {rhs!r}")


def check_replay(f, args_a, args_b, argnums=0, rtol=1e-12, atol=0.0):
    """Record ``f`` on ``args_a``, replay on ``args_b``; compare with a fresh run.

    Checks the primal against plain NumPy and value+gradient against a fresh
    one-shot :func:`tapediff.value_and_grad`. Returns the recorded function.

    Examples
    --------
    >>> import numpy as np
    >>> from tapediff.testing import check_replay
    >>> _ = check_replay(lambda x: np.sum(x ** 3), (np.ones(3),), (np.arange(3.0),))
    """
    tape = record(f, *args_a, argnums=argnums)
    got = tape(*args_b)
    want = f(*args_b)
    for a, b in zip(pytree.flatten(got)[0], pytree.flatten(want)[0]):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    try:
        v1, g1 = tape.value_and_grad(*args_b)
    except TypeError as e:   # non-scalar output: primal replay only
        if "scalar" in str(e):
            return tape
        raise
    v2, g2 = value_and_grad(f, argnums)(*args_b)
    np.testing.assert_allclose(v1, v2, rtol=rtol, atol=atol)
    for a, b in zip(pytree.flatten(g1)[0], pytree.flatten(g2)[0]):
        if a is None and b is None:
            continue
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    return tape
