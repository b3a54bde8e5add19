"""`fit`'s step today against `fit`'s step at another commit, on the same machine, in turns.

    PYTHONPATH=src python benchmarks/against.py --commit 03eca92 [--workloads paper,wide-f64] [--turns 3]

Each turn runs benchmarks/step.py (one BLAS thread, no references but the floor) once with
today's source and once with the commit's (checked out into a temporary git worktree, removed
at the end), in new processes. The two runs' own floors absorb the machine's drift: the
result is the ratio of their ``dp/floor`` ratios, today over then, per workload, the median
over the turns (above 1: today's step is slower). Each run's table is printed as it comes.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ("dp", "dp graph")  # rows of step.py's table at every commit compared: "{row} us/step" columns
FLOOR = "NumPy floor us/step"
HEADER = re.compile(r"^\| workload \| (?P<cells>.*)\|$", re.M)
ROW = re.compile(r"^\| (?P<workload>[\w-]+) \| (?P<cells>.*)\|$", re.M)


def dp_over_floor(source: Path, benchmarks: Path, workloads: str, repeats: int, row: str) -> dict[str, float]:
    """{workload: ``row``'s us/step over floor us/step} from one run of step.py on ``source``."""
    command = [sys.executable, str(benchmarks / "step.py"), "--workloads", workloads, "--repeats", str(repeats),
               "--threads", "1"]  # fmt: skip
    env = {"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    print(out)
    return ratios_in(out, row)


def ratios_in(report: str, row: str = "dp") -> dict[str, float]:
    """{workload: ``row``'s us/step ("dp" or "dp graph") over the floor's, from a step.py report's table.
    The columns are found by their headers, so today's table and an older commit's (without the
    "dp fused" column, say) are read alike."""
    found = HEADER.search(report)
    header = [c.strip() for c in found.group("cells").split("|")]
    column, floor = header.index(f"{row} us/step"), header.index(FLOOR)
    table = report[found.start() :].split("\n\n", 1)[0]  # the first table only: other tables follow it
    ratios = {}
    for match in ROW.finditer(table):
        cells = [c.strip().replace(",", "") for c in match.group("cells").split("|")]
        if cells[0].replace(".", "").isdigit():  # a workload's row, not the header or the rule below it
            ratios[match.group("workload")] = float(cells[column]) / float(cells[floor])
    return ratios


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commit", required=True)
    parser.add_argument("--workloads", default="seed,paper,wide-f64")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--row", choices=COLUMNS, default="dp", help="dp: fit's step; dp graph: loss.grad(1) bare")
    arguments = parser.parse_args(argv)
    ratios: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        then = Path(folder) / "then"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(then), arguments.commit], check=True,
                       capture_output=True)  # fmt: skip
        try:
            for _ in range(arguments.turns):
                runs = [(ROOT / "src", ROOT / "benchmarks"), (then / "src", then / "benchmarks")]
                now, old = (dp_over_floor(*run, arguments.workloads, arguments.repeats, arguments.row) for run in runs)
                for name in now.keys() & old.keys():
                    ratios.setdefault(name, []).append(now[name] / old[name])
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(then)], check=True)
    print(f"| workload | {arguments.row} today / at {arguments.commit} (each over its own floor), median of "
          f"{arguments.turns} turns | turns |\n|---|--:|---|")  # fmt: skip
    for name, values in sorted(ratios.items()):
        print(f"| {name} | {statistics.median(values):.3f} | {', '.join(f'{v:.3f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
