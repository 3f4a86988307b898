"""Synthetic scenes: truth matches the render, files carry the metadata the loaders read."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pystac
import pytest
import rasterio
import shapely
from shapely.geometry import shape

from monitor.errors import InputError
from monitor.synth import (demo_port_aoi, demo_rail_aoi, render_port_scene, render_rail_scene, track_capacity,
                           write_scene)
from monitor.synth.archive import archive_plan, generate_archive
from monitor.synth.scenario import load_scenario
from monitor.synth.texture import sun_position


@pytest.fixture(scope="module")
def rail_aoi():
    return demo_rail_aoi()


@pytest.fixture(scope="module")
def port_aoi():
    return demo_port_aoi()


@pytest.fixture(scope="module")
def rail_scene(rail_aoi):
    return render_rail_scene(rail_aoi, gsd_m=0.5, when="2024-06-17", seed=7, cars=30)


def test_railcars_lie_on_tracks_inside_aoi(rail_scene, rail_aoi):
    u = rail_aoi.to_crs()
    tracks = {f.id: f.geometry for f in u.tracks}
    assert rail_scene.counts() == {"railcar": 30}
    assert rail_scene.crs == rail_aoi.utm_crs
    for t in rail_scene.truth:
        assert t.cls == "railcar" and t.type in ("gondola", "tank", "boxcar", "flat", "locomotive")
        assert u.boundary.buffer(1).contains(t.polygon)
        # the car's centre is on its track (chord of a curve: within 0.3 m)
        assert tracks[t.track].distance(t.polygon.centroid) < 0.3
        assert 2.9 < t.width_m < 3.3 and 10 < t.length_m < 35
    polys = [t.polygon for t in rail_scene.truth]
    tree = shapely.STRtree(polys)
    pairs = tree.query(polys, predicate="overlaps")
    assert pairs.shape[1] == 0  # no two cars overlap


def test_cars_are_visible_in_pixels(rail_scene):
    """Pixels inside car bodies differ from the empty track next to them."""
    from rasterio.features import rasterize
    m = rasterize([(t.polygon, 1) for t in rail_scene.truth], out_shape=rail_scene.shape,
                  transform=rail_scene.transform).astype(bool)
    red = rail_scene.band("red").astype(float)
    ring = rasterize([(t.polygon.buffer(6).difference(t.polygon.buffer(1.5)), 1) for t in rail_scene.truth],
                     out_shape=rail_scene.shape, transform=rail_scene.transform).astype(bool) & ~m
    area_px = sum(t.polygon.area for t in rail_scene.truth) / 0.5 ** 2
    assert abs(m.sum() - area_px) < 0.1 * area_px
    # car pixels depart from the surrounding ballast by > 0.03 reflectance on average
    assert np.abs(red[m] - np.median(red[ring])).mean() > 300


def test_dict_counts_and_capacity_cap(rail_aoi):
    cap = track_capacity(rail_aoi)
    s = render_rail_scene(rail_aoi, gsd_m=2.0, when="2024-06-17", seed=1,
                          cars={"gondola": cap + 50, "locomotive": 2})
    assert s.meta["requested"]["gondola"] == cap + 50
    assert s.meta["dropped"] > 0
    assert s.counts()["railcar"] + s.meta["dropped"] == cap + 52
    assert s.bands.shape[1:] == (int(np.ceil(s.bands.shape[1])), s.bands.shape[2])


def test_determinism(rail_aoi):
    a = render_rail_scene(rail_aoi, gsd_m=1.0, when="2023-10-05", seed=3, cars=12, cloud=0.3)
    b = render_rail_scene(rail_aoi, gsd_m=1.0, when="2023-10-05", seed=3, cars=12, cloud=0.3)
    c = render_rail_scene(rail_aoi, gsd_m=1.0, when="2023-10-05", seed=4, cars=12, cloud=0.3)
    assert np.array_equal(a.bands, b.bands)
    assert [t.polygon.wkt for t in a.truth] == [t.polygon.wkt for t in b.truth]
    assert not np.array_equal(a.bands, c.bands)


def test_same_seed_same_bytes_with_or_without_cached_scenery(rail_aoi, port_aoi):
    from monitor.synth.land import clear_cache
    for render, aoi, kw in ((render_rail_scene, rail_aoi, {"cars": 20}), (render_port_scene, port_aoi, {"ships": 6})):
        clear_cache()
        a = render(aoi, gsd_m=1.5, when="2023-02-05", seed=3, cloud=0.4, static_seed=9, **kw)  # builds the scenery
        b = render(aoi, gsd_m=1.5, when="2023-02-05", seed=3, cloud=0.4, static_seed=9, **kw)  # from the cache
        c = render(aoi, gsd_m=1.5, when="2023-02-17", seed=4, cloud=0.4, static_seed=9, **kw)
        clear_cache()
        d = render(aoi, gsd_m=1.5, when="2023-02-17", seed=4, cloud=0.4, static_seed=9, **kw)
        assert np.array_equal(a.bands, b.bands) and np.array_equal(c.bands, d.bands)
        assert not np.array_equal(a.bands, c.bands)
    clear_cache()


def test_moving_objects_drawn_in_windows_equal_a_whole_scene_render(rail_aoi):
    """Cars are drawn on windows of the cached scenery: same pixels as drawing them on the whole scene."""
    from monitor.synth import land
    from monitor.synth.rail import draw_cars, _car_extent
    from monitor.synth.texture import Grid, blur, block_mean, rng_for
    s = render_rail_scene(rail_aoi, gsd_m=0.5, when="2024-06-17", seed=7, cars=30)
    out = Grid(s.transform.c, s.transform.f, 0.5, s.shape[1], s.shape[0])
    raw = rng_for(1, "t").random((4,) + out.shape, dtype=np.float32) * 0.3
    cars = [dict(polygon=t.polygon, height=4.0, type=t.type, cx=t.polygon.centroid.x, cy=t.polygon.centroid.y,
                 heading=np.radians(90 - t.heading_deg), length=t.length_m, width=t.width_m, colour="grey",
                 shade=1.0, load="empty", flatload="", container=0) for t in s.truth]
    scenery = land.make_scenery(out, out, 1, 0.7, raw.copy())
    # each window draws its own cars; a whole-scene draw needs the same random stream per window, so use
    # one call per window in both: the cars of each merged window, in order
    got = land.compose(scenery, [_car_extent(c, 150, 40) for c in cars],
                       lambda win, sub, idx: draw_cars(win, sub, np.random.default_rng(min(idx)),
                                                       [cars[i] for i in idx], 150, 40))
    full = raw.copy()
    ext = [_car_extent(c, 150, 40) for c in cars]
    seen_windows = []
    land.compose(land.make_scenery(out, out, 1, 0.7, raw.copy()), ext,
                 lambda win, sub, idx: seen_windows.append(list(idx)))
    for idx in seen_windows:
        draw_cars(full, out, np.random.default_rng(min(idx)), [cars[i] for i in idx], 150, 40)
    want = blur(block_mean(full, 1), 0.7)
    assert np.allclose(got, want, atol=1e-6)
    assert not np.allclose(got, blur(raw, 0.7), atol=1e-3)  # the cars are there


def test_blur_is_scipy_gaussian():
    from scipy import ndimage
    from monitor.synth.texture import blur
    x = np.random.default_rng(0).random((2, 67, 45), dtype=np.float32)
    for psf in (0.5, 0.9, 1.7):
        want = np.stack([ndimage.gaussian_filter(b, psf, truncate=2.5) for b in x])
        assert np.abs(blur(x, psf) - want).max() < 1e-5


def test_vessels_on_water(port_aoi):
    u = port_aoi.to_crs()
    water = shapely.union_all([f.geometry for f in u.water])
    for sensor, gsd in (("optical", 1.0), ("sar", 5.0)):
        s = render_port_scene(port_aoi, gsd_m=gsd, when="2023-10-19", seed=2, ships=10, lengths=[115], sensor=sensor)
        assert s.counts()["vessel"] + s.meta["dropped"] == 11
        assert any(abs(t.length_m - 115) < 1e-6 for t in s.truth)
        for t in s.truth:
            assert t.cls == "vessel" and t.type in ("small", "medium", "large", "very_large")
            assert water.buffer(3).contains(t.polygon)
        moor = {t.props["moored"] for t in s.truth}
        assert "berth" in moor
    assert s.roles == ("vv",) and s.bands.dtype == np.float32 and (s.bands > 0).all()


def test_ships_are_visible_in_pixels(port_aoi):
    """Ships (drawn on windows of the cached scenery) stand out of the water around them."""
    from rasterio.features import rasterize
    s = render_port_scene(port_aoi, gsd_m=1.0, when="2023-10-19", seed=2, ships={"medium": 4, "large": 2},
                          static_seed=1)
    hull = rasterize([(t.polygon.buffer(-1.0), 1) for t in s.truth], out_shape=s.shape,
                     transform=s.transform).astype(bool)
    u = port_aoi.to_crs()
    water = rasterize([(f.geometry.buffer(-8), 1) for f in u.water], out_shape=s.shape,
                      transform=s.transform).astype(bool)
    near = rasterize([(t.polygon.buffer(40), 1) for t in s.truth], out_shape=s.shape,
                     transform=s.transform).astype(bool)
    ring = water & near & ~rasterize([(t.polygon.buffer(12), 1) for t in s.truth], out_shape=s.shape,
                                     transform=s.transform).astype(bool)
    red = s.band("red").astype(float)
    assert hull.sum() > 500 and ring.sum() > 500
    assert np.abs(red[hull] - np.median(red[ring])).mean() > 300


def test_visual_uint8_product(rail_aoi):
    a = render_rail_scene(rail_aoi, gsd_m=2.0, when="2024-06-17", seed=5, cars=10, dtype="uint8", haze=0.1)
    b = render_rail_scene(rail_aoi, gsd_m=2.0, when="2024-06-17", seed=5, cars=10, dtype="float32", haze=0.1)
    assert a.bands.dtype == np.uint8 and a.bands.min() >= 1
    want = np.clip(np.clip(b.bands, 0, None) / 0.45, 0, 1) ** (1 / 1.6) * 254 + 1  # gamma 1/1.6, 0.45 -> 255
    assert np.abs(a.bands.astype(float) - want).max() <= 1.5


def test_sar_ships_brighter_than_water(port_aoi):
    s = render_port_scene(port_aoi, gsd_m=5.0, when="2023-10-19", seed=5, ships={"large": 2}, sensor="sar", looks=4)
    from rasterio.features import rasterize
    u = port_aoi.to_crs()
    ships = rasterize([(t.polygon, 1) for t in s.truth], out_shape=s.shape, transform=s.transform).astype(bool)
    water = rasterize([(f.geometry, 1) for f in u.water], out_shape=s.shape, transform=s.transform).astype(bool)
    open_water = water & ~rasterize([(t.polygon.buffer(30), 1) for t in s.truth], out_shape=s.shape,
                                    transform=s.transform).astype(bool)
    assert np.median(s.bands[0][ships]) > 10 * np.median(s.bands[0][open_water])


def test_write_scene_cog_stac_truth(tmp_path, rail_scene):
    p = write_scene(rail_scene, tmp_path, "yard")
    with rasterio.open(p) as ds:
        assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"  # GDAL's mark of a valid COG layout
        assert ds.overviews(1) and ds.nodata == 0
        full = ds.read(1, window=((0, 64), (0, 64))).astype(float)
    with rasterio.open(p, overview_level=0) as ov:  # overviews are 2 x 2 averages of the full resolution
        mean2 = full.reshape(32, 2, 32, 2).mean(axis=(1, 3))
        err = np.abs(ov.read(1, window=((0, 32), (0, 32))) - mean2)
        assert err.mean() < 1 and err.max() < 5  # odd sizes: GDAL's ratio is not exactly 2
    with rasterio.open(p) as ds:
        assert ds.descriptions == ("red", "green", "blue", "nir")
        assert ds.tags()["TIFFTAG_DATETIME"] == "2024:06:17 " + rail_scene.acquired.strftime("%H:%M:%S")
        assert ds.tags()["ACQUISITIONDATETIME"].startswith("2024-06-17T")
        assert ds.crs.to_epsg() == rail_scene.crs.to_epsg()
        assert ds.count == 4 and ds.dtypes[0] == "uint16"
    item = pystac.Item.from_file(str(tmp_path / "yard.json"))
    assert item.datetime == rail_scene.acquired
    raw = json.loads((tmp_path / "yard.json").read_text())
    assert raw["properties"]["proj:epsg"] == rail_scene.crs.to_epsg()
    assert item.properties["proj:code"] == f"EPSG:{rail_scene.crs.to_epsg()}"
    assert item.properties["gsd"] == 0.5
    assert [b["common_name"] for b in item.properties["eo:bands"]] == ["red", "green", "blue", "nir"]
    assert item.assets["image"].href == "yard.tif"
    truth = json.loads((tmp_path / "yard.truth.geojson").read_text())
    assert len(truth["features"]) == 30
    f0 = truth["features"][0]
    assert {"class", "type", "track", "length_m", "width_m"} <= set(f0["properties"])
    lon, lat = shape(f0["geometry"]).centroid.coords[0]
    assert 129 < lon < 132 and 41 < lat < 44


def test_write_sar_stac(tmp_path, port_aoi):
    s = render_port_scene(port_aoi, gsd_m=10.0, when="2024-01-03", seed=1, ships=3, sensor="sar")
    write_scene(s, tmp_path, "sar")
    item = pystac.Item.from_file(str(tmp_path / "sar.json"))
    assert item.properties["sar:polarizations"] == ["VV"]
    with rasterio.open(tmp_path / "sar.tif") as ds:
        assert ds.descriptions == ("vv",) and ds.dtypes[0] == "float32"


def test_sun_follows_date_and_latitude():
    az_s, el_s = sun_position(datetime(2024, 6, 21, 3, 0, tzinfo=timezone.utc), 42.4, 130.6)
    az_w, el_w = sun_position(datetime(2024, 12, 21, 3, 0, tzinfo=timezone.utc), 42.4, 130.6)
    assert 65 < el_s < 72 and 20 < el_w < 26  # noon-ish at 130.6 E: 90-42.4+-23.4
    assert 150 < az_w < 210


def test_scenario_and_archive(tmp_path, rail_aoi):
    sc = load_scenario()
    peak = sc.expected("tumangang", "rail_yard", "2024-06-17")
    assert peak["gondola"] == 175 and peak["tank"] == 66 and peak["boxcar"] == 14 and peak["locomotive"] == 6
    shut = sc.expected("tumangang", "rail_yard", "2021-06-01")
    assert sum(shut.values()) <= 2
    plan = archive_plan(rail_aoi, "2023-01-01", "2023-03-01", revisit_days=10, seed=1)
    assert plan == archive_plan(rail_aoi, "2023-01-01", "2023-03-01", revisit_days=10, seed=1)
    paths = generate_archive(rail_aoi, "2023-01-01", "2023-01-31", tmp_path, gsd_m=3.0, revisit_days=8, seed=1)
    assert paths and all(p.exists() for p in paths)
    doc = json.loads((tmp_path / "archive.json").read_text())
    assert len(doc["scenes"]) == len(paths)
    assert (tmp_path / "truth_counts.csv").read_text().startswith("date,name,class,count")


def test_archive_same_files_with_one_or_two_workers(tmp_path, rail_aoi):
    kw = dict(gsd_m=3.0, revisit_days=12, seed=2)
    one = generate_archive(rail_aoi, "2023-02-20", "2023-05-10", tmp_path / "w1", workers=1, **kw)
    two = generate_archive(rail_aoi, "2023-02-20", "2023-05-10", tmp_path / "w2", workers=2, **kw)
    assert len(one) >= 4 and [p.name for p in one] == [p.name for p in two]  # spans winter and spring scenery
    for p, q in zip(one, two):
        assert p.read_bytes() == q.read_bytes()
        assert (p.with_suffix(".truth.geojson")).read_text() == (q.with_suffix(".truth.geojson")).read_text()


def test_bad_inputs(tmp_path, rail_aoi):
    with pytest.raises(InputError):
        render_rail_scene(rail_aoi, gsd_m=0)
    with pytest.raises(InputError):
        render_port_scene(demo_port_aoi(), sensor="lidar")
    bad = tmp_path / "s.json"
    bad.write_text('{"aois": {"x": {"keyframes": [{"date": "nope"}]}}}')
    with pytest.raises(InputError, match="s.json"):
        load_scenario(bad)
    with pytest.raises(InputError):
        archive_plan(rail_aoi, "2024-01-01", "2023-01-01")


def test_cli(tmp_path, rail_aoi):
    from typer.testing import CliRunner
    from monitor.cli import app
    f = tmp_path / "yard.geojson"
    f.write_text(json.dumps(rail_aoi.to_geojson()))
    r = CliRunner().invoke(app, ["synth", "scene", "--aoi", str(f), "--date", "2024-06-17", "--gsd", "2",
                                 "--cars", "10", "--seed", "1", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / "demo-yard_20240617_optical.tif").exists()
    r = CliRunner().invoke(app, ["synth", "scene", "--aoi", "no-such-aoi", "--date", "2024-06-17", "--out", str(tmp_path)])
    assert r.exit_code == 2
    r = CliRunner().invoke(app, ["synth", "scene", "--aoi", str(f), "--date", "17/06/2024", "--out", str(tmp_path)])
    assert r.exit_code == 2
