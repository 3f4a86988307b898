"""Chips: an AOI's window of a scene, read, reprojected and masked.

:func:`read_chip` reads only the AOI's bounds (plus a margin) from each of
a scene's files through a GDAL warped VRT onto one north-up grid in the
AOI's local UTM zone, at the scene's native ground resolution unless a
coarser ``gsd_m`` is asked (then the fitting overview level is read). The
cost follows the AOI's pixels, not the scene's size.

Rasters tied to the ground by GCPs or RPCs only are warped through them
(a window of source pixels around the AOI). Pixels are valid unless a
nodata value, alpha band, internal or side-car mask, cloud/QA mask band
(Sentinel-2 SCL, Landsat QA_PIXEL, PlanetScope udm2), non-finite value,
wide exactly-0 fill in a file without nodata (:func:`fill_mask`), or wide
clipping at the bit-depth ceiling (:func:`saturated_mask`) says otherwise,
and only inside the raster's true outline (rotated grids too). Values are
the stored ones times the file's or STAC item's scale plus offset.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Sequence

import numpy as np
from affine import Affine
from rasterio.errors import NodataShadowWarning

from monitor.aoi import AOI, WGS84, load_aoi
from monitor.errors import SceneError


@dataclass
class Chip:
    """The AOI's window of one scene, on a north-up grid in a metric CRS.

    Attributes
    ----------
    bands: float32 array (n_bands, height, width) in the scene's units
        (digital numbers or reflectance for optical, linear sigma0 for SAR).
    roles: the role of each band (``"red"``, ``"nir"``, ``"vv"``...).
    valid: bool array (height, width): True where the pixel holds data
        (not nodata, not masked, not cloud).
    transform: affine pixel -> map transform in ``crs`` (metres).
    crs: the chip's CRS (a rasterio CRS; the AOI's UTM zone by default).
    gsd_m: pixel size in metres.
    aoi: the AOI, in WGS84 as loaded; :attr:`local_aoi` is it in ``crs``.
    scene: the scene it was read from (``None`` for chips built in code).
    coverage: share of the AOI's pixels that are valid, 0..1.
    sensor: ``"optical"`` or ``"sar"``.
    """

    bands: np.ndarray
    roles: tuple[str, ...]
    valid: np.ndarray
    transform: Affine
    crs: Any
    gsd_m: float
    aoi: AOI
    scene: Any = None
    coverage: float = 1.0
    sensor: str = "optical"
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.bands.shape[-2:]

    def band(self, role: str) -> np.ndarray | None:
        """The band with ``role``, or ``None`` when the chip has none."""
        try:
            return self.bands[self.roles.index(role)]
        except ValueError:
            return None

    def has(self, *roles: str) -> bool:
        return all(r in self.roles for r in roles)

    @cached_property
    def local_aoi(self) -> AOI:
        """The AOI with its geometries in the chip's CRS (metres)."""
        return self.aoi.to_crs(self.crs)

    def gray(self) -> np.ndarray:
        """One brightness band: pan/gray if present, else the mean of RGB,
        else the first band (float32, same units as the bands)."""
        for r in ("pan", "gray"):
            b = self.band(r)
            if b is not None:
                return b
        rgb = [self.band(r) for r in ("red", "green", "blue")]
        rgb = [b for b in rgb if b is not None]
        if rgb:
            return np.mean(rgb, axis=0, dtype=np.float32)
        return self.bands[0]


#: Sentinel-2 scene classification classes that are not clear ground/water:
#: 0 no data, 1 saturated/defective, 3 cloud shadow, 8/9 cloud, 10 cirrus.
SCL_INVALID = (0, 1, 3, 8, 9, 10)
_DATA_ROLES = ("red", "green", "blue", "nir", "pan", "gray", "vv", "vh", "hh", "hv")
#: Largest chip read_chip will build (pixels); larger asks are refused.
MAX_CHIP_PIXELS = 16384 * 16384


def _rio_crs(crs):
    from rasterio.crs import CRS as RioCRS

    if isinstance(crs, RioCRS):
        return crs
    if hasattr(crs, "to_wkt"):
        return RioCRS.from_wkt(crs.to_wkt())
    return RioCRS.from_user_input(crs)


def _resampling(name):
    from rasterio.enums import Resampling

    if isinstance(name, Resampling):
        return name
    try:
        return Resampling[str(name)]
    except KeyError:
        raise SceneError(str(name), f"unknown resampling (one of {', '.join(r.name for r in Resampling)})") from None


def chip_grid(aoi: AOI, dst_crs, res: float, margin: float) -> tuple[Affine, int, int]:
    """The chip grid: (transform, width, height) covering the AOI bounds plus
    ``margin``, in ``dst_crs`` units, with pixel edges snapped to multiples of
    ``res`` (so chips of the same AOI at the same resolution align)."""
    minx, miny, maxx, maxy = aoi.to_crs(dst_crs).boundary.bounds
    minx, miny, maxx, maxy = minx - margin, miny - margin, maxx + margin, maxy + margin
    left = math.floor(minx / res) * res
    top = math.ceil(maxy / res) * res
    width = max(1, int(math.ceil((maxx - left) / res - 1e-9)))
    height = max(1, int(math.ceil((top - miny) / res - 1e-9)))
    return Affine(res, 0.0, left, 0.0, -res, top), width, height


def _pick_overview(src, factor: float) -> int | None:
    """0-based overview level whose decimation is the largest <= ``factor``."""
    best, level = None, None
    for i, f in enumerate(src.overviews(1)):
        if f <= factor * 1.001 and (best is None or f > best):
            best, level = f, i
    return level


#: Landsat Collection 2 QA_PIXEL bits that mark a pixel invalid:
#: 0 fill, 1 dilated cloud, 3 cloud, 4 cloud shadow.
QA_PIXEL_INVALID_BITS = (1 << 0) | (1 << 1) | (1 << 3) | (1 << 4)


def _outline(geo, width: int, height: int, dst_crs):
    """A raster's pixel-grid outline as a polygon in ``dst_crs`` (edges
    densified; rotated and north-down grids keep their true shape).
    ``geo`` is the raster's :class:`~monitor.scenes.Georef`."""
    from rasterio.warp import transform as warp_transform
    from shapely.geometry import Polygon

    from monitor.scenes import grid_edge_points

    xs, ys = grid_edge_points(geo.transform, width, height, n=64)
    X, Y = warp_transform(geo.crs, dst_crs, xs, ys)
    poly = Polygon(list(zip(X, Y)))
    return poly if poly.is_valid else poly.buffer(0)


def _point_window(src, geo, dst_crs, transform, width: int, height: int):
    """The source pixel window (row0, row1, col0, col1) that covers a chip
    grid, for rasters georeferenced by GCPs or RPCs (through their fitted
    affine, padded for its error); ``None`` when it misses the raster."""
    from rasterio.warp import transform as warp_transform

    from monitor.scenes import grid_edge_points

    xs, ys = grid_edge_points(transform, width, height, n=8)
    X, Y = warp_transform(dst_crs, geo.crs, xs, ys)
    inv = ~geo.transform
    cols, rows = zip(*(inv * (x, y) for x, y in zip(X, Y)))
    pad = max(64, int(0.1 * max(src.width, src.height)))
    r0, r1 = max(0, int(min(rows)) - pad), min(src.height, int(math.ceil(max(rows))) + pad)
    c0, c1 = max(0, int(min(cols)) - pad), min(src.width, int(math.ceil(max(cols))) + pad)
    if r1 <= r0 or c1 <= c0:
        return None
    return r0, r1, c0, c1


def _warp_by_points(src, geo, indexes, outs, dst_crs, transform, width, height, resampling, nodata):
    """Warp bands of a GCP- or RPC-georeferenced raster onto the chip grid
    with GDAL's GCP transformer (a polynomial, or a thin-plate spline for 10
    GCPs or more) / RPC transformer (at the RPCs' mean height ``HEIGHT_OFF``,
    no DEM). Writes ``outs`` in place; returns the valid
    mask (bool, chip grid)."""
    from rasterio.control import GroundControlPoint
    from rasterio.enums import Resampling
    from rasterio.rpc import RPC
    from rasterio.warp import reproject
    from rasterio.windows import Window

    valid = np.zeros((height, width), bool)
    win = _point_window(src, geo, dst_crs, transform, width, height)
    if win is None:
        return valid
    r0, r1, c0, c1 = win
    window = Window(c0, r0, c1 - c0, r1 - r0)
    kw: dict = {"src_crs": geo.crs, "dst_transform": transform, "dst_crs": dst_crs}
    if geo.kind == "gcps":
        kw["gcps"] = [GroundControlPoint(row=g.row - r0, col=g.col - c0, x=g.x, y=g.y, z=g.z) for g in geo.gcps]
        if len(geo.gcps) >= 10:
            # a thin-plate spline passes through every point of a dense GCP grid
            # (Sentinel-1 GRD ships ~200); a polynomial would smooth them
            kw["SRC_METHOD"] = "GCP_TPS"
    else:
        d = geo.rpcs.to_dict()
        d.update(line_off=geo.rpcs.line_off - r0, samp_off=geo.rpcs.samp_off - c0)
        kw["rpcs"] = RPC(**d)
        kw["RPC_HEIGHT"] = float(geo.rpcs.height_off)
    m = src.read_masks(indexes[0], window=window)
    if nodata is not None:
        m = m & np.where(src.read(indexes[0], window=window) == nodata, 0, 255).astype(np.uint8)
    vm = np.zeros((height, width), np.uint8)
    reproject(m, vm, src_nodata=0, dst_nodata=0, resampling=Resampling.nearest, **kw)
    valid |= vm > 0
    for i, out in zip(indexes, outs):
        a = src.read(i, window=window)
        reproject(a, out, src_nodata=nodata, dst_nodata=0, resampling=resampling, **kw)
    return valid


def _mask_valid(arr: np.ndarray, name: str | None) -> np.ndarray:
    """True where a cloud/QA mask band says the pixel is clear (see BandRef)."""
    n = str(name or "").lower()
    if n == "scl":
        return ~np.isin(arr, SCL_INVALID)
    if n == "qa_pixel":
        return (arr.astype(np.uint32) & QA_PIXEL_INVALID_BITS) == 0
    if "udm2" in n:      # PlanetScope usable data mask 2, band 1 "clear"
        return arr == 1
    return arr == 0


#: Visible bands checked for saturation (clipped at the product's maximum).
_VISIBLE = ("red", "green", "blue", "gray", "pan")


def saturated_mask(bands: np.ndarray, roles: Sequence[str], valid: np.ndarray, gsd_m: float, *,
                   min_width_m: float = 20.0, min_share: float = 0.002) -> np.ndarray:
    """Wide areas clipped at the product's maximum in every visible band.

    ``bands`` (n, h, w) with their ``roles``; ``valid`` the pixels that hold
    data; ``gsd_m`` the pixel size in metres. A band is *clipped* when at
    least ``min_share`` of its valid pixels sit exactly at its maximum and
    that maximum is a bit-depth ceiling (within 1% of 255, 1023, 4095,
    65535, ...): the spike an 8-bit visual product shows under thick cloud
    or snow. The
    pixels clipped in every visible band, in patches wider than
    ``min_width_m`` metres (an opening, so white roofs and car bodies stay),
    plus one pixel of blur around them, carry no information: they are
    returned True. An all-False mask when no visible band is clipped.
    """
    from scipy import ndimage as ndi

    idx = [i for i, r in enumerate(roles) if r in _VISIBLE]
    h, w = valid.shape
    none = np.zeros((h, w), bool)
    n_valid = int(valid.sum())
    if not idx or n_valid == 0:
        return none
    sat = None
    for i in idx:
        b = bands[i]
        top = float(np.max(b, where=valid, initial=-np.inf))   # no copy of the valid pixels
        ceiling = 2.0 ** max(1, math.ceil(math.log2(top + 1.0))) - 1.0 if top > 0 else 0.0
        if top < 0.99 * ceiling or top < 255 * 0.99:
            return none  # not at a bit-depth ceiling (255, 1023, 4095, 65535 ...): not clipped
        at_top = b >= top
        at_top &= valid
        if int(np.count_nonzero(at_top)) < max(min_share * n_valid, 50):
            return none
        if sat is None:
            sat = at_top
        else:
            sat &= at_top
    return ndi.binary_dilation(_wide(sat, gsd_m, min_width_m), iterations=1) & valid


def _wide(mask: np.ndarray, gsd_m: float, min_width_m: float) -> np.ndarray:
    """The parts of ``mask`` in patches wider than ``min_width_m`` metres
    (a binary opening, on a coarser grid when the radius is large)."""
    from scipy import ndimage as ndi

    h, w = mask.shape
    r = int(math.ceil(min_width_m / gsd_m / 2.0))
    if r < 1:
        return mask
    small = max(1, int(math.ceil(r / 4.0)))  # open on a coarser grid: cheap for large chips
    if small > 1:
        hc, wc = -(-h // small), -(-w // small)
        pad = np.zeros((hc * small, wc * small), bool)
        pad[:h, :w] = mask
        coarse = pad.reshape(hc, small, wc, small).all(axis=(1, 3))
        rc = max(1, int(round(r / small)))
        coarse = ndi.binary_opening(coarse, structure=np.ones((3, 3), bool), iterations=rc)
        big = np.repeat(np.repeat(coarse, small, axis=0), small, axis=1)[:h, :w]
        return ndi.binary_dilation(big, iterations=small) & mask | big
    return ndi.binary_opening(mask, structure=np.ones((3, 3), bool), iterations=r)


def fill_mask(bands: np.ndarray, valid: np.ndarray, gsd_m: float, *, min_width_m: float = 20.0) -> np.ndarray:
    """Wide areas that are exactly 0 in every band: the black collar of an
    orthorectified scene, or SAR border fill, in a file that declares no
    nodata. ``bands`` (n, h, w) as stored (before any scale/offset);
    ``valid`` the pixels that hold data; ``gsd_m`` the pixel size in
    metres. Patches narrower than ``min_width_m`` metres (a black car or
    roof in an 8-bit product) stay valid; one pixel around the wide ones
    (blended by resampling) is invalid too. Returns True where invalid."""
    m = _fill(bands, valid, gsd_m, min_width_m)
    return np.zeros(valid.shape, bool) if m is None else m


def _fill(bands, valid, gsd_m, min_width_m=20.0):
    """:func:`fill_mask`, or ``None`` when no pixel is 0 in every band."""
    h, w = valid.shape
    zero = None
    step = max(1, (1 << 20) // max(w, 1))
    for r0 in range(0, h, step):      # in row blocks: no full-size temporaries
        z = valid[r0:r0 + step].copy()
        for b in bands:
            z &= b[r0:r0 + step] == 0
        if z.any():
            if zero is None:
                zero = np.zeros((h, w), bool)
            zero[r0:r0 + step] = z
    if zero is None:
        return None
    from scipy import ndimage as ndi

    # plus one pixel: the resampled rim where fill and data were blended
    return ndi.binary_dilation(_wide(zero, gsd_m, min_width_m), iterations=1) & valid


def read_chip(scene, aoi, *, gsd_m: float | None = None, margin_m: float = 50.0, crs=None,
              bands: Sequence[str] | None = None, resampling: str = "bilinear",
              mask_saturated: bool = True, apply_scale: bool = True) -> Chip:
    """Read the AOI's window of a scene as a :class:`Chip`.

    Parameters
    ----------
    scene: a :class:`~monitor.scenes.Scene`, or a path/STAC item to open.
    aoi: an :class:`~monitor.aoi.AOI`, bundled id or AOI file path.
    gsd_m: pixel size of the chip in metres; default the scene's native
        ground resolution (its finest band). A coarser value reads the
        overview level that fits (then resamples the rest of the way).
    margin_m: metres added around the AOI's bounds.
    crs: the chip CRS (default the AOI's UTM zone, ``aoi.utm_crs``).
    bands: roles to read (default every data band of the scene).
    resampling: rasterio resampling name for the data bands (masks are
        always read nearest-neighbour).
    mask_saturated: optical chips: wide areas clipped at the product's
        maximum in every visible band (thick cloud or snow in an 8-bit
        visual product) are not valid, since nothing can be seen there
        (:func:`saturated_mask`); ``meta["saturated_share"]`` says how much.
    apply_scale: values become ``stored x scale + offset`` where the file
        (GDAL band scale/offset) or the STAC item (``raster:bands``) gives
        them, e.g. Sentinel-2 L2A digital numbers -> reflectance; optical
        values below 0 after a negative offset (dark-object noise) become
        0. ``meta["scaled"]`` lists the (scale, offset) used per role.

    The chip holds float32 bands (scene units), their roles, the valid
    mask (False for nodata, alpha 0, internal/dataset masks, the scene's
    cloud/QA mask band, wide exactly-0 areas of files that declare no
    nodata (:func:`fill_mask`: black collars), and outside the scene),
    the grid (transform, crs, gsd_m) and ``coverage``: valid pixels inside
    the AOI boundary over the boundary's pixels. Bands from several files
    are read onto the grid of the finest one. Rasters georeferenced by
    GCPs or RPCs only are warped with GDAL's GCP polynomial / RPC
    transformer (``meta["georef"]``).

    Raises :class:`SceneError` (one line naming the file) when the file
    is not a raster, is corrupt or truncated, has no CRS, misses the AOI,
    holds only nodata in the AOI, or its bands cannot be told apart.
    """
    from rasterio.enums import MaskFlags
    from rasterio.errors import RasterioError
    from rasterio.features import geometry_mask
    from rasterio.vrt import WarpedVRT

    from monitor.scenes import Scene, ground_gsd_m, open_raster, open_scene, raster_georef, rio_env

    if not isinstance(scene, Scene):
        scene = open_scene(scene)
    aoi = load_aoi(aoi)
    src_name = scene.path
    dst_crs = _rio_crs(crs if crs is not None else aoi.utm_crs)
    refs = list(scene.bands)
    if bands is not None:
        want = [str(b).lower() for b in bands]
        missing = [w for w in want if w not in scene.roles]
        if missing:
            raise SceneError(src_name, f"scene has no band {', '.join(missing)} (has {', '.join(scene.roles)})")
        refs = [b for b in refs if b.role in want or b.role in ("mask", "alpha")]
        refs.sort(key=lambda b: want.index(b.role) if b.role in want else len(want))
    data_refs = [b for b in refs if b.role not in ("mask", "alpha")]
    if not data_refs:
        raise SceneError(src_name, f"unsupported band layout: no data band (roles {', '.join(scene.roles)})")

    wgs_boundary = aoi.to_crs(WGS84).boundary
    if scene.footprint is not None and not scene.footprint.intersects(wgs_boundary):
        raise SceneError(src_name, f"scene does not cover AOI {aoi.id} (footprint and AOI do not overlap)")

    res_m = float(gsd_m) if gsd_m is not None else float(scene.gsd_m or 0) or None
    if res_m is None or not res_m > 0:
        raise SceneError(src_name, "unknown ground sample distance; give gsd_m")
    units_per_m = (1.0 / 111320.0) if dst_crs.is_geographic else 1.0
    res = res_m * units_per_m
    transform, width, height = chip_grid(aoi, dst_crs, res, margin_m * units_per_m)
    if width * height > MAX_CHIP_PIXELS:
        raise SceneError(src_name, f"chip of {width} x {height} pixels at {res_m:g} m is too large; "
                                   "ask a coarser gsd_m")
    local_boundary = aoi.to_crs(dst_crs).boundary
    out = np.zeros((len(data_refs), height, width), dtype=np.float32)
    valid = np.ones((height, width), dtype=bool)
    rs = _resampling(resampling)
    meta: dict = {"files": {}, "overview_level": {}}
    scales: list[tuple[float, float]] = [(1.0, 0.0)] * len(data_refs)
    no_nodata = False   # some file declares no nodata, alpha or mask: look for black collars

    groups: dict[str, list] = {}
    for b in refs:
        groups.setdefault(b.href, []).append(b)
    covered_any = False
    with rio_env():
        for href, grp in groups.items():
            with open_raster(href) as src0:
                geo = raster_georef(src0, href)
                outline = _outline(geo, src0.width, src0.height, dst_crs)
                if not outline.intersects(local_boundary):
                    continue
                covered_any = True
                level = None
                if geo.kind == "transform":
                    native = ground_gsd_m(geo.crs, geo.transform, src0.width, src0.height)
                    level = _pick_overview(src0, res_m / native) if res_m > native * 1.001 else None
                file_scales = [(float(sc), float(of)) for sc, of in zip(src0.scales, src0.offsets)]
            kw = {"overview_level": level} if level is not None else {}
            meta["overview_level"][href] = level
            try:
                with open_raster(href, **kw) as src:
                    dgrp = [b for b in grp if b.role not in ("mask", "alpha")]
                    mgrp = [b for b in grp if b.role == "mask"]
                    for b in dgrp:
                        k = data_refs.index(b)
                        sc = b.scale if b.scale is not None else file_scales[b.index - 1][0]
                        of = b.offset if b.offset is not None else file_scales[b.index - 1][1]
                        scales[k] = (sc, of)
                        if np.dtype(src.dtypes[b.index - 1]).kind == "c":
                            raise SceneError(href, "complex pixels (SAR SLC?): give a detected product")
                    # a nodata value the STAC item gives but the file does not
                    stac_nodata = next((b.nodata for b in grp if b.nodata is not None), None)
                    nodata = src.nodata if src.nodata is not None else stac_nodata
                    alpha_idx = [i + 1 for i, ci in enumerate(src.colorinterp) if ci.name == "alpha"]
                    data_idx = {b.index for b in grp if b.role != "alpha"}
                    has_alpha = any(i not in data_idx for i in alpha_idx)
                    # an "alpha" band that the scene reads as data (see scenes.raster_roles): no mask
                    alpha_as_data = any(i in data_idx for i in alpha_idx)
                    plain = nodata is None and not has_alpha and all(
                        MaskFlags.all_valid in src.mask_flag_enums[b.index - 1] or
                        (alpha_as_data and MaskFlags.alpha in src.mask_flag_enums[b.index - 1]) for b in grp)
                    no_nodata |= plain and bool(dgrp)
                    if geo.kind != "transform":
                        meta["georef"] = geo.kind
                        ok = None
                        if dgrp:
                            ok = _warp_by_points(src, geo, [b.index for b in dgrp],
                                                 [out[data_refs.index(b)] for b in dgrp], dst_crs, transform,
                                                 width, height, rs, nodata)
                        if mgrp:
                            ms = [np.zeros((height, width), np.float32) for _ in mgrp]
                            mok = _warp_by_points(src, geo, [b.index for b in mgrp], ms, dst_crs, transform,
                                                  width, height, _resampling("nearest"), None)
                            ok = mok if ok is None else ok
                            for b, a in zip(mgrp, ms):
                                valid &= ~mok | _mask_valid(a.astype(np.int64), b.name)
                        if ok is not None:
                            valid &= ok
                        for b in dgrp:
                            if np.dtype(src.dtypes[b.index - 1]).kind == "f":
                                valid &= np.isfinite(out[data_refs.index(b)])
                        meta["files"][href] = {"dtype": src.dtypes[0], "nodata": nodata, "overview_level": None}
                        continue
                    # A file without nodata, alpha or internal mask is valid wherever
                    # it has pixels: its outline, rasterized, is the mask (cheaper
                    # than a warped alpha band). Otherwise GDAL's masks are warped.
                    inside = None
                    if plain:
                        inside = geometry_mask([outline], out_shape=(height, width),
                                               transform=transform, invert=True)
                        valid &= inside
                    vkw = dict(crs=dst_crs, transform=transform, width=width, height=height,
                               add_alpha=not plain and nodata is None and not has_alpha)
                    if geo.crs_from != "file":
                        vkw["src_crs"] = geo.crs
                    if alpha_as_data:
                        vkw["src_alpha"] = 0
                    if src.nodata is None and stac_nodata is not None:
                        vkw.update(src_nodata=stac_nodata, nodata=stac_nodata, add_alpha=False)
                    if dgrp:
                        with WarpedVRT(src, resampling=rs, **vkw) as vrt:
                            # band by band, straight into the chip array (no copies)
                            for b in dgrp:
                                k = data_refs.index(b)
                                vrt.read(b.index, out=out[k])
                                if not plain:
                                    with warnings.catch_warnings():
                                        # nodata and the VRT's alpha agree here; the mask is right
                                        warnings.simplefilter("ignore", NodataShadowWarning)
                                        valid &= vrt.read_masks(b.index) > 0
                                if np.dtype(src.dtypes[b.index - 1]).kind == "f":
                                    valid &= np.isfinite(out[k])
                    if mgrp:
                        with WarpedVRT(src, resampling=_resampling("nearest"), **vkw) as vrt:
                            for b in mgrp:
                                a = vrt.read(b.index)
                                ins = inside if plain else vrt.read_masks(b.index) > 0
                                valid &= ~ins | _mask_valid(a, b.name)
                    meta["files"][href] = {"dtype": src.dtypes[0], "nodata": nodata,
                                           "overview_level": level}
            except RasterioError as e:
                raise SceneError(href, f"cannot read pixels (corrupt or truncated file?): "
                                       f"{' '.join(str(e).split())}") from None
    if not covered_any:
        raise SceneError(src_name, f"scene does not cover AOI {aoi.id}")
    roles = tuple(b.role for b in data_refs)
    if no_nodata:
        fill = _fill(out, valid, res_m)
        if fill is not None and fill.any():
            meta["fill_share"] = round(float(fill.sum()) / max(int(valid.sum()), 1), 4)
            valid &= ~fill
    if mask_saturated and scene.sensor != "sar":
        sat = saturated_mask(out, roles, valid, res_m)
        meta["saturated_share"] = round(float(sat.sum()) / max(int(valid.sum()), 1), 4)
        valid &= ~sat
    if apply_scale:
        used = {}
        for k, (sc, of) in enumerate(scales):
            if (sc, of) != (1.0, 0.0) and math.isfinite(sc) and math.isfinite(of):
                band = out[k]
                band *= np.float32(sc)
                band += np.float32(of)
                if of < 0 and scene.sensor != "sar":
                    np.maximum(band, 0, out=band)
                used[roles[k]] = (sc, of)
        if used:
            meta["scaled"] = used
    aoi_px = geometry_mask([local_boundary], out_shape=(height, width), transform=transform, invert=True)
    if not aoi_px.any():
        aoi_px = geometry_mask([local_boundary], out_shape=(height, width), transform=transform,
                               invert=True, all_touched=True)
    n_aoi = int(aoi_px.sum())
    n_ok = int((valid & aoi_px).sum())
    if n_ok == 0:
        raise SceneError(src_name, f"no valid pixel in AOI {aoi.id} (all nodata, masked, cloud or saturated)")
    meta.update({"aoi_pixels": n_aoi, "valid_pixels": n_ok, "margin_m": margin_m,
                 "resampling": rs.name})
    return Chip(
        bands=out,
        roles=roles,
        valid=valid,
        transform=transform,
        crs=dst_crs,
        gsd_m=res_m,
        aoi=aoi,
        scene=scene,
        coverage=n_ok / n_aoi if n_aoi else 0.0,
        sensor=scene.sensor,
        meta=meta,
    )
