"""The LM-size variant page (recbole_llm.benchmark.lm_size through variants --lm-facts): each row's LM
from its record, and one paragraph that states the Fig. 2 answer at the strength of the page's tests."""

import numpy as np

from recbole_llm.benchmark import lm_size, variants
from tests.test_summary import record, write_runs

RNG = np.random.default_rng(11)
SMALL = RNG.integers(3, 30, 300)
MIDDLE = np.maximum(SMALL - 2, 1)  # every user ranked better: a large, consistent gain over users
LARGE = np.maximum(SMALL - 5, 1)
NEAR = LARGE.copy()  # LARGE but two users ranked one place worse: below LARGE, not distinguishable from it
NEAR[np.flatnonzero(LARGE <= 5)[:2]] += 1
SMOL = "IDLEAdapter (lm=SmolLM2)"
GEMMA = "IDLEAdapter (lm=gemma)"


def lm_record(label, seed, ranks, lm, params, outside):
    rec = record("IDLEAdapter", label, seed, ranks, config={"lm_name": lm})
    rec["lm"] = {"name": lm, "model_type": "llama", "parameters": params, "parameters_outside_embeddings": outside,
                 "layers": 30, "hidden_size": 576, "weights_sha256": {"m.gguf": "ab" * 32}, "decoder": True}
    rec["cost"] = {"wall_time_s": 1.0, "train_time_per_epoch_s": params / 1e6, "test_time_s": 2.0,
                   "peak_rss_mb": 1500.0, "peak_gpu_mb": None}
    rec["prompt_stats"] = {"max_tokens": 76, "mean_titles": 1.23, "median_titles": 1.0, "prompts": 300}
    return rec


def page(tmp_path, seeds, small=SMALL, middle=MIDDLE, large=LARGE, reference="IDLEAdapter"):
    """A variant page of three LMs: the smallest (an old record, 100 parameters) ranks ``small``,
    SmolLM2 (134.5M) ``middle``, gemma (268.1M) ``large``; ``reference`` is the page's reference row."""
    recs = [record("IDLEAdapter", "IDLEAdapter", s, small) for s in seeds]  # an old record: no `lm` in it
    recs += [lm_record(SMOL, s, middle, "HuggingFaceTB/SmolLM2-135M-Instruct", 134_515_008, 106_204_032)
             for s in seeds]
    recs += [lm_record(GEMMA, s, large, "google/gemma-3-270m", 268_098_176, 100_334_208) for s in seeds]
    write_runs(tmp_path, "toy", recs)
    others = tuple(x for x in ("IDLEAdapter", SMOL, GEMMA) if x != reference)
    spec = variants.VariantPage("lm", "LM size", reference, others, "cmd", lm_facts=True)
    return variants.write_variants(tmp_path, "toy", spec)


def test_the_page_names_each_rows_lm_from_its_record(tmp_path):
    text = page(tmp_path, (1,))
    gemma = next(line for line in text.splitlines() if line.startswith("| IDLEAdapter (lm=gemma) ") and "llama" in line)
    cells = [c.strip() for c in gemma.strip("|").split("|")]
    assert cells[1:6] == ["gemma-3-270m (llama)", "268.1M", "100.3M", "30", "576"]
    assert cells[7:10] == ["268", "150", "1,500"] and cells[-1] == "m.gguf: abababababab"
    old = next(line for line in text.splitlines() if line.startswith("| IDLEAdapter ") and "(n/a)" in line)
    assert "all-MiniLM-L6-v2 (n/a)" in old and "0.0M" in old  # the old record's count (100) and name only
    # one seed: the order is stated, not as significant, and the paragraph says why
    assert "Does IDLEAdapter gain with a larger LM" in text
    assert "rises with the LM's size here, but not at the page's strength: one seed per row" in text


def test_the_answer_is_significant_only_with_seeds_behind_it(tmp_path):
    text = page(tmp_path, (1, 2, 3, 4, 5))
    assert ("rises with the LM's size on this data, and the difference of gemma-3-270m (the largest LM) to the "
            "reference all-MiniLM-L6-v2 is significant (Holm and seed-aware p < 0.05)") in text


def test_with_the_largest_lm_as_reference_the_next_largest_is_the_one_tested(tmp_path):
    # the smallest LM is far below the reference (significant), SmolLM2 is just below it (not): the verdict
    # must rest on SmolLM2, the largest LM besides the reference, and name it
    text = page(tmp_path, (1, 2, 3, 4, 5), middle=NEAR, reference=GEMMA)
    assert ("rises with the LM's size here, but not at the page's strength: the difference of "
            "SmolLM2-135M-Instruct (the largest LM besides the reference) to the reference gemma-3-270m is not "
            "significant.") in text
    assert "significant (Holm and seed-aware p" not in text


def test_no_trend_is_claimed_when_the_metric_does_not_move_one_way(tmp_path):
    text = page(tmp_path, (1,), middle=LARGE, large=MIDDLE)  # the middle LM is the best
    assert "does not move one way with the LM's size" in text
    falling = page(tmp_path / "b", (1, 2, 3, 4, 5), small=LARGE, large=SMALL)  # the smallest LM is the best
    assert "falls with the LM's size on this data" in falling


def test_facts_of_a_record_without_costs():
    rec = record("IDLEAdapter", "X", 1, SMALL)
    facts = lm_size.lm_facts([rec])
    assert facts["lm"] == "all-MiniLM-L6-v2" and facts["parameters"] == 100 and facts["layers"] is None
    assert facts["eval_users_per_s"] is None and facts["weights_sha256"] == "n/a"


def test_a_null_cost_reads_as_no_cost():
    rec = lm_record(GEMMA, 1, LARGE, "google/gemma-3-270m", 268_098_176, 100_334_208)
    rec["cost"] = None  # a run that died before its cost was measured
    with_cost = lm_record(GEMMA, 2, LARGE, "google/gemma-3-270m", 268_098_176, 100_334_208)
    facts = lm_size.lm_facts([rec])
    assert [facts[k] for k in ("train_s_per_epoch", "eval_users_per_s", "peak_rss_mb", "peak_gpu_mb")] == [None] * 4
    cells = [c.strip() for c in lm_size.render_lm_facts([("gemma", facts)]).splitlines()[-1].strip("|").split("|")]
    assert cells[7:10] == ["n/a", "n/a", "n/a"]
    # beside a record with costs, the null one is left out of the means, not counted as zero
    both = lm_size.lm_facts([rec, with_cost])
    assert both["train_s_per_epoch"] == 268.098176 and both["eval_users_per_s"] == 150.0
