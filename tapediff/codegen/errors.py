"""Status codes returned by generated code, as Python exceptions.

The codes are defined in ``csrc/tapediff.h`` (``TD_SINGULAR`` ...)."""
import numpy as np

_MESSAGES = {
    -1: (np.linalg.LinAlgError, "Singular matrix"),
    -2: (np.linalg.LinAlgError, "Matrix is not positive definite"),
    -3: (IndexError, "index out of bounds in a compiled tape"),
    -4: (np.linalg.LinAlgError, "Eigenvalues did not converge"),
    -5: (np.linalg.LinAlgError, "SVD did not converge"),
}


def raise_status(status):
    """Raise the exception a negative status stands for."""
    exc, msg = _MESSAGES.get(status, (RuntimeError, f"compiled tape failed with status {status}"))
    raise exc(msg)
