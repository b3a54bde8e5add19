"""What the studies' `dp.train.Monitor`s saw, written the same way for each: the Markdown table
of every monitored run (`Monitor.table`) in one file, and one figure of them side by side
(`dp.tools.plots.monitors_figure`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

NAME = "monitor"  # the files written: monitor.md and monitor.png


def series_only(monitor: Any) -> Any:
    """``monitor`` (a `dp.train.Monitor`, or None) without its snapshots, the pre-activations of
    the first and last recorded steps, which `report`'s figure of several runs never draws: a
    CNN's are tens of megabytes, which would travel back from each worker for nothing."""
    if monitor is not None:
        monitor.snapshots = {}
    return monitor


def report(monitors: Mapping[str, Any], out: Path, title: str, header: str) -> str:
    """Write ``monitor.md`` (the title, ``header``, each run's table under its name, a link
    to the figure) and ``monitor.png`` to ``out``, atomically; ``monitors`` maps a run's name
    to its `dp.train.Monitor`. Return the text to print: the title and where the tables are
    (a row per recorded step and layer, too many to print)."""
    from dp.tools import plots
    from dp.tools.files import write_text

    if not monitors:
        raise ValueError("monitored.report: no monitored run to report")
    tables = "\n\n".join(f"### {name}\n\n{monitor.table()}" for name, monitor in monitors.items())
    write_text(out / f"{NAME}.md", f"## {title}\n\n{header}\n\n{tables}\n\n![{title}]({NAME}.png)\n")
    plots.monitors_figure(out / f"{NAME}.png", monitors, title)
    return f"\n## {title}\n\nA table per run ({', '.join(monitors)}): {out / NAME}.md; their figure: {out / NAME}.png"
