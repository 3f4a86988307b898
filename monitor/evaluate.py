"""Score detections against hand labels: matching, precision/recall, count error.

"How far can I trust the counts at my site?" Label a few scenes yourself
(polygons around the cars or ships, e.g. in QGIS), run the detectors, and
compare:

>>> from monitor.evaluate import evaluate_scene
>>> ev = evaluate_scene("detections.geojson", "my_labels.gpkg", cls="railcar")  # doctest: +SKIP
>>> ev.score.line()                                                              # doctest: +SKIP
'P=0.950 R=0.905 F1=0.927 (tp=38 fp=2 fn=4) count 40 vs 42 (-2)'

Matching (:func:`match`) is one-to-one: a detection matches at most one
labelled object and a labelled object at most one detection. A pair is a
candidate when its IoU (intersection over union of the two outlines) is
at least ``min_iou`` (0.25 by default), or, when ``max_centroid_m`` is
given, when the centroids are at most that many metres apart (the rule
for objects a few pixels long, whose outlines rarely overlap much, and for
labels that are points). Candidates are taken greedily, best IoU first,
then nearest centroid: for objects that do not touch each other this is
the optimal assignment.

All geometry is compared in a projected CRS in metres: the detections'
own CRS when it is metric (a :class:`~monitor.detect.DetectionResult` is
in its chip's UTM zone), else the labels' when metric, else the local UTM
zone (:func:`monitor.aoi.utm_crs_for`) of the labels' centre. GeoJSON is
WGS84 longitude/latitude (RFC 7946) unless it carries a legacy ``crs``
member, as QGIS writes for projected exports.

Scores over many scenes (:func:`evaluate_many`) give micro totals (every
object of every scene pooled), one row per scene and class, the median
absolute count error per scene and, from 5 scenes on, a bootstrap 90%
interval of the pooled F1 over scenes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.strtree import STRtree

from monitor.errors import InputError

__all__ = ["Match", "Score", "SceneEval", "Report", "match", "iou", "score", "tally", "long_side_m", "evaluate_scene",
           "evaluate_many", "valid_area", "read_objects", "Objects"]

#: Geometry types a label or detection may have (points only match by centroid distance).
_AREAL = ("Polygon", "MultiPolygon")
_POINT = ("Point",)
#: Property names that hold an object's class, in order of preference.
CLASS_FIELDS = ("class", "cls")


# ---------------------------------------------------------------------------
# matching
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """One matched pair.

    detected, truth: indices into the two sequences given to :func:`match`.
    iou: intersection over union of the two outlines (0 for a point).
    distance_m: distance between the centroids, in CRS units (metres).
    rule: ``"iou"`` when the IoU reached ``min_iou``, else ``"centroid"``.
    """

    detected: int
    truth: int
    iou: float
    distance_m: float
    rule: str


def iou(a, b) -> float:
    """Intersection over union of two geometries (0 when the union has no area)."""
    u = shapely.union(a, b).area
    return float(shapely.intersection(a, b).area / u) if u > 0 else 0.0


def _check_rule(min_iou: float, max_centroid_m: float | None) -> None:
    if not (isinstance(min_iou, (int, float)) and 0.0 < float(min_iou) <= 1.0):
        raise InputError(f"min_iou={min_iou}", "the IoU threshold must be in (0, 1]")
    if max_centroid_m is not None and not (math.isfinite(max_centroid_m) and max_centroid_m >= 0):
        raise InputError(f"max_centroid_m={max_centroid_m}", "the centroid distance must be a finite number >= 0 (metres)")


def match(detected: Sequence, truth: Sequence, *, min_iou: float = 0.25,
          max_centroid_m: float | None = None) -> list[Match]:
    """One-to-one matches between ``detected`` and ``truth`` geometries.

    Both are sequences of shapely geometries in ONE projected CRS in
    metres (Polygons or MultiPolygons; Points match only through the
    centroid rule). A pair is a candidate when its IoU is >= ``min_iou``
    or, if ``max_centroid_m`` is given, when its centroids are at most
    ``max_centroid_m`` metres apart. Candidates are taken greedily by
    decreasing IoU, then increasing centroid distance, then index; each
    detection and each true object is used at most once.

    Two 10 x 10 m boxes shifted by 5 m overlap by half: IoU 50 / 150 = 1/3,
    a match at the default ``min_iou=0.25``. A detection lying over two
    true objects matches only the one it overlaps best; the other is a
    false negative.

    Returns the matches sorted by detection index.
    """
    _check_rule(min_iou, max_centroid_m)
    det = np.asarray([shapely.make_valid(g) for g in detected], dtype=object)
    tru = np.asarray([shapely.make_valid(g) for g in truth], dtype=object)
    if len(det) == 0 or len(tru) == 0:
        return []
    # candidate pairs: outlines that intersect, plus centroids within the distance
    cand = [STRtree(tru).query(det, predicate="intersects")]
    dc, tc = shapely.centroid(det), shapely.centroid(tru)
    if max_centroid_m is not None:
        cand.append(STRtree(tc).query(dc, predicate="dwithin", distance=float(max_centroid_m)))
    pairs = np.unique(np.concatenate(cand, axis=1), axis=1)
    if pairs.shape[1] == 0:
        return []
    i, j = pairs[0], pairs[1]
    union = shapely.area(shapely.union(det[i], tru[j]))
    inter = shapely.area(shapely.intersection(det[i], tru[j]))
    v = np.divide(inter, union, out=np.zeros(len(i)), where=union > 0)
    d = shapely.distance(dc[i], tc[j])
    ok = v >= min_iou - 1e-12
    if max_centroid_m is not None:
        ok |= d <= max_centroid_m
    i, j, v, d = i[ok], j[ok], v[ok], d[ok]
    order = np.lexsort((j, i, d, -v))
    used_d, used_t, out = set(), set(), []
    for k in order:
        a, b = int(i[k]), int(j[k])
        if a in used_d or b in used_t:
            continue
        used_d.add(a)
        used_t.add(b)
        out.append(Match(a, b, float(v[k]), float(d[k]), "iou" if v[k] >= min_iou - 1e-12 else "centroid"))
    return sorted(out, key=lambda m: m.detected)


# ---------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """Matching counts of one scene (or many pooled) and the derived rates.

    tp: detections matched to a true object; fp: detections left over;
    fn: true objects left over.
    count: the detected count, objects. By default ``tp + fp``; for a
        :class:`~monitor.detect.DetectionResult` the count the detector
        reported (at coarse pixel sizes the railcar count is estimated from
        the occupied track length and may differ from the outlines).
    precision = tp / (tp + fp), recall = tp / (tp + fn): 1.0 when the
        denominator is 0 (nothing claimed, nothing to find); f1 their
        harmonic mean.
    truth_count = tp + fn; count_error = count - truth_count (signed,
        objects); relative_count_error = |count_error| / truth_count (the
        absolute error when truth_count is 0).
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    count: float | None = None

    def __post_init__(self):
        if self.count is None:
            object.__setattr__(self, "count", self.tp + self.fp)

    @property
    def truth_count(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def count_error(self) -> float:
        return self.count - self.truth_count

    @property
    def relative_count_error(self) -> float:
        n = self.truth_count
        return abs(self.count_error) / n if n else float(abs(self.count_error))

    def __add__(self, other: "Score") -> "Score":
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.count + other.count)

    def line(self) -> str:
        """``P=0.950 R=0.905 F1=0.927 (tp=38 fp=2 fn=4) count 40 vs 42 (-2)``."""
        c = _num(self.count)
        return (f"P={self.precision:.3f} R={self.recall:.3f} F1={self.f1:.3f} "
                f"(tp={self.tp} fp={self.fp} fn={self.fn}) count {c} vs {self.truth_count} "
                f"({_num(self.count_error, signed=True)})")

    def to_dict(self) -> dict:
        """Plain JSON-ready fields: the counts and the derived rates (rounded to 4 digits)."""
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": round(self.precision, 4),
                "recall": round(self.recall, 4), "f1": round(self.f1, 4), "count": _num(self.count),
                "truth_count": self.truth_count, "count_error": _num(self.count_error),
                "relative_count_error": round(self.relative_count_error, 4)}


def _num(x, signed: bool = False):
    v = int(x) if float(x).is_integer() else round(float(x), 2)
    return f"{v:+}" if signed else v


def long_side_m(geoms: Sequence) -> np.ndarray:
    """Length of each geometry: the long side of its minimum rotated
    rectangle, in CRS units (metres); 0 for a point."""
    g = np.asarray(list(geoms), dtype=object)
    if len(g) == 0:
        return np.zeros(0)
    out = np.zeros(len(g))
    for k, r in enumerate(shapely.oriented_envelope(g)):
        if r.geom_type == "Polygon":
            xy = np.asarray(r.exterior.coords)
            out[k] = float(np.max(np.hypot(*np.diff(xy, axis=0).T)))
        elif r.geom_type == "LineString":
            out[k] = float(r.length)
    return out


def tally(matches: Sequence[Match], n_detected: int, n_truth: int, *, ignore_truth=None,
          ignore_detected=None, count: float | None = None) -> Score:
    """The :class:`Score` of ``matches`` between ``n_detected`` detections
    and ``n_truth`` true objects, with optional "don't care" objects.

    ignore_truth: bool per true object: never a miss, and a detection
        matched to it is neither a hit nor a false alarm (e.g. ships shorter
        than the size being evaluated).
    ignore_detected: bool per detection: not a false alarm when unmatched
        (a matched one still counts as a hit).
    count: the detected count (default ``tp + fp``).
    """
    it = np.zeros(n_truth, bool) if ignore_truth is None else np.asarray(ignore_truth, bool)
    idet = np.zeros(n_detected, bool) if ignore_detected is None else np.asarray(ignore_detected, bool)
    matched_d = {m.detected for m in matches}
    tp = sum(1 for m in matches if not it[m.truth])
    fp = sum(1 for i in range(n_detected) if i not in matched_d and not idet[i])
    fn = int((~it).sum()) - tp
    return Score(tp, fp, fn, count)


def score(detected: Sequence, truth: Sequence, *, min_iou: float = 0.25,
          max_centroid_m: float | None = None, ignore_truth=None, ignore_detected=None) -> Score:
    """The :class:`Score` of two geometry sequences (one metric CRS) under
    :func:`match`; ``ignore_truth`` / ``ignore_detected`` as in :func:`tally`."""
    m = match(detected, truth, min_iou=min_iou, max_centroid_m=max_centroid_m)
    return tally(m, len(detected), len(truth), ignore_truth=ignore_truth, ignore_detected=ignore_detected)


# ---------------------------------------------------------------------------
# reading detections and labels
# ---------------------------------------------------------------------------


@dataclass
class Objects:
    """Objects read from one input: geometries, classes, CRS.

    geoms: shapely geometries in ``crs``; classes: one class name per
    object, or ``None`` when the input has no class property.
    reported: for detector output, the count each class reported.
    source: what the input was (a path, ``"detections"``...), for errors.
    """

    geoms: list
    classes: list | None
    crs: CRS
    source: str
    reported: dict = field(default_factory=dict)

    def to_crs(self, crs: CRS) -> "Objects":
        if self.crs.equals(crs):
            return self
        tr = Transformer.from_crs(self.crs, crs, always_xy=True)
        fn = lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))  # noqa: E731
        geoms = [shapely.transform(g, fn) for g in self.geoms]
        return Objects(geoms, self.classes, crs, self.source, self.reported)


def _crs(value, source) -> CRS:
    try:
        return CRS.from_user_input(value)
    except Exception as e:  # pyproj.exceptions.CRSError and friends
        raise InputError(source, f"unknown CRS {str(value)[:60]!r} ({e.__class__.__name__})") from None


def _is_metric(crs: CRS) -> bool:
    if not crs.is_projected:
        return False
    units = {a.unit_name.lower() for a in crs.axis_info[:2]}
    return units <= {"metre", "meter", "m"}


def _check_geoms(geoms, source, allow_points: bool, what: str) -> list:
    allowed = _AREAL + (_POINT if allow_points else ())
    out = []
    for k, g in enumerate(geoms):
        if g is None or shapely.is_empty(g):
            raise InputError(source, f"{what} {k}: empty geometry")
        if g.geom_type not in allowed:
            kinds = "Polygon or Point" if allow_points else "Polygon"
            raise InputError(source, f"{what} {k}: {g.geom_type} geometry (expected {kinds})")
        out.append(g)
    return out


def _classes(props: list[dict], source) -> list | None:
    """The class of each feature from its properties, ``None`` when no feature has one."""
    for name in CLASS_FIELDS:
        vals = [p.get(name) if isinstance(p, dict) else None for p in props]
        have = [v is not None and v == v for v in vals]  # v == v drops NaN
        if any(have):
            if not all(have):
                raise InputError(source, f"{len(have) - sum(have)} of {len(have)} features have no "
                                         f"{name!r} property (give every feature a class, or none)")
            return [str(v) for v in vals]
    return None


def _from_feature_collection(doc, source, allow_points: bool) -> Objects:
    from shapely.geometry import shape

    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        got = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(source, f"not a GeoJSON FeatureCollection (type {got!r})")
    crs = CRS.from_epsg(4326)
    legacy = doc.get("crs")
    if isinstance(legacy, dict):
        name = (legacy.get("properties") or {}).get("name")
        if name:
            crs = _crs(name, source)
    geoms, props = [], []
    for k, f in enumerate(doc["features"]):
        if not isinstance(f, dict) or f.get("type") != "Feature":
            raise InputError(source, f"feature {k}: not a GeoJSON Feature")
        if not f.get("geometry"):
            raise InputError(source, f"feature {k}: empty geometry")
        try:
            geoms.append(shape(f["geometry"]))
        except Exception as e:
            raise InputError(source, f"feature {k}: bad geometry ({e.__class__.__name__}: {e})") from None
        props.append(f.get("properties") or {})
    geoms = _check_geoms(geoms, source, allow_points, "feature")
    if crs.is_geographic and geoms:
        x0, y0, x1, y1 = shapely.total_bounds(np.asarray(geoms, dtype=object))
        if min(x0, y0) < -180 or x1 > 180 or max(abs(y0), abs(y1)) > 90:
            raise InputError(source, "coordinates are not longitude/latitude degrees (GeoJSON is WGS84, "
                                     "RFC 7946); add a 'crs' member or save as GeoPackage")
    return Objects(geoms, _classes(props, source), crs, str(source))


def _from_frame(df, source, allow_points: bool) -> Objects:
    if df.crs is None:
        raise InputError(source, "no CRS (set one, e.g. EPSG:4326 or the local UTM zone)")
    geoms = _check_geoms(list(df.geometry), source, allow_points, "row")
    props = df.drop(columns=df.geometry.name).to_dict("records")
    return Objects(geoms, _classes(props, source), _crs(df.crs, source), str(source))


def _from_results(results, source) -> Objects:
    results = list(results)
    if not results:
        raise InputError(source, "no detection results")
    crs = _crs(results[0].crs, source)
    geoms, classes, reported = [], [], {}
    for r in results:
        g = [d.geometry for d in r.detections]
        if g and not _crs(r.crs, source).equals(crs):
            g = Objects(g, None, _crs(r.crs, source), str(source)).to_crs(crs).geoms
        geoms += g
        classes += [d.cls for d in r.detections]
        for k, v in r.counts.items():
            reported[k] = reported.get(k, 0) + v
    geoms = _check_geoms(geoms, source, False, "detection")
    return Objects(geoms, classes, crs, str(source), reported)


def read_objects(obj, *, what: str = "input", allow_points: bool = True) -> Objects:
    """Read detections or labels into :class:`Objects`.

    ``obj`` is a :class:`~monitor.detect.DetectionResult` (or a list of
    them, as :func:`monitor.detect.detect` returns), a GeoJSON
    FeatureCollection dict, a GeoDataFrame, or a path to a GeoJSON file or
    any vector file geopandas reads (GeoPackage, shapefile...). Geometries
    must be Polygons or MultiPolygons (Points too with ``allow_points``).
    An object's class is its ``class`` (or ``cls``) property. Any problem
    is an :class:`InputError` naming the file (or ``what``).
    """
    from monitor.detect import DetectionResult

    if isinstance(obj, DetectionResult):
        return _from_results([obj], what)
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(r, DetectionResult) for r in obj):
        return _from_results(obj, what)
    if isinstance(obj, Objects):
        return obj
    if isinstance(obj, dict):
        return _from_feature_collection(obj, what, allow_points)
    if hasattr(obj, "geometry") and hasattr(obj, "crs") and hasattr(obj, "to_dict"):
        return _from_frame(obj, what, allow_points)
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        if not path.exists():
            raise InputError(path, "no such file")
        if path.suffix.lower() in (".geojson", ".json"):
            from monitor.errors import read_json

            return _from_feature_collection(read_json(path), path, allow_points)
        import geopandas as gpd

        try:
            df = gpd.read_file(path)
        except Exception as e:
            msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
            raise InputError(path, f"cannot read vector file ({msg})") from None
        return _from_frame(df, path, allow_points)
    raise InputError(what, f"cannot read objects from a {type(obj).__name__}")


# ---------------------------------------------------------------------------
# one scene
# ---------------------------------------------------------------------------


@dataclass
class SceneEval:
    """The evaluation of one scene.

    name: the scene's name (given, else the detections' file name).
    by_class: a :class:`Score` per object class (matching never pairs
        objects of different classes).
    matches: per class, the :class:`Match` list (indices into the kept
        objects of that class).
    crs: the metric CRS the geometries were compared in.
    dropped: objects left out by ``within``: ``{"detections": n, "truth": m}``,
        plus ``"small_truth"``: labels shorter than ``min_length_m``.
    """

    name: str
    by_class: dict[str, Score]
    matches: dict[str, list[Match]]
    crs: CRS
    dropped: dict = field(default_factory=dict)

    @property
    def score(self) -> Score:
        """All classes pooled."""
        return sum(self.by_class.values(), Score())


def _work_crs(det: Objects, tru: Objects) -> CRS:
    for o in (det, tru):
        if _is_metric(o.crs):
            return o.crs
    for o in (tru, det):
        if o.geoms:
            x0, y0, x1, y1 = shapely.total_bounds(np.asarray(o.geoms, dtype=object))
            if not o.crs.equals(CRS.from_epsg(4326)):
                tr = Transformer.from_crs(o.crs, 4326, always_xy=True)
                (x0, x1), (y0, y1) = tr.transform([x0, x1], [y0, y1])
            from monitor.aoi import utm_crs_for

            return CRS.from_user_input(utm_crs_for((x0 + x1) / 2, (y0 + y1) / 2).to_wkt())
    return det.crs


def _within_geom(within, within_crs, crs: CRS):
    """``within`` (a geometry in ``within_crs``, or an AOI: its boundary) in ``crs``."""
    from monitor.aoi import AOI

    if isinstance(within, AOI):
        within, within_crs = within.boundary, within.crs
    src = _crs(within_crs, "within")
    g = shapely.make_valid(within)
    if not src.equals(crs):
        g = Objects([g], None, src, "within").to_crs(crs).geoms[0]
    shapely.prepare(g)
    return g


def _class_sets(det: Objects, tru: Objects, cls: str | None) -> list[str]:
    if cls is not None:
        return [cls]
    dn = sorted(set(det.classes)) if det.classes is not None else None
    tn = sorted(set(tru.classes)) if tru.classes is not None else None
    for side, names, other in ((det, dn, tn), (tru, tn, dn)):
        if names is None and side.geoms and other is not None and len(other) > 1:
            raise InputError(side.source, f"no 'class' property to tell {', '.join(other)} apart; "
                                          "give the class to evaluate (cls=..., --class)")
    names = sorted(set(dn or []) | set(tn or []))
    return names or ["object"]


def evaluate_scene(detections, truth, *, cls: str | None = None, within=None, within_crs: Any = "EPSG:4326",
                   min_iou: float = 0.25, max_centroid_m: float | None = None,
                   min_length_m: float | None = None, min_detected_length_m: float | None = None,
                   name: str | None = None) -> SceneEval:
    """Score one scene's detections against its hand labels.

    detections: a :class:`~monitor.detect.DetectionResult` (or the list
        :func:`monitor.detect.detect` returns), a GeoJSON FeatureCollection
        (dict or file, e.g. the output of ``monitor detect --geojson``) or
        a GeoDataFrame.
    truth: the labels, a GeoJSON/GeoPackage/... file, a FeatureCollection
        dict or a GeoDataFrame; Polygons, or Points when
        ``max_centroid_m`` is given (they match by centroid distance only).
    cls: evaluate this class only (``"railcar"``, ``"vessel"``); a side
        without a ``class`` property is taken to be all of this class.
        ``None``: every class found, each matched separately.
    within: a polygon (in ``within_crs``, WGS84 lon/lat by default) or an
        :class:`~monitor.aoi.AOI` (its boundary): only objects whose
        centroid lies inside count, on both sides, e.g. the AOI or the
        part of the scene that was clear, so that labels the detector could
        not see are not counted as misses.
    min_iou, max_centroid_m: the matching rule of :func:`match` (metres).
    min_length_m: evaluate objects at least this long only (metres, the
        long side of the minimum rotated rectangle; e.g. ships >= 30 m):
        shorter labels are "don't care" (:func:`tally`): never a miss, and
        the detection matched to one is neither hit nor false alarm.
    min_detected_length_m: an unmatched detection shorter than this is
        not a false alarm (default ``min_length_m``; a little less allows
        for outlines that come out short).
    name: the scene's name in reports.

    Returns a :class:`SceneEval`. Bad inputs raise :class:`InputError`
    naming the file.
    """
    _check_rule(min_iou, max_centroid_m)
    if min_detected_length_m is None:
        min_detected_length_m = min_length_m
    for k, v in (("min_length_m", min_length_m), ("min_detected_length_m", min_detected_length_m)):
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise InputError(f"{k}={v}", "the length must be a finite number >= 0 (metres)")
    det = read_objects(detections, what="detections", allow_points=True)
    tru = read_objects(truth, what="truth", allow_points=True)
    if min_length_m is not None:
        k = next((k for k, g in enumerate(tru.geoms) if g.geom_type == "Point"), None)
        if k is not None:
            raise InputError(tru.source, f"feature {k} is a Point: a point has no length for min_length_m")
    if max_centroid_m is None:
        for o in (det, tru):
            k = next((k for k, g in enumerate(o.geoms) if g.geom_type == "Point"), None)
            if k is not None:
                raise InputError(o.source, f"feature {k} is a Point: points match only by centroid distance; "
                                           "give max_centroid_m (--centroid-m)")
    crs = _work_crs(det, tru)
    det, tru = det.to_crs(crs), tru.to_crs(crs)
    names = _class_sets(det, tru, cls)
    area = _within_geom(within, within_crs, crs) if within is not None else None
    by_class, matches = {}, {}
    dropped = {"detections": 0, "truth": 0}
    for c in names:
        keep = {}
        for key, o in (("detections", det), ("truth", tru)):
            g = np.asarray([g for g, k in zip(o.geoms, o.classes or [c] * len(o.geoms)) if k == c], dtype=object)
            n_all = len(g)
            if area is not None and len(g):
                g = g[shapely.covers(area, shapely.centroid(g))]
            dropped[key] += n_all - len(g)
            keep[key] = (g, n_all)
        (dg, n_det_all), (tg, _) = keep["detections"], keep["truth"]
        m = match(list(dg), list(tg), min_iou=min_iou, max_centroid_m=max_centroid_m)
        count = ign_t = ign_d = None
        if min_length_m is not None:  # a size class: counted as tp + fp of that size
            ign_t = long_side_m(tg) < min_length_m
            ign_d = long_side_m(dg) < min_detected_length_m
            dropped["small_truth"] = dropped.get("small_truth", 0) + int(ign_t.sum())
        elif c in det.reported:  # the detector's own count, less the detections left out
            count = det.reported[c] - (n_det_all - len(dg))
        by_class[c] = tally(m, len(dg), len(tg), ignore_truth=ign_t, ignore_detected=ign_d, count=count)
        matches[c] = m
    if name is None:
        name = Path(det.source).stem if det.source not in ("detections", "input") else "scene"
    return SceneEval(name, by_class, matches, crs, dropped)


def valid_area(chip, *, aoi: bool = True):
    """The part of a :class:`~monitor.imagery.Chip` that held clear data, as
    one (Multi)Polygon in the chip's CRS (metres); intersected with the
    AOI boundary when ``aoi``. Pass it as ``within=`` with
    ``within_crs=chip.crs``."""
    from rasterio import features
    from shapely.geometry import shape

    valid = np.asarray(chip.valid, dtype=np.uint8)
    polys = [shape(g) for g, v in features.shapes(valid, mask=valid.astype(bool), transform=chip.transform) if v]
    g = shapely.union_all(polys) if polys else shapely.Polygon()
    if aoi:
        g = shapely.intersection(g, shapely.make_valid(chip.local_aoi.boundary))
    return g


# ---------------------------------------------------------------------------
# many scenes
# ---------------------------------------------------------------------------


@dataclass
class Report:
    """Scores over many scenes.

    scenes: the :class:`SceneEval` of each scene.
    total: all classes of all scenes pooled (micro); by_class: pooled per class.
    frame: a pandas DataFrame, one row per scene and class: scene, class,
        tp, fp, fn, precision, recall, f1, count, truth_count, count_error.
    median_abs_count_error: median over scenes of |count - truth| (objects,
        all classes of a scene together).
    scene_f1: (min, median, max) of the per-scene F1.
    f1_interval: bootstrap 90% interval (5th, 95th percentile) of the
        pooled F1 when scenes are resampled with replacement; ``None``
        under 5 scenes.
    """

    scenes: list[SceneEval]
    total: Score
    by_class: dict[str, Score]
    frame: Any
    median_abs_count_error: float
    scene_f1: tuple[float, float, float]
    f1_interval: tuple[float, float] | None

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        out = [f"{c}: {s.line()}" for c, s in self.by_class.items()]
        if len(self.by_class) > 1:
            out.append(f"all: {self.total.line()}")
        lo, med, hi = self.scene_f1
        tail = (f"; F1 90% interval {self.f1_interval[0]:.3f}-{self.f1_interval[1]:.3f} (bootstrap over scenes)"
                if self.f1_interval else "")
        out.append(f"{len(self.scenes)} scenes: median |count error| {self.median_abs_count_error:g}; "
                   f"per-scene F1 min {lo:.3f} median {med:.3f} max {hi:.3f}{tail}")
        return out

    def to_dict(self) -> dict:
        """JSON-ready summary (the per-scene rows under ``"scenes"``)."""
        return {"scenes": len(self.scenes), "total": self.total.to_dict(),
                "classes": {c: s.to_dict() for c, s in self.by_class.items()},
                "median_abs_count_error": _num(self.median_abs_count_error),
                "scene_f1": [round(v, 4) for v in self.scene_f1],
                "f1_interval": None if self.f1_interval is None else [round(v, 4) for v in self.f1_interval],
                "rows": self.frame.to_dict("records")}


def bootstrap_f1(scores: Sequence[Score], *, n: int = 2000, level: float = 0.90,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the pooled F1 over scenes: ``n``
    resamples of the scenes with replacement (fixed ``seed``: the same
    input gives the same interval)."""
    tp = np.array([s.tp for s in scores], float)
    fp = np.array([s.fp for s in scores], float)
    fn = np.array([s.fn for s in scores], float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(scores), size=(n, len(scores)))
    t, p, f = tp[idx].sum(1), fp[idx].sum(1), fn[idx].sum(1)
    prec = np.divide(t, t + p, out=np.ones(n), where=t + p > 0)
    rec = np.divide(t, t + f, out=np.ones(n), where=t + f > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros(n), where=prec + rec > 0)
    a = (1 - level) / 2
    return float(np.quantile(f1, a)), float(np.quantile(f1, 1 - a))


def evaluate_many(pairs: Iterable, **options) -> Report:
    """Score many scenes and summarise them in a :class:`Report`.

    pairs: :class:`SceneEval` objects, or ``(detections, truth)`` /
        ``(detections, truth, name)`` tuples passed to
        :func:`evaluate_scene` with ``options`` (cls, within, min_iou,
        max_centroid_m...).
    """
    import pandas as pd

    scenes = []
    for k, p in enumerate(pairs):
        if isinstance(p, SceneEval):
            scenes.append(p)
            continue
        det, tru, *rest = p
        scenes.append(evaluate_scene(det, tru, name=rest[0] if rest else f"scene{k}", **options))
    if not scenes:
        raise InputError("evaluate_many", "no scenes to evaluate")
    by_class: dict[str, Score] = {}
    rows = []
    for s in scenes:
        for c, sc in s.by_class.items():
            by_class[c] = by_class.get(c, Score()) + sc
            rows.append({"scene": s.name, "class": c, "tp": sc.tp, "fp": sc.fp, "fn": sc.fn,
                         "precision": sc.precision, "recall": sc.recall, "f1": sc.f1, "count": sc.count,
                         "truth_count": sc.truth_count, "count_error": sc.count_error})
    frame = pd.DataFrame(rows, columns=["scene", "class", "tp", "fp", "fn", "precision", "recall", "f1", "count",
                                        "truth_count", "count_error"])
    per_scene = [s.score for s in scenes]
    f1s = [s.f1 for s in per_scene]
    total = sum(per_scene, Score())
    interval = bootstrap_f1(per_scene) if len(scenes) >= 5 else None
    return Report(scenes, total, by_class, frame, float(np.median([abs(s.count_error) for s in per_scene])),
                  (float(min(f1s)), float(np.median(f1s)), float(max(f1s))), interval)
