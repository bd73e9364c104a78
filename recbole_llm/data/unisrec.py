"""UniSRec "downstream" datasets -> one RecBole ``.inter`` that reproduces the published split.

The UniSRec layout (RUCAIBox/UniSRec, Hou et al., KDD 2022) for a prefix ``X``:

* ``X.text``: header ``item_id:token<TAB>text:token_seq``; ASIN, then "<title>. <category path>. <brand>. ";
* ``X.item2index`` / ``X.user2index``: ``<raw id><TAB><integer index>``, no header;
* ``X.train.inter`` / ``X.valid.inter`` / ``X.test.inter``: header
  ``user_id:token<TAB>item_id_list:token_seq<TAB>item_id:token``, integer indices, history oldest first.

:func:`convert_unisrec` rebuilds each user's full sequence (test history + test target), checks
that the three files are one leave-one-out split of it, and writes ``<name>.inter`` with the
position in the sequence as ``timestamp``. RecBole's sequential pipeline with
``eval_args: {split: {LS: valid_and_test}, order: TO}`` then yields exactly the published
train/valid/test samples (repeated items included: RecBole keeps duplicate interactions unless
``rm_dup_inter`` is set).

Tokens are UniSRec's integer indices (users and items), not ASINs/reviewer IDs: the published
split files, UniSRec's precomputed text embeddings (``X.feat1CLS``, row = item index) and its
checkpoints are all keyed by these integers, so the RecBole dataset lines up with them with no
translation table; the ASIN stays recoverable through ``X.item2index``.
"""

import logging
from collections import Counter
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from recbole_llm.data.atomic import normalize_text, parse_header, write_dataset
from recbole_llm.errors import UserError

logger = logging.getLogger(__name__)

INTER_HEADER = [("user_id", "token"), ("item_id_list", "token_seq"), ("item_id", "token")]
TEXT_HEADER = [("item_id", "token"), ("text", "token_seq")]


def _need(path):
    if not Path(path).is_file():
        raise UserError(f"{path} not found: --src must be a UniSRec downstream folder holding <prefix>.text, "
                        "<prefix>.item2index and <prefix>.{train,valid,test}.inter (check --src and --prefix)")
    return Path(path)


def _lines(path):
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f, 1):
            yield lineno, line.rstrip("\r\n")


def _check_header(path, line, expected):
    header = parse_header(line, path)
    if [n for n, _ in header] != [n for n, _ in expected]:
        want = "<TAB>".join(f"{n}:{t}" for n, t in expected)
        raise UserError(f"{path}: header is {line!r}, expected {want!r} (UniSRec downstream layout)")


def read_index(path):
    """``{raw id: integer index as str}`` from ``X.item2index`` / ``X.user2index``."""
    mapping = {}
    for lineno, line in _lines(path):
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[1].strip().isdigit():
            raise UserError(f"{path} line {lineno} is {line[:60]!r}, expected '<raw id><TAB><integer index>'")
        mapping[parts[0]] = parts[1].strip()
    return mapping


def read_split(path):
    """``[(user, [history items], target)]`` from a ``X.<split>.inter`` file (tokens as str)."""
    rows = []
    for lineno, line in _lines(path):
        if lineno == 1:
            _check_header(path, line, INTER_HEADER)
            continue
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) != 3 or not parts[0] or not parts[2].strip():
            raise UserError(f"{path} line {lineno} has {len(parts)} tab-separated fields, expected "
                            "'user<TAB>space-separated history<TAB>target'")
        rows.append((parts[0], parts[1].split(), parts[2].strip()))
    return rows


def read_text(path):
    """``{ASIN: text}`` from ``X.text`` (read line by line: UniSRec does not quote its text)."""
    texts = {}
    for lineno, line in _lines(path):
        if lineno == 1:
            _check_header(path, line, TEXT_HEADER)
            continue
        if not line:
            continue
        asin, sep, text = line.partition("\t")
        if not sep:
            raise UserError(f"{path} line {lineno} has no tab; expected '<ASIN><TAB><text>'")
        texts.setdefault(asin, normalize_text(text))
    return texts


def detect_category_marker(texts, min_share=0.5, max_words=6):
    """The top-level category that starts the category part of most texts, or ``None``.

    UniSRec text is "<title>. <category path>. <brand>. ", and the category path of a category
    dataset starts with that category's name ("Industrial & Scientific ...", "Musical Instruments
    ...", "Office Products ..."). Returns the longest word prefix (up to ``max_words`` words) that
    follows some ". " in at least ``min_share`` of the texts.
    """
    texts = [t for t in texts if t]
    if not texts:
        return None
    counts = Counter()
    for text in texts:
        seen = set()
        for segment in text.split(". ")[1:]:
            words = segment.split()
            for k in range(1, min(max_words, len(words)) + 1):
                seen.add(" ".join(words[:k]))
        counts.update(seen)
    best = None
    for prefix, n in counts.items():
        if n >= 2 and n > min_share * len(texts) and (best is None or len(prefix.split()) > len(best.split())):
            best = prefix
    return best


def title_from_text(text, category_marker=None):
    """The title part of a UniSRec item text.

    1. text before ``". " + category_marker`` when the marker is given and present;
    2. else text before ``". . "`` (an item with an empty category: "<title>. . <brand>. ");
    3. else text before the first ``". "`` (approximate: a title may itself contain ". ");
    4. else the whole text. A trailing "." is removed.
    """
    text = normalize_text(text)
    for sep in ([". " + category_marker] if category_marker else []) + [". . ", ". "]:
        head, found, _ = text.partition(sep)
        if found and head.strip():
            text = head
            break
    return text.strip().rstrip(".").strip()


def rebuild_sequences(train, valid, test, prefix="X"):
    """``{user: full item sequence}`` from the three splits, checking they are one leave-one-out split.

    Raises :class:`UserError` when a user appears twice in valid/test, when the user sets differ,
    when valid history + valid target != test history, when the train rows are not exactly
    the prefixes (targets at positions 1 .. len-3) of the rebuilt sequences, or when a sequence
    has fewer than 4 items (RecBole's leave-one-out would then move its valid sample to train).
    """
    seqs, valid_by_user = {}, {}
    for name, rows, store in ((f"{prefix}.test.inter", test, seqs), (f"{prefix}.valid.inter", valid, valid_by_user)):
        for user, hist, target in rows:
            if user in store:
                raise UserError(f"{name}: user {user} has more than one row; a leave-one-out split has one per user")
            store[user] = hist + [target] if store is seqs else (hist, target)
    if set(seqs) != set(valid_by_user):
        diff = sorted(set(seqs) ^ set(valid_by_user))[:5]
        raise UserError(f"{prefix}.valid.inter and {prefix}.test.inter have different users (e.g. {diff}); "
                        "use the three split files of one UniSRec dataset")
    bad = [u for u, (h, t) in valid_by_user.items() if h + [t] != seqs[u][:-1]]
    if bad:
        u = bad[0]
        raise UserError(f"{prefix}.valid.inter: for {len(bad)} users (e.g. user {u}) valid history + valid target "
                        f"!= the test history in {prefix}.test.inter, so the files are not one leave-one-out split")
    # histories longer than the longest published train history were truncated by the publisher
    max_hist = max((len(h) for _, h, _ in train), default=1)
    expected = Counter()
    for user, seq in seqs.items():
        for t in range(1, len(seq) - 2):
            expected[(user, tuple(seq[max(0, t - max_hist):t]), seq[t])] += 1
    found = Counter((u, tuple(h), t) for u, h, t in train)
    if found != expected:
        extra = sum((found - expected).values())
        missing = sum((expected - found).values())
        example = next(iter(found - expected or expected - found))
        raise UserError(f"{prefix}.train.inter has {extra} rows that are not, and lacks {missing} rows that are, "
                        f"prefixes of the sequences rebuilt from {prefix}.test.inter (e.g. user {example[0]} target "
                        f"{example[2]}); RecBole's leave-one-out split cannot reproduce it")
    short = [u for u, s in seqs.items() if len(s) < 4]
    if short:
        # RecBole's leave-one-out keeps >= 1 training sample per user: with 2 samples (3 items) the
        # valid one goes to train, with 1 sample (2 items) the test one does.
        raise UserError(f"{prefix}.test.inter: {len(short)} users (e.g. user {short[0]}) have fewer than 4 items; "
                        "RecBole's leave-one-out split keeps at least one training sample per user, so it cannot "
                        "reproduce their valid/test rows: remove these users from the split files")
    return seqs


def _sort_key(token):
    return (0, int(token), "") if token.isdigit() else (1, 0, token)


def convert_unisrec(src_dir, prefix, data_path, name, category_marker=None):
    """Convert the UniSRec downstream dataset ``<src_dir>/<prefix>.*`` to ``<data_path>/<name>/``.

    Writes ``<name>.inter`` (user_id:token, item_id:token, timestamp:float = position 0, 1, ...
    in the user's sequence) and ``<name>.item`` (item_id:token, title:token_seq, text:token_seq)
    for every item of ``<prefix>.item2index``; ``title`` comes from :func:`title_from_text` with
    ``category_marker`` (``None``: detected with :func:`detect_category_marker`; ``""``: none).
    Returns counts: users, items, interactions, train/valid/test rows, items without text,
    titles split at the category marker, and the marker used.
    """
    src = Path(src_dir)
    paths = {k: _need(src / f"{prefix}.{k}") for k in ("text", "item2index", "train.inter", "valid.inter",
                                                       "test.inter")}
    splits = {k: read_split(paths[f"{k}.inter"]) for k in ("train", "valid", "test")}
    seqs = rebuild_sequences(splits["train"], splits["valid"], splits["test"], prefix)

    item2index = read_index(paths["item2index"])
    index2item = {}
    for asin, idx in item2index.items():
        if idx in index2item:
            raise UserError(f"{paths['item2index']}: index {idx} is given to both {index2item[idx]} and {asin}; "
                            "indices must be unique")
        index2item[idx] = asin
    unknown = sorted({i for s in seqs.values() for i in s} - set(index2item), key=_sort_key)
    if unknown:
        raise UserError(f"{len(unknown)} item indices of {prefix}.*.inter (e.g. {unknown[:3]}) are not in "
                        f"{paths['item2index']}; use the files of one UniSRec dataset")
    user_file = src / f"{prefix}.user2index"
    if user_file.is_file():
        known_users = set(read_index(user_file).values())
        stray = sorted(set(seqs) - known_users, key=_sort_key)
        if stray:
            raise UserError(f"{len(stray)} users of {prefix}.test.inter (e.g. {stray[:3]}) are not in {user_file}; "
                            "use the files of one UniSRec dataset")

    texts = read_text(paths["text"])
    marker = detect_category_marker(texts.values()) if category_marker is None else (category_marker or None)

    users = sorted(seqs, key=_sort_key)
    rows = []
    for user in tqdm(users, desc=f"{name}: sequences", unit=" users", disable=None):
        rows.extend((user, item, pos) for pos, item in enumerate(seqs[user]))
    inter = pd.DataFrame(rows, columns=["user_id:token", "item_id:token", "timestamp:float"])

    item_rows, no_text, split_at_marker = [], 0, 0
    for idx in sorted(index2item, key=_sort_key):
        text = texts.get(index2item[idx], "")
        no_text += not text
        split_at_marker += bool(marker) and (". " + marker) in text
        item_rows.append((idx, title_from_text(text, marker), text))
    item = pd.DataFrame(item_rows, columns=["item_id:token", "title:token_seq", "text:token_seq"])
    if no_text:
        logger.warning("%s: %d of %d items have no text in %s (empty title)", name, no_text, len(item_rows),
                       paths["text"])
    out = write_dataset(data_path, name, {"inter": inter, "item": item})
    counts = {"users": len(users), "items": len({i for s in seqs.values() for i in s}), "interactions": len(inter),
              "train_rows": len(splits["train"]), "valid_rows": len(splits["valid"]),
              "test_rows": len(splits["test"]), "items_in_index": len(index2item), "items_without_text": no_text,
              "titles_at_marker": split_at_marker, "category_marker": marker}
    logger.info("%s: wrote %s (%d users, %d items, %d interactions; %d/%d titles split at %r)", name, out,
                counts["users"], counts["items"], counts["interactions"], split_at_marker, len(item_rows), marker)
    return counts
