"""Land cover shared by rail and port scenes: ground, roads, buildings, boxes.

Reflectances are surface reflectance (0..1) per band role; colours below
are (red, green, blue, nir). Geometry is in the scene CRS (metres).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely
import shapely.affinity
from rasterio import features
from shapely.geometry import Polygon

from monitor.synth.texture import (Grid, atmosphere, block_mean, blur, cells_for, fractal_noise, local_coords, observe,
                                   oriented_rect, psf_radius, rng_for, shadow_vector, smooth_noise, white)

ROLES4 = ("red", "green", "blue", "nir")
#: sun (azimuth, elevation; degrees) that shades the gabled roofs of the static scenery: a mid-morning
#: sun-synchronous pass. The shadows themselves follow each scene's sun (:func:`cast_shadows`).
ROOF_SUN = (157.0, 35.0)

C = {
    "soil": (0.20, 0.17, 0.13, 0.26), "soil_dark": (0.11, 0.09, 0.07, 0.16),
    "grass": (0.05, 0.085, 0.04, 0.36), "dry_grass": (0.17, 0.15, 0.10, 0.27),
    "snow": (0.72, 0.74, 0.77, 0.62),
    "asphalt": (0.085, 0.09, 0.095, 0.11), "concrete": (0.21, 0.21, 0.205, 0.24),
    "dirt_road": (0.23, 0.20, 0.16, 0.26), "yard": (0.17, 0.16, 0.145, 0.21),
}
ROOFS = [(0.30, 0.31, 0.32, 0.32), (0.10, 0.14, 0.22, 0.22), (0.24, 0.12, 0.09, 0.26),
         (0.11, 0.16, 0.12, 0.20), (0.07, 0.07, 0.075, 0.09), (0.22, 0.13, 0.08, 0.25),
         (0.40, 0.40, 0.40, 0.40), (0.17, 0.17, 0.17, 0.19)]


def season(month: int) -> tuple[float, float]:
    """(vegetation greenness 0..1, snow probability) for a month at ~42 deg N."""
    green = {1: 0.0, 2: 0.0, 3: 0.05, 4: 0.2, 5: 0.6, 6: 0.9, 7: 1.0, 8: 1.0, 9: 0.8, 10: 0.4, 11: 0.1, 12: 0.0}[month]
    snow = {1: 0.55, 2: 0.5, 3: 0.2, 11: 0.1, 12: 0.4}.get(month, 0.0)
    return green, snow


def paint(refl, mask_or_idx, colour, alpha=1.0):
    """Blend ``colour`` into ``refl`` where mask (bool array or (rows, cols)) with ``alpha``."""
    col = np.asarray(colour, np.float32)
    if isinstance(mask_or_idx, tuple):
        r, c = mask_or_idx
        a = alpha if np.isscalar(alpha) else alpha.astype(np.float32)
        for i in range(refl.shape[0]):
            refl[i, r, c] = refl[i, r, c] * (1 - a) + col[i] * a
    else:
        for i in range(refl.shape[0]):
            refl[i][mask_or_idx] = refl[i][mask_or_idx] * (1 - alpha) + col[i] * alpha


def ground(grid: Grid, rng, month: int, snow: bool) -> np.ndarray:
    """Textured bare soil / grass / snow (4, h, w) reflectance.

    The noise fields depend on ``rng`` only, the colours on the month and
    snow: the same ``rng`` seed gives the same fields in every season.
    """
    h, w = grid.shape
    green, _ = season(month)
    g = grid.gsd
    n1 = fractal_noise((h, w), cells_for(g, [120, 30]), rng)
    n2 = fractal_noise((h, w), cells_for(g, [12, 3]), rng)
    out = np.empty((4, h, w), np.float32)
    f32 = np.float32
    # soil = a + b * dry; vegetation colour vc; per band
    a = [f32(C["soil"][i]) for i in range(4)]
    b = [f32(0.35 * (C["soil_dark"][i] - C["soil"][i])) for i in range(4)]
    vc = [f32(C["grass"][i] * green + C["dry_grass"][i] * (1 - green)) for i in range(4)]
    sn = [f32(C["snow"][i]) for i in range(4)]
    vscale = f32(0.25 + 0.75 * green)
    for r0 in range(0, h, 64):  # row blocks: the temporaries stay in cache
        r1 = min(h, r0 + 64)
        m1, m2 = n1[r0:r1], n2[r0:r1]
        veg = np.clip(f32(0.5) + f32(0.45) * m1, 0, 1)
        veg *= vscale
        dry = np.clip(f32(0.5) - f32(0.4) * m1, 0, 1)
        fine = f32(1) + f32(0.07) * m2
        fine += f32(0.03) * white(m2.shape, rng)
        if snow:
            cover = np.clip(f32(0.75) + f32(0.5) * m1 + f32(0.15) * m2, 0, 1)
            stex = cover * (f32(1) + f32(0.03) * m2)
            keep = f32(1) - cover
        for i in range(4):
            o = out[i, r0:r1]
            soil = a[i] + b[i] * dry
            np.multiply(veg, vc[i] - soil, out=o)
            o += soil
            o *= fine
            if snow:
                o *= keep
                o += sn[i] * stex
    return out


def rasterize(grid: Grid, shapes, dtype="uint8", fill=0, all_touched=False) -> np.ndarray:
    shapes = [(g, v) for g, v in shapes if g is not None and not g.is_empty]
    if not shapes:
        return np.full(grid.shape, fill, dtype)
    return features.rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=fill,
                              dtype=dtype, all_touched=all_touched)


def pixels_in(grid: Grid, geom, all_touched=False):
    """(rows, cols) of the pixels whose centres fall in ``geom``, rasterised in its window only."""
    if geom is None or geom.is_empty:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    minx, miny, maxx, maxy = geom.bounds
    g = grid.gsd
    c0 = max(0, int(math.floor((minx - grid.x0) / g)) - 1)
    c1 = min(grid.width, int(math.ceil((maxx - grid.x0) / g)) + 1)
    r0 = max(0, int(math.floor((grid.y0 - maxy) / g)) - 1)
    r1 = min(grid.height, int(math.ceil((grid.y0 - miny) / g)) + 1)
    if c1 <= c0 or r1 <= r0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    sub = Grid(grid.x0 + c0 * g, grid.y0 - r0 * g, g, c1 - c0, r1 - r0)
    m = features.rasterize([(geom, 1)], out_shape=sub.shape, transform=sub.transform, fill=0, dtype="uint8",
                           all_touched=all_touched)
    r, c = np.nonzero(m)
    return r + r0, c + c0


def paint_surface(refl, grid, rng, geom, colour, texture=0.08):
    """Paint a polygon (road, apron, yard) with a textured colour; returns (rows, cols)."""
    r, c = pixels_in(grid, geom)
    if r.size == 0:
        return r, c
    r0, c0 = r.min(), c.min()
    sm = smooth_noise((int(r.max() - r0 + 1), int(c.max() - c0 + 1)), max(1.0, 2.5 / grid.gsd), rng)
    n = 1 + texture * (0.7 * sm[r - r0, c - c0] + 0.5 * rng.standard_normal(r.size, dtype=np.float32))
    for i in range(refl.shape[0]):
        refl[i, r, c] = colour[i] * n
    return r, c


def place_boxes(rng, region, avoid, heading, n_try, n_max, size_range, gap=4.0):
    """Random oriented rectangles (buildings, stacks) inside ``region`` clear of ``avoid``.

    Returns a list of (polygon, cx, cy, heading, length, width).
    """
    out = []
    minx, miny, maxx, maxy = region.bounds
    placed = []
    shapely.prepare(region)
    av = avoid
    if av is not None:
        shapely.prepare(av)
    for _ in range(n_try):
        if len(out) >= n_max:
            break
        L = rng.uniform(*size_range)
        W = rng.uniform(max(size_range[0] * 0.4, 6), max(L * 0.8, 7))
        hd = heading + (0 if rng.random() < 0.8 else math.pi / 2) + rng.normal(0, 0.03)
        cx, cy = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        p = Polygon(oriented_rect(cx, cy, hd, L, W))
        if not region.contains(p):
            continue
        if av is not None and av.intersects(p):
            continue
        pb = p.buffer(gap)
        if any(pb.intersects(q) for q in placed):
            continue
        placed.append(p)
        out.append((p, cx, cy, hd, L, W))
    return out


def draw_shadows(refl, grid, polys_heights, sun_az, sun_el, strength=0.55):
    """Darken the ground in the shadows of (polygon, height_m) objects."""
    shapes = []
    for p, hgt in polys_heights:
        dx, dy = shadow_vector(sun_az, sun_el, hgt)
        moved = shapely.affinity.translate(p, dx, dy)
        shapes.append((shapely.convex_hull(shapely.union(p, moved)), 1))
    if not shapes:
        return
    m = rasterize(grid, shapes).astype(bool)
    # diffuse skylight keeps blue shadows brighter than red ones
    keep = {0: 1 - strength, 1: 1 - strength * 0.97, 2: 1 - strength * 0.85, 3: 1 - strength}
    for i in range(refl.shape[0]):
        refl[i][m] *= keep.get(i, 1 - strength)


def cast_shadows(refl, grid, casters, sun_az, sun_el, strength=0.55):
    """Darken ``refl`` (n, h, w on ``grid``) in the shadows of (polygon, height_m) objects, not on the objects.

    For static objects (buildings, container stacks) whose shadows follow
    the sun of each pass while their roofs stay in the cached scenery.
    """
    if not casters:
        return
    polys = np.array([p for p, _ in casters], dtype=object)
    shifts = np.array([shadow_vector(sun_az, sun_el, hgt) for _, hgt in casters])
    moved = np.array([shapely.affinity.translate(p, dx, dy) for p, (dx, dy) in zip(polys, shifts)], dtype=object)
    shade = shapely.difference(shapely.convex_hull(shapely.union(polys, moved)), polys)
    m = rasterize(grid, [(g, 1) for g in shade])
    r, c = np.nonzero(m)
    if r.size == 0:
        return
    keep = (1 - strength, 1 - strength * 0.97, 1 - strength * 0.85, 1 - strength)
    for i in range(refl.shape[0]):
        refl[i, r, c] *= np.float32(keep[i] if i < 4 else 1 - strength)


def draw_buildings(refl, grid, rng, boxes, sun_az, sun_el, shadows: bool = True):
    """Flat and gabled roofs, with shadows unless ``shadows`` is False. ``boxes`` from :func:`place_boxes`.

    Returns the heights (m); (polygon, height) are the shadow casters
    for :func:`cast_shadows` when the shadows are drawn later.
    """
    if not boxes:
        return []
    heights = rng.uniform(3.5, 12.0, len(boxes))
    if shadows:
        draw_shadows(refl, grid, [(b[0], hgt) for b, hgt in zip(boxes, heights)], sun_az, sun_el)
    ids = rasterize(grid, [(b[0], i + 1) for i, b in enumerate(boxes)], dtype="int32")
    r, c = np.nonzero(ids)
    if r.size == 0:
        return heights
    k = ids[r, c] - 1
    cx = np.array([b[1] for b in boxes])[k]
    cy = np.array([b[2] for b in boxes])[k]
    hd = np.array([b[3] for b in boxes])[k]
    W = np.array([b[5] for b in boxes])[k]
    u, v = local_coords(grid, r, c, cx, cy, hd)
    roof = np.array([ROOFS[i] for i in rng.integers(0, len(ROOFS), len(boxes))], np.float32)
    roof *= rng.uniform(0.85, 1.15, (len(boxes), 1)).astype(np.float32)
    gabled = rng.random(len(boxes)) < 0.5
    # gabled roofs: the half facing the sun is brighter
    sv = np.array([math.sin(math.radians(sun_az)), math.cos(math.radians(sun_az))])
    across = -np.sin(hd) * sv[0] + np.cos(hd) * sv[1]
    f = np.where(gabled[k], 1 + 0.25 * np.sign(v) * across, 1.0)
    edge = np.abs(v) > W / 2 - 0.4
    f = np.where(edge, f * 0.8, f)
    tex = 1 + 0.03 * rng.standard_normal(r.size)
    for i in range(refl.shape[0]):
        refl[i, r, c] = roof[k, i] * f * tex
    return heights


@dataclass
class Scenery:
    """The static part of a scene: everything that does not change between passes.

    ``raw``: (4, H, W) surface reflectance on the render grid ``grid``
    (``ss`` times finer than ``out_grid``); ``seen``: the same averaged to
    ``out_grid`` and blurred by the PSF (``psf_px`` output px). Both are
    read-only (they may be shared by the scenes of an archive). ``extra``:
    renderer-specific layers (e.g. the water mask of a port).
    """

    raw: np.ndarray
    seen: np.ndarray
    grid: Grid
    out_grid: Grid
    ss: int
    psf_px: float
    extra: dict = field(default_factory=dict)


def make_scenery(grid: Grid, out_grid: Grid, ss: int, psf_px: float, raw: np.ndarray, **extra) -> Scenery:
    """A :class:`Scenery` from the static reflectance ``raw`` on ``grid``."""
    seen = blur(block_mean(raw, ss), psf_px)
    raw.flags.writeable = False
    seen.flags.writeable = False
    return Scenery(raw, seen, grid, out_grid, ss, psf_px, extra)


_STATIC: dict = {}
_CACHE = {"size": 2}


def cache_size(n: int) -> int:
    """Keep at most ``n`` >= 1 sceneries in the in-process cache; returns the previous size."""
    old = _CACHE["size"]
    _CACHE["size"] = max(1, int(n))
    return old


def cached_static(key, build, enabled: bool):
    """Static scenery built once per ``key`` (the last 2 kept in-process); not copied: treat as read-only.

    An archive renders the same place many times: keeping its scenery
    fixed is both faster and truer (buildings do not move between passes).
    """
    if not enabled:
        return build()
    if key not in _STATIC:
        while len(_STATIC) >= _CACHE["size"]:
            _STATIC.pop(next(iter(_STATIC)))
        _STATIC[key] = build()
    return _STATIC[key]


def clear_cache() -> None:
    """Forget the cached scenery (frees its memory)."""
    _STATIC.clear()


def _merge_boxes(boxes: list[list[int]]) -> list[tuple[list[int], list[int]]]:
    """Merge overlapping pixel boxes [r0, c0, r1, c1]; returns (box, member indices) with disjoint boxes."""
    groups = [(list(b), [i]) for i, b in enumerate(boxes)]
    changed = True
    while changed:
        changed = False
        out: list[tuple[list[int], list[int]]] = []
        for b, m in groups:
            for o in out:
                ob = o[0]
                if b[0] < ob[2] and ob[0] < b[2] and b[1] < ob[3] and ob[1] < b[3]:
                    ob[0], ob[1] = min(ob[0], b[0]), min(ob[1], b[1])
                    ob[2], ob[3] = max(ob[2], b[2]), max(ob[3], b[3])
                    o[1].extend(m)
                    changed = True
                    break
            else:
                out.append((b, m))
        groups = out
    return [(b, sorted(m)) for b, m in groups]


def compose(scenery: Scenery, extents, draw, *, copy: bool = True) -> np.ndarray:
    """Output-grid reflectance (blurred) of ``scenery`` with the scene's moving objects drawn.

    ``extents``: map bounds (minx, miny, maxx, maxy; metres) of each
    object, its shadow included (``None``: nothing to draw). ``draw(refl, grid, members)`` paints the
    objects ``members`` (indices into ``extents``) on ``refl`` (4, h, w),
    a copy of the scenery's render-grid window ``grid``. Windows of
    overlapping objects are merged; each is averaged, blurred by the PSF
    and pasted back, margins included, so the result equals rendering the
    whole scene and blurring it. ``copy=False`` draws into ``scenery.seen``
    itself (only for a scenery nobody else uses).
    """
    og, ss = scenery.out_grid, scenery.ss
    out = scenery.seen.copy() if copy else scenery.seen
    out.flags.writeable = True
    if not len(extents):
        return out
    H, W = og.shape
    pad = psf_radius(scenery.psf_px) + 2
    boxes = []
    for e in extents:
        if e is None:
            boxes.append([0, 0, 0, 0])
            continue
        minx, miny, maxx, maxy = e
        boxes.append([max(0, int(math.floor((og.y0 - maxy) / og.gsd)) - pad),
                      max(0, int(math.floor((minx - og.x0) / og.gsd)) - pad),
                      min(H, int(math.ceil((og.y0 - miny) / og.gsd)) + pad),
                      min(W, int(math.ceil((maxx - og.x0) / og.gsd)) + pad)])
    r = psf_radius(scenery.psf_px)
    g = scenery.grid
    for (r0, c0, r1, c1), members in _merge_boxes(boxes):
        if r1 <= r0 or c1 <= c0:
            continue
        win = np.array(scenery.raw[:, r0 * ss:r1 * ss, c0 * ss:c1 * ss])
        sub = Grid(g.x0 + c0 * ss * g.gsd, g.y0 - r0 * ss * g.gsd, g.gsd, (c1 - c0) * ss, (r1 - r0) * ss)
        draw(win, sub, members)
        b = blur(block_mean(win, ss), scenery.psf_px)
        i0, j0 = (r if r0 > 0 else 0), (r if c0 > 0 else 0)
        i1, j1 = (r1 - r0) - (r if r1 < H else 0), (c1 - c0) - (r if c1 < W else 0)
        out[:, r0 + i0:r0 + i1, c0 + j0:c0 + j1] = b[:, i0:i1, j0:j1]
    return out


def finish_optical(refl, out_grid: Grid, rng, *, haze, haze_max: float, cloud: float, sun_az: float,
                   sun_el: float, psf_px: float, noise: float, dtype: str):
    """Sensor side of an optical scene: blurred reflectance on ``out_grid`` -> DN bands.

    Adds haze (drawn in 0..``haze_max`` when ``None``) and clouds with
    shadows (smooth fields, see :func:`monitor.synth.texture.atmosphere`),
    then noise and quantisation to ``dtype``. ``psf_px`` is only recorded.
    Returns ``(bands, meta)`` with the haze, cloud share, PSF and dtype used.
    """
    if haze is None:
        haze = float(rng.uniform(0.0, haze_max))
    atmo, cover = atmosphere(out_grid, rng, haze=haze, cloud=cloud, sun_az=sun_az, sun_el=sun_el, roles=ROLES4)
    bands = observe(refl, ROLES4, atmo, rng, noise=noise, dtype=dtype)
    meta = dict(haze=round(haze, 3), cloud=round(cover, 4), cloud_requested=cloud,
                psf_px=round(psf_px, 3), dtype=dtype)
    return bands, meta


def draw_psf(rng, psf_px=None) -> float:
    """The PSF sigma in output px: ``psf_px``, or drawn in 0.5..0.9."""
    return float(rng.uniform(0.5, 0.9)) if psf_px is None else float(psf_px)


def optical_setup(out_grid, gsd_m: float, when, rng, *, snow, seed: int, static_seed, aoi_id: str, psf_px):
    """What an optical rail or port scene needs before drawing: the render
    grid (supersampled to ~1 m when ``gsd_m`` > 1.2 m), the season's
    greenness, snow (drawn from ``rng`` when None), the scenery seed
    (``static_seed``, else ``seed``: the scenery is the same whether it
    comes from the cache or not) and the sensor PSF (fixed per scenery
    seed). Returns (grid, ss, green, snow, sseed, psf), ``ss`` the
    supersampling factor of ``grid`` over ``out_grid``."""
    ss = max(1, int(math.ceil(gsd_m / 1.0 - 1e-9))) if gsd_m > 1.2 else 1
    grid = out_grid.finer(ss)
    green, snow_p = season(when.month)
    if snow is None:
        snow = rng.random() < snow_p
    sseed = seed if static_seed is None else static_seed
    psf = draw_psf(rng_for(sseed, aoi_id, "psf", gsd_m), psf_px)
    return grid, ss, green, snow, sseed, psf
