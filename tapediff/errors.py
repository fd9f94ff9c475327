"""Exception and warning classes.

Every message names the operation or argument, what went wrong, and the fix.
"""


class TapediffError(Exception):
    """Base class of every error raised by tapediff."""


class TrackedEscape(TapediffError):
    """A tracked (differentiated) value would leave the tape.

    (Deliberately not a ``TypeError``: NumPy swallows a ``TypeError`` raised by
    ``__float__`` during ``z[i] = t`` and reports an unrelated ``ValueError``.)

    Converting an active value to a Python number (``float()``, ``.item()``,
    ``math.exp``), to a plain ndarray (``np.asarray``, ``np.array([...])``) or
    writing it into a plain ndarray would silently drop its derivative, so
    tapediff refuses. Keep the value an array: use ``np.exp`` instead of
    ``math.exp``, ``np.stack`` instead of ``np.array([...])`` and create
    buffers with ``np.zeros(n, like=x)``.
    """


class BranchChanged(TapediffError):
    """A replayed input takes a different branch than the recorded one.

    Raised only with ``strict=True``; by default the function is re-recorded
    for the new path.
    """


class UnsupportedOperation(TapediffError, NotImplementedError):
    """A NumPy function or operation has no tapediff rule.

    Register one with :func:`tapediff.custom_op`, or rewrite the code with
    supported operations.
    """


class ShapeMismatch(TapediffError, ValueError):
    """A replayed argument does not match the recorded shape, dtype or structure."""


class LeakedTracer(TapediffError, RuntimeError):
    """A tracked value was used after the recording it belongs to ended."""


class RetraceWarning(UserWarning):
    """A call site keeps changing branch; tapediff stops caching versions for it."""


class HostCallbackWarning(UserWarning):
    """A tape contains an opaque Python callback (a host op)."""
