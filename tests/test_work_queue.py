"""The work queue the ranks of a run share (benchmark.execution.work_queue) and protocols in parts.

Two real processes taking items from one queue are tested in tests/test_distributed.py (bit-identical results,
every item made once); here one process: order, timings, failures, and the parts of a protocol.
"""
from __future__ import annotations

import pytest

from benchmark.execution import distributed, work_queue
from benchmark.execution.work_queue import PeerFailed, WorkItem, run_queue, schedule
from benchmark.protocols.parts import Part, merge_artifacts, run_parts


def test_schedule_is_longest_first_and_stable():
    items = [WorkItem("a", lambda: None, 1.0), WorkItem("b", lambda: None, 5.0), WorkItem("c", lambda: None, 1.0),
             WorkItem("d", lambda: None, 5.0)]
    assert [item.group for item in schedule(items)] == ["b", "d", "a", "c"]


def test_one_process_runs_every_item_once_longest_first_and_sums_seconds_by_group(tmp_path):
    ran = []
    items = [WorkItem("x", lambda: ran.append("short"), 1.0),
             WorkItem("y", lambda: ran.append("long") or {"y.a": 2.0, "y.b": 3.0}, 9.0),
             WorkItem("x", lambda: ran.append("middle"), 4.0)]
    seconds = run_queue(items, tmp_path, "phase", rank=0, world=1)
    assert ran == ["long", "middle", "short"]
    assert seconds["y.a"] == 2.0 and seconds["y.b"] == 3.0  # an item's own split of its time
    assert set(seconds) == {"x", "y.a", "y.b"} and seconds["x"] >= 0.0
    work_queue.clean(tmp_path)
    assert not (tmp_path / work_queue.WORK_DIR).exists()


def test_claims_of_an_interrupted_run_are_cleared_at_the_start(tmp_path):
    folder = tmp_path / work_queue.WORK_DIR / "phase"
    folder.mkdir(parents=True)
    (folder / "0.claim").write_text("")  # left by a killed run
    (folder / "0.error").write_text("old failure")
    ran = []
    run_queue([WorkItem("x", lambda: ran.append(1))], tmp_path, "phase", rank=0, world=2)
    assert ran == [1]


def test_a_failing_item_stops_the_queue_and_rank_0_raises_it(tmp_path):
    ran = []

    def fail():
        raise ValueError("bad item")

    items = [WorkItem("a", fail, 2.0), WorkItem("b", lambda: ran.append("b"), 1.0)]
    with pytest.raises(ValueError, match="bad item"):
        run_queue(items, tmp_path, "phase", rank=0, world=1)
    assert ran == []  # nothing is taken after a failure
    assert "ValueError: bad item" in (tmp_path / work_queue.WORK_DIR / "phase" / "0.error").read_text()


def test_another_ranks_failure_is_raised_on_rank_0_and_ends_the_others_quietly(tmp_path, monkeypatch):
    folder = tmp_path / work_queue.WORK_DIR / "phase"
    calls = []

    def barrier():  # the barrier that ends the phase finds rank 1's failure on record
        calls.append(1)
        if len(calls) == 2:
            (folder / "7.error").write_text("rank 1, x:\nTraceback ... KeyError: 'boom'")

    monkeypatch.setattr(distributed, "barrier", barrier)
    with pytest.raises(RuntimeError, match="(?s)failed on another rank.*KeyError: 'boom'"):
        run_queue([WorkItem("x", lambda: None)], tmp_path, "phase", rank=0, world=2)
    calls.clear()
    with pytest.raises(PeerFailed):
        run_queue([WorkItem("x", lambda: None)], tmp_path, "phase", rank=1, world=2)


def test_parts_in_order_are_the_protocol_and_artifacts_merge_by_key():
    parts = [Part(lambda art: art.setdefault("curves", {}).update(a=1) or ["r1"]),
             Part(lambda art: art.update(curves={"b": 2}, grid="g.png") or ["r2", "r3"])]
    artifacts = {}
    assert run_parts(parts, artifacts) == ["r1", "r2", "r3"]
    assert artifacts == {"curves": {"a": 1, "b": 2}, "grid": "g.png"}
    merge_artifacts(artifacts, {"grid": "h.png", "curves": {"a": 5}})
    assert artifacts == {"curves": {"a": 5, "b": 2}, "grid": "h.png"}
