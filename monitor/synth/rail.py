"""Optical rail-yard scenes: ballast, rails at gauge, sleepers, trains of 1520 mm cars.

Car sizes are length over couplers (m) of common Russian-gauge (1520 mm)
types; the visible body is shorter by the coupler gap (0.6-1.2 m), so the
gaps between coupled cars show at sub-metre GSD.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon

from monitor.aoi import AOI, load_aoi
from monitor.errors import InputError
from monitor.synth import land
from monitor.synth.scene import SynthScene, TruthObject
from monitor.synth.texture import (Grid, box_coverage,
                                   local_coords, local_overpass, oriented_rect, periodic_coverage,
                                   rng_for, shadow_vector, sun_position)

#: type -> (length over couplers m, body width m, height above rail m)
CAR_SPECS = {
    "gondola": (13.92, 3.13, 3.48),
    "tank": (12.02, 3.04, 4.70),
    "boxcar": (14.73, 3.20, 4.70),
    "flat": (19.62, 3.16, 1.35),
    "locomotive": (None, 3.25, 5.10),
}
CAR_TYPES = ("gondola", "tank", "boxcar", "flat", "locomotive")
LOCO_LENGTHS = (18.2, 20.0, 34.0)
GAUGE_M = 1.520
RAIL_HEAD_M = 0.073

CAR_COLOURS = {
    "rust": (0.20, 0.10, 0.06, 0.22), "brown": (0.12, 0.075, 0.05, 0.15), "grey": (0.22, 0.22, 0.22, 0.24),
    "black": (0.04, 0.04, 0.042, 0.05), "green": (0.08, 0.14, 0.09, 0.18), "blue": (0.06, 0.09, 0.16, 0.12),
    "red": (0.28, 0.07, 0.05, 0.28), "light": (0.36, 0.36, 0.35, 0.37),
}
PALETTE = {
    "gondola": (("rust", 0.45), ("brown", 0.25), ("grey", 0.2), ("green", 0.1)),
    "tank": (("black", 0.6), ("grey", 0.2), ("light", 0.1), ("green", 0.1)),
    "boxcar": (("brown", 0.35), ("rust", 0.25), ("grey", 0.25), ("green", 0.1), ("blue", 0.05)),
    "flat": (("brown", 0.5), ("grey", 0.3), ("black", 0.2)),
    "locomotive": (("green", 0.4), ("red", 0.25), ("blue", 0.15), ("grey", 0.2)),
}
LOADS = {
    "coal": (0.035, 0.035, 0.037, 0.045), "ore": (0.17, 0.10, 0.07, 0.20),
    "tarp_green": (0.08, 0.12, 0.08, 0.22), "tarp_blue": (0.08, 0.13, 0.25, 0.20),
    "tarp_grey": (0.26, 0.26, 0.25, 0.28),
}
CONTAINERS = [(0.07, 0.12, 0.28, 0.15), (0.32, 0.08, 0.06, 0.32), (0.45, 0.45, 0.44, 0.46),
              (0.20, 0.20, 0.20, 0.22), (0.10, 0.20, 0.12, 0.22), (0.18, 0.08, 0.07, 0.20),
              (0.40, 0.30, 0.08, 0.40)]
TYPE_CODE = {t: i for i, t in enumerate(CAR_TYPES)}


def _pick(rng, choices):
    names, w = zip(*choices)
    w = np.asarray(w, float)
    return names[rng.choice(len(names), p=w / w.sum())]


def _track_lines(aoi_u: AOI) -> list[tuple[str, LineString]]:
    out = [(f.id, f.geometry) for f in aoi_u.tracks + aoi_u.bridges if f.geometry.length > 20]
    return out


def track_capacity(aoi: AOI, car_length: float = 14.0) -> int:
    """How many cars of ``car_length`` m fit on the AOI's tracks (ignoring overlaps at switches)."""
    u = aoi.to_crs()
    return int(sum(max(0.0, line.length - 16) // car_length for _, line in _track_lines(u)))


# ---------------------------------------------------------------------------
# trains
# ---------------------------------------------------------------------------

def make_consists(counts: dict, rng) -> list[list[str]]:
    """Split car counts by type into trains: blocks of one type, a locomotive in front."""
    blocks = []
    for t in ("gondola", "tank", "boxcar", "flat"):
        n = int(counts.get(t, 0))
        while n > 0:
            k = int(min(n, rng.integers(3, 26)))
            blocks.append([t] * k)
            n -= k
    order = rng.permutation(len(blocks))
    blocks = [blocks[i] for i in order]
    trains, cur, target = [], [], int(rng.integers(8, 50))
    for b in blocks:
        cur += b
        if len(cur) >= target:
            trains.append(cur)
            cur, target = [], int(rng.integers(8, 50))
    if cur:
        trains.append(cur)
    locos = int(counts.get("locomotive", 0))
    for tr in trains:
        if locos <= 0:
            break
        if rng.random() < 0.7:
            tr.insert(0, "locomotive")
            locos -= 1
    while locos > 0:  # light engines
        k = int(min(locos, rng.integers(1, 3)))
        trains.append(["locomotive"] * k)
        locos -= k
    return trains


def _car_dims(t, rng):
    if t == "locomotive":
        Lc = float(rng.choice(LOCO_LENGTHS))
    else:
        Lc = CAR_SPECS[t][0] * rng.uniform(0.99, 1.01)
    gap = rng.uniform(0.6, 1.2)
    return Lc, Lc - gap, CAR_SPECS[t][1], CAR_SPECS[t][2]


def place_trains(aoi_u: AOI, trains, rng, *, end_margin=8.0):
    """Put trains on random tracks along the centreline (curves included).

    Each car sits on its two bogie points on the track; its body is the
    chord between them. Cars never overlap each other (switches) and stay
    inside the boundary. Returns (cars, dropped): cars are dicts.
    """
    lines = _track_lines(aoi_u)
    if not lines:
        return [], sum(len(t) for t in trains)
    inside = aoi_u.boundary.buffer(0.5)
    shapely.prepare(inside)
    occupied = {tid: [] for tid, _ in lines}
    lengths = np.array([ln.length for _, ln in lines])
    tree_polys: list[Polygon] = []
    cars, dropped = [], 0
    queue = [list(t) for t in trains]
    while queue:
        tr = queue.pop(0)
        dims = [_car_dims(t, rng) for t in tr]
        total = sum(d[0] for d in dims)
        ok = False
        for _attempt in range(25):
            free = lengths - 2 * end_margin - total
            cand = np.nonzero(free > 0)[0]
            if cand.size == 0:
                break
            i = int(rng.choice(cand, p=free[cand] / free[cand].sum()))
            tid, line = lines[i]
            s0 = rng.uniform(end_margin, end_margin + free[i])
            if any(not (s0 + total + 2 < a or s0 > b + 2) for a, b in occupied[tid]):
                continue
            new = []
            s = s0
            for t, (Lc, Lb, W, H) in zip(tr, dims):
                mid = s + Lc / 2
                half = 0.35 * Lc
                p1, p2 = shapely.line_interpolate_point(line, [mid - half, mid + half])
                cx, cy = (p1.x + p2.x) / 2, (p1.y + p2.y) / 2
                hd = math.atan2(p2.y - p1.y, p2.x - p1.x)
                poly = Polygon(oriented_rect(cx, cy, hd, Lb, W))
                new.append(dict(type=t, track=tid, cx=cx, cy=cy, heading=hd, length=Lb, width=W,
                                height=H, polygon=poly, s=mid))
                s += Lc
            if tree_polys:
                tree = shapely.STRtree(tree_polys)
                hits = tree.query([c["polygon"] for c in new], predicate="intersects")
                if hits.size:
                    continue
            if not all(inside.contains(c["polygon"]) for c in new):
                continue
            occupied[tid].append((s0, s0 + total))
            cars += new
            tree_polys += [c["polygon"] for c in new]
            ok = True
            break
        if not ok:
            if len(tr) > 1:
                h = len(tr) // 2
                queue += [tr[:h], tr[h:]]
            else:
                dropped += 1
    return cars, dropped


# ---------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------

def _corridor(grid: Grid, line: LineString, half: float):
    """Pixels within ``half`` m of ``line``: rows, cols, signed offset (m), along distance (m)."""
    poly = line.buffer(half, cap_style="flat")
    r, c = land.pixels_in(grid, poly)
    if r.size == 0:
        return r, c, np.zeros(0), np.zeros(0)
    x, y = grid.xy(r, c)
    V = np.asarray(line.coords)[:, :2]
    a, b = V[:-1], V[1:]
    d = b - a
    L = np.hypot(d[:, 0], d[:, 1])
    L = np.where(L == 0, 1e-9, L)
    cum = np.concatenate([[0], np.cumsum(L)])[:-1]
    best = np.full(r.size, np.inf)
    off = np.zeros(r.size)
    along = np.zeros(r.size)
    for j0 in range(0, len(a), 64):
        sl = slice(j0, j0 + 64)
        px = x[:, None] - a[None, sl, 0]
        py = y[:, None] - a[None, sl, 1]
        t = np.clip((px * d[None, sl, 0] + py * d[None, sl, 1]) / L[None, sl] ** 2, 0, 1)
        ex = px - t * d[None, sl, 0]
        ey = py - t * d[None, sl, 1]
        dist = np.hypot(ex, ey)
        k = np.argmin(dist, axis=1)
        dk = dist[np.arange(r.size), k]
        better = dk < best
        if better.any():
            kk = k[better] + j0
            rr = np.nonzero(better)[0]
            cross = (d[kk, 0] * py[rr, k[better]] - d[kk, 1] * px[rr, k[better]]) / L[kk]
            off[rr] = cross
            along[rr] = cum[kk] + t[rr, k[better]] * L[kk]
            best[better] = dk[better]
    return r, c, off, along


def draw_tracks(refl, grid, rng, lines, *, snow=False):
    """Ballast bed, sleepers and the two rails of every track (anti-aliased)."""
    g = grid.gsd
    ballast = np.array((0.19, 0.185, 0.18, 0.21), np.float32)
    for tid, line in lines:
        r, c, off, s = _corridor(grid, line, 2.9 + g)
        if r.size == 0:
            continue
        a = np.abs(off)
        old = rng.random() < 0.3
        bcol = ballast * (rng.uniform(0.55, 0.75) if old else rng.uniform(0.85, 1.1))
        if old:
            bcol = bcol * np.array((1.05, 1.0, 0.9, 1.0), np.float32)
        # ballast shoulder fades into the ground
        alpha = np.clip((2.9 - a) / 0.9, 0, 1) * (0.6 if snow else 1.0)
        tex = 1 + 0.12 * rng.standard_normal(r.size).astype(np.float32)
        for i in range(4):
            refl[i, r, c] = refl[i, r, c] * (1 - alpha) + bcol[i] * tex * alpha
        concrete = rng.random() < 0.6
        scol = np.array((0.28, 0.27, 0.26, 0.28) if concrete else (0.07, 0.06, 0.05, 0.09), np.float32)
        cov = periodic_coverage(s, 0.544, 0.27 if concrete else 0.25, g) * box_coverage(off, 2.75, g)
        cov *= 0.8
        for i in range(4):
            refl[i, r, c] = refl[i, r, c] * (1 - cov) + scol[i] * cov
        rusty = rng.random() < 0.25
        head = np.array((0.14, 0.09, 0.06, 0.15) if rusty else (0.46, 0.46, 0.47, 0.44), np.float32)
        dark = np.array((0.05, 0.045, 0.04, 0.06), np.float32)
        for side in (-1, 1):
            dd = off - side * (GAUGE_M / 2 + RAIL_HEAD_M / 2)
            foot = box_coverage(dd, 0.16, g) * 0.8
            hc = box_coverage(dd, RAIL_HEAD_M, g)
            for i in range(4):
                refl[i, r, c] = refl[i, r, c] * (1 - foot) + dark[i] * foot
                refl[i, r, c] = refl[i, r, c] * (1 - hc) + head[i] * hc


def draw_cars(refl, grid, rng, cars, sun_az, sun_el):
    """Shadows, then bodies with per-type detail (loads, tank cylinders, roofs, containers)."""
    if not cars:
        return
    land.draw_shadows(refl, grid, [(c["polygon"], c["height"]) for c in cars], sun_az, sun_el, strength=0.6)
    ids = land.rasterize(grid, [(c["polygon"], i + 1) for i, c in enumerate(cars)], dtype="int32")
    r, cc = np.nonzero(ids)
    if r.size == 0:
        return
    k = ids[r, cc] - 1
    P = {key: np.array([c[key] for c in cars], float) for key in ("cx", "cy", "heading", "length", "width")}
    u, v = local_coords(grid, r, cc, P["cx"][k], P["cy"][k], P["heading"][k])
    Lb, W = P["length"][k], P["width"][k]
    code = np.array([TYPE_CODE[c["type"]] for c in cars])[k]
    base = np.array([CAR_COLOURS[c["colour"]] for c in cars], np.float32)
    base *= np.array([c["shade"] for c in cars], np.float32)[:, None]
    col = base[k].copy()
    f = np.ones(r.size, np.float32)
    sa = math.radians(sun_az)
    sun_across = (-np.sin(P["heading"]) * math.sin(sa) + np.cos(P["heading"]) * math.cos(sa))[k]
    vn = np.clip(v / (W / 2), -1, 1)
    un = u / (Lb / 2)
    # gondola: rim + interior load
    g_ = code == TYPE_CODE["gondola"]
    rim = (np.abs(u) > Lb / 2 - 0.3) | (np.abs(v) > W / 2 - 0.22)
    interior = g_ & ~rim
    load_col = np.array([LOADS.get(c["load"], (0, 0, 0, 0)) for c in cars], np.float32)[k]
    has_load = np.array([c["load"] != "empty" for c in cars])[k]
    fine = rng.standard_normal(r.size).astype(np.float32)
    m = interior & has_load
    col[m] = load_col[m] * (1 + 0.18 * fine[m])[:, None]
    tarp = np.array([c["load"].startswith("tarp") for c in cars])[k]
    mt = m & tarp
    f[mt] *= (1 + 0.12 * np.cos(u[mt] * 2.3) * (1 - np.abs(vn[mt]))).astype(np.float32)
    me = interior & ~has_load
    f[me] *= np.where(vn[me] * sun_across[me] < -0.2, 0.55, 0.4)  # inner wall shadow
    f[g_ & rim] *= 1.1
    # tank: cylinder shading, dome, end platforms
    t_ = code == TYPE_CODE["tank"]
    cyl = 0.5 + 0.5 * np.cos(vn * math.pi / 2) ** 0.6 + 0.25 * vn * sun_across
    f[t_] *= cyl[t_]
    ends = t_ & (np.abs(u) > Lb / 2 - 0.9)
    col[ends] = (0.06, 0.06, 0.06, 0.07)
    dome = t_ & (u ** 2 + v ** 2 < 0.45 ** 2)
    f[dome] *= 1.6
    spec = t_ & (np.abs(vn - 0.35 * sun_across) < 0.12)
    f[spec] *= 1.6
    # boxcar: roof ridge and seams
    b_ = code == TYPE_CODE["boxcar"]
    f[b_] *= (1 + 0.1 * np.sign(v[b_]) * sun_across[b_])
    seams = b_ & (periodic_coverage(u + Lb / 2, 1.25, 0.12, grid.gsd) > 0.5)
    f[seams] *= 0.85
    f[b_ & (np.abs(v) > W / 2 - 0.12)] *= 0.8
    # flat: deck + containers / tarp loads
    fl = code == TYPE_CODE["flat"]
    deck = np.array((0.09, 0.08, 0.07, 0.10), np.float32)
    col[fl] = deck
    cont = np.zeros(r.size, bool)
    ccol = np.array([CONTAINERS[c["container"]] for c in cars], np.float32)[k]
    for key, (c0, c1) in (("load40", (-6.1, 6.1)), ("load20", (-9.2, -0.2)), ("load20b", (0.2, 9.2))):
        sel = np.array([key in c["flatload"] for c in cars])[k]
        cont |= fl & sel & (u > c0) & (u < c1) & (np.abs(v) < 1.22)
    col[cont] = ccol[cont]
    f[cont] *= (1 - 0.15 * (periodic_coverage(u[cont], 0.35, 0.12, grid.gsd) > 0.5))
    ftarp = fl & np.array(["tarp" in c["flatload"] for c in cars])[k] & (np.abs(v) < 1.45) & (np.abs(u) < Lb / 2 - 0.8)
    col[ftarp] = LOADS["tarp_green"]
    f[ftarp] *= (1 + 0.2 * np.cos(u[ftarp] * 1.3) * np.cos(v[ftarp] * 2.0)).astype(np.float32)
    # locomotive: radiators, cab ends, section break
    lo = code == TYPE_CODE["locomotive"]
    roof = lo & (np.abs(v) < 1.1)
    f[roof] *= 0.7
    grill = roof & (periodic_coverage(u + Lb / 2, 0.9, 0.45, grid.gsd) > 0.5) & (np.abs(un) < 0.6)
    f[grill] *= 0.6
    cab = lo & (np.abs(u) > Lb / 2 - 2.6)
    col[cab] = np.maximum(col[cab], 0.0) * 1.25
    wind = lo & (np.abs(u) > Lb / 2 - 0.45)
    col[wind] = (0.05, 0.06, 0.08, 0.06)
    two = lo & (Lb > 30) & (np.abs(u) < 0.45)
    col[two] = (0.03, 0.03, 0.03, 0.04)
    tex = 1 + 0.04 * fine
    for i in range(4):
        refl[i, r, cc] = col[:, i] * f * tex


def _dress_cars(cars, rng):
    for c in cars:
        t = c["type"]
        c["colour"] = _pick(rng, PALETTE[t])
        c["shade"] = float(rng.uniform(0.8, 1.2))
        c["load"] = "empty"
        c["flatload"] = ""
        c["container"] = int(rng.integers(0, len(CONTAINERS)))
        if t == "gondola":
            c["load"] = _pick(rng, (("empty", 0.3), ("coal", 0.3), ("ore", 0.15), ("tarp_green", 0.12),
                                    ("tarp_blue", 0.05), ("tarp_grey", 0.08)))
        elif t == "flat":
            c["flatload"] = _pick(rng, (("load40", 0.35), ("load20 load20b", 0.25), ("tarp", 0.25), ("", 0.15)))
            if c["flatload"]:
                c["height"] = 3.9
    return cars


def _as_utc(when):
    if when is None:
        return None
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if not isinstance(when, datetime):  # a date
        when = datetime(when.year, when.month, when.day)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def scene_time(aoi: AOI, when) -> datetime:
    """``when`` as tz-aware UTC; a bare date gets a 10:30 local-solar-time overpass."""
    w = _as_utc(when)
    if w is None:
        w = datetime(2024, 6, 17, tzinfo=timezone.utc)
    if w.hour == 0 and w.minute == 0 and w.second == 0:
        c = aoi.boundary.centroid if aoi.crs.to_epsg() == 4326 else aoi.to_crs("EPSG:4326").boundary.centroid
        w = local_overpass(w, c.x)
    return w.replace(microsecond=0)


def _default_counts(rng, n):
    if n is None:
        n = int(rng.integers(10, 40))
    if isinstance(n, dict):
        return {k: int(v) for k, v in n.items()}
    n = int(n)
    p = {"gondola": 0.6, "tank": 0.2, "boxcar": 0.12, "flat": 0.08}
    out = {k: int(round(n * v)) for k, v in p.items()}
    out["gondola"] += n - sum(out.values())
    return out


def render_rail_scene(aoi, *, gsd_m: float = 0.5, when=None, seed: int = 0, cars=None,
                      cloud: float = 0.0, haze: float | None = None, dtype: str = "uint16",
                      margin_m: float = 40.0, psf_px: float | None = None, noise: float = 0.004,
                      snow: bool | None = None, buildings: bool = True, sensor: str = "optical",
                      looks: int = 4, static_seed: int | None = None) -> SynthScene:
    """Render a rail yard of ``aoi`` with trains on its tracks.

    Parameters
    ----------
    aoi: an :class:`~monitor.aoi.AOI`, a bundled id or an AOI file path.
    gsd_m: pixel size in metres (0.3-3 optical; SAR 3-20).
    when: acquisition time (datetime, date or ISO string; UTC). A bare date
        gets a 10:30 local solar time overpass; the sun follows it.
    cars: total count (split into the usual type mix) or a dict
        ``{"gondola": 175, "tank": 66, "boxcar": 14, "locomotive": 6}``;
        ``None`` draws 10-40. Cars that do not fit on the tracks are
        dropped and counted in ``meta["dropped"]``.
    cloud: cloud cover 0..1 (soft fractal clouds with offset shadows).
    dtype: "uint16" (reflectance x 10000), "uint8" (visual) or "float32".
    sensor: "optical", or "sar" (see :func:`monitor.synth.sar.render_sar`).
    static_seed: seed of the scenery (ground, buildings, tracks). Give the
        same value to every scene of an archive: the scenery stays put and
        is rendered once per season (greenness, snow) and cached in-process;
        the PSF is then fixed too (one sensor).

    Returns a :class:`SynthScene` in the AOI's UTM zone whose ``truth`` is
    one oriented rectangle (the car body) per rendered car.
    """
    aoi = load_aoi(aoi)
    if gsd_m <= 0:
        raise InputError(f"gsd_m={gsd_m}", "pixel size must be positive")
    if sensor not in ("optical", "sar"):
        raise InputError(f"sensor={sensor}", "sensor must be 'optical' or 'sar'")
    when = scene_time(aoi, when)
    rng = rng_for(seed, aoi.id, "rail", when.isoformat())
    u = aoi.to_crs()
    counts = _default_counts(rng, cars)
    trains = make_consists(counts, rng)
    placed, dropped = place_trains(u, trains, rng)
    placed = _dress_cars(placed, rng)
    lines = _track_lines(u)
    out_grid = Grid.around(u.boundary.bounds, gsd_m, margin_m)
    lat = aoi.to_crs("EPSG:4326").boundary.centroid
    sun_az, sun_el = sun_position(when, lat.y, lat.x)
    truth = [TruthObject("railcar", c["type"], c["polygon"], c["length"], c["width"],
                         (90 - math.degrees(c["heading"])) % 180, track=c["track"],
                         props={"load": c["load"] if c["type"] == "gondola" else c["flatload"] or None,
                                "colour": c["colour"]})
             for c in placed]
    meta = {"seed": seed, "requested": counts, "placed": _count_types(placed), "dropped": dropped,
            "sun_azimuth": round(sun_az, 2), "sun_elevation": round(sun_el, 2)}
    if sensor == "sar":
        from monitor.synth.sar import render_sar
        bands = render_sar(out_grid, u, rng, objects=[(c["polygon"], c["height"]) for c in placed],
                           tracks=lines, looks=looks)
        meta.update(looks=looks)
        return SynthScene(bands, ("vv",), out_grid.transform, u.utm_crs, when, "sar", truth, aoi, gsd_m, meta)

    grid, ss, green, snow, sseed, psf = land.optical_setup(out_grid, gsd_m, when, rng, snow=snow, seed=seed,
                                                           static_seed=static_seed, aoi_id=aoi.id, psf_px=psf_px)

    def build():
        refl = land.ground(grid, rng_for(sseed, aoi.id, "ground", gsd_m), when.month, snow)
        casters = _draw_yard_dressing(refl, grid, rng_for(sseed, aoi.id, "dressing", gsd_m), u, lines, *land.ROOF_SUN,
                                      buildings)
        draw_tracks(refl, grid, rng_for(sseed, aoi.id, "tracks", gsd_m), lines, snow=snow)
        return land.make_scenery(grid, out_grid, ss, psf, refl, casters=casters)

    cached = static_seed is not None
    scenery = land.cached_static(("rail", aoi.id, aoi.source, gsd_m, margin_m, green, bool(snow), buildings, sseed, psf),
                                 build, cached)
    extents = [_car_extent(c, sun_az, sun_el) for c in placed]
    refl = land.compose(scenery, extents, lambda win, sub, idx: draw_cars(win, sub, rng, [placed[i] for i in idx],
                                                                          sun_az, sun_el), copy=cached)
    land.cast_shadows(refl, out_grid, scenery.extra["casters"], sun_az, sun_el)
    bands, sensor_meta = land.finish_optical(refl, out_grid, rng, haze=haze, haze_max=0.35, cloud=cloud,
                                             sun_az=sun_az, sun_el=sun_el, psf_px=psf, noise=noise, dtype=dtype)
    meta.update(sensor_meta, snow=bool(snow))
    return SynthScene(bands, land.ROLES4, out_grid.transform, u.utm_crs, when, "optical", truth, aoi, gsd_m, meta)


def _car_extent(car, sun_az, sun_el):
    """Map bounds of a car body and its shadow (m)."""
    minx, miny, maxx, maxy = car["polygon"].bounds
    dx, dy = shadow_vector(sun_az, sun_el, car["height"])
    return (min(minx, minx + dx), min(miny, miny + dy), max(maxx, maxx + dx), max(maxy, maxy + dy))


def _count_types(cars) -> dict:
    out = {}
    for c in cars:
        out[c["type"]] = out.get(c["type"], 0) + 1
    return out


def _draw_yard_dressing(refl, grid, rng, u: AOI, lines, sun_az, sun_el, buildings: bool):
    """Roads, yard surfaces and buildings around (never on) the tracks; returns the buildings as shadow casters.

    Building shadows are not drawn (they follow the sun of each pass: see
    :func:`monitor.synth.land.cast_shadows`); ``sun_az`` only shades gabled roofs.
    """
    if not lines:
        return []
    tracks = shapely.union_all([ln for _, ln in lines])
    hull = tracks.minimum_rotated_rectangle if hasattr(tracks, "minimum_rotated_rectangle") else tracks.envelope
    # principal direction of the yard
    coords = np.asarray(hull.exterior.coords)
    edges = np.diff(coords, axis=0)
    e = edges[np.argmax(np.hypot(edges[:, 0], edges[:, 1]))]
    heading = math.atan2(e[1], e[0])
    for f in u.yards:
        land.paint_surface(refl, grid, rng, f.geometry, land.C["yard"] if rng.random() < 0.6 else land.C["dirt_road"], 0.12)
    avoid = tracks.buffer(7.0)
    area = u.boundary.buffer(40)
    # roads: one along each long side of the yard, a few cross roads
    c = hull.centroid
    L = max(np.hypot(*edges[0]), np.hypot(*edges[1])) + 200
    Wd = min(np.hypot(*edges[0]), np.hypot(*edges[1]))
    for side in (-1, 1):
        if rng.random() < 0.7:
            off = side * (Wd / 2 + rng.uniform(15, 40))
            nx, ny = -math.sin(heading), math.cos(heading)
            p0 = (c.x + nx * off - math.cos(heading) * L / 2, c.y + ny * off - math.sin(heading) * L / 2)
            p1 = (c.x + nx * off + math.cos(heading) * L / 2, c.y + ny * off + math.sin(heading) * L / 2)
            road = LineString([p0, p1]).buffer(rng.uniform(3, 7), cap_style="flat").difference(avoid)
            land.paint_surface(refl, grid, rng, road, land.C["asphalt"] if rng.random() < 0.6 else land.C["dirt_road"])
    if buildings:
        boxes = land.place_boxes(rng, area, avoid.union(tracks.buffer(12)), heading, n_try=300,
                                 n_max=max(5, int(area.area / 20000)), size_range=(10, 60))
        heights = land.draw_buildings(refl, grid, rng, boxes, sun_az, sun_el, shadows=False)
        return [(b[0], float(hgt)) for b, hgt in zip(boxes, heights)]
    return []
