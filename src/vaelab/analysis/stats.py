"""Statistics over seeds: means with t-based 95% confidence intervals, paired differences."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def mean_ci(values, confidence: float = 0.95) -> dict[str, float | int | None]:
    """Mean and half-width of the two-sided Student-t confidence interval of the mean.

    With one value the interval is undefined (``ci`` None).
    """
    values = np.asarray([v for v in values if v is not None], dtype=np.float64)
    n = len(values)
    if n == 0:
        return {"mean": None, "ci": None, "n": 0}
    mean = float(values.mean())
    if n == 1:
        return {"mean": mean, "ci": None, "n": 1}
    sem = float(values.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * sem
    return {"mean": mean, "ci": half, "n": n}


def paired_difference(a, b, confidence: float = 0.95) -> dict[str, float | int | None]:
    """Mean of the per-seed differences a - b with its confidence interval."""
    diffs = [x - y for x, y in zip(a, b) if x is not None and y is not None]
    return mean_ci(diffs, confidence)
