"""Water masks for port chips: from AOI polygons, from the image, or both.

Every mask is a bool array on the chip grid (True = water). Lengths are in
metres of the chip CRS; they are turned into pixels with ``chip.gsd_m``.

- :func:`polygon_water` rasterises the AOI's water polygons (chip CRS) and
  adds a thin band along each berth line, so hulls that overlap the quay
  face by a few pixels still sit "in" the water.
- :func:`image_water` classifies water from the pixels: NDWI (green, NIR)
  for optical chips with NIR, dark-and-smooth brightness without NIR, and
  dark log-backscatter for SAR. Ship-sized holes are filled, so a vessel
  inside the water stays water; on SAR chips thin land-like protrusions
  (moored hulls) are given back to the water; wide land stays land.
- :func:`water_mask` picks and combines them for a chip.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

#: Largest vessel the masks must not cut out of the water (metres).
MAX_SHIP_LENGTH_M = 400.0
MAX_SHIP_WIDTH_M = 60.0
#: NDWI (green - nir) / (green + nir) above which a pixel is water
#: (McFeeters 1996). On the sen2ships ports this fixed value beat Otsu and
#: histogram-valley thresholds, which split clear from turbid/rough water.
NDWI_THRESHOLD = 0.0
#: A land piece given back to the water as a moored hull touches wide land
#: along at least this share of its length (a pier touches it at one end).
MIN_QUAY_CONTACT = 0.4
#: Smallest body of image water kept (m^2): a harbour basin or a river
#: reach is larger; smaller "water" on land is blue roofs, pools, shadows.
MIN_WATER_M2 = 0.05e6


def open_disk(mask: np.ndarray, r: float) -> np.ndarray:
    """Morphological opening of ``mask`` by a square of half-width ``r``
    pixels (a chessboard-distance "disk"), with distance transforms so that
    the cost does not grow with ``r``."""
    if not mask.any():
        return mask.copy()
    if mask.all():
        return mask.copy()
    core = ndi.distance_transform_cdt(mask, metric="chessboard") > r
    if not core.any():
        return core
    return ndi.distance_transform_cdt(~core, metric="chessboard") <= r


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu threshold of a 1-D sample (NaNs dropped)."""
    v = values[np.isfinite(values)]
    if v.size < 2 or v.min() == v.max():
        return float(v.mean()) if v.size else 0.0
    hist, edges = np.histogram(v, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centers[int(np.argmax(between[:-1]))])


def water_threshold(values: np.ndarray, bins: int = 200) -> float:
    """Threshold below the water mode of an index where water is high.

    Water is homogeneous: it makes a narrow peak at the high end of a
    water index (NDWI, or minus log brightness). The threshold is the
    histogram valley between the highest significant peak and the next
    peak below it; Otsu's threshold when the histogram has one peak.
    """
    from scipy.signal import find_peaks

    v = values[np.isfinite(values)]
    if v.size < 100:
        return _otsu(v)
    lo, hi = np.percentile(v, [0.5, 99.9])
    if hi <= lo:
        return float(lo)
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    hs = ndi.gaussian_filter1d(hist.astype(float), 2.5, mode="constant")
    peaks, _ = find_peaks(hs, prominence=0.04 * hs.max())
    peaks = [p for p in peaks if hs[p] >= 0.08 * hs.max()]
    if len(peaks) < 2:
        return _otsu(v)
    top, below = peaks[-1], peaks[-2]
    valley = below + int(np.argmin(hs[below:top + 1]))
    return float(centers[valley])


def two_class_threshold(values: np.ndarray, min_separation: float = 3.0) -> float | None:
    """Otsu threshold of ``values`` when it separates two distinct classes
    (Fisher ratio (mu1 - mu0)^2 / (var0 + var1) >= ``min_separation``),
    else None: the sample is one class."""
    v = values[np.isfinite(values)]
    if v.size < 20:
        return None
    t = _otsu(v)
    a, b = v[v <= t], v[v > t]
    if a.size < 5 or b.size < 5:
        return None
    f = (b.mean() - a.mean()) ** 2 / max(a.var() + b.var(), 1e-12)
    return t if f >= min_separation else None


def _sample(a: np.ndarray, mask: np.ndarray, n: int = 400_000) -> np.ndarray:
    v = a[mask]
    if v.size > n:
        v = v[:: v.size // n + 1]
    return v


def polygon_water(chip, berth_buffer_m: float | None = None) -> np.ndarray | None:
    """Rasterised AOI water polygons plus a band along the berths, or None.

    ``berth_buffer_m``: half-width of the band added along each berth line
    (default 1.5 pixels + 5 m).
    """
    from rasterio.features import rasterize

    aoi = chip.local_aoi
    polys = [f.geometry for f in aoi.water]
    if not polys:
        return None
    h, w = chip.shape
    shapes = [(g, 1) for g in polys]
    buf = 0.0 if berth_buffer_m is None else berth_buffer_m
    if buf > 0:
        shapes += [(f.geometry.buffer(buf), 1) for f in aoi.berths]
    m = rasterize(shapes, out_shape=(h, w), transform=chip.transform, fill=0, dtype="uint8",
                  all_touched=False)
    return m.astype(bool)


def _fill_ship_holes(water: np.ndarray, gsd_m: float) -> np.ndarray:
    """Fill the holes of the water that could be a hull: up to twice the
    largest hull area, and no wider or longer (second moments) than the
    largest hull plus two pixels of blur. Wider holes are islets, rocks,
    pontoon clusters; longer ones detached breakwaters and moles: they
    stay land."""
    max_px = int(2 * MAX_SHIP_LENGTH_M * MAX_SHIP_WIDTH_M / gsd_m**2) + 4
    lab, n = ndi.label(~water)
    if n == 0:
        return water
    border = np.zeros(n + 1, bool)
    for edge in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
        border[edge] = True
    border[0] = True
    length, width, cnt = piece_shapes(lab, n)
    hole = ~border & (cnt <= max_px) & (width * gsd_m <= MAX_SHIP_WIDTH_M + 2 * gsd_m) & \
        (length * gsd_m <= MAX_SHIP_LENGTH_M + 2 * gsd_m)
    return water | hole[lab]


def piece_shapes(lab: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(length, width, pixel count) of labels 0..n, in pixels, from second
    moments (a filled L x W rectangle has variances L^2/12 and W^2/12)."""
    rr, cc = np.nonzero(lab)
    lv = lab[rr, cc]
    cnt = np.bincount(lv, minlength=n + 1).astype(float)
    c1 = np.maximum(cnt, 1)
    my, mx = np.bincount(lv, rr, n + 1) / c1, np.bincount(lv, cc, n + 1) / c1
    syy = np.bincount(lv, rr.astype(float) ** 2, n + 1) / c1 - my**2
    sxx = np.bincount(lv, cc.astype(float) ** 2, n + 1) / c1 - mx**2
    sxy = np.bincount(lv, rr.astype(float) * cc, n + 1) / c1 - my * mx
    tr, det = syy + sxx, syy * sxx - sxy**2
    disc = np.sqrt(np.maximum(tr**2 / 4 - det, 0))
    length = np.sqrt(12 * np.maximum(tr / 2 + disc, 0)) + 1
    width = np.sqrt(12 * np.maximum(tr / 2 - disc, 0)) + 1
    return length, width, cnt


def _give_back_thin_land(water: np.ndarray, land_ok: np.ndarray, gsd_m: float) -> np.ndarray:
    """Water plus land structures thinner than a hull that touch the water.

    A moored hull looks like a narrow peninsula of "land" sticking into
    the water; a morphological opening of the land with a disk wider than
    the widest hull removes it (and keeps wide land). Only hull-shaped
    pieces are given back: longer than 1.5 times their width, at most
    :data:`MAX_SHIP_LENGTH_M` by :data:`MAX_SHIP_WIDTH_M`, and compact.
    """
    r = max(1, int(np.ceil(MAX_SHIP_WIDTH_M / gsd_m)))
    land = ~water & land_ok
    # pad by edge values so land cut by the chip border is not "thin"
    wide = open_disk(np.pad(land, r + 1, mode="edge"), r)[r + 1:-r - 1, r + 1:-r - 1]
    thin = land & ~wide
    if not thin.any():
        return water
    lab, n = ndi.label(thin, structure=np.ones((3, 3), bool))
    if n == 0:
        return water
    touch = np.zeros(n + 1, bool)
    near = ndi.binary_dilation(water, structure=np.ones((3, 3), bool))
    touch[np.unique(lab[near & thin])] = True
    # hull-shaped pieces only: length and width from the second moments, compact
    length, width, cnt = piece_shapes(lab, n)
    fill = cnt / np.maximum(length * width, 1)
    # a moored hull lies along the quay (it touches wide land along much of
    # its length); a pier or mole sticks out of the land (touches it at one
    # end only). Contact: piece pixels next to wide land, per unit length.
    by_wide = ndi.binary_dilation(wide, structure=np.ones((3, 3), bool))
    contact = np.bincount(lab[thin], by_wide[thin].astype(float), n + 1)
    side = contact >= MIN_QUAY_CONTACT * length
    keep = side & (touch & (length * gsd_m <= MAX_SHIP_LENGTH_M) & (width * gsd_m <= MAX_SHIP_WIDTH_M + gsd_m)
            & (fill >= 0.6) & (length >= 1.5 * width))
    keep[0] = False
    return water | keep[lab]


def image_water(chip, bands: dict[str, np.ndarray] | None = None, ndwi_threshold: float = NDWI_THRESHOLD) -> np.ndarray:
    """Water classified from the chip's own pixels (bool, chip grid).

    Optical with green and NIR: NDWI = (green - nir) / (green + nir) above
    ``ndwi_threshold`` (a ~10 m mean on pixels finer than 5 m). Optical without NIR: dark
    and smooth pixels (Otsu on log brightness, local texture below its
    median on land). SAR: Otsu on the smoothed log backscatter. Holes up to
    ship size are filled, small water specks on land are dropped; on SAR
    chips hull-shaped land pieces along a quay are given back to the water.
    """
    valid = chip.valid
    gsd = float(chip.gsd_m)
    get = (lambda r: bands.get(r)) if bands is not None else chip.band
    if chip.sensor == "sar":
        x = get("vv")
        if x is None:
            x = get("vh")
        if x is None:
            x = chip.bands[0]
        lx = np.log(np.maximum(x, 1e-6)).astype(np.float32)
        k = max(3, int(round(30.0 / gsd)) | 1)
        lx = ndi.uniform_filter(np.where(valid, lx, np.nanmedian(lx[valid]) if valid.any() else 0), k)
        t = two_class_threshold(_sample(lx, valid))
        if t is None:  # one class: water when darker than -13 dB
            t = np.inf if float(np.median(lx[valid])) < math.log(0.05) else -np.inf
        water = (lx < t) & valid
    else:
        g, n = get("green"), get("nir")
        if g is not None and n is not None:
            ndwi = (g - n) / np.maximum(g + n, 1e-6)
            # smoothed over ~10 m on fine pixels (texture, glint); at >= 5 m
            # a pixel is already as wide as a small hull, and a mean would
            # spread water a pixel into piers, quays and moored hulls
            k = 1 if gsd >= 5 else max(3, int(round(10.0 / gsd)) | 1)
            ndwi_s = ndi.uniform_filter(np.where(valid, ndwi, 0).astype(np.float32), k) if k > 1 else \
                np.where(valid, ndwi, 0).astype(np.float32)
            water = (ndwi_s > ndwi_threshold) & valid
        else:
            rgb = [get(r) for r in ("red", "green", "blue")]
            rgb = [b for b in rgb if b is not None]
            gray = np.mean(rgb, axis=0) if rgb else chip.gray()
            lg = np.log(np.maximum(gray, 1e-6)).astype(np.float32)
            k = max(3, int(round(30.0 / gsd)) | 1)
            fill = float(np.median(lg[valid])) if valid.any() else 0.0
            lgv = np.where(valid, lg, fill)
            mean = ndi.uniform_filter(lgv, k)
            sq = ndi.uniform_filter(lgv * lgv, k)
            tex = np.sqrt(np.maximum(sq - mean * mean, 0))
            t = -water_threshold(-_sample(mean, valid))
            dark = (mean < t) & valid
            tt = float(np.median(tex[~dark & valid])) if (~dark & valid).any() else np.inf
            water = dark & (tex < max(tt, 1e-6))
    # tidy: drop small water specks on land, fill ship-sized holes
    water = ndi.binary_opening(water, structure=np.ones((3, 3), bool)) if gsd < 5 else water
    min_water_px = max(50, int(MIN_WATER_M2 / gsd**2))
    lab, nl = ndi.label(water)
    if nl:
        sizes = np.bincount(lab.ravel())
        big = sizes >= min_water_px
        big[0] = False
        water = big[lab]
    water = _fill_ship_holes(water, gsd)
    if chip.sensor == "sar":
        # on optical imagery hull-shaped land along a quay is mostly quay
        # (concrete aprons, pier heads, roofs: on the sen2ships ports 77 such
        # pieces against 16 hulls); the optical detector finds moored hulls
        # by their colour instead (monitor.detect.vessels.moored_hulls)
        water = _give_back_thin_land(water, valid, gsd)
    return water


def water_mask(chip, bands: dict[str, np.ndarray] | None = None,
               ndwi_threshold: float = NDWI_THRESHOLD) -> tuple[np.ndarray, str]:
    """The chip's water mask and where it came from (``"aoi"``,
    ``"aoi+ndwi"``, ``"image"``).

    AOI polygons come first; with NIR they are refined by removing land
    (from NDWI) wider than any hull, so a sloppy polygon over a pier does
    not make the pier a ship while moored hulls stay inside.
    """
    poly = polygon_water(chip)
    if poly is None:
        return image_water(chip, bands, ndwi_threshold), "image"
    get = (lambda r: bands.get(r)) if bands is not None else chip.band
    if chip.sensor != "sar" and get("green") is not None and get("nir") is not None:
        g, n = get("green"), get("nir")
        ndwi = (g - n) / np.maximum(g + n, 1e-6)
        inside = poly & chip.valid
        if inside.sum() > 100 and (~poly & chip.valid).sum() > 100:
            land = (ndwi <= ndwi_threshold) & inside
            r = max(1, int(np.ceil(MAX_SHIP_WIDTH_M / 2.0 / chip.gsd_m)))
            wide_land = open_disk(land, r)
            # keep only wide land bodies that are bigger than any hull
            lab, nl = ndi.label(wide_land)
            if nl:
                sizes = np.bincount(lab.ravel())
                big = sizes > 2 * MAX_SHIP_LENGTH_M * MAX_SHIP_WIDTH_M / chip.gsd_m**2
                big[0] = False
                if big.any():
                    return poly & ~big[lab], "aoi+ndwi"
        return poly, "aoi+ndwi"
    return poly, "aoi"

