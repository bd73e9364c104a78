"""The speed benchmark: how fast each model trains and evaluates here, on the same batches.

    python -m recbole_llm.benchmark.speed --dataset=amazon-scientific --label=after
    # "before" rows from an older checkout of the package (this file, that package):
    PYTHONPATH=<old checkout> python <this checkout>/recbole_llm/benchmark/speed.py \\
        --dataset=amazon-scientific --label=d74d64c --output=<this checkout>/results/speed

For every model (default: SASRec, GRU4Rec, ComiRec, BERT4Rec, IDLEAdapter and RARec on the
default LM, IDLEAdapter and RARec on a tiny LM of 2 layers and hidden size 32 built in-process)
it measures, with the model's own config (batch sizes included) and a fixed seed:

* training samples/s: ``--batches`` steps as RecBole's trainer makes them (zero_grad, loss,
  backward, optimizer step, ``loss.item()``), timed on a second pass over the same batches
  after an untimed first pass (which also fills the LLM models' ``h~`` cache, as epoch 1 does
  for the epochs after it);
* full-ranking evaluation users/s: ``full_sort_predict`` and the top-k over the first
  ``--batches`` validation batches, after the first of them once untimed (RA-Rec's item
  tower, encoded once per evaluation, is encoded then);
* for the LLM models, the model's forward+backward and the bare frozen LM's forward+backward
  (``bare_lm_step``) on the same batches, and their ratio, the adapter throughput ratio the run
  records carry (1.0: the adapter costs nothing beyond the LM);
* for the LLM models, how close the bare LM comes to the hardware: its achieved GFLOP/s (the
  FLOPs of its forward+backward on those batches, :func:`count_flops`, over the time it took)
  against the GFLOP/s of a square bf16 matmul timed in the same run on the same device and
  threads (:func:`matmul_rate`), and their ratio (1.0: the LM computes as fast as a bare matmul);
* SASRec once more through plain RecBole in a fresh process that never imports this package
  (RecBole's ``Config``, ``get_model`` and data preparation; autograd anomaly mode as
  RecBole leaves it: on, since its ``sine.py`` switches it on at import), and the ratio of our
  SASRec's training speed to it: what a user gains by running RecBole's model through this
  toolkit.

Other ``--key=value`` options set that config key for every model of the run, as in
``run_benchmark.py`` (checked the same way: a key no model reads is a one-line error), and each
row records them in its ``overrides`` column; give such a run its own ``--label``, e.g. the cost of
IDLE-Adapter's hard prompt at three lengths::

    for T in 64 128 256; do python -m recbole_llm.benchmark.speed --models=IDLEAdapter --no-plain \
        --prompt_max_tokens=$T --label="prompt_max_tokens=$T"; done

Each row records whether anomaly mode was on while it was timed, and the run records the
hardware (CPU, whether it has AVX512-BF16/AMX, GPU), threads, torch version and the commit
of the package measured. Results go to ``<output>/<dataset>.{md,csv,json}``, written
atomically; rows are kept by ``--label``: a new run replaces the rows of its own label and
keeps the others, so "before" and "after" rows stay side by side. ``--tables-only`` rewrites
the .csv and .md from the .json alone. Timings are measurements
of one machine at one moment; nothing asserts them.

Only public entry points of the package are used (``recbole_llm.config.Config``,
``recbole_llm.utils.get_model``, ``recbole_llm.data.tuning.create_dataset``, the models'
``calculate_loss``/``full_sort_predict``/``bare_lm_step``), so the script runs against an older
checkout of it (commit d74d64c and later).
"""

import argparse
import csv
import inspect
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # run as a script: the package comes from PYTHONPATH, not from beside this file

HERE = Path(__file__).resolve().parents[2]  # the checkout this script belongs to (results/ live there)
DEFAULT_MODELS = ("SASRec", "GRU4Rec", "ComiRec", "BERT4Rec", "IDLEAdapter", "RARec", "IDLEAdapter@tiny",
                  "RARec@tiny")
TINY = "@tiny"
COLUMNS = ("label", "model", "lm", "overrides", "train_batch_size", "train_samples_per_s", "eval_users_per_s",
           "model_fwd_bwd_samples_per_s", "bare_lm_samples_per_s", "adapter_throughput_ratio",
           "bare_lm_gflop_per_s", "matmul_gflop_per_s", "bare_lm_over_matmul",
           "ours_over_plain_recbole", "anomaly_mode", "batches", "eval_batches", "threads", "device", "commit")
# The bare LM's FLOP rate against a matmul's, measured since issue 39 (part 3): an LLM row of an older
# label has none and reads n/a in them (a row without a bare LM: blank).
FLOP_COLUMNS = ("bare_lm_gflop_per_s", "matmul_gflop_per_s", "bare_lm_over_matmul")
# Square bf16 matmuls timed for the machine's rate (the best of them counts): on the 2-core AVX512-BF16
# EPYC of results/speed, 512, 1024 and 2048 came within 4% of one another (the rate is the machine's,
# not the size's), 1024 the best when it had the CPU alone.
MATMUL_SIZES = (1024, 2048)


# ------------------------------------------------------------------ timing loops
def _sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


def time_steps(step, batches, device, passes=2):
    """Samples/s of ``step(batch)`` over ``batches``: every pass but the last is untimed."""
    for _ in range(passes - 1):
        for batch in batches:
            step(batch)
    _sync(device)
    start, samples = time.perf_counter(), 0
    for batch in batches:
        step(batch)
        samples += len(batch)
    _sync(device)
    return samples / (time.perf_counter() - start)


def train_step(model, optimizer):
    """One training step as RecBole's ``Trainer._train_epoch`` makes it."""

    def step(batch):
        optimizer.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def _attention_flops():
    """FLOP formulas for ``scaled_dot_product_attention``'s fused kernels, for
    :class:`FlopCounterMode`: its table has none for the CPU flash-attention kernels (the ones SDPA
    runs on a CPU), and it credits the CUDA kernels' backward with the scores they recompute (a
    fifth matmul). Here every kernel counts the attention's math once: forward its two matmuls,
    backward the four of their gradients, as eager attention's matmuls count, so that rows with
    either kernel hold the same work against their times."""
    import torch
    from torch.utils import flop_counter

    aten = torch.ops.aten

    def forward(query_shape, key_shape, value_shape, *args, **kwargs):  # kwargs: out_shape, the mask's
        return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

    def backward(grad_out_shape, query_shape, key_shape, value_shape, *args, **kwargs):
        return 2 * flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

    names = {"_scaled_dot_product_flash_attention_for_cpu": forward,
             "_scaled_dot_product_flash_attention_for_cpu_backward": backward,
             "_scaled_dot_product_flash_attention_backward": backward,
             "_scaled_dot_product_efficient_attention_backward": backward,
             "_scaled_dot_product_cudnn_attention_backward": backward}
    # FlopCounterMode hands each formula the shapes of the op's tensors
    return {getattr(aten, name): formula for name, formula in names.items() if hasattr(aten, name)}


def count_flops(step, batches):
    """FLOPs of ``step(batch)`` over ``batches``, one untimed pass, counted by torch's
    :class:`~torch.utils.flop_counter.FlopCounterMode` (matmuls and attention, forward and
    backward; elementwise work counts nothing), with the fused attention kernels counted as the
    attention's math (:func:`_attention_flops`).

    Counted rather than written down from the LM's config: the mode sees the kernels that ran, for
    each batch's own padded width, so every architecture counts right without a table of its
    shapes (grouped-query attention, fused projections, BERT's pooler, and a backward that computes
    no weight gradient since the LM is frozen: its matmuls cost one forward's, not two). It
    counts the padded positions too, which the kernels compute."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False, custom_mapping=_attention_flops()) as counter:
        for batch in batches:
            step(batch)
    return counter.get_total_flops()


def matmul_rate(device, sizes=MATMUL_SIZES, repeats=5):
    """``(GFLOP/s, n)``: the best rate of a square bf16 matmul ``[n, n] @ [n, n]`` over ``sizes``
    (``2 n^3`` FLOPs each), each size timed ``repeats`` times after one untimed call, on ``device``
    with the threads set for the run: the rate the bare LM's is held against."""
    import torch

    best = (0.0, 0)
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        a @ b
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            a @ b
            _sync(device)
            best = max(best, (2 * n ** 3 / (time.perf_counter() - start) / 1e9, n))
    return best


def eval_rate(model, batches, device, k):
    """Users/s of full-ranking scoring and top-k over ``batches``, after the first of them once
    untimed (a baseline's validation set may be a single batch of 4,096 users)."""
    import torch

    model.eval()
    with torch.no_grad():
        scores = model.full_sort_predict(batches[0])
        k = min(k, scores.shape[-1])
        torch.topk(scores, k, dim=-1)
        _sync(device)
        start, users = time.perf_counter(), 0
        for batch in batches:
            torch.topk(model.full_sort_predict(batch), k, dim=-1)
            users += len(batch)
        _sync(device)
    return users / (time.perf_counter() - start)


# The plain-RecBole process: RecBole alone, the same step and the same loop as above.
PLAIN_SCRIPT = '''
import json, sys, time
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, init_seed
{helpers}
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
config = Config(model="SASRec", dataset=args["dataset"], config_file_list=args["files"], config_dict=args["config"])
init_seed(config["seed"], config["reproducibility"])
train_data, _, _ = data_preparation(config, create_dataset(config))
init_seed(config["seed"], config["reproducibility"])
model = get_model("SASRec")(config, train_data._dataset).to(config["device"])
optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
batches = []
for interaction in train_data:
    batches.append(interaction.to(config["device"]))
    if len(batches) >= args["batches"]:
        break
model.train()
rate = time_steps(train_step(model, optimizer), batches, config["device"])
print("PLAIN_RESULT " + json.dumps({{"train_samples_per_s": rate, "anomaly_mode": torch.is_anomaly_enabled()}}))
'''


# ------------------------------------------------------------------ the models
def tiny_lm(folder):
    """A random-init BERT of 2 layers and hidden size 32 with the default LM's tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from recbole_llm.config import Config  # noqa: F401 (the package's import applies its compat)

    default = _default_lm_path()
    tokenizer = AutoTokenizer.from_pretrained(default)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _default_lm_path():
    from recbole_llm.lm.resolve import DEFAULT_LM, resolve_lm

    return resolve_lm(DEFAULT_LM).path


def build(name, args, saved_dir, tiny_path):
    """(config, train_data, valid_data, model) for one entry of ``--models``."""
    import torch
    try:  # saved dataloaders only under trust_checkpoint (recbole_llm.data.dataset)
        from recbole_llm.data.dataset import data_preparation
    except ImportError:  # an older checkout
        from recbole.data import data_preparation
    from recbole.utils import init_seed

    from recbole_llm.config import Config
    from recbole_llm.utils import get_model

    model_name = name[: -len(TINY)] if name.endswith(TINY) else name
    model_class = get_model(model_name)
    overrides = {"data_path": str(Path(args.data_path).resolve()), "data_root": str(Path(args.data_path).resolve()),
                 "checkpoint_dir": str(saved_dir / "checkpoints"), "seed": args.seed, "show_progress": False,
                 "epochs": 1}
    is_llm = any(c.__name__ == "LLMSequentialRecommender" for c in model_class.__mro__)
    if is_llm:
        # The ID model only feeds u and item vectors: one epoch of it costs the same per step as fifty.
        overrides["id_model_config"] = {"epochs": 1}
        overrides["measure_overhead_batches"] = 0
        if name.endswith(TINY):
            overrides["lm_name"] = tiny_path
    overrides.update(getattr(args, "config", None) or {})
    config = Config(model_name, args.dataset, [], overrides)
    if is_llm:
        try:
            from recbole_llm.pipeline import ensure_id_model
        except ImportError:  # an older checkout (before the explicit pipeline): the model's own hook
            model_class.prepare(config)
        else:
            try:
                from recbole_llm.spec import RunSpec
            except ImportError:  # a checkout before the run spec
                config["id_model_checkpoint"] = str(ensure_id_model(config))
            else:
                spec = RunSpec(model_name, args.dataset, args.seed, (), {}, args.data_path, saved_dir)
                config["id_model_checkpoint"] = str(ensure_id_model(config, spec))
        from recbole_llm.data.tuning import create_dataset as create_tuning_dataset

        dataset = create_tuning_dataset(config)
    else:
        try:  # the datasets a run of this package builds (exact-time order, Copy-on-Write fills)
            from recbole_llm.data.dataset import create_dataset
        except ImportError:  # an older checkout: RecBole's, as its runs did
            from recbole.data import create_dataset
        dataset = create_dataset(config)
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, _ = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = model_class(config, train_data._dataset).to(config["device"])
    torch.set_num_threads(args.threads)  # building an LLM model may train an ID model, which resets nothing here
    return config, train_data, valid_data, model


def first_batches(loader, n, device, full_sort=False):
    out = []
    for item in loader:
        interaction = item[0] if full_sort else item
        out.append(interaction.to(device))
        if len(out) >= n:
            break
    return out


def measure(name, args, saved_dir, tiny_path):
    import torch

    config, train_data, valid_data, model = build(name, args, saved_dir, tiny_path)
    device = config["device"]
    params = [p for p in model.parameters() if p.requires_grad]
    learner = str(config["learner"]).lower()
    optimizer = (torch.optim.AdamW if learner == "adamw" else torch.optim.Adam)(params, lr=config["learning_rate"])
    batches = first_batches(train_data, args.batches, device)
    row = {"model": name, "train_batch_size": int(config["train_batch_size"]),
           "lm": str(config["lm_name"]) if "lm_name" in config and hasattr(model, "lm") else "",
           "batches": len(batches), "device": str(device),
           "overrides": " ".join(f"{k}={v}" for k, v in (getattr(args, "config", None) or {}).items())}
    if name.endswith(TINY):
        row["lm"] = "tiny (2 layers, hidden 32)"
    model.train()
    row["train_samples_per_s"] = time_steps(train_step(model, optimizer), batches, device)
    row["anomaly_mode"] = torch.is_anomaly_enabled()
    if hasattr(model, "bare_lm_step"):
        def fwd_bwd(batch):
            model.calculate_loss(batch).backward()

        row["model_fwd_bwd_samples_per_s"] = time_steps(fwd_bwd, batches, device)
        row["bare_lm_samples_per_s"] = time_steps(model.bare_lm_step, batches, device)
        row["adapter_throughput_ratio"] = row["model_fwd_bwd_samples_per_s"] / row["bare_lm_samples_per_s"]
        samples = sum(len(batch) for batch in batches)
        row["bare_lm_gflop_per_sample"] = count_flops(model.bare_lm_step, batches) / samples / 1e9
        row["bare_lm_gflop_per_s"] = row["bare_lm_gflop_per_sample"] * row["bare_lm_samples_per_s"]
        row["matmul_gflop_per_s"], row["matmul_n"] = matmul_rate(device)
        row["bare_lm_over_matmul"] = row["bare_lm_gflop_per_s"] / row["matmul_gflop_per_s"]
        model.zero_grad(set_to_none=True)
    eval_batches = first_batches(valid_data, args.batches, device, full_sort=True)
    row["eval_users_per_s"] = eval_rate(model, eval_batches, device, max(config["topk"]))
    row["eval_batches"] = len(eval_batches)
    return row, config


def plain_recbole(args, config):
    """SASRec's training speed through RecBole alone, in a process that never imports this package."""
    from recbole_llm.config import default_config_files

    helpers = "\n".join(inspect.getsource(f) for f in (_sync, time_steps, train_step))
    script = PLAIN_SCRIPT.format(helpers=helpers)
    payload = {
        "dataset": args.dataset, "threads": args.threads, "batches": args.batches,
        "files": [str(f) for f in default_config_files("SASRec", args.dataset)],
        "config": {"data_path": str(Path(args.data_path).resolve()), "seed": args.seed, "show_progress": False,
                   "checkpoint_dir": tempfile.mkdtemp(prefix="recbole-llm-speed-plain-")},
    }
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with tempfile.TemporaryDirectory() as cwd:  # RecBole writes ./log and ./saved
        out = subprocess.run([sys.executable, "-c", script, json.dumps(payload)], capture_output=True, text=True,
                             cwd=cwd, env=env, timeout=3600)
    for line in out.stdout.splitlines():
        if line.startswith("PLAIN_RESULT "):
            return json.loads(line[len("PLAIN_RESULT "):])
    raise RuntimeError(f"plain RecBole run failed: {(out.stderr or out.stdout).strip()[-800:]}")


# ------------------------------------------------------------------ environment
def environment(threads):
    import torch

    import recbole_llm

    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    package_root = Path(recbole_llm.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(package_root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(package_root), "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)results"], capture_output=True, text=True, check=True).stdout.strip()
        commit += "-dirty" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "cpu": cpu, "cores": os.cpu_count(), "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "threads": threads,
        "torch": torch.__version__, "package": str(package_root), "commit": commit,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ------------------------------------------------------------------ output
def _atomic_write(path, text):
    # fsutil.atomic_path rather than fsutil.atomic_write_text: this file also runs against older
    # checkouts of the package (d74d64c), whose fsutil has atomic_path only
    from recbole_llm.fsutil import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def _fmt(value):
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:,.0f}"
    return str(value)


def write_results(output, dataset, label, rows, env, command):
    """Merge this run's rows into ``<output>/<dataset>.json`` (replacing its label's) and
    rewrite the .json, .csv and .md from all of them."""
    json_path = Path(output) / f"{dataset}.json"
    stored = json.loads(json_path.read_text(encoding="utf-8")) if json_path.is_file() else {"runs": []}
    runs = [r for r in stored["runs"] if r["label"] != label]
    entry = {"label": label, "environment": env, "rows": rows, "command": command}
    try:  # no path of this machine in a committed file (a checkout before recbole_llm.paths keeps them)
        from recbole_llm.paths import CHECKOUT, portable_record

        entry = portable_record(entry, {"checkout": CHECKOUT})
    except ImportError:
        pass
    runs.append(entry)
    _atomic_write(json_path, json.dumps({"dataset": dataset, "runs": runs}, indent=1, sort_keys=True) + "\n")
    return write_tables(output, dataset)


def write_tables(output, dataset):
    """Rewrite ``<output>/<dataset>.csv`` and ``.md`` from every label of ``<output>/<dataset>.json``
    (``--tables-only``); return the path of the ``.md``."""
    runs = json.loads((Path(output) / f"{dataset}.json").read_text(encoding="utf-8"))["runs"]
    flat = [{**row, "label": run["label"], "threads": run["environment"]["threads"],
             "commit": run["environment"]["commit"]} for run in runs for row in run["rows"]]
    for row in flat:
        if row.get("bare_lm_samples_per_s") is not None:  # an LLM row
            row.update({c: "n/a" for c in FLOP_COLUMNS if row.get(c) is None})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(flat)
    _atomic_write(Path(output) / f"{dataset}.csv", buf.getvalue())

    lines = [f"# Speed on {dataset}", "",
             "Generated by `recbole_llm.benchmark.speed` (its docstring says what is timed and how); "
             "rows are kept per label. Samples/s and users/s: higher is faster. The adapter throughput ratio is "
             "the model's forward+backward over the bare frozen LM's on the same batches; `ours / plain` is our "
             "SASRec's training speed over plain RecBole's. `bare_lm_gflop_per_s`: the FLOPs of the bare LM's "
             "forward+backward on those batches (counted by torch's FlopCounterMode) over its time; "
             "`matmul_gflop_per_s`: a square bf16 matmul's rate in the same run, same device and threads; "
             "`bare_lm_over_matmul`: their ratio (n/a: a row from before they were measured).", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in flat:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in COLUMNS) + " |")
    lines += ["", "## Hardware per label", "", "| label | cpu | cores | avx512_bf16 | amx_bf16 | gpu | threads | torch "
              "| commit | date |", "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        e = run["environment"]
        lines.append(f"| {run['label']} | {e['cpu']} | {e['cores']} | {_fmt(e['avx512_bf16'])} | {_fmt(e['amx_bf16'])} "
                     f"| {e['gpu'] or '-'} | {e['threads']} | {e['torch']} | {e['commit']} | {e['date']} |")
    lines += ["", "Commands:", ""] + [f"    {run['command']}" for run in runs] + [""]
    _atomic_write(Path(output) / f"{dataset}.md", "\n".join(lines))
    return Path(output) / f"{dataset}.md"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Other --key=value options set that config key for every model (see the docstring).")
    p.add_argument("--dataset", default="amazon-scientific")
    p.add_argument("--data-path", default=str(HERE / "dataset"))
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help=f"comma list; <Model>{TINY} runs an LLM model on the tiny LM (default: %(default)s)")
    p.add_argument("--batches", type=int, default=8, help="timed training and evaluation batches per model")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads (default: every core)")
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--label", default=None, help="row label kept in the tables (default: the package's commit)")
    p.add_argument("--output", default=str(HERE / "results" / "speed"))
    p.add_argument("--saved-dir", default=str(HERE / "saved" / "speed"),
                   help="ID-model checkpoints of the LLM models (reused by the next run)")
    p.add_argument("--no-plain", action="store_true", help="skip the plain-RecBole SASRec comparison")
    p.add_argument("--tables-only", action="store_true",
                   help="only rewrite the .csv and .md from the stored .json (every label), timing nothing")
    args, extra = p.parse_known_args(argv)
    args.config = {}
    if extra:  # imported only here: without overrides this file still runs against older checkouts
        from recbole_llm.config import Config, check_keys, parse_overrides

        strings = parse_overrides(extra, p.error)
        if args.tables_only:
            p.error("--tables-only times nothing: it takes no --key=value options")
        check_keys(strings, [], [m.strip().removesuffix(TINY) for m in args.models.split(",") if m.strip()],
                   args.dataset)
        args.config = Config._convert_config_dict(None, strings)
    if args.tables_only:
        stored = Path(args.output) / f"{args.dataset}.json"
        if not stored.is_file():
            p.error(f"--tables-only: {stored} does not exist; run the benchmark without --tables-only first")
        path = write_tables(args.output, args.dataset)
        print(f"[speed] tables rewritten from {stored} -> {path}", flush=True)
        return 0
    if args.batches < 1 or args.threads < 1:
        p.error("--batches and --threads must be positive")
    import torch

    torch.set_num_threads(args.threads)
    env = environment(args.threads)
    label = args.label or env["commit"]
    command = "python -m recbole_llm.benchmark.speed " + shlex.join(argv if argv is not None else sys.argv[1:])
    saved_dir = Path(args.saved_dir).resolve()
    rows, started = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tiny_path = None
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        if any(m.endswith(TINY) for m in models):
            tiny_path = tiny_lm(Path(tmp) / "tiny-lm")
        for name in models:
            t0 = time.perf_counter()
            row, config = measure(name, args, saved_dir, tiny_path)
            if name == "SASRec" and not args.no_plain:
                plain = plain_recbole(args, config)
                rows.append({"model": "SASRec (plain RecBole)", "lm": "", "train_batch_size": row["train_batch_size"],
                             "train_samples_per_s": plain["train_samples_per_s"],
                             "anomaly_mode": plain["anomaly_mode"], "batches": row["batches"],
                             "device": row["device"]})
                row["ours_over_plain_recbole"] = row["train_samples_per_s"] / plain["train_samples_per_s"]
            rows.append(row)
            print(f"[speed] {name}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in row.items() if k != "model")
                  + f" ({time.perf_counter() - t0:.0f}s)", flush=True)
    env["wall_time_s"] = time.perf_counter() - started
    path = write_results(args.output, args.dataset, label, rows, env, command)
    print(f"[speed] {len(rows)} rows for label '{label}' in {env['wall_time_s']:.0f}s -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    try:  # a bad option or config value: one line, not a traceback
        from recbole_llm.errors import exit_status
    except ImportError:  # an older checkout of the package
        sys.exit(main())
    sys.exit(exit_status(main))
