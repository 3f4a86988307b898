"""Learned second stage for optical vessels (monitor.detect.vessel_classifier).

Chips are built in the tests on a UTM grid at Sentinel-2-like 10 m pixels:
dark water with noise, land (ground with buildings), hulls drawn as
oriented rectangles brighter than water in every band.
"""

import json

import numpy as np
import pytest
from affine import Affine
from rasterio.features import rasterize
from shapely.geometry import box

from monitor.aoi import AOI
from monitor.detect import vessel_classifier as vc
from monitor.detect.vessels import detect_vessels
from monitor.errors import InputError
from monitor.imagery import Chip

from vessel_chips import DECK, GROUND, ROLES, UTM, WATER, X0, Y0, hull



def make_chip(size_m=3000.0, gsd=10.0, land=(), hulls=(), seed=0):
    rng = np.random.default_rng(seed)
    n = int(size_m / gsd)
    tr = Affine(gsd, 0, X0, 0, -gsd, Y0 + size_m)
    water, ground, deck, roles = WATER, GROUND, DECK, ROLES
    land_m = rasterize([(g, 1) for g in land], out_shape=(n, n), transform=tr).astype(bool) if land else np.zeros((n, n), bool)
    hull_m = rasterize([(h, 1) for h in hulls], out_shape=(n, n), transform=tr).astype(bool) if hulls else np.zeros((n, n), bool)
    tex = rng.normal(0, 1, (n, n)).astype(np.float32)
    bands = []
    for r in roles:
        b = np.where(land_m, ground[r] * (1 + 0.25 * tex), water[r]).astype(np.float32)
        b += rng.normal(0, 0.003, b.shape).astype(np.float32)
        b[hull_m] = deck[r]
        bands.append(np.clip(b, 0, 1) * 10000)
    aoi = AOI(id="s2port", name="S2 port", country="", kind="port", boundary=box(X0, Y0, X0 + size_m, Y0 + size_m),
              crs=UTM)
    return Chip(bands=np.stack(bands), roles=roles, valid=np.ones((n, n), bool), transform=tr, crs=UTM, gsd_m=gsd,
                aoi=aoi, sensor="optical")


LAND = box(X0, Y0, X0 + 3000, Y0 + 800)  # the south shore


def test_bundled_model_loads():
    m = vc.load_model()
    assert m.features == vc.FEATURES
    assert 0 < m.threshold < 1
    assert 1 <= len(m.trees) and sum(len(t[0]) for t in m.trees) < 10_000
    p = m.predict_proba(np.zeros((3, len(vc.FEATURES))))
    assert p.shape == (3,) and np.all((p > 0) & (p < 1))


def test_features_are_finite():
    chip = make_chip(land=(LAND,), hulls=(hull(X0 + 1500, Y0 + 2000, 150, 24, 70), hull(X0 + 800, Y0 + 830, 120, 20, 90)))
    layers = vc.Layers(chip)
    cands = vc.vessel_candidates(layers)
    X = vc.candidate_features(layers, cands)
    assert len(cands) >= 2
    assert X.shape == (len(cands), len(vc.FEATURES))
    assert np.isfinite(X).all()


def test_clear_hull_on_water_is_kept():
    h = hull(X0 + 1500, Y0 + 2000, 160, 26, 60)
    chip = make_chip(land=(LAND,), hulls=(h,))
    res = vc.classify_vessels(chip, detect_vessels(chip))  # the integration call sequence
    assert res.counts["vessel"] == len(res.detections)
    hits = [d for d in res.detections if d.geometry.intersects(h)]
    assert len(hits) == 1
    d = hits[0]
    assert d.score == pytest.approx(d.properties["p_vessel"], abs=1e-4) and d.score >= res.extras["threshold"]
    assert 100 <= d.length_m <= 220 and d.width_m <= 60
    assert d.geometry.centroid.distance(h.centroid) < 20


def test_bare_quay_and_open_water_give_nothing():
    # a straight shore with a pier (300 x 60 m) reaching into the water
    pier = box(X0 + 1400, Y0 + 800, X0 + 1460, Y0 + 1100)
    chip = make_chip(land=(LAND, pier))
    res = vc.classify_vessels(chip, detect_vessels(chip))
    assert res.counts["vessel"] == 0
    assert vc.classify_vessels(make_chip()).counts["vessel"] == 0


def test_sar_result_passes_through():
    chip = make_chip()
    chip.sensor = "sar"
    from monitor.detect import DetectionResult

    r = DetectionResult(counts={"vessel": 0}, intervals={"vessel": (0.0, 0.0)}, coverage=1.0, detections=[],
                        crs=chip.crs, detector="vessels", version="1.0")
    assert vc.classify_vessels(chip, r) is r


@pytest.mark.parametrize("content", ["not json {", json.dumps([1, 2]), json.dumps({"kind": "gbt-binary"}),
                                     json.dumps({"kind": "svm"})])
def test_bad_model_file_is_one_line_input_error(tmp_path, content):
    p = tmp_path / "model.json"
    p.write_text(content)
    with pytest.raises(InputError) as e:
        vc.load_model(p)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(p))
    with pytest.raises(InputError):
        vc.load_model(tmp_path / "missing.json")


def test_model_with_other_features_is_refused(tmp_path):
    doc = json.loads(vc.MODEL_PATH.read_text())
    doc["features"] = doc["features"][:-1] + ["something_else"]
    p = tmp_path / "m.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="features"):
        vc.load_model(p)


def _calibrated_copy(tmp_path, a, b):
    doc = json.loads(vc.MODEL_PATH.read_text())
    doc["calibration"] = {"method": "platt", "a": a, "b": b}
    p = tmp_path / "calibrated.json"
    p.write_text(json.dumps(doc))
    return p


def test_calibration_maps_model_probability_monotonically(tmp_path):
    m = vc.load_model(_calibrated_copy(tmp_path, 0.5, -0.4))
    p = np.array([0.05, 0.2, 0.5, 0.8, 0.99])
    s = m.calibrate(p)
    z = np.log(p / (1 - p))
    assert s == pytest.approx(1 / (1 + np.exp(-(0.5 * z - 0.4))))
    assert np.all(np.diff(s) > 0)  # ranking (and so the overlap selection) is kept
    # the threshold moves with the scores: the same candidates pass
    assert (s >= m.score_threshold).tolist() == (p >= m.threshold).tolist()
    X = np.zeros((2, len(vc.FEATURES)))
    assert m.score(X) == pytest.approx(m.calibrate(m.predict_proba(X)))


def test_detection_score_is_the_calibrated_probability(tmp_path):
    h = hull(X0 + 1500, Y0 + 2000, 160, 26, 60)
    chip = make_chip(land=(LAND,), hulls=(h,))
    rule = detect_vessels(chip, classifier=False)
    m = vc.load_model(_calibrated_copy(tmp_path, 0.5, -0.4))
    res = vc.classify_vessels(chip, rule, m)
    assert res.detections and res.extras["threshold"] == pytest.approx(m.score_threshold)
    for d in res.detections:
        p_model = d.properties["p_model"]
        assert d.score == pytest.approx(float(m.calibrate(np.array([p_model]))[0]), abs=1e-3)
        assert d.score == pytest.approx(d.properties["p_vessel"], abs=1e-4) and d.score >= m.score_threshold


@pytest.mark.parametrize("cal", [{"a": -1.0, "b": 0.0}, {"a": "x", "b": 0.0}, {"b": 0.0}, {"a": float("nan"), "b": 0}])
def test_bad_calibration_is_refused(tmp_path, cal):
    doc = json.loads(vc.MODEL_PATH.read_text())
    doc["calibration"] = cal
    p = tmp_path / "m.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="not a vessel classifier model"):
        vc.load_model(p)
