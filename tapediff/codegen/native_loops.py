"""Long loops of the interpreter run natively.

Building a gradient tape runs the recorded program once (the reverse sweep is
recorded on concrete values), and the interpreter replays a ``scan`` block one
NumPy call per body instruction: about 10-50 us per iteration, so a recorded
loop of 10^6 iterations would take minutes. When a C compiler works, a scan
with enough work (trips x body instructions >= :data:`MIN_WORK`) runs as one
compiled loop instead: the body is lowered once per argument signature, and
the results are the C backend's (equal to the interpreter's within the tested
tolerance). A failed guard or an index error re-runs the loop interpreted,
which raises exactly as before. ``TAPEDIFF_NATIVE_LOOPS=0`` turns this off.
"""
import os
import threading

import numpy as np

MIN_WORK = 100_000
_lock = threading.Lock()


def enabled(trips, body):
    return (trips * len(body) >= MIN_WORK and os.environ.get("TAPEDIFF_NATIVE_LOOPS", "1") != "0"
            and os.environ.get("TAPEDIFF_DISABLE_C", "") in ("", "0"))


def run(args, params):
    """The scan's results computed natively, or None (then interpret)."""
    from ..runtime import compiler_available
    if not compiler_available():
        return None
    arrays = []
    for a in args:
        if isinstance(a, np.generic):
            a = np.asarray(a)
        if not isinstance(a, np.ndarray):
            return None           # a Python number or a tracked value: interpret
        arrays.append(a)
    body = params["body"]
    key = (tuple((a.shape, a.dtype.str) for a in arrays),
           tuple(sorted((k, v) for k, v in params.items() if k not in ("body", "guard_base"))))
    cache = body.__dict__.setdefault("_native_scans", {})
    with _lock:
        nt = cache.get(key, False)
        if nt is False:
            nt = cache[key] = _compile(arrays, params)
    if nt is None:
        return None
    ins = [np.ascontiguousarray(a) for a in arrays]
    outs = nt.new_outputs()
    if nt.call(ins, outs) != 0:
        return None
    return tuple(outs)


def _compile(arrays, params):
    from ..ops.control import SCAN
    from ..tape import ACTIVE, Tape
    from .lower import Unsupported
    from .native import NativeTape, build
    from ..runtime import CompileError
    t = Tape(name="loop")
    ins = [t.add_input(a.shape, a.dtype, False, f"a{k}") for k, a in enumerate(arrays)]
    p = {k: v for k, v in params.items() if k != "guard_base"}
    avals = SCAN.shape(*[_Aval(a.shape, a.dtype) for a in arrays], **p)
    t.outputs = t.append_multi(SCAN.code, ins, p, [(tuple(v.shape), v.dtype) for v in avals],
                               [ACTIVE] * len(avals))
    try:
        nt = NativeTape(t)
        build([nt], name_hint="loop")
    except (Unsupported, CompileError):
        return None
    return nt


class _Aval:
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype
