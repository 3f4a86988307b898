"""``monitor detect SCENE --aoi ID|FILE [--json] [--geojson OUT] [--gsd M]``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def _num(v):
    """JSON-ready value (numpy scalars -> Python, tuples -> lists)."""
    import numpy as np

    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _num(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_num(x) for x in v]
    return v


def detection_summary(chip, results) -> dict:
    """The ``--json`` object of shared/DESIGN.md for one chip and its results.

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
    return {
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
                props.setdefault(k, _num(v))
            props["detector"] = r.detector
            props["version"] = r.version
            feats.append({"type": "Feature", "properties": props, "geometry": _num(mapping(g))})
    return {"type": "FeatureCollection", "features": feats}


def register(app: typer.Typer) -> None:
    @app.command("detect")
    def detect_cmd(
        scene: str = typer.Argument(..., help="A GeoTIFF/COG path or a STAC item JSON."),
        aoi: str = typer.Option(..., "--aoi", help="A bundled AOI id or an AOI file."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
        geojson: Optional[Path] = typer.Option(None, "--geojson", help="Write the detections as GeoJSON here."),
        gsd: Optional[float] = typer.Option(None, "--gsd", help="Read the chip at this pixel size (metres)."),
        sensor: Optional[str] = typer.Option(None, "--sensor", help="Override the sensor kind: optical or sar."),
        trace: bool = typer.Option(False, "--trace", help="Rail yards: trace the tracks in the scene "
                                   "(monitor.trace) and count along them instead of the AOI's lines; "
                                   "done anyway when the AOI has no track lines."),
    ):
        """Detect railcars or vessels in one scene's window of an AOI."""
        from monitor.aoi import load_aoi
        from monitor.cli import fail
        from monitor.detect import detect
        from monitor.errors import InputError
        from monitor.imagery import read_chip
        from monitor.scenes import open_scene

        try:
            a = load_aoi(aoi)
            s = open_scene(scene, sensor=sensor)
            chip = read_chip(s, a, gsd_m=gsd)
            results = detect(chip, trace=True if trace else None)
        except InputError as e:
            raise fail(e)
        summary = detection_summary(chip, results)
        if geojson is not None:
            fc = detections_geojson(chip, results)
            try:
                geojson.write_text(json.dumps(fc), encoding="utf-8")
            except OSError as e:
                raise fail(InputError(geojson, f"cannot write GeoJSON ({e.strerror or e})"))
        if json_out:
            typer.echo(json.dumps(_num(summary)))
            return
        counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items()) or "nothing"
        typer.echo(f"{summary['scene']} @ {summary['aoi']}: {counts} "
                   f"(coverage {summary['coverage']:.0%}, {summary['gsd_m']:.2f} m, "
                   f"{summary['sensor']}, acquired {summary['acquired'] or 'unknown'})")
