"""Trace rail track centrelines from imagery.

A rail track seen from above at 0.25-1 m GSD is a pair of thin parallel
lines (the rails, 1.435-1.52 m apart) on a ballast bed, or, where cars
stand on it, a row of car bodies about 3 m wide whose long edges run
parallel to the track. Both are *linear* and *long*. The tracer scores
every pixel for "a track centreline runs through here in direction
theta" for a bank of orientations:

1. the gray image is rotated so that theta runs along the columns;
2. the across-track second derivative (both polarities) marks rails, the
   across-track gradient marks car edges; a *pair* response is the
   geometric mean of the rail (edge) map half a gauge (half a car width)
   above and below each pixel, so a single line or edge scores nothing;
3. the pair response is averaged along the track direction over
   ``along_m`` metres (long straight or gently curving structures keep
   their score, texture loses it) and thinned by non-maximum suppression
   across the track within half the track spacing;
4. the maps are rotated back; the best orientation wins per pixel.

Evidence from several scenes of one AOI is combined on the first chip's
grid by a per-pixel maximum (a track hidden under cars in one scene is
open in another). Ridge pixels above a threshold set from the evidence
distribution are skeletonised, broken at junctions, fitted into smooth
pieces, linked end to end when their directions agree (a curvature
limit), cleaned of near-duplicates closer than the track spacing and kept
when at least ``min_length_m`` long.

:func:`trace_tracks` returns :class:`~monitor.aoi.Feature` lines in the
**chip CRS** (metres); :func:`trace_aoi` writes them into a copy of the AOI
in the AOI's own CRS (WGS84 as loaded).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Sequence

import numpy as np
import shapely
from scipy import ndimage
from shapely.geometry import LineString, MultiLineString
from skimage.morphology import skeletonize

from monitor.aoi import AOI, Feature, reproject_to
from monitor.errors import InputError

__all__ = ["trace_tracks", "trace_aoi", "track_evidence", "TraceEvidence"]

MERGES = ("replace", "refine", "add")


class TraceEvidence:
    """Per-pixel track evidence on one grid.

    score: float32 (h, w), centreline evidence in units of the background
        level (median of the scene's evidence = 1).
    ridge: bool (h, w), the thinned ridge (local maxima across the track).
    theta: float32 (h, w), track direction in radians in pixel space
        (0 = along columns / east, positive towards increasing rows).
    transform, crs, gsd_m: the grid.
    """

    def __init__(self, score, ridge, theta, transform, crs, gsd_m):
        self.score, self.ridge, self.theta = score, ridge, theta
        self.transform, self.crs, self.gsd_m = transform, crs, gsd_m


def _as_chips(chips_or_arrays) -> list:
    from monitor.imagery import Chip

    items = chips_or_arrays if isinstance(chips_or_arrays, (list, tuple)) else [chips_or_arrays]
    if not items:
        raise InputError("scenes", "no chip to trace tracks in")
    for i, c in enumerate(items):
        if not isinstance(c, Chip):
            raise InputError(f"chip {i}", f"expected a monitor.imagery.Chip, got {type(c).__name__}")
        if c.sensor != "optical":
            raise InputError(f"chip {i}", f"track tracing needs an optical chip, not {c.sensor}")
    return list(items)


def _normalised_gray(chip) -> tuple[np.ndarray, np.ndarray]:
    g = chip.gray().astype(np.float32)
    valid = np.asarray(chip.valid, bool) & np.isfinite(g)
    if not valid.any():
        raise InputError(str(chip.meta.get("scene", "chip")), "no valid pixel to trace tracks in")
    v = g[valid]
    med = np.median(v)
    mad = np.median(np.abs(v - med)) * 1.4826 or float(v.std()) or 1.0
    out = np.where(valid, (g - med) / mad, 0.0).astype(np.float32)
    return np.clip(out, -6, 6), valid


def _on_grid(chip, ref):
    """Normalised gray and valid mask of ``chip`` on the grid of ``ref``."""
    g, valid = _normalised_gray(chip)
    if chip is ref or (chip.shape == ref.shape and chip.transform == ref.transform
                       and str(chip.crs) == str(ref.crs)):
        return g, valid
    from rasterio.warp import Resampling, reproject

    dst = np.zeros(ref.shape, np.float32)
    dv = np.zeros(ref.shape, np.uint8)
    reproject(g, dst, src_transform=chip.transform, src_crs=chip.crs, dst_transform=ref.transform,
              dst_crs=ref.crs, resampling=Resampling.bilinear)
    reproject(valid.astype(np.uint8), dv, src_transform=chip.transform, src_crs=chip.crs,
              dst_transform=ref.transform, dst_crs=ref.crs, resampling=Resampling.nearest)
    return dst, dv.astype(bool)


def _shift_rows(a: np.ndarray, d: float) -> np.ndarray:
    return ndimage.shift(a, (d, 0.0), order=1, mode="constant", cval=0.0, prefilter=False)


def _oriented(g: np.ndarray, valid: np.ndarray, gsd: float, angles: np.ndarray, *, half_gauge_m: float,
              half_car_m: float, along_m: float, nms_m: float, car_weight: float):
    """Best pair response, its angle and the ridge flag over ``angles`` (deg)."""
    h, w = g.shape
    best = np.zeros((h, w), np.float32)
    best_k = np.zeros((h, w), np.int16)
    ridge = np.zeros((h, w), bool)
    s_rail = max(0.6, 0.12 / gsd)           # px, across
    s_edge = max(0.7, 0.25 / gsd)
    s_along = max(1.0, 0.6 / gsd)
    L = max(3, int(round(along_m / gsd)))
    nms = max(3, int(round(2 * nms_m / gsd)) | 1)
    hv = valid.astype(np.float32)
    for k, ang in enumerate(angles):
        # rotate so that the track direction runs along the columns
        gr = ndimage.rotate(g, -ang, reshape=True, order=1, mode="constant", cval=0.0)
        vr = ndimage.rotate(hv, -ang, reshape=True, order=1, mode="constant", cval=0.0) > 0.99
        rail = np.abs(ndimage.gaussian_filter(gr, (s_rail, s_along), order=(2, 0)))
        edge = np.abs(ndimage.gaussian_filter(gr, (s_edge, s_along), order=(1, 0)))
        dg, dc = half_gauge_m / gsd, half_car_m / gsd
        pr = np.sqrt(_shift_rows(rail, dg) * _shift_rows(rail, -dg)) * (s_rail ** 2)
        pc = np.sqrt(_shift_rows(edge, dc) * _shift_rows(edge, -dc)) * s_edge
        p = np.maximum(pr, car_weight * pc)
        p[~vr] = 0.0
        p = ndimage.uniform_filter1d(p, L, axis=1, mode="constant")
        cnt = ndimage.uniform_filter1d(vr.astype(np.float32), L, axis=1, mode="constant")
        p = np.where(cnt > 0.5, p / np.maximum(cnt, 1e-6), 0.0).astype(np.float32)
        p = ndimage.gaussian_filter1d(p, max(0.5, 0.15 / gsd), axis=0)
        peak = (p >= ndimage.maximum_filter1d(p, nms, axis=0)) & (p > 0)
        # rotate back onto the chip grid (centre-aligned crop)
        pb = ndimage.rotate(p, ang, reshape=True, order=1, mode="constant", cval=0.0)
        kb = ndimage.rotate(peak.astype(np.float32), ang, reshape=True, order=1, mode="constant") > 0.5
        oy, ox = (pb.shape[0] - h) // 2, (pb.shape[1] - w) // 2
        pb, kb = pb[oy:oy + h, ox:ox + w], kb[oy:oy + h, ox:ox + w]
        better = pb > best
        best = np.where(better, pb, best)
        best_k = np.where(better, k, best_k).astype(np.int16)
        ridge = np.where(better, kb, ridge)
    return best, best_k, ridge


def track_evidence(chips_or_arrays, *, gauge_m: Sequence[float] | float = (1.435, 1.52),
                   car_width_m: float = 2.9, along_m: float = 10.0, spacing_m: Sequence[float] = (4.5, 5.5),
                   n_angles: int = 18, car_weight: float = 1.0) -> TraceEvidence:
    """Track-centreline evidence of one or more chips of one AOI, on the
    grid of the first chip (per-pixel maximum over the scenes)."""
    chips = _as_chips(chips_or_arrays)
    ref = chips[0]
    gsd = float(ref.gsd_m)
    gauges = np.atleast_1d(np.asarray(gauge_m, float))
    half_gauge = float(gauges.mean()) / 2 + 0.035          # rail head centre
    angles = np.arange(n_angles) * 180.0 / n_angles
    score = None
    for c in chips:
        g, valid = _on_grid(c, ref)
        b, k, r = _oriented(g, valid, gsd, angles, half_gauge_m=half_gauge, half_car_m=car_width_m / 2,
                            along_m=along_m, nms_m=min(spacing_m) / 2 * 0.8, car_weight=car_weight)
        pos = b[valid & (b > 0)]
        scale = float(np.median(pos)) if pos.size else 1.0
        b = b / (scale or 1.0)
        if score is None:
            score, best_k, ridge = b, k, r
        else:
            better = b > score
            score = np.where(better, b, score)
            best_k = np.where(better, k, best_k)
            ridge = np.where(better, r, ridge)
    theta = np.radians(angles)[best_k].astype(np.float32)
    return TraceEvidence(score.astype(np.float32), ridge, theta, ref.transform, ref.crs, gsd)


# ---------------------------------------------------------------------------
# from ridge pixels to lines
# ---------------------------------------------------------------------------

def _pieces(mask: np.ndarray, ev: TraceEvidence, min_px: int):
    """Skeleton branches as ordered (n, 2) arrays of map coordinates, with
    the mean evidence of each."""
    sk = skeletonize(mask)
    nb = ndimage.convolve(sk.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant") - 1
    sk &= ~(sk & (nb > 2))                    # break at junctions
    lab, n = ndimage.label(sk, structure=np.ones((3, 3)))
    if n == 0:
        return []
    rows, cols = np.nonzero(lab)
    ids = lab[rows, cols]
    order = np.argsort(ids, kind="stable")
    rows, cols, ids = rows[order], cols[order], ids[order]
    cuts = np.flatnonzero(np.diff(ids)) + 1
    a = ev.transform
    out = []
    for r, c in zip(np.split(rows, cuts), np.split(cols, cuts)):
        if r.size < min_px:
            continue
        x = a.c + a.a * (c + 0.5) + a.b * (r + 0.5)
        y = a.f + a.d * (c + 0.5) + a.e * (r + 0.5)
        xy = np.column_stack([x, y])
        m = xy.mean(axis=0)
        u, s, vt = np.linalg.svd(xy - m, full_matrices=False)
        t = (xy - m) @ vt[0]
        o = np.argsort(t)
        xy = xy[o]
        sc = float(ev.score[r, c].mean())
        out.append((xy, sc))
    return out


def _smooth_line(xy: np.ndarray, step_m: float, smooth_m: float) -> np.ndarray:
    """Resample an ordered point run to ``step_m`` by arc length and smooth it."""
    d = np.r_[0, np.cumsum(np.hypot(*np.diff(xy, axis=0).T))]
    if d[-1] <= step_m:
        return xy[[0, -1]]
    s = np.linspace(0, d[-1], max(2, int(d[-1] / step_m) + 1))
    p = np.column_stack([np.interp(s, d, xy[:, 0]), np.interp(s, d, xy[:, 1])])
    k = max(1, int(round(smooth_m / step_m)))
    if len(p) > 2 * k + 1:
        q = ndimage.uniform_filter1d(p, 2 * k + 1, axis=0, mode="nearest")
        q[0], q[-1] = p[0], p[-1]
        # keep the end points' direction: linear extrapolation of the smoothed interior
        p = q
    return p


def _end_dir(p: np.ndarray, end: int, reach: int) -> np.ndarray:
    """Unit direction pointing *out of* the line at ``end`` (0 start, 1 end)."""
    if end == 0:
        v = p[0] - p[min(reach, len(p) - 1)]
    else:
        v = p[-1] - p[max(0, len(p) - 1 - reach)]
    n = np.hypot(*v)
    return v / n if n > 0 else v


def _link(lines: list[tuple[np.ndarray, float]], max_gap_m: float, max_angle_deg: float,
          max_offset_m: float, step_m: float) -> list[tuple[np.ndarray, float]]:
    """Join pieces end to end when the gap is short and both ends point at
    each other (direction change <= ``max_angle_deg``, lateral offset of each
    end from the other's line <= ``max_offset_m``). Greedy, best pair first."""
    lines = [(p, s, float(np.hypot(*np.diff(p, axis=0).T).sum())) for p, s in lines]
    reach = max(1, int(round(6.0 / step_m)))
    cos_lim = np.cos(np.radians(max_angle_deg))
    while True:
        ends = []
        for i, (p, _, _) in enumerate(lines):
            for e in (0, 1):
                ends.append((i, e, p[0] if e == 0 else p[-1], _end_dir(p, e, reach)))
        if len(ends) < 4:
            return [(p, s) for p, s, _ in lines]
        P = np.array([e[2] for e in ends])
        D = np.array([e[3] for e in ends])
        I = np.array([e[0] for e in ends])
        v = P[None, :, :] - P[:, None, :]                    # from end a to end b
        dist = np.hypot(v[..., 0], v[..., 1])
        with np.errstate(invalid="ignore", divide="ignore"):
            vu = v / dist[..., None]
        # a's outward direction points to b, b's outward direction points to a, and they oppose
        fa = np.einsum("ijk,ik->ij", vu, D)
        fb = -np.einsum("ijk,jk->ij", vu, D)
        opp = -(D @ D.T)
        lat_a = np.abs(v[..., 0] * D[:, None, 1] - v[..., 1] * D[:, None, 0])
        lat_b = np.abs(v[..., 0] * D[None, :, 1] - v[..., 1] * D[None, :, 0])
        near = dist <= 1.5 * step_m
        ok = (I[:, None] != I[None, :]) & (dist <= max_gap_m) & (opp >= cos_lim) & (
            near | ((fa >= cos_lim) & (fb >= cos_lim) & (lat_a <= max_offset_m) & (lat_b <= max_offset_m)))
        if not ok.any():
            return [(p, s) for p, s, _ in lines]
        cost = np.where(ok, dist + 10 * (1 - opp), np.inf)
        a, b = np.unravel_index(np.argmin(cost), cost.shape)
        (ia, ea), (ib, eb) = ends[a][:2], ends[b][:2]
        pa, sa, la = lines[ia]
        pb, sb, lb = lines[ib]
        pa = pa if ea == 1 else pa[::-1]
        pb = pb if eb == 0 else pb[::-1]
        joined = np.vstack([pa, pb])
        new = (joined, (sa * la + sb * lb) / max(la + lb, 1e-9), la + lb + float(dist[a, b]))
        lines = [x for j, x in enumerate(lines) if j not in (ia, ib)] + [new]


def _dedupe(lines: list[tuple[LineString, float]], sep_m: float) -> list[tuple[LineString, float]]:
    """Drop lines that run mostly within ``sep_m`` of a longer, kept line."""
    keep: list[tuple[LineString, float]] = []
    for ln, sc in sorted(lines, key=lambda t: -t[0].length * t[1]):
        if keep:
            near = shapely.union_all([k.buffer(sep_m, cap_style="flat") for k, _ in keep])
            inside = ln.intersection(near).length
            if inside > 0.5 * ln.length:
                continue
        keep.append((ln, sc))
    return keep


def trace_tracks(chips_or_arrays, aoi: AOI | None = None, *, gauge_m: Sequence[float] | float = (1.435, 1.52),
                 spacing_m: Sequence[float] = (4.5, 5.5), min_length_m: float = 50.0, threshold: float | None = None,
                 along_m: float = 10.0, max_gap_m: float = 30.0, max_angle_deg: float = 12.0,
                 car_width_m: float = 2.9, n_angles: int = 18, inside: bool = True,
                 evidence: TraceEvidence | None = None) -> list[Feature]:
    """Trace rail track centrelines in one or more chips of one AOI.

    Parameters
    ----------
    chips_or_arrays: a :class:`~monitor.imagery.Chip` or a list of chips of
        the same AOI (any grids: all are resampled onto the first one's).
    aoi: the AOI (default: the first chip's); with ``inside`` only lines
        inside its boundary are kept.
    gauge_m: the rail gauge(s) to look for, metres (centre to centre of the
        rail pair is about gauge + 0.07 m).
    spacing_m: (min, max) distance between neighbouring track centrelines,
        metres: ridges closer than ~0.8 x min are treated as one track.
    min_length_m: shortest line kept, metres.
    threshold: evidence level (in units of the scene's median evidence) a
        ridge must reach; default: from the evidence distribution.
    along_m: length (m) over which evidence is averaged along a track.
    max_gap_m, max_angle_deg: linking limits (gap bridged, direction change
        allowed at a join: the curvature limit).

    Returns
    -------
    A list of :class:`~monitor.aoi.Feature` with role ``"track"``, a
    LineString **in the first chip's CRS (metres)** and properties ``id``
    (``"trace-1"``...), ``confidence`` (0..1), ``length_m``, ``source``
    ``"trace"`` and ``gauge_mm`` when a single gauge is given.
    """
    chips = _as_chips(chips_or_arrays)
    ref = chips[0]
    aoi = aoi if aoi is not None else ref.aoi
    ev = evidence or track_evidence(chips, gauge_m=gauge_m, car_width_m=car_width_m, along_m=along_m,
                                    spacing_m=spacing_m, n_angles=n_angles)
    gsd = ev.gsd_m
    sc = ev.score
    if threshold is None:
        # background ridge maxima sit near the median; tracks well above.
        vals = sc[ev.ridge & (sc > 0)]
        threshold = float(max(1.4, np.quantile(vals, 0.5))) if vals.size else 1.4
    mask = ev.ridge & (sc >= threshold)
    # bridge one-pixel breaks of the thinned ridge before skeletonising
    mask = ndimage.binary_closing(mask, structure=np.ones((3, 3)), iterations=1) | mask
    step = max(gsd, 0.5)
    pieces = _pieces(mask, ev, min_px=max(3, int(round(4.0 / gsd))))
    smooth = [(_smooth_line(xy, step, 2.0), s) for xy, s in pieces]
    smooth = [(p, s) for p, s in smooth if len(p) >= 2]
    linked = _link(smooth, max_gap_m, max_angle_deg, max_offset_m=1.5, step_m=step)
    lines = []
    for p, s in linked:
        ln = LineString(_smooth_line(p, step, 3.0)) if len(p) > 2 else LineString(p)
        ln = ln.simplify(0.15 * step + 0.1)
        lines.append((ln, s))
    if inside and aoi is not None:
        bnd = reproject_to(aoi.boundary, aoi.crs, ev.crs) if aoi.crs is not None else aoi.boundary
        clipped = []
        for ln, s in lines:
            g = ln.intersection(bnd)
            for q in (g.geoms if hasattr(g, "geoms") else [g]):
                if isinstance(q, LineString) and not q.is_empty:
                    clipped.append((q, s))
        lines = clipped
    lines = [(ln, s) for ln, s in lines if ln.length >= min_length_m]
    lines = _dedupe(lines, 0.8 * min(spacing_m) / 2 * 1.5)
    lines.sort(key=lambda t: (-t[0].centroid.y, t[0].centroid.x))
    gauges = np.atleast_1d(np.asarray(gauge_m, float))
    feats = []
    for i, (ln, s) in enumerate(lines, 1):
        conf = float(np.clip((s - threshold) / (2 * threshold), 0, 1) * 0.7
                     + 0.3 * min(1.0, ln.length / (4 * min_length_m)))
        props = {"confidence": round(conf, 3), "length_m": round(float(ln.length), 1), "source": "trace"}
        if gauges.size == 1:
            props["gauge_mm"] = int(round(gauges[0] * 1000))
        feats.append(Feature("track", f"trace-{i}", ln, props))
    return feats


# ---------------------------------------------------------------------------
# into an AOI
# ---------------------------------------------------------------------------

def _refine(old: Feature, traced: list[Feature], within_m: float):
    """Move ``old`` (chip CRS) onto the traced line running along it within
    ``within_m``: the part of the traced lines inside a corridor around it,
    stitched in the old line's direction. None when nothing runs along it."""
    corridor = old.geometry.buffer(within_m, cap_style="flat")
    best, best_len = None, 0.0
    for f in traced:
        part = f.geometry.intersection(corridor)
        L = part.length
        if L > best_len:
            best, best_len = (f, part), L
    if best is None or best_len < 0.5 * old.geometry.length:
        return None
    f, part = best
    if isinstance(part, MultiLineString):
        part = shapely.ops.linemerge(part)
        if isinstance(part, MultiLineString):
            part = max(part.geoms, key=lambda g: g.length)
    # keep the old line's direction
    a = np.asarray(old.geometry.coords)
    b = np.asarray(part.coords)
    if np.dot(a[-1] - a[0], b[-1] - b[0]) < 0:
        part = LineString(b[::-1])
    props = {**old.properties, "source": "trace-refined",
             "confidence": f.properties.get("confidence")}
    for k in ("gauge_mm",):
        if k in old.properties:
            props[k] = old.properties[k]
    return Feature("track", old.id, part, props), f


def trace_aoi(scenes_or_chips, aoi: AOI | None = None, *, merge: str = "replace", refine_m: float = 8.0,
              **options) -> AOI:
    """Trace tracks and write them into a copy of ``aoi`` (other features kept).

    scenes_or_chips: chips (:class:`~monitor.imagery.Chip`) or scenes
        (anything :func:`monitor.imagery.read_chip` reads) of the AOI.
    merge: ``"replace"`` drops the AOI's track lines for the traced ones;
        ``"add"`` keeps them and adds traced lines not already within
        ``refine_m`` of one; ``"refine"`` moves each existing line onto the
        traced line running along it within ``refine_m`` metres (keeping its
        id and properties) and adds the traced lines left over.
    options: passed to :func:`trace_tracks`.

    Returns an :class:`AOI` in the input AOI's CRS (WGS84 as loaded) that
    :func:`monitor.aoi.parse_aoi` accepts after :meth:`AOI.to_geojson`.
    """
    if merge not in MERGES:
        raise InputError(f"merge={merge}", f"must be one of {', '.join(MERGES)}")
    items = scenes_or_chips if isinstance(scenes_or_chips, (list, tuple)) else [scenes_or_chips]
    from monitor.imagery import Chip

    chips = []
    for it in items:
        if isinstance(it, Chip):
            chips.append(it)
        else:
            from monitor.imagery import read_chip
            from monitor.scenes import open_scene

            if aoi is None:
                raise InputError(str(it), "an AOI is needed to read a scene")
            sc = open_scene(it) if isinstance(it, (str,)) or hasattr(it, "__fspath__") else it
            chips.append(read_chip(sc, aoi))
    if not chips:
        raise InputError("scenes", "no scene to trace tracks in")
    aoi = aoi if aoi is not None else chips[0].aoi
    crs = chips[0].crs
    traced = trace_tracks(chips, aoi, **options)
    local = aoi.to_crs(crs)
    old_tracks = [f for f in local.features if f.role == "track"]
    others = [f for f in local.features if f.role != "track"]
    used_ids = {f.id for f in local.features}
    new_tracks: list[Feature] = []
    if merge == "replace":
        new_tracks = traced
    else:
        consumed = set()
        for old in old_tracks:
            r = _refine(old, traced, refine_m) if merge == "refine" else None
            if r is None:
                new_tracks.append(old)
            else:
                new_tracks.append(r[0])
                consumed.add(r[1].id)
        kept = shapely.union_all([f.geometry.buffer(refine_m) for f in new_tracks]) if new_tracks else None
        for f in traced:
            if f.id in consumed:
                continue
            g = f.geometry if kept is None else f.geometry.difference(kept)
            parts = list(g.geoms) if hasattr(g, "geoms") else [g]
            for j, q in enumerate(p for p in parts if isinstance(p, LineString) and p.length >= 20.0):
                fid = f.id if j == 0 else f"{f.id}-{j}"
                new_tracks.append(Feature("track", fid, q, {**f.properties, "length_m": round(q.length, 1)}))
    # unique ids (traced ids may collide with the AOI's)
    out = []
    seen = {f.id for f in others}
    for f in new_tracks:
        fid = f.id
        n = 1
        while fid in seen or (fid != f.id and fid in used_ids):
            n += 1
            fid = f"{f.id}.{n}"
        seen.add(fid)
        out.append(replace(f, id=fid))
    result = replace(local, features=tuple(others + out), source=None)
    return result.to_crs(aoi.crs)
