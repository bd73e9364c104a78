"""Titles per hard prompt, from the data alone: no model is built or trained.

The LLM models' user prompt is a template with the most recent item titles that fit
``prompt_max_tokens`` (:class:`recbole_llm.lm.HardPrompt`). How many titles that is depends on
the template, the tokenizer and the titles' lengths; a run record of an LLM model stores it for
its test users (``prompt_stats``). This computes the same numbers for any budget before a run::

    python -m recbole_llm.benchmark.prompts --dataset=amazon-scientific --max-tokens=64,128,256

It builds the model's config (its YAML, the dataset's YAML with the prompt template, any
``--key=value``), loads the dataset and its leave-one-out split with RecBole, the LM's tokenizer
(not its weights) and the item titles, and counts, for each test user's history, the titles
:meth:`~recbole_llm.lm.HardPrompt.build` keeps.
"""

import argparse
import shlex
import sys
from pathlib import Path

from tabulate import tabulate

from recbole_llm.config import REPO_ROOT, parse_overrides
from recbole_llm.errors import UserError, exit_status


def load_tokenizer(name):
    """The tokenizer :class:`recbole_llm.lm.FrozenLM` would use for ``lm_name`` ``name``, without
    loading the model's weights, after the run's own checks (:func:`recbole_llm.lm.load_tokenizer`:
    a bundled LM whose package is missing is named with the package to install)."""
    from recbole_llm.lm import load_tokenizer as lm_tokenizer

    return lm_tokenizer(name)[0]


def titles_per_prompt(dataset, max_tokens=(64,), model="IDLEAdapter", data_path=None, config_dict=None):
    """``[{"max_tokens", "mean_titles", "median_titles", "prompts", "template_tokens", "one_title",
    "max_titles"}]``, one per value of ``max_tokens``, over the test users' histories of ``dataset``
    (``one_title``: the share of prompts holding a single title)."""
    from recbole_llm.data.dataset import create_dataset

    from recbole_llm.data.item_text import ItemText
    from recbole_llm.lm import HardPrompt
    from recbole_llm.quick_start import build_config
    from recbole_llm.spec import RunSpec

    config = build_config(RunSpec(model, dataset, overrides=dict(config_dict or {}), data_path=data_path))
    data = create_dataset(config)
    test = data.build()[2]
    item_seq = test.inter_feat[config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]]
    item_seq_len = test.inter_feat[config["ITEM_LIST_LENGTH_FIELD"]]
    tokenizer = load_tokenizer(config["lm_name"])
    titles = list(ItemText.from_dataset(data).titles)
    out = []
    for tokens in max_tokens:
        prompt = HardPrompt(tokenizer, config["prompt_template"], titles, max_tokens=tokens,
                            max_items=config["prompt_max_items"])
        counts = prompt.titles_in_prompts(item_seq, item_seq_len)
        row = prompt.stats(item_seq, item_seq_len)
        row.update({"template_tokens": len(prompt.head) + len(prompt.tail),
                    "one_title": float((counts == 1).double().mean()), "max_titles": int(counts.max())})
        out.append(row)
    return out


def render(rows):
    headers = ["prompt_max_tokens", "template tokens", "test prompts", "titles: mean", "median", "max",
               "share with 1 title"]
    body = [[r["max_tokens"], r["template_tokens"], r["prompts"], f"{r['mean_titles']:.2f}",
             f"{r['median_titles']:g}", r["max_titles"], f"{100 * r['one_title']:.1f}%"] for r in rows]
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m recbole_llm.benchmark.prompts",
                                description="Titles per hard prompt of the test users, from the data alone.",
                                epilog="Other --key=value options are passed to the model's config.")
    p.add_argument("--dataset", required=True, help="dataset name under --data-path")
    p.add_argument("--max-tokens", default="64", help="comma list of prompt_max_tokens values (default: 64)")
    p.add_argument("--model", default="IDLEAdapter", help="LLM model whose prompt config to use (default: IDLEAdapter)")
    p.add_argument("--data-path", default=str(REPO_ROOT / "dataset"), help="RecBole data_path (default: ./dataset)")
    args, extra = p.parse_known_args(argv)
    overrides = parse_overrides(extra, p.error)
    try:
        tokens = [int(x) for x in args.max_tokens.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--max-tokens must be a comma list of integers; got {args.max_tokens!r}") from None
    if not tokens:
        raise UserError("--max-tokens is empty")
    from recbole_llm.config import Config

    overrides = Config._convert_config_dict(None, overrides) if overrides else {}
    rows = titles_per_prompt(args.dataset, tokens, args.model, Path(args.data_path), overrides)
    command = "python -m recbole_llm.benchmark.prompts " + " ".join(shlex.quote(a) for a in argv)
    print(f"{args.dataset}: titles per hard prompt of the {rows[0]['prompts']} test users ({args.model}'s "
          f"prompt config)\n\n{render(rows)}\n\n`{command}`")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
