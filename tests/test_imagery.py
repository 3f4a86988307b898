"""read_chip: windowed, reprojected, masked reads of an AOI from COGs and STAC items.

Every raster is written by rasterio into tmp_path: a 1.2 km square scene
around Rajin (130.30 E, 42.25 N, UTM 52N) at 2 m, with a bright 40 m
square target at the AOI centre, in UTM, EPSG:4326 and EPSG:3857.
"""

from __future__ import annotations

import glob
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin
from shapely.geometry import box

from monitor.aoi import AOI
from monitor.errors import SceneError
from monitor.imagery import read_chip
from monitor.scenes import open_scene

LON, LAT = 130.30, 42.25
UTM = "EPSG:32652"
HALF_M = 600.0   # scene half-size, metres
GSD = 2.0        # scene pixel size, ground metres
TARGET = 20.0    # half-size of the bright target, metres


def _aoi(half_m=200.0, lon=LON, lat=LAT, kind="port") -> AOI:
    """A square AOI of 2 x half_m metres centred on (lon, lat)."""
    tr = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    tf = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
    x, y = tf.transform(lon, lat)
    xs, ys = tr.transform([x - half_m, x + half_m, x + half_m, x - half_m],
                          [y - half_m, y - half_m, y + half_m, y + half_m])
    from shapely.geometry import Polygon

    return AOI(id="testport", name="Test port", country="KP", kind=kind,
               boundary=Polygon(list(zip(xs, ys))))


def _grid(epsg: str, half_m=HALF_M, gsd=GSD, lon=LON, lat=LAT):
    """(transform, width, height) of a square scene in ``epsg`` around (lon, lat)."""
    x, y = Transformer.from_crs("EPSG:4326", epsg, always_xy=True).transform(lon, lat)
    if epsg == "EPSG:4326":
        rx = gsd / (111320.0 * math.cos(math.radians(lat)))
        ry = gsd / 110950.0
        hx, hy = half_m / (111320.0 * math.cos(math.radians(lat))), half_m / 110950.0
    elif epsg == "EPSG:3857":
        k = 1.0 / math.cos(math.radians(lat))
        rx = ry = gsd * k
        hx = hy = half_m * k
    else:
        rx = ry = gsd
        hx = hy = half_m
    w, h = int(round(2 * hx / rx)), int(round(2 * hy / ry))
    return from_origin(x - hx, y + hy, rx, ry), w, h


def _target_image(w, h, count=1, dtype="uint8", base=40, peak=200):
    """Bands with a bright square (2 x TARGET metres) at the centre."""
    a = np.full((count, h, w), base, dtype=np.float64)
    r = int(round(TARGET / GSD))
    a[:, h // 2 - r:h // 2 + r, w // 2 - r:w // 2 + r] = peak
    for i in range(count):
        a[i] += i * 5
    return a.astype(dtype)


def write_tif(path, data, epsg, transform, *, nodata=None, mask=None, descriptions=None, tags=None,
              colorinterp=None, overviews=(2, 4), cog=False, photometric=None):
    """Write a tiled, compressed GeoTIFF (a COG when ``cog``) into ``path``."""
    count, h, w = data.shape
    prof = dict(driver="GTiff", width=w, height=h, count=count, dtype=data.dtype.name, crs=epsg,
                transform=transform, tiled=True, blockxsize=128, blockysize=128, compress="deflate",
                nodata=nodata)
    if photometric:
        prof["photometric"] = photometric
    tmp = str(path) + ".tmp.tif" if cog else str(path)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(tmp, "w", **prof) as d:
            d.write(data)
            if mask is not None:
                d.write_mask(mask.astype("uint8") * 255)
            if descriptions:
                for i, s in enumerate(descriptions, start=1):
                    d.set_band_description(i, s)
            if colorinterp:
                d.colorinterp = colorinterp
            if tags:
                d.update_tags(**tags)
            if overviews:
                d.build_overviews(list(overviews), rasterio.enums.Resampling.average)
        if cog:
            from rasterio.shutil import copy

            copy(tmp, str(path), driver="COG", compress="deflate", blocksize=128)
            os.remove(tmp)
    return str(path)


def _scene(tmp_path, epsg=UTM, count=1, dtype="uint8", name="scene.tif", **kw):
    tr, w, h = _grid(epsg)
    data = kw.pop("data", None)
    if data is None:
        data = _target_image(w, h, count, dtype)
    return write_tif(tmp_path / name, data, epsg, tr, **kw)


def _target_offset_m(chip, role=None) -> float:
    """Distance (m) from the bright target's centroid in the chip to the AOI centre."""
    b = chip.band(role) if role else chip.bands[0]
    thr = (np.nanmax(b[chip.valid]) + np.nanmin(b[chip.valid])) / 2
    rows, cols = np.nonzero((b > thr) & chip.valid)
    x, y = chip.transform @ (cols.mean() + 0.5, rows.mean() + 0.5)
    c = chip.local_aoi.boundary.centroid
    return math.hypot(x - c.x, y - c.y)


# --------------------------------------------------------------------------
# CRSs, resolution, geolocation
# --------------------------------------------------------------------------

@pytest.mark.parametrize("epsg", [UTM, "EPSG:4326", "EPSG:3857"])
def test_chip_in_aoi_utm_zone_at_native_ground_resolution(tmp_path, epsg):
    aoi = _aoi()
    chip = read_chip(open_scene(_scene(tmp_path, epsg, cog=True)), aoi)
    assert chip.crs.to_epsg() == 32652 == aoi.utm_crs.to_epsg()
    assert chip.gsd_m == pytest.approx(GSD, rel=0.02)
    assert chip.transform.a == pytest.approx(chip.gsd_m) and chip.transform.e == pytest.approx(-chip.gsd_m)
    # AOI 400 m + 2 x 50 m margin at ~2 m
    assert chip.shape[0] == pytest.approx(500 / chip.gsd_m, abs=3)
    assert chip.bands.dtype == np.float32 and chip.roles == ("gray",)
    assert chip.coverage == pytest.approx(1.0)
    assert chip.valid.all()
    assert _target_offset_m(chip) < 1.5 * GSD


def test_margin_and_explicit_crs(tmp_path):
    path = _scene(tmp_path)
    aoi = _aoi()
    c0 = read_chip(path, aoi, margin_m=0)
    c1 = read_chip(path, aoi, margin_m=100)
    assert c1.shape[0] - c0.shape[0] == pytest.approx(200 / GSD, abs=2)
    c3 = read_chip(path, aoi, crs="EPSG:3857", margin_m=0)
    assert c3.crs.to_epsg() == 3857 and c3.gsd_m == pytest.approx(GSD, rel=0.02)


@pytest.mark.parametrize("dtype,base,peak", [("uint8", 40, 200), ("uint16", 400, 9000), ("float32", 0.04, 0.31)])
def test_dtypes_become_float32_with_values_kept(tmp_path, dtype, base, peak):
    tr, w, h = _grid(UTM)
    data = _target_image(w, h, 1, dtype, base, peak)
    chip = read_chip(write_tif(tmp_path / "s.tif", data, UTM, tr), _aoi(), resampling="nearest")
    assert chip.bands.dtype == np.float32
    assert chip.bands.max() == pytest.approx(peak, rel=1e-5)
    assert np.median(chip.bands) == pytest.approx(base, rel=1e-5)


@pytest.mark.parametrize("count,dtype,roles,kw", [
    (1, "uint8", ("gray",), {}),
    (3, "uint8", ("red", "green", "blue"), {"photometric": "RGB"}),
    (3, "uint16", ("red", "green", "blue"), {}),
    (4, "uint16", ("red", "green", "blue", "nir"), {}),
    (4, "uint8", ("red", "green", "blue", "nir"), {"descriptions": ["blue", "green", "red", "nir"]}),
    # GDAL writes 4-band 8-bit files as RGBA: the 4th band is an alpha mask, not a band
    (4, "uint8", ("red", "green", "blue"), {}),
])
def test_band_counts_and_roles(tmp_path, count, dtype, roles, kw):
    chip = read_chip(_scene(tmp_path, count=count, dtype=dtype, **kw), _aoi())
    assert set(chip.roles) == set(roles) and len(chip.roles) == len(roles)
    assert chip.bands.shape[0] == len(roles)
    if "descriptions" in kw:  # band i was written with value base + 5 i
        assert np.median(chip.band("blue")) == pytest.approx(40)
        assert np.median(chip.band("red")) == pytest.approx(50)


def test_band_selection(tmp_path):
    path = _scene(tmp_path, count=4, descriptions=["red", "green", "blue", "nir"])
    chip = read_chip(path, _aoi(), bands=["nir", "red"])
    assert chip.roles == ("nir", "red")
    assert np.median(chip.band("nir")) == pytest.approx(55)
    with pytest.raises(SceneError, match="no band vv"):
        read_chip(path, _aoi(), bands=["vv"])


def test_sar_band_descriptions(tmp_path):
    path = _scene(tmp_path, count=2, dtype="float32", descriptions=["vv", "vh"])
    chip = read_chip(path, _aoi())
    assert chip.sensor == "sar" and chip.roles == ("vv", "vh")


# --------------------------------------------------------------------------
# masks and coverage
# --------------------------------------------------------------------------

def _west_half_invalid(w, h):
    m = np.ones((h, w), bool)
    m[:, : w // 2] = False
    return m


@pytest.mark.parametrize("variant", ["nodata", "internal_mask", "alpha"])
def test_masked_west_half_halves_coverage(tmp_path, variant):
    tr, w, h = _grid(UTM)
    data = _target_image(w, h, 3 if variant == "alpha" else 1)
    keep = _west_half_invalid(w, h)
    kw = {}
    if variant == "nodata":
        data[:, ~keep] = 0
        kw["nodata"] = 0
    elif variant == "internal_mask":
        kw["mask"] = keep
    else:
        alpha = (keep * 255).astype("uint8")[None]
        data = np.concatenate([data, alpha])  # GDAL writes 4-band 8-bit as RGBA
    path = write_tif(tmp_path / f"{variant}.tif", data, UTM, tr, **kw)
    if variant == "alpha":
        with rasterio.open(path) as s:
            assert s.colorinterp[3] == ColorInterp.alpha
    scene = open_scene(path)
    chip = read_chip(scene, _aoi())
    assert "alpha" not in chip.roles
    assert chip.coverage == pytest.approx(0.5, abs=0.02)
    # the west columns are invalid, the east ones valid
    assert not chip.valid[:, :20].any() and chip.valid[:, -20:].all()


def test_scene_partly_over_aoi_masks_outside(tmp_path):
    # a scene without nodata whose east edge runs through the AOI centre
    tr, w, h = _grid(UTM)
    x0, y0 = tr.c, tr.f
    tr2 = from_origin(x0 - HALF_M, y0, GSD, GSD)
    path = write_tif(tmp_path / "west.tif", _target_image(w, h), UTM, tr2)
    chip = read_chip(path, _aoi())
    assert chip.coverage == pytest.approx(0.5, abs=0.03)
    assert chip.valid[:, :10].all() and not chip.valid[:, -10:].any()


def test_cloud_mask_band_clears_valid(tmp_path):
    tr, w, h = _grid(UTM)
    data = _target_image(w, h, 4, "uint16")
    cloud = np.zeros((h, w), "uint16")
    cloud[: h // 2] = 1  # north half cloudy
    data[3] = cloud
    path = write_tif(tmp_path / "c.tif", data, UTM, tr, descriptions=["red", "green", "blue", "cloud"])
    scene = open_scene(path)
    assert scene.roles == ("red", "green", "blue", "mask")
    chip = read_chip(scene, _aoi())
    assert chip.roles == ("red", "green", "blue")
    assert chip.coverage == pytest.approx(0.5, abs=0.02)
    assert not chip.valid[:10].any() and chip.valid[-10:].all()


# --------------------------------------------------------------------------
# overviews, multi-file STAC items
# --------------------------------------------------------------------------

def test_coarser_gsd_reads_overview_level(tmp_path):
    path = _scene(tmp_path, cog=True, overviews=(2, 4))
    with rasterio.open(path) as s:
        assert s.overviews(1) == [2, 4] and s.profile["tiled"]
    aoi = _aoi()
    c8 = read_chip(path, aoi, gsd_m=8.0)
    assert c8.gsd_m == 8.0 and list(c8.meta["overview_level"].values()) == [1]  # the x4 overview
    c5 = read_chip(path, aoi, gsd_m=5.0)
    assert list(c5.meta["overview_level"].values()) == [0]                      # the x2 overview
    c2 = read_chip(path, aoi)
    assert list(c2.meta["overview_level"].values()) == [None]
    assert c8.shape[0] == pytest.approx(c2.shape[0] / 4, abs=2)
    assert _target_offset_m(c8) < 8.0


def _stac_item(tmp_path, name, assets: dict, dt="2024-05-01T02:10:00Z", extra_props=None):
    item = {
        "type": "Feature", "stac_version": "1.0.0", "id": name,
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
        "geometry": None, "bbox": None,
        "properties": {"datetime": dt, **(extra_props or {})},
        "links": [], "assets": assets,
    }
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(item))
    return str(p)


def test_stac_item_one_asset_per_band_stacked_on_finest_grid(tmp_path):
    # red/green/blue at 2 m, nir at 4 m (as Sentinel-2 20 m vs 10 m bands)
    tr, w, h = _grid(UTM)
    assets = {}
    for i, (key, cn) in enumerate([("B04", "red"), ("B03", "green"), ("B02", "blue")]):
        write_tif(tmp_path / f"{key}.tif", _target_image(w, h, 1, "uint16", 400 + i, 3000), UTM, tr)
        assets[key] = {"href": f"./{key}.tif", "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                       "roles": ["data"], "eo:bands": [{"name": key, "common_name": cn}]}
    tr4, w4, h4 = _grid(UTM, gsd=4.0)
    nir = np.full((1, h4, w4), 700, "uint16")
    write_tif(tmp_path / "B08.tif", nir, UTM, tr4)
    assets["B08"] = {"href": "./B08.tif", "type": "image/tiff", "roles": ["data"],
                     "eo:bands": [{"name": "B08", "common_name": "nir"}]}
    assets["thumbnail"] = {"href": "./thumb.png", "type": "image/png", "roles": ["thumbnail"]}
    path = _stac_item(tmp_path, "s2-test", assets)
    scene = open_scene(path)
    assert scene.roles == ("red", "green", "blue", "nir")
    assert scene.gsd_m == pytest.approx(2.0)
    chip = read_chip(scene, _aoi())
    assert chip.gsd_m == pytest.approx(2.0)
    assert chip.roles == ("red", "green", "blue", "nir")
    assert np.median(chip.band("red")) == pytest.approx(400)
    assert np.median(chip.band("blue")) == pytest.approx(402)
    assert np.median(chip.band("nir")) == pytest.approx(700)
    assert _target_offset_m(chip, "red") < 1.5 * GSD
    assert chip.coverage == pytest.approx(1.0)


def test_stac_cloud_mask_asset(tmp_path):
    tr, w, h = _grid(UTM)
    write_tif(tmp_path / "vis.tif", _target_image(w, h, 3), UTM, tr, photometric="RGB")
    scl = np.full((1, h, w), 4, "uint8")   # vegetation
    scl[0, :, w // 2:] = 9                 # cloud, high probability (east half)
    write_tif(tmp_path / "scl.tif", scl, UTM, tr)
    path = _stac_item(tmp_path, "vis", {
        "visual": {"href": "./vis.tif", "type": "image/tiff", "roles": ["visual"]},
        "scl": {"href": "./scl.tif", "type": "image/tiff", "roles": ["data"]},
    })
    scene = open_scene(path)
    assert scene.roles == ("red", "green", "blue", "mask")
    chip = read_chip(scene, _aoi())
    assert chip.coverage == pytest.approx(0.5, abs=0.02)
    assert chip.valid[:, :10].all() and not chip.valid[:, -10:].any()


# --------------------------------------------------------------------------
# errors: one line naming the file
# --------------------------------------------------------------------------

def _one_line(err, name):
    s = str(err)
    assert "\n" not in s and name in s
    return s


def test_error_not_a_raster(tmp_path):
    p = tmp_path / "notes.tif"
    p.write_text("this is not an image\n")
    with pytest.raises(SceneError) as e:
        read_chip(str(p), _aoi())
    assert "not a raster" in _one_line(e.value, "notes.tif")


def test_error_truncated_file(tmp_path):
    path = _scene(tmp_path, cog=True)
    raw = Path(path).read_bytes()
    bad = tmp_path / "cut.tif"
    bad.write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(SceneError) as e:
        read_chip(str(bad), _aoi())
    assert "truncated" in _one_line(e.value, "cut.tif")


def test_error_corrupt_tiles(tmp_path):
    path = _scene(tmp_path, overviews=(), name="corrupt.tif")
    raw = bytearray(Path(path).read_bytes())
    # overwrite every compressed tile with garbage (the header stays intact)
    rng = np.random.default_rng(0)
    with rasterio.open(path) as s:
        nby, nbx = math.ceil(s.height / 128), math.ceil(s.width / 128)
        for by in range(nby):
            for bx in range(nbx):
                off = int(s.get_tag_item(f"BLOCK_OFFSET_{bx}_{by}", "TIFF", bidx=1))
                n = int(s.get_tag_item(f"BLOCK_SIZE_{bx}_{by}", "TIFF", bidx=1))
                raw[off:off + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    Path(path).write_bytes(bytes(raw))
    with pytest.raises(SceneError) as e:
        read_chip(path, _aoi())
    _one_line(e.value, "corrupt.tif")


def test_error_no_crs(tmp_path):
    tr, w, h = _grid(UTM)
    p = tmp_path / "nocrs.tif"
    with rasterio.open(p, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8", transform=tr) as d:
        d.write(_target_image(w, h))
    with pytest.raises(SceneError) as e:
        read_chip(str(p), _aoi())
    assert "no CRS" in _one_line(e.value, "nocrs.tif")


def test_error_no_georeference(tmp_path):
    p = tmp_path / "plain.tif"
    with rasterio.open(p, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8",
                       crs=UTM) as d:
        d.write(np.ones((1, 64, 64), "uint8"))
    with pytest.raises(SceneError) as e:
        open_scene(str(p))
    assert "georeferenc" in _one_line(e.value, "plain.tif")


def test_error_scene_misses_aoi(tmp_path):
    path = _scene(tmp_path, name="far.tif")
    with pytest.raises(SceneError) as e:
        read_chip(path, _aoi(lon=LON + 0.2))
    assert "does not cover AOI testport" in _one_line(e.value, "far.tif")


def test_error_all_nodata_in_aoi(tmp_path):
    tr, w, h = _grid(UTM)
    data = np.zeros((1, h, w), "uint8")
    data[0, :30] = 90  # data only along the north edge, outside the AOI
    path = write_tif(tmp_path / "empty.tif", data, UTM, tr, nodata=0)
    with pytest.raises(SceneError) as e:
        read_chip(path, _aoi())
    assert "no valid pixel in AOI" in _one_line(e.value, "empty.tif")


@pytest.mark.parametrize("count,kw", [(2, {}), (5, {}), (3, {"descriptions": ["red", "red", "blue"]})])
def test_error_unsupported_band_layout(tmp_path, count, kw):
    path = _scene(tmp_path, count=count, name=f"b{count}.tif", **kw)
    with pytest.raises(SceneError) as e:
        read_chip(path, _aoi())
    assert "unsupported band layout" in _one_line(e.value, f"b{count}.tif")


def test_missing_time_is_not_an_error_for_read_chip(tmp_path):
    scene = open_scene(_scene(tmp_path, name="undated.tif"))
    assert scene.acquired is None
    chip = read_chip(scene, _aoi())
    assert chip.scene is scene and chip.coverage == pytest.approx(1.0)


# --------------------------------------------------------------------------
# real Sentinel-2 scenes (read only; skipped where absent)
# --------------------------------------------------------------------------

# shared/ lies beside the project checkout (../shared); MONITOR_SHARED overrides.
SHARED = Path(os.environ.get("MONITOR_SHARED", Path(__file__).resolve().parents[2] / "shared"))
SEN2SHIPS = str(SHARED / "data" / "sen2ships" / "scenes")


def test_real_sentinel2_items_as_chips():
    items = sorted(glob.glob(f"{SEN2SHIPS}/*/item.json"))
    if not items:
        pytest.skip(f"no Sentinel-2 scenes under {SEN2SHIPS}")
    for p in items:
        scene = open_scene(p)
        assert scene.acquired is not None and scene.crs == "EPSG:3857"
        lon0, lat0, lon1, lat1 = scene.footprint.bounds
        # Web-Mercator 10 m pixels are 10 cos(lat) ground metres
        assert scene.gsd_m == pytest.approx(10 * math.cos(math.radians((lat0 + lat1) / 2)), rel=0.02)
        dx, dy = (lon1 - lon0) * 0.3, (lat1 - lat0) * 0.3
        aoi = AOI(id="box", name="box", country="-", kind="port",
                  boundary=box(lon0 + dx, lat0 + dy, lon1 - dx, lat1 - dy))
        chip = read_chip(scene, aoi)
        assert {"red", "green", "blue"} <= set(chip.roles)
        if "san_francisco" not in p:
            assert chip.roles == ("red", "green", "blue", "nir")
        assert chip.crs.to_epsg() == aoi.utm_crs.to_epsg()
        assert chip.coverage == pytest.approx(1.0)
        assert chip.gsd_m == pytest.approx(scene.gsd_m)
        assert all(float(chip.band(r).std()) > 0 for r in chip.roles)


def test_float_nan_is_invalid(tmp_path):
    tr, w, h = _grid(UTM)
    data = _target_image(w, h, 1, "float32", 0.05, 0.3)
    data[0, :, : w // 2] = np.nan
    chip = read_chip(write_tif(tmp_path / "nan.tif", data, UTM, tr), _aoi(), resampling="nearest")
    assert chip.coverage == pytest.approx(0.5, abs=0.02)
    assert np.isfinite(chip.bands[0][chip.valid]).all()


def test_landsat_qa_pixel_mask(tmp_path):
    tr, w, h = _grid(UTM)
    write_tif(tmp_path / "red.tif", _target_image(w, h, 1, "uint16", 8000, 20000), UTM, tr)
    qa = np.full((1, h, w), 21824, "uint16")    # clear land (bit 6 set)
    qa[0, : h // 2] = 22280                     # cloud (bit 3) + dilated cloud (bit 1) ...
    write_tif(tmp_path / "qa.tif", qa, UTM, tr)
    item = _stac_item(tmp_path, "ls9", {
        "red": {"href": "./red.tif", "type": "image/tiff", "roles": ["data"],
                "eo:bands": [{"name": "OLI_B4", "common_name": "red"}]},
        "qa_pixel": {"href": "./qa.tif", "type": "image/tiff", "roles": ["cloud", "cloud-shadow"]},
    })
    chip = read_chip(item, _aoi())
    assert chip.roles == ("red",)
    assert chip.coverage == pytest.approx(0.5, abs=0.02)
    assert not chip.valid[:10].any() and chip.valid[-10:].all()


def test_wide_clipped_areas_are_not_valid_but_white_roofs_are(tmp_path):
    """An 8-bit RGB scene: a 200 m cloud clipped at 255, a 4 m x 14 m white car roof at 255."""
    tr, w, h = _grid(UTM)
    rng = np.random.default_rng(0)
    a = (90 + 10 * rng.standard_normal((3, h, w))).clip(0, 254)
    a[:, 100:200, 100:200] = 255                       # cloud: 100 x 100 px at 2 m
    a[:, 400:402, 400:407] = 255                       # a white roof, 4 m x 14 m
    path = write_tif(tmp_path / "clouded.tif", a.astype("uint8"), UTM, tr,
                     descriptions=["red", "green", "blue"])
    chip = read_chip(open_scene(path), _aoi(half_m=590))
    cloud_centre = ~chip.transform * (tr * (150, 150))
    roof = ~chip.transform * (tr * (403.5, 401))
    assert not chip.valid[int(cloud_centre[1]), int(cloud_centre[0])]
    assert chip.valid[int(roof[1]), int(roof[0])]
    assert 0.02 < chip.meta["saturated_share"] < 0.05   # 200 m x 200 m of 1180 m x 1180 m
    assert chip.coverage < 0.99
    kept = read_chip(open_scene(path), _aoi(half_m=590), mask_saturated=False)
    assert kept.coverage == pytest.approx(1.0, abs=0.01)


def test_a_bright_scene_below_the_bit_depth_ceiling_is_not_clipped():
    from monitor.imagery import saturated_mask

    bands = np.full((3, 50, 50), 400.0, np.float32)     # uniform, at its maximum, but 400 is no ceiling
    assert not saturated_mask(bands, ("red", "green", "blue"), np.ones((50, 50), bool), 1.0).any()
    bands[:] = 4095.0                                  # 12-bit ceiling, everywhere
    assert saturated_mask(bands, ("red", "green", "blue"), np.ones((50, 50), bool), 1.0).all()
    assert not saturated_mask(bands, ("nir",), np.ones((50, 50), bool), 1.0).any()
