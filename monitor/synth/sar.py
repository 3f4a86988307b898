"""Radar (SAR) rendering: sigma0 in linear power with multiplicative speckle.

Land is bright textured clutter (K-distributed: a gamma texture times
speckle), buildings give strong double-bounce points, water is dark and
wind-dependent, ships are clusters of strong scatterers with the cross
shaped sidelobes of an unweighted SAR impulse response. Speckle is gamma
with shape = looks and mean 1 (multi-looked intensity).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from monitor.synth import land
from monitor.synth.texture import Grid, block_mean, cells_for, fractal_noise, smooth_noise


def _sidelobes(img: np.ndarray, strength: float = 0.05, n: int = 6) -> np.ndarray:
    """Add sinc^2 sidelobes along rows and columns (range / azimuth) of bright points."""
    k = np.arange(-n, n + 1)
    sinc2 = np.sinc(k / 1.0 + 0.5) ** 2  # peaks at half-integers give the sidelobe ladder
    sinc2[n] = 0
    sinc2 = sinc2 / sinc2.max() * strength
    out = img + ndimage.convolve1d(img, sinc2, axis=0, mode="constant") + ndimage.convolve1d(img, sinc2, axis=1, mode="constant")
    return out


def render_sar(grid: Grid, u, rng, *, objects=(), water=None, tracks=(), looks: int = 4, wind=None) -> np.ndarray:
    """(1, h, w) float32 linear sigma0 (VV) of the AOI ``u`` (in the grid CRS).

    ``objects``: (polygon, height_m) of ships or railcars: bright clusters.
    ``water``: a (Multi)Polygon where the sea is; ``tracks``: (id, line).
    """
    ss = max(1, min(4, int(math.ceil(grid.gsd / 2.5))))
    fg = grid.finer(ss)
    h, w = fg.shape
    g = fg.gsd
    n = fractal_noise((h, w), cells_for(g, [300, 80, 20]), rng)
    # land: ~ -10 dB with texture (fields, woods, settlements)
    sig = (0.08 * np.exp(0.6 * n)).astype(np.float32)
    tex = rng.gamma(6.0, 1 / 6.0, size=(h, w)).astype(np.float32)
    sig *= tex
    if water is not None and not water.is_empty:
        wm = land.rasterize(fg, [(water, 1)]).astype(bool)
        wind = float(rng.uniform(2, 9)) if wind is None else float(wind)
        s_w = 0.0015 * wind ** 1.6  # ~ -25 dB calm .. -13 dB windy
        wn = smooth_noise((h, w), max(2.0, 400 / g), rng)
        sig[wm] = (s_w * np.exp(0.35 * wn[wm])).astype(np.float32)
        # quays / shorelines: bright double bounce
        edge = wm ^ ndimage.binary_erosion(wm, iterations=1)
        sig[edge] *= 4
    for tid, line in tracks:
        m = land.rasterize(fg, [(line.buffer(2.0), 1)]).astype(bool)
        sig[m] = sig[m] * 0.6 + 0.25
    # buildings in the boundary-away areas: random strong points
    nb = int(u.boundary.area / 8000)
    if nb:
        minx, miny, maxx, maxy = fg.bounds
        bx = rng.uniform(minx, maxx, nb)
        by = rng.uniform(miny, maxy, nb)
        cols = ((bx - fg.x0) / g).astype(int)
        rows = ((fg.y0 - by) / g).astype(int)
        ok = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        rows, cols = rows[ok], cols[ok]
        if water is not None and not water.is_empty:
            keep = ~wm[rows, cols]
            rows, cols = rows[keep], cols[keep]
        pts = np.zeros((h, w), np.float32)
        pts[rows, cols] = rng.lognormal(1.0, 1.0, rows.size) * (g * g / 4)
        sig += ndimage.maximum_filter(pts, size=max(1, int(round(8 / g))))
    if objects:
        ids = land.rasterize(fg, [(p, i + 1) for i, (p, _h) in enumerate(objects)], dtype="int32",
                             all_touched=True)
        r, c = np.nonzero(ids)
        if r.size:
            k = ids[r, c] - 1
            hgt = np.array([hh for _p, hh in objects], float)[k]
            pts = np.zeros((h, w), np.float32)
            # hull: bright; a few very strong scatterers (superstructure, cranes, dihedrals)
            pts[r, c] = rng.gamma(1.5, 1.0, r.size) * (0.6 + 0.08 * hgt)
            strong = rng.random(r.size) < 0.08
            pts[r[strong], c[strong]] *= rng.lognormal(2.0, 0.8, strong.sum())
            sig += _sidelobes(pts, strength=0.06)
    sig = block_mean(sig[None], ss)[0] if ss > 1 else sig
    speck = rng.gamma(float(looks), 1.0 / float(looks), size=sig.shape).astype(np.float32)
    out = (sig * speck).astype(np.float32)
    # thermal noise floor (NESZ ~ -24 dB)
    out += rng.exponential(0.004, size=out.shape).astype(np.float32)
    return out[None]
