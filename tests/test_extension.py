"""The extension points: a third LLM model in a few lines trains through the whole pipeline.

What a new LLM model writes: a subclass of :class:`LLMSequentialRecommender` with RecBole's three
methods, and a YAML of its own hyperparameters. What it inherits: the frozen LM and its prefix
injection, the frozen ID model (trained or reused by the pipeline's ID-model step), the hard
prompt, the base class's defaults (``properties/model/LLMSequentialRecommender.yaml``), the
trainer (``LMTrainer``), resumable checkpoints and the run record.
"""

import torch.nn.functional as F
from torch import nn

from recbole_llm.model.llm_base import LLMSequentialRecommender
from recbole_llm.identity import file_sha256
from recbole_llm.id_models import weights_sha256
from recbole_llm.paths import resolve_path
from recbole_llm.pipeline import run
from recbole_llm.spec import RunSpec


class ProjectedPrefix(LLMSequentialRecommender):
    """A toy third model: u projected to one prefix token per layer, the pooled prompt scores items."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.prefix_scale = float(config["prefix_scale"])
        self.projection = nn.Linear(self.id_dim, self.lm_dim)
        self.item_output = nn.Linear(self.lm.output_size, self.n_items, bias=False)

    def forward(self, interaction):
        u = self.user_id_representation(interaction)
        ids, mask = self.user_prompt(interaction)
        prefix = [self.prefix_scale * self.projection(u).unsqueeze(1)] * self.n_layers_lm
        with self.autocast_context():
            hidden, _ = self.lm(ids, mask, prefix=prefix)
        return self.lm.pool(hidden, mask).float()

    def calculate_loss(self, interaction):
        return F.cross_entropy(self.item_output(self.forward(interaction)), interaction[self.POS_ITEM_ID])

    def full_sort_predict(self, interaction):
        return self.item_output(self.forward(interaction))

    def predict(self, interaction):
        return (self.forward(interaction) * self.item_output.weight[interaction[self.ITEM_ID]]).sum(-1)


def test_a_third_llm_model_trains_through_the_pipeline(toy_data_path, llm_overrides, tmp_path):
    own_yaml = tmp_path / "ProjectedPrefix.yaml"
    own_yaml.write_text("prefix_scale: 0.5  # (float) Scale of the projected ID prefix.\n"
                        "loss_type: CE\ntrain_neg_sample_args: ~\n")
    overrides = {**llm_overrides, "epochs": 1}
    record = run(RunSpec(ProjectedPrefix, "toy", 2020, [str(own_yaml)], overrides, toy_data_path, tmp_path / "saved"))
    assert record["model"] == "ProjectedPrefix" and record["epochs_run"] == 1
    assert 0.0 <= record["test"]["ndcg@10"] <= 1.0
    # inherited: the base class's defaults, the LM trainer (trainable parameters only, linear decay,
    # the overhead measurement) and the ID model the pipeline trained and cached
    assert record["config"]["lr_schedule"] == "linear" and record["config"]["learner"] == "adamw"
    assert record["history"][0]["lr_end"] < record["config"]["learning_rate"]
    assert record["cost"]["adapter_throughput_ratio"] > 0
    assert record["parameters"]["id_model_name"] == "ComiRec"
    assert record["parameters"]["id_model_checkpoint"].startswith("{saved}/id_models/toy/ComiRec-")  # portable
    cached = resolve_path(record["parameters"]["id_model_checkpoint"], {"saved": tmp_path / "saved"})
    named = record["id_model"]
    assert named["name"] == "ComiRec" and named["sha256"] == file_sha256(cached)
    assert named["weights_sha256"] == weights_sha256(cached) and named["seed"] == 2020 and named["key"] in cached.name
    assert named["test"]["ndcg@10"] >= 0  # the metrics of the ID run its cache entry was made from
    assert record["parameters"]["trainable"] < record["parameters"]["lm"]
    assert record["config"]["prefix_scale"] == 0.5
