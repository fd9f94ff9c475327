"""The op registry and its domains; importing this package registers every op."""
from . import registry  # noqa: F401
from . import control, elementwise, indexing, linalg, reduce, shape  # noqa: F401
