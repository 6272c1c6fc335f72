"""What docs/protocols.md says about the numbers matches the code (issue 36: it said FID intervals use half-samples; the
code draws 80 % subsamples without replacement)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from metrics.bootstrap import subsample_counts

PAGE = Path(__file__).resolve().parents[1] / "docs" / "protocols.md"


def test_the_fid_interval_sentence_matches_the_subsampling_of_the_code():
    text = " ".join(PAGE.read_text().split())
    assert "half-sample" not in text
    sentence = re.search(r"Every FID, in every feature space .*?replicates \(([^)]*)\)", text).group(1)
    assert "80 %" in sentence and "without replacement" in sentence
    for n in (10, 37, 500):  # what the code draws: 0/1 counts (no row twice), round(0.8 n) rows each time
        counts = [subsample_counts(np.random.default_rng(seed), n) for seed in range(20)]
        assert all(c.max() == 1 and c.min() == 0 and c.sum() == round(0.8 * n) for c in counts)
        assert len({tuple(c) for c in counts}) > 1  # random subsets, not a fixed split in halves
