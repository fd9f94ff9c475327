"""Flattening of nested dict / list / tuple arguments ("pytrees").

A treedef is a hashable nested tuple, so it can be part of a cache key.
Dicts keep their insertion order.
"""
import numpy as np

_STATIC = (int, bool, str, type(None))


def is_static(leaf):
    """Python int, bool, str and None leaves are static: baked into the tape."""
    return isinstance(leaf, _STATIC) and not isinstance(leaf, np.generic)


def flatten(tree):
    """Return ``(leaves, treedef)``; dicts, lists and tuples are containers."""
    leaves = []
    treedef = _flatten(tree, leaves)
    return leaves, treedef


def _flatten(tree, leaves):
    if isinstance(tree, dict):
        keys = tuple(tree)
        return ("dict", keys, tuple(_flatten(tree[k], leaves) for k in keys))
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return ("namedtuple", type(tree), tuple(_flatten(v, leaves) for v in tree))
    if isinstance(tree, (list, tuple)):
        return (type(tree).__name__, len(tree), tuple(_flatten(v, leaves) for v in tree))
    leaves.append(tree)
    return None


def unflatten(treedef, leaves):
    """Inverse of :func:`flatten`."""
    it = iter(leaves)
    out = _unflatten(treedef, it)
    return out


def _unflatten(td, it):
    if td is None:
        return next(it)
    kind, meta, children = td
    vals = [_unflatten(c, it) for c in children]
    if kind == "dict":
        return dict(zip(meta, vals))
    if kind == "namedtuple":
        return meta(*vals)
    return vals if kind == "list" else tuple(vals)


def leaf_paths(treedef, prefix=""):
    """Readable path of every leaf (``w['W']``, ``args[1][0]``), for error messages."""
    out = []
    _paths(treedef, prefix, out)
    return out


def _paths(td, prefix, out):
    if td is None:
        out.append(prefix)
        return
    kind, meta, children = td
    if kind == "dict":
        for k, c in zip(meta, children):
            _paths(c, f"{prefix}[{k!r}]", out)
    elif kind == "namedtuple":
        for name, c in zip(meta._fields, children):
            _paths(c, f"{prefix}.{name}", out)
    else:
        for i, c in enumerate(children):
            _paths(c, f"{prefix}[{i}]", out)
