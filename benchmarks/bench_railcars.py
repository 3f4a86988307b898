"""Railcar detector benchmark: synthetic scenes by GSD, Tumangang timing, Muttenz.

Run: /work/venv/bin/python benchmarks/bench_railcars.py [--quick]

Prints, per GSD, precision / recall / F1 (a detection matches a true car
when their polygons overlap with IoU >= 0.25, one to one) and the median
relative count error over synthetic scenes made from seeds the tests do
not use; the detection time over the chip read time for the Tumangang AOI
at 0.5 m; and the figures on the real Muttenz aerial image (0.255 m, 178
labelled cars). Muttenz has no track lines: this benchmark derives them
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
import shapely
import shapely.ops
from shapely.geometry import LineString, box, shape

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import count_error, median, score  # noqa: E402

from monitor.aoi import AOI, Feature  # noqa: E402
from monitor.detect.railcars import detect_railcars  # noqa: E402
from monitor.imagery import Chip  # noqa: E402

MUTTENZ = Path("/work/shared/data/muttenz_yard")


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
        print("muttenz: skipped (no /work/shared/data/muttenz_yard)")
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


def tumangang_timing(gsd: float = 0.5):
    """Detection time over chip read time for the bundled Tumangang AOI at
    ``gsd``: a simple test raster (ballast texture, cars on every second
    track) is written as a tiled GeoTIFF over the AOI, read with read_chip."""
    import rasterio
    from rasterio.features import rasterize

    from monitor.aoi import load_aoi
    from monitor.imagery import read_chip

    aoi = load_aoi("tumangang")
    u = aoi.to_crs()
    x0, y0, x1, y1 = u.boundary.buffer(60).bounds
    w, h = int((x1 - x0) / gsd), int((y1 - y0) / gsd)
    tr = rasterio.transform.from_origin(x0, y1, gsd, gsd)
    rng = np.random.default_rng(7)
    img = rng.integers(90, 130, size=(h, w), dtype=np.uint8)
    beds = [t.geometry.buffer(1.6, cap_style="flat") for t in u.tracks]
    img[rasterize([(b, 1) for b in beds], out_shape=(h, w), transform=tr).astype(bool)] += 15
    cars = []
    for k, t in enumerate(u.tracks):
        if k % 2:
            continue
        L = t.geometry.length
        for a in np.arange(0.2 * L, 0.6 * L - 15, 15.2):
            seg = shapely.ops.substring(t.geometry, a, a + 14.0)
            cars.append((seg.buffer(1.5, cap_style="flat"), int(rng.choice([40, 60, 190, 210]))))
    if cars:
        car = rasterize(cars, out_shape=(h, w), transform=tr, fill=0)
        img = np.where(car > 0, car, img).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tumangang_0p5.tif"
        with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8",
                           crs=u.crs, transform=tr, tiled=True, blockxsize=512, blockysize=512,
                           compress="deflate") as dst:
            for b in (1, 2, 3):
                dst.write(img, b)
            dst.descriptions = ("red", "green", "blue")
        t0 = time.perf_counter()
        chip = read_chip(path, aoi)
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = detect_railcars(chip)
        t_det = time.perf_counter() - t0
    print(f"tumangang 0.5 m ({w}x{h} px, {len(u.tracks)} tracks, {len(cars)} cars drawn): "
          f"read {t_read:.2f} s, detect {t_det:.2f} s, detect/read = {t_det / t_read:.2f} "
          f"(count {res.counts['railcar']})")


if __name__ == "__main__":
    try:
        import monitor.synth  # noqa: F401
        have_synth = hasattr(monitor.synth, "render_rail_scene")
    except ImportError:
        have_synth = False
    if not have_synth:
        print("synthetic: skipped (monitor.synth.render_rail_scene not available yet)")
    tumangang_timing()
    muttenz()
