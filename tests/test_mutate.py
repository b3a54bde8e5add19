"""benchmarks/mutate.py: the mutants it makes, the equivalent rows it matches, the modules it serves.

A small source goes in, the expected mutants come out; nothing here runs a mutant (that
takes minutes: see docs/reliability.md).
"""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_mutate():
    spec = importlib.util.spec_from_file_location("benchmark_mutate", ROOT / "benchmarks" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


mutate = _load_mutate()


def _mutants(source):
    """{description: the mutated source} for every mutant of ``source``."""
    found = mutate.Mutator.all(source)
    return {what: mutate.mutated(source, index) for index, (_, _, what) in enumerate(found)}


def test_a_keyword_argument_is_dropped_one_at_a_time():
    made = _mutants("y = f(x, axis=0, keepdims=True, **options)\n")
    assert made["drop `axis=0`"] == "y = f(x, keepdims=True, **options)"
    assert made["drop `keepdims=True`"] == "y = f(x, axis=0, **options)"
    assert not any("options" in what for what in made)  # `**options` is not a keyword to drop


def test_a_dropped_keyword_is_placed_at_the_keyword():
    source = "def f(x):\n    return g(x, eps=eps)\n"
    assert (2, 16, "drop `eps=eps`") in mutate.Mutator.all(source)


def test_each_default_number_bool_and_string_is_changed():
    made = _mutants("def f(a, b=0.1, c=1, *, d=True, e='mean', axis=-1, g=None, h=np.float64):\n    return a\n")
    changed = {what: source.splitlines()[0] for what, source in made.items() if what.startswith("default")}
    assert changed == {
        "default `b=0.1` -> `1.1`": "def f(a, b=1.1, c=1, *, d=True, e='mean', axis=-1, g=None, h=np.float64):",
        "default `c=1` -> `0`": "def f(a, b=0.1, c=0, *, d=True, e='mean', axis=-1, g=None, h=np.float64):",
        "default `d=True` -> `False`": "def f(a, b=0.1, c=1, *, d=False, e='mean', axis=-1, g=None, h=np.float64):",
        "default `e='mean'` -> `'XX'`": "def f(a, b=0.1, c=1, *, d=True, e='XX', axis=-1, g=None, h=np.float64):",
        "default `axis=-1` -> `0`": "def f(a, b=0.1, c=1, *, d=True, e='mean', axis=0, g=None, h=np.float64):",
    }
    assert "`1` -> `0`" not in made  # a default is mutated once, as a default


def test_a_lambdas_defaults_are_changed_too():
    assert "default `slope=0.01` -> `1.01`" in _mutants("f = lambda a, slope=0.01: a * slope\n")


def test_each_string_of_a_raised_message_becomes_xx():
    source = "def f(x):\n    raise ValueError(f'bad {x!r}; ' + 'use one of ' + ', '.join(NAMES))\n"
    made = {what: text.splitlines()[1].strip() for what, text in _mutants(source).items() if "message" in what}
    assert made == {
        "message f'bad {x!r}; ' -> 'XX'": "raise ValueError('XX' + 'use one of ' + ', '.join(NAMES))",
        "message 'use one of ' -> 'XX'": "raise ValueError(f'bad {x!r}; ' + 'XX' + ', '.join(NAMES))",
        "message ', ' -> 'XX'": "raise ValueError(f'bad {x!r}; ' + 'use one of ' + 'XX'.join(NAMES))",
    }


def test_strings_outside_a_raise_and_inside_an_f_string_are_left_alone():
    source = "def f(x):\n    '''Doc.'''\n    y = g(x, mode='same')\n    raise KeyError(f'{x:>10} {\"a\"}')\n    raise\n"
    messages = [what for _, _, what in mutate.Mutator.all(source) if "message" in what or "'" in what]
    assert messages == ["drop `mode='same'`", "message f\"{x:>10} {'a'}\" -> 'XX'"]


def test_the_mutants_are_numbered_the_same_with_and_without_a_target():
    """`--list` and the run agree: mutant i of the listing is the one applied as target i."""
    source = "def f(a, b=2):\n    if a > b:\n        raise ValueError(f'{a} > {b}')\n    return g(a, k=b) + 1\n"
    found = [where for *where, _ in mutate.Mutator.all(source)]
    for index in range(len(found)):
        mutator = mutate.Mutator(index)
        mutator.visit(mutate.ast.parse(source))
        assert [where for *where, _ in mutator.found] == found
        assert mutate.mutated(source, index) != mutate.mutated(source, None)


SOURCE = """\
def f(a, b):
    c = np.where(a > 0, a, b * (a > 0))  # a comment is not part of the code
    return c.astype(b.dtype, copy=False)
"""


def _table(*rows):
    return "\n" + "\n".join(f"{header}\n    {code}" for header, code in rows) + "\n"


def test_an_equivalent_row_names_its_line_by_code_and_follows_it_when_it_moves():
    table = _table(("m | `False` -> `True` | a copy", "return c.astype(b.dtype, copy=False)"))
    assert mutate.equivalents("m", SOURCE, table) == {(3, 34, "`False` -> `True`"): "a copy"}
    moved = "import numpy as np\n\n\nclass K:\n" + "".join(f"    {line}\n" for line in SOURCE.splitlines())
    assert mutate.equivalents("m", moved, table) == {(7, 38, "`False` -> `True`"): "a copy"}
    assert mutate.equivalents("other", SOURCE, table) == {}


def test_a_row_says_which_of_several_like_mutants_of_a_line_it_means():
    code = "c = np.where(a > 0, a, b * (a > 0))"
    second = _table(("m | `>` -> `>=` (2 of 2) | why", code))
    assert mutate.equivalents("m", SOURCE, second) == {(2, 32, "`>` -> `>=`"): "why"}
    with pytest.raises(mutate.StaleRows, match="m: .* on `c = np.where"):
        mutate.equivalents("m", SOURCE, _table(("m | `>` -> `>=` | why", code)))  # which of the two?


@pytest.mark.parametrize(
    "row",
    [
        ("m | `False` -> `True` | a copy", "return c.astype(b.dtype, copy=True)"),  # the code changed
        ("m | `True` -> `False` | a copy", "return c.astype(b.dtype, copy=False)"),  # no such mutation there
        ("m | `False` -> `True` (2 of 2) | a copy", "return c.astype(b.dtype, copy=False)"),  # only one there
    ],
)
def test_a_stale_equivalent_row_is_an_error(row):
    with pytest.raises(mutate.StaleRows, match="judge them again"):
        mutate.equivalents("m", SOURCE, _table(row))


def test_a_malformed_equivalent_row_is_an_error():
    with pytest.raises(ValueError, match="indented code"):
        mutate.equivalent_rows("m | `>` -> `>=` | why\nm | `<` -> `<=` | why\n")
    with pytest.raises(ValueError, match="no code line"):
        mutate.equivalent_rows("m | `>` -> `>=` | why\n    a > b\nm | `<` -> `<=` | why\n")


def test_the_equivalent_table_parses_and_names_mutated_modules():
    rows = mutate.equivalent_rows(mutate.EQUIVALENT_TABLE)
    assert rows and {row[0] for row in rows} <= set(mutate.MODULES)


def test_every_mutated_module_and_its_tests_exist():
    for module, tests in mutate.MODULES.items():
        assert mutate.path_of(module).is_file(), module
        for test in tests:
            assert (ROOT / "tests" / test).is_file(), test


def test_the_import_hook_serves_a_module_of_a_package_by_its_dotted_name(tmp_path):
    mutant = tmp_path / "nn.losses.py"
    mutant.write_text("MUTATED = __name__\n")
    finder = mutate.MutantFinder("nn/losses", str(mutant))
    assert finder.find_spec("dp.nn") is None and finder.find_spec("dp.losses") is None
    spec = finder.find_spec("dp.nn.losses")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.MUTATED == "dp.nn.losses"
    assert module.__file__ == str(ROOT / "src" / "dp" / "nn" / "losses.py")
