"""Vessel detector for port chips: optical (contrast on water) and SAR (CFAR).

Input is a :class:`~monitor.imagery.Chip` on a metric grid (``gsd_m``
metres per pixel, ``crs`` in metres). Output is a
:class:`~monitor.detect.DetectionResult` whose detections are oriented
rectangles (minimum rotated rectangle of each hull, chip CRS) with length,
width (m), heading (degrees clockwise from north, 0..180) and a score.

Optical pipeline (:func:`detect_vessels` with ``chip.sensor == "optical"``):

1. Water mask (:mod:`monitor.detect.water`): AOI water polygons (+ a band
   along the berths), refined by NDWI; or, for an AOI that is only a box,
   water classified from the image. Hull-sized holes are filled (no
   wider or longer than the largest hull: islets and detached
   breakwaters stay land). With
   water from the image, hulls moored alongside a quay are land to NDWI:
   they are found on the land side of the water's edge as hull-shaped
   patches redder in NIR than the quay (:func:`moored_hulls`).
2. Per band, a local water background (median) and noise (MAD) on blocks
   of about ``block_m`` metres, interpolated back to pixels; the band
   contrasts are summed and re-standardised into one robust z-score.
3. Hysteresis threshold (seeds z >= ``k_high``, grown through z >=
   ``k_low``), holes filled, objects labelled; objects mostly on land are
   dropped (but hulls poking over a quay by a few pixels are kept, because
   the mask extends a little past the water edge).
4. Rafted hulls are split: watershed on the distance transform with
   h-maxima markers (bow-to-stern contact), across the long axis where
   the contrast profile dips (side-by-side contact), and at the step of
   width where a shorter hull lies alongside a longer one (at pixels finer
   than 5 m also when the short hull covers most of the long one).
5. Objects shorter than ``min_length_m`` (metres, so the pixel limit
   follows the GSD) or than :data:`OPTICAL_MIN_LENGTH_PX` pixels (an
   unresolved blob), or longer than ``max_length_m``, are dropped.
6. Real-imagery false alarms are tested away: long thin line structures
   (breakwaters, moles, even when broken into dashes) before splitting;
   dashes whose bright signal runs on beyond both ends (a piece of a
   breakwater or pier; a hull ends at bow and stern);
   objects whose brightness above the water stays under ``min_rel_contrast``
   of the scene's land-minus-water gap (wave crests, glint, slicks); and
   objects touching land that are no brighter than the land beside them
   (``shore_ramp``: the mixed pixels along a quay or breakwater); at
   pixels finer than 5 m, blobs about as wide as long (``max_beam_ratio``:
   cloud puffs and glint over the water; a hull is at least twice as long
   as its beam) and soft-edged objects (``edge_sharpness``: a hull's
   outline is as sharp as the sensor's blur, a cloud fades in over tens of
   metres); at 5 m and coarser, objects touching land shorter than
   :data:`SHORE_MIN_LENGTH_PX` (quay corners, pier heads); objects wider
   than the widest hull.

SAR pipeline: linear sigma0 (dB input is converted), a two-pass
cell-averaging CFAR (the second pass censors the first pass's targets from
the background ring) with guard and background windows sized in metres,
a threshold from the gamma distribution of multi-look speckle with the
scene's estimated ENL at false-alarm probability ``pfa``, then clustering
of the detected pixels into ships.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from affine import Affine
from scipy import ndimage as ndi

from monitor.detect import Detection, DetectionResult, register
from monitor.detect.sar import grow_from_seeds, principal_axes
from monitor.detect.water import MAX_SHIP_WIDTH_M, water_mask
from monitor.errors import InputError

#: Detector version recorded with each observation (a store re-runs scenes
#: seen by an older one). 1.1: moored hulls from the image, line dashes,
#: pixel floor and vegetation tests for Sentinel-2-class imagery. 1.3:
#: hull-shaped hole filling, soft-edge and shore-length tests, moored hulls
#: from decks broken into pieces. 1.4: at < 5 m pixels no z-score level
#: over the body of a hull at the shore (moored hulls under thin cloud);
#: rafted hulls split at the step of width also when the outer hull covers
#: most of the inner one.
VERSION = "1.4"
SIZE_CLASSES = (("small_lt30m", 0.0, 30.0), ("medium_30_100m", 30.0, 100.0), ("large_gt100m", 100.0, math.inf))
_EIGHT = np.ones((3, 3), bool)
#: NDVI (nir - red) / (nir + red) above which a pixel is vegetation, not a
#: deck (moderate vegetation starts near 0.3).
VEGETATION_NDVI = 0.3
#: An optical hull must span this many pixels: shorter, its measured length
#: is the sensor's blur, not the hull (a 2-3 px blob at 10 m is a buoy, a
#: boat, a wave crest as much as a ship). On the sen2ships ports every
#: labelled vessel spans >= 5 px; a quarter of the false alarms span < 4.5.
OPTICAL_MIN_LENGTH_PX = 4.0
#: From this pixel size up, the sensor's blur makes a hull a few pixels wide
#: into a blob (at 10 m, half the labelled sen2ships vessels span < 20 px and
#: a 40 m one reads as a 5 x 5 px square): the beam-to-length test
#: (``max_beam_ratio``) is not applied.
BLOB_MIN_GSD_M = 5.0
#: From :data:`BLOB_MIN_GSD_M` up, an object touching land must span this
#: many pixels: shorter, it cannot be told from the mixed pixels of the
#: shore itself (a quay corner, a pier head, a bollard row: the minimum
#: resolved length plus a mixed pixel at each end).
SHORE_MIN_LENGTH_PX = OPTICAL_MIN_LENGTH_PX + 2.0


# ---------------------------------------------------------------------------
# local background and noise
# ---------------------------------------------------------------------------

def local_background(x: np.ndarray, mask: np.ndarray, block_px: int,
                     max_samples: int = 400_000, tail: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Local median and robust sigma (1.4826 MAD) of ``x`` over ``mask``.

    Statistics are taken on square blocks of ``block_px`` pixels (subsampled
    so that at most ``max_samples`` pixels are used), blocks with too few
    mask pixels take their nearest neighbour's values, and the block grid is
    bilinearly interpolated back to the pixel grid. With ``tail`` the sigma
    is at least (q95 - median) / 1.645, so heavy-tailed water (waves, glint)
    gets a larger scale than its MAD alone would give. Returns float32 arrays
    (background, sigma) of ``x.shape``; sigma is floored to stay positive.
    """
    h, w = x.shape
    b = max(4, int(block_px))
    nby, nbx = -(-h // b), -(-w // b)
    step = max(1, int(math.sqrt(h * w / max_samples)))
    xs = x[::step, ::step]
    ms = mask[::step, ::step]
    bs = max(1, b // step)
    b = bs * step
    nby, nbx = -(-h // b), -(-w // b)
    hs, ws = nby * bs, nbx * bs
    pad = np.full((hs, ws), np.nan, np.float32)
    sub = np.where(ms, xs, np.nan).astype(np.float32)[:hs, :ws]
    pad[: sub.shape[0], : sub.shape[1]] = sub
    cells = pad.reshape(nby, bs, nbx, bs).transpose(0, 2, 1, 3).reshape(nby, nbx, bs * bs)
    n_ok = np.isfinite(cells).sum(axis=2)
    good = n_ok >= max(8, bs * bs // 10)
    if not good.any():
        v = x[mask] if mask.any() else x.ravel()
        med = float(np.median(v)) if v.size else 0.0
        sig = float(1.4826 * np.median(np.abs(v - med))) if v.size else 1.0
        return np.full(x.shape, med, np.float32), np.full(x.shape, max(sig, 1e-6), np.float32)
    with np.errstate(all="ignore"):
        # block quantiles from one sort per statistic (NaN sorts last): the
        # same values as nanmedian / nanquantile, several times faster
        srt = np.sort(cells, axis=2)
        med = _sorted_quantile(srt, n_ok, 0.5)
        mad = _sorted_quantile(np.sort(np.abs(cells - med[..., None]), axis=2), n_ok, 0.5)
        if tail:
            # the tail of the water itself: hulls (far out) censored first;
            # the values under the cut are a prefix of the sorted block
            cut = med + 8.0 * 1.4826 * np.maximum(mad, 1e-12)
            m = (srt <= cut[..., None]).sum(axis=2)
            q95 = _sorted_quantile(srt, m, 0.95)
            q95 = np.where(np.isfinite(q95), q95, med)
        else:
            q95 = med
    # heavy-tailed water (wave crests, glint): the upper tail sets the scale
    sig = np.maximum(1.4826 * mad, (q95 - med) / 1.645)
    # neighbour fill for empty blocks
    if not good.all():
        _, (iy, ix) = ndi.distance_transform_edt(~good, return_indices=True)
        med = med[iy, ix]
        sig = sig[iy, ix]
    floor = max(float(np.median(sig[good])) * 0.2, 1e-6)
    sig = np.maximum(sig, floor)
    rx = _interp_matrix(w, nbx, b)
    bg = _interp_rows(med.astype(np.float32) @ rx.T, h, b)
    sg = _interp_rows(sig.astype(np.float32) @ rx.T, h, b)
    np.maximum(sg, floor, out=sg)
    return bg, sg


def _interp_rows(g: np.ndarray, n: int, b: int) -> np.ndarray:
    """(n, w) float32: rows of ``g`` (block rows of ``b`` pixels) linearly
    interpolated from block centres to pixel centres, constant beyond the
    ends (the row half of :func:`_interp_matrix`, by two gathers)."""
    nb = g.shape[0]
    pos = np.clip((np.arange(n, dtype=np.float64) + 0.5) / b - 0.5, 0, nb - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, nb - 1)
    f = (pos - i0).astype(np.float32)[:, None]
    out = g[i0] * (1 - f)
    out += g[i1] * f
    return out


def _sorted_quantile(srt: np.ndarray, count: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` (linear interpolation, as ``np.nanquantile``) of the
    first ``count`` values of each row of ``srt`` (sorted along the last
    axis); NaN where ``count`` is 0."""
    c = np.maximum(count, 1) - 1
    pos = q * c
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, c)
    f = (pos - lo).astype(np.float32)
    a = np.take_along_axis(srt, lo[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(srt, hi[..., None], axis=-1)[..., 0]
    return np.where(count > 0, a + (b - a) * f, np.nan)


def _interp_matrix(n: int, nb: int, b: int) -> np.ndarray:
    """(n, nb) float32 matrix of linear interpolation from block centres
    (block size ``b`` pixels) to pixel centres, constant beyond the ends."""
    pos = (np.arange(n, dtype=np.float64) + 0.5) / b - 0.5
    pos = np.clip(pos, 0, nb - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, nb - 1)
    f = pos - i0
    m = np.zeros((n, nb), np.float32)
    m[np.arange(n), i0] += (1 - f).astype(np.float32)
    m[np.arange(n), i1] += f.astype(np.float32)
    return m


# ---------------------------------------------------------------------------
# object measurement
# ---------------------------------------------------------------------------

def coarsened(chip, f: int):
    """The chip block-averaged by ``f`` x ``f`` pixels (valid where every
    pixel of the block was valid); same CRS, transform scaled by ``f``."""
    from dataclasses import replace

    n, h, w = chip.bands.shape
    h2, w2 = h // f, w // f
    # sums of strided views: several times faster than a 5-d reshape mean
    b = np.zeros((n, h2, w2), np.float32)
    v = np.ones((h2, w2), bool)
    for i in range(f):
        for j in range(f):
            b += chip.bands[:, i: h2 * f: f, j: w2 * f: f]
            v &= chip.valid[i: h2 * f: f, j: w2 * f: f]
    b /= f * f
    return replace(chip, bands=b, valid=v, transform=chip.transform @ Affine.scale(f, f),
                   gsd_m=float(chip.gsd_m) * f, meta={**chip.meta, "coarsened_by": f})


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with its holes filled (background not 4-connected to the
    border); the same as ``ndi.binary_fill_holes`` by one labelling."""
    lab, n = ndi.label(~mask)
    if n == 0:
        return mask
    border = np.zeros(n + 1, bool)
    for edge in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
        border[edge] = True
    border[0] = True
    return mask | ~border[lab]


def _rectangles(lab: np.ndarray, n: int, transform) -> list:
    """Minimum rotated rectangles (map CRS) of labels 1..n, from pixel corners."""
    if n == 0:
        return []
    edge = (lab > 0) & (ndi.grey_erosion(lab, footprint=np.ones((3, 3), bool), mode="constant") != lab)
    rows, cols = np.nonzero(edge)
    ids = lab[rows, cols] - 1
    order = np.argsort(ids, kind="stable")
    rows, cols, ids = rows[order], cols[order], ids[order]
    # 4 corners per edge pixel
    cr = np.concatenate([rows, rows, rows + 1, rows + 1]).astype(np.float64)
    cc = np.concatenate([cols, cols + 1, cols, cols + 1]).astype(np.float64)
    ci = np.concatenate([ids, ids, ids, ids])
    o = np.argsort(ci, kind="stable")
    cr, cc, ci = cr[o], cc[o], ci[o]
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f
    xs = a * cc + b * cr + c
    ys = d * cc + e * cr + f
    mp = shapely.multipoints(np.column_stack([xs, ys]), indices=ci)
    return list(shapely.minimum_rotated_rectangle(mp))


def _measure(rect) -> tuple[float, float, float]:
    """(length_m, width_m, heading_deg) of a rotated rectangle polygon."""
    c = np.asarray(rect.exterior.coords)[:4]
    e1, e2 = c[1] - c[0], c[2] - c[1]
    l1, l2 = float(np.hypot(*e1)), float(np.hypot(*e2))
    v = e1 if l1 >= l2 else e2
    heading = math.degrees(math.atan2(v[0], v[1])) % 180.0
    return max(l1, l2), min(l1, l2), heading


def size_class(length_m: float) -> str:
    for name, lo, hi in SIZE_CLASSES:
        if lo <= length_m < hi:
            return name
    return SIZE_CLASSES[-1][0]


# ---------------------------------------------------------------------------
# splitting rafted hulls
# ---------------------------------------------------------------------------

def _split_objects(lab: np.ndarray, n: int, z: np.ndarray, gsd_m: float, min_len_px: float) -> tuple[np.ndarray, int]:
    """Split touching hulls inside labelled objects.

    Bow-to-stern contact leaves a neck in the object's width: watershed on
    the distance transform with h-maxima markers separates it. Side-by-side
    contact leaves a seam of lower contrast along the long axis: the
    across-axis contrast profile dips between two hulls. Only splits whose
    parts are at least ``min_len_px`` long are kept.
    """
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    out = np.zeros_like(lab)
    nxt = 0
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
        m = lab[sl] == i
        parts = [m]
        if m.sum() >= 12:
            # hulls are 3-9 times longer than wide: only a longer object can
            # be two hulls bow to stern
            r, c = np.nonzero(m)
            ev = np.linalg.eigvalsh(np.cov(np.vstack([r, c]).astype(float))) if r.size > 2 else np.ones(2)
            if ev[0] <= 0 or math.sqrt(ev[1] / max(ev[0], 1e-9)) >= 8.0:
                parts = _split_neck(m, min_len_px, h_maxima, watershed)
            parts = [q for p in parts for q in _split_side(p, z[sl], min_len_px)]
            parts = [q for p in parts for q in _split_stepped(p, z[sl], min_len_px)]
            if gsd_m < BLOB_MIN_GSD_M and len(parts) == 1:
                # resolved hulls: the short hull of a rafted pair may cover
                # most of the long one's length (the pair is then wide over
                # most of it): the step measured from the narrow part. Both
                # parts must be hull shaped (length >= 3 x mean width,
                # area / length): a blob cut in two is no pair
                cut = _split_stepped(m, z[sl], min_len_px, ref_quantile=20.0)
                if len(cut) > 1 and all(_extent(q) ** 2 >= 3.0 * q.sum() for q in cut):
                    parts = cut
        for p in parts:
            nxt += 1
            out[sl][p] = nxt
    return out, nxt


def _split_neck(m, min_len_px, h_maxima, watershed):
    """Split ``m`` at necks: watershed of the distance transform from its
    local maxima; neighbouring regions merge again unless the border between
    them is clearly narrower (<= 0.6) than both hulls."""
    from skimage.feature import peak_local_max

    dist = ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    dmax = float(dist.max())
    if dmax < 1.5:
        return [m]
    pk = peak_local_max(dist, min_distance=max(2, int(dmax)), threshold_abs=0.5 * dmax, labels=m.astype(int),
                        exclude_border=False)
    if len(pk) < 2:
        return [m]
    mk = np.zeros(m.shape, np.int32)
    mk[pk[:, 0], pk[:, 1]] = np.arange(1, len(pk) + 1)
    ws = watershed(-dist, mk, mask=m)
    nm = len(pk)
    width = np.zeros(nm + 1)
    np.maximum.at(width, ws[m], dist[m])
    # borders: pairs of different labels among 4-neighbours
    parent = list(range(nm + 1))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b, da, db in ((ws[:, :-1], ws[:, 1:], dist[:, :-1], dist[:, 1:]),
                         (ws[:-1, :], ws[1:, :], dist[:-1, :], dist[1:, :])):
        sel = (a != b) & (a > 0) & (b > 0)
        if not sel.any():
            continue
        la, lb, dd = a[sel], b[sel], np.minimum(da[sel], db[sel])
        key = np.minimum(la, lb) * (nm + 1) + np.maximum(la, lb)
        order = np.argsort(key)
        key, dd = key[order], dd[order]
        uk, start = np.unique(key, return_index=True)
        neck = np.maximum.reduceat(dd, start)
        for k, nk in zip(uk, neck):
            i, j = int(k // (nm + 1)), int(k % (nm + 1))
            if nk > 0.6 * min(width[i], width[j]):
                parent[find(i)] = find(j)
    roots = np.array([find(i) for i in range(nm + 1)])
    merged = roots[ws]
    ids = [r for r in np.unique(merged[m])]
    if len(ids) < 2:
        return [m]
    parts = [(merged == r) & m for r in ids]
    if any(_extent(p) < min_len_px for p in parts):
        return [m]
    return parts


def _extent(p) -> float:
    r, c = np.nonzero(p)
    if r.size == 0:
        return 0.0
    pts = np.column_stack([r, c]).astype(float)
    pts -= pts.mean(axis=0)
    if r.size < 3:
        return float(np.hypot(np.ptp(r), np.ptp(c)) + 1)
    _, vec = np.linalg.eigh(np.cov(pts.T))
    proj = pts @ vec[:, -1]
    return float(np.ptp(proj) + 1)


def _split_stepped(m, z, min_len_px, ref_quantile: float = 50.0):
    """Split off a shorter hull moored alongside a longer one.

    The pair is a long object with a wider step where the short hull lies
    beside the long one; :func:`_split_side` does not see it because the
    whole object is narrow for its length. Along the long axis, the section
    at least 1.3 times wider than the object's median width is tested for a
    contrast dip across the axis (as in :func:`_split_side`); the pixels of
    that section beyond the dip, on the side away from the narrow part,
    are the short hull. Without a dip (hulls touching), the step is cut at
    the long hull's side line when the section reaches out on one side
    only. Both parts must be at least ``min_len_px`` long, the long hull
    at least 3 px wide and the step 2 px (finer, a wake or blur is no hull).
    ``ref_quantile``: the quantile (percent) of the along-axis widths the
    step is measured from (50: the median, for a short hull beside a long
    one; lower, for a short hull covering most of the long one's length).
    """
    if np.count_nonzero(m) < 30:
        return [m]
    r, c, along, across = principal_axes(m)
    ab = np.floor(along - along.min()).astype(int)
    na = ab.max() + 1
    if na < 2 * min_len_px:
        return [m]
    lo_x = np.full(na, np.inf)
    hi_x = np.full(na, -np.inf)
    np.minimum.at(lo_x, ab, across)
    np.maximum.at(hi_x, ab, across)
    wid = np.where(np.isfinite(lo_x), hi_x - lo_x + 1, 0)
    medw = float(np.median(wid[wid > 0]))
    refw = medw if ref_quantile == 50.0 else float(np.percentile(wid[wid > 0], ref_quantile))
    wide_bins = ndi.uniform_filter1d(wid, 3, mode="nearest") >= 1.3 * refw
    if medw < 3 or wide_bins.sum() < min_len_px or (~wide_bins).sum() < min_len_px:
        return [m]
    in_wide = wide_bins[ab]
    xb = np.floor(across - across.min()).astype(int)
    nb = xb.max() + 1
    zz = z[r, c]
    found = _across_seam(xb[in_wide], zz[in_wide], nb)
    if found is None:
        return [m]
    k, seam = found
    if seam:
        # a seam: the short hull lies on the side of it away from the narrow part
        narrow_side = float(np.mean(xb[~in_wide])) < k
        sel = in_wide & ((xb > k) if narrow_side else (xb < k))
    else:
        # no seam (hulls touching): the step itself; the wide section
        # reaches out on one side only, beyond the long hull's side line
        # side lines of the long hull: straight-line fits over the narrow
        # part (the principal axis of the pair is tilted by the short hull)
        nw = (~wide_bins) & (wid > 0)
        ia = np.arange(na, dtype=float)
        if nw.sum() < 3:
            return [m]
        f_hi = np.polyval(np.polyfit(ia[nw], hi_x[nw], 1), ia)
        f_lo = np.polyval(np.polyfit(ia[nw], lo_x[nw], 1), ia)
        out_hi = float(np.median((hi_x - f_hi)[wide_bins]))
        out_lo = float(np.median((f_lo - lo_x)[wide_bins]))
        if max(out_hi, out_lo) < max(0.25 * medw, 2.0) or min(out_hi, out_lo) > 0.15 * medw:
            return [m]
        sel = in_wide & ((across > f_hi[ab] + 0.5) if out_hi > out_lo else (across < f_lo[ab] - 0.5))
    if sel.sum() < 4 or _extent_1d(along[sel]) < min_len_px:
        return [m]
    a = np.zeros_like(m)
    b = np.zeros_like(m)
    a[r[~sel], c[~sel]] = True
    b[r[sel], c[sel]] = True
    return [a, b]


def _across_seam(bins: np.ndarray, values: np.ndarray, nb: int):
    """The darkest bin ``k`` of the mean across-axis profile (``values`` per
    pixel, ``bins`` its 1-px bin across the hull, ``nb`` bins) within the
    middle half, and whether it is a seam (below 0.7 of the brightest bin
    on both sides). None when the profile is too short to tell."""
    prof = np.bincount(bins, weights=values, minlength=nb) / np.maximum(np.bincount(bins, minlength=nb), 1)
    prof = ndi.uniform_filter1d(prof, 3 if nb >= 7 else 1, mode="nearest")
    lo, hi = int(nb * 0.25), int(math.ceil(nb * 0.75))
    if hi <= lo:
        return None
    k = lo + int(np.argmin(prof[lo:hi]))
    left, right = prof[:k].max(initial=-np.inf), prof[k + 1:].max(initial=-np.inf)
    return k, bool(prof[k] < 0.7 * min(left, right))


def _extent_1d(v: np.ndarray) -> float:
    return float(np.ptp(v) + 1) if v.size else 0.0


def _split_side(m, z, min_len_px):
    """Split along the long axis where the across-axis contrast dips."""
    if np.count_nonzero(m) < 20:
        return [m]
    r, c, along, across = principal_axes(m)
    length = np.ptp(along) + 1
    width = np.ptp(across) + 1
    # two hulls side by side are at least ~2x wider than one; a single hull
    # is rarely wider than half its length
    if width < 4 or width < 0.4 * length or length < min_len_px:
        return [m]
    bins = np.floor(across - across.min()).astype(int)
    nb = bins.max() + 1
    found = _across_seam(bins, z[r, c], nb)
    if found is None or not found[1]:
        return [m]
    k = found[0]
    a = np.zeros_like(m)
    b = np.zeros_like(m)
    sel = bins < k
    a[r[sel], c[sel]] = True
    b[r[~sel], c[~sel]] = True
    return [a, b]


# ---------------------------------------------------------------------------
# band preparation
# ---------------------------------------------------------------------------

def _optical_bands(chip) -> dict[str, np.ndarray]:
    """Bands by role, scaled by one per-scene factor (the median of the valid
    brightness), so that digital-number scaling does not matter."""
    valid = chip.valid
    out = {}
    for role in ("red", "green", "blue", "nir", "pan", "gray"):
        b = chip.band(role)
        if b is not None:
            out[role] = b.astype(np.float32, copy=False)
    if not out:
        out["gray"] = chip.bands[0].astype(np.float32, copy=False)
    ref = np.concatenate([v[valid][:: max(1, int(valid.sum() // 200_000))] for v in out.values()]) if valid.any() else np.ones(1)
    scale = float(np.median(np.abs(ref))) or 1.0
    return {k: np.where(valid, v / scale, 0).astype(np.float32) for k, v in out.items()}


def _optical_contrast(bands: dict[str, np.ndarray], water: np.ndarray, gsd: float, block_m: float,
                      smooth_m: float = 3.0, d_land: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Robust contrast z of the water (smoothed for detection, raw for the
    extent of objects), both corrected for the bright rim along the shore."""
    block_px = max(48, int(round(block_m / gsd)))
    acc = None
    vis = [bands[r] for r in ("red", "green", "blue") if r in bands]
    layers = {"vis": np.mean(vis, axis=0) if vis else None}
    for role in ("nir", "pan", "gray"):
        layers[role] = bands.get(role)
    for x in layers.values():
        if x is None:
            continue
        bg, sg = local_background(x, water, block_px)
        d = (x - bg) / sg
        acc = d if acc is None else acc + d
    bg, sg = local_background(acc, water, block_px)
    if d_land is None:
        d_land = _distance_to_land(water)
    z_raw = _edge_corrected(((acc - bg) / sg).astype(np.float32), water, gsd, d_land)
    # below the smallest hull width, texture is waves and glint: smooth it
    # out (a Gaussian of ``smooth_m`` metres; nothing at 10 m pixels)
    sig_px = smooth_m / gsd
    if sig_px < 0.5:
        return z_raw, z_raw
    else:
        # normalised convolution over water, so land does not bleed in
        wf = water.astype(np.float32)
        acc = ndi.gaussian_filter(np.where(water, acc, 0).astype(np.float32), sig_px) / np.maximum(
            ndi.gaussian_filter(wf, sig_px), 1e-3)
        acc = np.where(water, acc, 0)
    bg, sg = local_background(acc, water, block_px)
    z = ((acc - bg) / sg).astype(np.float32)
    return _edge_corrected(z, water, gsd, d_land), z_raw


def _relative_contrast(bands: dict[str, np.ndarray], water: np.ndarray, valid: np.ndarray, gsd: float,
                       block_m: float) -> np.ndarray | None:
    """Brightness above the local water background as a share of the
    scene's land-minus-water brightness gap (per-scene, so digital-number
    scaling cancels), or None without enough land and water to measure it.
    Brightness is the sum of the visible mean and NIR (or pan/gray)."""
    land = valid & ~water
    if land.sum() < 500 or water.sum() < 500:
        return None, None
    vis = [bands[r] for r in ("red", "green", "blue") if r in bands]
    parts = [np.mean(vis, axis=0)] if vis else []
    parts += [bands[r] for r in ("nir", "pan", "gray") if r in bands]
    x = np.sum(parts, axis=0).astype(np.float32)
    gap = float(np.median(_sample_px(x, land)) - np.median(_sample_px(x, water)))
    if not gap > 0:
        return None, None
    bg, _ = local_background(x, water, max(16, int(round(block_m / 2 / gsd))), tail=False)
    return ((x - bg) / gap).astype(np.float32), x


def _drop_long_lines(lab: np.ndarray, n: int, transform, gsd: float, max_length_m: float,
                     line_width_m: float, gap_px: int = 2) -> tuple[np.ndarray, int]:
    """Remove line structures: groups of objects (objects within ``gap_px``
    pixels of each other, so a breakwater broken into dashes is one group)
    longer than ``max_length_m`` with a mean width (area / length) under
    ``line_width_m`` metres and 3 pixels."""
    if n == 0 or line_width_m <= 0:
        return lab, n
    obj = lab > 0
    grp, ng = ndi.label(ndi.binary_dilation(obj, structure=_EIGHT, iterations=gap_px), structure=_EIGHT)
    g = np.where(obj, grp, 0)
    area = np.bincount(g.ravel(), minlength=ng + 1)[1:] * gsd * gsd
    drop = np.zeros(ng + 1, bool)
    for j, rect in enumerate(_rectangles(g, ng, transform)):
        L, _, _ = _measure(rect)
        if L > max_length_m and area[j] / L < min(line_width_m, 3.0 * gsd):
            drop[j + 1] = True
    if not drop.any():
        return lab, n
    return ndi.label(obj & ~drop[g], structure=_EIGHT)


def moored_hulls(chip, bands: dict[str, np.ndarray], water: np.ndarray, min_length_m: float,
                 max_length_m: float, k: float = 1.5, band_m: float = 60.0,
                 max_width_m: float = 70.0) -> tuple[list, list[dict]]:
    """Hulls moored alongside a quay, found on the land side of the water's edge.

    A hull at a quay reads as land to NDWI, and a morphological opening
    does not part it from a straight quay. But painted steel decks and
    cargo are redder in NIR than concrete and asphalt: along the edge
    (land pixels within ``band_m`` metres of the water) a hull is a patch
    whose NDWI lies more than ``k`` robust sigmas (and 0.05) below the
    local median NDWI of that edge band. A patch is kept when it is hull
    shaped (``min_length_m`` <= length <= ``max_length_m``, width <=
    ``max_width_m``, 1.8 <= length / width <= 8 as hulls are (a longer
    strip along the edge is the shadow or wet edge of the quay), filling
    >= 0.4 of its
    rectangle) and lies along the water (land within two pixels of it,
    the hull's outer pixel being mixed with the water, over >= 0.4 of its
    length, as a hull alongside does and a building behind the apron does
    not), and lies on average >= 1.5 ``k`` sigmas below the quay. Pixels greener than :data:`VEGETATION_NDVI` (trees and lawns
    on the shore) are never hull. Needs green and NIR; returns (rectangles in the chip CRS,
    properties) or empty lists.
    """
    g, n = bands.get("green"), bands.get("nir")
    land = ~water & chip.valid
    if g is None or n is None or not land.any() or not water.any():
        return [], []
    gsd = float(chip.gsd_m)
    ndwi = ((g - n) / np.maximum(np.abs(g + n), 1e-6)).astype(np.float32)
    reach = max(2, int(math.ceil(band_m / gsd)))
    d_water = ndi.distance_transform_cdt(~water, metric="chessboard")
    edge_band = land & (d_water <= reach)
    if edge_band.sum() < 50:
        return [], []
    ref, sg = local_background(ndwi, edge_band, max(16, int(round(300.0 / gsd))), tail=False)
    cand = edge_band & (ndwi < ref - np.maximum(k * sg, 0.05))
    red = bands.get("red")
    if red is not None:
        # vegetation on the shore is as low in NDWI as a deck, but green:
        # no hull has NDVI above that of sparse vegetation
        cand_ok = (n - red) < VEGETATION_NDVI * np.maximum(n + red, 1e-6)
        cand &= cand_ok
    else:
        cand_ok = np.ones_like(cand)
    dev = ((ref - ndwi) / np.maximum(sg, 1e-6)).astype(np.float32)
    # the hull's outer pixel is mixed with the water (blur): contact is land
    # within two pixels of the water
    at_edge = land & (d_water <= 2)
    # a patch is hull shaped only when its shape is resolved: 5 pixels long
    # and 3 wide (the blur of the sensor makes a hull at least that wide; a
    # narrower dark seam is a shadow line or the edge of a roof)
    min_length_m = max(float(min_length_m), 5.0 * gsd)

    def hulls_of(mask):
        lab, nl = ndi.label(mask, structure=_EIGHT)
        if nl == 0:
            return [], []
        # hulls moored side by side or bow to stern: split as in open water
        lab, nl = _split_objects(lab, nl, dev, gsd, min_length_m / gsd)
        if nl == 0:
            return [], []
        area = np.bincount(lab.ravel(), minlength=nl + 1)[1:]
        contact = np.bincount(lab.ravel(), weights=at_edge.ravel(), minlength=nl + 1)[1:]
        depth = np.bincount(lab.ravel(), weights=(dev * mask).ravel(), minlength=nl + 1)[1:]
        n_in = np.bincount(lab.ravel(), weights=mask.ravel(), minlength=nl + 1)[1:]
        rects, props = [], []
        for j, rect in enumerate(_rectangles(lab, nl, chip.transform)):
            L, W, _ = _measure(rect)
            if not (min_length_m <= L <= max_length_m) or W > max_width_m or L < 1.8 * W or L > 8.0 * W or W < 3.0 * gsd:
                continue
            if area[j] * gsd * gsd < 0.4 * rect.area or contact[j] * gsd < min(0.4 * L, 0.8 * W):
                continue
            zm = float(depth[j] / max(n_in[j], 1))
            if zm < 1.5 * k:
                # every pixel is >= k sigmas below the quay: a hull is so on
                # average by a margin, a patch barely over k is the tail of the
                # quay's own spread (roof edges, shadows, dark asphalt)
                continue
            rects.append(rect)
            props.append({"score": round(1.0 - math.exp(-zm / 3.0), 4), "contrast": round(zm, 2),
                          "area_m2": round(float(area[j]) * gsd * gsd, 1), "moored": True})
        return rects, props

    # a large hull's deck (hatches, cargo, superstructure) breaks into
    # pieces a pixel apart: patches closed over one-pixel gaps are tried
    # first, and the pieces themselves where the closed patch is no hull
    rects, props = hulls_of(ndi.binary_closing(cand, structure=_EIGHT) & edge_band & cand_ok)
    r2, p2 = hulls_of(cand)
    tree = shapely.STRtree(rects) if rects else None
    for r, p in zip(r2, p2):
        if tree is None or not len(tree.query(r, predicate="intersects")):
            rects.append(r)
            props.append(p)
    return rects, props


def _add_moored(chip, bands, water, rects, props, min_length_m, max_length_m, k):
    """``rects``/``props`` plus the :func:`moored_hulls` that overlap none of them."""
    extra, eprops = moored_hulls(chip, bands, water, min_length_m, max_length_m, k)
    if not extra:
        return rects, props
    rects, props = list(rects), list(props)
    tree = shapely.STRtree(rects) if rects else None
    for r, p in zip(extra, eprops):
        if tree is not None and len(tree.query(r, predicate="intersects")):
            continue
        rects.append(r)
        props.append(p)
    return rects, props


def _continues_as_line(rect, z: np.ndarray, water: np.ndarray, transform, gsd: float, level: float,
                       reach_px: float = 6.0, share: float = 0.8) -> bool:
    """True when the bright signal of an object runs on beyond both of its
    ends along one of its axes: the object is a dash of a line structure (a
    breakwater, a pier, a bridge) rather than a hull, which ends at bow and
    stern, with water right beyond them (so hulls moored bow to stern with
    gaps between them are not a line). A dash about as wide as long (long
    side < 1.5 x short side) is tried along both axes, since its rectangle
    may lie across the line. Samples
    every pixel along the axis from 1.5 to ``reach_px`` pixels beyond each
    end; a sample continues the structure when it is land or water with
    z >= ``level``."""
    c = np.asarray(rect.exterior.coords)[:4]
    ctr = c.mean(axis=0)
    ia, ib, ic, id_, ie, if_ = tuple(~transform)[:6]
    h, w = z.shape
    e1, e2 = c[1] - c[0], c[2] - c[1]
    l1, l2 = float(np.hypot(*e1)), float(np.hypot(*e2))
    # a dash no longer than 1.5 times its width may lie across the line
    axes = (e1, e2) if max(l1, l2) < 1.5 * min(l1, l2) else ((e1,) if l1 >= l2 else (e2,))
    for v in axes:
        L = float(np.hypot(*v))
        if L <= 0:
            continue
        u = v / L
        t = 0.5 * L + gsd * np.arange(1.5, reach_px + 0.01, 1.0)
        both = True
        for sgn in (1.0, -1.0):
            pts = ctr[None, :] + sgn * t[:, None] * u[None, :]
            col = ia * pts[:, 0] + ib * pts[:, 1] + ic
            row = id_ * pts[:, 0] + ie * pts[:, 1] + if_
            row, col = np.floor(row).astype(int), np.floor(col).astype(int)
            ok = (row >= 0) & (row < h) & (col >= 0) & (col < w)
            row, col = row[ok], col[ok]
            if row.size < 3:
                both = False
                break
            on = ~water[row, col] | (z[row, col] >= level)
            if on.mean() < share:
                both = False
                break
        if both:
            return True
    return False


def _is_shore_ramp(lab: np.ndarray, i: int, sl, bright: np.ndarray, land: np.ndarray, share: float) -> bool:
    """True when object ``i`` (touching land) is no brighter than the land
    beside it: mixed pixels of a shore ramp lie between water and land."""
    pad = 3
    h, w = lab.shape
    sl = (slice(max(sl[0].start - pad, 0), min(sl[0].stop + pad, h)),
          slice(max(sl[1].start - pad, 0), min(sl[1].stop + pad, w)))
    m = lab[sl] == i
    ring = ndi.binary_dilation(m, structure=_EIGHT, iterations=2) & ~m & land[sl]
    if ring.sum() < 3:
        return False
    b = bright[sl]
    top = float(np.quantile(b[m], 0.9))
    return top < share * float(np.median(b[ring]))


def _edge_slope(lab: np.ndarray, i: int, sl, z: np.ndarray, water: np.ndarray) -> float:
    """Steepness of the outline of object ``i``: the steepest gradient of
    the contrast (lightly smoothed, 0.7 px, so pixel noise does not pass
    for an edge) on the object and the two pixels around it, over the
    object's peak of the same smoothed contrast (per pixel). Only pixels
    with water all around count: the step from water to land is no edge
    of the object. A hull split from a rafted pair is measured with the
    hulls touching it (its side against the other hull is no edge, the
    pair's outline is)."""
    pad = 5
    h, w = lab.shape
    sl = (slice(max(sl[0].start - pad, 0), min(sl[0].stop + pad, h)),
          slice(max(sl[1].start - pad, 0), min(sl[1].stop + pad, w)))
    m = lab[sl] == i
    touching = np.unique(lab[sl][ndi.binary_dilation(m, structure=_EIGHT) & ~m])
    touching = touching[touching > 0]
    if touching.size:
        # the pair's outline may reach beyond this window: widen it by the partners' extent
        rows, cols = np.nonzero(np.isin(lab, np.append(touching, i)))
        sl = (slice(max(rows.min() - pad, 0), min(rows.max() + 1 + pad, h)),
              slice(max(cols.min() - pad, 0), min(cols.max() + 1 + pad, w)))
        m = np.isin(lab[sl], np.append(touching, i))
    if min(m.shape) < 3 or not m.any():
        return np.inf
    zz = ndi.gaussian_filter(z[sl].astype(np.float64), 0.7)
    gy, gx = np.gradient(zz)
    near = ndi.binary_dilation(m, structure=_EIGHT, iterations=2)
    near &= ndi.binary_erosion(water[sl], structure=_EIGHT, iterations=2, border_value=1)
    if not near.any():
        return np.inf
    pk = float(zz[m].max())
    return float(np.hypot(gx, gy)[near].max()) / pk if pk > 0 else np.inf


def _sample_px(x: np.ndarray, m: np.ndarray, n: int = 200_000) -> np.ndarray:
    v = x[m]
    return v[:: max(1, v.size // n)]


def _edge_corrected(z: np.ndarray, water: np.ndarray, gsd: float, d_land: np.ndarray | None = None,
                    reach_m: float = 20.0) -> np.ndarray:
    """Remove the bright rim of the water along the shore.

    Blur and mixed pixels make water next to land brighter than open
    water. For each distance to land (whole pixels, up to ``reach_m``
    metres and at least 2 pixels), the low quantiles of z over the water
    pixels at that distance re-standardise them; a hull moored at the shore
    stays far above its rim, the rim itself drops to noise. The rim level is
    its 20th percentile (hulls may line most of a quay). ``d_land``: the
    distance of each pixel to land, in pixels (computed when omitted).
    """
    k = max(2, int(math.ceil(reach_m / gsd)))
    if d_land is None:
        d_land = _distance_to_land(water)
    rr, cc = np.nonzero(water & (d_land <= k))
    if rr.size == 0:
        return z
    out = z.copy()
    v_all = z[rr, cc]
    bins = np.ceil(d_land[rr, cc]).astype(np.int32)
    order = np.argsort(bins, kind="stable")
    bins, v_all, rr, cc = bins[order], v_all[order], rr[order], cc[order]
    edges = np.searchsorted(bins, np.arange(1, k + 2))
    for i in range(k):
        lo, hi = edges[i], edges[i + 1]
        if hi - lo < 50:
            continue
        v = v_all[lo:hi]
        q05, q20 = np.percentile(v, [5, 20])
        sig = float((q20 - q05) / 0.80)
        if q20 <= 0.5:
            continue
        out[rr[lo:hi], cc[lo:hi]] = (v - q20) / max(sig, 1.0)
    return out


def _distance_to_land(water: np.ndarray) -> np.ndarray:
    """Distance (pixels) of each water pixel to the nearest land pixel; the
    chip border is not land."""
    if water.all():
        return np.full(water.shape, np.inf, np.float32)
    # city-block distance (>= Euclidean, at most x1.41 on diagonals): 10x faster
    d = ndi.distance_transform_cdt(np.pad(water, 1, mode="edge"), metric="taxicab")[1:-1, 1:-1]
    return d.astype(np.float32)


def _result(chip, rects, props, water_cov, extras, name="vessels") -> DetectionResult:
    dets = []
    for rect, p in zip(rects, props):
        L, W, hd = _measure(rect)
        dets.append(Detection(geometry=rect, cls="vessel", score=float(p["score"]), length_m=round(L, 2),
                              width_m=round(W, 2), heading_deg=round(hd, 1),
                              properties={"size_class": size_class(L), **{k: v for k, v in p.items() if k != "score"}}))
    n = len(dets)
    by_size = {c[0]: 0 for c in SIZE_CLASSES}
    for d in dets:
        by_size[d.properties["size_class"]] += 1
    extras = {"count_by_size": by_size, **extras}
    return DetectionResult(counts={"vessel": n}, intervals={"vessel": (float(n), float(n))},
                           coverage=float(water_cov), detections=dets, crs=chip.crs,
                           detector=name, version=VERSION, extras=extras)


def _water_coverage(chip, water: np.ndarray, source: str) -> float:
    if source.startswith("aoi"):
        from monitor.detect.water import polygon_water

        poly = polygon_water(chip, berth_buffer_m=0.0)
        tot = poly.sum()
        return float((poly & chip.valid).sum() / tot) if tot else 0.0
    # image water: water under invalid pixels is unknown; assume the water
    # share of the valid part of the AOI
    from rasterio.features import geometry_mask

    inside = ~geometry_mask([chip.local_aoi.boundary], out_shape=chip.shape, transform=chip.transform)
    v_in = inside & chip.valid
    if not v_in.any():
        return 0.0
    w_valid = float((water & v_in).sum())
    share = w_valid / float(v_in.sum())
    missing = float((inside & ~chip.valid).sum()) * share
    return w_valid / (w_valid + missing) if w_valid + missing > 0 else 0.0


#: The learned second stage was trained on Sentinel-2 (10 m pixels): used by
#: default from this pixel size up.
CLASSIFIER_MIN_GSD_M = 5.0


def _classified(chip, res: DetectionResult, water, min_length_m: float, max_length_m: float) -> DetectionResult:
    """``res`` re-decided by the learned classifier, under this detector's
    name and version, keeping hulls within the length limits (metres)."""
    from monitor.detect.vessel_classifier import classify_vessels

    out = classify_vessels(chip, res, water=water)
    dets = [d for d in out.detections if min_length_m - 1e-6 <= d.length_m <= max_length_m]
    by_size = {k: 0 for k in res.extras.get("count_by_size", {})}
    for d in dets:
        by_size[size_class(d.length_m)] = by_size.get(size_class(d.length_m), 0) + 1
    extras = dict(out.extras, count_by_size=by_size, rule_count=res.counts.get("vessel", 0))
    n = len(dets)
    return DetectionResult(counts={"vessel": n}, intervals={"vessel": (float(n), float(n))}, coverage=res.coverage,
                           detections=dets, crs=res.crs, detector=res.detector, version=res.version, extras=extras)


@register("vessel", name="vessels", version=VERSION, kinds=("port",))
def detect_vessels(chip, *, min_length_m: float = 15.0, max_length_m: float = 500.0, pfa: float = 1e-6,
                   k_high: float = 6.0, k_low: float = 3.0, block_m: float = 300.0, smooth_m: float = 3.0, extent_frac: float = 0.25, rim_m: float = 6.0, work_gsd_m: float = 2.0,
                   guard_m: float = 60.0, background_m: float = 100.0, max_shore_share: float = 0.9,
                   min_length_px: float | None = None, line_width_m: float = 25.0, min_rel_contrast: float = 0.5, shore_ramp: float = 1.0, moored: bool = True, moored_k: float = 1.5,
                   max_beam_ratio: float = 0.5, edge_sharpness: float = 0.25,
                   water: np.ndarray | None = None, classifier: "bool | str" = "auto",
                   **_ignored) -> DetectionResult:
    """Detect vessels in a port chip (optical or SAR).

    Parameters
    ----------
    chip: :class:`~monitor.imagery.Chip` on a metric grid; ``chip.sensor``
        selects the optical or the SAR pipeline.
    min_length_m, max_length_m: accepted hull length (long side of the
        minimum rotated rectangle), metres. The pixel limit follows the GSD.
    min_length_px: a hull must also span at least this many pixels (after
        any coarsening): shorter blobs are not resolved as hulls and are
        mostly small craft, wakes and wave crests (0: off; default
        :data:`OPTICAL_MIN_LENGTH_PX` on optical chips, 0 on SAR).
    min_rel_contrast: optical hulls (decks, superstructure) reflect about
        like built land: an object's peak brightness above the local water
        background must reach this share of the scene's land-minus-water
        brightness gap (measured only when the chip has both land and
        water). Low-contrast water texture (wave crests, glint, slicks,
        wakes) is standardised into high z-scores on calm water but stays
        far below that gap.
    line_width_m: before rafted hulls are split, an object longer than
        ``max_length_m`` whose mean width (area / length) is under this
        many metres (and under 3 pixels) is a line structure (breakwater,
        mole, bridge, wake), not a row of hulls; it is dropped whole.
    max_beam_ratio: at pixels finer than :data:`BLOB_MIN_GSD_M`, an object
        wider than this share of its length plus 2 pixels (blur) is a blob,
        not a hull (cloud puffs, glint, slicks are about as wide as long; a
        hull is at least twice as long as its beam); 0 turns the test off.
    edge_sharpness: at pixels finer than :data:`BLOB_MIN_GSD_M`, an
        object's outline must be as sharp as the sensor's blur: the steepest
        gradient of its (0.7 px smoothed) contrast, per pixel, must reach
        this share of its peak (a plateau blurred by a 1 px Gaussian gives
        ~0.33; 0.25 is an edge blurred over ~1.6 px). Cloud puffs and
        haze fade in over tens of metres; 0 turns the test off.
    shore_ramp: an object touching land, or within the sensor's blur of it
        (2 px), is the blurred edge of that land (mixed water/land pixels
        along a breakwater or quay, brighter under thin cloud) unless its
        brightest pixels reach this share of the adjacent land's median
        brightness; 0 turns the test off.
    pfa: SAR CFAR false-alarm probability per pixel.
    k_high, k_low: optical hysteresis thresholds on the robust contrast
        z-score (seed and grow).
    block_m: optical background/noise block size, metres.
    extent_frac: optical object extent: pixels above this share of the
        object's peak contrast (and above ``k_low``).
    work_gsd_m: chips with pixels finer than this are block-averaged by an
        integer factor towards it first (speed: at 1 m a 15 m hull is still
        7 pixels long at 2 m); 0 keeps the native grid.
    rim_m: seeds lie farther than this from land (and at least a pixel).
    smooth_m: optical Gaussian smoothing (sigma, metres) against wave and
        glint texture finer than a hull; no effect at >= 6 m pixels.
    guard_m, background_m: SAR CFAR guard half-width and background ring
        width, metres.
    max_shore_share: objects whose pixels touch land for more than this
        share are shoreline artefacts, not hulls (a moored hull touches the
        quay along one side only).
    moored, moored_k: with water from the image (a box-only AOI) and a NIR
        band, also look for hulls moored alongside quays on the land side
        of the water's edge (:func:`moored_hulls`, NDWI ``moored_k``
        robust sigmas below the quay); such detections carry
        ``properties["moored"] = True``.
    water: optional bool water mask on the chip grid (overrides the AOI
        polygons / image classification).

    classifier: the learned second stage
        (:func:`monitor.detect.vessel_classifier.classify_vessels`, boosted
        trees trained on real Sentinel-2 port scenes) re-decides the hulls.
        ``"auto"`` (default) uses it where it was trained: optical chips of
        5 m pixels or coarser (Sentinel-2-like); ``True`` always on optical,
        ``False`` never. ``extras["classifier"]`` names it when used.

    Returns a :class:`DetectionResult` with ``counts["vessel"]``, oriented
    rectangles in the chip CRS, ``coverage`` = valid water / water, and
    ``extras["count_by_size"]`` (<30 m, 30-100 m, >100 m).
    """
    chip_in, water_in = chip, water
    if chip.bands.ndim != 3 or chip.bands.shape[0] == 0:
        raise InputError(getattr(chip.scene, "path", "chip"), "vessel detector needs a (bands, h, w) array")
    gsd = float(chip.gsd_m)
    if not gsd > 0:
        raise InputError(getattr(chip.scene, "path", "chip"), f"bad pixel size {gsd!r}")
    if min_length_m <= 0 or pfa <= 0 or pfa >= 1:
        raise InputError("options", "min_length_m must be > 0 and 0 < pfa < 1")
    f = int(work_gsd_m // gsd) if work_gsd_m and gsd < work_gsd_m else 1
    if f >= 2 and water is None and min(chip.shape) >= 8 * f:
        chip = coarsened(chip, f)
        gsd = float(chip.gsd_m)
    sar = chip.sensor == "sar"
    bands = None if sar else _optical_bands(chip)
    if water is None:
        water, source = water_mask(chip, bands)
    else:
        water, source = np.asarray(water, bool), "given"
    water = water & chip.valid
    cov = _water_coverage(chip, water, source) if source != "given" else float(water.sum() > 0)
    extras = {"water_source": source, "water_px": int(water.sum()), "gsd_m": gsd,
              "mode": "sar" if sar else "optical"}
    if water.sum() < 16:
        return _result(chip, [], [], cov, extras)

    # the length limit in metres, and never below ``min_length_px`` pixels
    if min_length_px is None:
        min_length_px = 0.0 if sar else OPTICAL_MIN_LENGTH_PX
    min_length_m = max(float(min_length_m), float(min_length_px) * gsd)
    min_len_px = min_length_m / gsd
    # objects grow only through water: one pixel into a bright quay would
    # chain the hulls moored along it into one object. Moored hulls are in
    # the water mask already (AOI polygons, or thin land given back).
    water_ext = water
    # seeds lie off the water's edge: the mixed water/land pixels of a
    # shoreline are bright against the water but never seed an object
    # (at least ``rim_m`` metres, one pixel, from land: blur spreads the shore)
    d_land = _distance_to_land(water)
    inner = d_land > max(1.0, rim_m / gsd)

    if sar:  # radar: CFAR ships with sub-pixel outlines (monitor.detect.sar)
        from monitor.detect.sar import detect_ships_sar

        info = {}
        ships = detect_ships_sar(chip, water, pfa=pfa, guard_m=guard_m, background_m=background_m,
                                 min_length_m=min_length_m, max_length_m=max_length_m, info=info)
        extras.update({"enl": info.get("enl"), "pfa": pfa})
        return _result(chip, [s.polygon for s in ships], [{"score": s.score, "peak": s.peak_db, "area_m2": round(
            s.area_px * gsd * gsd, 1), **s.properties} for s in ships], cov, extras)
    zs, z = _optical_contrast(bands, water, gsd, block_m, smooth_m, d_land)
    mask = grow_from_seeds(water_ext & (zs >= k_low), inner & (zs >= k_high))
    # an object is where its contrast is at least ``extent_frac`` of its
    # peak: blur and halo do not make it longer, and a seam between two
    # hulls can part them
    lab0, n0 = ndi.label(mask, structure=_EIGHT)
    if n0:
        pk = np.full(n0 + 1, np.inf)
        pk[1:] = -np.inf
        np.maximum.at(pk, lab0[mask], z[mask])
        mask &= z >= np.maximum(extent_frac * pk[lab0], k_low)
    mask = _fill_holes(mask)
    rel, bright = _relative_contrast(bands, water, chip.valid, gsd, block_m)

    def finish(rects, props):
        # optical chips with water from the image: hulls moored alongside a
        # quay are land to NDWI; they are found along the water's edge
        if source == "image" and moored:
            rects, props = _add_moored(chip, bands, water, rects, props, min_length_m, max_length_m, moored_k)
        res = _result(chip, rects, props, cov, extras)
        if classifier is True or (classifier == "auto" and float(chip_in.gsd_m) >= CLASSIFIER_MIN_GSD_M):
            res = _classified(chip_in, res, water_in, min_length_m, max_length_m)
        return res

    lab, n = ndi.label(mask, structure=_EIGHT)
    if n == 0:
        return finish([], [])
    # objects mostly on land are land, not ships
    nz = lab > 0
    lv = lab[nz]
    cnt = np.maximum(np.bincount(lv, minlength=n + 1)[1:], 1)
    in_w = np.bincount(lv, weights=water[nz], minlength=n + 1)[1:] / cnt
    # shoreline strips: mixed water/land pixels along the shore are bright
    # against the water but almost every pixel of them touches wide land
    land = ~water & chip.valid
    by_land = ndi.binary_dilation(land, structure=np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool))
    on_shore = np.bincount(lv, weights=by_land[nz], minlength=n + 1)[1:] / cnt
    keep = (in_w >= 0.5) & (on_shore <= max_shore_share)
    lab = np.where(keep[np.maximum(lab - 1, 0)] & (lab > 0), lab, 0)
    lab, n = ndi.label(lab > 0, structure=_EIGHT)
    if n == 0:
        return finish([], [])
    lab, n = _drop_long_lines(lab, n, chip.transform, gsd, max_length_m, line_width_m)
    if n == 0:
        return finish([], [])
    lab, n = _split_objects(lab, n, z, gsd, min_len_px)
    nz = lab > 0
    lv, zv = lab[nz], z[nz].astype(np.float64)
    area = np.bincount(lv, minlength=n + 1)[1:].astype(np.float64)
    mean_z = np.bincount(lv, weights=zv, minlength=n + 1)[1:] / np.maximum(area, 1)
    peak = np.full(n + 1, -np.inf)
    np.maximum.at(peak, lv, zv)
    peak = peak[1:]
    near = np.full(n + 1, np.inf)
    np.minimum.at(near, lv, d_land[nz].astype(np.float64))
    rel_pk = np.full(n + 1, np.inf)
    if rel is not None:
        rel_pk[1:] = -np.inf
        np.maximum.at(rel_pk, lv, rel[nz].astype(np.float64))
    rel_pk = rel_pk[1:]
    obj_sl = ndi.find_objects(lab)
    land_px = chip.valid & ~water
    at_shore = near[1:] <= max(1.0, rim_m / gsd)
    rects = _rectangles(lab, n, chip.transform)
    # for the line test: the brightest pixel within a pixel of each
    # sample, so a ray a little off a thin line still follows it
    z_near = ndi.maximum_filter(z, size=3)
    sel_r, props = [], []
    thr_hi = k_high
    shape_resolved = max_beam_ratio > 0 and gsd < BLOB_MIN_GSD_M
    for j, rect in enumerate(rects):
        L, W, _ = _measure(rect)
        if L < min_length_m - 1e-6 or L > max_length_m:
            continue
        if peak[j] < thr_hi:
            continue
        if rel_pk[j] < min_rel_contrast:
            continue
        # within the blur of the shore (2 px): no brighter than that land is its blur
        if bright is not None and near[j + 1] <= 2.0 and shore_ramp > 0 and \
                _is_shore_ramp(lab, j + 1, obj_sl[j], bright, land_px, shore_ramp):
            continue
        if _continues_as_line(rect, z_near, water, chip.transform, gsd, k_low):
            continue
        if L > 15.0 * W or (W < 1.5 * gsd and L >= 8.0 * gsd):
            # lines, not hulls: bridges, breakwater edges, wakes
            continue
        if gsd >= BLOB_MIN_GSD_M and near[j + 1] <= 1.0 and L < SHORE_MIN_LENGTH_PX * gsd - 1e-6:
            continue
        if W > MAX_SHIP_WIDTH_M + 2.0 * gsd:
            # wider than any hull (plus a pixel of blur on each side): an
            # islet, a pontoon field, a cloud
            continue
        if shape_resolved and W > max_beam_ratio * L + 2.0 * gsd:
            # blobs, not hulls: a hull is at least twice as long as its beam
            # (blur widens it by about a pixel on each side); cloud puffs,
            # glint and slicks over water are about as wide as long
            continue
        if shape_resolved and edge_sharpness > 0 and \
                _edge_slope(lab, j + 1, obj_sl[j], z, water) < edge_sharpness:
            # soft-edged: a hull's outline is as sharp as the sensor's
            # blur; a cloud puff or haze fades in over tens of metres
            continue
        if at_shore[j] and mean_z[j] < k_high and not shape_resolved:
            # along the shore, the rim of blur and surf is bright: a hull
            # there must be bright over its whole body, not only at a peak.
            # Finer than BLOB_MIN_GSD_M the rim is told by its brightness
            # against the land beside it (shore_ramp) and its soft outline
            # (edge_sharpness) instead: a z-score level on the whole body
            # drops moored hulls under thin cloud or haze, whose contrast
            # is scaled down while the noise is not (demo archives at 3 m:
            # the 4 objects it dropped were all moored ships)
            continue
        fill = area[j] * gsd * gsd / max(rect.area, 1e-9)
        if fill < 0.25:
            continue
        s = 1.0 - math.exp(-max(peak[j] - k_low, 0.0) / k_high)
        sel_r.append(rect)
        props.append({"score": round(s, 4), "peak": round(float(peak[j]), 2),
                      "contrast": round(float(mean_z[j]), 2), "area_m2": round(float(area[j]) * gsd * gsd, 1)})
    return finish(sel_r, props)
