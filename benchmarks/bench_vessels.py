"""Vessel detector benchmark: synthetic port scenes and real Sentinel-2 ports.

Run: ``python benchmarks/bench_vessels.py [--real-only] [--synth-only]``.

Prints
- synthetic optical (<= 3 m) and radar (10 m) scenes from seeds the tests
  do not use: precision, recall, F1 for ships >= 30 m (goals 0.95 / 0.90);
- detection time over chip read time for the Najin AOI at 1 m (goal <= 2);
- sen2ships (../shared/data/sen2ships, skipped with a message when
  absent): an AOI that is only a box around each scene, matching one-to-one
  with IoU >= 0.1 or centroid within 20 m (the data set's README):
  precision, recall, F1 over all scenes and the median absolute per-scene
  count error.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import box, shape

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Score, median  # noqa: E402

from monitor.aoi import AOI  # noqa: E402
from monitor.detect.vessels import detect_vessels  # noqa: E402

SEN2SHIPS = Path(os.environ.get("SEN2SHIPS", Path(__file__).resolve().parents[2] / "shared" / "data" / "sen2ships"))


def match_pairs(det, tru, min_iou: float = 0.1, max_dist_m: float = 20.0) -> list[tuple[int, int]]:
    """One-to-one matches (i_det, j_truth): IoU >= ``min_iou`` or centroid
    distance <= ``max_dist_m``. Greedy, best pairs first (IoU, then distance)."""
    if not det or not tru:
        return []
    dc = shapely.centroid(np.asarray(det, dtype=object))
    tc = shapely.centroid(np.asarray(tru, dtype=object))
    pairs = []
    for i, g in enumerate(det):
        for j, t in enumerate(tru):
            d = float(shapely.distance(dc[i], tc[j]))
            if d > 500:
                continue
            inter = g.intersection(t).area
            u = g.union(t).area
            v = inter / u if u > 0 else 0.0
            if v >= min_iou or d <= max_dist_m:
                pairs.append((-v, d, i, j))
    pairs.sort()
    ud, ut, out = set(), set(), []
    for _, _, i, j in pairs:
        if i in ud or j in ut:
            continue
        ud.add(i)
        ut.add(j)
        out.append((i, j))
    return out


def match_loose(det, tru, min_iou: float = 0.1, max_dist_m: float = 20.0) -> int:
    """Number of one-to-one matches of :func:`match_pairs`."""
    return len(match_pairs(det, tru, min_iou, max_dist_m))


def sen2ships(verbose: bool = True, **options) -> None:
    if not SEN2SHIPS.is_dir():
        print(f"sen2ships: skipped ({SEN2SHIPS} not found)")
        return
    from pyproj import Transformer

    from monitor.imagery import read_chip
    from monitor.scenes import open_scene

    total = Score(0, 0, 0)
    errs = []
    f1s = []
    t_det = 0.0
    t_read = 0.0
    for folder in sorted((SEN2SHIPS / "scenes").iterdir()):
        item = folder / "item.json"
        if not item.exists():
            continue
        t0 = time.perf_counter()
        scene = open_scene(item)
        aoi = AOI(id=folder.name, name=folder.name, country="", kind="port", boundary=box(*scene.footprint.bounds))
        chip = read_chip(scene, aoi, margin_m=0)
        t1 = time.perf_counter()
        res = detect_vessels(chip, **options)
        t2 = time.perf_counter()
        t_read += t1 - t0
        t_det += t2 - t1
        tr = Transformer.from_crs("EPSG:4326", chip.crs, always_xy=True)
        doc = json.loads((folder / "truth.geojson").read_text())
        truth = [shapely.transform(shape(f["geometry"]), lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
                 for f in doc["features"]]
        det = [d.geometry for d in res.detections]
        m = match_loose(det, truth)
        s = Score(tp=m, fp=len(det) - m, fn=len(truth) - m)
        total = total + s
        errs.append(abs(len(det) - len(truth)))
        f1s.append(2 * s.tp / max(2 * s.tp + s.fp + s.fn, 1))
        if verbose:
            print(f"  sen2ships {folder.name:14s} truth={len(truth):3d} detected={len(det):3d} {s.line()} "
                  f"water={res.extras.get('water_source')}")
    opts = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
    print(f"sen2ships [{opts}] (box AOI, IoU>=0.1 or centroid<=20 m): {total.line()} "
          f"median |count error|={median(errs):.1f} vessels/scene (scenes={len(errs)}, "
          f"detect {t_det:.1f} s, read {t_read:.1f} s); per-scene F1 min {min(f1s):.2f} "
          f"median {median(f1s):.2f} max {max(f1s):.2f}")


SYNTH_SEEDS = (9101, 9102, 9103)  # the tests use none of these


def _chip_from_synth(sc, aoi):
    from monitor.imagery import Chip

    bands = np.asarray(sc.bands, dtype=np.float32)
    valid = np.any(bands != 0, axis=0)
    return Chip(bands=bands, roles=tuple(sc.roles), valid=valid, transform=sc.transform, crs=sc.crs,
                gsd_m=float(sc.gsd_m), aoi=aoi, sensor=sc.sensor)


def _scene(aoi, gsd_m: float, seed: int, sensor: str, cloud: float = 0.0):
    """(chip, truth polygons, generator name) for one synthetic scene."""
    from datetime import datetime, timezone

    from monitor.synth import render_port_scene

    sc = render_port_scene(aoi, gsd_m=gsd_m, when=datetime(2024, 6, 1, tzinfo=timezone.utc), seed=seed,
                           sensor=sensor, cloud=cloud)
    truth = [t.polygon for t in sc.truth if t.cls == "vessel"]
    return _chip_from_synth(sc, aoi), truth, "monitor.synth"


def synthetic() -> None:
    from common import match

    from monitor.aoi import load_aoi

    aoi = load_aoi("najin")
    # 3 m with cloud: soft clouds over the water (the demo archive's Najin
    # and Dunay scenes are 3 m with clouds drawn from a climatology)
    for sensor, gsd, goal, cloud in (("optical", 2.0, 0.95, 0.0), ("optical", 3.0, 0.95, 0.0),
                                     ("optical", 3.0, 0.95, 0.3), ("sar", 10.0, 0.90, 0.0)):
        for rule, kw in (("IoU>=0.25", None), ("IoU>=0.1 or centroid<=20 m", dict(min_iou=0.1, max_dist_m=20.0))):
            tot = Score(0, 0, 0)
            vis_tot = Score(0, 0, 0)
            gen = "?"
            for seed in SYNTH_SEEDS:
                chip, truth, gen = _scene(aoi, gsd, seed, sensor, cloud)
                seen = _visible(aoi, gsd, seed, sensor, chip, truth) if cloud else [True] * len(truth)
                res = detect_vessels(chip)
                det = [d.geometry for d in res.detections]
                if kw is None:
                    m = [(i, j) for i, j, _ in match(det, truth, min_iou=0.25)]
                else:
                    m = match_pairs(det, truth, **kw)
                big = [_long_side(t) >= 30 for t in truth]
                # ships >= 30 m: every true one must be found; a detection
                # matched to a smaller true ship is neither hit nor false alarm,
                # an unmatched detection shorter than 24 m is not counted
                matched_d = {i for i, _ in m}
                tp = sum(1 for _, j in m if big[j])
                fp = sum(1 for i, d in enumerate(res.detections) if i not in matched_d and d.length_m >= 24.0)
                tot = tot + Score(tp=tp, fp=fp, fn=sum(big) - tp)
                # the same, for the true ships that can be seen at all (under
                # opaque cloud a hull is not observable; a detection matched
                # to a hidden one is neither hit nor false alarm)
                vtp = sum(1 for _, j in m if big[j] and seen[j])
                vis_tot = vis_tot + Score(tp=vtp, fp=fp, fn=sum(b and v for b, v in zip(big, seen)) - vtp)
            sky = f", cloud {cloud:g}" if cloud else ""
            print(f"synthetic {sensor} at {gsd:g} m{sky} ({gen}, seeds {SYNTH_SEEDS}), ships >= 30 m, {rule}: "
                  f"{tot.line()} goal F1>={goal}")
            if cloud:
                print(f"synthetic {sensor} at {gsd:g} m{sky}, ships >= 30 m visible through the cloud (hull "
                      f"contrast >= {VISIBLE_SHARE:g} of the cloud-free render), {rule}: {vis_tot.line()}")
    _timing(aoi)


#: A hull under cloud counts as visible when it keeps this share of its
#: cloud-free contrast against the water around it.
VISIBLE_SHARE = 0.5


def _visible(aoi, gsd: float, seed: int, sensor: str, chip, truth) -> list[bool]:
    """Per true ship: does it keep >= :data:`VISIBLE_SHARE` of its contrast
    (mean brightness over the hull minus the water ring 2-4 px around it)
    against the cloud-free render of the same seed? Decided from the
    generator's two renders, not from any detector."""
    from rasterio.features import rasterize
    from scipy import ndimage as ndi

    clear, truth0, _ = _scene(aoi, gsd, seed, sensor, 0.0)
    if len(truth0) != len(truth):
        return [True] * len(truth)
    sums = (chip.bands.sum(axis=0), clear.bands.sum(axis=0))
    out = []
    for t in truth:
        m = rasterize([(t, 1)], out_shape=chip.shape, transform=chip.transform).astype(bool)
        if not m.any():
            out.append(True)
            continue
        ring = ndi.binary_dilation(m, iterations=4) & ~ndi.binary_dilation(m, iterations=2)
        c = [float(np.mean(x[m]) - np.median(x[ring])) for x in sums]
        out.append(c[1] <= 0 or c[0] >= VISIBLE_SHARE * c[1])
    return out


def _long_side(g) -> float:
    r = g.minimum_rotated_rectangle
    c = np.asarray(r.exterior.coords)[:3]
    return float(max(np.hypot(*(c[1] - c[0])), np.hypot(*(c[2] - c[1]))))


def _timing(aoi) -> None:
    """Detection time over chip read time, Najin AOI at 1 m, from a tiled GeoTIFF."""
    import tempfile

    import rasterio

    from monitor.imagery import read_chip

    chip, _, gen = _scene(aoi, 1.0, SYNTH_SEEDS[0], "optical")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "najin_1m.tif")
        prof = dict(driver="GTiff", width=chip.shape[1], height=chip.shape[0], count=chip.bands.shape[0],
                    dtype="uint16", crs=chip.crs, transform=chip.transform, tiled=True, blockxsize=512,
                    blockysize=512, compress="deflate")
        with rasterio.open(path, "w", **prof) as dst:
            dst.write(np.clip(chip.bands, 0, 65535).astype("uint16"))
            for i, r in enumerate(chip.roles, start=1):
                dst.set_band_description(i, r)
        t0 = time.perf_counter()
        c2 = read_chip(path, aoi, gsd_m=1.0)
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = detect_vessels(c2)
        t_det = time.perf_counter() - t0
    print(f"timing najin at 1 m ({c2.shape[1]}x{c2.shape[0]} px, {gen}): read {t_read:.2f} s, "
          f"detect {t_det:.2f} s, detect/read = {t_det / max(t_read, 1e-9):.2f} (goal <= 2), "
          f"{res.counts['vessel']} vessels")


if __name__ == "__main__":
    args = set(sys.argv[1:])
    if "--real-only" not in args:
        synthetic()
    if "--synth-only" not in args:
        # the rule-based detector alone: no model has seen these scenes
        sen2ships(classifier=False)
        # the labels cover clearly visible, mostly large vessels (shortest
        # 41 m): the same run with a minimum length nearer that policy
        sen2ships(verbose=False, classifier=False, min_length_m=40.0)
        # with the learned second stage (the default at >= 5 m): its shipped
        # model was TRAINED ON THESE 9 SCENES, so this figure is in-sample;
        # the honest one is leave-one-scene-out, from
        # benchmarks/bench_vessel_classifier.py
        print("in-sample (the shipped classifier was trained on these scenes; "
              "LOSO figure: benchmarks/bench_vessel_classifier.py):")
        sen2ships(verbose=False)
