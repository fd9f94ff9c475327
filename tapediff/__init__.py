"""tapediff: reverse-mode automatic differentiation of plain NumPy code.

Record a function once on tracked arrays, then replay the tape many times.
"""
from . import ops  # noqa: F401  (registers every op)
from . import numpy_dispatch  # noqa: F401
from . import np_api  # noqa: F401
from .api import RecordedFunction, grad, jvp, record, value_and_grad, vjp
from .checkpoint import checkpointed
from .compiled import CompiledFunction, CompileWarning, compile_grad
from .custom import custom_op, host_op, stop_gradient
from . import optim  # noqa: F401
from .optim import clip_grad_norm, flat_params
from .scipy_bridge import ravel_pytree, scipy_objective
from .train import train_step
from .errors import (BranchChanged, HostCallbackWarning, LeakedTracer, RetraceWarning,
                     ShapeMismatch, TapediffError, TrackedEscape, UnsupportedOperation)
from .tracer import Tracked, is_tracked

__version__ = "0.1.0"

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "record", "RecordedFunction", "Tracked",
           "custom_op", "host_op", "checkpointed", "stop_gradient", "compile_grad",
           "CompiledFunction", "CompileWarning", "optim", "train_step", "scipy_objective",
           "ravel_pytree", "flat_params", "clip_grad_norm",
           "is_tracked", "TapediffError", "TrackedEscape", "BranchChanged",
           "UnsupportedOperation", "ShapeMismatch", "LeakedTracer", "RetraceWarning",
           "HostCallbackWarning", "__version__"]
