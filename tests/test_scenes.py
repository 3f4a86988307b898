"""Scene discovery and metadata: GeoTIFF tags, file names, STAC items and catalogs."""

from __future__ import annotations

import json
import math
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import Polygon, box, mapping

from monitor.aoi import AOI
from monitor.errors import SceneError
from monitor.scenes import (file_digest, find_scenes, open_scene, parse_time, require_acquired,
                            scene_covers, time_from_name)

LON, LAT = 130.30, 42.25
UTM = "EPSG:32652"


def _utm_xy(lon=LON, lat=LAT):
    return Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(lon, lat)


def write(path, *, count=1, dtype="uint8", epsg=UTM, res=None, size=64, descriptions=None, tags=None,
          imagery_tags=None, value=50, lon=LON, lat=LAT, **prof):
    """A small tiled GeoTIFF of ``size`` px centred on (lon, lat); ``res`` in CRS units."""
    x, y = Transformer.from_crs("EPSG:4326", epsg, always_xy=True).transform(lon, lat)
    if res is None:  # 2 ground metres
        res = {"EPSG:4326": (2.0 / (111320.0 * math.cos(math.radians(lat))), 2.0 / 110950.0),
               "EPSG:3857": 2.0 / math.cos(math.radians(lat))}.get(epsg, 2.0)
    rx, ry = res if isinstance(res, tuple) else (res, res)
    tr = from_origin(x - size / 2 * rx, y + size / 2 * ry, rx, ry)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=count, dtype=dtype,
                       crs=epsg, transform=tr, tiled=True, blockxsize=32, blockysize=32, **prof) as d:
        d.write(np.full((count, size, size), value, dtype))
        for i, s in enumerate(descriptions or [], start=1):
            d.set_band_description(i, s)
        if tags:
            d.update_tags(**tags)
        if imagery_tags:
            d.update_tags(ns="IMAGERY", **imagery_tags)
    return str(path)


def _aoi(lon=LON, lat=LAT, half_deg=0.0003):
    return AOI(id="a", name="a", country="KP", kind="port",
               boundary=box(lon - half_deg, lat - half_deg, lon + half_deg, lat + half_deg))


# --------------------------------------------------------------------------
# acquisition time
# --------------------------------------------------------------------------

def test_time_from_tiff_datetime_tag(tmp_path):
    s = open_scene(write(tmp_path / "a.tif", tags={"TIFFTAG_DATETIME": "2023:04:14 02:15:30"}))
    assert s.acquired == datetime(2023, 4, 14, 2, 15, 30, tzinfo=timezone.utc)
    assert s.properties["acquired_from"] == "tag TIFFTAG_DATETIME"


def test_time_from_acquisition_tag_wins_over_file_time(tmp_path):
    s = open_scene(write(tmp_path / "a.tif", tags={"TIFFTAG_DATETIME": "2024:01:01 00:00:00",
                                                    "ACQUISITIONDATETIME": "2023-04-14T02:15:30.5+09:00"}))
    assert s.acquired == datetime(2023, 4, 13, 17, 15, 30, 500000, tzinfo=timezone.utc)


def test_time_from_imagery_domain(tmp_path):
    s = open_scene(write(tmp_path / "a.tif", imagery_tags={"ACQUISITIONDATETIME": "2022-11-02T01:02:03Z",
                                                            "CLOUDCOVER": "12.5"}))
    assert s.acquired == datetime(2022, 11, 2, 1, 2, 3, tzinfo=timezone.utc)
    assert s.cloud_cover == 12.5


@pytest.mark.parametrize("name,expected", [
    ("S2A_MSIL2A_20230414T021531_N0509_R003_T52TFN.tif", datetime(2023, 4, 14, 2, 15, 31)),
    ("rajin_2021-09-30.tif", datetime(2021, 9, 30)),
    ("scene_20190105.tiff", datetime(2019, 1, 5)),
])
def test_time_from_file_name(tmp_path, name, expected):
    s = open_scene(write(tmp_path / name))
    assert s.acquired == expected.replace(tzinfo=timezone.utc)
    assert s.properties["acquired_from"] == "file name"


def test_no_time_is_none(tmp_path):
    s = open_scene(write(tmp_path / "scene_v2.tif"))
    assert s.acquired is None
    with pytest.raises(SceneError, match="scene_v2.tif: no acquisition time"):
        require_acquired(s)
    assert time_from_name("img_12345678901.tif") is None
    assert parse_time("not a time") is None


# --------------------------------------------------------------------------
# roles, sensor, gsd, crs, footprint, id
# --------------------------------------------------------------------------

def test_roles_from_descriptions_and_sar(tmp_path):
    s = open_scene(write(tmp_path / "o.tif", count=4, dtype="uint16", descriptions=["red", "green", "blue", "nir"]))
    assert s.roles == ("red", "green", "blue", "nir") and s.sensor == "optical"
    s = open_scene(write(tmp_path / "s.tif", count=2, dtype="float32", descriptions=["VV", "VH"]))
    assert s.roles == ("vv", "vh") and s.sensor == "sar"
    s = open_scene(write(tmp_path / "b.tif", count=3, dtype="uint16", descriptions=["B04", "B03", "B02"]))
    assert s.roles == ("red", "green", "blue")


def test_explicit_roles_and_sensor(tmp_path):
    p = write(tmp_path / "x.tif", count=2, dtype="float32")
    with pytest.raises(SceneError, match="unsupported band layout"):
        open_scene(p)
    assert open_scene(p, bands=["hh", "hv"]).sensor == "sar"
    s = open_scene(p, sensor="sar")
    assert s.roles == ("vv", "vh") and s.sensor == "sar"
    assert open_scene(write(tmp_path / "g.tif"), sensor="sar").roles == ("vv",)
    with pytest.raises(SceneError, match="2 bands but 3 roles"):
        open_scene(p, bands=["red", "green", "blue"])


@pytest.mark.parametrize("epsg", [UTM, "EPSG:4326", "EPSG:3857"])
def test_gsd_in_ground_metres(tmp_path, epsg):
    s = open_scene(write(tmp_path / "g.tif", epsg=epsg))
    assert s.gsd_m == pytest.approx(2.0, rel=0.01)
    assert s.crs == epsg
    assert s.footprint.contains(Polygon(_aoi(half_deg=0.0001).boundary))


def test_stable_id_from_header_not_whole_file(tmp_path):
    p = write(tmp_path / "a.tif", tags={"TIFFTAG_DATETIME": "2023:04:14 02:15:30"})
    q = tmp_path / "copy.tif"
    shutil.copy(p, q)
    r = write(tmp_path / "b.tif", value=51)
    assert open_scene(p).id == open_scene(q).id == file_digest(p)
    assert open_scene(r).id != open_scene(p).id
    # the digest reads at most 2 x 64 KiB of a large file
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 20))
    reads = []
    real_open = open

    def counting_open(*a, **k):
        f = real_open(*a, **k)
        orig = f.read
        f.read = lambda n=-1: reads.append(n) or orig(n)
        return f

    import builtins
    builtins.open, saved = counting_open, builtins.open
    try:
        file_digest(str(big))
    finally:
        builtins.open = saved
    assert reads and all(0 < n <= 65536 for n in reads) and len(reads) <= 2


def test_scene_covers(tmp_path):
    s = open_scene(write(tmp_path / "c.tif", size=200))  # 400 m square
    assert scene_covers(s, _aoi()) == pytest.approx(1.0)
    # an AOI centred on the scene's east edge: half of it is off the scene
    x, y = _utm_xy()
    lon_edge, _ = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(x + 200, y)
    assert scene_covers(s, _aoi(lon=lon_edge)) == pytest.approx(0.5, abs=0.03)
    assert scene_covers(s, _aoi(lon=LON + 0.1)) == 0.0


# --------------------------------------------------------------------------
# STAC items, catalogs, folders
# --------------------------------------------------------------------------

def _make_catalog(root: Path, n=3):
    """A pystac catalog of ``n`` items; item 0 is one asset per band."""
    cat = pystac.Catalog(id="test-catalog", description="test")
    for i in range(n):
        d = root / f"item{i}"
        d.mkdir(parents=True)
        lon = LON + i * 0.01
        when = datetime(2024, 3, 1 + i, 2, 0, tzinfo=timezone.utc)
        fp = box(lon - 0.001, LAT - 0.001, lon + 0.001, LAT + 0.001)
        it = pystac.Item(id=f"scene-{i}", geometry=mapping(fp), bbox=list(fp.bounds), datetime=when,
                         properties={"eo:cloud_cover": 10.0 * i, "platform": "testsat"})
        if i == 0:
            for key, cn in [("B04", "red"), ("B03", "green"), ("B02", "blue"), ("B08", "nir")]:
                write(d / f"{key}.tif", dtype="uint16", lon=lon)
                it.add_asset(key, pystac.Asset(href=str(d / f"{key}.tif"), media_type=pystac.MediaType.COG,
                                               roles=["data"], extra_fields={"eo:bands": [{"name": key, "common_name": cn}]}))
        else:
            write(d / "image.tif", count=3, dtype="uint16", lon=lon)
            it.add_asset("image", pystac.Asset(href=str(d / "image.tif"), media_type=pystac.MediaType.GEOTIFF,
                                               roles=["data"]))
        it.add_asset("thumbnail", pystac.Asset(href=str(d / "thumb.png"), media_type=pystac.MediaType.PNG,
                                               roles=["thumbnail"]))
        cat.add_item(it)
    cat.normalize_hrefs(str(root))
    cat.make_all_asset_hrefs_relative()
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def test_stac_catalog_of_several_items(tmp_path):
    cat = _make_catalog(tmp_path / "cat")
    scenes = find_scenes(cat)
    assert [s.id for s in scenes] == ["scene-0", "scene-1", "scene-2"]
    s0, s1, s2 = scenes
    assert s0.roles == ("red", "green", "blue", "nir")
    assert len(s0.hrefs) == 4 and all(os.path.isabs(h) and os.path.exists(h) for h in s0.hrefs)
    assert s1.roles == ("red", "green", "blue") and s1.hrefs == (str(tmp_path / "cat" / "item1" / "image.tif"),)
    assert s2.acquired == datetime(2024, 3, 3, 2, 0, tzinfo=timezone.utc)
    assert s2.cloud_cover == 20.0
    assert s0.gsd_m == pytest.approx(2.0)
    assert s0.footprint.contains(box(LON - 0.0005, LAT - 0.0005, LON + 0.0005, LAT + 0.0005))


def test_folder_search_dedupes_stac_assets_and_skips_non_imagery(tmp_path):
    _make_catalog(tmp_path / "cat")
    write(tmp_path / "loose_2020-01-02.tif")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "aoi.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    (tmp_path / "other.json").write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    scenes = find_scenes(tmp_path)
    assert sorted(s.id for s in scenes if s.id.startswith("scene-")) == ["scene-0", "scene-1", "scene-2"]
    assert len(scenes) == 4  # 3 items (catalog and item files found once) + the loose tif
    loose = [s for s in scenes if s.path.endswith("loose_2020-01-02.tif")]
    assert loose and loose[0].acquired.year == 2020
    assert len(find_scenes(tmp_path, recursive=False)) == 1


def test_batch_goes_on_past_bad_files(tmp_path):
    write(tmp_path / "good.tif")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    (tmp_path / "empty.tif").write_bytes(b"")
    with rasterio.open(tmp_path / "nocrs.tif", "w", driver="GTiff", width=8, height=8, count=1,
                       dtype="uint8", transform=from_origin(0, 8, 1, 1)) as d:
        d.write(np.zeros((1, 8, 8), "uint8"))
    errors: list = []
    scenes = find_scenes([tmp_path, tmp_path / "missing.tif"], errors=errors)
    assert [Path(s.path).name for s in scenes] == ["good.tif"]
    msgs = sorted(str(e) for e in errors)
    assert len(msgs) == 4 and all("\n" not in m for m in msgs)
    assert any("broken.tif" in m and "corrupt" in m for m in msgs)
    assert any("empty.tif" in m and "empty file" in m for m in msgs)
    assert any("nocrs.tif" in m and "no CRS" in m for m in msgs)
    assert any("missing.tif" in m for m in msgs)
    with pytest.raises(SceneError, match="broken.tif"):
        find_scenes(tmp_path)


def _item(tmp_path, assets, props=None, name="item"):
    doc = {"type": "Feature", "stac_version": "1.0.0", "id": name, "geometry": None,
           "properties": {"datetime": "2024-05-01T00:00:00Z", **(props or {})}, "links": [], "assets": assets}
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(doc))
    return str(p)


def test_asset_selection_visual_and_per_band(tmp_path):
    write(tmp_path / "vis.tif", count=3, photometric="RGB")
    write(tmp_path / "B08.tif", dtype="uint16")
    write(tmp_path / "B02.tif", dtype="uint16")
    p = _item(tmp_path, {
        "visual": {"href": "./vis.tif", "type": "image/tiff; application=geotiff", "roles": ["visual"]},
        "nir": {"href": "./B08.tif", "type": "image/tiff", "roles": ["data"]},
        "blue": {"href": "./B02.tif", "type": "image/tiff", "roles": ["data"],
                 "eo:bands": [{"name": "B02", "common_name": "blue"}]},
        "metadata": {"href": "./meta.xml", "type": "application/xml", "roles": ["metadata"]},
    })
    s = open_scene(p)
    # red/green/blue all from the visual asset (one scaling), nir from its own file
    assert s.roles == ("red", "green", "blue", "nir")
    assert [Path(b.href).name for b in s.bands] == ["vis.tif"] * 3 + ["B08.tif"]
    s = open_scene(p, bands=["nir"])
    assert s.roles == ("nir",)
    with pytest.raises(SceneError, match="no asset for band"):
        open_scene(p, bands=["vv"])


def test_sar_item_polarizations(tmp_path):
    write(tmp_path / "vv.tif", dtype="float32")
    write(tmp_path / "vh.tif", dtype="float32")
    p = _item(tmp_path, {
        "a": {"href": "./vv.tif", "type": "image/tiff", "roles": ["data"], "sar:polarizations": ["VV"]},
        "b": {"href": "./vh.tif", "type": "image/tiff", "roles": ["data"], "sar:polarizations": ["VH"]},
    }, props={"platform": "sentinel-1a", "sar:instrument_mode": "IW"})
    s = open_scene(p)
    assert s.roles == ("vv", "vh") and s.sensor == "sar" and s.id == "item"


def test_stac_errors(tmp_path):
    p = tmp_path / "aoi.json"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(SceneError, match="not a STAC item"):
        open_scene(p)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SceneError, match="bad.json: invalid JSON"):
        open_scene(bad)
    q = _item(tmp_path, {"thumb": {"href": "./t.png", "type": "image/png", "roles": ["thumbnail"]}}, name="empty")
    with pytest.raises(SceneError, match="no imagery asset"):
        open_scene(q)
    r = _item(tmp_path, {"red": {"href": "./nothere.tif", "type": "image/tiff", "roles": ["data"]}}, name="gone")
    with pytest.raises(SceneError, match="nothere.tif: no such file"):
        open_scene(r)
    with pytest.raises(SceneError, match="no such file"):
        open_scene(tmp_path / "absent.tif")


def test_earth_search_like_item_prefers_exact_common_names(tmp_path):
    # Earth Search Sentinel-2 items list COG assets, then JP2 copies, and nir08 (B8A)
    for k in ("B02", "B03", "B04", "B08", "B8A"):
        write(tmp_path / f"{k}.tif", dtype="uint16")
    write(tmp_path / "SCL.tif")

    def a(key, cn, href, typ="image/tiff; application=geotiff; profile=cloud-optimized"):
        return {"href": href, "type": typ, "roles": ["data"], "eo:bands": [{"name": key, "common_name": cn}]}

    p = _item(tmp_path, {
        "blue": a("B02", "blue", "./B02.tif"), "green": a("B03", "green", "./B03.tif"),
        "nir08": a("B8A", "nir08", "./B8A.tif"), "nir": a("B08", "nir", "./B08.tif"),
        "red": a("B04", "red", "./B04.tif"),
        "scl": {"href": "./SCL.tif", "type": "image/tiff", "roles": ["data"]},
        "red-jp2": a("B04", "red", "./B04.jp2", "image/jp2"),
        "thumbnail": {"href": "./t.jpg", "type": "image/jpeg", "roles": ["thumbnail"]},
        "granule_metadata": {"href": "./m.xml", "type": "application/xml", "roles": ["metadata"]},
    }, props={"eo:cloud_cover": 3.5})
    s = open_scene(p)
    assert s.roles == ("red", "green", "blue", "nir", "mask")
    assert [Path(b.href).name for b in s.bands] == ["B04.tif", "B03.tif", "B02.tif", "B08.tif", "SCL.tif"]
    assert s.bands[-1].name == "scl" and s.cloud_cover == 3.5


# --------------------------------------------------------------------------
# the imagery analysts have: product names, side-cars, band layouts, STAC forms
# --------------------------------------------------------------------------

def test_planetscope_analytic_band_order_name_time_and_side_car(tmp_path):
    """PlanetScope analytic files name no band: blue, green, red, NIR by the product's convention."""
    stem = "20230414_021530_12_2416"
    p = write(tmp_path / f"{stem}_3B_AnalyticMS_SR.tif", count=4, dtype="uint16")
    s = open_scene(p)
    assert s.roles == ("blue", "green", "red", "nir")
    assert [b.index for b in s.bands] == [1, 2, 3, 4]
    assert s.acquired == datetime(2023, 4, 14, 2, 15, 30, tzinfo=timezone.utc)
    assert s.properties["acquired_from"] == "file name"
    (tmp_path / f"{stem}_metadata.json").write_text(json.dumps({
        "id": stem, "type": "Feature", "geometry": None,
        "properties": {"acquired": "2023-04-14T02:15:30.954Z", "sun_azimuth": 151.2, "sun_elevation": 55.1,
                       "view_angle": 3.4, "gsd": 3.9, "cloud_cover": 0.02, "satellite_id": "2416"}}))
    s = open_scene(p)
    assert s.acquired == datetime(2023, 4, 14, 2, 15, 30, 954000, tzinfo=timezone.utc)
    assert s.properties["view:sun_azimuth"] == 151.2 and s.properties["view:sun_elevation"] == 55.1
    assert s.properties["view:off_nadir"] == 3.4 and s.cloud_cover == pytest.approx(2.0)
    assert s.properties["sidecar"] == f"{stem}_metadata.json"
    # the folder search does not take the side-car for a scene
    assert [Path(x.path).name for x in find_scenes(tmp_path)] == [Path(p).name]


def test_maxar_name_time_eight_bands_and_imd(tmp_path):
    stem = "22MAR14021530-M2AS-013456789010_01_P001"
    p = write(tmp_path / f"{stem}.TIF", count=8, dtype="uint16")
    s = open_scene(p)
    assert s.roles == ("blue", "green", "red", "nir")   # bands stay in file order
    assert [b.index for b in s.bands] == [2, 3, 5, 7]   # WorldView-2/3 coastal, blue, green, yellow, red, ...
    assert s.acquired == datetime(2022, 3, 14, 2, 15, 30, tzinfo=timezone.utc)
    (tmp_path / f"{stem}.IMD").write_text('version = "28.3";\nBEGIN_GROUP = IMAGE_1\n'
                                           '\tfirstLineTime = 2022-03-14T02:15:31.123456Z;\n'
                                           '\tmeanSunAz = 148.7;\n\tmeanSunEl = 44.0;\n\tcloudCover = 0.1;\n'
                                           'END_GROUP = IMAGE_1\n')
    s = open_scene(p)
    assert s.acquired == datetime(2022, 3, 14, 2, 15, 31, 123456, tzinfo=timezone.utc)
    assert s.properties["view:sun_azimuth"] == 148.7 and s.cloud_cover == pytest.approx(10.0)


def test_described_bands_the_detectors_do_not_use_are_left_out(tmp_path):
    names = ["coastal_blue", "blue", "green_i", "green", "yellow", "red", "rededge", "nir"]
    s = open_scene(write(tmp_path / "ps8.tif", count=8, dtype="uint16", descriptions=names))
    assert s.roles == ("blue", "green", "red", "nir")
    assert [b.index for b in s.bands] == [2, 4, 6, 8]


def test_colour_interpretation_names_nir_and_pan(tmp_path):
    from rasterio.enums import ColorInterp as CI

    p = write(tmp_path / "bgrn.tif", count=4, dtype="uint16")
    with rasterio.open(p, "r+") as d:
        d.colorinterp = [CI.blue, CI.green, CI.red, CI.nir]
    assert open_scene(p).roles == ("blue", "green", "red", "nir")
    p = write(tmp_path / "p.tif", dtype="uint16")
    with rasterio.open(p, "r+") as d:
        d.colorinterp = [CI.pan]
    assert open_scene(p).roles == ("pan",)


def test_tiff_datetime_beats_the_file_name_as_the_contract_says_and_the_doubt_is_recorded(tmp_path):
    # shared/DESIGN.md: STAC, then TIFFTAG_DATETIME / ACQUISITIONDATETIME, then the file name
    s = open_scene(write(tmp_path / "najin_2021-09-30.tif", tags={"TIFFTAG_DATETIME": "2024:02:01 10:00:00"}))
    assert s.acquired == datetime(2024, 2, 1, 10, tzinfo=timezone.utc)
    assert s.properties["acquired_from"].startswith("tag TIFFTAG_DATETIME")
    assert "2021-09-30" in s.properties["acquired_from"]
    s = open_scene(write(tmp_path / "najin_2021-10-01.tif", tags={"TIFFTAG_DATETIME": "2021:10:01 02:03:04"}))
    assert s.acquired == datetime(2021, 10, 1, 2, 3, 4, tzinfo=timezone.utc)  # same day: the tag has the time
    assert s.properties["acquired_from"] == "tag TIFFTAG_DATETIME"
    s = open_scene(write(tmp_path / "najin_2021-10-02.tif", tags={"TIFFTAG_DATETIME": "2024:02:01 10:00:00",
                                                                 "ACQUISITIONDATETIME": "2021-10-02T02:00:00Z"}))
    assert s.acquired == datetime(2021, 10, 2, 2, 0, tzinfo=timezone.utc)


def test_rotated_and_gcp_scenes_have_true_footprints(tmp_path):
    from affine import Affine
    from rasterio.control import GroundControlPoint

    x, y = _utm_xy()
    rot = Affine.translation(x, y) * Affine.rotation(45) * Affine.scale(2, -2) * Affine.translation(-32, -32)
    p = tmp_path / "rot.tif"
    with rasterio.open(p, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8", crs=UTM,
                       transform=rot) as d:
        d.write(np.ones((1, 64, 64), "uint8"))
    s = open_scene(str(p))
    to_utm = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
    area = Polygon([to_utm.transform(*c) for c in s.footprint.exterior.coords]).area
    assert area == pytest.approx(128 * 128, rel=0.01) and s.gsd_m == pytest.approx(2.0)
    g = [GroundControlPoint(row=r, col=c, x=x - 64 + 2 * c, y=y + 64 - 2 * r) for r, c in [(0, 0), (0, 64), (64, 64), (64, 0)]]
    q = tmp_path / "gcp.tif"
    with rasterio.open(q, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8", gcps=g, crs=UTM) as d:
        d.write(np.ones((1, 64, 64), "uint8"))
    s = open_scene(str(q))
    assert s.properties["georef"] == "gcps" and s.gsd_m == pytest.approx(2.0)
    assert s.footprint.contains(Polygon(_aoi(half_deg=0.0003).boundary))


def test_stac_item_collection_with_relative_hrefs(tmp_path):
    d = tmp_path / "search"
    (d / "img").mkdir(parents=True)
    feats = []
    for i in range(2):
        write(d / "img" / f"s{i}.tif", count=3, lon=LON + 0.01 * i)
        feats.append({"type": "Feature", "stac_version": "1.0.0", "id": f"s{i}", "geometry": None,
                      "properties": {"datetime": f"2023-0{i + 1}-05T02:00:00Z", "view:sun_azimuth": 160.0 + i,
                                     "gsd": 2.0, "platform": "testsat"},
                      "links": [], "assets": {"image": {"href": f"img/s{i}.tif", "type": "image/tiff",
                                                        "roles": ["data"]}}})
    (d / "results.json").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    scenes = find_scenes(d / "results.json")
    assert [s.id for s in scenes] == ["s0", "s1"]
    assert scenes[1].hrefs == (str(d / "img" / "s1.tif"),)
    assert scenes[1].properties["view:sun_azimuth"] == 161.0 and scenes[1].acquired.month == 2
    # the folder search finds the same two scenes once (the tifs are claimed by the collection)
    assert sorted(s.id for s in find_scenes(d)) == ["s0", "s1"]


def test_stac_0_9_eo_band_indices_and_unused_assets(tmp_path):
    for k in ("B01", "B02", "B03", "B04", "B05", "B08", "B11", "AOT", "WVP"):
        write(tmp_path / f"{k}.tif", dtype="uint16")
    eo = [{"name": "B01", "common_name": "coastal"}, {"name": "B02", "common_name": "blue"},
          {"name": "B03", "common_name": "green"}, {"name": "B04", "common_name": "red"},
          {"name": "B05"}, {"name": "B08", "common_name": "nir"}, {"name": "B11", "common_name": "swir16"}]
    assets = {k: {"href": f"./{k}.tif", "type": "image/tiff", "roles": ["data"], "eo:bands": [i]}
              for i, k in enumerate(("B01", "B02", "B03", "B04", "B05", "B08", "B11"))}
    assets["AOT"] = {"href": "./AOT.tif", "type": "image/tiff", "roles": ["data"]}
    assets["WVP"] = {"href": "./WVP.tif", "type": "image/tiff", "roles": ["data"]}
    p = _item(tmp_path, assets, props={"eo:bands": eo})
    s = open_scene(p)
    assert s.roles == ("red", "green", "blue", "nir")
    assert [Path(b.href).name for b in s.bands] == ["B04.tif", "B03.tif", "B02.tif", "B08.tif"]


def test_unknown_single_band_assets_do_not_become_gray_beside_named_bands(tmp_path):
    write(tmp_path / "r.tif", dtype="uint16")
    write(tmp_path / "x.tif", dtype="uint16")
    p = _item(tmp_path, {"red": {"href": "./r.tif", "type": "image/tiff", "roles": ["data"]},
                         "product_quality": {"href": "./x.tif", "type": "image/tiff", "roles": ["data"]}})
    assert open_scene(p).roles == ("red",)
    q = _item(tmp_path, {"image": {"href": "./x.tif", "type": "image/tiff", "roles": ["data"]}}, name="only")
    assert open_scene(q).roles == ("gray",)


def test_catalog_folder_with_a_broken_item_goes_on(tmp_path):
    _make_catalog(tmp_path / "cat", n=2)
    item1 = tmp_path / "cat" / "scene-1" / "scene-1.json"
    if not item1.exists():
        item1 = next(p for p in (tmp_path / "cat").rglob("*.json") if "scene-1" in p.name)
    item1.write_text('{"type": "Feature", "id": "scene-1", truncated')
    (tmp_path / "cat" / "stray.json").write_text(json.dumps({"type": "Feature", "stac_version": "1.0.0",
                                                              "id": "gone", "geometry": None,
                                                              "properties": {"datetime": None}, "links": [],
                                                              "assets": {"red": {"href": "./nothere.tif",
                                                                                 "type": "image/tiff"}}}))
    errors: list = []
    scenes = find_scenes(tmp_path / "cat", errors=errors)
    assert [s.id for s in scenes].count("scene-0") == 1
    msgs = [str(e) for e in errors]
    assert msgs and all("\n" not in m for m in msgs)
    assert any("nothere.tif" in m and "no such file" in m for m in msgs)
    assert any("scene-1.json: invalid JSON" in m for m in msgs)
    # the catalog file given alone: the good item is read, the broken one reported
    errors = []
    assert [s.id for s in find_scenes(tmp_path / "cat" / "catalog.json", errors=errors)] == ["scene-0"]
    assert len(errors) == 1 and "scene-1.json" in str(errors[0])


def test_remote_hrefs_become_gdal_virtual_paths(tmp_path):
    from monitor.scenes import _asset_href

    assert _asset_href("https://example.org/a/B04.tif", str(tmp_path / "i.json")) == "/vsicurl/https://example.org/a/B04.tif"
    assert _asset_href("s3://bucket/B04.tif", "x.json") == "/vsis3/bucket/B04.tif"
    assert _asset_href("../img/B04.tif", "/data/items/i.json") == "/data/img/B04.tif"


def test_planetscope_udm2_side_car_is_the_cloud_mask(tmp_path):
    stem = "20230414_021530_12_2416_3B"
    p = write(tmp_path / f"{stem}_AnalyticMS_SR_clip.tif", count=4, dtype="uint16")
    write(tmp_path / f"{stem}_udm2_clip.tif", count=8, value=1)
    s = open_scene(p)
    assert s.roles == ("blue", "green", "red", "nir", "mask")
    assert s.bands[-1].name == "udm2" and s.bands[-1].href.endswith("_udm2_clip.tif")
    # the mask file is claimed by its scene, not listed as a scene of its own
    assert len(find_scenes(tmp_path)) == 1


def test_polarisation_from_a_sentinel1_file_name(tmp_path):
    s = open_scene(write(tmp_path / "s1a-iw-grd-vh-20230414t092512-20230414t092537-048108-05c8e7-002.tiff",
                         dtype="uint16"))
    assert s.roles == ("vh",) and s.sensor == "sar"
    assert s.acquired == datetime(2023, 4, 14, 9, 25, 12, tzinfo=timezone.utc)
    assert open_scene(write(tmp_path / "rajin_vivid.tif")).roles == ("gray",)


def _s2_safe(root: Path, baseline_offset=True) -> Path:
    """A Sentinel-2 L2A SAFE skeleton: 10/20/60 m band JP2s, SCL, product and granule metadata."""
    safe = root / "S2B_MSIL2A_20230414T021531_N0509_R003_T52TGN_20230414T050000.SAFE"
    gran = safe / "GRANULE" / "L2A_T52TGN_A031234_20230414T022500"
    x, y = _utm_xy()
    for res, keys in [(10, ["B02", "B03", "B04", "B08"]), (20, ["B02", "B03", "B04", "B11", "SCL"]),
                      (60, ["B01", "B04", "SCL"])]:
        d = gran / "IMG_DATA" / f"R{res}m"
        d.mkdir(parents=True)
        n = 1200 // res
        for k in keys:
            p = d / f"T52TGN_20230414T021531_{k}_{res}m.jp2"
            v = {"B02": 1400, "B03": 1600, "B04": 1500, "B08": 3500}.get(k, 4)
            with rasterio.open(p, "w", driver="JP2OpenJPEG", width=n, height=n, count=1,
                               dtype="uint8" if k == "SCL" else "uint16", crs=UTM,
                               transform=from_origin(x - 600, y + 600, res, res), QUALITY=100, REVERSIBLE=True) as f:
                f.write(np.full((1, n, n), v, "uint8" if k == "SCL" else "uint16"))
    offs = "".join(f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13)) if baseline_offset else ""
    (safe / "MTD_MSIL2A.xml").write_text(f"<root><BOA_QUANTIFICATION_VALUE unit=\"none\">10000"
                                         f"</BOA_QUANTIFICATION_VALUE><BOA_ADD_OFFSET_VALUES_LIST>{offs}"
                                         f"</BOA_ADD_OFFSET_VALUES_LIST></root>")
    (gran / "MTD_TL.xml").write_text('<root><SENSING_TIME metadataLevel="Standard">2023-04-14T02:25:47.024Z'
                                     '</SENSING_TIME><Mean_Sun_Angle><ZENITH_ANGLE unit="deg">38.5</ZENITH_ANGLE>'
                                     '<AZIMUTH_ANGLE unit="deg">151.25</AZIMUTH_ANGLE></Mean_Sun_Angle></root>')
    return safe


def test_sentinel2_safe_folder_is_one_scene(tmp_path):
    from monitor.imagery import read_chip

    safe = _s2_safe(tmp_path)
    scenes = find_scenes(tmp_path)
    assert len(scenes) == 1
    s = scenes[0]
    assert s.id == safe.name[:-5]
    assert s.roles == ("red", "green", "blue", "nir", "mask")
    assert all(b.href.endswith("_10m.jp2") for b in s.bands[:4]) and s.bands[4].href.endswith("SCL_20m.jp2")
    assert s.gsd_m == pytest.approx(10.0)
    assert s.acquired == datetime(2023, 4, 14, 2, 25, 47, 24000, tzinfo=timezone.utc)
    assert s.properties["view:sun_azimuth"] == 151.25 and s.properties["view:sun_elevation"] == pytest.approx(51.5)
    assert (s.bands[0].scale, s.bands[0].offset) == (pytest.approx(1e-4), pytest.approx(-0.1))
    assert open_scene(safe).id == s.id
    chip = read_chip(s, _aoi(half_deg=0.003))
    assert chip.roles == ("red", "green", "blue", "nir")
    assert np.median(chip.band("red")) == pytest.approx(0.05, abs=1e-4)     # (1500 - 1000) / 10000
    assert np.median(chip.band("nir")) == pytest.approx(0.25, abs=1e-4)
    assert chip.coverage == pytest.approx(1.0)


def test_band_files_of_exports_and_landsat_group_into_scenes(tmp_path):
    d = tmp_path / "exports"
    d.mkdir()
    for b in ("B02", "B03", "B04", "B08"):
        write(d / f"2023-04-14-00_00_2023-04-14-23_59_Sentinel-2_L2A_{b}_(Raw).tiff", dtype="uint16")
    for b in ("SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "QA_PIXEL"):
        write(d / f"LC09_L2SP_115031_20230420_20230422_02_T1_{b}.TIF", dtype="uint16")
    write(d / "najin_2023-05-01.tif", count=3)
    scenes = sorted(find_scenes(d), key=lambda s: s.path)
    assert len(scenes) == 3
    s2 = next(s for s in scenes if "Sentinel-2" in s.path)
    assert s2.roles == ("red", "green", "blue", "nir") and s2.acquired.date().isoformat() == "2023-04-14"
    assert s2.bands[0].scale is None      # no product metadata: digital numbers as stored
    ls = next(s for s in scenes if "LC09" in s.path)
    assert ls.roles == ("red", "green", "blue", "nir", "mask")
    assert [Path(b.href).name.split("_T1_")[1] for b in ls.bands] == ["SR_B4.TIF", "SR_B3.TIF", "SR_B2.TIF",
                                                                     "SR_B5.TIF", "QA_PIXEL.TIF"]
    assert ls.bands[0].scale == 2.75e-05 and ls.bands[0].offset == -0.2 and ls.bands[4].name == "qa_pixel"
    assert ls.acquired == datetime(2023, 4, 20, tzinfo=timezone.utc)
    with pytest.raises(SceneError, match="a folder holding 3 scenes"):
        open_scene(d)


def test_band_files_given_one_by_one_are_one_scene(tmp_path):
    files = [write(tmp_path / f"B0{i}.tif", dtype="uint16", value=100 * i) for i in (2, 3, 4, 8)]
    scenes = find_scenes(files + [write(tmp_path / "other.tif")])
    assert sorted(s.roles for s in scenes) == [("gray",), ("red", "green", "blue", "nir")]


def test_folder_search_takes_jp2_scenes_and_world_file_pictures(tmp_path):
    from pyproj import CRS

    x, y = _utm_xy()
    a = np.full((3, 64, 64), 90, "uint8")
    with rasterio.open(tmp_path / "IMG_PHR1A_PMS_202304140215306_ORT_R1C1.JP2", "w", driver="JP2OpenJPEG",
                       width=64, height=64, count=3, dtype="uint8", crs=UTM,
                       transform=from_origin(x - 32, y + 32, 1, 1), QUALITY=100, REVERSIBLE=True) as d:
        d.write(a)
    with rasterio.open(tmp_path / "export.png", "w", driver="PNG", width=64, height=64, count=3, dtype="uint8") as d:
        d.write(a)
    (tmp_path / "export.pgw").write_text(f"1\n0\n0\n-1\n{x - 31.5}\n{y + 31.5}\n")
    (tmp_path / "export.prj").write_text(CRS(UTM).to_wkt(version="WKT1_ESRI"))
    with rasterio.open(tmp_path / "plot.png", "w", driver="PNG", width=8, height=8, count=1, dtype="uint8") as d:
        d.write(np.zeros((1, 8, 8), "uint8"))          # a picture without a world file: not imagery
    errors: list = []
    scenes = find_scenes(tmp_path, errors=errors)
    assert sorted(Path(s.path).name for s in scenes) == ["IMG_PHR1A_PMS_202304140215306_ORT_R1C1.JP2", "export.png"]
    assert not errors
    png = next(s for s in scenes if s.path.endswith(".png"))
    assert png.crs == UTM and png.gsd_m == pytest.approx(1.0) and png.roles == ("red", "green", "blue")
    jp2 = next(s for s in scenes if s.path.endswith(".JP2"))
    assert jp2.acquired == datetime(2023, 4, 14, 2, 15, 30, tzinfo=timezone.utc)


def test_zipped_sentinel2_safe_is_one_scene(tmp_path):
    import zipfile

    from monitor.imagery import read_chip

    safe = _s2_safe(tmp_path / "unzipped")
    z = tmp_path / "dl" / (safe.name[:-5] + ".zip")
    z.parent.mkdir()
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(safe.rglob("*")):
            if f.is_file():
                zf.write(f, str(f.relative_to(safe.parent)))
    scenes = find_scenes(z)
    assert len(scenes) == 1 and scenes[0].id == safe.name[:-5]
    s = scenes[0]
    assert s.bands[0].href.startswith("/vsizip/") and s.roles == ("red", "green", "blue", "nir", "mask")
    assert s.bands[0].offset == pytest.approx(-0.1) and s.properties["view:sun_azimuth"] == 151.25
    assert [x.id for x in find_scenes(z.parent)] == [s.id]
    chip = read_chip(open_scene(z), _aoi(half_deg=0.003))
    assert np.median(chip.band("blue")) == pytest.approx(0.04, abs=1e-4)
    bad = tmp_path / "dl" / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(SceneError, match="broken.zip: not a readable zip archive"):
        find_scenes(bad)


def test_sentinel2_baseline_4_items_without_raster_bands_get_the_offset(tmp_path):
    for k in ("B02", "B03", "B04", "B08", "TCI"):
        write(tmp_path / f"{k}.tif", dtype="uint8" if k == "TCI" else "uint16", count=3 if k == "TCI" else 1)

    def item(baseline, name):
        assets = {cn: {"href": f"./{k}.tif", "type": "image/tiff", "roles": ["data"],
                       "eo:bands": [{"name": k, "common_name": cn}]}
                  for k, cn in [("B02", "blue"), ("B03", "green"), ("B04", "red"), ("B08", "nir")]}
        assets["visual"] = {"href": "./TCI.tif", "type": "image/tiff", "roles": ["visual"]}
        return _item(tmp_path, assets, props={"platform": "Sentinel-2A", "s2:processing_baseline": baseline},
                     name=name)

    new = open_scene(item("05.09", "new"))
    assert {(b.scale, b.offset) for b in new.bands} == {(1e-4, -0.1)}
    old = open_scene(item("03.01", "old"))
    assert {(b.scale, b.offset) for b in old.bands} == {(None, None)}


@pytest.mark.parametrize("descriptions,roles", [
    (["Band 3 - Red", "Band 2 - Green", "Band 1 - Blue", "Near Infrared"], ("red", "green", "blue", "nir")),
    (["Blue (B2, 490 nm)", "Green (B3)", "Red (B4)", "Red Edge (B5)", "NIR1"], ("blue", "green", "red", "nir")),
    (["Coastal Blue", "Blue", "Green", "Red"], ("blue", "green", "red")),
])
def test_free_text_band_descriptions(tmp_path, descriptions, roles):
    s = open_scene(write(tmp_path / "d.tif", count=len(descriptions), dtype="uint16", descriptions=descriptions))
    assert s.roles == roles


def test_ambiguous_descriptions_are_refused_in_one_line(tmp_path):
    p = write(tmp_path / "amb.tif", count=2, dtype="uint16", descriptions=["red green", "band x"])
    with pytest.raises(SceneError) as e:
        open_scene(p)
    assert "\n" not in str(e.value) and "amb.tif: unsupported band layout" in str(e.value)


def test_band_selection_applies_to_band_file_scenes(tmp_path):
    _s2_safe(tmp_path)
    (s,) = find_scenes(tmp_path, bands=["red", "nir"])
    assert s.roles == ("red", "nir", "mask")
