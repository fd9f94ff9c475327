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
from .errors import (BranchChanged, HostCallbackWarning, LeakedTracer, RetraceWarning,
                     ShapeMismatch, TapediffError, TrackedEscape, UnsupportedOperation)
from .tracer import Tracked, is_tracked

__version__ = "0.1.0"

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "record", "RecordedFunction", "Tracked",
           "custom_op", "host_op", "checkpointed", "stop_gradient", "compile_grad",
           "CompiledFunction", "CompileWarning",
           "is_tracked", "TapediffError", "TrackedEscape", "BranchChanged",
           "UnsupportedOperation", "ShapeMismatch", "LeakedTracer", "RetraceWarning",
           "HostCallbackWarning", "__version__"]
