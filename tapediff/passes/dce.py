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
    new, remap = Tape.with_inputs_of(tape)
    for i in range(n):
        if keep[i]:
            new.copy_range(tape, i, i + 1, remap)
    new.outputs = [new.map_slot(tape, s, remap) for s in tape.outputs]
    new.out_treedef = tape.out_treedef
    new.closed = True
    return new



