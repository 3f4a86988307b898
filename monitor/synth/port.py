"""Port scenes: water with waves and glint, quays on berth lines, ships of many sizes.

Ships are moored at berths (hull touching the quay fenders), rafted side by
side, at anchor in open water, plus small boats. Truth polygons are the
hull outlines (pointed bow) in the scene CRS.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
import shapely.affinity
from scipy import ndimage
from shapely.geometry import Polygon

from monitor.aoi import AOI, load_aoi
from monitor.errors import InputError
from monitor.synth import land
from monitor.synth.rail import scene_time
from monitor.synth.scene import SynthScene, TruthObject
from monitor.synth.texture import (Grid, block_mean, local_coords, periodic_coverage, rng_for, shadow_vector,
                                   smooth_noise, sun_position, white)

#: size class -> (length range m, beam/length ratio range)
SIZE_CLASSES = {"small": (6, 25), "medium": (25, 100), "large": (100, 200), "very_large": (200, 300)}
SHIP_KINDS = ("general_cargo", "bulk", "container", "tanker", "fishing", "tug", "boat")
HULL_COLOURS = [(0.28, 0.07, 0.05, 0.28), (0.05, 0.05, 0.055, 0.06), (0.06, 0.10, 0.20, 0.12),
                (0.08, 0.16, 0.10, 0.18), (0.30, 0.30, 0.30, 0.31), (0.18, 0.10, 0.06, 0.2)]
DECK_COLOURS = [(0.26, 0.10, 0.07, 0.26), (0.10, 0.18, 0.12, 0.20), (0.22, 0.22, 0.21, 0.24),
                (0.16, 0.09, 0.06, 0.18), (0.32, 0.30, 0.25, 0.33)]
WATER = (0.030, 0.050, 0.058, 0.012)


def size_class(length_m: float) -> str:
    for k, (a, b) in SIZE_CLASSES.items():
        if length_m < b:
            return k
    return "very_large"


def hull_polygon(cx, cy, heading, L, B) -> Polygon:
    """Hull outline: parallel mid-body, tapered bow (pointed, ~18% of L), rounded stern."""
    c, s = math.cos(heading), math.sin(heading)
    hb = B / 2
    bow = 0.18 * L
    pts = [(-L / 2, -hb * 0.8), (-L / 2 + 0.05 * L, -hb), (L / 2 - bow, -hb), (L / 2 - bow * 0.45, -hb * 0.75),
           (L / 2, 0.0), (L / 2 - bow * 0.45, hb * 0.75), (L / 2 - bow, hb), (-L / 2 + 0.05 * L, hb), (-L / 2, hb * 0.8)]
    return Polygon([(cx + u * c - v * s, cy + u * s + v * c) for u, v in pts])


def _ship_dims(rng, cls=None, length=None):
    if length is None:
        cls = cls or rng.choice(["small", "medium", "large", "very_large"], p=[0.45, 0.3, 0.2, 0.05])
        a, b = SIZE_CLASSES[cls]
        length = float(rng.uniform(a, b))
    length = float(length)
    beam = length * (rng.uniform(0.14, 0.19) if length > 60 else rng.uniform(0.22, 0.32))
    if length < 25:
        kind = rng.choice(["fishing", "boat", "tug"], p=[0.5, 0.35, 0.15])
    else:
        kind = rng.choice(["general_cargo", "bulk", "container", "tanker"], p=[0.45, 0.2, 0.2, 0.15])
    return length, beam, str(kind)


def _counts(rng, ships):
    if ships is None:
        return {"small": int(rng.integers(2, 8)), "medium": int(rng.integers(1, 5)), "large": int(rng.integers(0, 3))}
    if isinstance(ships, dict):
        return {k: int(v) for k, v in ships.items()}
    n = int(ships)
    small = int(round(n * 0.4))
    large = int(round(n * 0.25))
    return {"small": small, "medium": n - small - large, "large": large}


def _berth_sides(u: AOI, water):
    """For each berth: (line, water-side sign +1 left / -1 right, heading)."""
    out = []
    for f in u.berths:
        ln = f.geometry
        left = ln.buffer(30, single_sided=True)
        right = ln.buffer(-30, single_sided=True)
        wl = left.intersection(water).area
        wr = right.intersection(water).area
        out.append((f.id, ln, 1 if wl >= wr else -1))
    return out


def place_ships(u: AOI, counts: dict, rng, *, lengths=None):
    """Moor, raft and anchor ships on the AOI's water. Returns list of ship dicts, dropped count."""
    if not u.water:
        return [], sum(counts.values())
    water = shapely.union_all([f.geometry for f in u.water]).intersection(u.boundary)
    shapely.prepare(water)
    water_tol = water.buffer(3.0)
    shapely.prepare(water_tol)
    berths = _berth_sides(u, water)
    ships, polys, dropped = [], [], 0
    wanted = []
    for cls in ("very_large", "large", "medium", "small"):
        wanted += [cls] * int(counts.get(cls, 0))
    for L in (lengths or []):
        wanted.insert(0, float(L))

    def free(poly, gap=2.0):
        pb = poly.buffer(gap)
        return not any(pb.intersects(q) for q in polys)

    for want in wanted:
        L, B, kind = _ship_dims(rng, None if isinstance(want, float) else want, want if isinstance(want, float) else None)
        done = False
        mode_p = rng.random()
        modes = ["berth", "raft", "anchor"] if L >= 25 else ["anchor", "berth"]
        if L >= 25 and mode_p > 0.75:
            modes = ["anchor", "berth", "raft"]
        elif L >= 25 and mode_p > 0.55:
            modes = ["raft", "berth", "anchor"]
        for mode in modes:
            for _ in range(30):
                if mode == "berth" and berths:
                    bid, ln, side = berths[int(rng.integers(len(berths)))]
                    if ln.length < L * 0.6:
                        continue
                    s = rng.uniform(min(L / 2, ln.length / 2), max(ln.length - L / 2, ln.length / 2))
                    p1, p2 = shapely.line_interpolate_point(ln, [max(0, s - 5), min(ln.length, s + 5)])
                    hd = math.atan2(p2.y - p1.y, p2.x - p1.x)
                    c = ln.interpolate(s)
                    nx, ny = -math.sin(hd) * side, math.cos(hd) * side
                    d = B / 2 + rng.uniform(0.8, 2.0)
                    cx, cy = c.x + nx * d, c.y + ny * d
                    hd2 = hd + (math.pi if rng.random() < 0.5 else 0)
                    extra = {"berth": bid, "moored": "berth"}
                elif mode == "raft" and ships:
                    cand = [sh for sh in ships if sh["moored"] in ("berth", "raft") and sh["length"] >= 25]
                    if not cand:
                        break
                    o = cand[int(rng.integers(len(cand)))]
                    side = o["side_nx"], o["side_ny"]
                    d = o["width"] / 2 + B / 2 + rng.uniform(0.5, 1.5)
                    sh_ = rng.uniform(-0.25, 0.25) * o["length"]
                    cx = o["cx"] + side[0] * d + math.cos(o["heading"]) * sh_
                    cy = o["cy"] + side[1] * d + math.sin(o["heading"]) * sh_
                    hd2 = o["heading"] + (math.pi if rng.random() < 0.3 else 0)
                    nx, ny = side
                    extra = {"berth": o.get("berth"), "moored": "raft"}
                elif mode == "anchor":
                    minx, miny, maxx, maxy = water.bounds
                    cx, cy = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
                    hd2 = rng.uniform(0, 2 * math.pi)
                    nx, ny = 0.0, 0.0
                    extra = {"moored": "anchor" if L >= 25 else "underway"}
                else:
                    break
                poly = hull_polygon(cx, cy, hd2, L, B)
                if not water_tol.contains(poly):
                    continue
                if mode == "anchor" and not water.contains(poly.buffer(5)):
                    continue
                if not free(poly, 1.0 if mode == "raft" else 3.0):
                    continue
                ships.append(dict(cx=cx, cy=cy, heading=hd2, length=L, width=B, kind=kind, polygon=poly,
                                  side_nx=nx, side_ny=ny, **extra))
                polys.append(poly)
                done = True
                break
            if done:
                break
        if not done:
            dropped += 1
    return ships, dropped


def _dress_ships(ships, rng):
    for s in ships:
        s["hull"] = HULL_COLOURS[int(rng.integers(len(HULL_COLOURS)))]
        s["deck"] = DECK_COLOURS[int(rng.integers(len(DECK_COLOURS)))]
        s["super_pos"] = float(rng.uniform(0.12, 0.2)) if s["kind"] != "fishing" else float(rng.uniform(0.4, 0.6))
        s["super_len"] = float(rng.uniform(0.08, 0.14)) if s["length"] > 30 else float(rng.uniform(0.2, 0.3))
        s["height"] = 0.045 * s["length"] + rng.uniform(1.0, 3.0)   # freeboard
        s["super_h"] = min(35.0, 0.09 * s["length"] + rng.uniform(3, 6))
    return ships


def water_surface(grid, rng, water_mask, *, wind=None, psf_m: float = 0.0, fine_att: float = 1.0, add_to=None):
    """Wind waves, slicks, sun glint and a brighter shore line, as departures from the still-water colour.

    Returns ``(window, delta)``: the (row slice, col slice) of ``grid``
    holding the water of ``water_mask`` and ``delta`` (4, h, w) float32
    reflectance to add there (0 off the water). With ``add_to`` (a
    (4, H, W) array on ``grid``) the departures are added to it in place
    and ``delta`` is None (no full-size temporary). ``psf_m``: Gaussian blur
    (sigma, metres) applied analytically to the waves; ``fine_att``: the
    share of the fine texture's std left after blur and averaging. Waves
    are separable sinusoids, so the cost is a few array operations per
    water pixel.
    """
    rows = np.nonzero(water_mask.any(axis=1))[0]
    if rows.size == 0:
        return None, None
    cols = np.nonzero(water_mask.any(axis=0))[0]
    win = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    wm = water_mask[win]
    h, w = wm.shape
    g = grid.gsd
    wind = float(rng.uniform(1, 9)) if wind is None else wind
    wdir = rng.uniform(0, math.pi)
    x = (grid.x0 + (np.arange(win[1].start, win[1].stop) + 0.5) * g)
    y = (grid.y0 - (np.arange(win[0].start, win[0].stop) + 0.5) * g)
    k1 = 2 * math.pi / rng.uniform(6, 25)
    phase = rng.uniform(0, 6)
    slick = smooth_noise((h, w), max(2.0, 150 / g), rng)
    fine = white((h, w), rng)
    amp = 0.002 + 0.0012 * wind
    glint_level = float(np.clip(rng.normal(0.3, 0.2), 0, 1)) * (wind / 9)
    # calm near the shore
    f = max(1, int(8 / g))
    calm = ndimage.distance_transform_edt(wm[::f, ::f]).astype(np.float32) * np.float32(f * g)
    cidx = np.minimum(np.arange(w) // f, calm.shape[1] - 1)
    # sin(k (x cos d + y sin d) + p) = sin(kx cos d) cos(ky sin d + p) + cos(kx cos d) sin(ky sin d + p)
    waves = []
    for k, d, a, p in ((k1, wdir, 1.0, phase), (1.7 * k1, wdir + 0.5, 0.6, 0.0)):
        ax, ay = k * x * math.cos(d), k * y * math.sin(d) + p
        waves.append((np.sin(ax).astype(np.float32), np.cos(ax).astype(np.float32),
                      np.cos(ay).astype(np.float32), np.sin(ay).astype(np.float32),
                      np.float32(a), np.float32(a * math.exp(-0.5 * (psf_m * k) ** 2))))  # the PSF damps short waves
    delta = np.empty((4, h, w), np.float32) if add_to is None else None
    band_w = [(np.float32(WATER[i] * 0.12), np.float32(0.4 if i == 3 else 1), np.float32(0.3 if i == 3 else 1))
              for i in range(4)]
    for r0 in range(0, h, 64):  # row blocks: the temporaries stay in cache
        r1 = min(h, r0 + 64)
        raw = np.zeros((r1 - r0, w), np.float32)
        seen = np.zeros((r1 - r0, w), np.float32)
        for sx, cx, cy, sy, a, att in waves:
            t = np.outer(cy[r0:r1], sx)
            t += np.outer(sy[r0:r1], cx)
            raw += a * t
            seen += att * t
        fb = fine[r0:r1]
        rough = raw * np.float32(0.5) + fb * np.float32(0.8)
        dist = calm[np.minimum(np.arange(r0, r1) // f, calm.shape[0] - 1)][:, cidx]
        damp = np.clip(dist / np.float32(60.0), 0.3, 1.0)
        common = np.maximum(rough - np.float32(1.4), 0) * np.float32(0.12 * glint_level * fine_att)
        common *= damp
        common += np.float32(0.003 * fine_att) * fb
        seen *= np.float32(amp)
        seen *= damp
        shore = np.clip(1 - dist / np.float32(6.0), 0, 1) * np.float32(0.04)
        m = wm[r0:r1]
        d = np.empty((r1 - r0, w), np.float32)
        for i, (ws, wa, wsh) in enumerate(band_w):
            np.multiply(slick[r0:r1], ws, out=d)
            d += common
            d += wa * seen
            d += wsh * shore
            d *= m
            if add_to is None:
                delta[i, r0:r1] = d
            else:
                add_to[i, win[0].start + r0:win[0].start + r1, win[1]] += d
    return win, delta


def draw_water(refl, grid, rng, water_mask, sun_az, sun_el, *, wind=None):
    """Water colour, wind waves, sun glint and a brighter shore line (painted on ``refl`` where ``water_mask``)."""
    for i in range(4):
        refl[i][water_mask] = WATER[i]
    water_surface(grid, rng, water_mask, wind=wind, add_to=refl)


def draw_quays(refl, grid, rng, u, berths, water):
    """Concrete quay aprons on the land side of each berth line, with container stacks."""
    aprons = []
    for bid, ln, side in berths:
        width = float(rng.uniform(20, 45))
        apron = ln.buffer(-side * width, single_sided=True)
        aprons.append(apron)
    if not aprons:
        return None
    ap = shapely.union_all(aprons)
    land.paint_surface(refl, grid, rng, ap, land.C["concrete"], 0.05)
    # quay edge: a dark fender line along the berth
    edge = shapely.union_all([ln.buffer(0.6) for _, ln, _ in berths])
    land.paint_surface(refl, grid, rng, edge, (0.09, 0.09, 0.09, 0.1), 0.05)
    return ap


def draw_containers(refl, grid, rng, region, avoid, heading, sun_az, sun_el, n_max=30, shadows: bool = True):
    """Blocks of stacked containers (rows of 2.44 m x 6.06/12.19 m boxes).

    Returns the stacks as (polygon, height_m) shadow casters; their shadows
    are drawn here unless ``shadows`` is False (see :func:`monitor.synth.land.cast_shadows`).
    """
    boxes = land.place_boxes(rng, region, avoid, heading, n_try=150, n_max=n_max, size_range=(20, 70), gap=6)
    if not boxes:
        return []
    casters = [(b[0], float(rng.uniform(2.6, 10.4))) for b in boxes]
    if shadows:
        land.draw_shadows(refl, grid, casters, sun_az, sun_el)
    ids = land.rasterize(grid, [(b[0], i + 1) for i, b in enumerate(boxes)], dtype="int32")
    r, c = np.nonzero(ids)
    if r.size == 0:
        return casters
    k = ids[r, c] - 1
    cx = np.array([b[1] for b in boxes])[k]
    cy = np.array([b[2] for b in boxes])[k]
    hd = np.array([b[3] for b in boxes])[k]
    uu, vv = local_coords(grid, r, c, cx, cy, hd)
    from monitor.synth.rail import CONTAINERS
    pal = np.array(CONTAINERS, np.float32)
    cell_u = np.floor(uu / 12.3).astype(np.int64)
    cell_v = np.floor(vv / 2.6).astype(np.int64)
    hsh = (cell_u * 73856093 ^ cell_v * 19349663 ^ k * 83492791) % 1000003
    col = pal[hsh % len(pal)]
    gap = (periodic_coverage(uu, 12.3, 0.3, grid.gsd) > 0.4) | (periodic_coverage(vv, 2.6, 0.15, grid.gsd) > 0.4)
    f = np.where(gap, 0.5, 1.0) * (0.85 + 0.3 * ((hsh // 7) % 5) / 4)
    for i in range(4):
        refl[i, r, c] = col[:, i] * f
    return casters


def draw_ships(refl, grid, rng, ships, sun_az, sun_el):
    if not ships:
        return
    land.draw_shadows(refl, grid, [(s["polygon"], s["height"]) for s in ships], sun_az, sun_el, strength=0.45)
    ids = land.rasterize(grid, [(s["polygon"], i + 1) for i, s in enumerate(ships)], dtype="int32")
    r, c = np.nonzero(ids)
    if r.size == 0:
        return
    k = ids[r, c] - 1
    A = {key: np.array([s[key] for s in ships], float) for key in ("cx", "cy", "heading", "length", "width", "super_pos", "super_len")}
    u, v = local_coords(grid, r, c, A["cx"][k], A["cy"][k], A["heading"][k])
    L, B = A["length"][k], A["width"][k]
    un = u / L + 0.5  # 0 stern .. 1 bow
    hull = np.array([s["hull"] for s in ships], np.float32)[k]
    deck = np.array([s["deck"] for s in ships], np.float32)[k]
    kind = np.array([s["kind"] for s in ships])[k]
    col = deck.copy()
    f = np.ones(r.size, np.float32)
    # gunwale / hull edge
    edge = (np.abs(v) > B / 2 - np.maximum(0.5, 0.04 * B)) | (un > 0.93)
    col[edge] = hull[edge]
    # hatches for cargo / bulk ships
    cargo = np.isin(kind, ["general_cargo", "bulk"]) & (un > A["super_pos"][k] + A["super_len"][k] + 0.03) & (un < 0.84) & (np.abs(v) < B * 0.36)
    hatch_len = np.maximum(L * 0.09, 8)
    seam = (np.mod(u, hatch_len) < np.maximum(1.2, 0.12 * hatch_len))
    col[cargo] = np.array((0.20, 0.11, 0.07, 0.22), np.float32) * 1.0
    f[cargo & seam] *= 0.55
    # container ships: coloured stacks
    cont = (kind == "container") & (un > 0.2) & (un < 0.86) & (np.abs(v) < B * 0.43)
    from monitor.synth.rail import CONTAINERS
    pal = np.array(CONTAINERS, np.float32)
    hsh = (np.floor(u / 6.3).astype(np.int64) * 73856093 ^ np.floor(v / 2.5).astype(np.int64) * 19349663 ^ k) % 1000003
    col[cont] = pal[hsh[cont] % len(pal)]
    # tankers: pipe line along the centre
    tank = (kind == "tanker") & (np.abs(v) < 0.6) & (un > 0.25) & (un < 0.9)
    col[tank] = (0.35, 0.35, 0.33, 0.36)
    # superstructure (bright), wheelhouse roof
    sup = (un > A["super_pos"][k]) & (un < A["super_pos"][k] + A["super_len"][k]) & (np.abs(v) < B * 0.42)
    col[sup] = (0.55, 0.55, 0.53, 0.55)
    sa = math.radians(sun_az)
    sun_across = (-np.sin(A["heading"]) * math.sin(sa) + np.cos(A["heading"]) * math.cos(sa))[k]
    f[sup & (v * sun_across < 0)] *= 0.8
    small = L < 25
    col[small & ~edge] = np.array((0.42, 0.42, 0.42, 0.42), np.float32)
    fine = rng.standard_normal(r.size).astype(np.float32)
    for i in range(4):
        refl[i, r, c] = col[:, i] * f * (1 + 0.04 * fine)


def render_port_scene(aoi, *, gsd_m: float = 1.0, when=None, seed: int = 0, ships=None, lengths=None,
                      sensor: str = "optical", looks: int = 4, cloud: float = 0.0, haze: float | None = None,
                      dtype: str = "uint16", margin_m: float = 40.0, psf_px: float | None = None,
                      noise: float = 0.004, wind_ms: float | None = None,
                      static_seed: int | None = None, snow: bool | None = None) -> SynthScene:
    """Render a port ``aoi`` with ships on its water.

    ``ships``: a total count, a dict by size class (``{"small": 4,
    "medium": 2, "large": 1}``) or ``None`` (random). ``lengths``: extra
    ships of exactly these lengths in metres (placed first, e.g. the
    100-135 m shuttles). ``sensor="sar"`` gives linear sigma0 with
    ``looks``-look gamma speckle (GSD 3-20 m). Truth: one hull polygon per
    ship in the scene CRS, ``type`` = size class. ``static_seed``: as in
    :func:`monitor.synth.rail.render_rail_scene` (fixed, cached scenery).
    ``snow``: snow on the land (``None``: drawn from the month's odds).
    """
    aoi = load_aoi(aoi)
    if gsd_m <= 0:
        raise InputError(f"gsd_m={gsd_m}", "pixel size must be positive")
    if sensor not in ("optical", "sar"):
        raise InputError(f"sensor={sensor}", "sensor must be 'optical' or 'sar'")
    when = scene_time(aoi, when)
    rng = rng_for(seed, aoi.id, "port", when.isoformat(), sensor)
    u = aoi.to_crs()
    counts = _counts(rng, ships)
    placed, dropped = place_ships(u, counts, rng, lengths=lengths)
    placed = _dress_ships(placed, rng)
    out_grid = Grid.around(u.boundary.bounds, gsd_m, margin_m)
    ll = aoi.to_crs("EPSG:4326").boundary.centroid
    sun_az, sun_el = sun_position(when, ll.y, ll.x)
    truth = [TruthObject("vessel", size_class(s["length"]), s["polygon"], s["length"], s["width"],
                         (90 - math.degrees(s["heading"])) % 360,
                         props={"ship_type": s["kind"], "moored": s["moored"], "berth": s.get("berth")})
             for s in placed]
    req = dict(counts)
    if lengths:
        req["exact_lengths"] = [float(x) for x in lengths]
    meta = {"seed": seed, "requested": req, "placed": {k: sum(1 for t in truth if t.type == k) for k in SIZE_CLASSES},
            "dropped": dropped, "sun_azimuth": round(sun_az, 2), "sun_elevation": round(sun_el, 2)}
    water = shapely.union_all([f.geometry for f in u.water]) if u.water else Polygon()
    if sensor == "sar":
        from monitor.synth.sar import render_sar
        bands = render_sar(out_grid, u, rng, objects=[(s["polygon"], s["super_h"]) for s in placed],
                           water=water, looks=looks, wind=wind_ms)
        meta.update(looks=looks)
        return SynthScene(bands, ("vv",), out_grid.transform, u.utm_crs, when, "sar", truth, aoi, gsd_m, meta)
    grid, ss, green, snow, sseed, psf = land.optical_setup(out_grid, gsd_m, when, rng, snow=snow, seed=seed,
                                                           static_seed=static_seed, aoi_id=aoi.id, psf_px=psf_px)

    def build():
        srng = rng_for(sseed, aoi.id, "static", gsd_m)
        refl = land.ground(grid, rng_for(sseed, aoi.id, "ground", gsd_m), when.month, snow)
        berths = _berth_sides(u, water)
        # port land is mostly paved
        port_land = u.boundary.difference(water).buffer(-5)
        wm = land.rasterize(grid, [(water, 1)]).astype(bool)
        ap = draw_quays(refl, grid, srng, u, berths, water)
        avoid = water.buffer(15)
        for f in u.yards:
            land.paint_surface(refl, grid, srng, f.geometry, land.C["concrete"], 0.06)
        heading = 0.0
        if berths:
            b = berths[0][1]
            (x0, y0), (x1, y1) = b.coords[0], b.coords[-1]
            heading = math.atan2(y1 - y0, x1 - x0)
        casters = []
        if ap is not None:
            casters += draw_containers(refl, grid, srng, ap.buffer(-3), avoid, heading, *land.ROOF_SUN, n_max=20,
                                       shadows=False)
        boxes = land.place_boxes(srng, port_land, avoid.union(ap.buffer(3) if ap is not None else Polygon()), heading,
                                 n_try=300, n_max=max(5, int(port_land.area / 60000)), size_range=(12, 70))
        heights = land.draw_buildings(refl, grid, srng, boxes, *land.ROOF_SUN, shadows=False)
        casters += [(b[0], float(hgt)) for b, hgt in zip(boxes, heights)]
        if ap is not None:
            ar, ac = land.pixels_in(grid, ap)
            wm[ar, ac] = False
        for i in range(4):  # still water: the blur then mixes shore pixels right
            refl[i][wm] = WATER[i]
        wm_out = block_mean(wm[None].astype(np.float32), ss)[0] > 0.5
        wm_out.flags.writeable = False
        return land.make_scenery(grid, out_grid, ss, psf, refl, casters=casters, water=wm_out)

    cached = static_seed is not None
    scenery = land.cached_static(("port", aoi.id, aoi.source, gsd_m, margin_m, green, bool(snow), sseed, psf),
                                 build, cached)
    # moving parts: ships with their shadows (in windows), then the water surface of this pass
    extents = [_ship_extent(s_, sun_az, sun_el) for s_ in placed]
    refl = land.compose(scenery, extents, lambda win, sub, idx: draw_ships(win, sub, rng, [placed[i] for i in idx],
                                                                           sun_az, sun_el), copy=cached)
    wm = scenery.extra["water"]
    if placed:
        wm = wm & ~land.rasterize(out_grid, [(s_["polygon"], 1) for s_ in placed]).astype(bool)
    water_surface(out_grid, rng, wm, wind=wind_ms, psf_m=psf * gsd_m * (1 + (ss > 1) * 0.25),
                  fine_att=min(1.0, 1 / (2 * math.sqrt(math.pi) * max(psf, 1e-3))) / ss, add_to=refl)
    land.cast_shadows(refl, out_grid, scenery.extra["casters"], sun_az, sun_el)
    bands, sensor_meta = land.finish_optical(refl, out_grid, rng, haze=haze, haze_max=0.3, cloud=cloud,
                                             sun_az=sun_az, sun_el=sun_el, psf_px=psf, noise=noise, dtype=dtype)
    meta.update(sensor_meta)
    return SynthScene(bands, land.ROLES4, out_grid.transform, u.utm_crs, when, "optical", truth, aoi, gsd_m, meta)


def _water_extent(scenery):
    """Map bounds of the water pixels of the scenery (None without water)."""
    wm = scenery.extra["water"]
    rows = np.nonzero(wm.any(axis=1))[0]
    if rows.size == 0:
        return None
    cols = np.nonzero(wm.any(axis=0))[0]
    g = scenery.grid
    return (g.x0 + cols[0] * g.gsd, g.y0 - (rows[-1] + 1) * g.gsd, g.x0 + (cols[-1] + 1) * g.gsd, g.y0 - rows[0] * g.gsd)


def _ship_extent(ship, sun_az, sun_el):
    minx, miny, maxx, maxy = ship["polygon"].bounds
    dx, dy = shadow_vector(sun_az, sun_el, ship["height"])
    return (min(minx, minx + dx), min(miny, miny + dy), max(maxx, maxx + dx), max(maxy, maxy + dy))
