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

from monitor.sun import sun_position  # noqa: F401  (re-exported: part of monitor.synth.texture's API)


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


def _bspline_taps(n_out: int, n_in: int, cell: float, offset: float):
    """The 4 (index, weight) taps per sample of :func:`_bspline_matrix`: int (4, n_out), float32 (4, n_out)."""
    t = (np.arange(n_out, dtype=np.float64) + 0.5) / cell + offset
    j0 = np.floor(t).astype(np.int64) - 1
    idx = np.empty((4, n_out), np.int64)
    wts = np.empty((4, n_out), np.float32)
    for k in range(4):
        j = j0 + k
        d = np.abs(t - j)
        wk = np.where(d < 1, 2 / 3 - d ** 2 + d ** 3 / 2, np.where(d < 2, (2 - d) ** 3 / 6, 0.0))
        ok = (j >= 0) & (j < n_in)
        idx[k] = np.clip(j, 0, n_in - 1)
        wts[k] = np.where(ok, wk, 0.0)
    return idx, wts


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
    if gw <= 512:  # small lattice: dense products (BLAS) are cheapest
        wy = _bspline_matrix(h, gh, cell_px, oy)
        wx = _bspline_matrix(w, gw, cell_px, ox)
        out = (wy @ lat) @ wx.T
        return (out * 1.6).astype(np.float32, copy=False)  # B-spline smoothing shrinks variance
    # large lattice: the B-spline has 4 taps per axis; apply them directly, by blocks of rows
    jy, wy = _bspline_taps(h, gh, cell_px, oy)
    jx, wx = _bspline_taps(w, gw, cell_px, ox)
    rows = wy[0][:, None] * lat[jy[0]]
    for k in range(1, 4):
        rows += wy[k][:, None] * lat[jy[k]]
    out = np.empty((h, w), np.float32)
    wx = wx * np.float32(1.6)
    for r0 in range(0, h, 64):
        blk = rows[r0:r0 + 64]
        o = out[r0:r0 + 64]
        np.multiply(blk[:, jx[0]], wx[0], out=o)
        for k in range(1, 4):
            o += blk[:, jx[k]] * wx[k]
    return out


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
# sun (the position itself: monitor.sun.sun_position, re-exported here)
# ---------------------------------------------------------------------------

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

def _coarse_cloud(grid: Grid, cover: float, shift_m: tuple[float, float], rng: np.random.Generator, coarse: float):
    """Cloud opacity and its shadow (0..1) on the coarse lattice (``coarse`` output px per cell).

    The fractal field is drawn over the scene plus the shadow offset, so
    the cost does not grow with the offset; shapes (ch, cw) cover the
    output grid with one spare cell after its edge.
    """
    h, w = grid.shape
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
        return np.ascontiguousarray(sub[ri:ri + ch, ci:ci + cw], dtype=np.float32)
    return crop(0.0, 0.0), crop(sy, sx)


class Upsampler:
    """Bilinear up-sampling of coarse fields (``factor`` output px per cell) to a (h, w) grid, by row blocks.

    Cell centres sit at ``(i + 0.5) * factor`` output px (pixel-edge
    aligned, like ``scipy.ndimage.zoom(..., grid_mode=True)``); edges are
    clamped. The column pass is done once on the coarse rows, so a block
    of rows costs three array operations per field.
    """

    def __init__(self, shape: tuple[int, int], factor: float, fields: dict[str, np.ndarray]):
        h, w = shape
        self.shape = shape

        def axis(n_out, n_in):
            t = np.clip((np.arange(n_out) + 0.5) / factor - 0.5, 0, n_in - 1)
            j0 = np.minimum(np.floor(t).astype(np.int64), max(n_in - 2, 0))
            return j0, np.minimum(j0 + 1, n_in - 1), (t - j0).astype(np.float32)
        self.cols = {}
        for k, f in fields.items():
            i0, i1, b = axis(w, f.shape[1])
            self.cols[k] = f[:, i0] * (1 - b) + f[:, i1] * b  # (ch, w)
        self.rows = axis(h, next(iter(fields.values())).shape[0])

    def blocks(self, max_rows: int = 32):
        """(r0, r1) row blocks of at most ``max_rows`` that lie between two lattice rows (cheap :meth:`rows_of`)."""
        j0 = self.rows[0]
        h = len(j0)
        cut = np.flatnonzero(np.diff(j0)) + 1
        edges = np.concatenate([[0], cut, [h]])
        for a, b in zip(edges[:-1], edges[1:]):
            for r0 in range(int(a), int(b), max_rows):
                yield r0, min(int(b), r0 + max_rows)

    def rows_of(self, key: str, r0: int, r1: int) -> np.ndarray:
        """Field ``key`` for output rows r0..r1 (float32 (r1 - r0, w))."""
        j0, j1, a = (x[r0:r1] for x in self.rows)
        f = self.cols[key]
        if j0[0] == j0[-1] and j1[0] == j1[-1]:  # one pair of lattice rows: a broadcast blend
            f0 = f[j0[0]]
            out = np.multiply(a[:, None], (f[j1[0]] - f0)[None, :])
            out += f0[None, :]
            return out
        out = f[j0]
        out *= (1 - a)[:, None]
        out += f[j1] * a[:, None]
        return out


PATH_RADIANCE = {"blue": 0.09, "green": 0.065, "red": 0.045, "nir": 0.025, "pan": 0.055, "gray": 0.055}
CLOUD_TOP = {"blue": 0.62, "green": 0.6, "red": 0.58, "nir": 0.55}


def atmosphere(grid: Grid, rng, *, haze: float, cloud: float, sun_az: float, sun_el: float,
               roles=("red", "green", "blue", "nir")):
    """Haze (path radiance + contrast loss), clouds and cloud shadows as smooth coarse fields.

    Returns ``(fields, cover)``: an :class:`Upsampler` of ``"a"`` (gain)
    and one additive field per band role, such that the observed
    reflectance of band ``b`` is ``refl * a + fields[b]`` (path radiance
    ``PATH_RADIANCE[b]`` weighted by the haze, plus the cloud top
    ``CLOUD_TOP[b]`` weighted by the cloud opacity); and the mean cloud
    opacity. All fields are smooth at >= 16 m, so they are drawn on
    a lattice of max(4 px, 16 m) cells: the cost follows the lattice, not
    the scene. ``haze`` 0..1 (0 clear, 0.3 hazy); ``cloud`` cover 0..1.
    """
    h, w = grid.shape
    coarse = max(4.0, 16.0 / grid.gsd)  # output px per lattice cell
    shape = (int(math.ceil(h / coarse)) + 2, int(math.ceil(w / coarse)) + 2)
    if haze > 0:
        hv = np.float32(haze) * (1 + np.float32(0.35) * smooth_noise(shape, max(2.0, 400 / grid.gsd / coarse), rng))
        np.clip(hv, 0, 1, out=hv)
    else:
        hv = np.zeros(shape, np.float32)
    gain = 1 - np.float32(0.25) * hv  # transmittance loss
    cloud_h = rng.uniform(600, 2000)
    top = None
    cover = 0.0
    if cloud > 0:
        cov, sh = _coarse_cloud(grid, cloud, shadow_vector(sun_az, sun_el, cloud_h), rng, coarse)
        tex = 1 + np.float32(0.06) * smooth_noise(shape, max(1.0, 30 / grid.gsd / coarse), rng)
        clear = (1 - np.float32(0.65) * sh) * (1 - cov)
        top = cov * tex
        gain = gain * clear
        hv = hv * clear
        ch_, cw_ = int(math.ceil(h / coarse)), int(math.ceil(w / coarse))
        cover = float(cov[:ch_, :cw_].mean())
    fields = {"a": gain}
    for r in roles:
        add = np.float32(PATH_RADIANCE.get(r, 0.05)) * hv
        if top is not None:
            add += np.float32(CLOUD_TOP.get(r, 0.6)) * top
        fields[r] = add
    return Upsampler((h, w), coarse, {k: v.astype(np.float32, copy=False) for k, v in fields.items()}), cover


def _gauss_kernel(psf_px: float) -> tuple[np.ndarray, int]:
    r = psf_radius(psf_px)
    x = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (x / psf_px) ** 2)
    return (k / k.sum()).astype(np.float32), r


def _blur_band(a: np.ndarray, psf_px: float, out: np.ndarray, block: int = 32) -> np.ndarray:
    """Separable Gaussian of one band by blocks of rows (both passes in cache); edges mirrored like scipy's 'reflect'."""
    k, r = _gauss_kernel(psf_px)
    h, w = a.shape
    if r == 0:
        out[...] = a
        return out
    if h <= 2 * r or w <= 2 * r:
        return ndimage.gaussian_filter(a, psf_px, truncate=2.5, output=out)
    pad = np.empty((block + 2 * r, w + 2 * r), np.float32)
    hor = np.empty((block + 2 * r, w), np.float32)
    for r0 in range(0, h, block):
        r1 = min(h, r0 + block)
        lo, hi = r0 - r, r1 + r
        m = hi - lo
        p = pad[:m]
        if lo >= 0 and hi <= h:
            p[:, r:r + w] = a[lo:hi]
        else:
            idx = np.arange(lo, hi)
            idx = np.where(idx < 0, -idx - 1, idx)
            idx = np.where(idx >= h, 2 * h - idx - 1, idx)
            p[:, r:r + w] = a[idx]
        for j in range(1, r + 1):
            p[:, r - j] = p[:, r + j - 1]
            p[:, r + w - 1 + j] = p[:, r + w - j]
        hh = hor[:m]
        np.multiply(p[:, r:r + w], k[r], out=hh)
        for j in range(1, r + 1):
            hh += k[r + j] * (p[:, r - j:r - j + w] + p[:, r + j:r + j + w])
        o = out[r0:r1]
        n = r1 - r0
        np.multiply(hh[r:r + n], k[r], out=o)
        for j in range(1, r + 1):
            o += k[r + j] * (hh[r - j:r - j + n] + hh[r + j:r + j + n])
    return out


def blur(refl: np.ndarray, psf_px: float) -> np.ndarray:
    """Gaussian PSF (sigma ``psf_px`` px, truncated at 2.5 sigma) of each band of (n, h, w); a new float32 array.

    Same result as ``scipy.ndimage.gaussian_filter(band, psf_px, truncate=2.5)``
    (to float rounding), 3-4x faster: both passes run on blocks of rows.
    """
    refl = np.asarray(refl, np.float32)
    if psf_px <= 0:
        return refl.copy()
    out = np.empty_like(refl)
    for i in range(refl.shape[0]):
        _blur_band(refl[i], psf_px, out[i])
    return out


def psf_radius(psf_px: float) -> int:
    """Half width (px) of the truncated Gaussian of :func:`blur`."""
    return int(2.5 * psf_px + 0.5) if psf_px > 0 else 0


def _gamma_lut(levels: int = 16384) -> np.ndarray:
    x = (np.arange(levels) + 0.5) / levels
    return (x ** (1 / 1.6) * 254 + 1).astype(np.uint8)


_LUT8 = _gamma_lut()


def observe(refl: np.ndarray, roles, atmo: "Upsampler", rng, *, noise: float, dtype: str,
            block_rows: int = 32) -> np.ndarray:
    """Sensor model after the PSF: atmosphere, signal-dependent noise, quantisation.

    ``refl`` (n, h, w) is blurred surface reflectance (0..1); ``atmo``
    from :func:`atmosphere`. ``dtype``: ``"uint16"`` -> reflectance *
    10000 (>= 1); ``"uint8"`` -> a visual product (gamma 1/1.6, 0.45
    reflectance = 255, >= 1); ``"float32"`` -> reflectance. Done in blocks
    of rows, so the temporaries stay in cache. One white-noise field is
    drawn, each band reads it at its own offset.
    """
    n, h, w = refl.shape
    nz = white((h + 17 * n, w + 31 * n), rng)
    out = np.empty((n, h, w), {"uint16": np.uint16, "uint8": np.uint8}.get(dtype, np.float32))
    k0, k1 = np.float32(noise * 0.4), np.float32(noise * 1.2)
    for r0, r1 in atmo.blocks(block_rows):
        a = atmo.rows_of("a", r0, r1)
        for i, role in enumerate(roles):
            t = refl[i, r0:r1] * a
            t += atmo.rows_of(role, r0, r1)
            sd = np.maximum(t, 0)
            np.sqrt(sd, out=sd)
            sd *= k1
            sd += k0
            sd *= nz[17 * i + r0:17 * i + r1, 31 * i:31 * i + w]
            t += sd
            if dtype == "uint16":
                t *= np.float32(10000)
                np.clip(t, 1, 65535, out=t)
                out[i, r0:r1] = t
            elif dtype == "uint8":
                t *= np.float32(len(_LUT8) / 0.45)
                np.clip(t, 0, len(_LUT8) - 1, out=t)
                out[i, r0:r1] = _LUT8[t.astype(np.int32)]
            else:
                out[i, r0:r1] = t
    return out


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
