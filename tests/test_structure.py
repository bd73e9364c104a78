"""Rules of the code's shape that hold for every module (STYLE.md, "Pass a spec, not a clump").

A function that needs more than six parameters is asking for a spec: the values that travel
together become one frozen dataclass, built once and passed whole (``CsvImport``, ``VariantPage``).
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_PARAMETERS = 6

# "<path>:<qualified name>" -> why it may take more for now. Remove an entry when its function is fixed.
ALLOWED = {}  # functions allowed over the limit, each with its reason (none today)


def sources():
    """The package's modules and the runner script, as paths relative to the checkout."""
    return sorted(p.relative_to(REPO).as_posix() for p in [*(REPO / "recbole_llm").rglob("*.py"),
                                                            REPO / "run_benchmark.py"])


def parameter_count(node, in_class):
    """Parameters of a function: positional, keyword-only, ``*args`` and ``**kwargs`` one each;
    a method's ``self`` or ``cls`` is not counted."""
    args = node.args
    positional = [a.arg for a in args.posonlyargs + args.args]
    count = len(positional) + len(args.kwonlyargs) + (args.vararg is not None) + (args.kwarg is not None)
    if in_class and positional and positional[0] in ("self", "cls"):
        count -= 1
    return count


def parameter_counts(path):
    """``{"<path>:<qualified name>": parameters}`` of every function and method in ``path``."""
    out = {}

    def visit(node, prefix, in_class):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                out[f"{path}:{name}"] = parameter_count(child, in_class)
                visit(child, name + ".", False)
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".", True)
            else:
                visit(child, prefix, in_class)

    visit(ast.parse((REPO / path).read_text(encoding="utf-8"), filename=path), "", False)
    return out


def test_parameter_count_follows_the_rule():
    tree = ast.parse("def f(a, b=1, *args, c, **kwargs): pass\n"
                     "class C:\n    def m(self, a): pass\n    @classmethod\n    def k(cls): pass\n"
                     "    @staticmethod\n    def s(a, b): pass\n")
    f, cls = tree.body
    assert parameter_count(f, False) == 5
    assert [parameter_count(m, True) for m in cls.body] == [1, 0, 2]


def test_no_function_takes_more_than_six_parameters():
    counts = {key: n for path in sources() for key, n in parameter_counts(path).items()}
    assert "run_benchmark.py:main" in counts and "recbole_llm/data/csv_import.py:convert_csv" in counts
    over = {key: n for key, n in counts.items() if n > MAX_PARAMETERS and key not in ALLOWED}
    assert not over, (f"functions with more than {MAX_PARAMETERS} parameters: {over}; group the values that travel "
                      "together into a frozen dataclass (STYLE.md, 'Pass a spec, not a clump')")


def test_every_allowed_exception_is_still_needed():
    counts = {key: n for path in sources() for key, n in parameter_counts(path).items()}
    stale = sorted(key for key in ALLOWED if counts.get(key, 0) <= MAX_PARAMETERS)
    assert not stale, f"remove from ALLOWED, the rule holds for them now: {stale}"
