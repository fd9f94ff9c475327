"""Interpreted replay of a tape with NumPy: the oracle for every backend.

:class:`Plan` turns a tape into a list of steps once; :meth:`Plan.run` then
replays it on new inputs. Planning decides

* when each slot dies, so large intermediates are freed as soon as possible;
* which writes may update their base in place: the base must be memory the
  tape allocated itself (never an input, a constant or a view of one), and no
  other live slot may share that memory afterwards. Filling an array element
  by element therefore stays O(n) on replay.

Guards run in order with everything else; a failed guard raises
:class:`~tapediff.tracer.GuardFailed` (numbered in the order the guards would
run in the unrolled program) before any result reaches the caller.
"""
import numpy as np

from .ops.indexing import GUARD_OUTCOME
from .ops.registry import OPS
from .tape import CONSTANT, INPUT, RESULT, flat_guards
from .tracer import GuardFailed



class Plan:
    """Executable form of a tape for the NumPy interpreter."""

    def __init__(self, tape, inplace=True, free=True, owned=()):
        """``owned``: input slots whose memory the caller hands over (a loop's
        carried values): they may be updated in place once dead."""
        self.tape = tape
        n_slots = tape.n_slots
        n = len(tape)
        # last use of each slot (outputs live to the end)
        last = [-1] * n_slots
        for i in range(n):
            for a in tape.args[tape.argp[i]:tape.argp[i + 1]]:
                last[a] = i
        end = n
        for s in tape.outputs:
            last[s] = end
        # alias roots: views share their argument's memory
        root = list(range(n_slots))
        # fresh[s]: s owns memory the tape allocated (not a view, input or constant)
        fresh = bytearray(n_slots)
        root_until = {}
        owned = set(owned)
        for s in range(n_slots):
            if tape.skind[s] != RESULT and s not in owned:
                root_until[s] = end          # inputs and constants are never written
        for s in owned:
            fresh[s] = 1
            root_until[s] = last[s]      # may be updated in place only after its last read
        steps = []
        n_guards = 0
        for i in range(n):
            op = OPS[tape.op[i]]
            out = tape.out[i]
            args = tuple(tape.args[tape.argp[i]:tape.argp[i + 1]])
            params = tape.attrs[tape.attr[i]]
            fn = op.forward
            if op.name in GUARD_OUTCOME:
                steps.append((_guard, -1, args, {"fn": fn, "params": params,
                                                 "ordinal": n_guards,
                                                 "outcome": GUARD_OUTCOME[op.name]}, 1))
                n_guards += 1
                continue
            nout = params.get("nout", 1)
            multi = "nout" in params          # results come back as a tuple
            if multi:
                params = {k: v for k, v in params.items() if k != "nout"}
                if "body" in params:      # a loop: its guards are numbered after ours
                    params["guard_base"] = n_guards
                    n_guards += params["trips"] * flat_guards(params["body"])
            for o in range(out, out + nout):
                fresh[o] = not op.view
            if inplace and op.write and op.inplace is not None:
                base = args[0]
                r = root[base]
                if fresh[base] and root_until.get(r, -1) <= i:
                    fn = op.inplace
                    root[out] = r
            if op.view and args:
                root[out] = root[args[0]]
            for o in range(out, out + nout):
                r = root[o]
                root_until[r] = max(root_until.get(r, -1), last[o])
            # (params None: the single-output fast path of _execute; an op with
            # several outputs keeps its dict, empty or not)
            steps.append((fn, out, args, params if multi else params or None,
                          nout if multi else 0))
        # free dead slots right after their last use
        frees = [[] for _ in range(n)]
        if free:
            for s in range(n_slots):
                if tape.skind[s] == RESULT and 0 <= last[s] < end:
                    frees[last[s]].append(s)
        self.steps = [st[:4] + (tuple(frees[i]), st[4]) for i, st in enumerate(steps)]
        template = [None] * n_slots
        for s, v in tape.consts.items():
            template[s] = v
        self.template = template
        self.inputs = list(tape.inputs)
        self.outputs = list(tape.outputs)
        # outputs that may share memory with an input or a constant must be copied
        self.copy_out = [tape.skind[root[s]] in (INPUT, CONSTANT) or root[s] != s
                         for s in tape.outputs]
        # outputs that are memory of their own (not a view, input or constant),
        # and the slot whose memory each output is (itself, or what it updates)
        self.fresh_out = [bool(fresh[s]) and root[s] == s and tape.skind[s] == RESULT
                          for s in tape.outputs]
        self.out_roots = [root[s] for s in tape.outputs]

    def run(self, inputs, keep_all=False):
        """Replay on ``inputs`` (flat list matching ``tape.inputs``).

        Returns the list of output values, or every slot's value when
        ``keep_all`` (used to build a reverse sweep on concrete values; plan
        with ``inplace=False, free=False`` for that).
        """
        vals = list(self.template)
        for s, v in zip(self.inputs, inputs):
            vals[s] = v
        _execute(self.steps, vals)
        if keep_all:
            return vals
        return [np.copy(vals[s]) if c else vals[s]
                for s, c in zip(self.outputs, self.copy_out)]

    def run_loop(self, carry, inv, xs_of, trips, reverse):
        """Run a loop body ``trips`` times (the ``scan`` primitive's forward).

        ``xs_of(k)`` gives iteration k's per-iteration inputs. Returns the
        final carried values and, per y output, the list of its values.
        Within the loop nothing is copied: a body never writes its inputs in
        place, so a value carried from one iteration to the next is safe.
        """
        vals = list(self.template)
        ins = self.inputs
        n_carry = len(carry)
        outs = self.outputs
        c_slots, y_slots = outs[:n_carry], outs[n_carry:]
        ys = [[None] * trips for _ in y_slots]
        steps = self.steps
        nb = len(ins) - n_carry - len(inv)
        head = list(carry) + list(inv)
        for step in range(trips):
            k = trips - 1 - step if reverse else step
            for s, v in zip(ins, head):
                vals[s] = v
            if nb:
                for s, v in zip(ins[len(head):], xs_of(k)):
                    vals[s] = v
            try:
                _execute(steps, vals)
            except GuardFailed as e:
                e.step = step
                raise
            head[:n_carry] = [vals[s] for s in c_slots]
            for j, s in enumerate(y_slots):
                ys[j][k] = vals[s]
        return head[:n_carry], ys


def _execute(steps, vals):
    """Run planned steps on the value list ``vals`` (the interpreter's inner loop)."""
    for fn, out, args, params, dead, nout in steps:
        if params is None:
            vals[out] = fn(*[vals[a] for a in args])
        elif out < 0:
            fn(*[vals[a] for a in args], **params)
        elif nout:
            vals[out:out + nout] = fn(*[vals[a] for a in args], **params)
        else:
            vals[out] = fn(*[vals[a] for a in args], **params)
        if dead:
            for d in dead:
                vals[d] = None


def _guard(*args, fn, params, ordinal, outcome):
    if not fn(*args, **params):
        raise GuardFailed(ordinal, outcome(args[0]))


def loop_plan_of(body, n_carry):
    """The cached plan of a loop body, and which carried values the loop owns.

    A carried value is owned when the body's new value for it is memory the
    body allocated (not a view, an input or a constant) and no other carried
    output is the same slot. The loop copies owned initial values once, and
    the body may then update them in place (an element-by-element fill of a
    carried array stays O(n) per loop, not per iteration).
    """
    cached = body.__dict__.get("_loop_plan")
    if cached is None or cached[2] != n_carry:
        ins, outs = body.inputs[:n_carry], body.outputs[:n_carry]
        owned = [outs.count(o) == 1 for o in outs]
        for _ in range(n_carry + 1):      # drop candidates until it is consistent
            plan = Plan(body, owned=[s for s, o in zip(ins, owned) if o])
            # owned: the new value is fresh memory, or carry j's own memory
            # updated in place (root is input j), and no other carry shares it
            new = [owned[j] and (plan.fresh_out[j] or plan.out_roots[j] == ins[j])
                   and plan.out_roots.count(plan.out_roots[j]) == 1 for j in range(n_carry)]
            if new == owned:
                break
            owned = new
        cached = body._loop_plan = (plan, owned, n_carry)
    return cached[0], cached[1]
