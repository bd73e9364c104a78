"""Processes of :func:`recbole_llm.pipeline.run_processes` that end badly, for tests/test_distributed.py.

They stand in for ``pipeline._process_main`` (same arguments). The processes are spawned, so the
functions live at module level here, where a fresh interpreter can import them; they import neither
RecBole nor this package, and :class:`Spec` stands in for a ``RunSpec``, so a process starts in
about the time torch takes to import.
"""

import dataclasses
import os
import signal
import time
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Spec:
    """What ``run_processes`` reads of a ``RunSpec``."""

    saved_dir: Path
    overrides: dict
    seed: int = 2020

    def with_overrides(self, **values):
        return dataclasses.replace(self, overrides={**self.overrides, **values})


def log_path(saved_dir):
    """Where rank 0 writes its log, named as RecBole names a run log of SASRec on ``toy``."""
    return Path(saved_dir) / "log" / "SASRec" / "SASRec-toy-Jan-01-2025_00-00-00-abcdef.log"


def _open_log_then_wait(rank, spec):
    """Rank 0 opens the run log and waits to be ended; another rank returns once the log exists."""
    path = log_path(spec.saved_dir)
    if rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("rank 0 started\n")
        time.sleep(300)
    for _ in range(600):
        if path.is_file():
            return
        time.sleep(0.1)


def exit_3(rank, spec, key, evaluate_test, threads, queue):
    _open_log_then_wait(rank, spec)
    os._exit(3)  # noqa: SLF001 (as a crash in native code would: no Python cleanup)


def raise_error(rank, spec, key, evaluate_test, threads, queue):
    _open_log_then_wait(rank, spec)
    raise RuntimeError("boom in the training step")


def killed(rank, spec, key, evaluate_test, threads, queue):
    if rank == 0:
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer does
    time.sleep(300)


def no_record(rank, spec, key, evaluate_test, threads, queue):
    return None
