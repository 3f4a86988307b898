"""Building blocks shared by the synthetic renderers: grids, noise, sun, sensor.

Everything here is vectorised numpy; no per-pixel Python loops. Distances
and sizes are in metres of the scene CRS (a UTM zone) unless a name ends in
``_px`` (pixels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from affine import Affine
from scipy import ndimage


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: origin (top-left corner, metres), pixel size, shape."""

    x0: float
    y0: float
    gsd: float
    width: int
    height: int

    @property
    def transform(self) -> Affine:
        return Affine(self.gsd, 0.0, self.x0, 0.0, -self.gsd, self.y0)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0 - self.height * self.gsd, self.x0 + self.width * self.gsd, self.y0)

    def xy(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates (metres) of pixel centres."""
        return self.x0 + (cols + 0.5) * self.gsd, self.y0 - (rows + 0.5) * self.gsd

    def finer(self, factor: int) -> "Grid":
        """The same extent with pixels ``factor`` times smaller."""
        return Grid(self.x0, self.y0, self.gsd / factor, self.width * factor, self.height * factor)

    @classmethod
    def around(cls, bounds, gsd: float, margin: float = 0.0) -> "Grid":
        """A grid covering ``bounds`` (minx, miny, maxx, maxy) plus ``margin`` metres."""
        minx, miny, maxx, maxy = bounds
        x0 = math.floor((minx - margin) / gsd) * gsd
        y1 = math.ceil((maxy + margin) / gsd) * gsd
        w = int(math.ceil((maxx + margin - x0) / gsd))
        h = int(math.ceil((y1 - (miny - margin)) / gsd))
        return cls(x0, y1, gsd, max(w, 1), max(h, 1))


# ---------------------------------------------------------------------------
# noise
# ---------------------------------------------------------------------------

def _bspline_matrix(n_out: int, n_in: int, cell: float, offset: float) -> np.ndarray:
    """Cubic B-spline interpolation weights from a coarse lattice to ``n_out`` samples (4 per row)."""
    t = (np.arange(n_out, dtype=np.float64) + 0.5) / cell + offset  # position in lattice units
    j0 = np.floor(t).astype(np.int64) - 1
    m = np.zeros((n_out, n_in), np.float32)
    rows = np.arange(n_out)
    for k in range(4):
        j = j0 + k
        d = np.abs(t - j)
        w = np.where(d < 1, 2 / 3 - d ** 2 + d ** 3 / 2, np.where(d < 2, (2 - d) ** 3 / 6, 0.0))
        ok = (j >= 0) & (j < n_in)
        m[rows[ok], j[ok]] = w[ok]
    return m


def white(shape, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean unit-variance white noise (uniform: ~3x cheaper to draw than Gaussian)."""
    out = rng.random(shape, dtype=np.float32)
    out -= np.float32(0.5)
    out *= np.float32(3.4641016)
    return out


def smooth_noise(shape: tuple[int, int], cell_px: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field (std ~1) with features ``cell_px`` pixels wide.

    Coarse cells: value noise on a lattice interpolated with cubic
    B-splines, done as two matrix products (cost ~ h*w*lattice rows).
    Fine cells (< 6 px): Gaussian-filtered white noise.
    """
    h, w = shape
    cell_px = max(float(cell_px), 1.0)
    if cell_px <= 1.5:
        return rng.standard_normal(shape, dtype=np.float32)
    if cell_px < 6:
        sigma = cell_px / 2.5
        n = ndimage.gaussian_filter(white(shape, rng), sigma, truncate=2.5)
        return n * np.float32(2 * math.sqrt(math.pi) * sigma)
    gh = int(math.ceil(h / cell_px)) + 4
    gw = int(math.ceil(w / cell_px)) + 4
    lat = rng.standard_normal((gh, gw), dtype=np.float32)
    oy, ox = rng.uniform(1, 2, size=2)
    wy = _bspline_matrix(h, gh, cell_px, oy)
    wx = _bspline_matrix(w, gw, cell_px, ox)
    out = (wy @ lat) @ wx.T
    return (out * 1.6).astype(np.float32, copy=False)  # B-spline smoothing shrinks variance


def fractal_noise(shape, cells_px, rng, persistence: float = 0.55) -> np.ndarray:
    """Sum of :func:`smooth_noise` octaves, coarse to fine, normalised to std ~1."""
    out = np.zeros(shape, np.float32)
    amp, tot = 1.0, 0.0
    for c in cells_px:
        out += amp * smooth_noise(shape, c, rng)
        tot += amp * amp
        amp *= persistence
    out /= math.sqrt(tot)
    return out


def cells_for(gsd: float, sizes_m) -> list[float]:
    """Lattice cells in pixels for feature sizes in metres (dropping the sub-pixel ones)."""
    return [s / gsd for s in sizes_m if s / gsd >= 1.0] or [1.0]


# ---------------------------------------------------------------------------
# geometry helpers
# ---------------------------------------------------------------------------

def box_coverage(d: np.ndarray, width: float, pix: float) -> np.ndarray:
    """Share of a pixel (1-D box of ``pix`` m) covered by a strip ``width`` m wide.

    ``d`` is the distance (m) from the pixel centre to the strip's centre
    line: the exact box-filtered (anti-aliased) profile of a thin line.
    """
    hi = np.minimum(d + pix / 2, width / 2)
    lo = np.maximum(d - pix / 2, -width / 2)
    return np.clip(hi - lo, 0, None) / pix


def periodic_coverage(s: np.ndarray, period: float, width: float, pix: float) -> np.ndarray:
    """Box-filtered square wave: share of [s-pix/2, s+pix/2] inside bars ``width`` m every ``period`` m."""
    def F(x):
        k = np.floor(x / period)
        return k * width + np.clip(x - k * period, 0, width)
    return (F(s + pix / 2) - F(s - pix / 2)) / pix


def oriented_rect(cx, cy, heading, length, width):
    """Corners (4, 2) of a rectangle centred at (cx, cy), long axis at ``heading`` radians from +x."""
    c, s = math.cos(heading), math.sin(heading)
    hl, hw = length / 2, width / 2
    pts = [(-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)]
    return [(cx + u * c - v * s, cy + u * s + v * c) for u, v in pts]


def local_coords(grid: Grid, rows, cols, cx, cy, heading):
    """(u, v): along / across coordinates (m) of pixel centres relative to per-pixel frames."""
    x, y = grid.xy(rows, cols)
    dx, dy = x - cx, y - cy
    c, s = np.cos(heading), np.sin(heading)
    return dx * c + dy * s, -dx * s + dy * c


# ---------------------------------------------------------------------------
# sun
# ---------------------------------------------------------------------------

def sun_position(when: datetime, lat: float, lon: float) -> tuple[float, float]:
    """Solar azimuth (degrees clockwise from north) and elevation (degrees).

    NOAA low-precision formulas (good to ~0.5 degree); ``when`` is UTC (a
    naive datetime is taken as UTC).
    """
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    doy = when.timetuple().tm_yday
    hour = when.hour + when.minute / 60 + when.second / 3600
    g = 2 * math.pi / 365 * (doy - 1 + (hour - 12) / 24)
    eqt = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
                    - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g))
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g) - 0.006758 * math.cos(2 * g)
            + 0.000907 * math.sin(2 * g) - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    tst = hour * 60 + eqt + 4 * lon
    ha = math.radians(tst / 4 - 180)
    la = math.radians(lat)
    cosz = math.sin(la) * math.sin(decl) + math.cos(la) * math.cos(decl) * math.cos(ha)
    zen = math.acos(max(-1.0, min(1.0, cosz)))
    elev = 90 - math.degrees(zen)
    az = math.degrees(math.atan2(math.sin(ha), math.cos(ha) * math.sin(la) - math.tan(decl) * math.cos(la))) + 180
    return az % 360, elev


def shadow_vector(azimuth_deg: float, elevation_deg: float, height_m: float) -> tuple[float, float]:
    """Ground offset (dx east, dy north; m) of the shadow of a point ``height_m`` above ground."""
    el = max(elevation_deg, 5.0)
    d = height_m / math.tan(math.radians(el))
    a = math.radians(azimuth_deg)
    return -d * math.sin(a), -d * math.cos(a)


def local_overpass(day: datetime, lon: float, local_hour: float = 10.5) -> datetime:
    """UTC time of a sun-synchronous overpass at ``local_hour`` mean solar time."""
    d = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    from datetime import timedelta
    return d + timedelta(hours=local_hour - lon / 15.0)


# ---------------------------------------------------------------------------
# atmosphere and sensor
# ---------------------------------------------------------------------------

def cloud_fields(grid: Grid, cover: float, shift_m: tuple[float, float], rng: np.random.Generator):
    """Soft fractal cloud opacity (0..1) and its shadow, offset by ``shift_m`` (dx, dy) metres.

    The field is drawn on a coarse lattice (clouds are smooth at 20 m and
    up) over the scene plus the shadow offset, then resampled, so the cost
    does not grow with the offset.
    """
    h, w = grid.shape
    if cover <= 0:
        z = np.zeros((h, w), np.float32)
        return z, z
    coarse = max(4.0, 16.0 / grid.gsd)  # coarse pixel = max(4 px, 16 m)
    sx, sy = shift_m[0] / grid.gsd / coarse, -shift_m[1] / grid.gsd / coarse  # in coarse px (col, row)
    ch, cw = int(math.ceil(h / coarse)) + 2, int(math.ceil(w / coarse)) + 2
    pad_r, pad_c = int(math.ceil(abs(sy))) + 2, int(math.ceil(abs(sx))) + 2
    big = (ch + 2 * pad_r, cw + 2 * pad_c)
    n = fractal_noise(big, [96 / coarse * 8, 24 / coarse * 8, 6 / coarse * 8, 2], rng, persistence=0.5)
    # threshold so that about `cover` of the area is cloudy, soft edges
    thr = np.quantile(n, 1 - min(cover, 0.999))
    op = np.clip((n - thr) / 0.6, 0, 1) ** 0.8
    op = np.clip(op * 1.15, 0, 1)

    def crop(dr, dc):
        r0, c0 = pad_r - dr, pad_c - dc
        sub = ndimage.shift(op, (-(r0 % 1), -(c0 % 1)), order=1, mode="nearest")
        ri, ci = int(r0 // 1), int(c0 // 1)
        sub = sub[ri:ri + ch, ci:ci + cw]
        z = ndimage.zoom(sub, coarse, order=1, grid_mode=True, mode="nearest")
        return np.ascontiguousarray(z[:h, :w]).astype(np.float32)
    cloud = crop(0.0, 0.0)
    shadow = crop(sy, sx)
    return cloud, shadow


def apply_atmosphere(refl: np.ndarray, roles, grid: Grid, rng, *, haze: float, cloud: float,
                     sun_az: float, sun_el: float) -> tuple[np.ndarray, np.ndarray]:
    """Haze (path radiance + contrast loss), clouds and cloud shadows, in place.

    Returns (refl, cloud_opacity). ``haze`` 0..1 (0 clear, 0.3 hazy).
    """
    h, w = grid.shape
    path = {"blue": 0.09, "green": 0.065, "red": 0.045, "nir": 0.025, "pan": 0.055, "gray": 0.055}
    if haze > 0:
        hv = np.float32(haze) * (1 + np.float32(0.35) * smooth_noise((h, w), max(2.0, 400 / grid.gsd), rng))
        np.clip(hv, 0, 1, out=hv)
        k = 1 - np.float32(0.25) * hv  # transmittance loss
        for i, r in enumerate(roles):
            refl[i] *= k
            refl[i] += hv * np.float32(path.get(r, 0.05))
    cloud_h = rng.uniform(600, 2000)
    cov, sh = cloud_fields(grid, cloud, shadow_vector(sun_az, sun_el, cloud_h), rng)
    if cloud > 0:
        tex = 1 + 0.06 * smooth_noise((h, w), max(2.0, 30 / grid.gsd), rng)
        for i, r in enumerate(roles):
            top = {"blue": 0.62, "green": 0.6, "red": 0.58, "nir": 0.55}.get(r, 0.6)
            refl[i] *= 1 - 0.65 * sh
            refl[i] = refl[i] * (1 - cov) + cov * top * tex
    return refl, cov


def blur_noise_quantize(refl: np.ndarray, rng, *, psf_px: float, noise: float, dtype: str) -> np.ndarray:
    """Sensor model: Gaussian PSF, signal-dependent noise, quantisation.

    ``refl`` is top-of-atmosphere-like reflectance (0..1). ``dtype``:
    ``"uint16"`` -> reflectance * 10000; ``"uint8"`` -> a visual product
    (gamma 1/1.6, 0.45 reflectance = 255); ``"float32"`` -> reflectance.
    """
    out = np.empty_like(refl)
    # one noise field, shifted per band: bands get independent-looking noise for one draw
    n = white(refl.shape[1:], rng)
    for i in range(refl.shape[0]):
        b = ndimage.gaussian_filter(refl[i], psf_px, truncate=2.5) if psf_px > 0 else refl[i]
        ni = np.roll(n, (17 * i, 31 * i), axis=(0, 1)) if i else n
        out[i] = b + ni * (noise * 0.4 + noise * 1.2 * np.sqrt(np.clip(b, 0, None)))
    if dtype == "uint16":
        return np.clip(out * 10000, 1, 65535).astype(np.uint16)
    if dtype == "uint8":
        return (np.clip(np.clip(out, 0, None) / 0.45, 0, 1) ** (1 / 1.6) * 254 + 1).astype(np.uint8)
    return out.astype(np.float32)


def block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Average ``f`` x ``f`` blocks of the last two axes (box down-sampling)."""
    if f == 1:
        return a
    *lead, h, w = a.shape
    a = a[..., : h - h % f, : w - w % f]
    return a.reshape(*lead, h // f, f, w // f, f).mean(axis=(-3, -1), dtype=np.float32)


def rng_for(seed, *keys) -> np.random.Generator:
    """A generator derived from a seed and string/int keys (stable across runs)."""
    import zlib
    parts = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(str(k).encode()) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(parts))
