"""Track strips: a chip sampled along a track centreline.

A *strip* straightens one track: row ``i`` is the station at ``s[i]``
metres along the line, column ``j`` the perpendicular offset ``o[j]``
metres (positive to the left of the line's direction). Sampling uses
:func:`bilinear` (the four neighbours of each sample, all bands at once) on the chip grid; a
sample is valid when the chip is valid there (not nodata, not cloud) and
inside the chip.

All coordinates are in the chip's CRS (metres).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely


@dataclass
class Strip:
    """One track's chip samples on a (station, offset) grid.

    s: stations along the centreline, metres from its start (ns,).
    o: perpendicular offsets, metres, positive to the left (no,).
    xy: centreline points (ns, 2) in chip CRS (after any snapping shift).
    normal: unit left normals (ns, 2).
    values: float32 (n_bands, ns, no) samples of the (normalised) bands.
    valid: bool (ns, no).
    """

    s: np.ndarray
    o: np.ndarray
    xy: np.ndarray
    normal: np.ndarray
    values: np.ndarray
    valid: np.ndarray

    @property
    def ds(self) -> float:
        return float(self.s[1] - self.s[0]) if len(self.s) > 1 else 1.0

    def points(self, offset: np.ndarray | float, stations: np.ndarray | None = None) -> np.ndarray:
        """Map coordinates (n, 2) of ``offset`` metres left of the centre at ``stations``
        (station indices; all stations by default)."""
        idx = np.arange(len(self.s)) if stations is None else np.asarray(stations)
        off = np.broadcast_to(np.asarray(offset, dtype=float), idx.shape)
        return self.xy[idx] + off[:, None] * self.normal[idx]


def stations(line, ds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stations ``s`` every ~``ds`` m along ``line``, their points (ns, 2) and
    unit left normals (ns, 2). Tangents are central differences over about
    2 m so that vertices and switches do not make the normals jump."""
    length = float(line.length)
    n = max(2, int(np.ceil(length / ds)) + 1)
    s = np.linspace(0.0, length, n)
    xy = shapely.get_coordinates(shapely.line_interpolate_point(line, s))
    h = max(1.0, ds)
    a = shapely.get_coordinates(shapely.line_interpolate_point(line, np.clip(s - h, 0, length)))
    b = shapely.get_coordinates(shapely.line_interpolate_point(line, np.clip(s + h, 0, length)))
    t = b - a
    norm = np.hypot(t[:, 0], t[:, 1])
    norm[norm == 0] = 1.0
    t /= norm[:, None]
    normal = np.stack([-t[:, 1], t[:, 0]], axis=1)
    return s, xy, normal


def bilinear(bands: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Bilinear samples (n, *row.shape) float32 of ``bands`` (n, h, w) at
    fractional pixel centres ``row``, ``col`` (0 = centre of the first
    pixel); outside the grid the edge pixels extend (as
    ``scipy.ndimage.map_coordinates(order=1, mode="nearest")``). The
    four neighbours and weights are found once for all bands."""
    n, h, w = bands.shape
    r = np.clip(row.ravel(), 0.0, h - 1.0)
    c = np.clip(col.ravel(), 0.0, w - 1.0)
    # the upper-left neighbour, at most one pixel from the last row/column
    r0 = np.minimum(r.astype(np.intp), max(h - 2, 0))
    c0 = np.minimum(c.astype(np.intp), max(w - 2, 0))
    fr = (r - r0).astype(np.float32)
    fc = (c - c0).astype(np.float32)
    dr = w if h > 1 else 0
    dc = 1 if w > 1 else 0
    i00 = r0 * w + c0
    i01, i10 = i00 + dc, i00 + dr
    i11 = i10 + dc
    flat = bands.reshape(n, h * w)
    out = np.empty((n, r.size), dtype=np.float32)
    for k in range(n):
        b = flat[k]
        top = b[i00].astype(np.float32, copy=False)
        top = top + (b[i01] - top) * fc
        bot = b[i10].astype(np.float32, copy=False)
        bot = bot + (b[i11] - bot) * fc
        out[k] = top + (bot - top) * fr
    return out.reshape((n,) + row.shape)


def sample(bands: np.ndarray, valid: np.ndarray, transform, xy: np.ndarray, normal: np.ndarray,
           o: np.ndarray, s: np.ndarray) -> Strip:
    """Sample ``bands`` (n, h, w) and ``valid`` (h, w) at ``xy + o * normal``."""
    # pixel coordinates of the centreline points and of a metre along the
    # normal: every sample is the one plus ``o`` times the other
    inv = ~transform
    c0 = inv.a * xy[:, 0] + inv.b * xy[:, 1] + inv.c - 0.5
    r0 = inv.d * xy[:, 0] + inv.e * xy[:, 1] + inv.f - 0.5
    dc = inv.a * normal[:, 0] + inv.b * normal[:, 1]
    dr = inv.d * normal[:, 0] + inv.e * normal[:, 1]
    col = c0[:, None] + o[None, :] * dc[:, None]
    row = r0[:, None] + o[None, :] * dr[:, None]
    vals = bilinear(bands, row, col)
    h, w = valid.shape
    inside = (row >= -0.5) & (row <= h - 0.5) & (col >= -0.5) & (col <= w - 0.5)
    ri = np.clip(np.rint(row).astype(np.intp), 0, h - 1)
    ci = np.clip(np.rint(col).astype(np.intp), 0, w - 1)
    ok = inside & valid[ri, ci]
    return Strip(s=s, o=o, xy=xy, normal=normal, values=vals, valid=ok)


def shifted(strip: Strip, shift: np.ndarray, o: np.ndarray) -> Strip:
    """The strip of the centreline moved ``shift`` metres (ns,) to the left,
    at offsets ``o``, taken from a wider ``strip`` of the same stations and
    normals by linear interpolation across it (no new read of the chip).

    ``strip.o`` must be a regular grid covering ``o + shift``; samples that
    fall outside it are invalid.
    """
    o0 = float(strip.o[0])
    step = float(strip.o[1] - strip.o[0])
    shift = np.asarray(shift, dtype=float)
    if not shift.any():
        # on the line itself: a subset of the columns when the grids agree
        j = (np.asarray(o) - o0) / step
        ji = np.rint(j).astype(np.intp)
        if np.allclose(j, ji, atol=1e-6) and ji.min() >= 0 and ji.max() < len(strip.o):
            cols = slice(int(ji[0]), int(ji[-1]) + 1) if np.all(np.diff(ji) == 1) else ji  # a view if it can
            return Strip(s=strip.s, o=np.asarray(o, dtype=float), xy=strip.xy, normal=strip.normal,
                         values=strip.values[:, :, cols], valid=strip.valid[:, cols])
    pos = (np.asarray(o)[None, :] + shift[:, None] - o0) / step
    n = len(strip.o)
    inside = (pos >= 0) & (pos <= n - 1)
    i0 = np.clip(np.floor(pos).astype(np.intp), 0, n - 2)
    w = np.clip(pos - i0, 0.0, 1.0).astype(np.float32)
    v0 = np.take_along_axis(strip.values, i0[None], axis=2)
    v1 = np.take_along_axis(strip.values, (i0 + 1)[None], axis=2)
    vals = v0 + (v1 - v0) * w[None]
    near = np.clip(np.rint(pos).astype(np.intp), 0, n - 1)
    ok = np.take_along_axis(strip.valid, near, axis=1) & inside
    xy = strip.xy + np.asarray(shift)[:, None] * strip.normal
    return Strip(s=strip.s, o=np.asarray(o, dtype=float), xy=xy, normal=strip.normal, values=vals, valid=ok)
