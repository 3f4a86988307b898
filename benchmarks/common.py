"""Shared helpers of the benchmarks: one-to-one IoU matching and scores.

Every geometry is a shapely (Multi)Polygon in one metric CRS. Matching is
greedy on IoU, best pair first, one-to-one: a detection matches at most
one true object and a true object at most one detection, and only when
their IoU is at least ``min_iou`` (0.25 for railcars and vessels).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from monitor.evaluate import Score as _Score, match as _match


class Score(_Score):
    """:class:`monitor.evaluate.Score` (tp, fp, fn and the derived rates),
    printed in the benchmarks' short form."""

    def __add__(self, other: "Score") -> "Score":
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def line(self) -> str:
        return (f"P={self.precision:.3f} R={self.recall:.3f} F1={self.f1:.3f} "
                f"(tp={self.tp} fp={self.fp} fn={self.fn})")


def shared_dir() -> Path:
    """The evaluation data folder: $MONITOR_SHARED, else ``shared/`` beside the checkout."""
    env = os.environ.get("MONITOR_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def match(detected: Sequence, truth: Sequence, min_iou: float = 0.25) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(i_detected, j_truth, iou)`` with IoU >= ``min_iou``
    (:func:`monitor.evaluate.match`: greedy by decreasing IoU, which for well
    separated objects equals the optimal assignment)."""
    return [(m.detected, m.truth, m.iou) for m in _match(detected, truth, min_iou=min_iou)]


def score(detected: Sequence, truth: Sequence, min_iou: float = 0.25) -> Score:
    """Precision/recall counts of ``detected`` against ``truth`` polygons."""
    m = len(match(detected, truth, min_iou))
    return Score(tp=m, fp=len(detected) - m, fn=len(truth) - m)


def count_error(n_detected: float, n_true: float) -> float:
    """Relative count error |n - truth| / truth (absolute error when truth is 0)."""
    return abs(n_detected - n_true) / n_true if n_true else float(abs(n_detected))


def median(values: Iterable[float]) -> float:
    v = list(values)
    return statistics.median(v) if v else float("nan")


class Timer:
    """``with Timer() as t: ...`` then ``t.s`` is the elapsed wall time (s)."""

    def __enter__(self):
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self._t0
        return False


def best_of(fn, repeat: int = 3) -> float:
    """Smallest wall time (s) of ``repeat`` calls of ``fn()`` (noise-robust)."""
    ts = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.min(ts))
