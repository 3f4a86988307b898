"""Small AOIs built in code (for tests and examples): a rail yard and a port.

Both are in WGS84 near Tumangang / Rajin; geometry is simple but follows
the AOI contract (shared/DESIGN.md): parallel tracks 4.75 m apart with a
curve, a harbour basin with berth lines on its quay faces.
"""

from __future__ import annotations

import math

from pyproj import Transformer
from shapely.geometry import LineString, Polygon, box
import shapely

from monitor.aoi import AOI, WGS84, Feature, utm_crs_for


def _to_wgs(lon0, lat0):
    crs = utm_crs_for(lon0, lat0)
    fwd = Transformer.from_crs(WGS84, crs, always_xy=True)
    inv = Transformer.from_crs(crs, WGS84, always_xy=True)
    x0, y0 = fwd.transform(lon0, lat0)
    return lambda g: shapely.transform(g, lambda x, y: inv.transform(x + x0, y + y0), interleaved=False)


def demo_rail_aoi(n_tracks: int = 5, length_m: float = 600.0, spacing_m: float = 4.75,
                  lon: float = 130.6, lat: float = 42.42, aoi_id: str = "demo-yard") -> AOI:
    """A yard of ``n_tracks`` parallel tracks (``spacing_m`` apart) and one curved track."""
    tf = _to_wgs(lon, lat)
    feats = []
    for i in range(n_tracks):
        y = i * spacing_m
        feats.append(Feature("track", f"t{i + 1}", tf(LineString([(0, y), (length_m, y)])), {"gauge_mm": 1520}))
    # a curve leaving the yard: straight, then a 250 m radius arc
    R, y = 250.0, -spacing_m * 3
    pts = [(0.0, y), (length_m * 0.4, y)]
    for k in range(1, 25):
        a = k / 24 * math.radians(40)
        pts.append((length_m * 0.4 + R * math.sin(a), y - R * (1 - math.cos(a))))
    feats.append(Feature("track", "curve", tf(LineString(pts)), {"gauge_mm": 1520}))
    bnd = box(-30, -120, length_m + 30, n_tracks * spacing_m + 40)
    feats.append(Feature("yard", "yard1", tf(box(50, n_tracks * spacing_m + 10, 250, n_tracks * spacing_m + 35))))
    return AOI(id=aoi_id, name="Demo yard", country="XX", kind="rail_yard", boundary=tf(bnd),
               features=tuple(feats), properties={"geometry": "schematic"})


def demo_port_aoi(lon: float = 130.29, lat: float = 42.24, aoi_id: str = "demo-port") -> AOI:
    """A 700 x 500 m harbour: a basin with a quay (two berths) and a pier."""
    tf = _to_wgs(lon, lat)
    water = Polygon([(0, 0), (700, 0), (700, 300), (420, 300), (420, 200), (380, 200), (380, 300), (0, 300)])
    feats = [
        Feature("water", "basin", tf(water)),
        Feature("berth", "quay-west", tf(LineString([(20, 300), (370, 300)]))),
        Feature("berth", "pier-west", tf(LineString([(380, 210), (380, 295)]))),
        Feature("berth", "pier-east", tf(LineString([(420, 210), (420, 295)]))),
        Feature("berth", "quay-east", tf(LineString([(430, 300), (680, 300)]))),
        Feature("yard", "container-yard", tf(box(50, 340, 350, 440))),
    ]
    return AOI(id=aoi_id, name="Demo port", country="XX", kind="port", boundary=tf(box(0, 0, 700, 500)),
               features=tuple(feats), properties={"geometry": "schematic"})
