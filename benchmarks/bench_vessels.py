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


def match_loose(det, tru, min_iou: float = 0.1, max_dist_m: float = 20.0) -> int:
    """One-to-one matches: IoU >= ``min_iou`` or centroid distance <= ``max_dist_m``.

    Greedy, best pairs first (by IoU, then by distance)."""
    if not det or not tru:
        return 0
    dc = shapely.centroid(np.asarray(det, dtype=object))
    tc = shapely.centroid(np.asarray(tru, dtype=object))
    pairs = []
    for i, g in enumerate(det):
        for j, t in enumerate(tru):
            d = float(shapely.distance(dc[i], tc[j]))
            if d > 200:
                continue
            inter = g.intersection(t).area
            u = g.union(t).area
            v = inter / u if u > 0 else 0.0
            if v >= min_iou or d <= max_dist_m:
                pairs.append((-v, d, i, j))
    pairs.sort()
    ud, ut, m = set(), set(), 0
    for _, _, i, j in pairs:
        if i in ud or j in ut:
            continue
        ud.add(i)
        ut.add(j)
        m += 1
    return m


def sen2ships(verbose: bool = True, **options) -> None:
    if not SEN2SHIPS.is_dir():
        print(f"sen2ships: skipped ({SEN2SHIPS} not found)")
        return
    from pyproj import Transformer

    from monitor.imagery import read_chip
    from monitor.scenes import open_scene

    total = Score(0, 0, 0)
    errs = []
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
        if verbose:
            print(f"  sen2ships {folder.name:14s} truth={len(truth):3d} detected={len(det):3d} {s.line()} "
                  f"water={res.extras.get('water_source')}")
    opts = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
    print(f"sen2ships [{opts}] (box AOI, IoU>=0.1 or centroid<=20 m): {total.line()} "
          f"median |count error|={median(errs):.1f} vessels/scene (scenes={len(errs)}, "
          f"detect {t_det:.1f} s, read {t_read:.1f} s)")


def synthetic() -> None:
    try:
        from monitor.synth import render_port_scene  # noqa: F401
    except Exception as e:  # pragma: no cover - until monitor.synth lands
        print(f"synthetic: skipped (monitor.synth unavailable: {e.__class__.__name__}: {e})")
        return
    import synth_vessels

    synth_vessels.run()


if __name__ == "__main__":
    args = set(sys.argv[1:])
    if "--real-only" not in args:
        synthetic()
    if "--synth-only" not in args:
        sen2ships()
        # the labels cover clearly visible, mostly large vessels (shortest
        # 41 m): the same run with a minimum length nearer that policy
        sen2ships(verbose=False, min_length_m=40.0)
