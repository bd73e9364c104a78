"""Config keys that exist and values RecBole reads as meant (issue 14 items 4, 5)."""

import pytest

from recbole_llm.config import Config, check_keys, known_keys
from recbole_llm.errors import UserError


def test_known_keys_cover_yaml_defaults_and_what_models_read():
    keys = known_keys(["SASRec", "BERT4Rec"], "toy")
    # RecBole's overall/dataset YAML, the models' YAML, this package's properties/, keys read in code
    assert {"learning_rate", "rm_dup_inter", "hidden_dropout_prob", "mask_ratio", "prefix_len", "item_text_field",
            "missing_text_max_share", "MODEL_TYPE", "data_size", "resume_training"} <= keys
    assert "learnin_rate" not in keys and "epoch" not in keys


def test_a_value_from_a_config_file_is_named_by_its_file(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("rm_dup_inter: false\n")
    with pytest.raises(UserError, match=rf"^config key rm_dup_inter = False \(from {mine}\) must be one of first, "
                                        r"last, ~"):
        Config("SASRec", "ml-100k", [mine])
    for value in ("first", "last", None):
        assert Config("SASRec", "ml-100k", [], {"rm_dup_inter": value})["rm_dup_inter"] == value


@pytest.mark.parametrize("override, message", [
    ({"user_inter_num_interval": "5,inf"}, "user_inter_num_interval = '5,inf' (from --user_inter_num_interval) must "
                                           "be ~ or intervals such as [5,inf)"),
    ({"state": "verbose"}, "must be one of info, debug, warning, error, critical (RecBole logs at INFO instead)"),
    ({"seed": 2**32}, "seed = 4294967296 (from --seed) must be an integer in [0, 4294967295]"),
    ({"show_progress": "no"}, "show_progress = 'no' (from --show_progress) must be True or False"),
    ({"eval_args": {"split": {"LS": "valid_and_test"}, "group_by": "item"}}, "group_by must be user or none, not "
                                                                              "'item'"),
    ({"eval_args": {"split": {"RS": "0.8,0.1,0.1"}}}, "split RS must be a list of ratios such as [0.8, 0.1, 0.1]"),
    ({"metrics": ["Hit", "NoSuch"]}, "config of SASRec on ml-100k: There is no metric named 'NoSuch' (RecBole)"),
])
def test_values_recbole_would_misread_are_one_line_errors(override, message):
    with pytest.raises(UserError) as err:
        Config("SASRec", "ml-100k", [], override)
    assert message in str(err.value) and len(str(err.value).splitlines()) == 1


def test_accepted_values_pass():
    config = Config("SASRec", "ml-100k", [], {"user_inter_num_interval": "[5,inf);(0,3]", "learner": "AdamW",
                                              "seed": 0, "epochs": 3, "learning_rate": 1, "valid_metric": "MRR@5"})
    assert config["learner"] == "AdamW" and config["learning_rate"] == 1
    check_keys({"learning_rate": 0.1, "prefix_len": 3}, [], ["SASRec", "RARec"], "ml-100k")


def test_id_model_config_is_checked_against_the_id_model_in_force(tmp_path):
    """``id_model`` and ``id_model_config`` are read from the LLM model's Config built from every
    source: an ``id_model`` set in a ``--config-files`` YAML is the ID model the keys are checked
    against, and an ``id_model_config`` set in a YAML is checked as one given on the command line."""
    sasrec = tmp_path / "sasrec.yaml"
    sasrec.write_text("id_model: SASRec\n")
    with pytest.raises(UserError, match=r"^option --id_model_config, key learnin_rate: 'learnin_rate' is not a "
                                        r"config key of SASRec .*did you mean learning_rate\?$"):
        check_keys({"id_model_config": {"learnin_rate": 0.003}}, [sasrec], ["SASRec", "IDLEAdapter"], "ml-100k")
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text("id_model_config:\n  learnin_rate: 0.003\n")
    with pytest.raises(UserError, match=rf"^config file {tuned}, id_model_config, key learnin_rate: 'learnin_rate' "
                                        r"is not a config key of ComiRec "):
        check_keys({}, [tuned], ["IDLEAdapter"], "ml-100k")
    tuned.write_text("id_model_config: 5\n")
    with pytest.raises(UserError, match=rf"^config file {tuned}, id_model_config: 5: give a mapping"):
        check_keys({}, [tuned], ["IDLEAdapter"], "ml-100k")
    tuned.write_text("id_model: SASRec\nid_model_config:\n  hidden_size: 32\n  learning_rate: 0.003\n")
    check_keys({}, [tuned], ["IDLEAdapter"], "ml-100k")  # keys SASRec reads: no error


def test_local_rank_outside_a_distributed_run_is_one_line():
    """A ``local_rank`` that did not come from run_processes (a config of the API's, where check_keys
    does not look) is one line, not a KeyError from inside the process group's join."""
    with pytest.raises(UserError, match=r"^config key local_rank = 0 \(from --local_rank\): local_rank is set for "
                                        r"each process by --nproc"):
        Config("SASRec", "ml-100k", [], {"local_rank": 0})
