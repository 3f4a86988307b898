"""``monitor evaluate DETECTIONS TRUTH`` and ``monitor evaluate --scene SCENE --aoi AOI TRUTH``.

Scores detections against the user's own labels (:mod:`monitor.evaluate`):
precision, recall, F1 and count error per class.
"""

from __future__ import annotations

import json
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        paths: List[str] = typer.Argument(..., metavar="[DETECTIONS] TRUTH",
                                          help="The detections (GeoJSON of `monitor detect --geojson`, GeoPackage...) "
                                               "and your labels (polygons; points with --centroid-m). "
                                               "With --scene only the labels."),
        scene: Optional[str] = typer.Option(None, "--scene", help="Run detection on this scene (GeoTIFF/COG or "
                                            "STAC item) first, as `monitor detect` does; needs --aoi."),
        aoi: Optional[str] = typer.Option(None, "--aoi", help="A bundled AOI id or an AOI file: only objects "
                                          "inside its boundary count (with --scene: inside its clear part)."),
        min_iou: float = typer.Option(0.25, "--iou", help="A match needs at least this IoU (0-1]."),
        centroid_m: Optional[float] = typer.Option(None, "--centroid-m", help="Also match when the centroids are "
                                                   "at most this many metres apart (small objects, point labels)."),
        min_length: Optional[float] = typer.Option(None, "--min-length", help="Only objects at least this long "
                                                   "(metres, e.g. 30 for ships >= 30 m); shorter labels are "
                                                   "neither missed nor false alarms."),
        cls: Optional[str] = typer.Option(None, "--class", help="Evaluate this class only (railcar, vessel)."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
        gsd: Optional[float] = typer.Option(None, "--gsd", help="With --scene: read the chip at this pixel size (m)."),
        sensor: Optional[str] = typer.Option(None, "--sensor", help="With --scene: optical or sar."),
        trace: bool = typer.Option(False, "--trace", help="With --scene: count along tracks traced in the scene."),
    ):
        """Check the detectors against your own labels: precision, recall, F1, count error."""
        from monitor.cli import fail
        from monitor.errors import InputError
        from monitor.evaluate import evaluate_scene, valid_area

        want = 1 if scene else 2
        if len(paths) != want:
            usage = "TRUTH (with --scene)" if scene else "DETECTIONS TRUTH"
            raise fail(InputError("monitor evaluate", f"expected {usage}, got {len(paths)} path(s)"))
        truth = paths[-1]
        try:
            from monitor.aoi import load_aoi

            a = load_aoi(aoi) if aoi else None
            if scene:
                if a is None:
                    raise InputError(scene, "--scene needs --aoi (the AOI to detect in)")
                from monitor.detect import detect
                from monitor.imagery import read_chip
                from monitor.scenes import open_scene

                chip = read_chip(open_scene(scene, sensor=sensor), a, gsd_m=gsd)
                detections = detect(chip, trace=True if trace else None)
                if not detections:
                    raise InputError(scene, "no detector ran")
                ev = evaluate_scene(detections, truth, cls=cls, within=valid_area(chip), within_crs=chip.crs,
                                    min_iou=min_iou, max_centroid_m=centroid_m, min_length_m=min_length,
                                    name=str(scene))
                source = str(scene)
            else:
                ev = evaluate_scene(paths[0], truth, cls=cls, within=a, min_iou=min_iou,
                                    max_centroid_m=centroid_m, min_length_m=min_length, name=paths[0])
                source = paths[0]
        except InputError as e:
            raise fail(e)
        rule = f"IoU>={min_iou:g}" + (f" or centroid<={centroid_m:g} m" if centroid_m is not None else "")
        if min_length is not None:
            rule += f", objects >= {min_length:g} m"
        if json_out:
            out = {"detections": source, "truth": truth,
                   "rule": {"min_iou": min_iou, "max_centroid_m": centroid_m, "min_length_m": min_length},
                   "within": "aoi-clear" if scene else ("aoi" if a is not None else None),
                   "dropped": ev.dropped, "classes": {c: s.to_dict() for c, s in ev.by_class.items()},
                   "total": ev.score.to_dict()}
            typer.echo(json.dumps(out))
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"{source} vs {truth} ({rule})")
        for col in ("class", "truth", "detected", "TP", "FP", "FN", "precision", "recall", "F1", "count error"):
            t.add_column(col, justify="left" if col == "class" else "right")
        rows = list(ev.by_class.items())
        if len(rows) > 1:
            rows.append(("all", ev.score))
        for c, s in rows:
            d = s.to_dict()
            t.add_row(c, str(d["truth_count"]), str(d["count"]), str(s.tp), str(s.fp), str(s.fn),
                      f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}",
                      f"{d['count_error']:+} ({s.relative_count_error:.0%})")
        con = Console(width=140)
        con.print(t)
        if ev.dropped["detections"] or ev.dropped["truth"]:
            con.print(f"left out (outside the AOI or unseen): {ev.dropped['detections']} detection(s), "
                      f"{ev.dropped['truth']} label(s)")
        if ev.dropped.get("small_truth"):
            con.print(f"not scored (shorter than {min_length:g} m): {ev.dropped['small_truth']} label(s)")
