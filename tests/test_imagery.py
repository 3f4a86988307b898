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
from affine import Affine
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
    # GDAL flags the 4th band of a 4-band 8-bit file as alpha; one holding image values
    # (here 55 and 215, no 0/255 mask) is a fourth band, NIR (a true 0/255 alpha: see the masks tests)
    (4, "uint8", ("red", "green", "blue", "nir"), {}),
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


# --------------------------------------------------------------------------
# the imagery analysts have: grids, georeferences, side-cars, scaling, fill
# --------------------------------------------------------------------------

def _expected_coverage(chip, footprint_utm) -> float:
    """Share of the chip's AOI pixels whose centres lie inside ``footprint_utm``."""
    from rasterio.features import geometry_mask

    aoi_px = geometry_mask([chip.local_aoi.boundary], out_shape=chip.shape, transform=chip.transform, invert=True)
    inside = geometry_mask([footprint_utm], out_shape=chip.shape, transform=chip.transform, invert=True)
    return float((aoi_px & inside).sum() / aoi_px.sum())


def test_north_down_grid_is_read_the_right_way_up(tmp_path):
    tr, w, h = _grid(UTM)
    data = _target_image(w, h, 3)
    data[:, : h // 4] = 90   # a band along the north edge, to see which way is up
    flipped = data[:, ::-1, :].copy()
    down = Affine(tr.a, 0.0, tr.c, 0.0, -tr.e, tr.f + tr.e * h)   # row 0 is the south edge
    chip = read_chip(write_tif(tmp_path / "down.tif", flipped, UTM, down, overviews=()), _aoi(half_m=590), margin_m=0)
    assert chip.coverage == pytest.approx(1.0)
    assert _target_offset_m(chip) < 1.5 * GSD
    north, south = chip.bands[0][:20], chip.bands[0][-20:]
    assert np.median(north) == pytest.approx(90) and np.median(south) == pytest.approx(40)


def test_rotated_grid_covers_only_its_true_outline(tmp_path):
    """A 1.2 km scene rotated 30 degrees: the corners of its bounding box hold no data."""
    from shapely import affinity
    from shapely.geometry import box as sbox

    tr, w, h = _grid(UTM)
    cx, cy = tr * (w / 2, h / 2)
    rot = Affine.translation(cx, cy) * Affine.rotation(30) * Affine.scale(GSD, -GSD) * Affine.translation(-w / 2, -h / 2)
    path = write_tif(tmp_path / "rot.tif", _target_image(w, h), UTM, rot, overviews=())
    scene = open_scene(path)
    assert scene.gsd_m == pytest.approx(GSD)
    chip = read_chip(scene, _aoi(half_m=800))
    true_outline = affinity.rotate(sbox(cx - HALF_M, cy - HALF_M, cx + HALF_M, cy + HALF_M), 30, origin=(cx, cy))
    assert chip.coverage == pytest.approx(_expected_coverage(chip, true_outline), abs=0.01)
    assert chip.coverage < 0.6          # a bounding box would claim ~0.79
    assert _target_offset_m(chip) < 1.5 * GSD


def test_raster_in_the_next_utm_zone(tmp_path):
    tr, w, h = _grid("EPSG:32653")
    chip = read_chip(write_tif(tmp_path / "z53.tif", _target_image(w, h), "EPSG:32653", tr, overviews=()), _aoi())
    assert chip.crs.to_epsg() == 32652 and chip.coverage == pytest.approx(1.0)
    assert chip.gsd_m == pytest.approx(GSD, rel=0.02)
    assert _target_offset_m(chip) < 1.5 * GSD


@pytest.mark.parametrize("gcp_crs,n", [(UTM, 0), ("EPSG:4326", 7)])
def test_gcp_only_raster_is_warped_through_its_gcps(tmp_path, gcp_crs, n):
    """Five GCPs in the grid's own CRS, or a 7 x 7 lon/lat GCP grid (as Sentinel-1 GRD files carry)."""
    from rasterio.control import GroundControlPoint

    tr, w, h = _grid(UTM)
    pts = [(0, 0), (w, 0), (w, h), (0, h), (w / 2, h / 3)] if not n else \
        [(w * i / (n - 1), h * j / (n - 1)) for i in range(n) for j in range(n)]
    to = Transformer.from_crs(UTM, gcp_crs, always_xy=True)
    gcps = [GroundControlPoint(row=r, col=c, x=to.transform(*(tr * (c, r)))[0], y=to.transform(*(tr * (c, r)))[1])
            for c, r in pts]
    p = tmp_path / "gcps.tif"
    with rasterio.open(p, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8", gcps=gcps,
                       crs=gcp_crs) as d:
        d.write(_target_image(w, h))
    scene = open_scene(str(p))
    assert scene.properties["georef"] == "gcps" and scene.crs == gcp_crs
    assert scene.gsd_m == pytest.approx(GSD, rel=0.01)
    chip = read_chip(scene, _aoi())
    assert chip.meta["georef"] == "gcps" and chip.coverage == pytest.approx(1.0)
    assert _target_offset_m(chip) < 1.5 * GSD


def _rpc_scene(path, w=600, h=600):
    """A raster with RPCs only: a plain lon/lat grid around (LON, LAT), ~2 m pixels."""
    from rasterio.rpc import RPC

    z = [0.0] * 20
    half_lat, half_lon = HALF_M / 110950.0, HALF_M / (111320.0 * math.cos(math.radians(LAT)))
    rpc = RPC(height_off=0.0, height_scale=500.0, lat_off=LAT, lat_scale=half_lat, long_off=LON,
              long_scale=half_lon, line_off=h / 2, line_scale=h / 2, samp_off=w / 2, samp_scale=w / 2,
              line_num_coeff=[0.0, 0.0, -1.0] + z[3:], line_den_coeff=[1.0] + z[1:],
              samp_num_coeff=[0.0, 1.0] + z[2:], samp_den_coeff=[1.0] + z[1:])
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8", rpcs=rpc) as d:
        d.write(_target_image(w, h))
    return str(path)


def test_rpc_only_raster_is_warped_through_its_rpcs(tmp_path):
    scene = open_scene(_rpc_scene(tmp_path / "rpc.tif"))
    assert scene.properties["georef"] == "rpcs" and scene.crs == "EPSG:4326"
    assert scene.gsd_m == pytest.approx(GSD, rel=0.02)
    chip = read_chip(scene, _aoi())
    assert chip.meta["georef"] == "rpcs" and chip.coverage == pytest.approx(1.0)
    assert _target_offset_m(chip) < 2 * GSD


def test_black_collar_without_nodata_is_not_valid(tmp_path):
    """An export with a black (0) west quarter and no nodata; a small black roof stays valid."""
    tr, w, h = _grid(UTM)
    data = _target_image(w, h, 3)
    data[:, :, : w // 4] = 0
    data[:, 400:404, 400:406] = 0                     # an 8 m x 12 m black roof
    path = write_tif(tmp_path / "collar.tif", data, UTM, tr, overviews=(), descriptions=["red", "green", "blue"])
    chip = read_chip(path, _aoi(half_m=590))
    west = tr.c + w / 4 * GSD
    from shapely.geometry import box as sbox
    assert chip.coverage == pytest.approx(_expected_coverage(chip, sbox(west, -1e8, 1e8, 1e8)), abs=0.01)
    assert 0 < chip.meta["fill_share"] < 0.3
    roof = ~chip.transform * (tr * (403, 402))
    assert chip.valid[int(roof[1]), int(roof[0])]
    # with nodata declared the collar is the nodata mask, as before
    chip2 = read_chip(write_tif(tmp_path / "nd.tif", data, UTM, tr, overviews=(), nodata=0), _aoi(half_m=590))
    assert "fill_share" not in chip2.meta and chip2.coverage == pytest.approx(chip.coverage, abs=0.01)


def test_sar_border_fill_without_nodata(tmp_path):
    tr, w, h = _grid(UTM)
    data = np.full((2, h, w), 0.05, "float32")
    data[:, : h // 2] = 0.0                           # north half: border fill
    path = write_tif(tmp_path / "s1.tif", data, UTM, tr, overviews=(), descriptions=["VV", "VH"])
    chip = read_chip(path, _aoi())
    assert chip.sensor == "sar" and chip.coverage == pytest.approx(0.5, abs=0.02)


def test_gdal_scale_and_offset_are_applied(tmp_path):
    """Sentinel-2 L2A since 2022: reflectance = DN x 1e-4 - 0.1 (BOA_ADD_OFFSET -1000)."""
    tr, w, h = _grid(UTM)
    refl = np.array([0.04, 0.06, 0.05, 0.30])[:, None, None] * np.ones((4, h, w))
    dn = np.round((refl + 0.1) / 1e-4).astype("uint16")
    dn[:, 100:102, 100:102] = 900                     # dark-object noise: below the offset
    path = write_tif(tmp_path / "s2.tif", dn, UTM, tr, overviews=(), descriptions=["red", "green", "blue", "nir"])
    with rasterio.open(path, "r+") as d:
        d.scales = [1e-4] * 4
        d.offsets = [-0.1] * 4
    chip = read_chip(path, _aoi(half_m=590), resampling="nearest")
    assert np.median(chip.band("red")) == pytest.approx(0.04, abs=1e-4)
    assert np.median(chip.band("nir")) == pytest.approx(0.30, abs=1e-4)
    assert chip.bands.min() == 0.0                    # -0.01 reflectance is clipped, not negative
    assert chip.meta["scaled"]["nir"] == pytest.approx((1e-4, -0.1))
    raw = read_chip(path, _aoi(), apply_scale=False, resampling="nearest")
    assert np.median(raw.band("red")) == 1400 and "scaled" not in raw.meta


def test_float_reflectance_is_kept_and_never_called_saturated(tmp_path):
    tr, w, h = _grid(UTM)
    data = np.full((4, h, w), 0.08, "float32")
    data[:, :300, :300] = 1.0                         # a bright (clipped) cloud in reflectance
    path = write_tif(tmp_path / "refl.tif", data, UTM, tr, overviews=(), descriptions=["red", "green", "blue", "nir"])
    chip = read_chip(path, _aoi(half_m=590))
    assert chip.meta["saturated_share"] == 0 and chip.coverage == pytest.approx(1.0)
    assert chip.bands.max() == pytest.approx(1.0) and "scaled" not in chip.meta


def test_stac_raster_bands_scale_offset_and_nodata(tmp_path):
    tr, w, h = _grid(UTM)
    assets = {}
    for key, cn, r in [("B04", "red", 0.05), ("B03", "green", 0.07), ("B02", "blue", 0.04)]:
        dn = np.full((1, h, w), round((r + 0.1) * 1e4), "uint16")
        dn[:, :, : w // 2] = 0                          # nodata (west half); the files do not say so
        write_tif(tmp_path / f"{key}.tif", dn, UTM, tr, overviews=())
        assets[cn] = {"href": f"./{key}.tif", "type": "image/tiff; application=geotiff", "roles": ["data"],
                      "eo:bands": [{"name": key, "common_name": cn}],
                      "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}]}
    scene = open_scene(_stac_item(tmp_path, "s2l2a", assets))
    assert {(b.scale, b.offset, b.nodata) for b in scene.bands} == {(0.0001, -0.1, 0.0)}
    chip = read_chip(scene, _aoi(), resampling="nearest")
    assert chip.coverage == pytest.approx(0.5, abs=0.02)
    assert np.median(chip.band("green")[chip.valid]) == pytest.approx(0.07, abs=1e-4)


def _write_jp2(path, data, epsg, transform):
    count, h, w = data.shape
    with rasterio.open(path, "w", driver="JP2OpenJPEG", width=w, height=h, count=count, dtype=data.dtype.name,
                       crs=epsg, transform=transform, QUALITY=100, REVERSIBLE=True) as d:
        d.write(data)
    return str(path)


def test_sentinel2_l2a_item_with_10_20_60_m_jp2_bands(tmp_path):
    """B02/B03/B04/B08 at 10 m, B11 and SCL at 20 m, B01 at 60 m, as JPEG 2000 files."""
    x, y = Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(LON, LAT)
    x0, y0 = math.floor((x - 1200) / 60) * 60, math.ceil((y + 1200) / 60) * 60

    def grid(res):
        n = int(2400 / res)
        return from_origin(x0, y0, res, res), n

    assets = {}
    for key, cn, res, v in [("B02", "blue", 10, 1300), ("B03", "green", 10, 1400), ("B04", "red", 10, 1500),
                            ("B08", "nir", 10, 3000), ("B11", "swir16", 20, 2500), ("B01", "coastal", 60, 1200)]:
        t, n = grid(res)
        a = np.full((1, n, n), v, "uint16")
        name = f"T52TGN_20230414T021531_{key}_{res}m.jp2"
        _write_jp2(tmp_path / name, a, UTM, t)
        assets[key] = {"href": f"./{name}", "type": "image/jp2", "roles": ["data"],
                       "eo:bands": [{"name": key, "common_name": cn}]}
    t, n = grid(20)
    scl = np.full((1, n, n), 4, "uint8")
    scl[0, :, n // 2:] = 9                             # cloud over the east half
    _write_jp2(tmp_path / "T52TGN_20230414T021531_SCL_20m.jp2", scl, UTM, t)
    assets["SCL"] = {"href": "./T52TGN_20230414T021531_SCL_20m.jp2", "type": "image/jp2", "roles": ["data"]}
    scene = open_scene(_stac_item(tmp_path, "S2B_52TGN_20230414_0_L2A", assets))
    assert scene.roles == ("red", "green", "blue", "nir", "mask")
    assert scene.gsd_m == pytest.approx(10.0)
    chip = read_chip(scene, _aoi(half_m=500))
    assert chip.gsd_m == pytest.approx(10.0) and chip.roles == ("red", "green", "blue", "nir")
    assert np.median(chip.band("nir")) == pytest.approx(3000)
    edge = x0 + n // 2 * 20                            # the cloud's west edge (m)
    cols_x = chip.transform.c + (np.arange(chip.shape[1]) + 0.5) * chip.gsd_m
    west = cols_x < edge - 15
    east = cols_x > edge + 15
    assert chip.valid[:, west].all() and not chip.valid[:, east].any()


def test_side_car_overviews_nodata_and_descriptions_are_found(tmp_path):
    path = write_tif(tmp_path / "sc.tif", _target_image(*_grid(UTM)[1:]), UTM, _grid(UTM)[0], overviews=())
    with rasterio.Env(TIFF_USE_OVR=True):
        with rasterio.open(path, "r+") as d:
            d.build_overviews([2, 4], rasterio.enums.Resampling.average)
    assert os.path.exists(path + ".ovr")
    Path(path + ".aux.xml").write_text('<PAMDataset><PAMRasterBand band="1"><Description>pan</Description>'
                                       '<NoDataValue>0</NoDataValue></PAMRasterBand></PAMDataset>')
    scene = open_scene(path)
    assert scene.roles == ("pan",) and scene.properties["nodata"] == 0 and scene.properties["overviews"] == [2, 4]
    chip = read_chip(scene, _aoi(), gsd_m=8.0)
    assert list(chip.meta["overview_level"].values()) == [1]


def test_world_file_and_prj_georeference(tmp_path):
    from pyproj import CRS

    tr, w, h = _grid(UTM)
    p = tmp_path / "ortho.tif"
    with rasterio.open(p, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8", photometric="RGB") as d:
        d.write(_target_image(w, h, 3))
    (tmp_path / "ortho.tfw").write_text(f"{tr.a}\n0\n0\n{tr.e}\n{tr.c + tr.a / 2}\n{tr.f + tr.e / 2}\n")
    with pytest.raises(SceneError, match="ortho.tif: no CRS"):
        open_scene(str(p))
    (tmp_path / "ortho.prj").write_text(CRS(UTM).to_wkt(version="WKT1_ESRI"))
    scene = open_scene(str(p))
    assert scene.crs == UTM and scene.properties["crs_from"] == ".prj file"
    chip = read_chip(scene, _aoi())
    assert chip.roles == ("red", "green", "blue") and _target_offset_m(chip) < 1.5 * GSD


def test_tiny_scene_over_part_of_the_aoi(tmp_path):
    tr, w, h = _grid(UTM)
    corner = from_origin(tr.c + HALF_M - 100, tr.f - HALF_M + 100, GSD, GSD)   # 100 m square at the centre's NW
    path = write_tif(tmp_path / "tiny.tif", np.full((1, 50, 50), 77, "uint8"), UTM, corner, overviews=())
    chip = read_chip(path, _aoi())
    assert chip.coverage == pytest.approx(100 * 100 / 400 / 400, rel=0.05)
    assert chip.valid.sum() == pytest.approx(2500, rel=0.05)


def test_scene_in_web_mercator_that_misses_the_aoi(tmp_path):
    path = _scene(tmp_path, "EPSG:3857", name="elsewhere_3857.tif")
    with pytest.raises(SceneError) as e:
        read_chip(path, _aoi(lon=LON + 0.05))
    assert "does not cover AOI" in _one_line(e.value, "elsewhere_3857.tif")


def test_complex_and_paletted_rasters_are_refused(tmp_path):
    tr, w, h = _grid(UTM)
    p = tmp_path / "slc.tif"
    with rasterio.open(p, "w", driver="GTiff", width=w, height=h, count=1, dtype="complex64", crs=UTM,
                       transform=tr) as d:
        d.write(np.ones((1, h, w), "complex64"))
    with pytest.raises(SceneError) as e:
        read_chip(str(p), _aoi())
    assert "complex" in _one_line(e.value, "slc.tif")
    p = tmp_path / "pal.tif"
    with rasterio.open(p, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs=UTM,
                       transform=tr) as d:
        d.write(_target_image(w, h))
        d.write_colormap(1, {i: (i, 255 - i, 0, 255) for i in range(256)})
    with pytest.raises(SceneError) as e:
        read_chip(str(p), _aoi())
    assert "paletted" in _one_line(e.value, "pal.tif")


def test_planetscope_udm2_clears_cloudy_pixels(tmp_path):
    tr, w, h = _grid(UTM)
    stem = "20230414_021530_12_2416_3B"
    path = write_tif(tmp_path / f"{stem}_AnalyticMS_SR.tif", _target_image(w, h, 4, "uint16", 400, 3000), UTM, tr,
                     overviews=())
    udm2 = np.zeros((8, h, w), "uint8")
    udm2[0, :, : w // 2] = 1                          # band 1 "clear": the west half
    udm2[5, :, w // 2:] = 1                           # band 6 "cloud": the east half
    write_tif(tmp_path / f"{stem}_udm2.tif", udm2, UTM, tr, overviews=())
    chip = read_chip(open_scene(path), _aoi())
    assert chip.roles == ("blue", "green", "red", "nir")
    assert chip.coverage == pytest.approx(0.5, abs=0.02)
    assert chip.valid[:, :10].all() and not chip.valid[:, -10:].any()


def test_gray_plus_alpha_is_one_band_with_its_mask(tmp_path):
    tr, w, h = _grid(UTM)
    data = np.concatenate([_target_image(w, h), (_west_half_invalid(w, h) * 255).astype("uint8")[None]])
    path = tmp_path / "la.tif"
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=2, dtype="uint8", crs=UTM,
                       transform=tr, alpha="YES") as d:
        d.write(data)
    with rasterio.open(path) as s:
        assert s.colorinterp[1] == ColorInterp.alpha
    chip = read_chip(str(path), _aoi())
    assert chip.roles == ("gray",) and chip.coverage == pytest.approx(0.5, abs=0.02)


def test_rgbn_written_with_gdal_defaults_keeps_its_nir(tmp_path):
    """rasterio/GDAL flag the 4th band of any 4-band 8-bit GeoTIFF as alpha; NIR values are no alpha."""
    tr, w, h = _grid(UTM)
    rng = np.random.default_rng(3)
    data = np.concatenate([_target_image(w, h, 3), rng.integers(60, 200, (1, h, w)).astype("uint8")])
    path = write_tif(tmp_path / "rgbn8.tif", data, UTM, tr, overviews=())
    with rasterio.open(path) as s:
        assert s.colorinterp[3] == ColorInterp.alpha
    chip = read_chip(path, _aoi(), resampling="nearest")
    assert chip.roles == ("red", "green", "blue", "nir") and chip.coverage == pytest.approx(1.0)
    assert 60 <= np.median(chip.band("nir")) <= 200
    assert chip.meta["files"][path]["nodata"] is None and chip.valid.all()
