"""A sweep on a real two-node Ray cluster (``run_benchmark.py --tune --ray-address``).

Both nodes run on this machine over loopback, each started with ``ray start`` and its own CPU
count, as on a cluster of machines; the test stops them by their process ids.
"""

import csv
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, write_toy

TINY_SASREC = {
    "epochs": 2, "stopping_step": 2, "train_batch_size": 64, "eval_batch_size": 256, "show_progress": False,
    "MAX_ITEM_LIST_LENGTH": 10, "embedding_size": 8, "hidden_size": 8, "inner_size": 16, "n_layers": 1,
    "n_heads": 1, "topk": [5, 10],
}
STARTED = "Ray runtime started"


def _free_ports(n):
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _ephemeral_low():
    """Lowest port the kernel hands out for ``bind(port 0)`` (Linux's ``ip_local_port_range``)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_range(width, taken):
    """``width`` consecutive free ports (Ray's worker port range of one node), none of them in ``taken``.

    The range lies below the kernel's ephemeral range, so ports from :func:`_free_ports` (and the random
    ports Ray picks for itself) cannot fall inside it; ``taken`` keeps two nodes' ranges apart. Both
    guards matter: Ray refuses to start when its worker range holds another of its own ports.
    """
    top = min(_ephemeral_low(), 40000)
    for _ in range(50):
        base = random.randrange(20000, top - width)
        span = set(range(base, base + width))
        if span & taken:
            continue
        socks = []
        try:
            for port in span:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        taken |= span
        return base, base + width - 1
    raise RuntimeError("no free port range")


class RayNode:
    """``ray start --block`` as a child process: terminating it (SIGTERM) stops the node's processes."""

    def __init__(self, args, log, env):
        ray = Path(sys.executable).with_name("ray")
        self.log = log
        self.proc = subprocess.Popen([str(ray), "start", "--block", *args], stdout=log.open("w"),
                                     stderr=subprocess.STDOUT, env=env)

    def wait_started(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if STARTED in self.log.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError(f"ray start did not start:\n{self.log.read_text(errors='replace')[-3000:]}")

    def children(self):
        import psutil

        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self):
        """SIGTERM to the ``ray start`` process by its pid; its handler stops the node's processes."""
        self.children_at_stop = self.children()
        if self.proc.poll() is None:
            self.proc.terminate()

    def wait_stopped(self):
        """Wait for :meth:`stop`; kill what is left of the processes this node started, return them."""
        import psutil

        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        _, alive = psutil.wait_procs(self.children_at_stop, timeout=30)
        for p in alive:
            p.kill()
        return alive


@pytest.fixture
def cluster(tmp_path):
    """A Ray head (1 CPU) and a second node (1 CPU) on loopback; yields the head's address."""
    temp_dir = tempfile.mkdtemp(prefix="rl-ray-")  # short: Ray's socket paths live under it
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update({"OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"})
    gcs, client, *ports = _free_ports(12)
    taken = {gcs, client, *ports}
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0", "--object-store-memory=100000000",
              "--disable-usage-stats"]

    def node_ports(i):
        p = ports[5 * i: 5 * i + 5]
        low, high = _free_range(40, taken)
        return [f"--node-manager-port={p[0]}", f"--object-manager-port={p[1]}", f"--metrics-export-port={p[2]}",
                f"--dashboard-agent-listen-port={p[3]}", f"--dashboard-agent-grpc-port={p[4]}",
                f"--min-worker-port={low}", f"--max-worker-port={high}"]

    nodes = []
    try:
        head = RayNode(["--head", f"--port={gcs}", f"--ray-client-server-port={client}", "--include-dashboard=false",
                        f"--temp-dir={temp_dir}", *common, *node_ports(0)], tmp_path / "head.log", env)
        nodes.append(head)
        head.wait_started()
        second = RayNode([f"--address=127.0.0.1:{gcs}", *common, *node_ports(1)], tmp_path / "node2.log", env)
        nodes.append(second)
        second.wait_started()
        yield f"127.0.0.1:{gcs}", nodes
    finally:
        for node in reversed(nodes):
            node.stop()
        survivors = [p for node in nodes for p in node.wait_stopped()]
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not survivors, f"Ray processes that did not stop on SIGTERM: {survivors}"
        assert all(node.proc.returncode is not None for node in nodes)


def test_sweep_on_a_two_node_cluster_runs_trials_on_both_nodes(cluster, tmp_path):
    address, nodes = cluster
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    write_toy(cwd / "data")
    (cwd / "space.yaml").write_text("learning_rate: {grid: [0.001, 0.01]}\nhidden_dropout_prob: {grid: [0.2, 0.5]}\n")
    # Relative paths on purpose: the trials run in other processes (and, on a real cluster, other
    # machines), so the sweep must hand them absolute ones.
    argv = [sys.executable, str(REPO / "run_benchmark.py"), "--model=SASRec", "--dataset=toy", "--seeds=7",
            "--budget=quick", "--tune", "--tune-space=space.yaml", "--scheduler=none", "--cpus-per-trial=1",
            "--data-path=data", "--output=results", "--saved-dir=saved", f"--ray-address={address}",
            "--no-progress", "--metrics=hit@10,ndcg@10"] + [
        f"--{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in TINY_SASREC.items()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    folder = cwd / "results" / "toy" / "tune" / "SASRec"
    rows = list(csv.DictReader((folder / "trials.csv").open()))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}
    # two nodes, one CPU each, one CPU per trial: both nodes ran trials
    node_ids = {r["node_id"] for r in rows}
    assert len(node_ids) == 2 and all(len(n) == 56 for n in node_ids), rows
    assert all(r["node_ip"] for r in rows)  # Tune's: the machine's address, the same for both nodes here
    md = (folder / "trials.md").read_text()
    assert "| node" in md and all(n[:8] in md for n in node_ids)
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best == {"learning_rate": float(rows[0]["learning_rate"]),
                    "hidden_dropout_prob": float(rows[0]["hidden_dropout_prob"])}
    assert len(list((cwd / "results" / "toy" / "runs").glob("*.json"))) == 1  # the best configuration's run

    # what the trials were handed: the shared data folder and their own trial folders, written portably
    saved = (cwd / "saved").resolve()
    records = [json.loads(p.read_text()) for p in (saved / "ray" / "toy").glob("*/trial_*/trial_record.json")]
    assert len(records) == 4
    for record in records:
        assert record["config"]["data_path"] == "{data}/toy" and record["config"]["data_root"] == "{data}"
        assert record["config"]["checkpoint_dir"] == "{saved}/checkpoints"  # the trial's own saved folder
    print("\n" + md)
