"""Detectors: one module per object class, and a tiny registry.

A detector is a function ``fn(chip, **options) -> DetectionResult``
registered with :func:`register` under an object class (``"railcar"``,
``"vessel"``) and a version string. The version is stored with every
observation so that re-runs with the same detector version are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from monitor.errors import InputError


@dataclass
class Detection:
    """One detected object.

    geometry: oriented shapely Polygon in the chip's CRS (metres).
    cls: object class (``"railcar"``, ``"vessel"``).
    score: confidence 0..1.
    length_m, width_m: size of the minimum rotated rectangle, metres.
    heading_deg: orientation of the long axis, degrees clockwise from north
        (0..180), where meaningful.
    properties: extra fields (``track`` for railcars, ``type``, ...).
    """

    geometry: Any
    cls: str
    score: float
    length_m: float
    width_m: float
    heading_deg: float | None = None
    properties: dict = field(default_factory=dict)


@dataclass
class DetectionResult:
    """What one detector found in one chip.

    counts: objects per class (locomotives included in ``railcar``).
    intervals: per class, a (low, high) count interval: from the detector,
        equal to the count where individual objects are resolved; after
        :func:`detect`, the calibrated interval of the true count
        (:mod:`monitor.uncertainty`, 90%).
    coverage: share of the relevant AOI part (track length, water area)
        that was visible, 0..1.
    detections: the objects, geometries in ``crs``.
    detector, version: which detector made it.
    extras: per-detector details (per-track counts, track offsets, ...).
    """

    counts: dict[str, int]
    intervals: dict[str, tuple[float, float]]
    coverage: float
    detections: list[Detection]
    crs: Any
    detector: str
    version: str
    extras: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DetectorSpec:
    cls: str
    name: str
    version: str
    kinds: tuple[str, ...]
    fn: Callable[..., DetectionResult]


_REGISTRY: dict[str, DetectorSpec] = {}


def register(cls: str, name: str, version: str, kinds: tuple[str, ...]):
    """Decorator: register ``fn`` as the detector of ``cls`` for AOI ``kinds``."""

    def deco(fn):
        _REGISTRY[cls] = DetectorSpec(cls, name, version, tuple(kinds), fn)
        return fn

    return deco


def _load_builtin() -> None:
    # Import for their registration side effect; a missing module is skipped
    # so that the package stays importable while detectors are developed.
    import importlib

    for mod in ("monitor.detect.railcars", "monitor.detect.vessels"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def detectors() -> dict[str, DetectorSpec]:
    """The registered detectors by object class."""
    _load_builtin()
    return dict(_REGISTRY)


def detectors_for(kind: str) -> list[DetectorSpec]:
    """The detectors that apply to an AOI ``kind`` (``rail_yard``, ``port``)."""
    return [d for d in detectors().values() if kind in d.kinds]


def detect(chip, classes: list[str] | None = None, *, trace: bool | None = None,
           uncertainty: bool = True, **options) -> list[DetectionResult]:
    """Run the detectors that fit the chip's AOI kind (or ``classes``).

    ``uncertainty`` (default on): give each result calibrated count
    intervals (:func:`monitor.uncertainty.apply_uncertainty`, 90%): the
    number of true objects visible in the covered part, from the
    detections' scores, the detector's recall at the chip's pixel size and
    their spread between scenes (bands of clear or cloudy scenes where the
    scene's cloud cover is known); ``extras["uncertainty"]`` says how. Off,
    the detectors' own intervals stay (equal to the count where objects
    are resolved).

    ``trace`` (rail yards): count along track centrelines traced from the
    chip itself (:func:`monitor.trace.trace_tracks`) instead of the AOI's
    track lines. ``None`` (the default) traces only when the AOI has no
    track lines, as for a yard a user drew only as a boundary; the results
    then say ``extras["tracks"] == "traced"``.
    """
    specs = detectors_for(chip.aoi.kind) if classes is None else [detectors()[c] for c in classes]
    if not specs:
        raise InputError(chip.aoi.id, f"no detector for AOI kind {chip.aoi.kind!r}")
    traced = False
    if chip.aoi.kind == "rail_yard" and "tracks" not in options and (trace or (trace is None and not chip.aoi.tracks)):
        from monitor.trace import trace_tracks

        lines = trace_tracks(chip, chip.aoi)
        if not lines:
            raise InputError(chip.aoi.id, "no rail track could be traced in the scene (and the AOI has no track lines)")
        options["tracks"] = [(f.id, f.geometry) for f in lines]
        traced = True
    results = [s.fn(chip, **options) for s in specs]
    if uncertainty:
        from monitor.uncertainty import apply_uncertainty

        cloud = getattr(chip.scene, "cloud_cover", None) if chip.scene is not None else None
        for r in results:
            apply_uncertainty(r, float(chip.gsd_m), cloud_cover=cloud)
    if traced:
        for r in results:
            r.extras["tracks"] = "traced"
    return results


def json_ready(v):
    """JSON-ready value (numpy scalars -> Python, tuples -> lists)."""
    import numpy as np

    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {str(k): json_ready(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_ready(x) for x in v]
    return v


def detection_summary(chip, results) -> dict:
    """The ``monitor detect --json`` object of shared/DESIGN.md for one chip
    and its results: scene, aoi, acquired (ISO-8601 UTC or None), sensor,
    gsd_m (metres), coverage (0..1), counts, intervals, chip_coverage,
    detectors (name -> version), path, and ``tracks: "traced"`` when the
    railcars were counted along traced tracks.

    ``coverage`` is the least coverage any detector reports (the share of
    the AOI's tracks or water that was seen), else the chip's coverage.
    """
    from monitor.scenes import iso_utc

    counts: dict = {}
    intervals: dict = {}
    dets: dict = {}
    for r in results:
        for k, v in r.counts.items():
            counts[k] = counts.get(k, 0) + int(v)
        for k, v in (r.intervals or {}).items():
            intervals[k] = [float(v[0]), float(v[1])]
        dets[r.detector] = r.version
    cov = min((float(r.coverage) for r in results), default=float(chip.coverage))
    scene = chip.scene
    out = {
        "scene": scene.id if scene is not None else None,
        "aoi": chip.aoi.id,
        "acquired": iso_utc(scene.acquired) if scene is not None else None,
        "sensor": chip.sensor,
        "gsd_m": round(float(chip.gsd_m), 4),
        "coverage": round(cov, 4),
        "counts": counts,
        "intervals": intervals,
        "chip_coverage": round(float(chip.coverage), 4),
        "detectors": dets,
        "path": scene.path if scene is not None else None,
    }
    if any(r.extras.get("tracks") == "traced" for r in results):
        out["tracks"] = "traced"
    return out


def detections_geojson(chip, results) -> dict:
    """RFC 7946 FeatureCollection (WGS84 lon/lat) of every detection.

    One Polygon per object, properties ``class``, ``score``, ``length_m``,
    ``width_m``, ``heading_deg``, ``track`` (railcars) and the detection's
    own properties.
    """
    import numpy as np
    import shapely
    from pyproj import Transformer
    from shapely.geometry import mapping
    from shapely.geometry.polygon import orient

    from monitor.aoi import WGS84

    crs = chip.crs
    tr = Transformer.from_crs(crs.to_wkt() if hasattr(crs, "to_wkt") else crs, WGS84, always_xy=True)
    fn = lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1]))  # noqa: E731
    feats = []
    for r in results:
        for d in r.detections:
            g = shapely.transform(d.geometry, fn)
            if g.geom_type == "Polygon":
                g = orient(g, 1.0)  # RFC 7946: exterior ring counterclockwise
            props = {"class": d.cls, "score": round(float(d.score), 4),
                     "length_m": round(float(d.length_m), 2), "width_m": round(float(d.width_m), 2),
                     "heading_deg": None if d.heading_deg is None else round(float(d.heading_deg), 1)}
            if d.cls == "railcar":
                props["track"] = d.properties.get("track")
            for k, v in d.properties.items():
                props.setdefault(k, json_ready(v))
            props["detector"] = r.detector
            props["version"] = r.version
            feats.append({"type": "Feature", "properties": props, "geometry": json_ready(mapping(g))})
    return {"type": "FeatureCollection", "features": feats}


def detections_frame(chip, results):
    """The detections of :func:`detections_geojson` as a geopandas
    GeoDataFrame in WGS84 (EPSG:4326), one row per object."""
    import geopandas as gpd

    fc = detections_geojson(chip, results)
    cols = ["class", "score", "length_m", "width_m", "heading_deg", "track", "detector", "version", "geometry"]
    if not fc["features"]:
        return gpd.GeoDataFrame({c: [] for c in cols[:-1]}, geometry=[], crs="EPSG:4326")
    return gpd.GeoDataFrame.from_features(fc["features"], crs="EPSG:4326")
