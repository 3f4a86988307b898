"""Railcars at coarse resolution (GSD above ~1.2 m): occupied length / car length.

At 3 m (PlanetScope) a car, 3 m wide and 12-25 m long, spans about one
pixel across and 4-8 along; coupler gaps (1-2 m) are not resolved, but a
train is a continuous stretch of track that looks unlike empty track. The
count is estimated from the occupied length, with an interval.

Method (per chip, all geometry in the chip's metric CRS):

1. **Snap** each track line to the band of the real track bed nearby
   (:func:`monitor.detect.railcars._snap_scores` / ``_snap``: one shift per
   line plus a smooth residual, lines never taking a track another already
   took), then sample the chip along it (:mod:`monitor.detect.tracks`).
   Each station's feature is the track centre's value in every band
   (robust z-scores of the scene), smoothed along the track over half a
   pixel. Stations in a cloud or building shadow or under haze (the
   neighbourhood's light *and* both flanks' changed by a quarter or more,
   ``SHADE_GAIN``) are not counted as visible.
2. **Empty look.** A track's own looks are peeled off densest first
   (``_own_modes``). The densest is the track's ballast when it is as
   *homogeneous* as a typical track's (spread at most ``HOMOGENEOUS_K``
   times the median over tracks: ballast is one material, a train standing
   over most of its track mixes car types, loads, shadows and gaps) or
   runs on longer than any train (``MAX_TRAIN_M``); a further look (the
   main line through the yard between other beds, then through fields)
   when it runs on longer than any train, or is homogeneous and like the
   yard's or another track's empty look. Otherwise the yard-wide densest
   mode is the track's empty look. (A long block train of identical cars
   covering most of its track is then taken for ballast: a known limit.)
3. **Neighbours.** A car blurred by the pixel and the optics also darkens
   (or brightens) the track beside it, 4-6.5 m away. The cross-track
   response of a car body (``CAR_WIDTH_M`` box) through the pixel footprint,
   a Gaussian optical PSF (``psf_px`` pixels, 0.5 by default: an MTF of
   about 0.3 at Nyquist, as specified for PlanetScope and Sentinel-2) and
   the bilinear sampling gives the share ``h(d)`` of a car's contrast seen
   ``d`` metres away (0.1 at 5 m for 3 m pixels; 0.8 for 10 m pixels). The
   anomalies of all tracks (feature minus the nearest empty look) are
   unmixed, ``(I + H) x = a`` with H the leaks between stations of
   neighbouring tracks, by a damped Richardson iteration.
4. **Occupancy.** Two classes per station (:func:`occupancy_llr`): occupied
   where the unmixed anomaly stands out of the empty class's noise
   (``k_noise`` times the yard's median anomaly: most track is empty) *and*
   is as large as a car's (its relative contrast at least ``CAR_CONTRAST``
   of the ballast's brightness times ``peak``, the share of a 3 m body's
   contrast the pixel keeps: weaker anomalies are ballast and ground
   changing along a track). Along each track a two-state hidden Markov
   chain (trains are continuous: a state lasts ``run_m`` metres on average)
   turns the evidence into a posterior probability of occupancy per
   station; the evidence is tempered by the station spacing over the pixel
   size (stations within a pixel are not independent). The occupied length
   is the sum of the posterior over the visible stations; stations within
   ``clear_m`` of another track (switches, fouling points) are not counted.
5. **Count.** occupied length / ``car_length_m`` (14.5 m: the mean length
   over couplers of common 1520/1435 mm freight wagons, gondola 13.9 m,
   tank 12.0 m, boxcar 14.7-17.6 m, hopper 14.7 m, flat 19.6 m; Russian
   station norms count tracks in conventional wagons of 14 m). The
   interval spans the occupancy's uncertainty (two standard deviations of
   the occupied length, stations correlated over a pixel, plus half a
   pixel at each end of every occupied run) divided by the longest and
   shortest common cars (``CAR_LONG_M`` 19.6 m, ``CAR_SHORT_M`` 12 m).

Where the pixel keeps less than ``MIN_KEPT`` of a car body's contrast
(coarser than about 4 m; Sentinel-2's 10 m keeps 17% and merges tracks 5 m
apart) the estimate is flagged ``resolution_limited`` and its interval
runs from 0 to the visible track's capacity: cars are not measurable there.

Per occupied run, estimated car polygons (evenly split, ``estimated``
True, score halved) are returned so that maps and GeoJSON show where the
cars are; their number equals the count.

Coverage is the share of the AOI's track length visible (inside the chip,
valid, not cloud). A chip where no track is visible raises
:class:`monitor.errors.SceneError`.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from scipy import ndimage
from shapely.geometry import LineString

from monitor.detect import Detection, DetectionResult
from monitor.detect.railcars import (CAR_LONG_M, CAR_SHORT_M, CAR_TYPICAL_M, CAR_WIDTH_M, VERSION,
                                     _band_stats, _car_polygon, _cloud_screen, _Coarse, _empty_reference,
                                     _gray_roles, _near_other, _offsets, _runs, _scene_name, _snap,
                                     _snap_scores)
from monitor.detect.tracks import sample, shifted, stations
from monitor.errors import SceneError

#: A track's own look is homogeneous (ballast of its own colour) when its
#: spread is at most this many times the median spread of the tracks'
#: densest looks: ballast is one material, a train a mix of cars.
HOMOGENEOUS_K = 2.0
#: No train is longer (m): a look that runs on longer along a track is its
#: ballast. Russian 1520 mm norms cap freight trains at 71 conventional
#: cars (~1050 m over couplers); trains to and from North Korea are shorter.
MAX_TRAIN_M = 1100.0
#: A change of light around a track and on both its flanks by this factor
#: or more (either way) is a cloud or building shadow or haze: those
#: stations are not counted as visible.
SHADE_GAIN = 0.75
#: A station within this many empty spreads (RMS over bands) of a look is
#: that look's.
OWN_EXPLAINED = 3.0
#: A car body differs from the ballast by at least this share of the
#: ballast's brightness (RMS over bands) before the pixel blurs it.
CAR_CONTRAST = 0.2
#: A common shift of all track lines is taken when its evidence beats the
#: lines as drawn by this share: a yard's tracks repeat every 4-6 m, so a
#: wrong shift also gains (real Muttenz yard at 3 m, lines true to 0.3 m:
#: +56% for a 3 m shift), a true one gains far more (synthetic yards with
#: every line 3 m off: +100-200%).
SNAP_MARGIN = 0.75
#: Coarser than this share of a car body's contrast kept by the pixel
#: (about 4 m pixels; PlanetScope 3 m keeps 0.52, RapidEye 5 m 0.33,
#: Sentinel-2 10 m 0.17) the count is flagged ``resolution_limited`` and its
#: interval opens to the whole visible track's capacity: on synthetic yards
#: at 5 and 10 m empty yards read as tens of cars and trains vanish.
MIN_KEPT = 0.4
#: Typical optical blur, Gaussian sigma in pixels (MTF ~0.3 at Nyquist).
PSF_PX = 0.5


def cross_track_response(gsd_m: float, psf_px: float = PSF_PX, width_m: float = CAR_WIDTH_M,
                         step_m: float = 0.05):
    """Share of a car's contrast (its body ``width_m`` wide) seen at a
    station ``d`` metres across from the car's centreline, for pixels of
    ``gsd_m`` with a Gaussian optical PSF of ``psf_px`` pixels, sampled by
    bilinear interpolation. Returns ``(h, peak)``: ``h(d)`` (vectorised,
    1 at d = 0) and ``peak``, the share of the contrast kept at the centre.
    """
    reach = 4.0 * gsd_m + width_m + 6.0 * psf_px * gsd_m
    x = np.arange(-reach, reach + step_m / 2, step_m)
    f = (np.abs(x) <= width_m / 2).astype(float)
    box = (np.abs(x) <= gsd_m / 2).astype(float)
    f = np.convolve(f, box / box.sum(), mode="same")
    tri = np.clip(1.0 - np.abs(x) / gsd_m, 0.0, None)
    f = np.convolve(f, tri / tri.sum(), mode="same")
    if psf_px > 0:
        f = ndimage.gaussian_filter1d(f, psf_px * gsd_m / step_m, mode="constant")
    c = len(x) // 2
    peak = float(f[c])
    prof = f / max(peak, 1e-12)

    def h(d):
        return np.interp(np.abs(np.asarray(d, dtype=float)), x[c:], prof[c:], right=0.0)

    return h, peak


def occupancy_llr(z: np.ndarray, rel: np.ndarray, z_empty: float, floor_rel: float,
                  k_noise: float = 3.0, log_sd: float = 0.3, slope: float = 2.0,
                  cap: float = 8.0) -> np.ndarray:
    """Log-likelihood ratio occupied : empty per station (two classes).

    A station is occupied where its anomaly ``z`` stands out of the empty
    class's noise (``k_noise`` times ``z_empty``, the yard's median anomaly:
    most track is empty) *and* is as large as a car's: relative contrast
    ``rel`` at least ``floor_rel``. Both margins are taken in log units
    with an uncertainty of ``log_sd``; the weaker decides, each unit past
    both counting ``slope`` (capped at ``cap``)."""
    t1 = np.log(np.maximum(z, 1e-9) / max(k_noise * z_empty, 1e-9)) / log_sd
    t2 = np.log(np.maximum(rel, 1e-9) / floor_rel) / log_sd
    return np.clip(slope * np.minimum(t1, t2), -cap, cap)


def _forward_backward(ll_e: np.ndarray, ll_o: np.ndarray, p_switch: float, prior: float) -> np.ndarray:
    """Posterior P(occupied) per station of a two-state Markov chain with
    per-station log-likelihoods ``ll_e``, ``ll_o`` (ns,), switching
    probability ``p_switch`` per station and initial occupied share
    ``prior``."""
    n = len(ll_e)
    if n == 0:
        return np.zeros(0)
    ls, lk = math.log(p_switch), math.log1p(-p_switch)
    T = np.array([[lk, ls], [ls, lk]])
    em = np.stack([ll_e, ll_o], axis=1)
    fa = np.empty((n, 2))
    fa[0] = np.log([1 - prior, prior]) + em[0]
    for i in range(1, n):
        prev = fa[i - 1]
        fa[i] = np.logaddexp(prev[0] + T[0], prev[1] + T[1]) + em[i]
    ba = np.zeros((n, 2))
    for i in range(n - 2, -1, -1):
        nxt = ba[i + 1] + em[i + 1]
        ba[i] = np.logaddexp(T[:, 0] + nxt[0], T[:, 1] + nxt[1])
    post = fa + ba
    post -= post.max(axis=1, keepdims=True)
    p = np.exp(post)
    return p[:, 1] / p.sum(axis=1)


def _own_modes(f: np.ndarray, use: np.ndarray, ds: float, min_m: float, min_spread: float,
               max_modes: int = 3, explained: float = 3.0, bridge_m: float = 30.0) -> list:
    """A track's own looks, densest first: (reference (k,), spread (k,),
    extent_m) triples, each the densest mode of the stations (features ``f``
    (ns, k) every ``ds`` m, visible where ``use``) not within ``explained``
    spreads of an earlier one, while at least ``min_m`` of track is left
    (ballast changes along a track: the main line through the yard between
    other tracks' beds, then through fields). ``extent_m`` is the longest
    stretch of the track in that look (gaps up to ``bridge_m`` bridged)."""
    out = []
    rest = use.copy()
    for _ in range(max_modes):
        if rest.sum() * ds < min_m:
            break
        ref, sc = _empty_reference(f[rest], None, keep_scale=0.5, min_scale=min_spread)[0]
        d = np.sqrt(np.mean(((f - ref) / sc) ** 2, axis=1))
        member = rest & (d <= explained)
        grown = ndimage.binary_closing(member, structure=np.ones(max(1, int(round(bridge_m / ds))) | 1))
        grown |= member
        runs = _runs(grown)
        extent = max(((b - a) * ds for a, b in runs), default=0.0)
        out.append((ref, sc, extent))
        rest = rest & ~member
    return out


def _shaded(level: np.ndarray, wide, shift: np.ndarray, ok: np.ndarray, med: np.ndarray, mad: np.ndarray,
            gsd: float, ds: float) -> np.ndarray:
    """Stations (bool) in a cloud or building shadow or under haze or thin
    cloud: the ground's grey level around them (``level`` (ns,), smoothed
    over tens of metres: a train a few pixels across hardly moves it) and
    the ground on *both* flanks of the track (beyond the blurred car body,
    ``CAR_WIDTH_M / 2 + gsd`` off) are darker by ``SHADE_GAIN`` or more, or
    brighter by its inverse, than along the rest of the track. A car's own
    shadow, or a train on the neighbouring track, darkens one flank only.
    ``wide`` is the track's wide strip (z-scores; ``med``, ``mad`` undo them),
    ``shift`` its snapping offsets (m), ``ok`` its visible stations."""
    gain = level / max(float(np.median(level[ok])), 1e-9)
    f_in = CAR_WIDTH_M / 2 + gsd
    fl = shifted(wide, shift, np.array([-f_in - gsd / 2, -f_in, f_in, f_in + gsd / 2]))
    g = (fl.values * mad[:, None, None] + med[:, None, None]).mean(axis=0)
    sig = max(4.0, gsd) / ds
    fv = ok & fl.valid.all(axis=1)
    sides = []
    for cols in ((2, 3), (0, 1)):
        wf = fl.valid[:, cols].astype(np.float64)
        num = ndimage.gaussian_filter1d((g[:, cols] * wf).sum(axis=1), sig, mode="nearest")
        den = ndimage.gaussian_filter1d(wf.sum(axis=1), sig, mode="nearest")
        side = num / np.maximum(den, 1e-6)
        sides.append(side / max(float(np.median(side[fv])) if fv.any() else 1.0, 1e-9))
    a, b = sides
    lo, hi = SHADE_GAIN, 1.0 / SHADE_GAIN
    dark = (gain <= lo) & (a <= lo) & (b <= lo)
    bright = (gain >= hi) & (a >= hi) & (b >= hi)
    return dark | bright


def _lines_of(chip, tracks):
    from monitor.detect.railcars import _track_lines

    if tracks is None:
        return _track_lines(chip)
    out = []
    for i, t in enumerate(tracks):
        if isinstance(t, (tuple, list)):
            out.append((str(t[0]), LineString(t[1]), float(t[2]) if len(t) > 2 else 1435.0))
        else:
            out.append((f"track{i}", LineString(t), 1435.0))
    return out


def detect_railcars_coarse(chip, *, tracks=None, search_m: float = 8.0, snap: bool = True,
                           cloud_screen: bool = True, min_spread: float = 0.05,
                           car_length_m: float = CAR_TYPICAL_M,
                           car_range_m: tuple[float, float] = (CAR_SHORT_M, CAR_LONG_M),
                           psf_px: float = PSF_PX, clear_m: float = 3.0, run_m: float = 60.0,
                           deshade: bool = True, light_m: float = 25.0, snap_cost: float = 2.0,
                           unmix: bool = True, own_reference: bool = True, own_min_m: float = 60.0,
                           max_train_m: float = MAX_TRAIN_M, min_contrast: float = CAR_CONTRAST,
                           k_noise: float = 3.0, debug: list | None = None, **_ignored) -> DetectionResult:
    """Estimate the railcar count along the tracks of ``chip``'s AOI from
    occupied track length (for coarse pixels, above ~1.2 m; see the module
    docstring for the method).

    Parameters
    ----------
    chip: a :class:`monitor.imagery.Chip` (metric CRS).
    tracks: optional track lines instead of the AOI's: shapely LineStrings
        or ``(id, LineString[, gauge_mm])`` tuples in the chip CRS.
    search_m: how far (m) either side of each line to look for the track bed.
    snap: set False to trust the lines as drawn.
    snap_cost: cost of moving a line away from the yard's common shift (per
        ``search_m``, in units of the normalised track-bed evidence).
    deshade: leave stations in shadow or haze out (optical scenes).
    light_m: scale (Gaussian sigma, m) of the neighbourhood light level.
    car_length_m: mean car length over couplers (m) the count divides by.
    car_range_m: (shortest, longest) common car length (m) for the interval.
    psf_px: optical blur (Gaussian sigma, pixels) for the neighbour leak.
    clear_m: stations closer than this (m) to another track line (switches,
        fouling points) are not counted.
    run_m: mean length (m) of an occupied or empty stretch (the Markov
        chain's persistence).
    unmix: undo the leak of neighbouring tracks' cars (step 3).
    own_reference: let a track's own looks count as its empty look (step 2),
        for tracks with at least ``own_min_m`` visible.
    max_train_m: a look running on longer than this (m) is ballast.
    min_contrast: a car differs from the ballast by at least this share of
        its brightness (before the blur).
    k_noise: an occupied station's anomaly is at least this many times the
        yard's median anomaly (the empty class's noise).
    debug: a list to which the tracks' own looks (first entry) and per-track
        arrays (features, anomalies, z, relative contrast, posterior) are
        appended.

    Returns a :class:`DetectionResult`: ``counts["railcar"]``,
    ``intervals["railcar"]`` (low, high), ``coverage``, estimated car
    polygons, and ``extras``: ``mode`` ("length"), ``model`` ("mixture"),
    ``occupied_m``, ``occupied_sd_m``, ``track_length_m``, ``visible_m``,
    ``per_track`` (count, estimate, occupied_m, length_m, coverage,
    offset_m, shift_m, max_offset_m, own_looks), ``empty_median``,
    ``contrast_floor``, ``contrast_kept``, ``resolution_limited`` (pixels
    too coarse to measure: the interval is then 0 .. the visible track's
    capacity) and ``gsd_m``.
    """
    from monitor.errors import InputError

    name = _scene_name(chip)
    lines = _lines_of(chip, tracks)
    if not lines:
        raise InputError(chip.aoi.id, "AOI has no track features: the railcar detector needs track centrelines")
    gsd = float(chip.gsd_m)
    if not (gsd > 0):
        raise SceneError(name, f"invalid pixel size {chip.gsd_m!r}")
    co = _Coarse(chip, chip.valid)
    cloud = None
    if cloud_screen and chip.sensor == "optical":
        cloud = _cloud_screen(co, _gray_roles(chip.roles))
    med, mad = _band_stats(chip, co, cloud)
    raw = np.asarray(chip.bands)
    raw = raw[None] if raw.ndim == 2 else raw
    valid_px = np.asarray(chip.valid, dtype=bool)
    ds = float(np.clip(gsd / 3.0, 0.5, 2.0))
    do = float(np.clip(gsd / 4.0, 0.25, 1.0))
    o_snap = _offsets(search_m + 3.0, do)
    o_wide = _offsets(search_m + 3.0 + do, do)

    def read_strip(xy, nrm, s):
        st = sample(raw, valid_px, chip.transform, xy, nrm, o_wide, s)
        if cloud is not None and cloud.any():
            st.valid &= ~co.lookup(cloud, xy[:, None, :] + o_wide[None, :, None] * nrm[:, None, :], order=0)
        v = st.values
        if np.issubdtype(raw.dtype, np.floating):
            st.valid &= np.all(np.isfinite(v), axis=0)
        v -= med[:, None, None]
        v /= mad[:, None, None]
        v[:, ~st.valid] = 0.0
        return st

    geo, wide = [], []
    for tid, line, gauge in lines:
        s, xy, nrm = stations(line, ds)
        geo.append((tid, line, gauge, s, xy, nrm))
        wide.append(read_strip(xy, nrm, s))
    total_len = float(sum(g[1].length for g in geo))
    centre = np.flatnonzero(np.abs(o_wide) < 1e-9)
    if not any(w.valid[:, centre[0]].any() for w in wide):
        raise SceneError(name, f"no track of AOI {chip.aoi.id} is visible in the chip "
                               "(tracks outside the chip, or all nodata/cloud)")

    # --- 1. snap to the track bed -------------------------------------------
    shifts = [np.zeros(len(g[3])) for g in geo]
    snap_info = None
    if snap and search_m > 0:
        pre = []
        for (tid, line, gauge, s, xy, nrm), wst in zip(geo, wide):
            st = shifted(wst, np.zeros(len(s)), o_snap)
            sc, cand, _ = _snap_scores(st, gsd, gauge / 1000.0 + 0.07, search_m)
            pre.append((st, sc, cand))
        tot = sum(sc.sum(axis=0) for _, sc, _ in pre)
        prior = None
        if len(pre) > 1:
            # the common shift; a yard's tracks repeat every 4-6 m, so a
            # shift must beat none clearly (by ``SNAP_MARGIN``) to be taken
            c_all = pre[0][2]
            best = int(np.argmax(tot))
            i0 = int(np.argmin(np.abs(c_all)))
            prior = float(c_all[best]) if tot[best] > (1.0 + SNAP_MARGIN) * tot[i0] else float(c_all[i0])
            snap_info = {"snap_gain": float(tot[best] / max(tot[i0], 1e-9)), "best_shift": float(c_all[best])}
        order = sorted(range(len(pre)), key=lambda i: -float(pre[i][1][:, np.argmin(np.abs(pre[i][2]))].mean()))
        taken = []
        for i in order:
            st, sc, cand = pre[i]
            # coarse pixels do not resolve beds 4-6 m apart one by one: a
            # line moves with the yard's common shift (a georeference or
            # drawing offset) and by less than half the way to the nearest
            # other line on its own
            near = [shapely.distance(geo[i][1], g[1]) for j, g in enumerate(geo) if j != i]
            near = [d for d in near if d > clear_m]
            if near and prior is not None:
                lim = max(0.5, 0.5 * min(near) - 0.5)
                sc = np.where(np.abs(cand - prior)[None, :] <= lim, sc, sc - 100.0)
            # moving away from the common shift costs (``_snap``'s own cost
            # would pull every line back to where it was drawn)
            p0 = 0.0 if prior is None else prior
            sc = sc - snap_cost * np.abs(cand - p0)[None, :] / max(search_m, 1e-6)
            sh = _snap(st, sc, cand, prior, search_m, taken, own=geo[i][1], move_cost=0.0, wiggle_m=0.0)
            shifts[i] = sh
            step = max(1, int(round(2.0 / st.ds)))
            moved = (st.xy + sh[:, None] * st.normal)[::step]
            if len(moved) >= 2:
                taken.append((moved, st.xy[::step]))

    # --- features on the moved centrelines ----------------------------------
    sig_along = max(0.5, 0.5 * gsd / ds)
    feats, oks, pts = [], [], []
    level = None
    if deshade and chip.sensor == "optical":
        gi = _gray_roles(chip.roles)
        clear = co.valid if cloud is None else co.valid & ~cloud
        level = co.smooth(co.bands[gi].mean(axis=0), clear, light_m)
    for (tid, line, gauge, s, xy, nrm), wst, sh in zip(geo, wide, shifts):
        st = shifted(wst, sh, np.array([0.0]))
        v = st.values[:, :, 0].T.astype(np.float64)  # (ns, nb)
        ok = st.valid[:, 0].copy()
        wv = ok.astype(np.float64)
        num = ndimage.gaussian_filter1d(v * wv[:, None], sig_along, axis=0, mode="nearest")
        den = ndimage.gaussian_filter1d(wv, sig_along, mode="nearest")
        f = num / np.maximum(den, 1e-6)[:, None]
        if level is not None and ok.sum() * ds >= 150.0:
            # cars in a cloud or building shadow, or under haze, are not
            # counted: those stations are not clearly visible
            ok &= ~_shaded(co.lookup(level, st.xy), wst, sh, ok, med, mad, gsd, ds)
        feats.append(f)
        oks.append(ok)
        pts.append(st.xy)
    fouling = [(_near_other(pts, k, clear_m, ds) if clear_m > 0 and len(pts) > 1 else np.zeros(len(p), bool))
               for k, p in enumerate(pts)]
    use = [ok & ~fo for ok, fo in zip(oks, fouling)]
    vis_len = float(sum(ok.sum() * ds for ok in oks))
    allf = np.concatenate([f[u] for f, u in zip(feats, use)]) if any(u.any() for u in use) else \
        np.concatenate([f[ok] for f, ok in zip(feats, oks)])

    # --- 2. empty look: the yard's, or a track's own homogeneous look --------
    yard_ref, yard_scale = _empty_reference(allf, None, keep_scale=0.5, min_scale=min_spread)[0]
    own_models = [_own_modes(f, u, ds, own_min_m, min_spread) if own_reference else [] for f, u in zip(feats, use)]
    # the spread of a track's own densest look on a typical (mostly empty) track
    spreads = [m[0][1] for m in own_models if m]
    typ_scale = np.median(spreads, axis=0) if spreads else yard_scale
    typ_rms = float(np.sqrt(np.mean(typ_scale ** 2)))
    if debug is not None:
        debug.append({"own_models": own_models, "typ_rms": typ_rms, "med": med, "mad": mad, "snap": snap_info})
    def _homogeneous(sc):
        return float(np.sqrt(np.mean(sc ** 2))) <= HOMOGENEOUS_K * typ_rms

    # a track's densest look is its ballast when it is as homogeneous as a
    # typical track's, or runs on longer than any train
    firsts = [m[0] if m and (_homogeneous(m[0][1]) or m[0][2] > max_train_m) else None for m in own_models]
    refs, own_used = [], []
    for k, m in enumerate(own_models):
        ok_m = [m[0][0]] if firsts[k] is not None else []
        others = [f_[0] for j, f_ in enumerate(firsts) if f_ is not None and j != k] + [yard_ref]
        for r, sc, ext in m[1:]:
            # a further look (the ballast changes along the track) runs on
            # longer than any train, or is homogeneous and the empty look of
            # the yard or of another track (a main line between yard tracks)
            like = min(float(np.sqrt(np.mean(((r - o) / typ_scale) ** 2))) for o in others)
            if ext > max_train_m or (_homogeneous(sc) and like <= OWN_EXPLAINED):
                ok_m.append(r)
        refs.append(np.array(ok_m) if ok_m else yard_ref[None])
        own_used.append(len(ok_m))
    anom = []
    for f, r, ok in zip(feats, refs, oks):
        # each station against the nearest of its track's empty looks
        dd = (((f[:, None, :] - r[None]) / typ_scale) ** 2).mean(axis=2)
        near = r[np.argmin(dd, axis=1)]
        anom.append(np.where(ok[:, None], f - near, 0.0))

    # --- 3. unmix the neighbours' leak ---------------------------------------
    h, peak = cross_track_response(gsd, psf_px)
    links = []  # (k, j, idx_k, idx_j, weight)
    if unmix and len(pts) > 1:
        from scipy.spatial import cKDTree

        reach = 3.0 * gsd + CAR_WIDTH_M
        trees = [cKDTree(p) if len(p) else None for p in pts]
        for k, pk in enumerate(pts):
            for j, tj in enumerate(trees):
                if j == k or tj is None or not len(pk):
                    continue
                d, idx = tj.query(pk, distance_upper_bound=reach)
                m = np.isfinite(d) & (d >= clear_m) & oks[j][np.minimum(idx, len(pts[j]) - 1)]
                if not m.any():
                    continue
                wgt = h(d[m])
                keep = wgt > 0.01
                if keep.any():
                    ik = np.flatnonzero(m)[keep]
                    links.append((k, j, ik, idx[m][keep], wgt[keep]))
    x = [a.copy() for a in anom]
    if links:
        omega = 0.5
        for _ in range(40):
            leak = [np.zeros_like(a) for a in anom]
            for k, j, ik, ij, wgt in links:
                leak[k][ik] += wgt[:, None] * x[j][ij]
            x = [xk + omega * (ak - xk - lk) for xk, ak, lk in zip(x, anom, leak)]
    scale = np.maximum(typ_scale, min_spread)
    z = [np.sqrt(np.mean((xk / scale) ** 2, axis=1)) for xk in x]
    # a car differs from the ballast by ``min_contrast`` of its level or more
    # (black tanks, rusty gondolas, grey or white boxcars, coal), of which the
    # pixel keeps ``peak``: weaker anomalies are ballast and ground changing
    # along the track (a main line through fields, past a river)
    floor_rel = max(min_contrast * peak, 1e-6)
    rels = []
    for xk, f, ak in zip(x, feats, anom):
        base = np.abs((f - ak) * mad + med)  # the empty look, raw units
        rels.append(np.sqrt(np.mean((xk * mad / np.maximum(base, 1e-6)) ** 2, axis=1)))

    # --- 4. occupancy: two classes per station, Markov chain along each track
    temper = min(1.0, ds / gsd)
    z_empty = float(np.median(np.concatenate([zk[u] for zk, u in zip(z, use)])))
    p_switch = float(np.clip(ds / max(run_m, ds), 1e-4, 0.5))
    posts = []
    for zk, rel, u in zip(z, rels, use):
        if not u.any():
            posts.append(np.zeros(len(zk)))
            continue
        llr = occupancy_llr(zk, rel, z_empty, floor_rel, k_noise=k_noise)
        # invisible stations carry no evidence
        llr = np.where(u, llr * temper, 0.0)
        p = _forward_backward(np.zeros(len(zk)), llr, p_switch, 0.5)
        posts.append(np.where(u, p, 0.0))

    # --- 5. occupied length, count and interval --------------------------
    lo_len, hi_len = car_range_m
    per_track = {}
    occ_total, var_total, ends_total = 0.0, 0.0, 0.0
    runs_all = []
    corr = max(1.0, gsd / ds)  # stations per independent sample
    for k, ((tid, line, gauge, s, xy, nrm), sh, p, u) in enumerate(zip(geo, shifts, posts, use)):
        occ_m = float(p.sum() * ds)
        var = float((p * (1 - p)).sum() * ds * ds * corr)
        runs = [(a, b) for a, b in _runs(p > 0.5) if (b - a) * ds >= 0.5 * car_range_m[0]]
        ends = len(runs) * gsd  # half a pixel at each end of a run
        occ_total += occ_m
        var_total += var
        ends_total += ends
        runs_all.extend((k, a, b, float(p[a:b].sum() * ds)) for a, b in runs)
        per_track[tid] = {
            "count": 0,
            "estimate": round(occ_m / car_length_m, 2),
            "occupied_m": round(occ_m, 1),
            "length_m": round(float(line.length), 1),
            "coverage": round(min(1.0, float(oks[k].sum() * ds / max(line.length, 1e-9))), 3),
            "offset_m": round(float(np.median(np.abs(sh))), 2),
            "shift_m": round(float(np.median(sh)), 2),
            "max_offset_m": round(float(np.max(np.abs(sh))), 2),
            "own_looks": int(own_used[k]),
        }
        if debug is not None:
            debug.append({"track": tid, "z": z[k], "p": p, "use": u, "feat": feats[k], "ref": refs[k], "anom": anom[k], "x": x[k], "rel": rels[k], 
                          "shift": sh})
    sd = math.sqrt(var_total)
    est = occ_total / car_length_m
    count = int(round(est))
    low = max(0.0, occ_total - 2.0 * sd - ends_total) / hi_len
    high = (occ_total + 2.0 * sd + ends_total) / lo_len
    interval = (float(math.floor(min(low, count))), float(math.ceil(max(high, count))))
    limited = peak < MIN_KEPT
    if limited:
        # the pixel keeps too little of a car's contrast, and neighbouring
        # tracks merge (Sentinel-2 10 m: 17%, 0.8 at 5 m): the estimate is
        # not a measurement; anything from none to full visible track
        interval = (0.0, float(math.ceil(max(vis_len / lo_len, count))))

    # estimated car polygons along the runs, as many as the count
    dets = []
    run_len = sum(r[3] for r in runs_all)
    if count > 0 and run_len > 0:
        cum, given = 0.0, 0
        for k, a, b, rl in runs_all:
            cum += rl
            n_run = int(round(cum / run_len * count)) - given
            given += n_run
            if n_run <= 0:
                continue
            tid = geo[k][0]
            st = shifted(wide[k], shifts[k], np.array([0.0]))
            bounds = np.linspace(a, b, n_run + 1).round().astype(int)
            score = float(np.clip(np.mean(posts[k][a:b]), 0, 1)) * 0.5
            for i0, i1 in zip(bounds[:-1], bounds[1:]):
                if i1 <= i0:
                    continue
                poly = _car_polygon(st, i0, i1 - 1, CAR_WIDTH_M)
                t = st.normal[(i0 + i1) // 2]
                heading = float(np.degrees(np.arctan2(t[1], -t[0])) % 180.0)
                dets.append(Detection(geometry=poly, cls="railcar", score=round(score, 3),
                                      length_m=round((i1 - i0) * ds, 2), width_m=CAR_WIDTH_M,
                                      heading_deg=round(heading, 1),
                                      properties={"track": tid, "estimated": True}))
                per_track[tid]["count"] += 1
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
            "mode": "length",
            "model": "mixture",
            "occupied_m": round(occ_total, 1),
            "occupied_sd_m": round(sd, 1),
            "track_length_m": round(total_len, 1),
            "visible_m": round(vis_len, 1),
            "per_track": per_track,
            "car_length_m": car_length_m,
            "contrast_kept": round(peak, 3),
            "resolution_limited": bool(limited),
            "empty_median": round(z_empty, 3),
            "contrast_floor": round(floor_rel, 4),
        },
    )
