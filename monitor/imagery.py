"""Chips: an AOI's window of a scene, read, reprojected and masked.

(The reader, ``read_chip``, is built under issue 3; this module fixes the
:class:`Chip` that every detector takes.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from affine import Affine

from monitor.aoi import AOI


@dataclass
class Chip:
    """The AOI's window of one scene, on a north-up grid in a metric CRS.

    Attributes
    ----------
    bands: float32 array (n_bands, height, width) in the scene's units
        (digital numbers or reflectance for optical, linear sigma0 for SAR).
    roles: the role of each band (``"red"``, ``"nir"``, ``"vv"``...).
    valid: bool array (height, width): True where the pixel holds data
        (not nodata, not masked, not cloud).
    transform: affine pixel -> map transform in ``crs`` (metres).
    crs: the chip's CRS (a rasterio CRS; the AOI's UTM zone by default).
    gsd_m: pixel size in metres.
    aoi: the AOI, in WGS84 as loaded; :attr:`local_aoi` is it in ``crs``.
    scene: the scene it was read from (``None`` for chips built in code).
    coverage: share of the AOI's pixels that are valid, 0..1.
    sensor: ``"optical"`` or ``"sar"``.
    """

    bands: np.ndarray
    roles: tuple[str, ...]
    valid: np.ndarray
    transform: Affine
    crs: Any
    gsd_m: float
    aoi: AOI
    scene: Any = None
    coverage: float = 1.0
    sensor: str = "optical"
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.bands.shape[-2:]

    def band(self, role: str) -> np.ndarray | None:
        """The band with ``role``, or ``None`` when the chip has none."""
        try:
            return self.bands[self.roles.index(role)]
        except ValueError:
            return None

    def has(self, *roles: str) -> bool:
        return all(r in self.roles for r in roles)

    @cached_property
    def local_aoi(self) -> AOI:
        """The AOI with its geometries in the chip's CRS (metres)."""
        return self.aoi.to_crs(self.crs)

    def gray(self) -> np.ndarray:
        """One brightness band: pan/gray if present, else the mean of RGB,
        else the first band (float32, same units as the bands)."""
        for r in ("pan", "gray"):
            b = self.band(r)
            if b is not None:
                return b
        rgb = [self.band(r) for r in ("red", "green", "blue")]
        rgb = [b for b in rgb if b is not None]
        if rgb:
            return np.mean(rgb, axis=0, dtype=np.float32)
        return self.bands[0]
