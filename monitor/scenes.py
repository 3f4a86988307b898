"""Scenes: find imagery (files, folders, STAC) and read its metadata.

A :class:`Scene` is one acquisition: one multi-band raster, or several
single-band rasters (one per band, as Sentinel-2 STAC items serve them).
Discovery and metadata reading live here; reading pixels is
:mod:`monitor.imagery`.

Where the metadata comes from, first hit wins:

- acquisition time (UTC): STAC ``datetime`` (or ``start_datetime``), then
  an acquisition tag (``ACQUISITIONDATETIME``..., default and ``IMAGERY``
  metadata domains), then a side-car metadata file (PlanetScope
  ``<id>_metadata.json``, Maxar ``<stem>.IMD``), then ``TIFFTAG_DATETIME``,
  then a date in the file name (``..._20230414T021530_...``,
  ``20230414_021530_...``, ``2023-04-14``, Maxar ``22MAR14021530-...``);
  ``None`` if none. ``TIFFTAG_DATETIME`` is when the file was written
  (TIFF 6.0); it still wins over the file name (the DESIGN.md order).
  ``properties["acquired_from"]`` says which, and notes a file name that
  holds an earlier day.
- band roles: an explicit ``bands`` option, STAC ``eo:bands`` common names
  and ``sar:polarizations``, band descriptions (``"red"``, ``"B04"``,
  ``"vv"``...), colour interpretation (red/green/blue/alpha/pan/nir), the
  band order of named commercial products (PlanetScope, SkySat and Maxar
  multispectral files are blue, green, red, NIR: :data:`PRODUCT_BAND_ORDERS`),
  then the band count (1: gray, 3: RGB, 4: RGB + NIR; for SAR 1: VV,
  2: VV + VH). Bands the detectors do not use (coastal, red edge, SWIR,
  thermal...) are left out; raster scenes keep the file's band order.
- sensor: the explicit option, the SAR extension / SAR band roles, else
  ``"optical"``.
- ``gsd_m``: ground metres per pixel of the finest data band; for
  geographic CRSs and Web Mercator (EPSG:3857) the pixel size is measured
  on the ellipsoid at the scene centre, so a 10 m Web-Mercator pixel at
  42 deg N gives 7.4 m.
- georeference (:func:`raster_georef`): the geotransform (rotated and
  north-down grids too) in the file's CRS or a ``.prj`` beside a world
  file; else GCPs; else RPCs. ``footprint`` is the pixel grid's true
  outline in WGS84.
- sun and view angles (``view:sun_azimuth``, ``view:sun_elevation``,
  ``view:off_nadir``, degrees), ``gsd``, ``platform``: STAC properties, or
  for raster files their tags and side-car metadata, under STAC names in
  ``Scene.properties``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from monitor.errors import SceneError, read_json

#: Band roles the detectors understand.
BAND_ROLES = ("red", "green", "blue", "nir", "pan", "vv", "vh", "hh", "hv", "mask", "alpha", "gray")

#: Canonical order of roles in a scene's band list.
_ROLE_ORDER = {r: i for i, r in enumerate(BAND_ROLES)}

#: Names seen in band descriptions, STAC asset keys and common names -> role.
ROLE_ALIASES = {
    "red": "red", "r": "red", "b04": "red", "b4": "red",
    "green": "green", "g": "green", "b03": "green", "b3": "green",
    "blue": "blue", "b": "blue", "b02": "blue", "b2": "blue",
    "nir": "nir", "nir08": "nir", "b08": "nir", "b8": "nir", "near-infrared": "nir",
    "near_infrared": "nir", "nearinfrared": "nir", "infrared": "nir",
    "pan": "pan", "panchromatic": "pan",
    "gray": "gray", "grey": "gray", "greyscale": "gray", "grayscale": "gray",
    "vv": "vv", "vh": "vh", "hh": "hh", "hv": "hv",
    "sigma0_vv": "vv", "sigma0_vh": "vh", "sigma0_hh": "hh", "sigma0_hv": "hv",
    "mask": "mask", "cloud": "mask", "clouds": "mask", "cloud_mask": "mask", "cloud-mask": "mask",
    "cloudmask": "mask", "scl": "mask", "qa_pixel": "mask",
    "udm2": "mask", "ortho_udm2": "mask", "udm": "mask", "ortho_udm": "mask",
    "alpha": "alpha",
}
#: Band role of bands the detectors do not use (coastal, red edge, SWIR,
#: thermal, water vapour...): such bands are left out of a scene, not refused.
SKIP = "skip"
_SKIP_NAMES = (
    "coastal", "coastal_blue", "coastal-blue", "coastal_aerosol", "aerosol", "yellow", "green_i", "rededge",
    "red_edge", "red-edge", "rededge1", "rededge2", "rededge3", "rededge071", "rededge075", "rededge078",
    "nir09", "nir2", "swir", "swir1", "swir2", "swir16", "swir22", "swir12", "cirrus", "lwir", "lwir11", "lwir12",
    "tir", "thermal", "wvp", "water_vapour", "water_vapor", "aot", "b01", "b1", "b05", "b5", "b06", "b6",
    "b07", "b7", "b8a", "b09", "b9", "b10", "b11", "b12", "st_b10", "qa_aerosol", "qa_radsat", "sr_qa_aerosol",
    "ndvi", "ndwi", "dem", "elevation", "incidence", "incidence_angle", "local_incidence_angle", "angle",
)
ROLE_ALIASES.update({k: SKIP for k in _SKIP_NAMES})
SAR_ROLES = ("vv", "vh", "hh", "hv")
_DATA_ROLES = tuple(r for r in BAND_ROLES if r not in ("mask", "alpha"))

RASTER_SUFFIXES = (".tif", ".tiff")
#: Picture formats that folder searches take only with a world file beside them.
WORLD_FILE_IMAGES = (".png", ".jpg", ".jpeg")
_IMAGE_MEDIA = ("image/tiff", "image/jp2", "image/vnd.stac.geotiff", "application/x-geotiff")
_NON_IMAGERY_ROLES = ("thumbnail", "overview", "metadata", "preview", "browse")


@dataclass(frozen=True)
class BandRef:
    """One band of a scene: the file (or URL) it lives in and its role.

    ``index`` is the 1-based band index in ``href`` (rasterio convention).
    ``name`` is the band's own name where known (STAC asset key or
    eo:bands name, band description): ``"B04"``, ``"scl"``. A band with
    role ``"mask"`` is a cloud/QA mask: non-zero marks cloud or invalid
    pixels, except a Sentinel-2 scene classification band (name ``scl``),
    where classes 0, 1, 3, 8, 9 and 10 (no data, saturated, cloud shadow,
    clouds, cirrus) are invalid, and a Landsat ``qa_pixel`` band, where
    the fill, dilated cloud, cloud and cloud shadow bits are invalid, and a
    PlanetScope ``udm2`` file, whose band 1 ("clear") is 1 where clear.

    ``scale``, ``offset`` and ``nodata`` come from a STAC asset's
    ``raster:bands`` (physical value = stored value x scale + offset);
    ``None`` means "as the file says" (GDAL's band scale/offset/nodata).
    """

    href: str
    index: int = 1
    role: str = "gray"
    name: str | None = None
    scale: float | None = None
    offset: float | None = None
    nodata: float | None = None


@dataclass(frozen=True)
class Scene:
    """One acquisition, possibly spread over several files.

    Attributes
    ----------
    id: stable id (the STAC id, else a digest of the file's header and size).
    path: the file or STAC item JSON the scene was found at.
    bands: the bands with their roles, in a stable order.
    acquired: acquisition time, timezone-aware UTC, or ``None`` if unknown.
    sensor: ``"optical"`` or ``"sar"``.
    gsd_m: ground sample distance in metres (finest band).
    crs: the rasters' CRS as WKT/authority string, ``None`` if absent.
    footprint: WGS84 (lon, lat) shapely Polygon of the valid extent.
    cloud_cover: percent 0..100 where the metadata gives it.
    properties: any further metadata (STAC properties, tags).
    """

    id: str
    path: str
    bands: tuple[BandRef, ...]
    acquired: datetime | None = None
    sensor: str = "optical"
    gsd_m: float | None = None
    crs: str | None = None
    footprint: Any = None
    cloud_cover: float | None = None
    properties: dict = field(default_factory=dict)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(b.role for b in self.bands)

    @property
    def hrefs(self) -> tuple[str, ...]:
        """The distinct files the bands live in, in band order."""
        return tuple(dict.fromkeys(b.href for b in self.bands))

    def to_dict(self) -> dict:
        """A JSON-ready summary (``acquired`` as ISO-8601 UTC or ``None``)."""
        return {
            "id": self.id,
            "path": self.path,
            "acquired": iso_utc(self.acquired),
            "sensor": self.sensor,
            "gsd_m": round(self.gsd_m, 4) if self.gsd_m is not None else None,
            "crs": self.crs,
            "bands": list(self.roles),
            "cloud_cover": self.cloud_cover,
            "files": list(self.hrefs),
            "footprint_bbox": list(self.footprint.bounds) if self.footprint is not None else None,
        }


def iso_utc(t: datetime | None) -> str | None:
    """``2023-04-14T02:15:30Z`` for a UTC time, ``None`` for ``None``."""
    if t is None:
        return None
    t = t.astimezone(timezone.utc)
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        s += f".{t.microsecond:06d}".rstrip("0")
    return s + "Z"


# ---------------------------------------------------------------------------
# rasterio helpers
# ---------------------------------------------------------------------------

def rio_env():
    """The GDAL settings used for every read.

    ``GTIFF_SRS_SOURCE=EPSG``: when a GeoTIFF names an EPSG code, use the
    official definition (many exported files carry slightly inconsistent
    GeoKeys that otherwise produce PROJ warnings). Local files are opened
    with their folder listed, so GDAL finds their side-car files (``.ovr``
    overviews, ``.aux.xml`` nodata and band descriptions, ``.msk`` masks,
    ``.tfw`` world files, ``_rpc.txt``/``.RPB`` RPCs); remote files
    (``/vsicurl/``) are opened without listing (see :func:`open_raster`).
    """
    import rasterio

    return rasterio.Env(GTIFF_SRS_SOURCE="EPSG",
                        CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif,.tiff,.TIF,.TIFF,.jp2,.vrt")


def _is_remote(href: str) -> bool:
    return "://" in href or href.startswith("/vsi")


def open_raster(href: str, **kwargs):
    """Open ``href`` with rasterio; a :class:`SceneError` naming it if GDAL cannot."""
    import contextlib

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    if not _is_remote(href) and not os.path.exists(href):
        raise SceneError(href, "no such file")
    if not _is_remote(href) and os.path.isfile(href) and os.path.getsize(href) == 0:
        raise SceneError(href, "empty file (0 bytes)")
    # a remote folder is not listed (one request less per file; no side-cars there)
    env = rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR") if _is_remote(href) else contextlib.nullcontext()
    try:
        with env, warnings.catch_warnings():
            # reported as a SceneError by _check_georef instead
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(href, **kwargs)
    except RasterioError as e:
        msg = " ".join(str(e).split()).replace(f"{href}: ", "").replace(f"{os.path.basename(href)}: ", "")
        if "not recognized as" in msg or "not a supported file format" in msg or "not recognised" in msg:
            raise SceneError(href, "not a raster (GDAL does not recognise the format)") from None
        raise SceneError(href, f"cannot open raster (corrupt or truncated file?): {msg}") from None


@dataclass(frozen=True)
class Georef:
    """How a raster's pixels are tied to the ground.

    ``kind`` is ``"transform"`` (an affine geotransform in ``crs``: the
    usual GeoTIFF, rotated or north-down included), ``"gcps"`` (ground
    control points only; ``crs`` is theirs) or ``"rpcs"`` (rational
    polynomial coefficients only; ``crs`` is EPSG:4326). ``transform`` is
    the exact geotransform for ``"transform"``, else an affine fitted to
    the GCPs or to the RPC footprint corners, good for metadata (ground
    pixel size, footprint) but not for reading: pixels of GCP/RPC rasters
    are warped with GDAL's GCP polynomial or RPC transformer.
    """

    crs: Any
    transform: Any
    kind: str = "transform"
    gcps: Any = None
    rpcs: Any = None
    crs_from: str = "file"


def _sidecar_prj(href: str):
    """The CRS of an ESRI ``.prj`` file beside a world-file raster, else ``None``."""
    from rasterio.crs import CRS as RioCRS

    if _is_remote(href):
        return None
    stem = os.path.splitext(href)[0]
    for cand in (stem + ".prj", href + ".prj", stem + ".PRJ"):
        if os.path.isfile(cand):
            try:
                return RioCRS.from_user_input(Path(cand).read_text(errors="replace").strip())
            except Exception:
                raise SceneError(cand, "cannot parse the projection (.prj) file") from None
    return None


def _world_file(path: str) -> str | None:
    """The world file beside a picture (``a.pgw``, ``a.pngw``, ``a.jgw``, ``a.wld``...), else ``None``."""
    stem, ext = os.path.splitext(path)
    ext = ext.lstrip(".").lower()
    if not ext:
        return None
    for cand in (ext[0] + ext[-1] + "w", ext + "w", "wld"):
        for c in (cand, cand.upper()):
            if os.path.isfile(f"{stem}.{c}"):
                return f"{stem}.{c}"
    return None


def raster_georef(src, href: str) -> Georef:
    """The :class:`Georef` of an open raster; :class:`SceneError` naming
    ``href`` when it has none (no CRS, identity transform and no GCPs/RPCs)."""
    from rasterio.crs import CRS as RioCRS
    from rasterio.transform import RPCTransformer, from_gcps

    if not src.transform.is_identity:
        crs, crs_from = src.crs, "file"
        if crs is None:
            crs, crs_from = _sidecar_prj(href), ".prj file"
        if crs is None:
            raise SceneError(href, "no CRS (the raster is not georeferenced)")
        return Georef(crs=crs, transform=src.transform, crs_from=crs_from)
    gcps, gcrs = src.gcps
    if gcps:
        if gcrs is None:
            raise SceneError(href, "ground control points without a CRS")
        if len(gcps) < 3:
            raise SceneError(href, f"only {len(gcps)} ground control points (3 or more needed)")
        return Georef(crs=gcrs, transform=from_gcps(gcps), kind="gcps", gcps=gcps)
    rpcs = src.rpcs
    if rpcs is not None:
        # an affine through three footprint corners at the RPCs' mean height
        with RPCTransformer(rpcs) as t:
            w, h = src.width, src.height
            xs, ys = t.xy([0, 0, h], [0, w, 0], zs=[rpcs.height_off] * 3, offset="ul")
        from affine import Affine

        a = Affine((xs[1] - xs[0]) / w, (xs[2] - xs[0]) / h, xs[0], (ys[1] - ys[0]) / w, (ys[2] - ys[0]) / h, ys[0])
        return Georef(crs=RioCRS.from_epsg(4326), transform=a, kind="rpcs", rpcs=rpcs)
    if src.crs is None:
        raise SceneError(href, "no CRS (the raster is not georeferenced)")
    raise SceneError(href, "no georeferencing (identity transform, no GCPs, no RPCs)")


def _check_georef(src, href: str) -> None:
    """:class:`SceneError` naming ``href`` when the raster has no georeference."""
    raster_georef(src, href)


def _check_truncated(src, href: str) -> None:
    """Cheap truncation check: the last block of each band must end inside the file."""
    if "://" in href or href.startswith("/vsi"):
        return
    try:
        size = os.path.getsize(href)
    except OSError:
        return
    if src.driver != "GTiff":
        return
    try:
        bh, bw = src.block_shapes[0]
        nby = math.ceil(src.height / bh) - 1
        nbx = math.ceil(src.width / bw) - 1
        for b in src.indexes if src.interleave and src.interleave.value == "BAND" else src.indexes[:1]:
            off = src.get_tag_item(f"BLOCK_OFFSET_{nbx}_{nby}", "TIFF", bidx=b)
            n = src.get_tag_item(f"BLOCK_SIZE_{nbx}_{nby}", "TIFF", bidx=b)
            if off and n and int(off) + int(n) > size:
                raise SceneError(href, f"truncated file ({size} bytes; image data runs to "
                                       f"{int(off) + int(n)})")
    except SceneError:
        raise
    except Exception:  # metadata domain not available: skip the check
        return


def ground_gsd_m(crs, transform, width: int, height: int) -> float:
    """Ground metres per pixel at the centre of a raster grid.

    Projected metric CRSs (UTM, national grids) give the pixel size times
    the unit factor; geographic CRSs and Mercator-type CRSs (EPSG:3857),
    whose grid metres are not ground metres, are measured on the WGS84
    ellipsoid at the grid centre (geometric mean of the x and y sizes).
    """
    from pyproj import CRS as PCRS, Geod, Transformer

    pc = PCRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    rx = math.hypot(transform.a, transform.d)
    ry = math.hypot(transform.b, transform.e)
    method = pc.coordinate_operation.method_name.lower() if pc.is_projected and pc.coordinate_operation else ""
    mercator = method.startswith("mercator") or "pseudo mercator" in method
    if pc.is_projected and not mercator:
        f = pc.axis_info[0].unit_conversion_factor if pc.axis_info else 1.0
        return float(math.sqrt(rx * ry) * (f or 1.0))
    cx, cy = transform @ (width / 2.0, height / 2.0)
    x1, y1 = transform @ (width / 2.0 + 1, height / 2.0)
    x2, y2 = transform @ (width / 2.0, height / 2.0 + 1)
    tr = Transformer.from_crs(pc, "EPSG:4326", always_xy=True)
    (lo0, lo1, lo2), (la0, la1, la2) = tr.transform([cx, x1, x2], [cy, y1, y2])
    g = Geod(ellps="WGS84")
    dx = g.inv(lo0, la0, lo1, la1)[2]
    dy = g.inv(lo0, la0, lo2, la2)[2]
    return float(math.sqrt(dx * dy))


def raster_footprint(crs, bounds, n: int = 16):
    """WGS84 polygon of a raster's bounds (edges densified with ``n`` points)."""
    from affine import Affine

    l, b, r, t = bounds
    return grid_footprint(crs, Affine(r - l, 0.0, l, 0.0, b - t, t), 1, 1, n=n)


def grid_edge_points(transform, width: int, height: int, n: int = 16):
    """(xs, ys) in CRS units around the outer edge of a pixel grid, ``n``
    points per side: the true outline also for rotated and north-down
    geotransforms, where ``src.bounds`` is only an enclosing box."""
    import numpy as np

    f = np.arange(n) / n
    cols = np.concatenate([f * width, np.full(n, float(width)), (1 - f) * width, np.zeros(n)])
    rows = np.concatenate([np.zeros(n), f * height, np.full(n, float(height)), (1 - f) * height])
    a = transform
    xs = a.a * cols + a.b * rows + a.c
    ys = a.d * cols + a.e * rows + a.f
    return xs.tolist(), ys.tolist()


def grid_footprint(crs, transform, width: int, height: int, n: int = 16):
    """WGS84 (lon, lat) polygon of a pixel grid's outline (see :func:`grid_edge_points`)."""
    from pyproj import Transformer
    from shapely.geometry import Polygon

    xs, ys = grid_edge_points(transform, width, height, n)
    tr = Transformer.from_crs(crs.to_wkt() if hasattr(crs, "to_wkt") else crs, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(xs, ys)
    poly = Polygon(list(zip(lon, lat)))
    return poly if poly.is_valid else poly.buffer(0)


def _crs_str(crs) -> str | None:
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


# ---------------------------------------------------------------------------
# times
# ---------------------------------------------------------------------------

_TIME_TAGS = ("ACQUISITIONDATETIME", "ACQUISITION_DATETIME", "ACQUISITION_TIME", "DATETIME_ORIGINAL",
              "TIFFTAG_DATETIME", "DATETIME", "ACQUIRED", "SENSING_TIME", "DATE_ACQUIRED")
_NAME_DATE = re.compile(
    r"(?<!\d)((?:19|20)\d{2})[-_]?(0[1-9]|1[0-2])[-_]?(0[1-9]|[12]\d|3[01])"
    r"(?:[Tt_ ]?([01]\d|2[0-3])[:]?([0-5]\d)[:]?([0-5]\d)(?:\.\d{1,6}|\d)?)?(?!\d)")


def parse_time(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from a tag or STAC value, else ``None``.

    Accepts ISO-8601 (``2023-04-14T02:15:30Z``, offsets), the TIFF form
    ``2023:04:14 02:15:30``, and plain dates. Naive times are taken as UTC.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        t = value
    else:
        s = str(value).strip()
        if not s:
            return None
        m = re.match(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})", s)
        if m:
            s = f"{m[1]}-{m[2]}-{m[3]}T{m[4]}:{m[5]}:{m[6]}"
        s = s.replace("Z", "+00:00").replace("z", "+00:00")
        s = re.sub(r"(\.\d{6})\d+", r"\1", s)  # nanoseconds -> microseconds
        try:
            t = datetime.fromisoformat(s)
        except ValueError:
            return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)


#: Maxar (DigitalGlobe) product names: ``22MAR14021530-M2AS-...`` (YYMONDDhhmmss, UTC)
_MAXAR_DATE = re.compile(r"(?<![A-Za-z0-9])(\d{2})(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)"
                         r"(\d{2})(\d{2})(\d{2})(\d{2})(?!\d)", re.IGNORECASE)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def time_from_name(name: str) -> datetime | None:
    """A date (and time, if given) found in a file or folder name, UTC.

    ``..._20230414T021530_...``, ``20230414_021530_...`` (PlanetScope),
    ``202304140215306`` (Pleiades, tenths of a second dropped), ``2023-04-14``,
    ``2023_04_14``, and Maxar's ``22MAR14021530-...``.
    """
    for m in _NAME_DATE.finditer(name):
        y, mo, d, hh, mm, ss = m.groups()
        try:
            return datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0),
                            tzinfo=timezone.utc)
        except ValueError:
            continue
    for m in _MAXAR_DATE.finditer(name):
        yy, mon, d, hh, mm, ss = m.groups()
        try:
            return datetime(2000 + int(yy), _MONTHS.index(mon.upper()) + 1, int(d), int(hh), int(mm), int(ss),
                            tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def _time_from_tags(tags: dict) -> tuple[datetime | None, str | None]:
    up = {k.upper(): v for k, v in tags.items()}
    for k in _TIME_TAGS:
        if k in up:
            t = parse_time(up[k])
            if t is not None:
                return t, k
    return None, None


#: Tags that hold the time the *file* was written (TIFF 6.0 ``DateTime``):
#: the acquisition time only when nothing better is known.
_FILE_TIME_TAGS = ("TIFFTAG_DATETIME", "DATETIME")


def _raster_time(tags: dict, meta: dict, name: str) -> tuple[datetime | None, str | None]:
    """(acquisition time, where from) of a raster file.

    An acquisition tag (``ACQUISITIONDATETIME``...) first, then a side-car
    metadata file's time, then ``TIFFTAG_DATETIME``, then a date in the file
    name: the order of the contract in shared/DESIGN.md. ``TIFFTAG_DATETIME``
    is, by the TIFF standard, when the file was written; when the file name
    holds an earlier day the tag still wins (the contract) and the
    disagreement is said in ``properties["acquired_from"]``.
    """
    t, tag = _time_from_tags(tags)
    if t is not None and tag not in _FILE_TIME_TAGS:
        return t, f"tag {tag}"
    side = parse_time(meta.get("datetime"))
    if side is not None:
        return side, f"side-car {meta.get('_sidecar')}"
    named = time_from_name(name)
    if t is not None:
        if named is not None and named.date() < t.date():
            return t, (f"tag {tag} (the file name says {named.date().isoformat()}: "
                       f"the tag may be the file's writing time)")
        return t, f"tag {tag}"
    if named is not None:
        return named, "file name"
    return None, None


#: Side-car metadata keys (PlanetScope ``*_metadata.json`` properties, Maxar
#: ``.IMD``, GeoTIFF tags) -> STAC property names.
_META_KEYS = {
    "acquired": "datetime", "acquisition_time": "datetime", "firstlinetime": "datetime",
    "datetime": "datetime",
    "sun_azimuth": "view:sun_azimuth", "sunazimuth": "view:sun_azimuth", "meansunaz": "view:sun_azimuth",
    "sun_elevation": "view:sun_elevation", "sunelevation": "view:sun_elevation",
    "meansunel": "view:sun_elevation",
    "view_angle": "view:off_nadir", "off_nadir": "view:off_nadir", "meanoffnadirviewangle": "view:off_nadir",
    "satellite_azimuth": "view:azimuth", "meansataz": "view:azimuth",
    "gsd": "gsd", "pixel_resolution": "gsd", "meanproductgsd": "gsd",
    "cloud_percent": "eo:cloud_cover", "cloudcover": "eo:cloud_cover",
    "satellite_id": "platform", "satid": "platform", "platform": "platform",
}


def _stac_named(d: dict) -> dict:
    """The keys of ``d`` that :data:`_META_KEYS` knows, renamed, numbers as floats."""
    out: dict = {}
    for k, v in d.items():
        key = _META_KEYS.get(str(k).lower().replace(" ", ""))
        if key is None or key in out or v in (None, ""):
            continue
        if key not in ("datetime", "platform"):
            try:
                v = float(str(v).strip().strip('"'))
            except ValueError:
                continue
            if key == "eo:cloud_cover" and str(k).lower() == "cloudcover" and 0 <= v <= 1:
                v *= 100.0  # Maxar IMD cloudCover is a fraction
        out[key] = str(v).strip().strip('"') if key in ("datetime", "platform") else v
    if "eo:cloud_cover" not in out and isinstance(d.get("cloud_cover"), (int, float)) and 0 <= d["cloud_cover"] <= 1:
        out["eo:cloud_cover"] = 100.0 * float(d["cloud_cover"])   # PlanetScope: a fraction
    return out


def sidecar_udm2(path: str) -> str | None:
    """A PlanetScope usable-data mask beside a raster (``<prefix>udm2.tif``
    whose ``<prefix>`` starts the raster's name, e.g. ``..._3B_udm2.tif``
    beside ``..._3B_AnalyticMS_SR.tif``), else ``None``."""
    if _is_remote(path):
        return None
    folder, name = os.path.split(os.path.abspath(path))
    stem = os.path.splitext(name)[0]
    if "udm" in stem.lower():
        return None
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    for f in sorted(names):
        low = f.lower()
        for suffix in ("udm2.tif", "udm2_clip.tif"):
            if low.endswith(suffix):
                prefix = f[: -len(suffix)]
                if prefix and stem.startswith(prefix) or (prefix.endswith("_") and stem.startswith(prefix[:-1])):
                    return os.path.join(folder, f)
    return None


def sidecar_metadata(path: str) -> dict:
    """STAC-named metadata from a side-car file beside a raster, ``{}`` if none.

    Looks for a PlanetScope ``<id>_metadata.json`` (a GeoJSON Feature whose
    ``<id>`` starts the raster's name) and a Maxar ``<stem>.IMD`` file.
    Keys: ``datetime``, ``view:sun_azimuth`` / ``view:sun_elevation`` /
    ``view:off_nadir`` / ``view:azimuth`` (degrees), ``gsd`` (metres),
    ``eo:cloud_cover`` (percent), ``platform``, and ``_sidecar`` (the file).
    """
    import json

    if _is_remote(path):
        return {}
    folder, name = os.path.split(os.path.abspath(path))
    stem = os.path.splitext(name)[0]
    try:
        names = os.listdir(folder)
    except OSError:
        return {}
    for f in sorted(names, key=len, reverse=True):
        low = f.lower()
        if low.endswith("_metadata.json") and stem.startswith(f[: -len("_metadata.json")]):
            try:
                doc = json.loads(Path(folder, f).read_text(encoding="utf-8"))
            except (OSError, ValueError, UnicodeDecodeError):
                continue
            if isinstance(doc, dict) and "assets" not in doc:
                props = doc.get("properties") if isinstance(doc.get("properties"), dict) else doc
                out = _stac_named(props)
                if out:
                    out["_sidecar"] = f
                    return out
        if low == stem.lower() + ".imd":
            try:
                text = Path(folder, f).read_text(errors="replace")
            except OSError:
                continue
            kv = dict(m.groups() for m in re.finditer(r"(?m)^[ \t]*(\w+)[ \t]*=[ \t]*\"?([^;\"\n]*)\"?[ \t]*;", text))
            out = _stac_named(kv)
            if out:
                out["_sidecar"] = f
                return out
    return {}


# ---------------------------------------------------------------------------
# roles
# ---------------------------------------------------------------------------

def role_of(name: Any) -> str | None:
    """The band role for a band/asset name or common name, ``None`` if unknown."""
    if name is None:
        return None
    s = str(name).strip().lower()
    return ROLE_ALIASES.get(s) or ROLE_ALIASES.get(s.replace(" ", "_"))


_DESC_SKIP_WORDS = ("edge", "coastal", "aerosol", "yellow", "swir", "thermal", "cirrus", "vapour", "vapor")


def role_of_description(desc: Any) -> str | None:
    """The band role a free-text band description names: an exact name
    (:func:`role_of`), else the one role its words name (``"Band 4 - Red"``,
    ``"Red (B4)"``, ``"Near Infrared"``, ``"NIR1"``); :data:`SKIP` when a word
    names an unused band (``"Red Edge"``, ``"Coastal Blue"``); ``None`` when
    no word or several roles are named."""
    r = role_of(desc)
    if r is not None or desc is None:
        return r
    words = [w for w in re.split(r"[^a-z0-9]+", str(desc).lower()) if w]
    if any(w in _DESC_SKIP_WORDS or ROLE_ALIASES.get(w) == SKIP for w in words):
        return SKIP
    found = {ROLE_ALIASES.get(w) or {"nir1": "nir", "ir": None, "near": None}.get(w) for w in words
             if len(w) > 1 and not re.fullmatch(r"b\d+", w)}
    found.discard(None)
    if "near" in words and "infrared" in words:
        found = {"nir"}
    return found.pop() if len(found) == 1 else None


def _default_roles(count: int, sensor: str | None) -> tuple[str, ...] | None:
    if sensor == "sar":
        return {1: ("vv",), 2: ("vv", "vh")}.get(count)
    return {1: ("gray",), 3: ("red", "green", "blue"), 4: ("red", "green", "blue", "nir")}.get(count)


#: Band orders of commercial multispectral products whose files name no
#: band (file-name pattern -> {band count: roles}). PlanetScope / SkySat
#: analytic and Maxar (WorldView, GeoEye) multispectral files are
#: blue, green, red, NIR; 8-band PlanetScope is coastal blue, blue, green I,
#: green, yellow, red, red edge, NIR; 8-band WorldView-2/3 is coastal, blue,
#: green, yellow, red, red edge, NIR1, NIR2.
PRODUCT_BAND_ORDERS = (
    (re.compile(r"(?i)(_3B_|analytic|_bgrn|psscene|skysat|_ssc\d)"),
     {4: ("blue", "green", "red", "nir"),
      8: (SKIP, "blue", SKIP, "green", SKIP, "red", SKIP, "nir")}),
    (re.compile(r"(?i)-(m1bs|m2as|m3ds|m2ms|m1bs)-|_(m1bs|m2as)_"),
     {4: ("blue", "green", "red", "nir"),
      8: (SKIP, "blue", "green", SKIP, "red", SKIP, "nir", SKIP)}),
)

_CI_ROLES = None
_POL_IN_NAME = re.compile(r"(?i)(?:^|[-_.])(vv|vh|hh|hv)(?:[-_.]|$)")


def _colorinterp_role(c, n: int, sensor: str | None) -> str | None:
    from rasterio.enums import ColorInterp

    global _CI_ROLES
    if _CI_ROLES is None:
        m = {"red": "red", "green": "green", "blue": "blue", "alpha": "alpha", "pan": "pan", "nir": "nir"}
        m.update({k: SKIP for k in ("coastal", "rededge", "swir", "mwir", "lwir", "tir", "other_ir")})
        _CI_ROLES = {getattr(ColorInterp, k): v for k, v in m.items() if hasattr(ColorInterp, k)}
    if c == ColorInterp.gray and n == 1 and sensor != "sar":
        return "gray"
    return _CI_ROLES.get(c)


def _alpha_holds_data(src, size: int = 256) -> bool:
    """True when the alpha band of an open raster looks like image data: in a
    central window of at most ``size`` x ``size`` pixels, most values are
    neither transparent (0) nor opaque (the maximum). A real alpha band is
    0 or opaque nearly everywhere (in-between only along feathered edges)."""
    import numpy as np
    from rasterio.windows import Window

    idx = [i + 1 for i, c in enumerate(src.colorinterp) if c.name == "alpha"]
    if not idx:
        return False
    w, h = min(size, src.width), min(size, src.height)
    win = Window((src.width - w) // 2, (src.height - h) // 2, w, h)
    try:
        a = src.read(idx[0], window=win)
    except Exception:
        return False
    top = 255 if a.dtype == np.uint8 else np.iinfo(a.dtype).max if a.dtype.kind in "ui" else 1
    between = np.count_nonzero((a != 0) & (a != top))
    return between > 0.5 * a.size


def raster_roles(src, href: str, sensor: str | None = None,
                 bands: Sequence[str] | None = None) -> list[tuple[int, str, str | None]]:
    """(index, role, name) for every band of an open raster; see the module doc.

    Bands the detectors do not use (coastal, red edge, SWIR... by
    description or colour interpretation) get role :data:`SKIP`. Raises
    :class:`SceneError` naming ``href`` for complex (SLC) and colour-mapped
    (paletted) rasters and when the roles cannot be told.
    """
    import numpy as np
    from rasterio.enums import ColorInterp

    n = src.count
    if any(np.dtype(d).kind == "c" for d in src.dtypes):
        raise SceneError(href, f"complex {src.dtypes[0]} pixels (SAR SLC?): give a detected "
                               "(intensity or amplitude) product")
    if n == 1 and src.colorinterp and src.colorinterp[0] == ColorInterp.palette and bands is None:
        raise SceneError(href, "colour-mapped (paletted) image: expand it to RGB first "
                               "(gdal_translate -expand rgb)")
    if bands is not None:
        roles = [str(b).lower() for b in bands]
        if len(roles) != n:
            raise SceneError(href, f"unsupported band layout: {n} bands but {len(roles)} roles given "
                                   f"({', '.join(roles)})")
        out = [(i + 1, role_of(r) or r, None) for i, r in enumerate(roles)]
    else:
        desc = list(src.descriptions or [None] * n)
        ci = list(src.colorinterp or [])
        roles: list[str | None] = []
        names: list[str | None] = []
        for i in range(n):
            r = role_of_description(desc[i])
            names.append(desc[i] or None)
            if r is None and i < len(ci):
                r = _colorinterp_role(ci[i], n, sensor)
            roles.append(r)
        name = os.path.basename(href)
        if n == 4 and roles[:3] == ["red", "green", "blue"] and roles[3] == "alpha" and not desc[3] \
                and _alpha_holds_data(src):
            # GDAL writes any 4-band 8-bit GeoTIFF as RGBA unless told otherwise: an
            # "alpha" band full of in-between values is a fourth colour band, NIR
            roles[3] = "nir"
            names[3] = "alpha-flagged band read as nir"
        if n == 1 and not desc[0] and sensor != "optical":
            # one polarisation per file, named so: Sentinel-1 ``s1a-iw-grd-vv-...tiff``, ASF RTC ``..._VV.tif``
            m = _POL_IN_NAME.search(os.path.splitext(name)[0])
            if m:
                roles = [m.group(1).lower()]
        if all(r is None for r in roles) and sensor != "sar":
            for pat, layouts in PRODUCT_BAND_ORDERS:
                if n in layouts and pat.search(name):
                    roles = list(layouts[n])
                    break
        if any(r is None for r in roles):
            extra = ("alpha", "mask", SKIP)
            data_n = sum(1 for r in roles if r not in extra)
            default = _default_roles(n - sum(1 for r in roles if r in extra), sensor)
            if default is None and data_n == 0:
                default = ()
            if default is not None:
                it = iter([d for d in default if d not in roles])
                for i, r in enumerate(roles):
                    if r is None:
                        roles[i] = next(it, None)
            if any(r is None for r in roles):
                desc_s = ", ".join(str(d) for d in desc)
                raise SceneError(href, f"unsupported band layout: cannot tell the roles of {n} bands "
                                       f"(descriptions: {desc_s}); give them with bands=[...]")
        out = [(i + 1, roles[i], names[i]) for i in range(n)]
    seen = set()
    for _, r, _ in out:
        if r in seen and r not in ("mask", SKIP):
            raise SceneError(href, f"unsupported band layout: two bands with role {r!r}")
        seen.add(r)
    return out


def _sensor_from(roles: Iterable[str], explicit: str | None, hints: dict) -> str:
    if explicit:
        s = explicit.lower()
        if s not in ("optical", "sar"):
            raise SceneError(explicit, "sensor must be 'optical' or 'sar'")
        return s
    for k in ("sensor", "SENSOR", "sensor_kind", "SENSOR_KIND"):
        v = hints.get(k)
        if isinstance(v, str) and v.lower() in ("optical", "sar"):
            return v.lower()
    if any(r in SAR_ROLES for r in roles):
        return "sar"
    if any(str(k).startswith("sar:") for k in hints):
        return "sar"
    plat = str(hints.get("platform", "")).lower()
    if plat.startswith("sentinel-1") or "radarsat" in plat or "iceye" in plat or "capella" in plat:
        return "sar"
    return "optical"


# ---------------------------------------------------------------------------
# ids
# ---------------------------------------------------------------------------

def file_digest(path: str, nbytes: int = 65536) -> str:
    """A stable id for a file from its size and its first and last ``nbytes``.

    Reads at most 2 x ``nbytes``, never the whole file.
    """
    h = hashlib.sha1()
    size = os.path.getsize(path)
    h.update(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(nbytes))
        if size > 2 * nbytes:
            f.seek(size - nbytes)
            h.update(f.read(nbytes))
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------
# open one scene
# ---------------------------------------------------------------------------

def open_scene(path: "str | Path", *, sensor: str | None = None,
               bands: Sequence[str] | None = None) -> Scene:
    """Open one scene: a GeoTIFF/COG, a STAC item JSON, or a folder or zip
    archive that holds exactly one scene (a Sentinel-2 ``.SAFE`` folder or
    its ``.zip``, one file per band).

    ``sensor``: ``"optical"`` or ``"sar"`` to override what the metadata says.
    ``bands``: for a raster file, the role of each band in order
    (``["red", "green", "blue"]``); for a STAC item, the roles (or asset
    keys) to select (``["red", "nir"]``).

    Raises :class:`SceneError` naming the file: no such file, not a raster,
    corrupt/truncated, no CRS or georeferencing, unsupported band layout,
    not a STAC item.
    """
    p = str(path)
    if os.path.isdir(p) or (p.lower().endswith(".zip") and os.path.isfile(p)):
        found = find_scenes(p, sensor=sensor, bands=bands)
        if len(found) == 1:
            return found[0]
        raise SceneError(p, f"a folder holding {len(found)} scenes: give one file or STAC item "
                            "(find_scenes and monitor run take folders)")
    if p.lower().endswith(".json") or p.lower().endswith(".geojson"):
        doc = _read_json(p)
        if doc.get("type") != "Feature" or "assets" not in doc:
            kind = doc.get("type", "unknown")
            raise SceneError(p, f"not a STAC item (type {kind!r}); use find_scenes for catalogs")
        return scene_from_stac_item(doc, p, sensor=sensor, bands=bands)
    return scene_from_raster(p, sensor=sensor, bands=bands)


def scene_from_raster(path: str, *, sensor: str | None = None,
                      bands: Sequence[str] | None = None) -> Scene:
    """A :class:`Scene` from one GeoTIFF/COG file (see :func:`open_scene`)."""
    with rio_env():
        with open_raster(path) as src:
            geo = raster_georef(src, path)
            _check_truncated(src, path)
            tags = dict(src.tags())
            try:
                tags.update({f"IMAGERY:{k}": v for k, v in src.tags(ns="IMAGERY").items()})
            except Exception:  # pragma: no cover
                pass
            roles = raster_roles(src, path, sensor=sensor, bands=bands)
            crs = geo.crs
            gsd = ground_gsd_m(crs, geo.transform, src.width, src.height)
            foot = grid_footprint(crs, geo.transform, src.width, src.height)
            props = {"tags": tags, "dtype": src.dtypes[0], "width": src.width, "height": src.height,
                     "count": src.count, "nodata": src.nodata, "overviews": src.overviews(1),
                     "tiled": bool(src.profile.get("tiled", False)), "georef": geo.kind}
            if geo.crs_from != "file":
                props["crs_from"] = geo.crs_from
    plain = {k.split(":", 1)[-1]: v for k, v in tags.items()}
    side = sidecar_metadata(path)
    acquired, acquired_from = _raster_time(plain, side, Path(path).name)
    if acquired is not None:
        props["acquired_from"] = acquired_from
    # sun and view angles, gsd, platform: tags first, then the side-car (STAC names)
    for k, v in {**side, **_stac_named(plain)}.items():
        if k not in ("datetime", "eo:cloud_cover"):
            props.setdefault("sidecar" if k == "_sidecar" else k, v)
    cc = None
    up = {k.upper(): v for k, v in plain.items()}
    for k in ("CLOUDCOVER", "CLOUD_COVER", "EO:CLOUD_COVER", "CLOUD_COVERAGE"):
        if k in up:
            try:
                cc = float(up[k])
                break
            except ValueError:
                pass
    if cc is None and isinstance(side.get("eo:cloud_cover"), float):
        cc = side["eo:cloud_cover"]
    band_refs = tuple(BandRef(href=str(path), index=i, role=r, name=n) for i, r, n in roles if r != SKIP)
    udm2 = sidecar_udm2(path)
    if udm2 is not None and "mask" not in [b.role for b in band_refs]:
        band_refs += (BandRef(href=udm2, index=1, role="mask", name="udm2"),)
        props["mask_from"] = os.path.basename(udm2)
    return Scene(
        id=file_digest(path),
        path=str(path),
        bands=band_refs,
        acquired=acquired,
        sensor=_sensor_from([b.role for b in band_refs], sensor, plain),
        gsd_m=gsd,
        crs=_crs_str(crs),
        footprint=foot,
        cloud_cover=cc,
        properties=props,
    )


def _read_json(p: str) -> dict:
    doc = read_json(p, SceneError)
    if not isinstance(doc, dict):
        raise SceneError(p, "not a STAC object (JSON is not an object)")
    return doc


def _asset_href(href: str, base: str) -> str:
    if "://" in href or href.startswith("/vsi"):
        if href.startswith("file://"):
            return href[len("file://"):]
        if href.startswith(("http://", "https://")):
            return "/vsicurl/" + href
        if href.startswith("s3://"):
            return "/vsis3/" + href[len("s3://"):]
        return href
    if os.path.isabs(href):
        return href
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(base)), href))


def _asset_is_imagery(key: str, a: dict) -> bool:
    roles = [str(r).lower() for r in a.get("roles") or []]
    if any(r in _NON_IMAGERY_ROLES for r in roles) and "data" not in roles and "visual" not in roles:
        return False
    mt = str(a.get("type") or "").lower()
    href = str(a.get("href") or "").lower().split("?")[0]
    return any(m in mt for m in _IMAGE_MEDIA) or href.endswith((".tif", ".tiff", ".jp2", ".vrt"))


def _asset_band_names(key: str, a: dict, props: dict) -> list[tuple[str | None, str | None]]:
    """(role, name) per band an asset declares (may be empty: unknown)."""
    out = []
    eo = a.get("eo:bands") or a.get("bands") or []
    item_eo = props.get("eo:bands") if isinstance(props.get("eo:bands"), list) else []
    for b in eo if isinstance(eo, list) else []:
        if isinstance(b, int) and 0 <= b < len(item_eo):  # STAC 0.9: an index into the item's eo:bands
            b = item_eo[b]
        if not isinstance(b, dict):
            continue
        cn = b.get("common_name") or b.get("eo:common_name")
        nm = b.get("name")
        out.append((role_of(cn) or role_of(nm), nm or cn))
    if not out:
        pol = a.get("sar:polarizations")
        if isinstance(pol, list) and pol:
            out = [(role_of(x), str(x)) for x in pol]
    return out


def _raster_bands(a: dict) -> list[dict]:
    """The asset's ``raster:bands`` (STAC raster extension; STAC 1.1 ``bands``)."""
    rb = a.get("raster:bands")
    if not isinstance(rb, list):
        rb = [b for b in a.get("bands") or [] if isinstance(b, dict)] if isinstance(a.get("bands"), list) else []
    out = []
    for b in rb:
        b = b if isinstance(b, dict) else {}
        d = {}
        for k in ("scale", "offset", "nodata"):
            v = b.get(k, b.get(f"raster:{k}"))
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                d[k] = float(v)
            elif k == "nodata" and str(v).lower() == "nan":
                d[k] = float("nan")
        out.append(d)
    return out


def _s2_baseline_scaling(bands: list, props: dict, visual_href: str | None, path: str) -> list:
    """Sentinel-2 processing baseline 04.00 and later (from 2022-01-25) adds
    1000 to every digital number (BOA/RADIO_ADD_OFFSET): where the item says
    ``s2:processing_baseline`` >= 4 and gives no ``raster:bands``
    scale/offset (Planetary Computer items, for one), the reflectance bands
    get scale 1e-4 and offset -0.1, as the product metadata defines."""
    try:
        baseline = float(props.get("s2:processing_baseline"))
    except (TypeError, ValueError):
        return bands
    if baseline < 4.0 or props.get("earthsearch:boa_offset_applied") is True:
        return bands
    vis = _asset_href(visual_href, path) if visual_href else None
    return [replace(b, scale=1e-4, offset=-0.1)
            if b.role in ("red", "green", "blue", "nir") and b.scale is None and b.offset is None and b.href != vis
            else b for b in bands]


def scene_from_stac_item(doc: dict, path: str, *, sensor: str | None = None,
                         bands: Sequence[str] | None = None) -> Scene:
    """A :class:`Scene` from a STAC item dict (``path`` resolves relative hrefs).

    Assets are chosen by role: the per-band assets (``eo:bands`` common
    names, ``sar:polarizations``, else the asset key: ``red``, ``B04``,
    ``vv``...), a ``visual`` asset for RGB when the per-band assets do not
    give all of red, green and blue, and a cloud/QA mask asset (``scl``,
    ``cloud``, ``mask``) if present.
    """
    from shapely.geometry import shape

    sid = str(doc.get("id") or Path(path).stem)
    props = dict(doc.get("properties") or {})
    assets = doc.get("assets") or {}
    single: dict[str, tuple[str, str, dict, bool]] = {}   # role -> (key, href, asset, exact name)
    visual: tuple[str, dict] | None = None
    multi: list[tuple[str, dict, list]] = []
    masks: list[tuple[str, dict]] = []
    for key, a in assets.items():
        if not isinstance(a, dict) or not a.get("href") or not _asset_is_imagery(key, a):
            continue
        roles = [str(r).lower() for r in a.get("roles") or []]
        declared = _asset_band_names(key, a, props)
        if "visual" in roles or key.lower() in ("visual", "rgb", "tci", "true_color"):
            visual = (key, a)
            continue
        if role_of(key) == "mask":
            masks.append((key, a))
            continue
        if len(declared) > 1:
            multi.append((key, a, declared))
            continue
        r = declared[0][0] if declared else None
        r = r or role_of(key) or role_of(a.get("title"))
        if r == SKIP:   # coastal, red edge, SWIR...: not used
            continue
        # an exact common name (``nir``) beats an alias (``nir08``); else the first asset wins
        exact = (bool(declared) and str(declared[0][1] or "").lower() == r) or key.lower() == r
        if r is not None and (r not in single or (exact and not single[r][3])):
            single[r] = (key, a["href"], a, exact)
        elif r is None and not declared:
            multi.append((key, a, []))

    chosen: list[BandRef] = []

    def add(href, index, role, name, asset=None):
        if role not in [b.role for b in chosen] or role == "mask":
            rb = _raster_bands(asset or {})
            rb = rb[index - 1] if len(rb) >= index else {}
            chosen.append(BandRef(href=_asset_href(href, path), index=index, role=role, name=name,
                                  scale=rb.get("scale"), offset=rb.get("offset"), nodata=rb.get("nodata")))

    want = [role_of(b) or str(b).lower() for b in bands] if bands is not None else None
    have_rgb = all(r in single for r in ("red", "green", "blue"))
    # per-band assets
    for r, (key, href, a, _) in single.items():
        idx = 1
        if r == "mask":
            continue
        if (want is None and r in _DATA_ROLES) or (want is not None and (r in want or key.lower() in want)):
            if not have_rgb and visual is not None and r in ("red", "green", "blue") and want is None:
                continue
            add(href, idx, r, key, a)
    # visual asset for RGB
    if visual is not None and (want is None and not have_rgb or
                               want is not None and any(w in ("red", "green", "blue", "visual")
                                                        for w in want if w not in [b.role for b in chosen])):
        key, a = visual
        declared = _asset_band_names(key, a, props) or [("red", None), ("green", None), ("blue", None)]
        for i, (r, nm) in enumerate(declared, start=1):
            if r in ("red", "green", "blue") and (want is None or r in want or "visual" in want):
                add(a["href"], i, r, nm or key, a)
    # multi-band data assets
    for key, a, declared in multi:
        if declared:
            for i, (r, nm) in enumerate(declared, start=1):
                if r is not None and (want is None and r in _DATA_ROLES or want is not None and r in want):
                    add(a["href"], i, r, nm, a)
        else:
            href = _asset_href(a["href"], path)
            with rio_env():
                with open_raster(href) as src:
                    _check_georef(src, href)
                    found = raster_roles(src, href, sensor=sensor)
            for i, r, nm in found:
                # a lone single-band asset of unknown name is "gray" only when nothing else is
                if r == "gray" and len(found) == 1 and any(b.role in _DATA_ROLES for b in chosen):
                    continue
                if want is None and r in _DATA_ROLES or want is not None and r in want:
                    add(a["href"], i, r, nm or key, a)
    for key, a in masks:
        if want is None or "mask" in want or key.lower() in want:
            add(a["href"], 1, "mask", key.lower(), a)

    if want is not None:
        missing = [w for w in want if w not in [b.role for b in chosen] and w not in ("visual",)
                   and w not in [str(b.name).lower() for b in chosen]]
        if missing:
            raise SceneError(path, f"STAC item {sid} has no asset for band(s) {', '.join(missing)}")
    if not any(b.role in _DATA_ROLES for b in chosen):
        raise SceneError(path, f"unsupported band layout: STAC item {sid} has no imagery asset with a "
                               f"known band role (assets: {', '.join(assets) or 'none'})")
    chosen.sort(key=lambda b: _ROLE_ORDER.get(b.role, len(_ROLE_ORDER)))
    chosen = _s2_baseline_scaling(chosen, props, visual[1]["href"] if visual else None, path)

    # grids: the finest data band gives the scene's gsd and CRS
    gsd, crs = None, None
    data_hrefs = {b.href for b in chosen if b.role in _DATA_ROLES}
    for href in dict.fromkeys(b.href for b in chosen):
        with rio_env():
            with open_raster(href) as src:
                geo = raster_georef(src, href)
                _check_truncated(src, href)
                if href not in data_hrefs:
                    continue
                g = ground_gsd_m(geo.crs, geo.transform, src.width, src.height)
                if gsd is None or g < gsd - 1e-9:
                    gsd, crs = g, geo.crs
                if "_footprint" not in props:
                    props["_footprint"] = grid_footprint(geo.crs, geo.transform, src.width, src.height)
    raster_foot = props.pop("_footprint", None)
    foot = None
    if isinstance(doc.get("geometry"), dict):
        try:
            foot = shape(doc["geometry"])
        except Exception:
            foot = None
    if foot is None:
        foot = raster_foot

    acquired = parse_time(props.get("datetime")) or parse_time(props.get("start_datetime"))
    acquired_from = "STAC datetime" if acquired is not None else None
    if acquired is None:
        for b in chosen:
            with rio_env():
                with open_raster(b.href) as src:
                    acquired, tag = _time_from_tags(dict(src.tags()))
            if acquired is not None:
                acquired_from = f"tag {tag}"
                break
    if acquired is None:
        acquired = time_from_name(sid) or time_from_name(Path(path).name) or \
            time_from_name(Path(path).parent.name)
        acquired_from = "file name" if acquired is not None else None
    cc = props.get("eo:cloud_cover")
    props["acquired_from"] = acquired_from
    return Scene(
        id=sid,
        path=str(path),
        bands=tuple(chosen),
        acquired=acquired,
        sensor=_sensor_from([b.role for b in chosen], sensor, props),
        gsd_m=gsd,
        crs=_crs_str(crs),
        footprint=foot,
        cloud_cover=float(cc) if isinstance(cc, (int, float)) else None,
        properties=props,
    )


# ---------------------------------------------------------------------------
# discovery
# ---------------------------------------------------------------------------

def _walk_catalog(doc: dict, path: str, seen: set, depth: int = 0):
    """(item dict, item path) for every item below a local STAC catalog or
    collection, following its ``child`` and ``item`` links (relative hrefs
    resolved against the linking file). Each linked file is read on its
    own: one that is missing or broken is yielded as a :class:`SceneError`
    and the walk goes on."""
    for link in doc.get("links") or []:
        if not isinstance(link, dict) or link.get("rel") not in ("item", "child") or not link.get("href"):
            continue
        target = _asset_href(str(link["href"]), path)
        key = target if _is_remote(target) else os.path.abspath(target)
        if key in seen:
            continue
        seen.add(key)
        if _is_remote(target):
            yield SceneError(target, f"remote STAC link in {os.path.basename(path)} (not read offline)")
            continue
        try:
            d = _read_json(target)
        except SceneError as e:
            yield e
            continue
        if link["rel"] == "item":
            if d.get("type") == "Feature" and "assets" in d:
                yield d, target
            else:
                yield SceneError(target, f"linked as an item from {os.path.basename(path)} but not a STAC item")
        elif depth < 32:
            yield from _walk_catalog(d, target, seen, depth + 1)


def _stac_items_from(doc: dict, path: str):
    """(item dict, item path) for every item of a STAC item/catalog/collection
    file; a broken linked item is yielded as a :class:`SceneError`."""
    import pystac

    t = doc.get("type")
    if t == "Feature" and "assets" in doc:
        yield doc, path
        return
    if t == "FeatureCollection":
        for i, f in enumerate(doc.get("features") or []):
            if isinstance(f, dict) and "assets" in f:
                yield f, path
        return
    if t not in ("Catalog", "Collection") and "stac_version" not in doc:
        return
    if not _is_remote(path):
        yield from _walk_catalog(doc, path, {os.path.abspath(path)})
        return
    try:
        cat = pystac.read_file(path)
    except Exception as e:
        raise SceneError(path, f"cannot read STAC {t or 'object'}: {e}") from None
    try:
        items = list(cat.get_items(recursive=True)) if hasattr(cat, "get_items") else []
    except Exception as e:
        raise SceneError(path, f"cannot walk STAC catalog: {e}") from None
    for it in items:
        href = it.get_self_href() or path
        d = it.to_dict(include_self_link=False, transform_hrefs=False)
        # pystac makes asset hrefs absolute when the item has a self href
        for k, a in it.assets.items():
            d["assets"][k]["href"] = a.get_absolute_href() or a.href
        yield d, href


# ---------------------------------------------------------------------------
# one file per band, outside STAC (Sentinel-2 SAFE / exports, Landsat)
# ---------------------------------------------------------------------------

#: A band token in a file name: ``..._B04_10m.jp2``, ``..._SR_B4.TIF``, ``B08.tif``.
_BAND_TOKEN = re.compile(r"(?i)(?<![A-Za-z0-9])(?:SR_|ST_)?(B0?[1-9]|B1[0-2]|B8A|SCL|TCI|AOT|WVP|QA_PIXEL)"
                         r"(?:_(10|20|60)m)?(?=$|[^A-Za-z0-9])")
_LANDSAT_89 = re.compile(r"(?i)^L[COT]0[89]_")
_LANDSAT_457 = re.compile(r"(?i)^L[TE]0[457]_")
#: Band token -> role: Sentinel-2 MSI; Landsat 8/9 OLI; Landsat 4/5/7 TM/ETM+.
S2_BAND_FILES = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "SCL": "mask"}
LANDSAT89_BAND_FILES = {"B2": "blue", "B3": "green", "B4": "red", "B5": "nir", "QA_PIXEL": "mask"}
LANDSAT457_BAND_FILES = {"B1": "blue", "B2": "green", "B3": "red", "B4": "nir", "QA_PIXEL": "mask"}
_S2_BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")


def _band_file_key(path: str):
    """(group key, band token, resolution m or None) of a one-band-per-file name, else ``None``."""
    name = os.path.basename(path)
    stem = os.path.splitext(name)[0]
    ms = list(_BAND_TOKEN.finditer(stem))
    if not ms:
        return None
    m = ms[-1]
    tok = m.group(1).upper()
    if len(tok) == 2 and tok[0] == "B" and tok[1].isdigit() and not (_LANDSAT_89.match(stem) or
                                                                     _LANDSAT_457.match(stem)):
        tok = "B0" + tok[1]           # Sentinel-2 exports also write B2 for B02
    key = stem[:m.start()] + "{band}" + stem[m.end():]
    return key, tok, int(m.group(2)) if m.group(2) else None


def _split_vsizip(path: str) -> tuple[str, str] | None:
    """(zip file, member) of a ``/vsizip/archive.zip/member`` path, else ``None``."""
    if not path.startswith("/vsizip/"):
        return None
    rest = path[len("/vsizip/"):]
    i = rest.lower().find(".zip/")
    return (rest[: i + 4], rest[i + 5:]) if i >= 0 else None


def _ancestor_file(path: str, names: Sequence[str], levels: int = 5) -> tuple[str, str] | None:
    """(name, text) of the first file called one of ``names`` in the folder
    of ``path`` or one above it (inside a zip archive too), else ``None``."""
    z = _split_vsizip(path)
    if z is not None:
        import zipfile

        archive, member = z
        try:
            with zipfile.ZipFile(archive) as zf:
                members = set(zf.namelist())
                d = os.path.dirname(member)
                for _ in range(levels + 1):
                    for n in names:
                        c = f"{d}/{n}" if d else n
                        if c in members:
                            return n, zf.read(c).decode("utf-8", errors="replace")
                    if not d:
                        break
                    d = os.path.dirname(d)
        except (OSError, zipfile.BadZipFile):
            return None
        return None
    d = os.path.dirname(os.path.abspath(path))
    for _ in range(levels):
        for n in names:
            c = os.path.join(d, n)
            if os.path.isfile(c):
                return n, Path(c).read_text(errors="replace")
        d2 = os.path.dirname(d)
        if d2 == d:
            break
        d = d2
    return None


def zip_band_files(path: str) -> list[str]:
    """``/vsizip/`` paths of the rasters (JPEG 2000, GeoTIFF) inside a zip
    archive (a zipped Sentinel-2 SAFE product); :class:`SceneError` naming it
    when it is not a readable zip file."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile) as e:
        raise SceneError(path, f"not a readable zip archive ({e})") from None
    base = os.path.abspath(path)
    return [f"/vsizip/{base}/{n}" for n in names if n.lower().endswith((".jp2", ".tif", ".tiff"))]


def _s2_metadata(path: str) -> dict:
    """Sentinel-2 SAFE metadata above a band file: ``{"scale": {band: (scale, offset)}}``
    from the product's MTD_MSIL2A/MTD_MSIL1C.xml (quantification value and, from
    processing baseline 04.00, the BOA/RADIO add offset), and the granule's
    MTD_TL.xml sensing time and mean sun angles (degrees)."""
    out: dict = {}
    mtd = _ancestor_file(path, ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml"))
    if mtd:
        mtd, text = mtd
        q = re.search(r"<(?:BOA_)?QUANTIFICATION_VALUE[^>]*>\s*([\d.]+)\s*<", text)
        if q:
            quant = float(q.group(1))
            offs = {int(i): float(v) for i, v in
                    re.findall(r'<(?:BOA|RADIO)_ADD_OFFSET band_id="(\d+)">\s*(-?[\d.]+)\s*<', text)}
            out["scale"] = {b: (1.0 / quant, offs.get(i, 0.0) / quant) for i, b in enumerate(_S2_BAND_IDS)}
        out["_mtd"] = mtd
    tl = _ancestor_file(path, ("MTD_TL.xml",))
    if tl:
        text = tl[1]
        t = re.search(r"<SENSING_TIME[^>]*>\s*([^<]+?)\s*<", text)
        if t:
            out["datetime"] = t.group(1)
        sun = re.search(r"<Mean_Sun_Angle>\s*<ZENITH_ANGLE[^>]*>\s*([\d.]+)\s*</ZENITH_ANGLE>\s*"
                        r"<AZIMUTH_ANGLE[^>]*>\s*([\d.]+)\s*<", text)
        if sun:
            out["view:sun_elevation"] = 90.0 - float(sun.group(1))
            out["view:sun_azimuth"] = float(sun.group(2))
    return out


def band_file_scenes(paths: Iterable[str], *, errors: list | None = None,
                     bands: Sequence[str] | None = None) -> tuple[list[Scene], set[str]]:
    """Scenes made of one file per band outside STAC, and the files they use.

    Files whose names differ only by a band token form one scene:
    Sentinel-2 SAFE granules and exports (``T52TGN_20230414T021531_B04_10m.jp2``,
    ``..._B04_(Raw).tiff``, ``B04.tif``; B02 blue, B03 green, B04 red, B08
    NIR, SCL the cloud mask, the finest copy of each band), Landsat 8/9
    (``..._SR_B4.TIF``: B2 blue, B3 green, B4 red, B5 NIR, QA_PIXEL) and
    Landsat 4/5/7 (B1 blue, B2 green, B3 red, B4 NIR). A group needs a red
    band and two files or more. Sentinel-2 digital numbers get the
    product's quantification and add offset (MTD_MSIL2A.xml, when the SAFE
    holds it) as scale/offset; Landsat Collection 2 Level-2 surface
    reflectance (``L2SP``/``L2SR``) gets 2.75e-5 / -0.2. Other files are
    left alone; a group that fails is appended to ``errors`` (raised if
    ``errors`` is None) and its files are left to the caller too.
    ``bands``: the roles to keep (the mask band is always kept).
    """
    groups: dict[str, dict[str, tuple[int, str]]] = {}
    for p in paths:
        k = _band_file_key(p)
        if k is None:
            continue
        key, tok, res = k
        g = groups.setdefault(key, {})
        r = res or 0
        if tok not in g or (r and (g[tok][0] == 0 or r < g[tok][0])):
            g[tok] = (r, p)
    scenes: list[Scene] = []
    used: set[str] = set()
    want = [role_of(b) or str(b).lower() for b in bands] if bands is not None else None
    for key, g in groups.items():
        first = next(iter(g.values()))[1]
        stem = os.path.basename(first)
        table = LANDSAT89_BAND_FILES if _LANDSAT_89.match(stem) else \
            LANDSAT457_BAND_FILES if _LANDSAT_457.match(stem) else S2_BAND_FILES
        found = {table[t]: (t, p) for t, (_, p) in g.items() if t in table}
        if "red" not in found or len(g) < 2:
            continue
        try:
            sc = _band_file_scene(key, found, table is S2_BAND_FILES)
            if want is not None:
                sc = replace(sc, bands=tuple(b for b in sc.bands if b.role in want or b.role == "mask"))
                if not any(b.role != "mask" for b in sc.bands):
                    raise SceneError(sc.path, f"scene {sc.id} has no band {', '.join(want)}")
            scenes.append(sc)
            used.update(p for _, p in g.values())
        except SceneError as e:
            if errors is None:
                raise
            errors.append(e)
    return scenes, used


def _band_file_scene(key: str, bands: dict, sentinel2: bool) -> Scene:
    red_path = bands["red"][1]
    name = os.path.basename(red_path)
    meta = _s2_metadata(red_path) if sentinel2 else {}
    landsat_sr = not sentinel2 and re.search(r"(?i)_L2S[PR]_", name) and re.search(r"(?i)_SR_B\d", name)
    refs = []
    gsd, crs, foot, tags = None, None, None, {}
    for role in ("red", "green", "blue", "nir", "mask"):
        if role not in bands:
            continue
        tok, p = bands[role]
        with rio_env():
            with open_raster(p) as src:
                geo = raster_georef(src, p)
                _check_truncated(src, p)
                if role != "mask":
                    g = ground_gsd_m(geo.crs, geo.transform, src.width, src.height)
                    if gsd is None or g < gsd - 1e-9:
                        gsd, crs = g, geo.crs
                        foot = grid_footprint(geo.crs, geo.transform, src.width, src.height)
                    if not tags:
                        tags = dict(src.tags())
        sc, of = (meta.get("scale") or {}).get(tok, (None, None))
        if landsat_sr and role != "mask":
            sc, of = 2.75e-05, -0.2
        refs.append(BandRef(href=p, index=1, role=role, name=tok.lower(), scale=sc, offset=of))
    props: dict = {"tags": tags, "files_from": "band files", "georef": "transform"}
    props.update({k: v for k, v in meta.items() if k.startswith("view:")})
    if "_mtd" in meta:
        props["metadata_file"] = meta["_mtd"]
    acquired = parse_time(meta.get("datetime"))
    acquired_from = "MTD_TL.xml SENSING_TIME" if acquired is not None else None
    if acquired is None:
        acquired, acquired_from = _raster_time(tags, {}, key.replace("{band}", ""))
    if acquired is None:
        acquired = time_from_name(os.path.basename(os.path.dirname(os.path.abspath(red_path))))
        acquired_from = "folder name" if acquired is not None else None
    props["acquired_from"] = acquired_from
    safe = next((part for part in Path(red_path).parts if part.upper().endswith(".SAFE")), None)
    sid = safe[:-5] if safe else re.sub(r"([_-])[_-]+", r"\1", key.replace("{band}", "")).strip("_- ") or \
        file_digest(red_path)
    return Scene(id=sid, path=red_path, bands=tuple(refs), acquired=acquired,
                 sensor="optical", gsd_m=gsd, crs=_crs_str(crs), footprint=foot, properties=props)


def _is_stac(doc: dict) -> bool:
    t = doc.get("type")
    return (t == "Feature" and "assets" in doc) or t in ("Catalog", "Collection") or \
        (t == "FeatureCollection" and any(isinstance(f, dict) and "assets" in f
                                          for f in doc.get("features") or []))


def find_scenes(inputs: "str | Path | Iterable[str | Path]", *, recursive: bool = True,
                errors: list | None = None, sensor: str | None = None,
                bands: Sequence[str] | None = None) -> list[Scene]:
    """Every scene in ``inputs``: raster files, STAC JSON files, and folders.

    Folders are searched (recursively unless ``recursive=False``) for
    ``*.tif``/``*.tiff`` and STAC ``*.json`` (items, catalogs,
    collections); other files, and JSON that is not STAC (an AOI file), are
    skipped. Raster files that a STAC item in the same search already
    refers to are not listed again. A scene found twice (same id and path)
    is listed once.

    ``errors``: if a list, every scene that fails is appended to it as a
    :class:`SceneError` and the search goes on; if ``None`` the first
    failure is raised.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    scenes: list[Scene] = []
    seen: set[tuple[str, str]] = set()
    claimed: set[str] = set()
    visited: set[str] = set()

    def fail(err: SceneError):
        if errors is None:
            raise err
        errors.append(err)

    def add(s: Scene):
        k = (s.id, os.path.abspath(s.path))
        if k not in seen:
            seen.add(k)
            scenes.append(s)
        claimed.update(os.path.abspath(b.href) for b in s.bands)

    def do_json(p: str, explicit: bool):
        if not explicit and os.path.abspath(p) in visited:
            return  # an item already read through its catalog
        try:
            doc = _read_json(p)
        except SceneError as e:
            if explicit:
                fail(e)
            return
        if not _is_stac(doc):
            if explicit:
                fail(SceneError(p, f"not a STAC item, catalog or collection (type {doc.get('type')!r})"))
            return
        try:
            for x in _stac_items_from(doc, p):
                if isinstance(x, SceneError):
                    fail(x)
                    continue
                d, href = x
                visited.add(os.path.abspath(href))
                for a in (d.get("assets") or {}).values():
                    if isinstance(a, dict) and a.get("href"):
                        claimed.add(os.path.abspath(_asset_href(a["href"], href)))
                try:
                    add(scene_from_stac_item(d, href, sensor=sensor, bands=bands))
                except SceneError as e:
                    fail(e if e.source in (href, p) else SceneError(href, f"{e.source}: {e.reason}"))
        except SceneError as e:
            fail(e)

    def do_zip(p: str, explicit: bool):
        try:
            members = zip_band_files(p)
        except SceneError as e:
            if explicit:
                fail(e)
            return
        grouped, _ = band_file_scenes(members, errors=errors, bands=bands)
        for s in grouped:
            add(s)
        if explicit and not grouped:
            fail(SceneError(p, "no scene in the zip archive (Sentinel-2 or Landsat band files expected)"))

    def do_raster(p: str):
        if os.path.abspath(p) in claimed:
            return
        try:
            add(scene_from_raster(p, sensor=sensor, bands=bands))
        except SceneError as e:
            fail(e)

    inputs = [str(i) for i in inputs]
    # files given one by one that are the bands of one scene (B02.tif B03.tif B04.tif ...)
    explicit = [p for p in inputs if os.path.isfile(p) and p.lower().endswith(RASTER_SUFFIXES + (".jp2",))]
    if len(explicit) > 1:
        grouped, used = band_file_scenes(explicit, errors=errors, bands=bands)
        for s in grouped:
            add(s)
        claimed.update(os.path.abspath(u) for u in used)
    for inp in inputs:
        p = str(inp)
        if os.path.isdir(p):
            root = Path(p)
            files = sorted(root.rglob("*") if recursive else root.glob("*"))
            jsons = [str(f) for f in files if f.is_file() and f.suffix.lower() == ".json"]
            rasters = [str(f) for f in files if f.is_file() and f.suffix.lower() in RASTER_SUFFIXES]
            jp2 = [str(f) for f in files if f.is_file() and f.suffix.lower() == ".jp2"]
            for j in jsons:
                do_json(j, explicit=False)
            # one file per band (Sentinel-2 SAFE or exports, Landsat): one scene per group
            free = [r for r in rasters + jp2 if os.path.abspath(r) not in claimed]
            grouped, used = band_file_scenes(free, errors=errors, bands=bands)
            for s in grouped:
                add(s)
            claimed.update(os.path.abspath(u) for u in used)
            for r in rasters:
                do_raster(r)
            # JPEG 2000 scenes outside SAFE folders (Pleiades, SPOT); PNG/JPEG with a world file
            for r in jp2:
                if not any(part.upper().endswith(".SAFE") for part in Path(r).parts):
                    do_raster(r)
            for f in files:
                if f.is_file() and f.suffix.lower() in WORLD_FILE_IMAGES and _world_file(str(f)):
                    do_raster(str(f))
            for f in files:
                if f.is_file() and f.suffix.lower() == ".zip":
                    do_zip(str(f), explicit=False)
        elif p.lower().endswith((".json", ".geojson")) and not p.startswith("/vsi"):
            do_json(p, explicit=True)
        elif p.lower().endswith(".zip") and os.path.isfile(p):
            do_zip(p, explicit=True)
        elif "://" in p or p.startswith("/vsi") or os.path.exists(p):
            do_raster(p)
        else:
            fail(SceneError(p, "no such file or folder"))
    return scenes


def scene_covers(scene: Scene, aoi) -> float:
    """Share (0..1) of the AOI boundary's area inside the scene footprint.

    Computed in the AOI's UTM zone. ``aoi`` is an AOI, bundled id or path.
    """
    import numpy as np
    import shapely
    from pyproj import Transformer

    from monitor.aoi import WGS84, load_aoi

    a = load_aoi(aoi)
    if scene.footprint is None:
        return 0.0
    utm = a.utm_crs
    tr = Transformer.from_crs(WGS84, utm, always_xy=True)
    b = a.to_crs(utm).boundary
    f = shapely.transform(scene.footprint, lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1])))
    if not f.is_valid:
        f = f.buffer(0)
    if b.area <= 0:
        return 1.0 if f.intersects(b) else 0.0
    return float(min(1.0, f.intersection(b).area / b.area))


def with_bands(scene: Scene, roles: Sequence[str]) -> Scene:
    """The scene restricted to the bands with ``roles`` (in that order)."""
    bs = []
    for r in roles:
        m = [b for b in scene.bands if b.role == r]
        if not m:
            raise SceneError(scene.path, f"scene {scene.id} has no band {r!r} (has {', '.join(scene.roles)})")
        bs.extend(m)
    return replace(scene, bands=tuple(bs))


def require_acquired(scene: Scene) -> datetime:
    """The scene's acquisition time; :class:`SceneError` naming it if unknown.

    For the store and ``monitor run``, which refuse scenes without a time
    (``read_chip`` and ``monitor detect`` accept them).
    """
    if scene.acquired is None:
        raise SceneError(scene.path, "no acquisition time (no STAC datetime, no TIFFTAG_DATETIME or "
                                     "ACQUISITIONDATETIME tag, no date in the file name)")
    return scene.acquired
