"""What the READMEs and docs say: no metric typed by hand, generated blocks that are what the
records give, and commands that are tested.

A results number in a README is written by ``python -m recbole_llm.benchmark.summary`` between
``<!-- generated: ... -->`` and ``<!-- end generated -->``; text outside those blocks (and outside
code) states no metric-like number: a value below one with two or more decimals, a percentage, a
p-value, a Holm value, a ratio like ``4.4x``. The dated lab notebook (``docs/notes/``) is history
and keeps its numbers as they were written; the tune folders' READMEs are written by the sweep code.
"""

import re
import shlex
from pathlib import Path

import pytest

from recbole_llm.benchmark import summary

REPO = Path(__file__).resolve().parent.parent

METRIC_LIKE = re.compile(r"""
      (?<![\w.])[+\-−±]?\d+(?:\.\d+)?\s?%          # a percentage: 29.8%, +6.0%
    | (?<![\w.\-])[+\-−]?0\.\d{2,}(?!\d|\.\d)      # a value below one: 0.0792, 0.47 (not the version 0.1.1)
    | (?<![\w.])\d+(?:\.\d+)?e-\d+\b               # 1e-4, 2.5e-4
    | \b[pP]\s?[=<>≤]\s?\S                          # p = 0.066, p<1e-4
    | \bHolm\s+[<\d]                                # Holm 0.40
    | (?<![\w.])\d+\.\d+x\b                         # 4.4x the cost
""", re.VERBOSE)

# The README's two commands, character for character (CI runs the second: .ci/run).
MAIN_COMMAND = ("python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 && .venv/bin/pip install -e . -c "
                "constraints/pinned.txt && .venv/bin/python run_benchmark.py --model=IDLEAdapter,ComiRec,SASRec "
                "--dataset=ml-100k --budget=quick --rerun")
TEST_COMMAND = ('python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 && .venv/bin/pip install -e ".[test]" '
                '-c constraints/pinned.txt && .venv/bin/python -m pytest -m "not slow"')

# README commands that a test runs, with the test that runs them.
RUN_BY = {
    ("python -m recbole_llm.data csv --inter ratings.csv --items movies.csv --user-col userId --item-col movieId "
     "--time-col timestamp --rating-col rating --k-core 5 --name my-movies"):
        "tests/test_data_csv.py::test_readme_example_end_to_end",
    "python run_benchmark.py --model=SASRec --dataset=my-movies --budget=quick":
        "tests/test_data_csv.py::test_readme_example_end_to_end",
    "python -m recbole_llm.benchmark.summary": "tests/test_readme.py::test_generated_blocks_are_what_the_records_give",
}


def hand_text(text):
    """What was written by hand: ``text`` without its generated blocks, code blocks, code spans and comments."""
    text = summary.outside_blocks(text)
    text = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    text = re.sub(r"^    \S.*$", "", text, flags=re.MULTILINE)  # indented code
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)


def metric_like(text):
    return [m.group(0).strip() for m in METRIC_LIKE.finditer(hand_text(text))]


def documents():
    """The pages a reader opens for the answer or the reference: the READMEs and docs/ (not the notebook)."""
    paths = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    paths += [p for p in sorted((REPO / "results").rglob("README.md")) if "tune" not in p.relative_to(REPO).parts]
    return [p for p in paths if "notes" not in p.relative_to(REPO).parts]


def test_no_metric_is_typed_by_hand_in_the_readmes_and_docs():
    found = {str(p.relative_to(REPO)): metric_like(p.read_text(encoding="utf-8")) for p in documents()}
    assert {p for p in found} >= {"README.md", "results/README.md", "results/amazon-scientific/README.md",
                                  "docs/protocol.md", "docs/records.md"}
    assert {p: f for p, f in found.items() if f} == {}


def test_the_check_finds_a_typed_metric_and_not_a_generated_one():
    text = ("IDLE-Adapter gains +29.8% over ComiRec (0.0792 against 0.0610, p < 1e-4, Holm 0.40) at 4.4x the cost.\n"
            "<!-- generated: claims -->\nIDLEAdapter: +29.8% NDCG@10 (0.0792 vs 0.0610), p<1e-4.\n<!-- end generated -->\n"
            "Version 0.1.1, 2,928 users, 50 epochs, lambda 0.1, `--learning_rate=0.0005`.\n")
    assert metric_like(text) == ["+29.8%", "0.0792", "0.0610", "p < 1", "Holm 0", "4.4x"]


def test_the_readme_keeps_the_two_commands_verbatim():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert MAIN_COMMAND in readme.splitlines() and TEST_COMMAND in readme.splitlines()
    assert TEST_COMMAND in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert len(readme.splitlines()) <= 160  # a user's entry; the reference is in docs/


def readme_commands(text):
    """The commands of the README's ``bash`` blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(" ".join(line.split()))
    return commands


def _run_benchmark():
    from entry import run_benchmark_module

    return run_benchmark_module()


def test_every_readme_command_is_run_by_a_test_or_parses():
    """Each command is one of the two commands, or run by a named test (which exists), or a
    ``run_benchmark.py`` command whose options parse and whose models and config keys exist."""
    from recbole_llm.config import check_keys
    from recbole_llm.utils import get_model

    commands = readme_commands((REPO / "README.md").read_text(encoding="utf-8"))
    assert MAIN_COMMAND in commands and TEST_COMMAND in commands and len(commands) >= 8
    parse = _run_benchmark().parse_args
    for command in commands:
        if command in (MAIN_COMMAND, TEST_COMMAND):
            continue
        if command in RUN_BY:
            path, name = RUN_BY[command].split("::")
            assert f"def {name}(" in (REPO / path).read_text(encoding="utf-8"), command
            continue
        argv = shlex.split(command)
        assert argv[:2] == ["python", "run_benchmark.py"], f"no test runs this README command: {command}"
        args, overrides = parse(argv[2:])
        models = [m for m in args.model.split(",") if m]
        for model in models:
            get_model(model)
        check_keys(overrides, [], models or ["SASRec"], args.dataset)


@pytest.mark.parametrize("path", ["README.md", "results/README.md", "results/amazon-scientific/README.md"])
def test_the_readmes_have_their_generated_blocks(path):
    text = (REPO / path).read_text(encoding="utf-8")
    specs = [spec for spec, _ in summary.blocks(text)]
    assert specs and all(body.strip() for _, body in summary.blocks(text)), path
    if path == "README.md":
        assert specs == ["headline amazon-scientific", "claims amazon-scientific"]
        head = text.split("<!-- generated: headline", 1)[0]
        assert len(head.splitlines()) <= 20  # the answer comes first


def test_generated_blocks_are_what_the_records_give():
    """``python -m recbole_llm.benchmark.summary --check``: every README's blocks are what the
    records in results/ give now (a record added without regenerating them fails here)."""
    assert summary.write_summaries(REPO / "results", check=True) == []
