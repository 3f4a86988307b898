"""Railcars along the AOI's tracks.

Method (per chip, all geometry in the chip's metric CRS):

1. **Snap** each AOI track line to the real track nearby. The chip is
   sampled on a strip along the line (offsets within ``search_m``); the
   along-track mean of the strip shows the two rail lines ``gauge + 70 mm``
   apart (at fine GSD) or the 3 m band of the track bed (coarser). Stretches
   that look occupied on the drawn line hide their own rails and give
   little evidence. One shift per line (the common shift of all lines as a
   prior, lines never snapping onto a track another line already took) plus
   a smooth residual of at most 1 m (a Viterbi path) gives the moved
   centreline; the offsets are reported.
2. **Occupancy.** The strip is resampled on the snapped centreline. Every
   station's cross-section (all bands, 1.35 m either side) is compared with
   the *empty track* look: the densest mode of all stations of the scene,
   and of the track itself (where the rails are resolved, not when that
   look hides the rails the scene's empty track shows: a train standing
   over most of its track). A car covers both halves of the track, so the
   distance of the *less* different half decides; this keeps a car or its
   shadow on a neighbouring track from occupying this one. At fine GSD
   the empty look is also modelled as a function of the ground beside the
   track (2-3.2 m off, the brighter side): a track bed through snow, fields
   or a cloud shadow looks different, and a station that matches the empty
   look *for its surroundings* is empty. Where the scene
   shows car shadows (a dark band beside the track on one map side, found
   from the data: darker than the sun-side flank beside clearly occupied
   stations, not beside empty ones; clutter on many empty tracks does not
   dilute it), the shadow contrast is a second cue; where the rails are
   not resolved it counts only the darkening beyond what *both* flanks
   usually show beside the track's empty stations (a dark bed of old
   sleepers or a dark shoulder, blurred, darkens both sides; a car's
   shadow one), and beyond what the anti-sun flank alone usually shows
   beside empty stations a car length from any occupied one (a ditch or
   a dark verge along the track). A track's own look whose stations cast
   the scene's car shadow is a train standing over most of the track,
   not its empty look (a second pass). A car
   stands out from the ground beside it: a station that looks like its
   flanks is never occupied (bare ground, thick cloud), and a run must
   somewhere stand clearly above the threshold.
3. **Cars.** Occupied runs are split at coupler gaps: a dynamic programme
   chooses cut points that maximise gap evidence (the cross-section looks
   like empty track or changes abruptly) under a prior of car lengths
   (9-27 m, typical 14.5 m). Coarser than ``fine_gsd_m`` (1.2 m) cars are not
   resolved: the count is the occupied length over a typical car length,
   with an interval from the shortest and longest common cars.

Coverage is the share of the AOI's track length that was visible (inside
the chip, valid, not cloud). A chip where no track is visible raises
:class:`monitor.errors.SceneError`: a zero would be a lie.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from scipy import ndimage
from scipy.spatial import cKDTree
from shapely.geometry import LineString, MultiLineString, Polygon
from shapely.strtree import STRtree

from monitor.detect import Detection, DetectionResult, register
from monitor.detect.tracks import Strip, sample, shifted, stations
from monitor.errors import InputError, SceneError
from monitor.sun import sun_position

VERSION = "1.6"

#: Car lengths over couplers, metres: shortest two-axle wagons, typical
#: freight car (gondola 13.9 m, boxcar ~15 m), longest common (flat ~19.6 m,
#: long wagons to ~27 m).
CAR_MIN_M = 9.0
CAR_TYPICAL_M = 14.5
CAR_MAX_M = 27.0
#: Car body width, metres (1520 mm cars ~3.2 m, standard gauge ~2.9-3.1 m).
CAR_WIDTH_M = 3.0
#: Coarse-resolution count interval: occupied length over these car lengths.
CAR_SHORT_M, CAR_LONG_M = 12.0, 19.6


def _scene_name(chip) -> str:
    sc = chip.scene
    for attr in ("id", "name", "path"):
        v = getattr(sc, attr, None)
        if v:
            return str(v)
    return str(chip.meta.get("scene") or chip.meta.get("source") or f"chip of AOI {chip.aoi.id}")


class _Coarse:
    """A ~4 m grid of block means of the chip: the cloud backstop and ground
    levels are computed here, never on the full-resolution raster. Each
    block of ``f`` x ``f`` pixels is averaged over an m x m lattice of its
    pixels (every ``f / m``-th; m = ``lattice`` at most): single pixels
    every 4 m would alias the yard's regular patterns (rails, sleepers,
    track spacing) into the levels.

    bands: block means (n, hc, wc); valid: blocks with valid pixels;
    f: block size in pixels (blocks start at pixel 0).
    """

    def __init__(self, chip, valid: np.ndarray, target_m: float = 4.0, lattice: int = 2):
        raw = np.asarray(chip.bands)
        if raw.ndim == 2:
            raw = raw[None]
        f = max(1, int(round(target_m / float(chip.gsd_m))))
        t = max(1, f // lattice)
        f = t * max(1, f // t)
        m = f // t
        h, w = raw.shape[1:]
        hc, wc = h // f, w // f
        if hc == 0 or wc == 0:
            f, t, m, hc, wc = 1, 1, 1, h, w
        self.f, self.off = f, 0
        sub = raw[:, t // 2:hc * f:t, t // 2:wc * f:t]
        vs = np.asarray(valid, dtype=bool)[t // 2:hc * f:t, t // 2:wc * f:t]
        if np.issubdtype(sub.dtype, np.floating):
            vs = vs & np.all(np.isfinite(sub), axis=0)
        if not vs.all():
            sub = np.where(vs[None], sub, 0)
        n = raw.shape[0]
        cnt = vs.reshape(hc, m, wc, m).sum(axis=(1, 3)).astype(np.float32)
        self.bands = sub.reshape(n, hc, m, wc, m).sum(axis=(2, 4), dtype=np.float32) / np.maximum(cnt, 1.0)[None]
        self.valid = cnt > 0.5 * m * m
        self.transform = chip.transform
        self.cell_m = f * float(chip.gsd_m)

    def index(self, xy: np.ndarray):
        """Fractional (row, col) on the block grid of map points ``xy`` (..., 2)."""
        inv = ~self.transform
        col = inv.a * xy[..., 0] + inv.b * xy[..., 1] + inv.c
        row = inv.d * xy[..., 0] + inv.e * xy[..., 1] + inv.f
        return row / self.f - 0.5, col / self.f - 0.5

    def lookup(self, grid: np.ndarray, xy: np.ndarray, order: int = 1) -> np.ndarray:
        """``grid`` (hc, wc) at map points ``xy`` (n, 2): bilinear, or nearest (order 0)."""
        r, c = self.index(xy)
        if order == 0:
            ri = np.clip(np.rint(r).astype(np.intp), 0, grid.shape[0] - 1)
            ci = np.clip(np.rint(c).astype(np.intp), 0, grid.shape[1] - 1)
            return grid[ri, ci]
        return ndimage.map_coordinates(grid, [r.ravel(), c.ravel()], order=1, mode="nearest").reshape(r.shape)

    def smooth(self, g: np.ndarray, valid: np.ndarray, scale_m: float) -> np.ndarray:
        """``g`` (hc, wc) smoothed over ``scale_m`` (Gaussian sigma, m) from the valid cells."""
        sig = scale_m / self.cell_m
        wv = valid.astype(np.float32)
        return ndimage.gaussian_filter(np.where(valid, g, 0.0), sig, mode="nearest") / np.maximum(
            ndimage.gaussian_filter(wv, sig, mode="nearest"), 1e-6)


def _gray_roles(roles) -> list[int]:
    """Band indices of the brightness band: pan/gray, else R, G, B, else the first."""
    roles = list(roles or ())
    for r in ("pan", "gray"):
        if r in roles:
            return [roles.index(r)]
    rgb = [roles.index(r) for r in ("red", "green", "blue") if r in roles]
    return rgb or [0]


def _band_stats(chip, co: _Coarse, cloud: np.ndarray | None, n_max: int = 250_000) -> tuple[np.ndarray, np.ndarray]:
    """Robust per-band centre and spread (median, 1.4826 MAD) of the chip
    over about ``n_max`` evenly spread valid pixels clear of ``cloud`` (a
    sub-grid mask of :class:`_Coarse`): the strips are scaled to these
    z-scores."""
    raw = np.asarray(chip.bands)
    raw = raw[None] if raw.ndim == 2 else raw
    h, w = raw.shape[1:]
    t = max(1, int(math.sqrt(h * w / n_max)))
    vs = np.asarray(chip.valid, dtype=bool)[::t, ::t].copy()
    if cloud is not None:
        ri = np.clip(np.arange(0, h, t) // co.f, 0, cloud.shape[0] - 1)
        ci = np.clip(np.arange(0, w, t) // co.f, 0, cloud.shape[1] - 1)
        vs &= ~cloud[np.ix_(ri, ci)]
    n = raw.shape[0]
    med, mad = np.zeros(n, np.float32), np.ones(n, np.float32)
    for k in range(n):
        v = raw[k, ::t, ::t][vs].astype(np.float32)
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        med[k] = float(np.median(v))
        m = float(np.median(np.abs(v - med[k]))) * 1.4826
        if not m > 0:
            m = float(np.std(v)) or 1.0
        mad[k] = m
    return med, mad


def _cloud_screen(co: _Coarse, gray_idx, scale_m: float = 40.0, k: float = 5.0,
                  edge_m: float | None = None) -> np.ndarray:
    """Unmasked thick cloud on the sub-grid (True): brightness smoothed over
    ``scale_m`` (far wider than a train, so white cars do not count) more
    than ``k`` spreads above the scene's usual level, the spread taken from
    the darker half of the scene (robust to cloud over up to about half the
    chip), and 1.5 x brighter than that level. The chip's own mask (scene
    cloud masks) comes first; this is a backstop.

    The cloud's edge: by default the bright area grown by twice
    ``scale_m`` (up to 80 m of clear ground beside a cloud lost). With
    ``edge_m`` the area is traced on a finer smoothing (``edge_m``, m):
    the cells of the coarse area that are themselves bright on that scale,
    grown through the cells still ``k / 2`` spreads (that scale's own)
    above the usual level and brighter than it by a quarter (the cloud
    thinning out), and one ``edge_m`` beyond (its blur)."""
    g = co.bands[gray_idx].mean(axis=0)
    sm = co.smooth(g, co.valid, scale_m)
    v = sm[co.valid]
    if v.size < 50:
        return np.zeros_like(co.valid)
    med = float(np.median(v))
    low = v[v <= med]
    spread = 1.4826 * float(np.median(np.abs(low - med))) + 1e-6
    bright = (sm > med + k * spread) & (sm > 1.5 * med if med > 0 else True)
    sig = scale_m / co.cell_m
    if edge_m is None:
        cloud = ndimage.binary_dilation(bright, iterations=max(1, int(round(2 * sig))))
        return cloud & co.valid
    fs = co.smooth(g, co.valid, edge_m)
    vf = fs[co.valid]
    med_f = float(np.median(vf))
    low_f = vf[vf <= med_f]
    spread_f = 1.4826 * float(np.median(np.abs(low_f - med_f))) + 1e-6
    pos = med_f > 0
    seed = bright & (fs > med_f + k * spread_f) & (fs > 1.5 * med_f if pos else True)
    fringe = (fs > med_f + 0.5 * k * spread_f) & (fs > 1.25 * med_f if pos else True)
    cloud = ndimage.binary_propagation(seed, mask=fringe | seed)
    cloud = ndimage.binary_dilation(cloud, iterations=max(1, int(round(edge_m / co.cell_m))))
    return cloud & co.valid


def _sun_azimuth(chip) -> float | None:
    """The sun's azimuth (degrees from north) for the chip: the scene's
    ``view:sun_azimuth`` (STAC), else computed from its acquisition time
    and the AOI's position; ``None`` when neither is known (the shadow
    side is then found from the data)."""
    sc = chip.scene
    props = dict(getattr(sc, "properties", None) or {})
    for key in ("view:sun_azimuth", "sun_azimuth"):
        v = props.get(key, chip.meta.get(key))
        if v is not None:
            try:
                return float(v) % 360
            except (TypeError, ValueError):
                pass
    when = getattr(sc, "acquired", None) or chip.meta.get("acquired")
    if when is None:
        return None
    try:
        if isinstance(when, str):
            from datetime import datetime

            when = datetime.fromisoformat(when.replace("Z", "+00:00"))
        c = chip.aoi.to_crs("EPSG:4326").boundary.centroid
        return sun_position(when, float(c.y), float(c.x))[0]
    except (ValueError, TypeError, AttributeError):
        return None


def _offsets(half_m: float, step_m: float) -> np.ndarray:
    """Offsets across a strip, symmetric about the centreline (0 included),
    every ``step_m`` to at least ``half_m`` either side."""
    n = int(math.ceil(half_m / step_m - 1e-9))
    return step_m * np.arange(-n, n + 1, dtype=float)


def _gray(strip_vals: np.ndarray) -> np.ndarray:
    return strip_vals.mean(axis=0)


def _nanmean_along(x: np.ndarray, w: np.ndarray, size: int) -> np.ndarray:
    """Mean of ``x`` weighted by ``w`` in a moving window of ``size`` rows."""
    size = max(1, int(size))
    num = ndimage.uniform_filter1d(x * w, size, axis=0, mode="nearest")
    den = ndimage.uniform_filter1d(w.astype(np.float32), size, axis=0, mode="nearest")
    return num / np.maximum(den, 1e-6), den


# ---------------------------------------------------------------------------
# 1. snapping
# ---------------------------------------------------------------------------

def _snap_scores(strip: Strip, gsd: float, rail_sep: float, search_m: float, window_m: float = 24.0,
                 band_sigma_m: float = 1.5):
    """Per (station, candidate centre) evidence of a track centre.

    Returns (scores (ns, nc), candidates (nc,), rails (ns, nc)) where the
    candidates are the strip offsets within ``search_m``.
    """
    do = float(strip.o[1] - strip.o[0])
    g = _gray(strip.values)
    w = strip.valid.astype(np.float32)
    gm, cnt = _nanmean_along(g, w, window_m / strip.ds)
    gm = np.where(cnt > 0.2, gm, 0.0)
    # thin lines (rails): second derivative across the strip
    sig_r = max(0.12, 0.45 * gsd) / do
    lr = ndimage.gaussian_filter1d(gm, sig_r, axis=1, order=2)
    # a 3 m band (ballast bed or cars)
    sig_b = max(band_sigma_m, 0.5 * gsd) / do
    lb = ndimage.gaussian_filter1d(gm, sig_b, axis=1, order=2) * (sig_b ** 2 / sig_r ** 2)
    cand = np.flatnonzero(np.abs(strip.o) <= search_m + 1e-9)
    sh = int(round(rail_sep / 2 / do))
    left = np.clip(cand + sh, 0, len(strip.o) - 1)
    right = np.clip(cand - sh, 0, len(strip.o) - 1)
    pair = lr[:, left] * lr[:, right]
    rails = np.sqrt(np.maximum(pair, 0.0))
    band = np.abs(lb[:, cand])
    # rails are resolved only at fine GSD; weight them accordingly
    wr = float(np.clip((1.0 - gsd) / 0.5, 0.0, 1.0))

    def _norm(a):
        q = np.percentile(a, 95) if a.size else 1.0
        return a / q if q > 0 else a

    # where rails are resolved they are the evidence (a car row and its
    # shadow make a band off the track centre); coarser, the band
    sc = wr * _norm(rails) + (1.0 - wr) * _norm(band)
    sc = np.where(cnt[:, cand] > 0.2, sc, 0.0)
    return sc, strip.o[cand], rails


def _frame(strip: Strip, own, pts: np.ndarray):
    """Station (m) and signed left offset (m) of points (m, 2) in the frame
    of the line ``own`` sampled by ``strip``."""
    s = shapely.line_locate_point(own, shapely.points(pts))
    base = shapely.get_coordinates(shapely.line_interpolate_point(own, s))
    nx = np.interp(s, strip.s, strip.normal[:, 0])
    ny = np.interp(s, strip.s, strip.normal[:, 1])
    o = (pts[:, 0] - base[:, 0]) * nx + (pts[:, 1] - base[:, 1]) * ny
    return s, o


def _viterbi(score: np.ndarray, cand: np.ndarray, step_m: float, penalty: float) -> np.ndarray:
    """Best path (candidate index per row) through ``score`` (n, nc) where
    moving by d metres between consecutive rows costs ``penalty * d``."""
    n, nc = score.shape
    trans = penalty * np.abs(cand[:, None] - cand[None, :])  # (from, to)
    acc = score[0].copy()
    back = np.zeros((n, nc), dtype=np.intp)
    for i in range(1, n):
        tot = acc[:, None] - trans
        back[i] = np.argmax(tot, axis=0)
        acc = tot[back[i], np.arange(nc)] + score[i]
    path = np.empty(n, dtype=np.intp)
    path[-1] = int(np.argmax(acc))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def _snap(strip: Strip, score: np.ndarray, cand: np.ndarray, prior: float | None, search_m: float,
          taken: list | None = None, own=None, sep_m: float = 2.6,
          move_cost: float = 0.1, wiggle_m: float = 1.0) -> np.ndarray:
    """Smooth per-station offset (m) of the real track from the line.

    ``taken``: (snapped, drawn) line pairs of tracks already snapped; a
    candidate within ``sep_m`` of a snapped one is refused where the drawn
    lines are more than ``sep_m`` apart (two AOI tracks never share rails,
    except where they really meet, at switches).
    """
    ns = len(strip.s)
    blk = max(1, int(round(4.0 / strip.ds)))
    nb = int(math.ceil(ns / blk))
    pad = nb * blk - ns
    sc = np.pad(score, ((0, pad), (0, 0)), mode="edge").reshape(nb, blk, -1).mean(axis=1)
    # blocks with a clear peak (visible rails) speak; the rest (cars, cloud)
    # follow their neighbours through the smoothness of the path
    prom = sc.max(axis=1) - np.median(sc, axis=1)
    q = np.quantile(prom, 0.9) if prom.size else 1.0
    wts = np.clip(prom / (q if q > 0 else 1.0), 0, 1)[:, None]
    # moving the line costs a little (drawn lines are roughly right), in
    # proportion to the evidence of the block
    cost = move_cost * np.abs(cand)[None, :] / max(search_m, 1e-6)
    if prior is not None:
        cost = cost + 0.15 * np.abs(cand - prior)[None, :] / max(search_m, 1e-6)
    sc = (sc - np.median(sc, axis=1, keepdims=True) - cost) * wts
    if taken:
        sb = strip.s[np.minimum((np.arange(nb) + 0.5) * blk, ns - 1).astype(int)]
        reach = search_m + sep_m + 1.0
        for snapped, drawn in taken:
            if own is not None and shapely.distance(own, LineString(drawn)) > reach:
                continue
            s_j, o_j = _frame(strip, own, snapped)
            _, o_d = _frame(strip, own, drawn)
            keep = (s_j > 0) & (s_j < strip.s[-1]) & (np.abs(o_j) < reach)
            if keep.sum() < 2:
                continue
            k = np.argsort(s_j[keep])
            sj, oj, od = s_j[keep][k], o_j[keep][k], o_d[keep][k]
            inside = (sb >= sj[0]) & (sb <= sj[-1])
            o_other = np.interp(sb, sj, oj)
            o_draw = np.interp(sb, sj, od)
            close = (np.abs(cand[None, :] - o_other[:, None]) < sep_m) & (inside & (np.abs(o_draw) > sep_m))[:, None]
            sc = np.where(close, sc - 10.0, sc)
    # one shift for the whole line (drawing and georeference errors are
    # smooth; an occupied stretch hides its own rails while the neighbours'
    # stay visible), then a smooth residual of at most ``wiggle_m``
    c0 = cand[int(np.argmax(sc.sum(axis=0)))]
    sc = np.where(np.abs(cand - c0)[None, :] <= wiggle_m, sc, sc - 100.0)
    path = _viterbi(sc, cand, blk * strip.ds, penalty=1.0)
    off_b = cand[path]
    centers = (np.arange(nb) + 0.5) * blk
    off = np.interp(np.arange(ns), centers, off_b)
    return ndimage.gaussian_filter1d(off, max(1.0, 12.0 / strip.ds), mode="nearest")


# ---------------------------------------------------------------------------
# 2. occupancy
# ---------------------------------------------------------------------------

def _features(strip: Strip, half_m: float, smooth_m: float):
    """Cross-section features per station: (left (ns, k), right (ns, k), ok (ns,))."""
    do = float(strip.o[1] - strip.o[0])
    v = strip.values
    w = strip.valid.astype(np.float32)
    sig = max(0.0, smooth_m / strip.ds)
    # across the track, blur a little: a centreline off by a few decimetres
    # must not make thin rails look like a change of the cross-section
    sig_o = max(0.3, 0.5 * abs(do)) / do
    num = ndimage.gaussian_filter(v * w[None], (0, max(sig, 0.0), sig_o), mode="nearest")
    den = ndimage.gaussian_filter(w, (max(sig, 0.0), sig_o), mode="nearest")
    v = num / np.maximum(den, 1e-6)[None]
    step = max(1, int(round(0.3 / do)))
    o = strip.o
    li = np.flatnonzero((o > 0.15) & (o <= half_m + do / 2))[::step]
    ri = np.flatnonzero((o < -0.15) & (o >= -half_m - do / 2))[::step]
    left = np.moveaxis(v[:, :, li], 0, 1).reshape(v.shape[1], -1)
    right = np.moveaxis(v[:, :, ri[::-1]], 0, 1).reshape(v.shape[1], -1)
    ci = np.flatnonzero(np.abs(o) <= 1.2)
    ok = strip.valid[:, ci].all(axis=1)
    return left, right, ok


def _flank_means(strip: Strip, smooth_m: float, inner_m: float = 1.9, outer_m: float = 2.8):
    """Per-band mean of the ground beside the track, each side: two arrays
    (ns, n_bands) for the left and right flanks (``inner_m``..``outer_m``
    off the centre, clear of a 3 m car body and of a neighbouring track's
    cars at the usual 4.5-5 m spacing), smoothed along the track over
    ``smooth_m`` (Gaussian sigma, m)."""
    v = strip.values
    w = strip.valid.astype(np.float32)
    sig = max(0.5, smooth_m / strip.ds)
    out = []
    for sgn in (1.0, -1.0):
        m = (strip.o * sgn >= inner_m) & (strip.o * sgn <= outer_m)
        if not m.any():
            m = np.abs(strip.o) == np.abs(strip.o).max()
        num = ndimage.gaussian_filter1d((v[:, :, m] * w[None, :, m]).sum(axis=2), sig, axis=1, mode="nearest")
        den = ndimage.gaussian_filter1d(w[:, m].sum(axis=1), sig, mode="nearest")
        out.append((num / np.maximum(den, 1e-6)[None]).T)
    return out[0], out[1]


def _flat_distance(left: np.ndarray, right: np.ndarray, flanks, scale: np.ndarray) -> np.ndarray:
    """How much the track's cross-section stands out from the ground beside
    it (ns,), in units of the empty-track spread ``scale``: the RMS
    difference of the body features (both halves) from each flank's level,
    the larger of the two sides. Low where the track bed, any car and the
    ground all look alike: a track through bare ground of the ballast's
    colour, under thick cloud or deep shade. A car stands out from the
    ground on at least one side (the other may hold its shadow)."""
    f = np.concatenate([left, right], axis=1)
    sc = np.concatenate([scale, scale])
    nb = flanks[0].shape[1]
    reps = f.shape[1] // (2 * nb)
    out = []
    for fl in flanks:
        ref = np.tile(np.repeat(fl, reps, axis=1), (1, 2))
        out.append(np.sqrt(np.mean(((f - ref) / sc) ** 2, axis=1)))
    return np.maximum(out[0], out[1])


def _rows(x: np.ndarray, n_max: int = 40_000) -> np.ndarray:
    """At most ``n_max`` evenly spaced rows of ``x``."""
    if len(x) <= n_max:
        return x
    return x[np.linspace(0, len(x) - 1, n_max).astype(np.intp)]


def _empty_reference(feats: np.ndarray, seeds: np.ndarray | None, keep: float = 0.35, iters: int = 4,
                     keep_scale: float = 0.35, modes: int = 4,
                     min_scale: float = 0.05) -> list[tuple[np.ndarray, np.ndarray]]:
    """Models of the empty-track cross-section: a list of (reference (k,),
    scale (k,)).

    With ``seeds`` (stations whose rails are visible) the seeds are
    clustered into up to ``modes`` looks (ballast differs across a yard);
    without, the densest mode of all ``feats`` (n, k) is taken.
    """
    x = feats
    if seeds is not None and seeds.sum() >= max(40, 0.03 * len(x)):
        from scipy.cluster.vq import kmeans2

        sel = x[seeds]
        k = int(min(modes, max(1, len(sel) // 200)))
        if k > 1:
            rng = np.random.default_rng(0)
            _, lab = kmeans2(sel.astype(np.float64), k, minit="++", seed=rng)
        else:
            lab = np.zeros(len(sel), dtype=int)
        out = []
        for c in range(k):
            m = sel[lab == c]
            if len(m) < 20:
                continue
            ref = np.median(m, axis=0)
            scale = 1.4826 * np.median(np.abs(m - ref), axis=0)
            out.append((ref, np.maximum(scale, max(min_scale, float(np.median(scale)) * 0.5))))
        if out:
            return out
    # the densest mode from an even subset of rows (long tracks at fine GSD
    # give far more stations than a median needs)
    x = _rows(x, 12_000)
    sel = x
    ref = np.median(sel, axis=0)
    for _ in range(iters):
        d = np.sqrt(np.mean((x - ref) ** 2, axis=1))
        thr = np.quantile(d, keep)
        sel = x[d <= thr]
        ref = np.median(sel, axis=0)
    if keep_scale > keep:
        # spread from a larger share of the nearest stations (noisy, coarse
        # imagery: the nearest ``keep`` share alone understates it)
        d = np.sqrt(np.mean((x - ref) ** 2, axis=1))
        sel = x[d <= np.quantile(d, keep_scale)]
    scale = 1.4826 * np.median(np.abs(sel - ref), axis=0)
    floor = max(min_scale, float(np.median(scale)) * 0.5)
    return [(ref, np.maximum(scale, floor))]


def _flank_level(strip: Strip, inner_m: float = 2.0, outer_m: float = 3.2, smooth_m: float = 2.0) -> np.ndarray:
    """Brightness of the ground beside the track per station (ns,): the
    mean grey of ``inner_m``..``outer_m`` either side, the brighter side
    (a car's own shadow darkens the other)."""
    g = _gray(strip.values)
    w = strip.valid.astype(np.float32)
    out = []
    for sgn in (1.0, -1.0):
        m = (strip.o * sgn >= inner_m) & (strip.o * sgn <= outer_m)
        num = (g[:, m] * w[:, m]).sum(axis=1)
        den = w[:, m].sum(axis=1)
        out.append(np.where(den > 0, num / np.maximum(den, 1e-6), np.nan))
    f = np.fmax(out[0], out[1])
    f = np.where(np.isfinite(f), f, np.nanmedian(f) if np.isfinite(f).any() else 0.0)
    return ndimage.uniform_filter1d(f, max(1, int(round(smooth_m / strip.ds))), mode="nearest")


def _surround_model(feats: np.ndarray, flank: np.ndarray, keep: float = 0.35, iters: int = 4,
                    min_scale: float = 0.05):
    """Empty-track look as a linear function of the surrounding ground's
    brightness (a track bed through snow, fields, cloud shadow or haze
    looks different, its surroundings tell how): robust fit on the best
    fitting ``keep`` share. Returns (coef (2, k), scale (k,))."""
    keep_rows = _rows(np.arange(len(flank)), 20_000)
    X = np.stack([np.ones(len(keep_rows)), flank[keep_rows]], axis=1).astype(np.float64)
    Y = feats[keep_rows].astype(np.float64)
    sel = np.ones(len(Y), dtype=bool)
    for _ in range(iters + 1):
        # least squares with two regressors: the normal equations
        Xs, Ys = X[sel], Y[sel]
        coef = np.linalg.solve(Xs.T @ Xs + 1e-9 * np.eye(2), Xs.T @ Ys)
        r = Y - X @ coef
        d = np.sqrt(np.mean(r ** 2, axis=1))
        sel = d <= np.quantile(d, keep)
    scale = 1.4826 * np.median(np.abs(r[sel]), axis=0)
    floor = max(min_scale, float(np.median(scale)) * 0.5)
    return coef, np.maximum(scale, floor)


def _distance(f: np.ndarray, models) -> np.ndarray:
    """Normalised RMS distance of features (n, k) to the nearest empty model."""
    return np.min([np.sqrt(np.mean(((f - r) / s) ** 2, axis=1)) for r, s in models], axis=0)


#: A change of the ground's illumination counts as shade (or its end)
#: from this factor on: a cloud shadow takes a third or more of the light;
#: ballast and ground texture vary by less.
SHADE_MAX_GAIN = 0.9
#: ... or from this many robust spreads of the flanks' own scatter, where
#: that is less.
SHADE_NOISE_K = 2.0
#: A cloud shadow darkens both flanks of a track alike: the smaller of the
#: two flanks' darkenings is at least this share of the larger (a car's
#: own shadow, or a neighbouring train's, darkens one side only).
FLANK_AGREE = 0.8


def _shade_gain(left: np.ndarray, right: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Illumination of a track's stations relative to the track's usual
    level (ns,), from the raw grey level of the ground on either flank
    (``left``, ``right``, (ns,), e.g. 2-3.2 m off the centre): each flank
    over its own median on the visible stations ``ok``; where both flanks
    changed alike (within ``FLANK_AGREE``) and by more than their own
    scatter along the track (``SHADE_NOISE_K`` robust spreads; a change
    by ``SHADE_MAX_GAIN`` always counts), the brighter flank's factor (a
    car's shadow darkens one side, the other shows the light), else 1 (no
    change of illumination)."""
    ones = np.ones(len(left))
    if ok.sum() < 2:
        return ones
    rl, rr = float(np.median(left[ok])), float(np.median(right[ok]))
    if not (rl > 0 and rr > 0):
        return ones
    a, b = left / rl, right / rr
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    # a change of light beyond the flanks' own scatter along the track
    # (ground texture, a few decimetres of misplaced flank): at most
    # ``SHADE_MAX_GAIN``
    noise = 1.4826 * float(np.median(np.abs(np.concatenate([a[ok], b[ok]]) - 1.0)))
    dead = max(SHADE_MAX_GAIN, 1.0 - SHADE_NOISE_K * noise)
    use = ok & (lo >= FLANK_AGREE * hi) & ((hi <= dead) | (hi >= 1.0 / dead))
    return np.where(use, np.clip(hi, 0.05, 20.0), 1.0)


def _deshade(f: np.ndarray, gain: np.ndarray, zoff: np.ndarray) -> np.ndarray:
    """Features ``f`` (n, k) of z-scores (raw - med) / mad, divided in raw
    units by the station's illumination ``gain`` (n,): z / g + (med / mad)
    (1 / g - 1), ``zoff`` = med / mad per feature (k,)."""
    ig = 1.0 / gain[:, None]
    return f * ig + zoff[None, :] * (ig - 1.0)


#: A track's own densest look is a train's (not its ballast's) when it is
#: this many spreads from the yard's empty looks (the auto threshold's
#: floor: under the yard's look it would itself read as occupied) ...
RHYTHM_FAR = 2.5
#: ... and its coupler rhythm exceeds this many standard errors of an
#: autocorrelation of uncorrelated samples 1 m apart (a gap's width; 3 sigma).
RHYTHM_K = 3.0


def _coupler_rhythm(left: np.ndarray, right: np.ndarray, ok: np.ndarray, mine, ds: float,
                    detrend_m: float = 8.0, gap_m: float = 2.0) -> float:
    """How strongly a track's along-track distance to the empty look repeats
    at a car length: the normalised autocorrelation (detrended over
    ``detrend_m``), its peak over lags ``CAR_MIN_M``..``CAR_MAX_M`` (0..1).
    Along a train the coupler gaps break the cars' look every 12-25 m;
    ballast has no such rhythm. The distance is to ``yard`` (the yard's
    empty models; the gaps dip towards them) on the stretches of the
    track's own look ``mine``, or to ``mine`` when ``yard`` is None.
    ``left``/``right`` (ns, k) half features, ``ok`` (ns,) visible, ``ds``
    station spacing (m)."""
    d = np.minimum(_distance(left, mine), _distance(right, mine))
    # only the stretches of the track's own look and the gaps between them
    # (a coupler gap, 1-2 m): a train elsewhere on a track whose own look
    # is its ballast is not that look's rhythm
    member = ok & (d < 1.0)
    ok = ok & ndimage.binary_dilation(member, iterations=max(1, int(round(gap_m / ds))))
    d = np.where(ok, d, np.nan)
    if np.isfinite(d).sum() < 20:
        return 0.0
    d = np.where(np.isfinite(d), d, np.nanmedian(d))
    x = d - ndimage.uniform_filter1d(d, max(3, int(round(detrend_m / ds))), mode="nearest")
    x = np.where(ok, x, 0.0)
    n = len(x)
    lo, hi = int(round(CAR_MIN_M / ds)), int(round(CAR_MAX_M / ds))
    if n < 3 * hi:
        return 0.0
    fx = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(fx * np.conj(fx))[:n]
    w = np.fft.irfft(np.abs(np.fft.rfft(ok.astype(float), 2 * n)) ** 2)[:n]
    ac = ac / np.maximum(w, 1.0)
    if not ac[0] > 0:
        return 0.0
    return float(ac[lo:hi + 1].max() / ac[0])


def _mine_vs_surround(left, right, ok, mine, flank, coef, cscale, within: float = 1.0) -> float:
    """Median distance (spreads) of the stations of a track's own look
    ``mine`` (within ``within`` of it) to the empty look predicted from the
    ground beside them (``flank`` (ns,), :func:`_surround_model`'s
    ``coef``, ``cscale``); the less different half counts."""
    dm = np.minimum(_distance(left, mine), _distance(right, mine))
    member = ok & (dm < within)
    if member.sum() < 10:
        return 0.0
    X = np.stack([np.ones(member.sum()), flank[member]], axis=1)
    pred = X @ coef
    dl = np.sqrt(np.mean(((left[member] - pred) / cscale) ** 2, axis=1))
    dr = np.sqrt(np.mean(((right[member] - pred) / cscale) ** 2, axis=1))
    return float(np.median(np.minimum(dl, dr)))


def _hides_rails(left: np.ndarray, right: np.ndarray, ok: np.ndarray, mine, rails: np.ndarray,
                 rail_ref: float, within: float = 1.0, min_n: int = 20) -> bool:
    """Is a track's own densest look (``mine``) a car's? Its stations
    (within ``within`` spreads) hide the rails: their rail evidence is under
    half the scene's empty-track level ``rail_ref`` and under half of what
    the track's other stations show (a train standing over most of the
    track; a track whose rails are faint all along keeps its look)."""
    dm = np.minimum(_distance(left, mine), _distance(right, mine))
    member = ok & (dm < within)
    rest = ok & ~member
    if member.sum() < min_n:
        return False
    r_mode = float(np.median(rails[member]))
    if r_mode >= 0.5 * rail_ref:
        return False
    if rest.sum() < min_n:
        return False  # nothing to compare with: the whole track looks alike
    return r_mode < 0.5 * float(np.quantile(rails[rest], 0.8))


def _shadowed_own_look(feats, mines, models, shadow: dict, thr: float, ds: float, min_m: float = 30.0,
                       share: float | None = None, info: dict | None = None) -> list[int]:
    """Tracks (indices) whose own densest look ``mines[k]`` is a train's,
    told by the scene's car shadow: its stations (within 1 spread of it,
    at least ``min_m`` of them) are unlike the yard's empty look
    (``models``, the nearer half at least ``thr`` off, median) and cast a
    car shadow (median): their anti-sun flank is darker than the sun-side
    one by ``share`` (default ``SHADOW_SHARE``) of the scene's typical car
    shadow or more (``shadow`` from :func:`_shadow_cue`, its ``asym``
    against empty stations). Ballast, whatever its colour, darkens both
    flanks alike or neither; a car 3.5-4.5 m tall casts its shadow on one
    side."""
    share = SHADOW_SHARE if share is None else share
    out = []
    for k, ((left, right, ok), mine) in enumerate(zip(feats, mines)):
        if not mine:
            continue
        dm = np.minimum(_distance(left, mine), _distance(right, mine))
        member = ok & (dm < 1.0)
        if member.sum() * ds < min_m:
            continue
        d_e = float(np.median(np.minimum(_distance(left[member], models), _distance(right[member], models))))
        a = float(np.median(shadow["asym"][k][member]))
        rec = {"d_empty": round(d_e, 2), "asym": round(a, 2), "contrast": round(shadow["contrast"], 2),
               "member_m": round(float(member.sum() * ds), 1)}
        if d_e >= thr and a >= share * shadow["contrast"]:
            out.append(k)
            rec["refused"] = True
        if info is not None:
            rec["member"] = member
            info[k] = rec
    return out


#: Another track's centreline this far (m) towards the sun from a station
#: can throw its cars' shadow over it (track spacing 4-6.5 m; cars 3.5-4.5 m
#: tall cast shadows of several metres under most sun elevations).
CAST_REACH_M = (3.5, 6.5)


def _under_neighbour(pts: list[np.ndarray], occ: list[np.ndarray], k: int, u_sun: np.ndarray,
                     reach=CAST_REACH_M) -> np.ndarray:
    """Stations (bool, per point of ``pts[k]``) with an occupied station of
    another track ``reach`` m away towards the sun (within 60 degrees of the
    sun's direction ``u_sun``, a unit map vector): a car there can shade
    this track."""

    own = pts[k]
    others = [p[o] for j, (p, o) in enumerate(zip(pts, occ)) if j != k and o.any()]
    out = np.zeros(len(own), dtype=bool)
    if not others or not len(own):
        return out
    op = np.concatenate(others)
    lo, hi = own.min(axis=0) - reach[1], own.max(axis=0) + reach[1]
    op = op[np.all((op >= lo) & (op <= hi), axis=1)]
    if not len(op):
        return out
    d, idx = cKDTree(op).query(own, k=8, distance_upper_bound=reach[1])
    fin = np.isfinite(d)
    v = op[np.where(fin, idx, 0)] - own[:, None, :]
    along_sun = v @ u_sun
    ok = fin & (d >= reach[0]) & (along_sun >= 0.5 * d)
    return ok.any(axis=1)


def _rail_pair(strip: Strip, rail_sep: float, gsd: float, along_m: float = 2.0, tol_m: float = 0.5) -> np.ndarray:
    """Evidence (ns,) of the two rails on the strip's centreline: the
    geometric mean of the thin-line (second derivative) response at
    ``+-rail_sep / 2``, averaged along the track over ``along_m``. A car
    covers the rails: high on empty track, near zero under a car."""
    do = float(strip.o[1] - strip.o[0])
    g, _ = _nanmean_along(_gray(strip.values), strip.valid, along_m / strip.ds)
    lr = ndimage.gaussian_filter1d(g, max(0.12, 0.45 * gsd) / do, axis=1, order=2)
    sh = int(round(rail_sep / 2 / do))
    # the pair centred within ``tol_m`` of the line (a snapped or traced
    # line is right to a few decimetres; the rails are thinner than that)
    cs = np.flatnonzero(np.abs(strip.o) <= tol_m + 1e-9)
    a, b = np.clip(cs + sh, 0, len(strip.o) - 1), np.clip(cs - sh, 0, len(strip.o) - 1)
    return np.sqrt(np.maximum(lr[:, a] * lr[:, b], 0.0)).max(axis=1)


# ---------------------------------------------------------------------------
# 3. cars
# ---------------------------------------------------------------------------

def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index runs [a, b) of True values."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def _split_run(gap: np.ndarray, ds: float, cut_cost: float = 0.35) -> list[int]:
    """Cut indices (interior) splitting a run of len(gap) stations into cars."""
    n = len(gap)
    lmin = int(round(CAR_MIN_M / ds))
    lmax = int(round(CAR_MAX_M / ds))
    if n < 2 * lmin:
        return []
    best = np.full(n + 1, -np.inf)
    best[0] = 0.0
    arg = np.zeros(n + 1, dtype=np.intp)
    lens = np.arange(lmin, lmax + 1)
    prior = -0.5 * (np.log(lens * ds / CAR_TYPICAL_M) / 0.35) ** 2
    for p in range(lmin, n + 1):
        q = p - lens
        okq = q >= 0
        if not okq.any():
            continue
        tot = best[q[okq]] + prior[okq]
        if p < n:
            tot = tot + (gap[p] - cut_cost)
        k = int(np.argmax(tot))
        best[p] = tot[k]
        arg[p] = q[okq][k]
    if not np.isfinite(best[n]):
        # no partition within the length limits: cut at the strongest gaps
        k = max(1, int(round(n * ds / CAR_TYPICAL_M)))
        return list(np.linspace(0, n, k + 1).astype(int)[1:-1])
    cuts, p = [], n
    while p > 0:
        q = int(arg[p])
        if q > 0:
            cuts.append(q)
        p = q
    return sorted(cuts)


def _car_polygon(strip: Strip, a: int, b: int, width: float) -> Polygon:
    idx = np.arange(a, max(b, a + 1) + 1).clip(0, len(strip.s) - 1)
    idx = np.unique(idx)
    left = strip.points(width / 2, idx)
    right = strip.points(-width / 2, idx)
    ring = np.vstack([left, right[::-1]])
    poly = Polygon(ring)
    if not poly.is_valid:
        poly = shapely.make_valid(poly).convex_hull
    return poly


# ---------------------------------------------------------------------------
# the detector
# ---------------------------------------------------------------------------

def _track_lines(chip):
    aoi = chip.local_aoi
    tracks = []
    for f in aoi.tracks:
        geom = f.geometry
        parts = list(geom.geoms) if isinstance(geom, MultiLineString) else [geom]
        for i, g in enumerate(parts):
            if g.length < 1.0:
                continue
            tid = f.id if len(parts) == 1 else f"{f.id}/{i}"
            gauge = f.gauge_mm or 1435.0
            tracks.append((tid, LineString(g), gauge))
    return tracks


@register("railcar", name="railcars", version=VERSION, kinds=("rail_yard",))
def detect_railcars(chip, *, tracks=None, search_m: float = 8.0, fine_gsd_m: float = 1.2,
                    threshold: float | None = None, snap: bool = True, debug: list | None = None,
                    occ_smooth_m: float = 0.4, use_shadows: bool = True, shadow_weight: float = 0.7,
                    local_reference: bool = True, min_run_m: float = 6.0,
                    cloud_screen: bool = True, min_spread: float = 0.05,
                    surround_model: bool = True, local_shadow: bool = True, clear_m: float = 3.0,
                    flat_gate: bool = True, hysteresis: float = 1.5, coarse_flat: bool = True,
                    sun_azimuth_deg: float | None = None, rails_gsd_m: float | None = None,
                    deshade: bool = True, usual_flanks: bool = True, neighbour_shade: bool = True,
                    train_rhythm: bool = False, coarse_model: str = "mixture",
                    cloud_edge_m: float | None = 8.0, own_shadow: bool = True,
                    usual_one_side: bool = True,
                    **_ignored) -> DetectionResult:
    """Detect and count railcars along the tracks of ``chip``'s AOI.

    Parameters
    ----------
    chip: a :class:`monitor.imagery.Chip` (metric CRS).
    tracks: optional track lines to use instead of the AOI's: a list of
        shapely LineStrings or ``(id, LineString[, gauge_mm])`` tuples in the
        chip CRS (e.g. traced by :mod:`monitor.trace`).
    search_m: how far (m) either side of each line to look for the real track.
    fine_gsd_m: at or below this GSD individual cars are counted; coarser, the
        count is estimated from occupied length.
    threshold: occupancy threshold, in units of the empty-track spread
        (default: Otsu split of the scene's distances, within 2.5..8; 2..8
        coarser than ``fine_gsd_m``).
    snap: set False to trust the lines as drawn.
    use_shadows: use the cars' shadows as a second occupancy cue where the
        scene shows them (found automatically; ``extras["shadow"]``).
    local_reference: also learn each track's own empty look (for tracks of
        150 m or more visible).
    min_run_m: shortest occupied stretch kept, metres.
    clear_m: no car is counted where another track's centreline is closer
        than this (m): switches and converging tracks, inside the fouling
        point where cars are not parked and the cross-section mixes tracks.
    min_spread: floor of the empty-track spread (robust z units of the scene).
    rails_gsd_m: at or below this GSD (default: a quarter of the rail pair
        spacing, gauge + 70 mm, ~0.38 m) the rails are resolved, and a
        track's own densest look is refused as "empty" where it hides the
        rails that the scene's empty track and the track's other stations
        show (a train standing over most of the track).
    surround_model: at fine GSD, also accept as empty a station that
        matches the empty look predicted from the ground beside the track.
    flat_gate: a station whose cross-section looks like the ground beside
        the track (both halves against the flank level of the side it
        differs from most; flanks from ``1.4 m + GSD`` off, clear of the
        blurred car body) is not occupied: tracks through bare ground of the
        ballast's colour, thick or thin cloud, cloud shadow.
    sun_azimuth_deg: the sun's azimuth (degrees from north); by default the
        scene's ``view:sun_azimuth`` or computed from its acquisition time.
        Shadows are then looked for on the side away from the sun only;
        without either, the shadow side is found from the data.
    deshade: where both flanks of a track are darkened (or brightened)
        alike against the track's usual level (:func:`_shade_gain`: a
        cloud shadow, not a car's own shadow, which darkens one side), also
        compare the station with the empty look after dividing it by that
        factor: a cloud shadow darkens track bed and ground together, so
        empty track in the shade matches the empty look once the darkening
        is undone, while a car still differs from the ballast around it.
        At fine GSD only (``fine_gsd_m``), where the flanks are resolved
        apart from a car body.
    neighbour_shade: where the rails are not resolved, a station that
        another track's occupied station 3.5-6.5 m towards the sun may
        shade (and is darker than the track's empty stations, with open
        ground on its anti-sun side) counts as occupied only by the shadow
        cue, its own car's shadow: a train's shadow over the neighbouring
        empty track darkens it unlike its empty look. Finer, a shaded empty
        track keeps its rails and sleepers, and the less different half of
        the bed (a shadow's edge across it) decides as everywhere.
    usual_flanks: where the rails are not resolved (GSD above
        ``rails_gsd_m``), the shadow cue counts only the darkening of the
        anti-sun flank beyond what both flanks usually show beside the
        track's empty stations (:func:`_usual_contrast`): a dark bed of old
        sleepers and rusty rails or a dark ballast shoulder, blurred over
        the flanks, darkens both sides alike whether cars stand there or
        not; a car's shadow falls on one side. Finer, the flanks are seen
        sharply apart from the bed and the cue is left as it is.
    coarse_flat: apply ``flat_gate`` also coarser than ``fine_gsd_m``
        (a broad patch of haze or cloud shadow over a yard).
    hysteresis: at fine GSD an occupied run must somewhere reach this
        multiple of the threshold (over 1 m); runs that only hover at the
        threshold are ballast texture.
    train_rhythm: (off by default; experimental) at fine GSD where the rails
        are not resolved, refuse a track's own densest look as "empty" when
        it is more than ``RHYTHM_FAR`` spreads from the yard's empty look and
        from the look predicted from its surroundings, and the distance to
        that look along its own stretches (and the 2 m gaps between them)
        repeats at a car length (:func:`_coupler_rhythm`, over ``RHYTHM_K``
        standard errors of uncorrelated 1 m samples): a train over most of
        its track. On the generator (300 m yard, 14 cars on one track) it
        finds the train at 0.5 and 1 m (bench --quick 1 m F1 0.884 ->
        0.918), but on the demo Tumangang archive (1.2 m) empty tracks'
        ballast shows a rhythm as strong (the 1 m independence behind the
        standard error does not hold there) and empty scenes fill with cars.
    coarse_model: coarser than ``fine_gsd_m``, ``"mixture"`` (default)
        estimates the occupied length with
        :func:`monitor.detect.railcars_coarse.detect_railcars_coarse`;
        ``"length"`` keeps the thresholded occupancy of this function.
    cloud_edge_m: the edge of unmasked thick cloud is traced on this
        smoothing scale (m) by :func:`_cloud_screen`; ``None`` grows the
        cloud by 80 m instead (up to 80 m of clear track lost beside it).
    own_shadow: at fine GSD, where the scene shows car shadows, a second
        pass refuses a track's own densest look as "empty" when its
        stations are unlike the yard's empty look and cast the scene's car
        shadow (:func:`_shadowed_own_look`): a train over most of its
        track; ballast of any colour darkens both flanks alike or neither.
    usual_one_side: where the rails are not resolved, the shadow cue also
        discounts the darkening the anti-sun flank alone usually shows
        beside the track's empty stations a car length or more from any
        occupied one (a ditch, a dark verge, a neighbouring track's dark
        bed along the whole track); nearer to cars that look like ballast
        within a train, their shadows still count.
    debug: a list to which per-track strips and scores are appended.

    Returns a :class:`DetectionResult` with ``counts["railcar"]``, the
    ``intervals["railcar"]``, ``coverage`` (share of track length visible)
    and ``extras``: ``occupied_m``, ``track_length_m``, ``per_track`` (count,
    occupied_m, coverage, offset_m = median |shift|, shift_m = median signed
    shift to the left, max_offset_m per track id), ``mode`` (``"cars"`` or
    ``"length"``), ``threshold``, ``shadow`` (anti-sun azimuth and contrast,
    or ``None``) and ``gsd_m``.
    """
    name = _scene_name(chip)
    cross_info = {} if debug is not None else None
    if tracks is None:
        lines = _track_lines(chip)
    else:
        lines = []
        for i, t in enumerate(tracks):
            if isinstance(t, (tuple, list)):
                lines.append((str(t[0]), LineString(t[1]), float(t[2]) if len(t) > 2 else 1435.0))
            else:
                lines.append((f"track{i}", LineString(t), 1435.0))
    if not lines:
        raise InputError(chip.aoi.id, "AOI has no track features: the railcar detector needs track centrelines")
    gsd = float(chip.gsd_m)
    if not (gsd > 0):
        raise SceneError(name, f"invalid pixel size {chip.gsd_m!r}")
    if coarse_model not in ("mixture", "length"):
        raise InputError(f"coarse_model={coarse_model!r}", "expected 'mixture' or 'length'")
    if gsd > fine_gsd_m and coarse_model == "mixture":
        from monitor.detect.railcars_coarse import detect_railcars_coarse

        return detect_railcars_coarse(chip, tracks=lines, search_m=search_m, snap=snap, cloud_screen=cloud_screen,
                                      min_spread=min_spread, clear_m=clear_m, debug=debug)
    # the rail pair is resolved (its spacing spans four pixels or more)
    rails_gsd = rails_gsd_m if rails_gsd_m is not None else min(g for _, _, g in lines) / 1000.0 / 4.0 + 0.0175
    fine = gsd <= fine_gsd_m
    anti_sun = None
    if use_shadows and fine:
        az = sun_azimuth_deg if sun_azimuth_deg is not None else _sun_azimuth(chip)
        anti_sun = None if az is None else (float(az) + 180.0) % 360.0
    # scene statistics, cloud backstop and ground levels on a ~4 m sub-grid
    co = _Coarse(chip, chip.valid)
    cloud = None
    if cloud_screen and chip.sensor == "optical":
        cloud = _cloud_screen(co, _gray_roles(chip.roles), edge_m=cloud_edge_m)
    clear = co.valid if cloud is None else co.valid & ~cloud
    med, mad = _band_stats(chip, co, cloud)
    level = None
    if local_shadow and fine and use_shadows:
        level = co.smooth(((co.bands - med[:, None, None]) / mad[:, None, None]).mean(axis=0), clear, 40.0)
    ds = float(np.clip(gsd / 2, 0.25, 1.0))
    do = float(np.clip(gsd / 2, 0.15, 0.5))
    half_snap = search_m + 3.0
    o_snap = _offsets(half_snap, do)
    half_occ = 1.35
    # the ground beside the track, clear of a blurred car body
    flank_in = max(1.9, 1.4 + gsd)
    half_strip = max(3.2, flank_in + 0.9 + do)
    o_occ = _offsets(half_strip, do)
    # one wide strip per track, read once: snapping and occupancy on the
    # moved centreline are both taken from it
    o_wide = _offsets(max(half_snap, search_m + 1.5 + half_strip), do)
    raw = np.asarray(chip.bands)
    raw = raw[None] if raw.ndim == 2 else raw
    valid_px = np.asarray(chip.valid, dtype=bool)

    def read_strip(xy, nrm, s):
        st = sample(raw, valid_px, chip.transform, xy, nrm, o_wide, s)
        if cloud is not None and cloud.any():
            st.valid &= ~co.lookup(cloud, xy[:, None, :] + o_wide[None, :, None] * nrm[:, None, :], order=0)
        v = st.values
        if np.issubdtype(raw.dtype, np.floating):
            st.valid &= np.all(np.isfinite(v), axis=0)
        for k in range(v.shape[0]):  # in place: z-scores of the scene
            v[k] -= med[k]
            v[k] /= mad[k]
        if not st.valid.all():
            v[:, ~st.valid] = 0.0
        return st

    geo, wide = [], []
    for tid, line, gauge in lines:
        s, xy, nrm = stations(line, ds)
        geo.append((tid, line, gauge, s, xy, nrm))
        wide.append(read_strip(xy, nrm, s))
    total_len = float(sum(g[1].length for g in geo))

    def occupancy(shifts):
        """Strips on the shifted lines, features, occupancy scores."""
        strips, feats = [], []
        for wst, sh in zip(wide, shifts):
            st = shifted(wst, sh, o_occ)
            left, right, ok = _features(st, half_occ, smooth_m=max(occ_smooth_m, gsd / 2 if fine else gsd))
            strips.append(st)
            feats.append((left, right, ok))
        if sum(f[2].sum() for f in feats) == 0:
            raise SceneError(name, f"no track of AOI {chip.aoi.id} is visible in the chip "
                                   "(tracks outside the chip, or all nodata/cloud)")
        allf = np.concatenate([np.concatenate([l[ok], r[ok]]) for l, r, ok in feats], axis=0)
        models = _empty_reference(allf, None, keep_scale=0.35 if fine else 0.5, min_scale=min_spread)
        scale = np.median([s for _, s in models], axis=0)
        # the ground beside the track, clear of a car's footprint (1.5 m
        # half width) by a pixel of blur (``flank_in``)
        surround = surround_model and fine
        if surround:
            flanks = [_flank_level(st, inner_m=max(2.0, flank_in), outer_m=max(3.2, flank_in + 0.9)) for st in strips]
            fx = np.concatenate([np.concatenate([fl[ok], fl[ok]]) for fl, (_, _, ok) in zip(flanks, feats)])
            coef, cscale = _surround_model(allf, fx, min_scale=min_spread)
        shade, active = None, None
        if deshade and fine and chip.sensor == "optical":
            # the same features with a local darkening of the ground undone
            # (cloud shadow, haze): empty track in the shade looks empty again
            nb_ = strips[0].values.shape[0]
            zoff = np.repeat((med / mad).astype(np.float32), feats[0][0].shape[1] // nb_)
            gains = []
            for st, (_, _, ok) in zip(strips, feats):
                sides = _flank_means(st, smooth_m=4.0, inner_m=max(2.0, flank_in), outer_m=max(3.2, flank_in + 0.9))
                gl_, gr_ = [(sd * mad[None] + med[None]).mean(axis=1) for sd in sides]
                gains.append(_shade_gain(gl_, gr_, ok) if ok.sum() * ds >= 150.0 else np.ones(len(gl_)))
            active = [gv != 1.0 for gv in gains]
            nfeats = [(_deshade(l, gv, zoff), _deshade(r, gv, zoff)) for (l, r, _), gv in zip(feats, gains)]
            alln = np.concatenate([np.concatenate([l[ok], r[ok]]) for (l, r), (_, _, ok) in zip(nfeats, feats)])
            shade = (nfeats, _empty_reference(alln, None, keep_scale=0.35 if fine else 0.5, min_scale=min_spread))
        rails, rail_ref = None, None
        if local_reference and gsd <= rails_gsd:
            # where rails are resolved, an empty look shows them: the
            # scene's empty stations set the level a track's own look
            # must reach (a train covering most of its track would
            # otherwise be learnt as that track's "empty" look)
            rails = [_rail_pair(st, g[2] / 1000.0 + 0.07, gsd) for st, g in zip(strips, geo)]
            near = np.concatenate([
                np.minimum(_distance(l[ok], models), _distance(r[ok], models)) < 1.0
                for l, r, ok in feats])
            r_all = np.concatenate([rv[ok] for rv, (_, _, ok) in zip(rails, feats)])
            if near.sum() >= 50:
                rail_ref = float(np.median(r_all[near]))
        lo_thr = 2.5 if fine else 2.0
        mines, mines_n = [], []
        for k_t, (left, right, ok) in enumerate(feats):
            mine, mine_n = [], []
            if local_reference and ok.sum() * ds >= 150.0:
                # ballast differs from track to track: the track's own
                # densest look counts as empty too (a train must cover less
                # than about two thirds of the visible track)
                mine = _empty_reference(np.concatenate([left[ok], right[ok]]), None,
                                        keep_scale=0.35 if fine else 0.5, min_scale=min_spread)
                if rail_ref is not None and _hides_rails(left, right, ok, mine, rails[k_t], rail_ref):
                    mine = []
                if mine and train_rhythm and fine and not gsd <= rails_gsd:
                    # a train over most of the track is that track's densest
                    # look: refuse it where it is unlike the yard's empty
                    # track and the empty look for its surroundings, and
                    # its coupler gaps repeat at a car length
                    far = float(_distance(mine[0][0][None], models)[0])
                    if surround:
                        far = min(far, _mine_vs_surround(left, right, ok, mine, flanks[k_t], coef, cscale))
                    _rh = _coupler_rhythm(left, right, ok, mine, ds) if far > RHYTHM_FAR else 0.0
                    if far > RHYTHM_FAR and _rh > RHYTHM_K / math.sqrt(max(1.0, ok.sum() * ds)):
                        mine = []
                if mine and shade is not None and active[k_t].any():
                    nl, nr = shade[0][k_t]
                    mine_n = _empty_reference(np.concatenate([nl[ok], nr[ok]]), None,
                                              keep_scale=0.35 if fine else 0.5, min_scale=min_spread)
            if cross_info is not None and mine:
                cross_info[("spread", k_t)] = float(np.median(mine[0][1] / scale))
            mines.append(mine)
            mines_n.append(mine_n)

        fls = [None] * len(feats)
        if flat_gate and (fine or coarse_flat):
            fls = [_flank_means(st, smooth_m=max(occ_smooth_m, gsd / 2), inner_m=flank_in, outer_m=flank_in + 0.9)
                   for st in strips]

        def track_distance(k_t, mine, mine_n):
            """Distance (ns,) of track ``k_t``'s stations to the empty look."""
            left, right, ok = feats[k_t]
            own = models + list(mine)
            dl = _distance(left, own)
            dr = _distance(right, own)
            parts = None
            if cross_info is not None:
                parts = cross_info.setdefault(("parts", k_t), {})
                parts["yard"] = np.minimum(_distance(left, models), _distance(right, models))
                parts["own"] = np.minimum(dl, dr)
            # a car covers both halves; at coarse GSD the halves are not resolved
            if surround:
                X = np.stack([np.ones_like(flanks[k_t]), flanks[k_t]], axis=1)
                dl = np.minimum(dl, np.sqrt(np.mean(((left - X @ coef) / cscale) ** 2, axis=1)))
                dr = np.minimum(dr, np.sqrt(np.mean(((right - X @ coef) / cscale) ** 2, axis=1)))
                if parts is not None:
                    parts["surround"] = np.minimum(dl, dr)
            if shade is not None and active[k_t].any():
                nl, nr = shade[0][k_t]
                act = active[k_t]
                refs = shade[1] + list(mine_n)
                dl = np.where(act, np.minimum(dl, _distance(nl, refs)), dl)
                dr = np.where(act, np.minimum(dr, _distance(nr, refs)), dr)
                if parts is not None:
                    parts["deshade"] = np.minimum(dl, dr)
            d = np.minimum(dl, dr) if gsd <= 1.0 else 0.5 * (dl + dr)
            if parts is not None:
                parts["pre_flat"] = d
            if fls[k_t] is not None:
                # a car stands out from the ground beside it: a station that
                # looks like its surroundings is not occupied, whatever the
                # empty-track models say (snow melting into bare ground,
                # thick cloud, deep shade)
                d = np.minimum(d, _flat_distance(left, right, fls[k_t], scale))
            return ndimage.median_filter(d, size=max(1, int(round(1.0 / ds))) | 1, mode="nearest")

        dists = [track_distance(k_t, m, mn) for k_t, (m, mn) in enumerate(zip(mines, mines_n))]
        # floor of the threshold: fine strips see ballast texture and rails
        # (a noisier distance); coarse ones are smoothed over a pixel or more

        def auto_thr(ds_):
            return threshold if threshold is not None else _auto_threshold(
                np.concatenate([d[ok] for d, (_, _, ok) in zip(ds_, feats)]), lo=lo_thr)

        thr = auto_thr(dists)
        levels = None
        if fine and use_shadows and level is not None:
            levels = [co.lookup(level, xy + sh[:, None] * nrm)
                      for (tid, line, gauge, s, xy, nrm), sh in zip(geo, shifts)]
        shadow = _shadow_cue(strips, dists, [f[2] for f in feats], thr, levels=levels,
                             anti_sun_deg=anti_sun, usual_side=usual_flanks and gsd > rails_gsd,
                             one_side=usual_one_side) if (fine and use_shadows) else None
        if shadow is not None and own_shadow and any(mines):
            # pass 2: a track's own "empty" look whose stations cast the
            # scene's car shadow (one flank, away from the sun) is a train
            # standing over most of the track; ballast casts none
            refused = _shadowed_own_look(feats, mines, models, shadow, thr, ds, info=cross_info)
            if refused:
                for k_t in refused:
                    mines[k_t], mines_n[k_t] = [], []
                    dists[k_t] = track_distance(k_t, [], [])
                thr = auto_thr(dists)
                shadow = _shadow_cue(strips, dists, [f[2] for f in feats], thr, levels=levels, anti_sun_deg=anti_sun,
                                     usual_side=usual_flanks and gsd > rails_gsd, one_side=usual_one_side)
        if shadow is not None:
            under = None
            if neighbour_shade and gsd > rails_gsd:
                # a train throws its shadow over the track beside it on its
                # anti-sun side: a darkened empty track there looks unlike
                # its empty look, so only a car's own shadow tells a car
                pts = [xy + sh[:, None] * nrm for (tid, line, gauge, s, xy, nrm), sh in zip(geo, shifts)]
                occ0 = [(d > thr) & ok for d, (_, _, ok) in zip(dists, feats)]
                az = np.radians(shadow["azimuth_deg"])
                u_sun = -np.array([np.sin(az), np.cos(az)])
                under = []
                for k_t, (left, right, ok) in enumerate(feats):
                    # ... where its own shadow would fall on open ground: with
                    # cars on the anti-sun neighbour too (a full yard) it falls
                    # into the gap and onto their roofs, and is no test
                    un = _under_neighbour(pts, occ0, k_t, u_sun) & ~_under_neighbour(pts, occ0, k_t, -u_sun)
                    # a shadow only darkens: a cross-section brighter than the
                    # track's empty stations is no shadow, whatever is beside
                    body = 0.5 * (left.mean(axis=1) + right.mean(axis=1))
                    emp = ok & ~occ0[k_t]
                    if emp.sum() >= 10:
                        un &= body < float(np.median(body[emp]))
                    under.append(un)
            # a car casts a shadow beside it on the scene's anti-sun side: the
            # stronger of the two cues (in units of their thresholds) decides
            dists = [np.maximum(d / thr * shadow_weight, c / shadow["thr"]) * thr
                     for d, c in zip(dists, shadow["c"])]
            if under is not None:
                # (where the car's own shadow is seen, the combined score stands)
                dists = [np.where(un & (c < shadow["thr"]), np.minimum(d, c / shadow["thr"] * thr), d)
                         for d, c, un in zip(dists, shadow["c"], under)]
        return strips, feats, dists, thr, shadow, scale

    # --- 1. snap --------------------------------------------------------
    zero = [np.zeros(len(g[3])) for g in geo]
    shifts = zero
    if snap and search_m > 0:
        # occupancy on the lines as drawn: an occupied stretch hides its own
        # rails, so it gives no evidence of where the rails are
        _, f0, d0, thr0, _, _ = occupancy(zero)
        # (weakly: a line drawn beside the track may look occupied there)
        empty = [np.where(d < thr0, 1.0, 0.15) * ok for d, (_, _, ok) in zip(d0, f0)]
        pre = []
        for (tid, line, gauge, s, xy, nrm), e, wst in zip(geo, empty, wide):
            st = shifted(wst, np.zeros(len(s)), o_snap)
            sc, cand, _ = _snap_scores(st, gsd, gauge / 1000.0 + 0.07, search_m)
            pre.append((st, sc * e[:, None], cand))
        # common shift of all lines (a georeference or drawing offset) as prior
        tot = sum(sc.sum(axis=0) for _, sc, _ in pre)
        prior = float(pre[0][2][int(np.argmax(tot))]) if len(pre) > 1 else None
        # strongest tracks as drawn first; each snapped track is then taken
        order = sorted(range(len(pre)), key=lambda i: -float(
            pre[i][1][:, np.argmin(np.abs(pre[i][2]))].mean()))
        shifts = [None] * len(pre)
        taken = []
        for i in order:
            st, sc, cand = pre[i]
            sh = _snap(st, sc, cand, prior, search_m, taken, own=geo[i][1],
                       move_cost=2.0 * max(1.0, gsd))
            shifts[i] = sh
            step = max(1, int(round(2.0 / st.ds)))
            moved = (st.xy + sh[:, None] * st.normal)[::step]
            if len(moved) >= 2:
                taken.append((moved, st.xy[::step]))

    # --- 2. occupancy on the snapped centrelines ---------------------------
    strips, feats, dists, threshold, shadow, scale = occupancy(shifts)
    vis_len = float(sum(f[2].sum() * ds for f in feats))

    # --- 3. per track: occupied runs and cars -----------------------------
    dets: list[Detection] = []
    per_track = {}
    occupied_total = 0.0
    est_count, est_lo, est_hi = 0.0, 0.0, 0.0
    # fouling points: where another track's centreline comes closer than
    # ``clear_m`` (switches, converging ladder tracks) a parked car would
    # foul the other track, and the cross-section mixes both tracks
    moved = [xy + sh[:, None] * nrm for (tid, line, gauge, s, xy, nrm), sh in zip(geo, shifts)]
    for k, ((tid, line, gauge, s, xy, nrm), sh, st, (left, right, ok), d) in enumerate(
            zip(geo, shifts, strips, feats, dists)):
        occ = (d > threshold) & ok
        if clear_m > 0 and len(moved) > 1:
            occ &= ~_near_other(moved, k, clear_m, ds)
        # fill coupler-sized holes, drop specks
        occ = ndimage.binary_closing(occ, structure=np.ones(max(1, int(round(max(2.0, 1.5 * gsd) / ds))) | 1)) & ok
        occ = ndimage.binary_opening(occ, structure=np.ones(max(1, int(round(min_run_m / ds))) | 1))
        if fine and hysteresis > 1.0:
            # a car stands clearly out somewhere along its body: keep only
            # runs that reach ``hysteresis`` x the threshold over a metre
            # (a distance hovering at the threshold is ballast texture)
            strong = ndimage.uniform_filter1d(d, max(1, int(round(1.0 / ds))), mode="nearest") > hysteresis * threshold
            lab, nlab = ndimage.label(occ)
            if nlab:
                hit = np.zeros(nlab + 1, dtype=bool)
                hit[np.unique(lab[strong & occ])] = True
                hit[0] = False
                occ = hit[lab]
        if debug is not None:
            debug.append({"track": tid, "strip": st, "d": d, "occ": occ, "shift": sh,
                          "cross": cross_info.get(k), "parts": cross_info.get(("parts", k)),
                          "spread": cross_info.get(("spread", k))})
        n_track = 0
        occ_m = 0.0
        for a, b in _runs(occ):
            run_m = (b - a) * ds
            if run_m < min_run_m:
                continue
            occ_m += run_m
            if fine:
                gap = _gap_evidence(left[a:b], right[a:b], scale, d[a:b], threshold, ds)
                cuts = _split_run(gap, ds)
                bounds = [a] + [a + c for c in cuts] + [b]
                estimated = False
            else:
                k = max(1, int(round(run_m / CAR_TYPICAL_M)))
                est_count += run_m / CAR_TYPICAL_M
                est_lo += run_m / CAR_LONG_M
                est_hi += run_m / CAR_SHORT_M
                bounds = list(np.linspace(a, b, k + 1).round().astype(int))
                estimated = True
            for i0, i1 in zip(bounds[:-1], bounds[1:]):
                half_gap = int(round(0.4 / ds)) if not estimated else 0
                c0 = i0 + (half_gap if i0 != a else 0)
                c1 = i1 - (half_gap if i1 != b else 0)
                if c1 <= c0:
                    continue
                poly = _car_polygon(st, c0, c1 - 1, CAR_WIDTH_M)
                seg = d[i0:i1]
                score = float(np.clip(0.5 + 0.5 * np.tanh((np.median(seg) - threshold) / threshold), 0, 1))
                if estimated:
                    score *= 0.5
                t = st.normal[(c0 + c1) // 2]
                heading = float(np.degrees(np.arctan2(t[1], -t[0])) % 180.0)  # tangent = (ny, -nx)
                dets.append(Detection(
                    geometry=poly, cls="railcar", score=round(score, 3),
                    length_m=round(float(st.s[c1 - 1] - st.s[c0]) + ds, 2), width_m=CAR_WIDTH_M,
                    heading_deg=round(heading, 1),
                    properties={"track": tid, "estimated": estimated},
                ))
                n_track += 1
        occupied_total += occ_m
        per_track[tid] = {
            "count": n_track,
            "occupied_m": round(occ_m, 1),
            "length_m": round(float(line.length), 1),
            "coverage": round(min(1.0, float(ok.sum() * ds / max(line.length, 1e-9))), 3),
            "offset_m": round(float(np.median(np.abs(sh))), 2),
            "shift_m": round(float(np.median(sh)), 2),
            "max_offset_m": round(float(np.max(np.abs(sh))), 2),
        }

    dets = _dedupe(dets)
    # per-track counts after de-duplication
    for v in per_track.values():
        v["count"] = 0
    for dt in dets:
        per_track[dt.properties["track"]]["count"] += 1
    n = len(dets)
    if fine:
        interval = (float(n), float(n))
        count = n
    else:
        count = int(round(est_count))
        interval = (float(math.floor(est_lo)), float(math.ceil(est_hi)))
    coverage = float(np.clip(vis_len / max(total_len, 1e-9), 0.0, 1.0))
    return DetectionResult(
        counts={"railcar": count},
        intervals={"railcar": interval},
        coverage=round(coverage, 4),
        detections=dets,
        crs=chip.crs,
        detector="railcars",
        version=VERSION,
        extras={
            "gsd_m": gsd,
            "mode": "cars" if fine else "length",
            "occupied_m": round(occupied_total, 1),
            "track_length_m": round(total_len, 1),
            "visible_m": round(vis_len, 1),
            "per_track": per_track,
            "threshold": round(float(threshold), 3),
            "shadow": None if shadow is None else {
                "azimuth_deg": shadow["azimuth_deg"], "contrast": round(shadow["contrast"], 2),
                "threshold": round(shadow["thr"], 2)},
        },
    )


def _near_other(lines_xy: list[np.ndarray], k: int, dist_m: float, ds: float) -> np.ndarray:
    """Stations (bool per point of ``lines_xy[k]``) closer than ``dist_m`` to
    any other line. The lines are point sequences every ``ds`` m, so the
    nearest sampled point is within ``ds / 2`` of the true distance."""

    own = lines_xy[k]
    others = [xy for j, xy in enumerate(lines_xy) if j != k and len(xy)]
    if not others or not len(own):
        return np.zeros(len(own), dtype=bool)
    pts = np.concatenate(others)
    lo, hi = own.min(axis=0) - dist_m - ds, own.max(axis=0) + dist_m + ds
    pts = pts[np.all((pts >= lo) & (pts <= hi), axis=1)]
    if not len(pts):
        return np.zeros(len(own), dtype=bool)
    d, _ = cKDTree(pts).query(own, distance_upper_bound=dist_m + ds)
    return d < dist_m


def _shadow_cue(strips: list[Strip], dists: list[np.ndarray], oks: list[np.ndarray], threshold: float,
                near: tuple[float, float] = (1.6, 2.9), min_contrast: float = 1.5,
                levels: list[np.ndarray] | None = None, anti_sun_deg: float | None = None,
                usual_side: bool = True, one_side: bool = False) -> dict | None:
    """Cars are 3.5-4.5 m tall: in sunlit imagery a dark band lies beside
    each car on the side away from the sun. Find that side (one map
    direction for the whole scene, tried every 22.5 deg) using the
    appearance distances as weak labels, and return per track a shadow
    contrast (robust units, >0 darker than empty-track surroundings) and
    its threshold; ``None`` when no direction shows a clear contrast
    (overcast, no cars, synthetic scenes without shadows)."""
    sides = []
    for st in strips:
        g = _gray(st.values)
        w = st.valid.astype(np.float32)
        sm = max(1, int(round(1.0 / st.ds)))
        out = []
        for sgn in (1.0, -1.0):
            m = (st.o * sgn >= near[0]) & (st.o * sgn <= near[1])
            num = ndimage.uniform_filter1d((g[:, m] * w[:, m]).sum(axis=1), sm)
            den = ndimage.uniform_filter1d(w[:, m].sum(axis=1), sm)
            out.append(np.where(den > 0.5, num / np.maximum(den, 1e-6), np.nan))
        sides.append(out)
    d_all = np.concatenate([d[ok] for d, ok in zip(dists, oks)])
    if d_all.size < 50:
        return None
    # weak labels: the stations clearly occupied (twice the threshold)
    # when there are enough; a bare threshold also admits ballast texture
    # and clutter on empty tracks (many traced or drawn empty tracks would
    # dilute the cars' contrast)
    hi = d_all > 2.0 * threshold
    if hi.sum() < 50:
        hi = d_all > threshold
    lo = d_all < np.quantile(d_all, 0.3)
    if hi.sum() < 20 or lo.sum() < 20:
        return None
    best = None
    azimuths = np.arange(0, 360, 22.5)
    if anti_sun_deg is not None:
        # the sun's position is known: shadows fall away from it (the
        # search stays within a step either side for terrain and timing)
        azimuths = (anti_sun_deg + np.array([-22.5, -11.25, 0.0, 11.25, 22.5])) % 360
    for az in azimuths:
        u = np.array([np.sin(np.radians(az)), np.cos(np.radians(az))])
        gs, gsun = [], []
        for st, (gl, gr), ok in zip(strips, sides, oks):
            left_is = (st.normal @ u) > 0
            gs.append(np.where(left_is, gl, gr)[ok])
            gsun.append(np.where(left_is, gr, gl)[ok])
        gs, gsun = np.concatenate(gs), np.concatenate(gsun)
        ok2 = np.isfinite(gs)
        if ok2.sum() < 50 or not np.isfinite(gsun).any():
            continue
        # the ground beside the tracks as seen on their sun sides (rarely
        # in a shadow): its usual brightness and spread
        ref = np.nanmedian(gsun)
        spread = 1.4826 * np.nanmedian(np.abs(gsun - ref)) + 1e-6
        # a shadow falls on one side only: the anti-sun flank is darker
        # than the sun-side flank beside cars, not beside empty track (a
        # dark ballast shoulder or verge darkens both sides alike)
        asym = gsun - gs
        base = np.nanmedian(asym[lo & ok2])
        contrast = (np.nanmedian(asym[hi & ok2]) - base) / spread
        if best is None or contrast > best[0]:
            best = (contrast, az, ref, spread, base)
    if best is None or best[0] < min_contrast:
        return None
    contrast, az, ref, spread, base = best
    u = np.array([np.sin(np.radians(az)), np.cos(np.radians(az))])
    cs, asyms = [], []
    if levels is not None:
        lev_med = float(np.median(np.concatenate([lv[ok] for lv, ok in zip(levels, oks)])))
    for k, (st, (gl, gr)) in enumerate(zip(strips, sides)):
        gsd_side = np.where((st.normal @ u) > 0, gl, gr)
        # the ground's expected brightness where the track runs: a cloud
        # shadow, haze or a dark field darkens the whole neighbourhood (the
        # ground level over ~40 m), a car's shadow only the strip beside it
        r = ref if levels is None else ref + (levels[k] - lev_med)
        c = np.nan_to_num((r - gsd_side) / spread, nan=0.0)
        asyms.append(np.nan_to_num((np.where((st.normal @ u) > 0, gr, gl) - gsd_side - base) / spread, nan=0.0))
        if usual_side:
            # a darkening both flanks show beside the track's empty stations
            # is the track's own look (a dark bed of old sleepers and rusty
            # rails blurred over its shoulders, a dark ballast shoulder, a
            # cutting): a car's shadow falls on one side only
            gsun_side = np.where((st.normal @ u) > 0, gr, gl)
            csun = np.nan_to_num((r - gsun_side) / spread, nan=0.0)
            emp = oks[k] & np.isfinite(gsd_side) & np.isfinite(gsun_side) & (dists[k] < threshold)
            usual = _usual_contrast(np.minimum(c, csun), emp, st.ds)
            if one_side:
                # ... and the anti-sun flank's own darkening (a ditch, a dark
                # verge, a neighbour's dark bed) learnt beside empty stations
                # a car length or more from any occupied one (a car that
                # looks like ballast within a train still casts the train's
                # shadow), where that is more
                far = ~ndimage.binary_dilation(oks[k] & (dists[k] >= threshold),
                                               iterations=max(1, int(round(CAR_TYPICAL_M / st.ds))))
                usual = np.maximum(usual, _usual_contrast(c, emp & far, st.ds))
            c = c - np.maximum(usual, 0.0)
        cs.append(c)
    c_all = np.concatenate([c[ok] for c, ok in zip(cs, oks)])
    # a car's shadow is at least ``SHADOW_SHARE`` as dark as the scene's
    # typical car shadow (``contrast``, occupied against empty stations):
    # fainter dark bands beside a track (dark fields, ditches) are not cars
    floor = max(1.5, SHADOW_SHARE * contrast)
    thr = float(np.clip(_auto_threshold(np.clip(c_all, 1e-3, None), lo=floor, hi=8.0), floor,
                        max(floor, 0.6 * contrast + 1.0)))
    return {"c": cs, "thr": thr, "azimuth_deg": float(az), "contrast": float(contrast), "asym": asyms}


#: A station's shadow must be at least this share as dark as the scene's
#: typical car shadow to count as a car (see ``_shadow_cue``).
SHADOW_SHARE = 0.7
#: A track's usual flank look is taken beside its empty stations over this
#: scale (Gaussian sigma, m), from at least ``USUAL_MIN_M`` of them.
USUAL_SCALE_M = 25.0
USUAL_MIN_M = 30.0
USUAL_FALLBACK = 0.0


def _usual_contrast(c: np.ndarray, empty: np.ndarray, ds: float) -> np.ndarray:
    """The contrast ``c`` (ns,) that a track's flanks usually show beside
    its own empty stations (``empty``, by appearance), per station: a
    weighted moving mean over ``USUAL_SCALE_M``; 0 where no empty station is
    near (inside a long train: its cars' shadows are not the usual look),
    and everywhere with fewer than ``USUAL_MIN_M`` of them."""
    if empty.sum() * ds < USUAL_MIN_M:
        return np.zeros(len(c))
    sig = USUAL_SCALE_M / ds
    w = empty.astype(np.float64)
    num = ndimage.gaussian_filter1d(np.where(empty, c, 0.0), sig, mode="nearest")
    den = ndimage.gaussian_filter1d(w, sig, mode="nearest")
    a = np.clip(den / 0.5, 0.0, 1.0)
    med = float(np.median(c[empty])) * USUAL_FALLBACK
    return a * num / np.maximum(den, 1e-9) + (1.0 - a) * med


def _auto_threshold(d: np.ndarray, lo: float = 2.0, hi: float = 8.0) -> float:
    """Occupancy threshold: Otsu's split of log distances, within [lo, hi]."""
    if d.size < 10:
        return lo
    x = np.log(np.clip(d, 1e-3, None))
    hist, edges = np.histogram(x, bins=128)
    c = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * c) / np.maximum(w0, 1)
    m1 = (np.sum(hist * c) - np.cumsum(hist * c)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    i = int(np.argmax(between))
    return float(np.clip(np.exp(c[i]), lo, hi))


def _gap_evidence(left: np.ndarray, right: np.ndarray, scale: np.ndarray, d: np.ndarray,
                  threshold: float, ds: float) -> np.ndarray:
    """Evidence 0..~1 per station of a run that a coupler gap is there: the
    cross-section looks like empty track, or changes abruptly (the end of
    one car body and the start of the next: colour, height, shadow)."""
    empt = np.clip((2.0 * threshold - d) / (2.0 * threshold), 0.0, 1.0) ** 2
    f = np.concatenate([left, right], axis=1) / np.concatenate([scale, scale])
    h = max(1, int(round(1.0 / ds)))
    n = len(f)
    if n > 2 * h:
        fp = np.pad(f, ((h, h), (0, 0)), mode="edge")
        chg = np.sqrt(np.mean((fp[2 * h:] - fp[:-2 * h]) ** 2, axis=1))
        q = np.quantile(chg, 0.9)
        chg = np.clip(chg / (q if q > 0 else 1.0), 0, 1.5) / 1.5
    else:
        chg = np.zeros(n)
    g = np.maximum(empt, chg)
    return ndimage.gaussian_filter1d(g, max(0.5, 0.3 / ds), mode="nearest")


def _dedupe(dets: list[Detection]) -> list[Detection]:
    """Drop detections that overlap a better one on another track (two AOI
    lines that snapped onto the same real track)."""
    if len(dets) < 2:
        return dets
    order = sorted(range(len(dets)), key=lambda i: -dets[i].score)
    geoms = [d.geometry for d in dets]
    tree = STRtree(geoms)
    keep = np.ones(len(dets), dtype=bool)
    for i in order:
        if not keep[i]:
            continue
        for j in tree.query(geoms[i], predicate="intersects"):
            j = int(j)
            if j == i or not keep[j] or dets[j].properties["track"] == dets[i].properties["track"]:
                continue
            inter = geoms[i].intersection(geoms[j]).area
            if inter > 0.5 * min(geoms[i].area, geoms[j].area):
                keep[j] = False
    return [d for d, k in zip(dets, keep) if k]
