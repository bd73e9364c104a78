"""Committed run records hold no path of the machine that made them (STYLE.md, Results), and
:func:`recbole_llm.paths.portable_record` is what makes them so."""

import json
import re

import pytest

from conftest import REPO
from recbole_llm.paths import CHECKOUT, portable_record

RESULTS = REPO / "results"
# a machine's folders, or a Windows drive, anywhere in a string; a string that starts with "/" is checked apart
MACHINE = re.compile(r"/work/|/home/|/root/|/tmp/|(?<![A-Za-z])[A-Za-z]:\\")


def machine_paths(value, where="$"):
    """``(JSON path, string)`` of each string in ``value``, at any depth, that names a folder of a
    machine: it starts with ``/`` or holds one of :data:`MACHINE`."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from machine_paths(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from machine_paths(v, f"{where}[{i}]")
    elif isinstance(value, str) and (value.startswith("/") or MACHINE.search(value)):
        yield where, value


def committed_records():
    """The run records (``results/<page>/runs/*.json``, and those one level deeper, as
    ``results/quick/ml-100k/runs/``) and the sweep records (``results/<page>/tune/*/sweep_record.json``)."""
    return sorted({*RESULTS.glob("*/runs/*.json"), *RESULTS.glob("*/*/runs/*.json"),
                   *RESULTS.glob("*/tune/*/sweep_record.json"), *RESULTS.glob("*/*/tune/*/sweep_record.json")})


def test_the_finder_names_the_file_and_the_json_path_of_each_machine_path():
    record = {"checkpoint": "/work/saved/x.pth", "ratio": "1/2", "url": "https://a.org/b",
              "config": {"files": ["{checkout}/a.yaml", r"C:\Users\me\b.yaml"], "log": "wrote /home/me/y"},
              "command": "run.py --data-path={data}", "seeds": [1, 2]}
    assert list(machine_paths(record)) == [("$.checkpoint", "/work/saved/x.pth"),
                                           ("$.config.files[1]", r"C:\Users\me\b.yaml"),
                                           ("$.config.log", "wrote /home/me/y")]


def test_committed_records_hold_no_machine_path():
    files = committed_records()
    assert len(files) >= 100  # the results pages' records are there to check (about 140 of them)
    found = [f"{f.relative_to(REPO)} {where}: {value[:120]!r}"
             for f in files for where, value in machine_paths(json.loads(f.read_text(encoding="utf-8")))]
    assert not found, "absolute paths in committed records:\n" + "\n".join(found)


@pytest.fixture
def machine(tmp_path):
    """The roots of a machine that made a record (``data_root``, the saved folder, the checkout)
    and a record of it whose config names them, as records made before they were portable do."""
    data, saved, checkout = tmp_path / "data", tmp_path / "saved", tmp_path / "checkout"
    config = {"data_root": str(data), "checkpoint_dir": str(saved / "checkpoints"),
              "config_files": [str(checkout / "properties" / "overall.yaml")], "lr": 0.5}
    return {"data": data, "saved": saved, "checkout": checkout}, config


def _roots_left(record, roots):
    text = json.dumps(record)
    return [str(root) for root in roots.values() if str(root) in text] + [w for w, _ in machine_paths(record)]


def test_portable_record_rewrites_paths_that_are_values_at_any_depth(machine):
    roots, config = machine
    data, saved, checkout = roots["data"], roots["saved"], roots["checkout"]
    old = {"config": config,
           "checkpoint": str(saved / "checkpoints" / "x.pth"),
           "id_model": {"name": "SASRec", "files": [str(saved / "id_models" / "toy" / "a.pth"),
                                                    {"atomic": str(data / "toy" / "toy.inter")}]},
           "history": [{"epoch": 0, "dump": str(saved / "dumps" / "0.pt")}],
           "command": f"run.py --data-path={data} --config={checkout}/properties/overall.yaml",
           "sweep": {"trials": [{"use": f"--checkpoint={saved}/checkpoints/t1.pth"}]},
           "ratio": "1/2", "seeds": [1, 2]}
    new = portable_record(old)  # the roots from the record's own config
    assert not _roots_left(new, roots), json.dumps(new, indent=1)
    assert new["checkpoint"] == "{saved}/checkpoints/x.pth"
    assert new["id_model"]["files"] == ["{saved}/id_models/toy/a.pth", {"atomic": "{data}/toy/toy.inter"}]
    assert new["history"] == [{"epoch": 0, "dump": "{saved}/dumps/0.pt"}]
    assert new["command"] == "run.py --data-path={data} --config={checkout}/properties/overall.yaml"
    assert new["sweep"]["trials"][0]["use"] == "--checkpoint={saved}/checkpoints/t1.pth"
    assert (new["ratio"], new["seeds"], new["config"]["lr"]) == ("1/2", [1, 2], 0.5)


def test_portable_record_takes_its_roots_as_given():
    old = {"checkpoint": str(CHECKOUT / "properties" / "overall.yaml"), "elsewhere": "/opt/x/y.yaml"}
    assert portable_record(old, {"checkout": CHECKOUT}) == {"checkpoint": "{checkout}/properties/overall.yaml",
                                                            "elsewhere": "{elsewhere}/y.yaml"}


@pytest.mark.parametrize("text", ["wrote {saved}/checkpoints/x.pth", "--data-path={data}/toy --lr=0.5",
                                  "{saved}/checkpoints/x.pth\nsecond line"],
                         ids=["a message", "an argument line under another key", "a path and a newline"])
def test_portable_record_rewrites_paths_inside_any_text_at_any_depth(machine, text):
    roots, config = machine
    value = text.format(saved=roots["saved"], data=roots["data"])
    old = {"config": config, "notes": {"steps": [{"said": value}]}}
    new = portable_record(old)
    assert not _roots_left(new, roots), json.dumps(new, indent=1)
    assert new["notes"]["steps"][0]["said"] == text
