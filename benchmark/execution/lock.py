"""One run per run folder: a lock file `<out>/.lock` holding the owner's pid, host and command.

A second run on the same folder is refused (exit 2) with the running one named; a lock left by a process
that no longer exists (killed with SIGKILL, a crashed machine) is stale and taken over. The lock is created
with O_EXCL, so two runs racing for a free folder cannot both win. The lock is a hidden file: it is not a
result, and `check_run_dir` ignores hidden files when it decides whether a folder is empty.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import ConfigError

LOCK_NAME = ".lock"


@dataclass(frozen=True)
class LockOwner:
    pid: int
    host: str
    command: str
    since: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since} ({self.command})"


def lock_path(out: Path) -> Path:
    return Path(out) / LOCK_NAME


def read_owner(out: Path) -> LockOwner | None:
    """The owner recorded in the folder's lock, None without a lock (an unreadable lock counts as stale)."""
    try:
        record = json.loads(lock_path(out).read_text())
        return LockOwner(int(record["pid"]), str(record["host"]), str(record["command"]), str(record["since"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return LockOwner(-1, socket.gethostname(), "unreadable lock file", "?")


def is_alive(owner: LockOwner) -> bool:
    """Whether the owner process still runs (a lock of another host is assumed alive: it cannot be checked)."""
    if owner.host != socket.gethostname():
        return True
    if owner.pid <= 0:
        return False
    if owner.pid == os.getpid():
        return False  # our own lock, left by an earlier run in this process
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def check_unlocked(out: Path) -> None:
    """Refuse (ConfigError, exit 2) when a live process holds the folder's lock. Read-only."""
    owner = read_owner(out)
    if owner is not None and is_alive(owner):
        raise ConfigError("--out", str(out), f"a folder no other run is using, but it is locked by {owner.describe()}",
                          f"wait for that run to end, or choose another --out (if no run is active there, "
                          f"delete {lock_path(out)})")


def acquire(out: Path) -> None:
    """Take the folder's lock (the folder exists); a stale lock is replaced. Raises ConfigError when a live
    process holds it, including one that took it between `check_unlocked` and now."""
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:300],
                         "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    for _ in range(2):
        try:
            fd = os.open(lock_path(out), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            check_unlocked(out)  # raises when alive
            lock_path(out).unlink(missing_ok=True)  # stale: take it over
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(record)
        return
    check_unlocked(out)
    raise ConfigError("--out", str(out), "a folder whose lock can be taken", "retry; another run may be starting there")


def release(out: Path) -> None:
    """Remove the folder's lock if this process holds it (a no-op otherwise)."""
    owner = read_owner(out)
    if owner is not None and owner.pid == os.getpid() and owner.host == socket.gethostname():
        lock_path(out).unlink(missing_ok=True)
