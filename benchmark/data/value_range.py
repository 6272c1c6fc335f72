"""The value range of user image arrays: declared by `[data] range`, or inferred only when unambiguous.

Float images all in [0, 1] fit both [0, 1] and [-1, 1]; read the wrong way every metric shifts, so they are refused
until the range is declared.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.errors import ConfigError

#: declared value ranges of float image arrays ([data] range) -> (low, high)
VALUE_RANGES = {"0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0), "0,255": (0.0, 255.0)}


def to_unit_range(array: np.ndarray, path: Path, value_range: str | None) -> np.ndarray:
    """float32 values in [-1, 1] from uint8 0..255 or a float array of a declared or unambiguous range:
    x = 2 (v - low) / (high - low) - 1, computed in float64 (so uint8 u and the same image saved as u / 255 or
    u / 127.5 - 1 give the same float32 values up to their own float rounding)."""
    if array.dtype == np.uint8 and value_range is None and array.size and int(array.max()) == 1:
        raise ConfigError("data.range", "(not given)", f"the value range of {path.name}: its uint8 values are only 0 "
                          "and 1 (a mask?), which read as 0..255 would be near-black images",
                          'declare range = "0,1" in the [data] section to read 1 as white, or save the images as 0..255')
    if array.dtype == np.uint8 and value_range in (None, "0,255"):
        return (array.astype(np.float64) / 127.5 - 1.0).astype(np.float32)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ConfigError("data.path", str(path), f"uint8 or float image values (dtype {array.dtype})",
                          "save the images as a numeric array, e.g. np.asarray(images, dtype=np.float32)")
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise ConfigError("data.path", str(path), f"finite image values ({int((~np.isfinite(values)).sum())} are "
                          "NaN or infinite)", "repair or drop those images")
    low, high = float(values.min()), float(values.max())
    if value_range is None:
        if low < 0:
            value_range = "-1,1"
        elif high > 1:
            value_range = "0,255"
        else:
            raise ConfigError("data.range", "(not given)", f"the value range of {path.name}: its floats all lie in "
                              f"[{low:.3g}, {high:.3g}], which fits both [0, 1] and [-1, 1]",
                              'declare it in the [data] section: range = "0,1" or range = "-1,1"')
    lo, hi = VALUE_RANGES[value_range]
    if low < lo - 1e-6 or high > hi + 1e-6:
        raise ConfigError("data.range", value_range, f"values within [{lo:g}, {hi:g}], but {path.name} holds values "
                          f"in [{low:.4g}, {high:.4g}]", "declare the range the array uses, or rescale it")
    return (2.0 * (values - lo) / (hi - lo) - 1.0).astype(np.float32)
