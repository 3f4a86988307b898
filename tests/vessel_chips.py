"""Pieces shared by the optical vessel tests (test_vessels, test_vessel_classifier):
the UTM grid origin, hull outlines and band reflectances of water, ground and decks."""

import math

from pyproj import CRS
from shapely.geometry import Polygon

UTM = CRS.from_epsg(32652)
#: South-west corner of the test chips (UTM 52N metres).
X0, Y0 = 600_000.0, 4_680_000.0
ROLES = ("red", "green", "blue", "nir")
#: Surface reflectance (0..1) per band role.
WATER = {"red": 0.03, "green": 0.06, "blue": 0.07, "nir": 0.015}
GROUND = {"red": 0.16, "green": 0.15, "blue": 0.13, "nir": 0.25}
DECK = {"red": 0.30, "green": 0.30, "blue": 0.30, "nir": 0.32}


def hull(cx, cy, length, width, heading_deg):
    """Oriented rectangle centred on (cx, cy) (metres), heading clockwise from north."""
    t = math.radians(heading_deg)
    ux, uy = math.sin(t), math.cos(t)          # along
    vx, vy = math.cos(t), -math.sin(t)         # across
    hl, hw = length / 2, width / 2
    return Polygon([(cx + ux * hl + vx * hw, cy + uy * hl + vy * hw),
                    (cx + ux * hl - vx * hw, cy + uy * hl - vy * hw),
                    (cx - ux * hl - vx * hw, cy - uy * hl - vy * hw),
                    (cx - ux * hl + vx * hw, cy - uy * hl + vy * hw)])
