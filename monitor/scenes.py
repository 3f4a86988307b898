"""Scenes: find imagery (files, folders, STAC) and read its metadata.

A :class:`Scene` is one acquisition: one multi-band raster, or several
single-band rasters (one per band, as Sentinel-2 STAC items serve them).
Discovery and metadata reading live here; reading pixels is
:mod:`monitor.imagery`.

(The loader is built under issue 3; this module fixes the data model that
the detectors, the synthetic generator and the store share.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Band roles the detectors understand.
BAND_ROLES = ("red", "green", "blue", "nir", "pan", "vv", "vh", "hh", "hv", "mask", "alpha", "gray")


@dataclass(frozen=True)
class BandRef:
    """One band of a scene: the file (or URL) it lives in and its role.

    ``index`` is the 1-based band index in ``href`` (rasterio convention).
    """

    href: str
    index: int = 1
    role: str = "gray"


@dataclass(frozen=True)
class Scene:
    """One acquisition, possibly spread over several files.

    Attributes
    ----------
    id: stable id (the STAC id, else a digest of the file's header and size).
    path: the file or STAC item JSON the scene was found at.
    bands: the bands with their roles, in a stable order.
    acquired: acquisition time, timezone-aware UTC, or ``None`` if unknown.
    sensor: ``"optical"`` or ``"sar"``.
    gsd_m: ground sample distance in metres (finest band).
    crs: the rasters' CRS as WKT/authority string, ``None`` if absent.
    footprint: WGS84 (lon, lat) shapely Polygon of the valid extent.
    cloud_cover: percent 0..100 where the metadata gives it.
    properties: any further metadata (STAC properties, tags).
    """

    id: str
    path: str
    bands: tuple[BandRef, ...]
    acquired: datetime | None = None
    sensor: str = "optical"
    gsd_m: float | None = None
    crs: str | None = None
    footprint: Any = None
    cloud_cover: float | None = None
    properties: dict = field(default_factory=dict)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(b.role for b in self.bands)
