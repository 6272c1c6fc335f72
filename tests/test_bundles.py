"""Submission bundles (issue 34): `submit` writes cards and per-sample hashes, `verify` checks integrity and version
and re-computes samples from their seeds, `leaderboard` builds from bundles and refuses a mix of versions."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.execution.checksums import file_sha256
from benchmark.publish.bundle import estimator_digest, score_hash
from benchmark.publish.verify import verify_bundle
from tests.report_runs import toy_run


@pytest.fixture
def bundle(tmp_path) -> Path:
    assert main(["submit", str(toy_run("base")), "--out", str(tmp_path / "bundle")]) == 0
    return tmp_path / "bundle"


def rehash(bundle: Path, edit=None) -> None:
    """A consistent forgery: after an edit, every recorded sha256 and score hash is made to match again."""
    record = json.loads((bundle / "bundle.json").read_text())
    if edit is not None:
        edit(record)
    scores = pd.read_csv(bundle / "scores.csv")
    scores["score_sha256"] = [score_hash(i, float.fromhex(h)) for i, h in zip(scores["index"], scores.score_hex)]
    scores.to_csv(bundle / "scores.csv", index=False)
    record["scores_sha256"] = {n: estimator_digest(list(p.score_sha256)) for n, p in scores.groupby("estimator")}
    record["files"] = {name: file_sha256(bundle / name) for name in record["files"]}
    (bundle / "bundle.json").write_text(json.dumps(record))


def test_a_bundle_holds_cards_hashes_and_versions(bundle):
    record = json.loads((bundle / "bundle.json").read_text())
    manifest = json.loads((toy_run("base") / "manifest.json").read_text())
    card = record["model_card"]
    assert card["weights_sha256"] == manifest["model_sha256"] and card["prediction_type"] == "epsilon"
    from tests.helpers import tiny_unet
    assert card["parameters"] == sum(p.numel() for p in tiny_unet().parameters())  # counted independently
    assert record["suite"]["version"] == manifest["suite_version"] and record["suite"]["commit"]
    assert record["machine"]["platform"] and record["created"][:2] == "20"
    est = record["estimator_cards"]["sensitivity"]
    import estimators.sensitivity as module
    assert est["kind"] == "aleatoric" and est["source_sha256"] == file_sha256(Path(module.__file__))
    samples, scores = pd.read_csv(bundle / "samples.csv"), pd.read_csv(bundle / "scores.csv")
    assert list(samples["index"]) == list(range(24)) and samples.noise_sha256.is_unique
    from benchmark.execution.generation import load_generation
    kept = load_generation(toy_run("base"), 24, 24).scores["sensitivity"].tolist()
    part = scores[scores.estimator == "sensitivity"]
    assert [float.fromhex(h) for h in part.score_hex] == pytest.approx(kept, rel=0, abs=0)
    assert {"run/metrics.csv", "run/config.json", "run/manifest.json", "run/fingerprint.json"} <= set(record["files"])


def test_a_bundle_verifies_and_recomputes_its_samples(bundle, capsys):
    assert main(["verify", str(bundle), "--recompute", "5"]) == 0
    assert "verified (5 samples re-computed)" in capsys.readouterr().out


def test_a_tampered_bundle_fails_with_the_reason(bundle, tmp_path, capsys):
    import shutil
    edited = shutil.copytree(bundle, tmp_path / "edited")
    frame = pd.read_csv(edited / "run" / "metrics.csv")
    frame.loc[3, "value"] += 1
    frame.to_csv(edited / "run" / "metrics.csv", index=False)
    assert main(["verify", str(edited)]) == 2
    err = capsys.readouterr().err
    assert "run/metrics.csv was changed after submission" in err and "differs from what the run's manifest" in err

    forged = shutil.copytree(bundle, tmp_path / "forged")  # a better score for sample 7, every hash made consistent
    scores = pd.read_csv(forged / "scores.csv")
    row = scores.index[(scores.estimator == "sensitivity") & (scores["index"] == 7)][0]
    scores.loc[row, "score_hex"] = (float.fromhex(scores.score_hex[row]) * 1.5).hex()
    scores.to_csv(forged / "scores.csv", index=False)
    rehash(forged)
    assert verify_bundle(forged).ok  # integrity cannot see a consistent forgery ...
    result = verify_bundle(forged, recompute_k=24)  # ... re-computing the samples does, and names the sample
    assert not result.ok and len(result.problems) == 1
    assert "sensitivity (aleatoric) re-computed scores differ" in result.problems[0] and "samples 7 (" in \
        result.problems[0]


def test_a_board_from_bundles_shows_entries_and_refuses_a_mixed_version(bundle, tmp_path, capsys):
    import shutil
    assert main(["submit", str(toy_run("seed1")), "--out", str(tmp_path / "b2")]) == 0
    assert main(["leaderboard", str(bundle), str(tmp_path / "b2"), "--out", str(tmp_path / "site")]) == 0
    text = (tmp_path / "site" / "leaderboard.md").read_text()
    date = json.loads((bundle / "bundle.json").read_text())["created"]
    assert f"| {bundle.name}" in text and date in text and "intact (not re-computed)" in text
    assert "sensitivity" in (tmp_path / "site" / "index.html").read_text()

    older = shutil.copytree(tmp_path / "b2", tmp_path / "older")  # the same run, as suite 0.0.9 would have made it
    manifest = json.loads((older / "run" / "manifest.json").read_text())
    manifest["suite_version"] = "0.0.9"
    (older / "run" / "manifest.json").write_text(json.dumps(manifest))
    rehash(older, lambda record: record["suite"].update(version="0.0.9"))
    capsys.readouterr()
    assert main(["leaderboard", str(bundle), str(older), "--out", str(tmp_path / "mixed")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "suite versions 0.1.0 and 0.0.9" in err and "Fix:" in err
    assert not (tmp_path / "mixed").exists()

    protocol = shutil.copytree(tmp_path / "b2", tmp_path / "protocol")
    manifest = json.loads((protocol / "run" / "manifest.json").read_text())
    current = manifest["protocol_versions"]["sparsification"]
    manifest["protocol_versions"]["sparsification"] = current + 1  # a later protocol version
    (protocol / "run" / "manifest.json").write_text(json.dumps(manifest))
    rehash(protocol)
    assert main(["leaderboard", str(bundle), str(protocol), "--out", str(tmp_path / "mixed")]) == 2
    assert f"protocol sparsification versions {current} and {current + 1}" in capsys.readouterr().err
