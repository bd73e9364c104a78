"""Titles per hard prompt: counted by the prompt builder, stored in LLM run records, and computed
from the data alone (recbole_llm.benchmark.prompts)."""

import pytest
import torch

from recbole_llm.lm import HardPrompt
from recbole_llm.spec import RunSpec


@pytest.fixture(scope="module")
def tokenizer():
    from recbole_llm.benchmark.prompts import load_tokenizer
    from recbole_llm.lm.resolve import DEFAULT_LM

    return load_tokenizer(DEFAULT_LM)  # the bundled MiniLM's WordPiece tokenizer, no weights


def test_titles_counted_are_the_titles_the_built_prompt_holds(tokenizer):
    # one word per title, each its own token: a prompt's titles are the words after the colon
    titles = ["", "alpha", "beta", "gamma", "delta", "", "epsilon zeta eta theta iota kappa lambda mu nu xi"]
    prompt = HardPrompt(tokenizer, "history: {titles}.", titles, max_tokens=11, max_items=4)
    seq = torch.tensor([[1, 2, 3, 4], [2, 0, 0, 0], [1, 6, 0, 0], [1, 2, 5, 3], [0, 0, 0, 0]])
    lengths = torch.tensor([4, 1, 2, 4, 0])
    ids, mask = prompt.build(seq, lengths)
    texts = [prompt.decode(tokenizer, ids[i], mask[i]) for i in range(len(seq))]
    assert texts[0] == "[CLS] history : beta, gamma, delta. [SEP]"  # 11 tokens: alpha does not fit
    assert texts[2] == "[CLS] history : epsilon zeta eta theta iota. [SEP]"  # the newest title, cut to 6 tokens
    assert texts[3] == "[CLS] history : alpha, beta, gamma. [SEP]"  # id 5 has no text and does not count
    counts = prompt.titles_in_prompts(seq, lengths)
    assert counts.tolist() == [3, 1, 1, 3, 0]
    stats = prompt.stats(seq, lengths, batch_size=2)  # batches give the same as one pass
    assert stats == {"mean_titles": pytest.approx(8 / 5), "median_titles": 1.0, "max_tokens": 11, "prompts": 5}
    wider = HardPrompt(tokenizer, "history: {titles}.", titles, max_tokens=14, max_items=4)
    assert wider.titles_in_prompts(seq, lengths).tolist() == [4, 1, 1, 3, 0]  # a cut title fills any budget


def test_the_record_stores_titles_per_prompt_and_the_data_alone_gives_the_same(toy_data_path, llm_overrides,
                                                                               tmp_path, capsys):
    from recbole_llm.benchmark import prompts
    from recbole_llm.pipeline import run

    record = run(RunSpec("IDLEAdapter", "toy", 2020, (), llm_overrides, toy_data_path, tmp_path / "saved"))
    stored = record["prompt_stats"]
    assert record["lm_compute_dtype"] == "float32"  # the fixture's lm_autocast: none, on any CPU
    assert record["hardware"]["cpu_bf16"] in (True, False)
    assert stored["max_tokens"] == 32 and stored["prompts"] == record["dataset_stats"]["users"]
    assert 1 <= stored["median_titles"] <= stored["mean_titles"] + 1 and stored["mean_titles"] <= 5
    rows = prompts.titles_per_prompt("toy", [32, 64], config_dict=llm_overrides, data_path=toy_data_path)
    assert {k: rows[0][k] for k in stored} == stored
    assert rows[1]["mean_titles"] > rows[0]["mean_titles"] and rows[1]["max_titles"] <= 5  # prompt_max_items
    assert rows[0]["template_tokens"] == 22  # overall.yaml's template with [CLS] and [SEP]
    overrides = [f"--{k}={v}" for k, v in llm_overrides.items() if k in ("lm_name", "prompt_max_items", "load_col",
                                                                       "MAX_ITEM_LIST_LENGTH", "item_text_field")]
    assert prompts.main(["--dataset=toy", "--max-tokens=32", f"--data-path={toy_data_path}", *overrides]) == 0
    out = capsys.readouterr().out
    assert "| 32 " in out and f"{stored['mean_titles']:.2f}" in out
