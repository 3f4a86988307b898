"""Fit the count-uncertainty calibration (monitor.uncertainty) on synthetic scenes.

Run: ``python tools/calibrate_uncertainty.py [--out PATH] [--quick] [--records R.json [--refit]]``
(about 5-10 minutes on one core; ``--quick`` runs a third of the scenes
and does not write the bundled table unless ``--out`` is given).

For each detector mode and pixel size in :data:`PLAN` it renders synthetic
scenes with :mod:`monitor.synth` (seeds 4201 + 1000 j + i for the j-th
line of the plan; the benchmark ``benchmarks/bench_uncertainty.py`` uses
4601 + 1000 j + i, the other benchmarks
9000 on, the tests small numbers), runs the detector with its defaults,
labels every detection true or false against the scene's truth
(:func:`label`), and fits one :class:`monitor.uncertainty.Band` per mode
and GSD (:func:`monitor.uncertainty.fit_band`). The table is written to
``monitor/detect/models/count_calibration.json``. Re-run it whenever a
detector changes its scores or its recall (the table records the detector
versions it was fitted with).

What counts as a true object (the count the interval is about):
- railcars: every car of the truth not hidden under thick cloud (the
  scene is rendered again without cloud to tell, as in
  benchmarks/bench_railcars.py) and not where the detector's cloud
  backstop screened the chip (outside the covered part its count is
  about); detections on such cars are dropped.
  A detection is true when it matches a car one-to-one with IoU >= 0.25
  or centroids within 4 m (individual cars), or centroids within 7.5 m,
  half a typical car, where cars are estimated from occupied length
  (coarser than 1.2 m).
- vessels: ships whose long side is at least the detector's minimum
  length at that GSD (``max(15 m, 4 px)`` optical, 15 m radar) and not
  hidden under cloud; a detection matched (IoU >= 0.1 or centroids within
  20 m, the sen2ships rule) to a smaller ship is a false one for this
  count.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from monitor.uncertainty import CALIBRATION_PATH, fit_band, mode_key, save_calibration  # noqa: E402

#: (kind, sensor, gsd_m, number of scenes): what is calibrated. Rail AOIs
#: alternate tumangang / khasan, ports najin / dunay; every third optical
#: scene has cloud 0.3.
PLAN = [
    ("rail", "optical", 0.5, 18), ("rail", "optical", 1.0, 16), ("rail", "optical", 2.0, 12),
    ("rail", "optical", 3.0, 16),
    ("port", "optical", 2.0, 16), ("port", "optical", 3.0, 20), ("port", "sar", 10.0, 16),
]
#: Optical chips of 5 m pixels and coarser go through the learned second
#: stage (monitor.detect.vessel_classifier), trained on real Sentinel-2
#: scenes; on the generator's 10 m ports it finds almost nothing (recall
#: 0.03 in a trial), so that mode is calibrated on the real sen2ships
#: scenes (when present; else it stays uncalibrated). Those are the scenes
#: the classifier was trained on: its precision and recall there are
#: in-sample, so the band is optimistic (benchmarks/bench_uncertainty.py
#: measures it leave-one-scene-out).
SEN2SHIPS = ROOT.parent / "shared" / "data" / "sen2ships"
SEED0 = 4201
RAIL_AOIS = ("tumangang", "khasan")
PORT_AOIS = ("najin", "dunay")
WHEN = "2024-06-17"


def _rail_chip(sc, aoi):
    from bench_railcars import _synth_chip

    return _synth_chip(sc, aoi)


def _port_chip(sc, aoi):
    from bench_vessels import _chip_from_synth

    return _chip_from_synth(sc, aoi)


def scene_case(kind: str, sensor: str, gsd: float, seed: int, i: int) -> dict:
    """One scene's settings: AOI, object count and cloud, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    cloud = 0.3 if (sensor == "optical" and i % 3 == 2) else 0.0
    if kind == "rail":
        return dict(kind=kind, sensor=sensor, gsd=gsd, seed=seed, aoi=RAIL_AOIS[i % 2],
                    n=int(rng.integers(5, 140)), cloud=cloud)
    return dict(kind=kind, sensor=sensor, gsd=gsd, seed=seed, aoi=PORT_AOIS[i % 2], n=int(rng.integers(4, 30)),
                cloud=cloud)


def min_vessel_length_m(gsd: float, sensor: str) -> float:
    """The vessel detector's minimum hull length at ``gsd`` (its defaults)."""
    from monitor.detect.vessels import OPTICAL_MIN_LENGTH_PX

    return max(15.0, OPTICAL_MIN_LENGTH_PX * gsd) if sensor == "optical" else 15.0


def run_case(case: dict, **detect_options):
    """Render and detect one case. Returns ``(result, truth, hidden, other)``:
    the detection result, the true countable objects (polygons), the ones
    hidden under cloud, and true objects that exist but are not counted
    (vessels under the minimum length)."""
    from bench_railcars import hidden_by_cloud

    from monitor.aoi import load_aoi

    aoi = load_aoi(case["aoi"])
    if case["kind"] == "rail":
        from monitor.detect.railcars import detect_railcars
        from monitor.synth.rail import render_rail_scene

        kw = dict(gsd_m=case["gsd"], seed=case["seed"], when=WHEN, cars=case["n"])
        sc = render_rail_scene(aoi, cloud=case["cloud"], **kw)
        chip = _rail_chip(sc, aoi)
        res = detect_railcars(chip, **detect_options)
        objs = [t.polygon for t in sc.truth]
        hid = hidden_by_cloud(sc, render_rail_scene(aoi, cloud=0.0, **kw)) if case["cloud"] else [False] * len(objs)
        if case["cloud"]:  # outside the part the detector covered: not in its count's truth
            hid = [h or s for h, s in zip(hid, screened_by_detector(chip, objs))]
        small = [False] * len(objs)
    else:
        from monitor.detect.vessels import detect_vessels
        from monitor.synth import render_port_scene

        kw = dict(gsd_m=case["gsd"], seed=case["seed"], when=WHEN + "T01:30:00+00:00", sensor=case["sensor"],
                  ships=case["n"])
        sc = render_port_scene(aoi, cloud=case["cloud"], **kw)
        res = detect_vessels(_port_chip(sc, aoi), **detect_options)
        keep = [t for t in sc.truth if t.cls == "vessel"]
        objs = [t.polygon for t in keep]
        if case["cloud"]:
            clear = render_port_scene(aoi, cloud=0.0, **kw)
            sc.truth = keep
            hid = hidden_by_cloud(sc, clear)
        else:
            hid = [False] * len(objs)
        lmin = min_vessel_length_m(case["gsd"], case["sensor"])
        small = [_long_side(g) < lmin for g in objs]
    truth = [g for g, h, s in zip(objs, hid, small) if not h and not s]
    hidden = [g for g, h in zip(objs, hid) if h]
    other = [g for g, h, s in zip(objs, hid, small) if s and not h]
    return res, truth, hidden, other


def screened_by_detector(chip, polygons) -> list[bool]:
    """Per polygon: does its centre lie where the railcar detector's cloud
    backstop screened the chip (so outside the covered part its coverage
    and count are about)? Uses the detector's own screen
    (``monitor.detect.railcars._cloud_screen``, private: all False when it
    is not there)."""
    try:
        from monitor.detect import railcars as rc

        co = rc._Coarse(chip, chip.valid)
        cloud = rc._cloud_screen(co, rc._gray_roles(chip.roles)) | ~co.valid
    except (AttributeError, TypeError, ValueError):
        return [False] * len(polygons)
    out = []
    for g in polygons:
        c = g.centroid
        r, k = co.index(np.array([c.x, c.y]))
        r = int(np.clip(round(float(r)), 0, cloud.shape[0] - 1))
        k = int(np.clip(round(float(k)), 0, cloud.shape[1] - 1))
        out.append(bool(cloud[r, k]))
    return out


def _long_side(g) -> float:
    r = g.minimum_rotated_rectangle
    c = np.asarray(r.exterior.coords)[:3]
    return float(max(np.hypot(*(c[1] - c[0])), np.hypot(*(c[2] - c[1]))))


def match_rule(result) -> dict:
    """The matching rule (keywords of :func:`monitor.evaluate.match`) for a result."""
    cls = next(iter(result.counts), "")
    if cls == "railcar":
        return dict(min_iou=0.25, max_centroid_m=7.5 if mode_key(result) == "length" else 4.0)
    return dict(min_iou=0.1, max_centroid_m=20.0)


def label(result, truth, hidden=(), other=()):
    """``(result without detections on hidden objects, is_true per kept
    detection, n_true)``: detections are matched one-to-one to the true
    countable objects, the hidden ones and the uncounted ones together;
    those on hidden objects are dropped, those on uncounted ones are false."""
    from monitor.evaluate import match

    allt = list(truth) + list(hidden) + list(other)
    det = [d.geometry for d in result.detections]
    m = {x.detected: x.truth for x in match(det, allt, **match_rule(result))}
    keep, is_true = [], []
    for i, d in enumerate(result.detections):
        j = m.get(i)
        if j is not None and len(truth) <= j < len(truth) + len(hidden):
            continue
        keep.append(d)
        is_true.append(j is not None and j < len(truth))
    cls = next(iter(result.counts), "")
    dropped = len(result.detections) - len(keep)
    counts = {k: (max(0, v - dropped) if k == cls else v) for k, v in result.counts.items()}
    kept = dataclasses.replace(result, detections=keep, counts=counts, extras=dict(result.extras))
    return kept, np.array(is_true, bool), len(truth)


def sen2ships_cases(folder=SEN2SHIPS, **detect_options):
    """Per real sen2ships scene: ``(name, result, truth polygons)``, with an
    AOI that is only a box around the scene (as benchmarks/bench_vessels.py);
    yields nothing when the folder is absent."""
    import json
    import os

    import shapely
    from pyproj import Transformer
    from shapely.geometry import box, shape

    from monitor.aoi import AOI
    from monitor.detect.vessels import detect_vessels
    from monitor.imagery import read_chip
    from monitor.scenes import open_scene

    folder = Path(os.environ.get("SEN2SHIPS", folder))
    if not (folder / "scenes").is_dir():
        return
    for d in sorted((folder / "scenes").iterdir()):
        if not (d / "item.json").exists():
            continue
        scene = open_scene(d / "item.json")
        aoi = AOI(id=d.name, name=d.name, country="", kind="port", boundary=box(*scene.footprint.bounds))
        chip = read_chip(scene, aoi, margin_m=0)
        res = detect_vessels(chip, **detect_options)
        tr = Transformer.from_crs("EPSG:4326", chip.crs, always_xy=True)
        doc = json.loads((d / "truth.geojson").read_text())
        truth = [shapely.transform(shape(f["geometry"]),
                                   lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
                 for f in doc["features"]]
        yield d.name, res, truth


def calibrate_sen2ships(verbose: bool = True, records: list | None = None) -> int:
    """Append per-scene records of the real sen2ships scenes (the
    ``vessel/optical+classifier`` mode) to ``records``; returns how many
    scenes (0 when they are absent: that mode then stays uncalibrated)."""
    from monitor.errors import InputError

    rows = []
    try:
        cases = list(sen2ships_cases())
    except InputError as e:
        print(f"sen2ships: failed ({e}): optical+classifier stays uncalibrated")
        return 0
    for name, res, truth in cases:
        kept, is_true, n_true = label(res, truth)
        rows.append(dict(kind="port", sensor="optical", gsd=float(res.extras.get("gsd_m", 10.0)), seed=None,
                         aoi=name, cloud=0.0, mode=mode_key(res), cls="vessel", source="sen2ships",
                         version=f"{res.detector} {res.version} {res.extras.get('classifier', '')}".strip(),
                         coverage=float(res.coverage), count=int(res.counts.get("vessel", 0)),
                         scores=[float(d.score) for d in kept.detections],
                         is_true=[bool(x) for x in is_true], n_true=int(n_true)))
        if verbose:
            print(f"  sen2ships {name}: {len(kept.detections)} detections, {int(is_true.sum())} true, "
                  f"{n_true} labelled [{mode_key(res)}]", flush=True)
    if not rows:
        print(f"sen2ships: skipped ({SEN2SHIPS} not found): optical+classifier stays uncalibrated")
        return 0
    g = round(float(np.median([r["gsd"] for r in rows])), 2)  # one band for the scenes' pixel sizes
    for r in rows:
        r["gsd"] = g
    if records is not None:
        records.extend(rows)
    return len(rows)


def fit_records(records, verbose: bool = True) -> list:
    """Bands from per-scene records (as ``--records`` saves them), without
    running the detectors again: per class, mode and GSD one band of all
    scenes (sky ``any``) and, where at least 2 scenes of each were run,
    one of the clear (no cloud asked) and one of the cloudy scenes."""
    from monitor.uncertainty import fit_band

    groups: dict = {}
    for r in records:
        groups.setdefault((r["cls"], r["mode"], float(r["gsd"])), []).append(r)
    bands = []
    for (cls, mode, gsd), rs in groups.items():
        clear = [r for r in rs if not r.get("cloud")]
        cloudy = [r for r in rs if r.get("cloud")]
        subsets = [("any", rs)]
        if len(clear) >= 2 and len(cloudy) >= 2:
            subsets += [("clear", clear), ("cloudy", cloudy)]
        for sky, sub in subsets:
            scenes = [(r["scores"], np.array(r["is_true"], bool), r["n_true"]) for r in sub]
            b = fit_band(cls, mode, gsd, scenes, version=sub[0].get("version", ""), sky=sky,
                         seeds=[r["seed"] for r in sub if r.get("seed") is not None])
            bands.append(b)
            if verbose:
                src = " (real sen2ships, in-sample for the classifier)" if sub[0].get("source") == "sen2ships" else ""
                print(f"{b.key}{src}: {b.n_scenes} scenes, {b.n_true} true objects, recall {b.recall:.3f} "
                      f"Beta{b.recall_ab}, logit_sd {b.logit_sd:.2f}, precision by score bin {list(b.precision)} "
                      f"(edges {list(b.score_edges)}, n {list(b.n_det)})", flush=True)
    return bands


def run_plan(plan=PLAN, quick: bool = False, verbose: bool = True) -> list:
    """Render, detect and label every scene of ``plan``: per-scene records
    (case, mode, class, detector version, coverage, count, scores, is_true,
    n_true), then the sen2ships scenes when present."""
    records = []
    for j, (kind, sensor, gsd, n) in enumerate(plan):
        n = max(3, n // 3) if quick else n
        for i in range(n):
            seed = SEED0 + 1000 * j + i
            case = scene_case(kind, sensor, gsd, seed, i)
            res, truth, hidden, other = run_case(case)
            kept, is_true, n_true = label(res, truth, hidden, other)
            mode = mode_key(res)
            cls = next(iter(res.counts))
            records.append(dict(case, mode=mode, cls=cls, version=f"{res.detector} {res.version}",
                                coverage=float(res.coverage), count=int(res.counts.get(cls, 0)),
                                scores=[float(d.score) for d in kept.detections],
                                is_true=[bool(x) for x in is_true], n_true=int(n_true)))
            if verbose:
                print(f"  {kind} {sensor} {gsd:g} m seed {seed} {case['aoi']} cloud {case['cloud']:g}: "
                      f"{len(kept.detections)} detections, {int(is_true.sum())} true, {n_true} true objects "
                      f"[{mode}], coverage {res.coverage:.2f}", flush=True)
    calibrate_sen2ships(verbose, records)
    return records


def calibrate(plan=PLAN, quick: bool = False, verbose: bool = True, records: list | None = None):
    """Run the plan and fit the bands; per-scene records are appended to ``records``."""
    recs = run_plan(plan, quick, verbose)
    if records is not None:
        records.extend(recs)
    return fit_records(recs, verbose)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help=f"output JSON (default {CALIBRATION_PATH})")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--records", default=None,
                    help="JSON of the per-scene records: written after a run, or read with --refit")
    ap.add_argument("--refit", action="store_true", help="fit the bands from --records without detecting")
    ap.add_argument("--sen2ships-only", action="store_true",
                    help="re-run only the sen2ships scenes, replacing theirs in --records, and refit")
    a = ap.parse_args()
    import json

    if a.sen2ships_only:
        if not a.records:
            ap.error("--sen2ships-only needs --records")
        recs = [r for r in json.loads(Path(a.records).read_text()) if r.get("source") != "sen2ships"]
        calibrate_sen2ships(True, recs)
        Path(a.records).write_text(json.dumps(recs) + "\n")
        bands = fit_records(recs)
    elif a.refit:
        if not a.records:
            ap.error("--refit needs --records")
        bands = fit_records(json.loads(Path(a.records).read_text()))
        for b in bands:
            print(f"{b.key}: recall {b.recall} Beta{b.recall_ab} logit_sd {b.logit_sd} precision {list(b.precision)}")
    else:
        recs: list = []
        bands = calibrate(quick=a.quick, records=recs)
        if a.records:
            Path(a.records).write_text(json.dumps(recs) + "\n")
            print(f"wrote {a.records} ({len(recs)} scenes)")
    out = a.out or (None if a.quick else CALIBRATION_PATH)
    if out:
        p = save_calibration(bands, out, made_by="tools/calibrate_uncertainty.py", seed0=SEED0,
                             note="per detector mode and GSD: precision by score bin, recall and their "
                                  "between-scene spreads; synthetic scenes (monitor.synth), except "
                                  "vessel/optical+classifier: the real sen2ships scenes")
        print(f"wrote {p}")
