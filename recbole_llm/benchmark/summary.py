"""Generated summaries: the parts of the READMEs that state results, written from the run records.

A README (``results/<dataset>/README.md``, ``results/README.md``, the top ``README.md``) holds
hand-written text (what no record holds: where a dataset comes from, how a method was read) and
*generated blocks*, each between two markers::

    <!-- generated: headline amazon-scientific -->
    ... written by this module; never edited by hand ...
    <!-- end generated -->

The marker names what the block shows and, outside a dataset's own folder, which results folder
(relative to the results root: ``amazon-scientific``, ``quick/ml-100k``). Kinds:

* ``setting``: the dataset, split, protocol, budget, seeds, metric, records, commits and hardware;
* ``headline``: the headline rows (:func:`~recbole_llm.benchmark.page.row_sections`) with NDCG@10,
  HR@10 and the paired tests of the comparison page, made by the same code
  (:func:`~recbole_llm.benchmark.page.headline_table`);
* ``claims``: one sentence per comparison of 2 or more seeds, worded by its strength by the code
  that computes the test (:func:`~recbole_llm.benchmark.stats.claims`);
* ``pages``: the dataset's other pages, each variant page with the claims of its tests
  (:func:`~recbole_llm.benchmark.variants.variant_tests`);
* ``index``: every results folder with its records, rows and claims (``results/README.md``).

Usage::

    python -m recbole_llm.benchmark.summary                              # every README
    python -m recbole_llm.benchmark.summary --dataset=amazon-scientific  # results/amazon-scientific/README.md
    python -m recbole_llm.benchmark.summary --output=results/quick --dataset=ml-100k
    python -m recbole_llm.benchmark.summary --pages                      # redraw every page first
    python -m recbole_llm.benchmark.summary --check                      # exit 1 if a README is stale

A README that does not exist yet is written from a template (the blocks and a title); one that
exists keeps every line outside its blocks. ``--pages`` also redraws each folder's comparison
page and variant pages from their own ``Regenerate:`` commands. Nothing is trained.
"""

import argparse
import os
import re
import shlex
import sys
from collections import Counter
from pathlib import Path

from recbole_llm.benchmark import page, stats, tables
from recbole_llm.benchmark.labels import escape_markdown
from recbole_llm.benchmark.records import dataset_stats, group_rows, latest_per_seed, load_records, split_copies
from recbole_llm.errors import UserError, exit_status

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = "results"
HEADLINE_METRICS = ("ndcg@10", "hit@10")
BLOCK = re.compile(r"(?P<open><!-- generated: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(?P<close><!-- end generated -->)",
                   re.DOTALL)
COMMAND = "python -m recbole_llm.benchmark.summary"


# ----------------------------------------------------------------------------- the results folders
def result_folders(output):
    """``{name: folder}`` of the results folders under ``output``: each folder holding ``runs/``,
    one or two levels down (``amazon-scientific``, ``quick/ml-100k``), sorted by name."""
    root = Path(output)
    found = {}
    for runs in sorted(root.glob("*/runs")) + sorted(root.glob("*/*/runs")):
        if runs.is_dir() and any(runs.glob("*.json")):
            found[runs.parent.relative_to(root).as_posix()] = runs.parent
    return found


class Folder:
    """One results folder's records, split into the comparison page's sections."""

    def __init__(self, output, name):
        self.output = Path(output)
        self.name = name
        self.path = self.output / name
        self.dataset = self.path.name
        records = load_records(self.path.parent, self.dataset)
        if not records:
            raise UserError(f"no run records in {self.path / 'runs'}: run run_benchmark.py first, or fix --output")
        budgets = Counter(r.get("budget", "full") for r in records)
        self.budget = "full" if "full" in budgets else budgets.most_common(1)[0][0]
        # a sweep's copies of runs shown in their own rows are no rows here either (records.split_copies)
        self.records = split_copies([r for r in records if r.get("budget", "full") == self.budget])[0]
        self.sections = page.row_sections(self.records, self.path)
        grouped = group_rows(self.records)
        self.rows = {name: [label for label, where in self.sections.items() if where == name]
                     for name in page.PAGE_FILES}
        self.headline = [r for label in self.rows[page.HEADLINE] for r in grouped[label]]

    def command(self):
        """The command that writes this folder's README."""
        parent = self.path.parent.resolve()
        if parent.is_relative_to(REPO.resolve()):  # inside the checkout: a path a reader's clone has too
            rel = parent.relative_to(REPO.resolve()).as_posix()
            where = "" if rel == DEFAULT_OUTPUT else f" --output={shlex.quote(rel)}"
        else:
            where = f" --output={shlex.quote(str(self.path.parent))}"
        return f"{COMMAND}{where} --dataset={shlex.quote(self.dataset)}"


def _is_default(output):
    try:
        return Path(output).resolve() == (REPO / DEFAULT_OUTPUT).resolve()
    except OSError:
        return False


# ----------------------------------------------------------------------------- the blocks
def _count(n, word):
    """``1 row``, ``3 rows``."""
    return f"{n} {word}{'s' * (n != 1)}"


def _n(value):
    return f"{value:,}" if isinstance(value, int) else str(value)


def _split_text(split):
    text = str(split)
    if "'LS'" in text and "'TO'" in text:
        return "leave-one-out (the last item of each user for test, the one before for validation), ordered by time"
    return f"`{text}`"


def setting_block(folder):
    """The setting of a folder's headline rows, as a two-column table."""
    recs = latest_per_seed(folder.headline or folder.records)
    first = recs[0]
    ds = dataset_stats(first)
    proto = first["protocol"]
    caps = sorted({int(r["protocol"]["epochs_max"]) for r in recs})
    steps = sorted({int(r["protocol"]["stopping_step"]) for r in recs})
    seeds = sorted({r["seed"] for r in recs})
    commits = sorted({r["commit"][:7] for r in recs})
    machines = [r.get("hardware") or {} for r in recs]
    cpus = sorted({f"{h.get('cpu', '?')} ({h.get('cpu_count', '?')} cores)" for h in machines})
    gpus = sorted({str(h["gpu"]) for h in machines if h.get("gpu")})
    packages = {}
    for r in recs:
        for name in ("torch", "recbole", "transformers"):
            version = (r.get("packages") or {}).get(name)
            if version:
                packages.setdefault(name, set()).add(version)
    stack = ", ".join(f"{name} {'/'.join(sorted(v))}" for name, v in packages.items())
    items = ds.get("items")
    rows = [
        ("Dataset", f"`{folder.dataset}`: {_n(ds.get('users'))} users, {_n(items)} items, "
                    f"{_n(ds.get('interactions'))} interactions"),
        ("Split", _split_text(proto["split"])),
        ("Protocol", f"full ranking over all {_n(items)} items; test metrics at the epoch with the best validation "
                     f"{proto['valid_metric']}; at most {'/'.join(map(str, caps))} epochs, early stop after "
                     f"{'/'.join(str(s + 1) for s in steps)} evaluations without a gain"),
        ("Budget", f"`{folder.budget}` (`properties/budget/{folder.budget}.yaml`)"),
        ("Config", f"`properties/overall.yaml`, `properties/dataset/{folder.dataset}.yaml` (or the dataset folder's "
                   f"own YAML), `properties/model/<Model>.yaml`; each record's `config` holds every value in force"),
        ("Seeds", ", ".join(map(str, seeds)) + " (each row's own: the table's Seeds column)"),
        ("Metric", f"test NDCG@10; each LLM row tested against the best baseline and its own ID base "
                   f"(paired t-test over users, Holm over the page's tests, bootstrap over seeds)"),
        ("Records", f"{_count(len(latest_per_seed(folder.records)), 'run')} in `runs/` (the newest per row and "
                    f"seed): {_count(len(folder.rows[page.HEADLINE]), 'headline row')}, "
                    f"{_count(len(folder.rows[page.VARIANTS]), 'variant row')}, "
                    f"{_count(len(folder.rows[page.HISTORY]), 'short-run row')}"),
        ("Commits", ", ".join(commits) + " (of the headline rows; each row's in `comparison.csv`)"),
        ("Hardware", "; ".join(cpus + gpus) + (f"; {stack}" if stack else "")),
    ]
    sweeps = sorted(p.parent.name for p in (folder.path / "tune").glob("*/trials.md"))
    if sweeps:
        rows.append(("Sweeps", ", ".join(f"[{name}](tune/{name}/)" for name in sweeps)
                     + " (the ranges searched, every trial on validation, the best point)"))
    return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def headline_block(folder, link="", answer_only=False):
    """The headline rows with NDCG@10, HR@10 and the comparison page's tests; ``answer_only``: only
    the rows that answer the question (:func:`~recbole_llm.benchmark.page.answer_rows`), tested and
    adjusted as on the comparison page (the top README, which must stay short)."""
    if not folder.headline:
        return "No row at the budget's protocol yet."
    shown = page.answer_rows(folder.headline) if answer_only else None
    _, md, _, _ = page.headline_table(folder.headline, HEADLINE_METRICS, shown=shown)
    base = stats.best_baseline(folder.headline)
    where = f"{link}comparison.md"
    others = [f"[{page.PAGE_FILES[name]}]({link}{page.PAGE_FILES[name]})" for name in (page.VARIANTS, page.HISTORY)
              if folder.rows[name]]
    tested = "Δ, p (" in md
    text = md + "\n\n"
    if tested:
        text += ("Δ, p: the signed difference in test NDCG@10 and the paired t-test p over users (Holm-adjusted for "
                 "the tests of the comparison page) against the best baseline"
                 + (f" ({escape_markdown(base)}, chosen on validation)" if base else "")
                 + " and against each row's own ID base, on the seeds both rows have. ")
    if answer_only:
        text += (f"Rows: the best baseline, each LLM row and its own ID base; the other "
                 f"{len(folder.rows[page.HEADLINE]) - len(shown)} headline rows (every baseline, default and tuned) "
                 f"and every metric: [{where}]({where})")
    else:
        text += f"Every metric: [{where}]({where})"
    text += (f"; the other rows: {', '.join(others)}" if others else "") + "."
    return text


def claims_block(folder):
    """One bullet per claim of 2 or more seeds (:func:`~recbole_llm.benchmark.stats.claims`)."""
    found = stats.claims(folder.headline) if folder.headline else []
    if not found:
        return ("No comparison of the headline rows has 2 or more seeds yet: a claim needs them (the pages give "
                "the one-seed tests).")
    return "\n".join(f"- {c}" for c in found)


def _page_claims(folder, spec):
    """The claims of one variant page's tests, from the records (as the page computes them)."""
    from recbole_llm.benchmark import variants

    records = folder.records
    if spec["seeds"]:
        records = [r for r in records if r["seed"] in set(spec["seeds"])]
    grouped = group_rows(records)
    try:
        variants._check_rows(grouped, spec["reference"], spec["rows"])
    except UserError as err:
        return [f"Out of date: {err}; redraw it with `{spec['command']}` after fixing its rows."]
    tests, _ = variants.variant_tests(grouped, spec["reference"], spec["rows"], spec["metric"])
    return stats.claims_of(tests, spec["metric"])


def pages_block(folder, link=""):
    """The folder's pages: the comparison page's others, the cost, and each variant page with its claims."""
    lines = [f"- [comparison.md]({link}comparison.md): the headline rows, every metric "
             f"({_count(len(folder.rows[page.HEADLINE]), 'row')})"]
    if folder.rows[page.VARIANTS]:
        lines.append(f"- [comparison-variants.md]({link}comparison-variants.md): every variant of the models' "
                     f"defaults beside the best baseline and its own ID base "
                     f"({_count(len(folder.rows[page.VARIANTS]), 'row')})")
    if folder.rows[page.HISTORY]:
        lines.append(f"- [comparison-history.md]({link}comparison-history.md): runs under an epoch cap below the "
                     f"budget's ({_count(len(folder.rows[page.HISTORY]), 'row')})")
    lines.append(f"- [cost.md]({link}cost.md): time, throughput, memory and parameters of every row")
    if (folder.path / "tuning.md").is_file():
        lines.append(f"- [tuning.md]({link}tuning.md): each ID model's default row against its row tuned on "
                     "validation, with the sweep's best point and trials")
    specs = page.variant_pages(folder.path)
    full = {stem: spec for stem, spec in specs.items() if folder.sections.get(spec["reference"]) != page.HISTORY}
    short = {stem: spec for stem, spec in specs.items() if stem not in full}
    if full:
        lines += ["", "Variant pages (each row against the page's reference row, on the seeds both have):", ""]
    for stem, spec in full.items():
        lines.append(f"- [{spec['title']}]({link}{stem}.md): reference `{spec['reference']}`; "
                     f"{_count(len(spec['rows']), 'row')}")
        lines += [f"  - {c}" for c in _page_claims(folder, spec)]
    if short:
        lines += ["", "Variant pages of short runs (what a variant does in a few epochs, not where it ends): "
                  + ", ".join(f"[{spec['title']}]({link}{stem}.md)" for stem, spec in short.items()) + "."]
    return "\n".join(lines)


def index_block(folders, link=""):
    """Every results folder: what it holds, and its claims."""
    lines = ["| Results | Budget | Runs | Headline rows | Variant rows | Short-run rows | Best baseline | Pages |",
             "|---|---|---|---|---|---|---|---|"]
    for f in folders:
        base = stats.best_baseline(f.headline) if f.headline else None
        lines.append(f"| [{f.name}]({link}{f.name}/README.md) | {f.budget} | {len(latest_per_seed(f.records))} | "
                     f"{len(f.rows[page.HEADLINE])} | {len(f.rows[page.VARIANTS])} | {len(f.rows[page.HISTORY])} | "
                     f"{escape_markdown(base or '-')} | [comparison]({link}{f.name}/comparison.md), "
                     f"[cost]({link}{f.name}/cost.md) |")
    for f in folders:
        lines += ["", f"**{f.name}**:", "", claims_block(f)]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- filling the files
def _relative(target_dir, folder_path):
    rel = os.path.relpath(Path(folder_path), Path(target_dir))
    return "" if rel == "." else rel.replace(os.sep, "/") + "/"


def render_block(kind, arg, target, output, folders, own=None):
    """The text of one block ``kind`` (``arg``: a results folder name) in the file ``target``."""
    if kind == "index":
        return index_block([folders[name] for name in sorted(folders)], _relative(target.parent, output)) + (
            f"\n\nRegenerate: `{COMMAND}`")
    folder = folders.get(arg) if arg else own
    if folder is None:
        raise UserError(f"{target}: the block 'generated: {kind} {arg}' names no results folder with run records "
                        f"under {output} (known: {', '.join(sorted(folders)) or 'none'})")
    link = _relative(target.parent, folder.path)
    regenerate = f"\n\nRegenerate: `{COMMAND}`" if arg else f"\n\nRegenerate: `{folder.command()}`"
    if kind == "setting":
        return setting_block(folder) + regenerate
    if kind == "headline":
        return headline_block(folder, link, answer_only=bool(arg)) + (regenerate if arg else "")
    if kind == "claims":
        return claims_block(folder)
    if kind == "pages":
        return pages_block(folder, link)
    raise UserError(f"{target}: unknown generated block '{kind}' (known: setting, headline, claims, pages, index)")


def fill(text, render):
    """``text`` with each generated block's body replaced by ``render(kind, arg)``."""
    def sub(m):
        kind, _, arg = m.group("spec").strip().partition(" ")
        return m.group("open") + render(kind, arg.strip()).rstrip("\n") + "\n" + m.group("close")

    return BLOCK.sub(sub, text)


def blocks(text):
    """``[(spec, body)]`` of the generated blocks of ``text``."""
    return [(m.group("spec").strip(), m.group("body")) for m in BLOCK.finditer(text)]


def outside_blocks(text):
    """``text`` without its generated blocks' bodies (what was written by hand)."""
    return BLOCK.sub(lambda m: m.group("open") + m.group("close"), text)


def template(folder):
    """A new dataset README: a title, the blocks, and where hand-written notes go."""
    return (f"# {folder.name}\n\n<!-- generated: setting -->\n<!-- end generated -->\n\n"
            "## Headline\n\n<!-- generated: headline -->\n<!-- end generated -->\n\n"
            "<!-- generated: claims -->\n<!-- end generated -->\n\n"
            "## Pages\n\n<!-- generated: pages -->\n<!-- end generated -->\n")


def readme_text(path, folders, output, own=None):
    """The new text of the README at ``path`` (``own``: the folder it belongs to, if any)."""
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.is_file() else (template(own) if own else "")
    return fill(old, lambda kind, arg: render_block(kind, arg, path, output, folders, own))


def redraw_pages(folder):
    """Redraw a folder's comparison page and variant pages from their own ``Regenerate:`` commands."""
    from recbole_llm.benchmark import variants

    old = folder.path / "comparison.md"
    text = old.read_text(encoding="utf-8") if old.is_file() else ""
    found = re.search(r"^Regenerate: `(.*)`$", text, flags=re.MULTILINE)
    command = found.group(1) if found else (f"python run_benchmark.py --dataset={folder.dataset} "
                                            f"--budget={folder.budget} --tables-only")
    words = shlex.split(command)
    metrics = next((tuple(w.split("=", 1)[1].lower().split(",")) for w in words if w.startswith("--metrics=")),
                   tables.DEFAULT_METRICS)
    with page.page_lock(folder.path):
        records = [r for r in load_records(folder.path.parent, folder.dataset)
                   if r.get("budget", "full") == folder.budget]
        page.write_results_page(folder.path, folder.dataset, records, metrics, page.page_target(folder.path), command)
    for stem, spec in page.variant_pages(folder.path).items():
        variant_page = variants.VariantPage(stem, spec["title"], spec["reference"], tuple(spec["rows"]),
                                            spec["command"], spec["metric"], tuple(spec["seeds"]))
        variants.write_variants(folder.path.parent, folder.dataset, variant_page)


def write_summaries(output=DEFAULT_OUTPUT, dataset=None, top=None, pages=False, check=False):
    """Write (or with ``check``, compare) the READMEs; return the paths that changed (or would).

    ``dataset``: only that folder's README (a name under ``output``); else every folder's, then
    ``<output>/README.md`` and ``top`` (the checkout's README.md by default, when ``output`` is
    the checkout's results folder)."""
    output = Path(output)
    names = result_folders(output)
    if dataset is not None:
        if dataset not in names:
            raise UserError(f"no run records in {output / dataset / 'runs'}; results folders under {output}: "
                            f"{', '.join(sorted(names)) or 'none'}")
        names = {dataset: names[dataset]}
    folders = {name: Folder(output, name) for name in names}
    if pages and not check:
        for folder in folders.values():
            redraw_pages(folder)
        folders = {name: Folder(output, name) for name in names}
    targets = [(folder.path / "README.md", folder) for folder in folders.values()]
    if dataset is None:
        all_folders = folders
        targets.append((output / "README.md", None))
        if top is None and _is_default(output):
            top = REPO / "README.md"
        if top is not None:
            targets.append((Path(top), None))
    else:
        all_folders = folders
    changed = []
    for path, own in targets:
        if own is None and not path.is_file():
            continue
        new = readme_text(path, all_folders, output, own)
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if new != old:
            changed.append(path)
            if not check:
                from recbole_llm.fsutil import atomic_write_text

                atomic_write_text(path, new)
    return changed


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog=COMMAND, description="Write the generated parts of the READMEs (the setting, "
                                "the headline table, the claims, the pages) from the run records.")
    p.add_argument("--output", default=DEFAULT_OUTPUT, help="results folder (default: results/)")
    p.add_argument("--dataset", default=None,
                   help="only this results folder's README (a name under --output, e.g. amazon-scientific)")
    p.add_argument("--top", default=None, help="the top README to fill (default: README.md of this checkout, "
                                               "with the default --output)")
    p.add_argument("--pages", action="store_true",
                   help="first redraw each folder's comparison page and variant pages from their Regenerate lines")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a README is not what the "
                                                        "records give")
    args = p.parse_args(argv)
    changed = write_summaries(args.output, args.dataset, args.top, args.pages, args.check)
    for path in changed:
        print(f"[recbole-llm] {'stale' if args.check else 'written'}: {path}")
    if args.check and changed:
        return 1
    if not changed:
        print("[recbole-llm] the READMEs are what the records give")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
