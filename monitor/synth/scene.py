"""Data classes of a synthetic scene and its ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from affine import Affine
from shapely.geometry.base import BaseGeometry

#: Object classes the truth uses (same names as the detectors' ``Detection.cls``).
CLASSES = ("railcar", "vessel")


@dataclass(frozen=True)
class TruthObject:
    """One rendered object.

    ``polygon`` is in the scene CRS (metres, UTM). ``heading_deg`` is the
    long axis, degrees clockwise from north (0..180 for cars, 0..360 for
    ships, bow direction). ``type`` is the car type (gondola, tank,
    boxcar, flat, locomotive) or the ship size class (small, medium,
    large, very_large). ``track`` is the AOI track id of a railcar.
    """

    cls: str
    type: str
    polygon: BaseGeometry
    length_m: float
    width_m: float
    heading_deg: float
    track: str | None = None
    props: dict = field(default_factory=dict)

    def properties(self) -> dict:
        """GeoJSON properties: class, type, track, length_m, width_m, heading_deg and extras."""
        p = {"class": self.cls, "type": self.type, "length_m": round(self.length_m, 2),
             "width_m": round(self.width_m, 2), "heading_deg": round(self.heading_deg, 1)}
        if self.track is not None:
            p["track"] = self.track
        p.update(self.props)
        return p


@dataclass
class SynthScene:
    """A rendered scene: pixels, georeference, time and ground truth.

    Attributes
    ----------
    bands: array (n, h, w): uint16 reflectance x 10000 or uint8 visual
        (optical), float32 linear sigma0 (SAR).
    roles: band roles (``"red","green","blue","nir"`` or ``"vv"``).
    transform, crs: north-up grid in the AOI's UTM zone (metres).
    acquired: acquisition time (UTC, tz-aware).
    sensor: ``"optical"`` or ``"sar"``.
    truth: the objects rendered, with polygons in ``crs``.
    aoi: the AOI (in WGS84, as given).
    meta: generator facts: seed, sun, cloud cover, requested vs placed counts.
    """

    bands: np.ndarray
    roles: tuple[str, ...]
    transform: Affine
    crs: Any
    acquired: datetime
    sensor: str
    truth: list[TruthObject]
    aoi: Any = None
    gsd_m: float = 1.0
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.bands.shape[-2:]

    def counts(self) -> dict[str, int]:
        """Objects rendered, by class."""
        out: dict[str, int] = {}
        for t in self.truth:
            out[t.cls] = out.get(t.cls, 0) + 1
        return out

    def type_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.truth:
            out[t.type] = out.get(t.type, 0) + 1
        return out

    def band(self, role: str) -> np.ndarray:
        return self.bands[self.roles.index(role)]
