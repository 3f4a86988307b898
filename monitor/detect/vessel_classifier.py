"""Learned second stage for optical vessels: candidates, features, a small model.

At 10 m (Sentinel-2) most vessels in a busy port are moored at quays or
rafted together: only part of the ring around them is water, and hand-made
rules that separate a hull from a pier head, a quay piece or a breakwater
dash do not generalise. This module generates candidates with high recall
and lets a small boosted-tree model (trained on hand-labelled Sentinel-2
port scenes, evaluated by leave-one-scene-out cross-validation) decide.

Pipeline (:func:`classify_vessels`):

1. Water mask: ``monitor.detect.water.water_mask`` (AOI polygons refined by
   NDWI, or water from the image), or a given mask.
2. Brightness ``B`` = mean of the visible bands (+ NIR), each band divided
   by its per-scene median (digital-number scaling cancels). ``rel`` =
   (B - local water median) / (median land B - median water B): 0 is water,
   1 is typical land.
3. Candidates (:func:`vessel_candidates`): connected components (8-connected)
   of ``rel >= t`` for several levels ``t`` (an MSER-like stack: a hull
   brighter than its quay separates from it at a higher level), restricted
   to pixels within ``near_m`` metres of water (moored hulls are land to
   NDWI), with long side ``min_length_m``..``max_length_m`` and width up to
   ``max_width_m``. Components are also split at one-pixel necks.
4. Features (:func:`candidate_features`, :data:`FEATURES`): scale-free
   contrasts per band against local water and against the adjacent land,
   NDWI inside and in the ring, the water share of the ring, length / width
   (metres and pixels), elongation, rectangularity, edge contrast, distance
   to land and to open water, texture, land share of the neighbourhood.
5. A gradient-boosted tree ensemble (JSON under ``monitor/detect/models/``,
   evaluated in numpy: no scikit-learn at run time) gives each candidate a
   vessel probability; candidates at or above the model's threshold (chosen
   inside the training folds) are kept, and overlapping candidates are
   reduced to the most probable one (greedy, by pixel overlap).
6. The detection score is CALIBRATED (:meth:`TreeModel.score`): a Platt
   map ``sigmoid(a * logit(p) + b)`` fitted on out-of-fold probabilities of
   the detections kept at the threshold, target "matched to a labelled
   vessel". A kept detection's score is the estimated probability that it
   is a true vessel (the sum over a scene estimates its true positives);
   the map is monotone, so ranking, selection and counts do not change.

Integration after the rule-based detector::

    from monitor.detect.vessels import detect_vessels
    from monitor.detect.vessel_classifier import classify_vessels

    res = detect_vessels(chip)              # defaults; gives water source, coverage, extras
    res = classify_vessels(chip, res)       # replaces the detections by the model's

``detect_vessels`` runs with its DEFAULT options (the model was trained on
them). ``classify_vessels`` does not use ``res``'s detections as candidates
(its own candidate pass has far higher recall) but as one feature,
``rule_iou`` (each candidate's best IoU with a rule-based detection); it
keeps ``res.coverage`` and ``res.extras``. Without ``res`` that feature is
0 everywhere and fewer vessels are kept. When ``detect_vessels`` changes,
retrain (``python tools/train_vessel_classifier.py``) so the feature means
what the model learnt. A water mask passed to one should be passed to both
(``water=``).
It applies only to optical chips (a SAR result is returned unchanged).
Detections are minimum rotated rectangles in the chip CRS; ``score`` is the
calibrated probability; ``properties`` carry ``size_class``, ``p_vessel``
(= ``score``), ``p_model`` (the ensemble's own, uncalibrated probability)
and ``level`` (the candidate's brightness level).

Figures (sen2ships, 9 real Sentinel-2 ports, 183 labelled vessels; matched
one-to-one, IoU >= 0.1 or centroid within 20 m), from
``benchmarks/bench_vessel_classifier.py``: candidate recall 0.907 (166/183,
8431 candidates); leave-one-scene-out (train on 8 scenes, threshold and
calibration chosen inside those 8, test on the 9th) P 0.420 R 0.475 F1
0.446, median |count error| 4 vessels/scene, per-scene F1 0.17..0.62 (the
rule-based detector alone: F1 0.413). Held-out calibration: the scores of
the 207 kept detections sum to 84.2 against 87 true positives (Brier
0.238). Busy-port moored hulls and quay pieces remain hard to tell apart
at 10 m, and the labels leave many small craft out in some ports and not
in others: far from the issue's 0.85.
The model (200 trees of depth <= 3, 2.6k nodes, >= 60 samples a leaf) is retrained by
``tools/train_vessel_classifier.py`` (scikit-learn, training only) on the
9 real scenes only: adding the generator's 10 m port scenes (weight 1)
lowered the real LOSO F1 (0.456 -> 0.409 at the best threshold in a trial)
while finding 5 of 19 synthetic ships >= 30 m.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from monitor.detect import Detection, DetectionResult
from monitor.errors import InputError

MODEL_PATH = Path(__file__).resolve().parent / "models" / "vessel_gbt_s2.json"

LEVELS = (0.2, 0.35, 0.55, 0.8, 1.15, 1.6, 2.3)
"""Brightness levels (share of the land-minus-water gap) of the candidate stack."""

FEATURES = (
    "level", "log_len_m", "log_wid_m", "log_len_px", "log_area_px", "elong", "rect_fill",
    "rel_mean", "rel_max", "rel_std", "vis_w", "nir_w", "nir_minus_vis",
    "ndwi_in", "ndwi_ring", "ring_water", "ring_rel_mean", "ring_land_rel", "edge_c", "land_edge_c",
    "outline_land", "max_d_water_m", "min_d_land_m", "nbhd_land", "level_stable", "has_nir",
    "in_water", "log_parent_ratio", "red_blue", "nir_red", "rel_vs_local_land", "min_d_water_m", "mean_d_water_m",
    "rule_iou",
)

_EIGHT = np.ones((3, 3), bool)
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)


# ---------------------------------------------------------------------------
# scene layers
# ---------------------------------------------------------------------------

def _bands(chip) -> dict[str, np.ndarray]:
    """Optical bands by role, all divided by one per-scene factor (the median
    of the valid values of all bands), so digital-number scaling cancels and
    band ratios (NDWI) are kept."""
    valid = chip.valid
    out = {}
    for role in ("red", "green", "blue", "nir", "pan", "gray"):
        b = chip.band(role)
        if b is not None:
            out[role] = np.asarray(b, np.float32)
    if not out:
        out["gray"] = np.asarray(chip.bands[0], np.float32)
    step = max(1, int(valid.sum() // 200_000))
    ref = np.concatenate([v[valid][::step] for v in out.values()]) if valid.any() else np.ones(1)
    ref = ref[np.isfinite(ref)]
    scale = float(np.median(np.abs(ref))) if ref.size else 1.0
    scale = scale or 1.0
    return {k: np.where(valid & np.isfinite(v), v / scale, 0).astype(np.float32) for k, v in out.items()}


def _block_median(x: np.ndarray, mask: np.ndarray, block_px: int) -> np.ndarray:
    """Median of ``x`` over ``mask`` on square blocks, gaps filled from the
    nearest block, bilinearly interpolated to pixels."""
    from monitor.detect.vessels import local_background

    return local_background(x, mask, block_px, tail=False)[0]


class Layers:
    """Per-scene arrays shared by candidate generation and features."""

    def __init__(self, chip, water: np.ndarray | None = None, block_m: float = 300.0):
        from monitor.detect.water import water_mask

        self.gsd = float(chip.gsd_m)
        self.valid = np.asarray(chip.valid, bool)
        b = _bands(chip)
        self.bands = b
        if water is None:
            water, self.water_source = water_mask(chip, b)
        else:
            self.water_source = "given"
        self.water = np.asarray(water, bool) & self.valid
        self.land = self.valid & ~self.water
        vis = [b[r] for r in ("red", "green", "blue") if r in b]
        self.vis = np.mean(vis, axis=0).astype(np.float32) if vis else None
        self.nir = b.get("nir")
        if self.nir is None:
            self.nir = b.get("pan", b.get("gray"))
            self.has_nir = False
        else:
            self.has_nir = "nir" in b
        parts = [p for p in (self.vis, self.nir) if p is not None]
        B = np.sum(parts, axis=0).astype(np.float32)
        self.B = B
        w, la = self.water, self.land
        step = lambda m: max(1, int(m.sum() // 200_000))  # noqa: E731
        mw = float(np.median(B[w][:: step(w)])) if w.sum() > 50 else float(np.median(B[self.valid]))
        if la.sum() > 50 and w.sum() > 50:
            gap = float(np.median(B[la][:: step(la)])) - mw
        else:
            gap = 0.0
        if not gap > 0:
            # no land (or no water) to measure the gap: assume land about 4x
            # as bright as water (Sentinel-2 visible + NIR), and never within
            # ten noise sigmas of the water
            v = B[self.valid][:: step(self.valid)]
            med = float(np.median(v)) if v.size else 1.0
            mad = float(1.4826 * np.median(np.abs(v - med))) if v.size else 0.0
            gap = max(3.0 * abs(med), 10.0 * mad) or 1.0
        self.gap = gap
        block_px = max(16, int(round(block_m / self.gsd)))
        if w.sum() > 50:
            bgB = _block_median(B, w, block_px)
            self.bg_vis = _block_median(self.vis, w, block_px) if self.vis is not None else None
            self.bg_nir = _block_median(self.nir, w, block_px) if self.nir is not None else None
        else:
            bgB = np.full(B.shape, mw, np.float32)
            self.bg_vis = None if self.vis is None else np.full(B.shape, float(np.median(self.vis[self.valid])), np.float32)
            self.bg_nir = None if self.nir is None else np.full(B.shape, float(np.median(self.nir[self.valid])), np.float32)
        self.rel = np.where(self.valid, (B - bgB) / gap, 0).astype(np.float32)
        # per-band gaps (land minus water), for per-band contrasts in gap units
        self.gap_vis = self._gap(self.vis)
        self.gap_nir = self._gap(self.nir)
        g, n = b.get("green"), b.get("nir")
        if g is not None and n is not None:
            self.ndwi = ((g - n) / np.maximum(g + n, 1e-6)).astype(np.float32)
        else:
            self.ndwi = None
        self.d_water = ndi.distance_transform_edt(~self.water).astype(np.float32) if self.water.any() else np.full(
            B.shape, 1e6, np.float32)
        self.d_land = ndi.distance_transform_edt(~self.land).astype(np.float32) if self.land.any() else np.full(
            B.shape, 1e6, np.float32)
        r = max(3, int(round(150.0 / self.gsd)))
        self.nbhd_land = ndi.uniform_filter(self.land.astype(np.float32), size=2 * r + 1)
        # colour (log band ratios) relative to the scene's land median
        eps = 1e-3
        red, blue = b.get("red"), b.get("blue")
        self.red_blue = self._vs_land(np.log((red + eps) / (blue + eps))) if red is not None and blue is not None else None
        nir = b.get("nir")
        self.nir_red = self._vs_land(np.log((nir + eps) / (red + eps))) if nir is not None and red is not None else None
        # the local land brightness (median rel over land, ~600 m blocks)
        if la.sum() > 50:
            self.land_rel = _block_median(self.rel, la, max(16, int(round(2 * block_m / self.gsd))))
        else:
            self.land_rel = np.ones(B.shape, np.float32)
        self.parent = None

    def _vs_land(self, x):
        la = self.land if self.land.sum() > 50 else self.valid
        return (x - float(np.median(x[la][:: max(1, int(la.sum() // 200_000))]))).astype(np.float32)

    def _gap(self, x):
        if x is None:
            return 1.0
        w, la = self.water, self.land
        if la.sum() > 50 and w.sum() > 50:
            g = float(np.median(x[la][:: max(1, int(la.sum() // 200_000))]) - np.median(x[w][:: max(1, int(w.sum() // 200_000))]))
            if g > 0:
                return g
        v = x[self.valid][:: max(1, int(self.valid.sum() // 200_000))]
        med = float(np.median(v)) if v.size else 1.0
        mad = float(1.4826 * np.median(np.abs(v - med))) if v.size else 0.0
        return max(3.0 * abs(med), 10.0 * mad) or 1.0


# ---------------------------------------------------------------------------
# candidates
# ---------------------------------------------------------------------------

class Candidate:
    """One candidate object: ``sl`` (slice pair into the chip), ``mask``
    (bool, shape of the slice), ``level`` (brightness level it was found
    at), ``stable`` (number of levels with a near-identical component)."""

    __slots__ = ("sl", "mask", "level", "stable", "n")

    def __init__(self, sl, mask, level, stable=1):
        self.sl, self.mask, self.level, self.stable = sl, mask, level, stable
        self.n = int(mask.sum())


def _shape(mask: np.ndarray) -> tuple[float, float, float]:
    """(length px, width px, heading of the long axis in radians, image rows/cols) from second moments."""
    r, c = np.nonzero(mask)
    if r.size < 2:
        return 1.0, 1.0, 0.0
    r = r - r.mean()
    c = c - c.mean()
    a, b, d = (r * r).mean(), (r * c).mean(), (c * c).mean()
    tr, det = a + d, a * d - b * b
    disc = math.sqrt(max(tr * tr / 4 - det, 0.0))
    l1, l2 = tr / 2 + disc, max(tr / 2 - disc, 0.0)
    theta = 0.5 * math.atan2(2 * b, d - a)
    return math.sqrt(12 * l1 + 1), math.sqrt(12 * l2 + 1), theta


def vessel_candidates(layers: Layers, *, levels=LEVELS, near_m: float = 40.0, min_length_m: float = 15.0,
                      max_length_m: float = 450.0, max_width_m: float = 90.0,
                      min_area_m2: float = 200.0) -> list[Candidate]:
    """High-recall candidate objects: components of ``rel >= t`` per level
    ``t``, within ``near_m`` metres of water, hull-sized (at least ``min_area_m2``, long side
    ``min_length_m``..``max_length_m``, width <= ``max_width_m``; sizes from
    second moments). Each component is also split at one-pixel necks
    (an opening by a 3x3 cross). Near-identical components across levels
    (same pixels within 10 %) are kept once, with a ``stable`` count."""
    gsd = layers.gsd
    near = (layers.d_water <= max(2.0, near_m / gsd)) & layers.valid
    out: list[Candidate] = []
    seen: dict[tuple, Candidate] = {}
    min_px, max_px = min_length_m / gsd, max_length_m / gsd
    max_w = max_width_m / gsd
    min_px_area = max(3.0, min_area_m2 / gsd**2)
    lab0, _ = ndi.label(near & (layers.rel >= min(levels)), structure=_EIGHT)
    layers.parent = (lab0, np.bincount(lab0.ravel()))
    for t in levels:
        m0 = near & (layers.rel >= t)
        for m in (m0, ndi.binary_opening(m0, structure=_CROSS)):
            lab, n = ndi.label(m, structure=_EIGHT)
            if n == 0:
                continue
            for i, sl in enumerate(ndi.find_objects(lab), start=1):
                if sl is None:
                    continue
                hh, ww = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
                if max(hh, ww) > 1.5 * max_px + 2 or max(hh, ww) < 0.5 * min_px:
                    continue
                cm = lab[sl] == i
                npx = int(cm.sum())
                if npx < min_px_area:
                    continue
                L, W, _ = _shape(cm)
                if L < min_px or L > max_px or W > max_w:
                    continue
                key = (sl[0].start, sl[0].stop, sl[1].start, sl[1].stop)
                prev = seen.get(key)
                if prev is not None and abs(prev.n - npx) <= 0.1 * npx:
                    prev.stable += 1
                    continue
                c = Candidate(sl, cm, t)
                seen[key] = c
                out.append(c)
    return out


# ---------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------

def _pad_slice(sl, r, shape):
    return (slice(max(sl[0].start - r, 0), min(sl[0].stop + r, shape[0])),
            slice(max(sl[1].start - r, 0), min(sl[1].stop + r, shape[1])))


def _features_one(L: Layers, c: Candidate) -> list[float]:
    gsd = L.gsd
    r = 2
    big = _pad_slice(c.sl, r + 1, L.B.shape)
    m = np.zeros((big[0].stop - big[0].start, big[1].stop - big[1].start), bool)
    oy, ox = c.sl[0].start - big[0].start, c.sl[1].start - big[1].start
    m[oy:oy + c.mask.shape[0], ox:ox + c.mask.shape[1]] = c.mask
    ring = ndi.binary_dilation(m, structure=_EIGHT, iterations=r) & ~m
    inner_edge = m & ~ndi.binary_erosion(m, structure=_CROSS)
    outline = ndi.binary_dilation(m, structure=_CROSS) & ~m
    valid = L.valid[big]
    ring &= valid
    outline &= valid
    water = L.water[big]
    land = L.land[big]
    rel = L.rel[big]
    n = float(m.sum())
    len_px, wid_px, _ = _shape(m)
    relm = rel[m]
    rel_mean, rel_max, rel_std = float(relm.mean()), float(relm.max()), float(relm.std())
    vis_w = float(((L.vis[big] - L.bg_vis[big]) / L.gap_vis)[m].mean()) if L.vis is not None else rel_mean
    nir_w = float(((L.nir[big] - L.bg_nir[big]) / L.gap_nir)[m].mean()) if L.nir is not None else rel_mean
    if L.ndwi is not None:
        nd = L.ndwi[big]
        ndwi_in = float(nd[m].mean())
        ndwi_ring = float(nd[ring].mean()) if ring.any() else ndwi_in
    else:
        ndwi_in = ndwi_ring = 0.0
    ring_n = max(float(ring.sum()), 1.0)
    ring_water = float((ring & water).sum()) / ring_n
    ring_rel = float(rel[ring].mean()) if ring.any() else 0.0
    rl = ring & land
    ring_land_rel = float(rel[rl].mean()) if rl.any() else 0.0
    edge_in = float(rel[inner_edge].mean()) if inner_edge.any() else rel_mean
    edge_c = edge_in - ring_rel
    land_edge_c = (rel_mean - ring_land_rel) if rl.any() else rel_mean
    outline_land = float((outline & land).sum()) / max(float(outline.sum()), 1.0)
    dw = L.d_water[big][m]
    max_d_water = float(dw.max()) * gsd
    min_d_water, mean_d_water = float(min(dw.min(), 1e4 / gsd)) * gsd, float(min(dw.mean(), 1e4 / gsd)) * gsd
    min_d_land = float(min(L.d_land[big][m].min(), 1e4 / gsd)) * gsd
    nbhd = float(L.nbhd_land[big][m].mean())
    in_water = float(water[m].mean())
    if L.parent is not None:
        pl = L.parent[0][big][m]
        pl = pl[pl > 0]
        parent_n = float(L.parent[1][pl].max()) if pl.size else n
    else:
        parent_n = n
    red_blue = float(L.red_blue[big][m].mean()) if L.red_blue is not None else 0.0
    nir_red = float(L.nir_red[big][m].mean()) if L.nir_red is not None else 0.0
    rel_local = rel_mean - float(L.land_rel[big][m].mean())
    return [
        c.level, math.log(len_px * gsd), math.log(wid_px * gsd), math.log(len_px), math.log(n),
        len_px / max(wid_px, 1.0), n / max(len_px * wid_px, 1.0),
        rel_mean, rel_max, rel_std, vis_w, nir_w, nir_w - vis_w,
        ndwi_in, ndwi_ring, ring_water, ring_rel, ring_land_rel, edge_c, land_edge_c,
        outline_land, max_d_water, min_d_land, nbhd, float(c.stable), float(L.has_nir),
        in_water, math.log(max(parent_n, n) / n), red_blue, nir_red, rel_local, min_d_water, mean_d_water,
    ]


def rule_overlap(rects: list, rule_geoms: list) -> np.ndarray:
    """Per candidate rectangle, the largest IoU with any rule-based detection
    (0 where none overlaps)."""
    import shapely

    out = np.zeros(len(rects))
    if not rects or not rule_geoms:
        return out
    tree = shapely.STRtree(rule_geoms)
    for i, r in enumerate(rects):
        for j in tree.query(r):
            g = rule_geoms[j]
            u = r.union(g).area
            if u > 0:
                out[i] = max(out[i], r.intersection(g).area / u)
    return out


def candidate_features(layers: Layers, candidates: list[Candidate], rects: list | None = None,
                       rule_geoms: list | None = None) -> np.ndarray:
    """(n, len(FEATURES)) float64 feature matrix, all finite (see :data:`FEATURES`).

    Brightness contrasts are in units of the scene's land-minus-water gap
    (per band for ``vis_w`` / ``nir_w``), distances in metres, sizes as
    natural logs of metres or pixels. ``rule_iou`` is the overlap of each
    candidate's rectangle (``rects``, chip CRS) with the rule-based
    detections ``rule_geoms`` (0 without them)."""
    if not candidates:
        return np.zeros((0, len(FEATURES)))
    X = np.array([_features_one(layers, c) for c in candidates], dtype=np.float64)
    ov = rule_overlap(rects, rule_geoms) if rects is not None and rule_geoms else np.zeros(len(candidates))
    X = np.column_stack([X, ov])
    return np.nan_to_num(X, nan=0.0, posinf=1e4, neginf=-1e4)


# ---------------------------------------------------------------------------
# model (boosted trees, numpy inference)
# ---------------------------------------------------------------------------

class TreeModel:
    """Binary gradient-boosted trees: ``p = sigmoid(init + lr * sum(tree(x)))``.

    Trees are stored as flat arrays (feature, threshold, left, right, value);
    a node with ``left == -1`` is a leaf; ``x[feature] <= threshold`` goes left.
    """

    def __init__(self, doc: dict, source: str = "model"):
        try:
            if doc.get("kind") != "gbt-binary":
                raise ValueError(f"kind {doc.get('kind')!r} is not 'gbt-binary'")
            self.features = tuple(doc["features"])
            self.init = float(doc["init"])
            self.lr = float(doc["learning_rate"])
            self.threshold = float(doc["threshold"])
            self.trees = []
            for t in doc["trees"]:
                arr = [np.asarray(t[k]) for k in ("feature", "threshold", "left", "right", "value")]
                f, th, le, ri, v = arr
                if not (len(f) == len(th) == len(le) == len(ri) == len(v)) or len(f) == 0:
                    raise ValueError("tree arrays of unequal length")
                if (f[le >= 0] >= len(self.features)).any() or le.max() >= len(f) or ri.max() >= len(f):
                    raise ValueError("tree index out of range")
                self.trees.append((f.astype(np.int64), th.astype(np.float64), le.astype(np.int64),
                                   ri.astype(np.int64), v.astype(np.float64)))
            self.meta = doc.get("meta", {})
            cal = doc.get("calibration")
            if cal is None:
                self.calibration = None
            else:
                a, b = float(cal["a"]), float(cal["b"])
                if not (math.isfinite(a) and math.isfinite(b) and a > 0):
                    raise ValueError("calibration needs finite a > 0 and b")
                self.calibration = (a, b)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(source, f"not a vessel classifier model ({e})") from None

    def raw(self, X: np.ndarray) -> np.ndarray:
        # features compared in float32, as the trees were fitted (scikit-learn)
        X = np.asarray(X, np.float64).astype(np.float32).astype(np.float64)
        out = np.full(len(X), self.init)
        rows = np.arange(len(X))
        for f, th, le, ri, v in self.trees:
            node = np.zeros(len(X), np.int64)
            for _ in range(64):
                inner = le[node] >= 0
                if not inner.any():
                    break
                go_left = X[rows, np.maximum(f[node], 0)] <= th[node]
                node = np.where(inner, np.where(go_left, le[node], ri[node]), node)
            out += self.lr * v[node]
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The ensemble's own probability (as fitted; not calibrated)."""
        return 1.0 / (1.0 + np.exp(-self.raw(X)))

    def calibrate(self, p: np.ndarray) -> np.ndarray:
        """Model probabilities ``p`` -> calibrated scores (identity without a
        calibration): ``sigmoid(a * logit(p) + b)``, monotone, so ranking and
        overlap selection are unchanged."""
        p = np.asarray(p, np.float64)
        if self.calibration is None:
            return p
        a, b = self.calibration
        z = np.log(np.clip(p, 1e-9, 1 - 1e-9) / np.clip(1 - p, 1e-9, 1))
        return 1.0 / (1.0 + np.exp(-(a * z + b)))

    def score(self, X: np.ndarray) -> np.ndarray:
        """Calibrated vessel scores of feature rows ``X``: the probability
        that a kept detection with this score is a (labelled) vessel,
        estimated out of fold when the model was trained (see
        ``tools/train_vessel_classifier.py``)."""
        return self.calibrate(self.predict_proba(X))

    @property
    def score_threshold(self) -> float:
        """:attr:`threshold` (a model probability) on the calibrated score scale."""
        return float(self.calibrate(np.array([self.threshold]))[0])


def load_model(path: str | Path | None = None) -> TreeModel:
    """The model at ``path`` (default: the bundled Sentinel-2 model)."""
    if path is None:
        return _bundled()
    return _load(Path(path))


def _load(p: Path) -> TreeModel:
    try:
        doc = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(p, f"cannot read model ({e.__class__.__name__})") from None
    except json.JSONDecodeError as e:
        raise InputError(p, f"model is not JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(doc, dict):
        raise InputError(p, "not a vessel classifier model (top level is not an object)")
    m = TreeModel(doc, str(p))
    if m.features != FEATURES:
        raise InputError(p, "model features do not match this version of the feature set")
    return m


@lru_cache(maxsize=1)
def _bundled() -> TreeModel:
    return _load(MODEL_PATH)


# ---------------------------------------------------------------------------
# the second stage
# ---------------------------------------------------------------------------

def _rect(c: Candidate, transform):
    """Minimum rotated rectangle of the candidate's pixel squares, chip CRS."""
    import shapely
    from shapely.geometry import MultiPoint

    r, col = np.nonzero(c.mask)
    r = r + c.sl[0].start
    col = col + c.sl[1].start
    cr = np.concatenate([r, r, r + 1, r + 1])
    cc = np.concatenate([col, col + 1, col, col + 1])
    xs = transform.a * cc + transform.b * cr + transform.c
    ys = transform.d * cc + transform.e * cr + transform.f
    hull = MultiPoint(np.column_stack([xs, ys])).convex_hull
    return shapely.minimum_rotated_rectangle(hull)


def select(candidates: list[Candidate], prob: np.ndarray, threshold: float, shape,
           max_overlap: float = 0.3) -> list[int]:
    """Indices of candidates kept: probability >= ``threshold``, most
    probable first, a candidate whose pixels overlap already kept ones by
    more than ``max_overlap`` of its own area is dropped."""
    owner = np.zeros(shape, bool)
    keep = []
    for i in np.argsort(-prob, kind="stable"):
        if prob[i] < threshold:
            break
        c = candidates[i]
        o = owner[c.sl][c.mask]
        if o.mean() > max_overlap:
            continue
        owner[c.sl] |= c.mask
        keep.append(int(i))
    return keep


def score_candidates(chip, *, water: np.ndarray | None = None, model: TreeModel | None = None,
                     rule_geoms: list | None = None, **candidate_options):
    """(layers, candidates, rectangles, features, calibrated scores) for an optical chip."""
    model = model or load_model()
    layers = Layers(chip, water)
    cands = vessel_candidates(layers, **candidate_options)
    rects = [_rect(c, chip.transform) for c in cands]
    X = candidate_features(layers, cands, rects, rule_geoms)
    p = model.score(X) if len(X) else np.zeros(0)
    return layers, cands, rects, X, p


def classify_vessels(chip, result: DetectionResult | None = None, model: TreeModel | str | Path | None = None, *,
                     water: np.ndarray | None = None, threshold: float | None = None) -> DetectionResult:
    """Vessels of an optical chip from the learned second stage.

    ``result``: the rule-based :func:`~monitor.detect.vessels.detect_vessels`
    result of the same chip (coverage and extras are kept; its detections
    are replaced). ``model``: a :class:`TreeModel` or a path (default the
    bundled Sentinel-2 model). ``threshold``: cut on the calibrated score
    (default the model's, chosen by cross-validation when it was trained).
    SAR chips (``chip.sensor == "sar"``) return ``result`` unchanged.

    Each detection's ``score`` (and ``properties["p_vessel"]``) is the
    calibrated probability that it is a vessel (:meth:`TreeModel.score`);
    ``properties["p_model"]`` is the ensemble's uncalibrated probability.
    """
    if result is not None and getattr(chip, "sensor", "optical") == "sar":
        return result
    if chip.bands.ndim != 3 or chip.bands.shape[0] == 0:
        raise InputError(getattr(chip.scene, "path", "chip"), "vessel classifier needs a (bands, h, w) array")
    if not float(chip.gsd_m) > 0:
        raise InputError(getattr(chip.scene, "path", "chip"), f"bad pixel size {chip.gsd_m!r}")
    if not isinstance(model, TreeModel):
        model = load_model(model)
    thr = model.score_threshold if threshold is None else float(threshold)
    rule = [d.geometry for d in result.detections] if result is not None else None
    layers, cands, rects, X, p = score_candidates(chip, water=water, model=model, rule_geoms=rule)
    keep = select(cands, p, thr, layers.B.shape)
    p_model = model.predict_proba(X) if len(X) else np.zeros(0)
    from monitor.detect.vessels import size_class

    dets = []
    for i in keep:
        c = cands[i]
        rect = rects[i]
        xy = np.asarray(rect.exterior.coords)[:4]
        e1, e2 = np.hypot(*(xy[1] - xy[0])), np.hypot(*(xy[2] - xy[1]))
        L, W = max(e1, e2), min(e1, e2)
        v = (xy[1] - xy[0]) if e1 >= e2 else (xy[2] - xy[1])
        hd = float(np.degrees(np.arctan2(v[0], v[1])) % 180.0)
        dets.append(Detection(geometry=rect, cls="vessel", score=float(p[i]), length_m=round(float(L), 2),
                              width_m=round(float(W), 2), heading_deg=round(hd, 1),
                              properties={"size_class": size_class(L), "p_vessel": round(float(p[i]), 4),
                                          "p_model": round(float(p_model[i]), 4), "level": c.level}))
    by_size: dict[str, int] = {}
    for d in dets:
        by_size[d.properties["size_class"]] = by_size.get(d.properties["size_class"], 0) + 1
    if result is not None:
        extras = dict(result.extras)
        coverage = result.coverage
        crs = result.crs
    else:
        extras = {"water_source": layers.water_source, "gsd_m": layers.gsd, "mode": "optical"}
        coverage = float(layers.water.any())
        crs = chip.crs
    base = extras.get("count_by_size", {})
    extras["count_by_size"] = {k: by_size.get(k, 0) for k in base} if base else by_size
    extras.update({"classifier": "vessel_gbt_s2", "candidates": len(cands), "threshold": thr})
    n = len(dets)
    return DetectionResult(counts={"vessel": n}, intervals={"vessel": (float(n), float(n))}, coverage=coverage,
                           detections=dets, crs=crs, detector="vessels+classifier", version="1.0", extras=extras)
