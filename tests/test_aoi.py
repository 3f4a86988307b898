"""The AOI model: bundled AOIs and the validation rules of AOI files.

The bundled AOIs (aoi/*.geojson, drawn by tools/make_aois.py) must pass
validation, load by id from any working directory, and be plausible:
parallel yard tracks 4.5-5.5 m apart inside the boundary for the rail
yards; water and berths on the water's edge for the ports. Every broken
file is refused with one line naming the file and the feature.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Point

from monitor.aoi import AOI, bundled_dir, bundled_ids, load_aoi, parse_aoi, read_aoi_file
from monitor.errors import AOIError, InputError

REPO = Path(__file__).resolve().parent.parent
BUNDLED = {"tumangang": "rail_yard", "khasan": "rail_yard", "najin": "port", "dunay": "port"}
RAIL = [i for i, k in BUNDLED.items() if k == "rail_yard"]
PORTS = [i for i, k in BUNDLED.items() if k == "port"]


# ---------------------------------------------------------------------------
# a small valid AOI, built in the test (near Tumangang, WGS84)
# ---------------------------------------------------------------------------
def small_aoi() -> dict:
    """A valid rail-and-port AOI of about 800 m x 550 m."""
    def feat(role, fid, gtype, coords, **props):
        return {"type": "Feature", "properties": {"role": role, "id": fid, **props},
                "geometry": {"type": gtype, "coordinates": coords}}

    return {"type": "FeatureCollection", "features": [
        feat("boundary", "test-yard", "Polygon",
             [[[130.600, 42.420], [130.610, 42.420], [130.610, 42.425], [130.600, 42.425], [130.600, 42.420]]],
             name="Test yard", country="DPRK", kind="rail_yard"),
        feat("track", "t1", "LineString", [[130.601, 42.4220], [130.609, 42.4220]], gauge_mm=1520),
        feat("track", "t2", "LineString", [[130.601, 42.42205], [130.609, 42.42205]], gauge_mm=[1435, 1520]),
        feat("water", "w1", "Polygon",
             [[[130.601, 42.4235], [130.605, 42.4235], [130.605, 42.4245], [130.601, 42.4245], [130.601, 42.4235]]]),
        feat("berth", "b1", "LineString", [[130.6015, 42.4235], [130.6045, 42.4235]]),
        feat("yard", "y1", "Polygon",
             [[[130.606, 42.4230], [130.609, 42.4230], [130.609, 42.4240], [130.606, 42.4240], [130.606, 42.4230]]]),
        feat("bridge", "br1", "LineString", [[130.602, 42.4221], [130.604, 42.4221]]),
    ]}


def _by_id(doc: dict, fid: str) -> dict:
    return next(f for f in doc["features"] if f["properties"].get("id") == fid)


def write(tmp_path: Path, doc, name="aoi.geojson") -> Path:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return p


# Each case: (name, mutate(doc) -> doc or raw text, words the message must contain).
def _bad_json(d):
    return '{"type": "FeatureCollection", "features": [ {"type": "Feature",'


def _not_fc(d):
    return d["features"][1]  # a single Feature


def _no_boundary(d):
    d["features"] = [f for f in d["features"] if f["properties"]["role"] != "boundary"]
    return d


def _unknown_role(d):
    _by_id(d, "y1")["properties"]["role"] = "platform"
    return d


def _wrong_type(d):
    t = _by_id(d, "t1")
    t["geometry"] = {"type": "Polygon", "coordinates": [t["geometry"]["coordinates"] + [[130.605, 42.423],
                                                                                      [130.601, 42.4220]]]}
    return d


def _bowtie_water(d):
    _by_id(d, "w1")["geometry"]["coordinates"] = [[[130.601, 42.4235], [130.605, 42.4245], [130.605, 42.4235],
                                                   [130.601, 42.4245], [130.601, 42.4235]]]
    return d


def _bowtie_boundary(d):
    _by_id(d, "test-yard")["geometry"]["coordinates"] = [[[130.600, 42.420], [130.610, 42.425], [130.610, 42.420],
                                                          [130.600, 42.425], [130.600, 42.420]]]
    return d


def _lon_out(d):
    _by_id(d, "t2")["geometry"]["coordinates"][1] = [230.609, 42.42205]
    return d


def _lat_out(d):
    _by_id(d, "b1")["geometry"]["coordinates"][0] = [130.6015, 95.0]
    return d


def _utm_coords(d):  # a file saved in UTM metres instead of lon/lat
    _by_id(d, "t1")["geometry"]["coordinates"] = [[632000.0, 4697800.0], [632500.0, 4697700.0]]
    return d


def _track_outside(d):
    _by_id(d, "t1")["geometry"]["coordinates"][1] = [130.615, 42.4220]  # ~400 m east of the boundary
    return d


def _berth_outside(d):
    _by_id(d, "b1")["geometry"]["coordinates"] = [[130.6015, 42.4260], [130.6045, 42.4260]]
    return d


BAD_CASES = [
    ("invalid_json", _bad_json, ["invalid JSON", "line 1"]),
    ("not_featurecollection", _not_fc, ["not a GeoJSON FeatureCollection", "'Feature'"]),
    ("missing_boundary", _no_boundary, ["missing boundary"]),
    ("unknown_role", _unknown_role, ["unknown role", "'platform'", "y1"]),
    ("wrong_geometry_type", _wrong_type, ["wrong geometry type Polygon", "'track'", "t1"]),
    ("self_intersecting_water", _bowtie_water, ["self-intersect", "w1"]),
    ("self_intersecting_boundary", _bowtie_boundary, ["self-intersect", "test-yard"]),
    ("lon_outside_wgs84", _lon_out, ["outside WGS84", "t2"]),
    ("lat_outside_wgs84", _lat_out, ["outside WGS84", "b1"]),
    ("utm_coordinates", _utm_coords, ["outside WGS84", "t1"]),
    ("track_outside_boundary", _track_outside, ["outside the boundary", "track", "t1"]),
    ("berth_outside_boundary", _berth_outside, ["outside the boundary", "berth", "b1"]),
]


# ---------------------------------------------------------------------------
# validation rules
# ---------------------------------------------------------------------------
def test_small_aoi_is_valid(tmp_path):
    a = read_aoi_file(write(tmp_path, small_aoi()))
    assert (a.id, a.kind, a.country) == ("test-yard", "rail_yard", "DPRK")
    assert [f.id for f in a.tracks] == ["t1", "t2"]
    assert a.tracks[1].gauge_mm == 1435  # dual gauge: the smaller one
    assert len(a.water) == len(a.berths) == len(a.yards) == len(a.bridges) == 1
    s = a.summary()
    assert s["area_km2"] == pytest.approx(0.458, abs=0.01)  # 823 m x 556 m
    assert s["track_km"] == pytest.approx(2 * 0.657, abs=0.005)


@pytest.mark.parametrize("name,mutate,words", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_file_refused_naming_file_and_feature(tmp_path, name, mutate, words):
    path = write(tmp_path, mutate(copy.deepcopy(small_aoi())), f"{name}.geojson")
    with pytest.raises(AOIError) as ei:
        read_aoi_file(path)
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ")
    assert ei.value.source == str(path)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    assert isinstance(ei.value, InputError)


def test_parse_aoi_names_source_without_file():
    doc = _unknown_role(small_aoi())
    with pytest.raises(AOIError, match=r"^mine: feature 5 \(id='y1', role='platform'\): unknown role"):
        parse_aoi(doc, source="mine")


def test_missing_file_and_unknown_id():
    with pytest.raises(AOIError, match="no such file"):
        load_aoi("/nonexistent/dir/yard.geojson")
    with pytest.raises(AOIError, match=r"^atlantis: no such AOI file or bundled AOI id \(bundled: .*najin"):
        load_aoi("atlantis")


def test_track_poking_out_within_tolerance_is_accepted(tmp_path):
    d = small_aoi()
    # 0.5 m beyond the east edge (1 m tolerance)
    east = 130.610 + 0.5 / (111_320 * math.cos(math.radians(42.422)))
    _by_id(d, "t1")["geometry"]["coordinates"][1] = [east, 42.4220]
    assert read_aoi_file(write(tmp_path, d)).tracks[0].id == "t1"


def test_to_geojson_round_trips(tmp_path):
    a = read_aoi_file(write(tmp_path, small_aoi()))
    b = parse_aoi(json.loads(json.dumps(a.to_geojson())), source="copy")
    assert {k: v for k, v in b.summary().items() if k != "source"} == \
           {k: v for k, v in a.summary().items() if k != "source"}
    assert [(f.role, f.id) for f in b.features] == [(f.role, f.id) for f in a.features]


# ---------------------------------------------------------------------------
# bundled AOIs
# ---------------------------------------------------------------------------
def test_bundled_ids():
    assert set(BUNDLED) <= set(bundled_ids())


@pytest.mark.parametrize("aid", list(BUNDLED))
def test_bundled_aoi_validates(aid):
    path = bundled_dir() / f"{aid}.geojson"
    a = read_aoi_file(path)
    assert (a.id, a.kind) == (aid, BUNDLED[aid])
    assert a.country in ("DPRK", "Russia")
    assert a.properties["geometry"] == "schematic"
    assert isinstance(a.properties["sources"], list) and a.properties["sources"]
    xy = np.concatenate([shapely.get_coordinates(a.boundary)] +
                        [shapely.get_coordinates(f.geometry) for f in a.features])
    assert (np.abs(xy[:, 0]) <= 180).all() and (np.abs(xy[:, 1]) <= 90).all()
    assert 0.2 < a.summary()["area_km2"] < 20  # a station or a port, not a region


@pytest.mark.parametrize("aid", list(BUNDLED))
def test_bundled_aoi_loads_by_id_from_any_cwd(aid, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = load_aoi(aid)
    assert a.id == aid and Path(a.source).is_absolute()


def _transect_crossings(a: AOI):
    """Offsets (m) where a line across the yard's middle meets the tracks.

    The transect is perpendicular to the longest yard track at its middle,
    120 m long; the AOI is in UTM metres.
    """
    yard = [f for f in a.tracks if f.properties.get("group") == "yard"]
    ref = max(yard, key=lambda f: f.geometry.length).geometry
    m = ref.interpolate(0.5, normalized=True)
    p, q = ref.interpolate(0.49, normalized=True), ref.interpolate(0.51, normalized=True)
    d = np.array([q.x - p.x, q.y - p.y])
    d /= np.linalg.norm(d)
    n = np.array([-d[1], d[0]])
    tr = LineString([(m.x - 60 * n[0], m.y - 60 * n[1]), (m.x + 60 * n[0], m.y + 60 * n[1])])
    offs = []
    for f in a.tracks:
        hit = tr.intersection(f.geometry)
        for g in getattr(hit, "geoms", [hit]):
            if not g.is_empty:
                offs.append(float(np.dot([g.x - m.x, g.y - m.y], n)))
    return sorted(offs)


@pytest.mark.parametrize("aid", RAIL)
def test_rail_aoi_tracks_parallel_and_inside(aid):
    a = load_aoi(aid).to_crs()  # UTM metres
    assert a.tracks
    for f in a.tracks:
        assert a.boundary.contains(f.geometry), f"{aid}: track {f.id} leaves the boundary"
        assert f.gauge_mm in (1435.0, 1520.0)
    offs = _transect_crossings(a)
    assert len(offs) >= 6  # Khasan: 6 tracks; Tumangang: main line + yard tracks
    gaps = np.diff(offs)
    assert ((gaps >= 4.5) & (gaps <= 5.5)).all(), f"{aid}: track spacing {gaps.round(2)}"
    # yard tracks stay parallel over their middle: spacing to the nearest
    # other track along the middle half of each one
    for f in a.tracks:
        if f.properties.get("group") != "yard":
            continue
        others = shapely.union_all([g.geometry for g in a.tracks if g.id != f.id])
        for s in np.linspace(0.25, 0.75, 6):
            dist = others.distance(f.geometry.interpolate(s, normalized=True))
            assert 4.5 <= dist <= 5.5, f"{aid}: {f.id} at {s:.2f}: nearest track {dist:.2f} m"


def test_tumangang_yard_main_line_and_bridge():
    a = load_aoi("tumangang").to_crs()
    yard = [f for f in a.tracks if f.properties.get("group") == "yard"]
    assert 6 <= len(yard) <= 10
    assert all(600 <= f.geometry.length <= 900 for f in yard)
    assert len(a.bridges) == 1
    bridge = a.bridges[0].geometry
    assert 550 <= bridge.length <= 650  # published 590-623 m
    on_bridge = [f for f in a.tracks if f.geometry.hausdorff_distance(bridge) < 2.0]
    assert on_bridge and all(f.properties["gauge_mm"] == [1435, 1520] for f in on_bridge)
    main = next(f for f in a.tracks if f.id == "main")
    assert main.properties["gauge_mm"] == [1435, 1520]
    assert main.geometry.distance(Point(bridge.coords[0])) < 1.0  # the main line reaches the bridge
    # the station point (Wikipedia) is on the yard, the bridge point on the bridge
    wgs = load_aoi("tumangang")
    assert wgs.boundary.contains(Point(130.6081, 42.4214))
    assert len(a.yards) == 1 and all(a.yards[0].geometry.buffer(1).contains(f.geometry) for f in yard)


def test_khasan_six_tracks():
    a = load_aoi("khasan").to_crs()
    assert len(_transect_crossings(a)) == 6
    assert a.country == "Russia"


@pytest.mark.parametrize("aid", PORTS)
def test_port_aoi_water_and_berths(aid):
    a = load_aoi(aid).to_crs()
    assert a.water and a.berths
    water = shapely.union_all([f.geometry for f in a.water])
    assert water.area > 0.5e6  # > 0.5 km2 of harbour water
    assert water.intersection(a.boundary).area == pytest.approx(water.area, rel=1e-6)
    edge = water.boundary
    for b in a.berths:
        g = b.geometry
        assert a.boundary.contains(g)
        assert 80 <= g.length <= 600, f"{aid}: berth {b.id} is {g.length:.0f} m"
        # on the water's edge: every point of the berth within 5 m of it
        off = max(edge.distance(g.interpolate(s, normalized=True)) for s in np.linspace(0, 1, 21))
        assert off <= 5.0, f"{aid}: berth {b.id} is {off:.1f} m off the water's edge"
        # a ship moored at the berth lies on water: 15 m off the face, one side is water
        mid = g.interpolate(0.5, normalized=True)
        assert water.distance(mid) < 1.0 and water.buffer(-1).distance(mid) < 20.0


def test_najin_piers_and_yard():
    a = load_aoi("najin")
    piers = {b.properties.get("pier") for b in a.berths}
    assert {"pier1", "pier2", "pier3"} <= piers
    assert len(a.yards) == 1
    u = a.to_crs()
    water = shapely.union_all([f.geometry for f in u.water])
    assert u.yards[0].geometry.intersection(water).area < 1.0  # the yard is on land
    assert any("landmask" in s for s in a.properties["sources"])


# ---------------------------------------------------------------------------
# geography: the water polygons are water in the GSHHG land mask
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def landmask():
    rl = pytest.importorskip("roaring_landmask", reason="roaring-landmask not installed (extra 'landmask')")
    return rl.RoaringLandmask.new()


@pytest.mark.parametrize("aid", PORTS)
def test_port_water_is_water_in_landmask(aid, landmask):
    a = load_aoi(aid)
    u = a.to_crs()
    water = shapely.union_all([f.geometry for f in u.water])
    core = water.buffer(-60.0)  # away from the coast (mask and grid resolution)
    minx, miny, maxx, maxy = core.bounds
    xs, ys = np.meshgrid(np.arange(minx, maxx, 50.0), np.arange(miny, maxy, 50.0))
    pts = shapely.points(xs.ravel(), ys.ravel())
    inside = shapely.contains(core, pts)
    from pyproj import Transformer
    tr = Transformer.from_crs(u.crs, 4326, always_xy=True)
    lon, lat = tr.transform(xs.ravel()[inside], ys.ravel()[inside])
    land = np.asarray(landmask.contains_many(np.asarray(lon, float), np.asarray(lat, float)))
    assert inside.sum() > 100
    assert land.mean() < 0.01, f"{aid}: {land.mean():.1%} of the water polygon is land in the mask"


@pytest.mark.slow
def test_make_aois_reproduces_bundled_files(tmp_path, landmask):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import make_aois
    finally:
        sys.path.pop(0)
    assert make_aois.main(["--out", str(tmp_path)]) == 0
    for aid in BUNDLED:
        assert (tmp_path / f"{aid}.geojson").read_text() == (REPO / "aoi" / f"{aid}.geojson").read_text()


# ---------------------------------------------------------------------------
# a new site: a boundary-only AOI
# ---------------------------------------------------------------------------

def test_new_aoi_from_bounds_round_trips_through_the_file_rules():
    from monitor.aoi import new_aoi

    a = new_aoi("my-yard", "rail_yard", (130.600, 42.420, 130.610, 42.425), country="DPRK")
    assert (a.id, a.name, a.kind, a.country) == ("my-yard", "my-yard", "rail_yard", "DPRK")
    assert a.tracks == () and a.water == ()
    # about 820 m x 555 m at 42.4 N
    assert a.summary()["area_km2"] == pytest.approx(0.455, rel=0.02)
    again = parse_aoi(json.loads(json.dumps(a.to_geojson())))
    assert again.boundary.equals_exact(a.boundary, 1e-9)


def test_new_aoi_reprojects_a_projected_boundary_to_wgs84():
    from shapely.geometry import box

    from monitor.aoi import new_aoi

    # 300 m x 200 m in Swiss LV95 (EPSG:2056) metres
    a = new_aoi("ch", "port", box(2600000, 1260000, 2600300, 1260200), crs="EPSG:2056", country="CH")
    w, s, e, n = a.boundary.bounds
    assert 7.0 < w < e < 8.0 and 47.0 < s < n < 48.0
    assert a.summary()["area_km2"] == pytest.approx(0.06, rel=0.01)


@pytest.mark.parametrize("kind, bounds, reason", [
    ("rail_yard", (130.61, 42.42, 130.60, 42.425), "west < east"),
    ("rail_yard", (1, 2, 3), "neither a Polygon nor"),
    ("depot", (130.60, 42.42, 130.61, 42.425), "kind 'depot' is not one of"),
])
def test_new_aoi_refuses_bad_bounds_and_kinds_in_one_line(kind, bounds, reason):
    from monitor.aoi import new_aoi

    with pytest.raises(AOIError) as e:
        new_aoi("x", kind, bounds, source="x.geojson")
    msg = str(e.value)
    assert msg.startswith("x.geojson: ") and reason in msg and "\n" not in msg
