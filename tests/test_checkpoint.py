import pickle
import random

import pytest
import torch

from recbole_llm.checkpoint import DamagedCheckpoint, config_to_dict, load_checkpoint, save_checkpoint
from recbole_llm.errors import UserError


class NotAPlainType:
    """Stands in for RecBole's pickled Config."""

    def __init__(self):
        self.final_config_dict = {"model": "SASRec"}


def test_round_trip_loads_weights_only(tmp_path):
    sd = {"w": torch.arange(6.0).view(2, 3)}
    path = save_checkpoint(tmp_path / "a.pth", config={"model": "X", "eval_args": {"order": "TO"}}, state_dict=sd, epoch=3)
    ckpt = torch.load(path, weights_only=True)  # would raise if anything but plain types were inside
    assert torch.equal(ckpt["state_dict"]["w"], sd["w"])
    assert ckpt["epoch"] == 3 and ckpt["config"]["eval_args"] == {"order": "TO"}
    assert load_checkpoint(path)["format"] == "recbole_llm/1"
    assert not list(tmp_path.glob("*.tmp"))


def test_plain_recbole_checkpoint_needs_trust(tmp_path):
    path = tmp_path / "recbole.pth"
    torch.save({"config": NotAPlainType(), "state_dict": {"w": torch.ones(1)}}, path, pickle_protocol=4)
    with pytest.raises(UserError, match="--trust-checkpoint"):
        load_checkpoint(path)
    ckpt = load_checkpoint(path, trust=True)
    assert isinstance(ckpt["config"], NotAPlainType)


def test_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pth")


def test_config_to_dict_is_primitive():
    from enum import Enum

    class E(Enum):
        A = 1

    out = config_to_dict({"e": E.A, "d": torch.device("cpu"), "t": (1, 2), "n": None})
    assert out == {"e": "A", "d": "cpu", "t": [1, 2], "n": None}
    pickle.dumps(out)


def _good_bytes(tmp_path):
    path = save_checkpoint(tmp_path / "good.pth", config={"model": "X"}, state_dict={"w": torch.randn(256)})
    return path.read_bytes()


@pytest.mark.parametrize("damage, message", [
    (lambda data: b"", r"is empty \(0 bytes\)"),
    (lambda data: data[: len(data) // 2], "is truncated or damaged"),
    (lambda data: bytes(random.Random(0).randrange(256) for _ in range(4096)), "is truncated or damaged"),
    # the archive's directory intact, one entry's bytes overwritten: its CRC-32 no longer matches
    (lambda data: data[:1200] + bytes(64) + data[1264:], "fails its checksum"),
])
def test_damaged_checkpoint_says_what_it_is_not_pickled_objects(tmp_path, damage, message):
    data = _good_bytes(tmp_path)
    path = tmp_path / "bad.pth"
    path.write_bytes(damage(data))
    for trust in (False, True):
        with pytest.raises(DamagedCheckpoint, match=message) as err:
            load_checkpoint(path, trust=trust)
        assert "pickled" not in str(err.value) and str(path) in str(err.value)
        assert len(str(err.value).splitlines()) == 1


