"""Draw a checkpointing schedule with matplotlib (an optional dependency).

The upper panel shows, against the work done so far (primal plus adjoint
steps), which step each action works on: advances as grey lines, stored
states as blue triangles, restores as blue dots, stored tapes as green
squares and adjoint steps as red crosses -- the familiar saw-tooth of
revolve. The lower panel shows the slots filled with states and with tapes.

Examples
--------
>>> import importlib.util
>>> from tapediff.checkpoint import revolve
>>> if importlib.util.find_spec("matplotlib"):      # an optional dependency
...     fig = plot_schedule(revolve(30, 4))         # or plot_schedule(sched, "schedule.png")
...     print(fig.axes[1].get_ylabel())
... else:
...     print("slots")
slots
"""
from __future__ import annotations

from .schedule import Advance, Free, Restore, Reverse, ReverseTape, Store, StoreTape

__all__ = ["plot_schedule"]


def _matplotlib():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("Schedule.plot needs matplotlib, which is not installed: "
                          "pip install matplotlib") from None
    return Figure


def _trace(schedule):
    """Per action kind, the (work, step) points; and the slot-count curve."""
    points = {k: ([], []) for k in ("advance", "store", "restore", "tape", "reverse")}
    slots_x, states, tapes = [0], [0], [0]
    work, held, kinds = 0, [0, 0], {}

    def mark(kind, n):
        points[kind][0].append(work)
        points[kind][1].append(n)

    for a in schedule:
        kind = type(a)
        if kind is Advance:
            xs, ys = points["advance"]
            xs += [work, work + a.n1 - a.n0, None]      # None breaks the line
            ys += [a.n0, a.n1, None]
            work += a.n1 - a.n0
        elif kind is Store or kind is StoreTape:
            tape = kind is StoreTape
            mark("tape" if tape else "store", a.n)
            kinds[a.slot] = tape
            held[tape] += 1
            work += tape
        elif kind is Restore:
            mark("restore", a.n)
        elif kind is Reverse or kind is ReverseTape:
            work += 1 + (kind is Reverse)
            mark("reverse", a.n)
        elif kind is Free:
            held[kinds.pop(a.slot)] -= 1
        slots_x.append(work)
        states.append(held[0])
        tapes.append(held[1])
    return points, (slots_x, states, tapes)


def plot_schedule(schedule, path=None, ax=None):
    """Plot ``schedule``; save it to ``path`` if given; return the figure.

    Parameters
    ----------
    schedule : Schedule
    path : str or path-like, optional
        File to save to (format from the suffix, e.g. ``.png``, ``.pdf``).
    ax : pair of matplotlib Axes, optional
        Draw into ``ax[0]`` (steps) and ``ax[1]`` (slots) instead of a new
        figure.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        When matplotlib is not installed (the message says ``pip install
        matplotlib``).

    Examples
    --------
    >>> import importlib.util
    >>> from tapediff.checkpoint import mixed
    >>> if importlib.util.find_spec("matplotlib"):      # an optional dependency
    ...     fig = plot_schedule(mixed(40, 5))
    ...     print(fig.axes[0].get_ylabel())
    ... else:
    ...     print("time step")
    time step
    """
    Figure = _matplotlib()
    if ax is None:
        fig = Figure(figsize=(9, 6), constrained_layout=True)
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    else:
        top, bottom = ax
        fig = top.figure
    points, (sx, states, tapes) = _trace(schedule)
    style = {"advance": dict(color="0.6", lw=1),
             "store": dict(marker="^", color="tab:blue", ls="none", ms=5),
             "restore": dict(marker="o", color="tab:blue", ls="none", ms=3),
             "tape": dict(marker="s", color="tab:green", ls="none", ms=4),
             "reverse": dict(marker="x", color="tab:red", ls="none", ms=4)}
    labels = {"advance": "advance", "store": "store state", "restore": "restore state",
              "tape": "store tape", "reverse": "adjoint step"}
    for kind, (xs, ys) in points.items():
        if xs:
            top.plot(xs, ys, label=labels[kind], **style[kind])
    top.set_ylabel("time step")
    top.set_title(f"{schedule.name}: {schedule.n_steps} steps, {schedule.snapshots} slots, "
                  f"{schedule.forward_steps} primal steps")
    top.legend(loc="upper right", fontsize="small")
    bottom.step(sx, states, where="post", label="states held", color="tab:blue")
    if any(tapes):
        bottom.step(sx, tapes, where="post", label="tapes held", color="tab:green")
    bottom.set_xlabel("work done (primal + adjoint steps)")
    bottom.set_ylabel("slots")
    bottom.legend(loc="upper right", fontsize="small")
    if path is not None:
        fig.savefig(path)
    return fig
