"""Track tracing benchmark: synthetic yards by GSD, and the real Muttenz yard.

Run: /work/venv/bin/python benchmarks/bench_trace.py [--quick] [--png OUT.png]

Synthetic: yards rendered by monitor.synth (parallel tracks 4.75-5 m apart,
a curve of 250 m radius, a branch leaving through a turnout, trains
standing) at several GSDs; the true centrelines are the AOI's tracks. It
prints the share of true track length within 1 m of a traced line
("recall") and the share of traced length within 1 m of a true track
("precision").

Muttenz (real 0.255 m aerial image, no track lines): tracks are traced
from the image alone, then the railcar detector counts along them; the
count and F1 (IoU >= 0.25, one to one) against the 178 labelled cars are
printed, and the detector-free line check (labelled car axes near a
traced line) also on the image averaged to twice the pixel size (~0.5 m).
The labels are used only for scoring. --png writes the traced
lines over the image (keep it outside the repository: the imagery is not
redistributable).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, box, shape

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import score, shared_dir  # noqa: E402

from monitor.aoi import AOI, Feature, utm_crs_for  # noqa: E402
from monitor.imagery import Chip  # noqa: E402
from monitor.trace import trace_tracks  # noqa: E402

MUTTENZ = shared_dir() / "data" / "muttenz_yard"


def bench_yard(lon=130.62, lat=42.43, n=6, length=500.0, seed=0) -> AOI:
    """Parallel tracks, a 250 m radius curve and a branch through a turnout."""
    rng = np.random.default_rng(seed)
    utm = utm_crs_for(lon, lat)
    tr = Transformer.from_crs(utm, "EPSG:4326", always_xy=True)
    x0, y0 = Transformer.from_crs("EPSG:4326", utm, always_xy=True).transform(lon, lat)
    ang = rng.uniform(0, math.pi)
    c, s = math.cos(ang), math.sin(ang)

    def tf(g):
        return shapely.transform(g, lambda xy: np.column_stack(
            tr.transform(x0 + c * xy[:, 0] - s * xy[:, 1], y0 + s * xy[:, 0] + c * xy[:, 1])))

    yy = [0.0]
    for i in range(n - 1):
        yy.append(yy[-1] + float(rng.uniform(4.6, 5.3)))
    feats = [Feature("track", f"t{i + 1}", tf(LineString([(0, y), (length, y)])), {"gauge_mm": 1520})
             for i, y in enumerate(yy)]
    # branch: leaves the top track at x=150 (a smooth S over 45 m), then runs 5 m further out
    y_top = yy[-1]
    bx = [150 + k * 5.0 for k in range(0, 10)]
    by = [y_top + 5.0 * (1 - math.cos(math.pi * k / 9)) / 2 for k in range(0, 10)]
    feats.append(Feature("track", "branch", tf(LineString([(150, y_top)] + list(zip(bx[1:], by[1:])) + [(length, y_top + 5.0)])),
                         {"gauge_mm": 1520}))
    # curve leaving below the yard
    R, yc = 250.0, -5.0
    pts = [(0.0, yc), (200.0, yc)]
    for k in range(1, 25):
        a = k / 24 * math.radians(45)
        pts.append((200 + R * math.sin(a), yc - R * (1 - math.cos(a))))
    feats.append(Feature("track", "curve", tf(LineString(pts)), {"gauge_mm": 1520}))
    bnd = box(-20, -90, length + 20, y_top + 25)
    return AOI(id=f"bench-yard-{seed}", name="bench yard", country="XX", kind="rail_yard", boundary=tf(bnd),
               features=tuple(feats))


def chip_of(scene) -> Chip:
    return Chip(bands=np.asarray(scene.bands, np.float32), roles=tuple(scene.roles),
                valid=np.ones(scene.bands.shape[1:], bool), transform=scene.transform, crs=scene.crs,
                gsd_m=scene.gsd_m, aoi=scene.aoi, meta={"scene": "synth"})


def line_scores(traced, truth, tol=1.0):
    """(share of true length within tol of a traced line, share of traced length within tol of a true line)."""
    T = shapely.union_all(truth)
    D = shapely.union_all(traced) if traced else shapely.GeometryCollection()
    true_len = T.length
    rec = T.intersection(D.buffer(tol)).length / true_len if traced else 0.0
    prec = D.intersection(T.buffer(tol)).length / D.length if traced else 1.0
    return rec, prec


def synthetic(gsds=(0.3, 0.5, 0.8), seeds=(101, 102)):
    from monitor.synth import render_rail_scene

    for gsd in gsds:
        recs, precs, times = [], [], []
        for seed in seeds:
            aoi = bench_yard(seed=seed)
            sc = render_rail_scene(aoi, gsd_m=gsd, seed=seed, cars=60, when="2024-05-10")
            chip = chip_of(sc)
            truth = [f.geometry for f in chip.local_aoi.tracks]
            t0 = time.perf_counter()
            feats = trace_tracks(chip, aoi)
            times.append(time.perf_counter() - t0)
            r, p = line_scores([f.geometry for f in feats], truth)
            recs.append(r)
            precs.append(p)
        print(f"synthetic {gsd:.2f} m ({len(seeds)} yards, curve+branch+trains): "
              f"true length within 1 m of a traced line {np.mean(recs):.1%}, "
              f"traced length within 1 m of a true track {np.mean(precs):.1%}, "
              f"{np.mean(times):.1f} s per yard")


def car_axis_coverage(feats, cars, tol=1.0) -> float:
    """Share of the labelled cars' long axes (middle 80%) within ``tol`` m of a
    traced line: do the lines run along the cars standing on the tracks?"""
    if not feats:
        return 0.0
    segs = []
    for p in cars:
        r = np.asarray(p.minimum_rotated_rectangle.exterior.coords)[:4]
        e = np.diff(np.vstack([r, r[:1]]), axis=0)
        k = int(np.argmax(np.hypot(e[:, 0], e[:, 1])))
        c = np.asarray(p.centroid.coords[0])
        segs.append(LineString([c - 0.4 * e[k], c + 0.4 * e[k]]))
    near = shapely.union_all([f.geometry for f in feats]).buffer(tol)
    return sum(s.intersection(near).length for s in segs) / sum(s.length for s in segs)


def muttenz(png=None):
    if not MUTTENZ.exists():
        print(f"muttenz: skipped (no {MUTTENZ})")
        return
    import rasterio

    from monitor.detect.railcars import detect_railcars

    with rasterio.open(MUTTENZ / "scene.tif") as src:
        arr = src.read().astype(np.float32)
        tr, crs = src.transform, src.crs
        bounds = box(*src.bounds)
    aoi = AOI(id="muttenz", name="Muttenz", country="CH", kind="rail_yard", boundary=bounds, crs=crs)
    chip = Chip(bands=arr, roles=("red", "green", "blue"), valid=np.ones(arr.shape[1:], bool),
                transform=tr, crs=crs, gsd_m=abs(tr.a), aoi=aoi, meta={"scene": "muttenz"})
    t0 = time.perf_counter()
    feats = trace_tracks(chip, aoi)
    dt = time.perf_counter() - t0
    res = detect_railcars(chip, tracks=[(f.id, f.geometry) for f in feats])
    # the truth is read only now, for scoring
    doc = json.loads((MUTTENZ / "truth_railcars_EPSG2056.geojson").read_text())
    truth = [shape(f["geometry"]) for f in doc["features"]]
    truth = [max(g.geoms, key=lambda p: p.area) if g.geom_type == "MultiPolygon" else g for g in truth]
    det = [d.geometry for d in res.detections]
    sc = score(det, truth, 0.25)
    km = sum(f.geometry.length for f in feats) / 1000
    print(f"muttenz line check (detector-free): labelled car axes within 1 m of a traced line "
          f"{car_axis_coverage(feats, truth, 1.0):.1%}, within 1.5 m {car_axis_coverage(feats, truth, 1.5):.1%}")
    # the same image at twice the pixel size (~0.5 m, a satellite look): the scales come from the GSD
    from rasterio.transform import Affine

    h2, w2 = arr.shape[1] // 2 * 2, arr.shape[2] // 2 * 2
    arr2 = arr[:, :h2, :w2].reshape(arr.shape[0], h2 // 2, 2, w2 // 2, 2).mean(axis=(2, 4))
    tr2 = tr * Affine.scale(2)
    chip2 = Chip(bands=arr2.astype(np.float32), roles=("red", "green", "blue"), valid=np.ones(arr2.shape[1:], bool),
                 transform=tr2, crs=crs, gsd_m=abs(tr2.a), aoi=aoi, meta={"scene": "muttenz-0.5m"})
    t1 = time.perf_counter()
    feats2 = trace_tracks(chip2, aoi)
    dt2 = time.perf_counter() - t1
    print(f"muttenz at {chip2.gsd_m:.2f} m (2x2 mean) line check: {len(feats2)} lines, {dt2:.1f} s, labelled car axes "
          f"within 1 m {car_axis_coverage(feats2, truth, 1.0):.1%}, within 1.5 m {car_axis_coverage(feats2, truth, 1.5):.1%}")
    print(f"muttenz (real 0.255 m, TRACED tracks: {len(feats)} lines, {km:.2f} km, {dt:.1f} s): "
          f"count {res.counts['railcar']} vs 178 truth (visual 175-190), {sc.line()}")
    if png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(20, 12.5))
        ext = (tr.c, tr.c + tr.a * arr.shape[2], tr.f + tr.e * arr.shape[1], tr.f)
        ax.imshow(np.moveaxis(arr, 0, -1) / 255, extent=ext)
        for f in feats:
            x, y = f.geometry.xy
            ax.plot(x, y, "r-", lw=1)
        for d in det:
            x, y = d.exterior.xy
            ax.plot(x, y, "c-", lw=0.7)
        ax.set_title("traced tracks (red) and detected cars (cyan)")
        fig.tight_layout()
        fig.savefig(png, dpi=90)
        print(f"muttenz overlay: {png}")


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    png = sys.argv[sys.argv.index("--png") + 1] if "--png" in sys.argv else None
    synthetic(gsds=(0.5,) if quick else (0.3, 0.5, 0.8), seeds=(101,) if quick else (101, 102))
    muttenz(png)
