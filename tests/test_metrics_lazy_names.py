"""`dir(metrics)` lists the names the package imports on first use (issue 36: SparsificationError and FilteredFID
were reachable but not listed), without importing torchmetrics to list them."""
from __future__ import annotations

import subprocess
import sys


def test_dir_lists_the_lazy_names_and_every_public_name():
    import metrics

    names = dir(metrics)
    assert {"SparsificationError", "FilteredFID"} <= set(names)
    assert set(metrics.__all__) <= set(names)
    assert metrics.FilteredFID.__name__ == "FilteredFID"


def test_dir_does_not_import_torchmetrics():
    code = "import sys, metrics; names = dir(metrics); print('FilteredFID' in names, 'torchmetrics' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "False"], done.stderr
