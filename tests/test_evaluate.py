"""monitor.evaluate and ``monitor evaluate``: scoring detections against hand labels.

The matching examples are small drawings in metres (a local UTM grid), so
they read as the documentation of the rule: one-to-one, IoU >= 0.25, or a
centroid distance for objects too small to overlap much.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import Point, box, mapping
from typer.testing import CliRunner

from monitor.cli import app
from monitor.detect import Detection, DetectionResult
from monitor.errors import InputError
from monitor.evaluate import Score, evaluate_many, evaluate_scene, iou, match, read_objects, score

runner = CliRunner()
UTM = "EPSG:32652"
X0, Y0 = 600_000.0, 4_700_000.0  # a point near Tumangang in UTM 52N


def at(g):
    """``g`` drawn in metres around (X0, Y0)."""
    return shapely.affinity.translate(g, X0, Y0)


def to_wgs84(g):
    tr = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    return shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def fc(geoms, crs=None, **props):
    """A FeatureCollection of ``geoms`` (WGS84 unless ``crs``), each with ``props``."""
    doc = {"type": "FeatureCollection",
           "features": [{"type": "Feature", "properties": dict(props), "geometry": mapping(g)} for g in geoms]}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    return doc


# --- matching, as documentation ------------------------------------------------------------------


def test_two_boxes_overlapping_by_half_have_iou_one_third():
    a, b = box(0, 0, 10, 10), box(5, 0, 15, 10)  # 50 m2 shared, 150 m2 covered
    assert iou(a, b) == pytest.approx(1 / 3)
    (m,) = match([a], [b])  # default min_iou 0.25
    assert (m.detected, m.truth, m.rule) == (0, 0, "iou") and m.iou == pytest.approx(1 / 3)
    assert m.distance_m == pytest.approx(5.0)
    assert match([a], [b], min_iou=0.5) == []


def test_a_detection_over_two_true_objects_matches_only_one():
    # one 20 m outline over two 10 m cars: it matches the car it overlaps best, the other is missed
    cars = [box(0, 0, 10, 3), box(10.5, 0, 19, 3)]
    merged = box(0, 0, 20, 3)
    (m,) = match([merged], cars)
    assert m.truth == 0 and m.iou == pytest.approx(0.5)
    s = score([merged], cars)
    assert (s.tp, s.fp, s.fn) == (1, 0, 1) and s.recall == 0.5 and s.count_error == -1


def test_best_pair_first_one_to_one():
    truth = [box(0, 0, 10, 3), box(10, 0, 20, 3)]
    det = [box(3, 0, 13, 3), box(1, 0, 11, 3)]  # both overlap truth 0 best: IoU 7/13 and 9/11
    (m,) = match(det, truth)
    assert (m.detected, m.truth) == (1, 0) and m.iou == pytest.approx(9 / 11)
    # det 0 is left with truth 1 at IoU 3/17 < 0.25: a false positive, truth 1 a miss ...
    assert (score(det, truth).fp, score(det, truth).fn) == (1, 1)
    # ... unless the threshold is lowered below 3/17
    assert [(m.detected, m.truth) for m in match(det, truth, min_iou=0.15)] == [(0, 1), (1, 0)]


def test_centroid_fallback_for_tiny_objects():
    # a 2 x 2 m boat seen 3 m off: no overlap at all, but within a 5 m centroid distance
    det, tru = box(0, 0, 2, 2), box(3, 0, 5, 2)
    assert match([det], [tru]) == []
    (m,) = match([det], [tru], max_centroid_m=5.0)
    assert m.rule == "centroid" and m.iou == 0.0 and m.distance_m == pytest.approx(3.0)
    assert match([det], [tru], max_centroid_m=2.0) == []
    # point labels match by centroid only
    (p,) = match([det], [Point(1.5, 1.0)], max_centroid_m=5.0)
    assert p.rule == "centroid" and p.distance_m == pytest.approx(0.5)


def test_bad_thresholds_are_input_errors():
    with pytest.raises(InputError, match="min_iou=0"):
        match([box(0, 0, 1, 1)], [box(0, 0, 1, 1)], min_iou=0)
    with pytest.raises(InputError, match="max_centroid_m=-1"):
        match([box(0, 0, 1, 1)], [box(0, 0, 1, 1)], max_centroid_m=-1)


def test_score_rates_count_error_and_pooling():
    s = Score(tp=8, fp=2, fn=4)
    assert s.precision == 0.8 and s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 * 0.8 * (2 / 3) / (0.8 + 2 / 3))
    assert (s.count, s.truth_count, s.count_error) == (10, 12, -2)
    assert s.relative_count_error == pytest.approx(2 / 12)
    e = Score()  # nothing to find, nothing claimed
    assert (e.precision, e.recall, e.f1, e.count_error) == (1.0, 1.0, 1.0, 0)
    t = s + Score(1, 0, 0, count=3)
    assert (t.tp, t.fp, t.fn, t.count) == (9, 2, 4, 13)
    assert "F1=" in s.line() and s.to_dict()["count_error"] == -2


def test_size_scope_ignores_smaller_labels():
    # ships >= 30 m: a 20 m boat is "don't care", never a miss, and the detection on it no false alarm
    ship, boat = at(box(0, 0, 40, 8)), at(box(100, 0, 120, 5))
    det = [at(box(1, 0, 41, 8)), at(box(100, 0, 119, 5)), at(box(200, 0, 210, 3)), at(box(300, 0, 335, 6))]
    truth = gpd.GeoDataFrame(geometry=[ship, boat], crs=UTM)
    ev = evaluate_scene(gpd.GeoDataFrame(geometry=det, crs=UTM), truth, min_length_m=30)
    s = ev.score  # the 35 m detection of nothing is a false alarm, the 10 m one is below the size
    assert (s.tp, s.fp, s.fn, s.truth_count, ev.dropped["small_truth"]) == (1, 1, 0, 1, 1)
    s24 = evaluate_scene(gpd.GeoDataFrame(geometry=det, crs=UTM), truth, min_length_m=30, min_detected_length_m=5)
    assert s24.score.fp == 2
    with pytest.raises(InputError, match="min_length_m=-1"):
        evaluate_scene(gpd.GeoDataFrame(geometry=det, crs=UTM), truth, min_length_m=-1)


# --- inputs, CRS, classes, within ---------------------------------------------------------------------


def test_wgs84_inputs_are_compared_in_metres():
    truth = fc([to_wgs84(at(box(0, 0, 10, 10)))], **{"class": "vessel"})
    det = fc([to_wgs84(at(box(5, 0, 15, 10)))], **{"class": "vessel"})
    ev = evaluate_scene(det, truth)
    assert ev.crs.to_epsg() == 32652  # the local UTM zone of the labels
    (m,) = ev.matches["vessel"]
    assert m.iou == pytest.approx(1 / 3, abs=1e-3) and m.distance_m == pytest.approx(5.0, abs=0.01)
    # the same detections as a GeoDataFrame in UTM: compared in that CRS
    gdf = gpd.GeoDataFrame({"class": ["vessel"]}, geometry=[at(box(5, 0, 15, 10))], crs=UTM)
    ev2 = evaluate_scene(gdf, truth)
    assert ev2.crs.to_epsg() == 32652 and ev2.matches["vessel"][0].iou == pytest.approx(1 / 3, abs=1e-3)
    # a QGIS export in UTM says so with a legacy crs member
    legacy = fc([at(box(0, 0, 10, 10))], crs="urn:ogc:def:crs:EPSG::32652", **{"class": "vessel"})
    assert read_objects(legacy).crs.to_epsg() == 32652
    assert evaluate_scene(gdf, legacy).by_class["vessel"].tp == 1


def test_detection_result_uses_the_reported_count():
    # at coarse pixel sizes the railcar count is estimated from occupied track length
    dets = [Detection(at(box(0, 0, 14, 3)), "railcar", 0.9, 14, 3), Detection(at(box(15, 0, 29, 3)), "railcar", 0.9, 14, 3)]
    res = DetectionResult(counts={"railcar": 3}, intervals={"railcar": (2, 4)}, coverage=1.0, detections=dets,
                          crs=UTM, detector="railcars", version="x")
    truth = gpd.GeoDataFrame(geometry=[at(box(0, 0, 14, 3)), at(box(15, 0, 29, 3)), at(box(30, 0, 44, 3))], crs=UTM)
    ev = evaluate_scene(res, truth)  # truth without a class column: the detections' class
    s = ev.by_class["railcar"]
    assert (s.tp, s.fp, s.fn, s.count, s.count_error) == (2, 0, 1, 3, 0)


def test_classes_are_matched_separately():
    boxes = [at(box(0, 0, 10, 10)), at(box(50, 0, 60, 10))]
    det = gpd.GeoDataFrame({"class": ["vessel", "railcar"]}, geometry=boxes, crs=UTM)
    truth = gpd.GeoDataFrame({"class": ["railcar", "railcar"]}, geometry=boxes, crs=UTM)
    ev = evaluate_scene(det, truth)
    assert (ev.by_class["railcar"].tp, ev.by_class["railcar"].fn) == (1, 1)
    assert (ev.by_class["vessel"].tp, ev.by_class["vessel"].fp) == (0, 1)
    only = evaluate_scene(det, truth, cls="railcar")
    assert list(only.by_class) == ["railcar"] and only.score.tp == 1
    # labels without a class column against two classes of detections: which are they?
    unnamed = gpd.GeoDataFrame(geometry=boxes, crs=UTM)
    with pytest.raises(InputError, match="^truth: no 'class' property to tell railcar, vessel apart"):
        evaluate_scene(det, unnamed)
    assert evaluate_scene(det, unnamed, cls="vessel").by_class["vessel"].tp == 1
    half = gpd.GeoDataFrame({"class": ["railcar", None]}, geometry=boxes, crs=UTM)
    with pytest.raises(InputError, match="1 of 2 features have no 'class'"):
        evaluate_scene(det, half, cls="railcar")


def test_within_leaves_out_what_could_not_be_seen():
    truth = gpd.GeoDataFrame(geometry=[at(box(0, 0, 10, 3)), at(box(100, 0, 110, 3))], crs=UTM)
    det = gpd.GeoDataFrame(geometry=[at(box(0, 0, 10, 3))], crs=UTM)
    assert evaluate_scene(det, truth).score.fn == 1
    seen = at(box(-20, -20, 50, 20))  # e.g. the clear part of the chip, in UTM
    ev = evaluate_scene(det, truth, within=seen, within_crs=UTM)
    assert (ev.score.tp, ev.score.fn, ev.dropped["truth"]) == (1, 0, 1)
    ev_wgs = evaluate_scene(det, truth, within=to_wgs84(seen))  # default: lon/lat
    assert ev_wgs.score.fn == 0


def test_many_scenes_micro_per_scene_and_bootstrap():
    rng = np.random.default_rng(4)
    pairs = []
    for k in range(6):
        n = int(rng.integers(5, 15))
        truth = [at(box(20 * i, 0, 20 * i + 14, 3)) for i in range(n)]
        det = truth[: n - k % 3] + [at(box(20 * i, 50, 20 * i + 14, 53)) for i in range(k % 2)]
        pairs.append((gpd.GeoDataFrame(geometry=det, crs=UTM), gpd.GeoDataFrame(geometry=truth, crs=UTM), f"s{k}"))
    rep = evaluate_many(pairs)
    f = rep.frame
    assert list(f["scene"]) == [f"s{k}" for k in range(6)]
    assert (rep.total.tp, rep.total.fp, rep.total.fn) == (f.tp.sum(), f.fp.sum(), f.fn.sum())
    assert rep.median_abs_count_error == float(np.median(np.abs(f.count_error)))
    lo, hi = rep.f1_interval
    assert 0 <= lo <= rep.total.f1 <= hi <= 1 and lo < hi
    assert rep.scene_f1[0] <= rep.scene_f1[1] <= rep.scene_f1[2]
    assert evaluate_many(pairs).f1_interval == rep.f1_interval  # seeded: reproducible
    assert evaluate_many(pairs[:4]).f1_interval is None
    assert json.dumps(rep.to_dict()) and len(rep.lines()) == 2


# --- bad inputs -------------------------------------------------------------------------------------


def test_bad_inputs_are_one_line_errors_naming_the_file(tmp_path):
    good = fc([to_wgs84(at(box(0, 0, 10, 10)))])
    with pytest.raises(InputError, match=r"nope\.geojson: no such file"):
        evaluate_scene(good, tmp_path / "nope.geojson")
    (tmp_path / "point.geojson").write_text(json.dumps({"type": "Feature", "geometry": None}))
    with pytest.raises(InputError, match=r"point\.geojson: not a GeoJSON FeatureCollection \(type 'Feature'\)"):
        evaluate_scene(good, tmp_path / "point.geojson")
    empty = fc([to_wgs84(at(box(0, 0, 10, 10)))])
    empty["features"][0]["geometry"] = {"type": "Polygon", "coordinates": []}
    (tmp_path / "empty.geojson").write_text(json.dumps(empty))
    with pytest.raises(InputError, match=r"empty\.geojson: feature 0: empty geometry"):
        evaluate_scene(good, tmp_path / "empty.geojson")
    (tmp_path / "line.geojson").write_text(json.dumps(fc([shapely.LineString([(130, 42), (130.1, 42)])])))
    with pytest.raises(InputError, match=r"line\.geojson: feature 0: LineString geometry"):
        evaluate_scene(good, tmp_path / "line.geojson")
    (tmp_path / "utm.geojson").write_text(json.dumps(fc([at(box(0, 0, 10, 10))])))
    with pytest.raises(InputError, match=r"utm\.geojson: coordinates are not longitude/latitude"):
        evaluate_scene(good, tmp_path / "utm.geojson")
    with pytest.warns(UserWarning, match="crs"):  # pyogrio says so too
        gpd.GeoDataFrame({"n": [1]}, geometry=[at(box(0, 0, 10, 10))]).to_file(tmp_path / "nocrs.gpkg")
    with pytest.raises(InputError, match=r"nocrs\.gpkg: no CRS"):
        evaluate_scene(good, tmp_path / "nocrs.gpkg")
    pts = fc([to_wgs84(at(Point(5, 5)))])
    with pytest.raises(InputError, match="Point: points match only by centroid distance"):
        evaluate_scene(good, pts)
    assert evaluate_scene(good, pts, max_centroid_m=3).score.tp == 1
    with pytest.raises(InputError) as e:
        evaluate_scene(good, tmp_path / "line.geojson")
    assert "\n" not in str(e.value)


# --- the command, end to end on a synthetic yard ------------------------------------------------


@pytest.fixture(scope="module")
def yard(tmp_path_factory):
    from monitor.synth import demo_rail_aoi, render_rail_scene, write_scene

    d = tmp_path_factory.mktemp("yard")
    a = demo_rail_aoi()
    (d / "aoi.geojson").write_text(json.dumps(a.to_geojson()))
    sc = render_rail_scene(a, gsd_m=1.0, when="2024-06-17", seed=3, cars=20)
    tif = write_scene(sc, d, "yard", overviews=False)
    return d, tif, sc


def test_cli_scene_end_to_end(yard):
    d, tif, sc = yard
    truth = str(d / "yard.truth.geojson")
    r = runner.invoke(app, ["evaluate", "--scene", str(tif), "--aoi", str(d / "aoi.geojson"), truth, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    s = out["classes"]["railcar"]
    assert s["truth_count"] == sc.counts()["railcar"]
    # the same figures from `monitor detect --geojson` output scored by the library
    gj = d / "det.geojson"
    r2 = runner.invoke(app, ["detect", str(tif), "--aoi", str(d / "aoi.geojson"), "--json", "--geojson", str(gj)])
    assert r2.exit_code == 0, r2.output
    assert s["count"] == json.loads(r2.stdout)["counts"]["railcar"]
    lib = evaluate_scene(str(gj), truth, cls="railcar").by_class["railcar"]
    assert (s["tp"], s["fp"], s["fn"]) == (lib.tp, lib.fp, lib.fn)
    assert s["tp"] + s["fp"] == len(json.loads(gj.read_text())["features"])
    # the file form prints a table
    r3 = runner.invoke(app, ["evaluate", str(gj), truth, "--class", "railcar", "--centroid-m", "5"])
    assert r3.exit_code == 0, r3.output
    assert "railcar" in r3.stdout and "precision" in r3.stdout and "centroid<=5 m" in r3.stdout


def test_cli_bad_inputs_exit_2_with_one_line(yard, tmp_path):
    d, tif, _ = yard
    truth = str(d / "yard.truth.geojson")
    (tmp_path / "list.json").write_text("[1, 2]")
    cases = [
        (["evaluate", str(tmp_path / "missing.geojson"), truth], "missing.geojson: no such file"),
        (["evaluate", str(tmp_path / "list.json"), truth], "list.json: not a GeoJSON FeatureCollection"),
        (["evaluate", truth], "expected DETECTIONS TRUTH, got 1 path(s)"),
        (["evaluate", "--scene", str(tif), truth], "--scene needs --aoi"),
        (["evaluate", truth, truth, "--iou", "0"], "min_iou=0.0"),
    ]
    for args, msg in cases:
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], (args, r.stderr)
