"""Command line: make a dataset's RecBole atomic files under --data-path (default: dataset/).

Examples:

    python -m recbole_llm.data ml-100k
    python -m recbole_llm.data ml-1m                      # RecBole's processed copy (needs network)
    python -m recbole_llm.data ml-1m --raw-dir ~/ml-1m    # from GroupLens' ratings/movies/users.dat
    python -m recbole_llm.data amazon --reviews Industrial_and_Scientific.json.gz \\
        --meta meta_Industrial_and_Scientific.json.gz --name amazon-scientific-18
    python -m recbole_llm.data amazon --reviews Industrial_and_Scientific.jsonl.gz \\
        --meta meta_Industrial_and_Scientific.jsonl.gz --name amazon-scientific-23   # 2023 release
    python -m recbole_llm.data unisrec --src downstream/Scientific --prefix Scientific --name amazon-scientific
    python -m recbole_llm.data csv --inter ratings.csv --user-col userId --item-col movieId \\
        --time-col timestamp --items movies.csv --title-col title --k-core 5 --name my-movies

The amazon and csv converters also write <data-path>/<name>/<name>.yaml, the dataset's config keys;
every run on the dataset loads it (after properties/dataset/, before the models' YAML and your options).
"""

import argparse
import logging
import sys


def build_parser():
    p = argparse.ArgumentParser(prog="python -m recbole_llm.data", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="{ml-100k,ml-1m,amazon,unisrec,csv}")

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

    s = add("amazon", "Amazon review data (2014, 2018 or 2023 release): reviews + metadata files, "
                      ".json, .jsonl, plain or gzip")
    s.add_argument("--reviews", required=True,
                   help="review file (2014/2018: reviewerID, asin, overall, unixReviewTime; 2023: user_id, parent_asin, "
                        "rating, timestamp in ms)")
    s.add_argument("--meta", required=True, help="metadata file (2014/2018: asin, title; 2023: parent_asin, title)")
    s.add_argument("--release", choices=("auto", "2014", "2018", "2023"), default="auto",
                   help="which release's fields to read (default: auto, from the first review's fields)")
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

    add_csv(add("csv", "your own interactions (CSV, TSV or Parquet; one row per interaction) and, optionally, an "
                       "item file with titles"))
    return p


def add_csv(s):
    """The options of ``csv`` (:class:`recbole_llm.data.csv_import.CsvImport`)."""
    s.add_argument("--inter", "--interactions", required=True, metavar="FILE",
                   help="interaction file: .csv, .tsv, .parquet (also .csv.gz, .tsv.gz)")
    s.add_argument("--name", required=True, help="dataset name, e.g. my-movies")
    s.add_argument("--user-col", default="user_id", help="column of the user ids (default: user_id)")
    s.add_argument("--item-col", default="item_id", help="column of the item ids (default: item_id)")
    s.add_argument("--time-col", default="timestamp",
                   help="column of the interaction times, required: numbers (e.g. Unix seconds) or dates; it "
                        "orders each user's history and so picks the test item (default: timestamp)")
    s.add_argument("--time-format", default=None,
                   help="strftime form of date times, e.g. '%%d/%%m/%%Y %%H:%%M' (default: numbers or ISO 8601)")
    s.add_argument("--rating-col", default=None, help="column of the ratings (default: none)")
    s.add_argument("--min-rating", type=float, default=None, metavar="R",
                   help="keep only interactions rated at least this (needs --rating-col)")
    s.add_argument("--items", default=None, metavar="FILE", help="item file (.csv, .tsv, .parquet) with titles")
    s.add_argument("--item-id-col", default=None, help="item id column of --items (default: --item-col's name)")
    s.add_argument("--title-col", default=None,
                   help="title column: of --items (default there: title), or of --inter when there is no --items")
    s.add_argument("--text-cols", default="",
                   help="comma list of further text columns (of --items, or of --inter) to copy into <name>.item")
    s.add_argument("--drop-untitled", action="store_true",
                   help="drop the interactions with items that have no title (the LLM models need titles)")
    s.add_argument("--k-core", type=int, default=0, metavar="N",
                   help="keep the N-core: repeatedly drop users and items with fewer than N interactions "
                        "(default: 0, no filter)")
    s.add_argument("--max-seq-len", type=int, default=50, metavar="L",
                   help="MAX_ITEM_LIST_LENGTH written to the dataset's YAML (default: 50)")
    s.add_argument("--format", choices=("csv", "tsv", "parquet"), default=None,
                   help="format of --inter (default: from its extension)")
    s.add_argument("--item-format", choices=("csv", "tsv", "parquet"), default=None,
                   help="format of --items (default: from its extension)")
    s.add_argument("--sep", default=None,
                   help="field separator of the CSV/TSV files, e.g. ';' or '\\t' (default: ',' for csv, tab for tsv)")
    s.add_argument("--encoding", default="utf-8", help="text encoding of the CSV/TSV files (default: utf-8)")


def csv_spec(args):
    """The :class:`~recbole_llm.data.csv_import.CsvImport` of parsed ``csv`` options."""
    from pathlib import Path

    from recbole_llm.data.csv_import import CsvImport

    return CsvImport(
        inter=Path(args.inter), name=args.name, user_col=args.user_col, item_col=args.item_col,
        time_col=args.time_col, time_format=args.time_format, rating_col=args.rating_col, min_rating=args.min_rating,
        items=Path(args.items) if args.items else None, item_id_col=args.item_id_col, title_col=args.title_col,
        text_cols=tuple(c.strip() for c in args.text_cols.split(",") if c.strip()), k_core=args.k_core,
        drop_untitled=args.drop_untitled, format=args.format, item_format=args.item_format, sep=args.sep,
        encoding=args.encoding, max_item_list_length=args.max_seq_len)


def print_counts(name, counts):
    for step, c in counts.items():
        print(f"{name} {step:<13} users {c['users']:>7}  items {c['items']:>7}  interactions {c['interactions']:>8}")


def run(args):
    from recbole_llm.data import amazon, csv_import, movielens, unisrec
    from recbole_llm.data.dataset_yaml import yaml_path

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
        spec = amazon.AmazonImport(args.reviews, args.meta, args.name, release=args.release,
                                   min_user_inter=args.min_user_inter, max_title_len=args.max_title_len,
                                   sample_users=args.sample_users, seed=args.seed)
        counts = amazon.convert_amazon(spec, args.data_path)
        print_counts(args.name, counts)
        print(f"{args.name}: config keys in {yaml_path(args.data_path, args.name)} (every run on it loads them)")
    elif args.command == "unisrec":
        counts = unisrec.convert_unisrec(args.src, args.prefix, args.data_path, args.name,
                                         category_marker=args.category_marker)
        print(f"{args.name}: {counts}")
    elif args.command == "csv":
        counts = csv_import.convert_csv(csv_spec(args), args.data_path)
        print_counts(args.name, counts)
        data = "" if args.data_path == "dataset" else f" --data-path={args.data_path}"
        config = yaml_path(args.data_path, args.name)
        print(f"{args.name}: config keys in {config} (every run on it loads them); train with: "
              f"python run_benchmark.py --model=SASRec --dataset={args.name}{data}")
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
