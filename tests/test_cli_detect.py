"""``monitor detect`` and ``monitor scenes ls`` from the command line.

The detector is a tiny dummy registered in the test (bright blobs in the
gray band become objects), so these tests check the command's contract
(shared/DESIGN.md), not a detector's accuracy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import Polygon, shape
from typer.testing import CliRunner

import monitor.detect as det
from monitor.aoi import AOI, Feature
from monitor.cli import app

runner = CliRunner()
LON, LAT = 130.30, 42.25
UTM = "EPSG:32652"
TARGET_LON, TARGET_LAT = 130.3005, 42.2502   # centre of the bright 60 m x 20 m object


def _to_utm():
    return Transformer.from_crs("EPSG:4326", UTM, always_xy=True)


def _aoi_file(tmp_path, kind="port", lon=LON, name="aoi.geojson", aoi_id=None):
    tr = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    x, y = _to_utm().transform(lon, LAT)
    h = 250.0
    xs, ys = tr.transform([x - h, x + h, x + h, x - h], [y - h, y - h, y + h, y + h])
    boundary = Polygon(list(zip(xs, ys)))
    feats = ()
    if kind == "rail_yard":
        from shapely.geometry import LineString

        lx, ly = tr.transform([x - 200, x + 200], [y + 15, y + 15])
        feats = (Feature("track", "t1", LineString(list(zip(lx, ly))), {"gauge_mm": 1435}),)
    a = AOI(id=aoi_id or f"test-{kind}", name="Test", country="KP", kind=kind, boundary=boundary, features=feats)
    p = tmp_path / name
    p.write_text(json.dumps(a.to_geojson()))
    return str(p)


def _scene(tmp_path, name="scene.tif", dated=True):
    """600 m square UTM scene at 2 m with one bright 60 x 20 m object."""
    x, y = _to_utm().transform(LON, LAT)
    tr = from_origin(x - 300, y + 300, 2.0, 2.0)
    data = np.full((1, 300, 300), 30, "uint8")
    tx, ty = _to_utm().transform(TARGET_LON, TARGET_LAT)
    col, row = ~tr @ (tx, ty)
    data[0, int(row) - 5:int(row) + 5, int(col) - 15:int(col) + 15] = 220
    with rasterio.open(tmp_path / name, "w", driver="GTiff", width=300, height=300, count=1, dtype="uint8",
                       crs=UTM, transform=tr, tiled=True, blockxsize=128, blockysize=128) as d:
        d.write(data)
        if dated:
            d.update_tags(TIFFTAG_DATETIME="2024:06:01 01:30:00")
    return str(tmp_path / name)


@pytest.fixture
def dummy_detectors(monkeypatch):
    """Replace the registry with blob detectors for both AOI kinds."""
    from scipy import ndimage

    monkeypatch.setattr(det, "_REGISTRY", {})
    monkeypatch.setattr(det, "_load_builtin", lambda: None)

    def blobs(chip, cls):
        g = chip.gray()
        lab, n = ndimage.label((g > 128) & chip.valid)
        out = []
        for sl in ndimage.find_objects(lab):
            r0, r1, c0, c1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
            corners = [chip.transform @ (c, r) for c, r in ((c0, r0), (c1, r0), (c1, r1), (c0, r1))]
            poly = Polygon(corners)
            w, h = (c1 - c0) * chip.gsd_m, (r1 - r0) * chip.gsd_m
            props = {"track": "t1"} if cls == "railcar" else {"type": "ship"}
            out.append(det.Detection(poly, cls, 0.9, max(w, h), min(w, h), 90.0, props))
        return det.DetectionResult({cls: len(out)}, {cls: (len(out), len(out))}, chip.coverage, out,
                                   chip.crs, f"dummy-{cls}", "0.1")

    det.register("vessel", name="dummy-vessel", version="0.1", kinds=("port",))(
        lambda chip, **kw: blobs(chip, "vessel"))
    det.register("railcar", name="dummy-railcar", version="0.1", kinds=("rail_yard",))(
        lambda chip, **kw: blobs(chip, "railcar"))


def test_detect_json_contract(tmp_path, dummy_detectors):
    r = runner.invoke(app, ["detect", _scene(tmp_path), "--aoi", _aoi_file(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["aoi"] == "test-port"
    assert out["acquired"] == "2024-06-01T01:30:00Z"
    assert out["sensor"] == "optical"
    assert out["gsd_m"] == pytest.approx(2.0)
    assert out["coverage"] == pytest.approx(1.0)
    assert out["counts"] == {"vessel": 1}
    assert isinstance(out["scene"], str) and out["scene"]


def test_detect_geojson_in_wgs84(tmp_path, dummy_detectors):
    gj = tmp_path / "out.geojson"
    r = runner.invoke(app, ["detect", _scene(tmp_path), "--aoi", _aoi_file(tmp_path, "rail_yard"),
                            "--geojson", str(gj)])
    assert r.exit_code == 0, r.output
    assert "railcar 1" in r.stdout
    fc = json.loads(gj.read_text())
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 1
    f = fc["features"][0]
    assert f["geometry"]["type"] == "Polygon"
    p = f["properties"]
    assert p["class"] == "railcar" and p["track"] == "t1" and p["score"] == 0.9
    assert p["length_m"] == pytest.approx(60, abs=2) and p["width_m"] == pytest.approx(20, abs=2)
    g = shape(f["geometry"])
    assert g.exterior.is_ccw  # RFC 7946 winding
    c = g.centroid
    assert abs(c.x - TARGET_LON) < 3e-5 and abs(c.y - TARGET_LAT) < 3e-5  # within ~2.5 m


def test_detect_undated_scene_and_gsd(tmp_path, dummy_detectors):
    r = runner.invoke(app, ["detect", _scene(tmp_path, "undated.tif", dated=False), "--aoi",
                            _aoi_file(tmp_path), "--json", "--gsd", "4"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["acquired"] is None and out["gsd_m"] == 4.0 and out["counts"]["vessel"] == 1


@pytest.mark.parametrize("case", ["missing", "not_raster", "misses", "bad_aoi", "bad_out"])
def test_detect_bad_input_exit_2_one_line(tmp_path, dummy_detectors, case):
    scene, aoi, extra = _scene(tmp_path), _aoi_file(tmp_path), []
    if case == "missing":
        scene = str(tmp_path / "nothere.tif")
        name = "nothere.tif"
    elif case == "not_raster":
        (tmp_path / "text.tif").write_text("hello")
        scene, name = str(tmp_path / "text.tif"), "text.tif"
    elif case == "misses":
        aoi, name = _aoi_file(tmp_path, lon=LON + 0.1, name="far.geojson"), "scene.tif"
    elif case == "bad_aoi":
        aoi, name = "no-such-aoi-id", "no-such-aoi-id"
    else:
        extra, name = ["--geojson", str(tmp_path / "nodir" / "x.geojson")], "x.geojson"
    r = runner.invoke(app, ["detect", scene, "--aoi", aoi, "--json", *extra])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and lines[0].startswith("error: ")


def test_scenes_ls_json(tmp_path):
    _scene(tmp_path, "a_20240601.tif", dated=False)
    _scene(tmp_path, "b.tif")
    aoi = _aoi_file(tmp_path)
    far = _aoi_file(tmp_path, lon=LON + 0.1, name="far.geojson", aoi_id="far")
    r = runner.invoke(app, ["scenes", "ls", str(tmp_path), "--aoi", aoi, "--aoi", far, "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == 2
    for row in rows:
        for k in ("id", "path", "acquired", "sensor", "gsd_m", "crs", "bands", "coverage"):
            assert k in row
        assert row["crs"] == UTM and row["bands"] == ["gray"] and row["gsd_m"] == pytest.approx(2.0)
        assert row["coverage"] == {"test-port": pytest.approx(1.0), "far": 0.0}
        assert row["aois"] == ["test-port"]
    assert sorted(r_["acquired"] for r_ in rows) == ["2024-06-01T00:00:00Z", "2024-06-01T01:30:00Z"]


def test_scenes_ls_table_and_bad_file(tmp_path):
    _scene(tmp_path, "good.tif")
    (tmp_path / "bad.tif").write_text("nope")
    r = runner.invoke(app, ["scenes", "ls", str(tmp_path), "--aoi", _aoi_file(tmp_path)])
    assert r.exit_code == 2
    assert "good.tif" in r.stdout and "test-port 100%" in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.tif" in lines[0]
