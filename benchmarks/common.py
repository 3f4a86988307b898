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
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import shapely
from shapely.strtree import STRtree


@dataclass
class Score:
    """True positives, false positives, false negatives and derived rates."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: "Score") -> "Score":
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def line(self) -> str:
        return (f"P={self.precision:.3f} R={self.recall:.3f} F1={self.f1:.3f} "
                f"(tp={self.tp} fp={self.fp} fn={self.fn})")


def shared_dir() -> Path:
    """The evaluation data folder: $MONITOR_SHARED, else ``shared/`` beside the checkout."""
    env = os.environ.get("MONITOR_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def iou(a, b) -> float:
    """Intersection over union of two polygons (0 when both are empty)."""
    u = a.union(b).area
    return a.intersection(b).area / u if u > 0 else 0.0


def match(detected: Sequence, truth: Sequence, min_iou: float = 0.25) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(i_detected, j_truth, iou)`` with IoU >= ``min_iou``.

    Greedy by decreasing IoU (ties broken by order), which for well
    separated objects equals the optimal assignment.
    """
    det = [shapely.make_valid(g) for g in detected]
    tru = [shapely.make_valid(g) for g in truth]
    if not det or not tru:
        return []
    tree = STRtree(tru)
    pairs = []
    for i, g in enumerate(det):
        for j in tree.query(g, predicate="intersects"):
            v = iou(g, tru[int(j)])
            if v >= min_iou:
                pairs.append((v, i, int(j)))
    pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
    used_d, used_t, out = set(), set(), []
    for v, i, j in pairs:
        if i in used_d or j in used_t:
            continue
        used_d.add(i)
        used_t.add(j)
        out.append((i, j, v))
    return out


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
