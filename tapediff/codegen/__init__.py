"""Code generation: lower recorded tapes to C (see docs/c-backend-design.md).

:mod:`.lower` turns a tape into a C function (fused loops, buffer plan,
run-time size tables), :mod:`.kernels` and :mod:`.loops` hold the kernels that
are not fused loops, and :mod:`.native` compiles and calls the result.
"""
from .lower import Lowering, Tables, Unsupported
from .native import NativeTape, build

__all__ = ["Lowering", "Tables", "Unsupported", "NativeTape", "build"]
