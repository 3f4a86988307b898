"""Trace rail track centrelines from imagery.

A rail track seen from above at 0.25-1 m GSD is a pair of thin parallel
lines (the rails, 1.435-1.52 m apart) on a ballast bed, or, where cars
stand on it, a row of car bodies about 3 m wide whose long edges run
parallel to the track. Both are *linear* and *long*. The tracer:

1. evidence (:func:`track_evidence`), for a bank of orientations steered
   from one Hessian and one gradient per band (no image rotation): the
   *rail pair* is the signed product of the across-track second
   derivative half a gauge either side of a pixel (two like rails a gauge
   apart); the *car* channel is minus the product of the across-track
   colour gradients half a car width either side (the two long edges of a
   car body). In sunlit scenes the anti-sun side is read from the darkest
   bars, and a shadow credits its car one car width towards the sun
   instead of being taken for a car row itself. Both channels are in
   units of the scene's median response, pooled to ~0.5 m and averaged
   along their orientation over ``along_m``; several scenes combine by a
   per-pixel maximum (a track under cars in one is open in another);
2. following (:class:`_Follower`): from the strongest rail ridges first,
   lines are followed both ways in 1 m steps, snapping across the track to
   the rail-pair peak within a narrow window, turning no faster than the
   curvature limit, on through cars (car evidence under the line: the
   line moves onto the car bodies' axis by at most ``car_snap_m`` per
   step, so a track turning away under a train is kept) and straight on
   through gaps up to ``max_gap_m`` (switches, couplings),
   stopping on running into a line already traced (a converging track).
   A second pass seeds on car rows whose rails are hidden everywhere;
3. a lattice step adds tracks between two parallel traced neighbours
   a whole multiple of the yard's own track spacing apart, where car
   bodies mark the missing line, and continues the lattice outwards (or
   into a single missing row) where a row of car bodies stands one
   spacing beside a traced line that has a parallel neighbour one spacing
   on its other side (:func:`_extend_lattice`: a lone line on a road edge
   is never extended); lines are smoothed, clipped to the AOI,
   kept when at least ``min_length_m`` long (a car row cut by the image
   edge: ``edge_min_length_m``), and never run closer than 0.65 x the
   track spacing to a stronger line (except at switches);
4. pruning (:func:`_between_tracks`): a line carried by car evidence
   that has rail pairs half a track spacing away on both sides and none
   of its own runs in the ballast strip between two empty tracks (to the
   car channel a bar ~3 m wide between two rails) and is dropped; and
   (:func:`_lone_lines`) a yard is a network: a line with no parallel
   neighbour within two spacings over a fifth of its length, no end meeting
   another line at a turnout's angle (<= 30 degrees) and no train on it
   (cars over half of it, hiding the rails) is the edge of a road, wall
   or roof beside the yard, and is dropped.

:func:`trace_tracks` returns :class:`~monitor.aoi.Feature` lines in the
**chip CRS** (metres); :func:`trace_aoi` writes them into a copy of the AOI
in the AOI's own CRS (WGS84 as loaded).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import shapely
import shapely.ops
from scipy import ndimage
from shapely.geometry import LineString, MultiLineString

from monitor.aoi import AOI, Feature, reproject_to
from monitor.errors import InputError

__all__ = ["trace_tracks", "trace_aoi", "track_evidence", "TraceEvidence"]

MERGES = ("replace", "refine", "add")


def _as_chips(chips_or_arrays) -> list:
    from monitor.imagery import Chip

    items = chips_or_arrays if isinstance(chips_or_arrays, (list, tuple)) else [chips_or_arrays]
    if not items:
        raise InputError("scenes", "no chip to trace tracks in")
    for i, c in enumerate(items):
        if not isinstance(c, Chip):
            raise InputError(f"chip {i}", f"expected a monitor.imagery.Chip, got {type(c).__name__}")
        if c.sensor != "optical":
            raise InputError(f"chip {i}", f"track tracing needs an optical chip, not {c.sensor}")
    return list(items)


def _normalise(b: np.ndarray, valid: np.ndarray) -> np.ndarray:
    v = b[valid]
    med = np.median(v)
    mad = np.median(np.abs(v - med)) * 1.4826 or float(v.std()) or 1.0
    return np.clip(np.where(valid, (b - med) / mad, 0.0), -6, 6).astype(np.float32)


def _normalised_stack(chip) -> tuple[np.ndarray, np.ndarray]:
    """Robust z-scores (median, MAD) of the gray band and of the colour bands
    (red, green, blue when present): float32 (n, h, w), gray first; and the
    valid mask."""
    g = chip.gray().astype(np.float32)
    valid = np.asarray(chip.valid, bool) & np.isfinite(g)
    if not valid.any():
        raise InputError(str(chip.meta.get("scene", "chip")), "no valid pixel to trace tracks in")
    layers = [_normalise(g, valid)]
    for role in ("red", "green", "blue"):
        b = chip.band(role)
        if b is not None:
            ok = valid & np.isfinite(b)
            layers.append(_normalise(np.where(ok, b, 0).astype(np.float32), ok))
    return np.stack(layers), valid


def _on_grid(chip, ref):
    """Normalised layers (gray first, then colour) and valid mask of ``chip`` on the grid of ``ref``."""
    g, valid = _normalised_stack(chip)
    if chip is ref or (chip.shape == ref.shape and chip.transform == ref.transform
                       and str(chip.crs) == str(ref.crs)):
        return g, valid
    from rasterio.warp import Resampling, reproject

    dst = np.zeros((g.shape[0],) + tuple(ref.shape), np.float32)
    dv = np.zeros(ref.shape, np.uint8)
    for k in range(g.shape[0]):
        reproject(g[k], dst[k], src_transform=chip.transform, src_crs=chip.crs, dst_transform=ref.transform,
                  dst_crs=ref.crs, resampling=Resampling.bilinear)
    reproject(valid.astype(np.uint8), dv, src_transform=chip.transform, src_crs=chip.crs,
              dst_transform=ref.transform, dst_crs=ref.crs, resampling=Resampling.nearest)
    return dst, dv.astype(bool)


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over ``f`` x ``f`` blocks (the trailing rows/columns that do not fill a block are dropped)."""
    if f <= 1:
        return a
    h, w = (a.shape[0] // f) * f, (a.shape[1] // f) * f
    return a[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def _pair_maps(g: np.ndarray, valid: np.ndarray, gsd: float, angles: np.ndarray, half_gauge_m: float,
               half_car_m: float, pool: int):
    """Rail-pair and car-edge-pair responses per orientation, pooled by ``pool``.

    For each track direction theta (radians in pixel space, 0 = along the
    rows' direction of increasing column) the across-track second
    derivative (steered from the Hessian) is sampled half a gauge either
    side of every pixel: both rails of a track give a response of one sign
    there, so the *signed* product is positive only between two like rails
    a gauge apart. The car channel does the same with the across-track
    gradient half a car width either side: the two long edges of a car body
    (bright or dark) have opposite signs, so minus their product is positive
    on the axis of a bar one car wide; with colour layers the product is
    the dot product of the colour gradients (a blue roof on gray concrete
    has an edge in colour, hardly in brightness). Both are geometric means
    (units of the input), pooled over ``pool`` x ``pool`` blocks.
    """
    layers = np.atleast_3d(g) if g.ndim == 3 else g[None]
    g = layers[0]
    colour = layers[1:] if layers.shape[0] > 1 else layers[:1]
    s_rail = max(0.6, 0.12 / gsd)
    s_edge = max(0.7, 0.3 / gsd)
    hrr = ndimage.gaussian_filter(g, s_rail, order=(2, 0))
    hrc = ndimage.gaussian_filter(g, s_rail, order=(1, 1))
    hcc = ndimage.gaussian_filter(g, s_rail, order=(0, 2))
    gr = [ndimage.gaussian_filter(b, s_edge, order=(1, 0)) for b in colour]
    gc = [ndimage.gaussian_filter(b, s_edge, order=(0, 1)) for b in colour]
    grg = ndimage.gaussian_filter(g, s_edge, order=(1, 0))
    gcg = ndimage.gaussian_filter(g, s_edge, order=(0, 1))
    inner = ndimage.binary_erosion(valid, iterations=int(np.ceil(half_car_m / gsd + 2 * s_edge)) or 1)
    hg, hc = half_gauge_m / gsd, half_car_m / gsd
    rails, bright, dark = [], [], []
    for th in angles:
        nc, nr = -np.sin(th), np.cos(th)          # across-track unit vector (col, row)
        d2 = hcc * (nc * nc) + hrc * (2 * nc * nr) + hrr * (nr * nr)
        a = ndimage.shift(d2, (hg * nr, hg * nc), order=1, prefilter=False)
        b = ndimage.shift(d2, (-hg * nr, -hg * nc), order=1, prefilter=False)
        pr = np.sqrt(np.maximum(a * b, 0.0)) * (s_rail * s_rail)
        dot = np.zeros_like(g)
        for gcb, grb in zip(gc, gr):
            gn = gcb * nc + grb * nr
            a = ndimage.shift(gn, (hc * nr, hc * nc), order=1, prefilter=False)
            b = ndimage.shift(gn, (-hc * nr, -hc * nc), order=1, prefilter=False)
            dot -= a * b
        pc = np.sqrt(np.maximum(dot / len(gc), 0.0)) * s_edge
        pr[~inner] = 0.0
        pc[~inner] = 0.0
        # polarity from brightness: a bright bar rises into it and falls out of it
        gn = gcg * nc + grg * nr
        is_bright = (ndimage.shift(gn, (hc * nr, hc * nc), order=1, prefilter=False)
                     > ndimage.shift(gn, (-hc * nr, -hc * nc), order=1, prefilter=False))
        rails.append(_block_mean(pr, pool).astype(np.float32))
        bright.append(_block_mean(np.where(is_bright, pc, 0.0), pool).astype(np.float32))
        dark.append(_block_mean(np.where(is_bright, 0.0, pc), pool).astype(np.float32))
    return (np.stack(rails), np.stack(bright), np.stack(dark),
            _block_mean(inner.astype(np.float32), pool) > 0.5)


def _cars_with_shadows(bright: np.ndarray, dark: np.ndarray, angles: np.ndarray, width_px: float,
                       valid: np.ndarray, gray: np.ndarray | None = None, min_agreement: float = 0.2) -> np.ndarray:
    """Car evidence per orientation from bright and dark bars one car wide.

    In sunlit scenes every car casts a shadow beside it, on the anti-sun
    side: a dark bar of about a car's width that is *not* a track. The
    anti-sun direction is read from the scene: each of the darkest dark
    bars votes for the side (one car width across) on which a car-like bar
    lies, and one direction must explain the votes of all orientations
    (agreement >= ``min_agreement``). Then, where the sun is not along the
    orientation, dark bars are taken as shadows and their car is credited
    one width towards the sun (a dark car still counts, through its own
    shadow). Without a clear direction both polarities count where they are.
    """
    out = np.maximum(bright, dark)
    h, w = dark.shape[1:]
    dark_px = valid.copy()
    if gray is not None:
        gv = gray[:h, :w]
        dark_px &= gv <= np.quantile(gv[valid], 0.05)      # shadows are the darkest things in sunlight
    votes = []
    for k, th in enumerate(angles):
        nr, nc = np.cos(th), -np.sin(th)
        d = dark[k]
        sel = dark_px & (d >= np.quantile(d[valid], 0.9)) & (d > bright[k])
        plus = ndimage.shift(bright[k], (-width_px * nr, -width_px * nc), order=1, prefilter=False)   # B(p + w n)
        minus = ndimage.shift(bright[k], (width_px * nr, width_px * nc), order=1, prefilter=False)   # B(p - w n)
        lvl = float(np.median(bright[k][valid]))
        votes.append((float(np.sum(sel & (plus > 2 * minus) & (plus > 2 * lvl))),
                      float(np.sum(sel & (minus > 2 * plus) & (minus > 2 * lvl)))))
    votes = np.asarray(votes)
    total = float(votes.sum())
    if total < 200:
        return out
    n = np.column_stack([np.cos(angles), -np.sin(angles)])          # (row, col) normals
    best, u_best = 0.0, None
    for al in np.arange(0, 2 * np.pi, np.pi / 36):
        u = np.array([np.sin(al), np.cos(al)])                     # car lies at +u of its shadow
        sgn = np.sign(n @ u)
        sc = float(np.sum(sgn * (votes[:, 0] - votes[:, 1])))
        if sc > best:
            best, u_best = sc, u
    if u_best is None or best < min_agreement * total:
        return out
    for k, th in enumerate(angles):
        proj = float(n[k] @ u_best)
        if abs(proj) < 0.3:
            continue
        nr, nc = n[k] * np.sign(proj)
        car_of_shadow = ndimage.shift(dark[k], (width_px * nr, width_px * nc), order=1, prefilter=False)
        out[k] = np.maximum(bright[k], car_of_shadow)
    return out


def _along_mean(bank: np.ndarray, valid: np.ndarray, angles: np.ndarray, half_px: int) -> np.ndarray:
    """Mean of each orientation's map along its own direction over +-``half_px`` pixels."""
    out = np.empty_like(bank)
    vf = valid.astype(np.float32)
    for k, th in enumerate(angles):
        dr, dc = np.sin(th), np.cos(th)
        acc = bank[k].copy()
        cnt = vf.copy()
        stride = max(1, half_px // 3)              # samples every ~1 m
        for j in range(stride, half_px + 1, stride):
            for sgn in (1, -1):
                sh = (sgn * j * dr, sgn * j * dc)
                acc += ndimage.shift(bank[k], sh, order=1, prefilter=False)
                cnt += ndimage.shift(vf, sh, order=1, prefilter=False)
        out[k] = np.where(cnt > 0.5 * (2 * (half_px // stride) + 1), acc / np.maximum(cnt, 1e-6), 0.0)
    return out


def _ridge(best: np.ndarray, kbest: np.ndarray, angles: np.ndarray, reach_px: int) -> np.ndarray:
    """Pixels not exceeded by the evidence within ``reach_px`` across their own direction."""
    ridge = np.zeros(best.shape, bool)
    for k, th in enumerate(angles):
        sel = kbest == k
        if not sel.any():
            continue
        nr, nc = np.cos(th), -np.sin(th)
        ok = sel & (best > 0)
        for j in range(1, reach_px + 1):
            for sgn in (1, -1):
                ok &= best >= ndimage.shift(best, (sgn * j * nr, sgn * j * nc), order=1, prefilter=False)
        ridge |= ok
    return ridge


def _dominant(best: np.ndarray, theta: np.ndarray, valid: np.ndarray, sigma_px: float):
    """Local dominant track direction (radians, mod pi) and its coherence 0..1,
    from the evidence-weighted doubled-angle mean over ``sigma_px``."""
    w = np.where(valid, np.minimum(best, np.quantile(best[valid], 0.99) if valid.any() else 1.0), 0.0)
    w = np.maximum(w - 1.0, 0.0)                  # background (1 = scene median) carries no direction
    vx = ndimage.gaussian_filter(w * np.cos(2 * theta), sigma_px)
    vy = ndimage.gaussian_filter(w * np.sin(2 * theta), sigma_px)
    ws = ndimage.gaussian_filter(w, sigma_px)
    dom = (0.5 * np.arctan2(vy, vx)) % np.pi
    coh = np.hypot(vx, vy) / np.maximum(ws, 1e-9)
    return dom.astype(np.float32), coh.astype(np.float32)


class TraceEvidence:
    """Per-pixel track evidence on one (pooled) grid.

    bank: float32 (n_angles, h, w), centreline evidence per orientation in
        units of the scenes' background level (median of the best response = 1).
    angles: (n_angles,) orientations of ``bank``, radians in pixel space
        (0 = along increasing columns, positive towards increasing rows), mod pi.
    score: float32 (h, w), the best orientation's evidence.
    theta: float32 (h, w), that orientation (radians, pixel space).
    ridge: bool (h, w), local maxima of ``score`` across their orientation.
    dominant, coherence: the local dominant direction over ~30 m (radians,
        mod pi) and how strongly it dominates (0..1).
    valid: bool (h, w), pixels seen by at least one scene.
    transform, crs, gsd_m: the grid (its pixel size, metres).
    """

    def __init__(self, bank, angles, score, theta, ridge, dominant, coherence, valid, transform, crs, gsd_m):
        self.bank, self.angles = bank, angles
        self.score, self.theta, self.ridge = score, theta, ridge
        self.dominant, self.coherence, self.valid = dominant, coherence, valid
        self.transform, self.crs, self.gsd_m = transform, crs, gsd_m


def track_evidence(chips_or_arrays, *, gauge_m: Sequence[float] | float = (1.435, 1.52),
                   car_width_m: float = 2.9, along_m: float = 6.0, spacing_m: Sequence[float] = (4.5, 5.5),
                   n_angles: int = 16, car_weight: float = 1.0, grid_m: float = 0.5) -> TraceEvidence:
    """Track-centreline evidence of one or more chips of one AOI.

    Every chip is resampled onto the first one's grid; finer than 0.2 m it
    is first averaged to about 0.25 m (rails are resolved from ~0.5 m). Two
    channels per orientation (:func:`_pair_maps`): the rail pair a gauge
    apart and the car body one ``car_width_m`` wide, each in units of its
    own scene background (median), combined by a maximum (weighted by
    ``car_weight``), pooled to about ``grid_m`` metres and averaged along
    the orientation over ``along_m`` metres. Scenes combine by a per-pixel
    maximum (a track under cars in one scene is open in another).
    """
    from rasterio.transform import Affine

    chips = _as_chips(chips_or_arrays)
    ref = chips[0]
    gsd = float(ref.gsd_m)
    if not gsd > 0:
        raise InputError(str(ref.meta.get("scene", "chip")), f"invalid pixel size {ref.gsd_m!r}")
    gauges = np.atleast_1d(np.asarray(gauge_m, float))
    half_gauge = float(gauges.mean()) / 2 + 0.035          # rail head centres
    angles = np.arange(n_angles) * np.pi / n_angles
    pre = max(1, int(0.25 // gsd)) if gsd < 0.2 else 1
    fine = gsd * pre
    pool = max(1, int(round(grid_m / fine)))
    cg = fine * pool
    half_px = max(1, int(round(along_m / cg / 2)))
    bank, cars_b, seen = None, None, None
    for c in chips:
        g, valid = _on_grid(c, ref)
        if pre > 1:
            g = np.stack([_block_mean(b, pre) for b in g])
            valid = _block_mean(valid.astype(np.float32), pre) > 0.99
        rails, bright, dark, inner = _pair_maps(g, valid, fine, angles, half_gauge, car_width_m / 2, pool)
        # each channel in units of its scene background (median of the best response)
        meds = []
        for ch in (rails, np.maximum(bright, dark)):
            mv = ch.max(axis=0)[inner]
            meds.append(float(np.median(mv[mv > 0])) if (mv > 0).any() else 1.0)
        r = _along_mean(rails / meds[0], inner, angles, half_px)
        cb = _cars_with_shadows(_along_mean(bright / meds[1], inner, angles, half_px),
                                _along_mean(dark / meds[1], inner, angles, half_px),
                                angles, car_width_m / cg, inner,
                                _block_mean(ndimage.gaussian_filter(g[0], 0.5 / fine), pool))
        bank = r if bank is None else np.maximum(bank, r)
        cars_b = cb if cars_b is None else np.maximum(cars_b, cb)
        seen = inner if seen is None else (seen | inner)
    bank = bank.astype(np.float32)
    cars_b = (car_weight * cars_b).astype(np.float32)
    kbest = np.argmax(bank, axis=0)
    score = np.take_along_axis(bank, kbest[None], 0)[0]
    pos = score[seen & (score > 0)]
    scale = float(np.median(pos)) if pos.size else 1.0
    bank /= (scale or 1.0)
    score = score / (scale or 1.0)
    car_score = cars_b.max(axis=0)
    pos = car_score[seen & (car_score > 0)]
    cscale = float(np.median(pos)) if pos.size else 1.0
    cars_b /= (cscale or 1.0)
    theta = angles[kbest].astype(np.float32)
    ridge = _ridge(score, kbest, angles, max(1, int(round(1.5 / cg))))
    dom, coh = _dominant(score, theta, seen, 12.0 / cg)
    tr = ref.transform @ Affine.scale(pre * pool)
    out = TraceEvidence(bank, angles, score, theta, ridge, dom, coh, seen, tr, ref.crs, cg)
    out.cars = cars_b
    return out


# ---------------------------------------------------------------------------
# following tracks through the evidence
# ---------------------------------------------------------------------------

def _disk(radius_px: float) -> np.ndarray:
    r = int(np.ceil(radius_px))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (yy * yy + xx * xx) <= radius_px * radius_px + 1e-9


def _stamp(raster: np.ndarray, pts, disk: np.ndarray, value) -> None:
    """Set ``raster`` to ``value`` in a disk around every (row, col) of ``pts``."""
    h, w = raster.shape
    r = disk.shape[0] // 2
    for pr, pc in pts:
        i, j = int(round(pr)), int(round(pc))
        r0, r1, c0, c1 = i - r, i + r + 1, j - r, j + r + 1
        if r1 <= 0 or c1 <= 0 or r0 >= h or c0 >= w:
            continue
        d = disk[max(0, -r0):disk.shape[0] - max(0, r1 - h), max(0, -c0):disk.shape[1] - max(0, c1 - w)]
        sl = raster[max(0, r0):min(h, r1), max(0, c0):min(w, c1)]
        sl[d] = value


class _Follower:
    """Follows one track from a seed through the evidence bank, both ways.

    Steps of ``step_m`` in the current direction; at each step the
    evidence of the nearest orientation is sampled across the track within
    a window (wider after a gap) and the point moves onto its peak when the
    peak reaches ``low``. The direction follows the accepted points of the
    last ~10 m, turning at most ``step_m / min_radius_m`` radians per step
    (the curvature limit). Through stretches without evidence (switches,
    couplings, gaps between cars) the line goes straight on for up to
    ``max_gap_m``; it stops there, on leaving the image, or on running into
    an already traced line (a converging track at a switch).
    """

    def __init__(self, ev: TraceEvidence, low: float, step_m: float, max_gap_m: float, min_radius_m: float,
                 window_m: float, owner: np.ndarray, car_low: float = 3.0, car_snap_m: float = 0.0):
        self.ev, self.low = ev, float(low)
        cg = ev.gsd_m
        self.step = step_m / cg
        self.max_gap = max_gap_m / cg
        self.turn = step_m / min_radius_m
        self.win0 = window_m / cg
        self.win_max = 1.6 / cg
        self.owner = owner
        self.bank = ev.bank
        self.valid = ev.valid
        self.h, self.w = ev.valid.shape
        self.K = len(ev.angles)
        self.dir_px = 10.0 / cg
        self.merge_px = 4.0 / cg
        self.cars = getattr(ev, "cars", None)
        self.car_low = car_low
        self.car_snap = car_snap_m / ev.gsd_m          # the most a car moves the line per step, pooled px
        cw = 1.0 / cg
        self.car_off = [o * 0.5 for o in range(-int(2 * cw), int(2 * cw) + 1)]
        self.off = [o * 0.5 for o in range(-int(np.ceil(2 * self.win_max)), int(np.ceil(2 * self.win_max)) + 1)]

    def _sample(self, k, r, c):
        """Bilinear sample of orientation ``k`` at (row, col); -1 outside."""
        i, j = int(r), int(c)
        if not (0 <= i < self.h - 1 and 0 <= j < self.w - 1) or r < 0 or c < 0:
            return -1.0
        fr, fc = r - i, c - j
        b = self.bank[k]
        return float((b[i, j] * (1 - fc) + b[i, j + 1] * fc) * (1 - fr)
                     + (b[i + 1, j] * (1 - fc) + b[i + 1, j + 1] * fc) * fr)

    def _car_here(self, k, r, c, nr, nc):
        """The across-track offset (pooled pixels) of the strongest car body
        (bar one car wide along the direction) within the car window, or None."""
        b = self.bank
        self.bank = self.cars
        try:
            vals = [self._sample(k, r + o * nr, c + o * nc) for o in self.car_off]
        finally:
            self.bank = b
        j = int(np.argmax(vals))
        return self.car_off[j] if vals[j] >= self.car_low else None

    def _turn(self, acc, r, c, phi):
        """The direction from the accepted points ~10 m back, within the curvature limit."""
        pi = np.pi
        back = None
        for q in range(len(acc) - 2, -1, -1):
            d = np.hypot(r - acc[q][0], c - acc[q][1])
            if d >= self.dir_px:
                back = acc[q]
                break
        if back is None and len(acc) > 3:
            back = acc[0]
        if back is not None:
            meas = np.arctan2(r - back[0], c - back[1])
            dphi = (meas - phi + pi) % (2 * pi) - pi
            phi += max(-self.turn, min(self.turn, dphi))
        return phi

    def run(self, r, c, phi):
        """Points (row, col, accepted, evidence) from the seed on in direction ``phi``."""
        pts = []
        acc = [(r, c)]
        gap, in_other, other_at = 0.0, 0.0, None
        n_max = int(4 * (self.h + self.w) / self.step)
        pi = np.pi
        for _ in range(n_max):
            cs, sn = np.cos(phi), np.sin(phi)
            r += self.step * sn
            c += self.step * cs
            i, j = int(r + 0.5), int(c + 0.5)
            if not (0 <= i < self.h and 0 <= j < self.w) or not self.valid[i, j]:
                break
            k = int(round((phi % pi) / pi * self.K)) % self.K
            nr, nc = cs, -sn
            win = min(self.win_max, self.win0 + 0.035 * gap)
            best, bo, vals = -1.0, None, []
            for o in self.off:
                if abs(o) > win + 1e-9:
                    vals.append(-1.0)
                    continue
                v = self._sample(k, r + o * nr, c + o * nc)
                vals.append(v)
                if v > best:
                    best, bo = v, len(vals) - 1
            ok = best >= self.low and 0 < bo < len(vals) - 1 and vals[bo - 1] >= 0 and vals[bo + 1] >= 0
            if ok:
                a, b0, b1 = vals[bo - 1], vals[bo], vals[bo + 1]
                den = a - 2 * b0 + b1
                frac = 0.5 * (a - b1) / den if den < 0 else 0.0
                o = self.off[bo] + 0.5 * max(-0.5, min(0.5, frac))
                r += o * nr
                c += o * nc
                gap = 0.0
                acc.append((r, c))
                phi = self._turn(acc, r, c, phi)
            elif self.cars is not None and (co := self._car_here(k, r, c, nr, nc)) is not None:
                # a car stands here: its body axis marks the line
                ok = 2
                if self.car_snap and co != 0:
                    co = max(-self.car_snap, min(self.car_snap, co))
                    r += co * nr
                    c += co * nc
                    acc.append((r, c))
                    phi = self._turn(acc, r, c, phi)
            else:
                gap += self.step
                if gap > self.max_gap:
                    break
            pts.append((r, c, ok, best))
            i, j = int(r + 0.5), int(c + 0.5)
            if 0 <= i < self.h and 0 <= j < self.w and self.owner[i, j] > 0:
                if other_at is None:
                    other_at = len(pts) - 1
                in_other += self.step
                if in_other >= self.merge_px:
                    del pts[other_at + 1:]
                    break
            else:
                in_other, other_at = 0.0, None
        # end on the last accepted point (or the junction with another line)
        while pts and not pts[-1][2] and not (other_at is not None and len(pts) - 1 == other_at):
            pts.pop()
        return pts


def _follow_all(ev: TraceEvidence, high: float, low: float, *, step_m: float = 1.0, max_gap_m: float = 40.0,
                min_radius_m: float = 80.0, min_length_m: float = 50.0, min_support: float = 0.5,
                max_dev_deg: float = 30.0, max_seeds: int = 3000, car_low: float = 2.0,
                excl_m: float = 2.9, stats: dict | None = None, min_own: float = 0.5,
                car_min_length_m: float | None = None, car_min_support: float = 0.7,
                car_snap_m: float = 0.1, edge_min_length_m: float | None = None, edge_m: float = 4.0):
    """Greedy tracking from the strongest seeds: (points (n, 2) row/col, mean evidence, support) per line.

    With ``edge_min_length_m``, a car-row line (second pass) that ends within
    ``edge_m`` of the edge of the seen area and runs along the yard's
    dominant direction (within 10 degrees where it is coherent) may be that
    short: the frame cuts rows of cars, so the part seen is shorter than a
    whole track.
    """
    cg = ev.gsd_m
    edge_d = ndimage.distance_transform_edt(np.pad(ev.valid, 1))[1:-1, 1:-1] * cg    # m to the unseen
    sc = ev.score
    dev = np.abs((ev.theta - ev.dominant + np.pi / 2) % np.pi - np.pi / 2)
    seeds = ev.ridge & (sc >= high) & ev.valid & ((dev <= np.radians(max_dev_deg)) | (ev.coherence < 0.3))
    owner = np.zeros(sc.shape, np.int32)          # traced lines, +-1.2 m
    excl = np.zeros(sc.shape, bool)                # no new seed: +-2 m of a line, or tried
    near_d, excl_d, tried_d = _disk(1.2 / cg), _disk(excl_m / cg), _disk(max(1.0, 0.8 / cg))
    fol = _Follower(ev, low, step_m, max_gap_m, min_radius_m, 0.6, owner, car_low=car_low, car_snap_m=car_snap_m)
    lines = []
    passes = [(fol, ev.score, seeds, ev.theta)]
    cars = getattr(ev, "cars", None)
    if cars is not None:
        # second pass: tracks seen only through the cars standing on them
        ck = np.argmax(cars, axis=0)
        cs = np.take_along_axis(cars, ck[None], 0)[0]
        ctheta = ev.angles[ck].astype(np.float32)
        cdev = np.abs((ctheta - ev.dominant + np.pi / 2) % np.pi - np.pi / 2)
        cseeds = (_ridge(cs, ck, ev.angles, max(1, int(round(1.5 / cg)))) & (cs >= 1.5 * car_low) & ev.valid
                  & ((cdev <= np.radians(max_dev_deg)) | (ev.coherence < 0.3)))
        cfol = _Follower(ev, car_low, step_m, max_gap_m, min_radius_m, 0.6, owner, car_low=car_low)
        cfol.bank = cars
        cfol.cars = None
        passes.append((cfol, cs, cseeds, ctheta))
    for npass, (f, sc, sd, th) in enumerate(passes):
        rr, cc = np.nonzero(sd)
        order = np.argsort(-sc[rr, cc], kind="stable")
        tries = 0
        for r0, c0 in zip(rr[order], cc[order]):
            if excl[r0, c0]:
                continue
            tries += 1
            if tries > max_seeds:
                break
            phi = float(th[r0, c0])
            fwd = f.run(float(r0), float(c0), phi)
            bwd = f.run(float(r0), float(c0), phi + np.pi)
            pts = bwd[::-1] + [(float(r0), float(c0), True, float(sc[r0, c0]))] + fwd
            rc = np.array([(p[0], p[1]) for p in pts])
            okm = np.array([bool(p[2]) for p in pts])
            own = np.array([p[2] is True for p in pts])     # on the pass's own evidence
            length = len(pts) * step_m
            support = float(okm.mean())
            if stats is not None:
                stats.setdefault(npass, []).append((length, support))
            # most of a line's support must come from its own channel
            # (cars only carry a line between stretches of visible rails)
            need_len, need_sup = min_length_m, min_support
            if npass == 1 and car_min_length_m is not None:
                need_len, need_sup = min(min_length_m, car_min_length_m), max(min_support, car_min_support)
            if (npass == 1 and edge_min_length_m is not None and need_len > length >= edge_min_length_m
                    and support >= max(need_sup, car_min_support) and _at_edge(rc, edge_d, edge_m)
                    and _along_dominant(rc, ev, 10.0)):
                need_len, need_sup = float(edge_min_length_m), max(need_sup, car_min_support)
            if length >= need_len and support >= need_sup and own.mean() >= min_own * support:
                mean_e = float(np.mean([p[3] for p in pts if p[2]]))
                lines.append((rc, mean_e, support, need_len))
                _stamp(owner, rc, near_d, len(lines))
                _stamp(excl, rc, excl_d, True)
            else:
                _stamp(excl, rc[own], tried_d, True)
    return lines


def _at_edge(rc: np.ndarray, edge_d: np.ndarray, edge_m: float) -> bool:
    """Whether either end of the (row, col) polyline ``rc`` lies within
    ``edge_m`` (distances ``edge_d``, m) of the edge of the seen area."""
    h, w = edge_d.shape
    for r, c in (rc[0], rc[-1]):
        i, j = min(max(int(round(r)), 0), h - 1), min(max(int(round(c)), 0), w - 1)
        if edge_d[i, j] <= edge_m:
            return True
    return False


def _along_dominant(rc: np.ndarray, ev: TraceEvidence, max_deg: float) -> bool:
    """Whether the chord of ``rc`` runs within ``max_deg`` of the local
    dominant track direction at its middle (True where that is incoherent)."""
    h, w = ev.dominant.shape
    r, c = rc[len(rc) // 2]
    i, j = min(max(int(round(r)), 0), h - 1), min(max(int(round(c)), 0), w - 1)
    if ev.coherence[i, j] < 0.3:
        return True
    d = rc[-1] - rc[0]
    th = np.arctan2(d[0], d[1]) % np.pi
    dev = abs((th - ev.dominant[i, j] + np.pi / 2) % np.pi - np.pi / 2)
    return bool(dev <= np.radians(max_deg))


def _to_map(rc: np.ndarray, transform) -> np.ndarray:
    a = transform
    r, c = rc[:, 0] + 0.5, rc[:, 1] + 0.5
    return np.column_stack([a.c + a.a * c + a.b * r, a.f + a.d * c + a.e * r])


def _smooth(xy: np.ndarray, k: int) -> np.ndarray:
    if len(xy) <= 2 * k + 1 or k < 1:
        return xy
    q = ndimage.uniform_filter1d(xy, 2 * k + 1, axis=0, mode="nearest")
    q[0], q[-1] = xy[0], xy[-1]
    return q


def _complete_lattice(lines: list, spacing_m: Sequence[float], min_length_m: float, step_m: float = 2.0,
                      max_missing: int = 3) -> list:
    """Tracks between traced neighbours: yards are lattices of parallel
    tracks, and a track under a long row of cars often leaves no rail
    visible. Where two traced lines run parallel at about (n + 1) times the
    yard's own track spacing (measured from the traced neighbours, within
    ``spacing_m``) with no line between them, n lines are added evenly
    spaced in between, over the stretch where that holds, if at least
    ``min_length_m`` long. ``lines`` and the result: (LineString, (evidence,
    support)) in metres."""
    if len(lines) < 2:
        return []
    lo, hi = float(min(spacing_m)), float(max(spacing_m))
    geoms = [ln for ln, _ in lines]
    tree = shapely.STRtree(geoms)
    st = []
    for ln in geoms:
        s = np.arange(0.0, ln.length, step_m)
        p = shapely.get_coordinates(shapely.line_interpolate_point(ln, s))
        a = shapely.get_coordinates(shapely.line_interpolate_point(ln, np.clip(s - 2, 0, ln.length)))
        b = shapely.get_coordinates(shapely.line_interpolate_point(ln, np.clip(s + 2, 0, ln.length)))
        t = b - a
        t /= np.maximum(np.hypot(t[:, 0], t[:, 1]), 1e-9)[:, None]
        st.append((p, np.column_stack([-t[:, 1], t[:, 0]])))
    # the yard's spacing: nearest parallel neighbour distances within spacing_m
    near = []
    for i, (p, n) in enumerate(st):
        pts = shapely.points(p)
        for j in tree.query(geoms[i].buffer(hi + 0.5)):
            if j != i:
                d = shapely.distance(pts, geoms[j])
                near.append(d[(d >= lo) & (d <= hi)])
    near = np.concatenate(near) if near else np.array([])
    pitch = float(np.median(near)) if near.size >= 20 else 0.5 * (lo + hi)
    out = []
    for i, (p, n) in enumerate(st):
        pts = shapely.points(p)
        reach = (max_missing + 1) * pitch + 1.0
        for j in tree.query(geoms[i].buffer(reach)):
            if j <= i:
                continue
            q = shapely.line_locate_point(geoms[j], pts)
            qp = shapely.get_coordinates(shapely.line_interpolate_point(geoms[j], q))
            v = qp - p
            d = np.hypot(v[:, 0], v[:, 1])
            perp = np.abs(np.sum(v * n, axis=1)) / np.maximum(d, 1e-9)   # 1 when straight across
            k = np.rint(d / pitch).astype(int) - 1
            ok = (k >= 1) & (k <= max_missing) & (np.abs(d - (k + 1) * pitch) <= 0.12 * (k + 1) * pitch) & (perp > 0.995)
            if ok.sum() * step_m < min_length_m:
                continue
            for kk in np.unique(k[ok]):
                sel = ok & (k == kk)
                for m in range(1, kk + 1):
                    mid = p + (m / (kk + 1)) * v
                    # no traced line there already
                    free = sel & (shapely.distance(shapely.points(mid), shapely.union_all(geoms)) > 0.5 * pitch)
                    for a, b in _true_runs(free):
                        if (b - a) * step_m >= min_length_m:
                            xy = _smooth(mid[a:b], 2)
                            out.append((LineString(xy).simplify(0.1), (0.0, 0.0)))
    return out


def _yard_pitch(geoms: list, spacing_m: Sequence[float], step_m: float = 2.0) -> float | None:
    """The yard's own track spacing (m): the median distance from points of
    the traced lines to their nearest parallel neighbour within
    ``spacing_m``; None when fewer than 20 such distances are found."""
    lo, hi = float(min(spacing_m)), float(max(spacing_m))
    if len(geoms) < 2:
        return None
    tree = shapely.STRtree(geoms)
    near = []
    for i, ln in enumerate(geoms):
        pts = shapely.line_interpolate_point(ln, np.arange(0.0, ln.length, step_m))
        for j in tree.query(ln.buffer(hi + 0.5)):
            if j != i:
                d = shapely.distance(pts, geoms[j])
                near.append(d[(d >= lo) & (d <= hi)])
    near = np.concatenate(near) if near else np.array([])
    return float(np.median(near)) if near.size >= 20 else None


def _apply(a, x, y):
    """An affine transform applied to coordinate arrays: (x', y')."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return a.a * x + a.b * y + a.c, a.d * x + a.e * y + a.f


def _line_frame(ln, step_m: float, half_m: float, inv, K: int):
    """Stations along ``ln`` (chip CRS, metres) every ``step_m``: distances
    ``s``, points ``p``, unit tangents ``t`` (chord over +-``half_m``), left
    normals ``n`` and the index ``k`` of the line's pixel-space orientation
    in a bank of ``K`` angles over [0, pi) (``inv``: the chip's inverse
    affine transform)."""
    s = np.arange(0.0, ln.length, step_m)
    p = shapely.get_coordinates(shapely.line_interpolate_point(ln, s))
    a = shapely.get_coordinates(shapely.line_interpolate_point(ln, np.clip(s - half_m, 0, ln.length)))
    b = shapely.get_coordinates(shapely.line_interpolate_point(ln, np.clip(s + half_m, 0, ln.length)))
    t = b - a
    t /= np.maximum(np.hypot(t[:, 0], t[:, 1]), 1e-9)[:, None]
    n = np.column_stack([-t[:, 1], t[:, 0]])
    c0, r0 = _apply(inv, p[:, 0], p[:, 1])
    c1, r1 = _apply(inv, p[:, 0] + t[:, 0], p[:, 1] + t[:, 1])
    th = np.arctan2(np.asarray(r1) - r0, np.asarray(c1) - c0) % np.pi
    k = np.rint(th / np.pi * K).astype(int) % K
    return s, p, t, n, k


def _extend_lattice(lines: list, ev, spacing_m: Sequence[float], min_length_m: float, car_support: float,
                    step_m: float = 2.0, snap: float = 0.32, min_cover: float = 0.6, rounds: int = 4,
                    bridge_m: float = 12.0, lattice: bool = True) -> list:
    """Tracks beside traced ones, seen only through the cars on them.

    Yards are lattices: a row of cars one track spacing beside a traced
    line stands on a track even where no rail of it is visible and no
    traced line lies beyond it (which :func:`_complete_lattice` needs).
    Each traced line is offset by the yard's own spacing (measured from
    the traced neighbours) to either side; every 2 m the offset point is
    snapped across to the car-body peak of the line's own orientation
    within ``snap`` x the spacing (yards are not exact lattices); the stretches away from any line (> 0.5 spacing)
    where car bodies (>= ``car_support``) cover at least ``min_cover`` of
    the length (gaps up to ``bridge_m`` between cars bridged) and that are
    at least ``min_length_m`` long become lines (``car_support`` is met by
    the evidence of the line's own orientation only, stricter than the
    best-orientation check of :func:`_complete_lattice`). Repeated ``rounds`` times,
    so a block of car rows is filled in from one traced edge. ``lines``
    and the result: (LineString, (evidence, support)) in metres."""
    cars = getattr(ev, "cars", None)
    if cars is None or not lines:
        return []
    pitch = _yard_pitch([ln for ln, _ in lines], spacing_m)
    if pitch is None:
        return []
    inv = ~ev.transform
    K = len(ev.angles)
    h, w = cars.shape[1:]
    offs = np.arange(-snap * pitch, snap * pitch + 1e-9, 0.25)
    added: list = []
    frontier = list(lines)
    geoms = [ln for ln, _ in lines]
    for _ in range(rounds):
        union = shapely.union_all(geoms)
        new = []
        for ln, _sc in frontier:
            if ln.length < min_length_m:
                continue
            s, p, t, n, k = _line_frame(ln, step_m, 3.0, inv, K)
            for side in (1.0, -1.0):
                q = p + side * pitch * n
                vals = []
                for o in offs:
                    qq = q + o * n
                    cc, rr = _apply(inv, qq[:, 0], qq[:, 1])
                    ii, jj = np.asarray(rr).astype(int), np.asarray(cc).astype(int)
                    inb = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
                    v = np.where(inb, cars[k, np.clip(ii, 0, h - 1), np.clip(jj, 0, w - 1)], 0.0)
                    vals.append(np.where(inb & ev.valid[np.clip(ii, 0, h - 1), np.clip(jj, 0, w - 1)], v, -1.0))
                vals = np.asarray(vals)                       # (n_offs, n_points)
                best = vals.max(axis=0)
                # the middle of the offsets near the peak (a car body is a plateau across)
                top = vals >= 0.9 * best[None]
                bo = (offs[:, None] * top).sum(axis=0) / np.maximum(top.sum(axis=0), 1)
                has = best >= car_support
                if has.sum() * step_m < min_cover * min_length_m:
                    continue
                # the offset follows the car peaks where there are cars, smoothly
                o_s = np.where(has, bo, np.nan)
                idx = np.arange(len(o_s))
                if has.sum() >= 2:
                    o_s = np.interp(idx, idx[has], o_s[has])
                else:
                    o_s = np.zeros(len(o_s))
                o_s = ndimage.median_filter(o_s, size=5, mode="nearest")
                o_s = ndimage.uniform_filter1d(o_s, 5, mode="nearest")
                xy = q + o_s[:, None] * n
                inside = best >= 0
                free = inside & (shapely.distance(shapely.points(xy), union) > 0.5 * pitch)
                if lattice:
                    # continue a lattice outwards: a parallel neighbour one spacing on the other side
                    others = shapely.union_all([g for g in geoms if g is not ln]) if len(geoms) > 1 else None
                    if others is None or others.is_empty:
                        continue
                    # (or the row lies between two lines: one more spacing on beyond it)
                    back = ((shapely.distance(shapely.points(p - side * pitch * n), others) < 0.25 * pitch)
                            | (shapely.distance(shapely.points(xy + side * pitch * n), others) < 0.25 * pitch))
                    back = ndimage.binary_closing(np.r_[False, back, False], structure=np.ones(5))[1:-1] | back
                    free &= back
                gap = max(1, int(round(bridge_m / step_m)))
                bridged = ndimage.binary_closing(np.r_[False, has, False], structure=np.ones(gap))[1:-1] | has
                for a0, b0 in _true_runs(free & bridged):
                    # trim to the first and last car
                    sub = np.flatnonzero(has[a0:b0])
                    if sub.size == 0:
                        continue
                    a1, b1 = a0 + sub[0], a0 + sub[-1] + 1
                    L = (b1 - a1) * step_m
                    cover = float(has[a1:b1].mean())
                    if L >= min_length_m and cover >= min_cover:
                        g = LineString(xy[a1:b1]).simplify(0.1)
                        new.append((g, (float(np.mean(best[a1:b1][has[a1:b1]])), cover)))
        if not new:
            break
        # one line per row: the longest first, no two within 0.65 spacing
        new = _dedupe(new, 0.65 * pitch, min_length_m)
        geoms = geoms + [g for g, _ in new]
        added += new
        frontier = new
    return added


def _line_profile(ln: LineString, ev: TraceEvidence, bank: np.ndarray, offsets_m, step_m: float = 1.0,
                  spread_m: float = 0.6) -> np.ndarray:
    """Evidence of ``bank`` (orientation bank on the grid of ``ev``) at the
    line's own orientation, every ``step_m`` along ``ln`` (metres, chip CRS)
    and at each across-track offset of ``offsets_m`` (to the left, metres):
    the best value within +-``spread_m`` of the offset. (n_offsets, n_points)."""
    inv = ~ev.transform
    K = len(ev.angles)
    h, w = bank.shape[1:]
    s, p, t, n, k = _line_frame(ln, step_m, 2.0, inv, K)
    spread = np.linspace(-spread_m, spread_m, 2 * int(np.ceil(spread_m / (0.5 * ev.gsd_m))) + 1)
    out = []
    for off in offsets_m:
        best = np.full(len(p), -1.0)
        for o in spread:
            q = p + (off + o) * n
            cc, rr = _apply(inv, q[:, 0], q[:, 1])
            ii, jj = np.floor(rr).astype(int), np.floor(cc).astype(int)
            inb = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
            v = np.where(inb, bank[k, np.clip(ii, 0, h - 1), np.clip(jj, 0, w - 1)], -1.0)
            best = np.maximum(best, v)
        out.append(best)
    return np.asarray(out)


def _between_tracks(lines: list, ev: TraceEvidence, pitch: float, low: float, max_own: float = 0.3,
                    max_between: float = 0.5) -> list:
    """Drop the lines that run in the strip between two empty tracks.

    The ballast between two neighbouring tracks is bounded by their inner
    rails about (spacing - gauge) ~ 3.3 m apart: to the car channel it looks
    like a car body ~3 m wide. A line carried by that (rail pairs of its own
    on less than ``max_own`` of it) with rail pairs half a track spacing
    (``pitch``, m) away on *both* sides over at least ``max_between`` of its
    length (most of it: at 0.5 m GSD the edges and shadow of a car row
    light the rail channel beside it on part of its length), where it has
    none itself, lies between two tracks, not on one."""
    out = []
    for ln, sc in lines:
        if ln.length < 5:
            out.append((ln, sc))
            continue
        here, left, right = _line_profile(ln, ev, ev.bank, (0.0, 0.5 * pitch, -0.5 * pitch)) >= low
        if here.mean() < max_own and np.mean(left & right & ~here) >= max_between:
            continue
        out.append((ln, sc))
    return out


def _end_tangent(ln: LineString, at_start: bool, chord_m: float = 5.0):
    """The end point of ``ln`` and the unit direction pointing out of the line there (chord of ``chord_m``)."""
    L = ln.length
    a = np.asarray(ln.interpolate(0.0 if at_start else L).coords[0])
    b = np.asarray(ln.interpolate(min(chord_m, L) if at_start else max(L - chord_m, 0.0)).coords[0])
    t = a - b
    return a, t / max(float(np.hypot(*t)), 1e-9)


def _joins(ln: LineString, others, reach_m: float, max_deg: float) -> bool:
    """Whether an end of ``ln`` meets another line (``others``, a geometry)
    within ``reach_m`` at a turnout's angle (the other line's direction at
    the nearest point within ``max_deg`` of this end's)."""
    for at_start in (True, False):
        p, t = _end_tangent(ln, at_start)
        pt = shapely.Point(p)
        if others.distance(pt) > reach_m:
            continue
        for g in (others.geoms if hasattr(others, "geoms") else [others]):
            if g.distance(pt) > reach_m:
                continue
            s = g.project(pt)
            q0 = np.asarray(g.interpolate(max(s - 2.5, 0.0)).coords[0])
            q1 = np.asarray(g.interpolate(min(s + 2.5, g.length)).coords[0])
            u = q1 - q0
            cosang = abs(float(np.dot(u, t))) / max(float(np.hypot(*u)), 1e-9)
            if cosang >= np.cos(np.radians(max_deg)):
                return True
    return False


def _lone_lines(lines: list, ev: TraceEvidence, spacing_m: Sequence[float], car_support: float, low: float,
                min_near: float = 0.2, max_deg: float = 30.0, min_cars: float = 0.5, step_m: float = 2.0) -> list:
    """Drop the lines that stand alone: a yard is a network of tracks, and
    the edge of a road, a wall or a roof beside it also gives long, straight
    rail-pair-like evidence, but joins no track. A line is kept when another
    traced line runs parallel to it (within ``max_deg``) within two track
    spacings (+1 m) over at least ``min_near`` of its length (a neighbour
    in the lattice), when one of its ends meets another line at a
    turnout's angle (within ``max_deg``: a branch or a curve leaving the
    yard), or when it carries a train: car bodies (evidence at least
    ``car_support``) over ``min_cars`` of it, with no rail pair (below
    ``low``) on most of that stretch (cars hide their rails; a road edge
    lights both channels at once). ``lines``: (LineString, score) in metres."""
    if len(lines) < 2:
        return lines
    reach = 2 * float(max(spacing_m)) + 1.0
    join = float(max(spacing_m)) + 1.0
    cos_max = np.cos(np.radians(max_deg))
    geoms = [ln for ln, _ in lines]
    tree = shapely.STRtree(geoms)
    out = []
    for i, (ln, sc) in enumerate(lines):
        cand = [j for j in tree.query(ln.buffer(reach)) if j != i]
        if cand:
            s = np.arange(0.0, ln.length, step_m)
            p = shapely.get_coordinates(shapely.line_interpolate_point(ln, s))
            t = (shapely.get_coordinates(shapely.line_interpolate_point(ln, np.minimum(s + 2.5, ln.length)))
                 - shapely.get_coordinates(shapely.line_interpolate_point(ln, np.maximum(s - 2.5, 0.0))))
            t /= np.maximum(np.hypot(t[:, 0], t[:, 1]), 1e-9)[:, None]
            pts = shapely.points(p)
            near = np.zeros(len(p), bool)
            for j in cand:
                g = geoms[j]
                d = shapely.distance(pts, g)
                q = shapely.line_locate_point(g, pts)
                u = (shapely.get_coordinates(shapely.line_interpolate_point(g, np.minimum(q + 2.5, g.length)))
                     - shapely.get_coordinates(shapely.line_interpolate_point(g, np.maximum(q - 2.5, 0.0))))
                cosang = np.abs(np.sum(u * t, axis=1)) / np.maximum(np.hypot(u[:, 0], u[:, 1]), 1e-9)
                near |= (d <= reach) & (cosang >= cos_max)       # a parallel neighbour in the lattice
            others = shapely.union_all([geoms[j] for j in cand])
            if near.mean() >= min_near or _joins(ln, others, join, max_deg):
                out.append((ln, sc))
                continue
        cars = getattr(ev, "cars", None)
        if cars is not None:
            on_cars = _line_profile(ln, ev, cars, (0.0,))[0] >= car_support
            rails = _line_profile(ln, ev, ev.bank, (0.0,))[0] >= low
            # a train hides its rails; the edge of a road lights both channels at once
            if on_cars.mean() >= min_cars and np.mean(~rails[on_cars]) >= 0.5:
                out.append((ln, sc))
    return out


def _true_runs(mask: np.ndarray):
    """(start, stop) index pairs of the runs of True in ``mask``."""
    m = np.r_[False, np.asarray(mask, bool), False]
    d = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(d[::2], d[1::2]))


def _min_len(sc: tuple, default: float) -> float:
    """The shortest length (m) a line with score tuple ``sc`` may keep: its
    own (third element, car rows) or ``default``."""
    return float(sc[2]) if len(sc) > 2 and sc[2] is not None else default


def _dedupe(lines: list, sep_m: float, min_length_m: float) -> list:
    """Tracks are never closer than ``sep_m`` except at switches: the stronger
    (longer, better supported) line is kept whole and the parts of weaker
    ones within ``sep_m`` of a kept line are cut away (pieces shorter than
    ``min_length_m`` dropped)."""
    keep: list = []
    near = None
    for ln, sc in sorted(lines, key=lambda t: -t[0].length * max(t[1][1], 0.1)):
        min_len = _min_len(sc, min_length_m)
        g = ln if near is None else ln.difference(near)
        parts = [q for q in (g.geoms if hasattr(g, "geoms") else [g])
                 if isinstance(q, LineString) and q.length >= min_len]
        if isinstance(g, MultiLineString):
            merged = shapely.ops.linemerge(g)
            parts = [q for q in (merged.geoms if hasattr(merged, "geoms") else [merged])
                     if isinstance(q, LineString) and q.length >= min_len]
        for q in parts:
            keep.append((q, sc))
            b = q.buffer(sep_m, cap_style="flat")
            near = b if near is None else near.union(b)
    return keep


def trace_tracks(chips_or_arrays, aoi: AOI | None = None, *, gauge_m: Sequence[float] | float = (1.435, 1.52),
                 spacing_m: Sequence[float] = (4.5, 5.5), min_length_m: float = 50.0, threshold: float | None = None,
                 along_m: float = 6.0, max_gap_m: float = 40.0, min_radius_m: float = 80.0,
                 car_width_m: float = 2.9, n_angles: int = 16, inside: bool = True,
                 evidence: TraceEvidence | None = None, complete: bool = True, car_support: float = 2.5,
                 extend: bool = True, car_min_length_m: float | None = None, car_min_support: float = 0.7,
                 car_snap_m: float = 0.1, edge_min_length_m: float | None = 20.0, prune: bool = True,
                 lone: bool = True, **_ignored) -> list[Feature]:
    """Trace rail track centrelines in one or more chips of one AOI.

    Parameters
    ----------
    chips_or_arrays: a :class:`~monitor.imagery.Chip` or a list of chips of
        the same AOI (any grids: all are resampled onto the first one's).
    aoi: the AOI (default: the first chip's); with ``inside`` only lines
        inside its boundary are kept.
    gauge_m: the rail gauge(s) to look for, metres (centre to centre of the
        rail pair is about gauge + 0.07 m).
    spacing_m: (min, max) distance between neighbouring track centrelines,
        metres.
    min_length_m: shortest line kept, metres.
    threshold: evidence level (units of the scene's median evidence) a line
        is followed on; seeds need twice that. Default: from the evidence
        distribution.
    along_m: length (m) over which evidence is averaged along a direction.
    max_gap_m: longest stretch without evidence a line is followed through
        (switches, rows of cars, shadows), metres.
    min_radius_m: the curvature limit of a followed line, metres.
    complete: add the tracks a lattice of parallel traced tracks implies
        between two neighbours too far apart (rows of cars hide rails).
    extend: with ``complete``, also add tracks one spacing beside traced
        ones where a row of car bodies stands (:func:`_extend_lattice`).
    car_support: car-body evidence (units of the scene's median) that
        marks a hidden track for the lattice steps.
    car_snap_m: where a rail-followed line runs on through cars, it moves
        towards the car bodies' axis by at most this much (m) per 1 m step
        (0: straight on); the axis of the cars standing on a track is its
        centreline, and tracks in a fan or a curve leave the straight line
        (0.1 m per m is about the divergence of a 1:9 turnout).
    car_min_length_m, car_min_support: lines found only through car rows
        may be this short (m, default ``min_length_m``) when car bodies
        cover at least ``car_min_support`` of them.
    edge_min_length_m: a track cut by the image edge is seen only in part:
        a car row (``car_min_support`` covered, along the yard's direction)
        ending at the edge of the seen area may be this short (m; None:
        ``min_length_m`` everywhere). 20 m is about a long car and a half.
        (Pieces of lines cut by the AOI boundary keep ``min_length_m``:
        there they are mostly edges of roads and buildings outside.)
    prune: drop lines carried by car evidence that run in the ballast strip
        between two empty tracks (:func:`_between_tracks`).
    lone: drop lines with no parallel neighbour within two track spacings,
        no end meeting another line at a turnout's angle and no train on
        them (:func:`_lone_lines`: road edges, walls, roofs beside a yard).

    Returns
    -------
    A list of :class:`~monitor.aoi.Feature` with role ``"track"``, a
    LineString **in the first chip's CRS (metres)** and properties ``id``
    (``"trace-1"``...), ``confidence`` (0..1), ``length_m``, ``source``
    ``"trace"`` and ``gauge_mm`` when a single gauge is given.
    """
    chips = _as_chips(chips_or_arrays)
    ref = chips[0]
    aoi = aoi if aoi is not None else ref.aoi
    ev = evidence or track_evidence(chips, gauge_m=gauge_m, car_width_m=car_width_m, along_m=along_m,
                                    spacing_m=spacing_m, n_angles=n_angles)
    low = float(threshold) if threshold is not None else _auto_threshold(ev)
    found = _follow_all(ev, 1.35 * low, low, max_gap_m=max_gap_m, min_radius_m=min_radius_m,
                        min_length_m=min_length_m, car_min_length_m=car_min_length_m,
                        car_min_support=car_min_support, car_snap_m=car_snap_m,
                        edge_min_length_m=edge_min_length_m)
    lines = []
    for rc, mean_e, support, need_len in found:
        xy = _smooth(_to_map(rc, ev.transform), 3)
        ln = LineString(xy).simplify(0.1)
        lines.append((ln, (mean_e, support, need_len)))
    if inside and aoi is not None:
        bnd = reproject_to(aoi.boundary, aoi.crs, ev.crs) if aoi.crs is not None else aoi.boundary
        clipped = []
        for ln, s in lines:
            g = ln.intersection(bnd)
            for q in (g.geoms if hasattr(g, "geoms") else [g]):
                if isinstance(q, LineString) and not q.is_empty:
                    clipped.append((q, s))
        lines = clipped
    lines = [(ln, s) for ln, s in lines if ln.length >= _min_len(s, min_length_m)]
    lines = _dedupe(lines, 0.65 * min(spacing_m), min_length_m)
    if complete:
        extra = _complete_lattice(lines, spacing_m, min_length_m)
        cmax = ev.cars.max(axis=0) if getattr(ev, "cars", None) is not None else None
        inv = ~ev.transform
        for ln, _ in sorted(extra, key=lambda t: -t[0].length):
            if cmax is not None:
                # a car row marks the hidden track: most of the line must show car bodies
                xy = shapely.get_coordinates(shapely.line_interpolate_point(ln, np.arange(0, ln.length, 1.0)))
                cc, rr = inv * (xy[:, 0], xy[:, 1])
                ii = np.clip(rr.astype(int), 0, cmax.shape[0] - 1)
                jj = np.clip(cc.astype(int), 0, cmax.shape[1] - 1)
                cv = ndimage.maximum_filter(cmax, size=3)[ii, jj]
                if np.mean(cv >= car_support) < 0.5:
                    continue
                sc_ = (float(np.mean(cv)), float(np.mean(cv >= car_support)))
            else:
                sc_ = (0.0, 0.5)
            lines.append((ln, sc_))
        lines = _dedupe(lines, 0.65 * min(spacing_m), min_length_m)
    if complete and extend:
        lines += _extend_lattice(lines, ev, spacing_m, min_length_m, 0.8 * car_support)
        lines = _dedupe(lines, 0.65 * min(spacing_m), min_length_m)
    if prune and lines:
        pitch = _yard_pitch([ln for ln, _ in lines], spacing_m) or float(np.mean(spacing_m))
        lines = _between_tracks(lines, ev, pitch, low)
    if lone and lines:
        lines = _lone_lines(lines, ev, spacing_m, car_support, low)
    lines.sort(key=lambda t: (-t[0].centroid.y, t[0].centroid.x))
    gauges = np.atleast_1d(np.asarray(gauge_m, float))
    feats = []
    for i, (ln, (mean_e, support, *_)) in enumerate(lines, 1):
        strength = float(np.clip((mean_e - low) / (3 * low), 0, 1))
        conf = 0.4 * strength + 0.4 * support + 0.2 * min(1.0, ln.length / (4 * min_length_m))
        props = {"confidence": round(float(conf), 3), "length_m": round(float(ln.length), 1), "source": "trace"}
        if gauges.size == 1:
            props["gauge_mm"] = int(round(gauges[0] * 1000))
        feats.append(Feature("track", f"trace-{i}", ln, props))
    return feats


def _auto_threshold(ev: TraceEvidence) -> float:
    """The level a track is followed on: well above the background (1)."""
    return 1.3


# ---------------------------------------------------------------------------
# into an AOI
# ---------------------------------------------------------------------------

def _refine(old: Feature, traced: list[Feature], within_m: float):
    """Move ``old`` (chip CRS) onto the traced line running along it within
    ``within_m``: the part of the traced lines inside a corridor around it,
    stitched in the old line's direction. None when nothing runs along it."""
    corridor = old.geometry.buffer(within_m, cap_style="flat")
    best, best_len = None, 0.0
    for f in traced:
        part = f.geometry.intersection(corridor)
        L = part.length
        if L > best_len:
            best, best_len = (f, part), L
    if best is None or best_len < 0.5 * old.geometry.length:
        return None
    f, part = best
    if isinstance(part, MultiLineString):
        part = shapely.ops.linemerge(part)
        if isinstance(part, MultiLineString):
            part = max(part.geoms, key=lambda g: g.length)
    # keep the old line's direction
    a = np.asarray(old.geometry.coords)
    b = np.asarray(part.coords)
    if np.dot(a[-1] - a[0], b[-1] - b[0]) < 0:
        part = LineString(b[::-1])
    props = {**old.properties, "source": "trace-refined",
             "confidence": f.properties.get("confidence")}
    for k in ("gauge_mm",):
        if k in old.properties:
            props[k] = old.properties[k]
    return Feature("track", old.id, part, props), f


def trace_aoi(scenes_or_chips, aoi: AOI | None = None, *, merge: str = "replace", refine_m: float = 8.0,
              **options) -> AOI:
    """Trace tracks and write them into a copy of ``aoi`` (other features kept).

    scenes_or_chips: chips (:class:`~monitor.imagery.Chip`) or scenes
        (anything :func:`monitor.imagery.read_chip` reads) of the AOI.
    merge: ``"replace"`` drops the AOI's track lines for the traced ones;
        ``"add"`` keeps them and adds traced lines not already within
        ``refine_m`` of one; ``"refine"`` moves each existing line onto the
        traced line running along it within ``refine_m`` metres (keeping its
        id and properties) and adds the traced lines left over.
    options: passed to :func:`trace_tracks`.

    Returns an :class:`AOI` in the input AOI's CRS (WGS84 as loaded) that
    :func:`monitor.aoi.parse_aoi` accepts after :meth:`AOI.to_geojson`.
    """
    if merge not in MERGES:
        raise InputError(f"merge={merge}", f"must be one of {', '.join(MERGES)}")
    items = scenes_or_chips if isinstance(scenes_or_chips, (list, tuple)) else [scenes_or_chips]
    from monitor.imagery import Chip

    chips = []
    for it in items:
        if isinstance(it, Chip):
            chips.append(it)
        else:
            from monitor.imagery import read_chip
            from monitor.scenes import open_scene

            if aoi is None:
                raise InputError(str(it), "an AOI is needed to read a scene")
            sc = open_scene(it) if isinstance(it, (str,)) or hasattr(it, "__fspath__") else it
            chips.append(read_chip(sc, aoi))
    if not chips:
        raise InputError("scenes", "no scene to trace tracks in")
    aoi = aoi if aoi is not None else chips[0].aoi
    crs = chips[0].crs
    traced = trace_tracks(chips, aoi, **options)
    local = aoi.to_crs(crs)
    old_tracks = [f for f in local.features if f.role == "track"]
    others = [f for f in local.features if f.role != "track"]
    used_ids = {f.id for f in local.features}
    new_tracks: list[Feature] = []
    if merge == "replace":
        new_tracks = traced
    else:
        consumed = set()
        for old in old_tracks:
            r = _refine(old, traced, refine_m) if merge == "refine" else None
            if r is None:
                new_tracks.append(old)
            else:
                new_tracks.append(r[0])
                consumed.add(r[1].id)
        kept = shapely.union_all([f.geometry.buffer(refine_m) for f in new_tracks]) if new_tracks else None
        for f in traced:
            if f.id in consumed:
                continue
            g = f.geometry if kept is None else f.geometry.difference(kept)
            parts = list(g.geoms) if hasattr(g, "geoms") else [g]
            for j, q in enumerate(p for p in parts if isinstance(p, LineString) and p.length >= 20.0):
                fid = f.id if j == 0 else f"{f.id}-{j}"
                new_tracks.append(Feature("track", fid, q, {**f.properties, "length_m": round(q.length, 1)}))
    # unique ids (traced ids may collide with the AOI's)
    out = []
    seen = {f.id for f in others}
    for f in new_tracks:
        fid = f.id
        n = 1
        while fid in seen or (fid != f.id and fid in used_ids):
            n += 1
            fid = f"{f.id}.{n}"
        seen.add(fid)
        out.append(replace(f, id=fid))
    result = replace(local, features=tuple(others + out), source=None)
    return result.to_crs(aoi.crs)
