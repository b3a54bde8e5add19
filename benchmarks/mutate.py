"""Mutation testing of dp's core: do the tests fail when the code is wrong?

    python benchmarks/mutate.py [--modules node ops ...] [--sample N] [--seed S]
                                [--only-survivors OLD.json] [--list] [--out FILE.json]

Each mutant changes one thing in one module of `MODULES` (`Mutator` lists the kinds:
an operator, a comparison, ``and``/``or``, a number, ``True``/``False``, an ``if``
condition negated, an expression statement or ``+=`` removed, ``return x`` made
``return None``). Decorated functions (the ``@primitive`` operations) are mutated too.
The source files are never touched: each mutant runs in a fresh Python process (this
script, called with ``_run``) whose import hook (`MutantFinder`) hands pytest the mutated
module instead of the real one, and pytest runs only the test modules that cover it,
stopping at the first failure, with hypothesis's seed fixed (a run is reproducible). A
mutant is *killed* (a test failed), *survived* (all passed) or *timeout* (counted as
killed). Mutants that change nothing observable are listed by hand in `EQUIVALENT_TABLE`,
with a reason, and left out of the score.

The report (``--out``, default mutation-report.json) holds each module's score and
every survivor (file:line, the mutation). It takes about an hour on one core for all
modules; ``--sample`` runs a random subset, ``--only-survivors`` re-runs a previous
report's survivors and counts the rest as killed (tests are only ever added).
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# module -> the test modules that cover it, the quickest and most specific first (pytest stops at the first failure)
MODULES = {
    "node": ["test_node.py", "test_course_ops.py", "test_ops.py"],
    "ops": ["test_course_ops.py", "test_node.py", "test_ops.py"],
    "layers": ["test_layers.py", "test_batch_norm_levels.py", "test_course_layers.py", "test_models.py"],
    "losses": ["test_losses.py", "test_models.py"],
    "optim": ["test_optim.py", "test_classic.py", "test_fast.py"],
    "fast": ["test_fast.py", "test_train.py"],
    "train": ["test_train.py", "test_fast.py"],
}
# Mutants that no test can tell from the original, each with the reason: module:line:column | mutation | why.
EQUIVALENT_TABLE = """
node:389:8 | `return False` -> `return None` | _broadcastable's answer is only used as a truth value
node:482:7 | `>` -> `>=` | unbroadcast: g.sum(axis=()) for no extra axes is a copy of g
node:511:69 | `>=` -> `>` | as_value's fast path: the general path returns a 2-D float array as it is too
node:511:83 | `2` -> `3` | as_value's fast path: the general path returns a 2-D float array as it is too
ops:54:71 | `1` -> `0` | the exponent where b == 0, whose result np.where throws away (a**0 is finite too)
ops:107:20 | `>` -> `>=` | leaky_relu's value at 0: both branches give 0
ops:113:43 | `0` -> `1` | elu's negative branch is used only where a <= 0, where min(a, 1) = min(a, 0)
ops:114:20 | `>` -> `>=` | elu's value at 0: both branches give 0
ops:137:20 | `>=` -> `>` | the sigmoid at 0: both branches give 1/2
ops:158:36 | `0` -> `1` | logsumexp's shift for a slice of -inf only: -inf either way
layers:361:74 | `>` -> `>=` | statistics of a 1-row batch are never stored: normalize refuses the batch first
layers:361:87 | `1` -> `0` | statistics of a 1-row batch are never stored: normalize refuses the batch first
layers:400:105 | `False` -> `True` | astype(copy=True) of an array made on that line: a copy no one sees
layers:402:28 | `False` -> `True` | astype(copy=True) of an array made on that line: a copy no one sees
layers:500:39 | `True` -> `False` | a mean of shape (F,) broadcasts against (N, F) as (1, F) does
layers:501:54 | `True` -> `False` | a variance of shape (F,) broadcasts into the (1, F) average
layers:544:35 | `True` -> `False` | a mean of shape (F,) broadcasts against (N, F) as (1, F) does
layers:545:50 | `True` -> `False` | a variance of shape (F,) broadcasts against (N, F) as (1, F) does
layers:554:53 | `True` -> `False` | a column sum of shape (F,) broadcasts against (N, F) as (1, F) does
layers:554:104 | `True` -> `False` | a column sum of shape (F,) broadcasts against (N, F) as (1, F) does
layers:652:11 | `>=` -> `>` | differs only where a uniform draw equals p exactly (probability 2**-53)
losses:66:16 | `1` -> `0` | multiplying the loss by a scale of 1 changes nothing
losses:69:52 | `>=` -> `>` | the sigmoid at z = 0: both branches give 1 / (1 + 1)
losses:109:72 | `False` -> `True` | astype(copy=True) of the labels: a copy no one sees
losses:115:81 | `False` -> `True` | astype(copy=True) of the labels: a copy no one sees
optim:171:78 | `False` -> `True` | astype(copy=True) of an array made on that line: a copy no one sees
optim:196:42 | `False` -> `True` | astype(copy=True) of the gradient: the rules never write into it or keep it
optim:284:54 | `False` -> `True` | astype(copy=True) of an array made on that line: a copy no one sees
optim:322:84 | `False` -> `True` | astype(copy=True) of an array made on that line: a copy no one sees
optim:376:40 | `False` -> `True` | astype(copy=True) of an array made on that line: a copy no one sees
fast:94:92 | `False` -> `True` | astype(copy=True) of the checked labels: the step only reads them
fast:104:45 | `False` -> `True` | astype(copy=True) of the rows: only read (h @ w, h.T @ g), never returned or stored
train:343:26 | `0` -> `1` | the first order is never read: step 0, at position 0, draws one first
train:358:29 | `>=` -> `>` | score_rows == rows: sorting a sample of every row gives np.arange(rows)
train:442:30 | `1` -> `0` | _NoBar.update ignores n: its default is never used
"""
EQUIVALENT = {
    (module, int(line), int(column), mutation): why
    for where, mutation, why in (row.split(" | ") for row in EQUIVALENT_TABLE.strip().splitlines())
    for module, line, column in [where.split(":")]
}


class Mutator(ast.NodeTransformer):
    """Walks a module's tree in a fixed order and numbers every possible mutation; with
    ``target`` set, applies only mutation number ``target``. ``found`` lists them all as
    (line, column, description)."""

    # Each operator and what it becomes: arithmetic, bitwise (masks), comparisons, boolean.
    SWAP = {getattr(ast, a): getattr(ast, b) for a, b in (pair.split() for pair in (
        "Add Sub, Sub Add, Mult Div, Div Mult, FloorDiv Div, Pow Mult, Mod FloorDiv, MatMult Mult, BitAnd BitOr, "
        "BitOr BitAnd, Lt LtE, LtE Lt, Gt GtE, GtE Gt, Eq NotEq, NotEq Eq, Is IsNot, IsNot Is, In NotIn, NotIn In, "
        "And Or, Or And").split(", "))}  # fmt: skip
    SYMBOL = {getattr(ast, name): symbol for name, symbol in (pair.split(" ", 1) for pair in (
        "Add +, Sub -, Mult *, Div /, FloorDiv //, Pow **, Mod %, MatMult @, BitAnd &, BitOr |, Lt <, LtE <=, Gt >, "
        "GtE >=, Eq ==, NotEq !=, Is is, IsNot is not, In in, NotIn not in, And and, Or or").split(", "))}  # fmt: skip

    def __init__(self, target: int | None = None) -> None:
        self.target, self.count, self.found = target, 0, []

    def offer(self, node: ast.AST, description: str, make):
        """Number one possible mutation of ``node``; return ``make()`` if it is the target."""
        index, self.count = self.count, self.count + 1
        self.found.append((node.lineno, node.col_offset, description))
        return make() if index == self.target else None

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        return self._operator(self.generic_visit(node), "op")

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        node = self.generic_visit(node)
        removed = self.offer(node, f"remove `{ast.unparse(node)}`", lambda: ast.Pass())
        return removed or self._operator(node, "op")

    visit_BoolOp = visit_BinOp

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        node = self.generic_visit(node)
        for i, op in enumerate(node.ops):
            new = self.SWAP[type(op)]
            made = self.offer(node, f"`{self.SYMBOL[type(op)]}` -> `{self.SYMBOL[new]}`",
                              lambda i=i, new=new: ast.Compare(node.left, [*node.ops[:i], new(), *node.ops[i + 1:]],
                                                               node.comparators))  # fmt: skip
            if made:
                return made
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        node = self.generic_visit(node)
        if isinstance(node.op, (ast.Not, ast.USub)) and not isinstance(node.operand, ast.Constant):
            return self.offer(node, f"`{ast.unparse(node)}` -> `{ast.unparse(node.operand)}`",
                              lambda: node.operand) or node  # fmt: skip
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, bool):
            new = not value
        elif isinstance(value, (int, float)):
            new = 1 if value == 0 else 0 if value == 1 else value + 1
        else:
            return node
        return self.offer(node, f"`{value!r}` -> `{new!r}`", lambda: ast.Constant(new)) or node

    def visit_If(self, node: ast.If | ast.IfExp) -> ast.AST:  # `if` statements and `a if c else b`
        node = self.generic_visit(node)
        return self.offer(node, f"`if {_short(node.test)}` -> `if not (...)`",
                          lambda: _replaced(node, "test", ast.UnaryOp(ast.Not(), node.test))) or node  # fmt: skip

    visit_IfExp = visit_If

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        if isinstance(node.value, ast.Constant):  # a docstring or `...`
            return node
        node = self.generic_visit(node)
        return self.offer(node, f"remove `{_short(node)}`", lambda: ast.Pass()) or node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        node = self.generic_visit(node)
        if node.value is None or (isinstance(node.value, ast.Constant) and node.value.value is None):
            return node
        return self.offer(node, f"`return {_short(node.value)}` -> `return None`", lambda: ast.Return(None)) or node

    # Not mutated: annotations (strings at run time here) and f-strings (messages).
    def visit_arg(self, node: ast.arg) -> ast.AST:
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        for field in ("decorator_list", "args", "body"):  # not `returns`, an annotation
            setattr(node, field, self.visit(getattr(node, field)) if field == "args" else
                    [self.visit(n) for n in getattr(node, field)])  # fmt: skip
        return node

    visit_JoinedStr = visit_arg

    def _operator(self, node, field):
        old = type(getattr(node, field))
        if old not in self.SWAP:
            return node
        new = self.SWAP[old]
        return self.offer(node, f"`{self.SYMBOL[old]}` -> `{self.SYMBOL[new]}`",
                          lambda: _replaced(node, field, new())) or node  # fmt: skip


def _replaced(node: ast.AST, field: str, value: ast.AST) -> ast.AST:
    new = copy.copy(node)
    setattr(new, field, value)
    return new


def _short(node: ast.AST, width: int = 50) -> str:
    text = ast.unparse(node).replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def mutants(module: str) -> list[tuple[int, int, str]]:
    """Every mutation of ``src/dp/{module}.py``, as (line, column, description), in a fixed order."""
    mutator = Mutator()
    mutator.visit(ast.parse(source_of(module)))
    return mutator.found


def mutant_source(module: str, index: int | None) -> str:
    """The module's source with mutation ``index`` applied (None: none, the baseline)."""
    tree = Mutator(index).visit(ast.parse(source_of(module)))
    return ast.unparse(ast.fix_missing_locations(tree))


def source_of(module: str) -> str:
    return (ROOT / "src" / "dp" / f"{module}.py").read_text()


def run_tests(module: str, source: str, timeout: float) -> tuple[str, float]:
    """Run ``module``'s tests against ``source`` in a fresh process: ("killed" | "survived" | "timeout", seconds)."""
    tests = [str(ROOT / "tests" / t) for t in MODULES[module]]
    options = ["-x", "-q", "-p", "no:cacheprovider", "--hypothesis-seed=0"]  # the same examples every run
    threads = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"{module}.py"
        path.write_text(source)
        # This checkout's dp; one core; a hypothesis database of its own, so one mutant's failing examples
        # are not replayed against the next (nor saved in the checkout).
        environment = {
            **os.environ,
            **threads,
            "PYTHONPATH": str(ROOT / "src"),
            "HYPOTHESIS_STORAGE_DIRECTORY": scratch,
        }
        command = [sys.executable, __file__, "_run", module, str(path), *tests, *options]
        try:
            done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, timeout=timeout)
            outcome = "survived" if done.returncode == 0 else "killed"
        except subprocess.TimeoutExpired:
            outcome = "timeout"
    return outcome, time.perf_counter() - start


class MutantFinder:
    """A `sys.meta_path` finder that serves ``dp.{module}`` from a mutated source file."""

    def __init__(self, module: str, path: str) -> None:
        self.name, self.source = f"dp.{module}", Path(path).read_text()
        self.origin = str(ROOT / "src" / "dp" / f"{module}.py")

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self, origin=self.origin) if fullname == self.name else None

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        module.__file__ = self.origin
        exec(compile(self.source, self.origin, "exec"), module.__dict__)


def run_one(module: str, path: str, pytest_args: list[str]) -> int:
    """In the child process: install the hook, then run pytest."""
    import pytest

    sys.meta_path.insert(0, MutantFinder(module, path))
    return pytest.main(pytest_args)


def run_module(module: str, chosen: list[tuple[int, tuple[int, int, str]]]) -> list[dict]:
    """Run the ``chosen`` mutants of ``module`` (index, (line, column, description)), one at a time."""
    baseline, seconds = run_tests(module, mutant_source(module, None), timeout=600)
    if baseline != "survived":
        sys.exit(f"{module}: the tests fail without any mutation ({baseline}); fix that first")
    results = []
    for n, (index, (line, column, what)) in enumerate(chosen, 1):
        outcome, took = run_tests(module, mutant_source(module, index), timeout=max(3 * seconds, 20))
        reason = EQUIVALENT.get((module, line, column, what))
        results.append({"file": f"src/dp/{module}.py", "line": line, "column": column, "mutation": what,
                        "outcome": outcome, "equivalent": reason})  # fmt: skip
        print(f"[{module} {n}/{len(chosen)}] {outcome:8} {took:5.1f}s  {module}.py:{line}:{column}: {what}", flush=True)
    return results


def score(results: list[dict], carried: int = 0) -> dict:
    """A module's score: killed (timeouts included) over all mutants but the equivalent ones.
    ``carried``: mutants killed in an earlier run and not run again."""
    counted = [r for r in results if not r["equivalent"]]
    killed = carried + sum(r["outcome"] != "survived" for r in counted)
    survivors = [r for r in results if r["outcome"] == "survived"]
    return {"mutants": carried + len(results), "equivalent": len(results) - len(counted), "killed": killed,
            "timeout": sum(r["outcome"] == "timeout" for r in counted),
            "score": round(100 * killed / (carried + len(counted)), 1) if carried + len(counted) else None,
            "survivors": survivors}  # fmt: skip


def main() -> None:
    if sys.argv[1:2] == ["_run"]:
        sys.exit(run_one(sys.argv[2], sys.argv[3], sys.argv[4:]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", nargs="+", choices=list(MODULES), default=list(MODULES))
    parser.add_argument("--sample", type=int, help="run N random mutants per module (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="for --sample")
    parser.add_argument("--only-survivors", type=Path, help="run only the survivors of this earlier report")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--out", type=Path, default=ROOT / "mutation-report.json")
    args = parser.parse_args()
    previous = json.loads(args.only_survivors.read_text())["modules"] if args.only_survivors else None
    report, started = {"modules": {}}, time.perf_counter()
    for module in args.modules:
        chosen, carried = list(enumerate(mutants(module))), 0
        if previous is not None:  # the earlier run's killed mutants are carried over as killed
            earlier = {(s["line"], s["column"], s["mutation"]) for s in previous[module]["survivors"]}
            chosen = [(i, m) for i, m in chosen if m in earlier]  # both of `a * b * c`'s `*` if one survived
            if {m for _, m in chosen} != earlier:
                sys.exit(f"{module}.py changed since {args.only_survivors}: run all its mutants")
            carried = previous[module]["mutants"] - len(chosen)
        if args.sample and args.sample < len(chosen):
            chosen = sorted(random.Random(args.seed).sample(chosen, args.sample))
        if args.list:
            print("\n".join(f"{module}.py:{line}:{column}: {what}" for _, (line, column, what) in chosen))
            continue
        report["modules"][module] = score(run_module(module, chosen), carried)
        report["seconds"] = round(time.perf_counter() - started)
        args.out.write_text(json.dumps(report, indent=1) + "\n")  # after each module: a partial run still reports
    for module, r in report["modules"].items():
        survived = r["mutants"] - r["equivalent"] - r["killed"]
        print(f"{module:7} {r['score']} %: {r['killed']} killed, {survived} survived, {r['equivalent']} equivalent")
    if report["modules"]:
        print(f"{report['seconds']} s")


if __name__ == "__main__":
    main()
