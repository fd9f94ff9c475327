"""Handlers that map NumPy's API (functions, methods, ufunc methods) onto ops.

One module per domain, mirroring :mod:`tapediff.ops`. Handlers either bind a
primitive or are *composites*: ordinary NumPy code on tracked values with no
rules of their own (``np.mean`` is a sum and a division).
"""
from . import creation, linalg, reduce, shape  # noqa: F401
from . import composites, counting, editing, indexing, logic, polynomial  # noqa: F401
