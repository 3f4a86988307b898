"""Draw the four bundled AOIs (aoi/*.geojson) reproducibly.

    python tools/make_aois.py            # writes aoi/{tumangang,khasan,najin,dunay}.geojson
    python tools/make_aois.py --check    # fails if the committed files differ

No public vector map of the tracks, yards or piers exists for these places,
so the lines are *schematic*: they are anchored on published point
coordinates (shared/data/reference/sites.geojson, copied below with their
sources) and drawn with railway/port design figures (track centre spacing
5.0-5.3 m, 1:9 turnout ladders, 100-400 m piers). The water polygons of the
two ports are traced from the GSHHG full-resolution land mask bundled in
the PyPI package ``roaring-landmask`` (needed only to run this script).

All geometry is computed in the local UTM zone (metres) with pyproj and
written in WGS84 lon/lat rounded to 1e-7 degrees (about 1 cm).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from pathlib import Path

import numpy as np
import shapely
import shapely.ops
from pyproj import CRS, Transformer
from shapely.geometry import LineString, Point, Polygon, box, mapping, shape

OUT = Path(__file__).resolve().parent.parent / "aoi"

# --------------------------------------------------------------------------
# published points (lon, lat) and their sources (shared/data/reference/sites.geojson)
# --------------------------------------------------------------------------
SITES = {
    "friendship_bridge": ((130.641056, 42.415167),
                          "Wikipedia 'Korea-Russia Friendship Bridge' infobox (42°24'55\"N 130°38'28\"E); "
                          "length 590-623 m, dual gauge 1435/1520 mm"),
    "tumangang_station": ((130.6081, 42.4214),
                          "Wikipedia 'Tumangang station' infobox (42°25'17\"N 130°36'29\"E)"),
    "khasan_station": ((130.645278, 42.428056),
                       "Russian Wikipedia 'Хасан (станция)' (42°25'41\"N 130°38'43\"E); 6 tracks, 1 platform"),
    "rajin_port_angara": ((130.2826, 42.2271),
                          "MSMT 1st report (29 May 2025) Fig. 11, ANGARA at Rajin Port 2024-10-25, position "
                          "'near 42.2271, 130.2826' as solved in DIVER OSINT CTF 2025 'sanction' writeup"),
    "dunay_settlement": ((132.3375, 42.88028),
                         "Wikipedia 'Dunay, Primorsky Krai' (42°52'49\"N 132°20'15\"E)"),
    "fokino_town": ((132.4, 42.9667), "Wikipedia 'Fokino' (42°58'N 132°24'E, rounded)"),
}
LANDMASK_SOURCE = ("GSHHG full-resolution land mask via the PyPI package roaring-landmask "
                   "(about 100-200 m accuracy), sampled on a {step_m:.0f} m grid")
SCHEMATIC_NOTE = ("Schematic lines drawn by tools/make_aois.py from published points; no public vector "
                  "map of tracks or piers exists. Replace them with lines traced from your own imagery "
                  "(see README, 'AOI files').")


# --------------------------------------------------------------------------
# coordinate helpers
# --------------------------------------------------------------------------
class Frame:
    """WGS84 <-> local UTM (metres) for one AOI."""

    def __init__(self, lon: float, lat: float):
        zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
        self.crs = CRS.from_epsg(32600 + zone)
        self._fwd = Transformer.from_crs(4326, self.crs, always_xy=True)
        self._inv = Transformer.from_crs(self.crs, 4326, always_xy=True)

    def xy(self, lon: float, lat: float) -> np.ndarray:
        return np.array(self._fwd.transform(lon, lat))

    def to_utm(self, g):
        return shapely.transform(g, lambda x, y: self._fwd.transform(x, y), interleaved=False)

    def to_wgs(self, g):
        return shapely.transform(g, lambda x, y: self._inv.transform(x, y), interleaved=False)


def unit(bearing_deg: float) -> np.ndarray:
    """Unit vector (east, north) of a compass bearing in degrees."""
    b = math.radians(bearing_deg)
    return np.array([math.sin(b), math.cos(b)])


def left(u: np.ndarray) -> np.ndarray:
    return np.array([-u[1], u[0]])


def line_intersection(p, u, q, v) -> np.ndarray:
    """Intersection of the lines p + s*u and q + t*v."""
    a = np.array([u, -v]).T
    s, _ = np.linalg.solve(a, q - p)
    return p + s * u


def curve(p: np.ndarray, h1: float, q: np.ndarray, h2: float, radius: float, step: float = 10.0):
    """Points of a track from ``p`` (heading ``h1``) to ``q`` (heading ``h2``).

    A straight, a circular arc of ``radius`` metres, a straight: the usual
    plan of a railway curve (without transition spirals).
    """
    u1, u2 = unit(h1), unit(h2)
    i = line_intersection(p, u1, q, u2)
    delta = math.radians((h2 - h1 + 540) % 360 - 180)
    t = radius * math.tan(abs(delta) / 2)
    a, b = i - t * u1, i + t * u2
    if np.dot(a - p, u1) < 0 or np.dot(q - b, u2) < 0:
        raise ValueError("curve does not fit between its end points")
    side = 1.0 if delta > 0 else -1.0  # turn right (clockwise) for delta > 0
    centre = a + radius * side * np.array([u1[1], -u1[0]])
    n = max(2, int(abs(delta) * radius / step) + 1)
    a0 = math.atan2(*(a - centre)[::-1])
    pts = [p]
    for k in range(n + 1):
        ang = a0 - side * abs(delta) * k / n
        pts.append(centre + radius * np.array([math.cos(ang), math.sin(ang)]))
    pts.append(q)
    return pts


# --------------------------------------------------------------------------
# rail yards
# --------------------------------------------------------------------------
def yard_tracks(origin, heading, half_len, offsets, ladder_ratio=9.0):
    """Parallel yard tracks around a main line through ``origin``.

    The main line runs along ``heading`` through ``origin``; yard track k
    lies ``offsets[k]`` metres to its left (negative: right). At each end a
    ladder track leaves the main line at ``+-half_len`` with a 1:``ladder_ratio``
    turnout angle; every yard track branches off the ladder and runs
    parallel to the main line. Returns (yard, ladders) as lists of
    (offset, LineString) and LineString, in metres.
    """
    u = unit(heading)
    n = left(u)
    o = np.asarray(origin)
    P = lambda x, y: o + x * u + y * n  # noqa: E731
    yard, ladders = [], []
    for side in (1, -1):
        offs = sorted(abs(y) for y in offsets if np.sign(y) == side)
        if not offs:
            continue
        ymax = offs[-1]
        for end in (-1, 1):
            x0 = end * half_len
            ladders.append(LineString([P(x0, 0.0), P(x0 - end * ladder_ratio * ymax, side * ymax)]))
        for y in offs:
            xa = -half_len + ladder_ratio * y
            yard.append((side * y, LineString([P(xa, side * y), P(-xa, side * y)])))
    return yard, ladders


def corridor(lines, width_m: float) -> Polygon:
    """A boundary polygon: every line buffered by ``width_m``, merged, simplified."""
    g = shapely.union_all([ln.buffer(width_m, quad_segs=4) for ln in lines])
    g = g.simplify(width_m / 8, preserve_topology=True)
    if g.geom_type != "Polygon":
        g = g.convex_hull
    return Polygon(g.exterior)


def tumangang():
    lon, lat = SITES["tumangang_station"][0]
    fr = Frame(lon, lat)
    s = fr.xy(*SITES["tumangang_station"][0])
    b = fr.xy(*SITES["friendship_bridge"][0])
    bridge_heading, bridge_len = 50.0, 600.0  # the bridge crosses the Tumen SW -> NE
    wb, eb = b - bridge_len / 2 * unit(bridge_heading), b + bridge_len / 2 * unit(bridge_heading)
    main_heading = 115.0  # the line leaves the station to the ESE towards the river
    half = 495.0
    # yard tracks: 1520 mm on the north side (5.3 m centres, Russian standard),
    # 1435 mm on the south side (5.0 m centres)
    offsets = [5.3, 10.6, 15.9, 21.2, -5.0, -10.0, -15.0, -20.0]
    yard, ladders = yard_tracks(s, main_heading, half, offsets)
    west = s - (half + 400.0) * unit(main_heading)
    main = LineString([west] + curve(s, main_heading, wb, bridge_heading, radius=450.0)[1:])
    feats = []
    feats.append(("track", "main", main, {"gauge_mm": [1435, 1520], "group": "main",
                                          "name": "Hongui-Tumangang-Khasan main line (dual gauge)"}))
    for k, (y, ln) in enumerate(sorted(yard, key=lambda t: -t[0]), start=1):
        feats.append(("track", f"yard-{k}", ln, {"gauge_mm": 1520 if y > 0 else 1435, "group": "yard",
                                                 "offset_m": round(y, 2)}))
    for k, ln in enumerate(ladders, start=1):
        feats.append(("track", f"ladder-{k}", ln, {"gauge_mm": [1435, 1520], "group": "throat"}))
    bridge_line = LineString([wb, eb])
    feats.append(("track", "bridge-track", bridge_line, {"gauge_mm": [1435, 1520], "group": "bridge"}))
    feats.append(("bridge", "friendship-bridge", bridge_line,
                  {"name": "Korea-Russia Friendship Bridge (Tumen River)", "length_m": bridge_len}))
    yard_poly = shapely.union_all([ln for _, ln in yard] + ladders).buffer(15.0, cap_style="flat",
                                                                           join_style="mitre")
    yard_poly = shapely.oriented_envelope(yard_poly)
    feats.append(("yard", "secure-rail-yard", yard_poly,
                  {"name": "Tumangang station and secure rail yard (built 2021), schematic extent"}))
    bnd = corridor([main, bridge_line, yard_poly.exterior], 120.0)
    props = {"id": "tumangang", "name": "Tumangang station and rail yard", "country": "DPRK",
             "kind": "rail_yard",
             "sources": [SITES["tumangang_station"][1], SITES["friendship_bridge"][1],
                         "VOA: the station is about 2 km down the track from the bridge"],
             "notes": "8 yard tracks 600-900 m (1520 mm north, 1435 mm south of the main line) between "
                      "1:9 ladders; dual-gauge main line to the bridge; bridge axis bearing 50 deg assumed."}
    return fr, bnd, props, feats


def khasan():
    lon, lat = SITES["khasan_station"][0]
    fr = Frame(lon, lat)
    k = fr.xy(*SITES["khasan_station"][0])
    b = fr.xy(*SITES["friendship_bridge"][0])
    eb = b + 300.0 * unit(50.0)  # east end of the bridge (same plan as tumangang)
    heading, half = 350.0, 450.0  # station axis NNW-SSE
    offsets = [5.3, 10.6, -5.3, -10.6, -15.9]  # with the main line: the station's 6 tracks
    yard, ladders = yard_tracks(k, heading, half, offsets)
    north = k + (half + 350.0) * unit(heading)
    main = LineString(curve(eb, 50.0, north, heading, radius=400.0))
    feats = [("track", "main", main, {"gauge_mm": [1435, 1520], "group": "main",
                                      "name": "Khasan-Tumangang line from the bridge's east end"})]
    for i, (y, ln) in enumerate(sorted(yard, key=lambda t: -t[0]), start=1):
        feats.append(("track", f"station-{i}", ln, {"gauge_mm": 1520, "group": "yard", "offset_m": round(y, 2)}))
    for i, ln in enumerate(ladders, start=1):
        feats.append(("track", f"ladder-{i}", ln, {"gauge_mm": 1520, "group": "throat"}))
    bnd = corridor([main] + [ln for _, ln in yard], 120.0)
    props = {"id": "khasan", "name": "Khasan station", "country": "Russia", "kind": "rail_yard",
             "sources": [SITES["khasan_station"][1], SITES["friendship_bridge"][1]],
             "notes": "6 parallel tracks (main line + 5 station tracks, 5.3 m centres) between 1:9 ladders; "
                      "the main line starts at the east end of the Friendship Bridge."}
    return fr, bnd, props, feats


# --------------------------------------------------------------------------
# ports
# --------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _landmask():
    from roaring_landmask import RoaringLandmask

    return RoaringLandmask.new()  # a few seconds: decompresses the mask


def landmask_water(fr: Frame, bbox_utm: Polygon, step_m: float = 15.0) -> Polygon:
    """Water inside ``bbox_utm`` from the GSHHG land mask (UTM metres)."""
    from rasterio.features import shapes
    from rasterio.transform import from_origin

    minx, miny, maxx, maxy = bbox_utm.bounds
    xs = np.arange(minx + step_m / 2, maxx, step_m)
    ys = np.arange(maxy - step_m / 2, miny, -step_m)
    gx, gy = np.meshgrid(xs, ys)
    lon, lat = fr._inv.transform(gx.ravel(), gy.ravel())
    land = _landmask().contains_many(np.asarray(lon, dtype="float64"),
                                               np.asarray(lat, dtype="float64"))
    water = (~np.asarray(land, dtype=bool)).reshape(gx.shape).astype("uint8")
    tr = from_origin(minx, maxy, step_m, step_m)
    polys = [shape(g) for g, v in shapes(water, mask=water.astype(bool), transform=tr) if v == 1]
    w = shapely.union_all(polys).simplify(step_m * 0.7, preserve_topology=True).buffer(0)
    return w.intersection(bbox_utm)


def coast_frame(water, seed: np.ndarray, span: float = 150.0):
    """Nearest coast point to ``seed``, and the unit normal pointing into the water."""
    coast = water.boundary
    if coast.geom_type == "MultiLineString":
        coast = min(coast.geoms, key=lambda g: g.distance(Point(seed)))
    s = coast.project(Point(seed))
    p = np.array(coast.interpolate(s).coords[0])
    a = np.array(coast.interpolate(max(0.0, s - span)).coords[0])
    b = np.array(coast.interpolate(min(coast.length, s + span)).coords[0])
    t = (b - a) / np.linalg.norm(b - a)
    n = left(t)
    if not water.contains(Point(p + 30.0 * n)):
        n = -n
    return p, n


def pier(water, seed, length, width, bearing=None, root_inland=40.0):
    """A pier polygon built out from the coast into the water.

    With ``bearing`` (degrees) the pier axis is the ray from ``seed`` (a
    point on land) along that bearing, rooted where the ray first reaches
    the water; without it, the axis is the outward normal of the coast
    nearest ``seed``. The pier starts ``root_inland`` metres on land (so it
    joins the shore) and reaches ``length`` metres into the water. Returns
    the pier polygon and its faces (left, right, head) as LineStrings.
    """
    if bearing is None:
        p, n = coast_frame(water, seed)
    else:
        n = unit(bearing)
        ray = LineString([seed, seed + 5000.0 * n])
        hit = ray.intersection(water.boundary)
        pts = [np.array(g.coords[0]) for g in getattr(hit, "geoms", [hit]) if not g.is_empty]
        if not pts:
            raise ValueError(f"pier ray from {seed} never reaches the water")
        p = min(pts, key=lambda q: np.linalg.norm(q - seed))
    t = left(n)
    a, b = p - root_inland * n, p + length * n
    h = width / 2
    poly = Polygon([a + h * t, b + h * t, b - h * t, a - h * t])
    faces = {"left": LineString([a + h * t, b + h * t]), "right": LineString([a - h * t, b - h * t]),
             "head": LineString([b + h * t, b - h * t])}
    return poly, faces


def compass(poly: Polygon, face: LineString) -> str:
    """8-point compass direction a pier face looks towards (away from the pier)."""
    m = np.array(face.interpolate(0.5, normalized=True).coords[0])
    v = m - np.array(poly.centroid.coords[0])
    d = np.array(face.coords[1]) - np.array(face.coords[0])
    n = left(d / np.linalg.norm(d))
    n = n if np.dot(n, v) > 0 else -n
    b = math.degrees(math.atan2(n[0], n[1])) % 360
    return ["N", "NE", "E", "SE", "S", "SW", "W", "NW"][int((b + 22.5) // 45) % 8]


def berth_on(face: LineString, water, trim: float = 5.0):
    """The part of a pier face that borders the water, trimmed at its ends."""
    on = face.intersection(water.buffer(1.0))
    if on.is_empty:
        return None
    if on.geom_type != "LineString":
        on = max(on.geoms, key=lambda g: g.length)
    if on.length <= 2 * trim + 20:
        return None
    return shapely.ops.substring(on, trim, on.length - trim)


def port(fr, bbox, piers, step_m, min_part_m2=20000.0):
    """Water (landmask minus piers), pier polygons and berth lines."""
    raw = landmask_water(fr, bbox, step_m)
    pier_polys, berths = [], []
    for pid, seed, length, width, bearing, sides in piers:
        poly, faces = pier(raw, seed, length, width, bearing)
        pier_polys.append((pid, poly, faces, sides))
    piers_u = shapely.union_all([p for _, p, _, _ in pier_polys])
    water = raw.difference(piers_u)
    if water.geom_type == "MultiPolygon":  # drop slivers cut off by the piers
        water = shapely.MultiPolygon([g for g in water.geoms if g.area >= min_part_m2])
        if len(water.geoms) == 1:
            water = water.geoms[0]
    for pid, poly, faces, sides in pier_polys:
        for side in sides:
            ln = berth_on(faces[side], water)
            if ln is not None:
                face = compass(poly, faces[side])
                berths.append((f"{pid}-{face.lower()}", ln, {"pier": pid, "face": face,
                                                     "length_m": round(ln.length, 1)}))
    return raw, water, pier_polys, berths


#: Axis bearing of the Rajin piers (they run out ESE from the west shore of the bay).
PIER_BEARING_NAJIN = 110.0


def najin():
    a = SITES["rajin_port_angara"][0]
    fr = Frame(*a)
    c = fr.xy(*a)
    bbox = box(c[0] - 900, c[1] - 1100, c[0] + 1700, c[1] + 1300)
    step = 15.0
    # Piers 1-3 from north to south, built out from the landmask coastline
    # east of the ANGARA point (which lies on the land side of that coast).
    bearing = PIER_BEARING_NAJIN
    seeds = [("pier1", c + np.array([0.0, 700.0]), 400.0, 110.0),
             ("pier2", c + np.array([0.0, 330.0]), 420.0, 120.0),
             ("pier3", c + np.array([0.0, -60.0]), 380.0, 120.0)]
    raw, water, pier_polys, berths = port(
        fr, bbox, [(pid, s, L, w, bearing, ("left", "right")) for pid, s, L, w in seeds], step)
    # container yard: on land behind the roots of piers 1-3, 25 m back from the water
    roots = [np.array(p.exterior.coords[0]) + np.array(p.exterior.coords[3]) for _, p, _, _ in pier_polys]
    roots = [r / 2 for r in roots]
    n, t = unit(bearing), left(unit(bearing))
    along = [float(np.dot(r, n)) for r in roots]
    across = [float(np.dot(r, t)) for r in roots]
    a0, c0, c1 = min(along), min(across) - 60.0, max(across) + 60.0
    corners = [(a0 - 520.0, c0), (a0 + 50.0, c0), (a0 + 50.0, c1), (a0 - 520.0, c1)]
    rect = Polygon([a * n + c * t for a, c in corners])
    apron = rect.difference(raw.buffer(25.0))
    apron = max(apron.geoms, key=lambda g: g.area) if apron.geom_type == "MultiPolygon" else apron
    cy = apron.simplify(5.0)
    if len(cy.interiors):  # keep the yard a plain polygon beside any basin
        raise ValueError("container yard encloses water")
    feats = [("water", "rajin-bay", water, {"name": "Rajin Bay harbour water (landmask minus piers)",
                                            "source": LANDMASK_SOURCE.format(step_m=step)})]
    feats += [("berth", bid, ln, p) for bid, ln, p in berths]
    feats.append(("yard", "container-yard", cy, {"name": "Rajin port container yard (schematic)"}))
    props = {"id": "najin", "name": "Rajin (Najin) port", "country": "DPRK", "kind": "port",
             "sources": [SITES["rajin_port_angara"][1], LANDMASK_SOURCE.format(step_m=step),
                         "CSIS Beyond Parallel, 'Ongoing Arms Transfer Activity at Najin Port' (2023): "
                         "piers No. 1-3"],
             "notes": "Piers 1-3 (north to south) drawn 380-420 m long, 110-120 m wide, built out ESE "
                      "(bearing 110 deg) from the landmask coastline east of the ANGARA point, which lies "
                      "on land in the container yard; berths on both long faces of each pier."}
    return fr, bbox, props, feats


def dunay():
    d = SITES["dunay_settlement"][0]
    fr = Frame(*d)
    # The port facility is on the Strelok Bay (east) shore of the Dunay
    # peninsula, ~9 km south of Fokino; the cove north of the headland at
    # 42.883 N is used here (pier location not independently fixed).
    anchor = fr.xy(132.3665, 42.8915)
    bbox = box(anchor[0] - 900, anchor[1] - 800, anchor[0] + 1300, anchor[1] + 900)
    step = 12.0
    seeds = [("pier-north", anchor + np.array([-200.0, 180.0]), 200.0, 35.0),
             ("pier-south", anchor + np.array([150.0, -120.0]), 220.0, 35.0)]
    raw, water, pier_polys, berths = port(
        fr, bbox, [(pid, s, L, w, None, ("left", "right")) for pid, s, L, w in seeds], step)
    feats = [("water", "strelok-bay", water, {"name": "Strelok Bay at Dunay (landmask minus piers)",
                                              "source": LANDMASK_SOURCE.format(step_m=step)})]
    feats += [("berth", bid, ln, p) for bid, ln, p in berths]
    props = {"id": "dunay", "name": "Port Dunay (Strelok Bay)", "country": "Russia", "kind": "port",
             "sources": [SITES["dunay_settlement"][1], SITES["fokino_town"][1],
                         "RUSI, 'The Orient Express' (2023-10-17): Dunai facility ~9 km south of Fokino, "
                         "former Soviet submarine base", LANDMASK_SOURCE.format(step_m=step)],
             "notes": "Two finger piers (200-220 m x 35 m) built out on the coast's normal in the cove north "
                      "of the headland at 42.883 N on the Strelok Bay (east) shore of the Dunay peninsula, "
                      "about 3 km E of the settlement point and 8.5 km S of Fokino; the pier location "
                      "is not published, so this placement is an assumption."}
    return fr, bbox, props, feats


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------
def _round(g, nd=7):
    """``g`` with coordinates rounded to ``nd`` decimals (1e-7 deg is about 1 cm)."""
    return shapely.transform(g, lambda a: np.round(a, nd))


def to_geojson(fr, boundary, props, feats) -> dict:
    """FeatureCollection in WGS84; boundary first, then the features."""
    bprops = {"role": "boundary", **props, "geometry": "schematic", "note": SCHEMATIC_NOTE,
              "generator": "tools/make_aois.py"}
    out = [{"type": "Feature", "properties": bprops, "geometry": mapping(_round(fr.to_wgs(boundary)))}]
    for role, fid, g, p in feats:
        gw = _round(fr.to_wgs(g))
        if gw.geom_type in ("Polygon", "MultiPolygon"):
            gw = shapely.make_valid(gw) if not gw.is_valid else gw
        out.append({"type": "Feature", "properties": {"role": role, "id": fid, **p}, "geometry": mapping(gw)})
    return {"type": "FeatureCollection", "features": out}


def _dump(doc) -> str:
    def fix(o):
        if isinstance(o, tuple):
            return [fix(v) for v in o]
        if isinstance(o, list):
            return [fix(v) for v in o]
        if isinstance(o, dict):
            return {k: fix(v) for k, v in o.items()}
        if isinstance(o, float):
            return round(o, 7)
        return o
    return json.dumps(fix(doc), ensure_ascii=False, indent=1) + "\n"


BUILDERS = {"tumangang": tumangang, "khasan": khasan, "najin": najin, "dunay": dunay}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the files in aoi/ instead of writing")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    bad = 0
    for aid, build in BUILDERS.items():
        text = _dump(to_geojson(*build()))
        path = args.out / f"{aid}.geojson"
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"{path}: differs from tools/make_aois.py output", file=sys.stderr)
                bad += 1
            continue
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
