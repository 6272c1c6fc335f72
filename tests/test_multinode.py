"""Two torchrun nodes (two launchers on one host, static rendezvous, one shared run folder) give the numbers of one
process: the work queue and the shard files live in the run folder, so a second machine is a second set of ranks.
A node lost mid-run (its launcher and worker SIGKILLed at once, right after it finished a shard) leaves the folder
as a killed process does: the job is stopped, the same command started again resumes from the finished shards (read
back, not regenerated) and ends with the numbers of one uninterrupted process."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

from tests.test_distributed import REPO, assert_same_results, fresh_process_env, reference_run, toy_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# torchrun's worker on the node that is lost: the run, with the shard writer wrapped so that, once this node has
# finished its first generation shard (written and its checksum recorded), the node vanishes: its launcher (the parent) and the worker are SIGKILLed.
LOST_NODE = textwrap.dedent("""
    import os, signal, sys
    from benchmark.execution import checksums
    record = checksums.record_checksum
    def record_then_vanish(path):
        record(path)  # the shard is finished (written and its checksum recorded)
        if os.path.basename(str(path)).startswith("gen_"):
            os.kill(os.getppid(), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
    checksums.record_checksum = record_then_vanish
    from benchmark.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _launch(node: int, port: int, target: list[str], config, out) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node),
           "--nproc-per-node", "1", "--rdzv-backend", "static", "--master-addr", "127.0.0.1",
           "--master-port", str(port), *target, "run", "--config", str(config), "--out", str(out), "--quiet"]
    return subprocess.Popen(cmd, cwd=REPO, env=fresh_process_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def test_two_nodes_sharing_the_run_folder_match_one_process(tmp_path, tmp_path_factory):
    reference = reference_run(tmp_path_factory)
    out, config, port = tmp_path / "two-nodes", toy_config(tmp_path), _free_port()
    launchers = [_launch(node, port, ["-m", "benchmark"], config, out) for node in (0, 1)]
    for launcher in launchers:
        _, err = launcher.communicate(timeout=400)
        assert launcher.returncode == 0, err[-3000:]
    assert_same_results(out, reference)


def test_a_lost_node_resumes_like_a_killed_process(tmp_path, tmp_path_factory):
    reference = reference_run(tmp_path_factory)
    out, config, port = tmp_path / "lost-node", toy_config(tmp_path), _free_port()
    driver = tmp_path / "lost_node.py"
    driver.write_text(LOST_NODE)
    survivor, lost = _launch(0, port, ["-m", "benchmark"], config, out), _launch(1, port, [str(driver)], config, out)
    _, err = lost.communicate(timeout=400)
    assert lost.returncode == -signal.SIGKILL, err[-3000:]
    deadline = time.monotonic() + 20  # the surviving node either stops on its own or is stopped, as a scheduler would
    while survivor.poll() is None and time.monotonic() < deadline:
        time.sleep(1)
    if survivor.poll() is None:
        os.killpg(survivor.pid, signal.SIGKILL)
    survivor.communicate(timeout=60)
    assert not (out / "metrics.csv").exists()
    finished = {p: p.stat().st_mtime_ns for p in (out / "shards").glob("gen_*.pt")}
    assert finished  # at least the lost node's own shard
    done = subprocess.run([sys.executable, "-m", "benchmark", "run", "--config", str(config), "--out", str(out),
                           "--quiet"], cwd=REPO, env=fresh_process_env(), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_results(out, reference)
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # read back, not regenerated
