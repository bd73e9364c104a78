"""``recbole-llm``: one console command for everything the package does, each verb the entry point
it names (setup.cfg's ``console_scripts``).

    recbole-llm run --model=SASRec,IDLE-Adapter --dataset=ml-100k --budget=quick
    recbole-llm tables --dataset=ml-100k --target=IDLEAdapter
    recbole-llm tune --model=SASRec --dataset=ml-100k --search=random --num-samples=8
    recbole-llm data csv --inter ratings.csv --user-col userId --item-col movieId --name my-movies
    recbole-llm variants --dataset=ml-100k --name=ablation --title=Ablation --reference=IDLEAdapter --row=...
    recbole-llm speed --dataset=ml-100k --models=SASRec
    recbole-llm recommend --record=results/ml-100k/runs/SASRec__seed2020__<time>.json --users=1,2 --k=10

``recbole-llm <verb> --help`` gives each verb's options. Nothing heavy is imported before a verb
runs: ``recbole-llm --help`` needs neither torch nor RecBole.
"""

import sys

VERBS = {
    "run": "train models under the benchmark's protocol; records and tables (python run_benchmark.py)",
    "tables": "regenerate a dataset's tables from its run records (run_benchmark.py --tables-only)",
    "tune": "Ray Tune sweep on validation, then the best configuration on every seed (run_benchmark.py --tune)",
    "data": "make a dataset's atomic files: ml-100k, ml-1m, amazon, unisrec, csv (python -m recbole_llm.data)",
    "variants": "rows of one model against a reference row (python -m recbole_llm.benchmark.variants)",
    "speed": "training and evaluation throughput (python -m recbole_llm.benchmark.speed)",
    "recommend": "top-k items for users or item histories from a trained run (recbole_llm.recommend)",
}


def usage():
    from recbole_llm.runner import help_epilog

    lines = ["usage: recbole-llm <verb> [options]   (recbole-llm <verb> --help: its options)", "",
             "Benchmark LLM-based sequential recommenders (IDLE-Adapter, RA-Rec) and RecBole's models under one "
             "protocol;", "each verb runs one of the package's entry points.", "", "verbs:"]
    lines += [f"  {verb:<10} {text}" for verb, text in VERBS.items()]
    return "\n".join(lines) + "\n\n" + help_epilog()


def _runner(name, extra):
    """The benchmark command (:func:`recbole_llm.runner.main`) with ``extra`` options first."""

    def verb(argv):
        from recbole_llm.runner import main

        return main([*extra, *argv], prog=f"recbole-llm {name}")

    return verb


def _data(argv):
    from recbole_llm.data.__main__ import main

    return main(argv)


def _variants(argv):
    from recbole_llm.benchmark.variants import main
    from recbole_llm.errors import exit_status

    return exit_status(lambda: main(argv))


def _speed(argv):
    from recbole_llm.benchmark.speed import main
    from recbole_llm.errors import exit_status

    return exit_status(lambda: main(argv))


def recommend_parser():
    import argparse

    p = argparse.ArgumentParser(
        prog="recbole-llm recommend",
        description="Top-k items from a trained run (recbole_llm.load_run + recbole_llm.recommend): for the "
                    "dataset's users (their whole history) or for a history of item tokens.",
        epilog="By default the items a user (or the history) has seen are left out; --keep-seen ranks every item, "
               "as RecBole's evaluation of a sequential model does.")
    p.add_argument("--record", required=True,
                   help="the run: its record (results/<dataset>/runs/*.json), its folder "
                        "(saved/runs/<dataset>/<Model>-seed<seed>-<key>/) or a checkpoint (.pth)")
    p.add_argument("--users", default=None, help="comma list of user tokens (the dataset's user ids)")
    p.add_argument("--history", action="append", default=None,
                   help="comma list of item tokens, oldest first (repeat for several histories)")
    p.add_argument("--k", type=int, default=10, help="items per user (default: 10)")
    p.add_argument("--keep-seen", action="store_true", help="do not leave out the items already seen")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when there is a GPU)")
    p.add_argument("--saved-dir", default=None, help="the saved/ folder the run wrote (default: ./saved)")
    p.add_argument("--data-path", default=None, help="the data folder it trained on (default: ./dataset)")
    p.add_argument("--trust-checkpoint", action="store_true", help="unpickle a checkpoint that holds Python objects")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _recommend(argv):
    import json

    from recbole_llm.errors import UserError

    args = recommend_parser().parse_args(argv)
    try:
        if (args.users is None) == (args.history is None):
            raise UserError("recommend: pass --users or --history (one of the two)")
        from recbole_llm.inference import load_run, recommend
        from recbole_llm.runner import default_root

        root = default_root()
        run = load_run(args.record, args.device, saved_dir=args.saved_dir or root / "saved",
                       data_path=args.data_path or root / "dataset", trust=args.trust_checkpoint)
        users = [u.strip() for u in args.users.split(",") if u.strip()] if args.users is not None else None
        histories = ([[i.strip() for i in h.split(",") if i.strip()] for h in args.history]
                     if args.history is not None else None)
        result = recommend(run, users=users, histories=histories, k=args.k, exclude_seen=not args.keep_seen)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    from tabulate import tabulate

    rows = []
    for n, entry in enumerate(result):
        who = entry["user"] if entry["user"] is not None else f"history {n + 1}"
        for rank, item in enumerate(entry["items"]):
            rows.append([who if rank == 0 else "", rank + 1, item, f"{entry['scores'][rank]:.4f}",
                         *([entry["titles"][rank]] if "titles" in entry else [])])
    headers = ["user", "rank", "item", "score", *(["title"] if result and "titles" in result[0] else [])]
    print(f"{run.config['model']} on {run.config['dataset']} ({run.checkpoint})")
    print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    return 0


HANDLERS = {
    "run": _runner("run", []),
    "tables": _runner("tables", ["--tables-only"]),
    "tune": _runner("tune", ["--tune"]),
    "data": _data,
    "variants": _variants,
    "speed": _speed,
    "recommend": _recommend,
}


def main(argv=None):
    """``recbole-llm <verb> ...``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    if verb not in HANDLERS:
        import difflib

        close = difflib.get_close_matches(verb, list(HANDLERS), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        print(f"error: unknown verb '{verb}': {hint}the verbs are {', '.join(HANDLERS)} (recbole-llm --help)",
              file=sys.stderr)
        return 2
    return HANDLERS[verb](rest)


if __name__ == "__main__":
    sys.exit(main())
