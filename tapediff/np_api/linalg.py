"""Linear-algebra handlers."""
import numpy as np

from ..numpy_dispatch import implements
from ..ops.linalg import MATMUL
from ..tracer import bind


@implements(np.matmul)
def matmul(a, b, out=None, **kw):
    r = bind(MATMUL, a, b)
    if out is not None:
        out[...] = r
        return out
    return r
