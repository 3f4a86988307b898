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
    intervals: per class, a (low, high) count interval (equal to the count
        where individual objects are resolved).
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
           **options) -> list[DetectionResult]:
    """Run the detectors that fit the chip's AOI kind (or ``classes``).

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
    if traced:
        for r in results:
            r.extras["tracks"] = "traced"
    return results
