"""Railcar detector benchmark: synthetic scenes by GSD, Tumangang timing, Muttenz.

Run: /work/venv/bin/python benchmarks/bench_railcars.py [--quick | --coarse]
(``--coarse``: only more coarse-GSD scenes, 2, 3 and 10 m, summer and winter)

Prints, per GSD, precision / recall / F1 (a detection matches a true car
when their polygons overlap with IoU >= 0.25, one to one) and the median
relative count error over synthetic scenes made from seeds the tests do
not use (in clouded scenes only the cars not hidden by thick cloud count:
the scene is rendered once more without cloud to tell which are hidden);
the detection time over the chip read time for the Tumangang AOI at 0.5 m;
and the figures on the real Muttenz aerial image (0.255 m, 178 labelled
cars). Muttenz has no track lines: this benchmark derives them
from the truth polygons (rows of car centres), so the Muttenz F1 measures
the counting along given tracks, not tracing.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from shapely.geometry import LineString, box, shape

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import count_error, match, median, score, shared_dir  # noqa: E402

from monitor.aoi import AOI, Feature  # noqa: E402
from monitor.detect.railcars import detect_railcars  # noqa: E402
from monitor.imagery import Chip  # noqa: E402

MUTTENZ = shared_dir() / "data" / "muttenz_yard"


# ---------------------------------------------------------------------------
# Muttenz: real image, track lines derived from the truth (benchmark only)
# ---------------------------------------------------------------------------

def _car_axes(polys):
    out = []
    for p in polys:
        r = p.minimum_rotated_rectangle
        xy = np.asarray(r.exterior.coords)[:4]
        e = np.diff(np.vstack([xy, xy[:1]]), axis=0)
        k = int(np.argmax(np.hypot(e[:, 0], e[:, 1])))
        t = e[k] / np.hypot(*e[k])
        if t[0] < 0:
            t = -t
        c = np.asarray(p.centroid.coords[0])
        out.append((c, t, float(np.hypot(*e[k]))))
    return out


def truth_track_lines(polys, extend_m: float = 400.0, bounds=None):
    """Approximate track centrelines from labelled car polygons: cars whose
    axes line up (perpendicular distance < 1.3 m, angle < 6 deg, gap < 60 m)
    form one track; a line is fitted through their centres and extended."""
    axes = _car_axes(polys)
    n = len(axes)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        ci, ti, _ = axes[i]
        for j in range(i + 1, n):
            cj, tj, _ = axes[j]
            if abs(float(np.dot(ti, tj))) < np.cos(np.radians(6)):
                continue
            d = cj - ci
            along = abs(float(np.dot(d, ti)))
            perp = abs(float(d[0] * ti[1] - d[1] * ti[0]))
            if perp < 1.3 and along < 60:
                parent[find(i)] = find(j)
    groups = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    lines = []
    for g in groups.values():
        cs = np.array([axes[i][0] for i in g])
        t = np.mean([axes[i][1] for i in g], axis=0)
        t /= np.hypot(*t)
        c0 = cs.mean(axis=0)
        u = (cs - c0) @ t
        v = (cs - c0) @ np.array([-t[1], t[0]])
        # straight fit (these yard tracks are straight over a car row)
        if len(g) >= 2:
            slope = np.polyfit(u, v, 1)[0] if np.ptp(u) > 1 else 0.0
            t = t + slope * np.array([-t[1], t[0]])
            t /= np.hypot(*t)
            u = (cs - c0) @ t
            v = (cs - c0) @ np.array([-t[1], t[0]])
            c0 = c0 + np.mean(v) * np.array([-t[1], t[0]])
        half = max(axes[i][2] for i in g) / 2
        a = c0 + (u.min() - half - extend_m) * t
        b = c0 + (u.max() + half + extend_m) * t
        ln = LineString([a, b])
        if bounds is not None:
            ln = ln.intersection(bounds)
            if ln.is_empty or ln.geom_type != "LineString":
                continue
        lines.append(ln)
    return lines


def muttenz():
    if not MUTTENZ.exists():
        print(f"muttenz: skipped (no {MUTTENZ})")
        return
    import rasterio

    with rasterio.open(MUTTENZ / "scene.tif") as src:
        arr = src.read().astype(np.float32)
        tr, crs = src.transform, src.crs
        bounds = box(*src.bounds)
    doc = json.loads((MUTTENZ / "truth_railcars_EPSG2056.geojson").read_text())
    truth = [shape(f["geometry"]) for f in doc["features"]]
    truth = [max(g.geoms, key=lambda p: p.area) if g.geom_type == "MultiPolygon" else g for g in truth]
    lines = truth_track_lines(truth, bounds=bounds)
    feats = tuple(Feature("track", f"t{i}", ln, {"gauge_mm": 1435}) for i, ln in enumerate(lines))
    aoi = AOI(id="muttenz", name="Muttenz", country="CH", kind="rail_yard", boundary=bounds,
              features=feats, crs=crs)
    chip = Chip(bands=arr, roles=("red", "green", "blue"), valid=np.ones(arr.shape[1:], bool),
                transform=tr, crs=crs, gsd_m=abs(tr.a), aoi=aoi, meta={"scene": "muttenz"})
    t0 = time.perf_counter()
    res = detect_railcars(chip)
    dt = time.perf_counter() - t0
    det = [d.geometry for d in res.detections]
    # truth cars whose centroid is in the view (the 178 of the README)
    sc = score(det, truth, 0.25)
    offs = [v["offset_m"] for v in res.extras["per_track"].values()]
    print(f"muttenz (real 0.255 m, track lines DERIVED FROM TRUTH, {len(lines)} tracks): "
          f"count {res.counts['railcar']} vs 178 truth (visual 175-190), {sc.line()}, "
          f"median track offset {np.median(offs):.2f} m, {dt:.2f} s")
    return res, truth, lines, chip


# ---------------------------------------------------------------------------
# synthetic scenes (monitor.synth), seeds the tests do not use
# ---------------------------------------------------------------------------

#: (gsd_m, seed, cars, cloud, AOI): seeds 9000+ are not used by any test.
SYNTH_CASES = [
    (0.5, 9001, 40, 0.0, "tumangang"), (0.5, 9002, 90, 0.0, "khasan"), (0.5, 9003, 60, 0.3, "tumangang"),
    (1.0, 9011, 40, 0.0, "tumangang"), (1.0, 9012, 90, 0.0, "khasan"), (1.0, 9013, 60, 0.3, "tumangang"),
    (3.0, 9021, 40, 0.0, "tumangang"), (3.0, 9022, 90, 0.0, "khasan"), (3.0, 9023, 60, 0.3, "tumangang"),
]
#: ``--coarse``: more scenes for the coarse-GSD estimate (2, 3, 10 m; winter
#: dates bring snow and a low sun), as (gsd_m, seed, cars, cloud, AOI, date).
COARSE_CASES = [
    (g, seed, n, cl, aoi, when) for g in (2.0, 3.0, 10.0) for seed, n, cl, aoi, when in (
        (9031, 30, 0.0, "tumangang", "2024-06-17"), (9032, 120, 0.0, "tumangang", "2024-01-15"),
        (9033, 60, 0.0, "khasan", "2024-06-17"), (9034, 15, 0.0, "khasan", "2024-01-15"),
        (9035, 80, 0.5, "tumangang", "2024-06-17"), (9036, 0, 0.0, "tumangang", "2024-01-15"),
        (9037, 200, 0.0, "tumangang", "2024-06-17"), (9038, 40, 0.2, "khasan", "2024-01-15"))
]


def _synth_chip(scene, aoi):
    return Chip(bands=scene.bands.astype(np.float32), roles=scene.roles,
                valid=np.ones(scene.shape, bool), transform=scene.transform, crs=scene.crs,
                gsd_m=scene.gsd_m, aoi=aoi, meta={"scene": f"synth seed {scene.meta.get('seed')}",
                                                  "acquired": scene.acquired})


def hidden_by_cloud(sc, clear, min_added: float = 0.15) -> list[bool]:
    """Per truth car of the cloudy scene ``sc``: is it under thick cloud?
    ``clear`` is the same scene rendered without cloud (same seed, so the
    same cars and ground); a car is hidden where the cloud adds more than
    ``min_added`` reflectance (mean of its pixels, visible bands)."""
    import rasterio.features

    scale = 10000.0 if sc.bands.dtype == np.uint16 else (255.0 if sc.bands.dtype == np.uint8 else 1.0)
    added = (sc.bands[:3].astype(np.float32) - clear.bands[:3].astype(np.float32)).mean(axis=0) / scale
    out = []
    for t in sc.truth:
        m = rasterio.features.geometry_mask([t.polygon], sc.shape, sc.transform, invert=True, all_touched=True)
        out.append(bool(m.any() and float(added[m].mean()) > min_added))
    return out


def synthetic(quick: bool = False, cases=None):
    from monitor.aoi import load_aoi
    from monitor.synth.rail import render_rail_scene

    by_gsd = {}
    cases = cases if cases is not None else (SYNTH_CASES[::3] if quick else SYNTH_CASES)
    for gsd, seed, ncars, cloud, aoi_id, *date in cases:
        when = date[0] if date else "2024-06-17"
        aoi = load_aoi(aoi_id)
        sc = render_rail_scene(aoi, gsd_m=gsd, seed=seed, when=when, cars=ncars, cloud=cloud)
        res = detect_railcars(_synth_chip(sc, aoi))
        hidden = [False] * len(sc.truth)
        if cloud > 0:
            hidden = hidden_by_cloud(sc, render_rail_scene(aoi, gsd_m=gsd, seed=seed, when=when,
                                                           cars=ncars, cloud=0.0))
        # cars under thick cloud are neither to be found nor false when found
        truth = [t.polygon for t, h in zip(sc.truth, hidden) if not h]
        under = [t.polygon for t, h in zip(sc.truth, hidden) if h]
        det = [d.geometry for d in res.detections]
        if under:
            on_hidden = {i for i, _, _ in match(det, under, 0.25)}
            det = [g for i, g in enumerate(det) if i not in on_hidden]
        s = score(det, truth, 0.25)
        n = res.counts["railcar"] - (len(res.detections) - len(det))
        err = count_error(n, len(truth))
        lo, hi = res.intervals["railcar"]
        print(f"  synth {aoi_id} {gsd} m seed {seed} cloud {sc.meta.get('cloud', 0):.2f} coverage {res.coverage:.2f}: "
              f"count {res.counts['railcar']} [{lo:.0f}, {hi:.0f}] vs {len(truth)} visible "
              f"({len(under)} under cloud), {s.line()}, count error {err:.1%}")
        agg = by_gsd.setdefault(gsd, {"score": None, "err": []})
        agg["score"] = s if agg["score"] is None else agg["score"] + s
        agg["err"].append(err)
    for gsd, agg in sorted(by_gsd.items()):
        s = agg["score"]
        print(f"synthetic {gsd} m ({len(agg['err'])} scenes): {s.line()}, median count error {median(agg['err']):.1%}")


def synth_timing():
    """Detection time over read_chip time for Tumangang at 0.5 m, on a
    synthetic scene written as a COG (the real read path)."""
    from monitor.aoi import load_aoi
    from monitor.imagery import read_chip
    from monitor.synth.rail import render_rail_scene
    from monitor.synth.writer import write_scene

    aoi = load_aoi("tumangang")
    sc = render_rail_scene(aoi, gsd_m=0.5, seed=9100, when="2024-06-17", cars=120)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_scene(sc, tmp, "tumangang_0p5")
        t0 = time.perf_counter()
        chip = read_chip(path, aoi)
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = detect_railcars(chip)
        t_det = time.perf_counter() - t0
    print(f"tumangang 0.5 m synthetic COG ({chip.shape[1]}x{chip.shape[0]} px): read_chip {t_read:.2f} s, "
          f"detect {t_det:.2f} s, detect/read = {t_det / t_read:.2f} (count {res.counts['railcar']} "
          f"vs {len(sc.truth)})")


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    if "--coarse" in sys.argv:
        synthetic(cases=COARSE_CASES)
        sys.exit(0)
    synthetic(quick)
    synth_timing()
    muttenz()
