"""Areas of interest (AOIs): the model, loading and validation of AOI files.

An AOI file is an RFC 7946 GeoJSON FeatureCollection in WGS84 (lon, lat).
Exactly one feature has ``role: "boundary"`` (a Polygon with properties
``id``, ``name``, ``country``, ``kind`` = ``rail_yard`` | ``port``); the
others carry one of the roles below (shared/DESIGN.md):

========  ===================  ==========================================
role      geometry             meaning
========  ===================  ==========================================
track     LineString           centerline of one rail track (id, gauge_mm)
water     Polygon              where vessels may be (basin, river)
berth     LineString           a quay face where ships moor
yard      Polygon              a cargo or container yard
bridge    LineString           a rail bridge track segment
========  ===================  ==========================================

A file that breaks these rules is refused with an :class:`AOIError` that
names the file, the feature and the rule. Geometries are kept in WGS84 in
:class:`AOI`; :meth:`AOI.to_crs` gives the same AOI in a projected CRS
(by default its local UTM zone) where lengths and areas are in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import shapely
from pyproj import CRS, Transformer
from shapely.geometry import shape, mapping
from shapely.geometry.base import BaseGeometry

from monitor.errors import AOIError, read_json

WGS84 = CRS.from_epsg(4326)

ROLES = {
    "boundary": ("Polygon",),
    "track": ("LineString",),
    "water": ("Polygon", "MultiPolygon"),
    "berth": ("LineString",),
    "yard": ("Polygon", "MultiPolygon"),
    "bridge": ("LineString",),
}
KINDS = ("rail_yard", "port")
#: Tolerance (metres) by which a track or berth may poke out of the boundary.
OUTSIDE_TOLERANCE_M = 1.0


@dataclass(frozen=True)
class Feature:
    """One feature of an AOI: its role, id, geometry and properties.

    ``geometry`` is in the CRS of the :class:`AOI` that holds it (WGS84
    lon/lat as loaded, metres after :meth:`AOI.to_crs` to a projected CRS).
    """

    role: str
    id: str
    geometry: BaseGeometry
    properties: dict = field(default_factory=dict)

    @property
    def gauge_mm(self) -> float | None:
        """Track gauge in millimetres (smallest if dual gauge), if known."""
        g = self.properties.get("gauge_mm")
        if isinstance(g, (list, tuple)):
            g = min(g) if g else None
        return float(g) if g is not None else None


@dataclass(frozen=True)
class AOI:
    """An area of interest: a boundary plus tracks, water, berths, yards.

    Attributes
    ----------
    id, name, country, kind:
        From the boundary feature; ``kind`` is ``"rail_yard"`` or ``"port"``.
    boundary:
        The whole area as a Polygon, in :attr:`crs`.
    features:
        Every non-boundary feature, in file order, in :attr:`crs`.
    crs:
        CRS of all geometries: WGS84 (EPSG:4326) when loaded from a file.
    properties:
        The boundary feature's properties (sources, "geometry": "schematic"...).
    source:
        Path of the file it was loaded from (``None`` when built in code).
    """

    id: str
    name: str
    country: str
    kind: str
    boundary: BaseGeometry
    features: tuple[Feature, ...] = ()
    crs: CRS = WGS84
    properties: dict = field(default_factory=dict)
    source: str | None = None

    # -- features by role -------------------------------------------------
    def by_role(self, role: str) -> tuple[Feature, ...]:
        """The features with ``role`` (``"track"``, ``"water"``...)."""
        return tuple(f for f in self.features if f.role == role)

    @property
    def tracks(self) -> tuple[Feature, ...]:
        return self.by_role("track")

    @property
    def water(self) -> tuple[Feature, ...]:
        return self.by_role("water")

    @property
    def berths(self) -> tuple[Feature, ...]:
        return self.by_role("berth")

    @property
    def yards(self) -> tuple[Feature, ...]:
        return self.by_role("yard")

    @property
    def bridges(self) -> tuple[Feature, ...]:
        return self.by_role("bridge")

    @property
    def is_rail(self) -> bool:
        return self.kind == "rail_yard"

    @property
    def is_port(self) -> bool:
        return self.kind == "port"

    # -- coordinate systems ------------------------------------------------
    @cached_property
    def utm_crs(self) -> CRS:
        """The local UTM zone (WGS84 datum) of the boundary's centroid."""
        c = self.to_crs(WGS84).boundary.centroid if not self.crs.equals(WGS84) else self.boundary.centroid
        return utm_crs_for(c.x, c.y)

    def to_crs(self, crs: Any | None = None) -> "AOI":
        """This AOI with every geometry in ``crs`` (default: its UTM zone).

        ``crs`` is anything :class:`pyproj.CRS` accepts (an EPSG code, a
        WKT string, a rasterio CRS). Lengths and areas are in the units of
        ``crs``: metres for UTM.
        """
        dst = self.utm_crs if crs is None else _as_crs(crs)
        if dst.equals(self.crs):
            return self
        tr = Transformer.from_crs(self.crs, dst, always_xy=True)
        return replace(
            self,
            boundary=reproject(self.boundary, tr),
            features=tuple(replace(f, geometry=reproject(f.geometry, tr)) for f in self.features),
            crs=dst,
        )

    # -- summaries ------------------------------------------------------------
    def summary(self) -> dict:
        """Sizes of the AOI in metric units (computed in its UTM zone).

        Keys: id, name, kind, country, area_km2, tracks, track_km, water_km2,
        berths, berth_m, yards, bridges, schematic (bool), source.
        """
        u = self.to_crs(self.utm_crs)
        water = shapely.union_all([f.geometry for f in u.water]) if u.water else None
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "country": self.country,
            "area_km2": round(u.boundary.area / 1e6, 4),
            "tracks": len(u.tracks),
            "track_km": round(sum(f.geometry.length for f in u.tracks) / 1000, 3),
            "water_km2": round(water.area / 1e6, 4) if water is not None else 0.0,
            "berths": len(u.berths),
            "berth_m": round(sum(f.geometry.length for f in u.berths), 1),
            "yards": len(u.yards),
            "bridges": len(u.bridges),
            "schematic": self.properties.get("geometry") == "schematic",
            "source": self.source,
        }

    def to_geojson(self) -> dict:
        """The AOI as an RFC 7946 FeatureCollection (in WGS84)."""
        a = self.to_crs(WGS84)
        feats = [{
            "type": "Feature",
            "properties": {**a.properties, "role": "boundary", "id": a.id, "name": a.name,
                           "country": a.country, "kind": a.kind},
            "geometry": mapping(a.boundary),
        }]
        for f in a.features:
            feats.append({"type": "Feature", "properties": {**f.properties, "role": f.role, "id": f.id},
                          "geometry": mapping(f.geometry)})
        return {"type": "FeatureCollection", "features": feats}


def reproject(geom: BaseGeometry, transformer: Transformer) -> BaseGeometry:
    """``geom`` with its coordinates passed through a pyproj ``transformer``
    (built with ``always_xy=True``)."""
    return shapely.transform(geom, lambda x, y: transformer.transform(x, y), interleaved=False)


def reproject_to(geom: BaseGeometry, src: Any, dst: Any) -> BaseGeometry:
    """``geom`` from CRS ``src`` to CRS ``dst`` (anything pyproj accepts)."""
    s, d = _as_crs(src), _as_crs(dst)
    if s.equals(d):
        return geom
    return reproject(geom, Transformer.from_crs(s, d, always_xy=True))


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS84 UTM zone CRS (EPSG:326xx north, 327xx south) of a point."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def _as_crs(crs: Any) -> CRS:
    if isinstance(crs, CRS):
        return crs
    if hasattr(crs, "to_wkt"):
        return CRS.from_wkt(crs.to_wkt())
    return CRS.from_user_input(crs)


# ---------------------------------------------------------------------------
# bundled AOIs
# ---------------------------------------------------------------------------

def bundled_dir() -> Path:
    """Folder of the bundled AOI files (in the installed package, else aoi/)."""
    try:
        p = resources.files("monitor") / "_bundled_aoi"
        if p.is_dir():
            return Path(str(p))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover
        pass
    return Path(__file__).resolve().parent.parent / "aoi"


def bundled_ids() -> list[str]:
    """Ids of the bundled AOIs, sorted (``["dunay", "khasan", ...]``)."""
    return sorted(p.stem for p in bundled_dir().glob("*.geojson"))


def bundled_aois() -> list[AOI]:
    """Every bundled AOI, loaded and validated."""
    return [load_aoi(i) for i in bundled_ids()]


def load_aoi(ref: "str | Path | AOI") -> AOI:
    """Load an AOI from a bundled id (``"tumangang"``) or a file path.

    A string that names an existing file, or ends in ``.geojson``/``.json``,
    is read as a path; otherwise it must be a bundled id. Raises
    :class:`AOIError` naming the input and the reason.
    """
    if isinstance(ref, AOI):
        return ref
    s = str(ref)
    p = Path(s).expanduser()
    if p.exists() or s.lower().endswith((".geojson", ".json")) or "/" in s:
        return read_aoi_file(p)
    cand = bundled_dir() / f"{s}.geojson"
    if cand.exists():
        return read_aoi_file(cand)
    raise AOIError(s, f"no such AOI file or bundled AOI id (bundled: {', '.join(bundled_ids())})")


def read_aoi_file(path: "str | Path") -> AOI:
    """Read and validate one AOI file; see :func:`parse_aoi` for the rules."""
    path = Path(path)
    doc = read_json(path, AOIError)
    return parse_aoi(doc, source=str(path))


def _feature_label(i: int, props: dict) -> str:
    fid = props.get("id")
    role = props.get("role")
    bits = [f"feature {i}"]
    if fid is not None:
        bits.append(f"id={fid!r}")
    if role is not None:
        bits.append(f"role={role!r}")
    return " (".join([bits[0], ", ".join(bits[1:]) + ")"]) if len(bits) > 1 else bits[0]


def _check_coords(coords: Iterable, where: str, src: str) -> None:
    for c in coords:
        if len(c) < 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in c[:2]):
            raise AOIError(src, f"{where}: coordinate {list(c)!r} is not a finite [lon, lat] pair")
        lon, lat = c[0], c[1]
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise AOIError(src, f"{where}: coordinate [{lon}, {lat}] is outside WGS84 ranges "
                                "(lon -180..180, lat -90..90); AOI files must be in WGS84 lon/lat")


def parse_aoi(doc: Any, source: str = "<aoi>") -> AOI:
    """Validate a parsed AOI GeoJSON document and build the :class:`AOI`.

    Rules (each failure raises :class:`AOIError` "source: feature ...: rule"):
    a FeatureCollection; exactly one ``boundary`` Polygon with id, name,
    country and kind; every feature has a known role and that role's
    geometry type; coordinates within WGS84 ranges; polygons valid (not
    self-intersecting); tracks, berths and bridges inside the boundary
    (within 1 m); water and yards overlap it; feature ids unique.
    """
    src = source
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        got = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        raise AOIError(src, f"not a GeoJSON FeatureCollection (type is {got!r})")
    feats = doc.get("features")
    if not isinstance(feats, list):
        raise AOIError(src, "FeatureCollection has no 'features' list")
    parsed: list[tuple[str, str, BaseGeometry, dict, str]] = []
    for i, f in enumerate(feats):
        if not isinstance(f, dict) or f.get("type") != "Feature":
            raise AOIError(src, f"feature {i}: not a GeoJSON Feature")
        props = f.get("properties") or {}
        if not isinstance(props, dict):
            raise AOIError(src, f"feature {i}: properties must be an object")
        label = _feature_label(i, props)
        role = props.get("role")
        if role is None:
            raise AOIError(src, f"{label}: has no 'role' property (one of {', '.join(ROLES)})")
        if role not in ROLES:
            raise AOIError(src, f"{label}: unknown role {role!r} (expected one of {', '.join(ROLES)})")
        g = f.get("geometry")
        if not isinstance(g, dict) or "type" not in g:
            raise AOIError(src, f"{label}: missing geometry")
        if g["type"] not in ROLES[role]:
            raise AOIError(src, f"{label}: wrong geometry type {g['type']} for role {role!r} "
                                f"(expected {' or '.join(ROLES[role])})")
        try:
            geom = shape(g)
        except Exception as e:  # malformed coordinates
            raise AOIError(src, f"{label}: malformed {g['type']} coordinates ({e})") from None
        _check_coords(shapely.get_coordinates(geom).tolist(), label, src)
        if geom.is_empty:
            raise AOIError(src, f"{label}: empty geometry")
        if g["type"] in ("Polygon", "MultiPolygon") and not geom.is_valid:
            reason = shapely.is_valid_reason(geom)
            raise AOIError(src, f"{label}: invalid polygon ({reason}); polygons must not self-intersect")
        if g["type"] == "LineString" and geom.length == 0:
            raise AOIError(src, f"{label}: line of zero length")
        parsed.append((role, str(props.get("id", f"{role}-{i}")), geom, props, label))

    boundaries = [p for p in parsed if p[0] == "boundary"]
    if not boundaries:
        raise AOIError(src, "missing boundary: one feature must have role 'boundary' (a Polygon)")
    if len(boundaries) > 1:
        raise AOIError(src, f"{boundaries[1][4]}: more than one boundary feature")
    _, _, bgeom, bprops, blabel = boundaries[0]
    for key in ("id", "name", "country", "kind"):
        if not bprops.get(key):
            raise AOIError(src, f"{blabel}: boundary has no {key!r} property")
    if bprops["kind"] not in KINDS:
        raise AOIError(src, f"{blabel}: kind {bprops['kind']!r} is not one of {', '.join(KINDS)}")

    ids = set()
    for role, fid, geom, props, label in parsed:
        if role == "boundary":
            continue
        if fid in ids:
            raise AOIError(src, f"{label}: duplicate feature id {fid!r}")
        ids.add(fid)

    # Containment is checked in metres, in the boundary's UTM zone.
    c = bgeom.centroid
    tr = Transformer.from_crs(WGS84, utm_crs_for(c.x, c.y), always_xy=True)
    bm = reproject(bgeom, tr)
    bm_tol = bm.buffer(OUTSIDE_TOLERANCE_M)
    features = []
    for role, fid, geom, props, label in parsed:
        if role == "boundary":
            continue
        gm = reproject(geom, tr)
        if role in ("track", "berth", "bridge") and not bm_tol.contains(gm):
            out = gm.difference(bm).length
            raise AOIError(src, f"{label}: {role} lies outside the boundary ({out:.0f} m of "
                                f"{gm.length:.0f} m outside)")
        if role in ("water", "yard") and not bm.intersects(gm):
            raise AOIError(src, f"{label}: {role} polygon does not overlap the boundary")
        if role == "track" and "gauge_mm" in props:
            gs = props["gauge_mm"] if isinstance(props["gauge_mm"], list) else [props["gauge_mm"]]
            if not gs or not all(isinstance(v, (int, float)) and 500 <= v <= 2000 for v in gs):
                raise AOIError(src, f"{label}: gauge_mm {props['gauge_mm']!r} is not a gauge in "
                                    "millimetres (500-2000, or a list of them)")
        clean = {k: v for k, v in props.items() if k not in ("role", "id")}
        features.append(Feature(role=role, id=fid, geometry=geom, properties=clean))

    bclean = {k: v for k, v in bprops.items() if k not in ("role",)}
    return AOI(
        id=str(bprops["id"]), name=str(bprops["name"]), country=str(bprops["country"]),
        kind=str(bprops["kind"]), boundary=bgeom, features=tuple(features),
        crs=WGS84, properties=bclean, source=source,
    )


def validate_aoi_file(path: "str | Path") -> AOI:
    """Validate an AOI file; returns the AOI or raises :class:`AOIError`."""
    return read_aoi_file(path)


def new_aoi(id: str, kind: str, boundary: Any, *, name: str | None = None, country: str = "unknown",
            crs: Any = WGS84, source: str = "<new AOI>", **properties: Any) -> AOI:
    """A new AOI with only a boundary, for a site of your own.

    ``boundary`` is a shapely Polygon or ``(west, south, east, north)``
    bounds, in ``crs`` (default WGS84 lon/lat degrees; a projected CRS gives
    metres). ``kind`` is ``"rail_yard"`` or ``"port"``; ``country`` an ISO
    code or name (the contract requires one). The result has no
    tracks, water or berths: the railcar detector then traces the tracks
    from the imagery (``detect()`` says so with ``extras["tracks"] ==
    "traced"``) and the vessel detector finds the water in the image; add
    drawn features later in QGIS for better counts. The AOI is validated as
    a file would be (:func:`parse_aoi`); write it with
    ``json.dump(aoi.to_geojson(), f)``.

    >>> a = new_aoi("muttenz", "rail_yard", (7.62, 47.52, 7.63, 47.53), country="CH")
    >>> a.kind, a.tracks
    ('rail_yard', ())
    """
    from shapely.geometry import Polygon, box

    if isinstance(boundary, BaseGeometry):
        geom = boundary
    else:
        try:
            w, s, e, n = (float(v) for v in boundary)
        except (TypeError, ValueError):
            raise AOIError(source, f"boundary {boundary!r} is neither a Polygon nor "
                                   "(west, south, east, north) bounds") from None
        if not (w < e and s < n):
            raise AOIError(source, f"bounds {boundary!r} are not (west, south, east, north) "
                                   "with west < east and south < north")
        geom = box(w, s, e, n)
    if geom.geom_type == "MultiPolygon" and len(geom.geoms) == 1:
        geom = geom.geoms[0]
    if not isinstance(geom, Polygon):
        raise AOIError(source, f"boundary is a {geom.geom_type}, expected a Polygon")
    geom = reproject_to(geom, crs, WGS84)
    props = {**properties, "role": "boundary", "id": str(id), "name": name or str(id),
             "country": country, "kind": kind}
    doc = {"type": "FeatureCollection",
           "features": [{"type": "Feature", "properties": props, "geometry": mapping(geom)}]}
    return parse_aoi(doc, source=source)
