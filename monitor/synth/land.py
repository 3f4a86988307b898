"""Land cover shared by rail and port scenes: ground, roads, buildings, boxes.

Reflectances are surface reflectance (0..1) per band role; colours below
are (red, green, blue, nir). Geometry is in the scene CRS (metres).
"""

from __future__ import annotations

import math

import numpy as np
import shapely
import shapely.affinity
from rasterio import features
from shapely.geometry import LineString, Polygon, box

from monitor.synth.texture import Grid, apply_atmosphere, block_mean, blur_noise_quantize, white, cells_for, fractal_noise, local_coords, oriented_rect, shadow_vector, smooth_noise

ROLES4 = ("red", "green", "blue", "nir")

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
    """Textured bare soil / grass / snow (4, h, w) reflectance."""
    h, w = grid.shape
    green, _ = season(month)
    g = grid.gsd
    n1 = fractal_noise((h, w), cells_for(g, [120, 30]), rng)
    n2 = fractal_noise((h, w), cells_for(g, [12, 3]), rng)
    veg = np.clip(0.5 + 0.45 * n1, 0, 1) * (0.25 + 0.75 * green)
    dry = np.clip(0.5 - 0.4 * n1, 0, 1)
    out = np.empty((4, h, w), np.float32)
    fine = 1 + 0.07 * n2 + 0.03 * white((h, w), rng)
    for i in range(4):
        soil = C["soil"][i] * (1 - 0.35 * dry) + C["soil_dark"][i] * 0.35 * dry
        veg_col = C["grass"][i] * green + C["dry_grass"][i] * (1 - green)
        out[i] = (soil * (1 - veg) + veg_col * veg) * fine
    if snow:
        cover = np.clip(0.75 + 0.5 * n1 + 0.15 * n2, 0, 1)
        for i in range(4):
            out[i] = out[i] * (1 - cover) + C["snow"][i] * cover * (1 + 0.03 * n2)
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


def draw_buildings(refl, grid, rng, boxes, sun_az, sun_el):
    """Flat and gabled roofs with shadows. ``boxes`` from :func:`place_boxes`."""
    if not boxes:
        return []
    heights = rng.uniform(3.5, 12.0, len(boxes))
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


_STATIC: dict = {}


def cached_static(key, build, enabled: bool):
    """Static scenery (ground, buildings, tracks) built once per ``key`` (2 kept), returned as copies.

    An archive renders the same place many times: keeping its scenery
    fixed is both faster and truer (buildings do not move between passes).
    """
    if not enabled:
        return build()
    if key not in _STATIC:
        if len(_STATIC) >= 2:
            _STATIC.pop(next(iter(_STATIC)))
        _STATIC[key] = build()
    v = _STATIC[key]
    return tuple(a.copy() for a in v) if isinstance(v, tuple) else v.copy()


def finish_optical(refl, ss: int, out_grid: Grid, rng, *, haze, haze_max: float, cloud: float, sun_az: float,
                   sun_el: float, psf_px, noise: float, dtype: str):
    """Sensor side of an optical scene: supersampled reflectance -> DN bands.

    Averages ``ss`` x ``ss`` blocks to the output grid, adds haze (drawn in
    0..``haze_max`` when ``None``) and clouds with shadows, then blur (PSF
    drawn in 0.5..0.9 px when ``None``), noise and quantisation to ``dtype``.
    Returns ``(bands, meta)`` with the haze, cloud share, PSF and dtype used.
    """
    refl = block_mean(refl, ss)
    if haze is None:
        haze = float(rng.uniform(0.0, haze_max))
    refl, cov = apply_atmosphere(refl, ROLES4, out_grid, rng, haze=haze, cloud=cloud, sun_az=sun_az, sun_el=sun_el)
    if psf_px is None:
        psf_px = float(rng.uniform(0.5, 0.9))
    bands = blur_noise_quantize(refl, rng, psf_px=psf_px, noise=noise, dtype=dtype)
    meta = dict(haze=round(haze, 3), cloud=round(float(cov.mean()), 4), cloud_requested=cloud,
                psf_px=round(psf_px, 3), dtype=dtype)
    return bands, meta
