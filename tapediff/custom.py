"""User-defined primitives on the same registry as the built-in ops.

:func:`custom_op` makes a function whose *forward is traced* like any NumPy
code (so it replays and compiles like the rest of the tape, guards included)
but whose derivative comes from a rule the user writes, itself traced when the
reverse sweep is built. The typical use is an iterative solver differentiated
by the implicit-function theorem: the iterations are recorded without
derivatives, and one linear solve in the rule gives the exact gradient.

:func:`host_op` wraps a truly opaque Python callback. The interpreter calls
it on concrete arrays; a compiled tape would have to call back into Python,
so recording one warns with :class:`~tapediff.HostCallbackWarning`.
"""
import itertools
import warnings

import numpy as np

from .errors import HostCallbackWarning, UnsupportedOperation
from .ops.registry import Aval, defop
from .tape import VARYING
from .tracer import Tracked, bind, current, tape_of

_uid = itertools.count()

# stop_gradient: the identity, recorded, with an inactive output.
STOP_GRADIENT = defop("stop_gradient", lambda x: x, view=True, inactive=True,
                      shape=lambda x: Aval(x.shape, x.dtype))


def stop_gradient(x):
    """The value of ``x`` with no derivative flowing through it.

    On a tracked value the result is a new value: writing into it does not
    write into ``x`` (on a plain array it is ``x`` itself).

    Examples
    --------
    >>> import numpy as np, tapediff as td
    >>> td.grad(lambda x: np.sum(x * td.stop_gradient(x)))(np.ones(2))
    array([1., 1.])
    """
    if type(x) is not Tracked:
        return x
    return bind(STOP_GRADIENT, x)


class CustomOp:
    """A primitive with a traced forward and a user-written VJP (and JVP).

    Create one with :func:`custom_op`; attach rules with :meth:`defvjp` and
    :meth:`defjvp`.
    """

    def __init__(self, fun, name=None):
        self.fun = fun
        self.name = name or getattr(fun, "__name__", "custom")
        self._vjp = None
        self._jvp = None
        self._op = None
        self.__doc__ = getattr(fun, "__doc__", None)

    def defvjp(self, rule):
        """Set ``rule(g, out, *args) -> tuple`` (one cotangent or None per argument)."""
        self._vjp = rule
        self._op = None
        return rule

    def defjvp(self, rule):
        """Set ``rule(tangents, out, *args) -> tangent of out`` (tangents may be None)."""
        self._jvp = rule
        self._op = None
        return rule

    def _link_op(self):
        # The link is an identity on the traced result; its VJP is the user's
        # rule, shifted by one argument (the result itself gets no cotangent).
        if self._op is None:
            if self._vjp is None:
                raise UnsupportedOperation(
                    f"custom op {self.name!r} has no VJP rule: decorate one with "
                    f"@{self.name}.defvjp")
            user_vjp, user_jvp = self._vjp, self._jvp

            def vjp(needs, g, out, res, *args):
                cts = tuple(user_vjp(g, out, *args))
                if len(cts) != len(args):
                    raise TypeError(f"VJP of custom op {self.name!r} returned {len(cts)} "
                                    f"cotangents for {len(args)} arguments")
                return (None,) + cts

            def jvp(tangents, out, res, *args):
                if user_jvp is None:
                    raise UnsupportedOperation(
                        f"custom op {self.name!r} has no JVP rule (forward mode): decorate "
                        f"one with @{self.name}.defjvp")
                return user_jvp(list(tangents[1:]), out, *args)

            self._op = defop(f"custom_{self.name}_{next(_uid)}", lambda res, *args: res,
                             shape=lambda res, *args: res, vjp=vjp, jvp=jvp, view=True,
                             nondiff=(0,))
        return self._op

    def __call__(self, *args):
        tape = tape_of(args)
        if tape is None:
            return self.fun(*args)
        op = self._link_op()
        quiet = [stop_gradient(a) if type(a) is Tracked and a._t is tape else a for a in args]
        res = self.fun(*quiet)
        if type(res) is not Tracked or res._t is not tape:
            # the forward did not depend on tracked inputs: nothing to differentiate
            return res
        res = current(res)
        if res._c > VARYING:
            raise AssertionError("custom op forward produced an active value")
        return bind(op, res, *args)


def custom_op(fun=None, *, name=None):
    """Declare a primitive whose derivative is given by a rule instead of tracing.

    The forward ``fun`` is ordinary NumPy code; it is recorded (and later
    compiled) like any other code but without derivatives. The VJP rule,
    attached with ``@op.defvjp``, is called as ``rule(g, out, *args)`` with
    the output cotangent, the output and the arguments, and returns one
    cotangent (or None) per argument. It is written with ``np.*`` calls, so the
    reverse sweep it produces is recorded as a tape too.

    Examples
    --------
    A cube root by Newton's method, differentiated by the implicit-function
    theorem (``x**3 = a`` gives ``dx/da = 1 / (3 x**2)``):

    >>> import numpy as np, tapediff as td
    >>> @td.custom_op
    ... def cbrt(a):
    ...     x = np.ones_like(a)
    ...     for _ in range(30):
    ...         x = x - (x ** 3 - a) / (3 * x ** 2)
    ...     return x
    >>> @cbrt.defvjp
    ... def _(g, x, a):
    ...     return (g / (3 * x ** 2),)
    >>> np.round(td.grad(lambda a: np.sum(cbrt(a)))(np.array([8.0, 27.0])), 6)
    array([0.083333, 0.037037])
    """
    if fun is None:
        return lambda f: CustomOp(f, name)
    return CustomOp(fun, name)


class HostOp:
    """An opaque Python callback on concrete arrays (see :func:`host_op`)."""

    def __init__(self, fun, vjp, name):
        self.fun = fun
        self.name = name or getattr(fun, "__name__", "host")
        self._vjp = vjp
        user = fun

        def forward(*args):
            return np.asarray(user(*args))

        def vjp_rule(needs, g, out, *args):
            if vjp is None:
                raise UnsupportedOperation(
                    f"host op {self.name!r} has no VJP rule: pass vjp= to tapediff.host_op")
            return tuple(vjp(g, out, *args))

        def jvp_rule(tangents, out, *args):
            raise UnsupportedOperation(f"host op {self.name!r} has no JVP rule")

        self.op = defop(f"host_{self.name}_{next(_uid)}", forward, host=True,
                        shape=lambda *a: None, vjp=vjp_rule, jvp=jvp_rule,
                        inactive=vjp is None)
        self._warned = set()

    def __call__(self, *args):
        tape = tape_of(args)
        if tape is not None and tape.id not in self._warned:
            self._warned.add(tape.id)
            warnings.warn(f"host op {self.name!r} is an opaque Python callback: the tape "
                          "calls back into Python for it on every replay, and compiled "
                          "tapes will too", HostCallbackWarning, stacklevel=2)
        if tape is not None and any(type(a) is Tracked and type(a._v) is Tracked for a in args):
            raise UnsupportedOperation(f"host op {self.name!r} cannot run inside nested "
                                       "differentiation (its callback needs concrete arrays)")
        return bind(self.op, *args)


def host_op(fun=None, *, vjp=None, name=None):
    """Wrap an opaque Python function of concrete arrays as a tape op.

    The interpreter calls ``fun`` on plain ndarrays at every replay. ``vjp``,
    if given, is ``vjp(g, out, *args) -> tuple`` written with ``np.*`` calls;
    without it the result carries no derivative.

    Examples
    --------
    >>> import numpy as np, tapediff as td, warnings
    >>> sq = td.host_op(lambda x: x * x, vjp=lambda g, out, x: (2 * g * x,))
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     td.grad(lambda x: np.sum(sq(x)))(np.array([1.0, 2.0]))
    array([2., 4.])
    """
    if fun is None:
        return lambda f: HostOp(f, vjp, name)
    return HostOp(fun, vjp, name)
