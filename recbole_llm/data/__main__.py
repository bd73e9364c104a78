"""Command line: make a dataset's RecBole atomic files under --data-path (default: dataset/).

Examples:

    python -m recbole_llm.data ml-100k
    python -m recbole_llm.data ml-1m                      # RecBole's processed copy (needs network)
    python -m recbole_llm.data ml-1m --raw-dir ~/ml-1m    # from GroupLens' ratings/movies/users.dat
    python -m recbole_llm.data amazon --reviews Industrial_and_Scientific.json.gz \\
        --meta meta_Industrial_and_Scientific.json.gz --name amazon-scientific-18
    python -m recbole_llm.data unisrec --src downstream/Scientific --prefix Scientific --name amazon-scientific
"""

import argparse
import logging
import sys


def build_parser():
    p = argparse.ArgumentParser(prog="python -m recbole_llm.data", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="{ml-100k,ml-1m,amazon,unisrec}")

    def add(name, help_text):
        s = sub.add_parser(name, help=help_text, description=help_text)
        s.add_argument("--data-path", default="dataset", help="RecBole data_path; the dataset goes to <data-path>/<name>/ "
                                                              "(default: dataset)")
        return s

    add("ml-100k", "copy RecBole's bundled MovieLens-100K atomic files (no network)")

    s = add("ml-1m", "MovieLens-1M: RecBole's processed copy, or converted from GroupLens' raw files")
    s.add_argument("--raw-dir", default=None, help="folder with GroupLens' ratings.dat, movies.dat, users.dat "
                                                   "(convert offline instead of downloading)")
    s.add_argument("--url", default=None, help="download from this URL instead of RecBole's")
    s.add_argument("--name", default="ml-1m", help="dataset name (default: ml-1m)")

    s = add("amazon", "Amazon review data (2014 or 2018 release): reviews + metadata files, .json or .json.gz")
    s.add_argument("--reviews", required=True, help="review file (reviewerID, asin, overall, unixReviewTime)")
    s.add_argument("--meta", required=True, help="metadata file (asin, title)")
    s.add_argument("--name", required=True, help="dataset name, e.g. amazon-scientific-18")
    s.add_argument("--min-user-inter", type=int, default=5, help="drop users with fewer interactions (default: 5)")
    s.add_argument("--max-title-len", type=int, default=200, help="drop items with longer titles (default: 200)")
    s.add_argument("--sample-users", type=int, default=None, help="keep a random sample of this many users")
    s.add_argument("--seed", type=int, default=2020, help="seed of --sample-users (default: 2020)")

    s = add("unisrec", "UniSRec downstream folder (<prefix>.text, .item2index, .train/.valid/.test.inter)")
    s.add_argument("--src", required=True, help="folder holding the <prefix>.* files")
    s.add_argument("--prefix", required=True, help="file prefix, e.g. Scientific")
    s.add_argument("--name", required=True, help="dataset name, e.g. amazon-scientific")
    s.add_argument("--category-marker", default=None,
                   help="top-level category that ends the title in the item text, e.g. 'Industrial & Scientific' "
                        "(default: detected; '' for none)")
    return p


def run(args):
    from recbole_llm.data import amazon, movielens, unisrec

    if args.command == "ml-100k":
        out = movielens.materialize_ml100k(args.data_path)
        print(f"ml-100k: wrote {out}")
    elif args.command == "ml-1m":
        if args.raw_dir:
            counts = movielens.convert_ml1m(args.raw_dir, args.data_path, name=args.name)
            print(f"{args.name}: converted {args.raw_dir}: {counts}")
        else:
            out = movielens.download_ml1m(args.data_path, url=args.url, name=args.name)
            print(f"{args.name}: wrote {out}")
    elif args.command == "amazon":
        counts = amazon.convert_amazon(args.reviews, args.meta, args.data_path, args.name,
                                       min_user_inter=args.min_user_inter, max_title_len=args.max_title_len,
                                       sample_users=args.sample_users, seed=args.seed)
        for step, c in counts.items():
            print(f"{args.name} {step:<12} users {c['users']:>7}  items {c['items']:>7}  "
                  f"interactions {c['interactions']:>8}")
    elif args.command == "unisrec":
        counts = unisrec.convert_unisrec(args.src, args.prefix, args.data_path, args.name,
                                         category_marker=args.category_marker)
        print(f"{args.name}: {counts}")
    return 0


def main(argv=None):
    from recbole_llm.errors import UserError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing was written (datasets are installed only when complete)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
