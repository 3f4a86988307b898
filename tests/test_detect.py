"""The detector registry: which detectors run, and tracing for a yard drawn only as a boundary."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import LineString, box

from monitor.aoi import AOI, Feature
from monitor.detect import detect, detection_summary, detections_frame, detections_geojson, detectors_for
from monitor.errors import InputError
from monitor.imagery import Chip

GSD = 0.5
CRS = "EPSG:32652"
X0, Y0 = 600000.0, 4700000.0
TRACKS_Y = (30.0, 35.0, 40.0)  # centrelines, metres above the chip's bottom edge


def _yard_chip(*, with_tracks: bool, rails: bool = True) -> Chip:
    """A 130 m x 70 m yard at 0.5 m: ballast beds with rail pairs, a train of 5 cars on the middle track."""
    rng = np.random.default_rng(1)
    h, w = 140, 260
    y = (h - 0.5 - np.arange(h)) * GSD
    x = (np.arange(w) + 0.5) * GSD
    Y, X = np.meshgrid(y, x, indexing="ij")
    img = 0.20 + 0.02 * rng.standard_normal((h, w))
    if rails:
        for k, yc in enumerate(TRACKS_Y):
            o = Y - yc
            img = np.where(np.abs(o) < 1.4, 0.17 + 0.02 * rng.standard_normal((h, w)), img)
            for side in (-1, 1):
                img += 0.125 * np.exp(-0.5 * ((o - side * 0.75) / 0.12) ** 2)
            if k == 1:
                car = (np.abs(o) < 1.45) & (X > 20) & (X < 95) & ((X - 20) % 15 < 14.2)
                img = np.where(car, 0.45, img)
    features = (Feature("track", f"t{k}", LineString([(X0 + 2, Y0 + yc), (X0 + 128, Y0 + yc)]), {"gauge_mm": 1435})
                for k, yc in enumerate(TRACKS_Y)) if with_tracks else ()
    aoi = AOI(id="yard", name="test yard", country="XX", kind="rail_yard",
              boundary=box(X0 + 1, Y0 + 1, X0 + w * GSD - 1, Y0 + h * GSD - 1), crs=CRS,
              features=tuple(features)).to_crs("EPSG:4326")
    bands = np.repeat(img[None].astype(np.float32), 3, axis=0) * 10000
    return Chip(bands=bands, roles=("red", "green", "blue"), valid=np.ones((h, w), bool),
                transform=from_origin(X0, Y0 + h * GSD, GSD, GSD),
                crs=rasterio.crs.CRS.from_string(CRS), gsd_m=GSD, aoi=aoi)


def test_rail_yards_get_the_railcar_detector_and_ports_the_vessel_detector():
    assert [d.cls for d in detectors_for("rail_yard")] == ["railcar"]
    assert [d.cls for d in detectors_for("port")] == ["vessel"]
    assert detectors_for("airfield") == []


def test_a_yard_without_track_lines_is_counted_along_traced_tracks():
    (res,) = detect(_yard_chip(with_tracks=False))
    assert res.extras["tracks"] == "traced"
    assert 3 <= res.counts["railcar"] <= 7, res.counts   # 5 cars stand on the middle track


def test_a_yard_with_track_lines_uses_them_unless_asked_to_trace():
    (res,) = detect(_yard_chip(with_tracks=True))
    assert res.extras.get("tracks") != "traced"
    assert res.counts["railcar"] == 5
    (traced,) = detect(_yard_chip(with_tracks=True), trace=True)
    assert traced.extras["tracks"] == "traced"


def test_a_yard_with_no_tracks_drawn_or_visible_is_an_error_not_a_zero():
    with pytest.raises(InputError, match="yard"):
        detect(_yard_chip(with_tracks=False, rails=False))


def test_detections_as_json_summary_geojson_and_frame():
    chip = _yard_chip(with_tracks=True)
    results = detect(chip)
    summary = detection_summary(chip, results)
    assert summary["aoi"] == "yard" and summary["counts"] == {"railcar": 5}
    assert 0.0 <= summary["coverage"] <= 1.0 and summary["gsd_m"] == GSD
    fc = detections_geojson(chip, results)
    assert len(fc["features"]) == 5
    props = fc["features"][0]["properties"]
    assert props["class"] == "railcar" and props["track"] == "t1" and 10 < props["length_m"] < 20
    frame = detections_frame(chip, results)
    assert len(frame) == 5 and frame.crs.to_epsg() == 4326
    lon, lat = frame.geometry.iloc[0].centroid.coords[0]
    assert 120 < lon < 132 and 40 < lat < 45          # UTM 52N, near the test origin
