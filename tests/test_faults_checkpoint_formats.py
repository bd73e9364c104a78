"""A checkpoint in another format is loaded when it holds weights, or named for what it is
(issue 36, kind 5): a bare ``state_dict`` and a safetensors file load into an ID model; a zip,
a pickle, a Git LFS pointer, ... are called what they are, not "pickled objects" or "truncated"."""

import gzip
import io
import pickle
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from recbole_llm.checkpoint import DamagedCheckpoint, check_checkpoint_file, load_checkpoint, save_checkpoint
from recbole_llm.data.dataset import create_dataset
from recbole_llm.errors import UserError
from recbole_llm.id_models import load_id_model
from recbole_llm.quick_start import build_config
from recbole_llm.spec import RunSpec
from recbole_llm.utils import get_model

SMALL = {"show_progress": False, "MAX_ITEM_LIST_LENGTH": 10, "embedding_size": 16, "hidden_size": 16,
         "inner_size": 32, "n_layers": 1, "n_heads": 1, "topk": [5, 10], "epochs": 1}


@pytest.fixture(scope="module")
def sasrec(toy_data_path, tmp_path_factory):
    """A SASRec config, its dataset and a model with weights of its own (seeded)."""
    config = build_config(RunSpec("SASRec", "toy", 1, (), dict(SMALL), toy_data_path,
                                  tmp_path_factory.mktemp("saved")))
    dataset = create_dataset(config)
    torch.manual_seed(7)
    return config, dataset, get_model("SASRec")(config, dataset)


def same_weights(loaded, model):
    state = loaded.model.state_dict()
    return all(torch.equal(state[k].cpu(), v.cpu()) for k, v in model.state_dict().items())


def test_a_bare_state_dict_loads_into_the_id_model(sasrec, tmp_path):
    config, dataset, model = sasrec
    path = tmp_path / "sd.pth"
    torch.save(model.state_dict(), path)  # what most code outside RecBole saves
    assert check_checkpoint_file(path) == "torch"
    ckpt = load_checkpoint(path)
    assert set(ckpt) == {"state_dict", "config"} and ckpt["config"] == {}
    assert same_weights(load_id_model(path, config, dataset), model)


def test_a_safetensors_file_loads_into_the_id_model(sasrec, tmp_path):
    config, dataset, model = sasrec
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata={"by": "test"})
    assert check_checkpoint_file(path) == "safetensors"
    assert same_weights(load_id_model(path, config, dataset), model)


def test_a_whole_module_needs_trust_and_then_loads(sasrec, tmp_path):
    config, dataset, model = sasrec
    path = tmp_path / "module.pth"
    torch.save(model, path)
    with pytest.raises(UserError, match="--trust-checkpoint"):
        load_id_model(path, config, dataset)
    loaded = load_id_model(path, config, dataset, trust=True)
    assert same_weights(loaded, model)
    # an LLM run's record names it by its weights, read as the run read it (trusted), not refused after training
    from recbole_llm.id_models import cache_entry_run, weights_sha256
    from recbole_llm.identity import tensors_sha256

    assert loaded.trust and weights_sha256(path, loaded.trust) == tensors_sha256(model.state_dict())
    assert cache_entry_run(path, loaded.trust) == {}  # given by hand: no ID run named
    with pytest.raises(UserError, match="--trust-checkpoint"):
        weights_sha256(path)


def test_a_bare_state_dict_of_other_shapes_is_one_line(sasrec, tmp_path):
    config, dataset, model = sasrec
    state = model.state_dict()
    state["item_embedding.weight"] = torch.zeros(dataset.item_num, 8)
    path = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(UserError) as err:
        load_id_model(path, config, dataset)
    assert str(err.value).startswith(f"ID-model checkpoint {path} does not fit SASRec with this config (")
    assert "item_embedding.weight" in str(err.value) and "\n" not in str(err.value)


def test_our_own_and_recbole_layouts_are_not_rewrapped(tmp_path):
    path = save_checkpoint(tmp_path / "ours.pth", config={"model": "X"}, state_dict={"w": torch.ones(2)}, epoch=1)
    assert load_checkpoint(path)["epoch"] == 1
    torch.save({}, tmp_path / "empty-dict.pth")
    assert load_checkpoint(tmp_path / "empty-dict.pth") == {}  # no tensors: not taken for a state dict
    torch.save({"w": torch.ones(1), "step": 3}, tmp_path / "mixed.pth")
    assert "state_dict" not in load_checkpoint(tmp_path / "mixed.pth")


def zip_bytes(entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def npy_bytes():
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3))
    return buffer.getvalue()


def safetensors_bytes():
    buffer_path = io.BytesIO()
    from safetensors.torch import save

    buffer_path.write(save({"w": torch.arange(64.0)}))
    return buffer_path.getvalue()


@pytest.mark.parametrize("content, message", [
    (zip_bytes({"weights.bin": b"\x00" * 16, "README": b"hi"}),
     "is a zip archive, not a PyTorch checkpoint (it holds weights.bin, README, and no data.pkl): pass the file "
     "torch.save wrote"),
    (zip_bytes({f"f{i}": b"x" for i in range(5)}),
     "is a zip archive, not a PyTorch checkpoint (it holds f0, f1, f2, ... (5 entries), and no data.pkl)"),
    (pickle.dumps({"w": [1.0, 2.0]}, protocol=4),
     "is a plain Python pickle (pickle.dump), not a PyTorch checkpoint: save the model's weights with "
     "torch.save(model.state_dict(), path)"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n",
     "is a Git LFS pointer, not the file it points to: run 'git lfs pull'"),
    (gzip.compress(b"anything"), "is a gzip-compressed file, not a PyTorch checkpoint: decompress it (gunzip) first"),
    (npy_bytes(), "is a NumPy array file (.npy), not a PyTorch checkpoint"),
    (b"\x89HDF\r\n\x1a\n" + bytes(100), "is an HDF5 file (Keras/h5py), not a PyTorch checkpoint"),
])
def test_a_file_that_is_no_checkpoint_is_called_what_it_is(tmp_path, content, message):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    for trust in (False, True):
        with pytest.raises(UserError) as err:
            load_checkpoint(path, trust=trust)
        assert not isinstance(err.value, DamagedCheckpoint)  # not deleted as a damaged cache entry
        assert str(err.value).startswith(f"checkpoint {path} {message}")
        assert "pickled Python objects" not in str(err.value) and "truncated" not in str(err.value)


@pytest.mark.parametrize("cut", [4, 20, -1, -100])
def test_a_truncated_safetensors_file_is_damaged_and_says_so(tmp_path, cut):
    data = safetensors_bytes()
    path = tmp_path / "model.safetensors"
    path.write_bytes(data[:cut])
    with pytest.raises(DamagedCheckpoint) as err:
        load_checkpoint(path)
    message = str(err.value)
    if len(data[:cut]) > 8:  # the length field is whole: the header tells the size the file must have
        assert message.startswith(f"checkpoint {path} is a truncated safetensors file ({len(data[:cut]):,} of the ")
    else:
        assert message.startswith(f"checkpoint {path} is truncated or damaged")
    assert "pickled" not in message


def test_a_safetensors_file_with_a_broken_header_is_damaged(tmp_path):
    data = bytearray(safetensors_bytes())
    length = int.from_bytes(data[:8], "little")
    data[8 + length - 1:8 + length] = b"]"  # the JSON header no longer closes
    path = tmp_path / "model.safetensors"
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedCheckpoint, match="truncated or damaged"):
        load_checkpoint(path)
