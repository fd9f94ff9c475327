"""Dead-code elimination: keep what the outputs and the guards need."""


from ..tape import Tape


def compact(tape):
    """A new tape holding only the live instructions, slots renumbered densely.

    Guards are always live (they protect the result), and so is everything
    they read.
    """
    n = len(tape)
    live_slot = bytearray(tape.n_slots)
    for s in tape.outputs:
        live_slot[s] = 1
    keep = bytearray(n)
    for i in range(n - 1, -1, -1):
        outs = tape.outs(i)
        if not outs or any(live_slot[o] for o in outs):
            keep[i] = 1
            for a in tape.args[tape.argp[i]:tape.argp[i + 1]]:
                live_slot[a] = 1
    for s in tape.inputs:
        live_slot[s] = 1
    if all(keep) and all(live_slot[s] for s in tape.consts):
        return tape              # nothing dead: no copy
    new = Tape(tape.name, tape.level)
    remap = [-1] * tape.n_slots
    # inputs first, in order, then constants and results as they appear
    for s in tape.inputs:
        remap[s] = new.add_input(tape.shape(s), tape.dtype(s), tape.active(s), "")
    new.input_names = list(tape.input_names)
    pending_consts = sorted(s for s in tape.consts if live_slot[s])
    for s in pending_consts:
        remap[s] = new.add_const(tape.consts[s], tape.shape(s), tape.dtype(s), tape.sites.get(s))
    for i in range(n):
        if not keep[i]:
            continue
        op_code = tape.op[i]
        out = tape.out[i]
        args = [remap[a] for a in tape.args[tape.argp[i]:tape.argp[i + 1]]]
        params = tape.attrs[tape.attr[i]]
        if out < 0:
            new.append(op_code, args, params, None, None, 0)
            new.guards.append(len(new) - 1)
        elif "nout" in params:
            outs = tape.outs(i)
            slots = new.append_multi(op_code, args,
                                     {k: v for k, v in params.items() if k != "nout"},
                                     [tape.types[tape.stype[o]] for o in outs],
                                     [tape.sclass[o] for o in outs])
            for o, s2 in zip(outs, slots):
                remap[o] = s2
        else:
            remap[out] = new.append(op_code, args, params, tape.shape(out), tape.dtype(out),
                                    tape.sclass[out])
    new.outputs = [remap[s] for s in tape.outputs]
    new.out_treedef = tape.out_treedef
    new.closed = True
    return new



