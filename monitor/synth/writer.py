"""Write a :class:`SynthScene` as a COG + STAC item + truth GeoJSON.

Files written for ``name`` in ``out_dir``:

- ``name.tif``: Cloud-Optimised GeoTIFF (tiled 512 x 512, DEFLATE or ZSTD level 1,
  averaged internal overviews), in the scene's UTM CRS; band descriptions are the
  band roles (``red``, ``green``, ``blue``, ``nir`` / ``vv``); tags
  ``TIFFTAG_DATETIME`` (``YYYY:MM:DD HH:MM:SS``, UTC) and
  ``ACQUISITIONDATETIME`` (ISO 8601 UTC), ``SENSOR``, ``GSD_M``.
- ``name.json``: a STAC item (eo:bands common names or sar:polarizations,
  datetime, proj:epsg / proj:code, gsd), its asset href relative.
- ``name.truth.geojson``: RFC 7946 FeatureCollection (WGS84), one Polygon
  per object with properties class, type, track, length_m, width_m,
  heading_deg.
"""

from __future__ import annotations

import json
from datetime import timezone
from pathlib import Path

import numpy as np
import rasterio
import shapely
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.shutil import copy as rio_copy
from shapely.geometry import box, mapping

from monitor.aoi import reproject
from monitor.errors import InputError
from monitor.synth.scene import SynthScene

EO_COMMON = {"red": (0.66, 0.06), "green": (0.56, 0.07), "blue": (0.49, 0.07), "nir": (0.83, 0.11)}


def _to_wgs84(crs):
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def shp_transform(tr, geom):
    """``geom`` through the pyproj transformer ``tr``."""
    return reproject(geom, tr)


def write_scene(scene: SynthScene, out_dir, name: str, *, compress: str = "deflate", overviews: bool = True) -> Path:
    """Write ``scene`` as ``out_dir/name.tif`` (COG), ``name.json`` (STAC), ``name.truth.geojson``.

    Returns the path of the GeoTIFF. Raises :class:`InputError` naming
    ``out_dir`` if it cannot be created or written.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(out, f"cannot create output folder ({e.strerror or e})") from None
    tif = out / f"{name}.tif"
    n, h, w = scene.bands.shape
    acq = scene.acquired.astimezone(timezone.utc)
    tags = {
        "TIFFTAG_DATETIME": acq.strftime("%Y:%m:%d %H:%M:%S"),
        "ACQUISITIONDATETIME": acq.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "SENSOR": scene.sensor,
        "GSD_M": f"{scene.gsd_m:g}",
        "GENERATOR": "monitor.synth",
    }
    if scene.aoi is not None:
        tags["AOI"] = scene.aoi.id
    profile = dict(width=w, height=h, count=n, dtype=scene.bands.dtype.name,
                   crs=scene.crs.to_wkt() if hasattr(scene.crs, "to_wkt") else scene.crs,
                   transform=scene.transform)
    # 0 is nodata for integer bands; rendered pixels are >= 1
    nodata = 0 if scene.bands.dtype in (np.uint16, np.uint8) else None
    try:
        # an in-memory (MEM) source with its overviews averaged by GDAL, then one COG copy:
        # the COG driver's own overview pass (temporary file, recompression) cost twice as much
        with rasterio.open("synth", "w", driver="MEM", **profile) as src:
            src.write(scene.bands)
            for i, r in enumerate(scene.roles, 1):
                src.set_band_description(i, r)
            src.update_tags(**tags)
            src.update_tags(1, ROLE=scene.roles[0])
            levels = _overview_levels(h, w, 512) if overviews else []
            if levels:  # averaged before nodata is set: no pixel is nodata, and the plain average is ~2x faster
                src.build_overviews(levels, Resampling.average)
            if nodata is not None:
                src.nodata = nodata
            opts = dict(driver="COG", compress=compress, blocksize=512, BIGTIFF="IF_SAFER",
                        overviews="FORCE_USE_EXISTING" if levels else "NONE")
            if compress.lower() in ("deflate", "zstd", "lzw"):
                opts["predictor"] = "3" if scene.bands.dtype == np.float32 else "2"
                opts["level"] = 1  # fast: synthetic noise compresses little at higher levels
            rio_copy(src, tif, **opts)
    except rasterio.errors.RasterioError as e:
        raise InputError(tif, f"cannot write GeoTIFF ({e})") from None
    # GDAL's COG driver copies band descriptions and dataset tags from the source
    with rasterio.open(tif) as ds:
        if tuple(ds.descriptions) != tuple(scene.roles) or "TIFFTAG_DATETIME" not in ds.tags():
            raise InputError(tif, "GDAL dropped band descriptions or tags while writing the COG")
    write_truth(scene, out / f"{name}.truth.geojson")
    write_stac_item(scene, out / f"{name}.json", tif, name)
    return tif


def _overview_levels(h: int, w: int, block: int) -> list[int]:
    """Decimation factors 2, 4, ... until the overview fits in one ``block`` x ``block`` tile (as GDAL's AUTO)."""
    out, f = [], 2
    while max(h, w) / (f // 2) > block:
        out.append(f)
        f *= 2
    return out


def footprint_wgs84(scene: SynthScene):
    """The scene's extent as a WGS84 polygon."""
    h, w = scene.shape
    t = scene.transform
    poly = box(t.c, t.f + t.e * h, t.c + t.a * w, t.f)
    return shp_transform(_to_wgs84(scene.crs), poly)


def truth_geojson(scene: SynthScene) -> dict:
    """The truth as an RFC 7946 FeatureCollection in WGS84."""
    fn = _to_wgs84(scene.crs)
    feats = []
    for i, t in enumerate(scene.truth):
        g = shapely.set_precision(shp_transform(fn, t.polygon), 1e-8)
        props = {"id": i, **t.properties()}
        feats.append({"type": "Feature", "properties": props, "geometry": mapping(g)})
    return {"type": "FeatureCollection",
            "properties": {"acquired": scene.acquired.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
                           "sensor": scene.sensor, "gsd_m": scene.gsd_m,
                           "aoi": scene.aoi.id if scene.aoi is not None else None,
                           "counts": scene.counts(), "types": scene.type_counts(),
                           "requested": scene.meta.get("requested"), "dropped": scene.meta.get("dropped", 0)},
            "features": feats}


def write_truth(scene: SynthScene, path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(truth_geojson(scene)), encoding="utf-8")
    return path


def write_stac_item(scene: SynthScene, path, tif: Path, item_id: str) -> Path:
    """A STAC item for the scene with eo/sar and projection extensions."""
    import pystac
    from pystac.extensions.eo import Band, EOExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.sar import FrequencyBand, Polarization, SarExtension

    fp = footprint_wgs84(scene)
    item = pystac.Item(id=item_id, geometry=mapping(fp), bbox=list(fp.bounds),
                       datetime=scene.acquired.astimezone(timezone.utc),
                       properties={"gsd": scene.gsd_m, "constellation": "monitor-synth",
                                   "platform": f"synth-{scene.sensor}"})
    if scene.meta.get("cloud") is not None:
        item.properties["eo:cloud_cover"] = round(100 * float(scene.meta["cloud"]), 2)
    asset = pystac.Asset(href=tif.name, media_type=pystac.MediaType.COG, roles=["data"],
                         title=f"{scene.sensor} scene")
    item.add_asset("image", asset)
    epsg = scene.crs.to_epsg() if hasattr(scene.crs, "to_epsg") else None
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.epsg = epsg
    h, w = scene.shape
    proj.shape = [h, w]
    proj.transform = list(scene.transform)[:6]
    if scene.sensor == "sar":
        sar = SarExtension.ext(item, add_if_missing=True)
        sar.instrument_mode = "SM"
        sar.frequency_band = FrequencyBand.C
        sar.polarizations = [Polarization(r.upper()) for r in scene.roles]
        sar.product_type = "GRD"
        sar.looks_equivalent_number = float(scene.meta.get("looks", 1))
        item.assets["image"].extra_fields["sar:polarizations"] = [r.upper() for r in scene.roles]
    else:
        eo = EOExtension.ext(item, add_if_missing=True)
        bands = [Band.create(name=r, common_name=r, center_wavelength=EO_COMMON[r][0],
                             full_width_half_max=EO_COMMON[r][1]) for r in scene.roles]
        eo.bands = bands
        EOExtension.ext(item.assets["image"]).bands = bands
    item.properties["proj:epsg"] = epsg
    item.properties["synth:seed"] = scene.meta.get("seed")
    item.properties["synth:truth"] = f"{item_id}.truth.geojson"
    item.add_asset("truth", pystac.Asset(href=f"{item_id}.truth.geojson", media_type=pystac.MediaType.GEOJSON,
                                         roles=["metadata"], title="ground truth"))
    d = item.to_dict(include_self_link=False)
    Path(path).write_text(json.dumps(d, indent=1), encoding="utf-8")
    return Path(path)
