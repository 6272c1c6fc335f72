"""Two torchrun nodes (two launchers on one host, static rendezvous, one shared run folder) give the numbers of one
process: the work queue and the shard files live in the run folder, so a second machine is a second set of ranks."""
from __future__ import annotations

import socket
import subprocess
import sys

from tests.test_distributed import REPO, assert_same_results, fresh_process_env, reference_run, toy_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_sharing_the_run_folder_match_one_process(tmp_path, tmp_path_factory):
    reference = reference_run(tmp_path_factory)
    out, config, port = tmp_path / "two-nodes", toy_config(tmp_path), _free_port()
    launchers = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node),
               "--nproc-per-node", "1", "--rdzv-backend", "static", "--master-addr", "127.0.0.1",
               "--master-port", str(port), "-m", "benchmark", "run", "--config", str(config), "--out", str(out),
               "--quiet"]
        launchers.append(subprocess.Popen(cmd, cwd=REPO, env=fresh_process_env(), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
    for launcher in launchers:
        _, err = launcher.communicate(timeout=400)
        assert launcher.returncode == 0, err[-3000:]
    assert_same_results(out, reference)
