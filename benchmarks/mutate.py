"""Mutation testing of dp's core: do the tests fail when the code is wrong?

    python benchmarks/mutate.py [--modules node ops nn/normalization ...] [--sample N] [--seed S]
                                [--only-survivors OLD.json] [--list] [--out FILE.json]

Each mutant changes one thing in one module of `MODULES` (`Mutator` lists the kinds:
an operator, a comparison, ``and``/``or``, a number, ``True``/``False``, an ``if``
condition negated, an expression statement or ``+=`` removed, ``return x`` made
``return None``, a keyword argument dropped (``f(x, k=v)`` -> ``f(x)``), a parameter's
default changed (a number or bool as above, a string to ``"XX"``), and a string or
f-string in a ``raise`` made ``"XX"``, the words of an error message). Decorated functions
(the ``@primitive`` operations) are mutated too. The source files are never touched: each
mutant runs in a fresh Python process (this script, called with ``_run``) whose import hook
(`MutantFinder`) hands pytest the mutated module (``nn/losses`` is ``dp.nn.losses``)
instead of the real one, and pytest runs only the test modules that cover it, stopping at
the first failure, with hypothesis's seed fixed (a run is reproducible). A mutant is
*killed* (a test failed), *survived* (all passed) or *timeout* (counted as killed).
Mutants that change nothing observable are listed by hand in `EQUIVALENT_TABLE`, with a
reason, and left out of the score; a row names the mutated line by its code, not its
number, so it follows the line when code moves, and a row that matches no mutant stops
the run (`StaleRows`).

The report (``--out``, default mutation-report.json) holds each module's score and
every survivor (file:line, the mutation). ``--sample`` runs a random subset,
``--only-survivors`` re-runs a previous report's survivors and counts the rest as killed
(tests are only ever added).
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib.util
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# module (its path under src/dp, without .py) -> the test modules that cover it, the quickest and most specific first
# (pytest stops at the first failure); the messages and defaults of every public entry point are read by the last two.
CHECKED = ["test_messages.py", "test_defaults.py"]
LAYER_TESTS = ["test_layers.py", "test_batch_norm_levels.py", "test_course_layers.py", "test_models.py"]
MODULES = {
    "node": ["test_node.py", "test_course_ops.py", "test_ops.py", *CHECKED],
    "ops": ["test_course_ops.py", "test_node.py", "test_ops.py", *CHECKED],
    "nn/normalization": [*LAYER_TESTS, "test_normalization.py", *CHECKED],
    "nn/linear": [*LAYER_TESTS, *CHECKED],
    "nn/conv": ["test_conv.py", "test_cnn.py", *CHECKED],
    "nn/dropout": [*LAYER_TESTS, *CHECKED],
    "nn/module": [*LAYER_TESTS, "test_normalization.py", "test_conv.py", "test_train.py", *CHECKED],
    "nn/losses": ["test_losses.py", "test_models.py", *CHECKED],
    "nn/models": [
        "test_models.py",
        "test_layers.py",
        "test_batch_norm_levels.py",
        "test_fused.py",
        "test_cnn.py",
        *CHECKED,
    ],
    "nn/fused": ["test_fused.py", *CHECKED],
    "nn/inputs": [
        "test_layers.py",
        "test_conv.py",
        "test_normalization.py",
        "test_cnn.py",
        "test_models.py",
        "test_bad_input.py",
        *CHECKED,
    ],
    "checks": [
        "test_checks.py",
        "test_bad_input.py",
        "test_conv.py",
        "test_layers.py",
        "test_normalization.py",
        "test_cnn.py",
        "test_losses.py",
        "test_optim.py",
        "test_train.py",
        *CHECKED,
    ],
    "optim": ["test_optim.py", "test_classic.py", "test_train.py", *CHECKED],
    "train": ["test_train.py", "test_histories.py", "test_monitor.py", *CHECKED],
}
# Mutants that no test can tell from the original. Each row is two lines: `module | mutation | why`, then, indented,
# the code of the mutated line as it stands in the module (indentation and a trailing comment left out), so a row
# follows its line when code moves. When a line has several mutants of the same kind, the mutation says which one,
# counted from the left: `(1 of 2)`. A row covers every line of its module with that code. A row that matches no
# mutant is an error (`StaleRows`): the code changed, and whether the mutant is still equivalent must be judged again.
EQUIVALENT_TABLE = """
node | `return False` -> `return None` | _broadcastable's answer is only used as a truth value
    return False
node | `>` -> `>=` | unbroadcast: g.sum(axis=()) for no extra axes is a copy of g
    if extra > 0:
node | `>=` -> `>` | as_value's fast path: the general path returns a 2-D float array as it is too
    if value.__class__ is np.ndarray and value.dtype.kind == "f" and value.ndim >= 2:
node | `2` -> `3` | as_value's fast path: the general path returns a 2-D float array as it is too
    if value.__class__ is np.ndarray and value.dtype.kind == "f" and value.ndim >= 2:
ops | `1` -> `0` (1 of 2) | the exponent where b == 0, whose result np.where throws away (a**0 is finite too)
    return lambda g: g * np.where(b == 0, 0, b * a ** np.where(b == 0, 1, b - 1))
ops | `>` -> `>=` (1 of 2) | leaky_relu's value at 0: both branches give 0
    return np.where(a > 0, a, a * slope), (lambda g: np.where(a > 0, g, g * slope),)
ops | `0` -> `1` | elu's negative branch is used only where a <= 0, where min(a, 1) = min(a, 0)
    below = alpha * np.expm1(np.minimum(a, 0))
ops | `>` -> `>=` (1 of 2) | elu's value at 0: both branches give 0
    return np.where(a > 0, a, below), (lambda g: np.where(a > 0, g, g * (below + alpha)),)
ops | `>=` -> `>` | the sigmoid at 0: both branches give 1/2
    return np.where(a >= 0, 1, e) / (1 + e)
ops | `0` -> `1` | logsumexp's shift for a slice of -inf only: -inf either way
    m = np.where(np.isfinite(m), m, 0)
nn/dropout | `>=` -> `>` | u == p has probability 0 for a uniform u in [0, 1): the same masks
    keep = rng.random(node.shape) >= options["p"]
nn/module | drop `bound=Callable[..., Any]` | a type variable's bound is for type checkers; nothing runs differently
    Method = TypeVar("Method", bound=Callable[..., Any])
nn/module | remove `super().__init_subclass__(**kwargs)` | object.__init_subclass__ does nothing
    super().__init_subclass__(**kwargs)
ops | `1` -> `0` | a 0-d array's axes are empty, and an empty array modulo 0 is empty
    inverse = None if axes is None else np.argsort(np.atleast_1d(axes) % (a.ndim or 1))
nn/fused | default `activation='tanh'` -> `'XX'` | hidden_layer always passes the activation
    def linear_batch_norm(h, w, gamma, beta, centered, var, eps=1e-5, activation="tanh", input_needs_grad=True):
nn/fused | default `activation='tanh'` -> `'XX'` | hidden_layer always passes the activation
    def linear_batch_norm_eval(h, w, gamma, beta, x, mean, var, eps=1e-5, activation="tanh", input_needs_grad=True):
nn/fused | default `eps=1e-05` -> `1.00001` | hidden_layer always passes eps
    def linear_batch_norm(h, w, gamma, beta, centered, var, eps=1e-5, activation="tanh", input_needs_grad=True):
nn/fused | default `eps=1e-05` -> `1.00001` | hidden_layer always passes eps
    def linear_batch_norm_eval(h, w, gamma, beta, x, mean, var, eps=1e-5, activation="tanh", input_needs_grad=True):
nn/fused | drop `out=centered` | xhat in a new array instead of in place: the same values, more memory
    xhat = np.multiply(centered, inv, out=centered)
optim | drop `divide='ignore'` | no rule divides by what can be 0: Adam's and RMSProp's eps is > 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
nn/normalization | drop `statistics=statistics` | the primitive computes x's statistics by the same function
        y = batch_norm_closed_form(x, gamma, beta, eps=self.eps, statistics=statistics, axes=self.axes, r=r, d=d)
nn/normalization | drop `statistics=statistics` | the primitive computes x's statistics by the same function
    return batch_norm_closed_form(x, gamma, beta, eps=eps, statistics=statistics, axes=axes)
nn/normalization | `2` -> `3` | dl/dmu_B's second term is 0 to rounding (the x_i - mu_B sum to 0): 3/2 of it too
    dmean = summed(dxhat, axes) * (-1 / std) + dvar * (-2 * summed(centered, axes) / m)
nn/normalization | `1` -> `0` (2 of 2) | summing also where x's size is 1: a sum of one value, kept as an axis of 1
    return tuple(axis for axis, (own, full) in enumerate(zip(sizes, shape)) if own == 1 and full != 1)
nn/normalization | `0` -> `1` | the default ((0,), 1) refuses only an empty x (C = 0 for axes (1,)): so does `size == 0`
    axes, least = at_least or ((0,), 1)
nn/normalization | `1` -> `0` | the default ((0,), 1) refuses only an empty x (none with least 0): so does `size == 0`
    axes, least = at_least or ((0,), 1)
nn/conv | `False` -> `True` | astype(copy=True) of the weights: a copy no one sees (the primitive never writes into w)
    w = w.astype(x.dtype, copy=False)
nn/conv | drop `copy=False` | astype(copy=True) of the weights: a copy no one sees (the primitive never writes into w)
    w = w.astype(x.dtype, copy=False)
nn/normalization | `False` -> `True` | astype(copy=True) of an array made on that line: a copy no one sees
    self.mean_key: ((1 - momentum) * params[self.mean_key] + momentum * mean).astype(dtype, copy=False),
nn/normalization | `False` -> `True` | astype(copy=True) of an array made on that line: a copy no one sees
    dtype, copy=False
nn/normalization | drop `copy=False` | astype(copy=True) of an array made on that line: a copy no one sees
    self.mean_key: ((1 - momentum) * params[self.mean_key] + momentum * mean).astype(dtype, copy=False),
nn/normalization | drop `copy=False` | astype(copy=True) of an array made on that line: a copy no one sees
    dtype, copy=False
nn/models | drop `axis=1` | the logits are (n, k): softmax's default axis, the last, is axis 1
    return z.sigmoid() if z.shape[1] == 1 else z.softmax(axis=1)
nn/models | `False` -> `True` | astype(copy=True) of the checked labels: a copy no one sees (the losses only read them)
    return losses.from_logits(self.logits(x, train), labels.astype(self.dtype, copy=False), scale)
nn/models | drop `copy=False` | astype(copy=True) of the checked labels: a copy no one sees (the losses only read them)
    return losses.from_logits(self.logits(x, train), labels.astype(self.dtype, copy=False), scale)
nn/models | drop `kernel=(2, 2)` | max_pool's default kernel is (2, 2): the same pool
                activate(before_activation(conv, norm, h, train, seen), activation), kernel=(2, 2), stride=(2, 2)
nn/models | drop `stride=(2, 2)` | max_pool's default stride is (2, 2): the same pool
                activate(before_activation(conv, norm, h, train, seen), activation), kernel=(2, 2), stride=(2, 2)
checks | `False` -> `True` | astype(copy=True) of the checked labels: a copy no one sees (every caller only reads them)
    return y.reshape(-1, 1).astype(np.float64, copy=False)
checks | drop `copy=False` | astype(copy=True) of the checked labels: a copy no one sees (every caller only reads them)
    return y.reshape(-1, 1).astype(np.float64, copy=False)
checks | `False` -> `True` | astype(copy=True) of the checked labels: a copy no one sees (every caller only reads them)
    return y.astype(np.float64, copy=False)
checks | drop `copy=False` | astype(copy=True) of the checked labels: a copy no one sees (every caller only reads them)
    return y.astype(np.float64, copy=False)
checks | `>` -> `>=` | s - 1 for a row sum s near 1 is exact, a multiple of 2**-53 (coarser in float32): never 1e-6
    if (y < 0).any() or (np.abs(y.sum(axis=1) - 1) > 1e-6).any():
nn/dropout | `>=` -> `>` | differs only where a uniform draw equals p exactly (probability 2**-53)
    keep = rng.random(node.shape) >= options["p"]
nn/losses | `1` -> `0` | multiplying the loss by a scale of 1 changes nothing
    if scale != 1:
nn/losses | `>=` -> `>` | the sigmoid at z = 0: both branches give 1 / (1 + 1)
    return loss, (lambda g: (g * scale) * (np.where(z >= 0, 1.0, e) / (1 + e) - y), None, None)
nn/losses | `False` -> `True` | astype(copy=True) of the labels: a copy no one sees
    return checks.labels(_array(y), z.shape[0], 1).astype(z.dtype, copy=False)
nn/losses | drop `copy=False` | astype(copy=True) of the labels: a copy no one sees
    return checks.labels(_array(y), z.shape[0], 1).astype(z.dtype, copy=False)
nn/losses | `False` -> `True` | astype(copy=True) of the labels: a copy no one sees
    return checks.labels(_array(y), z.shape[0], z.shape[1]).astype(z.dtype, copy=False)
nn/losses | drop `copy=False` | astype(copy=True) of the labels: a copy no one sees
    return checks.labels(_array(y), z.shape[0], z.shape[1]).astype(z.dtype, copy=False)
optim | `False` -> `True` | astype(copy=True) of an array made on that line: a copy no one sees
    return (new - (self.lr * self.weight_decay) * p).astype(p.dtype, copy=False), new_state
optim | drop `copy=False` | astype(copy=True) of an array made on that line: a copy no one sees
    return (new - (self.lr * self.weight_decay) * p).astype(p.dtype, copy=False), new_state
optim | `False` -> `True` | astype(copy=True) of the gradient: the rules never write into it or keep it
    return g.astype(p.dtype, copy=False)
optim | drop `copy=False` | astype(copy=True) of the gradient: the rules never write into it or keep it
    return g.astype(p.dtype, copy=False)
optim | `False` -> `True` | astype(copy=True) of an array made on that line: a copy no one sees
    return (p - self.lr * v).astype(p.dtype, copy=False), {"velocity": v}
optim | drop `copy=False` | astype(copy=True) of an array made on that line: a copy no one sees
    return (p - self.lr * v).astype(p.dtype, copy=False), {"velocity": v}
optim | `False` -> `True` | astype(copy=True) of an array made on that line: a copy no one sees
    return (p - self.lr * g / (np.sqrt(s) + self.epsilon)).astype(p.dtype, copy=False), {"square_average": s}
optim | drop `copy=False` | astype(copy=True) of an array made on that line: a copy no one sees
    return (p - self.lr * g / (np.sqrt(s) + self.epsilon)).astype(p.dtype, copy=False), {"square_average": s}
optim | `False` -> `True` | astype(copy=True) of an array made on that line: a copy no one sees
    return new.astype(p.dtype, copy=False), {"m": m, "v": v, "step": t}
optim | drop `copy=False` | astype(copy=True) of an array made on that line: a copy no one sees
    return new.astype(p.dtype, copy=False), {"m": m, "v": v, "step": t}
train | `0` -> `1` | the first order is never read: step 0, at position 0, draws one first
    order = np.arange(0)
train | `>=` -> `>` | score_rows == rows: sorting a sample of every row gives np.arange(rows)
    if score_rows is None or score_rows >= rows:
train | default `n=1` -> `0` | _NoBar.update ignores n: its default is never used
    def update(self, n: int = 1) -> None: ...
"""


class StaleRows(Exception):
    """Rows of the equivalent table that match no mutant of their module."""


def equivalent_rows(table: str) -> list[tuple[str, str, str, int, int, str]]:
    """The rows of ``table``: (module, code, mutation, which, of how many, why)."""
    lines = table.strip().splitlines()
    rows = []
    for header, code in zip(lines[::2], lines[1::2]):
        if not code.startswith("    ") or header.startswith(" ") or header.count(" | ") != 2:
            raise ValueError(f"an equivalent row is `module | mutation | why`, then its indented code: {header!r}")
        module, mutation, why = header.split(" | ")
        match = re.fullmatch(r"(.*) \((\d+) of (\d+)\)", mutation)
        which, count = (int(match[2]), int(match[3])) if match else (1, 1)
        rows.append((module, code.strip(), match[1] if match else mutation, which, count, why))
    if len(lines) % 2:
        raise ValueError(f"the equivalent row {lines[-1]!r} has no code line")
    return rows


def code_lines(source: str) -> list[str]:
    """Each line of ``source`` as an equivalent row names it: without indentation and trailing comment."""
    lines = source.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            row, column = token.start
            lines[row - 1] = lines[row - 1][:column]
    return [line.strip() for line in lines]


def equivalents(module: str, source: str, table: str = EQUIVALENT_TABLE) -> dict[tuple[int, int, str], str]:
    """The mutants of ``source`` (module ``module``) that ``table`` sets aside, (line, column, mutation) -> why.
    Raises `StaleRows` if one of the module's rows matches no mutant."""
    code, on_line = code_lines(source), {}  # (line, mutation) -> its mutants there, left to right
    for line, column, what in sorted(Mutator.all(source), key=lambda m: m[:2]):  # sorted keeps ties in tree order
        on_line.setdefault((line, what), []).append((line, column, what))
    chosen, stale = {}, []
    for name, text, what, which, count, why in equivalent_rows(table):
        if name != module:
            continue
        hits = [
            mutants[which - 1]
            for (line, kind), mutants in on_line.items()
            if kind == what and code[line - 1] == text and len(mutants) == count
        ]
        if not hits:
            stale.append(f"{what} ({which} of {count}) on `{text}`")
        chosen.update(dict.fromkeys(hits, why))
    if stale:
        raise StaleRows(f"{module}: equivalent rows that match no mutant (judge them again): " + "; ".join(stale))
    return chosen


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

    @classmethod
    def all(cls, source: str) -> list[tuple[int, int, str]]:
        """Every mutation of ``source``, as (line, column, description), in a fixed order."""
        mutator = cls()
        mutator.visit(ast.parse(source))
        return mutator.found

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

    def visit_Call(self, node: ast.Call) -> ast.AST:  # a keyword argument dropped: `f(x, k=v)` -> `f(x)`
        node = self.generic_visit(node)
        for keyword in node.keywords:
            if keyword.arg is None:  # `**options`
                continue
            made = self.offer(keyword, f"drop `{keyword.arg}={_short(keyword.value, 30)}`",
                              lambda keyword=keyword: _replaced(node, "keywords", [k for k in node.keywords
                                                                                  if k is not keyword]))  # fmt: skip
            if made:
                return made
        return node

    def visit_arguments(self, node: ast.arguments) -> ast.AST:  # a default number, bool or string changed
        positional = [*node.posonlyargs, *node.args]
        with_default = positional[len(positional) - len(node.defaults) :]
        named = [*zip(with_default, node.defaults), *zip(node.kwonlyargs, node.kw_defaults)]
        for arg, default in named:
            if default is None:  # a keyword-only argument without a default
                continue
            old = _literal(default)
            if old is None:
                self.visit(default)
                continue
            new = _changed(old)
            made = self.offer(default, f"default `{arg.arg}={old!r}` -> `{new!r}`", lambda new=new: ast.Constant(new))
            if made:
                _replace(node, default, made)
        return node

    def visit_Raise(self, node: ast.Raise) -> ast.AST:  # a message, or a string in it, replaced by "XX"
        node = self.generic_visit(node)
        for text in _strings(node.exc):
            made = self.offer(text, f"message {_short(text, 40)} -> 'XX'", lambda: ast.Constant("XX"))
            if made:
                _replace(node, text, made)
        return node

    # Not mutated: annotations (strings at run time here), and f-strings and strings but in a `raise`.
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


def _literal(node: ast.AST) -> bool | int | float | str | None:
    """The value of a number, bool or string written as a literal (``-1`` included), or None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _literal(node.operand)
        return -value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if isinstance(node, ast.Constant) and isinstance(node.value, (bool, int, float, str)):
        return node.value
    return None


def _changed(value: bool | int | float | str) -> bool | int | float | str:
    """What a literal becomes: a bool negated, 0 and 1 swapped, another number n + 1, a string "XX"."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return "XX" if value != "XX" else "YY"
    return 1 if value == 0 else 0 if value == 1 else value + 1


def _strings(node: ast.AST | None):
    """The string literals and f-strings in ``node``, outermost only, in a fixed order."""
    if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        yield node
    elif node is not None:
        for child in ast.iter_child_nodes(node):
            yield from _strings(child)


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    """Put ``new`` where ``old`` stands in ``tree``, in place."""
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
            elif isinstance(value, list) and any(v is old for v in value):
                setattr(parent, field, [new if v is old else v for v in value])


def _replaced(node: ast.AST, field: str, value: ast.AST) -> ast.AST:
    new = copy.copy(node)
    setattr(new, field, value)
    return new


def _short(node: ast.AST, width: int = 50) -> str:
    text = ast.unparse(node).replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def mutants(module: str) -> list[tuple[int, int, str]]:
    """Every mutation of ``src/dp/{module}.py``, as (line, column, description), in a fixed order."""
    return Mutator.all(source_of(module))


def mutant_source(module: str, index: int | None) -> str:
    """The module's source with mutation ``index`` applied (None: none, the baseline)."""
    return mutated(source_of(module), index)


def mutated(source: str, index: int | None) -> str:
    """``source`` with its mutation number ``index`` applied (None: none), as `ast.unparse` writes it."""
    tree = Mutator(index).visit(ast.parse(source))
    return ast.unparse(ast.fix_missing_locations(tree))


def path_of(module: str) -> Path:
    """``nn/normalization`` -> src/dp/nn/normalization.py."""
    return ROOT / "src" / "dp" / f"{module}.py"


def source_of(module: str) -> str:
    return path_of(module).read_text()


def run_tests(module: str, source: str, timeout: float) -> tuple[str, float]:
    """Run ``module``'s tests against ``source`` in a fresh process: ("killed" | "survived" | "timeout", seconds)."""
    tests = [str(ROOT / "tests" / t) for t in MODULES[module]]
    options = ["-x", "-q", "-p", "no:cacheprovider", "--hypothesis-seed=0"]  # the same examples every run
    threads = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"{module.replace('/', '.')}.py"
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
    """A `sys.meta_path` finder that serves ``dp.{module}`` (``nn/losses``: ``dp.nn.losses``) from a mutated
    source file."""

    def __init__(self, module: str, path: str) -> None:
        self.name, self.source = "dp." + module.replace("/", "."), Path(path).read_text()
        self.origin = str(path_of(module))

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


def run_module(module: str, chosen: list[tuple[int, tuple[int, int, str]]], equivalent: dict) -> list[dict]:
    """Run the ``chosen`` mutants of ``module`` (index, (line, column, description)), one at a time;
    ``equivalent``: (line, column, description) -> why, for the mutants `EQUIVALENT_TABLE` sets aside."""
    baseline, seconds = run_tests(module, mutant_source(module, None), timeout=600)
    if baseline != "survived":
        sys.exit(f"{module}: the tests fail without any mutation ({baseline}); fix that first")
    results = []
    for n, (index, (line, column, what)) in enumerate(chosen, 1):
        outcome, took = run_tests(module, mutant_source(module, index), timeout=max(3 * seconds, 20))
        results.append({"file": f"src/dp/{module}.py", "line": line, "column": column, "mutation": what,
                        "outcome": outcome, "equivalent": equivalent.get((line, column, what))})  # fmt: skip
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


def choose(module: str, args: argparse.Namespace, previous: dict | None) -> tuple[list, int]:
    """The mutants of ``module`` to run, (index, (line, column, description)), and how many an earlier
    report (``previous``) killed and are counted as killed without running them again."""
    chosen, carried = list(enumerate(mutants(module))), 0
    if previous is not None:  # the earlier run's killed mutants are carried over as killed
        earlier = {(s["line"], s["column"], s["mutation"]) for s in previous[module]["survivors"]}
        chosen = [(i, m) for i, m in chosen if m in earlier]  # both of `a * b * c`'s `*` if one survived
        if {m for _, m in chosen} != earlier:
            sys.exit(f"{module}.py changed since {args.only_survivors}: run all its mutants")
        carried = previous[module]["mutants"] - len(chosen)
    if args.sample and args.sample < len(chosen):
        chosen = sorted(random.Random(args.seed).sample(chosen, args.sample))
    return chosen, carried


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
        try:
            equivalent = equivalents(module, source_of(module))
        except StaleRows as error:
            sys.exit(str(error))
        chosen, carried = choose(module, args, previous)
        if args.list:
            for _, mutant in chosen:
                aside = "  (equivalent)" if mutant in equivalent else ""
                print(f"{module}.py:{mutant[0]}:{mutant[1]}: {mutant[2]}{aside}")
            continue
        report["modules"][module] = score(run_module(module, chosen, equivalent), carried)
        report["seconds"] = round(time.perf_counter() - started)
        args.out.write_text(json.dumps(report, indent=1) + "\n")  # after each module: a partial run still reports
    for module, r in report["modules"].items():
        survived = r["mutants"] - r["equivalent"] - r["killed"]
        print(f"{module:16} {r['score']} %: {r['killed']} killed, {survived} survived, {r['equivalent']} equivalent")
    if report["modules"]:
        print(f"{report['seconds']} s")


if __name__ == "__main__":
    main()
