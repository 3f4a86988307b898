"""``monitor aoi list | show | validate`` from the command line.

Bad AOI files exit with code 2 and ONE line on stderr naming the file and
the feature; good files in the same batch are still reported.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.aoi import load_aoi, parse_aoi
from monitor.cli import app

BUNDLED = ("tumangang", "khasan", "najin", "dunay")
runner = CliRunner()


def small_aoi() -> dict:
    """A valid AOI of about 800 m x 550 m near Tumangang (WGS84)."""
    def feat(role, fid, gtype, coords, **props):
        return {"type": "Feature", "properties": {"role": role, "id": fid, **props},
                "geometry": {"type": gtype, "coordinates": coords}}

    ring = [[130.600, 42.420], [130.610, 42.420], [130.610, 42.425], [130.600, 42.425], [130.600, 42.420]]
    return {"type": "FeatureCollection", "features": [
        feat("boundary", "cli-yard", "Polygon", [ring], name="CLI yard", country="DPRK", kind="rail_yard"),
        feat("track", "t1", "LineString", [[130.601, 42.4220], [130.609, 42.4220]], gauge_mm=1520),
        feat("water", "w1", "Polygon",
             [[[130.601, 42.4235], [130.605, 42.4235], [130.605, 42.4245], [130.601, 42.4245], [130.601, 42.4235]]]),
        feat("berth", "b1", "LineString", [[130.6015, 42.4235], [130.6045, 42.4235]]),
    ]}


def _set(doc, fid, **geometry_or_props):
    f = next(f for f in doc["features"] if f["properties"]["id"] == fid)
    for k, v in geometry_or_props.items():
        if k == "coords":
            f["geometry"]["coordinates"] = v
        elif k == "gtype":
            f["geometry"]["type"] = v
        else:
            f["properties"][k] = v
    return doc


def _drop_boundary(doc):
    doc["features"] = doc["features"][1:]
    return doc


BOWTIE = [[[130.601, 42.4235], [130.605, 42.4245], [130.605, 42.4235], [130.601, 42.4245], [130.601, 42.4235]]]
CASES = {
    "invalid_json": ("{ not json", ["invalid JSON"]),
    "not_featurecollection": ({"type": "Polygon", "coordinates": []}, ["not a GeoJSON FeatureCollection"]),
    "missing_boundary": (_drop_boundary(small_aoi()), ["missing boundary"]),
    "unknown_role": (_set(small_aoi(), "w1", role="lake"), ["unknown role 'lake'", "w1"]),
    "wrong_geometry_type": (_set(small_aoi(), "b1", gtype="MultiLineString",
                                 coords=[[[130.6015, 42.4235], [130.6045, 42.4235]]]),
                            ["wrong geometry type MultiLineString", "b1"]),
    "self_intersecting_polygon": (_set(small_aoi(), "w1", coords=BOWTIE), ["self-intersect", "w1"]),
    "outside_wgs84": (_set(small_aoi(), "t1", coords=[[130.601, 42.422], [130.609, -91.0]]),
                      ["outside WGS84", "t1"]),
    "track_outside_boundary": (_set(small_aoi(), "t1", coords=[[130.601, 42.4220], [130.62, 42.4220]]),
                               ["track lies outside the boundary", "t1"]),
    "berth_outside_boundary": (_set(small_aoi(), "b1", coords=[[130.59, 42.4235], [130.6045, 42.4235]]),
                               ["berth lies outside the boundary", "b1"]),
}


def _write(tmp_path: Path, name: str, doc) -> Path:
    p = tmp_path / f"{name}.geojson"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return p


@pytest.mark.parametrize("name", list(CASES))
def test_validate_refuses_bad_file_with_one_line(tmp_path, name):
    doc, words = CASES[name]
    path = _write(tmp_path, name, copy.deepcopy(doc))
    r = runner.invoke(app, ["aoi", "validate", str(path)])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: {path}: ")
    for w in words:
        assert w in lines[0], f"{w!r} not in {lines[0]!r}"
    assert r.stdout == ""


def test_validate_batch_goes_on_after_a_bad_file(tmp_path):
    good = _write(tmp_path, "good", small_aoi())
    bad = _write(tmp_path, "bad", CASES["unknown_role"][0])
    r = runner.invoke(app, ["aoi", "validate", str(bad), str(good)])
    assert r.exit_code == 2
    assert f"{good}: ok (cli-yard, rail_yard, 1 tracks, 1 water, 1 berths)" in r.stdout
    assert r.stderr.count("\n") == 1 and str(bad) in r.stderr


def test_validate_bundled_files_ok():
    from monitor.aoi import bundled_dir

    paths = [str(bundled_dir() / f"{i}.geojson") for i in BUNDLED]
    r = runner.invoke(app, ["aoi", "validate", *paths])
    assert r.exit_code == 0, r.output
    assert r.stdout.count(": ok (") == 4


def test_list_shows_the_four_aois():
    r = runner.invoke(app, ["aoi", "list", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["id"]: row for row in json.loads(r.stdout)}
    assert set(BUNDLED) <= set(rows)
    for aid in ("tumangang", "khasan"):
        assert rows[aid]["kind"] == "rail_yard" and rows[aid]["tracks"] >= 6 and rows[aid]["track_km"] > 1
    for aid in ("najin", "dunay"):
        assert rows[aid]["kind"] == "port" and rows[aid]["berths"] >= 2 and rows[aid]["water_km2"] > 0.5
    table = runner.invoke(app, ["aoi", "list"])
    assert table.exit_code == 0
    for aid in BUNDLED:
        assert aid in table.stdout


def test_show_json_round_trips_through_parse_aoi():
    r = runner.invoke(app, ["aoi", "show", "najin", "--json"])
    assert r.exit_code == 0, r.output
    a = parse_aoi(json.loads(r.stdout), source="stdout")
    ref = load_aoi("najin")
    strip = lambda s: {k: v for k, v in s.items() if k != "source"}  # noqa: E731
    assert strip(a.summary()) == strip(ref.summary())
    assert [(f.role, f.id) for f in a.features] == [(f.role, f.id) for f in ref.features]
    assert a.properties["geometry"] == "schematic"


def test_show_by_path_and_unknown_id(tmp_path):
    path = _write(tmp_path, "mine", small_aoi())
    r = runner.invoke(app, ["aoi", "show", str(path)])
    assert r.exit_code == 0 and "cli-yard" in r.stdout
    r = runner.invoke(app, ["aoi", "show", "atlantis"])
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and r.stderr.startswith("error: atlantis: ")


def test_console_entry_point_exit_code_from_another_cwd(tmp_path):
    """The real entry point (python -m monitor), run from an unrelated folder."""
    bad = _write(tmp_path, "bad", CASES["track_outside_boundary"][0])
    p = subprocess.run([sys.executable, "-m", "monitor", "aoi", "validate", str(bad)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and str(bad) in p.stderr and "'t1'" in p.stderr
    p = subprocess.run([sys.executable, "-m", "monitor", "aoi", "list"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert all(aid in p.stdout for aid in BUNDLED)


def test_new_writes_a_boundary_only_aoi_that_validates(tmp_path):
    out = tmp_path / "site.geojson"
    r = runner.invoke(app, ["aoi", "new", "site", "--bbox", "130.600,42.420,130.610,42.425",
                            "--country", "DPRK", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "site (rail_yard" in r.output
    a = load_aoi(out)
    assert a.kind == "rail_yard" and a.tracks == ()
    # a second run refuses to overwrite, naming the file
    r = runner.invoke(app, ["aoi", "new", "site", "--bbox", "130.600,42.420,130.610,42.425", "--out", str(out)])
    assert r.exit_code == 2
    assert f"{out}: exists already" in r.stderr


def test_new_from_a_scene_footprint(tmp_path):
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    tif = tmp_path / "scene.tif"
    # 200 x 100 px at 1 m in UTM 52N near Tumangang
    with rasterio.open(tif, "w", driver="GTiff", width=200, height=100, count=1, dtype="uint8",
                       crs="EPSG:32652", transform=from_origin(715000, 4700000, 1.0, 1.0)) as d:
        d.write(np.full((1, 100, 200), 90, np.uint8))
    out = tmp_path / "from_scene.geojson"
    r = runner.invoke(app, ["aoi", "new", "s", "--kind", "port", "--scene", str(tif), "--out", str(out)])
    assert r.exit_code == 0, r.output
    a = load_aoi(out)
    assert a.kind == "port"
    assert a.summary()["area_km2"] == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize("args, reason", [
    (["--bbox", "1,2,3"], "--bbox must be four numbers"),
    ([], "give exactly one of --bbox"),
])
def test_new_refuses_bad_options_with_one_line(tmp_path, args, reason):
    r = runner.invoke(app, ["aoi", "new", "x", "--out", str(tmp_path / "x.geojson"), *args])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0]


def test_new_from_a_corrupt_scene_names_the_file(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00not really a tiff")
    out = tmp_path / "x.geojson"
    r = runner.invoke(app, ["aoi", "new", "x", "--scene", str(bad), "--out", str(out)])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0]
    assert not out.exists()
