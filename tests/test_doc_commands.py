"""The commands in README.md and docs/ write over no tracked file unless they say so.

A reader pastes a command from the repository's root. Whatever it writes by default (``dp experiment``'s
``experiment.png``, ``dp paper``'s ``paper/``) must not be a committed file, and a command that names a
committed file as its output is one that made that file, listed in `REGENERATES` (its doc says it rewrites
it). The paths each command writes are read from its own argument parser, defaults included (``dp``'s and
each benchmark's), and from the file names the Python examples save to.
"""

import argparse
import importlib.util
import inspect
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
OUTPUT_OPTIONS = ("out", "plot", "plots", "save")  # the options by which dp's commands and benchmarks write

# (doc, output) -> the committed files that command made, and rewrites when run again (the doc says so)
REGENERATES = {
    ("docs/experiment.md", "docs/experiment.png"): "dp experiment --seeds 50 --plot docs/experiment.png",
    ("docs/cnn.md", "docs/paper"): "dp paper --experiments cnn --out docs/paper",
    ("docs/training.md", "docs"): "dp train --plots docs: training_curves.png, batch_norm_histograms.png",
    ("docs/monitor.md", "docs/monitor.png"): "the example that draws it",
    ("docs/monitor.md", "docs/monitor_tables.md"): "the example that writes it",
    ("docs/speed.md", "docs/speed/monitor.md"): "benchmarks/monitor.py",
    ("docs/why/santurkar2018.md", "docs/paper/santurkar2018"): "dp paper santurkar2018 --quick",
    ("docs/why/santurkar2018.md", "docs/paper/santurkar2018/full"): "dp paper santurkar2018",
    ("docs/why/wu2018.md", "docs/paper/wu2018"): "dp paper wu2018 --quick",
    ("docs/why/wu2018.md", "docs/paper/wu2018_full"): "dp paper wu2018",
}

COMMAND = re.compile(
    r"^(?:PYTHONPATH=\S+\s+)?(?:\S*/)?"
    r"(?:python3?\s+(?:-m\s+(?P<module>dp)|(?P<script>benchmarks/\w+\.py))|(?P<dp>dp)(?=\s+(?:train|evaluate|experiment|paper)(?:\s|$)))"
    r"(?P<args>[^`#]*)"
)
SAVED = re.compile(  # a Python example writing a file: open(NAME, "w"), x.save(NAME), f(model, NAME), a figure
    r"""(?:open\(\s*["'](?P<opened>[^"']+)["']\s*,\s*["'][wa]"""
    r"""|(?:\.save|savefig|_figure)\(\s*(?:[\w.]+,\s*)?["'](?P<saved>[^"']+)["'])"""
)


def tracked():
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no tracked files to protect")
    return set(listed.split())


def commands(text):
    """The shell commands of a Markdown text: its code spans and the lines of its code blocks, each
    (program, arguments) with program "dp" or a benchmark's path; usage lines (with [options] or
    placeholders such as PATH) left out."""
    spans = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", text)]
    lines = [line.strip() for line in text.splitlines() if line.startswith("    ") or not line.startswith("`")]
    found = []
    for candidate in spans + lines:
        match = COMMAND.match(candidate)
        if not match or re.search(r"\[|\.\.\.|\b[A-Z]+\b|\$", match["args"]):
            continue
        program = match["script"] or "dp"
        found.append((program, shlex.split(match["args"].replace("\\", ""))))
    return found


class Parsed(Exception):
    def __init__(self, namespace):
        self.namespace = namespace


def parsed(program, arguments):
    """The options (defaults included) the program's own parser makes of ``arguments``; None when
    they are not a whole command line (a fragment quoted in prose, such as `dp train --plots`)."""
    if program == "dp":
        from dp.cli.command import _parser

        try:
            return _parser().parse_args(arguments)
        except SystemExit:
            return None
    original = argparse.ArgumentParser.parse_args

    def stop(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    name = Path(program).stem
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / "benchmarks"))
        patch.setattr(argparse.ArgumentParser, "parse_args", stop)
        patch.setattr(sys, "argv", [program, *arguments])
        spec = importlib.util.spec_from_file_location(f"doc_command_{name}", ROOT / program)
        module = importlib.util.module_from_spec(spec)
        patch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up
        spec.loader.exec_module(module)
        try:
            module.main(arguments) if inspect.signature(module.main).parameters else module.main()
        except Parsed as parsed:
            return parsed.namespace
        except SystemExit:
            return None
    pytest.fail(f"{program} ran past its argument parser")


def overwritten(output, files):
    """The tracked files that writing ``output`` (a file, or a folder a command writes into) replaces."""
    output = Path(output)
    output = str(output.relative_to(ROOT) if output.is_absolute() and output.is_relative_to(ROOT) else output)
    return {f for f in files if f == output or f.startswith(output + "/") and "/" not in f[len(output) + 1 :]}


def outputs(doc):
    text = doc.read_text()
    written = [m["opened"] or m["saved"] for m in SAVED.finditer(text)]
    for program, arguments in commands(text):
        options = parsed(program, arguments)
        if options is not None:
            written += [getattr(options, name) for name in OUTPUT_OPTIONS if getattr(options, name, None)]
    return written


def made_by(doc, output):
    """Whether ``output`` is a committed file the command in ``doc`` made: listed in `REGENERATES`,
    or the doc itself, which starts with the command that wrote it (docs/speed/*.md)."""
    first_line = (ROOT / doc).read_text().split("\n", 1)[0]
    return (doc, output) in REGENERATES or output == doc and bool(COMMAND.match(first_line.strip("`")))


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_no_command_writes_over_a_tracked_file_unless_it_made_it(doc):
    files = tracked()
    name = str(doc.relative_to(ROOT))
    wrong = {
        str(output): sorted(overwritten(output, files))
        for output in outputs(doc)
        if overwritten(output, files) and not made_by(name, str(output).removeprefix("./"))
    }
    assert not wrong, f"{name}: commands that write over committed files (write elsewhere): {wrong}"


def test_the_commands_are_found_and_read_with_their_defaults():
    text = (ROOT / "docs" / "experiment.md").read_text()
    found = commands(text)
    assert ("dp", ["paper", "--out", "paper"]) in found
    assert ("dp", ["experiment", "--seeds", "50", "--plot", "docs/experiment.png"]) in found
    assert parsed("dp", ["experiment"]).plot == "experiment.png"  # the default: not a tracked file
    speed = parsed("benchmarks/step.py", ["--repeats", "5", "--out", "step.md"])
    assert (speed.out, speed.plot) == ("step.md", None)  # the timing writes no figure unless asked
    assert overwritten("docs/paper", {"docs/paper/figure1.md", "docs/paper/wu2018/batch_size.md"}) == {
        "docs/paper/figure1.md"
    }
    assert overwritten(ROOT / "mutation-report.json", {"mutation-report.json"}) == {"mutation-report.json"}
    assert SAVED.findall('dp.plots.monitor_figure("docs/monitor.png", monitor)') == [("", "docs/monitor.png")]


def test_a_default_output_on_a_tracked_file_is_caught(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("Run `dp experiment --seeds 3` and look at the figure.\n")
    assert outputs(doc) == ["experiment.png"]
    assert overwritten("experiment.png", {"experiment.png"}) == {"experiment.png"}
