"""The import graph of recbole_llm has no cycle, and no stage imports a later one."""

import ast

import pytest

from conftest import REPO

PACKAGE = REPO / "recbole_llm"

# Cycles tolerated for now: none (issue 15 removed id_model <-> quick_start, report <-> tables (report.py
# is now stats, cost and plots) and config -> utils -> trainer -> provenance -> config). Keep it empty.
KNOWN_CYCLES = set()


def _module_name(path):
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph():
    """``module -> sorted modules of recbole_llm it imports``, at module level or inside
    functions (``from recbole_llm.a import b`` counts as ``recbole_llm.a.b`` when ``b`` is a
    module, else as the package ``recbole_llm.a``)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in sorted(modules.items()):
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.split(".")[0] == "recbole_llm")
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against this module's package
                    base = name.split(".")[: len(name.split(".")) - node.level + (path.name == "__init__.py")]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != "recbole_llm":
                    continue
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    targets.add(sub if sub in modules else source)
        graph[name] = sorted(t for t in targets if t != name and t in modules)
    return graph


def simple_cycles(graph):
    """Every elementary cycle, each as a tuple starting at its smallest module name."""
    cycles = set()

    def walk(start, node, path, on_path):
        for nxt in graph.get(node, ()):
            if nxt == start:
                cycles.add(tuple(path))
            elif nxt > start and nxt not in on_path:
                on_path.add(nxt)
                walk(start, nxt, path + [nxt], on_path)
                on_path.discard(nxt)

    for start in graph:
        walk(start, start, [start], {start})
    return cycles


def _show(cycles):
    return "\n".join(" -> ".join(c + (c[0],)) for c in sorted(cycles))


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    # quick_start imports the LLM base class only inside train_and_evaluate
    assert "recbole_llm.model.llm_base" in graph["recbole_llm.quick_start"]
    assert "recbole_llm.compat" in graph["recbole_llm"]
    assert simple_cycles({"a": ["b"], "b": ["c", "a"], "c": ["a"]}) == {("a", "b"), ("a", "b", "c")}


def test_no_cycle_beyond_the_known_ones():
    """A new cycle fails now."""
    new = simple_cycles(import_graph()) - KNOWN_CYCLES
    assert not new, "new import cycles:\n" + _show(new)


def test_no_import_cycle():
    cycles = simple_cycles(import_graph())
    assert not cycles, "import cycles:\n" + _show(cycles)


# The stages in data-flow order (README, "Architecture"): a module may import its own stage and
# earlier ones only. First the foundation every stage uses: errors, the compat workarounds, file
# helpers, safe checkpoints, provenance, the process group of a distributed run, the trainers
# (generic: they know no model) and the
# model/trainer registry (utils); then data -> config (checks values against data's options) ->
# run identity and the run spec (config's stage: both derive from the built Config) ->
# ID models, LM -> LLM models -> training (quick_start) -> the run record -> the pipeline ->
# benchmark -> sweeps.
STAGES = [
    ("recbole_llm", "errors", "compat", "fsutil", "paths", "checkpoint", "provenance", "distributed", "trainer",
     "utils"),
    ("data",), ("checks", "config", "identity", "spec"), ("id_models", "lm"), ("model",), ("quick_start",), ("record",),
    ("pipeline", "inference"), ("benchmark",), ("tune",), ("runner", "cli"),
]


def _stage(module):
    part = module.split(".")[1] if "." in module else module
    return next(i for i, names in enumerate(STAGES) if part in names)


def test_no_module_imports_a_later_stage():
    graph = import_graph()
    later = [f"{m} -> {t}" for m, targets in graph.items() for t in targets if _stage(t) > _stage(m)]
    assert not later, "imports of a later stage:\n" + "\n".join(later)
    assert {_stage(m) for m in graph} == set(range(len(STAGES)))  # every stage listed exists, every module has one


PAGE_PARTS = ("stats", "cost", "plots", "tables", "notes")  # what benchmark.page assembles


def test_the_results_page_parts_do_not_import_the_page():
    """``page`` assembles the results page from its parts; a part importing the page or another part
    would tangle them again (only ``cost`` and ``plots`` use ``stats``, for its means)."""
    graph = import_graph()
    bench = "recbole_llm.benchmark."

    def uses(module):
        return {m[len(bench):] for m in graph[bench + module] if m.startswith(bench)}

    assert set(PAGE_PARTS) <= uses("page")
    for part in PAGE_PARTS:
        allowed = {"stats"} if part in ("cost", "plots") else set()
        tangled = uses(part) & ({"page", *PAGE_PARTS} - allowed)
        assert not tangled, f"benchmark.{part} imports {sorted(tangled)}"


def test_only_plots_imports_matplotlib_and_only_when_drawing():
    """matplotlib is imported inside :func:`recbole_llm.benchmark.plots.render_plots` alone."""
    found = []
    for path in sorted((PACKAGE / "benchmark").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "matplotlib" for n in names):
                found.append((path.stem, node in tree.body))
    assert found and {stem for stem, _ in found} == {"plots"}
    assert not any(top for _, top in found), "matplotlib imported at module level"
