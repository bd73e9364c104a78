"""The committed job lists (results/<dataset>/*.jobs) are runnable as written: every line is an argument
list that run_benchmark.py accepts (its options, keys and values), so a queue or a lent GPU never
spends hours to stop at a typo. Nothing is trained and no dataset is read."""

import shlex
from pathlib import Path

import pytest

from recbole_llm.runner import parse_args, settings

ROOT = Path(__file__).resolve().parents[1]
LINES = [(path.relative_to(ROOT).as_posix(), n, line)
         for path in sorted((ROOT / "results").glob("*/*.jobs"))
         for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith("--")]


def test_there_are_job_lists():
    assert len({path for path, _, _ in LINES}) >= 2


@pytest.mark.parametrize("path,number,line", LINES, ids=[f"{p}:{n}" for p, n, _ in LINES])
def test_a_job_line_is_a_valid_command(path, number, line):
    args, overrides = parse_args(shlex.split(line), root=ROOT)
    request = settings(args, overrides, root=ROOT)  # raises UserError naming the option
    assert request.models and request.seeds, f"{path}:{number}"


@pytest.mark.parametrize("option,said", [
    ("--id_model_config={learning_rat: 0.003}", "option --id_model_config, key learning_rat: 'learning_rat' is not a "
                                                "config key of ComiRec"),
    ("--id_model_config=5", "option --id_model_config=5: give a mapping of the ID model's keys"),
])
def test_a_misspelt_id_model_config_key_stops_the_command(option, said):
    """A key the ID model does not read would leave the base at its defaults under a label that says
    otherwise: one line naming the key, before anything runs."""
    from recbole_llm.errors import UserError

    args, overrides = parse_args(["--model=IDLEAdapter", "--dataset=ml-100k", option], root=ROOT)
    with pytest.raises(UserError, match="^" + said.replace("(", r"\(").replace("{", r"\{")):
        settings(args, overrides, root=ROOT)
    args, overrides = parse_args(["--model=IDLEAdapter", "--dataset=ml-100k", "--id_model=SASRec",
                                  "--id_model_config={hidden_size: 32, learning_rate: 0.003}"], root=ROOT)
    assert settings(args, overrides, root=ROOT).models == ["IDLEAdapter"]


@pytest.mark.parametrize("option,said", [
    ("--nproc=abc", "error: argument --nproc: invalid int value: 'abc' (see run_benchmark.py --help)"),
    ("--search=foo", "error: argument --search: invalid choice: 'foo'"),
])
def test_an_option_argparse_refuses_is_one_line(option, said, capsys):
    """argparse's own errors are one line and exit 2, like every other bad input (not its usage block)."""
    from entry import run_benchmark_main

    assert run_benchmark_main()(["--model=SASRec", option]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(said), err
