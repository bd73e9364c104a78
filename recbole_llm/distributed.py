"""One run over several processes (``--nproc``): torch DDP the way RecBole 1.2.1 does it, on any device.

RecBole's multi-process path (``recbole.quick_start.run_recboles``) starts ``nproc`` processes, each
with ``local_rank``, ``world_size``, ``nproc``, ``ip``, ``port`` and ``offset`` in its config. Its
``Config`` then joins the process group; its data loaders give each process a shard of every split
(a ``DistributedSampler``, ``train_batch_size // world_size`` rows per process and step, so the
global batch stays ``train_batch_size``); its trainer wraps the model in
``DistributedDataParallel`` (gradients averaged over the processes), saves checkpoints on rank 0
only, and averages the evaluation metrics over the processes (``_map_reduce``).

This package runs that path (:func:`recbole_llm.pipeline.run` starts the processes,
:class:`recbole_llm.config.Config` and :class:`recbole_llm.trainer.SafeCheckpointMixin` set the
keys and objects RecBole reads) and writes by hand only what RecBole 1.2.1 cannot do or does not
report exactly:

* the backend: RecBole's ``Config`` hard-codes NCCL and one GPU per process; here it is NCCL on
  GPUs and gloo on a CPU, by RecBole's own device rule (:func:`backend`, :func:`join_group`);
* the wrapper: RecBole passes ``device_ids=[local_rank]``, which DDP refuses for a CPU module, and
  converts BatchNorm to SyncBatchNorm, which runs on GPUs only (:func:`wrap`);
* evaluation: RecBole's shards are padded to equal length by repeating users, and ``_map_reduce``
  weights each process's means by its number of batches, so a metric is not exactly the mean over
  the test users, and no process holds every user's rank (the record's ``per_user``). Here rank 0
  evaluates the whole split (:func:`whole_split`) and the other processes take its result
  (:func:`broadcast`), so validation, early stopping and the test are those of a one-process run
  of the same weights, the same in every process. Evaluation is not sped up by more processes; the
  training epochs, which dominate a run, are;
* the training data order: RecBole's ``DistributedSampler`` draws from its default seed 0 in every
  run; here from the run's ``seed``, so seeds differ as they do in one process (:func:`shard_seed`);
* files: only rank 0 writes the checkpoints, the resume state (holding every process's random
  streams and model resume state, :func:`gather`), the log and tensorboard, and makes the record.

What stays RecBole's and is worth knowing: a loss computed over the rows of a batch, not per row
(IDLE-Adapter's MMD, RA-Rec's InfoNCE with the other rows as negatives), sees each process's
``train_batch_size // world_size`` rows; negatives are drawn in each process.
"""

from __future__ import annotations

import datetime
import socket

import torch
import torch.distributed as dist

# How long a process waits for the others in one collective call. Rank 0 evaluates each split alone
# while the others wait in :func:`broadcast` (a full ranking by an LLM on a large dataset can take
# many minutes); torch's defaults (10 minutes under NCCL) would end such a run.
GROUP_TIMEOUT = datetime.timedelta(hours=6)


def is_distributed(config) -> bool:
    """Whether ``config`` is one process of a distributed run (RecBole's ``single_spec`` is False)."""
    return config["single_spec"] is False


def is_rank0(config) -> bool:
    """Whether this process writes the run's files (checkpoints, state, logs, the record): rank 0 of a
    distributed run, or the one process of any other."""
    return not is_distributed(config) or dist.get_rank() == 0


def backend(gpu_id) -> str:
    """``nccl`` where the run would use CUDA (RecBole's rule: a non-empty ``gpu_id`` and CUDA
    available), else ``gloo``."""
    return "nccl" if str(gpu_id or "") and torch.cuda.is_available() else "gloo"


def join_group(values) -> torch.device:
    """Join the process group of the run whose config values (``final_config_dict``) are ``values``
    (``local_rank``, ``offset``, ``world_size``, ``ip``, ``port``, ``gpu_id``), with :func:`backend`,
    and return this process's device: ``cuda:<local_rank>`` under NCCL (as RecBole), else the CPU."""
    name = backend(values["gpu_id"])
    if not dist.is_initialized():
        dist.init_process_group(backend=name, init_method=f"tcp://{values['ip']}:{values['port']}",
                                rank=int(values["local_rank"]) + int(values.get("offset") or 0),
                                world_size=int(values["world_size"]), timeout=GROUP_TIMEOUT)
    if name == "nccl":
        torch.cuda.set_device(int(values["local_rank"]))
        return torch.device("cuda", int(values["local_rank"]))
    return torch.device("cpu")


def leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model, device):
    """``(model, DistributedDataParallel of it)``: RecBole's wrapper (SyncBatchNorm, ``device_ids``)
    on a GPU; on a CPU without either, which DDP and SyncBatchNorm refuse there. Only parameters
    that train are registered by DDP: the LLM models' frozen LM and ID model take no part, and
    RecBole's ``sync_grad_loss`` gives every trainable parameter a gradient each step, so
    ``find_unused_parameters`` is not needed."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model, DistributedDataParallel(model, device_ids=[device.index])
    return model, DistributedDataParallel(model)


def broadcast(value):
    """Rank 0's ``value`` (any picklable object) in every process."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value) -> list:
    """Every process's ``value``, in rank order, in every process."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def mean_over_ranks(values):
    """The mean over the processes of a float or a tuple of floats (a training epoch's summed
    losses): each process sums its shard's batch means, with ``1/world_size`` of the global batch
    each, so the mean is the sum of the global batches' mean losses, a one-process run's scale."""
    many = isinstance(values, tuple)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    tensor = torch.tensor(list(values) if many else [values], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    out = (tensor / dist.get_world_size()).tolist()
    return tuple(out) if many else out[0]


def whole_split(loader, config):
    """An evaluation loader over the whole split of ``loader`` (a shard of it, in a distributed run):
    the same class, dataset and sampler, built as in one process (see the module docstring)."""
    values = config.final_config_dict
    values["single_spec"] = True  # RecBole's data loaders read it when built, and nowhere else
    try:
        return type(loader)(config, loader._dataset, loader._sampler, shuffle=False)
    finally:
        values["single_spec"] = False


def shard_seed(train_loader, seed) -> None:
    """Seed the training shards' order with the run's ``seed`` (RecBole leaves the sampler at 0)."""
    sampler = getattr(train_loader, "sampler", None)
    if isinstance(sampler, torch.utils.data.distributed.DistributedSampler):
        sampler.seed = int(seed)


def free_port() -> int:
    """A TCP port free on this machine now, for the run's rendezvous (RecBole's fixed 5678 would
    collide with a second run)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def description(config, train_loader=None) -> dict:
    """What the record says of a distributed run (``record['distributed']``): the processes, the
    backend, and the batches: RecBole gives each process ``train_batch_size // world_size`` rows per
    step, so one optimizer step sees ``global_train_batch`` rows in all."""
    world = dist.get_world_size()
    per_process = int(train_loader.step) if train_loader is not None else int(config["train_batch_size"]) // world
    return {"nproc": world, "world_size": world, "backend": dist.get_backend(),
            "train_batch_size": int(config["train_batch_size"]), "per_process_train_batch": per_process,
            "global_train_batch": per_process * world}
